"""Reinforcement-learning environments on the simulated exchange.

Importing this package registers, with ``gymnasium.register``:

| id | class | action |
| --- | --- | --- |
| ``exchange/Trading-v0`` | ``TradingEnv`` | ``MultiDiscrete([3, 2*max_offset+1, len(qty_buckets), 2])``: side, price offset, size, cancel all |
| ``exchange/MarketMaking-v0`` | ``MarketMakingEnv`` | ``MultiDiscrete([n_offsets, n_offsets])``: bid and ask distance |
| ``exchange/Execution-v0`` | ``ExecutionEnv`` | ``MultiDiscrete([2, 2*max_offset+1, len(qty_buckets), 2])``: send, price offset, size, cancel all |

``action_type="box"`` gives each a continuous ``Box`` action, ``obs_type="dict"`` a ``Dict``
observation, ``background="flow"`` (or ``"flow_heavy"``, or an ``envs.flow.FlowBackground``)
the lean background of ``envs.flow`` instead of the scripted agents. Trading and MarketMaking truncate through ``TimeLimit`` after
``max_episode_steps`` (1000 steps of 100 ms); Execution after 200.
Create them with ``gymnasium.make(id, **kwargs)``; the keyword arguments override fields of
``TradingConfig``. Each class docstring is the environment's spec page.

The multi-agent PettingZoo environment is ``envs.multi`` (also importable as
``envs.exchange_multi_v0``): ``parallel_env()``, ``raw_env()`` (AEC) and ``env()``; it takes
the same ``background`` option, flows included.
"""

from __future__ import annotations

import gymnasium

from envs.config import REFERENCE_PRICE, Background, TradingConfig, default_background
from envs.flow import FLOW_HEAVY, FLOW_LIGHT, FlowBackground
from envs import multi as exchange_multi_v0  # the Farama-style versioned module name
from envs.execution import ExecutionEnv
from envs.multi import BlackDeath, MultiTradingConfig, MultiTradingEnv
from envs.trading import LEARNER, Learner, MarketMakingEnv, TradingEnv

MAX_EPISODE_STEPS = 1000
EXECUTION_STEPS = 200

ENV_IDS = ("exchange/Trading-v0", "exchange/MarketMaking-v0", "exchange/Execution-v0")

gymnasium.register(id="exchange/Trading-v0", entry_point="envs.trading:TradingEnv", max_episode_steps=MAX_EPISODE_STEPS)
gymnasium.register(
    id="exchange/MarketMaking-v0", entry_point="envs.trading:MarketMakingEnv", max_episode_steps=MAX_EPISODE_STEPS
)
gymnasium.register(
    id="exchange/Execution-v0",
    entry_point="envs.execution:ExecutionEnv",
    max_episode_steps=EXECUTION_STEPS,
    kwargs={"horizon_steps": EXECUTION_STEPS},
)

__all__ = [
    "BlackDeath",
    "ENV_IDS",
    "EXECUTION_STEPS",
    "ExecutionEnv",
    "FLOW_HEAVY",
    "FLOW_LIGHT",
    "FlowBackground",
    "LEARNER",
    "MAX_EPISODE_STEPS",
    "REFERENCE_PRICE",
    "Background",
    "Learner",
    "MarketMakingEnv",
    "MultiTradingConfig",
    "MultiTradingEnv",
    "exchange_multi_v0",
    "TradingConfig",
    "TradingEnv",
    "default_background",
]

"""Reinforcement-learning environments on the simulated exchange.

Importing this package registers, with ``gymnasium.register``:

| id | class | action |
| --- | --- | --- |
| ``exchange/Trading-v0`` | ``TradingEnv`` | ``MultiDiscrete([3, 2*max_offset+1, len(qty_buckets)])``: side, price offset, size |
| ``exchange/MarketMaking-v0`` | ``MarketMakingEnv`` | ``MultiDiscrete([n_offsets, n_offsets])``: bid and ask distance |

Both truncate through ``TimeLimit`` after ``max_episode_steps`` (1000 steps of 100 ms).
Create them with ``gymnasium.make(id, **kwargs)``; the keyword arguments override fields of
``TradingConfig``. Each class docstring is the environment's spec page.
"""

from __future__ import annotations

import gymnasium

from envs.config import REFERENCE_PRICE, Background, TradingConfig, default_background
from envs.trading import LEARNER, Learner, MarketMakingEnv, TradingEnv

MAX_EPISODE_STEPS = 1000

ENV_IDS = ("exchange/Trading-v0", "exchange/MarketMaking-v0")

gymnasium.register(id="exchange/Trading-v0", entry_point="envs.trading:TradingEnv", max_episode_steps=MAX_EPISODE_STEPS)
gymnasium.register(
    id="exchange/MarketMaking-v0", entry_point="envs.trading:MarketMakingEnv", max_episode_steps=MAX_EPISODE_STEPS
)

__all__ = [
    "ENV_IDS",
    "LEARNER",
    "MAX_EPISODE_STEPS",
    "REFERENCE_PRICE",
    "Background",
    "Learner",
    "MarketMakingEnv",
    "TradingConfig",
    "TradingEnv",
    "default_background",
]

"""Scripted traders: background flow for environments and opponents for learning agents.

Each strategy is a frozen config dataclass, a pure ``decide`` step over observed state and
an ``exchange.sim.Agent`` shell that trades one symbol (see ``agents.base`` for the split):

| name | agent | config | what it does |
| --- | --- | --- | --- |
| ``noise`` | ``NoiseTrader`` | ``NoiseConfig`` | Poisson random limit/market/cancel flow |
| ``market_maker`` | ``AvellanedaStoikovMaker`` | ``MarketMakerConfig`` | inventory-skewed two-sided quotes |
| ``momentum`` | ``MomentumTrader`` | ``MomentumConfig`` | follows order-flow imbalance or returns |
| ``mean_reversion`` | ``MeanReversionTrader`` | ``MeanReversionConfig`` | fades deviations from an EWMA |
| ``twap`` | ``TwapTrader`` | ``TwapConfig`` | works a parent order in equal time slices |

``ReplayAgent`` (``agents.replay``) replays a LOBSTER message file as background flow.

``make_agent(name, trader, symbol, config)`` builds one by name (for configs composed by
Hydra at an entry point); ``AGENTS`` maps each name to its (agent, config) classes.
"""

from __future__ import annotations

from agents.base import (
    BookView,
    CancelOrder,
    Intent,
    ModifyOrder,
    OrderTracker,
    OwnOrder,
    PlaceOrder,
    ScriptedAgent,
    toward_target,
)
from agents.market_maker import AvellanedaStoikovMaker, MarketMakerConfig, Quotes
from agents.mean_reversion import MeanReversionConfig, MeanReversionTrader
from agents.momentum import MomentumConfig, MomentumTrader
from agents.noise import NoiseConfig, NoiseTrader
from agents.replay import ReplayAgent, ReplayStats
from agents.twap import TwapConfig, TwapProgress, TwapTrader
from exchange.sim import Latency

AGENTS: dict[str, tuple[type[ScriptedAgent], type]] = {
    "noise": (NoiseTrader, NoiseConfig),
    "market_maker": (AvellanedaStoikovMaker, MarketMakerConfig),
    "momentum": (MomentumTrader, MomentumConfig),
    "mean_reversion": (MeanReversionTrader, MeanReversionConfig),
    "twap": (TwapTrader, TwapConfig),
}


def make_agent(name: str, trader: int, symbol: str, config: object, *, latency: Latency | None = None) -> ScriptedAgent:
    """The scripted agent ``name`` trading ``symbol`` as ``trader`` with ``config``."""
    try:
        agent_cls, config_cls = AGENTS[name]
    except KeyError:
        raise ValueError(f"unknown agent {name!r}; choose from {sorted(AGENTS)}") from None
    if not isinstance(config, config_cls):
        raise TypeError(f"agent {name!r} takes a {config_cls.__name__}, got {type(config).__name__}")
    return agent_cls(trader, symbol, config, latency=latency)  # type: ignore[call-arg]


__all__ = [
    "AGENTS",
    "ReplayAgent",
    "ReplayStats",
    "AvellanedaStoikovMaker",
    "BookView",
    "CancelOrder",
    "Intent",
    "MarketMakerConfig",
    "MeanReversionConfig",
    "MeanReversionTrader",
    "ModifyOrder",
    "MomentumConfig",
    "MomentumTrader",
    "NoiseConfig",
    "NoiseTrader",
    "OrderTracker",
    "OwnOrder",
    "PlaceOrder",
    "Quotes",
    "ScriptedAgent",
    "TwapConfig",
    "TwapProgress",
    "TwapTrader",
    "make_agent",
    "toward_target",
]

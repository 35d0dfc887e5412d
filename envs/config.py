"""The frozen configuration of the trading environments (``TradingConfig``).

Every field is documented where it is declared. Hydra composes these at entry points; the
environments only ever see a ``TradingConfig`` (or plain keyword arguments that override
its fields), so nothing here imports Hydra.

Units: prices and distances in *ticks* of the instrument, sizes in *lots*, times in
simulated nanoseconds, money in ticks x lots (a price unit change of one tick on one lot).
"""

from __future__ import annotations

from dataclasses import dataclass

from agents import MarketMakerConfig, NoiseConfig
from envs.flow import FLOWS, FlowBackground
from exchange.instrument import PRESETS
from exchange.sim import MS, SECOND

#: Starting fair price of each preset in price units: $100.00 in cents (tick 1) and 5000.00
#: in hundredths (tick 25).
REFERENCE_PRICE = {"nyse": 10_000, "cme": 500_000}


@dataclass(frozen=True)
class Background:
    """``count`` scripted traders named ``name`` in ``agents.AGENTS`` with one ``config``."""

    name: str
    config: object
    count: int = 1


@dataclass(frozen=True)
class TradingConfig:
    """Parameters of ``TradingEnv`` and ``MarketMakingEnv``."""

    # ---- market --------------------------------------------------------------------------------
    preset: str = "nyse"  # instrument preset, a key of exchange.instrument.PRESETS ("nyse" | "cme")
    symbol: str = "XYZ"  # the one symbol traded
    reference_price: int | None = None  # starting fair price (price units); None: REFERENCE_PRICE[preset]
    # the background: scripted traders (Background(...)s; None: default_background(...)), or the
    # lean flow of envs.flow: "flow" (light, ~5 msgs/step), "flow_heavy" (~24) or a FlowBackground
    background: tuple[Background, ...] | FlowBackground | str | None = None
    step_ns: int = 100 * MS  # simulated time one env step advances
    warmup_ns: int = 1 * SECOND  # background trading before the first observation (fills the book)
    horizon_steps: int = 1000  # episode length for the time-left feature when not registered
    # ---- risk (the venue's RiskLimits, which apply to every trader of the venue) ----------------
    max_position: int = 50  # |position| cap in lots, counting working orders of the same side
    max_open_orders: int = 20  # resting orders per trader
    # ---- actions -------------------------------------------------------------------------------
    action_type: str = "discrete"  # "discrete" (MultiDiscrete) | "box" (continuous Box in [-1, 1], same meaning)
    cancel_all: bool = True  # Trading-v0 / Execution-v0: offer a cancel-all action (side value 3 / a 4th Box component)
    max_offset: int = 2  # Trading-v0: price offsets -max_offset..+max_offset ticks from the touch
    qty_buckets: tuple[int, ...] = (1, 5, 10)  # Trading-v0: order sizes in lots, one per bucket
    n_offsets: int = 5  # MarketMaking-v0: quote distances 0..n_offsets-1 ticks behind the touch
    quote_qty: int = 5  # MarketMaking-v0: lots per quote
    # ---- execution (Execution-v0) --------------------------------------------------------------
    target_qty: int = 50  # lots the agent must buy (exec_side 1) or sell (-1) within the horizon
    exec_side: int = 1  # side of the parent order: 1 buy, -1 sell
    unfilled_penalty: float = 50.0  # ticks per lot still unfilled after the final sweep
    # ---- observation ---------------------------------------------------------------------------
    obs_type: str = "box"  # "box" (one flat float32 vector) | "dict" (a Dict of named Boxes, same values)
    depth: int = 5  # L, levels per side in the observation
    size_scale: float = 50.0  # sizes and trade flow are divided by this (lots)
    max_ticks: float = 50.0  # distances, spread and mid return are clipped to +-max_ticks
    clip: float = 10.0  # bound of the other unbounded features (trade flow, PnL)
    # ---- reward --------------------------------------------------------------------------------
    reward_scale: float = 100.0  # reward = money change in ticks x lots / reward_scale
    inventory_penalty: float = 0.0  # ticks per lot of |inventory| charged each step
    liquidation_cost: bool = True  # charge half-spread x |inventory| on the last step of the horizon
    starting_cash: int = 0  # every trader's starting cash (price units); equity is relative anyway

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)}")
        positive = (
            "step_ns", "horizon_steps", "max_position", "max_open_orders", "n_offsets", "quote_qty", "depth", "target_qty",
        )
        for name in positive:
            if type(getattr(self, name)) is not int or getattr(self, name) <= 0:
                raise ValueError(f"TradingConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        if self.max_offset < 0 or self.warmup_ns < 0:
            raise ValueError("max_offset and warmup_ns must be >= 0")
        if not self.qty_buckets or any(type(q) is not int or q <= 0 for q in self.qty_buckets):
            raise ValueError(f"qty_buckets must be positive ints, got {self.qty_buckets!r}")
        for name in ("size_scale", "max_ticks", "clip", "reward_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TradingConfig.{name} must be positive")
        if self.inventory_penalty < 0 or self.unfilled_penalty < 0:
            raise ValueError("inventory_penalty and unfilled_penalty must be >= 0")
        if self.action_type not in ("discrete", "box"):
            raise ValueError(f"action_type must be 'discrete' or 'box', got {self.action_type!r}")
        if self.obs_type not in ("box", "dict"):
            raise ValueError(f"obs_type must be 'box' or 'dict', got {self.obs_type!r}")
        if isinstance(self.background, str) and self.background not in FLOWS:
            raise ValueError(f"unknown background {self.background!r}; choose from {sorted(FLOWS)} or pass Background(...)s")
        if self.exec_side not in (1, -1):
            raise ValueError(f"exec_side must be 1 (buy) or -1 (sell), got {self.exec_side!r}")

    @property
    def reference(self) -> int:
        """The starting fair price in price units."""
        return self.reference_price if self.reference_price is not None else REFERENCE_PRICE[self.preset]


def default_background(reference_price: int, max_position: int) -> tuple[Background, ...]:
    """Two noise traders and one Avellaneda-Stoikov market maker (so the book never empties)."""
    return (
        Background("noise", NoiseConfig(reference_price=reference_price, rate_hz=10.0), count=2),
        Background("market_maker", MarketMakerConfig(reference_price=reference_price, max_inventory=max_position)),
    )

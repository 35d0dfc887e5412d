"""TWAP execution: buy or sell a target quantity over a time window in equal slices.

The window ``[start_ns, start_ns + duration_ns)`` is cut into ``slices`` equal intervals;
slice ``i`` (``0 <= i < slices``) fires at ``start_ns + i * duration_ns // slices`` and
brings the schedule to ``qty * (i + 1) // slices`` lots (whole lots; the last slice reaches
``qty``). At each slice the trader sends one marketable-limit child order, IOC, priced
``aggression_ticks`` through the opposite best and never beyond ``limit_price`` (a buy pays
at most, a sell receives at least, that price). Its size is what the schedule asks by now
minus what has filled (``catch_up``, the default: a slice also works what earlier slices
missed) or one slice's share of what is left. No child goes out while the previous one is
still working, when the opposite side is empty, or when the limit is out of reach; what
was not filled then rolls into later slices. Nothing is sent after the last slice.

Progress: ``progress(now)`` gives filled lots against the schedule (``TwapProgress``), and
``history`` records one entry per slice, taken as the slice fires (before its child order:
``scheduled`` is then what the earlier slices asked for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from agents.base import IOC, BookView, Intent, OrderTracker, PlaceOrder, ScriptedAgent
from exchange.sim import Context, Latency


@dataclass(frozen=True)
class TwapConfig:
    """Parameters of ``TwapTrader``; times in ns, sizes in lots, prices in price units."""

    side: int  # 1: buy, -1: sell
    qty: int  # target lots over the window
    duration_ns: int  # length of the window
    slices: int = 10  # number of equal slices
    start_ns: int = 0  # start of the window (simulated time)
    limit_price: int | None = None  # worst price a child may trade at (None: none)
    aggression_ticks: int = 1  # how far through the opposite best a child may go
    catch_up: bool = True  # each slice also works what earlier ones missed

    def __post_init__(self) -> None:
        if self.side not in (1, -1):
            raise ValueError(f"side must be 1 or -1, got {self.side}")
        if self.qty < 1 or self.slices < 1 or self.duration_ns <= 0 or self.start_ns < 0:
            raise ValueError("need qty >= 1, slices >= 1, duration_ns > 0, start_ns >= 0")
        if self.aggression_ticks < 0 or (self.limit_price is not None and self.limit_price <= 0):
            raise ValueError("need aggression_ticks >= 0 and a positive limit_price")


class TwapProgress(NamedTuple):
    """Execution against the schedule, in lots."""

    time: int  # when measured (ns)
    slices_done: int  # slices that have fired
    scheduled: int  # lots the schedule asks for by now
    filled: int  # lots filled so far
    target: int  # lots in total

    @property
    def behind(self) -> int:
        """Scheduled lots not yet filled (negative: ahead of schedule)."""
        return self.scheduled - self.filled

    @property
    def done(self) -> bool:
        return self.filled >= self.target


def slice_time(config: TwapConfig, i: int) -> int:
    """When slice ``i`` fires."""
    return config.start_ns + i * config.duration_ns // config.slices


def scheduled_after(config: TwapConfig, i: int, lot: int = 1) -> int:
    """Lots the schedule asks for once slice ``i`` has fired (whole lots)."""
    total_lots = config.qty // lot
    return total_lots * min(i + 1, config.slices) // config.slices * lot


def decide(
    config: TwapConfig, i: int, filled: int, book: BookView, orders: OrderTracker, tick: int, lot: int
) -> list[Intent]:
    """The child order of slice ``i`` given ``filled`` lots so far (empty: nothing to send)."""
    if orders.working():
        return []
    remaining = config.qty // lot * lot - filled
    if remaining <= 0:
        return []
    if config.catch_up:
        want = scheduled_after(config, i, lot) - filled
    else:
        want = -(-remaining // (config.slices - i))  # this slice's share of what is left
    want = min(want, remaining) // lot * lot
    if want <= 0:
        return []
    side = config.side
    opp = book.best(-side)
    if opp is None:
        return []
    price = max(tick, opp + side * config.aggression_ticks * tick)
    if config.limit_price is not None:
        if (opp - config.limit_price) * side > 0:
            return []  # the touch is already beyond the limit
        price = min(price, config.limit_price) if side == 1 else max(price, config.limit_price)
    return [PlaceOrder(side, want, price, IOC)]


class TwapTrader(ScriptedAgent):
    """Works ``config.qty`` lots over ``config.duration_ns`` in equal slices (see module doc)."""

    def __init__(
        self,
        trader: int,
        symbol: str,
        config: TwapConfig,
        *,
        latency: Latency | None = None,
        smp: bool = True,
    ) -> None:
        super().__init__(trader, symbol, latency=latency, smp=smp)
        self.config = config
        self.next_slice = 0
        self.history: list[TwapProgress] = []

    @property
    def filled(self) -> int:
        """Lots filled in the target's direction (net of any fills the other way)."""
        o = self.orders
        return max(0, o.bought - o.sold if self.config.side == 1 else o.sold - o.bought)

    def progress(self, now: int) -> TwapProgress:
        """Filled lots against the schedule at ``now``."""
        done = self.next_slice
        scheduled = scheduled_after(self.config, done - 1, self.lot) if done else 0
        return TwapProgress(now, done, scheduled, self.filled, self.config.qty // self.lot * self.lot)

    def start(self, ctx: Context) -> None:
        ctx.wake_at(max(ctx.now, slice_time(self.config, 0)))

    def on_wakeup(self, ctx: Context) -> None:
        cfg, i = self.config, self.next_slice
        if i >= cfg.slices:
            return
        self.history.append(self.progress(ctx.now))  # where things stand as slice i fires
        intents = decide(cfg, i, self.filled, self.book, self.orders, self.tick, self.lot)
        self.next_slice = i + 1
        self.send(ctx, intents)
        if self.next_slice < cfg.slices:
            ctx.wake_at(max(ctx.now, slice_time(cfg, self.next_slice)))

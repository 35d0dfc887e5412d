"""Noise trader: random, uninformed order flow that gives a book depth and trades.

Arrivals are a Poisson process of rate ``rate_hz``: the time to the next arrival is drawn
from an exponential distribution with ``ctx.rng``. At each arrival the trader first cancels
its own orders older than ``max_age_ns``, then does one of three things, drawn at random:

- with probability ``p_cancel``, cancels its oldest working order (if it has one);
- with probability ``p_market``, sends a market order (IOC) of a random side, when the
  opposite side shows in its view of the book;
- otherwise posts a limit order of a random side ``0..depth_ticks`` ticks behind the
  reference price on its own side (a buy at or below, a sell at or above).

The reference price is the mid, else the last trade, else the one side that shows, else the
configured ``reference_price``: two noise traders bootstrap an empty book around it.
``anchor`` (0..1) pulls the reference toward ``reference_price`` (0: the price is a pure
random walk; 1: orders always centre on ``reference_price``). Sizes are uniform on
``min_qty..max_qty`` lots. With ``max_position`` set, a side that could take the position
past it (counting working orders of that side) is flipped, or the arrival is skipped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from agents.base import (
    IOC,
    BookView,
    CancelOrder,
    Intent,
    OrderTracker,
    PlaceOrder,
    ScriptedAgent,
    lots,
    passive_tick,
)
from exchange.sim import SECOND, Context, Latency


@dataclass(frozen=True)
class NoiseConfig:
    """Parameters of ``NoiseTrader``; prices in price units, sizes in lots, times in ns."""

    reference_price: int  # where to quote when nothing has traded and the book is empty
    rate_hz: float = 5.0  # mean arrivals per second
    p_market: float = 0.15  # share of arrivals that are market orders
    p_cancel: float = 0.2  # share of arrivals that cancel the oldest working order
    min_qty: int = 1  # order size, uniform on min_qty..max_qty
    max_qty: int = 10
    depth_ticks: int = 5  # a limit rests 0..depth_ticks ticks behind the reference price
    anchor: float = 0.0  # weight of reference_price in the reference (0: follow the market)
    max_age_ns: int | None = 5 * SECOND  # older working orders are cancelled (None: never)
    max_open_orders: int = 10  # at the cap, the oldest order is cancelled before posting
    max_position: int | None = None  # |position| bound, counting working orders (None: none)

    def __post_init__(self) -> None:
        if self.reference_price <= 0:
            raise ValueError(f"reference_price must be positive, got {self.reference_price}")
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {self.rate_hz}")
        if not (0 <= self.p_market and 0 <= self.p_cancel and self.p_market + self.p_cancel <= 1):
            raise ValueError("p_market and p_cancel must be >= 0 and sum to at most 1")
        if not 1 <= self.min_qty <= self.max_qty:
            raise ValueError(f"need 1 <= min_qty <= max_qty, got {self.min_qty}, {self.max_qty}")
        if self.depth_ticks < 0 or self.max_open_orders < 1:
            raise ValueError("depth_ticks must be >= 0 and max_open_orders >= 1")
        if not 0 <= self.anchor <= 1:
            raise ValueError(f"anchor must be in [0, 1], got {self.anchor}")


def next_arrival_ns(config: NoiseConfig, rng: random.Random) -> int:
    """Time to the next arrival: exponential with mean ``1 / rate_hz`` seconds (>= 1 ns)."""
    return max(1, round(rng.expovariate(config.rate_hz) * SECOND))


def decide(
    config: NoiseConfig, book: BookView, orders: OrderTracker, now: int, rng: random.Random, tick: int, lot: int
) -> list[Intent]:
    """One arrival of the noise trader (see the module docstring)."""
    out: list[Intent] = []
    working = []  # settled orders young enough to keep, oldest first
    max_age = config.max_age_ns
    for o in orders.orders.values():
        if o.acked and not o.in_flight and not o.cancelling:  # o.settled
            if max_age is not None and now - o.sent_at > max_age:
                out.append(CancelOrder(o.order_id))
            else:
                working.append(o)
    u = rng.random()
    if u < config.p_cancel:
        if working:
            out.append(CancelOrder(working[0].order_id))
        return out
    side = rng.choice((1, -1))
    qty = lots(rng.randint(config.min_qty, config.max_qty) * lot, lot)
    if config.max_position is not None:
        side = _allowed_side(side, qty, orders, config.max_position)
        if side == 0:
            return out
    if u < config.p_cancel + config.p_market and book.best(-side) is not None:
        out.append(PlaceOrder(side, qty, None, IOC))
        return out
    ref = book.reference(fallback=float(config.reference_price))
    assert ref is not None
    if config.anchor:
        ref = (1 - config.anchor) * ref + config.anchor * config.reference_price
    offset = rng.randint(0, config.depth_ticks) * tick
    price = passive_tick(ref - side * offset, side, tick)
    if len(working) >= config.max_open_orders:
        out.append(CancelOrder(working[0].order_id))
    out.append(PlaceOrder(side, qty, price))
    return out


def _allowed_side(side: int, qty: int, orders: OrderTracker, limit: int) -> int:
    """``side`` if an order of ``qty`` keeps the worst case within ``limit``, else the other
    side if that one does, else 0."""
    for s in (side, -side):
        if abs(orders.position + s * (orders.open_qty(s) + qty)) <= limit:
            return s
    return 0


class NoiseTrader(ScriptedAgent):
    """Random limit, market and cancel flow around the mid (see the module docstring)."""

    def __init__(
        self, trader: int, symbol: str, config: NoiseConfig, *, latency: Latency | None = None, smp: bool = True
    ) -> None:
        super().__init__(trader, symbol, latency=latency, smp=smp)
        self.config = config

    def start(self, ctx: Context) -> None:
        ctx.wake_in(next_arrival_ns(self.config, ctx.rng))

    def on_wakeup(self, ctx: Context) -> None:
        self.send(ctx, decide(self.config, self.book, self.orders, ctx.now, ctx.rng, self.tick, self.lot))
        ctx.wake_in(next_arrival_ns(self.config, ctx.rng))

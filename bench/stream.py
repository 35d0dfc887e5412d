"""The standard benchmark stream: a deterministic mix of passive orders, cancels and takers.

Workload (defaults; everything is integer price units with tick 1 and lot 1):

- about 54% passive limit orders, priced ``1 + floor(Exp(mean 6))`` ticks from a random-walk
  mid on the order's own side (a buy below the mid, a sell above), quantity 1..10 uniform;
  a price that would cross the opposite best is clamped to one tick behind it, so it rests;
- about 31% cancels of orders that are live at that moment, picked uniformly; the cancel
  rate is steered by the number of live orders so about 2,000 orders stay live (spread over
  about 75 price levels, both sides together);
- about 15% marketable orders, quantity 1..18 uniform: half MARKET, half LIMIT priced 0..2
  ticks through the opposite best (a remainder rests). A marketable order when the opposite
  side is empty is emitted as a passive order instead;
- 16 traders (ids 1..16), no self-match ids, GTC only, order ids 1, 2, 3, ...

The generator drives a ``ReferenceBook`` (price-time FIFO) while it generates, so cancels
target truly live orders and marketable prices are relative to the real best. The mid walks
(Gaussian steps) and is pulled toward the real book mid so the book does not drift. Same
``seed``, same stream: only ``random.Random(seed)`` is used.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from bench.reference import ReferenceBook
from exchange.commands import Cancel, NewOrder
from exchange.enums import OrderType

DEFAULT_SEED = 20261121
_LIMIT, _MARKET = OrderType.LIMIT, OrderType.MARKET


@dataclass
class StreamStats:
    """What the generated stream turned out to be (its realised mix and book shape)."""

    n: int = 0
    seed: int = 0
    passive: int = 0  # resting limit orders (including marketable ones demoted on an empty side)
    cancels: int = 0
    marketable: int = 0  # MARKET plus crossing LIMIT
    markets: int = 0  # of which MARKET
    live_sum: int = 0  # sums over messages, for averages
    levels_sum: int = 0
    volume: int = 0  # lots traded (FIFO, as the generator's reference book saw it)
    final_live: int = 0

    @property
    def avg_live(self) -> float:
        return self.live_sum / self.n if self.n else 0.0

    @property
    def avg_levels(self) -> float:
        return self.levels_sum / self.n if self.n else 0.0

    def as_dict(self) -> dict:
        n = self.n or 1
        return {
            "messages": self.n,
            "seed": self.seed,
            "passive_pct": round(100 * self.passive / n, 2),
            "cancel_pct": round(100 * self.cancels / n, 2),
            "marketable_pct": round(100 * self.marketable / n, 2),
            "market_pct": round(100 * self.markets / n, 2),
            "avg_live_orders": round(self.avg_live, 1),
            "avg_levels": round(self.avg_levels, 1),
            "final_live_orders": self.final_live,
            "volume": self.volume,
        }


@dataclass
class Stream:
    commands: list
    stats: StreamStats


def generate_stream(
    n: int = 1_000_000,
    seed: int = DEFAULT_SEED,
    *,
    target_live: int = 2_000,
    passive_ticks: float = 6.0,
    marketable_share: float = 0.15,
    cancel_share: float = 0.31,
    traders: int = 16,
    start_mid: int = 10_000,
    passive_qty: tuple[int, int] = (1, 10),
    marketable_qty: tuple[int, int] = (1, 18),
    on_progress: Callable[[int], object] | None = None,
) -> Stream:
    """Generate ``n`` commands (see the module docstring) and the stats of the realised mix.

    ``on_progress(k)``, if given, is called with the number of messages generated so far
    every 65,536 messages and at the end.
    """
    rnd = random.Random(seed)
    rand, randint, expovariate, gauss = rnd.random, rnd.randint, rnd.expovariate, rnd.gauss
    book = ReferenceBook()
    bids, asks, orders = book.bids, book.asks, book.orders
    stats = StreamStats(n=n, seed=seed)
    out: list = []
    append = out.append
    live: list[tuple[int, int]] = []  # (order_id, trader) of orders that rested; filled ones pruned lazily
    mid = float(start_mid)
    lam = 1.0 / passive_ticks
    next_id = 1
    pq_lo, pq_hi = passive_qty
    mq_lo, mq_hi = marketable_qty

    for k in range(n):
        if on_progress is not None and not k & 0xFFFF:
            on_progress(k)
        best_bid = bids.peekitem(-1)[0] if bids else None
        best_ask = asks.peekitem(0)[0] if asks else None
        # mid: Gaussian random walk pulled toward the book's mid
        if best_bid is not None and best_ask is not None:
            mid += 0.02 * ((best_bid + best_ask) / 2 - mid)
        mid += gauss(0.0, 0.25)
        n_live = len(orders)
        stats.live_sum += n_live
        stats.levels_sum += len(bids) + len(asks)
        # the cancel probability steers the live count toward target_live
        p_cancel = cancel_share * (n_live / target_live) ** 3 if n_live else 0.0
        if p_cancel > 0.8:
            p_cancel = 0.8
        u = rand()
        if u < p_cancel:
            while live:  # pick a live order uniformly (prune filled ones as we meet them)
                i = int(rand() * len(live))
                oid, trader = live[i]
                last = live.pop()
                if i < len(live):
                    live[i] = last
                if oid in orders:
                    append(Cancel(order_id=oid, trader=trader))
                    book.cancel(oid)
                    stats.cancels += 1
                    break
            else:
                u = 1.0  # nothing live: fall through to a passive order
            if u < 1.0:
                continue
        side = 1 if rand() < 0.5 else -1
        trader = randint(1, traders)
        oid = next_id
        next_id += 1
        opp_best = best_ask if side == 1 else best_bid
        if u < p_cancel + marketable_share and u < 1.0 and opp_best is not None:
            qty = randint(mq_lo, mq_hi)
            stats.marketable += 1
            if rand() < 0.5:
                stats.markets += 1
                append(NewOrder(order_id=oid, trader=trader, side=side, qty=qty, type=_MARKET))
                stats.volume += book.market(oid, side, qty)
            else:
                price = opp_best + side * randint(0, 2)
                append(NewOrder(order_id=oid, trader=trader, side=side, qty=qty, price=price))
                stats.volume += book.limit(oid, side, price, qty)
                if oid in orders:
                    live.append((oid, trader))
            continue
        # passive limit order
        ticks = 1 + math.floor(expovariate(lam))
        m = round(mid)
        price = m - side * ticks
        if opp_best is not None and (price - opp_best) * side >= 0:
            price = opp_best - side
        if price < 1:
            price = 1
        qty = randint(pq_lo, pq_hi)
        append(NewOrder(order_id=oid, trader=trader, side=side, qty=qty, price=price))
        stats.volume += book.limit(oid, side, price, qty)
        stats.passive += 1
        live.append((oid, trader))

    stats.final_live = len(orders)
    if on_progress is not None:
        on_progress(n)
    return Stream(out, stats)


def standard_stream(n: int = 1_000_000, seed: int = DEFAULT_SEED, **kwargs: object) -> list:
    """The standard benchmark stream: ``n`` ``NewOrder``/``Cancel`` commands for ``seed``."""
    return generate_stream(n, seed, **kwargs).commands  # type: ignore[arg-type]

"""Matching rules: how an aggressor's quantity is split among the orders at one price level.

A rule is a strategy with one method, ``allocate(level, qty, top)``: given a level, the
aggressor's remaining quantity and the side's TOP order (or None), it returns
``[(order, lots), ...]`` in execution order, without changing anything. The engine executes
the list, refreshes exhausted icebergs (their new slice goes to the back of the queue) and
calls the rule again while quantity and resting orders remain: one call is one *round*.
An allocation larger than an order's displayed quantity takes from its hidden reserve
(only the CME FIFO exception does this).

Rules:

- ``Fifo``: price-time priority (NYSE). Orders fill in time order, each up to its displayed
  quantity.
- ``ProRata(top, min_alloc)``: CME Globex algorithm A (``top=True``) or C (``top=False``):
  1. TOP: the order that set the side's best price is filled first, in full.
  2. Pro rata: each other order gets floor(displayed qty / total displayed qty (TOP
     excluded) x remaining qty); shares below ``min_alloc`` become 0.
  3. Leftover lots go FIFO, earliest first, to orders with quantity left.
  FIFO exception: when the aggressor's quantity is at least everything resting at the level,
  hidden included, the level fills FIFO and icebergs fill their full remaining quantity.
- ``Split(fifo_pct, top, min_alloc)``: CME algorithm K without LMM or leveling: TOP, then
  ``fifo_pct`` percent of the remaining quantity (rounded down) FIFO, then the rest pro rata
  over what orders still have open, then leftover FIFO. Same FIFO exception.

An order receiving lots in several steps of one round gets one combined allocation; a
round lists TOP first, then the other orders in time priority. Complexity per round:
O(orders at the level) for pro rata, O(orders filled) for FIFO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from exchange.book import HIDDEN, ID, QTY, Level

Allocation = list[tuple[list, int]]


class MatchingRule(Protocol):
    """Split an aggressor's quantity among one level's resting orders."""

    name: str
    uses_top: bool

    def allocate(self, level: Level, qty: int, top: list | None) -> Allocation: ...


def fifo_allocate(level: Level, qty: int) -> Allocation:
    """Time priority: fill each live order's displayed quantity in turn."""
    out: Allocation = []
    for o in level.queue:
        q = o[QTY]
        if q:
            if q >= qty:
                out.append((o, qty))
                return out
            out.append((o, q))
            qty -= q
    return out


def _fifo_exception(level: Level, qty: int) -> Allocation | None:
    """CME: an aggressor that can take the whole level (hidden too) fills it FIFO, in full."""
    if qty < level.qty + level.hidden:
        return None
    return [(o, o[QTY] + o[HIDDEN]) for o in level.queue if o[QTY]]


def pro_rata_allocate(level: Level, qty: int, top: list | None, min_alloc: int, fifo_pct: int = 0) -> Allocation:
    """TOP, then ``fifo_pct``% FIFO, then pro rata (rounded down, ``min_alloc``), then FIFO.

    Lots an order receives in several steps are combined; the result lists TOP first, then
    the other orders in time priority. One pass over the queue per step; the pro-rata pass
    skips orders too small to reach ``min_alloc`` (share >= m iff qty >= ceil(m*T/R)), and
    is skipped outright when the level's ``biggest`` bound says no order is that big.
    """
    exc = _fifo_exception(level, qty)
    if exc is not None:
        return exc
    out: Allocation = []
    total = level.qty  # displayed quantity the pro-rata step divides, TOP excluded below
    if top is not None:
        t = top[QTY]
        if t >= qty:
            return [(top, qty)]
        out.append((top, t))
        qty -= t
        total -= t
    queue = level.queue
    alloc: dict[int, int] = {}  # order id -> lots from the FIFO-split and pro-rata steps
    if fifo_pct:
        f = qty * fifo_pct // 100
        for o in queue:
            if not f:
                break
            q = o[QTY]
            if q and o is not top:
                take = q if q < f else f
                alloc[o[ID]] = take
                f -= take
                qty -= take
                total -= take
    m = min_alloc if min_alloc > 1 else 1
    qmin = -(-m * total // qty) if qty and total > 0 else 0
    if qmin and qmin <= level.biggest:  # else no order is big enough for a pro-rata share
        rate_num, rate_den = qty, total
        for o in queue:
            q = o[QTY]
            if q >= qmin and o is not top:
                prior = alloc.get(o[ID], 0) if fifo_pct else 0
                q -= prior
                if q >= qmin:
                    share = q * rate_num // rate_den
                    if share > q:
                        share = q
                    alloc[o[ID]] = prior + share
                    qty -= share
    left = qty
    for o in queue:
        q = o[QTY]
        if not q or o is top:
            continue
        lots = alloc.pop(o[ID], 0) if alloc else 0
        if left and lots < q:
            extra = q - lots if q - lots < left else left
            lots += extra
            left -= extra
        if lots:
            out.append((o, lots))
        if not left and not alloc:
            break
    return out


@dataclass(frozen=True)
class Fifo:
    """Price-time priority (NYSE)."""

    name: str = "fifo"
    uses_top: bool = False

    def allocate(self, level: Level, qty: int, top: list | None) -> Allocation:
        return fifo_allocate(level, qty)


@dataclass(frozen=True)
class ProRata:
    """CME pro rata: algorithm A with ``top=True`` (the ``cme`` preset), C without."""

    top: bool = True
    min_alloc: int = 2
    name: str = "pro_rata"

    @property
    def uses_top(self) -> bool:
        return self.top

    def allocate(self, level: Level, qty: int, top: list | None) -> Allocation:
        return pro_rata_allocate(level, qty, top if self.top else None, self.min_alloc)


@dataclass(frozen=True)
class Split:
    """CME configurable algorithm K without LMM or leveling: TOP, FIFO share, pro rata, FIFO."""

    fifo_pct: int = 40
    top: bool = True
    min_alloc: int = 2
    name: str = "split"

    def __post_init__(self) -> None:
        if not 0 <= self.fifo_pct <= 100:
            raise ValueError(f"Split.fifo_pct must be within 0..100, got {self.fifo_pct}")

    @property
    def uses_top(self) -> bool:
        return self.top

    def allocate(self, level: Level, qty: int, top: list | None) -> Allocation:
        return pro_rata_allocate(level, qty, top if self.top else None, self.min_alloc, self.fifo_pct)

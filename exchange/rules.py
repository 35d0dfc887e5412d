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

An order receiving lots in several steps of one round gets one combined allocation, placed
where it was first allocated. Complexity per round: O(orders at the level).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from exchange.book import HIDDEN, QTY, Level

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


def _pro_rata(orders: list[list], open_qty: dict[int, int], qty: int, min_alloc: int) -> dict[int, int]:
    """Pro-rata shares of ``qty`` by open quantity, rounded down, below ``min_alloc`` dropped."""
    total = sum(open_qty[id(o)] for o in orders)
    shares: dict[int, int] = {}
    if total <= 0 or qty <= 0:
        return shares
    for o in orders:
        oq = open_qty[id(o)]
        share = min(oq * qty // total, oq)
        if share >= min_alloc:
            shares[id(o)] = share
    return shares


class _Allocator:
    """Collects per-order lots in first-allocation order across the steps of one round."""

    __slots__ = ("open", "lots", "order", "left")

    def __init__(self, orders: list[list], qty: int) -> None:
        self.open = {id(o): o[QTY] for o in orders}
        self.lots: dict[int, int] = {}
        self.order: list[list] = []
        self.left = qty

    def give(self, o: list, lots: int) -> None:
        if lots <= 0:
            return
        key = id(o)
        if key not in self.lots:
            self.lots[key] = 0
            self.order.append(o)
        self.lots[key] += lots
        self.open[key] -= lots
        self.left -= lots

    def fifo(self, orders: list[list], qty: int) -> None:
        for o in orders:
            if qty <= 0:
                return
            take = min(self.open[id(o)], qty)
            self.give(o, take)
            qty -= take

    def result(self) -> Allocation:
        return [(o, self.lots[id(o)]) for o in self.order]


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
        exc = _fifo_exception(level, qty)
        if exc is not None:
            return exc
        orders = [o for o in level.queue if o[QTY]]
        a = _Allocator(orders, qty)
        if self.top and top is not None and top[QTY]:
            a.give(top, min(top[QTY], a.left))
        else:
            top = None
        rest = [o for o in orders if o is not top]
        shares = _pro_rata(rest, a.open, a.left, self.min_alloc)
        for o in rest:
            a.give(o, shares.get(id(o), 0))
        a.fifo(orders, a.left)
        return a.result()


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
        exc = _fifo_exception(level, qty)
        if exc is not None:
            return exc
        orders = [o for o in level.queue if o[QTY]]
        a = _Allocator(orders, qty)
        if self.top and top is not None and top[QTY]:
            a.give(top, min(top[QTY], a.left))
        a.fifo(orders, a.left * self.fifo_pct // 100)
        rest = [o for o in orders if a.open[id(o)] > 0]
        shares = _pro_rata(rest, a.open, a.left, self.min_alloc)
        for o in rest:
            a.give(o, shares.get(id(o), 0))
        a.fifo(orders, a.left)
        return a.result()

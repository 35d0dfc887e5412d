"""Minimal reference order book: the baseline the engine benchmark compares against.

This is the design most fast pure-Python books use: one ``SortedDict`` per side mapping
price -> ``deque`` of ``[order_id, qty]`` entries (FIFO), plus a dict order_id ->
``(side, price, entry)`` for cancels. Price-time priority only, multi-level sweeps, limit
and market orders, cancels. No validation beyond what it needs, no events, no self-match
prevention, no TOP, no icebergs: it only counts traded volume.

Cancels are eager: ``deque.remove(entry)`` (a C-level scan of one level's queue, about 27
entries on the standard stream), and an emptied level is deleted at once, so the best price
is always ``peekitem`` of a live level. This is the commonly used, honest way; lazy
deletion would need per-level live counts to know when a level is empty.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from sortedcontainers import SortedDict

from exchange.commands import Cancel
from exchange.enums import OrderType

_MARKET = OrderType.MARKET


class ReferenceBook:
    """FIFO limit order book; ``process(commands)`` returns the volume they traded."""

    __slots__ = ("bids", "asks", "orders", "volume")

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # price -> deque of [order_id, qty]; best is last
        self.asks: SortedDict = SortedDict()  # best is first
        self.orders: dict[int, tuple[int, int, list]] = {}  # order_id -> (side, price, entry)
        self.volume = 0

    def _take(self, side: int, qty: int, limit: int | None) -> int:
        """Trade up to ``qty`` against the opposite side within ``limit``; return what is left."""
        if side == 1:
            book, idx = self.asks, 0
        else:
            book, idx = self.bids, -1
        orders = self.orders
        while qty and book:
            price, queue = book.peekitem(idx)
            if limit is not None and (price - limit) * side > 0:
                break
            while queue:
                entry = queue[0]
                q = entry[1]
                if q > qty:
                    entry[1] = q - qty
                    qty = 0
                    break
                qty -= q
                queue.popleft()
                del orders[entry[0]]
                if not qty:
                    break
            if not queue:
                del book[price]
        return qty

    def limit(self, order_id: int, side: int, price: int, qty: int) -> int:
        """Enter a GTC limit order; trade what crosses, rest the rest. Returns traded lots."""
        rem = self._take(side, qty, price)
        if rem:
            book = self.bids if side == 1 else self.asks
            queue = book.get(price)
            if queue is None:
                queue = book[price] = deque()
            entry = [order_id, rem]
            queue.append(entry)
            self.orders[order_id] = (side, price, entry)
        return qty - rem

    def market(self, order_id: int, side: int, qty: int) -> int:
        """Sweep the opposite side; the unfilled rest is dropped. Returns traded lots."""
        return qty - self._take(side, qty, None)

    def cancel(self, order_id: int) -> bool:
        """Remove a resting order; False if it is not live (filled or unknown)."""
        o = self.orders.pop(order_id, None)
        if o is None:
            return False
        side, price, entry = o
        book = self.bids if side == 1 else self.asks
        queue = book[price]
        queue.remove(entry)
        if not queue:
            del book[price]
        return True

    def process(self, commands: Iterable[object]) -> int:
        """Batch entry: apply NewOrder (LIMIT/MARKET) and Cancel commands; return volume."""
        limit, market, cancel = self.limit, self.market, self.cancel
        vol = 0
        for c in commands:
            if type(c) is Cancel:
                cancel(c.order_id)
            elif c.type == _MARKET:  # type: ignore[attr-defined]
                vol += market(c.order_id, c.side, c.qty)  # type: ignore[attr-defined]
            else:
                vol += limit(c.order_id, c.side, c.price, c.qty)  # type: ignore[attr-defined]
        self.volume += vol
        return vol

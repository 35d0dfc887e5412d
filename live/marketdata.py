"""Market-data plumbing shared by the exchange's feed, the relay and the client library.

``Subscriber``: one market-data connection with a bounded queue and its own sender task.
``push`` never waits: when the queue is full (the client reads slower than the feed
moves), the backlog is dropped, further updates are dropped too, and ``on_overflow`` is
called; its owner answers with ``resync(snapshots)``, fresh ``book_snapshot`` messages
with ``reason="slow_consumer"`` that restart the stream. A slow subscriber so costs
nobody else anything, and it sees exactly where its stream restarted.

``L2Book``: a symbol's displayed book rebuilt from a snapshot and ``book_update``
messages, checking ``seq``. ``apply`` returns False on a gap (the caller asks for a
snapshot and ignores updates until it comes).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from live import protocol as P


class Subscriber:
    """A market-data connection: bounded queue, sender task, symbol filter (see module doc)."""

    def __init__(self, ws: Connection, maxlen: int, on_overflow: Callable[[Subscriber], None]) -> None:
        self.ws = ws
        self.maxlen = maxlen
        self.on_overflow = on_overflow
        self.subscribed = False
        self.authorized = False  # passed the feed token check (set by the connection handler)
        self.symbols: frozenset[str] | None = None  # None: every symbol
        self.awaiting = False  # backlog dropped; updates dropped until resync()
        self.dropped = 0  # messages dropped for slowness
        self.resyncs = 0
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def subscribe(self, symbols: Iterable[str] | None) -> None:
        self.subscribed = True
        self.symbols = None if symbols is None else frozenset(symbols)

    def wants(self, symbol: str | None) -> bool:
        return self.subscribed and (symbol is None or self.symbols is None or symbol in self.symbols)

    def push(self, data: bytes, symbol: str | None = None) -> None:
        """Queue a market-data message (never waits; see the module docstring)."""
        if not self.wants(symbol):
            return
        if self.awaiting:
            self.dropped += 1
            return
        if len(self._queue) >= self.maxlen:
            self.dropped += len(self._queue) + 1
            self._queue.clear()
            self.awaiting = True
            self.resyncs += 1
            self.on_overflow(self)
            return
        self._queue.append(data)
        self._wake.set()

    def control(self, data: bytes) -> None:
        """Queue a reply (pong, error, state...): always delivered, never dropped."""
        self._queue.append(data)
        self._wake.set()

    def resync(self, messages: Iterable[bytes]) -> None:
        """Restart the stream with these snapshots (and whatever else must lead it)."""
        self.awaiting = False
        self._queue.extend(messages)
        self._wake.set()

    def backlog(self) -> int:
        return len(self._queue)

    async def _run(self) -> None:
        queue, wake, send = self._queue, self._wake, self.ws.send
        try:
            while True:
                await wake.wait()
                wake.clear()
                while queue:
                    await send(queue.popleft(), text=True)
        except ConnectionClosed:
            pass

    def close(self) -> None:
        self._task.cancel()


class L2Book:
    """A symbol's displayed book from the feed: levels by price, the last seq applied."""

    __slots__ = ("symbol", "seq", "bids", "asks", "last_price")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.seq: int | None = None  # None until a snapshot arrived
        self.bids: dict[int, tuple[int, int]] = {}  # price -> (qty, count)
        self.asks: dict[int, tuple[int, int]] = {}
        self.last_price: int | None = None

    def reset(self, snap: P.BookSnapshot) -> None:
        self.seq = snap.seq
        self.bids = {lv.price: (lv.qty, lv.count) for lv in snap.bids}
        self.asks = {lv.price: (lv.qty, lv.count) for lv in snap.asks}
        self.last_price = snap.last_price

    def apply(self, msg: P.BookUpdate | P.Trade | P.Liquidation) -> bool:
        """Apply the next sequenced message; False (and nothing applied) on a gap.

        Messages at or before the current ``seq`` (already in a snapshot) are skipped."""
        if self.seq is None:
            return False
        if msg.seq <= self.seq:
            return True
        if msg.seq != self.seq + 1:
            return False
        self.seq = msg.seq
        t = type(msg)
        if t is P.BookUpdate:
            for c in msg.changes:  # type: ignore[union-attr]
                levels = self.bids if c.side == 1 else self.asks
                if c.qty:
                    levels[c.price] = (c.qty, c.count)
                else:
                    levels.pop(c.price, None)
        elif t is P.Trade:
            self.last_price = msg.price  # type: ignore[union-attr]
        return True

    def best_bid(self) -> int | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> int | None:
        return min(self.asks) if self.asks else None

    def snapshot(self, reason: str, ts: int, req: int | None = None) -> P.BookSnapshot:
        """This book as a ``book_snapshot`` message (the relay serves these)."""
        return P.BookSnapshot(
            symbol=self.symbol,
            seq=self.seq or 0,
            bids=[P.Level(p, q, n) for p, (q, n) in sorted(self.bids.items(), reverse=True)],
            asks=[P.Level(p, q, n) for p, (q, n) in sorted(self.asks.items())],
            last_price=self.last_price,
            reason=reason,  # type: ignore[arg-type]
            ts=ts,
            req=req,
        )

    def levels(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """(bids, asks) as (price, qty, count), best first, like ``OrderBook.l2``."""
        return (
            [(p, q, n) for p, (q, n) in sorted(self.bids.items(), reverse=True)],
            [(p, q, n) for p, (q, n) in sorted(self.asks.items())],
        )


SEQUENCED = (P.BookUpdate, P.Trade, P.Liquidation)

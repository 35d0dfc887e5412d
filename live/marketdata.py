"""Market-data plumbing shared by the exchange's feed, the relay and the client library.

``FrameWriter``: a connection's outgoing messages, written once per event-loop tick: all
the messages queued for the connection during one tick go out as consecutive WebSocket
text frames (one message per frame, as the protocol says) with a single ``write``, so a
reply and the fills it caused cost one system call and no task switch. While the peer
reads slower than the socket drains (the transport is paused), messages stay queued, in
order; the subclass decides when a queue is too long. The server's trading ``Session``
and ``Subscriber`` are the two kinds.

``Subscriber``: one market-data connection, a ``FrameWriter`` with a bounded queue.
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
import gc
from collections import deque
from collections.abc import Callable, Iterable

from websockets.asyncio.connection import Connection
from websockets.protocol import State

from live import protocol as P


GC_THRESHOLD = (10_000, 20, 20)


def tune_gc() -> None:
    """Garbage-collector settings for a long-running live process, called once it is set up.

    Everything built so far (modules, a replayed venue) is frozen out of every future
    collection, and collections run about 14 times less often than by default. Measured
    on ``bench.live`` (50 connections, 10k orders/s, then full speed, 6 s): collector time
    in the server 430 ms -> 83 ms, the longest pause 13 ms -> 7 ms; the pauses were a
    large part of the p99 latency. The live processes make few reference cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def write_frames(ws: Connection, messages: Iterable[bytes]) -> bool:
    """Write ``messages`` (UTF-8 JSON) as consecutive text frames with one ``transport.write``.

    Uses the connection's Sans-I/O ``protocol`` directly, as ``Connection.send`` does one
    message at a time. False, and nothing written, if the connection is no longer open."""
    protocol = ws.protocol
    if protocol.state is not State.OPEN:
        return False
    send_text = protocol.send_text
    for data in messages:
        send_text(data)
    chunks = protocol.data_to_send()  # only frames while OPEN (b"" would mean end of stream)
    ws.transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
    return True


class FrameWriter:
    """A connection's outgoing messages, written at the end of each loop tick (module doc).

    ``_enqueue`` never waits; ``flush`` writes what is queued now (the server calls it
    before closing a connection, so nothing queued is overtaken by the close)."""

    def __init__(self, ws: Connection) -> None:
        self.ws = ws
        self.closed = False  # write nothing more
        self._queue: deque[bytes] = deque()
        self._loop = asyncio.get_running_loop()
        self._scheduled = False
        self._draining: asyncio.Task | None = None  # waiting for a paused transport

    def _enqueue(self, data: bytes, later: bool = False) -> bool:
        """Queue ``data``. If that makes the queue due for a write: schedule ``flush`` at the
        end of the tick, or, with ``later``, return True (the caller calls ``flush``)."""
        self._queue.append(data)
        if self._scheduled or self._draining is not None:
            return False
        self._scheduled = True
        if later:
            return True
        self._loop.call_soon(self.flush)
        return False

    def flush(self) -> None:
        """Write everything queued, unless the peer is behind (then once the socket drains)."""
        self._scheduled = False
        queue = self._queue
        if self.closed or not queue or self._draining is not None:
            return
        if self.ws.paused:  # the transport's buffer is over its high-water mark
            self._draining = self._loop.create_task(self._drain())
            return
        messages = list(queue)
        queue.clear()
        if not write_frames(self.ws, messages):
            self.closed = True  # closing: its handler sees ConnectionClosed and cleans up

    async def _drain(self) -> None:
        try:
            await self.ws.drain()
        except Exception:  # noqa: BLE001 - the connection is gone; its handler cleans up
            self.closed = True
        finally:
            self._draining = None
        self.flush()

    def backlog(self) -> int:
        """Messages queued and not yet written."""
        return len(self._queue)

    def close(self) -> None:
        self.closed = True
        self._queue.clear()
        if self._draining is not None:
            self._draining.cancel()


class Subscriber(FrameWriter):
    """A market-data connection: bounded queue, symbol filter (see the module docstring)."""

    def __init__(self, ws: Connection, maxlen: int, on_overflow: Callable[[Subscriber], None]) -> None:
        super().__init__(ws)
        self.maxlen = maxlen
        self.on_overflow = on_overflow
        self.subscribed = False
        self.authorized = False  # passed the feed token check (set by the connection handler)
        self.symbols: frozenset[str] | None = None  # None: every symbol
        self.awaiting = False  # backlog dropped; updates dropped until resync()
        self.dropped = 0  # messages dropped for slowness
        self.resyncs = 0

    def subscribe(self, symbols: Iterable[str] | None) -> None:
        self.subscribed = True
        self.symbols = None if symbols is None else frozenset(symbols)

    def wants(self, symbol: str | None) -> bool:
        return self.subscribed and (symbol is None or self.symbols is None or symbol in self.symbols)

    def push(self, data: bytes, symbol: str | None = None, later: bool = False) -> bool:
        """Queue a market-data message (never waits; see the module docstring). True if the
        caller must ``flush`` (only with ``later``, as ``FrameWriter._enqueue``)."""
        if not self.wants(symbol):
            return False
        if self.awaiting:
            self.dropped += 1
            return False
        if len(self._queue) >= self.maxlen:
            self.dropped += len(self._queue) + 1
            self._queue.clear()
            self.awaiting = True
            self.resyncs += 1
            self.on_overflow(self)
            return False
        return self._enqueue(data, later)

    def control(self, data: bytes) -> None:
        """Queue a reply (pong, error, state...): always delivered, never dropped."""
        self._enqueue(data)

    def resync(self, messages: Iterable[bytes]) -> None:
        """Restart the stream with these snapshots (and whatever else must lead it)."""
        self.awaiting = False
        for data in messages:
            self._enqueue(data)


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

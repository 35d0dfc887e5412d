"""The market-data relay: one subscription to the exchange, fanned out to many clients.

    python -m live.relay [--upstream ws://127.0.0.1:8765] [--host 127.0.0.1] [--port 8766]
                         [--queue 2000] [--client-buffer BYTES] [--feed-token TOKEN]

The relay subscribes to the exchange's read-only ``/feed`` (all symbols) and serves the
same feed protocol on its own port (any path): ``subscribe``, ``snapshot``, ``ping``.
Messages are forwarded byte for byte, so ``seq`` numbers are the exchange's and a client
checks them end to end. The relay keeps no state of its own that could go stale: only
the latest book per symbol, rebuilt from the feed (``L2Book``), to answer ``subscribe``
and ``snapshot`` with a ``book_snapshot``, plus the last ``performance`` message.

Read-only by construction: the relay never holds a trading token, its decoder knows no
trading message, and a client frame that tries to trade gets ``error`` read_only.

Slow clients. Each client has a bounded queue (``--queue`` messages) behind its socket's
buffers (``--client-buffer`` bytes caps those; by default the OS may buffer megabytes).
When the queue is full the client's backlog is dropped and it gets fresh snapshots with
``reason="slow_consumer"``; nobody else waits (``live.marketdata.Subscriber``).

Exchange restarts. On losing the exchange the relay tells its clients (``status``
disconnected) and reconnects with exponential backoff (0.1 s doubling to 2 s); when it is
back it sends ``status`` connected, a fresh ``subscribed`` (instruments) and snapshots with
``reason="upstream_reconnect"``, from which clients continue. A journaled exchange comes
back with the same sequence numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from live import protocol as P
from live.marketdata import SEQUENCED, L2Book, Subscriber, tune_gc
from live.limits import TokenBucket

log = logging.getLogger("live.relay")


class Relay:
    """The relay process's state and tasks (see the module docstring)."""

    def __init__(
        self,
        upstream: str,
        host: str = "127.0.0.1",
        port: int = 8766,
        *,
        queue: int = 2_000,
        feed_token: str | None = None,
        max_message_bytes: int = 4_096,
        max_frame_bytes: int = 65_536,
        rate: float = 200.0,
        burst: int = 100,
        backoff: tuple[float, float] = (0.1, 2.0),
        client_buffer: int | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/") + ("" if upstream.rstrip("/").endswith("/feed") else "/feed")
        self.host = host
        self.port = port
        self.queue = queue
        self.feed_token = feed_token
        self.max_message_bytes = max_message_bytes
        self.max_frame_bytes = max_frame_bytes
        self.rate, self.burst = rate, burst
        self.backoff = backoff
        self.client_buffer = client_buffer  # bytes buffered per client (kernel + websockets); None: defaults
        self.books: dict[str, L2Book] = {}
        self.instruments: list[P.Instrument] = []
        self.subscribers: set[Subscriber] = set()
        self.connected = False
        self.connects = 0  # successful upstream connections
        self.forwarded = 0
        self._last_performance: bytes | None = None
        self._awaiting: set[str] = set()  # upstream gap: symbol waits for an upstream snapshot
        self._upstream_ws = None
        self._server: Server | None = None
        self._task: asyncio.Task | None = None
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        self._server = await serve(
            self._handler, self.host, self.port, compression=None, max_size=self.max_frame_bytes, close_timeout=2,
            write_limit=self.client_buffer if self.client_buffer is not None else 32_768,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._task = asyncio.create_task(self._upstream_loop(), name="upstream")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.stopped.set()

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # ---- upstream -----------------------------------------------------------------------------
    async def _upstream_loop(self) -> None:
        delay = self.backoff[0]
        while True:
            try:
                async with connect(self.upstream, compression=None, proxy=None, open_timeout=5, max_size=2**24) as ws:
                    self._upstream_ws = ws
                    await ws.send(P.encode(P.Subscribe(token=self.feed_token)), text=True)
                    n = 0
                    async for raw in ws:
                        msg = P.decode_server(raw)
                        if type(msg) is P.Subscribed:
                            delay = self.backoff[0]
                        self._on_upstream(msg, raw if isinstance(raw, bytes) else raw.encode())
                        n += 1
                        if not n % 16:  # let the senders drain: a burst is not a slow client
                            await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError, P.ProtocolError) as exc:
                log.info("exchange feed %s unavailable (%s); retrying in %.1f s", self.upstream, type(exc).__name__, delay)
            finally:
                self._upstream_ws = None
                if self.connected:
                    self.connected = False
                    self._broadcast(P.encode(P.Status(upstream="disconnected", ts=time.time_ns())))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    def _on_upstream(self, msg: P.ServerMessage, raw: bytes) -> None:
        t = type(msg)
        if t in SEQUENCED:
            symbol = msg.symbol  # type: ignore[union-attr]
            book = self.books.get(symbol)
            if symbol in self._awaiting or book is None:
                return
            if not book.apply(msg):  # type: ignore[arg-type]
                log.warning("gap on the exchange feed for %s; asking for a snapshot", symbol)
                self._awaiting.add(symbol)
                if self._upstream_ws is not None:
                    asyncio.ensure_future(self._upstream_ws.send(P.encode(P.SnapshotRequest(symbol=symbol)), text=True))
                return
            self._fanout(raw, symbol)
        elif t is P.BookSnapshot:
            book = self.books.setdefault(msg.symbol, L2Book(msg.symbol))  # type: ignore[union-attr]
            book.reset(msg)  # type: ignore[arg-type]
            self._awaiting.discard(msg.symbol)  # type: ignore[union-attr]
            if msg.reason == "subscribe":  # type: ignore[union-attr]
                raw = P.encode(book.snapshot("upstream_reconnect", msg.ts))  # type: ignore[union-attr]
            for sub in self.subscribers:
                if sub.wants(msg.symbol):  # type: ignore[union-attr]
                    sub.resync([raw])
        elif t is P.Performance:
            self._last_performance = raw
            self._fanout(raw, None)
        elif t is P.Heartbeat:
            self._fanout(raw, None)
        elif t is P.Subscribed:
            self.instruments = msg.instruments  # type: ignore[union-attr]
            for s in msg.symbols:  # type: ignore[union-attr]
                self.books.setdefault(s, L2Book(s))
            self.connected = True
            self.connects += 1
            log.info("connected to the exchange feed %s (%d symbols)", self.upstream, len(msg.symbols))  # type: ignore[union-attr]
            now = time.time_ns()
            status = P.encode(P.Status(upstream="connected", ts=now))
            for sub in self.subscribers:
                if sub.subscribed:
                    sub.control(status)
                    sub.control(P.encode(P.Subscribed(symbols=self._symbols_of(sub), instruments=self.instruments, ts=now)))
        elif t is P.Error:
            log.warning("exchange feed error: %s %s", msg.code, msg.message)  # type: ignore[union-attr]

    def _fanout(self, raw: bytes, symbol: str | None) -> None:
        self.forwarded += 1
        for sub in self.subscribers:
            sub.push(raw, symbol)

    def _broadcast(self, data: bytes) -> None:
        for sub in self.subscribers:
            if sub.subscribed:
                sub.control(data)

    # ---- subscribers --------------------------------------------------------------------------
    def _symbols_of(self, sub: Subscriber) -> list[str]:
        return [s for s in self.books if sub.wants(s)]

    def _snapshots(self, sub: Subscriber, reason: str, req: int | None = None) -> list[bytes]:
        now = time.time_ns()
        return [P.encode(self.books[s].snapshot(reason, now, req)) for s in self._symbols_of(sub) if self.books[s].seq is not None]

    def _overflow(self, sub: Subscriber) -> None:
        log.info("subscriber %s too slow: backlog dropped, re-snapshot", sub.ws.remote_address)
        sub.resync(self._snapshots(sub, "slow_consumer"))

    async def _handler(self, ws: ServerConnection) -> None:
        if self.client_buffer is not None:
            sock = ws.transport.get_extra_info("socket")
            if sock is not None:  # a small kernel buffer: a stuck client is noticed sooner
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.client_buffer)
        sub = Subscriber(ws, self.queue, self._overflow)
        bucket = TokenBucket(self.rate, self.burst)
        try:
            while True:
                raw = await ws.recv(decode=False)
                if not bucket.take():
                    sub.control(P.encode(P.Error(code=P.ErrorCode.RATE_LIMITED, message="too many messages; dropped")))
                    continue
                if len(raw) > self.max_message_bytes:
                    sub.control(P.encode(P.Error(code=P.ErrorCode.MESSAGE_TOO_LARGE, message=f"{len(raw)} bytes > {self.max_message_bytes}")))
                    continue
                try:
                    msg = P.decode_feed(raw)
                except P.ProtocolError as exc:
                    sub.control(P.encode(P.Error(code=exc.code, message=exc.message, req=exc.req)))
                    continue
                self._on_request(sub, msg)
        except ConnectionClosed:
            pass
        finally:
            self.subscribers.discard(sub)
            sub.close()

    def _on_request(self, sub: Subscriber, msg: P.FeedRequest) -> None:
        t, req = type(msg), msg.req
        if t is P.Ping:
            sub.control(P.encode(P.Pong(ts=time.time_ns(), req=req)))
        elif t is P.Subscribe:
            symbols = msg.symbols  # type: ignore[union-attr]
            unknown = sorted(set(symbols or ()) - set(self.books)) if self.books else []
            if unknown:
                sub.control(P.encode(P.Error(code=P.ErrorCode.UNKNOWN_SYMBOL, message=f"unknown symbols {unknown}", req=req)))
                return
            sub.subscribe(symbols)
            self.subscribers.add(sub)
            now = time.time_ns()
            head = [
                P.encode(P.Subscribed(symbols=self._symbols_of(sub) or list(symbols or ()), instruments=self.instruments, ts=now, req=req)),
                P.encode(P.Status(upstream="connected" if self.connected else "disconnected", ts=now)),
                *self._snapshots(sub, "subscribe"),
            ]
            if self._last_performance is not None:
                head.append(self._last_performance)
            sub.resync(head)
        elif t is P.SnapshotRequest:
            symbol = msg.symbol  # type: ignore[union-attr]
            if not sub.wants(symbol):
                sub.control(P.encode(P.Error(code=P.ErrorCode.NOT_SUBSCRIBED, message=f"not subscribed to {symbol!r}", req=req)))
            elif symbol not in self.books:
                sub.control(P.encode(P.Error(code=P.ErrorCode.UNKNOWN_SYMBOL, message=f"unknown symbol {symbol!r}", req=req)))
            elif self.books[symbol].seq is not None and symbol not in self._awaiting:
                sub.control(P.encode(self.books[symbol].snapshot("request", time.time_ns(), req)))
            # else: the snapshot goes to every subscriber as soon as the exchange sends it
        else:
            sub.control(P.encode(P.Error(code=P.ErrorCode.UNSUPPORTED, message="get_state is served by the exchange's /feed, not the relay", req=req)))


async def run(relay: Relay) -> None:
    await relay.start()
    tune_gc()
    print(f"live.relay listening on {relay.url} (exchange feed {relay.upstream})", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(relay.stop()))
    await relay.stopped.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m live.relay", description="Market-data relay for the live exchange.")
    parser.add_argument("--upstream", default="ws://127.0.0.1:8765", help="the exchange (its /feed is used)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0: any free port")
    parser.add_argument("--queue", type=int, default=2_000, help="messages queued per client before it is re-snapshotted")
    parser.add_argument("--feed-token", help="the exchange's feed token, if it has one")
    parser.add_argument("--client-buffer", type=int, help="bytes of socket and write buffer per client (default: OS and websockets defaults)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    relay = Relay(args.upstream, args.host, args.port, queue=args.queue, feed_token=args.feed_token, client_buffer=args.client_buffer)
    asyncio.run(run(relay))


if __name__ == "__main__":
    main()

"""A small asyncio client for the live exchange: a trader connection and a feed subscriber.

    async with await TraderClient.connect("ws://127.0.0.1:8765", "alice-demo-token") as alice:
        ack = await alice.new_order("XYZ", "buy", 10, price=10_000, client_id=1)
        if isinstance(ack, P.Accepted):
            fill = await alice.next_event(P.Fill, timeout=5)

    async with await FeedClient.connect("ws://127.0.0.1:8766") as feed:   # the relay (or /feed)
        await feed.wait_for(lambda f: f.books["XYZ"].best_bid() is not None)

``TraderClient.request`` sends a message with a fresh ``req`` and returns the message that
answers it (``accepted``/``rejected``/``cancelled``/``modified``/``mass_cancelled``/
``account``/``pong``/``error``). Every other message (fills, cancels of IOC remainders,
events of orders sent with ``send``) goes to the ``events`` queue, in arrival order.
Incoming frames are validated against ``live.protocol`` (schema-first on both sides).

``FeedClient`` keeps an ``L2Book`` per symbol from snapshots and sequenced updates. On a
gap (a ``seq`` that is not the next one, or a heartbeat showing messages it never got) it
asks for a snapshot and ignores that symbol's updates until the snapshot arrives; it
counts ``gaps`` and ``resyncs`` (snapshots it did not ask for, e.g. after it was too slow).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from live import protocol as P
from live.marketdata import SEQUENCED, L2Book

log = logging.getLogger(__name__)
M = TypeVar("M")


class AuthError(Exception):
    """The server refused the login (``error`` auth_failed)."""


async def _open(url: str, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("max_size", 2**22)
    return await connect(url, compression=None, proxy=None, open_timeout=5, **kwargs)


class TraderClient:
    """One trader's connection (see the module docstring). Use ``await TraderClient.connect``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.welcome: P.Welcome | None = None
        self.events: asyncio.Queue[P.ServerMessage] = asyncio.Queue()
        self.received = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._req = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, token: str | None = None, **kwargs: Any) -> TraderClient:
        """Open a trading connection to ``url`` and log in with ``token`` (if given)."""
        client = cls(await _open(url, **kwargs))
        if token is not None:
            reply = await client.request(P.Login(token=token))
            if not isinstance(reply, P.Welcome):
                await client.close()
                raise AuthError(getattr(reply, "message", repr(reply)))
            client.welcome = reply
        return client

    async def _read(self) -> None:
        decode, pending, events = P.decode_server, self._pending, self.events
        try:
            async for raw in self.ws:
                msg = decode(raw)
                self.received += 1
                req = getattr(msg, "req", None)
                fut = pending.pop(req, None) if req is not None else None
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                else:
                    events.put_nowait(msg)
        except ConnectionClosed:
            pass
        finally:
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            pending.clear()

    async def request(self, msg: Any, timeout: float | None = 10) -> P.ServerMessage:
        """Send ``msg`` with a new ``req`` and wait for its reply."""
        req = next(self._req)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        try:
            await self.ws.send(P.encode(_with_req(msg, req)), text=True)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(req, None)

    async def send(self, msg: Any) -> None:
        """Send without waiting for a reply (it arrives on ``events``)."""
        await self.ws.send(P.encode(msg), text=True)

    async def send_raw(self, data: str | bytes) -> None:
        """Send a frame as is (tests of malformed input)."""
        await self.ws.send(data)

    async def new_order(self, symbol: str, side: str, qty: int, price: int | None = None, **fields: Any) -> P.ServerMessage:
        return await self.request(P.NewOrderRequest(symbol=symbol, side=side, qty=qty, price=price, **fields))  # type: ignore[arg-type]

    async def cancel(self, order_id: int) -> P.ServerMessage:
        return await self.request(P.CancelRequest(order_id=order_id))

    async def modify(self, order_id: int, qty: int, price: int | None = None) -> P.ServerMessage:
        return await self.request(P.ModifyRequest(order_id=order_id, qty=qty, price=price))

    async def mass_cancel(self, symbol: str | None = None) -> P.ServerMessage:
        return await self.request(P.MassCancelRequest(symbol=symbol))

    async def account(self) -> P.Account:
        reply = await self.request(P.GetAccount())
        assert isinstance(reply, P.Account), reply
        return reply

    async def ping(self) -> P.ServerMessage:
        return await self.request(P.Ping())

    async def next_event(self, kind: type[M] | tuple[type, ...] | None = None, timeout: float = 5) -> M:
        """The next message on ``events`` (of ``kind``, skipping others)."""
        async def take() -> Any:
            while True:
                msg = await self.events.get()
                if kind is None or isinstance(msg, kind):
                    return msg
        return await asyncio.wait_for(take(), timeout)

    def drain_events(self) -> list[P.ServerMessage]:
        """Everything on ``events`` now, without waiting."""
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    @property
    def closed(self) -> bool:
        """True once the connection is closed (by either side)."""
        return self._reader.done()

    async def wait_closed(self, timeout: float | None = None) -> int | None:
        """Wait until the server closes the connection; return its close code."""
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def __aenter__(self) -> TraderClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _with_req(msg: Any, req: int) -> Any:
    return msgspec.structs.replace(msg, req=req)


class FeedClient:
    """A market-data subscriber that keeps books and re-snapshots on gaps (module docstring).

    With ``reconnect=True`` it reconnects (0.1 s backoff doubling to 2 s) whenever the
    connection drops, resubscribes, and rebuilds its books from the new snapshots;
    ``connected`` tells the state, ``reconnects`` counts them.

    ``on_message(client, msg)``, if given, is called for every message as it arrives, after
    the client's books and counters took it (so ``client.books`` is current); an exception
    it raises is logged and the feed goes on."""

    def __init__(
        self,
        url: str,
        symbols: list[str] | None = None,
        token: str | None = None,
        *,
        reconnect: bool = False,
        keep: int = 10_000,
        on_message: Callable[[FeedClient, P.ServerMessage], None] | None = None,
    ) -> None:
        self.url = url
        self.on_message = on_message
        self.symbols = symbols
        self.token = token
        self.reconnect = reconnect
        self.ws: ClientConnection | None = None
        self.books: dict[str, L2Book] = {}
        self.instruments: dict[str, P.Instrument] = {}
        self.performance: P.Performance | None = None
        self.trades: deque[P.Trade] = deque(maxlen=keep)
        self.messages: deque[P.ServerMessage] = deque(maxlen=keep)  # everything, newest last
        self.errors: list[P.Error] = []
        self.upstream: str | None = None  # relay status, None from the exchange itself
        self.connected = False
        self.reconnects = 0
        self.gaps = 0  # gaps detected (each answered by a snapshot request)
        self.resyncs = 0  # snapshots pushed by the server after dropping our backlog or reconnecting
        self.snapshots = 0
        self.received = 0
        self.subscribed = asyncio.Event()
        self._awaiting: set[str] = set()
        self._changed = asyncio.Event()
        self._req = itertools.count(1)
        self._closing = False
        self._reader: asyncio.Task | None = None

    @classmethod
    async def connect(
        cls, url: str, symbols: list[str] | None = None, token: str | None = None, *, reconnect: bool = False, wait: bool = True, **kwargs: Any
    ) -> FeedClient:
        """Subscribe to ``url`` (the relay, or the exchange's ``/feed``)."""
        client = cls(url, symbols, token, reconnect=reconnect, **kwargs)
        ws = await _open(url)
        client._reader = asyncio.create_task(client._run(ws))
        if wait:
            await client.wait_for(lambda c: c.ready(), 10)
        return client

    def ready(self) -> bool:
        """Subscribed, and every book has its snapshot (or the relay has no exchange yet)."""
        if not self.subscribed.is_set():
            return False
        return self.upstream == "disconnected" or all(self.in_sync(s) for s in self.books)

    async def _run(self, ws: ClientConnection | None) -> None:
        delay = 0.1
        while True:
            try:
                if ws is None:
                    ws = await _open(self.url)
                    self.reconnects += 1
                    delay = 0.1
                self.ws = ws
                self.connected = True
                self._awaiting.clear()
                await ws.send(P.encode(P.Subscribe(symbols=self.symbols, token=self.token, req=next(self._req))), text=True)
                async for raw in ws:
                    msg = P.decode_server(raw)
                    self._on(msg)
                    if self.on_message is not None:
                        try:
                            self.on_message(self, msg)
                        except Exception:  # a bug in the hook must not stop the feed
                            log.exception("FeedClient.on_message failed on %s", type(msg).__name__)
                    self._changed.set()
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                pass
            finally:
                self.connected = False
                self.subscribed.clear()
                self.ws = ws = None
                self._changed.set()
            if not self.reconnect or self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _on(self, msg: P.ServerMessage) -> None:
        self.received += 1
        self.messages.append(msg)
        t = type(msg)
        if t in SEQUENCED:
            symbol = msg.symbol  # type: ignore[union-attr]
            if symbol in self._awaiting:
                return
            book = self.books.get(symbol)
            if book is None or not book.apply(msg):  # type: ignore[arg-type]
                self._gap(symbol)
            elif t is P.Trade:
                self.trades.append(msg)  # type: ignore[arg-type]
        elif t is P.BookSnapshot:
            book = self.books.setdefault(msg.symbol, L2Book(msg.symbol))  # type: ignore[union-attr]
            book.reset(msg)  # type: ignore[arg-type]
            self._awaiting.discard(msg.symbol)  # type: ignore[union-attr]
            self.snapshots += 1
            if msg.reason in ("slow_consumer", "upstream_reconnect"):  # type: ignore[union-attr]
                self.resyncs += 1
        elif t is P.Heartbeat:
            for symbol, seq in msg.seqs.items():  # type: ignore[union-attr]
                book = self.books.get(symbol)
                if book is not None and symbol not in self._awaiting and book.seq is not None and seq > book.seq:
                    self._gap(symbol)  # we missed the tail before this heartbeat
        elif t is P.Performance:
            self.performance = msg  # type: ignore[assignment]
        elif t is P.Subscribed:
            self.instruments = {i.symbol: i for i in msg.instruments}  # type: ignore[union-attr]
            for symbol in msg.symbols:  # type: ignore[union-attr]
                self.books.setdefault(symbol, L2Book(symbol))
            self.subscribed.set()
        elif t is P.Status:
            self.upstream = msg.upstream  # type: ignore[union-attr]
        elif t is P.Error:
            self.errors.append(msg)  # type: ignore[arg-type]

    def _gap(self, symbol: str) -> None:
        self.gaps += 1
        self._awaiting.add(symbol)
        msg = P.SnapshotRequest(symbol=symbol, req=next(self._req))
        asyncio.ensure_future(self._send_quietly(P.encode(msg)))

    async def _send_quietly(self, data: bytes) -> None:
        try:
            if self.ws is not None:
                await self.ws.send(data, text=True)
        except ConnectionClosed:
            pass

    async def send(self, msg: Any) -> None:
        assert self.ws is not None, "not connected"
        await self.ws.send(P.encode(msg), text=True)

    async def send_raw(self, data: str | bytes) -> None:
        assert self.ws is not None, "not connected"
        await self.ws.send(data)

    async def wait_for(self, predicate: Callable[[FeedClient], bool], timeout: float = 10) -> None:
        """Wait until ``predicate(self)`` holds (checked after every message)."""
        async def loop() -> None:
            while not predicate(self):
                if self._reader is not None and self._reader.done():
                    raise ConnectionError("feed connection closed")
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(loop(), timeout)

    def in_sync(self, symbol: str) -> bool:
        return symbol not in self._awaiting and self.books.get(symbol) is not None and self.books[symbol].seq is not None

    async def close(self) -> None:
        self._closing = True
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def __aenter__(self) -> FeedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def fetch_state(url: str, token: str | None = None, timeout: float = 10) -> P.State:
    """The exchange's ``state`` (book hashes, sequence numbers, accounts) from its ``/feed``.

    ``url`` is the exchange's base URL (``ws://host:port``) or its feed URL."""
    feed = url.rstrip("/") if url.rstrip("/").endswith("/feed") else url.rstrip("/") + "/feed"
    async with await _open(feed) as ws:
        if token is not None:
            await ws.send(P.encode(P.Subscribe(symbols=[], token=token)), text=True)
        await ws.send(P.encode(P.GetState(req=1)), text=True)
        async def answer() -> P.State:
            async for raw in ws:
                msg = P.decode_server(raw)
                if isinstance(msg, P.State):
                    return msg
                if isinstance(msg, P.Error):
                    raise RuntimeError(f"get_state refused: {msg.code} {msg.message}")
            raise ConnectionError("closed before the state arrived")
        return await asyncio.wait_for(answer(), timeout)

"""The market-data relay as a real process between the exchange and its subscribers.

Fan-out with the exchange's own sequence numbers, read-only by construction, gap
detection and re-snapshots, a slow subscriber that stalls nobody, a relay restart, and an
exchange crash and restart behind the relay.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from live_helpers import TOKENS, Proc, live_config, start_relay, start_server
from websockets.asyncio.client import connect
from websockets.protocol import Protocol, Side, State

from live import protocol as P
from live.client import FeedClient, TraderClient, fetch_state
from live.marketdata import L2Book, Subscriber


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Proc:
    tmp = tmp_path_factory.mktemp("live-relay")
    proc = start_server(tmp, live_config(tmp, csv_dir=None, performance_ms=100))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def relay(exchange: Proc, tmp_path_factory: pytest.TempPathFactory) -> Proc:
    proc = start_relay(exchange.url, tmp_path_factory.mktemp("relay"))
    yield proc
    proc.stop()


def same_book(a: L2Book, b: L2Book) -> bool:
    return (a.seq, a.bids, a.asks, a.last_price) == (b.seq, b.bids, b.asks, b.last_price)


async def test_relay_fans_out_the_exchange_feed(exchange: Proc, relay: Proc) -> None:
    direct = await FeedClient.connect(exchange.url + "/feed")
    subs = [await FeedClient.connect(relay.url) for _ in range(2)]
    assert all(s.upstream == "connected" and set(s.instruments) == {"XYZ", "ES"} for s in subs)
    async with await TraderClient.connect(exchange.url, TOKENS[1]) as a, await TraderClient.connect(exchange.url, TOKENS[2]) as b:
        await a.new_order("XYZ", "sell", 7, price=10_010)
        await a.new_order("ES", "sell", 3, price=500_100)
        await b.new_order("XYZ", "buy", 2, price=10_010)
        await b.new_order("ES", "buy", 1, price=500_100)
        for sym in ("XYZ", "ES"):
            await direct.wait_for(lambda f, s=sym: f.books[s].last_price is not None and f.in_sync(s))
            for sub in subs:
                await sub.wait_for(lambda f, s=sym: f.books[s].seq == direct.books[s].seq)
                assert same_book(sub.books[sym], direct.books[sym])
        for sub in subs:  # per-trader performance reaches relay subscribers too
            await sub.wait_for(lambda f: f.performance is not None and any(t.volume for t in f.performance.traders))
            assert sub.gaps == 0
        await a.mass_cancel()
        await b.mass_cancel()
    for client in (direct, *subs):
        await client.close()


async def test_relay_is_read_only(relay: Proc) -> None:
    sub = await FeedClient.connect(relay.url)
    frames = [
        (P.encode(P.NewOrderRequest(symbol="XYZ", side="buy", qty=1, price=9_000)), P.ErrorCode.READ_ONLY),
        (P.encode(P.CancelRequest(order_id=1)), P.ErrorCode.READ_ONLY),
        (P.encode(P.Login(token=TOKENS[1])), P.ErrorCode.READ_ONLY),
        (P.encode(P.GetState()), P.ErrorCode.UNSUPPORTED),
        (b"\xff\xfe", P.ErrorCode.BAD_JSON),
        (b'{"type":"snapshot"}', P.ErrorCode.MISSING_FIELD),
        (b'{"type":"subscribe","symbols":["NOPE"]}', P.ErrorCode.UNKNOWN_SYMBOL),
    ]
    for frame, code in frames:
        await sub.send_raw(frame)
        await sub.wait_for(lambda f, n=len(sub.errors): len(f.errors) > n)
        assert sub.errors[-1].code == code
    await sub.send(P.SnapshotRequest(symbol="XYZ", req=3))
    await sub.wait_for(lambda f: any(isinstance(m, P.BookSnapshot) and m.req == 3 for m in f.messages))
    await sub.close()


async def test_slow_subscriber_is_resnapshotted_and_stalls_nobody(exchange: Proc, tmp_path: Path) -> None:
    # a queue that holds a burst (400 updates), small socket buffers: a stuck client overflows soon
    small = start_relay(exchange.url, tmp_path, "--queue", "500", "--client-buffer", "4096", name="small-relay")
    try:
        fast = await FeedClient.connect(small.url, ["XYZ"])
        await fast.wait_for(lambda f: f.upstream == "connected" and f.ready())
        resyncs = fast.resyncs  # 1 if it subscribed before the relay reached the exchange
        sock = socket.create_connection(("127.0.0.1", small.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)  # no megabytes of kernel buffer
        slow = await connect(small.url, sock=sock, compression=None, proxy=None, max_queue=1, close_timeout=0.2)
        await slow.send(P.encode(P.Subscribe(symbols=["XYZ"])))
        async with await TraderClient.connect(exchange.url, TOKENS[6]) as t:
            for round_ in range(5):
                for i in range(400):  # pipelined: 400 book updates per round, a mass cancel
                    await t.send(P.NewOrderRequest(symbol="XYZ", side="buy", qty=1 + round_, price=9_100 + i))
                await t.mass_cancel()
            final = await t.new_order("XYZ", "buy", 1, price=9_050)
            assert isinstance(final, P.Accepted)
            # the fast subscriber kept up with everything, the slow one stalled nobody
            await fast.wait_for(lambda f: f.books["XYZ"].bids.get(9_050) == (1, 1), timeout=20)
            assert fast.gaps == 0 and fast.resyncs == resyncs
            # now the slow one reads: its backlog was dropped and it was re-snapshotted
            book, reasons = L2Book("XYZ"), []
            while book.seq != fast.books["XYZ"].seq:
                msg = P.decode_server(await asyncio.wait_for(slow.recv(), 10))
                if isinstance(msg, P.BookSnapshot):
                    reasons.append(msg.reason)
                    book.reset(msg)
                elif isinstance(msg, (P.BookUpdate, P.Trade)):
                    assert book.apply(msg), "a gap without a snapshot"
            assert "slow_consumer" in reasons
            assert same_book(book, fast.books["XYZ"])
            await t.mass_cancel()
        await slow.close()
        await fast.close()
    finally:
        small.stop()


async def test_relay_restart_subscribers_reconnect(exchange: Proc, tmp_path: Path) -> None:
    first = start_relay(exchange.url, tmp_path, name="relay-a")
    sub = await FeedClient.connect(first.url, reconnect=True)
    first.kill9()
    await sub.wait_for(lambda f: not f.connected)
    second = start_relay(exchange.url, tmp_path, "--port", str(first.port), name="relay-b")
    try:
        await sub.wait_for(lambda f: f.connected and f.ready(), timeout=10)
        assert sub.reconnects == 1
        async with await TraderClient.connect(exchange.url, TOKENS[7]) as t:
            await t.new_order("ES", "sell", 4, price=502_500)
            direct = await FeedClient.connect(exchange.url + "/feed", ["ES"])
            await sub.wait_for(lambda f: f.books["ES"].seq == direct.books["ES"].seq)
            assert same_book(sub.books["ES"], direct.books["ES"])
            await t.mass_cancel()
            await direct.close()
    finally:
        await sub.close()
        second.stop()


async def test_exchange_crash_and_restart_behind_the_relay(tmp_path: Path) -> None:
    server = start_server(tmp_path, live_config(tmp_path, csv_dir=None))
    relay = start_relay(server.url, tmp_path)
    sub = await FeedClient.connect(relay.url, reconnect=True)
    try:
        async with await TraderClient.connect(server.url, TOKENS[8]) as h:  # keeps its orders
            await h.new_order("XYZ", "sell", 5, price=10_200)
            await h.new_order("XYZ", "buy", 5, price=9_800)
        before = await fetch_state(server.url)
        await sub.wait_for(lambda f: f.books["XYZ"].seq == before.symbols[0].md_seq)
        await asyncio.to_thread(server.kill9)
        await sub.wait_for(lambda f: f.upstream == "disconnected")
        assert sub.connected  # the relay itself is still there
        server = await asyncio.to_thread(start_server, tmp_path, live_config(tmp_path, csv_dir=None, port=server.port), name="server2")
        await sub.wait_for(lambda f: f.upstream == "connected" and f.resyncs >= 1, timeout=10)
        assert sub.books["XYZ"].seq == before.symbols[0].md_seq  # the journal restored the sequence
        async with await TraderClient.connect(server.url, TOKENS[8]) as h:
            await h.new_order("XYZ", "buy", 2, price=10_200)  # trades: the sequence goes on
            await sub.wait_for(lambda f: f.books["XYZ"].asks.get(10_200) == (3, 1))
            assert sub.gaps == 0
            await h.mass_cancel()
    finally:
        await sub.close()
        relay.stop()
        server.stop()


# ---- the pieces, without processes ------------------------------------------------------------
class _StuckSocket:
    """A connection whose client does not read until ``release``: its transport stays paused.

    Real Sans-I/O protocols on both ends: ``sent`` is what the client would receive."""

    remote_address = ("127.0.0.1", 0)

    def __init__(self) -> None:
        self.protocol = Protocol(Side.SERVER, state=State.OPEN)
        self.transport = self
        self.paused = True
        self.release = asyncio.Event()
        self.writes: list[bytes] = []
        self._client = Protocol(Side.CLIENT, state=State.OPEN)
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:  # the transport's
        self.writes.append(data)
        self._client.receive_data(data)
        self.sent += [bytes(e.data) for e in self._client.events_received()]

    async def drain(self) -> None:
        await self.release.wait()
        self.paused = False


async def test_subscriber_drops_its_backlog_and_resyncs() -> None:
    ws = _StuckSocket()
    overflowed: list[Subscriber] = []
    sub = Subscriber(ws, maxlen=5, on_overflow=overflowed.append)  # type: ignore[arg-type]
    sub.subscribe(["XYZ"])
    for i in range(5):
        sub.push(b"u%d" % i, "XYZ")
    sub.push(b"other", "ES")  # not subscribed: ignored
    assert sub.backlog() <= 5 and not overflowed
    sub.push(b"u5", "XYZ")  # one too many: backlog dropped, owner asked for snapshots
    assert overflowed == [sub] and sub.awaiting and sub.backlog() == 0
    sub.push(b"u6", "XYZ")  # dropped until the snapshots arrive
    sub.control(b"pong")  # replies still go through
    sub.resync([b"snapshot"])
    sub.push(b"u7", "XYZ")
    assert ws.sent == []  # the transport is paused: nothing written yet
    ws.release.set()
    await asyncio.sleep(0.01)
    assert ws.sent == [b"pong", b"snapshot", b"u7"]
    assert len(ws.writes) == 1  # everything queued went out in one write, one frame per message
    sub.close()


async def test_frame_writer_writes_a_tick_in_order_with_one_write() -> None:
    ws = _StuckSocket()
    ws.paused = False
    sub = Subscriber(ws, maxlen=100, on_overflow=lambda s: None)  # type: ignore[arg-type]
    sub.subscribe(None)
    for i in range(10):
        sub.push(b'{"n":%d}' % i)
    sub.control(b"pong")
    assert ws.sent == [] and sub.backlog() == 11  # queued until the end of the tick
    await asyncio.sleep(0)
    assert ws.sent == [b'{"n":%d}' % i for i in range(10)] + [b"pong"] and len(ws.writes) == 1
    sub.push(b"next")
    await asyncio.sleep(0)
    assert ws.sent[-1] == b"next" and len(ws.writes) == 2
    ws.protocol.state = State.CLOSING  # closing: nothing more is written
    sub.push(b"late")
    await asyncio.sleep(0)
    assert ws.sent[-1] == b"next" and sub.closed
    sub.close()


class _RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, data: bytes, text: bool = False) -> None:
        self.sent.append(data)


async def test_feed_client_detects_gaps_and_asks_for_a_snapshot() -> None:
    feed = FeedClient("ws://unused")
    feed.ws = _RecordingSocket()  # type: ignore[assignment]
    snap = P.BookSnapshot(symbol="XYZ", seq=10, bids=[P.Level(100, 5, 1)], asks=[], last_price=None, reason="subscribe", ts=0)
    feed._on(snap)
    feed._on(P.BookUpdate(symbol="XYZ", seq=11, changes=[P.LevelChange(1, 99, 2, 1)], ts=0))
    assert feed.books["XYZ"].bids == {100: (5, 1), 99: (2, 1)} and feed.gaps == 0
    feed._on(P.Trade(symbol="XYZ", seq=13, price=100, qty=1, aggressor="sell", ts=0))  # 12 is missing
    await asyncio.sleep(0)
    assert feed.gaps == 1 and not feed.in_sync("XYZ")
    request = P.decode_feed(feed.ws.sent[-1])  # type: ignore[attr-defined]
    assert isinstance(request, P.SnapshotRequest) and request.symbol == "XYZ"
    feed._on(P.BookUpdate(symbol="XYZ", seq=14, changes=[], ts=0))  # ignored while waiting
    feed._on(P.BookSnapshot(symbol="XYZ", seq=14, bids=[], asks=[], last_price=100, reason="request", ts=0))
    assert feed.in_sync("XYZ") and feed.books["XYZ"].seq == 14
    feed._on(P.Heartbeat(seqs={"XYZ": 16}, ts=0))  # the heartbeat shows two messages we never got
    await asyncio.sleep(0)
    assert feed.gaps == 2 and not feed.in_sync("XYZ")

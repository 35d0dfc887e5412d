"""The live exchange server as a real process on loopback, driven by real WebSocket clients.

Trading and private events, market data on /feed, authentication refusals, bad input of
every kind (each answered by a specific error code, changing nothing), oversize frames,
floods, cancel-on-disconnect, reconnects, and a hypothesis fuzz of arbitrary frames.
One server process serves the module; each test cleans up the orders it leaves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from live_helpers import TOKENS, Proc, live_config, start_server
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as sync_connect

from live import protocol as P
from live.client import AuthError, FeedClient, TraderClient, fetch_state

MAX_MESSAGE = 2_048
MAX_FRAME = 16_384


@pytest.fixture(scope="module", params=["journal", "no-journal"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Proc:
    """With a journal, requests go through the exchange task's batches; without one, a
    request that finds that task idle is applied as it is received: both paths, every test."""
    tmp = tmp_path_factory.mktemp("live-server")
    journal = {} if request.param == "journal" else {"journal": None}
    proc = start_server(tmp, live_config(tmp, max_message_bytes=MAX_MESSAGE, max_frame_bytes=MAX_FRAME, **journal))
    yield proc
    proc.stop()


@asynccontextmanager
async def trader(server: Proc, who: int) -> AsyncIterator[TraderClient]:
    """A logged-in trader that cancels whatever it left when the block ends."""
    client = await TraderClient.connect(server.url, TOKENS[who])
    try:
        yield client
    finally:
        if not client.closed:
            await client.mass_cancel()
        await client.close()


def book_part(state: P.State) -> list[tuple[str, str, int]]:
    """What a refused frame must not change: each book, its market-data seq, the accounts."""
    return [(s.symbol, s.state_hash, s.md_seq) for s in state.symbols] + [msgspec.structs.astuple(t) for t in state.traders]  # type: ignore[list-item]


async def test_login_welcome_lists_instruments_and_limits(server: Proc) -> None:
    async with trader(server, 1) as alice:
        w = alice.welcome
        assert w is not None and w.trader == 1 and w.name == "t1" and w.protocol == P.PROTOCOL_VERSION
        assert {i.symbol: i.tick for i in w.instruments} == {"XYZ": 1, "ES": 25}
        assert w.max_message_bytes == MAX_MESSAGE and w.burst == 1_000 and w.cancel_on_disconnect
        assert isinstance(await alice.ping(), P.Pong)


async def test_bad_token_is_refused_and_the_connection_closed(server: Proc) -> None:
    with pytest.raises(AuthError):
        await TraderClient.connect(server.url, "not-a-token")
    async with connect(server.url, compression=None, proxy=None) as ws:
        await ws.send(P.encode(P.Login(token="tok-1x", req=7)))
        reply = P.decode_server(await ws.recv())
        assert isinstance(reply, P.Error) and reply.code == P.ErrorCode.AUTH_FAILED and reply.req == 7
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_trading_before_login_is_refused_then_login_works(server: Proc) -> None:
    client = await TraderClient.connect(server.url)  # no login yet
    try:
        reply = await client.new_order("XYZ", "buy", 1, price=9_000)
        assert isinstance(reply, P.Error) and reply.code == P.ErrorCode.NOT_LOGGED_IN
        assert isinstance(await client.ping(), P.Pong)  # ping is allowed before login
        assert isinstance(await client.request(P.Login(token=TOKENS[2])), P.Welcome)
        again = await client.request(P.Login(token=TOKENS[2]))
        assert isinstance(again, P.Error) and again.code == P.ErrorCode.ALREADY_LOGGED_IN
    finally:
        await client.close()


async def test_unknown_path_is_refused_at_the_handshake(server: Proc) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.url + "/admin", proxy=None)
    assert refused.value.response.status_code == 404


async def test_orders_fill_privately_and_publicly(server: Proc) -> None:
    feed = await FeedClient.connect(server.url + "/feed", ["XYZ"])
    async with trader(server, 1) as alice, trader(server, 2) as bob:
        start = feed.books["XYZ"].seq
        ask = await alice.new_order("XYZ", "sell", 10, price=10_050, client_id=42)
        assert isinstance(ask, P.Accepted) and ask.client_id == 42 and ask.side == "sell" and ask.order_id > 0
        bid = await bob.new_order("XYZ", "buy", 4, price=10_050)
        assert isinstance(bid, P.Accepted)
        maker = await alice.next_event(P.Fill)
        taker = await bob.next_event(P.Fill)
        assert (maker.order_id, maker.qty, maker.price, maker.liquidity, maker.client_id) == (ask.order_id, 4, 10_050, "maker", 42)
        assert (taker.order_id, taker.side, taker.liquidity) == (bid.order_id, "buy", "taker")
        assert not [m for m in bob.drain_events() if getattr(m, "order_id", None) == ask.order_id]  # alice's events stay hers
        await feed.wait_for(lambda f: f.books["XYZ"].asks.get(10_050) == (6, 1))
        sequenced = [m for m in feed.messages if isinstance(m, (P.BookUpdate, P.Trade))]
        assert [m.seq for m in sequenced] == list(range(start + 1, start + 1 + len(sequenced)))  # gap-free
        assert any(isinstance(m, P.Trade) and m.qty == 4 and m.aggressor == "buy" for m in sequenced)
        acct = await alice.account()
        assert [(o.order_id, o.open_qty, o.client_id) for o in acct.open_orders] == [(ask.order_id, 6, 42)]
        assert {p.symbol: p.qty for p in acct.positions}["XYZ"] <= -4
        modified = await alice.modify(ask.order_id, 3)
        assert isinstance(modified, P.Modified) and modified.priority_kept and modified.qty == 3
        cancelled = await alice.cancel(ask.order_id)
        assert isinstance(cancelled, P.Cancelled) and cancelled.qty == 3 and cancelled.client_id == 42
        gone = await alice.cancel(ask.order_id)
        assert isinstance(gone, P.Error) and gone.code == P.ErrorCode.UNKNOWN_ORDER
    await feed.close()


async def test_feed_hook_sees_every_message_after_the_book_took_it(server: Proc) -> None:
    seen: list[tuple[str, int | None]] = []

    def hook(client: FeedClient, msg: P.ServerMessage) -> None:
        if isinstance(msg, P.Trade):
            seen.append(("trade", client.books["XYZ"].seq))  # the book already holds this message
            assert client.books["XYZ"].seq == msg.seq
        raise RuntimeError("a broken hook")  # logged; the feed goes on

    feed = await FeedClient.connect(server.url + "/feed", ["XYZ"], on_message=hook)
    async with trader(server, 5) as erin, trader(server, 6) as frank:
        await erin.new_order("XYZ", "sell", 2, price=10_070)
        await frank.new_order("XYZ", "buy", 2, price=10_070)
        await feed.wait_for(lambda f: bool(seen))
    assert feed.connected and feed.received >= 3
    await feed.close()


async def test_another_traders_order_cannot_be_touched(server: Proc) -> None:
    async with trader(server, 3) as carol, trader(server, 4) as dave:
        ask = await carol.new_order("XYZ", "sell", 5, price=10_900)
        assert isinstance(ask, P.Accepted)
        before = await fetch_state(server.url)
        for reply in (await dave.cancel(ask.order_id), await dave.modify(ask.order_id, 1, 10_800)):
            assert isinstance(reply, P.Error) and reply.code == P.ErrorCode.NOT_OWNER
        mass = await dave.mass_cancel("XYZ")
        assert isinstance(mass, P.MassCancelled) and mass.count == 0
        after = await fetch_state(server.url)
        assert after.symbols == before.symbols and after.commands == before.commands  # not even a sequence number
        assert [o.order_id for o in (await carol.account()).open_orders] == [ask.order_id]


BAD_FRAMES = [
    ("{not json", P.ErrorCode.BAD_JSON),
    ('{"type":"ping"} trailing', P.ErrorCode.BAD_JSON),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":NaN,"price":9000}', P.ErrorCode.BAD_JSON),
    ("[1, 2, 3]", P.ErrorCode.NOT_AN_OBJECT),
    ('"new_order"', P.ErrorCode.NOT_AN_OBJECT),
    ('{"symbol":"XYZ"}', P.ErrorCode.MISSING_TYPE),
    ('{"type":"buy_everything"}', P.ErrorCode.UNKNOWN_TYPE),
    ('{"type":7}', P.ErrorCode.UNKNOWN_TYPE),
    ('{"type":"new_order","symbol":"XYZ","side":"buy"}', P.ErrorCode.MISSING_FIELD),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":1,"price":9000,"colour":"red"}', P.ErrorCode.UNKNOWN_FIELD),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":1.5,"price":9000}', P.ErrorCode.WRONG_TYPE),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":"10","price":9000}', P.ErrorCode.WRONG_TYPE),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":true,"price":9000}', P.ErrorCode.WRONG_TYPE),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":1,"price":9000.0}', P.ErrorCode.WRONG_TYPE),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":1,"price":1e999}', P.ErrorCode.OUT_OF_RANGE),  # inf
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":-5,"price":9000}', P.ErrorCode.OUT_OF_RANGE),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":0,"price":9000}', P.ErrorCode.OUT_OF_RANGE),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":100000000000000000000000,"price":9000}', P.ErrorCode.OUT_OF_RANGE),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":1,"price":-9000}', P.ErrorCode.OUT_OF_RANGE),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":1,"price":9000000000000000}', P.ErrorCode.OUT_OF_RANGE),
    ('{"type":"new_order","symbol":"","side":"buy","qty":1,"price":9000}', P.ErrorCode.OUT_OF_RANGE),
    ('{"type":"new_order","symbol":"XYZ","side":"up","qty":1,"price":9000}', P.ErrorCode.BAD_VALUE),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":1,"price":9000,"order_type":"yolo"}', P.ErrorCode.BAD_VALUE),
    ('{"type":"new_order","symbol":"NOPE","side":"buy","qty":1,"price":9000}', P.ErrorCode.UNKNOWN_SYMBOL),
    ('{"type":"new_order","symbol":"XYZ","side":"buy","qty":1}', P.ErrorCode.MISSING_FIELD),  # a limit needs a price
    ('{"type":"new_order","symbol":"ES","side":"buy","qty":1,"order_type":"stop"}', P.ErrorCode.MISSING_FIELD),
    ('{"type":"cancel","order_id":999999999}', P.ErrorCode.UNKNOWN_ORDER),
    ('{"type":"modify","order_id":999999999,"qty":1}', P.ErrorCode.UNKNOWN_ORDER),
    ('{"type":"mass_cancel","symbol":"NOPE"}', P.ErrorCode.UNKNOWN_SYMBOL),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES, ids=[c.value + f"-{i}" for i, (_, c) in enumerate(BAD_FRAMES)])
async def test_bad_input_gets_its_error_code_and_changes_nothing(server: Proc, frame: str, code: P.ErrorCode) -> None:
    before = await fetch_state(server.url)
    async with trader(server, 5) as erin:
        await erin.send_raw(frame)
        reply = await erin.next_event()
        assert isinstance(reply, P.Error) and reply.code == code, reply
        assert isinstance(await erin.ping(), P.Pong)  # the session goes on
    after = await fetch_state(server.url)
    assert after.symbols == before.symbols and after.commands == before.commands


MARKET_REFUSALS = [
    (dict(symbol="ES", side="buy", qty=1, price=500_010), "off_tick"),
    (dict(symbol="XYZ", side="buy", qty=1, price=50), "price_out_of_band"),
    (dict(symbol="XYZ", side="buy", qty=20_000, price=9_000), "risk_order_qty"),
    (dict(symbol="XYZ", side="buy", qty=1, price=9_000, order_type="market"), "no_liquidity"),
    (dict(symbol="ES", side="buy", qty=1, price=500_000, post_only=True), "unsupported"),
]


@pytest.mark.parametrize(("order", "reason"), MARKET_REFUSALS, ids=[r for _, r in MARKET_REFUSALS])
async def test_market_refusals_are_rejected_events_that_change_no_book(server: Proc, order: dict, reason: str) -> None:
    before = await fetch_state(server.url)
    async with trader(server, 6) as frank:
        reply = await frank.new_order(client_id=9, **order)
        assert isinstance(reply, P.Rejected) and reply.reason == reason and reply.client_id == 9, reply
    after = await fetch_state(server.url)
    assert book_part(after) == book_part(before)


async def test_oversize_frames(server: Proc) -> None:
    async with trader(server, 7) as gina:
        big = json.dumps({"type": "ping", "pad": "x" * MAX_MESSAGE})
        await gina.send_raw(big)
        reply = await gina.next_event()
        assert isinstance(reply, P.Error) and reply.code == P.ErrorCode.MESSAGE_TOO_LARGE
        assert isinstance(await gina.ping(), P.Pong)
        await gina.send_raw("x" * (MAX_FRAME + 1))  # past the hard limit: the connection is closed
        assert await gina.wait_closed(5) == 1009
    async with trader(server, 7) as again:
        assert isinstance(await again.ping(), P.Pong)


async def test_a_flood_is_rate_limited_and_every_frame_answered(server: Proc) -> None:
    async with trader(server, 7) as gina:
        n = 3_000  # burst 1000, 5000/s: pipelined, a good part is over the limit
        for i in range(n):
            await gina.ws.send(P.encode(P.Ping(req=i)), text=True)
        replies = [await gina.next_event(timeout=10) for _ in range(n)]
        limited = [r for r in replies if isinstance(r, P.Error)]
        assert limited and all(r.code == P.ErrorCode.RATE_LIMITED for r in limited)
        assert sorted(r.req for r in replies) == list(range(n))  # every frame got its reply, req echoed
        await asyncio.sleep(0.3)
        assert isinstance(await gina.ping(), P.Pong)


async def test_pipelined_requests_are_acknowledged_once_each_in_order(server: Proc) -> None:
    """Replies written a loop tick at a time (several frames per write) keep request order."""
    async with connect(server.url, compression=None, proxy=None) as ws:
        await ws.send(P.encode(P.Login(token=TOKENS[8], req=0)), text=True)
        assert isinstance(P.decode_server(await ws.recv()), P.Welcome)
        n = 300
        frames = [P.encode(P.NewOrderRequest(symbol="XYZ", side="buy", qty=1, price=5_000 + i % 50, req=i + 1)) for i in range(n)]
        frames += [P.encode(P.Ping(req=n + 1)), P.encode(P.MassCancelRequest(req=n + 2))]
        for f in frames:
            await ws.send(f, text=True)
        acks: list[int] = []
        while len(acks) < n + 2:
            m = P.decode_server(await asyncio.wait_for(ws.recv(), 10))
            if getattr(m, "req", None) is not None:
                assert not isinstance(m, P.Error), m
                acks.append(m.req)  # type: ignore[union-attr]
        assert [a for a in acks if a <= n] == list(range(1, n + 1))  # each order accepted once, in order
        assert sorted(a for a in acks if a > n) == [n + 1, n + 2]  # the ping is answered at once, maybe ahead
        assert acks.index(n + 2) == n + 1  # the mass cancel after every order


async def test_feed_keeps_sequence_and_order_under_pipelined_load(server: Proc) -> None:
    """Two connections pipeline orders, many of them trading (replies and market data queued
    and written a read or a batch at a time): each connection's acknowledgements come once
    each, in order; the feed stays gap-free and its book ends equal to a fresh snapshot."""
    feed = await FeedClient.connect(server.url + "/feed", ["XYZ"])
    start = feed.books["XYZ"].seq
    n = 150

    async def pipeline(ws: ClientConnection, side: str, base: int, first: int, cancel: bool) -> None:
        reqs = list(range(first, first + n))
        frames = [P.NewOrderRequest(symbol="XYZ", side=side, qty=1, price=base + i % 7, req=req) for i, req in enumerate(reqs)]
        if cancel:
            reqs.append(first + n)
            frames.append(P.MassCancelRequest(req=first + n))
        for f in frames:
            await ws.send(P.encode(f), text=True)
        acks: list[int] = []
        while len(acks) < len(reqs):
            m = P.decode_server(await asyncio.wait_for(ws.recv(), 10))
            if getattr(m, "req", None) is not None:
                acks.append(m.req)  # type: ignore[union-attr]
        assert acks == reqs

    async with connect(server.url, compression=None, proxy=None) as seller, connect(server.url, compression=None, proxy=None) as buyer:
        for ws, who in ((seller, 5), (buyer, 6)):
            await ws.send(P.encode(P.Login(token=TOKENS[who], req=0)), text=True)
            assert isinstance(P.decode_server(await ws.recv()), P.Welcome)
        await pipeline(seller, "sell", 10_048, 1, cancel=False)  # resting sells, then buys that cross them
        await asyncio.gather(pipeline(buyer, "buy", 10_047, 1, cancel=True), pipeline(seller, "sell", 10_048, n + 1, cancel=True))
    final = (await fetch_state(server.url + "/feed")).symbols
    md_seq = next(s.md_seq for s in final if s.symbol == "XYZ")
    await feed.wait_for(lambda f: f.books["XYZ"].seq == md_seq)
    sequenced = [m for m in feed.messages if isinstance(m, (P.BookUpdate, P.Trade)) and m.seq > start]
    assert [m.seq for m in sequenced] == list(range(start + 1, md_seq + 1))
    assert any(isinstance(m, P.Trade) for m in sequenced) and feed.gaps == 0 and feed.resyncs == 0
    fresh = await FeedClient.connect(server.url + "/feed", ["XYZ"])
    assert fresh.books["XYZ"].levels() == feed.books["XYZ"].levels()
    await fresh.close()
    await feed.close()


async def test_a_fragmented_message_is_one_request(server: Proc) -> None:
    async with connect(server.url, compression=None, proxy=None) as ws:
        login = P.encode(P.Login(token=TOKENS[8], req=1)).decode()
        await ws.send([login[:5], login[5:12], login[12:]])  # three frames, one message
        assert isinstance(P.decode_server(await ws.recv()), P.Welcome)
        ping = P.encode(P.Ping(req=2))
        await ws.send([ping[:4], ping[4:]])
        reply = P.decode_server(await ws.recv())
        assert isinstance(reply, P.Pong) and reply.req == 2


async def test_cancel_on_disconnect_is_per_trader(server: Proc) -> None:
    feed = await FeedClient.connect(server.url + "/feed", ["XYZ"])
    keeper_client = await TraderClient.connect(server.url, TOKENS[8])  # cancel_on_disconnect false
    leaver_client = await TraderClient.connect(server.url, TOKENS[9])
    kept = await keeper_client.new_order("XYZ", "buy", 3, price=9_301)
    left = await leaver_client.new_order("XYZ", "buy", 3, price=9_302)
    assert isinstance(kept, P.Accepted) and isinstance(left, P.Accepted)
    await feed.wait_for(lambda f: 9_301 in f.books["XYZ"].bids and 9_302 in f.books["XYZ"].bids)
    await keeper_client.close()
    await leaver_client.close()
    await feed.wait_for(lambda f: 9_302 not in f.books["XYZ"].bids)
    assert feed.books["XYZ"].bids.get(9_301) == (3, 1)
    async with trader(server, 8) as keeper, trader(server, 9) as leaver:
        assert [o.order_id for o in (await keeper.account()).open_orders] == [kept.order_id]
        assert (await leaver.account()).open_orders == []
    await feed.close()


async def test_a_trader_with_two_connections_sees_its_events_on_both(server: Proc) -> None:
    async with trader(server, 10) as one, trader(server, 10) as two, trader(server, 1) as other:
        reply = await one.new_order("ES", "sell", 2, price=500_500)
        assert isinstance(reply, P.Accepted)
        echoed = await two.next_event(P.Accepted)
        assert echoed.order_id == reply.order_id
        await two.cancel(reply.order_id)  # either connection may act for the trader
        assert (await one.next_event(P.Cancelled)).order_id == reply.order_id
        assert not [m for m in other.drain_events() if getattr(m, "order_id", None) == reply.order_id]
    async with trader(server, 10) as back:  # reconnect: the account is still there
        assert (await back.account()).trader == 10


async def test_self_match_prevention_is_scoped_to_the_trader(server: Proc) -> None:
    async with trader(server, 3) as carol, trader(server, 4) as dave:
        ask = await carol.new_order("ES", "sell", 2, price=501_000, smp="cancel_resting")
        bid = await dave.new_order("ES", "buy", 2, price=501_000, smp="cancel_resting")  # other trader: trades
        assert isinstance(ask, P.Accepted) and isinstance(bid, P.Accepted)
        assert (await dave.next_event(P.Fill)).qty == 2
        mine = await carol.new_order("ES", "sell", 1, price=501_100, smp="cancel_resting")
        cross = await carol.new_order("ES", "buy", 1, price=501_100, smp="cancel_resting")  # own: no trade
        assert isinstance(mine, P.Accepted) and isinstance(cross, P.Accepted)
        cancelled = await carol.next_event(P.Cancelled)
        assert cancelled.order_id == mine.order_id and cancelled.reason == "self_match"


async def test_feed_is_read_only_and_validates_its_input(server: Proc) -> None:
    feed = await FeedClient.connect(server.url + "/feed")
    for frame, code in (
        (P.encode(P.NewOrderRequest(symbol="XYZ", side="buy", qty=1, price=9_000)), P.ErrorCode.READ_ONLY),
        (P.encode(P.Login(token=TOKENS[1])), P.ErrorCode.READ_ONLY),
        (b"{oops", P.ErrorCode.BAD_JSON),
        (b'{"type":"snapshot","symbol":"NOPE"}', P.ErrorCode.UNKNOWN_SYMBOL),
        (b'{"type":"subscribe","symbols":["NOPE"]}', P.ErrorCode.UNKNOWN_SYMBOL),
    ):
        await feed.send_raw(frame)
        await feed.wait_for(lambda f, n=len(feed.errors): len(f.errors) > n)
        assert feed.errors[-1].code == code
    await feed.send(P.SnapshotRequest(symbol="ES", req=5))
    await feed.wait_for(lambda f: any(isinstance(m, P.BookSnapshot) and m.req == 5 and m.reason == "request" for m in f.messages))
    await feed.close()


# ---- fuzz: arbitrary frames from a logged-in trader ------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
FIELDS = ["type", "symbol", "side", "qty", "price", "order_type", "tif", "order_id", "req", "client_id", "smp", "token", "stop_price"]
TEMPLATES = [
    {"type": "new_order", "symbol": "ZZZ", "side": "buy", "qty": 1, "price": 9_000},  # valid ones hit unknown_symbol
    {"type": "cancel", "order_id": 123_456_789},
    {"type": "modify", "order_id": 123_456_789, "qty": 1},
    {"type": "mass_cancel"},
    {"type": "ping", "req": 1},
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    msg = dict(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(FIELDS + ["junk"]))
        if draw(st.booleans()) and key in msg:
            del msg[key]
        else:
            msg[key] = draw(JSON)
    return json.dumps(msg)  # NaN and Infinity floats become the (non-JSON) literals


FRAMES = st.one_of(st.binary(max_size=300), JSON.map(json.dumps), mutated(), st.text(max_size=100))


def expected_reply(frame: str | bytes) -> tuple[type, P.ErrorCode | None]:
    """What the server must answer, from the same schemas (``None``: skip this frame)."""
    data = frame.encode() if isinstance(frame, str) else frame
    if len(data) > MAX_MESSAGE:
        return P.Error, P.ErrorCode.MESSAGE_TOO_LARGE
    try:
        msg = P.decode_trading(data)
    except P.ProtocolError as exc:
        return P.Error, exc.code
    t = type(msg)
    if t is P.NewOrderRequest:
        if msg.symbol in ("XYZ", "ES"):
            return type(None), None  # a real order: not this test's business
        return P.Error, P.ErrorCode.UNKNOWN_SYMBOL
    if t in (P.CancelRequest, P.ModifyRequest):
        return P.Error, None  # unknown_order or not_owner: either way refused
    if t is P.MassCancelRequest:
        return (P.MassCancelled, None) if msg.symbol in (None, "XYZ", "ES") else (P.Error, P.ErrorCode.UNKNOWN_SYMBOL)
    return {P.Ping: (P.Pong, None), P.Login: (P.Error, P.ErrorCode.ALREADY_LOGGED_IN), P.GetAccount: (P.Account, None)}[t]


@pytest.fixture(scope="module")
def fuzz_ws(server: Proc):
    with sync_connect(server.url, compression=None, proxy=None, max_size=2**20) as ws:
        ws.send(P.encode(P.Login(token=TOKENS[9])).decode())
        assert isinstance(P.decode_server(ws.recv(timeout=5)), P.Welcome)
        yield ws


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(frame=FRAMES)
def test_fuzz_any_frame_gets_an_answer_and_changes_nothing(server: Proc, fuzz_ws, frame: str | bytes) -> None:
    kind, code = expected_reply(frame)
    assume(kind is not type(None))
    state = asyncio.run(fetch_state(server.url))
    fuzz_ws.send(frame)
    reply = P.decode_server(fuzz_ws.recv(timeout=5))
    assert isinstance(reply, kind), (frame, reply)
    if code is not None:
        assert reply.code == code, (frame, reply)
    after = asyncio.run(fetch_state(server.url))
    assert after.symbols == state.symbols and after.commands == state.commands
    assert server.alive()

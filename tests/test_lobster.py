"""LOBSTER message files: the parser, price conversion, and replay as background flow.

``tests/data/lobster_sample_message.csv`` is a synthetic message file in LOBSTER's format
(400 lines, 2.2 s from 9:30:00.012): an opening cross (6), submissions (1), partial
cancellations (2), deletions (3), marketable orders as runs of visible executions (4) at
one timestamp, sometimes with a hidden execution (5) and a resting remainder, and nine
messages about eight orders that rested before the file starts (never submitted in it), as
real files have. It was generated from a price-time FIFO book around $123.45 with a penny
tick, so replaying it alone must rebuild that book exactly.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from agents.replay import ReplayAgent
from exchange import Accepted, Fill, Liquidation, NewOrder, Rejected, TimeInForce, cme, nyse
from exchange.lobster import LobsterMessage, MessageType, parse_line, parse_messages, parse_time, price_to_units
from exchange.sim import MS, SECOND, Agent, Context, Simulator
from exchange.venue import Exchange, MarginPolicy

SAMPLE = Path(__file__).parent / "data" / "lobster_sample_message.csv"
MESSAGES = parse_messages(SAMPLE.read_text().splitlines())
SUBMITTED = {m.order_id for m in MESSAGES if m.type == MessageType.SUBMIT}
REPLAY, AGENT = 1, 2


def replay(
    *agents: Agent, messages: list[LobsterMessage] = MESSAGES, venue: Exchange | None = None, **kw
) -> tuple[Simulator, ReplayAgent]:
    """Run the sample (or ``messages``) into ``Exchange({"XYZ": nyse()})`` with ``agents``."""
    venue = venue if venue is not None else Exchange({"XYZ": nyse()})
    r = ReplayAgent(REPLAY, "XYZ", messages, **kw)
    sim = Simulator(venue, [r, *agents])
    sim.run()
    return sim, r


def fills(sim: Simulator) -> list[Fill]:
    return [ev for _, _, ev in sim.iter_events() if type(ev) is Fill]


def reference_book(until_ns: int) -> tuple[dict[int, tuple[int, int, int]], list, list]:
    """The file's own book after every message up to ``until_ns`` (time after the first
    message), from the messages alone: live submitted orders and L2 in nyse price units."""
    live: dict[int, list[int]] = {}  # id -> [side, price, size]
    origin = MESSAGES[0].time_ns
    for m in MESSAGES:
        if m.time_ns - origin > until_ns:
            break
        if m.type == 1:
            live[m.order_id] = [m.direction, m.price // 100, m.size]
        elif m.type in (2, 3, 4) and m.order_id in live:
            live[m.order_id][2] = 0 if m.type == 3 else live[m.order_id][2] - m.size
            if live[m.order_id][2] <= 0:
                del live[m.order_id]
    levels: dict[tuple[int, int], list[int]] = {}
    for side, price, size in live.values():
        lv = levels.setdefault((side, price), [0, 0])
        lv[0] += size
        lv[1] += 1
    bids = sorted(((p, q, n) for (s, p), (q, n) in levels.items() if s == 1), reverse=True)
    asks = sorted((p, q, n) for (s, p), (q, n) in levels.items() if s == -1)
    return {h: tuple(v) for h, v in live.items()}, bids, asks


# ---- parsing --------------------------------------------------------------------------------
def test_parses_every_column_exactly() -> None:
    lines = [
        "34200.01399412,3,16085616,100,310400,-1\r\n",
        "\n",  # blank lines are skipped
        "34200.01399412,1,16116348,100,310500,-1\n",
        "34200.015442111,4,16116348,40,310500,-1",
        "34200.2,5,0,300,310600,1",
        "34201,6,-1,23300,310500,-1",
        "34300.5,7,0,0,-1,-1",
    ]
    assert parse_messages(lines) == [
        LobsterMessage(34_200_013_994_120, 3, 16085616, 100, 310400, -1),
        LobsterMessage(34_200_013_994_120, 1, 16116348, 100, 310500, -1),
        LobsterMessage(34_200_015_442_111, 4, 16116348, 40, 310500, -1),
        LobsterMessage(34_200_200_000_000, 5, 0, 300, 310600, 1),
        LobsterMessage(34_201_000_000_000, 6, -1, 23300, 310500, -1),
        LobsterMessage(34_300_500_000_000, 7, 0, 0, -1, -1),
    ]
    assert parse_messages([]) == []


def test_the_sample_file_parses() -> None:
    counts = {t: sum(m.type == t for m in MESSAGES) for t in MessageType}
    assert len(MESSAGES) == 400 and all(counts[t] for t in MessageType if t != MessageType.HALT)
    assert MESSAGES[0].time_ns == 34_200_012_000_000


@pytest.mark.parametrize(
    "text, ns",
    [
        ("34200.000000001", 34_200_000_000_001),
        ("34931.027322286", 34_931_027_322_286),  # float(text) * 1e9 gives ...285
        ("57599.999999999", 57_599_999_999_999),
        ("0.1", 100_000_000),
        ("34200.01399412", 34_200_013_994_120),  # LOBSTER drops trailing zeros
        ("34200.0139941200", 34_200_013_994_120),  # zeros past the ninth place are harmless
        ("34200", 34_200_000_000_000),
        ("34200.", 34_200_000_000_000),
    ],
)
def test_time_is_exact_integer_nanoseconds(text: str, ns: int) -> None:
    assert parse_time(text) == ns
    assert int(float("34931.027322286") * 1e9) != 34_931_027_322_286  # why floats are not used


GOOD = "34200.5,1,7,100,1234500,1"


@pytest.mark.parametrize(
    "bad, message",
    [
        ("34200.6,1,8,100,1234500", "expected 6 comma-separated columns, got 5"),
        ("34200.6,1,8,100,1234500,1,0", "expected 6 comma-separated columns, got 7"),
        ("34200.6;1;8;100;1234500;1", "expected 6 comma-separated columns, got 1"),
        ("abc,1,8,100,1234500,1", "not a plain decimal number of seconds"),
        ("3.42e4,1,8,100,1234500,1", "not a plain decimal number of seconds"),
        ("-34200.6,1,8,100,1234500,1", "not a plain decimal number of seconds"),
        ("34200.6000000001,1,8,100,1234500,1", "finer than a nanosecond"),
        ("34200.6,one,8,100,1234500,1", "type 'one' is not an integer"),
        ("34200.6,1.0,8,100,1234500,1", "type '1.0' is not an integer"),
        ("34200.6,1,8,1_000,1234500,1", "size '1_000' is not an integer"),
        ("34200.6,1,8,100,123.45,1", "price '123.45' is not an integer"),
        ("34200.6,1,x8,100,1234500,1", "order id 'x8' is not an integer"),
        ("34200.6,1,8,100,1234500,", "direction '' is not an integer"),
        ("34200.6,8,8,100,1234500,1", "unknown message type 8"),
        ("34200.6,0,8,100,1234500,1", "unknown message type 0"),
        ("34200.6,1,8,100,1234500,0", "direction must be -1 or 1, got 0"),
        ("34200.6,4,8,100,1234500,2", "direction must be -1 or 1, got 2"),
        ("34200.6,1,8,0,1234500,1", "size must be positive for type 1, got 0"),
        ("34200.6,4,8,-100,1234500,1", "size must be positive for type 4, got -100"),
        ("34200.6,1,8,100,0,1", "price must be positive for type 1, got 0"),
        ("34200.6,5,0,100,-1,1", "price must be positive for type 5, got -1"),
        ("34200.6,3,0,100,1234500,1", "order id must be positive for type 3, got 0"),
        ("34200.6,7,0,0,2,-1", "halt price must be -1, 0 or 1, got 2"),
        ("34200.4,1,8,100,1234500,1", "time goes backwards"),
    ],
)
def test_malformed_line_names_its_number(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match="line 3: .*" + message.replace(".", r"\.")):
        parse_messages([GOOD, "", bad, GOOD])


def test_parse_line_reports_without_a_line_number() -> None:
    with pytest.raises(ValueError, match=r"^unknown message type 9 \(expected 1-7\)$"):
        parse_line("1,9,1,1,1,1")


# ---- prices -----------------------------------------------------------------------------------
def test_price_conversion_to_instrument_units() -> None:
    spec = nyse()
    assert price_to_units(1234500, spec.price_scale, tick=spec.tick) == 12345  # $123.45, cents
    assert price_to_units(911400, "0.01") == 9114
    assert price_to_units(1234567, Decimal("0.0001")) == 1234567  # units of $0.0001: LOBSTER's own
    assert price_to_units(1230000, 1) == 123  # whole dollars
    assert price_to_units(1234500, "0.01", tick=5) == 12345  # 2469 ticks of 5


def test_off_tick_price_is_refused_unless_rounded() -> None:
    with pytest.raises(ValueError, match=r"1234550 \(\$123\.455\) is not a multiple of the tick"):
        price_to_units(1234550, "0.01")
    assert price_to_units(1234550, "0.01", rounding="down") == 12345
    assert price_to_units(1234550, "0.01", rounding="up") == 12346
    assert price_to_units(1234550, "0.01", rounding="nearest") == 12346  # ties to even
    assert price_to_units(1234650, "0.01", rounding="nearest") == 12346
    assert price_to_units(1234551, "0.01", rounding="nearest") == 12346
    spec = cme()  # hundredths, tick 25
    with pytest.raises(ValueError, match="not a multiple of the tick"):
        price_to_units(1234500, spec.price_scale, tick=spec.tick)
    assert price_to_units(1234500, spec.price_scale, tick=spec.tick, rounding="nearest") == 12350
    assert price_to_units(1234500, spec.price_scale, tick=spec.tick, rounding="down") == 12325


def test_price_conversion_misuse() -> None:
    with pytest.raises(TypeError, match="float"):
        price_to_units(1234500, 0.01)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        price_to_units(123.45, "0.01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="price must be positive"):
        price_to_units(0, "0.01")
    with pytest.raises(ValueError, match="rounds to 0"):
        price_to_units(40, "0.01", rounding="down")
    with pytest.raises(ValueError, match="rounding must be"):
        price_to_units(1234500, "0.01", rounding="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="price_scale must be positive"):
        price_to_units(1234500, "-0.01")


# ---- replay alone ----------------------------------------------------------------------------
def test_replay_alone_rebuilds_the_files_book_after_every_timestamp() -> None:
    venue = Exchange({"XYZ": nyse()})
    r = ReplayAgent(REPLAY, "XYZ", MESSAGES)
    sim = Simulator(venue, [r])
    book, engine = venue.engines["XYZ"].book, venue.engines["XYZ"]
    origin = MESSAGES[0].time_ns
    for t in sorted({m.time_ns - origin for m in MESSAGES}):
        sim.run(until=t)
        live, bids, asks = reference_book(t)
        assert book.l2() == (bids, asks), f"book differs at {t} ns"
        assert r.live_orders() == {h: size for h, (_, _, size) in live.items()}
        assert all(engine.open_qty(r.venue_id(h)) == size for h, (_, _, size) in live.items())
        engine.check_invariants()
    assert r.done and sim.now == MESSAGES[-1].time_ns - origin
    assert book.l1() == (12344, 1570, 12345, 10)


def test_replay_alone_trades_on_visible_executions_only() -> None:
    """Each type-4 message is one trade of its size at its price, the emulated aggressor
    against exactly the executed order. Volume equals the sum of type-4 sizes *of orders the
    file submitted*: executions of the orders resting before the file starts are skipped (the
    book they hit is not in the file), so the raw type-4 total is larger by their sizes."""
    sim, r = replay()
    executions = [m for m in MESSAGES if m.type == 4 and m.order_id in SUBMITTED]
    trades = fills(sim)
    assert [(f.maker_id, f.qty, f.price, f.aggressor) for f in trades] == [
        (r.venue_id(m.order_id), m.size, m.price // 100, -m.direction) for m in executions
    ]
    assert all(f.maker_trader == f.taker_trader == REPLAY for f in trades)
    volume = sum(f.qty for f in trades)
    assert volume == sum(m.size for m in executions) == 9219
    before_file = [m for m in MESSAGES if m.type in (2, 3, 4) and m.order_id not in SUBMITTED]
    assert sum(m.size for m in MESSAGES if m.type == 4) - volume == sum(m.size for m in before_file if m.type == 4) > 0
    by_type = {t: sum(m.type == t for m in before_file) for t in (2, 3, 4)}
    assert by_type == {2: 1, 3: 4, 4: 4}
    s = r.stats
    assert (s.submitted, s.reduced, s.deleted, s.executed) == (175, 31 - 1, 96 - 4, 79 - 4)
    assert (s.hidden, s.crosses, s.halts) == (18, 1, 0)
    assert (s.unknown, s.not_live, s.trimmed, s.rejected, s.stale) == (9, 0, 0, 0, 0)
    # the replay trades with itself: its position and cash net to zero
    acct = sim.exchange.accounts.account(REPLAY)
    assert acct.position("XYZ") == 0 and acct.cash == 0 and acct.volume == 2 * volume


def test_replay_is_deterministic() -> None:
    a, _ = replay()
    b, _ = replay()
    assert a.log == b.log and len(a.log) == 175 + 30 + 92 + 75  # one entry per command sent
    c, _ = replay(Resting(AGENT, at=300 * MS, side=1, qty=5000))
    d, _ = replay(Resting(AGENT, at=300 * MS, side=1, qty=5000))
    assert c.log == d.log != a.log


def test_origin_maps_time_of_day_to_simulated_time() -> None:
    sim, _ = replay(origin_ns=34_200 * SECOND)  # simulated time counts from 9:30:00
    first = next(m for m in MESSAGES if m.type == 1)
    assert sim.log[0][0] == first.time_ns - 34_200 * SECOND == 23_699_087
    assert sim.now == MESSAGES[-1].time_ns - 34_200 * SECOND
    with pytest.raises(ValueError, match="before origin_ns"):
        ReplayAgent(REPLAY, "XYZ", MESSAGES, origin_ns=34_201 * SECOND)


def test_ignored_and_unknown_messages_are_counted() -> None:
    messages = parse_messages(
        [
            "34200.0,6,-1,5000,1000000,-1",  # opening cross
            "34200.1,3,99,100,1000000,1",  # deletion of an order from before the file
            "34200.2,1,1,100,1000000,1",
            "34200.3,5,0,200,1000100,1",  # hidden execution
            "34200.4,7,0,0,-1,-1",  # halt
            "34200.5,7,0,0,0,-1",  # quoting resumes
            "34200.6,7,0,0,1,-1",  # trading resumes
            "34200.7,4,99,50,1000000,1",  # execution of an order from before the file
            "34200.8,2,1,40,1000000,1",
        ]
    )
    sim, r = replay(messages=messages)
    s = r.stats
    assert (s.crosses, s.hidden, s.halts, s.unknown, s.submitted, s.reduced, s.executed) == (1, 1, 3, 2, 1, 1, 0)
    assert r.live_orders() == {1: 60} and sim.exchange.engines["XYZ"].book.l1() == (10000, 60, None, 0)


def test_off_tick_prices_refused_at_start_or_rounded_passively() -> None:
    messages = parse_messages(["1.0,1,1,100,1234550,1", "1.0,1,2,100,1234550,-1", "1.1,3,1,100,1234550,1"])
    with pytest.raises(ValueError, match=r"message 0 .*not a multiple of the tick"):
        replay(messages=messages)
    sim, r = replay(messages=messages, rounding="passive")  # buy down, sell up: no cross
    assert sim.exchange.engines["XYZ"].book.l1() == (None, 0, 12346, 100) and not fills(sim)


def test_inconsistent_files_are_refused() -> None:
    twice = parse_messages(["1.0,1,1,100,1234500,1", "1.0,1,1,100,1234500,1"])
    with pytest.raises(ValueError, match="submitted twice"):
        ReplayAgent(REPLAY, "XYZ", twice)
    backwards = [LobsterMessage(2, 1, 1, 100, 1234500, 1), LobsterMessage(1, 1, 2, 100, 1234500, 1)]
    with pytest.raises(ValueError, match="back in time"):
        ReplayAgent(REPLAY, "XYZ", backwards, origin_ns=0)


# ---- replay with our agents ------------------------------------------------------------------
class Resting(Agent):
    """Posts one large GTC limit order at its own side's best price at time ``at``."""

    def __init__(self, trader: int, *, at: int, side: int, qty: int) -> None:
        super().__init__(trader)
        self.at, self.side, self.qty = at, side, qty
        self.order_id = self.price = None

    def on_start(self, ctx: Context) -> None:
        ctx.wake_at(self.at)

    def on_wakeup(self, ctx: Context) -> None:
        book = ctx.book("XYZ")
        self.price = (book.bids if self.side == 1 else book.asks).best
        self.order_id = ctx.next_order_id()
        ctx.submit("XYZ", NewOrder(self.order_id, self.trader, self.side, self.qty, self.price))


class Sweeper(Agent):
    """Takes ``qty`` from the opposite side, up to ``ticks`` through its best, at time ``at``."""

    def __init__(self, trader: int, *, at: int, side: int, qty: int, ticks: int) -> None:
        super().__init__(trader)
        self.at, self.side, self.qty, self.ticks = at, side, qty, ticks

    def on_start(self, ctx: Context) -> None:
        ctx.wake_at(self.at)

    def on_wakeup(self, ctx: Context) -> None:
        book = ctx.book("XYZ")
        best = (book.asks if self.side == 1 else book.bids).best
        limit = best + self.side * self.ticks
        ctx.submit("XYZ", NewOrder(ctx.next_order_id(), self.trader, self.side, self.qty, limit, tif=TimeInForce.IOC))


def test_replayed_executions_trade_with_our_resting_order() -> None:
    """Our bid joins the back of the best bid's queue at 300 ms. Historical sell executions
    of orders that queue behind it now hit our bid first (the emulated aggressor meets the
    engine's queue, not the historical order): our agent buys. The executed historical
    orders are then trimmed to what history left of them, so no replayed order shows more
    than history had; without trimming they keep those lots as extra liquidity."""
    agent = Resting(AGENT, at=300 * MS, side=1, qty=5000)
    sim, r = replay(agent)
    ours = [f for f in fills(sim) if f.maker_id == agent.order_id]
    assert ours and all(f.taker_trader == REPLAY and f.aggressor == -1 and f.price == agent.price for f in ours)
    bought = sum(f.qty for f in ours)
    assert bought == sim.exchange.accounts.account(AGENT).position("XYZ") == 2425
    assert r.stats.trimmed > 0 and r.stats.rejected == r.stats.stale == 0
    assert all(q <= r.remaining(h) for h, q in r.live_orders().items())
    sim.exchange.accounts.check_conservation()
    # here every emulated execution still finds its full size, our bid included
    alone, _ = replay()
    assert sum(f.qty for f in fills(sim)) == sum(f.qty for f in fills(alone))

    untrimmed, u = replay(Resting(AGENT, at=300 * MS, side=1, qty=5000), trim=False)
    assert u.stats.trimmed == 0
    extra = sum(q - u.remaining(h) for h, q in u.live_orders().items() if q > u.remaining(h))
    assert extra > 0


def test_our_aggressive_order_takes_replayed_liquidity_and_later_messages_skip_it() -> None:
    """At 500 ms our agent buys 3000 through the asks. The replayed orders it takes are gone:
    later cancellations and deletions of them are skipped (``not_live``), never sent as
    commands the venue would reject, while their executions still send the aggressor."""
    sim, r = replay(Sweeper(AGENT, at=500 * MS, side=1, qty=3000, ticks=3))
    taken = [f for f in fills(sim) if f.taker_trader == AGENT]
    assert sum(f.qty for f in taken) == sim.exchange.accounts.account(AGENT).position("XYZ") > 0
    assert all(f.maker_trader == REPLAY for f in taken)
    assert r.stats.not_live > 0 and r.stats.rejected == 0
    assert not [ev for _, _, ev in sim.iter_events() if type(ev) is Rejected]
    assert all(q <= r.remaining(h) for h, q in r.live_orders().items())
    sim.exchange.accounts.check_conservation()


def test_replayed_submission_can_cross_our_order() -> None:
    """A historical buy submitted at a price where our agent now offers trades on arrival
    (historically it rested): the replayed order is the taker and rests only its remainder."""
    agent = Resting(AGENT, at=100 * MS, side=-1, qty=5000)
    sim, r = replay(agent)
    crossed = [f for f in fills(sim) if f.maker_id == agent.order_id and f.aggressor == 1]
    accepted = {ev.order_id for _, _, ev in sim.iter_events() if type(ev) is Accepted and ev.trader == REPLAY}
    assert crossed and all(f.taker_id in accepted and f.taker_trader == REPLAY for f in crossed)
    assert any(f.taker_id in {r.venue_id(h) for h in SUBMITTED} for f in crossed)
    assert r.stats.not_live > 0 and r.stats.rejected == 0


def test_replay_trader_is_subject_to_margin_like_anyone() -> None:
    """With a margin policy and no cash, the trades with our agent get the replay trader
    (and our agent) liquidated and barred: the replay goes on to the end, its refused
    commands counted, its cancelled orders skipped. With ample cash nothing changes."""
    broke = Exchange({"XYZ": nyse()}, starting_cash=0, margin=MarginPolicy())
    sim, r = replay(Resting(AGENT, at=300 * MS, side=1, qty=5000), venue=broke)
    liquidated = [ev.trader for _, _, ev in sim.iter_events() if type(ev) is Liquidation]
    assert REPLAY in liquidated and r.done and r.stats.rejected > 0 and r.stats.not_live > 0
    assert not r.live_orders() and not broke.open_orders.get(REPLAY)  # its view agrees with the venue
    rich = Exchange({"XYZ": nyse()}, starting_cash=10**9, margin=MarginPolicy())
    a, _ = replay(Resting(AGENT, at=300 * MS, side=1, qty=5000), venue=rich)
    b, _ = replay(Resting(AGENT, at=300 * MS, side=1, qty=5000))
    assert a.log == b.log

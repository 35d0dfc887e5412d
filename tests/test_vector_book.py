"""The batched torch book (``vector/``) is proven equal to the scalar engine.

Differential tests: every book of a batch gets its own random stream, generated while a
scalar ``MatchingEngine`` of the same instrument plays it (so cancels name live orders,
marketable prices come from the real book, and each step's expected outcome is the
engine's). The vector book then plays all streams at once, and after every step each book
must show the engine's outcome (status or reject reason, fills as maker, price, quantity in
order, lots rested and cancelled), its TOP order and last price, and the engine's
``state_hash()``. Then scenario tests: the multi-level sweep that must not stop after one
level, a remainder that must not rest crossing the book, the published CME allocation,
capacity and overflow, one batch of books in very different states, misuse. The
differential tests run for both state dtypes (``BookParams.dtype`` int64 and int32), and
the int32 book's limits have their own rules.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from dataclasses import dataclass

import pytest
import torch

from exchange import (
    Accepted,
    Cancel,
    Cancelled,
    Fill,
    InstrumentSpec,
    MatchingEngine,
    NewOrder,
    OrderType,
    ProRata,
    Rejected,
    RejectReason,
    Split,
    TimeInForce,
    cme,
    nyse,
)
from vector import (
    ASK,
    BID,
    NEW,
    StepOut,
    BookParams,
    Commands,
    Status,
    UnsupportedSpec,
    check_invariants,
    compiled_step,
    init,
    levels,
    reset,
    state_hash,
    state_hashes,
    step,
)
from vector.book import EMPTY_ASK_32, MAX_PRICE_32

LIMIT, MARKET, PROTECT, MKT_LIMIT = OrderType.LIMIT, OrderType.MARKET, OrderType.MARKET_PROTECT, OrderType.MARKET_LIMIT
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK

SPECS = {
    # price-time FIFO, tick 5 (off-tick prices exist), lot 2 (off-lot sizes exist), post-only, plain market orders
    "fifo": lambda: nyse(tick=5, lot=2, max_qty=400),
    # CME algorithm A: TOP, min allocation 2; market entered as market with protection
    "pro_rata": lambda: cme(tick=5, max_qty=400, protection_ticks=3),
    # CME algorithm C (no TOP), min allocation 1, plain market, post-only allowed
    "pro_rata_c": lambda: cme(
        rule=ProRata(top=False, min_alloc=1), tick=5, max_qty=400, market_as_protected=False, post_only=True
    ),
    # pro rata with a large minimum allocation, so shares drop out and leftovers go FIFO
    "pro_rata_min": lambda: InstrumentSpec("PR", rule=ProRata(top=True, min_alloc=4), tick=1, max_qty=400),
}


# ---- the oracle side: streams generated while the engine plays them --------------------------
@dataclass
class Expect:
    """One step of one book, as the engine saw it."""

    status: int
    fills: list  # (maker_id, maker_trader, price, qty)
    filled: int
    rested: int
    cancelled: int
    hash: str
    top: tuple  # (bid TOP order id or None, ask TOP order id or None)
    last_price: int


def side_count(eng: MatchingEngine, side: int) -> int:
    return sum(lv.count for lv in eng.book.side(side).levels.values())


def snapshot(eng: MatchingEngine) -> MatchingEngine:
    """A deep copy of the engine sharing its sequence counter (as ``_dry_run_fill`` does)."""
    counter, eng._next_seq = eng._next_seq, None
    try:
        snap = copy.deepcopy(eng)
    finally:
        eng._next_seq = counter
    snap._next_seq = counter
    return snap


def outcome(cmd: object, events: list) -> tuple[int, list, int, int, int]:
    """(status, fills, filled, rested, cancelled) of one command from the engine's events."""
    head = events[0]
    if type(head) is Rejected:
        return int(Status[RejectReason(head.reason).name]), [], 0, 0, 0
    fills = []
    cancelled = 0
    for e in events:
        if type(e) is Fill:
            assert e.taker_id == cmd.order_id and e.aggressor == cmd.side
            fills.append((e.maker_id, e.maker_trader, e.price, e.qty))
        elif type(e) is Cancelled:
            assert e.order_id == cmd.order_id
            cancelled += e.qty
    if type(cmd) is Cancel:
        return int(Status.CANCELLED), [], 0, 0, cancelled
    assert type(head) is Accepted
    filled = sum(f[3] for f in fills)
    return int(Status.ACCEPTED), fills, filled, cmd.qty - filled - cancelled, cancelled


class BookStream:
    """Random commands for one book, played on the engine as they are made.

    ``depth`` steers how many orders rest per side (near ``capacity`` fills rows up);
    ``aggression`` is the share of marketable orders; every refusal the vector book shares
    with the engine turns up now and then (bad quantities, lots and prices, duplicate and
    unknown ids, wrong owners, post-only crossing, FOK short, markets into an empty side,
    order types the instrument refuses).
    """

    def __init__(self, seed: int, spec: InstrumentSpec, capacity: int, depth: int, aggression: float, idle: float = 0.05):
        self.rnd = random.Random(seed)
        self.spec, self.capacity, self.depth, self.aggression, self.idle = spec, capacity, depth, aggression, idle
        self.eng = MatchingEngine(spec)
        self.next_id = 1
        self.base = 1000 * spec.tick

    def command(self) -> object:
        rnd, spec, eng = self.rnd, self.spec, self.eng
        tick = spec.tick
        live = list(eng.book.orders.values())
        u = rnd.random()
        if u < self.idle:
            return None
        n_live = len(live)
        if u < self.idle + 0.25 * (n_live / (2 * self.depth)) ** 2 or (n_live and rnd.random() < 0.05):
            if live and rnd.random() < 0.9:
                o = rnd.choice(live)
                trader = o[1] if rnd.random() < 0.92 else o[1] % 6 + 1
                return Cancel(order_id=o[0], trader=trader)
            return Cancel(order_id=rnd.randint(1, self.next_id + 3), trader=rnd.randint(1, 6))
        side = rnd.choice((1, -1))
        trader = rnd.randint(1, 6)
        oid = self.next_id
        self.next_id += 1
        if live and rnd.random() < 0.02:
            oid = rnd.choice(live)[0]  # duplicate id
        bid, ask = eng.book.bids.best, eng.book.asks.best
        if bid is not None and ask is not None:
            mid = (bid + ask) // 2 // tick * tick
        else:
            mid = bid if bid is not None else ask if ask is not None else self.base
        opp = ask if side == 1 else bid
        qty = rnd.randint(1, 10) * spec.lot
        r = rnd.random()
        if r < 0.08:
            qty = rnd.randint(15, 60) * spec.lot  # deep sweep
        elif r < 0.10:
            qty = rnd.choice((0, -spec.lot, spec.max_qty + spec.lot, qty + 1 if spec.lot > 1 else 0))
        kind = rnd.random()
        tif = rnd.choices((GTC, IOC, FOK), (0.7, 0.15, 0.15))[0]
        post_only = False
        if kind < self.aggression:
            typ = rnd.choices((LIMIT, MARKET, PROTECT, MKT_LIMIT), (0.55, 0.3, 0.08, 0.07))[0]
            if typ == LIMIT:
                ref = opp if opp is not None else mid
                price = ref + side * rnd.randint(0, 4) * tick
            else:
                price = None
        else:
            typ = LIMIT
            price = mid - side * rnd.randint(0, 6) * tick
            if opp is not None and (price - opp) * side >= 0 and rnd.random() < 0.8:
                price = opp - side * tick
            if rnd.random() < 0.12:
                post_only = True
                if rnd.random() < 0.3:
                    price = (opp if opp is not None else mid) + side * rnd.randint(0, 2) * tick  # may cross
            tif = GTC if rnd.random() < 0.9 else tif
        if price is not None and rnd.random() < 0.03:
            price = rnd.choice((0, -tick, price + 1 if tick > 1 else 0))
        return NewOrder(
            order_id=oid, trader=trader, side=side, qty=qty, price=price, type=typ, tif=tif, post_only=post_only
        )

    def play(self, cmd: object) -> Expect:
        """Submit ``cmd`` to the engine (unless the vector book must refuse it for capacity)."""
        eng = self.eng
        if cmd is None:
            result = (int(Status.NONE), [], 0, 0, 0)
        else:
            full = type(cmd) is NewOrder and side_count(eng, cmd.side) >= self.capacity
            before = snapshot(eng) if full else None
            events = eng.submit(cmd)
            result = outcome(cmd, events)
            if full and result[3]:
                # the engine rested on a full side: the vector book refuses, changing nothing
                assert side_count(eng, cmd.side) == self.capacity + 1
                self.eng = eng = before
                result = (int(Status.CAPACITY), [], 0, 0, 0)
        eng.check_invariants()
        return Expect(*result, eng.state_hash(), (eng.top_order(1), eng.top_order(-1)), eng.last_price or 0)


def generate(streams: list[BookStream], steps: int) -> tuple[list[list], list[list[Expect]]]:
    """Commands [step][book] and the engine's outcomes [step][book]."""
    cmds, expects = [], []
    for _ in range(steps):
        row = [s.command() for s in streams]
        cmds.append(row)
        expects.append([s.play(c) for s, c in zip(streams, row)])
    return cmds, expects


def run_differential(
    spec: InstrumentSpec, capacity: int, streams: list[BookStream], steps: int, device: str = "cpu", step=step,
    dtype: str = "int64",
) -> int:
    """Play the streams on the engine and on one batched vector book; compare every step
    (``step``: the transition under test, the eager ``vector.step`` or a compiled one;
    ``dtype``: the book's ``BookParams.dtype``, its commands built in it too)."""
    cmds, expects = generate(streams, steps)
    params = BookParams.from_spec(spec, capacity, dtype=dtype)
    B = len(streams)
    batch = Commands.from_records([c for row in cmds for c in row], device, dtype=dtype)
    batch = Commands(*(t.view(steps, B) for t in vars(batch).values()))
    state = init(params, B, device)
    compared = 0
    for t in range(steps):
        state, out = step(state, params, batch[t])
        check_invariants(state, params)  # (also: every state tensor in the params' dtype)
        assert_out_dtype(out, params)
        hashes = state_hashes(state)
        status, filled, rested, cancelled, last = (
            x.tolist() for x in (out.status, out.filled, out.rested, out.cancelled, state.last_price)
        )
        top = state.top.tolist()
        first_id = state.order_id[:, :, 0].tolist()
        cols = [x.flatten(1).tolist() for x in (out.maker_id, out.maker_owner, out.maker_price, out.fill)]
        for b, exp in enumerate(expects[t]):
            where = f"step {t} book {b} command {cmds[t][b]!r}"
            fills = [(i, o, p, q) for i, o, p, q in zip(*(c[b] for c in cols)) if q]
            assert Status(status[b]) == Status(exp.status), where
            assert fills == exp.fills, where
            assert (filled[b], rested[b], cancelled[b]) == (exp.filled, exp.rested, exp.cancelled), where
            assert hashes[b] == exp.hash, where
            vtop = tuple(first_id[b][row] if top[b][row] else None for row in (BID, ASK))
            assert vtop == exp.top, where
            assert last[b] == exp.last_price, where
            compared += 1
    assert not bool(state.overflow.any()) or any(e.status == Status.CAPACITY for row in expects for e in row)
    return compared


def assert_out_dtype(out: StepOut, params: BookParams) -> None:
    """Every integer output of a step is in the book's dtype."""
    for name, t in vars(out).items():
        assert t.dtype == params.state_dtype, f"StepOut.{name} is {t.dtype}, the book {params.dtype}"


# ---- differential tests ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int64", "int32"])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rule", sorted(SPECS))
def test_vector_equals_engine(rule: str, seed: int, dtype: str) -> None:
    """Eight books per batch, each its own profile: shallow, deep, at capacity, aggressive;
    the same streams for an int64 and an int32 book."""
    spec = SPECS[rule]()
    rnd = random.Random(seed)
    capacity = rnd.choice((6, 8, 12))
    streams = [
        BookStream(1000 * seed + b, spec, capacity, depth=rnd.choice((2, capacity // 2, capacity, capacity + 4)),
                   aggression=rnd.choice((0.1, 0.25, 0.45)))
        for b in range(8)
    ]
    assert run_differential(spec, capacity, streams, steps=120, dtype=dtype) == 8 * 120


def test_capacity_streams_hit_capacity() -> None:
    """Books driven past capacity: refusals happen and both sides stay equal around them."""
    spec = SPECS["fifo"]()
    streams = [BookStream(77 + b, spec, 4, depth=12, aggression=0.1, idle=0.0) for b in range(4)]
    cmds, expects = generate(streams, 80)
    assert sum(e.status == Status.CAPACITY for row in expects for e in row) > 5
    # replay the same streams (fresh generators) through the differential check
    streams = [BookStream(77 + b, spec, 4, depth=12, aggression=0.1, idle=0.0) for b in range(4)]
    assert run_differential(spec, 4, streams, 80) == 320


def test_deep_books_and_deep_sweeps_pro_rata() -> None:
    """Large capacity, many orders per level, big aggressors: long pro-rata sweeps."""
    spec = SPECS["pro_rata"]()
    streams = [BookStream(500 + b, spec, 40, depth=30, aggression=0.3) for b in range(4)]
    assert run_differential(spec, 40, streams, 150) == 600


# ---- the published GPU book failure: a sweep stops after one level / the rest rests crossed ----
def ask_ladder(spec: InstrumentSpec) -> list:
    """Asks of 5 lots at 101, 102 and 103 ticks, one order per level."""
    t, n = spec.tick, 5 * spec.lot
    return [NewOrder(order_id=i, trader=i, side=-1, qty=n, price=(100 + i) * t) for i in (1, 2, 3)]


def play_both(spec: InstrumentSpec, commands: list, capacity: int = 8, dtype: str = "int64") -> tuple:
    """Play commands on the engine and on a one-book vector batch; return both last outcomes."""
    eng = MatchingEngine(spec)
    params = BookParams.from_spec(spec, capacity, dtype=dtype)
    state = init(params, 1)
    for c in commands:
        events = eng.submit(c)
        state, out = step(state, params, Commands.from_records([c], dtype=dtype))
        assert Status(out.status.item()) == Status(outcome(c, events)[0]), c
        check_invariants(state, params)
        assert state_hash(state, 0) == eng.state_hash()
    return eng, events, state, out


@pytest.mark.parametrize("rule", sorted(SPECS))
def test_sweep_continues_past_the_first_level(rule: str) -> None:
    """Buy 12 lots up to 103 into 5 @ 101, 5 @ 102, 5 @ 103: three fills, not one."""
    spec = SPECS[rule]()
    t, lot = spec.tick, spec.lot
    buy = NewOrder(order_id=4, trader=4, side=1, qty=12 * lot, price=103 * t)
    eng, events, state, out = play_both(spec, [*ask_ladder(spec), buy])
    fills = [(e.maker_id, e.price, e.qty) for e in events if type(e) is Fill]
    assert fills == [(1, 101 * t, 5 * lot), (2, 102 * t, 5 * lot), (3, 103 * t, 2 * lot)]
    assert [(i, p, q) for i, _, p, q in out.fills(0)] == fills
    assert state.price[0, ASK, 0].item() == 103 * t and state.qty[0, ASK, 0].item() == 3 * lot


@pytest.mark.parametrize("rule", sorted(SPECS))
def test_remainder_rests_behind_the_book_not_crossing_it(rule: str) -> None:
    """Buy 20 lots up to 102: takes 101 and 102, rests 10 at 102 below the ask at 103."""
    spec = SPECS[rule]()
    t, lot = spec.tick, spec.lot
    buy = NewOrder(order_id=4, trader=4, side=1, qty=20 * lot, price=102 * t)
    eng, events, state, out = play_both(spec, [*ask_ladder(spec), buy])
    assert out.filled.item() == 10 * lot and out.rested.item() == 10 * lot
    assert state.price[0, BID, 0].item() == 102 * t and state.qty[0, BID, 0].item() == 10 * lot
    assert state.price[0, ASK, 0].item() == 103 * t  # best bid 102 < best ask 103
    assert eng.book.l1() == (102 * t, 10 * lot, 103 * t, 5 * lot)


def test_published_cme_allocation() -> None:
    """CME's example: sell 60 into TOP 10 and orders of 5, 20, 50, 75 gives 10, 3, 6, 16, 25."""
    spec = cme(tick=1)
    resting = [NewOrder(order_id=i + 1, trader=i + 1, side=1, qty=q, price=100) for i, q in enumerate((10, 5, 20, 50, 75))]
    sell = NewOrder(order_id=9, trader=9, side=-1, qty=60, price=100)
    eng, events, state, out = play_both(spec, [*resting, sell])
    assert [(i, q) for i, _, _, q in out.fills(0)] == [(1, 10), (2, 3), (3, 6), (4, 16), (5, 25)]
    assert [(e.maker_id, e.qty) for e in events if type(e) is Fill] == [(1, 10), (2, 3), (3, 6), (4, 16), (5, 25)]


# ---- capacity and overflow -------------------------------------------------------------------
def test_full_side_refuses_a_resting_order_and_changes_nothing() -> None:
    spec = nyse()
    params = BookParams.from_spec(spec, 3)
    state = init(params, 2)
    for i in range(3):
        state, out = step(state, params, Commands.from_records([NewOrder(i + 1, 1, 1, 5, 100 - i), None]))
        assert out.status.tolist() == [Status.ACCEPTED, Status.NONE]
    before = state_hashes(state)
    state, out = step(state, params, Commands.from_records([NewOrder(9, 1, 1, 5, 99), NewOrder(9, 1, 1, 5, 99)]))
    assert out.status.tolist() == [Status.CAPACITY, Status.ACCEPTED]
    assert state.overflow.tolist() == [True, False]
    assert state_hashes(state)[0] == before[0]  # refused whole: never truncated
    assert out.filled.tolist() == [0, 0] and out.rested.tolist() == [0, 5]
    # what needs no new slot on the full side still works: an IOC, a FOK, a sell, a cancel
    checks = [
        (NewOrder(10, 2, 1, 5, 99, tif=IOC), Status.ACCEPTED),
        (NewOrder(11, 2, -1, 7, 99), Status.ACCEPTED),  # sells 5 @ 100, 2 @ 99; rests nothing
        (NewOrder(12, 2, 1, 5, 98), Status.ACCEPTED),  # room again after the sell took one
        (Cancel(12, 2), Status.CANCELLED),
    ]
    for c, expected in checks:
        state, out = step(state, params, Commands.from_records([c, None]))
        assert Status(out.status[0].item()) == expected, c
        check_invariants(state, params)
    assert state.overflow.tolist() == [True, False]  # the flag is sticky


def test_overflow_flag_cleared_by_reset_only_for_masked_books() -> None:
    params = BookParams.from_spec(nyse(), 1)
    state = init(params, 3)
    cmds = Commands.from_records([NewOrder(1, 1, 1, 5, 100)] * 3)
    state, _ = step(state, params, cmds)
    state, out = step(state, params, Commands.from_records([NewOrder(2, 1, 1, 5, 99)] * 3))
    assert state.overflow.tolist() == [True, True, True]
    state = reset(state, params, torch.tensor([True, False, True]))
    assert state.overflow.tolist() == [False, True, False]
    assert state.qty[:, BID, 0].tolist() == [0, 5, 0]
    check_invariants(state, params)


def test_one_batch_with_empty_deep_and_full_books() -> None:
    """Books in very different states in one call: each equals its own engine."""
    spec = SPECS["pro_rata"]()
    t = spec.tick
    cap = 6
    engines = [MatchingEngine(spec) for _ in range(4)]
    params = BookParams.from_spec(spec, cap)
    state = init(params, 4)
    setup: list[list] = [[], [], [], []]
    # book 0 stays empty; book 1 deep on both sides; book 2 full bids; book 3 one level
    for i in range(3):
        setup[1] += [NewOrder(10 + i, 1, 1, 4 + i, (99 - i) * t), NewOrder(20 + i, 2, -1, 3 + i, (101 + i) * t)]
    setup[2] = [NewOrder(30 + i, 3, 1, 2 + i, (95 + i % 3) * t) for i in range(cap)]
    setup[3] = [NewOrder(40 + i, 4, -1, 5, 100 * t) for i in range(4)]
    for k in range(max(map(len, setup))):
        row = [s[k] if k < len(s) else None for s in setup]
        state, _ = step(state, params, Commands.from_records(row))
        for eng, c in zip(engines, row):
            if c is not None:
                eng.submit(c)
    assert state_hashes(state) == [e.state_hash() for e in engines]
    assert int(state.qty[2, BID].gt(0).sum()) == cap
    final = [
        NewOrder(50, 5, 1, 5, 100 * t),  # empty book: rests
        NewOrder(51, 5, 1, 30, 103 * t),  # deep: sweeps three ask levels, rests the rest
        NewOrder(52, 5, -1, 100, 90 * t, tif=IOC),  # full bids: sweeps them all
        NewOrder(53, 5, 1, 7, 100 * t),  # one level of four orders: pro rata
    ]
    state, out = step(state, params, Commands.from_records(final))
    for b, (eng, c) in enumerate(zip(engines, final)):
        status, fills, filled, rested, cancelled = outcome(c, eng.submit(c))
        assert out.status[b].item() == status
        assert out.fills(b) == fills
        assert (out.filled[b].item(), out.rested[b].item(), out.cancelled[b].item()) == (filled, rested, cancelled)
    assert state_hashes(state) == [e.state_hash() for e in engines]
    check_invariants(state, params)


# ---- refusals, misuse and what the vector book leaves out ---------------------------------------
def test_misuse_is_invalid_and_changes_nothing() -> None:
    params = BookParams.from_spec(nyse(), 4)
    state, _ = step(init(params, 1), params, Commands.from_records([NewOrder(1, 1, 1, 5, 100)]))
    bad = Commands.from_records([NewOrder(2, 1, 1, 5, 101)])
    for field, value in (("side", 0), ("type", 9), ("tif", 7), ("kind", 5), ("price", 1 << 62)):
        cmd = Commands(**{**vars(bad), field: torch.tensor([value])})
        new_state, out = step(state, params, cmd)
        assert out.status.item() == Status.INVALID, field
        assert state_hashes(new_state) == state_hashes(state)
    # a cancel of an order its trader owns, refused for a field out of range, leaves it standing
    cancel = Commands.cancel(torch.tensor([1]), trader=1)
    new_state, out = step(state, params, dataclasses.replace(cancel, price=torch.tensor([1 << 62])))
    assert out.status.item() == Status.INVALID and out.cancelled.item() == 0
    assert state_hashes(new_state) == state_hashes(state)


def test_day_and_stops_are_refused_as_unsupported() -> None:
    """Documented difference: the engine accepts DAY (and stops on cme); the vector book has
    no session end and no stop book, so it refuses them."""
    params = BookParams.from_spec(cme(tick=1), 4)
    cmds = Commands.from_records([NewOrder(1, 1, 1, 5, 100), NewOrder(2, 1, 1, 5, 100)])
    cmds = Commands(**{**vars(cmds), "tif": torch.tensor([int(TimeInForce.DAY), 0]), "type": torch.tensor([0, 4])})
    _, out = step(init(params, 2), params, cmds)
    assert out.status.tolist() == [Status.UNSUPPORTED, Status.UNSUPPORTED]


def test_specs_the_vector_book_does_not_model() -> None:
    with pytest.raises(UnsupportedSpec):
        BookParams.from_spec(cme(rule=Split()), 8)
    with pytest.raises(UnsupportedSpec):
        BookParams.from_spec(nyse(price_band=50), 8)
    with pytest.raises(ValueError):
        Commands.from_records([NewOrder(1, 1, 1, 10, 100, display_qty=2)])


# ---- the int32 book's limits -------------------------------------------------------------------
def test_dtype_is_a_book_param_int64_by_default() -> None:
    """int64 unless asked; a torch dtype is stored as its name, so params stay equal and hashable."""
    spec = nyse()
    assert BookParams.from_spec(spec, 4).dtype == "int64" and init(BookParams.from_spec(spec, 4), 1).qty.dtype == torch.int64
    p32 = BookParams.from_spec(spec, 4, dtype=torch.int32)
    assert p32 == BookParams.from_spec(spec, 4, dtype="int32") and hash(p32) == hash(dataclasses.replace(p32))
    state = init(p32, 2)
    assert all(getattr(state, f).dtype == torch.int32 for f in ("price", "qty", "order_id", "owner", "last_price"))
    assert state.price[:, ASK].eq(EMPTY_ASK_32).all() and p32.max_price == MAX_PRICE_32
    with pytest.raises(ValueError, match="dtype"):
        BookParams.from_spec(spec, 4, dtype="int16")


def test_int32_params_refuse_what_would_overflow() -> None:
    """Row quantity sums must stay below 2**31 and a protected limit above the empty ask."""
    with pytest.raises(ValueError, match="capacity x max_qty"):
        BookParams(capacity=64, max_qty=1 << 25, dtype="int32")
    BookParams(capacity=64, max_qty=1 << 25)  # fine in int64
    with pytest.raises(ValueError, match="protection_ticks x tick"):
        BookParams(capacity=8, tick=1 << 20, protection_ticks=1 << 10, dtype="int32")


def test_pro_rata_params_refuse_quantities_whose_shares_would_overflow() -> None:
    spec = cme(tick=1, market_as_protected=False)
    BookParams.from_spec(dataclasses.replace(spec, max_qty=3_000_000_000), 4)  # 9e18 < 2**63
    with pytest.raises(ValueError, match="max_qty"):
        BookParams.from_spec(dataclasses.replace(spec, max_qty=3_100_000_000), 4)
    BookParams.from_spec(dataclasses.replace(nyse(), max_qty=3_100_000_000), 4)  # FIFO multiplies nothing


def test_int32_commands_refuse_numbers_they_cannot_hold() -> None:
    """Building int32 commands with an id or price beyond int32 is an error, never a wrap."""
    with pytest.raises(ValueError, match="order_id"):
        Commands.from_records([NewOrder(1 << 31, 1, 1, 5, 100)], dtype="int32")
    with pytest.raises(ValueError, match="price"):
        Commands.from_records([NewOrder(1, 1, 1, 5, 1 << 40)], dtype="int32")
    with pytest.raises(ValueError, match="trader"):
        Commands.cancel(torch.tensor([1]), trader=1 << 32, dtype="int32")
    assert Commands.new(torch.tensor([(1 << 31) - 1]), trader=1, side=1, qty=5, price=100, dtype="int32").order_id.dtype == torch.int32


def test_int64_commands_into_an_int32_book() -> None:
    """An int32 book narrows int64 commands itself: ids it cannot hold are INVALID, an
    oversized quantity or price gets the engine's refusal, and nothing changes; what fits
    plays as in an int64 book."""
    spec = nyse()
    p32, p64 = BookParams.from_spec(spec, 4, dtype="int32"), BookParams.from_spec(spec, 4)
    state = step(init(p32, 1), p32, Commands.from_records([NewOrder(1, 1, -1, 5, 100)], dtype="int32"))[0]
    cases = [
        (NewOrder(1 << 31, 2, 1, 5, 100), Status.INVALID),
        (NewOrder(2, 1 << 40, 1, 5, 100), Status.INVALID),
        (Cancel(1 << 33, 1), Status.INVALID),
        (NewOrder(2, 2, 1, 1 << 40, 100), Status.QUANTITY_TOO_LARGE),
        (NewOrder(2, 2, 1, 5, MAX_PRICE_32 + 1), Status.INVALID),  # above the int32 book's MAX_PRICE_32
        (NewOrder(2, 2, 1, 5, -(1 << 40)), Status.BAD_PRICE),
    ]
    for cmd, expected in cases:
        new_state, out = step(state, p32, Commands.from_records([cmd]))  # int64 commands
        assert Status(out.status.item()) == expected, cmd
        assert state_hashes(new_state) == state_hashes(state) and new_state.qty.dtype == torch.int32
    buy = Commands.from_records([NewOrder(2, 2, 1, 3, 100)])
    s32, out32 = step(state, p32, buy)
    s64, out64 = step(init(p64, 1), p64, Commands.from_records([NewOrder(1, 1, -1, 5, 100)]))
    s64, out64 = step(s64, p64, buy)
    assert state_hashes(s32) == state_hashes(s64) and out32.fills(0) == out64.fills(0) == [(1, 1, 100, 3)]
    assert_out_dtype(out32, p32)


def test_int32_book_at_its_price_limits() -> None:
    """Orders at MAX_PRICE_32 rest and trade; market orders sweep to it; an empty ask side
    never trades (its slots sit at EMPTY_ASK_32, above any limit)."""
    spec = InstrumentSpec("X", tick=1, max_qty=1000)
    params = BookParams.from_spec(spec, 4, dtype="int32")
    top = MAX_PRICE_32
    cmds = [
        NewOrder(1, 1, -1, 5, top),
        NewOrder(2, 2, 1, 2, top),  # trades at the highest price
        NewOrder(3, 2, 1, 10, None, type=MARKET, tif=IOC),  # takes the rest, then the side is empty
        NewOrder(4, 2, 1, 1, None, type=MARKET, tif=IOC),  # no liquidity
        NewOrder(5, 3, 1, 7, top),  # rests as the best bid at the top price
    ]
    eng, events, state, out = play_both(spec, cmds, capacity=4, dtype="int32")
    assert state.price[0, BID, 0].item() == top and state.price[0, ASK, 0].item() == EMPTY_ASK_32
    assert state.last_price.item() == top


# ---- views -------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 3, 10])
def test_levels_view_equals_engine_l2(depth: int) -> None:
    spec = SPECS["fifo"]()
    streams = [BookStream(900 + b, spec, 12, depth=10, aggression=0.2) for b in range(3)]
    cmds, _ = generate(streams, 60)
    params = BookParams.from_spec(spec, 12)
    state = init(params, 3)
    for row in cmds:
        state, _ = step(state, params, Commands.from_records(row))
    price, qty, count = (x.tolist() for x in levels(state, depth))
    for b, s in enumerate(streams):
        bids, asks = s.eng.book.l2(depth)
        for row, want in ((BID, bids), (ASK, asks)):
            got = [(p, q, c) for p, q, c in zip(price[b][row], qty[b][row], count[b][row]) if c]
            assert got == want


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_engine() -> None:
    spec = SPECS["pro_rata"]()
    streams = [BookStream(300 + b, spec, 8, depth=6, aggression=0.3) for b in range(8)]
    assert run_differential(spec, 8, streams, 100, device="cuda") == 800


# ---- the compiled transition is the eager one ------------------------------------------------------
@pytest.fixture(scope="module")
def compiled():
    """``vector.compiled_step()``, compiled once for the module (skipped only where inductor
    cannot build a kernel on this machine)."""
    try:
        torch.compile(lambda x: x + 1, dynamic=False)(torch.zeros(2, dtype=torch.int64))
    except Exception as e:  # no C++ compiler, unsupported platform
        pytest.skip(f"torch.compile unavailable here: {e!r}")
    return compiled_step()


@pytest.mark.parametrize(
    "rule, dtype",
    [("fifo", "int64"), ("pro_rata", "int64"), ("pro_rata_min", "int64"), ("fifo", "int32"), ("pro_rata", "int32")],
)
def test_compiled_step_equals_engine(compiled, rule: str, dtype: str) -> None:
    """The inductor-compiled step on the same random streams: the engine's fills, statuses,
    TOP, last price and ``state_hash`` after every step, as the eager step (int32 books for
    the FIFO and CME A rules: one compile each)."""
    spec = SPECS[rule]()
    streams = [BookStream(4000 + b, spec, 8, depth=(2, 4, 8, 12)[b % 4], aggression=(0.1, 0.3)[b % 2]) for b in range(8)]
    assert run_differential(spec, 8, streams, 150, step=compiled, dtype=dtype) == 8 * 150


def test_compiled_step_sets_the_overflow_flag(compiled) -> None:
    """A CAPACITY refusal sets the sticky flag in the compiled step as in the eager one."""
    params = BookParams.from_spec(nyse(), 4)
    state = init(params, 2)
    for i in range(4):
        state, _ = step(state, params, Commands.new(torch.tensor([i + 1, i + 1]), 1, -1, 1, torch.tensor([100 + i] * 2)))
    cmd = Commands.new(torch.tensor([9, 9]), 2, -1, 1, torch.tensor([200, 50]))  # a fifth ask, last or first: the row is full
    (a, out_a), (b, out_b) = step(state, params, cmd), compiled(state, params, cmd)
    assert out_a.status.tolist() == out_b.status.tolist() == [Status.CAPACITY, Status.CAPACITY]
    assert a.overflow.tolist() == b.overflow.tolist() == [True, True]


def test_compiled_step_reads_each_params_own_rules(compiled) -> None:
    """Two ``BookParams`` that differ only in the order types they accept: the compiled step
    serves each its own (regression: the accepted-type table was a lookup traced into the
    graph, so the second params could run on the first one's table)."""
    limits_only = BookParams.from_spec(nyse(), 4)
    limits_only = dataclasses.replace(limits_only, order_types=frozenset({int(LIMIT)}))
    with_market = dataclasses.replace(limits_only, order_types=frozenset({int(LIMIT), int(MARKET)}))
    ids = torch.arange(1, 3)
    for params in (limits_only, with_market, limits_only):
        outs = []
        for fn in (step, compiled):
            state = init(params, 2)
            state, _ = fn(state, params, Commands.new(ids, trader=7, side=-1, qty=5, price=torch.tensor([100, 101])))
            _, out = fn(state, params, Commands.new(ids + 10, trader=8, side=1, qty=2, type=int(MARKET), tif=int(IOC)))
            outs.append(out.status.tolist())
        expected = [Status.ACCEPTED] * 2 if int(MARKET) in params.order_types else [Status.UNSUPPORTED] * 2
        assert outs == [expected, expected]


def test_commands_new_and_cancel_helpers() -> None:
    params = BookParams.from_spec(nyse(), 4)
    B = 3
    state = init(params, B)
    ids = torch.arange(1, B + 1)
    state, out = step(state, params, Commands.new(ids, trader=7, side=-1, qty=5, price=torch.tensor([100, 101, 102])))
    assert out.status.tolist() == [Status.ACCEPTED] * B
    state, out = step(state, params, Commands.new(ids + 10, trader=8, side=1, qty=2, type=int(MARKET), tif=int(IOC)))
    assert out.filled.tolist() == [2, 2, 2] and out.maker_id[:, ASK, 0].tolist() == out.fill_maker_id[:, 0].tolist() == [1, 2, 3]
    state, out = step(state, params, Commands.cancel(ids, trader=torch.tensor([7, 8, 7])))
    assert out.status.tolist() == [Status.CANCELLED, Status.NOT_OWNER, Status.CANCELLED]
    assert out.cancelled.tolist() == [3, 0, 3]
    assert int(Commands.new(ids, trader=1, side=1, qty=1).kind[0]) == NEW


def test_bench_vector_quick_json(capsys) -> None:
    """``python -m bench.vector --quick --json``: smoke run, no timing assertions."""
    from bench import vector as bench_vector

    assert bench_vector.main(["--quick", "--batches", "1,8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("ratio_b4096_msgs", "ratio_b4096_env", "env_steps_per_s_b4096", "msgs_per_step", "device", "batches"):
        assert key in result
    assert [row["batch"] for row in result["batches"]] == [1, 8]
    assert all(row["msgs_per_s"] > 0 for row in result["batches"]) and result["scalar_msgs_per_s"] > 0

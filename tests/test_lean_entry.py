"""The engine's lean entries (``MatchingEngine.rest``, ``withdraw`` and ``take``) are proven equal to ``submit``.

On random streams of plain rests, cancels and everything around them (crossing limits,
market orders, modifies, stops, icebergs, refused and misused commands), an engine fed
through the lean entries and one fed ``NewOrder``/``Cancel`` through ``submit`` must print
the same events (a lean call that returns None stands for exactly two events: ``Accepted``
and ``BookUpdate`` of a rest, ``Cancelled`` and ``BookUpdate`` of a cancel), draw the same
``seq`` numbers, and end in the same book (l3 with priority stamps, state hash, TOP orders).
A ``take`` (an IOC market order) returns the events ``submit`` prints less the order's own
``Accepted`` and the ``Cancelled`` of its unfilled rest, with their number.
"""

from __future__ import annotations

import random

import pytest

from exchange import (
    Cancel,
    InstrumentSpec,
    MatchingEngine,
    Modify,
    NewOrder,
    OrderType,
    ProRata,
    SmpMode,
    TimeInForce,
    cme,
    nyse,
)
from exchange.errors import InvalidCommand
from exchange.events import Accepted, BookUpdate, Cancelled

SPECS = {
    "nyse": nyse(),
    "cme": cme(),
    "fifo-all-types": InstrumentSpec("ALL"),
    "pro-rata": cme(rule=ProRata(top=False)),
    "banded": nyse(price_band=3, reference_price=100),  # a price band: the lean rest always falls back
    "no-post-only": nyse(post_only=False),
}


def lean_stream(seed: int, n: int, tick: int, lot: int) -> list[tuple]:
    """Operations ``("rest", args)``, ``("withdraw", args)`` or ``("submit", command)``: mostly
    plain rests and cancels (some crossing, some refused), with other commands mixed in."""
    rnd = random.Random(seed)
    ops: list[tuple] = []
    ids: list[tuple[int, int]] = []
    for oid in range(1, n + 1):
        trader = rnd.randint(1, 4)
        side = rnd.choice((1, -1))
        price = rnd.randint(94, 106) * tick
        qty = rnd.randint(1, 10) * lot
        u = rnd.random()
        if u < 0.45:
            smp = rnd.choice((None, trader))
            post = rnd.random() < 0.3
            if rnd.random() < 0.05:  # odd fields: off tick, bad lot, bad side, duplicate id, zero qty
                price, qty, side, oid2 = rnd.choice(
                    [(price + 1, qty, side, oid), (price, qty + 1, side, oid), (price, qty, 0, oid), (price, qty, side, max(1, oid - 3)), (price, 0, side, oid)]
                )
            else:
                oid2 = oid
            ops.append(("rest", (oid2, trader, side, qty, price, smp, post)))
            ids.append((oid, trader))
        elif u < 0.75 and ids:
            target, owner = rnd.choice(ids)
            ops.append(("withdraw", (target if rnd.random() < 0.97 else -target, owner if rnd.random() < 0.9 else owner + 1)))
        elif u < 0.83:
            smp = rnd.choice((None, trader))
            if rnd.random() < 0.6:  # through ``take``, sometimes with odd fields (bad lot, bad side, duplicate id, zero qty)
                oid2 = oid
                if rnd.random() < 0.05:
                    qty, side, oid2 = rnd.choice([(qty + 1, side, oid), (qty, 0, oid), (qty, side, max(1, oid - 3)), (0, side, oid)])
                ops.append(("take", (oid2, trader, side, qty, smp)))
            else:
                ops.append(("submit", NewOrder(oid, trader, side, qty, type=OrderType.MARKET, tif=TimeInForce.IOC, smp_id=smp)))
        elif u < 0.88:
            ops.append(("submit", NewOrder(oid, trader, side, 3 * qty, price, display_qty=qty)))
            ids.append((oid, trader))
        elif u < 0.92 and ids:
            target, owner = rnd.choice(ids)
            ops.append(("submit", Modify(target, owner, rnd.randint(1, 12) * lot, rnd.choice((None, price)))))
        elif u < 0.95:
            trigger = price + side * rnd.randint(1, 4) * tick
            ops.append(("submit", NewOrder(oid, trader, side, qty, trigger + side * tick, type=OrderType.STOP_LIMIT, stop_price=trigger)))
            ids.append((oid, trader))
        else:
            mode = rnd.choice([None, *SmpMode])
            ops.append(("submit", NewOrder(oid, trader, side, qty, price, smp_id=trader, smp_mode=mode)))
            ids.append((oid, trader))
    return ops


def as_command(op: str, args: tuple) -> object:
    """The ``submit`` command a lean call stands for."""
    if op == "rest":
        oid, trader, side, qty, price, smp, post = args
        return NewOrder(oid, trader, side, qty, price, post_only=post, smp_id=smp)
    if op == "take":
        oid, trader, side, qty, smp = args
        return NewOrder(oid, trader, side, qty, type=OrderType.MARKET, tif=TimeInForce.IOC, smp_id=smp)
    return Cancel(*args)


def call(engine: MatchingEngine, op: str, args: object) -> list | tuple | None:
    """One operation on ``engine`` through its lean entries (``submit`` for other commands);
    API misuse as ``("raised", events)``."""
    try:
        if op == "rest":
            return engine.rest(*args)  # type: ignore[misc]
        if op == "withdraw":
            return engine.withdraw(*args)  # type: ignore[misc]
        if op == "take":
            return engine.take(*args)  # type: ignore[misc]
        return engine.submit(args)
    except InvalidCommand as exc:
        return ("raised", exc.events)


def submit(engine: MatchingEngine, op: str, args: object) -> list | tuple:
    """The same operation as a command through ``submit``; API misuse as ``("raised", events)``."""
    try:
        return engine.submit(args if op == "submit" else as_command(op, args))
    except InvalidCommand as exc:
        return ("raised", exc.events)


def own_events_dropped(want: list, order_id: object) -> list:
    """``want`` (a market order's events from ``submit``) less its ``Accepted`` and the ``Cancelled`` of its rest."""
    assert type(want[0]) is Accepted and want[0].order_id == order_id
    return [ev for ev in want[1:] if not (type(ev) is Cancelled and ev.order_id == order_id)]


def assert_same_book(a: MatchingEngine, b: MatchingEngine) -> None:
    """The same resting orders (fields and priority stamps), TOP orders, last trade and seq."""
    assert a.book.l3() == b.book.l3()
    assert a.state_hash() == b.state_hash()
    assert [a.top_order(s) for s in (1, -1)] == [b.top_order(s) for s in (1, -1)]
    assert (a.last_price, a.seq) == (b.last_price, b.seq)


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lean_entries_print_and_leave_what_submit_does(name: str, seed: int) -> None:
    spec = SPECS[name]
    lean, full = MatchingEngine(spec), MatchingEngine(spec)
    quiet = takes = 0
    for i, (op, args) in enumerate(lean_stream(seed, 3000, spec.tick, spec.lot)):
        got = call(lean, op, args)
        want = submit(full, op, args)
        if op == "take" and type(got) is tuple and got[0] != "raised":
            events, n = got
            assert n == len(want), f"op {i}: take counts {n} events, submit printed {len(want)}"
            if events != want:  # the lean path: the order's own events not built
                assert events == own_events_dropped(want, args[0]), f"op {i}: take {args}"
                takes += 1
        elif got is None:
            quiet += 1
            kinds = (Accepted, BookUpdate) if op == "rest" else (Cancelled, BookUpdate)
            assert tuple(type(ev) for ev in want) == kinds, f"op {i}: a quiet {op} stands for {want}"
        else:
            assert got == want, f"op {i}: {op} {args}"
        assert lean.seq == full.seq
        if i % 100 == 0:
            assert_same_book(lean, full)
            lean.check_invariants()
    assert_same_book(lean, full)
    if name == "banded":
        assert quiet > 0 and takes == 0  # its cancels are still quiet; its market orders all fall back
    else:
        assert quiet > 400 and takes > 30  # the stream exercises the lean paths, not only the fallbacks


@pytest.mark.parametrize("name", ["nyse", "pro-rata"])
def test_lean_entries_fall_back_to_the_general_handlers_without_the_fast_path(name: str) -> None:
    """With ``fast_path=False`` nothing is quiet: every call goes through ``submit``."""
    spec = SPECS[name]
    slow, full = MatchingEngine(spec, fast_path=False), MatchingEngine(spec)
    for op, args in lean_stream(4, 1500, spec.tick, spec.lot):
        got = call(slow, op, args)
        want = submit(full, op, args)
        assert got is not None
        assert got == ((want, len(want)) if op == "take" and want[0] != "raised" else want)
    assert_same_book(slow, full)


def test_lean_entries_raise_on_misuse_as_submit_does() -> None:
    """Fields ``submit`` refuses as API misuse raise ``InvalidCommand`` and change nothing."""
    engine = MatchingEngine(nyse())
    assert engine.rest(1, 1, 1, 5, 100) is None
    before = engine.book.l3(), engine.seq
    for args in [(2, 1, 1, 5.0, 100), (2, 1, 1, 5, 100.0), ("2", 1, 1, 5, 100), (2, None, 1, 5, 100), (2, 1, 1, 5, 100, 1.5), (2, 1, 1, 5, 100, None, 1)]:
        with pytest.raises(InvalidCommand):
            engine.rest(*args)
    for args in [(1, "1"), (1.0, 1), (None, 1)]:
        with pytest.raises(InvalidCommand):
            engine.withdraw(*args)
    for args in [(3, 2, -1, 5.0), ("3", 2, -1, 5), (3, None, -1, 5), (3, 2, -1, 5, 1.5)]:
        with pytest.raises(InvalidCommand):
            engine.take(*args)
    assert (engine.book.l3(), engine.seq) == before


def test_quiet_rests_trade_as_submitted_ones() -> None:
    """Orders rested quietly keep their priority and TOP status: later fills name them in order."""
    lean, full = MatchingEngine(cme()), MatchingEngine(cme())
    for oid, (qty, price) in enumerate([(5, 2500), (3, 2500), (4, 2525), (2, 2475)], start=1):
        assert lean.rest(oid, oid, 1, qty, price) is None
        full.submit(NewOrder(oid, oid, 1, qty, price))
    sweep = NewOrder(9, 9, -1, 12, 2475)
    assert lean.submit(sweep) == full.submit(sweep)
    assert_same_book(lean, full)


def test_take_matches_submit_on_a_deep_book_with_self_match_and_icebergs() -> None:
    """A market order that sweeps several levels, meets its own orders (every SMP mode) and
    icebergs: ``take`` leaves the book and prints the fills as ``submit`` does."""
    for spec in (nyse(), cme(), InstrumentSpec("ALL")):
        tick, lot = spec.tick, spec.lot
        for mode in (None, *SmpMode):
            lean, full = MatchingEngine(spec), MatchingEngine(spec)
            oid = 0
            for level in range(1, 6):
                for trader in (1, 2, 3):
                    oid += 1
                    cmd = NewOrder(oid, trader, -1, 3 * lot * level, (100 + level) * tick, smp_id=trader, smp_mode=mode,
                                   display_qty=lot if trader == 3 else None)
                    lean.submit(cmd)
                    full.submit(cmd)
            for qty in (2, 7, 20, 60):
                oid += 1
                events, n = lean.take(oid, 2, 1, qty * lot, 2)
                want = full.submit(NewOrder(oid, 2, 1, qty * lot, type=OrderType.MARKET, tif=TimeInForce.IOC, smp_id=2))
                assert n == len(want) and events == own_events_dropped(want, oid)
                assert_same_book(lean, full)
                lean.check_invariants()

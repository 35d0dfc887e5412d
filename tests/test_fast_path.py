"""The batch fast path and in-place FIFO walk are proven equal to the general handlers.

``MatchingEngine(spec, fast_path=False)`` sends every command through the general
handlers and matches FIFO through ``Fifo.allocate`` rounds; on the same stream both
engines must print identical events and end in identical books.
"""

from __future__ import annotations

import random

import pytest

from exchange import (
    Cancel,
    EndSession,
    InstrumentSpec,
    MassCancel,
    MatchingEngine,
    Modify,
    NewOrder,
    OrderType,
    ProRata,
    SmpMode,
    Split,
    TimeInForce,
    cme,
    nyse,
)


def mixed_stream(seed: int, n: int, tick: int) -> list:
    """Every command kind and instruction, prices in a narrow band so orders cross often."""
    rnd = random.Random(seed)
    out: list = []
    ids: list[tuple[int, int]] = []
    for oid in range(1, n + 1):
        trader = rnd.randint(1, 4)
        side = rnd.choice((1, -1))
        price = rnd.randint(95, 105) * tick
        qty = rnd.randint(1, 12)
        u = rnd.random()
        if u < 0.45:
            cmd = NewOrder(oid, trader, side, qty, price, tif=rnd.choice((TimeInForce.GTC, TimeInForce.DAY)))
        elif u < 0.55:
            cmd = NewOrder(oid, trader, side, qty, type=OrderType.MARKET, tif=rnd.choice(list(TimeInForce)))
        elif u < 0.60:
            cmd = NewOrder(oid, trader, side, qty, price, tif=rnd.choice((TimeInForce.IOC, TimeInForce.FOK)))
        elif u < 0.65:
            cmd = NewOrder(oid, trader, side, 3 * qty, price, display_qty=rnd.randint(1, qty))
        elif u < 0.70:
            cmd = NewOrder(oid, trader, side, qty, price, smp_id=trader, smp_mode=rnd.choice([None, *SmpMode]))
        elif u < 0.74:
            trigger = price + side * rnd.randint(1, 4) * tick
            kind = rnd.choice((OrderType.STOP, OrderType.STOP_LIMIT))
            cmd = NewOrder(oid, trader, side, qty, trigger + side * tick, type=kind, stop_price=trigger)
        elif u < 0.76:
            cmd = NewOrder(oid, trader, side, qty, price, post_only=True)
        elif u < 0.78:
            cmd = NewOrder(oid, trader, side, qty, price + rnd.choice((0, 1)), min_qty=rnd.randint(1, qty), tif=TimeInForce.IOC)
        elif u < 0.92 and ids:
            target, owner = rnd.choice(ids)
            cmd = Cancel(target, owner if rnd.random() < 0.9 else owner + 1)
        elif u < 0.98 and ids:
            target, owner = rnd.choice(ids)
            cmd = Modify(target, owner, rnd.randint(1, 15), rnd.choice((None, price)))
        elif u < 0.99:
            cmd = MassCancel(trader)
        else:
            cmd = EndSession()
        if isinstance(cmd, NewOrder):
            ids.append((oid, trader))
        out.append(cmd)
    return out


SPECS = {
    "nyse": nyse(),
    "cme": cme(),
    "fifo-all-types": InstrumentSpec("ALL"),
    "pro-rata-C": cme(rule=ProRata(top=False)),
    "split-K": cme(rule=Split(fifo_pct=40)),
    "banded": nyse(price_band=3, reference_price=100),
}


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_prints_what_the_general_handlers_print(name: str, seed: int) -> None:
    spec = SPECS[name]
    stream = mixed_stream(seed, 3000, spec.tick)
    fast, slow = MatchingEngine(spec), MatchingEngine(spec, fast_path=False)
    for i in range(0, len(stream), 100):
        chunk = stream[i : i + 100]
        assert fast.submit_many(chunk) == slow.submit_many(chunk), f"diverged in commands {i}..{i + 100}"
        fast.check_invariants()
    assert fast.state_hash() == slow.state_hash()
    assert fast.book.l3() == slow.book.l3()


def test_submit_one_by_one_equals_submit_many() -> None:
    stream = mixed_stream(9, 2000, 1)
    one, many = MatchingEngine(nyse()), MatchingEngine(nyse())
    events = [ev for cmd in stream for ev in one.submit(cmd)]
    assert events == many.submit_many(stream)


@pytest.mark.parametrize("name", ["nyse", "cme", "pro-rata-C"])
def test_post_only_fast_path_prints_what_the_general_handlers_print(name: str) -> None:
    """Post-only limits, resting, crossing (refused) or IOC (unsupported), among plain flow."""
    rnd = random.Random(5)
    spec = SPECS[name]
    stream: list = []
    for oid in range(1, 3001):
        side, price = rnd.choice((1, -1)), rnd.randint(95, 105) * spec.tick
        post = rnd.random() < 0.6
        tif = rnd.choice((TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC)) if post else TimeInForce.GTC
        stream.append(NewOrder(oid, rnd.randint(1, 4), side, rnd.randint(1, 9), price, tif=tif, post_only=post))
        if rnd.random() < 0.3:
            stream.append(Modify(rnd.randint(1, oid), rnd.randint(1, 4), rnd.randint(1, 9), price))
    fast, slow = MatchingEngine(spec), MatchingEngine(spec, fast_path=False)
    assert fast.submit_many(stream) == slow.submit_many(stream)
    assert fast.book.l3() == slow.book.l3()
    fast.check_invariants()

"""Determinism: a long seeded stream per preset is pinned by a golden hash of its event log.

The engine holds no clock and no random generator, so the same commands must give the same
events, byte for byte, in any process, one command at a time or in batches of any size.
``golden_stream`` builds 50,000 commands from ``random.Random(1234)``: every order type and
instruction, SMP ids and modes, cancels (some of dead or unknown orders, some by the wrong
trader), modifies, mass cancels and session ends, in a narrow price band so that orders
cross, sweep, refresh and trigger stops. The digest is the SHA-256 of the events, each
encoded with ``msgspec.json.encode`` and followed by a newline.

Regenerating the pins, deliberately: when a change is *meant* to alter the event log (a new
event field, a changed matching rule, a different stream), run

    .venv/bin/python tests/test_golden.py

which prints the new ``GOLDEN`` table; paste it below and say in the commit message why the
log changed. Never update the pins to make an unexplained failure go away: first find the
first differing event, e.g. run ``golden_stream`` through the last good commit's engine (a
``git worktree``) and through yours, and compare the two logs with ``first_difference``.
``golden_stream`` is frozen: changing it changes every pin.
"""

from __future__ import annotations

import hashlib
import random

import msgspec
import pytest

from exchange import (
    Cancel,
    EndSession,
    MassCancel,
    MatchingEngine,
    Modify,
    NewOrder,
    OrderType,
    SmpMode,
    TimeInForce,
    cme,
    nyse,
)

SEED, N = 1234, 50_000
PRESETS = {"nyse": nyse, "cme": cme}

# preset -> (number of events, SHA-256 of the event log, state_hash() at the end)
GOLDEN = {
    "nyse": (
        129071,
        "13c85cc585183665d937c0520f0d2001aef932e399fc8d40ffab685a718a605b",
        "07d354f336338f3083be2cc274a3914dc0d06db8ddcb8863c31ab88ce114a944",
    ),
    "cme": (
        136219,
        "402d8af652c281d5836511ebfad6eec0f52e3378042300bee94dc74659b1c0c6",
        "c3dbfa64208a268eb6cb9ceaae742bb6f1f12d6bea35ddc3503ec4d84099dd74",
    ),
}


def golden_stream(tick: int, n: int = N, seed: int = SEED) -> list:
    """``n`` commands from ``seed``, prices in ticks of ``tick``. Frozen (see module doc)."""
    rnd = random.Random(seed)
    out: list = []
    entered: list[tuple[int, int]] = []  # (order id, trader) of every order sent, live or not
    next_id = 1
    tifs, modes = list(TimeInForce), [None, *SmpMode]
    for _ in range(n):
        u = rnd.random()
        trader = rnd.randint(1, 6)
        side = rnd.choice((1, -1))
        price = (100 - side * rnd.randint(-2, 8)) * tick  # bids 92..102, asks 98..108
        qty = rnd.randint(1, 20)
        smp = rnd.choice((None, None, None, trader % 3, trader % 3 + 10))
        mode = rnd.choice(modes)
        oid = next_id
        if u < 0.40:
            cmd = NewOrder(oid, trader, side, qty, price, tif=rnd.choice((TimeInForce.GTC, TimeInForce.DAY)),
                           smp_id=smp, smp_mode=mode)
        elif u < 0.45:
            min_qty = rnd.choice((None, rnd.randint(1, qty)))
            cmd = NewOrder(oid, trader, side, qty, price, tif=TimeInForce.IOC, min_qty=min_qty, smp_id=smp, smp_mode=mode)
        elif u < 0.48:
            kind = rnd.choice((OrderType.LIMIT, OrderType.MARKET))
            cmd = NewOrder(oid, trader, side, qty, price if kind == OrderType.LIMIT else None, type=kind,
                           tif=TimeInForce.FOK, smp_id=smp, smp_mode=mode)
        elif u < 0.51:
            cmd = NewOrder(oid, trader, side, qty, price, post_only=True, tif=rnd.choice((TimeInForce.GTC, TimeInForce.DAY)))
        elif u < 0.55:
            cmd = NewOrder(oid, trader, side, 3 * qty, price, display_qty=rnd.randint(1, qty), smp_id=smp, smp_mode=mode)
        elif u < 0.60:
            cmd = NewOrder(oid, trader, side, qty, type=OrderType.MARKET, tif=rnd.choice(tifs), smp_id=smp, smp_mode=mode)
        elif u < 0.62:
            cmd = NewOrder(oid, trader, side, qty, type=OrderType.MARKET_PROTECT, protection=rnd.choice((None, 0, 1, 3)),
                           tif=rnd.choice((TimeInForce.GTC, TimeInForce.IOC)), smp_id=smp, smp_mode=mode)
        elif u < 0.64:
            cmd = NewOrder(oid, trader, side, qty, type=OrderType.MARKET_LIMIT,
                           tif=rnd.choice((TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC)))
        elif u < 0.70:
            trigger = (100 + side * rnd.randint(-1, 6)) * tick
            kind = rnd.choice((OrderType.STOP, OrderType.STOP_LIMIT))
            cmd = NewOrder(oid, trader, side, qty, trigger + side * rnd.randint(-1, 3) * tick, type=kind,
                           stop_price=trigger, tif=rnd.choice((TimeInForce.GTC, TimeInForce.DAY)),
                           protection=rnd.choice((None, 2)), smp_id=smp, smp_mode=mode)
        elif u < 0.71:  # refused: bad quantity, off tick, duplicate id
            junk = rnd.randint(0, 2)
            if junk == 0:
                cmd = NewOrder(oid, trader, side, 0, price)
            elif junk == 1:
                cmd = NewOrder(oid, trader, side, qty, price + 1)
            else:
                cmd = NewOrder(rnd.choice(entered)[0] if entered else oid, trader, side, qty, price)
        elif u < 0.86 and entered:
            target, owner = rnd.choice(entered[-60:])
            cmd = Cancel(target, owner if rnd.random() < 0.9 else owner % 6 + 1)
        elif u < 0.98 and entered:
            target, owner = rnd.choice(entered[-60:])
            new_price = rnd.choice((None, None, price, price + side * tick))
            cmd = Modify(target, owner if rnd.random() < 0.95 else owner % 6 + 1, rnd.randint(1, 25), new_price)
        elif u < 0.995:
            cmd = MassCancel(trader)
        else:
            cmd = EndSession()
        if isinstance(cmd, NewOrder) and cmd.order_id == oid:
            entered.append((oid, trader))
            next_id += 1
        out.append(cmd)
    return out


def log_digest(events: list) -> str:
    """SHA-256 of the events, each ``msgspec.json.encode``-d and followed by a newline."""
    h = hashlib.sha256()
    encode = msgspec.json.encode
    for e in events:
        h.update(encode(e))
        h.update(b"\n")
    return h.hexdigest()


def first_difference(a: list, b: list) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"event {i}: {x!r} != {y!r}"
    return f"lengths {len(a)} != {len(b)}"


def run(name: str) -> tuple[MatchingEngine, list]:
    spec = PRESETS[name]()
    eng = MatchingEngine(spec)
    return eng, eng.submit_many(golden_stream(spec.tick))


@pytest.fixture(scope="module")
def logs() -> dict[str, tuple[MatchingEngine, list]]:
    return {name: run(name) for name in PRESETS}


@pytest.mark.parametrize("name", PRESETS)
def test_event_log_matches_golden_hash(name: str, logs: dict) -> None:
    eng, events = logs[name]
    eng.check_invariants()
    assert (len(events), log_digest(events), eng.state_hash()) == GOLDEN[name], (
        "the event log changed; if deliberate, regenerate the pins (see module docstring)"
    )


@pytest.mark.parametrize("name", PRESETS)
def test_same_stream_twice_gives_the_same_log(name: str, logs: dict) -> None:
    _, events = logs[name]
    _, again = run(name)
    assert log_digest(again) == log_digest(events), first_difference(events, again)


@pytest.mark.parametrize("name", PRESETS)
def test_one_by_one_and_any_batching_give_the_same_events(name: str, logs: dict) -> None:
    _, events = logs[name]
    spec = PRESETS[name]()
    stream = golden_stream(spec.tick)
    one = MatchingEngine(spec)
    single = [e for cmd in stream for e in one.submit(cmd)]
    assert single == events, first_difference(events, single)
    chunked = MatchingEngine(spec)
    rnd, i, batched = random.Random(7), 0, []
    while i < len(stream):
        size = rnd.randint(1, 700)
        batched += chunked.submit_many(stream[i : i + size])
        i += size
    assert batched == events, first_difference(events, batched)
    assert one.state_hash() == chunked.state_hash() == logs[name][0].state_hash()


def test_streams_exercise_every_event_kind(logs: dict) -> None:
    """The pinned streams are worth pinning: every event kind occurs (nyse refuses stops)."""
    every = {"Accepted", "Rejected", "Fill", "Cancelled", "Modified", "Triggered", "Expired", "Refreshed", "BookUpdate"}
    for name, (_, events) in logs.items():
        expected = every - {"Triggered"} if name == "nyse" else every
        assert {type(e).__name__ for e in events} == expected, name


if __name__ == "__main__":  # print the GOLDEN table for the engine as it is now
    print("GOLDEN = {")
    for name in PRESETS:
        eng, events = run(name)
        print(f'    "{name}": (\n        {len(events)},\n        "{log_digest(events)}",\n        "{eng.state_hash()}",\n    ),')
    print("}")

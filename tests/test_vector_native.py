"""The C kernel ``vector.native.native_step`` is ``vector.book.step``, bit for bit.

Every step of every test runs both transitions on the same state and command and requires
every ``StepOut`` field and every state tensor to be identical (dtype, shape, values), the
inputs to be unchanged afterwards (both are pure), and ``maker_*`` to be the old state's
tensors. The engine-generated streams of ``tests/test_vector_book.py`` then also check the
native results against the scalar engine (fills, statuses, TOP, last price, ``state_hash``)
after every step; a fuzzer adds what no engine stream sends (unknown kinds, sides, types
and durations, out-of-range prices, quantities and ids, int64 commands into int32 books).
Skipped only where no C compiler is found (CI has gcc: these tests run there).
"""

from __future__ import annotations

import random
from dataclasses import fields

import pytest
import torch

import test_vector_book as book_tests
from test_vector_book import SPECS, BookStream, run_differential
from vector import BookParams, BookState, Commands, StepOut, init, step, step_fn
from vector.book import _FOK, _GTC, _IOC, _LIMIT, _MARKET, _MKT_LIMIT, _PROTECT, CANCEL, NEW, NONE
from vector import native
from vector.native import NativeUnavailable, native_step

pytestmark = pytest.mark.skipif(native.compiler() is None, reason="no C compiler (cc, gcc or $CC) to build vector/native.c")


def assert_same(got: StepOut | BookState, want: StepOut | BookState, where: str) -> None:
    """Every field identical: dtype, shape and values."""
    for f in fields(want):
        g, w = getattr(got, f.name), getattr(want, f.name)
        assert g.dtype == w.dtype and g.shape == w.shape, f"{where}: {f.name} {g.dtype}{tuple(g.shape)} vs {w.dtype}{tuple(w.shape)}"
        assert torch.equal(g, w), f"{where}: {f.name}\nnative {g.tolist()}\ntorch  {w.tolist()}"


def checked_step(threads: int = 1, other_threads: int | None = None):
    """A transition for ``run_differential``: ``native_step`` (with ``threads``), checked
    against ``vector.book.step`` (and ``native_step`` with ``other_threads``) on every call."""
    calls = [0]

    def both(state: BookState, params: BookParams, cmd: Commands) -> tuple[BookState, StepOut]:
        inputs = [t.clone() for t in (*vars(state).values(), *vars(cmd).values())]
        want_state, want = step(state, params, cmd)
        got_state, got = native_step(state, params, cmd, threads)
        where = f"call {calls[0]}"
        assert_same(got, want, where)
        assert_same(got_state, want_state, where + " (state)")
        assert got.maker_price is state.price and got.maker_id is state.order_id and got.maker_owner is state.owner
        if other_threads is not None:
            again_state, again = native_step(state, params, cmd, other_threads)
            assert_same(again, got, where + f" threads {other_threads}")
            assert_same(again_state, got_state, where + f" threads {other_threads} (state)")
        for before, after in zip(inputs, (*vars(state).values(), *vars(cmd).values())):
            assert torch.equal(before, after), where + ": an input changed"
        calls[0] += 1
        return got_state, got

    return both


# ---- against the torch step and the scalar engine, on the engine-generated streams --------------
@pytest.mark.parametrize("dtype", ["int64", "int32"])
@pytest.mark.parametrize("rule", sorted(SPECS))
def test_native_equals_step_and_engine(rule: str, dtype: str) -> None:
    """Sixteen books per batch, each its own seed and profile (shallow, deep, at capacity,
    aggressive); both rules (FIFO; pro rata with TOP and min_alloc 2, without TOP, with
    min_alloc 4) and both dtypes."""
    spec = SPECS[rule]()
    rnd = random.Random(f"{rule}-{dtype}")
    capacity = rnd.choice((6, 8, 12))
    streams = [
        BookStream(rnd.randrange(1 << 30), spec, capacity, depth=rnd.choice((2, capacity // 2, capacity, capacity + 4)),
                   aggression=rnd.choice((0.1, 0.25, 0.45)))
        for _ in range(16)
    ]
    assert run_differential(spec, capacity, streams, steps=100, step=checked_step(), dtype=dtype) == 16 * 100


def test_native_at_capacity_and_overflow() -> None:
    """Books driven past capacity: CAPACITY refusals, the sticky overflow flag."""
    spec = SPECS["fifo"]()
    streams = [BookStream(77 + b, spec, 4, depth=12, aggression=0.1, idle=0.0) for b in range(4)]
    assert run_differential(spec, 4, streams, 80, step=checked_step(), dtype="int32") == 320


def test_native_deep_pro_rata_sweeps() -> None:
    """Capacity 40, many orders per level, big aggressors: long pro-rata sweeps."""
    spec = SPECS["pro_rata"]()
    streams = [BookStream(500 + b, spec, 40, depth=30, aggression=0.3) for b in range(4)]
    assert run_differential(spec, 40, streams, 120, step=checked_step()) == 480


SCENARIOS = [  # (test of tests/test_vector_book.py, its arguments)
    *(("test_sweep_continues_past_the_first_level", {"rule": r}) for r in sorted(SPECS)),
    *(("test_remainder_rests_behind_the_book_not_crossing_it", {"rule": r}) for r in sorted(SPECS)),
    ("test_published_cme_allocation", {}),
    ("test_full_side_refuses_a_resting_order_and_changes_nothing", {}),
    ("test_overflow_flag_cleared_by_reset_only_for_masked_books", {}),
    ("test_one_batch_with_empty_deep_and_full_books", {}),
    ("test_misuse_is_invalid_and_changes_nothing", {}),
    ("test_day_and_stops_are_refused_as_unsupported", {}),
    ("test_int64_commands_into_an_int32_book", {}),
    ("test_int32_book_at_its_price_limits", {}),
    ("test_commands_new_and_cancel_helpers", {}),
    ("test_levels_view_equals_engine_l2", {"depth": 3}),
]


@pytest.mark.parametrize("name, kwargs", SCENARIOS, ids=[f"{n}{list(k.values()) or ''}" for n, k in SCENARIOS])
def test_book_scenarios_on_native(name: str, kwargs: dict, monkeypatch) -> None:
    """The scenario tests of ``tests/test_vector_book.py`` (sweeps, the published CME
    allocation, capacity and overflow, misuse, int32 limits), their ``step`` replaced by the
    checked native step."""
    monkeypatch.setattr(book_tests, "step", checked_step())
    getattr(book_tests, name)(**kwargs)


# ---- against the torch step on commands no engine stream sends -----------------------------------
def fuzz_commands(rnd: random.Random, state: BookState, params: BookParams, garbage: float, center: int = 1000) -> Commands:
    """One int64 command per book: mostly plausible orders and cancels around the book
    (marketable, passive, sweeps, post-only, cancels of live, unknown and others' orders),
    a share ``garbage`` with one field set to an edge value (out of range, off tick or lot,
    too wide for an int32 book, an unknown code, a duplicate id). Prices around ``center`` ticks."""
    tick, lot, max_price = params.tick, params.lot, params.max_price
    oids, owners, qtys = (t.tolist() for t in (state.order_id, state.owner, state.qty))
    rows = []
    for b in range(state.batch):
        live = [(oids[b][r][j], owners[b][r][j]) for r in (0, 1) for j in range(params.capacity) if qtys[b][r][j] > 0]
        u = rnd.random()
        side = rnd.choice((1, -1))
        price = (center + rnd.randint(-8, 8)) * tick
        qty = rnd.randint(1, 30) * lot if rnd.random() < 0.9 else rnd.randint(40, 120) * lot
        typ = rnd.choices((_LIMIT, _MARKET, _PROTECT, _MKT_LIMIT), (0.7, 0.12, 0.1, 0.08))[0]
        tif = rnd.choices((_GTC, _IOC, _FOK), (0.7, 0.15, 0.15))[0]
        row = [NEW, rnd.randrange(1, 1 << 20), rnd.randint(1, 4), side, qty, price, typ, tif, int(rnd.random() < 0.1)]
        if u < 0.05:
            row[0] = NONE
        elif u < 0.3:
            oid, owner = rnd.choice(live) if live and rnd.random() < 0.8 else (rnd.randrange(1, 1 << 20), 1)
            row[:3] = [CANCEL, oid, owner if rnd.random() < 0.85 else owner % 4 + 1]
        if rnd.random() < garbage:
            field = rnd.randrange(9)
            edge = {
                0: (-1, 3, 7, NONE, NEW, CANCEL),
                1: (0, -1, 1 << 31, -(1 << 40), 1 << 40, (1 << 31) - 1) + tuple(i for i, _ in live[:1]),
                2: (0, -1, 1 << 31, 1 << 40, (1 << 31) - 1),
                3: (0, 2, -2, 1 << 33, 1, -1),
                4: (0, -lot, lot + 1, params.max_qty, params.max_qty + lot, 1 << 40, -(1 << 40)),
                5: (0, -tick, 1, price + 1, max_price, max_price + 1, 1 << 40, 1 << 62, -(1 << 40), max_price // tick * tick),
                6: (-1, 4, 5, 6, 9, 1 << 33),
                7: (-1, 1, 4, 7, 1 << 33),
                8: (0, 1),
            }[field]
            row[field] = rnd.choice(edge)
        rows.append(row)
    cols = torch.tensor(rows, dtype=torch.int64).T
    return Commands(*cols[:8], cols[8].bool())


@pytest.mark.parametrize(
    "rule, dtype, center",
    [("fifo", "int64", 1000), ("fifo", "int32", 1000), ("pro_rata", "int64", 1000), ("pro_rata", "int32", 4),
     ("pro_rata_c", "int32", 1000), ("pro_rata_min", "int64", 1000)],
)
def test_native_equals_step_fuzzed(rule: str, dtype: str, center: int) -> None:
    """Random plausible and malformed commands (int64, so an int32 book narrows them: an id
    or trader it cannot hold is INVALID) on small books that fill up, empty and overflow;
    prices near zero too (a protected limit below one tick)."""
    params = BookParams.from_spec(SPECS[rule](), 5, dtype=dtype)
    rnd = random.Random(f"fuzz-{rule}-{dtype}-{center}")
    both = checked_step()
    state = init(params, 24)
    for _ in range(150):
        state, _ = both(state, params, fuzz_commands(rnd, state, params, garbage=0.25, center=center))


def test_native_threads_do_not_change_results() -> None:
    """1 and 2 threads (a batch large enough to split): the same outputs, bit for bit."""
    params = BookParams.from_spec(SPECS["pro_rata"](), 6)
    rnd = random.Random(11)
    both = checked_step(threads=2, other_threads=1)
    state = init(params, 1024)
    for _ in range(25):
        state, _ = both(state, params, fuzz_commands(rnd, state, params, garbage=0.1))


# ---- selection, build and refusal ------------------------------------------------------------------
def test_step_fn_selects_native() -> None:
    assert step_fn(native=True) is native_step
    with pytest.raises(ValueError, match="one of"):
        step_fn(compile=True, native=True)


def test_native_refuses_non_cpu_tensors() -> None:
    params = BookParams(capacity=4)
    state = init(params, 2)
    meta = BookState(*(getattr(state, f.name).to("meta") for f in fields(state)))
    with pytest.raises(ValueError, match="CPU"):
        native_step(meta, params, Commands.cancel(torch.tensor([1, 2]), trader=1))


def test_build_into_a_fresh_cache(tmp_path, monkeypatch) -> None:
    """A build lands in ``$RESEARCH_EXCHANGE_NATIVE_CACHE`` (renamed into place, no
    temporary left); a missing compiler is ``NativeUnavailable`` naming it."""
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    native.library.cache_clear()
    try:
        assert native.available()
        assert [p.suffix for p in tmp_path.iterdir()] == [".so"]
        monkeypatch.setenv("CC", "no-such-cc")
        native.library.cache_clear()
        with pytest.raises(NativeUnavailable, match="no-such-cc"):
            native.library()
        assert not native.available()
    finally:
        native.library.cache_clear()

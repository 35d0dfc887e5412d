"""Self-match prevention: orders with the same ``smp_id`` never trade together.

The aggressing order's mode (else the instrument's default) decides: CANCEL_RESTING cancels
the resting order and the level is allocated again without it; CANCEL_AGGRESSING executes
the allocations before the conflict and cancels the aggressor's remainder, which never
rests; CANCEL_BOTH also cancels the resting order. Orders with no SMP id are not checked.
"""

import pytest
from helpers import book, buy, engine, fills, kinds, of, refused, resting, table
from helpers import invariants_checked  # noqa: F401  (autouse: both engine paths, invariants checked)

from exchange import (
    CancelReason,
    Cancelled,
    InstrumentSpec,
    ProRata,
    RejectReason,
    SmpMode,
    TimeInForce,
    cme,
    nyse,
)

RESTING, AGGRESSING, BOTH = SmpMode.CANCEL_RESTING, SmpMode.CANCEL_AGGRESSING, SmpMode.CANCEL_BOTH


def cancelled(events):
    """``[(order_id, qty), ...]`` cancelled for self-match."""
    return [(e.order_id, e.qty) for e in of(Cancelled, events) if e.reason == CancelReason.SELF_MATCH]


FIFO_BOOK = """
    side  price  qty  trader  id
    sell  100     5     1      1   smp=7
    sell  100     5     2      2
    sell  100     5     3      3   smp=7
    sell  101     5     4      4   smp=7
    sell  102     5     5      5
"""


# ---- who is checked ------------------------------------------------------------------------------
def test_orders_with_different_or_no_smp_id_trade_even_for_the_same_trader():
    eng = engine(nyse())
    book(eng, """
        sell  100     5     1      1
        sell  100     5     1      2   smp=8
    """)
    events = eng.submit(buy(10, 100, trader=1, smp_id=7))
    assert fills(events) == [(1, 5, 100), (2, 5, 100)]  # 1 has no id, 2 another id
    assert cancelled(events) == []


def test_aggressor_without_smp_id_is_not_checked():
    eng = engine(nyse())
    book(eng, "sell 100 5 1 1 smp=7")
    assert fills(eng.submit(buy(5, 100, trader=1))) == [(1, 5, 100)]


# ---- cancel resting ---------------------------------------------------------------------------------
def test_cancel_resting_under_fifo_cancels_only_what_would_have_executed():
    eng = engine(nyse())
    book(eng, FIFO_BOOK)
    events = eng.submit(buy(4, 102, smp_id=7, smp_mode=RESTING))
    assert cancelled(events) == [(1, 5)]
    assert fills(events) == [(2, 4, 100)]
    assert resting(eng) == table("""
        sell  100     1     2      2
        sell  100     5     3      3   # further back: untouched
        sell  101     5     4      4
        sell  102     5     5      5
    """)


def test_cancel_resting_reallocates_the_level_and_the_aggressor_goes_on():
    eng = engine(nyse())
    book(eng, FIFO_BOOK)
    events = eng.submit(buy(9, 102, smp_id=7, smp_mode=RESTING, id=9))
    assert cancelled(events) == [(1, 5), (3, 5), (4, 5)]  # each would have executed in turn
    assert fills(events) == [(2, 5, 100), (5, 4, 102)]
    assert resting(eng) == table("sell 102 1 5 5")


def test_self_match_cancels_are_reported_in_allocation_order_on_both_paths():
    for fast_path in (True, False):
        eng = engine(nyse(), fast_path=fast_path)
        book(eng, FIFO_BOOK)
        events = eng.submit(buy(9, 102, smp_id=7, smp_mode=RESTING, id=9))
        assert kinds(events) == [
            "Accepted",
            "Cancelled", "Fill", "Cancelled", "BookUpdate",  # level 100: 1 cancelled, 2 fills, 3 cancelled
            "Cancelled", "BookUpdate",  # level 101
            "Fill", "BookUpdate",  # level 102
        ], f"fast_path={fast_path}"


def test_cancel_resting_aggressor_rests_its_remainder():
    eng = engine(nyse())
    book(eng, "sell 100 5 1 1 smp=7")
    events = eng.submit(buy(3, 100, smp_id=7, smp_mode=RESTING, id=9))
    assert cancelled(events) == [(1, 5)]
    assert resting(eng) == [("buy", 100, 3, 99, 9)]


def test_cancel_resting_cancels_an_iceberg_with_its_reserve():
    eng = engine(nyse())
    book(eng, "sell 100 30 1 1 smp=7 display=5")
    assert cancelled(eng.submit(buy(3, 100, smp_id=7, smp_mode=RESTING))) == [(1, 30)]


# ---- cancel aggressing ------------------------------------------------------------------------------
def test_cancel_aggressing_keeps_earlier_fills_and_cancels_the_whole_remainder():
    eng = engine(nyse())
    book(eng, """
        sell  100     5     2      2
        sell  100     5     1      1   smp=7
        sell  100     5     3      3
    """)
    events = eng.submit(buy(12, 100, smp_id=7, smp_mode=AGGRESSING, id=9))
    assert fills(events) == [(2, 5, 100)]
    assert cancelled(events) == [(9, 7)]
    assert kinds(events)[-1] == "Cancelled"
    assert resting(eng) == table("""
        sell  100     5     1      1
        sell  100     5     3      3
    """)


def test_cancel_aggressing_remainder_never_rests_even_for_a_gtc_limit():
    eng = engine(nyse())
    book(eng, "sell 100 5 1 1 smp=7")
    events = eng.submit(buy(3, 101, smp_id=7, smp_mode=AGGRESSING, tif=TimeInForce.GTC, id=9))
    assert fills(events) == [] and cancelled(events) == [(9, 3)]
    assert resting(eng) == table("sell 100 5 1 1")


# ---- cancel both ------------------------------------------------------------------------------------------
def test_cancel_both_cancels_the_resting_order_and_the_aggressors_remainder():
    eng = engine(nyse())
    book(eng, """
        sell  100     5     2      2
        sell  100     5     1      1   smp=7
        sell  100     5     3      3
    """)
    events = eng.submit(buy(12, 100, smp_id=7, smp_mode=BOTH, id=9))
    assert fills(events) == [(2, 5, 100)]
    assert cancelled(events) == [(1, 5), (9, 7)]
    assert kinds(events) == ["Accepted", "Fill", "Cancelled", "BookUpdate", "Cancelled"]
    assert resting(eng) == table("sell 100 5 3 3")


# ---- the mode is the aggressor's ------------------------------------------------------------------------
def test_the_aggressing_orders_mode_decides_not_the_resting_orders():
    eng = engine(nyse())
    book(eng, "sell 100 5 1 1 smp=7 mode=aggressing")
    events = eng.submit(buy(5, 100, smp_id=7, smp_mode=RESTING, id=9))
    assert cancelled(events) == [(1, 5)]
    assert resting(eng) == [("buy", 100, 5, 99, 9)]


@pytest.mark.parametrize(
    "spec, default, cancelled_ids",
    [(nyse(), AGGRESSING, [9]), (cme(), RESTING, [1])],
    ids=["nyse_cancels_aggressing", "cme_cancels_resting"],
)
def test_venue_default_mode_when_the_order_gives_none(spec, default, cancelled_ids):
    assert spec.default_smp_mode == default
    eng = engine(spec)
    book(eng, "sell 10000 5 1 1 smp=7")
    events = eng.submit(buy(5, 10000, smp_id=7, id=9))
    assert [oid for oid, _ in cancelled(events)] == cancelled_ids


# ---- under pro rata -------------------------------------------------------------------------------------------
PRO_RATA_BOOK = """
    sell  100    10     1      1       # TOP
    sell  100    10     2      2   smp=7
    sell  100    10     3      3
"""


def test_pro_rata_cancel_resting_allocates_the_level_again_without_it():
    eng = engine(InstrumentSpec("T", rule=ProRata()))
    book(eng, PRO_RATA_BOOK)
    events = eng.submit(buy(16, 100, smp_id=7, smp_mode=RESTING))
    assert cancelled(events) == [(2, 10)]
    assert fills(events) == [(1, 10, 100), (3, 6, 100)]


def test_pro_rata_cancel_resting_of_the_top_order_leaves_no_top():
    eng = engine(InstrumentSpec("T", rule=ProRata()))
    book(eng, """
        sell  100    10     1      1   smp=7   # TOP
        sell  100    10     2      2
        sell  100    10     3      3
    """)
    events = eng.submit(buy(10, 100, smp_id=7, smp_mode=RESTING))
    assert cancelled(events) == [(1, 10)]
    assert fills(events) == [(2, 5, 100), (3, 5, 100)]
    assert eng.top_order(-1) is None


def test_pro_rata_cancel_aggressing_executes_the_allocations_before_the_conflict():
    eng = engine(InstrumentSpec("T", rule=ProRata()))
    book(eng, PRO_RATA_BOOK)
    # the round is TOP 10, order 2 3, order 3 3: only TOP's comes before order 2
    events = eng.submit(buy(16, 100, smp_id=7, smp_mode=AGGRESSING, id=9))
    assert fills(events) == [(1, 10, 100)]
    assert cancelled(events) == [(9, 6)]


# ---- with FOK and minimum quantity ---------------------------------------------------------------------------
def test_fok_that_would_self_match_is_refused_unless_resting_orders_are_cancelled():
    eng = engine(nyse())
    book(eng, """
        sell  100     5     1      1   smp=7
        sell  100     5     2      2
    """)
    refused(eng, buy(10, 100, tif=TimeInForce.FOK, smp_id=7, smp_mode=AGGRESSING), RejectReason.FOK_NOT_FILLABLE)
    # cancelling the resting order leaves 5 of the 10: not fillable either
    refused(eng, buy(10, 100, tif=TimeInForce.FOK, smp_id=7, smp_mode=RESTING), RejectReason.FOK_NOT_FILLABLE)
    events = eng.submit(buy(5, 100, tif=TimeInForce.FOK, smp_id=7, smp_mode=RESTING))
    assert cancelled(events) == [(1, 5)] and fills(events) == [(2, 5, 100)]


@pytest.mark.parametrize("tif, min_qty", [(TimeInForce.FOK, None), (TimeInForce.IOC, 5)], ids=["fok", "ioc_min_qty"])
def test_fok_and_min_qty_ignore_a_same_id_order_fifo_would_not_reach(tif, min_qty):
    eng = engine(nyse())  # default: cancel aggressing
    book(eng, """
        sell  100    10     1      1
        sell  100     5     2      2   smp=7   # behind all the FOK needs
    """)
    events = eng.submit(buy(10, 100, tif=tif, min_qty=min_qty, smp_id=7))
    assert fills(events) == [(1, 10, 100)]
    assert resting(eng) == table("sell 100 5 2 2 smp=7")

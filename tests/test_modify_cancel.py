"""Cancel, mass cancel and modify with exchange priority rules.

Modify: a smaller quantity at the same price keeps time priority (and TOP); a new price or a
larger quantity is a cancel/replace: the order goes to the back of its new level and trades
at once if it crosses (a post-only modify that would cross is refused instead).
"""

import pytest
from helpers import BUY, book, buy, engine, fills, kinds, of, refused, resting, sell, table, updates
from helpers import invariants_checked  # noqa: F401  (autouse: both engine paths, invariants checked)

from exchange import (
    BookUpdate,
    Cancel,
    CancelReason,
    Cancelled,
    InstrumentSpec,
    MassCancel,
    Modified,
    Modify,
    OrderType,
    ProRata,
    RejectReason,
    TimeInForce,
    nyse,
)

R = RejectReason
BIDS = """
    side  price  qty  trader  id
    buy   100    10     1      1
    buy   100    10     2      2
    buy    99    10     3      3
"""


# ---- cancel ----------------------------------------------------------------------------------------
def test_cancel_takes_the_order_off_and_reports_the_level():
    eng = engine(nyse())
    book(eng, BIDS)
    events = eng.submit(Cancel(1, 1))
    assert events == [Cancelled(events[0].seq, 1, 1, 10, CancelReason.USER), BookUpdate(events[0].seq + 1, BUY, 100, 10, 1)]
    assert resting(eng) == table("""
        buy   100    10     2      2
        buy    99    10     3      3
    """)
    assert fills(eng.submit(sell(5, 100))) == [(2, 5, 100)]


def test_cancelling_the_last_order_of_a_level_removes_it():
    eng = engine(nyse())
    book(eng, BIDS)
    assert updates(eng.submit(Cancel(3, 3))) == [(BUY, 99, 0, 0)]
    assert eng.book.l2() == ([(100, 20, 2)], [])


def test_cancel_of_a_partially_filled_order_cancels_its_open_quantity():
    eng = engine(nyse())
    book(eng, BIDS)
    eng.submit(sell(4, 100))
    assert of(Cancelled, eng.submit(Cancel(1, 1)))[0].qty == 6


def test_cancel_unknown_foreign_filled_or_already_cancelled_order_is_refused():
    eng = engine(nyse())
    book(eng, BIDS)
    refused(eng, Cancel(42, 1), R.UNKNOWN_ORDER)
    refused(eng, Cancel(1, 2), R.NOT_OWNER)
    eng.submit(Cancel(1, 1))
    refused(eng, Cancel(1, 1), R.UNKNOWN_ORDER)
    eng.submit(sell(10, 100))  # fills order 2
    refused(eng, Cancel(2, 2), R.UNKNOWN_ORDER)


def test_mass_cancel_removes_every_resting_and_stop_order_of_the_trader():
    eng = engine()
    book(eng, """
        buy   100    10     1      1
        buy   100    10     2      2
        sell  105    10     1      3
    """)
    eng.submit(buy(1, 110, type=OrderType.STOP_LIMIT, stop_price=106, id=4, trader=1))
    events = eng.submit(MassCancel(1))
    assert [(e.order_id, e.qty) for e in of(Cancelled, events)] == [(1, 10), (3, 10), (4, 1)]
    assert resting(eng) == table("buy 100 10 2 2")
    assert eng.stop_orders() == []
    assert eng.submit(MassCancel(1)) == []


# ---- modify: quantity down keeps priority ---------------------------------------------------------------
def test_reducing_quantity_keeps_time_priority():
    eng = engine(nyse())
    book(eng, BIDS)
    events = eng.submit(Modify(1, 1, 4))
    assert events == [Modified(events[0].seq, 1, 1, 100, 4, True), BookUpdate(events[0].seq + 1, BUY, 100, 14, 2)]
    assert fills(eng.submit(sell(6, 100))) == [(1, 4, 100), (2, 2, 100)]


def test_reducing_an_iceberg_takes_from_its_reserve_first():
    eng = engine(nyse())
    book(eng, """
        buy   100    30     1      1   display=10
        buy   100    10     2      2
    """)
    eng.submit(Modify(1, 1, 15))
    assert eng.book.l3()[0][0]["qty"] == 10 and eng.book.l3()[0][0]["hidden"] == 5
    eng.submit(Modify(1, 1, 4))
    assert eng.book.l3()[0][0]["qty"] == 4 and eng.book.l3()[0][0]["hidden"] == 0
    assert fills(eng.submit(sell(5, 100))) == [(1, 4, 100), (2, 1, 100)]


# ---- modify: quantity up or new price loses priority ------------------------------------------------------
def test_increasing_quantity_goes_to_the_back_of_the_level():
    eng = engine(nyse())
    book(eng, BIDS)
    events = eng.submit(Modify(1, 1, 12))
    assert of(Modified, events)[0].priority_kept is False
    assert resting(eng) == table("""
        buy   100    10     2      2
        buy   100    12     1      1
        buy    99    10     3      3
    """)


def test_new_price_goes_to_the_back_of_the_new_level():
    eng = engine(nyse())
    book(eng, BIDS)
    events = eng.submit(Modify(1, 1, 10, 99))
    assert kinds(events) == ["Modified", "BookUpdate", "BookUpdate"]
    assert updates(events) == [(BUY, 100, 10, 1), (BUY, 99, 20, 2)]
    assert resting(eng) == table("""
        buy   100    10     2      2
        buy    99    10     3      3
        buy    99    10     1      1
    """)


def test_moving_away_and_back_does_not_restore_priority():
    eng = engine(nyse())
    book(eng, BIDS)
    eng.submit(Modify(1, 1, 10, 99))
    eng.submit(Modify(1, 1, 10, 100))
    assert fills(eng.submit(sell(12, 100))) == [(2, 10, 100), (1, 2, 100)]


def test_repriced_order_that_crosses_trades_at_once_and_rests_the_rest():
    eng = engine(nyse())
    book(eng, BIDS + "sell 101 4 4 4\nsell 102 4 5 5")
    events = eng.submit(Modify(3, 3, 10, 101))
    assert fills(events) == [(4, 4, 101)]
    assert kinds(events) == ["Modified", "BookUpdate", "Fill", "BookUpdate", "BookUpdate"]
    assert resting(eng) == table("""
        buy   101     6     3      3
        buy   100    10     1      1
        buy   100    10     2      2
        sell  102     4     5      5
    """)


def test_repriced_order_keeps_its_duration():
    eng = engine()
    book(eng, "buy 100 10 1 1 tif=day\nsell 103 2 2 2")
    eng.submit(Modify(1, 1, 10, 103))
    assert eng.book.l3()[0][0]["tif"] == TimeInForce.DAY
    assert eng.open_qty(1) == 8


def test_post_only_modify_that_would_cross_is_refused():
    eng = engine(nyse())
    book(eng, """
        buy   100    10     1      1   post_only
        sell  102    10     2      2
    """)
    refused(eng, Modify(1, 1, 10, 102), R.POST_ONLY_WOULD_CROSS)
    assert of(Modified, eng.submit(Modify(1, 1, 10, 101)))[0].price == 101


# ---- modify and TOP -----------------------------------------------------------------------------------------
def test_reducing_keeps_top_and_increasing_loses_it():
    eng = engine(InstrumentSpec("T", rule=ProRata()))
    book(eng, """
        buy   100    10     1      1    # TOP
        buy   100    10     2      2
    """)
    eng.submit(Modify(1, 1, 6))
    assert eng.top_order(BUY) == 1
    assert fills(eng.submit(sell(6, 100))) == [(1, 6, 100)]
    book(eng, "buy 101 10 3 3")  # new TOP
    eng.submit(Modify(3, 3, 4))
    book(eng, "buy 101 10 4 4")
    eng.submit(Modify(3, 3, 20))
    assert eng.top_order(BUY) is None
    # no TOP: 10 shared 20:10 -> 6 and 3, the leftover lot FIFO to order 4 (now earlier)
    assert fills(eng.submit(sell(10, 101))) == [(4, 4, 101), (3, 6, 101)]


def test_repricing_the_top_order_loses_top():
    eng = engine(InstrumentSpec("T", rule=ProRata()))
    book(eng, """
        buy   100    10     1      1    # TOP
        buy   100    10     2      2
        buy    99    10     3      3
    """)
    eng.submit(Modify(1, 1, 10, 99))
    assert eng.top_order(BUY) is None


# ---- modify refusals -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cmd, reason",
    [
        (Modify(42, 1, 5), R.UNKNOWN_ORDER),
        (Modify(1, 2, 5), R.NOT_OWNER),
        (Modify(1, 1, 10), R.NO_CHANGE),
        (Modify(1, 1, 10, 100), R.NO_CHANGE),
        (Modify(1, 1, 0), R.BAD_QUANTITY),
        (Modify(1, 1, -3), R.BAD_QUANTITY),
        (Modify(1, 1, 7), R.BAD_LOT),
        (Modify(1, 1, 10, 102), R.OFF_TICK),
        (Modify(1, 1, 10, 0), R.BAD_PRICE),
        (Modify(1, 1, 2_000_000), R.QUANTITY_TOO_LARGE),
        (Modify(9, 1, 5), R.UNSUPPORTED),  # a waiting stop cannot be modified
        (Modify(9, 2, 5), R.NOT_OWNER),
    ],
)
def test_modify_refusals_change_nothing(cmd, reason):
    eng = engine(tick=5, lot=5)
    book(eng, "buy 100 10 1 1")
    eng.submit(buy(5, 120, type=OrderType.STOP_LIMIT, stop_price=115, id=9, trader=1))
    refused(eng, cmd, reason)


def test_modify_to_a_price_outside_the_band_is_refused():
    eng = engine(price_band=5, reference_price=100)
    book(eng, "buy 100 10 1 1")
    refused(eng, Modify(1, 1, 10, 94), R.PRICE_OUT_OF_BAND)
    assert of(Modified, eng.submit(Modify(1, 1, 10, 95)))

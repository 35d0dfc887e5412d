"""Order types and durations: limit, market, market with protection, market-limit, IOC/FAK
(with minimum quantity), FOK, post-only, stop and stop-limit, iceberg, DAY/GTC; the presets."""

import pytest
from helpers import BUY, book, buy, engine, fills, kinds, of, refused, resting, sell, table
from helpers import invariants_checked  # noqa: F401  (autouse: both engine paths, invariants checked)

from exchange import (
    Accepted,
    Cancel,
    CancelReason,
    Cancelled,
    EndSession,
    Expired,
    OrderType,
    RejectReason,
    SmpMode,
    TimeInForce,
    Triggered,
    cme,
    nyse,
)

MARKET, PROTECT, MKT_LIMIT = OrderType.MARKET, OrderType.MARKET_PROTECT, OrderType.MARKET_LIMIT
STOP, STOP_LIMIT = OrderType.STOP, OrderType.STOP_LIMIT
GTC, DAY, IOC, FOK = TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK
R = RejectReason

ASKS = """
    side  price  qty  trader  id
    sell  100     3     1      1
    sell  101     3     2      2
    sell  103     3     3      3
"""


# ---- limit ----------------------------------------------------------------------------------------
def test_limit_trades_up_to_its_price_and_rests_the_rest():
    eng = engine()
    book(eng, ASKS)
    assert fills(eng.submit(buy(8, 101, id=9))) == [(1, 3, 100), (2, 3, 101)]
    assert resting(eng) == table("""
        buy   101     2    99      9
        sell  103     3     3      3
    """)


# ---- market -----------------------------------------------------------------------------------------
def test_market_sweeps_without_limit_and_cancels_the_rest():
    eng = engine(nyse())
    book(eng, ASKS)
    events = eng.submit(buy(10, type=MARKET, id=9))
    assert fills(events) == [(1, 3, 100), (2, 3, 101), (3, 3, 103)]
    assert events[0] == Accepted(events[0].seq, 9, 99, BUY, None, 10, MARKET)
    [cancel] = of(Cancelled, events)
    assert (cancel.order_id, cancel.qty, cancel.reason) == (9, 1, CancelReason.UNFILLED)
    assert resting(eng) == []


def test_market_order_never_rests_even_as_gtc_or_day():
    for tif in (GTC, DAY):
        eng = engine(nyse())
        book(eng, "sell 100 1 1 1")
        events = eng.submit(buy(4, type=MARKET, tif=tif))
        assert fills(events) == [(1, 1, 100)]
        assert of(Cancelled, events)[0].qty == 3
        assert resting(eng) == []


def test_market_into_an_empty_side_is_rejected_no_liquidity():
    eng = engine(nyse())
    book(eng, "buy 99 5 1 1")
    refused(eng, buy(5, type=MARKET), R.NO_LIQUIDITY)


# ---- market with protection, market-limit ----------------------------------------------------------
# CME Globex order types, "Market Order with Protection": bid 15, best offer 90025, protection
# 600 points -> protection price limit 90625; fills 2 @ 90025, 3 @ 90300, 3 @ 90550; the next
# offer 90675 is beyond the limit, so the remaining 7 rest at 90625. "Market-Limit Order (Bid)
# with Market": bid 15 becomes a limit at the best offer 90025, fills 2, the rest rests at 90025.
# https://cmegroupclientsite.atlassian.net/wiki/pages/diffpages.action?originalId=500465680&pageId=457227032
CME_OFFERS = """
    sell  90025   2     1      1
    sell  90300   3     2      2
    sell  90550   3     3      3
    sell  90675   5     4      4
"""


def test_cme_market_with_protection_example():
    eng = engine(cme())  # tick 25: 600 points are 24 ticks
    book(eng, CME_OFFERS)
    events = eng.submit(buy(15, type=PROTECT, protection=24, id=9))
    assert events[0] == Accepted(events[0].seq, 9, 99, BUY, 90625, 15, PROTECT)
    assert fills(events) == [(1, 2, 90025), (2, 3, 90300), (3, 3, 90550)]
    assert resting(eng) == table("""
        buy   90625   7    99      9
        sell  90675   5     4      4
    """)


def test_cme_market_limit_example():
    eng = engine(cme())
    book(eng, CME_OFFERS)
    events = eng.submit(buy(15, type=MKT_LIMIT, id=9))
    assert events[0] == Accepted(events[0].seq, 9, 99, BUY, 90025, 15, MKT_LIMIT)
    assert fills(events) == [(1, 2, 90025)]
    assert resting(eng)[0] == ("buy", 90025, 13, 99, 9)


def test_market_with_protection_uses_the_instruments_protection_by_default():
    eng = engine(protection_ticks=2)
    book(eng, ASKS)
    events = eng.submit(buy(10, type=PROTECT, id=9))
    assert fills(events) == [(1, 3, 100), (2, 3, 101)]  # limit 100 + 2 ticks = 102
    assert resting(eng)[0] == ("buy", 102, 4, 99, 9)


@pytest.mark.parametrize("typ", [PROTECT, MKT_LIMIT])
def test_market_kinds_into_an_empty_side_are_rejected(typ):
    eng = engine()
    refused(eng, buy(1, type=typ), R.NO_LIQUIDITY)


def test_ioc_market_with_protection_cancels_instead_of_resting():
    eng = engine()
    book(eng, ASKS)
    events = eng.submit(buy(10, type=PROTECT, protection=1, tif=IOC))
    assert fills(events) == [(1, 3, 100), (2, 3, 101)]
    assert of(Cancelled, events)[0].qty == 4
    assert resting(eng) == table("sell 103 3 3 3")


# ---- IOC / FAK and minimum quantity ------------------------------------------------------------------
def test_ioc_fills_what_it_can_and_cancels_the_rest():
    eng = engine()
    book(eng, ASKS)
    events = eng.submit(buy(10, 101, tif=IOC, id=9))
    assert fills(events) == [(1, 3, 100), (2, 3, 101)]
    assert of(Cancelled, events) == [Cancelled(events[-1].seq, 9, 99, 4, CancelReason.UNFILLED)]
    assert resting(eng) == table("sell 103 3 3 3")


def test_ioc_with_minimum_quantity_trades_when_that_much_is_there():
    eng = engine()
    book(eng, ASKS)
    events = eng.submit(buy(10, 101, tif=IOC, min_qty=6))
    assert fills(events) == [(1, 3, 100), (2, 3, 101)]
    assert of(Cancelled, events)[0].qty == 4


def test_ioc_with_minimum_quantity_is_refused_when_less_is_fillable():
    eng = engine()
    book(eng, ASKS)
    refused(eng, buy(10, 101, tif=IOC, min_qty=7), R.MIN_QTY_NOT_FILLABLE)


def test_minimum_quantity_is_only_for_ioc():
    eng = engine()
    book(eng, ASKS)
    refused(eng, buy(10, 101, tif=GTC, min_qty=2), R.UNSUPPORTED)
    refused(eng, buy(10, 101, tif=IOC, min_qty=11), R.BAD_MIN_QTY)
    refused(eng, buy(10, 101, tif=IOC, min_qty=0), R.BAD_MIN_QTY)


# ---- FOK --------------------------------------------------------------------------------------------------
def test_fok_fills_completely_across_levels():
    eng = engine()
    book(eng, ASKS)
    events = eng.submit(buy(6, 101, tif=FOK))
    assert fills(events) == [(1, 3, 100), (2, 3, 101)]
    assert kinds(events) == ["Accepted", "Fill", "BookUpdate", "Fill", "BookUpdate"]


def test_fok_that_cannot_fill_completely_is_refused_without_side_effect():
    eng = engine()
    book(eng, ASKS)
    refused(eng, buy(7, 101, tif=FOK), R.FOK_NOT_FILLABLE)  # 6 within the limit
    refused(eng, sell(1, 99, tif=FOK), R.FOK_NOT_FILLABLE)  # nothing at all
    assert eng.last_price is None


def test_fok_counts_iceberg_reserve_that_refreshes_within_the_order():
    eng = engine()
    book(eng, "sell 100 10 1 1 display=2")
    assert fills(eng.submit(buy(10, 100, tif=FOK))) == [(1, 2, 100)] * 5


# ---- post-only --------------------------------------------------------------------------------------------
def test_post_only_rests_when_it_would_not_take_liquidity():
    eng = engine(nyse())
    book(eng, ASKS)
    events = eng.submit(buy(5, 99, post_only=True, id=9))
    assert kinds(events) == ["Accepted", "BookUpdate"]
    assert resting(eng)[0] == ("buy", 99, 5, 99, 9)


@pytest.mark.parametrize("price", [100, 101])
def test_post_only_that_would_take_liquidity_is_rejected(price):
    eng = engine(nyse())
    book(eng, ASKS)
    refused(eng, buy(5, price, post_only=True), R.POST_ONLY_WOULD_CROSS)


# ---- stop and stop-limit ------------------------------------------------------------------------------------
def stop_book(eng):
    book(eng, """
        sell  100     1     1      1
        sell  101     1     2      2
        sell  102    10     3      3
        buy    98    10     4      4
        buy    97    10     5      5
    """)


def test_stop_limit_waits_then_is_elected_by_a_trade_at_its_trigger():
    eng = engine()
    stop_book(eng)
    assert kinds(eng.submit(buy(2, 102, type=STOP_LIMIT, stop_price=101, id=20))) == ["Accepted"]
    assert [c.order_id for c in eng.stop_orders()] == [20]
    assert fills(eng.submit(buy(1, 100))) == [(1, 1, 100)]  # below the trigger: still waiting
    assert eng.open_qty(20) == 2 and 20 not in eng.book.orders
    events = eng.submit(buy(1, 101))  # at the trigger
    assert kinds(events) == ["Accepted", "Fill", "BookUpdate", "Triggered", "Fill", "BookUpdate"]
    assert of(Triggered, events) == [Triggered(events[3].seq, 20, 99, 101)]
    assert fills(events) == [(2, 1, 101), (3, 2, 102)]
    assert eng.stop_orders() == []


def test_stop_is_elected_by_a_trade_through_its_trigger():
    eng = engine()
    book(eng, """
        sell  101     1     1      1
        sell  102    10     2      2
        buy    98    10     3      3
        buy    96    10     4      4
    """)
    eng.submit(buy(1, 105, type=STOP_LIMIT, stop_price=100, id=20))
    eng.submit(sell(3, 95, type=STOP_LIMIT, stop_price=97, id=21))
    events = eng.submit(buy(1, 101))  # trades at 101 only: through 100
    assert [e.order_id for e in of(Triggered, events)] == [20]
    assert fills(events) == [(1, 1, 101), (2, 1, 102)]
    events = eng.submit(sell(11, 96))  # trades at 98, then 96: through 97
    assert [e.order_id for e in of(Triggered, events)] == [21]
    assert fills(events) == [(3, 10, 98), (4, 1, 96), (4, 3, 96)]


def test_stop_market_becomes_market_with_protection_around_its_trigger():
    eng = engine()
    book(eng, """
        sell  100     1     1      1
        sell  101     2     2      2
        sell  103     5     3      3
    """)
    eng.submit(buy(5, type=STOP, stop_price=100, protection=1, id=20))
    events = eng.submit(buy(1, 100))
    assert fills(events) == [(1, 1, 100), (2, 2, 101)]  # up to 100 + 1 tick
    assert resting(eng)[0] == ("buy", 101, 3, 99, 20)  # the rest rests at the protection limit


def test_buy_stop_is_elected_by_any_trade_at_or_above_its_trigger_even_a_sellers():
    eng = engine()
    book(eng, """
        buy   105     5     1      1
        sell  110     5     2      2
    """)
    eng.submit(buy(1, 110, type=STOP_LIMIT, stop_price=104, id=20))  # no trade yet
    events = eng.submit(sell(1, 105))  # a sell aggressor trades at 105 >= 104
    assert [e.order_id for e in of(Triggered, events)] == [20]
    assert fills(events) == [(1, 1, 105), (2, 1, 110)]


def test_several_elected_stops_are_released_in_entry_order():
    eng = engine()
    stop_book(eng)
    eng.submit(buy(1, 102, type=STOP_LIMIT, stop_price=101, id=20))  # entered first
    eng.submit(buy(1, 102, type=STOP_LIMIT, stop_price=100, id=21))  # lower trigger, entered later
    events = eng.submit(buy(2, 101))
    assert [e.order_id for e in of(Triggered, events)] == [20, 21]
    assert kinds(events) == [
        "Accepted", "Fill", "BookUpdate", "Fill", "BookUpdate",
        "Triggered", "Fill", "BookUpdate",
        "Triggered", "Fill", "BookUpdate",
    ]


def test_stops_elected_by_a_released_stop_join_the_back_of_the_queue():
    eng = engine()
    book(eng, """
        sell  101     1     1      1
        sell  102    10     2      2
    """)
    eng.submit(buy(1, 102, type=STOP_LIMIT, stop_price=101, id=20))  # A
    eng.submit(buy(1, 102, type=STOP_LIMIT, stop_price=102, id=21))  # C: elected by A's trade
    eng.submit(buy(1, 102, type=STOP_LIMIT, stop_price=101, id=22))  # B
    events = eng.submit(buy(1, 101))
    assert [e.order_id for e in of(Triggered, events)] == [20, 22, 21]
    assert [e.taker_id for e in events if type(e).__name__ == "Fill"][1:] == [20, 22, 21]


def test_cascade_a_released_stop_elects_the_next():
    eng = engine()
    book(eng, """
        sell  101     1     1      1
        sell  102     1     2      2
        sell  103     5     3      3
    """)
    eng.submit(buy(1, 102, type=STOP_LIMIT, stop_price=101, id=20))
    eng.submit(buy(2, 103, type=STOP_LIMIT, stop_price=102, id=21))
    eng.submit(buy(5, type=STOP, stop_price=103, protection=0, id=22))
    events = eng.submit(buy(1, 101))
    assert [e.order_id for e in of(Triggered, events)] == [20, 21, 22]
    assert fills(events) == [(1, 1, 101), (2, 1, 102), (3, 2, 103), (3, 3, 103)]
    assert resting(eng) == [("buy", 103, 2, 99, 22)]
    assert eng.last_price == 103


def test_sell_stops_are_elected_at_or_below_their_trigger():
    eng = engine()
    stop_book(eng)
    eng.submit(sell(2, 95, type=STOP_LIMIT, stop_price=97, id=20))
    assert of(Triggered, eng.submit(sell(10, 98))) == []  # trade at 98: above 97
    events = eng.submit(sell(1, 97))
    assert [e.order_id for e in of(Triggered, events)] == [20]
    assert fills(events) == [(5, 1, 97), (5, 2, 97)]


def test_stop_trigger_already_at_or_through_the_last_trade_is_refused():
    eng = engine()
    stop_book(eng)
    eng.submit(buy(1, 100))  # last trade 100
    refused(eng, buy(1, 105, type=STOP_LIMIT, stop_price=100), R.STOP_ALREADY_TRIGGERED)
    refused(eng, buy(1, type=STOP, stop_price=99), R.STOP_ALREADY_TRIGGERED)
    refused(eng, sell(1, 90, type=STOP_LIMIT, stop_price=100), R.STOP_ALREADY_TRIGGERED)
    refused(eng, sell(1, type=STOP, stop_price=101), R.STOP_ALREADY_TRIGGERED)


def test_stop_limit_with_its_limit_on_the_wrong_side_of_the_trigger_is_refused():
    eng = engine()
    refused(eng, buy(1, 99, type=STOP_LIMIT, stop_price=100), R.BAD_STOP_PRICE)
    refused(eng, sell(1, 101, type=STOP_LIMIT, stop_price=100), R.BAD_STOP_PRICE)


@pytest.mark.parametrize("tif", [IOC, FOK])
def test_stops_must_be_day_or_gtc(tif):
    refused(engine(), buy(1, type=STOP, stop_price=100, tif=tif), R.UNSUPPORTED)


def test_waiting_stop_can_be_cancelled():
    eng = engine()
    stop_book(eng)
    eng.submit(buy(1, 102, type=STOP_LIMIT, stop_price=101, id=20, trader=7))
    assert eng.submit(Cancel(20, 7)) == [Cancelled(eng.seq, 20, 7, 1, CancelReason.USER)]
    assert of(Triggered, eng.submit(buy(2, 101))) == []


# ---- iceberg ------------------------------------------------------------------------------------------------
def test_iceberg_shows_one_slice_and_refreshes_at_the_back_of_the_queue():
    eng = engine()
    book(eng, """
        sell  100    25     1      1   display=10
        sell  100    10     2      2
    """)
    assert eng.book.l2() == ([], [(100, 20, 2)])  # only the slice shows
    events = eng.submit(buy(10, 100))
    assert fills(events) == [(1, 10, 100)]
    assert kinds(events) == ["Accepted", "Fill", "Refreshed", "BookUpdate"]
    assert resting(eng) == table("""
        sell  100    10     2      2
        sell  100    15     1      1   # the new slice is behind order 2
    """)
    assert fills(eng.submit(buy(15, 100))) == [(2, 10, 100), (1, 5, 100)]


def test_large_aggressor_takes_an_iceberg_slice_by_slice():
    eng = engine()
    book(eng, """
        sell  100    25     1      1   display=10
        sell  100     4     2      2
        sell  101     5     3      3
    """)
    events = eng.submit(buy(31, 101))
    assert fills(events) == [(1, 10, 100), (2, 4, 100), (1, 10, 100), (1, 5, 100), (3, 2, 101)]
    assert kinds(events).count("Refreshed") == 2


def test_iceberg_display_must_fit_the_order():
    eng = engine(lot=5)
    refused(eng, buy(20, 100, display_qty=25), R.BAD_DISPLAY_QTY)
    refused(eng, buy(20, 100, display_qty=0), R.BAD_DISPLAY_QTY)
    refused(eng, buy(20, 100, display_qty=7), R.BAD_DISPLAY_QTY)  # not a lot multiple
    refused(eng, buy(20, 100, display_qty=5, tif=IOC), R.UNSUPPORTED)


# ---- DAY and GTC -----------------------------------------------------------------------------------------------
def test_end_session_expires_day_orders_and_keeps_gtc():
    eng = engine()
    book(eng, """
        buy    99     5     1      1   tif=day
        buy    99     5     2      2
        sell  105     5     3      3   tif=day
    """)
    eng.submit(buy(2, 110, type=STOP_LIMIT, stop_price=106, tif=DAY, id=20, trader=4))
    eng.submit(buy(2, 110, type=STOP_LIMIT, stop_price=107, tif=GTC, id=21, trader=4))
    events = eng.submit(EndSession())
    assert [(e.order_id, e.qty) for e in of(Expired, events)] == [(1, 5), (3, 5), (20, 2)]
    assert kinds(events) == ["Expired", "BookUpdate", "Expired", "BookUpdate", "Expired"]
    assert resting(eng) == table("buy 99 5 2 2")
    assert [c.order_id for c in eng.stop_orders()] == [21]


def test_day_iceberg_expires_with_its_hidden_reserve():
    eng = engine()
    book(eng, "sell 100 30 1 1 display=10 tif=day")
    assert [e.qty for e in of(Expired, eng.submit(EndSession()))] == [30]
    assert resting(eng) == []


# ---- presets ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cmd",
    [
        buy(1, type=STOP, stop_price=100),
        buy(1, 101, type=STOP_LIMIT, stop_price=100),
        buy(1, type=PROTECT),
        buy(1, type=MKT_LIMIT),
    ],
    ids=["stop", "stop_limit", "market_protect", "market_limit"],
)
def test_nyse_refuses_stops_and_cme_market_instructions(cmd):
    eng = engine(nyse())
    book(eng, "sell 100 5 1 1")
    refused(eng, cmd, R.UNSUPPORTED)


def test_nyse_preset_accepts_limit_market_ioc_fok_post_only_and_reserve_orders():
    spec = nyse()
    assert (spec.tick, spec.lot, spec.default_smp_mode) == (1, 1, SmpMode.CANCEL_AGGRESSING)
    eng = engine(spec)
    book(eng, """
        sell  105     5     1      1   post_only
        sell  106    50     2      2   display=5
    """)
    for cmd in (buy(1, 104), buy(1, 105, tif=IOC), buy(1, 105, tif=FOK), buy(1, type=MARKET)):
        assert type(eng.submit(cmd)[0]) is Accepted


def test_cme_preset_refuses_post_only():
    eng = engine(cme())
    refused(eng, buy(1, 10000, post_only=True), R.UNSUPPORTED)


def test_cme_market_order_is_entered_as_market_with_protection():
    spec = cme()
    assert spec.market_as_protected and spec.protection_ticks == 10
    eng = engine(spec)
    book(eng, """
        sell  10000   2     1      1
        sell  10250   2     2      2   # exactly 10 ticks away
        sell  10275   2     3      3
    """)
    events = eng.submit(buy(10, type=MARKET, id=9))
    assert events[0] == Accepted(events[0].seq, 9, 99, BUY, 10250, 10, PROTECT)
    assert fills(events) == [(1, 2, 10000), (2, 2, 10250)]
    assert resting(eng)[0] == ("buy", 10250, 6, 99, 9)  # the rest rests at the limit


def test_cme_preset_accepts_stops_fak_with_minimum_fok_and_display_quantity():
    eng = engine(cme())
    book(eng, """
        sell  10000   5     1      1
        sell  10025  50     2      2   display=5
    """)
    for cmd in (
        buy(1, type=STOP, stop_price=10100),
        buy(1, 10125, type=STOP_LIMIT, stop_price=10100),
        buy(2, 10000, tif=IOC, min_qty=2),
        buy(2, 10000, tif=FOK),
        buy(1, type=MKT_LIMIT),
    ):
        assert type(eng.submit(cmd)[0]) is Accepted, cmd

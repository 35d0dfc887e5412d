"""What the engine shows: the book views ``l1``/``l2``/``l3``, ``state_hash`` and the
engine's queries; and its events: the documented order per command, ``seq`` numbering
every event consecutively from 1, immutable records."""

import hashlib

import msgspec
import pytest
from helpers import BUY, SELL, book, buy, engine, kinds, sell
from helpers import invariants_checked  # noqa: F401  (autouse: both engine paths, invariants checked)

from exchange import (
    Accepted,
    BookUpdate,
    Cancel,
    CancelReason,
    Cancelled,
    EndSession,
    Event,
    Expired,
    Fill,
    MassCancel,
    Modified,
    Modify,
    NewOrder,
    OrderType,
    Refreshed,
    Rejected,
    TimeInForce,
    Triggered,
)

BOOK = """
    side  price  qty  trader  id
    buy    99     5     1      1
    buy   100     3     2      2
    buy   100     4     3      3
    buy    98     7     4      4
    sell  101    20     5      5   display=6
    sell  101     2     6      6
    sell  103     9     7      7
"""


# ---- l1 / l2 / l3 -------------------------------------------------------------------------------------
def test_l1_of_an_empty_book():
    assert engine().book.l1() == (None, 0, None, 0)


def test_l1_is_the_best_prices_with_their_displayed_quantity():
    eng = engine()
    book(eng, BOOK)
    assert eng.book.l1() == (100, 7, 101, 8)  # the iceberg shows its slice of 6 only


def test_l2_lists_levels_best_first_with_displayed_quantity_and_order_count():
    eng = engine()
    book(eng, BOOK)
    assert eng.book.l2() == (
        [(100, 7, 2), (99, 5, 1), (98, 7, 1)],
        [(101, 8, 2), (103, 9, 1)],
    )
    assert eng.book.l2(1) == ([(100, 7, 2)], [(101, 8, 2)])
    assert eng.book.l2(2) == ([(100, 7, 2), (99, 5, 1)], [(101, 8, 2), (103, 9, 1)])


def test_l2_follows_trades_and_cancels():
    eng = engine()
    book(eng, BOOK)
    eng.submit(sell(5, 100))
    eng.submit(Cancel(7, 7))
    assert eng.book.l2() == ([(100, 2, 1), (99, 5, 1), (98, 7, 1)], [(101, 8, 2)])


def test_l3_lists_every_live_order_in_priority_order():
    eng = engine()
    book(eng, BOOK)
    eng.submit(sell(1, 100))
    bids, asks = eng.book.l3()
    assert [(o["order_id"], o["price"], o["qty"], o["hidden"]) for o in bids] == [
        (2, 100, 2, 0), (3, 100, 4, 0), (1, 99, 5, 0), (4, 98, 7, 0),
    ]
    assert [(o["order_id"], o["price"], o["qty"], o["hidden"]) for o in asks] == [(5, 101, 6, 14), (6, 101, 2, 0), (7, 103, 9, 0)]
    first = asks[0]
    assert (first["trader"], first["side"], first["display"], first["tif"], first["post_only"]) == (5, SELL, 6, TimeInForce.GTC, False)


# ---- state_hash and queries ----------------------------------------------------------------------------
def test_state_hash_depends_only_on_the_resting_book():
    a, b = engine(), engine()
    book(a, """
        buy   100     5     1      1
        buy   100     5     2      2
        buy   100     5     3      3
    """)
    a.submit(Cancel(2, 2))
    book(b, """
        buy   100     5     1      1
        buy   100     5     3      3
    """)
    assert a.state_hash() == b.state_hash()
    b.submit(Modify(3, 3, 4))
    assert a.state_hash() != b.state_hash()


def test_state_hash_is_the_sha256_of_the_canonical_text():
    eng = engine()
    assert eng.state_hash() == hashlib.sha256(b"").hexdigest()
    book(eng, """
        sell  101    20     5      5   display=6
        buy   100     3     2      2
    """)
    text = "1,100,2,2,3,0\n-1,101,5,5,6,14\n"
    assert eng.state_hash() == hashlib.sha256(text.encode()).hexdigest()


def test_engine_queries():
    eng = engine()
    assert eng.seq == 0 and eng.last_price is None
    book(eng, BOOK)
    eng.submit(buy(2, 110, type=OrderType.STOP_LIMIT, stop_price=105, id=20, trader=8))
    assert eng.open_qty(5) == 20 and eng.open_qty(20) == 2 and eng.open_qty(42) == 0
    assert [c.order_id for c in eng.stop_orders()] == [20]
    assert (eng.top_order(BUY), eng.top_order(SELL)) == (2, 5)  # 2 bettered 99; 5 came first on its side
    eng.submit(buy(1, 101))
    assert eng.last_price == 101


# ---- events: the documented order per command ------------------------------------------------------------
def test_new_order_events_accepted_then_each_level_then_the_remainder():
    eng = engine()
    book(eng, """
        sell  100     2     1      1
        sell  100     3     2      2
        sell  101     4     3      3
    """)
    s = eng.seq
    assert eng.submit(buy(10, 101, id=9, trader=8)) == [
        Accepted(s + 1, 9, 8, BUY, 101, 10, OrderType.LIMIT),
        Fill(s + 2, 100, 2, BUY, 1, 9, 1, 8),
        Fill(s + 3, 100, 3, BUY, 2, 9, 2, 8),
        BookUpdate(s + 4, SELL, 100, 0, 0),
        Fill(s + 5, 101, 4, BUY, 3, 9, 3, 8),
        BookUpdate(s + 6, SELL, 101, 0, 0),
        BookUpdate(s + 7, BUY, 101, 1, 1),  # the remainder rests
    ]


def test_ioc_remainder_is_cancelled_after_the_levels():
    eng = engine()
    book(eng, "sell 100 2 1 1")
    s = eng.seq
    assert eng.submit(buy(5, 100, tif=TimeInForce.IOC, id=9, trader=8)) == [
        Accepted(s + 1, 9, 8, BUY, 100, 5, OrderType.LIMIT),
        Fill(s + 2, 100, 2, BUY, 1, 9, 1, 8),
        BookUpdate(s + 3, SELL, 100, 0, 0),
        Cancelled(s + 4, 9, 8, 3, CancelReason.UNFILLED),
    ]


def test_refresh_is_reported_where_it_happens_and_stops_come_last():
    eng = engine()
    book(eng, """
        sell  100    10     1      1   display=4
        sell  102     5     2      2
    """)
    eng.submit(buy(1, 102, type=OrderType.STOP_LIMIT, stop_price=100, id=20, trader=7))
    s = eng.seq
    assert eng.submit(buy(4, 100, id=9, trader=8)) == [
        Accepted(s + 1, 9, 8, BUY, 100, 4, OrderType.LIMIT),
        Fill(s + 2, 100, 4, BUY, 1, 9, 1, 8),
        Refreshed(s + 3, 1, 1, 4),
        BookUpdate(s + 4, SELL, 100, 4, 1),
        Triggered(s + 5, 20, 7, 100),
        Fill(s + 6, 100, 1, BUY, 1, 20, 1, 7),
        BookUpdate(s + 7, SELL, 100, 3, 1),
    ]


def test_events_of_cancel_modify_mass_cancel_session_end_and_refusal():
    eng = engine()
    book(eng, """
        buy   100     5     1      1
        buy   100     5     1      2   tif=day
        buy    99     5     2      3
    """)
    eng.submit(buy(1, 110, type=OrderType.STOP_LIMIT, stop_price=105, id=20, trader=1))
    s = eng.seq
    assert eng.submit(Modify(1, 1, 3)) == [Modified(s + 1, 1, 1, 100, 3, True), BookUpdate(s + 2, BUY, 100, 8, 2)]
    assert eng.submit(EndSession()) == [Expired(s + 3, 2, 1, 5), BookUpdate(s + 4, BUY, 100, 3, 1)]
    assert eng.submit(Cancel(3, 2)) == [Cancelled(s + 5, 3, 2, 5, CancelReason.USER), BookUpdate(s + 6, BUY, 99, 0, 0)]
    assert eng.submit(Cancel(3, 2)) == [Rejected(s + 7, 3, 2, "unknown_order")]
    assert eng.submit(MassCancel(1)) == [
        Cancelled(s + 8, 1, 1, 3, CancelReason.USER),
        BookUpdate(s + 9, BUY, 100, 0, 0),
        Cancelled(s + 10, 20, 1, 1, CancelReason.USER),
    ]
    assert kinds(eng.submit(buy(1, 120, type=OrderType.STOP, stop_price=115))) == ["Accepted"]


def test_seq_numbers_every_event_consecutively_from_1():
    eng = engine()
    commands = [
        sell(5, 101, trader=1),
        sell(5, 100, trader=2),
        buy(3, 99, trader=3),
        buy(7, 101, trader=4),
        buy(1, 97, trader=5, id=1000_000),
        buy(1, 97, trader=5, id=1000_000),  # duplicate: Rejected
        Cancel(42, 1),
        sell(2, type=OrderType.MARKET, trader=6),
        EndSession(),
    ]
    events = [e for c in commands for e in eng.submit(c)]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert eng.seq == len(events)
    more = eng.submit_many([buy(1, 95), sell(1, 95)])
    assert [e.seq for e in more] == list(range(len(events) + 1, len(events) + 1 + len(more)))


# ---- events: immutable records --------------------------------------------------------------------------------
def test_events_and_commands_are_immutable():
    eng = engine()
    book(eng, "sell 100 5 1 1")
    events = eng.submit(buy(2, 100))
    for event in events:
        with pytest.raises((AttributeError, TypeError)):
            event.seq = 0
    with pytest.raises((AttributeError, TypeError)):
        events[1].qty = 5
    command = NewOrder(1, 1, 1, 5, 100)
    with pytest.raises((AttributeError, TypeError)):
        command.qty = 50


def test_events_round_trip_through_json_with_their_kind():
    eng = engine()
    book(eng, "sell 100 5 1 1")
    events = eng.submit(buy(2, 100))
    wire = msgspec.json.encode(events)
    assert b'"kind":"Fill"' in wire
    assert msgspec.json.decode(wire, type=list[Event]) == events

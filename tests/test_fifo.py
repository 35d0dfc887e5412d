"""FIFO (price-time priority, the ``nyse`` preset): best price first, then earliest order."""

from helpers import BUY, book, buy, engine, fills, resting, sell, table
from helpers import invariants_checked  # noqa: F401  (autouse: both engine paths, invariants checked)

from exchange import Fill, Fifo, nyse


def test_earliest_order_at_the_best_price_fills_first():
    eng = engine(nyse())
    book(eng, """
        side  price  qty  trader  id
        sell  101     5     1      1
        sell  100     5     2      2
        sell  100     5     3      3
    """)
    assert fills(eng.submit(buy(7, 101))) == [(2, 5, 100), (3, 2, 100)]
    assert resting(eng) == table("""
        sell  100     3     3      3
        sell  101     5     1      1
    """)


def test_size_gives_no_priority():
    eng = engine(nyse())
    book(eng, """
        sell  100     1     1      1
        sell  100   500     2      2
    """)
    assert fills(eng.submit(buy(1, 100))) == [(1, 1, 100)]


def test_sweep_takes_levels_best_first_at_each_makers_price():
    eng = engine(nyse())
    book(eng, """
        sell  102     5     3      3
        sell  101     5     2      2
        sell  100     5     1      1
    """)
    assert fills(eng.submit(buy(12, 105))) == [(1, 5, 100), (2, 5, 101), (3, 2, 102)]
    assert resting(eng) == table("sell 102 3 3 3")
    assert eng.last_price == 102


def test_sweep_stops_at_the_limit_and_the_rest_rests_there():
    eng = engine(nyse())
    book(eng, """
        sell  100     5     1      1
        sell  101     5     2      2
        sell  102     5     3      3
    """)
    assert fills(eng.submit(buy(12, 101, id=50))) == [(1, 5, 100), (2, 5, 101)]
    assert resting(eng) == table("""
        buy   101     2    99     50
        sell  102     5     3      3
    """)


def test_sell_aggressor_sweeps_bids_from_the_highest():
    eng = engine(nyse())
    book(eng, """
        buy    99     4     1      1
        buy   100     4     2      2
        buy   100     4     3      3
        buy    98     4     4      4
    """)
    assert fills(eng.submit(sell(10, 99))) == [(2, 4, 100), (3, 4, 100), (1, 2, 99)]
    assert resting(eng) == table("""
        buy    99     2     1      1
        buy    98     4     4      4
    """)


def test_partially_filled_maker_keeps_its_place_at_the_head():
    eng = engine(nyse())
    book(eng, """
        sell  100    10     1      1
        sell  100     5     2      2
    """)
    assert fills(eng.submit(buy(4, 100))) == [(1, 4, 100)]
    assert fills(eng.submit(buy(8, 100))) == [(1, 6, 100), (2, 2, 100)]
    assert resting(eng) == table("sell 100 3 2 2")


def test_partially_filled_aggressor_rests_at_the_back_of_its_level():
    eng = engine(nyse())
    book(eng, """
        buy    99     5     1      1
        sell  100     3     2      2
    """)
    assert fills(eng.submit(buy(8, 100, id=60))) == [(2, 3, 100)]
    assert resting(eng) == table("""
        buy   100     5    99     60
        buy    99     5     1      1
    """)


def test_order_that_does_not_cross_rests_behind_earlier_orders_at_its_price():
    eng = engine(nyse())
    book(eng, """
        buy   100     5     1      1
        sell  101     5     2      2
    """)
    assert fills(eng.submit(buy(5, 100, id=3, trader=3))) == []
    assert resting(eng) == table("""
        buy   100     5     1      1
        buy   100     5     3      3
        sell  101     5     2      2
    """)
    assert fills(eng.submit(sell(7, 100))) == [(1, 5, 100), (3, 2, 100)]


def test_fill_event_names_both_sides():
    eng = engine(nyse())
    book(eng, "sell 100 5 1 1")
    [fill] = [e for e in eng.submit(buy(2, 100, id=9, trader=7)) if isinstance(e, Fill)]
    assert (fill.price, fill.qty, fill.aggressor, fill.maker_id, fill.taker_id, fill.maker_trader, fill.taker_trader) == (
        100, 2, BUY, 1, 9, 1, 7,
    )


def test_fifo_is_the_default_rule():
    assert engine().rule == Fifo()
    assert nyse().rule == Fifo()
    eng = engine()
    book(eng, """
        buy 100 5 1 1
        buy 100 5 2 2
    """)
    assert fills(eng.submit(sell(6, 100))) == [(1, 5, 100), (2, 1, 100)]

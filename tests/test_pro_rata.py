"""CME Globex pro rata: algorithm A (TOP, pro rata, FIFO), C (no TOP) and split K.

The rules (``exchange/rules.py``): 1. TOP, the one order per side that set a new best price,
fills first and in full; 2. the remaining quantity is shared by displayed quantity (TOP
excluded), rounded down, shares below the minimum (default 2) dropped; 3. leftover lots go
FIFO to orders with quantity left; 4. FIFO exception: an aggressor at least as large as the
level, hidden included, fills it FIFO (icebergs in full); 5. icebergs share by their
displayed quantity. One round lists TOP first, then the other orders in time priority.
"""

from helpers import BUY, SELL, book, buy, engine, fills, resting, sell, table
from helpers import invariants_checked  # noqa: F401  (autouse: both engine paths, invariants checked)

from exchange import Cancel, InstrumentSpec, ProRata, Split, cme


def pro_rata(**kw):
    """A pro-rata book with tick 1, so prices read as in CME's examples (97.04 -> 9704)."""
    return engine(InstrumentSpec("GE", rule=ProRata(**kw)))


def split(**kw):
    return engine(InstrumentSpec("GE", rule=Split(**kw)))


# ---- CME's published examples ---------------------------------------------------------------
# CME Globex notice 020705-1 (2005-02-07), "Launch of Enhanced Allocation Algorithm for CME
# Eurodollar Futures": incoming sell 60 at 97.04; TOP 10 filled first, then 50 shared
# pro rata over 150 (order 2's 1.67 -> 1 lot is below the 2-lot minimum), the 3 leftover lots
# go FIFO to order 2.
# https://www.cmegroup.com/tools-information/files/Globex.zip:/tmp/tarfile_extract_jxfuj2tl/Globex/2005/11985.html
def test_cme_eurodollar_2005_example():
    eng = pro_rata()
    book(eng, """
        side  price  qty  trader  id
        buy   9704    10     1     1    # TOP: set the best bid
        buy   9704     5     2     2    # (5/150)*50 = 1.67 -> 1 < 2 -> 0, then FIFO 3
        buy   9704    20     3     3    # (20/150)*50 = 6.67 -> 6
        buy   9704    50     4     4    # (50/150)*50 = 16.67 -> 16
        buy   9704    75     5     5    # (75/150)*50 = 25
    """)
    assert eng.top_order(BUY) == 1
    assert fills(eng.submit(sell(60, 9704))) == [
        (1, 10, 9704),
        (2, 3, 9704),
        (3, 6, 9704),
        (4, 16, 9704),
        (5, 25, 9704),
    ]
    assert resting(eng) == table("""
        buy   9704     2     2     2
        buy   9704    14     3     3
        buy   9704    34     4     4
        buy   9704    50     5     5
    """)


# CME Globex Matching Algorithm Steps, "Pro Rata Example": sell 50 against bids 5, 9, 57, 4,
# 28, 300 (earliest first), pro-rata minimum 2: shares 0.62, 1.11, 7.07, 0.49, 3.47, 37.22
# -> 0, 0 (1 < 2), 7, 0, 3, 37; the 3 leftover lots go FIFO to order 1.
# https://www.cmegroup.com/confluence/pages/diffpagesbyversion.action?pageId=101286569&selectedPageVersions=4&selectedPageVersions=5
# (same content: https://cmegroupclientsite.atlassian.net/wiki/spaces/EPICSANDBOX/pages/457218521/CME+Globex+Matching+Algorithm+Steps)
CME_PRO_RATA_BOOK = """
    side  price  qty  trader  id
    buy   100      5     1     1
    buy   100      9     2     2
    buy   100     57     3     3
    buy   100      4     4     4
    buy   100     28     5     5
    buy   100    300     6     6
"""
CME_PRO_RATA_FILLS = [(1, 3, 100), (3, 7, 100), (5, 3, 100), (6, 37, 100)]


def test_cme_pro_rata_example_algorithm_c():
    eng = pro_rata(top=False)
    book(eng, CME_PRO_RATA_BOOK)
    assert fills(eng.submit(sell(50, 100))) == CME_PRO_RATA_FILLS


def test_cme_pro_rata_example_algorithm_a_with_its_top_cancelled():
    eng = pro_rata()
    book(eng, CME_PRO_RATA_BOOK)
    assert eng.top_order(BUY) == 1
    book(eng, "buy 101 1 9 9")  # betters the market: the new TOP ...
    eng.submit(Cancel(9, 9))  # ... cancelled: the bid side has no TOP now
    assert eng.top_order(BUY) is None
    assert fills(eng.submit(sell(50, 100))) == CME_PRO_RATA_FILLS


# Same page: "If any of these orders were Display Quantity with more quantity hidden, the
# calculation would not change" (display-quantity orders share by their displayed quantity).
def test_cme_pro_rata_example_with_an_iceberg_shares_by_displayed_quantity():
    eng = pro_rata(top=False)
    book(eng, CME_PRO_RATA_BOOK.replace("300     6     6", "1000    6     6   display=300"))
    assert fills(eng.submit(sell(50, 100))) == CME_PRO_RATA_FILLS
    assert eng.open_qty(6) == 963


# CME "Complex Match Example" (SOFR, algorithm A, pro-rata minimum 2), single-source step:
# "TOP order gets the first 10 lots, with 11 remaining going to the next step. Pro Rata:
# Order 2 = 40/90*11 = 4, Order 3 = 20/90*11 = 2, Order 4 = 30/90*11 = 3. 4+2+3=9, 2 lots
# left over which goes to order 2."
# https://cmegroupclientsite.atlassian.net/wiki/pages/diffpagesbyversion.action?originalVersion=1&pageId=46437563&revisedVersion=2
def test_cme_sofr_top_example():
    eng = pro_rata()
    book(eng, """
        buy   100     10     1     1    # TOP
        buy   100     40     2     2
        buy   100     20     3     3
        buy   100     30     4     4
    """)
    assert fills(eng.submit(sell(21, 100))) == [(1, 10, 100), (2, 6, 100), (3, 2, 100), (4, 3, 100)]


# ---- 1. TOP --------------------------------------------------------------------------------------
def test_top_fills_first_in_full_regardless_of_size():
    eng = pro_rata()
    book(eng, """
        sell  100      1     1     1    # TOP: one lot
        sell  100    100     2     2
        sell  100    100     3     3
    """)
    # 1 to TOP; 9 over 200: 4.5 -> 4 each; 1 leftover FIFO to order 2
    assert fills(eng.submit(buy(10, 100))) == [(1, 1, 100), (2, 5, 100), (3, 4, 100)]


def test_aggressor_smaller_than_top_goes_all_to_top_which_stays_top():
    eng = pro_rata()
    book(eng, """
        buy   100     30     1     1    # TOP
        buy   100     30     2     2
    """)
    assert fills(eng.submit(sell(12, 100))) == [(1, 12, 100)]
    assert eng.top_order(BUY) == 1
    assert fills(eng.submit(sell(20, 100))) == [(1, 18, 100), (2, 2, 100)]


def test_only_the_order_that_bettered_the_market_is_top():
    eng = pro_rata()
    book(eng, """
        buy    99     10     1     1    # TOP on an empty side ...
        buy   100     10     2     2    # ... bettered: 2 is TOP
        buy   100     10     3     3    # joins the best price: not TOP
        sell  102     10     4     4    # the sell side's own TOP
    """)
    assert (eng.top_order(BUY), eng.top_order(SELL)) == (2, 4)
    assert fills(eng.submit(sell(14, 100))) == [(2, 10, 100), (3, 4, 100)]


def test_bettered_top_does_not_regain_priority_when_the_better_price_leaves():
    eng = pro_rata()
    book(eng, """
        buy   100     10     1     1    # TOP ...
        buy   100     10     2     2
        buy   101      5     3     3    # ... bettered; then cancelled
    """)
    eng.submit(Cancel(3, 3))
    assert eng.top_order(BUY) is None  # a side can have no TOP
    assert fills(eng.submit(sell(10, 100))) == [(1, 5, 100), (2, 5, 100)]


def test_filled_top_leaves_the_side_without_top():
    eng = pro_rata()
    book(eng, """
        buy   100      4     1     1    # TOP
        buy   100     10     2     2
        buy   100     10     3     3
    """)
    assert fills(eng.submit(sell(4, 100))) == [(1, 4, 100)]
    assert eng.top_order(BUY) is None
    assert fills(eng.submit(sell(10, 100))) == [(2, 5, 100), (3, 5, 100)]


def test_top_of_a_level_below_the_best_counts_only_at_its_own_price():
    eng = pro_rata()
    book(eng, """
        sell  101     10     1     1    # TOP of the empty side ...
        sell  101     10     2     2
        sell  100      2     3     3    # ... bettered by 3 (now TOP)
    """)
    # 100: TOP 3 in full (FIFO exception anyway); 101: no TOP, pro rata 4 -> 2 + 2
    assert fills(eng.submit(buy(6, 101))) == [(3, 2, 100), (1, 2, 101), (2, 2, 101)]


def test_top_iceberg_loses_top_when_its_slice_refreshes():
    eng = pro_rata()
    book(eng, """
        sell  100     30     1     1   display=10   # TOP
        sell  100     10     2     2
    """)
    assert fills(eng.submit(buy(10, 100))) == [(1, 10, 100)]
    assert eng.top_order(SELL) is None
    assert fills(eng.submit(buy(10, 100))) == [(2, 5, 100), (1, 5, 100)]  # the new slice is behind 2


# ---- 2. pro rata: rounded down, minimum allocation ---------------------------------------------
def test_shares_round_down_and_leftover_goes_fifo_to_orders_with_quantity_left():
    eng = pro_rata(top=False)
    book(eng, """
        buy   100      1     1     1    # 0.9 -> 0, then FIFO 1 (all it has)
        buy   100      3     2     2    # 2.7 -> 2, then FIFO 1
        buy   100      6     3     3    # 5.4 -> 5
    """)
    assert fills(eng.submit(sell(9, 100))) == [(1, 1, 100), (2, 3, 100), (3, 5, 100)]


def test_shares_below_the_minimum_become_zero():
    eng = pro_rata(top=False)  # minimum 2 lots
    book(eng, """
        buy   100     10     1     1    # 10/100*15 = 1.5 -> 1 < 2 -> 0; FIFO leftover 2
        buy   100     90     2     2    # 90/100*15 = 13.5 -> 13
    """)
    assert fills(eng.submit(sell(15, 100))) == [(1, 2, 100), (2, 13, 100)]


def test_minimum_allocation_is_configurable():
    book_ = """
        buy   100     10     1     1
        buy   100     10     2     2
        buy   100     80     3     3
    """
    one = pro_rata(top=False, min_alloc=1)
    book(one, book_)
    # 1.5 -> 1, 1.5 -> 1, 12; the leftover lot goes FIFO to order 1
    assert fills(one.submit(sell(15, 100))) == [(1, 2, 100), (2, 1, 100), (3, 12, 100)]

    five = pro_rata(top=False, min_alloc=5)
    book(five, book_)
    # 1 and 1 are below 5; 12 pro rata; the 3 leftover lots go FIFO to order 1
    assert fills(five.submit(sell(15, 100))) == [(1, 3, 100), (3, 12, 100)]

    assert ProRata().min_alloc == 2


def test_algorithm_c_gives_no_priority_to_the_order_that_set_the_price():
    eng = pro_rata(top=False)
    book(eng, """
        buy   100     10     1     1
        buy   100     10     2     2
    """)
    assert fills(eng.submit(sell(10, 100))) == [(1, 5, 100), (2, 5, 100)]


# ---- 4. FIFO exception ------------------------------------------------------------------------------
def test_aggressor_as_large_as_the_level_fills_it_fifo_icebergs_in_full():
    eng = pro_rata()
    book(eng, """
        sell  100     10     1     1    # TOP
        sell  100     20     2     2   display=5
        sell  100      5     3     3
        sell  101     50     4     4
    """)
    # 35 >= 10 + 5 (+15 hidden) + 5: FIFO, the iceberg in full (no refresh)
    events = eng.submit(buy(35, 101))
    assert fills(events) == [(1, 10, 100), (2, 20, 100), (3, 5, 100)]
    assert resting(eng) == table("sell 101 50 4 4")


def test_fifo_exception_applies_level_by_level_in_a_sweep():
    eng = pro_rata()
    book(eng, """
        sell  100      3     1     1    # TOP
        sell  100      7     2     2
        sell  101     10     3     3    # no TOP at 101
        sell  101     10     4     4
    """)
    # 100 is taken whole (FIFO); 101 gets the 10 left, shared 5/5
    assert fills(eng.submit(buy(20, 101))) == [(1, 3, 100), (2, 7, 100), (3, 5, 101), (4, 5, 101)]


def test_aggressor_smaller_than_level_with_hidden_quantity_does_not_use_fifo_exception():
    eng = pro_rata(top=False)
    book(eng, """
        buy   100     10     1     1
        buy   100     30     2     2   display=10
    """)
    # 20 < 10 + 30 (hidden counts): pro rata over the displayed 10 + 10
    assert fills(eng.submit(sell(20, 100)))[:2] == [(1, 10, 100), (2, 10, 100)]
    assert eng.open_qty(2) == 20


# ---- 5. icebergs share by their displayed quantity ----------------------------------------------------
def test_iceberg_shares_by_displayed_quantity_only():
    eng = pro_rata(top=False)
    book(eng, """
        buy   100    100     1     1   display=10
        buy   100     10     2     2
    """)
    assert fills(eng.submit(sell(10, 100))) == [(1, 5, 100), (2, 5, 100)]


# ---- split FIFO / pro rata (CME K without LMM) -----------------------------------------------------
# The Split step of CME Globex Matching Algorithm Steps (TOP, then a configured FIFO percentage,
# then pro rata, then FIFO): https://cmegroupclientsite.atlassian.net/wiki/spaces/EPICSANDBOX/pages/457218521/CME+Globex+Matching+Algorithm+Steps
# (the numbers below are ours).
def test_split_top_then_fifo_percentage_then_pro_rata_then_fifo():
    eng = split(fifo_pct=40)
    book(eng, """
        buy   100     10     1     1    # TOP: 10
        buy   100     20     2     2    # FIFO 40% of 50 = 20
        buy   100     30     3     3    # 30/80*30 = 11.25 -> 11, +1 leftover FIFO
        buy   100     50     4     4    # 50/80*30 = 18.75 -> 18
    """)
    assert fills(eng.submit(sell(60, 100))) == [(1, 10, 100), (2, 20, 100), (3, 12, 100), (4, 18, 100)]


def test_split_fifo_percentage_is_rounded_down_and_pro_rata_uses_what_is_left_open():
    eng = split(fifo_pct=25, top=False)
    book(eng, """
        buy   100     10     1     1    # FIFO 25% of 30 = 7.5 -> 7; 3/63*23 = 1.1 -> 0; leftover 2
        buy   100     20     2     2    # 20/63*23 = 7.3 -> 7
        buy   100     40     3     3    # 40/63*23 = 14.6 -> 14
    """)
    assert fills(eng.submit(sell(30, 100))) == [(1, 9, 100), (2, 7, 100), (3, 14, 100)]


def test_split_with_0_percent_fifo_is_algorithm_a_and_100_percent_is_fifo_after_top():
    rows = """
        buy   100      5     1     1    # TOP
        buy   100     10     2     2
        buy   100     40     3     3
    """
    a, k0, k100 = pro_rata(), split(fifo_pct=0), split(fifo_pct=100)
    for eng in (a, k0, k100):
        book(eng, rows)
    assert fills(k0.submit(sell(25, 100))) == fills(a.submit(sell(25, 100))) == [(1, 5, 100), (2, 4, 100), (3, 16, 100)]
    assert fills(k100.submit(sell(25, 100))) == [(1, 5, 100), (2, 10, 100), (3, 10, 100)]


# ---- the cme preset -----------------------------------------------------------------------------
def test_cme_preset_is_algorithm_a_with_minimum_2_on_a_quarter_point_tick():
    spec = cme()
    assert spec.rule == ProRata(top=True, min_alloc=2)
    assert (spec.tick, spec.lot) == (25, 1)
    eng = engine(spec)
    book(eng, """
        buy   10000   10     1     1    # TOP
        buy   10000    5     2     2
        buy   10000   20     3     3
        buy   10000   50     4     4
        buy   10000   75     5     5
    """)
    assert [q for _, q, _ in fills(eng.submit(sell(60, 10000)))] == [10, 3, 6, 16, 25]

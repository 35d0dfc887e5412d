"""Refusals and misuse. A market refusal is one ``Rejected(reason)`` event that changes
nothing (book, hash, stops, TOP, last price; ``seq`` moves by that one event). Misuse of the
API raises ``InvalidCommand`` and changes nothing at all. Market rules are checked in the
contract's order: unsupported type/instruction; bad or absurd quantity; bad lot; duplicate
id; bad, off-tick or out-of-band price; stop price; display/minimum quantity; market into an
empty side; post-only would cross; FOK or minimum quantity not fillable."""

from enum import Enum

import msgspec
import pytest
from helpers import book, buy, engine, misuse, refused, resting, sell, snapshot, table
from helpers import invariants_checked  # noqa: F401  (autouse: both engine paths, invariants checked)

from exchange import (
    Accepted,
    Cancel,
    EndSession,
    Fill,
    InvalidCommand,
    MassCancel,
    Modify,
    NewOrder,
    OrderType,
    RejectReason,
    TimeInForce,
    cme,
    nyse,
)

R = RejectReason
MARKET, PROTECT, STOP, STOP_LIMIT = OrderType.MARKET, OrderType.MARKET_PROTECT, OrderType.STOP, OrderType.STOP_LIMIT
IOC, FOK = TimeInForce.IOC, TimeInForce.FOK



def short(value: object) -> str:
    """A test id: a command with its required and non-default fields."""
    if not isinstance(value, msgspec.Struct):
        return repr(value)
    parts = []
    for f in msgspec.structs.fields(value):
        v = getattr(value, f.name)
        if f.required or v != f.default:
            parts.append(f"{f.name}={v.name if isinstance(v, Enum) else repr(v)}")
    return f"{type(value).__name__}({', '.join(parts)})"


BOOK = """
    side  price  qty  trader  id
    buy    95    10     1      1
    sell  105    10     2      2
"""


def seeded(**overrides):
    """Tick 5, lot 5, at most 1000 lots; a bid at 95 and an offer at 105; a stop (id 3)."""
    eng = engine(tick=5, lot=5, max_qty=1000, **overrides)
    book(eng, BOOK)
    eng.submit(buy(5, 120, type=STOP_LIMIT, stop_price=115, id=3, trader=3))
    return eng


@pytest.mark.parametrize(
    "cmd, reason",
    [
        (buy(10, 97), R.OFF_TICK),
        (buy(7, 95), R.BAD_LOT),
        (buy(0, 95), R.BAD_QUANTITY),
        (buy(-5, 95), R.BAD_QUANTITY),
        (buy(1005, 95), R.QUANTITY_TOO_LARGE),
        (buy(5, 0), R.BAD_PRICE),
        (buy(5, -5), R.BAD_PRICE),
        (buy(5, 90, id=1), R.DUPLICATE_ORDER_ID),  # a resting order's id
        (buy(5, 90, id=3), R.DUPLICATE_ORDER_ID),  # a waiting stop's id
        (buy(5, 105, post_only=True), R.POST_ONLY_WOULD_CROSS),
        (buy(15, 105, tif=FOK), R.FOK_NOT_FILLABLE),
        (buy(15, 105, tif=IOC, min_qty=15), R.MIN_QTY_NOT_FILLABLE),
        (buy(10, 95, display_qty=15), R.BAD_DISPLAY_QTY),
        (buy(10, 95, tif=IOC, min_qty=3), R.BAD_MIN_QTY),
        (buy(5, type=STOP, stop_price=0), R.BAD_STOP_PRICE),
        (buy(5, type=STOP, stop_price=112), R.OFF_TICK),
        (buy(5, 110, type=STOP_LIMIT, stop_price=115), R.BAD_STOP_PRICE),
        (Cancel(42, 1), R.UNKNOWN_ORDER),
        (Cancel(1, 2), R.NOT_OWNER),
        (Cancel(3, 1), R.NOT_OWNER),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_refusal_is_one_rejected_event_that_changes_nothing(cmd, reason):
    refused(seeded(), cmd, reason)


def test_market_order_into_an_empty_side_is_refused():
    eng = seeded()
    eng.submit(Cancel(2, 2))
    refused(eng, buy(5, type=MARKET), R.NO_LIQUIDITY)
    refused(eng, buy(5, type=MARKET, tif=FOK), R.NO_LIQUIDITY)  # before the FOK check


def test_refusals_leave_seq_consecutive():
    eng = seeded()
    start = eng.seq
    refused(eng, buy(7, 95), R.BAD_LOT)
    events = eng.submit(buy(5, 90))
    assert [e.seq for e in events] == [start + 2, start + 3]
    assert eng.seq == start + 3


# ---- price band --------------------------------------------------------------------------------------
def test_prices_outside_the_band_around_the_reference_are_refused():
    eng = engine(price_band=5, reference_price=100)  # +/- 5 ticks
    refused(eng, buy(1, 106), R.PRICE_OUT_OF_BAND)
    refused(eng, sell(1, 94), R.PRICE_OUT_OF_BAND)
    refused(eng, buy(1, type=STOP, stop_price=106), R.PRICE_OUT_OF_BAND)
    refused(eng, buy(1, 106, type=STOP_LIMIT, stop_price=104), R.PRICE_OUT_OF_BAND)
    book(eng, """
        buy    95     1     1      1    # at the edges: accepted
        sell  105     1     2      2
    """)


def test_the_band_follows_the_last_trade():
    eng = engine(price_band=5, reference_price=100)
    book(eng, "sell 103 1 1 1")
    eng.submit(buy(1, 103))
    assert eng.last_price == 103
    refused(eng, buy(1, 109), R.PRICE_OUT_OF_BAND)
    book(eng, "buy 108 1 2 2")


def test_no_reference_no_band_check():
    eng = engine(price_band=5)
    book(eng, """
        buy     1     1     1      1
        sell 5000     1     2      2
    """)


# ---- the order of the checks ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, cmd, reason",
    [
        (nyse(), buy(0, 100, type=STOP, stop_price=100), R.UNSUPPORTED),  # unsupported before quantity
        (nyse(), buy(-1, type=OrderType.MARKET_LIMIT), R.UNSUPPORTED),
        (None, buy(-5, 97), R.BAD_QUANTITY),  # quantity before lot and tick
        (None, buy(7, 97, id=1), R.BAD_LOT),  # lot before duplicate id
        (None, buy(5, 97, id=1), R.DUPLICATE_ORDER_ID),  # duplicate id before price
        (None, buy(5, 97, display_qty=7), R.OFF_TICK),  # price before display quantity
        (None, buy(5, 97, type=STOP_LIMIT, stop_price=0), R.OFF_TICK),  # price before stop price
        (None, buy(5, 105, type=STOP, stop_price=100), R.STOP_ALREADY_TRIGGERED),  # after a trade at 105 (below)
        (None, buy(15, 105, post_only=True, display_qty=20), R.BAD_DISPLAY_QTY),  # display before post-only
        (None, buy(15, 105, tif=IOC, min_qty=20), R.BAD_MIN_QTY),  # minimum size before fillability
    ],
)
def test_checks_run_in_the_documented_order(spec, cmd, reason):
    eng = seeded() if spec is None else engine(spec)
    if cmd.type == STOP:
        eng.submit(buy(5, 105))  # last trade 105
    refused(eng, cmd, reason)


@pytest.mark.parametrize(
    "spec, cmd",
    [
        (cme(), buy(0, 10000, post_only=True)),
        (cme(), buy(1, 10010, post_only=True)),
        (None, buy(0, 95, min_qty=5)),  # minimum quantity on a GTC order
        (None, buy(5, 97, tif=IOC, display_qty=5)),  # display quantity on an IOC order
    ],
    ids=["cme_post_only_bad_qty", "cme_post_only_off_tick", "gtc_min_qty_bad_qty", "ioc_display_off_tick"],
)
def test_unsupported_instruction_is_refused_before_the_other_checks(spec, cmd):
    eng = seeded() if spec is None else engine(spec)
    refused(eng, cmd, R.UNSUPPORTED)


# ---- misuse raises InvalidCommand -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cmd",
    [
        None,
        42,
        "NewOrder",
        {"kind": "NewOrder", "order_id": 9},
        NewOrder,
        Accepted(1, 9, 1, 1, 100, 5, 0),  # an event is not a command
        NewOrder(9, 1, 1, 5, "100"),
        NewOrder(9, 1, 1, 5, 100.0),
        NewOrder(9, 1, 1, 5.0, 100),
        NewOrder(9, 1, 1, True, 100),
        NewOrder("9", 1, 1, 5, 100),
        NewOrder(9, None, 1, 5, 100),
        NewOrder(9, 1, 0, 5, 100),
        NewOrder(9, 1, 2, 5, 100),
        NewOrder(9, 1, "buy", 5, 100),
        NewOrder(9, 1, 1, 5, 100, type=42),
        NewOrder(9, 1, 1, 5, 100, tif=9),
        NewOrder(9, 1, 1, 5),  # LIMIT without price
        NewOrder(9, 1, 1, 5, type=STOP_LIMIT, stop_price=115),  # STOP_LIMIT without price
        NewOrder(9, 1, 1, 5, type=STOP),  # stop without trigger
        NewOrder(9, 1, 1, 5, 120, type=STOP_LIMIT, stop_price="115"),
        NewOrder(9, 1, 1, 5, 90, display_qty="5"),
        NewOrder(9, 1, 1, 5, 90, tif=IOC, min_qty=5.0),
        NewOrder(9, 1, 1, 5, 90, smp_id="a"),
        NewOrder(9, 1, 1, 5, 90, smp_id=1, smp_mode=9),
        NewOrder(9, 1, 1, 5, type=PROTECT, protection=-1),
        NewOrder(9, 1, 1, 5, type=PROTECT, protection="2"),
        Cancel("1", 1),
        Cancel(1, None),
        Modify(1, 1, 5.0),
        Modify(1, 1, 5, "95"),
        Modify(None, 1, 5),
        MassCancel("1"),
    ],
    ids=short,
)
def test_misuse_raises_invalid_command_and_changes_nothing(cmd):
    misuse(seeded(), cmd)


@pytest.mark.parametrize(
    "spec, cmd",
    [
        (nyse(), NewOrder(9, 1, 1, 5, type=STOP)),  # stops unsupported on nyse
        (cme(), NewOrder(9, 1, 1, 0, type=STOP)),  # bad quantity
        (cme(), NewOrder(9, 1, 1, 5, 10010, type=STOP_LIMIT, stop_price="x")),  # off-tick limit
    ],
    ids=["nyse_stop_without_trigger", "cme_stop_without_trigger_qty_0", "cme_stop_limit_str_trigger_off_tick"],
)
def test_stop_without_a_valid_trigger_is_misuse_whatever_else_is_wrong(spec, cmd):
    misuse(engine(spec), cmd)


@pytest.mark.parametrize(
    "cmd",
    [NewOrder(9, 4, 1, 5, "105", type=MARKET), NewOrder(9, 4, 1, 5, 105.0, type=MARKET), Cancel(1.0, 1), Cancel(True, 1)],
    ids=short,
)
def test_fast_path_raises_on_the_same_misuse_as_the_general_handlers(cmd):
    for fast_path in (False, True):
        misuse(seeded(fast_path=fast_path), cmd)


def test_submit_many_stops_at_misuse_keeping_what_came_before():
    eng = seeded()
    before = snapshot(eng)
    good = [sell(5, 95, id=10, trader=4), buy(5, 90, id=11, trader=5)]
    with pytest.raises(InvalidCommand) as exc:
        eng.submit_many([*good, NewOrder(12, 6, 0, 5, 100), buy(5, 85, id=13, trader=6), EndSession()])
    assert [type(e).__name__ for e in exc.value.events] == ["Accepted", "Fill", "BookUpdate", "Accepted", "BookUpdate"]
    assert [e.seq for e in exc.value.events] == list(range(before[-1] + 1, before[-1] + 6))
    assert eng.seq == before[-1] + 5
    assert [e for e in exc.value.events if isinstance(e, Fill)][0].maker_id == 1
    assert resting(eng) == table("""
        buy    95     5     1      1
        buy    90     5     5     11
        sell  105    10     2      2
    """)



def test_pro_rata_instruments_trade_single_lots() -> None:
    from exchange.instrument import InstrumentSpec
    from exchange.rules import Split

    # pro-rata shares are rounded down in units: lots of 2 would leave off-lot remainders
    with pytest.raises(ValueError, match="needs lot=1"):
        cme(lot=2)
    with pytest.raises(ValueError, match="needs lot=1"):
        InstrumentSpec("K", rule=Split(), lot=5)

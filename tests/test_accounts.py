"""Accounts are derived from fills alone: fees, average entry, realized PnL, conservation."""

from __future__ import annotations

import random

import pytest

from exchange import NewOrder, nyse
from exchange.accounts import Accounts, FeeSchedule, Position
from exchange.events import Fill
from exchange.venue import Exchange, RiskLimits


def fill(price: int, qty: int, aggressor: int, maker: int = 1, taker: int = 2) -> Fill:
    return Fill(seq=0, price=price, qty=qty, aggressor=aggressor, maker_id=10, taker_id=20, maker_trader=maker, taker_trader=taker)


def test_a_fill_moves_cash_and_fees_between_the_two_sides() -> None:
    accts = Accounts(FeeSchedule(maker_bps=-1, taker_bps=3), starting_cash=1_000_000)
    accts.apply("XYZ", [fill(price=10_000, qty=5, aggressor=1)])  # trader 2 buys 5 @ 100.00 from 1
    buyer, seller = accts.account(2), accts.account(1)
    assert (buyer.position("XYZ"), seller.position("XYZ")) == (5, -5)
    assert buyer.fees == 50_000 * 3 // 10_000 == 15  # taker pays 3 bps of 50,000
    assert seller.fees == 50_000 * -1 // 10_000 == -5  # maker earns a 1 bp rebate
    assert buyer.cash == 1_000_000 - 50_000 - 15
    assert seller.cash == 1_000_000 + 50_000 + 5
    accts.check_conservation()


def test_conservation_counts_each_accounts_own_starting_cash() -> None:
    accts = Accounts(FeeSchedule(taker_bps=3), starting_cash=1_000_000, trader_cash={2: 40_000})
    accts.apply("XYZ", [fill(price=10_000, qty=2, aggressor=1)])  # trader 2 buys 2 @ 100.00 from 1
    assert accts.account(2).cash == 40_000 - 20_000 - 6 and accts.account(1).cash == 1_000_000 + 20_000
    accts.check_conservation()  # the starting total is 1,040,000, not twice either amount
    accts.account(1).cash -= 1
    with pytest.raises(AssertionError, match="1040000"):
        accts.check_conservation()


def test_per_lot_fee_is_charged_to_both_sides() -> None:
    assert FeeSchedule(per_lot=2).fee(price=123, qty=7, maker=True) == 14
    assert FeeSchedule(per_lot=2).fee(price=123, qty=7, maker=False) == 14


@pytest.mark.parametrize(
    ("trades", "qty", "avg", "realized"),
    [
        ([(+10, 100)], 10, 100.0, 0.0),
        ([(+10, 100), (+10, 110)], 20, 105.0, 0.0),  # averaging in
        ([(+10, 100), (-4, 120)], 6, 100.0, 80.0),  # partial close keeps the entry price
        ([(+10, 100), (-10, 90)], 0, 0.0, -100.0),  # flat
        ([(+10, 100), (-15, 110)], -5, 110.0, 100.0),  # flip: the rest opens at the fill price
        ([(-10, 100), (+4, 90)], -6, 100.0, 40.0),  # short covering at a profit
    ],
)
def test_position_average_entry_and_realized_pnl(trades: list, qty: int, avg: float, realized: float) -> None:
    p = Position()
    for signed, price in trades:
        p.trade(signed, price)
    assert (p.qty, p.avg_price, p.realized) == (qty, avg, realized)


def test_equity_marks_to_mid_and_unrealized_is_mark_minus_entry() -> None:
    accts = Accounts(starting_cash=0)
    accts.apply("XYZ", [fill(price=100, qty=3, aggressor=1)])
    buyer = accts.account(2)
    assert buyer.unrealized_pnl({"XYZ": 104.0}) == 12.0
    assert buyer.equity({"XYZ": 104.0}) == -300 + 3 * 104.0


def test_conservation_holds_after_every_command_of_a_random_stream() -> None:
    rnd = random.Random(5)
    venue = Exchange({"XYZ": nyse(), "ABC": nyse()}, fees=FeeSchedule(maker_bps=-2, taker_bps=5, per_lot=1), starting_cash=10**9)
    for oid in range(1, 3000):
        symbol = rnd.choice(("XYZ", "ABC"))
        venue.submit(symbol, NewOrder(oid, rnd.randint(1, 6), rnd.choice((1, -1)), rnd.randint(1, 9), rnd.randint(95, 105)))
        venue.accounts.check_conservation()
    assert sum(a.volume for a in venue.accounts.by_trader.values()) > 0


def test_orders_and_fills_are_counted_from_events() -> None:
    venue = Exchange({"XYZ": nyse()})
    venue.submit("XYZ", NewOrder(1, 1, -1, 5, 100))
    venue.submit("XYZ", NewOrder(2, 2, 1, 2, 100))
    venue.submit("XYZ", NewOrder(3, 2, 1, 2, 100))
    a1, a2 = venue.accounts.account(1), venue.accounts.account(2)
    assert (a1.orders, a1.fills, a1.volume) == (1, 2, 4)
    assert (a2.orders, a2.fills, a2.volume) == (2, 2, 4)


class TestPreTradeRisk:
    def venue(self, **limits: int) -> Exchange:
        return Exchange({"XYZ": nyse()}, risk=RiskLimits(**limits))

    def test_order_larger_than_allowed_is_refused_and_changes_nothing(self) -> None:
        venue = self.venue(max_order_qty=10)
        engine = venue.engines["XYZ"]
        before = engine.state_hash()
        [ev] = venue.submit("XYZ", NewOrder(1, 1, 1, 11, 100))
        assert ev.reason == "risk_order_qty" and engine.state_hash() == before
        assert venue.accounts.account(1).orders == 0

    def test_position_limit_counts_open_orders_on_the_same_side(self) -> None:
        venue = self.venue(max_position=10)
        venue.submit("XYZ", NewOrder(1, 1, 1, 6, 100))
        [ev] = venue.submit("XYZ", NewOrder(2, 1, 1, 5, 99))  # 6 open + 5 could make 11
        assert ev.reason == "risk_position"
        assert type(venue.submit("XYZ", NewOrder(3, 1, -1, 5, 101))[0]).__name__ == "Accepted"  # the other side is fine

    def test_position_limit_counts_the_position_itself(self) -> None:
        venue = self.venue(max_position=10)
        venue.submit("XYZ", NewOrder(1, 2, -1, 8, 100))
        venue.submit("XYZ", NewOrder(2, 1, 1, 8, 100))  # trader 1 is long 8
        [ev] = venue.submit("XYZ", NewOrder(3, 1, 1, 3, 99))
        assert ev.reason == "risk_position"
        assert type(venue.submit("XYZ", NewOrder(4, 1, -1, 15, 101))[0]).__name__ == "Accepted"  # at worst short 7
        assert venue.submit("XYZ", NewOrder(5, 1, -1, 4, 102))[0].reason == "risk_position"  # at worst short 11

    def test_open_order_limit_frees_up_when_orders_leave(self) -> None:
        venue = self.venue(max_open_orders=2)
        venue.submit("XYZ", NewOrder(1, 1, 1, 1, 100))
        venue.submit("XYZ", NewOrder(2, 1, 1, 1, 99))
        assert venue.submit("XYZ", NewOrder(3, 1, 1, 1, 98))[0].reason == "risk_open_orders"
        venue.submit("XYZ", NewOrder(9, 2, -1, 1, 100))  # fills order 1
        assert type(venue.submit("XYZ", NewOrder(4, 1, 1, 1, 98))[0]).__name__ == "Accepted"

    def test_notional_limit_values_market_orders_at_the_opposite_best(self) -> None:
        venue = self.venue(max_notional=1_000)
        venue.submit("XYZ", NewOrder(1, 2, -1, 10, 100))
        assert venue.submit("XYZ", NewOrder(2, 1, 1, 11, 100))[0].reason == "risk_notional"
        assert venue.submit("XYZ", NewOrder(3, 1, 1, 11, type=1))[0].reason == "risk_notional"
        assert type(venue.submit("XYZ", NewOrder(4, 1, 1, 10, 100))[0]).__name__ == "Accepted"


def test_record_accounts_and_tracks_events_sent_straight_to_the_engine() -> None:
    """``Exchange.record``: a fill made outside ``submit`` (a background sent straight to the
    engine) reaches the accounts and the open-order view the risk checks read, exactly as
    if the command had gone through ``submit``."""
    via_venue = Exchange({"XYZ": nyse()}, risk=RiskLimits(max_position=10))
    recorded = Exchange({"XYZ": nyse()}, risk=RiskLimits(max_position=10))
    for venue in (via_venue, recorded):
        venue.submit("XYZ", NewOrder(1, 1, 1, 8, 100))  # trader 1 bids 8, through the venue
    via_venue.submit("XYZ", NewOrder(2, 2, -1, 3, 100))
    events = recorded.engines["XYZ"].submit(NewOrder(2, 2, -1, 3, 100))  # the same sell, bypassing the venue
    recorded.record("XYZ", [ev for ev in events if type(ev) is Fill])
    for venue in (via_venue, recorded):
        one, two = venue.accounts.account(1), venue.accounts.account(2)
        assert (one.position("XYZ"), two.position("XYZ"), one.cash, two.cash) == (3, -3, -300, 300)
        assert venue.open_orders[1] == {("XYZ", 1): (1, 5)}  # 5 of the 8 still rest
        assert venue.submit("XYZ", NewOrder(3, 1, 1, 3, 99))[0].reason == "risk_position"  # 3 held + 5 open + 3 > 10
        venue.accounts.check_conservation()
    assert recorded.accounts.account(2).orders == 0  # its acceptance was not passed: only the fill
    with pytest.raises(KeyError, match="unknown symbol"):
        recorded.record("NOPE", [])

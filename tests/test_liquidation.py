"""Margin and liquidation, end to end: the rule in exchange/venue.py's docstring."""

from __future__ import annotations

from exchange import Cancelled, Fill, Liquidation, NewOrder, nyse
from exchange.venue import Exchange, MarginPolicy


def leveraged_venue() -> Exchange:
    """Trader 1 buys 50 XYZ and 50 ABC at 100.00 with 1,000 of collateral (cash -9,000)."""
    venue = Exchange({"XYZ": nyse(), "ABC": nyse()}, starting_cash=1_000, margin=MarginPolicy(maintenance_bps=1_000))
    for symbol, base in (("XYZ", 1), ("ABC", 3)):
        venue.submit(symbol, NewOrder(base, 2, -1, 50, 100))
        venue.submit(symbol, NewOrder(base + 1, 1, 1, 50, 100))
    venue.submit("XYZ", NewOrder(5, 1, 1, 5, 90))  # a resting bid of the trader's own
    venue.submit("ABC", NewOrder(6, 3, 1, 100, 99))  # liquidity to flatten into
    return venue


def test_equity_below_maintenance_cancels_flattens_and_bars() -> None:
    venue = leveraged_venue()
    marks = venue.marks()
    acct = venue.accounts.account(1)
    assert acct.equity(marks) >= venue.maintenance(1, marks)  # 1,000 + 50*(100-100)... still fine
    venue.submit("XYZ", NewOrder(7, 3, 1, 100, 95))  # XYZ bid 95, no ask: marked at the last trade, 100
    events = venue.submit("XYZ", NewOrder(8, 4, -1, 1, 95))  # a trade at 95 marks XYZ down
    kinds = [type(e).__name__ for e in events]
    assert "Liquidation" in kinds
    liq = next(e for e in events if type(e) is Liquidation)
    assert liq.trader == 1 and liq.equity < liq.margin
    after = events[kinds.index("Liquidation") :]
    assert any(type(e) is Cancelled and e.order_id == 5 for e in after)  # its resting bid went first
    assert sum(e.qty for e in after if type(e) is Fill and e.taker_trader == 1) == 50  # XYZ flattened
    [(symbol, side_events)] = venue.take_side_events()
    assert symbol == "ABC"
    assert sum(e.qty for e in side_events if type(e) is Fill and e.taker_trader == 1) == 50
    assert acct.position("XYZ") == acct.position("ABC") == 0
    [refused] = venue.submit("XYZ", NewOrder(9, 1, 1, 1, 90))
    assert refused.reason == "trader_barred"
    venue.accounts.check_conservation()


def test_healthy_traders_are_left_alone() -> None:
    venue = Exchange({"XYZ": nyse()}, starting_cash=100_000, margin=MarginPolicy(maintenance_bps=1_000))
    venue.submit("XYZ", NewOrder(1, 2, -1, 50, 100))
    venue.submit("XYZ", NewOrder(2, 1, 1, 50, 100))
    events = venue.submit("XYZ", NewOrder(3, 3, -1, 1, 60))
    assert not any(type(e) is Liquidation for e in events) and not venue.barred

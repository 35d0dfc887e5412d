"""Margin and liquidation, end to end: the rule in exchange/venue.py's docstring."""

from __future__ import annotations

import random

import pytest

from exchange import Cancel, Cancelled, Fill, Liquidation, NewOrder, nyse
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


class _AlwaysChecks(Exchange):
    """The venue with every margin check run in full (no skip when nothing moved)."""

    def _check_margin(self, symbol: str, events: list) -> None:
        self._margin_clean.clear()
        super()._check_margin(symbol, events)


@pytest.mark.parametrize("seed", range(12))
def test_skipping_unchanged_margin_checks_changes_no_outcome(seed: int) -> None:
    """A check is skipped only when no fill and no mark moved since a clean one: random
    leveraged two-symbol flow liquidates exactly the same traders with the same events."""
    rng = random.Random(seed)
    make = lambda cls: cls({"XYZ": nyse(), "ABC": nyse()}, starting_cash=2_000,  # noqa: E731
                           trader_cash={9: 10**9}, margin=MarginPolicy(maintenance_bps=2_000))
    fast, full = make(Exchange), make(_AlwaysChecks)
    liquidations = 0
    for oid in range(1, 1_500):
        symbol = rng.choice(("XYZ", "ABC"))
        trader = 9 if rng.random() < 0.3 else rng.randint(1, 6)  # 9: a deep-pocketed liquidity provider
        side, qty = rng.choice((1, -1)), rng.randint(1, 30)
        if rng.random() < 0.2:
            command: object = Cancel(rng.randint(max(1, oid - 40), oid), trader)
        else:
            command = NewOrder(oid, trader, side, qty, 100 + rng.randint(-6, 6) * side * -1 + rng.randint(-3, 3))
        a, b = fast.submit(symbol, command), full.submit(symbol, command)
        assert a == b and fast.take_side_events() == full.take_side_events()
        liquidations += sum(type(e) is Liquidation for e in a)
    assert fast.barred == full.barred and fast.accounts.by_trader.keys() == full.accounts.by_trader.keys()
    for t, acct in fast.accounts.by_trader.items():
        assert (acct.cash, acct.fees, {s: p.qty for s, p in acct.positions.items()}) == (
            full.accounts.by_trader[t].cash, full.accounts.by_trader[t].fees,
            {s: p.qty for s, p in full.accounts.by_trader[t].positions.items()})
    if seed == 0:
        assert liquidations > 0  # the flow does liquidate: the skip was exercised around them

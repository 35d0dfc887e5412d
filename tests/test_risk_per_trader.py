"""Per-trader risk limits and starting cash: the rule in exchange/venue.py's docstring.

``risk`` and ``starting_cash`` are every trader's; an entry of ``trader_risk`` replaces the
default limits whole for its trader (nothing is inherited), an entry of ``trader_cash``
replaces the default cash. The live server reads both from its trader list.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest

from exchange import Accepted, Fill, Liquidation, NewOrder, Rejected, nyse
from exchange.accounts import FeeSchedule
from exchange.venue import Exchange, MarginPolicy, RiskLimits
from live import protocol as P
from live.config import ServerConfig, SymbolConfig, TraderConfig, config_from_dict, config_to_dict, load_config
from live.core import LiveVenue, Outbox

TIGHT, LOOSE = 7, 8  # trader 7 has its own limits, trader 8 the venue's


def venue(default: RiskLimits, tight: RiskLimits, **kw: object) -> Exchange:
    return Exchange({"XYZ": nyse()}, risk=default, trader_risk={TIGHT: tight}, **kw)


def accounts_state(ex: Exchange) -> dict:
    """Everything the accounts and the risk tracking hold, as plain data."""
    return {
        t: (a.cash, a.fees, a.orders, a.fills, a.volume, {s: p.qty for s, p in a.positions.items()})
        for t, a in ex.accounts.by_trader.items()
    } | {"open": {t: dict(o) for t, o in ex.open_orders.items()}, "pending": dict(ex._pending)}


# ---- limits ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tight", "order", "reason"),
    [
        (RiskLimits(max_order_qty=5), NewOrder(2, TIGHT, 1, 6, 99), "risk_order_qty"),
        (RiskLimits(max_position=5), NewOrder(2, TIGHT, 1, 6, 99), "risk_position"),
        (RiskLimits(max_open_orders=1), NewOrder(2, TIGHT, 1, 1, 98), "risk_open_orders"),
        (RiskLimits(max_notional=500), NewOrder(2, TIGHT, 1, 6, 99), "risk_notional"),
    ],
)
def test_a_trader_with_a_tighter_limit_is_refused_where_another_is_not(tight: RiskLimits, order: NewOrder, reason: str) -> None:
    ex = venue(RiskLimits(max_order_qty=1_000), tight)
    for trader, oid in ((TIGHT, 1), (LOOSE, 11)):
        [accepted] = [e for e in ex.submit("XYZ", NewOrder(oid, trader, 1, 1, 99)) if type(e) is Accepted]
    [refused] = ex.submit("XYZ", order)
    assert type(refused) is Rejected and refused.reason == reason and refused.trader == TIGHT
    same_for_loose = msgspec.structs.replace(order, order_id=12, trader=LOOSE)
    assert type(ex.submit("XYZ", same_for_loose)[0]) is Accepted


def test_a_trader_entry_replaces_the_default_whole() -> None:
    """Trader 7's entry sets only a position limit: the venue's order-size limit is not its."""
    ex = venue(RiskLimits(max_order_qty=10), RiskLimits(max_position=1_000))
    assert ex.limits(TIGHT) == RiskLimits(max_position=1_000) and ex.limits(LOOSE) == RiskLimits(max_order_qty=10)
    assert type(ex.submit("XYZ", NewOrder(1, TIGHT, 1, 50, 99))[0]) is Accepted
    assert ex.submit("XYZ", NewOrder(2, LOOSE, 1, 50, 99))[0].reason == "risk_order_qty"
    assert ex.submit("XYZ", NewOrder(3, TIGHT, 1, 951, 98))[0].reason == "risk_position"  # 50 open + 951 > 1,000


def test_an_empty_entry_lifts_every_limit_for_that_trader() -> None:
    ex = venue(RiskLimits(max_order_qty=10, max_open_orders=1), RiskLimits())
    for oid in (1, 2, 3):
        assert type(ex.submit("XYZ", NewOrder(oid, TIGHT, 1, 500, 99 - oid))[0]) is Accepted
    assert type(ex.submit("XYZ", NewOrder(4, LOOSE, 1, 5, 90))[0]) is Accepted
    assert ex.submit("XYZ", NewOrder(5, LOOSE, 1, 5, 90))[0].reason == "risk_open_orders"


def test_a_refused_order_changes_nothing() -> None:
    ex = venue(RiskLimits(), RiskLimits(max_position=10), fees=FeeSchedule(taker_bps=5), starting_cash=1_000)
    ex.submit("XYZ", NewOrder(1, LOOSE, -1, 8, 100))
    ex.submit("XYZ", NewOrder(2, TIGHT, 1, 6, 100))  # trader 7 is long 6
    ex.submit("XYZ", NewOrder(3, TIGHT, 1, 2, 99))  # and bids 2 more
    engine = ex.engines["XYZ"]
    book, accounts = engine.state_hash(), accounts_state(ex)
    [refused] = ex.submit("XYZ", NewOrder(4, TIGHT, 1, 3, 101))  # would cross the 2 left: 6 + 2 + 3 > 10
    assert refused.reason == "risk_position"
    assert engine.state_hash() == book and accounts_state(ex) == accounts
    engine.check_invariants()


def test_checks_are_off_only_when_no_limit_applies_to_anyone() -> None:
    def checks(**kw: object) -> bool:
        return Exchange({"XYZ": nyse()}, **kw)._checks  # type: ignore[arg-type]

    assert not checks()
    assert not checks(risk=RiskLimits(), trader_risk={TIGHT: RiskLimits()}, trader_cash={TIGHT: 5})
    assert checks(trader_risk={TIGHT: RiskLimits(max_open_orders=3)})
    assert checks(risk=RiskLimits(max_position=1), trader_risk={TIGHT: RiskLimits()})
    assert checks(margin=MarginPolicy())


def test_bad_limits_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="max_position must be >= 0"):
        RiskLimits(max_position=-1)
    with pytest.raises(TypeError, match=r"trader_risk\[7\] must be a RiskLimits"):
        Exchange({"XYZ": nyse()}, trader_risk={TIGHT: {"max_position": 5}})  # type: ignore[dict-item]
    assert RiskLimits(max_order_qty=0).max_order_qty == 0  # 0: every new order refused


# ---- cash and collateral --------------------------------------------------------------------------
def test_each_account_opens_with_its_own_starting_cash() -> None:
    ex = Exchange({"XYZ": nyse()}, starting_cash=1_000, trader_cash={TIGHT: 5_000})
    ex.submit("XYZ", NewOrder(1, TIGHT, -1, 3, 100))
    ex.submit("XYZ", NewOrder(2, LOOSE, 1, 3, 100))
    assert (ex.accounts.account(TIGHT).cash, ex.accounts.account(LOOSE).cash) == (5_000 + 300, 1_000 - 300)
    assert ex.accounts.starting_cash_of(TIGHT) == 5_000 and ex.accounts.starting_cash_of(99) == 1_000
    ex.accounts.check_conservation()


def two_longs(trader_cash: dict[int, int]) -> tuple[Exchange, list]:
    """Traders 1 and 2 each buy 50 at 100 (default cash 1,000); then XYZ trades at 80."""
    ex = Exchange({"XYZ": nyse()}, starting_cash=1_000, trader_cash=trader_cash, margin=MarginPolicy(maintenance_bps=1_000))
    ex.submit("XYZ", NewOrder(1, 3, -1, 100, 100))
    ex.submit("XYZ", NewOrder(2, 1, 1, 50, 100))
    ex.submit("XYZ", NewOrder(3, 2, 1, 50, 100))
    ex.submit("XYZ", NewOrder(4, 4, 1, 200, 80))  # liquidity to flatten into
    return ex, ex.submit("XYZ", NewOrder(5, 5, -1, 1, 80))  # marks XYZ at 80


def test_liquidation_uses_each_traders_own_collateral() -> None:
    """Same position, different cash: at 80 trader 1's equity is 1,000 - 5,000 + 4,000 = 0,
    below its 400 of maintenance; trader 2 started with 100,000 and keeps its position."""
    ex, events = two_longs({2: 100_000})
    [liq] = [e for e in events if type(e) is Liquidation]
    assert liq.trader == 1 and liq.equity == 0.0 and liq.margin == 400.0
    assert sum(e.qty for e in events if type(e) is Fill and e.taker_trader == 1) == 50  # flattened
    assert ex.barred == {1}
    assert ex.accounts.account(1).position("XYZ") == 0 and ex.accounts.account(2).position("XYZ") == 50
    ex.accounts.check_conservation()


def test_with_the_same_cash_both_longs_are_liquidated() -> None:
    _, events = two_longs({})
    assert [e.trader for e in events if type(e) is Liquidation] == [1, 2]


# ---- conservation -------------------------------------------------------------------------------
def test_conservation_holds_with_unequal_starting_cash() -> None:
    rnd = random.Random(11)
    cash = {1: 10**9, 2: 5 * 10**8, 3: 0}  # traders 4..6 take the default
    fees = FeeSchedule(maker_bps=-2, taker_bps=5, per_lot=1)
    ex = Exchange({"XYZ": nyse(), "ABC": nyse()}, fees=fees, starting_cash=7 * 10**8, trader_cash=cash)
    for oid in range(1, 2000):
        trader = rnd.randint(1, 6)
        ex.submit(rnd.choice(("XYZ", "ABC")), NewOrder(oid, trader, rnd.choice((1, -1)), rnd.randint(1, 9), rnd.randint(95, 105)))
        ex.accounts.check_conservation()
    accts = ex.accounts.by_trader
    assert set(accts) == {1, 2, 3, 4, 5, 6} and all(a.volume for a in accts.values())
    assert sum(a.cash + a.fees for a in accts.values()) == 10**9 + 5 * 10**8 + 0 + 3 * 7 * 10**8
    accts[3].cash += 1  # money from nowhere is caught
    with pytest.raises(AssertionError, match="starting total"):
        ex.accounts.check_conservation()


# ---- live configuration ----------------------------------------------------------------------------
def live_config(**trader_kw: object) -> ServerConfig:
    return ServerConfig(
        symbols=(SymbolConfig("XYZ", "nyse"),),
        traders=(TraderConfig(1, "alice", "a-t", **trader_kw), TraderConfig(2, "bob", "b-t")),  # type: ignore[arg-type]
        starting_cash=1_000_000,
        risk=RiskLimits(max_order_qty=1_000),
    )


def test_live_config_round_trips_per_trader_risk_and_cash(tmp_path: Path) -> None:
    cfg = live_config(risk=RiskLimits(max_order_qty=5, max_position=20), starting_cash=50_000)
    data = config_to_dict(cfg)
    assert data["traders"][0]["risk"] == {"max_order_qty": 5, "max_position": 20, "max_open_orders": None, "max_notional": None}
    assert data["traders"][0]["starting_cash"] == 50_000 and data["traders"][1]["risk"] is None
    path = tmp_path / "venue.json"
    path.write_text(json.dumps(data))
    assert load_config(path) == cfg
    assert cfg.trader_risk() == {1: RiskLimits(max_order_qty=5, max_position=20)} and cfg.trader_cash() == {1: 50_000}
    assert cfg.venue_fingerprint() != replace(cfg, traders=(TraderConfig(1, "alice", "a-t"), cfg.traders[1])).venue_fingerprint()


@pytest.mark.parametrize(
    ("trader", "message"),
    [
        ({"risk": {"max_position": -1}}, "max_position must be >= 0"),
        ({"risk": {"max_postion": 5}}, r"config.traders\[0\].risk: unknown field\(s\) \['max_postion'\]"),
        ({"starting_cash": -5}, "trader 1: starting_cash must be an int >= 0"),
        ({"starting_cash": 1.5}, "Expected `int | null`, got `float`"),
    ],
)
def test_live_config_refuses_a_bad_per_trader_value(trader: dict, message: str) -> None:
    data = config_to_dict(live_config())
    data["traders"][0].update(trader)
    with pytest.raises(ValueError, match=message):
        config_from_dict(data)


def test_the_live_venue_applies_each_traders_limits_and_cash() -> None:
    live = LiveVenue(live_config(risk=RiskLimits(max_order_qty=5), starting_cash=50_000))
    out = Outbox()
    for trader in (1, 2):
        live.handle(trader, P.NewOrderRequest(symbol="XYZ", side="buy", qty=6, price=100, req=trader), 1, out)
    answers = (P.Rejected, P.Accepted)
    replies = [(who, type(m).__name__, getattr(m, "reason", None)) for who, m in out.private if type(m) in answers]
    assert replies == [(1, "Rejected", "risk_order_qty"), (2, "Accepted", None)]
    live.handle(1, P.NewOrderRequest(symbol="XYZ", side="sell", qty=5, price=100), 2, out)  # fills 5 of bob's bid
    accounts = live.exchange.accounts
    assert (accounts.account(1).cash, accounts.account(2).cash) == (50_000 + 500, 1_000_000 - 500)
    live.check_invariants()


def test_the_live_account_and_performance_show_own_cash_before_any_trade() -> None:
    live = LiveVenue(live_config(risk=RiskLimits(), starting_cash=50_000))
    rows = {r.trader: r for r in live.performance(1).traders}
    assert (rows[1].cash, rows[1].starting_cash) == (50_000, 50_000)
    assert (rows[2].cash, rows[2].starting_cash) == (1_000_000, 1_000_000)
    assert live.account(2, 1).cash == 1_000_000 and live.account(2, 1).equity == 1_000_000

"""A venue: several instruments, one set of accounts, pre-trade risk. Still no I/O.

``Exchange({"XYZ": nyse(), "ES": cme()}, ...)`` owns one ``MatchingEngine`` per symbol and
the ``Accounts`` derived from their events. ``submit(symbol, command)`` runs the venue's
pre-trade risk checks on new orders, then the instrument's engine, then applies the events
to the accounts and returns them. Each instrument keeps its own event sequence.

Pre-trade risk (``RiskLimits``, all optional), each a ``Rejected`` event with its reason
that changes nothing:

- ``max_order_qty``: lots of one order (``risk_order_qty``);
- ``max_position``: the position could pass the limit if this order and the trader's open
  orders on the same side of that symbol all filled (``risk_position``);
- ``max_open_orders``: resting plus stop orders over all symbols (``risk_open_orders``);
- ``max_notional``: price x lots of one order, a market order valued at the opposite
  best (``risk_notional``).

Per trader. ``risk`` applies to every trader; an entry of ``trader_risk`` (trader id ->
``RiskLimits``) replaces it whole for that trader: its fields are that trader's limits and
nothing is inherited from ``risk`` (None there lifts a check for that trader alone; to
tighten one field and keep the others, pass ``dataclasses.replace(risk, field=...)``).
Likewise ``starting_cash`` opens every account and ``trader_cash`` (trader id -> cash)
overrides it for the traders it names. Limits are fixed at construction; when no limit is
set anywhere and there is no margin policy, ``submit`` skips the risk path altogether.

Open orders are tracked from the events (each event naming an order updates that order's
open quantity from the engine), so the checks see exactly what rests.

Margin and liquidation (``MarginPolicy``, optional). A trader's collateral is its cash
account (opened with its own starting cash); its equity is cash plus positions at the mark
prices (mid, else last trade), and its maintenance margin is ``maintenance_bps`` of the
marked value of its open positions.
After every command the venue checks the traders holding the command's symbol (and anyone
who traded). When equity falls below maintenance, the venue, in this order: emits
``Liquidation(trader, equity, margin)``; cancels all the trader's orders on every symbol
(``MassCancel``); and flattens each position with a venue-generated IOC market order for the
trader (order ids -1, -2, ...; plain market orders, so the rest of a position that finds no
liquidity stays open and is reported). With ``bar_liquidated`` the trader's new orders are
then refused (``trader_barred``) for the rest of the session; cancels still work. Events
on the command's own symbol are returned by ``submit``; liquidation events on other
symbols are collected for ``take_side_events()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import count

from exchange.accounts import Accounts, FeeSchedule, mark_price
from exchange.book import HIDDEN, QTY
from exchange.commands import MassCancel, NewOrder
from exchange.engine import MatchingEngine
from exchange.enums import OrderType, RejectReason, TimeInForce
from exchange.events import Accepted, BookUpdate, Cancelled, Expired, Fill, Liquidation, Modified, Refreshed, Triggered
from exchange.instrument import InstrumentSpec

_R = RejectReason
_ORDER_EVENTS = frozenset((Accepted, Cancelled, Expired, Modified, Refreshed, Triggered))


@dataclass(frozen=True)
class MarginPolicy:
    """Maintenance margin as basis points of the marked position value; bar after liquidation."""

    maintenance_bps: int = 1_000
    bar_liquidated: bool = True


@dataclass(frozen=True)
class RiskLimits:
    """One trader's pre-trade limits; None disables a check, 0 refuses every new order."""

    max_order_qty: int | None = None
    max_position: int | None = None
    max_open_orders: int | None = None
    max_notional: int | None = None

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value is not None and value < 0:
                raise ValueError(f"RiskLimits.{name} must be >= 0 or None, got {value}")

    def active(self) -> bool:
        """Whether any check is on."""
        return any(v is not None for v in vars(self).values())


class Exchange:
    """Matching engines for several symbols sharing accounts and risk limits.

    ``risk`` and ``starting_cash`` are every trader's defaults; ``trader_risk`` and
    ``trader_cash`` (keyed by trader id) replace them for the traders they name.
    """

    def __init__(
        self,
        instruments: Mapping[str, InstrumentSpec],
        *,
        fees: FeeSchedule | None = None,
        starting_cash: int = 0,
        trader_cash: Mapping[int, int] | None = None,
        risk: RiskLimits | None = None,
        trader_risk: Mapping[int, RiskLimits] | None = None,
        margin: MarginPolicy | None = None,
    ) -> None:
        self.engines = {symbol: MatchingEngine(spec) for symbol, spec in instruments.items()}
        self.accounts = Accounts(fees, starting_cash, trader_cash)
        self.risk = risk if risk is not None else RiskLimits()
        self.trader_risk: dict[int, RiskLimits] = dict(trader_risk) if trader_risk is not None else {}
        for trader, limits in self.trader_risk.items():
            if not isinstance(limits, RiskLimits):
                raise TypeError(f"trader_risk[{trader}] must be a RiskLimits, got {type(limits).__name__}")
        self.margin = margin
        self.barred: set[int] = set()
        self._checks = margin is not None or self.risk.active() or any(r.active() for r in self.trader_risk.values())
        self._side_events: list[tuple[str, list]] = []
        self._next_venue_id = count(-1, -1).__next__
        self._liquidating = False
        self._margin_clean: dict[str, dict[str, float | None]] = {}  # symbol -> marks of its last check, while no fill since
        # trader -> {(symbol, order id): (side, open qty)}: what rests or waits, from events
        self.open_orders: dict[int, dict[tuple[str, int], tuple[int, int]]] = {}
        # (trader, symbol, side) -> total open qty of those orders, kept with ``open_orders``
        self._pending: dict[tuple[int, str, int], int] = {}

    def submit(self, symbol: str, command: object) -> list:
        """Risk-check, match and account one command on ``symbol``; return its events."""
        engine = self.engines.get(symbol)
        if engine is None:
            raise KeyError(f"unknown symbol {symbol!r}; instruments: {sorted(self.engines)}")
        if not self._checks:
            events = engine.submit(command)
            self.accounts.apply(symbol, events)
            return events
        if type(command) is NewOrder:
            reason = _R.TRADER_BARRED if command.trader in self.barred else self._risk_problem(symbol, engine, command)
            if reason is not None:
                return engine.refuse(command.order_id, command.trader, reason)
        events = engine.submit(command)
        self.accounts.apply(symbol, events)
        self._track(symbol, engine, events)
        if self.margin is not None and not self._liquidating:
            self._check_margin(symbol, events)
        return events

    def record(self, symbol: str, events: list) -> None:
        """Account for events that reached ``symbol``'s engine without ``submit``.

        For commands sent straight to ``MatchingEngine.submit`` (a background that bypasses
        the venue, as ``envs.flow`` does): the events go to the accounts (``Accounts.apply``)
        and to the open-order tracking that the risk checks read, as ``submit`` would have
        applied them; with a ``MarginPolicy`` the margin check follows. Nothing is refused.
        Pass at least every ``Fill`` (the accounts need them all) and every event naming an
        order that went through ``submit``; events of orders the venue never saw are
        tracked from then on only as far as the events passed here name them.
        """
        engine = self.engines.get(symbol)
        if engine is None:
            raise KeyError(f"unknown symbol {symbol!r}; instruments: {sorted(self.engines)}")
        self.accounts.apply(symbol, events)
        self._track(symbol, engine, events)
        if self.margin is not None and not self._liquidating:
            self._check_margin(symbol, events)

    def take_side_events(self) -> list[tuple[str, list]]:
        """Events the last ``submit`` caused on other symbols (liquidations), then forget them."""
        side, self._side_events = self._side_events, []
        return side

    def maintenance(self, trader: int, marks: Mapping[str, float | None]) -> float:
        """Maintenance margin of the trader's open positions at ``marks``."""
        bps = self.margin.maintenance_bps if self.margin is not None else 0
        acct = self.accounts.account(trader)
        value = 0.0
        for symbol, p in acct.positions.items():
            mark = marks.get(symbol)
            value += abs(p.qty) * (mark if mark is not None else p.avg_price)
        return value * bps / 10_000

    def _check_margin(self, symbol: str, events: list) -> None:
        """Liquidate each trader holding ``symbol`` (or taking in ``events``) whose equity is
        below maintenance at the marks from before any of these liquidations.

        ``Account.equity`` and ``maintenance`` in one pass over the trader's positions, with
        their very arithmetic (same floats, same order). Equity moves only with fills (cash,
        positions) and marks: while no fill happened anywhere since ``symbol``'s last check
        liquidated nobody, and the marks are the same, its answer is the same and is skipped.
        """
        marks = self.marks()
        if any(type(ev) is Fill for ev in events):
            self._margin_clean.clear()
        elif self._margin_clean.get(symbol) == marks:
            return
        by_trader = self.accounts.by_trader
        candidates = set()
        for t, a in by_trader.items():
            p = a.positions.get(symbol)
            if p is not None and p.qty:
                candidates.add(t)
        for ev in events:
            if type(ev) is Fill:
                candidates.add(ev.taker_trader)
        bps = self.margin.maintenance_bps  # type: ignore[union-attr]
        account = self.accounts.account
        liquidated = False
        for trader in sorted(candidates - self.barred):
            acct = account(trader)
            equity, value, held = float(acct.cash), 0.0, False
            for sym, p in acct.positions.items():
                qty = p.qty
                if qty:
                    held = True
                mark = marks.get(sym)
                price = mark if mark is not None else p.avg_price
                equity += qty * price
                value += abs(qty) * price
            if not held:
                continue
            required = value * bps / 10_000
            if equity < required:
                self._liquidate(symbol, trader, equity, required, events)
                liquidated = True
        if liquidated:
            self._margin_clean.clear()
        else:
            self._margin_clean[symbol] = marks

    def _liquidate(self, symbol: str, trader: int, equity: float, required: float, events: list) -> None:
        """Cancel the trader's orders and flatten its positions (see the module docstring)."""
        self._liquidating = True
        try:
            engine = self.engines[symbol]
            events.append(engine.stamp(lambda seq: Liquidation(seq, trader, equity, required)))
            if self.margin is not None and self.margin.bar_liquidated:
                self.barred.add(trader)
            acct = self.accounts.account(trader)
            for sym in self.engines:
                out = events if sym == symbol else []
                out.extend(self.submit(sym, MassCancel(trader)))
                qty = acct.position(sym)
                if qty:
                    flatten = NewOrder(self._next_venue_id(), trader, -1 if qty > 0 else 1, abs(qty), type=OrderType.MARKET, tif=TimeInForce.IOC)
                    flat = self.engines[sym].submit(flatten)  # venue-generated: no risk check
                    self.accounts.apply(sym, flat)
                    self._track(sym, self.engines[sym], flat)
                    out.extend(flat)
                if out and sym != symbol:
                    self._side_events.append((sym, out))
        finally:
            self._liquidating = False

    def marks(self) -> dict[str, float | None]:
        """Each symbol's mark price: mid, or last trade when a side is empty."""
        return {s: mark_price(e.book, e.last_price) for s, e in self.engines.items()}

    def _track(self, symbol: str, engine: MatchingEngine, events: list) -> None:
        """Bring ``open_orders`` (and the per-side totals) up to date with one command's events."""
        open_orders, pending, resting, open_qty = self.open_orders, self._pending, engine.book.orders, engine.open_qty
        for ev in events:
            t = type(ev)
            if t is BookUpdate:
                continue
            if t is Fill:
                _touch(open_orders, pending, resting, open_qty, symbol, ev.maker_trader, ev.maker_id, -ev.aggressor)
                _touch(open_orders, pending, resting, open_qty, symbol, ev.taker_trader, ev.taker_id, ev.aggressor)
            elif t in _ORDER_EVENTS:
                _touch(open_orders, pending, resting, open_qty, symbol, ev.trader, ev.order_id, ev.side if t is Accepted else None)

    def limits(self, trader: int) -> RiskLimits:
        """The limits that apply to ``trader``: its own entry, else the venue's default."""
        return self.trader_risk.get(trader, self.risk)

    def _risk_problem(self, symbol: str, engine: MatchingEngine, c: NewOrder) -> str | None:
        risk = self.trader_risk.get(c.trader, self.risk)
        if risk.max_order_qty is not None and c.qty > risk.max_order_qty:
            return _R.RISK_ORDER_QTY
        mine = self.open_orders.get(c.trader, {})
        if risk.max_open_orders is not None and len(mine) >= risk.max_open_orders:
            return _R.RISK_OPEN_ORDERS
        if risk.max_position is not None:
            pending = self._pending.get((c.trader, symbol, c.side), 0)  # open lots on that side
            position = self.accounts.account(c.trader).position(symbol)
            if abs(position + c.side * (pending + c.qty)) > risk.max_position:
                return _R.RISK_POSITION
        if risk.max_notional is not None:
            price = c.price
            if price is None:
                opp = engine.book.asks if c.side == 1 else engine.book.bids
                price = opp.best if opp.best is not None else c.stop_price
            if price is not None and price * c.qty > risk.max_notional:
                return _R.RISK_NOTIONAL
        return None


def _touch(
    open_orders: dict, pending: dict, resting: dict, open_qty: Callable[[int], int], symbol: str, trader: int, oid: int, side: int | None
) -> None:
    """Update ``trader``'s entry of order ``oid`` (and its side's total) to the engine's open quantity (``Exchange._track``)."""
    book = open_orders.get(trader)
    if book is None:
        book = open_orders[trader] = {}
    key = (symbol, oid)
    o = resting.get(oid)
    qty = o[QTY] + o[HIDDEN] if o is not None else open_qty(oid)  # a resting order, else a waiting stop (or 0)
    old = book.get(key)
    if old is None:
        if not qty:
            return
        book[key] = (side, qty)
        change = qty
    else:
        side, change = old[0], qty - old[1]
        if not change:
            return
        if qty:
            book[key] = (side, qty)
        else:
            del book[key]
    total = (trader, symbol, side)
    pending[total] = pending.get(total, 0) + change

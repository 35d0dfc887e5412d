"""Per-trader accounts derived only from the event log: positions, cash, fees, PnL, counts.

This is the one place where money is computed; rewards, reports and CSV rows read it.

Money. Cash and fees are integers in price units x lots (a fill of ``qty`` lots at ``price``
moves ``price * qty`` of cash), so the conservation laws hold exactly: for every symbol the
positions of all traders sum to zero, and the cash of all traders plus the fees they paid
sum to their starting cash (the venue keeps the fees; a rebate is a negative fee). Each
account opens with ``starting_cash``, or with its own entry in ``trader_cash``; the starting
total is the sum of what each open account started with.
Average entry price, realized and unrealized PnL are floats: they are reports, computed
from the same fills.

Fees. ``FeeSchedule(maker_bps, taker_bps, per_lot)``: a fill's fee for one side is
``price * qty * bps // 10_000 + per_lot * qty`` (floor division, so a rebate of a fraction
of a unit rounds away from the trader). Maker and taker rates may differ; negative is a
rebate.

Marks. Unrealized PnL and equity are marked to the mid price, or to the last trade when one
side of the book is empty (see ``mark_price``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exchange.book import OrderBook
from exchange.events import Accepted, Fill


@dataclass(frozen=True)
class FeeSchedule:
    """Maker and taker fees in basis points of notional (negative: rebate) plus a per-lot fee."""

    maker_bps: int = 0
    taker_bps: int = 0
    per_lot: int = 0

    def fee(self, price: int, qty: int, maker: bool) -> int:
        """Fee (price units) one side pays for ``qty`` lots at ``price``."""
        return price * qty * (self.maker_bps if maker else self.taker_bps) // 10_000 + self.per_lot * qty


class Position:
    """One trader's position in one symbol: lots (signed), average entry, realized PnL."""

    __slots__ = ("qty", "avg_price", "realized")

    def __init__(self) -> None:
        self.qty = 0
        self.avg_price = 0.0
        self.realized = 0.0

    def trade(self, signed_qty: int, price: int) -> None:
        """Apply a fill of ``signed_qty`` lots (+ bought, - sold) at ``price``."""
        q = self.qty
        new = q + signed_qty
        if q == 0 or (q > 0) == (signed_qty > 0):
            self.avg_price = (self.avg_price * abs(q) + price * abs(signed_qty)) / abs(new)
        else:
            closed = min(abs(q), abs(signed_qty))
            self.realized += (price - self.avg_price) * closed * (1 if q > 0 else -1)
            if new == 0:
                self.avg_price = 0.0
            elif (new > 0) != (q > 0):
                self.avg_price = float(price)  # flipped: the rest opened at this price
        self.qty = new


class Account:
    """Everything the venue knows about one trader's money and activity."""

    __slots__ = ("trader", "cash", "fees", "positions", "volume", "notional", "fills", "orders")

    def __init__(self, trader: int, cash: int) -> None:
        self.trader = trader
        self.cash = cash  # price units; starting cash minus what was paid, plus what was received
        self.fees = 0  # fees paid (negative: net rebates received)
        self.positions: dict[str, Position] = {}
        self.volume = 0  # lots traded
        self.notional = 0  # price units traded
        self.fills = 0  # fills the trader took part in
        self.orders = 0  # orders accepted

    def position(self, symbol: str) -> int:
        p = self.positions.get(symbol)
        return p.qty if p is not None else 0

    def realized_pnl(self) -> float:
        """Realized trading PnL over all symbols, before fees."""
        return sum(p.realized for p in self.positions.values())

    def unrealized_pnl(self, marks: Mapping[str, float | None]) -> float:
        """Open positions marked to ``marks`` (symbol -> price; None: no mark, counts 0)."""
        total = 0.0
        for symbol, p in self.positions.items():
            mark = marks.get(symbol)
            if p.qty and mark is not None:
                total += (mark - p.avg_price) * p.qty
        return total

    def equity(self, marks: Mapping[str, float | None]) -> float:
        """Cash plus open positions at ``marks`` (positions without a mark count at entry)."""
        value = float(self.cash)
        for symbol, p in self.positions.items():
            mark = marks.get(symbol)
            value += p.qty * (mark if mark is not None else p.avg_price)
        return value


def mark_price(book: OrderBook, last_price: int | None) -> float | None:
    """Mid price, or the last trade when a side is empty, or None before any."""
    bid, ask = book.bids.best, book.asks.best
    if bid is not None and ask is not None:
        return (bid + ask) / 2
    return float(last_price) if last_price is not None else None


class Accounts:
    """All traders' accounts, updated by ``apply(symbol, events)`` and nothing else."""

    def __init__(
        self, fees: FeeSchedule | None = None, starting_cash: int = 0, trader_cash: Mapping[int, int] | None = None
    ) -> None:
        self.fees = fees if fees is not None else FeeSchedule()
        self.starting_cash = starting_cash  # every trader's, unless ``trader_cash`` names it
        self.trader_cash: dict[int, int] = dict(trader_cash) if trader_cash is not None else {}
        self.by_trader: dict[int, Account] = {}

    def starting_cash_of(self, trader: int) -> int:
        """The cash ``trader``'s account opens (or opened) with."""
        return self.trader_cash.get(trader, self.starting_cash)

    def account(self, trader: int) -> Account:
        """The trader's account, opened with its starting cash on first use."""
        acct = self.by_trader.get(trader)
        if acct is None:
            acct = self.by_trader[trader] = Account(trader, self.trader_cash.get(trader, self.starting_cash))
        return acct

    def apply(self, symbol: str, events: Iterable[object]) -> None:
        """Update accounts from one instrument's events (fills and acceptances)."""
        by_trader = self.by_trader
        for ev in events:
            t = type(ev)
            if t is Accepted:
                acct = by_trader.get(ev.trader)  # type: ignore[attr-defined]
                if acct is None:
                    acct = self.account(ev.trader)  # type: ignore[attr-defined]
                acct.orders += 1
            elif t is Fill:
                self.fill(symbol, ev)  # type: ignore[arg-type]

    def apply_fills(self, symbol: str, fills: Iterable[Fill]) -> None:
        """``apply`` of events that are all ``Fill``s (no type test per event: batched flows)."""
        fill = self.fill
        for ev in fills:
            fill(symbol, ev)

    def fill(self, symbol: str, ev: Fill) -> None:
        """Both sides of one fill: the taker's, then the maker's (the same steps, unrolled;
        each side's fee is ``FeeSchedule.fee`` of that side, each position's change is
        ``Position.trade``'s, inlined: this runs for every fill)."""
        price, qty = ev.price, ev.qty
        notional = price * qty
        fees, by_trader = self.fees, self.by_trader
        bought = ev.aggressor == 1  # the taker bought, the maker sold (else the reverse)
        # taker
        acct = by_trader.get(ev.taker_trader)
        if acct is None:
            acct = self.account(ev.taker_trader)
        f = notional * fees.taker_bps // 10_000 + fees.per_lot * qty
        acct.cash -= (notional if bought else -notional) + f
        acct.fees += f
        acct.volume += qty
        acct.notional += notional
        acct.fills += 1
        pos = acct.positions.get(symbol)
        if pos is None:
            pos = acct.positions[symbol] = Position()
        signed = qty if bought else -qty  # Position.trade(signed, price), inlined
        q = pos.qty
        new = q + signed
        if q == 0 or (q > 0) == (signed > 0):
            pos.avg_price = (pos.avg_price * abs(q) + price * qty) / abs(new)
        else:
            closed = min(abs(q), qty)
            pos.realized += (price - pos.avg_price) * closed * (1 if q > 0 else -1)
            if new == 0:
                pos.avg_price = 0.0
            elif (new > 0) != (q > 0):
                pos.avg_price = float(price)  # flipped: the rest opened at this price
        pos.qty = new
        # maker
        acct = by_trader.get(ev.maker_trader)
        if acct is None:
            acct = self.account(ev.maker_trader)
        f = notional * fees.maker_bps // 10_000 + fees.per_lot * qty
        acct.cash -= (-notional if bought else notional) + f
        acct.fees += f
        acct.volume += qty
        acct.notional += notional
        acct.fills += 1
        pos = acct.positions.get(symbol)
        if pos is None:
            pos = acct.positions[symbol] = Position()
        signed = -qty if bought else qty  # Position.trade(signed, price), inlined
        q = pos.qty
        new = q + signed
        if q == 0 or (q > 0) == (signed > 0):
            pos.avg_price = (pos.avg_price * abs(q) + price * qty) / abs(new)
        else:
            closed = min(abs(q), qty)
            pos.realized += (price - pos.avg_price) * closed * (1 if q > 0 else -1)
            if new == 0:
                pos.avg_price = 0.0
            elif (new > 0) != (q > 0):
                pos.avg_price = float(price)  # flipped: the rest opened at this price
        pos.qty = new

    def check_conservation(self) -> None:
        """Raise AssertionError unless positions net to zero per symbol and cash is conserved."""
        net: dict[str, int] = {}
        for acct in self.by_trader.values():
            for symbol, p in acct.positions.items():
                net[symbol] = net.get(symbol, 0) + p.qty
        assert all(v == 0 for v in net.values()), f"positions do not net to zero: {net}"
        cash = sum(a.cash + a.fees for a in self.by_trader.values())
        expected = sum(self.starting_cash_of(t) for t in self.by_trader)
        assert cash == expected, f"cash plus fees {cash} != starting total {expected}"


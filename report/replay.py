"""Replaying a simulator's log: the state at any past time, derived from events only.

The event log is the truth (STYLE.md, guideline 3). Reports need the state *as of* a time
that the venue has already left behind, so they rebuild it by replaying the log:

- money through a fresh ``exchange.accounts.Accounts`` with the venue's fee schedule and
  starting cash (the one module that computes money; nothing here is a second formula);
- each symbol's best bid and ask from its ``BookUpdate`` events (level ``price`` on ``side``
  now shows ``qty`` lots; ``qty == 0`` removes it), and its last trade from ``Fill`` events;
- marks through ``exchange.accounts.mark_price`` on that reconstructed top of book.

Replaying the whole log reproduces the venue exactly: the same accounts, best prices and
marks (``tests/test_report.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sortedcontainers import SortedDict

from exchange.accounts import Accounts, mark_price
from exchange.events import BookUpdate, Fill
from exchange.instrument import InstrumentSpec
from exchange.venue import Exchange

NS_PER_S = 1_000_000_000


def seconds(time_ns: int) -> str:
    """Simulated ns as seconds with exactly nine decimals (exact: no float rounding)."""
    sign = "-" if time_ns < 0 else ""
    s, ns = divmod(abs(time_ns), NS_PER_S)
    return f"{sign}{s}.{ns:09d}"


def money_scale(specs: Iterable[InstrumentSpec]) -> Decimal | None:
    """The currency value of one unit of cash (``price_scale``) if every instrument agrees.

    Cash is one integer per trader in price units x lots across all symbols, so it has one
    currency value only when all instruments share ``price_scale``; None otherwise.
    """
    scales = {spec.price_scale for spec in specs}
    return scales.pop() if len(scales) == 1 else None


class _Side:
    """One side of a reconstructed book: displayed qty per price, best price on demand."""

    __slots__ = ("levels", "bid")

    def __init__(self, bid: bool) -> None:
        self.levels: SortedDict = SortedDict()
        self.bid = bid

    @property
    def best(self) -> int | None:
        if not self.levels:
            return None
        return self.levels.peekitem(-1 if self.bid else 0)[0]


class TopOfBook:
    """Best bid and ask of one symbol rebuilt from ``BookUpdate`` events.

    Exposes ``bids.best`` / ``asks.best`` like ``exchange.book.OrderBook``, so
    ``mark_price`` reads it unchanged.
    """

    __slots__ = ("bids", "asks")

    def __init__(self) -> None:
        self.bids = _Side(bid=True)
        self.asks = _Side(bid=False)

    def update(self, ev: BookUpdate) -> None:
        levels = (self.bids if ev.side == 1 else self.asks).levels
        if ev.qty:
            levels[ev.price] = ev.qty
        else:
            levels.pop(ev.price, None)

    def l1(self) -> tuple[int | None, int | None]:
        """(best bid, best ask) in price units; None for an empty side."""
        return self.bids.best, self.asks.best


class Replay:
    """The venue's derived state, rebuilt by feeding it log entries in order.

    ``feed(time, symbol, events)`` takes one ``Simulator.log`` entry; ``accounts``, ``book``,
    ``last_price`` and ``marks()`` then describe the venue just after that entry.
    """

    def __init__(self, exchange: Exchange) -> None:
        venue = exchange.accounts
        self.specs: dict[str, InstrumentSpec] = {s: e.spec for s, e in exchange.engines.items()}
        self.accounts = Accounts(venue.fees, venue.starting_cash, venue.trader_cash)
        self.book: dict[str, TopOfBook] = {s: TopOfBook() for s in self.specs}
        self.last_price: dict[str, int | None] = dict.fromkeys(self.specs)
        self.time = 0  # time of the last entry fed

    def feed(self, time: int, symbol: str, events: list) -> None:
        """Apply one log entry: the events of one command on ``symbol`` at ``time``."""
        self.time = time
        self.accounts.apply(symbol, events)
        book = self.book[symbol]
        for ev in events:
            t = type(ev)
            if t is BookUpdate:
                book.update(ev)  # type: ignore[arg-type]
            elif t is Fill:
                self.last_price[symbol] = ev.price  # type: ignore[attr-defined]

    def marks(self) -> dict[str, float | None]:
        """Each symbol's mark now (``exchange.accounts.mark_price``)."""
        return {s: mark_price(self.book[s], self.last_price[s]) for s in self.specs}  # type: ignore[arg-type]

    def mid(self, symbol: str) -> float | None:
        """Mid price in price units, or None when a side is empty."""
        bid, ask = self.book[symbol].l1()
        return (bid + ask) / 2 if bid is not None and ask is not None else None


"""Exchange core: order book, matching rules, order types and events. Pure logic, no I/O.

    >>> from exchange import MatchingEngine, NewOrder, nyse
    >>> eng = MatchingEngine(nyse())
    >>> _ = eng.submit(NewOrder(order_id=1, trader=7, side=-1, qty=10, price=10_000))
    >>> [type(e).__name__ for e in eng.submit(NewOrder(order_id=2, trader=8, side=1, qty=4, price=10_000))]
    ['Accepted', 'Fill', 'BookUpdate']
"""

from exchange.commands import Cancel, Command, EndSession, MassCancel, Modify, NewOrder
from exchange.engine import MatchingEngine
from exchange.enums import CancelReason, OrderType, RejectReason, Side, SmpMode, TimeInForce
from exchange.errors import ExchangeError, InvalidCommand
from exchange.events import (
    Accepted,
    BookUpdate,
    Cancelled,
    Event,
    Expired,
    Fill,
    Liquidation,
    Modified,
    Refreshed,
    Rejected,
    Triggered,
)
from exchange.instrument import PRESETS, InstrumentSpec, cme, nyse
from exchange.rules import Fifo, MatchingRule, ProRata, Split

BUY, SELL = Side.BUY, Side.SELL

__all__ = [
    "BUY",
    "PRESETS",
    "SELL",
    "Accepted",
    "BookUpdate",
    "Cancel",
    "CancelReason",
    "Cancelled",
    "Command",
    "EndSession",
    "Event",
    "ExchangeError",
    "Expired",
    "Fifo",
    "Fill",
    "InstrumentSpec",
    "InvalidCommand",
    "Liquidation",
    "MassCancel",
    "MatchingEngine",
    "MatchingRule",
    "Modified",
    "Modify",
    "NewOrder",
    "OrderType",
    "ProRata",
    "Refreshed",
    "RejectReason",
    "Rejected",
    "Side",
    "SmpMode",
    "Split",
    "TimeInForce",
    "Triggered",
    "cme",
    "nyse",
]

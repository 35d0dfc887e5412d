"""Events: the closed union of what a matching engine reports, in a fixed documented order.

Every event carries ``seq``, a per-engine counter that increases by one per event, so the
log totally orders what happened. Events are frozen ``msgspec.Struct`` records with
``gc=False``: creating one costs about 50 ns here (a NamedTuple 250 ns, a frozen dataclass
660 ns) and retained logs do not slow the cyclic GC. They encode to JSON/msgpack directly
with their class name as the ``kind`` tag.

The event log is the truth: accounts, market data and rewards are derived from it.
"""

from __future__ import annotations

import msgspec


class Accepted(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """An order entered the engine. ``price`` is its working limit (None for MARKET/STOP)."""

    seq: int
    order_id: int
    trader: int
    side: int
    price: int | None
    qty: int
    type: int


class Rejected(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """A command was refused; it changed nothing. ``order_id`` is None for MassCancel."""

    seq: int
    order_id: int | None
    trader: int | None
    reason: str


class Fill(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """One execution between a resting maker and an aggressing taker at the maker's price."""

    seq: int
    price: int
    qty: int
    aggressor: int
    maker_id: int
    taker_id: int
    maker_trader: int
    taker_trader: int


class Cancelled(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """``qty`` open lots of an order left without trading, for ``reason`` (a CancelReason)."""

    seq: int
    order_id: int
    trader: int
    qty: int
    reason: str


class Modified(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """A resting order now has open quantity ``qty`` at ``price``."""

    seq: int
    order_id: int
    trader: int
    price: int
    qty: int
    priority_kept: bool


class Triggered(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """A stop order was elected by a trade at or through ``stop_price`` and now works."""

    seq: int
    order_id: int
    trader: int
    stop_price: int


class Expired(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """A DAY order's ``qty`` open lots expired at the end of the session."""

    seq: int
    order_id: int
    trader: int
    qty: int


class Refreshed(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """An iceberg showed a new slice of ``qty`` lots, at the back of its level's queue."""

    seq: int
    order_id: int
    trader: int
    qty: int


class BookUpdate(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """Level ``price`` on ``side`` now shows ``qty`` lots in ``count`` orders (0, 0: gone)."""

    seq: int
    side: int
    price: int
    qty: int
    count: int


class Liquidation(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """The venue liquidates ``trader``: equity fell below the maintenance margin.

    Its orders are cancelled and its positions flattened by venue-generated market orders,
    whose events follow; ``equity`` and ``margin`` are in price units x lots."""

    seq: int
    trader: int
    equity: float
    margin: float


Event = Accepted | Rejected | Fill | Cancelled | Modified | Triggered | Expired | Refreshed | BookUpdate | Liquidation

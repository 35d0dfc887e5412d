"""Commands: the closed union of what a client can ask of a matching engine.

Commands are immutable ``msgspec.Struct`` records (C-implemented, untracked by the cyclic
GC, about 50 ns to create), so the same types validate wire messages at the edges.
Prices are integer price units (a multiple of the instrument's tick), quantities integer
units (a multiple of its lot).
"""

from __future__ import annotations

import msgspec

from exchange.enums import OrderType, SmpMode, TimeInForce


class NewOrder(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """Enter an order.

    ``price`` is the limit price (required for LIMIT, STOP_LIMIT and post-only; ignored for
    MARKET kinds and STOP). ``stop_price`` is the trigger of STOP and STOP_LIMIT orders.
    ``display_qty`` makes an iceberg: that much is shown, the rest is hidden and refreshed.
    ``min_qty`` applies to IOC orders: fewer lots immediately fillable rejects the order.
    ``protection`` (ticks) overrides the instrument's market protection for MARKET_PROTECT
    and STOP. ``smp_id``/``smp_mode``: self-match prevention; ``None`` mode means the
    instrument's default.
    """

    order_id: int
    trader: int
    side: int
    qty: int
    price: int | None = None
    type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    stop_price: int | None = None
    display_qty: int | None = None
    min_qty: int | None = None
    post_only: bool = False
    smp_id: int | None = None
    smp_mode: SmpMode | None = None
    protection: int | None = None


class Cancel(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """Cancel a resting or stop order of ``trader``."""

    order_id: int
    trader: int


class Modify(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """Change an order's open quantity and/or price (cancel/replace with exchange priority).

    ``qty`` is the new open (unfilled) quantity, hidden included for icebergs; ``price``
    ``None`` keeps the price. Reducing quantity at the same price keeps priority; a price
    change or a quantity increase loses it (the order goes to the back of its new level and
    may trade at once if the new price crosses).
    """

    order_id: int
    trader: int
    qty: int
    price: int | None = None


class MassCancel(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """Cancel every resting and stop order of ``trader`` (kill switch, cancel-on-disconnect)."""

    trader: int


class EndSession(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="kind"):
    """Close the trading session: every DAY order (resting or stop) expires; GTC stays."""


Command = NewOrder | Cancel | Modify | MassCancel | EndSession

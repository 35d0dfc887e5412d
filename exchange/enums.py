"""Closed vocabularies of the exchange core: sides, order types, durations, SMP modes, reasons.

Sides and order kinds are ``IntEnum`` so the hot path compares plain ints; reasons are
``StrEnum`` so they read well in logs and encode as their value on the wire.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Side(IntEnum):
    """Order side; the sign is the direction of the position change."""

    BUY = 1
    SELL = -1


class OrderType(IntEnum):
    """What the order does on arrival (see ``exchange.engine`` for each type's rule)."""

    LIMIT = 0
    MARKET = 1  # sweeps the opposite side; the unfilled rest is cancelled
    MARKET_PROTECT = 2  # market with protection: limit = best opposite +/- protection, rest rests
    MARKET_LIMIT = 3  # trades at the best opposite price only, rest rests there
    STOP = 4  # stop-market with protection: on trigger becomes MARKET_PROTECT
    STOP_LIMIT = 5  # on trigger becomes LIMIT at ``price``


class TimeInForce(IntEnum):
    """How long an order may live."""

    GTC = 0  # good till cancelled
    DAY = 1  # expires at the end of the session (``EndSession``)
    IOC = 2  # immediate or cancel (CME: fill and kill), optional minimum quantity
    FOK = 3  # fill completely at once or not at all, with no side effect


class SmpMode(IntEnum):
    """Self-match prevention action, chosen by the aggressing order."""

    CANCEL_RESTING = 0  # cancel the resting order(s); the aggressor keeps matching
    CANCEL_AGGRESSING = 1  # cancel the aggressor's whole remainder
    CANCEL_BOTH = 2  # cancel the resting order and the aggressor's remainder


class RejectReason(StrEnum):
    """Why a command was refused; a rejected command changes nothing."""

    OFF_TICK = "off_tick"
    BAD_LOT = "bad_lot"
    BAD_QUANTITY = "bad_quantity"  # zero or negative
    QUANTITY_TOO_LARGE = "quantity_too_large"
    BAD_PRICE = "bad_price"  # non-positive price
    PRICE_OUT_OF_BAND = "price_out_of_band"
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    UNKNOWN_ORDER = "unknown_order"
    NOT_OWNER = "not_owner"
    UNSUPPORTED = "unsupported"  # order type / instruction not accepted by this instrument
    POST_ONLY_WOULD_CROSS = "post_only_would_cross"
    FOK_NOT_FILLABLE = "fok_not_fillable"
    MIN_QTY_NOT_FILLABLE = "min_qty_not_fillable"
    NO_LIQUIDITY = "no_liquidity"  # market order into an empty opposite side
    STOP_ALREADY_TRIGGERED = "stop_already_triggered"  # trigger at or through the last trade
    BAD_STOP_PRICE = "bad_stop_price"
    BAD_DISPLAY_QTY = "bad_display_qty"
    BAD_MIN_QTY = "bad_min_qty"
    NO_CHANGE = "no_change"  # modify that changes neither price nor quantity
    UNKNOWN_SYMBOL = "unknown_symbol"  # venue: no such instrument
    RISK_ORDER_QTY = "risk_order_qty"  # venue pre-trade risk: order larger than allowed
    RISK_POSITION = "risk_position"  # could take the position past its limit
    RISK_OPEN_ORDERS = "risk_open_orders"  # too many open orders
    RISK_NOTIONAL = "risk_notional"  # order notional larger than allowed
    TRADER_BARRED = "trader_barred"  # liquidated and barred for the rest of the session


class CancelReason(StrEnum):
    """Why (part of) an order left the book without trading."""

    USER = "user"  # Cancel or MassCancel command
    UNFILLED = "unfilled"  # IOC / market remainder that may not rest
    SELF_MATCH = "self_match"  # self-match prevention

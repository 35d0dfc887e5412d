"""The live exchange's wire protocol: every message as a ``msgspec`` schema, one module.

This module is the single source of truth; ``docs/API_SPEC.md`` documents it message by
message (``tests/test_live_protocol.py`` checks that every message type, field and error
code below appears there).

Frames are JSON objects in WebSocket text frames (binary frames holding the same JSON are
accepted). Every object has a ``type`` tag. Schemas are strict (``forbid_unknown_fields``):
a missing, unknown or wrongly typed field, a float where an integer is due (so NaN and
infinity too), or a number outside its documented range is refused with an ``error``
reply whose ``code`` names the cause (``ErrorCode``), and changes nothing.

Units. Prices are integer *price units*, positive multiples of the instrument's ``tick``;
quantities integer lots, multiples of its ``lot``; a decimal price is ``price *
price_scale`` (``Instrument`` publishes all three). Money (cash, fees) is integer price
units x lots; PnL and equity are floats in the same unit. Timestamps ``ts`` are integer
nanoseconds since the Unix epoch, taken by the exchange when it applied the command.

Sequence numbers. ``seq`` on the public market-data messages (``book_update``, ``trade``,
``liquidation``) counts them per symbol, consecutively from 1, so a subscriber detects a
gap; a ``book_snapshot`` carries the ``seq`` of the last message it includes.
``engine_seq`` on private order events is the matching engine's own event counter for the
symbol (it also counts private events, so it is not gap-free on any one connection).

Three unions: ``TradingRequest`` (a trader's connection, path ``/``), ``FeedRequest`` (the
read-only feed, path ``/feed``, and the relay) and ``ServerMessage`` (everything sent back).
``decode_trading``/``decode_feed``/``decode_server`` decode one frame; a failure raises
``ProtocolError`` with its ``ErrorCode``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

import msgspec

from exchange.enums import OrderType, SmpMode, TimeInForce

PROTOCOL_VERSION = 1

# ---- field types: the ranges are part of the schema -----------------------------------------
MAX_PRICE = 10**12
MAX_QTY = 10**9
MAX_ID = 2**63 - 1

Price = Annotated[int, msgspec.Meta(ge=1, le=MAX_PRICE)]
Qty = Annotated[int, msgspec.Meta(ge=1, le=MAX_QTY)]
OrderId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
ClientId = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
ReqId = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
Ticks = Annotated[int, msgspec.Meta(ge=0, le=MAX_QTY)]
Symbol = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]

SideName = Literal["buy", "sell"]
OrderTypeName = Literal["limit", "market", "market_protect", "market_limit", "stop", "stop_limit"]
TifName = Literal["gtc", "day", "ioc", "fok"]
SmpName = Literal["cancel_resting", "cancel_aggressing", "cancel_both"]
Liquidity = Literal["maker", "taker"]
SnapshotReason = Literal["subscribe", "request", "slow_consumer", "upstream_reconnect"]

SIDES: dict[str, int] = {"buy": 1, "sell": -1}
SIDE_NAMES: dict[int, str] = {1: "buy", -1: "sell"}
ORDER_TYPES: dict[str, OrderType] = {t.name.lower(): t for t in OrderType}
ORDER_TYPE_NAMES: dict[int, str] = {int(t): t.name.lower() for t in OrderType}
TIFS: dict[str, TimeInForce] = {t.name.lower(): t for t in TimeInForce}
TIF_NAMES: dict[int, str] = {int(t): t.name.lower() for t in TimeInForce}
SMP_MODES: dict[str, SmpMode] = {m.name.lower(): m for m in SmpMode}


class ErrorCode(StrEnum):
    """Why a frame was refused before it reached the matching engine (``error.code``).

    A refusal by the market itself (off tick, post-only would cross, risk limit...) is a
    ``rejected`` message instead, whose ``reason`` is an ``exchange.enums.RejectReason``.
    """

    BAD_JSON = "bad_json"  # not valid JSON (includes NaN/Infinity literals, bad UTF-8)
    NOT_AN_OBJECT = "not_an_object"  # valid JSON, but not an object
    MISSING_TYPE = "missing_type"  # object without a "type" field
    UNKNOWN_TYPE = "unknown_type"  # "type" names no message of this endpoint
    MISSING_FIELD = "missing_field"  # a required field is absent
    UNKNOWN_FIELD = "unknown_field"  # a field this message does not have
    WRONG_TYPE = "wrong_type"  # e.g. a float or string where an integer is due
    OUT_OF_RANGE = "out_of_range"  # a number or length outside the documented range
    BAD_VALUE = "bad_value"  # a string outside its enumeration (side, order type...)
    MESSAGE_TOO_LARGE = "message_too_large"  # frame longer than max_message_bytes
    RATE_LIMITED = "rate_limited"  # over the connection's message rate; dropped
    NOT_LOGGED_IN = "not_logged_in"  # trading message before a successful login
    ALREADY_LOGGED_IN = "already_logged_in"  # a second login on one connection
    AUTH_FAILED = "auth_failed"  # unknown token (the connection is then closed)
    UNKNOWN_SYMBOL = "unknown_symbol"  # no such instrument
    UNKNOWN_ORDER = "unknown_order"  # no live order with this id
    NOT_OWNER = "not_owner"  # the order belongs to another trader
    READ_ONLY = "read_only"  # a trading message on the read-only feed or relay
    NOT_SUBSCRIBED = "not_subscribed"  # snapshot request before subscribe
    UNSUPPORTED = "unsupported"  # a message this endpoint understands but does not serve
    OVERLOADED = "overloaded"  # the exchange's inbox is full; retry later
    INTERNAL = "internal"  # a bug: logged by the server, nothing was applied


class ProtocolError(Exception):
    """A frame that cannot be accepted; ``code`` says why, ``req`` echoes its ``req`` if found."""

    def __init__(self, code: ErrorCode, message: str, req: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.req = req


class _Msg(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, omit_defaults=True):
    """Base of every message: tagged by ``type``, strict, optional fields omitted when unset."""


# ---- trader -> exchange (path /) ----------------------------------------------------------
class Login(_Msg, tag="login"):
    """First message of a trading connection: authenticate with the trader's token."""

    token: Token
    req: ReqId | None = None


class NewOrderRequest(_Msg, tag="new_order"):
    """Enter an order. The exchange assigns ``order_id`` (in ``accepted``/``rejected``)."""

    symbol: Symbol
    side: SideName
    qty: Qty
    price: Price | None = None  # required for limit, stop_limit, post-only
    order_type: OrderTypeName = "limit"
    tif: TifName = "gtc"
    stop_price: Price | None = None  # trigger of stop and stop_limit
    display_qty: Qty | None = None  # iceberg slice
    min_qty: Qty | None = None  # IOC minimum fill
    post_only: bool = False
    smp: SmpName | None = None  # self-match prevention among this trader's own orders
    protection: Ticks | None = None  # market_protect / stop protection, ticks
    client_id: ClientId | None = None  # echoed on every message about this order
    req: ReqId | None = None


class CancelRequest(_Msg, tag="cancel"):
    """Cancel one of this trader's live orders."""

    order_id: OrderId
    req: ReqId | None = None


class ModifyRequest(_Msg, tag="modify"):
    """New open quantity and/or price for a resting order (see exchange.engine: priority)."""

    order_id: OrderId
    qty: Qty
    price: Price | None = None
    req: ReqId | None = None


class MassCancelRequest(_Msg, tag="mass_cancel"):
    """Cancel all this trader's orders on ``symbol`` (null: every symbol)."""

    symbol: Symbol | None = None
    req: ReqId | None = None


class GetAccount(_Msg, tag="get_account"):
    """Ask for this trader's account: cash, positions, PnL, open orders."""

    req: ReqId | None = None


class Ping(_Msg, tag="ping"):
    """Liveness and round-trip check; answered by ``pong``."""

    req: ReqId | None = None


# ---- subscriber -> feed (path /feed, and the relay) ------------------------------------------
class Subscribe(_Msg, tag="subscribe"):
    """Start market data for ``symbols`` (null: all). ``token``: the feed token, if configured."""

    symbols: Annotated[list[Symbol], msgspec.Meta(max_length=64)] | None = None
    token: Token | None = None
    req: ReqId | None = None


class SnapshotRequest(_Msg, tag="snapshot"):
    """Ask for a fresh ``book_snapshot`` of a subscribed symbol (after a detected gap)."""

    symbol: Symbol
    req: ReqId | None = None


class GetState(_Msg, tag="get_state"):
    """Exchange only: book hashes and sequence numbers (for recovery checks and monitoring)."""

    req: ReqId | None = None


TradingRequest = Login | NewOrderRequest | CancelRequest | ModifyRequest | MassCancelRequest | GetAccount | Ping
FeedRequest = Subscribe | SnapshotRequest | GetState | Ping
TRADING_TYPES = frozenset(("login", "new_order", "cancel", "modify", "mass_cancel", "get_account"))


# ---- exchange -> trader: replies and private order events --------------------------------------
class Instrument(msgspec.Struct, forbid_unknown_fields=True):
    """What a client needs to know to price and size orders for one symbol."""

    symbol: str
    rule: str  # matching rule: "fifo", "pro_rata", "split"
    tick: int
    lot: int
    max_qty: int
    price_scale: str  # decimal value of one price unit, e.g. "0.01"
    order_types: list[str]
    tifs: list[str]
    post_only: bool
    iceberg: bool
    protection_ticks: int
    market_as_protected: bool
    price_band: int | None
    reference_price: int | None
    smp_mode: SmpName | None = None  # the instrument's default self-match mode (None: a server that does not state it)


class Welcome(_Msg, tag="welcome"):
    """Login succeeded: who you are, the instruments, and this connection's limits."""

    protocol: int
    trader: int
    name: str
    instruments: list[Instrument]
    rate: float  # messages per second allowed on this connection (token bucket)
    burst: int  # bucket size
    max_message_bytes: int
    cancel_on_disconnect: bool
    ts: int
    req: ReqId | None = None


class Accepted(_Msg, tag="accepted"):
    """An order entered the book (or the stop book). ``price``: working limit, null for market."""

    symbol: str
    order_id: int
    side: SideName
    qty: int
    price: int | None
    order_type: OrderTypeName
    engine_seq: int
    ts: int
    client_id: int | None = None
    req: ReqId | None = None


class Rejected(_Msg, tag="rejected"):
    """The market refused a command; nothing changed. ``reason``: an exchange RejectReason."""

    symbol: str
    order_id: int | None
    reason: str
    engine_seq: int
    ts: int
    client_id: int | None = None
    req: ReqId | None = None


class Fill(_Msg, tag="fill"):
    """One execution of your order. ``side`` is your side; ``liquidity`` maker or taker;
    ``md_seq`` ties it to the anonymous public ``Trade`` of the same execution."""

    symbol: str
    order_id: int
    side: SideName
    price: int
    qty: int
    liquidity: Liquidity
    engine_seq: int
    ts: int
    client_id: int | None = None
    md_seq: int | None = None  # the ``seq`` of the public ``trade`` that prints this execution on the feed


class Cancelled(_Msg, tag="cancelled"):
    """``qty`` open lots left without trading. ``reason``: "user", "unfilled", "self_match"."""

    symbol: str
    order_id: int
    qty: int
    reason: str
    engine_seq: int
    ts: int
    client_id: int | None = None
    req: ReqId | None = None


class Modified(_Msg, tag="modified"):
    """A resting order now has open quantity ``qty`` at ``price``."""

    symbol: str
    order_id: int
    price: int
    qty: int
    priority_kept: bool
    engine_seq: int
    ts: int
    client_id: int | None = None
    req: ReqId | None = None


class Triggered(_Msg, tag="triggered"):
    """Your stop order was elected and now works."""

    symbol: str
    order_id: int
    stop_price: int
    engine_seq: int
    ts: int
    client_id: int | None = None


class Expired(_Msg, tag="expired"):
    """A DAY order's open lots expired at the end of the session."""

    symbol: str
    order_id: int
    qty: int
    engine_seq: int
    ts: int
    client_id: int | None = None


class Refreshed(_Msg, tag="refreshed"):
    """Your iceberg showed a new slice of ``qty`` lots at the back of its level."""

    symbol: str
    order_id: int
    qty: int
    engine_seq: int
    ts: int
    client_id: int | None = None


class MassCancelled(_Msg, tag="mass_cancelled"):
    """Reply to ``mass_cancel``: ``count`` orders cancelled (each also reported as cancelled)."""

    symbol: str | None
    count: int
    ts: int
    req: ReqId | None = None


class Position(msgspec.Struct, forbid_unknown_fields=True):
    """A trader's position in one symbol."""

    symbol: str
    qty: int  # signed lots
    avg_price: float  # average entry price, price units (0 when flat)
    realized_pnl: float


class OpenOrder(msgspec.Struct, forbid_unknown_fields=True):
    """One of a trader's live orders (resting, or a stop waiting for its trigger)."""

    symbol: str
    order_id: int
    side: SideName
    price: int | None
    open_qty: int
    client_id: int | None = None


class Account(_Msg, tag="account"):
    """Reply to ``get_account``; money in price units x lots, marks as in performance."""

    trader: int
    cash: int
    fees: int
    realized_pnl: float
    equity: float
    positions: list[Position]
    open_orders: list[OpenOrder]
    barred: bool
    ts: int
    req: ReqId | None = None


class Pong(_Msg, tag="pong"):
    """Reply to ``ping``."""

    ts: int
    req: ReqId | None = None


class Error(_Msg, tag="error"):
    """A frame was refused before reaching the market; nothing changed."""

    code: ErrorCode
    message: str
    req: ReqId | None = None


# ---- public market data (feed and relay) ------------------------------------------------------
class Level(msgspec.Struct, array_like=True):
    """A book level in a snapshot: ``[price, qty, count]``."""

    price: int
    qty: int
    count: int


class LevelChange(msgspec.Struct, array_like=True):
    """A level change in an update: ``[side, price, qty, count]``; qty 0 removes the level."""

    side: int
    price: int
    qty: int
    count: int


class Subscribed(_Msg, tag="subscribed"):
    """Reply to ``subscribe``; the snapshots of ``symbols`` follow."""

    symbols: list[str]
    instruments: list[Instrument]
    ts: int
    req: ReqId | None = None


class BookSnapshot(_Msg, tag="book_snapshot"):
    """The whole displayed book of a symbol as of market-data message ``seq``."""

    symbol: str
    seq: int
    bids: list[Level]  # best first
    asks: list[Level]  # best first
    last_price: int | None
    reason: SnapshotReason
    ts: int
    req: ReqId | None = None


class BookUpdate(_Msg, tag="book_update"):
    """Level changes made by one command, in order; apply when ``seq`` is last seen + 1."""

    symbol: str
    seq: int
    changes: list[LevelChange]
    ts: int


class Trade(_Msg, tag="trade"):
    """One execution (anonymous); ``aggressor``: the taker's side."""

    symbol: str
    seq: int
    price: int
    qty: int
    aggressor: SideName
    ts: int


class Liquidation(_Msg, tag="liquidation"):
    """The venue liquidates ``trader`` (equity below maintenance margin); its events follow.

    Public on the feed (sequenced on ``symbol``) and sent to the trader itself."""

    symbol: str
    seq: int
    trader: int
    equity: float
    margin: float
    ts: int


class TraderPerformance(msgspec.Struct, forbid_unknown_fields=True):
    """One trader's account in a ``performance`` snapshot."""

    trader: int
    name: str
    positions: dict[str, int]  # symbol -> signed lots
    cash: int
    fees: int
    realized_pnl: float
    equity: float  # cash + positions at marks (mid, else last trade)
    volume: int  # lots traded
    barred: bool
    starting_cash: int | None = None  # the cash the account opened with (its PnL is equity minus this)


class Performance(_Msg, tag="performance"):
    """Every configured trader's account; published every ``performance_ms`` if it changed."""

    seq: int  # counts performance messages since the exchange started (not gap-checked)
    marks: dict[str, float | None]
    traders: list[TraderPerformance]
    ts: int


class Heartbeat(_Msg, tag="heartbeat"):
    """Sent on the feed every second: the last market-data ``seq`` of each symbol."""

    seqs: dict[str, int]
    ts: int


class Status(_Msg, tag="status"):
    """Relay only: whether the relay is connected to the exchange."""

    upstream: Literal["connected", "disconnected"]
    ts: int


class SymbolState(msgspec.Struct, forbid_unknown_fields=True):
    """A symbol's state in ``state``."""

    symbol: str
    state_hash: str  # SHA-256 of the resting book (exchange.book.OrderBook.state_hash)
    engine_seq: int
    md_seq: int
    resting: int  # resting orders


class State(_Msg, tag="state"):
    """Reply to ``get_state``: enough to check that a restart rebuilt the same exchange."""

    symbols: list[SymbolState]
    next_order_id: int
    commands: int  # commands journaled and applied since the journal began
    traders: list[TraderPerformance]
    ts: int
    req: ReqId | None = None


ServerMessage = (
    Welcome | Accepted | Rejected | Fill | Cancelled | Modified | Triggered | Expired | Refreshed
    | MassCancelled | Account | Pong | Error | Subscribed | BookSnapshot | BookUpdate | Trade
    | Liquidation | Performance | Heartbeat | Status | State
)

# ---- encoding and decoding --------------------------------------------------------------------
_encoder = msgspec.json.Encoder()
encode = _encoder.encode
"""Encode a message to JSON bytes (send them in a text frame)."""

_trading = msgspec.json.Decoder(TradingRequest)
_feed = msgspec.json.Decoder(FeedRequest)
_server = msgspec.json.Decoder(ServerMessage)
_any = msgspec.json.Decoder()

_RULES: tuple[tuple[re.Pattern[str], ErrorCode], ...] = (
    (re.compile(r"^Expected `object`, got `\w+`$"), ErrorCode.NOT_AN_OBJECT),
    (re.compile(r"^Object missing required field `type`$"), ErrorCode.MISSING_TYPE),
    (re.compile(r" - at `\$\.type`$"), ErrorCode.UNKNOWN_TYPE),
    (re.compile(r"^Object missing required field"), ErrorCode.MISSING_FIELD),
    (re.compile(r"^Object contains unknown field"), ErrorCode.UNKNOWN_FIELD),
    (re.compile(r"^Expected `[^`]*` ?[<>]=? ?-?\d|out of range|length"), ErrorCode.OUT_OF_RANGE),
    (re.compile(r"^Invalid (enum )?value"), ErrorCode.BAD_VALUE),
    (re.compile(r"^Expected `"), ErrorCode.WRONG_TYPE),
)


def classify(exc: msgspec.DecodeError) -> ErrorCode:
    """The ``ErrorCode`` of a msgspec decoding failure."""
    if not isinstance(exc, msgspec.ValidationError):
        return ErrorCode.BAD_JSON
    text = str(exc)
    for pattern, code in _RULES:
        if pattern.search(text):
            return code
    return ErrorCode.WRONG_TYPE


def req_of(data: bytes | str) -> int | None:
    """The ``req`` of an object that failed validation, if it has a usable one."""
    try:
        obj = _any.decode(data)
    except msgspec.DecodeError:
        return None
    req = obj.get("req") if isinstance(obj, dict) else None
    return req if type(req) is int and 0 <= req <= MAX_ID else None


def _decode(decoder: msgspec.json.Decoder, data: bytes | str):  # type: ignore[no-untyped-def]
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ProtocolError(classify(exc), str(exc), req_of(data)) from None


def decode_trading(data: bytes | str) -> TradingRequest:
    """Decode one frame of a trading connection; raise ``ProtocolError`` if it is not one."""
    return _decode(_trading, data)


def decode_feed(data: bytes | str) -> FeedRequest:
    """Decode one frame of a feed subscriber; a trading message gets ``READ_ONLY``."""
    try:
        return _decode(_feed, data)
    except ProtocolError as exc:
        if exc.code is ErrorCode.UNKNOWN_TYPE:
            try:
                obj = _any.decode(data)
            except msgspec.DecodeError:
                raise exc from None
            if isinstance(obj, dict) and obj.get("type") in TRADING_TYPES:
                raise ProtocolError(ErrorCode.READ_ONLY, "this connection is read-only", exc.req) from None
        raise


def decode_server(data: bytes | str) -> ServerMessage:
    """Decode one frame sent by the exchange or the relay (clients validate too)."""
    return _decode(_server, data)


def message_types(union: object) -> list[str]:
    """The ``type`` tags of a union's members, e.g. ``message_types(ServerMessage)``."""
    return [t.__struct_config__.tag for t in union.__args__]  # type: ignore[attr-defined]

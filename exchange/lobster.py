"""LOBSTER message files: parsing and price conversion. Pure: lines in, records out, no I/O.

LOBSTER (lobsterdata.com) rebuilds NASDAQ TotalView-ITCH order flow into two CSV files per
ticker and day; this module reads the *message* file: no header, one message a line, six
columns::

    34200.01399412,1,16116348,100,310500,-1
    time           type order_id size price direction

- **time**: seconds after midnight, a decimal with up to nine places (LOBSTER writes as
  many as the period's precision has and drops trailing zeros). Parsed exactly into integer
  nanoseconds from the digits, never through a float.
- **type** (``MessageType``): 1 submission of a new limit order; 2 cancellation (partial
  deletion: ``size`` lots leave the order); 3 deletion (the order leaves entirely); 4
  execution of a visible limit order (``size`` lots of it traded); 5 execution of a hidden
  limit order; 6 cross trade (auction); 7 trading halt indicator.
- **order_id**: the order's reference number, unique within the day. Hidden executions
  (5), crosses (6) and halts (7) name no order on the visible book (0 or -1 in files).
- **size**: shares. **price**: dollar price times 10 000 (``$91.14`` is ``911400``).
- **direction**: -1 sell limit order, 1 buy limit order. For an execution it is the
  direction of the *resting* order that was executed: an execution of a sell order (-1) is
  a buyer-initiated trade.
- For halts (7), price says what happens: -1 the halt begins, 0 quoting resumes, 1
  trading resumes; the other columns carry nothing.

Checks. ``parse_messages`` raises ``ValueError`` naming the 1-based line number for: a
column count other than six; a field that is not a plain decimal integer (the time: a
plain decimal; spaces around a field are allowed) or a time finer than a nanosecond; an
unknown type; a direction other than -1/+1; for types 1-5 a non-positive size or price;
for types 1-4 a non-positive order id; a halt price other than -1, 0 or 1; a time earlier
than the line before (files are in time order).
Blank lines are skipped (a trailing newline is not an error). Whether the messages make
sense together (a cancel of an order never submitted, for instance: orders resting before
the file starts are not in it) is for the consumer to judge, see ``agents.replay``.

Prices. A LOBSTER price is dollars x 10 000; an instrument's integer price unit is worth
``price_scale`` dollars, so ``units = lobster_price / (10 000 x price_scale)``. With
``nyse()`` (``price_scale`` 0.01) ``1234500`` ($123.45) is ``12345``. ``price_to_units``
refuses a price that is not a whole number of ticks unless told how to round.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from enum import IntEnum
from typing import Literal

import msgspec

NS_PER_S = 1_000_000_000
PRICE_FACTOR = 10_000  # LOBSTER price units per dollar

_INT = re.compile(r"-?[0-9]+")
_TIME = re.compile(r"([0-9]+)(?:\.([0-9]*))?")
_HALT_PRICES = frozenset((-1, 0, 1))
_ROUNDINGS = ("down", "up", "nearest")

Rounding = Literal["down", "up", "nearest"]


class MessageType(IntEnum):
    """LOBSTER event types (column 2)."""

    SUBMIT = 1  # new limit order
    CANCEL = 2  # partial deletion: ``size`` lots leave the order
    DELETE = 3  # total deletion
    EXECUTE = 4  # execution of a visible limit order
    EXECUTE_HIDDEN = 5  # execution of a hidden limit order
    CROSS = 6  # cross trade, e.g. the opening or closing auction
    HALT = 7  # trading halt indicator (price -1 halt, 0 quoting, 1 trading resumes)


_TYPES = frozenset(int(t) for t in MessageType)


class LobsterMessage(msgspec.Struct, frozen=True, gc=False):
    """One line of a message file. ``price`` is in LOBSTER units (dollars x 10 000)."""

    time_ns: int  # nanoseconds after midnight
    type: int  # a MessageType
    order_id: int
    size: int
    price: int
    direction: int  # -1 sell order, 1 buy order (for executions: the resting order's)


def parse_time(text: str) -> int:
    """Seconds after midnight (a plain decimal, at most nanosecond precision) as integer ns.

    ``"34200.01399412"`` is ``34_200_013_994_120``. Digits past the ninth decimal must be
    zeros; anything else (sign, exponent, spaces inside) raises ``ValueError``.
    """
    m = _TIME.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"time {text!r} is not a plain decimal number of seconds")
    whole, frac = m.group(1), m.group(2) or ""
    if frac[9:].strip("0"):
        raise ValueError(f"time {text!r} is finer than a nanosecond")
    return int(whole) * NS_PER_S + int(frac[:9].ljust(9, "0"))


def _int(text: str, name: str) -> int:
    text = text.strip()
    if _INT.fullmatch(text) is None:
        raise ValueError(f"{name} {text!r} is not an integer")
    return int(text)


def parse_line(line: str) -> LobsterMessage:
    """Parse and check one message line (see the module docstring); ``ValueError`` if bad."""
    fields = line.strip().split(",")
    if len(fields) != 6:
        raise ValueError(f"expected 6 comma-separated columns, got {len(fields)}")
    time_ns = parse_time(fields[0])
    typ = _int(fields[1], "type")
    order_id = _int(fields[2], "order id")
    size = _int(fields[3], "size")
    price = _int(fields[4], "price")
    direction = _int(fields[5], "direction")
    if typ not in _TYPES:
        raise ValueError(f"unknown message type {typ} (expected 1-7)")
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or 1, got {direction}")
    if typ <= MessageType.EXECUTE_HIDDEN:
        if size <= 0:
            raise ValueError(f"size must be positive for type {typ}, got {size}")
        if price <= 0:
            raise ValueError(f"price must be positive for type {typ}, got {price}")
        if typ <= MessageType.EXECUTE and order_id <= 0:
            raise ValueError(f"order id must be positive for type {typ}, got {order_id}")
    elif typ == MessageType.HALT and price not in _HALT_PRICES:
        raise ValueError(f"halt price must be -1, 0 or 1, got {price}")
    return LobsterMessage(time_ns, typ, order_id, size, price, direction)



def parse_messages(lines: Iterable[str]) -> list[LobsterMessage]:
    """Parse the lines of a LOBSTER message file (e.g. an open text file) into messages.

    Raises ``ValueError("line N: ...")`` for the first malformed line, N counting from 1
    over every line given (blank ones included), or for a time going backwards.
    """
    out: list[LobsterMessage] = []
    last = -1
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            msg = parse_line(line)
        except ValueError as exc:
            raise ValueError(f"line {n}: {exc}: {line.rstrip()!r}") from None
        if msg.time_ns < last:
            raise ValueError(f"line {n}: time goes backwards ({msg.time_ns} ns after {last} ns): {line.rstrip()!r}")
        last = msg.time_ns
        out.append(msg)
    return out


def price_to_units(
    price: int,
    price_scale: Decimal | str | int,
    *,
    tick: int = 1,
    rounding: Rounding | None = None,
) -> int:
    """A LOBSTER price (dollars x 10 000) in integer price units of ``price_scale`` dollars.

    The result is a positive multiple of ``tick`` (units). A price that is not a whole
    number of ticks raises ``ValueError`` unless ``rounding`` says where to go: ``"down"``,
    ``"up"`` (to the next tick) or ``"nearest"`` (ties to the even tick). Pass the
    instrument's own values: ``price_to_units(p, spec.price_scale, tick=spec.tick)``.
    ``price_scale`` must be exact (a ``Decimal``, a decimal string or an int), not a float.
    """
    if type(price) is not int:
        raise TypeError(f"price must be an int (LOBSTER units), got {price!r}")
    if isinstance(price_scale, float):
        raise TypeError(f"price_scale must be exact (Decimal, str or int), not the float {price_scale!r}")
    scale = Decimal(price_scale)
    if not scale.is_finite() or scale <= 0:
        raise ValueError(f"price_scale must be positive, got {price_scale!r}")
    if type(tick) is not int or tick <= 0:
        raise ValueError(f"tick must be a positive int, got {tick!r}")
    if rounding is not None and rounding not in _ROUNDINGS:
        raise ValueError(f"rounding must be one of {_ROUNDINGS} or None, got {rounding!r}")
    if price <= 0:
        raise ValueError(f"price must be positive, got {price}")
    # ticks = price / (PRICE_FACTOR * scale * tick), in exact integer arithmetic
    num, den = scale.as_integer_ratio()
    ticks, rest = divmod(price * den, PRICE_FACTOR * num * tick)
    if rest:
        if rounding is None:
            raise ValueError(
                f"LOBSTER price {price} (${Decimal(price) / PRICE_FACTOR}) is not a multiple of the tick "
                f"({tick} x ${scale}); pass rounding='down', 'up' or 'nearest'"
            )
        half = 2 * rest - PRICE_FACTOR * num * tick  # > 0: past the half-way point
        if rounding == "up" or (rounding == "nearest" and (half > 0 or (half == 0 and ticks % 2))):
            ticks += 1
    units = ticks * tick
    if units <= 0:
        raise ValueError(f"LOBSTER price {price} rounds to {units}, not a positive price")
    return units

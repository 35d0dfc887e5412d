"""Batched order books in torch: ``B`` independent books, one command per book per step.

``step(state, params, commands) -> (state, out)`` applies one command to every book of the
batch at once (``Commands.kind`` NONE leaves a book alone). It is a pure function over
batch-first tensors: no Python loop over books, no host synchronisation, the same code on
``cpu`` and ``cuda``. Its semantics are those of ``exchange.engine.MatchingEngine`` for the
commands it supports; ``tests/test_vector_book.py`` proves that fill for fill and by
``state_hash`` after every step.

Contract
--------
State. Each book has two rows, ``BID`` (0) and ``ASK`` (1), of ``capacity`` order slots.
A row holds its live orders packed at the front in priority order (best price first, then
time), empty slots after them (quantity 0, order id 0, owner 0, price 0 on the bid row and
``EMPTY_ASK`` on the ask row, so an empty slot never compares as a better price). Time
priority is the slot order itself; no timestamp is stored. ``top[b, row]`` says the row's
first order is the side's TOP order (the order that rested at a price better than its
side's best, or on an empty side, until it is filled, cancelled or bettered).

Commands. ``NEW`` enters an order: LIMIT, MARKET, MARKET_PROTECT or MARKET_LIMIT (with the
instrument's ``protection_ticks``), duration GTC, IOC or FOK, optionally post-only.
``CANCEL`` cancels a resting order of ``trader``. Validation follows the engine's order,
each a refusal that changes nothing (``Status``): unsupported type/duration/instruction,
bad quantity, quantity too large, bad lot, duplicate order id, bad or off-tick price
(LIMIT), post-only that would cross, market order into an empty side, FOK not fillable;
for CANCEL unknown order, not the owner. Then, refusals the engine does not have:
``CAPACITY`` when the order's remainder would rest on a row that is full (nothing
changes and the book's sticky ``overflow`` flag is set; the order is never truncated),
and ``INVALID`` for what the engine raises ``InvalidCommand`` for (side not +1/-1, unknown
kind, type or duration; also a price outside ``1 .. MAX_PRICE``).

Matching. An accepted order trades against the opposite row up to its limit, level by
level, best first (a MARKET order without limit); what is left rests at its limit (GTC
LIMIT, MARKET_PROTECT and MARKET_LIMIT) or is cancelled (IOC, FOK, MARKET). Rules, as
``exchange.rules``: ``fifo`` fills in slot order. ``pro_rata`` fills every level the
order takes in full in queue order (the CME FIFO exception); on the one level it takes
only part of: the TOP order first (if the rule uses TOP and the TOP order is there), then
``floor(qty x remaining / level qty without TOP)`` to each other order, shares below
``min_alloc`` dropped, then the leftover FIFO. Fills are reported per slot of the opposite
row as it was before the step, so they come in the engine's order (a level's TOP order is
its first slot); under pro rata a slot that got nothing has quantity 0 between fills.

Not supported (refused as UNSUPPORTED where a command could ask for it): DAY, stops,
icebergs, minimum quantity, modify, mass cancel, session end, self-match prevention (a
vector command has no SMP id; the engine checks none without one), price bands, the
``split`` rule.

Dtypes. ``BookParams.dtype`` picks the integer dtype of the state, of the commands a step
reads and of its outputs: ``"int64"`` (the default, ``DTYPE``) keeps the engine's ranges
(prices up to ``MAX_PRICE`` = 2**62 - 2, ids up to 2**63 - 1, ``capacity x max_qty`` below
2**62); ``"int32"`` halves the memory a step moves (the step is bound by memory traffic),
for books whose numbers fit: prices up to ``MAX_PRICE_32`` = 2**30 - 2 (the empty ask slot
is ``EMPTY_ASK_32`` = 2**30, ``BookParams.empty_ask``), order ids and traders
``0 .. 2**31 - 1``, ``capacity x max_qty`` below 2**31 (the row's quantity sums) and
``protection_ticks x tick`` below 2**30. ``BookParams`` checks its own limits when built,
``Commands.from_records`` / ``new`` / ``cancel`` with ``dtype="int32"`` raise ValueError for
a value outside int32, and ``step`` narrows commands of a wider dtype itself: an order id
or trader outside int32 is refused as ``INVALID``, other fields are clamped (so an
oversized quantity or price is refused as the engine refuses it). Pro-rata shares are
computed in int64 whatever the dtype.

Cost: every step is a fixed sequence of tensor operations, mostly on ``[B, capacity]``
rows (the work row of each book, see ``step``) plus one gather and one where per state
field over ``[B, 2, capacity]``, whatever the commands: O(B x capacity) work and no
data-dependent control flow. ``compiled_step()`` is the same
function through ``torch.compile`` (a few fused kernels; ``step`` stays the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Sequence

import torch
from torch import Tensor

from exchange.commands import Cancel, NewOrder
from exchange.enums import OrderType, RejectReason, TimeInForce
from exchange.instrument import InstrumentSpec
from exchange.rules import Fifo, ProRata

BID, ASK = 0, 1
DTYPE = torch.int64  # the default integer dtype of state, commands and outputs (BookParams.dtype)
STATE_DTYPE = DTYPE  # (alias) the state tensors
EMPTY_ASK = 1 << 62  # price of an empty ask slot (int64); an empty bid slot has price 0
MAX_PRICE = EMPTY_ASK - 2  # highest price a vector book accepts (int64)
EMPTY_ASK_32 = 1 << 30  # the same with BookParams.dtype "int32" (room above it for limit arithmetic)
MAX_PRICE_32 = EMPTY_ASK_32 - 2
DTYPES: dict[str, torch.dtype] = {"int64": torch.int64, "int32": torch.int32}  # BookParams.dtype choices

NONE, NEW, CANCEL = 0, 1, 2  # Commands.kind
_LIMIT, _MARKET, _PROTECT, _MKT_LIMIT = (int(t) for t in (OrderType.LIMIT, OrderType.MARKET, OrderType.MARKET_PROTECT, OrderType.MARKET_LIMIT))
_GTC, _DAY, _IOC, _FOK = (int(t) for t in TimeInForce)
_SUPPORTED_TYPES = (_LIMIT, _MARKET, _PROTECT, _MKT_LIMIT)
_SUPPORTED_TIFS = (_GTC, _IOC, _FOK)


class Status(IntEnum):
    """What became of a book's command in a step (``StepOut.status``)."""

    NONE = 0  # no command for this book
    ACCEPTED = 1  # new order accepted (it may have traded, rested, or had its rest cancelled)
    CANCELLED = 2  # the resting order was cancelled
    # refusals the engine also makes (its RejectReason in REJECT_REASON)
    UNSUPPORTED = 10
    BAD_QUANTITY = 11
    QUANTITY_TOO_LARGE = 12
    BAD_LOT = 13
    DUPLICATE_ORDER_ID = 14
    BAD_PRICE = 15
    OFF_TICK = 16
    POST_ONLY_WOULD_CROSS = 17
    NO_LIQUIDITY = 18
    FOK_NOT_FILLABLE = 19
    UNKNOWN_ORDER = 20
    NOT_OWNER = 21
    # refusals of the vector book only
    CAPACITY = 30  # the remainder would rest on a full row: nothing changed, overflow flag set
    INVALID = 31  # misuse the engine raises InvalidCommand for


REJECT_REASON: dict[Status, RejectReason] = {
    s: RejectReason[s.name] for s in Status if 10 <= s < 30
}

# Refusal checks in the engine's order (first match wins); see ``step``.
_CHECKS = (
    Status.INVALID,
    Status.UNSUPPORTED,
    Status.BAD_QUANTITY,
    Status.QUANTITY_TOO_LARGE,
    Status.BAD_LOT,
    Status.DUPLICATE_ORDER_ID,
    Status.BAD_PRICE,
    Status.OFF_TICK,
    Status.POST_ONLY_WOULD_CROSS,
    Status.NO_LIQUIDITY,
    Status.FOK_NOT_FILLABLE,
    Status.CAPACITY,
    Status.UNKNOWN_ORDER,
    Status.NOT_OWNER,
)


class UnsupportedSpec(ValueError):
    """The instrument asks for something the vector book does not model."""


@dataclass(frozen=True)
class BookParams:
    """Static configuration shared by every book of a batch (build it with ``from_spec``).

    ``capacity``: order slots per side of each book. ``rule``: ``"fifo"`` or
    ``"pro_rata"``; ``top`` and ``min_alloc`` as ``exchange.rules.ProRata``. ``tick``,
    ``lot``, ``max_qty``, ``protection_ticks``, ``market_as_protected`` as
    ``InstrumentSpec``. ``order_types`` and ``tifs``: the codes accepted (a subset of
    LIMIT, MARKET, MARKET_PROTECT, MARKET_LIMIT and GTC, IOC, FOK); ``post_only``: whether
    post-only is accepted. ``dtype``: ``"int64"`` (default) or ``"int32"`` (a ``torch.dtype``
    is accepted and stored as its name), the integer dtype of state, commands and outputs;
    int32 moves half the memory but limits the numbers (module docstring, "Dtypes").
    """

    capacity: int
    rule: str = "fifo"
    top: bool = False
    min_alloc: int = 1
    tick: int = 1
    lot: int = 1
    max_qty: int = 1_000_000
    protection_ticks: int = 10
    market_as_protected: bool = False
    order_types: frozenset[int] = frozenset({_LIMIT, _MARKET})
    tifs: frozenset[int] = frozenset(_SUPPORTED_TIFS)
    post_only: bool = True
    dtype: str = "int64"

    def __post_init__(self) -> None:
        if isinstance(self.dtype, torch.dtype):
            object.__setattr__(self, "dtype", str(self.dtype).removeprefix("torch."))
        if self.dtype not in DTYPES:
            raise ValueError(f"BookParams.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.rule not in ("fifo", "pro_rata"):
            raise UnsupportedSpec(f"rule must be 'fifo' or 'pro_rata', got {self.rule!r}")
        for name in ("capacity", "tick", "lot", "max_qty", "protection_ticks"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"BookParams.{name} must be a positive int, got {value!r}")
        # the step's arithmetic must not overflow: quantity sums over a row, and a protected
        # limit above the empty ask price (empty_ask + protection)
        sums, protect = (31, 30) if self.dtype == "int32" else (62, 62)
        if self.capacity * self.max_qty >= 1 << sums:
            raise ValueError(f"capacity x max_qty must stay below 2**{sums} with dtype {self.dtype} (quantity sums)")
        if self.rule == "pro_rata" and self.max_qty * self.max_qty >= 1 << 63:
            raise ValueError("max_qty**2 must stay below 2**63 with rule pro_rata (shares are quantity x lots in int64)")
        if self.protection_ticks * self.tick >= 1 << protect:
            raise ValueError(f"protection_ticks x tick must stay below 2**{protect} with dtype {self.dtype}")
        if not set(self.order_types) <= set(_SUPPORTED_TYPES) or not set(self.tifs) <= set(_SUPPORTED_TIFS):
            raise UnsupportedSpec(f"order types {sorted(self.order_types)} / tifs {sorted(self.tifs)} not supported")

    @property
    def state_dtype(self) -> torch.dtype:
        """The torch dtype of every integer tensor of state, commands and outputs."""
        return DTYPES[self.dtype]

    @property
    def empty_ask(self) -> int:
        """Price of an empty ask slot (``EMPTY_ASK`` or, for int32, ``EMPTY_ASK_32``)."""
        return EMPTY_ASK_32 if self.dtype == "int32" else EMPTY_ASK

    @property
    def max_price(self) -> int:
        """Highest limit price the book accepts (``MAX_PRICE`` or ``MAX_PRICE_32``)."""
        return self.empty_ask - 2

    @classmethod
    def from_spec(cls, spec: InstrumentSpec, capacity: int, dtype: str | torch.dtype = "int64") -> BookParams:
        """The vector book of ``spec``; ``UnsupportedSpec`` if its rule or price band is not
        modelled. Order types and durations the vector book lacks (stops, DAY) are left
        out: the vector book refuses them as UNSUPPORTED where the engine would accept.
        ``dtype``: as the field."""
        rule = spec.rule
        if type(rule) is Fifo:
            name, top, min_alloc = "fifo", False, 1
        elif type(rule) is ProRata:
            name, top, min_alloc = "pro_rata", rule.top, rule.min_alloc
        else:
            raise UnsupportedSpec(f"rule {rule!r} is not modelled by the vector book")
        if spec.price_band is not None:
            raise UnsupportedSpec("price bands are not modelled by the vector book")
        return cls(
            capacity=capacity,
            rule=name,
            top=top,
            min_alloc=min_alloc,
            tick=spec.tick,
            lot=spec.lot,
            max_qty=spec.max_qty,
            protection_ticks=spec.protection_ticks,
            market_as_protected=spec.market_as_protected,
            order_types=frozenset(int(t) for t in spec.order_types) & frozenset(_SUPPORTED_TYPES),
            tifs=frozenset(int(t) for t in spec.tifs) & frozenset(_SUPPORTED_TIFS),
            post_only=spec.post_only,
            dtype=dtype,
        )


@dataclass(frozen=True)
class BookState:
    """Batch-first state of ``B`` books (see the module docstring for the layout).

    ``price``, ``qty``, ``order_id``, ``owner``: ``[B, 2, capacity]`` in ``BookParams.dtype``
    (int64 by default), row BID then ASK, live orders first in priority order. ``top``: ``[B, 2]`` bool, the row's first order
    is its side's TOP order. ``last_price``: ``[B]`` price of the last trade (0: none yet).
    ``overflow``: ``[B]`` bool, set (and kept) when a command was refused for CAPACITY.
    """

    price: Tensor
    qty: Tensor
    order_id: Tensor
    owner: Tensor
    top: Tensor
    last_price: Tensor
    overflow: Tensor

    @property
    def batch(self) -> int:
        return self.qty.shape[0]

    @property
    def capacity(self) -> int:
        return self.qty.shape[2]

    @property
    def device(self) -> torch.device:
        return self.qty.device

    def to(self, device: torch.device | str) -> BookState:
        return BookState(*(getattr(self, f.name).to(device) for f in fields(self)))


@dataclass(frozen=True)
class Commands:
    """One command per book: ``[B]`` tensors (``[T, B]`` for a sequence; ``cmds[t]`` is step t).

    ``kind``: NONE, NEW or CANCEL. ``order_id``, ``trader``: as the engine's commands (a
    CANCEL uses only these two). ``side``: +1 buy, -1 sell. ``qty``. ``price``: the limit
    (read for LIMIT only). ``type``: an ``OrderType`` code. ``tif``: a ``TimeInForce`` code.
    ``post_only``: bool. The integer fields are in the book's dtype (the constructors take
    ``dtype``); ``step`` also takes commands of another dtype and converts them itself.
    """

    kind: Tensor
    order_id: Tensor
    trader: Tensor
    side: Tensor
    qty: Tensor
    price: Tensor
    type: Tensor
    tif: Tensor
    post_only: Tensor

    def __getitem__(self, index: object) -> Commands:
        return Commands(*(getattr(self, f.name)[index] for f in fields(self)))

    def to(self, device: torch.device | str) -> Commands:
        return Commands(*(getattr(self, f.name).to(device) for f in fields(self)))

    def narrow(self, dtype: str | torch.dtype) -> Commands:
        """These commands with their integer fields in ``dtype`` (a ``BookParams.dtype``).

        Raises ValueError naming the first field with a value that ``dtype`` cannot hold
        (one host sync per field when narrowing; none when the dtype is already right)."""
        dt = _torch_dtype(dtype)
        cols = []
        for f in fields(self):
            t = getattr(self, f.name)
            if t.dtype != torch.bool and t.dtype != dt:
                info = torch.iinfo(dt)
                if t.numel() and (int(t.min()) < info.min or int(t.max()) > info.max):
                    raise ValueError(f"Commands.{f.name} holds a value outside {dt} ({info.min} .. {info.max})")
                t = t.to(dt)
            cols.append(t)
        return Commands(*cols)

    @classmethod
    def from_records(
        cls, records: Sequence[NewOrder | Cancel | None], device: torch.device | str = "cpu",
        dtype: str | torch.dtype = DTYPE,
    ) -> Commands:
        """Commands from the engine's records, one per book (None: no command), in ``dtype``.

        Raises ValueError for a NewOrder using what a vector command cannot say (stop price,
        display or minimum quantity, SMP id or mode, per-order protection), or a number
        ``dtype`` cannot hold."""
        cols: list[list[int]] = [[] for _ in fields(cls)]
        for c in records:
            if c is None:
                row = (NONE, 0, 0, 1, 0, 0, _LIMIT, _GTC, 0)
            elif type(c) is Cancel:
                row = (CANCEL, c.order_id, c.trader, 1, 0, 0, _LIMIT, _GTC, 0)
            elif type(c) is NewOrder:
                extra = (c.stop_price, c.display_qty, c.min_qty, c.smp_id, c.smp_mode, c.protection)
                if any(v is not None for v in extra):
                    raise ValueError(f"a vector command cannot express {c!r}")
                price = 0 if c.price is None else c.price
                row = (NEW, c.order_id, c.trader, c.side, c.qty, price, int(c.type), int(c.tif), int(c.post_only))
            else:
                raise ValueError(f"not a NewOrder, Cancel or None: {c!r}")
            for col, v in zip(cols, row):
                col.append(v)
        t = torch.tensor(cols, dtype=DTYPE, device=device)
        return cls(*t[:8], t[8].bool()).narrow(dtype)

    @classmethod
    def new(
        cls,
        order_id: Tensor,
        trader: Tensor,
        side: Tensor,
        qty: Tensor,
        price: Tensor | None = None,
        type: int | Tensor = _LIMIT,
        tif: int | Tensor = _GTC,
        post_only: bool | Tensor = False,
        dtype: str | torch.dtype = DTYPE,
    ) -> Commands:
        """NEW commands for every book from ``[B]`` tensors (scalars broadcast), in ``dtype``
        (ValueError for a value it cannot hold)."""
        like = torch.as_tensor(order_id, dtype=DTYPE)
        full = lambda v, dt=DTYPE: torch.as_tensor(v, dtype=dt, device=like.device).expand(like.shape).clone()  # noqa: E731
        return cls(
            full(NEW), like, full(trader), full(side), full(qty), full(0 if price is None else price),
            full(type), full(tif), full(post_only, torch.bool),
        ).narrow(dtype)

    @classmethod
    def cancel(cls, order_id: Tensor, trader: Tensor, dtype: str | torch.dtype = DTYPE) -> Commands:
        """CANCEL commands for every book, in ``dtype`` (ValueError for a value it cannot hold)."""
        like = torch.as_tensor(order_id, dtype=DTYPE)
        full = lambda v, dt=DTYPE: torch.as_tensor(v, dtype=dt, device=like.device).expand(like.shape).clone()  # noqa: E731
        return cls(
            full(CANCEL), like, full(trader), full(1), full(0), full(0), full(_LIMIT), full(_GTC), full(False, torch.bool)
        ).narrow(dtype)


def _torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A ``BookParams.dtype`` name (or a torch dtype) as the torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


@dataclass(frozen=True)
class StepOut:
    """What one step did, per book.

    ``status``: ``[B]`` a ``Status`` code. ``taker_row``: ``[B]`` the row the command worked
    on: the opposite row of a NEW order (ASK for a buy), the row of the order a CANCEL
    names. ``fill_qty``: ``[B, capacity]`` lots each order of that row traded, in the row's
    slot order *before* the step, and ``fill_price``, ``fill_maker_id``,
    ``fill_maker_owner`` that row's prices, order ids and owners (reading them in slot order
    gives the engine's fill order; under pro rata an order that got nothing reads 0 between
    fills). ``maker_price``, ``maker_id``, ``maker_owner``: the whole state before the step
    (``[B, 2, capacity]``, no copy), and ``fill`` the fills laid out like them (built on
    access). The taker is the command's ``order_id``/``trader``. ``filled``: ``[B]`` lots the
    order traded. ``rested``: lots that rest on the book. ``cancelled``: lots of the
    command's order cancelled (an IOC/FOK/MARKET remainder, or the open quantity a CANCEL
    removed), as the engine's ``Cancelled`` event.
    """

    status: Tensor
    fill_qty: Tensor
    fill_price: Tensor
    fill_maker_id: Tensor
    fill_maker_owner: Tensor
    maker_price: Tensor
    maker_id: Tensor
    maker_owner: Tensor
    filled: Tensor
    rested: Tensor
    cancelled: Tensor
    taker_row: Tensor

    @property
    def fill(self) -> Tensor:
        """``[B, 2, capacity]`` fills laid out like the pre-step state (computed on access)."""
        B, N = self.fill_qty.shape
        on = self.taker_row.view(B, 1, 1) == torch.arange(2, device=self.fill_qty.device).view(1, 2, 1)
        return torch.where(on, self.fill_qty.view(B, 1, N), 0)

    def fills(self, b: int) -> list[tuple[int, int, int, int]]:
        """Book ``b``'s fills as ``(maker_id, maker_owner, price, qty)`` in order (host sync)."""
        cols = [t[b].tolist() for t in (self.fill_maker_id, self.fill_maker_owner, self.fill_price, self.fill_qty)]
        return [(i, o, p, q) for i, o, p, q in zip(*cols) if q]


# ---- construction --------------------------------------------------------------------------
def init(params: BookParams, batch: int, device: torch.device | str = "cpu") -> BookState:
    """``batch`` empty books."""
    shape = (batch, 2, params.capacity)
    dt = params.state_dtype
    zeros = lambda: torch.zeros(shape, dtype=dt, device=device)  # noqa: E731
    price = zeros()
    price[:, ASK] = params.empty_ask
    return BookState(
        price=price,
        qty=zeros(),
        order_id=zeros(),
        owner=zeros(),
        top=torch.zeros((batch, 2), dtype=torch.bool, device=device),
        last_price=torch.zeros(batch, dtype=dt, device=device),
        overflow=torch.zeros(batch, dtype=torch.bool, device=device),
    )


def reset(state: BookState, params: BookParams, mask: Tensor) -> BookState:
    """Books where ``mask`` ([B] bool) is true emptied, the others unchanged (masked select)."""
    empty = init(params, state.batch, state.device)
    return BookState(
        *(
            torch.where(mask.view((-1,) + (1,) * (getattr(state, f.name).dim() - 1)), getattr(empty, f.name), getattr(state, f.name))
            for f in fields(state)
        )
    )


_CONSTS: dict[tuple, tuple[Tensor, ...]] = {}


def _consts(device: torch.device, n: int, params: BookParams) -> tuple[Tensor, ...]:
    """Per-device constant tensors (made once, so a step allocates none of them)."""
    key = (device, n, params)
    c = _CONSTS.get(key)
    if c is None:
        dt = params.state_dtype
        types = torch.zeros(8, dtype=torch.bool)
        for t in params.order_types:
            types[t] = True
        tifs = torch.zeros(8, dtype=torch.bool)
        for t in params.tifs:
            tifs[t] = True
        c = (
            torch.arange(n, dtype=torch.int64).view(1, n),  # slot index (an index: int64 whatever the dtype)
            torch.arange(2 * n, dtype=torch.int64).view(1, 2 * n),  # slot index in a book's two rows
            torch.tensor([BID, ASK], dtype=torch.int64).view(1, 2, 1),  # row index
            types,
            tifs,
            torch.tensor([int(s) for s in _CHECKS] + [0], dtype=dt),  # status per check
            torch.tensor([0, params.empty_ask], dtype=dt).view(1, 2, 1),  # empty price per row
        )
        c = tuple(t.to(device) for t in c)
        _CONSTS[key] = c
    return c


def _command_in(cmd: Commands, dt: torch.dtype) -> tuple[Commands, Tensor | None]:
    """``cmd`` with its integer fields in the state dtype ``dt``, and (when narrowing from a
    wider dtype) a ``[B]`` flag for an order id or trader that ``dt`` cannot hold. Other
    fields are clamped into ``dt``, so an oversized quantity or price still gets the refusal
    the engine gives it. A no-op when the dtypes already agree (decided while tracing)."""
    wide = None
    cols = []
    for f in fields(cmd):
        t = getattr(cmd, f.name)
        if t.dtype != torch.bool and t.dtype != dt:
            if torch.iinfo(t.dtype).bits > torch.iinfo(dt).bits:
                info = torch.iinfo(dt)
                if f.name in ("order_id", "trader"):
                    out = (t < info.min) | (t > info.max)
                    wide = out if wide is None else wide | out
                t = t.clamp(info.min, info.max)
            t = t.to(dt)
        cols.append(t)
    return Commands(*cols), wide


# ---- the transition -------------------------------------------------------------------------
def step(state: BookState, params: BookParams, cmd: Commands) -> tuple[BookState, StepOut]:
    """Apply ``cmd`` (one command per book) to every book; return the new state and what happened.

    Each book's work splits by row: the *work row* (the opposite row of a NEW order, the row
    of the order a CANCEL names) loses a prefix of filled orders or the cancelled one; the
    other row may gain the order's remainder. Matching runs on the work row alone
    (``[B, N]``); the new state is then one ``gather`` per field over both rows of the old
    state (``[B, 2, N]``), with the empty slots and the new order filled in by a ``where``.
    """
    return _step(state, params, cmd, _consts(state.qty.device, state.qty.shape[2], params))


def _step(
    state: BookState, params: BookParams, cmd: Commands, consts: tuple[Tensor, ...]
) -> tuple[BookState, StepOut]:
    """``step`` with its constant tensors passed in (``_consts``): what ``compiled_step``
    compiles, so the tensors are graph inputs and never a lookup traced inside the graph.

    Written for memory traffic, which bounds the step at large B: full-row work is a few
    compares and cumulative sums on the work row, and one gather plus one where per state
    field; everything else is on ``[B]`` tensors."""
    price, qty, oid, owner = state.price, state.qty, state.order_id, state.owner
    B, _, N = qty.shape
    dt = qty.dtype
    slot, flat_slot, rows, type_ok, tif_ok, check_status, empty_price = consts
    max_price = params.max_price
    cmd, wide = _command_in(cmd, dt)

    kind, side, typ, tif, q = cmd.kind, cmd.side, cmd.type, cmd.tif, cmd.qty
    new, cancel = kind == NEW, kind == CANCEL
    buy = side == 1

    # the order this id names (ids are unique in a book: one hit at most), on either row
    hit = (oid == cmd.order_id.view(B, 1, 1)) & (qty > 0)
    hit_flat = hit.view(B, 2 * N)
    found = hit_flat.any(1)
    hit_at = (hit_flat * flat_slot).sum(1)
    hit_ask = hit_at >= N
    hit_slot = hit_at - N * hit_ask
    hit_owner = owner.view(B, 2 * N).gather(1, hit_at.view(B, 1)).squeeze(1)
    hit_qty = qty.view(B, 2 * N).gather(1, hit_at.view(B, 1)).squeeze(1)
    owned = found & (hit_owner == cmd.trader)

    # the work row (w_*): the opposite row of a NEW order (ASK for a buy), the cancelled
    # order's row of a CANCEL; the other row may gain the order's remainder
    w_ask = torch.where(cancel, hit_ask, buy)  # [B] bool
    wrow = w_ask.long()
    wa = w_ask.view(B, 1)
    w_price, w_qty, w_oid, w_owner = (torch.where(wa, t[:, ASK], t[:, BID]) for t in (price, qty, oid, owner))
    w_top = torch.where(w_ask, state.top[:, ASK], state.top[:, BID])
    i_top = torch.where(w_ask, state.top[:, BID], state.top[:, ASK])
    opp_best = w_price[:, 0]  # (for a NEW order the work row is the opposite row)
    opp_empty = w_qty[:, 0] <= 0
    own_full = torch.where(w_ask, qty[:, BID, N - 1], qty[:, ASK, N - 1]) > 0

    # working limit: LIMIT its price, MARKET none, MARKET_PROTECT best +/- protection, MARKET_LIMIT best
    if params.market_as_protected:
        typ = torch.where(typ == _MARKET, _PROTECT, typ)
    is_limit, is_market = typ == _LIMIT, typ == _MARKET
    protect = opp_best + side * (params.protection_ticks * params.tick)
    protect = torch.where(protect > 0, protect, params.tick)
    limit = torch.where(typ == _PROTECT, protect, opp_best)
    limit = torch.where(is_market, buy.to(dt) * max_price + 1, limit)  # a market buy: max_price + 1, a sell: 1
    # (clamped so that an empty slot never reaches it, whatever a refused command says)
    limit = torch.where(is_limit, cmd.price, limit).clamp(1, max_price + 1)

    # "at least as good as the limit" on each row's own scale. On the work row, the orders
    # the limit reaches (asks <= limit, bids >= limit; an empty slot never does: its price is
    # 0 on the bid row, the empty ask price on the ask row): one compare, as
    # ``(price < limit + is_ask) == is_ask``. On the other row, the count of orders ahead of
    # a new order resting at the limit (``pos``), read off the same compare over both rows.
    lim = limit.view(B, 1)
    cross = (w_price < lim + wa) == wa
    below = (price < lim.view(B, 1, 1) + rows).sum(2)  # [B, 2] per row: prices < limit (bids), <= limit (asks)
    pos = torch.where(w_ask, N - below[:, BID], below[:, ASK]).view(B, 1)  # orders ahead of the new one
    cq = torch.where(cross, w_qty, 0)
    incl = cq.cumsum(1, dtype=dt)  # (an integer cumsum is int64 unless told)
    fillable = incl[:, N - 1]

    # refusals, in the order of _CHECKS (the engine's validation order)
    bad_enum = (typ < 0) | (typ > 5) | (tif < 0) | (tif > 3) | ((side != 1) & (side != -1))
    bad_range = is_limit & (cmd.price > max_price)
    if wide is not None:
        bad_range = bad_range | wide
    typ_c, tif_c = typ.clamp(0, 7), tif.clamp(0, 7)
    unsupported = ~type_ok[typ_c] | ~tif_ok[tif_c]
    unsupported |= cmd.post_only & ((not params.post_only) | (tif != _GTC) | ~is_limit)
    rests = (tif == _GTC) & ~is_market
    checks = torch.stack(
        [
            ((kind < 0) | (kind > 2)) | ((new | cancel) & bad_range) | (new & bad_enum),
            new & unsupported,
            new & (q <= 0),
            new & (q > params.max_qty),
            new & (q % params.lot != 0),
            new & found,
            new & is_limit & (cmd.price <= 0),
            new & is_limit & (cmd.price % params.tick != 0),
            new & is_limit & cmd.post_only & (fillable > 0),
            new & ~is_limit & opp_empty,
            new & (tif == _FOK) & (fillable < q),
            new & rests & (q > fillable) & own_full,
            cancel & ~found,
            cancel & ~owned,
            torch.ones_like(new),  # sentinel: no refusal
        ],
        1,
    )
    failed = checks.to(torch.uint8).argmax(1)
    refused = failed < len(_CHECKS)
    ok = new.to(dt) * int(Status.ACCEPTED) + cancel.to(dt) * int(Status.CANCELLED)  # (NONE is 0)
    status = torch.where(refused, check_status[failed], ok)
    accepted = new & ~refused
    aggr = torch.where(accepted, q, 0)
    a = aggr.view(B, 1)

    # allocation on the work row
    before = incl - cq
    if params.rule == "fifo":
        fill = (a - before).clamp(min=0).minimum(cq)  # = clamp(min(incl, a) - before, 0)
    else:
        fill = pro_rata_fill(w_price, cq, incl, before, cross, a, w_top, slot, params.top, params.min_alloc)
    filled = torch.minimum(aggr, fillable)
    rem = aggr - filled
    rest = accepted & rests & (rem > 0)
    reached = (cross & (before < a)).sum(1, keepdim=True)  # [B, 1] slots traded into

    # The new state: slot j of the work row reads old slot ``j + gone + (cancelled at or
    # before j)`` of that row, empty past the live orders (it loses a prefix of filled orders,
    # see pro_rata_fill, or the one cancelled order); slot j of the other row reads slot
    # ``j - (inserted before j)`` and the new order sits at ``pos``. As one index into a
    # book's two rows, so each field is one gather and one where over [B, 2, N].
    gone = ((fill == cq) & cross).sum(1, keepdim=True)  # [B, 1] filled orders (a prefix)
    kill = (cancel & owned & ~refused).view(B, 1)  # a refused cancel (INVALID) changes nothing
    kill_at = hit_slot.view(B, 1)
    w_src = slot + gone + (kill & (slot >= kill_at))  # [B, N]
    w_empty = w_src >= N
    ins = rest.view(B, 1)
    i_src = slot - (ins & (slot > pos)).long()
    at_new = ins & (slot == pos)
    is_w = rows == wrow.view(B, 1, 1)  # [B, 2, 1] the row is the work row
    w_off, i_off = (wrow * N).view(B, 1), ((1 - wrow) * N).view(B, 1)
    src = torch.where(is_w, (w_src.clamp(max=N - 1) + w_off).view(B, 1, N), (i_src + i_off).view(B, 1, N))
    special = torch.where(is_w, w_empty.view(B, 1, N), at_new.view(B, 1, N))  # [B, 2, N] empty or the new order
    src = src.view(B, 2 * N)

    def rebuild(t: Tensor, special_value: Tensor) -> Tensor:
        """Field ``t`` ([B, 2, N]) after the step: ``special_value`` where ``special``."""
        return torch.where(special, special_value, t.view(B, 2 * N).gather(1, src).view(B, 2, N))

    kept_fill = torch.where(w_empty, 0, fill.gather(1, w_src.clamp(max=N - 1)))  # fills of the work row's survivors
    new_value = lambda v: torch.where(is_w, 0, v.view(B, 1, 1))  # noqa: E731  (the new order's value on the other row)
    price2 = rebuild(price, torch.where(is_w, empty_price, limit.view(B, 1, 1)))
    qty2 = rebuild(qty, new_value(rem)) - torch.where(is_w, kept_fill.view(B, 1, N), 0)
    oid2 = rebuild(oid, new_value(cmd.order_id))
    owner2 = rebuild(owner, new_value(cmd.trader))

    # TOP: lost when the row's first order goes; a rest ahead of the whole row is the new TOP
    w_top2 = w_top & (gone.view(B) == 0) & ~(kill.view(B) & (hit_slot == 0))
    i_top2 = i_top | (rest & (pos.view(B) == 0))
    top = torch.stack([torch.where(w_ask, i_top2, w_top2), torch.where(w_ask, w_top2, i_top2)], 1)

    deepest = w_price.gather(1, (reached - 1).clamp(min=0)).squeeze(1)
    last_price = torch.where(filled > 0, deepest, state.last_price)
    cancelled = torch.where(accepted & ~rests, rem, 0) + torch.where(kill.view(B), hit_qty, 0)

    out = StepOut(
        status=status,
        fill_qty=fill,
        fill_price=w_price,
        fill_maker_id=w_oid,
        fill_maker_owner=w_owner,
        maker_price=price,
        maker_id=oid,
        maker_owner=owner,
        filled=filled,
        rested=torch.where(rest, rem, 0),
        cancelled=cancelled,
        taker_row=wrow.to(dt),
    )
    new_state = BookState(
        price=price2,
        qty=qty2,
        order_id=oid2,
        owner=owner2,
        top=top,
        last_price=last_price,
        overflow=state.overflow | (status == int(Status.CAPACITY)),
    )
    return new_state, out


_COMPILED: dict[bool, object] = {}


def compiled_step(fullgraph: bool = True):
    """``step`` compiled with ``torch.compile`` (inductor; C++ on CPU, Triton on CUDA).

    The same function, traced once per batch size, device and ``BookParams`` (static
    shapes: ``dynamic=False``) and fused into a few kernels; ``step`` itself stays the
    eager reference (``tests/test_vector_book.py`` checks the two agree event for event and
    by ``state_hash``). The first call at a new shape compiles (seconds to tens of seconds
    on CPU); later calls reuse it. Returns a function with ``step``'s signature.
    """
    fn = _COMPILED.get(fullgraph)
    if fn is None:
        # One graph per batch size, device, BookParams and mix of inference / ordinary
        # tensors among the inputs (a guard each): more than dynamo's default 8, past which
        # it would silently fall back to eager. Raised for the process, never lowered.
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
        inner = torch.compile(_step, dynamic=False, fullgraph=fullgraph)

        def fn(state: BookState, params: BookParams, cmd: Commands) -> tuple[BookState, StepOut]:
            return inner(state, params, cmd, _consts(state.qty.device, state.qty.shape[2], params))

        fn.__doc__ = step.__doc__
        _COMPILED[fullgraph] = fn
    return fn


def step_fn(compile: bool = False, native: bool = False):
    """``compiled_step()`` if ``compile``, ``vector.native.native_step`` (the C kernel, CPU
    only, built on first use) if ``native``, else ``step``."""
    if compile and native:
        raise ValueError("step_fn: choose one of compile and native")
    if native:
        from vector.native import native_step  # (imported here: it imports this module)

        return native_step
    return compiled_step() if compile else step


def pro_rata_fill(
    price: Tensor, cq: Tensor, incl: Tensor, before: Tensor, cross: Tensor, a: Tensor, top: Tensor, slot: Tensor,
    use_top: bool, min_alloc: int,
) -> Tensor:
    """CME pro rata (``exchange.rules.pro_rata_allocate``) over the reachable orders ``cq``.

    ``[B, N]`` rows (the taker's opposite row), ``a`` ``[B, 1]`` the lots arriving, ``top``
    ``[B]`` the row's first order is TOP. Levels the aggressor takes in full fill FIFO (the
    CME FIFO exception). On the one level it takes in part (price ``P``, ``r`` lots
    arriving): the TOP order first (the row's first order is TOP, so it is TOP here only on
    the best level), then to each other order ``floor(qty x r' / total')`` (``r'``,
    ``total'`` without TOP) if at least ``min_alloc``, then the leftover FIFO. A share is
    always below the order's size, so the orders this fills completely are a prefix of the
    row: the whole levels, then TOP, then the orders the leftover completes in queue order.
    """
    B, N = cq.shape
    k = ((incl <= a) & cross).sum(1, keepdim=True)  # first slot not taken whole (FIFO count)
    p_level = torch.where(k < N, price.gather(1, k.clamp(max=N - 1)), -1)  # the level taken in part, if any
    in_p = cross & (price == p_level)
    level_before = torch.where(in_p, before, torch.iinfo(cq.dtype).max).amin(1, keepdim=True)
    whole = cross & (before < level_before)  # levels before P: taken whole, FIFO
    r = (a - level_before).clamp(min=0)  # lots arriving at P (0: none, or no such level)
    total = (cq * in_p).sum(1, keepdim=True, dtype=cq.dtype)
    t = torch.zeros_like(r)
    if use_top:
        top_here = top.view(B, 1) & (level_before == 0) & in_p[:, :1]
        t = torch.where(top_here, cq[:, :1], 0)
    top_fill = torch.minimum(t, r)
    r2 = r - top_fill
    others = in_p if not use_top else in_p & ~((slot == 0) & top_here)
    if cq.dtype == torch.int64:
        share = cq * r2 // (total - t).clamp(min=1)
    else:  # qty x lots overflows a narrower dtype: the product and quotient in int64
        share = (cq.long() * r2 // (total - t).clamp(min=1)).to(cq.dtype)
    share = torch.where(others & (share >= max(min_alloc, 1)), share, 0)
    left = r2 - share.sum(1, keepdim=True, dtype=cq.dtype)
    room = torch.where(others, cq - share, 0)
    extra = torch.minimum((left - (room.cumsum(1, dtype=cq.dtype) - room)).clamp(min=0), room)
    fill = torch.where(whole, cq, 0) + share + extra
    if use_top:
        fill = fill + torch.where(slot == 0, top_fill, 0)
    return fill


# ---- views -------------------------------------------------------------------------------------
def levels(state: BookState, depth: int) -> tuple[Tensor, Tensor, Tensor]:
    """Top ``depth`` levels of each side: ``(price, qty, count)``, each ``[B, 2, depth]``,
    best first (row BID then ASK); a missing level has price, qty and count 0."""
    price, qty = state.price, state.qty
    B, R, N = qty.shape
    alive = qty > 0
    start = alive.clone()
    start[:, :, 1:] &= price[:, :, 1:] != price[:, :, :-1]
    level = start.cumsum(2) - 1
    idx = torch.where(alive, level.clamp(max=depth), depth)
    lq = torch.zeros((B, R, depth + 1), dtype=qty.dtype, device=qty.device).scatter_add_(2, idx, qty)
    lc = torch.zeros_like(lq).scatter_add_(2, idx, alive.to(qty.dtype))
    lp = torch.zeros_like(lq).scatter_(2, torch.where(start, idx, depth), price)
    return lp[:, :, :depth], lq[:, :, :depth], lc[:, :, :depth]



"""The matching engine: commands in, events out, no I/O.

``MatchingEngine(spec).submit(command) -> list[Event]`` applies one command;
``submit_many(commands)`` applies a batch and returns all their events (one call, no
per-command overhead). The engine holds no clock and no random generator: what it does
depends only on the commands and their order, so the same stream gives the same events.

Contract
--------
Validation. A command is first checked for API misuse (not a command, a non-int id,
quantity or price, a side other than +1/-1, an unknown order type or duration, a LIMIT
without price, a stop without trigger): that raises ``InvalidCommand`` and changes
nothing. Then market rules, in this order, each a ``Rejected`` event that changes
nothing: unsupported type/instruction for the instrument; bad or absurd quantity; bad
lot; duplicate order id (among live and stop orders); bad, off-tick or out-of-band price;
bad stop price or stop already triggered; bad display or minimum quantity; market order
into an empty side; post-only that would cross; FOK or minimum quantity not fillable.

Order types. LIMIT trades up to its price and rests the rest (IOC/FOK: cancels it).
MARKET sweeps without limit; the rest is cancelled. MARKET_PROTECT gets the limit best
opposite price +/- ``protection`` ticks and rests the rest there. MARKET_LIMIT gets the
best opposite price as its limit and rests the rest there. STOP and STOP_LIMIT wait in the
stop book until elected: a buy stop by a trade at or above its trigger, a sell stop at or
below. An elected STOP becomes MARKET_PROTECT around its trigger price, a STOP_LIMIT a
LIMIT. After an incoming order has finished matching, every stop its trades elected is
released in entry order (earliest first); each released order matches in full (emitting
``Triggered`` first) before the next, and stops its trades elect join the back of the
queue. An iceberg (``display_qty``) shows one slice; when the slice fills, the next slice
goes to the back of the queue (``Refreshed``). IOC with ``min_qty`` is refused unless that
much is immediately fillable. FOK is refused unless all of it is. Post-only is refused if
it would take liquidity. DAY orders expire at ``EndSession``; GTC orders stay.

Priority. TOP: the order that rested at a price better than its side's best (or on an
empty side) is its side's TOP until filled, cancelled, refreshed, re-priced, or bettered.
Modify: a smaller quantity at the same price keeps time priority (and TOP); a new price or
a larger quantity is a cancel/replace: the order goes to the back of its new level and
trades at once if it crosses (a post-only modify that would cross is refused instead). It
becomes TOP only if its new price betters its side's best from before the modify.

Self-match prevention. Orders with the same ``smp_id`` never trade together; orders with
no id are not checked. The aggressor's mode (or the instrument's default) decides, when an
allocation would pair it with a resting order of its id, the allocations listed before
the conflicting one execute; then CANCEL_RESTING cancels that resting order, allocates the
rest again without it and the aggressor goes on (so under FIFO exactly the orders that
would have executed are cancelled); CANCEL_AGGRESSING cancels the aggressor's whole
remainder, which never rests; CANCEL_BOTH does that and also cancels the resting order.

Events, in order, for one command: ``Accepted`` or ``Rejected``; then, per price level
reached, in allocation order, each ``Fill`` (with any ``Cancelled``/self-match and
``Refreshed`` where they happen) and one ``BookUpdate`` for the level if anything on it
traded or was cancelled; then the
remainder's fate (a ``BookUpdate`` where it rests, or ``Cancelled``); then for each
elected stop ``Triggered`` followed by that order's own events. Cancel, modify, mass
cancel and session end emit ``Cancelled``/``Modified``/``Expired`` with the level's
``BookUpdate``. ``seq`` numbers every event of the engine consecutively from 1.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from heapq import heappop, heappush
from itertools import count

import msgspec

from exchange.book import (
    DISPLAY,
    HIDDEN,
    ID,
    POST_ONLY,
    PRICE,
    QTY,
    SIDE,
    SMP,
    SMP_MODE,
    TIF,
    TIME,
    TRADER,
    BookSide,
    Level,
    OrderBook,
)
from exchange.commands import Cancel, EndSession, MassCancel, Modify, NewOrder
from exchange.enums import CancelReason, OrderType, RejectReason, SmpMode, TimeInForce
from exchange.errors import InvalidCommand
from exchange.events import (
    Accepted,
    BookUpdate,
    Cancelled,
    Expired,
    Fill,
    Modified,
    Refreshed,
    Rejected,
    Triggered,
)
from exchange.instrument import InstrumentSpec
from exchange.rules import Fifo

_LIMIT, _MARKET, _PROTECT, _MKT_LIMIT, _STOP, _STOP_LIMIT = (
    OrderType.LIMIT,
    OrderType.MARKET,
    OrderType.MARKET_PROTECT,
    OrderType.MARKET_LIMIT,
    OrderType.STOP,
    OrderType.STOP_LIMIT,
)
_GTC, _DAY, _IOC, _FOK = TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK
_ORDER_TYPES = frozenset(int(t) for t in OrderType)
_TIFS = frozenset(int(t) for t in TimeInForce)
_SMP_MODES = frozenset(int(m) for m in SmpMode)
_RESTS = frozenset((_GTC, _DAY))
_R = RejectReason
_UNFILLED, _SELF_MATCH, _USER = CancelReason.UNFILLED, CancelReason.SELF_MATCH, CancelReason.USER


class MatchingEngine:
    """One instrument's order book and matching, driven by commands (see module docstring)."""

    def __init__(self, spec: InstrumentSpec, *, fast_path: bool = True) -> None:
        self.spec = spec
        self.fast_path = fast_path  # False: every command through the general handlers
        self.book = OrderBook()
        self.rule = spec.rule
        self.last_price: int | None = None  # price of the last trade
        self._next_seq = count(1).__next__
        self._last_seq = 0
        self._top: dict[int, list | None] = {1: None, -1: None}
        self._stops: dict[int, tuple[NewOrder, int]] = {}  # order id -> (command, entry time)
        self._buy_stops: list[tuple[int, int, int]] = []  # heap of (trigger, time, order id)
        self._sell_stops: list[tuple[int, int, int]] = []  # heap of (-trigger, time, order id)
        self._fifo_inline = fast_path and type(spec.rule) is Fifo  # walk FIFO queues in place
        market_kind = _PROTECT if spec.market_as_protected else _MARKET
        market_ok = _MARKET in spec.order_types and market_kind in spec.order_types
        self._fast_config = (  # what the batch fast path may handle without the general handlers
            spec.tick,
            spec.lot,
            spec.max_qty,
            spec.price_band is None,
            spec.tifs & {_GTC, _DAY, _IOC} if _LIMIT in spec.order_types else frozenset(),
            market_kind,
            spec.tifs - {_FOK} if market_ok else frozenset(),
            spec.post_only,
        )
        # what ``_run`` reads on every call, in one load (the containers are never replaced)
        book = self.book
        self._fast_state = (book.orders, self._stops, self._top, book.bids, book.asks, self._remove, self._work, *self._fast_config)
        gtc_ok = fast_path and self._fast_config[3] and _GTC in self._fast_config[4]
        # what ``rest`` reads on every call, in one load
        self._lean_state = (book.orders, self._stops, self._top, book.bids, book.asks, spec.tick, spec.lot, spec.max_qty, gtc_ok, spec.post_only)
        # what ``take`` reads on every call: whether a plain IOC market order may skip ``submit``, and its kind
        take_ok = fast_path and self._fast_config[3] and _IOC in self._fast_config[6]
        self._take_state = (book.orders, self._stops, book.bids, book.asks, spec.lot, spec.max_qty, take_ok, market_kind)
        self._handlers = {
            NewOrder: self._new_order,
            Cancel: self._cancel,
            Modify: self._modify,
            MassCancel: self._mass_cancel,
            EndSession: self._end_session,
        }

    # ---- public API ------------------------------------------------------------------
    def submit(self, command: object) -> list:
        """Apply one command and return its events (``submit_many`` of one, one call less)."""
        out: list = []
        try:
            self._run((command,), out)
        finally:
            if out:
                self._last_seq = out[-1].seq
        return out

    def submit_many(self, commands: Iterable[object]) -> list:
        """Apply commands in order and return all their events in one list."""
        out: list = []
        try:
            self._run(commands, out)
        finally:
            if out:  # every seq drawn belongs to an event in ``out``
                self._last_seq = out[-1].seq
        return out

    def rest(
        self, order_id: int, trader: int, side: int, qty: int, price: int, smp_id: int | None = None, post_only: bool = False
    ) -> list | None:
        """Rest a GTC limit that cannot trade without building events (for batched flows that read none).

        Returns None when the order rested: the engine is then exactly as after
        ``submit(NewOrder(order_id, trader, side, qty, price, post_only=post_only,
        smp_id=smp_id))``, whose two events (``Accepted``, the level's ``BookUpdate``) took
        their ``seq`` numbers but were not built. Anything else (it would trade, a field
        the fast path would not take, ``fast_path`` off) goes through ``submit`` and its
        events are returned.
        """
        orders, stops, tops, bids, asks, tick, lot, max_qty, gtc_ok, post_ok = self._lean_state
        if side == 1:
            opp_best, own = asks.best, bids
        elif side == -1:
            opp_best, own = bids.best, asks
        else:
            own = None
        if (
            own is not None
            and gtc_ok
            and type(qty) is int
            and type(price) is int
            and type(order_id) is int
            and type(trader) is int
            and (smp_id is None or type(smp_id) is int)
            and (post_only is False or (post_only is True and post_ok))
            and 0 < qty <= max_qty
            and not qty % lot
            and 0 < price
            and not price % tick
            and (opp_best is None or (opp_best - price) * side > 0)
            and order_id not in orders
            and order_id not in stops
            and self.fast_path
        ):  # it rests whole: as ``_run``'s fast path, drawing the seqs of its Accepted and BookUpdate
            o = [order_id, trader, side, price, qty, 0, 0, smp_id, None, _GTC, post_only, 0]
            level = own.levels.get(price)
            if level is None:
                best = own.best
                level = own.add_level(price)
                if best is None or (price - best) * side > 0:
                    tops[side] = o
            nxt = self._next_seq
            nxt()
            o[TIME] = self._last_seq = nxt()  # priority stamp: the seq of the BookUpdate showing it
            level.queue.append(o)
            if qty > level.biggest:
                level.biggest = qty
            level.qty += qty
            level.count += 1
            orders[order_id] = o
            return None
        return self.submit(NewOrder(order_id, trader, side, qty, price, _LIMIT, _GTC, None, None, None, post_only, smp_id))

    def take(self, order_id: int, trader: int, side: int, qty: int, smp_id: int | None = None) -> tuple[list, int]:
        """An IOC market order without building its own two events (for batched flows that read only what it did to others).

        Returns ``(events, n)``. On the lean path the engine is then exactly as after
        ``submit(NewOrder(order_id, trader, side, qty, type=MARKET, tif=IOC, smp_id=smp_id))``,
        ``n`` is the number of events that returns, and ``events`` are those events less the
        order's own ``Accepted`` and the ``Cancelled`` of its unfilled rest (their ``seq``
        numbers drawn, the events not built): its fills, the levels' ``BookUpdate``, self-match
        cancels and refreshes, then any stops it elected, in order. Anything else (a field the
        fast path would not take, an empty opposite side, ``fast_path`` off) goes through
        ``submit``: ``(its events, their number)``.
        """
        orders, stops, bids, asks, lot, max_qty, take_ok, market_kind = self._take_state
        if side == 1:
            opp = asks
        elif side == -1:
            opp = bids
        else:
            opp = None
        if (
            opp is not None
            and take_ok
            and opp.best is not None
            and type(qty) is int
            and type(order_id) is int
            and type(trader) is int
            and (smp_id is None or type(smp_id) is int)
            and 0 < qty <= max_qty
            and not qty % lot
            and order_id not in orders
            and order_id not in stops
        ):  # as ``_run``'s fast path and ``_work``, without Accepted and the rest's Cancelled
            nxt = self._next_seq
            nxt()  # the Accepted event's
            limit = None if market_kind == _MARKET else self._market_limit(_PROTECT, side, opp.best, None)
            taker = [order_id, trader, side, limit, qty, 0, 0, smp_id, None, _IOC, False, 0]
            out: list = []
            first, last, rem, _ = self._sweep(taker, qty, limit, opp, out)
            n = len(out) + 1
            last_seq = out[-1].seq if out else 0
            if rem:  # cancelled (unfilled or self-match): one event more
                last_seq = nxt()
                n += 1
            if first is not None and (self._buy_stops or self._sell_stops):
                before = len(out)
                self._release_stops((first, last), out)  # type: ignore[arg-type]
                if len(out) > before:
                    n += len(out) - before
                    last_seq = out[-1].seq
            self._last_seq = last_seq
            return out, n
        events = self.submit(NewOrder(order_id, trader, side, qty, None, _MARKET, _IOC, None, None, None, False, smp_id))
        return events, len(events)

    def withdraw(self, order_id: int, trader: int) -> list | None:
        """Cancel a resting order without building events (for batched flows that read none).

        Returns None when the order was cancelled: the engine is then exactly as after
        ``submit(Cancel(order_id, trader))``, whose two events (``Cancelled``, the level's
        ``BookUpdate``) took their ``seq`` numbers but were not built. Otherwise (not resting,
        not the owner's, ``fast_path`` off) ``submit`` handles it and its events are returned.
        """
        o = self.book.orders.get(order_id) if type(order_id) is int else None
        if o is None or o[TRADER] != trader or type(trader) is not int or not self.fast_path:
            return self.submit(Cancel(order_id, trader))
        side, price = o[SIDE], o[PRICE]
        bs = self.book.bids if side == 1 else self.book.asks
        level = bs.levels[price]
        level.qty -= o[QTY]
        level.hidden -= o[HIDDEN]
        o[QTY] = o[HIDDEN] = 0
        del self.book.orders[order_id]
        if self._top[side] is o:
            self._top[side] = None
        level.count -= 1
        level.dead += 1
        if level.count:
            if level.dead > 32 and level.dead > level.count:
                level.compact()
        else:
            bs.remove_level(price)
        self._next_seq()  # the Cancelled event's
        self._last_seq = self._next_seq()  # the BookUpdate's
        return None

    def _run(self, commands: Iterable[object], out: list) -> None:
        """The batch loop of ``submit_many``.

        It handles the commonest commands inline: a plain limit order (rested in place
        when it does not cross; plain: no iceberg or minimum quantity, post-only only when
        it rests; a self-match id is fine), a plain market order, and a valid cancel of a resting
        order (through ``_remove``). Everything else, and anything that fails a fast check, goes to the general
        handlers, which validate from scratch; both paths emit the same events
        (``tests/test_fast_path.py`` proves it against ``fast_path=False``).
        """
        append = out.append
        handlers = self._handlers
        if not self.fast_path:
            for command in commands:
                self._dispatch(handlers, command, out)
            return
        nxt = self._next_seq
        orders, stops, tops, bids, asks, remove, work, tick, lot, max_qty, plain_ok, limit_tifs, market_kind, market_tifs, post_ok = (
            self._fast_state
        )
        for c in commands:
            t = type(c)
            if t is NewOrder:
                qty, oid, side, trader, tif, smp, post = c.qty, c.order_id, c.side, c.trader, c.tif, c.smp_id, c.post_only
                if (
                    plain_ok
                    and c.display_qty is None
                    and c.min_qty is None
                    and (smp is None or (type(smp) is int and (c.smp_mode is None or c.smp_mode in _SMP_MODES)))
                    and (not post or (post is True and post_ok))
                    and type(qty) is int
                    and type(oid) is int
                    and type(trader) is int
                    and (side == 1 or side == -1)
                    and 0 < qty <= max_qty
                    and not qty % lot
                    and oid not in orders
                    and oid not in stops
                ):
                    typ, price = c.type, c.price
                    if side == 1:
                        opp_best, own = asks.best, bids
                    else:
                        opp_best, own = bids.best, asks
                    if typ == _LIMIT:
                        if tif in limit_tifs and type(price) is int and 0 < price and not price % tick:
                            rests = tif != _IOC and (opp_best is None or (opp_best - price) * side > 0)
                            if rests or not post:  # else the general handler refuses the post-only order
                                s = nxt()
                                append(Accepted(s, oid, trader, side, price, qty, _LIMIT))
                                o = [oid, trader, side, price, qty, 0, 0, smp, c.smp_mode, tif, post is True, 0]
                                if rests:
                                    level = own.levels.get(price)
                                    if level is None:
                                        best = own.best
                                        level = own.add_level(price)
                                        if best is None or (price - best) * side > 0:
                                            tops[side] = o
                                    o[TIME] = s = nxt()  # priority stamp: the seq of the BookUpdate showing it
                                    level.queue.append(o)
                                    if qty > level.biggest:
                                        level.biggest = qty
                                    level.qty += qty
                                    level.count += 1
                                    orders[oid] = o
                                    append(BookUpdate(s, side, price, level.qty, level.count))
                                else:
                                    work(o, out)
                                continue
                    elif (
                        typ == _MARKET
                        and not post
                        and tif in market_tifs
                        and opp_best is not None
                        and c.protection is None
                        and (price is None or type(price) is int)
                    ):
                        if market_kind == _MARKET:
                            limit, tif = None, _IOC  # a plain market order never rests
                        else:
                            limit = self._market_limit(_PROTECT, side, opp_best, None)
                        append(Accepted(nxt(), oid, trader, side, limit, qty, market_kind))
                        work([oid, trader, side, limit, qty, 0, 0, smp, c.smp_mode, tif, False, 0], out)
                        continue
                self._dispatch(handlers, c, out)
            elif t is Cancel:
                oid = c.order_id
                o = orders.get(oid) if type(oid) is int else None
                if o is not None and o[TRADER] == c.trader and type(c.trader) is int:
                    remove(o, out, _USER)
                    continue
                self._dispatch(handlers, c, out)
            else:
                self._dispatch(handlers, c, out)

    def _dispatch(self, handlers: dict, command: object, out: list) -> None:
        handler = handlers.get(type(command))
        if handler is None:
            raise InvalidCommand(f"not a command: {command!r}", out)
        try:
            handler(command, out)
        except InvalidCommand as exc:
            exc.events = out
            raise

    @property
    def seq(self) -> int:
        """Sequence number of the last event emitted (0 before any)."""
        return self._last_seq

    def refuse(self, order_id: int | None, trader: int | None, reason: str) -> list:
        """Sequence the refusal of a command made outside the engine (a venue's risk check).

        Nothing else changes; the ``Rejected`` event takes the engine's next ``seq``."""
        return [self.stamp(lambda seq: Rejected(seq, order_id, trader, reason))]

    def stamp(self, make: Callable[[int], Any]) -> Any:
        """Give an event made outside the engine (a venue's) the engine's next ``seq``."""
        event = make(self._next_seq())
        self._last_seq = event.seq
        return event

    def top_order(self, side: int) -> int | None:
        """Order id of the side's TOP order, if it has one."""
        o = self._top[side]
        return o[ID] if o is not None and o[QTY] and self.book.orders.get(o[ID]) is o else None

    def stop_orders(self) -> list[NewOrder]:
        """Waiting stop orders in entry order."""
        return [c for c, _ in sorted(self._stops.values(), key=lambda e: e[1])]

    def open_qty(self, order_id: int) -> int:
        """Open quantity (displayed + hidden, or a waiting stop's size); 0 if not live."""
        o = self.book.orders.get(order_id)
        if o is not None:
            return o[QTY] + o[HIDDEN]
        stop = self._stops.get(order_id)
        return stop[0].qty if stop is not None else 0

    def state_hash(self) -> str:
        """Implementation-independent hash of the resting book (see ``OrderBook.state_hash``)."""
        return self.book.state_hash()

    def check_invariants(self) -> None:
        """Raise AssertionError if the book, TOP or stop book is inconsistent."""
        self.book.check_invariants()
        for side, o in self._top.items():
            if o is not None and o[QTY] and self.book.orders.get(o[ID]) is o:
                assert o[SIDE] == side, "TOP order on the wrong side"
                assert o[PRICE] == self.book.side(side).best, "TOP order not at the best price"
        for oid, (cmd, _) in self._stops.items():
            assert cmd.order_id == oid and oid not in self.book.orders, f"stop {oid} also rests"

    # ---- validation helpers -------------------------------------------------------------
    def _reject(self, out: list, order_id: int | None, trader: int | None, reason: str) -> None:
        out.append(Rejected(self._next_seq(), order_id, trader, reason))

    def _price_problem(self, price: int) -> str | None:
        spec = self.spec
        if price <= 0:
            return _R.BAD_PRICE
        if price % spec.tick:
            return _R.OFF_TICK
        band = spec.price_band
        if band is not None:
            ref = self.last_price if self.last_price is not None else spec.reference_price
            if ref is not None and abs(price - ref) > band * spec.tick:
                return _R.PRICE_OUT_OF_BAND
        return None

    def _qty_problem(self, qty: int) -> str | None:
        if qty <= 0:
            return _R.BAD_QUANTITY
        if qty > self.spec.max_qty:
            return _R.QUANTITY_TOO_LARGE
        if qty % self.spec.lot:
            return _R.BAD_LOT
        return None

    def _fillable(self, side: int, limit: int | None, want: int, smp: int | None, stop_at_self: bool) -> int:
        """Lots an aggressor could take at once within ``limit`` (counting stops at ``want``).

        Resting orders with the aggressor's SMP id are skipped when they would be cancelled
        (``stop_at_self`` False: CANCEL_RESTING). When meeting one would stop the aggressor
        (``stop_at_self``), FIFO counts the displayed lots queued before it and stops there;
        under pro rata, whether the same-id order receives an allocation depends on the whole
        allocation, so the order is tried on a copy of the engine (exact; rare and O(book)).
        """
        opp = self.book.asks if side == 1 else self.book.bids
        fifo = type(self.rule) is Fifo
        if smp is not None and stop_at_self and not fifo:
            return self._dry_run_fill(side, limit, want, smp)
        got = 0
        for p in sorted(opp.levels, key=lambda p: p * side):
            if got >= want or (limit is not None and (p - limit) * side > 0):
                break
            level = opp.levels[p]
            if smp is None:
                got += level.qty + level.hidden
                continue
            shown = total = 0
            for o in level.live():
                if o[SMP] == smp:
                    if stop_at_self:
                        return got + shown if fifo else got
                    continue
                shown += o[QTY]
                total += o[QTY] + o[HIDDEN]
            got += total
        return got

    def _dry_run_fill(self, side: int, limit: int | None, want: int, smp: int) -> int:
        """Lots an IOC for ``want`` with SMP id ``smp`` (mode stopping the aggressor) would
        fill now, found by running it on a deep copy of this engine."""
        counter, self._next_seq = self._next_seq, None  # type: ignore[assignment]
        try:
            trial = copy.deepcopy(self)
        finally:
            self._next_seq = counter
        trial._next_seq = count(1).__next__  # the trial's events are thrown away
        trial.fast_path = trial._fifo_inline = False
        oid = -1 - max([0, *map(abs, self.book.orders), *map(abs, self._stops)])  # an id no order has
        o = [oid, None, side, limit, want, 0, 0, smp, SmpMode.CANCEL_AGGRESSING, _IOC, False, 0]
        events: list = []
        trial._trade(o, events)
        return sum(ev.qty for ev in events if type(ev) is Fill and ev.taker_id == oid)

    # ---- commands ------------------------------------------------------------------------
    def _misuse(self, c: NewOrder) -> None:
        """Raise InvalidCommand unless every field of ``c`` has a usable type and value."""
        typ = c.type
        if type(c.order_id) is not int or type(c.trader) is not int or type(c.qty) is not int:
            raise InvalidCommand(f"order_id, trader and qty must be int: {c!r}")
        if c.side != 1 and c.side != -1:
            raise InvalidCommand(f"side must be 1 (buy) or -1 (sell): {c!r}")
        if typ not in _ORDER_TYPES or c.tif not in _TIFS:
            raise InvalidCommand(f"unknown order type or time in force: {c!r}")
        if c.smp_mode is not None and c.smp_mode not in _SMP_MODES:
            raise InvalidCommand(f"unknown smp_mode: {c!r}")
        for name in ("price", "stop_price", "display_qty", "min_qty", "smp_id", "protection"):
            value = getattr(c, name)
            if value is not None and type(value) is not int:
                raise InvalidCommand(f"{name} must be int or None: {c!r}")
        if type(c.post_only) is not bool:
            raise InvalidCommand(f"post_only must be a bool: {c!r}")
        if (typ == _LIMIT or typ == _STOP_LIMIT) and c.price is None:
            raise InvalidCommand(f"{OrderType(typ).name} order needs a price: {c!r}")
        if (typ == _STOP or typ == _STOP_LIMIT) and c.stop_price is None:
            raise InvalidCommand(f"{OrderType(typ).name} order needs a stop_price: {c!r}")
        if c.protection is not None and c.protection < 0:
            raise InvalidCommand(f"protection must be >= 0: {c!r}")

    def _unsupported(self, c: NewOrder, typ: int) -> bool:
        """Whether the instrument refuses this order type, duration or instruction mix."""
        spec, tif = self.spec, c.tif
        if typ not in spec.order_types or tif not in spec.tifs:
            return True
        if (typ == _STOP or typ == _STOP_LIMIT) and tif not in _RESTS:
            return True
        if c.display_qty is not None and (not spec.iceberg or tif not in _RESTS or typ != _LIMIT):
            return True
        if c.min_qty is not None and tif != _IOC:
            return True
        return c.post_only and (not spec.post_only or tif not in _RESTS or typ != _LIMIT)

    def _new_order(self, c: NewOrder, out: list) -> None:
        """Validate (in the documented order) and enter any new order."""
        self._misuse(c)
        spec = self.spec
        oid, trader, side, qty, typ, tif = c.order_id, c.trader, c.side, c.qty, c.type, c.tif
        if typ == _MARKET and spec.market_as_protected:
            typ = _PROTECT
            c = msgspec.structs.replace(c, type=_PROTECT)
        if self._unsupported(c, typ):
            return self._reject(out, oid, trader, _R.UNSUPPORTED)
        problem = self._qty_problem(qty)
        if problem is None and (oid in self.book.orders or oid in self._stops):
            problem = _R.DUPLICATE_ORDER_ID
        price = c.price if typ == _LIMIT or typ == _STOP_LIMIT else None
        if problem is None and price is not None:
            problem = self._price_problem(price)
        stop = typ == _STOP or typ == _STOP_LIMIT
        if problem is None and stop:
            problem = self._stop_problem(c, price)
        if problem is None:
            problem = self._size_problem(c)
        if problem is not None:
            return self._reject(out, oid, trader, problem)
        if stop:
            time = self._next_seq()
            self._stops[oid] = (c, time)
            heappush(self._buy_stops if side == 1 else self._sell_stops, (c.stop_price * side, time, oid))
            out.append(Accepted(time, oid, trader, side, price, qty, typ))
            return
        opp = self.book.asks if side == 1 else self.book.bids
        if typ == _LIMIT:
            limit = price
            if c.post_only and opp.best is not None and (opp.best - price) * side <= 0:
                return self._reject(out, oid, trader, _R.POST_ONLY_WOULD_CROSS)
        else:
            if opp.best is None:
                return self._reject(out, oid, trader, _R.NO_LIQUIDITY)
            limit = self._market_limit(typ, side, opp.best, c.protection)
            if typ == _MARKET and tif in _RESTS:
                tif = _IOC  # a plain market order never rests
        if tif == _FOK or c.min_qty is not None:
            want = qty if tif == _FOK else c.min_qty
            mode = c.smp_mode if c.smp_mode is not None else spec.default_smp_mode
            if self._fillable(side, limit, want, c.smp_id, mode != SmpMode.CANCEL_RESTING) < want:  # type: ignore[operator]
                reason = _R.FOK_NOT_FILLABLE if tif == _FOK else _R.MIN_QTY_NOT_FILLABLE
                return self._reject(out, oid, trader, reason)
        out.append(Accepted(self._next_seq(), oid, trader, side, limit, qty, typ))
        o = [oid, trader, side, limit, qty, 0, c.display_qty or 0, c.smp_id, c.smp_mode, tif, c.post_only, 0]
        self._work(o, out)

    def _stop_problem(self, c: NewOrder, price: int | None) -> str | None:
        """Refusals of a stop trigger: bad or off-tick, already elected, limit on the wrong side."""
        sp, side = c.stop_price, c.side
        problem = self._price_problem(sp)  # type: ignore[arg-type]
        if problem is not None:
            return _R.BAD_STOP_PRICE if problem == _R.BAD_PRICE else problem
        last = self.last_price
        if last is not None and (sp - last) * side <= 0:  # type: ignore[operator]
            return _R.STOP_ALREADY_TRIGGERED
        if price is not None and (price - sp) * side < 0:  # type: ignore[operator]
            return _R.BAD_STOP_PRICE
        return None

    def _size_problem(self, c: NewOrder) -> str | None:
        """Refusals of a display quantity or a minimum quantity."""
        lot, d, m = self.spec.lot, c.display_qty, c.min_qty
        if d is not None and (d <= 0 or d > c.qty or d % lot):
            return _R.BAD_DISPLAY_QTY
        if m is not None and (m <= 0 or m > c.qty or m % lot):
            return _R.BAD_MIN_QTY
        return None

    def _market_limit(self, typ: int, side: int, base: int, protection: int | None) -> int | None:
        """Working limit of a market kind: None (MARKET), base (MARKET_LIMIT), or protected."""
        if typ == _MARKET:
            return None
        if typ == _MKT_LIMIT:
            return base
        ticks = protection if protection is not None else self.spec.protection_ticks
        limit = base + side * ticks * self.spec.tick
        return limit if limit > 0 else self.spec.tick

    def _cancel(self, c: Cancel, out: list) -> None:
        oid, trader = c.order_id, c.trader
        if type(oid) is not int or type(trader) is not int:
            raise InvalidCommand(f"order_id and trader must be int: {c!r}")
        o = self.book.orders.get(oid)
        if o is None:
            stop = self._stops.get(oid)
            if stop is None:
                return self._reject(out, oid, trader, _R.UNKNOWN_ORDER)
            if stop[0].trader != trader:
                return self._reject(out, oid, trader, _R.NOT_OWNER)
            del self._stops[oid]
            out.append(Cancelled(self._next_seq(), oid, trader, stop[0].qty, _USER))
            return
        if o[TRADER] != trader:
            return self._reject(out, oid, trader, _R.NOT_OWNER)
        self._remove(o, out, _USER)

    def _remove(self, o: list, out: list, reason: str | None) -> None:
        """Take a resting order off the book; emit Cancelled (or Expired if reason is None)."""
        side, price = o[SIDE], o[PRICE]
        bs = self.book.bids if side == 1 else self.book.asks
        level = bs.levels[price]
        qty, hidden = o[QTY], o[HIDDEN]
        o[QTY] = o[HIDDEN] = 0
        del self.book.orders[o[ID]]
        if self._top[side] is o:
            self._top[side] = None
        level.qty -= qty
        level.hidden -= hidden
        level.count -= 1
        level.dead += 1
        seq = self._next_seq
        if reason is None:
            out.append(Expired(seq(), o[ID], o[TRADER], qty + hidden))
        else:
            out.append(Cancelled(seq(), o[ID], o[TRADER], qty + hidden, reason))
        if level.count:
            if level.dead > 32 and level.dead > level.count:
                level.compact()
        else:
            bs.remove_level(price)
        out.append(BookUpdate(seq(), side, price, level.qty, level.count))

    def _modify(self, c: Modify, out: list) -> None:
        oid, trader, qty, price = c.order_id, c.trader, c.qty, c.price
        if type(oid) is not int or type(trader) is not int or type(qty) is not int:
            raise InvalidCommand(f"order_id, trader and qty must be int: {c!r}")
        if price is not None and type(price) is not int:
            raise InvalidCommand(f"price must be int or None: {c!r}")
        o = self.book.orders.get(oid)
        if o is None:
            stop = self._stops.get(oid)
            reason = _R.UNKNOWN_ORDER if stop is None else (_R.NOT_OWNER if stop[0].trader != trader else _R.UNSUPPORTED)
            return self._reject(out, oid, trader, reason)
        if o[TRADER] != trader:
            return self._reject(out, oid, trader, _R.NOT_OWNER)
        problem = self._qty_problem(qty)
        if problem is not None:
            return self._reject(out, oid, trader, problem)
        side, old_price, open_qty = o[SIDE], o[PRICE], o[QTY] + o[HIDDEN]
        new_price = old_price if price is None else price
        if new_price != old_price:
            problem = self._price_problem(new_price)
            if problem is not None:
                return self._reject(out, oid, trader, problem)
        elif qty == open_qty:
            return self._reject(out, oid, trader, _R.NO_CHANGE)
        seq = self._next_seq
        bs = self.book.bids if side == 1 else self.book.asks
        if new_price == old_price and qty < open_qty:
            level = bs.levels[old_price]
            shown = o[QTY]
            if qty >= shown:
                level.hidden -= open_qty - qty
                o[HIDDEN] = qty - shown
            else:
                level.hidden -= o[HIDDEN]
                level.qty -= shown - qty
                o[QTY], o[HIDDEN] = qty, 0
            out.append(Modified(seq(), oid, trader, new_price, qty, True))
            out.append(BookUpdate(seq(), side, old_price, level.qty, level.count))
            return
        opp = self.book.asks if side == 1 else self.book.bids
        if o[POST_ONLY] and opp.best is not None and (opp.best - new_price) * side <= 0:
            return self._reject(out, oid, trader, _R.POST_ONLY_WOULD_CROSS)
        out.append(Modified(seq(), oid, trader, new_price, qty, False))
        # Cancel/replace: the old entry dies in place, a fresh entry re-enters.
        best_before = bs.best
        level = bs.levels[old_price]
        level.qty -= o[QTY]
        level.hidden -= o[HIDDEN]
        level.count -= 1
        level.dead += 1
        o[QTY] = o[HIDDEN] = 0
        del self.book.orders[oid]
        if self._top[side] is o:
            self._top[side] = None
        if not level.count:
            bs.remove_level(old_price)
        out.append(BookUpdate(seq(), side, old_price, level.qty, level.count))
        fresh = o[:]
        fresh[PRICE], fresh[QTY] = new_price, qty
        self._work(fresh, out)
        if self._top[side] is fresh and best_before is not None and (new_price - best_before) * side <= 0:
            self._top[side] = None  # re-entering its own emptied level did not better the market

    def _mass_cancel(self, c: MassCancel, out: list) -> None:
        trader = c.trader
        if type(trader) is not int:
            raise InvalidCommand(f"trader must be int: {c!r}")
        for o in [o for o in self.book.orders.values() if o[TRADER] == trader]:
            self._remove(o, out, _USER)
        for oid, (cmd, _) in sorted(self._stops.items(), key=lambda kv: kv[1][1]):
            if cmd.trader == trader:
                del self._stops[oid]
                out.append(Cancelled(self._next_seq(), oid, trader, cmd.qty, _USER))

    def _end_session(self, c: EndSession, out: list) -> None:
        for o in [o for o in self.book.orders.values() if o[TIF] == _DAY]:
            self._remove(o, out, None)
        for oid, (cmd, _) in sorted(self._stops.items(), key=lambda kv: kv[1][1]):
            if cmd.tif == _DAY:
                del self._stops[oid]
                out.append(Expired(self._next_seq(), oid, cmd.trader, cmd.qty))

    # ---- matching --------------------------------------------------------------------------
    def _work(self, o: list, out: list) -> None:
        """Match an accepted order, dispose of its remainder, then release elected stops."""
        traded = self._trade(o, out)
        if traded is not None and (self._buy_stops or self._sell_stops):
            self._release_stops(traded, out)

    def _trade(self, taker: list, out: list) -> tuple[int, int] | None:
        """Trade order ``taker`` (QTY its full size, PRICE its limit or None), then rest or
        cancel what is left. Returns its (first, last) traded price, or None if none traded."""
        side, limit, rem = taker[SIDE], taker[PRICE], taker[QTY]
        opp = self.book.asks if side == 1 else self.book.bids
        price = opp.best
        first = last = None
        smp_stop = False
        if price is not None and (limit is None or (price - limit) * side <= 0):
            first, last, rem, smp_stop = self._sweep(taker, rem, limit, opp, out)
        if rem:
            tif = taker[TIF]
            if smp_stop:
                out.append(Cancelled(self._next_seq(), taker[ID], taker[TRADER], rem, _SELF_MATCH))
            elif (tif != _GTC and tif != _DAY) or limit is None:
                out.append(Cancelled(self._next_seq(), taker[ID], taker[TRADER], rem, _UNFILLED))
            else:
                self._rest(taker, rem, out)
        return None if first is None else (first, last)  # type: ignore[return-value]

    def _sweep(
        self, taker: list, rem: int, limit: int | None, opp: BookSide, out: list
    ) -> tuple[int | None, int | None, int, bool]:
        """Trade ``rem`` lots of ``taker`` level by level against ``opp`` up to ``limit``.

        Returns (first traded price, last traded price, untraded lots, whether self-match
        prevention stopped the taker).
        """
        side = taker[SIDE]
        tid, ttrader = taker[ID], taker[TRADER]
        levels = opp.levels
        allocate = self.rule.allocate
        seq = self._next_seq
        orders = self.book.orders
        top_side = -side
        tops = self._top
        fifo = self._fifo_inline
        smp, smp_mode = taker[SMP], taker[SMP_MODE]
        if smp is not None and smp_mode is None:
            smp_mode = self.spec.default_smp_mode
        smp_stop = False
        first = last = None
        price = opp.best
        while price is not None and (limit is None or (price - limit) * side <= 0):
            level = levels[price]
            traded = touched = False
            if fifo:
                # Price-time priority walked in place: equal to Fifo.allocate rounds (an
                # exhausted iceberg's fresh slice joins the back and is reached in turn).
                queue = level.queue
                while rem and queue:
                    m = queue[0]
                    q = m[QTY]
                    if not q:
                        queue.popleft()
                        level.dead -= 1
                        continue
                    if smp is not None and m[SMP] == smp:
                        if smp_mode == SmpMode.CANCEL_RESTING:
                            queue.popleft()
                            level.dead -= 1
                            self._self_match_cancel(m, level, out)
                            touched = True
                            continue
                        maker = m
                        smp_stop = True
                        break
                    traded = touched = True
                    if q > rem:
                        out.append(Fill(seq(), price, rem, side, m[ID], tid, m[TRADER], ttrader))
                        m[QTY] = q - rem
                        level.qty -= rem
                        rem = 0
                        break
                    out.append(Fill(seq(), price, q, side, m[ID], tid, m[TRADER], ttrader))
                    rem -= q
                    level.qty -= q
                    queue.popleft()
                    hidden = m[HIDDEN]
                    m[QTY] = m[HIDDEN] = 0
                    if tops[top_side] is m:
                        tops[top_side] = None
                    if hidden:
                        self._refresh(m, hidden, level, out)
                    else:
                        level.count -= 1
                        del orders[m[ID]]
                if smp_stop and smp_mode == SmpMode.CANCEL_BOTH:
                    self._self_match_cancel(maker, level, out)
                    touched = True
            while not fifo and rem and level.count:
                top = self._top[top_side]
                if top is not None and top[PRICE] != price:
                    top = None
                allocs = allocate(level, rem, top)
                maker = None
                if smp is not None:
                    conflict = next((i for i, (m, _) in enumerate(allocs) if m[SMP] == smp), None)
                    if conflict is not None:
                        # the allocations listed before the self-match execute first
                        maker = allocs[conflict][0]
                        allocs = allocs[:conflict]
                        smp_stop = smp_mode != SmpMode.CANCEL_RESTING
                if allocs:
                    traded = touched = True
                for m, q in allocs:
                    out.append(Fill(seq(), price, q, side, m[ID], tid, m[TRADER], ttrader))
                    rem -= q
                    shown = m[QTY]
                    if q < shown:
                        m[QTY] = shown - q
                        level.qty -= q
                        continue
                    hidden = m[HIDDEN] - (q - shown)
                    level.qty -= shown
                    level.hidden -= q - shown
                    m[QTY] = m[HIDDEN] = 0
                    level.dead += 1
                    if self._top[top_side] is m:
                        self._top[top_side] = None
                    if hidden:
                        self._refresh(m, hidden, level, out)
                    else:
                        level.count -= 1
                        del orders[m[ID]]
                if maker is not None and smp_mode != SmpMode.CANCEL_AGGRESSING:
                    self._self_match_cancel(maker, level, out)
                    touched = True
                if smp_stop:
                    break
                queue = level.queue
                while queue and not queue[0][QTY]:
                    queue.popleft()
                    level.dead -= 1
            if traded:
                last = price
                if first is None:
                    first = price
            if touched:
                out.append(BookUpdate(seq(), -side, price, level.qty, level.count))
            if not level.count:
                opp.remove_level(price)
            if smp_stop or not rem:
                break
            price = opp.best
        if last is not None:
            self.last_price = last
        return first, last, rem, smp_stop


    def _rest(self, o: list, rem: int, out: list) -> None:
        side, price = o[SIDE], o[PRICE]
        bs = self.book.bids if side == 1 else self.book.asks
        level = bs.levels.get(price)
        if level is None:
            best = bs.best
            level = bs.add_level(price)
            if best is None or (price - best) * side > 0:
                self._top[side] = o
        display = o[DISPLAY]
        if display and rem > display:
            o[QTY], o[HIDDEN] = display, rem - display
            level.hidden += rem - display
        else:
            o[QTY] = rem
        o[TIME] = s = self._next_seq()
        level.queue.append(o)
        if o[QTY] > level.biggest:
            level.biggest = o[QTY]
        level.qty += o[QTY]
        level.count += 1
        self.book.orders[o[ID]] = o
        out.append(BookUpdate(s, side, price, level.qty, level.count))

    def _refresh(self, o: list, hidden: int, level: Level, out: list) -> None:
        """Show an exhausted iceberg's next slice of its ``hidden`` lots at the back of the queue.

        The old entry (already dead) stays where it was; a fresh entry with a new priority
        stamp takes the order's id."""
        s = o[DISPLAY] if hidden > o[DISPLAY] else hidden
        fresh = o[:]
        fresh[QTY], fresh[HIDDEN], fresh[TIME] = s, hidden - s, self._next_seq()
        level.queue.append(fresh)
        if s > level.biggest:
            level.biggest = s
        level.qty += s
        level.hidden -= s
        self.book.orders[o[ID]] = fresh
        out.append(Refreshed(fresh[TIME], o[ID], o[TRADER], s))

    def _self_match_cancel(self, o: list, level: Level, out: list) -> None:
        """Cancel a resting order for self-match prevention, inside a level being matched."""
        qty, hidden = o[QTY], o[HIDDEN]
        o[QTY] = o[HIDDEN] = 0
        level.qty -= qty
        level.hidden -= hidden
        level.count -= 1
        level.dead += 1
        del self.book.orders[o[ID]]
        if self._top[o[SIDE]] is o:
            self._top[o[SIDE]] = None
        out.append(Cancelled(self._next_seq(), o[ID], o[TRADER], qty + hidden, _SELF_MATCH))

    # ---- stops ----------------------------------------------------------------------------------
    def _elect(self, traded: tuple[int, int], pending: deque) -> None:
        """Move every stop elected by trades between the prices ``traded`` to ``pending``,
        in entry order."""
        lo, hi = min(traded), max(traded)
        elected: list[tuple[int, NewOrder]] = []
        stops = self._stops
        for heap, bound in ((self._buy_stops, hi), (self._sell_stops, -lo)):  # type: ignore[operator]
            while heap and heap[0][0] <= bound:
                _, time, oid = heappop(heap)
                entry = stops.get(oid)
                if entry is not None and entry[1] == time:
                    del stops[oid]
                    elected.append((time, entry[0]))
        elected.sort(key=lambda e: e[0])
        pending.extend(c for _, c in elected)

    def _release_stops(self, traded: tuple[int, int], out: list) -> None:
        pending: deque[NewOrder] = deque()
        self._elect(traded, pending)
        while pending:
            c = pending.popleft()
            sp = c.stop_price
            out.append(Triggered(self._next_seq(), c.order_id, c.trader, sp))  # type: ignore[arg-type]
            if c.type == _STOP_LIMIT:
                limit = c.price
            else:
                limit = self._market_limit(_PROTECT, c.side, sp, c.protection)  # type: ignore[arg-type]
            o = [c.order_id, c.trader, c.side, limit, c.qty, 0, 0, c.smp_id, c.smp_mode, c.tif, False, 0]
            rng = self._trade(o, out)
            if rng is not None:
                self._elect(rng, pending)

"""Property-based tests of the matching engine; ``exchange/engine.py``'s docstring is the contract.

Three independent views of every command, checked after each one:

* ``Ledger`` derives everything from the engine's *events* (plus each order's static display
  size and SMP id from its command): per order the accepted, modified, filled, cancelled and
  expired lots; the L2 feed (from ``BookUpdate``); each resting order's shown and hidden lots
  and its queue place. It checks each event against what came before (a fill at the best
  price, never worse than the taker's limit, never between equal SMP ids, FIFO head first,
  a level's fills equal to its shown drop plus hidden consumed) and, after the command,
  agrees with ``open_qty``, ``book.l2()`` and ``book.l3()``: submitted = filled + resting +
  cancelled + expired, per order and in total.
* ``RefBook`` is the obvious slow implementation: a plain list per price, linear scans, no
  lazy deletion, no caches, one round at a time from ``exchange/rules.py``'s docstring. It
  predicts every event of an accepted command (matching, TOP, pro rata, self-match
  prevention, icebergs, stops) and must agree event for event; for a refused command, the
  reason must be one the contract allows; its book must hash to ``state_hash()``.
* The engine's own ``check_invariants()`` (never crossed at rest, totals, queue order, TOP),
  and twin engines printing the very same events: one with ``fast_path=False``, one fed
  the commands in ``submit_many`` batches.

``ExchangeMachine`` drives them with hypothesis over several instruments. Plain ``@given``
properties prove FIFO fills equal to a ten-line model, each rule's allocation equal to the
reference allocation, and API misuse harmless.

Runs are derandomized and database-less, so CI is reproducible. For fuzzing (nightly, or
after changing the engine): ``EXCHANGE_PROPERTY_SCALE=20`` multiplies the examples,
``EXCHANGE_PROPERTY_STEPS=200`` lengthens the stateful runs and ``EXCHANGE_PROPERTY_RANDOM=1``
draws fresh examples each run.

Every engine bug these properties found is kept at the end as a regression test with its
shrunk command stream; one still open is marked ``xfail(strict=True)`` until it is fixed.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections import deque
from dataclasses import dataclass

import msgspec
import pytest
from helpers import snapshot
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from exchange import (
    Accepted,
    BookUpdate,
    Cancel,
    Cancelled,
    CancelReason,
    EndSession,
    Expired,
    Fifo,
    Fill,
    InstrumentSpec,
    InvalidCommand,
    MassCancel,
    MatchingEngine,
    Modified,
    Modify,
    NewOrder,
    OrderType,
    ProRata,
    Refreshed,
    Rejected,
    RejectReason,
    SmpMode,
    Split,
    TimeInForce,
    Triggered,
    cme,
    nyse,
)
from exchange.book import HIDDEN, ID, QTY

R = RejectReason
LIMIT, MARKET, PROTECT, MKT_LIMIT, STOP, STOP_LIMIT = OrderType
GTC, DAY, IOC, FOK = TimeInForce
RESTS = (GTC, DAY)
MARKETS = (MARKET, PROTECT, MKT_LIMIT)
STOPS = (STOP, STOP_LIMIT)
USER, UNFILLED, SELF_MATCH = CancelReason.USER, CancelReason.UNFILLED, CancelReason.SELF_MATCH

_SCALE = float(os.environ.get("EXCHANGE_PROPERTY_SCALE", "1"))


def _settings(examples: int, **kw: object) -> settings:
    return settings(
        max_examples=max(1, int(examples * _SCALE)),
        derandomize=not os.environ.get("EXCHANGE_PROPERTY_RANDOM"),
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        **kw,
    )


SPECS = {
    "nyse": nyse(),  # FIFO, limit/market, post-only, icebergs, SMP default CANCEL_AGGRESSING
    "cme": cme(),  # pro rata A (TOP), tick 25, protected markets, stops, SMP CANCEL_RESTING
    "pro-rata-C": cme(tick=1, rule=ProRata(top=False)),
    "split-K": cme(tick=1, rule=Split(fifo_pct=40), price_band=4, reference_price=100),
    "fifo-all-types": InstrumentSpec("ALL"),  # FIFO with every order type and instruction
    "lots-band-limits": InstrumentSpec(  # FIFO with lots of 2, a size cap, a band, protected markets
        "LOT", lot=2, max_qty=24, price_band=5, reference_price=100, protection_ticks=2,
        market_as_protected=True, default_smp_mode=SmpMode.CANCEL_BOTH,
    ),
}


def strip(events: list) -> list:
    """Events without their ``seq`` (predictions carry seq 0)."""
    return [msgspec.structs.replace(e, seq=0) for e in events]


def _better(side: int, a: int, b: int) -> bool:
    """Price ``a`` is better than ``b`` for ``side``."""
    return (a - b) * side > 0


def _within(side: int, price: int, limit: int | None) -> bool:
    """An aggressor of ``side`` with ``limit`` (None: market) may trade at ``price``."""
    return limit is None or (price - limit) * side <= 0


# ---- the reference allocation of one round, written from exchange/rules.py's docstring ----------
def ref_allocate(rule: object, level: list, qty: int, top: object | None) -> list[tuple[object, int]]:
    """One round of ``rule``: ``level`` is the live orders (``.disp``, ``.hidden``) in time
    priority, ``top`` the side's TOP order if it is at this level. Returns ``[(order, lots)]``."""
    if isinstance(rule, Fifo):
        out = []
        for o in level:
            if not qty:
                break
            q = min(o.disp, qty)
            out.append((o, q))
            qty -= q
        return out
    assert isinstance(rule, (ProRata, Split)), rule
    if qty >= sum(o.disp + o.hidden for o in level):  # FIFO exception: the whole level, hidden too
        return [(o, o.disp + o.hidden) for o in level]
    lots = {id(o): 0 for o in level}
    room = {id(o): o.disp for o in level}
    left = qty

    def give(o: object, n: int) -> None:
        nonlocal left
        n = min(n, room[id(o)], left)
        lots[id(o)] += n
        room[id(o)] -= n
        left -= n

    def fifo(n: int) -> None:
        for o in level:
            take = min(room[id(o)], n)
            give(o, take)
            n -= take

    if not rule.top or top not in level:
        top = None
    if top is not None:
        give(top, top.disp)
    if isinstance(rule, Split):
        fifo(left * rule.fifo_pct // 100)
    others = [o for o in level if o is not top and room[id(o)] > 0]
    total = sum(room[id(o)] for o in others)
    if total and left:
        shares = [(o, min(room[id(o)] * left // total, room[id(o)])) for o in others]
        for o, share in shares:
            if share >= rule.min_alloc:
                give(o, share)
    fifo(left)
    ordered = ([top] if top is not None else []) + [o for o in level if o is not top]
    return [(o, lots[id(o)]) for o in ordered if lots[id(o)]]


# ---- RefBook: the obvious slow engine --------------------------------------------------------
@dataclass(eq=False)
class ROrder:
    """An order in the reference book. ``qty`` is its open quantity (shown + hidden at rest)."""

    oid: int
    trader: int
    side: int
    qty: int
    limit: int | None
    tif: int
    display: int = 0
    smp: int | None = None
    mode: int | None = None
    post_only: bool = False
    disp: int = 0
    hidden: int = 0
    traded: int = 0  # lots this order took as aggressor
    command: NewOrder | None = None  # a stop's command
    entry: int = 0  # a stop's entry number


class RefBook:
    """Plain lists per price and linear scans; predicts the events of each command."""

    def __init__(self, spec: InstrumentSpec) -> None:
        self.spec, self.rule = spec, spec.rule
        self.levels: dict[int, dict[int, list[ROrder]]] = {1: {}, -1: {}}
        self.live: dict[int, ROrder] = {}  # resting orders
        self.top: dict[int, ROrder | None] = {1: None, -1: None}
        self.stops: dict[int, ROrder] = {}
        self.entries = 0
        self.last_price: int | None = None

    # -- views
    def best(self, side: int) -> int | None:
        prices = self.levels[side]
        if not prices:
            return None
        return max(prices) if side == 1 else min(prices)

    def owner(self, oid: int) -> int | None:
        o = self.live.get(oid) or self.stops.get(oid)
        return None if o is None else o.trader

    def update(self, side: int, price: int) -> BookUpdate:
        level = self.levels[side].get(price, [])
        if not level:
            self.levels[side].pop(price, None)
        return BookUpdate(0, side, price, sum(o.disp for o in level), len(level))

    def state_hash(self) -> str:
        """The documented canonical text of ``OrderBook.state_hash``, from this book."""
        h = hashlib.sha256()
        for side in (1, -1):
            for price in sorted(self.levels[side], key=lambda p: -side * p):
                for o in self.levels[side][price]:
                    h.update(f"{side},{price},{o.oid},{o.trader},{o.disp},{o.hidden}\n".encode())
        return h.hexdigest()

    def check(self, eng: MatchingEngine) -> None:
        """The engine's book, TOP, stop book and last price equal this one's."""
        bids, asks = eng.book.l3()
        for side, engine_side in ((1, bids), (-1, asks)):
            mine = [
                (o.oid, o.trader, p, o.disp, o.hidden)
                for p in sorted(self.levels[side], key=lambda p: -side * p)
                for o in self.levels[side][p]
            ]
            theirs = [(o["order_id"], o["trader"], o["price"], o["qty"], o["hidden"]) for o in engine_side]
            assert theirs == mine, f"side {side}: engine book {theirs} != reference {mine}"
            top = self.top[side]
            assert eng.top_order(side) == (top.oid if top is not None else None), f"TOP of side {side}"
        mine_stops = [s.oid for s in sorted(self.stops.values(), key=lambda s: s.entry)]
        assert [c.order_id for c in eng.stop_orders()] == mine_stops, "stop book"
        assert eng.last_price == self.last_price, "last trade price"
        assert eng.state_hash() == self.state_hash(), "state_hash() differs from its documented text"

    # -- validation
    def price_problem(self, price: int) -> str | None:
        spec = self.spec
        if price <= 0:
            return R.BAD_PRICE
        if price % spec.tick:
            return R.OFF_TICK
        ref = self.last_price if self.last_price is not None else spec.reference_price
        if spec.price_band is not None and ref is not None and abs(price - ref) > spec.price_band * spec.tick:
            return R.PRICE_OUT_OF_BAND
        return None

    def qty_problem(self, qty: int) -> str | None:
        if qty <= 0:
            return R.BAD_QUANTITY
        if qty > self.spec.max_qty:
            return R.QUANTITY_TOO_LARGE
        return R.BAD_LOT if qty % self.spec.lot else None

    def market_limit(self, typ: int, side: int, base: int, protection: int | None) -> int | None:
        if typ == MARKET:
            return None
        if typ == MKT_LIMIT:
            return base
        ticks = protection if protection is not None else self.spec.protection_ticks
        limit = base + side * ticks * self.spec.tick
        return limit if limit > 0 else self.spec.tick

    def mode(self, c: NewOrder) -> int | None:
        if c.smp_id is None:
            return None
        return c.smp_mode if c.smp_mode is not None else self.spec.default_smp_mode

    def refusals(self, c: NewOrder) -> list[str]:
        """Every market rule ``c`` breaks, in the contract's order (empty: it must be accepted)."""
        spec = self.spec
        typ = PROTECT if c.type == MARKET and spec.market_as_protected else c.type
        rests = c.tif in RESTS
        out: list[str] = []
        if (
            typ not in spec.order_types
            or c.tif not in spec.tifs
            or (typ in STOPS and not rests)
            or (c.display_qty is not None and (not spec.iceberg or not rests or typ != LIMIT))
            or (c.min_qty is not None and c.tif != IOC)
            or (c.post_only and (not spec.post_only or not rests or typ != LIMIT))
        ):
            out.append(R.UNSUPPORTED)
        if self.qty_problem(c.qty):
            out.append(self.qty_problem(c.qty))
        if c.order_id in self.live or c.order_id in self.stops:
            out.append(R.DUPLICATE_ORDER_ID)
        if typ in (LIMIT, STOP_LIMIT) and self.price_problem(c.price):
            out.append(self.price_problem(c.price))
        if typ in STOPS:
            sp = c.stop_price
            problem = self.price_problem(sp)
            if problem:
                out.append(R.BAD_STOP_PRICE if problem == R.BAD_PRICE else problem)
            if self.last_price is not None and (sp - self.last_price) * c.side <= 0:
                out.append(R.STOP_ALREADY_TRIGGERED)
            if typ == STOP_LIMIT and (c.price - sp) * c.side < 0:
                out.append(R.BAD_STOP_PRICE)
        d, m = c.display_qty, c.min_qty
        if d is not None and (d <= 0 or d > c.qty or d % spec.lot):
            out.append(R.BAD_DISPLAY_QTY)
        if m is not None and (m <= 0 or m > c.qty or m % spec.lot):
            out.append(R.BAD_MIN_QTY)
        opp = self.best(-c.side)
        if typ in MARKETS and opp is None:
            out.append(R.NO_LIQUIDITY)
        if c.post_only and typ == LIMIT and opp is not None and _within(c.side, opp, c.price):
            out.append(R.POST_ONLY_WOULD_CROSS)
        if (c.tif == FOK or m is not None) and typ not in STOPS and not out:
            limit = c.price if typ == LIMIT else self.market_limit(typ, c.side, opp, c.protection)  # type: ignore[arg-type]
            traded = self.dry_run(c, limit)
            if c.tif == FOK and traded < c.qty:
                out.append(R.FOK_NOT_FILLABLE)
            if m is not None and c.tif != FOK and traded < m:
                out.append(R.MIN_QTY_NOT_FILLABLE)
        return out

    def dry_run(self, c: NewOrder, limit: int | None) -> int:
        """Lots ``c`` would trade at once (matching on a copy of the book, stops aside)."""
        sim = copy.copy(self)
        sim.levels, sim.live, sim.top = copy.deepcopy((self.levels, self.live, self.top))
        o = ROrder(c.order_id, c.trader, c.side, c.qty, limit, IOC, smp=c.smp_id, mode=self.mode(c))
        sim.execute(o, [])
        return o.traded

    # -- commands
    def predict(self, cmd: object, actual: list) -> list:
        """The events ``cmd`` must produce (seq 0). ``actual`` is consulted only for the reason
        of a refusal (checked against the allowed ones) and for the order in which a mass
        cancel or session end visits orders (not part of the contract; checked as a set)."""
        if isinstance(cmd, NewOrder):
            return self.new_order(cmd, actual)
        if isinstance(cmd, Cancel):
            return self.cancel(cmd)
        if isinstance(cmd, Modify):
            return self.modify(cmd, actual)
        if isinstance(cmd, MassCancel):
            return self.sweep(actual, lambda o: o.trader == cmd.trader, Cancelled)
        assert isinstance(cmd, EndSession)
        return self.sweep(actual, lambda o: o.tif == DAY, Expired)

    def refused(self, c: object, reasons: list[str], actual: list) -> list:
        """A refusal is due, for the first broken rule of a new order (the contract orders
        them), for any broken rule of a modify (it gives no order)."""
        first = actual[0]
        assert reasons, f"{c!r} refused ({first.reason}); the contract accepts it"
        due = reasons if isinstance(c, Modify) else reasons[:1]
        assert first.reason in due, f"{c!r} refused as {first.reason}; due: {due} (broken: {reasons})"
        return [Rejected(0, c.order_id, c.trader, first.reason)]  # type: ignore[attr-defined]

    def new_order(self, c: NewOrder, actual: list) -> list:
        reasons = self.refusals(c)
        if isinstance(actual[0], Rejected):
            return self.refused(c, reasons, actual)
        assert not reasons, f"{c!r} accepted; the contract refuses it: {reasons}"
        typ = PROTECT if c.type == MARKET and self.spec.market_as_protected else c.type
        if typ in STOPS:
            self.entries += 1
            self.stops[c.order_id] = ROrder(
                c.order_id, c.trader, c.side, c.qty, None, c.tif, command=c, entry=self.entries
            )
            return [Accepted(0, c.order_id, c.trader, c.side, c.price if typ == STOP_LIMIT else None, c.qty, typ)]
        tif = IOC if typ == MARKET and c.tif in RESTS else c.tif
        limit = c.price if typ == LIMIT else self.market_limit(typ, c.side, self.best(-c.side), c.protection)  # type: ignore[arg-type]
        out: list = [Accepted(0, c.order_id, c.trader, c.side, limit, c.qty, typ)]
        o = ROrder(c.order_id, c.trader, c.side, c.qty, limit, tif, c.display_qty or 0, c.smp_id, self.mode(c), c.post_only)
        self.work(o, out)
        return out

    def cancel(self, c: Cancel) -> list:
        owner = self.owner(c.order_id)
        if owner is None or owner != c.trader:
            return [Rejected(0, c.order_id, c.trader, R.UNKNOWN_ORDER if owner is None else R.NOT_OWNER)]
        out: list = []
        self.remove(c.order_id, Cancelled, out)
        return out

    def modify(self, c: Modify, actual: list) -> list:
        o = self.live.get(c.order_id)
        new_price = kept = None
        if o is None:
            s = self.stops.get(c.order_id)
            reasons = [R.UNKNOWN_ORDER if s is None else R.NOT_OWNER if s.trader != c.trader else R.UNSUPPORTED]
        elif o.trader != c.trader:
            reasons = [R.NOT_OWNER]
        else:
            reasons = [r for r in (self.qty_problem(c.qty),) if r]
            new_price = o.limit if c.price is None else c.price
            if new_price != o.limit:
                if self.price_problem(new_price):
                    reasons.append(self.price_problem(new_price))
            elif c.qty == o.qty:
                reasons.append(R.NO_CHANGE)
            kept = new_price == o.limit and c.qty < o.qty
            opp = self.best(-o.side)
            if not kept and o.post_only and opp is not None and _within(o.side, opp, new_price):
                reasons.append(R.POST_ONLY_WOULD_CROSS)
        if isinstance(actual[0], Rejected):
            return self.refused(c, reasons, actual)
        assert not reasons and o is not None, f"{c!r} accepted; the contract refuses it: {reasons}"
        if kept:  # a smaller quantity at the same price keeps time priority (and TOP)
            if c.qty >= o.disp:
                o.hidden = c.qty - o.disp
            else:
                o.disp, o.hidden = c.qty, 0
            o.qty = c.qty
            return [Modified(0, o.oid, o.trader, o.limit, c.qty, True), self.update(o.side, o.limit)]
        out: list = [Modified(0, o.oid, o.trader, new_price, c.qty, False)]
        best_before = self.best(o.side)
        self.unrest(o)
        out.append(self.update(o.side, o.limit))
        o.limit, o.qty, o.disp, o.hidden, o.traded = new_price, c.qty, 0, 0, 0
        self.work(o, out)
        if self.top[o.side] is o and not _better(o.side, new_price, best_before):  # type: ignore[arg-type]
            self.top[o.side] = None  # re-entering where the side's best was (or worse) betters nothing
        return out

    def sweep(self, actual: list, chosen: object, kind: type) -> list:
        """MassCancel / EndSession: every chosen resting and stop order, each with its event."""
        expected = sorted(o.oid for o in [*self.live.values(), *self.stops.values()] if chosen(o))  # type: ignore[operator]
        visited = [e.order_id for e in actual if isinstance(e, kind)]
        assert sorted(visited) == expected, f"{kind.__name__} visited {visited}, expected {expected}"
        out: list = []
        for oid in visited:
            self.remove(oid, kind, out)
        return out

    def remove(self, oid: int, kind: type, out: list) -> None:
        """A user cancel (``kind`` Cancelled) or expiry (Expired) of a resting or stop order."""
        o = self.live.get(oid)
        if o is None:
            s = self.stops.pop(oid)
            out.append(Cancelled(0, oid, s.trader, s.qty, USER) if kind is Cancelled else Expired(0, oid, s.trader, s.qty))
            return
        self.unrest(o)
        out.append(Cancelled(0, oid, o.trader, o.qty, USER) if kind is Cancelled else Expired(0, oid, o.trader, o.qty))
        out.append(self.update(o.side, o.limit))  # type: ignore[arg-type]

    def unrest(self, o: ROrder) -> None:
        """Take a resting order off its level (the level stays, maybe empty, until ``update``)."""
        self.levels[o.side][o.limit].remove(o)  # type: ignore[index]
        del self.live[o.oid]
        if self.top[o.side] is o:
            self.top[o.side] = None

    # -- matching
    def work(self, o: ROrder, out: list) -> None:
        """Match ``o``, then release the stops its trades elect, in entry order, each in full."""
        traded = self.execute(o, out)
        pending: deque[ROrder] = deque(self.elect(*traded) if traded else ())
        while pending:
            s = pending.popleft()
            c = s.command
            assert c is not None
            out.append(Triggered(0, s.oid, s.trader, c.stop_price))
            limit = c.price if c.type == STOP_LIMIT else self.market_limit(PROTECT, c.side, c.stop_price, c.protection)  # type: ignore[arg-type]
            w = ROrder(s.oid, s.trader, s.side, c.qty, limit, c.tif, 0, c.smp_id, self.mode(c))
            traded = self.execute(w, out)
            if traded:
                pending.extend(self.elect(*traded))

    def elect(self, hi: int, lo: int) -> list[ROrder]:
        chosen = [
            s for s in self.stops.values()
            if (s.side == 1 and s.command.stop_price <= hi) or (s.side == -1 and s.command.stop_price >= lo)  # type: ignore[union-attr]
        ]
        for s in chosen:
            del self.stops[s.oid]
        return sorted(chosen, key=lambda s: s.entry)

    def execute(self, o: ROrder, out: list) -> tuple[int, int] | None:
        """Trade ``o`` level by level, then rest or cancel the rest. Returns the (highest,
        lowest) price it traded at, or None."""
        prices: list[int] = []
        smp_stop = False
        while o.qty:
            price = self.best(-o.side)
            if price is None or not _within(o.side, price, o.limit):
                break
            traded, smp_stop = self.match_level(o, price, out)
            if traded:
                prices.append(price)
                self.last_price = price
            if smp_stop:
                break
        if o.qty:
            if smp_stop:
                out.append(Cancelled(0, o.oid, o.trader, o.qty, SELF_MATCH))
                o.qty = 0
            elif o.tif not in RESTS or o.limit is None:
                out.append(Cancelled(0, o.oid, o.trader, o.qty, UNFILLED))
                o.qty = 0
            else:
                self.rest(o, out)
        return (max(prices), min(prices)) if prices else None

    def match_level(self, o: ROrder, price: int, out: list) -> tuple[bool, bool]:
        """Rounds at one level until ``o`` or the level is done. Self-match prevention: the
        allocations listed before the first one pairing ``o`` with its own SMP id execute, in
        allocation order; then CANCEL_RESTING cancels that resting order and allocates the
        level again, CANCEL_AGGRESSING stops ``o``, CANCEL_BOTH does both. The level's
        BookUpdate follows if anything traded or was cancelled there."""
        level = self.levels[-o.side][price]
        traded = smp_stop = changed = False
        while o.qty and level:
            top = self.top[-o.side]
            allocs = ref_allocate(self.rule, level, o.qty, top if top in level else None)
            maker = None
            if o.smp is not None:
                conflict = next((i for i, (m, _) in enumerate(allocs) if m.smp == o.smp), None)
                if conflict is not None:
                    maker = allocs[conflict][0]
                    allocs, smp_stop = allocs[:conflict], o.mode != SmpMode.CANCEL_RESTING
            for m, q in allocs:
                traded = changed = True
                out.append(Fill(0, price, q, o.side, m.oid, o.oid, m.trader, o.trader))
                o.qty -= q
                o.traded += q
                m.qty -= q
                if q < m.disp:
                    m.disp -= q
                    continue
                m.hidden -= q - m.disp
                m.disp = 0
                level.remove(m)
                if self.top[m.side] is m:
                    self.top[m.side] = None
                if m.hidden:  # an iceberg's next slice goes to the back of the queue
                    m.disp = min(m.display, m.hidden)
                    m.hidden -= m.disp
                    level.append(m)
                    out.append(Refreshed(0, m.oid, m.trader, m.disp))
                else:
                    del self.live[m.oid]
            if maker is not None and o.mode != SmpMode.CANCEL_AGGRESSING:
                self.self_match_cancel(maker, out)
                changed = True
            if smp_stop:
                break
        if changed:
            out.append(self.update(-o.side, price))
        return traded, smp_stop

    def self_match_cancel(self, m: ROrder, out: list) -> None:
        self.unrest(m)
        out.append(Cancelled(0, m.oid, m.trader, m.qty, SELF_MATCH))

    def rest(self, o: ROrder, out: list) -> None:
        side, price = o.side, o.limit
        assert price is not None
        best = self.best(side)
        if best is None or _better(side, price, best):  # it betters its side: TOP
            self.top[side] = o
        if o.display and o.qty > o.display:
            o.disp, o.hidden = o.display, o.qty - o.display
        else:
            o.disp, o.hidden = o.qty, 0
        self.levels[side].setdefault(price, []).append(o)
        self.live[o.oid] = o
        out.append(self.update(side, price))


# ---- Ledger: accounting and market data from the engine's events alone -----------------------
@dataclass(eq=False)
class Account:
    """One order (one use of its id), as its events tell it."""

    oid: int
    trader: int
    side: int
    smp: int | None
    display: int
    command: NewOrder
    accepted: int
    limit: int | None
    state: str  # "stop", "working", "resting" or "done"
    modified: int = 0  # net lots added by Modified events
    filled: int = 0
    cancelled: int = 0
    expired: int = 0
    taker_filled: int = 0
    disp: int = 0
    hidden: int = 0

    @property
    def open(self) -> int:
        return self.accepted + self.modified - self.filled - self.cancelled - self.expired


class Ledger:
    """Derives per-order lots, the L2 feed and the L3 queues from events, checking each event."""

    def __init__(self, spec: InstrumentSpec) -> None:
        self.spec = spec
        self.fifo = isinstance(spec.rule, Fifo)
        self.seq = 0
        self.by_id: dict[int, Account] = {}  # latest use of each order id
        self.accounts: list[Account] = []
        self.feed: dict[tuple[int, int], tuple[int, int]] = {}  # (side, price) -> (shown, count)
        self.queues: dict[tuple[int, int], list[Account]] = {}

    def best(self, side: int) -> int | None:
        prices = [p for s, p in self.feed if s == side]
        return (max(prices) if side == 1 else min(prices)) if prices else None

    def working_limit(self, a: Account) -> int | None:
        c = a.command
        if c.type == STOP_LIMIT:
            return c.price
        ticks = c.protection if c.protection is not None else self.spec.protection_ticks
        limit = c.stop_price + c.side * ticks * self.spec.tick  # type: ignore[operator]
        return limit if limit > 0 else self.spec.tick

    def apply(self, cmd: object, events: list) -> None:
        working: Account | None = None  # the order now matching
        update_for: tuple[int, int] | None = None  # a BookUpdate of this level must come next
        refresh: Account | None = None  # an exhausted iceberg whose Refreshed must come next
        segment: dict | None = None  # the level the working order is trading against
        smp_stop_next = False  # the working order stopped by SMP: its Cancelled must come next
        assert events or isinstance(cmd, (MassCancel, EndSession)), f"{cmd!r} produced no event"
        for e in events:
            assert e.seq == self.seq + 1, f"seq jumps from {self.seq} to {e.seq}"
            self.seq = e.seq
            t = type(e)
            assert update_for is None or t is BookUpdate, f"{e} instead of the BookUpdate of {update_for}"
            assert refresh is None or t is Refreshed, f"{e} instead of Refreshed({refresh.oid})"
            assert not smp_stop_next or (t is Cancelled and e.order_id == working.oid and e.reason == SELF_MATCH), (  # type: ignore[union-attr]
                f"{e}: the aggressor stopped with lots left at a live level without a self-match cancel"
            )
            smp_stop_next = False
            if t is Rejected:
                assert len(events) == 1, f"a refusal comes alone: {events}"
                assert e.order_id == getattr(cmd, "order_id", None) and e.trader == getattr(cmd, "trader", None)
            elif t is Accepted:
                assert isinstance(cmd, NewOrder) and e.order_id == cmd.order_id, f"{e} for {cmd!r}"
                assert (e.trader, e.side, e.qty) == (cmd.trader, cmd.side, cmd.qty), f"{e} for {cmd!r}"
                prev = self.by_id.get(e.order_id)
                assert prev is None or prev.state == "done", f"order id {e.order_id} accepted while live"
                stop = e.type in STOPS
                a = Account(
                    e.order_id, e.trader, e.side, cmd.smp_id, cmd.display_qty or 0, cmd, e.qty, e.price,
                    "stop" if stop else "working",
                )
                self.by_id[e.order_id] = a
                self.accounts.append(a)
                if not stop:
                    working = a
            elif t is Triggered:
                assert working is None or working.open == 0, f"{e} while order {working.oid} still works"  # type: ignore[union-attr]
                if working is not None:
                    working.state = "done"
                a = self.by_id[e.order_id]
                assert a.state == "stop" and e.stop_price == a.command.stop_price, f"{e} for {a}"
                a.state, a.limit, working = "working", self.working_limit(a), a
            elif t is Fill:
                taker, maker = self.by_id[e.taker_id], self.by_id[e.maker_id]
                assert taker is working, f"{e}: the taker is not the order now matching"
                assert maker.state == "resting" and maker is not taker, f"{e}: maker {maker.oid} is not resting"
                assert e.aggressor == taker.side == -maker.side, f"{e}: sides"
                assert (e.maker_trader, e.taker_trader) == (maker.trader, taker.trader), f"{e}: traders"
                assert e.price == maker.limit, f"{e}: not at the maker's price {maker.limit}"
                assert e.price == self.best(maker.side), f"{e}: not at the best price {self.best(maker.side)}"
                assert _within(taker.side, e.price, taker.limit), f"{e}: worse than the taker's limit {taker.limit}"
                assert maker.smp is None or maker.smp != taker.smp, f"{e}: self-trade (smp id {maker.smp})"
                assert 0 < e.qty <= min(taker.open, maker.disp + maker.hidden), f"{e}: quantity"
                key = (maker.side, e.price)
                queue = self.queues[key]
                if self.fifo:
                    assert queue[0] is maker, f"{e}: FIFO must fill order {queue[0].oid} first"
                    assert e.qty == min(taker.open, maker.disp), f"{e}: FIFO fills min(left, shown)"
                if segment is None or segment["key"] != key:
                    segment = self.open_segment(key)
                segment["lots"] += e.qty
                maker.filled += e.qty
                taker.filled += e.qty
                taker.taker_filled += e.qty
                if e.qty < maker.disp:
                    maker.disp -= e.qty
                else:
                    maker.hidden -= e.qty - maker.disp
                    maker.disp = 0
                    queue.remove(maker)
                    if maker.hidden:
                        refresh = maker
                    else:
                        maker.state = "done"
            elif t is Refreshed:
                a, refresh = refresh, None
                assert e.order_id == a.oid and e.qty == min(a.display, a.hidden), f"{e} for {a}"  # type: ignore[union-attr]
                a.disp, a.hidden = e.qty, a.hidden - e.qty  # type: ignore[union-attr]
                self.queues[(a.side, a.limit)].append(a)  # type: ignore[union-attr, index]
            elif t in (Cancelled, Expired):
                a = self.by_id[e.order_id]
                assert e.trader == a.trader and e.qty == a.open > 0, f"{e}: open lots are {a.open}"
                if t is Cancelled:
                    a.cancelled += e.qty
                else:
                    a.expired += e.qty
                if a is working:
                    assert t is Cancelled and e.reason in (UNFILLED, SELF_MATCH), f"{e}: the aggressor's rest"
                    if e.reason == UNFILLED:
                        self.check_exhausted(a)
                    a.state, working = "done", None
                elif a.state == "resting":
                    key = (a.side, a.limit)
                    if t is Cancelled and e.reason == SELF_MATCH:
                        assert working is not None and a.smp == working.smp, f"{e}: no aggressor with smp id {a.smp}"
                        assert key == (-working.side, self.best(a.side)), f"{e}: not at the level being traded"
                        if segment is None or segment["key"] != key:
                            segment = self.open_segment(key)
                        segment["lots"] += e.qty
                    else:
                        want = (Cancel, MassCancel) if t is Cancelled else (EndSession,)
                        assert isinstance(cmd, want) and (t is Expired or e.reason == USER), f"{e} for {cmd!r}"
                        update_for = key  # type: ignore[assignment]
                    self.queues[key].remove(a)  # type: ignore[index]
                    a.state, a.disp, a.hidden = "done", 0, 0
                else:
                    assert a.state == "stop" and (t is Expired or e.reason == USER), f"{e} for {a}"
                    a.state = "done"
            elif t is Modified:
                a = self.by_id[e.order_id]
                assert isinstance(cmd, Modify) and e.order_id == cmd.order_id and a.state == "resting", f"{e}"
                was = a.open
                a.modified += e.qty - was
                update_for = (a.side, a.limit)  # type: ignore[assignment]
                if e.priority_kept:
                    assert e.price == a.limit and e.qty < was, f"{e}: priority kept only by a reduction"
                    if e.qty >= a.disp:
                        a.hidden = e.qty - a.disp
                    else:
                        a.disp, a.hidden = e.qty, 0
                else:
                    self.queues[update_for].remove(a)
                    a.state, a.disp, a.hidden, a.limit, working = "working", 0, 0, e.price, a
            elif t is BookUpdate:
                key = (e.side, e.price)
                queue = self.queues.setdefault(key, [])
                if update_for is not None:
                    assert key == update_for, f"{e}: expected the BookUpdate of {update_for}"
                    update_for = None
                elif working is not None and e.side == -working.side:
                    assert e.price == self.best(e.side), f"{e}: the aggressor skipped the best level"
                    if segment is None or segment["key"] != key:
                        segment = self.open_segment(key)
                    shown_drop = self.feed.get(key, (0, 0))[0] - e.qty
                    hidden_used = segment["hidden"] - sum(a.hidden for a in queue)
                    assert segment["lots"] == shown_drop + hidden_used, (
                        f"{e}: the level gave {segment['lots']} lots but its shown qty fell {shown_drop}"
                        f" and its hidden {hidden_used}"
                    )
                    segment = None
                    smp_stop_next = working.open > 0 and e.count > 0
                elif working is not None and e.side == working.side and e.price == working.limit and working.open:
                    self.check_exhausted(working)
                    working.state = "resting"
                    if working.display and working.open > working.display:
                        working.disp, working.hidden = working.display, working.open - working.display
                    else:
                        working.disp, working.hidden = working.open, 0
                    queue.append(working)
                    working = None
                else:
                    raise AssertionError(f"{e}: no reason for this BookUpdate")
                shown, count = sum(a.disp for a in queue), len(queue)
                assert (e.qty, e.count) == (shown, count), f"{e}: the level holds {shown} lots in {count} orders"
                if count:
                    self.feed[key] = (e.qty, e.count)
                else:
                    self.feed.pop(key, None)
                    del self.queues[key]
            else:
                raise AssertionError(f"unknown event {e!r}")
        assert update_for is None and refresh is None and not smp_stop_next, f"{cmd!r}: events ended early"
        assert working is None or working.open == 0, f"{cmd!r}: order {working.oid} neither rested nor ended"
        if working is not None:
            working.state = "done"
        if isinstance(cmd, NewOrder) and not isinstance(events[0], Rejected):
            a = self.by_id[cmd.order_id]
            if cmd.post_only:
                assert a.taker_filled == 0, f"{cmd!r}: a post-only order took liquidity"
            if cmd.tif == FOK:
                assert a.taker_filled == a.accepted, f"{cmd!r}: a FOK order filled {a.taker_filled}"
            if cmd.min_qty is not None:
                assert a.taker_filled >= cmd.min_qty, f"{cmd!r}: filled {a.taker_filled} < min_qty"

    def open_segment(self, key: tuple[int, int]) -> dict:
        return {"key": key, "lots": 0, "hidden": sum(a.hidden for a in self.queues.get(key, []))}

    def check_exhausted(self, a: Account) -> None:
        """An aggressor that rests or is cancelled unfilled has nothing left to trade with."""
        opp = self.best(-a.side)
        assert opp is None or not _within(a.side, opp, a.limit), (
            f"order {a.oid} stopped with {a.open} lots although {opp} is within its limit {a.limit}"
        )

    def check(self, eng: MatchingEngine) -> None:
        """Lots are conserved and the engine's book is what the events say."""
        totals = [0, 0]
        for a in self.accounts:
            assert a.open >= 0, f"order {a.oid}: negative open {a.open}"
            if a.state == "done":
                assert a.open == 0, f"order {a.oid}: {a.open} lots left on a finished order"
            if a.state == "resting":
                assert a.open == a.disp + a.hidden > 0, f"order {a.oid}: open {a.open} != shown + hidden"
            if a.state == "stop":
                assert a.open == a.accepted, f"stop {a.oid}"
            if self.by_id[a.oid] is a:
                assert eng.open_qty(a.oid) == a.open, f"order {a.oid}: open_qty {eng.open_qty(a.oid)} != {a.open}"
            totals[0] += a.accepted + a.modified
            totals[1] += a.filled + a.open + a.cancelled + a.expired
        assert totals[0] == totals[1], f"submitted {totals[0]} != filled + open + cancelled + expired {totals[1]}"
        bids, asks = eng.book.l2()
        for side, levels in ((1, bids), (-1, asks)):
            feed = sorted(((p, q, n) for (s, p), (q, n) in self.feed.items() if s == side), key=lambda x: -side * x[0])
            assert levels == feed, f"side {side}: book {levels} != BookUpdate feed {feed}"
        l3 = eng.book.l3()
        for side, orders in ((1, l3[0]), (-1, l3[1])):
            mine = [
                (a.oid, a.disp, a.hidden)
                for (s, p) in sorted((k for k in self.queues if k[0] == side), key=lambda k: -side * k[1])
                for a in self.queues[(s, p)]
            ]
            assert [(o["order_id"], o["qty"], o["hidden"]) for o in orders] == mine, f"side {side}: queues"


# ---- the stateful machine -------------------------------------------------------------------------
BAND = (95, 105)  # prices in ticks: narrow, so orders cross and sweep often
ticks = st.integers(*BAND)
sides = st.sampled_from((1, -1))
traders = st.integers(1, 3)
smp_ids = st.sampled_from((None, None, 1, 2))
smp_modes = st.sampled_from((None, SmpMode.CANCEL_RESTING, SmpMode.CANCEL_AGGRESSING, SmpMode.CANCEL_BOTH))
protections = st.sampled_from((None, None, 0, 1, 3))
FLAVOURS = (
    "limit", "limit", "limit", "ioc", "fok", "post_only", "iceberg",
    "market", "protect", "market_limit", "stop", "stop_limit", "wild",
)


@st.composite
def recipes(draw: st.DrawFn) -> dict:
    """An order's fields with prices in ticks (``NewOrder`` is built once the tick is known)."""
    flavour = draw(st.sampled_from(FLAVOURS))
    qty = draw(st.integers(1, 12))
    r = dict(
        trader=draw(traders), side=draw(sides), qty=qty, price=draw(ticks), type=LIMIT, tif=GTC,
        smp_id=draw(smp_ids), smp_mode=draw(smp_modes), stop_price=None,
    )
    rests = st.sampled_from(RESTS)
    if flavour == "limit":
        r["tif"] = draw(rests)
    elif flavour == "ioc":
        r.update(tif=IOC, min_qty=draw(st.none() | st.integers(1, qty)))
    elif flavour == "fok":
        r.update(tif=FOK, type=draw(st.sampled_from((LIMIT, MARKET))))
    elif flavour == "post_only":
        r.update(tif=draw(rests), post_only=True)
    elif flavour == "iceberg":
        r.update(tif=draw(rests), qty=draw(st.integers(2, 30)), display_qty=draw(st.integers(1, 5)))
    elif flavour in ("market", "protect", "market_limit"):
        typ = {"market": MARKET, "protect": PROTECT, "market_limit": MKT_LIMIT}[flavour]
        r.update(type=typ, tif=draw(st.sampled_from((IOC, GTC, DAY, FOK))), protection=draw(protections))
        if r["tif"] == IOC:
            r["min_qty"] = draw(st.none() | st.integers(1, qty))
    elif flavour in ("stop", "stop_limit"):  # trigger and limit in ticks beyond the last trade
        r.update(type=STOP if flavour == "stop" else STOP_LIMIT, tif=draw(rests), protection=draw(protections),
                 stop_price=("beyond last", draw(st.integers(-1, 4))), price=("beyond stop", draw(st.integers(-1, 2))))
    else:  # anything goes, most of it refused
        r.update(
            type=draw(st.sampled_from(list(OrderType))), tif=draw(st.sampled_from(list(TimeInForce))),
            qty=draw(st.integers(-1, 14)), stop_price=draw(ticks), protection=draw(protections),
            display_qty=draw(st.none() | st.integers(0, 13)), min_qty=draw(st.none() | st.integers(0, 13)),
            post_only=draw(st.booleans()),
        )
    r["nudge"] = draw(st.sampled_from((0,) * 12 + (1, "negative")))  # off tick / non-positive price
    r["in_lots"] = flavour != "wild"
    return r


class ExchangeMachine(RuleBasedStateMachine):
    """Random commands against one engine, each checked by the three views. Two twins get the
    same commands and must print the same events: one with ``fast_path=False`` (general
    handlers only), one fed in ``submit_many`` batches (``flush_batch``)."""

    spec: InstrumentSpec = SPECS["nyse"]

    def __init__(self) -> None:
        super().__init__()
        self.engine = MatchingEngine(self.spec)
        self.general = MatchingEngine(self.spec, fast_path=False)  # general handlers only
        self.batched = MatchingEngine(self.spec)  # gets the same commands in submit_many batches
        self.batch: list = []
        self.batch_events: list = []
        self.ref = RefBook(self.spec)
        self.ledger = Ledger(self.spec)
        self.next_id = 1
        self.used: list[int] = []

    # -- helpers
    def price(self, t: int) -> int:
        return t * self.spec.tick

    def live_ids(self, stops: bool = True) -> list[int]:
        return sorted([*self.ref.live, *self.ref.stops] if stops else self.ref.live)

    def pick(self, ids: list[int], n: int) -> int | None:
        return ids[n % len(ids)] if ids else None

    def step(self, cmd: object) -> None:
        note(repr(cmd))
        before = snapshot(self.engine), {i: self.engine.open_qty(i) for i in self.used}
        events = self.engine.submit(cmd)
        assert self.general.submit(cmd) == events, f"{cmd!r}: the fast path and the general handlers differ"
        self.batch.append(cmd)
        self.batch_events += events
        self.ledger.apply(cmd, events)
        if events and isinstance(events[0], Rejected):
            book, open_qty = before
            after = snapshot(self.engine), {i: self.engine.open_qty(i) for i in self.used}
            assert after == (book[:-1] + (book[-1] + 1,), open_qty), f"{cmd!r} was refused but changed something"
        predicted = self.ref.predict(cmd, events)
        if strip(events) != predicted:
            lines = [f"  engine {a!r}\n  ref    {b!r}" for a, b in zip(strip(events), predicted) if a != b][:3]
            raise AssertionError(
                f"{cmd!r}: engine and reference differ\n" + "\n".join(lines)
                + f"\nengine: {strip(events)}\nref:    {predicted}"
            )
        self.engine.check_invariants()
        self.ledger.check(self.engine)
        self.ref.check(self.engine)

    @rule()
    def flush_batch(self) -> None:
        """The commands since the last flush, as one ``submit_many`` batch, print the same events."""
        assert self.batched.submit_many(self.batch) == self.batch_events, f"batch {self.batch} differs"
        self.batch, self.batch_events = [], []

    def teardown(self) -> None:
        self.flush_batch()

    def fresh_id(self) -> int:
        oid, self.next_id = self.next_id, self.next_id + 1
        self.used.append(oid)
        return oid

    # -- rules
    @rule(
        side=sides, depth=st.integers(0, 6), qty=st.integers(1, 12), trader=traders, day=st.booleans(), smp=smp_ids,
        display=st.sampled_from((None, None, None, 1, 2, 3)),
    )
    def limit_order(self, side: int, depth: int, qty: int, trader: int, day: bool, smp: int | None, display: int | None) -> None:
        """A GTC or DAY limit order (some icebergs), bids from 101 down, asks from 99 up: it
        keeps the book full (and crosses now and then)."""
        price, lot = self.price(100 + side - side * depth), self.spec.lot
        if display is not None:
            display, qty = min(display, qty) * lot, (qty + 2 * display) * lot
        else:
            qty *= lot
        self.step(NewOrder(self.fresh_id(), trader, side, qty, price, tif=DAY if day else GTC, smp_id=smp, display_qty=display))

    @rule(r=recipes(), ident=st.sampled_from(("fresh",) * 12 + ("dead", "live")), n=st.integers(0, 255))
    def new_order(self, r: dict, ident: str, n: int) -> None:
        """Any order type and instruction, sometimes reusing a finished or a live order id."""
        r = dict(r)
        oid = None
        if ident == "live":
            oid = self.pick(self.live_ids(), n)
        elif ident == "dead":
            oid = self.pick([i for i in self.used if self.engine.open_qty(i) == 0], n)
        if oid is None:
            oid = self.fresh_id()
        nudge = r.pop("nudge")
        if r.pop("in_lots"):  # quantities count lots
            for field in ("qty", "display_qty", "min_qty"):
                if r.get(field) is not None:
                    r[field] *= self.spec.lot
        if isinstance(r["stop_price"], tuple):
            last = self.ref.last_price // self.spec.tick if self.ref.last_price is not None else 100
            r["stop_price"] = last + r["side"] * r["stop_price"][1]
            r["price"] = r["stop_price"] + r["side"] * r["price"][1]
        for field in ("price", "stop_price"):
            if r.get(field) is not None:
                r[field] = self.price(r[field]) if nudge == 0 else (
                    self.price(r[field]) + 1 if nudge == 1 else -self.price(r[field])
                )
        self.step(NewOrder(order_id=oid, **r))

    @precondition(lambda self: self.ref.live or self.ref.stops)
    @rule(
        kind=st.sampled_from(
            ("live", "live", "live", "resting", "dead", "unknown", "wrong_trader", "mass_cancel", "end_session")
        ),
        n=st.integers(0, 255),
    )
    def cancel(self, kind: str, n: int) -> None:
        if kind == "mass_cancel":
            self.step(MassCancel(n % 3 + 1))
            return
        if kind == "end_session":
            self.step(EndSession())
            return
        if kind in ("live", "wrong_trader", "resting"):
            oid = self.pick(self.live_ids(stops=kind != "resting"), n)
        elif kind == "dead":
            oid = self.pick([i for i in self.used if self.engine.open_qty(i) == 0], n)
        else:
            oid = None
        if oid is None:
            oid = 10_000 + n
        owner = self.ref.owner(oid)
        trader = owner if owner is not None else 1
        if kind == "wrong_trader":
            trader = trader % 3 + 1
        self.step(Cancel(oid, trader))

    @precondition(lambda self: self.ref.live or self.ref.stops)
    @rule(
        kind=st.sampled_from(
            ("reduce", "reduce", "increase", "reprice", "cross", "cross", "same", "stop", "unknown", "wrong_trader", "bad")
        ),
        n=st.integers(0, 255),
        amount=st.integers(1, 6),
        t=ticks,
    )
    def modify(self, kind: str, n: int, amount: int, t: int) -> None:
        oid = self.pick(sorted(self.ref.stops) if kind == "stop" else self.live_ids(stops=False), n)
        if oid is None or kind == "unknown":
            self.step(Modify(20_000 + n, 1, amount))
            return
        o = self.ref.live.get(oid) or self.ref.stops[oid]
        qty, price, trader = o.qty, None, o.trader
        if kind == "reduce":
            qty = max(1, o.qty - amount)
        elif kind == "increase":
            qty = o.qty + amount
        elif kind == "reprice":
            price = self.price(t)
        elif kind == "cross":
            opp = self.ref.best(-o.side)
            price = self.price(t) if opp is None else opp + o.side * (amount - 1) * self.spec.tick
        elif kind == "same":
            price = o.limit if amount % 2 else None
        elif kind == "wrong_trader":
            trader = trader % 3 + 1
            qty = max(1, qty - 1)
        elif kind == "bad":
            qty, price = (0, None) if amount < 3 else (-amount, None) if amount < 5 else (qty, self.price(t) + 1)
        self.step(Modify(oid, trader, qty, price))


def _machine(name: str) -> type:
    machine = type(f"Machine_{name}", (ExchangeMachine,), {"spec": SPECS[name]})
    case = machine.TestCase
    case.settings = _settings(100, stateful_step_count=int(os.environ.get("EXCHANGE_PROPERTY_STEPS", "50")))
    return case


TestNyse = _machine("nyse")
TestCme = _machine("cme")
TestProRataC = _machine("pro-rata-C")
TestSplitK = _machine("split-K")
TestFifoAllTypes = _machine("fifo-all-types")
TestLotsBandLimits = _machine("lots-band-limits")


# ---- FIFO: the engine equals a ten-line model ------------------------------------------------------
fifo_ops = st.lists(
    st.tuples(
        st.sampled_from(("limit", "limit", "limit", "ioc", "market", "cancel")), sides, ticks, st.integers(1, 12),
        st.integers(0, 255),
    ),
    max_size=60,
)


@_settings(200)
@given(ops=fifo_ops)
def test_fifo_fills_equal_the_obvious_model(ops: list) -> None:
    """Limit, IOC, market and cancel streams under FIFO: the engine's fills (maker, lots,
    price, in order) and final book equal a list sorted by price then time."""
    eng = MatchingEngine(nyse())
    model: list[list[int]] = []  # [side, price, time, order id, lots]
    for time, (kind, side, price, qty, n) in enumerate(ops, 1):
        if kind == "cancel":
            if model:
                victim = model.pop(n % len(model))
                assert [type(e) for e in eng.submit(Cancel(victim[3], victim[3]))] == [Cancelled, BookUpdate]
            continue
        typ, tif = (MARKET, IOC) if kind == "market" else (LIMIT, IOC if kind == "ioc" else GTC)
        limit = None if typ == MARKET else price
        expected = []
        for m in sorted((m for m in model if m[0] == -side), key=lambda m: (m[1] * side, m[2])):
            if not qty or not _within(side, m[1], limit):
                break
            q = min(qty, m[4])
            expected.append((m[3], q, m[1]))
            m[4] -= q
            qty -= q
        model = [m for m in model if m[4]]
        events = eng.submit(NewOrder(time, time, side, ops[time - 1][3], limit, type=typ, tif=tif))
        if typ == MARKET and not expected and not [m for m in model if m[0] == -side]:
            assert [e.reason for e in events] == [R.NO_LIQUIDITY]
            continue
        assert [(e.maker_id, e.qty, e.price) for e in events if isinstance(e, Fill)] == expected
        if qty and tif == GTC:
            model.append([side, price, time, time, qty])
    bids, asks = eng.book.l3()
    book = sorted(model, key=lambda m: (-m[0], m[1] * -m[0], m[2]))
    assert [(o["order_id"], o["price"], o["qty"]) for o in bids + asks] == [(m[3], m[1], m[4]) for m in book]


# ---- each rule's allocation equals the reference allocation ------------------------------------------
RULES = [
    Fifo(), ProRata(), ProRata(top=False), ProRata(min_alloc=1), ProRata(min_alloc=4),
    Split(), Split(fifo_pct=0), Split(fifo_pct=100), Split(fifo_pct=25, top=False, min_alloc=3),
]


@dataclass(eq=False)
class _View:
    """An engine order list seen as ``ref_allocate`` expects."""

    o: list

    @property
    def disp(self) -> int:
        return self.o[QTY]

    @property
    def hidden(self) -> int:
        return self.o[HIDDEN]


@_settings(300)
@given(
    rule=st.sampled_from(RULES),
    orders=st.lists(st.tuples(st.integers(1, 12), st.integers(0, 10), st.booleans()), min_size=1, max_size=8),
    qty=st.integers(1, 90),
    top=st.booleans(),
)
def test_allocation_equals_reference(rule: object, orders: list, qty: int, top: bool) -> None:
    """One round: lots positive, each at most the order's shown qty (all of it, hidden too,
    under the FIFO exception), summing to min(qty, shown) or the whole level; TOP first, the
    rest in time priority; equal to ``ref_allocate``; the level untouched."""
    eng = MatchingEngine(InstrumentSpec("LEVEL"))  # builds the level, dead entries and TOP included
    oid, doomed = 0, []
    for shown, hidden, dead_before in orders:
        if dead_before:  # an entry cancelled below stays in the queue, dead (lazy deletion)
            oid += 1
            eng.submit(NewOrder(oid, 0, -1, 1, 100))
            doomed.append(oid)
        oid += 1
        eng.submit(NewOrder(oid, oid, -1, shown + hidden, 100, display_qty=shown if hidden else None))
    for d in doomed:
        eng.submit(Cancel(d, 0))
    level = eng.book.asks.levels[100]
    live = [o for o in level.queue if o[QTY]]
    the_top = eng.book.orders[eng.top_order(-1)] if top and eng.top_order(-1) is not None else None
    before = copy.deepcopy(list(level.queue))
    got = rule.allocate(level, qty, the_top)  # type: ignore[attr-defined]
    assert list(level.queue) == before, "allocate changed the level"
    views = {id(o): _View(o) for o in live}
    want = ref_allocate(rule, list(views.values()), qty, views[id(the_top)] if the_top else None)
    assert [(o[ID], q) for o, q in got] == [(v.o[ID], q) for v, q in want]
    total = level.qty + level.hidden
    exception = not isinstance(rule, Fifo) and qty >= total
    assert sum(q for _, q in got) == (total if exception else min(qty, level.qty))
    assert len({id(o) for o, _ in got}) == len(got) and all(q > 0 for _, q in got)


# ---- misuse of the API raises and changes nothing ------------------------------------------------------
def _seeded(spec: InstrumentSpec) -> MatchingEngine:
    eng = MatchingEngine(spec)
    t, lot = spec.tick, spec.lot
    for oid, side, price in ((1, -1, 101), (2, -1, 102), (3, 1, 99), (4, 1, 98)):
        eng.submit(NewOrder(oid, oid, side, 4 * lot, price * t))
    eng.submit(NewOrder(5, 5, 1, 2 * lot, 101 * t))  # a trade: last price 101
    return eng


MISUSE = {
    "not a command": lambda t: {"order_id": 1},
    "float order id": lambda t: NewOrder(50.0, 1, 1, 5, 100 * t),  # type: ignore[arg-type]
    "bool order id": lambda t: NewOrder(True, 1, 1, 5, 100 * t),  # type: ignore[arg-type]
    "str trader": lambda t: NewOrder(50, "1", 1, 5, 100 * t),  # type: ignore[arg-type]
    "float qty": lambda t: NewOrder(50, 1, 1, 5.0, 100 * t),  # type: ignore[arg-type]
    "float price": lambda t: NewOrder(50, 1, 1, 5, 100.0 * t),  # type: ignore[arg-type]
    "side 0": lambda t: NewOrder(50, 1, 0, 5, 100 * t),
    "side 2": lambda t: NewOrder(50, 1, 2, 5, 100 * t),
    "unknown type": lambda t: NewOrder(50, 1, 1, 5, 100 * t, type=9),  # type: ignore[arg-type]
    "unknown tif": lambda t: NewOrder(50, 1, 1, 5, 100 * t, tif=9),  # type: ignore[arg-type]
    "limit without price": lambda t: NewOrder(50, 1, 1, 5),
    "stop-limit without price": lambda t: NewOrder(50, 1, 1, 5, type=STOP_LIMIT, stop_price=103 * t),
    "stop without trigger": lambda t: NewOrder(50, 1, 1, 5, type=STOP),
    "stop without trigger, zero qty": lambda t: NewOrder(50, 1, 1, 0, type=STOP),
    "stop with a float trigger": lambda t: NewOrder(50, 1, 1, 5, type=STOP, stop_price=103.0 * t),  # type: ignore[arg-type]
    "cancel: float order id": lambda t: Cancel(1.0, 1),  # type: ignore[arg-type]
    "cancel: bool order id": lambda t: Cancel(True, 1),  # type: ignore[arg-type]
    "cancel: str trader": lambda t: Cancel(1, "1"),  # type: ignore[arg-type]
    "modify: float qty": lambda t: Modify(1, 1, 4.0),  # type: ignore[arg-type]
    "modify: float price": lambda t: Modify(1, 1, 5, 100.0 * t),  # type: ignore[arg-type]
    "modify: float order id": lambda t: Modify(1.0, 1, 4),  # type: ignore[arg-type]
    "mass cancel: str trader": lambda t: MassCancel("1"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("kind", list(MISUSE))
def test_misuse_raises_and_changes_nothing(spec: str, kind: str) -> None:
    """The contract's API misuse raises InvalidCommand before anything, seq included, changes;
    also inside a batch, where the events of the commands before it stand."""
    eng = _seeded(SPECS[spec])
    before = snapshot(eng)
    bad = MISUSE[kind](SPECS[spec].tick)
    variants = [bad]
    if isinstance(bad, NewOrder):  # misuse comes first, before the market rules also broken
        variants += [msgspec.structs.replace(bad, qty=0)] if type(bad.qty) is int else []
        variants += [msgspec.structs.replace(bad, order_id=1)] if type(bad.order_id) is int else []
    for cmd in variants:
        with pytest.raises(InvalidCommand):
            eng.submit(cmd)
        assert snapshot(eng) == before, cmd
    ok = NewOrder(60, 1, 1, SPECS[spec].lot, 97 * SPECS[spec].tick)
    with pytest.raises(InvalidCommand) as info:
        eng.submit_many([ok, MISUSE[kind](SPECS[spec].tick)])
    assert [type(e) for e in info.value.events] == [Accepted, BookUpdate]
    assert eng.seq == before[-1] + 2


# ---- regressions: shrunk failures of the properties above --------------------------------------------
def test_regression_fok_ignores_a_same_smp_order_fifo_never_reaches() -> None:
    """Was refused as FOK_NOT_FILLABLE: any order of the aggressor's SMP id in a level counted
    as a conflict, though FIFO fills the 5 lots from order 1 and never meets order 2."""
    eng = MatchingEngine(nyse())  # default mode: cancel aggressing
    eng.submit_many([NewOrder(1, 1, -1, 5, 100), NewOrder(2, 2, -1, 3, 100, smp_id=7)])
    events = eng.submit(NewOrder(3, 3, 1, 5, 100, tif=FOK, smp_id=7))
    assert [(e.maker_id, e.qty) for e in events if isinstance(e, Fill)] == [(1, 5)]


@pytest.mark.parametrize(("tif", "min_qty"), [(FOK, None), (IOC, 5)], ids=["fok", "ioc_min_qty"])
def test_regression_pro_rata_fok_fillable_without_the_same_smp_order(tif: int, min_qty: int | None) -> None:
    """Was refused: under pro rata a same-SMP order at the level made the whole level count
    for nothing, though TOP alone fills the order."""
    eng = MatchingEngine(InstrumentSpec("T", rule=ProRata()))
    eng.submit_many([NewOrder(1, 1, -1, 10, 100), NewOrder(2, 2, -1, 5, 100, smp_id=7)])
    events = eng.submit(NewOrder(3, 3, 1, 5, 100, tif=tif, min_qty=min_qty, smp_id=7, smp_mode=SmpMode.CANCEL_AGGRESSING))
    assert [(e.maker_id, e.qty) for e in events if isinstance(e, Fill)] == [(1, 5)]


def test_regression_unsupported_instruction_is_the_first_refusal() -> None:
    """Was BAD_QUANTITY: post-only (not a Globex instruction) was checked after the quantity."""
    eng = MatchingEngine(cme(tick=1))
    assert [e.reason for e in eng.submit(NewOrder(1, 1, -1, 0, 100, post_only=True))] == [R.UNSUPPORTED]


def test_regression_fast_path_cancel_refuses_an_id_that_is_no_int() -> None:
    """Was cancelled: the batch fast path looked ``Cancel(1.0, 1)`` up in the order dict,
    where 1.0 == 1 (the general handler raised)."""
    eng = MatchingEngine(nyse())
    eng.submit(NewOrder(1, 1, -1, 5, 100))
    for bad in (Cancel(1.0, 1), Cancel(True, 1)):  # type: ignore[arg-type]
        with pytest.raises(InvalidCommand):
            eng.submit(bad)
    assert eng.open_qty(1) == 5

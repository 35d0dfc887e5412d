"""Simulator agents on the live exchange: wire messages <-> ``exchange`` records, sans I/O.

A scripted trader from ``agents/`` (any ``exchange.sim.Agent``) is written against the
simulator's ``Context``: ``submit(symbol, command)`` with an order id it picked from
``next_order_id()``, ``wake_in(ns)``, ``now``, ``rng``, and ``on_events`` callbacks with
``exchange.events`` records. This module gives it the same API over the wire protocol, so
the agent's code, its ``BookView`` and its ``OrderTracker`` run unchanged:

- ``OrderWire`` translates both ways for one trader. Outgoing: an ``exchange.commands``
  record becomes the wire request (``live.protocol``); the agent's own order id travels as
  ``client_id`` and every request carries a fresh ``req``. Incoming: the private messages
  (``accepted``, ``fill``, ``cancelled``...) become the ``exchange.events`` record the
  simulator would have delivered, with the agent's order id in place of the venue's (the
  venue assigns its own ids; the map is learnt from ``accepted``). A gateway ``error``
  answering a request (unknown order, rate limited...) becomes the ``Rejected`` event the
  engine would have sent, so an ``OrderTracker`` never waits forever. A cancel or modify
  of an order the venue has not acknowledged yet is held back until it is.
  ``OrderWire.accounts`` mirrors the trader's account from its own fills with the same
  ``exchange.accounts`` code the venue runs (what ``ctx.account`` returns).
- ``feed_events`` turns public market data into ``BookUpdate`` and ``Fill`` records (one per
  level change / trade; the ``Fill`` of a public trade names no trader: ``UNKNOWN_TRADER``).
  ``snapshot_events`` turns a re-snapshot into the level changes from the book the agent
  saw to the new one, so an agent's view stays exact across a gap or a reconnect.
- ``LiveContext`` is the agent's ``Context``: the shell (``live.bots``) passes it the clock,
  a timer function and a send function.

Differences from the simulator an agent may notice (documented in
``docs/BOT_INTEGRATION_GUIDE.md``): ``ctx.book(symbol)`` is the L2 book rebuilt from the
feed (``LiveBook``: best prices, ``l1``, ``l2``; no order-level ``l3`` and no other traders'
order ids); private and public messages come on two connections, so their relative order
is not guaranteed (an own execution is delivered once, as the private ``Fill``, and its
public print dropped by ``OwnPrints``, except when the print arrives first: then both are);
``ctx.now`` is nanoseconds since the bot started (agent configs written for simulated time
starting at 0 keep their meaning).
"""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from collections.abc import Callable, Iterable

from exchange import events as E
from exchange.accounts import Account, Accounts, FeeSchedule, Position
from exchange.commands import Cancel, MassCancel, Modify, NewOrder
from exchange.enums import OrderType, RejectReason, SmpMode
from exchange.instrument import PRESETS, InstrumentSpec
from exchange.sim import Agent
from live import protocol as P
from live.marketdata import L2Book

UNKNOWN_TRADER = -1  # the trader of the other side of a fill as a client sees it (never a real id)

_SMP_NAMES = {int(m): m.name.lower() for m in SmpMode}
_ERROR_REASON = {P.ErrorCode.UNKNOWN_ORDER: RejectReason.UNKNOWN_ORDER, P.ErrorCode.NOT_OWNER: RejectReason.NOT_OWNER}


# ---- instruments --------------------------------------------------------------------------------
def spec_from_wire(info: P.Instrument, preset: str | None = None) -> InstrumentSpec:
    """An ``InstrumentSpec`` for a wire ``Instrument`` (what ``ScriptedAgent.spec`` expects).

    The default self-match mode is the instrument's ``smp_mode``; a server that does not
    state it leaves it to ``preset`` (the server config's preset of the symbol) when known,
    else to the preset whose matching rule the instrument uses (``fifo``: nyse, otherwise
    cme). The matching rule's parameters also come from that preset (clients never match)."""
    name = preset if preset in PRESETS else ("nyse" if info.rule == "fifo" else "cme")
    base = PRESETS[name](info.symbol)
    return InstrumentSpec(
        symbol=info.symbol,
        rule=base.rule,
        tick=info.tick,
        lot=info.lot,
        max_qty=info.max_qty,
        order_types=frozenset(P.ORDER_TYPES[t] for t in info.order_types),
        tifs=frozenset(P.TIFS[t] for t in info.tifs),
        post_only=info.post_only,
        iceberg=info.iceberg,
        protection_ticks=info.protection_ticks,
        market_as_protected=info.market_as_protected,
        price_band=info.price_band,
        reference_price=info.reference_price,
        default_smp_mode=P.SMP_MODES[info.smp_mode] if info.smp_mode is not None else base.default_smp_mode,
        price_scale=Decimal(info.price_scale),
    )


# ---- the L2 book as an agent reads it -------------------------------------------------------------
class _Side:
    __slots__ = ("_levels", "_bids")

    def __init__(self, levels: dict[int, tuple[int, int]], bids: bool) -> None:
        self._levels, self._bids = levels, bids

    @property
    def best(self) -> int | None:
        if not self._levels:
            return None
        return max(self._levels) if self._bids else min(self._levels)


class LiveBook:
    """Read-only view of an ``L2Book`` with the parts of ``exchange.book.OrderBook`` an
    agent can have from market data: ``bids.best``/``asks.best``, ``side(s)``, ``l1()``,
    ``l2(depth)``. There is no ``l3``: the feed carries levels, not orders."""

    __slots__ = ("l2book",)

    def __init__(self, l2book: L2Book) -> None:
        self.l2book = l2book

    @property
    def bids(self) -> _Side:
        return _Side(self.l2book.bids, True)

    @property
    def asks(self) -> _Side:
        return _Side(self.l2book.asks, False)

    def side(self, side: int) -> _Side:
        return self.bids if side == 1 else self.asks

    def l1(self) -> tuple[int | None, int, int | None, int]:
        b, a = self.l2book.best_bid(), self.l2book.best_ask()
        return (b, self.l2book.bids[b][0] if b is not None else 0, a, self.l2book.asks[a][0] if a is not None else 0)

    def l2(self, depth: int | None = None) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        bids, asks = self.l2book.levels()
        return bids[:depth], asks[:depth]


# ---- public market data -> events -----------------------------------------------------------------
def feed_events(msg: P.BookUpdate | P.Trade) -> list:
    """The ``exchange.events`` a simulated subscriber would get for one market-data message."""
    if type(msg) is P.BookUpdate:
        return [E.BookUpdate(msg.seq, c.side, c.price, c.qty, c.count) for c in msg.changes]
    if type(msg) is P.Trade:
        u = UNKNOWN_TRADER
        return [E.Fill(msg.seq, msg.price, msg.qty, P.SIDES[msg.aggressor], 0, 0, u, u)]
    return []


class OwnPrints:
    """Delivers each of a trader's own executions to its agent once, as in the simulator.

    An own execution reaches a bot twice: the private ``fill`` (naming the trader) and the
    anonymous public ``trade`` print, on another connection. The private fill carries the
    print's ``md_seq``; a print announced that way is dropped when it arrives, so the agent
    sees one ``Fill`` per execution. When the print overtakes its private fill (the feed is
    usually one hop longer), both are delivered: ``private`` says so, and ``overtaken_lots``
    adds up those fills' lots (what the agent's ``BookView.volume`` counted twice)."""

    def __init__(self) -> None:
        self.last_seq: dict[str, int] = {}  # symbol -> last public seq seen (snapshots included)
        self.announced: dict[str, set[int]] = {}  # symbol -> prints owned by private fills, not yet seen
        self.overtaken_lots = 0

    def private(self, msg: P.Fill) -> bool:
        """Note a private fill's print (before delivering the fill itself); True when the print
        was already delivered (it overtook the fill)."""
        symbol, seq = msg.symbol, msg.md_seq
        last = self.last_seq.get(symbol)
        if seq is None or last is None:  # an older server, or a symbol this bot does not watch
            return False
        if seq <= last:
            self.overtaken_lots += msg.qty
            return True
        self.announced.setdefault(symbol, set()).add(seq)
        return False

    def public(self, msg: P.ServerMessage) -> bool:
        """False for a public message the agent must not see: the print of an own execution
        already delivered privately. Snapshots and book updates always pass."""
        symbol, seq = msg.symbol, msg.seq  # type: ignore[union-attr]
        self.last_seq[symbol] = seq
        own = self.announced.get(symbol)
        if not own:
            return True
        if type(msg) is P.Trade and seq in own:
            own.discard(seq)
            return False
        own.difference_update([s for s in own if s <= seq])  # the feed is in order: those were lost in a gap
        return True


def snapshot_events(before: L2Book, snap: P.BookSnapshot) -> list:
    """Level changes that turn the book ``before`` into ``snap`` (the events of a resync)."""
    out = []
    for side, old, new in ((1, before.bids, {lv.price: (lv.qty, lv.count) for lv in snap.bids}),
                           (-1, before.asks, {lv.price: (lv.qty, lv.count) for lv in snap.asks})):
        for price in old.keys() - new.keys():
            out.append(E.BookUpdate(snap.seq, side, price, 0, 0))
        for price, (qty, count) in new.items():
            if old.get(price) != (qty, count):
                out.append(E.BookUpdate(snap.seq, side, price, qty, count))
    return out


# ---- one trader's orders over the wire ------------------------------------------------------------
class OrderWire:
    """Commands to wire requests and private messages to events, for one trader (module doc).

    ``default_smp``: the self-match mode name to ask for when a command has an ``smp_id``
    and no mode (the instrument's default in the simulator), per symbol."""

    def __init__(self, trader: int, default_smp: dict[str, str] | None = None, fees: FeeSchedule | None = None,
                 starting_cash: int = 0) -> None:
        self.trader = trader
        self.default_smp = default_smp or {}
        self.accounts = Accounts(fees, starting_cash)
        self.account: Account = self.accounts.account(trader)
        self.venue_id: dict[int, int] = {}  # own order id -> venue order id
        self.own_id: dict[int, int] = {}  # venue order id -> own order id
        self.open_qty: dict[int, int] = {}  # own order id -> open lots as last heard
        self.symbol_of: dict[int, str] = {}  # own order id -> symbol
        self.waiting: dict[int, list[tuple[str, object]]] = {}  # own id -> commands held until it is accepted
        self.requests: dict[int, tuple[str, int | None]] = {}  # req -> (kind, own order id)
        self._req = itertools.count(1)

    def next_req(self) -> int:
        return next(self._req)

    # ---- outgoing ------------------------------------------------------------------------------
    def request(self, symbol: str, cmd: object) -> P.TradingRequest | None:
        """The wire request for ``cmd`` (None: held back until its order is accepted)."""
        t = type(cmd)
        req = next(self._req)
        if t is NewOrder:
            smp = None
            if cmd.smp_id is not None:  # type: ignore[union-attr]
                mode = cmd.smp_mode  # type: ignore[union-attr]
                smp = _SMP_NAMES[int(mode)] if mode is not None else self.default_smp.get(symbol, "cancel_aggressing")
            market = cmd.type in (OrderType.MARKET, OrderType.MARKET_PROTECT, OrderType.MARKET_LIMIT, OrderType.STOP)  # type: ignore[union-attr]
            oid = cmd.order_id  # type: ignore[union-attr]
            self.symbol_of[oid] = symbol
            self.requests[req] = ("new", oid)
            return P.NewOrderRequest(
                symbol=symbol, side=P.SIDE_NAMES[cmd.side], qty=cmd.qty,  # type: ignore[union-attr]
                price=None if market else cmd.price, order_type=P.ORDER_TYPE_NAMES[int(cmd.type)],  # type: ignore[union-attr]
                tif=P.TIF_NAMES[int(cmd.tif)], stop_price=cmd.stop_price, display_qty=cmd.display_qty,  # type: ignore[union-attr]
                min_qty=cmd.min_qty, post_only=cmd.post_only, smp=smp, protection=cmd.protection,  # type: ignore[union-attr]
                client_id=oid, req=req,
            )
        if t is MassCancel:
            self.requests[req] = ("mass_cancel", None)
            return P.MassCancelRequest(symbol=symbol, req=req)
        if t is Cancel or t is Modify:
            oid = cmd.order_id  # type: ignore[union-attr]
            venue = self.venue_id.get(oid)
            if venue is None:
                if oid in self.symbol_of:  # sent, not yet accepted: hold it back
                    self.waiting.setdefault(oid, []).append((symbol, cmd))
                    return None
                venue = 0  # never heard of: let the venue say unknown_order
            self.requests[req] = ("cancel" if t is Cancel else "modify", oid)
            if t is Cancel:
                return P.CancelRequest(order_id=venue or P.MAX_ID, req=req)
            return P.ModifyRequest(order_id=venue or P.MAX_ID, qty=cmd.qty, price=cmd.price, req=req)  # type: ignore[union-attr]
        raise ValueError(f"{t.__name__} cannot be sent over the wire")

    # ---- incoming ------------------------------------------------------------------------------
    def events(self, msg: P.ServerMessage) -> tuple[str | None, list, list[tuple[str, object]]]:
        """(symbol, events, released commands) for one private message.

        ``released``: commands held back for an order that is now accepted (send them), or
        dropped because it was refused. Messages about orders this wire did not send give
        no events."""
        t = type(msg)
        req = getattr(msg, "req", None)
        kind = self.requests.pop(req, None) if req is not None else None
        me = self.trader
        if t is P.Error:
            if kind is None or kind[1] is None:
                return None, [], []
            what, oid = kind
            symbol = self.symbol_of.get(oid)  # type: ignore[arg-type]
            reason = _ERROR_REASON.get(msg.code, str(msg.code))  # type: ignore[union-attr]
            released: list = []
            if what == "new":
                self._forget(oid)  # type: ignore[arg-type]
            return symbol, [E.Rejected(0, oid, me, reason)], released
        if t is P.Pong or t is P.Account or t is P.MassCancelled or t is P.Welcome:
            return None, [], []
        if t is P.Liquidation:
            return msg.symbol, [E.Liquidation(msg.seq, msg.trader, msg.equity, msg.margin)], []  # type: ignore[union-attr]
        cid = getattr(msg, "client_id", None)
        venue = getattr(msg, "order_id", None)
        oid = self.own_id.get(venue) if venue is not None else None  # type: ignore[arg-type]
        if oid is None and cid is not None and cid in self.symbol_of:
            oid = cid
        if oid is None:
            return None, [], []
        symbol = msg.symbol  # type: ignore[union-attr]
        seq = msg.engine_seq  # type: ignore[union-attr]
        released = []
        if t is P.Accepted:
            self.venue_id[oid], self.own_id[venue] = venue, oid  # type: ignore[index]
            self.open_qty[oid] = msg.qty
            for sym, cmd in self.waiting.pop(oid, ()):
                released.append((sym, cmd))
            ev: object = E.Accepted(seq, oid, me, P.SIDES[msg.side], msg.price, msg.qty, int(P.ORDER_TYPES[msg.order_type]))
        elif t is P.Fill:
            side = P.SIDES[msg.side]
            u = UNKNOWN_TRADER
            if msg.liquidity == "maker":
                ev = E.Fill(seq, msg.price, msg.qty, -side, oid, 0, me, u)
            else:
                ev = E.Fill(seq, msg.price, msg.qty, side, 0, oid, u, me)
            self.accounts.apply(symbol, (ev,))
            left = self.open_qty.get(oid, 0) - msg.qty
            if left > 0:
                self.open_qty[oid] = left
            else:
                self._forget(oid)
        elif t is P.Rejected:
            ev = E.Rejected(seq, oid, me, msg.reason)
            if oid not in self.venue_id:  # a refused new order
                self._forget(oid)
                released = []
        elif t is P.Cancelled:
            ev = E.Cancelled(seq, oid, me, msg.qty, msg.reason)
            self._forget(oid)
        elif t is P.Modified:
            ev = E.Modified(seq, oid, me, msg.price, msg.qty, msg.priority_kept)
            self.open_qty[oid] = msg.qty
        elif t is P.Expired:
            ev = E.Expired(seq, oid, me, msg.qty)
            self._forget(oid)
        elif t is P.Triggered:
            ev = E.Triggered(seq, oid, me, msg.stop_price)
        elif t is P.Refreshed:
            ev = E.Refreshed(seq, oid, me, msg.qty)
        else:
            return None, [], []
        return symbol, [ev], released

    def _forget(self, oid: int) -> None:
        venue = self.venue_id.pop(oid, None)
        if venue is not None:
            self.own_id.pop(venue, None)
        self.open_qty.pop(oid, None)
        self.symbol_of.pop(oid, None)
        self.waiting.pop(oid, None)

    def seed_account(self, account: P.Account) -> None:
        """Take cash, fees and positions from the venue's ``account`` (on connect, reconnect)."""
        acct = self.account
        acct.cash, acct.fees = account.cash, account.fees
        acct.positions = {}
        for p in account.positions:
            pos = Position()
            pos.qty, pos.avg_price, pos.realized = p.qty, p.avg_price, p.realized_pnl
            acct.positions[p.symbol] = pos

    def resync(self, account: P.Account) -> list[tuple[str, list]]:
        """After a reconnect: events that bring an agent's orders in line with ``account``.

        Orders the agent still tracks but the venue no longer has (cancelled on disconnect,
        filled while away) get a ``Cancelled`` (reason ``"disconnect"``); a new order never
        acknowledged gets a ``Rejected``, and so does a modify or cancel still unanswered
        on an order that stands (its answer went to the closed connection). Held commands
        are dropped."""
        live = {o.client_id: o for o in account.open_orders if o.client_id is not None}
        out: dict[str, list] = {}
        me = self.trader
        for req, (what, oid) in list(self.requests.items()):
            del self.requests[req]
            if oid is None or oid not in self.symbol_of:
                continue
            if what == "new" and oid not in live and oid not in self.venue_id:  # never acknowledged
                out.setdefault(self.symbol_of[oid], []).append(E.Rejected(0, oid, me, "disconnect"))
                self._forget(oid)
            elif what != "new" and oid in live:  # its modify/cancel answer was lost: the order stands
                out.setdefault(self.symbol_of[oid], []).append(E.Rejected(0, oid, me, "disconnect"))
        for oid in list(self.symbol_of):
            if oid not in live:
                symbol = self.symbol_of[oid]
                out.setdefault(symbol, []).append(E.Cancelled(0, oid, me, self.open_qty.get(oid, 0), "disconnect"))
                self._forget(oid)
        for cid, o in live.items():  # still working: keep (or learn) the id map
            self.venue_id[cid], self.own_id[o.order_id] = o.order_id, cid
            self.open_qty[cid] = o.open_qty
            self.symbol_of[cid] = o.symbol
        self.waiting.clear()
        return list(out.items())


# ---- the agent's Context ----------------------------------------------------------------------------
class LiveContext:
    """An ``exchange.sim.Context`` look-alike for an agent on the live exchange (module doc).

    ``clock()``: ns since the bot started; ``call_later(delay_s, fn)``: schedule ``fn``;
    ``send(symbol, command)``: translate and send; ``books``: the feed's L2 books."""

    def __init__(self, agent: Agent, wire: OrderWire, rng: random.Random, books: dict[str, L2Book],
                 clock: Callable[[], int], call_later: Callable[[float, Callable[[], None]], object],
                 send: Callable[[str, object], None]) -> None:
        self.agent = agent
        self.trader = agent.trader
        self.wire = wire
        self.rng = rng
        self.latency_rng = random.Random(rng.random())
        self.books = books
        self._clock, self._call_later, self._send = clock, call_later, send
        self._next_id = itertools.count(1)
        self.wakeups_pending = 0

    @property
    def now(self) -> int:
        return self._clock()

    def submit(self, symbol: str, command: object) -> None:
        self._send(symbol, command)

    def wake_in(self, delay_ns: int) -> None:
        if delay_ns < 0:
            raise ValueError(f"cannot wake in the past: {delay_ns} ns")
        self.wakeups_pending += 1
        self._call_later(delay_ns / 1e9, self._wake)

    def wake_at(self, time_ns: int) -> None:
        self.wake_in(time_ns - self.now)

    def _wake(self) -> None:
        self.wakeups_pending -= 1
        self.agent.on_wakeup(self)  # type: ignore[arg-type]

    def next_order_id(self) -> int:
        return next(self._next_id)

    def book(self, symbol: str) -> LiveBook:
        return LiveBook(self.books[symbol])

    @property
    def account(self) -> Account:
        """This trader's account mirrored from its own fills since the bot started."""
        return self.wire.account


def start_agent(agent: Agent, ctx: LiveContext, specs: dict[str, InstrumentSpec]) -> None:
    """``agent.on_start`` as the simulator would call it, from the live books and instruments.

    A ``ScriptedAgent`` reads its instrument and a book snapshot from the venue in
    ``on_start``; here they come from the wire (``spec_from_wire``) and the feed."""
    from agents.base import ScriptedAgent

    if isinstance(agent, ScriptedAgent):
        spec = specs[agent.symbol]
        agent.spec = spec
        agent.tick, agent.lot = spec.tick, spec.lot
        book = ctx.books[agent.symbol]
        agent.book.snapshot(LiveBook(book), book.last_price)  # type: ignore[arg-type]
        agent.start(ctx)  # type: ignore[arg-type]
    else:
        agent.on_start(ctx)  # type: ignore[arg-type]


def deliver(agent: Agent, ctx: LiveContext, symbol: str, events: Iterable[object]) -> None:
    events = list(events)
    if events:
        agent.on_events(ctx, symbol, events)  # type: ignore[arg-type]


__all__ = [
    "UNKNOWN_TRADER",
    "LiveBook",
    "LiveContext",
    "OrderWire",
    "OwnPrints",
    "deliver",
    "feed_events",
    "snapshot_events",
    "spec_from_wire",
    "start_agent",
]

"""Shared plumbing of the scripted traders: what an agent observes, what it decides, the shell.

Every strategy in ``agents/`` is split in three parts so that the same decision logic can run
in the simulator, as background flow inside an environment, or as a bot over a wire:

1. **Observed state**, built only from the events the agent receives (the same
   ``exchange.events`` records a WebSocket client decodes):

   - ``BookView``: an L2 picture of one symbol's book from the public feed (``BookUpdate``
     gives a level's absolute quantity, ``Fill`` the last trade), seeded by a snapshot when
     the agent starts, as a market-data subscription would be.
   - ``OrderTracker``: the agent's own working orders and position, from its private events
     (``Accepted``, ``Fill``, ``Cancelled``, ``Modified``, ``Expired``, ``Rejected``). It never
     peeks at the exchange. A ``Rejected`` never raises: a refused new order is dropped, a
     refused modify or cancel leaves the order as it was (or drops it when the venue no
     longer knows it), and the reason is counted in ``rejects``.

2. **Decision**: a small pure function per strategy, ``decide(config, state..., rng)``,
   returning *intents* (``PlaceOrder``, ``ModifyOrder``, ``CancelOrder``). Intents carry no
   order id and no trader: the shell adds them. Randomness only comes from the ``rng``
   argument (in the simulator, ``ctx.rng``), so a seed gives the same trades.

3. **Shell**: ``ScriptedAgent`` (an ``exchange.sim.Agent``) keeps the state up to date from
   delivered events, calls the strategy, and turns intents into ``exchange.commands`` with
   ids from ``ctx.next_order_id()``. It reads the instrument's tick and lot from the venue at
   start and trades exactly one symbol (``symbols = (symbol,)``).

Prices are integer price units, always a multiple of the instrument's tick (``floor_tick`` /
``ceil_tick`` round a float price toward the passive side); quantities are integer lots.

Position limits are exact when the agent's latency is zero or when it keeps one order in
flight at a time (momentum, mean reversion, TWAP do); under latency a market maker's limit
holds up to fills it has not yet heard of. Use the venue's ``RiskLimits.max_position`` as the
hard cap where that matters.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from exchange.book import OrderBook
from exchange.commands import Cancel, Modify, NewOrder
from exchange.enums import OrderType, RejectReason, TimeInForce
from exchange.events import Accepted, BookUpdate, Cancelled, Expired, Fill, Liquidation, Modified, Rejected
from exchange.instrument import InstrumentSpec
from exchange.sim import Agent, Context, Latency

GTC, IOC, DAY = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.DAY
_LIMIT, _MARKET = OrderType.LIMIT, OrderType.MARKET


# ---- intents ---------------------------------------------------------------------------------
class PlaceOrder(NamedTuple):
    """Enter an order: a limit at ``price`` or, with ``price`` None, a market order.

    ``tag`` is a free label kept on the tracked order (a market maker marks its quotes).
    ``post_only`` is dropped by the shell on instruments that do not accept it.
    """

    side: int
    qty: int
    price: int | None
    tif: TimeInForce = GTC
    post_only: bool = False
    tag: str = ""


class ModifyOrder(NamedTuple):
    """Change a working order's open quantity and/or price (``None`` keeps the price)."""

    order_id: int
    qty: int
    price: int | None = None


class CancelOrder(NamedTuple):
    """Cancel a working order."""

    order_id: int


Intent = PlaceOrder | ModifyOrder | CancelOrder


# ---- prices ----------------------------------------------------------------------------------
def floor_tick(price: float, tick: int) -> int:
    """The largest multiple of ``tick`` at or below ``price`` (at least one tick)."""
    return max(tick, math.floor(price / tick + 1e-9) * tick)


def ceil_tick(price: float, tick: int) -> int:
    """The smallest multiple of ``tick`` at or above ``price`` (at least one tick)."""
    return max(tick, math.ceil(price / tick - 1e-9) * tick)


def passive_tick(price: float, side: int, tick: int) -> int:
    """``price`` rounded to the tick on the passive side: down for a buy, up for a sell."""
    return floor_tick(price, tick) if side == 1 else ceil_tick(price, tick)


def lots(qty: int, lot: int) -> int:
    """``qty`` rounded down to a multiple of ``lot`` (never negative)."""
    return max(0, qty // lot * lot)


# ---- observed state ------------------------------------------------------------------------
class BookView:
    """One symbol's L2 book and last trade as seen through the delivered public feed."""

    __slots__ = ("bids", "asks", "best_bid", "best_ask", "last_price", "last_trade_time", "volume")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}  # price -> displayed qty
        self.asks: dict[int, int] = {}
        self.best_bid: int | None = None
        self.best_ask: int | None = None
        self.last_price: int | None = None
        self.last_trade_time: int | None = None
        self.volume = 0  # lots traded since the view started

    def snapshot(self, book: OrderBook, last_price: int | None = None) -> None:
        """Start from a full picture (what a subscription's initial snapshot carries)."""
        bids, asks = book.l2()
        self.bids = {p: q for p, q, _ in bids}
        self.asks = {p: q for p, q, _ in asks}
        self.best_bid = bids[0][0] if bids else None
        self.best_ask = asks[0][0] if asks else None
        self.last_price = last_price

    def apply(self, ev: object, now: int = 0) -> None:
        """Update from one event (``BookUpdate`` and ``Fill``; others are ignored)."""
        self.apply_all((ev,), now)

    def apply_all(self, events: Iterable[object], now: int = 0) -> None:
        """Update from a batch of events, in order (``apply`` for each, in one call)."""
        for ev in events:
            t = type(ev)
            if t is BookUpdate:
                price, qty = ev.price, ev.qty  # type: ignore[attr-defined]
                if ev.side == 1:  # type: ignore[attr-defined]
                    if qty:
                        self.bids[price] = qty
                        if self.best_bid is None or price > self.best_bid:
                            self.best_bid = price
                    else:
                        self.bids.pop(price, None)
                        if price == self.best_bid:
                            self.best_bid = max(self.bids) if self.bids else None
                else:
                    if qty:
                        self.asks[price] = qty
                        if self.best_ask is None or price < self.best_ask:
                            self.best_ask = price
                    else:
                        self.asks.pop(price, None)
                        if price == self.best_ask:
                            self.best_ask = min(self.asks) if self.asks else None
            elif t is Fill:
                self.last_price = ev.price  # type: ignore[attr-defined]
                self.last_trade_time = now
                self.volume += ev.qty  # type: ignore[attr-defined]

    def best(self, side: int) -> int | None:
        """Best price of ``side`` (1: bids, -1: asks)."""
        return self.best_bid if side == 1 else self.best_ask

    def qty_at(self, side: int, price: int) -> int:
        return (self.bids if side == 1 else self.asks).get(price, 0)

    def mid(self) -> float | None:
        """Mid price when both sides show, else None."""
        if self.best_bid is None or self.best_ask is None:
            return None
        return (self.best_bid + self.best_ask) / 2

    def others_best(self, side: int, orders: OrderTracker) -> int | None:
        """Best price of ``side`` counting only other traders' quantity (own orders removed)."""
        levels = self.bids if side == 1 else self.asks
        best = self.best_bid if side == 1 else self.best_ask
        if best is None or levels[best] > orders.resting_qty(side, best):
            return best
        own = orders.resting_levels(side)
        rest = [price for price, qty in levels.items() if qty > own.get(price, 0)]
        if not rest:
            return None
        return max(rest) if side == 1 else min(rest)

    def reference(self, orders: OrderTracker | None = None, fallback: float | None = None) -> float | None:
        """A fair price: the mid (of other traders' orders when ``orders`` is given), else the
        last trade, else the one side that shows, else ``fallback``."""
        if orders is None:
            bid, ask = self.best_bid, self.best_ask
        else:
            bid, ask = self.others_best(1, orders), self.others_best(-1, orders)
        return self.fair_price(bid, ask, fallback)

    def fair_price(self, bid: int | None, ask: int | None, fallback: float | None = None) -> float | None:
        """``reference`` from given best prices: their mid, else the last trade, else the one
        that is there, else ``fallback``."""
        if bid is not None and ask is not None:
            return (bid + ask) / 2
        if self.last_price is not None:
            return float(self.last_price)
        if bid is not None or ask is not None:
            return float(bid if bid is not None else ask)  # type: ignore[arg-type]
        return fallback


class OwnOrder:
    """One of the agent's orders as the agent knows it."""

    __slots__ = ("order_id", "side", "price", "qty", "tif", "tag", "sent_at", "acked", "in_flight", "cancelling")

    def __init__(self, order_id: int, side: int, price: int | None, qty: int, tif: int, tag: str, sent_at: int) -> None:
        self.order_id = order_id
        self.side = side
        self.price = price  # working limit (None: market order not yet acknowledged)
        self.qty = qty  # open lots, as last confirmed
        self.tif = tif
        self.tag = tag
        self.sent_at = sent_at
        self.acked = False  # the venue accepted it
        self.in_flight = 1  # commands on it without an answer yet (the NewOrder at first)
        self.cancelling = False

    @property
    def settled(self) -> bool:
        """Acknowledged, with no modify or cancel awaiting an answer: safe to act on."""
        return self.acked and not self.in_flight and not self.cancelling

    def __repr__(self) -> str:
        return (
            f"OwnOrder(id={self.order_id}, side={self.side}, price={self.price}, qty={self.qty}, "
            f"acked={self.acked}, in_flight={self.in_flight}, cancelling={self.cancelling})"
        )


class OrderTracker:
    """An agent's working orders, position and fill counts, from its own events only."""

    __slots__ = ("trader", "orders", "position", "bought", "sold", "fills", "rejects", "sent")

    def __init__(self, trader: int) -> None:
        self.trader = trader
        self.orders: dict[int, OwnOrder] = {}  # working (or in-flight) orders by id, oldest first
        self.position = 0  # signed lots
        self.bought = 0  # lots bought
        self.sold = 0  # lots sold
        self.fills = 0  # fills the agent took part in
        self.rejects: Counter[str] = Counter()  # reason -> count
        self.sent = 0  # commands sent

    # ---- what the shell sent -----------------------------------------------------------------
    def sent_new(self, order_id: int, side: int, price: int | None, qty: int, tif: int, tag: str, now: int) -> None:
        self.orders[order_id] = OwnOrder(order_id, side, price, qty, tif, tag, now)
        self.sent += 1

    def sent_modify(self, order_id: int) -> None:
        self.orders[order_id].in_flight += 1
        self.sent += 1

    def sent_cancel(self, order_id: int) -> None:
        self.orders[order_id].cancelling = True
        self.sent += 1

    # ---- what came back ----------------------------------------------------------------------
    def apply(self, ev: object) -> bool:
        """Update from one delivered event; True if it concerned this trader."""
        t = type(ev)
        me = self.trader
        if t is Fill:
            mine = False
            if ev.taker_trader == me:  # type: ignore[attr-defined]
                self._filled(ev.taker_id, ev.aggressor, ev.qty)  # type: ignore[attr-defined]
                mine = True
            if ev.maker_trader == me:  # type: ignore[attr-defined]
                self._filled(ev.maker_id, -ev.aggressor, ev.qty)  # type: ignore[attr-defined]
                mine = True
            return mine
        if t is BookUpdate or ev.trader != me:  # type: ignore[attr-defined]
            return False
        if t is Liquidation:
            return True  # it names no order; the venue's cancels and fills that follow do
        o = self.orders.get(ev.order_id)  # type: ignore[attr-defined]
        if t is Accepted:
            if o is not None:
                o.acked = True
                o.in_flight -= 1
                o.price, o.qty = ev.price, ev.qty  # type: ignore[attr-defined]
        elif t is Modified:
            if o is not None:
                o.in_flight = max(0, o.in_flight - 1)
                o.price, o.qty = ev.price, ev.qty  # type: ignore[attr-defined]
        elif t is Cancelled or t is Expired:
            self.orders.pop(ev.order_id, None)  # type: ignore[attr-defined]
        elif t is Rejected:
            self.rejects[ev.reason] += 1  # type: ignore[attr-defined]
            if o is not None:
                if not o.acked or ev.reason == RejectReason.UNKNOWN_ORDER:  # type: ignore[attr-defined]
                    del self.orders[o.order_id]  # refused new order, or gone at the venue
                elif o.in_flight:
                    o.in_flight -= 1  # a refused modify: the order stands as it was
                else:
                    o.cancelling = False  # a refused cancel
        return True

    def apply_all(self, events: Iterable[object]) -> bool:
        """``apply`` each event in order; True if any concerned this trader."""
        me, apply = self.trader, self.apply
        mine = False
        for ev in events:
            t = type(ev)
            if t is BookUpdate:
                continue
            if t is Fill:
                if ev.taker_trader == me or ev.maker_trader == me:  # type: ignore[attr-defined]
                    apply(ev)
                    mine = True
            elif ev.trader == me:  # type: ignore[attr-defined]
                apply(ev)
                mine = True
        return mine

    def _filled(self, order_id: int, side: int, qty: int) -> None:
        self.position += side * qty
        if side == 1:
            self.bought += qty
        else:
            self.sold += qty
        self.fills += 1
        o = self.orders.get(order_id)
        if o is not None:
            o.qty -= qty
            if o.qty <= 0:
                del self.orders[order_id]

    # ---- reading -----------------------------------------------------------------------------
    def working(self, side: int | None = None, tag: str | None = None) -> list[OwnOrder]:
        """Working orders, oldest first, optionally of one side and/or tag."""
        return [
            o for o in self.orders.values() if (side is None or o.side == side) and (tag is None or o.tag == tag)
        ]

    def open_qty(self, side: int) -> int:
        """Open lots of working orders on ``side`` (what could still fill)."""
        return sum(o.qty for o in self.orders.values() if o.side == side)

    def resting_qty(self, side: int, price: int) -> int:
        """Acknowledged open lots resting at ``price`` on ``side`` (own share of that level)."""
        total = 0
        for o in self.orders.values():
            if o.acked and o.side == side and o.price == price:
                total += o.qty
        return total

    def resting_levels(self, side: int) -> dict[int, int]:
        """``resting_qty`` of every price on ``side`` where the trader rests: price -> lots."""
        out: dict[int, int] = {}
        for o in self.orders.values():
            if o.acked and o.side == side:
                out[o.price] = out.get(o.price, 0) + o.qty  # type: ignore[index]
        return out

    @property
    def busy(self) -> bool:
        """Some order is unacknowledged or has a modify/cancel awaiting its answer."""
        return any(not o.settled for o in self.orders.values())


# ---- the simulator shell -------------------------------------------------------------------
class ScriptedAgent(Agent):
    """Base of the scripted traders: one symbol, observed state from events, intents out.

    Subclasses implement ``start(ctx)`` (schedule the first wake-up), ``on_wakeup(ctx)`` and,
    if they react to events, ``observe(ctx, events, mine)``; they call ``self.send(ctx,
    intents)``. ``smp`` tags every order with the trader's own self-match id so the agent
    never trades with itself (the instrument's default SMP mode decides what is cancelled).
    """

    def __init__(self, trader: int, symbol: str, *, latency: Latency | None = None, smp: bool = True) -> None:
        super().__init__(trader, latency)
        self.symbol = symbol
        self.symbols = (symbol,)
        self.smp_id = trader if smp else None
        self.book = BookView()
        self.orders = OrderTracker(trader)
        self.spec: InstrumentSpec | None = None
        self.tick = 1
        self.lot = 1
        self._observes = type(self).observe is not ScriptedAgent.observe  # skip the no-op hook

    # ---- sim callbacks -----------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        engine = ctx.sim.exchange.engines[self.symbol]
        self.spec = engine.spec
        self.tick, self.lot = engine.spec.tick, engine.spec.lot
        self.book.snapshot(engine.book, engine.last_price)  # the subscription's initial snapshot
        self.start(ctx)

    def on_events(self, ctx: Context, symbol: str, events: list) -> None:
        if symbol != self.symbol:
            return
        self.book.apply_all(events, ctx.now)  # the view and the tracker are independent:
        mine = self.orders.apply_all(events)  # each takes the whole batch in one call
        if self._observes:
            self.observe(ctx, events, mine)

    # ---- hooks -------------------------------------------------------------------------------
    def start(self, ctx: Context) -> None:
        """Called once at time 0, after the instrument and the book snapshot are known."""

    def observe(self, ctx: Context, events: list, mine: bool) -> None:
        """Called after each delivered batch updated the state; ``mine``: it touched own orders."""

    # ---- sending -----------------------------------------------------------------------------
    def send(self, ctx: Context, intents: Iterable[Intent]) -> None:
        """Turn intents into commands and submit them; intents on orders that are not
        settled (unacknowledged, or a modify/cancel awaiting its answer) are skipped."""
        spec = self.spec
        assert spec is not None, "send() before on_start()"
        orders, trader, symbol, submit = self.orders, self.trader, self.symbol, ctx.submit
        for it in intents:
            t = type(it)
            if t is PlaceOrder:
                side, qty, price, tif, post_only, tag = it
                if qty <= 0:
                    continue
                oid = ctx.next_order_id()
                if price is None:  # a market order
                    cmd: object = NewOrder(oid, trader, side, qty, None, _MARKET, tif, smp_id=self.smp_id)
                else:
                    post_only = post_only and spec.post_only and (tif == GTC or tif == DAY)
                    cmd = NewOrder(oid, trader, side, qty, price, _LIMIT, tif, None, None, None, post_only, self.smp_id)
                orders.sent_new(oid, side, price, qty, tif, tag, ctx.now)
            else:
                o = orders.orders.get(it.order_id)
                if o is None or not o.settled:
                    continue
                if t is ModifyOrder:
                    if it.qty <= 0 or (it.qty == o.qty and (it.price is None or it.price == o.price)):
                        continue  # nothing to change (the venue would refuse it)
                    cmd = Modify(it.order_id, trader, it.qty, it.price)
                    orders.sent_modify(it.order_id)
                else:
                    cmd = Cancel(it.order_id, trader)
                    orders.sent_cancel(it.order_id)
            submit(symbol, cmd)

    def cancel_all(self, ctx: Context) -> None:
        """Cancel every settled working order."""
        self.send(ctx, [CancelOrder(o.order_id) for o in self.orders.working()])


# ---- shared decision step ------------------------------------------------------------------
def toward_target(
    target: int,
    position: int,
    book: BookView,
    orders: OrderTracker,
    *,
    clip: int,
    tick: int,
    lot: int,
    aggression_ticks: int = 1,
    passive: bool = False,
    limit_price: int | None = None,
) -> list[Intent]:
    """Intents that move ``position`` toward ``target`` with one order at a time.

    While an order of the agent is working, the step only cancels it if it no longer fits
    (wrong direction, or a passive order no longer at the touch); otherwise it sends one
    order of at most ``clip`` lots and never more than the distance to the target, so the
    position cannot pass the target. Marketable (default): an IOC limit ``aggression_ticks``
    through the opposite best (no order when that side is empty). Passive: a GTC limit
    joining the best price on its own side (or one tick behind the opposite best when its
    side is empty). ``limit_price`` caps what a buy pays / floors what a sell receives.
    """
    diff = target - position
    side = 1 if diff > 0 else -1
    working = orders.working()
    if working:
        out: list[Intent] = []
        for o in working:
            if not o.settled:
                continue
            stale = diff == 0 or o.side != side
            if passive and not stale:
                stale = o.price != _join_price(book, o.side, tick)
            if stale:
                out.append(CancelOrder(o.order_id))
        return out
    qty = lots(min(clip, abs(diff)), lot)
    if qty <= 0:
        return []
    if passive:
        price = _join_price(book, side, tick)
        tif = GTC
    else:
        opp = book.best(-side)
        if opp is None:
            return []
        price = max(tick, opp + side * aggression_ticks * tick)
        tif = IOC
    if price is None:
        return []
    if limit_price is not None:
        price = min(price, limit_price) if side == 1 else max(price, limit_price)
    return [PlaceOrder(side, qty, price, tif)]


class TargetStyle(Protocol):
    """What a config needs to say about how to trade toward a target position."""

    clip_qty: int
    aggression_ticks: int
    passive: bool


def step_toward(target: int, book: BookView, orders: OrderTracker, style: TargetStyle, tick: int, lot: int) -> list[Intent]:
    """``toward_target`` from the tracked position, with a config's clip, aggression and passivity."""
    return toward_target(
        target,
        orders.position,
        book,
        orders,
        clip=style.clip_qty,
        tick=tick,
        lot=lot,
        aggression_ticks=style.aggression_ticks,
        passive=style.passive,
    )


def _join_price(book: BookView, side: int, tick: int) -> int | None:
    """The price a passive order joins: its side's best, else one tick off the opposite best."""
    own = book.best(side)
    if own is not None:
        return own
    opp = book.best(-side)
    if opp is None:
        return None
    return max(tick, opp - side * tick)

"""Historical order flow as background: replay a LOBSTER message file through the venue.

``ReplayAgent(trader, symbol, messages)`` sends each message of ``exchange.lobster`` at its
time as a command of its own trader, so that the historical book builds up in the
simulator's matching engine and the other agents' orders trade with it, queue behind it
and take from it.

Time. A message stamped ``time_ns`` (after midnight) happens at simulated time
``time_ns - origin_ns``. ``origin_ns`` defaults to the first message's time (the replay
starts at simulated time 0); pass ``origin_ns=34_200 * SECOND`` to count simulated time from
9:30:00, so a message at 9:30:05 happens at 5 s. Messages before ``origin_ns`` are refused.
Messages sharing a timestamp are applied in file order, each after the events of the one
before have come back (see Ordering), all at that same simulated time.

Mapping, message by message (historical order id h, venue order id v):

- **1 submission** -> a GTC limit ``NewOrder`` of ``size`` at ``price`` on ``direction``'s
  side, with a fresh venue id from ``ctx.next_order_id()`` (h -> v is kept).
- **2 cancellation (partial)** -> ``Modify`` of v to its open quantity here minus ``size``
  (priority kept), or ``Cancel`` if nothing would be left. Skipped (``stats.not_live``) if v
  no longer rests here, e.g. because another agent's order took it.
- **3 deletion** -> ``Cancel`` of v; skipped if v no longer rests here.
- **4 visible execution** -> the aggressor is not in the file, so it is emulated: an IOC
  limit order on the opposite side (``-direction``) for ``size`` at the execution price. On
  its own the replay hits exactly h. With other agents it trades with whatever the engine
  puts first: an agent's order at a better price, or ahead of h in the queue, fills instead
  of h. That is the interaction. It is sent even if h no longer rests here (the historical
  buyer or seller still came).
- **5 hidden execution**, **6 cross trade**, **7 halt** -> nothing is sent; counted in
  ``stats.hidden``, ``stats.crosses``, ``stats.halts``.
- Messages 2-4 about an order the file never submitted (it rested before the file
  starts) are skipped and counted in ``stats.unknown``: the book they refer to is not known.

Trimming (``trim=True``, the default). After an emulated execution of h, if h still shows
more here than history left it (``remaining(h)``: submitted size minus partial
cancellations and executions, 0 after a deletion), it is cut down to that (``Modify``, or
``Cancel`` at 0; ``stats.trimmed``). That happens when an agent's order absorbed the
aggressor instead of h (or rounding merged h's level with another, see Prices). Without trimming h keeps the lots the agent sold or bought in its
place, and since history never executes or deletes them, the replayed book ends up with
extra ("ghost") liquidity, as large as the agent's fills. With trimming, no replayed order
ever shows more than history had (up to the same-nanosecond race below); the agent's fills
come on top of the historical volume.

Accounting. Every replayed order, resting or aggressing, belongs to ``trader``, so its
account holds the replayed flow; an emulated execution against a replayed order is a trade
of ``trader`` with itself (position and cash net to zero; it counts twice in the account's
``volume``). Orders carry no ``smp_id``, so self-match prevention never stops them. The
venue's pre-trade risk limits and margin apply to ``trader`` like to anyone: trades with
the agents give it positions, so with a ``MarginPolicy`` give the venue enough
``starting_cash``. A refused command is counted in ``stats.rejected`` and the replay goes
on; if the replay trader is liquidated, its orders are cancelled (later messages about them
are skipped as not live) and, once barred, its submissions and emulated executions are
refused.

Ordering. The agent keeps one command in flight: it sends the command of one message, waits
until that command's events come back (every command gives at least one event naming it:
``Accepted``, ``Rejected``, ``Cancelled`` or ``Modified``), updates the open quantity of its
orders from them, and only then takes the next message. It has no latency (``Latency()``):
messages are stamped where they happened, at the exchange. It follows its orders from the
events delivered to it (``Accepted``, ``Fill`` as maker or taker, ``Modified``,
``Cancelled``, ``Expired``), never from the book, and does not subscribe to market data.

Prices are converted with ``exchange.lobster.price_to_units`` and the instrument's
``price_scale`` and ``tick`` when the simulation starts; a price off the tick raises
``ValueError`` there unless ``rounding`` is given: ``"passive"`` (buy orders down, sell
orders up, so rounding never makes an order more aggressive; an execution uses its resting
order's direction, so it meets the order at the same rounded price), ``"down"``, ``"up"`` or
``"nearest"``. Rounding can merge historical levels, which changes queue order: the
emulated aggressor may then meet another order of the merged level than h (trimming and
``not_live`` skips then show up even in a replay alone).

Replayed alone, the replay reproduces the file's book: after each message the engine's
book holds exactly the orders the file has live that it submitted, and the traded volume
equals the sum of the sizes of the type-4 messages about those orders. The file's whole
type-4 total is larger by the executions of orders that rested before it starts (skipped).
Both can differ when rounding merges levels or when the file is inconsistent (a level
short of the executed size; an execution not at the front of its queue).

Known limitations:

- Hidden liquidity is not modelled: hidden executions (5) are dropped, and hidden orders
  never rest in the replayed book, so an agent never trades against them and an agent's
  aggressive order never meets the hidden depth history had.
- Orders resting before the file starts are missing (LOBSTER's order book file has their
  levels but not their ids); their messages are skipped.
- Historical traders do not react to the agents: an order that an agent's trade removed is
  not re-posted, a historical order is not cancelled because an agent bettered it, and the
  emulated aggressor does not sweep deeper when an agent took its liquidity first (an IOC at
  the execution price, nothing more).
- Auctions (6) and halts (7) are ignored: the book keeps trading through a halt.
- Same-nanosecond race: a reduction (2, or a trim) is computed from the events delivered so
  far; another agent's order processed at the very same nanosecond, between the decision
  and the command, can fill part of h first. ``Modify`` then asks for more than h has open,
  which the engine treats as a size increase (h loses priority); such a ``Modified`` with
  ``priority_kept`` false is counted in ``stats.stale``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from exchange.commands import Cancel, Modify, NewOrder
from exchange.enums import TimeInForce
from exchange.events import Accepted, BookUpdate, Cancelled, Expired, Fill, Liquidation, Modified, Rejected
from exchange.lobster import LobsterMessage, MessageType, price_to_units
from exchange.sim import Agent, Context, Latency

_SUBMIT, _CANCEL, _DELETE, _EXECUTE = MessageType.SUBMIT, MessageType.CANCEL, MessageType.DELETE, MessageType.EXECUTE
_HIDDEN, _CROSS, _HALT = MessageType.EXECUTE_HIDDEN, MessageType.CROSS, MessageType.HALT
_ROUND_BY_SIDE = {"passive": {1: "down", -1: "up"}}

Rounding = Literal["passive", "down", "up", "nearest"]


@dataclass(slots=True)
class ReplayStats:
    """What the replay did with the messages so far (one count per message or command)."""

    submitted: int = 0  # type 1 sent as limit orders
    reduced: int = 0  # type 2 sent (Modify, or Cancel when nothing is left)
    deleted: int = 0  # type 3 sent as Cancel
    executed: int = 0  # type 4 sent as IOC aggressors
    hidden: int = 0  # type 5, ignored
    crosses: int = 0  # type 6, ignored
    halts: int = 0  # type 7, ignored
    unknown: int = 0  # types 2-4 about an order the file never submitted: skipped
    not_live: int = 0  # types 2-3 about an order that no longer rests here: skipped
    trimmed: int = 0  # executed orders cut down to their historical remaining size
    rejected: int = 0  # commands the venue refused
    stale: int = 0  # reductions that arrived after a same-nanosecond fill (see module doc)


class ReplayAgent(Agent):
    """Sends a LOBSTER message file through the venue as one trader's orders (module doc).

    Arguments: ``trader`` (the replay's account), ``symbol``, ``messages`` (from
    ``exchange.lobster.parse_messages``, in time order), ``origin_ns`` (the time of day that
    is simulated time 0; default the first message's), ``rounding`` (None: an off-tick
    price raises; or ``"passive"``, ``"down"``, ``"up"``, ``"nearest"``), ``trim``
    (cut executed orders back to their historical size after an agent took their place).
    """

    market_data = False  # it follows its own orders only

    def __init__(
        self,
        trader: int,
        symbol: str,
        messages: Sequence[LobsterMessage],
        *,
        origin_ns: int | None = None,
        rounding: Rounding | None = None,
        trim: bool = True,
    ) -> None:
        super().__init__(trader, Latency())
        self.symbol = symbol
        self.symbols = (symbol,)
        self.messages = list(messages)
        self.origin_ns = origin_ns if origin_ns is not None else (self.messages[0].time_ns if self.messages else 0)
        if rounding is not None and rounding not in ("passive", "down", "up", "nearest"):
            raise ValueError(f"rounding must be 'passive', 'down', 'up', 'nearest' or None, got {rounding!r}")
        self.rounding = rounding
        self.trim = trim
        self.stats = ReplayStats()
        self._times = [m.time_ns - self.origin_ns for m in self.messages]
        submitted: dict[int, int] = {}
        for i, m in enumerate(self.messages):
            if self._times[i] < 0:
                raise ValueError(f"message {i} at {m.time_ns} ns is before origin_ns {self.origin_ns}")
            if i and m.time_ns < self.messages[i - 1].time_ns:
                raise ValueError(f"message {i} goes back in time ({m.time_ns} ns after {self.messages[i - 1].time_ns})")
            if m.type == _SUBMIT:
                if m.order_id in submitted:
                    first = submitted[m.order_id]
                    raise ValueError(f"order {m.order_id} is submitted twice (messages {first} and {i})")
                submitted[m.order_id] = i
        self._prices: list[int | None] = []  # venue price of each message of types 1-4
        self._next = 0  # index of the next message to apply
        self._wake_for: int | None = None  # simulated time of the scheduled wake-up
        self._pending: int | None = None  # venue id named by the command in flight
        self._then_trim: int | None = None  # historical id to trim when the command is done
        self._venue: dict[int, int] = {}  # historical id -> venue id
        self._hist: dict[int, int] = {}  # venue id -> historical id (resting orders only)
        self._left: dict[int, int] = {}  # historical id -> remaining size per the file
        self._open: dict[int, int] = {}  # venue id -> open quantity here, from events

    # ---- reading --------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Every message has been applied and its command has come back."""
        return self._next == len(self.messages) and self._pending is None

    def venue_id(self, order_id: int) -> int | None:
        """Venue order id of historical order ``order_id`` (None if the file never submitted it)."""
        return self._venue.get(order_id)

    def open_qty(self, order_id: int) -> int:
        """Open quantity of historical order ``order_id`` here, from the events seen (0: gone)."""
        v = self._venue.get(order_id)
        return 0 if v is None else self._open.get(v, 0)

    def remaining(self, order_id: int) -> int:
        """Size historical order ``order_id`` still had, per the messages applied so far."""
        return self._left.get(order_id, 0)

    def live_orders(self) -> dict[int, int]:
        """Historical id -> open quantity here, for every replayed order still resting."""
        return {self._hist[v]: q for v, q in self._open.items()}

    # ---- callbacks --------------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        spec = ctx.sim.exchange.engines[self.symbol].spec
        by_side = _ROUND_BY_SIDE.get(self.rounding or "")
        prices: list[int | None] = []
        for i, m in enumerate(self.messages):
            if m.type > _EXECUTE:
                prices.append(None)
                continue
            rounding = by_side[m.direction] if by_side is not None else self.rounding
            try:
                prices.append(price_to_units(m.price, spec.price_scale, tick=spec.tick, rounding=rounding))
            except ValueError as exc:
                raise ValueError(f"message {i} ({m!r}): {exc}") from None
        self._prices = prices
        self._advance(ctx)

    def on_wakeup(self, ctx: Context) -> None:
        self._wake_for = None
        self._advance(ctx)

    def on_events(self, ctx: Context, symbol: str, events: list) -> None:
        opened, done = self._open, False
        for ev in events:
            t = type(ev)
            if t is Fill:
                for oid in (ev.maker_id, ev.taker_id):
                    if oid in opened:
                        self._reduce(oid, ev.qty)
                continue
            if t is BookUpdate or t is Liquidation:
                continue
            oid = ev.order_id
            if t is Accepted:
                if oid in self._hist:
                    opened[oid] = ev.qty
            elif t is Modified:
                if oid in opened:
                    opened[oid] = ev.qty
                    if oid == self._pending and not ev.priority_kept:
                        self.stats.stale += 1
            elif t is Cancelled or t is Expired:
                if oid in opened:
                    self._reduce(oid, ev.qty)
            if oid == self._pending:
                done = True
                if t is Rejected:
                    self.stats.rejected += 1
        if done:
            self._pending = None
            trim, self._then_trim = self._then_trim, None
            if trim is not None:
                self._trim(ctx, trim)
            self._advance(ctx)

    # ---- internals ----------------------------------------------------------------------------
    def _reduce(self, oid: int, qty: int) -> None:
        left = self._open[oid] - qty
        if left > 0:
            self._open[oid] = left
        else:
            del self._open[oid]

    def _send(self, ctx: Context, command: object, venue_id: int) -> None:
        ctx.submit(self.symbol, command)
        self._pending = venue_id

    def _advance(self, ctx: Context) -> None:
        """Apply due messages until one sends a command, then wait for its events."""
        times, n = self._times, len(self.messages)
        while self._pending is None and self._next < n:
            i = self._next
            if times[i] > ctx.now:
                if self._wake_for != times[i]:
                    self._wake_for = times[i]
                    ctx.wake_at(times[i])
                return
            self._next = i + 1
            self._apply(ctx, self.messages[i], self._prices[i])

    def _apply(self, ctx: Context, m: LobsterMessage, price: int | None) -> None:
        typ, h, stats, trader = m.type, m.order_id, self.stats, self.trader
        if typ == _SUBMIT:
            v = ctx.next_order_id()
            self._venue[h], self._hist[v], self._left[h] = v, h, m.size
            stats.submitted += 1
            self._send(ctx, NewOrder(v, trader, m.direction, m.size, price), v)
            return
        if typ > _EXECUTE:
            if typ == _HIDDEN:
                stats.hidden += 1
            elif typ == _CROSS:
                stats.crosses += 1
            else:
                stats.halts += 1
            return
        v = self._venue.get(h)
        if v is None:
            stats.unknown += 1
            return
        left = self._left[h]
        if typ == _EXECUTE:
            self._left[h] = max(0, left - m.size)
            aggressor = ctx.next_order_id()
            stats.executed += 1
            self._send(ctx, NewOrder(aggressor, trader, -m.direction, m.size, price, tif=TimeInForce.IOC), aggressor)
            self._then_trim = h if self.trim else None
            return
        open_qty = self._open.get(v, 0)
        if typ == _CANCEL:
            self._left[h] = max(0, left - m.size)
            new_qty = open_qty - m.size
        else:
            self._left[h] = new_qty = 0
        if not open_qty:
            stats.not_live += 1
            return
        if typ == _CANCEL:
            stats.reduced += 1
        else:
            stats.deleted += 1
        self._send(ctx, Cancel(v, trader) if new_qty <= 0 else Modify(v, trader, new_qty), v)

    def _trim(self, ctx: Context, h: int) -> None:
        """Cut historical order ``h`` down to what history left of it, if it shows more."""
        v, left = self._venue[h], self._left[h]
        if self._open.get(v, 0) > left:
            self.stats.trimmed += 1
            self._send(ctx, Cancel(v, self.trader) if left == 0 else Modify(v, self.trader, left), v)

"""A deterministic discrete-event simulator around a venue. No I/O, no wall clock.

Time is an integer number of nanoseconds (``SECOND``, ``MS``, ``US`` help). Everything that
will happen is processed in the order of ``(time, sequence)``: order arrivals at the
exchange, deliveries of events to agents and agents' wake-ups. The sequence number breaks
ties in the order things were scheduled, so a seed and a configuration give the same run,
trade for trade. Work for a later instant waits in a min-heap of ``(time, sequence, ...)``
tuples; work scheduled for the current instant (an order sent with zero latency, a
``wake_in(0)``) goes to a FIFO queue instead, which is the same order: everything already
in the heap for this instant was scheduled earlier, so it runs first.

Agents are objects with callbacks (subclass ``Agent``):

- ``on_start(ctx)`` once, at time 0, in the order the agents were given;
- ``on_wakeup(ctx)`` at the times the agent asked for with ``ctx.wake_in``/``ctx.wake_at``;
- ``on_events(ctx, symbol, events)`` with the events of one command on ``symbol`` that the
  agent may see (default: calls ``on_event(ctx, symbol, event)`` for each). The list is
  read-only: it may be shared with other agents (never with the log).

The callbacks are looked up on the agent when ``run`` starts; replacing them on an agent
takes effect at the next ``run``.

What an agent sees: its own order events (``Accepted``, ``Rejected``, ``Cancelled``,
``Modified``, ``Triggered``, ``Expired``, ``Refreshed``, ``Liquidation``, and ``Fill`` where
it is maker or taker) and, if ``market_data`` is true, the public feed (``BookUpdate`` and
every ``Fill``, the trade prints) of the symbols in ``symbols`` (None: all). Other traders'
private events are never delivered. ``ctx.book(symbol)`` reads the exchange's current book
directly (not delayed): agents that model latency honestly build their view from delivered
events.

Latency (``Latency``, per agent): an order sent at ``t`` reaches the exchange at
``t + order delay``; events produced at ``t`` reach the agent at ``t + data delay``. Each
delay is a constant plus, optionally, a jitter drawn from a seeded generator of the agent's
own, kept apart from the one it decides with (uniform on ``[0, jitter_ns]``). Zero by
default; with zero data delay the events are delivered at once, before anything else
scheduled for the same instant: first to the feed's subscribers that the events do not
name, then to each named trader in the order it first appears. Orders an agent sends with
the same delay arrive in the order sent; with jitter they may overtake each other, as on a
network.

``run(until=..., max_events=...)`` processes scheduled work until simulated time passes
``until`` or ``max_events`` exchange events have been produced; it can be called again to
go on. The log (``log``: one ``(time, symbol, events)`` entry per command, ``events`` a
tuple) and the venue's accounts can be read at any point.

Garbage collection. A long run keeps many small objects alive (the log, resting orders),
and CPython's cyclic collector then runs often and walks them all. ``run`` raises the
collector's first threshold to ``gc_threshold`` (default ``GC_THRESHOLD``, 50,000; None
leaves the collector alone) while it works and restores it when it returns; log entries
are tuples of untracked records, so the collector stops following them after their first
collection.
Nothing is collected differently, only less often (``bench/RESULTS.md`` has the figures).
"""

from __future__ import annotations

import gc
import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from heapq import heappop, heappush
from itertools import count

from exchange.accounts import Account
from exchange.book import OrderBook
from exchange.events import BookUpdate, Fill
from exchange.venue import Exchange

US = 1_000
MS = 1_000_000
SECOND = 1_000_000_000
GC_THRESHOLD = 50_000  # default first threshold of the cyclic collector while ``run`` works

_ORDER, _DELIVER, _WAKE = 0, 1, 2
_PUBLIC = (BookUpdate, Fill)
_NEVER = 1 << 256  # a time after every simulated time (``run`` without ``until``)
_NOBODY, _MANY = object(), object()  # markers for "no trader" / "several traders"


@dataclass(frozen=True)
class Latency:
    """Order-entry and market-data delays in ns: a constant plus uniform jitter."""

    order_ns: int = 0
    data_ns: int = 0
    order_jitter_ns: int = 0
    data_jitter_ns: int = 0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if type(value) is not int or value < 0:
                raise ValueError(f"Latency.{name} must be a non-negative int (ns), got {value!r}")


class Agent:
    """Base class of simulated traders; override the callbacks you need."""

    market_data: bool = True  # receive the public feed of ``symbols``
    symbols: tuple[str, ...] | None = None  # None: every symbol of the venue

    def __init__(self, trader: int, latency: Latency | None = None) -> None:
        self.trader = trader
        self.latency = latency if latency is not None else Latency()

    def on_start(self, ctx: Context) -> None:
        """Called once at time 0."""

    def on_wakeup(self, ctx: Context) -> None:
        """Called at each time the agent scheduled."""

    def on_events(self, ctx: Context, symbol: str, events: list) -> None:
        """Called with the events of one command that this agent may see."""
        for ev in events:
            self.on_event(ctx, symbol, ev)

    def on_event(self, ctx: Context, symbol: str, event: object) -> None:
        """Called for each delivered event (unless ``on_events`` is overridden)."""


class Context:
    """An agent's handle on the simulation: the clock, its generator, sending and waking."""

    __slots__ = (
        "sim", "agent", "trader", "rng", "latency_rng", "feed", "_order_delay", "_order_jitter", "_data_delay", "_data_jitter",
        "_order_now", "_heap", "_due", "_seq", "_next_id", "_books", "_on_events", "_on_wakeup",
    )

    def __init__(self, sim: Simulator, agent: Agent, rng: random.Random, latency_rng: random.Random) -> None:
        self.sim = sim
        self.agent = agent
        self.trader = agent.trader
        self.rng = rng  # the agent's decisions
        self.latency_rng = latency_rng  # its jitter, apart, so turning jitter on changes no decision
        symbols = sim.exchange.engines if agent.symbols is None else agent.symbols
        self.feed = frozenset(symbols) if agent.market_data else frozenset()  # symbols whose feed it takes
        lat = agent.latency
        self._order_delay, self._order_jitter = lat.order_ns, lat.order_jitter_ns
        self._data_delay, self._data_jitter = lat.data_ns, lat.data_jitter_ns
        self._order_now = not lat.order_ns and not lat.order_jitter_ns  # orders arrive at this instant
        self._heap, self._due, self._seq, self._next_id = sim._heap, sim._due, sim._next, sim._next_order_id
        self._books = sim._books
        self._on_events, self._on_wakeup = agent.on_events, agent.on_wakeup  # bound again by ``run``

    @property
    def now(self) -> int:
        """Simulated time in ns."""
        return self.sim.now

    def submit(self, symbol: str, command: object) -> None:
        """Send a command; it reaches the exchange after the agent's order latency."""
        if self._order_now:  # arrives at this instant, after what is already due now
            self._due.append((_ORDER, symbol, command))
            return
        delay = self._order_delay
        if self._order_jitter:
            delay += self.latency_rng.randint(0, self._order_jitter)
        if delay:
            heappush(self._heap, (self.sim.now + delay, self._seq(), _ORDER, symbol, command))
        else:
            self._due.append((_ORDER, symbol, command))

    def wake_in(self, delay_ns: int) -> None:
        """Call ``on_wakeup`` after ``delay_ns`` nanoseconds (>= 0)."""
        if delay_ns > 0:
            heappush(self._heap, (self.sim.now + delay_ns, self._seq(), _WAKE, self, None))
        elif delay_ns == 0:
            self._due.append((_WAKE, self, None))
        else:
            raise ValueError(f"cannot wake in the past: {delay_ns} ns")

    def wake_at(self, time_ns: int) -> None:
        """Call ``on_wakeup`` at ``time_ns`` (not before now)."""
        now = self.sim.now
        delay_ns = time_ns - now
        if delay_ns > 0:
            heappush(self._heap, (now + delay_ns, self._seq(), _WAKE, self, None))
        elif delay_ns == 0:
            self._due.append((_WAKE, self, None))
        else:
            raise ValueError(f"cannot wake in the past: {delay_ns} ns")

    def next_order_id(self) -> int:
        """A venue-unique order id."""
        return self._next_id()

    def book(self, symbol: str) -> OrderBook:
        """The exchange's current book of ``symbol`` (read it, never change it)."""
        return self._books[symbol]

    @property
    def account(self) -> Account:
        """This agent's account at the venue."""
        return self.sim.exchange.accounts.account(self.trader)


def _group(events: list) -> tuple[dict[int, list], list, object]:
    """One pass over a command's events: each named trader's own events (its private events
    and the fills it took part in, in order), the public events, and the one trader named
    by private events (``_NOBODY``: none, ``_MANY``: several)."""
    views: dict[int, list] = {}
    public: list = []
    owner = _NOBODY
    for ev in events:
        t = type(ev)
        if t is BookUpdate:
            public.append(ev)
        elif t is Fill:
            public.append(ev)
            maker, taker = ev.maker_trader, ev.taker_trader  # type: ignore[attr-defined]
            mine = views.get(maker)
            if mine is None:
                views[maker] = [ev]
            else:
                mine.append(ev)
            if taker != maker:
                mine = views.get(taker)
                if mine is None:
                    views[taker] = [ev]
                else:
                    mine.append(ev)
        else:
            trader = ev.trader  # type: ignore[attr-defined]
            mine = views.get(trader)
            if mine is None:
                views[trader] = [ev]
            else:
                mine.append(ev)
            if owner != trader:
                owner = trader if owner is _NOBODY else _MANY
    return views, public, owner


class Simulator:
    """Runs agents against an ``Exchange`` in simulated time (see the module docstring).

    ``seed`` seeds every agent's generators; ``gc_threshold`` is the cyclic collector's
    first threshold while ``run`` works (None: leave the collector as it is)."""

    def __init__(self, exchange: Exchange, agents: Sequence[Agent], *, seed: int = 0, gc_threshold: int | None = GC_THRESHOLD) -> None:
        traders = [a.trader for a in agents]
        if len(set(traders)) != len(traders):
            raise ValueError(f"agents must have distinct traders, got {traders}")
        unknown = {s for a in agents for s in (a.symbols or ())} - set(exchange.engines)
        if unknown:
            raise ValueError(f"agents trade unknown symbols {sorted(unknown)}")
        self.exchange = exchange
        self.agents = list(agents)
        self.seed = seed
        self.gc_threshold = gc_threshold
        self.now = 0
        self.log: list[tuple[int, str, tuple]] = []
        self.events_produced = 0
        self._heap: list[tuple] = []  # (time, sequence, kind, a, b): work for later instants
        self._due: deque[tuple] = deque()  # (kind, a, b): work scheduled for this instant, in order
        self._next = count().__next__
        self._next_order_id = count(1).__next__
        self._books = {s: e.book for s, e in exchange.engines.items()}  # an engine keeps its book
        self._contexts = [
            Context(self, a, random.Random(f"{seed}/{i}/{a.trader}"), random.Random(f"{seed}/{i}/{a.trader}/latency"))
            for i, a in enumerate(agents)
        ]
        self._by_trader = {c.trader: c for c in self._contexts}
        # per symbol, None without subscribers, else: the market-data subscribers with no
        # delay and no jitter (served at once), the other jitter-free ones grouped by their
        # constant data delay (one heap entry per group and command), those with jitter
        self._feed: dict[str, tuple[list[Context], list[tuple[int, list[Context]]], list[Context]] | None] = {}
        for s in exchange.engines:
            subs = [c for c in self._contexts if s in c.feed]
            groups: dict[int, list[Context]] = {}
            for c in subs:
                if not c._data_jitter:
                    groups.setdefault(c._data_delay, []).append(c)
            later = [(delay, contexts) for delay, contexts in groups.items() if delay]
            jittered = [c for c in subs if c._data_jitter]
            self._feed[s] = (groups.get(0, []), later, jittered) if subs else None
        # no agent has a data delay or jitter: every view is delivered at once, no heap entry
        self._instant = all(not c._data_delay and not c._data_jitter for c in self._contexts)
        self._started = False

    # ---- running -----------------------------------------------------------------------------
    def run(self, until: int | None = None, max_events: int | None = None) -> None:
        """Process scheduled work up to time ``until`` (inclusive) or ``max_events`` more
        exchange events, whichever comes first; the clock ends at ``until`` if given."""
        for ctx in self._contexts:  # bound here, so an agent may be changed between runs
            ctx._on_events, ctx._on_wakeup = ctx.agent.on_events, ctx.agent.on_wakeup
        if not self._started:
            self._started = True
            for ctx in self._contexts:
                ctx.agent.on_start(ctx)
        threshold = gc.get_threshold()
        raise_gc = self.gc_threshold is not None and threshold[0] < self.gc_threshold
        if raise_gc:
            gc.set_threshold(self.gc_threshold, *threshold[1:])
        try:
            self._run(until, max_events)
        finally:
            if raise_gc:
                gc.set_threshold(*threshold)

    def _run(self, until: int | None, max_events: int | None) -> None:
        heap, due, pop = self._heap, self._due, self._due.popleft
        submit = self.exchange.submit
        side_events = self.exchange.take_side_events if self.exchange.margin is not None else None
        log, deliver = self.log.append, self._deliver
        # With no data latency anywhere, each symbol's events are delivered here at once:
        # symbol -> its feed's subscribers as (trader, on_events, context), () for none
        instant = {
            s: tuple((c.trader, c._on_events, c) for c in feed[0]) if feed is not None else ()
            for s, feed in self._feed.items()
        } if self._instant else {}
        deliver_private, deliver_instant, by_trader = self._deliver_private, self._deliver_instant, self._by_trader
        horizon = until if until is not None else _NEVER
        produced = self.events_produced
        stop_at = _NEVER if max_events is None else produced + max_events
        now = self.now
        ORDER, WAKE = _ORDER, _WAKE
        while True:
            # Everything in the heap for this instant was scheduled before anything in
            # ``due`` (which only takes work scheduled at this instant), so it goes first.
            if due and now <= horizon and not (heap and heap[0][0] <= now):
                if produced >= stop_at:
                    return
                kind, a, b = pop()
            elif heap and heap[0][0] <= horizon:
                if produced >= stop_at:
                    return
                now, _, kind, a, b = heappop(heap)
                self.now = now
            else:
                break
            if kind == WAKE:
                a._on_wakeup(a)
            elif kind == ORDER:
                events = submit(a, b)
                log((now, a, tuple(events)))
                self.events_produced = produced = produced + len(events)
                subs = instant.get(a)
                if subs is None:  # someone has a data latency
                    deliver(a, events)
                elif len(events) == 2 and type(events[1]) is BookUpdate and type(ev := events[0]) not in _PUBLIC:
                    # the commonest command, an order that rests or a cancel: one private
                    # event and the level's update (``_deliver_instant`` for this case)
                    trader = ev.trader  # type: ignore[attr-defined]
                    if subs:
                        public = [events[1]]
                        for sub, on_events, ctx in subs:
                            if sub != trader:
                                on_events(ctx, a, public)
                    ctx = by_trader.get(trader)
                    if ctx is not None:
                        ctx._on_events(ctx, a, events if a in ctx.feed else [ev])
                elif subs:
                    deliver_instant(a, events, subs)
                else:
                    deliver_private(a, events)
                if side_events is not None:
                    for symbol, others in side_events():  # liquidations on other symbols
                        log((now, symbol, tuple(others)))
                        self.events_produced = produced = produced + len(others)
                        deliver(symbol, others)
            else:
                events, contexts, skip = b
                for ctx in contexts:
                    if ctx.trader not in skip:
                        ctx._on_events(ctx, a, events)
        if until is not None and until > self.now:
            self.now = until

    def _deliver_instant(self, symbol: str, events: list, subs: tuple) -> None:
        """``_deliver`` where nothing is delayed and ``symbol`` has feed subscribers ``subs``
        (``(trader, on_events, context)``): the feed first, then each named trader."""
        views, public, owner = _group(events)
        if public:
            for trader, on_events, ctx in subs:
                if trader not in views:
                    on_events(ctx, symbol, public)
        by_trader = self._by_trader
        for trader, mine in views.items():
            ctx = by_trader.get(trader)
            if ctx is not None:
                if symbol in ctx.feed:
                    if owner is _NOBODY or owner == trader:
                        mine = events
                    else:
                        mine = [ev for ev in events if type(ev) in _PUBLIC or ev.trader == trader]  # type: ignore[attr-defined]
                ctx._on_events(ctx, symbol, mine)

    def _deliver_private(self, symbol: str, events: list) -> None:
        """``_deliver`` where nobody takes the feed of ``symbol`` and nothing is delayed: each
        named trader gets its own events at once, in the order it first appears."""
        views: dict[int, list] = {}
        for ev in events:
            t = type(ev)
            if t is BookUpdate:
                continue
            if t is Fill:
                maker, taker = ev.maker_trader, ev.taker_trader  # type: ignore[attr-defined]
                mine = views.get(maker)
                if mine is None:
                    views[maker] = [ev]
                else:
                    mine.append(ev)
                if taker != maker:
                    mine = views.get(taker)
                    if mine is None:
                        views[taker] = [ev]
                    else:
                        mine.append(ev)
            else:
                trader = ev.trader  # type: ignore[attr-defined]
                mine = views.get(trader)
                if mine is None:
                    views[trader] = [ev]
                else:
                    mine.append(ev)
        by_trader = self._by_trader
        for trader, mine in views.items():
            ctx = by_trader.get(trader)
            if ctx is not None:
                ctx._on_events(ctx, symbol, mine)

    def _deliver(self, symbol: str, events: list) -> None:
        """Schedule each agent's view of one command's events after its data latency.

        The public part goes to the feed's subscribers, one heap entry per delay group;
        each trader named in the events gets its own view (its private events merged with
        the feed if it subscribes) in an entry of its own. Zero-delay views are delivered
        at once, feed first, then the named traders in the order they first appear.

        One pass over the events (``_group``) collects each named trader's own events (its
        private events and the fills it took part in) and the public events; with no data
        latency anywhere it hands over to ``_deliver_private`` or ``_deliver_instant``, which
        the run loop also calls directly. A subscriber whose private events are the only ones gets ``events`` itself:
        a batch is read-only and may be shared with other agents and the log."""
        feed = self._feed[symbol]
        if self._instant:  # no data latency anywhere: every view is delivered now, feed first
            if feed is None:
                self._deliver_private(symbol, events)
            else:
                self._deliver_instant(symbol, events, tuple((c.trader, c._on_events, c) for c in feed[0]))
            return
        views, public, owner = _group(events)
        has_public = bool(public)
        by_trader = self._by_trader
        heap, nxt, now = self._heap, self._next, self.now
        at_once: list[Context] = ()  # type: ignore[assignment]
        if has_public and feed is not None:
            at_once, later, jittered = feed
            for delay, contexts in later:
                heappush(heap, (now + delay, nxt(), _DELIVER, symbol, (public, contexts, views)))
            for ctx in jittered:
                if ctx.trader not in views:
                    delay = ctx._data_delay + ctx.latency_rng.randint(0, ctx._data_jitter)
                    if delay:
                        heappush(heap, (now + delay, nxt(), _DELIVER, symbol, (public, (ctx,), ())))
                    else:
                        self._due.append((_DELIVER, symbol, (public, (ctx,), ())))
        mine_now: list | None = None
        for trader, mine in views.items():
            ctx = by_trader.get(trader)
            if ctx is None:
                continue
            if symbol in ctx.feed:
                if owner is _NOBODY or owner == trader:
                    mine = events
                else:
                    mine = [ev for ev in events if type(ev) in _PUBLIC or ev.trader == trader]  # type: ignore[attr-defined]
            delay = ctx._data_delay
            if ctx._data_jitter:
                delay += ctx.latency_rng.randint(0, ctx._data_jitter)
            if delay:
                heappush(heap, (now + delay, nxt(), _DELIVER, symbol, (mine, (ctx,), ())))
            elif mine_now is None:
                mine_now = [ctx, mine]
            else:
                mine_now += (ctx, mine)
        for ctx in at_once:
            if ctx.trader not in views:
                ctx._on_events(ctx, symbol, public)
        if mine_now is not None:
            for i in range(0, len(mine_now), 2):
                ctx = mine_now[i]
                ctx._on_events(ctx, symbol, mine_now[i + 1])

    # ---- reading ------------------------------------------------------------------------------
    def iter_events(self) -> Iterator[tuple[int, str, object]]:
        """Every exchange event so far as ``(time, symbol, event)``, in the order produced."""
        for time, symbol, events in self.log:
            for ev in events:
                yield time, symbol, ev

    def context(self, trader: int) -> Context:
        """The context of the agent trading as ``trader``."""
        return self._by_trader[trader]

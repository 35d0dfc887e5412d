"""A deterministic discrete-event simulator around a venue. No I/O, no wall clock.

Time is an integer number of nanoseconds (``SECOND``, ``MS``, ``US`` help). Everything that
will happen sits in one min-heap keyed by ``(time, sequence)``: order arrivals at the
exchange, deliveries of events to agents and agents' wake-ups. The sequence number breaks
ties in the order things were scheduled, so a seed and a configuration give the same run,
trade for trade.

Agents are objects with callbacks (subclass ``Agent``):

- ``on_start(ctx)`` once, at time 0, in the order the agents were given;
- ``on_wakeup(ctx)`` at the times the agent asked for with ``ctx.wake_in``/``ctx.wake_at``;
- ``on_events(ctx, symbol, events)`` with the events of one command on ``symbol`` that the
  agent may see (default: calls ``on_event(ctx, symbol, event)`` for each).

What an agent sees: its own order events (``Accepted``, ``Rejected``, ``Cancelled``,
``Modified``, ``Triggered``, ``Expired``, ``Refreshed``, and ``Fill`` where it is maker or
taker) and, if ``market_data`` is true, the public feed (``BookUpdate`` and every ``Fill``,
the trade prints) of the symbols in ``symbols`` (None: all). Other traders' private events
are never delivered. ``ctx.book(symbol)`` reads the exchange's current book directly (not
delayed): agents that model latency honestly build their view from delivered events.

Latency (``Latency``, per agent): an order sent at ``t`` reaches the exchange at
``t + order delay``; events produced at ``t`` reach the agent at ``t + data delay``. Each delay
is a constant plus, optionally, a jitter drawn from a seeded generator of the agent's own,
kept apart from the one it decides with (uniform on ``[0, jitter_ns]``). Zero by default; with zero data delay the events are
delivered at once, before anything else scheduled for the same instant. Orders an agent sends with the same delay
arrive in the order sent; with jitter they may overtake each other, as on a network.

``run(until=..., max_events=...)`` processes the heap until simulated time passes ``until``
or ``max_events`` exchange events have been produced; it can be called again to go on. The
log (``log``: one ``(time, symbol, events)`` entry per command) and the venue's accounts can
be read at any point.
"""

from __future__ import annotations

import random
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

_ORDER, _DELIVER, _WAKE = 0, 1, 2
_PUBLIC = (BookUpdate, Fill)


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

    @property
    def now(self) -> int:
        """Simulated time in ns."""
        return self.sim.now

    def submit(self, symbol: str, command: object) -> None:
        """Send a command; it reaches the exchange after the agent's order latency."""
        delay = self._order_delay
        if self._order_jitter:
            delay += self.latency_rng.randint(0, self._order_jitter)
        sim = self.sim
        heappush(sim._heap, (sim.now + delay, sim._next(), _ORDER, symbol, command))

    def wake_in(self, delay_ns: int) -> None:
        """Call ``on_wakeup`` after ``delay_ns`` nanoseconds (>= 0)."""
        if delay_ns < 0:
            raise ValueError(f"cannot wake in the past: {delay_ns} ns")
        sim = self.sim
        heappush(sim._heap, (sim.now + delay_ns, sim._next(), _WAKE, self, None))

    def wake_at(self, time_ns: int) -> None:
        """Call ``on_wakeup`` at ``time_ns`` (not before now)."""
        self.wake_in(time_ns - self.sim.now)

    def next_order_id(self) -> int:
        """A venue-unique order id."""
        return self.sim._next_order_id()

    def book(self, symbol: str) -> OrderBook:
        """The exchange's current book of ``symbol`` (read it, never change it)."""
        return self.sim.exchange.engines[symbol].book

    @property
    def account(self) -> Account:
        """This agent's account at the venue."""
        return self.sim.exchange.accounts.account(self.trader)


class Simulator:
    """Runs agents against an ``Exchange`` in simulated time (see the module docstring)."""

    def __init__(self, exchange: Exchange, agents: Sequence[Agent], *, seed: int = 0) -> None:
        traders = [a.trader for a in agents]
        if len(set(traders)) != len(traders):
            raise ValueError(f"agents must have distinct traders, got {traders}")
        unknown = {s for a in agents for s in (a.symbols or ())} - set(exchange.engines)
        if unknown:
            raise ValueError(f"agents trade unknown symbols {sorted(unknown)}")
        self.exchange = exchange
        self.agents = list(agents)
        self.seed = seed
        self.now = 0
        self.log: list[tuple[int, str, list]] = []
        self.events_produced = 0
        self._heap: list[tuple] = []
        self._next = count().__next__
        self._next_order_id = count(1).__next__
        self._contexts = [
            Context(self, a, random.Random(f"{seed}/{i}/{a.trader}"), random.Random(f"{seed}/{i}/{a.trader}/latency"))
            for i, a in enumerate(agents)
        ]
        self._by_trader = {c.trader: c for c in self._contexts}
        # per symbol: market-data subscribers without jitter, grouped by their constant data
        # delay (one heap entry per group and command), and those with jitter (one each)
        self._feed_groups: dict[str, dict[int, list[Context]]] = {}
        self._feed_jitter: dict[str, list[Context]] = {}
        for s in exchange.engines:
            subs = [c for c in self._contexts if c.agent.market_data and (c.agent.symbols is None or s in c.agent.symbols)]
            groups: dict[int, list[Context]] = {}
            for c in subs:
                if not c.agent.latency.data_jitter_ns:
                    groups.setdefault(c.agent.latency.data_ns, []).append(c)
            self._feed_groups[s] = groups
            self._feed_jitter[s] = [c for c in subs if c.agent.latency.data_jitter_ns]
        self._started = False

    # ---- running -----------------------------------------------------------------------------
    def run(self, until: int | None = None, max_events: int | None = None) -> None:
        """Process scheduled work up to time ``until`` (inclusive) or ``max_events`` more
        exchange events, whichever comes first; the clock ends at ``until`` if given."""
        if not self._started:
            self._started = True
            for ctx in self._contexts:
                ctx.agent.on_start(ctx)
        heap = self._heap
        submit = self.exchange.submit
        liquidations = self.exchange.margin is not None
        log = self.log
        stop_at = None if max_events is None else self.events_produced + max_events
        while heap:
            if until is not None and heap[0][0] > until:
                break
            if stop_at is not None and self.events_produced >= stop_at:
                return
            time, _, kind, a, b = heappop(heap)
            self.now = time
            if kind == _ORDER:
                events = submit(a, b)
                log.append((time, a, events))
                self.events_produced += len(events)
                self._deliver(a, events)
                if liquidations:
                    for symbol, side_events in self.exchange.take_side_events():  # liquidations elsewhere
                        log.append((time, symbol, side_events))
                        self.events_produced += len(side_events)
                        self._deliver(symbol, side_events)
            elif kind == _DELIVER:
                events, contexts, skip = b
                for ctx in contexts:
                    if ctx.trader not in skip:
                        ctx.agent.on_events(ctx, a, events)
            else:
                a.agent.on_wakeup(a)
        if until is not None and until > self.now:
            self.now = until

    def _deliver(self, symbol: str, events: list) -> None:
        """Schedule each agent's view of one command's events after its data latency.

        The public part goes to the feed's subscribers, one heap entry per delay group;
        each trader named in the events gets its own view (its private events merged with
        the feed if it subscribes) in an entry of its own. Zero-delay views are delivered
        at once, feed first."""
        involved: dict[int, None] = {}
        public = False
        for ev in events:
            t = type(ev)
            if t is Fill:
                involved[ev.maker_trader] = None  # type: ignore[attr-defined]
                involved[ev.taker_trader] = None  # type: ignore[attr-defined]
                public = True
            elif t is BookUpdate:
                public = True
            else:
                involved[ev.trader] = None  # type: ignore[attr-defined]
        heap, nxt, now, by_trader = self._heap, self._next, self.now, self._by_trader
        due: list[tuple[list, Sequence[Context], object]] = []
        if public and (self._feed_groups[symbol] or self._feed_jitter[symbol]):
            shared = [ev for ev in events if type(ev) in _PUBLIC]
            for delay, contexts in self._feed_groups[symbol].items():
                if delay:
                    heappush(heap, (now + delay, nxt(), _DELIVER, symbol, (shared, contexts, involved)))
                else:
                    due.append((shared, contexts, involved))
            for ctx in self._feed_jitter[symbol]:
                if ctx.trader not in involved:
                    heappush(heap, (now + self._delay(ctx), nxt(), _DELIVER, symbol, (shared, (ctx,), ())))
        for trader in involved:
            ctx = by_trader.get(trader)
            if ctx is None:
                continue
            if symbol in ctx.feed:
                mine = [ev for ev in events if type(ev) in _PUBLIC or ev.trader == trader]  # type: ignore[attr-defined]
            else:
                mine = [
                    ev
                    for ev in events
                    if (ev.maker_trader == trader or ev.taker_trader == trader if type(ev) is Fill else type(ev) is not BookUpdate and ev.trader == trader)  # type: ignore[attr-defined]
                ]
            delay = self._delay(ctx)
            if delay:
                heappush(heap, (now + delay, nxt(), _DELIVER, symbol, (mine, (ctx,), ())))
            else:
                due.append((mine, (ctx,), ()))
        for batch, contexts, skip in due:
            for ctx in contexts:
                if ctx.trader not in skip:  # type: ignore[operator]
                    ctx.agent.on_events(ctx, symbol, batch)

    @staticmethod
    def _delay(ctx: Context) -> int:
        return ctx._data_delay + (ctx.latency_rng.randint(0, ctx._data_jitter) if ctx._data_jitter else 0)

    # ---- reading ------------------------------------------------------------------------------
    def iter_events(self) -> Iterator[tuple[int, str, object]]:
        """Every exchange event so far as ``(time, symbol, event)``, in the order produced."""
        for time, symbol, events in self.log:
            for ev in events:
                yield time, symbol, ev

    def context(self, trader: int) -> Context:
        """The context of the agent trading as ``trader``."""
        return self._by_trader[trader]

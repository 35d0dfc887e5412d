"""The lean background of the trading environments: noise flow and an inventory-skewed
market maker sent straight to the book, without the simulator.

``TradingConfig(background="flow")`` (or ``"flow_heavy"``, or any ``FlowBackground``)
replaces the scripted agents (``agents``: each an ``exchange.sim.Agent`` deciding from its
own delivered events, with its own ``Context`` and generator) by ``FlowMarket``, which
generates the same kind of order flow in a few lines per message and submits it to the
instrument's ``MatchingEngine`` directly. It is the scalar twin of ``vector.background``
(``BackgroundParams``'s fields, defaults and rules, one book at a time): the same noise
traders and Avellaneda-Stoikov maker, counted in messages per env step.

Per env step, in this order (the environment sends the learners' commands first, at the
start of the step, through the venue):

1. Market maker (the trader after the noise traders), if ``market_maker``: it quotes one
   side per step, the bid on odd background steps and the ask on even ones (so each side
   is re-quoted every two steps). Reservation price ``r = s - q gamma sigma^2 tau`` and spread
   ``gamma sigma^2 tau + (2 / gamma) ln(1 + gamma / k)`` in ticks (fixed ``sigma``,
   constant ``tau = horizon_s``), bid rounded down and ask up, at least
   ``min_spread_ticks`` apart, clamped one tick inside the other traders' opposite best;
   ``s`` is the mid of the other traders' best prices (else the last trade, else the one
   side that shows, else ``reference_price``), ``q`` its position. Size ``quote_qty``, cut
   so a fill cannot take ``|q|`` past ``max_inventory``. A standing quote that differs
   (price, or more lots than wanted) is cancelled and the new one entered (post-only where
   the instrument accepts it): two messages; a quote that still stands sends nothing.
2. Noise traders (the ``n_noise`` traders after the learners): first each cancels its
   orders older than ``max_age_steps``; then ``noise_rounds`` rounds, round ``r``
   belonging to noise trader ``r % n_noise``, each an arrival with probability ``p_arrival``: with probability
   ``p_cancel`` a cancel of the trader's oldest working order; with ``p_market`` an IOC
   market order of a random side (skipped when the opposite side is empty); otherwise a
   GTC limit of a random side ``0..depth_ticks`` ticks behind the reference (mid, else
   last trade, else the one side, else ``reference_price``), rounded to the tick on the
   passive side, after cancelling the trader's oldest order if it has
   ``max_open_orders``. Sizes are uniform on ``min_qty..max_qty`` lots. An order that
   could take the trader's position past the venue's ``max_position`` (counting its
   working orders of that side) is not sent. A noise trader's working orders are known
   exactly without reading the book: ``FlowMarket.noise_orders`` follows them from the
   events of every command (their entry, fills against them, cancels, self-match
   cancels), and ``FlowMarket.check_invariants()`` compares it with the book.

Every background order carries its trader's self-match id. Rates are per env step (they
do not scale with ``step_ns``). An episode starts from a ladder of noise orders
(``warm_levels`` each side, one to ``warm_levels`` ticks from ``reference_price``, sizes
uniform on 1..10 lots), then the background runs alone for the environment's
``warmup_ns`` (one background step per ``step_ns``).

Randomness: a numpy ``PCG64`` seeded at reset from the environment's generator
(``reset(seed=...)`` fixes the episode), read as raw 64-bit words in blocks of ``BLOCK``;
one word per noise round, cut into fields as in ``vector.background``: bits 0-15 the
arrival, 16-31 the kind, 32-47 the size, 48-62 the offset, 63 the side.

Accounting and risk. The learners' commands go through ``Exchange.submit`` (risk limits,
matching, accounts, margin), as with the scripted background. Background commands skip the
venue: no risk check (the flow keeps its own positions within ``max_position``), no bar
after a liquidation, and no simulator. Every ``Fill`` they produce is applied to
``exchange.accounts``, so every trader's position, cash and fees are exact and the
conservation laws hold; their acceptances are not (``Account.orders`` counts what went
through ``Exchange.submit``, i.e. the learners' orders). When a background order fills a
resting order of a learner, that command's fills go through ``Exchange.record`` (accounts,
the venue's open-order tracking, so its risk checks of the learners stay exact, and its
margin check) and to the learner's ``OrderTracker``. The venue does not track the
background traders' open orders.

Margin (``envs.multi``, whose venue has a ``MarginPolicy``). The venue checks margins after
every command it sees (the learners' commands, background commands that fill a learner) and,
since the rest of the background bypasses it, once after every background step
(``Exchange.record`` of no events); a liquidation's events (``Liquidation``, the cancels,
the flattening fills) update the tape, the noise traders' orders and the learners'
trackers, and go to ``log`` as one entry of their own (no command).

Several learners (``envs.multi``): every learner's command goes through the venue the same
way; the background traders take the trader ids after the learners'.

Lean engine entries. A background limit that rests whole and a cancel of a resting order
go through ``MatchingEngine.rest`` and ``MatchingEngine.withdraw`` (the noise loop inlines
their lean path where it surely applies, reading the engine's private ``_lean_state`` and
seq counter: a rest and a cancel cost 8.1k instructions inlined against 13.5k through the
methods; ``test_lean_entries_give_the_episode_of_full_submits`` in ``tests/test_envs_flow.py``
keeps the inlined path equal to ``submit``), which change the book exactly as ``submit``
would and draw the same ``seq`` numbers but build no event objects (nothing reads them
unless a fill happens); an order that would trade, or anything unusual, falls back to
``submit`` and its events are settled as before. A noise market order goes through
``MatchingEngine.take``, which builds only the events that concern others (fills, level
updates, self-match cancels), not its own acceptance and the cancel of its rest. Each is
still one command, counted with every event it produced. With ``FlowMarket.log`` set every
command goes through ``submit`` (one log entry per command).

``info["commands"]`` counts every command that reached the book (the learners' and the
background's, refused ones included) and ``info["messages"]`` the events they produced,
exactly as with the scripted background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

import numpy as np

from exchange.book import HIDDEN, PRICE, QTY, SIDE, TIME, TRADER, BookSide
from exchange.commands import Cancel, NewOrder
from exchange.enums import OrderType, TimeInForce
from exchange.events import BookUpdate, Cancelled, Fill, Liquidation
from exchange.venue import Exchange

#: Raw random words drawn at a time.
BLOCK = 1024

_LIMIT, _MARKET = OrderType.LIMIT, OrderType.MARKET
_GTC, _IOC = TimeInForce.GTC, TimeInForce.IOC
_WALK = 64  # ticks walked from a price to find the next level before sorting the side


@dataclass(frozen=True)
class FlowBackground:
    """Parameters of ``FlowMarket``: the fields and defaults of ``vector.background.BackgroundParams``
    (sizes in lots, prices in ticks, rates per env step)."""

    # ---- noise traders -------------------------------------------------------------------------
    n_noise: int = 2  # noise traders
    noise_rounds: int = 3  # noise rounds per env step (one possible arrival each)
    p_arrival: float = 0.87  # probability that a round brings an arrival
    p_market: float = 0.15  # share of arrivals that are market orders
    p_cancel: float = 0.2  # share of arrivals that cancel the trader's oldest order
    min_qty: int = 1  # order size, uniform on min_qty..max_qty
    max_qty: int = 10
    depth_ticks: int = 5  # a limit rests 0..depth_ticks ticks behind the reference price
    max_age_steps: int = 50  # older noise orders are cancelled (5 s at 100 ms steps)
    max_open_orders: int = 10  # per noise trader; at the cap its oldest order is cancelled
    # ---- market maker --------------------------------------------------------------------------
    market_maker: bool = True  # one Avellaneda-Stoikov maker
    gamma: float = 0.1  # risk aversion, per tick
    k: float = 1.5  # decay of the fill intensity, per tick
    sigma: float = 1.0  # mid volatility, ticks per sqrt(second) (fixed, not estimated)
    horizon_s: float = 1.0  # T - t in seconds (a rolling horizon)
    quote_qty: int = 5  # lots per side
    max_inventory: int = 50  # |inventory| bound of the maker
    min_spread_ticks: int = 1  # narrowest quoted spread
    # ---- the book an episode starts from -------------------------------------------------------
    warm_levels: int = 5  # noise orders resting 1..warm_levels ticks each side of the reference at reset

    def __post_init__(self) -> None:
        if self.n_noise < 1 or self.noise_rounds < 0 or self.warm_levels < 0:
            raise ValueError("need n_noise >= 1, noise_rounds >= 0, warm_levels >= 0")
        if not (0 <= self.p_arrival <= 1 and 0 <= self.p_market and 0 <= self.p_cancel and self.p_market + self.p_cancel <= 1):
            raise ValueError("probabilities must be in [0, 1], p_market + p_cancel <= 1")
        if not 1 <= self.min_qty <= self.max_qty or self.max_qty > 255:
            raise ValueError("need 1 <= min_qty <= max_qty <= 255")
        if not 0 <= self.depth_ticks <= 255 or self.max_age_steps < 1 or self.max_open_orders < 1:
            raise ValueError("need 0 <= depth_ticks <= 255, max_age_steps >= 1, max_open_orders >= 1")
        if self.gamma <= 0 or self.k <= 0 or self.sigma < 0 or self.horizon_s < 0:
            raise ValueError("need gamma, k > 0 and sigma, horizon_s >= 0")
        if self.quote_qty < 1 or self.max_inventory < 0 or self.min_spread_ticks < 1:
            raise ValueError("need quote_qty >= 1, max_inventory >= 0, min_spread_ticks >= 1")

    @property
    def n_traders(self) -> int:
        """Background traders (noise traders, then the maker)."""
        return self.n_noise + int(self.market_maker)

    @property
    def skew(self) -> float:
        """Ticks the reservation price moves per lot of inventory."""
        return self.gamma * self.sigma * self.sigma * self.horizon_s

    @property
    def spread(self) -> float:
        """The model's total spread in ticks."""
        return self.skew + (2.0 / self.gamma) * math.log1p(self.gamma / self.k)


#: The light background: about 5 book messages per env step with a random learner (``bench.envs``).
FLOW_LIGHT = FlowBackground()
#: The heavy background: about 24 book messages per env step with a random learner.
FLOW_HEAVY = FlowBackground(n_noise=4, noise_rounds=20, p_arrival=0.93)
#: Names accepted by ``TradingConfig.background``.
FLOWS = {"flow": FLOW_LIGHT, "flow_heavy": FLOW_HEAVY}


def resolve(background: Any) -> Any:
    """``TradingConfig.background`` with a flow name replaced by its ``FlowBackground``."""
    if isinstance(background, str):
        try:
            return FLOWS[background]
        except KeyError:
            raise ValueError(f"unknown background {background!r}; choose from {sorted(FLOWS)} or pass Background(...)s") from None
    return background


class LearnerContext:
    """What ``envs.actions`` needs of an ``exchange.sim.Context`` for one learner, in a
    ``FlowMarket``: ``now``, ``submit(symbol, command)``, ``next_order_id()``, ``book(symbol)``
    (plain attributes, kept current by the market)."""

    __slots__ = ("trader", "now", "submit", "next_order_id", "book")

    def __init__(self, market: FlowMarket, trader: int) -> None:
        self.trader = trader
        self.now = market.now
        self.submit = market.submit
        self.next_order_id = market.next_order_id
        engines = market.exchange.engines
        self.book = lambda symbol: engines[symbol].book


class FlowMarket:
    """One symbol of an ``Exchange``, its learners and a ``FlowBackground`` (see the module docstring).

    Offers the part of ``exchange.sim.Simulator`` the environments use: ``now``,
    ``seed``, ``run(until)`` (one background step at each multiple of ``step_ns``),
    ``context(learner)``, ``events_produced``, and ``commands`` (commands processed, the
    simulator's ``len(log)``). ``log`` is None; set it to a list to record
    ``(time, symbol, events)`` of every command from then on (tests, debugging).

    ``learners``: the learning agents (``envs.trading.Learner``, ``envs.multi.MultiLearner``),
    each with a ``trader`` id and an ``OrderTracker`` as ``orders``; the market keeps their
    trackers current from the events that name them (a ``Liquidation`` goes to the
    learner's ``on_events``). The background traders take the ids after the highest
    learner's: noise traders ``first .. first + n_noise - 1`` (``noise_traders``), then the
    maker. ``flow`` and ``trades`` are the tape (signed lots, buyer-initiated positive, and
    count of every trade print) since the environment last zeroed them.

    ``noise_orders[k]`` holds noise trader ``noise_traders[k]``'s resting orders exactly, oldest
    first: order id -> ``[order id, side, step born, open lots]``, kept from the events of
    every command (its own entries and cancels, fills against it, self-match cancels, the
    venue's liquidations), so no decision reads the book to find them;
    ``check_invariants()`` compares them with the book.
    """

    def __init__(
        self,
        exchange: Exchange,
        symbol: str,
        params: FlowBackground,
        learners: Sequence[Any],
        *,
        seed: int,
        step_ns: int,
        reference_price: int,
        max_position: int,
    ) -> None:
        if not learners:
            raise ValueError("a FlowMarket needs at least one learner")
        self.exchange = exchange
        self.symbol = symbol
        self.params = params
        self.learners = tuple(learners)
        self.seed = seed
        self.step_ns = step_ns
        self.reference_price = reference_price
        self.max_position = max_position
        self.now = 0
        self.steps = 0  # background steps run
        self.events_produced = 0
        self.commands = 0
        self.flow = 0  # the tape since the environment last zeroed it (class docstring)
        self.trades = 0
        self.log: list | None = None
        engine = self.engine = exchange.engines[symbol]
        self.book = engine.book
        spec = engine.spec
        self.tick, self.lot = spec.tick, spec.lot
        self._post_only = spec.post_only
        self._engine_submit = engine.submit
        self._engine_rest = engine.rest
        self._engine_withdraw = engine.withdraw
        self._engine_take = engine.take
        self._venue_submit = exchange.submit
        self._apply_fills = exchange.accounts.apply_fills
        self._record = exchange.record
        self._margin = exchange.margin is not None
        self._bitgen = np.random.PCG64(seed)
        self._words: list[int] = []
        self._word = 0
        self.next_order_id = count(1).__next__
        self._due = step_ns
        self._contexts = {lr.trader: LearnerContext(self, lr.trader) for lr in self.learners}
        self._trackers = {lr.trader: lr.orders for lr in self.learners}
        self._by_trader = {lr.trader: lr for lr in self.learners}
        first = self._first = max(self._trackers) + 1
        n = self._n_noise = params.n_noise
        self.noise_traders = list(range(first, first + n))  # noise trader first + k is noise_orders[k]
        self.maker = first + n if params.market_maker else None
        accounts = exchange.accounts
        # accounts opened now (cash is conserved from the start); positions read straight from them
        self._positions = [accounts.account(t).positions for t in self.noise_traders]
        self._maker_positions = accounts.account(self.maker).positions if self.maker is not None else {}
        self.noise_orders: list[dict[int, list]] = [{} for _ in range(n)]  # see the class docstring
        self._working = [[0, 0, 0] for _ in range(n)]  # per noise trader, [_, buy lots, sell lots] resting
        self._skew, self._half_spread = params.skew, params.spread / 2
        self.quotes = {1: 0, -1: 0}  # the maker's bid and ask order ids (0: none)
        self._p_arrival = round(params.p_arrival * 65536)
        self._p_cancel = round(params.p_cancel * 65536)
        self._p_market = round((params.p_cancel + params.p_market) * 65536)
        self._n_qty = params.max_qty - params.min_qty + 1
        # the parameters the hot loops read, as plain attributes
        self._rounds, self._max_age, self._cap = params.noise_rounds, params.max_age_steps, params.max_open_orders
        self._min_qty, self._span = params.min_qty, params.depth_ticks + 1
        self._quote_qty, self._max_inventory, self._min_spread = params.quote_qty, params.max_inventory, params.min_spread_ticks
        # per noise round, its trader's (orders, working lots, positions, id): what the hot loop reads
        traders = [(self.noise_orders[k], self._working[k], self._positions[k], self.noise_traders[k]) for k in range(n)]
        self._round_traders = [traders[r % n] for r in range(params.noise_rounds)]
        self._warm()

    @property
    def background_traders(self) -> list[int]:
        """The background's trader ids: the noise traders, then the maker (if any)."""
        return self.noise_traders + ([self.maker] if self.maker is not None else [])

    # ---- the Simulator interface ---------------------------------------------------------------
    def context(self, trader: int) -> LearnerContext:
        try:
            return self._contexts[trader]
        except KeyError:
            raise KeyError(f"trader {trader} is not a learner of this FlowMarket") from None

    def run(self, until: int) -> None:
        """Run the background steps due up to ``until`` (inclusive); the clock ends at ``until``.

        With a venue ``MarginPolicy``, the venue checks every position holder's margin after
        each background step (``Exchange.record`` of no events), as it would after a command."""
        quote = self._quote if self.maker is not None else None
        noise = self._noise if self._rounds else None
        due = self._due
        while due <= until:
            self.now = due
            t = self.steps = self.steps + 1
            if quote is not None:
                quote(t)
            if noise is not None:
                noise(t)
            if self._margin:
                self._check_margin()
            due = self._due = due + self.step_ns
        self.now = until
        for ctx in self._contexts.values():
            ctx.now = until

    def submit(self, symbol: str, command: object) -> list:
        """A learner's command, through the venue (risk, matching, accounts, margin); its events."""
        events = self._venue_submit(symbol, command)
        self.commands += 1
        self.events_produced += len(events)
        if self.log is not None:
            self.log.append((self.now, symbol, tuple(events)))
        self._deliver(events)
        return events

    def check_invariants(self) -> None:
        """Raise AssertionError unless ``noise_orders`` (and the working lots per side) are
        exactly the noise traders' resting orders in the book, oldest first."""
        orders = self.book.orders
        for k, trader in enumerate(self.noise_traders):
            mine = self.noise_orders[k]
            resting = {oid: o[QTY] + o[HIDDEN] for oid, o in orders.items() if o[TRADER] == trader}
            assert resting == {oid: e[3] for oid, e in mine.items()}, f"noise trader {trader}: tracked orders differ from the book"
            assert all(oid == e[0] and orders[oid][SIDE] == e[1] for oid, e in mine.items())
            born = [e[2] for e in mine.values()]
            assert born == sorted(born), "noise orders out of age order"
            for side in (1, -1):
                assert self._working[k][side] == sum(e[3] for e in mine.values() if e[1] == side)

    # ---- events --------------------------------------------------------------------------------
    def _deliver(self, events: list) -> None:
        """Events that went through the venue (a learner's command, a liquidation): the tape,
        the noise traders' orders they fill or cancel, and each learner's own events."""
        first, n, trackers = self._first, self._n_noise, self._trackers
        for ev in events:
            t = type(ev)
            if t is BookUpdate:
                continue
            if t is Fill:
                self.trades += 1
                self.flow += ev.aggressor * ev.qty
                maker, taker = ev.maker_trader, ev.taker_trader
                k = maker - first
                if 0 <= k < n:
                    self._noise_filled(k, ev.maker_id, ev.qty)
                tracker = trackers.get(taker)
                if tracker is not None:
                    tracker.apply(ev)
                if maker != taker:
                    tracker = trackers.get(maker)
                    if tracker is not None:
                        tracker.apply(ev)
                continue
            trader = ev.trader
            if t is Cancelled:
                k = trader - first
                if 0 <= k < n:
                    self._noise_cancelled(k, ev.order_id)
                    continue
            tracker = trackers.get(trader)
            if tracker is not None:
                if t is Liquidation:
                    self._by_trader[trader].on_events(self._contexts[trader], self.symbol, [ev])
                else:
                    tracker.apply(ev)

    def _venue_events(self, events: list) -> None:
        """Events the venue produced on its own (a margin check's liquidation): counted,
        logged (one entry, no command) and delivered."""
        self.events_produced += len(events)
        if self.log is not None:
            self.log.append((self.now, self.symbol, tuple(events)))
        self._deliver(events)

    def _check_margin(self) -> None:
        """The venue's margin check of every position holder (``Exchange.record`` of no events)."""
        events: list = []
        self._record(self.symbol, events)
        if events:
            self._venue_events(events)

    # ---- background ----------------------------------------------------------------------------
    def _send(self, command: object) -> list:
        """A background command, straight to the engine; fills to the accounts (module docstring)."""
        events = self._engine_submit(command)
        self.commands += 1
        self.events_produced += len(events)
        if self.log is not None:
            self.log.append((self.now, self.symbol, tuple(events)))
        if len(events) > 2:  # anything shorter is an acceptance, a cancel or a refusal: no fill
            self._settle(events)
        return events

    def _settle(self, events: list) -> None:
        """Fills of a background command to the accounts (and, where they hit learners'
        orders, to the venue's tracking, its margin check, and the learners' trackers);
        noise orders it filled or cancelled (self-match) leave ``noise_orders``
        (``_noise_filled`` and ``_noise_cancelled``, inlined: this runs for every trade)."""
        fills = []
        first, n, trackers, hit = self._first, self._n_noise, self._trackers, False
        live, working = self.noise_orders, self._working
        flow = 0
        for ev in events:
            t = type(ev)
            if t is Fill:
                fills.append(ev)
                qty = ev.qty
                flow += ev.aggressor * qty
                k = ev.maker_trader - first
                if 0 <= k < n:
                    e = live[k].get(ev.maker_id)
                    if e is not None:
                        working[k][e[1]] -= qty
                        if e[3] == qty:
                            del live[k][ev.maker_id]
                        else:
                            e[3] -= qty
                elif ev.maker_trader in trackers:
                    hit = True
            elif t is Cancelled:
                k = ev.trader - first
                if 0 <= k < n:
                    e = live[k].pop(ev.order_id, None)
                    if e is not None:
                        working[k][e[1]] -= e[3]
        if fills:
            self.trades += len(fills)
            self.flow += flow
            if hit:
                n_fills = len(fills)
                self._record(self.symbol, fills)  # accounts, the venue's view of the learners' orders, margin
                for f in fills[:n_fills]:
                    tracker = trackers.get(f.maker_trader)
                    if tracker is not None:
                        tracker.apply(f)
                if len(fills) > n_fills:  # the margin check liquidated someone: its events follow
                    self._venue_events(fills[n_fills:])
            else:
                self._apply_fills(self.symbol, fills)

    def _noise_filled(self, k: int, order_id: int, qty: int) -> None:
        """``qty`` lots of noise trader ``noise_traders[k]``'s resting order traded."""
        e = self.noise_orders[k].get(order_id)
        if e is not None:
            self._working[k][e[1]] -= qty
            if e[3] == qty:
                del self.noise_orders[k][order_id]
            else:
                e[3] -= qty

    def _noise_cancelled(self, k: int, order_id: int) -> None:
        """Noise trader ``noise_traders[k]``'s order ``order_id`` was cancelled (if it was tracked)."""
        e = self.noise_orders[k].pop(order_id, None)
        if e is not None:
            self._working[k][e[1]] -= e[3]

    def _forget(self, k: int, e: list) -> Cancel:
        """Take noise trader ``noise_traders[k]``'s resting order ``e`` (an entry of
        ``noise_orders[k]``) out of ``noise_orders``; the ``Cancel`` to send for it."""
        oid = e[0]
        del self.noise_orders[k][oid]
        self._working[k][e[1]] -= e[3]
        return Cancel(oid, self.noise_traders[k])

    def _rested(self, k: int, order_id: int, side: int, born: int) -> None:
        """Enter noise trader ``noise_traders[k]``'s new order in ``noise_orders`` if (what is left of) it rests."""
        o = self.book.orders.get(order_id)
        if o is not None:
            qty = o[QTY] + o[HIDDEN]
            self.noise_orders[k][order_id] = [order_id, side, born, qty]
            self._working[k][side] += qty

    def _draw(self) -> int:
        """The next raw 64-bit random word."""
        i = self._word
        words = self._words
        if i == len(words):
            words = self._words = self._bitgen.random_raw(BLOCK).tolist()
            i = 0
        self._word = i + 1
        return words[i]

    def _warm(self) -> None:
        """The starting ladder: ``warm_levels`` noise orders each side of the reference price."""
        p, tick, lot = self.params, self.tick, self.lot
        ref = max(1, round(self.reference_price / tick))
        for level in range(1, p.warm_levels + 1):
            word = self._draw()
            for j, side in enumerate((1, -1)):
                price = (ref - side * level) * tick
                if price < tick:
                    continue
                k = (2 * level + j) % p.n_noise
                trader = self.noise_traders[k]
                qty = (1 + (((word >> (16 * j)) & 0xFFFF) * 10 >> 16)) * lot
                oid = self.next_order_id()
                self._send(NewOrder(oid, trader, side, qty, price, _LIMIT, _GTC, None, None, None, False, trader))
                self._rested(k, oid, side, 0)

    def _noise(self, t: int) -> None:
        """The noise traders' step: aged cancels, then ``noise_rounds`` rounds.

        Plain rests and cancels take the engine's lean path (``MatchingEngine.rest`` and
        ``withdraw``, inlined while the engine takes the fast path and holds no stops: no
        event objects unless the order trades), market orders ``MatchingEngine.take``; all
        counted and settled here rather than through ``_send`` (calls fewer per message: this
        is the hot loop); with ``log`` set every command goes through ``_send``."""
        if self.log is not None:
            return self._noise_logged(t)
        n, live, working, traders = self._n_noise, self.noise_orders, self._working, self.noise_traders
        engine, book = self.engine, self.book
        bids, asks, resting = book.bids, book.asks, book.orders
        # ``MatchingEngine.rest`` and ``withdraw`` inlined below where their lean path surely applies
        # (ids from this market's counter, ints on the tick and lot, the trader's own resting orders)
        _, stops, tops, _, _, _, _, max_qty, gtc_ok, _ = engine._lean_state
        nxt, withdraw = engine._next_seq, self._engine_withdraw
        inline = gtc_ok and engine.fast_path and not stops

        def drop_oldest(mine: dict, wk: list, trader: int) -> int:
            """Cancel ``trader``'s oldest working order (``mine``, ``wk``: its entries and working
            lots): ``withdraw``, inlined where its lean path surely applies; the events it made."""
            e = next(iter(mine.values()))
            oid = e[0]
            del mine[oid]
            wk[e[1]] -= e[3]
            o = resting.get(oid) if inline else None
            if o is None:
                events = withdraw(oid, trader)
                return 2 if events is None else len(events)  # a cancel never fills
            bs = bids if o[SIDE] == 1 else asks  # no events built, their two seqs drawn
            level = bs.levels[o[PRICE]]
            level.qty -= o[QTY]
            level.hidden -= o[HIDDEN]
            o[QTY] = o[HIDDEN] = 0
            del resting[oid]
            if tops[o[SIDE]] is o:
                tops[o[SIDE]] = None
            level.count -= 1
            level.dead += 1
            if level.count:
                if level.dead > 32 and level.dead > level.count:
                    level.compact()
            else:
                bs.remove_level(o[PRICE])
            nxt()
            engine._last_seq = nxt()
            return 2

        born_before = t - self._max_age
        commands = produced = 0  # this step's sends, added to the counters at the end
        for k in range(n):
            mine, wk, trader = live[k], working[k], traders[k]
            while mine and next(iter(mine.values()))[2] <= born_before:
                commands += 1
                produced += drop_oldest(mine, wk, trader)
        R = self._rounds
        i = self._word
        words = self._words
        if i + R > len(words):
            words = self._words = words[i:] + self._bitgen.random_raw(max(BLOCK, R)).tolist()
            i = 0
        self._word = i + R
        p_arrival, p_cancel, p_market = self._p_arrival, self._p_cancel, self._p_market
        tick, tick2, lot, limit, symbol = self.tick, 2 * self.tick, self.lot, self.max_position, self.symbol
        next_id = self.next_order_id
        min_qty, n_qty, span, cap = self._min_qty, self._n_qty, self._span, self._cap
        rest, take, settle = self._engine_rest, self._engine_take, self._settle
        for w, (mine, wk, positions, trader) in zip(words[i : i + R], self._round_traders):
            if (w & 0xFFFF) >= p_arrival:
                continue
            u = (w >> 16) & 0xFFFF
            if u < p_cancel:  # cancel the oldest working order
                if mine:
                    commands += 1
                    produced += drop_oldest(mine, wk, trader)
                continue
            side = 1 - 2 * (w >> 63)
            qty = (min_qty + (((w >> 32) & 0xFFFF) * n_qty >> 16)) * lot
            held = positions.get(symbol)
            pos = held.qty if held is not None else 0
            if abs(pos + side * (wk[side] + qty)) > limit:
                continue  # could break max_position with its working orders of that side
            bid, ask = bids.best, asks.best
            if u < p_market:
                if (ask if side == 1 else bid) is not None:
                    events, n_events = take(next_id(), trader, side, qty, trader)  # an IOC market order
                    commands += 1
                    produced += n_events
                    if events:
                        settle(events)
                continue
            # the reference in half ticks: mid, else last trade, else the one side, else reference_price
            if bid is not None and ask is not None:
                ref2 = bid + ask
            else:
                last = engine.last_price
                one = last if last is not None else bid if bid is not None else ask
                ref2 = 2 * (one if one is not None else self.reference_price)
            off = ((w >> 48) & 0x7FFF) * span >> 15
            if side == 1:
                price = (ref2 // tick2 - off) * tick
            else:
                price = (off - (-ref2 // tick2)) * tick
            if len(mine) >= cap:  # at the cap its oldest goes first (``_forget``)
                commands += 1
                produced += drop_oldest(mine, wk, trader)
            if price >= tick:
                oid = next_id()
                commands += 1
                if inline and qty <= max_qty and oid not in resting:
                    opp = asks.best if side == 1 else bids.best
                    if opp is None or (opp - price) * side > 0:  # rest(...), inlined: it rests whole, no events built
                        o = [oid, trader, side, price, qty, 0, 0, trader, None, _GTC, False, 0]
                        own = bids if side == 1 else asks
                        level = own.levels.get(price)
                        if level is None:
                            best = own.best
                            level = own.add_level(price)
                            if best is None or (price - best) * side > 0:
                                tops[side] = o
                        nxt()  # the Accepted event's seq; the BookUpdate's is the priority stamp
                        o[TIME] = engine._last_seq = nxt()
                        level.queue.append(o)
                        if qty > level.biggest:
                            level.biggest = qty
                        level.qty += qty
                        level.count += 1
                        resting[oid] = o
                        produced += 2
                        mine[oid] = [oid, side, t, qty]
                        wk[side] += qty
                        continue
                events = rest(oid, trader, side, qty, price, trader)
                if events is None:  # rested whole: Accepted and BookUpdate, not built
                    produced += 2
                    mine[oid] = [oid, side, t, qty]
                    wk[side] += qty
                    continue
                produced += len(events)
                if len(events) > 2:  # anything shorter is an acceptance or a refusal: no fill
                    settle(events)
                o = resting.get(oid)
                if o is not None:  # what is left of it rests (the entry of _rested)
                    left = o[QTY] + o[HIDDEN]
                    mine[oid] = [oid, side, t, left]
                    wk[side] += left
        self.commands += commands
        self.events_produced += produced

    def _noise_logged(self, t: int) -> None:
        """``_noise`` with ``log`` set: the same decisions, every command through ``_send`` (one log entry each)."""
        R, n, symbol, forget, send = self._rounds, self._n_noise, self.symbol, self._forget, self._send
        live, working = self.noise_orders, self._working
        born_before = t - self._max_age
        for k in range(n):
            mine = live[k]
            while mine:
                e = next(iter(mine.values()))
                if e[2] > born_before:
                    break
                send(forget(k, e))
        i = self._word
        words = self._words
        if i + R > len(words):
            words = self._words = words[i:] + self._bitgen.random_raw(max(BLOCK, R)).tolist()
            i = 0
        self._word = i + R
        engine, tick, lot, limit = self.engine, self.tick, self.lot, self.max_position
        bids, asks = self.book.bids, self.book.asks
        for r in range(R):
            w = words[i + r]
            if (w & 0xFFFF) >= self._p_arrival:
                continue
            k = r % n
            mine = live[k]
            u = (w >> 16) & 0xFFFF
            if u < self._p_cancel:
                if mine:
                    send(forget(k, next(iter(mine.values()))))
                continue
            side = 1 - 2 * (w >> 63)
            qty = (self._min_qty + (((w >> 32) & 0xFFFF) * self._n_qty >> 16)) * lot
            held = self._positions[k].get(symbol)
            pos = held.qty if held is not None else 0
            if abs(pos + side * (working[k][side] + qty)) > limit:
                continue
            trader = self.noise_traders[k]
            bid, ask = bids.best, asks.best
            if u < self._p_market:
                if (ask if side == 1 else bid) is not None:
                    send(NewOrder(self.next_order_id(), trader, side, qty, None, _MARKET, _IOC, None, None, None, False, trader))
                continue
            if bid is not None and ask is not None:
                ref2 = bid + ask
            else:
                last = engine.last_price
                one = last if last is not None else bid if bid is not None else ask
                ref2 = 2 * (one if one is not None else self.reference_price)
            off = ((w >> 48) & 0x7FFF) * self._span >> 15
            if side == 1:
                price = (ref2 // (2 * tick) - off) * tick
            else:
                price = (off - (-ref2 // (2 * tick))) * tick
            if len(mine) >= self._cap:
                send(forget(k, next(iter(mine.values()))))
            if price >= tick:
                oid = self.next_order_id()
                send(NewOrder(oid, trader, side, qty, price, _LIMIT, _GTC, None, None, None, False, trader))
                self._rested(k, oid, side, t)

    def _quote(self, t: int) -> None:
        """The maker's quote of this step's side (see the module docstring)."""
        book, tick, quotes = self.book, self.tick, self.quotes
        orders = book.orders
        bid_order = orders.get(quotes[1])
        ask_order = orders.get(quotes[-1])
        bids, asks = book.bids, book.asks
        bb, ba = bids.best, asks.best
        if bid_order is not None and bid_order[PRICE] == bb and bids.levels[bb].count == 1:
            bb = _next_price(bids, bb, tick)
        if ask_order is not None and ask_order[PRICE] == ba and asks.levels[ba].count == 1:
            ba = _next_price(asks, ba, tick)
        if bb is not None and ba is not None:
            s = (bb + ba) / (2 * tick)
        else:
            last = self.engine.last_price
            one = last if last is not None else bb if bb is not None else ba
            s = (one if one is not None else self.reference_price) / tick
        held = self._maker_positions.get(self.symbol)
        inventory = held.qty if held is not None else 0
        r = s - inventory * self._skew
        half = self._half_spread
        bid_t = math.floor(r - half + 1e-9)
        ask_t = math.ceil(r + half - 1e-9)
        short = self._min_spread - (ask_t - bid_t)
        if short > 0:  # widen around r, the odd tick on the side the inventory wants to close
            bid_t -= short // 2 + (short % 2 if inventory >= 0 else 0)
            ask_t += short // 2 + (short % 2 if inventory < 0 else 0)
        if t % 2:
            side, own = 1, bid_order
            price = (min(bid_t, ba // tick - 1) if ba is not None else bid_t) * tick
            qty = min(self._quote_qty, self._max_inventory - inventory)
        else:
            side, own = -1, ask_order
            price = max(1, max(ask_t, bb // tick + 1) if bb is not None else ask_t) * tick
            qty = min(self._quote_qty, self._max_inventory + inventory)
        qty *= self.lot
        valid = qty > 0 and price >= tick
        mm = self.maker
        standing = None
        if own is not None:
            if valid and own[PRICE] == price and own[QTY] <= qty:
                return  # the quote stands
            standing = quotes[side]
        if self.log is not None:
            return self._quote_logged(side, standing, qty, price, valid)
        if standing is not None:  # a cancel of a resting order never fills
            events = self._engine_withdraw(standing, mm)
            self.commands += 1
            self.events_produced += 2 if events is None else len(events)
        if valid:
            oid = quotes[side] = self.next_order_id()
            events = self._engine_rest(oid, mm, side, qty, price, mm, self._post_only)
            self.commands += 1
            if events is None:  # rested: Accepted and BookUpdate, not built
                self.events_produced += 2
            else:
                self.events_produced += len(events)
                if len(events) > 2:
                    self._settle(events)

    def _quote_logged(self, side: int, standing: int | None, qty: int, price: int, valid: bool) -> None:
        """The end of ``_quote`` with ``log`` set: the cancel of the ``standing`` quote and the new one through ``_send``."""
        mm = self.maker
        if standing is not None:
            self._send(Cancel(standing, mm))
        if valid:
            oid = self.quotes[side] = self.next_order_id()
            self._send(NewOrder(oid, mm, side, qty, price, _LIMIT, _GTC, None, None, None, self._post_only, mm))


def _next_price(bs: BookSide, price: int, tick: int) -> int | None:
    """The best level of a side worse than ``price`` (None: none)."""
    levels, step = bs.levels, -bs.side * tick
    p = price
    for _ in range(_WALK):
        p += step
        if p in levels:
            return p
    worse = [q for q in levels if (q - price) * bs.side < 0]
    if not worse:
        return None
    return max(worse) if bs.side == 1 else min(worse)

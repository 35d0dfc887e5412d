"""A trained policy on the live exchange: the observation it saw in training, from the feed.

``PolicyDriver`` is the policy bot without I/O. It keeps what ``envs.trading.TradingEnv``
keeps for its learner, built only from what a client receives:

- the symbol's L2 book (``live.marketdata.L2Book``) from ``book_snapshot``/``book_update``,
  the last trade price from ``trade`` (``on_feed``);
- the signed trade flow of the current step, from the ``trade`` prints (``Learner.flow``);
- its working orders (``agents.base.OrderTracker``) and its account (cash, position:
  ``exchange.accounts`` applied to its own fills, so equity is computed by the venue's
  code), from its private messages translated by ``live.live_context.OrderWire``
  (``on_private``).

``reset()`` starts an episode (the first observation), ``act(action)`` turns an action into
wire requests exactly as the env turns it into commands, and ``observe()`` closes a step:
the mark, the mid return, equity change, time left, then ``envs.observation.
observation_values`` + ``to_observation``, the reference the env's one-call
``BookObservation`` is tested equal to, byte for byte (the live book is an L2 view, not an
``OrderBook``). Fed the same market, the driver's observations are the env's bit for bit
(``tests/test_live_policy_equivalence.py`` checks it on a recorded session).

Supported: ``exchange/Trading-v0`` and ``exchange/MarketMaking-v0`` policies (flat or dict
observations, discrete or box actions). Actions become orders in ``action_commands`` only,
which calls ``envs.actions`` (the functions the envs call) with the live book.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np

from agents.base import OrderTracker
from agents.policy import Policy
from envs import actions as A
from envs.config import TradingConfig
from envs.observation import as_dict, observation_bounds, observation_values, to_observation
from exchange.accounts import FeeSchedule
from exchange.instrument import PRESETS
from live import protocol as P
from live.live_context import OrderWire
from live.marketdata import L2Book

SUPPORTED = ("exchange/Trading-v0", "exchange/MarketMaking-v0")


class _Level:
    __slots__ = ("price", "qty")

    def __init__(self, price: int, qty: int) -> None:
        self.price, self.qty = price, qty


class _ShimSide:
    """One side of an L2 book with the ``BookSide`` attributes ``envs.actions`` reads."""

    def __init__(self, levels: dict[int, tuple[int, int]], bids: bool) -> None:
        self.levels = {p: _Level(p, q) for p, (q, n) in levels.items() if n}
        self._bids = bids
        self.best = (max(self.levels) if bids else min(self.levels)) if self.levels else None

    def sorted_levels(self) -> list[_Level]:
        return [self.levels[p] for p in sorted(self.levels, reverse=self._bids)]


class _ShimBook:
    def __init__(self, book: L2Book) -> None:
        self.bids, self.asks = _ShimSide(book.bids, True), _ShimSide(book.asks, False)

    def side(self, side: int) -> _ShimSide:
        return self.bids if side == 1 else self.asks


class _Ctx:
    """The part of ``exchange.sim.Context`` that ``envs.actions`` uses, collecting commands."""

    def __init__(self, driver: PolicyDriver) -> None:
        self.driver = driver
        self.commands: list[tuple[str, object]] = []

    @property
    def now(self) -> int:
        return self.driver.now

    def submit(self, symbol: str, command: object) -> None:
        self.commands.append((symbol, command))

    def next_order_id(self) -> int:
        return next(self.driver._ids)

    def book(self, symbol: str) -> _ShimBook:
        return _ShimBook(self.driver.book)


class PolicyDriver:
    """A policy's live observations and orders, without I/O (see the module docstring).

    Arguments: ``policy`` (``agents.policy.load_policy``), ``trader`` (the exchange's id
    for this bot, from ``welcome``), ``symbol`` (default: the one it was trained on),
    ``fees`` (the venue's fee schedule; equity is net of fees as in the env).
    """

    def __init__(self, policy: Policy, trader: int, symbol: str | None = None, *, fees: FeeSchedule | None = None,
                 deterministic: bool = True) -> None:
        if policy.env_id not in SUPPORTED:
            raise ValueError(f"a live policy bot runs {SUPPORTED} policies, not {policy.env_id!r}")
        cfg: TradingConfig = policy.trading_config()
        if symbol is not None and symbol != cfg.symbol:
            cfg = replace(cfg, symbol=symbol)
        self.policy, self.config, self.symbol, self.trader = policy, cfg, cfg.symbol, trader
        self.deterministic = deterministic
        self.quoting = policy.env_id == "exchange/MarketMaking-v0"
        spec = PRESETS[cfg.preset](cfg.symbol)
        self.tick = spec.tick
        self.nvec = A.quoting_nvec(cfg.n_offsets) if self.quoting else A.trading_nvec(
            cfg.max_offset, len(cfg.qty_buckets), cfg.cancel_all)
        self.low, self.high = observation_bounds(cfg)
        self.book = L2Book(cfg.symbol)
        self.wire = OrderWire(trader, {cfg.symbol: spec.default_smp_mode.name.lower()}, fees, 0)
        self.orders = OrderTracker(trader)
        self.flow = 0  # signed lots of the trade prints of this step (buyer-initiated positive)
        self.trades = 0
        self.steps = 0
        self.episodes = 0
        self.mid = float(cfg.reference)
        self.equity0 = 0.0
        self.now = 0  # ns; the shell sets it before act() (sent_at of tracked orders)
        self._ids = itertools.count(1)

    # ---- what comes in ---------------------------------------------------------------------------
    def on_feed(self, msg: P.ServerMessage) -> bool:
        """Apply one market-data message; False on a gap (ask for a snapshot, then resync)."""
        t = type(msg)
        if t is P.BookSnapshot:
            if msg.symbol == self.symbol:  # type: ignore[union-attr]
                self.book.reset(msg)  # type: ignore[arg-type]
            return True
        if t is not P.BookUpdate and t is not P.Trade and t is not P.Liquidation:
            return True
        if msg.symbol != self.symbol:  # type: ignore[union-attr]
            return True
        book = self.book
        if book.seq is None:
            return False
        if msg.seq <= book.seq:  # type: ignore[union-attr]
            return True  # already in the snapshot
        if not book.apply(msg):  # type: ignore[arg-type]
            return False
        if t is P.Trade:
            self.flow += P.SIDES[msg.aggressor] * msg.qty  # type: ignore[union-attr]
            self.trades += 1
        return True

    def on_private(self, msg: P.ServerMessage) -> list[P.TradingRequest]:
        """Apply one private message (own order events); returns requests now due."""
        _, events, released = self.wire.events(msg)
        for ev in events:
            self.orders.apply(ev)
        return [r for r in (self.wire.request(s, c) for s, c in released) if r is not None]

    # ---- derived quantities, as TradingEnv computes them ---------------------------------------
    def _marks(self) -> dict[str, float | None]:
        """``Exchange.marks()`` for the symbol: mid, else last trade, else None."""
        bid, ask = self.book.best_bid(), self.book.best_ask()
        if bid is not None and ask is not None:
            return {self.symbol: (bid + ask) / 2}
        last = self.book.last_price
        return {self.symbol: float(last) if last is not None else None}

    def mark(self) -> float:
        """``TradingEnv._mark``: the mark, else ``reference_price``."""
        m = self._marks()[self.symbol]
        return m if m is not None else float(self.config.reference)

    def equity(self) -> float:
        return self.wire.account.equity(self._marks())

    @property
    def position(self) -> int:
        return self.wire.account.position(self.symbol)

    @property
    def done(self) -> bool:
        """The episode reached ``horizon_steps`` (the shell then calls ``reset``)."""
        return self.steps >= self.config.horizon_steps

    def _top(self, levels: dict[int, tuple[int, int]], bids: bool) -> list[tuple[int, int]]:
        out = []
        for price in sorted(levels, reverse=bids):
            qty, count = levels[price]
            if count:
                out.append((price, qty))
                if len(out) == self.config.depth:
                    break
        return out

    def _observation(self, mid_return: float, flow: int) -> np.ndarray | dict[str, np.ndarray]:
        cfg = self.config
        values = observation_values(
            self._top(self.book.bids, True),
            self._top(self.book.asks, False),
            mid=self.mid,
            tick=self.tick,
            config=cfg,
            mid_return=mid_return,
            flow=flow,
            position=self.position,
            equity_change=self.equity() - self.equity0,
            open_orders=len(self.orders.orders),
            time_left=max(0.0, 1.0 - self.steps / cfg.horizon_steps),
        )
        obs = to_observation(values, self.low, self.high)
        return as_dict(obs, cfg) if cfg.obs_type == "dict" else obs

    # ---- the step ---------------------------------------------------------------------------------
    def reset(self) -> np.ndarray | dict[str, np.ndarray]:
        """Start an episode here (``TradingEnv.reset`` after its warm-up): the first observation."""
        self.steps = 0
        self.episodes += 1
        self.mid = self.mark()
        self.equity0 = self.equity()
        self.flow = self.trades = 0
        return self._observation(0.0, 0)

    def observe(self) -> np.ndarray | dict[str, np.ndarray]:
        """Close the step (``step_ns`` of wall time after ``act``): the next observation."""
        self.steps += 1
        mid = self.mark()
        mid_return = (mid - self.mid) / self.tick
        self.mid = mid
        return self._observation(mid_return, self.flow)

    def decide(self, obs: Any) -> np.ndarray:
        """The policy's action for ``obs`` (flat observations only go to the network)."""
        if isinstance(obs, dict):
            obs = np.concatenate([obs[k].ravel() for k in ("bids", "asks", "market", "agent")])
        return self.policy.net.act(obs, self.deterministic)

    def indices(self, action: Any) -> list[int]:
        """The discrete indices of a discrete or box action (``envs.actions.indices``)."""
        return A.indices(action, self.nvec, self.config.action_type)

    def action_commands(self, action: Any) -> list[tuple[str, object]]:
        """The commands the env would send for ``action`` now, recorded in the order tracker.

        The one place where actions become orders: ``envs.actions.trade`` (Trading-v0) or
        ``envs.actions.quote`` (MarketMaking-v0), the functions the envs themselves call,
        given a context whose book is the live L2 book."""
        cfg, tick = self.config, self.tick
        ctx = _Ctx(self)
        idx = self.indices(action)
        fallback = A.fallback_price(self.mark(), tick)
        if self.quoting:
            A.quote(ctx, self.symbol, self.trader, self.orders, idx, tick=tick, quote_qty=cfg.quote_qty,  # type: ignore[arg-type]
                    fallback=fallback)
        else:
            A.trade(ctx, self.symbol, self.trader, self.orders, idx, tick=tick, max_offset=cfg.max_offset,  # type: ignore[arg-type]
                    qty_buckets=cfg.qty_buckets, cancel_all=cfg.cancel_all, fallback=fallback)
        return ctx.commands

    def act(self, action: Any) -> list[P.TradingRequest]:
        """Start a step: the wire requests for ``action`` (send them in this order)."""
        self.flow = self.trades = 0
        out = []
        for symbol, cmd in self.action_commands(action):
            req = self.wire.request(symbol, cmd)
            if req is not None:
                out.append(req)
        return out

    def resync(self, account: P.Account) -> None:
        """On (re)connect: drop orders the venue no longer has, take its cash and position.

        The shell then calls ``reset``: a reconnect starts a new episode (equity change
        and time left restart; fills missed while away are in the venue's account)."""
        for _, events in self.wire.resync(account):
            for ev in events:
                self.orders.apply(ev)
        self.wire.seed_account(account)
        self.orders.position = self.position

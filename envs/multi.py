"""PettingZoo multi-agent environment: N learners trading in one book (``exchange_multi_v0``).

The Farama layout of a parallel-native environment:

| name | returns |
| --- | --- |
| ``parallel_env(**kwargs)`` | ``MultiTradingEnv``, a ``pettingzoo.ParallelEnv`` |
| ``raw_env(**kwargs)`` | the same as an AEC env, through ``pettingzoo.utils.parallel_to_aec`` |
| ``env(**kwargs)`` | ``raw_env`` with PettingZoo's ``AssertOutOfBoundsWrapper`` |

Keyword arguments are ``render_mode``, ``config`` (a ``MultiTradingConfig``) and overrides of
its fields or of the fields of its ``trading`` part (an ``envs.TradingConfig``), for example
``parallel_env(n_agents=8, preset="cme")``. ``MultiTradingEnv``'s docstring is the spec page.

Parameter sharing with stable-baselines3 goes through SuperSuit; wrap with ``BlackDeath``
first so the vector env always sees every agent (SuperSuit 3.11.0's own ``black_death_v3``
never reports the end of a truncated episode, see ``BlackDeath``)::

    vec = supersuit.pettingzoo_env_to_vec_env_v1(BlackDeath(parallel_env()))
    vec = supersuit.concat_vec_envs_v1(vec, 1, base_class="stable_baselines3")
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, fields, replace
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers
from pettingzoo.utils.wrappers import BaseParallelWrapper
from rich.console import Console

from agents import make_agent
from agents.base import OrderTracker
from envs.actions import action_space, fallback_price, indices, quote, quoting_nvec, trade, trading_nvec
from envs.config import TradingConfig, default_background
from envs.flow import FlowBackground, FlowMarket, resolve
from envs.observation import (
    N_OWN, book_levels, observation_bounds, observation_size, observation_space, observation_values, own_values,
)
from exchange.accounts import mark_price
from exchange.events import Fill, Liquidation
from exchange.instrument import PRESETS
from exchange.sim import Agent, Context, Simulator
from exchange.venue import Exchange, MarginPolicy, RiskLimits
from view.ladder import ladder

ACTIONS = ("trading", "market_making")
TREASURY = -1  # trader id of the account that books capital moved between traders at reset
STATE_PER_AGENT = 4  # inventory, equity change, open orders, alive


@dataclass(frozen=True)
class MultiTradingConfig:
    """Parameters of ``MultiTradingEnv``; money in price units, as in ``TradingConfig``."""

    n_agents: int = 4  # learners, trader ids 0..n_agents-1, named "trader_0", "trader_1", ...
    action: str = "trading"  # "trading": Trading-v0's side/offset/size; "market_making": MarketMaking-v0's quotes
    max_cycles: int = 1000  # steps until every agent is truncated (the `max_cycles` attribute, PettingZoo style)
    collateral: int | None = None  # each learner's cash at reset; None: reference * max_position (one full position, unlevered)
    background_cash: int | None = None  # each background trader's cash at reset; None: reference * max_position (keep it ample: a liquidated background trader is barred for the rest of the episode)
    maintenance_bps: int | None = 1_000  # venue maintenance margin (MarginPolicy), bp of marked position value; None: no margin, nobody is liquidated
    shuffle_priority: bool = True  # the learners' orders of a step reach the venue in a fresh random order (else trader_0 first)
    trading: TradingConfig = field(default_factory=TradingConfig)  # market, background, risk, action sizes, observation and reward, as in the single-agent envs (its horizon_steps and starting_cash are not used: see max_cycles, collateral)

    def __post_init__(self) -> None:
        if type(self.n_agents) is not int or self.n_agents <= 0:
            raise ValueError(f"MultiTradingConfig.n_agents must be a positive int, got {self.n_agents!r}")
        if type(self.max_cycles) is not int or self.max_cycles <= 0:
            raise ValueError(f"MultiTradingConfig.max_cycles must be a positive int, got {self.max_cycles!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"MultiTradingConfig.action must be one of {ACTIONS}, got {self.action!r}")
        for name in ("collateral", "background_cash", "maintenance_bps"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"MultiTradingConfig.{name} must be None or an int >= 0, got {value!r}")
        if not isinstance(self.trading, TradingConfig):
            raise TypeError(f"MultiTradingConfig.trading must be a TradingConfig, got {type(self.trading).__name__}")
        if self.trading.obs_type != "box":
            raise ValueError("MultiTradingEnv observes a flat Box only (trading.obs_type='box')")

    @property
    def learner_cash(self) -> int:
        t = self.trading
        return self.collateral if self.collateral is not None else t.reference * t.max_position

    @property
    def other_cash(self) -> int:
        t = self.trading
        return self.background_cash if self.background_cash is not None else t.reference * t.max_position


_OWN_FIELDS = frozenset(f.name for f in fields(MultiTradingConfig))
_TRADING_FIELDS = frozenset(f.name for f in fields(TradingConfig))


def configure(config: MultiTradingConfig | None = None, **overrides: Any) -> MultiTradingConfig:
    """``config`` (default ``MultiTradingConfig()``) with ``overrides`` applied: a field of
    ``MultiTradingConfig`` is replaced there, a field of ``TradingConfig`` in ``trading``."""
    cfg = config if config is not None else MultiTradingConfig()
    unknown = set(overrides) - _OWN_FIELDS - _TRADING_FIELDS
    if unknown:
        raise TypeError(f"unknown MultiTradingEnv arguments {sorted(unknown)}")
    own = {k: v for k, v in overrides.items() if k in _OWN_FIELDS}
    market = {k: v for k, v in overrides.items() if k in _TRADING_FIELDS}
    if market:
        own["trading"] = replace(own.get("trading", cfg.trading), **market)
    return replace(cfg, **own) if own else cfg


class MultiLearner(Agent):
    """One learner inside the simulator: its working orders and position from its own events.

    It takes no public feed (the environment reads the tape once for everyone: from the
    simulator's log, or from the ``FlowMarket``'s count with the flow background). ``liquidated`` turns true when the venue's ``Liquidation`` event for it
    arrives (the event names no order, so it is kept away from the ``OrderTracker``).
    """

    market_data = False

    def __init__(self, trader: int, symbol: str) -> None:
        super().__init__(trader)
        self.symbols = (symbol,)
        self.orders = OrderTracker(trader)
        self.liquidated = False

    def on_events(self, ctx: Context, symbol: str, events: list) -> None:
        orders = self.orders
        for ev in events:
            if type(ev) is Liquidation:
                self.liquidated = True
            else:
                orders.apply(ev)

    @property
    def rejected(self) -> int:
        return sum(self.orders.rejects.values())


class MultiTradingEnv(ParallelEnv):
    """N learning agents trade one instrument in the same book, next to background traders.

    ## Description

    The market of ``exchange/Trading-v0`` (one symbol of preset ``"nyse"`` or ``"cme"``, a
    real matching engine, background traders, ``warmup_ns`` of background trading before
    the first observation), with ``n_agents`` learners in it instead of one. The background
    is ``trading.background``, as for ``Trading-v0``: scripted agents of ``agents`` in the
    discrete-event simulator (default), or ``"flow"`` / ``"flow_heavy"`` / an
    ``envs.flow.FlowBackground``, the lean batched flow of ``envs.flow`` sent straight to
    the book (several times faster; the venue checks margins after each of its steps, see
    that module). Learner ``i`` is the agent ``"trader_i"`` and trades as trader id ``i``;
    the background traders take the ids after them. Each step every live agent's action becomes orders, sent at the start
    of the step with zero latency, and the simulation advances ``step_ns`` (100 ms). All
    agents decide on the same book; their orders reach the venue one agent after another,
    in a random order drawn afresh each step from the environment's generator
    (``shuffle_priority``), so no agent owns the front of the queue. Learners can trade
    with each other, never with themselves (self-match ids). The venue's ``RiskLimits``
    (``max_position``, ``max_open_orders``) and ``MarginPolicy`` apply to everyone.

    ## Action Space

    Per agent, with ``action="trading"`` (default) the action of ``exchange/Trading-v0``:
    ``MultiDiscrete([3, 2 * max_offset + 1, len(qty_buckets), 2])``, side (0 sell, 1 none,
    2 buy), price offset from the touch, size bucket, and cancel-all-first (the last
    component only with ``cancel_all``, the default). With ``action="market_making"`` the
    action of ``exchange/MarketMaking-v0``: ``MultiDiscrete([n_offsets, n_offsets])``, the
    bid and ask distance behind the other traders' best. With ``action_type="box"`` either
    is a ``Box(-1, 1)`` binned onto the same indices. The rules are those of the two
    single-agent spec pages (``envs.actions`` implements them; a one-agent
    ``MultiTradingEnv`` without margin reproduces ``TradingEnv`` / ``MarketMakingEnv`` step
    for step). An agent left out of the actions sends nothing.

    ## Observation Space

    Per agent, the ``Box`` of the single-agent environments (``envs.observation``; the
    ``"dict"`` variant is not offered):
    ``4 * depth + 8`` ``float32`` features, the book levels, spread, mid return, trade flow
    and imbalance (the same for everyone), then the agent's own inventory /
    ``max_position``, equity change since reset / ``reward_scale``, open orders /
    ``max_open_orders``, and the fraction of ``max_cycles`` left.

    ``state()`` is the global view, a ``Box`` (``state_space``) of
    ``4 * depth + 5 + 4 * n_agents`` ``float32``: the ``4 * depth + 4`` market features,
    the fraction of the episode left, then for each learner in id order its inventory,
    equity change and open orders (scaled as above) and 1.0 while it is live (0.0 after
    it was liquidated).

    ## Rewards

    Per agent, exactly as ``exchange/Trading-v0``: the step's change of the agent's
    mark-to-market equity from ``exchange.accounts`` in ticks x lots, minus
    ``inventory_penalty * |inventory|``, and on the step that reaches ``max_cycles`` with
    ``liquidation_cost`` minus ``spread / 2 * |inventory|``; all divided by
    ``reward_scale``. A liquidation's loss lands in the reward of the step it happens in.

    ## Episode End

    Termination: a learner whose equity falls below the maintenance margin
    (``maintenance_bps`` of its marked position value) is liquidated by the venue: a
    ``Liquidation`` event, its orders cancelled, its position flattened by market orders,
    its new orders refused from then on. At the end of that step ``terminations[agent]``
    is True and the agent leaves ``agents``; the others go on. Every learner starts with
    ``collateral`` of cash (default: the value of a full ``max_position`` at the reference
    price, so no leverage and in practice no liquidation); a small ``collateral`` makes
    liquidation likely. Background traders hold ``background_cash`` each; when the two
    differ, the difference is booked against a ``TREASURY`` account (trader -1, which never
    trades) so that the venue's cash stays conserved.

    Truncation: after ``max_cycles`` steps every live agent has ``truncations[agent]``
    True. ``agents`` is empty after the last step of an episode (all agents finished),
    and ``step`` then raises ``ResetNeeded`` until ``reset``.

    ## Arguments

    ``parallel_env(render_mode=None, config=None, **overrides)`` (or ``raw_env`` / ``env``
    for AEC): ``config`` is a frozen ``MultiTradingConfig`` (``n_agents``, ``action``,
    ``max_cycles``, ``collateral``, ``background_cash``, ``maintenance_bps``,
    ``shuffle_priority``, and ``trading``, an ``envs.TradingConfig`` for market,
    background, risk, action sizes, observation and reward); keyword arguments override a
    field of either. ``render_mode="ansi"`` makes ``render()`` return the depth ladder and
    one line per learner as text, ``"human"`` prints it. ``reset(seed=...)`` is the only
    seeding path: the seed fixes the simulator's seed (or the flow's generator) and the
    priority draws, so the whole episode for a given sequence of joint actions.

    ## Version History

    * v0: Initial version; ``background="flow"`` added later (the scripted background and
      its trajectories are unchanged).
    """

    metadata = {"name": "exchange_multi_v0", "render_modes": ["ansi", "human"], "render_fps": 10, "is_parallelizable": True}

    def __init__(self, config: MultiTradingConfig | None = None, render_mode: str | None = None, **overrides: Any) -> None:
        cfg = configure(config, **overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        t = cfg.trading
        self.config = cfg
        self.render_mode = render_mode
        self.instrument = PRESETS[t.preset](t.symbol)
        self.tick = self.instrument.tick
        self.max_cycles = cfg.max_cycles
        self.possible_agents = [f"trader_{i}" for i in range(cfg.n_agents)]
        self.agent_ids = {name: i for i, name in enumerate(self.possible_agents)}
        self.agents: list[str] = []
        self.observation_spaces = {a: observation_space(t) for a in self.possible_agents}
        self._nvec = self._action_nvec()
        self.action_spaces = {a: action_space(self._nvec, t.action_type) for a in self.possible_agents}
        self._low, self._high = observation_bounds(t)
        self.state_space = self._new_state_space()
        self._np_random: np.random.Generator | None = None
        self.sim: Simulator | FlowMarket | None = None
        self.exchange: Exchange | None = None
        self.learners: list[MultiLearner] = []
        self.steps = 0

    # ---- spaces --------------------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def _action_nvec(self) -> list[int]:
        t = self.config.trading
        if self.config.action == "trading":
            return trading_nvec(t.max_offset, len(t.qty_buckets), t.cancel_all)
        return quoting_nvec(t.n_offsets)

    def _new_state_space(self) -> spaces.Box:
        k, n, c = self._market_size, self.config.n_agents, self.config.trading.clip
        low = np.concatenate([self._low[:k], [0.0], np.tile([-1.0, -c, 0.0, 0.0], n)]).astype(np.float32)
        high = np.concatenate([self._high[:k], [1.0], np.tile([1.0, c, 1.0, 1.0], n)]).astype(np.float32)
        return spaces.Box(low, high, dtype=np.float32)

    @property
    def _market_size(self) -> int:
        """The leading observation features every agent shares (levels, spread, return, flow, imbalance)."""
        return observation_size(self.config.trading) - N_OWN

    @property
    def np_random(self) -> np.random.Generator:
        """The environment's generator (seeded by ``reset(seed=...)``)."""
        if self._np_random is None:
            self._np_random, _ = seeding.np_random()
        return self._np_random

    # ---- pettingzoo API ------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        if seed is not None:
            self._np_random, _ = seeding.np_random(seed)
        cfg, t = self.config, self.config.trading
        ref = t.reference
        margin = MarginPolicy(maintenance_bps=cfg.maintenance_bps) if cfg.maintenance_bps is not None else None
        self.exchange = exchange = Exchange(
            {t.symbol: self.instrument},
            starting_cash=cfg.learner_cash,
            risk=RiskLimits(max_position=t.max_position, max_open_orders=t.max_open_orders),
            margin=margin,
        )
        self.learners = [MultiLearner(i, t.symbol) for i in range(cfg.n_agents)]
        background = resolve(t.background) if t.background is not None else default_background(ref, t.max_position)
        if isinstance(background, FlowBackground):
            n = cfg.n_agents  # the flow's traders take the ids after the learners' (FlowMarket)
            self._fund(exchange, list(range(n, n + background.n_traders)))
            self.accounts = [exchange.accounts.account(i) for i in range(n)]
            self.sim = FlowMarket(
                exchange, t.symbol, background, self.learners,
                seed=int(self.np_random.integers(2**62)), step_ns=t.step_ns, reference_price=ref, max_position=t.max_position,
            )
        else:
            agents: list[Agent] = list(self.learners)
            for b in background:
                for _ in range(b.count):
                    agents.append(make_agent(b.name, len(agents), t.symbol, b.config))
            self._fund(exchange, [a.trader for a in agents[cfg.n_agents :]])
            self.accounts = [exchange.accounts.account(i) for i in range(cfg.n_agents)]
            self.sim = Simulator(exchange, agents, seed=int(self.np_random.integers(2**62)))
        self.sim.run(until=t.warmup_ns)
        self.steps = 0
        self.agents = self.possible_agents[:]
        self.live = np.ones(cfg.n_agents, dtype=bool)
        marks = exchange.marks()
        self.equity0 = [a.equity(marks) for a in self.accounts]
        self.equity = self.equity0[:]
        self.rejected0 = [lr.rejected for lr in self.learners]
        self.mid = self._mark()
        self._picture(0.0, 0)
        ids = list(range(cfg.n_agents))
        obs = self._observations(ids)
        info = self._step_info(0, 0, 0)
        return {a: obs[i] for i, a in enumerate(self.agents)}, {a: self._info(i, info) for i, a in enumerate(self.agents)}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        sim, exchange, cfg, t = self.sim, self.exchange, self.config, self.config.trading
        if sim is None or exchange is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        if not self.agents:
            raise gymnasium.error.ResetNeeded("the episode is over (no agents left): call reset()")
        stray = [a for a in actions if a not in self.agents]
        if stray:
            raise ValueError(f"actions for agents that are not live: {stray}; live: {self.agents}")
        ids = [self.agent_ids[a] for a in self.agents]
        flow_market = type(sim) is FlowMarket
        events0, commands0 = sim.events_produced, sim.commands if flow_market else len(sim.log)
        if flow_market:
            sim.flow = sim.trades = 0  # the FlowMarket counts the tape itself

        fallback = fallback_price(self._mark(), self.tick)
        order = self.np_random.permutation(len(ids)) if cfg.shuffle_priority else range(len(ids))
        for k in order:
            i = ids[k]
            action = actions.get(self.possible_agents[i])
            if action is not None:
                self._act(sim.context(i), i, action, fallback)
        sim.run(until=sim.now + t.step_ns)
        self.steps += 1

        if flow_market:
            flow, trades, commands = sim.flow, sim.trades, sim.commands - commands0
        else:
            flow = trades = 0
            for _, _, events in sim.log[commands0:]:  # the step's tape, from the log
                for ev in events:
                    if type(ev) is Fill:
                        flow += ev.aggressor * ev.qty
                        trades += 1
            commands = len(sim.log) - commands0
        marks = exchange.marks()
        truncated = self.steps >= self.max_cycles
        half_spread = self._half_spread() if truncated and t.liquidation_cost else 0.0
        rewards: dict[str, float] = {}
        terminations: dict[str, bool] = {}
        for i in ids:
            acct = self.accounts[i]
            equity = acct.equity(marks)
            inventory = abs(acct.position(t.symbol))
            money = (equity - self.equity[i]) / self.tick  # ticks x lots
            self.equity[i] = equity
            cost = (t.inventory_penalty + half_spread) * inventory
            name = self.possible_agents[i]
            rewards[name] = float((money - cost) / t.reward_scale)
            terminations[name] = self.learners[i].liquidated
            if self.learners[i].liquidated:
                self.live[i] = False

        mid = self._mark()
        mid_return = (mid - self.mid) / self.tick
        self.mid = mid
        self._picture(mid_return, flow)
        obs = self._observations(ids)
        info = self._step_info(sim.events_produced - events0, commands, trades)
        names = [self.possible_agents[i] for i in ids]
        observations = {a: obs[k] for k, a in enumerate(names)}
        truncations = dict.fromkeys(names, truncated)
        infos = {a: self._info(i, info) for a, i in zip(names, ids, strict=True)}
        self.agents = [a for a in names if not (terminations[a] or truncated)]
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The global view (see the class docstring): market, time left, every learner."""
        if self.exchange is None:
            raise gymnasium.error.ResetNeeded("call reset() before state()")
        n, k = self.config.n_agents, self._market_size
        rows = self._observations(range(n))  # the market part is the same in every row
        out = np.empty(self.state_space.shape, dtype=np.float32)
        out[:k] = rows[0, :k]
        out[k] = self._time_left()
        per = out[k + 1 :].reshape(n, STATE_PER_AGENT)
        per[:, :3] = rows[:, k : k + 3]
        per[:, 3] = self.live
        return out

    def render(self) -> str | None:
        if self.render_mode is None or self.exchange is None:
            return None
        t = self.config.trading
        out = io.StringIO()
        console = Console(file=out, width=100, color_system=None, force_terminal=False, legacy_windows=False)
        console.print(ladder(self.exchange.engines[t.symbol], depth=t.depth))
        console.print(f"step {self.steps}/{self.max_cycles} · {len(self.agents)} of {self.max_num_agents} agents live")
        for i, name in enumerate(self.possible_agents):
            console.print(
                f"{name}: position {self.accounts[i].position(t.symbol)} · "
                f"equity change {(self.equity[i] - self.equity0[i]) / self.tick:+.1f} ticks x lots · "
                f"open orders {len(self.learners[i].orders.orders)}{'' if self.live[i] else ' · liquidated'}"
            )
        text = out.getvalue()
        if self.render_mode == "human":
            print(text, end="")
            return None
        return text

    def close(self) -> None:
        """Nothing to release (no window, no process)."""

    # ---- internals -----------------------------------------------------------------------------
    def _act(self, ctx: Context, trader: int, action: Any, fallback: int) -> None:
        t = self.config.trading
        orders = self.learners[trader].orders
        idx = indices(action, self._nvec, t.action_type)
        if self.config.action == "trading":
            trade(
                ctx, t.symbol, trader, orders, idx,
                tick=self.tick, max_offset=t.max_offset, qty_buckets=t.qty_buckets, cancel_all=t.cancel_all, fallback=fallback,
            )
        else:
            quote(ctx, t.symbol, trader, orders, idx, tick=self.tick, quote_qty=t.quote_qty, fallback=fallback)

    def _fund(self, exchange: Exchange, background: list[int]) -> None:
        """Give each background trader ``background_cash`` (the venue opened every account
        with the learners' collateral); the difference is booked against ``TREASURY``."""
        cfg = self.config
        extra = cfg.other_cash - cfg.learner_cash
        if not extra or not background:
            return
        accounts = exchange.accounts
        treasury = accounts.account(TREASURY)
        for trader in background:
            accounts.account(trader).cash += extra
            treasury.cash -= extra

    def _mark(self) -> float:
        """The venue's mark (mid, else last trade), else ``reference_price``; price units."""
        assert self.exchange is not None
        t = self.config.trading
        engine = self.exchange.engines[t.symbol]
        mark = mark_price(engine.book, engine.last_price)
        return mark if mark is not None else float(t.reference)

    def _half_spread(self) -> float:
        """Half the spread in ticks (``max_ticks / 2`` when a side is empty)."""
        assert self.exchange is not None
        book = self.exchange.engines[self.config.trading.symbol].book
        bid, ask = book.bids.best, book.asks.best
        if bid is None or ask is None:
            return self.config.trading.max_ticks / 2
        return (ask - bid) / self.tick / 2

    def _time_left(self) -> float:
        return max(0.0, 1.0 - self.steps / self.max_cycles)

    def _picture(self, mid_return: float, flow: int) -> None:
        """Record what every observation of this step shares: the book's top levels (read
        once), the mid return in ticks and the signed trade flow in lots."""
        assert self.exchange is not None
        t = self.config.trading
        bids, asks = book_levels(self.exchange.engines[t.symbol].book, t.depth)
        self._shared = (bids, asks, mid_return, flow)

    def _observations(self, ids: Any) -> np.ndarray:
        """One observation row per learner in ``ids`` (``envs.observation`` builds the
        features, as for the single-agent environments and the live bots), clipped to the Box."""
        t = self.config.trading
        bids, asks, mid_return, flow = self._shared
        left = self._time_left()
        tick, symbol, accounts, learners = self.tick, t.symbol, self.accounts, self.learners
        equity, equity0 = self.equity, self.equity0
        # the features every agent shares, once (observation_values' values up to its own ones)
        market = observation_values(
            bids, asks, mid=self.mid, tick=tick, config=t, mid_return=mid_return, flow=flow,
            position=0, equity_change=0.0, open_orders=0, time_left=left,
        )[:-N_OWN]
        rows = [
            market
            + own_values(t, tick, accounts[i].position(symbol), equity[i] - equity0[i], len(learners[i].orders.orders), left)
            for i in ids
        ]
        obs = np.array(rows, dtype=np.float32).reshape(len(rows), -1)
        np.minimum(obs, self._high, out=obs)
        np.maximum(obs, self._low, out=obs)
        return obs

    def _step_info(self, messages: int, commands: int, trades: int) -> dict[str, int]:
        assert self.sim is not None
        return {
            "messages": messages,  # exchange events produced during the step
            "commands": commands,  # commands the venue processed during the step
            "trades": trades,  # fills (trade prints) during the step
            "time_ns": self.sim.now,
        }

    def _info(self, i: int, step_info: dict[str, int]) -> dict[str, Any]:
        learner = self.learners[i]
        return {
            "position": self.accounts[i].position(self.config.trading.symbol),
            "equity": self.equity[i] - self.equity0[i],  # price units since reset
            "open_orders": len(learner.orders.orders),
            "rejected": learner.rejected - self.rejected0[i],  # refused commands this episode
            "liquidated": learner.liquidated,
            **step_info,
        }



class BlackDeath(BaseParallelWrapper):
    """Keep every possible agent until the episode ends, as parameter sharing needs.

    An agent that finished early (liquidated) gets a zero observation, reward 0 and an
    empty info each step until every agent has finished; then all of them are done
    together: ``terminations`` True for those that were terminated, ``truncations`` True
    for the others. This is SuperSuit's ``black_death_v3``, which 3.11.0 ships with a bug:
    it ends the episode only when every agent is terminated *and* truncated in the same
    step, so it never reports the end of a truncated episode (fixed upstream in
    Farama-Foundation/SuperSuit#265). Works for any parallel env with ``Box`` observations.
    """

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        obs, infos = self.env.reset(seed=seed, options=options)
        self.agents = self.env.possible_agents[:]
        self._finished: dict[str, bool] = {}  # agent -> terminated (True) or truncated (False)
        zeros = {a: self._zeros(a) for a in self.agents if a not in obs}
        return {**zeros, **obs}, {**{a: {} for a in zeros}, **infos}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        live = self.env.agents
        obs, rewards, terms, truncs, infos = self.env.step({a: actions[a] for a in live if a in actions})
        for a in live:
            if terms.get(a) or truncs.get(a):
                self._finished[a] = bool(terms.get(a))
        done = not self.env.agents
        out_obs = {a: obs[a] if a in obs else self._zeros(a) for a in self.agents}
        out_rewards = {a: rewards.get(a, 0.0) for a in self.agents}
        out_infos = {a: infos.get(a, {}) for a in self.agents}
        out_terms = {a: done and self._finished.get(a, False) for a in self.agents}
        out_truncs = {a: done and not self._finished.get(a, False) for a in self.agents}
        if done:
            self.agents = []
        return out_obs, out_rewards, out_terms, out_truncs, out_infos

    def _zeros(self, agent: str) -> np.ndarray:
        space = self.observation_space(agent)
        assert isinstance(space, spaces.Box), f"BlackDeath needs Box observation spaces, got {space}"
        return np.zeros(space.shape, dtype=space.dtype)


# ---- Farama entry points ---------------------------------------------------------------------
def parallel_env(render_mode: str | None = None, config: MultiTradingConfig | None = None, **overrides: Any) -> MultiTradingEnv:
    """The parallel environment (``MultiTradingEnv``)."""
    return MultiTradingEnv(config, render_mode=render_mode, **overrides)


def raw_env(render_mode: str | None = None, config: MultiTradingConfig | None = None, **overrides: Any) -> AECEnv:
    """The AEC environment: ``parallel_env`` through ``parallel_to_aec`` (order-enforcing)."""
    return parallel_to_aec(parallel_env(render_mode, config, **overrides))


def env(render_mode: str | None = None, config: MultiTradingConfig | None = None, **overrides: Any) -> AECEnv:
    """The AEC environment with PettingZoo's out-of-bounds action check."""
    return wrappers.AssertOutOfBoundsWrapper(raw_env(render_mode, config, **overrides))

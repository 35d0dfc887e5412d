"""Single-agent Gymnasium environments on the simulated exchange.

``TradingEnv`` (``exchange/Trading-v0``) and ``MarketMakingEnv`` (``exchange/MarketMaking-v0``)
put one learning agent into an ``exchange.sim.Simulator`` next to scripted background
traders from ``agents``. The agent is an ``exchange.sim.Agent`` (``Learner``) that takes the
public feed of its symbol; at the start of each step the environment turns the action into
commands sent through the agent's ``Context`` with zero latency, then runs the simulator
for ``step_ns``. Every order goes through the matching engine and the venue's risk checks;
money, reward and inventory come from ``exchange.accounts`` only.
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from rich.console import Console

from agents import make_agent
from agents.base import OrderTracker
from envs import actions
from envs.config import TradingConfig, default_background
from envs.flow import FlowBackground, FlowMarket, resolve
from envs.observation import BookObservation, as_dict, dict_observation_space, observation_space
from envs.render import RgbRenderer
from exchange.accounts import mark_price
from exchange.events import Fill
from exchange.instrument import PRESETS
from exchange.sim import Agent, Context, Simulator
from exchange.venue import Exchange, RiskLimits
from view.ladder import ladder

LEARNER = 0  # the learning agent's trader id; background traders are 1, 2, ...


class Learner(Agent):
    """The learning agent inside the simulator: it only records what it is told.

    Its working orders and position are tracked from its delivered events (``OrderTracker``);
    ``flow`` sums the signed size of every trade print (buyer-initiated positive) and
    ``trades`` counts the prints since the environment last zeroed them.
    """

    market_data = True

    def __init__(self, trader: int, symbol: str) -> None:
        super().__init__(trader)
        self.symbol = symbol
        self.symbols = (symbol,)
        self.orders = OrderTracker(trader)
        self.flow = 0
        self.trades = 0

    def on_events(self, ctx: Context, symbol: str, events: list) -> None:
        orders = self.orders
        for ev in events:
            if type(ev) is Fill:
                self.flow += ev.aggressor * ev.qty
                self.trades += 1
            orders.apply(ev)

    @property
    def rejected(self) -> int:
        return sum(self.orders.rejects.values())


class TradingEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """Trade one instrument against scripted traders through a real matching engine.

    ## Description

    A continuous double auction (``exchange``) for one symbol, preset ``"nyse"`` (price-time
    FIFO, tick 1 cent) or ``"cme"`` (pro rata with TOP, tick 25), populated by background
    traders. ``background`` chooses them: scripted agents of ``agents`` running in the
    discrete-event simulator (default: two ``NoiseTrader`` and one
    ``AvellanedaStoikovMaker``), or ``"flow"`` / ``"flow_heavy"`` / an
    ``envs.flow.FlowBackground``: the lean background of ``envs.flow`` (noise traders and an
    Avellaneda-Stoikov maker as in ``vector.background``, about 5 or 24 book messages per
    step, sent straight to the book without the simulator; several times faster, see that
    module for its rules and what it accounts). Either way every order, the agent's and the
    background's, goes through the same matching engine, and the agent's orders through the
    venue's risk checks. Before the first observation the background trades alone for
    ``warmup_ns`` so the book has depth. Each step the agent's action becomes orders, sent at the start of the step
    with zero latency, and the simulation advances ``step_ns`` (default 100 ms). Orders are
    GTC limit orders that match in the engine like anyone else's: an order through the
    touch walks the book and pays the prices it finds, a passive order waits in its queue.
    There is never a fill at an observed price.

    ## Action Space

    ``MultiDiscrete([3, 2 * max_offset + 1, len(qty_buckets), 2])`` (the last component only
    with ``cancel_all``, the default):

    | index | meaning |
    | --- | --- |
    | 0 | side: 0 sell, 1 none (send no order), 2 buy |
    | 1 | price offset ``k - max_offset`` ticks from the touch the order would trade with |
    | 2 | size: ``qty_buckets[k]`` lots |
    | 3 | 1: cancel all the agent's working orders first (one ``MassCancel``, sent only if it has any) |

    A buy is priced ``best ask + offset * tick`` and a sell ``best bid - offset * tick``:
    offset 0 is marketable at the touch, a positive offset goes through it (sweeping deeper
    levels), a negative one rests behind it (on a one-tick spread, -1 joins the best bid or
    ask). With the opposite side empty the venue's mark (else ``reference_price``) stands
    in for the touch. Orders are GTC limit orders; they stay working until filled or
    cancelled. Orders carry the agent's self-match id, so it never trades with itself. The
    venue's ``RiskLimits`` (``max_position`` counting working orders of the same side,
    ``max_open_orders``) refuse orders that could break them; refusals are counted in
    ``info``.

    With ``action_type="box"`` the action is a ``Box(-1, 1, (n,), float32)`` with the same
    ``n`` components: component ``i`` selects index ``min(n_i - 1, floor((a_i + 1) / 2 * n_i))``
    of the discrete action above (uniform bins over ``[-1, 1]``; so for the side, the lowest
    third sells, the middle third does nothing and the top third buys).

    ## Observation Space

    A ``Box`` of ``4 * depth + 8`` ``float32`` features (with ``obs_type="dict"``, a ``Dict``
    of the same values named ``bids``, ``asks``, ``market``, ``agent``): the top ``depth`` levels of each
    side as (distance from mid in ticks, size / ``size_scale``), empty levels as the sentinel
    ``(max_ticks, 0)``; spread in ticks; mid return since the last step in ticks; signed
    trade flow of the last step; top-of-book imbalance; the agent's inventory /
    ``max_position``; its equity change since reset / ``reward_scale`` (ticks x lots); its
    open orders / ``max_open_orders``; the fraction of the episode left. Every feature is
    clipped to the Box; see ``envs.observation`` for the exact layout and bounds.

    ## Rewards

    The change over the step of the agent's mark-to-market equity,
    ``Account.equity(Exchange.marks())`` (cash plus position at the mid, or the last trade
    when a side is empty), in ticks x lots, minus ``inventory_penalty * |inventory|``, and,
    on the last step of the horizon with ``liquidation_cost``, minus the cost of crossing
    half the spread with the whole inventory (``spread / 2 * |inventory|`` ticks x lots;
    ``max_ticks / 2`` per lot when a side is empty). All divided by ``reward_scale``.

    ## Episode End

    The episode never terminates. It is truncated by ``TimeLimit`` after
    ``max_episode_steps`` (1000 at registration, 100 s of simulated time). The environment
    cannot see its wrappers, so the horizon it uses for the time-left feature and the
    liquidation cost is its own ``horizon_steps`` (default 1000, equal to the registered
    limit): to change the episode length pass both,
    ``gymnasium.make(id, max_episode_steps=n, horizon_steps=n)``.

    ## Arguments

    ``gymnasium.make("exchange/Trading-v0", render_mode=None, config=None, **overrides)``:
    ``config`` is a frozen ``envs.TradingConfig`` and keyword arguments override its fields
    (``preset``, ``step_ns``, ``background``, ``max_position``, ``qty_buckets``, ``depth``,
    ``reward_scale``, ``inventory_penalty``, ...; each documented where declared).
    ``render_mode="ansi"`` makes ``render()`` return the depth ladder as text;
    ``"rgb_array"`` returns an RGB ``uint8`` image (depth chart, mid price of the episode,
    the agent's position) for ``gymnasium.wrappers.RecordVideo``.
    ``reset(seed=...)`` is the only seeding path: the seed fixes the simulator's seed (or the
    flow's generator) and so the whole episode for a given action sequence.

    ## Version History

    * v0: Initial version; ``background="flow"`` added later (the default background and
      its trajectories are unchanged).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 10}

    def __init__(self, config: TradingConfig | None = None, render_mode: str | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else TradingConfig()
        if overrides:
            cfg = replace(cfg, **overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.config = cfg
        self.render_mode = render_mode
        self.instrument = PRESETS[cfg.preset](cfg.symbol)
        self.tick = self.instrument.tick
        self._nvec = self._action_nvec()
        self.action_space = self._action_space()
        flat = observation_space(cfg)
        self._low, self._high = flat.low, flat.high
        self._shape = flat.shape
        self._book_observation = BookObservation(cfg)  # the flat observation of the book, in one call
        self._dict_obs = cfg.obs_type == "dict"
        self.observation_space = dict_observation_space(cfg) if cfg.obs_type == "dict" else flat
        self._renderer: RgbRenderer | None = None
        self.sim: Simulator | FlowMarket | None = None
        self.exchange: Exchange | None = None
        self.learner: Learner | None = None

    # ---- actions (overridden by MarketMakingEnv and ExecutionEnv; the rules live in envs.actions)
    def _action_nvec(self) -> list[int]:
        """Sizes of the discrete action components (the Box variant bins onto these)."""
        cfg = self.config
        return actions.trading_nvec(cfg.max_offset, len(cfg.qty_buckets), cfg.cancel_all)

    def _action_space(self) -> spaces.Space:
        return actions.action_space(self._nvec, self.config.action_type)

    def _indices(self, action: Any) -> list[int]:
        """The discrete indices of an action of either variant."""
        return actions.indices(action, self._nvec, self.config.action_type)

    def _act(self, ctx: Context, action: Any) -> None:
        cfg, tick = self.config, self.tick
        assert self.learner is not None
        actions.trade(  # _indices and _fallback_price, called straight (the hot path)
            ctx, cfg.symbol, LEARNER, self.learner.orders, actions.indices(action, self._nvec, cfg.action_type),
            tick=tick, max_offset=cfg.max_offset, qty_buckets=cfg.qty_buckets,
            cancel_all=cfg.cancel_all, fallback=actions.fallback_price(self.mid, tick),
        )

    def _fallback_price(self) -> int:
        """The mark (else ``reference_price``) rounded to the tick: the touch of an empty side.

        ``self.mid`` is that mark as the last step (or reset) left the book, which is the book
        the action sees: nothing trades between the end of a step and the next action."""
        return actions.fallback_price(self.mid, self.tick)

    # ---- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        cfg = self.config
        ref = cfg.reference
        self.exchange = Exchange(
            {cfg.symbol: self.instrument},
            starting_cash=cfg.starting_cash,
            risk=RiskLimits(max_position=cfg.max_position, max_open_orders=cfg.max_open_orders),
        )
        self.learner = Learner(LEARNER, cfg.symbol)
        background = resolve(cfg.background) if cfg.background is not None else default_background(ref, cfg.max_position)
        seed = int(self.np_random.integers(2**62))
        if isinstance(background, FlowBackground):
            self.sim = FlowMarket(
                self.exchange, cfg.symbol, background, [self.learner],
                seed=seed, step_ns=cfg.step_ns, reference_price=ref, max_position=cfg.max_position,
            )
        else:
            agents: list[Agent] = [self.learner]
            for b in background:
                for _ in range(b.count):
                    agents.append(make_agent(b.name, len(agents), cfg.symbol, b.config))
            self.sim = Simulator(self.exchange, agents, seed=seed)
        self.sim.run(until=cfg.warmup_ns)
        self._ctx = self.sim.context(LEARNER)
        self._engine = self.exchange.engines[cfg.symbol]
        self.account = self.exchange.accounts.account(LEARNER)
        self.horizon = cfg.horizon_steps
        self.steps = 0
        self.equity0 = self.equity = self.account.equity(self.exchange.marks())
        self.mid = self._mark()
        self.mids = [self.mid]  # the mark after every step, for rgb_array rendering
        self.rejected0 = self.learner.rejected
        # the tape (flow and trade prints): the learner's public feed, or the FlowMarket's own count
        self._tape = self.sim if type(self.sim) is FlowMarket else self.learner
        self._tape.flow = self._tape.trades = 0
        return self._observation(0.0, 0), self._info(0, 0)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        sim, learner, cfg = self.sim, self.learner, self.config
        if sim is None or learner is None or self.exchange is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        flow_market = type(sim) is FlowMarket
        events0, commands0 = sim.events_produced, sim.commands if flow_market else len(sim.log)
        tape = self._tape
        tape.flow = tape.trades = 0
        self._act(self._ctx, action)
        sim.run(sim.now + cfg.step_ns)
        self.steps += 1
        engine = self._engine
        self._mark_price = mark = mark_price(engine.book, engine.last_price)  # the venue's mark, for _reward
        reward, terminated = self._reward()
        mid = mark if mark is not None else float(cfg.reference)
        mid_return = (mid - self.mid) / self.tick
        self.mid = mid
        self.mids.append(mid)
        obs = self._observation(mid_return, tape.flow)
        info = self._info(sim.events_produced - events0, (sim.commands if flow_market else len(sim.log)) - commands0)
        return obs, float(reward), terminated, False, info

    def _reward(self) -> tuple[float, bool]:
        """(reward, terminated) of the step just simulated; see Rewards."""
        cfg = self.config
        assert self.exchange is not None
        equity = self.account.equity({cfg.symbol: self._mark_price})  # Exchange.marks() of the one symbol
        inventory = self.account.position(cfg.symbol)
        money = (equity - self.equity) / self.tick  # ticks x lots
        self.equity = equity
        cost = cfg.inventory_penalty * abs(inventory)
        if cfg.liquidation_cost and self.steps == self.horizon:
            cost += self._half_spread() * abs(inventory)
        return (money - cost) / cfg.reward_scale, False

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None or self.exchange is None:
            return None
        if self.render_mode == "rgb_array":
            if self._renderer is None:
                self._renderer = RgbRenderer(self.config.symbol, self.tick)
            engine = self.exchange.engines[self.config.symbol]
            return self._renderer.draw(engine.book, self.mids, self.account.position(self.config.symbol), self._status())
        out = io.StringIO()
        console = Console(file=out, width=100, color_system=None, force_terminal=False, legacy_windows=False)
        console.print(ladder(self.exchange.engines[self.config.symbol], depth=self.config.depth))
        console.print(self._status())
        return out.getvalue()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _status(self) -> str:
        return (
            f"step {self.steps}/{self.horizon} · position {self.account.position(self.config.symbol)} · "
            f"equity change {(self.equity - self.equity0) / self.tick:+.1f} ticks x lots · "
            f"open orders {len(self.learner.orders.orders) if self.learner else 0}"
        )

    # ---- derived quantities --------------------------------------------------------------------
    def _mark(self) -> float:
        """The venue's mark (mid, else last trade), else ``reference_price``; price units."""
        assert self.exchange is not None
        engine = self.exchange.engines[self.config.symbol]
        mark = mark_price(engine.book, engine.last_price)
        return mark if mark is not None else float(self.config.reference)

    def _half_spread(self) -> float:
        """Half the spread in ticks (``max_ticks / 2`` when a side is empty)."""
        assert self.exchange is not None
        book = self.exchange.engines[self.config.symbol].book
        bid, ask = book.bids.best, book.asks.best
        if bid is None or ask is None:
            return self.config.max_ticks / 2
        return (ask - bid) / self.tick / 2

    def _observation(self, mid_return: float, flow: int) -> np.ndarray | dict[str, np.ndarray]:
        """The observation (``envs.observation``'s layout: ``BookObservation`` builds the
        features of ``observation_values`` from the book in one call)."""
        assert self.exchange is not None and self.learner is not None
        obs = self._book_observation(
            self._engine.book,
            self.mid,
            self.tick,
            mid_return,
            flow,
            self.account.position(self.config.symbol),
            self.equity - self.equity0,
            len(self.learner.orders.orders),
            max(0.0, 1.0 - self.steps / self.horizon),
        )
        return as_dict(obs, self.config) if self._dict_obs else obs

    def _info(self, messages: int, commands: int) -> dict[str, Any]:
        assert self.learner is not None
        return {
            "position": self.account.position(self.config.symbol),
            "equity": self.equity - self.equity0,  # price units since reset
            "open_orders": len(self.learner.orders.orders),
            "rejected": self.learner.rejected - self.rejected0,  # refused commands this episode
            "messages": messages,  # exchange events produced during the step
            "commands": commands,  # commands the venue processed during the step (every participant's)
            "trades": self._tape.trades,  # trade prints during the step (every participant's)
            "time_ns": self.sim.now if self.sim is not None else 0,
        }


class MarketMakingEnv(TradingEnv):
    """Quote both sides of one instrument; everything else as ``TradingEnv``.

    ## Description

    As ``TradingEnv`` (same market, background, observation, reward and episode end), but
    the agent is a market maker that keeps exactly one bid and one ask of ``quote_qty``
    lots working.

    ## Action Space

    ``MultiDiscrete([n_offsets, n_offsets])`` (with ``action_type="box"``, a ``Box(-1, 1,
    (2,))`` binned onto it as in ``TradingEnv``): the bid's and the ask's distance in ticks
    behind the touch of other traders (0 joins the best bid / ask of the *other* traders,
    so the agent's own quote does not move the reference). A quote is clamped to at least
    one tick from the other side's best (it never takes liquidity). Each step the previous
    quote of each side is moved with one ``Modify`` (price, and size back to ``quote_qty``
    if it was partly filled), or entered anew if it was filled or refused; nothing is sent
    for a quote that already stands. With a side of the book empty, the other side's best
    (one tick away) or the mark stands in for its touch. The venue refuses a quote that
    could take the position past ``max_position``; that side is then simply not quoted
    this step (counted in ``info["rejected"]``).

    ## Observation Space, Rewards, Episode End, Arguments

    As ``TradingEnv`` (``gymnasium.make("exchange/MarketMaking-v0", ...)``), with
    ``n_offsets`` and ``quote_qty`` configuring the action.

    ## Version History

    * v0: Initial version.
    """

    def _action_nvec(self) -> list[int]:
        return actions.quoting_nvec(self.config.n_offsets)

    def _act(self, ctx: Context, action: Any) -> None:
        cfg = self.config
        assert self.learner is not None
        actions.quote(
            ctx, cfg.symbol, LEARNER, self.learner.orders, self._indices(action),
            tick=self.tick, quote_qty=cfg.quote_qty, fallback=self._fallback_price(),
        )

"""The lean ``flow`` background of the trading environments (``envs.flow``): conformance for
every id, preset and variant, seeded reproducibility, calibrated message counts, the
learner's account exact against its fills, the venue's view of the learner's orders exact,
the book's invariants, and the parameters shared with ``vector.background``."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import warnings
from pathlib import Path

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs import ENV_IDS, LEARNER, TradingConfig
from envs.flow import FLOW_HEAVY, FLOW_LIGHT, FlowBackground, FlowMarket
from exchange.accounts import Accounts
from exchange.book import TRADER
from exchange.events import Fill
from test_envs import rollout, same  # the scripted background's seeding tests use the same helpers

PRESETS = ("nyse", "cme")
VARIANTS = [("discrete", "box"), ("box", "dict")]


def make(env_id: str = "exchange/Trading-v0", **kw):
    kw.setdefault("background", "flow")
    return gymnasium.make(env_id, **kw)


# ---- conformance -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_unwrapped(env_id: str, preset: str, variant: tuple[str, str]) -> None:
    action_type, obs_type = variant
    env = make(env_id, preset=preset, render_mode="ansi", action_type=action_type, obs_type=obs_type)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
@pytest.mark.parametrize("background", ["flow", "flow_heavy", FlowBackground(n_noise=1, market_maker=False)])
def test_check_env_made(background) -> None:
    check_env(make(background=background), skip_render_check=True)


def test_the_background_is_a_flow_market() -> None:
    env = make()
    env.reset(seed=0)
    assert type(env.unwrapped.sim) is FlowMarket and env.unwrapped.sim.params == FLOW_LIGHT
    env = make(background=FLOW_HEAVY)
    env.reset(seed=0)
    assert env.unwrapped.sim.params == FLOW_HEAVY


def test_unknown_background_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown background"):
        TradingConfig(background="flood")


def test_flow_parameters_are_the_vector_backgrounds() -> None:
    """The scalar flow and ``vector.background`` define the same background: same fields and defaults."""
    pytest.importorskip("torch")
    path = Path(__file__).resolve().parent.parent / "vector" / "background.py"
    spec = importlib.util.spec_from_file_location("_vector_background", path)  # vector/ may not be on sys.path
    torch_background = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = torch_background  # dataclasses look their module up
    spec.loader.exec_module(torch_background)
    ours = {f.name: f.default for f in dataclasses.fields(FlowBackground)}
    theirs = {f.name: f.default for f in dataclasses.fields(torch_background.BackgroundParams)}
    assert ours == theirs
    assert FLOW_LIGHT.spread == pytest.approx(torch_background.LIGHT.spread)


# ---- seeding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("background", ["flow", "flow_heavy"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_lockstep_determinism(env_id: str, background: str) -> None:
    a, b = make(env_id, background=background), make(env_id, background=background)
    assert same(rollout(a, seed=11, steps=200), rollout(b, seed=11, steps=200))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_different_seeds_differ_and_a_seed_reproduces(env_id: str) -> None:
    env = make(env_id)
    first = rollout(env, seed=1, steps=60)
    assert not same(first, rollout(env, seed=2, steps=60))
    assert same(first, rollout(env, seed=1, steps=60))


def test_episodes_continue_across_resets() -> None:
    """Short episodes: every reset rebuilds the market from the env's generator."""
    a = make(max_episode_steps=25, horizon_steps=25)
    b = make(max_episode_steps=25, horizon_steps=25)
    assert same(rollout(a, seed=3, steps=120), rollout(b, seed=3, steps=120))
    a.reset(seed=4)
    s1 = a.unwrapped.sim.seed
    a.reset()
    assert a.unwrapped.sim.seed != s1


# ---- calibration -------------------------------------------------------------------------------
@pytest.mark.parametrize(("background", "low", "high"), [("flow", 4.0, 6.0), ("flow_heavy", 21.0, 27.0)])
@pytest.mark.parametrize("preset", PRESETS)
def test_messages_per_step(background: str, low: float, high: float, preset: str) -> None:
    """About 5 (light) and 24 (heavy) book messages per step with random actions, every
    participant counted: ``info["commands"]`` is every command that reached the book."""
    env = make(background=background, preset=preset)
    env.action_space.seed(0)
    env.reset(seed=0)
    market = env.unwrapped.sim
    market.log = []
    commands = trades = 0
    steps = 1500
    for _ in range(steps):
        before = len(market.log)
        *_, terminated, truncated, info = env.step(env.action_space.sample())
        assert info["commands"] == len(market.log) - before  # one log entry per command, none missed
        assert info["trades"] == sum(type(ev) is Fill for _, _, evs in market.log[before:] for ev in evs)
        commands += info["commands"]
        trades += info["trades"]
        if terminated or truncated:
            env.reset()
            market = env.unwrapped.sim
            market.log = []
    assert low < commands / steps < high
    assert 0.3 < trades / steps < commands / steps


# ---- accounting and risk -----------------------------------------------------------------------
@pytest.mark.parametrize("background", ["flow", "flow_heavy"])
@pytest.mark.parametrize("preset", PRESETS)
def test_learner_account_is_exact_against_its_fills(preset: str, background: str) -> None:
    """Replaying every fill of the episode (the learner's own commands and the background's)
    into fresh accounts gives the learner's account; the venue's accounts are conserved."""
    env = make(background=background, preset=preset, max_episode_steps=400, horizon_steps=400)
    env.action_space.seed(5)
    env.reset(seed=5)
    u = env.unwrapped
    market = u.sim
    replay = Accounts(starting_cash=u.config.starting_cash)
    market.log = []  # the learner sends nothing during the warm-up: its fills are all logged from here
    for _ in range(400):
        env.step(env.action_space.sample())
    replay.apply(u.config.symbol, [ev for _, _, evs in market.log for ev in evs if type(ev) is Fill])
    ours, theirs = u.exchange.accounts.account(LEARNER), replay.account(LEARNER)
    assert ours.positions.get(u.config.symbol) is not None, "the learner never traded: a weak test"
    assert (ours.cash, ours.fees, ours.volume, ours.fills) == (theirs.cash, theirs.fees, theirs.volume, theirs.fills)
    assert ours.position(u.config.symbol) == theirs.position(u.config.symbol) == u.learner.orders.position
    u.exchange.accounts.check_conservation()


@pytest.mark.parametrize("env_id", ["exchange/Trading-v0", "exchange/MarketMaking-v0"])
@pytest.mark.parametrize("preset", PRESETS)
def test_the_venue_and_the_tracker_see_the_learners_orders(env_id: str, preset: str) -> None:
    """The learner's resting orders in the book are exactly what the venue's risk checks count
    and what its ``OrderTracker`` holds, step after step (background fills included)."""
    env = make(env_id, preset=preset, background="flow_heavy")
    env.action_space.seed(2)
    env.reset(seed=2)
    u = env.unwrapped
    engine = u.exchange.engines[u.config.symbol]
    for _ in range(300):
        env.step(env.action_space.sample())
        resting = {oid: o for oid, o in engine.book.orders.items() if o[TRADER] == LEARNER}
        venue = {oid: qty for (_, oid), (_, qty) in u.exchange.open_orders.get(LEARNER, {}).items()}
        assert venue == {oid: engine.open_qty(oid) for oid in resting}
        assert set(u.learner.orders.orders) == set(resting)
        engine.book.check_invariants()


def test_background_positions_stay_within_the_risk_limit() -> None:
    env = make(background="flow_heavy", max_position=20)
    env.action_space.seed(1)
    env.reset(seed=1)
    u = env.unwrapped
    for _ in range(600):
        env.step(env.action_space.sample())
        for trader in u.sim.noise_traders:
            assert abs(u.exchange.accounts.account(trader).position(u.config.symbol)) <= 20


@pytest.mark.parametrize("preset", PRESETS)
def test_reward_is_the_equity_change_from_the_accounts(preset: str) -> None:
    env = make(preset=preset, liquidation_cost=False)
    u = env.unwrapped
    env.reset(seed=8)
    env.action_space.seed(8)
    account = u.exchange.accounts.account(LEARNER)
    before = account.equity(u.exchange.marks())
    changed = 0
    for _ in range(200):
        _, reward, *_ = env.step(env.action_space.sample())
        after = account.equity(u.exchange.marks())
        assert reward == pytest.approx((after - before) / u.instrument.tick / u.config.reward_scale, abs=1e-12)
        changed += after != before
        before = after
    assert changed > 10


def test_clock_and_warm_up() -> None:
    env = make(step_ns=50_000_000, warmup_ns=500_000_000)
    env.reset(seed=0)
    u = env.unwrapped
    assert u.sim.now == 500_000_000 and u.sim.steps == 10  # one background step per step_ns of warm-up
    env.step(env.action_space.sample())
    assert u.sim.now == 550_000_000 and u.sim.steps == 11
    book = u.exchange.engines[u.config.symbol].book
    assert book.bids.best is not None and book.asks.best is not None


# ---- the flow's own bookkeeping ----------------------------------------------------------------
@pytest.mark.parametrize("background", ["flow", "flow_heavy"])
@pytest.mark.parametrize("preset", PRESETS)
def test_tracked_noise_orders_are_the_books(preset: str, background: str) -> None:
    """``FlowMarket.noise_orders`` (kept from events, never read from the book) is exactly
    every noise trader's resting orders, oldest first, after every step (``check_invariants``);
    on cme self-match prevention cancels resting noise orders too."""
    env = make(background=background, preset=preset, max_position=20)
    env.action_space.seed(4)
    env.reset(seed=4)
    market = env.unwrapped.sim
    market.check_invariants()
    for _ in range(400):
        env.step(env.action_space.sample())
        market.check_invariants()
    assert sum(len(m) for m in market.noise_orders) > 0


@pytest.mark.parametrize("background", ["flow", "flow_heavy"])
@pytest.mark.parametrize("preset", PRESETS)
def test_lean_entries_give_the_episode_of_full_submits(preset: str, background: str) -> None:
    """Background rests and cancels take the engine's lean entries (``rest``, ``withdraw``: no
    events built) unless ``log`` is set, when every command goes through ``submit`` (and the
    noise and quote decisions through their logged twins); the episode is the same either
    way: observations, rewards, infos, the engine's state hash and seq, the counts."""
    runs = []
    for one_by_one in (False, True):
        env = make(background=background, preset=preset)
        env.action_space.seed(6)
        env.reset(seed=6)
        market = env.unwrapped.sim
        if one_by_one:
            market.log = []
        runs.append([env.step(env.action_space.sample()) for _ in range(300)])
        engine = env.unwrapped.exchange.engines[env.unwrapped.config.symbol]
        runs[-1].append((engine.state_hash(), engine.seq, market.commands, market.events_produced))
    assert same(*runs)

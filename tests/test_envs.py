"""Trading environments: Gymnasium conformance for every id and preset, seeded
reproducibility, truncation, reward from the venue's accounts, risk limits and rendering."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import ENV_IDS, LEARNER, MAX_EPISODE_STEPS, TradingConfig, TradingEnv
from exchange.sim import MS

PRESETS = ("nyse", "cme")


def make(env_id: str, **kw):
    return gymnasium.make(env_id, **kw)


def rollout(env, seed: int, steps: int, action_seed: int = 0) -> list:
    """(obs, reward, terminated, truncated, info) of ``steps`` random actions after reset(seed)."""
    env.action_space.seed(action_seed)
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, False, False, info)]
    for _ in range(steps):
        out.append(env.step(env.action_space.sample()))
    return out


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b, strict=True)
    )


# ---- conformance -------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_unwrapped(env_id: str, preset: str) -> None:
    env = make(env_id, preset=preset, render_mode="ansi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning (dtype, bounds, seeding) fails the test
        check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")  # expected: it is wrapped
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_made(env_id: str) -> None:
    env = make(env_id)
    check_env(env, skip_render_check=True)
    assert env.spec is not None and env.spec.max_episode_steps == MAX_EPISODE_STEPS


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observations_inside_the_box(env_id: str) -> None:
    env = make(env_id, preset="cme")
    for obs, *_ in rollout(env, seed=3, steps=100):
        assert obs.dtype == np.float32 and env.observation_space.contains(obs)


# ---- seeding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_lockstep_determinism(env_id: str) -> None:
    a, b = make(env_id), make(env_id)
    assert same(rollout(a, seed=11, steps=200), rollout(b, seed=11, steps=200))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_different_seeds_differ(env_id: str) -> None:
    env = make(env_id)
    assert not same(rollout(env, seed=1, steps=50), rollout(env, seed=2, steps=50))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_with_the_same_seed_reproduces(env_id: str) -> None:
    env = make(env_id)
    first = rollout(env, seed=5, steps=60)
    rollout(env, seed=9, steps=10)  # something else in between
    assert same(first, rollout(env, seed=5, steps=60))


def test_unseeded_resets_continue_the_generator() -> None:
    env = make("exchange/Trading-v0")
    env.reset(seed=4)
    t1 = env.unwrapped.sim.seed
    env.reset()
    assert env.unwrapped.sim.seed != t1


# ---- episode end -------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_truncation_at_max_episode_steps(env_id: str) -> None:
    env = make(env_id, max_episode_steps=30, horizon_steps=30)
    env.reset(seed=0)
    for i in range(1, 31):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        assert obs[-1] == pytest.approx(1 - i / 30)
        assert truncated == (i == 30)
    assert env.unwrapped.horizon == 30


# ---- reward ------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reward_is_the_equity_change_from_the_accounts(env_id: str, preset: str) -> None:
    env = make(env_id, preset=preset, liquidation_cost=False)
    u = env.unwrapped
    env.reset(seed=8)
    env.action_space.seed(8)
    account = u.exchange.accounts.account(LEARNER)
    before = account.equity(u.exchange.marks())
    changed = 0
    for _ in range(150):
        _, reward, *_ = env.step(env.action_space.sample())
        after = account.equity(u.exchange.marks())
        expected = (after - before) / u.instrument.tick / u.config.reward_scale
        assert reward == pytest.approx(expected, abs=1e-12)
        changed += after != before
        before = after
    assert changed > 0  # the agent did trade


def test_inventory_penalty_and_liquidation_cost() -> None:
    env = make("exchange/Trading-v0", max_episode_steps=20, horizon_steps=20, inventory_penalty=0.5, reward_scale=1.0)
    u = env.unwrapped
    env.reset(seed=2)
    buy = np.array([1, u.config.max_offset + 1, 0])  # buy 1 lot one tick through the ask
    for i in range(1, 21):
        before = u.account.equity(u.exchange.marks())
        half_spread = None
        _, reward, _, truncated, _ = env.step(buy)
        inv = u.account.position(u.config.symbol)
        money = (u.account.equity(u.exchange.marks()) - before) / u.instrument.tick
        cost = 0.5 * abs(inv)
        if truncated:
            half_spread = u._half_spread()
            cost += half_spread * abs(inv)
        assert reward == pytest.approx(money - cost)
    assert half_spread is not None and inv > 0


# ---- risk --------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESETS)
def test_always_buy_is_bounded_by_the_risk_limit(preset: str) -> None:
    env = make("exchange/Trading-v0", preset=preset, max_position=20)
    u = env.unwrapped
    env.reset(seed=1)
    buy = np.array([1, 2 * u.config.max_offset, len(u.config.qty_buckets) - 1])  # biggest, most aggressive
    positions = []
    for _ in range(100):
        *_, info = env.step(buy)
        positions.append(info["position"])
        assert 0 <= info["position"] <= 20
        assert u.account.position(u.config.symbol) == info["position"]
    assert positions[0] > 0 and max(positions) == 20
    assert positions == sorted(positions)  # buying only: never decreases
    assert info["rejected"] > 0  # orders past the limit were refused, not filled


# ---- rendering and config ----------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_ansi_render_shows_the_ladder(env_id: str) -> None:
    env = make(env_id, render_mode="ansi", symbol="ABC")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    text = env.render()
    assert isinstance(text, str) and "ABC" in text and "position" in text
    quiet = make(env_id)
    quiet.reset(seed=0)
    assert quiet.render() is None  # no render mode, nothing drawn


def test_config_object_and_overrides() -> None:
    cfg = TradingConfig(step_ns=50 * MS, depth=3, qty_buckets=(2, 4))
    env = TradingEnv(cfg, max_offset=1)
    assert env.action_space.nvec.tolist() == [3, 3, 2]
    assert env.observation_space.shape == (4 * 3 + 8,)
    _, info = env.reset(seed=0)
    env.step(env.action_space.sample())
    assert env.sim.now == cfg.warmup_ns + 50 * MS
    with pytest.raises(ValueError):
        TradingConfig(preset="lse")
    with pytest.raises(ValueError):
        TradingEnv(render_mode="rgb_array")
    assert envs.REFERENCE_PRICE["cme"] % 25 == 0

"""Trading environments: Gymnasium conformance for every id, preset and space variant,
seeded reproducibility, truncation, reward from the venue's accounts, risk limits,
execution, rendering."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import ENV_IDS, EXECUTION_STEPS, LEARNER, MAX_EPISODE_STEPS, TradingConfig, TradingEnv
from envs.observation import BookObservation, book_levels, observation_bounds, observation_values, to_observation
from exchange.commands import NewOrder
from exchange.engine import MatchingEngine
from exchange.events import Fill
from exchange.instrument import PRESETS as PRESETS_BY_NAME
from exchange.sim import MS

PRESETS = ("nyse", "cme")
VARIANTS = [("discrete", "box"), ("box", "dict")]  # (action_type, obs_type); the other two mixes share the code
TRADING_IDS = ("exchange/Trading-v0", "exchange/MarketMaking-v0")  # never terminate; reward = equity change
LIMITS = {"exchange/Trading-v0": MAX_EPISODE_STEPS, "exchange/MarketMaking-v0": MAX_EPISODE_STEPS,
          "exchange/Execution-v0": EXECUTION_STEPS}


def make(env_id: str, **kw):
    return gymnasium.make(env_id, **kw)


def rollout(env, seed: int, steps: int, action_seed: int = 0) -> list:
    """(obs, reward, terminated, truncated, info) of ``steps`` random actions after reset(seed)."""
    env.action_space.seed(action_seed)
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, False, False, info)]
    for _ in range(steps):
        out.append(env.step(env.action_space.sample()))
        if out[-1][2] or out[-1][3]:
            out.append((*env.reset(), 0.0, False, False))  # the episode ended: go on unseeded
    return out


def equal_obs(x, y) -> bool:
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
    return np.array_equal(x, y)


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(equal_obs(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b, strict=True))


# ---- conformance -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_unwrapped(env_id: str, preset: str, variant: tuple[str, str]) -> None:
    action_type, obs_type = variant
    env = make(env_id, preset=preset, render_mode="ansi", action_type=action_type, obs_type=obs_type)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning (dtype, bounds, seeding) fails the test
        check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")  # expected: it is wrapped
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_made(env_id: str) -> None:
    env = make(env_id)
    check_env(env, skip_render_check=True)
    assert env.spec is not None and env.spec.max_episode_steps == LIMITS[env_id]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observations_inside_the_box(env_id: str) -> None:
    env = make(env_id, preset="cme")
    for obs, *_ in rollout(env, seed=3, steps=100):
        assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    env = make(env_id, obs_type="dict", action_type="box")
    for obs, *_ in rollout(env, seed=3, steps=100):
        assert env.observation_space.contains(obs)


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
@pytest.mark.parametrize("env_id", TRADING_IDS)
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
@pytest.mark.parametrize("env_id", TRADING_IDS)
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
    buy = np.array([2, u.config.max_offset + 1, 0, 0])  # buy 1 lot one tick through the ask
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
    buy = np.array([2, 2 * u.config.max_offset, len(u.config.qty_buckets) - 1, 0])  # biggest, most aggressive
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
    assert env.action_space.nvec.tolist() == [3, 3, 2, 2]
    assert TradingEnv(cfg, max_offset=1, cancel_all=False).action_space.nvec.tolist() == [3, 3, 2]
    assert env.observation_space.shape == (4 * 3 + 8,)
    _, info = env.reset(seed=0)
    env.step(env.action_space.sample())
    assert env.sim.now == cfg.warmup_ns + 50 * MS
    with pytest.raises(ValueError):
        TradingConfig(preset="lse")
    with pytest.raises(ValueError):
        TradingEnv(render_mode="human")
    with pytest.raises(ValueError):
        TradingConfig(action_type="continuous")
    assert envs.REFERENCE_PRICE["cme"] % 25 == 0


# ---- space variants ------------------------------------------------------------------------------
def box_for(indices: list[int], nvec: list[int]) -> np.ndarray:
    """The centre of each index's bin: the Box action that decodes to ``indices``."""
    return np.array([(2 * i + 1) / n - 1 for i, n in zip(indices, nvec, strict=True)], dtype=np.float32)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_box_actions_decode_to_the_discrete_ones(env_id: str) -> None:
    discrete, box = make(env_id), make(env_id, action_type="box")
    nvec = discrete.action_space.nvec.tolist()
    discrete.action_space.seed(4)
    discrete.reset(seed=6)
    box.reset(seed=6)
    for _ in range(150):
        a = discrete.action_space.sample()
        x, y = discrete.step(a), box.step(box_for(a.tolist(), nvec))
        assert np.array_equal(x[0], y[0]) and x[1:4] == y[1:4]
        if x[2] or x[3]:
            break
    # the edges of [-1, 1] fall in the first and last bins
    assert box.unwrapped._indices(np.array([-1.0] * len(nvec))) == [0] * len(nvec)
    assert box.unwrapped._indices(np.array([1.0] * len(nvec))) == [n - 1 for n in nvec]


def test_dict_observation_holds_the_flat_values() -> None:
    flat, named = make("exchange/Trading-v0"), make("exchange/Trading-v0", obs_type="dict")
    L = flat.unwrapped.config.depth
    a, _ = flat.reset(seed=3)
    b, _ = named.reset(seed=3)
    flat.action_space.seed(1)
    for _ in range(50):
        joined = np.concatenate([b["bids"].ravel(), b["asks"].ravel(), b["market"], b["agent"]])
        assert np.array_equal(a, joined) and b["bids"].shape == (L, 2)
        action = flat.action_space.sample()
        a, *_ = flat.step(action)
        b, *_ = named.step(action)


@pytest.mark.parametrize("bounds", [(20.0, 10.0), (20.3, 0.7)])  # the second: bounds float32 cannot hold exactly
@pytest.mark.parametrize("depth", [1, 3, 5])
@pytest.mark.parametrize("preset", PRESETS)
def test_book_observation_is_the_obvious_path(preset: str, depth: int, bounds: tuple[float, float]) -> None:
    """The environments' one-call observation (``BookObservation``) is, bit for bit, the
    obvious path ``to_observation(observation_values(*book_levels(...)), low, high)`` on
    books of every shape: two sides, one side, none, fewer levels than the depth, levels and
    sizes past the Box's bounds; measured from the book's mid, the last trade or the reference."""
    rng = np.random.default_rng(depth)
    cfg = TradingConfig(preset=preset, depth=depth, max_ticks=bounds[0], clip=bounds[1])
    tick = PRESETS_BY_NAME[preset]("XYZ").tick
    fast = BookObservation(cfg)
    low, high = observation_bounds(cfg)
    checked = 0
    for _ in range(150):
        engine = MatchingEngine(PRESETS_BY_NAME[preset]("XYZ"))
        ref = 4_000 * tick
        for side in (1, -1):
            for _ in range(int(rng.integers(0, 2 * depth + 2))):
                far = rng.random() < 0.2  # some levels past max_ticks
                ticks = int(rng.integers(1, 60 if far else 6))
                qty = int(rng.integers(1, 900 if rng.random() < 0.2 else 20))  # some sizes past clip
                engine.submit(NewOrder(engine.seq + 1_000_000, 1 + (side > 0), side, qty, ref - side * ticks * tick))
        book = engine.book
        both = book.bids.best is not None and book.asks.best is not None
        mids = [float(ref), float(ref + 3 * tick)] + ([(book.bids.best + book.asks.best) / 2] if both else [])
        for mid in mids:
            scalars = (float(rng.normal(0, 30)), int(rng.integers(-900, 900)), int(rng.integers(-60, 60)),
                       float(rng.normal(0, 5e5)), int(rng.integers(-2, 25)), float(rng.uniform(-0.5, 1.5)))
            obvious = to_observation(
                observation_values(
                    *book_levels(book, depth), mid=mid, tick=tick, config=cfg, mid_return=scalars[0], flow=scalars[1],
                    position=scalars[2], equity_change=scalars[3], open_orders=scalars[4], time_left=scalars[5],
                ),
                low, high,
            )
            ours = fast(book, mid, tick, *scalars)
            assert ours.dtype == np.float32 and ours.tobytes() == obvious.tobytes()
            checked += 1
    assert checked > 300


def test_rgb_array_frames() -> None:
    env = make("exchange/MarketMaking-v0", render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    for _ in range(20):
        env.step(env.action_space.sample())
    later = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.shape == later.shape and not np.array_equal(first, later)
    env.close()


# ---- execution -----------------------------------------------------------------------------------
def learner_fills(env) -> list[Fill]:
    """The learner's fills since reset, from the simulator's event log."""
    return [ev for _, _, events in env.unwrapped.sim.log for ev in events
            if type(ev) is Fill and LEARNER in (ev.maker_trader, ev.taker_trader)]


@pytest.mark.parametrize("exec_side", [1, -1])
@pytest.mark.parametrize("preset", PRESETS)
def test_execution_rewards_sum_to_minus_the_shortfall(preset: str, exec_side: int) -> None:
    env = make("exchange/Execution-v0", preset=preset, exec_side=exec_side, reward_scale=1.0)
    u = env.unwrapped
    env.action_space.seed(2)
    env.reset(seed=5)
    fills_before = len(learner_fills(env))
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += reward
        done = terminated or truncated
        assert 0 <= exec_side * info["position"] <= u.config.target_qty  # never overfilled
    fills = learner_fills(env)[fills_before:]
    filled = sum(f.qty for f in fills)
    shortfall = sum(exec_side * (f.price - info["arrival_price"]) * f.qty for f in fills) / u.tick
    penalty = u.config.unfilled_penalty * (u.config.target_qty - filled)
    assert filled == exec_side * info["position"]
    assert total == pytest.approx(-shortfall - penalty)
    assert terminated == (info["remaining"] == 0)


def test_execution_final_sweep_and_termination() -> None:
    env = make("exchange/Execution-v0", max_episode_steps=10, horizon_steps=10)
    env.reset(seed=1)
    wait = np.zeros(len(env.action_space.nvec), dtype=np.int64)
    for i in range(1, 11):
        obs, _, terminated, truncated, info = env.step(wait)
        if i < 10:
            assert info["remaining"] == 50 and obs[4 * 5 + 4] == 1.0  # waiting fills nothing
    assert terminated or truncated
    assert info["remaining"] < 50  # the sweep bought at the market
    send_all = np.array([1, 2 * 2, 2, 0])  # most aggressive, biggest bucket
    env.reset(seed=1)
    steps = 0
    while True:
        steps += 1
        *_, terminated, truncated, info = env.step(send_all)
        if terminated or truncated:
            break
    assert terminated and info["remaining"] == 0 and steps < 10


def test_execution_refuses_a_target_past_the_risk_limit() -> None:
    with pytest.raises(ValueError, match="max_position"):
        make("exchange/Execution-v0", target_qty=80, max_position=50)

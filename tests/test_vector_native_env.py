"""The fused C env step ``vector.native_env.native_step_state`` is ``vector.env.step_state``, bit for bit.

Both run from the same reset with the same random actions; after every step the new state
(every book tensor, accounts, key, counters, equity, mark), the observation, reward,
truncation flag and every ``info`` entry must be identical (dtype, shape, values). Short
horizons put several auto-resets in every run. Configurations: the trading variant (one
and several learners, box actions), the market-making variant, nyse (fifo) and cme (pro
rata with TOP), int32 and int64 books, full books (overflow), other backgrounds; batch
sizes from 1. Skipped where no C compiler is found.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Callable

import pytest
import torch

from vector import native as vn
from vector import native_env as ne
from vector.background import NONE, BackgroundParams
from vector.env import EnvState, VectorMarketMakingEnv, VectorMultiTradingEnv, VectorTradingEnv, step_state
from vector.hash import check_invariants
from vector_helpers import assert_equal, assert_same_state

pytestmark = pytest.mark.skipif(not vn.available() or not ne.available(), reason="no C compiler to build vector/native_env.c")
torch.set_num_threads(1)

H = 15  # horizon: an auto-reset every 15 steps
CONFIGS: dict[str, Callable[[int], VectorTradingEnv]] = {
    "trading": lambda B: VectorTradingEnv(B, horizon_steps=H),
    "trading-int64": lambda B: VectorTradingEnv(B, horizon_steps=H, dtype="int64"),
    "trading-box-penalty": lambda B: VectorTradingEnv(B, horizon_steps=H, action_type="box", inventory_penalty=0.37),
    "trading-no-liquidation-cost": lambda B: VectorTradingEnv(B, horizon_steps=H, liquidation_cost=False, cancel_all=False),
    "cme": lambda B: VectorTradingEnv(B, horizon_steps=H, preset="cme"),
    "cme-full-books-int64": lambda B: VectorTradingEnv(
        B, horizon_steps=H, preset="cme", capacity=6, dtype="int64", max_position=500, max_open_orders=40
    ),
    "market-making": lambda B: VectorMarketMakingEnv(B, horizon_steps=H),
    "market-making-int64-box-cme": lambda B: VectorMarketMakingEnv(B, horizon_steps=H, dtype="int64", action_type="box", preset="cme"),
    "multi-agent": lambda B: VectorMultiTradingEnv(B, n_agents=3, horizon_steps=H),
    "other-background": lambda B: VectorTradingEnv(
        B, horizon_steps=H, depth=7,
        background=BackgroundParams(min_spread_ticks=4, gamma=0.3, warm_levels=2, n_noise=3, noise_rounds=5),
    ),
    "no-background": lambda B: VectorTradingEnv(B, horizon_steps=H, background=NONE),
}


def random_actions(env: VectorTradingEnv, steps: int, seed: int) -> list[torch.Tensor]:
    """``steps`` batches of actions from the env's own action space, shaped ``[B, N, n]``."""
    env.action_space.seed(seed)
    return [env._in(torch.as_tensor(env.action_space.sample())) for _ in range(steps)]


def run_both(env: VectorTradingEnv, steps: int, seed: int, threads: int = 1) -> tuple[int, int]:
    """``steps`` steps of the torch step and the fused one from the same reset, compared after
    each; returns the auto-resets and overflowed books seen."""
    env.reset(seed=seed)
    p, c = env.params, env.consts
    want_state = env.state
    got_state = ne.copy_state(want_state)
    resets = overflows = 0
    for k, a in enumerate(random_actions(env, steps, seed)):
        given, before = got_state, ne.copy_state(got_state)
        want_state, *want = step_state(p, c, want_state, a)
        got_state, *got = ne.native_step_state(p, c, given, a, threads)
        for what, x, y in zip(("obs", "reward", "truncated", "info"), got, want):
            assert_equal(x, y, f"step {k}: {what}")
        assert_same_state(got_state, want_state, f"step {k}")
        assert_same_state(given, before, f"step {k}: the input")  # (the pure API steps a copy)
        resets += int(want[2].sum())
        overflows = int(want_state.book.overflow.sum()) or overflows
    check_invariants(got_state.book, p.book)
    return resets, overflows


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fused_step_equals_step_state(name: str) -> None:
    """40 steps at B=16 (two auto-resets per env): everything identical after every step."""
    resets, overflows = run_both(CONFIGS[name](16), 40, seed=len(name))
    assert resets == 2 * 16
    if "full-books" in name:
        assert overflows > 0  # (the CAPACITY path ran)


@pytest.mark.parametrize(
    "name, batch, seed, steps",
    [("trading", 1, 0, 300), ("trading-int64", 1, 7, 150), ("trading-int64", 5, 3, 60), ("trading", 64, 11, 60)],
)
def test_fused_step_equals_step_state_across_batches_and_seeds(name: str, batch: int, seed: int, steps: int) -> None:
    """Up to several hundred steps, B=1 included, other seeds and batch sizes."""
    resets, _ = run_both(CONFIGS[name](batch), steps, seed)
    assert resets == (steps // H) * batch


@pytest.mark.parametrize("name", ["trading", "cme-full-books-int64", "market-making"])
def test_order_ids_the_step_issues_already_resting(name: str) -> None:
    """A state whose resting orders carry the ids the next step's orders get (refused as
    DUPLICATE_ORDER_ID), and ids above them: the fused step looks ids up only where one is not
    above every resting id, so both of its paths run; identical to the torch step."""
    env = CONFIGS[name](16)
    env.reset(seed=9)
    p, c = env.params, env.consts
    actions = random_actions(env, 8, 9)
    s = env.state
    for a in actions[:4]:
        s, *_ = step_state(p, c, s, a)
    oid, live = s.book.order_id, s.book.qty > 0
    base = ((s.t + 1) << 6).view(-1, 1, 1)  # (env.step_state's ids of the next step: base + round)
    rank = live.flatten(1).cumsum(1).view_as(oid) - 1  # a unique number per live order of a book
    step = torch.where(torch.arange(16).view(-1, 1, 1) % 2 == 0, 1, 97)  # odd books: ids above the step's
    oid = torch.where(live, (base + rank * step).to(oid.dtype), oid)
    s = EnvState(replace(s.book, order_id=oid), *(getattr(s, f.name) for f in fields(s) if f.name != "book"))
    check_invariants(s.book, p.book)
    want_state, got_state = s, ne.copy_state(s)
    for k, a in enumerate(actions[4:]):
        want_state, *want = step_state(p, c, want_state, a)
        got_state, *got = ne.native_step_state(p, c, got_state, a)
        for what, x, y in zip(("obs", "reward", "truncated", "info"), got, want):
            assert_equal(x, y, f"step {k}: {what}")
        assert_same_state(got_state, want_state, f"step {k}")


def test_threads_do_not_change_the_results() -> None:
    """Two OpenMP threads (B=600: two threads of at least 256 books) give the one-thread results."""
    env = CONFIGS["trading"](600)
    env.reset(seed=5)
    one = ne.FusedStep(env.params, env.consts, ne.copy_state(env.state), threads=1)
    two = ne.FusedStep(env.params, env.consts, ne.copy_state(env.state), threads=2)
    for k, a in enumerate(random_actions(env, 30, 5)):
        got, want = two.step(a), one.step(a)
        for what, x, y in zip(("obs", "reward", "truncated", "info"), got, want):
            assert_equal(x, y, f"step {k}: {what}")
        assert_same_state(two.state, one.state, f"step {k}")


def test_in_place_step_rewrites_the_bound_state_and_reuses_its_buffers() -> None:
    env = CONFIGS["market-making"](4)
    env.reset(seed=2)
    state = ne.copy_state(env.state)
    fused = ne.FusedStep(env.params, env.consts, state)
    a = random_actions(env, 1, 2)[0]
    want_state, *want = step_state(env.params, env.consts, env.state, a)
    obs, reward, done, info = fused.step(a)
    assert fused.state is state
    assert_same_state(state, want_state, "in place")
    assert_equal(obs, want[0], "obs")
    assert fused.step(a)[0] is obs  # (the same buffer, rewritten)


def test_fresh_outputs_are_not_rewritten_by_the_next_step() -> None:
    """``step(a, fresh=True)`` (what the env classes call) returns new tensors each call."""
    env = CONFIGS["trading"](4)
    env.reset(seed=3)
    fused = ne.FusedStep(env.params, env.consts, ne.copy_state(env.state))
    a, b = random_actions(env, 2, 3)
    first = fused.step(a, fresh=True)
    kept = [x.clone() for x in first[:3]], {k: v.clone() for k, v in first[3].items()}
    second = fused.step(b, fresh=True)
    for x, y, z in zip(first[:3], kept[0], second[:3]):
        assert x is not z
        assert_equal(x, y, "a fresh output, after the next step")
    for k in kept[1]:
        assert first[3][k] is not second[3][k]
        assert_equal(first[3][k], kept[1][k], f"info[{k!r}], after the next step")


def test_actions_outside_the_action_space_are_refused() -> None:
    env = CONFIGS["trading"](3)
    env.reset(seed=0)
    a = random_actions(env, 1, 0)[0].clone()
    a[1, 0, 2] = 3  # a size bucket that does not exist
    with pytest.raises(ValueError, match="outside the action space"):
        ne.native_step_state(env.params, env.consts, env.state, a)
    with pytest.raises(ValueError, match="shape"):
        ne.native_step_state(env.params, env.consts, env.state, a[:, 0])


def test_supported_configurations_and_clear_refusals() -> None:
    for make in CONFIGS.values():
        assert ne.supported(make(1).params)
    p = VectorTradingEnv(1).params
    many = replace(p, config=replace(p.config, qty_buckets=tuple(range(1, 30))))
    assert not ne.supported(many) and "size buckets" in ne.unsupported(many)
    env = VectorTradingEnv(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="unsupported configuration: 29 size buckets"):
        ne.FusedStep(many, env.consts, ne.copy_state(env.state))

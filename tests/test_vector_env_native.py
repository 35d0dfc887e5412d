"""The vector envs with ``native=True`` (each step one C call, ``vector.native_env.FusedStep``)
equal the torch envs step for step: observations, rewards, flags, every ``info``
entry and the full state (books, accounts, keys, counters, equity, mark), across
auto-resets, for both variants, several learners, the pro-rata book, int32 and int64 books.
Also the choice of the kernel: ``None`` where it builds on the CPU, ``True`` refused
clearly where it cannot run, and the torch fallback without a C compiler.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from vector import native as vn
from vector import native_env
from vector.env import VectorMarketMakingEnv, VectorMultiTradingEnv, VectorTradingEnv
from vector.hash import check_invariants
from vector_helpers import assert_equal, assert_same_state

torch.set_num_threads(1)
needs_native = pytest.mark.skipif(not native_env.available(), reason="vector.native_env cannot be built here (no C compiler)")

ENVS: dict[str, Callable[..., VectorTradingEnv]] = {
    "trading": lambda **kw: VectorTradingEnv(8, horizon_steps=20, **kw),
    "trading-int64": lambda **kw: VectorTradingEnv(8, horizon_steps=20, dtype="int64", **kw),
    "cme-full-books": lambda **kw: VectorTradingEnv(8, horizon_steps=20, preset="cme", capacity=8, **kw),
    "market-making": lambda **kw: VectorMarketMakingEnv(8, horizon_steps=20, **kw),
    "market-making-int64-dict": lambda **kw: VectorMarketMakingEnv(8, horizon_steps=20, dtype="int64", obs_type="dict", **kw),
    "multi-agent": lambda **kw: VectorMultiTradingEnv(8, n_agents=3, horizon_steps=20, **kw),
}


@needs_native
@pytest.mark.parametrize("name", list(ENVS))
@pytest.mark.parametrize("seed", [0, 11])
def test_native_env_equals_the_torch_env_step_for_step(name: str, seed: int) -> None:
    """50 random steps (two auto-resets at horizon 20): everything a step returns and the
    whole state are identical."""
    make = ENVS[name]
    ref, nat = make(native=False), make(native=True)
    assert nat.consts.native and not ref.consts.native
    ref.action_space.seed(seed)
    actions = [ref.action_space.sample() for _ in range(50)]
    assert_equal(ref.reset(seed=seed)[0], nat.reset(seed=seed)[0], "reset obs")
    resets = 0
    for k, a in enumerate(actions):
        got, want = nat.step(a), ref.step(a)
        for what, x, y in zip(("obs", "reward", "terminated", "truncated"), got[:4], want[:4]):
            assert_equal(x, y, f"step {k}: {what}")
        assert_equal(got[4], want[4], f"step {k}: info")
        assert_same_state(nat.state, ref.state, f"step {k}")
        resets += int(want[3].any())
    assert resets >= 2
    check_invariants(nat.state.book, nat.params.book)


def test_native_is_the_default_on_the_cpu_where_it_builds() -> None:
    assert VectorTradingEnv(2).consts.native == native_env.available()
    assert not VectorTradingEnv(2, native=False).consts.native
    assert not VectorTradingEnv(2, compile=True).consts.native  # compile asks for the torch step


def test_native_true_with_compile_is_refused() -> None:
    with pytest.raises(ValueError, match="compile"):
        VectorTradingEnv(2, compile=True, native=True)


@needs_native
def test_assigning_the_state_rebinds_the_native_step() -> None:
    """A state assigned to the env (as tests and tools do) is what the next step starts from."""
    ref, nat = VectorTradingEnv(4, native=False), VectorTradingEnv(4, native=True)
    ref.reset(seed=3)
    nat.reset(seed=99)
    nat.state = ref.state
    assert nat.state is not ref.state
    a = ref.action_space.sample()
    got, want = nat.step(a), ref.step(a)
    assert_equal(got[0], want[0], "obs")
    assert_same_state(nat.state, ref.state, "after the step")


@needs_native
def test_a_bad_action_changes_nothing() -> None:
    env = VectorTradingEnv(4, native=True)
    env.reset(seed=5)
    before = native_env.copy_state(env.state)
    bad = torch.as_tensor(env.action_space.sample()).clone()
    bad[2, 0] = 99  # side index out of range
    with pytest.raises(ValueError, match="action space"):
        env.step(bad)
    assert_same_state(env.state, before, "after the refused step")


def test_native_true_off_the_cpu_is_refused() -> None:
    with pytest.raises(ValueError, match="CPU"):
        VectorTradingEnv(2, device="cuda", native=True)


def test_without_a_compiler_native_none_falls_back_and_true_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> None:
        raise vn.NativeUnavailable("vector.native needs a C compiler: 'cc' or 'gcc' not found on the PATH")

    monkeypatch.setattr(native_env, "library", missing)
    env = VectorTradingEnv(4, native=None, horizon_steps=5)
    assert not env.consts.native
    env.reset(seed=1)
    for _ in range(6):
        env.step(env.action_space.sample())
    with pytest.raises(vn.NativeUnavailable, match="C compiler"):
        VectorTradingEnv(4, native=True)

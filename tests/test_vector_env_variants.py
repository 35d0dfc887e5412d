"""The vector envs' other variants against the scalar envs' rules: ``obs_type="dict"`` and
the market-making action (``VectorMarketMakingEnv``, ``exchange/MarketMaking-v0``).

Spaces equal the scalar env's for the same config; a ``Dict`` observation holds exactly the
values of the flat one, split by the scalar env's own ``envs.observation.as_dict``; the
market maker's quotes rest, after its two book rounds, where the scalar rule
(``envs.actions.quote``, run on an engine holding the same book) sends them; refusals follow
the venue's risk limits; a standing quote keeps its place. Then the gymnasium contract of a
vector env (seeded reset, shapes, dtypes, ``observation_space.contains``, book invariants),
determinism, the masked auto-reset, the compiled path and the SB3 adapter with ``Dict``
observations.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector.utils import batch_space

import envs  # noqa: F401  (registers the ids)
from agents.base import GTC, OrderTracker
from envs import actions
from envs.observation import as_dict
from exchange import MatchingEngine, NewOrder
from exchange.commands import Modify
from exchange.instrument import PRESETS
from vector import book as vb
from vector.background import BackgroundParams
from vector.env import MARKET_MAKING, EnvParams, VectorMarketMakingEnv, VectorMultiTradingEnv, VectorTradingEnv, _begin
from vector.hash import check_invariants, state_hashes

torch.set_num_threads(1)

QUIET = BackgroundParams(noise_rounds=0, market_maker=False)  # the seeded starting ladder, then nobody else


def host(obs: Any) -> Any:
    """An observation (tensor or dict of tensors) as numpy."""
    return {k: v.numpy() for k, v in obs.items()} if isinstance(obs, dict) else obs.numpy()


def run(env: VectorTradingEnv, seed: int, steps: int, action_seed: int = 0) -> list[Any]:
    """Observations, rewards, truncations and messages of ``steps`` random steps, then the books' hashes."""
    env.action_space.seed(action_seed)
    obs, _ = env.reset(seed=seed)
    out = [host(obs)]
    for _ in range(steps):
        obs, reward, _, truncated, info = env.step(env.action_space.sample())
        out.append((host(obs), reward.numpy(), truncated.numpy(), info["messages"].numpy(), host(info["final_obs"])))
    out.append(state_hashes(env.state.book))
    return out


def learner_orders(book: vb.BookState, b: int, row: int) -> list[tuple[int, int, int]]:
    """(order id, price, qty) of the learner's (owner 0) resting orders on one row of book ``b``."""
    live = (book.qty[b, row] > 0) & (book.owner[b, row] == 0)
    return [(int(book.order_id[b, row, k]), int(book.price[b, row, k]), int(book.qty[b, row, k])) for k in torch.nonzero(live).flatten()]


# ---- spaces -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, env_id, overrides",
    [
        (VectorTradingEnv, "exchange/Trading-v0", {"obs_type": "dict"}),
        (VectorTradingEnv, "exchange/Trading-v0", {"obs_type": "dict", "depth": 3, "action_type": "box"}),
        (VectorMarketMakingEnv, "exchange/MarketMaking-v0", {}),
        (VectorMarketMakingEnv, "exchange/MarketMaking-v0", {"n_offsets": 7, "action_type": "box", "preset": "cme"}),
        (VectorMarketMakingEnv, "exchange/MarketMaking-v0", {"obs_type": "dict", "depth": 2}),
    ],
)
def test_spaces_are_the_single_envs(cls: type, env_id: str, overrides: dict) -> None:
    single = gymnasium.make(env_id, **overrides)
    env = cls(3, **overrides)
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.observation_space == batch_space(single.observation_space, 3)
    assert env.action_space == batch_space(single.action_space, 3)


def test_multi_agent_dict_space_stacks_each_key_per_learner() -> None:
    env = VectorMultiTradingEnv(2, n_agents=3, obs_type="dict")
    single = gymnasium.make("exchange/Trading-v0", obs_type="dict").observation_space
    assert list(env.single_observation_space.spaces) == list(single.spaces)
    for key, box in single.spaces.items():
        mine = env.single_observation_space[key]
        assert mine.shape == (3,) + box.shape
        assert all(np.array_equal(mine.low[i], box.low) and np.array_equal(mine.high[i], box.high) for i in range(3))


def test_variants_refuse_what_they_cannot_do() -> None:
    with pytest.raises(ValueError, match="variant"):
        EnvParams.make(variant="execution")
    with pytest.raises(ValueError, match="one learner"):
        EnvParams.make(variant=MARKET_MAKING, n_learners=2)


# ---- Dict observations hold the flat values --------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: VectorTradingEnv(4, horizon_steps=15, **kw),
        lambda **kw: VectorMarketMakingEnv(4, horizon_steps=15, preset="cme", depth=3, **kw),
        lambda **kw: VectorMultiTradingEnv(3, n_agents=2, horizon_steps=15, **kw),
    ],
)
def test_dict_observations_are_the_flat_observation_split(make: Any) -> None:
    """Same seed, same actions: every key of every env's Dict observation (and final
    observation) equals ``as_dict`` of the flat one, across an auto-reset."""
    flat_env, dict_env = make(), make(obs_type="dict")
    cfg = flat_env.config
    flat, split = run(flat_env, 21, 20), run(dict_env, 21, 20)
    assert flat[-1] == split[-1]  # the same books
    pairs = [(flat[0], split[0])] + [(f[k], d[k]) for f, d in zip(flat[1:-1], split[1:-1]) for k in (0, 4)]
    for whole, parts in pairs:
        rows = whole.reshape(-1, whole.shape[-1])
        for i, row in enumerate(rows):
            expected = as_dict(row, cfg)
            for key, value in expected.items():
                got = parts[key].reshape((-1,) + value.shape)[i]
                assert got.dtype == np.float32 and np.array_equal(got, value), (key, i)
    for f, d in zip(flat[1:-1], split[1:-1]):
        assert np.array_equal(f[1], d[1]) and np.array_equal(f[2], d[2])  # rewards, truncations


# ---- the market maker's quotes follow the scalar rule -------------------------------------------------------
class _Ctx:
    """What ``envs.actions.quote`` uses of ``exchange.sim.Context``: the book, order ids, ``submit`` (recorded)."""

    now = 0

    def __init__(self, engine: MatchingEngine) -> None:
        self.engine, self.sent, self._ids = engine, [], iter(range(1 << 40, 1 << 41))

    def book(self, symbol: str) -> Any:
        return self.engine.book

    def next_order_id(self) -> int:
        return next(self._ids)

    def submit(self, symbol: str, command: Any) -> None:
        self.sent.append(command)


def scalar_quotes(env: VectorMarketMakingEnv, b: int, action: np.ndarray) -> dict[int, tuple[int, int] | None]:
    """Per side (1 bid, -1 ask), the (price, qty) that ``envs.actions.quote`` sends (``NewOrder``
    or ``Modify``) on an engine holding book ``b`` as it stands (None: nothing sent)."""
    cfg, book = env.config, env.state.book
    engine = MatchingEngine(PRESETS[cfg.preset](cfg.symbol))
    tracker = OrderTracker(0)
    for row, side in ((vb.BID, 1), (vb.ASK, -1)):
        for k in range(env.params.book.capacity):
            qty = int(book.qty[b, row, k])
            if qty == 0:
                break
            oid, owner, price = int(book.order_id[b, row, k]), int(book.owner[b, row, k]), int(book.price[b, row, k])
            if owner == 0:
                tracker.sent_new(oid, side, price, qty, GTC, "", 0)
            for ev in engine.submit(NewOrder(oid, owner, side, qty, price)):
                tracker.apply(ev)
    ctx = _Ctx(engine)
    tick = env.params.book.tick
    idx = actions.indices(action, env.params.nvec(), cfg.action_type)
    fallback = actions.fallback_price(float(env.state.mid[b]), tick)
    actions.quote(ctx, cfg.symbol, 0, tracker, idx, tick=tick, quote_qty=cfg.quote_qty, fallback=fallback)
    out: dict[int, tuple[int, int] | None] = {1: None, -1: None}
    for cmd in ctx.sent:
        side = tracker.orders[cmd.order_id].side if type(cmd) is Modify else cmd.side
        out[side] = (cmd.price, cmd.qty)
    return out


@pytest.mark.parametrize("preset", ["nyse", "cme"])
def test_quotes_rest_where_the_scalar_rule_sends_them(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the learner's two book rounds (bid, then ask), each side holds one quote of
    ``quote_qty`` at the price ``envs.actions.quote`` sends, or, where it sends nothing, the
    very order that stood before the step."""
    B = 4
    env = VectorMarketMakingEnv(B, preset=preset, n_offsets=3, max_position=10_000, max_open_orders=10_000, native=False)  # records vb.step
    after_rounds: list[vb.BookState] = []
    real = vb.step

    def recording(state: vb.BookState, params: vb.BookParams, cmd: vb.Commands) -> tuple:
        new, out = real(state, params, cmd)
        after_rounds.append(new)
        return new, out

    monkeypatch.setattr(vb, "step", recording)
    env.reset(seed=7)
    env.action_space.seed(1)
    kept = moved = 0
    action = env.action_space.sample()
    for t in range(30):
        if t % 3:
            action = env.action_space.sample()  # else the same action again: quotes that still fit stand
        before = env.state.book
        expected = [scalar_quotes(env, b, action[b]) for b in range(B)]
        after_rounds.clear()
        env.step(action)
        book = after_rounds[1]  # rounds: learner bid, learner ask, maker, noise
        for b in range(B):
            for row, side in ((vb.BID, 1), (vb.ASK, -1)):
                got = learner_orders(book, b, row)
                if expected[b][side] is None:
                    assert got == learner_orders(before, b, row) and len(got) == 1, (t, b, side)
                    kept += 1
                else:
                    price, qty = expected[b][side]
                    assert [(p, q) for _, p, q in got] == [(price, qty)], (t, b, side, got, expected[b][side])
                    assert got[0][0] >> 6 == t + 1  # entered this step
                    moved += 1
    assert kept > 20 and moved > 100


def test_a_fresh_quote_the_risk_limits_refuse_is_not_sent() -> None:
    """Position limit below ``quote_qty``: neither side is quoted, two refusals per env.
    One open order allowed: the bid (sent first) rests, the ask is refused."""
    env = VectorMarketMakingEnv(3, background=QUIET, max_position=4)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros((3, 2), dtype=np.int64))
    assert info["rejected"].tolist() == [2, 2, 2] and info["messages"].tolist() == [2, 2, 2]
    assert all(learner_orders(env.state.book, b, row) == [] for b in range(3) for row in (vb.BID, vb.ASK))

    env = VectorMarketMakingEnv(3, background=QUIET, max_open_orders=1)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.ones((3, 2), dtype=np.int64))
    assert info["rejected"].tolist() == [1, 1, 1]
    for b in range(3):
        assert len(learner_orders(env.state.book, b, vb.BID)) == 1 and learner_orders(env.state.book, b, vb.ASK) == []


def test_a_standing_quote_keeps_its_order_and_sends_nothing() -> None:
    """Quiet book: the same action twice leaves both quotes in place (same ids, no message);
    a new distance moves only that side, behind the touch as asked."""
    env = VectorMarketMakingEnv(2, background=QUIET)
    env.reset(seed=3)
    tick = env.params.book.tick
    _, _, _, _, info = env.step(np.array([[0, 2], [1, 0]]))
    first = [[learner_orders(env.state.book, b, row) for row in (vb.BID, vb.ASK)] for b in range(2)]
    assert info["messages"].tolist() == [2, 2]
    # the starting ladder is 1..5 ticks off the reference, so the others' touch is reference -/+ 1 tick
    ref = env.config.reference
    assert [q[0][1:] for q in first[0]] == [(ref - tick, 5), (ref + 3 * tick, 5)]
    assert [q[0][1:] for q in first[1]] == [(ref - 2 * tick, 5), (ref + tick, 5)]
    _, _, _, _, info = env.step(np.array([[0, 2], [1, 0]]))
    assert info["messages"].tolist() == [0, 0] and info["rejected"].tolist() == [0, 0]
    assert [[learner_orders(env.state.book, b, row) for row in (vb.BID, vb.ASK)] for b in range(2)] == first
    _, _, _, _, info = env.step(np.array([[0, 0], [1, 0]]))
    assert info["messages"].tolist() == [1, 0]
    assert learner_orders(env.state.book, 0, vb.BID) == first[0][0]
    assert [q[1:] for q in learner_orders(env.state.book, 0, vb.ASK)] == [(ref + tick, 5)]


# ---- the vector env contract ----------------------------------------------------------------------------------
def check_vector_env(env: VectorTradingEnv, steps: int) -> None:
    """The checks of ``gymnasium.utils.env_checker`` that apply to a vector env, plus its own:
    reset(seed) reproduces the first observation; every observation, final observation and
    action sample lies in its space; shapes and dtypes; the book invariants; positions and
    cash conserved per book."""
    B = env.num_envs
    obs, info = env.reset(seed=11)
    assert isinstance(info, dict) and env.observation_space.contains(host(obs))
    again, _ = env.reset(seed=11)
    assert data_equivalence(host(obs), host(again), exact=True)
    other, _ = env.reset(seed=12)
    assert not data_equivalence(host(obs), host(other))
    env.action_space.seed(4)
    ended = 0
    for _ in range(steps):
        action = env.action_space.sample()
        assert env.action_space.contains(action)
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(host(obs))
        assert env.observation_space.contains(host(info["final_obs"]))
        assert reward.shape == (B,) and reward.dtype == torch.float32 and torch.isfinite(reward).all()
        assert terminated.shape == truncated.shape == (B,) and terminated.dtype == truncated.dtype == torch.bool
        assert not terminated.any() and info["_final_obs"].tolist() == truncated.tolist()
        assert info["rejected"].shape == (B,) and info["messages"].shape == (B,)
        check_invariants(env.state.book, env.params.book)
        acct = env.state.acct
        assert (acct[:, :, 0].sum(1) == 0).all() and (acct[:, :, 1].sum(1) == 0).all()
        ended += int(truncated.sum())
    assert ended == B * (steps // env.config.horizon_steps)
    assert not env.state.book.overflow.any()


@pytest.mark.parametrize(
    "make",
    [
        lambda: VectorTradingEnv(5, horizon_steps=12, obs_type="dict"),
        lambda: VectorMarketMakingEnv(5, horizon_steps=12),
        lambda: VectorMarketMakingEnv(5, horizon_steps=12, preset="cme", action_type="box", obs_type="dict"),
    ],
)
def test_vector_env_contract(make: Any) -> None:
    check_vector_env(make(), 40)


def test_market_making_same_seed_same_trajectories() -> None:
    a = run(VectorMarketMakingEnv(4, horizon_steps=20), 5, 45)
    b = run(VectorMarketMakingEnv(4, horizon_steps=20), 5, 45)
    for x, y in zip(a, b):
        assert data_equivalence(x, y, exact=True)
    c = run(VectorMarketMakingEnv(4, horizon_steps=20), 6, 45)
    assert a[-1] != c[-1]


def test_market_making_env_depends_only_on_its_own_seed() -> None:
    """Env i of a batch seeded s is the env of a batch of one seeded s + i, given its actions."""
    batch = VectorMarketMakingEnv(3, horizon_steps=20)
    batch.action_space.seed(2)
    moves = [batch.action_space.sample() for _ in range(30)]
    batch.reset(seed=40)
    solo = [VectorMarketMakingEnv(1, horizon_steps=20) for _ in range(3)]
    for i, env in enumerate(solo):
        env.reset(seed=40 + i)
    for a in moves:
        obs, reward, _, _, _ = batch.step(a)
        for i, env in enumerate(solo):
            o, r, _, _, _ = env.step(a[i : i + 1])
            assert torch.equal(obs[i : i + 1], o) and torch.equal(reward[i : i + 1], r)
    assert [state_hashes(env.state.book)[0] for env in solo] == state_hashes(batch.state.book)


# ---- auto-reset -----------------------------------------------------------------------------------------------
def test_truncation_resets_that_env_and_leaves_the_others() -> None:
    """Market making with Dict observations: env 1 is pushed to its last step; it returns the
    next episode's first observation (quotes gone, accounts fresh), the others match a twin."""
    B, H = 4, 30
    env, twin = (VectorMarketMakingEnv(B, horizon_steps=H, obs_type="dict") for _ in range(2))
    env.action_space.seed(0)
    moves = [env.action_space.sample() for _ in range(11)]
    env.reset(seed=2)
    twin.reset(seed=2)
    for a in moves[:10]:
        env.step(a)
        twin.step(a)
    assert any(learner_orders(env.state.book, 1, row) for row in (vb.BID, vb.ASK))
    env.state = replace(env.state, t=torch.where(torch.arange(B) == 1, H - 1, env.state.t))
    before = env.state
    obs, reward, _, truncated, info = env.step(moves[10])
    tobs, treward, _, ttrunc, _ = twin.step(moves[10])
    assert truncated.tolist() == [False, True, False, False] and not ttrunc.any()
    others = torch.arange(B) != 1
    assert torch.equal(reward[others], treward[others])
    assert all(torch.equal(obs[k][others], tobs[k][others]) for k in obs)
    assert info["final_obs"]["agent"][1, -1].item() == 0.0  # no time left
    fresh, fresh_obs = _begin(env.params, env.consts, before.key, before.episode + 1)
    expected = as_dict(fresh_obs[1, 0].numpy(), env.config)
    assert all(np.array_equal(obs[k][1].numpy(), expected[k]) for k in expected)
    assert state_hashes(env.state.book)[1] == state_hashes(fresh.book)[1]
    assert learner_orders(env.state.book, 1, vb.BID) == learner_orders(env.state.book, 1, vb.ASK) == []
    assert torch.equal(env.state.acct[1], fresh.acct[1]) and env.state.t[1].item() == 0


# ---- compiled ------------------------------------------------------------------------------------------------
def test_compiled_market_making_equals_eager() -> None:
    try:
        torch.compile(lambda x: x + 1, dynamic=False)(torch.zeros(2, dtype=torch.int64))
    except Exception as e:  # no C++ compiler, unsupported platform
        pytest.skip(f"torch.compile unavailable here: {e!r}")
    eager = run(VectorMarketMakingEnv(8, horizon_steps=25), 9, 40)
    comp = run(VectorMarketMakingEnv(8, horizon_steps=25, compile=True), 9, 40)
    for x, y in zip(eager, comp):
        assert data_equivalence(x, y, exact=True)


# ---- SB3 --------------------------------------------------------------------------------------------------------
def test_sb3_adapter_carries_dict_observations() -> None:
    from vector.sb3 import VectorTradingVecEnv

    venv = VectorTradingVecEnv(VectorMarketMakingEnv(3, horizon_steps=4, obs_type="dict", depth=3))
    assert venv.observation_space == venv.env.single_observation_space
    venv.seed(1)
    obs = venv.reset()
    shapes = {"bids": (3, 3, 2), "asks": (3, 3, 2), "market": (3, 4), "agent": (3, 4)}
    assert {k: v.shape for k, v in obs.items()} == shapes and all(v.dtype == np.float32 for v in obs.values())
    venv.action_space.seed(0)
    for k in range(1, 9):
        obs, reward, done, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(3)]))
        assert {k: v.shape for k, v in obs.items()} == shapes and reward.shape == (3,)
        assert done.all() == (k % 4 == 0)
        for i, info in enumerate(infos):
            assert ("terminal_observation" in info) == bool(done[i])
            if done[i]:
                last = info["terminal_observation"]
                assert venv.observation_space.contains(last) and last["agent"][-1] == 0.0
                assert obs["agent"][i, -1] == 1.0


def test_sb3_ppo_runs_on_dict_market_making() -> None:
    from stable_baselines3 import PPO

    from vector.sb3 import VectorTradingVecEnv

    venv = VectorTradingVecEnv(VectorMarketMakingEnv(4, horizon_steps=30, obs_type="dict"))
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (4, 2)

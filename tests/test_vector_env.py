"""The vectorised trading environments (``vector.env``) against their contract.

Conformance with the scalar ``exchange/Trading-v0`` (spaces, dtypes, observations inside the
single env's Box for every env), determinism per seed and per env, auto-reset by masked
select (an env that truncates is reset, the others are untouched), accounting (positions
and cash of every owner conserved per book; the reward recomputed from the fills), the
one-pass cancel compaction against one ``CANCEL`` per book step, and the fast path proven
equal to the scalar engine: a B=1 env with no background, a book seeded with the same
resting orders and a scripted sequence of learner actions gives the engine's fills, book
hash, position and cash after every step. Then the SB3 adapter (its checker and PPO) and
the multi-agent variant.
"""

from __future__ import annotations

import random
from dataclasses import replace

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the ids)
from envs import TradingConfig
from exchange import Cancel, Fill, MatchingEngine, NewOrder, cme, nyse
from exchange.accounts import Accounts
from exchange.commands import MassCancel
from vector import book as vb
from vector.background import BackgroundParams
from vector.env import (
    EnvParams,
    VectorMarketMakingEnv,
    VectorMultiTradingEnv,
    VectorTradingEnv,
    _begin,
    remove_orders,
)
from vector.hash import check_invariants, state_hash, state_hashes

torch.set_num_threads(1)


def random_actions(env: VectorTradingEnv, steps: int, seed: int) -> list[np.ndarray]:
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(steps)]


def run(env: VectorTradingEnv, seed: int, actions: list) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    out = [(obs.clone(),)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs.clone(), reward.clone(), truncated.clone(), info["messages"].clone()))
    return out


def assert_same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert torch.equal(u, v)


# ---- spaces and the gymnasium contract -----------------------------------------------------------
@pytest.mark.parametrize("overrides", [{}, {"action_type": "box"}, {"cancel_all": False, "depth": 3, "max_offset": 4}])
def test_spaces_are_the_single_envs(overrides: dict) -> None:
    single = gymnasium.make("exchange/Trading-v0", **overrides)
    env = VectorTradingEnv(4, **overrides)
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.observation_space == gymnasium.vector.utils.batch_space(single.observation_space, 4)
    assert env.action_space == gymnasium.vector.utils.batch_space(single.action_space, 4)
    assert env.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
    assert env.num_envs == 4


@pytest.mark.parametrize("preset", ["nyse", "cme"])
def test_reset_step_shapes_dtypes_bounds_and_book_invariants(preset: str) -> None:
    B = 12
    env = VectorTradingEnv(B, preset=preset, horizon_steps=60)
    obs, info = env.reset(seed=3)
    assert obs.shape == (B, 28) and obs.dtype == torch.float32 and isinstance(info, dict)
    space = env.single_observation_space
    for a in random_actions(env, 150, 1):
        obs, reward, terminated, truncated, info = env.step(a)
        assert obs.shape == (B, 28) and obs.dtype == torch.float32
        assert reward.shape == (B,) and reward.dtype == torch.float32
        assert terminated.dtype == truncated.dtype == torch.bool and terminated.shape == truncated.shape == (B,)
        assert not terminated.any()
        for o in obs.numpy():
            assert space.contains(o), o
        for o in info["final_obs"].numpy():
            assert space.contains(o), o
        check_invariants(env.state.book, env.params.book)
    assert env.observation_space.contains(obs.numpy())
    assert not env.state.book.overflow.any()


def test_box_actions_bin_like_the_single_env() -> None:
    env = VectorTradingEnv(3, action_type="box")
    box = torch.tensor([[-1.0, -1.0, -1.0, -1.0], [-0.2, 0.1, 0.0, 0.5], [1.0, 1.0, 1.0, 1.0]])
    from vector.env import decode_actions

    side, offset, qty, cancel = decode_actions(env.params, env.consts, box.unsqueeze(1))
    single = gymnasium.make("exchange/Trading-v0", action_type="box").unwrapped
    for b in range(3):
        idx = single._indices(box[b].numpy())
        assert [side[b, 0].item() + 1, offset[b, 0].item() + 2, env.config.qty_buckets.index(qty[b, 0].item()), int(cancel[b, 0])] == idx


# ---- determinism ------------------------------------------------------------------------------------
def test_same_seed_same_trajectories() -> None:
    env = VectorTradingEnv(6, horizon_steps=40)
    actions = random_actions(env, 60, 7)
    a, b = run(env, 11, actions), run(VectorTradingEnv(6, horizon_steps=40), 11, actions)
    assert_same(a, b)
    c = run(env, 12, actions)
    assert not torch.equal(a[-1][0], c[-1][0])


def test_an_env_depends_only_on_its_own_seed() -> None:
    """Env i of a batch seeded s is env 0 of a batch of one seeded s + i (counter-based draws)."""
    env = VectorTradingEnv(5, horizon_steps=30)
    actions = random_actions(env, 70, 2)
    batch = run(env, 100, actions)
    for i in (0, 3):
        one = run(VectorTradingEnv(1, horizon_steps=30), 100 + i, [a[i : i + 1] for a in actions])
        for x, y in zip(batch, one):
            for u, v in zip(x, y):
                assert torch.equal(u[i : i + 1], v)


# ---- auto-reset ---------------------------------------------------------------------------------------
def test_truncation_resets_that_env_by_masked_select_and_leaves_the_others() -> None:
    B, H = 5, 50
    env, twin = VectorTradingEnv(B, horizon_steps=H), VectorTradingEnv(B, horizon_steps=H)
    actions = random_actions(env, 30, 5)
    env.reset(seed=9)
    twin.reset(seed=9)
    for a in actions[:20]:
        env.step(a)
        twin.step(a)
    # push env 2 to the last step of its episode
    s = env.state
    env.state = replace(s, t=torch.where(torch.arange(B) == 2, H - 1, s.t))
    before = env.state
    obs, reward, terminated, truncated, info = env.step(actions[20])
    tobs, treward, _, ttrunc, tinfo = twin.step(actions[20])
    assert truncated.tolist() == [False, False, True, False, False] and not ttrunc.any()
    assert info["_final_obs"].tolist() == truncated.tolist()
    others = torch.arange(B) != 2
    assert torch.equal(obs[others], tobs[others]) and torch.equal(reward[others], treward[others])
    for name in ("price", "qty", "order_id", "owner"):
        assert torch.equal(getattr(env.state.book, name)[others], getattr(twin.state.book, name)[others])
    # the truncating env: final observation says the episode is over, the returned one is the next episode's first
    assert info["final_obs"][2, -1].item() == 0.0  # time left
    fresh, fresh_obs = _begin(env.params, env.consts, before.key, before.episode + 1)
    assert torch.equal(obs[2], fresh_obs[2, 0])
    assert env.state.t[2].item() == 0 and env.state.episode[2].item() == before.episode[2].item() + 1
    assert state_hashes(env.state.book)[2] == state_hashes(fresh.book)[2]
    assert torch.equal(env.state.acct[2], fresh.acct[2])
    # and it carries on like a fresh episode with the same key
    check_invariants(env.state.book, env.params.book)


def test_episodes_truncate_at_the_horizon_and_time_left_runs_down() -> None:
    env = VectorTradingEnv(3, horizon_steps=10)
    obs, _ = env.reset(seed=0)
    assert obs[:, -1].tolist() == [1.0] * 3
    for k in range(1, 21):
        obs, _, _, truncated, info = env.step(random_actions(env, 1, k)[0])
        assert truncated.all().item() == (k % 10 == 0)
        expected = 1.0 - (k % 10) / 10
        assert obs[:, -1].tolist() == pytest.approx([expected] * 3)
    assert env.state.episode.tolist() == [2, 2, 2]


# ---- accounting -----------------------------------------------------------------------------------------
def test_positions_and_cash_are_conserved_in_every_book() -> None:
    env = VectorTradingEnv(16, horizon_steps=1000, starting_cash=1000)
    env.reset(seed=1)
    traded = 0
    for a in random_actions(env, 200, 3):
        _, _, _, _, info = env.step(a)
        traded += int(info["trades"].sum())
        acct = env.state.acct
        assert (acct[:, :, 0].sum(1) == 0).all()
        assert (acct[:, :, 1].sum(1) == 1000 * env.params.n_owners).all()
    assert traded > 500
    assert (env.state.acct[:, 0, 0] != 0).any()  # the learner trades


def _host_mark(book: vb.BookState, b: int, reference: float) -> tuple[float, float | None]:
    """(mark, half spread in ticks or None) of book ``b``, read on the host (tick 1)."""
    has_bid, has_ask = int(book.qty[b, vb.BID, 0]) > 0, int(book.qty[b, vb.ASK, 0]) > 0
    bid, ask, last = int(book.price[b, vb.BID, 0]), int(book.price[b, vb.ASK, 0]), int(book.last_price[b])
    if has_bid and has_ask:
        return (bid + ask) / 2, (ask - bid) / 2
    return (float(last) if last else reference), None


def test_reward_is_the_equity_change_recomputed_from_the_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    """Record every book step's fills, rebuild the learner's account on the host, recompute the reward."""
    B, H = 4, 25
    cfg = TradingConfig(horizon_steps=H, inventory_penalty=0.3, reward_scale=7.0)
    env = VectorTradingEnv(B, config=cfg, native=False)  # records vb.step
    calls: list[tuple] = []
    real = vb.step

    def recording(state, params, cmd):
        new, out = real(state, params, cmd)
        calls.append((cmd.trader.clone(), cmd.side.clone(), out, new))
        return new, out

    monkeypatch.setattr(vb, "step", recording)
    env.reset(seed=4)
    pos, cash, equity = [0] * B, [0] * B, [0.0] * B
    learner_fills = 0
    for a in random_actions(env, 2 * H, 8):
        calls.clear()
        _, reward, _, truncated, info = env.step(a)
        for trader, side, out, _ in calls:
            for b in range(B):
                for _, maker_owner, price, qty in out.fills(b):
                    s = int(side[b])
                    if int(trader[b]) == 0:
                        pos[b] += s * qty
                        cash[b] -= s * qty * price
                        learner_fills += 1
                    if maker_owner == 0:
                        pos[b] -= s * qty
                        cash[b] += s * qty * price
                        learner_fills += 1
        end_book = calls[-1][3]
        for b in range(B):
            mark, half = _host_mark(end_book, b, float(cfg.reference))
            new_equity = cash[b] + pos[b] * mark
            cost = cfg.inventory_penalty * abs(pos[b])
            if truncated[b]:
                cost += (half if half is not None else cfg.max_ticks / 2) * abs(pos[b])
            expected = (new_equity - equity[b] - cost) / cfg.reward_scale
            assert float(reward[b]) == pytest.approx(expected, rel=1e-6, abs=1e-6)
            feature = float(info["final_obs"][b, 4 * cfg.depth + 5])
            assert feature == pytest.approx(max(-cfg.clip, min(cfg.clip, new_equity / cfg.reward_scale)), rel=1e-6, abs=1e-6)
            equity[b] = new_equity
        if not truncated.any():
            assert env.state.acct[:, 0, 0].tolist() == pos and env.state.acct[:, 0, 1].tolist() == cash
        for b in range(B):
            if truncated[b]:
                pos[b], cash[b], equity[b] = 0, 0, 0.0
    assert learner_fills > 20


# ---- the cancel compaction equals one CANCEL per book step ------------------------------------------
@pytest.mark.parametrize("preset", ["nyse", "cme"])
def test_remove_orders_equals_cancels_one_at_a_time(preset: str) -> None:
    spec = nyse() if preset == "nyse" else cme(tick=1)
    params = vb.BookParams.from_spec(spec, 12)
    B, rng = 8, random.Random(5)
    state = vb.init(params, B)
    next_id = 1
    for _ in range(40):
        recs = []
        for _ in range(B):
            side = rng.choice((1, -1))
            recs.append(NewOrder(next_id, rng.randint(1, 4), side, rng.randint(1, 9), 1000 - side * rng.randint(1, 6)))
            next_id += 1
        state, _ = vb.step(state, params, vb.Commands.from_records(recs))
    alive = state.qty > 0
    for trial in range(3):
        kill = (torch.rand(state.qty.shape, generator=torch.Generator().manual_seed(trial)) < 0.4) & alive
        fast = remove_orders(state, kill)
        check_invariants(fast, params)
        slow = state
        targets = [[(int(state.order_id[b][r][k]), int(state.owner[b][r][k])) for r in (0, 1) for k in range(12) if kill[b, r, k]] for b in range(B)]
        for t in targets:
            rng.shuffle(t)  # any order
        for i in range(max(len(t) for t in targets)):
            recs = [Cancel(*t[i]) if i < len(t) else None for t in targets]
            slow, out = vb.step(slow, params, vb.Commands.from_records(recs))
            assert all(s in (vb.Status.CANCELLED, vb.Status.NONE) for s in out.status.tolist())
        assert state_hashes(fast) == state_hashes(slow)
        assert torch.equal(fast.top, slow.top)
        for name in ("price", "qty", "order_id", "owner"):
            assert torch.equal(getattr(fast, name), getattr(slow, name))


# ---- the fast path equals the scalar engine -----------------------------------------------------------
def test_one_env_without_background_trades_like_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """B=1, no background: a book seeded with the same resting orders, scripted learner actions
    (priced from the touch like ``TradingEnv``) and other traders' orders between the steps; after
    every step the learner's fills, the book hash, position and cash are the engine's."""
    quiet = BackgroundParams(n_noise=3, noise_rounds=0, market_maker=False, warm_levels=0)
    env = VectorTradingEnv(1, background=quiet, capacity=16, native=False)  # records vb.step
    env.reset(seed=0)
    params = env.params.book
    engine = MatchingEngine(nyse())
    accounts = Accounts()
    calls: list = []
    real = vb.step

    def recording(state, params, cmd):
        new, out = real(state, params, cmd)
        calls.append(out)
        return new, out

    def others(records: list) -> None:  # orders of traders 1..3, entered in both
        nonlocal env
        book = env.state.book
        for rec in records:
            accounts.apply("XYZ", engine.submit(rec))
            book, _ = real(book, params, vb.Commands.from_records([rec]))
        env.state = replace(env.state, book=book)

    ids = iter(range(1, 64))
    others([NewOrder(next(ids), 1 + k % 3, side, 3 + k, 10_000 - side * (1 + k // 2)) for k in range(8) for side in (1, -1)])
    monkeypatch.setattr(vb, "step", recording)
    script = [  # side (0 sell, 1 none, 2 buy), offset index (2 = at the touch), size index, cancel all
        (2, 2, 1, 0), (0, 3, 2, 0), (2, 0, 0, 0), (2, 1, 1, 0), (0, 0, 1, 1), (2, 4, 2, 0), (1, 2, 0, 1),
        (0, 4, 2, 0), (2, 2, 0, 0), (0, 1, 1, 0), (2, 0, 2, 1), (0, 2, 0, 0),
    ]
    traded = 0
    for t, (a_side, a_off, a_qty, a_cancel) in enumerate(script, start=1):
        if t % 4 == 0:
            others([NewOrder(next(ids), 2, s, 4, 10_000 - s * 2) for s in (1, -1)])
        side, offset, qty = a_side - 1, a_off - 2, (1, 5, 10)[a_qty]
        fills = []
        if a_cancel:
            accounts.apply("XYZ", engine.submit(MassCancel(0)))
        if side:
            best = engine.book.asks.best if side == 1 else engine.book.bids.best
            price = max(1, (best if best is not None else 10_000) + side * offset)
            events = engine.submit(NewOrder(t << 6, 0, side, qty, price))
            accounts.apply("XYZ", events)
            fills = [(e.maker_id, e.maker_trader, e.price, e.qty) for e in events if type(e) is Fill]
        calls.clear()
        env.step(np.array([[a_side, a_off, a_qty, a_cancel]]))
        assert calls[0].fills(0) == fills, t
        traded += len(fills)
        assert state_hash(env.state.book, 0) == engine.book.state_hash(), t
        learner = accounts.account(0)
        assert env.state.acct[0, 0].tolist() == [learner.position("XYZ"), learner.cash], t
        for trader in (1, 2, 3):
            acct = accounts.account(trader)
            assert env.state.acct[0, trader].tolist() == [acct.position("XYZ"), acct.cash], t
    assert traded >= 8 and accounts.account(0).position("XYZ") != 0


# ---- calibration and devices ----------------------------------------------------------------------------
def test_light_background_is_about_five_messages_per_step() -> None:
    env = VectorTradingEnv(16)
    env.reset(seed=2)
    msgs = trades = 0
    actions = random_actions(env, 150, 4)
    for a in actions:
        _, _, _, _, info = env.step(a)
        msgs += int(info["messages"].sum())
        trades += int(info["trades"].sum())
    per_step = msgs / (16 * len(actions))
    assert 4.0 <= per_step <= 6.0, per_step
    assert trades / (16 * len(actions)) > 0.3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu() -> None:
    actions = random_actions(VectorTradingEnv(8), 60, 1)
    cpu = run(VectorTradingEnv(8, horizon_steps=25), 3, actions)
    gpu = run(VectorTradingEnv(8, horizon_steps=25, device="cuda"), 3, actions)
    for x, y in zip(cpu, gpu):
        for u, v in zip(x, y):
            assert torch.equal(u, v.cpu())


def test_compiled_book_equals_eager() -> None:
    """``compile=True`` (the book transition through ``vector.book.compiled_step``): the same
    observations, rewards, truncations, and books (by ``state_hash``) as the eager env,
    across an auto-reset, with the pro-rata book and several learners too."""
    try:
        torch.compile(lambda x: x + 1, dynamic=False)(torch.zeros(2, dtype=torch.int64))
    except Exception as e:  # no C++ compiler, unsupported platform
        pytest.skip(f"torch.compile unavailable here: {e!r}")
    for make in (
        lambda **kw: VectorTradingEnv(8, horizon_steps=25, **kw),
        lambda **kw: VectorMultiTradingEnv(8, n_agents=2, preset="cme", horizon_steps=25, **kw),
    ):
        eager, comp = make(), make(compile=True)
        actions = random_actions(eager, 40, 5)
        assert_same(run(eager, 9, actions), run(comp, 9, actions))
        assert state_hashes(eager.state.book) == state_hashes(comp.state.book)


# ---- int32 books ---------------------------------------------------------------------------------------
INT32_ENVS = [
    lambda **kw: VectorTradingEnv(8, horizon_steps=25, **kw),
    lambda **kw: VectorTradingEnv(8, horizon_steps=25, preset="cme", capacity=8, **kw),  # pro rata, full books
    lambda **kw: VectorMarketMakingEnv(8, horizon_steps=25, **kw),
    lambda **kw: VectorMultiTradingEnv(8, n_agents=3, horizon_steps=25, **kw),
]


@pytest.mark.parametrize("make", INT32_ENVS)
def test_int32_book_gives_the_int64_trajectories(make) -> None:
    """The same observations, rewards, truncations, messages, trades, rejections, overflow
    flags and accounts, step for step across auto-resets, and the same books (by
    ``state_hash``); the int32 book's state stays int32."""
    wide, narrow = make(dtype="int64"), make(dtype="int32")
    assert narrow.state is None and narrow.params.book.dtype == "int32" and wide.params.book.dtype == "int64"
    actions = random_actions(wide, 60, 3)
    for env in (wide, narrow):
        env.reset(seed=5)
    for a in actions:
        (o1, r1, _, d1, i1), (o2, r2, _, d2, i2) = wide.step(a), narrow.step(a)
        assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(d1, d2)
        for k in ("messages", "trades", "rejected", "overflow", "final_obs"):
            assert torch.equal(i1[k], i2[k]), k
        assert torch.equal(wide.state.acct, narrow.state.acct)
        assert state_hashes(wide.state.book) == state_hashes(narrow.state.book)
    assert narrow.state.book.qty.dtype == narrow.state.book.order_id.dtype == torch.int32


def test_int32_is_the_default_where_the_env_fits_it() -> None:
    """``dtype=None`` picks int32 where every order id and price of an episode fits it, else
    int64; asking for int32 where they may not fit is an error."""
    assert EnvParams.make().book.dtype == "int32"
    assert EnvParams.make(dtype="int64").book.dtype == "int64"
    long_run = TradingConfig(horizon_steps=1 << 25)  # order ids (t << 6) + round reach 2**31
    assert EnvParams.make(long_run).book.dtype == "int64"
    dear = TradingConfig(reference_price=(1 << 30) - 10_000)  # prices could climb past 2**30 - 2
    assert EnvParams.make(dear).book.dtype == "int64"
    assert EnvParams.make(capacity=4096).book.dtype == "int64"  # capacity x max_qty (1e6 lots) passes 2**31
    for cfg in (long_run, dear):
        with pytest.raises(ValueError, match="int32"):
            EnvParams.make(cfg, dtype="int32")
    p = EnvParams.make()
    assert p.max_order_id() < 1 << 31 and p.max_price() <= vb.MAX_PRICE_32


# ---- SB3 adapter ----------------------------------------------------------------------------------------
def test_sb3_vecenv_adapter_contract() -> None:
    from vector.sb3 import VectorTradingVecEnv

    venv = VectorTradingVecEnv(VectorTradingEnv(4, horizon_steps=5))
    venv.seed(3)
    obs = obs0 = venv.reset()
    assert obs.shape == (4, 28) and obs.dtype == np.float32
    assert venv.observation_space == VectorTradingEnv(1).single_observation_space
    again = VectorTradingVecEnv(VectorTradingEnv(4, horizon_steps=5))
    again.seed(3)
    assert np.array_equal(again.reset(), obs)
    venv.action_space.seed(0)
    for k in range(1, 11):
        obs, reward, done, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(4)]))
        assert obs.shape == (4, 28) and reward.shape == (4,) and done.dtype == bool and len(infos) == 4
        assert done.all() == (k % 5 == 0)
        for i, info in enumerate(infos):
            assert info["TimeLimit.truncated"] == bool(done[i])
            assert ("terminal_observation" in info) == bool(done[i])
            if done[i]:
                assert info["terminal_observation"].shape == (28,) and info["terminal_observation"][-1] == 0.0
                assert obs[i][-1] == 1.0
    assert venv.get_attr("num_envs") == [4] * 4
    first = venv.env_method("reset", seed=3, indices=[0, 1])
    assert len(first) == 2 and np.array_equal(first[0][0].numpy(), obs0)
    venv.set_attr("note", 7)
    assert venv.get_attr("note", indices=2) == [7]
    assert venv.env_is_wrapped(gymnasium.Wrapper) == [False] * 4
    venv.close()


def test_sb3_ppo_runs_on_the_vector_env() -> None:
    from stable_baselines3 import PPO

    from vector.sb3 import VectorTradingVecEnv

    venv = VectorTradingVecEnv(VectorTradingEnv(8, horizon_steps=50))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (8, 4)


# ---- multi-agent ----------------------------------------------------------------------------------------
def test_multi_agent_spaces_shapes_and_determinism() -> None:
    B, N = 4, 3
    env = VectorMultiTradingEnv(B, n_agents=N, horizon_steps=30)
    single = gymnasium.make("exchange/Trading-v0")
    assert env.single_observation_space.shape == (N, 28)
    assert np.array_equal(env.single_observation_space.low[1], single.observation_space.low)
    assert env.single_action_space.shape == (N, 4)
    assert env.observation_space.shape == (B, N, 28) and env.action_space.shape == (B, N, 4)
    actions = random_actions(env, 70, 3)
    a = run(env, 5, actions)
    b = run(VectorMultiTradingEnv(B, n_agents=N, horizon_steps=30), 5, actions)
    assert_same(a, b)
    obs, reward = a[-1][0], a[-1][1]
    assert obs.shape == (B, N, 28) and reward.shape == (B, N)
    for o in obs.reshape(-1, 28).numpy():
        assert single.observation_space.contains(o)
    assert (obs[:, :, :24] == obs[:, :1, :24]).all()  # one book: the market features are shared


def test_multi_agent_conservation_and_every_learner_trades() -> None:
    B, N = 6, 4
    env = VectorMultiTradingEnv(B, n_agents=N)
    env.reset(seed=8)
    for a in random_actions(env, 150, 9):
        env.step(a)
        acct = env.state.acct
        assert (acct[:, :, 0].sum(1) == 0).all() and (acct[:, :, 1].sum(1) == 0).all()
        check_invariants(env.state.book, env.params.book)
    assert (env.state.acct[:, :N, 0] != 0).any(0).all()


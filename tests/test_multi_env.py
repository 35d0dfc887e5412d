"""The PettingZoo environment ``exchange_multi_v0``: PettingZoo's own conformance tests for
every action scheme, preset and background (scripted agents, the lean flow), seeded lockstep
reproducibility, liquidation drop-out, conservation, rewards from the accounts, the learners'
accounts and orders exact against the flow's fills, episode end, and the SuperSuit + SB3 path."""

from __future__ import annotations

import json
import warnings

import gymnasium
import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test, seed_test
from pettingzoo.test.state_test import state_test
from pettingzoo.utils import parallel_to_aec

from bench import envs_multi as bench_multi
from envs import MarketMakingEnv, TradingEnv
from envs.flow import FlowMarket
from envs.multi import TREASURY, BlackDeath, MultiTradingConfig, MultiTradingEnv, env, parallel_env, raw_env
from exchange.accounts import Accounts
from exchange.book import TRADER
from exchange.events import Accepted, Fill, Liquidation
from exchange.sim import MS

SHORT = {"max_cycles": 40}
CONFIGS = {
    "trading": {},
    "market_making": {"action": "market_making"},
    "cme": {"preset": "cme"},
    "fragile": {"collateral": 25_000},  # random agents: some are liquidated, the rest truncated
    "doomed": {"collateral": 3_000},  # random agents: all liquidated within a few steps
    "flow": {"background": "flow"},  # the lean background of envs.flow instead of the scripted agents
    "flow_heavy_fragile": {"background": "flow_heavy", "collateral": 25_000},
    "flow_mm_cme": {"background": "flow", "action": "market_making", "preset": "cme"},
}
FLOW_CONFIGS = [name for name, kw in CONFIGS.items() if "background" in kw]
# api_test warns that MultiDiscrete is neither Box nor Discrete: expected, it is the action
pytestmark = pytest.mark.filterwarnings("ignore:Action space for each agent probably should be")


def order(e: MultiTradingEnv, side: int, offset: int = 0, size: int = 0, cancel: int = 0) -> np.ndarray:
    """A Trading-v0 action: ``side`` -1 sell / 0 none / 1 buy, ``offset`` ticks through the
    touch, ``qty_buckets[size]`` lots, ``cancel`` all working orders first."""
    return np.array([side + 1, offset + e.config.trading.max_offset, size, cancel])


def seed_actions(e: MultiTradingEnv, seed: int) -> None:
    for i, a in enumerate(e.possible_agents):
        e.action_space(a).seed(seed + i)


def random_rollout(e: MultiTradingEnv, seed: int, steps: int | None = None, log: bool = False) -> list:
    """(observations, rewards, terminations, truncations, infos) of random joint actions;
    with ``log``, a ``FlowMarket`` logs every command from the first step (the simulator
    always logs)."""
    obs, infos = e.reset(seed=seed)
    if log and type(e.sim) is FlowMarket:
        e.sim.log = []
    seed_actions(e, seed)
    out = [(obs, {}, {}, {}, infos)]
    while e.agents and (steps is None or len(out) <= steps):
        out.append(e.step({a: e.action_space(a).sample() for a in e.agents}))
    return out


def same(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x[0].keys() != y[0].keys() or any(not np.array_equal(x[0][k], y[0][k]) for k in x[0]):
            return False
        if x[1:] != y[1:]:
            return False
    return True


def fills(e: MultiTradingEnv) -> list:
    assert e.sim is not None
    return [(t, ev) for t, _, evs in e.sim.log for ev in evs if type(ev) is Fill]


# ---- PettingZoo conformance -------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_parallel_api(name: str) -> None:
    kw = {**SHORT, **CONFIGS[name]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Live agent was not given ..." and the like fail the test
        parallel_api_test(parallel_env(**kw), num_cycles=kw["max_cycles"])


@pytest.mark.parametrize("name", CONFIGS)
def test_aec_api_through_parallel_to_aec(name: str) -> None:
    kw = {**SHORT, **CONFIGS[name]}
    api_test(parallel_to_aec(parallel_env(**kw)), num_cycles=kw["max_cycles"])
    api_test(env(**kw), num_cycles=kw["max_cycles"])  # the module's AEC entry point


@pytest.mark.parametrize("name", CONFIGS)
def test_seed_tests(name: str) -> None:
    kw = {**SHORT, **CONFIGS[name]}
    parallel_seed_test(lambda: parallel_env(**kw))
    seed_test(lambda: raw_env(**kw), num_cycles=kw["max_cycles"])


def test_render_and_state() -> None:
    render_test(lambda render_mode=None: env(render_mode=render_mode, **SHORT), custom_tests={"ansi": lambda s: "trader_0" in s and "XYZ" in s})
    state_test(env(**SHORT), parallel_env(**SHORT))
    quiet = parallel_env(**SHORT)
    quiet.reset(seed=0)
    assert quiet.render() is None


def test_spaces_are_per_agent_and_stable() -> None:
    e = parallel_env(n_agents=3)
    a, b = e.possible_agents[:2]
    assert e.observation_space(a) is e.observation_space(a) and e.action_space(a) is e.action_space(a)
    assert e.action_space(a) is not e.action_space(b)  # seeding one agent's space leaves the other alone
    assert e.action_space(a).nvec.tolist() == [3, 5, 3, 2]
    assert parallel_env(cancel_all=False).action_space("trader_0").nvec.tolist() == [3, 5, 3]
    assert parallel_env(action_type="box").action_space("trader_0").shape == (4,)
    assert parallel_env(action="market_making").action_space("trader_0").nvec.tolist() == [5, 5]
    assert e.observation_space(a).shape == (4 * 5 + 8,) and e.observation_space(a).dtype == np.float32
    assert e.state_space.shape == (4 * 5 + 5 + 4 * 3,)
    assert e.metadata["name"] == "exchange_multi_v0" and e.metadata["is_parallelizable"]


@pytest.mark.parametrize("name", CONFIGS)
def test_observations_and_state_inside_their_boxes(name: str) -> None:
    e = parallel_env(**{**SHORT, **CONFIGS[name]})
    for obs, *_ in random_rollout(e, seed=3):
        for agent, o in obs.items():
            assert o.dtype == np.float32 and e.observation_space(agent).contains(o)
        s = e.state()
        assert s.dtype == np.float32 and e.state_space.contains(s)


# ---- seeding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_lockstep_determinism(name: str) -> None:
    """Two instances, same seed, same actions: same observations, rewards, ends and trades."""
    a, b = parallel_env(**{**SHORT, **CONFIGS[name]}), parallel_env(**{**SHORT, **CONFIGS[name]})
    ra, rb = random_rollout(a, seed=11, log=True), random_rollout(b, seed=11, log=True)
    assert same(ra, rb)
    assert fills(a) == fills(b) and len(fills(a)) > 0
    assert np.array_equal(a.state(), b.state())
    terminated = {agent for r in ra[1:] for agent, done in r[2].items() if done}
    if name in ("fragile", "flow_heavy_fragile"):
        assert 0 < len(terminated) < a.max_num_agents and len(ra) == SHORT["max_cycles"] + 1
    if name == "doomed":
        assert terminated == set(a.possible_agents) and len(ra) < SHORT["max_cycles"] + 1


@pytest.mark.parametrize("background", [None, "flow"])
def test_seeds_differ_and_reset_reproduces(background: str | None) -> None:
    e = parallel_env(**SHORT, background=background)
    first = random_rollout(e, seed=5, steps=20)
    assert not same(first, random_rollout(e, seed=6, steps=20))
    assert same(first, random_rollout(e, seed=5, steps=20))
    e.reset(seed=4)
    seed_a = e.sim.seed
    e.reset()  # unseeded: the generator goes on
    assert e.sim.seed != seed_a


@pytest.mark.parametrize("background", [None, "flow", "flow_heavy"])
@pytest.mark.parametrize("action_type", ["discrete", "box"])
@pytest.mark.parametrize("preset", ["nyse", "cme"])
@pytest.mark.parametrize("cls", [TradingEnv, MarketMakingEnv])
def test_one_agent_reproduces_the_single_agent_env(cls: type, preset: str, action_type: str, background: str | None) -> None:
    """The obvious path proves the multi-agent one: with one learner and no margin, the same
    seed and actions give TradingEnv's / MarketMakingEnv's observations and rewards exactly,
    with either background."""
    single = cls(horizon_steps=40, preset=preset, action_type=action_type, background=background)
    multi = parallel_env(
        n_agents=1, max_cycles=40, maintenance_bps=None, preset=preset, action_type=action_type,
        action="trading" if cls is TradingEnv else "market_making", background=background,
    )
    o1, _ = single.reset(seed=7)
    o2, _ = multi.reset(seed=7)
    assert np.array_equal(o1, o2["trader_0"])
    if background is not None:  # the flow logs on request: from the first step on, in both
        single.sim.log, multi.sim.log = [], []
    single.action_space.seed(3)
    while multi.agents:
        a = single.action_space.sample()
        o1, r1, *_ = single.step(a)
        o2, r2, *_ = multi.step({"trader_0": a})
        assert np.array_equal(o1, o2["trader_0"]) and r1 == r2["trader_0"]
    assert [e for _, _, evs in single.sim.log for e in evs] == [e for _, _, evs in multi.sim.log for e in evs]


# ---- liquidation -------------------------------------------------------------------------------
def test_a_liquidated_agent_terminates_and_drops_out() -> None:
    e = parallel_env(n_agents=3, max_cycles=30, collateral=5_000)
    e.reset(seed=0)
    t = e.config.trading
    buy_big = order(e, 1, offset=1, size=len(t.qty_buckets) - 1)  # 10 lots through the ask
    buy_one = order(e, 1, offset=1)  # 1 lot: maintenance 1,000 < 5,000 of collateral
    _, rewards, terms, truncs, infos = e.step({"trader_0": buy_big, "trader_1": buy_one, "trader_2": buy_one})
    [liq] = [ev for _, _, evs in e.sim.log for ev in evs if type(ev) is Liquidation]
    assert liq.trader == 0 and liq.equity < liq.margin
    assert terms == {"trader_0": True, "trader_1": False, "trader_2": False}
    assert not any(truncs.values())
    assert infos["trader_0"]["liquidated"] and infos["trader_0"]["position"] == 0  # flattened
    assert rewards["trader_0"] < 0  # paid through the book twice
    assert e.agents == ["trader_1", "trader_2"]
    assert 0 in e.exchange.barred
    assert e.state()[-4 * 3 + 3] == 0.0 and e.state()[-1] == 1.0  # trader_0 no longer live
    with pytest.raises(ValueError, match="not live"):
        e.step({"trader_0": buy_one})
    steps = 1
    while e.agents:
        obs, _, terms, truncs, _ = e.step({a: buy_one if steps < 3 else order(e, 0) for a in e.agents})
        steps += 1
        assert set(obs) == {"trader_1", "trader_2"} and not any(terms.values())
    assert steps == 30 and all(truncs.values())
    assert e.exchange.accounts.account(1).position(t.symbol) > 0  # the others kept trading


def test_nobody_is_liquidated_without_margin() -> None:
    e = parallel_env(n_agents=3, max_cycles=10, collateral=5_000, maintenance_bps=None)
    rollout = random_rollout(e, seed=0)
    assert len(rollout) == 11 and not any(any(r[2].values()) for r in rollout[1:])


# ---- accounting --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["trading", "fragile", "doomed", "market_making", *FLOW_CONFIGS])
def test_positions_net_to_zero_after_every_step(name: str) -> None:
    e = parallel_env(n_agents=8, **{**SHORT, **CONFIGS[name]})
    e.reset(seed=2)
    seed_actions(e, 2)
    symbol = e.config.trading.symbol
    while e.agents:
        e.step({a: e.action_space(a).sample() for a in e.agents})
        accounts = e.exchange.accounts
        assert sum(acct.position(symbol) for acct in accounts.by_trader.values()) == 0
        accounts.check_conservation()  # and cash plus fees is conserved, treasury included
        e.exchange.engines[symbol].check_invariants()
        if type(e.sim) is FlowMarket:
            e.sim.check_invariants()  # the noise traders' orders it tracks are the book's
    assert TREASURY in e.exchange.accounts.by_trader or e.config.learner_cash == e.config.other_cash


@pytest.mark.parametrize("name", FLOW_CONFIGS)
def test_learners_accounts_are_exact_against_their_fills_with_the_flow(name: str) -> None:
    """With the flow background (background commands straight to the engine), replaying
    every fill of the episode into fresh accounts gives each learner's account, and its
    ``OrderTracker`` agrees; each learner's resting orders are exactly what the venue's risk
    checks count and what its tracker holds, after every step (liquidations included)."""
    e = parallel_env(n_agents=4, **{**SHORT, **CONFIGS[name]})
    e.reset(seed=5)
    e.sim.log = []  # learners send nothing during the warm-up: their fills are all logged from here
    seed_actions(e, 5)
    t = e.config.trading
    engine = e.exchange.engines[t.symbol]
    while e.agents:
        e.step({a: e.action_space(a).sample() for a in e.agents})
        for i, learner in enumerate(e.learners):
            resting = {oid for oid, o in engine.book.orders.items() if o[TRADER] == i}
            venue = {oid: qty for (_, oid), (_, qty) in e.exchange.open_orders.get(i, {}).items()}
            assert venue == {oid: engine.open_qty(oid) for oid in resting}
            assert set(learner.orders.orders) == resting
    replay = Accounts(starting_cash=e.config.learner_cash)
    replay.apply(t.symbol, [ev for _, _, evs in e.sim.log for ev in evs if type(ev) is Fill])
    traded = 0
    for i, learner in enumerate(e.learners):
        ours, theirs = e.accounts[i], replay.account(i)
        assert (ours.cash, ours.fees, ours.volume, ours.fills) == (theirs.cash, theirs.fees, theirs.volume, theirs.fills)
        assert ours.position(t.symbol) == theirs.position(t.symbol) == learner.orders.position
        traded += ours.fills > 0
    assert traded == len(e.learners), "a learner never traded: a weak test"


def test_flow_background_takes_the_ids_after_the_learners_and_is_funded() -> None:
    e = parallel_env(n_agents=3, background="flow", background_cash=2_000_000, max_cycles=5)
    e.reset(seed=0)
    market = e.sim
    assert type(market) is FlowMarket and market.noise_traders == [3, 4] and market.maker == 5
    accounts = e.exchange.accounts
    assert all(accounts.account(b).cash == 2_000_000 for b in market.background_traders)
    extra = 2_000_000 - e.config.learner_cash  # every account opens with the learners' collateral
    assert accounts.account(TREASURY).cash == e.config.learner_cash - 3 * extra
    accounts.check_conservation()
    with pytest.raises(KeyError, match="not a learner"):
        market.context(3)


def test_flow_liquidates_a_learner_that_sends_nothing() -> None:
    """The flow's orders bypass the venue, so the venue checks margins after every
    background step: a learner short 10 lots on thin collateral, sending nothing more, is
    liquidated when the market rises against it, in an entry of the log that is no command."""
    e = parallel_env(n_agents=1, background="flow", collateral=10_060, max_cycles=300)
    e.reset(seed=1)
    e.sim.log = []
    commands = e.sim.commands
    sell = order(e, -1, offset=1, size=2)  # 10 lots through the bid
    _, _, terms, _, infos = e.step({"trader_0": sell})
    assert not terms["trader_0"] and infos["trader_0"]["position"] == -10 and infos["trader_0"]["open_orders"] == 0
    steps = 1
    while e.agents:
        _, _, terms, _, infos = e.step({})
        steps += 1
    assert terms["trader_0"] and steps < 300 and infos["trader_0"]["liquidated"] and infos["trader_0"]["position"] == 0
    [entry] = [evs for _, _, evs in e.sim.log if any(type(ev) is Liquidation for ev in evs)]
    assert type(entry[0]) is Liquidation and entry[0].trader == 0  # the venue's own check, not a command's events
    assert e.sim.commands - commands == len(e.sim.log) - 1  # every other entry is one command
    assert e.learners[0].liquidated and 0 in e.exchange.barred
    e.exchange.accounts.check_conservation()
    e.sim.check_invariants()


def test_rewards_are_equity_changes_from_the_accounts() -> None:
    e = parallel_env(n_agents=4, max_cycles=50, liquidation_cost=False, inventory_penalty=0.25)
    e.reset(seed=8)
    seed_actions(e, 8)
    t = e.config.trading
    accounts = [e.exchange.accounts.account(i) for i in range(4)]
    before = [a.equity(e.exchange.marks()) for a in accounts]
    traded = 0
    while e.agents:
        _, rewards, *_ = e.step({a: e.action_space(a).sample() for a in e.agents})
        marks = e.exchange.marks()
        for i, acct in enumerate(accounts):
            after = acct.equity(marks)
            expected = ((after - before[i]) / e.tick - 0.25 * abs(acct.position(t.symbol))) / t.reward_scale
            assert rewards[f"trader_{i}"] == pytest.approx(expected, abs=1e-12)
            traded += after != before[i]
            before[i] = after
    assert traded > 0


def test_liquidation_cost_on_the_last_step() -> None:
    e = parallel_env(n_agents=2, max_cycles=5, reward_scale=1.0)
    e.reset(seed=1)
    buy = order(e, 1, offset=1)
    for _ in range(5):
        acct = e.accounts[0]
        before = acct.equity(e.exchange.marks())
        _, rewards, _, truncs, _ = e.step({"trader_0": buy})
    inventory = abs(acct.position(e.config.trading.symbol))
    money = (acct.equity(e.exchange.marks()) - before) / e.tick
    assert all(truncs.values()) and inventory > 0
    assert rewards["trader_0"] == pytest.approx(money - e._half_spread() * inventory)


# ---- episode end and priority ------------------------------------------------------------------
def test_truncation_empties_agents() -> None:
    e = parallel_env(n_agents=2, max_cycles=12)
    with pytest.raises(gymnasium.error.ResetNeeded):
        e.step({})
    e.reset(seed=0)
    for i in range(1, 13):
        obs, _, terms, truncs, _ = e.step({})  # nobody acts: nothing is sent
        assert not any(terms.values()) and all(truncs.values()) == (i == 12)
        assert obs["trader_0"][-1] == pytest.approx(max(0.0, 1 - i / 12))
    assert e.agents == []
    with pytest.raises(gymnasium.error.ResetNeeded):
        e.step({})
    e.max_cycles = 3  # PettingZoo style: the attribute sets the next episode's length
    assert len(random_rollout(e, seed=0)) == 4


def learners_first_order(e: MultiTradingEnv, steps: int, n: int) -> list[list[int]]:
    """Per step, the learners in the order their new orders reached the venue."""
    e.reset(seed=3)
    out = []
    buy = order(e, 1, offset=-2)  # one lot, two ticks behind the ask: rests, accepted each step
    for _ in range(steps):
        start = len(e.sim.log)
        e.step(dict.fromkeys(e.agents, buy))
        out.append([ev.trader for _, _, evs in e.sim.log[start:] for ev in evs if type(ev) is Accepted and ev.trader < n][:n])
    return out


def test_priority_is_shuffled_each_step() -> None:
    fixed = learners_first_order(parallel_env(n_agents=4, shuffle_priority=False), 8, 4)
    assert all(o == [0, 1, 2, 3] for o in fixed)
    shuffled = learners_first_order(parallel_env(n_agents=4), 8, 4)
    assert all(sorted(o) == [0, 1, 2, 3] for o in shuffled) and len({tuple(o) for o in shuffled}) > 1


def test_market_making_quotes_both_sides() -> None:
    e = parallel_env(n_agents=3, action="market_making", max_cycles=5)
    e.reset(seed=0)
    for _ in range(3):
        _, _, _, _, infos = e.step(dict.fromkeys(e.agents, np.array([1, 1])))
    for i in range(3):
        sides = sorted(o.side for o in e.learners[i].orders.working())
        assert sides == [-1, 1] or infos[f"trader_{i}"]["position"] != 0  # a filled quote comes back next step


# ---- config ------------------------------------------------------------------------------------
def test_config_and_overrides() -> None:
    cfg = MultiTradingConfig(n_agents=2, max_cycles=7)
    e = MultiTradingEnv(cfg, step_ns=50 * MS, depth=3, n_agents=3)
    assert e.config.n_agents == 3 and e.config.max_cycles == 7 and e.config.trading.depth == 3
    assert e.possible_agents == ["trader_0", "trader_1", "trader_2"]
    e.reset(seed=0)
    e.step({})
    assert e.sim.now == e.config.trading.warmup_ns + 50 * MS
    with pytest.raises(TypeError, match="unknown"):
        parallel_env(n_agent=3)
    with pytest.raises(ValueError):
        MultiTradingConfig(n_agents=0)
    with pytest.raises(ValueError):
        MultiTradingConfig(action="hold")
    with pytest.raises(ValueError):
        parallel_env(render_mode="rgb_array")
    with pytest.raises(ValueError, match="Box only"):
        parallel_env(obs_type="dict")


# ---- SuperSuit + stable-baselines3 parameter sharing ------------------------------------------
def test_black_death_keeps_every_agent_until_the_episode_ends() -> None:
    e = BlackDeath(parallel_env(n_agents=3, max_cycles=10, collateral=5_000))
    obs, _ = e.reset(seed=0)
    big = order(e, 1, offset=1, size=2)
    steps = 0
    while e.agents:
        obs, rewards, terms, truncs, _ = e.step({a: big if a == "trader_0" else order(e, 0) for a in e.agents})
        steps += 1
        assert set(obs) == set(rewards) == {"trader_0", "trader_1", "trader_2"}
        if 1 < steps < 10:
            assert not np.any(obs["trader_0"]) and rewards["trader_0"] == 0.0
    assert steps == 10
    assert terms == {"trader_0": True, "trader_1": False, "trader_2": False}
    assert truncs == {"trader_0": False, "trader_1": True, "trader_2": True}


def test_supersuit_parameter_sharing_with_sb3_ppo() -> None:
    supersuit = pytest.importorskip("supersuit")
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.callbacks import BaseCallback

    class Dones(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.dones = 0

        def _on_step(self) -> bool:
            self.dones += int(self.locals["dones"].sum())
            return True

    vec = supersuit.pettingzoo_env_to_vec_env_v1(BlackDeath(parallel_env(n_agents=4, max_cycles=25, collateral=20_000)))
    vec = supersuit.concat_vec_envs_v1(vec, 2, num_cpus=0, base_class="stable_baselines3")
    assert vec.num_envs == 8  # 2 copies x 4 agents sharing one policy
    # PPO(seed=...) would call vec.seed(), which SuperSuit's ConcatVecEnv lacks
    model = sb3.PPO("MlpPolicy", vec, n_steps=32, batch_size=64, n_epochs=2, verbose=0, device="cpu")
    done = Dones()
    model.learn(total_timesteps=512, callback=done)
    assert model.num_timesteps >= 512
    assert done.dones >= 8  # episodes ended and the vector env reset them
    action, _ = model.predict(vec.reset(), deterministic=True)
    assert action.shape == (8, 4)


# ---- benchmark smoke ---------------------------------------------------------------------------
def test_bench_measure_multi_and_json_line(capsys) -> None:
    r = bench_multi.measure_multi(n_agents=3, steps=25, seed=1, max_cycles=10)
    assert r["episodes"] == 3 and r["steps"] == 25 and r["n_agents"] == 3
    for key in ("steps_per_s", "agent_steps_per_s", "msgs_per_step", "events_per_step"):
        assert r[key] > 0
    assert r["trades_per_step"] >= 0
    flow = bench_multi.measure_multi(n_agents=3, steps=25, seed=1, max_cycles=10, background="flow")
    assert flow["workload"] == "multi-flow-random-3" and flow["episodes"] == 3 and flow["msgs_per_step"] > 0
    assert bench_multi.main(["--agents", "2", "--steps", "20", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["workload"] == "multi-random-2" and result["steps_per_s"] > 0 and "machine" in result
    assert result["flow"]["workload"] == "multi-flow-random-2" and result["flow_steps_per_s"] == result["flow"]["steps_per_s"] > 0

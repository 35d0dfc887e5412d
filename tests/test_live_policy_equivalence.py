"""A policy behaves live as in training: the live bot's observations are the env's, bit for bit.

Recorded session. A ``TradingEnv`` (or ``MarketMakingEnv``) episode runs with a small random
``PolicyNet`` saved and loaded through the checkpoint format. Every command its exchange
applies (warm-up, background traders, the learner) is recorded and replayed, in order, into
the live server's venue (``live.core.LiveVenue``: the code that turns engine events into the
feed and the private messages). The replay must produce the simulator's events exactly; its
wire messages (encoded and decoded as JSON, as a client receives them) are the recording.

The live bot's ``PolicyDriver`` starts from a ``book_snapshot`` after the warm-up (as a bot
subscribing then would), is fed each step's messages, and must give at every step the same
float32 observation bits, the same action, and the same orders (side, size, price, cancel,
modify) as the env.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import envs.trading as T
from agents.policy import PolicyNet, load_policy, save_policy
from envs import LEARNER, MarketMakingEnv, TradingConfig, TradingEnv
from envs.observation import observation_size
from exchange.commands import MassCancel, Modify, NewOrder
from exchange.venue import Exchange, RiskLimits
from live import protocol as P
from live.config import ServerConfig, SymbolConfig
from live.core import LiveVenue, Outbox, Record
from live.policy_bot import PolicyDriver

STEPS = 150


class RecordingExchange(Exchange):
    """The env's exchange, keeping every command it is given."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.commands: list[tuple[str, object]] = []

    def submit(self, symbol, command):  # type: ignore[no-untyped-def]
        self.commands.append((symbol, command))
        return super().submit(symbol, command)


def _wire(msg: P.ServerMessage) -> P.ServerMessage:
    return P.decode_server(P.encode(msg))


class Replay:
    """The recorded commands applied to the live venue; yields the learner's wire messages."""

    def __init__(self, cfg: TradingConfig, sim_log: list) -> None:
        self.venue = LiveVenue(ServerConfig(
            symbols=(SymbolConfig(cfg.symbol, cfg.preset),),
            starting_cash=cfg.starting_cash,
            risk=RiskLimits(max_position=cfg.max_position, max_open_orders=cfg.max_open_orders),
        ))
        self.sim_log = sim_log
        self.applied = 0
        self.learner_orders = 0  # the learner's n-th order has client id n (the driver's own ids)
        self.ts = 0

    def apply(self, commands: list[tuple[str, object]]) -> list[tuple[str, P.ServerMessage]]:
        out_msgs: list[tuple[str, P.ServerMessage]] = []
        for symbol, cmd in commands:
            client_id = None
            if type(cmd) is NewOrder and cmd.trader == LEARNER:
                self.learner_orders += 1
                client_id = self.learner_orders
            self.ts += 1
            out = Outbox()
            self.venue.apply(Record(self.ts, symbol, cmd, client_id), out)
            # the venue reproduces the simulator's events exactly
            assert [e for _, _, evs in out.log for e in evs] == list(self.sim_log[self.applied][2])
            self.applied += 1
            out_msgs += [("private", _wire(m)) for trader, m in out.private if trader == LEARNER]
            out_msgs += [("feed", _wire(m)) for _, m in out.public]
        return out_msgs


def _expected(cmd: object) -> tuple:
    if type(cmd) is NewOrder:
        return ("new", P.SIDE_NAMES[cmd.side], cmd.qty, cmd.price)
    if type(cmd) is MassCancel:
        return ("mass_cancel",)
    if type(cmd) is Modify:
        return ("modify", cmd.order_id, cmd.qty, cmd.price)
    raise AssertionError(f"unexpected learner command {cmd!r}")


def _sent(req: P.TradingRequest) -> tuple:
    if type(req) is P.NewOrderRequest:
        assert req.order_type == "limit" and req.tif == "gtc" and req.smp is not None and req.client_id is not None
        return ("new", req.side, req.qty, req.price)
    if type(req) is P.MassCancelRequest:
        return ("mass_cancel",)
    if type(req) is P.ModifyRequest:
        return ("modify", req.order_id, req.qty, req.price)
    raise AssertionError(f"unexpected request {req!r}")


def _flat(obs: np.ndarray | dict) -> np.ndarray:
    if isinstance(obs, dict):
        return np.concatenate([obs[k].ravel() for k in ("bids", "asks", "market", "agent")])
    return obs


def _same_bits(a: np.ndarray | dict, b: np.ndarray | dict) -> bool:
    a, b = _flat(a), _flat(b)
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


CASES = [
    pytest.param("exchange/Trading-v0", TradingEnv, {}, id="trading"),
    pytest.param("exchange/Trading-v0", TradingEnv, {"action_type": "box", "obs_type": "dict", "preset": "cme"}, id="trading-box-dict-cme"),
    pytest.param("exchange/MarketMaking-v0", MarketMakingEnv, {}, id="market-making"),
]


@pytest.mark.parametrize(("env_id", "env_cls", "overrides"), CASES)
def test_live_observations_equal_env_observations(env_id: str, env_cls: type, overrides: dict, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(T, "Exchange", RecordingExchange)
    cfg = TradingConfig(horizon_steps=STEPS, **overrides)
    env = env_cls(cfg)
    nvec = env._action_nvec()
    torch.manual_seed(7)
    head = "box" if cfg.action_type == "box" else "multi_discrete"
    net = PolicyNet(observation_size(cfg), [len(nvec)] if head == "box" else nvec, hidden=(16, 16), head=head)
    with torch.no_grad():  # a random but decisive policy: actions vary with the observation
        for p in net.parameters():
            p.mul_(4.0)
    policy = load_policy(save_policy(tmp_path / "policy.pt", net, env_id, cfg))

    obs, _ = env.reset(seed=11)
    exchange: RecordingExchange = env.exchange  # type: ignore[assignment]
    replay = Replay(cfg, env.sim.log)
    replay.apply(exchange.commands)  # the warm-up, before the bot subscribes

    driver = PolicyDriver(policy, trader=LEARNER)
    assert driver.on_feed(_wire(replay.venue.snapshot(cfg.symbol, "subscribe", replay.ts)))
    live_obs = driver.reset()
    assert _same_bits(live_obs, obs)

    sent = fills = 0
    for step in range(STEPS):
        action = policy.act(_flat(obs))
        live_action = driver.decide(live_obs)
        assert np.array_equal(action, live_action), f"step {step}: action {action} != live {live_action}"
        requests = driver.act(live_action)
        n0 = len(exchange.commands)
        obs, _, _, truncated, _ = env.step(action)
        commands = exchange.commands[n0:]
        learner = [c for _, c in commands if getattr(c, "trader", None) == LEARNER]
        assert [_sent(r) for r in requests] == [_expected(c) for c in learner], f"step {step}: orders differ"
        sent += len(requests)
        for channel, msg in replay.apply(commands):
            if channel == "feed":
                assert driver.on_feed(msg), f"step {step}: gap in the recorded feed"
            else:
                fills += type(msg) is P.Fill
                assert driver.on_private(msg) == []
        live_obs = driver.observe()
        assert _same_bits(live_obs, obs), f"step {step}: observation differs\nlive {_flat(live_obs)}\nenv  {_flat(obs)}"
    assert driver.done
    assert driver.position == env.account.position(cfg.symbol)
    assert sent >= 20 and fills >= 5, f"the policy hardly traded ({sent} requests, {fills} fills): a weak test"

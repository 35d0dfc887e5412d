"""Neural policy checkpoints: save and load round trip, refusal of foreign files, and the
stable-baselines3 converter reproducing a trained PPO actor exactly."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import envs  # noqa: F401
from agents.policy import PolicyNet, from_sb3, load_policy, save_policy
from envs import TradingConfig


def test_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    net = PolicyNet(28, [3, 5, 3, 2], hidden=(32, 16))
    cfg = TradingConfig(preset="cme", qty_buckets=(1, 2, 4))
    path = save_policy(tmp_path / "p.pt", net, "exchange/Trading-v0", cfg, {"trainer": "test"})
    policy = load_policy(path)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(10, 28)).astype(np.float32)
    assert np.array_equal(policy.net.act(obs), net.act(obs))
    assert policy.env_id == "exchange/Trading-v0" and policy.metadata == {"trainer": "test"}
    assert policy.trading_config() == TradingConfig(preset="cme", qty_buckets=(1, 2, 4))
    action = policy.act(obs[0])
    assert action.shape == (4,) and gymnasium.spaces.MultiDiscrete([3, 5, 3, 2]).contains(action)


def test_foreign_files_are_refused(tmp_path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a policy checkpoint"):
        load_policy(tmp_path / "junk.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a policy checkpoint"):
        load_policy(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="head"):
        PolicyNet(4, [2], head="categorical")


@pytest.mark.parametrize("action_type", ["discrete", "box"])
def test_sb3_actor_converts_exactly(action_type: str, tmp_path) -> None:
    env = gymnasium.make("exchange/Trading-v0", action_type=action_type, max_episode_steps=64, horizon_steps=64)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    net = from_sb3(model)
    obs, _ = env.reset(seed=1)
    batch = np.stack([obs, *(env.step(env.action_space.sample())[0] for _ in range(7))])
    with torch.no_grad():
        theirs = model.policy.get_distribution(torch.as_tensor(batch))
        if action_type == "box":
            expect = theirs.distribution.mean
        else:
            expect = torch.cat([d.logits for d in theirs.distribution], dim=-1)
        mine = net(torch.as_tensor(batch))
    if action_type == "discrete":  # logits equal up to the softmax's additive constant per block
        mine = torch.cat([b.log_softmax(-1) for b in torch.split(mine, net.nvec, -1)], -1)
    assert torch.allclose(mine, expect, atol=1e-6)
    sb3_action, _ = model.predict(batch, deterministic=True)
    if action_type == "discrete":
        assert np.array_equal(net.act(batch), sb3_action)
    else:
        assert np.allclose(net.act(batch), np.clip(sb3_action, -1, 1), atol=1e-6)
    policy = load_policy(save_policy(tmp_path / "ppo.pt", net, "exchange/Trading-v0", env.unwrapped.config))
    assert np.array_equal(policy.act(batch), net.act(batch))

"""The environments train: SB3's checker, PPO end to end, and parallel collection through
gymnasium's AsyncVectorEnv and SB3's SubprocVecEnv (not a vector env of our own)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

import envs  # noqa: F401  (registers the ids)
from envs import ENV_IDS

SHORT = {"max_episode_steps": 100, "horizon_steps": 100}


@pytest.mark.filterwarnings("ignore:Your observation .* has an unconventional shape")  # (L, 2) book rows, by design
@pytest.mark.parametrize("obs_type", ["box", "dict"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_stable_baselines3_checker(env_id: str, obs_type: str) -> None:
    sb3_check_env(gymnasium.make(env_id, obs_type=obs_type).unwrapped, warn=True)


def test_ppo_trains_end_to_end(tmp_path) -> None:
    vec = make_vec_env("exchange/MarketMaking-v0", n_envs=2, seed=0, env_kwargs=SHORT)
    model = PPO("MlpPolicy", vec, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=1024)
    assert model.num_timesteps >= 1024
    losses = model.logger.name_to_value
    assert all(np.isfinite(v) for v in losses.values())
    model.save(tmp_path / "ppo")
    again = PPO.load(tmp_path / "ppo", device="cpu")
    obs = vec.reset()
    a, _ = model.predict(obs, deterministic=True)
    b, _ = again.predict(obs, deterministic=True)
    assert np.array_equal(a, b) and vec.action_space.contains(a[0])


def test_ppo_with_dict_observations_and_box_actions() -> None:
    env = gymnasium.make("exchange/Trading-v0", obs_type="dict", action_type="box", **SHORT)
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=128)
    action, _ = model.predict(env.reset(seed=0)[0])
    assert env.action_space.contains(action.astype(np.float32))


def test_async_vector_env_matches_single_envs() -> None:
    vec = gymnasium.make_vec("exchange/Trading-v0", num_envs=2, vectorization_mode="async", **SHORT)
    singles = [gymnasium.make("exchange/Trading-v0", **SHORT) for _ in range(2)]
    try:
        obs, _ = vec.reset(seed=[3, 4])
        expect = [e.reset(seed=s)[0] for e, s in zip(singles, (3, 4), strict=True)]
        assert np.array_equal(obs, np.stack(expect))
        vec.action_space.seed(0)
        for _ in range(20):
            actions = vec.action_space.sample()
            obs, rewards, *_ = vec.step(actions)
            steps = [e.step(a) for e, a in zip(singles, actions, strict=True)]
            assert np.array_equal(obs, np.stack([s[0] for s in steps]))
            assert rewards.tolist() == [s[1] for s in steps]
    finally:
        vec.close()


def test_sb3_subproc_vec_env_collects() -> None:
    # "module:id" makes each worker import envs (registering the ids) before gymnasium.make
    vec = make_vec_env("envs:exchange/Execution-v0", n_envs=2, seed=1, vec_env_cls=SubprocVecEnv)
    try:
        vec.reset()
        for _ in range(20):
            obs, rewards, dones, infos = vec.step(np.stack([vec.action_space.sample() for _ in range(2)]))
        assert obs.shape == (2, *vec.observation_space.shape) and len(infos) == 2
    finally:
        vec.close()

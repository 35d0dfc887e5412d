"""A stable-baselines3 ``VecEnv`` over ``vector.env.VectorTradingEnv`` (or ``VectorMarketMakingEnv``).

``VectorTradingVecEnv(env)`` is the numpy boundary: actions come in as numpy arrays, the
torch env steps them on its device, observations, rewards and dones go back as numpy
arrays (with ``obs_type="dict"``, observations are dicts of ``[B, ...]`` arrays, which SB3's
``MultiInputPolicy`` takes), and each env's info dict carries SB3's ``TimeLimit.truncated``
and, where an episode ended, ``terminal_observation`` (one env's observation: an array, or
a dict of arrays; the env auto-resets in the same step, which is SB3's convention). ``env_method``, ``get_attr`` and ``set_attr`` reach the one underlying
vector env (there are no sub-env objects): ``get_attr`` returns the attribute once per
index asked for, ``env_method`` calls the method once and returns its result per index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from vector.env import VectorTradingEnv


class VectorTradingVecEnv(VecEnv):
    """SB3 ``VecEnv`` adapter of a ``VectorTradingEnv`` or ``VectorMarketMakingEnv`` (one learner per book)."""

    def __init__(self, env: VectorTradingEnv) -> None:
        if env.n_learners != 1:
            raise ValueError("VectorTradingVecEnv adapts the single-learner VectorTradingEnv")
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: torch.Tensor | None = None

    def reset(self) -> np.ndarray | dict[str, np.ndarray]:
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        obs, _ = self.env.reset(seed=seed)
        self._reset_seeds()
        return _numpy(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = torch.as_tensor(np.asarray(actions), device=self.env.device)

    def step_wait(self) -> tuple[np.ndarray | dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        assert self._actions is not None, "step_async first"
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        self._actions = None
        done = (terminated | truncated).cpu().numpy()
        trunc = truncated.cpu().numpy()
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": bool(t)} for t in trunc]
        if done.any():
            final = _numpy(info["final_obs"])
            for i in np.flatnonzero(done):
                infos[i]["terminal_observation"] = {k: v[i] for k, v in final.items()} if isinstance(final, dict) else final[i]
        return _numpy(obs), reward.cpu().numpy(), done, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs

    def _indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)


def _numpy(obs: torch.Tensor | dict[str, torch.Tensor]) -> np.ndarray | dict[str, np.ndarray]:
    """Observations of the torch env (a tensor, or a dict of them) as numpy on the host."""
    if isinstance(obs, dict):
        return {k: v.cpu().numpy() for k, v in obs.items()}
    return obs.cpu().numpy()

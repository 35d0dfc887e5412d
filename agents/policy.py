"""Neural policies and their checkpoint file: what trainers write and bots load.

A policy is a ``PolicyNet``: a multilayer perceptron from the flat observation of an
environment (``envs.observation``) to its action, with tanh hidden layers, the layout of
stable-baselines3's ``MlpPolicy`` actor (so ``from_sb3`` copies a trained PPO actor weight
for weight). Two heads:

- ``multi_discrete``: one block of logits per component of a ``MultiDiscrete`` action (a
  ``Discrete`` action is one block); the action is each block's argmax, or a sample;
- ``box``: the mean of a Gaussian over a ``Box(-1, 1)`` action, clipped to the box (the
  deterministic action; sampling adds ``exp(log_std)`` noise).

The checkpoint is one file written by ``save_policy`` with ``torch.save`` and read by
``load_policy`` with ``torch.load(weights_only=True)`` (no pickled code runs on load). It
holds a plain dict:

| key | value |
| --- | --- |
| ``format`` | ``"research-exchange/policy"`` |
| ``version`` | ``1`` |
| ``env_id`` | the Gymnasium id the policy was trained on, e.g. ``"exchange/Trading-v0"`` |
| ``config`` | the ``envs.TradingConfig`` fields as plain values (``background`` left out: a live policy trades against whoever is there) |
| ``obs_size`` | length of the flat observation |
| ``head`` | ``"multi_discrete"`` or ``"box"`` |
| ``nvec`` | component sizes (``multi_discrete``) or ``[action dimension]`` (``box``) |
| ``hidden`` | hidden layer widths, e.g. ``[64, 64]`` |
| ``state_dict`` | the ``PolicyNet`` tensors |
| ``metadata`` | free-form strings: trainer, seed, steps, score |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "research-exchange/policy"
VERSION = 1
HEADS = ("multi_discrete", "box")


class PolicyNet(nn.Module):
    """Observation -> action: tanh MLP (``hidden``) and a ``multi_discrete`` or ``box`` head."""

    def __init__(self, obs_size: int, nvec: Sequence[int], hidden: Sequence[int] = (64, 64), head: str = "multi_discrete") -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if obs_size <= 0 or not nvec or any(n <= 0 for n in nvec) or any(h <= 0 for h in hidden):
            raise ValueError(f"bad PolicyNet shape: obs_size={obs_size}, nvec={list(nvec)}, hidden={list(hidden)}")
        self.obs_size, self.nvec, self.hidden, self.head = obs_size, [int(n) for n in nvec], [int(h) for h in hidden], head
        layers: list[nn.Module] = []
        width = obs_size
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        self.body = nn.Sequential(*layers)
        self.action_net = nn.Linear(width, sum(self.nvec) if head == "multi_discrete" else self.nvec[0])
        self.log_std = nn.Parameter(torch.zeros(self.nvec[0] if head == "box" else 0))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits (``multi_discrete``, concatenated) or Gaussian means (``box``), batch first."""
        return self.action_net(self.body(obs))

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True, generator: torch.Generator | None = None) -> np.ndarray:
        """The action for one observation (or a batch): indices (int64) or a point in the box (float32)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        single = x.dim() == 1
        out = self(x.unsqueeze(0) if single else x)
        if self.head == "box":
            if not deterministic:
                out = out + torch.randn(out.shape, generator=generator) * self.log_std.exp()
            action = out.clamp(-1.0, 1.0).numpy().astype(np.float32)
        else:
            blocks = torch.split(out, self.nvec, dim=-1)
            if deterministic:
                picks = [b.argmax(dim=-1) for b in blocks]
            else:
                picks = [torch.multinomial(b.softmax(dim=-1), 1, generator=generator).squeeze(-1) for b in blocks]
            action = torch.stack(picks, dim=-1).numpy().astype(np.int64)
        return action[0] if single else action


@dataclasses.dataclass(frozen=True)
class Policy:
    """A loaded checkpoint: the network and what it was trained on."""

    net: PolicyNet
    env_id: str
    config: dict[str, Any]
    metadata: dict[str, str]

    def trading_config(self) -> Any:
        """The ``envs.TradingConfig`` the policy was trained with (default background)."""
        from envs.config import TradingConfig

        fields = {f.name for f in dataclasses.fields(TradingConfig)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in self.config.items() if k in fields}
        return TradingConfig(**values)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.net.act(obs, deterministic)


def config_dict(config: Any) -> dict[str, Any]:
    """A ``TradingConfig`` (or similar dataclass) as plain values, ``background`` left out."""
    out = {}
    for f in dataclasses.fields(config):
        if f.name == "background":
            continue
        v = getattr(config, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def save_policy(
    path: str | Path, net: PolicyNet, env_id: str, config: Any, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``net`` and what it was trained on to ``path`` (the checkpoint format above)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": FORMAT,
            "version": VERSION,
            "env_id": env_id,
            "config": config if isinstance(config, dict) else config_dict(config),
            "obs_size": net.obs_size,
            "head": net.head,
            "nvec": list(net.nvec),
            "hidden": list(net.hidden),
            "state_dict": net.state_dict(),
            "metadata": {str(k): str(v) for k, v in (metadata or {}).items()},
        },
        path,
    )
    return path


def load_policy(path: str | Path) -> Policy:
    """Read a checkpoint written by ``save_policy``; a file of another format is a ``ValueError``."""
    try:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # torch raises pickle/zip errors of several types for foreign files
        raise ValueError(f"{path}: not a policy checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a policy checkpoint (format {data.get('format') if isinstance(data, dict) else None!r})")
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: policy checkpoint version {data.get('version')!r}; this code reads {VERSION}")
    net = PolicyNet(data["obs_size"], data["nvec"], data["hidden"], data["head"])
    net.load_state_dict(data["state_dict"])
    net.eval()
    return Policy(net, data["env_id"], dict(data["config"]), dict(data["metadata"]))


def from_sb3(model: Any) -> PolicyNet:
    """The actor of a stable-baselines3 ``PPO``/``A2C`` ``MlpPolicy`` as a ``PolicyNet``.

    Supports flat ``Box`` observations with ``MultiDiscrete``, ``Discrete`` or ``Box``
    actions and tanh activations (SB3's default for these algorithms). The copy is exact:
    the same observation gives the same logits or means.
    """
    from gymnasium import spaces

    policy = model.policy
    obs_space, act_space = policy.observation_space, policy.action_space
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"from_sb3 needs a flat Box observation, got {obs_space}")
    if policy.activation_fn is not nn.Tanh:
        raise ValueError(f"from_sb3 needs tanh activations, got {policy.activation_fn.__name__}")
    if isinstance(act_space, spaces.MultiDiscrete):
        head, nvec = "multi_discrete", [int(n) for n in act_space.nvec]
    elif isinstance(act_space, spaces.Discrete):
        head, nvec = "multi_discrete", [int(act_space.n)]
    elif isinstance(act_space, spaces.Box) and len(act_space.shape) == 1:
        head, nvec = "box", [int(act_space.shape[0])]
    else:
        raise ValueError(f"from_sb3 does not support the action space {act_space}")
    linears = [m for m in policy.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    net = PolicyNet(obs_space.shape[0], nvec, [m.out_features for m in linears], head)
    body = [m for m in net.body if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for mine, theirs in zip(body, linears, strict=True):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
        net.action_net.weight.copy_(policy.action_net.weight)
        net.action_net.bias.copy_(policy.action_net.bias)
        if head == "box":
            net.log_std.copy_(policy.log_std)
    net.eval()
    return net

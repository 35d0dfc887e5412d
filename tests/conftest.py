"""Suite-wide fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def sb3_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep stable-baselines3's loggers inside pytest's temporary tree: with no folder given,
    every PPO run otherwise leaves an ``SB3-<date>`` directory in the system temp dir."""
    old = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3"))
    yield
    if old is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = old

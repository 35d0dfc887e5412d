"""Helpers for the live-exchange tests: real server and relay processes on loopback.

``start_server(tmp_path, **overrides)`` writes a config (``live_config``) and starts
``python -m live.server --config ...`` on a free port (port 0; the bound URL is read from
its first stdout line); ``start_relay(upstream)`` does the same for ``python -m live.relay``.
``Proc.kill9()`` is a real ``kill -9``; ``Proc.terminate()`` a SIGTERM with a clean exit.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from live.config import DEFAULT_CONFIG, config_to_dict

ROOT = Path(__file__).resolve().parent.parent

# traders: id, token, cancel on disconnect
TRADERS = [(i, f"tok-{i}", i != 8) for i in range(1, 11)]
TOKENS = {i: tok for i, tok, _ in TRADERS}


def live_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A config dict: the demo symbols, ten traders (trader 8 keeps orders on disconnect)."""
    cfg = config_to_dict(DEFAULT_CONFIG)
    cfg.update(
        port=0,
        traders=[{"trader": i, "name": f"t{i}", "token": tok, "cancel_on_disconnect": cod} for i, tok, cod in TRADERS],
        rate_limit={"rate": 5_000.0, "burst": 1_000},
        journal=str(tmp_path / "journal.jsonl"),
        csv_dir=str(tmp_path / "csv"),
        fsync="batch",
        login_timeout_s=3.0,
    )
    cfg.update(overrides)
    return cfg


class Proc:
    """A live.* process: its URL, its log, kill -9 and SIGTERM."""

    def __init__(self, args: list[str], log_path: Path, timeout: float = 20) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, env=env,
        )
        self.url = self._read_url(timeout)
        self.port = int(self.url.rsplit(":", 1)[1])

    def _read_url(self, timeout: float) -> str:
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.popen.stdout], [], [], 0.1)
            if ready:
                line = self.popen.stdout.readline().decode()
                m = re.search(r"ws://[\d.]+:\d+", line)
                if m:
                    return m.group(0)
                if not line:
                    break
            if self.popen.poll() is not None:
                break
        self.popen.kill()
        raise RuntimeError(f"{self.args} did not start:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)
        self._close()

    def terminate(self, timeout: float = 15) -> int:
        self.popen.send_signal(signal.SIGTERM)
        rc = self.popen.wait(timeout)
        self._close()
        return rc

    def _close(self) -> None:
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()

    def stop(self) -> None:
        """Tear down (fixtures): SIGTERM, SIGKILL if it hangs."""
        if self.popen.poll() is None:
            try:
                self.terminate(10)
            except subprocess.TimeoutExpired:
                self.kill9()
        else:
            self._close()


def write_config(tmp_path: Path, cfg: dict[str, Any], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return path


def start_server(tmp_path: Path, cfg: dict[str, Any] | None = None, *extra: str, name: str = "server") -> Proc:
    cfg = cfg if cfg is not None else live_config(tmp_path)
    path = write_config(tmp_path, cfg, f"{name}.json")
    return Proc(["-m", "live.server", "--config", str(path), *extra], tmp_path / f"{name}.log")


def start_relay(upstream: str, tmp_path: Path, *extra: str, name: str = "relay") -> Proc:
    return Proc(["-m", "live.relay", "--upstream", upstream, "--port", "0", *extra], tmp_path / f"{name}.log")

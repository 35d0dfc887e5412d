"""Start the live processes (exchange, relay, bots, monitor) and learn where they listen.

``Process.start(cmd)`` runs a command with its stdout piped: a thread reads every line
(keeping the last ones in ``lines`` and, with ``echo``, printing them with a prefix), so a
chatty child never blocks on a full pipe. ``wait_for(pattern)`` waits for a line matching a
regular expression; the exchange's first line is ``live.server listening on ws://HOST:PORT``
and the relay's ``live.relay listening on ws://HOST:PORT``, which is how a parent started
with port 0 learns the port (``start_exchange``, ``start_relay``). ``stop()`` sends SIGTERM,
waits, then kills. On Linux a child also gets SIGTERM if its parent dies (no orphaned
servers after a crash or a SIGKILL of the parent). Used by ``serve.py``, ``bench/live.py`` and the end-to-end tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import IO

PY = sys.executable
URL = re.compile(r"listening on (ws://[^\s]+)")


def die_with_parent() -> None:
    """``preexec_fn``: on Linux, the child gets SIGTERM when its parent dies (no orphans)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except OSError:
            pass


class Process:
    """A child process whose stdout lines are collected (see the module docstring)."""

    def __init__(self, popen: subprocess.Popen, name: str, echo: bool) -> None:
        self.popen = popen
        self.name = name
        self.echo = echo
        self.lines: deque[str] = deque(maxlen=2_000)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, name=f"stdout-{name}", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, cmd: Sequence[str], name: str, *, echo: bool = False, stderr: int | IO | None = None,
              cwd: str | None = None, env: dict[str, str] | None = None) -> Process:
        popen = subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True, bufsize=1,
            cwd=cwd, env=env, preexec_fn=die_with_parent,
        )
        return cls(popen, name, echo)

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            line = line.rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
            if self.echo:
                print(f"[{self.name}] {line}", flush=True)
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 20.0, start: int = 0) -> re.Match[str]:
        """The first line (from index ``start`` of the kept lines) matching ``pattern``."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in list(self.lines)[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (not self.alive() and not self._thread.is_alive()):
                    raise TimeoutError(f"{self.name}: no line matching {rx.pattern!r} in {timeout} s "
                                       f"(exit code {self.popen.poll()}); last lines: {list(self.lines)[-5:]}")
                self._cond.wait(min(left, 0.2))

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        return sum(1 for line in list(self.lines) if rx.search(line))

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; the exit code."""
        if self.alive():
            self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._thread.join(2)
        return self.popen.returncode

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
            self.popen.wait()


def start_exchange(args: Sequence[str] = (), *, port: int = 0, echo: bool = False, stderr: int | IO | None = None,
                   timeout: float = 30.0) -> tuple[Process, str]:
    """``python -m live.server --port PORT ARGS``; returns the process and its URL."""
    proc = Process.start([PY, "-m", "live.server", "--port", str(port), *args], "exchange", echo=echo, stderr=stderr)
    try:
        url = proc.wait_for(URL, timeout).group(1)
    except TimeoutError:
        proc.kill()
        raise
    return proc, url


def start_relay(upstream: str, args: Sequence[str] = (), *, port: int = 0, echo: bool = False,
                stderr: int | IO | None = None, timeout: float = 30.0) -> tuple[Process, str]:
    """``python -m live.relay --upstream URL --port PORT ARGS``; returns the process and its URL."""
    proc = Process.start([PY, "-m", "live.relay", "--upstream", upstream, "--port", str(port), *args], "relay",
                         echo=echo, stderr=stderr)
    try:
        url = proc.wait_for(URL, timeout).group(1)
    except TimeoutError:
        proc.kill()
        raise
    return proc, url

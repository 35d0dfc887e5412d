"""Every snippet of docs/BOT_INTEGRATION_GUIDE.md runs against a real exchange, in order.

The guide's Python snippets are fenced ``py`` (they need a running exchange, so the generic
docs test, which runs ``python`` blocks, leaves them out). Here an exchange starts on a free
port, the guide's ``ws://127.0.0.1:8765`` becomes its URL, and each snippet runs as written;
the plugin of section 8 is saved as ``my_bot.py`` next to the guide's ``my_bots.json`` and
run with ``python -m live.bots`` in its own process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from live.launch import PY, start_exchange

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "BOT_INTEGRATION_GUIDE.md").read_text()
SNIPPETS = re.findall(r"```py\n(.*?)```", GUIDE, re.S)
CONFIG = re.findall(r"```json\n(.*?)```", GUIDE, re.S)
DEMO_URL = "ws://127.0.0.1:8765"


@pytest.fixture(scope="module")
def exchange():  # type: ignore[no-untyped-def]
    proc, url = start_exchange(["--no-journal", "--no-csv"], stderr=subprocess.DEVNULL)
    yield url
    proc.stop()


def test_guide_has_the_steps() -> None:
    assert len(SNIPPETS) >= 6 and len(CONFIG) == 1
    for step in ("Start the exchange", "Get a token", "log in", "Subscribe", "Send an order", "cancel-on-disconnect",
                 "Reconnect", "plugin"):
        assert step.lower() in GUIDE.lower(), step


def test_snippets_run_in_order(exchange: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for n, code in enumerate(SNIPPETS, 1):
        code = code.replace(DEMO_URL, exchange)
        if code.startswith("# my_bot.py"):
            (tmp_path / "my_bot.py").write_text(code)
        exec(compile(code, f"<guide snippet {n}>", "exec"), {"__name__": "__guide__"})
    out = capsys.readouterr().out
    for expected in ("logged in as trader 1 alice", "XYZ at seq", "alice's order", "error wrong_type",
                     "rejected: post_only_would_cross", "open orders after reconnecting: 0", "connected as trader 4"):
        assert expected in out, (expected, out)


def test_plugin_bot_runs_with_the_bot_runner(exchange: str, tmp_path: Path) -> None:
    plugin = next(code for code in SNIPPETS if code.startswith("# my_bot.py"))
    (tmp_path / "my_bot.py").write_text(plugin)
    config = json.loads(CONFIG[0].replace(DEMO_URL, exchange))
    (tmp_path / "my_bots.json").write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([PY, "-m", "live.bots", "--config", "my_bots.json", "--name", "mine", "--seconds", "1.5"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    stats = json.loads(re.search(r"live\.bots mine stopped (\{.*\})", done.stdout).group(1))  # type: ignore[union-attr]
    assert stats["connects"] == 1 and stats["sent"] >= 4 and stats["errors"] == 0, stats

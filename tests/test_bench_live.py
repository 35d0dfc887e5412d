"""Smoke test of the live benchmark: ``python -m bench.live --quick --json`` on loopback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.live import Workload, bench_config, request_bytes
from live import protocol as P
from live.launch import PY

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_ends_with_a_json_line() -> None:
    done = subprocess.run([PY, "-m", "bench.live", "--quick", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("orders_per_s", "p50_ms", "p99_ms", "bots", "dropped", "reordered", "engine_orders_per_s", "ratio", "fanout"):
        assert key in result, key
    assert result["orders_per_s"] > 0 and result["p99_ms"] >= result["p50_ms"] > 0
    assert result["bots"] == 10 and result["dropped"] == 0 and result["reordered"] == 0
    assert {r["bots"] for r in result["runs"]} == {1, 10}
    fan = result["fanout"]
    assert fan["subscribers"] == 10 and fan["md_messages"] > 0 and fan["gaps"] == 0


def test_workload_requests_are_valid_protocol() -> None:
    work = Workload(1, 1)
    kinds = []
    for req in range(1, 200):
        kind, fields = work.next()
        kinds.append(kind if kind == "cancel" or not fields["ioc"] else "ioc")
        msg = P.decode_trading(request_bytes(kind, fields, req))
        assert msg.req == req
        if kind == "new" and not fields["ioc"]:
            work.open.append(req)
    assert {"new", "ioc", "cancel"} <= set(kinds)
    assert len(bench_config(50).traders) == 50

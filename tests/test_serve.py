"""``serve.py`` and the monitor as real processes on loopback (free ports, bounded runs)."""

from __future__ import annotations

import asyncio
import csv
import signal
import socket
import subprocess
from pathlib import Path

from live.client import TraderClient
from live.launch import PY, Process
from live.monitor import MonitorState, render
from live import protocol as P
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent


def _serve(tmp_path: Path, *extra: str) -> Process:
    return Process.start([PY, str(ROOT / "serve.py"), "--port", "0", "--relay-port", "0", "--no-journal",
                          "--csv-dir", str(tmp_path / "csv"), *extra], "serve", stderr=open(tmp_path / "serve.err", "w"), cwd=str(ROOT))


def test_serve_runs_exchange_relay_and_bots_then_stops_cleanly(tmp_path: Path) -> None:
    serve = _serve(tmp_path)
    try:
        relay_url = serve.wait_for(r"serve\.py: relay +(ws://\S+)", 30).group(1)
        for name in ("mm-xyz", "noise-xyz", "mm-es"):
            serve.wait_for(rf"live\.bots {name} connected as trader \d+", 60)
        serve.wait_for(r"live\.bots noise-xyz connected", 60)
        # the monitor, read-only through the relay, sees books, and the traders' rows
        mon = subprocess.run([PY, "-m", "live.monitor", "--url", relay_url, "--once", "--seconds", "8"],
                             capture_output=True, text=True, timeout=60, cwd=str(ROOT))
        assert mon.returncode == 0, mon.stderr
        assert "CONNECTED" in mon.stdout and "DISCONNECTED" not in mon.stdout
        assert "XYZ" in mon.stdout and "ES" in mon.stdout and "alice (1)" in mon.stdout and "performance #" in mon.stdout
        serve.popen.send_signal(signal.SIGTERM)
        assert serve.popen.wait(30) == 0
        serve.wait_for(r"serve\.py: stopped \(bots 0, relay 0, exchange 0\)", 5)
    finally:
        serve.stop()
    # the exchange flushed its CSV files on the way out
    rows = list(csv.reader(open(tmp_path / "csv" / "XYZ" / "performance.csv")))
    assert len(rows) > 1


def test_serve_seconds_bounds_the_demo(tmp_path: Path) -> None:
    done = subprocess.run([PY, str(ROOT / "serve.py"), "--port", "0", "--relay-port", "0", "--no-journal", "--no-csv",
                           "--no-bots", "--seconds", "1"], capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr
    assert "serve.py: exchange ws://127.0.0.1:" in done.stdout and "stopped (relay 0, exchange 0)" in done.stdout


def test_serve_starts_one_part_alone() -> None:
    part = Process.start([PY, str(ROOT / "serve.py"), "exchange", "--port", "0", "--no-journal", "--no-csv"], "exchange",
                         stderr=subprocess.DEVNULL, cwd=str(ROOT))
    try:
        url = part.wait_for(r"live\.server listening on (ws://127\.0\.0\.1:\d+)", 30).group(1)
        # a round trip: the server is serving (and has its signal handlers) before SIGTERM
        assert isinstance(asyncio.run(_ping(url)), P.Pong)
        assert part.stop() == 0
    finally:
        part.stop()


async def _ping(url: str) -> P.ServerMessage:
    async with await TraderClient.connect(url) as client:
        return await client.ping()


def test_monitor_shows_disconnected_when_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nothing will listen there
    done = subprocess.run([PY, "-m", "live.monitor", "--url", f"ws://127.0.0.1:{port}", "--seconds", "0.5"],
                          capture_output=True, text=True, timeout=30, cwd=str(ROOT))
    assert done.returncode == 1 and "DISCONNECTED" in done.stdout


def test_monitor_renders_recorded_messages() -> None:
    state = MonitorState("ws://recorded")
    info = P.Instrument(symbol="XYZ", rule="fifo", tick=1, lot=1, max_qty=10, price_scale="0.01", order_types=["limit"],
                        tifs=["gtc"], post_only=True, iceberg=False, protection_ticks=10, market_as_protected=False,
                        price_band=None, reference_price=None)
    state.on_connect()
    for msg in (
        P.Subscribed(symbols=["XYZ"], instruments=[info], ts=0),
        P.BookSnapshot(symbol="XYZ", seq=0, bids=[P.Level(9_999, 5, 1)], asks=[P.Level(10_002, 7, 2)], last_price=None,
                       reason="subscribe", ts=0),
        P.Trade(symbol="XYZ", seq=1, price=10_002, qty=3, aggressor="buy", ts=0),
        P.BookUpdate(symbol="XYZ", seq=2, changes=[P.LevelChange(-1, 10_002, 4, 1)], ts=0),
        P.Performance(seq=3, marks={"XYZ": 100.5}, traders=[P.TraderPerformance(
            trader=1, name="alice", positions={"XYZ": 3}, cash=99_969_994, fees=0, realized_pnl=0.0,
            equity=100_000_000.5, volume=3, barred=False)], ts=0),
    ):
        assert state.on_message(msg) is None
    assert state.on_message(P.BookUpdate(symbol="XYZ", seq=9, changes=[], ts=0)) == "XYZ"  # a gap: ask for a snapshot
    console = Console(width=140, color_system=None, force_terminal=False, record=True)
    console.print(render(state))
    text = console.export_text()
    assert "CONNECTED" in text and "99.99" in text and "100.02" in text and "3 tick spread" in text
    assert "BUY" in text and "alice (1)" in text and "999,699.94" in text and "gaps 1" in text
    state.on_disconnect()
    console.print(render(state))
    assert "DISCONNECTED" in console.export_text()

"""``trades.csv`` and ``performance.csv`` for the live exchange, by ``report.CsvExporter``.

The exporter reads a simulator's ``log`` of ``(time, symbol, events)`` entries; the live
venue produces the same entries (``live.core.Outbox.log``, time = the journaled wall-clock
ns), so the files have the simulator's format, row for row (timestamps are Unix seconds
with nine decimals). ``CsvSink`` feeds it without touching ``report/``:

- the exchange's task hands entries over with ``add`` (a list append under a lock);
- a worker thread, every ``flush_ms`` (500 ms), passes the new entries to the exporter,
  whose clock is the wall clock (``clock="sim"`` with ``now`` = wall time): at each 500 ms
  boundary it appends the rows of every fill up to the boundary and one performance row
  per trader and symbol stamped with the boundary (a quiet stretch gives one snapshot, as
  in the simulator). Replaying accounts and writing files happen in that thread, so
  matching never waits on them;
- ``close()`` (server shutdown, SIGTERM/SIGINT) hands over the rest and closes the
  exporter, which writes every remaining row and a final snapshot.

After a crash. Rows buffered at a ``kill -9`` are lost from the files but not from the
journal: ``rebuild_trades`` regenerates every trade row from the replayed journal (same
exporter, a scratch directory), checks the file holds a prefix of them (cutting a torn last
line), and appends the missing ones, so no acknowledged trade is missing from
``trades.csv``. Performance rows are periodic samples; the ones a crash loses are not
invented afterwards (the restarted exchange starts sampling again).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

from exchange.events import Fill
from exchange.sim import MS
from exchange.venue import Exchange
from report.csv_export import CsvExporter

log = logging.getLogger(__name__)


class _Log:
    """A list-like window onto an unbounded log: indices keep counting after a ``trim``."""

    __slots__ = ("items", "offset")

    def __init__(self) -> None:
        self.items: list[tuple[int, str, list]] = []
        self.offset = 0

    def __len__(self) -> int:
        return self.offset + len(self.items)

    def __getitem__(self, i: int) -> tuple[int, str, list]:
        return self.items[i - self.offset]

    def trim(self) -> None:
        """Forget the entries read so far (the exporter read them all)."""
        self.offset += len(self.items)
        self.items.clear()


class _LiveSim:
    """The part of ``exchange.sim.Simulator`` that ``CsvExporter`` reads."""

    def __init__(self, exchange: Exchange, traders: Iterable[int]) -> None:
        self.exchange = exchange
        self.agents = [SimpleNamespace(trader=t) for t in traders]
        self.log = _Log()
        self.now = 0


class CsvSink:
    """Buffered CSV export from the live exchange (see the module docstring).

    Construct, ``resume(entries)`` with the replayed journal's log entries (no rows are
    written for them: the files hold them already, or ``rebuild_trades`` adds them), then
    ``start()`` the worker thread."""

    def __init__(self, out_dir: str | os.PathLike[str], exchange: Exchange, traders: Iterable[int], *, flush_ms: int = 500) -> None:
        self._sim = _LiveSim(exchange, traders)
        self._sim.now = time.time_ns()
        self.interval_ns = flush_ms * MS
        self.exporter = CsvExporter(
            out_dir, self._sim, clock="sim", flush_interval_ns=self.interval_ns, register_atexit=False,  # type: ignore[arg-type]
            start_ns=self._sim.now,
        )
        self._pending: list[tuple[int, str, list]] = []
        self._unflushed_until = 0  # time of the newest entry read; rows up to it may be buffered
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.polls = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="csv-export", daemon=True)

    def resume(self, entries: list[tuple[int, str, list]]) -> None:
        """Read replayed entries into the exporter's state without writing their rows."""
        log = self._sim.log
        log.items.extend(entries)
        self.exporter.catch_up()
        log.trim()

    def start(self) -> None:
        self._thread.start()

    def add(self, entries: Iterable[tuple[int, str, list]]) -> None:
        """Hand log entries over (called by the exchange's task; never blocks on I/O)."""
        with self._lock:
            self._pending.extend(entries)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_ns / 1e9):
            try:
                self._tick()
            except BaseException as exc:  # keep the exchange running; report on close
                log.exception("CSV export failed")
                self.error = exc
                return

    def _tick(self) -> None:
        """Read new entries; the exporter flushes at each 500 ms boundary the clock passed."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch and not self._unflushed_until:
            return  # idle and everything written: no snapshot rows for quiet stretches
        sim = self._sim
        sim.log.items.extend(batch)
        sim.now = max(time.time_ns(), batch[-1][0] if batch else 0)
        if batch:
            self._unflushed_until = batch[-1][0]
        self.exporter.poll()
        sim.log.trim()
        self.polls += 1
        if self._unflushed_until and self._unflushed_until < sim.now // self.interval_ns * self.interval_ns:
            self._unflushed_until = 0  # a boundary after the newest entry was flushed

    def close(self) -> None:
        """Write everything handed over so far, a final snapshot, and close the files."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.exporter.closed:
            return
        with self._lock:
            batch, self._pending = self._pending, []
        sim = self._sim
        sim.log.items.extend(batch)
        sim.now = max(time.time_ns(), batch[-1][0] if batch else 0)
        self.exporter.close()


def _cut_torn_line(path: Path) -> None:
    """Drop a last line without its newline (a write cut short by a crash)."""
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        log.warning("%s: cutting a torn last line (%d bytes)", path, len(data) - end)
        with open(path, "r+b") as f:
            f.truncate(end)


def rebuild_trades(out_dir: str | os.PathLike[str], exchange: Exchange, entries: list[tuple[int, str, list]]) -> int:
    """Append the trade rows of ``entries`` (the replayed journal) missing from ``out_dir``.

    Returns how many rows were appended. Raises ``ValueError`` if a trades file is not a
    prefix of what the journal says (it belongs to another journal)."""
    root = Path(out_dir)
    fills = [e for e in entries if any(type(ev) is Fill for ev in e[2])]  # rows come from these only
    appended = 0
    with tempfile.TemporaryDirectory(prefix="live-csv-") as tmp:
        sim = _LiveSim(exchange, ())
        sim.log.items.extend(fills)
        sim.now = fills[-1][0] if fills else 0
        scratch = CsvExporter(tmp, sim, register_atexit=False)  # type: ignore[arg-type]
        scratch.close()
        for trades, performance in scratch.paths.values():
            rel = trades.relative_to(tmp)
            live_trades, live_perf = root / rel, root / performance.relative_to(tmp)
            _cut_torn_line(live_trades)
            _cut_torn_line(live_perf)
            want = trades.read_bytes()
            have = live_trades.read_bytes() if live_trades.exists() else b""
            if not have:
                missing = want
            elif want.startswith(have):
                missing = want[len(have):]
            else:
                raise ValueError(
                    f"{live_trades} does not match the journal's trades (another journal's CSV?); "
                    "move it away or point csv_dir elsewhere"
                )
            if missing:
                live_trades.parent.mkdir(parents=True, exist_ok=True)
                with open(live_trades, "ab") as f:
                    f.write(missing)
                appended += missing.count(b"\n") - (0 if have else 1)
    if appended:
        log.warning("rebuilt %d trade row(s) lost from %s by a crash", appended, root)
    return appended

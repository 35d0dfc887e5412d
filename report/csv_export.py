"""CSV export of a simulation: ``trades.csv`` and ``performance.csv``, written as it runs.

Files. ``trades.csv`` has ``timestamp,price,qty,buy_trader,sell_trader``, one row per
``Fill``; ``performance.csv`` has ``timestamp,trader_id,position,cash,realized_pnl,
total_equity``, one row per trader at each flush. A venue with one symbol writes both files
in ``out_dir``; a venue with several writes one pair per symbol in ``out_dir/<symbol>/``.
Files are opened in append mode: a header is written only when a file is missing or empty
(at construction, so even a run without trades leaves headers), an existing file must start
with the expected header (otherwise ``ValueError``: no silent mixing of formats), and rows
are only ever appended, so several exporters in turn on one directory build one file.

Columns.

- ``timestamp``: simulated time in seconds with nine decimals (exact ns, e.g. ``0.500000000``),
  whichever clock triggers the flushes.
- ``price``: decimal price of the fill (``spec.to_price``); ``qty``: lots.
- ``buy_trader`` / ``sell_trader``: the taker is the buyer when the fill's aggressor is BUY,
  else the maker is.
- ``position``: the trader's lots in the file's symbol. ``cash``, ``realized_pnl`` and
  ``total_equity`` are the trader's whole account (all symbols, so they repeat in each
  symbol's file), from ``exchange.accounts.Account``: ``cash``, ``realized_pnl()`` (before
  fees; ``cash`` is net of fees) and ``equity(marks)`` (marks: mid, or last trade when a side
  is empty). Money is in currency, price units x ``price_scale``, with the price's
  decimals plus four (``0.01``: six decimals); ``cash`` is exact. Instruments with different ``price_scale`` have no
  common currency: pass ``money_scale`` (``Decimal(1)``: raw price units).

Where the numbers come from. The exporter keeps a cursor into ``sim.log`` and replays each
new entry through ``report.replay.Replay`` (fresh ``Accounts`` with the venue's fees and
starting cash, top of book from ``BookUpdate``), so a snapshot at time ``t`` is the state
just after the last command at or before ``t``, even when the simulator has run further.

Flushing. Rows are buffered in memory and appended to the files

- with ``clock="sim"``: each time simulated time passes a multiple of
  ``flush_interval_ns`` (500 ms), i.e. when an entry after the boundary is read or
  ``sim.now`` is past it; the rows up to the boundary are written and the performance
  snapshot is stamped with the boundary, holding every command up to and including it. A
  quiet stretch spanning many boundaries gives one snapshot, at the first boundary (nothing
  changed after it);
- with ``clock="wall"``: when ``flush_interval_ns`` of wall-clock time (``time.monotonic``)
  passed since the last flush; the snapshot is stamped with the simulated time reached;
- on ``flush()``, and on ``close()``, which first reads the rest of the log and ends with a
  final snapshot at ``sim.now``.

Timers are checked as entries are read (``poll()``), never from another thread. ``close()``
runs when a ``with`` block exits, also through an exception such as the
``KeyboardInterrupt`` of Ctrl-C, and at interpreter exit (``atexit``) if the exporter was
not closed. Inside ``poll()``, ``flush()`` and ``close()`` SIGINT is deferred (main thread
only): a log entry is read whole or not at all and a write is never cut short, so Ctrl-C
neither duplicates nor loses a row; the ``KeyboardInterrupt`` is raised right after.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Literal

from exchange.events import Fill
from exchange.sim import MS, Simulator
from report.replay import Replay, seconds
from report.replay import money_scale as common_money_scale

TRADES_HEADER = "timestamp,price,qty,buy_trader,sell_trader"
PERFORMANCE_HEADER = "timestamp,trader_id,position,cash,realized_pnl,total_equity"


class CsvExporter:
    """Appends a simulator's trades and per-trader performance to CSV files as it runs.

    Arguments:
        out_dir: where the files go (created if needed); see the module docstring.
        sim: the simulator whose ``log`` is exported from its first entry on.
        clock: ``"sim"`` flushes on simulated time, ``"wall"`` on wall-clock time.
        flush_interval_ns: time between flushes on that clock (default 500 ms).
        money_scale: currency per price unit for money columns; default: the instruments'
            common ``price_scale``.
        register_atexit: close at interpreter exit if still open.
        start_ns: time the export starts at; the first ``clock="sim"`` flush boundary is the
            first multiple of ``flush_interval_ns`` after it (a live venue passes the wall
            clock, so no snapshot is stamped near time 0).

    Use as a context manager, calling ``poll()`` after each slice of ``sim.run``::

        with CsvExporter("out", sim) as csv:
            while sim.now < end:
                sim.run(until=sim.now + 100 * MS)
                csv.poll()
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        sim: Simulator,
        *,
        clock: Literal["sim", "wall"] = "sim",
        flush_interval_ns: int = 500 * MS,
        money_scale: Decimal | None = None,
        register_atexit: bool = True,
        start_ns: int = 0,
    ) -> None:
        if clock not in ("sim", "wall"):
            raise ValueError(f"clock must be 'sim' or 'wall', got {clock!r}")
        if type(flush_interval_ns) is not int or flush_interval_ns <= 0:
            raise ValueError(f"flush_interval_ns must be a positive int, got {flush_interval_ns!r}")
        if type(start_ns) is not int:
            raise ValueError(f"start_ns must be an int, got {start_ns!r}")
        self.sim = sim
        self.clock = clock
        self.flush_interval_ns = flush_interval_ns
        self._replay = Replay(sim.exchange)
        specs = self._replay.specs
        scale = money_scale if money_scale is not None else common_money_scale(specs.values())
        if scale is None:
            raise ValueError(
                "instruments differ in price_scale, so cash has no single currency; "
                "pass money_scale= (Decimal(1) writes raw price units)"
            )
        self._scale = Decimal(scale)
        self._fscale = float(self._scale)
        exponent = self._scale.normalize().as_tuple().exponent
        self._decimals = max(0, -exponent if isinstance(exponent, int) else 0) + 4
        self._quantum = Decimal(1).scaleb(-self._decimals)

        root = Path(out_dir)
        self.paths: dict[str, tuple[Path, Path]] = {}
        for symbol in specs:
            if len(specs) == 1:
                folder = root
            else:
                if not symbol or symbol in (".", "..") or "/" in symbol or os.sep in symbol:
                    raise ValueError(f"symbol {symbol!r} cannot name a directory")
                folder = root / symbol
            folder.mkdir(parents=True, exist_ok=True)
            self.paths[symbol] = (folder / "trades.csv", folder / "performance.csv")
        for trades, performance in self.paths.values():
            _ensure_header(trades, TRADES_HEADER)
            _ensure_header(performance, PERFORMANCE_HEADER)

        self._trades: dict[str, list[str]] = {s: [] for s in specs}
        self._performance: dict[str, list[str]] = {s: [] for s in specs}
        self._cursor = 0  # next entry of sim.log to read
        self._deadline = (start_ns // flush_interval_ns + 1) * flush_interval_ns  # next simulated flush boundary
        self._last_wall = time.monotonic()
        self._snapshot_at: int | None = None  # time of the last snapshot, None if stale
        self.trade_rows = 0  # rows appended to the trades files so far
        self.performance_rows = 0
        self.closed = False
        self._atexit = register_atexit
        if register_atexit:
            atexit.register(self.close)

    # ---- feeding ----------------------------------------------------------------------------
    def poll(self) -> int:
        """Read the entries the simulator logged since the last call; flush when due.

        Returns the number of log entries read.
        """
        if self.closed:
            raise ValueError("poll() on a closed CsvExporter")
        with _sigint_deferred():  # an entry is read whole or not at all
            return self._poll()

    def _poll(self) -> int:
        log, start = self.sim.log, self._cursor
        end = len(log)
        by_sim = self.clock == "sim"
        for i in range(start, end):
            t, symbol, events = log[i]
            if by_sim:
                if t > self._deadline:
                    self._flush_at_boundary(t)
            elif time.monotonic() - self._last_wall >= self.flush_interval_ns / 1e9:
                self._flush()
            self._read(t, symbol, events)
            self._cursor = i + 1
        now = self.sim.now
        if by_sim:
            if now > self._deadline:
                self._flush_at_boundary(now)
        elif time.monotonic() - self._last_wall >= self.flush_interval_ns / 1e9:
            self._flush()
        return end - start

    def catch_up(self) -> int:
        """Read the entries logged so far into the state without writing rows for them.

        For resuming an export whose files already hold those entries' rows (the live
        exchange replaying its journal after a restart); the next snapshot then shows the
        whole history. Returns the number of entries read.
        """
        if self.closed:
            raise ValueError("catch_up() on a closed CsvExporter")
        log, start = self.sim.log, self._cursor
        end = len(log)
        for i in range(start, end):
            t, symbol, events = log[i]
            self._replay.feed(t, symbol, events)
        self._cursor = end
        if end > start:
            self._snapshot_at = None
            interval = self.flush_interval_ns
            self._deadline = max(self._deadline, -(-self._replay.time // interval) * interval)
        return end - start

    def _read(self, t: int, symbol: str, events: list) -> None:
        self._replay.feed(t, symbol, events)
        self._snapshot_at = None
        rows = self._trades[symbol]
        to_price = self._replay.specs[symbol].to_price
        stamp = None
        for ev in events:
            if type(ev) is Fill:
                if stamp is None:
                    stamp = seconds(t)
                if ev.aggressor == 1:
                    buyer, seller = ev.taker_trader, ev.maker_trader
                else:
                    buyer, seller = ev.maker_trader, ev.taker_trader
                rows.append(f"{stamp},{to_price(ev.price)},{ev.qty},{buyer},{seller}\n")

    def _flush_at_boundary(self, t: int) -> None:
        """Simulated time reached ``t`` past the current boundary: snapshot it and flush."""
        boundary = self._deadline
        self._snapshot(boundary)
        self._write()
        interval = self.flush_interval_ns
        self._deadline = -(-t // interval) * interval  # the first boundary at or after t

    # ---- snapshots and writing --------------------------------------------------------------
    def _snapshot(self, at: int) -> None:
        """Buffer one performance row per trader and symbol, stamped ``at`` (sim ns)."""
        if self._snapshot_at == at:
            return
        self._snapshot_at = at
        replay = self._replay
        accounts = replay.accounts
        marks = replay.marks()
        stamp = seconds(at)
        traders = sorted({a.trader for a in self.sim.agents} | set(accounts.by_trader))
        scale, fscale, d, quantum = self._scale, self._fscale, self._decimals, self._quantum
        for trader in traders:
            acct = accounts.account(trader)
            money = (
                f"{(acct.cash * scale).quantize(quantum)},"
                f"{acct.realized_pnl() * fscale:.{d}f},"
                f"{acct.equity(marks) * fscale:.{d}f}\n"
            )
            for symbol, rows in self._performance.items():
                rows.append(f"{stamp},{trader},{acct.position(symbol)},{money}")

    def flush(self) -> None:
        """Snapshot performance at the simulated time reached and append every buffered row."""
        if self.closed:
            return
        with _sigint_deferred():
            self._flush()

    def _flush(self) -> None:
        self._snapshot(self.sim.now if self._cursor == len(self.sim.log) else self._replay.time)
        self._write()

    def _write(self) -> None:
        self._last_wall = time.monotonic()
        for symbol, (trades_path, performance_path) in self.paths.items():
            for path, rows, kind in (
                (trades_path, self._trades[symbol], "trade"),
                (performance_path, self._performance[symbol], "performance"),
            ):
                if not rows:
                    continue
                with open(path, "a", encoding="utf-8", newline="") as f:
                    f.write("".join(rows))
                if kind == "trade":
                    self.trade_rows += len(rows)
                else:
                    self.performance_rows += len(rows)
                rows.clear()

    def close(self) -> None:
        """Read the rest of the log, take a final snapshot at ``sim.now``, write everything."""
        if self.closed:
            return
        with _sigint_deferred():
            try:
                self._poll()
            finally:  # even if reading failed, write what was read
                try:
                    self._flush()
                finally:
                    self.closed = True
                    if self._atexit:
                        atexit.unregister(self.close)

    def __enter__(self) -> CsvExporter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _ensure_header(path: Path, header: str) -> None:
    """Write ``header`` to a missing or empty file; check it heads an existing one."""
    with open(path, "a+", encoding="utf-8", newline="") as f:
        if f.tell() == 0:
            f.write(header + "\n")
            return
        f.seek(0)
        first = f.readline().rstrip("\r\n")
    if first != header:
        raise ValueError(f"{path} starts with {first!r}, not the expected header {header!r}")


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT while the body runs; deliver it afterwards (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN, SIG_DFL or not set from Python: leave it alone
        yield
        return
    caught: list[tuple[int, object]] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            previous(*caught[0])  # type: ignore[misc,operator]

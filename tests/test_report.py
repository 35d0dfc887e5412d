"""Reports: CSV files that never lose a row, charts that are drawn, a live view that renders.

Every number a report writes is checked against ``exchange.accounts`` (the one money
module) or the log itself.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from exchange import Fill, NewOrder, OrderType, nyse
from exchange.accounts import FeeSchedule
from exchange.sim import MS, SECOND, Agent, Context, Simulator
from exchange.venue import Exchange
from report import PERFORMANCE_HEADER, TRADES_HEADER, CsvExporter, Replay, seconds
from report.csv_export import _sigint_deferred
from view import LiveView, run_live

ROOT = Path(__file__).resolve().parents[1]


class Noise(Agent):
    """Every ~1 ms: a limit order of 1-5 lots within 3 ticks of 100.00, either side (some cross)."""

    market_data = False

    def __init__(self, trader: int, symbol: str = "XYZ") -> None:
        super().__init__(trader)
        self.symbol = symbol

    def on_start(self, ctx: Context) -> None:
        ctx.wake_in(ctx.rng.randint(1, MS))

    def on_wakeup(self, ctx: Context) -> None:
        rng = ctx.rng
        price = 10_000 + rng.randint(-3, 3)
        ctx.submit(self.symbol, NewOrder(ctx.next_order_id(), self.trader, rng.choice((1, -1)), rng.randint(1, 5), price))
        ctx.wake_in(rng.randint(1, 2 * MS))


class Taker(Agent):
    """Every 5 ms: a market order of 1-3 lots."""

    market_data = False

    def __init__(self, trader: int, symbol: str = "XYZ") -> None:
        super().__init__(trader)
        self.symbol = symbol

    def on_start(self, ctx: Context) -> None:
        ctx.wake_in(5 * MS)

    def on_wakeup(self, ctx: Context) -> None:
        side = ctx.rng.choice((1, -1))
        ctx.submit(self.symbol, NewOrder(ctx.next_order_id(), self.trader, side, ctx.rng.randint(1, 3), type=OrderType.MARKET))
        ctx.wake_in(5 * MS)


def make_sim(seed: int = 1, symbols: tuple[str, ...] = ("XYZ",), fees: FeeSchedule | None = None) -> Simulator:
    venue = Exchange({s: nyse(s) for s in symbols}, starting_cash=10**9, fees=fees)
    agents: list[Agent] = []
    for s in symbols:
        base = 10 * len(agents)
        agents += [Noise(base + 1, s), Noise(base + 2, s), Noise(base + 3, s), Taker(base + 4, s)]
    return Simulator(venue, agents, seed=seed)


def read(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def fills(sim: Simulator, symbol: str = "XYZ", until: int | None = None) -> list[tuple[int, Fill]]:
    return [(t, ev) for t, s, ev in sim.iter_events() if type(ev) is Fill and s == symbol and (until is None or t <= until)]


def run_in_slices(sim: Simulator, exporter: CsvExporter, until: int, step: int = 100 * MS) -> None:
    while sim.now < until:
        sim.run(until=min(sim.now + step, until))
        exporter.poll()


# ---- trades.csv -----------------------------------------------------------------------------------------
def test_headers_are_exactly_as_specified_and_written_before_any_row(tmp_path: Path) -> None:
    with CsvExporter(tmp_path, make_sim()):
        assert (tmp_path / "trades.csv").read_text() == "timestamp,price,qty,buy_trader,sell_trader\n"
        assert (tmp_path / "performance.csv").read_text() == "timestamp,trader_id,position,cash,realized_pnl,total_equity\n"
    assert TRADES_HEADER == "timestamp,price,qty,buy_trader,sell_trader"
    assert PERFORMANCE_HEADER == "timestamp,trader_id,position,cash,realized_pnl,total_equity"


def test_trade_rows_are_the_fills_of_the_log(tmp_path: Path) -> None:
    sim = make_sim(seed=2)
    with CsvExporter(tmp_path, sim) as exporter:
        run_in_slices(sim, exporter, SECOND)
    rows = read(tmp_path / "trades.csv")[1:]
    log = fills(sim)
    assert len(rows) == len(log) > 100 and exporter.trade_rows == len(rows)
    assert sum(int(r[2]) for r in rows) == sum(f.qty for _, f in log)
    for row, (t, f) in zip(rows, log):
        buyer, seller = (f.taker_trader, f.maker_trader) if f.aggressor == 1 else (f.maker_trader, f.taker_trader)
        assert row == [seconds(t), str(f.price * Decimal("0.01")), str(f.qty), str(buyer), str(seller)]
    assert rows[0][1].count(".") == 1 and len(rows[0][1].split(".")[1]) == 2  # 100.02: a decimal price
    assert rows[0][0].split(".")[1].isdigit() and len(rows[0][0].split(".")[1]) == 9  # ns as 9 decimals


def test_a_second_exporter_appends_without_a_second_header(tmp_path: Path) -> None:
    first, second = make_sim(seed=3), make_sim(seed=4)
    for sim in (first, second):
        with CsvExporter(tmp_path, sim) as exporter:
            run_in_slices(sim, exporter, 300 * MS)
    for name, header in (("trades.csv", TRADES_HEADER), ("performance.csv", PERFORMANCE_HEADER)):
        lines = (tmp_path / name).read_text().splitlines()
        assert lines[0] == header and lines.count(header) == 1
    trades = read(tmp_path / "trades.csv")[1:]
    assert len(trades) == len(fills(first)) + len(fills(second))


def test_a_file_with_another_header_is_refused_not_appended_to(tmp_path: Path) -> None:
    (tmp_path / "trades.csv").write_text("time,px\n1,2\n")
    with pytest.raises(ValueError, match="expected header"):
        CsvExporter(tmp_path, make_sim(), register_atexit=False)
    assert (tmp_path / "trades.csv").read_text() == "time,px\n1,2\n"


# ---- performance.csv -------------------------------------------------------------------------------------
def test_final_performance_rows_agree_with_the_venue_accounts(tmp_path: Path) -> None:
    sim = make_sim(seed=5, fees=FeeSchedule(maker_bps=-1, taker_bps=3, per_lot=1))
    with CsvExporter(tmp_path, sim) as exporter:
        run_in_slices(sim, exporter, SECOND)
    rows = read(tmp_path / "performance.csv")[1:]
    final = [r for r in rows if r[0] == seconds(sim.now)]
    accounts, marks = sim.exchange.accounts, sim.exchange.marks()
    assert sorted(int(r[1]) for r in final) == sorted(accounts.by_trader) == [1, 2, 3, 4]
    for _ts, trader, position, cash, realized, equity in final:
        acct = accounts.by_trader[int(trader)]
        assert int(position) == acct.position("XYZ")
        assert Decimal(cash) == Decimal(acct.cash) / 100  # exact
        assert float(realized) == pytest.approx(acct.realized_pnl() / 100, abs=1e-6)
        assert float(equity) == pytest.approx(acct.equity(marks) / 100, abs=1e-6)
    assert sum(int(r[2]) for r in final) == 0
    assert sum(Decimal(r[3]) for r in final) + Decimal(sum(a.fees for a in accounts.by_trader.values())) / 100 == 4 * Decimal(10**9) / 100


def test_replaying_the_log_rebuilds_the_venue_exactly() -> None:
    sim = make_sim(seed=6, symbols=("XYZ", "ABC"), fees=FeeSchedule(taker_bps=2))
    sim.run(until=SECOND)
    replay = Replay(sim.exchange)
    for entry in sim.log:
        replay.feed(*entry)
    assert replay.marks() == sim.exchange.marks()
    for symbol, engine in sim.exchange.engines.items():
        assert replay.book[symbol].l1() == (engine.book.bids.best, engine.book.asks.best)
        assert replay.last_price[symbol] == engine.last_price
    for trader, acct in sim.exchange.accounts.by_trader.items():
        mine = replay.accounts.by_trader[trader]
        assert (mine.cash, mine.fees, mine.volume, mine.realized_pnl()) == (acct.cash, acct.fees, acct.volume, acct.realized_pnl())
        assert {s: p.qty for s, p in mine.positions.items()} == {s: p.qty for s, p in acct.positions.items()}


def test_rows_reach_the_file_once_500_ms_of_simulated_time_passed(tmp_path: Path) -> None:
    sim = make_sim(seed=7)
    with CsvExporter(tmp_path, sim, flush_interval_ns=500 * MS) as exporter:
        sim.run(until=400 * MS)
        exporter.poll()
        assert len(read(tmp_path / "trades.csv")) == 1 and len(read(tmp_path / "performance.csv")) == 1  # buffered
        sim.run(until=600 * MS)
        exporter.poll()
        trades = read(tmp_path / "trades.csv")[1:]
        performance = read(tmp_path / "performance.csv")[1:]
        assert len(trades) == len(fills(sim, until=500 * MS)) > 0  # every trade up to the boundary
        assert {r[0] for r in performance} == {"0.500000000"} and len(performance) == 4
        # the snapshot is the state at 0.5 s: the same seeded run stopped there agrees
        twin = make_sim(seed=7)
        twin.run(until=500 * MS)
        for _, trader, position, cash, *_ in performance:
            acct = twin.exchange.accounts.by_trader[int(trader)]
            assert (int(position), Decimal(cash)) == (acct.position("XYZ"), Decimal(acct.cash) / 100)
        sim.run(until=1_400 * MS)
        exporter.poll()
        assert [r[0] for r in read(tmp_path / "performance.csv")[1::4]] == ["0.500000000", "1.000000000"]
    stamps = [r[0] for r in read(tmp_path / "performance.csv")[1::4]]
    assert stamps == ["0.500000000", "1.000000000", "1.400000000"]  # close: a final snapshot at sim.now


def test_wall_clock_flushes_on_wall_time_only(tmp_path: Path) -> None:
    sim = make_sim(seed=8)
    with CsvExporter(tmp_path / "slow", sim, clock="wall", flush_interval_ns=3600 * SECOND) as slow:
        run_in_slices(sim, slow, SECOND)
        assert len(read(tmp_path / "slow" / "trades.csv")) == 1  # a simulated second is no wall hour
    assert len(read(tmp_path / "slow" / "trades.csv")) == 1 + len(fills(sim))
    sim = make_sim(seed=8)
    with CsvExporter(tmp_path / "fast", sim, clock="wall", flush_interval_ns=1) as fast:
        sim.run(until=200 * MS)
        time.sleep(0.001)
        fast.poll()
        assert len(read(tmp_path / "fast" / "trades.csv")) == 1 + len(fills(sim))
        assert read(tmp_path / "fast" / "performance.csv")[-1][0] == "0.200000000"


def test_keyboard_interrupt_in_the_with_block_leaves_every_row_on_disk(tmp_path: Path) -> None:
    sim = make_sim(seed=9)
    with pytest.raises(KeyboardInterrupt):
        with CsvExporter(tmp_path, sim, flush_interval_ns=3600 * SECOND):
            sim.run(until=700 * MS)  # never polled: all rows are still in the log or the buffer
            raise KeyboardInterrupt
    trades = read(tmp_path / "trades.csv")[1:]
    assert len(trades) == len(fills(sim)) > 0
    assert sum(int(r[2]) for r in trades) == sum(f.qty for _, f in fills(sim))
    assert [r[0] for r in read(tmp_path / "performance.csv")[1:]] == ["0.700000000"] * 4


def test_a_real_sigint_while_rows_are_written_is_delivered_after_the_write() -> None:
    before = signal.getsignal(signal.SIGINT)
    if before is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler here")
    order = []
    with pytest.raises(KeyboardInterrupt):
        with _sigint_deferred():
            signal.raise_signal(signal.SIGINT)
            order.append("write finished")
    assert order == ["write finished"]
    assert signal.getsignal(signal.SIGINT) is before


CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from test_report import make_sim
    from report import CsvExporter
    from exchange.sim import MS
    sim = make_sim(seed=10)
    try:
        with CsvExporter({out!r}, sim, flush_interval_ns=10**18) as csv:
            while True:
                sim.run(until=sim.now + 10 * MS)
                csv.poll()
                if sim.now == 100 * MS:
                    open({out!r} + "/ready", "w").close()
    except KeyboardInterrupt:
        volume = sum(ev.qty for _, _, ev in sim.iter_events() if type(ev).__name__ == "Fill")
        json.dump({{"volume": volume, "now": sim.now}}, open({out!r} + "/done.json", "w"))
    """
)


def test_ctrl_c_on_a_running_process_keeps_every_row(tmp_path: Path) -> None:
    script = CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"), out=str(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "ready").exists():
            assert child.poll() is None and time.monotonic() < deadline, "child did not start"
            time.sleep(0.01)
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
    done = json.loads((tmp_path / "done.json").read_text())
    trades = read(tmp_path / "trades.csv")[1:]
    assert done["now"] > 100 * MS and sum(int(r[2]) for r in trades) == done["volume"] > 0
    assert {r[0] for r in read(tmp_path / "performance.csv")[1:]} == {seconds(done["now"])}


def test_several_symbols_get_one_directory_each(tmp_path: Path) -> None:
    sim = make_sim(seed=11, symbols=("XYZ", "ABC"))
    with CsvExporter(tmp_path, sim) as exporter:
        run_in_slices(sim, exporter, 600 * MS)
    assert not (tmp_path / "trades.csv").exists()
    accounts = sim.exchange.accounts
    for symbol in ("XYZ", "ABC"):
        trades = read(tmp_path / symbol / "trades.csv")
        assert trades[0] == TRADES_HEADER.split(",") and len(trades) - 1 == len(fills(sim, symbol)) > 0
        final = [r for r in read(tmp_path / symbol / "performance.csv")[1:] if r[0] == "0.600000000"]
        assert len(final) == 8
        for _, trader, position, cash, *_ in final:
            acct = accounts.by_trader[int(trader)]
            assert (int(position), Decimal(cash)) == (acct.position(symbol), Decimal(acct.cash) / 100)


# ---- plots ----------------------------------------------------------------------------------------------
def test_charts_are_written_as_png_files(tmp_path: Path) -> None:
    from report import Series, plot_all

    sim = make_sim(seed=12)
    sim.run(until=SECOND)
    paths = plot_all(sim, tmp_path / "plots", samples=50)
    assert [p.name for p in paths] == ["mid_spread_XYZ.png", "volume.png", "equity.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    series = Series.from_sim(sim, samples=50)
    marks = sim.exchange.marks()
    assert series.equity_times[-1] == SECOND and len(series.equity_times) == 50
    for trader, values in series.equity.items():
        assert values[-1] == sim.exchange.accounts.by_trader[trader].equity(marks)
        assert values[0] == 10**9
    book = sim.exchange.engines["XYZ"].book
    assert series.top["XYZ"][-1][1:] == (book.bids.best, book.asks.best)
    assert sum(q for _, q in series.fills["XYZ"]) == sum(f.qty for _, f in fills(sim))


def test_charts_of_an_empty_run_are_still_written(tmp_path: Path) -> None:
    from report import plot_all

    sim = Simulator(Exchange({"XYZ": nyse()}), [], seed=0)
    sim.run(until=SECOND)
    assert all(p.stat().st_size > 0 for p in plot_all(sim, tmp_path))


# ---- live view ------------------------------------------------------------------------------------------
def test_the_live_view_renders_ladders_trades_and_the_trader_table() -> None:
    sim = make_sim(seed=13, symbols=("XYZ", "ABC"))
    sim.run(until=300 * MS)
    console = Console(record=True, width=120)
    console.print(LiveView(sim))
    text = console.export_text()
    for expected in ("XYZ · fifo", "ABC last trades", "traders", "pos XYZ", "pos ABC", "unrealized", "equity", "t44"):
        assert expected in text, expected
    acct = sim.exchange.accounts.by_trader[1]
    assert f"{acct.cash / 100:,.2f}" in text


def test_run_live_runs_to_the_end_polling_the_exporter(tmp_path: Path) -> None:
    sim = make_sim(seed=14)
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True)
    with CsvExporter(tmp_path, sim) as exporter:
        run_live(sim, until=1_200 * MS, step_ns=50 * MS, exporter=exporter, console=console, refresh_per_second=0)
        assert sim.now == 1_200 * MS
        assert len(read(tmp_path / "trades.csv")) > 1  # flushed at 0.5 s and 1 s while running
    assert len(read(tmp_path / "trades.csv")) - 1 == len(fills(sim))
    assert "simulated time" in out.getvalue() and "1.200 / 1.200 s" in out.getvalue()

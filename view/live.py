"""A live terminal dashboard of a running simulation (rich).

``LiveView(sim)`` is a rich renderable: for each symbol the depth ladder with size bars and
the last trades, then one row per trader with the position in each symbol, cash, fees,
realized and unrealized PnL and equity, read from the venue's ``exchange.accounts`` and
marked with ``Exchange.marks()`` (mid, or last trade when a side is empty). Prices are
decimals (``spec.to_price``); money (cash units: price units x lots) is shown in currency,
scaled by the instruments' common ``price_scale`` (raw price units if they differ).

``run_live(sim, until)`` runs the simulator in slices of simulated time inside
``rich.live.Live``, redrawing the view and a progress bar of simulated time between slices.
Drawing happens only between slices, on the calling thread (no auto-refresh thread reads the
venue while it changes). Ctrl-C stops it with ``KeyboardInterrupt``; an exporter given as
``exporter`` is polled after each slice, and closing it (a ``with`` block) writes the rest.

    with CsvExporter("out", sim) as csv:
        run_live(sim, until=5 * SECOND, exporter=csv)
"""

from __future__ import annotations

import time
from collections import deque
from decimal import Decimal
from typing import Protocol

from rich.columns import Columns
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from exchange.accounts import Account
from exchange.events import Fill
from exchange.sim import MS, Simulator
from report.replay import money_scale, seconds
from view.ladder import ladder, trades_table


class _Pollable(Protocol):
    def poll(self) -> int: ...


class LiveView:
    """Ladders, trade tapes and the trader table of ``sim``, as one rich renderable.

    Arguments:
        sim: the simulator to show (read between ``run`` calls, never changed).
        depth: price levels per side in each ladder.
        trades: trades kept per symbol for the tape.
        max_traders: rows of the trader table (lowest trader ids first; the rest counted).
    """

    def __init__(self, sim: Simulator, *, depth: int = 8, trades: int = 10, max_traders: int = 20) -> None:
        self.sim = sim
        self.depth = depth
        self.max_traders = max_traders
        self.fills: dict[str, deque[Fill]] = {s: deque(maxlen=trades) for s in sim.exchange.engines}
        self.trade_count = 0
        self.volume = 0
        self._cursor = 0
        specs = [e.spec for e in sim.exchange.engines.values()]
        scale = money_scale(specs)
        self._scale = scale if scale is not None else Decimal(1)
        self._unit = "" if scale is not None else " (price units)"
        exponent = self._scale.normalize().as_tuple().exponent
        self._decimals = max(0, -exponent) if isinstance(exponent, int) else 0

    def update(self) -> None:
        """Read the simulator's log entries since the last call (trades for the tapes)."""
        log = self.sim.log
        for i in range(self._cursor, len(log)):
            _, symbol, events = log[i]
            tape = self.fills[symbol]
            for ev in events:
                if type(ev) is Fill:
                    tape.append(ev)
                    self.trade_count += 1
                    self.volume += ev.qty
        self._cursor = len(log)

    # ---- pieces ---------------------------------------------------------------------------------
    def books(self) -> Group:
        """For each symbol: its ladder beside its last trades."""
        engines = self.sim.exchange.engines
        return Group(
            *(
                Columns([ladder(engine, depth=self.depth), trades_table(engine, self.fills[s], title=f"{s} last trades")])
                for s, engine in engines.items()
            )
        )

    def _money(self, units: float) -> str:
        return f"{float(units) * float(self._scale):,.{self._decimals}f}"

    def trader_table(self) -> Table:
        """One row per trader: positions, cash, fees, realized, unrealized, equity."""
        exchange = self.sim.exchange
        accounts = exchange.accounts
        marks = exchange.marks()
        symbols = list(exchange.engines)
        table = Table(title=f"traders{self._unit}", show_edge=False, pad_edge=False)
        table.add_column("trader", justify="right")
        for s in symbols:
            table.add_column(f"pos {s}", justify="right")
        for name in ("cash", "fees", "realized", "unrealized", "equity", "PnL"):
            table.add_column(name, justify="right")
        traders = sorted({a.trader for a in self.sim.agents} | set(accounts.by_trader))
        for trader in traders[: self.max_traders]:
            start = accounts.starting_cash_of(trader)
            acct = accounts.by_trader.get(trader) or Account(trader, start)  # not active yet
            equity = acct.equity(marks)
            pnl = equity - start
            table.add_row(
                f"t{trader}",
                *(_signed(acct.position(s)) for s in symbols),
                self._money(acct.cash),
                self._money(acct.fees),
                self._money(acct.realized_pnl()),
                self._money(acct.unrealized_pnl(marks)),
                self._money(equity),
                Text(self._money(pnl), style="green" if pnl > 0 else "red" if pnl < 0 else ""),
            )
        if len(traders) > self.max_traders:
            table.caption = f"… and {len(traders) - self.max_traders} more traders"
        return table

    def status(self) -> Text:
        marks = self.sim.exchange.marks()
        engines = self.sim.exchange.engines
        shown = " · ".join(
            f"{s} mark {engines[s].spec.price_scale * Decimal(repr(m)) if m is not None else '—'}"
            for s, m in marks.items()
        )
        return Text(
            f"t = {seconds(self.sim.now)} s · {len(self.sim.log):,} commands · "
            f"{self.trade_count:,} trades · {self.volume:,} lots · {shown}",
            style="dim",
        )

    def renderable(self) -> Group:
        """The whole dashboard as it is now."""
        self.update()
        return Group(self.books(), self.trader_table(), self.status())

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.renderable()


def _signed(qty: int) -> Text:
    return Text(f"{qty:+d}" if qty else "0", style="green" if qty > 0 else "red" if qty < 0 else "")


def run_live(
    sim: Simulator,
    until: int,
    *,
    step_ns: int = 10 * MS,
    view: LiveView | None = None,
    exporter: _Pollable | None = None,
    console: Console | None = None,
    refresh_per_second: float = 10.0,
    pause_s: float = 0.0,
    transient: bool = False,
) -> Simulator:
    """Run ``sim`` up to ``until`` ns in steps of ``step_ns``, showing ``view`` live.

    After each step the exporter (if any) is polled, the progress bar moves to ``sim.now``
    and the dashboard is redrawn at most ``refresh_per_second`` times per wall-clock second
    (and once at the end). ``pause_s`` sleeps after each step, to watch a fast simulation.
    Returns ``sim``.
    """
    if step_ns <= 0:
        raise ValueError(f"step_ns must be positive, got {step_ns}")
    view = view if view is not None else LiveView(sim)
    progress = Progress(
        TextColumn("simulated time"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TimeElapsedColumn(),
        console=console,
    )

    def clock() -> str:
        return f"{seconds(sim.now)[:-6]} / {seconds(until)[:-6]} s"

    task = progress.add_task("sim", total=max(until, 1), completed=sim.now, clock=clock())
    frame: RenderableType = Group(view, progress)
    min_gap = 1.0 / refresh_per_second if refresh_per_second > 0 else 0.0
    with Live(frame, console=console, auto_refresh=False, transient=transient) as live:
        last = time.monotonic()
        while sim.now < until:
            sim.run(until=min(sim.now + step_ns, until))
            if exporter is not None:
                exporter.poll()
            progress.update(task, completed=sim.now, clock=clock())
            now = time.monotonic()
            if now - last >= min_gap:
                live.refresh()
                last = now
            if pause_s:
                time.sleep(pause_s)
        progress.update(task, completed=sim.now, clock=clock())
        live.refresh()
    return sim

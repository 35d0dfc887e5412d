"""``make demo``: a seeded market session on an NYSE-style and a CME-style instrument.

Market makers (Avellaneda-Stoikov), noise traders, a momentum and a mean-reversion trader
trade ``XYZ`` (``nyse``: price-time FIFO, cents) and ``ES`` (``cme``: pro rata with TOP,
quarter-point ticks) for a simulated session, far faster than real time. The books, the
trades and every trader's PnL are drawn live while it runs; then the PnL leaderboard is
printed and the CSV files (``trades.csv``, ``performance.csv`` per symbol) and plots (mid and
spread, volume, equity) are written to an output folder the demo names.

    python demo.py [--seconds 60] [--seed 7] [--out out/demo] [--fast]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agents import (
    AvellanedaStoikovMaker,
    MarketMakerConfig,
    MeanReversionConfig,
    MeanReversionTrader,
    MomentumConfig,
    MomentumTrader,
    NoiseConfig,
    NoiseTrader,
)
from exchange import cme, nyse
from exchange.accounts import FeeSchedule
from exchange.sim import MS, SECOND, Agent, Latency, Simulator
from exchange.venue import Exchange, MarginPolicy, RiskLimits
from report import CsvExporter, plot_all
from view import run_live

START = {"XYZ": 10_000, "ES": 500_000}  # $100.00 and 5000.00 in each instrument's price units


def market(seed: int) -> Simulator:
    """The demo venue and its traders (ids: makers 1-2 and 11-12, noise 3-6 and 13-16...)."""
    venue = Exchange(
        {"XYZ": nyse("XYZ"), "ES": cme("ES")},
        fees=FeeSchedule(maker_bps=-1, taker_bps=2),
        starting_cash=100_000_000,  # $1,000,000 in cents
        risk=RiskLimits(max_order_qty=200, max_position=400),
        margin=MarginPolicy(maintenance_bps=1_000),
    )
    agents: list[Agent] = []
    for base, symbol in ((1, "XYZ"), (11, "ES")):
        ref = START[symbol]
        agents += [
            AvellanedaStoikovMaker(base, symbol, MarketMakerConfig(reference_price=ref, gamma=0.05, quote_qty=8)),
            AvellanedaStoikovMaker(base + 1, symbol, MarketMakerConfig(reference_price=ref, gamma=0.2, quote_qty=5), latency=Latency(order_ns=2 * MS)),
            *(NoiseTrader(base + 2 + i, symbol, NoiseConfig(reference_price=ref, rate_hz=20.0)) for i in range(4)),
            MomentumTrader(base + 6, symbol, MomentumConfig(signal="trade_flow")),
            MeanReversionTrader(base + 7, symbol, MeanReversionConfig()),
        ]
    return Simulator(venue, agents, seed=seed)


def leaderboard(sim: Simulator) -> Table:
    """Traders by equity change, with what they are and what they hold."""
    venue = sim.exchange
    marks = venue.marks()
    scale = venue.engines["XYZ"].spec.price_scale
    table = Table(title=f"PnL leaderboard after {sim.now / SECOND:g} simulated seconds")
    for col in ("#", "trader", "strategy", "XYZ", "ES", "fills", "fees $", "PnL $"):
        table.add_column(col, justify="right" if col not in ("strategy",) else "left")
    kinds = {ctx.trader: type(ctx.agent).__name__ for ctx in sim._contexts}
    rows = []
    for trader, acct in venue.accounts.by_trader.items():
        pnl = (acct.equity(marks) - venue.accounts.starting_cash_of(trader)) * float(scale)
        rows.append((pnl, trader, acct))
    for rank, (pnl, trader, acct) in enumerate(sorted(rows, key=lambda r: -r[0]), 1):
        style = "green" if pnl > 0 else "red" if pnl < 0 else ""
        table.add_row(
            str(rank), str(trader), kinds.get(trader, "?") + (" (barred)" if trader in venue.barred else ""),
            str(acct.position("XYZ")), str(acct.position("ES")), str(acct.fills),
            f"{acct.fees * float(scale):,.2f}", f"[{style}]{pnl:,.2f}[/{style}]" if style else f"{pnl:,.2f}",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300, help="simulated seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="out/demo", help="folder for the CSV files and plots")
    parser.add_argument("--fast", action="store_true", help="no pause between frames")
    args = parser.parse_args(argv)
    console = Console()
    out = Path(args.out) / f"seed{args.seed}"
    sim = market(args.seed)
    with CsvExporter(out, sim) as csv:
        run_live(sim, args.seconds * SECOND, step_ns=500 * MS, exporter=csv, console=console, pause_s=0.0 if args.fast else 0.01)
    venue = sim.exchange
    venue.accounts.check_conservation()
    for engine in venue.engines.values():
        engine.check_invariants()
    console.print(leaderboard(sim))
    plots = plot_all(sim, out)
    fills = sum(1 for _, _, ev in sim.iter_events() if type(ev).__name__ == "Fill")
    console.print(
        f"{len(sim.log):,} orders and {sim.events_produced:,} exchange events ({fills:,} fills); "
        f"accounts conserved, books consistent."
    )
    console.print(f"CSV files and {len(plots)} plots written to [bold]{out}[/bold]:")
    for path in sorted(out.rglob("*")):
        if path.is_file():
            console.print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

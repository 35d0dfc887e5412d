"""PNG charts of a simulation: mid price and spread, traded volume, per-trader equity.

Everything is recomputed from the simulator's log by one replay (``report.replay.Replay``):
top of book from ``BookUpdate`` events, volume from ``Fill`` events, equity from a fresh
``exchange.accounts.Accounts`` (the venue's fees and starting cash) marked with
``exchange.accounts.mark_price`` at the reconstructed book. The simulator may be finished
or still running; the charts cover its log so far, from time 0 to ``sim.now``.

Figures are drawn on ``matplotlib.figure.Figure`` objects and saved with the Agg renderer,
never through ``pyplot``, so no window, global figure state or backend switch is involved.

    paths = plot_all(sim, "out/plots")  # [mid_spread_XYZ.png, ..., volume.png, equity.png]
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from exchange.events import BookUpdate, Fill
from exchange.sim import Simulator
from report.replay import NS_PER_S, Replay, money_scale

_DPI = 110
_LEGEND_MAX = 12  # more traders than this: legend names the best and worst five only


@dataclass
class Series:
    """Time series replayed from a simulator's log (times in ns, prices in price units).

    ``top[symbol]``: ``(time, bid, ask)`` at each change of the best prices (None: empty side).
    ``fills[symbol]``: ``(time, qty)`` per fill. ``equity_times`` and ``equity[trader]``:
    each trader's equity (cash units) at ``samples`` evenly spaced times from 0 to ``end``.
    """

    specs: dict
    end: int
    starting_cash: int
    money_scale: Decimal | None
    trader_cash: dict[int, int] = field(default_factory=dict)  # traders that started with other cash
    top: dict[str, list[tuple[int, int | None, int | None]]] = field(default_factory=dict)
    fills: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    equity_times: list[int] = field(default_factory=list)
    equity: dict[int, list[float]] = field(default_factory=dict)

    @classmethod
    def from_sim(cls, sim: Simulator, samples: int = 400) -> Series:
        """Replay ``sim.log`` once and sample what the charts need."""
        if samples < 2:
            raise ValueError(f"samples must be at least 2, got {samples}")
        exchange = sim.exchange
        replay = Replay(exchange)
        end = max(sim.now, sim.log[-1][0] if sim.log else 0)
        s = cls(
            specs=dict(replay.specs),
            end=end,
            starting_cash=exchange.accounts.starting_cash,
            trader_cash=dict(exchange.accounts.trader_cash),
            money_scale=money_scale(replay.specs.values()),
            top={sym: [] for sym in replay.specs},
            fills={sym: [] for sym in replay.specs},
        )
        traders = sorted({a.trader for a in sim.agents} | set(exchange.accounts.by_trader))
        accounts = [replay.accounts.account(t) for t in traders]  # open all: equity from t=0
        s.equity = {t: [] for t in traders}
        grid = [end * i // (samples - 1) for i in range(samples)]
        k = 0

        def sample_until(t: int) -> None:
            """Record equity at every grid time before ``t`` (state: entries fed so far)."""
            nonlocal k
            if k < len(grid) and grid[k] < t:
                marks = replay.marks()
                values = [a.equity(marks) for a in accounts]
                while k < len(grid) and grid[k] < t:
                    s.equity_times.append(grid[k])
                    for trader, v in zip(traders, values):
                        s.equity[trader].append(v)
                    k += 1

        for t, symbol, events in sim.log:
            sample_until(t)
            replay.feed(t, symbol, events)
            changed = False
            fills = s.fills[symbol]
            for ev in events:
                kind = type(ev)
                if kind is BookUpdate:
                    changed = True
                elif kind is Fill:
                    fills.append((t, ev.qty))  # type: ignore[attr-defined]
            if changed:
                bid, ask = replay.book[symbol].l1()
                top = s.top[symbol]
                if not top or top[-1][1:] != (bid, ask):
                    if top and top[-1][0] == t:
                        top[-1] = (t, bid, ask)
                    else:
                        top.append((t, bid, ask))
        sample_until(end + 1)
        return s


def _source(source: Simulator | Series) -> Series:
    return source if isinstance(source, Series) else Series.from_sim(source)


def _secs(ns: int) -> float:
    return ns / NS_PER_S


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes, color="grey")


def _save(fig: Figure, out_dir: str | os.PathLike[str], name: str) -> Path:
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    return path


def plot_mid_spread(source: Simulator | Series, out_dir: str | os.PathLike[str]) -> list[Path]:
    """One PNG per symbol: best bid/ask band and mid price (top), spread in ticks (bottom)."""
    s = _source(source)
    paths = []
    for symbol, top in s.top.items():
        spec = s.specs[symbol]
        scale = float(spec.price_scale)
        fig = Figure(figsize=(10, 6), layout="constrained")
        ax_mid, ax_spread = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
        fig.suptitle(f"{symbol}: mid price and spread")
        both = [(t, b, a) for t, b, a in top if b is not None and a is not None]
        if both:
            # hold the last state until the end of the run
            xs = [_secs(t) for t, _, _ in both] + [_secs(s.end)]
            bids = [b * scale for _, b, _ in both] + [both[-1][1] * scale]
            asks = [a * scale for _, _, a in both] + [both[-1][2] * scale]
            mids = [(b + a) / 2 for b, a in zip(bids, asks)]
            spreads = [(a - b) / spec.tick for _, b, a in both] + [(both[-1][2] - both[-1][1]) / spec.tick]
            ax_mid.fill_between(xs, bids, asks, step="post", alpha=0.25, color="tab:blue", label="best bid – best ask")
            ax_mid.step(xs, mids, where="post", color="tab:blue", linewidth=1.0, label="mid")
            ax_mid.legend(loc="upper left")
            ax_spread.step(xs, spreads, where="post", color="tab:orange", linewidth=1.0)
        else:
            _no_data(ax_mid, "two-sided book")
            _no_data(ax_spread, "spread")
        ax_mid.set_ylabel("price")
        ax_mid.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax_mid.grid(True, alpha=0.3)
        ax_spread.set_ylabel("spread (ticks)")
        ax_spread.set_xlabel("simulated time (s)")
        ax_spread.grid(True, alpha=0.3)
        ax_spread.set_xlim(0, max(_secs(s.end), 1e-9))
        paths.append(_save(fig, out_dir, f"mid_spread_{symbol}.png"))
    return paths


def _bucket(span_ns: int, target: int = 60) -> int:
    """A round bucket width (1, 2 or 5 x 10^k ns) giving about ``target`` buckets."""
    raw = max(1, span_ns // target)
    power = 10 ** int(math.floor(math.log10(raw)))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power  # pragma: no cover


def plot_volume(
    source: Simulator | Series, out_dir: str | os.PathLike[str], bucket_ns: int | None = None
) -> Path:
    """``volume.png``: lots traded per time bucket, one panel per symbol."""
    s = _source(source)
    bucket = bucket_ns if bucket_ns is not None else _bucket(max(s.end, 1))
    if bucket <= 0:
        raise ValueError(f"bucket_ns must be positive, got {bucket}")
    symbols = list(s.fills)
    fig = Figure(figsize=(10, 2.5 + 2 * len(symbols)), layout="constrained")
    axes: Sequence[Axes] = fig.subplots(len(symbols), 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(f"traded volume per {_secs(bucket):g} s")
    n = max(1, -(-s.end // bucket))  # a fill at exactly ``end`` counts in the last bucket
    for ax, symbol in zip(axes, symbols):
        totals = [0] * n
        for t, qty in s.fills[symbol]:
            totals[min(t // bucket, n - 1)] += qty
        if any(totals):
            ax.bar([_secs(i * bucket) for i in range(n)], totals, width=_secs(bucket), align="edge", color="tab:green", edgecolor="white", linewidth=0.3)
        else:
            _no_data(ax, "trades")
        ax.set_ylabel(f"{symbol} lots")
        ax.grid(True, axis="y", alpha=0.3)
    axes[-1].set_xlabel("simulated time (s)")
    axes[-1].set_xlim(0, max(_secs(n * bucket), 1e-9))
    return _save(fig, out_dir, "volume.png")


def plot_equity(source: Simulator | Series, out_dir: str | os.PathLike[str]) -> Path:
    """``equity.png``: each trader's equity minus starting cash (PnL after fees) over time."""
    s = _source(source)
    scale = float(s.money_scale) if s.money_scale is not None else 1.0
    unit = "currency" if s.money_scale is not None else "price units"
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    ax = fig.subplots()
    start = s.starting_cash * scale
    own = " where not set per trader" if s.trader_cash else ""
    fig.suptitle(f"per-trader equity minus its starting cash, marked to mid (starting cash {start:,.2f}{own})")
    xs = [_secs(t) for t in s.equity_times]
    curves = {t: [(v - s.trader_cash.get(t, s.starting_cash)) * scale for v in vals] for t, vals in s.equity.items()}
    if curves and xs:
        ranked = sorted(curves, key=lambda t: curves[t][-1], reverse=True)
        named = set(ranked) if len(ranked) <= _LEGEND_MAX else set(ranked[:5] + ranked[-5:])
        for trader in ranked:
            if trader in named:
                ax.plot(xs, curves[trader], linewidth=1.2, label=f"trader {trader}")
            else:
                ax.plot(xs, curves[trader], linewidth=0.6, color="grey", alpha=0.5)
        title = "final PnL, best first" if len(named) == len(ranked) else "best and worst five"
        ax.legend(title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
        ax.axhline(0, color="black", linewidth=0.6)
    else:
        _no_data(ax, "traders")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel(f"equity − starting cash ({unit})")
    ax.grid(True, alpha=0.3)
    return _save(fig, out_dir, "equity.png")


def plot_all(sim: Simulator, out_dir: str | os.PathLike[str], *, samples: int = 400) -> list[Path]:
    """Replay once and write every chart; returns the PNG paths."""
    s = Series.from_sim(sim, samples=samples)
    return [*plot_mid_spread(s, out_dir), plot_volume(s, out_dir), plot_equity(s, out_dir)]

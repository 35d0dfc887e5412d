"""Reports derived from a simulation's event log: CSV files and PNG charts (the I/O edge).

``exchange/`` computes, this package writes: ``CsvExporter`` appends ``trades.csv`` and
``performance.csv`` while a simulator runs, ``plot_all`` draws mid/spread, volume and
equity charts. Both rebuild past state by replaying the log (``report.replay``) through
``exchange.accounts``, the one module that computes money.
"""

from typing import Any

from report.csv_export import PERFORMANCE_HEADER, TRADES_HEADER, CsvExporter
from report.replay import Replay, TopOfBook, money_scale, seconds

_PLOTS = ("Series", "plot_all", "plot_equity", "plot_mid_spread", "plot_volume")


def __getattr__(name: str) -> Any:
    """Import ``report.plots`` (and matplotlib) only when a chart is asked for."""
    if name in _PLOTS:
        from report import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'report' has no attribute {name!r}")

__all__ = [
    "PERFORMANCE_HEADER",
    "TRADES_HEADER",
    "CsvExporter",
    "Replay",
    "Series",
    "TopOfBook",
    "money_scale",
    "plot_all",
    "plot_equity",
    "plot_mid_spread",
    "plot_volume",
    "seconds",
]

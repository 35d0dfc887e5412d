"""Terminal views (rich) of books and trades: what a person looks at, never what code reads."""

from view.ladder import ladder, trades_table
from view.live import LiveView, run_live

__all__ = ["LiveView", "ladder", "run_live", "trades_table"]

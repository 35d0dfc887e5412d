"""Terminal views (rich) of books and trades: what a person looks at, never what code reads."""

from view.ladder import ladder, trades_table

__all__ = ["ladder", "trades_table"]

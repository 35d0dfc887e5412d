"""``make demo`` runs end to end (a short session): leaderboard, CSV files and plots."""

from __future__ import annotations

import csv
from pathlib import Path

import demo


def test_demo_writes_csv_files_and_plots(tmp_path: Path, capsys) -> None:
    assert demo.main(["--seconds", "5", "--seed", "3", "--fast", "--out", str(tmp_path)]) == 0
    out = tmp_path / "seed3"
    for symbol in ("XYZ", "ES"):
        with open(out / symbol / "trades.csv") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["timestamp", "price", "qty", "buy_trader", "sell_trader"] and len(rows) > 1
        with open(out / symbol / "performance.csv") as f:
            assert next(csv.reader(f)) == ["timestamp", "trader_id", "position", "cash", "realized_pnl", "total_equity"]
    assert sorted(p.name for p in out.glob("*.png")) == ["equity.png", "mid_spread_ES.png", "mid_spread_XYZ.png", "volume.png"]
    assert "PnL leaderboard" in capsys.readouterr().out

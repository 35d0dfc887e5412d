"""The ``rgb_array`` picture of a trading environment: depth chart and the episode's mid price.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no window, no global
state), so it works headless and inside vector-env workers. One figure is reused for every
frame; ``close()`` releases it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from exchange.book import OrderBook

BID_COLOUR, ASK_COLOUR, MID_COLOUR = "#2e7d32", "#c62828", "#1565c0"


class RgbRenderer:
    """Draws one frame per call: the top ``levels`` of each side and the mid price so far."""

    def __init__(self, symbol: str, tick: int, levels: int = 10, size: tuple[int, int] = (640, 360)) -> None:
        self.symbol, self.tick, self.levels = symbol, tick, levels
        dpi = 80
        self.figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        self.depth_ax, self.mid_ax = self.figure.subplots(1, 2, width_ratios=(2, 3))

    def draw(self, book: OrderBook, mids: Sequence[float], position: int, status: str) -> np.ndarray:
        """The frame as an ``(height, width, 3)`` ``uint8`` array."""
        bids, asks = book.l2(self.levels)
        ax = self.depth_ax
        ax.clear()
        for rows, colour in ((bids, BID_COLOUR), (asks, ASK_COLOUR)):
            if rows:
                prices = [p / self.tick for p, _, _ in rows]
                ax.barh(prices, [q for _, q, _ in rows], height=0.8, color=colour)
        ax.set_title(f"{self.symbol} depth", fontsize=9)
        ax.set_xlabel("lots", fontsize=8)
        ax.set_ylabel("price (ticks)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")

        ax = self.mid_ax
        ax.clear()
        ax.plot(np.arange(len(mids)), np.asarray(mids, dtype=float) / self.tick, color=MID_COLOUR, linewidth=1.2)
        ax.set_title(f"mid price · position {position:+d}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        self.figure.suptitle(status, fontsize=8)
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        self.figure.clear()

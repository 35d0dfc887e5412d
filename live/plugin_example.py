"""An example bot plugin: quote a bid and an ask around the mid, re-quote on a timer.

Run it with ``python -m live.bots`` from a config entry such as

    {"name": "quoter", "token": "erin-demo-token", "plugin": "live.plugin_example:SpreadQuoter",
     "symbol": "XYZ", "params": {"symbol": "XYZ", "half_spread_ticks": 3, "qty": 5}}

``docs/BOT_INTEGRATION_GUIDE.md`` walks through it line by line.
"""

from __future__ import annotations

from live import protocol as P


class SpreadQuoter:
    """Keeps one bid ``half_spread_ticks`` below and one ask as far above the mid (or
    ``reference_price`` on an empty book), ``qty`` lots each, and stops quoting the side
    that would take its position past ``max_position``."""

    interval_s = 0.25  # on_timer period

    def __init__(self, symbol: str = "XYZ", half_spread_ticks: int = 3, qty: int = 5, max_position: int = 50,
                 reference_price: int = 10_000) -> None:
        self.symbols = [symbol]
        self.symbol = symbol
        self.half_spread_ticks = half_spread_ticks
        self.qty = qty
        self.max_position = max_position
        self.reference_price = reference_price
        self.fills = 0

    def on_start(self, bot) -> None:  # type: ignore[no-untyped-def]
        self.tick = bot.instruments[self.symbol].tick

    def on_timer(self, bot) -> None:  # type: ignore[no-untyped-def]
        book = bot.books[self.symbol]
        bid, ask = book.best_bid(), book.best_ask()
        mid = (bid + ask) // 2 if bid is not None and ask is not None else (book.last_price or self.reference_price)
        mid = mid // self.tick * self.tick
        offset = self.half_spread_ticks * self.tick
        for order in bot.orders.working():  # replace the old quotes
            bot.cancel(order.order_id)
        position = bot.position(self.symbol)
        if position + self.qty <= self.max_position:
            bot.buy(self.symbol, self.qty, mid - offset)
        if position - self.qty >= -self.max_position:
            bot.sell(self.symbol, self.qty, mid + offset)

    def on_order(self, bot, msg) -> None:  # type: ignore[no-untyped-def]
        if isinstance(msg, P.Fill):  # also: Accepted, Rejected, Cancelled, Modified, Error...
            self.fills += 1

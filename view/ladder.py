"""A depth ladder and a trade tape for one matching engine, as rich renderables."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from exchange import Fill, MatchingEngine

_BAR = 12  # width of the largest size bar, in characters


def _bar(qty: int, biggest: int, style: str, right: bool) -> Text:
    n = max(1, round(_BAR * qty / biggest)) if qty else 0
    bar = "█" * n
    return Text(bar.rjust(_BAR) if right else bar.ljust(_BAR), style=style)


def ladder(engine: MatchingEngine, depth: int = 8, title: str | None = None) -> Table:
    """Asks above bids, best prices in the middle, with order counts and size bars."""
    spec = engine.spec
    bids, asks = engine.book.l2(depth)
    biggest = max([q for _, q, _ in bids + asks] or [1])
    top_bid, top_ask = engine.top_order(1), engine.top_order(-1)
    table = Table(title=title or f"{spec.symbol} · {spec.rule.name}", expand=False, show_edge=False, pad_edge=False)
    for name, justify in (("#", "right"), ("", "right"), ("bid", "right"), ("price", "center"), ("ask", "left"), ("", "left"), ("#", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for price, qty, count in reversed(asks):
        table.add_row("", "", "", f"{spec.to_price(price)}", str(qty), _bar(qty, biggest, "red", False), str(count))
    if bids and asks:
        spread = (asks[0][0] - bids[0][0]) // spec.tick
        table.add_row("", "", "", Text(f"{spread} tick spread", style="yellow"), "", "", "", end_section=True)
    for price, qty, count in bids:
        table.add_row(str(count), _bar(qty, biggest, "green", True), str(qty), f"{spec.to_price(price)}", "", "", "")
    caption = []
    if spec.rule.uses_top:
        caption.append(f"TOP bid #{top_bid}" if top_bid is not None else "no TOP bid")
        caption.append(f"TOP ask #{top_ask}" if top_ask is not None else "no TOP ask")
    if engine.last_price is not None:
        caption.append(f"last {spec.to_price(engine.last_price)}")
    table.caption = " · ".join(caption)
    return table


def trades_table(engine: MatchingEngine, fills: Sequence[Fill], limit: int = 12, title: str = "last trades") -> Table:
    """The most recent fills, newest first: aggressor side, price, size, maker and taker."""
    spec = engine.spec
    table = Table(title=title, show_edge=False, pad_edge=False)
    for name, justify in (("seq", "right"), ("side", "left"), ("price", "right"), ("qty", "right"), ("maker → taker", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for f in list(fills)[-limit:][::-1]:
        side = Text("BUY", style="green") if f.aggressor == 1 else Text("SELL", style="red")
        table.add_row(str(f.seq), side, str(spec.to_price(f.price)), str(f.qty), f"t{f.maker_trader} → t{f.taker_trader}")
    return table

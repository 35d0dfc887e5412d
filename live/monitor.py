"""A read-only terminal monitor of the live exchange (rich).

    python -m live.monitor [--url ws://127.0.0.1:8766] [--symbols XYZ ES] [--depth 8]
                           [--seconds N | --once] [--starting-cash 100000000]

It subscribes to market data (the relay by default, or the exchange's ``/feed``) and shows,
redrawn four times a second: a CONNECTED / DISCONNECTED indicator (and the relay's link to
the exchange), for each symbol the depth ladder and the last trades, and one row per
trader from the exchange's ``performance`` messages: position per symbol, cash, fees,
realized PnL, equity, PnL since start (equity minus ``--starting-cash``) and volume.

Read-only by construction: it opens only the feed endpoint, holds no token and has no code
that builds a trading message (``live.protocol.decode_feed`` refuses them anyway). When the
connection drops it shows DISCONNECTED and reconnects with backoff (0.2 s doubling to 2 s),
starting again from fresh snapshots.

Headless use (tests, logs): ``--once`` prints one frame when the first snapshots and
performance are in (or after 3 s) and exits; ``--seconds N`` runs N seconds and prints the
final frame. Without a terminal, frames are printed as plain text.

``MonitorState`` holds what the screen shows and is fed decoded messages (``on_message``);
``render(state)`` draws it. Both are free of I/O, so recorded messages can be rendered too.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections import deque
from decimal import Decimal

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from live import protocol as P
from live.marketdata import SEQUENCED, L2Book

_BAR = 12


class MonitorState:
    """Everything the monitor shows, updated from feed messages (no I/O)."""

    def __init__(self, url: str = "", *, trades: int = 10, starting_cash: int = 100_000_000) -> None:
        self.url = url
        self.connected = False
        self.upstream: str | None = None  # relay only: its link to the exchange
        self.connects = 0
        self.received = 0
        self.gaps = 0
        self.starting_cash = starting_cash
        self.instruments: dict[str, P.Instrument] = {}
        self.books: dict[str, L2Book] = {}
        self.awaiting: set[str] = set()
        self.trades: dict[str, deque[P.Trade]] = {}
        self._keep = trades
        self.performance: P.Performance | None = None
        self.last_message = 0.0

    def on_connect(self) -> None:
        self.connected = True
        self.connects += 1
        self.awaiting.clear()

    def on_disconnect(self) -> None:
        self.connected = False

    def on_message(self, msg: P.ServerMessage) -> str | None:
        """Apply one message; returns a symbol whose book needs a snapshot (a gap), else None."""
        self.received += 1
        self.last_message = time.monotonic()
        t = type(msg)
        if t in SEQUENCED:
            symbol = msg.symbol  # type: ignore[union-attr]
            book = self.books.get(symbol)
            if book is None or symbol in self.awaiting:
                return None
            if not book.apply(msg):  # type: ignore[arg-type]
                self.gaps += 1
                self.awaiting.add(symbol)
                return symbol
            if t is P.Trade:
                self.trades.setdefault(symbol, deque(maxlen=self._keep)).append(msg)  # type: ignore[arg-type]
        elif t is P.BookSnapshot:
            book = self.books.setdefault(msg.symbol, L2Book(msg.symbol))  # type: ignore[union-attr]
            book.reset(msg)  # type: ignore[arg-type]
            self.awaiting.discard(msg.symbol)  # type: ignore[union-attr]
        elif t is P.Subscribed:
            self.instruments = {i.symbol: i for i in msg.instruments}  # type: ignore[union-attr]
            for s in msg.symbols:  # type: ignore[union-attr]
                self.books.setdefault(s, L2Book(s))
        elif t is P.Performance:
            self.performance = msg  # type: ignore[assignment]
        elif t is P.Status:
            self.upstream = msg.upstream  # type: ignore[union-attr]
        return None

    def price(self, symbol: str, units: int | float | None) -> str:
        if units is None:
            return "-"
        info = self.instruments.get(symbol)
        scale = Decimal(info.price_scale) if info is not None else Decimal(1)
        return f"{Decimal(units) * scale:f}" if isinstance(units, int) else f"{units * float(scale):.2f}"

    def money_scale(self) -> Decimal:
        scales = {i.price_scale for i in self.instruments.values()}
        return Decimal(scales.pop()) if len(scales) == 1 else Decimal(1)


def _bar(qty: int, biggest: int, style: str, right: bool) -> Text:
    n = max(1, round(_BAR * qty / biggest)) if qty else 0
    bar = "█" * n
    return Text(bar.rjust(_BAR) if right else bar.ljust(_BAR), style=style)


def ladder(state: MonitorState, symbol: str, depth: int = 8) -> Table:
    """Asks above bids, best prices in the middle (the look of ``view.ladder``, from an L2 book)."""
    book = state.books[symbol]
    bids, asks = book.levels()
    bids, asks = bids[:depth], asks[:depth]
    biggest = max([q for _, q, _ in bids + asks] or [1])
    info = state.instruments.get(symbol)
    title = f"{symbol} · {info.rule if info else ''} · seq {book.seq if book.seq is not None else '-'}"
    table = Table(title=title, show_edge=False, pad_edge=False)
    for name, justify in (("#", "right"), ("", "right"), ("bid", "right"), ("price", "center"), ("ask", "left"), ("", "left"), ("#", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for price, qty, count in reversed(asks):
        table.add_row("", "", "", state.price(symbol, price), str(qty), _bar(qty, biggest, "red", False), str(count))
    if bids and asks:
        tick = info.tick if info else 1
        table.add_row("", "", "", Text(f"{(asks[0][0] - bids[0][0]) // tick} tick spread", style="yellow"), "", "", "", end_section=True)
    for price, qty, count in bids:
        table.add_row(str(count), _bar(qty, biggest, "green", True), str(qty), state.price(symbol, price), "", "", "")
    if not bids and not asks:
        table.add_row("", "", "", Text("empty book", style="dim"), "", "", "")
    table.caption = f"last {state.price(symbol, book.last_price)}"
    return table


def trades_table(state: MonitorState, symbol: str) -> Table:
    """The last trades of ``symbol``, newest first."""
    table = Table(title=f"{symbol} last trades", show_edge=False, pad_edge=False)
    for name, justify in (("seq", "right"), ("side", "left"), ("price", "right"), ("qty", "right"), ("time", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for tr in list(state.trades.get(symbol, ()))[::-1]:
        side = Text("BUY", style="green") if tr.aggressor == "buy" else Text("SELL", style="red")
        table.add_row(str(tr.seq), side, state.price(symbol, tr.price), str(tr.qty), time.strftime("%H:%M:%S", time.localtime(tr.ts / 1e9)))
    return table


def traders_table(state: MonitorState) -> Table:
    """One row per trader from the last ``performance`` message."""
    perf = state.performance
    symbols = list(state.instruments) or sorted({s for t in (perf.traders if perf else ()) for s in t.positions})
    scale = state.money_scale()
    table = Table(title="traders" + (f" · performance #{perf.seq}" if perf else " · waiting for performance"), show_edge=False)
    table.add_column("trader")
    for s in symbols:
        table.add_column(f"pos {s}", justify="right")
    for name in ("cash", "fees", "realized", "equity", "PnL", "volume"):
        table.add_column(name, justify="right")
    if perf is None:
        return table

    def money(x: float | int) -> str:
        return f"{Decimal(str(x)) * scale:,.2f}"

    for t in perf.traders:
        pnl = t.equity - (t.starting_cash if t.starting_cash is not None else state.starting_cash)
        style = "green" if pnl > 0 else "red" if pnl < 0 else ""
        name = f"{t.name} ({t.trader})" + (" BARRED" if t.barred else "")
        table.add_row(name, *(str(t.positions.get(s, 0)) for s in symbols), money(t.cash), money(t.fees),
                      money(round(t.realized_pnl, 6)), money(round(t.equity, 6)), Text(money(round(pnl, 6)), style=style),
                      str(t.volume))
    return table


def render(state: MonitorState, depth: int = 8) -> RenderableType:
    """The whole screen."""
    if state.connected:
        status = Text(" CONNECTED ", style="bold black on green")
    else:
        status = Text(" DISCONNECTED ", style="bold white on red")
    header = Text.assemble(status, f"  {state.url}  ·  messages {state.received}  ·  connects {state.connects}  ·  gaps {state.gaps}")
    if state.upstream is not None:
        header.append(f"  ·  relay upstream {state.upstream}", style="green" if state.upstream == "connected" else "red")
    parts: list[RenderableType] = [header]
    grid = Table.grid(padding=(0, 4))
    symbols = list(state.books)
    for _ in symbols:
        grid.add_column()
    if symbols:
        grid.add_row(*(ladder(state, s, depth) for s in symbols))
        grid.add_row(*(trades_table(state, s) for s in symbols))
        parts.append(grid)
    parts.append(traders_table(state))
    return Group(*parts)


async def follow(state: MonitorState, symbols: list[str] | None, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Keep ``state`` up to date from the feed at ``state.url``; reconnect until ``stop``."""
    delay = 0.2
    while not stop.is_set():
        try:
            async with connect(state.url, compression=None, proxy=None, open_timeout=3, max_size=2**22) as ws:
                await ws.send(P.encode(P.Subscribe(symbols=symbols, req=1)), text=True)
                state.on_connect()
                delay = 0.2
                reader = asyncio.ensure_future(_read(ws, state, ready))
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait([reader, stopper], return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, asyncio.TimeoutError):
            pass
        if stop.is_set():
            return  # the final frame keeps the last link state
        state.on_disconnect()
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except asyncio.TimeoutError:
            pass
        delay = min(2.0, delay * 2)


async def _read(ws, state: MonitorState, ready: asyncio.Event | None) -> None:  # type: ignore[no-untyped-def]
    try:
        async for raw in ws:
            msg = P.decode_server(raw)
            gap = state.on_message(msg)
            if gap is not None:
                await ws.send(P.encode(P.SnapshotRequest(symbol=gap)), text=True)
            if ready is not None and state.performance is not None and all(b.seq is not None for b in state.books.values()):
                ready.set()
    except ConnectionClosed:
        pass


async def run(url: str, symbols: list[str] | None, *, seconds: float | None, once: bool, depth: int,
              starting_cash: int, console: Console) -> int:
    state = MonitorState(url, starting_cash=starting_cash)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.ensure_future(follow(state, symbols, stop, ready))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    try:
        if once:
            try:
                await asyncio.wait_for(ready.wait(), seconds if seconds is not None else 3.0)
            except asyncio.TimeoutError:
                pass
        elif console.is_terminal:
            from rich.live import Live

            with Live(render(state, depth), console=console, refresh_per_second=4, screen=False) as live:
                end = None if seconds is None else loop.time() + seconds
                while not stop.is_set() and (end is None or loop.time() < end):
                    await asyncio.sleep(0.25)
                    live.update(render(state, depth))
        else:
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except asyncio.TimeoutError:
                pass
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
    if once or not console.is_terminal:
        console.print(render(state, depth))
    return 0 if state.connects else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m live.monitor", description="Read-only monitor of the live exchange.")
    parser.add_argument("--url", default="ws://127.0.0.1:8766", help="the relay, or the exchange's /feed")
    parser.add_argument("--symbols", nargs="*", help="symbols to show (default: all)")
    parser.add_argument("--depth", type=int, default=8, help="levels per side")
    parser.add_argument("--seconds", type=float, help="stop after N seconds (with --once: wait at most N s)")
    parser.add_argument("--once", action="store_true", help="print one frame when the data is in, then exit")
    parser.add_argument("--starting-cash", type=int, default=100_000_000, help="PnL = equity - starting cash, for a server whose performance rows do not carry each trader's")
    parser.add_argument("--width", type=int, default=None, help="console width (default: the terminal's)")
    args = parser.parse_args(argv)
    console = Console(width=args.width) if sys.stdout.isatty() else Console(width=args.width or 160, color_system=None, force_terminal=False)
    return asyncio.run(run(args.url, args.symbols or None, seconds=args.seconds, once=args.once, depth=args.depth,
                           starting_cash=args.starting_cash, console=console))


if __name__ == "__main__":
    sys.exit(main())

"""``make demo``: replay a seeded order stream on the ``nyse`` and ``cme`` presets, live.

The stream is the benchmark's standard stream (passive limits, cancels, market and
marketable orders from 16 traders), scaled to each instrument's tick, with each venue's
own instructions mixed in: icebergs, post-only and IOC orders on nyse; icebergs, stops,
stop-limits and market-limit orders on cme. The books are drawn while they replay; a
summary of what each engine printed follows.

    python demo.py [--messages 20000] [--seed 7] [--fast]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import msgspec
from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from bench.stream import generate_stream
from exchange import (
    Fill,
    InstrumentSpec,
    MatchingEngine,
    NewOrder,
    OrderType,
    Rejected,
    TimeInForce,
    cme,
    nyse,
)
from view import ladder, trades_table


def venue_orders(spec: InstrumentSpec, rnd: random.Random, oid: int, near: int) -> NewOrder:
    """One order using an instruction the venue is known for, priced near ``near``."""
    side = rnd.choice((1, -1))
    trader = rnd.randint(1, 16)
    tick = spec.tick
    if spec.rule.name == "fifo":
        kind = rnd.choice(("iceberg", "post_only", "ioc"))
        if kind == "iceberg":
            return NewOrder(oid, trader, side, 40, near - side * tick, display_qty=5)
        if kind == "post_only":
            return NewOrder(oid, trader, side, 8, near - side * tick, post_only=True)
        return NewOrder(oid, trader, side, 12, near + side * tick, tif=TimeInForce.IOC)
    kind = rnd.choice(("iceberg", "stop", "stop_limit", "market_limit"))
    if kind == "iceberg":
        return NewOrder(oid, trader, side, 40, near - side * tick, display_qty=5)
    if kind == "market_limit":
        return NewOrder(oid, trader, side, 10, type=OrderType.MARKET_LIMIT)
    trigger = near + side * 3 * tick
    if kind == "stop":
        return NewOrder(oid, trader, side, 6, type=OrderType.STOP, stop_price=trigger)
    return NewOrder(oid, trader, side, 6, trigger + side * tick, type=OrderType.STOP_LIMIT, stop_price=trigger)


def demo_stream(spec: InstrumentSpec, messages: int, seed: int) -> list:
    """The standard stream scaled to ``spec.tick``, with a venue order every 50 messages."""
    rnd = random.Random(seed)
    out: list = []
    near = 10_000 * spec.tick
    extra_id = 10_000_000
    for i, c in enumerate(generate_stream(messages, seed).commands):
        if type(c) is NewOrder and c.price is not None:
            c = msgspec.structs.replace(c, price=c.price * spec.tick)
            near = c.price
        out.append(c)
        if i % 50 == 49:
            extra_id += 1
            out.append(venue_orders(spec, rnd, extra_id, near))
    return out


@dataclass
class Replay:
    """One preset's replay: its engine and what it printed."""

    name: str
    engine: MatchingEngine
    messages: int = 0
    kinds: Counter = field(default_factory=Counter)
    fills: list[Fill] = field(default_factory=list)
    rejects: Counter = field(default_factory=Counter)
    busy_s: float = 0.0

    def feed(self, commands: list) -> None:
        t0 = time.perf_counter()
        events = self.engine.submit_many(commands)
        self.busy_s += time.perf_counter() - t0
        self.messages += len(commands)
        for ev in events:
            self.kinds[type(ev).__name__] += 1
            if type(ev) is Fill:
                self.fills.append(ev)
            elif type(ev) is Rejected:
                self.rejects[str(ev.reason)] += 1

    def frame(self) -> Group:
        status = f"{self.messages:,} messages · {len(self.fills):,} fills · rejected: {dict(self.rejects) or 'none'}"
        return Group(Columns([ladder(self.engine, depth=8), trades_table(self.engine, self.fills)]), status)


def summary(replays: list[Replay]) -> Table:
    table = Table(title="what each engine printed")
    table.add_column("")
    for r in replays:
        table.add_column(r.name, justify="right")

    def line(label: str, values: list[object]) -> None:
        table.add_row(label, *[str(v) for v in values])

    line("messages", [r.messages for r in replays])
    for kind in ("Accepted", "Fill", "Cancelled", "Triggered", "Refreshed", "Rejected", "BookUpdate"):
        line(f"  {kind} events", [r.kinds[kind] for r in replays])
    volumes = [sum(f.qty for f in r.fills) for r in replays]
    line("volume (lots)", volumes)
    line(
        "VWAP",
        [r.engine.spec.to_price(sum(f.price * f.qty for f in r.fills) // max(1, v)) for r, v in zip(replays, volumes)],
    )
    line("resting orders", [len(r.engine.book.orders) for r in replays])
    line("replay speed (msgs/s)", [f"{r.messages / r.busy_s:,.0f}" for r in replays])
    line("book state hash", [r.engine.state_hash()[:16] for r in replays])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages of the standard stream")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fast", action="store_true", help="replay without pausing between frames")
    args = parser.parse_args()
    console = Console()
    replays = []
    for spec in (nyse("XYZ"), cme("ES")):
        replay = Replay(f"{spec.symbol} ({spec.rule.name})", MatchingEngine(spec))
        commands = demo_stream(spec, args.messages, args.seed)
        chunk = 250
        with Live(replay.frame(), console=console, refresh_per_second=12) as live:
            for i in range(0, len(commands), chunk):
                replay.feed(commands[i : i + chunk])
                live.update(replay.frame())
                if not args.fast:
                    time.sleep(0.02)
        replay.engine.check_invariants()
        console.print()
        console.print(f"[dim]{replay.name}: {replay.messages:,} messages replayed; book invariants hold.[/dim]\n")
        replays.append(replay)
    console.print(summary(replays))


if __name__ == "__main__":
    main()

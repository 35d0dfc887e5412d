"""Simulator benchmark: what the scheduler and agent dispatch add to the engine's cost.

    python -m bench.sim                    # 32 agents, 20 simulated seconds, 5 repeats
    python -m bench.sim --agents 8 --seconds 5 --json

Workload ("noise-32"): ``--agents`` lean noise traders on one ``nyse`` instrument, each
waking on exponential inter-arrival times (mean ``--interval-ms``), and sending either a
limit order 1 + Exp(mean 4) ticks from the mid on a random side (60%), a cancel of one of its
own live orders (30%), or a market order (10%). Each reads the book when it wakes and tracks
its live orders from its own order events (``--feed-share`` of the agents also take the
public feed, which they ignore: that is pure dispatch cost). Zero latency.

Measured in the same process, on the same orders:

- ``sim``: the full simulation (heap, agent callbacks, event delivery, accounts) from
  start to ``--seconds``, wall time per order that reached the exchange;
- ``engine``: the very commands the simulation sent (recorded in an untimed run with the
  same seed), replayed through a fresh ``MatchingEngine.submit_many`` in chunks;
- ``overhead_ratio`` = sim time per order / engine time per order (target <= 1.5: the
  scheduler and agent dispatch add at most 50% to the engine's own cost);
- ``engine_submit_us_per_order`` (beside, not instead of, the batch figure): the same
  commands through ``MatchingEngine.submit``, one call per order, as the venue sends them;
  the difference to ``engine`` is the engine's own per-call cost;
- ``dispatch_overhead_ratio``: the same orders sent at the same times by agents that
  decide nothing (each replays its recorded script), so the simulator's own cost (heap,
  callbacks, delivery, accounts) is measured without the noise traders' decisions;
- ``floor_overhead_ratio``: the same orders through the leanest event loop Python allows
  (``time_floor``: a heap of wake-ups, one plain call per order to an agent that hands back
  its next command, ``MatchingEngine.submit``, ``Accounts.apply``, the events handed back to
  the agent; no venue, log, latency, delivery to others or decisions, the collector off):
  what any simulator of per-agent Python callbacks on this engine costs at least.

Both simulations run with the simulator's default ``gc_threshold`` (the cyclic collector's
first threshold, raised while ``run`` works; see ``exchange.sim``); ``--gc-threshold none``
leaves the collector at Python's defaults, as the engine replay always does.

Runs are timed by wall clock, or with ``--clock cpu`` by the process's CPU time, which
other processes on a shared machine disturb much less.

``--json``: the last stdout line is one JSON object with ``events_per_s``,
``engine_msgs_per_s``, ``sim_orders_per_s``, ``overhead_ratio`` and the workload.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import statistics
import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.engine import machine_info
from exchange import Accepted, Cancel, Cancelled, Fill, MatchingEngine, NewOrder, OrderType, nyse
from exchange.accounts import Accounts
from exchange.sim import GC_THRESHOLD, MS, SECOND, Agent, Context, Simulator
from exchange.venue import Exchange

SYMBOL = "XYZ"
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = "wall"  # which of CLOCKS times the runs (``--clock``)
_MARKET = OrderType.MARKET


class NoiseAgent(Agent):
    """A lean noise trader: limit orders near the mid, cancels of its own, some market orders."""

    def __init__(self, trader: int, interval_ns: int, market_data: bool) -> None:
        super().__init__(trader)
        self.market_data = market_data
        self.symbols = (SYMBOL,)
        self.rate = 1.0 / interval_ns
        self.live: dict[int, None] = {}

    def on_start(self, ctx: Context) -> None:
        ctx.wake_in(1 + int(ctx.rng.expovariate(self.rate)))

    def on_wakeup(self, ctx: Context) -> None:
        rng = ctx.rng
        u = rng.random()
        if u < 0.3 and self.live:
            ctx.submit(SYMBOL, Cancel(next(iter(self.live)), self.trader))
        else:
            side = 1 if rng.random() < 0.5 else -1
            book = ctx.book(SYMBOL)
            bid, ask = book.bids.best, book.asks.best
            mid = (bid + ask) // 2 if bid is not None and ask is not None else (bid or ask or 10_000)
            if u > 0.9 and (ask if side == 1 else bid) is not None:
                ctx.submit(SYMBOL, NewOrder(ctx.next_order_id(), self.trader, side, rng.randint(1, 8), type=_MARKET))
            else:
                price = mid - side * (1 + int(rng.expovariate(0.25)))
                ctx.submit(SYMBOL, NewOrder(ctx.next_order_id(), self.trader, side, rng.randint(1, 8), price))
        ctx.wake_in(1 + int(rng.expovariate(self.rate)))

    def on_events(self, ctx: Context, symbol: str, events: list) -> None:
        live, me = self.live, self.trader
        for ev in events:
            t = type(ev)
            if t is Accepted:
                if ev.trader == me:
                    live[ev.order_id] = None
            elif t is Fill:
                if ev.maker_trader == me and ctx.sim.exchange.engines[SYMBOL].open_qty(ev.maker_id) == 0:
                    live.pop(ev.maker_id, None)
                if ev.taker_trader == me:
                    live.pop(ev.taker_id, None)
            elif t is Cancelled and ev.trader == me:
                live.pop(ev.order_id, None)


@dataclass(frozen=True)
class Workload:
    agents: int = 32
    seconds: int = 20
    interval_ms: float = 10.0
    seed: int = 7
    feed_share: float = 0.0  # fraction of agents subscribed to the public feed
    gc_threshold: int | None = GC_THRESHOLD  # the simulator's default (None: Python's GC defaults)

    def simulator(self, record: list | None = None) -> Simulator:
        """The workload's simulation; ``record`` collects ``(arrival ns, command)`` pairs."""
        venue = Exchange({SYMBOL: nyse(SYMBOL)}, starting_cash=10**12)
        feed = round(self.feed_share * self.agents)
        agents = [NoiseAgent(t, int(self.interval_ms * MS), market_data=t <= feed) for t in range(1, self.agents + 1)]
        sim = Simulator(venue, agents, seed=self.seed, gc_threshold=self.gc_threshold)
        if record is not None:
            submit = venue.submit

            def recording(symbol: str, command: object) -> list:
                record.append((sim.now, command))
                return submit(symbol, command)

            venue.submit = recording  # type: ignore[method-assign]
        return sim


class ScriptAgent(Agent):
    """Sends a fixed list of ``(time, command)`` at those times: dispatch with no decisions."""

    market_data = False

    def __init__(self, trader: int, script: list[tuple[int, object]]) -> None:
        super().__init__(trader)
        self.script = script
        self.i = 0

    def on_start(self, ctx: Context) -> None:
        if self.script:
            ctx.wake_at(self.script[0][0])

    def on_wakeup(self, ctx: Context) -> None:
        script, i = self.script, self.i
        ctx.submit(SYMBOL, script[i][1])
        self.i = i = i + 1
        if i < len(script):
            ctx.wake_at(script[i][0])

    def on_events(self, ctx: Context, symbol: str, events: list) -> None:
        pass


def script_simulator(recorded: list[tuple[int, object]], gc_threshold: int | None = Workload.gc_threshold) -> Simulator:
    """The recorded orders sent again by agents that decide nothing, at the same times."""
    scripts: dict[int, list[tuple[int, object]]] = {}
    for t, command in recorded:
        scripts.setdefault(command.trader, []).append((t, command))  # type: ignore[attr-defined]
    venue = Exchange({SYMBOL: nyse(SYMBOL)}, starting_cash=10**12)
    agents = [ScriptAgent(trader, script) for trader, script in sorted(scripts.items())]
    return Simulator(venue, agents, gc_threshold=gc_threshold)


def time_script(recorded: list[tuple[int, object]], until: int, gc_threshold: int | None = Workload.gc_threshold) -> float:
    sim = script_simulator(recorded, gc_threshold)
    t0 = CLOCKS[_clock]()
    sim.run(until=until)
    return CLOCKS[_clock]() - t0


class _FloorAgent:
    """The floor loop's agent: hands back its next scripted command and the time of the one after."""

    __slots__ = ("script", "i")

    def __init__(self, script: list[tuple[int, object]]) -> None:
        self.script, self.i = script, 0

    def wakeup(self) -> tuple[object, int | None]:
        script, i = self.script, self.i
        self.i = i + 1
        return script[i][1], script[i + 1][0] if i + 1 < len(script) else None

    def on_events(self, events: list) -> None:
        pass


def time_floor(recorded: list[tuple[int, object]]) -> float:
    """The recorded orders through the leanest discrete-event loop (module docstring):
    ``(time, trader)`` wake-ups on a heap, one agent call per order, the engine, the accounts."""
    scripts: dict[int, list[tuple[int, object]]] = {}
    for t, command in recorded:
        scripts.setdefault(command.trader, []).append((t, command))  # type: ignore[attr-defined]
    engine, accounts = MatchingEngine(nyse(SYMBOL)), Accounts(None, 10**12)
    submit, apply = engine.submit, accounts.apply
    agents = {trader: _FloorAgent(script) for trader, script in scripts.items()}
    heap = [(script[0][0], trader) for trader, script in scripts.items()]
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    gc.disable()
    try:
        t0 = CLOCKS[_clock]()
        while heap:
            _, trader = pop(heap)
            agent = agents[trader]
            command, due = agent.wakeup()
            events = submit(command)
            apply(SYMBOL, events)
            agent.on_events(events)
            if due is not None:
                push(heap, (due, trader))
        return CLOCKS[_clock]() - t0
    finally:
        gc.enable()


def time_sim(w: Workload) -> tuple[float, int, int]:
    sim = w.simulator()
    t0 = CLOCKS[_clock]()
    sim.run(until=w.seconds * SECOND)
    return CLOCKS[_clock]() - t0, len(sim.log), sim.events_produced


def time_engine(commands: list) -> float:
    engine = MatchingEngine(nyse(SYMBOL))
    t0 = CLOCKS[_clock]()
    for i in range(0, len(commands), 10_000):
        engine.submit_many(commands[i : i + 10_000])
    return CLOCKS[_clock]() - t0


def time_engine_calls(commands: list) -> float:
    """The commands through ``MatchingEngine.submit``, one call each (the venue's way)."""
    engine = MatchingEngine(nyse(SYMBOL))
    submit = engine.submit
    t0 = CLOCKS[_clock]()
    for command in commands:
        submit(command)
    return CLOCKS[_clock]() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulator overhead over the raw engine on the same orders.")
    parser.add_argument("--agents", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--feed-share", type=float, default=0.0, help="fraction of agents taking the public feed")
    parser.add_argument(
        "--gc-threshold", default=str(Workload.gc_threshold), help="the simulator's gc_threshold; 'none': Python's GC defaults"
    )
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="cpu: this process's CPU time (steadier on a shared machine)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    global _clock
    _clock = args.clock
    gc_threshold = None if args.gc_threshold.lower() == "none" else int(args.gc_threshold)
    w = Workload(args.agents, args.seconds, args.interval_ms, args.seed, args.feed_share, gc_threshold)
    console = Console(stderr=args.json)

    recorded: list[tuple[int, object]] = []
    w.simulator(record=recorded).run(until=w.seconds * SECOND)
    commands = [c for _, c in recorded]
    sims: list[float] = []
    scripts: list[float] = []
    engines: list[float] = []
    calls: list[float] = []
    floors: list[float] = []
    orders = events = 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("sim vs engine", total=args.repeats)
        for _ in range(args.repeats):
            gc.collect()  # each run starts with the previous runs' garbage gone (untimed)
            dt, orders, events = time_sim(w)
            sims.append(dt)
            gc.collect()
            scripts.append(time_script(recorded, w.seconds * SECOND, w.gc_threshold))
            gc.collect()
            engines.append(time_engine(commands))
            gc.collect()
            calls.append(time_engine_calls(commands))
            gc.collect()
            floors.append(time_floor(recorded))
            progress.advance(task)
    if orders != len(commands):
        raise SystemExit(f"the timed run sent {orders} orders, the recording {len(commands)}: not deterministic")
    sim_s, eng_s, script_s = statistics.median(sims), statistics.median(engines), statistics.median(scripts)
    ratios = [s / e for s, e in zip(sims, engines)]
    result = {
        "workload": f"noise-{w.agents}" + (f"-feed{w.feed_share:g}" if w.feed_share else ""),
        "feed_share": w.feed_share,
        "gc_threshold": w.gc_threshold,
        "clock": args.clock,
        "agents": w.agents,
        "simulated_seconds": w.seconds,
        "orders": orders,
        "events": events,
        "events_per_s": round(events / sim_s),
        "sim_orders_per_s": round(orders / sim_s),
        "engine_msgs_per_s": round(orders / eng_s),
        "sim_us_per_order": round(1e6 * sim_s / orders, 3),
        "engine_us_per_order": round(1e6 * eng_s / orders, 3),
        "engine_submit_us_per_order": round(1e6 * statistics.median(calls) / orders, 3),
        "overhead_ratio": round(sim_s / eng_s, 3),
        "overhead_ratio_paired_median": round(statistics.median(ratios), 3),
        "script_us_per_order": round(1e6 * script_s / orders, 3),
        "dispatch_overhead_ratio": round(script_s / eng_s, 3),
        "floor_us_per_order": round(1e6 * statistics.median(floors) / orders, 3),
        "floor_overhead_ratio": round(statistics.median(floors) / eng_s, 3),
        "speedup_vs_real_time": round(w.seconds / sim_s, 1),
        "repeats": args.repeats,
        "machine": machine_info(),
    }
    table = Table(title=f"simulator benchmark: {result['workload']}, {w.seconds} simulated s, median of {args.repeats}")
    for col in ("", "per order", "per second", "ratio"):
        table.add_column(col, justify="right")
    table.add_row("simulation", f"{result['sim_us_per_order']} µs", f"{result['sim_orders_per_s']:,} orders/s", f"{result['overhead_ratio']}x")
    table.add_row(
        "same orders, agents that decide nothing",
        f"{result['script_us_per_order']} µs",
        f"{round(orders / script_s):,} orders/s",
        f"{result['dispatch_overhead_ratio']}x",
    )
    floor_us = result["floor_us_per_order"]
    table.add_row(
        "same orders, leanest possible Python loop (floor)",
        f"{floor_us} µs",
        f"{round(1e6 / floor_us):,} orders/s",
        f"{result['floor_overhead_ratio']}x",
    )
    table.add_row("engine alone", f"{result['engine_us_per_order']} µs", f"{result['engine_msgs_per_s']:,} msgs/s", "1.00x")
    submit_us = result["engine_submit_us_per_order"]
    submit_ratio = submit_us / result["engine_us_per_order"]
    table.add_row("engine alone, one submit per order", f"{submit_us} µs", f"{round(1e6 / submit_us):,} msgs/s", f"{submit_ratio:.2f}x")
    table.add_row("exchange events", "", f"{result['events_per_s']:,} events/s", "")
    console.print(table)
    console.print(f"{orders:,} orders, {events:,} events; {result['speedup_vs_real_time']}x faster than real time; target overhead <= 1.5x")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Engine benchmark: our ``fifo`` and ``pro_rata`` engines against a minimal reference book.

    python -m bench.engine                 # 1M messages, 5 repeats
    python -m bench.engine --n 200000 --repeats 3 --json

The standard stream (``bench.stream``) is generated once (timed separately, not counted).
Each repeat then runs, in an order rotated per repeat so machine noise hits all of them
alike, a fresh ``ReferenceBook`` (``bench.reference``: SortedDict + deques, FIFO only), a
fresh ``MatchingEngine(nyse())`` (fifo) and a fresh ``MatchingEngine`` with CME pro rata
(algorithm A, min allocation 2, tick 1). Engines are driven through ``submit_many`` in
chunks (``--chunk`` commands per call) and their events are consumed as a caller would:
Fill quantities are summed and Rejected events counted, then the events are dropped.
Each run is timed with ``time.perf_counter`` over the whole stream; ``gc`` is left at its
defaults (a ``gc.collect()`` runs between runs, outside the timing).

The fifo engine must trade exactly the reference's volume (checked on every run). The
pro-rata engine allocates within a level differently, so the FIFO-generated cancels can
hit orders it already filled (``Rejected(unknown_order)``, counted and reported) and its
volume may differ slightly; it is reported, not asserted.

Figures are medians over the repeats; ratios are median engine msgs/s over median
reference msgs/s, measured in the same process. With ``--json`` the last stdout line is
one JSON object with at least ``fifo_msgs_per_s``, ``pro_rata_msgs_per_s``,
``reference_msgs_per_s``, ``fifo_vs_reference`` and ``pro_rata_vs_reference``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.reference import ReferenceBook
from bench.stream import DEFAULT_SEED, generate_stream
from exchange import Fill, MatchingEngine, Rejected, cme, nyse
from exchange.instrument import InstrumentSpec

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("reference", "fifo", "pro_rata")


def fifo_spec() -> InstrumentSpec:
    """NYSE preset: price-time FIFO, tick 1, lot 1."""
    return nyse()


def pro_rata_spec() -> InstrumentSpec:
    """CME preset (pro rata algorithm A, min allocation 2) with tick 1.

    ``market_as_protected=False`` keeps plain MARKET orders as in the stream (sweep, rest
    cancelled) instead of Globex's market-with-protection, whose remainder would rest.
    """
    return cme(tick=1, market_as_protected=False)


@dataclass
class RunResult:
    seconds: float
    volume: int
    rejected: int = 0


@dataclass
class EngineStats:
    name: str
    runs: list[RunResult] = field(default_factory=list)

    def rates(self, n: int) -> list[float]:
        return [n / r.seconds for r in self.runs]

    def median(self, n: int) -> float:
        return statistics.median(self.rates(n))


def run_reference(commands: list, chunk: int) -> RunResult:
    """Time a fresh reference book over the stream (its ``process`` batch entry, in chunks)."""
    book = ReferenceBook()
    process = book.process
    n = len(commands)
    vol = 0
    t0 = time.perf_counter()
    for i in range(0, n, chunk):
        vol += process(commands[i : i + chunk])
    dt = time.perf_counter() - t0
    return RunResult(dt, vol)


def run_engine(commands: list, chunk: int, spec: InstrumentSpec) -> RunResult:
    """Time a fresh engine over the stream via ``submit_many`` chunks, consuming the events."""
    engine = MatchingEngine(spec)
    submit_many = engine.submit_many
    n = len(commands)
    vol = rejected = 0
    t0 = time.perf_counter()
    for i in range(0, n, chunk):
        for e in submit_many(commands[i : i + chunk]):
            t = type(e)
            if t is Fill:
                vol += e.qty
            elif t is Rejected:
                rejected += 1
    dt = time.perf_counter() - t0
    return RunResult(dt, vol, rejected)


def runners(chunk: int) -> dict[str, Callable[[list], RunResult]]:
    fifo, pro = fifo_spec(), pro_rata_spec()
    return {
        "reference": lambda cmds: run_reference(cmds, chunk),
        "fifo": lambda cmds: run_engine(cmds, chunk, fifo),
        "pro_rata": lambda cmds: run_engine(cmds, chunk, pro),
    }


# ---- environment ---------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit() -> str:
    """Short HEAD commit, with ``-dirty`` if tracked files under ``exchange/`` or ``bench/`` changed."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "exchange", "bench"],
            cwd=ROOT, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return head + ("-dirty" if dirty else "")


def machine_info() -> dict:
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "commit": git_commit(),
    }


# ---- benchmark -----------------------------------------------------------------------------
def benchmark(
    n: int = 1_000_000,
    repeats: int = 5,
    seed: int = DEFAULT_SEED,
    chunk: int = 10_000,
    console: Console | None = None,
) -> dict:
    """Generate the stream, run every engine ``repeats`` times and return the result dict."""
    if n < 1 or repeats < 1 or chunk < 1:
        raise ValueError("n, repeats and chunk must be positive")
    quiet = console is None
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )
    stats = {name: EngineStats(name) for name in ENGINES}
    run = runners(chunk)
    with progress:
        gen = progress.add_task("generating stream", total=n)
        t0 = time.perf_counter()
        stream = generate_stream(n, seed, on_progress=lambda k: progress.update(gen, completed=k))
        gen_seconds = time.perf_counter() - t0
        commands = stream.commands
        expected = stream.stats.volume
        task = progress.add_task("running", total=repeats * len(ENGINES))
        for r in range(repeats):
            order = ENGINES[r % len(ENGINES) :] + ENGINES[: r % len(ENGINES)]
            for name in order:
                progress.update(task, description=f"repeat {r + 1}/{repeats}: {name}")
                gc.collect()  # leftovers of the previous run are not charged to this one
                res = run[name](commands)
                stats[name].runs.append(res)
                progress.advance(task)
                if name in ("reference", "fifo") and res.volume != expected:
                    raise AssertionError(
                        f"{name} traded {res.volume} lots, the stream's FIFO volume is {expected}"
                    )
    ref = stats["reference"].median(n)
    result: dict = {}
    for name in ENGINES:
        rates = stats[name].rates(n)
        med = statistics.median(rates)
        result[f"{name}_msgs_per_s"] = round(med)
        result[f"{name}_min_msgs_per_s"] = round(min(rates))
        result[f"{name}_max_msgs_per_s"] = round(max(rates))
        if name != "reference":
            result[f"{name}_vs_reference"] = round(med / ref, 3)
            paired = [r.seconds / e.seconds for e, r in zip(stats[name].runs, stats["reference"].runs)]
            result[f"{name}_vs_reference_paired_median"] = round(statistics.median(paired), 3)
    result.update(
        {
            "messages": n,
            "repeats": repeats,
            "seed": seed,
            "chunk": chunk,
            "generation_s": round(gen_seconds, 3),
            "reference_volume": stats["reference"].runs[-1].volume,
            "fifo_volume": stats["fifo"].runs[-1].volume,
            "pro_rata_volume": stats["pro_rata"].runs[-1].volume,
            "fifo_rejected": stats["fifo"].runs[-1].rejected,
            "pro_rata_rejected": stats["pro_rata"].runs[-1].rejected,
            "volume_match": stats["fifo"].runs[-1].volume == stats["reference"].runs[-1].volume,
            "gc": "defaults (enabled, thresholds %s)" % (gc.get_threshold(),),
            "stream": stream.stats.as_dict(),
            "machine": machine_info(),
        }
    )
    return result


def render(result: dict, console: Console) -> None:
    m, s = result["machine"], result["stream"]
    console.print(
        f"[bold]Engine benchmark[/bold]  {m['platform']} | {m['cpu']} ({m['cpus']} cpus) | "
        f"{m['implementation']} {m['python']} | commit {m['commit']}"
    )
    console.print(
        f"stream: {s['messages']:,} msgs, seed {s['seed']} (generated in {result['generation_s']:.1f} s, not timed) | "
        f"passive {s['passive_pct']:.1f}%, cancel {s['cancel_pct']:.1f}%, marketable {s['marketable_pct']:.1f}% "
        f"(market {s['market_pct']:.1f}%) | avg live orders {s['avg_live_orders']:,.0f} over "
        f"{s['avg_levels']:.1f} levels"
    )
    table = Table(title=f"msgs/s, median of {result['repeats']} interleaved runs (gc at defaults)")
    table.add_column("engine", no_wrap=True)
    table.add_column("msgs/s median", justify="right", no_wrap=True)
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    table.add_column("vs ref", justify="right")
    table.add_column("target", justify="right")
    table.add_column("volume", justify="right")
    table.add_column("rejects", justify="right")
    targets = {"fifo": 1.0, "pro_rata": 0.8}
    for name in ENGINES:
        if name == "reference":
            ratio, target, rejected = "1.00x", "-", "-"
        else:
            r = result[f"{name}_vs_reference"]
            style = "green" if r >= targets[name] else "red"
            ratio = f"[{style}]{r:.2f}x[/{style}]"
            target = f">= {targets[name]:.1f}x"
            rejected = f"{result[f'{name}_rejected']:,}"
        table.add_row(
            name,
            f"{result[f'{name}_msgs_per_s']:,}",
            f"{result[f'{name}_min_msgs_per_s']:,}",
            f"{result[f'{name}_max_msgs_per_s']:,}",
            ratio,
            target,
            f"{result[f'{name}_volume']:,}",
            rejected,
        )
    console.print(table)
    console.print(
        f"fifo volume {'==' if result['volume_match'] else '!='} reference volume; "
        f"pro_rata: {result['pro_rata_rejected']:,} cancel(s) hit orders it had already filled "
        f"(Rejected unknown_order). submit_many chunk {result['chunk']:,}; gc {result['gc']}."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="messages in the stream (default 1,000,000)")
    p.add_argument("--repeats", type=int, default=5, help="runs per engine, interleaved (default 5)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"stream seed (default {DEFAULT_SEED})")
    p.add_argument("--chunk", type=int, default=10_000, help="commands per submit_many call (default 10,000)")
    p.add_argument("--json", action="store_true", help="end the output with one JSON line")
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)
    result = benchmark(args.n, args.repeats, args.seed, args.chunk, console=console)
    render(result, console)
    if args.json:
        sys.stdout.flush()
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

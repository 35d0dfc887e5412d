"""Batched book benchmark: ``vector.book.step`` over B books against the scalar engine.

    python -m bench.vector                 # B = 1, 64, 1024, 4096 (and 16384 on a GPU), 3 repeats
    python -m bench.vector --quick         # smoke run: short streams, small batches
    python -m bench.vector --json          # last stdout line: one JSON object
    python -m bench.vector --compile       # the torch.compile'd step (book and env); compile time reported
    python -m bench.vector --dtype int64,int32   # book state dtypes (BookParams.dtype), each timed in every repeat
    python -m bench.vector --native-threads 1,2  # the C kernel's thread counts (default 1 and --threads)
    python -m bench.vector --no-native           # skip the C kernel (vector.native)

Workload ("small-book stream"): ``bench.stream.generate_stream`` with ``target_live=16``
(about 8 live orders per side instead of 2,000) and ``passive_ticks=3``, ``--steps``
messages per stream, ``--streams`` distinct seeds (``DEFAULT_SEED + k``). Book ``b`` of a
batch plays stream ``b % streams``: the same mix as the standard stream (54% passive
limits, 31% cancels, 15% marketable, half of them market orders), on books shallow enough
for a fixed capacity (``--capacity`` slots per side, 32 by default; the deepest side the
default streams reach is 19 orders, so nothing is refused for capacity, which is checked).

Timed, in the same process, each repeat: the scalar engine, a fresh ``MatchingEngine`` per
stream fed its whole stream through one ``submit_many`` call, its events consumed (Fill
quantities summed, Rejected counted); then for every B a fresh vector batch stepped
``--steps`` times, one command per book per step, the traded volume accumulated on the
device and read once at the end (the only host sync). Command tensors are built before
timing (an env builds its own from actions). Both must trade the same volume: the vector
total equals the sum of the scalar volumes of the streams its books play (checked on every
run). Figures are medians over the repeats; a ratio is vector msgs/s over scalar msgs/s,
both counting one message per command. With several ``--dtype`` values every repeat times
each of them back to back (the rows of ``batches`` carry their ``dtype``; the headline
``ratio_b4096_msgs`` is the first dtype's), so they compare under the same machine load.

On CPU, where ``vector.native`` can be built (a C compiler), every repeat also times the C
kernel ``native_step`` right after the torch step on the same commands, for each B, dtype
and ``--native-threads`` count, and checks the same volume: rows under ``native`` in the
JSON (``batches`` keeps the torch step's), headline ``native_ratio_b4096_msgs`` and
``native_msgs_per_s_b4096`` (first dtype, ``--threads`` threads); ``native`` is an empty
list and the headlines None where it is skipped or cannot be built (``native_skipped`` says why).

Then (unless ``--no-env``) ``bench.vector_env`` measures the vectorised ``Trading-v0`` at the
same batch sizes against the scalar env in the same process; its figures go under ``env``
in the JSON, and ``ratio_b4096_env``, ``env_steps_per_s_b4096`` (the env as it runs by
default: each step one C call, ``vector.native_env``, where a C compiler builds it on the
CPU, else the torch env; ``env_path`` says which; ``torch_env_steps_per_s_b4096`` the torch
env's) and ``msgs_per_step`` (book messages per env step, every participant counted) come from it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time

import torch
from rich.console import Console
from rich.table import Table

from bench import vector_env
from bench.engine import machine_info, pro_rata_spec
from bench.vector_env import tune_malloc
from bench.stream import DEFAULT_SEED, generate_stream
from exchange import Fill, MatchingEngine, Rejected, nyse
from vector import native
from vector.book import DTYPES, BookParams, Commands, Status, init, step_fn

BATCHES = (1, 64, 1024, 4096)
GPU_BATCHES = (*BATCHES, 16384)


def specs(rule: str):
    """The instrument of each rule: as ``bench.engine`` (nyse FIFO; cme pro rata, tick 1, plain market)."""
    return nyse() if rule == "fifo" else pro_rata_spec()


def make_streams(n_streams: int, steps: int, seed: int) -> list[list]:
    return [generate_stream(steps, seed + k, target_live=16, passive_ticks=3.0).commands for k in range(n_streams)]


def run_scalar(streams: list[list], spec) -> tuple[float, list[int], int]:
    """Seconds for a fresh engine per stream over its whole stream; per-stream volumes; rejects."""
    volumes = []
    rejected = 0
    t0 = time.perf_counter()
    for cmds in streams:
        vol = 0
        for e in MatchingEngine(spec).submit_many(cmds):
            t = type(e)
            if t is Fill:
                vol += e.qty
            elif t is Rejected:
                rejected += 1
        volumes.append(vol)
    return time.perf_counter() - t0, volumes, rejected


def batch_commands(streams: list[list], batch: int, device: str, dtype: str = "int64") -> list[Commands]:
    """Per-step ``Commands`` for ``batch`` books, book ``b`` playing stream ``b % len(streams)``,
    in ``dtype`` (the book's ``BookParams.dtype``)."""
    k, steps = len(streams), len(streams[0])
    base = Commands.from_records([streams[j][t] for t in range(steps) for j in range(k)], dtype=dtype)
    idx = torch.arange(batch) % k
    cols = Commands(*(f.view(steps, k)[:, idx].contiguous().to(device) for f in vars(base).values()))
    return [cols[t] for t in range(steps)]


def run_vector(params: BookParams, steps: list[Commands], batch: int, device: str, step=step_fn()) -> tuple[float, int, int]:
    """Seconds for ``len(steps)`` steps of a fresh batch; total volume; CAPACITY refusals
    (``step``: ``vector.book.step`` or ``compiled_step()``)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        state = init(params, batch, device)
        volume = torch.zeros(batch, dtype=torch.int64, device=device)
        sync()
        t0 = time.perf_counter()
        for cmd in steps:
            state, out = step(state, params, cmd)
            volume += out.filled
        total = int(volume.sum())  # the one host sync
        sync()
        dt = time.perf_counter() - t0
        refused = int((out.status == Status.CAPACITY).sum()) + int(state.overflow.sum())
    return dt, total, refused


def _rate_row(batch: int, dtype: str, rates: list[float], scalar: float) -> dict:
    """One batch size's figures from its runs' msgs/s: median, spread, step time, ratio to the scalar engine."""
    med = statistics.median(rates)
    return {
        "batch": batch,
        "dtype": dtype,
        "msgs_per_s": round(med),
        "min_msgs_per_s": round(min(rates)),
        "max_msgs_per_s": round(max(rates)),
        "step_us": round(batch / med * 1e6, 1),
        "ratio_vs_scalar": round(med / scalar, 3),
    }


def benchmark(
    steps: int = 200,
    n_streams: int = 64,
    capacity: int = 32,
    repeats: int = 3,
    batches: tuple[int, ...] | None = None,
    rule: str = "fifo",
    device: str = "cpu",
    threads: int | None = None,
    seed: int = DEFAULT_SEED,
    console: Console | None = None,
    compile: bool = False,
    dtypes: tuple[str, ...] = ("int64",),
    native_threads: tuple[int, ...] | None = (),
) -> dict:
    """Time the scalar engine, the torch step and (``native_threads``: thread counts, empty
    to skip) the C kernel in the same process; return the JSON result (module docstring)."""
    if threads is not None:
        torch.set_num_threads(threads)
    if batches is None:
        batches = GPU_BATCHES if device.startswith("cuda") else BATCHES
    say = console.print if console is not None else (lambda *a, **k: None)
    spec = specs(rule)
    params = {d: BookParams.from_spec(spec, capacity, dtype=d) for d in dtypes}
    t0 = time.perf_counter()
    streams = make_streams(n_streams, steps, seed)
    say(f"generated {n_streams} streams x {steps} msgs in {time.perf_counter() - t0:.1f} s (not timed)")
    per_batch = {(b, d): batch_commands(streams, b, device, d) for b in batches for d in dtypes}
    fn = step_fn(compile)
    compile_s: dict[tuple[int, str], float] = {}
    if compile:  # the first call at each batch size and dtype compiles: untimed, its seconds reported
        for b in batches:
            for d in dtypes:
                t0 = time.perf_counter()
                run_vector(params[d], per_batch[b, d][:1], b, device, fn)
                compile_s[b, d] = round(time.perf_counter() - t0, 1)
                say(f"compiled the step for B={b} {d} in {compile_s[b, d]} s (not timed)")
    native_skipped = None
    if native_threads and device != "cpu":
        native_skipped, native_threads = f"device {device}: the C kernel is CPU only", ()
    elif native_threads and not native.available():
        try:
            native.library()
        except native.NativeUnavailable as e:
            native_skipped, native_threads = str(e).splitlines()[0], ()
    elif not native_threads:
        native_skipped = "not asked for"
    native_threads = tuple(native_threads or ())
    scalar_runs: list[float] = []
    vector_runs: dict[tuple[int, str], list[float]] = {(b, d): [] for b in batches for d in dtypes}
    native_runs: dict[tuple[int, str, int], list[float]] = {(b, d, t): [] for b in batches for d in dtypes for t in native_threads}
    volumes: list[int] = []
    for r in range(repeats):
        dt, volumes, scalar_rejected = run_scalar(streams, spec)
        scalar_runs.append(n_streams * steps / dt)
        for b in batches:
            for d in dtypes:
                dt, total, refused = run_vector(params[d], per_batch[b, d], b, device, fn)
                expected = sum(volumes[j % n_streams] for j in range(b))
                if total != expected:
                    raise AssertionError(f"B={b} {d}: vector traded {total} lots, the scalar engine {expected}")
                if refused:
                    raise AssertionError(f"B={b} {d}: {refused} capacity refusals; raise --capacity")
                vector_runs[b, d].append(b * steps / dt)
                say(f"repeat {r + 1}/{repeats}  B={b:>6,} {d}  {b * steps / dt:>12,.0f} msgs/s")
                for t in native_threads:
                    fn_native = functools.partial(native.native_step, threads=t)
                    dt, total, refused = run_vector(params[d], per_batch[b, d], b, device, fn_native)
                    if total != expected or refused:
                        raise AssertionError(f"B={b} {d} native: traded {total} lots (engine {expected}), {refused} refusals")
                    native_runs[b, d, t].append(b * steps / dt)
                    say(f"repeat {r + 1}/{repeats}  B={b:>6,} {d}  native {t} thread(s)  {b * steps / dt:>12,.0f} msgs/s")
    scalar = statistics.median(scalar_runs)
    rows = []
    for b in batches:
        for d in dtypes:
            rows.append({**_rate_row(b, d, vector_runs[b, d], scalar), "compile_s": compile_s.get((b, d))})
    by_b = {row["batch"]: row for row in rows if row["dtype"] == dtypes[0]}
    native_rows = []
    for (b, d, t), rates in native_runs.items():
        torch_med = statistics.median(vector_runs[b, d])
        native_rows.append({**_rate_row(b, d, rates, scalar), "threads": t,
                            "ratio_vs_torch": round(statistics.median(rates) / torch_med, 3)})
    head_threads = threads if threads in native_threads else (native_threads[-1] if native_threads else None)
    native_b = {row["batch"]: row for row in native_rows if row["dtype"] == dtypes[0] and row["threads"] == head_threads}
    return {
        "workload": "small-book stream (bench.stream, target_live=16, passive_ticks=3)",
        "rule": rule,
        "steps": steps,
        "streams": n_streams,
        "capacity": capacity,
        "repeats": repeats,
        "seed": seed,
        "device": device,
        "compile": compile,
        "dtypes": list(dtypes),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "scalar_msgs_per_s": round(scalar),
        "scalar_min_msgs_per_s": round(min(scalar_runs)),
        "scalar_max_msgs_per_s": round(max(scalar_runs)),
        "scalar_rejected": scalar_rejected,
        "stream_volume": sum(volumes),
        "batches": rows,
        "ratio_b4096_msgs": by_b[4096]["ratio_vs_scalar"] if 4096 in by_b else None,
        "msgs_per_s_b4096": by_b[4096]["msgs_per_s"] if 4096 in by_b else None,
        "book_msgs_per_step": 1,  # book commands per book per vector book step
        "msgs_per_step": None,  # the vectorised env's figures: filled in by main() from bench.vector_env
        "ratio_b4096_env": None,
        "env_steps_per_s_b4096": None,
        "native": native_rows,  # the C kernel (vector.native), same commands and repeats
        "native_skipped": native_skipped,
        "native_threads": head_threads,  # the threads of the native headlines
        "native_ratio_b4096_msgs": native_b[4096]["ratio_vs_scalar"] if 4096 in native_b else None,
        "native_msgs_per_s_b4096": native_b[4096]["msgs_per_s"] if 4096 in native_b else None,
        "machine": machine_info(),
    }


def render(result: dict, console: Console) -> None:
    m = result["machine"]
    console.print(
        f"[bold]Vector book benchmark[/bold] ({'compiled' if result.get('compile') else 'eager'} step)  {m['platform']} | {m['cpu']} ({m['cpus']} cpus) | "
        f"torch {result['torch']} on {result['device']}, {result['threads']} threads | commit {m['commit']}"
    )
    console.print(
        f"{result['workload']}: {result['streams']} streams x {result['steps']} msgs, rule {result['rule']}, "
        f"capacity {result['capacity']} per side; scalar engine {result['scalar_msgs_per_s']:,} msgs/s "
        f"(min {result['scalar_min_msgs_per_s']:,}, max {result['scalar_max_msgs_per_s']:,})"
    )
    table = Table(title=f"aggregate msgs/s, median of {result['repeats']} (same volume as the engine on every run)")
    for col in ("B", "dtype", "msgs/s", "min", "max", "µs/step", "vs scalar"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in result["batches"]:
        r = row["ratio_vs_scalar"]
        style = "green" if r >= 10 else "yellow" if r >= 1 else "red"
        table.add_row(
            f"{row['batch']:,}",
            row.get("dtype", "int64"),
            f"{row['msgs_per_s']:,}",
            f"{row['min_msgs_per_s']:,}",
            f"{row['max_msgs_per_s']:,}",
            f"{row['step_us']:,.0f}",
            f"[{style}]{r:.2f}x[/{style}]",
        )
    console.print(table)
    if result["ratio_b4096_msgs"] is not None:
        console.print(
            f"target at B=4096: >= 10x the scalar engine; measured {result['ratio_b4096_msgs']:.2f}x ({result['dtypes'][0]})"
        )
    if result.get("native"):
        table = Table(title=f"the C kernel (vector.native): aggregate msgs/s, median of {result['repeats']}, same run")
        for col in ("B", "dtype", "threads", "msgs/s", "min", "max", "µs/step", "vs scalar", "vs torch"):
            table.add_column(col, justify="right", no_wrap=True)
        for row in result["native"]:
            r = row["ratio_vs_scalar"]
            style = "green" if r >= 10 else "yellow" if r >= 1 else "red"
            table.add_row(
                f"{row['batch']:,}", row["dtype"], str(row["threads"]), f"{row['msgs_per_s']:,}", f"{row['min_msgs_per_s']:,}",
                f"{row['max_msgs_per_s']:,}", f"{row['step_us']:,.0f}", f"[{style}]{r:.2f}x[/{style}]", f"{row['ratio_vs_torch']:.2f}x",
            )
        console.print(table)
        if result["native_ratio_b4096_msgs"] is not None:
            console.print(
                f"C kernel at B=4096 ({result['dtypes'][0]}, {result['native_threads']} threads): "
                f"{result['native_ratio_b4096_msgs']:.2f}x the scalar engine"
            )
    elif result.get("native_skipped"):
        console.print(f"C kernel not timed: {result['native_skipped']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.vector", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200, help="messages per stream = steps per run (default 200)")
    p.add_argument("--streams", type=int, default=64, help="distinct streams (default 64)")
    p.add_argument("--capacity", type=int, default=32, help="order slots per side (default 32)")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure (default 3)")
    p.add_argument("--batches", type=str, default=None, help="comma-separated B values")
    p.add_argument("--rule", choices=("fifo", "pro_rata"), default="fifo")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch CPU threads")
    p.add_argument("--quick", action="store_true", help="smoke run: 30 steps, B = 1, 64, 256, 1 repeat")
    p.add_argument("--json", action="store_true", help="end the output with one JSON line")
    p.add_argument("--no-env", action="store_true", help="book figures only (skip bench.vector_env)")
    p.add_argument("--compile", action="store_true", help="time vector.book.compiled_step() (torch.compile) instead of the eager step")
    p.add_argument("--native-threads", default=None, help="comma-separated thread counts of the C kernel (default: 1 and --threads)")
    p.add_argument("--no-native", action="store_true", help="skip the C kernel (vector.native)")
    p.add_argument(
        "--dtype", default="int64",
        help="comma-separated book state dtypes, BookParams.dtype: int64 (default), int32 (half the memory traffic, "
        "prices below 2**30, ids below 2**31); each is timed in every repeat",
    )
    args = p.parse_args(argv)
    dtypes = tuple(d.strip() for d in args.dtype.split(","))
    if args.no_native:
        native_threads: tuple[int, ...] = ()
    elif args.native_threads:
        native_threads = tuple(int(t) for t in args.native_threads.split(","))
    else:
        native_threads = tuple(dict.fromkeys((1, args.threads)))
    for d in dtypes:
        if d not in DTYPES:
            p.error(f"--dtype: {d!r} is not one of {sorted(DTYPES)}")
    torch.set_num_threads(args.threads)
    tune_malloc()
    batches = tuple(int(b) for b in args.batches.split(",")) if args.batches else None
    steps, repeats, n_streams = args.steps, args.repeats, args.streams
    if args.quick:
        steps, repeats, n_streams, batches = 30, 1, 16, batches or (1, 64, 256)
    console = Console(width=None if sys.stdout.isatty() else 120)
    result = benchmark(
        steps, n_streams, args.capacity, repeats, batches, args.rule, args.device, args.threads, console=console,
        compile=args.compile, dtypes=dtypes, native_threads=native_threads,
    )
    render(result, console)
    if not args.no_env:  # the vectorised env on the same batch sizes, with its own scalar-env baseline
        env_batches = batches or (vector_env.GPU_BATCHES if args.device.startswith("cuda") else vector_env.BATCHES)
        budget, scalar_steps = (640, 300) if args.quick else (100_000, 5_000)
        env = vector_env.benchmark(
            env_batches, args.device, repeats, budget, scalar_steps, 0, args.capacity, console, compile=args.compile,
            native_threads=args.threads,
        )
        vector_env.render(env, console)
        result.update(
            env=env,
            msgs_per_step=env["msgs_per_step"],
            ratio_b4096_env=env["ratio_b4096_env"],
            env_steps_per_s_b4096=env["env_steps_per_s_b4096"],
            env_path=env["env_path"],
            torch_env_steps_per_s_b4096=env["torch_env_steps_per_s_b4096"],
        )
    if args.json:
        sys.stdout.flush()
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Vector environment benchmark: env steps/s of ``vector.env.VectorTradingEnv`` per batch size,
against the scalar ``exchange/Trading-v0`` measured in the same run.

    python -m bench.vector_env                    # B = 1, 64, 1024, 4096 (+16384 on a GPU), 3 repeats
    python -m bench.vector_env --quick --json     # a smoke run
    python -m bench.vector_env --compile          # VectorTradingEnv(compile=True)
    python -m bench.vector_env --dtype int64      # int64 books (default: the env's, int32 where it fits)
    python -m bench.vector_env --no-native        # the torch env only (no C compiler needed)

Workload ``light`` on both sides: the scalar env with ``background="flow"`` (``envs.flow``:
the scalar twin of ``vector.background.LIGHT``, the same noise traders and
Avellaneda-Stoikov maker, about 5 book messages per step; ``bench.envs``'s ``light_flow``)
and random actions, which is the ratio's baseline; the scalar env with the scripted-agent
background (``bench.envs``'s ``light``) is measured too and reported beside it
(``scalar_scripted_env_steps_per_s``, ``vs_scalar_scripted_env``); the vector env with
``vector.background.LIGHT`` and uniformly random actions drawn on
the device before the clock starts (a pool of 16 batches, cycled). Both count resets
(episodes of 1000 steps; the vector env auto-resets by masked select inside ``step``).
Each figure is the median over ``--repeats``; the ratio is the vector median over the scalar
median of the same run, so machine noise largely cancels out of it. Every batch size first
gets an untimed run of 5 steps, and ``tune_malloc`` raises glibc's mmap and trim thresholds
first: with the defaults, runs at B >= 1024 on CPU were up to 30x slower, at random, while
malloc handed the large tensors back to the kernel after every op and faulted them in again
(``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824`` in the environment
does the same for a training run).

Two envs per batch size, in every repeat one right after the other with the same seed: the
torch env (``native=False``; with ``--compile``, ``compile=True``), and, on the CPU where a C
compiler builds ``vector.native_env`` (unless ``--no-native``), the env as it runs by default
there, ``native=True``: each step one C call (``--native-threads`` OpenMP threads, default
``--threads``), the torch
env's results bit for bit. ``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` in this process: the
kernel's OpenMP threads and torch's otherwise spin against each other on a 2-core machine.

``--json``: the last stdout line is one JSON object with ``env_steps_per_s_b4096`` and
``ratio_b4096_env`` (the default env: native where it ran, else torch; ``env_path`` says
which), ``torch_env_steps_per_s_b4096`` and ``torch_ratio_b4096_env``, ``msgs_per_step``,
``trades_per_step``, ``device``, ``scalar_env_steps_per_s``, ``per_batch`` (the torch env,
per B: env steps/s, msgs and trades per step, seconds per step, overflowed books),
``native_per_batch`` (the same for the native env, plus ``vs_torch``; empty where
``native_skipped`` says why) and the machine.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import time
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # (before an OpenMP runtime loads; see the docstring)

import torch  # noqa: E402
from rich.console import Console
from rich.table import Table

from bench.engine import machine_info

BATCHES = (1, 64, 1024, 4096)
GPU_BATCHES = BATCHES + (16384,)


def tune_malloc() -> bool:
    """Keep glibc's malloc from handing large blocks back to the kernel after every tensor op
    (``mallopt`` mmap threshold 32 MiB, trim threshold 1 GiB); False where that is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, 32 << 20)) and bool(libc.mallopt(-1, 1 << 30))  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return False


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_vector_env(
    batch: int, steps: int, device: str, seed: int, capacity: int = 32, compile: bool = False, dtype: str | None = None,
    native: bool = False, native_threads: int = 1,
) -> dict[str, float]:
    """Env steps/s of ``VectorTradingEnv(batch)`` (light background) with random actions."""
    from vector.env import VectorTradingEnv

    dev = torch.device(device)
    env = VectorTradingEnv(
        batch, device=dev, capacity=capacity, compile=compile, dtype=dtype, native=native, native_threads=native_threads
    )
    gen = torch.Generator(device=dev).manual_seed(seed)
    nvec = torch.tensor(env.params.nvec(), device=dev)
    pool = [(torch.rand((batch, len(nvec)), generator=gen, device=dev) * nvec).long() for _ in range(16)]
    env.reset(seed=seed)
    for a in pool[:3]:  # warm-up (allocator, caches)
        env.step(a)
    msgs = torch.zeros((), dtype=torch.int64, device=dev)
    trades = torch.zeros((), dtype=torch.int64, device=dev)
    _sync(dev)
    t0 = time.perf_counter()
    for k in range(steps):
        _, _, _, _, info = env.step(pool[k % 16])
        msgs += info["messages"].sum()
        trades += info["trades"].sum()
    _sync(dev)
    seconds = time.perf_counter() - t0
    n = steps * batch
    assert env.state is not None
    return {
        "batch": batch,
        "steps": steps,
        "env_steps_per_s": n / seconds,
        "ms_per_step": 1e3 * seconds / steps,
        "msgs_per_step": int(msgs) / n,
        "trades_per_step": int(trades) / n,
        "book_msgs_per_s": int(msgs) / seconds,
        "overflowed_books": int(env.state.book.overflow.sum()),
        "dtype": env.params.book.dtype,
    }


def measure_scalar_env(steps: int, seed: int, workload: str = "light_flow") -> dict[str, float]:
    """Steps/s of ``exchange/Trading-v0`` with a light background (``bench.envs``'s
    ``light_flow``, the vector background's scalar twin, or ``light``, scripted agents)."""
    from bench.envs import measure_single

    return measure_single(workload, steps, seed)


def steps_for(batch: int, budget: int) -> int:
    """Vector steps to time at ``batch``: about ``budget`` env steps, at least 10, at most 300."""
    return max(10, min(300, budget // batch))


def _batch_row(rs: list[dict[str, float]], base: float, base_scripted: float, warmup_s: float) -> dict[str, Any]:
    """One batch size's row from its runs: medians, spread, and the ratios to the scalar env's medians."""
    sps = statistics.median(x["env_steps_per_s"] for x in rs)
    return {
        "env_steps_per_s": round(sps),
        "min": round(min(x["env_steps_per_s"] for x in rs)),
        "max": round(max(x["env_steps_per_s"] for x in rs)),
        "ms_per_step": round(statistics.median(x["ms_per_step"] for x in rs), 3),
        "msgs_per_step": round(statistics.median(x["msgs_per_step"] for x in rs), 3),
        "trades_per_step": round(statistics.median(x["trades_per_step"] for x in rs), 3),
        "book_msgs_per_s": round(statistics.median(x["book_msgs_per_s"] for x in rs)),
        "steps": rs[0]["steps"],
        "overflowed_books": max(x["overflowed_books"] for x in rs),
        "vs_scalar_env": round(sps / base, 3),
        "vs_scalar_scripted_env": round(sps / base_scripted, 3),
        "warmup_s": warmup_s,  # the untimed first run (with --compile: includes compiling)
    }


def native_skip_reason(device: str) -> str | None:
    """Why the native env cannot be measured here (None: it can)."""
    from vector import native, native_env

    if torch.device(device).type != "cpu":
        return f"device {device}: the native env is CPU only"
    try:
        native_env.library()
    except native.NativeUnavailable as e:
        return str(e).splitlines()[0]
    return None


def benchmark(
    batches: tuple[int, ...], device: str, repeats: int, budget: int, scalar_steps: int, seed: int, capacity: int, console: Console,
    compile: bool = False, dtype: str | None = None, native: bool = True, native_threads: int = 1,
) -> dict[str, Any]:
    scalar: list[dict[str, float]] = []
    scripted: list[dict[str, float]] = []
    native_skipped = native_skip_reason(device) if native else "not asked for"
    kinds = (False, True) if native_skipped is None else (False,)  # native=...
    runs: dict[tuple[int, bool], list[dict[str, float]]] = {(b, k): [] for b in batches for k in kinds}
    compile_s: dict[tuple[int, bool], float] = {}
    for b, k in runs:  # untimed: the first run at a new size pays glibc malloc's mmap/trim warm-up (tens of x), and compiles
        t0 = time.perf_counter()
        measure_vector_env(b, 5, device, seed, capacity, compile and not k, dtype, k, native_threads)
        compile_s[b, k] = round(time.perf_counter() - t0, 1)
    for r in range(repeats):
        scalar.append(measure_scalar_env(scalar_steps, seed))
        scripted.append(measure_scalar_env(scalar_steps, seed, "light"))
        console.log(f"repeat {r + 1}/{repeats}: scalar {scalar[-1]['steps_per_s']:,.0f} steps/s "
                    f"(scripted background {scripted[-1]['steps_per_s']:,.0f})")
        for b in batches:
            for k in kinds:  # the native env right after the torch env, same B and seed
                runs[b, k].append(measure_vector_env(b, steps_for(b, budget), device, seed + r, capacity, compile and not k, dtype, k,
                                                     native_threads))
                console.log(f"  B={b}{' native' if k else ''}: {runs[b, k][-1]['env_steps_per_s']:,.0f} env steps/s")
    base = statistics.median(s["steps_per_s"] for s in scalar)
    base_scripted = statistics.median(s["steps_per_s"] for s in scripted)
    per_batch = {str(b): _batch_row(runs[b, False], base, base_scripted, compile_s[b, False]) for b in batches}
    native_per_batch: dict[str, Any] = {}
    if True in kinds:
        for b in batches:
            row = _batch_row(runs[b, True], base, base_scripted, compile_s[b, True])
            native_per_batch[str(b)] = {**row, "vs_torch": round(row["env_steps_per_s"] / per_batch[str(b)]["env_steps_per_s"], 3)}
    head = native_per_batch or per_batch  # the headline: the env as it runs by default
    ref = per_batch.get("4096") or per_batch[str(max(batches))]
    return {
        "workload": "light",
        "device": str(torch.device(device)) if torch.device(device).type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "compile": compile,
        "dtype": runs[batches[0], False][0]["dtype"],  # the books' (the env's choice unless --dtype)
        "capacity": capacity,
        "repeats": repeats,
        "scalar_env_background": "flow",
        "scalar_env_steps_per_s": round(base),
        "scalar_scripted_env_steps_per_s": round(base_scripted),
        "scalar_msgs_per_step": round(statistics.median(s["msgs_per_step"] for s in scalar), 3),
        "scalar_trades_per_step": round(statistics.median(s["trades_per_step"] for s in scalar), 3),
        "env_path": "native" if native_per_batch else "torch",
        "env_steps_per_s_b4096": head["4096"]["env_steps_per_s"] if "4096" in head else None,
        "ratio_b4096_env": head["4096"]["vs_scalar_env"] if "4096" in head else None,
        "torch_env_steps_per_s_b4096": per_batch["4096"]["env_steps_per_s"] if "4096" in per_batch else None,
        "torch_ratio_b4096_env": per_batch["4096"]["vs_scalar_env"] if "4096" in per_batch else None,
        "msgs_per_step": ref["msgs_per_step"],
        "trades_per_step": ref["trades_per_step"],
        "per_batch": per_batch,
        "native_skipped": native_skipped,
        "native_threads": native_threads if native_per_batch else None,
        "native_per_batch": native_per_batch,  # the env with native=True, same repeats, right after the torch env
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "machine": machine_info(),
    }


def render(result: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"vector env{' (torch rows compiled)' if result.get('compile') else ''}, light background, random actions, {result['device']} ({result['threads']} threads), "
        f"capacity {result['capacity']}, median of {result['repeats']}"
        + (f"; native: each step one C call, {result['native_threads']} thread(s)" if result.get("native_per_batch") else "")
    )
    native = result.get("native_per_batch") or {}
    cols = ("B", "env steps/s", "ms/step", "msgs/step", "trades/step", "book msgs/s", "vs scalar env", "vs scripted")
    for col in cols + (("vs torch",) if native else ()):
        table.add_column(col, justify="right")
    rows = [(b, w) for b, w in result["per_batch"].items()]
    rows += [(f"{b} native", w) for b, w in native.items()]
    for b, w in rows:
        table.add_row(
            b, f"{w['env_steps_per_s']:,}", f"{w['ms_per_step']:.2f}", f"{w['msgs_per_step']:.2f}",
            f"{w['trades_per_step']:.2f}", f"{w['book_msgs_per_s']:,}", f"{w['vs_scalar_env']:.2f}x",
            f"{w['vs_scalar_scripted_env']:.2f}x", *((f"{w['vs_torch']:.2f}x" if "vs_torch" in w else "",) if native else ()),
        )
    table.add_row(
        "scalar Trading-v0 (flow)", f"{result['scalar_env_steps_per_s']:,}", "", f"{result['scalar_msgs_per_step']:.2f}",
        f"{result['scalar_trades_per_step']:.2f}", "", "1.00x", "", *(("",) if native else ()),
    )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.vector_env", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batches", type=lambda s: tuple(int(x) for x in s.split(",")), default=None, help="comma-separated batch sizes")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=int, default=100_000, help="env steps per vector run (steps = budget / B, 10..300)")
    p.add_argument("--scalar-steps", type=int, default=5_000, help="steps per scalar env run")
    p.add_argument("--capacity", type=int, default=32, help="order slots per side of each book")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a smoke run: B = 1, 64; 1 repeat; tiny budgets")
    p.add_argument("--compile", action="store_true", help="the env with compile=True (torch.compile'd book step)")
    p.add_argument("--dtype", choices=("int64", "int32"), default=None, help="the books' dtype (default: the env's own choice)")
    p.add_argument("--no-native", action="store_true", help="the torch env only (skip the native env, vector.native_env)")
    p.add_argument("--native-threads", type=int, default=None, help="OpenMP threads of the native env (default: --threads)")
    p.add_argument("--json", action="store_true", help="end with one JSON line on stdout")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    malloc_tuned = tune_malloc()
    batches = args.batches or (GPU_BATCHES if torch.device(args.device).type == "cuda" else BATCHES)
    if args.quick:
        batches, args.repeats, args.budget, args.scalar_steps = args.batches or (1, 64), 1, 640, 300
    console = Console(stderr=args.json)
    result = benchmark(
        batches, args.device, args.repeats, args.budget, args.scalar_steps, args.seed, args.capacity, console, args.compile, args.dtype,
        not args.no_native, args.native_threads or args.threads,
    )
    result["malloc_tuned"] = malloc_tuned
    render(result, console)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

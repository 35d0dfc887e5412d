"""Where a single-env step's time goes: ``Trading-v0`` with parts of its work taken away.

    python -m bench.envs_floor                        # light flow background, 5 repeats
    python -m bench.envs_floor --background flow_heavy --json

Every row runs ``exchange/Trading-v0`` as ``bench.envs`` does (the same pre-drawn random
actions, episodes of 1000 steps, resets included), each with one more part of the step's
work removed than the row before:

1. ``as_is``: the environment;
2. ``learner_engine_only``: the learner's commands go straight to ``MatchingEngine.submit``
   (the book sees the same commands; no risk check, accounts, open-order tracking or
   delivery of its events to its tracker);
3. ``no_observation``: also a constant array instead of the observation;
4. ``no_wrappers``: also no gymnasium wrappers (``env.unwrapped``, truncated by hand).

Rows 2-4 are not environments to train on: they bound what trimming those parts could buy.
The last row is what is left for the background flow, the engine's work on the learner's
orders, the reward, the info dict and the step itself; ``vs as_is`` is each row's
steps/s over the first row's in the same process.

``--json``: the last stdout line is one JSON object with each row's ``steps_per_s``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import warnings
from typing import Any

import gymnasium
import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import envs  # noqa: F401  (registers the ids)
from bench.engine import machine_info

ROWS = ("as_is", "learner_engine_only", "no_observation", "no_wrappers")
HORIZON = 1000


def _strip(env: Any, row: int) -> None:
    """Take away (on this episode's objects) the work that row ``row`` removes."""
    u = env.unwrapped
    if row >= 1:
        submit = u._engine.submit
        u._ctx.submit = lambda symbol, command: submit(command)
    if row >= 2:
        constant = np.zeros(u.observation_space.shape, np.float32)
        u._observation = lambda mid_return, flow: constant


def measure(row: int, background: str, steps: int, seed: int = 0) -> float:
    """Steps/s of row ``row`` (``ROWS``) with random actions, resets included."""
    with warnings.catch_warnings():  # the env checker's first steps: the constant observation is one object
        warnings.simplefilter("ignore", UserWarning)
        return _measure(row, background, steps, seed)


def _measure(row: int, background: str, steps: int, seed: int) -> float:
    env: Any = gymnasium.make("exchange/Trading-v0", background=background, max_episode_steps=HORIZON)
    if row >= 3:
        env = env.unwrapped
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    gc.collect()
    t0 = time.perf_counter()
    env.reset(seed=seed)
    _strip(env, row)
    for k, action in enumerate(actions, 1):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated or (row >= 3 and k % HORIZON == 0):
            env.reset()
            _strip(env, row)
    return steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.envs_floor", description=__doc__.split("\n\n")[0])
    p.add_argument("--background", default="flow", help="flow (light, default) or flow_heavy")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="end with one JSON line on stdout")
    args = p.parse_args(argv)
    console = Console(stderr=args.json)
    runs: dict[str, list[float]] = {name: [] for name in ROWS}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("rows", total=args.repeats * len(ROWS))
        for _ in range(args.repeats):  # rows interleaved, so drift on a shared machine hits them alike
            for row, name in enumerate(ROWS):
                runs[name].append(measure(row, args.background, args.steps, args.seed))
                progress.advance(task)
    base = statistics.median(runs["as_is"])
    result: dict[str, Any] = {
        "background": args.background,
        "rows": {name: {"steps_per_s": round(statistics.median(v)), "us_per_step": round(1e6 / statistics.median(v), 2),
                        "vs_as_is": round(statistics.median(v) / base, 3)} for name, v in runs.items()},
        "steps": args.steps,
        "repeats": args.repeats,
        "machine": machine_info(),
    }
    table = Table(title=f"Trading-v0, background {args.background!r}, parts removed cumulatively, median of {args.repeats}")
    for col in ("row", "steps/s", "µs/step", "vs as_is"):
        table.add_column(col, justify="right")
    for name, r in result["rows"].items():
        table.add_row(name, f"{r['steps_per_s']:,}", f"{r['us_per_step']}", f"{r['vs_as_is']:.3f}x")
    console.print(table)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

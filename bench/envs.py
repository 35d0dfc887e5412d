"""Environment benchmark: env steps/s with random actions, resets included.

    python -m bench.envs                 # light, heavy and 8-agent workloads, 3 repeats
    python -m bench.envs --quick --json  # a smoke run

Workloads (all on ``nyse``, 100 ms steps, episodes of 1000 steps, so a run of ``--steps``
steps includes ``steps / 1000`` resets and their warm-up):

- ``light_flow``: ``exchange/Trading-v0`` with ``background="flow"`` (``envs.flow``: batched
  noise flow and an Avellaneda-Stoikov maker sent straight to the book, no simulator):
  about 5 book messages (commands, every participant counted) per step;
- ``heavy_flow``: ``background="flow_heavy"``: about 24 messages per step;
- ``light``: the scripted-agent background (``agents``' ``NoiseTrader`` x 2 at
  ``LIGHT_RATE_HZ`` and one ``AvellanedaStoikovMaker`` in the simulator): about 5 messages;
- ``heavy``: the same with four noise traders at ``HEAVY_RATE_HZ``: about 24 messages;
- ``multi``: the PettingZoo ``ParallelEnv`` with 8 learning agents (``bench.envs_multi``),
  one step = all 8 agents acting once, scripted background;
- ``multi_flow``: the same with ``background="flow"``.

Messages and trades per step are printed beside steps/s (they are what makes steps cheap or
dear). The baseline run in the same process is gymnasium's ``CartPole-v1`` with random
actions: the ceiling for any Python env on the machine; ``vs CartPole`` is our steps/s over
its steps/s, so noise on a shared machine cancels out of the ratio.

``--json``: the last stdout line is one JSON object with ``single_env_steps_per_s`` and
``heavy_env_steps_per_s`` (the flow background, named in ``single_env_background``),
``single_env_scripted_steps_per_s`` and ``heavy_env_scripted_steps_per_s`` (the scripted
agents), ``multi_env_steps_per_s`` (scripted background) and ``multi_env_flow_steps_per_s``
(flow background), ``msgs_per_step`` and ``trades_per_step`` (of
``light_flow``), the per-workload figures and the machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from typing import Any

import gymnasium
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import envs  # noqa: F401  (registers the ids)
from agents import MarketMakerConfig, NoiseConfig
from bench.engine import machine_info
from envs import REFERENCE_PRICE, Background

LIGHT_RATE_HZ = 13.0
HEAVY_RATE_HZ = 43.0
TARGETS = {"light_flow": 30_000, "heavy_flow": 10_000, "light": 30_000, "heavy": 10_000}


def background(noise_traders: int, rate_hz: float) -> tuple[Background, ...]:
    ref = REFERENCE_PRICE["nyse"]
    return (
        Background("noise", NoiseConfig(reference_price=ref, rate_hz=rate_hz), count=noise_traders),
        Background("market_maker", MarketMakerConfig(reference_price=ref, max_inventory=50)),
    )


WORKLOADS: dict[str, Any] = {
    "light_flow": "flow",
    "heavy_flow": "flow_heavy",
    "light": background(2, LIGHT_RATE_HZ),
    "heavy": background(4, HEAVY_RATE_HZ),
}


def measure_single(workload: str, steps: int, seed: int = 0) -> dict[str, float]:
    """Steps/s of ``Trading-v0`` under ``workload`` with random actions, resets included."""
    env = gymnasium.make("exchange/Trading-v0", background=WORKLOADS[workload])
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    commands = trades = 0
    gc.collect()
    t0 = time.perf_counter()
    env.reset(seed=seed)
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        commands += info["commands"]
        trades += info["trades"]
        if terminated or truncated:
            env.reset()
    seconds = time.perf_counter() - t0
    env.close()
    return {"steps_per_s": steps / seconds, "msgs_per_step": commands / steps, "trades_per_step": trades / steps}


def measure_cartpole(steps: int, seed: int = 0) -> float:
    """Steps/s of ``CartPole-v1`` with random actions, resets included (the baseline)."""
    env = gymnasium.make("CartPole-v1")
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    gc.collect()
    t0 = time.perf_counter()
    env.reset(seed=seed)
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def benchmark(steps: int, multi_steps: int, repeats: int, seed: int, console: Console) -> dict[str, Any]:
    from bench.envs_multi import measure_multi

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in WORKLOADS}
    runs["multi"] = []
    runs["multi_flow"] = []
    cartpole: list[float] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("envs", total=repeats * (len(WORKLOADS) + 3))
        for _ in range(repeats):
            cartpole.append(measure_cartpole(steps, seed))
            progress.advance(task)
            for name in WORKLOADS:
                runs[name].append(measure_single(name, steps, seed))
                progress.advance(task)
            runs["multi"].append(measure_multi(n_agents=8, steps=multi_steps, seed=seed))
            progress.advance(task)
            runs["multi_flow"].append(measure_multi(n_agents=8, steps=multi_steps, seed=seed, background="flow"))
            progress.advance(task)
    base = statistics.median(cartpole)
    result: dict[str, Any] = {"workloads": {}, "cartpole_steps_per_s": round(base)}
    for name, rs in runs.items():
        sps = statistics.median(r["steps_per_s"] for r in rs)
        result["workloads"][name] = {
            "steps_per_s": round(sps),
            "msgs_per_step": round(statistics.median(r["msgs_per_step"] for r in rs), 2),
            "trades_per_step": round(statistics.median(r["trades_per_step"] for r in rs), 2),
            "vs_cartpole": round(sps / base, 4),
        }
    w = result["workloads"]
    result.update(
        single_env_steps_per_s=w["light_flow"]["steps_per_s"],
        heavy_env_steps_per_s=w["heavy_flow"]["steps_per_s"],
        single_env_background="flow",
        single_env_scripted_steps_per_s=w["light"]["steps_per_s"],
        heavy_env_scripted_steps_per_s=w["heavy"]["steps_per_s"],
        multi_env_steps_per_s=w["multi"]["steps_per_s"],
        multi_env_flow_steps_per_s=w["multi_flow"]["steps_per_s"],
        msgs_per_step=w["light_flow"]["msgs_per_step"],
        trades_per_step=w["light_flow"]["trades_per_step"],
        steps=steps,
        multi_steps=multi_steps,
        repeats=repeats,
        machine=machine_info(),
    )
    return result


def render(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"environment steps/s, random actions, resets included, median of {result['repeats']}")
    for col in ("workload", "steps/s", "msgs/step", "trades/step", "vs CartPole", "target"):
        table.add_column(col, justify="right")
    for name, w in result["workloads"].items():
        target = TARGETS.get(name)
        table.add_row(
            name, f"{w['steps_per_s']:,}", f"{w['msgs_per_step']}", f"{w['trades_per_step']}",
            f"{w['vs_cartpole']:.3f}x", f"{target:,}" if target else "",
        )
    table.add_row("CartPole-v1 (baseline)", f"{result['cartpole_steps_per_s']:,}", "", "", "1.000x", "")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.envs", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20_000, help="steps per single-env run (default 20,000)")
    p.add_argument("--multi-steps", type=int, default=2_000, help="steps per 8-agent run (default 2,000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a smoke run: 500 steps, 1 repeat")
    p.add_argument("--json", action="store_true", help="end with one JSON line on stdout")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.multi_steps, args.repeats = 500, 100, 1
    console = Console(stderr=args.json)
    result = benchmark(args.steps, args.multi_steps, args.repeats, args.seed, console)
    render(result, console)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Multi-agent environment benchmark: env steps per second of ``exchange_multi_v0``.

    python -m bench.envs_multi                        # 8 agents, 5,000 steps, 3 repeats
    python -m bench.envs_multi --agents 4 --steps 2000 --json

Workloads:

- ``multi-random-8``: ``envs.multi.parallel_env(n_agents=8)`` with its defaults (nyse
  preset, two scripted noise traders and one Avellaneda-Stoikov maker in the simulator,
  100 ms steps, episodes of ``max_cycles`` = 1000 steps, Trading-v0 actions);
- ``multi-flow-random-8``: the same with ``background="flow"`` (``envs.flow``, the light
  flow of ``bench.envs``'s ``light_flow``, sent straight to the book).

In both, every live agent sends a uniformly random action each step (drawn ahead of the
timed loop from one seeded numpy generator, so sampling is not timed). The timed loop runs ``steps`` env steps and includes
every ``reset`` (one to start, one after each episode end), as a training loop would see.

Reported beside steps/s: agent-steps/s (steps/s x live agents), and per env step the book
messages (``msgs_per_step``: commands the venue processed, every participant counted,
``info["commands"]``, as in ``bench.envs``), the events the venue produced for them
(``events_per_step``, ``info["messages"]``) and the trades (fills, ``info["trades"]``).
``--json``: the last stdout line is one JSON object with the scripted workload's figures at
the top level (as before the flow workload existed), the flow workload's under ``flow``,
``flow_steps_per_s`` beside ``steps_per_s``, and the machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.engine import machine_info
from envs.multi import parallel_env


def measure_multi(n_agents: int = 8, steps: int = 5_000, seed: int = 0, **overrides: Any) -> dict:
    """Run ``steps`` env steps of random joint actions (resets included) and time them.

    ``overrides`` are ``parallel_env`` keyword arguments (``max_cycles``, ``preset``,
    ``background``, ...). Returns ``steps_per_s``, ``agent_steps_per_s``, ``msgs_per_step`` (commands the venue
    processed), ``events_per_step``, ``trades_per_step``, ``episodes``, ``seconds`` and the
    workload.
    """
    if n_agents < 1 or steps < 1:
        raise ValueError("n_agents and steps must be positive")
    env = parallel_env(n_agents=n_agents, **overrides)
    nvec = env.action_space(env.possible_agents[0]).nvec
    actions = np.random.default_rng(seed).integers(0, nvec, size=(steps, n_agents, len(nvec)))
    names = env.possible_agents
    events = commands = trades = agent_steps = 0
    episodes = 1
    gc.collect()
    t0 = time.perf_counter()
    env.reset(seed=seed)
    for k in range(steps):
        if not env.agents:
            env.reset()
            episodes += 1
        row = actions[k]
        live = env.agents
        agent_steps += len(live)
        _, _, _, _, infos = env.step({a: row[i] for i, a in enumerate(names) if a in live})
        info = infos[live[0]]
        events += info["messages"]
        commands += info["commands"]
        trades += info["trades"]
    seconds = time.perf_counter() - t0
    background = overrides.get("background")
    named = f"{background.replace('_', '-')}-" if isinstance(background, str) else "custom-" if background is not None else ""
    return {
        "workload": f"multi-{named}random-{n_agents}",
        "n_agents": n_agents,
        "steps": steps,
        "episodes": episodes,
        "max_cycles": env.max_cycles,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "agent_steps_per_s": agent_steps / seconds,
        "msgs_per_step": commands / steps,
        "events_per_step": events / steps,
        "trades_per_step": trades / steps,
    }


def median_run(runs: list[dict]) -> dict:
    """One workload's repeats as one: the first run's counts (same seed: every run does the
    same work, only the time differs) with the median times."""
    return {
        **runs[0],
        "seconds": statistics.median(r["seconds"] for r in runs),
        "steps_per_s": statistics.median(r["steps_per_s"] for r in runs),
        "agent_steps_per_s": statistics.median(r["agent_steps_per_s"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Env steps/s of the multi-agent environment with random actions.")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    console = Console(stderr=args.json, width=100)

    scripted = median_run([measure_multi(args.agents, args.steps, args.seed) for _ in range(args.repeats)])
    flow = median_run([measure_multi(args.agents, args.steps, args.seed, background="flow") for _ in range(args.repeats)])
    result = {
        **scripted,
        "repeats": args.repeats,
        "flow_steps_per_s": flow["steps_per_s"],
        "flow": flow,
        "machine": machine_info(),
    }
    table = Table(title=f"multi-agent env, {args.agents} agents, {args.steps} steps, median of {args.repeats}")
    for name in ("workload", "steps/s", "agent steps/s", "msgs/step", "events/step", "trades/step", "episodes"):
        table.add_column(name, justify="right")
    for r in (scripted, flow):
        table.add_row(
            r["workload"],
            f"{r['steps_per_s']:,.0f}",
            f"{r['agent_steps_per_s']:,.0f}",
            f"{r['msgs_per_step']:.1f}",
            f"{r['events_per_step']:.1f}",
            f"{r['trades_per_step']:.2f}",
            str(r["episodes"]),
        )
    console.print(table)
    m = result["machine"]
    console.print(f"{m['cpu']} · Python {m['python']} · commit {m['commit']}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run the live exchange: exchange server, market-data relay and bots, each its own process.

    python serve.py                      # exchange :8765, relay :8766, the bots of configs/bots.json
    python serve.py --seconds 10         # a bounded demo
    python -m live.monitor               # in another terminal: the read-only monitor (via the relay)

Options of the all-in-one run: ``--port`` / ``--relay-port`` (0: any free port), ``--config``
(the exchange's JSON config), ``--bots FILE`` (bots config) or ``--no-bots``,
``--journal PATH`` / ``--no-journal``, ``--csv-dir DIR`` / ``--no-csv``, ``--seconds N``,
``--verbose`` (the servers' INFO logs). It prints where everything listens, forwards each
child's output with a ``[name]`` prefix, and on Ctrl-C / SIGTERM (or after ``--seconds``)
stops the bots, then the relay, then the exchange, which syncs its journal and flushes its
CSV files. If a server dies, everything is stopped and the exit code is 1.

One part alone (the same commands as ``python -m live.<part>``, arguments passed through):

    python serve.py exchange [--port 8765 --config FILE --no-journal ...]   # python -m live.server
    python serve.py relay [--upstream ws://127.0.0.1:8765 --port 8766]       # python -m live.relay
    python serve.py bots [--config configs/bots.json --name NAME ...]        # python -m live.bots
    python serve.py monitor [--url ws://127.0.0.1:8766 --once]               # python -m live.monitor

This file is a thin shell: the processes are the programs in ``live/`` and they talk only
over WebSockets (``docs/API_SPEC.md``); ``docs/BOT_INTEGRATION_GUIDE.md`` shows how to add a bot.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

PARTS = {"exchange": "live.server", "relay": "live.relay", "bots": "live.bots", "monitor": "live.monitor"}


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python serve.py", description=__doc__.split("\n\n")[0],
                                     epilog="Parts alone: python serve.py exchange|relay|bots|monitor [ARGS] (see --help of each).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="exchange port (0: any free port)")
    parser.add_argument("--relay-port", type=int, default=8766, help="relay port (0: any free port)")
    parser.add_argument("--config", help="exchange config JSON (default: the built-in demo venue)")
    parser.add_argument("--bots", help="bots config JSON (default: configs/bots.json)")
    parser.add_argument("--no-bots", action="store_true", help="start no bots")
    parser.add_argument("--journal", help="journal path (default out/live/journal.jsonl)")
    parser.add_argument("--no-journal", action="store_true", help="run the exchange without a journal")
    parser.add_argument("--csv-dir", help="where trades.csv and performance.csv go (default out/live)")
    parser.add_argument("--no-csv", action="store_true")
    parser.add_argument("--seconds", type=float, help="stop everything after N seconds")
    parser.add_argument("--verbose", action="store_true", help="INFO logs of the exchange and the relay")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PARTS:  # one part alone, in this process
        os.execv(sys.executable, [sys.executable, "-m", PARTS[argv[0]], *argv[1:]])
    args = _args(argv)
    from live.launch import PY, Process, start_exchange, start_relay

    level = "INFO" if args.verbose else "WARNING"
    server_args = ["--host", args.host, "--log-level", level]
    for flag, value in (("--config", args.config), ("--journal", args.journal), ("--csv-dir", args.csv_dir)):
        if value:
            server_args += [flag, value]
    server_args += ["--no-journal"] if args.no_journal else []
    server_args += ["--no-csv"] if args.no_csv else []

    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    procs: list[Process] = []
    failed = False
    try:
        exchange, url = start_exchange(server_args, port=args.port, echo=True)
        procs.append(exchange)
        relay, relay_url = start_relay(url, ["--host", args.host, "--log-level", level], port=args.relay_port, echo=True)
        procs.append(relay)
        print(f"serve.py: exchange {url} (trading: {url}/ · market data: {url}/feed)", flush=True)
        print(f"serve.py: relay    {relay_url} (read-only market data for bots and monitors)", flush=True)
        if not args.no_bots:
            cmd = [PY, "-m", "live.bots", "--exchange", url, "--feed", relay_url]
            if args.bots:
                cmd += ["--config", args.bots]
            procs.append(Process.start(cmd, "bots", echo=True))
        print(f"serve.py: monitor  python -m live.monitor --url {relay_url}", flush=True)
        print("serve.py: running; Ctrl-C stops everything", flush=True)
        end = None if args.seconds is None else time.monotonic() + args.seconds
        while not stopping and (end is None or time.monotonic() < end):
            if not exchange.alive() or not relay.alive():
                print("serve.py: a server exited; stopping", file=sys.stderr, flush=True)
                failed = True
                break
            time.sleep(0.1)
    except (TimeoutError, OSError, subprocess.SubprocessError) as exc:
        print(f"serve.py: could not start: {exc}", file=sys.stderr, flush=True)
        failed = True
    finally:
        codes = [p.stop(timeout=10) for p in reversed(procs)]  # bots, then relay, then the exchange
        print(f"serve.py: stopped ({', '.join(f'{p.name} {c}' for p, c in zip(reversed(procs), codes, strict=True))})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

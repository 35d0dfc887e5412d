"""Live exchange benchmark: orders/s and order-to-acknowledgement latency over WebSockets.

    python -m bench.live                 # 1, 10, 50 bot connections; fan-out to 50 subscribers
    python -m bench.live --quick --json  # a smoke run (1 and 10 bots, 10 subscribers, short)

A real server (``python -m live.server``, its own process, no journal unless ``--journal``)
and a real relay (``python -m live.relay``) run on loopback; the bots are WebSocket
connections from this process (one asyncio loop), each logged in as its own trader. They
share the machine with the server, so they are lean: each message is handled as
websockets parses it (no task switch per message, ``_CallbackConnection``), fixed-rate
runs are paced by one timer for all connections, and the process's collector is tuned
like the server's (``live.marketdata.tune_gc``). Latency is still taken on the client,
from a request's send (or scheduled send) time to the parse of its acknowledgement.

Workload ``live-mixed`` (per bot, from ``random.Random(seed/bot)``): GTC limit orders 1..10
lots, buys 1..50 ticks below 10,000 and sells 1..50 ticks above (they rest); every 10th
order is a marketable IOC through the opposite side (trades, so market data moves); when a
bot has 20 acknowledged resting orders, its next message cancels the oldest. An
acknowledgement is the one reply carrying the request's ``req``: ``accepted`` or
``rejected`` for a new order, ``cancelled`` (or ``error`` unknown_order, if a trade took it
first) for a cancel.

Runs, for N = 1, 10, 50 connections:

- ``max``: each connection keeps ``--window`` requests in flight (pipelined) for
  ``--seconds``: sustained orders/s = acknowledgements / time; latency under that load.
- ``10k``: a fixed offered load of ``--rate`` orders/s in total (10,000), request j
  scheduled at j / rate on connection j mod N; latency is measured from each request's
  *scheduled* send time (no coordinated omission), p50 and p99; also from the write of the
  request (``wire_p50_ms``, ``wire_p99_ms``): the difference is the client's own lateness.
  The client's loop waits for timers to the microsecond (``--loop precise``): asyncio's
  default (epoll) rounds a timer up to the whole millisecond, which sent paced requests up
  to 1 ms late.

Every run checks, per connection, that each request got exactly one acknowledgement and
that acknowledgements came in request order: ``dropped`` counts requests never
acknowledged, ``reordered`` acknowledgements out of order.

Fan-out: ``--subscribers`` (50) connections subscribe to the relay while 10 bots send a
fixed ``--fanout-rate`` orders/s; each subscriber checks that every symbol's ``seq`` is
gap-free; reported: market-data messages delivered per second (all subscribers), lag from
the exchange's timestamp to receipt (p50, p99), gaps and slow-consumer re-snapshots.

Baseline: the same workload applied in this process, without I/O, to the exchange core
(``exchange.venue.Exchange.submit``) and to the live venue (``live.core.LiveVenue.handle``,
which also builds the wire messages); the live figure is reported as a ratio to the engine's.

``--json`` ends the output with one line: ``orders_per_s`` (max run, largest N),
``p50_ms``/``p99_ms`` (10k run, largest N), ``bots``, ``dropped`` (all runs), ``reordered``,
``engine_orders_per_s``, ``ratio``, ``runs`` and ``fanout``. Client and server share the
machine's two cores, so the client's own cost is part of every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import select
import selectors
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from exchange.commands import Cancel, NewOrder
from exchange.enums import TimeInForce
from exchange.venue import Exchange, RiskLimits
from live import protocol as P
from live.config import RateLimit, ServerConfig, SymbolConfig, TraderConfig, config_to_dict
from live.core import LiveVenue, Outbox
from live.launch import start_exchange, start_relay
from live.marketdata import tune_gc, write_frames

SYMBOL = "XYZ"
MID = 10_000


class _Reply(msgspec.Struct):
    """The fields of a server message the bench reads (everything else is skipped)."""

    type: str = ""
    req: int | None = None
    order_id: int | None = None


class _Md(msgspec.Struct):
    type: str = ""
    symbol: str | None = None
    seq: int | None = None
    ts: int | None = None


_reply = msgspec.json.Decoder(_Reply).decode
_md = msgspec.json.Decoder(_Md).decode
_encode = msgspec.json.Encoder().encode


# ---- the workload ------------------------------------------------------------------------------------
class Workload:
    """One bot's ``live-mixed`` order flow (module docstring); ``open`` holds resting order ids."""

    def __init__(self, seed: int, bot: int, max_open: int = 20) -> None:
        self.rng = random.Random(f"{seed}/{bot}")
        self.open: deque[int] = deque()
        self.max_open = max_open
        self.n = 0

    def next(self) -> tuple[str, dict[str, Any]]:
        """("new", fields) or ("cancel", {"order_id": id})."""
        self.n += 1
        if len(self.open) >= self.max_open:
            return "cancel", {"order_id": self.open.popleft()}
        r = self.rng
        side = 1 if r.random() < 0.5 else -1
        qty = r.randint(1, 10)
        if self.n % 10 == 0:
            return "new", {"side": side, "qty": qty, "price": MID + side * 60, "ioc": True}
        return "new", {"side": side, "qty": qty, "price": MID - side * r.randint(1, 50), "ioc": False}


def request_bytes(kind: str, f: dict[str, Any], req: int) -> bytes:
    if kind == "cancel":
        return _encode({"type": "cancel", "order_id": f["order_id"], "req": req})
    msg = {"type": "new_order", "symbol": SYMBOL, "side": "buy" if f["side"] == 1 else "sell", "qty": f["qty"],
           "price": f["price"], "req": req}
    if f["ioc"]:
        msg["tif"] = "ioc"
    return _encode(msg)


def bench_config(n_traders: int) -> ServerConfig:
    """A venue for the bench: one FIFO symbol, ``n_traders`` traders, no rate limit to speak of."""
    return ServerConfig(
        symbols=(SymbolConfig(SYMBOL, "nyse"),),
        traders=tuple(TraderConfig(i, f"bench{i}", f"bench-token-{i}") for i in range(1, n_traders + 1)),
        risk=RiskLimits(max_order_qty=1_000, max_position=10**9, max_open_orders=100_000),
        rate_limit=RateLimit(rate=1e7, burst=1_000_000),
        session_queue=1_000_000,
    )


# ---- a bot connection --------------------------------------------------------------------------------
class _CallbackConnection(ClientConnection):
    """A client connection that hands each text message to ``on_message`` as it is parsed.

    The bench's clients share the machine's two cores with the server, so they read the
    way a lean bot would: inside ``data_received``, no task switch per message, and the
    receive time is taken there (the earliest the client can know). Requests queued by
    ``on_message`` (``Conn.send``) go out with one write when the received data is
    processed. Everything else (handshake, pings, close) is websockets' own."""

    on_message: Callable[[bytes], None] | None = None
    writer: Conn | None = None

    def process_event(self, event: Event) -> None:
        if self.on_message is not None and type(event) is Frame and event.opcode is Opcode.TEXT and event.fin:
            self.on_message(bytes(event.data))
        else:
            super().process_event(event)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.writer is not None:
            self.writer.flush()


class Conn:
    """One pipelined trading connection with per-request acknowledgement tracking.

    Callback-driven (``_CallbackConnection``): ``run_window`` keeps ``window`` requests in
    flight by sending the next one when an acknowledgement arrives; ``run_rate`` is paced
    by one timer for all connections (``run_rate`` below). ``t0`` of a request is its send
    time (window) or its scheduled send time (rate), taken on the client."""

    def __init__(self, url: str, bot: int, seed: int) -> None:
        self.url, self.bot = url, bot
        self.work = Workload(seed, bot)
        self.pending: deque[list] = deque()  # [req, t0, kind, written] in send order
        self.latencies: list[float] = []  # from t0
        self.wire: list[float] = []  # from the write of the request (rate runs: t0 is its scheduled time)
        self._unwritten: list[list] = []
        self.sent = self.acked = self.reordered = 0
        self.req = 0
        self.ws: Any = None
        self.window = 0  # > 0: refill to this many in flight on each acknowledgement, until ``until``
        self.until = 0.0
        self._out: list[bytes] = []
        self._done: asyncio.Future[None] | None = None

    async def open(self) -> None:
        self.ws = await connect(self.url, compression=None, proxy=None, open_timeout=20, max_size=2**24,
                                max_queue=None, create_connection=_CallbackConnection)
        await self.ws.send(_encode({"type": "login", "token": f"bench-token-{self.bot}", "req": 0}), text=True)
        reply = _reply(await self.ws.recv())
        if reply.type != "welcome":
            raise RuntimeError(f"bot {self.bot}: login failed: {reply}")
        self.ws.on_message = self._on_message
        self.ws.writer = self

    def _on_message(self, raw: bytes) -> None:
        now = time.perf_counter()
        r = _reply(raw)
        if r.req is None:
            return
        pending = self.pending
        while pending:
            req, t0, kind, written = pending.popleft()
            if req == r.req:
                break
            self.reordered += 1  # an earlier request's acknowledgement never came (or came late)
        else:
            self.reordered += 1
            return
        self.latencies.append(now - t0)
        self.wire.append(now - written)
        self.acked += 1
        if kind == "new" and r.type == "accepted" and r.order_id is not None:
            self.work.open.append(r.order_id)
        if self.window and now < self.until:
            while len(pending) < self.window:
                self.send(now)
        elif not pending and self._done is not None and not self._done.done():
            self._done.set_result(None)

    def send(self, t0: float) -> None:
        """Queue the next request (``flush`` writes it), ``t0`` its send time for the latency."""
        self.req += 1
        kind, fields = self.work.next()
        if kind == "new" and fields["ioc"]:
            kind = "ioc"
        entry = [self.req, t0, kind, t0]
        self.pending.append(entry)
        self._unwritten.append(entry)
        self.sent += 1
        self._out.append(request_bytes("cancel" if kind == "cancel" else "new", fields, self.req))

    def flush(self) -> None:
        if self._out:
            out, self._out = self._out, []
            now = time.perf_counter()
            for entry in self._unwritten:
                entry[3] = now
            self._unwritten.clear()
            write_frames(self.ws, out)

    def start_window(self, window: int, until: float) -> None:
        self.window, self.until = window, until
        now = time.perf_counter()
        while len(self.pending) < window:
            self.send(now)
        self.flush()

    async def drain(self, timeout: float) -> None:
        self.window = 0
        if self.pending:
            self._done = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._done, timeout)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        self.ws.on_message = self.ws.writer = None
        await self.ws.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def _connect_all(url: str, n: int, seed: int, offset: int = 0) -> list[Conn]:
    conns = [Conn(url, offset + i + 1, seed) for i in range(n)]
    await asyncio.gather(*(c.open() for c in conns))
    return conns


async def _finish(conns: list[Conn], elapsed: float, mode: str) -> dict[str, Any]:
    await asyncio.gather(*(c.drain(5.0) for c in conns))
    lat = [x for c in conns for x in c.latencies]
    wire = [x for c in conns for x in c.wire]
    sent = sum(c.sent for c in conns)
    acked = sum(c.acked for c in conns)
    await asyncio.gather(*(c.close() for c in conns))
    return {
        "mode": mode, "bots": len(conns), "seconds": round(elapsed, 3), "sent": sent, "acked": acked,
        "orders_per_s": round(acked / elapsed, 1), "p50_ms": round(_pct(lat, 0.5) * 1e3, 3),
        "p99_ms": round(_pct(lat, 0.99) * 1e3, 3), "max_ms": round(max(lat or [0]) * 1e3, 3),
        "wire_p50_ms": round(_pct(wire, 0.5) * 1e3, 3), "wire_p99_ms": round(_pct(wire, 0.99) * 1e3, 3),
        "dropped": sent - acked, "reordered": sum(c.reordered for c in conns),
    }


async def run_max(url: str, n: int, seconds: float, window: int, seed: int) -> dict[str, Any]:
    conns = await _connect_all(url, n, seed)
    t0 = time.perf_counter()
    for c in conns:
        c.start_window(window, t0 + seconds)
    await asyncio.sleep(seconds)
    await asyncio.gather(*(c.drain(5.0) for c in conns))
    return await _finish(conns, time.perf_counter() - t0, "max")


async def pace(conns: list[Conn], rate: float, start: float, until: float) -> None:
    """Send ``rate`` requests/s in total, request j at ``start + j / rate`` on connection j mod N.

    One timer for all connections: each wake-up sends every request due by then (each
    measured from its own scheduled time, so a late wake-up counts against the server's
    figures, never for them), one write per connection."""
    clock, n, j = time.perf_counter, len(conns), 0
    total = max(0, math.ceil((until - start) * rate))
    touched: set[Conn] = set()
    while j < total:
        due = start + j / rate
        now = clock()
        if due > now:
            await asyncio.sleep(due - now)
            now = clock()
        while j < total and due <= now:
            c = conns[j % n]
            c.send(due)
            touched.add(c)
            j += 1
            due = start + j / rate
        for c in touched:
            c.flush()
        touched.clear()


async def run_rate(url: str, n: int, seconds: float, rate: float, seed: int) -> dict[str, Any]:
    conns = await _connect_all(url, n, seed)
    start = time.perf_counter() + 0.05
    await pace(conns, rate, start, start + seconds)
    await asyncio.gather(*(c.drain(5.0) for c in conns))
    elapsed = time.perf_counter() - start  # until the last acknowledgement
    result = await _finish(conns, elapsed, f"{int(rate / 1000)}k" if rate >= 1000 else f"{int(rate)}/s")
    result["offered_per_s"] = rate
    return result


# ---- fan-out ---------------------------------------------------------------------------------------
class Sub:
    """A relay subscriber checking per-symbol ``seq`` continuity and measuring lag."""

    def __init__(self) -> None:
        self.seq: dict[str, int] = {}
        self.received = self.gaps = self.resyncs = 0
        self.lags: list[float] = []
        self.counting = False
        self.ready: asyncio.Event | None = None

    async def run(self, url: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
        async with connect(url, compression=None, proxy=None, open_timeout=20, max_size=2**24, max_queue=None,
                           create_connection=_CallbackConnection) as ws:
            self.ready = ready
            ws.on_message = self._on
            await ws.send(_encode({"type": "subscribe", "req": 1}), text=True)
            await stop.wait()
            ws.on_message = None

    def _on(self, raw: bytes) -> None:
        m = _md(raw)
        t = m.type
        if t == "book_snapshot":
            self.seq[m.symbol] = m.seq  # type: ignore[index, assignment]
            if self.counting:
                self.resyncs += 1
            if self.ready is not None:
                self.ready.set()
        elif t in ("book_update", "trade", "liquidation"):
            last = self.seq.get(m.symbol)  # type: ignore[arg-type]
            if last is not None and m.seq != last + 1 and m.seq > last:  # type: ignore[operator]
                self.gaps += 1
            self.seq[m.symbol] = m.seq  # type: ignore[index, assignment]
            if self.counting:
                self.received += 1
                if self.received % 16 == 0:
                    self.lags.append(time.time_ns() - m.ts)  # type: ignore[operator]


async def run_fanout(url: str, relay_url: str, subscribers: int, bots: int, rate: float, seconds: float,
                     seed: int) -> dict[str, Any]:
    subs = [Sub() for _ in range(subscribers)]
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in subs]
    tasks = [asyncio.ensure_future(s.run(relay_url, r, stop)) for s, r in zip(subs, readies, strict=True)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    conns = await _connect_all(url, bots, seed + 1)
    for s in subs:
        s.counting = True
    start = time.perf_counter() + 0.05
    await pace(conns, rate, start, start + seconds)
    await asyncio.gather(*(c.drain(5.0) for c in conns))
    await asyncio.sleep(0.5)  # let the relay deliver the tail
    elapsed = time.perf_counter() - start
    for s in subs:
        s.counting = False
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    orders = await _finish(conns, seconds, "fanout-load")
    lags = [x / 1e6 for s in subs for x in s.lags]
    delivered = sum(s.received for s in subs)
    return {
        "subscribers": subscribers, "orders_per_s": orders["orders_per_s"], "md_messages": delivered,
        "md_per_s": round(delivered / seconds, 1), "md_per_s_per_subscriber": round(delivered / seconds / subscribers, 1),
        "lag_p50_ms": round(_pct(lags, 0.5), 3), "lag_p99_ms": round(_pct(lags, 0.99), 3),
        "gaps": sum(s.gaps for s in subs), "resyncs": sum(s.resyncs for s in subs), "dropped_orders": orders["dropped"],
    }


# ---- in-process baseline --------------------------------------------------------------------------
def run_inprocess(n_orders: int, bots: int, seed: int) -> dict[str, float]:
    """The same workload straight into the engine (``Exchange.submit``) and into ``LiveVenue.handle``."""
    works = [Workload(seed, b + 1) for b in range(bots)]
    stream: list[tuple[int, str, dict[str, Any]]] = []
    for i in range(n_orders):
        b = i % bots
        stream.append((b + 1, *works[b].next()))
        if stream[-1][1] == "new" and not stream[-1][2]["ioc"]:
            works[b].open.append(-1)  # placeholder: the cancel targets are resolved at run time
    cfg = bench_config(bots)

    def engine() -> float:
        ex = Exchange(cfg.specs(), starting_cash=cfg.starting_cash, trader_cash=cfg.trader_cash(), risk=cfg.risk, trader_risk=cfg.trader_risk())
        opened: dict[int, deque[int]] = {b + 1: deque() for b in range(bots)}
        oid, submit = 0, ex.submit
        t0 = time.perf_counter()
        for trader, kind, f in stream:
            if kind == "cancel":
                q = opened[trader]
                submit(SYMBOL, Cancel(q.popleft() if q else 1, trader))
            else:
                oid += 1
                submit(SYMBOL, NewOrder(oid, trader, f["side"], f["qty"], f["price"], tif=TimeInForce.IOC if f["ioc"] else TimeInForce.GTC))
                if not f["ioc"]:
                    opened[trader].append(oid)
        return len(stream) / (time.perf_counter() - t0)

    def venue() -> float:
        v = LiveVenue(cfg)
        opened: dict[int, deque[int]] = {b + 1: deque() for b in range(bots)}
        dec = P.decode_trading
        msgs = []
        for trader, kind, f in stream:
            msgs.append((trader, kind, f))
        t0 = time.perf_counter()
        req = 0
        for trader, kind, f in msgs:
            req += 1
            if kind == "cancel":
                q = opened[trader]
                data = _encode({"type": "cancel", "order_id": q.popleft() if q else 1, "req": req})
            else:
                data = request_bytes("new", f, req)
            out = Outbox()
            v.handle(trader, dec(data), v.stamp(time.time_ns()), out)
            for m in out.private:
                P.encode(m[1])
            for m in out.public:
                P.encode(m[1])
            if kind == "new" and not f["ioc"]:
                for _, m in out.private:
                    if type(m) is P.Accepted and m.req == req:
                        opened[trader].append(m.order_id)
        return len(msgs) / (time.perf_counter() - t0)

    return {"engine_orders_per_s": round(engine(), 1), "venue_orders_per_s": round(venue(), 1)}


# ---- driver -------------------------------------------------------------------------------------------
class _PreciseEpollSelector(selectors.EpollSelector):
    """epoll with microsecond timeouts: a wait for a timer first waits on the epoll descriptor
    itself with ``select`` (microseconds), then collects the events with a zero-timeout poll.

    ``epoll_wait`` takes whole milliseconds (asyncio's default selector rounds a timer up to
    the next one), so a paced request due 0.1 ms from now would go out up to 1 ms late, and
    that lateness would count as latency; ``SelectSelector`` is precise but scans every
    descriptor on each call (about 0.1 core more for the client with 50 connections)."""

    def select(self, timeout: float | None = None) -> list:
        if timeout is not None and timeout > 0:
            select.select((self._selector.fileno(),), (), (), timeout)
            timeout = 0
        return super().select(timeout)


#: The client's event loop (``--loop``); the server keeps asyncio's default.
_LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "precise": lambda: asyncio.SelectorEventLoop(_PreciseEpollSelector()),
    "select": lambda: asyncio.SelectorEventLoop(selectors.SelectSelector()),
    "epoll": lambda: asyncio.SelectorEventLoop(selectors.EpollSelector()),
}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


async def _bench(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    bot_counts = [int(x) for x in args.bots.split(",")]
    n_traders = max(bot_counts + [10]) + 10
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    cfg_path = tmp / "server.json"
    cfg_path.write_text(json.dumps(config_to_dict(bench_config(n_traders))))
    server_args = ["--config", str(cfg_path), "--no-csv", "--log-level", "WARNING"]
    server_args += ["--journal", str(tmp / "journal.jsonl"), "--fsync", args.fsync] if args.journal else ["--no-journal"]
    err = open(tmp / "server.err", "w")
    server, url = await asyncio.to_thread(start_exchange, server_args, stderr=err)
    tune_gc()  # the client's own pauses would count against the server's latency
    relay = None
    runs: list[dict[str, Any]] = []
    fanout: dict[str, Any] = {}
    try:
        for n in bot_counts:
            for mode in ("max", "rate"):
                s0, c0, t0 = cpu_seconds(server.pid), time.process_time(), time.perf_counter()
                if mode == "max":
                    r = await run_max(url, n, args.seconds, args.window, args.seed)
                else:
                    r = await run_rate(url, n, args.seconds, args.rate, args.seed)
                wall = time.perf_counter() - t0
                r["server_cpu"] = round((cpu_seconds(server.pid) - s0) / wall, 2)  # cores busy, on average
                r["client_cpu"] = round((time.process_time() - c0) / wall, 2)
                runs.append(r)
                console.print(f"  {r['mode']:>4} {n:>3} bots: {r['orders_per_s']:>9,.0f} orders/s  p50 {r['p50_ms']:.3f} ms  "
                              f"p99 {r['p99_ms']:.3f} ms (from the write: p50 {r['wire_p50_ms']:.3f} p99 {r['wire_p99_ms']:.3f})  "
                              f"dropped {r['dropped']}  reordered {r['reordered']}  "
                              f"cpu server {r['server_cpu']:.2f} client {r['client_cpu']:.2f}")
        if args.subscribers:
            relay, relay_url = await asyncio.to_thread(start_relay, url, ["--log-level", "WARNING", "--queue", "100000"],
                                                       stderr=subprocess.DEVNULL)
            fanout = await run_fanout(url, relay_url, args.subscribers, min(10, max(bot_counts)), args.fanout_rate,
                                      args.seconds, args.seed)
            console.print(f"  fan-out {args.subscribers} subscribers: {fanout['md_per_s']:,.0f} msgs/s delivered, lag p50 "
                          f"{fanout['lag_p50_ms']:.2f} ms p99 {fanout['lag_p99_ms']:.2f} ms, gaps {fanout['gaps']}")
    finally:
        if relay is not None:
            relay.stop()
        server.stop()
        err.close()
    base = run_inprocess(args.inprocess_orders, max(bot_counts), args.seed)
    return {"runs": runs, "fanout": fanout, **base}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__.split("\n\n")[0])
    p.add_argument("--bots", default="1,10,50", help="connection counts (default 1,10,50)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each run (default 3)")
    p.add_argument("--window", type=int, default=32, help="requests in flight per connection in max runs (default 32)")
    p.add_argument("--rate", type=float, default=10_000.0, help="offered orders/s in total in rate runs (default 10,000)")
    p.add_argument("--subscribers", type=int, default=50, help="relay subscribers in the fan-out run (0: skip)")
    p.add_argument("--fanout-rate", type=float, default=1_000.0, help="orders/s during the fan-out run (default 1,000)")
    p.add_argument("--inprocess-orders", type=int, default=200_000, help="orders in the in-process baseline")
    p.add_argument("--journal", action="store_true", help="run the server with its journal")
    p.add_argument("--fsync", choices=("batch", "none"), default="batch", help="journal durability with --journal")
    p.add_argument("--seed", type=int, default=20261121)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 and 10 bots, 10 subscribers, 0.5 s runs")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.add_argument("--loop", choices=tuple(_LOOPS), default="precise",
                   help="the client's event loop selector (default precise: epoll with timers to the microsecond; "
                        "plain epoll rounds them up to the millisecond, which makes paced requests late)")
    args = p.parse_args(argv)
    if args.quick:
        args.bots, args.seconds, args.subscribers, args.inprocess_orders = "1,10", 0.5, 10, 20_000
        args.rate, args.fanout_rate = 2_000.0, 500.0
    console = Console(highlight=False, width=120)
    console.print(f"bench.live: workload live-mixed, {args.bots} bots, {args.seconds} s runs, window {args.window}, "
                  f"offered {args.rate:,.0f}/s, journal {'fsync=' + args.fsync if args.journal else 'off'}")
    with asyncio.Runner(loop_factory=_LOOPS[args.loop]) as runner:
        result = runner.run(_bench(args, console))
    runs = result["runs"]
    table = Table(title="live exchange over WebSockets (loopback)")
    for col in ("mode", "bots", "orders/s", "p50 ms", "p99 ms", "max ms", "dropped", "reordered", "server cpu", "client cpu"):
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(r["mode"], str(r["bots"]), f"{r['orders_per_s']:,.0f}", f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}",
                      f"{r['max_ms']:.1f}", str(r["dropped"]), str(r["reordered"]), f"{r['server_cpu']:.2f}",
                      f"{r['client_cpu']:.2f}")
    console.print(table)
    top = max(r["bots"] for r in runs)
    best = next(r for r in runs if r["mode"] == "max" and r["bots"] == top)
    fixed = next(r for r in runs if r["mode"] != "max" and r["bots"] == top)
    ratio = best["orders_per_s"] / result["engine_orders_per_s"]
    console.print(f"in-process: engine {result['engine_orders_per_s']:,.0f} orders/s, live venue core "
                  f"{result['venue_orders_per_s']:,.0f} orders/s; live over WebSockets with {top} bots = {ratio:.3f} x engine")
    summary = {
        "workload": "live-mixed", "orders_per_s": best["orders_per_s"], "p50_ms": fixed["p50_ms"], "p99_ms": fixed["p99_ms"],
        "offered_per_s": fixed.get("offered_per_s"), "bots": top, "dropped": sum(r["dropped"] for r in runs) + result["fanout"].get("dropped_orders", 0),
        "reordered": sum(r["reordered"] for r in runs), "engine_orders_per_s": result["engine_orders_per_s"],
        "venue_orders_per_s": result["venue_orders_per_s"], "ratio": round(ratio, 4), "runs": runs, "fanout": result["fanout"],
        "journal": args.fsync if args.journal else None, "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "commit": _commit(), "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(summary, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

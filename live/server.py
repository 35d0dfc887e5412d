"""The live exchange server: ``live.core.LiveVenue`` behind WebSockets. Run it with

    python -m live.server [--config FILE] [--host H] [--port N] [--journal PATH | --no-journal]
                          [--csv-dir DIR | --no-csv] [--fsync batch|none] [--print-config]

Two endpoints on one port (``docs/API_SPEC.md`` has every message):

- ``ws://HOST:PORT/`` trading: the first message is ``login`` with a trader's token; the
  connection then acts for that trader only.
- ``ws://HOST:PORT/feed`` market data, read-only by construction (its decoder knows no
  trading message): ``subscribe``, then book snapshots, sequenced updates and trades,
  performance snapshots and heartbeats. The relay (``python -m live.relay``) subscribes
  here and fans out to any number of clients.

Shape. Connection handlers decode and validate frames (schema-first, ``live.protocol``),
authenticate, rate-limit (token bucket per connection) and put requests in one inbox.
One task, the owner, holds the venue: it takes every waiting request as a batch, applies
them in order, appends the batch's journal records with one write (``fsync="batch"``:
then fdatasyncs them in a worker thread, so requests keep arriving meanwhile and form the
next batch: group commit), and only then sends replies, private events and market data.
Nothing is acknowledged before it is journaled. Without a journal, a trading request
that finds the owner idle (waiting, nothing queued) is applied at once by the connection
that received it, exactly as a batch of one, with no task switch; its replies, events
and market data are written once that connection's received bytes are all handled.
Sends never block the owner: each connection has a queue, written at the end of the
loop tick (or of the read) as one ``write`` of consecutive frames
(``live.marketdata.FrameWriter``: a reply and the fills it caused cost one system call).
A trading connection that lets its queue fill is closed (private events cannot be
dropped); a feed subscriber that does gets its backlog dropped and a fresh snapshot
(``live.marketdata.Subscriber``).

Bad input never hurts the server or the session: every refused frame gets an ``error``
with a code and changes nothing; only a frame over ``max_frame_bytes`` closes the
connection (1009), and a failed login closes it (1008).

On start the server replays its journal (``live.journal``) to the same book, accounts
and sequence numbers, and rebuilds trade rows a crash kept from the CSV files
(``live.csv_sink``). SIGTERM or SIGINT shut it down cleanly: connections closed, the
inbox drained, the journal synced, CSV rows flushed. The first line on stdout is
``live.server listening on ws://HOST:PORT`` (port 0 picks a free port).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event

from exchange.events import Fill
from live import protocol as P
from live.config import DEFAULT_CONFIG, ServerConfig, config_to_dict, load_config
from live.core import LiveVenue, Outbox, Record
from live.csv_sink import CsvSink, rebuild_trades
from live.journal import Journal
from live.limits import TokenBucket
from live.marketdata import FrameWriter, Subscriber, tune_gc

log = logging.getLogger("live.server")

TRADING_PATHS = ("/", "/trade")
FEED_PATH = "/feed"
MAX_BATCH = 1_024

# inbox item kinds
_TRADE, _DISCONNECT, _SUBSCRIBE, _SNAPSHOT, _STATE, _PERFORMANCE, _HEARTBEAT, _STOP = range(8)


class Session(FrameWriter):
    """One trading connection: its trader (after login) and its outgoing messages.

    ``send`` never waits; what is queued goes out at the end of the loop tick, in one
    write (``live.marketdata.FrameWriter``), or, with ``later=True``, when the caller
    calls ``flush`` (the owner does, after delivering a batch). A connection whose
    backlog reaches ``maxsize`` messages is cut (private events cannot be dropped)."""

    def __init__(self, ws: ServerConnection, maxsize: int) -> None:
        super().__init__(ws)
        self.trader: int | None = None
        self.maxsize = maxsize
        self.refused = False  # login failed: its frames are ignored until the close
        self.login_timer: asyncio.TimerHandle | None = None

    def send(self, data: bytes, later: bool = False) -> bool:
        """Queue ``data``; True if the caller must ``flush`` (only with ``later``)."""
        if self.closed:
            return False
        if len(self._queue) >= self.maxsize:
            self.close()
            log.warning("trader %s: send queue full, closing the connection", self.trader)
            asyncio.create_task(self.ws.close(1008, "slow consumer: send queue full"))
            return False
        return self._enqueue(data, later)


class _Connection(ServerConnection):
    """websockets' server connection; a trading connection's messages go to ``on_message``.

    Each whole message (fragments joined) of a trading connection is handed over as it is
    parsed, in ``data_received``: no task switch per message; ``after_data`` runs once the
    received bytes are all handled. Messages parsed before the handler sets ``on_message``
    wait in ``early``. Control frames, and every frame of a feed connection, take
    websockets' own path (``recv``)."""

    on_message: Callable[[bytes], None] | None = None
    after_data: Callable[[], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.early: list[bytes] = []
        self._fragments: list[bytes] | None = None

    def process_event(self, event: Event) -> None:
        on_message = self.on_message
        if on_message is not None and type(event) is Frame and event.opcode is Opcode.TEXT and event.fin:
            on_message(bytes(event.data))  # the common case: a whole text message
            return
        if type(event) is not Frame or event.opcode not in DATA_OPCODES or self.request is None or self.request.path == FEED_PATH:
            return super().process_event(event)
        if event.opcode is not Opcode.CONT:
            if not event.fin:
                self._fragments = [bytes(event.data)]
                return
            data = bytes(event.data)
        else:  # the protocol checks the fragment sequence and the size of the whole message
            assert self._fragments is not None
            self._fragments.append(bytes(event.data))
            if not event.fin:
                return
            data, self._fragments = b"".join(self._fragments), None
        if self.on_message is None:
            self.early.append(data)
        else:
            self.on_message(data)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.after_data is not None:
            self.after_data()


class ExchangeServer:
    """The asyncio shell around ``LiveVenue`` (see the module docstring).

    ``await start()`` recovers from the journal and listens; ``port`` is then the bound
    port; ``await stop()`` shuts down cleanly. ``async with ExchangeServer(cfg) as srv``
    does both."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.venue = LiveVenue(config)
        self.port: int | None = None
        self.journal: Journal | None = None
        self.csv: CsvSink | None = None
        self.replayed = 0
        self.rebuilt_rows = 0
        self.sessions: dict[int, set[Session]] = {}
        self.subscribers: set[Subscriber] = set()
        self.batches = 0
        self._server: Server | None = None
        self._inbox: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._last_performance: bytes | None = None
        self._idle = False  # the owner waits on an empty inbox and there is no journal: apply at once
        self._dirty: list[FrameWriter] = []  # connections with messages from requests applied at once
        self.failed = False  # the exchange task or the shutdown failed: exit non-zero
        self.stopped = asyncio.Event()

    # ---- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        if cfg.csv_dir is not None:
            self.csv = CsvSink(cfg.csv_dir, self.venue.exchange, sorted(self.venue.traders), flush_ms=cfg.csv_flush_ms)
        if cfg.journal is not None:
            self.journal, records = Journal.open(cfg.journal, cfg.venue_fingerprint())
            self._recover(records)
        if self.csv is not None:
            self.csv.start()
        self._inbox = asyncio.Queue()
        self._server = await serve(
            self._handler,
            cfg.host,
            cfg.port,
            compression=None,  # measured: 10-25% more throughput without (STACK.md)
            max_size=cfg.max_frame_bytes,
            process_request=self._check_path,
            create_connection=_Connection,
            close_timeout=2,  # a peer that ignores the close handshake does not hold up a shutdown
        )
        self.port = self._server.sockets[0].getsockname()[1]
        owner = asyncio.create_task(self._owner(), name="exchange-owner")
        owner.add_done_callback(self._owner_done)
        self._tasks = [owner, asyncio.create_task(self._ticker(), name="ticker")]

    def _recover(self, records: list[Record]) -> None:
        """Replay the journal into the venue; bring the CSV files up to date with it."""
        t0 = time.perf_counter()
        fills: list[tuple[int, str, list]] = []  # log entries with trades, for rebuild_trades
        chunk: list[tuple[int, str, list]] = []
        for record in records:
            out = Outbox()
            self.venue.apply(record, out)
            if self.csv is not None:
                chunk.extend(out.log)
                if len(chunk) >= 10_000:
                    fills.extend(e for e in chunk if any(type(ev) is Fill for ev in e[2]))
                    self.csv.resume(chunk)
                    chunk = []
        self.replayed = len(records)
        if self.csv is not None:
            fills.extend(e for e in chunk if any(type(ev) is Fill for ev in e[2]))
            self.csv.resume(chunk)
            assert self.config.csv_dir is not None
            self.rebuilt_rows = rebuild_trades(self.config.csv_dir, self.venue.exchange, fills)
        if records:
            log.info("replayed %d journaled commands in %.2f s", len(records), time.perf_counter() - t0)

    def _owner_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:  # e.g. the journal cannot be written
            self._fail(task.exception())

    def _fail(self, exc: BaseException | None) -> None:
        log.critical("the exchange task failed; shutting down", exc_info=exc)
        self.failed = True
        asyncio.get_running_loop().create_task(self.stop())

    async def stop(self) -> None:
        """Close connections, apply what is queued, sync the journal, flush CSV."""
        if self._closing:
            await self.stopped.wait()
            return
        self._closing = True
        try:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            owner, ticker = self._tasks or (None, None)
            if ticker is not None:
                ticker.cancel()
            if owner is not None and not owner.done():
                assert self._inbox is not None
                self._inbox.put_nowait((_STOP,))
                await owner
        finally:
            try:
                if self.journal is not None:
                    self.journal.close()
                if self.csv is not None:
                    await asyncio.to_thread(self.csv.close)
            except Exception:
                log.exception("shutdown: could not close the journal or the CSV files")
                self.failed = True
            self.stopped.set()

    async def __aenter__(self) -> ExchangeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port}"

    # ---- connections --------------------------------------------------------------------------
    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path in TRADING_PATHS or request.path == FEED_PATH:
            return None
        return connection.respond(HTTPStatus.NOT_FOUND, f"no endpoint {request.path}; use / (trading) or /feed\n")

    async def _handler(self, ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == FEED_PATH:
            await self._feed_session(ws)
        else:
            await self._trading_session(ws)

    def _frame_problem(self, raw: bytes, bucket: TokenBucket) -> P.Error | None:
        if not bucket.take():
            req = P.req_of(raw) if len(raw) <= self.config.max_message_bytes else None
            return P.Error(code=P.ErrorCode.RATE_LIMITED, message=f"over {bucket.rate:g} messages/s (burst {bucket.burst}); dropped", req=req)
        if len(raw) > self.config.max_message_bytes:
            return P.Error(code=P.ErrorCode.MESSAGE_TOO_LARGE, message=f"{len(raw)} bytes > max_message_bytes {self.config.max_message_bytes}")
        return None

    async def _trading_session(self, ws: _Connection) -> None:
        cfg, inbox = self.config, self._inbox
        assert inbox is not None
        session = Session(ws, cfg.session_queue)
        session.login_timer = asyncio.get_running_loop().call_later(cfg.login_timeout_s, self._login_timeout, session)
        on_message = self._trading_receiver(session)
        try:
            for raw in ws.early:
                on_message(raw)
            ws.early.clear()
            self._flush_dirty()
            ws.on_message, ws.after_data = on_message, self._flush_dirty
            await ws.wait_closed()
        finally:
            ws.on_message = ws.after_data = None
            session.login_timer.cancel()
            session.close()
            trader = session.trader
            if trader is not None:
                mine = self.sessions.get(trader)
                if mine is not None:
                    mine.discard(session)
                    if not mine:
                        del self.sessions[trader]
                        if not self._closing:
                            inbox.put_nowait((_DISCONNECT, trader))

    def _trading_receiver(self, session: Session) -> Callable[[bytes], None]:
        """The function that takes each message of a trading connection (synchronously)."""
        cfg, inbox = self.config, self._inbox
        assert inbox is not None
        bucket = TokenBucket(cfg.rate_limit.rate, cfg.rate_limit.burst)
        send = session.send

        def on_message(raw: bytes) -> None:
            if session.refused:
                return
            problem = self._frame_problem(raw, bucket)
            if problem is not None:
                send(P.encode(problem))
                return
            try:
                msg = P.decode_trading(raw)
            except P.ProtocolError as exc:
                send(P.encode(P.Error(code=exc.code, message=exc.message, req=exc.req)))
                return
            t = type(msg)
            if t is P.Ping:
                send(P.encode(P.Pong(ts=time.time_ns(), req=msg.req)))
            elif session.trader is None:
                if t is P.Login:
                    if not self._login(session, msg):  # type: ignore[arg-type]
                        session.refused = True
                        error = P.Error(code=P.ErrorCode.AUTH_FAILED, message="unknown token", req=msg.req)  # type: ignore[union-attr]
                        asyncio.create_task(self._refuse(session, error, "authentication failed"))  # the error precedes the close
                    elif session.login_timer is not None:
                        session.login_timer.cancel()
                else:
                    send(P.encode(P.Error(code=P.ErrorCode.NOT_LOGGED_IN, message="send login first", req=getattr(msg, "req", None))))
            elif self._idle and inbox.empty():
                self._apply_now(session, msg)  # type: ignore[arg-type]
            elif inbox.qsize() >= cfg.inbox_limit:
                send(P.encode(P.Error(code=P.ErrorCode.OVERLOADED, message="the exchange is busy; retry", req=getattr(msg, "req", None))))
            else:
                inbox.put_nowait((_TRADE, session, msg))

        def guarded(raw: bytes) -> None:
            try:
                on_message(raw)
            except Exception:  # a bug must not take the connection (or the server) down
                log.exception("failed to handle a message from trader %s", session.trader)
                send(P.encode(P.Error(code=P.ErrorCode.INTERNAL, message="internal error; logged", req=None)))

        return guarded

    def _login(self, session: Session, msg: P.Login) -> bool:
        trader = self.venue.authenticate(msg.token)
        if trader is None:
            return False
        session.trader = trader.trader
        self.sessions.setdefault(trader.trader, set()).add(session)
        rl = self.config.rate_limit
        session.send(P.encode(P.Welcome(
            protocol=P.PROTOCOL_VERSION, trader=trader.trader, name=trader.name, instruments=self.venue.instruments,
            rate=rl.rate, burst=rl.burst, max_message_bytes=self.config.max_message_bytes,
            cancel_on_disconnect=trader.cancel_on_disconnect, ts=time.time_ns(), req=msg.req,
        )))
        log.info("trader %d (%s) logged in from %s", trader.trader, trader.name, session.ws.remote_address)
        return True

    def _login_timeout(self, session: Session) -> None:
        if session.trader is None and not session.refused:
            session.refused = True
            asyncio.create_task(self._refuse(session, P.Error(code=P.ErrorCode.NOT_LOGGED_IN, message="no login in time"), "login timeout"))

    @staticmethod
    async def _refuse(session: Session, error: P.Error, reason: str) -> None:
        """Send ``error`` after whatever is queued, then close the connection."""
        session.send(P.encode(error))
        session.flush()
        try:
            await session.ws.close(1008, reason)
        except ConnectionClosed:
            pass

    async def _feed_session(self, ws: ServerConnection) -> None:
        cfg, inbox = self.config, self._inbox
        assert inbox is not None
        sub = Subscriber(ws, cfg.feed_queue, self._resync)
        bucket = TokenBucket(cfg.rate_limit.rate, cfg.rate_limit.burst)
        try:
            while True:
                raw = await ws.recv(decode=False)
                problem = self._frame_problem(raw, bucket)
                if problem is not None:
                    sub.control(P.encode(problem))
                    continue
                try:
                    msg = P.decode_feed(raw)
                except P.ProtocolError as exc:
                    sub.control(P.encode(P.Error(code=exc.code, message=exc.message, req=exc.req)))
                    continue
                error = self._feed_problem(sub, msg)
                if error is not None:
                    sub.control(P.encode(error))
                elif type(msg) is P.Ping:
                    sub.control(P.encode(P.Pong(ts=time.time_ns(), req=msg.req)))
                elif type(msg) is P.Subscribe:
                    sub.authorized = True
                    inbox.put_nowait((_SUBSCRIBE, sub, msg))
                elif type(msg) is P.SnapshotRequest:
                    inbox.put_nowait((_SNAPSHOT, sub, (msg.symbol,), "request", msg.req))
                else:
                    inbox.put_nowait((_STATE, sub, msg.req))
        except ConnectionClosed:
            pass
        finally:
            self.subscribers.discard(sub)
            sub.close()

    def _feed_problem(self, sub: Subscriber, msg: P.FeedRequest) -> P.Error | None:
        t = type(msg)
        req = msg.req
        if t is P.Subscribe:
            token = self.config.feed_token
            if token is not None and msg.token != token:  # type: ignore[union-attr]
                return P.Error(code=P.ErrorCode.AUTH_FAILED, message="this feed needs its token", req=req)
            unknown = sorted(set(msg.symbols or ()) - set(self.venue.specs))  # type: ignore[union-attr]
            if unknown:
                return P.Error(code=P.ErrorCode.UNKNOWN_SYMBOL, message=f"unknown symbols {unknown}", req=req)
        elif t is P.SnapshotRequest:
            if msg.symbol not in self.venue.specs:  # type: ignore[union-attr]
                return P.Error(code=P.ErrorCode.UNKNOWN_SYMBOL, message=f"unknown symbol {msg.symbol!r}", req=req)  # type: ignore[union-attr]
            if not sub.wants(msg.symbol):  # type: ignore[union-attr]
                return P.Error(code=P.ErrorCode.NOT_SUBSCRIBED, message=f"not subscribed to {msg.symbol!r}", req=req)  # type: ignore[union-attr]
        elif t is P.GetState and self.config.feed_token is not None and not sub.authorized:
            return P.Error(code=P.ErrorCode.NOT_SUBSCRIBED, message="subscribe (with the feed token) first", req=req)
        return None

    def _resync(self, sub: Subscriber) -> None:
        """A subscriber fell behind: the owner sends it fresh snapshots at its next batch."""
        assert self._inbox is not None
        log.info("feed subscriber %s too slow: backlog dropped, re-snapshot", sub.ws.remote_address)
        symbols = tuple(s for s in self.venue.specs if sub.wants(s))
        self._inbox.put_nowait((_SNAPSHOT, sub, symbols, "slow_consumer", None))

    async def _ticker(self) -> None:
        """Ask the owner for performance snapshots and heartbeats on schedule."""
        assert self._inbox is not None
        perf_s, beat_s = self.config.performance_ms / 1000, self.config.heartbeat_ms / 1000
        next_perf = next_beat = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_perf:
                next_perf = now + perf_s
                if self.venue.dirty:
                    self._inbox.put_nowait((_PERFORMANCE,))
            if now >= next_beat:
                next_beat = now + beat_s
                self._inbox.put_nowait((_HEARTBEAT,))
            await asyncio.sleep(max(0.0, min(next_perf, next_beat) - time.monotonic()))

    # ---- the owner: the only task that touches the venue ------------------------------------
    async def _owner(self) -> None:
        inbox = self._inbox
        assert inbox is not None
        journal = self.journal
        fsync = self.config.fsync == "batch"
        while True:
            self._idle = journal is None
            batch = [await inbox.get()]
            self._idle = False
            while len(batch) < MAX_BATCH and not inbox.empty():
                batch.append(inbox.get_nowait())
            records: list[Record] = []
            deliveries: list[tuple] = []
            stop = False
            for item in batch:
                if item[0] == _STOP:
                    stop = True
                else:
                    self._process_guarded(item, records, deliveries)
            if records and journal is not None:
                journal.append(records)
                if fsync:
                    await asyncio.to_thread(journal.sync)
            self.batches += 1
            self._deliver(deliveries)
            if stop:
                return

    def _apply_now(self, session: Session, msg: P.TradingRequest) -> None:
        """The owner's work for a batch of one trading request, done as it is received while
        the owner is idle (no journal, nothing queued): no task switch. The writes wait
        for ``_flush_dirty``."""
        venue, out, dirty = self.venue, Outbox(), self._dirty
        self.batches += 1
        try:
            venue.handle(session.trader, msg, venue.stamp(time.time_ns()), out)  # type: ignore[arg-type]
            failed = False
        except Exception:  # a bug in one request must not take the venue down
            log.exception("failed to process a request of trader %s", session.trader)
            failed = True
        try:
            self._deliver_out(session, out, dirty)
            if failed and session.send(_internal_error(msg), True):
                dirty.append(session)
        except Exception as exc:  # as if the owner had failed
            self._fail(exc)

    def _flush_dirty(self) -> None:
        """Write what ``_apply_now`` queued (after all the messages a read brought)."""
        if self._dirty:
            dirty, self._dirty = self._dirty, []
            for s in dirty:
                s.flush()

    def _process_guarded(self, item: tuple, records: list[Record], deliveries: list[tuple]) -> None:
        try:
            self._process(item, records, deliveries)
        except Exception:  # a bug in one request must not take the venue down
            log.exception("failed to process %r", item[:1])
            if item[0] == _TRADE:
                deliveries.append(("direct", item[1], [_internal_error(item[2])]))

    def _process(self, item: tuple, records: list[Record], deliveries: list[tuple]) -> None:
        venue = self.venue
        kind = item[0]
        ts = venue.stamp(time.time_ns())
        if kind == _TRADE or kind == _DISCONNECT:
            out = Outbox()
            try:
                if kind == _TRADE:
                    venue.handle(item[1].trader, item[2], ts, out)
                elif not self.sessions.get(item[1]):  # not back already
                    venue.disconnect(item[1], ts, out)
            finally:  # whatever reached the engine is journaled, even if routing failed after it
                records.extend(out.records)
                deliveries.append(("out", item[1] if kind == _TRADE else None, out))
        elif kind == _SUBSCRIBE:
            _, sub, msg = item
            symbols = list(venue.specs) if msg.symbols is None else list(dict.fromkeys(msg.symbols))
            head = [P.encode(P.Subscribed(symbols=symbols, instruments=venue.instruments, ts=ts, req=msg.req))]
            head += [P.encode(venue.snapshot(s, "subscribe", ts)) for s in symbols]
            if self._last_performance is not None:
                head.append(self._last_performance)
            deliveries.append(("register", sub, (msg.symbols, head)))
        elif kind == _SNAPSHOT:
            _, sub, symbols, reason, req = item
            snaps = [P.encode(venue.snapshot(s, reason, ts, req)) for s in symbols]
            deliveries.append(("resync" if reason == "slow_consumer" else "direct", sub, snaps))
        elif kind == _STATE:
            deliveries.append(("direct", item[1], [P.encode(venue.state(ts, item[2]))]))
        elif kind == _PERFORMANCE:
            data = P.encode(venue.performance(ts))
            self._last_performance = data
            deliveries.append(("public", None, data))
        elif kind == _HEARTBEAT:
            deliveries.append(("public", None, P.encode(venue.heartbeat(ts))))

    def _deliver(self, deliveries: Iterable[tuple], dirty: list[FrameWriter] | None = None) -> None:
        """Queue every message of the batch, then write each trading connection's at once,
        or, given ``dirty``, add the connections to write to it (the caller writes them)."""
        subscribers = self.subscribers
        now = dirty is None
        if dirty is None:
            dirty = []
        try:
            for tag, target, payload in deliveries:
                if tag == "out":
                    self._deliver_out(target, payload, dirty)
                elif tag == "public":
                    for sub in subscribers:
                        sub.push(payload, None)
                elif tag == "register":
                    symbols, head = payload
                    target.subscribe(symbols)
                    subscribers.add(target)
                    target.resync(head)
                elif tag == "resync":
                    target.resync(payload)
                elif type(target) is Session:  # direct, to a trading connection
                    for data in payload:
                        if target.send(data, True):
                            dirty.append(target)
                else:  # direct, to a feed subscriber
                    for data in payload:
                        target.control(data)
        finally:  # written even if a delivery failed: a queue marked due must be written
            if now:
                for s in dirty:
                    s.flush()

    def _deliver_out(self, target: Session | None, out: Outbox, dirty: list[FrameWriter]) -> None:
        """Queue what one venue call produced: replies to ``target`` (None: nobody asked),
        private messages to their traders' connections, market data to subscribers."""
        encode = P.encode
        if target is not None:
            for m in out.replies:
                if target.send(encode(m), True):
                    dirty.append(target)
        if out.private:
            sessions = self.sessions
            for trader, m in out.private:
                mine = sessions.get(trader)
                if mine:
                    data = encode(m)
                    for s in mine:
                        if s.send(data, True):
                            dirty.append(s)
        subscribers = self.subscribers
        if subscribers:  # nothing to encode for nobody
            for symbol, m in out.public:
                data = encode(m)
                for sub in subscribers:
                    if sub.push(data, symbol, True):
                        dirty.append(sub)
        if out.log and self.csv is not None:
            self.csv.add(out.log)


def _internal_error(msg: object) -> bytes:
    return P.encode(P.Error(code=P.ErrorCode.INTERNAL, message="internal error; logged", req=getattr(msg, "req", None)))


# ---- command line ----------------------------------------------------------------------------
def build_config(argv: list[str] | None = None) -> tuple[ServerConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m live.server", description="The live exchange server (WebSockets).")
    parser.add_argument("--config", help="JSON config file (default: the built-in demo venue)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (0: any free port; default 8765)")
    parser.add_argument("--journal", help="journal path (default out/live/journal.jsonl)")
    parser.add_argument("--no-journal", action="store_true", help="run without a journal (state lost on exit)")
    parser.add_argument("--csv-dir", help="directory for trades.csv/performance.csv (default out/live)")
    parser.add_argument("--no-csv", action="store_true", help="write no CSV files")
    parser.add_argument("--fsync", choices=("batch", "none"), help="journal durability (default batch)")
    parser.add_argument("--print-config", action="store_true", help="print the effective config as JSON and exit")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.config:
        config = load_config(args.config)
    else:
        config = DEFAULT_CONFIG.with_overrides(journal="out/live/journal.jsonl", csv_dir="out/live")
    config = config.with_overrides(host=args.host, port=args.port, journal=args.journal, csv_dir=args.csv_dir, fsync=args.fsync)
    if args.no_journal:
        config = _without(config, "journal")
    if args.no_csv:
        config = _without(config, "csv_dir")
    return config, args


def _without(config: ServerConfig, name: str) -> ServerConfig:
    return dataclasses.replace(config, **{name: None})


async def run(config: ServerConfig) -> int:
    """Serve until SIGTERM/SIGINT, then shut down cleanly; the exit status."""
    server = ExchangeServer(config)
    await server.start()
    tune_gc()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before announcing: a launcher may stop us at once
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(server.stop()))
    print(f"live.server listening on {server.url} (trading: /, market data: /feed)", flush=True)
    await server.stopped.wait()
    log.info("stopped: %d batches; journal %s", server.batches, config.journal)
    return 1 if server.failed else 0


def main(argv: list[str] | None = None) -> None:
    config, args = build_config(argv)
    if args.print_config:
        json.dump(config_to_dict(config), sys.stdout, indent=2)
        print()
        return
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    sys.exit(asyncio.run(run(config)))


if __name__ == "__main__":
    main()

"""Bots on the live exchange: scripted traders, plugins and trained policies, one process each.

    python -m live.bots --config configs/bots.json                 # every bot, each its own process
    python -m live.bots --config configs/bots.json --name mm-xyz   # one bot, in this process
        [--exchange ws://127.0.0.1:8765] [--feed ws://127.0.0.1:8766] [--seconds N] [--list]

A bot is two WebSocket connections: a trading connection to the exchange (``login`` with
its trader token) and a market-data subscription (the relay, or the exchange's ``/feed``).
What drives it is one of three *brains*, chosen per bot in the config:

- ``"agent": NAME``: a scripted trader from ``agents`` (``make_agent(NAME, trader, symbol,
  Config(**params))``), run unchanged through ``live.live_context`` (its ``Context``,
  ``BookView`` and ``OrderTracker`` work as in the simulator);
- ``"plugin": "module:Class"``: your own class with the small interface below (the
  tutorial is ``docs/BOT_INTEGRATION_GUIDE.md``);
- ``"policy": PATH``: a checkpoint written by ``agents.policy.save_policy``; every
  ``step_ms`` of wall time (default: the env's ``step_ns``) it builds the observation from
  the feed with the env's own code (``live.policy_bot.PolicyDriver``), acts, and sends
  the orders the env would send.

Plugin interface. ``Class(**params)``; every method optional; ``bot`` is a ``Bot``:

    symbols: list[str] | None = None   # market data to subscribe to (None: every symbol)
    interval_s: float | None = 1.0     # period of on_timer (None: no timer)
    def on_start(self, bot): ...       # connected (again): books hold fresh snapshots
    def on_timer(self, bot): ...
    def on_market(self, bot, msg): ... # book_snapshot / book_update / trade, after bot.books applied it
    def on_order(self, bot, msg): ...  # own accepted / rejected / fill / cancelled / modified / error...
    def on_stop(self, bot): ...        # the connection dropped, or the bot is stopping

Connections drop. A bot reconnects with exponential backoff (``backoff_s`` doubling to
``max_backoff_s``, times a jitter factor in [0.5, 1) drawn from a generator seeded per
bot), logs in again, resubscribes (fresh snapshots), asks for its account and brings its
order state in line with it (orders the venue cancelled on disconnect are reported
cancelled; the position is the venue's). A gap in a market-data stream (a ``seq`` that
is not the next one, or a heartbeat ahead of the book) is answered with a ``snapshot``
request and the symbol's updates are ignored until it comes. Timers of a brain do not
fire while disconnected; they fire once when the bot is back.

Config (JSON; unknown keys are refused)::

    {"exchange": "ws://127.0.0.1:8765", "feed": "ws://127.0.0.1:8766", "seed": 0,
     "bots": [{"name": "mm-xyz", "token": "alice-demo-token", "agent": "market_maker",
               "symbol": "XYZ", "params": {"reference_price": 10000}}, ...]}

Each bot process prints ``live.bots NAME connected as trader T`` on every (re)connect and,
when it stops, one line ``live.bots NAME stopped {json}`` with its counters.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from agents.base import OrderTracker
from exchange.commands import Cancel, Modify, NewOrder
from exchange.enums import OrderType, TimeInForce
from exchange.instrument import InstrumentSpec
from live import protocol as P
from live.live_context import LiveContext, OrderWire, OwnPrints, deliver, feed_events, snapshot_events, spec_from_wire, start_agent
from live.marketdata import SEQUENCED, L2Book

log = logging.getLogger("live.bots")

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "configs" / "bots.json"


def say(line: str) -> None:
    """One line on stdout with one write (bot processes share their parent's stdout)."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), (line + "\n").encode())


# ---- config ---------------------------------------------------------------------------------------
class BotSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One bot: its name, trader token and exactly one of ``agent``, ``plugin``, ``policy``."""

    name: str
    token: str
    agent: str | None = None  # a name of agents.AGENTS
    plugin: str | None = None  # "module:Class"
    policy: str | None = None  # checkpoint path (agents.policy format)
    symbol: str | None = None  # agent / policy symbol (policy default: the one it was trained on)
    params: dict[str, Any] = {}  # agent config fields, or plugin keyword arguments
    step_ms: float | None = None  # policy: wall time per step (default: the env's step_ns)
    seed: int | None = None  # default: hash of the config seed and the bot's name

    def kind(self) -> str:
        kinds = [k for k in ("agent", "plugin", "policy") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"bot {self.name!r}: give exactly one of agent, plugin, policy (got {kinds or 'none'})")
        return kinds[0]


class BotsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the exchange and the feed are, the seed, the backoff and the bots."""

    bots: list[BotSpec]
    exchange: str = "ws://127.0.0.1:8765"
    feed: str | None = None  # the relay; None: the exchange's /feed
    seed: int = 0
    backoff_s: float = 0.1
    max_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        names = [b.name for b in self.bots]
        if len(set(names)) != len(names):
            raise ValueError(f"bot names must be distinct: {names}")
        for b in self.bots:
            b.kind()

    @property
    def feed_url(self) -> str:
        return self.feed if self.feed else self.exchange.rstrip("/") + "/feed"

    def bot(self, name: str) -> BotSpec:
        for b in self.bots:
            if b.name == name:
                return b
        raise KeyError(f"no bot named {name!r}; bots: {[b.name for b in self.bots]}")


def load_bots_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> BotsConfig:
    """Read a bots config (default ``configs/bots.json``); ``overrides`` replace top-level keys."""
    data = json.loads(Path(path or DEFAULT_CONFIG_PATH).read_text())
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(data, BotsConfig)
    except msgspec.ValidationError as exc:
        raise ValueError(f"bots config {path}: {exc}") from None


def bot_seed(config: BotsConfig, spec: BotSpec) -> str:
    return f"{config.seed}/{spec.name}" if spec.seed is None else str(spec.seed)


# ---- what every brain gets ------------------------------------------------------------------------
class Session:
    """One connected pair (trading + market data): send requests, read both, detect gaps."""

    def __init__(self, bot: BotRunner, trading: ClientConnection, feed: ClientConnection, welcome: P.Welcome) -> None:
        self.bot = bot
        self.trading, self.feed = trading, feed
        self.welcome = welcome
        self.trader = welcome.trader
        self.instruments = {i.symbol: i for i in welcome.instruments}
        self.awaiting: set[str] = set()
        self.closed = False
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._replies: dict[int, asyncio.Future] = {}

    def send(self, msg: P.TradingRequest) -> None:
        """Queue a request on the trading connection (sent in order)."""
        if self.closed:
            return
        self.bot.stats["sent"] += 1
        self._out.put_nowait(P.encode(msg))

    async def ask(self, msg: Any, timeout: float = 5) -> P.ServerMessage:
        """Send ``msg`` (with its ``req``) and wait for the reply carrying that ``req``."""
        fut = asyncio.get_running_loop().create_future()
        self._replies[msg.req] = fut
        self._out.put_nowait(P.encode(msg))
        return await asyncio.wait_for(fut, timeout)

    def request_snapshot(self, symbol: str) -> None:
        if symbol in self.awaiting:
            return
        self.awaiting.add(symbol)
        self.bot.stats["gaps"] += 1
        asyncio.ensure_future(self._send_feed(P.encode(P.SnapshotRequest(symbol=symbol))))

    async def _send_feed(self, data: bytes) -> None:
        try:
            await self.feed.send(data, text=True)
        except ConnectionClosed:
            pass

    async def _write(self) -> None:
        while True:
            data = await self._out.get()
            await self.trading.send(data, text=True)

    async def _read_trading(self, brain: Brain) -> None:
        async for raw in self.trading:
            msg = P.decode_server(raw)
            req = getattr(msg, "req", None)
            fut = self._replies.pop(req, None) if req is not None else None
            if fut is not None:
                if not fut.done():
                    fut.set_result(msg)
                continue
            if type(msg) is P.Fill:
                self.bot.stats["fills"] += 1
            elif type(msg) is P.Error:
                self.bot.stats["errors"] += 1
                log.debug("%s: error %s: %s", self.bot.spec.name, msg.code, msg.message)
            if brain.started:
                brain.on_private(msg)

    async def _read_feed(self, brain: Brain) -> None:
        async for raw in self.feed:
            self.on_feed(P.decode_server(raw), brain)

    def on_feed(self, msg: P.ServerMessage, brain: Brain) -> None:
        t = type(msg)
        if t in SEQUENCED:
            symbol = msg.symbol  # type: ignore[union-attr]
            if symbol in self.awaiting:
                return
            book = brain.books.get(symbol)
            if book is None:
                return
            if book.seq is None or msg.seq > book.seq + 1:  # type: ignore[union-attr]
                self.request_snapshot(symbol)
                return
            if msg.seq <= book.seq:  # type: ignore[union-attr]
                return  # already in the snapshot
            brain.on_feed(msg)
        elif t is P.BookSnapshot:
            if msg.symbol in brain.books:  # type: ignore[union-attr]
                self.awaiting.discard(msg.symbol)  # type: ignore[union-attr]
                brain.on_snapshot(msg)  # type: ignore[arg-type]
        elif t is P.Heartbeat:
            for symbol, seq in msg.seqs.items():  # type: ignore[union-attr]
                book = brain.books.get(symbol)
                if book is not None and book.seq is not None and seq > book.seq and symbol not in self.awaiting:
                    self.request_snapshot(symbol)
        elif t is P.Error:
            log.warning("%s: feed error %s: %s", self.bot.spec.name, msg.code, msg.message)  # type: ignore[union-attr]
        elif brain.started:
            brain.on_other(msg)

    async def close(self) -> None:
        self.closed = True
        for ws in (self.trading, self.feed):
            try:
                await asyncio.wait_for(ws.close(), 2)
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass


class Brain:
    """What drives a bot (subclasses: agent, plugin, policy). ``books``: symbol -> L2Book."""

    symbols: list[str] | None = None

    def __init__(self, runner: BotRunner) -> None:
        self.runner = runner
        self.books: dict[str, L2Book] = {}
        self.started = False
        self.session: Session | None = None
        self._deferred: list[Callable[[], None]] = []

    def subscribe_symbols(self, instruments: dict[str, P.Instrument]) -> list[str]:
        return list(self.symbols) if self.symbols is not None else list(instruments)

    # timers that wait while disconnected
    def call_later(self, delay_s: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay_s), self._fire, fn)

    def _fire(self, fn: Callable[[], None]) -> None:
        if self.session is None or self.session.closed or not self.started:
            self._deferred.append(fn)
            return
        try:
            fn()
        except Exception:
            log.exception("%s: a timer callback failed", self.runner.spec.name)

    def resume(self) -> None:
        deferred, self._deferred = self._deferred, []
        for fn in deferred:
            self._fire(fn)

    # hooks
    def connected(self, session: Session, account: P.Account, first: bool) -> None:
        raise NotImplementedError

    def on_feed(self, msg: P.ServerMessage) -> None:
        self.books[msg.symbol].apply(msg)  # type: ignore[union-attr, arg-type]

    def on_snapshot(self, msg: P.BookSnapshot) -> None:
        self.books[msg.symbol].reset(msg)

    def on_private(self, msg: P.ServerMessage) -> None:
        pass

    def on_other(self, msg: P.ServerMessage) -> None:
        pass

    def disconnected(self) -> None:
        pass

    def stopping(self) -> None:
        pass


# ---- scripted agents --------------------------------------------------------------------------------
class AgentBrain(Brain):
    """A scripted trader from ``agents`` through ``live.live_context``."""

    def __init__(self, runner: BotRunner) -> None:
        super().__init__(runner)
        from agents import AGENTS

        spec = runner.spec
        if spec.agent not in AGENTS:
            raise ValueError(f"bot {spec.name!r}: unknown agent {spec.agent!r}; choose from {sorted(AGENTS)}")
        if spec.symbol is None:
            raise ValueError(f"bot {spec.name!r}: an agent needs a symbol")
        self.config_cls = AGENTS[spec.agent][1]
        self.config = self.config_cls(**spec.params)
        self.symbols = [spec.symbol]
        self.agent: Any = None
        self.ctx: LiveContext | None = None
        self.wire: OrderWire | None = None
        self._held: list[tuple[str, list]] = []  # market data that came while reconnecting
        self.prints = OwnPrints()  # each own execution reaches the agent once

    def connected(self, session: Session, account: P.Account, first: bool) -> None:
        from agents import make_agent

        runner = self.runner
        specs: dict[str, InstrumentSpec] = {s: spec_from_wire(i) for s, i in session.instruments.items()}
        if first:
            self.agent = make_agent(runner.spec.agent, session.trader, runner.spec.symbol, self.config)  # type: ignore[arg-type]
            self.wire = OrderWire(session.trader, {s: sp.default_smp_mode.name.lower() for s, sp in specs.items()})
            self.ctx = LiveContext(self.agent, self.wire, runner.rng, self.books, runner.clock, self.call_later, self._send)
        assert self.wire is not None and self.ctx is not None
        self.wire.seed_account(account)
        for symbol, events in self.wire.resync(account):
            deliver(self.agent, self.ctx, symbol, events)
        if hasattr(self.agent, "orders") and isinstance(self.agent.orders, OrderTracker):
            self.agent.orders.position = self.wire.account.position(runner.spec.symbol)  # type: ignore[arg-type]
        if first:
            start_agent(self.agent, self.ctx, specs)
        held, self._held = self._held, []
        for symbol, events in held:  # the book changes since the last connection (fresh snapshot)
            deliver(self.agent, self.ctx, symbol, events)
        self.started = True

    def _send(self, symbol: str, cmd: object) -> None:
        assert self.wire is not None and self.session is not None
        req = self.wire.request(symbol, cmd)
        if req is not None:
            self.session.send(req)

    def on_feed(self, msg: P.ServerMessage) -> None:
        self.books[msg.symbol].apply(msg)  # type: ignore[union-attr, arg-type]
        if self.prints.public(msg):
            self._deliver(msg.symbol, feed_events(msg))  # type: ignore[arg-type, union-attr]

    def on_snapshot(self, msg: P.BookSnapshot) -> None:
        book = self.books[msg.symbol]
        events = snapshot_events(book, msg) if self.agent is not None else []
        book.reset(msg)
        self.prints.public(msg)
        self._deliver(msg.symbol, events)

    def _deliver(self, symbol: str, events: list) -> None:
        """To the agent now, or, while it reconnects, after its orders are resynchronised."""
        if not events or self.agent is None:
            return
        if self.started:
            deliver(self.agent, self.ctx, symbol, events)  # type: ignore[arg-type]
        else:
            self._held.append((symbol, events))

    def on_private(self, msg: P.ServerMessage) -> None:
        assert self.wire is not None
        if type(msg) is P.Fill and self.prints.private(msg):
            self.runner.stats["prints_overtaken"] += 1
        symbol, events, released = self.wire.events(msg)
        if symbol is not None and events:
            deliver(self.agent, self.ctx, symbol, events)  # type: ignore[arg-type]
        for sym, cmd in released:
            self._send(sym, cmd)


# ---- plugins ------------------------------------------------------------------------------------------
class Bot:
    """What a plugin sees and uses (see the module docstring and the integration guide).

    ``books``: symbol -> ``L2Book`` (``best_bid()``, ``best_ask()``, ``levels()``,
    ``last_price``); ``instruments``: symbol -> ``Instrument`` (tick, lot...); ``orders``:
    an ``agents.base.OrderTracker`` of this bot's orders by the ids ``buy``/``sell``
    returned (``orders.working()``, ``orders.position``); ``account``: cash, fees and
    positions mirrored from own fills (``exchange.accounts.Account``); ``rng``: this bot's
    seeded generator; ``now_ns``: ns since the bot started."""

    def __init__(self, brain: PluginBrain) -> None:
        self._brain = brain
        self.name = brain.runner.spec.name
        self.params = dict(brain.runner.spec.params)
        self.rng = brain.runner.rng
        self.books = brain.books
        self.instruments: dict[str, P.Instrument] = {}
        self.trader = 0
        self.orders = OrderTracker(0)
        self.wire = OrderWire(0)
        self._ids = iter(range(1, 2**62))

    @property
    def account(self) -> Any:
        return self.wire.account

    @property
    def now_ns(self) -> int:
        return self._brain.runner.clock()

    def position(self, symbol: str) -> int:
        return self.wire.account.position(symbol)

    def buy(self, symbol: str, qty: int, price: int | None = None, *, tif: str = "gtc", post_only: bool = False) -> int:
        """A limit buy at ``price`` (None: a market order); returns the order's id."""
        return self._new(symbol, 1, qty, price, tif, post_only)

    def sell(self, symbol: str, qty: int, price: int | None = None, *, tif: str = "gtc", post_only: bool = False) -> int:
        """A limit sell at ``price`` (None: a market order); returns the order's id."""
        return self._new(symbol, -1, qty, price, tif, post_only)

    def _new(self, symbol: str, side: int, qty: int, price: int | None, tif: str, post_only: bool) -> int:
        oid = next(self._ids)
        kind = OrderType.LIMIT if price is not None else OrderType.MARKET
        t = P.TIFS[tif]
        self.orders.sent_new(oid, side, price, qty, t, "", self.now_ns)
        self._send(symbol, NewOrder(oid, self.trader, side, qty, price, kind, TimeInForce(t), post_only=post_only, smp_id=self.trader))
        return oid

    def modify(self, order_id: int, qty: int, price: int | None = None) -> None:
        """New open quantity and/or price for a working order (ignored if it is not settled)."""
        o = self.orders.orders.get(order_id)
        if o is None or not o.settled:
            return
        self.orders.sent_modify(order_id)
        self._send(self.wire.symbol_of.get(order_id, ""), Modify(order_id, self.trader, qty, price))

    def cancel(self, order_id: int) -> None:
        """Cancel a working order (ignored if unknown or already being cancelled)."""
        o = self.orders.orders.get(order_id)
        if o is None or o.cancelling:
            return
        self.orders.sent_cancel(order_id)
        self._send(self.wire.symbol_of.get(order_id, ""), Cancel(order_id, self.trader))

    def cancel_all(self, symbol: str | None = None) -> None:
        """Cancel all this trader's orders on ``symbol`` (None: every symbol)."""
        if self._brain.session is not None:
            self._brain.session.send(P.MassCancelRequest(symbol=symbol, req=self.wire.next_req()))

    def _send(self, symbol: str, cmd: object) -> None:
        req = self.wire.request(symbol, cmd)
        if req is not None and self._brain.session is not None:
            self._brain.session.send(req)


def load_class(path: str) -> type:
    """``"package.module:Class"`` -> the class."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"a plugin is 'module:Class', got {path!r}")
    return getattr(importlib.import_module(module), name)


class PluginBrain(Brain):
    """A ``module:Class`` plugin with the wire-level interface of the module docstring."""

    def __init__(self, runner: BotRunner) -> None:
        super().__init__(runner)
        cls = load_class(runner.spec.plugin)  # type: ignore[arg-type]
        self.plugin = cls(**runner.spec.params)
        self.symbols = getattr(self.plugin, "symbols", None)
        if self.symbols is None and runner.spec.symbol is not None:
            self.symbols = [runner.spec.symbol]
        self.bot = Bot(self)
        self._timer: asyncio.TimerHandle | None = None

    def _call(self, name: str, *args: Any) -> None:
        fn = getattr(self.plugin, name, None)
        if fn is None:
            return
        try:
            fn(self.bot, *args)
        except Exception:
            log.exception("%s: plugin %s failed", self.runner.spec.name, name)

    def connected(self, session: Session, account: P.Account, first: bool) -> None:
        bot = self.bot
        if first:
            bot.trader = session.trader
            bot.orders = OrderTracker(session.trader)
            bot.wire = OrderWire(session.trader, {s: spec_from_wire(i).default_smp_mode.name.lower() for s, i in session.instruments.items()})
        bot.instruments = session.instruments
        bot.wire.seed_account(account)
        for _, events in bot.wire.resync(account):
            for ev in events:
                bot.orders.apply(ev)
        self.started = True
        self._call("on_start")
        interval = getattr(self.plugin, "interval_s", 1.0)
        if interval and self._timer is None:
            self._timer = self.call_later(interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._call("on_timer")
        interval = getattr(self.plugin, "interval_s", 1.0)
        if interval:
            self._timer = self.call_later(interval, self._tick)

    def on_feed(self, msg: P.ServerMessage) -> None:
        self.books[msg.symbol].apply(msg)  # type: ignore[union-attr, arg-type]
        if self.started:
            self._call("on_market", msg)

    def on_snapshot(self, msg: P.BookSnapshot) -> None:
        self.books[msg.symbol].reset(msg)
        if self.started:
            self._call("on_market", msg)

    def on_private(self, msg: P.ServerMessage) -> None:
        bot = self.bot
        _, events, released = bot.wire.events(msg)
        for ev in events:
            bot.orders.apply(ev)
        for sym, cmd in released:
            bot._send(sym, cmd)
        self._call("on_order", msg)

    def disconnected(self) -> None:
        self._call("on_stop")


# ---- trained policies -------------------------------------------------------------------------------
class PolicyBrain(Brain):
    """A checkpoint's policy, stepping every ``step_ms`` of wall time (``live.policy_bot``)."""

    def __init__(self, runner: BotRunner) -> None:
        super().__init__(runner)
        from agents.policy import load_policy

        self.policy = load_policy(runner.spec.policy)  # type: ignore[arg-type]
        self.driver: Any = None
        cfg = self.policy.trading_config()
        self.symbol = runner.spec.symbol or cfg.symbol
        self.symbols = [self.symbol]
        self.step_s = (runner.spec.step_ms / 1000) if runner.spec.step_ms else cfg.step_ns / 1e9
        self._task: asyncio.Task | None = None
        self.steps = 0

    def connected(self, session: Session, account: P.Account, first: bool) -> None:
        from live.policy_bot import PolicyDriver

        if first:
            self.driver = PolicyDriver(self.policy, session.trader, self.symbol)
            self.driver.book = self.books[self.symbol]
        self.driver.resync(account)
        self.started = True
        self._task = asyncio.ensure_future(self._run(session))
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: the policy loop failed", self.runner.spec.name, exc_info=task.exception())

    async def _run(self, session: Session) -> None:
        driver, loop = self.driver, asyncio.get_running_loop()
        obs = driver.reset()
        t = loop.time()
        while not session.closed:
            driver.now = self.runner.clock()
            for req in driver.act(driver.decide(obs)):
                session.send(req)
            t += self.step_s
            await asyncio.sleep(max(0.0, t - loop.time()))
            obs = driver.observe()
            self.steps += 1
            if driver.done:
                obs = driver.reset()

    def on_feed(self, msg: P.ServerMessage) -> None:
        if self.driver is None:  # before the first connect completed
            self.books[msg.symbol].apply(msg)  # type: ignore[union-attr, arg-type]
        else:
            self.driver.on_feed(msg)

    def on_snapshot(self, msg: P.BookSnapshot) -> None:
        self.books[msg.symbol].reset(msg)

    def on_private(self, msg: P.ServerMessage) -> None:
        session = self.session
        for req in self.driver.on_private(msg):
            if session is not None:
                session.send(req)

    def disconnected(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


BRAINS: dict[str, type[Brain]] = {"agent": AgentBrain, "plugin": PluginBrain, "policy": PolicyBrain}


# ---- the runner: connect, run, reconnect ------------------------------------------------------------
class AuthFailed(Exception):
    """The exchange refused the bot's token (retrying cannot help)."""


class BotRunner:
    """Runs one bot until ``stop`` is set: connect, drive the brain, reconnect with backoff."""

    def __init__(self, config: BotsConfig, spec: BotSpec) -> None:
        self.config, self.spec = config, spec
        self.rng = random.Random(bot_seed(config, spec))
        self.backoff_rng = random.Random(bot_seed(config, spec) + "/backoff")
        self._t0 = time.monotonic_ns()
        self.brain = BRAINS[spec.kind()](self)
        self.stats = {"connects": 0, "sent": 0, "fills": 0, "errors": 0, "gaps": 0, "drops": 0, "prints_overtaken": 0}
        self.session: Session | None = None

    def clock(self) -> int:
        return time.monotonic_ns() - self._t0

    def backoff(self, attempt: int) -> float:
        """Delay before reconnect attempt ``attempt`` (0, 1, ...): capped, jittered."""
        base = min(self.config.max_backoff_s, self.config.backoff_s * 2**attempt)
        return base * (0.5 + 0.5 * self.backoff_rng.random())

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self._session(stop)
            except AuthFailed:
                raise
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, asyncio.TimeoutError, ConnectionError) as exc:
                log.info("%s: connection lost or refused (%s: %s)", self.spec.name, type(exc).__name__, exc)
            if stop.is_set():
                break
            if time.monotonic() - started > 5:
                attempt = 0  # it had been up a while: start the backoff again
            delay = self.backoff(attempt)
            attempt += 1
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _session(self, stop: asyncio.Event) -> None:
        kw: dict[str, Any] = {"compression": None, "proxy": None, "open_timeout": 5, "max_size": 2**22}
        trading = await connect(self.config.exchange, **kw)
        try:
            await trading.send(P.encode(P.Login(token=self.spec.token, req=0)), text=True)
            reply = P.decode_server(await asyncio.wait_for(trading.recv(), 5))
            if type(reply) is not P.Welcome:
                raise AuthFailed(f"login refused: {getattr(reply, 'message', reply)}")
            feed = await connect(self.config.feed_url, **kw)
        except BaseException:
            await trading.close()
            raise
        session = Session(self, trading, feed, reply)
        brain = self.brain
        brain.session = session
        self.session = session
        tasks: list[asyncio.Task] = []
        try:
            symbols = brain.subscribe_symbols(session.instruments)
            for s in symbols:
                brain.books.setdefault(s, L2Book(s))
            await feed.send(P.encode(P.Subscribe(symbols=symbols, req=1)), text=True)
            await self._wait_snapshots(session, brain, symbols)
            tasks = [
                asyncio.ensure_future(session._write()),
                asyncio.ensure_future(session._read_trading(brain)),
                asyncio.ensure_future(session._read_feed(brain)),
            ]
            account = await session.ask(P.GetAccount(req=2**62))
            if type(account) is not P.Account:
                raise ConnectionError(f"get_account answered {account!r}")
            first = self.stats["connects"] == 0
            self.stats["connects"] += 1
            again = "" if first else f" (reconnect {self.stats['connects'] - 1})"
            say(f"live.bots {self.spec.name} connected as trader {session.trader}{again}")
            brain.connected(session, account, first)
            brain.resume()
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if stop.is_set():
                brain.stopping()
                await self._farewell(session)
            else:
                self.stats["drops"] += 1
                for t in done:
                    if t is not stopper and not t.cancelled() and t.exception() is not None:
                        exc = t.exception()
                        if not isinstance(exc, (ConnectionClosed, OSError)):
                            log.error("%s: %s", self.spec.name, exc, exc_info=exc)
                raise ConnectionError("a connection closed")
        finally:
            session.closed = True
            brain.session = None
            brain.started = False
            brain.disconnected()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await session.close()

    async def _wait_snapshots(self, session: Session, brain: Brain, symbols: list[str]) -> None:
        """Read the feed until ``subscribed`` and a snapshot of every symbol came."""
        missing = set(symbols)

        async def read() -> None:
            while missing:
                msg = P.decode_server(await session.feed.recv())
                if type(msg) is P.BookSnapshot:
                    missing.discard(msg.symbol)
                elif type(msg) is P.Error:
                    raise ConnectionError(f"subscribe refused: {msg.code} {msg.message}")
                session.on_feed(msg, brain)

        await asyncio.wait_for(read(), 10)

    async def _farewell(self, session: Session) -> None:
        """Stopping: cancel this bot's orders (the venue would on disconnect, if configured)."""
        try:
            await session.ask(P.MassCancelRequest(symbol=None, req=2**62 + 1), timeout=2)
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


# ---- processes ----------------------------------------------------------------------------------------
async def run_bot(config: BotsConfig, name: str, seconds: float | None = None) -> dict[str, int]:
    """Run bot ``name`` until SIGTERM/SIGINT or ``seconds``; returns its counters."""
    runner = BotRunner(config, config.bot(name))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    if seconds is not None:
        loop.call_later(seconds, stop.set)
    await runner.run(stop)
    return dict(runner.stats)


def bot_command(config_path: str | None, name: str, *, exchange: str | None = None, feed: str | None = None,
                seconds: float | None = None) -> list[str]:
    """The command line that runs one bot in its own process."""
    cmd = [sys.executable, "-m", "live.bots", "--name", name]
    if config_path:
        cmd += ["--config", str(config_path)]
    if exchange:
        cmd += ["--exchange", exchange]
    if feed:
        cmd += ["--feed", feed]
    if seconds is not None:
        cmd += ["--seconds", str(seconds)]
    return cmd


def spawn_bots(config_path: str | None, config: BotsConfig, *, exchange: str | None = None, feed: str | None = None,
               seconds: float | None = None) -> list[subprocess.Popen]:
    """Start every bot of ``config`` as its own process (stdout/stderr inherited)."""
    from live.launch import die_with_parent

    return [
        subprocess.Popen(bot_command(config_path, b.name, exchange=exchange, feed=feed, seconds=seconds),
                         preexec_fn=die_with_parent)
        for b in config.bots
    ]


def stop_processes(procs: list[subprocess.Popen], timeout: float = 5.0) -> None:
    """SIGTERM each process, wait, then SIGKILL what is left."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m live.bots", description="Run bots on the live exchange.")
    parser.add_argument("--config", help="bots config JSON (default configs/bots.json)")
    parser.add_argument("--name", help="run this one bot in this process (default: every bot, one process each)")
    parser.add_argument("--exchange", help="exchange URL (overrides the config)")
    parser.add_argument("--feed", help="market-data URL: the relay or the exchange's /feed (overrides the config)")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--list", action="store_true", help="list the config's bots and exit")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    config = load_bots_config(args.config, exchange=args.exchange, feed=args.feed)
    if args.list:
        for b in config.bots:
            print(f"{b.name}\t{b.kind()}\t{getattr(b, b.kind())}\t{b.symbol or ''}")
        return 0
    if args.name:
        try:
            stats = asyncio.run(run_bot(config, args.name, args.seconds))
        except AuthFailed as exc:
            print(f"live.bots {args.name}: {exc}", file=sys.stderr, flush=True)
            return 2
        say(f"live.bots {args.name} stopped {json.dumps(stats)}")
        return 0
    procs = spawn_bots(args.config, config, exchange=args.exchange, feed=args.feed, seconds=args.seconds)
    say(f"live.bots started {len(procs)} bots: {', '.join(b.name for b in config.bots)}")
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping and any(p.poll() is None for p in procs):
        time.sleep(0.1)
    stop_processes(procs)
    return max((p.returncode or 0 for p in procs), default=0) if not stopping else 0


if __name__ == "__main__":
    sys.exit(main())

"""The live venue without I/O: decoded requests in, journal records and messages out.

``LiveVenue`` wraps the same ``exchange.venue.Exchange`` the simulator drives and adds
what a network venue needs on top of it, all deterministic and free of I/O (the asyncio
server in ``live.server`` is a thin shell around it, the journal replay in
``live.journal`` feeds it the same records):

- Order ids. The venue assigns them (1, 2, ... across all symbols); a client may attach
  its own ``client_id``, echoed on every message about the order. The venue keeps the
  owner and symbol of every live order, so a cancel or modify of an unknown order or of
  another trader's order is refused at the gateway (``error`` unknown_order / not_owner)
  without reaching the engine: nothing changes, no sequence number is used.
- Self-match prevention: a request's ``smp`` mode is applied with the trader's own group
  id (``TraderConfig.smp_group``), never one the client chooses.
- Records. Every command that reaches the engine is a ``Record(ts, symbol, command,
  client_id)``: the journal stores exactly these, and ``apply(record)`` is the one path by
  which state changes, live or on replay. ``ts`` is the wall-clock time the server gave
  the command (made non-decreasing here), so a replay reproduces every timestamp.
- Messages. ``apply`` turns the engine's events into wire messages (``live.protocol``):
  private ones for the trader(s) they concern, public market data per symbol with its own
  gap-free ``seq`` (``book_update`` per run of level changes, ``trade`` per fill,
  ``liquidation``), in the engine's event order. Market-data ``seq``, engine ``seq`` and
  the order-id counter are all functions of the records, so a replay restores them.

Each call adds to an ``Outbox``; the shell journals ``records`` before it sends any of
the messages (nothing is acknowledged that a restart could lose).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import msgspec

from exchange import events as E
from exchange.accounts import Account as _Account
from exchange.commands import Cancel, Command, MassCancel, Modify, NewOrder
from exchange.errors import InvalidCommand
from exchange.instrument import InstrumentSpec
from exchange.venue import Exchange
from live import protocol as P
from live.config import ServerConfig, TraderConfig

_PRICED = frozenset(("limit", "stop_limit"))
_STOPS = frozenset(("stop", "stop_limit"))


class Record(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """One journaled command: what reached the engine, when, for which symbol."""

    ts: int
    symbol: str
    command: Command
    client_id: int | None = None


class Outbox(msgspec.Struct):
    """What one or more calls produced, in order.

    ``records``: to journal before anything else leaves. ``private``: (trader, message).
    ``replies``: messages for the requesting connection only (errors, pong, account).
    ``public``: (symbol, message) market data, symbol None for all subscribers.
    ``log``: (ts, symbol, events) per engine call, the simulator's log format (CSV).
    """

    records: list[Record] = msgspec.field(default_factory=list)
    private: list[tuple[int, P.ServerMessage]] = msgspec.field(default_factory=list)
    replies: list[P.ServerMessage] = msgspec.field(default_factory=list)
    public: list[tuple[str | None, P.ServerMessage]] = msgspec.field(default_factory=list)
    log: list[tuple[int, str, list]] = msgspec.field(default_factory=list)


class _Order(msgspec.Struct, gc=False):
    """A live order's owner, symbol, side and client id (the engine holds the rest)."""

    trader: int
    symbol: str
    side: int
    client_id: int | None


def instrument_info(spec: InstrumentSpec) -> P.Instrument:
    """The wire description of an instrument."""
    return P.Instrument(
        symbol=spec.symbol,
        rule={"Fifo": "fifo", "ProRata": "pro_rata", "Split": "split"}.get(type(spec.rule).__name__, type(spec.rule).__name__.lower()),
        tick=spec.tick,
        lot=spec.lot,
        max_qty=spec.max_qty,
        price_scale=str(spec.price_scale),
        order_types=sorted(P.ORDER_TYPE_NAMES[int(t)] for t in spec.order_types),
        tifs=sorted(P.TIF_NAMES[int(t)] for t in spec.tifs),
        post_only=spec.post_only,
        iceberg=spec.iceberg,
        protection_ticks=spec.protection_ticks,
        market_as_protected=spec.market_as_protected,
        price_band=spec.price_band,
        reference_price=spec.reference_price,
        smp_mode=spec.default_smp_mode.name.lower(),
    )


class LiveVenue:
    """The exchange behind the live server (see the module docstring)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.specs = config.specs()
        self.exchange = Exchange(
            self.specs, fees=config.fees, starting_cash=config.starting_cash, trader_cash=config.trader_cash(),
            risk=config.risk, trader_risk=config.trader_risk(), margin=config.margin,
        )
        self.traders: dict[int, TraderConfig] = {t.trader: t for t in config.traders}
        self.instruments = [instrument_info(s) for s in self.specs.values()]
        self.orders: dict[int, _Order] = {}  # live (resting or stop) order id -> owner
        self.next_order_id = 1
        self.md_seq: dict[str, int] = dict.fromkeys(self.specs, 0)
        self.commands = 0  # records applied
        self.last_ts = 0
        self.perf_seq = 0
        self.dirty = True  # changed since the last performance snapshot

    # ---- clock and authentication ---------------------------------------------------------------
    def stamp(self, wall_ns: int) -> int:
        """A non-decreasing timestamp from the wall clock (ns)."""
        if wall_ns > self.last_ts:
            self.last_ts = wall_ns
        return self.last_ts

    def authenticate(self, token: str) -> TraderConfig | None:
        """The trader whose token this is (compared in constant time), or None."""
        found = None
        for t in self.traders.values():
            if hmac.compare_digest(t.token.encode(), token.encode()):
                found = t
        return found

    # ---- trading requests ---------------------------------------------------------------------
    def handle(self, trader: int, msg: P.TradingRequest, ts: int, out: Outbox) -> None:
        """Apply one decoded request of an authenticated ``trader`` at time ``ts``."""
        t = type(msg)
        if t is P.NewOrderRequest:
            self._new_order(trader, msg, ts, out)  # type: ignore[arg-type]
        elif t is P.CancelRequest or t is P.ModifyRequest:
            oid = msg.order_id  # type: ignore[union-attr]
            o = self.orders.get(oid)
            if o is None:
                return self._error(out, P.ErrorCode.UNKNOWN_ORDER, f"no live order {oid}", msg.req)  # type: ignore[union-attr]
            if o.trader != trader:
                return self._error(out, P.ErrorCode.NOT_OWNER, f"order {oid} is not yours", msg.req)  # type: ignore[union-attr]
            if t is P.CancelRequest:
                cmd: Command = Cancel(oid, trader)
            else:
                cmd = Modify(oid, trader, msg.qty, msg.price)  # type: ignore[union-attr]
            self._apply(Record(ts, o.symbol, cmd), out, (trader, oid, msg.req))  # type: ignore[union-attr]
        elif t is P.MassCancelRequest:
            symbol = msg.symbol  # type: ignore[union-attr]
            if symbol is not None and symbol not in self.specs:
                return self._error(out, P.ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}", msg.req)  # type: ignore[union-attr]
            before = len(out.private)
            self.mass_cancel(trader, ts, out, symbol)
            count = sum(1 for who, m in out.private[before:] if who == trader and type(m) is P.Cancelled)
            out.private.append((trader, P.MassCancelled(symbol=symbol, count=count, ts=ts, req=msg.req)))  # type: ignore[union-attr]
        elif t is P.GetAccount:
            out.replies.append(self.account(trader, ts, msg.req))  # type: ignore[union-attr]
        elif t is P.Ping:
            out.replies.append(P.Pong(ts=ts, req=msg.req))  # type: ignore[union-attr]
        elif t is P.Login:
            self._error(out, P.ErrorCode.ALREADY_LOGGED_IN, "this connection is already logged in", msg.req)  # type: ignore[union-attr]
        else:  # pragma: no cover - the union is closed
            self._error(out, P.ErrorCode.UNKNOWN_TYPE, f"unexpected {t.__name__}", None)

    def _new_order(self, trader: int, m: P.NewOrderRequest, ts: int, out: Outbox) -> None:
        symbol, price, order_type = m.symbol, m.price, m.order_type
        if symbol not in self.specs:
            return self._error(out, P.ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}", m.req)
        if price is None and (order_type in _PRICED or m.post_only):
            return self._error(out, P.ErrorCode.MISSING_FIELD, f"price is required for a {order_type} order", m.req)
        if m.stop_price is None and order_type in _STOPS:
            return self._error(out, P.ErrorCode.MISSING_FIELD, f"stop_price is required for a {order_type} order", m.req)
        oid = self.next_order_id
        smp_id = smp_mode = None
        if m.smp is not None:
            group = self.traders[trader].smp_group
            smp_id, smp_mode = (group if group is not None else trader), P.SMP_MODES[m.smp]
        cmd = NewOrder(
            oid, trader, P.SIDES[m.side], m.qty, price, P.ORDER_TYPES[order_type], P.TIFS[m.tif],
            stop_price=m.stop_price, display_qty=m.display_qty, min_qty=m.min_qty, post_only=m.post_only,
            smp_id=smp_id, smp_mode=smp_mode, protection=m.protection,
        )
        self._apply(Record(ts, symbol, cmd, m.client_id), out, (trader, oid, m.req))

    def mass_cancel(self, trader: int, ts: int, out: Outbox, symbol: str | None = None) -> None:
        """Cancel the trader's orders on ``symbol`` (None: all); symbols without any are skipped."""
        symbols = {o.symbol for o in self.orders.values() if o.trader == trader}
        for s in self.specs:
            if s in symbols and (symbol is None or s == symbol):
                self.apply(Record(ts, s, MassCancel(trader)), out)

    def disconnect(self, trader: int, ts: int, out: Outbox) -> None:
        """The trader's last connection closed: cancel its orders if it asked for that."""
        cfg = self.traders.get(trader)
        if cfg is not None and cfg.cancel_on_disconnect:
            self.mass_cancel(trader, ts, out)

    def _error(self, out: Outbox, code: P.ErrorCode, message: str, req: int | None) -> None:
        out.replies.append(P.Error(code=code, message=message, req=req))

    # ---- the one path that changes state ------------------------------------------------------
    def apply(self, record: Record, out: Outbox) -> None:
        """Apply one record (live or from the journal) and route its events into ``out``.

        A command the engine calls misuse (``InvalidCommand``) changes nothing and is not
        kept: the record is dropped and the requester gets an error. Any other exception
        is a bug; the record is kept (a replay reproduces it) and the error reported."""
        self._apply(record, out, None)

    def _apply(self, record: Record, out: Outbox, reply: tuple[int, int, int | None] | None) -> None:
        """``apply``; ``reply`` is (trader, order id, req) of the request awaiting its reply."""
        cmd, symbol, ts = record.command, record.symbol, record.ts
        if ts > self.last_ts:  # as ``stamp``
            self.last_ts = ts
        else:
            ts = self.last_ts
        out.records.append(record)
        try:
            events = self.exchange.submit(symbol, cmd)
        except InvalidCommand as exc:
            out.records.pop()
            return self._error(out, P.ErrorCode.BAD_VALUE, str(exc), reply[2] if reply is not None else None)
        except Exception as exc:  # a bug: keep going, keep the record, tell the requester
            self.commands += 1
            return self._error(out, P.ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", reply[2] if reply is not None else None)
        self.commands += 1
        self.dirty = True
        client = None
        if type(cmd) is NewOrder:
            if cmd.order_id >= self.next_order_id:
                self.next_order_id = cmd.order_id + 1
            client = (cmd.order_id, record.client_id)
        reply = self._route(symbol, events, ts, out, client, reply)
        if self.exchange.margin is not None:
            for side_symbol, side_events in self.exchange.take_side_events():
                reply = self._route(side_symbol, side_events, ts, out, client, reply)

    def _route(
        self, symbol: str, events: list, ts: int, out: Outbox,
        client: tuple[int, int | None] | None, reply: tuple[int, int, int | None] | None,
    ) -> tuple[int, int, int | None] | None:
        """Turn one engine call's events into messages. ``client``: (order id, client id) of
        the NewOrder applied; ``reply``: as in ``_apply``, returned unless an event took it."""
        out.log.append((ts, symbol, events))
        private, public, orders, md = out.private, out.public, self.orders, self.md_seq
        side_names = P.SIDE_NAMES
        changes: list[P.LevelChange] = []  # level changes awaiting their book_update
        touched: list[int] = []  # orders that may have left the book: only a fill, cancel or expiry ends one
        for ev in events:
            t = type(ev)
            if t is E.BookUpdate:
                changes.append(P.LevelChange(ev.side, ev.price, ev.qty, ev.count))
                continue
            if changes and (t is E.Fill or t is E.Liquidation):  # market data in the engine's order
                md[symbol] = seq = md[symbol] + 1
                public.append((symbol, P.BookUpdate(symbol=symbol, seq=seq, changes=changes, ts=ts)))
                changes = []
            if t is E.Accepted:
                oid, trader = ev.order_id, ev.trader
                cid = client[1] if client is not None and client[0] == oid else None
                orders[oid] = _Order(trader, symbol, ev.side, cid)
                req = None
                if reply is not None and reply[1] == oid and reply[0] == trader:
                    req, reply = reply[2], None
                private.append((trader, P.Accepted(
                    symbol=symbol, order_id=oid, side=side_names[ev.side], qty=ev.qty, price=ev.price,
                    order_type=P.ORDER_TYPE_NAMES[ev.type], engine_seq=ev.seq, ts=ts, client_id=cid, req=req,
                )))
            elif t is E.Fill:
                md[symbol] = seq = md[symbol] + 1
                price, qty, aggressor = ev.price, ev.qty, ev.aggressor
                public.append((symbol, P.Trade(symbol=symbol, seq=seq, price=price, qty=qty, aggressor=side_names[aggressor], ts=ts)))
                for trader, oid, side, liq in (
                    (ev.maker_trader, ev.maker_id, -aggressor, "maker"),
                    (ev.taker_trader, ev.taker_id, aggressor, "taker"),
                ):
                    o = orders.get(oid)
                    private.append((trader, P.Fill(
                        symbol=symbol, order_id=oid, side=side_names[side], price=price, qty=qty,
                        liquidity=liq, engine_seq=ev.seq, ts=ts, client_id=o.client_id if o is not None else None,
                        md_seq=seq,
                    )))
                    touched.append(oid)
            elif t is E.Rejected:
                trader = ev.trader
                if trader is None:
                    continue
                oid = ev.order_id
                if client is not None and client[0] == oid:
                    cid = client[1]
                else:
                    o = orders.get(oid)
                    cid = o.client_id if o is not None else None
                req = None
                if reply is not None and reply[1] == oid and reply[0] == trader:
                    req, reply = reply[2], None
                private.append((trader, P.Rejected(
                    symbol=symbol, order_id=oid, reason=str(ev.reason), engine_seq=ev.seq, ts=ts, client_id=cid, req=req,
                )))
            elif t is E.Liquidation:
                md[symbol] = seq = md[symbol] + 1
                msg = P.Liquidation(symbol=symbol, seq=seq, trader=ev.trader, equity=ev.equity, margin=ev.margin, ts=ts)
                public.append((symbol, msg))
                private.append((ev.trader, msg))
            else:
                oid, trader = ev.order_id, ev.trader
                o = orders.get(oid)
                cid = o.client_id if o is not None else None
                if t is E.Cancelled or t is E.Modified:
                    req = None
                    if reply is not None and reply[1] == oid and reply[0] == trader:
                        req, reply = reply[2], None
                    if t is E.Cancelled:
                        touched.append(oid)
                        m: P.ServerMessage = P.Cancelled(
                            symbol=symbol, order_id=oid, qty=ev.qty, reason=str(ev.reason), engine_seq=ev.seq,
                            ts=ts, client_id=cid, req=req,
                        )
                    else:
                        m = P.Modified(
                            symbol=symbol, order_id=oid, price=ev.price, qty=ev.qty, priority_kept=ev.priority_kept,
                            engine_seq=ev.seq, ts=ts, client_id=cid, req=req,
                        )
                elif t is E.Triggered:
                    m = P.Triggered(symbol=symbol, order_id=oid, stop_price=ev.stop_price, engine_seq=ev.seq, ts=ts, client_id=cid)
                elif t is E.Expired:
                    touched.append(oid)
                    m = P.Expired(symbol=symbol, order_id=oid, qty=ev.qty, engine_seq=ev.seq, ts=ts, client_id=cid)
                elif t is E.Refreshed:
                    m = P.Refreshed(symbol=symbol, order_id=oid, qty=ev.qty, engine_seq=ev.seq, ts=ts, client_id=cid)
                else:  # pragma: no cover - the event union is closed
                    continue
                private.append((trader, m))
        if changes:
            md[symbol] = seq = md[symbol] + 1
            public.append((symbol, P.BookUpdate(symbol=symbol, seq=seq, changes=changes, ts=ts)))
        if touched:
            engine = self.exchange.engines[symbol]
            for oid in touched:
                if not engine.open_qty(oid):
                    orders.pop(oid, None)
        return reply

    # ---- read-only views ----------------------------------------------------------------------
    def snapshot(self, symbol: str, reason: str, ts: int, req: int | None = None) -> P.BookSnapshot:
        """The displayed book of ``symbol`` as of its last market-data message."""
        engine = self.exchange.engines[symbol]
        bids, asks = engine.book.l2()
        return P.BookSnapshot(
            symbol=symbol, seq=self.md_seq[symbol], bids=[P.Level(*lv) for lv in bids], asks=[P.Level(*lv) for lv in asks],
            last_price=engine.last_price, reason=reason, ts=ts, req=req,  # type: ignore[arg-type]
        )

    def _account(self, trader: int) -> _Account:
        acct = self.exchange.accounts.by_trader.get(trader)  # never open an account by reading it
        return acct if acct is not None else _Account(trader, self.exchange.accounts.starting_cash_of(trader))

    def trader_rows(self, marks: dict[str, float | None]) -> list[P.TraderPerformance]:
        ids = sorted(set(self.traders) | set(self.exchange.accounts.by_trader))
        rows = []
        for trader in ids:
            acct = self._account(trader)
            cfg = self.traders.get(trader)
            rows.append(P.TraderPerformance(
                trader=trader, name=cfg.name if cfg is not None else str(trader),
                positions={s: p.qty for s, p in acct.positions.items()}, cash=acct.cash, fees=acct.fees,
                realized_pnl=acct.realized_pnl(), equity=acct.equity(marks), volume=acct.volume,
                barred=trader in self.exchange.barred, starting_cash=self.exchange.accounts.starting_cash_of(trader),
            ))
        return rows

    def performance(self, ts: int) -> P.Performance:
        """Every trader's account now (a new ``seq`` each call); clears ``dirty``."""
        self.dirty = False
        self.perf_seq += 1
        marks = self.exchange.marks()
        return P.Performance(seq=self.perf_seq, marks=marks, traders=self.trader_rows(marks), ts=ts)

    def heartbeat(self, ts: int) -> P.Heartbeat:
        return P.Heartbeat(seqs=dict(self.md_seq), ts=ts)

    def account(self, trader: int, ts: int, req: int | None = None) -> P.Account:
        """The trader's account and live orders."""
        acct = self._account(trader)
        marks = self.exchange.marks()
        open_orders = []
        for oid, o in self.orders.items():
            if o.trader != trader:
                continue
            engine = self.exchange.engines[o.symbol]
            resting = engine.book.orders.get(oid)
            price = resting[3] if resting is not None else next(
                (c.price if c.price is not None else c.stop_price for c in engine.stop_orders() if c.order_id == oid), None
            )
            open_orders.append(P.OpenOrder(
                symbol=o.symbol, order_id=oid, side=P.SIDE_NAMES[o.side], price=price, open_qty=engine.open_qty(oid),
                client_id=o.client_id,
            ))
        return P.Account(
            trader=trader, cash=acct.cash, fees=acct.fees, realized_pnl=acct.realized_pnl(), equity=acct.equity(marks),
            positions=[P.Position(symbol=s, qty=p.qty, avg_price=p.avg_price, realized_pnl=p.realized) for s, p in acct.positions.items()],
            open_orders=open_orders, barred=trader in self.exchange.barred, ts=ts, req=req,
        )

    def state(self, ts: int, req: int | None = None) -> P.State:
        """Book hashes, sequence numbers and accounts: what a faithful restart must restore."""
        marks = self.exchange.marks()
        symbols = [
            P.SymbolState(symbol=s, state_hash=e.state_hash(), engine_seq=e.seq, md_seq=self.md_seq[s], resting=len(e.book.orders))
            for s, e in self.exchange.engines.items()
        ]
        return P.State(
            symbols=symbols, next_order_id=self.next_order_id, commands=self.commands,
            traders=self.trader_rows(marks), ts=ts, req=req,
        )

    def replay(self, records: Iterable[Record]) -> int:
        """Apply journaled records (messages discarded); returns how many."""
        n = 0
        for record in records:
            self.apply(record, Outbox())
            n += 1
        return n

    def check_invariants(self) -> None:
        """Raise AssertionError if the order-owner index disagrees with the engines."""
        live: dict[int, tuple[int, str]] = {}
        for symbol, engine in self.exchange.engines.items():
            engine.check_invariants()
            for oid, o in engine.book.orders.items():
                live[oid] = (o[1], symbol)
            for c in engine.stop_orders():
                live[c.order_id] = (c.trader, symbol)
        mine = {oid: (o.trader, o.symbol) for oid, o in self.orders.items()}
        assert mine == live, f"order index {mine} != engines' live orders {live}"
        assert all(oid < self.next_order_id for oid in live), "an order id at or past next_order_id"

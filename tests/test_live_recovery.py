"""Durability with real processes: kill -9 the server, restart it on its journal.

The restarted exchange must have the identical books (state hashes), accounts, engine and
market-data sequence numbers and order-id counter; every acknowledged order must be there;
``trades.csv`` must hold every trade, including rows that were still buffered at the kill.
A clean SIGTERM must flush everything. A journal from another configuration is refused.
"""

from __future__ import annotations

import asyncio
import csv
import time
from decimal import Decimal
from pathlib import Path

import pytest
from live_helpers import TOKENS, live_config, start_server

from live import protocol as P
from live.client import FeedClient, TraderClient, fetch_state
from report.replay import seconds


def comparable(state: P.State) -> tuple:
    """Everything a faithful restart restores (``ts`` is the time of asking)."""
    return state.symbols, state.next_order_id, state.commands, state.traders


class Script:
    """Three traders on both symbols: trader 1 rests asks, trader 2 lifts them, trader 3
    rests bids below and modifies or cancels some. Connections stay open (a disconnect
    would cancel their orders), so a kill finds the state exactly as acknowledged."""

    def __init__(self) -> None:
        self.clients: list[TraderClient] = []
        self.acked: list[int] = []
        self.fills: list[P.Fill] = []
        self.owner: dict[int, int] = {}  # order id -> trader

    async def run(self, url: str, n: int) -> None:
        if not self.clients:
            self.clients = [await TraderClient.connect(url, TOKENS[i]) for i in (1, 2, 3)]
        a, b, c = self.clients
        for i in range(n):
            for sym, base, tick in (("XYZ", 10_000, 1), ("ES", 500_000, 25)):
                ask = await a.new_order(sym, "sell", 5 + i % 3, price=base + tick * (1 + i % 4), client_id=i)
                bid = await b.new_order(sym, "buy", 3, price=base + tick * (1 + i % 4))
                rest = await c.new_order(sym, "buy", 2, price=base - tick * (5 + i % 7))
                for trader, r in ((1, ask), (2, bid), (3, rest)):
                    assert isinstance(r, P.Accepted), r
                    self.acked.append(r.order_id)
                    self.owner[r.order_id] = trader
                if i % 3 == 0:
                    assert isinstance(await c.modify(rest.order_id, 1), P.Modified)
                if i % 4 == 1:
                    assert isinstance(await c.cancel(rest.order_id), P.Cancelled)
        for client in self.clients:
            await client.ping()  # everything sent before the pong has arrived
            self.fills += [m for m in client.drain_events() if isinstance(m, P.Fill)]

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def flushed_rows(csv_dir: Path) -> dict[str, list]:
    """``trade_rows``, or none while the CSV files are not created yet."""
    try:
        return trade_rows(csv_dir)
    except FileNotFoundError:
        return {}


def trade_rows(csv_dir: Path) -> dict[str, list[tuple[str, str, str, str, str]]]:
    rows = {}
    for symbol in ("XYZ", "ES"):
        with open(csv_dir / symbol / "trades.csv", newline="") as f:
            reader = csv.reader(f)
            assert next(reader) == ["timestamp", "price", "qty", "buy_trader", "sell_trader"]
            rows[symbol] = [tuple(r) for r in reader]
    return rows


def expected_rows(script: Script) -> dict[str, list[tuple[str, str, str, str, str]]]:
    """trades.csv rows from the fill messages both sides received."""
    by_exec: dict[tuple[str, int], dict[str, P.Fill]] = {}
    for f in script.fills:
        by_exec.setdefault((f.symbol, f.engine_seq), {})[f.liquidity] = f
    rows: dict[str, list] = {"XYZ": [], "ES": []}
    for (symbol, _), pair in sorted(by_exec.items(), key=lambda kv: kv[0][1]):
        maker, taker = pair["maker"], pair["taker"]
        buyer, seller = (taker, maker) if taker.side == "buy" else (maker, taker)
        price = str(taker.price * Decimal("0.01"))
        rows[symbol].append((seconds(taker.ts), price, str(taker.qty), str(script.owner[buyer.order_id]), str(script.owner[seller.order_id])))
    return rows


def test_kill9_restart_rebuilds_the_identical_exchange_and_csv(tmp_path: Path) -> None:
    server = start_server(tmp_path, live_config(tmp_path, csv_flush_ms=500))
    script = Script()
    try:
        async def before() -> P.State:
            await script.run(server.url, 6)
            deadline = time.monotonic() + 10  # the CSV thread flushes these rows (every 500 ms)...
            while not any(flushed_rows(tmp_path / "csv").values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await script.run(server.url, 6)  # ...not these
            state = await fetch_state(server.url)
            server.kill9()
            await script.close()
            return state

        state = asyncio.run(before())
        trades = len(script.fills) // 2
        assert 0 < sum(len(r) for r in trade_rows(tmp_path / "csv").values()) < trades  # rows were lost
        server = start_server(tmp_path, live_config(tmp_path, port=server.port, csv_flush_ms=500))
        assert "rebuilt" in server.log()
        after = asyncio.run(fetch_state(server.url))
        assert comparable(after) == comparable(state)
        assert all(s.md_seq > 0 and s.engine_seq > 0 and s.resting > 0 for s in after.symbols)
        assert trade_rows(tmp_path / "csv") == expected_rows(script)

        async def afterwards() -> None:  # order ids and sequence numbers carry on
            feed = await FeedClient.connect(server.url + "/feed", ["XYZ"])
            assert feed.books["XYZ"].seq == next(s.md_seq for s in state.symbols if s.symbol == "XYZ")
            async with await TraderClient.connect(server.url, TOKENS[4]) as d:
                reply = await d.new_order("XYZ", "buy", 1, price=9_500)
                assert isinstance(reply, P.Accepted) and reply.order_id == state.next_order_id
                await feed.wait_for(lambda f: f.books["XYZ"].bids.get(9_500) is not None)
                assert feed.gaps == 0
                await d.mass_cancel()
            await feed.close()

        asyncio.run(afterwards())
    finally:
        server.stop()


def test_kill9_mid_burst_loses_no_acknowledged_order(tmp_path: Path) -> None:
    server = start_server(tmp_path, live_config(tmp_path, csv_dir=None))
    try:
        async def burst() -> list[int]:
            client = await TraderClient.connect(server.url, TOKENS[5])
            for i in range(400):  # pipelined, never awaited one by one
                await client.send(P.NewOrderRequest(symbol="XYZ", side="buy", qty=1, price=9_000 + i % 500, req=i))
            acked = []
            while len(acked) < 150:
                m = await client.next_event(P.Accepted, timeout=10)
                acked.append(m.order_id)
            server.kill9()  # with more requests in flight
            return acked

        acked = asyncio.run(burst())
        server = start_server(tmp_path, live_config(tmp_path, port=server.port, csv_dir=None))

        async def check() -> None:
            async with await TraderClient.connect(server.url, TOKENS[5]) as again:
                resting = {o.order_id for o in (await again.account()).open_orders}
                assert set(acked) <= resting
                await again.mass_cancel()

        asyncio.run(check())
    finally:
        server.stop()


def test_sigterm_flushes_csv_and_a_restart_matches(tmp_path: Path) -> None:
    server = start_server(tmp_path, live_config(tmp_path, csv_flush_ms=60_000))  # no timed flush
    script = Script()
    try:
        async def trade() -> tuple[P.State, int]:
            await script.run(server.url, 4)
            state = await fetch_state(server.url)
            rc = await asyncio.to_thread(server.terminate)  # the clients stay connected meanwhile
            await script.close()
            return state, rc

        state, rc = asyncio.run(trade())
        assert rc == 0  # and the shutdown's disconnects cancelled nothing (see comparable below)
        assert trade_rows(tmp_path / "csv") == expected_rows(script)
        perf = (tmp_path / "csv" / "XYZ" / "performance.csv").read_text().splitlines()
        assert perf[0] == "timestamp,trader_id,position,cash,realized_pnl,total_equity" and len(perf) > 1
        server = start_server(tmp_path, live_config(tmp_path, port=server.port, csv_flush_ms=60_000))
        assert "rebuilt" not in server.log()  # nothing was missing
        assert comparable(asyncio.run(fetch_state(server.url))) == comparable(state)
    finally:
        server.stop()


def test_a_journal_from_another_configuration_is_refused(tmp_path: Path) -> None:
    server = start_server(tmp_path, live_config(tmp_path, csv_dir=None))
    async def one_order() -> None:
        async with await TraderClient.connect(server.url, TOKENS[1]) as a:
            assert isinstance(await a.new_order("XYZ", "buy", 1, price=9_900), P.Accepted)
    asyncio.run(one_order())
    server.terminate()
    other = live_config(tmp_path, csv_dir=None, starting_cash=5)
    with pytest.raises(RuntimeError, match="another configuration"):
        start_server(tmp_path, other, name="other")


def test_torn_journal_tail_from_a_kill_is_cut(tmp_path: Path) -> None:
    server = start_server(tmp_path, live_config(tmp_path, csv_dir=None))
    try:
        async def some() -> P.State:
            async with await TraderClient.connect(server.url, TOKENS[8]) as h:  # keeps orders on disconnect
                for i in range(5):
                    assert isinstance(await h.new_order("ES", "sell", 1, price=505_000 + 25 * i), P.Accepted)
            return await fetch_state(server.url)

        state = asyncio.run(some())
        server.kill9()
        journal = tmp_path / "journal.jsonl"
        with open(journal, "ab") as f:
            f.write(b'{"ts":1,"symbol":"ES","command":{"kind":"NewOr')  # a write cut short
        server = start_server(tmp_path, live_config(tmp_path, port=server.port, csv_dir=None))
        assert "torn" in server.log()
        assert comparable(asyncio.run(fetch_state(server.url))) == comparable(state)
        assert journal.read_bytes().endswith(b"}\n")
    finally:
        server.stop()


"""Bots on the live exchange: the wire translation, then real processes on loopback.

The end-to-end tests start ``python -m live.server`` (and ``live.relay``) on free ports,
run bots with ``python -m live.bots`` as their own processes, and watch the market through
a real WebSocket feed client. One kills the exchange under a running bot and restarts it:
the bot must reconnect, resubscribe and trade again.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest
import torch

from agents.base import OrderTracker
from agents.policy import PolicyNet, save_policy
from envs import TradingConfig
from envs.observation import observation_size
from exchange import events as E
from exchange.commands import Cancel, MassCancel, NewOrder
from exchange.enums import OrderType, TimeInForce
from live import protocol as P
from live.bots import BotsConfig, BotSpec, BotRunner, load_bots_config
from live.client import FeedClient, TraderClient
from live.launch import PY, Process, start_exchange, start_relay
from live.live_context import UNKNOWN_TRADER, OrderWire, OwnPrints, feed_events, snapshot_events
from live.marketdata import L2Book

STOPPED = re.compile(r"live\.bots (\S+) stopped (\{.*\})")


# ---- the wire translation, without sockets --------------------------------------------------------
def test_order_wire_round_trip() -> None:
    wire = OrderWire(7, {"XYZ": "cancel_aggressing"})
    tracker = OrderTracker(7)
    new = NewOrder(1, 7, 1, 10, 9_990, smp_id=7)
    tracker.sent_new(1, 1, 9_990, 10, 0, "", 0)
    req = wire.request("XYZ", new)
    assert isinstance(req, P.NewOrderRequest)
    assert (req.side, req.qty, req.price, req.order_type, req.tif, req.smp, req.client_id) == (
        "buy", 10, 9_990, "limit", "gtc", "cancel_aggressing", 1)
    # a cancel before the order is acknowledged waits for the acknowledgement
    assert wire.request("XYZ", Cancel(1, 7)) is None
    symbol, events, released = wire.events(P.Accepted(symbol="XYZ", order_id=500, side="buy", qty=10, price=9_990,
                                                      order_type="limit", engine_seq=3, ts=0, client_id=1, req=req.req))
    assert symbol == "XYZ" and events == [E.Accepted(3, 1, 7, 1, 9_990, 10, int(OrderType.LIMIT))]
    assert released == [("XYZ", Cancel(1, 7))]
    for ev in events:
        tracker.apply(ev)
    cancel = wire.request(*released[0])
    assert isinstance(cancel, P.CancelRequest) and cancel.order_id == 500
    # a partial fill as maker, then the cancel's answer
    _, events, _ = wire.events(P.Fill(symbol="XYZ", order_id=500, side="buy", price=9_990, qty=4, liquidity="maker",
                                      engine_seq=4, ts=0, client_id=1))
    assert events == [E.Fill(4, 9_990, 4, -1, 1, 0, 7, UNKNOWN_TRADER)]
    for ev in events:
        tracker.apply(ev)
    assert tracker.position == 4 and wire.account.position("XYZ") == 4 and wire.account.cash == -4 * 9_990
    _, events, _ = wire.events(P.Cancelled(symbol="XYZ", order_id=500, qty=6, reason="user", engine_seq=5, ts=0,
                                           client_id=1, req=cancel.req))
    for ev in events:
        tracker.apply(ev)
    assert tracker.orders == {} and wire.venue_id == {}


def test_gateway_error_becomes_a_rejection() -> None:
    wire = OrderWire(7)
    tracker = OrderTracker(7)
    tracker.sent_new(1, -1, 10_010, 5, 0, "", 0)
    req = wire.request("XYZ", NewOrder(1, 7, -1, 5, 10_010))
    _, events, _ = wire.events(P.Error(code=P.ErrorCode.RATE_LIMITED, message="slow down", req=req.req))
    assert events == [E.Rejected(0, 1, 7, "rate_limited")]
    for ev in events:
        tracker.apply(ev)
    assert tracker.orders == {} and tracker.rejects["rate_limited"] == 1


def test_market_order_and_mass_cancel_requests() -> None:
    wire = OrderWire(3)
    req = wire.request("ES", NewOrder(4, 3, -1, 2, None, OrderType.MARKET, TimeInForce.IOC))
    assert (req.order_type, req.tif, req.price, req.smp) == ("market", "ioc", None, None)
    assert isinstance(wire.request("ES", MassCancel(3)), P.MassCancelRequest)


def test_resync_reports_orders_cancelled_while_away() -> None:
    wire = OrderWire(2)
    tracker = OrderTracker(2)
    for oid, price in ((1, 100), (2, 101)):
        tracker.sent_new(oid, 1, price, 1, 0, "", 0)
        wire.request("XYZ", NewOrder(oid, 2, 1, 1, price))
        _, evs, _ = wire.events(P.Accepted(symbol="XYZ", order_id=10 + oid, side="buy", qty=1, price=price,
                                           order_type="limit", engine_seq=oid, ts=0, client_id=oid))
        for ev in evs:
            tracker.apply(ev)
    account = P.Account(trader=2, cash=0, fees=0, realized_pnl=0.0, equity=0.0, positions=[], barred=False, ts=0,
                        open_orders=[P.OpenOrder(symbol="XYZ", order_id=12, side="buy", price=101, open_qty=1, client_id=2)])
    for _, events in wire.resync(account):
        for ev in events:
            tracker.apply(ev)
    assert list(tracker.orders) == [2] and wire.venue_id == {2: 12}


def test_feed_events_and_resync_diff() -> None:
    book = L2Book("XYZ")
    book.reset(P.BookSnapshot(symbol="XYZ", seq=5, bids=[P.Level(99, 3, 1), P.Level(98, 1, 1)], asks=[P.Level(101, 2, 1)],
                              last_price=None, reason="subscribe", ts=0))
    snap = P.BookSnapshot(symbol="XYZ", seq=9, bids=[P.Level(99, 4, 2)], asks=[P.Level(101, 2, 1), P.Level(102, 7, 1)],
                          last_price=100, reason="request", ts=0)
    changes = {(e.side, e.price): (e.qty, e.count) for e in snapshot_events(book, snap)}
    assert changes == {(1, 98): (0, 0), (1, 99): (4, 2), (-1, 102): (7, 1)}
    trade = feed_events(P.Trade(symbol="XYZ", seq=10, price=101, qty=2, aggressor="buy", ts=0))
    assert trade == [E.Fill(10, 101, 2, 1, 0, 0, UNKNOWN_TRADER, UNKNOWN_TRADER)]


def _fill(md_seq: int, qty: int = 2) -> P.Fill:
    return P.Fill(symbol="XYZ", order_id=7, side="sell", price=101, qty=qty, liquidity="maker", engine_seq=1, ts=0,
                  md_seq=md_seq)


def _print(seq: int, qty: int = 2) -> P.Trade:
    return P.Trade(symbol="XYZ", seq=seq, price=101, qty=qty, aggressor="buy", ts=0)


def test_an_own_execution_reaches_the_agent_once() -> None:
    prints = OwnPrints()
    prints.public(P.BookSnapshot(symbol="XYZ", seq=5, bids=[], asks=[], last_price=None, reason="subscribe", ts=0))
    assert prints.private(_fill(6)) is False  # the private fill first (the usual order)...
    assert prints.private(_fill(6)) is False  # (a self-trade: the maker's and the taker's fill)
    assert prints.public(_print(6)) is False  # ...so its print is dropped
    assert prints.public(_print(7)) is True  # someone else's trade
    assert prints.private(_fill(7, qty=3)) is True  # a print that overtook its fill: both delivered
    assert prints.overtaken_lots == 3
    assert prints.private(_fill(9)) is False
    assert prints.public(P.BookUpdate(symbol="XYZ", seq=10, changes=[], ts=0)) is True  # print 9 was lost in a gap
    assert prints.announced["XYZ"] == set()
    assert prints.private(P.Fill(symbol="ES", order_id=1, side="buy", price=1, qty=1, liquidity="taker", engine_seq=1,
                                 ts=0, md_seq=3)) is False  # a symbol the bot does not watch: nothing kept
    assert "ES" not in prints.announced


def test_config_is_strict_and_backoff_is_capped_and_seeded(tmp_path: Path) -> None:
    path = tmp_path / "bots.json"
    path.write_text(json.dumps({"bots": [{"name": "a", "token": "t", "agent": "noise", "plugin": "x:Y"}]}))
    with pytest.raises(ValueError, match="exactly one"):
        load_bots_config(path)
    path.write_text(json.dumps({"bots": [], "exchnage": "ws://x"}))
    with pytest.raises(ValueError):
        load_bots_config(path)
    cfg = BotsConfig(bots=[BotSpec(name="a", token="t", plugin="live.plugin_example:SpreadQuoter")], backoff_s=0.1,
                     max_backoff_s=1.0)
    delays = [BotRunner(cfg, cfg.bots[0]).backoff(i) for i in range(8)]
    assert delays == [BotRunner(cfg, cfg.bots[0]).backoff(i) for i in range(8)]  # seeded
    assert all(0.05 * 2**min(i, 3.33) * 0 <= d <= 1.0 for i, d in enumerate(delays))
    assert delays[0] <= 0.1 and max(delays) <= 1.0 and delays[-1] >= 0.5


def test_default_config_loads() -> None:
    cfg = load_bots_config()
    assert {b.kind() for b in cfg.bots} == {"agent"} and len(cfg.bots) >= 3


# ---- real processes ----------------------------------------------------------------------------------
@pytest.fixture
def exchange(tmp_path: Path):  # type: ignore[no-untyped-def]
    err = open(tmp_path / "exchange.err", "w")
    proc, url = start_exchange(["--no-csv", "--journal", str(tmp_path / "journal.jsonl"), "--fsync", "none"], stderr=err)
    yield proc, url
    proc.stop()
    err.close()


def _write_config(tmp_path: Path, url: str, bots: list[dict], feed: str | None = None) -> Path:
    path = tmp_path / "bots.json"
    path.write_text(json.dumps({"exchange": url, "feed": feed, "seed": 1, "backoff_s": 0.05, "max_backoff_s": 0.4,
                                "bots": bots}))
    return path


MM = {"name": "mm", "token": "alice-demo-token", "agent": "market_maker", "symbol": "XYZ",
      "params": {"reference_price": 10_000, "requote_ns": 50_000_000}}
NOISE = {"name": "noise", "token": "bob-demo-token", "agent": "noise", "symbol": "XYZ",
         "params": {"reference_price": 10_000, "rate_hz": 40.0, "p_market": 0.4}}


def _stats(proc: Process) -> dict[str, dict]:
    out = {}
    for line in proc.lines:
        m = STOPPED.search(line)
        if m:
            out[m.group(1)] = json.loads(m.group(2))
    return out


async def test_scripted_bots_trade_through_the_relay(exchange, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, url = exchange
    relay, feed_url = start_relay(url, stderr=subprocess.DEVNULL)
    try:
        config = _write_config(tmp_path, url, [MM, NOISE], feed=feed_url)
        bots = Process.start([PY, "-m", "live.bots", "--config", str(config), "--seconds", "3"], "bots")
        async with await FeedClient.connect(feed_url) as feed:
            await feed.wait_for(lambda f: len(f.trades) >= 3, timeout=15)
            await feed.wait_for(lambda f: f.books["XYZ"].best_bid() is not None and f.books["XYZ"].best_ask() is not None, 10)
            assert feed.gaps == 0
        assert await asyncio.to_thread(bots.popen.wait, 20) == 0
        stats = _stats(bots)
        assert set(stats) == {"mm", "noise"}, bots.lines
        assert all(s["sent"] > 0 and s["connects"] == 1 for s in stats.values()), stats  # errors: cancel races (unknown_order) are normal
        assert sum(s["fills"] for s in stats.values()) > 0
    finally:
        relay.stop()


async def test_bot_reconnects_after_the_exchange_restarts(exchange, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, url = exchange
    port = int(url.rsplit(":", 1)[1])
    config = _write_config(tmp_path, url, [MM])
    bot = Process.start([PY, "-m", "live.bots", "--config", str(config), "--name", "mm", "--seconds", "30"], "mm",
                        stderr=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(bot.wait_for, r"connected as trader 1$", 20)
        async with await TraderClient.connect(url, "carol-demo-token") as carol:
            await _wait_quotes(carol, url)
        server.stop()  # the exchange goes away (its journal keeps the book)...
        await asyncio.sleep(0.3)
        again, url2 = start_exchange(["--no-csv", "--journal", str(tmp_path / "journal.jsonl"), "--fsync", "none"],
                                     port=port, stderr=subprocess.DEVNULL)
        try:
            assert url2 == url
            await asyncio.to_thread(bot.wait_for, r"connected as trader 1 \(reconnect 1\)", 20)
            # cancel-on-disconnect removed its quotes; it quotes again on the new connection
            async with await TraderClient.connect(url, "carol-demo-token") as carol:
                await _wait_quotes(carol, url)
            bot.stop()
            stats = _stats(bot)["mm"]
            assert stats["connects"] == 2 and stats["drops"] == 1, stats
        finally:
            again.stop()
    finally:
        bot.stop()


async def test_a_scripted_bot_sees_each_own_execution_once(exchange, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The agent's view counts a trade it was party to once (its private fill), as in the
    simulator; the public print of the same execution is not delivered again."""
    _, url = exchange
    config = load_bots_config(_write_config(tmp_path, url, [MM]))
    runner, stop = BotRunner(config, config.bot("mm")), asyncio.Event()
    task = asyncio.ensure_future(runner.run(stop))
    try:
        async with await TraderClient.connect(url, "carol-demo-token") as carol:
            await _wait_quotes(carol, url)
            for i in range(12):  # marketable IOCs: the market maker is the only liquidity
                side = "buy" if i % 2 == 0 else "sell"
                await carol.new_order("XYZ", side, 2, price=10_000 + (60 if side == "buy" else -60), tif="ioc")
                await asyncio.sleep(0.06)  # it re-quotes every 50 ms
            await asyncio.sleep(0.2)
            traded = sum(m.qty for m in carol.drain_events() if type(m) is P.Fill)
        brain = runner.brain
        for _ in range(100):  # until the bot has heard of every lot
            if brain.wire.account.volume == traded:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # any late public print
    finally:
        stop.set()
        await task
    assert traded > 0 and brain.wire.account.volume == traded
    assert brain.agent.book.volume == traded + brain.prints.overtaken_lots
    assert runner.stats["prints_overtaken"] == 0 or brain.prints.overtaken_lots > 0


async def _wait_quotes(carol: TraderClient, url: str) -> None:
    """Until the market maker (trader 1) shows two-sided quotes (a snapshot from /feed)."""
    async with await FeedClient.connect(url + "/feed", ["XYZ"]) as feed:
        await feed.wait_for(lambda f: f.books["XYZ"].best_bid() is not None and f.books["XYZ"].best_ask() is not None, 15)


async def test_plugin_bot_quotes(exchange, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, url = exchange
    quoter = {"name": "quoter", "token": "erin-demo-token", "plugin": "live.plugin_example:SpreadQuoter",
              "params": {"symbol": "XYZ", "half_spread_ticks": 4, "qty": 3}}
    config = _write_config(tmp_path, url, [quoter])
    bot = Process.start([PY, "-m", "live.bots", "--config", str(config), "--name", "quoter", "--seconds", "2"], "quoter",
                        stderr=subprocess.DEVNULL)
    try:
        async with await FeedClient.connect(url + "/feed", ["XYZ"]) as feed:
            await feed.wait_for(lambda f: f.books["XYZ"].best_bid() == 9_996 and f.books["XYZ"].best_ask() == 10_004, 15)
            assert feed.books["XYZ"].bids[9_996][0] == 3
        assert await asyncio.to_thread(bot.popen.wait, 15) == 0
        stats = _stats(bot)["quoter"]
        assert stats["sent"] >= 4 and stats["errors"] == 0, stats
        async with await TraderClient.connect(url, "erin-demo-token") as erin:
            account = await erin.account()
            assert account.open_orders == []  # cancelled on the way out
    finally:
        bot.stop()


async def test_policy_bot_trades(exchange, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, url = exchange
    cfg = TradingConfig()
    torch.manual_seed(3)
    net = PolicyNet(observation_size(cfg), [3, 2 * cfg.max_offset + 1, len(cfg.qty_buckets), 2], hidden=(8,))
    with torch.no_grad():
        # always: buy (side 2), 2 ticks through the ask (offset index 4), 1 lot, no cancel
        net.action_net.bias.copy_(torch.tensor([0.0, 0.0, 9.0] + [0.0] * 4 + [9.0] + [9.0, 0.0, 0.0] + [9.0, 0.0]))
        net.action_net.weight.zero_()
    path = save_policy(tmp_path / "policy.pt", net, "exchange/Trading-v0", cfg)
    policy_bot = {"name": "ppo", "token": "dave-demo-token", "policy": str(path), "step_ms": 50}
    config = _write_config(tmp_path, url, [policy_bot])
    async with await TraderClient.connect(url, "carol-demo-token") as carol:
        assert isinstance(await carol.new_order("XYZ", "sell", 100, price=10_001), P.Accepted)
        assert isinstance(await carol.new_order("XYZ", "buy", 100, price=9_999), P.Accepted)
        bot = Process.start([PY, "-m", "live.bots", "--config", str(config), "--name", "ppo", "--seconds", "1.5"], "ppo",
                            stderr=subprocess.DEVNULL)
        try:
            assert await asyncio.to_thread(bot.popen.wait, 40) == 0
            stats = _stats(bot)["ppo"]
            assert stats["sent"] >= 10 and stats["fills"] >= 10 and stats["errors"] == 0, stats
            async with await TraderClient.connect(url, "dave-demo-token") as dave:
                account = await dave.account()
            position = sum(p.qty for p in account.positions if p.symbol == "XYZ")
            assert position == stats["fills"], (account, stats)  # one lot per step, each taking carol's ask
        finally:
            bot.stop()


def test_bad_token_exits_with_code_2(exchange, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, url = exchange
    config = _write_config(tmp_path, url, [dict(MM, token="nope")])
    done = subprocess.run([PY, "-m", "live.bots", "--config", str(config), "--name", "mm", "--seconds", "5"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "login refused" in done.stderr

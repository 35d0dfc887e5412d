"""The live exchange's pieces without processes: protocol, core, journal, config, CSV.

- Replaying the journal's records into a fresh ``LiveVenue`` gives the same state and the
  same messages, for random request streams (hypothesis), with invariants checked.
- The journal cuts a torn tail, refuses corruption and another venue's journal.
- ``docs/API_SPEC.md`` documents every message type, field and error code of the schemas.
- Liquidation reaches the trader and the feed (an in-process server on loopback).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import given, settings

from exchange.enums import RejectReason, SmpMode
from exchange.instrument import cme, nyse
from exchange.sim import MS
from exchange.venue import MarginPolicy, RiskLimits
from live import protocol as P
from live.client import FeedClient, TraderClient
from live.config import DEFAULT_CONFIG, ServerConfig, SymbolConfig, TraderConfig, config_from_dict, config_to_dict, load_config
from live.core import LiveVenue, Outbox, Record, instrument_info
from live.csv_sink import CsvSink, _LiveSim, rebuild_trades
from live.journal import Journal, JournalError, read_journal
from live.live_context import spec_from_wire
from live.server import ExchangeServer
from report.csv_export import CsvExporter

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "docs" / "API_SPEC.md"
SPEC = SPEC_PATH.read_text() if SPEC_PATH.exists() else ""


# ---- the spec documents the schemas ----------------------------------------------------------
def _structs() -> list[type]:
    seen: list[type] = []
    for union in (P.TradingRequest, P.FeedRequest, P.ServerMessage):
        for t in union.__args__:  # type: ignore[attr-defined]
            if t not in seen:
                seen.append(t)
    return seen + [P.Instrument, P.Level, P.LevelChange, P.Position, P.OpenOrder, P.TraderPerformance, P.SymbolState]


def test_api_spec_documents_every_message_and_field() -> None:
    for t in _structs():
        tag = t.__struct_config__.tag
        if isinstance(tag, str):
            assert f"`{tag}`" in SPEC, f"message type {tag!r} missing from API_SPEC.md"
        for field in t.__struct_fields__:
            assert re.search(rf"\|\s*`{field}`\s*\|", SPEC), f"{t.__name__}.{field} missing from API_SPEC.md"


def test_api_spec_documents_every_error_code_and_reject_reason() -> None:
    for code in P.ErrorCode:
        assert f"`{code.value}`" in SPEC, f"error code {code.value!r} missing from API_SPEC.md"
    for reason in RejectReason:
        assert f"`{reason.value}`" in SPEC, f"reject reason {reason.value!r} missing from API_SPEC.md"


def test_api_spec_examples_are_valid_messages() -> None:
    examples = re.findall(r"```json\n(.*?)```", SPEC, re.S)
    assert sum(len(b.strip().splitlines()) for b in examples) >= 30
    for block in examples:
        for line in block.strip().splitlines():
            obj = json.loads(line)
            data = line.encode()
            if obj["type"] in P.message_types(P.ServerMessage):
                P.decode_server(data)
            elif obj["type"] in P.message_types(P.TradingRequest):
                P.decode_trading(data)
            else:
                P.decode_feed(data)


# ---- the core: replaying records reproduces everything ---------------------------------------
PRICES = {"XYZ": (10_000, 1), "ES": (500_000, 25)}


@st.composite
def requests(draw: st.DrawFn) -> list[tuple[int, P.TradingRequest]]:
    out: list[tuple[int, P.TradingRequest]] = []
    for _ in range(draw(st.integers(1, 60))):
        trader = draw(st.integers(1, 4))
        kind = draw(st.sampled_from(["limit", "limit", "limit", "market", "ioc", "cancel", "modify", "mass"]))
        symbol = draw(st.sampled_from(["XYZ", "ES"]))
        ref, tick = PRICES[symbol]
        price = ref + tick * draw(st.integers(-6, 6))
        side = draw(st.sampled_from(["buy", "sell"]))
        qty = draw(st.integers(1, 30))
        if kind in ("limit", "ioc"):
            smp = draw(st.sampled_from([None, None, "cancel_resting", "cancel_both"]))
            msg: P.TradingRequest = P.NewOrderRequest(symbol=symbol, side=side, qty=qty, price=price, tif="ioc" if kind == "ioc" else "gtc", smp=smp, client_id=draw(st.integers(0, 9)))
        elif kind == "market":
            msg = P.NewOrderRequest(symbol=symbol, side=side, qty=qty, order_type="market")
        elif kind == "cancel":
            msg = P.CancelRequest(order_id=draw(st.integers(1, 40)))
        elif kind == "modify":
            msg = P.ModifyRequest(order_id=draw(st.integers(1, 40)), qty=qty, price=draw(st.sampled_from([None, price])))
        else:
            msg = P.MassCancelRequest(symbol=draw(st.sampled_from([None, symbol])))
        out.append((trader, msg))
    return out


def _messages(out: Outbox) -> list[bytes]:
    """Everything derived from the records (``mass_cancelled`` is the gateway's reply)."""
    return [P.encode(m) for _, m in out.private if type(m) is not P.MassCancelled] + [P.encode(m) for _, m in out.public]


@settings(max_examples=60, deadline=None)
@given(stream=requests())
def test_replaying_the_records_rebuilds_state_and_messages(stream: list[tuple[int, P.TradingRequest]]) -> None:
    cfg = DEFAULT_CONFIG.with_overrides(starting_cash=2_000_000)  # small: liquidations happen
    live, out = LiveVenue(cfg), Outbox()
    for i, (trader, msg) in enumerate(stream):
        live.handle(trader, msg, 1_000 + i, out)
        live.check_invariants()
    live.exchange.accounts.check_conservation()
    replayed, again = LiveVenue(cfg), Outbox()
    for record in out.records:
        replayed.apply(msgspec.json.decode(msgspec.json.encode(record), type=Record), again)  # via the journal format
    replayed.check_invariants()
    assert replayed.state(0) == live.state(0)
    assert _messages(again) == _messages(out)
    assert again.log == out.log


@settings(max_examples=40, deadline=None)
@given(stream=requests())
def test_every_private_fill_names_its_public_print(stream: list[tuple[int, P.TradingRequest]]) -> None:
    live, out = LiveVenue(DEFAULT_CONFIG), Outbox()
    for i, (trader, msg) in enumerate(stream):
        live.handle(trader, msg, 1_000 + i, out)
    prints = {(m.symbol, m.seq): m for _, m in out.public if type(m) is P.Trade}
    fills = [m for _, m in out.private if type(m) is P.Fill]
    for f in fills:
        t = prints[(f.symbol, f.md_seq)]
        assert (t.price, t.qty, t.ts) == (f.price, f.qty, f.ts)
        assert (t.aggressor == f.side) == (f.liquidity == "taker")
    # each print is the maker's fill and the taker's fill (a self-trade: both the same trader's)
    assert sorted((f.symbol, f.md_seq) for f in fills) == sorted(key for key in prints for _ in range(2))


def test_gateway_refusals_use_no_sequence_number() -> None:
    venue, out = LiveVenue(DEFAULT_CONFIG), Outbox()
    venue.handle(1, P.NewOrderRequest(symbol="XYZ", side="sell", qty=5, price=10_100), 1, out)
    before = venue.state(0)
    venue.handle(2, P.CancelRequest(order_id=1, req=1), 2, out)  # not bob's
    venue.handle(2, P.ModifyRequest(order_id=77, qty=1), 3, out)  # no such order
    venue.handle(2, P.NewOrderRequest(symbol="XYZ", side="buy", qty=1), 4, out)  # a limit without price
    assert [m.code for m in out.replies] == [P.ErrorCode.NOT_OWNER, P.ErrorCode.UNKNOWN_ORDER, P.ErrorCode.MISSING_FIELD]
    assert venue.state(0) == before and len(out.records) == 1


def test_smp_group_is_the_traders_own() -> None:
    cfg = ServerConfig(symbols=(SymbolConfig("XYZ"),), traders=(TraderConfig(1, "a", "ta", smp_group=70), TraderConfig(2, "b", "tb")))
    venue, out = LiveVenue(cfg), Outbox()
    venue.handle(1, P.NewOrderRequest(symbol="XYZ", side="buy", qty=1, price=100, smp="cancel_both"), 1, out)
    venue.handle(2, P.NewOrderRequest(symbol="XYZ", side="buy", qty=1, price=99, smp="cancel_both"), 1, out)
    assert [(r.command.smp_id, int(r.command.smp_mode)) for r in out.records] == [(70, 2), (2, 2)]  # type: ignore[union-attr]


# ---- journal ------------------------------------------------------------------------------------
def _journal_with(tmp_path: Path, n: int) -> tuple[Path, list[Record]]:
    path = tmp_path / "j.jsonl"
    venue, out = LiveVenue(DEFAULT_CONFIG), Outbox()
    for i in range(n):
        venue.handle(1, P.NewOrderRequest(symbol="XYZ", side="buy", qty=1, price=9_900 + i), i + 1, out)
    journal, old = Journal.open(path, DEFAULT_CONFIG.venue_fingerprint())
    assert old == []
    journal.append(out.records)
    journal.sync()
    journal.close()
    return path, out.records


def test_journal_round_trip_and_torn_tail(tmp_path: Path) -> None:
    path, records = _journal_with(tmp_path, 5)
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b'{"ts":9,"symbol":"XYZ","comm')  # a kill -9 mid-write
    journal, back = Journal.open(path, DEFAULT_CONFIG.venue_fingerprint())
    journal.close()
    assert back == records and path.stat().st_size == size


def test_journal_refuses_corruption_and_another_venue(tmp_path: Path) -> None:
    path, _ = _journal_with(tmp_path, 3)
    with pytest.raises(JournalError, match="another configuration"):
        Journal.open(path, "0" * 16)
    lines = path.read_bytes().split(b"\n")
    lines[2] = b'{"garbage": true}'
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(JournalError, match="line 3"):
        read_journal(path)


def test_torn_header_starts_a_new_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"journal":"resea')
    journal, back = Journal.open(path, DEFAULT_CONFIG.venue_fingerprint())
    journal.close()
    assert back == [] and read_journal(path, DEFAULT_CONFIG.venue_fingerprint())[0] == []


# ---- config ---------------------------------------------------------------------------------------
def test_config_file_round_trip_and_typos(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config_to_dict(DEFAULT_CONFIG)))
    assert load_config(path) == DEFAULT_CONFIG
    with pytest.raises(ValueError, match="unknown field"):
        config_from_dict({**config_to_dict(DEFAULT_CONFIG), "rate_limt": {}})
    with pytest.raises(ValueError, match="distinct"):
        config_from_dict({**config_to_dict(DEFAULT_CONFIG), "traders": [{"trader": 1, "name": "a", "token": "x"}] * 2})


# ---- CSV -------------------------------------------------------------------------------------------
def _trading_log(venue: LiveVenue, t0: int) -> list[tuple[int, str, list]]:
    out = Outbox()
    venue.handle(1, P.NewOrderRequest(symbol="XYZ", side="sell", qty=5, price=10_000), t0, out)
    venue.handle(2, P.NewOrderRequest(symbol="XYZ", side="buy", qty=2, price=10_000), t0 + 100 * MS, out)
    venue.handle(2, P.NewOrderRequest(symbol="XYZ", side="buy", qty=1, price=10_000), t0 + 700 * MS, out)
    return out.log


def test_exporter_start_and_catch_up(tmp_path: Path) -> None:
    t0 = 1_700_000_000 * 10**9 + 123
    venue = LiveVenue(DEFAULT_CONFIG)
    log = _trading_log(venue, t0)
    sim = _LiveSim(venue.exchange, [1, 2])
    sim.log.items.extend(log[:2])
    csv = CsvExporter(tmp_path, sim, start_ns=t0, register_atexit=False)  # type: ignore[arg-type]
    assert csv.catch_up() == 2 and csv.trade_rows == 0  # replayed, not written
    sim.log.items.append(log[2])
    sim.now = t0 + 2_000 * MS
    csv.close()
    trades = (tmp_path / "XYZ" / "trades.csv").read_text().splitlines()
    assert trades[1:] == ["1700000000.700000123,100.00,1,2,1"]  # only the new fill
    perf = [r.split(",") for r in (tmp_path / "XYZ" / "performance.csv").read_text().splitlines()[1:]]
    assert perf[0][0].startswith("1700000000.5") and {r[1]: r[2] for r in perf if r[0] == perf[-1][0]} == {"1": "-3", "2": "3"}
    assert not any(r[0].startswith("0.") for r in perf)  # nothing stamped near time 0


def test_rebuild_appends_missing_trades_and_refuses_a_foreign_file(tmp_path: Path) -> None:
    venue = LiveVenue(DEFAULT_CONFIG)
    log = _trading_log(venue, 1_700_000_000 * 10**9)
    sink = CsvSink(tmp_path, venue.exchange, [1, 2])
    sink.close()  # headers only: as after a kill before the first flush
    assert rebuild_trades(tmp_path, venue.exchange, log) == 2
    assert rebuild_trades(tmp_path, venue.exchange, log) == 0  # idempotent
    path = tmp_path / "XYZ" / "trades.csv"
    path.write_text(path.read_text().replace(",2,1\n", ",3,1\n", 1))
    with pytest.raises(ValueError, match="does not match"):
        rebuild_trades(tmp_path, venue.exchange, log)


# ---- liquidation over the wire (in-process server, real sockets) ----------------------------------
async def test_liquidation_reaches_the_trader_and_the_feed(tmp_path: Path) -> None:
    cfg = ServerConfig(
        port=0,
        symbols=(SymbolConfig("XYZ", "nyse"),),
        traders=tuple(TraderConfig(i, n, f"{n}-t") for i, n in ((1, "a"), (2, "b"), (3, "c"))),
        starting_cash=150_000,
        risk=RiskLimits(),
        margin=MarginPolicy(maintenance_bps=1_000),
        journal=str(tmp_path / "j.jsonl"),
    )
    async with ExchangeServer(cfg) as srv:
        feed = await FeedClient.connect(srv.url + "/feed")
        a, b, c = [await TraderClient.connect(srv.url, f"{n}-t") for n in "abc"]
        await b.new_order("XYZ", "sell", 100, price=10_000)
        assert isinstance(await a.new_order("XYZ", "buy", 100, price=10_000), P.Accepted)  # on credit
        await c.new_order("XYZ", "buy", 100, price=9_400)
        await c.new_order("XYZ", "sell", 10, price=9_401)  # the mid falls: a is under water
        liq = await a.next_event(P.Liquidation)
        assert liq.trader == 1 and liq.equity < liq.margin
        flatten = await a.next_event(P.Fill)
        assert flatten.order_id < 0 and flatten.side == "sell" and flatten.qty == 100
        await feed.wait_for(lambda f: any(isinstance(m, P.Liquidation) and m.trader == 1 for m in f.messages))
        barred = await a.new_order("XYZ", "buy", 1, price=9_000)
        assert isinstance(barred, P.Rejected) and barred.reason == "trader_barred"
        assert (await a.account()).barred
        for client in (a, b, c, feed):
            await client.close()
    replayed = LiveVenue(cfg)
    replayed.replay(read_journal(cfg.journal)[0])  # type: ignore[arg-type]
    assert 1 in replayed.exchange.barred


@pytest.mark.parametrize("mode", list(SmpMode))
def test_the_wire_instrument_carries_its_default_self_match_mode(mode: SmpMode) -> None:
    """A client rebuilds the instrument's default SMP mode from the wire, whatever the preset says."""
    spec = nyse("XYZ", default_smp_mode=mode)
    info = msgspec.json.decode(msgspec.json.encode(instrument_info(spec)), type=P.Instrument)
    assert info.smp_mode == mode.name.lower()
    assert spec_from_wire(info).default_smp_mode is mode


def test_an_instrument_without_smp_mode_falls_back_to_its_preset() -> None:
    info = msgspec.structs.replace(instrument_info(cme("ES")), smp_mode=None)
    assert spec_from_wire(info).default_smp_mode is cme().default_smp_mode
    assert spec_from_wire(info, preset="nyse").default_smp_mode is nyse().default_smp_mode

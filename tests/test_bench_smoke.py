"""Smoke test of the engine benchmark: tiny stream, no timing assertions."""

from __future__ import annotations

import json

from bench import engine as bench_engine
from bench.reference import ReferenceBook
from bench.stream import generate_stream, standard_stream
from exchange import Cancel, Fill, MatchingEngine, NewOrder, OrderType, nyse

REQUIRED = (
    "fifo_msgs_per_s",
    "pro_rata_msgs_per_s",
    "reference_msgs_per_s",
    "fifo_vs_reference",
    "pro_rata_vs_reference",
)


def test_runner_json_line(capsys):
    assert bench_engine.main(["--n", "20000", "--repeats", "1", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    for key in REQUIRED:
        assert key in result
        assert isinstance(result[key], (int, float)) and result[key] > 0
    assert result["messages"] == 20000
    assert result["volume_match"] is True
    assert result["fifo_volume"] == result["reference_volume"] == result["stream"]["volume"] > 0
    assert result["fifo_rejected"] == 0
    assert result["pro_rata_volume"] > 0
    mix = result["stream"]
    assert abs(mix["passive_pct"] + mix["cancel_pct"] + mix["marketable_pct"] - 100) < 0.1


def test_stream_is_deterministic_and_well_formed():
    a = standard_stream(3000, seed=7)
    assert a == standard_stream(3000, seed=7)
    assert a != standard_stream(3000, seed=8)
    s = generate_stream(20000, seed=7).stats
    assert s.passive + s.cancels + s.marketable == 20000
    for c in a:
        assert type(c) in (NewOrder, Cancel)
        if type(c) is NewOrder:
            assert c.smp_id is None and 1 <= c.trader <= 16 and c.qty > 0
            assert c.type == OrderType.MARKET or (type(c.price) is int and c.price > 0)


def test_engine_matches_reference_on_stream():
    cmds = standard_stream(20000, seed=3)
    eng = MatchingEngine(nyse())
    vol = sum(e.qty for i in range(0, len(cmds), 5000) for e in eng.submit_many(cmds[i : i + 5000]) if type(e) is Fill)
    book = ReferenceBook()
    assert vol == book.process(cmds) > 0
    assert len(eng.book.orders) == len(book.orders)
    eng.check_invariants()


def test_reference_book_fifo():
    b = ReferenceBook()
    assert b.limit(1, -1, 101, 5) == 0
    assert b.limit(2, -1, 101, 5) == 0
    assert b.limit(3, -1, 102, 5) == 0
    assert b.limit(4, 1, 99, 5) == 0
    assert b.limit(5, 1, 101, 7) == 7  # fills 1 fully, 2 partly
    assert b.orders[2][2][1] == 3 and 1 not in b.orders
    assert b.cancel(2) and not b.cancel(2)
    assert list(b.asks) == [102]
    assert b.market(6, 1, 9) == 5  # sweeps 102, rest dropped
    assert not b.asks and 6 not in b.orders
    assert b.limit(7, -1, 98, 8) == 5  # hits bid 99, rests 3 at 98
    assert list(b.asks) == [98] and not b.bids


def test_sim_benchmark_json_line(capsys):
    from bench import sim as bench_sim

    assert bench_sim.main(["--agents", "4", "--seconds", "1", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("events_per_s", "engine_msgs_per_s", "overhead_ratio", "sim_orders_per_s", "floor_overhead_ratio"):
        assert isinstance(result[key], (int, float)) and result[key] > 0
    assert result["orders"] > 100 and result["events"] > result["orders"]


def test_env_benchmark_json_line(capsys):
    from bench import envs as bench_envs

    assert bench_envs.main(["--steps", "300", "--multi-steps", "30", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("single_env_steps_per_s", "heavy_env_steps_per_s", "multi_env_steps_per_s", "msgs_per_step", "trades_per_step"):
        assert isinstance(result[key], (int, float)) and result[key] > 0
    light, heavy = result["workloads"]["light"], result["workloads"]["heavy"]
    assert 3 < light["msgs_per_step"] < 8 and 16 < heavy["msgs_per_step"] < 32  # the calibrated backgrounds


def test_env_floor_benchmark_json_line(capsys):
    from bench import envs_floor

    assert envs_floor.main(["--steps", "300", "--repeats", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"]
    assert list(rows) == list(envs_floor.ROWS) and all(r["steps_per_s"] > 0 for r in rows.values())

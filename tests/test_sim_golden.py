"""A seeded simulation pinned by the hash of its event log and final accounts.

The demo's market (two symbols, nyse and cme, makers with latency, noise, momentum and mean
reversion traders, fees, risk limits, margin) runs 20 simulated seconds. Any change to
scheduling, delivery order, latency draws, agent decisions or accounting changes the hash.
If a change is deliberate, regenerate with ``python tests/test_sim_golden.py`` and say why
in the commit.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import msgspec

from agents.base import OrderTracker
from exchange.events import Liquidation
from exchange.sim import SECOND

SECONDS = 20
GOLDEN = "215ad9f29b815874a1696f5c310bf5bb54201c9cb68af86b922bd3e6a642d0d4"


def digest() -> tuple[str, int]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # demo.py sits at the root
    from demo import market

    sim = market(seed=7)
    sim.run(until=SECONDS * SECOND)
    h = hashlib.sha256()
    enc = msgspec.json.Encoder()
    for time, symbol, events in sim.log:
        h.update(enc.encode([time, symbol, list(events)]))
    for trader in sorted(sim.exchange.accounts.by_trader):
        acct = sim.exchange.accounts.account(trader)
        h.update(f"{trader},{acct.cash},{acct.fees},{sorted((s, p.qty) for s, p in acct.positions.items())}\n".encode())
    return h.hexdigest(), len(sim.log)


def test_seeded_simulation_matches_its_golden_hash() -> None:
    value, entries = digest()
    assert entries > 1_000
    assert value == GOLDEN, f"simulation log changed: {value} (see the module docstring)"


def test_an_order_tracker_survives_its_traders_liquidation() -> None:
    tracker = OrderTracker(3)
    tracker.sent_new(1, 1, 100, 5, 0, "", 0)
    tracker.apply(Liquidation(seq=1, trader=3, equity=-5.0, margin=10.0))  # no order id: ignored
    assert list(tracker.orders) == [1]


if __name__ == "__main__":
    print(digest()[0])

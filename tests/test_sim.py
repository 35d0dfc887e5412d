"""The simulator: deterministic for a seed, latency honoured, agents see only what they may."""

from __future__ import annotations

import pytest

from exchange import BookUpdate, Fill, NewOrder, nyse
from exchange.sim import MS, SECOND, US, Agent, Context, Latency, Simulator
from exchange.venue import Exchange


class Poster(Agent):
    """Posts a random limit order around 100.00 every ~1 ms and remembers what it saw."""

    def __init__(self, trader: int, latency: Latency | None = None, market_data: bool = True) -> None:
        super().__init__(trader, latency)
        self.market_data = market_data
        self.seen: list = []

    def on_start(self, ctx: Context) -> None:
        ctx.wake_in(ctx.rng.randint(1, MS))

    def on_wakeup(self, ctx: Context) -> None:
        side = ctx.rng.choice((1, -1))
        ctx.submit("XYZ", NewOrder(ctx.next_order_id(), self.trader, side, ctx.rng.randint(1, 5), 10_000 + ctx.rng.randint(-3, 3)))
        ctx.wake_in(ctx.rng.randint(1, MS))

    def on_event(self, ctx: Context, symbol: str, event: object) -> None:
        self.seen.append((ctx.now, event))


def run(seed: int, agents: list[Agent] | None = None, until: int = SECOND) -> Simulator:
    venue = Exchange({"XYZ": nyse()}, starting_cash=10**9)
    sim = Simulator(venue, agents or [Poster(t) for t in range(1, 5)], seed=seed)
    sim.run(until=until)
    return sim


def test_same_seed_same_trades_bit_for_bit() -> None:
    a, b = run(seed=11), run(seed=11)
    assert a.log == b.log and len(a.log) > 1000
    assert run(seed=12).log != a.log


def test_accounts_are_conserved_and_agree_with_the_log() -> None:
    sim = run(seed=3)
    accounts = sim.exchange.accounts
    accounts.check_conservation()
    volume = sum(ev.qty for _, _, ev in sim.iter_events() if type(ev) is Fill)
    assert volume > 0 and sum(a.volume for a in accounts.by_trader.values()) == 2 * volume


def test_order_latency_delays_arrival_at_the_exchange() -> None:
    class Once(Agent):
        def on_start(self, ctx: Context) -> None:
            ctx.submit("XYZ", NewOrder(ctx.next_order_id(), self.trader, 1, 1, 10_000))

    sim = run(seed=1, agents=[Once(1, Latency(order_ns=250 * US))], until=SECOND)
    [(time, symbol, events)] = sim.log
    assert (time, symbol, type(events[0]).__name__) == (250 * US, "XYZ", "Accepted")


def test_market_data_latency_delays_what_an_agent_sees() -> None:
    watcher = Poster(9, Latency(data_ns=3 * MS))
    sim = run(seed=2, agents=[Poster(1), watcher], until=200 * MS)
    first_update = next(t for t, _, ev in sim.iter_events() if type(ev) is BookUpdate)
    assert watcher.seen[0][0] == first_update + 3 * MS


def test_jitter_is_drawn_from_the_agents_seeded_generator() -> None:
    lat = Latency(order_ns=100 * US, order_jitter_ns=50 * US)
    a = run(seed=4, agents=[Poster(1, lat), Poster(2, lat)])
    b = run(seed=4, agents=[Poster(1, lat), Poster(2, lat)])
    assert a.log == b.log
    arrivals = [t for t, _, _ in a.log]
    assert arrivals == sorted(arrivals)


def test_agents_never_see_other_traders_private_events() -> None:
    quiet = Poster(2, market_data=False)
    sim = run(seed=5, agents=[Poster(1), quiet], until=300 * MS)
    assert quiet.seen
    for _, ev in quiet.seen:
        if type(ev) is Fill:
            assert 2 in (ev.maker_trader, ev.taker_trader)
        else:
            assert type(ev) is not BookUpdate and ev.trader == 2
    loud = sim.context(1).agent
    assert all(type(ev) in (Fill, BookUpdate) or ev.trader == 1 for _, ev in loud.seen)


def test_run_stops_at_a_time_or_an_event_count_and_can_go_on() -> None:
    venue = Exchange({"XYZ": nyse()})
    sim = Simulator(venue, [Poster(1), Poster(2)], seed=6)
    sim.run(max_events=100)
    assert 100 <= sim.events_produced < 110
    sim.run(until=50 * MS)
    assert sim.now == 50 * MS and all(t <= 50 * MS for t, _, _ in sim.log)
    n = len(sim.log)
    sim.run(until=100 * MS)
    assert len(sim.log) > n


def test_configuration_errors_are_refused_up_front() -> None:
    venue = Exchange({"XYZ": nyse()})
    with pytest.raises(ValueError, match="distinct traders"):
        Simulator(venue, [Poster(1), Poster(1)])
    with pytest.raises(ValueError, match="non-negative"):
        Latency(order_ns=-1)
    stray = Poster(3)
    stray.symbols = ("NOPE",)
    with pytest.raises(ValueError, match="unknown symbols"):
        Simulator(venue, [stray])


def test_jitter_changes_timing_but_not_the_agents_decisions() -> None:
    calm = Poster(1)
    shaky = Poster(1, Latency(order_jitter_ns=400 * US))
    run(seed=8, agents=[calm], until=100 * MS)
    run(seed=8, agents=[shaky], until=100 * MS)
    def sent(agent: Poster) -> list:  # what it decided, whatever order the network delivered it in
        return sorted((ev.order_id, ev.side, ev.qty, ev.price) for _, ev in agent.seen if type(ev).__name__ == "Accepted")

    assert sent(calm) == sent(shaky) and len(sent(calm)) > 50

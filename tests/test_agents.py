"""Scripted traders: each one trades in a small simulated market, within its limits, on both
presets, deterministically; the pure decision steps are checked on hand-made states."""

from __future__ import annotations

import dataclasses
import math
import random

import msgspec
import pytest

from agents import (
    AGENTS,
    AvellanedaStoikovMaker,
    BookView,
    MarketMakerConfig,
    MeanReversionConfig,
    MeanReversionTrader,
    MomentumConfig,
    MomentumTrader,
    NoiseConfig,
    NoiseTrader,
    OrderTracker,
    PlaceOrder,
    TwapConfig,
    TwapTrader,
    make_agent,
)
from agents.base import ScriptedAgent, toward_target
from agents.market_maker import optimal_spread, quote, reservation_price
from agents.mean_reversion import Ewma
from agents.mean_reversion import target_for as mr_target
from agents.momentum import TradeFlow, queue_imbalance
from agents.momentum import target_for as mom_target
from agents.twap import scheduled_after, slice_time
from exchange import Accepted, BookUpdate, Cancel, Cancelled, Fill, Modify, NewOrder, Rejected, cme, nyse
from exchange.book import TRADER
from exchange.sim import MS, SECOND, Agent, Latency, Simulator
from exchange.venue import Exchange, RiskLimits

SYMBOL = "XYZ"
PRESETS = {"nyse": nyse, "cme": cme}
REF = {"nyse": 10_000, "cme": 500_000}  # $100.00 in cents; 5000.00 in hundredths (tick 25)
CASH = 10**12


# ---- harness ---------------------------------------------------------------------------------
def venue(preset: str, **kw) -> Exchange:
    return Exchange({SYMBOL: PRESETS[preset](SYMBOL)}, starting_cash=CASH, **kw)


def noise(preset: str, n: int = 4, first: int = 1, **kw) -> list[NoiseTrader]:
    cfg = NoiseConfig(reference_price=REF[preset], **{"rate_hz": 10.0, **kw})
    return [NoiseTrader(first + i, SYMBOL, cfg) for i in range(n)]


def run(ex: Exchange, agents: list, seconds: float = 3, seed: int = 7) -> Simulator:
    sim = Simulator(ex, agents, seed=seed)
    sim.run(until=int(seconds * SECOND))
    return sim


def checked(sim: Simulator) -> None:
    """Venue-wide checks after a zero-latency run: conservation, book invariants, prices on
    tick, and every agent's own view (position, working orders) equal to the venue's."""
    ex = sim.exchange
    ex.accounts.check_conservation()
    engine = ex.engines[SYMBOL]
    engine.book.check_invariants()
    tick = engine.spec.tick
    for _, _, ev in sim.iter_events():
        if type(ev) is Accepted and ev.price is not None:
            assert ev.price % tick == 0, ev
        assert not (type(ev) is Rejected and ev.reason in ("off_tick", "bad_price", "no_change")), ev
    for agent in sim.agents:
        if not isinstance(agent, ScriptedAgent):
            continue
        assert agent.orders.position == ex.accounts.account(agent.trader).position(SYMBOL), agent
        resting = {oid for oid, o in engine.book.orders.items() if o[TRADER] == agent.trader}
        assert set(agent.orders.orders) == resting, (agent, agent.orders.orders, resting)


def fills_of(sim: Simulator, trader: int) -> list[Fill]:
    return [ev for _, _, ev in sim.iter_events() if type(ev) is Fill and trader in (ev.maker_trader, ev.taker_trader)]


def position_path(sim: Simulator, trader: int) -> list[int]:
    """The trader's position after each of its fills."""
    pos, path = 0, []
    for f in fills_of(sim, trader):
        if f.taker_trader == trader:
            pos += f.aggressor * f.qty
        if f.maker_trader == trader:
            pos -= f.aggressor * f.qty
        path.append(pos)
    return path


def encoded_log(sim: Simulator) -> bytes:
    return msgspec.json.encode([(t, s, evs) for t, s, evs in sim.log])


# ---- noise -----------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESETS)
def test_noise_traders_bootstrap_an_empty_book_and_trade(preset):
    ex = venue(preset)
    sim = run(ex, noise(preset, 3), seconds=4)
    checked(sim)
    bids, asks = ex.engines[SYMBOL].book.l2()
    assert bids and asks, "the book is two-sided after a few seconds"
    tick = ex.engines[SYMBOL].spec.tick
    trades = [ev for _, _, ev in sim.iter_events() if type(ev) is Fill]
    assert len(trades) >= 5
    assert all(abs(f.price - REF[preset]) <= 60 * tick for f in trades), "prices stay around the reference"
    for a in sim.agents:
        assert a.orders.fills > 0 and a.orders.sent > 10


def test_noise_arrivals_are_poisson_at_the_configured_rate():
    ex = venue("nyse")
    sim = run(ex, noise("nyse", 2, rate_hz=20.0, p_cancel=0.0), seconds=5)
    checked(sim)
    for a in sim.agents:  # ~100 arrivals each: one order per arrival, plus age-outs
        assert 60 <= ex.accounts.account(a.trader).orders <= 140


def test_noise_position_limit_counts_working_orders():
    ex = venue("nyse")
    sim = run(ex, noise("nyse", 3, max_position=15, p_market=0.4), seconds=4)
    checked(sim)
    for a in sim.agents:
        assert max(map(abs, position_path(sim, a.trader)), default=0) <= 15


# ---- market maker ----------------------------------------------------------------------------
def test_as_formulas():
    assert reservation_price(100.0, 0, 0.1, 2.0, 3.0) == 100.0
    assert reservation_price(100.0, 5, 0.1, 2.0, 3.0) == pytest.approx(100.0 - 5 * 0.1 * 4 * 3)
    assert optimal_spread(0.1, 2.0, 3.0, 1.5) == pytest.approx(0.1 * 4 * 3 + 20 * math.log(1 + 0.1 / 1.5))
    assert optimal_spread(0.1, 0.0, 3.0, 1.5) == pytest.approx(20 * math.log(1 + 0.1 / 1.5))


@pytest.mark.parametrize("tick", [1, 25])
def test_as_quotes_skew_against_inventory(tick):
    cfg = MarketMakerConfig(gamma=0.1, k=1.5, quote_qty=5, max_inventory=20)
    mid = 4000 * tick + tick / 2  # half a tick: a one-tick market

    def q(inv: int):
        return quote(cfg, mid, inv, sigma=2.0, tau_s=1.0, tick=tick)

    flat = q(0)
    assert flat.bid % tick == 0 and flat.ask % tick == 0
    assert flat.bid < mid < flat.ask
    assert flat.ask - mid == pytest.approx(mid - flat.bid), "flat: symmetric around the mid"
    assert flat.reservation == pytest.approx(mid)
    longs = [q(i) for i in (0, 5, 10, 15)]
    shorts = [q(-i) for i in (0, 5, 10, 15)]
    for a, b in zip(longs, longs[1:]):  # longer: both quotes (and r) lower
        assert b.bid <= a.bid and b.ask <= a.ask and b.reservation < a.reservation
    for a, b in zip(shorts, shorts[1:]):  # shorter: both higher
        assert b.bid >= a.bid and b.ask >= a.ask and b.reservation > a.reservation
    assert q(15).ask < flat.ask and q(-15).bid > flat.bid
    for inv in range(-20, 21):
        x = q(inv)
        assert x.bid is None or x.ask is None or x.bid < x.ask
        # skew = q gamma sigma^2 tau ticks, spread as the model says, each rounded outward
        assert x.reservation == pytest.approx(mid - inv * 0.1 * 4 * tick)
        assert x.spread == pytest.approx(optimal_spread(0.1, 2.0, 1.0, 1.5) * tick)
        if x.bid is not None:
            assert x.bid <= x.reservation - x.spread / 2 + 1e-6
        if x.ask is not None:
            assert x.ask >= x.reservation + x.spread / 2 - 1e-6


def test_as_quotes_respect_the_inventory_limit():
    cfg = MarketMakerConfig(quote_qty=5, max_inventory=20)
    assert quote(cfg, 100.5, 17, 1.0, 1.0, 1)[:4:2] != (None, None)
    assert quote(cfg, 100.5, 17, 1.0, 1.0, 1).bid_qty == 3, "a full fill may reach the limit, not pass it"
    at_long = quote(cfg, 100.5, 20, 1.0, 1.0, 1)
    assert at_long.bid is None and at_long.ask is not None and at_long.ask_qty == 5
    at_short = quote(cfg, 100.5, -20, 1.0, 1.0, 1)
    assert at_short.ask is None and at_short.bid is not None and at_short.bid_qty == 5


@pytest.mark.parametrize("tick", [1, 25])
def test_as_quotes_are_clamped_to_the_passive_side(tick):
    cfg = MarketMakerConfig(gamma=0.1, k=1.5)
    mid = 1000 * tick
    # very long: r far below the market, the ask would cross the others' bid
    x = quote(cfg, mid, 40, 5.0, 1.0, tick, best_bid=mid - tick, best_ask=mid + tick)
    assert x.reservation + x.spread / 2 < mid - tick, "unclamped, the ask would take liquidity"
    assert x.ask == mid, "clamped to one tick above the best bid"
    y = quote(cfg, mid, -40, 5.0, 1.0, tick, best_bid=mid - tick, best_ask=mid + tick)
    assert y.bid == mid, "clamped to one tick below the best ask"


class RecordingExchange(Exchange):
    """Notes the best prices each command found on arrival (for crossing checks)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.seen: list[tuple[object, int | None, int | None]] = []

    def submit(self, symbol, command):
        book = self.engines[symbol].book
        self.seen.append((command, book.bids.best, book.asks.best))
        return super().submit(symbol, command)


@pytest.mark.parametrize("preset", PRESETS)
def test_market_maker_quotes_passively_skews_and_stays_within_limit(preset):
    spec = PRESETS[preset](SYMBOL)
    ex = RecordingExchange({SYMBOL: spec}, starting_cash=CASH)
    # post_only off: the clamp alone must keep every quote passive
    cfg = MarketMakerConfig(quote_qty=4, max_inventory=12, post_only=False, sigma=1.5)
    mm = AvellanedaStoikovMaker(50, SYMBOL, cfg)
    sim = run(ex, [*noise(preset, 4, p_market=0.3), mm], seconds=5)
    checked(sim)
    fills = fills_of(sim, 50)
    assert len(fills) >= 5
    assert all(f.maker_trader == 50 for f in fills), "the market maker never takes liquidity"
    assert max(map(abs, position_path(sim, 50))) <= 12
    quotes = [(c, bid, ask) for c, bid, ask in ex.seen if getattr(c, "trader", None) == 50]
    new = {c.order_id: c for c, _, _ in quotes if type(c) is NewOrder}
    assert new and any(type(c) is Modify for c, _, _ in quotes), "it re-quotes with Modify"
    for c, bid, ask in quotes:
        if type(c) is NewOrder:
            side, price = c.side, c.price
        elif type(c) is Modify and c.price is not None:
            side, price = new[c.order_id].side, c.price
        else:
            continue
        assert price % spec.tick == 0
        if side == 1:
            assert ask is None or price < ask, (c, bid, ask)
        else:
            assert bid is None or price > bid, (c, bid, ask)


def test_market_maker_skews_in_the_simulation():
    """Its quotes' centre sits below the others' mid when long, above when short."""
    ex = venue("nyse")
    mm = AvellanedaStoikovMaker(50, SYMBOL, MarketMakerConfig(quote_qty=5, max_inventory=30, sigma=2.0))
    sim = Simulator(ex, [*noise("nyse", 4, p_market=0.3), mm], seed=3)
    seen = set()
    for k in range(1, 60):
        sim.run(until=k * 100 * MS)
        q = mm.last_quotes
        if q is None or not q.inventory:
            continue
        assert (q.reservation - q.mid) * q.inventory < 0
        if q.bid is not None and q.ask is not None and q.bid < q.mid < q.ask:
            centre = (q.bid + q.ask) / 2
            assert (centre - q.mid) * q.inventory <= 0
        seen.add(q.inventory > 0)
    assert seen == {True, False}, "the maker was long and short at some point"
    checked(sim)


def test_market_maker_post_only_refusals_are_handled():
    """With 20 ms of order latency the book moves while quotes travel: post-only refuses
    the ones that would now cross, modifies of just-filled quotes meet unknown orders, and
    the maker carries on, never taking liquidity."""
    ex = venue("nyse")
    cfg = MarketMakerConfig(sigma=1.0, requote_ns=50 * MS)
    mm = AvellanedaStoikovMaker(50, SYMBOL, cfg, latency=Latency(order_ns=20 * MS, data_ns=5 * MS))
    sim = run(ex, [*noise("nyse", 4, p_market=0.3, rate_hz=20.0), mm], seconds=4, seed=2)
    ex.accounts.check_conservation()
    assert mm.orders.rejects["post_only_would_cross"] > 0 and mm.orders.rejects["unknown_order"] > 0
    fills = fills_of(sim, 50)
    assert len(fills) > 10 and all(f.maker_trader == 50 for f in fills)
    assert len(mm.orders.working()) <= 2


# ---- momentum and mean reversion ------------------------------------------------------------
def test_momentum_signals_and_target():
    book = BookView()
    for ev in (BookUpdate(1, 1, 100, 30, 2), BookUpdate(2, -1, 101, 10, 1), BookUpdate(3, 1, 99, 50, 1)):
        book.apply(ev)
    assert queue_imbalance(book) == pytest.approx((30 - 10) / 40)
    mine = OrderTracker(9)  # the trader's own 20 lots at the bid leave 10 of others'
    mine.sent_new(1, 1, 100, 20, 0, "", 0)
    mine.apply(Accepted(4, 1, 9, 1, 100, 20, 0))
    assert queue_imbalance(book, mine) == pytest.approx(0.0)
    flow = TradeFlow(window_ns=SECOND)
    flow.add(0, 1, 6)
    flow.add(SECOND // 2, -1, 2)
    assert flow.value(SECOND // 2) == pytest.approx(4 / 8)
    assert flow.value(SECOND + 1) == pytest.approx(-1.0), "the first trade left the window"
    cfg = MomentumConfig(entry=0.5, exit=0.1, max_position=7)
    assert mom_target(0.6, 0, cfg) == 7 and mom_target(-0.6, 0, cfg) == -7
    assert mom_target(0.3, 7, cfg) == 7, "hysteresis: holds between exit and entry"
    assert mom_target(0.05, -7, cfg) == 0


def test_toward_target_never_passes_the_target():
    book = BookView()
    for ev in (BookUpdate(1, 1, 100, 30, 2), BookUpdate(2, -1, 101, 10, 1)):
        book.apply(ev)
    orders = OrderTracker(9)
    orders.position = 3
    [buy] = toward_target(5, 3, book, orders, clip=10, tick=1, lot=1, aggression_ticks=2)
    assert buy == PlaceOrder(1, 2, 103, buy.tif)
    [sell] = toward_target(-10, 3, book, orders, clip=5, tick=1, lot=1, aggression_ticks=0)
    assert (sell.side, sell.qty, sell.price) == (-1, 5, 100)
    [join] = toward_target(-10, 3, book, orders, clip=5, tick=1, lot=1, passive=True)
    assert (join.side, join.price) == (-1, 101)
    assert toward_target(3, 3, book, orders, clip=5, tick=1, lot=1) == []


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("signal", ["imbalance", "trade_flow", "returns"])
def test_momentum_trades_within_its_position_limit(preset, signal):
    entry, exit_ = (1.0, 0.5) if signal == "returns" else (0.3, 0.05)
    cfg = MomentumConfig(signal=signal, entry=entry, exit=exit_, max_position=12, clip_qty=4)
    mom = MomentumTrader(60, SYMBOL, cfg)
    sim = run(venue(preset), [*noise(preset, 4), mom], seconds=5)
    checked(sim)
    path = position_path(sim, 60)
    assert len(path) >= 2, "it traded"
    assert max(map(abs, path)) <= 12


def test_momentum_goes_with_the_flow():
    """Fed a market where aggressive buying dominates, it ends long."""
    ex = venue("nyse")
    buyers = noise("nyse", 2, first=1, p_market=0.5, max_position=None)
    sellers = noise("nyse", 2, first=3, p_market=0.0)
    mom = MomentumTrader(60, SYMBOL, MomentumConfig(signal="trade_flow", entry=0.3, exit=0.05, max_position=10))

    class OneSided(NoiseTrader):  # market orders only buy
        def send(self, ctx, intents):
            super().send(ctx, [i._replace(side=1) if type(i) is PlaceOrder and i.price is None else i for i in intents])

    buyers = [OneSided(b.trader, SYMBOL, b.config) for b in buyers]
    sim = run(ex, [*buyers, *sellers, mom], seconds=3)
    checked(sim)
    assert mom.signal > 0 and mom.orders.position > 0


def test_mean_reversion_pieces():
    e = Ewma(halflife_ns=SECOND)
    e.update(100.0, 0)
    assert e.update(110.0, SECOND) == pytest.approx(105.0), "one half-life: half way"
    assert e.age(SECOND) == SECOND
    cfg = MeanReversionConfig(entry_ticks=3, exit_ticks=1, max_position=8)
    assert mr_target(4.0, 0, cfg) == -8, "above the average: sell"
    assert mr_target(-4.0, 0, cfg) == 8
    assert mr_target(2.0, -8, cfg) == -8, "holds between exit and entry"
    assert mr_target(0.5, -8, cfg) == 0, "exits toward flat"


@pytest.mark.parametrize("preset", PRESETS)
def test_mean_reversion_fades_and_stays_within_limit(preset):
    cfg = MeanReversionConfig(halflife_ns=2 * SECOND, entry_ticks=1.5, exit_ticks=0.5, max_position=10, clip_qty=3)
    mr = MeanReversionTrader(70, SYMBOL, cfg)
    sim = run(venue(preset), [*noise(preset, 4, p_market=0.3), mr], seconds=6)
    checked(sim)
    path = position_path(sim, 70)
    assert len(path) >= 2 and max(map(abs, path)) <= 10
    assert any(f.taker_trader == 70 for f in fills_of(sim, 70)), "marketable by default: it takes"


class Ramp(Agent):
    """A test driver: every 50 ms it re-posts a one-tick market of 50 lots a side around a
    price that climbs ``speed`` ticks a second (raw commands, not a scripted agent)."""

    symbols = (SYMBOL,)

    def __init__(self, trader: int, start: int, tick: int, speed: float) -> None:
        super().__init__(trader)
        self.start, self.tick, self.speed, self.live = start, tick, speed, []

    def on_start(self, ctx):
        ctx.wake_in(0)

    def on_wakeup(self, ctx):
        for oid in self.live:  # some were filled: their cancels are refused, harmlessly
            ctx.submit(SYMBOL, Cancel(order_id=oid, trader=self.trader))
        p = self.start + round(self.speed * ctx.now / SECOND) * self.tick
        self.live = [ctx.next_order_id(), ctx.next_order_id()]
        ctx.submit(SYMBOL, NewOrder(order_id=self.live[0], trader=self.trader, side=1, qty=50, price=p - self.tick))
        ctx.submit(SYMBOL, NewOrder(order_id=self.live[1], trader=self.trader, side=-1, qty=50, price=p + self.tick))
        ctx.wake_in(50 * MS)


@pytest.mark.parametrize("preset", PRESETS)
def test_mean_reversion_sells_a_rally_and_momentum_buys_it(preset):
    """On a steadily rising market the fader ends short at its limit, the follower long."""
    tick = PRESETS[preset](SYMBOL).tick
    mr_cfg = MeanReversionConfig(halflife_ns=SECOND, warmup_ns=500 * MS, entry_ticks=2.0, exit_ticks=0.5, max_position=10)
    mom_cfg = MomentumConfig(signal="returns", window_ns=SECOND, entry=2.0, exit=0.5, max_position=10)
    mr, mom = MeanReversionTrader(70, SYMBOL, mr_cfg), MomentumTrader(60, SYMBOL, mom_cfg)
    sim = run(venue(preset), [Ramp(1, REF[preset], tick, speed=5.0), mr, mom], seconds=3)
    checked(sim)
    assert mr.deviation > 2.0 and mr.target == -10 and mr.orders.position == -10
    assert mom.signal > 2.0 and mom.target == 10 and mom.orders.position == 10
    assert max(position_path(sim, 70)) <= 0 and min(position_path(sim, 60)) >= 0, "never the wrong way"


# ---- TWAP ------------------------------------------------------------------------------------
def test_twap_schedule():
    cfg = TwapConfig(side=1, qty=100, duration_ns=10 * SECOND, slices=8, start_ns=SECOND)
    assert [slice_time(cfg, i) for i in (0, 1, 7)] == [SECOND, SECOND + 1_250_000_000, SECOND + 8_750_000_000]
    assert [scheduled_after(cfg, i) for i in range(8)] == [12, 25, 37, 50, 62, 75, 87, 100]


def liquid_market(preset: str) -> list:
    """Noise flow plus a market maker with size: a book the TWAP can lean on."""
    mm = AvellanedaStoikovMaker(50, SYMBOL, MarketMakerConfig(quote_qty=20, max_inventory=400, sigma=1.0))
    return [*noise(preset, 6, rate_hz=20.0, max_qty=15), mm]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("side", [1, -1])
def test_twap_fills_its_target_on_schedule(preset, side):
    cfg = TwapConfig(side=side, qty=150, duration_ns=3 * SECOND, slices=10, start_ns=500 * MS)
    twap = TwapTrader(80, SYMBOL, cfg)
    sim = run(venue(preset), [*liquid_market(preset), twap], seconds=4)
    checked(sim)
    assert len(twap.history) == 10
    assert [p.time for p in twap.history] == [slice_time(cfg, i) for i in range(10)]
    slice_qty = 15
    for p in twap.history:
        assert p.filled <= p.scheduled, "never ahead of the schedule"
        assert p.behind <= slice_qty, f"more than a slice behind at {p}"
    final = twap.progress(sim.now)
    assert final.scheduled == 150 and final.filled >= 150 - slice_qty
    assert twap.orders.position == side * final.filled
    # every fill of the TWAP is in its direction, as taker, after the start
    for f in fills_of(sim, 80):
        assert f.taker_trader == 80 and f.aggressor == side


def test_twap_respects_its_price_limit():
    # buy with a limit well under the market: nothing may trade above it
    limit = REF["nyse"] - 40
    twap = TwapTrader(80, SYMBOL, TwapConfig(side=1, qty=100, duration_ns=2 * SECOND, slices=5, limit_price=limit))
    sim = run(venue("nyse"), [*liquid_market("nyse"), twap], seconds=3)
    checked(sim)
    assert all(f.price <= limit for f in fills_of(sim, 80))
    assert twap.progress(sim.now).filled < 100


# ---- all together: determinism, latency, refusals --------------------------------------------
def zoo(preset: str) -> list:
    return [
        *noise(preset, 4),
        AvellanedaStoikovMaker(50, SYMBOL, MarketMakerConfig(max_inventory=20)),
        MomentumTrader(60, SYMBOL, MomentumConfig(signal="imbalance", entry=0.3, exit=0.05)),
        MeanReversionTrader(70, SYMBOL, MeanReversionConfig(entry_ticks=1.5, exit_ticks=0.5, aggression_ticks=1)),
        TwapTrader(80, SYMBOL, TwapConfig(side=-1, qty=60, duration_ns=2 * SECOND, slices=6)),
    ]


@pytest.mark.parametrize("preset", PRESETS)
def test_same_seed_same_log(preset):
    logs = [encoded_log(run(venue(preset), zoo(preset), seconds=3, seed=seed)) for seed in (11, 11, 12)]
    assert logs[0] == logs[1], "same seed, same trades"
    assert logs[0] != logs[2], "the seed matters"


@pytest.mark.parametrize("preset", PRESETS)
def test_all_agents_together(preset):
    sim = run(venue(preset), zoo(preset), seconds=4)
    checked(sim)
    for a in sim.agents:
        assert a.orders.fills > 0, f"{type(a).__name__} {a.trader} did not trade"
    assert max(map(abs, position_path(sim, 50))) <= 20
    assert max(map(abs, position_path(sim, 60))) <= 20
    assert max(map(abs, position_path(sim, 70))) <= 20


def test_agents_under_latency():
    """With order and data delays (and jitter) the agents still run, the venue stays
    consistent, and the one-order-at-a-time traders keep their limits exactly."""
    agents = zoo("cme")
    for i, a in enumerate(agents):
        a.latency = Latency(order_ns=(i + 1) * MS, data_ns=2 * MS, order_jitter_ns=MS, data_jitter_ns=MS)
    sim = run(venue("cme"), agents, seconds=4)
    sim.exchange.accounts.check_conservation()
    sim.exchange.engines[SYMBOL].book.check_invariants()
    for trader in (60, 70):
        assert max(map(abs, position_path(sim, trader)), default=0) <= 20
    assert sum(a.orders.fills > 0 for a in agents) >= 6
    for a in agents:  # the own view lags but agrees with the venue on what has been heard
        assert abs(a.orders.position - sim.exchange.accounts.account(a.trader).position(SYMBOL)) <= 60


def test_refusals_never_crash_and_leave_the_view_exact():
    """A venue with tight risk limits refuses many orders; every agent carries on."""
    risk = RiskLimits(max_order_qty=6, max_open_orders=4)
    ex = venue("nyse", risk=risk)
    sim = run(ex, zoo("nyse"), seconds=4)
    checked(sim)
    refused = [ev for _, _, ev in sim.iter_events() if type(ev) is Rejected]
    assert {ev.reason for ev in refused} >= {"risk_order_qty", "risk_open_orders"}
    assert sum(sum(a.orders.rejects.values()) for a in sim.agents) == len(refused)
    assert sum(1 for _, _, ev in sim.iter_events() if type(ev) is Fill) > 10


def test_tracker_handles_every_answer():
    t = OrderTracker(9)
    t.sent_new(1, 1, 100, 10, 0, "", 0)
    t.apply(Rejected(1, 1, 9, "off_tick"))
    assert not t.orders, "a refused new order is dropped"
    t.sent_new(2, -1, 101, 10, 0, "", 0)
    assert t.busy
    t.apply(Accepted(2, 2, 9, -1, 101, 10, 0))
    t.apply(Fill(3, 101, 4, 1, 2, 77, 9, 5))
    assert t.position == -4 and t.orders[2].qty == 6 and not t.busy
    t.sent_modify(2)
    t.apply(Rejected(4, 2, 9, "post_only_would_cross"))
    assert t.orders[2].settled and t.orders[2].price == 101, "a refused modify leaves the order"
    t.sent_cancel(2)
    t.apply(Rejected(5, 2, 9, "not_owner"))
    assert t.orders[2].settled, "a refused cancel leaves the order"
    t.sent_cancel(2)
    t.apply(Rejected(6, 2, 9, "unknown_order"))
    assert not t.orders, "the venue no longer knows it: gone"
    t.sent_new(3, 1, 99, 5, 0, "", 0)
    t.apply(Accepted(7, 3, 9, 1, 99, 5, 0))
    t.apply(Cancelled(8, 3, 9, 5, "self_match"))
    assert not t.orders and t.rejects["unknown_order"] == 1
    assert t.apply(BookUpdate(9, 1, 99, 0, 0)) is False


def test_make_agent_and_configs():
    assert set(AGENTS) == {"noise", "market_maker", "momentum", "mean_reversion", "twap"}
    a = make_agent("momentum", 5, SYMBOL, MomentumConfig())
    assert isinstance(a, MomentumTrader) and isinstance(a, ScriptedAgent) and a.symbols == (SYMBOL,)
    with pytest.raises(TypeError):
        make_agent("noise", 5, SYMBOL, MomentumConfig())
    with pytest.raises(ValueError):
        make_agent("hft", 5, SYMBOL, MomentumConfig())
    for bad in (
        lambda: NoiseConfig(reference_price=0),
        lambda: NoiseConfig(reference_price=100, p_market=0.7, p_cancel=0.5),
        lambda: MarketMakerConfig(gamma=0),
        lambda: MomentumConfig(signal="vibes"),
        lambda: MomentumConfig(entry=0.1, exit=0.2),
        lambda: MeanReversionConfig(exit_ticks=5, entry_ticks=1),
        lambda: TwapConfig(side=0, qty=10, duration_ns=SECOND),
    ):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(dataclasses.FrozenInstanceError):
        MomentumConfig().max_position = 3  # type: ignore[misc]


def test_decisions_use_only_the_given_generator():
    """The noise step is a function of its inputs: same generator state, same intents."""
    from agents.noise import decide

    cfg = NoiseConfig(reference_price=10_000)
    book, orders = BookView(), OrderTracker(1)
    a = [decide(cfg, book, orders, 0, random.Random(5), 1, 1) for _ in range(3)]
    assert a[0] == a[1] == a[2] and a[0][0].price is not None

"""Market maker after Avellaneda and Stoikov: two-sided quotes skewed by inventory.

Model. M. Avellaneda and S. Stoikov, "High-frequency trading in a limit order book",
*Quantitative Finance* 8(3), 217-224 (2008). The mid price ``s`` follows a Brownian motion
of volatility ``sigma``; a market order reaches a quote ``delta`` away from the mid with
intensity ``A exp(-k delta)``; the dealer maximises an exponential (CARA) utility with risk
aversion ``gamma`` of its wealth at a horizon ``T``. With inventory ``q`` at time ``t`` the
approximate optimal quotes are centred on the *reservation price* and spaced by the
*optimal spread*:

    r     = s - q * gamma * sigma^2 * (T - t)
    delta = gamma * sigma^2 * (T - t) + (2 / gamma) * ln(1 + gamma / k)
    bid   = r - delta / 2,   ask = r + delta / 2

A long inventory lowers both quotes (sell more readily, buy less), a short one raises them.

Units. Prices in the formulas are measured in *ticks* of the instrument, so one
configuration works on any tick size: ``sigma`` in ticks per square-root second, ``gamma``
and ``k`` per tick, ``T - t`` in seconds. ``T - t`` is the time left to ``session_end_ns``
when that is set, else a constant rolling ``horizon_ns`` (a dealer with no end of day).

Estimation. ``s`` is the mid of *other* traders' orders (the dealer's own quotes are taken
out of its view of the book, so its skew does not feed back into its fair price), else the
last trade, else ``reference_price``. With ``sigma`` None it is estimated online, at each
timer re-quote where others show both sides, as an exponentially weighted mean of squared
mid changes per second (``sigma_halflife_ns``), starting at ``sigma_init`` and capped at
``sigma_max`` (thin books jump; an uncapped estimate would fling the reservation price).

Scale. The skew is ``gamma sigma^2 (T - t)`` ticks per lot of inventory: the defaults
(``gamma`` 0.1, ``sigma`` about 1, ``T - t`` one second) give 0.1 tick per lot and a model
spread of about 1.4 ticks, a dealer that leans a tick or two at twenty lots.

Quotes. The bid is rounded down and the ask up to a whole tick (never narrower than the
model), at least ``min_spread_ticks`` apart, then clamped to the passive side: the bid
at least one tick below the best ask of others and the ask at least one tick above their
best bid, so a quote meant to rest never takes liquidity. Where the instrument accepts it
the quotes are also post-only, so a book that moved in flight refuses the quote instead of
filling it. Sizes are ``quote_qty``, cut so that a fill of the whole bid (ask) cannot take
the inventory past ``+max_inventory`` (``-max_inventory``); a side with no room is not
quoted. The dealer keeps at most one order per side and moves it with ``Modify``; a partly
filled quote whose price still stands keeps its place in the queue (it is cut if the
inventory room shrank, never topped up). It re-quotes every ``requote_ns`` and as soon as
one of its quotes is filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from agents.base import (
    BookView,
    CancelOrder,
    Intent,
    ModifyOrder,
    OrderTracker,
    OwnOrder,
    PlaceOrder,
    ScriptedAgent,
    lots,
)
from exchange.events import Fill
from exchange.sim import MS, SECOND, Context, Latency

BID, ASK = "bid", "ask"


@dataclass(frozen=True)
class MarketMakerConfig:
    """Parameters of ``AvellanedaStoikovMaker``; model quantities in ticks and seconds."""

    gamma: float = 0.1  # risk aversion, per tick
    k: float = 1.5  # decay of the fill intensity with distance from the mid, per tick
    sigma: float | None = None  # mid volatility, ticks per sqrt(second); None: estimate online
    sigma_init: float = 1.0  # starting estimate when sigma is None
    sigma_max: float = 5.0  # cap of the online estimate (one wild mid jump must not blow up r)
    sigma_halflife_ns: int = 5 * SECOND  # memory of the online estimate
    horizon_ns: int = 1 * SECOND  # T - t when session_end_ns is None
    session_end_ns: int | None = None  # T, simulated time in ns; T - t shrinks to 0 there
    quote_qty: int = 5  # lots per side
    max_inventory: int = 50  # |inventory| bound; the side that would pass it is cut or dropped
    requote_ns: int = 200 * MS  # re-quote period
    min_spread_ticks: int = 1  # narrowest quoted spread
    reference_price: int | None = None  # fair price while nothing else is known (None: wait)
    post_only: bool = True  # mark quotes post-only where the instrument accepts it

    def __post_init__(self) -> None:
        if self.gamma <= 0 or self.k <= 0:
            raise ValueError("gamma and k must be positive")
        if (self.sigma is not None and self.sigma < 0) or not 0 <= self.sigma_init <= self.sigma_max:
            raise ValueError("need sigma >= 0 and 0 <= sigma_init <= sigma_max")
        if self.quote_qty < 1 or self.max_inventory < 0 or self.min_spread_ticks < 1:
            raise ValueError("need quote_qty >= 1, max_inventory >= 0, min_spread_ticks >= 1")
        if self.requote_ns <= 0 or self.horizon_ns < 0 or self.sigma_halflife_ns <= 0:
            raise ValueError("requote_ns and sigma_halflife_ns must be positive, horizon_ns >= 0")


def reservation_price(mid: float, inventory: int, gamma: float, sigma: float, tau: float) -> float:
    """Avellaneda-Stoikov reservation price ``s - q gamma sigma^2 (T - t)``."""
    return mid - inventory * gamma * sigma * sigma * tau


def optimal_spread(gamma: float, sigma: float, tau: float, k: float) -> float:
    """Avellaneda-Stoikov optimal total spread ``gamma sigma^2 (T - t) + (2/gamma) ln(1 + gamma/k)``."""
    return gamma * sigma * sigma * tau + (2.0 / gamma) * math.log1p(gamma / k)


class Quotes(NamedTuple):
    """Wanted quotes in price units and lots; a price of None: do not quote that side."""

    bid: int | None
    bid_qty: int
    ask: int | None
    ask_qty: int
    reservation: float  # in price units, for reports
    spread: float  # model spread in price units
    mid: float  # the fair price the quotes were built on (price units)
    inventory: int  # the inventory they were built for (lots)


def quote(
    config: MarketMakerConfig,
    mid: float,
    inventory: int,
    sigma: float,
    tau_s: float,
    tick: int,
    lot: int = 1,
    best_bid: int | None = None,
    best_ask: int | None = None,
) -> Quotes:
    """The quotes for ``mid`` (price units) and ``inventory`` (lots), clamped so that the bid
    stays below ``best_ask`` and the ask above ``best_bid`` (other traders' best prices)."""
    m = mid / tick
    r = reservation_price(m, inventory, config.gamma, sigma, tau_s)
    delta = optimal_spread(config.gamma, sigma, tau_s, config.k)
    bid_t = math.floor(r - delta / 2 + 1e-9)
    ask_t = math.ceil(r + delta / 2 - 1e-9)
    short = config.min_spread_ticks - (ask_t - bid_t)
    if short > 0:  # widen around r, the odd tick on the side the inventory wants to close
        bid_t -= short // 2 + (short % 2 if inventory >= 0 else 0)
        ask_t += short // 2 + (short % 2 if inventory < 0 else 0)
    if best_ask is not None:
        bid_t = min(bid_t, best_ask // tick - 1)
    if best_bid is not None:
        ask_t = max(ask_t, best_bid // tick + 1)
    ask_t = max(ask_t, 1)  # a price is at least one tick
    bid_qty = lots(min(config.quote_qty, config.max_inventory - inventory), lot)
    ask_qty = lots(min(config.quote_qty, config.max_inventory + inventory), lot)
    return Quotes(
        bid_t * tick if bid_qty > 0 and bid_t >= 1 else None,
        bid_qty,
        ask_t * tick if ask_qty > 0 else None,
        ask_qty,
        r * tick,
        delta * tick,
        mid,
        inventory,
    )


class VolatilityEstimate:
    """Online estimate of the mid's volatility in ticks per sqrt(second): an EWMA of the
    variance rate ``(change of mid)^2 / dt`` with time-based weights, capped at ``sigma_max``."""

    __slots__ = ("variance", "halflife_s", "sigma_max", "_last_mid", "_last_time")

    def __init__(self, sigma_init: float, halflife_ns: int, sigma_max: float = math.inf) -> None:
        self.variance = sigma_init * sigma_init
        self.halflife_s = halflife_ns / SECOND
        self.sigma_max = sigma_max
        self._last_mid: float | None = None
        self._last_time = 0

    def update(self, mid_ticks: float, now: int) -> None:
        if self._last_mid is not None and now > self._last_time:
            dt = (now - self._last_time) / SECOND
            sample = (mid_ticks - self._last_mid) ** 2 / dt
            w = 1.0 - 0.5 ** (dt / self.halflife_s)
            self.variance += w * (sample - self.variance)
        self._last_mid, self._last_time = mid_ticks, now

    @property
    def sigma(self) -> float:
        return min(self.sigma_max, math.sqrt(self.variance))


def decide(
    config: MarketMakerConfig,
    book: BookView,
    orders: OrderTracker,
    now: int,
    sigma: float,
    tick: int,
    lot: int,
    others: tuple[int | None, int | None] | None = None,
) -> tuple[list[Intent], Quotes | None]:
    """Re-quote: the intents that bring the working bid and ask to the wanted quotes.

    ``others``: other traders' best bid and ask (``book.others_best``) if already known."""
    if others is None:
        others = book.others_best(1, orders), book.others_best(-1, orders)
    best_bid, best_ask = others
    mid = book.fair_price(best_bid, best_ask, None if config.reference_price is None else float(config.reference_price))
    if mid is None:
        return [], None
    if config.session_end_ns is None:
        tau = config.horizon_ns / SECOND
    else:
        tau = max(0, config.session_end_ns - now) / SECOND
    bids, asks = orders.working(1), orders.working(-1)
    # a side whose order is busy stays as it is: the other side must not cross it
    frozen_bid = next((o.price for o in bids if not o.settled and o.price is not None), None)
    frozen_ask = next((o.price for o in asks if not o.settled and o.price is not None), None)
    if frozen_ask is not None:
        best_ask = frozen_ask if best_ask is None else min(best_ask, frozen_ask)
    if frozen_bid is not None:
        best_bid = frozen_bid if best_bid is None else max(best_bid, frozen_bid)
    q = quote(config, mid, orders.position, sigma, tau, tick, lot, best_bid, best_ask)
    bid_moves = _side_intents(bids, 1, q.bid, q.bid_qty, config.post_only)
    ask_moves = _side_intents(asks, -1, q.ask, q.ask_qty, config.post_only)
    # move first the side that gets out of the way, so the two never cross each other
    own_ask = asks[0].price if asks else None
    if q.bid is not None and own_ask is not None and q.bid >= own_ask:
        return ask_moves + bid_moves, q
    return bid_moves + ask_moves, q


def _side_intents(working: list[OwnOrder], side: int, price: int | None, qty: int, post_only: bool) -> list[Intent]:
    """Keep at most one order on ``side`` and bring it to ``price`` x ``qty``."""
    out: list[Intent] = [CancelOrder(o.order_id) for o in working[1:]]
    current = working[0] if working else None
    if current is None:
        if price is not None:
            out.append(PlaceOrder(side, qty, price, post_only=post_only, tag=BID if side == 1 else ASK))
    elif not current.settled:
        pass  # wait for its answer
    elif price is None:
        out.append(CancelOrder(current.order_id))
    elif current.price != price or current.qty > qty:
        out.append(ModifyOrder(current.order_id, qty, price))  # a cut at the same price keeps priority
    return out


class AvellanedaStoikovMaker(ScriptedAgent):
    """Two-sided inventory-skewed quotes (see the module docstring for the model and rules).

    ``last_quotes`` holds the last wanted quotes (with the reservation price and the model
    spread), ``sigma`` the volatility in use.
    """

    def __init__(
        self,
        trader: int,
        symbol: str,
        config: MarketMakerConfig | None = None,
        *,
        latency: Latency | None = None,
        smp: bool = True,
    ) -> None:
        super().__init__(trader, symbol, latency=latency, smp=smp)
        self.config = config if config is not None else MarketMakerConfig()
        cfg = self.config
        self.vol = VolatilityEstimate(cfg.sigma_init, cfg.sigma_halflife_ns, cfg.sigma_max)
        self.last_quotes: Quotes | None = None

    @property
    def sigma(self) -> float:
        return self.config.sigma if self.config.sigma is not None else self.vol.sigma

    def start(self, ctx: Context) -> None:
        self.requote(ctx)
        ctx.wake_in(self.config.requote_ns)

    def on_wakeup(self, ctx: Context) -> None:
        bid, ask = self.book.others_best(1, self.orders), self.book.others_best(-1, self.orders)
        if bid is not None and ask is not None:  # sample only a real two-sided mid
            self.vol.update((bid + ask) / 2 / self.tick, ctx.now)
        self.requote(ctx, (bid, ask))
        ctx.wake_in(self.config.requote_ns)

    def observe(self, ctx: Context, events: list, mine: bool) -> None:
        me = self.trader
        if mine and any(type(ev) is Fill and me in (ev.maker_trader, ev.taker_trader) for ev in events):
            self.requote(ctx)

    def requote(self, ctx: Context, others: tuple[int | None, int | None] | None = None) -> None:
        intents, q = decide(self.config, self.book, self.orders, ctx.now, self.sigma, self.tick, self.lot, others)
        if q is not None:
            self.last_quotes = q
        self.send(ctx, intents)

"""Instrument specifications and the venue presets ``nyse`` and ``cme``.

An ``InstrumentSpec`` is the frozen configuration of one book: its matching rule, the order
types and instructions it accepts, tick and lot (in integer price and quantity units), the
refusal bounds, and the venue's self-match default. Prices inside the core are integers:
``price_scale`` turns a price unit into a decimal price at the edges only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from exchange.enums import OrderType, SmpMode, TimeInForce
from exchange.rules import Fifo, MatchingRule, ProRata

ALL_ORDER_TYPES = frozenset(OrderType)
ALL_TIFS = frozenset(TimeInForce)


@dataclass(frozen=True)
class InstrumentSpec:
    """Everything a matching engine needs to know about the instrument it trades.

    ``tick``: prices must be positive multiples of it (price units). ``lot``: quantities must
    be positive multiples of it. ``max_qty``: larger orders are refused as absurd.
    ``price_band``: if set, limit and stop prices more than this many ticks from the
    reference price (last trade, else ``reference_price``) are refused; no reference, no check.
    ``protection_ticks``: default protection of MARKET_PROTECT and STOP orders.
    ``market_as_protected``: plain MARKET orders become MARKET_PROTECT (CME Globex does this).
    """

    symbol: str
    rule: MatchingRule = field(default_factory=Fifo)
    tick: int = 1
    lot: int = 1
    max_qty: int = 1_000_000
    price_band: int | None = None
    reference_price: int | None = None
    order_types: frozenset[OrderType] = ALL_ORDER_TYPES
    tifs: frozenset[TimeInForce] = ALL_TIFS
    post_only: bool = True
    iceberg: bool = True
    protection_ticks: int = 10
    market_as_protected: bool = False
    default_smp_mode: SmpMode = SmpMode.CANCEL_RESTING
    price_scale: Decimal = Decimal("0.01")

    def __post_init__(self) -> None:
        for name in ("tick", "lot", "max_qty", "protection_ticks"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"InstrumentSpec.{name} must be a positive int, got {value!r}")
        if self.price_band is not None and (type(self.price_band) is not int or self.price_band <= 0):
            raise ValueError(f"InstrumentSpec.price_band must be a positive int or None, got {self.price_band!r}")
        if self.rule.name != "fifo" and self.lot != 1:
            # pro-rata shares are rounded down in units; with lots of several units they would
            # leave off-lot remainders (CME contracts trade in single lots anyway)
            raise ValueError(f"a {self.rule.name} instrument needs lot=1, got lot={self.lot}")

    def to_price(self, units: int) -> Decimal:
        """Decimal price of ``units`` integer price units (for display and reports)."""
        return units * self.price_scale


def nyse(symbol: str = "XYZ", **overrides: object) -> InstrumentSpec:
    """NYSE-style equity book: price-time FIFO, penny tick, one-share lot.

    Accepts limit, market, IOC, FOK, post-only (NYSE's Add Liquidity Only) and reserve
    (iceberg) orders. Stop and stop-limit orders are refused, as NYSE has since 2016; market
    with protection and market-limit are CME instructions and refused too. NYSE has no
    exchange-wide self-trade default (the STP modifier is sent per order); this preset
    chooses STPN, cancel the newest (aggressing) order, for an ``smp_id`` without a mode.
    """
    spec: dict[str, object] = dict(
        symbol=symbol,
        rule=Fifo(),
        tick=1,
        lot=1,
        order_types=frozenset({OrderType.LIMIT, OrderType.MARKET}),
        post_only=True,
        iceberg=True,
        default_smp_mode=SmpMode.CANCEL_AGGRESSING,
        price_scale=Decimal("0.01"),
    )
    spec.update(overrides)
    return InstrumentSpec(**spec)  # type: ignore[arg-type]


def cme(symbol: str = "GE", **overrides: object) -> InstrumentSpec:
    """CME Globex-style futures book: pro rata with TOP (algorithm A), minimum allocation 2.

    Prices are in hundredths with a tick of 25 units (a quarter point, as in ES). Accepts
    limit, market (entered as market with protection, as Globex does), market-limit,
    stop with protection, stop-limit, FAK with minimum quantity, FOK and display quantity;
    post-only is not a Globex instruction and is refused. SMP with no mode cancels resting.
    """
    spec: dict[str, object] = dict(
        symbol=symbol,
        rule=ProRata(top=True, min_alloc=2),
        tick=25,
        lot=1,
        order_types=frozenset(
            {
                OrderType.LIMIT,
                OrderType.MARKET,
                OrderType.MARKET_PROTECT,
                OrderType.MARKET_LIMIT,
                OrderType.STOP,
                OrderType.STOP_LIMIT,
            }
        ),
        post_only=False,
        iceberg=True,
        protection_ticks=10,
        market_as_protected=True,
        default_smp_mode=SmpMode.CANCEL_RESTING,
        price_scale=Decimal("0.01"),
    )
    spec.update(overrides)
    return InstrumentSpec(**spec)  # type: ignore[arg-type]


PRESETS = {"nyse": nyse, "cme": cme}

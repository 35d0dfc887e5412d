"""Mean-reversion trader: fades deviations of the mid from its moving average.

Every ``interval_ns`` the trader samples the mid (else the last trade) into an
exponentially weighted moving average with half-life ``halflife_ns`` (time-based weights,
so irregular samples are handled). The deviation is ``(mid - EWMA) / tick``. Above
``entry_ticks`` the mid is deemed too high and the trader targets ``-max_position``; below
``-entry_ticks`` it targets ``+max_position``; once the deviation is back within
``exit_ticks`` it targets flat and unwinds; in between it keeps its target. Nothing is
traded before ``warmup_ns`` of history. It moves toward the target with one order at a time
(``agents.base.toward_target``), marketable IOC limits by default or passive joins, never
asking for more than the distance to the target, so ``|position| <= max_position``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.base import BookView, Intent, OrderTracker, ScriptedAgent, step_toward
from exchange.sim import MS, SECOND, Context, Latency


@dataclass(frozen=True)
class MeanReversionConfig:
    """Parameters of ``MeanReversionTrader``; times in ns, deviations in ticks, sizes in lots."""

    halflife_ns: int = 5 * SECOND  # half-life of the moving average
    interval_ns: int = 250 * MS  # decision (and sampling) period
    warmup_ns: int = 1 * SECOND  # history needed before the first trade
    entry_ticks: float = 3.0  # |deviation| to take a position against it
    exit_ticks: float = 1.0  # |deviation| under which to go flat
    max_position: int = 20  # |position| bound
    clip_qty: int = 5  # largest order
    aggression_ticks: int = 0  # how far through the touch a marketable order may go
    passive: bool = False  # join the near touch instead of crossing

    def __post_init__(self) -> None:
        if self.halflife_ns <= 0 or self.interval_ns <= 0 or self.warmup_ns < 0:
            raise ValueError("halflife_ns and interval_ns must be positive, warmup_ns >= 0")
        if not 0 <= self.exit_ticks <= self.entry_ticks:
            raise ValueError(f"need 0 <= exit_ticks <= entry_ticks, got {self.exit_ticks}, {self.entry_ticks}")
        if self.max_position < 0 or self.clip_qty < 1 or self.aggression_ticks < 0:
            raise ValueError("need max_position >= 0, clip_qty >= 1, aggression_ticks >= 0")


class Ewma:
    """Time-weighted exponential moving average: weight ``1 - 2^(-dt / halflife)`` per sample."""

    __slots__ = ("halflife_ns", "value", "first_time", "last_time")

    def __init__(self, halflife_ns: int) -> None:
        self.halflife_ns = halflife_ns
        self.value: float | None = None
        self.first_time: int | None = None
        self.last_time = 0

    def update(self, x: float, now: int) -> float:
        if self.value is None:
            self.value, self.first_time = x, now
        else:
            w = 1.0 - 0.5 ** ((now - self.last_time) / self.halflife_ns)
            self.value += w * (x - self.value)
        self.last_time = now
        return self.value

    def age(self, now: int) -> int:
        """Time since the first sample (0 before any)."""
        return 0 if self.first_time is None else now - self.first_time


def target_for(deviation: float, current_target: int, config: MeanReversionConfig) -> int:
    """Fade a large deviation, go flat when it is small, hold in between."""
    if deviation >= config.entry_ticks and deviation > 0:
        return -config.max_position
    if deviation <= -config.entry_ticks and deviation < 0:
        return config.max_position
    if abs(deviation) <= config.exit_ticks:
        return 0
    return current_target


def decide(
    config: MeanReversionConfig,
    deviation: float | None,
    target: int,
    book: BookView,
    orders: OrderTracker,
    tick: int,
    lot: int,
) -> tuple[int, list[Intent]]:
    """The new target for ``deviation`` (ticks; None: not warmed up, keep the target) and
    the intents that move toward it."""
    if deviation is not None:
        target = target_for(deviation, target, config)
    return target, step_toward(target, book, orders, config, tick, lot)


class MeanReversionTrader(ScriptedAgent):
    """Fades the mid's deviation from its EWMA (see the module docstring).

    ``deviation`` and ``target`` hold the last deviation (ticks) and target position.
    """

    def __init__(
        self,
        trader: int,
        symbol: str,
        config: MeanReversionConfig | None = None,
        *,
        latency: Latency | None = None,
        smp: bool = True,
    ) -> None:
        super().__init__(trader, symbol, latency=latency, smp=smp)
        self.config = config if config is not None else MeanReversionConfig()
        self.ewma = Ewma(self.config.halflife_ns)
        self.deviation: float | None = None
        self.target = 0

    def start(self, ctx: Context) -> None:
        ctx.wake_in(self.config.interval_ns)

    def on_wakeup(self, ctx: Context) -> None:
        now = ctx.now
        price = self.book.mid()
        if price is None and self.book.last_price is not None:
            price = float(self.book.last_price)
        self.deviation = None
        if price is not None:
            avg = self.ewma.update(price, now)
            if self.ewma.age(now) >= self.config.warmup_ns:
                self.deviation = (price - avg) / self.tick
        self.target, intents = decide(
            self.config, self.deviation, self.target, self.book, self.orders, self.tick, self.lot
        )
        self.send(ctx, intents)
        ctx.wake_in(self.config.interval_ns)

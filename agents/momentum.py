"""Momentum trader: follows order-flow imbalance or recent returns, position-limited.

Every ``interval_ns`` the trader reads one signal from its view of the market:

- ``"imbalance"``: top-of-book queue imbalance ``(Qbid - Qask) / (Qbid + Qask)`` in
  ``[-1, 1]`` of other traders' orders (positive: more size waiting to buy, the next move
  tends to be up);
- ``"trade_flow"``: signed trade flow over the last ``window_ns``, the lots bought by
  aggressors minus the lots sold, over all lots traded, in ``[-1, 1]`` (the trader's own
  trades are left out);
- ``"returns"``: the change of the mid over the last ``window_ns``, in ticks.

It goes with the signal: above ``entry`` it targets ``+max_position``, below ``-entry``
``-max_position``; within ``exit`` of zero it targets flat; in between it keeps its target
(hysteresis). It moves toward the target in clips of at most ``clip_qty`` lots with one order
at a time (``agents.base.toward_target``): a marketable IOC limit ``aggression_ticks``
through the touch, or with ``passive`` a limit joining its side's best. An order never asks
for more than the distance to the target, so ``|position| <= max_position``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from agents.base import BookView, Intent, OrderTracker, ScriptedAgent, step_toward
from exchange.events import Fill
from exchange.sim import MS, SECOND, Context, Latency

SIGNALS = ("imbalance", "trade_flow", "returns")


@dataclass(frozen=True)
class MomentumConfig:
    """Parameters of ``MomentumTrader``; times in ns, sizes in lots."""

    signal: str = "imbalance"  # one of SIGNALS
    interval_ns: int = 250 * MS  # decision period
    window_ns: int = 2 * SECOND  # trade-flow window / returns lookback
    entry: float = 0.5  # |signal| to take a position (imbalance, flow: fraction; returns: ticks)
    exit: float = 0.1  # |signal| under which to go flat
    max_position: int = 20  # |position| bound
    clip_qty: int = 5  # largest order
    aggression_ticks: int = 1  # how far through the touch a marketable order may go
    passive: bool = False  # join the near touch instead of crossing

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}, got {self.signal!r}")
        if not 0 <= self.exit <= self.entry:
            raise ValueError(f"need 0 <= exit <= entry, got exit={self.exit}, entry={self.entry}")
        if self.interval_ns <= 0 or self.window_ns <= 0:
            raise ValueError("interval_ns and window_ns must be positive")
        if self.max_position < 0 or self.clip_qty < 1 or self.aggression_ticks < 0:
            raise ValueError("need max_position >= 0, clip_qty >= 1, aggression_ticks >= 0")


def queue_imbalance(book: BookView, orders: OrderTracker | None = None) -> float:
    """``(Qbid - Qask) / (Qbid + Qask)`` at the best prices; 0 when a side is empty. With
    ``orders``, the trader's own resting lots are left out (others' book only)."""
    if orders is None:
        bid, ask = book.best_bid, book.best_ask
    else:
        bid, ask = book.others_best(1, orders), book.others_best(-1, orders)
    if bid is None or ask is None:
        return 0.0
    qb, qa = book.bids[bid], book.asks[ask]
    if orders is not None:
        qb -= orders.resting_qty(1, bid)
        qa -= orders.resting_qty(-1, ask)
    return (qb - qa) / (qb + qa)


class TradeFlow:
    """Signed aggressor volume over a sliding time window."""

    __slots__ = ("window_ns", "trades", "signed", "total")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.trades: deque[tuple[int, int, int]] = deque()  # (time, signed qty, qty)
        self.signed = 0
        self.total = 0

    def add(self, now: int, aggressor: int, qty: int) -> None:
        self.trades.append((now, aggressor * qty, qty))
        self.signed += aggressor * qty
        self.total += qty

    def value(self, now: int) -> float:
        """Net aggressor volume over total volume in the window, in ``[-1, 1]`` (0: none)."""
        trades, start = self.trades, now - self.window_ns
        while trades and trades[0][0] < start:
            _, signed, qty = trades.popleft()
            self.signed -= signed
            self.total -= qty
        return self.signed / self.total if self.total else 0.0


class MidHistory:
    """Mid prices sampled over time; ``change`` is the move over a lookback."""

    __slots__ = ("window_ns", "samples")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.samples: deque[tuple[int, float]] = deque()

    def add(self, now: int, mid: float) -> None:
        self.samples.append((now, mid))

    def change(self, now: int) -> float:
        """Latest mid minus the oldest sample within the lookback (0 with fewer than two)."""
        samples, start = self.samples, now - self.window_ns
        while len(samples) > 1 and samples[1][0] <= start:
            samples.popleft()
        if len(samples) < 2:
            return 0.0
        return samples[-1][1] - samples[0][1]


def target_for(signal: float, current_target: int, config: MomentumConfig) -> int:
    """Hysteresis: go with a strong signal, flatten on a weak one, hold in between."""
    if signal >= config.entry and signal > 0:
        return config.max_position
    if signal <= -config.entry and signal < 0:
        return -config.max_position
    if abs(signal) <= config.exit:
        return 0
    return current_target


def decide(
    config: MomentumConfig, signal: float, target: int, book: BookView, orders: OrderTracker, tick: int, lot: int
) -> tuple[int, list[Intent]]:
    """The new target for ``signal`` and the intents that move toward it."""
    target = target_for(signal, target, config)
    return target, step_toward(target, book, orders, config, tick, lot)


class MomentumTrader(ScriptedAgent):
    """Trades in the direction of order flow or recent returns (see the module docstring).

    ``signal`` and ``target`` hold the last signal value and target position.
    """

    def __init__(
        self,
        trader: int,
        symbol: str,
        config: MomentumConfig | None = None,
        *,
        latency: Latency | None = None,
        smp: bool = True,
    ) -> None:
        super().__init__(trader, symbol, latency=latency, smp=smp)
        self.config = config if config is not None else MomentumConfig()
        self.flow = TradeFlow(self.config.window_ns)
        self.mids = MidHistory(self.config.window_ns)
        self.signal = 0.0
        self.target = 0

    def start(self, ctx: Context) -> None:
        ctx.wake_in(self.config.interval_ns)

    def observe(self, ctx: Context, events: list, mine: bool) -> None:
        if self.config.signal == "trade_flow":
            me = self.trader
            for ev in events:
                if type(ev) is Fill and ev.taker_trader != me:
                    self.flow.add(ctx.now, ev.aggressor, ev.qty)

    def read_signal(self, now: int) -> float:
        kind = self.config.signal
        if kind == "imbalance":
            return queue_imbalance(self.book, self.orders)
        if kind == "trade_flow":
            return self.flow.value(now)
        mid = self.book.mid()
        if mid is not None:
            self.mids.add(now, mid)
        return self.mids.change(now) / self.tick

    def on_wakeup(self, ctx: Context) -> None:
        self.signal = self.read_signal(ctx.now)
        self.target, intents = decide(
            self.config, self.signal, self.target, self.book, self.orders, self.tick, self.lot
        )
        self.send(ctx, intents)
        ctx.wake_in(self.config.interval_ns)

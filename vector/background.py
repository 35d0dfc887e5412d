"""Batched background traders for the vector environments: noise flow and an inventory-skewed
market maker, as pure functions over ``[B]`` tensors, with counter-based randomness.

These are vectorised *approximations* of ``agents.noise.NoiseTrader`` and
``agents.market_maker.AvellanedaStoikovMaker`` (the scripted agents of the scalar
``exchange/Trading-v0``), not the same agents: they act in fixed rounds of one book command
per book per round (``vector.book.step``), see the book with zero latency, have no
self-match prevention and cannot ``Modify`` (a re-quote is a cancel then a new order).

Noise traders (owners ``noise_owner .. noise_owner + n_noise - 1``). Each env step has
``noise_rounds`` rounds; round ``r`` belongs to noise trader ``r % n_noise`` and brings an
arrival with probability ``p_arrival`` (so about ``noise_rounds * p_arrival`` arrivals per
step, a binomial stand-in for the scalar trader's Poisson process). An arrival is, drawn at
random as in ``agents.noise.decide``:

- with probability ``p_cancel``, a cancel of the trader's oldest working order;
- with probability ``p_market``, an IOC market order of a random side (skipped when the
  opposite side is empty);
- otherwise a GTC limit order of a random side, ``0..depth_ticks`` ticks behind the reference
  price (mid, else last trade, else the one side that shows, else ``reference_price``),
  rounded to the tick on the passive side.

Sizes are uniform on ``min_qty..max_qty``. A trader's orders older than ``max_age_steps``
are cancelled, and at ``max_open_orders`` its oldest order is cancelled. The venue's
``max_position`` (``TradingConfig.max_position``, which the scalar venue applies to every
trader) refuses an order that could take the position past it.

Market maker (owner ``mm_owner``), after Avellaneda and Stoikov with a fixed ``sigma`` (in
ticks per sqrt second) and a constant ``tau`` (``horizon_s``): reservation price
``r = s - q gamma sigma^2 tau``, spread ``gamma sigma^2 tau + (2 / gamma) ln(1 + gamma / k)``,
bid rounded down and ask up to the tick, at least ``min_spread_ticks`` apart, clamped one
tick inside the other traders' opposite best, sizes cut by ``max_inventory``; ``s`` is the
mid of the other traders' orders (else last trade, else the one side, else
``reference_price``). It quotes one side per env step, bid on odd steps and ask on even
ones, so each side is re-quoted every two steps (200 ms at ``step_ns`` 100 ms, the scalar
maker's ``requote_ns``): a quote that no longer matches is cancelled and the new one is
entered (post-only where the instrument allows it).

Randomness. ``bits(key, counter)`` is SplitMix64 over ``key + counter * golden`` in
wrapping int64 arithmetic: a stateless, counter-based generator, so a book's draws depend
only on its own key (set from the seed of its env) and the counter (episode, step, round),
never on the batch size or the device.

Calibration: ``LIGHT`` gives about 5 book messages per env step with a learner taking
random actions, like ``bench.envs``'s ``light`` workload (measured by ``bench.vector_env``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class BackgroundParams:
    """Parameters of the batched background traders (sizes in lots, prices in ticks)."""

    # ---- noise traders -------------------------------------------------------------------------
    n_noise: int = 2  # noise traders per book
    noise_rounds: int = 3  # book commands per env step for noise arrivals (one round each)
    p_arrival: float = 0.87  # probability that a round brings an arrival (3 x 0.87 = 2.6 = 2 traders x 13 Hz x 100 ms)
    p_market: float = 0.15  # share of arrivals that are market orders
    p_cancel: float = 0.2  # share of arrivals that cancel the trader's oldest order
    min_qty: int = 1  # order size, uniform on min_qty..max_qty
    max_qty: int = 10
    depth_ticks: int = 5  # a limit rests 0..depth_ticks ticks behind the reference price
    max_age_steps: int = 50  # older noise orders are cancelled (5 s at 100 ms steps)
    max_open_orders: int = 10  # per noise trader; at the cap its oldest order is cancelled
    # ---- market maker --------------------------------------------------------------------------
    market_maker: bool = True  # one Avellaneda-Stoikov maker per book
    gamma: float = 0.1  # risk aversion, per tick
    k: float = 1.5  # decay of the fill intensity, per tick
    sigma: float = 1.0  # mid volatility, ticks per sqrt(second) (fixed, not estimated)
    horizon_s: float = 1.0  # T - t in seconds (a rolling horizon)
    quote_qty: int = 5  # lots per side
    max_inventory: int = 50  # |inventory| bound of the maker
    min_spread_ticks: int = 1  # narrowest quoted spread
    # ---- the book an episode starts from -------------------------------------------------------
    warm_levels: int = 5  # noise orders resting 1..warm_levels ticks each side of the reference at reset

    def __post_init__(self) -> None:
        if self.n_noise < 1 or self.noise_rounds < 0 or self.warm_levels < 0:
            raise ValueError("need n_noise >= 1, noise_rounds >= 0, warm_levels >= 0")
        if not (0 <= self.p_arrival <= 1 and 0 <= self.p_market and 0 <= self.p_cancel and self.p_market + self.p_cancel <= 1):
            raise ValueError("probabilities must be in [0, 1], p_market + p_cancel <= 1")
        if not 1 <= self.min_qty <= self.max_qty or self.max_qty > 255:
            raise ValueError("need 1 <= min_qty <= max_qty <= 255")
        if not 0 <= self.depth_ticks <= 255 or self.max_age_steps < 1 or self.max_open_orders < 1:
            raise ValueError("need 0 <= depth_ticks <= 255, max_age_steps >= 1, max_open_orders >= 1")
        if self.gamma <= 0 or self.k <= 0 or self.sigma < 0 or self.horizon_s < 0:
            raise ValueError("need gamma, k > 0 and sigma, horizon_s >= 0")
        if self.quote_qty < 1 or self.max_inventory < 0 or self.min_spread_ticks < 1:
            raise ValueError("need quote_qty >= 1, max_inventory >= 0, min_spread_ticks >= 1")

    @property
    def n_traders(self) -> int:
        """Background owners per book (noise traders, then the maker)."""
        return self.n_noise + int(self.market_maker)

    @property
    def skew(self) -> float:
        """Ticks the reservation price moves per lot of inventory."""
        return self.gamma * self.sigma * self.sigma * self.horizon_s

    @property
    def spread(self) -> float:
        """The model's total spread in ticks."""
        return self.skew + (2.0 / self.gamma) * math.log1p(self.gamma / self.k)


#: The light background (about 5 book messages per env step with a random learner).
LIGHT = BackgroundParams()
#: No background at all: the learner alone with the book it is given.
NONE = BackgroundParams(noise_rounds=0, market_maker=False, warm_levels=0)


# ---- counter-based randomness ------------------------------------------------------------------
def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)


def mix64(x: Tensor) -> Tensor:
    """SplitMix64's finaliser on int64 (wrapping multiplication, logical shifts by masking)."""
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * _M1
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * _M2
    return x ^ ((x >> 31) & ((1 << 33) - 1))


def env_keys(seeds: Tensor) -> Tensor:
    """The key of each env from its integer seed."""
    return mix64(seeds.to(torch.int64) * _GOLDEN + 0x5EED)


def bits(key: Tensor, counter: Tensor) -> Tensor:
    """64 random bits per element for ``key`` ([B, 1] or [B]) at ``counter`` (broadcast)."""
    return mix64(key + counter * _GOLDEN)


def field(b: Tensor, shift: int, width: int) -> Tensor:
    """Bits ``shift .. shift + width - 1`` of ``b`` as a non-negative int64."""
    return (b >> shift) & ((1 << width) - 1)


def below(b: Tensor, shift: int, p: float) -> Tensor:
    """A Bernoulli(p) draw from 16 bits of ``b``."""
    return field(b, shift, 16) < int(round(p * 65536))


def uniform_int(b: Tensor, shift: int, lo: int, hi: int, width: int = 16) -> Tensor:
    """An integer in ``lo..hi`` from ``width`` bits of ``b`` (multiply-shift)."""
    return lo + ((field(b, shift, width) * (hi - lo + 1)) >> width)

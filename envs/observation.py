"""The observation vector of the trading environments: layout, bounds and construction.

One flat ``float32`` vector of ``4 * L + 8`` features (``L = config.depth``), in this order
(with ``obs_type="dict"``, a ``Dict`` of the same values under the names ``bids``, ``asks``,
``market`` and ``agent``: see ``dict_observation_space``):

| index | feature | unit | bounds |
| --- | --- | --- | --- |
| ``0 .. 2L-1`` | bid levels 1..L: ``(distance, size)`` pairs, best first | ticks below the mid; lots / ``size_scale`` | ``[-max_ticks, max_ticks]``; ``[0, clip]`` |
| ``2L .. 4L-1`` | ask levels 1..L: ``(distance, size)`` pairs, best first | ticks above the mid; lots / ``size_scale`` | same |
| ``4L`` | spread | ticks | ``[0, max_ticks]`` |
| ``4L+1`` | mid return since the last step | ticks | ``[-max_ticks, max_ticks]`` |
| ``4L+2`` | signed trade flow of the last step (buyer-initiated minus seller-initiated lots) | lots / ``size_scale`` | ``[-clip, clip]`` |
| ``4L+3`` | top-of-book imbalance ``(bid qty - ask qty) / (bid qty + ask qty)`` (0 if both empty) | | ``[-1, 1]`` |
| ``4L+4`` | the agent's inventory | lots / ``max_position`` | ``[-1, 1]`` |
| ``4L+5`` | the agent's equity change since reset | ticks x lots / ``reward_scale`` | ``[-clip, clip]`` |
| ``4L+6`` | the agent's open orders | count / ``max_open_orders`` | ``[0, 1]`` |
| ``4L+7`` | time left in the episode | fraction | ``[0, 1]`` |

Distances are measured from the mid price, positive away from it (so a normal book shows
positive distances on both sides; they can turn negative only when one side is empty and
the reference is the last trade). Empty levels hold the sentinel ``(max_ticks, 0)``: as far
as the observation can see, with nothing there. With one side empty the mid is the venue's
mark (last trade), else ``reference_price``; the spread is then ``max_ticks``.
Every feature is clipped to its bounds.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

from envs.config import TradingConfig
from exchange.book import OrderBook

N_SCALARS = 8
N_OWN = 4  # the last features are the agent's own: inventory, equity change, open orders, time left


def observation_size(config: TradingConfig) -> int:
    return 4 * config.depth + N_SCALARS


def observation_bounds(config: TradingConfig) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of every feature, as in the module docstring."""
    L, D, C = config.depth, config.max_ticks, config.clip
    level_low, level_high = np.tile([-D, 0.0], 2 * L), np.tile([D, C], 2 * L)
    low = np.concatenate([level_low, [0.0, -D, -C, -1.0, -1.0, -C, 0.0, 0.0]]).astype(np.float32)
    high = np.concatenate([level_high, [D, D, C, 1.0, 1.0, C, 1.0, 1.0]]).astype(np.float32)
    return low, high


def observation_space(config: TradingConfig) -> spaces.Box:
    low, high = observation_bounds(config)
    return spaces.Box(low, high, dtype=np.float32)


def book_levels(book: OrderBook, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The best ``depth`` (price, displayed qty) levels of each side, best first."""
    return top_levels(book.bids.levels, depth, True), top_levels(book.asks.levels, depth, False)


def top_levels(levels: dict, n: int, bids: bool) -> list[tuple[int, int]]:
    """The best ``n`` levels of one side's price -> ``Level`` map, best first (a book keeps
    no empty level between commands: ``OrderBook.check_invariants``)."""
    return [(price, levels[price].qty) for price in sorted(levels, reverse=bids)[:n]]


def level_features(
    bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]], mid: float, tick: int, config: TradingConfig
) -> list[float]:
    """The ``4L`` level features and the spread, unclipped, from (price, qty) levels best first."""
    L, D, scale = config.depth, config.max_ticks, config.size_scale
    values: list[float] = []
    add = values.append
    if len(bids) > L:
        bids = bids[:L]
    for price, qty in bids:
        add((mid - price) / tick)
        add(qty / scale)
    if len(bids) < L:
        values += (D, 0.0) * (L - len(bids))
    if len(asks) > L:
        asks = asks[:L]
    for price, qty in asks:
        add((price - mid) / tick)
        add(qty / scale)
    if len(asks) < L:
        values += (D, 0.0) * (L - len(asks))
    add((asks[0][0] - bids[0][0]) / tick if bids and asks else D)
    return values


def observation_values(
    bids: Sequence[tuple[int, int]],
    asks: Sequence[tuple[int, int]],
    *,
    mid: float,
    tick: int,
    config: TradingConfig,
    mid_return: float,
    flow: int,
    position: int,
    equity_change: float,
    open_orders: int,
    time_left: float,
) -> list[float]:
    """Every feature of the layout above, unclipped, from what any observer of the market has.

    The environments and the live bots (which see the book only through the market-data
    feed) both build their observations here, so a policy sees the same numbers live as in
    training. ``bids``/``asks``: (price, displayed qty) best first, at least ``depth`` of
    each when the book has them; ``mid``: the mark the distances are measured from;
    ``mid_return`` in ticks; ``flow`` signed lots; ``equity_change`` in price units;
    ``time_left`` a fraction.
    """
    values = level_features(bids, asks, mid, tick, config)
    bq = bids[0][1] if bids else 0
    aq = asks[0][1] if asks else 0
    values += (
        mid_return,
        flow / config.size_scale,
        (bq - aq) / (bq + aq) if bq + aq else 0.0,
    )
    values += own_values(config, tick, position, equity_change, open_orders, time_left)
    return values


def own_values(
    config: TradingConfig, tick: int, position: int, equity_change: float, open_orders: int, time_left: float
) -> list[float]:
    """The last ``N_OWN`` features of ``observation_values`` (the agent's own), unclipped: an
    environment with several agents computes the shared ones once and adds these per agent."""
    return [
        position / config.max_position,
        equity_change / tick / config.reward_scale,
        open_orders / config.max_open_orders,
        time_left,
    ]


def to_observation(values: list[float], low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The clipped ``float32`` observation (two ufuncs: half the cost of ``np.clip`` here)."""
    obs = np.array(values, dtype=np.float32)
    np.minimum(obs, high, out=obs)
    np.maximum(obs, low, out=obs)
    return obs


class BookObservation:
    """The flat observation of a live ``OrderBook``, the environments' hot path: the same
    ``float32`` vector as ``to_observation(observation_values(*book_levels(book, depth), ...),
    low, high)``, in one call without the intermediate (price, qty) lists and keyword
    arguments (``tests/test_envs.py`` proves the two equal). The config's scales are read
    once, at construction.

    Each feature is clipped as it is computed, by plain comparisons with its bounds rounded
    to float32 (numpy's two clipping ufuncs cost a few microseconds inside a step): the cast
    to float32 being monotonic, clipping before the cast gives the very bits of casting then
    clipping."""

    __slots__ = ("depth", "scale", "max_ticks", "clip", "max_position", "reward_scale", "max_open_orders", "low", "high", "pad", "pack")

    def __init__(self, config: TradingConfig) -> None:
        self.depth = config.depth
        self.scale = config.size_scale
        self.max_ticks = float(np.float32(config.max_ticks))
        self.clip = float(np.float32(config.clip))
        self.max_position = config.max_position
        self.reward_scale = config.reward_scale
        self.max_open_orders = config.max_open_orders
        self.low, self.high = observation_bounds(config)
        self.pad = (config.max_ticks, 0.0) * config.depth  # empty levels, as many as needed
        # float32 in one C call (a C cast per value, as numpy's): cheaper than np.fromiter
        self.pack = struct.Struct(f"{observation_size(config)}f").pack

    def __call__(
        self,
        book: OrderBook,
        mid: float,
        tick: int,
        mid_return: float,
        flow: int,
        position: int,
        equity_change: float,
        open_orders: int,
        time_left: float,
    ) -> np.ndarray:
        """The clipped observation; the arguments as in ``observation_values`` (positional)."""
        L, scale, D, C = self.depth, self.scale, self.max_ticks, self.clip
        bid_levels, ask_levels = book.bids.levels, book.asks.levels
        bids = sorted(bid_levels, reverse=True)[:L]
        asks = sorted(ask_levels)[:L]
        values: list[float] = []
        add = values.append
        for price in bids:  # distances in [-D, D], sizes (never negative) up to C
            d = (mid - price) / tick
            add(D if d > D else -D if d < -D else d)
            q = bid_levels[price].qty / scale
            add(C if q > C else q)
        if len(bids) < L:
            values += self.pad[: 2 * (L - len(bids))]
        for price in asks:
            d = (price - mid) / tick
            add(D if d > D else -D if d < -D else d)
            q = ask_levels[price].qty / scale
            add(C if q > C else q)
        if len(asks) < L:
            values += self.pad[: 2 * (L - len(asks))]
        if bids and asks:
            spread = (asks[0] - bids[0]) / tick  # positive: a book is never crossed
            add(D if spread > D else spread)
            bq, aq = bid_levels[bids[0]].qty, ask_levels[asks[0]].qty
        else:
            add(D)
            bq = bid_levels[bids[0]].qty if bids else 0
            aq = ask_levels[asks[0]].qty if asks else 0
        f = flow / scale
        inventory = position / self.max_position
        equity = equity_change / tick / self.reward_scale
        orders = open_orders / self.max_open_orders
        values += (
            D if mid_return > D else -D if mid_return < -D else mid_return,
            C if f > C else -C if f < -C else f,
            (bq - aq) / (bq + aq) if bq + aq else 0.0,  # in [-1, 1] as it is
            1.0 if inventory > 1.0 else -1.0 if inventory < -1.0 else inventory,
            C if equity > C else -C if equity < -C else equity,
            1.0 if orders > 1.0 else 0.0 if orders < 0.0 else orders,
            1.0 if time_left > 1.0 else 0.0 if time_left < 0.0 else time_left,
        )
        return np.frombuffer(bytearray(self.pack(*values)), np.float32)  # a new, writable array


#: The ``Dict`` variant: the flat vector's features under names, as slices of it.
DICT_KEYS = ("bids", "asks", "market", "agent")


def dict_observation_space(config: TradingConfig) -> spaces.Dict:
    """The ``obs_type="dict"`` space: ``bids``/``asks`` (L, 2) ``(distance, size)`` rows,
    ``market`` (spread, mid return, trade flow, imbalance), ``agent`` (inventory, equity,
    open orders, time left); bounds as in the flat layout."""
    low, high = observation_bounds(config)
    return spaces.Dict(
        {key: spaces.Box(low[part].reshape(shape), high[part].reshape(shape), dtype=np.float32)
         for key, (part, shape) in _dict_layout(config).items()}
    )


def as_dict(obs: np.ndarray, config: TradingConfig) -> dict[str, np.ndarray]:
    """Split a flat observation into the ``Dict`` variant (copies, so the flat buffer may be reused)."""
    return {key: obs[part].reshape(shape).copy() for key, (part, shape) in _dict_layout(config).items()}


def _dict_layout(config: TradingConfig) -> dict[str, tuple[slice, tuple[int, ...]]]:
    L = config.depth
    return {
        "bids": (slice(0, 2 * L), (L, 2)),
        "asks": (slice(2 * L, 4 * L), (L, 2)),
        "market": (slice(4 * L, 4 * L + 4), (4,)),
        "agent": (slice(4 * L + 4, 4 * L + 8), (4,)),
    }

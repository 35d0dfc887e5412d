"""From an agent's action to commands: the action schemes of the environments, as functions.

``trade`` is the action of ``exchange/Trading-v0`` and ``quote`` the action of
``exchange/MarketMaking-v0`` (their class docstrings in ``envs.trading`` are the spec: side
0 sell / 1 none / 2 buy, price offset, size, optional cancel-all; bid and ask distance).
Here they are plain functions of the trader, its ``OrderTracker`` and the action's discrete
indices, so that one environment can run them for many traders (``envs.multi``). Commands
go through the trader's ``Context`` (``ctx.submit``); nothing here reads a clock or a
generator, and every order is a GTC limit that carries the trader's own self-match id.

``action_space(nvec, action_type)`` is the ``MultiDiscrete(nvec)`` of an action, or with
``action_type="box"`` a ``Box(-1, 1, (len(nvec),))`` whose component ``i`` selects index
``min(n_i - 1, floor((a_i + 1) / 2 * n_i))`` (``indices``). ``fallback`` is the price that
stands in for the touch of an empty side: the venue's mark (else the reference price)
rounded to the tick (``fallback_price``).

``TradingEnv``, ``MarketMakingEnv``, ``ExecutionEnv`` and ``MultiTradingEnv`` all act through
these functions; ``tests/test_multi_env.py`` also checks that a one-agent ``MultiTradingEnv``
reproduces the single-agent environments step for step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from agents.base import GTC, OrderTracker
from exchange.book import OrderBook
from exchange.commands import MassCancel, Modify, NewOrder
from exchange.sim import Context

ACTION_TYPES = ("discrete", "box")


def trading_nvec(max_offset: int, n_sizes: int, cancel_all: bool) -> list[int]:
    """Trading-v0: side, price offset, size and (with ``cancel_all``) cancel-all first."""
    return [3, 2 * max_offset + 1, n_sizes] + ([2] if cancel_all else [])


def quoting_nvec(n_offsets: int) -> list[int]:
    """MarketMaking-v0: bid and ask distance behind the touch."""
    return [n_offsets, n_offsets]


def action_space(nvec: Sequence[int], action_type: str = "discrete") -> spaces.Space:
    """``MultiDiscrete(nvec)``, or the ``Box`` in ``[-1, 1]`` that bins onto it."""
    if action_type == "box":
        return spaces.Box(-1.0, 1.0, shape=(len(nvec),), dtype=np.float32)
    if action_type != "discrete":
        raise ValueError(f"action_type must be one of {ACTION_TYPES}, got {action_type!r}")
    return spaces.MultiDiscrete(list(nvec))


def indices(action: Any, nvec: Sequence[int], action_type: str = "discrete") -> list[int]:
    """The discrete indices of an action of either variant."""
    if action_type == "box":
        return [min(n - 1, max(0, int((float(a) + 1.0) * 0.5 * n))) for a, n in zip(action, nvec, strict=True)]
    if type(action) is np.ndarray and action.dtype.kind in "iu":
        return action.tolist()  # the same ints, without a Python loop
    return [int(a) for a in action]


def fallback_price(mark: float, tick: int) -> int:
    """``mark`` rounded to the tick (at least one tick): the touch of an empty side."""
    return max(tick, round(mark / tick) * tick)


def new_order(ctx: Context, symbol: str, trader: int, orders: OrderTracker, side: int, qty: int, price: int) -> None:
    """Send one GTC limit order for ``trader`` and record it in its tracker."""
    oid = ctx.next_order_id()
    orders.sent_new(oid, side, price, qty, GTC, "", ctx.now)
    ctx.submit(symbol, NewOrder(oid, trader, side, qty, price, smp_id=trader))


def trade(
    ctx: Context,
    symbol: str,
    trader: int,
    orders: OrderTracker,
    idx: Sequence[int],
    *,
    tick: int,
    max_offset: int,
    qty_buckets: Sequence[int],
    cancel_all: bool,
    fallback: int,
) -> None:
    """Trading-v0: with ``cancel_all`` and ``idx[3]`` first cancel every working order (one
    ``MassCancel``, only if any); then side ``idx[0] - 1`` (-1 sell, 0 nothing, 1 buy) of
    ``qty_buckets[idx[2]]`` lots at ``offset = idx[1] - max_offset`` ticks through the touch
    it would trade with (``fallback`` for an empty touch; never below one tick)."""
    if cancel_all and idx[3] and orders.orders:
        ctx.submit(symbol, MassCancel(trader))
    side = idx[0] - 1
    if side:
        order_at_offset(ctx, symbol, trader, orders, side, idx[1] - max_offset, qty_buckets[idx[2]], tick=tick, fallback=fallback)


def order_at_offset(
    ctx: Context, symbol: str, trader: int, orders: OrderTracker, side: int, offset: int, qty: int, *, tick: int, fallback: int
) -> None:
    """A GTC limit ``offset`` ticks through the touch it would trade with (``fallback`` for
    an empty touch; never below one tick)."""
    book = ctx.book(symbol)
    touch = (book.asks if side == 1 else book.bids).best
    if touch is None:
        touch = fallback
    new_order(ctx, symbol, trader, orders, side, qty, max(tick, touch + side * offset * tick))


def quote(
    ctx: Context,
    symbol: str,
    trader: int,
    orders: OrderTracker,
    idx: Sequence[int],
    *,
    tick: int,
    quote_qty: int,
    fallback: int,
) -> None:
    """MarketMaking-v0: keep one bid ``idx[0]`` and one ask ``idx[1]`` ticks behind the
    other traders' best, never crossing it (at least one tick from the other side's best).
    A standing quote is moved with one ``Modify`` (price, and size back to ``quote_qty``)
    when it is settled and differs; a missing one is entered anew."""
    book = ctx.book(symbol)
    best = {side: others_best(book, side, orders) for side in (1, -1)}
    for side, distance in ((1, idx[0]), (-1, idx[1])):
        touch, opposite = best[side], best[-side]
        if touch is None:
            touch = opposite - side * tick if opposite is not None else fallback
        price = touch - side * distance * tick
        if opposite is not None:
            price = min(price, opposite - tick) if side == 1 else max(price, opposite + tick)
        price = max(tick, price)
        working = orders.working(side=side)
        if not working:
            new_order(ctx, symbol, trader, orders, side, quote_qty, price)
            continue
        q = working[0]
        if q.settled and (q.price != price or q.qty != quote_qty):
            orders.sent_modify(q.order_id)
            ctx.submit(symbol, Modify(q.order_id, trader, quote_qty, price))


def others_best(book: OrderBook, side: int, orders: OrderTracker) -> int | None:
    """Best price of ``side`` without the trader's own resting quantity (None: nothing else)."""
    bs = book.side(side)
    best = bs.best
    if best is None or bs.levels[best].qty > orders.resting_qty(side, best):
        return best
    for level in bs.sorted_levels():
        if level.qty > orders.resting_qty(side, level.price):
            return level.price
    return None

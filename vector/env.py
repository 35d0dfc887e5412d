"""Vectorised trading environments on batched torch books (``vector.book``), gymnax style.

``VectorTradingEnv`` is a ``gymnasium.vector.VectorEnv`` of ``B`` copies of
``exchange/Trading-v0`` (same observation and action spaces, ``Box`` or ``Dict``
observations), and ``VectorMarketMakingEnv`` of ``exchange/MarketMaking-v0`` (the learner
quotes a bid and an ask; ``EnvParams.variant``), each on its own book, all
stepped at once by pure functions over batch-first tensors: ``reset_state(params, consts,
seeds)`` and ``step_state(params, consts, state, action)``, with the static ``EnvParams``
apart from the ``EnvState`` tensors. ``VectorMultiTradingEnv`` is the same machinery with
``N`` learners per book (self-play). Nothing in a step loops over books or reads a tensor
back to the host; the same code runs on ``cpu`` and ``cuda``.

One env step, per book (the order is fixed; every phase covers the whole batch):

1. Cancels, in one compaction of the book (``remove_orders``): the learners' cancel-all,
   the noise traders' cancels (their random cancels, orders past their age, the oldest at
   their order cap) and the market maker's stale quote. Removing any set of resting orders
   gives the same book whatever their order (``tests/test_vector_env.py`` checks this
   against one ``CANCEL`` per ``vector.book.step``), so one pass replaces up to a dozen
   book steps.
2. The learners' orders, one ``vector.book.step`` per learner (a GTC limit priced from the
   touch after the cancels, as ``TradingEnv``; refused before the book, as the scalar
   venue's ``RiskLimits``, when it could take the position past ``max_position`` counting
   the learner's working orders of that side, or at ``max_open_orders``). With several
   learners the order of their rounds rotates by one each step. In the market-making
   variant, two rounds: the learner's bid, then its ask, where it re-quotes or quotes anew
   (its stale quotes went in phase 1's compaction; ``_quotes``).
3. The market maker's quote (one round), then ``noise_rounds`` noise rounds
   (``vector.background``): one ``vector.book.step`` each, books without a message that
   round passing ``NONE``.
4. Accounts from every fill of the step at once (position and int64 cash of every owner:
   learners, noise traders, maker), the mark (mid, else last trade, else the reference),
   the reward and the observation, as ``TradingEnv``.
5. Time limit, then auto-reset by masked select (``AutoresetMode.SAME_STEP``).

Differences from the scalar ``TradingEnv`` (read ``docs/vector_envs.md``): the background is
``vector.background``'s vectorised approximation of the scripted traders, not the same
agents; an episode starts from a seeded ladder of resting noise orders (``warm_levels``
each side of the reference price) instead of a one-second warm-up; there is no self-match
prevention (a learner can trade with its own resting order; a self-trade leaves its
position and cash unchanged); the book has ``capacity`` slots per side (an order whose
remainder would rest on a full side is refused and the book's ``overflow`` flag is set,
reported in ``info``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Callable

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from torch import Tensor

from envs.actions import action_space, quoting_nvec, trading_nvec
from envs.config import TradingConfig
from envs.observation import as_dict, dict_observation_space, observation_bounds, observation_size
from exchange.instrument import PRESETS
from vector import book as vb
from vector.background import LIGHT, BackgroundParams, below, bits, env_keys, field, uniform_int
from vector.book import ASK, BID, BookParams, BookState, Commands

_LIMIT, _MARKET = vb._LIMIT, vb._MARKET
_GTC, _IOC = vb._GTC, vb._IOC
DTYPE = torch.int64  # accounts, counters, keys and commands
_ROUND_BITS = 6  # order id = (step << 6) | round: unique per book, and its birth step is id >> 6
TRADING, MARKET_MAKING = "trading", "market_making"  # EnvParams.variant: the learner's action scheme
VARIANTS = (TRADING, MARKET_MAKING)


# ---- parameters and state ----------------------------------------------------------------------
@dataclass(frozen=True)
class EnvParams:
    """Static parameters of a batch of trading envs (hashable, shared by every env).

    ``config``: the scalar env's ``TradingConfig`` (market preset, action and observation
    layout, risk limits, reward); its ``background`` must be None (the vector background is
    ``background``). ``book``: the vector book (``BookParams.from_spec`` of the preset with
    ``capacity`` slots per side, int32 or int64 state, see ``make``). ``n_learners``:
    learners per book. ``variant``: the learners' action scheme, ``"trading"``
    (``Trading-v0``'s orders) or ``"market_making"`` (``MarketMaking-v0``'s bid and ask
    quotes; one learner). The pure functions always produce the flat observation layout;
    ``config.obs_type`` only tells the gymnasium classes to split it into the ``Dict``
    variant.
    """

    config: TradingConfig
    book: BookParams
    background: BackgroundParams
    n_learners: int = 1
    variant: str = TRADING

    @classmethod
    def make(
        cls,
        config: TradingConfig | None = None,
        background: BackgroundParams = LIGHT,
        capacity: int = 32,
        n_learners: int = 1,
        variant: str = TRADING,
        dtype: str | None = None,
    ) -> EnvParams:
        """The parameters, checked. ``dtype``: the book's state dtype, ``"int64"`` or ``"int32"``
        (ValueError where the env's numbers could leave int32, ``fits_int32``); None picks
        int32 where they fit (faster, same trajectories bit for bit), else int64."""
        cfg = config if config is not None else TradingConfig()
        if cfg.background is not None:
            raise ValueError("the vector envs use vector.background; leave TradingConfig.background None")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if variant == MARKET_MAKING and n_learners != 1:
            raise ValueError("the market-making variant has one learner per book")
        rounds = n_learners * (2 if variant == MARKET_MAKING else 1)
        if n_learners < 1 or rounds + background.noise_rounds + 1 >= 1 << _ROUND_BITS:
            raise ValueError(f"n_learners must be in 1..{(1 << _ROUND_BITS) - 2 - background.noise_rounds}")
        if 2 * background.warm_levels >= 1 << _ROUND_BITS or background.warm_levels > capacity:
            raise ValueError("warm_levels too large for the book")
        spec = PRESETS[cfg.preset](cfg.symbol)
        p = cls(cfg, BookParams.from_spec(spec, capacity), background, n_learners, variant)
        fits = p.fits_int32()
        if dtype is None:
            dtype = "int32" if fits else "int64"
        if dtype == "int32" and not fits:
            raise ValueError(
                f"an int32 book cannot hold this env's numbers (highest order id {p.max_order_id()}, highest price "
                f"{p.max_price()}, capacity x max_qty {p.book.capacity * p.book.max_qty}); use dtype='int64'"
            )
        return replace(p, book=replace(p.book, dtype=dtype))

    @property
    def n_owners(self) -> int:
        """Owners per book: learners ``0..N-1``, noise traders, then the market maker."""
        return self.n_learners + self.background.n_traders

    @property
    def noise_owner(self) -> int:
        return self.n_learners

    @property
    def mm_owner(self) -> int:
        return self.n_learners + self.background.n_noise

    @property
    def learner_rounds(self) -> int:
        """Book steps of the learners per env step (round codes ``0..learner_rounds-1``): one
        order each, or a bid and an ask each in the market-making variant."""
        return self.n_learners * (2 if self.variant == MARKET_MAKING else 1)

    def max_order_id(self) -> int:
        """The highest order id an episode can give: ``(t << _ROUND_BITS) + round`` with
        ``t <= horizon_steps`` (the counter restarts with every episode, as the book does)."""
        return (self.config.horizon_steps << _ROUND_BITS) + (1 << _ROUND_BITS) - 1

    def max_price(self) -> int:
        """A bound on any price an episode can send or rest (price units): every order is
        priced at most ``reach`` ticks past the highest price on the book (or the reference),
        so that bound grows by at most ``reach`` ticks per book step."""
        cfg, bg, tick = self.config, self.background, self.book.tick
        learner = cfg.n_offsets if self.variant == MARKET_MAKING else cfg.max_offset
        maker = math.ceil(bg.skew * bg.max_inventory + bg.spread / 2) + bg.min_spread_ticks if bg.market_maker else 0
        reach = max(learner, bg.depth_ticks, maker) + 1  # (+1: rounding to the tick)
        rounds = self.learner_rounds + int(bg.market_maker) + bg.noise_rounds
        return (-(-cfg.reference // tick) + 1 + cfg.horizon_steps * rounds * reach) * tick

    def fits_int32(self) -> bool:
        """Whether every order id, price and quantity sum of an episode fits an int32 book."""
        try:
            replace(self.book, dtype="int32")  # (BookParams checks its quantity sums)
        except ValueError:
            return False
        return self.max_order_id() < (1 << 31) - 1 and self.max_price() <= vb.MAX_PRICE_32  # (int32 max: a sentinel)

    @property
    def n_actions(self) -> int:
        return len(self.nvec())

    def nvec(self) -> list[int]:
        """Sizes of the discrete action components, from ``envs.actions`` (the scalar envs' own)."""
        cfg = self.config
        if self.variant == MARKET_MAKING:
            return quoting_nvec(cfg.n_offsets)
        return trading_nvec(cfg.max_offset, len(cfg.qty_buckets), cfg.cancel_all)


@dataclass(frozen=True)
class EnvState:
    """Batch-first state of ``B`` envs.

    ``book``: the books. ``acct``: ``[B, owners, 2]`` int64 (position in lots, cash in
    price units x lots) of every owner. ``key``: ``[B]`` each env's random key (from its
    seed). ``episode``, ``t``: ``[B]`` episodes begun since the seed and steps done in this
    one. ``equity``: ``[B, N]`` float64 each learner's equity at the last mark. ``mid``:
    ``[B]`` float64 the mark after the last step (price units).
    """

    book: BookState
    acct: Tensor
    key: Tensor
    episode: Tensor
    t: Tensor
    equity: Tensor
    mid: Tensor

    @property
    def batch(self) -> int:
        return self.t.shape[0]


class Consts:
    """Constant tensors of one batch size and device (built once, never allocated in a step)."""

    def __init__(
        self, p: EnvParams, batch: int, device: torch.device | str, compile: bool = False, native: bool | None = False,
        native_threads: int = 1,
    ) -> None:
        cfg, bg, bp = p.config, p.background, p.book
        dev = torch.device(device)
        self.compile = compile  # phases via piece(), the book transition through vb.compiled_step()
        self.native = use_native(native, p, dev, compile)  # the envs step through vector.native_env.FusedStep
        self.native_threads = native_threads  # its OpenMP threads (results do not depend on it)
        self.device, self.batch = dev, batch
        i64 = dict(dtype=DTYPE, device=dev)
        self.sdtype = vb.init(bp, 1).qty.dtype  # the book's state dtype
        self.big = torch.iinfo(self.sdtype).max
        i32 = dict(dtype=self.sdtype, device=dev)
        full = lambda v: torch.full((batch,), v, **i64)  # noqa: E731
        self.limit, self.market, self.gtc, self.ioc = full(_LIMIT), full(_MARKET), full(_GTC), full(_IOC)
        self.new, self.none = full(vb.NEW), full(vb.NONE)
        self.buy, self.sell, self.quote_qty = full(1), full(-1), full(cfg.quote_qty)  # the market-making quotes
        self.no = torch.zeros(batch, dtype=torch.bool, device=dev)
        self.post = torch.full((batch,), bp.post_only, dtype=torch.bool, device=dev)
        self.buckets = torch.tensor(cfg.qty_buckets, **i64)
        self.nvec = torch.tensor(p.nvec(), **i64)
        self.rounds = torch.arange(1 << _ROUND_BITS, **i64)
        self.learners = torch.arange(p.n_learners, **i64)
        self.ref = float(cfg.reference)
        low, high = observation_bounds(cfg)
        self.low = torch.as_tensor(low, device=dev)
        self.high = torch.as_tensor(high, device=dev)
        self.row_sign = torch.tensor([-1.0, 1.0], dtype=torch.float64, device=dev).view(1, 2, 1)
        self.is_ask_row = torch.tensor([False, True], device=dev).view(1, 2, 1)
        self.mm_row_is = torch.tensor([BID, ASK], **i64).view(1, 2)
        # the ladder an episode starts from: warm_levels noise orders each side, one per tick
        W, C = bg.warm_levels, bp.capacity
        price = torch.zeros((1, 2, C), **i32)
        price[:, ASK] = bp.empty_ask
        oid = torch.zeros((1, 2, C), **i32)
        owner = torch.zeros((1, 2, C), **i32)
        ref_tick = round(cfg.reference / bp.tick)
        for k in range(W):
            price[0, BID, k] = (ref_tick - 1 - k) * bp.tick
            price[0, ASK, k] = (ref_tick + 1 + k) * bp.tick
            oid[0, BID, k], oid[0, ASK, k] = 1 + k, 1 + W + k  # step 0, codes 1..2W
            owner[0, BID, k] = owner[0, ASK, k] = p.noise_owner + k % bg.n_noise
        self.warm_price, self.warm_oid, self.warm_owner = price, oid, owner
        self.warm_slots = torch.arange(C, device=dev) < W  # [C]
        self.warm_mark = float(ref_tick * bp.tick) if W else self.ref
        self.zeros_tail = torch.zeros((batch, 2, C - W), **i32)

    def book_step(self) -> Callable:
        """The torch book transition: ``vb.compiled_step()`` or ``vb.step`` (looked up per call:
        tests record ``vb.step``)."""
        return vb.compiled_step() if self.compile else vb.step

    def piece(self, fn: Callable) -> Callable:
        """``fn``, a phase of ``step_state``, or with ``compile`` the same function through
        ``torch.compile`` (static shapes, one graph per phase and batch size; the first step
        compiles; ``fn`` stays the eager reference)."""
        return _compiled(fn) if self.compile else fn


def use_native(native: bool | None, p: EnvParams, device: torch.device, compile: bool = False) -> bool:
    """Whether the envs step in ``vector.native_env`` (the whole step in C): with None where
    the device is the CPU, ``compile`` is off, ``p`` is covered and the library builds here;
    else as asked. True where it cannot run raises: ``NativeUnavailable`` without a C
    compiler, ValueError off the CPU, with ``compile`` or for a configuration it does not cover."""
    from vector import native_env  # (imports this module)

    if native is False:
        return False
    why = (f"the env's device is {device}" if device.type != "cpu" else "compile=True asks for the torch step" if compile
           else native_env.unsupported(p))
    if native is None:
        return why is None and native_env.available()
    if why is not None:
        raise ValueError(f"native=True runs the whole step in C on the CPU, but {why} (use native=False)")
    native_env.library()  # raises NativeUnavailable, naming what is missing
    return True


_PIECES: dict[Callable, Callable] = {}


def _compiled(fn: Callable) -> Callable:
    out = _PIECES.get(fn)
    if out is None:
        vb.compiled_step()  # raises dynamo's recompile limit (one graph per batch size and params)
        out = _PIECES[fn] = torch.compile(fn, dynamic=False, fullgraph=True)
    return out


def counter(episode: Tensor, t: Tensor) -> Tensor:
    """The random counter of step ``t`` of ``episode`` (round codes are added to it)."""
    return ((episode << 24) + t) << _ROUND_BITS


# ---- removing orders (one compaction for any number of cancels) --------------------------------
_EMPTY_PRICE: dict[tuple, Tensor] = {}


_SLOTS: dict[tuple, Tensor] = {}


def _slots(B: int, R: int, N: int, device: torch.device) -> Tensor:
    """``[B, R, N]`` slot indices, contiguous (``searchsorted`` wants contiguous values)."""
    key = (B, R, N, device)
    t = _SLOTS.get(key)
    if t is None:
        t = _SLOTS[key] = torch.arange(N, dtype=DTYPE, device=device).view(1, 1, N).expand(B, R, N).contiguous()
    return t


def _empty_price(device: torch.device, dtype: torch.dtype) -> Tensor:
    """The prices of an empty bid and an empty ask slot, ``[1, 2, 1]``, in the book's dtype."""
    t = _EMPTY_PRICE.get((device, dtype))
    if t is None:
        empty_ask = vb.EMPTY_ASK_32 if dtype == torch.int32 else vb.EMPTY_ASK
        t = _EMPTY_PRICE[(device, dtype)] = torch.tensor([0, empty_ask], dtype=dtype, device=device).view(1, 2, 1)
    return t


def remove_orders(book: BookState, kill: Tensor) -> BookState:
    """``book`` without the resting orders where ``kill`` ([B, 2, capacity] bool) is set.

    The same book as cancelling them one ``CANCEL`` at a time with ``vector.book.step`` in
    any order: the other orders keep their priority order, packed at the front; a row's TOP
    flag goes with its first order. Fixed cost (a cumsum, a search and four gathers).
    """
    price, qty = book.price, book.qty
    B, R, N = qty.shape
    keep = (qty > 0) & ~kill
    csum = keep.to(DTYPE).cumsum(2)
    slot = _slots(B, R, N, qty.device)
    src = torch.searchsorted(csum, slot, right=True).clamp_(max=N - 1)  # k-th kept slot
    live = slot < csum[:, :, N - 1 :]
    empty_price = _empty_price(qty.device, price.dtype)
    return BookState(
        price=torch.where(live, price.gather(2, src), empty_price),
        qty=torch.where(live, qty.gather(2, src), 0),
        order_id=torch.where(live, book.order_id.gather(2, src), 0),
        owner=torch.where(live, book.owner.gather(2, src), 0),
        top=book.top & ~kill[:, :, 0],
        last_price=book.last_price,
        overflow=book.overflow,
    )


# ---- reset ---------------------------------------------------------------------------------------
def _warm_qty(p: EnvParams, c: Consts, key: Tensor, episode: Tensor) -> Tensor:
    """``[B, 2, W]`` sizes of the starting ladder (1..10 lots), from the episode's step-0 bits."""
    W = p.background.warm_levels
    n_words = (2 * W + 3) // 4
    ctr = counter(episode, torch.zeros_like(episode))
    words = bits(key[:, None], ctr[:, None] + (1 << _ROUND_BITS) - 1 - c.rounds[:n_words])  # [B, n_words]
    draws = torch.stack([uniform_int(words, 16 * i, 1, 10) for i in range(4)], 2).flatten(1)[:, : 2 * W]
    return draws.view(key.shape[0], 2, W).to(c.sdtype)


def _warm_book(p: EnvParams, c: Consts, key: Tensor, episode: Tensor) -> BookState:
    """The book every episode starts from, with this episode's sizes."""
    B = key.shape[0]
    qty = torch.cat([_warm_qty(p, c, key, episode), c.zeros_tail], 2)
    return BookState(
        price=c.warm_price.expand(B, -1, -1),
        qty=qty,
        order_id=c.warm_oid.expand(B, -1, -1),
        owner=c.warm_owner.expand(B, -1, -1),
        top=torch.zeros((B, 2), dtype=torch.bool, device=c.device),
        last_price=torch.zeros(B, dtype=c.sdtype, device=c.device),
        overflow=torch.zeros(B, dtype=torch.bool, device=c.device),
    )


def reset_state(p: EnvParams, c: Consts, seeds: Tensor) -> tuple[EnvState, Tensor]:
    """Fresh envs from ``[B]`` integer seeds: ``(state, observation [B, N, obs])``."""
    key = env_keys(seeds.to(c.device))
    episode = torch.zeros_like(key)
    return _begin(p, c, key, episode)


def _begin(p: EnvParams, c: Consts, key: Tensor, episode: Tensor) -> tuple[EnvState, Tensor]:
    B, N, O = key.shape[0], p.n_learners, p.n_owners
    cash0 = p.config.starting_cash
    acct = torch.zeros((B, O, 2), dtype=DTYPE, device=c.device)
    acct[:, :, 1] = cash0
    book = _warm_book(p, c, key, episode)
    state = EnvState(
        book=BookState(*(getattr(book, f.name).contiguous() for f in fields(book))),
        acct=acct,
        key=key,
        episode=episode,
        t=torch.zeros_like(key),
        equity=torch.full((B, N), float(cash0), dtype=torch.float64, device=c.device),
        mid=torch.full((B,), c.warm_mark, dtype=torch.float64, device=c.device),
    )
    zeros = torch.zeros(B, dtype=DTYPE, device=c.device)
    mark = _mark(state.book, c)
    obs = observe(p, c, state.book, mark, state.mid, zeros, acct, state.t, _open_counts(state.book, O)[:, :N])
    return state, obs


# ---- the step ------------------------------------------------------------------------------------
def _mark(book: BookState, c: Consts) -> Tensor:
    """The venue's mark in price units (float64): mid, else last trade, else the reference."""
    hb, ha = book.qty[:, BID, 0] > 0, book.qty[:, ASK, 0] > 0
    mid = (book.price[:, BID, 0] + book.price[:, ASK, 0]).double() * 0.5
    last = book.last_price
    return torch.where(hb & ha, mid, torch.where(last > 0, last.double(), c.ref))


def _open_counts(book: BookState, n_owners: int) -> Tensor:
    """``[B, owners]`` resting orders of each owner."""
    B = book.qty.shape[0]
    alive = (book.qty > 0).to(DTYPE).reshape(B, -1)
    return torch.zeros((B, n_owners), dtype=DTYPE, device=alive.device).scatter_add_(1, book.owner.reshape(B, -1).long(), alive)


def observe(
    p: EnvParams, c: Consts, book: BookState, mark: Tensor, mid_prev: Tensor, flow: Tensor, acct: Tensor, t: Tensor, open_orders: Tensor
) -> Tensor:
    """``[B, N, 4L + 8]`` float32 observations, the layout of ``envs.observation``, clipped."""
    cfg, tick = p.config, p.book.tick
    B, N, L, D = book.qty.shape[0], p.n_learners, cfg.depth, cfg.max_ticks
    lp, lq, _ = vb.levels(book, L)
    present = lq > 0
    dist = torch.where(present, (lp - mark.view(B, 1, 1)) * c.row_sign / tick, D)
    lv = torch.stack([dist, lq.double() / cfg.size_scale], 3).view(B, 4 * L)
    bq, aq = lq[:, BID, 0].double(), lq[:, ASK, 0].double()
    both = (bq > 0) & (aq > 0)
    spread = torch.where(both, (lp[:, ASK, 0] - lp[:, BID, 0]) / tick, D)
    tot = bq + aq
    imbalance = torch.where(tot > 0, (bq - aq) / tot.clamp(min=1.0), 0.0)
    market = torch.stack([spread, (mark - mid_prev) / tick, flow.double() / cfg.size_scale, imbalance], 1)
    pos, cash = acct[:, :N, 0], acct[:, :N, 1]
    equity = cash + pos * mark.view(B, 1)
    agent = torch.stack(
        [
            pos.double() / cfg.max_position,
            (equity - cfg.starting_cash) / tick / cfg.reward_scale,
            open_orders.double() / cfg.max_open_orders,
            (1.0 - t.double() / cfg.horizon_steps).clamp(min=0.0).view(B, 1).expand(B, N),
        ],
        2,
    )
    shared = torch.cat([lv, market], 1).view(B, 1, 4 * L + 4).expand(B, N, 4 * L + 4)
    obs = torch.cat([shared, agent], 2).float()
    return torch.maximum(torch.minimum(obs, c.high), c.low)


def action_indices(p: EnvParams, c: Consts, action: Tensor) -> Tensor:
    """``[B, N, n]`` int64 discrete indices of ``[B, N, n]`` actions of either ``action_type``
    (a ``Box`` component ``a`` selects ``min(n_i - 1, floor((a + 1) / 2 * n_i))``, as
    ``envs.actions.indices``)."""
    if p.config.action_type == "box":
        idx = ((action.double() + 1.0) * 0.5 * c.nvec).floor().to(DTYPE)
        return torch.minimum(idx.clamp(min=0), c.nvec - 1)
    return action.to(DTYPE)


def decode_actions(p: EnvParams, c: Consts, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(side, offset, qty, cancel_all)`` ``[B, N]`` from ``[B, N, n]`` Trading-v0 actions of either type."""
    action = action_indices(p, c, action)
    side = action[..., 0] - 1
    offset = action[..., 1] - p.config.max_offset
    qty = c.buckets[action[..., 2]]
    cancel = action[..., 3] == 1 if p.config.cancel_all else torch.zeros_like(side, dtype=torch.bool)
    return side, offset, qty, cancel


def step_state(p: EnvParams, c: Consts, s: EnvState, action: Tensor) -> tuple[EnvState, Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """One step of every env: ``(state, obs, reward, truncated, info)``.

    ``action``: ``[B, N, n]``. ``obs``: ``[B, N, obs]``, the reset observation where the
    episode ended (its last observation is ``info["final_obs"]``); ``reward``: ``[B, N]``
    float32; ``truncated``: ``[B]`` bool. ``info``: ``[B]`` tensors ``messages`` (commands
    every participant sent this step, a learner's cancel-all counted once), ``trades``
    (fills), ``rejected`` (``[B, N]`` learner orders refused by the risk limits),
    ``overflow`` (the book's sticky overflow flag), and ``final_obs`` with ``_final_obs``.
    """
    bp, R = p.book, p.background.noise_rounds
    # phase 1 stays eager: compiled, an inductor kernel of it failed an index bounds check
    # (aborting the process) on some streams at B=64
    book, orders, noise, messages, rejected = _cancel_and_decide(p, c, s, action)
    book_step = c.book_step()
    outs: list[tuple[vb.StepOut, Tensor, Tensor]] = []  # (out, taker, side)
    for cmd in orders:  # the learners' orders, then the maker's quote
        book, out = book_step(book, bp, cmd)
        outs.append((out, cmd.trader, cmd.side))
    sent = []
    for r in range(R):
        cmd, go = c.piece(_noise_order)(p, c, book, *(x[r] for x in noise))
        book, out = book_step(book, bp, cmd)
        outs.append((out, cmd.trader, cmd.side))
        sent.append(go)
    return c.piece(_account_and_reset)(p, c, s, book, outs, messages, sent, rejected)


def _cancel_and_decide(p: EnvParams, c: Consts, s: EnvState, action: Tensor) -> tuple[BookState, list[Commands], tuple, Tensor, Tensor]:
    """Phase 1 (the cancels, one compaction) and what phases 2 and 3 decide from the book as it
    stands then: ``(book, [learner and maker commands], noise, messages, rejected)``, where
    ``noise`` holds, per noise round, what ``_noise_order`` needs besides the book."""
    cfg, bg, bp = p.config, p.background, p.book
    book = s.book
    B, _, C = book.qty.shape
    N, O = p.n_learners, p.n_owners
    dev = c.device
    t = s.t + 1
    price, qty, oid, owner = book.price, book.qty, book.order_id, book.owner
    alive = qty > 0
    pos = s.acct[:, :, 0]
    # per (row, owner), before the step: open lots, orders, and the sums of their prices and ids
    # (exact for the maker, which keeps at most one order a side; owner 0's sums also count
    # the empty slots and are not used)
    per_row = torch.zeros((4, B, 2, O), dtype=DTYPE, device=dev)
    idx = owner.long()
    for k, f in enumerate((qty, alive, price, oid) if bg.market_maker else (qty, alive)):
        per_row[k].scatter_add_(2, idx, f.long())
    open_qty, open_cnt = per_row[0], per_row[1]
    ctr = counter(s.episode, t)
    LR = p.learner_rounds  # round codes: learners 0..LR-1, the maker LR, noise LR+1..
    quoting = p.variant == MARKET_MAKING
    lo = torch.zeros((B, O), dtype=DTYPE, device=dev)
    if quoting:  # decided on the book the learner observed, as MarketMakingEnv
        q_want, q_kill, q_place, rejected, messages = _quotes(p, c, book, s.mid, s.acct[:, 0, 0], action)
        l_killed = q_kill.sum((1, 2))  # each is half of a re-quote (the scalar env's Modify), not a message
    else:
        side, offset, lqty, cancel = decode_actions(p, c, action)
        l_open = open_cnt[:, :, :N].sum(1)  # [B, N]
        messages = (cancel & (l_open > 0)).sum(1)  # a learner's cancel-all is one message
        l_killed = (l_open * cancel).sum(1)
        lo[:, :N] = torch.where(cancel, c.big, 0)

    # ---- 1. cancels: one compaction ---------------------------------------------------------------
    # per owner: cancel its orders with an id below lo (all of them: BIG; the noise traders':
    # those born more than max_age_steps ago) and the one with id kid; in the market-making
    # variant also the learner's stale quotes (q_kill)
    kid = torch.full((B, O), -1, dtype=DTYPE, device=dev)
    R = bg.noise_rounds
    noise_bits = bits(s.key[:, None], ctr[:, None] + LR + 1 + c.rounds[:R]) if R else None
    nlo, nhi = p.noise_owner, p.noise_owner + bg.n_noise
    if R:
        oldest = torch.full((B, 2, O), c.big, dtype=oid.dtype, device=dev)
        oldest.scatter_reduce_(2, owner.long(), torch.where(alive, oid, c.big), "amin")
        oldest = oldest.amin(1)  # [B, O]
        cap = open_cnt[:, :, nlo:nhi].sum(1) >= bg.max_open_orders  # [B, n_noise]
        arrive = below(noise_bits, 0, bg.p_arrival)
        u_type = field(noise_bits, 16, 16)
        p_c = int(round(bg.p_cancel * 65536))
        wants_cancel = arrive & (u_type < p_c)
        for r in range(R):
            cap[:, r % bg.n_noise] |= wants_cancel[:, r]
        kid[:, nlo:nhi] = torch.where(cap, oldest[:, nlo:nhi], -1)
        lo[:, nlo:nhi] = ((t - bg.max_age_steps) << _ROUND_BITS).view(B, 1)
    if bg.market_maker:
        mm = p.mm_owner
        q_row, q_price, q_qty, q_valid = _mm_quote(p, c, book, pos[:, mm], t)
        cur = per_row[:, :, :, mm].gather(2, q_row.view(1, B, 1).expand(4, B, 1)).squeeze(2)  # [4, B] on the quote's row
        has = cur[1] > 0
        stale = has & (~q_valid | (cur[2] != q_price) | (cur[0] > q_qty))
        kid[:, mm] = torch.where(stale, cur[3], -1)
        mm_place = q_valid & (~has | stale)
        messages = messages + mm_place
    flat_owner = owner.reshape(B, 2 * C).long()
    kill = (oid < lo.gather(1, flat_owner).view(B, 2, C)) | (oid == kid.gather(1, flat_owner).view(B, 2, C))
    if quoting:
        kill |= q_kill
    kill &= alive
    messages = messages + kill.sum((1, 2)) - l_killed  # every background cancel
    book = remove_orders(book, kill)

    # ---- 2. the learners' orders ------------------------------------------------------------------
    if quoting:
        orders = _quote_commands(c, t, q_want, q_place)
    else:
        orders, rejected, sent = _trading_orders(p, c, s, book, (side, offset, lqty, cancel), open_qty, open_cnt, t)
        messages = messages + sent

    # ---- 3. background rounds (the maker's command; what the noise rounds decide now) -------------
    if bg.market_maker:
        orders.append(Commands(
            kind=torch.where(mm_place, vb.NEW, vb.NONE), order_id=(t << _ROUND_BITS) + LR, trader=c.none + p.mm_owner,
            side=1 - 2 * q_row, qty=q_qty, price=q_price, type=c.limit, tif=c.gtc, post_only=c.post,
        ))
    noise: list[tuple[Tensor, ...]] = []
    for r in range(R):
        nb = noise_bits[:, r]
        trader = nlo + r % bg.n_noise
        is_market = (u_type[:, r] >= p_c) & (u_type[:, r] < int(round((bg.p_cancel + bg.p_market) * 65536)))
        n_side = 1 - 2 * field(nb, 63, 1)
        n_qty = uniform_int(nb, 32, bg.min_qty, bg.max_qty)
        off = uniform_int(nb, 48, 0, bg.depth_ticks, 15)
        n_pending = torch.where(n_side > 0, open_qty[:, BID, trader], open_qty[:, ASK, trader])
        ok = (pos[:, trader] + n_side * (n_pending + n_qty)).abs() <= cfg.max_position
        noise.append((
            arrive[:, r] & ~wants_cancel[:, r], ok, is_market, n_side, n_qty, off,
            (t << _ROUND_BITS) + LR + 1 + r, c.none + trader,
        ))
    return book, orders, tuple(zip(*noise)), messages, rejected


def _trading_orders(
    p: EnvParams, c: Consts, s: EnvState, book: BookState, decided: tuple[Tensor, Tensor, Tensor, Tensor], open_qty: Tensor,
    open_cnt: Tensor, t: Tensor,
) -> tuple[list[Commands], Tensor, Tensor]:
    """Phase 2 of the trading variant: the learners' orders priced from the touch after the
    cancels, refused as the venue's ``RiskLimits`` would: ``(commands, rejected [B, N],
    messages [B])``."""
    cfg, tick = p.config, p.book.tick
    B, N = book.qty.shape[0], p.n_learners
    side, offset, lqty, cancel = decided
    pos = s.acct[:, :, 0]
    hb, ha = book.qty[:, BID, 0] > 0, book.qty[:, ASK, 0] > 0
    bid0, ask0 = book.price[:, BID, 0], book.price[:, ASK, 0]
    mark = torch.where(hb & ha, (bid0 + ask0).double() * 0.5, torch.where(book.last_price > 0, book.last_price.double(), c.ref))
    fallback = (torch.round(mark / tick).to(DTYPE) * tick).clamp(min=tick)
    buy = side > 0
    touch = torch.where(buy, ask0.view(B, 1), bid0.view(B, 1))
    shows = torch.where(buy, ha.view(B, 1), hb.view(B, 1))
    l_price = (torch.where(shows, touch, fallback.view(B, 1)) + side * offset * tick).clamp(min=tick)
    pending = torch.where(buy, open_qty[:, BID, :N], open_qty[:, ASK, :N]) * ~cancel
    working = open_cnt[:, :, :N].sum(1) * ~cancel
    allowed = ((pos[:, :N] + side * (pending + lqty)).abs() <= cfg.max_position) & (working < cfg.max_open_orders)
    sends = side != 0
    rejected = sends & ~allowed
    l_kind = torch.where(sends & allowed, vb.NEW, vb.NONE)
    l_side = torch.where(buy, 1, -1)
    orders: list[Commands] = []
    for r in range(N):
        if N == 1:
            i = c.learners[:1].expand(B)
            pick = lambda v: v[:, 0]  # noqa: E731
        else:
            i = (c.learners[r] + s.t) % N
            pick = lambda v: v.gather(1, i.view(B, 1)).squeeze(1)  # noqa: E731
        orders.append(Commands(
            kind=pick(l_kind), order_id=(t << _ROUND_BITS) + r, trader=i, side=pick(l_side), qty=pick(lqty),
            price=pick(l_price), type=c.limit, tif=c.gtc, post_only=c.no,
        ))
    return orders, rejected, sends.sum(1)


def _quotes(
    p: EnvParams, c: Consts, book: BookState, mid: Tensor, position: Tensor, action: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The market-making learner's (owner 0) decision on the book it observed, as
    ``envs.actions.quote``: ``(price [B, 2], kill [B, 2, C], place [B, 2], rejected [B, 1],
    messages [B])``, rows ``BID``, ``ASK``.

    Bid ``idx[0]`` and ask ``idx[1]`` ticks behind the other traders' best of that side; with
    that side empty, one tick inside the other side's best, else the mark ``mid`` rounded to
    the tick; clamped one tick off the other traders' opposite best and to at least one
    tick. A standing quote at that price with ``quote_qty`` lots stays (nothing sent); one
    that differs is re-quoted (``kill`` it in phase 1, ``place`` it anew: the scalar env's
    ``Modify`` to a new price or back up to ``quote_qty``, which also loses the queue
    position) and, like a ``Modify``, is not risk-checked; a side with no quote gets a new
    order, refused (``rejected``) as the venue's ``RiskLimits`` refuse it: the position
    past ``max_position`` if it filled, or ``max_open_orders`` working (the bid is sent
    first). ``messages``: commands sent, one per re-quoted or newly quoted side.
    """
    cfg, tick = p.config, p.book.tick
    idx = action_indices(p, c, action)[:, 0]  # [B, 2]
    alive = book.qty > 0
    own = alive & (book.owner == 0)
    others = alive & ~own
    first = others.to(torch.uint8).argmax(2, keepdim=True)  # the other traders' best, per row
    shows = others.gather(2, first).squeeze(2)  # [B, 2]
    best = book.price.gather(2, first).squeeze(2).to(DTYPE)
    hb, ha, bb, ba = shows[:, BID], shows[:, ASK], best[:, BID], best[:, ASK]
    fallback = (torch.round(mid / tick).to(DTYPE) * tick).clamp(min=tick)
    bid = torch.where(hb, bb, torch.where(ha, ba - tick, fallback)) - idx[:, 0] * tick
    bid = torch.where(ha, torch.minimum(bid, ba - tick), bid).clamp(min=tick)
    ask = torch.where(ha, ba, torch.where(hb, bb + tick, fallback)) + idx[:, 1] * tick
    ask = torch.where(hb, torch.maximum(ask, bb + tick), ask).clamp(min=tick)
    want = torch.stack([bid, ask], 1)  # rows BID, ASK
    count = own.sum(2)  # [B, 2] (one quote a side; more would be re-quoted as one)
    has = count > 0
    stale = has & ((count > 1) | ((book.price * own).sum(2) != want) | ((book.qty * own).sum(2) != cfg.quote_qty))
    fresh = ~has
    working = count.sum(1)
    bid_ok = ((position + cfg.quote_qty).abs() <= cfg.max_position) & (working < cfg.max_open_orders)
    ask_ok = ((position - cfg.quote_qty).abs() <= cfg.max_position) & (working + (fresh[:, BID] & bid_ok) < cfg.max_open_orders)
    allowed = torch.stack([bid_ok, ask_ok], 1)
    place = stale | (fresh & allowed)
    rejected = (fresh & ~allowed).sum(1, keepdim=True)
    return want, own & stale.unsqueeze(2), place, rejected, (stale | fresh).sum(1)


def _quote_commands(c: Consts, t: Tensor, want: Tensor, place: Tensor) -> list[Commands]:
    """Phase 2 of the market-making variant: the bid (round 0), then the ask (round 1), GTC limits
    of ``quote_qty`` lots where ``place``."""
    learner = c.learners[:1].expand(c.batch)
    return [
        Commands(
            kind=torch.where(place[:, row], vb.NEW, vb.NONE), order_id=(t << _ROUND_BITS) + r, trader=learner, side=side,
            qty=c.quote_qty, price=want[:, row], type=c.limit, tif=c.gtc, post_only=c.no,
        )
        for r, (row, side) in enumerate(((BID, c.buy), (ASK, c.sell)))
    ]


def _noise_order(
    p: EnvParams, c: Consts, book: BookState, arrives: Tensor, ok: Tensor, is_market: Tensor, n_side: Tensor, n_qty: Tensor,
    off: Tensor, order_id: Tensor, trader: Tensor,
) -> tuple[Commands, Tensor]:
    """One noise round's command on the book as it stands, and whether it is a message."""
    tick = p.book.tick
    hb, ha = book.qty[:, BID, 0] > 0, book.qty[:, ASK, 0] > 0
    bid0, ask0 = book.price[:, BID, 0], book.price[:, ASK, 0]
    ref = torch.where(
        hb & ha,
        (bid0 + ask0).double() * 0.5,
        torch.where(book.last_price > 0, book.last_price.double(), torch.where(hb, bid0.double(), torch.where(ha, ask0.double(), c.ref))),
    )
    x = ref / tick - (n_side * off).double()
    n_price = torch.where(n_side > 0, x.floor(), x.ceil()).to(DTYPE) * tick
    opp_shows = torch.where(n_side > 0, ha, hb)
    go = arrives & (~is_market | opp_shows)
    cmd = Commands(
        kind=torch.where(go & ok, vb.NEW, vb.NONE), order_id=order_id, trader=trader,
        side=n_side, qty=n_qty, price=n_price, type=torch.where(is_market, c.market, c.limit),
        tif=torch.where(is_market, c.ioc, c.gtc), post_only=c.no,
    )
    return cmd, go


def _account_and_reset(
    p: EnvParams, c: Consts, s: EnvState, book: BookState, outs: list[tuple[vb.StepOut, Tensor, Tensor]], messages: Tensor,
    sent: list[Tensor], rejected: Tensor,
) -> tuple[EnvState, Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """Phases 4 and 5: accounts, reward and observation from the step's fills, then the time
    limit and the auto-reset."""
    cfg, tick = p.config, p.book.tick
    B, N, O = book.qty.shape[0], p.n_learners, p.n_owners
    t = s.t + 1
    for go in sent:
        messages = messages + go

    # ---- 4. accounts, reward, observation ---------------------------------------------------------
    acct, flow, trades = apply_fills(s.acct, outs)
    mark = _mark(book, c)
    pos_l, cash_l = acct[:, :N, 0], acct[:, :N, 1]
    equity = cash_l + pos_l * mark.view(B, 1)
    money = (equity - s.equity) / tick
    cost = cfg.inventory_penalty * pos_l.abs()
    done = t >= cfg.horizon_steps
    if cfg.liquidation_cost:
        hb, ha = book.qty[:, BID, 0] > 0, book.qty[:, ASK, 0] > 0
        half = torch.where(hb & ha, (book.price[:, ASK, 0] - book.price[:, BID, 0]) / (2.0 * tick), cfg.max_ticks / 2)
        cost = cost + torch.where(done, half, 0.0).view(B, 1) * pos_l.abs()
    reward = ((money - cost) / cfg.reward_scale).float()
    open_l = _open_counts(book, O)[:, :N]
    final_obs = observe(p, c, book, mark, s.mid, flow, acct, t, open_l)
    info = {"messages": messages, "trades": trades, "rejected": rejected, "overflow": book.overflow, "final_obs": final_obs, "_final_obs": done}

    # ---- 5. auto-reset by masked select -------------------------------------------------------------
    episode = s.episode + done
    warm = _warm_book(p, c, s.key, episode)
    d3 = done.view(B, 1, 1)
    book = BookState(
        price=torch.where(d3, warm.price, book.price),
        qty=torch.where(d3, warm.qty, book.qty),
        order_id=torch.where(d3, warm.order_id, book.order_id),
        owner=torch.where(d3, warm.owner, book.owner),
        top=book.top & ~done.view(B, 1),
        last_price=torch.where(done, 0, book.last_price),
        overflow=book.overflow & ~done,
    )
    acct = torch.where(d3, _fresh_acct(p, c, B), acct)
    cash0 = float(cfg.starting_cash)
    new = EnvState(
        book=book,
        acct=acct,
        key=s.key,
        episode=episode,
        t=torch.where(done, 0, t),
        equity=torch.where(done.view(B, 1), cash0, equity),
        mid=torch.where(done, c.warm_mark, mark),
    )
    obs = torch.where(done.view(B, 1, 1), _warm_obs(p, c, warm, B), final_obs)
    return new, obs, reward, done, info


def _fresh_acct(p: EnvParams, c: Consts, B: int) -> Tensor:
    acct = torch.zeros((1, p.n_owners, 2), dtype=DTYPE, device=c.device)
    acct[:, :, 1] = p.config.starting_cash
    return acct


def _warm_obs(p: EnvParams, c: Consts, warm: BookState, B: int) -> Tensor:
    """The first observation of an episode starting from ``warm`` (no levels scan: one order per level)."""
    cfg, tick = p.config, p.book.tick
    L, W, D, N = cfg.depth, p.background.warm_levels, cfg.max_ticks, p.n_learners
    ref = c.warm_mark
    k = min(L, W)
    lq = warm.qty[:, :, :k]
    lp = warm.price[:, :, :k]
    dist = (lp - ref) * c.row_sign / tick
    lv = torch.stack([dist, lq.double() / cfg.size_scale], 3)
    if L > k:
        pad = torch.tensor([D, 0.0], dtype=torch.float64, device=c.device).expand(B, 2, L - k, 2)
        lv = torch.cat([lv, pad], 2)
    lv = lv.reshape(B, 4 * L)
    if W:
        bq, aq = lq[:, BID, 0].double(), lq[:, ASK, 0].double()
        spread = torch.full((B,), 2.0, dtype=torch.float64, device=c.device)  # one tick each side of the reference
        imbalance = (bq - aq) / (bq + aq)
    else:
        spread = torch.full((B,), D, dtype=torch.float64, device=c.device)
        imbalance = torch.zeros(B, dtype=torch.float64, device=c.device)
    zero = torch.zeros(B, dtype=torch.float64, device=c.device)
    shared = torch.cat([lv, torch.stack([spread, zero, zero, imbalance], 1)], 1)
    agent = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64, device=c.device).expand(B, N, 4)
    obs = torch.cat([shared.view(B, 1, -1).expand(B, N, -1), agent], 2).float()
    return torch.maximum(torch.minimum(obs, c.high), c.low)


def apply_fills(acct: Tensor, outs: list[tuple[vb.StepOut, Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
    """Every fill of the step's book steps applied to ``acct`` ([B, owners, 2]).

    A fill of ``q`` lots at ``p`` moves ``side * q`` lots and ``-side * q * p`` cash to the
    taker (the command's trader and side) and the opposite to the maker. Returns ``(acct,
    flow, trades)``: the signed traded lots (buyer-initiated positive) and fill count ``[B]``.
    Reads only the taker's opposite row (``StepOut.fill_qty`` and friends, ``[B, capacity]``).
    """
    B, O, _ = acct.shape
    R = len(outs)
    got = torch.zeros((2, R, B, O), dtype=DTYPE, device=acct.device)  # lots and notional each maker traded, per round
    trades = torch.zeros(B, dtype=DTYPE, device=acct.device)
    for r, (out, _, _) in enumerate(outs):
        maker, lots = out.fill_maker_owner.long(), out.fill_qty.long()  # (an int32 book: lots x price can pass int32)
        got[0, r].scatter_add_(1, maker, lots)
        got[1, r].scatter_add_(1, maker, lots * out.fill_price)
        trades = trades + torch.count_nonzero(out.fill_qty, 1)
    side = torch.stack([sd for _, _, sd in outs]).view(1, R, B, 1)
    takers = torch.stack([tr for _, tr, _ in outs], 1).long()  # [B, R]
    got = got * side  # signed by the taker's side
    taken = got.sum(3)  # [2, R, B]: the taker's signed lots and notional
    makers = got.sum(1)  # [2, B, O]
    # the taker gains side x lots and pays side x notional; the makers the opposite
    d_pos = (-makers[0]).scatter_add_(1, takers, taken[0].T)
    d_cash = makers[1].scatter_add_(1, takers, -taken[1].T)
    return acct + torch.stack([d_pos, d_cash], 2), taken[0].sum(0), trades


def _mm_quote(p: EnvParams, c: Consts, book: BookState, inventory: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The maker's wanted quote this step: ``(row, price, qty, valid)`` ``[B]`` (bid on odd steps)."""
    bg, tick = p.background, p.book.tick
    B = inventory.shape[0]
    others = (book.qty > 0) & (book.owner != p.mm_owner)
    first = others.to(torch.uint8).argmax(2, keepdim=True)  # [B, 2, 1]
    shows = others.gather(2, first).squeeze(2)  # [B, 2]
    best = book.price.gather(2, first).squeeze(2)
    bb, ba = best[:, BID], best[:, ASK]
    hb, ha = shows[:, BID], shows[:, ASK]
    last = book.last_price
    s = torch.where(
        hb & ha,
        (bb + ba).double() * 0.5,
        torch.where(last > 0, last.double(), torch.where(hb, bb.double(), torch.where(ha, ba.double(), c.ref))),
    ) / tick
    r = s - inventory.double() * bg.skew
    bid_t = (r - bg.spread / 2 + 1e-9).floor().to(DTYPE)
    ask_t = (r + bg.spread / 2 - 1e-9).ceil().to(DTYPE)
    if bg.min_spread_ticks > 1:
        short = (bg.min_spread_ticks - (ask_t - bid_t)).clamp(min=0)
        odd = short % 2
        bid_t = bid_t - short // 2 - torch.where(inventory >= 0, odd, 0)
        ask_t = ask_t + short // 2 + torch.where(inventory < 0, odd, 0)
    bid_t = torch.where(ha, torch.minimum(bid_t, ba // tick - 1), bid_t)
    ask_t = torch.where(hb, torch.maximum(ask_t, bb // tick + 1), ask_t).clamp(min=1)
    is_bid = (t % 2) == 1
    row = torch.where(is_bid, BID, ASK)
    quote = torch.where(is_bid, bid_t, ask_t)
    qty = torch.where(is_bid, bg.max_inventory - inventory, bg.max_inventory + inventory).clamp(max=bg.quote_qty)
    valid = (qty > 0) & (quote >= 1)
    return row, quote * tick, qty.clamp(min=0), valid


# ---- gymnasium -------------------------------------------------------------------------------------
class VectorTradingEnv(gymnasium.vector.VectorEnv):
    """``B`` copies of ``exchange/Trading-v0`` on batched torch books, stepped as one.

    ## Description

    Each env is one book of ``TradingEnv``'s market (preset ``nyse`` or ``cme``) with one
    learning agent (owner 0) and ``vector.background``'s batched noise traders and market
    maker. Steps follow ``vector.env``'s module docstring; nothing leaves the device.

    ## Action Space

    ``single_action_space`` is ``TradingEnv``'s: ``MultiDiscrete([3, 2 * max_offset + 1,
    len(qty_buckets), 2])`` (side 0 sell / 1 none / 2 buy, price offset from the touch, size
    bucket, cancel all first), or its ``Box`` variant with ``action_type="box"``.
    ``action_space`` is ``batch_space`` of it. ``step`` takes a ``[B, n]`` tensor (or array).

    ## Observation Space

    ``single_observation_space`` is ``TradingEnv``'s ``Box`` (bounds from
    ``envs.observation.observation_bounds``); observations are ``[B, 4 * depth + 8]``
    ``float32`` tensors on ``device``, every feature as ``envs.observation`` and clipped.
    With ``obs_type="dict"`` it is ``TradingEnv``'s ``Dict`` (``bids``, ``asks``,
    ``market``, ``agent``; ``envs.observation.dict_observation_space``) and observations
    (and ``info["final_obs"]``) are dicts of ``[B, ...]`` tensors holding the same values,
    split from the flat layout by ``envs.observation.as_dict``'s slices.

    ## Rewards

    As ``TradingEnv``: the change of the learner's equity (cash plus position at the mark)
    in ticks x lots, minus ``inventory_penalty * |inventory|``, minus half the spread times
    ``|inventory|`` on the last step with ``liquidation_cost``, over ``reward_scale``;
    ``[B]`` ``float32``.

    ## Episode End

    Never terminates; truncated after ``horizon_steps`` (1000) steps. Auto-reset is
    ``AutoresetMode.SAME_STEP`` (``metadata["autoreset_mode"]``): the step that truncates
    returns the next episode's first observation, the last one in ``info["final_obs"]``
    (all envs; ``info["_final_obs"]`` marks those that ended).

    ## Arguments

    ``VectorTradingEnv(num_envs, config=None, background=LIGHT, capacity=32, device="cpu",
    compile=False, dtype=None, native=None, native_threads=1, **overrides)``: ``config`` a
    ``TradingConfig`` whose fields ``overrides`` replace; ``background`` a ``vector.background.BackgroundParams``;
    ``capacity`` order slots per side of each book; ``compile`` runs the book transition
    through ``vector.book.compiled_step()`` and the noise commands and the accounting,
    observation and reset phase through ``torch.compile`` (same results; the first step compiles, about a minute cold on a
    2-core CPU, seconds from inductor's cache); ``dtype`` the books' state dtype (``EnvParams.make``:
    int32 where the env's order ids and prices fit, the default, else int64; the same
    trajectories either way); ``native`` runs each step as one C call
    (``vector.native_env.FusedStep``: every phase of every book, in place; the torch step's
    results bit for bit, about 7x faster than the compiled torch step): None (the default)
    where the device is the CPU, ``compile`` is off, the configuration is covered and a C
    compiler builds it, else the torch step; True requires it (``NativeUnavailable`` without
    a C compiler, ValueError otherwise); False never. ``native_threads``: its OpenMP threads
    (the results do not depend on them). With ``native`` the state is stepped in place and
    ``env.state`` returns a snapshot of it (a copy); assigning ``env.state`` is allowed.
    ``reset(seed=s)`` seeds env ``i`` with ``s + i``: an env's trajectory depends only on
    its own seed and actions.

    ## Version History

    * v0: Initial version.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    n_learners = 1
    variant = TRADING

    def __init__(
        self,
        num_envs: int,
        config: TradingConfig | None = None,
        background: BackgroundParams = LIGHT,
        capacity: int = 32,
        device: torch.device | str = "cpu",
        compile: bool = False,
        dtype: str | None = None,
        native: bool | None = None,
        native_threads: int = 1,
        **overrides: Any,
    ) -> None:
        cfg = config if config is not None else TradingConfig()
        if overrides:
            cfg = replace(cfg, **overrides)
        self.params = EnvParams.make(cfg, background, capacity, self.n_learners, self.variant, dtype)
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.consts = Consts(self.params, num_envs, self.device, compile, native, native_threads)
        self.config = cfg
        low, high = observation_bounds(cfg)
        one_action = action_space(self.params.nvec(), cfg.action_type)  # the scalar envs' own
        one_obs = dict_observation_space(cfg) if cfg.obs_type == "dict" else spaces.Box(low, high, dtype=np.float32)
        self.single_observation_space, self.single_action_space = self._agent_spaces(one_obs, one_action)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._state: EnvState | None = None
        self._fused: Any = None  # vector.native_env.FusedStep bound to the state, with native
        self._seed: int | None = None
        # obs_type="dict": per key, the flat features it holds, as an index tensor of the key's
        # shape (envs.observation.as_dict applied to the feature numbers 0..size-1)
        size = observation_size(cfg)
        self._dict_index: dict[str, Tensor] | None = None
        if cfg.obs_type == "dict":
            split = as_dict(np.arange(size), cfg)
            self._dict_index = {k: torch.as_tensor(v, dtype=DTYPE, device=self.device) for k, v in split.items()}
        assert size == low.shape[0]

    def _agent_spaces(self, obs: spaces.Space, action: spaces.Space) -> tuple[spaces.Space, spaces.Space]:
        return obs, action

    @property
    def state(self) -> EnvState | None:
        """The envs' state. With ``native`` the live state is stepped in place, so this is a
        snapshot (a copy, as immutable as the torch step's states); assigning one rebinds it."""
        if self._fused is not None:
            from vector.native_env import copy_state

            return copy_state(self._state)
        return self._state

    @state.setter
    def state(self, s: EnvState | None) -> None:
        self._fused = None
        self._state = s
        if s is not None and self.consts.native:
            from vector.native_env import FusedStep, copy_state

            self._state = copy_state(s)  # (contiguous, and not shared with the caller)
            self._fused = FusedStep(self.params, self.consts, self._state, self.consts.native_threads)

    def _observation(self, x: Tensor) -> Tensor | dict[str, Tensor]:
        """The flat ``[B, N, obs]`` observations as this env returns them (see Observation Space)."""
        x = self._out(x)
        if self._dict_index is None:
            return x
        return {k: x[..., i] for k, i in self._dict_index.items()}

    def _out(self, x: Tensor) -> Tensor:
        return x[:, 0]  # one learner: [B, 1, ...] -> [B, ...]

    def _in(self, action: Tensor) -> Tensor:
        return action.unsqueeze(1)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Tensor | dict[str, Tensor], dict[str, Any]]:
        """Reset every env: with ``seed``, env ``i`` gets seed ``seed + i`` (or ``seed[i]``);
        without, each env starts its next episode with its own key."""
        super().reset(seed=seed if isinstance(seed, int) else None)
        p, c = self.params, self.consts
        if seed is None and self._state is not None:
            self.state, obs = _begin(p, c, self._state.key, self._state.episode + 1)
        else:
            if seed is None:
                seed = int(self.np_random.integers(2**62))
            seeds = torch.as_tensor(seed if isinstance(seed, list) else [seed + i for i in range(self.num_envs)], dtype=DTYPE)
            if seeds.shape != (self.num_envs,):
                raise ValueError(f"need one seed per env ({self.num_envs}), got {seeds.shape}")
            self.state, obs = reset_state(p, c, seeds.to(self.device))
        return self._observation(obs), {}

    def step(self, actions: Any) -> tuple[Tensor | dict[str, Tensor], Tensor, Tensor, Tensor, dict[str, Any]]:
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        a = torch.as_tensor(actions, device=self.device)
        if self._fused is not None:
            obs, reward, done, info = self._fused.step(self._in(a), fresh=True)  # new tensors, as step_state's
        else:
            self.state, obs, reward, done, info = step_state(self.params, self.consts, self._state, self._in(a))
        info["final_obs"] = self._observation(info["final_obs"])
        info["rejected"] = self._out(info["rejected"])
        return self._observation(obs), self._out(reward), torch.zeros_like(done), done, info


class VectorMarketMakingEnv(VectorTradingEnv):
    """``B`` copies of ``exchange/MarketMaking-v0`` on batched torch books, stepped as one.

    ## Description

    ``VectorTradingEnv`` (same market, background, observation, reward, episode end and
    arguments) with ``MarketMakingEnv``'s action: the learner keeps one bid and one ask of
    ``quote_qty`` lots working. Its quotes are decided on the book it observed (before the
    step's cancels, as the scalar env acts at the start of a step), its stale quotes are
    cancelled in the step's one compaction, and the bid then the ask enter one
    ``vector.book.step`` each, before the background's rounds (``vector.env._quotes``).

    ## Action Space

    ``single_action_space`` is ``MarketMakingEnv``'s: ``MultiDiscrete([n_offsets,
    n_offsets])``, the bid's and the ask's distance in ticks behind the other traders' best
    of that side (0 joins it), or its ``Box(-1, 1, (2,))`` variant with
    ``action_type="box"``. A quote is clamped one tick off the other traders' opposite
    best (it never takes their liquidity) and to at least one tick; with its side empty,
    the other side's best one tick away, else the mark rounded to the tick, stands in for
    the touch. A standing quote at the wanted price and full size stays (keeping its queue
    position); one that differs is cancelled and entered anew (what the scalar env's
    ``Modify`` does to a new price or a larger size), and like a ``Modify`` not
    risk-checked. A side without a quote gets a new order, refused as the venue's
    ``RiskLimits`` refuse it (``max_position`` if it filled, ``max_open_orders``; the bid
    is checked first): that side is not quoted this step, counted in ``info["rejected"]``.

    ## Observation Space, Rewards, Episode End, Arguments

    As ``VectorTradingEnv`` (``obs_type="dict"`` included); ``n_offsets`` and ``quote_qty``
    configure the action. Differences from the scalar env besides the background's (see
    ``docs/vector_envs.md``): no self-match prevention, so with both sides of the book
    empty of other traders a bid and an ask at the same price trade with each other
    (leaving position and cash unchanged); a re-quote takes a new order id.

    ## Version History

    * v0: Initial version.
    """

    variant = MARKET_MAKING


class VectorMultiTradingEnv(VectorTradingEnv):
    """``B`` books with ``N`` learners each (self-play): ``VectorTradingEnv``'s machinery.

    Learner ``i`` of a book is owner ``i``; the learners' orders enter one
    ``vector.book.step`` each, after the step's cancels, in an order that rotates by one
    every step (learner ``(r + t) % N`` has round ``r`` at step ``t``); each is priced from
    the touch as the book stands after the cancels (all learners decide on the same view).
    ``single_observation_space`` is ``Box`` ``(N, 4 * depth + 8)`` (each row the scalar
    layout for one learner), ``single_action_space`` ``MultiDiscrete`` ``(N, n)``; batched,
    observations are ``[B, N, obs]``, actions ``[B, N, n]`` and rewards ``[B, N]``;
    truncation and auto-reset are per book (``[B]``). With ``obs_type="dict"`` each key of
    the scalar ``Dict`` gets the leading ``N`` axis (observations ``[B, N, ...]`` per key).
    Arguments as ``VectorTradingEnv`` plus ``n_agents``; the trading variant only.
    """

    def __init__(self, num_envs: int, n_agents: int = 2, **kwargs: Any) -> None:
        self.n_learners = n_agents
        super().__init__(num_envs, **kwargs)

    def _agent_spaces(self, obs: spaces.Space, action: spaces.Space) -> tuple[spaces.Space, spaces.Space]:
        N = self.n_learners
        if isinstance(obs, spaces.Dict):
            many_obs: spaces.Space = spaces.Dict({k: _per_learner(box, N) for k, box in obs.spaces.items()})
        else:
            many_obs = _per_learner(obs, N)
        if isinstance(action, spaces.MultiDiscrete):
            many_action: spaces.Space = spaces.MultiDiscrete(np.tile(action.nvec, (N, 1)))
        else:
            many_action = spaces.Box(-1.0, 1.0, shape=(N,) + action.shape, dtype=np.float32)
        return many_obs, many_action

    def _out(self, x: Tensor) -> Tensor:
        return x

    def _in(self, action: Tensor) -> Tensor:
        return action


def _per_learner(box: spaces.Box, n: int) -> spaces.Box:
    """``box`` with a leading learner axis of ``n``."""
    reps = (n,) + (1,) * len(box.shape)
    return spaces.Box(np.tile(box.low, reps), np.tile(box.high, reps), dtype=np.float32)

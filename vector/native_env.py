"""The whole vector env step in one C call: ``native_step_state`` (``vector/native_env.c``, ctypes).

``native_step_state(p, c, s, action)`` has ``vector.env.step_state``'s signature and results,
bit for bit (``tests/test_vector_native_env.py`` runs both from the same reset and compares
the state, observation, reward, flags and ``info`` after every step): one C loop over the
books, each running every phase of the step (cancels, the learners' orders, the maker's
quote, the noise rounds, accounts, reward, observation, auto-reset) while it is in cache,
the book transition being ``vector/native.c``'s own. No torch op runs per phase.

Two APIs: ``FusedStep(p, c, state)`` binds a state (stepped in place) and its output
buffers once, so a call only passes the actions (the fast path: ``bench.vector_env_native``);
``native_step_state`` is the pure function (it steps a copy of ``s``).

Build: as ``vector.native`` (its compiler, cache directory and optional flags), plus
``-ffp-contract=off`` (no fused multiply-add: the float arithmetic must round as torch's) and
``-lm``; the library name is keyed by a hash of both C sources, the compiler, the flags and the
machine. ``NativeUnavailable`` without a compiler.

Limits (``unsupported(p)`` names the first one a config hits; ``supported(p)``): CPU
tensors; every ``EnvParams`` the env accepts is covered (both variants, ``N`` learners,
``fifo`` and pro rata, int32 and int64 books, box or discrete actions, any background), up
to 8 action components, 16 size buckets and 64 noise traders. An action outside the action
space is refused (ValueError) where the torch step would index out of range or act on it.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
from dataclasses import fields
from pathlib import Path

import torch
from torch import Tensor

from vector import native as vn
from vector.book import BookState
from vector.env import MARKET_MAKING, Consts, EnvParams, EnvState

SOURCE = Path(__file__).with_name("native_env.c")
_FLAGS = vn._BASE_FLAGS + ("-ffp-contract=off",)
_LIBS = ("-lm",)
_MAX_ACTIONS, _MAX_BUCKETS, _MAX_NOISE = 8, 16, 64


class VeParams(ctypes.Structure):
    """``ve_params`` of native_env.c (same fields, same order)."""

    _fields_ = [(name, ctypes.c_int64) for name in (
        "n_learners", "market_making", "n_owners", "noise_owner", "mm_owner", "learner_rounds",
        "capacity", "tick", "big",
        "horizon_steps", "max_position", "max_open_orders", "cancel_all", "box_actions", "n_actions",
        "max_offset", "quote_qty", "depth", "liquidation_cost", "starting_cash",
        "n_noise", "noise_rounds", "arrival_thr", "cancel_thr", "market_thr",
        "noise_min_qty", "noise_max_qty", "depth_ticks", "max_age_steps", "noise_max_open",
        "market_maker", "max_inventory", "mm_quote_qty", "min_spread_ticks", "post_only",
        "warm_levels", "ref_tick",
    )] + [("nvec", ctypes.c_int64 * _MAX_ACTIONS), ("buckets", ctypes.c_int64 * _MAX_BUCKETS)] + [
        (name, ctypes.c_double) for name in (
            "ref", "warm_mark", "skew", "half_spread", "size_scale", "max_ticks", "reward_scale", "inventory_penalty",
            "half_default", "two_tick",
        )
    ]


_BUFFERS = (  # ve_buffers of native_env.c, in order
    "price", "qty", "order_id", "owner", "top", "last_price", "overflow", "acct", "key", "episode", "t", "equity", "mid",
    "action", "obs", "reward", "done", "messages", "trades", "rejected", "overflow_out", "final_obs", "low", "high",
)


# ---- build -------------------------------------------------------------------------------------------
def _library_path(cc: str, extra: tuple[str, ...]) -> Path:
    """The cached library's path for both sources, the compiler, the flags and the machine."""
    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), vn.SOURCE.read_bytes(), os.path.realpath(cc).encode(), repr((_FLAGS, extra, _LIBS)).encode(),
                 platform.machine().encode(), vn._cpu_flags().encode()):
        h.update(part)
        h.update(b"\0")
    return vn.cache_dir() / f"vector_native_env_{h.hexdigest()[:20]}.so"


def _build(cc: str) -> Path:
    """Compile ``SOURCE`` with the first of ``vector.native``'s optional flag sets the
    compiler takes (atomically: a temporary file renamed into place); its path."""
    errors = []
    for extra in vn._OPTIONAL_FLAGS:
        target = _library_path(cc, extra)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            cmd = [cc, *_FLAGS, *extra, str(SOURCE), "-o", tmp, *_LIBS]
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=vn._TIMEOUT_S)
            if run.returncode == 0:
                os.replace(tmp, target)
                return target
            errors.append(f"$ {' '.join(cmd)}\n{run.stderr.strip()}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise vn.NativeUnavailable(f"building {SOURCE.name} with {cc} failed:\n" + "\n".join(errors[-1:]))


@functools.cache
def library() -> ctypes.CDLL:
    """The fused env step's library, built on first use (``NativeUnavailable`` if it cannot be)."""
    cc = vn.compiler()
    if cc is None:
        raise vn.NativeUnavailable("vector.native_env needs a C compiler: 'cc', 'gcc' or $CC not found on the PATH")
    if not SOURCE.exists() or not vn.SOURCE.exists():
        raise vn.NativeUnavailable(f"vector.native_env: {SOURCE.name} or {vn.SOURCE.name} is missing")
    lib = ctypes.CDLL(str(_build(cc)))
    for name in ("ve_step_i64", "ve_step_i32"):
        fn = getattr(lib, name)
        fn.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int)
        fn.restype = ctypes.c_int
    return lib


def available() -> bool:
    """Whether the fused step can run here (builds the library if needed)."""
    try:
        library()
    except vn.NativeUnavailable:
        return False
    return True


# ---- configurations ------------------------------------------------------------------------------
def unsupported(p: EnvParams) -> str | None:
    """Why the fused step cannot run ``p`` (None: it can)."""
    cfg, bg = p.config, p.background
    if p.n_actions > _MAX_ACTIONS:
        return f"{p.n_actions} action components (at most {_MAX_ACTIONS})"
    if len(cfg.qty_buckets) > _MAX_BUCKETS:
        return f"{len(cfg.qty_buckets)} size buckets (at most {_MAX_BUCKETS})"
    if bg.n_noise > _MAX_NOISE:
        return f"{bg.n_noise} noise traders (at most {_MAX_NOISE})"
    if p.book.dtype not in ("int32", "int64"):
        return f"book dtype {p.book.dtype}"
    return None


def supported(p: EnvParams) -> bool:
    """Whether ``native_step_state`` covers ``p`` (``unsupported`` says why not)."""
    return unsupported(p) is None


@functools.cache
def packed_params(p: EnvParams, big: int, ref: float, warm_mark: float) -> VeParams:
    """``p`` (and the ``Consts`` values a step reads) as ``ve_params``, made once per params."""
    cfg, bg, bp = p.config, p.background, p.book
    nvec = p.nvec()
    v = VeParams(
        n_learners=p.n_learners, market_making=p.variant == MARKET_MAKING, n_owners=p.n_owners,
        noise_owner=p.noise_owner, mm_owner=p.mm_owner, learner_rounds=p.learner_rounds,
        capacity=bp.capacity, tick=bp.tick, big=big,
        horizon_steps=cfg.horizon_steps, max_position=cfg.max_position, max_open_orders=cfg.max_open_orders,
        cancel_all=cfg.cancel_all, box_actions=cfg.action_type == "box", n_actions=len(nvec),
        max_offset=cfg.max_offset, quote_qty=cfg.quote_qty, depth=cfg.depth, liquidation_cost=bool(cfg.liquidation_cost),
        starting_cash=cfg.starting_cash,
        n_noise=bg.n_noise, noise_rounds=bg.noise_rounds, arrival_thr=int(round(bg.p_arrival * 65536)),
        cancel_thr=int(round(bg.p_cancel * 65536)), market_thr=int(round((bg.p_cancel + bg.p_market) * 65536)),
        noise_min_qty=bg.min_qty, noise_max_qty=bg.max_qty, depth_ticks=bg.depth_ticks, max_age_steps=bg.max_age_steps,
        noise_max_open=bg.max_open_orders,
        market_maker=bg.market_maker, max_inventory=bg.max_inventory, mm_quote_qty=bg.quote_qty,
        min_spread_ticks=bg.min_spread_ticks, post_only=bp.post_only,
        warm_levels=bg.warm_levels, ref_tick=round(cfg.reference / bp.tick),
        ref=ref, warm_mark=warm_mark, skew=bg.skew, half_spread=bg.spread / 2, size_scale=cfg.size_scale,
        max_ticks=cfg.max_ticks, reward_scale=cfg.reward_scale, inventory_penalty=cfg.inventory_penalty,
        half_default=cfg.max_ticks / 2, two_tick=2.0 * bp.tick,
    )
    v.nvec[: len(nvec)] = nvec
    v.buckets[: len(cfg.qty_buckets)] = list(cfg.qty_buckets)
    return v


# ---- the step ------------------------------------------------------------------------------------
_KERNELS = {torch.int64: "ve_step_i64", torch.int32: "ve_step_i32"}
_STATE_FIELDS = ("acct", "key", "episode", "t", "equity", "mid")
_OUT_AT = {k: _BUFFERS.index(k) for k in ("obs", "final_obs", "reward", "done", "messages", "trades", "rejected", "overflow_out")}


class FusedStep:
    """The fused env step bound to one state, stepped in place, and its output buffers.

    ``step(action)`` returns ``(obs, reward, truncated, info)`` as ``step_state`` does, in
    buffers reused by the next call (copy what must outlive it), or in new tensors with
    ``step(action, fresh=True)``; ``state`` is the bound
    ``EnvState``, whose tensors each call rewrites. ``threads``: OpenMP threads over the
    books (results do not depend on it)."""

    def __init__(self, p: EnvParams, c: Consts, state: EnvState, threads: int = 1) -> None:
        why = unsupported(p)
        if why is not None:
            raise ValueError(f"native_env: unsupported configuration: {why}")
        book = state.book
        if book.qty.device.type != "cpu":
            raise ValueError(f"native_env runs on CPU tensors; the state is on {book.qty.device}")
        dt = book.qty.dtype
        if dt not in _KERNELS or dt != p.book.state_dtype:
            raise ValueError(f"native_env: book dtype {dt} is not the params' {p.book.state_dtype}")
        tensors = [getattr(book, f.name) for f in fields(book)] + [getattr(state, f) for f in _STATE_FIELDS]
        if not all(t.is_contiguous() for t in tensors):
            raise ValueError("native_env: the state's tensors must be contiguous (native_step_state copies them)")
        self.p, self.state, self.threads = p, state, max(1, threads)
        self.lib, self.kernel = library(), _KERNELS[dt]
        B, N, F = state.batch, p.n_learners, c.low.shape[0]
        self.batch, self.box = B, p.config.action_type == "box"
        self.action_shape = (B, N, p.n_actions)
        self.params = packed_params(p, int(c.big), float(c.ref), float(c.warm_mark))
        self.book_params = vn._packed_params(p.book)
        self._out_shapes = {
            "obs": ((B, N, F), torch.float32), "final_obs": ((B, N, F), torch.float32), "reward": ((B, N), torch.float32),
            "done": ((B,), torch.bool), "messages": ((B,), torch.int64), "trades": ((B,), torch.int64),
            "rejected": ((B, 1), torch.int64) if p.variant == MARKET_MAKING else ((B, N), torch.bool),
            "overflow_out": ((B,), torch.bool),
        }
        self.low, self.high = c.low.float().contiguous(), c.high.float().contiguous()
        buffers = dict(zip(("price", "qty", "order_id", "owner", "top", "last_price", "overflow"), tensors[:7]))
        buffers.update(zip(_STATE_FIELDS, tensors[7:]))
        buffers.update(low=self.low, high=self.high)
        self._ptrs = (ctypes.c_void_p * len(_BUFFERS))(*(buffers[k].data_ptr() if k in buffers else 0 for k in _BUFFERS))
        self._action_at = _BUFFERS.index("action")
        self._new_outputs()

    def _new_outputs(self) -> None:
        """Fresh output buffers (``torch.empty``), bound for the next call."""
        out = {k: torch.empty(shape, dtype=dt) for k, (shape, dt) in self._out_shapes.items()}
        for k, v in out.items():
            self._ptrs[_OUT_AT[k]] = v.data_ptr()
        self.obs, self.final_obs, self.reward, self.done = out["obs"], out["final_obs"], out["reward"], out["done"]
        self.messages, self.trades, self.rejected, self.overflow = out["messages"], out["trades"], out["rejected"], out["overflow_out"]

    def _actions(self, action: Tensor) -> Tensor:
        """``action`` as the kernel reads it: ``[B, N, n]`` contiguous int64 (float64 for box actions)."""
        a = torch.as_tensor(action)
        if a.shape != self.action_shape:
            raise ValueError(f"native_env: actions of shape {tuple(a.shape)}, expected {self.action_shape}")
        if self.box:
            return a.to(torch.float64).contiguous()
        if a.is_floating_point():
            raise ValueError("native_env: discrete actions must be integers")
        return a.to(torch.int64).contiguous()

    def step(self, action: Tensor, fresh: bool = False) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """One env step of every book, in place: ``(obs, reward, truncated, info)``. With
        ``fresh`` the outputs are new tensors (no later call writes them; cheaper than
        copying the reused buffers), else the reused buffers."""
        a = self._actions(action)
        if fresh:
            self._new_outputs()
        self._ptrs[self._action_at] = a.data_ptr()
        threads = max(1, min(self.threads, self.batch // vn._BOOKS_PER_THREAD))
        err = getattr(self.lib, self.kernel)(self._ptrs, ctypes.byref(self.params), self.book_params, self.batch, threads)
        if err:
            if err == 1:
                raise ValueError("native_env: an action outside the action space (nothing was stepped)")
            raise MemoryError("native_env: out of memory (the state is left part stepped)")
        info = {"messages": self.messages, "trades": self.trades, "rejected": self.rejected, "overflow": self.overflow,
                "final_obs": self.final_obs, "_final_obs": self.done}
        return self.obs, self.reward, self.done, info


def copy_state(s: EnvState) -> EnvState:
    """A contiguous copy of ``s`` (every tensor cloned)."""
    clone = lambda t: t.clone(memory_format=torch.contiguous_format)  # noqa: E731
    return EnvState(BookState(*(clone(getattr(s.book, f.name)) for f in fields(s.book))),
                    *(clone(getattr(s, f.name)) for f in fields(s) if f.name != "book"))


def native_step_state(
    p: EnvParams, c: Consts, s: EnvState, action: Tensor, threads: int = 1
) -> tuple[EnvState, Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """``vector.env.step_state`` in C, bit for bit: ``(state, obs, reward, truncated, info)``
    (pure: ``s`` is copied, then stepped in place)."""
    new = copy_state(s)
    obs, reward, done, info = FusedStep(p, c, new, threads).step(action)
    return new, obs, reward, done, info

"""A hand-written CPU kernel of ``vector.book.step``: ``native_step``, C (``vector/native.c``) via ctypes.

``native_step(state, params, cmd)`` has ``vector.book.step``'s signature and results, bit for
bit: every ``StepOut`` field and every state tensor (``tests/test_vector_native.py`` drives
both with the same random command streams and compares them after every step, and the
scalar engine too). Instead of a fixed sequence of tensor operations over every slot, it
runs one C loop over the books, each validating its command and matching over the live
orders it reaches only, and writes the new state into fresh tensors: like ``step`` it is
pure (the old state is never written; ``StepOut.maker_*`` are the old state's tensors).

``vector.book.step`` stays the reference, and the only path on CUDA (and for any other
device): ``native_step`` takes CPU tensors only. ``vector.book.step_fn(native=True)``
selects it.

Build: on first use ``native.c`` is compiled with the system C compiler (``$CC``, else ``cc``
or ``gcc``), ``-std=c11 -O3 -shared -fPIC`` plus ``-march=native`` and ``-fopenmp`` where the
compiler takes them, into a cache directory (``$RESEARCH_EXCHANGE_NATIVE_CACHE``, else
``$XDG_CACHE_HOME/research-exchange`` or ``~/.cache/research-exchange``) under a name keyed by
a hash of the source, the compiler, the flags and the machine; the library is written to a
temporary file and renamed into place, so concurrent processes (pytest workers) never load
a partial one. Without a compiler ``native_step`` raises ``NativeUnavailable`` naming what is
missing; ``available()`` says whether it can run.

Limits: CPU, contiguous tensors (others are copied first), int64 or int32 state. The state
must have the layout ``vector.hash.check_invariants`` checks (live orders packed in
priority order, canonical empty slots, unique ids), as every state ``init`` and ``step``
produce: the kernel stops at each row's live orders. ``threads`` (default 1) splits the
books among OpenMP threads when the library has OpenMP and the batch is large enough; the
results do not depend on it (on a loaded 2-vCPU machine 2 threads were several times
slower than 1: a fork/join waits for its slowest thread).
"""

from __future__ import annotations

import array
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from vector.book import BookParams, BookState, Commands, StepOut, _command_in

SOURCE = Path(__file__).with_name("native.c")
CACHE_ENV = "RESEARCH_EXCHANGE_NATIVE_CACHE"  # overrides the cache directory
_BASE_FLAGS = ("-std=c11", "-O3", "-shared", "-fPIC")
_OPTIONAL_FLAGS = (("-march=native", "-fopenmp"), ("-fopenmp",), ("-march=native",), ())  # tried in this order
_BOOKS_PER_THREAD = 256  # below this many books per thread, one thread (a fork/join costs more than it saves)
_TIMEOUT_S = 120


class NativeUnavailable(RuntimeError):
    """The native kernel cannot be built or loaded here (no C compiler, a failed build)."""


def compiler() -> str | None:
    """The C compiler to build with: ``$CC``, else ``cc`` or ``gcc`` on the PATH (None: none)."""
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc)
    return shutil.which("cc") or shutil.which("gcc")


def cache_dir() -> Path:
    """Where built libraries are kept (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "research-exchange"


def _cpu_flags() -> str:
    """The CPU's feature flags (Linux), so a library built with ``-march=native`` is never
    loaded on another CPU sharing the cache; empty where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def _library_path(cc: str) -> Path:
    """The cached library's path for this source, compiler, flag choices and machine."""
    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), os.path.realpath(cc).encode(), repr((_BASE_FLAGS, _OPTIONAL_FLAGS)).encode(),
                 platform.machine().encode(), _cpu_flags().encode()):
        h.update(part)
        h.update(b"\0")
    return cache_dir() / f"vector_native_{h.hexdigest()[:20]}.so"


def _build(cc: str, target: Path) -> None:
    """Compile ``SOURCE`` into ``target`` with the first optional flags the compiler takes
    (atomically: a temporary file renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    errors = []
    try:
        for extra in _OPTIONAL_FLAGS:
            cmd = [cc, *_BASE_FLAGS, *extra, str(SOURCE), "-o", tmp]
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S)
            if run.returncode == 0:
                os.replace(tmp, target)
                return
            errors.append(f"$ {' '.join(cmd)}\n{run.stderr.strip()}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    raise NativeUnavailable(f"building {SOURCE.name} with {cc} failed:\n" + "\n".join(errors[-1:]))


@functools.cache
def library() -> ctypes.CDLL:
    """The kernel library, built on first use (``NativeUnavailable`` if it cannot be)."""
    cc = compiler()
    if cc is None:
        wanted = f"$CC={os.environ['CC']!r}" if os.environ.get("CC") else "'cc' or 'gcc'"
        raise NativeUnavailable(f"vector.native needs a C compiler: {wanted} not found on the PATH")
    if not SOURCE.exists():
        raise NativeUnavailable(f"vector.native: {SOURCE} is missing (not installed with the package)")
    path = _library_path(cc)
    if not path.exists():
        _build(cc, path)
    lib = ctypes.CDLL(str(path))
    for name in ("vb_step_i64", "vb_step_i32"):
        fn = getattr(lib, name)
        fn.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int)
        fn.restype = ctypes.c_int
    lib.vb_openmp.restype = ctypes.c_int
    return lib


def available() -> bool:
    """Whether ``native_step`` can run here (builds the library if needed)."""
    try:
        library()
    except NativeUnavailable:
        return False
    return True


def openmp() -> bool:
    """Whether the library was built with OpenMP (else ``threads`` is ignored)."""
    return bool(library().vb_openmp())


@functools.cache
def _packed_params(params: BookParams) -> ctypes.Array:
    """``params`` as ``vb_params`` (native.c), made once per params."""
    values = (
        params.capacity,
        params.rule == "pro_rata",
        params.top,
        params.min_alloc,
        params.tick,
        params.lot,
        params.max_qty,
        params.protection_ticks * params.tick,
        params.market_as_protected,
        sum(1 << t for t in params.order_types),
        sum(1 << t for t in params.tifs),
        params.post_only,
        params.max_price,
        params.empty_ask,
    )
    return (ctypes.c_int64 * len(values))(*(int(v) for v in values))


_KERNELS = {torch.int64: "vb_step_i64", torch.int32: "vb_step_i32"}  # the kernel per state dtype


def native_step(
    state: BookState, params: BookParams, cmd: Commands, threads: int = 1
) -> tuple[BookState, StepOut]:
    """``vector.book.step`` in C: the same new state and ``StepOut``, bit for bit (CPU only).

    ``threads``: OpenMP threads over the books (see the module docstring)."""
    lib = library()
    if state.qty.device.type != "cpu":
        raise ValueError(f"native_step runs on CPU tensors; on {state.qty.device} use vector.book.step")
    dt = state.qty.dtype
    if dt not in _KERNELS:
        raise ValueError(f"native_step: state dtype {dt} is not int64 or int32")
    B, _, N = state.qty.shape
    if N != params.capacity:
        raise ValueError(f"state capacity {N} is not params.capacity {params.capacity}")
    if (cmd.kind.dtype, cmd.order_id.dtype, cmd.trader.dtype, cmd.side.dtype, cmd.qty.dtype, cmd.price.dtype,
            cmd.type.dtype, cmd.tif.dtype) == (dt,) * 8:
        wide = None  # (the common case: no narrowing, as _command_in decides)
    else:
        cmd, wide = _command_in(cmd, dt)
    ins = [state.price, state.qty, state.order_id, state.owner, state.top, state.last_price, state.overflow]
    ins += [cmd.kind, cmd.order_id, cmd.trader, cmd.side, cmd.qty, cmd.price, cmd.type, cmd.tif, cmd.post_only]
    for t in ins[7:]:
        if t.shape != (B,):
            raise ValueError(f"native_step: a command field has shape {tuple(t.shape)}, not ({B},)")
    if cmd.post_only.dtype != torch.bool or state.top.dtype != torch.bool or state.overflow.dtype != torch.bool:
        raise ValueError("native_step: post_only, top and overflow must be bool tensors")
    ins = [t.contiguous() for t in ins]
    empty = functools.partial(torch.empty, dtype=dt)
    price2, qty2, oid2, owner2 = (empty((B, 2, N)) for _ in range(4))
    top2, last2, overflow2 = torch.empty((B, 2), dtype=torch.bool), empty(B), torch.empty(B, dtype=torch.bool)
    status, filled, rested, cancelled, taker_row = (empty(B) for _ in range(5))
    fill_qty, fill_price, fill_id, fill_owner = (empty((B, N)) for _ in range(4))
    outs = [price2, qty2, oid2, owner2, top2, last2, overflow2]
    outs += [status, fill_qty, fill_price, fill_id, fill_owner, filled, rested, cancelled, taker_row]
    ptrs = [t.data_ptr() for t in ins]
    ptrs.append(0 if wide is None else wide.contiguous().data_ptr())
    ptrs += [t.data_ptr() for t in outs]
    threads = max(1, min(threads, B // _BOOKS_PER_THREAD))
    if B:
        args = array.array("Q", ptrs)
        getattr(lib, _KERNELS[dt])(args.buffer_info()[0], _packed_params(params), B, threads)
    new_state = BookState(price2, qty2, oid2, owner2, top2, last2, overflow2)
    out = StepOut(
        status=status,
        fill_qty=fill_qty,
        fill_price=fill_price,
        fill_maker_id=fill_id,
        fill_maker_owner=fill_owner,
        maker_price=state.price,
        maker_id=state.order_id,
        maker_owner=state.owner,
        filled=filled,
        rested=rested,
        cancelled=cancelled,
        taker_row=taker_row,
    )
    return new_state, out

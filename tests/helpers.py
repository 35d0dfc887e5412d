"""A tiny DSL for scenario tests that read like the rules they check.

    eng = engine(cme())
    book(eng, '''
        side  price  qty  trader  id
        buy   10000   10     1     1    # TOP
        buy   10000    5     2     2
    ''')
    assert fills(eng.submit(sell(6, 10000))) == [(1, 6, 10000)]

``book`` seeds resting orders from a table (columns ``side price qty trader [id]``, then
optional ``key=value`` instructions: ``display=``, ``smp=``, ``mode=``, ``tif=day``,
``post_only``); rows enter in table order, so time priority is top to bottom. ``resting``
reads the book back as rows of the same shape. ``buy``/``sell`` build incoming orders
(trader 99 and a fresh id unless given). ``refused`` and ``misuse`` check that a command is
turned down and changes nothing.

The autouse fixture ``invariants_checked`` (imported by each test module) runs every
scenario twice, on the engine's batch fast path and on its general handlers
(``fast_path=False``): both must follow the same rules. Every engine made by ``engine()``
has ``check_invariants()`` called when its test ends.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import count

import pytest

from exchange import (
    BookUpdate,
    Fill,
    InstrumentSpec,
    InvalidCommand,
    MatchingEngine,
    NewOrder,
    Rejected,
    SmpMode,
    TimeInForce,
)

BUY, SELL = 1, -1
TAKER = 99  # default trader of incoming orders
_SIDES = {"buy": BUY, "sell": SELL}
_SIDE_NAMES = {BUY: "buy", SELL: "sell"}
_MODES = {"resting": SmpMode.CANCEL_RESTING, "aggressing": SmpMode.CANCEL_AGGRESSING, "both": SmpMode.CANCEL_BOTH}
_TIFS = {"gtc": TimeInForce.GTC, "day": TimeInForce.DAY}
_ids = count(1000)
_engines: list[MatchingEngine] = []
_fast_path = [True]


@pytest.fixture(autouse=True, params=[True, False], ids=["fast", "general"])
def invariants_checked(request):
    """Run the test on one engine path; check every engine it made once it is over."""
    _engines.clear()
    _fast_path[0] = request.param
    yield
    for eng in _engines:
        eng.check_invariants()
    _engines.clear()


def engine(spec: InstrumentSpec | None = None, *, fast_path: bool | None = None, **overrides: object) -> MatchingEngine:
    """A fresh engine for ``spec`` with ``overrides`` (default: a FIFO book with tick 1), on
    the test's path unless ``fast_path`` is given, checked when the test ends."""
    spec = InstrumentSpec("TEST") if spec is None else spec
    if overrides:
        spec = replace(spec, **overrides)  # type: ignore[arg-type]
    eng = MatchingEngine(spec, fast_path=_fast_path[0] if fast_path is None else fast_path)
    _engines.append(eng)
    return eng


# ---- orders ----------------------------------------------------------------------------------
def order(side: int, qty: int, price: int | None = None, *, id: int | None = None, trader: int = TAKER, **kw) -> NewOrder:
    """An incoming order; ``id`` defaults to a fresh number."""
    return NewOrder(order_id=next(_ids) if id is None else id, trader=trader, side=side, qty=qty, price=price, **kw)


def buy(qty: int, price: int | None = None, **kw) -> NewOrder:
    return order(BUY, qty, price, **kw)


def sell(qty: int, price: int | None = None, **kw) -> NewOrder:
    return order(SELL, qty, price, **kw)


# ---- the book as a table -----------------------------------------------------------------------
def _rows(table: str) -> list[tuple[int, NewOrder]]:
    rows = []
    for n, line in enumerate(table.strip().splitlines(), 1):
        words = line.split("#")[0].split()
        if not words or words[0] == "side":
            continue
        plain = [w for w in words if "=" not in w and w != "post_only"]
        opts = dict(w.split("=") for w in words if "=" in w)
        side, price, qty, trader = _SIDES[plain[0]], int(plain[1]), int(plain[2]), int(plain[3])
        oid = int(plain[4]) if len(plain) > 4 else n
        cmd = NewOrder(
            order_id=oid,
            trader=trader,
            side=side,
            qty=qty,
            price=price,
            tif=_TIFS[opts.get("tif", "gtc")],
            display_qty=int(opts["display"]) if "display" in opts else None,
            smp_id=int(opts["smp"]) if "smp" in opts else None,
            smp_mode=_MODES[opts["mode"]] if "mode" in opts else None,
            post_only="post_only" in words,
        )
        rows.append((n, cmd))
    return rows


def table(text: str) -> list[tuple[str, int, int, int, int]]:
    """Rows ``(side, price, qty, trader, id)`` of a book table, as ``resting`` returns them."""
    return [(_SIDE_NAMES[c.side], c.price, c.qty, c.trader, c.order_id) for _, c in _rows(text)]  # type: ignore[misc]


def book(eng: MatchingEngine, text: str) -> list:
    """Enter a table of orders in row order; each must rest without trading."""
    events = []
    for _, cmd in _rows(text):
        evs = eng.submit(cmd)
        assert not any(isinstance(e, (Rejected, Fill)) for e in evs), f"seeding {cmd} gave {evs}"
        events += evs
    return events


def resting(eng: MatchingEngine) -> list[tuple[str, int, int, int, int]]:
    """The book as rows ``(side, price, open qty, trader, id)``: bids best first, then asks,
    each level in priority order (open qty includes an iceberg's hidden reserve)."""
    bids, asks = eng.book.l3()
    return [
        (_SIDE_NAMES[o["side"]], o["price"], o["qty"] + o["hidden"], o["trader"], o["order_id"]) for o in bids + asks
    ]


# ---- reading events ------------------------------------------------------------------------------
def fills(events: list) -> list[tuple[int, int, int]]:
    """``[(maker_id, qty, price), ...]`` in execution order."""
    return [(e.maker_id, e.qty, e.price) for e in events if isinstance(e, Fill)]


def kinds(events: list) -> list[str]:
    """Event class names in order."""
    return [type(e).__name__ for e in events]


def updates(events: list) -> list[tuple[int, int, int, int]]:
    """``[(side, price, qty, count), ...]`` of the BookUpdate events."""
    return [(e.side, e.price, e.qty, e.count) for e in events if isinstance(e, BookUpdate)]


def of(kind: type, events: list) -> list:
    return [e for e in events if isinstance(e, kind)]


# ---- refusals that change nothing ----------------------------------------------------------------
def snapshot(eng: MatchingEngine) -> tuple:
    """Everything a refused command must leave as it was (``seq`` last)."""
    return (
        eng.state_hash(),
        eng.book.l2(),
        eng.book.l3(),
        [c.order_id for c in eng.stop_orders()],
        eng.last_price,
        eng.top_order(BUY),
        eng.top_order(SELL),
        eng.seq,
    )


def refused(eng: MatchingEngine, command: object, reason: str) -> None:
    """``command`` yields exactly one Rejected(reason), numbered next, and changes nothing."""
    before = snapshot(eng)
    events = eng.submit(command)
    oid = getattr(command, "order_id", None)
    trader = getattr(command, "trader", None)
    assert events == [Rejected(before[-1] + 1, oid, trader, reason)], events
    assert snapshot(eng) == before[:-1] + (before[-1] + 1,)


def misuse(eng: MatchingEngine, command: object) -> None:
    """``command`` raises InvalidCommand and changes nothing, not even ``seq``."""
    before = snapshot(eng)
    with pytest.raises(InvalidCommand):
        eng.submit(command)
    assert snapshot(eng) == before

"""The engine's implementation-independent book hash, computed from a vector book.

``state_hash(state, b)`` equals ``exchange.book.OrderBook.state_hash()`` of the same book:
SHA-256 of, for bids then asks, best level first, each live order in priority order, the
line ``side,price,order_id,trader,qty,hidden`` (``hidden`` is always 0: no icebergs).
``check_invariants(state, params)`` checks the layout the transition relies on. Both copy
the state to the host: for tests and debugging, not the hot path.
"""

from __future__ import annotations

import hashlib

import torch

from vector.book import ASK, BID, BookParams, BookState

_SIDES = ((BID, 1), (ASK, -1))


def state_hashes(state: BookState) -> list[str]:
    """``state_hash`` of every book of the batch (one copy to the host)."""
    price, qty, oid, owner = (t.cpu().tolist() for t in (state.price, state.qty, state.order_id, state.owner))
    out = []
    for b in range(len(qty)):
        h = hashlib.sha256()
        for row, side in _SIDES:
            p, q, i, o = price[b][row], qty[b][row], oid[b][row], owner[b][row]
            for j in range(len(q)):
                if q[j] <= 0:
                    break
                h.update(f"{side},{p[j]},{i[j]},{o[j]},{q[j]},0\n".encode())
        out.append(h.hexdigest())
    return out


def state_hash(state: BookState, b: int) -> str:
    """``OrderBook.state_hash()`` of book ``b``."""
    one = BookState(*(getattr(state, name)[b : b + 1] for name in BookState.__dataclass_fields__))
    return state_hashes(one)[0]


def check_invariants(state: BookState, params: BookParams) -> None:
    """Raise AssertionError if any book breaks the layout of ``vector.book``.

    Live orders (quantity > 0) are packed at the front of each row; empty slots hold zeros
    and the row's empty price; live orders are in priority order (bids by price descending,
    asks ascending), on tick; order ids are unique within a book; the book is not
    crossed; a TOP flag only marks a live first order; every integer tensor has the
    params' dtype.
    """
    price, qty, oid, owner = state.price, state.qty, state.order_id, state.owner
    for name in ("price", "qty", "order_id", "owner", "last_price"):
        assert getattr(state, name).dtype == params.state_dtype, f"{name} is {getattr(state, name).dtype}, not {params.dtype}"
    alive = qty > 0
    assert bool((qty >= 0).all()), "negative quantity"
    assert bool((alive[:, :, 1:] <= alive[:, :, :-1]).all()), "live orders not packed at the front"
    dead = ~alive
    empty_price = torch.tensor([0, params.empty_ask], dtype=price.dtype, device=price.device).view(1, 2, 1).expand_as(price)
    assert bool((price[dead] == empty_price[dead]).all()), "empty slot with a price"
    assert bool((oid[dead] == 0).all() and (owner[dead] == 0).all()), "empty slot with an order"
    both = alive[:, :, 1:] & alive[:, :, :-1]
    step = price[:, :, 1:] - price[:, :, :-1]
    assert bool((step[:, BID][both[:, BID]] <= 0).all()), "bids out of priority order"
    assert bool((step[:, ASK][both[:, ASK]] >= 0).all()), "asks out of priority order"
    assert bool(((price[alive] > 0) & (price[alive] % params.tick == 0)).all()), "price off tick"
    has = alive[:, :, 0]
    crossed = has[:, BID] & has[:, ASK] & (price[:, BID, 0] >= price[:, ASK, 0])
    assert not bool(crossed.any()), "book crossed at rest"
    assert bool((~state.top | has).all()), "TOP flag on an empty row"
    ids = torch.where(alive, oid, -1 - torch.arange(alive[0].numel(), device=oid.device).view(alive[0].shape))
    flat = ids.flatten(1).sort(1).values
    assert not bool((flat[:, 1:] == flat[:, :-1]).any()), "duplicate order id in a book"

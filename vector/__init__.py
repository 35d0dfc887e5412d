"""Batched torch order books: thousands of independent books stepped at once, with the
semantics of ``exchange/`` (see ``vector.book`` for the contract, ``docs/vector.md``), and
the vectorised environments built on them (``vector.env``, ``docs/vector_envs.md``; the SB3
adapter is ``vector.sb3``, imported on its own so stable-baselines3 stays optional)."""

from vector.book import (
    ASK,
    BID,
    CANCEL,
    EMPTY_ASK,
    MAX_PRICE,
    DTYPE,
    NEW,
    NONE,
    REJECT_REASON,
    BookParams,
    BookState,
    Commands,
    Status,
    StepOut,
    UnsupportedSpec,
    init,
    levels,
    compiled_step,
    reset,
    step,
    step_fn,
)
from vector.background import LIGHT, BackgroundParams
from vector.env import EnvParams, VectorMarketMakingEnv, VectorMultiTradingEnv, VectorTradingEnv, remove_orders
from vector.hash import check_invariants, state_hash, state_hashes

__all__ = [
    "LIGHT",
    "BackgroundParams",
    "EnvParams",
    "VectorMarketMakingEnv",
    "VectorMultiTradingEnv",
    "VectorTradingEnv",
    "remove_orders",
    "ASK",
    "BID",
    "CANCEL",
    "EMPTY_ASK",
    "MAX_PRICE",
    "DTYPE",
    "NEW",
    "NONE",
    "REJECT_REASON",
    "BookParams",
    "BookState",
    "Commands",
    "Status",
    "StepOut",
    "UnsupportedSpec",
    "check_invariants",
    "compiled_step",
    "init",
    "levels",
    "reset",
    "state_hash",
    "state_hashes",
    "step",
    "step_fn",
]

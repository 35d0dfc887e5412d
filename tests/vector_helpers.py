"""Exact comparisons of vector env tensors and states, for the tests that hold the native
env to the torch one."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch

from vector.env import EnvState


def assert_equal(got: Any, want: Any, where: str) -> None:
    """Tensors (or dicts of them) identical: dtype, shape and values."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), where
        for k in want:
            assert_equal(got[k], want[k], f"{where}[{k!r}]")
        return
    assert got.dtype == want.dtype and got.shape == want.shape, f"{where}: {got.dtype}{tuple(got.shape)} vs {want.dtype}{tuple(want.shape)}"
    if not torch.equal(got, want):
        at = (got != want).nonzero()[0].tolist()
        raise AssertionError(f"{where}: first difference at {at}: got {got[tuple(at)].item()!r}, want {want[tuple(at)].item()!r}")


def assert_same_state(got: EnvState, want: EnvState, where: str) -> None:
    for f in fields(want):
        if f.name == "book":
            for g in fields(want.book):
                assert_equal(getattr(got.book, g.name), getattr(want.book, g.name), f"{where}: book.{g.name}")
        else:
            assert_equal(getattr(got, f.name), getattr(want, f.name), f"{where}: {f.name}")

"""Exceptions for misuse of the engine API (a market refusal is a ``Rejected`` event instead)."""

from __future__ import annotations


class ExchangeError(Exception):
    """Base class of the exchange core's exceptions."""


class InvalidCommand(ExchangeError, TypeError):
    """A command is not a well-formed command object (wrong type, field type or enum value).

    ``events`` holds the events of the commands of the same ``submit_many`` batch that were
    processed before this one (they took effect); the bad command itself changed nothing.
    """

    def __init__(self, message: str, events: list | None = None) -> None:
        super().__init__(message)
        self.events: list = events if events is not None else []

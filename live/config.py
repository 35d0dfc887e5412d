"""Configuration of the live exchange: frozen dataclasses, loadable from a JSON file.

``ServerConfig`` holds everything the server needs: where to listen, the instruments (a
preset from ``exchange.instrument.PRESETS`` plus overrides), the traders and their tokens,
the venue's risk, margin and fees (a trader may have its own risk limits and starting
cash), the connection limits, and where the journal and the CSV files go.
``load_config(path)`` reads a JSON object with the same field names (unknown names are
refused, so a typo fails loudly); missing fields keep their defaults.
``DEFAULT_CONFIG`` is the demo venue: ``XYZ`` (NYSE-style equity) and ``ES`` (CME-style
future), five traders with demo tokens. The tokens are for a loopback demo only: give real
ones in a config file for anything else. ``python -m live.server --print-config`` prints
the default as JSON, a starting point for a file of your own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from exchange.accounts import FeeSchedule
from exchange.instrument import PRESETS, InstrumentSpec
from exchange.venue import MarginPolicy, RiskLimits


@dataclass(frozen=True)
class SymbolConfig:
    """One instrument: a preset (``nyse`` or ``cme``) and overrides of its spec (None: keep)."""

    symbol: str
    preset: str = "nyse"
    tick: int | None = None
    lot: int | None = None
    max_qty: int | None = None
    price_band: int | None = None  # ticks from the reference price; refuses absurd prices
    reference_price: int | None = None  # band centre before the first trade
    protection_ticks: int | None = None

    def spec(self) -> InstrumentSpec:
        if self.preset not in PRESETS:
            raise ValueError(f"symbol {self.symbol!r}: unknown preset {self.preset!r}; presets: {sorted(PRESETS)}")
        overrides = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("symbol", "preset") and getattr(self, f.name) is not None
        }
        return PRESETS[self.preset](self.symbol, **overrides)


@dataclass(frozen=True)
class TraderConfig:
    """A trader allowed to connect: its exchange id, name and token.

    ``cancel_on_disconnect``: when the trader's last connection closes, all its orders on
    every symbol are cancelled (a journaled ``MassCancel``). ``smp_group``: orders asking
    for self-match prevention get this group id (default: the trader id), so a trader can
    only ever prevent matches with its own group, never cancel another's orders.

    ``risk``: this trader's pre-trade limits, replacing the venue's ``risk`` whole (every
    field is the trader's own: one left out or null is no limit; None here: the venue's).
    ``starting_cash``: this trader's collateral in price units (None: the venue's).
    """

    trader: int
    name: str
    token: str
    cancel_on_disconnect: bool = True
    smp_group: int | None = None
    risk: RiskLimits | None = None
    starting_cash: int | None = None


@dataclass(frozen=True)
class RateLimit:
    """Per-connection token bucket: ``rate`` messages per second, bursts of ``burst``."""

    rate: float = 2_000.0
    burst: int = 500


@dataclass(frozen=True)
class ServerConfig:
    """Everything the live exchange server needs (see the module docstring).

    Durability: ``journal`` is the path of the command journal (None: no journal, state is
    lost on exit). ``fsync``: ``"batch"`` fsyncs the journal once per batch of commands
    before any of them is acknowledged (survives power loss); ``"none"`` only writes it to
    the OS before acknowledging (survives a crash or kill -9 of the server, not of the
    machine). ``csv_dir``: where ``trades.csv`` and ``performance.csv`` go (None: no CSV).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    symbols: tuple[SymbolConfig, ...] = ()
    traders: tuple[TraderConfig, ...] = ()
    starting_cash: int = 100_000_000  # price units (1,000,000.00 at price_scale 0.01)
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    risk: RiskLimits = field(default_factory=RiskLimits)
    margin: MarginPolicy | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)
    max_message_bytes: int = 4_096  # longer frames get error message_too_large
    max_frame_bytes: int = 65_536  # longer frames close the connection (1009)
    login_timeout_s: float = 5.0
    session_queue: int = 10_000  # private messages queued per trading connection before it is cut
    feed_queue: int = 20_000  # market-data messages queued per subscriber (the relay) before a re-snapshot
    inbox_limit: int = 100_000  # requests waiting for the exchange before error overloaded
    feed_token: str | None = None  # if set, feed subscribers must present it
    journal: str | None = None
    fsync: Literal["batch", "none"] = "batch"
    csv_dir: str | None = None
    csv_flush_ms: int = 500
    performance_ms: int = 500
    heartbeat_ms: int = 1_000

    def __post_init__(self) -> None:
        names = [s.symbol for s in self.symbols]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"symbols must be non-empty and distinct, got {names}")
        ids = [t.trader for t in self.traders]
        tokens = [t.token for t in self.traders]
        if len(set(ids)) != len(ids) or any(type(i) is not int or i <= 0 for i in ids):
            raise ValueError(f"trader ids must be distinct positive ints, got {ids}")
        if len(set(tokens)) != len(tokens) or not all(tokens):
            raise ValueError("trader tokens must be distinct and non-empty")
        for t in self.traders:
            if t.starting_cash is not None and (type(t.starting_cash) is not int or t.starting_cash < 0):
                raise ValueError(f"trader {t.trader}: starting_cash must be an int >= 0 or null, got {t.starting_cash!r}")
        if self.feed_token is not None and self.feed_token in tokens:
            raise ValueError("the feed token must not be a trader's token")
        if self.fsync not in ("batch", "none"):
            raise ValueError(f"fsync must be 'batch' or 'none', got {self.fsync!r}")
        if not 0 < self.max_message_bytes <= self.max_frame_bytes:
            raise ValueError("need 0 < max_message_bytes <= max_frame_bytes")
        for s in self.symbols:
            s.spec()  # fail at load time, not at start

    def specs(self) -> dict[str, InstrumentSpec]:
        return {s.symbol: s.spec() for s in self.symbols}

    def trader_risk(self) -> dict[int, RiskLimits]:
        """Trader id -> its own limits, for the traders that have them (``Exchange(trader_risk=)``)."""
        return {t.trader: t.risk for t in self.traders if t.risk is not None}

    def trader_cash(self) -> dict[int, int]:
        """Trader id -> its own starting cash, for the traders that have one (``Exchange(trader_cash=)``)."""
        return {t.trader: t.starting_cash for t in self.traders if t.starting_cash is not None}

    def venue_fingerprint(self) -> str:
        """Hash of everything that decides what a command does (journal compatibility)."""
        parts = [
            repr(sorted(self.specs().items())),
            repr(self.fees),
            repr(self.starting_cash),
            repr(self.risk),
            repr(self.margin),
            repr(sorted((t.trader, t.smp_group) for t in self.traders)),
        ]
        if self.trader_risk() or self.trader_cash():  # only then, so older journals keep their fingerprint
            parts.append(repr((sorted(self.trader_risk().items()), sorted(self.trader_cash().items()))))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def with_overrides(self, **changes: Any) -> ServerConfig:
        """A copy with some fields changed (command-line options)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


DEFAULT_CONFIG = ServerConfig(
    symbols=(
        SymbolConfig("XYZ", "nyse", price_band=1_000, reference_price=10_000),  # $100.00, band +-$10
        SymbolConfig("ES", "cme", price_band=400, reference_price=500_000),  # 5000.00, band +-100 points
    ),
    traders=tuple(
        TraderConfig(i, name, f"{name}-demo-token")
        for i, name in enumerate(("alice", "bob", "carol", "dave", "erin"), start=1)
    ),
    risk=RiskLimits(max_order_qty=10_000, max_position=100_000, max_open_orders=1_000),
    margin=MarginPolicy(maintenance_bps=1_000, bar_liquidated=True),
)


# ---- JSON ---------------------------------------------------------------------------------
_NESTED: dict[type, dict[str, type]] = {  # the dataclass fields whose JSON objects hold dataclasses
    ServerConfig: {
        "symbols": SymbolConfig, "traders": TraderConfig, "fees": FeeSchedule, "risk": RiskLimits,
        "margin": MarginPolicy, "rate_limit": RateLimit,
    },
    TraderConfig: {"risk": RiskLimits},
}


def _check_keys(obj: Any, cls: type, where: str) -> None:
    """Refuse unknown keys, recursively (msgspec ignores them for dataclasses)."""
    if not isinstance(obj, Mapping) or not dataclasses.is_dataclass(cls):
        return
    hints = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(obj) - set(hints)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(hints)}")
    nested = _NESTED.get(cls, {})
    for key, value in obj.items():
        sub = nested.get(key)
        if sub is None:
            continue
        many = isinstance(value, (list, tuple))  # a JSON array, or a tuple from ``config_to_dict``
        for i, item in enumerate(value if many else [value]):
            _check_keys(item, sub, f"{where}.{key}" + (f"[{i}]" if many else ""))


def config_from_dict(obj: Mapping[str, Any]) -> ServerConfig:
    """Build a ``ServerConfig`` from plain data (a parsed JSON object)."""
    _check_keys(obj, ServerConfig, "config")
    try:
        return msgspec.convert(obj, ServerConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ValueError(f"config: {exc}") from None


def load_config(path: str | os.PathLike[str]) -> ServerConfig:
    """Read a JSON config file (see the module docstring)."""
    with open(path, "rb") as f:
        obj = json.load(f)
    return config_from_dict(obj)


def config_to_dict(config: ServerConfig) -> dict[str, Any]:
    """Plain data for ``config`` (what ``--print-config`` writes)."""
    return msgspec.to_builtins(config)

"""The command journal: append-only JSON lines, written before anything is acknowledged.

Format. The first line is a header, ``{"journal": "research-exchange/live", "version": 1,
"venue": FINGERPRINT}``; each further line is one ``live.core.Record`` (``ts``, ``symbol``,
``command`` as the exchange's tagged command struct, ``client_id``), exactly what reached
the matching engine, in the order it was applied. ``FINGERPRINT`` is
``ServerConfig.venue_fingerprint()``: instruments, fees, starting cash, risk, margin and
traders; a journal is only replayed into the venue it was written by (anything else could
give a different book, so ``JournalError`` says so instead).

Write path (``live.server``). The exchange's owner task applies a batch of commands (all
the requests waiting in its inbox), appends their records with one ``write``, then, with
``fsync="batch"``, ``fdatasync``s the file in a worker thread, and only then sends any
reply or market data for the batch. Requests that arrive meanwhile form the next batch, so
the cost of one fsync is shared by everything that arrived during it (group commit). With
``fsync="none"`` the write reaches the OS before the replies go: a crash or ``kill -9`` of
the server loses nothing acknowledged, a power cut may. ``bench/live_journal.py``-style
numbers are in ``docs/API_SPEC.md`` (Durability).

Recovery. ``Journal.open`` reads every record back. A ``kill -9`` in the middle of a write
can leave a torn last line (no newline, or undecodable): it was never acknowledged, so it
is cut off (the file is truncated to the last whole record). A bad line anywhere else is
corruption and raises ``JournalError``. Whole records of a batch whose write was cut
short are kept: their requests were never acknowledged, and like any in-flight request on
a lost connection their outcome is learnt by asking (``get_account``) after reconnecting.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import msgspec

from live.core import Record

log = logging.getLogger(__name__)

MAGIC = "research-exchange/live"
VERSION = 1


class JournalError(Exception):
    """The journal is corrupt or belongs to another venue configuration."""


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    journal: str
    version: int
    venue: str


_encode = msgspec.json.Encoder().encode
_record = msgspec.json.Decoder(Record)
_header = msgspec.json.Decoder(_Header)


def read_journal(path: str | os.PathLike[str], fingerprint: str | None = None) -> tuple[list[Record], int, int]:
    """Read ``path``: (records, length of the valid prefix in bytes, torn bytes after it).

    Raises ``JournalError`` on a bad header, a fingerprint mismatch or a bad record that
    is not the last line."""
    data = Path(path).read_bytes()
    if not data:
        return [], 0, 0
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: b"" when the file ends cleanly
    records: list[Record] = []
    valid = 0
    for i, line in enumerate(lines):
        last = i == len(lines) - 1 and not tail
        try:
            if i == 0:
                header = _header.decode(line)
                if header.journal != MAGIC or header.version != VERSION:
                    raise JournalError(f"{path}: not a version {VERSION} live journal: {header}")
                if fingerprint is not None and header.venue != fingerprint:
                    raise JournalError(
                        f"{path} was written by a venue with another configuration (fingerprint "
                        f"{header.venue}, this one {fingerprint}); replaying it would build a different "
                        "exchange. Use its configuration, or start a new journal."
                    )
            else:
                records.append(_record.decode(line))
        except msgspec.DecodeError as exc:
            if last:  # a torn final record that happens to end in a newline byte
                return records, valid, len(data) - valid
            raise JournalError(f"{path}: line {i + 1} is corrupt ({exc}) and is not the last one") from None
        valid += len(line) + 1
    return records, valid, len(data) - valid


class Journal:
    """An open journal: ``append`` records, ``sync`` them, ``close``.

    ``Journal.open(path, fingerprint)`` creates the file (with its header) or reads it,
    cuts a torn tail, and returns the journal positioned at the end plus the records to
    replay."""

    def __init__(self, path: Path, fd: int, records_before: int) -> None:
        self.path = path
        self._fd = fd
        self.records = records_before  # records in the file
        self.bytes_written = 0
        self.syncs = 0

    @classmethod
    def open(cls, path: str | os.PathLike[str], fingerprint: str) -> tuple[Journal, list[Record]]:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        records: list[Record] = []
        new = not p.exists() or p.stat().st_size == 0
        if not new:
            records, valid, torn = read_journal(p, fingerprint)
            if torn:
                log.warning("journal %s: cutting a torn last record (%d bytes, never acknowledged)", p, torn)
                with open(p, "r+b") as f:
                    f.truncate(valid)
                    f.flush()
                    os.fsync(f.fileno())
            if valid == 0:
                new = True  # even the header was torn
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        journal = cls(p, fd, len(records))
        if new:
            journal._write(_encode(_Header(MAGIC, VERSION, fingerprint)) + b"\n")
            os.fsync(fd)
            dir_fd = os.open(p.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new file's directory entry too
            finally:
                os.close(dir_fd)
        return journal, records

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.bytes_written += len(data)

    def append(self, records: Iterable[Record]) -> None:
        """Write records with one system call (they reach the OS, not yet the disk)."""
        lines = [_encode(r) for r in records]
        if lines:
            lines.append(b"")
            self._write(b"\n".join(lines))
            self.records += len(lines) - 1

    def sync(self) -> None:
        """Make everything appended so far durable (``fdatasync``)."""
        os.fdatasync(self._fd)
        self.syncs += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

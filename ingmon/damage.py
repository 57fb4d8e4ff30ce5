"""Damaged partitions: telling a broken version file from an access error, finding and moving it."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingmon.errors import CorruptPartitionError
from ingmon.partition import QUARANTINE_DIR, PartitionLock, current_file, has_parquet_tail
from ingmon.partition import quarantine as quarantine_version

__all__ = [
    "DAMAGE_ERRNOS",
    "READ_ERRORS",
    "CorruptPartition",
    "Describe",
    "any_vanished",
    "damage_reason",
    "first_corrupt",
    "is_damage",
    "quarantine_partition",
    "vanished_or_damaged",
]

# What pyarrow raises for a damaged file: ArrowInvalid for a bad footer, a plain OSError (no
# errno) for a bad page ("Corrupt snappy compressed data"), FileNotFoundError for a missing one.
READ_ERRORS = (pa.ArrowException, OSError)
DAMAGE_ERRNOS = (None, errno.EIO, errno.ENOENT)


@dataclass(frozen=True)
class CorruptPartition:
    """A partition whose current version file cannot be read.

    ``directory`` is the partition (``…/<bucket>=<label>``), ``version`` the file its
    ``data.parquet`` resolved to, ``start_ms``/``end_ms`` the partition's whole time bucket in
    epoch ms, both inclusive (the lake's ``[start, end]`` convention: ``replace_range=(start_ms,
    end_ms)`` rewrites exactly this partition), ``reason`` what is wrong with the file.
    """

    dataset: str
    symbol: str
    param: str | None
    directory: Path
    version: Path
    start_ms: int
    end_ms: int
    reason: str

    @property
    def message(self) -> str:
        """One line naming the partition, the file and what is wrong."""
        series = " ".join(part for part in (self.dataset, self.symbol, self.param) if part)
        return f"{series} {self.directory.name}: {self.version}: {self.reason}"


# (symbol, version file, reason) → its record; the lake knows which time bucket a partition is.
Describe = Callable[[str, Path, str], CorruptPartition]


def is_damage(error: BaseException) -> bool:
    """Whether a read error is about the file's bytes, not about access (permissions, limits)."""
    if isinstance(error, OSError):
        return error.errno in DAMAGE_ERRNOS
    return True


def damage_reason(path: Path, *, deep: bool) -> str | None:
    """What is wrong with a current version file, or None when it reads.

    Reads the footer; ``deep`` also decodes every page, a batch at a time.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        # Collected or quarantined since the link was resolved, unless the link still points
        # here: then it dangles.
        return "version file missing" if current_file(path.parent) == path else None
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with pq.ParquetFile(path) as parquet:
            if deep:
                for _ in parquet.iter_batches():
                    pass
    except READ_ERRORS as error:
        if not is_damage(error):
            raise
        return f"not readable as Parquet ({' '.join(str(error).split())})"
    return None


def any_vanished(files: dict[str, list[Path]]) -> bool:
    return any(not path.exists() for paths in files.values() for path in paths)


def first_corrupt(
    files: dict[str, list[Path]], *, describe: Describe, engine_message: str
) -> CorruptPartition | None:
    """The first unreadable file of a failed read, in (symbol, time) order.

    Footers first (tens of µs a file); then the file the engine's message names, then
    every file, read in full: damage inside a page leaves the footer intact.
    """
    candidates = [(symbol, path) for symbol, paths in files.items() for path in paths]
    named = [(symbol, path) for symbol, path in candidates if str(path) in engine_message]
    for group, deep in ((candidates, False), (named, True), (candidates, True)):
        for symbol, path in group:
            reason = damage_reason(path, deep=deep)
            if reason is not None:
                return describe(symbol, path, reason)
        if any_vanished(files):
            return None  # the caller lists again rather than read every file in full
    return None


def vanished_or_damaged(files: dict[str, list[Path]], *, describe: Describe) -> bool:
    """Check the shape of every file a lazy scan will open; raise for a damaged one.

    A lazy scan fails only at ``collect()``, out of our hands: so scans pay this check
    (two 4–8 byte reads a file) up front. Damage deep inside a file with an intact tail
    still fails at collect; ``find_corrupt(deep=True)`` finds it. True when a version
    vanished since it was listed (collected, quarantined): list again.
    """
    vanished = False
    for symbol, paths in files.items():
        for path in paths:
            if has_parquet_tail(path):
                continue
            reason = damage_reason(path, deep=False)
            if reason is not None:
                raise CorruptPartitionError(describe(symbol, path, reason))
            vanished = vanished or not path.exists()
    return vanished


def quarantine_partition(partition: CorruptPartition, *, root: Path) -> Path:
    """Move a damaged version of the lake at ``root`` aside, under the partition lock.

    See ``Lake.quarantine``; refuses a directory outside ``root``.
    """
    directory = partition.directory
    if not directory.is_relative_to(root):
        raise ValueError(f"{directory} is not a partition of the lake at {root}")
    if not directory.is_dir():
        return directory / QUARANTINE_DIR / partition.version.name
    with PartitionLock(directory):
        return quarantine_version(directory, partition.version)

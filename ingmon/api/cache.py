"""Read-through caches of the server: a file's value until it changes, a read for a few seconds.

Many requests, one read: the state files are parsed again only when they change, lake reads and
rendered bodies are shared for a few seconds.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["Compressed", "FileCache", "LatestValue", "TTLCache"]

T = TypeVar("T")
_MISSING: Any = object()


class FileCache:
    """Values loaded from one file, kept until its (mtime, size, inode) changes — state files
    are replaced atomically, so a new version is a new inode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, Path], tuple[tuple[int, int, int] | None, Any]] = {}

    def get(self, kind: str, path: Path, load: Callable[[], T]) -> T:
        try:
            stat = path.stat()
            version: tuple[int, int, int] | None = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            version = None
        with self._lock:
            hit = self._entries.get((kind, path))
        if hit is not None and hit[0] == version:
            value: T = hit[1]
            return value
        value = load()
        with self._lock:
            self._entries[kind, path] = (version, value)
        return value


class TTLCache:
    """Values kept for ``ttl_seconds``: many requests, one read. At most ``max_entries`` keys
    (filters come from clients: expired entries go first, then everything)."""

    def __init__(self, ttl_seconds: float, *, max_entries: int = 256) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def get(self, key: tuple[Any, ...], load: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_seconds:
            value: T = hit[1]
            return value
        value = load()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                for old in [
                    k for k, (at, _) in self._entries.items() if now - at >= self.ttl_seconds
                ]:
                    del self._entries[old]
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (now, value)
        return value


class LatestValue:
    """One computation per key at a time; while it runs, other callers get the key's previous
    value at once — if it is younger than ``max_age_seconds`` — instead of waiting or
    computing it too.

    Under concurrent scrapes a cache miss (a state file changed, the clock entered a new
    second) then costs one caller the rendering and nobody else anything: they are served the
    body from before. A previous value is never served older than ``max_age_seconds`` (counted
    from when its computation started, by ``clock``): past that, callers wait for the
    rendering in progress and then compute themselves (an inner cache makes that cheap), as
    the very first call of a key does. A value younger than ``fresh_seconds`` is returned
    without computing at all: a burst of requests costs dictionary lookups, not renderings.
    At most ``max_entries`` keys (filters come from clients)."""

    def __init__(
        self,
        *,
        max_age_seconds: float,
        fresh_seconds: float = 0.0,
        max_entries: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age_seconds = max_age_seconds
        self.fresh_seconds = fresh_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._guard = threading.Lock()
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._values: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Callers blocked behind a computation in progress right now."""
        with self._guard:
            return self._waiting

    def get(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        with self._guard:
            if key not in self._locks and len(self._locks) >= self.max_entries:
                self._locks.clear()
                self._values.clear()
            lock = self._locks.setdefault(key, threading.Lock())
            previous = self._values.get(key)
        if previous is not None and self._clock() - previous[0] < self.fresh_seconds:
            fresh: T = previous[1]
            return fresh
        if not lock.acquire(blocking=False):
            if previous is not None and self._clock() - previous[0] < self.max_age_seconds:
                stale: T = previous[1]
                return stale
            with self._guard:
                self._waiting += 1
            try:
                lock.acquire()
            finally:
                with self._guard:
                    self._waiting -= 1
        try:
            started = self._clock()
            value = compute()
            with self._guard:
                self._values[key] = (started, value)
            return value
        finally:
            lock.release()


class Compressed:
    """The gzip of each key's latest body, compressed once per distinct body.

    A scrape burst of the ~400 KB exposition (50 symbols × 4 datasets) then sends ~20 KB per
    request without compressing it again for each: a body is recognised by its length and
    CRC-32 (cheap next to compressing it). At most ``max_entries`` keys."""

    def __init__(self, *, level: int = 1, max_entries: int = 256) -> None:
        self.level = level
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], tuple[tuple[int, int], bytes]] = {}

    def get(self, key: tuple[Any, ...], body: bytes) -> bytes:
        version = (len(body), zlib.crc32(body))
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        packed = gzip.compress(body, compresslevel=self.level, mtime=0)
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (version, packed)
        return packed

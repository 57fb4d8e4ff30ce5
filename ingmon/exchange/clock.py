"""The exchange's notion of "now": real time for live demos, a frozen settable instant for tests."""

from __future__ import annotations

import threading
from typing import Protocol

from ingmon.times import now_ms as wall_ms
from ingmon.times import parse_instant_ms

__all__ = ["Clock", "FrozenClock", "RealClock", "parse_instant_ms"]


class Clock(Protocol):
    """Anything that tells the market time in epoch milliseconds."""

    def now_ms(self) -> int:
        """Current market time (ms since the epoch, UTC)."""
        ...


class RealClock:
    """Wall-clock time plus a fixed offset: the open candle grows and new data appears live."""

    def __init__(self, *, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return wall_ms() + self.offset_ms

    def __repr__(self) -> str:
        return f"RealClock(offset_ms={self.offset_ms})"


class FrozenClock:
    """A clock that only moves when told to; safe to set from a test while the server runs."""

    def __init__(self, now_ms: int) -> None:
        self._now_ms = int(now_ms)
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now_ms

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (backwards too: tests may rewind)."""
        with self._lock:
            self._now_ms = int(now_ms)

    def advance(self, delta_ms: int) -> int:
        """Move forward by ``delta_ms`` and return the new time."""
        with self._lock:
            self._now_ms += int(delta_ms)
            return self._now_ms

    def __repr__(self) -> str:
        return f"FrozenClock({self.now_ms()})"

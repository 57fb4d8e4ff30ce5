"""Binance USD-M request budgets: route weights, fixed-window pacing, and the 5-minute limits."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "NEVER",
    "WAIT_REPORT_SECONDS",
    "Aborted",
    "Budget",
    "RateLimits",
    "WaitCallback",
    "klines_weight",
    "parse_used_weight",
    "pause",
    "route_cost",
]

# Routes on the 5-minute request counters instead of the 1-minute weight counter (§2.2).
DATA_ROUTES = ("openInterestHist",)
FUNDING_ROUTES = ("fundingRate", "fundingInfo")

_USED_WEIGHT = re.compile(r"(?i)^x-mbx-used-weight-(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# Waits at least this long are announced (``on_wait``): shorter ones are the normal pacing.
WAIT_REPORT_SECONDS = 1.0

# Told of a wait about to start: (what it waits for, seconds), e.g. ("the rate-limit window", 42).
WaitCallback = Callable[[str, float], None]


class Aborted(Exception):
    """The run was told to stop (a ban elsewhere, an interrupt): send nothing more."""


class _Never(threading.Event):
    """A stop event nobody can set: the default for clients and budgets used outside a run."""

    def set(self) -> None:
        raise RuntimeError("NEVER is the stop event of no run; give the run its own Event")


NEVER: threading.Event = _Never()


def pause(seconds: float, *, stop: threading.Event) -> None:
    """Sleep ``seconds`` unless ``stop`` is set first; Aborted when it is (at once if already)."""
    # Waiting on the event instead of time.sleep is what makes an interrupt prompt: a thread
    # parked on a 45 s rate-limit window wakes the moment the run is told to stop.
    if stop.wait(seconds):
        raise Aborted


def klines_weight(limit: int) -> int:
    """Weight of one /fapi/v1/klines call by its ``limit`` tier (Binance §1.1)."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def route_cost(route: str, *, limit: int = 500) -> int:
    """Weight of a request on the 1-minute counter (0 for routes on the 5-minute counters)."""
    if route == "klines":
        return klines_weight(limit)
    if route == "aggTrades":
        return 20
    if route in DATA_ROUTES or route in FUNDING_ROUTES:
        return 0
    return 1


def parse_used_weight(headers: dict[str, str]) -> tuple[int, float] | None:
    """(used weight, window seconds) from an ``X-MBX-USED-WEIGHT-<n><unit>`` header, if any."""
    for name, value in headers.items():
        match = _USED_WEIGHT.match(name)
        if match and value.strip().isdigit():
            return int(value), int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    return None


@dataclass(frozen=True)
class RateLimits:
    """The limits the client paces itself to (Binance USD-M defaults)."""

    weight_per_window: int = 2400
    window_seconds: float = 60.0
    data_requests_per_window: int = 1000
    funding_requests_per_window: int = 500
    five_minute_seconds: float = 300.0

    def scaled(self, factor: float) -> RateLimits:
        """The same limits with every window ``factor`` times as long (0.1 → ten times faster)."""
        return RateLimits(
            weight_per_window=self.weight_per_window,
            window_seconds=self.window_seconds * factor,
            data_requests_per_window=self.data_requests_per_window,
            funding_requests_per_window=self.funding_requests_per_window,
            five_minute_seconds=self.five_minute_seconds * factor,
        )


class Budget:
    """A fixed-window budget (weight or request count) shared by every thread of one client.

    Windows are aligned to multiples of ``window_seconds`` on the wall clock, as Binance's minute
    counters are. ``acquire`` blocks until the cost fits; ``observe`` adopts the server's own
    count (other processes on the same IP spend the same budget); ``block_until`` honours a
    ``Retry-After``.

    Waits end early with :class:`Aborted` when the caller's ``stop`` event is set, and a wait of
    ``WAIT_REPORT_SECONDS`` or more is announced to ``on_wait`` once (not once per thread).
    ``reason`` names the window in that announcement. ``sleep`` replaces the wait in tests
    that drive ``clock`` by hand; it cannot be interrupted.
    """

    # Sleep a little past a window boundary so the server has surely rolled over too.
    BOUNDARY_MARGIN_SECONDS = 0.05

    def __init__(
        self,
        *,
        limit: int,
        window_seconds: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        reason: str = "the rate-limit window",
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.reason = reason
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._window = -1
        self._used = 0
        self._blocked_until = 0.0
        # The latest wake-up already announced: threads waiting for the same one stay quiet.
        self._announced_wake = 0.0
        self.waited_seconds = 0.0

    def _roll(self, now: float) -> None:
        window = int(now // self.window_seconds)
        if window != self._window:
            self._window = window
            self._used = 0

    def acquire(
        self,
        cost: int,
        *,
        stop: threading.Event = NEVER,
        on_wait: WaitCallback | None = None,
    ) -> None:
        """Reserve ``cost`` in the current window, sleeping until a window has room.

        Aborted when ``stop`` is set before or during a wait; ``on_wait(reason, seconds)`` is
        told of a long wait before it starts.
        """
        if cost <= 0:
            return
        while True:
            with self._lock:
                now = self._clock()
                self._roll(now)
                window_end = (self._window + 1) * self.window_seconds
                # A request sent in a window's last moments may reach the exchange in the next
                # one and be charged there, on top of a fresh budget: send it after the turn.
                closing = window_end - now < self.BOUNDARY_MARGIN_SECONDS
                if now >= self._blocked_until and not closing and self._used + cost <= self.limit:
                    self._used += cost
                    return
                # A Retry-After block ends on its own; only a full window waits for the next.
                if now < self._blocked_until:
                    wake, reason = self._blocked_until, "Retry-After (HTTP 429)"
                else:
                    wake, reason = window_end + self.BOUNDARY_MARGIN_SECONDS, self.reason
                announce = wake > self._announced_wake
                if announce:
                    self._announced_wake = wake
            seconds = max(wake - self._clock(), 0.001)
            if announce and on_wait is not None and seconds >= WAIT_REPORT_SECONDS:
                on_wait(reason, seconds)
            self.waited_seconds += seconds
            if self._sleep is None:
                pause(seconds, stop=stop)
            else:
                self._sleep(seconds)
                if stop.is_set():
                    raise Aborted

    def spent(self) -> int:
        """What is reserved in the current window (0 once it has rolled over)."""
        with self._lock:
            self._roll(self._clock())
            return self._used

    def observe(self, used: int, *, sent_at: float) -> None:
        """Adopt the server's count for the window the request was sent in, if still current."""
        with self._lock:
            self._roll(self._clock())
            if int(sent_at // self.window_seconds) == self._window and used > self._used:
                self._used = used

    def block_until(self, until: float) -> None:
        """Send nothing before ``until`` (epoch seconds), e.g. after a 429 with Retry-After."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, until)

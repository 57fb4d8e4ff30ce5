"""Per-IP request-weight and 5-minute request limits with 429 back-off and escalating 418 bans."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ingmon.errors import ConfigError

__all__ = [
    "UNLIMITED_WEIGHT",
    "LimitDecision",
    "Limits",
    "RateLimiter",
    "interval_label",
    "route_weight",
]

# The REQUEST_WEIGHT limit an exchange with limits off advertises: more than a client can spend
# in any window, so one that paces to exchangeInfo is not paced by weight at all.
UNLIMITED_WEIGHT = 1_000_000_000

WEIGHT = "weight"
DATA_GROUP = "data"  # /futures/data/*: 1000 requests / 5 min
FUNDING_GROUP = "funding"  # fundingRate + fundingInfo: 500 requests / 5 min

# Seconds per interval letter, largest first, as in X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter).
_INTERVAL_UNITS = (
    ("D", "DAY", 86_400),
    ("H", "HOUR", 3_600),
    ("M", "MINUTE", 60),
    ("S", "SECOND", 1),
)


@dataclass(frozen=True)
class Limits:
    """Binance's USD-M public limits; ``enabled=False`` keeps counting (headers) but never rejects,
    and advertises a weight limit of UNLIMITED_WEIGHT.

    Windows run on real time, independent of the market clock. ``requests_before_ban`` is how
    many requests a client may still send to an exhausted limit before the first 418; each
    further ban doubles, from ``ban_seconds`` up to ``max_ban_seconds`` (Binance: 2 min to 3 days).
    """

    enabled: bool = True
    weight_per_window: int = 2400
    window_seconds: float = 60.0
    data_requests_per_5m: int = 1000
    funding_requests_per_5m: int = 500
    five_minute_window_seconds: float = 300.0
    requests_before_ban: int = 5
    ban_seconds: float = 120.0
    max_ban_seconds: float = 3 * 86_400.0

    def __post_init__(self) -> None:
        if self.window_seconds < 1 or self.window_seconds != int(self.window_seconds):
            raise ConfigError(
                f"weight window must be a whole number of seconds >= 1, got {self.window_seconds}"
            )
        positive = {
            "weight_per_window": self.weight_per_window,
            "data_requests_per_5m": self.data_requests_per_5m,
            "funding_requests_per_5m": self.funding_requests_per_5m,
            "five_minute_window_seconds": self.five_minute_window_seconds,
            "ban_seconds": self.ban_seconds,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"limit {name} must be positive, got {value}")
        if self.requests_before_ban < 0:
            raise ConfigError(f"requests_before_ban must be >= 0, got {self.requests_before_ban}")

    def scaled(self, factor: float) -> Limits:
        """The same limits on a faster timescale: windows and bans × ``factor`` (weight window
        rounded to whole seconds, at least 1 s, so its header name stays Binance-shaped)."""
        if factor <= 0:
            raise ConfigError(f"limit scale must be positive, got {factor}")
        return replace(
            self,
            window_seconds=float(max(1, round(self.window_seconds * factor))),
            five_minute_window_seconds=self.five_minute_window_seconds * factor,
            ban_seconds=self.ban_seconds * factor,
            max_ban_seconds=self.max_ban_seconds * factor,
        )

    @property
    def weight_header(self) -> str:
        """``X-MBX-USED-WEIGHT-1M`` for a 60 s window, ``-6S`` for 6 s, …"""
        number, letter, _ = interval_label(self.window_seconds)
        return f"X-MBX-USED-WEIGHT-{number}{letter}"

    def rate_limits_json(self) -> list[dict[str, object]]:
        """The exchangeInfo ``rateLimits`` array, advertising the active weight window (its limit
        is UNLIMITED_WEIGHT when limits are off: nothing would be rejected)."""
        number, _, interval = interval_label(self.window_seconds)
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": interval,
                "intervalNum": number,
                "limit": self.weight_per_window if self.enabled else UNLIMITED_WEIGHT,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ]


def interval_label(window_seconds: float) -> tuple[int, str, str]:
    """(intervalNum, header letter, rateLimits interval) of a window: 60 s → 1, M, MINUTE."""
    seconds = int(window_seconds)
    for letter, interval, unit_seconds in _INTERVAL_UNITS:
        if seconds % unit_seconds == 0:
            return seconds // unit_seconds, letter, interval
    raise ConfigError(f"window of {window_seconds} s has no interval label")  # pragma: no cover


def _window_phrase(window_seconds: float) -> str:
    """How the 429 message names the window: "minute", "5 minutes", "6 seconds"."""
    if window_seconds == int(window_seconds):
        number, _, interval = interval_label(window_seconds)
        unit = interval.lower()
        return unit if number == 1 else f"{number} {unit}s"
    return f"{window_seconds:g} seconds"


_WEIGHTS = {"ping": 1, "time": 1, "exchangeInfo": 1, "aggTrades": 20}


def route_weight(route: str, limit: int | None) -> tuple[int, str | None]:
    """(request weight, 5-minute group) of a REST route; klines weigh by ``limit`` (§1.1)."""
    if route == "klines":
        effective = 500 if limit is None else limit
        if effective < 100:
            return 1, None
        if effective < 500:
            return 2, None
        if effective <= 1000:
            return 5, None
        return 10, None
    if route == "openInterestHist":
        return 0, DATA_GROUP
    if route in ("fundingRate", "fundingInfo"):
        return 0, FUNDING_GROUP
    return _WEIGHTS.get(route, 1), None


@dataclass(frozen=True)
class LimitDecision:
    """What the limiter says about one request: status 200, 429 or 418, and the header values."""

    status: int
    used_weight: int
    retry_after_seconds: int = 0
    message: str = ""
    banned_until_ms: int = 0


@dataclass
class _CounterState:
    window_index: int = -1
    used: int = 0
    backoff_until_s: float = 0.0
    backoff_requests: int = 0


@dataclass
class _ClientState:
    counters: dict[str, _CounterState] = field(default_factory=dict)
    banned_until_s: float = 0.0
    bans: int = 0


class RateLimiter:
    """Fixed real-time windows per client IP, as Binance counts them (aligned to the epoch)."""

    def __init__(self, limits: Limits, *, wall_seconds: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self._wall_seconds = wall_seconds
        self._clients: dict[str, _ClientState] = {}
        self._lock = threading.Lock()

    def _windows(self) -> dict[str, tuple[int, float]]:
        return {
            WEIGHT: (self.limits.weight_per_window, self.limits.window_seconds),
            DATA_GROUP: (self.limits.data_requests_per_5m, self.limits.five_minute_window_seconds),
            FUNDING_GROUP: (
                self.limits.funding_requests_per_5m,
                self.limits.five_minute_window_seconds,
            ),
        }

    def admit(self, client_ip: str, *, weight: int, group: str | None) -> LimitDecision:
        """Charge one request (``weight`` on the weight window, one on ``group``) or refuse it."""
        now_s = self._wall_seconds()
        windows = self._windows()
        with self._lock:
            client = self._clients.setdefault(client_ip, _ClientState())
            touched = [WEIGHT] if weight > 0 else []
            if group is not None:
                touched.append(group)
            for name in (WEIGHT, *touched):
                state = client.counters.setdefault(name, _CounterState())
                index = math.floor(now_s / windows[name][1])
                if index != state.window_index:
                    state.window_index = index
                    state.used = 0
            used_weight = client.counters[WEIGHT].used
            if not self.limits.enabled:
                for name in touched:
                    client.counters[name].used += weight if name == WEIGHT else 1
                return LimitDecision(200, client.counters[WEIGHT].used)
            if now_s < client.banned_until_s:
                return self._banned(client_ip, client, now_s, used_weight)
            for name in touched:
                state = client.counters[name]
                if now_s < state.backoff_until_s:
                    state.backoff_requests += 1
                    if state.backoff_requests > self.limits.requests_before_ban:
                        client.bans += 1
                        ban_s = min(
                            self.limits.ban_seconds * 2 ** (client.bans - 1),
                            self.limits.max_ban_seconds,
                        )
                        client.banned_until_s = now_s + ban_s
                        state.backoff_until_s = 0.0
                        state.backoff_requests = 0
                        return self._banned(client_ip, client, now_s, used_weight)
                    return self._too_many(
                        client_ip,
                        name=name,
                        state=state,
                        now_s=now_s,
                        used_weight=used_weight,
                        windows=windows,
                    )
            for name in touched:
                state = client.counters[name]
                cost = weight if name == WEIGHT else 1
                if state.used + cost > windows[name][0]:
                    window_s = windows[name][1]
                    state.backoff_until_s = (state.window_index + 1) * window_s
                    state.backoff_requests = 0
                    return self._too_many(
                        client_ip,
                        name=name,
                        state=state,
                        now_s=now_s,
                        used_weight=used_weight,
                        windows=windows,
                    )
            for name in touched:
                client.counters[name].used += weight if name == WEIGHT else 1
            return LimitDecision(200, client.counters[WEIGHT].used)

    def used_weight(self, client_ip: str) -> int:
        """Weight used by ``client_ip`` in the current window (0 after the window rolled)."""
        with self._lock:
            client = self._clients.get(client_ip)
            if client is None or WEIGHT not in client.counters:
                return 0
            state = client.counters[WEIGHT]
            index = math.floor(self._wall_seconds() / self.limits.window_seconds)
            return state.used if index == state.window_index else 0

    def _too_many(
        self,
        client_ip: str,
        *,
        name: str,
        state: _CounterState,
        now_s: float,
        used_weight: int,
        windows: dict[str, tuple[int, float]],
    ) -> LimitDecision:
        limit, window_s = windows[name]
        message = (
            f"Too many requests; current limit of IP({client_ip}) is {limit} requests per "
            f"{_window_phrase(window_s)}. Please use the websocket for live updates to avoid "
            "polling the API."
        )
        retry_after = max(1, math.ceil(state.backoff_until_s - now_s))
        return LimitDecision(429, used_weight, retry_after, message)

    def _banned(
        self, client_ip: str, client: _ClientState, now_s: float, used_weight: int
    ) -> LimitDecision:
        until_ms = math.ceil(client.banned_until_s * 1000)
        message = (
            f"Way too many requests; IP({client_ip}) banned until {until_ms}. Please use the "
            "websocket for live updates to avoid bans."
        )
        retry_after = max(1, math.ceil(client.banned_until_s - now_s))
        return LimitDecision(418, used_weight, retry_after, message, until_ms)

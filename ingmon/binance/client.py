"""Binance USD-M REST client: weight-paced, retrying, validating every page into Arrow tables."""

from __future__ import annotations

import functools
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ingmon.binance.limits import (
    DATA_ROUTES,
    FUNDING_ROUTES,
    NEVER,
    WAIT_REPORT_SECONDS,
    Aborted,
    Budget,
    RateLimits,
    WaitCallback,
    parse_used_weight,
    pause,
    route_cost,
)
from ingmon.binance.pages import (
    MalformedResponse,
    Page,
    agg_trades_page,
    funding_page,
    klines_page,
    open_interest_page,
)
from ingmon.errors import (
    BannedError,
    ExchangeError,
    ExchangeUnavailableError,
    RateLimitedError,
)
from ingmon.times import iso_ms, now_ms

__all__ = [
    "BinanceClient",
    "ExchangeInfo",
    "RouteStats",
    "SymbolInfo",
]

_BANNED_UNTIL = re.compile(r"banned until (\d+)")
SECOND_MS = 1000
# What each budget's waits are announced as (``on_wait``).
_WEIGHT_WINDOW = "the rate-limit window"
_DATA_COUNTER = "the 5-minute open-interest request counter"
_FUNDING_COUNTER = "the 5-minute funding request counter"


@dataclass(frozen=True)
class SymbolInfo:
    """What exchangeInfo says of one contract."""

    symbol: str
    status: str
    contract_type: str
    onboard_ms: int
    tick_size: str
    step_size: str


@dataclass(frozen=True)
class ExchangeInfo:
    """The parts of /fapi/v1/exchangeInfo a backfill needs."""

    symbols: Mapping[str, SymbolInfo]
    weight_limit: int | None
    weight_window_seconds: float | None


@dataclass
class RouteStats:
    """Counters for one route: what the run cost and how often the exchange pushed back."""

    requests: int = 0
    weight: int = 0
    retries: int = 0
    http_429: int = 0
    http_418: int = 0
    malformed: int = 0
    bytes_received: int = 0
    seconds: float = 0.0


class BinanceClient:
    """A synchronous, thread-safe client for the public USD-M market-data routes.

    Every request is paced against the weight budget (fixed windows, adopting the server's
    ``X-MBX-USED-WEIGHT-*`` count) and the separate 5-minute counters; 429 is honoured via
    ``Retry-After``; 418 stops with :class:`BannedError`; 5xx, 408, timeouts, transport errors
    and malformed bodies are retried with exponential backoff and jitter.

    Setting ``stop`` (an Event the caller owns; the default can never be set) ends every wait
    at once and makes further requests raise :class:`~ingmon.binance.limits.Aborted`; a request
    already on the wire is finished. ``on_wait(reason, seconds)`` is told of every wait of a
    second or more (a full weight window, a 5-minute counter, Retry-After, a retry backoff).
    ``sleep`` replaces those waits in tests; it cannot be interrupted.
    """

    def __init__(
        self,
        base_url: str,
        *,
        archive_url: str | None = None,
        timeout_seconds: float = 10.0,
        max_retries: int = 6,
        backoff_base_seconds: float = 0.25,
        backoff_cap_seconds: float = 8.0,
        limits: RateLimits | None = None,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        stop: threading.Event = NEVER,
        on_wait: WaitCallback | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.archive_url = (archive_url or base_url).rstrip("/")
        self.max_retries = max_retries
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.limits = limits or RateLimits()
        # Limits from the caller cap what adopt_rate_limits takes from exchangeInfo; without them
        # the client starts at Binance's published limits and then follows what the exchange says.
        self.weight_cap = None if limits is None else limits.weight_per_window
        self._sleep = sleep
        self.stop = stop
        self.on_wait = on_wait
        self._random = random.Random()
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            headers={"User-Agent": "ingmon/0.1 (+backfill)"},
        )
        self.weight_budget = Budget(
            limit=self.limits.weight_per_window,
            window_seconds=self.limits.window_seconds,
            reason=_WEIGHT_WINDOW,
        )
        self.data_budget = Budget(
            limit=self.limits.data_requests_per_window,
            window_seconds=self.limits.five_minute_seconds,
            reason=_DATA_COUNTER,
        )
        self.funding_budget = Budget(
            limit=self.limits.funding_requests_per_window,
            window_seconds=self.limits.five_minute_seconds,
            reason=_FUNDING_COUNTER,
        )
        self._stats_lock = threading.Lock()
        self.stats: dict[str, RouteStats] = defaultdict(RouteStats)

    def adopt_rate_limits(self, *, weight_limit: int, window_seconds: float) -> None:
        """Pace to what the exchange advertises (exchangeInfo ``rateLimits``), never above
        ``weight_cap`` when the client was given limits; the 5-minute windows scale with the
        weight window (60 s ↔ 300 s)."""
        limit = weight_limit if self.weight_cap is None else min(weight_limit, self.weight_cap)
        scale = window_seconds / 60.0
        # What this window already cost (exchangeInfo itself, at least) stays spent.
        spent = [b.spent() for b in (self.weight_budget, self.data_budget, self.funding_budget)]
        self.limits = RateLimits(
            weight_per_window=limit,
            window_seconds=window_seconds,
            data_requests_per_window=self.limits.data_requests_per_window,
            funding_requests_per_window=self.limits.funding_requests_per_window,
            five_minute_seconds=300.0 * scale,
        )
        self.weight_budget = Budget(
            limit=limit, window_seconds=window_seconds, reason=_WEIGHT_WINDOW
        )
        self.data_budget = Budget(
            limit=self.limits.data_requests_per_window,
            window_seconds=300.0 * scale,
            reason=_DATA_COUNTER,
        )
        self.funding_budget = Budget(
            limit=self.limits.funding_requests_per_window,
            window_seconds=300.0 * scale,
            reason=_FUNDING_COUNTER,
        )
        now = time.time()
        for budget, used in zip(
            (self.weight_budget, self.data_budget, self.funding_budget), spent, strict=True
        ):
            budget.observe(used, sent_at=now)

    # ---- plumbing -----------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BinanceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, route: str, **increments: float) -> None:
        with self._stats_lock:
            stats = self.stats[route]
            for name, amount in increments.items():
                setattr(stats, name, getattr(stats, name) + amount)

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2.0**attempt)
        return float(base * self._random.uniform(0.5, 1.5))

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Aborted

    def _wait(self, seconds: float, reason: str) -> None:
        """Wait ``seconds`` (announced when long), ending early with Aborted on ``stop``."""
        if self.on_wait is not None and seconds >= WAIT_REPORT_SECONDS:
            self.on_wait(reason, seconds)
        if self._sleep is None:
            pause(seconds, stop=self.stop)
        else:
            self._sleep(seconds)
            self._check_stop()

    def _acquire(self, route: str, weight: int) -> None:
        """Reserve the request's weight and counters, waiting (interruptibly) for room."""
        self.weight_budget.acquire(weight, stop=self.stop, on_wait=self.on_wait)
        for budget, cost in self._budgets(route):
            budget.acquire(cost, stop=self.stop, on_wait=self.on_wait)

    def _budgets(self, route: str) -> list[tuple[Budget, int]]:
        if route in DATA_ROUTES:
            return [(self.data_budget, 1)]
        if route in FUNDING_ROUTES:
            return [(self.funding_budget, 1)]
        return []

    def _request(
        self,
        route: str,
        path: str,
        params: Mapping[str, Any],
        *,
        weight: int,
        max_retries: int | None = None,
    ) -> Any:
        """GET a REST route and return its decoded JSON, retrying what is retryable."""
        retries_left = self.max_retries if max_retries is None else max_retries
        attempt = 0
        url = f"{self.base_url}{path}"
        while True:
            # Checked before every attempt, retries included: a stopped run sends nothing new.
            self._check_stop()
            self._acquire(route, weight)
            sent_at = time.time()
            self._count(route, requests=1, weight=weight)
            problem: str
            try:
                response = self._http.get(url, params=params)
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}".rstrip(": ")
            else:
                self._count(
                    route, bytes_received=len(response.content), seconds=time.time() - sent_at
                )
                used = parse_used_weight(dict(response.headers))
                if used is not None:
                    self.weight_budget.observe(used[0], sent_at=sent_at)
                status = response.status_code
                if status == 200:
                    try:
                        return orjson.loads(response.content)
                    except orjson.JSONDecodeError:
                        self._count(route, malformed=1)
                        problem = "malformed JSON body"
                elif status == 429:
                    self._count(route, http_429=1)
                    retry_after = _retry_after(response)
                    for budget in (self.weight_budget, *(b for b, _ in self._budgets(route))):
                        budget.block_until(time.time() + retry_after)
                    # A 429 is pacing, not failure: honour it without spending a retry.
                    continue
                elif status == 418:
                    self._count(route, http_418=1)
                    raise _banned(response)
                elif status == 408 or status >= 500:
                    problem = f"HTTP {status}"
                else:
                    raise _exchange_error(response)
            if retries_left <= 0:
                raise ExchangeUnavailableError(
                    f"{route}: {problem} (gave up after {attempt + 1} attempts)"
                )
            self._count(route, retries=1)
            self._wait(self._backoff(attempt), "a retry backoff")
            retries_left -= 1
            attempt += 1

    def _checked(
        self,
        route: str,
        path: str,
        params: Mapping[str, Any],
        *,
        weight: int,
        parse: Callable[..., Page],
    ) -> Page:
        """Request and parse a page (``parse(body, cursor=…)``); a body of the wrong shape is
        retried like a 5xx."""
        cursor = _cursor(path, params)
        for attempt in range(self.max_retries + 1):
            payload = self._request(route, path, params, weight=weight)
            try:
                return parse(payload, cursor=cursor)
            except MalformedResponse:
                self._count(route, malformed=1)
                if attempt == self.max_retries:
                    break
                self._count(route, retries=1)
                self._wait(self._backoff(attempt), "a retry backoff")
        raise ExchangeUnavailableError(f"{route}: malformed responses after every retry")

    # ---- metadata -----------------------------------------------------------------------

    def ping(self, *, max_retries: int | None = None) -> None:
        self._request("ping", "/fapi/v1/ping", {}, weight=1, max_retries=max_retries)

    def server_time_ms(self, *, max_retries: int | None = None) -> int:
        body = self._request("time", "/fapi/v1/time", {}, weight=1, max_retries=max_retries)
        try:
            return int(body["serverTime"])
        except (KeyError, TypeError, ValueError):
            raise ExchangeError("time: response without serverTime") from None

    def exchange_info(self, *, max_retries: int | None = None) -> ExchangeInfo:
        body = self._request(
            "exchangeInfo", "/fapi/v1/exchangeInfo", {}, weight=1, max_retries=max_retries
        )
        symbols = {}
        try:
            for item in body["symbols"]:
                filters = {f["filterType"]: f for f in item.get("filters", [])}
                symbols[item["symbol"]] = SymbolInfo(
                    symbol=item["symbol"],
                    status=item.get("status", "TRADING"),
                    contract_type=item.get("contractType", "PERPETUAL"),
                    onboard_ms=int(item.get("onboardDate", 0)),
                    tick_size=filters.get("PRICE_FILTER", {}).get("tickSize", ""),
                    step_size=filters.get("LOT_SIZE", {}).get("stepSize", ""),
                )
            weight_limit, window = None, None
            for entry in body.get("rateLimits", []):
                if entry.get("rateLimitType") == "REQUEST_WEIGHT":
                    weight_limit = int(entry["limit"])
                    unit = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
                    window = float(entry.get("intervalNum", 1) * unit[entry["interval"]])
        except (KeyError, TypeError, ValueError) as error:
            raise ExchangeError(f"exchangeInfo: unexpected shape ({error})") from None
        return ExchangeInfo(symbols, weight_limit, window)

    def funding_intervals(self) -> dict[str, int]:
        """Funding interval hours of symbols with adjusted settings (others settle every 8 h)."""
        body = self._request("fundingInfo", "/fapi/v1/fundingInfo", {}, weight=0)
        try:
            return {item["symbol"]: int(item["fundingIntervalHours"]) for item in body}
        except (KeyError, TypeError, ValueError):
            raise ExchangeError("fundingInfo: unexpected shape") from None

    # ---- market data --------------------------------------------------------------------

    def klines(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int,
        end_ms: int,
        limit: int = 499,
        closed_before_ms: int | None = None,
    ) -> Page:
        """Candles with ``start_ms <= open_time <= end_ms``; candles not closed before
        ``closed_before_ms`` (the still-open one) are dropped."""
        params = {
            "symbol": symbol,
            "interval": interval,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": limit,
        }
        parse = functools.partial(
            klines_page,
            interval=interval,
            start_ms=start_ms,
            end_ms=end_ms,
            limit=limit,
            closed_before_ms=closed_before_ms,
        )
        weight = route_cost("klines", limit=limit)
        return self._checked("klines", "/fapi/v1/klines", params, weight=weight, parse=parse)

    def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Page:
        """Aggregate trades by ``fromId`` (inclusive) or a time window shorter than one hour.

        Rows with ids below ``from_id`` or times outside ``[start_ms, end_ms]`` are rejected.
        """
        optional = {"fromId": from_id, "startTime": start_ms, "endTime": end_ms}
        params = {"symbol": symbol, "limit": limit}
        params.update({name: value for name, value in optional.items() if value is not None})
        parse = functools.partial(
            agg_trades_page, limit=limit, from_id=from_id, start_ms=start_ms, end_ms=end_ms
        )
        weight = route_cost("aggTrades")
        return self._checked("aggTrades", "/fapi/v1/aggTrades", params, weight=weight, parse=parse)

    def open_interest(
        self, symbol: str, period: str, *, start_ms: int, end_ms: int, limit: int = 500
    ) -> Page:
        """Open-interest statistics with ``start_ms <= timestamp <= end_ms`` (last 30 days only)."""
        params = {
            "symbol": symbol,
            "period": period,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": limit,
        }
        parse = functools.partial(
            open_interest_page, period=period, start_ms=start_ms, end_ms=end_ms, limit=limit
        )
        path = "/futures/data/openInterestHist"
        return self._checked("openInterestHist", path, params, weight=0, parse=parse)

    def funding_rates(self, symbol: str, *, start_ms: int, end_ms: int, limit: int = 1000) -> Page:
        """Funding settlements with ``start_ms <= fundingTime <= end_ms``, times floored to 1 s.

        ``funding_interval_hours`` is left empty; the backfill derives it from the series.
        """
        params = {"symbol": symbol, "startTime": start_ms, "endTime": end_ms, "limit": limit}
        parse = functools.partial(
            funding_page, symbol=symbol, start_ms=start_ms, end_ms=end_ms, limit=limit
        )
        return self._checked("fundingRate", "/fapi/v1/fundingRate", params, weight=0, parse=parse)

    # ---- archive ------------------------------------------------------------------------

    def archive_bytes(self, path: str) -> bytes | None:
        """GET a data.binance.vision file (``/data/futures/um/…``); None when it is not there."""
        url = f"{self.archive_url}{path}"
        for attempt in range(self.max_retries + 1):
            self._check_stop()
            started = time.time()
            self._count("archive", requests=1)
            try:
                response = self._http.get(url)
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}"
            else:
                self._count(
                    "archive", bytes_received=len(response.content), seconds=time.time() - started
                )
                if response.status_code == 200:
                    return response.content
                if response.status_code in (403, 404):
                    return None
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in (408, 429):
                    raise ExchangeError(f"archive {path}: {problem}", status=response.status_code)
            if attempt == self.max_retries:
                raise ExchangeUnavailableError(f"archive {path}: {problem} after every retry")
            self._count("archive", retries=1)
            self._wait(self._backoff(attempt), "a retry backoff")
        return None


def _cursor(path: str, params: Mapping[str, Any]) -> str:
    """The request as it was sent, for the ingest log: ``/fapi/v1/klines?symbol=…``."""
    return path + "?" + "&".join(f"{key}={value}" for key, value in params.items())


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(float(str(response.headers.get("Retry-After", "1"))), 0.0)
    except ValueError:
        return 1.0


def _error_body(response: httpx.Response) -> tuple[int | None, str]:
    try:
        body = orjson.loads(response.content)
        return int(body["code"]), str(body["msg"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None, response.text.strip()[:200] or response.reason_phrase


def _banned(response: httpx.Response) -> BannedError:
    code, message = _error_body(response)
    retry_after = _retry_after(response)
    match = _BANNED_UNTIL.search(message)
    until_ms = int(match.group(1)) if match else now_ms() + round(retry_after * 1000)
    return BannedError(
        f"IP banned by the exchange until {iso_ms(until_ms)} (HTTP 418, code {code}): {message}",
        retry_after_seconds=retry_after,
        banned_until_ms=until_ms,
    )


def _exchange_error(response: httpx.Response) -> ExchangeError:
    code, message = _error_body(response)
    if response.status_code == 429:
        return RateLimitedError(message, retry_after_seconds=_retry_after(response))
    where = response.request.url.path
    return ExchangeError(
        f"{where}: HTTP {response.status_code}, code {code}: {message}",
        status=response.status_code,
        code=code,
    )

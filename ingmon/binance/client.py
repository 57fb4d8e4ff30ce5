"""Binance USD-M REST client: weight-paced, retrying, validating every page into Arrow tables."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa

from ingmon.binance.limits import (
    DATA_ROUTES,
    FUNDING_ROUTES,
    Budget,
    RateLimits,
    parse_used_weight,
    route_cost,
)
from ingmon.errors import (
    BannedError,
    ExchangeError,
    ExchangeUnavailableError,
    RateLimitedError,
)
from ingmon.schema import AGG_TRADES, CANDLES, FUNDING, OPEN_INTEREST, Dataset, interval_ms

__all__ = [
    "BinanceClient",
    "ExchangeInfo",
    "Page",
    "RouteStats",
    "SymbolInfo",
]

_BANNED_UNTIL = re.compile(r"banned until (\d+)")
SECOND_MS = 1000


class _MalformedResponse(Exception):
    """A 200 response whose body is not the documented shape; retried like a 5xx."""


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


@dataclass
class Page:
    """One validated response: rows in the lake's schema plus what was dropped and why."""

    dataset: Dataset
    table: pa.Table
    received: int
    rejected: int
    duplicates: int
    limit: int
    cursor: str
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def full(self) -> bool:
        """The response hit ``limit``: more rows may follow."""
        return self.received >= self.limit


def _ms_array(values: Sequence[Any]) -> pa.Array:
    return pa.array(values, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))


def _decimal_array(values: Sequence[Any]) -> pa.Array:
    return pa.array(values, pa.string()).cast(pa.float64())


def _validated(
    dataset: Dataset,
    table: pa.Table,
    keys: np.ndarray[Any, Any],
    keep: np.ndarray[Any, Any],
) -> tuple[pa.Table, int, int]:
    """Keep rows in the window (``keep``), sort by key, drop duplicate keys; count both drops."""
    rejected = int((~keep).sum())
    if rejected:
        table, keys = table.filter(pa.array(keep)), keys[keep]
    duplicates = 0
    if keys.size > 1 and not bool(np.all(keys[1:] > keys[:-1])):
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        first = np.insert(sorted_keys[1:] != sorted_keys[:-1], 0, True)
        duplicates = int((~first).sum())
        table = table.take(order[first])
    return table.cast(dataset.arrow_schema), rejected, duplicates


class BinanceClient:
    """A synchronous, thread-safe client for the public USD-M market-data routes.

    Every request is paced against the weight budget (fixed windows, adopting the server's
    ``X-MBX-USED-WEIGHT-*`` count) and the separate 5-minute counters; 429 is honoured via
    ``Retry-After``; 418 stops with :class:`BannedError`; 5xx, 408, timeouts, transport errors
    and malformed bodies are retried with exponential backoff and jitter.
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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.archive_url = (archive_url or base_url).rstrip("/")
        self.max_retries = max_retries
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.limits = limits or RateLimits()
        self._sleep = sleep
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
            limit=self.limits.weight_per_window, window_seconds=self.limits.window_seconds
        )
        self.data_budget = Budget(
            limit=self.limits.data_requests_per_window,
            window_seconds=self.limits.five_minute_seconds,
        )
        self.funding_budget = Budget(
            limit=self.limits.funding_requests_per_window,
            window_seconds=self.limits.five_minute_seconds,
        )
        self._stats_lock = threading.Lock()
        self.stats: dict[str, RouteStats] = defaultdict(RouteStats)

    def adopt_rate_limits(self, *, weight_limit: int, window_seconds: float) -> None:
        """Pace to what the exchange advertises (exchangeInfo ``rateLimits``), never above the
        configured cap; the 5-minute windows scale with the weight window (60 s ↔ 300 s)."""
        limit = min(weight_limit, self.limits.weight_per_window)
        scale = window_seconds / 60.0
        self.limits = RateLimits(
            weight_per_window=limit,
            window_seconds=window_seconds,
            data_requests_per_window=self.limits.data_requests_per_window,
            funding_requests_per_window=self.limits.funding_requests_per_window,
            five_minute_seconds=300.0 * scale,
        )
        self.weight_budget = Budget(limit=limit, window_seconds=window_seconds)
        self.data_budget = Budget(
            limit=self.limits.data_requests_per_window, window_seconds=300.0 * scale
        )
        self.funding_budget = Budget(
            limit=self.limits.funding_requests_per_window, window_seconds=300.0 * scale
        )

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
            self.weight_budget.acquire(weight)
            for budget, cost in self._budgets(route):
                budget.acquire(cost)
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
            self._sleep(self._backoff(attempt))
            retries_left -= 1
            attempt += 1

    def _checked(
        self,
        route: str,
        path: str,
        params: Mapping[str, Any],
        *,
        weight: int,
        parse: Callable[[Any], Page],
    ) -> Page:
        """Request and parse a page; a body of the wrong shape is retried like a 5xx."""
        for attempt in range(self.max_retries + 1):
            payload = self._request(route, path, params, weight=weight)
            try:
                return parse(payload)
            except _MalformedResponse:
                self._count(route, malformed=1)
                if attempt == self.max_retries:
                    break
                self._count(route, retries=1)
                self._sleep(self._backoff(attempt))
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

    def exchange_info(self) -> ExchangeInfo:
        body = self._request("exchangeInfo", "/fapi/v1/exchangeInfo", {}, weight=1)
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
        step = interval_ms(interval)
        params = {
            "symbol": symbol,
            "interval": interval,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": limit,
        }
        cursor = _cursor("/fapi/v1/klines", params)

        def parse(rows: Any) -> Page:
            if not isinstance(rows, list) or any(
                not isinstance(r, list) or len(r) != 12 for r in rows
            ):
                raise _MalformedResponse
            try:
                cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[]] * 12
                table = pa.table(
                    {
                        "open_time": _ms_array(cols[0]),
                        "open": _decimal_array(cols[1]),
                        "high": _decimal_array(cols[2]),
                        "low": _decimal_array(cols[3]),
                        "close": _decimal_array(cols[4]),
                        "volume": _decimal_array(cols[5]),
                        "close_time": _ms_array(cols[6]),
                        "quote_volume": _decimal_array(cols[7]),
                        "trade_count": pa.array(cols[8], pa.int64()),
                        "taker_buy_volume": _decimal_array(cols[9]),
                        "taker_buy_quote_volume": _decimal_array(cols[10]),
                        "ignore": _decimal_array(cols[11]),
                    }
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
                raise _MalformedResponse from None
            open_ms = np.asarray(cols[0], dtype=np.int64) if rows else np.zeros(0, np.int64)
            close_ms = np.asarray(cols[6], dtype=np.int64) if rows else np.zeros(0, np.int64)
            keep = (open_ms >= start_ms) & (open_ms <= end_ms) & (open_ms % step == 0)
            keep &= close_ms == open_ms + step - 1
            if closed_before_ms is not None:
                keep &= close_ms < closed_before_ms
            valid, rejected, duplicates = _validated(CANDLES, table, open_ms, keep)
            return Page(CANDLES, valid, len(rows), rejected, duplicates, limit, cursor)

        return self._checked(
            "klines",
            "/fapi/v1/klines",
            params,
            weight=route_cost("klines", limit=limit),
            parse=parse,
        )

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
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        if from_id is not None:
            params["fromId"] = from_id
        if start_ms is not None:
            params["startTime"] = start_ms
        if end_ms is not None:
            params["endTime"] = end_ms
        cursor = _cursor("/fapi/v1/aggTrades", params)

        def parse(rows: Any) -> Page:
            if not isinstance(rows, list):
                raise _MalformedResponse
            try:
                ids = [r["a"] for r in rows]
                times = [r["T"] for r in rows]
                makers = [r["m"] for r in rows]
                if any(type(m) is not bool for m in makers):
                    raise _MalformedResponse
                table = pa.table(
                    {
                        "agg_trade_id": pa.array(ids, pa.int64()),
                        "price": _decimal_array([r["p"] for r in rows]),
                        "quantity": _decimal_array([r["q"] for r in rows]),
                        "first_trade_id": pa.array([r["f"] for r in rows], pa.int64()),
                        "last_trade_id": pa.array([r["l"] for r in rows], pa.int64()),
                        "transact_time": _ms_array(times),
                        "is_buyer_maker": pa.array(makers, pa.bool_()),
                    }
                )
            except (KeyError, TypeError, pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                raise _MalformedResponse from None
            id_array = np.asarray(ids, dtype=np.int64)
            time_array = np.asarray(times, dtype=np.int64)
            keep = np.ones(id_array.size, dtype=bool)
            if from_id is not None:
                keep &= id_array >= from_id
            if start_ms is not None:
                keep &= time_array >= start_ms
            if end_ms is not None:
                keep &= time_array <= end_ms
            valid, rejected, duplicates = _validated(AGG_TRADES, table, id_array, keep)
            if from_id is not None and valid.num_rows:
                # Ids are continuous: a page must start at fromId and is cut at its first hole.
                got = valid["agg_trade_id"].to_numpy()
                if got[0] != from_id:
                    raise _MalformedResponse
                holes = np.flatnonzero(np.diff(got) != 1)
                if holes.size:
                    rejected += int(got.size - holes[0] - 1)
                    valid = valid.slice(0, int(holes[0]) + 1)
            return Page(AGG_TRADES, valid, len(rows), rejected, duplicates, limit, cursor)

        return self._checked(
            "aggTrades", "/fapi/v1/aggTrades", params, weight=route_cost("aggTrades"), parse=parse
        )

    def open_interest(
        self, symbol: str, period: str, *, start_ms: int, end_ms: int, limit: int = 500
    ) -> Page:
        """Open-interest statistics with ``start_ms <= timestamp <= end_ms`` (last 30 days only)."""
        step = interval_ms(period)
        params = {
            "symbol": symbol,
            "period": period,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": limit,
        }
        cursor = _cursor("/futures/data/openInterestHist", params)

        def parse(rows: Any) -> Page:
            if not isinstance(rows, list):
                raise _MalformedResponse
            try:
                # Binance documents the timestamp as a string and sends an integer: take both.
                stamps = [int(r["timestamp"]) for r in rows]
                supply = [r.get("CMCCirculatingSupply") for r in rows]
                table = pa.table(
                    {
                        "timestamp": _ms_array(stamps),
                        "sum_open_interest": _decimal_array([r["sumOpenInterest"] for r in rows]),
                        "sum_open_interest_value": _decimal_array(
                            [r["sumOpenInterestValue"] for r in rows]
                        ),
                        "cmc_circulating_supply": _decimal_array(supply),
                    }
                )
            except (KeyError, TypeError, ValueError, pa.ArrowInvalid, pa.ArrowTypeError):
                raise _MalformedResponse from None
            stamp_array = np.asarray(stamps, dtype=np.int64)
            keep = (stamp_array >= start_ms) & (stamp_array <= end_ms) & (stamp_array % step == 0)
            valid, rejected, duplicates = _validated(OPEN_INTEREST, table, stamp_array, keep)
            return Page(OPEN_INTEREST, valid, len(rows), rejected, duplicates, limit, cursor)

        return self._checked(
            "openInterestHist", "/futures/data/openInterestHist", params, weight=0, parse=parse
        )

    def funding_rates(self, symbol: str, *, start_ms: int, end_ms: int, limit: int = 1000) -> Page:
        """Funding settlements with ``start_ms <= fundingTime <= end_ms``, times floored to 1 s.

        ``funding_interval_hours`` is left empty; the backfill derives it from the series.
        """
        params = {"symbol": symbol, "startTime": start_ms, "endTime": end_ms, "limit": limit}
        cursor = _cursor("/fapi/v1/fundingRate", params)

        def parse(rows: Any) -> Page:
            if not isinstance(rows, list):
                raise _MalformedResponse
            try:
                if any(r["symbol"] != symbol for r in rows):
                    raise _MalformedResponse
                raw_times = np.asarray([int(r["fundingTime"]) for r in rows], dtype=np.int64)
                marks = [r.get("markPrice") or None for r in rows]
                times = raw_times // SECOND_MS * SECOND_MS
                table = pa.table(
                    {
                        "funding_time": _ms_array(times.tolist()),
                        "funding_rate": _decimal_array([r["fundingRate"] for r in rows]),
                        "mark_price": _decimal_array(marks),
                        "funding_interval_hours": pa.nulls(len(rows), pa.int32()),
                    }
                )
            except (KeyError, TypeError, ValueError, pa.ArrowInvalid, pa.ArrowTypeError):
                raise _MalformedResponse from None
            keep = (raw_times >= start_ms) & (raw_times <= end_ms)
            valid, rejected, duplicates = _validated(FUNDING, table, times, keep)
            return Page(FUNDING, valid, len(rows), rejected, duplicates, limit, cursor)

        return self._checked("fundingRate", "/fapi/v1/fundingRate", params, weight=0, parse=parse)

    # ---- archive ------------------------------------------------------------------------

    def archive_bytes(self, path: str) -> bytes | None:
        """GET a data.binance.vision file (``/data/futures/um/…``); None when it is not there."""
        url = f"{self.archive_url}{path}"
        for attempt in range(self.max_retries + 1):
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
                if response.status_code < 500 and response.status_code != 429:
                    raise ExchangeError(f"archive {path}: {problem}", status=response.status_code)
            if attempt == self.max_retries:
                raise ExchangeUnavailableError(f"archive {path}: {problem} after every retry")
            self._count("archive", retries=1)
            self._sleep(self._backoff(attempt))
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
    until_ms = int(match.group(1)) if match else int((time.time() + retry_after) * 1000)
    until = datetime.fromtimestamp(until_ms / 1000, UTC)
    return BannedError(
        f"IP banned by the exchange until {until:%Y-%m-%dT%H:%M:%SZ} (HTTP 418, code {code}): "
        f"{message}",
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

"""REST routes of the local exchange: Binance's parameter rules, windows, errors, JSON shapes."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

import numpy as np
import orjson

from ingmon.errors import ConfigError
from ingmon.exchange.clock import Clock
from ingmon.exchange.formats import (
    DAY_MS,
    HOUR_MS,
    KLINE_INTERVAL_MS,
    OI_PERIOD_MS,
    concat_columns,
    fixed_from_float,
    market_klines,
    slice_columns,
    symbol_info,
)
from ingmon.exchange.limits import Limits
from ingmon.exchange.market import (
    AggTrades,
    FundingRates,
    Klines,
    Market,
    OpenInterest,
    SymbolSpec,
    format_fixed,
)
from ingmon.exchange.paging import collect_backward, collect_forward
from ingmon.exchange.render import agg_trades_json, klines_json

__all__ = ["ApiError", "RestApi", "RestOptions"]

# The column dataclasses of a time series page (FundingRates, OpenInterest).
SeriesT = TypeVar("SeriesT", FundingRates, OpenInterest)

LimitPolicy = Literal["reject", "clamp"]


@dataclass(frozen=True)
class RestOptions:
    """Behaviour switches for the places where Binance is unverified or has changed over time.

    ``limit_policy``: an out-of-range ``limit`` gets 400/-1130 ("reject") or is clamped.
    ``agg_trades_retention_ms``: how far back REST aggTrades reach (1 year; 24 h in 2026 docs);
    older requests get the most recent trades instead, as freqtrade#10941 observed.
    ``oi_anchor``: which end of an openInterestHist window a ``limit`` keeps ("end": the latest
    rows, so page backwards by endTime; "start": the earliest).
    ``funding_jitter_ms``: fundingTime lands 0..N ms after the hour, deterministically.
    """

    limit_policy: LimitPolicy = "reject"
    agg_trades_retention_ms: int = 365 * DAY_MS
    agg_trades_max_window_ms: int = HOUR_MS
    oi_retention_ms: int = 30 * DAY_MS
    oi_timestamp_as_string: bool = False
    oi_anchor: Literal["end", "start"] = "end"
    funding_jitter_ms: int = 0
    funding_rate_type: str = "Regular"

    def __post_init__(self) -> None:
        if self.limit_policy not in ("reject", "clamp"):
            raise ConfigError(f"limit policy must be reject or clamp, not {self.limit_policy!r}")
        if self.oi_anchor not in ("end", "start"):
            raise ConfigError(f"oi_anchor must be end or start, not {self.oi_anchor!r}")
        if self.agg_trades_retention_ms <= 0 or self.oi_retention_ms <= 0:
            raise ConfigError("retention windows must be positive")
        if self.funding_jitter_ms < 0:
            raise ConfigError("funding jitter must be >= 0 ms")


class ApiError(Exception):
    """A Binance error answer: HTTP status plus the ``{"code", "msg"}`` body."""

    def __init__(self, code: int, msg: str, *, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status

    def body(self, *, msg_first: bool = False) -> bytes:
        """The JSON body; /futures/data/* put ``msg`` first (§1.3)."""
        if msg_first:
            return orjson.dumps({"msg": self.msg, "code": self.code})
        return orjson.dumps({"code": self.code, "msg": self.msg})


Params = Mapping[str, str]
RouteHandler = Callable[[Params, "str | None"], bytes]


def _mandatory(params: Params, name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise ApiError(
            -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def _long(params: Params, name: str) -> int | None:
    """An optional non-negative integer parameter (Binance LONG/INT)."""
    if name not in params:
        return None
    value = params[name]
    if value == "":
        raise ApiError(-1105, f"Parameter '{name}' was empty.")
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise ApiError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(value)


def raw_limit(params: Params) -> int | None:
    """The ``limit`` as sent, when it is a plain integer (used to price a klines request)."""
    value = params.get("limit", "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


class RestApi:
    """Route handlers over one market and clock; each returns the JSON body or raises ApiError."""

    def __init__(
        self,
        market: Market,
        *,
        clock: Clock,
        limits: Limits,
        options: RestOptions,
        duplicate_rows: int = 1,
        outside_rows: int = 2,
    ) -> None:
        self.market = market
        self.clock = clock
        self.limits = limits
        self.options = options
        self._duplicate_rows = duplicate_rows
        self._outside_rows = outside_rows
        self._specs = {spec.symbol: spec for spec in market.symbols}
        self.handlers: dict[str, RouteHandler] = {
            "ping": self.ping,
            "time": self.time,
            "exchangeInfo": self.exchange_info,
            "fundingInfo": self.funding_info,
            "klines": self.klines,
            "aggTrades": self.agg_trades,
            "fundingRate": self.funding_rate,
            "openInterestHist": self.open_interest_hist,
        }

    # --- parameters shared by the routes -------------------------------------------------------

    def _symbol(self, params: Params, *, mandatory: bool = True) -> SymbolSpec | None:
        if not mandatory and not params.get("symbol"):
            return None
        symbol = _mandatory(params, "symbol")
        spec = self._specs.get(symbol)
        if spec is None:
            raise ApiError(-1121, "Invalid symbol.")
        return spec

    def _limit(self, params: Params, *, default: int, maximum: int) -> int:
        limit = _long(params, "limit")
        if limit is None:
            return default
        if 1 <= limit <= maximum:
            return limit
        if self.options.limit_policy == "clamp":
            return min(max(limit, 1), maximum)
        raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")

    @staticmethod
    def _window(params: Params) -> tuple[int | None, int | None]:
        start_ms = _long(params, "startTime")
        end_ms = _long(params, "endTime")
        if start_ms is not None and end_ms is not None and start_ms > end_ms:
            raise ApiError(-1023, "Start time is greater than end time.")
        return start_ms, end_ms

    # --- simple routes -------------------------------------------------------------------------

    def ping(self, params: Params, fault: str | None) -> bytes:
        return b"{}"

    def time(self, params: Params, fault: str | None) -> bytes:
        return orjson.dumps({"serverTime": self.clock.now_ms()})

    def exchange_info(self, params: Params, fault: str | None) -> bytes:
        now_ms = self.clock.now_ms()
        document = {
            "timezone": "UTC",
            "serverTime": now_ms,
            "futuresType": "U_MARGINED",
            "rateLimits": self.limits.rate_limits_json(),
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [symbol_info(spec, now_ms) for spec in self.market.symbols],
        }
        return orjson.dumps(document)

    def funding_info(self, params: Params, fault: str | None) -> bytes:
        # Binance lists only symbols with adjusted settings, i.e. a non-default interval.
        adjusted = [
            {
                "symbol": spec.symbol,
                "adjustedFundingRateCap": "0.02000000",
                "adjustedFundingRateFloor": "-0.02000000",
                "fundingIntervalHours": spec.funding_interval_hours,
                "disclaimer": False,
            }
            for spec in self.market.symbols
            if spec.funding_interval_hours != 8
        ]
        return orjson.dumps(adjusted)

    # --- klines --------------------------------------------------------------------------------

    def klines(self, params: Params, fault: str | None) -> bytes:
        _mandatory(params, "symbol")
        interval = _mandatory(params, "interval")
        spec = self._symbol(params)
        assert spec is not None
        if interval not in KLINE_INTERVAL_MS:
            raise ApiError(-1120, "Invalid interval.")
        limit = self._limit(params, default=500, maximum=1500)
        start_ms, end_ms = self._window(params)
        now_ms = self.clock.now_ms()
        step_ms = KLINE_INTERVAL_MS[interval]
        symbol = spec.symbol

        def fetch(lo_ms: int, hi_ms: int) -> Klines:
            return market_klines(self.market, symbol, interval, lo_ms, hi_ms, now_ms=now_ms)

        floor_ms = spec.listing_ms - step_ms  # a 1w/1M candle may open before the listing minute
        hi_ms = now_ms if end_ms is None else min(end_ms, now_ms)
        if start_ms is not None:
            page = collect_forward(
                fetch, max(start_ms, floor_ms), hi_ms, limit=limit, step_ms=step_ms
            )
        else:
            page = collect_backward(fetch, floor_ms, hi_ms, limit=limit, step_ms=step_ms)
        if fault in ("duplicates", "outside") and len(page):
            page = self._kline_extras(
                fetch, page, fault, step_ms=step_ms, end_ms=end_ms, now_ms=now_ms, floor_ms=floor_ms
            )
        return klines_json(page, spec)

    def _kline_extras(
        self,
        fetch: Callable[[int, int], Klines],
        page: Klines,
        fault: str,
        *,
        step_ms: int,
        end_ms: int | None,
        now_ms: int,
        floor_ms: int,
    ) -> Klines:
        first_ms = int(page.open_time_ms[0])
        last_ms = int(page.open_time_ms[-1])
        count = self._duplicate_rows if fault == "duplicates" else self._outside_rows
        if fault == "outside":
            beyond_ms = max(last_ms, end_ms if end_ms is not None else last_ms)
            after = fetch(beyond_ms + 1, min(beyond_ms + (count + 2) * step_ms, now_ms))
            after = slice_columns(after, slice(0, count))
            if len(after):
                return concat_columns([page, after])
        before = collect_backward(fetch, floor_ms, first_ms - 1, limit=count, step_ms=step_ms)
        return concat_columns([before, page])

    # --- aggTrades -----------------------------------------------------------------------------

    def agg_trades(self, params: Params, fault: str | None) -> bytes:
        spec = self._symbol(params)
        assert spec is not None
        limit = self._limit(params, default=500, maximum=1000)
        from_id = _long(params, "fromId")
        start_ms, end_ms = self._window(params)
        if (
            start_ms is not None
            and end_ms is not None
            and end_ms - start_ms >= self.options.agg_trades_max_window_ms
        ):
            hours = self.options.agg_trades_max_window_ms // HOUR_MS
            raise ApiError(-1127, f"More than {hours} hours between startTime and endTime.")
        market = self.market
        symbol = spec.symbol
        now_ms = self.clock.now_ms()
        retention_start_ms = now_ms - self.options.agg_trades_retention_ms
        retention_first_id = market.first_agg_id_at(symbol, retention_start_ms)
        next_id = market.first_agg_id_at(symbol, now_ms + 1)  # first trade after now

        def ending_at(last_id: int) -> AggTrades:
            first_id = max(last_id - limit + 1, retention_first_id)
            return market.agg_trades_from_id(
                symbol, first_id, max(0, last_id - first_id + 1), until_ms=now_ms
            )

        out_of_retention = any(
            value is not None and value < retention_start_ms for value in (start_ms, end_ms)
        )
        if from_id is not None:
            page = market.agg_trades_from_id(
                symbol, max(from_id, retention_first_id), limit, until_ms=now_ms
            )
            page = _clip_trades(
                page, start_ms, min(now_ms, end_ms if end_ms is not None else now_ms)
            )
        elif out_of_retention:
            # Binance answers an expired window with the most recent trades, not an error.
            page = ending_at(next_id - 1)
        elif start_ms is not None:
            hi_ms = now_ms if end_ms is None else min(end_ms, now_ms)
            page = market.agg_trades_from_id(
                symbol, market.first_agg_id_at(symbol, start_ms), limit, until_ms=hi_ms
            )
        elif end_ms is not None:
            page = ending_at(market.first_agg_id_at(symbol, min(end_ms, now_ms) + 1) - 1)
        else:
            page = ending_at(next_id - 1)
        if fault in ("duplicates", "outside"):
            if from_id is not None:
                anchor_id = from_id
            elif start_ms is not None and not out_of_retention:
                anchor_id = market.first_agg_id_at(symbol, start_ms)
            else:
                anchor_id = next_id
            page = self._trade_extras(
                spec, page, fault, anchor_id=anchor_id, end_ms=end_ms, now_ms=now_ms
            )
        return agg_trades_json(page, spec)

    def _trade_extras(
        self,
        spec: SymbolSpec,
        page: AggTrades,
        fault: str,
        *,
        anchor_id: int,
        end_ms: int | None,
        now_ms: int,
    ) -> AggTrades:
        market = self.market
        symbol = spec.symbol
        if fault == "outside" and end_ms is not None and end_ms < now_ms:
            after = market.agg_trades_from_id(
                symbol,
                market.first_agg_id_at(symbol, end_ms + 1),
                self._outside_rows,
                until_ms=now_ms,
            )
            if len(after):
                return concat_columns([page, after])
        first_id = int(page.agg_id[0]) if len(page) else anchor_id
        count = self._duplicate_rows if fault == "duplicates" else self._outside_rows
        before = market.agg_trades_from_id(symbol, max(first_id - count, 0), count, until_ms=now_ms)
        before = slice_columns(before, before.agg_id < first_id)
        return concat_columns([before, page])

    # --- fundingRate ---------------------------------------------------------------------------

    def funding_rate(self, params: Params, fault: str | None) -> bytes:
        spec = self._symbol(params, mandatory=False)
        limit = self._limit(params, default=100, maximum=1000)
        start_ms, end_ms = self._window(params)
        now_ms = self.clock.now_ms()
        hi_ms = now_ms if end_ms is None else min(end_ms, now_ms)
        specs = [spec] if spec is not None else self.market.symbols
        pages = []
        for each in specs:
            fetch = self._funding_fetcher(each, now_ms)
            step_ms = each.funding_interval_hours * HOUR_MS
            floor_ms = each.listing_ms - step_ms
            if start_ms is not None:
                page = collect_forward(
                    fetch,
                    max(start_ms, floor_ms),
                    hi_ms,
                    limit=limit,
                    step_ms=step_ms,
                )
            else:
                page = collect_backward(fetch, floor_ms, hi_ms, limit=limit, step_ms=step_ms)
            if spec is not None and fault in ("duplicates", "outside"):
                page = self._series_extras(
                    fetch,
                    page,
                    fault,
                    first_ms=int(page.funding_time_ms[0]) if len(page) else None,
                    step_ms=step_ms,
                    end_ms=end_ms,
                    now_ms=now_ms,
                    floor_ms=floor_ms,
                )
            pages.append((each, page))
        rows: list[tuple[int, int, dict[str, object]]] = []
        for position, (each, page) in enumerate(pages):
            rows.extend(
                (time_ms, position, row)
                for time_ms, row in zip(
                    page.funding_time_ms.tolist(), self._funding_rows(each, page), strict=True
                )
            )
        if len(pages) > 1:
            rows.sort(key=lambda item: (item[0], item[1]))
            rows = rows[:limit] if start_ms is not None else rows[-limit:]
        return orjson.dumps([row for _, _, row in rows])

    def _funding_fetcher(self, spec: SymbolSpec, now_ms: int) -> Callable[[int, int], FundingRates]:
        jitter_ms = self.options.funding_jitter_ms
        seed = zlib.crc32(spec.symbol.encode())

        def fetch(lo_ms: int, hi_ms: int) -> FundingRates:
            hi_ms = min(hi_ms, now_ms)
            rates = self.market.funding(
                spec.symbol, lo_ms - jitter_ms, max(hi_ms, lo_ms - jitter_ms)
            )
            if jitter_ms:
                nominal = rates.funding_time_ms
                # Fibonacci hashing of (hour, symbol): stable, spread over 0..jitter_ms.
                mixed = (nominal.astype(np.uint64) // np.uint64(HOUR_MS) + np.uint64(seed)) * (
                    np.uint64(0x9E3779B97F4A7C15)
                )
                offsets = (mixed >> np.uint64(40)) % np.uint64(jitter_ms + 1)
                rates = replace(rates, funding_time_ms=nominal + offsets.astype(np.int64))
            times = rates.funding_time_ms
            return slice_columns(rates, (times >= lo_ms) & (times <= hi_ms))

        return fetch

    def _series_extras(
        self,
        fetch: Callable[[int, int], SeriesT],
        page: SeriesT,
        fault: str,
        *,
        first_ms: int | None,
        step_ms: int,
        end_ms: int | None,
        now_ms: int,
        floor_ms: int,
    ) -> SeriesT:
        """Funding/OI data faults: rows past ``end_ms`` (outside) or just before the page."""
        if fault == "outside" and end_ms is not None:
            after = collect_forward(
                fetch, end_ms + 1, now_ms, limit=self._outside_rows, step_ms=step_ms
            )
            if len(after):
                return concat_columns([page, after])
        count = self._duplicate_rows if fault == "duplicates" else self._outside_rows
        anchor_ms = first_ms if first_ms is not None else now_ms + 1
        before = collect_backward(fetch, floor_ms, anchor_ms - 1, limit=count, step_ms=step_ms)
        return concat_columns([before, page])

    def _funding_rows(self, spec: SymbolSpec, page: FundingRates) -> list[dict[str, object]]:
        mark_units = page.mark_price_ticks * 10 ** (8 - spec.price_decimals)
        rate_type = self.options.funding_rate_type
        return [
            {
                "symbol": spec.symbol,
                "fundingRate": rate,
                "fundingTime": time_ms,
                "markPrice": mark,
                "rateType": rate_type,
            }
            for rate, time_ms, mark in zip(
                format_fixed(page.funding_rate_e8, 8),
                page.funding_time_ms.tolist(),
                format_fixed(mark_units, 8),
                strict=True,
            )
        ]

    # --- openInterestHist ----------------------------------------------------------------------

    def open_interest_hist(self, params: Params, fault: str | None) -> bytes:
        _mandatory(params, "symbol")
        period = _mandatory(params, "period")
        spec = self._symbol(params)
        assert spec is not None
        if period not in OI_PERIOD_MS:
            raise ApiError(-1130, "parameter 'period' is invalid.")
        limit = self._limit(params, default=30, maximum=500)
        start_ms, end_ms = self._window(params)
        now_ms = self.clock.now_ms()
        retention_start_ms = now_ms - self.options.oi_retention_ms
        if start_ms is not None and start_ms < retention_start_ms:
            raise ApiError(-1130, "parameter 'startTime' is invalid.")
        step_ms = OI_PERIOD_MS[period]
        floor_ms = max(retention_start_ms, spec.listing_ms - step_ms)
        symbol = spec.symbol

        def fetch(lo_ms: int, hi_ms: int) -> OpenInterest:
            hi_ms = min(hi_ms, now_ms)
            table = self.market.open_interest(symbol, period, lo_ms, max(lo_ms, hi_ms))
            times = table.timestamp_ms
            return slice_columns(table, (times >= lo_ms) & (times <= hi_ms))

        lo_ms = floor_ms if start_ms is None else max(start_ms, floor_ms)
        hi_ms = now_ms if end_ms is None else min(end_ms, now_ms)
        if self.options.oi_anchor == "start" and start_ms is not None:
            page = collect_forward(fetch, lo_ms, hi_ms, limit=limit, step_ms=step_ms)
        else:
            page = collect_backward(fetch, lo_ms, hi_ms, limit=limit, step_ms=step_ms)
        if fault in ("duplicates", "outside"):
            page = self._series_extras(
                fetch,
                page,
                fault,
                first_ms=int(page.timestamp_ms[0]) if len(page) else None,
                step_ms=step_ms,
                end_ms=end_ms,
                now_ms=now_ms,
                floor_ms=spec.listing_ms - step_ms,
            )
        return self._oi_json(spec, page)

    def _oi_json(self, spec: SymbolSpec, page: OpenInterest) -> bytes:
        oi_units = page.sum_open_interest_steps * 10 ** (8 - spec.quantity_decimals)
        timestamps: list[int] | list[str] = page.timestamp_ms.tolist()
        if self.options.oi_timestamp_as_string:
            timestamps = [str(value) for value in timestamps]
        rows = [
            {
                "symbol": spec.symbol,
                "sumOpenInterest": amount,
                "sumOpenInterestValue": value,
                "CMCCirculatingSupply": supply,
                "timestamp": timestamp,
            }
            for amount, value, supply, timestamp in zip(
                format_fixed(oi_units, 8),
                fixed_from_float(page.sum_open_interest_value, 8),
                fixed_from_float(page.cmc_circulating_supply, 2),
                timestamps,
                strict=True,
            )
        ]
        return orjson.dumps(rows)


def _clip_trades(trades: AggTrades, lo_ms: int | None, hi_ms: int) -> AggTrades:
    keep = trades.time_ms <= hi_ms
    if lo_ms is not None:
        keep &= trades.time_ms >= lo_ms
    return trades if bool(keep.all()) else slice_columns(trades, keep)

"""Binance interval enums and the vectorised string columns shared by REST pages and archives."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np

from ingmon.exchange.market import FloatArray, IntArray, Klines, Market, SymbolSpec, format_fixed
from ingmon.schema import INTERVAL_MS, OI_PERIODS
from ingmon.times import DAY_MS, HOUR_MS

__all__ = [
    "ARCHIVE_DAILY_INTERVALS",
    "ARCHIVE_MONTHLY_INTERVALS",
    "DAY_MS",
    "HOUR_MS",
    "KLINE_INTERVAL_MS",
    "OI_PERIOD_MS",
    "concat_columns",
    "fixed_from_float",
    "market_klines",
    "slice_columns",
    "symbol_info",
]

_PERPETUAL_DELIVERY_MS = 4_133_404_800_000  # Binance's "never" for perpetual contracts

# USD-M kline intervals (no 1s: §1.1). 1M is calendar-aligned; 31 days is its upper bound,
# which is all the server uses these lengths for (sizing fetch windows).
KLINE_INTERVAL_MS = {**INTERVAL_MS, "3d": 3 * DAY_MS, "1w": 7 * DAY_MS, "1M": 31 * DAY_MS}
OI_PERIOD_MS = {period: INTERVAL_MS[period] for period in OI_PERIODS}

# data.binance.vision interval directories (binance-public-data enums.py, without spot's 1s);
# "1mo" stands for 1M on case-insensitive file systems.
ARCHIVE_DAILY_INTERVALS = {
    name: name
    for name in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
}
ARCHIVE_MONTHLY_INTERVALS = {**ARCHIVE_DAILY_INTERVALS, "3d": "3d", "1w": "1w", "1mo": "1M"}

# Intervals the simulator does not aggregate itself; the server builds them from 1d candles.
_CALENDAR_INTERVALS = frozenset({"3d", "1w", "1M"})
_MONDAY_OFFSET_MS = 4 * DAY_MS  # 1970-01-01 was a Thursday; weekly candles open on Monday

ColumnsT = TypeVar("ColumnsT")


def market_klines(
    market: Market, symbol: str, interval: str, start_ms: int, end_ms: int, *, now_ms: int
) -> Klines:
    """``Market.klines`` for every USD-M interval: 3d/1w/1M are aggregated from 1d candles
    (3d on the epoch grid, 1w from Monday, 1M by calendar month, as Binance aligns them)."""
    if interval not in _CALENDAR_INTERVALS:
        return market.klines(symbol, interval, start_ms, end_ms, now_ms=now_ms)
    high_ms = min(end_ms, now_ms)
    starts = _bucket_starts(interval, start_ms, high_ms)
    if starts.size == 0:
        return market.klines(symbol, "1d", start_ms, start_ms - 1, now_ms=now_ms)
    ends = np.append(starts[1:], _next_start(interval, int(starts[-1])))
    daily = market.klines(symbol, "1d", int(starts[0]), int(ends[-1]) - 1, now_ms=now_ms)
    if len(daily) == 0:
        return daily
    bucket = np.searchsorted(starts, daily.open_time_ms, side="right") - 1
    firsts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    lasts = np.r_[firsts[1:], len(daily)] - 1
    owners = bucket[firsts]
    return Klines(
        open_time_ms=starts[owners],
        open_ticks=daily.open_ticks[firsts],
        high_ticks=np.maximum.reduceat(daily.high_ticks, firsts),
        low_ticks=np.minimum.reduceat(daily.low_ticks, firsts),
        close_ticks=daily.close_ticks[lasts],
        volume_steps=np.add.reduceat(daily.volume_steps, firsts),
        close_time_ms=ends[owners] - 1,
        quote_volume_units=np.add.reduceat(daily.quote_volume_units, firsts),
        trade_count=np.add.reduceat(daily.trade_count, firsts),
        taker_buy_volume_steps=np.add.reduceat(daily.taker_buy_volume_steps, firsts),
        taker_buy_quote_units=np.add.reduceat(daily.taker_buy_quote_units, firsts),
    )


def _month_start_ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def _next_start(interval: str, start_ms: int) -> int:
    """The open time after the candle opening at ``start_ms``."""
    if interval != "1M":
        return start_ms + KLINE_INTERVAL_MS[interval]
    moment = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    if moment.month == 12:
        return _month_start_ms(moment.year + 1, 1)
    return _month_start_ms(moment.year, moment.month + 1)


def _bucket_starts(interval: str, low_ms: int, high_ms: int) -> IntArray:
    """Open times of 3d/1w/1M candles with low <= open <= high."""
    if interval == "1M":
        moment = datetime.fromtimestamp(max(low_ms, 0) / 1000, tz=UTC)
        start_ms = _month_start_ms(moment.year, moment.month)
        if start_ms < low_ms:
            start_ms = _next_start(interval, start_ms)
    else:
        step_ms = KLINE_INTERVAL_MS[interval]
        offset_ms = _MONDAY_OFFSET_MS if interval == "1w" else 0
        start_ms = -(-(low_ms - offset_ms) // step_ms) * step_ms + offset_ms
    starts: list[int] = []
    while start_ms <= high_ms:
        starts.append(start_ms)
        start_ms = _next_start(interval, start_ms)
    return np.asarray(starts, dtype=np.int64)


def fixed_from_float(values: FloatArray, decimals: int) -> list[str]:
    """Floats rounded to ``decimals`` places as Binance decimal strings (trailing zeros kept)."""
    units: IntArray = np.round(np.asarray(values, dtype=np.float64) * 10.0**decimals).astype(
        np.int64
    )
    return format_fixed(units, decimals)


def slice_columns(table: ColumnsT, selector: Any) -> ColumnsT:
    """The same column dataclass (Klines, AggTrades, …) with every array indexed by ``selector``."""
    changes = {
        item.name: getattr(table, item.name)[selector]
        for item in fields(table)  # type: ignore[arg-type]
    }
    return replace(table, **changes)  # type: ignore[type-var]


def concat_columns(tables: list[ColumnsT]) -> ColumnsT:
    """Column dataclasses of one type joined end to end (at least one table)."""
    if len(tables) == 1:
        return tables[0]
    first = tables[0]
    changes = {
        item.name: np.concatenate([getattr(table, item.name) for table in tables])
        for item in fields(first)  # type: ignore[arg-type]
    }
    return replace(first, **changes)  # type: ignore[type-var]


def symbol_info(spec: SymbolSpec, now_ms: int) -> dict[str, object]:
    """One exchangeInfo ``symbols`` entry for a perpetual contract."""
    quote_asset = spec.symbol[len(spec.base_asset) :] or "USDT"
    lot = {"minQty": spec.step_size, "maxQty": "1000000", "stepSize": spec.step_size}
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": _PERPETUAL_DELIVERY_MS,
        "onboardDate": spec.listing_ms,
        "status": "TRADING" if spec.listing_ms <= now_ms else "PENDING_TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base_asset,
        "quoteAsset": quote_asset,
        "marginAsset": quote_asset,
        "pricePrecision": spec.price_decimals,
        "quantityPrecision": spec.quantity_decimals,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": spec.tick_size,
                "maxPrice": "4529764",
                "tickSize": spec.tick_size,
            },
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "MARKET_LOT_SIZE", **lot},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }

"""Binance interval enums and the vectorised string columns shared by REST pages and archives."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, TypeVar

import numpy as np

from ingmon.exchange.market import FloatArray, IntArray, Klines, SymbolSpec, format_fixed

__all__ = [
    "ARCHIVE_DAILY_INTERVALS",
    "ARCHIVE_MONTHLY_INTERVALS",
    "DAY_MS",
    "HOUR_MS",
    "KLINE_INTERVAL_MS",
    "OI_PERIOD_MS",
    "concat_columns",
    "fixed_from_float",
    "kline_string_columns",
    "slice_columns",
]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# USD-M kline intervals (no 1s: §1.1). 1M is calendar-aligned; 31 days is its upper bound,
# which is all the server uses these lengths for (sizing fetch windows).
KLINE_INTERVAL_MS = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
    "1M": 31 * DAY_MS,
}

OI_PERIOD_MS = {
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
}

# data.binance.vision interval directories (binance-public-data enums.py, without spot's 1s);
# "1mo" stands for 1M on case-insensitive file systems.
ARCHIVE_DAILY_INTERVALS = {
    name: name
    for name in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
}
ARCHIVE_MONTHLY_INTERVALS = {**ARCHIVE_DAILY_INTERVALS, "3d": "3d", "1w": "1w", "1mo": "1M"}

ColumnsT = TypeVar("ColumnsT")


def fixed_from_float(values: FloatArray, decimals: int) -> list[str]:
    """Floats rounded to ``decimals`` places as Binance decimal strings (trailing zeros kept)."""
    units: IntArray = np.round(np.asarray(values, dtype=np.float64) * 10.0**decimals).astype(
        np.int64
    )
    return format_fixed(units, decimals)


def kline_string_columns(klines: Klines, spec: SymbolSpec) -> list[list[str]]:
    """The 12 kline columns as strings in REST/CSV order (ints too, for CSV; "0" ignore)."""
    price_decimals = spec.price_decimals
    quantity_decimals = spec.quantity_decimals
    quote_decimals = price_decimals + quantity_decimals
    count = len(klines)
    return [
        list(map(str, klines.open_time_ms.tolist())),
        format_fixed(klines.open_ticks, price_decimals),
        format_fixed(klines.high_ticks, price_decimals),
        format_fixed(klines.low_ticks, price_decimals),
        format_fixed(klines.close_ticks, price_decimals),
        format_fixed(klines.volume_steps, quantity_decimals),
        list(map(str, klines.close_time_ms.tolist())),
        format_fixed(klines.quote_volume_units, quote_decimals),
        list(map(str, klines.trade_count.tolist())),
        format_fixed(klines.taker_buy_volume_steps, quantity_decimals),
        format_fixed(klines.taker_buy_quote_units, quote_decimals),
        ["0"] * count,
    ]


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

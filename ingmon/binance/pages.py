"""Validation of REST pages into lake-schema Arrow tables: the window, the grid, the ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from ingmon.errors import ExchangeError
from ingmon.schema import AGG_TRADES, CANDLES, FUNDING, OPEN_INTEREST, Dataset, interval_ms
from ingmon.times import HOUR_MS, SECOND_MS

__all__ = [
    "FUNDING_HOURS",
    "MalformedResponse",
    "Page",
    "agg_trades_page",
    "complete_funding_hours",
    "funding_page",
    "klines_page",
    "open_interest_page",
]


class MalformedResponse(Exception):
    """A 200 response whose body is not the documented shape; retried like a 5xx."""


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


def _int64(values: Sequence[Any]) -> np.ndarray[Any, Any]:
    """JSON integers as int64; a null (or anything else numpy cannot take) is malformed."""
    try:
        return np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise MalformedResponse from None


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
    try:
        # Arrow refuses nulls in a non-nullable column: a JSON null where a value belongs.
        return table.cast(dataset.arrow_schema), rejected, duplicates
    except ValueError:
        raise MalformedResponse from None


def klines_page(
    rows: Any,
    *,
    interval: str,
    start_ms: int,
    end_ms: int,
    limit: int,
    cursor: str,
    closed_before_ms: int | None = None,
) -> Page:
    """Validate a /fapi/v1/klines body: 12-field rows, open times inside the window and on the
    interval grid, closed before ``closed_before_ms``; sorted, de-duplicated."""
    step = interval_ms(interval)
    if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != 12 for r in rows):
        raise MalformedResponse
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
        raise MalformedResponse from None
    open_ms = _int64(cols[0]) if rows else np.zeros(0, np.int64)
    close_ms = _int64(cols[6]) if rows else np.zeros(0, np.int64)
    keep = (open_ms >= start_ms) & (open_ms <= end_ms) & (open_ms % step == 0)
    keep &= close_ms == open_ms + step - 1
    if closed_before_ms is not None:
        keep &= close_ms < closed_before_ms
    valid, rejected, duplicates = _validated(CANDLES, table, open_ms, keep)
    return Page(CANDLES, valid, len(rows), rejected, duplicates, limit, cursor)


def agg_trades_page(
    rows: Any,
    *,
    limit: int,
    cursor: str,
    from_id: int | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> Page:
    """Validate a /fapi/v1/aggTrades body: ids from ``from_id`` without holes, times inside
    ``[start_ms, end_ms]``; sorted, de-duplicated."""
    if not isinstance(rows, list):
        raise MalformedResponse
    try:
        ids = [r["a"] for r in rows]
        times = [r["T"] for r in rows]
        makers = [r["m"] for r in rows]
        if any(type(m) is not bool for m in makers):
            raise MalformedResponse
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
        raise MalformedResponse from None
    id_array = _int64(ids)
    time_array = _int64(times)
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
            # Binance moves a fromId older than its REST retention up to the oldest trade kept.
            raise ExchangeError(
                f"aggTrades fromId={from_id} answered from id {int(got[0])}: the trades are "
                "older than the REST retention; fetch them from the archive (--source auto)"
            )
        holes = np.flatnonzero(np.diff(got) != 1)
        if holes.size:
            rejected += int(got.size - holes[0] - 1)
            valid = valid.slice(0, int(holes[0]) + 1)
    return Page(AGG_TRADES, valid, len(rows), rejected, duplicates, limit, cursor)


def open_interest_page(
    rows: Any, *, period: str, start_ms: int, end_ms: int, limit: int, cursor: str
) -> Page:
    """Validate an openInterestHist body: timestamps (int or string) inside the window and on
    the period grid; sorted, de-duplicated."""
    step = interval_ms(period)
    if not isinstance(rows, list):
        raise MalformedResponse
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
        raise MalformedResponse from None
    stamp_array = np.asarray(stamps, dtype=np.int64)
    keep = (stamp_array >= start_ms) & (stamp_array <= end_ms) & (stamp_array % step == 0)
    valid, rejected, duplicates = _validated(OPEN_INTEREST, table, stamp_array, keep)
    return Page(OPEN_INTEREST, valid, len(rows), rejected, duplicates, limit, cursor)


def funding_page(
    rows: Any, *, symbol: str, start_ms: int, end_ms: int, limit: int, cursor: str
) -> Page:
    """Validate a fundingRate body: the asked symbol, times inside the window, floored to the
    second (Binance sends ``…002`` ms); sorted, de-duplicated."""
    if not isinstance(rows, list):
        raise MalformedResponse
    try:
        if any(r["symbol"] != symbol for r in rows):
            raise MalformedResponse
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
        raise MalformedResponse from None
    keep = (raw_times >= start_ms) & (raw_times <= end_ms)
    valid, rejected, duplicates = _validated(FUNDING, table, times, keep)
    return Page(FUNDING, valid, len(rows), rejected, duplicates, limit, cursor)


# Allowed funding intervals; a longer step between settlements is a hole, not an interval.
FUNDING_HOURS = (1, 2, 4, 8)


def complete_funding_hours(table: pa.Table, current_hours: int) -> pa.Table:
    """Fill ``funding_interval_hours`` from the step to the previous settlement (the first row
    and any step that is not an allowed interval get the symbol's current interval)."""
    hours = table["funding_interval_hours"]
    if table.num_rows == 0 or hours.null_count == 0:
        return table
    times = table["funding_time"].cast(pa.int64()).to_numpy()
    steps = np.diff(times, prepend=times[0] - current_hours * HOUR_MS) / HOUR_MS
    derived = np.where(np.isin(steps, FUNDING_HOURS), steps, current_hours).astype(np.int32)
    known = hours.to_numpy(zero_copy_only=False)
    filled = np.where(np.isnan(known.astype(float)), derived, known).astype(np.int32)
    index = table.column_names.index("funding_interval_hours")
    return table.set_column(index, "funding_interval_hours", pa.array(filled, pa.int32()))

"""``ingmon check``: integrity of the stored market data, with the command that repairs it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ingmon.binance.plan import known_exchange_gaps, subtract
from ingmon.binance.request import refetch_command
from ingmon.config import Settings
from ingmon.coverage import Coverage, iso_ms, series_coverage
from ingmon.lake import Lake
from ingmon.schema import AGG_TRADES, CANDLES, DAY_MS, FUNDING, OPEN_INTEREST, Dataset, interval_ms

__all__ = ["candle_trade_mismatches", "run_check"]

# Float sums of the same decimal quantities in a different order differ in the last bits only.
_RELATIVE_TOLERANCE = 1e-9
_MAX_LISTED = 20


def _differs(stored: str, summed: str) -> str:
    """SQL: the candle's value and the trades' sum differ beyond float rounding."""
    return (
        f"abs({stored} - coalesce({summed}, 0)) > "
        f"{_RELATIVE_TOLERANCE} * greatest(abs({stored}), 1e-12) + 1e-12"
    )


def candle_trade_mismatches(
    candles: pa.Table, trades: pa.Table, *, interval: str
) -> list[dict[str, Any]]:
    """Candles whose volume, taker-buy volume or trade count differ from their trades.

    Only candles inside the span the stored trades cover completely are compared (the first and
    last candle of that span may hold trades from before/after it).
    """
    if candles.num_rows == 0 or trades.num_rows == 0:
        return []
    step = interval_ms(interval)
    connection = duckdb.connect(":memory:")
    connection.register("candles", candles)
    connection.register("trades", trades)
    rows = connection.sql(f"""
        WITH per_candle AS (
            SELECT (epoch_ms(transact_time) // {step}) * {step} AS open_ms,
                   sum(quantity) AS volume,
                   sum(CASE WHEN NOT is_buyer_maker THEN quantity ELSE 0 END) AS taker_buy,
                   sum(last_trade_id - first_trade_id + 1) AS trade_count
            FROM trades GROUP BY 1
        ), span AS (
            SELECT min(epoch_ms(transact_time)) AS first_ms, max(epoch_ms(transact_time)) AS last_ms
            FROM trades
        )
        SELECT epoch_ms(c.open_time) AS open_ms, c.volume, coalesce(t.volume, 0) AS trade_volume,
               c.taker_buy_volume, coalesce(t.taker_buy, 0) AS trade_taker_buy,
               c.trade_count, coalesce(t.trade_count, 0) AS trades_count
        FROM candles c LEFT JOIN per_candle t ON epoch_ms(c.open_time) = t.open_ms, span
        WHERE epoch_ms(c.open_time) > (span.first_ms // {step}) * {step}
          AND epoch_ms(c.open_time) < (span.last_ms // {step}) * {step}
          AND ({_differs("c.volume", "t.volume")}
            OR {_differs("c.taker_buy_volume", "t.taker_buy")}
            OR c.trade_count != coalesce(t.trade_count, 0))
        ORDER BY 1
    """).fetchall()
    connection.close()
    return [
        {
            "open_time": iso_ms(int(r[0])),
            "open_time_ms": int(r[0]),
            "candle_volume": r[1],
            "trade_volume": r[2],
            "candle_taker_buy_volume": r[3],
            "trade_taker_buy_volume": r[4],
            "candle_trade_count": r[5],
            "trade_count": int(r[6]),
        }
        for r in rows
    ]


def _duplicates(lake: Lake, dataset: Dataset, symbol: str, param: str | None) -> int:
    table = lake.read(dataset, symbols=symbol, param=param, columns=[dataset.key])
    keys = table[dataset.key].cast(pa.int64()).to_numpy()
    return int(keys.size - np.unique(keys).size)


def _series_report(
    lake: Lake,
    dataset: Dataset,
    *,
    symbol: str,
    param: str | None,
    start_ms: int | None,
    end_ms: int,
    settings: Settings,
    problems: list[dict[str, Any]],
    base_url: str,
) -> dict[str, Any]:
    coverage: Coverage = series_coverage(
        lake,
        dataset,
        symbol=symbol,
        param=param,
        start=start_ms,
        end=None if dataset is AGG_TRADES else end_ms,
        tolerance_ratio=settings.cadence_tolerance_ratio,
    )
    exchange = known_exchange_gaps(lake, dataset, symbol, param)
    explained = 0
    for gap in coverage.gaps:
        span = (gap.first_missing, gap.last_missing)
        if dataset is not AGG_TRADES and not subtract([span], exchange):
            explained += 1
            continue
        if gap.kind == "tail":
            continue  # freshness is judged below, against the dataset's threshold
        first, last = span
        if dataset is AGG_TRADES:
            first, last = gap.after_time_ms or 0, gap.before_time_ms or 0
        problems.append(
            {
                "dataset": dataset.name,
                "symbol": symbol,
                "param": param,
                "kind": f"{gap.kind}_gap",
                "first_missing": iso_ms(first) if dataset is not AGG_TRADES else gap.first_missing,
                "last_missing": iso_ms(last) if dataset is not AGG_TRADES else gap.last_missing,
                "missing": gap.missing,
                "refetch_command": refetch_command(
                    dataset=dataset.name,
                    symbol=symbol,
                    start_ms=first,
                    end_ms=last,
                    request=None,
                    base_url=base_url,
                ),
            }
        )
    if coverage.rows == 0:
        problems.append(
            {
                "dataset": dataset.name,
                "symbol": symbol,
                "param": param,
                "kind": "empty",
                "message": "nothing stored",
            }
        )
    elif dataset is not AGG_TRADES and coverage.latest_ms is not None:
        step = coverage.step_ms or 0
        age_seconds = (end_ms - (coverage.latest_ms + step)) / 1000
        if age_seconds > settings.freshness(dataset.name).error_seconds:
            problems.append(
                {
                    "dataset": dataset.name,
                    "symbol": symbol,
                    "param": param,
                    "kind": "stale",
                    "latest": iso_ms(coverage.latest_ms),
                    "age_seconds": round(age_seconds, 1),
                    "refetch_command": refetch_command(
                        dataset=dataset.name,
                        symbol=symbol,
                        start_ms=coverage.latest_ms + step,
                        end_ms=end_ms,
                        request=None,
                        base_url=base_url,
                    ),
                }
            )
    duplicates = _duplicates(lake, dataset, symbol, param)
    if duplicates:
        problems.append(
            {
                "dataset": dataset.name,
                "symbol": symbol,
                "param": param,
                "kind": "duplicates",
                "count": duplicates,
            }
        )
    window_start = iso_ms(start_ms) if start_ms is not None else None
    return {
        "rows": coverage.rows,
        "earliest": iso_ms(coverage.earliest_ms),
        "latest": iso_ms(coverage.latest_ms),
        "window": [window_start, iso_ms(end_ms)],
        "gaps": sum(1 for g in coverage.gaps if g.kind != "tail") - explained,
        "exchange_gaps": explained,
        "duplicates": duplicates,
    }


def run_check(
    settings: Settings,
    *,
    symbols: Sequence[str],
    window_days: float | None = None,
    end_ms: int | None = None,
    interval: str = "1m",
    oi_period: str = "5m",
) -> dict[str, Any]:
    """The integrity report of ``symbols`` (JSON-ready); ``problems`` is empty when all is well."""
    lake = Lake(settings.lake_dir)
    end = end_ms if end_ms is not None else int(time.time() * 1000)
    start = end - int(window_days * DAY_MS) if window_days else None
    problems: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "schema": "ingmon.check/v1",
        "lake": str(lake.root),
        "window": [iso_ms(start), iso_ms(end)],
        "symbols": {},
    }
    for symbol in symbols:
        per_dataset = {}
        for dataset, param in (
            (CANDLES, interval),
            (AGG_TRADES, None),
            (OPEN_INTEREST, oi_period),
            (FUNDING, None),
        ):
            per_dataset[dataset.name] = _series_report(
                lake,
                dataset,
                symbol=symbol,
                param=param,
                start_ms=start,
                end_ms=end,
                settings=settings,
                problems=problems,
                base_url=settings.binance_base_url,
            )
        candles = lake.read(
            CANDLES,
            symbols=symbol,
            param=interval,
            start=start,
            end=end,
            columns=["open_time", "volume", "taker_buy_volume", "trade_count"],
        )
        trades = lake.read(
            AGG_TRADES,
            symbols=symbol,
            start=start,
            end=end,
            columns=[
                "transact_time",
                "quantity",
                "is_buyer_maker",
                "first_trade_id",
                "last_trade_id",
            ],
        )
        mismatches = candle_trade_mismatches(candles, trades, interval=interval)
        per_dataset["candle_vs_trades"] = {
            "mismatches": len(mismatches),
            "examples": mismatches[:_MAX_LISTED],
        }
        if mismatches:
            first, last = mismatches[0]["open_time_ms"], mismatches[-1]["open_time_ms"]
            problems.append(
                {
                    "dataset": "candles",
                    "symbol": symbol,
                    "param": interval,
                    "kind": "candle_trade_mismatch",
                    "count": len(mismatches),
                    "first": iso_ms(first),
                    "last": iso_ms(last),
                    "refetch_command": refetch_command(
                        dataset="candles",
                        symbol=symbol,
                        start_ms=first,
                        end_ms=last + interval_ms(interval) - 1,
                        request=None,
                        base_url=settings.binance_base_url,
                    )
                    + " --full-refresh",
                }
            )
        report["symbols"][symbol] = per_dataset
    report["problems"] = problems
    report["status"] = "ok" if not problems else "problems"
    return report

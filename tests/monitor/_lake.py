"""Small hand-made lakes for the monitoring tests: candles, trades, open interest, funding,
``ingest_log`` batches, signals with their scores, saved backtest runs and damaged partitions,
each written through ``Lake.upsert`` exactly as the pipeline stores them.

Every helper takes keyword-only arguments and explicit times (epoch ms), so a test states
its reference values by construction. ``NOW_MS`` is a round instant to build around.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ingmon.backtest import BacktestConfig, BacktestRun, Bars, run_backtests
from ingmon.backtest.export import save_run
from ingmon.lake import Lake
from ingmon.schema import (
    AGG_TRADES,
    CANDLES,
    FUNDING,
    INGEST_LOG,
    OPEN_INTEREST,
    SCORES,
    SIGNALS,
    interval_ms,
)
from ingmon.signals.rules import RULES_VERSION
from ingmon.times import HOUR_MS, MINUTE_MS, SECOND_MS
from tests.backtest._market import random_bars, random_signals

__all__ = [
    "NOW_MS",
    "SYMBOL",
    "LiveFeed",
    "damage_partition",
    "healthy_lake",
    "ingest_row",
    "live_feed",
    "minute_grid",
    "partition_version",
    "save_backtest",
    "signal_row",
    "write_candles",
    "write_funding",
    "write_ingest_log",
    "write_open_interest",
    "write_signals",
    "write_trades",
]

# 2026-03-01T00:00:00Z: a round "now" (a UTC day, hour and 8 h funding boundary).
NOW_MS = 1_772_323_200_000
SYMBOL = "BTCUSDT"


# ---- market data -------------------------------------------------------------------------------


def write_candles(
    lake: Lake,
    *,
    symbol: str = SYMBOL,
    open_times_ms: Iterable[int],
    interval: str = "1m",
    price: float = 100.0,
) -> None:
    """Candles opening at ``open_times_ms`` (flat price, volume 1, one trade each)."""
    opens = np.asarray(sorted(open_times_ms), dtype=np.int64)
    count = opens.size
    prices = np.full(count, price)
    table = pa.table(
        {
            "open_time": pa.array(opens, pa.timestamp("ms", tz="UTC")),
            "open": prices,
            "high": prices,
            "low": prices,
            "close": prices,
            "volume": np.ones(count),
            "close_time": pa.array(opens + interval_ms(interval) - 1, pa.timestamp("ms", tz="UTC")),
            "quote_volume": prices,
            "trade_count": np.ones(count, dtype=np.int64),
            "taker_buy_volume": np.zeros(count),
            "taker_buy_quote_volume": np.zeros(count),
            "ignore": np.zeros(count),
        }
    )
    lake.upsert(CANDLES, table, symbol=symbol, param=interval)


def minute_grid(*, start_ms: int, end_ms: int, step_ms: int = MINUTE_MS) -> list[int]:
    """Slots ``start_ms, start_ms + step, …`` before ``end_ms`` (exclusive)."""
    return list(range(start_ms, end_ms, step_ms))


def write_trades(
    lake: Lake,
    *,
    symbol: str = SYMBOL,
    trades: Sequence[tuple[int, int]],
    price: float = 100.0,
) -> None:
    """Aggregated trades as ``(agg_trade_id, transact_time_ms)`` pairs (quantity 1 each).

    Ids repeated across two calls under different UTC days are stored twice (the key lives in
    the partition of its time): that is how a test makes duplicates."""
    ids = np.asarray([t[0] for t in trades], dtype=np.int64)
    times = np.asarray([t[1] for t in trades], dtype=np.int64)
    table = pa.table(
        {
            "agg_trade_id": ids,
            "price": np.full(ids.size, price),
            "quantity": np.ones(ids.size),
            "first_trade_id": ids,
            "last_trade_id": ids,
            "transact_time": pa.array(times, pa.timestamp("ms", tz="UTC")),
            "is_buyer_maker": np.zeros(ids.size, dtype=bool),
        }
    )
    lake.upsert(AGG_TRADES, table, symbol=symbol)


def write_open_interest(
    lake: Lake, *, symbol: str = SYMBOL, times_ms: Iterable[int], period: str = "5m"
) -> None:
    """Open-interest snapshots stamped ``times_ms`` (1000 contracts each)."""
    stamps = np.asarray(sorted(times_ms), dtype=np.int64)
    table = pa.table(
        {
            "timestamp": pa.array(stamps, pa.timestamp("ms", tz="UTC")),
            "sum_open_interest": np.full(stamps.size, 1000.0),
            "sum_open_interest_value": np.full(stamps.size, 100_000.0),
            "cmc_circulating_supply": pa.nulls(stamps.size, pa.float64()),
        }
    )
    lake.upsert(OPEN_INTEREST, table, symbol=symbol, param=period)


def write_funding(
    lake: Lake, *, symbol: str = SYMBOL, times_ms: Iterable[int], interval_hours: int = 8
) -> None:
    """Funding settlements at ``times_ms`` (rate 1e-4, the given interval on every row)."""
    stamps = np.asarray(sorted(times_ms), dtype=np.int64)
    table = pa.table(
        {
            "funding_time": pa.array(stamps, pa.timestamp("ms", tz="UTC")),
            "funding_rate": np.full(stamps.size, 1e-4),
            "mark_price": np.full(stamps.size, 100.0),
            "funding_interval_hours": pa.array(np.full(stamps.size, interval_hours), pa.int32()),
        }
    )
    lake.upsert(FUNDING, table, symbol=symbol)


# ---- ingest_log --------------------------------------------------------------------------------


def ingest_row(
    *,
    dataset: str,
    param: str | None = None,
    last_event_ms: int | None,
    written_ms: float,
    fetched_ms: float | None = None,
    source: str = "rest",
    rows_inserted: int = 1,
    rows_fetched: int | None = None,
) -> dict[str, Any]:
    """One ``ingest_log`` row. ``fetched_ms`` defaults to 5 ms before ``written_ms``;
    ``rows_fetched`` to ``rows_inserted`` (0 for a batch without events)."""
    written_us = round(written_ms * 1000)
    fetched_us = written_us - 5_000 if fetched_ms is None else round(fetched_ms * 1000)
    fetched = rows_fetched if rows_fetched is not None else rows_inserted
    return {
        "batch_id": uuid.uuid4().hex,
        "run_id": "test",
        "dataset": dataset,
        "interval": param,
        "first_event_time": last_event_ms,
        "last_event_time": last_event_ms,
        "rows_fetched": fetched if last_event_ms is not None else 0,
        "rows_inserted": rows_inserted if last_event_ms is not None else 0,
        "rows_replaced": 0,
        "fetched_at": fetched_us,
        "written_at": written_us,
        "source": source,
        "request_cursor": "test",
    }


def write_ingest_log(lake: Lake, rows: Sequence[dict[str, Any]], *, symbol: str = SYMBOL) -> None:
    """Append ``ingest_row`` rows to the symbol's ``ingest_log``."""
    lake.upsert(
        INGEST_LOG, pa.Table.from_pylist(list(rows), schema=INGEST_LOG.arrow_schema), symbol=symbol
    )


@dataclass(frozen=True)
class LiveFeed:
    """What :func:`live_feed` stored: the rows' times and the batches' written times."""

    event_times_ms: list[int]
    written_ms: list[int]


def live_feed(
    lake: Lake,
    *,
    symbol: str = SYMBOL,
    dataset: str = "candles",
    now_ms: int = NOW_MS,
    hours: float = 24,
    lag_ms: int = 2 * SECOND_MS,
    step_ms: int | None = None,
    until_ms: int | None = None,
) -> LiveFeed:
    """A healthy live series of ``dataset``: rows on a grid from ``now_ms − hours`` (candles
    1m, open interest 5m, funding 8 h, trades every 10 s with consecutive ids; or ``step_ms``),
    each delivered by its own live REST batch written ``lag_ms`` after the row closed (a
    candle at open + 1 min, anything else at its stamp) — every row whose batch is written
    before ``until_ms`` (default ``now_ms``), so nothing is written after "now"."""
    step = step_ms or {
        "candles": MINUTE_MS,
        "open_interest": 5 * MINUTE_MS,
        "funding": 8 * HOUR_MS,
    }.get(dataset, 10 * SECOND_MS)
    close_after = MINUTE_MS if dataset == "candles" else 0
    start = now_ms - round(hours * HOUR_MS)
    first = -(-start // step) * step
    limit = until_ms if until_ms is not None else now_ms
    stamps = [t for t in range(first, limit, step) if t + close_after + lag_ms < limit]
    param = {"candles": "1m", "open_interest": "5m"}.get(dataset)
    if dataset == "candles":
        write_candles(lake, symbol=symbol, open_times_ms=stamps)
    elif dataset == "open_interest":
        write_open_interest(lake, symbol=symbol, times_ms=stamps)
    elif dataset == "funding":
        write_funding(lake, symbol=symbol, times_ms=stamps)
    else:
        write_trades(lake, symbol=symbol, trades=[(n + 1, t) for n, t in enumerate(stamps)])
    written = [t + close_after + lag_ms for t in stamps]
    write_ingest_log(
        lake,
        [
            ingest_row(dataset=dataset, param=param, last_event_ms=t, written_ms=w)
            for t, w in zip(stamps, written, strict=True)
        ],
        symbol=symbol,
    )
    return LiveFeed(event_times_ms=stamps, written_ms=written)


def healthy_lake(lake: Lake, *, symbol: str = SYMBOL, now_ms: int = NOW_MS) -> None:
    """:func:`live_feed` of all four market datasets of ``symbol``: every series ``ok`` at
    ``now_ms`` under the default settings."""
    for dataset in ("candles", "agg_trades", "open_interest", "funding"):
        live_feed(lake, symbol=symbol, dataset=dataset, now_ms=now_ms)


# ---- signals -----------------------------------------------------------------------------------


def signal_row(
    *,
    bar_open_ms: int,
    setup: str = "squeeze_fire",
    direction: str = "long",
    score: int | None = 5,
    confidence: str | None = "high",
    timeframe: str = "15m",
) -> dict[str, Any]:
    """One signal (and its score, unless ``score`` is None) as :func:`write_signals` takes it;
    its bar closes at ``bar_open_ms + timeframe − 1 ms`` (the stored ``bar_close_time``)."""
    return {
        "bar_open_ms": bar_open_ms,
        "setup": setup,
        "direction": direction,
        "score": score,
        "confidence": confidence,
        "timeframe": timeframe,
    }


def write_signals(
    lake: Lake,
    signals: Sequence[dict[str, Any]],
    *,
    symbol: str = SYMBOL,
    rules_version: str = RULES_VERSION,
    scored_at_ms: int = NOW_MS,
) -> None:
    """Store ``signal_row`` signals in ``signals`` and, for those with a score, their audit
    rows in ``scores`` under ``rules_version`` (the JSON columns hold empty documents)."""
    by_timeframe: dict[str, list[dict[str, Any]]] = {}
    for signal in signals:
        by_timeframe.setdefault(signal["timeframe"], []).append(signal)
    for timeframe, group in by_timeframe.items():
        step = interval_ms(timeframe)
        signal_rows, score_rows = [], []
        for signal in group:
            key = f"{symbol}|{timeframe}|{signal['setup']}|{signal['direction']}|"
            signal_id = hashlib.sha256(f"{key}{signal['bar_open_ms']}".encode()).hexdigest()[:24]
            signal_rows.append(
                {
                    "signal_id": signal_id,
                    "bar_open_time": signal["bar_open_ms"],
                    "bar_close_time": signal["bar_open_ms"] + step - 1,
                    "setup": signal["setup"],
                    "direction": signal["direction"],
                    "close": 100.0,
                    "stop_price": None,
                    "target_price": None,
                    "level_kind": None,
                    "level_price": None,
                    "levels": "{}",
                    "reasons": "{}",
                    "detector_version": "test",
                    "detected_at": scored_at_ms * 1000,
                }
            )
            if signal["score"] is None:
                continue
            score_rows.append(
                {
                    "score_id": hashlib.sha256(f"{signal_id}|{rules_version}".encode()).hexdigest(),
                    "signal_id": signal_id,
                    "bar_open_time": signal["bar_open_ms"],
                    "setup": signal["setup"],
                    "direction": signal["direction"],
                    "rules_version": rules_version,
                    "config_hash": "test",
                    "code_version": "test",
                    "score": signal["score"],
                    "trend_points": 0,
                    "flow_points": 0,
                    "session_points": 0,
                    "confidence": signal["confidence"],
                    "data_quality": "ok",
                    "components": "[]",
                    "inputs": "{}",
                    "thresholds": "{}",
                    "watermarks": "{}",
                    "notes": "[]",
                    "scored_at": scored_at_ms * 1000,
                }
            )
        lake.upsert(
            SIGNALS,
            pa.Table.from_pylist(signal_rows, schema=SIGNALS.arrow_schema),
            symbol=symbol,
            param=timeframe,
        )
        if score_rows:
            lake.upsert(
                SCORES,
                pa.Table.from_pylist(score_rows, schema=SCORES.arrow_schema),
                symbol=symbol,
                param=timeframe,
            )


# ---- backtests -------------------------------------------------------------------------------


def save_backtest(
    lake: Lake,
    *,
    symbol: str = SYMBOL,
    seed: int = 5,
    bars: int = 2 * 1440,
    setups: Sequence[str] = ("squeeze_fire", "exhaustion"),
    created_at_ms: int = NOW_MS,
    run_id: str | None = None,
) -> BacktestRun:
    """A real backtest run (``ingmon.backtest.run_backtests`` on a seeded random walk of 1m
    bars with random long/short signals, their ``setup`` cycling through ``setups``), saved in
    the lake with ``save_run`` under ``symbol``. Returns the ``BacktestRun``."""
    frame = random_bars(seed, bars)
    signals = random_signals(seed, frame, probability=0.01)
    signals["setup"] = [setups[n % len(setups)] for n in range(len(signals))]
    run = run_backtests(
        Bars.from_frame(frame),
        signals,
        config=BacktestConfig(hold_bars=30, stop_pct=0.004),
        window_days=(1,),
        symbol=symbol,
        source="lake",
        timeframe="15m",
        created_at_ms=created_at_ms,
        run_id=run_id,
    )
    save_run(lake, run)
    return run


# ---- damage ------------------------------------------------------------------------------------


def partition_version(
    lake: Lake, *, dataset: str, symbol: str = SYMBOL, param: str | None = None, partition: str
) -> Path:
    """The current version file of one partition, named by its directory (``month=2026-02``,
    ``day=2026-02-28``, ``year=2026``)."""
    directory = lake.series_dir(dataset, symbol=symbol, param=param) / partition
    return directory / os.readlink(directory / "data.parquet")


def damage_partition(version: Path) -> None:
    """Cut a version file in half at once (a full disk, a killed copy): its footer is gone."""
    spare = version.with_name(version.name + ".damage")
    data = version.read_bytes()
    spare.write_bytes(data[: len(data) // 2])
    os.replace(spare, version)

"""Ingestion latency: how long after an event closed its row was committed to the lake."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ingmon.lake import Lake
from ingmon.schema import INGEST_LOG, interval_ms, market_series
from ingmon.times import HOUR_MS

__all__ = ["LATENCY_PERCENTILES", "ingest_latency"]

LATENCY_PERCENTILES = (50, 95)
# ``ingest_log`` is read by ``fetched_at``; a batch is committed seconds after its fetch, so a
# batch written inside the window was fetched less than this before the window's start.
_FETCH_TO_WRITE_MARGIN_MS = HOUR_MS


def ingest_latency(
    lake: Lake,
    dataset: str,
    *,
    symbol: str,
    param: str | None = None,
    start_ms: int,
    end_ms: int,
) -> dict[str, Any]:
    """Latency of the batches of one series written in ``[start_ms, end_ms)``, from
    ``ingest_log``: each batch's ``written_at`` minus the close of its newest event.

    An event closes at its ``last_event_time`` plus the series' step when a row is final only
    after its step (a candle closes at open + interval), else at ``last_event_time`` itself
    (trades, open-interest snapshots, funding settlements). ``param`` defaults to the series'
    default interval/period. Batches without events are not counted.

    Returns ``batches``, ``last_seconds`` (the batch written last) and ``p50_seconds`` /
    ``p95_seconds`` (linear interpolation between order statistics, as
    ``statistics.quantiles(method="inclusive")``); the seconds are None without batches.
    """
    series = market_series(dataset)
    param = param if param is not None else series.default_param
    step_ms = interval_ms(param) if series.final_after_step and param is not None else 0
    table = lake.read(
        INGEST_LOG,
        symbols=symbol,
        start=start_ms - _FETCH_TO_WRITE_MARGIN_MS,
        end=end_ms,
        columns=["dataset", "interval", "last_event_time", "written_at"],
    )
    names = np.asarray(table["dataset"].to_pylist(), dtype=object)
    params = np.asarray(table["interval"].to_pylist(), dtype=object)
    last_event = table["last_event_time"].cast(pa.int64())
    has_events = last_event.is_valid().to_numpy(zero_copy_only=False)
    last_event_ms = last_event.fill_null(0).to_numpy()
    written_us = table["written_at"].cast(pa.int64()).to_numpy()
    keep = (
        (names == series.name)
        & (params == param)
        & has_events
        & (written_us >= start_ms * 1000)
        & (written_us < end_ms * 1000)
    )
    order = np.argsort(written_us[keep], kind="stable")
    close_us = (last_event_ms[keep][order] + step_ms) * 1000
    latency_seconds = (written_us[keep][order] - close_us) / 1e6
    if latency_seconds.size == 0:
        return {"batches": 0, "last_seconds": None, "p50_seconds": None, "p95_seconds": None}
    p50, p95 = np.percentile(latency_seconds, LATENCY_PERCENTILES)
    return {
        "batches": int(latency_seconds.size),
        "last_seconds": float(latency_seconds[-1]),
        "p50_seconds": float(p50),
        "p95_seconds": float(p95),
    }

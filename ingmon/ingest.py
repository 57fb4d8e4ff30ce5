"""Writing fetched market data: the upsert, its ``ingest_log`` row, and confirmed exchange gaps.

Whoever fetches (a backfill run today, the worker's incremental ingest later) hands validated
tables to an ``IngestWriter``; it knows the lake and nothing about the exchange.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from ingmon.lake import Lake, UpsertResult
from ingmon.schema import EXCHANGE_GAPS, INGEST_LOG, MarketSeries

__all__ = ["Batch", "IngestWriter", "Written", "missing_slots"]


@dataclass(frozen=True)
class Batch:
    """Rows of one series to commit, with where they came from (for the ingest log)."""

    series: MarketSeries
    symbol: str
    param: str | None
    table: pa.Table
    source: str  # "rest" | "archive"
    cursor: str  # the request (path and parameters) or the archive file
    fetched_at: datetime
    # Replace what is stored in [start, end] (full refresh): stored rows missing from the batch
    # are deleted. None: a plain upsert.
    replace_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class Written:
    """What committing one batch did."""

    result: UpsertResult
    written_at: datetime


def missing_slots(
    keys: np.ndarray[Any, Any], *, start_ms: int, end_ms: int, step_ms: int
) -> list[tuple[int, int]]:
    """Runs ``(first, last)`` of grid slots in [start, end] with no key among ``keys``."""
    first = -(-start_ms // step_ms) * step_ms
    if first > end_ms:
        return []
    grid = np.arange(first, end_ms + 1, step_ms, dtype=np.int64)
    missing = grid[~np.isin(grid, keys)]
    if missing.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(missing) != step_ms) + 1
    return [(int(run[0]), int(run[-1])) for run in np.split(missing, breaks)]


class IngestWriter:
    """Commits batches into the lake and logs each one in ``ingest_log`` under one run id."""

    def __init__(self, lake: Lake, *, run_id: str | None = None) -> None:
        self.lake = lake
        self.run_id = run_id or uuid.uuid4().hex[:12]

    def write(self, batch: Batch) -> Written:
        """Upsert the batch (atomically per partition), then append its ingest-log row."""
        series = batch.series
        result = self.lake.upsert(
            series.dataset,
            batch.table,
            symbol=batch.symbol,
            param=batch.param,
            replace_range=batch.replace_range,
        )
        written_at = datetime.now(UTC)
        table = batch.table
        times = (
            table[series.dataset.time_column].cast(pa.int64()).to_numpy()
            if table.num_rows
            else None
        )
        log_row = {
            "batch_id": uuid.uuid4().hex,
            "run_id": self.run_id,
            "dataset": series.name,
            "interval": batch.param,
            "first_event_time": int(times.min()) if times is not None else None,
            "last_event_time": int(times.max()) if times is not None else None,
            "rows_fetched": table.num_rows,
            "rows_inserted": result.inserted,
            "rows_replaced": result.replaced,
            "fetched_at": batch.fetched_at,
            "written_at": written_at,
            "source": batch.source,
            "request_cursor": batch.cursor,
        }
        self.lake.upsert(INGEST_LOG, _one_row(log_row), symbol=batch.symbol)
        return Written(result, written_at)

    def record_exchange_gaps(
        self,
        series: MarketSeries,
        *,
        symbol: str,
        param: str | None,
        gaps: list[tuple[int, int]],
    ) -> None:
        """Remember ranges the exchange confirmed it has no data for (never refetched)."""
        if not gaps:
            return
        detected = datetime.now(UTC)
        rows = [
            {
                "gap_id": f"{series.name}/{param}/{start}",
                "dataset": series.name,
                "interval": param,
                "start_time": start,
                "end_time": end,
                "detected_at": detected,
            }
            for start, end in gaps
        ]
        table = pa.Table.from_pylist(rows, schema=EXCHANGE_GAPS.arrow_schema)
        self.lake.upsert(EXCHANGE_GAPS, table, symbol=symbol)


def _one_row(row: dict[str, Any]) -> pa.Table:
    schema = INGEST_LOG.arrow_schema
    arrays = []
    for column in schema:
        value = row[column.name]
        if pa.types.is_timestamp(column.type) and isinstance(value, int):
            arrays.append(pa.array([value], pa.int64()).cast(column.type))
        else:
            arrays.append(pa.array([value], column.type))
    return pa.Table.from_arrays(arrays, schema=schema)

"""Ingestion latency: how long after an event closed its row was committed to the lake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ingmon.lake import Lake
from ingmon.schema import INGEST_LOG, MarketSeries, interval_ms, market_series
from ingmon.times import HOUR_MS, MINUTE_MS, SECOND_MS

__all__ = [
    "INGEST_LOG_COLUMNS",
    "LATENCY_PERCENTILES",
    "LIVE_HEAD_MAX_MS",
    "LIVE_HEAD_STEPS",
    "SeriesBatches",
    "ingest_latency",
    "latency_summary",
    "read_ingest_log",
    "series_batches",
]

LATENCY_PERCENTILES = (50, 95)
# A batch is live when its newest event closed at most this many steps of its series before
# the fetch: the head of the series, as the worker polls it (one step late, plus slack) ...
LIVE_HEAD_STEPS = 2
# ... and at most this long before it, whatever the step: a poller fetches a new funding
# settlement or 4h candle within minutes of its close. Two 8 h funding steps would let a
# backfill that fetched the last settlement hours later pass for a live batch hours late.
LIVE_HEAD_MAX_MS = 15 * MINUTE_MS
# Trades have no step; a live trades page ends within a minute of its fetch.
_TRADES_HEAD_MS = 60 * SECOND_MS
# ``ingest_log`` is read by ``fetched_at``; a batch is committed seconds after its fetch, so a
# batch written inside the window was fetched less than this before the window's start.
_FETCH_TO_WRITE_MARGIN_MS = HOUR_MS
# The ``ingest_log`` columns :func:`series_batches` needs.
INGEST_LOG_COLUMNS = (
    "dataset",
    "interval",
    "last_event_time",
    "rows_inserted",
    "fetched_at",
    "written_at",
    "source",
)


def _head_ms(series: MarketSeries, param: str | None) -> int:
    """How far before its fetch a live batch's newest event may have closed: two steps of the
    series, at most ``LIVE_HEAD_MAX_MS`` (60 s for trades)."""
    if series.cadence == "ids":
        return _TRADES_HEAD_MS
    step_ms = interval_ms(param) if series.cadence == "param" and param else series.nominal_step_ms
    return min(LIVE_HEAD_STEPS * (step_ms or 0), LIVE_HEAD_MAX_MS)


def read_ingest_log(lake: Lake, *, symbol: str, start_ms: int, end_ms: int) -> pa.Table:
    """The ``ingest_log`` rows of one symbol (every dataset) that may have been written in
    ``[start_ms, end_ms)``: one read that :func:`series_batches` then splits by series."""
    return lake.read(
        INGEST_LOG,
        symbols=symbol,
        start=start_ms - _FETCH_TO_WRITE_MARGIN_MS,
        end=end_ms,
        columns=list(INGEST_LOG_COLUMNS),
    )


@dataclass(frozen=True)
class SeriesBatches:
    """The batches of one series written in a window, in ``written_at`` order (ties: as
    stored). Times in µs, as ``ingest_log`` keeps them."""

    written_us: npt.NDArray[np.int64]
    close_us: npt.NDArray[np.int64]  # close of the newest event (meaningless without events)
    has_events: npt.NDArray[np.bool_]
    live: npt.NDArray[np.bool_]  # REST, newest event at the head of the series (see below)
    rows_inserted: npt.NDArray[np.int64]

    @property
    def timed(self) -> npt.NDArray[np.bool_]:
        """The live batches with events: those whose latency is measured."""
        return self.has_events & self.live

    @property
    def successful(self) -> npt.NDArray[np.bool_]:
        """Live batches that brought new rows: the deliveries the cadence is measured on."""
        return self.timed & (self.rows_inserted > 0)


def series_batches(
    table: pa.Table,
    dataset: str,
    *,
    param: str | None = None,
    start_ms: int,
    end_ms: int,
) -> SeriesBatches:
    """The batches of one series in ``table`` (a :func:`read_ingest_log` read) written in
    ``[start_ms, end_ms)``, each marked live or not (see :func:`ingest_latency`). ``param``
    defaults to the series' default interval/period."""
    series = market_series(dataset)
    param = param if param is not None else series.default_param
    step_ms = interval_ms(param) if series.final_after_step and param is not None else 0
    names = np.asarray(table["dataset"].to_pylist(), dtype=object)
    params = np.asarray(table["interval"].to_pylist(), dtype=object)
    sources = np.asarray(table["source"].to_pylist(), dtype=object)
    last_event = table["last_event_time"].cast(pa.int64())
    has_events = last_event.is_valid().to_numpy(zero_copy_only=False)
    close_us = (last_event.fill_null(0).to_numpy() + step_ms) * 1000
    fetched_us = table["fetched_at"].cast(pa.int64()).to_numpy()
    written_us = table["written_at"].cast(pa.int64()).to_numpy()
    inserted = table["rows_inserted"].to_numpy()
    mine = (
        (names == series.name)
        & (params == param)
        & (written_us >= start_ms * 1000)
        & (written_us < end_ms * 1000)
    )
    live = (sources == "rest") & (fetched_us - close_us <= _head_ms(series, param) * 1000)
    order = np.argsort(written_us[mine], kind="stable")
    return SeriesBatches(
        written_us=written_us[mine][order].astype(np.int64),
        close_us=close_us[mine][order].astype(np.int64),
        has_events=np.asarray(has_events[mine][order], dtype=np.bool_),
        live=np.asarray(live[mine][order], dtype=np.bool_),
        rows_inserted=inserted[mine][order].astype(np.int64),
    )


def latency_summary(batches: SeriesBatches) -> dict[str, Any]:
    """``batches``, ``backfill_batches``, ``last_seconds``, ``p50_seconds``, ``p95_seconds``
    of a series' batches (see :func:`ingest_latency`)."""
    timed = batches.timed
    latency_seconds = (batches.written_us[timed] - batches.close_us[timed]) / 1e6
    backfill_batches = int(np.count_nonzero(batches.has_events & ~batches.live))
    if latency_seconds.size == 0:
        return {
            "batches": 0,
            "backfill_batches": backfill_batches,
            "last_seconds": None,
            "p50_seconds": None,
            "p95_seconds": None,
        }
    p50, p95 = np.percentile(latency_seconds, LATENCY_PERCENTILES)
    return {
        "batches": int(latency_seconds.size),
        "backfill_batches": backfill_batches,
        "last_seconds": float(latency_seconds[-1]),
        "p50_seconds": float(p50),
        "p95_seconds": float(p95),
    }


def ingest_latency(
    lake: Lake,
    dataset: str,
    *,
    symbol: str,
    param: str | None = None,
    start_ms: int,
    end_ms: int,
) -> dict[str, Any]:
    """Latency of the live batches of one series written in ``[start_ms, end_ms)``, from
    ``ingest_log``: each live batch's ``written_at`` minus the close of its newest event.

    An event closes at its ``last_event_time`` plus the series' step when a row is final only
    after its step (a candle closes at open + interval), else at ``last_event_time`` itself
    (trades, open-interest snapshots, funding settlements). ``param`` defaults to the series'
    default interval/period. Batches without events are not counted.

    A batch is *live* when it came from REST and its newest event closed at most
    ``LIVE_HEAD_STEPS`` (2) steps of the series before its ``fetched_at`` — the interval or
    period for candles and open interest, the nominal 8 h for funding — but never more than
    ``LIVE_HEAD_MAX_MS`` (15 min), and 60 s for trades: it fetched the head of the series as a
    poller does (2 min for 1m candles, 10 min for 5m open interest, 15 min for funding and
    candles of 15m and longer). Every other batch (archive files, REST pages of older
    history, a backfill that fetched the last funding settlement hours after it) is a
    *backfill* batch: its "latency" is the age of the history it filled, days on a freshly
    backfilled lake, and says nothing about how late live data arrives. A live fetch later
    than the head allows is thus not timed here: its feed's freshness turns warn/error.

    Returns ``batches`` (live), ``backfill_batches``, ``last_seconds`` (the live batch written
    last) and ``p50_seconds`` / ``p95_seconds`` over the live batches (linear interpolation
    between order statistics, as ``statistics.quantiles(method="inclusive")``); the seconds
    are None without live batches.
    """
    table = read_ingest_log(lake, symbol=symbol, start_ms=start_ms, end_ms=end_ms)
    batches = series_batches(table, dataset, param=param, start_ms=start_ms, end_ms=end_ms)
    return latency_summary(batches)

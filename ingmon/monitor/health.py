"""Builds the health snapshot of the lake and its ``ingest_log``, kept in ``state/health.json``.

Built on the integrity model (``ingmon.integrity.assess_series`` with ``expect="live"``: one
definition of gaps, duplicates, damaged partitions and staleness) and on ``ingest_log``
(``ingmon.latency``: one definition of a live batch and of its latency).

What the statuses mean, and the snapshot's model: ``ingmon.monitor.status`` (its names are
re-exported here, where most readers import them from).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingmon.config import Settings
from ingmon.damage import READ_ERRORS
from ingmon.errors import CorruptPartitionError
from ingmon.integrity import SeriesHealth, assess_series, thresholds_for_step
from ingmon.lake import CorruptPartition, Lake
from ingmon.latency import (
    INGEST_LOG_COLUMNS,
    SeriesBatches,
    latency_summary,
    read_ingest_log,
    series_batches,
)
from ingmon.monitor.kpis import performance_kpis, signal_health
from ingmon.monitor.status import (
    HEALTH_SCHEMA,
    STATUSES,
    Cadence,
    Freshness,
    HealthSnapshot,
    Latency,
    SeriesStatus,
    Status,
    judge_above,
    worst,
    worst_first,
)
from ingmon.problems import Problem, RepairContext
from ingmon.schema import CANDLES, INGEST_LOG, MARKET_SERIES, MarketSeries, interval_ms
from ingmon.times import HOUR_MS

__all__ = [
    "HEALTH_FILE",
    "HEALTH_SCHEMA",
    "STATUSES",
    "Cadence",
    "Freshness",
    "HealthSnapshot",
    "Latency",
    "SeriesStatus",
    "Status",
    "build_snapshot",
    "expected_interval_seconds",
    "live_health",
    "read_snapshot",
    "worst",
    "write_snapshot",
]

HEALTH_FILE = "health.json"


# ---- building --------------------------------------------------------------------------------


def build_snapshot(
    lake: Lake,
    settings: Settings,
    *,
    symbols: Sequence[str] | None = None,
    now_ms: int,
) -> HealthSnapshot:
    """The health of ``symbols`` (None: every symbol with candles) at ``now_ms`` over the
    ``health_window_hours`` before it: each market dataset at its default parameter (1m
    candles, 5m open interest, trades, funding), the signal counts and the backtest KPIs.

    ``ingest_log`` is read once per symbol; each series is assessed once by the integrity
    model (``assess_series(expect="live")`` over ``[now − window, now)``).
    """
    window_ms = round(settings.health_window_hours * HOUR_MS)
    start_ms = now_ms - window_ms
    chosen = tuple(symbols) if symbols is not None else tuple(lake.symbols(CANDLES))
    context = RepairContext.of(settings)
    series: list[SeriesStatus] = []
    for symbol in chosen:
        log, damaged_log = _ingest_log(lake, symbol=symbol, start_ms=start_ms, end_ms=now_ms)
        for market in MARKET_SERIES.values():
            series.append(
                _series_status(
                    lake,
                    settings,
                    market,
                    symbol=symbol,
                    log=log,
                    damaged_log=damaged_log,
                    start_ms=start_ms,
                    now_ms=now_ms,
                    context=context,
                )
            )
    return HealthSnapshot(
        generated_at_ms=now_ms,
        window_hours=settings.health_window_hours,
        symbols=chosen,
        series=worst_first(series),
        signals=signal_health(
            lake, symbols=chosen, now_ms=now_ms, window_hours=settings.health_window_hours
        ),
        performance=performance_kpis(lake, symbols=chosen),
        now_ms=now_ms,
        settings_used={
            "worker_interval_seconds": settings.worker_interval_seconds,
            "latency_warn_seconds": settings.latency_warn_seconds,
            "latency_error_seconds": settings.latency_error_seconds,
            "cadence_warn_ratio": settings.cadence_warn_ratio,
            "cadence_error_ratio": settings.cadence_error_ratio,
            "cadence_tolerance_ratio": settings.cadence_tolerance_ratio,
            # The alert limits the worker judges by: the server's documents use the same.
            "alert_no_signals_seconds": settings.alert_no_signals_seconds,
            "alert_max_drawdown_ratio": settings.alert_max_drawdown_ratio,
        },
    )


def _ingest_log(
    lake: Lake, *, symbol: str, start_ms: int, end_ms: int
) -> tuple[pa.Table, list[CorruptPartition]]:
    """One read of the symbol's ``ingest_log`` for every series, and the damaged log
    partitions of the window. When one keeps the log from being read the table is empty
    (latency and cadence are then unknown, not a crash) and the damage is reported on every
    series of the symbol (``_log_problem``)."""
    try:
        return read_ingest_log(lake, symbol=symbol, start_ms=start_ms, end_ms=end_ms), []
    except CorruptPartitionError as error:
        damaged = lake.find_corrupt(INGEST_LOG, symbol=symbol, start=start_ms, end=end_ms)
        if error.partition.version not in {part.version for part in damaged}:
            damaged.append(error.partition)  # damage past a sound footer
        schema = INGEST_LOG.arrow_schema
        empty = pa.schema([schema.field(name) for name in INGEST_LOG_COLUMNS]).empty_table()
        return empty, damaged


def _log_problem(part: CorruptPartition, market: MarketSeries, param: str | None) -> Problem:
    """A damaged ``ingest_log`` partition, as a problem of one series of its symbol."""
    return Problem(
        market.name,
        part.symbol,
        "corrupt_partition",
        f"{part.message}; the ingest log cannot be read, so the latency and cadence of "
        f"{part.symbol}'s feeds are unknown. Move the file to {part.directory / 'quarantine'} "
        "(the next batch logged into that partition moves it there itself)",
        param=param,
        details={"file": str(part.version), "reason": part.reason, "source": part.dataset},
        start_ms=part.start_ms,
        end_ms=part.end_ms,
    )


def _newest_before(
    lake: Lake, market: MarketSeries, *, symbol: str, param: str | None, before_ms: int
) -> int | None:
    """Time of the newest stored row before ``before_ms`` (for a series whose health window
    is empty: how old its data is), from the newest partitions back; None if there is none or
    a partition cannot be read (a damaged one is reported by the integrity model)."""
    column = market.dataset.time_column
    for path in reversed(lake.files(market.dataset, symbol=symbol, param=param, end=before_ms - 1)):
        try:
            table = pq.read_table(path, columns=[column])
        except READ_ERRORS:
            return None
        times = table[column].cast(pa.int64()).to_numpy()
        times = times[times < before_ms]
        if times.size:
            return int(times.max())
    return None


def _freshness(
    lake: Lake,
    settings: Settings,
    market: MarketSeries,
    health: SeriesHealth,
    *,
    now_ms: int,
) -> Freshness:
    thresholds = thresholds_for_step(settings.freshness(market.name), market, health.step_ms)
    step_ms = health.step_ms
    last_ms = health.last_event_ms
    if last_ms is None and not health.corrupt_files:
        last_ms = _newest_before(
            lake, market, symbol=health.symbol, param=health.param, before_ms=now_ms
        )
        if health.param is not None:
            step_ms = interval_ms(health.param)
    close_ms = None
    if last_ms is not None:
        close_ms = last_ms + (step_ms or 0 if market.final_after_step else 0)
    unjudged = Freshness(
        last_event_close_ms=close_ms,
        age_seconds=None,
        warn_seconds=thresholds.warn_seconds,
        error_seconds=thresholds.error_seconds,
        status="unknown",
    )
    return unjudged.at(now_ms)


def _latency(batches: SeriesBatches, settings: Settings) -> Latency:
    summary = latency_summary(batches)
    p95 = summary["p95_seconds"]
    status: Status = (
        "unknown"
        if p95 is None
        else judge_above(
            p95, warn=settings.latency_warn_seconds, error=settings.latency_error_seconds
        )
    )
    return Latency(
        batches=summary["batches"],
        backfill_batches=summary["backfill_batches"],
        last_seconds=summary["last_seconds"],
        p50_seconds=summary["p50_seconds"],
        p95_seconds=summary["p95_seconds"],
        warn_seconds=settings.latency_warn_seconds,
        error_seconds=settings.latency_error_seconds,
        status=status,
    )


def live_health(
    lake: Lake,
    settings: Settings,
    market: MarketSeries,
    *,
    symbol: str,
    param: str | None,
    start_ms: int,
    now_ms: int,
    context: RepairContext | None = None,
) -> SeriesHealth:
    """The integrity model's verdict on one kept-fresh series over ``[start_ms, now_ms)``,
    with the settings' freshness thresholds and cadence tolerance (the health snapshot and
    the freshness drill-down judge a series the same way)."""
    return assess_series(
        lake,
        market,
        symbol=symbol,
        param=param,
        start_ms=start_ms,
        end_ms=now_ms,
        now_ms=now_ms,
        expect="live",
        thresholds=settings.freshness(market.name),
        tolerance_ratio=settings.cadence_tolerance_ratio,
        context=context,
    )


def expected_interval_seconds(
    market: MarketSeries, settings: Settings, *, step_ms: int | None
) -> float:
    """The cadence a series should be delivered at: the worker's interval, or the series' own
    step when longer (a 5m open-interest row, a funding settlement every 8 h — or the symbol's
    own funding interval once stored); trades: the worker's interval."""
    if market.cadence == "ids":
        return settings.worker_interval_seconds
    step = step_ms if step_ms is not None else market.nominal_step_ms
    return max(settings.worker_interval_seconds, (step or 0) / 1000)


def _cadence(
    batches: SeriesBatches, settings: Settings, *, expected_seconds: float, now_ms: int
) -> Cadence:
    written_us = batches.written_us[batches.successful]
    intervals = np.diff(written_us) / 1e6
    last = float(intervals[-1]) if intervals.size else None
    unjudged = Cadence(
        expected_seconds=expected_seconds,
        batches=int(written_us.size),
        last_interval_seconds=last,
        median_interval_seconds=float(np.median(intervals)) if intervals.size else None,
        max_interval_seconds=float(intervals.max()) if intervals.size else None,
        deviation_seconds=None if last is None else last - expected_seconds,
        deviation_ratio=None if last is None else last / expected_seconds - 1,
        status="unknown",
        last_success_written_ms=int(written_us[-1]) // 1000 if written_us.size else None,
        warn_ratio=settings.cadence_warn_ratio,
        error_ratio=settings.cadence_error_ratio,
    )
    return unjudged.at(now_ms)


def _series_status(
    lake: Lake,
    settings: Settings,
    market: MarketSeries,
    *,
    symbol: str,
    log: pa.Table,
    damaged_log: Sequence[CorruptPartition] = (),
    start_ms: int,
    now_ms: int,
    context: RepairContext,
) -> SeriesStatus:
    param = market.default_param
    health = live_health(
        lake,
        settings,
        market,
        symbol=symbol,
        param=param,
        start_ms=start_ms,
        now_ms=now_ms,
        context=context,
    )
    batches = series_batches(log, market.name, param=param, start_ms=start_ms, end_ms=now_ms)
    freshness = _freshness(lake, settings, market, health, now_ms=now_ms)
    latency = _latency(batches, settings)
    cadence = _cadence(
        batches,
        settings,
        expected_seconds=expected_interval_seconds(market, settings, step_ms=health.step_ms),
        now_ms=now_ms,
    )
    gaps = len(health.gaps)
    corrupt_files = (*health.corrupt_files, *(str(part.version) for part in damaged_log))
    problems = (
        *(problem.to_dict() for problem in health.problems),
        *(_log_problem(part, market, param).to_dict() for part in damaged_log),
    )
    status = SeriesStatus.judge(
        freshness=freshness,
        latency=latency,
        cadence=cadence,
        gaps=gaps,
        duplicates=health.duplicates,
        corrupt_files=corrupt_files,
    )
    return SeriesStatus(
        dataset=market.name,
        symbol=symbol,
        param=param,
        rows=health.rows,
        first_event_ms=health.first_event_ms,
        last_event_ms=health.last_event_ms,
        freshness=freshness,
        latency=latency,
        cadence=cadence,
        gaps=gaps,
        missing=sum(gap.missing for gap in health.gaps),
        exchange_gaps=len(health.exchange_gaps),
        duplicates=health.duplicates,
        corrupt_files=corrupt_files,
        last_batch_written_ms=int(batches.written_us.max()) // 1000
        if batches.written_us.size
        else None,
        problems=problems,
        status=status,
    )


# ---- persistence -------------------------------------------------------------------------------


def write_snapshot(state_dir: Path, snapshot: HealthSnapshot) -> Path:
    """``state_dir/health.json``, written atomically (readers see the old or the new file)."""
    from ingmon.reports.state import write_text_atomic  # noqa: PLC0415 - the writers only

    state_dir.mkdir(parents=True, exist_ok=True)
    target = state_dir / HEALTH_FILE
    write_text_atomic(target, json.dumps(snapshot.to_dict(), allow_nan=False) + "\n")
    return target


def read_snapshot(state_dir: Path) -> HealthSnapshot | None:
    """The snapshot in ``state_dir/health.json``; None when absent or unreadable (a damaged or
    foreign file is not an error for a reader: the next write replaces it)."""
    try:
        text = (state_dir / HEALTH_FILE).read_text(encoding="utf-8")
        data = json.loads(text)
        if not isinstance(data, Mapping):
            return None
        return HealthSnapshot.from_dict(data)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None

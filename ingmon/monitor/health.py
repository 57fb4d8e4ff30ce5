"""The health model: per market dataset × symbol, how fresh, how late, how regular and how whole
the stored data is — one snapshot the worker writes and the API, exporter and alerts read.

Built on the integrity model (``ingmon.integrity.assess_series`` with ``expect="live"``: one
definition of gaps, duplicates, damaged partitions and staleness) and on ``ingest_log``
(``ingmon.latency``: one definition of a live batch and of its latency).

Statuses (``ok`` < ``unknown`` < ``warn`` < ``error`` in :func:`worst`):

- **freshness**: age of the newest event's close at ``now`` against the dataset's warn/error
  ages (``freshness_verdict``: ok up to warn, warn up to error, error beyond); unknown when the
  series has nothing stored at all. A series with rows only before the health window is judged
  by its newest stored row (so a feed stalled for days is an error, not unknown).
- **latency**: the p95 of the live batches written in the window against
  ``latency_warn_seconds``/``latency_error_seconds`` (above warn: warn; above error: error);
  unknown without live batches (a lake that was only backfilled).
- **cadence**: intervals between successive *successful* live batches (a live batch that
  inserted at least one new row), by ``written_at``. The last interval's deviation ratio
  (interval / expected − 1) above ``cadence_warn_ratio`` warns, above ``cadence_error_ratio``
  is an error. The interval still open — ``now`` minus the last successful batch — is a lower
  bound of the next one and is judged by the same ratios, so a stalled worker turns the cadence
  to warn and then error before any new batch arrives. Unknown with fewer than two successful
  batches in the window, unless the open interval already breaches.
- **series**: the worst of the known parts among freshness, latency and cadence, plus warn for
  gaps, warn for duplicates and error for damaged partitions. ``unknown`` parts are ignored
  when some part is known; a series with no known part is ``unknown`` — e.g. a dataset never
  stored for the symbol (its ``empty`` problem is still listed).
- **damage**: a damaged partition of the series, of its symbol's ``exchange_gaps`` (every time gap
  then counts) or of its symbol's ``ingest_log`` in the window (latency and cadence then
  unknown) is named in ``corrupt_files`` and in a ``corrupt_partition`` problem: an error. A
  damaged signal or score partition is a problem of the signal health; the snapshot's status
  is then an error too — an input that could not be read never reads as ok.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingmon.config import Settings, Threshold
from ingmon.damage import READ_ERRORS
from ingmon.errors import CorruptPartitionError
from ingmon.integrity import SeriesHealth, assess_series, freshness_verdict, thresholds_for_step
from ingmon.lake import CorruptPartition, Lake
from ingmon.latency import (
    INGEST_LOG_COLUMNS,
    SeriesBatches,
    latency_summary,
    read_ingest_log,
    series_batches,
)
from ingmon.monitor.kpis import PerformanceKPI, SignalHealth, performance_kpis, signal_health
from ingmon.problems import Problem, RepairContext
from ingmon.schema import CANDLES, INGEST_LOG, MARKET_SERIES, MarketSeries, interval_ms
from ingmon.times import HOUR_MS, iso_ms

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
    "read_snapshot",
    "worst",
    "write_snapshot",
]

Status = Literal["ok", "warn", "error", "unknown"]
# Worst first: the order of a snapshot's series and of worst().
STATUSES: tuple[Status, ...] = ("error", "warn", "unknown", "ok")
_RANK: dict[str, int] = {status: rank for rank, status in enumerate(STATUSES)}
HEALTH_FILE = "health.json"
HEALTH_SCHEMA = "ingmon.health/v1"


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of some statuses: error > warn > unknown > ok (``ok`` for none)."""
    found: Status = "ok"
    for status in statuses:
        if _RANK[status] < _RANK[found]:
            found = status
    return found


def _status(value: Any) -> Status:
    text = str(value)
    for status in STATUSES:
        if status == text:
            return status
    raise ValueError(f"unknown status {value!r}: expected one of {', '.join(STATUSES)}")


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _above(value: float, *, warn: float, error: float) -> Status:
    """ok up to ``warn``, warn up to ``error``, error beyond (the bounds themselves are fine)."""
    if value > error:
        return "error"
    if value > warn:
        return "warn"
    return "ok"


# ---- the parts of a series' health -------------------------------------------------------------


@dataclass(frozen=True)
class Freshness:
    """Age of the newest stored event (at its close) against the dataset's warn/error ages."""

    last_event_close_ms: int | None  # close of the newest event (candle open + step; else its time)
    age_seconds: float | None  # at the snapshot's (or .at()'s) now
    warn_seconds: float  # the dataset's thresholds, shifted for a non-nominal step
    error_seconds: float
    status: Status  # unknown when nothing stored

    def at(self, now_ms: int) -> Freshness:
        """Re-judged at ``now_ms``: the age grows while nothing new is stored."""
        if self.last_event_close_ms is None:
            return replace(self, age_seconds=None, status="unknown")
        # As integrity's age: whole tenths of a second.
        age = round((now_ms - self.last_event_close_ms) / 1000, 1)
        verdict = freshness_verdict(
            age, Threshold(warn_seconds=self.warn_seconds, error_seconds=self.error_seconds)
        )
        return replace(self, age_seconds=age, status=verdict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_event_close_ms": self.last_event_close_ms,
            "last_event_close": iso_ms(self.last_event_close_ms),
            "age_seconds": self.age_seconds,
            "warn_seconds": self.warn_seconds,
            "error_seconds": self.error_seconds,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Freshness:
        return cls(
            last_event_close_ms=_opt_int(data.get("last_event_close_ms")),
            age_seconds=_opt_float(data.get("age_seconds")),
            warn_seconds=float(data["warn_seconds"]),
            error_seconds=float(data["error_seconds"]),
            status=_status(data["status"]),
        )


@dataclass(frozen=True)
class Latency:
    """Ingestion latency of the live batches written in the window (``ingmon.latency``)."""

    batches: int
    backfill_batches: int
    last_seconds: float | None
    p50_seconds: float | None
    p95_seconds: float | None
    warn_seconds: float
    error_seconds: float
    status: Status  # on p95; unknown without live batches

    def to_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "backfill_batches": self.backfill_batches,
            "last_seconds": self.last_seconds,
            "p50_seconds": self.p50_seconds,
            "p95_seconds": self.p95_seconds,
            "warn_seconds": self.warn_seconds,
            "error_seconds": self.error_seconds,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Latency:
        return cls(
            batches=int(data["batches"]),
            backfill_batches=int(data["backfill_batches"]),
            last_seconds=_opt_float(data.get("last_seconds")),
            p50_seconds=_opt_float(data.get("p50_seconds")),
            p95_seconds=_opt_float(data.get("p95_seconds")),
            warn_seconds=float(data["warn_seconds"]),
            error_seconds=float(data["error_seconds"]),
            status=_status(data["status"]),
        )


@dataclass(frozen=True)
class Cadence:
    """Intervals between successive successful live batches (``written_at``) vs the expected."""

    expected_seconds: float  # max(worker_interval_seconds, the series' step)
    batches: int  # successful live batches in the window
    last_interval_seconds: float | None
    median_interval_seconds: float | None
    max_interval_seconds: float | None
    deviation_seconds: float | None  # last interval - expected
    deviation_ratio: float | None  # last interval / expected - 1
    status: Status  # warn/error by cadence_warn/error_ratio; unknown < 2 batches
    # Added: what .at() needs to re-apply the open-interval rule.
    last_success_written_ms: int | None = None  # written_at of the last successful batch
    open_interval_seconds: float | None = None  # now - last_success_written_ms
    warn_ratio: float = 1.0
    error_ratio: float = 4.0

    def at(self, now_ms: int) -> Cadence:
        """Re-judged at ``now_ms``: the open interval since the last successful batch grows."""
        if self.last_success_written_ms is None:
            return replace(self, open_interval_seconds=None, status="unknown")
        open_seconds = (now_ms - self.last_success_written_ms) / 1000
        judged = []
        if self.deviation_ratio is not None:
            judged.append(self._judge(self.deviation_ratio))
        open_status = self._judge(open_seconds / self.expected_seconds - 1)
        if open_status != "ok" or judged:
            judged.append(open_status)
        status = worst(judged) if judged else "unknown"
        return replace(self, open_interval_seconds=open_seconds, status=status)

    def _judge(self, ratio: float) -> Status:
        return _above(ratio, warn=self.warn_ratio, error=self.error_ratio)

    def to_dict(self) -> dict[str, Any]:
        return {
            "expected_seconds": self.expected_seconds,
            "batches": self.batches,
            "last_interval_seconds": self.last_interval_seconds,
            "median_interval_seconds": self.median_interval_seconds,
            "max_interval_seconds": self.max_interval_seconds,
            "deviation_seconds": self.deviation_seconds,
            "deviation_ratio": self.deviation_ratio,
            "status": self.status,
            "last_success_written_ms": self.last_success_written_ms,
            "last_success_written": iso_ms(self.last_success_written_ms),
            "open_interval_seconds": self.open_interval_seconds,
            "warn_ratio": self.warn_ratio,
            "error_ratio": self.error_ratio,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cadence:
        return cls(
            expected_seconds=float(data["expected_seconds"]),
            batches=int(data["batches"]),
            last_interval_seconds=_opt_float(data.get("last_interval_seconds")),
            median_interval_seconds=_opt_float(data.get("median_interval_seconds")),
            max_interval_seconds=_opt_float(data.get("max_interval_seconds")),
            deviation_seconds=_opt_float(data.get("deviation_seconds")),
            deviation_ratio=_opt_float(data.get("deviation_ratio")),
            status=_status(data["status"]),
            last_success_written_ms=_opt_int(data.get("last_success_written_ms")),
            open_interval_seconds=_opt_float(data.get("open_interval_seconds")),
            warn_ratio=float(data.get("warn_ratio", 1.0)),
            error_ratio=float(data.get("error_ratio", 4.0)),
        )


# ---- one series --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesStatus:
    """The health of one (dataset, symbol, parameter) series at ``now``."""

    dataset: str
    symbol: str
    param: str | None
    rows: int  # rows inside the health window
    first_event_ms: int | None  # row timestamps inside the window
    last_event_ms: int | None
    freshness: Freshness
    latency: Latency
    cadence: Cadence
    gaps: int  # gaps inside the window that are problems (the exchange's own are apart)
    missing: int  # slots (or trade ids) those gaps miss
    exchange_gaps: int
    duplicates: int
    corrupt_files: tuple[str, ...]
    last_batch_written_ms: int | None  # newest ingest_log.written_at in the window (any source)
    problems: tuple[dict[str, Any], ...]  # Problem.to_dict() of integrity.assess_series
    status: Status

    @staticmethod
    def judge(
        *,
        freshness: Freshness,
        latency: Latency,
        cadence: Cadence,
        gaps: int,
        duplicates: int,
        corrupt_files: Sequence[str],
    ) -> Status:
        """Worst of the known parts; gaps and duplicates warn, damaged partitions are an error
        (see the module docstring)."""
        parts: list[Status] = [freshness.status, latency.status, cadence.status]
        if gaps:
            parts.append("warn")
        if duplicates:
            parts.append("warn")
        if corrupt_files:
            parts.append("error")
        known = [part for part in parts if part != "unknown"]
        return worst(known) if known else "unknown"

    def at(self, now_ms: int) -> SeriesStatus:
        """Freshness and the cadence's open interval re-judged at ``now_ms``, status again."""
        freshness = self.freshness.at(now_ms)
        cadence = self.cadence.at(now_ms)
        status = self.judge(
            freshness=freshness,
            latency=self.latency,
            cadence=cadence,
            gaps=self.gaps,
            duplicates=self.duplicates,
            corrupt_files=self.corrupt_files,
        )
        return replace(self, freshness=freshness, cadence=cadence, status=status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "symbol": self.symbol,
            "param": self.param,
            "status": self.status,
            "rows": self.rows,
            "first_event_ms": self.first_event_ms,
            "last_event_ms": self.last_event_ms,
            "first_event": iso_ms(self.first_event_ms),
            "last_event": iso_ms(self.last_event_ms),
            "freshness": self.freshness.to_dict(),
            "latency": self.latency.to_dict(),
            "cadence": self.cadence.to_dict(),
            "gaps": self.gaps,
            "missing": self.missing,
            "exchange_gaps": self.exchange_gaps,
            "duplicates": self.duplicates,
            "corrupt_files": list(self.corrupt_files),
            "last_batch_written_ms": self.last_batch_written_ms,
            "last_batch_written": iso_ms(self.last_batch_written_ms),
            "problems": [dict(problem) for problem in self.problems],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeriesStatus:
        param = data.get("param")
        return cls(
            dataset=str(data["dataset"]),
            symbol=str(data["symbol"]),
            param=None if param is None else str(param),
            rows=int(data["rows"]),
            first_event_ms=_opt_int(data.get("first_event_ms")),
            last_event_ms=_opt_int(data.get("last_event_ms")),
            freshness=Freshness.from_dict(data["freshness"]),
            latency=Latency.from_dict(data["latency"]),
            cadence=Cadence.from_dict(data["cadence"]),
            gaps=int(data["gaps"]),
            missing=int(data["missing"]),
            exchange_gaps=int(data["exchange_gaps"]),
            duplicates=int(data["duplicates"]),
            corrupt_files=tuple(str(f) for f in data.get("corrupt_files", ())),
            last_batch_written_ms=_opt_int(data.get("last_batch_written_ms")),
            problems=tuple(dict(p) for p in data.get("problems", ())),
            status=_status(data["status"]),
        )


def _dataset_rank(name: str) -> int:
    names = list(MARKET_SERIES)
    return names.index(name) if name in names else len(names)


def _ordered(series: Iterable[SeriesStatus]) -> tuple[SeriesStatus, ...]:
    """Worst first, then by dataset (MARKET_SERIES order), symbol and parameter."""
    return tuple(
        sorted(
            series,
            key=lambda s: (_RANK[s.status], _dataset_rank(s.dataset), s.symbol, s.param or ""),
        )
    )


# ---- the snapshot ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthSnapshot:
    """Every series' health, the signal health and the backtest KPIs at one instant."""

    generated_at_ms: int
    window_hours: float
    symbols: tuple[str, ...]
    series: tuple[SeriesStatus, ...]  # worst first, then dataset, symbol
    signals: SignalHealth
    performance: tuple[PerformanceKPI, ...]
    now_ms: int  # the instant statuses are judged at (generated_at_ms, or .at()'s)
    # Settings the snapshot was judged with, beyond those each part keeps.
    settings_used: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        """Worst over the series, and ``error`` when the signal health lists a damaged
        partition (an input that could not be read); ``unknown`` for a snapshot without any
        series or problem."""
        statuses = [s.status for s in self.series]
        if any(p.get("severity") == "error" for p in self.signals.problems):
            statuses.append("error")
        if not statuses:
            return "unknown"
        return worst(statuses)

    def at(self, now_ms: int) -> HealthSnapshot:
        """The snapshot judged at another instant (ages and open intervals re-computed)."""
        return replace(self, series=_ordered(s.at(now_ms) for s in self.series), now_ms=now_ms)

    def counts(self) -> dict[Status, int]:
        """Series per status (every status present, zero included)."""
        out: dict[Status, int] = dict.fromkeys(STATUSES, 0)
        for entry in self.series:
            out[entry.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": HEALTH_SCHEMA,
            "status": self.status,
            "generated_at_ms": self.generated_at_ms,
            "generated_at": iso_ms(self.generated_at_ms),
            "now_ms": self.now_ms,
            "now": iso_ms(self.now_ms),
            "window_hours": self.window_hours,
            "symbols": list(self.symbols),
            "counts": dict(self.counts()),
            "series": [entry.to_dict() for entry in self.series],
            "signals": self.signals.to_dict(),
            "performance": [kpi.to_dict() for kpi in self.performance],
            "settings_used": dict(self.settings_used),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthSnapshot:
        schema = data.get("schema", HEALTH_SCHEMA)
        if schema != HEALTH_SCHEMA:
            raise ValueError(f"unknown health schema {schema!r}")
        generated = int(data["generated_at_ms"])
        return cls(
            generated_at_ms=generated,
            window_hours=float(data["window_hours"]),
            symbols=tuple(str(s) for s in data.get("symbols", ())),
            series=tuple(SeriesStatus.from_dict(s) for s in data.get("series", ())),
            signals=SignalHealth.from_dict(data["signals"]),
            performance=tuple(PerformanceKPI.from_dict(p) for p in data.get("performance", ())),
            now_ms=int(data.get("now_ms", generated)),
            settings_used={str(k): float(v) for k, v in data.get("settings_used", {}).items()},
        )


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
        series=_ordered(series),
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
        else _above(p95, warn=settings.latency_warn_seconds, error=settings.latency_error_seconds)
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
    health = assess_series(
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

"""The health model: per series and snapshot, an ok/warn/error/unknown status and its parts.

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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ingmon.config import Threshold
from ingmon.integrity import freshness_verdict
from ingmon.monitor.kpis import PerformanceKPI, SignalHealth
from ingmon.schema import MARKET_SERIES
from ingmon.times import iso_ms

__all__ = [
    "HEALTH_SCHEMA",
    "STATUSES",
    "Cadence",
    "Freshness",
    "HealthSnapshot",
    "Latency",
    "SeriesStatus",
    "Status",
    "judge_above",
    "worst",
    "worst_first",
]

Status = Literal["ok", "warn", "error", "unknown"]
# Worst first: the order of a snapshot's series and of worst().
STATUSES: tuple[Status, ...] = ("error", "warn", "unknown", "ok")
_RANK: dict[str, int] = {status: rank for rank, status in enumerate(STATUSES)}
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


def judge_above(value: float, *, warn: float, error: float) -> Status:
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
        return judge_above(ratio, warn=self.warn_ratio, error=self.error_ratio)

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


def worst_first(series: Iterable[SeriesStatus]) -> tuple[SeriesStatus, ...]:
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
        return replace(self, series=worst_first(s.at(now_ms) for s in self.series), now_ms=now_ms)

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

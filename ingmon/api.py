"""The JSON API and ``/metrics/prometheus``: Tornado handlers for ``--plugins ingmon.api``.

``ROUTES`` serves ``/api/health``, ``/api/metrics``, ``/api/freshness``, ``/api/signals``,
``/api/backtests``, ``/api/backtests/{run_id}``, ``/api/openapi.json`` (the OpenAPI 3.1
document of all of them) and ``/metrics/prometheus``. The server process only reads: the
worker's state files (``health.json``, ``alerts.json``, ``worker.json``, parsed again only when
they change) and small, cached lake reads (signals, saved backtest runs; 5 s TTL). Heavy work
runs in ``ingmon worker``, never here.

Every answer is JSON with a stable shape; errors are ``{"error": {"status", "message",
"parameter"?}}`` — 400 for a bad or unknown query parameter (named), 401, 404, 405, 503 for
damaged storage, and a 500 without a traceback for anything unexpected (logged). When the
server runs with authentication (``--basic-auth``, OAuth) the ``/api/*`` routes need a logged-in
session too — Panel protects only its own pages, so the handlers ask the server's auth provider
themselves, as Panel's ``AuthenticatedStaticFileHandler`` does. ``/metrics/prometheus`` is open
unless a metrics token is set (``Authorization: Bearer <token>``).

The document builders (:func:`health_document`, :func:`metrics_document`,
:func:`freshness_document`) are plain functions of the settings and ``now_ms``: the dashboard
shows exactly what the API answers.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlencode

import orjson
from tornado.httputil import url_concat
from tornado.web import HTTPError, RequestHandler

from ingmon import __version__
from ingmon.config import Settings, load_settings
from ingmon.errors import DataIntegrityError
from ingmon.lake import Lake
from ingmon.monitor.alerts import ALERTS_FILE, Alert, active_alerts
from ingmon.monitor.exporter import build_registry, exposition
from ingmon.monitor.health import (
    HEALTH_FILE,
    STATUSES,
    HealthSnapshot,
    SeriesStatus,
    Status,
    read_snapshot,
    worst,
)
from ingmon.schema import BACKTEST_RUNS, BACKTEST_TRADES, MARKET_SERIES, SIGNAL_TIMEFRAMES
from ingmon.signals.setups import SETUPS
from ingmon.times import iso_ms, now_ms, parse_instant_ms, to_ms
from ingmon.worker import WORKER_STATE, read_worker_state

if TYPE_CHECKING:
    import polars as pl
    from prometheus_client import CollectorRegistry

__all__ = [
    "COMPONENTS",
    "ROUTES",
    "STATUSES",
    "MonitorState",
    "Param",
    "WorkerTick",
    "format_duration",
    "freshness_document",
    "health_document",
    "metrics_document",
    "monitor_state",
    "openapi_document",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

COMPONENTS = ("ingestion", "signals", "performance", "alerts", "worker", "snapshot")
_RANK = {status: rank for rank, status in enumerate(STATUSES)}
# The state file is stale once it is this many worker intervals old (warn), then (error).
_STALE_INTERVALS = (2.0, 5.0)
_HINT_NO_STATE = "run `ingmon worker` (or `ingmon health` once) to write state/health.json"
_LAKE_TTL_SECONDS = 5.0
_BODY_TTL_SECONDS = 1.0
_PERPETUAL = re.compile(r"^[A-Z0-9]{1,20}(USDT|USDC)$")
_SEVERE = frozenset({"critical", "error", "page"})
_JSON = "application/json; charset=utf-8"


# ---- small helpers ---------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """A duration in its two largest units, compact: ``5s``, ``3m 12s``, ``1h 2m``, ``1d 1h``;
    ``–`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    sign = "-" if seconds < 0 else ""
    whole = round(abs(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if whole >= size or parts or unit == "s":
            parts.append(f"{whole // size}{unit}")
            whole %= size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


def _seconds_between(later_ms: int, earlier_ms: int | None) -> float | None:
    return None if earlier_ms is None else (later_ms - earlier_ms) / 1000


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _status_counts(statuses: Iterable[Status]) -> dict[str, int]:
    counts = Counter(statuses)
    return {status: counts.get(status, 0) for status in STATUSES}


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _series_label(series: SeriesStatus) -> str:
    return " ".join(part for part in (series.dataset, series.param, series.symbol) if part)


# ---- state the server reads: parsed again only when the file changes ------------------------


class _FileCache:
    """Values loaded from one file, kept until its (mtime, size, inode) changes — state files
    are replaced atomically, so a new version is a new inode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, Path], tuple[tuple[int, int, int] | None, Any]] = {}

    def get(self, kind: str, path: Path, load: Callable[[], T]) -> T:
        try:
            stat = path.stat()
            version: tuple[int, int, int] | None = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            version = None
        with self._lock:
            hit = self._entries.get((kind, path))
        if hit is not None and hit[0] == version:
            value: T = hit[1]
            return value
        value = load()
        with self._lock:
            self._entries[kind, path] = (version, value)
        return value


class _TTLCache:
    """Values kept for ``ttl_seconds``: many requests, one read. At most ``max_entries`` keys
    (filters come from clients: expired entries go first, then everything)."""

    def __init__(self, ttl_seconds: float, *, max_entries: int = 256) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def get(self, key: tuple[Any, ...], load: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_seconds:
            value: T = hit[1]
            return value
        value = load()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                for old in [
                    k for k, (at, _) in self._entries.items() if now - at >= self.ttl_seconds
                ]:
                    del self._entries[old]
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (now, value)
        return value


_FILES = _FileCache()
_LAKE = _TTLCache(_LAKE_TTL_SECONDS)
# The state documents' bodies, rebuilt at most once a second: ages are whole-second news, and
# twenty clients polling at once cost one build.
_BODIES = _TTLCache(_BODY_TTL_SECONDS)


@dataclass(frozen=True)
class WorkerTick:
    """The worker's last tick, from ``state/worker.json`` (``ingmon.worker.TickResult``)."""

    started_ms: int | None
    finished_ms: int | None
    duration_seconds: float | None
    outcome: str | None  # ok | error | interrupted
    interval_seconds: float | None  # None for a one-off tick (--once)
    stopped_ms: int | None  # the worker stopped (SIGTERM/SIGINT) after this tick

    @property
    def last_ms(self) -> int | None:
        return self.finished_ms if self.finished_ms is not None else self.started_ms


def _number(value: Any) -> float | None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number and math.isfinite(value) else None


def _whole(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _read_worker_tick(state_dir: Path) -> WorkerTick | None:
    document = read_worker_state(state_dir)
    if document is None:
        return None
    outcome = document.get("outcome")
    return WorkerTick(
        started_ms=_whole(document.get("started_ms")),
        finished_ms=_whole(document.get("finished_ms")),
        duration_seconds=_number(document.get("duration_seconds")),
        outcome=None if outcome is None else str(outcome),
        interval_seconds=_number(document.get("interval_seconds")),
        stopped_ms=_whole(document.get("stopped_ms")),
    )


@dataclass(frozen=True)
class MonitorState:
    """What the server knows at ``now_ms``: the health snapshot judged at that instant (None
    before the first ``ingmon health``/worker tick), the active alerts and the worker's tick."""

    settings: Settings
    now_ms: int
    snapshot: HealthSnapshot | None
    snapshot_generated_ms: int | None
    alerts: tuple[Alert, ...]
    worker: WorkerTick | None

    @property
    def snapshot_age_seconds(self) -> float | None:
        return _seconds_between(self.now_ms, self.snapshot_generated_ms)

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(alert for alert in self.alerts if alert.state == "firing")

    @property
    def pending(self) -> tuple[Alert, ...]:
        return tuple(alert for alert in self.alerts if alert.state == "pending")


def monitor_state(settings: Settings, *, now_ms: int) -> MonitorState:
    """Read the state files (through the change-aware cache) and judge them at ``now_ms``."""
    state_dir = settings.state_dir
    snapshot = _FILES.get("health", state_dir / HEALTH_FILE, partial(read_snapshot, state_dir))
    alerts = _FILES.get("alerts", state_dir / ALERTS_FILE, lambda: tuple(active_alerts(state_dir)))
    worker = _FILES.get("worker", state_dir / WORKER_STATE, partial(_read_worker_tick, state_dir))
    return MonitorState(
        settings=settings,
        now_ms=now_ms,
        snapshot=None if snapshot is None else snapshot.at(now_ms),
        snapshot_generated_ms=None if snapshot is None else snapshot.generated_at_ms,
        alerts=alerts,
        worker=worker,
    )


# ---- /api/health: one status per component ----------------------------------------------------


def _component(
    status: Status,
    summary: str,
    *,
    hint: str | None = None,
    as_of_ms: int | None = None,
    age_seconds: float | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "summary": summary,
        "hint": hint,
        "as_of": iso_ms(as_of_ms),
        "age_seconds": _finite(age_seconds),
    }


def _age_status(age_seconds: float, interval_seconds: float) -> Status:
    warn_after, error_after = (factor * interval_seconds for factor in _STALE_INTERVALS)
    if age_seconds > error_after:
        return "error"
    if age_seconds > warn_after:
        return "warn"
    return "ok"


def _snapshot_component(state: MonitorState) -> dict[str, Any]:
    age = state.snapshot_age_seconds
    if state.snapshot is None or age is None:
        return _component("unknown", "no health snapshot yet", hint=_HINT_NO_STATE)
    status = _age_status(age, state.settings.worker_interval_seconds)
    summary = f"health snapshot written {format_duration(age)} ago"
    hint = None if status == "ok" else "the snapshot is stale: is `ingmon worker` running?"
    return _component(
        status, summary, hint=hint, as_of_ms=state.snapshot_generated_ms, age_seconds=age
    )


def _ingestion_component(state: MonitorState) -> dict[str, Any]:
    snapshot = state.snapshot
    if snapshot is None:
        return _component("unknown", "no health snapshot yet", hint=_HINT_NO_STATE)
    as_of, age = state.snapshot_generated_ms, state.snapshot_age_seconds
    if not snapshot.series:
        return _component(
            "unknown",
            "no market series in the lake",
            hint="backfill first: `ingmon backfill --symbol BTCUSDT` (or `make demo`)",
            as_of_ms=as_of,
            age_seconds=age,
        )
    statuses = [series.status for series in snapshot.series]
    status = worst(statuses)
    counts = _status_counts(statuses)
    summary = f"{len(statuses)} series: " + ", ".join(
        f"{count} {name}" for name, count in counts.items() if count
    )
    if status != "ok":
        culprit = min(snapshot.series, key=lambda s: _RANK[s.status])
        summary += f"; worst {_series_label(culprit)} ({culprit.status})"
    return _component(status, summary, as_of_ms=as_of, age_seconds=age)


def _signals_component(state: MonitorState) -> dict[str, Any]:
    snapshot = state.snapshot
    if snapshot is None:
        return _component("unknown", "no health snapshot yet", hint=_HINT_NO_STATE)
    health = snapshot.signals
    if not health.symbols:
        return _component(
            "unknown",
            "no signals scored yet",
            hint="score the lake: `ingmon score --symbol BTCUSDT` (the worker does it each tick)",
            as_of_ms=state.snapshot_generated_ms,
        )
    limit = state.settings.alert_no_signals_seconds
    quiet: list[str] = []
    never: list[str] = []
    for symbol in health.symbols:
        since = health.since_last_signal_seconds(symbol.symbol, state.now_ms)
        if since is None:
            never.append(symbol.symbol)
        elif since > limit:
            quiet.append(symbol.symbol)
    window = sum(symbol.window_count for symbol in health.symbols)
    summary = f"{_plural(window, 'signal')} in the last {health.window_hours:g}h over "
    summary += _plural(len(health.symbols), "symbol")
    if quiet:
        summary += f"; none for over {format_duration(limit)}: {', '.join(quiet)}"
        status: Status = "warn"
    elif never:
        summary += f"; never a signal: {', '.join(never)}"
        status = "unknown"
    else:
        status = "ok"
    return _component(status, summary, as_of_ms=state.snapshot_generated_ms)


def _performance_component(state: MonitorState) -> dict[str, Any]:
    snapshot = state.snapshot
    if snapshot is None:
        return _component("unknown", "no health snapshot yet", hint=_HINT_NO_STATE)
    runs = [kpi for kpi in snapshot.performance if kpi.setup == "all"]
    if not runs:
        return _component(
            "unknown",
            "no saved backtest runs",
            hint="run one: `ingmon backtest --symbol BTCUSDT`",
            as_of_ms=state.snapshot_generated_ms,
        )
    limit = state.settings.alert_max_drawdown_ratio
    known = [kpi for kpi in runs if kpi.max_drawdown is not None]
    breached = [kpi for kpi in known if kpi.max_drawdown is not None and kpi.max_drawdown >= limit]
    summary = f"latest run of {_plural(len(runs), 'symbol')}"
    if known:
        deepest = max(known, key=lambda kpi: kpi.max_drawdown or 0.0)
        summary += f"; deepest drawdown {100 * (deepest.max_drawdown or 0.0):.1f} %"
        summary += f" ({deepest.symbol}, limit {100 * limit:.1f} %)"
    status: Status = "warn" if breached else ("ok" if known else "unknown")
    return _component(status, summary, as_of_ms=state.snapshot_generated_ms)


def _alerts_component(state: MonitorState) -> dict[str, Any]:
    firing, pending = state.firing, state.pending
    if not firing:
        summary = "none firing" + (f", {len(pending)} pending" if pending else "")
        return _component("ok", summary)
    names = Counter(alert.labels.get("alertname", "?") for alert in firing)
    summary = f"{len(firing)} firing: " + ", ".join(
        name if count == 1 else f"{name} ×{count}" for name, count in sorted(names.items())
    )
    if pending:
        summary += f"; {len(pending)} pending"
    severe = any(alert.labels.get("severity") in _SEVERE for alert in firing)
    return _component("error" if severe else "warn", summary)


def _worker_component(state: MonitorState) -> dict[str, Any]:
    tick = state.worker
    last = None if tick is None else tick.last_ms
    if tick is None or last is None:
        return _component(
            "unknown", "no worker tick recorded", hint="start it: `ingmon worker` (systemd unit)"
        )
    interval = tick.interval_seconds or state.settings.worker_interval_seconds
    age = _seconds_between(state.now_ms, last) or 0.0
    status = _age_status(age, interval)
    summary = f"last tick {format_duration(age)} ago (every {format_duration(interval)})"
    hint = None
    if tick.stopped_ms is not None:
        summary += f"; the worker stopped at {iso_ms(tick.stopped_ms)}"
        hint = "start it again: `ingmon worker` (systemd unit)"
    elif tick.outcome == "error":
        summary += "; that tick failed"
        status = worst([status, "warn"])
        hint = "see the worker's log (journalctl -u ingmon-worker) and state/worker.json"
    elif status != "ok":
        hint = "the worker is late or stopped: is `ingmon worker` running?"
    return _component(status, summary, hint=hint, as_of_ms=last, age_seconds=age)


def health_document(settings: Settings, *, now_ms: int) -> dict[str, Any]:
    """``/api/health``: the status of each component and the worst of them."""
    state = monitor_state(settings, now_ms=now_ms)
    builders = {
        "ingestion": _ingestion_component,
        "signals": _signals_component,
        "performance": _performance_component,
        "alerts": _alerts_component,
        "worker": _worker_component,
        "snapshot": _snapshot_component,
    }
    components = {name: build(state) for name, build in builders.items()}
    return {
        "status": worst(component["status"] for component in components.values()),
        "generated_at": iso_ms(now_ms),
        "components": components,
    }


# ---- /api/metrics and /api/freshness -----------------------------------------------------------


def _series_metrics(series: SeriesStatus) -> dict[str, Any]:
    freshness, latency, cadence = series.freshness, series.latency, series.cadence
    return {
        "dataset": series.dataset,
        "param": series.param,
        "symbol": series.symbol,
        "status": series.status,
        "rows": series.rows,
        "first_event_at": iso_ms(series.first_event_ms),
        "last_event_at": iso_ms(series.last_event_ms),
        "last_batch_written_at": iso_ms(series.last_batch_written_ms),
        "freshness": {
            "status": freshness.status,
            "last_event_close_at": iso_ms(freshness.last_event_close_ms),
            "age_seconds": _finite(freshness.age_seconds),
            "warn_seconds": freshness.warn_seconds,
            "error_seconds": freshness.error_seconds,
        },
        "latency": {
            "status": latency.status,
            "batches": latency.batches,
            "backfill_batches": latency.backfill_batches,
            "last_seconds": _finite(latency.last_seconds),
            "p50_seconds": _finite(latency.p50_seconds),
            "p95_seconds": _finite(latency.p95_seconds),
            "warn_seconds": latency.warn_seconds,
            "error_seconds": latency.error_seconds,
        },
        "cadence": {
            "status": cadence.status,
            "expected_seconds": cadence.expected_seconds,
            "batches": cadence.batches,
            "last_interval_seconds": _finite(cadence.last_interval_seconds),
            "median_interval_seconds": _finite(cadence.median_interval_seconds),
            "max_interval_seconds": _finite(cadence.max_interval_seconds),
            "deviation_seconds": _finite(cadence.deviation_seconds),
            "deviation_ratio": _finite(cadence.deviation_ratio),
        },
        "gaps": series.gaps,
        "missing": series.missing,
        "exchange_gaps": series.exchange_gaps,
        "duplicates": series.duplicates,
        "corrupt_files": list(series.corrupt_files),
        "problems": [dict(problem) for problem in series.problems],
    }


def _alert_item(alert: Alert) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "alertname": alert.labels.get("alertname"),
        "severity": alert.labels.get("severity"),
        "state": alert.state,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "active_since": iso_ms(alert.active_since_ms),
        "fired_at": iso_ms(alert.fired_at_ms),
        "value": _finite(alert.value),
    }


def _str_keys(counts: Mapping[Any, int]) -> dict[str, int]:
    return {str(key): int(value) for key, value in sorted(counts.items(), key=lambda kv: kv[0])}


def _signal_metrics(state: MonitorState) -> dict[str, Any]:
    snapshot = state.snapshot
    if snapshot is None:
        return {
            "window_hours": state.settings.health_window_hours,
            "total": 0,
            "by_setup": {},
            "by_confidence": {},
            "by_score": {},
            "symbols": [],
            "counts": [],
        }
    health = snapshot.signals
    by_setup: Counter[str] = Counter()
    by_confidence: Counter[str] = Counter()
    by_score: Counter[int] = Counter()
    symbols = []
    for symbol in health.symbols:
        by_setup.update(symbol.by_setup)
        by_confidence.update(symbol.by_confidence)
        by_score.update(symbol.by_score)
        symbols.append(
            {
                "symbol": symbol.symbol,
                "window_count": symbol.window_count,
                "last_signal_at": iso_ms(symbol.last_signal_ms),
                "since_last_signal_seconds": _finite(
                    health.since_last_signal_seconds(symbol.symbol, state.now_ms)
                ),
                "by_setup": _str_keys(symbol.by_setup),
                "by_confidence": _str_keys(symbol.by_confidence),
                "by_score": _str_keys(symbol.by_score),
            }
        )
    return {
        "window_hours": health.window_hours,
        "total": sum(symbol.window_count for symbol in health.symbols),
        "by_setup": _str_keys(by_setup),
        "by_confidence": _str_keys(by_confidence),
        "by_score": _str_keys(by_score),
        "symbols": symbols,
        "counts": [
            {
                "symbol": count.symbol,
                "granularity": count.granularity,
                "start": iso_ms(count.start_ms),
                "setup": count.setup,
                "confidence": count.confidence,
                "score": count.score,
                "count": count.count,
            }
            for count in health.counts
        ],
    }


def _performance_metrics(state: MonitorState) -> list[dict[str, Any]]:
    if state.snapshot is None:
        return []
    runs = []
    for kpi in state.snapshot.performance:
        wins = None if kpi.hit_rate is None else round(kpi.hit_rate * kpi.trades)
        runs.append(
            {
                "symbol": kpi.symbol,
                "setup": kpi.setup,
                "run_id": kpi.run_id,
                "created_at": iso_ms(kpi.created_at_ms),
                "trades": kpi.trades,
                "wins": wins,
                "losses": None if wins is None else kpi.trades - wins,
                "hit_rate": _finite(kpi.hit_rate),
                "expectancy": _finite(kpi.expectancy),
                "max_drawdown": _finite(kpi.max_drawdown),
            }
        )
    return runs


def _worker_metrics(state: MonitorState) -> dict[str, Any]:
    tick = state.worker
    last = None if tick is None else tick.last_ms
    return {
        "last_tick_at": iso_ms(last),
        "age_seconds": _finite(_seconds_between(state.now_ms, last)),
        "outcome": None if tick is None else tick.outcome,
        "duration_seconds": None if tick is None else _finite(tick.duration_seconds),
        "interval_seconds": (
            tick.interval_seconds if tick is not None and tick.interval_seconds else None
        )
        or state.settings.worker_interval_seconds,
    }


def _snapshot_metrics(state: MonitorState) -> dict[str, Any]:
    return {
        "generated_at": iso_ms(state.snapshot_generated_ms),
        "age_seconds": _finite(state.snapshot_age_seconds),
        "window_hours": None if state.snapshot is None else state.snapshot.window_hours,
    }


def metrics_document(settings: Settings, *, now_ms: int) -> dict[str, Any]:
    """``/api/metrics``: ingestion (freshness, latency, cadence, gaps per series), signal
    counts, the latest backtest runs' performance, alerts and the worker, judged at ``now_ms``."""
    state = monitor_state(settings, now_ms=now_ms)
    series = () if state.snapshot is None else state.snapshot.series
    series = tuple(sorted(series, key=_worst_first))
    return {
        "generated_at": iso_ms(now_ms),
        "status": worst(series.status for series in series) if series else "unknown",
        "snapshot": _snapshot_metrics(state),
        "ingestion": {
            "counts": _status_counts(series.status for series in series),
            "series": [_series_metrics(item) for item in series],
        },
        "signals": _signal_metrics(state),
        "performance": {"runs": _performance_metrics(state)},
        "alerts": {
            "firing": len(state.firing),
            "pending": len(state.pending),
            "items": [
                _alert_item(alert)
                for alert in sorted(state.alerts, key=lambda a: (a.state, a.active_since_ms))
            ],
        },
        "worker": _worker_metrics(state),
    }


def _worst_first(series: SeriesStatus) -> tuple[int, float, str, str, str]:
    age = series.freshness.age_seconds
    return (
        _RANK[series.status],
        -(age if age is not None and math.isfinite(age) else math.inf),
        series.dataset,
        series.param or "",
        series.symbol,
    )


def freshness_document(
    settings: Settings,
    *,
    now_ms: int,
    symbols: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``/api/freshness``: the age of the newest event per dataset × symbol, worst first
    (status, then oldest), optionally filtered."""
    state = monitor_state(settings, now_ms=now_ms)
    series = () if state.snapshot is None else state.snapshot.series
    chosen = [
        item
        for item in series
        if (not symbols or item.symbol in symbols)
        and (not datasets or item.dataset in datasets)
        and (not statuses or item.freshness.status in statuses)
    ]
    chosen.sort(key=_freshness_order)
    items = []
    counts = _status_counts(item.freshness.status for item in chosen)
    for item in chosen:
        freshness = item.freshness
        items.append(
            {
                "dataset": item.dataset,
                "param": item.param,
                "symbol": item.symbol,
                "status": freshness.status,
                "last_event_at": iso_ms(freshness.last_event_close_ms),
                "last_event_ms": freshness.last_event_close_ms,
                "age_seconds": _finite(freshness.age_seconds),
                "warn_seconds": freshness.warn_seconds,
                "error_seconds": freshness.error_seconds,
            }
        )
    return {
        "generated_at": iso_ms(now_ms),
        "snapshot_generated_at": iso_ms(state.snapshot_generated_ms),
        "count": len(items),
        "counts": counts,
        "items": items,
    }


def _freshness_order(series: SeriesStatus) -> tuple[int, float, str, str, str]:
    """Worst status first, then the largest age relative to the warn age (lag ÷ what is
    allowed: a funding row 6 h old is fresher than a candle 2 min old)."""
    freshness = series.freshness
    age = freshness.age_seconds
    ratio = math.inf if age is None or not math.isfinite(age) else age / freshness.warn_seconds
    return (_RANK[freshness.status], -ratio, series.dataset, series.param or "", series.symbol)


# ---- /api/signals and /api/backtests: small cached lake reads -------------------------------


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _signals_frame(settings: Settings, timeframe: str) -> pl.DataFrame:
    from ingmon.signals.store import read_signals  # noqa: PLC0415 - polars only when asked

    return _LAKE.get(
        ("signals", settings.lake_dir, timeframe),
        lambda: read_signals(Lake(settings.lake_dir), timeframe=timeframe),
    )


_AUDIT_JSON = ("components", "inputs", "thresholds", "watermarks", "notes")
_AUDIT_FIELDS = (
    "score_id",
    "rules_version",
    "config_hash",
    "code_version",
    "score",
    "trend_points",
    "flow_points",
    "session_points",
    "confidence",
    "data_quality",
)


def _audit_records(
    settings: Settings, *, timeframe: str, rows: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The audit record of each row's score (``score_id``), read for the page's bars only."""
    import polars as pl  # noqa: PLC0415

    from ingmon.signals.store import read_scores  # noqa: PLC0415

    wanted = {row["score_id"] for row in rows if row.get("score_id")}
    if not wanted:
        return {}
    frame = read_scores(
        Lake(settings.lake_dir),
        symbols=sorted({row["symbol"] for row in rows}),
        timeframe=timeframe,
        start_ms=min(row["bar_open_ms"] for row in rows),
        end_ms=max(row["bar_open_ms"] for row in rows) + 1,
    )
    frame = frame.filter(pl.col("score_id").is_in(sorted(wanted))).with_columns(
        pl.col("scored_at").dt.epoch("ms").alias("scored_at_ms")
    )
    records = {}
    for row in frame.to_dicts():
        record = {name: row[name] for name in _AUDIT_FIELDS}
        record.update({name: _json_or_none(row[name]) for name in _AUDIT_JSON})
        record["scored_at"] = iso_ms(row["scored_at_ms"])
        records[row["score_id"]] = record
    return records


def signals_page(
    settings: Settings,
    *,
    timeframe: str = "15m",
    symbols: Sequence[str] | None = None,
    setups: Sequence[str] | None = None,
    min_score: int | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int = 100,
    offset: int = 0,
    audit: bool = False,
) -> tuple[int, list[dict[str, Any]]]:
    """The total of matching signals and one page of them, newest bar first."""
    import polars as pl  # noqa: PLC0415

    frame = _signals_frame(settings, timeframe)
    opened = pl.col("bar_open_time").dt.epoch("ms")
    if symbols:
        frame = frame.filter(pl.col("symbol").is_in(list(symbols)))
    if setups:
        frame = frame.filter(pl.col("setup").is_in(list(setups)))
    if min_score is not None:
        frame = frame.filter(pl.col("score") >= min_score)
    if since_ms is not None:
        frame = frame.filter(opened >= since_ms)
    if until_ms is not None:
        frame = frame.filter(opened < until_ms)
    total = frame.height
    page = (
        frame.sort(
            ["bar_open_time", "symbol", "setup", "signal_id"],
            descending=[True, False, False, False],
        )
        .slice(offset, limit)
        .with_columns(
            opened.alias("bar_open_ms"),
            pl.col("bar_close_time").dt.epoch("ms").alias("bar_close_ms"),
        )
    )
    rows = page.to_dicts()
    records = _audit_records(settings, timeframe=timeframe, rows=rows) if audit else {}
    items = []
    for row in rows:
        item = {
            "signal_id": row["signal_id"],
            "symbol": row["symbol"],
            "timeframe": row.get("timeframe", timeframe),
            "setup": row["setup"],
            "direction": row["direction"],
            "bar_open_time": iso_ms(row["bar_open_ms"]),
            "bar_close_time": iso_ms(row["bar_close_ms"]),
            "close": _finite(row["close"]),
            "stop_price": _finite(row["stop_price"]),
            "target_price": _finite(row["target_price"]),
            "level_kind": row["level_kind"],
            "level_price": _finite(row["level_price"]),
            "levels": _json_or_none(row["levels"]),
            "reasons": _json_or_none(row["reasons"]),
            "detector_version": row["detector_version"],
            "score": row["score"],
            "confidence": row["confidence"],
            "data_quality": row["data_quality"],
            "rules_version": row["rules_version"],
            "score_id": row["score_id"],
        }
        if audit:
            item["audit"] = records.get(row["score_id"]) if row["score_id"] else None
        items.append(item)
    return total, items


_RUN_COLUMNS = (
    "run_id",
    "created_at",
    "source",
    "timeframe",
    "data_start",
    "data_end",
    "data_hash",
    "config_hash",
    "code_version",
    "trades",
    "net_return",
    "max_drawdown",
)


def _time_iso(value: Any) -> str | None:
    return None if value is None else iso_ms(to_ms(value))


def _run_item(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "symbol": row["symbol"],
        "created_at": _time_iso(row["created_at"]),
        "source": row["source"],
        "timeframe": row["timeframe"],
        "data_start": _time_iso(row["data_start"]),
        "data_end": _time_iso(row["data_end"]),
        "trades": row["trades"],
        "net_return": _finite(row["net_return"]),
        "max_drawdown": _finite(row["max_drawdown"]),
        "config_hash": row["config_hash"],
        "data_hash": row["data_hash"],
        "code_version": row["code_version"],
        "url": f"/api/backtests/{row['run_id']}",
    }


def _saved_runs(settings: Settings) -> list[dict[str, Any]]:
    """Every saved run's headline (no documents), newest first."""

    def load() -> list[dict[str, Any]]:
        table = Lake(settings.lake_dir).read(BACKTEST_RUNS, columns=_RUN_COLUMNS)
        rows = table.to_pylist()
        rows.sort(key=lambda row: row["run_id"])
        rows.sort(key=lambda row: to_ms(row["created_at"]), reverse=True)
        return [_run_item(row) for row in rows]

    return _LAKE.get(("backtest_runs", settings.lake_dir), load)


def backtests_page(
    settings: Settings, *, symbols: Sequence[str] | None = None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """The total of saved runs (of ``symbols``) and one page of them, newest first."""
    runs = [run for run in _saved_runs(settings) if not symbols or run["symbol"] in symbols]
    return len(runs), runs[offset : offset + limit]


def backtest_document(
    settings: Settings, run_id: str, *, trades: bool = False
) -> dict[str, Any] | None:
    """One saved run: its headline, config and export document (and its trades); None when
    no run has that id."""
    run = next((item for item in _saved_runs(settings) if item["run_id"] == run_id), None)
    if run is None:
        return None
    lake = Lake(settings.lake_dir)
    table = lake.read(BACKTEST_RUNS, symbols=run["symbol"], columns=("run_id", "config", "summary"))
    row = next((item for item in table.to_pylist() if item["run_id"] == run_id), None)
    if row is None:  # deleted since the listing was cached
        return None
    document: dict[str, Any] = {
        "run": run,
        "config": _json_or_none(row["config"]),
        "document": _json_or_none(row["summary"]),
    }
    if trades:
        rows = lake.read(BACKTEST_TRADES, symbols=run["symbol"]).to_pylist()
        document["trades"] = [
            {
                "trade_id": trade["trade_id"],
                "signal_id": trade["signal_id"],
                "setup": trade["setup"],
                "direction": trade["direction"],
                "score": trade["score"],
                "confidence": trade["confidence"],
                "entry_time": _time_iso(trade["entry_time"]),
                "entry_price": _finite(trade["entry_price"]),
                "exit_time": _time_iso(trade["exit_time"]),
                "exit_price": _finite(trade["exit_price"]),
                "exit_reason": trade["exit_reason"],
                "qty": _finite(trade["qty"]),
                "net_return": _finite(trade["net_return"]),
                "pnl": _finite(trade["pnl"]),
            }
            for trade in sorted(rows, key=lambda t: (to_ms(t["entry_time"]), t["trade_id"]))
            if trade["run_id"] == run_id
        ]
    return document


# ---- query parameters --------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One query parameter: how it is parsed (ValueError → 400 naming it) and documented."""

    name: str
    description: str
    schema: Mapping[str, Any]
    example: str
    parse: Callable[[str], Any]
    default: Any = None

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "description": self.description,
            "schema": dict(self.schema),
            "example": self.example,
        }


def _integer(text: str, *, minimum: int, maximum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if not minimum <= value <= maximum:
        raise ValueError(f"{value} is out of range {minimum}..{maximum}")
    return value


def _integer_param(
    name: str, description: str, *, minimum: int, maximum: int, default: int | None, example: str
) -> Param:
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum, "maximum": maximum}
    if default is not None:
        schema["default"] = default
    return Param(
        name,
        description,
        schema,
        example,
        partial(_integer, minimum=minimum, maximum=maximum),
        default,
    )


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"{text!r} is not a boolean: expected true or false")


def _boolean_param(name: str, description: str) -> Param:
    return Param(
        name, description, {"type": "boolean", "default": False}, "true", _boolean, default=False
    )


_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _time(text: str) -> int:
    value = parse_instant_ms(text)
    if not 0 <= value <= _LAST_MS:
        raise ValueError(f"{text!r} is outside 1970-01-01 .. 9999-12-31")
    return value


def _time_param(name: str, description: str, example: str) -> Param:
    schema = {
        "type": "string",
        "description": "epoch milliseconds or ISO-8601 (2026-10-01, 2026-10-01T12:00:00Z)",
    }
    return Param(name, description, schema, example, _time)


def _choices(text: str, *, choices: Sequence[str], what: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [part for part in chosen if part not in choices]
    if unknown or not chosen:
        raise ValueError(
            f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)}: expected "
            f"{', '.join(choices)} (comma-separated)"
        )
    return chosen


def _choice_param(
    name: str, description: str, choices: Sequence[str], *, example: str, what: str
) -> Param:
    schema = {
        "type": "string",
        "description": f"one or more (comma-separated) of: {', '.join(choices)}",
    }
    return Param(name, description, schema, example, partial(_choices, choices=choices, what=what))


def _one_choice(text: str, *, choices: Sequence[str], what: str) -> str:
    if text not in choices:
        raise ValueError(f"unknown {what} {text!r}: expected one of {', '.join(choices)}")
    return text


def _symbols(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip().upper() for part in text.split(",") if part.strip()))
    for symbol in chosen:
        if not _PERPETUAL.match(symbol):
            raise ValueError(f"invalid symbol {symbol!r}: expected a perpetual like BTCUSDT")
    if not chosen:
        raise ValueError("empty symbol list")
    return chosen


_SYMBOL = Param(
    "symbol",
    "Only these symbols (comma-separated USDⓈ-M perpetuals, any case).",
    {"type": "string", "pattern": "^[A-Za-z0-9,]+$"},
    "BTCUSDT",
    _symbols,
)
_LIMIT_SIGNALS = _integer_param(
    "limit", "Page size.", minimum=1, maximum=1000, default=100, example="50"
)
_LIMIT_RUNS = _integer_param(
    "limit", "Page size.", minimum=1, maximum=200, default=20, example="10"
)
_OFFSET = _integer_param(
    "offset",
    "How many matching items to skip (the `next_offset` of the previous page).",
    minimum=0,
    maximum=10**9,
    default=0,
    example="0",
)


class ApiError(HTTPError):
    """An error answered as ``{"error": {...}}`` with its status, message and parameter."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        parameter: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.message = message
        self.parameter = parameter
        self.headers = dict(headers or {})


# ---- handlers ----------------------------------------------------------------------------------

_settings_lock = threading.Lock()
_settings: Settings | None = None
_registry: CollectorRegistry | None = None
# Lake reads leave the IOLoop free for /liveness and scrapes (DuckDB releases the GIL).
_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingmon-api")


def _server_settings() -> Settings:
    """The server's settings, read once from the environment ``ingmon serve`` prepared."""
    global _settings  # noqa: PLW0603 - one per process, like the registry
    with _settings_lock:
        if _settings is None:
            _settings = load_settings()
        return _settings


def _prometheus_registry() -> CollectorRegistry:
    global _registry  # noqa: PLW0603
    settings = _server_settings()
    with _settings_lock:
        if _registry is None:
            _registry = build_registry(settings)
        return _registry


class _Handler(RequestHandler):
    """JSON answers, validated query parameters, the server's login for ``/api/*``."""

    PARAMETERS: ClassVar[tuple[Param, ...]] = ()
    requires_login: ClassVar[bool] = True

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", _JSON)
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def prepare(self) -> None:
        if self.requires_login:
            await self._require_login()

    async def _require_login(self) -> None:
        """Ask the server's auth provider (Panel's basic auth or OAuth) for the user, as
        Panel's own ``AuthenticatedStaticFileHandler`` does; no provider, no login."""
        provider = getattr(self.application, "auth_provider", None)
        get_user_async = getattr(provider, "get_user_async", None)
        get_user = getattr(provider, "get_user", None)
        if get_user_async is not None:
            user = await get_user_async(self)
        elif get_user is not None:
            user = get_user(self)
        else:
            return
        if user:
            self.current_user = user
            return
        login_url = self._login_url(provider)
        if "text/html" in self.request.headers.get("Accept", ""):
            self.redirect(url_concat(login_url, {"next": self.request.uri}))
            return
        raise ApiError(
            HTTPStatus.UNAUTHORIZED,
            f"authentication required: log in with POST {login_url} (a session cookie), "
            "then send the cookie with each request",
            headers={"WWW-Authenticate": f'Cookie realm="ingmon", login="{login_url}"'},
        )

    def _login_url(self, provider: Any) -> str:
        get_login_url = getattr(provider, "get_login_url", None)
        if get_login_url is not None:
            return str(get_login_url(self))
        return str(getattr(provider, "login_url", None) or "/login")

    def query(self) -> dict[str, Any]:
        """The validated query parameters (defaults filled in); ApiError 400 naming the first
        unknown, repeated or invalid one."""
        known = {param.name: param for param in self.PARAMETERS}
        values = {param.name: param.default for param in self.PARAMETERS}
        for name, raw in self.request.query_arguments.items():
            param = known.get(name)
            if param is None:
                accepted = ", ".join(sorted(known)) or "none"
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    f"unknown parameter {name!r} (accepted: {accepted})",
                    parameter=name,
                )
            if len(raw) > 1:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, f"{name} is given more than once", parameter=name
                )
            try:
                text = raw[0].decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, f"{name} is not UTF-8", parameter=name
                ) from None
            if not text.strip():
                continue  # ?symbol= means "no filter", as in an empty form field
            try:
                values[name] = param.parse(text)
            except ValueError as error:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"{name}: {error}", parameter=name) from None
        return values

    def send_json(self, document: Any, *, status: int = HTTPStatus.OK) -> None:
        self.send_body(orjson.dumps(document), status=status)

    def send_body(self, body: bytes, *, status: int = HTTPStatus.OK) -> None:
        self.set_status(status)
        self.finish(body)

    def page_links(self, *, total: int, limit: int, offset: int) -> dict[str, Any]:
        """The pagination fields of a page: its place and the link to the next one."""
        next_offset = offset + limit if offset + limit < total else None
        next_link = None
        if next_offset is not None:
            query = {
                name: values[-1].decode("utf-8", "replace")
                for name, values in self.request.query_arguments.items()
            }
            query["offset"] = str(next_offset)
            next_link = f"{self.request.path}?{urlencode(query)}"
        return {
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": next_offset,
            "next": next_link,
        }

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        parameter = None
        if isinstance(error, ApiError):
            message = error.message
            parameter = error.parameter
            for name, value in error.headers.items():
                self.set_header(name, value)
        elif isinstance(error, DataIntegrityError):
            status_code = HTTPStatus.SERVICE_UNAVAILABLE
            self.set_status(status_code)
            message = f"damaged storage: {error}"
        elif isinstance(error, HTTPError):
            message = error.reason or HTTPStatus(status_code).phrase
            if status_code == HTTPStatus.METHOD_NOT_ALLOWED:
                self.set_header("Allow", "GET")
                message = f"{self.request.method} is not allowed here: only GET"
        else:  # tornado logged the traceback; the client gets one line
            message = "internal error (logged on the server)"
        body: dict[str, Any] = {"status": status_code, "message": message}
        if parameter is not None:
            body["parameter"] = parameter
        self.finish(orjson.dumps({"error": body}))

    async def in_thread(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, work)


class HealthHandler(_Handler):
    def get(self) -> None:
        self.query()
        self.send_body(
            _BODIES.get(
                ("health",),
                lambda: orjson.dumps(health_document(_server_settings(), now_ms=now_ms())),
            )
        )


class MetricsHandler(_Handler):
    def get(self) -> None:
        self.query()
        self.send_body(
            _BODIES.get(
                ("metrics",),
                lambda: orjson.dumps(metrics_document(_server_settings(), now_ms=now_ms())),
            )
        )


class FreshnessHandler(_Handler):
    PARAMETERS = (
        _SYMBOL,
        _choice_param(
            "dataset",
            "Only these datasets.",
            tuple(MARKET_SERIES),
            example="candles",
            what="dataset",
        ),
        _choice_param(
            "status",
            "Only series whose freshness has one of these statuses.",
            tuple(reversed(STATUSES)),
            example="warn,error",
            what="status",
        ),
    )

    def get(self) -> None:
        query = self.query()
        filters = {name: query[name] for name in ("symbol", "dataset", "status")}
        self.send_body(
            _BODIES.get(
                ("freshness", *filters.values()),
                lambda: orjson.dumps(
                    freshness_document(
                        _server_settings(),
                        now_ms=now_ms(),
                        symbols=filters["symbol"],
                        datasets=filters["dataset"],
                        statuses=filters["status"],
                    )
                ),
            )
        )


class SignalsHandler(_Handler):
    PARAMETERS = (
        _SYMBOL,
        _choice_param("setup", "Only these setups.", SETUPS, example="absorption", what="setup"),
        _integer_param(
            "min_score",
            "Only signals scored at least this (0–7) under the current rules version.",
            minimum=0,
            maximum=7,
            default=None,
            example="4",
        ),
        _time_param("since", "Only signal bars opened at or after this time.", "2026-01-01"),
        _time_param("until", "Only signal bars opened before this time.", "2030-01-01T00:00:00Z"),
        Param(
            "timeframe",
            "The signal timeframe.",
            {"type": "string", "enum": list(SIGNAL_TIMEFRAMES), "default": "15m"},
            "15m",
            partial(_one_choice, choices=SIGNAL_TIMEFRAMES, what="timeframe"),
            default="15m",
        ),
        _LIMIT_SIGNALS,
        _OFFSET,
        _boolean_param("audit", "Include each signal's audit record (the 0–7 rubric's detail)."),
    )

    async def get(self) -> None:
        query = self.query()
        if (
            query["since"] is not None
            and query["until"] is not None
            and query["until"] <= query["since"]
        ):
            raise ApiError(HTTPStatus.BAD_REQUEST, "until must be after since", parameter="until")
        settings = _server_settings()
        total, items = await self.in_thread(
            partial(
                signals_page,
                settings,
                timeframe=query["timeframe"],
                symbols=query["symbol"],
                setups=query["setup"],
                min_score=query["min_score"],
                since_ms=query["since"],
                until_ms=query["until"],
                limit=query["limit"],
                offset=query["offset"],
                audit=query["audit"],
            )
        )
        self.send_json(
            {
                "generated_at": iso_ms(now_ms()),
                "timeframe": query["timeframe"],
                **self.page_links(total=total, limit=query["limit"], offset=query["offset"]),
                "items": items,
            }
        )


class BacktestsHandler(_Handler):
    PARAMETERS = (_SYMBOL, _LIMIT_RUNS, _OFFSET)

    async def get(self) -> None:
        query = self.query()
        settings = _server_settings()
        total, items = await self.in_thread(
            partial(
                backtests_page,
                settings,
                symbols=query["symbol"],
                limit=query["limit"],
                offset=query["offset"],
            )
        )
        self.send_json(
            {
                "generated_at": iso_ms(now_ms()),
                **self.page_links(total=total, limit=query["limit"], offset=query["offset"]),
                "items": items,
            }
        )


class BacktestHandler(_Handler):
    PARAMETERS = (_boolean_param("trades", "Include the run's trades."),)

    async def get(self, run_id: str) -> None:
        query = self.query()
        settings = _server_settings()
        document = await self.in_thread(
            partial(backtest_document, settings, run_id, trades=query["trades"])
        )
        if document is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                f"no saved backtest run {run_id!r} (list them at /api/backtests)",
            )
        self.send_json(document)


class OpenAPIHandler(_Handler):
    def get(self) -> None:
        self.query()
        self.send_json(openapi_document())


class PrometheusHandler(_Handler):
    """``/metrics/prometheus``: open unless ``INGMON_METRICS_TOKEN`` is set, then it needs
    ``Authorization: Bearer <token>``; the server's login does not apply (Prometheus has no
    browser session)."""

    requires_login = False

    def get(self) -> None:
        self.query()
        token = _server_settings().metrics_token
        if token is not None:
            given = self.request.headers.get("Authorization", "").encode("utf-8", "replace")
            expected = f"Bearer {token.get_secret_value()}".encode()
            if not hmac.compare_digest(given, expected):
                raise ApiError(
                    HTTPStatus.UNAUTHORIZED,
                    "a bearer token is required: Authorization: Bearer <INGMON_METRICS_TOKEN>",
                    headers={"WWW-Authenticate": 'Bearer realm="ingmon metrics"'},
                )
        body, content_type = exposition(
            _prometheus_registry(), self.request.headers.get("Accept", "")
        )
        self.set_header("Content-Type", content_type)
        self.finish(body)


class NotFoundHandler(_Handler):
    """Any other ``/api/…`` path: a JSON 404 (after the login check, so that an anonymous
    client learns nothing about which paths exist)."""

    async def prepare(self) -> None:
        await super().prepare()
        if not self._finished:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                f"no such endpoint {self.request.path!r}: see /api/openapi.json",
            )


# ---- routes and their OpenAPI document ------------------------------------------------------


@dataclass(frozen=True)
class _Endpoint:
    template: str  # OpenAPI path template: /api/backtests/{run_id}
    handler: type[_Handler]
    summary: str
    description: str
    schema: str  # the response schema in components/schemas, or the media type for non-JSON
    errors: tuple[int, ...] = (400, 401)
    path_parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def pattern(self) -> str:
        return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$"


_ENDPOINTS = (
    _Endpoint(
        "/api/health",
        HealthHandler,
        "Status of each component",
        "One status per component (ingestion = the worst series, signals, performance, "
        "alerts, worker = the age of its last tick against its interval, snapshot = the age of "
        "state/health.json), and the worst of them. `unknown` with a hint when there is no "
        "state yet. Always 200: the status is in the body.",
        "Health",
    ),
    _Endpoint(
        "/api/metrics",
        MetricsHandler,
        "The aggregated monitoring document",
        "Ingestion per dataset × symbol (freshness, latency, cadence, gaps, duplicates), "
        "signal counts by setup, confidence and score over the health window, the latest "
        "backtest run per symbol (trades, wins/losses, hit rate, expectancy, max drawdown), "
        "alerts and the worker — statuses judged at the time of the request.",
        "Metrics",
    ),
    _Endpoint(
        "/api/freshness",
        FreshnessHandler,
        "Age of the newest event per dataset × symbol",
        "Worst first: by status (error, warn, unknown, ok), then oldest first.",
        "Freshness",
    ),
    _Endpoint(
        "/api/signals",
        SignalsHandler,
        "Stored signals with their scores, newest first",
        "Signals of one timeframe with their score under the current rules version; "
        "`audit=true` adds each score's audit record. Paginated: follow `next`.",
        "SignalPage",
    ),
    _Endpoint(
        "/api/backtests",
        BacktestsHandler,
        "Saved backtest runs, newest first",
        "The headline of each saved run. Paginated: follow `next`.",
        "BacktestPage",
    ),
    _Endpoint(
        "/api/backtests/{run_id}",
        BacktestHandler,
        "One saved backtest run",
        "The run's headline, its engine config and its export document (metrics, "
        "breakdowns, windows); `trades=true` adds its trades.",
        "BacktestDetail",
        errors=(400, 401, 404),
        path_parameters={"run_id": "The run's id (`run_id` of /api/backtests)."},
    ),
    _Endpoint(
        "/api/openapi.json",
        OpenAPIHandler,
        "This document",
        "The OpenAPI 3.1 description of every route.",
        "OpenAPI",
    ),
    _Endpoint(
        "/metrics/prometheus",
        PrometheusHandler,
        "Prometheus exposition",
        "The exporter's metrics, computed at scrape time from the state files. Content "
        "negotiation by `Accept` (text format 0.0.4 or OpenMetrics). Open unless "
        "INGMON_METRICS_TOKEN is set; then `Authorization: Bearer <token>` is required. The "
        "dashboard's login does not apply.",
        "text/plain",
    ),
)

ROUTES: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [
    (endpoint.pattern, endpoint.handler, {}) for endpoint in _ENDPOINTS
] + [(r"/api/.*", NotFoundHandler, {})]


# JSON Schema building blocks (OpenAPI 3.1 = JSON Schema 2020-12).
def _obj(properties: Mapping[str, Any], *, optional: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def _maybe(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": dict(schema)}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TIME = _maybe("string", format="date-time")
_STATUS = {"type": "string", "enum": ["ok", "warn", "error", "unknown"]}
_COUNTS = _obj(dict.fromkeys(STATUSES, _INT))
_TALLY = {"type": "object", "additionalProperties": _INT}
_FREE = {"type": "object"}
_PAGE = {
    "total": _INT,
    "limit": _INT,
    "offset": _INT,
    "next_offset": _maybe("integer"),
    "next": _maybe("string"),
}


def _schemas() -> dict[str, Any]:
    component = _obj(
        {
            "status": _STATUS,
            "summary": _STR,
            "hint": _maybe("string"),
            "as_of": _MAYBE_TIME,
            "age_seconds": _maybe("number"),
        }
    )
    series = _obj(
        {
            "dataset": _STR,
            "param": _maybe("string"),
            "symbol": _STR,
            "status": _STATUS,
            "rows": _INT,
            "first_event_at": _MAYBE_TIME,
            "last_event_at": _MAYBE_TIME,
            "last_batch_written_at": _MAYBE_TIME,
            "freshness": _obj(
                {
                    "status": _STATUS,
                    "last_event_close_at": _MAYBE_TIME,
                    "age_seconds": _maybe("number"),
                    "warn_seconds": _NUM,
                    "error_seconds": _NUM,
                }
            ),
            "latency": _obj(
                {
                    "status": _STATUS,
                    "batches": _INT,
                    "backfill_batches": _INT,
                    "last_seconds": _maybe("number"),
                    "p50_seconds": _maybe("number"),
                    "p95_seconds": _maybe("number"),
                    "warn_seconds": _NUM,
                    "error_seconds": _NUM,
                }
            ),
            "cadence": _obj(
                {
                    "status": _STATUS,
                    "expected_seconds": _NUM,
                    "batches": _INT,
                    "last_interval_seconds": _maybe("number"),
                    "median_interval_seconds": _maybe("number"),
                    "max_interval_seconds": _maybe("number"),
                    "deviation_seconds": _maybe("number"),
                    "deviation_ratio": _maybe("number"),
                }
            ),
            "gaps": _INT,
            "missing": _INT,
            "exchange_gaps": _INT,
            "duplicates": _INT,
            "corrupt_files": _list(_STR),
            "problems": _list(_FREE),
        }
    )
    symbol_signals = _obj(
        {
            "symbol": _STR,
            "window_count": _INT,
            "last_signal_at": _MAYBE_TIME,
            "since_last_signal_seconds": _maybe("number"),
            "by_setup": _TALLY,
            "by_confidence": _TALLY,
            "by_score": _TALLY,
        }
    )
    signal_count = _obj(
        {
            "symbol": _STR,
            "granularity": {"type": "string", "enum": ["hour", "day"]},
            "start": _TIME,
            "setup": _STR,
            "confidence": _STR,
            "score": _INT,
            "count": _INT,
        }
    )
    kpi = _obj(
        {
            "symbol": _STR,
            "setup": {"type": "string", "description": "`all` for the whole run"},
            "run_id": _STR,
            "created_at": _TIME,
            "trades": _INT,
            "wins": _maybe("integer"),
            "losses": _maybe("integer", description="trades that did not win (break-even too)"),
            "hit_rate": _maybe("number", description="wins / trades"),
            "expectancy": _maybe("number", description="mean net return per trade (fraction)"),
            "max_drawdown": _maybe("number", description="fraction of equity, whole run only"),
        }
    )
    alert = _obj(
        {
            "fingerprint": _STR,
            "alertname": _maybe("string"),
            "severity": _maybe("string"),
            "state": {"type": "string", "enum": ["pending", "firing", "resolved"]},
            "labels": {"type": "object", "additionalProperties": _STR},
            "annotations": {"type": "object", "additionalProperties": _STR},
            "active_since": _TIME,
            "fired_at": _MAYBE_TIME,
            "value": _maybe("number"),
        }
    )
    audit = _obj(
        {
            "score_id": _STR,
            "rules_version": _STR,
            "config_hash": _STR,
            "code_version": _STR,
            "score": {"type": "integer", "minimum": 0, "maximum": 7},
            "trend_points": _INT,
            "flow_points": _INT,
            "session_points": _INT,
            "confidence": _STR,
            "data_quality": _STR,
            **{name: {"description": "JSON, as stored"} for name in _AUDIT_JSON},
            "scored_at": _TIME,
        }
    )
    signal = _obj(
        {
            "signal_id": _STR,
            "symbol": _STR,
            "timeframe": _STR,
            "setup": _STR,
            "direction": {"type": "string", "enum": ["long", "short"]},
            "bar_open_time": _TIME,
            "bar_close_time": _TIME,
            "close": _maybe("number"),
            "stop_price": _maybe("number"),
            "target_price": _maybe("number"),
            "level_kind": _maybe("string"),
            "level_price": _maybe("number"),
            "levels": {"description": "JSON: every level the setup looked at"},
            "reasons": {"description": "JSON: the measured values that made the setup fire"},
            "detector_version": _STR,
            "score": _maybe("integer", minimum=0, maximum=7),
            "confidence": _maybe("string"),
            "data_quality": _maybe("string"),
            "rules_version": _maybe("string"),
            "score_id": _maybe("string"),
            "audit": {"anyOf": [_ref("Audit"), {"type": "null"}]},
        },
        optional=("audit",),
    )
    run = _obj(
        {
            "run_id": _STR,
            "symbol": _STR,
            "created_at": _TIME,
            "source": _STR,
            "timeframe": _maybe("string"),
            "data_start": _TIME,
            "data_end": _TIME,
            "trades": _INT,
            "net_return": _maybe("number"),
            "max_drawdown": _maybe("number"),
            "config_hash": _STR,
            "data_hash": _STR,
            "code_version": _STR,
            "url": _STR,
        }
    )
    trade = _obj(
        {
            "trade_id": _STR,
            "signal_id": _maybe("string"),
            "setup": _maybe("string"),
            "direction": _STR,
            "score": _maybe("integer"),
            "confidence": _maybe("string"),
            "entry_time": _TIME,
            "entry_price": _maybe("number"),
            "exit_time": _TIME,
            "exit_price": _maybe("number"),
            "exit_reason": _STR,
            "qty": _maybe("number"),
            "net_return": _maybe("number"),
            "pnl": _maybe("number"),
        }
    )
    return {
        "Error": _obj(
            {
                "error": _obj(
                    {
                        "status": _INT,
                        "message": _STR,
                        "parameter": {"type": "string", "description": "the parameter at fault"},
                    },
                    optional=("parameter",),
                )
            }
        ),
        "Component": component,
        "Health": _obj(
            {
                "status": _STATUS,
                "generated_at": _TIME,
                "components": _obj({name: _ref("Component") for name in COMPONENTS}),
            }
        ),
        "Series": series,
        "Alert": alert,
        "PerformanceKPI": kpi,
        "Metrics": _obj(
            {
                "generated_at": _TIME,
                "status": _STATUS,
                "snapshot": _obj(
                    {
                        "generated_at": _MAYBE_TIME,
                        "age_seconds": _maybe("number"),
                        "window_hours": _maybe("number"),
                    }
                ),
                "ingestion": _obj({"counts": _COUNTS, "series": _list(_ref("Series"))}),
                "signals": _obj(
                    {
                        "window_hours": _NUM,
                        "total": _INT,
                        "by_setup": _TALLY,
                        "by_confidence": _TALLY,
                        "by_score": _TALLY,
                        "symbols": _list(symbol_signals),
                        "counts": _list(signal_count),
                    }
                ),
                "performance": _obj({"runs": _list(_ref("PerformanceKPI"))}),
                "alerts": _obj({"firing": _INT, "pending": _INT, "items": _list(_ref("Alert"))}),
                "worker": _obj(
                    {
                        "last_tick_at": _MAYBE_TIME,
                        "age_seconds": _maybe("number"),
                        "outcome": _maybe("string"),
                        "duration_seconds": _maybe("number"),
                        "interval_seconds": _NUM,
                    }
                ),
            }
        ),
        "Freshness": _obj(
            {
                "generated_at": _TIME,
                "snapshot_generated_at": _MAYBE_TIME,
                "count": _INT,
                "counts": _COUNTS,
                "items": _list(
                    _obj(
                        {
                            "dataset": _STR,
                            "param": _maybe("string"),
                            "symbol": _STR,
                            "status": _STATUS,
                            "last_event_at": _MAYBE_TIME,
                            "last_event_ms": _maybe("integer"),
                            "age_seconds": _maybe("number"),
                            "warn_seconds": _NUM,
                            "error_seconds": _NUM,
                        }
                    )
                ),
            }
        ),
        "Audit": audit,
        "Signal": signal,
        "SignalPage": _obj(
            {
                "generated_at": _TIME,
                "timeframe": _STR,
                **_PAGE,
                "items": _list(_ref("Signal")),
            }
        ),
        "BacktestRun": run,
        "BacktestPage": _obj({"generated_at": _TIME, **_PAGE, "items": _list(_ref("BacktestRun"))}),
        "Trade": trade,
        "BacktestDetail": _obj(
            {
                "run": _ref("BacktestRun"),
                "config": {"description": "JSON: the full engine config"},
                "document": {"description": "JSON: the export document (ingmon.backtest/v1)"},
                "trades": _list(_ref("Trade")),
            },
            optional=("trades",),
        ),
        "OpenAPI": {"type": "object", "required": ["openapi", "paths"]},
    }


_ERROR_TEXT = {
    400: "A bad or unknown query parameter (named in error.parameter).",
    401: "Not logged in (the server runs with authentication), or a wrong bearer token.",
    404: "No such item.",
}


def _operation(endpoint: _Endpoint) -> dict[str, Any]:
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in endpoint.path_parameters.items()
    ]
    parameters += [param.openapi() for param in endpoint.handler.PARAMETERS]
    if endpoint.schema.startswith("text/"):
        ok = {
            "description": "The exposition",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}},
            },
        }
    else:
        ok = {
            "description": endpoint.summary,
            "content": {"application/json": {"schema": _ref(endpoint.schema)}},
        }
    errors = {
        str(status): {
            "description": _ERROR_TEXT[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for status in endpoint.errors
    }
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "description": endpoint.description,
        "operationId": endpoint.handler.__name__.removesuffix("Handler").lower(),
        "parameters": parameters,
        "responses": {"200": ok, **errors},
    }
    if endpoint.handler.requires_login:
        operation["security"] = [{}, {"session": []}]
    else:
        operation["security"] = [{}, {"bearer": []}]
    return operation


_openapi: dict[str, Any] | None = None


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in ``ROUTES`` (built once)."""
    global _openapi  # noqa: PLW0603
    if _openapi is None:
        _openapi = {
            "openapi": "3.1.0",
            "info": {
                "title": "ingmon monitoring API",
                "version": __version__,
                "description": "Health, freshness, signals and backtests of an ingmon data "
                "root, read from the worker's state and the lake. Times are ISO-8601 UTC; "
                "durations are seconds; ratios are fractions.",
            },
            "paths": {endpoint.template: {"get": _operation(endpoint)} for endpoint in _ENDPOINTS},
            "components": {
                "schemas": _schemas(),
                "securitySchemes": {
                    "session": {
                        "type": "apiKey",
                        "in": "cookie",
                        "name": "user",
                        "description": "The session cookie of POST /login (only when the "
                        "server runs with --basic-auth or OAuth).",
                    },
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "INGMON_METRICS_TOKEN (only when it is set).",
                    },
                },
            },
        }
    return _openapi

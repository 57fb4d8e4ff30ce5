"""The state documents of ``/api/health``, ``/api/metrics`` and ``/api/freshness``, as plain data.

Each builder is a function of the settings and ``now_ms`` with no web framework behind it: the
dashboard shows exactly what the API answers. Ages and limits are judged with the worker's own
settings where it recorded them (its interval in ``worker.json``, the snapshot's
``settings_used``), else the server's. A damaged state file is said to be damaged, and the
other sources keep answering.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ingmon.api.state import STATE_FILES, MonitorState, monitor_state, seconds_between
from ingmon.config import Settings
from ingmon.monitor.alerts import Alert
from ingmon.monitor.health import STATUSES, SeriesStatus, Status, worst
from ingmon.times import iso_ms

__all__ = [
    "COMPONENTS",
    "STATUSES",
    "finite",
    "format_duration",
    "freshness_document",
    "health_document",
    "metrics_document",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

COMPONENTS = ("ingestion", "signals", "performance", "alerts", "worker", "snapshot")
_RANK = {status: rank for rank, status in enumerate(STATUSES)}
# The state file is stale once it is this many worker intervals old (warn), then (error).
_STALE_INTERVALS = (2.0, 5.0)
_HINT_NO_STATE = "run `ingmon worker` (or `ingmon health` once) to write state/health.json"
_SEVERE = frozenset({"critical", "error", "page"})
_HINT_DAMAGED = {
    "health": "the worker rewrites it each tick: is `ingmon worker` running? (or run "
    "`ingmon health` once)",
    "alerts": "the worker's next alert evaluation moves it aside and rebuilds the firing "
    "alerts from the outbox: is `ingmon worker` running?",
    "worker": "the worker rewrites it each tick: is `ingmon worker` running?",
}
# What rendering a state document may raise on values the load-time checks do not know of.
_RENDER_ERRORS = (ValueError, KeyError, TypeError, AttributeError, ArithmeticError)


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


def finite(value: float | None) -> float | None:
    """``value`` as a JSON number: None for a missing, NaN or infinite one."""
    return None if value is None or not math.isfinite(value) else float(value)


def _status_counts(statuses: Iterable[Status]) -> dict[str, int]:
    counts = Counter(statuses)
    return {status: counts.get(status, 0) for status in STATUSES}


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _series_label(series: SeriesStatus) -> str:
    return " ".join(part for part in (series.dataset, series.param, series.symbol) if part)


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
        "age_seconds": finite(age_seconds),
    }


def _age_status(age_seconds: float, interval_seconds: float) -> Status:
    warn_after, error_after = (factor * interval_seconds for factor in _STALE_INTERVALS)
    if age_seconds > error_after:
        return "error"
    if age_seconds > warn_after:
        return "warn"
    return "ok"


def _damaged_component(state: MonitorState, source: str, status: Status) -> dict[str, Any]:
    """A component whose state file is damaged: says so, names the file, and what repairs it."""
    return _component(status, state.damaged[source], hint=_HINT_DAMAGED[source])


def _no_snapshot(state: MonitorState) -> dict[str, Any]:
    """A component judged from the snapshot, when there is none (or it is damaged)."""
    if "health" in state.damaged:
        return _damaged_component(state, "health", "unknown")
    return _component("unknown", "no health snapshot yet", hint=_HINT_NO_STATE)


def _snapshot_component(state: MonitorState) -> dict[str, Any]:
    age = state.snapshot_age_seconds
    if "health" in state.damaged:
        return _damaged_component(state, "health", "error")
    if state.snapshot is None or age is None:
        return _component("unknown", "no health snapshot yet", hint=_HINT_NO_STATE)
    status = _age_status(age, state.worker_interval_seconds)
    summary = f"health snapshot written {format_duration(age)} ago"
    hint = None if status == "ok" else "the snapshot is stale: is `ingmon worker` running?"
    return _component(
        status, summary, hint=hint, as_of_ms=state.snapshot_generated_ms, age_seconds=age
    )


def _ingestion_component(state: MonitorState) -> dict[str, Any]:
    snapshot = state.snapshot
    if snapshot is None:
        return _no_snapshot(state)
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
        return _no_snapshot(state)
    health = snapshot.signals
    if not health.symbols:
        return _component(
            "unknown",
            "no signals scored yet",
            hint="score the lake: `ingmon score --symbol BTCUSDT` (the worker does it each tick)",
            as_of_ms=state.snapshot_generated_ms,
        )
    limit = state.used("alert_no_signals_seconds")
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
        return _no_snapshot(state)
    runs = [kpi for kpi in snapshot.performance if kpi.setup == "all"]
    if not runs:
        return _component(
            "unknown",
            "no saved backtest runs",
            hint="run one: `ingmon backtest --symbol BTCUSDT`",
            as_of_ms=state.snapshot_generated_ms,
        )
    limit = state.used("alert_max_drawdown_ratio")
    known = [kpi for kpi in runs if kpi.max_drawdown is not None]
    # Beyond the limit, as IngmonDrawdownBreach fires (the limit itself is fine).
    breached = [kpi for kpi in known if kpi.max_drawdown is not None and kpi.max_drawdown > limit]
    summary = f"latest run of {_plural(len(runs), 'symbol')}"
    if known:
        deepest = max(known, key=lambda kpi: kpi.max_drawdown or 0.0)
        summary += f"; deepest drawdown {100 * (deepest.max_drawdown or 0.0):.1f} %"
        summary += f" ({deepest.symbol}, limit {100 * limit:.1f} %)"
    status: Status = "warn" if breached else ("ok" if known else "unknown")
    return _component(status, summary, as_of_ms=state.snapshot_generated_ms)


def _alerts_component(state: MonitorState) -> dict[str, Any]:
    if "alerts" in state.damaged:
        return _damaged_component(state, "alerts", "error")
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
    if "worker" in state.damaged:
        return _damaged_component(state, "worker", "error")
    if tick is None or last is None:
        return _component(
            "unknown", "no worker tick recorded", hint="start it: `ingmon worker` (systemd unit)"
        )
    interval = state.worker_interval_seconds
    age = seconds_between(state.now_ms, last) or 0.0
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


def _per_source(state: MonitorState, build: Callable[[MonitorState], T]) -> T:
    """``build(state)``; when it fails on a value of a state file, built again without the
    file it came from — found by leaving out one file at a time, the snapshot first — which
    then counts as damaged: the other sources keep answering, and the failure is logged."""
    try:
        return build(state)
    except _RENDER_ERRORS as error:
        logger.exception("a state file holds values the API cannot show")
        first: BaseException = error
    reason = f"{type(first).__name__}: {first}"
    everything = state
    for source in ("health", "alerts", "worker"):
        without = state.without(source, f"{STATE_FILES[source]} cannot be shown ({reason})")
        everything = everything.without(source, without.damaged[source])
        try:
            return build(without)
        except _RENDER_ERRORS:
            continue
    try:
        return build(everything)
    except _RENDER_ERRORS:
        raise first from None


def health_document(settings: Settings, *, now_ms: int) -> dict[str, Any]:
    """``/api/health``: the status of each component and the worst of them."""
    return _per_source(monitor_state(settings, now_ms=now_ms), _health_document)


def _health_document(state: MonitorState) -> dict[str, Any]:
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
        "generated_at": iso_ms(state.now_ms),
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
            "age_seconds": finite(freshness.age_seconds),
            "warn_seconds": freshness.warn_seconds,
            "error_seconds": freshness.error_seconds,
        },
        "latency": {
            "status": latency.status,
            "batches": latency.batches,
            "backfill_batches": latency.backfill_batches,
            "last_seconds": finite(latency.last_seconds),
            "p50_seconds": finite(latency.p50_seconds),
            "p95_seconds": finite(latency.p95_seconds),
            "warn_seconds": latency.warn_seconds,
            "error_seconds": latency.error_seconds,
        },
        "cadence": {
            "status": cadence.status,
            "expected_seconds": cadence.expected_seconds,
            "batches": cadence.batches,
            "last_interval_seconds": finite(cadence.last_interval_seconds),
            "median_interval_seconds": finite(cadence.median_interval_seconds),
            "max_interval_seconds": finite(cadence.max_interval_seconds),
            "deviation_seconds": finite(cadence.deviation_seconds),
            "deviation_ratio": finite(cadence.deviation_ratio),
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
        "value": finite(alert.value),
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
                "since_last_signal_seconds": finite(
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
                "hit_rate": finite(kpi.hit_rate),
                "expectancy": finite(kpi.expectancy),
                "max_drawdown": finite(kpi.max_drawdown),
            }
        )
    return runs


def _worker_metrics(state: MonitorState) -> dict[str, Any]:
    tick = state.worker
    last = None if tick is None else tick.last_ms
    return {
        "last_tick_at": iso_ms(last),
        "age_seconds": finite(seconds_between(state.now_ms, last)),
        "outcome": None if tick is None else tick.outcome,
        "duration_seconds": None if tick is None else finite(tick.duration_seconds),
        "interval_seconds": state.worker_interval_seconds,
    }


def _snapshot_metrics(state: MonitorState) -> dict[str, Any]:
    return {
        "generated_at": iso_ms(state.snapshot_generated_ms),
        "age_seconds": finite(state.snapshot_age_seconds),
        "window_hours": None if state.snapshot is None else state.snapshot.window_hours,
    }


def metrics_document(settings: Settings, *, now_ms: int) -> dict[str, Any]:
    """``/api/metrics``: ingestion (freshness, latency, cadence, gaps per series), signal
    counts, the latest backtest runs' performance, alerts and the worker, judged at ``now_ms``."""
    return _per_source(monitor_state(settings, now_ms=now_ms), _metrics_document)


def _metrics_document(state: MonitorState) -> dict[str, Any]:
    series = () if state.snapshot is None else state.snapshot.series
    series = tuple(sorted(series, key=_worst_first))
    return {
        "generated_at": iso_ms(state.now_ms),
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
    (status, then the largest age relative to the warn age), optionally filtered."""

    def build(state: MonitorState) -> dict[str, Any]:
        return _freshness_document(state, symbols=symbols, datasets=datasets, statuses=statuses)

    return _per_source(monitor_state(settings, now_ms=now_ms), build)


def _freshness_document(
    state: MonitorState,
    *,
    symbols: Sequence[str] | None,
    datasets: Sequence[str] | None,
    statuses: Sequence[str] | None,
) -> dict[str, Any]:
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
                "age_seconds": finite(freshness.age_seconds),
                "warn_seconds": freshness.warn_seconds,
                "error_seconds": freshness.error_seconds,
            }
        )
    return {
        "generated_at": iso_ms(state.now_ms),
        "snapshot_generated_at": iso_ms(state.snapshot_generated_ms),
        "count": len(items),
        "counts": counts,
        "items": items,
    }


def _freshness_order(series: SeriesStatus) -> tuple[int, float, str, str, str]:
    """Worst status first, then the largest age relative to the warn age (lag ÷ what is
    allowed: a funding row 6 h old is fresher than a candle 2 min old)."""
    freshness = series.freshness
    age, warn = freshness.age_seconds, freshness.warn_seconds
    known = age is not None and math.isfinite(age) and math.isfinite(warn) and warn > 0
    ratio = age / warn if known and age is not None else math.inf
    return (_RANK[freshness.status], -ratio, series.dataset, series.param or "", series.symbol)

"""The Prometheus exporter: the persisted monitoring state, turned into metrics at scrape time.

A scrape reads only the small state files under ``settings.state_dir`` (``health.json``,
``alerts.json``, ``webhooks.json``, the outbox, ``worker.json``) and ``reports.json``; it never
opens the market lake. The health snapshot is parsed again only when its file changed, and its
freshness is re-judged at the scrape's clock. A state file that is missing leaves its metrics
out; one that cannot be read sets ``ingmon_state_read_error{source=…}`` to 1, and the rest of
the scrape still answers. :func:`exposition` reuses rendered bodies: the state part until a
state file changes, the ages and statuses within one second of the clock.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import weakref
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from ingmon.config import Settings
from ingmon.errors import DataIntegrityError, IngmonError
from ingmon.monitor.alerts import ALERTS_FILE, RULES, AlertState
from ingmon.monitor.health import (
    HEALTH_FILE,
    STATUSES,
    HealthSnapshot,
    SeriesStatus,
    read_snapshot,
)
from ingmon.monitor.outbox import OUTBOX_DIR, outbox_pending
from ingmon.monitor.outbox import STATE_FILE as WEBHOOKS_FILE
from ingmon.reports.state import STATE_FILE as REPORTS_FILE
from ingmon.reports.state import report_state
from ingmon.times import SECOND_MS, now_ms
from ingmon.worker.state import WORKER_STATE

__all__ = [
    "CLOCK_FAMILIES",
    "METRICS",
    "SOURCES",
    "IngmonCollector",
    "MetricSpec",
    "build_registry",
    "exposition",
    "read_state_object",
    "snapshot_problem",
]

logger = logging.getLogger(__name__)

# The state each scrape reads; ``ingmon_state_read_error{source}`` says which one failed.
SOURCES = ("health", "alerts", "webhooks", "worker", "reports")

_SERIES = ("dataset", "symbol", "param")
# What a state file may raise when it is torn, from another version, unreadable, or holds
# values that cannot be judged (a zero interval, a time past the year 9999).
_READ_ERRORS = (
    IngmonError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    ArithmeticError,
)
# 9999-12-31T23:59:59.999Z: the last instant an ISO-8601 time (and Python) can show.
_LAST_MS = 253_402_300_799_999


def read_state_object(path: Path) -> Mapping[str, Any] | None:
    """The JSON object a state file holds; None when there is no file. ValueError when it is
    torn or not JSON (or not UTF-8), TypeError when it holds something else than an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _bad_time(value: int | None) -> bool:
    return value is not None and not 0 <= value <= _LAST_MS


def _bad_amount(value: float) -> bool:
    return not (math.isfinite(value) and value > 0)


def snapshot_problem(snapshot: HealthSnapshot) -> str | None:
    """What makes a well-formed snapshot unusable, in words; None when nothing does.

    Unusable: a time outside 1970..9999, or a window, threshold or expected interval that is
    not a positive number (what no writer produces: the settings are all > 0). Judging such a
    snapshot would divide by zero or fail to show a time, so it counts as damaged, like a torn
    file."""
    found: list[str] = []
    times: list[tuple[str, int | None]] = [
        ("generated_at_ms", snapshot.generated_at_ms),
        ("now_ms", snapshot.now_ms),
    ]
    amounts: list[tuple[str, float]] = [
        ("window_hours", snapshot.window_hours),
        ("signals.window_hours", snapshot.signals.window_hours),
    ]
    for series in snapshot.series:
        where = f"series {series.dataset} {series.symbol}"
        fresh, latency, cadence = series.freshness, series.latency, series.cadence
        times += [
            (f"{where}: first_event_ms", series.first_event_ms),
            (f"{where}: last_event_ms", series.last_event_ms),
            (f"{where}: last_batch_written_ms", series.last_batch_written_ms),
            (f"{where}: freshness.last_event_close_ms", fresh.last_event_close_ms),
            (f"{where}: cadence.last_success_written_ms", cadence.last_success_written_ms),
        ]
        amounts += [
            (f"{where}: freshness.warn_seconds", fresh.warn_seconds),
            (f"{where}: freshness.error_seconds", fresh.error_seconds),
            (f"{where}: latency.warn_seconds", latency.warn_seconds),
            (f"{where}: latency.error_seconds", latency.error_seconds),
            (f"{where}: cadence.expected_seconds", cadence.expected_seconds),
        ]
    for symbol in snapshot.signals.symbols:
        times.append((f"signals {symbol.symbol}: last_signal_ms", symbol.last_signal_ms))
    for count in snapshot.signals.counts:
        times.append((f"signal counts {count.symbol}: start_ms", count.start_ms))
    for kpi in snapshot.performance:
        times.append((f"performance {kpi.symbol} {kpi.setup}: created_at_ms", kpi.created_at_ms))
    found += [
        f"{name} {value} is not a time in 1970..9999" for name, value in times if _bad_time(value)
    ]
    found += [
        f"{name} is {value!r}, not a positive number"
        for name, value in amounts
        if _bad_amount(value)
    ]
    if not found:
        return None
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return found[0] + more


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric family: its name (with ``_total`` for counters), type, labels, help."""

    name: str
    kind: Literal["gauge", "counter"]
    labels: tuple[str, ...]
    help: str

    def family(self) -> GaugeMetricFamily | CounterMetricFamily:
        """An empty family to add samples to."""
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


def _gauge(name: str, labels: tuple[str, ...], text: str) -> MetricSpec:
    return MetricSpec(name, "gauge", labels, text)


def _counter(name: str, labels: tuple[str, ...], text: str) -> MetricSpec:
    return MetricSpec(name, "counter", labels, text)


METRICS: tuple[MetricSpec, ...] = (
    # The exporter itself
    _gauge("ingmon_build_info", ("version",), "ingmon's version; always 1."),
    _gauge(
        "ingmon_state_read_error",
        ("source",),
        "1 when this scrape could not read the state file of the source (its metrics are left "
        "out), else 0.",
    ),
    _gauge(
        "ingmon_exporter_collect_duration_seconds",
        (),
        "Time the last read of the state files took (redone when one of them changes).",
    ),
    # The health snapshot
    _gauge(
        "ingmon_health_snapshot_present",
        (),
        "1 when state/health.json exists and was read, 0 before the first health run.",
    ),
    _gauge(
        "ingmon_health_snapshot_timestamp_seconds",
        (),
        "Unix time the health snapshot was computed (by the worker each tick, or ingmon health).",
    ),
    _gauge("ingmon_health_window_seconds", (), "Length of the health window (counts, p95)."),
    _gauge(
        "ingmon_health_status",
        ("status",),
        "Worst status over every series, as a state set: 1 for the current status, 0 otherwise.",
    ),
    # Per dataset × symbol (param: the candle interval or OI period, empty otherwise)
    _gauge(
        "ingmon_dataset_status",
        (*_SERIES, "status"),
        "Status of the series (worst of freshness, latency, cadence, gaps, duplicates, corrupt "
        "files) as a state set: 1 for the current status, 0 otherwise.",
    ),
    _gauge(
        "ingmon_dataset_last_event_timestamp_seconds",
        _SERIES,
        "Unix time the newest stored event closed (a candle: open + interval).",
    ),
    _gauge(
        "ingmon_dataset_freshness_seconds",
        _SERIES,
        "Age of the newest stored event at scrape time: now - last event close.",
    ),
    _gauge(
        "ingmon_dataset_freshness_threshold_seconds",
        (*_SERIES, "status"),
        "Freshness age at which the series turns warn / error (settings, shifted by its step).",
    ),
    _gauge("ingmon_dataset_window_rows", _SERIES, "Rows stored inside the health window."),
    _gauge("ingmon_dataset_gaps", _SERIES, "Gaps (missing runs of rows) inside the health window."),
    _gauge("ingmon_dataset_missing_rows", _SERIES, "Rows the gaps inside the health window miss."),
    _gauge(
        "ingmon_dataset_exchange_gaps",
        _SERIES,
        "Gaps the exchange itself has (known outages): not counted in ingmon_dataset_gaps.",
    ),
    _gauge("ingmon_dataset_duplicates", _SERIES, "Duplicate keys inside the health window."),
    _gauge("ingmon_dataset_corrupt_files", _SERIES, "Unreadable Parquet files of the series."),
    _gauge(
        "ingmon_ingest_latency_last_seconds",
        _SERIES,
        "Ingest latency of the newest live batch: written_at - close of its newest event.",
    ),
    _gauge(
        "ingmon_ingest_latency_p50_seconds",
        _SERIES,
        "Median ingest latency of the live batches in the health window.",
    ),
    _gauge(
        "ingmon_ingest_latency_p95_seconds",
        _SERIES,
        "95th percentile ingest latency of the live batches in the health window.",
    ),
    _gauge("ingmon_ingest_live_batches", _SERIES, "Live batches written in the health window."),
    _gauge(
        "ingmon_ingest_backfill_batches",
        _SERIES,
        "Backfill batches (archive, older REST pages) written in the health window.",
    ),
    _gauge(
        "ingmon_ingest_last_batch_timestamp_seconds",
        _SERIES,
        "Unix time the newest batch of the series (any source) in the health window was written.",
    ),
    _gauge(
        "ingmon_ingest_cadence_expected_seconds",
        _SERIES,
        "Expected interval between live batches: max(worker interval, the series' step).",
    ),
    _gauge(
        "ingmon_ingest_cadence_last_interval_seconds",
        _SERIES,
        "Interval between the last two successful live batches.",
    ),
    _gauge(
        "ingmon_ingest_cadence_deviation_ratio",
        _SERIES,
        "Last interval between live batches / expected interval - 1 (0 = on time).",
    ),
    _gauge(
        "ingmon_ingest_cadence_last_success_timestamp_seconds",
        _SERIES,
        "Unix time the last successful live batch (one that stored new rows) was written: "
        "the open interval since then counts as a cadence deviation too.",
    ),
    # Signals
    _gauge(
        "ingmon_signals",
        ("symbol", "setup", "confidence"),
        "Signals in the health window, by setup and confidence.",
    ),
    _gauge(
        "ingmon_signal_last_timestamp_seconds",
        ("symbol",),
        "Unix time (bar close) of the symbol's newest signal.",
    ),
    _gauge(
        "ingmon_signal_watch_start_timestamp_seconds",
        ("symbol",),
        "Unix time the alert evaluation began watching the symbol: a symbol that never had a "
        "signal counts as silent since then.",
    ),
    # Backtests: the latest saved run per symbol; setup "all" is the whole run
    _gauge(
        "ingmon_backtest_trades",
        ("symbol", "setup"),
        "Trades in the latest backtest run of the symbol.",
    ),
    _gauge(
        "ingmon_backtest_hit_ratio",
        ("symbol", "setup"),
        "Winning trades / trades in the latest backtest run (0-1).",
    ),
    _gauge(
        "ingmon_backtest_expectancy_ratio",
        ("symbol", "setup"),
        "Mean net return per trade in the latest backtest run (0.01 = 1 %).",
    ),
    _gauge(
        "ingmon_backtest_max_drawdown_ratio",
        ("symbol",),
        "Max drawdown of the latest backtest run, as a fraction of equity (0.12 = 12 %).",
    ),
    _gauge(
        "ingmon_backtest_run_timestamp_seconds",
        ("symbol",),
        "Unix time the latest backtest run of the symbol was saved.",
    ),
    # Alerts and their delivery
    _gauge(
        "ingmon_alerts_firing",
        ("alertname", "severity"),
        "Alerts of the built-in rules that are firing.",
    ),
    _gauge(
        "ingmon_alerts_pending",
        ("alertname", "severity"),
        "Alerts whose condition holds but not yet for the rule's for-duration.",
    ),
    _counter(
        "ingmon_webhook_deliveries_total",
        ("outcome",),
        "Webhook delivery attempts, by outcome.",
    ),
    _gauge(
        "ingmon_webhook_outbox_pending",
        (),
        "Notifications waiting in the outbox for a successful delivery.",
    ),
    # The worker
    _gauge(
        "ingmon_worker_last_tick_timestamp_seconds",
        (),
        "Unix time the worker's last tick finished.",
    ),
    _gauge(
        "ingmon_worker_last_tick_duration_seconds",
        (),
        "How long the worker's last tick took.",
    ),
    _gauge(
        "ingmon_worker_last_tick_outcome",
        ("outcome",),
        "1 with the outcome of the worker's last tick as the label.",
    ),
    # Reports (papermill runs)
    _gauge(
        "ingmon_report_last_success_timestamp_seconds",
        ("report",),
        "Unix time the report last finished successfully.",
    ),
    _gauge(
        "ingmon_report_last_run_success",
        ("report",),
        "1 when the report's last run succeeded, 0 when it failed.",
    ),
    _gauge(
        "ingmon_report_last_duration_seconds",
        ("report",),
        "How long the report's last run took.",
    ),
    _counter("ingmon_report_runs_total", ("report",), "Runs of the report."),
    _counter("ingmon_report_failures_total", ("report",), "Failed runs of the report."),
)


# (metric name, label values, value) — what a source contributes to a scrape.
Sample = tuple[str, tuple[str, ...], float]
Part = Literal["all", "state", "clock"]
# The families whose values move with the clock: ages, and the statuses judged from them. All
# the others change only when a state file does.
CLOCK_FAMILIES = frozenset(
    {"ingmon_health_status", "ingmon_dataset_status", "ingmon_dataset_freshness_seconds"}
)


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / SECOND_MS


class _SnapshotCache:
    """The last parsed health snapshot, reused while ``health.json`` is the same file."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / HEALTH_FILE
        self._state_dir = state_dir
        self._entry: tuple[tuple[int, int, int], HealthSnapshot] | None = None

    def read(self) -> HealthSnapshot | None:
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            self._entry = None
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        entry = self._entry  # one read: another thread may replace it meanwhile
        if entry is not None and entry[0] == key:
            return entry[1]
        snapshot = read_snapshot(self._state_dir)
        if snapshot is None:  # the file is there, but torn, foreign or of another schema
            self._entry = None
            raise DataIntegrityError(f"{self._path} is not a health snapshot")
        problem = snapshot_problem(snapshot)
        if problem is not None:  # well-formed, but with values nothing can judge
            self._entry = None
            raise DataIntegrityError(f"{self._path} holds impossible values: {problem}")
        self._entry = (key, snapshot)
        return snapshot


class IngmonCollector:
    """Computes every ``ingmon_*`` metric from the persisted state when the registry is scraped.

    ``describe()`` names the families without reading anything, so registering does no I/O.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], int] = now_ms) -> None:
        self._settings = settings
        self._clock = clock
        self._snapshots = _SnapshotCache(settings.state_dir)
        self._reported: dict[str, str] = {}  # the last error logged per source

    def describe(self) -> list[Metric]:
        return [spec.family() for spec in METRICS]

    def collect(self) -> Iterator[Metric]:
        return iter(self.families(self._clock()))

    def families(self, at_ms: int, part: Part = "all") -> list[Metric]:
        """The metric families at ``at_ms``: all, only those moving with the clock
        (``CLOCK_FAMILIES``), or only the others ("state": they change with the files alone)."""
        samples: list[Sample] = []
        if part != "clock":
            samples += self._state_samples()
        if part != "state":
            samples += self._clock_samples(at_ms)
        families = {spec.name: spec.family() for spec in METRICS}
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for name, labels, value in samples:
            if (name, labels) not in seen:  # a repeated series (first wins) would be invalid
                seen.add((name, labels))
                families[name].add_metric(list(labels), value)
        return [family for family in families.values() if family.samples]

    def _state_samples(self) -> list[Sample]:
        started = time.perf_counter()
        from ingmon import __version__  # noqa: PLC0415 - the package imports its modules first

        samples: list[Sample] = [("ingmon_build_info", (__version__,), 1.0)]
        readers: tuple[Callable[[], list[Sample]], ...] = (
            self._health,
            self._alerts,
            self._webhooks,
            self._worker,
            self._reports,
        )
        for source, reader in zip(SOURCES, readers, strict=True):
            try:
                found = reader()
            except _READ_ERRORS as error:
                self._log_once(source, error)
                samples.append(("ingmon_state_read_error", (source,), 1.0))
                if source == "health":
                    samples.append(("ingmon_health_snapshot_present", (), 0.0))
                continue
            self._reported.pop(source, None)
            samples.append(("ingmon_state_read_error", (source,), 0.0))
            samples.extend(found)
        duration = time.perf_counter() - started
        samples.append(("ingmon_exporter_collect_duration_seconds", (), duration))
        return samples

    def _clock_samples(self, at_ms: int) -> list[Sample]:
        try:
            stored = self._snapshots.read()
            return [] if stored is None else list(_judged_samples(stored.at(at_ms)))
        except _READ_ERRORS:
            return []  # reported by the state part

    def _log_once(self, source: str, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        if self._reported.get(source) != message:
            self._reported[source] = message
            logger.warning("exporter: cannot read the %s state: %s", source, message)

    def _health(self) -> list[Sample]:
        stored = self._snapshots.read()
        if stored is None:
            return [("ingmon_health_snapshot_present", (), 0.0)]
        return list(_snapshot_samples(stored))

    def _alerts(self) -> list[Sample]:
        # Not alerts.read_alert_state: it reads a damaged file as empty (the evaluation then
        # rebuilds it), which would show as zero alerts and no read error here.
        data = read_state_object(self._settings.state_dir / ALERTS_FILE)
        state = AlertState() if data is None else AlertState.from_dict(data)
        firing: Counter[tuple[str, str]] = Counter()
        pending: Counter[tuple[str, str]] = Counter()
        for alert in state.active:
            key = (alert.labels.get("alertname", ""), alert.labels.get("severity", ""))
            (firing if alert.state == "firing" else pending)[key] += 1
        # Every built-in rule has its series, 0 when nothing fires: sum() and rate() see zeros.
        for rule in RULES.values():
            firing[rule.name, rule.severity] += 0
            pending[rule.name, rule.severity] += 0
        samples: list[Sample] = []
        for name, counts in (("ingmon_alerts_firing", firing), ("ingmon_alerts_pending", pending)):
            samples.extend((name, key, float(count)) for key, count in sorted(counts.items()))
        samples.extend(
            ("ingmon_signal_watch_start_timestamp_seconds", (symbol,), since_ms / SECOND_MS)
            for symbol, since_ms in sorted(state.watched_since_ms.items())
        )
        return samples

    def _webhooks(self) -> list[Sample]:
        state_dir = self._settings.state_dir
        # Read here, not by outbox.delivery_counts: that one counts a damaged file as zeros.
        data = read_state_object(state_dir / WEBHOOKS_FILE)
        stored = {} if data is None else data.get("counts", {})
        if not isinstance(stored, Mapping):
            raise TypeError(f"counts is a {type(stored).__name__}, not an object")
        counts = {"success": 0, "failure": 0, **{str(k): int(v) for k, v in stored.items()}}
        samples: list[Sample] = [
            ("ingmon_webhook_deliveries_total", (outcome,), float(count))
            for outcome, count in sorted(counts.items())
        ]
        samples.append(("ingmon_webhook_outbox_pending", (), float(outbox_pending(state_dir))))
        return samples

    def _worker(self) -> list[Sample]:
        data = read_state_object(self._settings.state_dir / WORKER_STATE)
        return [] if data is None else list(_worker_samples(data))

    def _reports(self) -> list[Sample]:
        samples: list[Sample] = []
        for name, state in sorted(report_state(self._settings.data_dir).items()):
            report = (name,)
            if state.last_success_timestamp_seconds is not None:
                samples.append(
                    (
                        "ingmon_report_last_success_timestamp_seconds",
                        report,
                        float(state.last_success_timestamp_seconds),
                    )
                )
            success = 1.0 if state.last_status == "success" else 0.0
            samples += [
                ("ingmon_report_last_run_success", report, success),
                ("ingmon_report_last_duration_seconds", report, state.last_duration_seconds),
                ("ingmon_report_runs_total", report, float(state.runs_total)),
                ("ingmon_report_failures_total", report, float(state.failures_total)),
            ]
        return samples


def _optional(name: str, labels: tuple[str, ...], value: float | None) -> Iterator[Sample]:
    if value is not None:
        yield (name, labels, float(value))


def _state_set(name: str, labels: tuple[str, ...], current: str) -> Iterator[Sample]:
    for status in STATUSES:
        yield (name, (*labels, status), 1.0 if status == current else 0.0)


def _series_key(series: SeriesStatus) -> tuple[str, str, str]:
    return (series.dataset, series.symbol, series.param or "")


def _judged_samples(judged: HealthSnapshot) -> Iterator[Sample]:
    """The samples of ``CLOCK_FAMILIES``: the snapshot judged at the scrape's clock."""
    yield from _state_set("ingmon_health_status", (), judged.status)
    for series in judged.series:
        key = _series_key(series)
        yield from _state_set("ingmon_dataset_status", key, series.status)
        yield from _optional("ingmon_dataset_freshness_seconds", key, series.freshness.age_seconds)


def _snapshot_samples(snapshot: HealthSnapshot) -> Iterator[Sample]:
    """The samples of a health snapshot that do not depend on the clock."""
    yield ("ingmon_health_snapshot_present", (), 1.0)
    yield ("ingmon_health_snapshot_timestamp_seconds", (), snapshot.generated_at_ms / SECOND_MS)
    yield ("ingmon_health_window_seconds", (), snapshot.window_hours * 3600.0)
    for series in snapshot.series:
        key = _series_key(series)
        fresh, latency, cadence = series.freshness, series.latency, series.cadence
        yield from _optional(
            "ingmon_dataset_last_event_timestamp_seconds",
            key,
            _seconds(fresh.last_event_close_ms),
        )
        yield ("ingmon_dataset_freshness_threshold_seconds", (*key, "warn"), fresh.warn_seconds)
        yield ("ingmon_dataset_freshness_threshold_seconds", (*key, "error"), fresh.error_seconds)
        for name, count in (
            ("ingmon_dataset_window_rows", series.rows),
            ("ingmon_dataset_gaps", series.gaps),
            ("ingmon_dataset_missing_rows", series.missing),
            ("ingmon_dataset_exchange_gaps", series.exchange_gaps),
            ("ingmon_dataset_duplicates", series.duplicates),
            ("ingmon_dataset_corrupt_files", len(series.corrupt_files)),
            ("ingmon_ingest_live_batches", latency.batches),
            ("ingmon_ingest_backfill_batches", latency.backfill_batches),
        ):
            yield (name, key, float(count))
        for name, value in (
            ("ingmon_ingest_latency_last_seconds", latency.last_seconds),
            ("ingmon_ingest_latency_p50_seconds", latency.p50_seconds),
            ("ingmon_ingest_latency_p95_seconds", latency.p95_seconds),
            ("ingmon_ingest_last_batch_timestamp_seconds", _seconds(series.last_batch_written_ms)),
            ("ingmon_ingest_cadence_expected_seconds", cadence.expected_seconds),
            ("ingmon_ingest_cadence_last_interval_seconds", cadence.last_interval_seconds),
            ("ingmon_ingest_cadence_deviation_ratio", cadence.deviation_ratio),
            (
                "ingmon_ingest_cadence_last_success_timestamp_seconds",
                _seconds(cadence.last_success_written_ms),
            ),
        ):
            yield from _optional(name, key, value)
    yield from _signal_samples(snapshot)
    for kpi in snapshot.performance:
        run = (kpi.symbol, kpi.setup)
        yield ("ingmon_backtest_trades", run, float(kpi.trades))
        yield from _optional("ingmon_backtest_hit_ratio", run, kpi.hit_rate)
        yield from _optional("ingmon_backtest_expectancy_ratio", run, kpi.expectancy)
        if kpi.setup == "all":
            yield from _optional(
                "ingmon_backtest_max_drawdown_ratio", (kpi.symbol,), kpi.max_drawdown
            )
            yield (
                "ingmon_backtest_run_timestamp_seconds",
                (kpi.symbol,),
                kpi.created_at_ms / SECOND_MS,
            )


def _signal_samples(snapshot: HealthSnapshot) -> Iterator[Sample]:
    # The hourly buckets hold exactly the window's signals (the daily ones span a week).
    in_window: Counter[tuple[str, str, str]] = Counter()
    for bucket in snapshot.signals.counts:
        if bucket.granularity == "hour":
            in_window[bucket.symbol, bucket.setup, bucket.confidence] += bucket.count
    for key, count in sorted(in_window.items()):
        yield ("ingmon_signals", key, float(count))
    for symbol in snapshot.signals.symbols:
        yield from _optional(
            "ingmon_signal_last_timestamp_seconds",
            (symbol.symbol,),
            _seconds(symbol.last_signal_ms),
        )


def _worker_samples(state: Mapping[str, Any]) -> Iterable[Sample]:
    finished_ms = state.get("finished_ms")
    if finished_ms is not None:
        yield ("ingmon_worker_last_tick_timestamp_seconds", (), float(finished_ms) / SECOND_MS)
    duration = state.get("duration_seconds")
    if duration is not None:
        yield ("ingmon_worker_last_tick_duration_seconds", (), float(duration))
    outcome = state.get("outcome")
    if outcome is not None:
        yield ("ingmon_worker_last_tick_outcome", (str(outcome),), 1.0)


def _file_key(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class _PartView:
    """A registry's view of one part of the collector's families."""

    def __init__(self, collector: IngmonCollector, part: Part, clock: Callable[[], int]) -> None:
        self._collector = collector
        self._part = part
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        return iter(self._collector.families(self._clock(), self._part))


class _BodyCache:
    """Rendered bodies per content type: the state part while no state file changed, the clock
    part (ages, statuses: a few samples per series) while the clock is in the same second. So
    concurrent scrapers and dashboards cost at most one small rendering a second, and one
    full rendering per state change, instead of one full rendering each."""

    def __init__(
        self, settings: Settings, collector: IngmonCollector, clock: Callable[[], int]
    ) -> None:
        state_dir = settings.state_dir
        self._clock = clock
        # The outbox directory's own mtime changes when an entry is added or removed.
        self._watched = (
            state_dir / HEALTH_FILE,
            state_dir / ALERTS_FILE,
            state_dir / WEBHOOKS_FILE,
            state_dir / OUTBOX_DIR,
            state_dir / WORKER_STATE,
            settings.data_dir / "state" / REPORTS_FILE,
        )
        self._registries: dict[Part, CollectorRegistry] = {}
        for part in ("state", "clock"):
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_PartView(collector, part, clock))
            self._registries[part] = registry
        self._bodies: dict[tuple[Part, str], tuple[Hashable, bytes]] = {}

    def body(self, encoder: Callable[[CollectorRegistry], bytes], content_type: str) -> bytes:
        files = tuple(_file_key(path) for path in self._watched)
        state = self._render("state", files, encoder, content_type)
        clock = self._render("clock", (self._clock() // SECOND_MS, files), encoder, content_type)
        if content_type.startswith("application/openmetrics-text"):
            state = state.removesuffix(b"# EOF\n")  # one EOF, at the very end
        return state + clock

    def _render(
        self,
        part: Part,
        key: Hashable,
        encoder: Callable[[CollectorRegistry], bytes],
        content_type: str,
    ) -> bytes:
        cached = self._bodies.get((part, content_type))  # one read: threads may replace it
        if cached is not None and cached[0] == key:
            return cached[1]
        body = encoder(self._registries[part])
        self._bodies[part, content_type] = (key, body)
        return body


_BODY_CACHES: weakref.WeakKeyDictionary[CollectorRegistry, _BodyCache] = weakref.WeakKeyDictionary()


def build_registry(settings: Settings, *, clock: Callable[[], int] = now_ms) -> CollectorRegistry:
    """A registry of its own holding the ingmon collector (nothing is read until a scrape).

    ``clock`` gives the scrape's "now" in epoch ms (ages are judged at it).
    """
    registry = CollectorRegistry(auto_describe=False)
    collector = IngmonCollector(settings, clock=clock)
    registry.register(collector)
    _BODY_CACHES[registry] = _BodyCache(settings, collector, clock)
    return registry


def exposition(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The scrape body and its content type for a request's ``Accept`` header: OpenMetrics when
    asked for, else the Prometheus text format 0.0.4 (``choose_encoder``).

    For a registry of :func:`build_registry` the body is rendered in two cached parts: what
    only the state files determine (again when one of them changed) and what moves with the
    clock (ages and statuses, again in each new second of the clock).
    """
    encoder, content_type = choose_encoder(accept)
    cache = _BODY_CACHES.get(registry)
    if cache is None:
        return encoder(registry), content_type
    return cache.body(encoder, content_type), content_type

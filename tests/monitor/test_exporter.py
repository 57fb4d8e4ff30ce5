"""The Prometheus exporter: every metric against hand-worked values from persisted state (a
hand-made health snapshot, real alert evaluations, real webhook deliveries to loopback
receivers, a worker tick record and report runs), `promtool check metrics` on both exposition
formats, content negotiation, and scrapes that never touch the market lake."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import ingmon
from ingmon.config import Settings, load_settings
from ingmon.lake import Lake
from ingmon.monitor import exporter
from ingmon.monitor.alerts import RULES, evaluate
from ingmon.monitor.exporter import METRICS, build_registry, exposition
from ingmon.monitor.health import (
    Cadence,
    Freshness,
    HealthSnapshot,
    Latency,
    SeriesStatus,
    build_snapshot,
    read_snapshot,
    write_snapshot,
)
from ingmon.monitor.kpis import PerformanceKPI, SignalCount, SignalHealth, SymbolSignals
from ingmon.monitor.outbox import deliver
from ingmon.reports.state import ReportRun, record_run, write_text_atomic
from ingmon.times import HOUR_MS, MINUTE_MS, SECOND_MS
from ingmon.worker import WORKER_STATE, StepResult, TickResult
from tests.monitor._lake import NOW_MS, healthy_lake
from tests.monitor._receiver import Receiver

# The snapshot is computed at NOW_MS; alerts are evaluated at NOW_MS and SCRAPE_MS, which is
# also when Prometheus scrapes: 150 s later, so every age below is 150 s older than stored.
SCRAPE_MS = NOW_MS + 150 * SECOND_MS
OPENMETRICS_ACCEPT = (  # what Prometheus 2.42 sends
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
ALLOWED_LABELS = {
    "version",
    "source",
    "status",
    "dataset",
    "symbol",
    "param",
    "setup",
    "confidence",
    "alertname",
    "severity",
    "outcome",
    "report",
}


def promtool() -> str:
    """Debian's promtool; a clear failure (not a skip) when it is missing: CI installs it."""
    path = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if path is None:
        pytest.fail("promtool not found: install Debian's prometheus package (make system-deps)")
    return path


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    return load_settings(env_file=None, data_dir=data_dir, **overrides)


# ---- a hand-made health snapshot -----------------------------------------------------------


def _series(
    dataset: str,
    symbol: str,
    param: str | None,
    *,
    close_ms: int | None,
    warn: float,
    error: float,
    p95: float | None = None,
    expected: float = 60.0,
    deviation: float | None = None,
    last_success_ms: int | None = None,
    gaps: int = 0,
    missing: int = 0,
    exchange_gaps: int = 0,
    duplicates: int = 0,
    corrupt: tuple[str, ...] = (),
    rows: int = 0,
) -> SeriesStatus:
    """One series as the health model stores it; statuses are re-judged by ``.at()``."""
    freshness = Freshness(close_ms, None, warn, error, "unknown").at(NOW_MS)
    latency = Latency(
        batches=0 if p95 is None else 100,
        backfill_batches=3,
        last_seconds=None if p95 is None else p95 / 2,
        p50_seconds=None if p95 is None else p95 / 4,
        p95_seconds=p95,
        warn_seconds=120.0,
        error_seconds=300.0,
        status="unknown" if p95 is None else ("error" if p95 > 300 else "ok"),
    )
    cadence = Cadence(
        expected_seconds=expected,
        batches=0 if deviation is None else 50,
        last_interval_seconds=None if deviation is None else expected * (1 + deviation),
        median_interval_seconds=None if deviation is None else expected,
        max_interval_seconds=None if deviation is None else expected * (1 + deviation),
        deviation_seconds=None if deviation is None else expected * deviation,
        deviation_ratio=deviation,
        status="unknown",
        last_success_written_ms=last_success_ms,
    ).at(NOW_MS)
    status = SeriesStatus.judge(
        freshness=freshness,
        latency=latency,
        cadence=cadence,
        gaps=gaps,
        duplicates=duplicates,
        corrupt_files=corrupt,
    )
    return SeriesStatus(
        dataset=dataset,
        symbol=symbol,
        param=param,
        rows=rows,
        first_event_ms=None if close_ms is None else NOW_MS - 24 * HOUR_MS,
        last_event_ms=close_ms,
        freshness=freshness,
        latency=latency,
        cadence=cadence,
        gaps=gaps,
        missing=missing,
        exchange_gaps=exchange_gaps,
        duplicates=duplicates,
        corrupt_files=corrupt,
        last_batch_written_ms=last_success_ms,
        problems=(),
        status=status,
    )


def hand_snapshot() -> HealthSnapshot:
    """Four series, three symbols' signals and two backtest runs, with known numbers:

    - candles BTCUSDT 1m: last close 10 s before NOW (fresh), p95 4 s, on cadence.
    - open_interest ETHUSDT 5m: last close 1000 s before NOW (error age 900), p95 400 s
      (error above 300), cadence ratio 5 (error above 4), 2 gaps, 3 duplicates, a corrupt file.
    - agg_trades SOLUSDT: nothing stored (unknown).
    - funding BTCUSDT: p95 exactly 300 s and cadence ratio exactly 4 (neither is an error),
      last close 30 000 s before the scrape (warn 28 800, error 30 600).
    """
    series = (
        _series(
            "candles",
            "BTCUSDT",
            "1m",
            close_ms=NOW_MS - 10 * SECOND_MS,
            warn=90.0,
            error=180.0,
            p95=4.0,
            deviation=1 / 60,
            last_success_ms=NOW_MS - 8 * SECOND_MS,
            rows=1440,
        ),
        _series(
            "open_interest",
            "ETHUSDT",
            "5m",
            close_ms=NOW_MS - 1000 * SECOND_MS,
            warn=450.0,
            error=900.0,
            p95=400.0,
            expected=300.0,
            deviation=5.0,
            last_success_ms=NOW_MS - 995 * SECOND_MS,
            gaps=2,
            missing=7,
            exchange_gaps=1,
            duplicates=3,
            corrupt=("lake/open_interest/ETHUSDT/5m/2026/02/28.parquet",),
            rows=280,
        ),
        _series("agg_trades", "SOLUSDT", None, close_ms=None, warn=15.0, error=60.0),
        _series(
            "funding",
            "BTCUSDT",
            None,
            close_ms=SCRAPE_MS - 30_000 * SECOND_MS,
            warn=28_800.0,
            error=30_600.0,
            p95=300.0,
            expected=28_800.0,
            deviation=4.0,
            last_success_ms=NOW_MS - 1000 * SECOND_MS,
            rows=3,
        ),
    )
    hour = NOW_MS - NOW_MS % HOUR_MS
    counts = (
        SignalCount("BTCUSDT", "hour", hour - 2 * HOUR_MS, "squeeze_fire", "high", 6, 2),
        SignalCount("BTCUSDT", "hour", hour - 3 * HOUR_MS, "squeeze_fire", "medium", 4, 1),
        SignalCount("BTCUSDT", "hour", hour - 3 * HOUR_MS, "squeeze_fire", "high", 5, 1),
        SignalCount("BTCUSDT", "hour", hour - 5 * HOUR_MS, "exhaustion", "high", 7, 1),
        SignalCount("ETHUSDT", "hour", hour - 8 * HOUR_MS, "exhaustion", "low", 1, 1),
        # Daily buckets span a week: not the window's counts.
        SignalCount("BTCUSDT", "day", hour - 48 * HOUR_MS, "squeeze_fire", "high", 6, 9),
    )
    signals = SignalHealth(
        window_hours=24.0,
        symbols=(
            SymbolSignals("BTCUSDT", NOW_MS - 2 * HOUR_MS, 5),
            SymbolSignals("ETHUSDT", NOW_MS - 8 * HOUR_MS, 1),
            SymbolSignals("SOLUSDT", None, 0),
        ),
        counts=counts,
    )
    created = NOW_MS - 6 * HOUR_MS
    performance = (
        PerformanceKPI("BTCUSDT", "all", "run-b", created, 40, 0.55, 0.0012, 0.30),
        PerformanceKPI("BTCUSDT", "squeeze_fire", "run-b", created, 25, 0.6, 0.002, None),
        PerformanceKPI("BTCUSDT", "exhaustion", "run-b", created, 15, None, None, None),
        PerformanceKPI("ETHUSDT", "all", "run-e", created - HOUR_MS, 10, 0.4, -0.001, 0.25),
    )
    return HealthSnapshot(
        generated_at_ms=NOW_MS,
        window_hours=24.0,
        symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
        series=series,
        signals=signals,
        performance=performance,
        now_ms=NOW_MS,
    )


# ---- the fully populated state -------------------------------------------------------------


def populate_state(
    data_dir: Path,
    *,
    evaluations: Sequence[int] = (NOW_MS, SCRAPE_MS),
    **overrides: Any,
) -> Settings:
    """Every state file the exporter reads, written by the real writers: the hand-made
    snapshot, alert evaluations at ``evaluations``, a delivery pass to two loopback receivers
    (one answers 200, one 503), a worker tick record and two report runs."""
    ok, down = Receiver(status=200), Receiver(status=503)
    try:
        settings = settings_for(
            data_dir, webhook_urls=[ok.url("/ok"), down.url("/down")], **overrides
        )
        snapshot = hand_snapshot()
        write_snapshot(settings.state_dir, snapshot)
        for at_ms in evaluations:
            evaluate(snapshot, settings, now_ms=at_ms)
        deliver(settings, now_ms=evaluations[-1])
    finally:
        ok.stop()
        down.stop()
    tick = TickResult(
        tick=7,
        pid=4242,
        started_ms=NOW_MS - 4_500,
        finished_ms=NOW_MS - 1_250,
        duration_seconds=3.25,
        outcome="ok",
        symbols=("BTCUSDT",),
        steps={"health": StepResult(seconds=0.5)},
        interval_seconds=60.0,
    )
    write_text_atomic(settings.state_dir / WORKER_STATE, json.dumps(tick.to_dict()))
    for status, finished_ms in (("success", NOW_MS - HOUR_MS), ("failed", NOW_MS - 60_000)):
        record_run(
            data_dir,
            ReportRun(
                report="integrity",
                notebook="integrity.ipynb",
                day=date(2026, 2, 28),
                status=status,
                parameters={},
                started_ms=finished_ms - 42_000,
                finished_ms=finished_ms,
                outputs={},
                failure=None if status == "success" else "cell 3 failed",
            ),
        )
    return settings


def scrape(settings: Settings, at_ms: int = SCRAPE_MS) -> CollectorRegistry:
    return build_registry(settings, clock=lambda: at_ms)


def samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def series_labels(dataset: str, symbol: str, param: str = "") -> dict[str, str]:
    return {"dataset": dataset, "symbol": symbol, "param": param}


# ---- values -----------------------------------------------------------------------------------


def test_health_metrics_match_hand_worked_values(tmp_path: Path) -> None:
    """Freshness is the scrape clock minus the last close, statuses are re-judged at the scrape,
    and every series' number is the snapshot's, in seconds and ratios."""
    settings = settings_for(tmp_path)
    write_snapshot(settings.state_dir, hand_snapshot())
    registry = scrape(settings)
    btc = series_labels("candles", "BTCUSDT", "1m")
    eth = series_labels("open_interest", "ETHUSDT", "5m")
    sol = series_labels("agg_trades", "SOLUSDT")
    funding = series_labels("funding", "BTCUSDT")

    assert value(registry, "ingmon_health_snapshot_present") == 1
    assert value(registry, "ingmon_health_snapshot_timestamp_seconds") == NOW_MS / 1000
    assert value(registry, "ingmon_health_window_seconds") == 86_400
    # 10 s old at NOW, scraped 150 s later: 160 s, between warn 90 and error 180.
    assert value(registry, "ingmon_dataset_freshness_seconds", **btc) == 160.0
    assert value(registry, "ingmon_dataset_last_event_timestamp_seconds", **btc) == (
        NOW_MS / 1000 - 10
    )
    assert value(registry, "ingmon_dataset_freshness_seconds", **eth) == 1150.0
    assert value(registry, "ingmon_dataset_freshness_seconds", **funding) == 30_000.0
    assert value(registry, "ingmon_dataset_freshness_seconds", **sol) is None
    assert value(registry, "ingmon_dataset_last_event_timestamp_seconds", **sol) is None
    assert value(registry, "ingmon_dataset_freshness_threshold_seconds", **btc, status="warn") == 90
    assert (
        value(registry, "ingmon_dataset_freshness_threshold_seconds", **eth, status="error") == 900
    )
    # State sets: exactly one status is 1. BTC candles: freshness warn (160 > 90) and the
    # open interval 158 s / 60 − 1 = 1.63 above the cadence warn ratio 1.
    expected_status = {"BTCUSDT candles": "warn", "ETHUSDT open_interest": "error"}
    expected_status |= {"SOLUSDT agg_trades": "unknown", "BTCUSDT funding": "warn"}
    for labels in (btc, eth, sol, funding):
        current = expected_status[f"{labels['symbol']} {labels['dataset']}"]
        for status in ("ok", "warn", "error", "unknown"):
            got = value(registry, "ingmon_dataset_status", **labels, status=status)
            assert got == (1.0 if status == current else 0.0), (labels, status)
    assert value(registry, "ingmon_health_status", status="error") == 1
    assert value(registry, "ingmon_health_status", status="ok") == 0

    assert value(registry, "ingmon_ingest_latency_p95_seconds", **eth) == 400.0
    assert value(registry, "ingmon_ingest_latency_p50_seconds", **eth) == 100.0
    assert value(registry, "ingmon_ingest_latency_last_seconds", **eth) == 200.0
    assert value(registry, "ingmon_ingest_latency_p95_seconds", **sol) is None
    assert value(registry, "ingmon_ingest_live_batches", **eth) == 100
    assert value(registry, "ingmon_ingest_backfill_batches", **eth) == 3
    assert value(registry, "ingmon_ingest_cadence_expected_seconds", **eth) == 300.0
    assert value(registry, "ingmon_ingest_cadence_last_interval_seconds", **eth) == 1800.0
    assert value(registry, "ingmon_ingest_cadence_deviation_ratio", **eth) == 5.0
    assert value(registry, "ingmon_ingest_cadence_last_success_timestamp_seconds", **eth) == (
        NOW_MS / 1000 - 995
    )
    assert value(registry, "ingmon_ingest_last_batch_timestamp_seconds", **btc) == (
        NOW_MS / 1000 - 8
    )
    assert value(registry, "ingmon_dataset_window_rows", **btc) == 1440
    assert value(registry, "ingmon_dataset_gaps", **eth) == 2
    assert value(registry, "ingmon_dataset_missing_rows", **eth) == 7
    assert value(registry, "ingmon_dataset_exchange_gaps", **eth) == 1
    assert value(registry, "ingmon_dataset_duplicates", **eth) == 3
    assert value(registry, "ingmon_dataset_corrupt_files", **eth) == 1
    assert value(registry, "ingmon_dataset_gaps", **btc) == 0


def test_signal_and_backtest_metrics(tmp_path: Path) -> None:
    """Signals are the window's hourly buckets summed by setup × confidence (daily buckets left
    out); backtest KPIs are ratios per symbol and setup, drawdown from the whole run only."""
    settings = settings_for(tmp_path)
    write_snapshot(settings.state_dir, hand_snapshot())
    registry = scrape(settings)

    def signals(symbol: str, setup: str, confidence: str) -> float | None:
        return value(registry, "ingmon_signals", symbol=symbol, setup=setup, confidence=confidence)

    assert signals("BTCUSDT", "squeeze_fire", "high") == 3  # 2 + 1 (the daily 9 left out)
    assert signals("BTCUSDT", "squeeze_fire", "medium") == 1
    assert signals("BTCUSDT", "exhaustion", "high") == 1
    assert signals("ETHUSDT", "exhaustion", "low") == 1
    assert signals("SOLUSDT", "exhaustion", "low") is None
    assert value(registry, "ingmon_signal_last_timestamp_seconds", symbol="BTCUSDT") == (
        NOW_MS / 1000 - 7200
    )
    assert value(registry, "ingmon_signal_last_timestamp_seconds", symbol="SOLUSDT") is None

    assert value(registry, "ingmon_backtest_hit_ratio", symbol="BTCUSDT", setup="all") == 0.55
    assert (
        value(registry, "ingmon_backtest_hit_ratio", symbol="BTCUSDT", setup="exhaustion") is None
    )
    assert value(registry, "ingmon_backtest_trades", symbol="BTCUSDT", setup="exhaustion") == 15
    assert (
        value(registry, "ingmon_backtest_expectancy_ratio", symbol="ETHUSDT", setup="all") == -0.001
    )
    assert value(registry, "ingmon_backtest_max_drawdown_ratio", symbol="BTCUSDT") == 0.30
    assert value(registry, "ingmon_backtest_max_drawdown_ratio", symbol="ETHUSDT") == 0.25
    assert value(registry, "ingmon_backtest_run_timestamp_seconds", symbol="ETHUSDT") == (
        (NOW_MS - 7 * HOUR_MS) / 1000
    )


def test_alert_webhook_worker_and_report_metrics(tmp_path: Path) -> None:
    """Alerts by state, delivery counters and the outbox from real evaluations and deliveries;
    the worker's last tick and the reports' last success from their records."""
    settings = populate_state(tmp_path)
    registry = scrape(settings)

    # At NOW: the gap (for 0), ETHUSDT's silence (8 h > 6 h, for 0) and BTCUSDT's drawdown
    # (0.30 > 0.25, for 0) fire; the stale OI feed (for 120 s), its latency and cadence (for
    # 300 s) are pending. At NOW + 150 s the stale feed fires too.
    firing = {"IngmonFeedStale", "IngmonGapDetected", "IngmonNoSignals", "IngmonDrawdownBreach"}
    pending = {"IngmonIngestLatencyHigh", "IngmonCadenceDeviation"}
    for rule in RULES.values():
        labels = {"alertname": rule.name, "severity": rule.severity}
        assert value(registry, "ingmon_alerts_firing", **labels) == (rule.name in firing)
        assert value(registry, "ingmon_alerts_pending", **labels) == (rule.name in pending)
    assert value(registry, "ingmon_alerts_firing", alertname="IngmonFeedStale", severity="critical")
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        watched = value(registry, "ingmon_signal_watch_start_timestamp_seconds", symbol=symbol)
        assert watched == NOW_MS / 1000

    # 4 firing notifications × 2 URLs: the 200 receiver took 4, the 503 one refused 4, which
    # wait in the outbox.
    assert value(registry, "ingmon_webhook_deliveries_total", outcome="success") == 4
    assert value(registry, "ingmon_webhook_deliveries_total", outcome="failure") == 4
    assert value(registry, "ingmon_webhook_outbox_pending") == 4

    assert value(registry, "ingmon_worker_last_tick_timestamp_seconds") == NOW_MS / 1000 - 1.25
    assert value(registry, "ingmon_worker_last_tick_duration_seconds") == 3.25
    assert value(registry, "ingmon_worker_last_tick_outcome", outcome="ok") == 1

    report = {"report": "integrity"}
    assert value(registry, "ingmon_report_last_success_timestamp_seconds", **report) == (
        (NOW_MS - HOUR_MS) / 1000
    )
    assert value(registry, "ingmon_report_last_run_success", **report) == 0
    assert value(registry, "ingmon_report_last_duration_seconds", **report) == 42.0
    assert value(registry, "ingmon_report_runs_total", **report) == 2
    assert value(registry, "ingmon_report_failures_total", **report) == 1
    for source in exporter.SOURCES:
        assert value(registry, "ingmon_state_read_error", source=source) == 0
    assert value(registry, "ingmon_build_info", version=ingmon.__version__) == 1


def test_every_declared_metric_is_emitted_and_well_formed(tmp_path: Path) -> None:
    """From a fully populated state the exposition holds exactly the declared families, with
    prometheus.io names (ingmon_ prefix, base units, _total counters), bounded labels only,
    and no _created series."""
    registry = scrape(populate_state(tmp_path))
    body, _ = exposition(registry, "")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    declared = {spec.name.removesuffix("_total"): spec for spec in METRICS}
    assert set(families) == set(declared)
    for name, spec in declared.items():
        family = families[name]
        assert family.type == spec.kind
        assert re.fullmatch(r"ingmon_[a-z0-9_]+", spec.name)
        assert spec.name.endswith("_total") == (spec.kind == "counter")
        assert not re.search(r"_(ms|milliseconds|percent|minutes|hours)(_|$)", spec.name)
        assert set(spec.labels) <= ALLOWED_LABELS, spec.name
        for sample in family.samples:
            assert set(sample.labels) == set(spec.labels), sample
    assert b"_created" not in body


# ---- exposition --------------------------------------------------------------------------------


def _promtool_check_metrics(body: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "metrics"],
        input=body.decode(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_promtool_accepts_the_text_exposition(tmp_path: Path) -> None:
    """`promtool check metrics` finds nothing to lint in the 0.0.4 text body of a full state."""
    body, content_type = exposition(scrape(populate_state(tmp_path)), "")
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    result = _promtool_check_metrics(body)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (result.stdout + result.stderr).strip()


def test_promtool_accepts_the_openmetrics_exposition(tmp_path: Path) -> None:
    """`promtool check metrics` on the OpenMetrics body: no problem but one promtool 2.42 reads
    into every counter (it parses OpenMetrics as text 0.0.4, so the HELP of the family
    ``x`` does not cover the sample ``x_total``)."""
    body, content_type = exposition(scrape(populate_state(tmp_path)), OPENMETRICS_ACCEPT)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")
    result = _promtool_check_metrics(body)
    counters = {spec.name for spec in METRICS if spec.kind == "counter"}
    problems = {line for line in result.stdout.splitlines() + result.stderr.splitlines() if line}
    assert problems <= {f"{name} no help text" for name in counters}, problems
    # The same body without the counters is clean: nothing else is wrong with it.
    counter_line = re.compile(
        rf"(# (HELP|TYPE) )?({'|'.join(n.removesuffix('_total') for n in counters)})(_total)?[ {{]"
    )
    kept = [
        line for line in body.decode().splitlines(keepends=True) if not counter_line.match(line)
    ]
    assert len(kept) < len(body.decode().splitlines())
    clean = _promtool_check_metrics("".join(kept).encode())
    assert clean.returncode == 0, clean.stdout + clean.stderr


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("", "text/plain; version=0.0.4; charset=utf-8"),
        ("text/plain;version=0.0.4;q=0.5,*/*;q=0.1", "text/plain; version=0.0.4; charset=utf-8"),
        (OPENMETRICS_ACCEPT, "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (
            "application/openmetrics-text",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    ],
)
def test_content_negotiation(tmp_path: Path, accept: str, content_type: str) -> None:
    """The Accept header picks the format (choose_encoder): OpenMetrics when asked, else 0.0.4."""
    body, got = exposition(scrape(settings_for(tmp_path)), accept)
    assert got.split("; escaping")[0] == content_type
    assert body.startswith(b"# HELP ")
    assert body.endswith(b"# EOF\n") == got.startswith("application/openmetrics-text")


# ---- robustness --------------------------------------------------------------------------------


def test_no_state_yet_still_answers(tmp_path: Path) -> None:
    """Before the worker ever ran (no state directory), a scrape gives the build info, the
    snapshot's absence and zero alerts and deliveries, and no error."""
    registry = scrape(settings_for(tmp_path / "fresh"))
    assert value(registry, "ingmon_build_info", version=ingmon.__version__) == 1
    assert value(registry, "ingmon_health_snapshot_present") == 0
    assert value(registry, "ingmon_health_snapshot_timestamp_seconds") is None
    assert value(registry, "ingmon_webhook_deliveries_total", outcome="success") == 0
    assert value(registry, "ingmon_webhook_outbox_pending") == 0
    assert (
        value(registry, "ingmon_alerts_firing", alertname="IngmonFeedStale", severity="critical")
        == 0
    )
    assert value(registry, "ingmon_worker_last_tick_timestamp_seconds") is None
    for source in exporter.SOURCES:
        assert value(registry, "ingmon_state_read_error", source=source) == 0


def test_unreadable_state_files_are_flagged_not_raised(tmp_path: Path) -> None:
    """A torn health.json, worker.json or reports.json sets ingmon_state_read_error for its
    source; the rest of the scrape (alerts, webhooks) still answers, and promtool accepts it."""
    settings = populate_state(tmp_path)
    for name in ("health.json", WORKER_STATE, "reports.json"):
        (settings.state_dir / name).write_text('{"torn', encoding="utf-8")
    registry = scrape(settings)
    errors = {s: value(registry, "ingmon_state_read_error", source=s) for s in exporter.SOURCES}
    assert errors == {"health": 1, "alerts": 0, "webhooks": 0, "worker": 1, "reports": 1}
    assert value(registry, "ingmon_health_snapshot_present") == 0
    assert (
        value(
            registry,
            "ingmon_dataset_freshness_seconds",
            **series_labels("candles", "BTCUSDT", "1m"),
        )
        is None
    )
    assert value(registry, "ingmon_webhook_deliveries_total", outcome="success") == 4
    body, _ = exposition(registry, "")
    assert _promtool_check_metrics(body).returncode == 0


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("alerts.json", '{"torn'),
        ("alerts.json", "[]"),
        ("webhooks.json", '{"torn'),
        ("webhooks.json", '{"counts": {"success": "many"}}'),
    ],
)
def test_damaged_alert_and_delivery_state_is_flagged_not_read_as_zero(
    tmp_path: Path, name: str, text: str
) -> None:
    """A torn or foreign alerts.json / webhooks.json sets the read error of its source (its
    metrics left out) instead of passing for "no alerts" / "no deliveries"; the rest answers."""
    settings = populate_state(tmp_path)
    (settings.state_dir / name).write_text(text, encoding="utf-8")
    registry = scrape(settings)
    source = name.removesuffix(".json")
    errors = {s: value(registry, "ingmon_state_read_error", source=s) for s in exporter.SOURCES}
    assert errors == {s: 1 if s == source else 0 for s in exporter.SOURCES}
    firing = {"alertname": "IngmonFeedStale", "severity": "critical"}
    if source == "alerts":
        assert value(registry, "ingmon_alerts_firing", **firing) is None
        assert value(registry, "ingmon_webhook_deliveries_total", outcome="success") == 4
    else:
        assert value(registry, "ingmon_webhook_deliveries_total", outcome="success") is None
        assert value(registry, "ingmon_alerts_firing", **firing) == 1
    assert value(registry, "ingmon_health_snapshot_present") == 1


def _absurd(snapshot: dict[str, Any], which: str) -> None:
    first = snapshot["series"][0]
    if which == "expected_seconds_0":
        first["cadence"]["expected_seconds"] = 0
    elif which == "warn_seconds_0":
        first["freshness"]["warn_seconds"] = 0
    elif which == "generated_in_year_5e6":
        snapshot["generated_at_ms"] = 10**17
    elif which == "last_event_in_year_5e6":
        first["freshness"]["last_event_close_ms"] = 10**17
    elif which == "window_negative":
        snapshot["window_hours"] = -1


ABSURD = (
    "expected_seconds_0",
    "warn_seconds_0",
    "generated_in_year_5e6",
    "last_event_in_year_5e6",
    "window_negative",
)


@pytest.mark.parametrize("which", ABSURD)
def test_a_snapshot_with_impossible_values_is_a_read_error(tmp_path: Path, which: str) -> None:
    """A well-formed health.json with a value no writer produces (a zero expected interval or
    warn age, a time in the year 5 000 000, a negative window) is flagged like a torn one —
    read error 1, its metrics left out — and the scrape still answers in both formats."""
    settings = populate_state(tmp_path)
    path = settings.state_dir / "health.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    _absurd(document, which)
    path.write_text(json.dumps(document), encoding="utf-8")
    registry = scrape(settings)
    errors = {s: value(registry, "ingmon_state_read_error", source=s) for s in exporter.SOURCES}
    assert errors == {s: 1 if s == "health" else 0 for s in exporter.SOURCES}
    assert value(registry, "ingmon_health_snapshot_present") == 0
    assert value(registry, "ingmon_health_status", status="error") is None
    assert value(registry, "ingmon_worker_last_tick_duration_seconds") == 3.25
    for accept in ("", OPENMETRICS_ACCEPT):
        body, _ = exposition(registry, accept)
        assert b'ingmon_state_read_error{source="health"} 1.0' in body


def test_snapshot_problem_names_the_value() -> None:
    """snapshot_problem: None for a sound snapshot; else the first bad field, and how many
    more there are."""
    sound = hand_snapshot()
    assert exporter.snapshot_problem(sound) is None
    document = sound.to_dict()
    document["series"][0]["cadence"]["expected_seconds"] = 0
    document["generated_at_ms"] = 10**17
    problem = exporter.snapshot_problem(HealthSnapshot.from_dict(document))
    assert problem == (
        "generated_at_ms 100000000000000000 is not a time in 1970..9999 (and 1 more)"
    )


def test_snapshot_is_parsed_again_only_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scrapes reuse the parsed snapshot while health.json is the same file (ages still move with
    the clock) and pick up a rewritten one at once."""
    settings = settings_for(tmp_path)
    write_snapshot(settings.state_dir, hand_snapshot())
    reads: list[Path] = []

    def counted(state_dir: Path) -> HealthSnapshot | None:
        reads.append(state_dir)
        return read_snapshot(state_dir)

    monkeypatch.setattr(exporter, "read_snapshot", counted)
    clock = [SCRAPE_MS]
    registry = build_registry(settings, clock=lambda: clock[0])
    btc = series_labels("candles", "BTCUSDT", "1m")
    assert value(registry, "ingmon_dataset_freshness_seconds", **btc) == 160.0
    clock[0] += 60 * SECOND_MS
    assert value(registry, "ingmon_dataset_freshness_seconds", **btc) == 220.0
    assert len(reads) == 1

    later = hand_snapshot()
    newer = SeriesStatus.at(
        _series("candles", "BTCUSDT", "1m", close_ms=NOW_MS + 200 * SECOND_MS, warn=90, error=180),
        NOW_MS,
    )
    write_snapshot(
        settings.state_dir,
        HealthSnapshot(
            generated_at_ms=NOW_MS + 205 * SECOND_MS,
            window_hours=later.window_hours,
            symbols=later.symbols,
            series=(newer,),
            signals=later.signals,
            performance=later.performance,
            now_ms=NOW_MS + 205 * SECOND_MS,
        ),
    )
    assert value(registry, "ingmon_dataset_freshness_seconds", **btc) == 10.0
    assert (
        value(registry, "ingmon_dataset_gaps", **series_labels("open_interest", "ETHUSDT", "5m"))
        is None
    )
    assert len(reads) == 2


def test_registering_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the registry does no I/O: describe() names the families, and the state is
    read per scrape only."""
    calls: list[str] = []
    real = exporter.IngmonCollector.families

    def counted(self: exporter.IngmonCollector, at_ms: int, part: Any = "all") -> Any:
        calls.append(part)
        return real(self, at_ms, part)

    monkeypatch.setattr(exporter.IngmonCollector, "families", counted)
    registry = build_registry(settings_for(tmp_path))
    assert calls == []
    exposition(registry, "")
    assert sorted(calls) == ["clock", "state"]
    assert value(registry, "ingmon_health_snapshot_present") == 0
    assert sorted(calls) == ["all", "clock", "state"]


def test_a_scrape_never_reads_the_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a real lake behind the snapshot, scrapes still answer when every way into the lake
    raises: the exporter reads only the state files. Freshness is clock − the last candle close."""
    settings = settings_for(tmp_path)
    lake = Lake(settings.lake_dir)
    healthy_lake(lake)
    snapshot = build_snapshot(lake, settings, symbols=["BTCUSDT"], now_ms=NOW_MS)
    write_snapshot(settings.state_dir, snapshot)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the exporter read the lake")

    for name in ("__init__", "read", "scan", "files", "symbols", "key_range", "find_corrupt"):
        monkeypatch.setattr(Lake, name, forbidden)
    monkeypatch.setattr("duckdb.connect", forbidden)
    for name in ("read_table", "ParquetFile", "read_metadata"):
        monkeypatch.setattr(f"pyarrow.parquet.{name}", forbidden)

    registry = scrape(settings, at_ms=NOW_MS + 30 * SECOND_MS)
    # live_feed's newest candle opened at NOW − 2 min (its batch, written 2 s after the close,
    # must be before NOW), so it closed at NOW − 1 min: 90 s old 30 s after NOW.
    candles = series_labels("candles", "BTCUSDT", "1m")
    assert value(registry, "ingmon_dataset_freshness_seconds", **candles) == 90.0
    assert value(registry, "ingmon_dataset_last_event_timestamp_seconds", **candles) == (
        (NOW_MS - MINUTE_MS) / 1000
    )
    assert value(
        registry, "ingmon_dataset_freshness_threshold_seconds", **candles, status="error"
    ) == (settings.freshness("candles").error_seconds)
    assert value(registry, "ingmon_state_read_error", source="health") == 0
    for _ in range(3):
        body, _ = exposition(registry, "")
        assert b"ingmon_dataset_freshness_seconds{" in body


def _without_duration(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = samples(body)
    return {
        key: v for key, v in found.items() if key[0] != "ingmon_exporter_collect_duration_seconds"
    }


def test_cached_bodies_follow_the_clock_and_the_state_files(tmp_path: Path) -> None:
    """exposition() serves the same samples as a fresh rendering of the registry: ages move with
    each new second of the clock, and a rewritten state file shows at once; the OpenMetrics
    body of the two cached parts ends in a single # EOF."""
    settings = populate_state(tmp_path)
    clock = [SCRAPE_MS]
    registry = build_registry(settings, clock=lambda: clock[0])
    from prometheus_client.exposition import generate_latest

    first, _ = exposition(registry, "")
    assert _without_duration(first) == _without_duration(generate_latest(registry))
    btc = (
        "ingmon_dataset_freshness_seconds",
        frozenset(series_labels("candles", "BTCUSDT", "1m").items()),
    )
    assert samples(first)[btc] == 160.0
    assert exposition(registry, "")[0] == first  # same second, same files: the cached body

    clock[0] += 60 * SECOND_MS
    later, _ = exposition(registry, "")
    assert samples(later)[btc] == 220.0
    assert _without_duration(later) == _without_duration(generate_latest(registry))

    record_run(
        tmp_path,
        ReportRun(
            report="integrity",
            notebook="integrity.ipynb",
            day=date(2026, 3, 1),
            status="success",
            parameters={},
            started_ms=NOW_MS,
            finished_ms=NOW_MS + 5_000,
            outputs={},
        ),
    )
    runs = ("ingmon_report_runs_total", frozenset({("report", "integrity")}))
    assert samples(exposition(registry, "")[0])[runs] == 3

    openmetrics, _ = exposition(registry, OPENMETRICS_ACCEPT)
    assert openmetrics.count(b"# EOF") == 1 and openmetrics.endswith(b"# EOF\n")


def test_only_the_clock_families_move_with_the_clock(tmp_path: Path) -> None:
    """Judged an hour apart on the same files, only CLOCK_FAMILIES differ: the split between
    the cached state part and the per-second clock part loses nothing."""
    settings = populate_state(tmp_path)
    early = _without_duration(exposition(scrape(settings), "")[0])
    late = _without_duration(exposition(scrape(settings, at_ms=SCRAPE_MS + HOUR_MS), "")[0])
    moved = {key[0] for key in early.keys() | late.keys() if early.get(key) != late.get(key)}
    assert moved <= exporter.CLOCK_FAMILIES
    assert {"ingmon_dataset_freshness_seconds", "ingmon_dataset_status"} <= moved

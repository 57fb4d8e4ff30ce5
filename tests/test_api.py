"""The JSON API and /metrics/prometheus: the documents judged at an injected instant, then the
real ``ingmon serve`` over loopback (routes, shapes against the OpenAPI document, 400/404/405,
login, bearer token, the dashboard) and a real Prometheus server scraping it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jsonschema
import pytest

from ingmon.api import (
    COMPONENTS,
    ROUTES,
    backtest_document,
    backtests_page,
    documents,
    format_duration,
    freshness_document,
    health_document,
    metrics_document,
    openapi_document,
    queries,
    signals_page,
)
from ingmon.api.cache import TTLCache
from ingmon.api.params import SIGNALS_PARAMETERS
from ingmon.api.state import monitor_state
from ingmon.backtest import BacktestRun
from ingmon.config import Settings, load_settings
from ingmon.demo import DEMO_SYMBOLS
from ingmon.lake import Lake
from ingmon.monitor.alerts import evaluate
from ingmon.monitor.health import build_snapshot, write_snapshot
from ingmon.reports.state import write_text_atomic
from ingmon.times import HOUR_MS, MINUTE_MS, SECOND_MS, iso_ms, now_ms
from tests.monitor._lake import (
    NOW_MS,
    damage_partition,
    healthy_lake,
    live_feed,
    partition_version,
    save_backtest,
    signal_row,
    write_signals,
)

INGMON = str(Path(sys.executable).with_name("ingmon"))
PROMETHEUS = Path("/usr/bin/prometheus")
STALE_SYMBOL = "SOLUSDT"


# ---- a data root with known state --------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """A data root whose state was computed at ``now_ms``, and what was put in it."""

    root: Path
    now_ms: int
    settings: Settings
    runs: dict[str, BacktestRun]  # by symbol
    signal_opens_ms: dict[str, list[int]]  # by symbol, newest first
    stale_close_ms: int  # close of the stale symbol's newest candle


def build_state(root: Path, *, now: int) -> State:
    """BTCUSDT and ETHUSDT healthy on all four datasets; SOLUSDT's candles stopped an hour
    before ``now`` (its other datasets were never stored); signals, two saved runs, the health
    snapshot, the alerts (stale feeds fire at once) and a worker tick 30 s before ``now``."""
    settings = load_settings(env_file=None, data_dir=root)
    lake = Lake(settings.lake_dir)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        healthy_lake(lake, symbol=symbol, now_ms=now)
    stopped = now - now % MINUTE_MS - HOUR_MS
    live_feed(lake, symbol=STALE_SYMBOL, dataset="candles", now_ms=now, until_ms=stopped)
    # A batch is written 2 s after its candle closes, and only batches before `stopped` are:
    # the last candle opened 2 minutes before `stopped`.
    stale_close_ms = stopped - 2 * MINUTE_MS + MINUTE_MS
    bar = now - now % (15 * MINUTE_MS)
    opens = {
        "BTCUSDT": [bar - 15 * MINUTE_MS, bar - 2 * HOUR_MS, bar - 3 * HOUR_MS],
        "ETHUSDT": [bar - 30 * HOUR_MS],
    }
    write_signals(
        lake,
        [
            signal_row(bar_open_ms=opens["BTCUSDT"][0], setup="squeeze_fire", score=5),
            signal_row(
                bar_open_ms=opens["BTCUSDT"][1], setup="absorption", score=3, confidence="low"
            ),
            signal_row(bar_open_ms=opens["BTCUSDT"][2], setup="exhaustion", score=None),
        ],
        symbol="BTCUSDT",
        scored_at_ms=now,
    )
    write_signals(
        lake,
        [signal_row(bar_open_ms=opens["ETHUSDT"][0], setup="squeeze_fire", score=6)],
        symbol="ETHUSDT",
        scored_at_ms=now,
    )
    runs = {
        "BTCUSDT": save_backtest(
            lake, symbol="BTCUSDT", created_at_ms=now - 2 * HOUR_MS, run_id="bt-older", seed=5
        ),
        "ETHUSDT": save_backtest(
            lake, symbol="ETHUSDT", created_at_ms=now - HOUR_MS, run_id="bt-newer", seed=6
        ),
    }
    snapshot = build_snapshot(lake, settings, now_ms=now)
    write_snapshot(settings.state_dir, snapshot)
    evaluate(
        snapshot,
        load_settings(env_file=None, data_dir=root, alert_stale_for_seconds=0),
        now_ms=now,
    )
    worker = {
        "schema": "ingmon.worker/v1",
        "started_ms": now - 33 * SECOND_MS,
        "finished_ms": now - 30 * SECOND_MS,
        "duration_seconds": 3.0,
        "outcome": "ok",
        "interval_seconds": 60.0,
    }
    (settings.state_dir / "worker.json").write_text(json.dumps(worker), encoding="utf-8")
    return State(root, now, settings, runs, opens, stale_close_ms)


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> State:
    """A data root built around the round instant NOW_MS."""
    return build_state(tmp_path_factory.mktemp("fixed"), now=NOW_MS)


# ---- the documents at an injected instant -------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (5, "5s"),
        (192, "3m 12s"),
        (3600, "1h 0m"),
        (3720, "1h 2m"),
        (90_000, "1d 1h"),
        (59.6, "1m 0s"),
        (-3, "-3s"),
        (None, "–"),
    ],
)
def test_durations_show_their_two_largest_units(seconds: float | None, text: str) -> None:
    """format_duration: compact, two most significant units, – when unknown."""
    assert format_duration(seconds) == text


def test_health_judges_each_component_at_the_given_instant(fixed: State) -> None:
    """/api/health at the snapshot's instant: the stale feed makes ingestion an error, the
    firing critical alert makes alerts an error, the worker's tick 30 s old is ok."""
    health = health_document(fixed.settings, now_ms=fixed.now_ms)
    components = health["components"]
    assert list(components) == list(COMPONENTS)
    assert health["status"] == "error"
    assert components["ingestion"]["status"] == "error"
    assert f"worst candles 1m {STALE_SYMBOL} (error)" in components["ingestion"]["summary"]
    assert components["snapshot"] == {
        "status": "ok",
        "summary": "health snapshot written 0s ago",
        "hint": None,
        "as_of": iso_ms(fixed.now_ms),
        "age_seconds": 0.0,
    }
    assert components["worker"]["status"] == "ok"
    assert components["worker"]["summary"] == "last tick 30s ago (every 1m 0s)"
    assert components["worker"]["age_seconds"] == 30.0
    assert components["alerts"]["status"] == "error"  # IngmonFeedStale is critical
    assert "IngmonFeedStale" in components["alerts"]["summary"]
    # ETHUSDT's only signal is 30 h old: more than the 6 h alert_no_signals_seconds.
    assert components["signals"]["status"] == "warn"
    assert "ETHUSDT" in components["signals"]["summary"]
    assert components["performance"]["status"] == "ok"


def test_health_ages_grow_between_snapshots(fixed: State) -> None:
    """Judged later than the snapshot: the worker turns warn past 2 intervals (120 s) and error
    past 5 (300 s); the snapshot's own age is reported; the boundary itself is still ok."""

    def worker_at(seconds_after_tick: float) -> dict[str, Any]:
        at = fixed.now_ms - 30 * SECOND_MS + round(seconds_after_tick * 1000)
        component: dict[str, Any] = health_document(fixed.settings, now_ms=at)["components"][
            "worker"
        ]
        return component

    assert worker_at(120)["status"] == "ok"
    assert worker_at(121)["status"] == "warn"
    assert worker_at(300)["status"] == "warn"
    assert worker_at(301)["status"] == "error"
    assert worker_at(301)["hint"] == "the worker is late or stopped: is `ingmon worker` running?"
    later = health_document(fixed.settings, now_ms=fixed.now_ms + 400 * SECOND_MS)
    assert later["components"]["snapshot"]["status"] == "error"
    assert later["components"]["snapshot"]["age_seconds"] == 400.0


def test_health_without_state_is_unknown_with_a_hint(tmp_path: Path) -> None:
    """No state files at all: every component but alerts is unknown and says what to run."""
    settings = load_settings(env_file=None, data_dir=tmp_path)
    health = health_document(settings, now_ms=NOW_MS)
    assert health["status"] == "unknown"
    assert health["components"]["alerts"]["status"] == "ok"
    for name in ("ingestion", "signals", "performance", "snapshot"):
        assert health["components"][name]["status"] == "unknown"
        assert "ingmon health" in health["components"][name]["hint"]
    assert health["components"]["worker"]["hint"] == "start it: `ingmon worker` (systemd unit)"


def test_freshness_is_worst_first_and_re_judged_at_request_time(fixed: State) -> None:
    """/api/freshness: the stale candles first with their age at ``now``; ten seconds after the
    snapshot, BTCUSDT's trades (last one 10 s before ``now``, warn above 15 s) turn warn."""
    document = freshness_document(fixed.settings, now_ms=fixed.now_ms)
    first = document["items"][0]
    assert (first["dataset"], first["symbol"], first["status"]) == (
        "candles",
        STALE_SYMBOL,
        "error",
    )
    assert first["age_seconds"] == (fixed.now_ms - fixed.stale_close_ms) / 1000 == 3660.0
    assert first["last_event_at"] == iso_ms(fixed.stale_close_ms)
    assert document["count"] == 12 == sum(document["counts"].values())
    ranks = ["error", "warn", "unknown", "ok"]
    assert [ranks.index(i["status"]) for i in document["items"]] == sorted(
        ranks.index(i["status"]) for i in document["items"]
    )

    def trades_status(at: int) -> str:
        items = freshness_document(
            fixed.settings, now_ms=at, symbols=["BTCUSDT"], datasets=["agg_trades"]
        )["items"]
        assert len(items) == 1
        return str(items[0]["status"])

    assert trades_status(fixed.now_ms) == "ok"
    assert trades_status(fixed.now_ms + 10 * SECOND_MS) == "warn"
    only_ok = freshness_document(fixed.settings, now_ms=fixed.now_ms, statuses=["ok"])
    assert {i["status"] for i in only_ok["items"]} == {"ok"}
    assert {i["symbol"] for i in only_ok["items"]} == {"BTCUSDT", "ETHUSDT"}


def test_metrics_document_carries_the_latest_runs_and_signal_counts(fixed: State) -> None:
    """/api/metrics: the performance rows are the saved runs' own numbers (wins = hit rate ×
    trades); the signal totals are what was stored inside the 24 h window."""
    metrics = metrics_document(fixed.settings, now_ms=fixed.now_ms)
    whole = {r["symbol"]: r for r in metrics["performance"]["runs"] if r["setup"] == "all"}
    for symbol, run in fixed.runs.items():
        trades = run.overall.result.trades
        wins = int((trades["net_return"] > 0).sum())
        assert whole[symbol]["run_id"] == run.run_id
        assert whole[symbol]["trades"] == len(trades)
        assert whole[symbol]["wins"] == wins
        assert whole[symbol]["losses"] == len(trades) - wins
        assert whole[symbol]["max_drawdown"] == pytest.approx(run.overall.metrics["max_drawdown"])
    signals = metrics["signals"]
    assert signals["total"] == 3  # BTCUSDT's three; ETHUSDT's is 30 h old
    assert signals["by_setup"] == {"absorption": 1, "exhaustion": 1, "squeeze_fire": 1}
    by_symbol = {s["symbol"]: s for s in signals["symbols"]}
    newest_close = fixed.signal_opens_ms["BTCUSDT"][0] + 15 * MINUTE_MS
    assert by_symbol["BTCUSDT"]["since_last_signal_seconds"] == pytest.approx(
        (fixed.now_ms - newest_close) / 1000, abs=0.002
    )
    assert metrics["alerts"]["firing"] >= 1
    assert metrics["worker"] == {
        "last_tick_at": iso_ms(fixed.now_ms - 30 * SECOND_MS),
        "age_seconds": 30.0,
        "outcome": "ok",
        "duration_seconds": 3.0,
        "interval_seconds": 60.0,
    }
    assert metrics["ingestion"]["series"][0]["symbol"] == STALE_SYMBOL


def test_signal_pages_are_newest_first_and_filtered(fixed: State) -> None:
    """/api/signals: newest bar first, min_score drops lower and unscored signals, since/until
    bound the bar's open, the audit record is the score's own."""
    total, items = signals_page(fixed.settings)
    opens = sorted((o for v in fixed.signal_opens_ms.values() for o in v), reverse=True)
    assert total == 4
    assert [i["bar_open_time"] for i in items] == [iso_ms(o) for o in opens]
    total, items = signals_page(fixed.settings, min_score=4)
    assert total == 2 and {i["score"] for i in items} == {5, 6}
    since = fixed.signal_opens_ms["BTCUSDT"][1]
    total, items = signals_page(fixed.settings, since_ms=since, until_ms=fixed.now_ms)
    assert [i["setup"] for i in items] == ["squeeze_fire", "absorption"]
    total, items = signals_page(fixed.settings, symbols=["BTCUSDT"], limit=1, offset=2)
    assert total == 3 and [i["setup"] for i in items] == ["exhaustion"]
    _, items = signals_page(fixed.settings, symbols=["BTCUSDT"], audit=True)
    audits = {i["setup"]: i["audit"] for i in items}
    assert audits["exhaustion"] is None  # never scored
    assert audits["squeeze_fire"]["score"] == 5
    assert audits["squeeze_fire"]["score_id"] == items[0]["score_id"]
    assert audits["absorption"]["confidence"] == "low"


def test_backtest_pages_are_newest_first_with_details(fixed: State) -> None:
    """/api/backtests: newest run first, by symbol; one run with its document and trades."""
    total, items = backtests_page(fixed.settings, limit=10, offset=0)
    assert total == 2 and [i["run_id"] for i in items] == ["bt-newer", "bt-older"]
    assert items[0]["created_at"] == iso_ms(fixed.now_ms - HOUR_MS)
    _, only = backtests_page(fixed.settings, symbols=["BTCUSDT"], limit=10, offset=0)
    assert [i["run_id"] for i in only] == ["bt-older"]
    detail = backtest_document(fixed.settings, "bt-older", trades=True)
    assert detail is not None
    run = fixed.runs["BTCUSDT"]
    assert detail["document"]["run_id"] == "bt-older"
    assert len(detail["trades"]) == len(run.overall.result.trades)
    assert backtest_document(fixed.settings, "bt-missing") is None


def test_requests_read_only_what_they_show(fixed: State, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lake reads per request: a signals page reads no audit JSON (``audit=true`` reads it for
    the page's symbols and bars only), filters prune the read; a run's detail reads its own
    partition (created_at) and its symbol's trades over its data span, once per run."""
    monkeypatch.setattr(queries, "_LAKE", TTLCache(5.0))
    monkeypatch.setattr(queries, "_RUNS", TTLCache(60.0))
    reads: list[dict[str, Any]] = []
    real_read = Lake.read

    def recording(self: Lake, ds: Any, **kwargs: Any) -> Any:
        reads.append({"dataset": getattr(ds, "name", ds), **kwargs})
        return real_read(self, ds, **kwargs)

    monkeypatch.setattr(Lake, "read", recording)
    signals_page(fixed.settings)
    assert [read["dataset"] for read in reads] == ["signals", "scores"]
    assert not set(reads[1]["columns"]) & set(queries.AUDIT_JSON)
    reads.clear()
    since = fixed.signal_opens_ms["BTCUSDT"][1]
    _, items = signals_page(fixed.settings, symbols=["BTCUSDT"], since_ms=since, audit=True)
    assert [(r["dataset"], r["symbols"], r["start"]) for r in reads[:2]] == [
        ("signals", ["BTCUSDT"], since),
        ("scores", ["BTCUSDT"], since),
    ]
    (audit,) = reads[2:]
    assert set(queries.AUDIT_JSON) <= set(audit["columns"])
    assert (audit["symbols"], audit["start"], audit["end"]) == (
        ["BTCUSDT"],
        since,
        fixed.signal_opens_ms["BTCUSDT"][0],
    )
    assert items[0]["audit"]["score"] == 5
    reads.clear()
    run = fixed.runs["BTCUSDT"]
    detail = backtest_document(fixed.settings, "bt-older", trades=True)
    assert detail is not None and len(detail["trades"]) == len(run.overall.result.trades)
    by_dataset = {read["dataset"]: read for read in reads}
    created = iso_ms(fixed.now_ms - 2 * HOUR_MS)
    runs_read = by_dataset["backtest_runs"]
    assert (runs_read["symbols"], runs_read["start"], runs_read["end"]) == (
        "BTCUSDT",
        created,
        created,
    )
    trades_read = by_dataset["backtest_trades"]
    assert (trades_read["start"], trades_read["end"]) == (
        detail["run"]["data_start"],
        detail["run"]["data_end"],
    )
    reads.clear()
    assert backtest_document(fixed.settings, "bt-older", trades=True) == detail
    assert reads == []  # the headline list, the run and its trades: all cached


# ---- the worker's own settings, damaged state ----------------------------------------------------


def state_copy(fixed: State, root: Path) -> Settings:
    """Settings for a data root holding a copy of ``fixed``'s state files (the documents read
    nothing else), which a test may then change."""
    settings = load_settings(env_file=None, data_dir=root)
    shutil.copytree(fixed.settings.state_dir, settings.state_dir)
    return settings


def edit_state(settings: Settings, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite one state file (atomically, as the worker does) after ``change``."""
    path = settings.state_dir / name
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    write_text_atomic(path, json.dumps(document))


def test_ages_are_judged_with_the_workers_own_interval(fixed: State, tmp_path: Path) -> None:
    """The worker runs every 600 s (its own env file), the server's setting is 60 s: 400 s
    after the snapshot, its age is within 2 × 600 s, so ok (by the server's 60 s it would be an
    error past 300 s). Without an interval in worker.json (a --once tick) the snapshot's
    settings_used says 600 s; without either, the server's 60 s applies."""
    settings = state_copy(fixed, tmp_path)
    edit_state(settings, "worker.json", lambda doc: doc.update(interval_seconds=600.0))
    later = fixed.now_ms + 400 * SECOND_MS

    def components() -> dict[str, Any]:
        document: dict[str, Any] = health_document(settings, now_ms=later)["components"]
        return document

    assert components()["snapshot"]["status"] == "ok"
    assert components()["worker"]["summary"] == "last tick 7m 10s ago (every 10m 0s)"
    assert metrics_document(settings, now_ms=later)["worker"]["interval_seconds"] == 600.0
    edit_state(settings, "worker.json", lambda doc: doc.update(interval_seconds=None))
    edit_state(
        settings,
        "health.json",
        lambda doc: doc["settings_used"].update(worker_interval_seconds=600),
    )
    assert components()["snapshot"]["status"] == "ok"
    assert components()["worker"]["status"] == "ok"  # 430 s <= 2 × 600 s
    edit_state(settings, "health.json", lambda doc: doc["settings_used"].clear())
    assert components()["snapshot"]["status"] == "error"  # 400 s > 5 × 60 s
    assert components()["worker"]["status"] == "error"


def test_signal_and_drawdown_limits_are_the_workers(fixed: State, tmp_path: Path) -> None:
    """The limits the snapshot was judged with (settings_used) apply, not the server's (6 h):
    with a 40 h no-signals limit ETHUSDT's 30 h silence is fine; a drawdown exactly at the limit is
    fine (the alert fires only beyond it), a hair above the limit is a warn."""
    settings = state_copy(fixed, tmp_path)
    deepest = max(run.overall.metrics["max_drawdown"] for run in fixed.runs.values())
    assert deepest > 0

    def judged(**used: float) -> dict[str, Any]:
        edit_state(settings, "health.json", lambda doc: doc["settings_used"].update(used))
        document: dict[str, Any] = health_document(settings, now_ms=fixed.now_ms)["components"]
        return document

    # ETHUSDT is quiet for 30 h; SOLUSDT never had a signal (unknown, not quiet).
    patient = judged(alert_no_signals_seconds=40 * 3600)["signals"]
    assert (patient["status"], patient["summary"].split("; ")[1]) == (
        "unknown",
        "never a signal: SOLUSDT",
    )
    strict = judged(alert_no_signals_seconds=29 * 3600)["signals"]
    assert (strict["status"], strict["summary"].split("; ")[1]) == (
        "warn",
        "none for over 1d 5h: ETHUSDT",
    )
    assert judged(alert_max_drawdown_ratio=deepest)["performance"]["status"] == "ok"
    limit = deepest * (1 - 1e-9)
    performance = judged(alert_max_drawdown_ratio=limit)["performance"]
    assert performance["status"] == "warn"
    assert f"limit {100 * limit:.1f} %" in performance["summary"]


def validate_documents(settings: Settings, now: int) -> dict[str, Any]:
    """The three state documents at ``now``, each valid against its OpenAPI schema; health's."""
    health = health_document(settings, now_ms=now)
    jsonschema.validate(health, schema_of("Health"))
    jsonschema.validate(metrics_document(settings, now_ms=now), schema_of("Metrics"))
    jsonschema.validate(freshness_document(settings, now_ms=now), schema_of("Freshness"))
    return health


@pytest.mark.parametrize(
    ("name", "component", "text"),
    [
        ("health.json", "snapshot", '{"torn'),
        ("health.json", "snapshot", '{"schema": "ingmon.health/v1"}'),
        ("alerts.json", "alerts", '{"torn'),
        ("alerts.json", "alerts", "[]"),
        ("worker.json", "worker", '{"torn'),
        ("worker.json", "worker", '{"finished_ms": 100000000000000000}'),
    ],
)
def test_a_damaged_state_file_is_named_not_taken_for_absent(
    fixed: State, tmp_path: Path, name: str, component: str, text: str
) -> None:
    """A torn or foreign state file makes its component an error whose summary names the file
    (not "no health snapshot yet"), with what repairs it; the other sources keep answering."""
    settings = state_copy(fixed, tmp_path)
    write_text_atomic(settings.state_dir / name, text)
    health = validate_documents(settings, fixed.now_ms)
    components = health["components"]
    assert components[component]["status"] == "error"
    assert components[component]["summary"].startswith(f"state/{name} is damaged (")
    assert "ingmon worker" in components[component]["hint"]
    if name == "health.json":
        for part in ("ingestion", "signals", "performance"):
            assert components[part]["status"] == "unknown"
            assert components[part]["summary"] == components["snapshot"]["summary"]
        assert components["worker"]["status"] == "ok"
    else:
        assert components["ingestion"]["status"] == "error"  # the stale feed, as before
        assert components["snapshot"]["status"] == "ok"


ABSURD_SNAPSHOTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "expected_seconds 0": lambda doc: doc["series"][0]["cadence"].update(expected_seconds=0),
    "warn_seconds 0": lambda doc: doc["series"][0]["freshness"].update(warn_seconds=0),
    "generated_at_ms 1e17": lambda doc: doc.update(generated_at_ms=10**17),
    "last event 1e17": lambda doc: doc["series"][0]["freshness"].update(last_event_close_ms=10**17),
    "window -1 h": lambda doc: doc.update(window_hours=-1),
}


@pytest.mark.parametrize("case", sorted(ABSURD_SNAPSHOTS))
def test_impossible_snapshot_values_are_damage_not_a_500(
    fixed: State, tmp_path: Path, case: str
) -> None:
    """A well-formed health.json with a value no writer produces: every state document still
    renders (valid against its schema), the snapshot component is an error naming the file and
    the value, alerts and the worker keep their own status."""
    settings = state_copy(fixed, tmp_path)
    edit_state(settings, "health.json", ABSURD_SNAPSHOTS[case])
    health = validate_documents(settings, fixed.now_ms)
    snapshot = health["components"]["snapshot"]
    assert snapshot["status"] == "error"
    assert snapshot["summary"].startswith("state/health.json is damaged (")
    assert health["components"]["worker"]["status"] == "ok"
    assert health["components"]["alerts"]["status"] == "error"  # IngmonFeedStale fires
    damaged = monitor_state(settings, now_ms=fixed.now_ms).damaged
    assert list(damaged) == ["health"]


def test_a_value_that_fails_to_render_drops_its_source(fixed: State) -> None:
    """The safety net behind the load-time checks: a document that cannot be built from the
    snapshot is built without it, the snapshot counted as damaged (named, with the error)."""

    def build(state: Any) -> dict[str, Any]:
        if state.snapshot is not None:
            raise ZeroDivisionError("division by zero")
        return dict(state.damaged)

    state = monitor_state(fixed.settings, now_ms=fixed.now_ms)
    assert documents._per_source(state, build) == {
        "health": "state/health.json cannot be shown (ZeroDivisionError: division by zero)"
    }


def test_freshness_order_is_status_then_lag_relative_to_the_warn_age(fixed: State) -> None:
    """/api/freshness: worst status first, then age ÷ warn age descending — what its OpenAPI
    description says."""
    items = freshness_document(fixed.settings, now_ms=fixed.now_ms)["items"]
    ranks = ["error", "warn", "unknown", "ok"]

    def key(item: dict[str, Any]) -> tuple[int, float]:
        age = item["age_seconds"]
        return (ranks.index(item["status"]), -(age / item["warn_seconds"]) if age else -1e18)

    assert [key(item) for item in items] == sorted(key(item) for item in items)
    described = openapi_document()["paths"]["/api/freshness"]["get"]["description"]
    assert "relative to the series' warn age" in described


def test_signal_times_must_be_epoch_milliseconds_in_ascii() -> None:
    """since/until: 10 digits look like epoch seconds (400 saying so, with the ms value);
    integers are ASCII digits only (no underscores, no other scripts' digits)."""
    params = {param.name: param for param in SIGNALS_PARAMETERS}
    with pytest.raises(ValueError, match="looks like epoch seconds") as seconds:
        params["since"].parse("1700000000")
    assert "1700000000000 for 2023-11-14T22:13:20.000Z" in str(seconds.value)
    assert params["since"].parse("1700000000000") == 1_700_000_000_000
    assert params["since"].parse("0") == 0
    for bad in ("١٧٠٠٠٠٠٠٠٠٠٠٠", "1_700_000_000_000"):
        with pytest.raises(ValueError, match=r"ASCII digits|invalid time"):
            params["since"].parse(bad)
    for bad in ("1_0", "١٠", "1e1"):
        with pytest.raises(ValueError, match="is not an integer"):
            params["limit"].parse(bad)
    assert params["limit"].parse(" 10 ") == 10


def test_openapi_documents_every_error_status() -> None:
    """Every route documents 405 and 500; those reading the lake document 503 too."""
    paths = openapi_document()["paths"]
    lake = {"/api/signals", "/api/backtests", "/api/backtests/{run_id}"}
    for template, item in paths.items():
        responses = item["get"]["responses"]
        assert {"405", "500"} <= set(responses), template
        assert ("503" in responses) == (template in lake), template
        assert responses["500"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }


# ---- the real server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, OSError, AssertionError, KeyError, ValueError) as error:
            last, result = error, None
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


@dataclass(frozen=True)
class Server:
    """A running ``ingmon serve``."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (the server and anything it started), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@contextmanager
def serving(root: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``ingmon serve --port <free> --data-dir root ARGS`` until the block ends."""
    port = free_port()
    log = root / f"serve-{port}.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INGMON_", "PANEL_"))}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [INGMON, "serve", "--port", str(port), "--data-dir", str(root), *args],
            env={**clean, **(env or {})},
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def live() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"ingmon serve exited: {log.read_text()[-2000:]}")
            return httpx.get(f"{url}/liveness", timeout=5).status_code == 200

        wait_until(live, timeout=90, what=f"{url}/liveness")
        yield Server(url, process, log)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def live_state(tmp_path_factory: pytest.TempPathFactory) -> State:
    """A data root built around the wall clock (the server judges at its own now)."""
    return build_state(tmp_path_factory.mktemp("live"), now=now_ms())


@pytest.fixture(scope="module")
def server(live_state: State) -> Iterator[Server]:
    """``ingmon serve`` without login or token."""
    with serving(live_state.root) as running:
        yield running


def schema_of(name: str) -> dict[str, Any]:
    """A validatable schema: the named component with the document's components beside it."""
    return {
        "$ref": f"#/components/schemas/{name}",
        "components": openapi_document()["components"],
    }


def documented_paths(run_id: str) -> list[tuple[str, str]]:
    """Every documented path (run_id filled in) with the name of its 200 response schema."""
    paths = []
    for template, item in openapi_document()["paths"].items():
        content = item["get"]["responses"]["200"]["content"]
        schema = content.get("application/json", {}).get("schema", {}).get("$ref", "")
        paths.append((template.replace("{run_id}", run_id), schema.rpartition("/")[2]))
    return paths


@pytest.mark.slow
def test_every_route_answers_in_its_documented_shape(server: Server) -> None:
    """Each documented route: 200, and JSON bodies validate against their OpenAPI schema
    (objects allow no undocumented field)."""
    with server.client() as client:
        for path, schema in documented_paths("bt-older"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            if schema:
                assert response.headers["content-type"].startswith("application/json")
                jsonschema.validate(response.json(), schema_of(schema))
        for path in ("/api/signals?audit=true", "/api/backtests/bt-newer?trades=true"):
            response = client.get(path)
            schema = "SignalPage" if "signals" in path else "BacktestDetail"
            jsonschema.validate(response.json(), schema_of(schema))


@pytest.mark.slow
def test_server_health_and_freshness(server: Server) -> None:
    """Over HTTP: one status per component, the stale feed first in /api/freshness, filters."""
    with server.client() as client:
        health = client.get("/api/health").json()
        assert list(health["components"]) == list(COMPONENTS)
        assert health["components"]["ingestion"]["status"] == "error"
        items = client.get("/api/freshness").json()["items"]
        assert (items[0]["dataset"], items[0]["symbol"]) == ("candles", STALE_SYMBOL)
        only = client.get("/api/freshness", params={"symbol": "ethusdt", "dataset": "funding"})
        assert [(i["symbol"], i["dataset"]) for i in only.json()["items"]] == [
            ("ETHUSDT", "funding")
        ]


@pytest.mark.slow
def test_signal_pagination_follows_next_links(server: Server, live_state: State) -> None:
    """limit=1 pages chained through ``next`` visit every signal once, newest first."""
    seen = []
    path: str | None = "/api/signals?limit=1"
    with server.client() as client:
        while path is not None:
            page = client.get(path).json()
            assert page["total"] == 4 and page["limit"] == 1
            seen += [item["bar_open_time"] for item in page["items"]]
            path = page["next"]
            if path is not None:
                assert parse_qs(urlsplit(path).query)["offset"] == [str(page["next_offset"])]
    opens = sorted((o for v in live_state.signal_opens_ms.values() for o in v), reverse=True)
    assert seen == [iso_ms(o) for o in opens]


@pytest.mark.slow
def test_backtests_over_http(server: Server) -> None:
    """Newest run first; an unknown run is a JSON 404."""
    with server.client() as client:
        page = client.get("/api/backtests").json()
        assert [item["run_id"] for item in page["items"]] == ["bt-newer", "bt-older"]
        assert client.get(page["items"][1]["url"]).json()["run"]["run_id"] == "bt-older"
        missing = client.get("/api/backtests/bt-nope")
        assert missing.status_code == 404
        assert "bt-nope" in missing.json()["error"]["message"]


BAD_PARAMETERS = [
    ("/api/signals?min_score=x", "min_score"),
    ("/api/signals?min_score=8", "min_score"),
    ("/api/signals?limit=-1", "limit"),
    ("/api/signals?limit=1e3", "limit"),
    ("/api/signals?offset=-5", "offset"),
    ("/api/signals?since=garbage", "since"),
    ("/api/signals?since=99999999999999999999", "since"),
    ("/api/signals?since=1700000000", "since"),
    ("/api/signals?since=%D9%A1%D9%A7", "since"),
    ("/api/signals?limit=1_0", "limit"),
    ("/api/signals?since=2026-02-01&until=2026-01-01", "until"),
    ("/api/signals?setup=moonshot", "setup"),
    ("/api/signals?timeframe=2m", "timeframe"),
    ("/api/signals?audit=maybe", "audit"),
    ("/api/signals?symbol=btc-usdt", "symbol"),
    ("/api/signals?symbol=%FF", "symbol"),
    ("/api/signals?limit=1&limit=2", "limit"),
    ("/api/signals?colour=red", "colour"),
    ("/api/freshness?status=bad", "status"),
    ("/api/freshness?dataset=klines", "dataset"),
    ("/api/backtests?limit=0", "limit"),
    ("/api/backtests/bt-older?trades=yes-please", "trades"),
    ("/api/health?verbose=1", "verbose"),
    ("/api/metrics?x", "x"),
    ("/api/openapi.json?format=yaml", "format"),
    ("/metrics/prometheus?name=x", "name"),
]


@pytest.mark.slow
def test_bad_parameters_get_a_400_naming_them(server: Server) -> None:
    """Every bad, repeated or unknown parameter: 400 JSON naming it, never a 500."""
    with server.client() as client:
        for path, parameter in BAD_PARAMETERS:
            response = client.get(path)
            assert response.status_code == 400, (path, response.text)
            assert response.headers["content-type"].startswith("application/json")
            error = response.json()["error"]
            assert error["parameter"] == parameter, path
            assert error["status"] == 400 and error["message"]
            jsonschema.validate(response.json(), schema_of("Error"))
    assert "Traceback" not in server.log.read_text()


@pytest.mark.slow
def test_unknown_paths_and_methods_are_json_errors(server: Server) -> None:
    """An unknown /api path is a JSON 404; a POST is a JSON 405 that names GET."""
    with server.client() as client:
        missing = client.get("/api/nothing/here")
        assert missing.status_code == 404 and missing.json()["error"]["status"] == 404
        post = client.post("/api/health", content=b"{}")
        assert post.status_code == 405 and post.headers["allow"] == "GET"
        assert post.json()["error"]["message"] == "POST is not allowed here: only GET"


def blocked_in_fifo_open(pid: int) -> int:
    """How many threads of process ``pid`` wait in the kernel for a FIFO's writer."""
    count = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            count += (task / "wchan").read_text() == "wait_for_partner"
        except OSError:  # the thread ended meanwhile
            continue
    return count


@pytest.mark.slow
def test_scrapes_and_health_never_wait_behind_stuck_lake_reads(
    fixed: State, tmp_path: Path
) -> None:
    """The signals partition is a FIFO nobody writes (a hung disk): two /api/signals requests
    block in the lake read — both lake threads, seen in /proc — and meanwhile
    /metrics/prometheus, /api/health and /api/freshness still answer at once."""
    settings = state_copy(fixed, tmp_path)
    write_signals(Lake(settings.lake_dir), [signal_row(bar_open_ms=NOW_MS)], symbol="BTCUSDT")
    version = partition_version(
        Lake(settings.lake_dir), dataset="signals", param="15m", partition="month=2026-03"
    )
    good = version.with_name("good.parquet")
    os.replace(version, good)
    os.mkfifo(version)
    stuck: list[Any] = []
    with serving(tmp_path) as running:
        threads = [
            threading.Thread(
                target=lambda query=query: stuck.append(
                    httpx.get(f"{running.url}/api/signals?{query}", timeout=120).status_code
                )
            )
            for query in ("limit=1", "limit=2")
        ]
        for thread in threads:
            thread.start()
        try:
            wait_until(
                lambda: blocked_in_fifo_open(running.process.pid) == 2,
                timeout=60,
                what="both lake threads to block on the FIFO",
            )
            with httpx.Client(base_url=running.url, timeout=10) as client:
                scrape = client.get("/metrics/prometheus")
                assert scrape.status_code == 200 and "ingmon_build_info" in scrape.text
                assert client.get("/api/health").json()["components"]["snapshot"]["status"]
                assert client.get("/api/freshness").status_code == 200
            assert stuck == []  # still stuck: the answers above did not wait for them
        finally:
            # Release the readers: open the FIFO as a writer, put the real file back, close.
            writer = os.open(version, os.O_RDWR)
            os.replace(good, version)
            os.close(writer)
            for thread in threads:
                thread.join(timeout=60)
    assert len(stuck) == 2


@pytest.mark.slow
def test_a_damaged_partition_is_a_503_naming_it(tmp_path: Path) -> None:
    """A signals partition cut in half: /api/signals answers 503 JSON naming the file (no
    traceback), while the state-file routes keep answering."""
    lake = Lake(load_settings(env_file=None, data_dir=tmp_path).lake_dir)
    write_signals(lake, [signal_row(bar_open_ms=NOW_MS)], symbol="BTCUSDT")
    version = partition_version(lake, dataset="signals", param="15m", partition="month=2026-03")
    damage_partition(version)
    with serving(tmp_path) as running, running.client() as client:
        response = client.get("/api/signals")
        assert response.status_code == 503
        message = response.json()["error"]["message"]
        assert message.startswith("damaged storage: ") and "month=2026-03" in message
        assert client.get("/api/health").status_code == 200


@pytest.mark.slow
def test_openapi_documents_every_route_and_accepts_every_parameter(server: Server) -> None:
    """Each route of ROUTES is a documented path (and no other is); each documented parameter,
    sent with its example value, is accepted."""
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    patterns = {pattern for pattern, _, _ in ROUTES if pattern != r"/api/.*"}
    documented = {re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$" for path in document["paths"]}
    assert patterns == documented
    with server.client() as client:
        for template, item in document["paths"].items():
            path = template.replace("{run_id}", "bt-older")
            for parameter in item["get"]["parameters"]:
                if parameter["in"] != "query":
                    continue
                response = client.get(path, params={parameter["name"]: parameter["example"]})
                assert response.status_code == 200, (path, parameter["name"], response.text)


@pytest.mark.slow
def test_the_dashboard_serves_the_overview(server: Server) -> None:
    """/ redirects to /dashboard, which serves the workbench page (what it renders — the
    overview's grid with the stale symbol — is checked in Chromium by tests/ui/)."""
    with server.client() as client:
        root = client.get("/")
        assert root.status_code == 302 and root.headers["location"].endswith("dashboard")
        page = client.get("/dashboard")
        assert page.status_code == 200 and "ingmon workbench" in page.text


@pytest.mark.slow
def test_scrapes_and_documents_are_gzipped_when_the_client_accepts_it(server: Server) -> None:
    """Accept-Encoding: gzip (as Prometheus sends it) gets a gzip body that decodes to the
    exposition; identity gets it plain; no ETag is computed for these changing bodies."""
    with server.client() as client:
        for path, marker in (
            ("/metrics/prometheus", "ingmon_dataset_last_event_timestamp_seconds"),
            ("/api/metrics", '"ingestion"'),
        ):
            packed = client.get(path, headers={"Accept-Encoding": "gzip"})
            assert packed.headers["content-encoding"] == "gzip"
            assert marker in packed.text  # httpx decoded it
            assert int(packed.headers["content-length"]) < len(packed.content) / 3
            plain = client.get(path, headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in plain.headers and marker in plain.text
            assert "etag" not in plain.headers


@pytest.mark.slow
def test_prometheus_endpoint_is_open_by_default(server: Server) -> None:
    """/metrics/prometheus without any token: the text format, or OpenMetrics when asked."""
    with server.client() as client:
        text = client.get("/metrics/prometheus")
        assert text.status_code == 200
        assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "ingmon_dataset_last_event_timestamp_seconds" in text.text
        accept = "application/openmetrics-text; version=1.0.0"
        openmetrics = client.get("/metrics/prometheus", headers={"Accept": accept})
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")


@pytest.mark.slow
@pytest.mark.skipif(not PROMETHEUS.exists(), reason="needs Debian's prometheus (make test)")
def test_a_real_prometheus_scrapes_the_freshness_series(
    server: Server, live_state: State, tmp_path: Path
) -> None:
    """A Prometheus server scraping /metrics/prometheus every second answers the freshness
    series of each demo symbol, with the last event time the lake holds."""
    port = urlsplit(server.url).port
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: ingmon\n    metrics_path: /metrics/prometheus\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
        encoding="utf-8",
    )
    web_port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        prometheus = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{web_port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def series() -> dict[str, float] | None:
            response = httpx.get(
                f"http://127.0.0.1:{web_port}/api/v1/query",
                params={"query": 'ingmon_dataset_last_event_timestamp_seconds{dataset="candles"}'},
                timeout=5,
            )
            found = {
                r["metric"]["symbol"]: float(r["value"][1])
                for r in response.json()["data"]["result"]
            }
            return found if set(DEMO_SYMBOLS) <= set(found) else None

        found = wait_until(series, timeout=60, what="the freshness series in Prometheus")
    finally:
        stop(prometheus)
    assert found[STALE_SYMBOL] == live_state.stale_close_ms / 1000
    # The healthy feeds' newest candle closed a minute before the state was built.
    newest = (live_state.now_ms - live_state.now_ms % MINUTE_MS - MINUTE_MS) / 1000
    assert found["BTCUSDT"] >= newest - 60


# ---- login and token ---------------------------------------------------------------------------

PASSWORD = "s3cret:with-Colon"
TOKEN = "scrape-token-123"
COOKIE_SECRET = "cookie-secret-xyz"


@pytest.fixture(scope="module")
def guarded(live_state: State) -> Iterator[Server]:
    """``ingmon serve --basic-auth alice:… --metrics-token …`` (cookie secret from the env)."""
    with serving(
        live_state.root,
        "--basic-auth",
        f"alice:{PASSWORD}",
        "--metrics-token",
        TOKEN,
        env={"INGMON_COOKIE_SECRET": COOKIE_SECRET},
    ) as running:
        yield running


@pytest.mark.slow
def test_login_is_required_for_the_dashboard_and_the_api(guarded: Server) -> None:
    """Anonymous: /dashboard redirects to the login, /api/* is a 401 JSON (a browser is
    redirected instead); after POST /login with the credentials both answer."""
    with guarded.client() as client:
        dashboard = client.get("/dashboard")
        assert dashboard.status_code == 302 and "/login" in dashboard.headers["location"]
        for path in ("/api/health", "/api/signals", "/api/backtests/bt-older", "/api/nope"):
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["error"]["status"] == 401
        browser = client.get("/api/metrics", headers={"Accept": "text/html,*/*;q=0.8"})
        assert browser.status_code == 302
        assert browser.headers["location"] == "/login?next=%2Fapi%2Fmetrics"
        wrong = client.post("/login", data={"username": "mallory", "password": PASSWORD})
        assert "error" in wrong.headers["location"]
        assert client.get("/api/health").status_code == 401
        client.post("/login", data={"username": "alice", "password": PASSWORD})
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/signals?limit=1").json()["limit"] == 1
        assert client.get("/dashboard").status_code == 200


@pytest.mark.slow
def test_the_metrics_token_guards_prometheus_not_the_login(guarded: Server) -> None:
    """/metrics/prometheus ignores the login and wants the bearer token: 401 JSON without it
    or with a wrong one, 200 with it."""
    with guarded.client() as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = client.get("/metrics/prometheus", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert refused.json()["error"]["status"] == 401
        allowed = client.get("/metrics/prometheus", headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200 and "ingmon_build_info" in allowed.text


@pytest.mark.slow
def test_the_token_is_checked_before_the_parameters(guarded: Server) -> None:
    """Without the token a bad parameter is a 401, not a 400 (nothing is learnt about the
    parameters); the scheme is case-insensitive (RFC 7235), the token is not."""
    with guarded.client() as client:
        assert client.get("/metrics/prometheus?name=x").status_code == 401
        for scheme in ("bearer", "BEARER"):
            headers = {"Authorization": f"{scheme} {TOKEN}"}
            assert client.get("/metrics/prometheus", headers=headers).status_code == 200
            headers = {"Authorization": f"{scheme} {TOKEN.upper()}"}
            assert client.get("/metrics/prometheus", headers=headers).status_code == 401
        given = {"Authorization": f"Bearer {TOKEN}"}
        bad = client.get("/metrics/prometheus?name=x", headers=given)
        assert bad.status_code == 400 and bad.json()["error"]["parameter"] == "name"


@pytest.mark.slow
def test_a_blank_metrics_token_leaves_the_endpoint_open(live_state: State) -> None:
    """INGMON_METRICS_TOKEN set to blanks is no token (not a token nobody can send)."""
    with (
        serving(live_state.root, env={"INGMON_METRICS_TOKEN": "   "}) as running,
        running.client() as client,
    ):
        response = client.get("/metrics/prometheus")
        assert response.status_code == 200 and "ingmon_build_info" in response.text


@pytest.mark.slow
def test_no_secret_shows_in_the_servers_command_line(guarded: Server) -> None:
    """``ps`` of the server shows neither the password, the cookie secret nor the token: the
    password is in an in-memory file, the others in the environment."""
    command_line = Path(f"/proc/{guarded.process.pid}/cmdline").read_bytes().decode()
    assert "panel\0serve" in command_line
    assert "--basic-auth\0/proc/self/fd/" in command_line
    for secret in (PASSWORD, TOKEN, COOKIE_SECRET):
        assert secret not in command_line

"""The Overview page without a browser: its state is the API's documents, its grid and tables
come from plain functions, and its views say "no data" and "stale" apart from "error"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import panel as pn
import pytest

from ingmon.api import health_document, metrics_document
from ingmon.config import Settings, load_settings
from ingmon.lake import Lake
from ingmon.monitor.alerts import evaluate
from ingmon.monitor.health import build_snapshot, write_snapshot
from ingmon.times import HOUR_MS, MINUTE_MS, SECOND_MS
from tests.monitor._lake import NOW_MS, healthy_lake, live_feed, signal_row, write_signals
from workbench import overview as page
from workbench.overview import (
    Overview,
    badge,
    freshness_grid,
    percent,
    performance_rows,
    series_causes,
    signal_matrix,
)


@pytest.fixture(autouse=True)
def _fresh_panel_state() -> Iterator[None]:
    yield
    pn.state.reset()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """BTCUSDT healthy; SOLUSDT's candles stopped an hour before NOW_MS (its other datasets
    were never stored); BTCUSDT signals (scored high 5, low 3, and one unscored); the stale
    feed's alert firing; a worker tick 30 s before NOW_MS."""
    root = tmp_path_factory.mktemp("overview")
    settings = load_settings(env_file=None, data_dir=root)
    lake = Lake(settings.lake_dir)
    healthy_lake(lake, symbol="BTCUSDT", now_ms=NOW_MS)
    live_feed(lake, symbol="SOLUSDT", dataset="candles", now_ms=NOW_MS, until_ms=NOW_MS - HOUR_MS)
    write_signals(
        lake,
        [
            signal_row(bar_open_ms=NOW_MS - 15 * MINUTE_MS, setup="squeeze_fire", score=5),
            signal_row(
                bar_open_ms=NOW_MS - 2 * HOUR_MS, setup="absorption", score=3, confidence="low"
            ),
            signal_row(bar_open_ms=NOW_MS - 3 * HOUR_MS, setup="exhaustion", score=None),
        ],
        symbol="BTCUSDT",
    )
    snapshot = build_snapshot(lake, settings, now_ms=NOW_MS)
    write_snapshot(settings.state_dir, snapshot)
    evaluate(
        snapshot,
        load_settings(env_file=None, data_dir=root, alert_stale_for_seconds=0),
        now_ms=NOW_MS,
    )
    tick = {"finished_ms": NOW_MS - 30 * SECOND_MS, "outcome": "ok", "interval_seconds": 60.0}
    (settings.state_dir / "worker.json").write_text(json.dumps(tick), encoding="utf-8")
    return settings


def loaded(settings: Settings, *, at: int = NOW_MS, **params: Any) -> Overview:
    overview = Overview(settings=settings, clock=lambda: at, **params)
    overview.refresh()
    return overview


def text_of(pane: Any) -> str:
    return str(pane.object)


def test_the_page_holds_what_the_api_answers(settings: Settings) -> None:
    """refresh() stores exactly /api/health's and /api/metrics's documents at the clock's now."""
    overview = loaded(settings)
    assert overview.health == health_document(settings, now_ms=NOW_MS)
    assert overview.metrics == metrics_document(settings, now_ms=NOW_MS)
    assert overview.loaded_at_ms == NOW_MS and overview.error is None


def test_the_freshness_grid_is_worst_first_with_glyph_word_and_lag(settings: Settings) -> None:
    """Rows and columns worst first; the stale cell says ✕ error with its lag (last candle
    closed 1 h 1 min before now) and why; a dataset never stored says – no data."""
    grid = freshness_grid(loaded(settings).metrics or {})
    assert grid.symbols == ("SOLUSDT", "BTCUSDT")
    assert grid.rows[0] == "candles 1m"
    stale = grid.cells["candles 1m", "SOLUSDT"]
    assert (stale.status, stale.lag) == ("error", "1h 1m")
    assert "stale" in stale.causes
    html = stale.html()
    assert "✕ error" in html and "1h 1m · stale" in html and "#BB5566" in html
    assert "last event " in stale.title and "warn after 1m 30s" in stale.title
    never = grid.cells["agg_trades", "SOLUSDT"]
    assert never.status == "unknown" and never.lag == "–"
    assert "– no data" in never.html()
    fresh = grid.cells["candles 1m", "BTCUSDT"]
    assert fresh.status == "ok" and fresh.lag == "1m 0s" and fresh.causes == ()
    assert "✓ ok" in grid.html()


def test_causes_name_what_is_wrong() -> None:
    """series_causes: the parts not ok and the integrity findings, in words."""
    ok = {"status": "ok"}
    series = {
        "freshness": ok,
        "latency": {"status": "error"},
        "cadence": {"status": "warn"},
        "gaps": 2,
        "duplicates": 1,
        "corrupt_files": ["x"],
    }
    assert series_causes(series) == ["late", "cadence", "2 gaps", "duplicates", "corrupt"]


def test_signals_by_setup_and_confidence(settings: Settings) -> None:
    """The window's signals as setup × confidence (unscored in its own column), busiest first."""
    overview = loaded(settings)
    headers, rows = signal_matrix(overview.metrics or {})
    assert headers == ("setup", "high", "medium", "low", "unscored", "total")
    assert rows == [
        ["absorption", 0, 0, 1, 0, 1],
        ["exhaustion", 0, 0, 0, 1, 1],
        ["squeeze_fire", 1, 0, 0, 0, 1],
    ]
    view = text_of(overview.signals())
    assert "Signals: last 24 h" in view and "0s ago" in view  # its bar closed 1 ms before now


def test_kpis_are_formatted_per_metric_family() -> None:
    """Hit rate 1 dp, expectancy signed 2 dp, drawdown 1 dp; – when unknown."""
    assert percent(0.5) == "50.0 %"
    assert percent(0.0125, decimals=2, signed=True) == "+1.25 %"
    assert percent(-0.0125, decimals=2, signed=True) == "-1.25 %"
    assert percent(None) == "–"
    metrics = {
        "performance": {
            "runs": [
                {
                    "symbol": "BTCUSDT",
                    "setup": "absorption",
                    "run_id": "bt-1",
                    "created_at": "2026-02-28T23:00:00.000Z",
                    "trades": 4,
                    "wins": 1,
                    "losses": 3,
                    "hit_rate": 0.25,
                    "expectancy": -0.001,
                    "max_drawdown": None,
                },
                {
                    "symbol": "BTCUSDT",
                    "setup": "all",
                    "run_id": "bt-1",
                    "created_at": "2026-02-28T23:00:00.000Z",
                    "trades": 10,
                    "wins": 6,
                    "losses": 4,
                    "hit_rate": 0.6,
                    "expectancy": 0.0042,
                    "max_drawdown": 0.123,
                },
            ]
        }
    }
    rows = performance_rows(metrics, now=NOW_MS)
    assert [row[1] for row in rows] == ["all", "absorption"]
    assert rows[0][2:7] == ["10", "6 / 4", "60.0 %", "+0.42 %", "12.3 %"]
    assert rows[1][6] == "–"
    assert "1h 0m ago" in rows[0][7]


def test_alerts_and_worker_views(settings: Settings) -> None:
    """The firing stale-feed alert is listed with its symbol; the worker's tick is 30 s old."""
    overview = loaded(settings)
    alerts = text_of(overview.alerts())
    assert "IngmonFeedStale" in alerts and "symbol=SOLUSDT" in alerts
    worker = text_of(overview.worker())
    assert "✓ ok" in worker and "last tick 30s ago" in worker


def test_stale_is_told_apart_from_error(settings: Settings) -> None:
    """Ten minutes after the snapshot (the worker writes one a minute): a stale banner and a
    greyed grid; at the snapshot's instant neither."""
    now = loaded(settings)
    assert not now.is_stale
    assert "stale:" not in text_of(now.status_strip())
    later = loaded(settings, at=NOW_MS + 10 * 60 * SECOND_MS)
    assert later.is_stale
    strip = text_of(later.status_strip())
    assert "! stale: health snapshot written 10m 0s ago" in strip
    assert "is `ingmon worker` running?" in strip
    assert 'class="ingmon-stale"' in text_of(later.freshness())


def test_no_data_is_its_own_state(tmp_path: Path) -> None:
    """A data root without state: the page explains what to run instead of an empty grid."""
    overview = loaded(load_settings(env_file=None, data_dir=tmp_path))
    assert not overview.has_snapshot
    assert "No health snapshot yet." in text_of(overview.freshness())
    assert "ingmon worker" in text_of(overview.freshness())
    assert "no health snapshot yet" in text_of(overview.header())
    assert "No signals scored yet." in text_of(overview.signals())
    assert "No saved backtest runs." in text_of(overview.performance())
    assert "No alerts firing." in text_of(overview.alerts())


def test_a_failed_read_keeps_the_last_state_and_says_why(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the state cannot be read, the page keeps what it showed and names the error."""
    overview = loaded(settings)
    before = overview.metrics

    def broken(*_: Any, **__: Any) -> dict[str, Any]:
        raise OSError("state unreadable")

    monkeypatch.setattr(page, "health_document", broken)
    overview.refresh()
    assert overview.metrics == before
    assert overview.error == "could not read the state: state unreadable"
    assert "could not read the state: state unreadable" in text_of(overview.header())


def test_the_layout_builds_without_a_server(settings: Settings) -> None:
    """__panel__ reads the state on first use and lays the views out; without a server session
    it starts no periodic callback."""
    overview = Overview(settings=settings, clock=lambda: NOW_MS, refresh_seconds=5)
    layout = overview.__panel__()
    assert isinstance(layout, pn.Column) and len(layout) == 5
    assert overview.loaded_at_ms == NOW_MS
    assert overview._callback is None
    assert "again every 5s" in text_of(overview.header())


def test_badges_never_rely_on_colour_alone() -> None:
    """Each status: a glyph, a word and a colour pair with enough contrast."""
    assert badge("ok").endswith(">✓ ok</span>")
    assert ">! warn · 3</span>" in badge("warn", text="3")
    assert "✕ error" in badge("error") and "#FFFFFF" in badge("error")
    assert "– no data" in badge("unknown")

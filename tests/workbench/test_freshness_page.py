"""The Freshness drill-down without a browser: its parameters pick the series, its widgets set
the parameters, its panes say which empty state it is in, and a refresh updates the plots'
data in place."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import panel as pn
import pytest

from ingmon.config import Settings, load_settings
from ingmon.lake import Lake
from ingmon.monitor.series_detail import GapRange, IngestBatch
from ingmon.times import HOUR_MS, MINUTE_MS, SECOND_MS
from tests.monitor._lake import NOW_MS, healthy_lake, live_feed, write_candles
from workbench import freshness
from workbench.freshness import FreshnessPage, batch_rows, gap_text, series_title
from workbench.plots import LINE_BUDGET


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    freshness._DETAILS._entries.clear()  # each test reads its own lake
    yield
    pn.state.reset()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """BTCUSDT healthy (every dataset, a live batch per row); SOLUSDT's candles stopped an hour
    before NOW_MS; XRPUSDT has candles but no ingest_log."""
    root = tmp_path_factory.mktemp("freshness")
    settings = load_settings(env_file=None, data_dir=root)
    lake = Lake(settings.lake_dir)
    healthy_lake(lake, symbol="BTCUSDT", now_ms=NOW_MS)
    live_feed(lake, symbol="SOLUSDT", dataset="candles", now_ms=NOW_MS, until_ms=NOW_MS - HOUR_MS)
    write_candles(
        lake, symbol="XRPUSDT", open_times_ms=range(NOW_MS - 30 * MINUTE_MS, NOW_MS, MINUTE_MS)
    )
    return settings


def page_of(settings: Settings, **params: Any) -> FreshnessPage:
    page = FreshnessPage(
        data_dir=settings.data_dir, settings=settings, clock=lambda: NOW_MS, **params
    )
    page.refresh()
    return page


def text(pane: Any) -> str:
    return str(pane.object)


def test_the_url_keys_carry_the_page_prefix() -> None:
    """dataset, symbol and window travel as fr_dataset, fr_symbol, fr_hours."""
    assert FreshnessPage.URL_PARAMS == {
        "dataset": "fr_dataset",
        "symbol": "fr_symbol",
        "window_hours": "fr_hours",
    }
    assert all(name in FreshnessPage.param for name in FreshnessPage.URL_PARAMS)


def test_a_healthy_series_shows_its_four_parts(settings: Settings) -> None:
    """BTCUSDT 1m candles over 24 h: ok, 1439 live batches timed at 2 s, intervals of 60 s,
    no gaps, the 50 newest batches listed."""
    page = page_of(settings, dataset="candles", symbol="BTCUSDT")
    assert page.detail is not None and page.error is None
    header = text(page._header)
    assert "Freshness: candles 1m · BTCUSDT" in header and "✓ ok" in header
    assert "newest event closed 2026-02-28 23:59:00 UTC (1m 0s ago)" in header
    latency = text(page._latency_note)
    assert "1439 batches, p50 2s, p95 2s, last 2s" in latency
    assert "warn above 2m 0s, error above 5m 0s" in latency
    cadence = text(page._cadence_note)
    assert "1438 intervals, all ok" in cadence and "expected 1m 0s" in cadence
    assert "No gaps in the last 24 h." in text(page._gaps_note)
    batches = text(page._batches)
    assert "Latest ingest batches (50 newest)" in batches
    assert batches.count("<tr>") == 51 and "<td>2026-02-28 23:59:02 UTC</td>" in batches
    assert page._latency_box.objects == [page._latency_pane]
    assert page._cadence_box.objects == [page._cadence_pane]
    assert page._gaps_box.objects == [page._gaps_pane]
    assert page._latency.points == LINE_BUDGET  # 1439 batches: the browser gets 800 points
    assert len(page._cadence.data["deviation"]) == 1438
    assert set(page._cadence.data["status"]) == {"ok"}


def test_a_stalled_series_shows_its_stale_tail(settings: Settings) -> None:
    """SOLUSDT's candles stopped an hour ago: error, and the timeline's stale range says since
    when; the open interval since the last batch is an error too."""
    page = page_of(settings, dataset="candles", symbol="SOLUSDT")
    assert "✕ error" in text(page._header)
    gaps = text(page._gaps_note)
    assert "stale: 2026-02-28 22:59:00 UTC – 2026-03-01 00:00:00 UTC (1h 1m)" in gaps
    assert "0 gaps counted by the health model" in gaps
    assert "✕ error</span> 1h 0m since the last successful batch" in text(page._cadence_note)


def test_empty_states_are_told_apart(settings: Settings, tmp_path: Path) -> None:
    """Nothing (or half) picked, an unknown dataset, a symbol the lake lacks, an empty lake, a
    series with rows but no ingest_log, and a dataset never stored: each its own sentence."""
    assert "No series picked." in text(page_of(settings)._header)
    assert "No series picked." in text(page_of(settings, dataset="candles")._header)
    bad_dataset = page_of(settings, dataset="klines", symbol="BTCUSDT")
    assert "Unknown dataset “klines”." in text(bad_dataset._header)
    assert bad_dataset.detail is None and bad_dataset._plotted is None
    bad_symbol = page_of(settings, dataset="candles", symbol="DOGEUSDT")
    assert "No data stored for symbol “DOGEUSDT”." in text(bad_symbol._header)
    assert "BTCUSDT, SOLUSDT, XRPUSDT" in text(bad_symbol._header)
    empty = load_settings(env_file=None, data_dir=tmp_path)
    assert "The lake holds no data yet." in text(
        page_of(empty, dataset="candles", symbol="BTCUSDT")._header
    )
    no_log = page_of(settings, dataset="candles", symbol="XRPUSDT")
    assert "No ingest_log batches for this series in the window." in text(no_log._header)
    assert "No live batches in the window." in text(no_log._latency_note)
    assert "No batches logged for this series in the window." in text(no_log._batches)
    never = page_of(settings, dataset="funding", symbol="XRPUSDT")
    assert "Nothing stored or logged for funding · XRPUSDT" in text(never._header)
    assert never._latency_box.objects == [] and never._gaps_box.objects == []


def test_widgets_drive_the_parameters(settings: Settings) -> None:
    """Choosing in the selects and the window buttons sets the page's parameters (and reads
    that series); parameters set from the URL show in the widgets."""
    page = page_of(settings, dataset="candles", symbol="BTCUSDT")
    assert page._dataset_select.value == "candles" and page._symbol_select.value == "BTCUSDT"
    assert list(page._symbol_select.options.values()) == ["", "BTCUSDT", "SOLUSDT", "XRPUSDT"]
    page._dataset_select.value = "open_interest"
    assert page.dataset == "open_interest"
    assert "Freshness: open_interest 5m · BTCUSDT" in text(page._header)
    page._symbol_select.value = "SOLUSDT"
    assert page.symbol == "SOLUSDT"
    page._window_select.value = 1
    assert page.window_hours == 1
    assert page.detail is not None and page.detail.end_ms - page.detail.start_ms == HOUR_MS
    page.dataset = "nonsense"  # from a URL: the select cannot show it, the page says why
    assert page._dataset_select.value == ""
    assert "Unknown dataset" in text(page._header)
    page._dataset_select.value = ""  # the empty choice changes nothing
    assert page.dataset == "nonsense"


def test_a_refresh_updates_the_plots_in_place(settings: Settings) -> None:
    """Refreshing the same series ten minutes later replaces the data of the existing plots
    (the plots, and the user's zoom, stay); another series or window gets new plots, whose
    ranges follow it."""
    now = [NOW_MS]
    page = FreshnessPage(
        data_dir=settings.data_dir,
        settings=settings,
        clock=lambda: now[0],
        dataset="candles",
        symbol="SOLUSDT",
    )
    page.refresh()
    page.__panel__()
    plot, source = page._latency_pane.object, page._latency.source
    sent: list[str] = []
    source.on_change("data", lambda attr, old, new: sent.append(attr))
    now[0] += 10 * MINUTE_MS
    freshness._DETAILS._entries.clear()  # past the cache's few seconds
    page.refresh()
    assert sent == ["data"]
    assert page._latency_pane.object is plot and page._latency.source is source
    page.symbol = "BTCUSDT"
    assert page._latency_pane.object is not plot
    plot = page._latency_pane.object
    page.window_hours = 6
    assert page._latency_pane.object is not plot


def test_the_back_button_opens_the_overview(settings: Settings) -> None:
    """With a navigate callable the page offers the way back to the Overview."""
    calls: list[tuple[str, dict[str, Any]]] = []
    page = FreshnessPage(
        data_dir=settings.data_dir,
        settings=settings,
        navigate=lambda page, **params: calls.append((page, params)),
    )
    controls = page.__panel__()[0]
    back = controls[0]
    assert back.label == "← Overview"
    back.clicks += 1
    assert calls == [("overview", {})]
    alone = FreshnessPage(data_dir=settings.data_dir, settings=settings).__panel__()[0]
    assert not isinstance(alone[0], pn.widgets.Button)


def test_batch_rows_gap_texts_and_titles() -> None:
    """A batch row: written and event times in UTC, the fetch-to-write time, counts, the
    source, live or backfill, the latency; a gap: kind, count, range (the day once when it
    ends the same day), length; titles name dataset, parameter and symbol."""
    batch = IngestBatch(
        batch_id="b",
        fetched_ms=NOW_MS - 3 * SECOND_MS,
        written_ms=NOW_MS,
        first_event_ms=NOW_MS - 2 * MINUTE_MS,
        last_event_ms=None,
        rows_fetched=2,
        rows_inserted=1,
        rows_replaced=0,
        source="rest",
        live=True,
        latency_seconds=62.4,
    )
    assert batch_rows((batch,)) == [
        [
            "2026-03-01 00:00:00 UTC",
            "3s",
            "2026-02-28 23:58:00 UTC",
            "–",
            "2",
            "1",
            "0",
            "rest",
            "live",
            "1m 2s",
        ]
    ]
    gap = GapRange("missing", NOW_MS - 40 * MINUTE_MS, NOW_MS - 37 * MINUTE_MS, 3, "x")
    assert gap_text(gap) == "missing: 3 slots, 2026-02-28 23:20:00 UTC – 23:23:00 UTC (3m 0s)"
    stale = GapRange("stale", NOW_MS - HOUR_MS, NOW_MS, None, "x")
    assert gap_text(stale) == "stale: 2026-02-28 23:00:00 UTC – 2026-03-01 00:00:00 UTC (1h 0m)"
    assert series_title("candles", "1m", "BTCUSDT") == "candles 1m · BTCUSDT"
    assert series_title("funding", None, "BTCUSDT") == "funding · BTCUSDT"

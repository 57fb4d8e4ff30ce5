"""The Performance page without a browser: its params (the URL's perf_* keys) select and overlay
saved runs, its widgets drive those params, the window selector changes the metrics shown, and
no runs, an unknown run id or a run without trades are clear empty states."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import pytest
from bokeh.document import Document
from bokeh.models import GlyphRenderer, Line
from bokeh.plotting import figure as Figure

from ingmon.api.cache import TTLCache
from ingmon.backtest.compare import saved_runs
from ingmon.backtest.engine import BacktestConfig, Bars
from ingmon.backtest.export import save_run, write_exports
from ingmon.backtest.run import BacktestRun, run_backtests
from ingmon.lake import Lake
from ingmon.reports.state import ReportRun, record_run
from ingmon.times import DAY_MS
from tests.backtest._market import START_MS, random_bars, random_signals
from tests.monitor._lake import damage_partition, partition_version
from workbench import performance
from workbench.app import Workbench
from workbench.performance import MAX_RUNS, RUN_COLOURS, PerformancePage
from workbench.plots import ClickableHTML


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No run list or run data cached across tests (each test has its own data root)."""
    monkeypatch.setattr(performance, "_RUN_LIST", TTLCache(0.0))
    monkeypatch.setattr(performance, "_RUN_DATA", TTLCache(0.0))
    yield
    pn.state.reset()


def _run(
    *, seed: int, symbol: str, created_at_ms: int, signals: bool = True, bars: int = 2 * 1440
) -> BacktestRun:
    frame = random_bars(seed, bars)
    chosen = random_signals(seed, frame, probability=0.01 if signals else 0.0)
    chosen["setup"] = ["squeeze_fire" if n % 2 else "absorption" for n in range(len(chosen))]
    chosen["score"] = [n % 8 for n in range(len(chosen))]
    chosen["confidence"] = ["high" if n % 3 == 0 else "low" for n in range(len(chosen))]
    chosen["signal_id"] = [f"{symbol}-{seed}-{n}" for n in range(len(chosen))]
    return run_backtests(
        Bars.from_frame(frame),
        chosen,
        config=BacktestConfig(hold_bars=60, stop_pct=0.004),
        window_days=(1,),
        symbol=symbol,
        source="lake",
        timeframe="15m",
        created_at_ms=created_at_ms,
    )


def _save(root: Path, run: BacktestRun, *, export: bool = True) -> BacktestRun:
    save_run(Lake(root / "lake"), run)
    if export:
        write_exports(run, root / "backtests" / run.run_id, ("json", "csv"))
    return run


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """BTCUSDT (older) and ETHUSDT (newer, no exports) with trades; SOLUSDT without trades."""
    _save(tmp_path, _run(seed=3, symbol="BTCUSDT", created_at_ms=START_MS + 3 * DAY_MS))
    _save(
        tmp_path,
        _run(seed=4, symbol="ETHUSDT", created_at_ms=START_MS + 4 * DAY_MS),
        export=False,
    )
    _save(
        tmp_path,
        _run(seed=5, symbol="SOLUSDT", created_at_ms=START_MS + 2 * DAY_MS, signals=False),
    )
    return tmp_path


def _ids(page: PerformancePage) -> dict[str, str]:
    return {run.symbol: run.run_id for run in page.runs}


def _curves(page: PerformancePage) -> tuple[list[hv.Curve], list[hv.Area]]:
    layout, _ = page.overlay()
    assert layout is not None
    top, bottom = layout
    return list(top), list(bottom)


def test_the_url_keys_are_prefixed() -> None:
    """Params ↔ query keys: perf_runs, perf_window, perf_by, perf_curve, perf_page."""
    assert PerformancePage.URL_PARAMS == {
        "run_ids": "perf_runs",
        "window": "perf_window",
        "breakdown": "perf_by",
        "curve": "perf_curve",
        "trades_page": "perf_page",
    }


def test_no_saved_runs_is_an_empty_state(tmp_path: Path) -> None:
    """An empty lake: the header says there are no runs and how to make one; nothing raises."""
    page = PerformancePage(data_dir=tmp_path)
    assert page.runs == [] and page.picker.options == {}
    assert "No saved backtest runs yet" in page.header().object
    assert "ingmon backtest --symbol" in page.header().object
    for view in (page.chart, page.comparison, page.breakdowns, page.trades):
        assert view().object == ""
    assert "No report notebook has run yet" in page.report_links().object
    page.__panel__().get_root()


def test_the_picker_lists_runs_newest_first(root: Path) -> None:
    """Labels by symbol, creation time and trade count; newest first; nothing selected yet."""
    page = PerformancePage(data_dir=root)
    labels = list(page.picker.options)
    assert [label.split(" · ")[0] for label in labels] == ["ETHUSDT", "BTCUSDT", "SOLUSDT"]
    assert labels[0].startswith("ETHUSDT · 2026-01-05 00:00 UTC · ")
    assert labels[2].endswith("· 0 trades")
    assert page.picker.value == [] and page.shown == []
    assert "Tick one or more runs" in page.header().object


def test_perf_runs_selects_and_overlays_those_runs(root: Path) -> None:
    """run_ids (the URL's perf_runs) ticks the runs in the picker and overlays one equity curve
    and one drawdown per run, in distinct colours, over one time axis."""
    page = PerformancePage(data_dir=root, point_budget=2000)
    ids = _ids(page)
    page.run_ids = f"{ids['BTCUSDT']},{ids['ETHUSDT']}"
    assert page.shown == [ids["BTCUSDT"], ids["ETHUSDT"]]
    assert page.picker.value == [ids["BTCUSDT"], ids["ETHUSDT"]]
    equity, drawdowns = _curves(page)
    assert len(equity) == len(drawdowns) == 2
    assert [c.label.split()[0] for c in equity] == ["BTCUSDT", "ETHUSDT"]
    colours = [hv.Store.lookup_options("bokeh", c, "style").kwargs["color"] for c in equity]
    assert colours == list(RUN_COLOURS[:2])
    assert all(c.kdims[0].name == "time" for c in equity + drawdowns)
    # drawdown ≤ 0, in percent below the peak
    assert all(float(np.max(a.dimension_values("drawdown"))) <= 0 for a in drawdowns)
    column = page.chart()
    assert isinstance(column[1], pn.pane.HoloViews)


def test_curves_arrive_downsampled_to_the_point_budget(root: Path) -> None:
    """With a budget of 16 points, each drawn series sends at most 16 points (the drawdown
    area's polygon with its baseline included), the extremes kept."""
    page = PerformancePage(data_dir=root, point_budget=16)
    ids = _ids(page)
    page.run_ids = ids["BTCUSDT"]
    data = page.run_data(ids["BTCUSDT"])
    full = data.curves["trades"]
    assert full is not None and len(full) > 16
    (equity,), (drawdown,) = _curves(page)
    assert len(equity) <= 16 and 2 * len(drawdown) <= 16
    layout, _ = page.overlay()
    renderers = [m for m in hv.render(layout).references() if isinstance(m, GlyphRenderer)]
    assert len(renderers) == 2
    assert all(len(next(iter(r.data_source.data.values()))) <= 16 for r in renderers)
    assert equity.dimension_values("equity").min() == full.equity.min()
    assert drawdown.dimension_values("drawdown").min() == pytest.approx(full.drawdown.min() * 100)


def test_the_picker_drives_perf_runs(root: Path) -> None:
    """Ticking runs sets run_ids in the order they were ticked; unticking removes them."""
    page = PerformancePage(data_dir=root)
    ids = _ids(page)
    page.picker.value = [ids["ETHUSDT"]]
    assert page.run_ids == ids["ETHUSDT"]
    page.picker.value = [ids["BTCUSDT"], ids["ETHUSDT"]]  # the widget lists in option order
    assert page.run_ids == f"{ids['ETHUSDT']},{ids['BTCUSDT']}"
    assert page.shown == [ids["ETHUSDT"], ids["BTCUSDT"]]
    page.picker.value = [ids["BTCUSDT"]]
    assert page.run_ids == ids["BTCUSDT"]


def test_the_window_selector_changes_the_metrics_shown(root: Path) -> None:
    """all → the whole data's trade count; 1d → the 1-day window's; the widget drives the
    param; a window the runs lack (30d) says so instead of showing zeros."""
    page = PerformancePage(data_dir=root)
    ids = _ids(page)
    page.run_ids = ids["BTCUSDT"]
    summary = page.run_data(ids["BTCUSDT"]).summary
    assert summary is not None
    whole = summary["metrics"]["trades"]
    day = next(w for w in summary["windows"] if w["label"] == "1d")["metrics"]["trades"]
    assert whole != day
    assert page.param.window.objects == ["all", "1d", "30d", "60d", "90d"]
    assert f"<td>trades</td><td>{whole}</td>" in page.comparison().object.replace(
        '<td title="closed trades in the window">trades</td>', "<td>trades</td>"
    )
    page.window_widget.value = "1d"
    assert page.window == "1d"
    text = page.comparison().object
    assert "trailing 1d window" in text
    assert f'<td title="closed trades in the window">trades</td><td>{day}</td>' in text
    assert "trailing 1d window" in page.breakdowns().object
    assert len(page.trades_frame()) < whole
    page.window = "30d"
    for view in (page.comparison, page.breakdowns):
        assert "none of the selected runs has a 30d window (they have: 1d)" in view().object
    assert "30d window" in page.trades().object


def test_a_window_unknown_to_the_choices_from_a_link_is_shown_as_absent(root: Path) -> None:
    """perf_window=45d (a link from elsewhere) is accepted and reported, not an error."""
    page = PerformancePage(data_dir=root, window="45d")
    page.run_ids = _ids(page)["BTCUSDT"]
    assert "45d" in page.param.window.objects
    assert "none of the selected runs has a 45d window" in page.comparison().object


def test_breakdown_param_slices_the_table(root: Path) -> None:
    """perf_by=score: one row per score of the run, scores in numeric order."""
    page = PerformancePage(data_dir=root)
    page.run_ids = _ids(page)["BTCUSDT"]
    page.breakdown_widget.value = "score"
    assert page.breakdown == "score"
    text = page.breakdowns().object
    assert "<h3>By score" in text
    summary = page.run_data(page.shown[0]).summary or {}
    scores = sorted(summary["breakdowns"]["score"], key=int)
    positions = [text.index(f'<td class="perf-label">{s}</td>') for s in scores]
    assert positions == sorted(positions)


def test_an_unknown_run_id_in_the_link_is_named(root: Path) -> None:
    """perf_runs with a run that is not saved: a warning naming it; the known run still shows."""
    page = PerformancePage(data_dir=root)
    ids = _ids(page)
    page.run_ids = f"bt-gone,{ids['BTCUSDT']}"
    assert page.unknown == ["bt-gone"] and page.shown == [ids["BTCUSDT"]]
    assert "not found: <code>bt-gone</code>" in page.header().object
    assert len(_curves(page)[0]) == 1
    page.run_ids = "bt-gone"
    assert page.shown == [] and page.picker.value == []
    assert "not found" in page.header().object


def test_a_run_without_trades(root: Path) -> None:
    """A zero-trade run: a flat equity line, and the breakdowns and trades say there are none."""
    page = PerformancePage(data_dir=root)
    page.run_ids = _ids(page)["SOLUSDT"]
    (equity,), _ = _curves(page)
    assert set(equity.dimension_values("equity")) == {10_000.0}
    assert "no trades in this window" in page.breakdowns().object
    assert "No trades" in page.trades().object


def test_daily_curve_needs_the_export(root: Path) -> None:
    """perf_curve=daily draws equity.csv; a run without that export is named, not drawn."""
    page = PerformancePage(data_dir=root, curve="daily")
    ids = _ids(page)
    page.run_ids = f"{ids['BTCUSDT']},{ids['ETHUSDT']}"
    layout, notes = page.overlay()
    assert layout is not None
    top, _ = layout
    assert [c.label.split()[0] for c in top] == ["BTCUSDT"]
    assert len(notes) == 1 and "no equity.csv export" in notes[0]
    assert "no equity.csv export" in page.chart()[0].object


def test_refresh_adds_new_runs_and_keeps_the_selection_and_chart(root: Path) -> None:
    """A run saved while the page is open joins the picker on refresh(); the selection, the
    window and the chart's inputs are untouched, so the plot (and its zoom) is not rebuilt."""
    page = PerformancePage(data_dir=root)
    ids = _ids(page)
    page.param.update(run_ids=ids["BTCUSDT"], window="1d")
    changes: list[str] = []
    page.param.watch(lambda event: changes.append(event.name), ["shown", "curve", "run_ids"])
    newer = _save(root, _run(seed=6, symbol="XRPUSDT", created_at_ms=START_MS + 9 * DAY_MS))
    page.refresh()
    assert page.runs[0].run_id == newer.run_id
    assert next(iter(page.picker.options.values())) == newer.run_id
    assert page.picker.value == [ids["BTCUSDT"]]
    assert (page.run_ids, page.window) == (ids["BTCUSDT"], "1d")
    assert changes == []
    page.refresh()  # nothing new: no param changes at all
    assert changes == []
    assert page._chart_stream.revision == 0  # the plot drawn first was never redrawn


def _lines(root: Any) -> list[GlyphRenderer]:
    """The visible, named equity lines under a rendered Bokeh ``root``."""
    return [
        r
        for r in root.select({"type": GlyphRenderer})
        if isinstance(r.glyph, Line) and r.visible and r.name
    ]


def test_ticking_runs_updates_the_page_in_place(root: Path) -> None:
    """The laid-out page is drawn once: ticking a run sends its curve into the same plot (its
    axes fit the new curves) and rewrites the tables' panes; unticking all hides the plot."""
    page = PerformancePage(data_dir=root, point_budget=2000)
    ids = _ids(page)
    page.run_ids = ids["BTCUSDT"]
    plot = page._chart_plot
    assert plot is not None
    drawn = page._chart_box.get_root(Document())  # the chart as one browser session has it
    (line,) = _lines(drawn)
    assert line.name.startswith("BTCUSDT") and line.glyph.line_color == RUN_COLOURS[0]
    (equity,) = [f for f in drawn.select({"type": Figure}) if line in f.renderers]
    before = equity.y_range.end
    page.picker.value = [ids["BTCUSDT"], ids["ETHUSDT"]]
    assert page._chart_plot is plot and plot.visible
    lines = _lines(drawn)
    assert line in lines and all(r in equity.renderers for r in lines)
    assert {(r.name.split()[0], r.glyph.line_color) for r in lines} == {
        ("BTCUSDT", RUN_COLOURS[0]),
        ("ETHUSDT", RUN_COLOURS[1]),
    }
    layout, _ = page.overlay()
    assert layout is not None
    highest = max(float(c.dimension_values("equity").max()) for c in layout[0])
    assert equity.y_range.end != before and equity.y_range.end >= highest  # framewise
    for pane, view in (
        (page._header, page.header()),
        (page._comparison, page.comparison()),
        (page._breakdowns, page.breakdowns()),
        (page._reports, page.report_links()),
    ):
        assert pane.object == view.object
    assert f'title="{ids["ETHUSDT"]}"' in page._comparison.object
    table, paging = page.trades()
    assert page._trades_table.object == table.object and page._trades_paging.visible
    assert page._trades_position.object == paging[1].object
    page.trades_page = 2
    assert "page 2 of" in page._trades_position.object
    page.picker.value = []
    assert not plot.visible and page._comparison.object == page._trades_table.object == ""
    assert not page.breakdown_widget.visible and not page._trades_paging.visible
    assert "Tick one or more runs" in page._header.object
    page.picker.value = [ids["SOLUSDT"]]
    assert page._chart_plot is plot and plot.visible
    assert [r.name.split()[0] for r in _lines(drawn)] == ["SOLUSDT"]


def test_more_runs_than_colours_shows_the_first(root: Path) -> None:
    """At most MAX_RUNS curves; the header says the rest are left out."""
    for n in range(MAX_RUNS):
        _save(
            root,
            _run(seed=20 + n, symbol="BNBUSDT", created_at_ms=START_MS + (10 + n) * DAY_MS),
            export=False,
        )
    page = PerformancePage(data_dir=root)
    page.run_ids = ",".join(run.run_id for run in page.runs)
    assert len(page.shown) == MAX_RUNS
    assert f"Showing the first {MAX_RUNS} selected runs" in page.header().object


def test_report_links_show_the_latest_backtest_report(root: Path) -> None:
    """A recorded report: status glyph + word, its HTML path and the command to open it."""
    html = root / "reports" / "backtest" / "2026-01-05" / "backtest.html"
    html.parent.mkdir(parents=True)
    html.write_text("<html></html>")
    run = ReportRun(
        report="backtest",
        notebook="backtest_report.ipynb",
        day=date(2026, 1, 5),
        status="success",
        parameters={},
        started_ms=START_MS,
        finished_ms=START_MS + 60_000,
        outputs={"html": str(html)},
    )
    record_run(root, run)
    page = PerformancePage(data_dir=root, clock=lambda: START_MS + 3_660_000)
    text = page.report_links().object
    assert "<b>backtest</b>" in text and "✓ ok" in text
    assert f"<code>{html}</code>" in text
    assert f"python3 -m webbrowser file://{html}" in text
    assert "last good run 2026-01-01 00:01 UTC (1h 0m ago)" in text


def test_the_page_renders(root: Path) -> None:
    """The whole page builds its Bokeh models with runs selected (no browser)."""
    page = PerformancePage(data_dir=root)
    page.run_ids = ",".join(run.run_id for run in page.runs)
    page.__panel__().get_root()
    assert len(page.trades_frame()) > 0
    assert "▲ long" in page.trades()[0].object or "▼ short" in page.trades()[0].object


def test_the_trades_table_pages_newest_first(root: Path) -> None:
    """25 trades a page, newest entry first, across the selected runs; the buttons turn the
    page (perf_page) and a page past the end shows the last one."""
    page = PerformancePage(data_dir=root)
    ids = _ids(page)
    page.run_ids = f"{ids['BTCUSDT']},{ids['ETHUSDT']}"
    frame = page.trades_frame()
    total = sum(len(page.run_data(i).trades) for i in page.shown)
    assert len(frame) == total > 25
    assert list(frame["entry_time_ms"]) == sorted(frame["entry_time_ms"], reverse=True)
    pages = -(-total // 25)
    first = page.trades()
    assert f"trades 1–25 of {total}, newest entry first · page 1 of {pages}" in first[1][1].object
    assert first[0].object.count("<tr>") == 26  # the head and 25 trades
    assert page.newer_button.disabled and not page.older_button.disabled
    page.older_button.clicks += 1
    assert page.trades_page == 2
    assert f"page 2 of {pages}" in page.trades()[1][1].object
    page.newer_button.clicks += 1
    assert page.trades_page == 1
    page.trades_page = 99
    last = page.trades()
    assert f"page {pages} of {pages}" in last[1][1].object
    assert page.older_button.disabled


def test_the_workbench_opens_the_drill_down(root: Path) -> None:
    """Workbench.open_performance(run_ids) shows this page with those runs compared."""
    workbench = Workbench(data_dir=root)
    ids = [run.run_id for run in saved_runs(Lake(root / "lake"))][:2]
    workbench.open_performance(ids)
    view = workbench.page_view("performance")
    assert workbench.page == "performance"
    assert isinstance(view, PerformancePage)
    assert view.shown == ids and view.picker.value == ids


def test_a_trade_links_to_its_signal(root: Path) -> None:
    """A trade of a lake signal links to the Signals page (symbol and signal id, in the href
    with the Signals page's URL keys too); a click calls navigate."""
    calls: list[tuple[str, dict[str, str]]] = []
    page = PerformancePage(
        data_dir=root, navigate=lambda target, **params: calls.append((target, params))
    )
    ids = _ids(page)
    page.run_ids = ids["BTCUSDT"]
    table = page.trades()[0]
    assert isinstance(table, ClickableHTML)
    trades = page.run_data(ids["BTCUSDT"]).trades
    newest = trades.sort_values("entry_time_ms").iloc[-1]
    assert f"sig_signal={newest['signal_id']}" in table.object
    assert "sig_symbol=BTCUSDT" in table.object
    table._handle_msg({"page": "signals", "symbol": "BTCUSDT", "signal_id": newest["signal_id"]})
    assert calls == [("signals", {"symbol": "BTCUSDT", "signal_id": newest["signal_id"]})]


def test_a_damaged_equity_export_spares_the_realised_curve(root: Path) -> None:
    """A garbled equity.csv: the daily chart names the file; the realised chart still draws."""
    page = PerformancePage(data_dir=root, curve="daily")
    run_id = _ids(page)["BTCUSDT"]
    (root / "backtests" / run_id / "equity.csv").write_text("when,value\n1,2\n")
    page.run_ids = run_id
    layout, notes = page.overlay()
    assert layout is None and len(notes) == 1 and "equity.csv" in notes[0]
    assert "is not an equity export" in page.chart().object
    page.curve = "trades"
    assert page.overlay()[0] is not None


def test_a_damaged_run_list_is_an_error_state(root: Path) -> None:
    """The backtest_runs partition cut in half: the page says it cannot read the runs."""
    damage_partition(
        partition_version(
            Lake(root / "lake"), dataset="backtest_runs", symbol="BTCUSDT", partition="year=2026"
        )
    )
    page = PerformancePage(data_dir=root)
    assert page.error is not None and "could not read the saved runs" in page.error
    assert "✕ error" in page.header().object
    page.__panel__().get_root()

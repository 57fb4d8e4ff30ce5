"""The Signals page without a browser: params drive the views (the selected signal's audit, the
range the chart is drawn at), widgets and the chart's range stream drive the params, refresh()
adds new bars in place without moving the zoom, and every empty state says what is missing.

The data root holds a lake backfilled from the local exchange and scored by the signal engine
(see tests/signals/test_chart.py); each test works on a copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import polars as pl
import pyarrow as pa
import pytest
from bokeh.document import Document
from bokeh.models import Quad, Scatter, Segment
from bokeh.plotting import figure

import workbench.signals as signals_module
from ingmon.api.cache import TTLCache
from ingmon.lake import Lake
from ingmon.schema import CANDLES
from ingmon.signals.chart import (
    CHART_BAR_BUDGET,
    candle_extent,
    default_range,
    interval_label,
    signal_audit,
    symbol_signals,
)
from ingmon.times import DAY_MS, HOUR_MS, MINUTE_MS, parse_instant_ms
from tests.monitor._lake import signal_row, write_candles, write_signals
from tests.signals.test_chart import SYMBOL, scored_lake
from workbench.signals import (
    RESULTS,
    TABLE_COLUMNS,
    SignalsPage,
    audit_html,
    format_value,
    signal_table,
)

# Bokeh's DataTable source conversion calls DataFrame.reset_index(inplace=True) (pandas 3.1).
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No read cached across tests (or across a refresh within one)."""
    monkeypatch.setattr(signals_module, "_READS", TTLCache(0.0))
    yield
    pn.state.reset()


@pytest.fixture(scope="module")
def scored_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signals_page")
    scored_lake(root)
    return root


@pytest.fixture
def data_dir(scored_root: Path, tmp_path: Path) -> Path:
    """A copy of the scored data root this test may change."""
    copy = tmp_path / "data"
    shutil.copytree(scored_root, copy, symlinks=True)
    return copy


def text(pane: Any) -> str:
    return str(pane.object)


def rendered(page: SignalsPage) -> tuple[Any, Any]:
    """(candle figure, profile figure) of the page's layout rendered into a Bokeh document."""
    root = page.__panel__().get_root(Document())
    figures = list(root.select({"type": figure}))
    candles = [f for f in figures if any(isinstance(r.glyph, Segment) for r in _glyphs(f))]
    others = [f for f in figures if f not in candles]
    assert len(candles) == 1 and len(others) == 1
    return candles[0], others[0]


def _glyphs(fig: Any) -> list[Any]:
    return [r for r in fig.renderers if hasattr(r, "glyph")]


def glyph_rows(fig: Any, kind: type) -> list[int]:
    """Rows drawn by each renderer of ``kind`` on ``fig``."""
    return [
        len(r.data_source.data[next(iter(r.data_source.data))]) if r.data_source.data else 0
        for r in _glyphs(fig)
        if isinstance(r.glyph, kind)
    ]


def x_range_ms(fig: Any) -> tuple[int, int]:
    """The figure's time range in epoch ms (Bokeh holds datetimes or ms)."""
    return signals_module._ms(fig.x_range.start), signals_module._ms(fig.x_range.end)


def table_of(page: SignalsPage) -> Any:
    return page._table  # the Tabulator the layout shows


def zoom(page: SignalsPage, start_ms: int, end_ms: int) -> None:
    """What Bokeh sends when the user zooms or pans: a RangeX event with datetimes."""
    assert page._range_stream is not None
    page._range_stream.event(x_range=(np.datetime64(start_ms, "ms"), np.datetime64(end_ms, "ms")))


# ---- plain functions ----------------------------------------------------------------------------


def test_format_value_prints_audit_values_for_people() -> None:
    """Missing as –, whole floats without decimals, six significant digits, lists joined."""
    assert format_value(None) == "–"
    assert format_value(float("nan")) == "–"
    assert format_value(20.0) == "20"
    assert format_value(0.000947023123) == "0.000947023"
    assert format_value(60698.74) == "60698.7"
    assert format_value([7, 21]) == "7–21"
    assert format_value(True) == "yes"
    assert format_value("london") == "london"


def test_signal_table_lists_newest_first_with_glyphs() -> None:
    """Time (UTC) of the bar's close, direction as glyph + word, score out of 7, – unscored."""
    frame = pl.DataFrame(
        {
            "signal_id": ["a", "b"],
            "bar_open_ms": [0, 15 * MINUTE_MS],
            "bar_close_ms": [15 * MINUTE_MS - 1, 30 * MINUTE_MS - 1],
            "setup": ["absorption", "squeeze_fire"],
            "direction": ["long", "short"],
            "score": [5, None],
            "confidence": ["high", None],
        }
    )
    table = signal_table(frame)
    assert tuple(table.columns) == TABLE_COLUMNS
    assert table.to_dict("records") == [
        {"time (UTC)": "1970-01-01 00:29", "setup": "squeeze_fire", "direction": "▼ short",
         "score": "–", "confidence": "–", "signal_id": "b"},
        {"time (UTC)": "1970-01-01 00:14", "setup": "absorption", "direction": "▲ long",
         "score": "5 / 7", "confidence": "high", "signal_id": "a"},
    ]  # fmt: skip
    assert tuple(signal_table(pl.DataFrame()).columns) == TABLE_COLUMNS


# ---- the page -----------------------------------------------------------------------------------


def test_the_page_opens_on_the_latest_week_of_the_first_symbol(data_dir: Path) -> None:
    """No params: the first symbol with candles, the default range, the signals of that range
    newest first, and a hint to select one."""
    page = SignalsPage(data_dir=data_dir)
    lake = Lake(data_dir / "lake")
    extent = candle_extent(lake, SYMBOL)
    assert extent is not None
    assert page.symbol == SYMBOL and page.timeframe == "15m"
    assert page.start == page.end == page.signal_id == ""
    assert page._view == default_range(extent)
    signals = symbol_signals(lake, SYMBOL)
    start, end = default_range(extent)
    inside = signals.filter((pl.col("bar_close_ms") >= start) & (pl.col("bar_close_ms") < end))
    rows = table_of(page).value
    assert rows["signal_id"].tolist() == inside["signal_id"].to_list()[::-1]
    assert f"{len(rows)} of {signals.height} signals" in text(page._table_caption)
    assert "Select a signal" in text(page.audit_view())


def test_the_chart_draws_the_budgeted_bars_with_the_profile_on_the_same_price_axis(
    data_dir: Path,
) -> None:
    """Rendered: one bar per aggregated candle (≤ the budget), one marker per signal of the
    range, the profile's bins beside it sharing the price range, the x range = the view."""
    page = SignalsPage(data_dir=data_dir)
    candles, profile = rendered(page)
    assert page._view is not None
    view = page.visible(*page._view)
    assert view is not None and view.profile is not None
    assert glyph_rows(candles, Quad) == [view.bars.height]
    assert view.bars.height <= CHART_BAR_BUDGET
    assert glyph_rows(candles, Segment) == [view.bars.height]
    markers, ring = glyph_rows(candles, Scatter)
    assert markers == len(table_of(page).value) and ring == 0
    assert glyph_rows(profile, Quad) == [len(view.profile.profile)]
    assert candles.y_range is profile.y_range
    bars = view.bars
    assert candles.y_range.start < bars["low"].min() and bars["high"].max() < candles.y_range.end
    start_ms, end_ms = page._view
    assert x_range_ms(candles) == (start_ms, end_ms)


def test_setting_signal_id_shows_its_audit_and_selects_its_row(data_dir: Path) -> None:
    """The param drives the views: the audit of that signal (7 points, ✓/✕/– with inputs and
    thresholds), its row selected, a ring on its marker."""
    page = SignalsPage(data_dir=data_dir)
    candles, _ = rendered(page)
    rows = table_of(page).value
    signal_id = str(rows["signal_id"].iloc[3])
    page.signal_id = signal_id
    assert table_of(page).selection == [3]
    html = text(page.audit_view())
    audit = signal_audit(Lake(data_dir / "lake"), symbol=SYMBOL, signal_id=signal_id)
    assert audit is not None and len(audit.points) == 7
    assert html.count('data-result="') == 7
    for value, (glyph, word, _) in RESULTS.items():
        count = sum(1 for point in audit.points if point.value == value)
        assert html.count(f'data-result="{word}">{glyph} {word}') == count
    for point in audit.points:
        assert point.name in html
        for name in point.thresholds:
            assert f"{name} = " in html
    assert f"Score {audit.score} / 7" in html and signal_id in html
    assert glyph_rows(candles, Scatter)[1] == 1


def test_clicking_a_row_selects_its_signal(data_dir: Path) -> None:
    """The table drives the param (and so the URL)."""
    page = SignalsPage(data_dir=data_dir)
    table = table_of(page)
    table.selection = [2]
    assert page.signal_id == table.value["signal_id"].iloc[2]
    assert "Audit:" in text(page.audit_view())
    table.selection = []
    assert page.signal_id == table.value["signal_id"].iloc[2]  # deselecting keeps the audit


def test_the_symbol_timeframe_and_range_widgets_drive_the_params(data_dir: Path) -> None:
    """Selects set symbol and timeframe; a new symbol opens on its latest days with nothing
    selected; the range buttons set start/end."""
    lake = Lake(data_dir / "lake")
    extent = candle_extent(lake, SYMBOL)
    assert extent is not None
    write_candles(
        lake,
        symbol="SOLUSDT",
        open_times_ms=range(extent[1] - HOUR_MS, extent[1], MINUTE_MS),
    )
    page = SignalsPage(data_dir=data_dir, signal_id="x")
    layout = page.__panel__()
    symbol, timeframe = layout.select(pn.widgets.Select)
    assert list(symbol.options) == [SYMBOL, "SOLUSDT"]
    buttons = {b.label: b for b in layout.select(pn.widgets.Button)}
    buttons["1d"].clicks += 1
    assert parse_instant_ms(page.end) - parse_instant_ms(page.start) > DAY_MS
    assert parse_instant_ms(page.start) == extent[1] - DAY_MS
    assert page._view == (parse_instant_ms(page.start), parse_instant_ms(page.end))
    symbol.value = "SOLUSDT"
    assert page.symbol == "SOLUSDT"
    assert page.start == page.end == page.signal_id == ""
    assert "No 15m signals for SOLUSDT yet" in text(page._table_caption)
    symbol.value = SYMBOL
    table_of(page).selection = [0]
    assert page.signal_id
    timeframe.value = "1h"
    assert page.timeframe == "1h"
    assert page.signal_id == ""  # an id belongs to one timeframe
    assert "No 1h signals for BTCUSDT yet" in text(page._table_caption)
    timeframe.value = "15m"
    assert len(table_of(page).value) > 0


def test_a_link_opens_the_range_and_signal_it_names(data_dir: Path) -> None:
    """All the URL's params at once, or one at a time as the URL sync applies them: the view is
    the linked range and the linked signal stays selected even if it is off screen."""
    lake = Lake(data_dir / "lake")
    signals = symbol_signals(lake, SYMBOL)
    signal_id = str(signals["signal_id"][0])
    at = int(signals["bar_close_ms"][-1]) + 1  # the URL keeps whole seconds
    start, end = at - 6 * HOUR_MS, at + HOUR_MS
    link = {
        "symbol": SYMBOL,
        "timeframe": "15m",
        "start": _iso(start),
        "end": _iso(end),
        "signal_id": signal_id,
    }
    together = SignalsPage(data_dir=data_dir)
    together.param.update(**link)
    one_by_one = SignalsPage(data_dir=data_dir)
    for name, value in link.items():
        one_by_one.param.update(**{name: value})
    for page in (together, one_by_one):
        assert page._view == (start, end)
        assert page.signal_id == signal_id
        assert "Audit:" in text(page.audit_view())
        assert table_of(page).selection == []  # its row is outside the range


def test_selecting_an_off_screen_signal_moves_the_default_range_to_it(data_dir: Path) -> None:
    """A drill-down to a signal outside the default range centres the range on it (same span,
    at most 3 days); with a range in the params, the range stays."""
    signals = symbol_signals(Lake(data_dir / "lake"), SYMBOL)
    first = signals.row(0, named=True)
    page = SignalsPage(data_dir=data_dir, default_days=1)
    assert page._view is not None
    span = page._view[1] - page._view[0]
    assert not page._view[0] <= first["bar_close_ms"] < page._view[1]
    page.signal_id = first["signal_id"]
    assert page._view[0] <= first["bar_close_ms"] < page._view[1]
    assert page._view[1] - page._view[0] == span
    assert page.start and page.end  # the moved range is in the URL
    (selected,) = table_of(page).selection
    assert table_of(page).value["signal_id"].iloc[selected] == first["signal_id"]
    linked = SignalsPage(data_dir=data_dir, default_days=1)
    last = int(signals["bar_close_ms"][-1]) + 1
    linked.param.update(start=_iso(last - 2 * HOUR_MS), end=_iso(last + HOUR_MS))
    linked.signal_id = first["signal_id"]
    assert linked._view == (last - 2 * HOUR_MS, last + HOUR_MS)


def test_a_zoom_reaches_the_url_params_the_table_and_the_bars(data_dir: Path) -> None:
    """The range stream (the user zooming) sets start/end, lists that range's signals and
    re-aggregates the bars to it; the plot reporting its own range changes nothing."""
    page = SignalsPage(data_dir=data_dir)
    candles, _ = rendered(page)
    assert page._view is not None
    before = page._view
    zoom(page, *before)
    assert page.start == page.end == ""
    start = before[0] + DAY_MS + 13 * MINUTE_MS + 30_000  # mid-minute: 301 whole minutes
    end = start + 5 * HOUR_MS
    zoom(page, start, end)
    assert (page.start, page.end) == (_iso(start), _iso(end))
    assert page._view == (start, end)
    signals = symbol_signals(Lake(data_dir / "lake"), SYMBOL)
    inside = signals.filter((pl.col("bar_close_ms") >= start) & (pl.col("bar_close_ms") < end))
    assert sorted(table_of(page).value["signal_id"]) == sorted(inside["signal_id"].to_list())
    view = page.visible(start, end)
    assert view is not None and view.interval_ms == MINUTE_MS
    assert glyph_rows(candles, Quad) == [view.bars.height] == [301]
    assert f"{view.bars.height} bars of 1m" in text(page._chart_caption())


def test_refresh_adds_new_bars_in_place_and_keeps_the_zoom(data_dir: Path) -> None:
    """New candles after the last one: refresh() redraws the same plot with them, the x range
    the user zoomed to unchanged; a refresh with nothing new does nothing."""
    page = SignalsPage(data_dir=data_dir)
    candles, _ = rendered(page)
    lake = Lake(data_dir / "lake")
    extent = candle_extent(lake, SYMBOL)
    assert extent is not None
    start, end = extent[1] - 2 * HOUR_MS, extent[1] + HOUR_MS
    candles.x_range.update(start=start, end=end)  # the browser's zoom, then its event
    zoom(page, start, end)
    drawn = page._plot.objects[0]
    assert glyph_rows(candles, Quad) == [120]
    page.refresh()
    revision = page.revision
    page.refresh()
    assert page.revision == revision
    last = lake.read(CANDLES, symbols=SYMBOL, param="1m", start=extent[1] - MINUTE_MS)
    new = last.to_pylist()[-1]
    rows = []
    for minute in range(5):
        row = dict(new)
        row["open_time"] = extent[1] + minute * MINUTE_MS
        row["close_time"] = extent[1] + (minute + 1) * MINUTE_MS - 1
        rows.append({k: v for k, v in row.items() if k not in ("symbol", "interval")})
    lake.upsert(
        CANDLES, pa.Table.from_pylist(rows, schema=CANDLES.arrow_schema), symbol=SYMBOL, param="1m"
    )
    page.refresh()
    assert page.revision == revision + 1
    assert page._plot.objects[0] is drawn
    assert glyph_rows(candles, Quad) == [125]
    assert x_range_ms(candles) == (start, end)
    assert page._view == (start, end)


def test_a_new_symbol_or_range_moves_the_drawn_chart_in_place(data_dir: Path) -> None:
    """Another symbol, a range button, back: the same plot (no new one, in the server or the
    browser) gets the new bars, the new time range (its reset too) and a price axis on them;
    the table, the caption and the audit panes follow."""
    lake = Lake(data_dir / "lake")
    extent = candle_extent(lake, SYMBOL)
    assert extent is not None
    opens = range(extent[1] - 2 * DAY_MS, extent[1] - DAY_MS, MINUTE_MS)
    write_candles(lake, symbol="SOLUSDT", open_times_ms=opens, price=5.0)
    page = SignalsPage(data_dir=data_dir)
    candles, profile = rendered(page)
    drawn = page._plot.objects[0]
    table_of(page).selection = [0]
    assert "Audit:" in text(page._audit)
    page.symbol = "SOLUSDT"
    sol = candle_extent(lake, "SOLUSDT")
    assert sol is not None and page._view == default_range(sol)
    assert page._plot.objects[0] is drawn
    assert x_range_ms(candles) == page._view
    assert (candles.x_range.reset_start, candles.x_range.reset_end) == page._view
    view = page.visible(*page._view)
    assert view is not None
    assert glyph_rows(candles, Quad) == [view.bars.height] and glyph_rows(profile, Quad) == [0]
    assert glyph_rows(candles, Scatter) == [0, 0]  # no signals, no ring
    assert candles.y_range.start < 5.0 < candles.y_range.end
    assert f"{view.bars.height} bars of {interval_label(view.interval_ms)}" in text(page._caption)
    assert "no volume profile" in text(page._caption)  # one price all along
    assert "No 15m signals for SOLUSDT yet" in text(page._table_caption)
    assert text(page._audit) == text(page.audit_view()) == ""
    page.show_range("1d")
    assert page._plot.objects[0] is drawn
    assert x_range_ms(candles) == page._view == (sol[0], parse_instant_ms(page.end))
    page.symbol = SYMBOL
    assert x_range_ms(candles) == page._view == default_range(extent)
    assert glyph_rows(candles, Scatter)[0] == len(table_of(page).value) > 0
    assert candles.y_range.start > 5.0
    assert "Select a signal" in text(page._audit)


def test_a_link_applied_to_a_built_page_draws_at_its_range(data_dir: Path) -> None:
    """The URL's params arrive one at a time after the page built its chart (a link, a
    reload): the plot drawn next opens at the linked range, and its range stream holds it, so
    nothing reports another range back to the URL."""
    extent = candle_extent(Lake(data_dir / "lake"), SYMBOL)
    assert extent is not None
    start, end = extent[1] - 9 * HOUR_MS, extent[1] - 2 * HOUR_MS
    page = SignalsPage(data_dir=data_dir)
    page.param.update(start=_iso(start))
    page.param.update(end=_iso(end))
    candles, _ = rendered(page)
    assert x_range_ms(candles) == (start, end) == page._view
    assert page._range_stream is not None
    assert tuple(signals_module._ms(t) for t in page._range_stream.x_range) == (start, end)
    assert (page.start, page.end) == (_iso(start), _iso(end))
    view = page.visible(start, end)
    assert view is not None and glyph_rows(candles, Quad) == [view.bars.height]
    assert text(page._caption) == text(page._chart_caption())


def test_empty_lake_then_candles_arrive(tmp_path: Path) -> None:
    """No candles at all: says so (no exception); once candles are stored, refresh() opens the
    first symbol."""
    root = tmp_path / "empty"
    (root / "lake").mkdir(parents=True)
    page = SignalsPage(data_dir=root)
    layout = page.__panel__()
    assert page.symbol is None
    assert "No candles in the lake yet" in text(page._plot.objects[0])
    assert text(page.audit_view()) == ""
    assert layout is not None
    write_candles(Lake(root / "lake"), symbol=SYMBOL, open_times_ms=range(0, HOUR_MS, MINUTE_MS))
    page.refresh()
    assert page.symbol == SYMBOL
    assert page._range_stream is not None


def test_unknown_symbol_unknown_signal_and_unscored_signal_say_so(data_dir: Path) -> None:
    """Each empty state has its own words: no candles of the symbol, an id the symbol does not
    have, a signal without a score; a malformed range falls back to the default one."""
    page = SignalsPage(data_dir=data_dir, symbol="XRPUSDT")
    assert "No 1m candles of XRPUSDT in the lake" in text(page._plot.objects[0])
    assert "BTCUSDT" in text(page._plot.objects[0])
    page.symbol = SYMBOL
    page.signal_id = "f" * 32
    assert "Unknown signal" in text(page.audit_view())
    page.param.update(start="yesterday", end="soon")
    extent = candle_extent(Lake(data_dir / "lake"), SYMBOL)
    assert extent is not None and page._view == default_range(extent)
    lake = Lake(data_dir / "lake")
    write_signals(lake, [signal_row(bar_open_ms=extent[1] - HOUR_MS, score=None)], symbol=SYMBOL)
    fresh = SignalsPage(data_dir=data_dir)
    unscored = symbol_signals(lake, SYMBOL).filter(pl.col("score").is_null())
    fresh.signal_id = str(unscored["signal_id"][0])
    assert "Not scored under score-1 yet" in text(fresh.audit_view())
    assert "–" in table_of(fresh).value["score"].tolist()


def test_audit_html_without_a_score_keeps_the_signal_facts(data_dir: Path) -> None:
    """The audit header names the setup, direction, time and prices even when unscored."""
    lake = Lake(data_dir / "lake")
    signal = symbol_signals(lake, SYMBOL).row(0, named=True)
    audit = signal_audit(lake, symbol=SYMBOL, signal_id=signal["signal_id"])
    assert audit is not None
    html = audit_html(audit)
    assert signal["setup"] in html and "UTC" in html and "rules score-1" in html


def _iso(value_ms: int) -> str:
    return signals_module._iso(value_ms)

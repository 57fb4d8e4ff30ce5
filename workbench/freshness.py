"""The Freshness drill-down: one dataset × symbol up close — latency over time, cadence
deviations, a gaps timeline and the latest ingest batches — opened from a cell of the Overview's
grid (``?page=freshness&fr_dataset=candles&fr_symbol=BTCUSDT``).

The data is ``ingmon.monitor.series_detail`` (the health model's own definitions, so the page
explains the cell it came from), read at most once per ``DETAIL_TTL_SECONDS`` per series and
window. ``refresh()`` replaces the plots' data in place (their Bokeh data sources), so the
user's zoom survives the periodic refresh; a new series or window gets new plots.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, FixedTicker, Range1d

from ingmon.api.cache import TTLCache
from ingmon.config import Settings, load_settings
from ingmon.lake import Lake
from ingmon.monitor.series_detail import (
    MAX_WINDOW_HOURS,
    GapRange,
    IngestBatch,
    SeriesDetail,
    peak_indices,
    series_detail,
    series_symbols,
)
from ingmon.schema import MARKET_SERIES
from ingmon.times import now_ms
from workbench.plots import (
    KIND_COLOURS,
    LINE_BUDGET,
    LineChart,
    badge,
    empty_state,
    escape,
    format_duration,
    hover,
    html_pane,
    html_table,
    status_colour,
    threshold,
    time_figure,
    to_datetime,
    utc,
)

__all__ = [
    "CADENCE_BUDGET",
    "DETAIL_TTL_SECONDS",
    "WINDOWS",
    "FreshnessPage",
    "batch_rows",
    "gap_text",
    "series_title",
]

DETAIL_TTL_SECONDS = 5.0
WINDOWS: dict[str, int] = {"1 h": 1, "6 h": 6, "24 h": 24, "3 d": 72, "7 d": MAX_WINDOW_HOURS}
_DETAILS = TTLCache(DETAIL_TTL_SECONDS, max_entries=64)
_GAP_ROWS = ("missing", "exchange", "stale")
_NONE = "–"  # the selects' empty choice
CADENCE_BUDGET = 2 * LINE_BUDGET  # cadence points sent at most (the largest deviations kept)
_GAPS_LISTED = 20
_BATCH_HEADERS = (
    "written (UTC)",
    "fetched → written",
    "first event (UTC)",
    "last event (UTC)",
    "rows fetched",
    "inserted",
    "replaced",
    "source",
    "live",
    "latency",
)


def series_title(dataset: str, param: str | None, symbol: str) -> str:
    """``candles 1m · BTCUSDT``."""
    return " ".join(part for part in (dataset, param) if part) + f" · {symbol}"


def batch_rows(batches: tuple[IngestBatch, ...]) -> list[list[str]]:
    """The latest batches as table cells (HTML), newest first."""
    return [
        [
            escape(utc(batch.written_ms)),
            escape(format_duration((batch.written_ms - batch.fetched_ms) / 1000)),
            escape(utc(batch.first_event_ms)),
            escape(utc(batch.last_event_ms)),
            str(batch.rows_fetched),
            str(batch.rows_inserted),
            str(batch.rows_replaced),
            escape(batch.source),
            "live" if batch.live else "backfill",
            escape(format_duration(batch.latency_seconds)),
        ]
        for batch in batches
    ]


def gap_text(gap: GapRange) -> str:
    """``missing: 3 slots, 2026-02-28 23:20:00 UTC – 23:23:00 (3m 0s)`` (HTML)."""
    what = {"missing": "missing", "exchange": "missing at the exchange", "stale": "stale"}
    count = ""
    if gap.missing is not None:
        count = f"{_plural(gap.missing, 'trade id' if 'trade ids' in gap.label else 'slot')}, "
    start, end = utc(gap.start_ms), utc(gap.end_ms)
    if start[:10] == end[:10]:
        end = end[11:]
    return escape(f"{what[gap.kind]}: {count}{start} – {end} ({format_duration(gap.seconds)})")


def _place(box: pn.Column, pane: pn.pane.Bokeh | None) -> None:
    """``box`` holds ``pane`` (or nothing); unchanged when it already does."""
    wanted = [] if pane is None else [pane]
    if box.objects != wanted:
        box.objects = wanted


def _ratio(value: float) -> str:
    return f"{value:+.2f}"


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}{'es' if noun.endswith(('ch', 'sh', 's')) else 's'}"


def _window_label(hours: int) -> str:
    """``24 h``, ``3 d`` (as the window buttons say)."""
    names = {value: name for name, value in WINDOWS.items()}
    return names.get(hours, f"{hours} h")


class FreshnessPage(pn.viewable.Viewer):
    """One series' freshness in detail. State: ``dataset``, ``symbol`` and ``window_hours``
    (in the URL as ``fr_dataset``, ``fr_symbol``, ``fr_hours``); ``detail`` is what was read."""

    URL_PARAMS: ClassVar[dict[str, str]] = {
        "dataset": "fr_dataset",
        "symbol": "fr_symbol",
        "window_hours": "fr_hours",
    }

    dataset = param.String(default=None, allow_None=True, doc="Market dataset (its default param)")
    symbol = param.String(default=None, allow_None=True, doc="Symbol")
    window_hours = param.Selector(objects=WINDOWS, default=24, doc="Hours before now shown")
    detail = param.ClassSelector(
        class_=SeriesDetail, default=None, allow_None=True, doc="What was read"
    )
    symbols = param.List(default=[], item_type=str, doc="Symbols the lake holds")
    loaded_at_ms = param.Integer(default=None, allow_None=True, doc="When the detail was read")
    error = param.String(default=None, allow_None=True, doc="Why the last read failed")

    def __init__(
        self,
        *,
        data_dir: Path,
        navigate: Callable[..., None] | None = None,
        settings: Settings | None = None,
        clock: Callable[[], int] = now_ms,
        **params: Any,
    ) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._settings = settings or load_settings(data_dir=data_dir)
        self._lake = Lake(self._settings.lake_dir)
        self._navigate = navigate
        self._clock = clock
        # The plots of the series and window shown (``_plotted``): a refresh sends them new
        # data in place; another series or window gets new plots, whose ranges follow it.
        self._plotted: tuple[str, str, int] | None = None
        self._latency = LineChart(y_label="latency (s)", unit="s")
        self._cadence = ColumnDataSource(self._cadence_data(None))
        self._gaps = ColumnDataSource(self._gaps_data(None))
        self._window = ColumnDataSource({"time": to_datetime([]), "row": np.zeros(0)})
        self._latency_pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        self._cadence_pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        self._gaps_pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        # A plot is placed in its box only with data to show (an empty plot is no state).
        self._latency_box, self._cadence_box, self._gaps_box = (
            pn.Column(sizing_mode="stretch_width") for _ in range(3)
        )
        self._header = html_pane("")
        self._latency_note = html_pane("")
        self._cadence_note = html_pane("")
        self._gaps_note = html_pane("")
        self._batches = html_pane("")
        # A select always shows one of its options (the browser picks the first otherwise):
        # an empty choice stands for "none picked" and for a value the lake does not know.
        self._dataset_select = pn.widgets.Select(
            label="Dataset",
            options={
                _NONE: "",
                **{
                    series_title(n, s.default_param, "").rstrip(" ·"): n
                    for n, s in MARKET_SERIES.items()
                },
            },
            value="",
            width=180,
        )
        self._symbol_select = pn.widgets.Select(
            label="Symbol", options={_NONE: ""}, value="", width=160
        )
        self._window_select = pn.widgets.RadioButtonGroup.from_param(
            self.param.window_hours, label="Window", color="default"
        )
        self._dataset_select.param.watch(self._picked, "value")
        self._symbol_select.param.watch(self._picked, "value")
        self.param.watch(self._selection_changed, ["dataset", "symbol", "window_hours"])
        self._sync_widgets()

    # ---- state ----

    @property
    def problem(self) -> str | None:
        """Why there is no series to show (HTML), or None."""
        if not self.symbols:
            return empty_state(
                "The lake holds no data yet.",
                "Backfill a symbol first: <code>ingmon backfill --symbol BTCUSDT</code> "
                "(or <code>make demo</code>).",
            )
        if self.dataset and self.dataset not in MARKET_SERIES:
            return empty_state(
                f"Unknown dataset “{self.dataset}”.",
                "The lake's market datasets are " + ", ".join(MARKET_SERIES) + ".",
            )
        if self.symbol and self.symbol not in self.symbols:
            return empty_state(
                f"No data stored for symbol “{self.symbol}”.",
                "Symbols in the lake: " + escape(", ".join(self.symbols)) + ".",
            )
        if not self.dataset or not self.symbol:
            return empty_state(
                "No series picked.",
                "Pick a dataset and a symbol above, or click a cell of the Overview's "
                "freshness grid.",
            )
        return None

    def refresh(self) -> None:
        """Read the series again (at most once per DETAIL_TTL_SECONDS) and update the page in
        place."""
        now = self._clock()
        try:
            self.symbols = series_symbols(self._lake)
            problem = self.problem
            detail = None if problem else self._read(now)
        except Exception as error:  # the page stays up and says why
            self.error = f"could not read the series: {error}"
            self._header.object = badge("error", text=self.error)
            return
        self._sync_widgets()
        self.param.update(detail=detail, loaded_at_ms=now, error=None)
        self._show(detail)

    def _read(self, now: int) -> SeriesDetail:
        dataset, symbol = str(self.dataset), str(self.symbol)  # checked by .problem
        key = (str(self._settings.data_dir), dataset, symbol, self.window_hours)
        return _DETAILS.get(
            key,
            lambda: series_detail(
                self._lake,
                self._settings,
                dataset=dataset,
                symbol=symbol,
                window_hours=self.window_hours,
                now_ms=now,
            ),
        )

    def _selection_changed(self, *_: Any) -> None:
        self._sync_widgets()
        self.refresh()

    def _picked(self, event: Any) -> None:
        """A widget drives its parameter (the empty choice leaves it alone)."""
        name = "dataset" if event.obj is self._dataset_select else "symbol"
        if event.new and event.new != getattr(self, name):
            setattr(self, name, event.new)

    def _sync_widgets(self) -> None:
        """The widgets follow the parameters (a value the lake does not know shows as the
        empty choice: the page says why)."""
        self._symbol_select.options = {_NONE: "", **{s: s for s in self.symbols}}
        for widget, value in (
            (self._dataset_select, self.dataset),
            (self._symbol_select, self.symbol),
        ):
            widget.value = value if value and value in widget.options.values() else ""

    # ---- rendering ----

    def _show(self, detail: SeriesDetail | None) -> None:
        """Put ``detail`` on the page: text panes and plot data in place."""
        self._latency_note.object = self._cadence_note.object = ""
        self._gaps_note.object = self._batches.object = ""
        if detail is None:
            self._header.object = self.problem or ""
            self._plotted = None
            for box in (self._latency_box, self._cadence_box, self._gaps_box):
                _place(box, None)
            return
        self._header.object = self._header_html(detail)
        self._latency_note.object = self._latency_html(detail)
        self._cadence_note.object = self._cadence_html(detail)
        self._gaps_note.object = self._gaps_html(detail)
        self._batches.object = self._batches_html(detail)
        plotted = (detail.dataset, detail.symbol, int(self.window_hours))
        if plotted != self._plotted:
            self._new_plots(detail)
            self._plotted = plotted
        self._latency.update(detail.latency.written_ms, detail.latency.latency_seconds)
        self._cadence.data = self._cadence_data(detail)
        self._gaps.data = self._gaps_data(detail)
        self._window.data = {
            "time": to_datetime([detail.start_ms, detail.end_ms]),
            "row": np.zeros(2),
        }
        shown = detail.latency.written_ms.size > 0
        _place(self._latency_box, self._latency_pane if shown else None)
        shown = detail.cadence.written_ms.size > 0
        _place(self._cadence_box, self._cadence_pane if shown else None)
        shown = detail.has_log or detail.rows > 0
        _place(self._gaps_box, self._gaps_pane if shown else None)

    def _new_plots(self, detail: SeriesDetail) -> None:
        """Plots for another series or window (fresh ranges; the data comes next)."""
        self._latency = LineChart(y_label="latency (s)", unit="s")
        threshold(self._latency.figure, detail.latency.warn_seconds, status="warn")
        threshold(self._latency.figure, detail.latency.error_seconds, status="error")
        self._latency_pane.object = self._latency.figure

        self._cadence = ColumnDataSource(self._cadence_data(None))
        cadence = time_figure(y_label="interval ÷ expected − 1")
        cadence.scatter("time", "deviation", source=self._cadence, color="colour", size=6)
        threshold(cadence, detail.cadence.warn_ratio, status="warn")
        threshold(cadence, detail.cadence.error_ratio, status="error")
        hover(
            cadence,
            ("deviation", "@deviation{+0.00}"),
            ("interval", "@interval s"),
            ("status", "@status"),
        )
        self._cadence_pane.object = cadence

        self._gaps = ColumnDataSource(self._gaps_data(None))
        self._window = ColumnDataSource({"time": to_datetime([]), "row": np.zeros(0)})
        gaps = time_figure(y_label="", height=150)
        gaps.y_range = Range1d(0, len(_GAP_ROWS))
        gaps.quad(
            left="left",
            right="right",
            bottom="bottom",
            top="top",
            source=self._gaps,
            color="colour",
            line_color="colour",
            line_width=3,
        )
        gaps.scatter("time", "row", source=self._window, alpha=0)  # spans the whole window
        gaps.yaxis.ticker = FixedTicker(ticks=[n + 0.5 for n in range(len(_GAP_ROWS))])
        gaps.yaxis.major_label_overrides = {n + 0.5: kind for n, kind in enumerate(_GAP_ROWS)}
        gaps.ygrid.grid_line_color = None
        self._gaps_pane.object = gaps

    def _header_html(self, detail: SeriesDetail) -> str:
        title = series_title(detail.dataset, detail.param, detail.symbol)
        age = (
            f"newest event closed {escape(utc(detail.last_event_close_ms))} "
            f"({format_duration(detail.age_seconds)} ago)"
            if detail.last_event_close_ms is not None
            else "nothing stored"
        )
        window = f"the {_window_label(self.window_hours)} to {escape(utc(detail.end_ms))}"
        parts = [
            f"<h3>Freshness: {escape(title)}</h3>",
            f"<div>{badge(detail.freshness)} {age} · window: {window} · "
            f"{_plural(detail.rows, 'row')} stored · {_plural(detail.batches, 'batch')} "
            "logged</div>",
        ]
        if not detail.has_log and detail.rows == 0:
            parts.append(
                empty_state(
                    f"Nothing stored or logged for {title} in the last "
                    f"{_window_label(self.window_hours)}.",
                    "The worker keeps the lake's symbols fresh: is <code>ingmon worker</code> "
                    "running, and does it watch this symbol?",
                )
            )
        elif not detail.has_log:
            parts.append(
                empty_state(
                    "No ingest_log batches for this series in the window.",
                    "Its latency and cadence are unknown: rows were stored, but no fetch of "
                    "them was logged in the window (an older backfill?).",
                )
            )
        for problem in detail.problems:
            parts.append(f"<div>{badge('error')} {escape(problem)}</div>")
        return "".join(parts)

    def _latency_html(self, detail: SeriesDetail) -> str:
        latency = detail.latency
        title = "<h4>Latency over time</h4>"
        thresholds = (
            f"warn above {format_duration(latency.warn_seconds)}, error above "
            f"{format_duration(latency.error_seconds)} (p95)"
        )
        if latency.written_ms.size == 0:
            return title + empty_state(
                "No live batches in the window.",
                "Latency is measured on live batches only "
                f"({_plural(latency.backfill_batches, 'backfill batch')} not timed).",
            )
        p50, p95 = (float(v) for v in np.percentile(latency.latency_seconds, (50, 95)))
        last = float(latency.latency_seconds[-1])
        return title + (
            f'<div class="ingmon-muted">written − close of the newest event, per live batch: '
            f"{_plural(latency.written_ms.size, 'batch')}, p50 {format_duration(p50)}, p95 "
            f"{format_duration(p95)}, last {format_duration(last)}; "
            f"{thresholds}; {_plural(latency.backfill_batches, 'backfill batch')} not timed</div>"
        )

    def _cadence_html(self, detail: SeriesDetail) -> str:
        cadence = detail.cadence
        title = "<h4>Cadence deviations</h4>"
        expected = format_duration(cadence.expected_seconds)
        open_part = ""
        if cadence.open_interval_seconds is not None and cadence.open_status is not None:
            open_part = (
                f"; {badge(cadence.open_status)} {format_duration(cadence.open_interval_seconds)} "
                "since the last successful batch"
            )
        if cadence.written_ms.size == 0:
            return title + empty_state(
                "Fewer than two successful live batches in the window: no interval yet.",
                f"Expected one every {expected}{open_part}.",
            )
        counts = {s: cadence.statuses.count(s) for s in ("error", "warn") if s in cadence.statuses}
        judged = ", ".join(f"{n} {s}" for s, n in counts.items()) or "all ok"
        return title + (
            f'<div class="ingmon-muted">interval between successful live batches ÷ expected '
            f"{expected}, minus 1: warn above {_ratio(cadence.warn_ratio)}, error above "
            f"{_ratio(cadence.error_ratio)}; "
            f"{_plural(cadence.written_ms.size, 'interval')}, {judged}{open_part}</div>"
        )

    def _gaps_html(self, detail: SeriesDetail) -> str:
        title = "<h4>Gaps timeline</h4>"
        window = _window_label(self.window_hours)
        if not detail.gaps:
            return title + empty_state(f"No gaps in the last {window}.", "")
        counted = sum(1 for gap in detail.gaps if gap.kind == "missing")
        items = "".join(
            f'<li><span style="color:{KIND_COLOURS[gap.kind]}">■</span> {gap_text(gap)}</li>'
            for gap in detail.gaps[:_GAPS_LISTED]
        )
        more = len(detail.gaps) - _GAPS_LISTED
        tail = f"<li>… and {more} more</li>" if more > 0 else ""
        return title + (
            f'<div class="ingmon-muted">{counted} gaps counted by the health model; ranges '
            "missing at the exchange itself are shown, not counted</div>"
            f"<ul>{items}{tail}</ul>"
        )

    def _batches_html(self, detail: SeriesDetail) -> str:
        title = f"<h4>Latest ingest batches ({len(detail.latest_batches)} newest)</h4>"
        if not detail.latest_batches:
            return title + empty_state("No batches logged for this series in the window.", "")
        table = html_table(_BATCH_HEADERS, batch_rows(detail.latest_batches), numeric=(4, 5, 6))
        return f'{title}<div style="overflow-x:auto">{table}</div>'

    @staticmethod
    def _cadence_data(detail: SeriesDetail | None) -> dict[str, Any]:
        """The cadence points (at most CADENCE_BUDGET: the largest deviations kept)."""
        if detail is None:
            times, ratios, intervals = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
            statuses: list[str] = []
        else:
            cadence = detail.cadence
            keep = peak_indices(np.abs(cadence.deviation_ratio), CADENCE_BUDGET)
            times, ratios = cadence.written_ms[keep], cadence.deviation_ratio[keep]
            intervals = cadence.interval_seconds[keep]
            statuses = [cadence.statuses[n] for n in keep]
        return {
            "time": to_datetime(times),
            "deviation": np.asarray(ratios, dtype=np.float64),
            "interval": np.round(np.asarray(intervals, dtype=np.float64), 1),
            "status": statuses,
            "colour": [status_colour(status) for status in statuses],
        }

    @staticmethod
    def _gaps_data(detail: SeriesDetail | None) -> dict[str, Any]:
        gaps = () if detail is None else detail.gaps
        rows = np.asarray([_GAP_ROWS.index(gap.kind) for gap in gaps], dtype=np.float64)
        return {
            "left": to_datetime([gap.start_ms for gap in gaps]),
            "right": to_datetime([gap.end_ms for gap in gaps]),
            "bottom": rows + 0.15,
            "top": rows + 0.85,
            "kind": [gap.kind for gap in gaps],
            "label": [gap.label for gap in gaps],
            "colour": [KIND_COLOURS[gap.kind] for gap in gaps],
        }

    def _back(self, _: Any) -> None:
        if self._navigate is not None:
            self._navigate("overview")

    def __panel__(self) -> pn.viewable.Viewable:
        controls: list[Any] = [self._dataset_select, self._symbol_select, self._window_select]
        if self._navigate is not None:
            back = pn.widgets.Button(label="← Overview", color="light", width=120)
            back.on_click(self._back)
            controls.insert(0, back)
        return pn.Column(
            pn.Row(*controls, sizing_mode="stretch_width"),
            self._header,
            self._latency_note,
            self._latency_box,
            self._cadence_note,
            self._cadence_box,
            self._gaps_note,
            self._gaps_box,
            self._batches,
            sizing_mode="stretch_width",
        )

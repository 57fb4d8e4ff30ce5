"""The Performance page: pick saved backtest runs and compare them — equity curves overlaid with
their drawdown below (one time axis), the window's metrics side by side, breakdowns by setup,
score or confidence, the trades, and the latest report notebooks.

Everything shown comes from ``ingmon.backtest.compare`` (the lake's ``backtest_runs`` and
``backtest_trades``, the runs' ``equity.csv`` exports, the report state); curves arrive already
cut to a point budget. Saved runs never change, so their data is cached for minutes and only
the run list and the reports are read again on :meth:`PerformancePage.refresh`; a refresh never
rebuilds the chart (the user's zoom stays).

The page is drawn once and then updated in place: its views (``header``, ``chart``,
``comparison``, ``breakdowns``, ``trades``, ``report_links``) are methods of the params, and the
laid-out page shows their content in panes that a change of those params rewrites (their HTML)
or streams into (the chart: one HoloViews plot per session, its curves sent through a stream, so
ticking a run adds a line to the plot instead of building a new one — a fraction of the time, in
the server and in the browser).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import holoviews as hv
import pandas as pd
import panel as pn
import param

from ingmon.api.cache import TTLCache
from ingmon.backtest.compare import (
    BREAKDOWN_SLICES,
    DEFAULT_POINT_BUDGET,
    STANDARD_WINDOWS,
    WINDOW_ALL,
    Curve,
    ReportLink,
    SavedRun,
    Series,
    breakdown_rows,
    comparison_rows,
    curve_series,
    exported_curve,
    latest_reports,
    realised_curve,
    run_summary,
    run_trades,
    saved_runs,
    trades_in_window,
    window_labels,
    window_report,
)
from ingmon.errors import DataIntegrityError
from ingmon.lake import Lake
from ingmon.times import now_ms
from workbench.plots import (
    CSS,
    ClickableHTML,
    badge,
    format_duration,
    nav_attribute,
    percent,
    utc,
)

__all__ = ["CURVE_SOURCES", "MAX_RUNS", "RUN_COLOURS", "PerformancePage", "RunData"]

# Okabe-Ito without its yellow (too faint on white): one colour per compared run.
RUN_COLOURS: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#000000",
)
MAX_RUNS = len(RUN_COLOURS)
TRADES_PER_PAGE = 25
MAX_PICKER_RUNS = 100  # newest runs offered in the picker (selected ones always are)
CURVE_SOURCES: Mapping[str, str] = {
    "realised, per trade": "trades",
    "mark-to-market, daily": "daily",
}
_RUN_LIST = TTLCache(5.0)  # the run list: new runs show up within seconds
_RUN_DATA = TTLCache(600.0, max_entries=64)  # a saved run is immutable
_CSS = """
.perf-table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
.perf-table th, .perf-table td { padding: 3px 8px; border-bottom: 1px solid #DDDDDD;
  text-align: right; white-space: nowrap; }
.perf-table th:first-child, .perf-table td:first-child { text-align: left; }
.perf-table td.perf-label { text-align: left; }
.perf-swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
.perf-empty { color: #444444; padding: 6px 0; }
.perf-note { color: #555555; font-size: 90%; }
.perf-warn { background: #DDAA33; color: #1A1A1A; padding: 4px 8px; border-radius: 3px; }
.perf-error { background: #BB5566; color: #FFFFFF; padding: 4px 8px; border-radius: 3px; }
code { font-size: 90%; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _pane(text: str, **params: Any) -> pn.pane.HTML:
    if "width" not in params:
        params.setdefault("sizing_mode", "stretch_width")
    return pn.pane.HTML(  # type: ignore[no-untyped-call]  # Panel is untyped
        text, stylesheets=[CSS, _CSS], **params
    )


def _utc(ms: int | None) -> str:
    """``2026-12-06 06:33 UTC``."""
    return utc(ms, seconds=False)


def _utc_iso(text: str | None) -> str:
    return "–" if not text else f"{text[:16].replace('T', ' ')} UTC"


def _number(value: Any, kind: str) -> str:
    """A metric as text by its kind; ``–`` when unknown."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "count":
        return f"{int(value):,}"
    if kind == "fraction":
        return percent(float(value), decimals=1)
    if kind == "signed_fraction":
        return percent(float(value), decimals=2, signed=True)
    if kind == "money":
        return f"{float(value):+,.2f}"
    if kind == "cost":
        return f"{float(value):,.2f}"
    if kind == "days":
        return f"{float(value):.1f}"
    return f"{float(value):.2f}"


def _short_name(run: SavedRun) -> str:
    """``BTCUSDT 12-06 06:33`` (legends and table rows; the full label heads the columns)."""
    return f"{run.symbol} {_utc(run.created_at_ms)[5:16]}"


def _signals_url_params() -> Mapping[str, str]:
    """The Signals page's URL keys (for the links' ``href``); none when it is unavailable."""
    from workbench.app import PageUnavailable, page_class  # noqa: PLC0415 - no import cycle

    try:
        return dict(page_class("signals").URL_PARAMS)
    except (PageUnavailable, AttributeError):
        return {}


def _text(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else str(value)


def _price(value: Any) -> str:
    """A price with decimals by magnitude (FreqUI's formatDecimal steps)."""
    number = float(value)
    decimals = 2 if abs(number) >= 100 else 4 if abs(number) >= 1 else 6
    return f"{number:,.{decimals}f}"


@dataclass(frozen=True)
class RunData:
    """What the page shows of one run: its document, trades and equity curves (read once)."""

    run: SavedRun
    summary: dict[str, Any] | None
    trades: pd.DataFrame
    curves: Mapping[str, Curve | None]  # by source; None: no such curve (no equity.csv)
    error: str | None = None  # the run cannot be read
    curve_errors: Mapping[str, str] = field(default_factory=dict)  # by source: why it is None


@dataclass(frozen=True)
class _Drawn:
    """One run's curves as the chart draws them (cut to the point budget)."""

    name: str  # the legend's (and the glyphs') name
    colour: str
    equity: Series
    loss: Series  # the drawdown, a fraction ≤ 0


_TIME = hv.Dimension("time", label="time (UTC)")


def _equity_curve(drawn: _Drawn) -> hv.Curve:
    return hv.Curve(
        (drawn.equity.time_ms.astype("datetime64[ms]"), drawn.equity.values),
        kdims=[_TIME],
        vdims=[hv.Dimension("equity", label="equity (USDT)")],
        label=drawn.name,
    ).opts(color=drawn.colour, line_width=2)


def _drawdown_area(drawn: _Drawn) -> hv.Area:
    return hv.Area(
        (drawn.loss.time_ms.astype("datetime64[ms]"), drawn.loss.values * 100),
        kdims=[_TIME],
        vdims=[hv.Dimension("drawdown", label="drawdown %")],
        label=drawn.name,
    ).opts(color=drawn.colour, fill_alpha=0.25, line_color=drawn.colour, line_width=1)


def _equity_opts() -> tuple[Any, ...]:
    return (
        hv.opts.Curve(tools=["hover"], responsive=True, height=320, show_grid=True, xlabel=""),
        hv.opts.Overlay(legend_position="top_left", title="Equity"),
    )


def _drawdown_opts() -> tuple[Any, ...]:
    return (
        hv.opts.Area(tools=["hover"], responsive=True, height=200, show_grid=True),
        hv.opts.Overlay(show_legend=False, title="Drawdown (% below the running peak)"),
    )


class PerformancePage(pn.viewable.Viewer):
    """The Performance drill-down. State in params (the URL carries ``run_ids``, ``window``,
    ``breakdown`` and ``curve``); views are methods of them."""

    URL_PARAMS: ClassVar[dict[str, str]] = {
        "run_ids": "perf_runs",
        "window": "perf_window",
        "breakdown": "perf_by",
        "curve": "perf_curve",
        "trades_page": "perf_page",
    }

    run_ids = param.String(default="", doc="The compared runs: run ids, comma-separated")
    window: param.Selector[str] = param.Selector(
        default=WINDOW_ALL,
        objects=[WINDOW_ALL, *STANDARD_WINDOWS],
        check_on_set=False,  # a link may name a window these runs lack: the page says so
        doc="Whole data (all) or a trailing window of the runs (30d, 60d, 90d, …)",
    )
    breakdown: param.Selector[str] = param.Selector(
        default="setup", objects=list(BREAKDOWN_SLICES), doc="What the breakdown slices by"
    )
    curve: param.Selector[str] = param.Selector(
        default="trades",
        objects=list(CURVE_SOURCES.values()),
        doc="Equity points: realised after each trade (trades) or daily mark-to-market (daily)",
    )
    runs = param.List(default=[], item_type=SavedRun, doc="Saved runs, newest first")
    shown = param.List(default=[], item_type=str, doc="Selected run ids that exist (≤ MAX_RUNS)")
    unknown = param.List(default=[], item_type=str, doc="Selected run ids that do not exist")
    reports = param.List(default=[], item_type=ReportLink, doc="Latest report notebooks")
    reports_error = param.String(default=None, allow_None=True)
    error = param.String(default=None, allow_None=True, doc="Why the last read failed")
    loaded_at_ms = param.Integer(default=None, allow_None=True, doc="When the runs were read")
    trades_page = param.Integer(default=1, bounds=(1, None), doc="Page of the trades table")

    def __init__(
        self,
        *,
        data_dir: Path,
        navigate: Callable[..., None] | None = None,
        point_budget: int = DEFAULT_POINT_BUDGET,
        clock: Callable[[], int] = now_ms,
        **params: Any,
    ) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._data_dir = Path(data_dir)
        self._lake = Lake(self._data_dir / "lake")
        self._navigate = navigate
        self._point_budget = point_budget
        self._clock = clock
        self._syncing = False
        self.picker = pn.widgets.CheckBoxGroup(  # type: ignore[no-untyped-call]
            label="Runs", options={}, value=[], inline=False
        )
        self.window_widget = pn.widgets.RadioButtonGroup.from_param(
            self.param.window, label="Window", color="primary", variant="outline"
        )
        self.breakdown_widget = pn.widgets.RadioButtonGroup.from_param(
            self.param.breakdown,
            label="Break down by",
            color="primary",
            variant="outline",
        )
        self.curve_widget = pn.widgets.RadioButtonGroup.from_param(
            self.param.curve,
            label="Equity points",
            options=dict(CURVE_SOURCES),
            color="primary",
            variant="outline",
        )
        self.newer_button = pn.widgets.Button(  # type: ignore[no-untyped-call]
            label="‹ newer", variant="outline", width=90
        )
        self.older_button = pn.widgets.Button(  # type: ignore[no-untyped-call]
            label="older ›", variant="outline", width=90
        )
        self.newer_button.on_click(lambda _: self._turn_page(-1))
        self.older_button.on_click(lambda _: self._turn_page(+1))
        # What the laid-out page shows, rewritten in place when the params change.
        self._header = _pane("")
        self._comparison = _pane("")
        self._breakdowns = _pane("")
        self._trades_table = ClickableHTML(on_navigate=self._navigate, stylesheets=[CSS, _CSS])
        self._trades_position = _pane("", width=420)
        self._trades_paging = pn.Row(
            self.newer_button, self._trades_position, self.older_button, visible=False
        )
        self._reports = _pane("")
        self._chart_caption = _pane("")
        self._chart_box = pn.Column(self._chart_caption, sizing_mode="stretch_width")
        self._chart_plot: pn.pane.HoloViews | None = None  # built with the first curves
        self._chart_stream: Any = None  # its DynamicMaps' trigger
        self._drawn: list[_Drawn] = []  # what the chart's DynamicMaps draw
        self.picker.param.watch(self._picked, "value")
        self.param.watch(self._resolve, ["run_ids", "runs"])
        self.refresh()
        self._resolve()
        # After _resolve (watchers run in the order they were added); the tables first, the
        # chart last: the cheap updates reach the browser before the plot's.
        self.param.watch(self._show_header, ["runs", "shown", "unknown", "error", "loaded_at_ms"])
        self.param.watch(self._show_comparison, ["shown", "window"])
        self.param.watch(self._show_breakdowns, ["shown", "window", "breakdown"])
        self.param.watch(self._show_trades, ["shown", "window", "trades_page"])
        self.param.watch(self._show_reports, ["reports", "reports_error", "loaded_at_ms"])
        self.param.watch(self._show_chart, ["shown", "curve"])
        for show in (
            self._show_header,
            self._show_comparison,
            self._show_breakdowns,
            self._show_trades,
            self._show_reports,
            self._show_chart,
        ):
            show()

    # ---- state ----

    def refresh(self) -> None:
        """Read the run list and the report state again; new runs join the picker, the
        selection, the window and the chart (and its zoom) stay as they are."""
        try:
            runs = _RUN_LIST.get(("runs", str(self._lake.root)), lambda: saved_runs(self._lake))
        except Exception as error:  # the page stays up and says why
            self.error = f"could not read the saved runs: {error}"
            return
        try:
            reports, reports_error = latest_reports(self._data_dir), None
        except Exception as error:
            reports, reports_error = [], f"could not read the report state: {error}"
        updates: dict[str, Any] = {"error": None, "loaded_at_ms": self._clock()}
        if runs != self.runs:
            updates["runs"] = list(runs)
        if reports != self.reports:
            updates["reports"] = reports
        if reports_error != self.reports_error:
            updates["reports_error"] = reports_error
        self.param.update(**updates)

    @property
    def selected(self) -> list[str]:
        """The run ids of ``run_ids``, in order, without blanks or repeats."""
        ids = [part.strip() for part in self.run_ids.split(",")]
        return list(dict.fromkeys(part for part in ids if part))

    def _by_id(self) -> dict[str, SavedRun]:
        return {run.run_id: run for run in self.runs}

    def _resolve(self, *_: Any) -> None:
        """Selection → the runs shown, the unknown ids, the picker and the window choices."""
        known = self._by_id()
        selected = self.selected
        shown = [run_id for run_id in selected if run_id in known][:MAX_RUNS]
        unknown = [run_id for run_id in selected if run_id not in known]
        self._update_picker(known, selected)
        days = {label: float(label[:-1]) for label in STANDARD_WINDOWS}
        for run_id in shown:
            for report in (self.run_data(run_id).summary or {}).get("windows", []):
                if report.get("kind") == "trailing":
                    days.setdefault(report["label"], float(report.get("days") or 0))
        choices = [WINDOW_ALL, *sorted(days, key=lambda label: (days[label], label))]
        if self.window not in choices:
            choices.append(self.window)
        if choices != self.param.window.objects:
            self.param.window.objects = choices
        updates: dict[str, Any] = {}
        if shown != self.shown:
            updates["shown"] = shown
        if unknown != self.unknown:
            updates["unknown"] = unknown
        if updates:
            self.param.update(**updates)

    def _update_picker(self, known: Mapping[str, SavedRun], selected: Sequence[str]) -> None:
        offered = list(self.runs[:MAX_PICKER_RUNS])
        offered += [known[i] for i in selected if i in known and known[i] not in offered]
        labels: dict[str, str] = {}
        for run in offered:
            label = run.label if run.label not in labels else f"{run.label} · {run.run_id}"
            labels[label] = run.run_id
        value = [run_id for run_id in selected if run_id in labels.values()]
        self._syncing = True
        try:
            if labels != self.picker.options:
                self.picker.options = labels
            if value != self.picker.value:
                self.picker.value = value
        finally:
            self._syncing = False

    def _picked(self, event: Any) -> None:
        """The user ticked or unticked runs: keep their order, append the new ones."""
        if self._syncing:
            return
        ticked = list(event.new)
        kept = [run_id for run_id in self.selected if run_id in ticked]
        self.run_ids = ",".join(kept + [run_id for run_id in ticked if run_id not in kept])

    def run_data(self, run_id: str) -> RunData:
        """One run's document, trades and curves (cached: a saved run does not change; a run
        that cannot be read is not cached, so the next view tries again)."""
        run = self._by_id()[run_id]
        key = ("run", str(self._data_dir), run.run_id, run.created_at_ms)
        try:
            return _RUN_DATA.get(key, lambda: self._load_run(run))
        except Exception as error:  # one damaged run must not take the page down
            return RunData(run, None, pd.DataFrame(), {}, error=f"{type(error).__name__}: {error}")

    def _load_run(self, run: SavedRun) -> RunData:
        summary = run_summary(self._lake, run)
        if summary is None:
            raise LookupError(f"run {run.run_id} is no longer in the lake")
        trades = run_trades(self._lake, run)
        engine = summary.get("config", {}).get("engine", {})
        end_ms = run.data_end_ms + 60_000  # the close of the last 1m bar
        curves: dict[str, Curve | None] = {
            "trades": realised_curve(
                trades,
                initial_equity=float(engine.get("initial_equity") or 10_000.0),
                start_ms=run.data_start_ms,
                end_ms=end_ms,
            )
        }
        notes: dict[str, str] = {}
        try:
            curves["daily"] = exported_curve(
                self._data_dir / "backtests" / run.run_id, end_ms=end_ms
            )
        except DataIntegrityError as error:  # the export is damaged, the lake's run is fine
            curves["daily"] = None
            notes["daily"] = str(error)
        return RunData(run, summary, trades, curves, curve_errors=notes)

    def _colour(self, run_id: str) -> str:
        return RUN_COLOURS[self.shown.index(run_id) % len(RUN_COLOURS)]

    def _swatch(self, run_id: str) -> str:
        return f'<span class="perf-swatch" style="background:{self._colour(run_id)}"></span>'

    def _run_head(self, run_id: str, *, short: bool = False) -> str:
        run = self._by_id()[run_id]
        text = _short_name(run) if short else run.label
        return f'<span title="{_e(run.run_id)}">{self._swatch(run_id)}{_e(text)}</span>'

    # ---- the laid-out page, updated in place ----

    @staticmethod
    def _set(pane: Any, text: str) -> None:
        if pane.object != text:  # an unchanged pane sends nothing to the browser
            pane.object = text

    def _show_header(self, *_: Any) -> None:
        self._set(self._header, self._header_html())

    def _show_comparison(self, *_: Any) -> None:
        self._set(self._comparison, self._comparison_html())

    def _show_breakdowns(self, *_: Any) -> None:
        self.breakdown_widget.visible = bool(self.shown)
        self._set(self._breakdowns, self._breakdowns_html() if self.shown else "")

    def _show_trades(self, *_: Any) -> None:
        table, position = self._trades_content()
        self._set(self._trades_table, table)
        self._trades_paging.visible = position is not None
        if position is not None:
            self._set(self._trades_position, position)

    def _show_reports(self, *_: Any) -> None:
        self._set(self._reports, self._report_links_html())

    def _show_chart(self, *_: Any) -> None:
        """The chart of the shown runs: the first curves build the plot, later ones are sent
        into it (its axes fit the new curves; a refresh does not come here, so a zoom stays)."""
        drawn, notes = self._drawn_series()
        self._set(self._chart_caption, self._chart_caption_html(notes) if self.shown else "")
        self._drawn = drawn
        if self._chart_plot is None:
            if not drawn:
                return
            self._chart_stream = hv.streams.Stream.define("Drawn", revision=0)()
            self._chart_plot = pn.pane.HoloViews(  # type: ignore[no-untyped-call]
                self._dynamic_layout(self._chart_stream),
                sizing_mode="stretch_width",
                linked_axes=True,
            )
            self._chart_box.append(self._chart_plot)
            return
        self._chart_plot.visible = bool(drawn)
        if drawn:
            self._chart_stream.event(revision=self._chart_stream.revision + 1)

    # ---- views ----

    @param.depends("runs", "shown", "unknown", "error", "loaded_at_ms")
    def header(self) -> pn.pane.HTML:
        return _pane(self._header_html())

    def _header_html(self) -> str:
        parts = []
        if self.error:
            parts.append(f'<div class="perf-error">✕ error: {_e(self.error)}</div>')
        if self.loaded_at_ms is None and not self.error:
            return '<div class="perf-empty">Loading the saved runs…</div>'
        if not self.runs and not self.error:
            parts.append(
                '<div class="perf-empty"><b>No saved backtest runs yet.</b> Run one — '
                "<code>ingmon backtest --symbol BTCUSDT</code> saves it in the lake — and it "
                "appears here within seconds.</div>"
            )
        if self.unknown:
            parts.append(
                '<div class="perf-warn">! not found: '
                + ", ".join(f"<code>{_e(run_id)}</code>" for run_id in self.unknown)
                + f" — the link names runs that are not among the {len(self.runs)} saved "
                "runs of this data root (deleted, or saved elsewhere).</div>"
            )
        if self.runs and not self.shown:
            parts.append(
                '<div class="perf-empty">Tick one or more runs on the left to compare them '
                "(newest first).</div>"
            )
        if len(self.selected) - len(self.unknown) > MAX_RUNS:
            parts.append(
                f'<div class="perf-note">Showing the first {MAX_RUNS} selected runs.</div>'
            )
        read = (
            f"{len(self.runs)} saved runs, read {utc(self.loaded_at_ms)}"
            if self.loaded_at_ms is not None
            else ""
        )
        parts.append(f'<div class="perf-note">{_e(read)}</div>')
        return "".join(parts)

    def overlay(self) -> tuple[hv.Layout | None, list[str]]:
        """The equity curves of the shown runs overlaid above their drawdowns (one time
        axis), each series cut to the point budget; and notes on runs left out."""
        drawn, notes = self._drawn_series()
        if not drawn:
            return None, notes
        top = hv.Overlay([_equity_curve(d) for d in drawn]).opts(*_equity_opts())
        bottom = hv.Overlay([_drawdown_area(d) for d in drawn]).opts(*_drawdown_opts())
        return (top + bottom).cols(1).opts(shared_axes=True), notes

    def _dynamic_layout(self, stream: Any) -> hv.Layout:
        """The chart the page shows: ``overlay()``'s, drawn from ``_drawn`` on each event of
        ``stream``; framewise, so the axes fit each new set of curves."""
        framewise = (hv.opts.Curve(framewise=True), hv.opts.Area(framewise=True))
        top = hv.DynamicMap(
            lambda revision: hv.Overlay([_equity_curve(d) for d in self._drawn]),
            streams=[stream],
        ).opts(*_equity_opts(), *framewise, hv.opts.Overlay(framewise=True))
        bottom = hv.DynamicMap(
            lambda revision: hv.Overlay([_drawdown_area(d) for d in self._drawn]),
            streams=[stream],
        ).opts(*_drawdown_opts(), *framewise, hv.opts.Overlay(framewise=True))
        return (top + bottom).cols(1).opts(shared_axes=True)

    def _drawn_series(self) -> tuple[list[_Drawn], list[str]]:
        """The shown runs' curves cut to the point budget, and notes on runs left out."""
        drawn, notes = [], []
        for run_id in self.shown:
            data = self.run_data(run_id)
            curve = data.curves.get(self.curve)
            if data.error:
                notes.append(f"{data.run.label}: cannot be read ({data.error})")
                continue
            if curve is None and self.curve in data.curve_errors:
                notes.append(f"{data.run.label}: {data.curve_errors[self.curve]}")
                continue
            if curve is None:
                notes.append(
                    f"{data.run.label}: no equity.csv export in "
                    f"{self._data_dir / 'backtests' / run_id} (exported by "
                    "`ingmon backtest --export csv`); choose the realised curve"
                )
                continue
            equity, _ = curve_series(curve, self._point_budget)
            # an area's polygon also sends its zero baseline: half the budget keeps it within
            _, loss = curve_series(curve, max(8, self._point_budget // 2))
            drawn.append(_Drawn(_short_name(data.run), self._colour(run_id), equity, loss))
        return drawn, notes

    @param.depends("shown", "curve")
    def chart(self) -> pn.viewable.Viewable:
        """The chart as a new pane (the page shows the same in a plot it updates in place)."""
        if not self.shown:
            return _pane("")
        layout, notes = self.overlay()
        caption = self._chart_caption_html(notes)
        if layout is None:
            return _pane(caption)
        return pn.Column(
            _pane(caption),
            pn.pane.HoloViews(  # type: ignore[no-untyped-call]  # Panel is untyped
                layout, sizing_mode="stretch_width", linked_axes=True
            ),
            sizing_mode="stretch_width",
        )

    def _chart_caption_html(self, notes: Sequence[str]) -> str:
        source = (
            "realised equity after each trade's exit (start: the initial equity)"
            if self.curve == "trades"
            else "mark-to-market equity at each UTC day's last close (the run's equity.csv)"
        )
        caption = (
            f'<div class="perf-note">Whole run, {source}; USDT, fixed-notional trades are not '
            "compounded. Drawdown: % below the running peak. Times UTC. At most "
            f"{self._point_budget:,} points per curve (the minimum and maximum of each "
            "bucket kept).</div>"
        )
        caption += "".join(f'<div class="perf-warn">! {_e(note)}</div>' for note in notes)
        return caption

    def _window_reports(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Each shown run's report of the window; None when it lacks it or cannot be read."""
        reports = []
        for run_id in self.shown:
            data = self.run_data(run_id)
            summary = data.summary
            reports.append(
                (run_id, None if summary is None else window_report(summary, self.window))
            )
        return reports

    def _absent(self, run_id: str) -> str:
        """Why a run has no report for the window."""
        data = self.run_data(run_id)
        if data.error:
            return f"cannot be read ({data.error})"
        summary = data.summary or {}
        has = ", ".join(window_labels(summary)) or "none"
        return f"no {self.window} window in this run (it has: {has})"

    def _no_window(self) -> str | None:
        """The message when none of the shown runs has the chosen window, else None."""
        if self.window == WINDOW_ALL or any(report for _, report in self._window_reports()):
            return None
        if any(self.run_data(run_id).error for run_id in self.shown):
            return None  # each run's own note says what is wrong
        labels = sorted(
            {label for r in self.shown for label in window_labels(self.run_data(r).summary or {})}
        )
        days = self.window[:-1] if self.window.endswith("d") else "N"
        return (
            f'<div class="perf-warn">! none of the selected runs has a {_e(self.window)} window '
            f"(they have: {_e(', '.join(labels) or 'none')}). Backtest over at least that much "
            f"data with <code>ingmon backtest --symbol SYMBOL --window-days {_e(days)}</code>, "
            "or pick another window.</div>"
        )

    @param.depends("shown", "window")
    def comparison(self) -> pn.pane.HTML:
        return _pane(self._comparison_html())

    def _comparison_html(self) -> str:
        if not self.shown:
            return ""
        reports = self._window_reports()
        title = f"<h3>Runs compared — {_e(self._window_name())}</h3>"
        absent = self._no_window()
        if absent:
            return title + absent
        notes = []
        missing = [run_id for run_id, report in reports if report is None]
        if missing:
            for run_id in missing:
                run = self._by_id()[run_id]
                notes.append(f"{run.label}: {self._absent(run_id)}")
        head = "<th>metric</th>" + "".join(f"<th>{self._run_head(r)}</th>" for r, _ in reports)
        rows = [
            "<tr><td>window (UTC)</td>"
            + "".join(
                "<td>–</td>"
                if report is None
                else f"<td>{_e(_utc_iso(report['start']))} → {_e(_utc_iso(report['end']))}</td>"
                for _, report in reports
            )
            + "</tr>"
        ]
        for metric, values in comparison_rows([report for _, report in reports]):
            cells = "".join(f"<td>{_e(_number(value, metric.kind))}</td>" for value in values)
            rows.append(
                f'<tr><td title="{_e(metric.definition)}">{_e(metric.label)}</td>{cells}</tr>'
            )
        rows.append(
            "<tr><td>flags</td>"
            + "".join(
                "<td>–</td>"
                if report is None
                else f"<td>{_e(', '.join(report.get('flags') or []) or 'none')}</td>"
                for _, report in reports
            )
            + "</tr>"
        )
        note_html = "".join(f'<div class="perf-warn">! {_e(n)}</div>' for n in notes)
        table = f'<table class="perf-table"><tr>{head}</tr>{"".join(rows)}</table>'
        hint = (
            '<div class="perf-note">Each window is its own backtest on its bars (flat at its '
            "start). Hover a metric for its definition.</div>"
        )
        return title + note_html + table + hint

    def _window_name(self) -> str:
        return "whole data" if self.window == WINDOW_ALL else f"trailing {self.window} window"

    @param.depends("shown", "window", "breakdown")
    def breakdowns(self) -> pn.pane.HTML:
        return _pane(self._breakdowns_html() if self.shown else "")

    def _breakdowns_html(self) -> str:
        title = f"<h3>By {_e(self.breakdown)} — {_e(self._window_name())}</h3>"
        absent = self._no_window()
        if absent:
            return title + absent
        head = "".join(
            f"<th>{_e(name)}</th>"
            for name in (
                "run",
                self.breakdown,
                "trades",
                "wins / losses",
                "hit rate",
                "expectancy (per trade)",
                "expectancy (R)",
                "profit factor",
                "net PnL (USDT)",
            )
        )
        rows, notes = [], []
        for run_id, report in self._window_reports():
            label = self._by_id()[run_id].label
            if report is None:
                notes.append(f"{label}: {self._absent(run_id)}")
                continue
            if not report["metrics"].get("trades"):
                notes.append(f"{label}: no trades in this window, nothing to break down")
                continue
            slices = breakdown_rows(report, self.breakdown)
            if not slices:
                notes.append(f"{label}: no trade carries a {self.breakdown}")
            for row in slices:
                rows.append(
                    f'<tr><td class="perf-label">{self._run_head(run_id, short=True)}</td>'
                    f'<td class="perf-label">{_e(row["value"])}</td>'
                    f"<td>{row['trades']}</td><td>{row['wins']} / {row['losses']}</td>"
                    f"<td>{_e(_number(row['hit_rate'], 'fraction'))}</td>"
                    f"<td>{_e(_number(row['expectancy'], 'signed_fraction'))}</td>"
                    f"<td>{_e(_number(row['expectancy_r'], 'ratio'))}</td>"
                    f"<td>{_e(_number(row['profit_factor'], 'ratio'))}</td>"
                    f"<td>{_e(_number(row['net_pnl'], 'money'))}</td></tr>"
                )
        note_html = "".join(f'<div class="perf-empty">{_e(n)}</div>' for n in notes)
        table = f'<table class="perf-table"><tr>{head}</tr>{"".join(rows)}</table>' if rows else ""
        return title + note_html + table

    def trades_frame(self) -> pd.DataFrame:
        """The shown runs' trades entering in the window, newest entry first: run_id, sequence,
        setup, direction, score, confidence, entry/exit times (ms) and prices, exit reason,
        net return and PnL."""
        frames = []
        for run_id in self.shown:
            data = self.run_data(run_id)
            report = window_report(data.summary or {}, self.window)
            if report is None or not len(data.trades):
                continue
            frames.append(trades_in_window(data.trades, report))
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True)
        ordered: pd.DataFrame = frame.sort_values(
            ["entry_time_ms", "run_id", "sequence"], ascending=[False, True, True], kind="stable"
        )
        return ordered.reset_index(drop=True)

    def _trade_row(self, trade: Mapping[Any, Any]) -> str:
        direction = {"long": "▲ long", "short": "▼ short"}.get(trade["direction"], "")
        score = "–" if pd.isna(trade["score"]) else str(int(trade["score"]))
        cells = [
            f'<td class="perf-label">{self._run_head(trade["run_id"], short=True)}</td>',
            f"<td>{int(trade['sequence'])}</td>",
            f'<td class="perf-label">{self._signal_link(trade)}</td>',
            f'<td class="perf-label">{_e(direction or trade["direction"])}</td>',
            f"<td>{score}</td>",
            f'<td class="perf-label">{_e(_text(trade["confidence"]))}</td>',
            f"<td>{_e(_utc(int(trade['entry_time_ms']))[:-4])}</td>",
            f"<td>{_e(_utc(int(trade['exit_time_ms']))[:-4])}</td>",
            f'<td class="perf-label">{_e(trade["exit_reason"])}</td>',
            f"<td>{_price(trade['entry_price'])}</td>",
            f"<td>{_price(trade['exit_price'])}</td>",
            f"<td>{_e(_number(trade['net_return'], 'signed_fraction'))}</td>",
            f"<td>{_e(_number(trade['pnl'], 'money'))}</td>",
        ]
        return f"<tr>{''.join(cells)}</tr>"

    def _signal_link(self, trade: Mapping[Any, Any]) -> str:
        """The trade's setup; for a lake signal, a link to it on the Signals page."""
        setup = _e(_text(trade["setup"]))
        if not trade.get("signal_id") or pd.isna(trade["signal_id"]):
            return setup
        params = {"symbol": trade["symbol"], "signal_id": str(trade["signal_id"])}
        link = nav_attribute("signals", params, url_params=_signals_url_params())
        return f'<a {link} title="open this signal on the Signals page">{setup} ›</a>'

    def _turn_page(self, step: int) -> None:
        self.trades_page = max(1, self.trades_page + step)

    @param.depends("shown", "window", "trades_page")
    def trades(self) -> pn.viewable.Viewable:
        table, position = self._trades_content()
        if position is None:
            return _pane(table)
        return pn.Column(
            ClickableHTML(table, on_navigate=self._navigate, stylesheets=[CSS, _CSS]),
            pn.Row(self.newer_button, _pane(position, width=420), self.older_button),
            sizing_mode="stretch_width",
        )

    def _trades_content(self) -> tuple[str, str | None]:
        """The trades' HTML and the paging line under it (None: nothing to page); the paging
        buttons enabled as the page allows."""
        if not self.shown:
            return "", None
        title = f"<h3>Trades — {_e(self._window_name())}</h3>"
        absent = self._no_window()
        if absent:
            return title + absent, None
        frame = self.trades_frame()
        if frame.empty:
            return (
                title + '<div class="perf-empty">No trades: the selected runs made none'
                f"{'' if self.window == WINDOW_ALL else ' entering in this window'}.</div>"
            ), None
        pages = max(1, math.ceil(len(frame) / TRADES_PER_PAGE))
        number = min(self.trades_page, pages)  # a link's page past the end: the last one
        rows = frame.iloc[(number - 1) * TRADES_PER_PAGE : number * TRADES_PER_PAGE]
        head = "".join(
            f"<th>{_e(name)}</th>"
            for name in (
                "run",
                "#",
                "setup",
                "direction",
                "score",
                "confidence",
                "entry (UTC)",
                "exit (UTC)",
                "exit reason",
                "entry price",
                "exit price",
                "net return",
                "PnL (USDT)",
            )
        )
        body = "".join(self._trade_row(trade) for trade in rows.to_dict("records"))
        note = (
            ""
            if self.window == WINDOW_ALL
            else '<div class="perf-note">The whole run\'s trades that entered in the window '
            "(the window's own backtest, above, can differ by a trade at its start).</div>"
        )
        first = (number - 1) * TRADES_PER_PAGE + 1
        position = (
            f"trades {first}–{first + len(rows) - 1} of {len(frame)}, newest entry first · "
            f"page {number} of {pages}"
        )
        self.newer_button.disabled = number <= 1
        self.older_button.disabled = number >= pages
        return (
            title + note + f'<table class="perf-table"><tr>{head}</tr>{body}</table>',
            f'<div class="perf-note">{_e(position)}</div>',
        )

    @param.depends("reports", "reports_error", "loaded_at_ms")
    def report_links(self) -> pn.pane.HTML:
        return _pane(self._report_links_html())

    def _report_links_html(self) -> str:
        title = "<h3>Latest reports</h3>"
        if self.reports_error:
            return title + f'<div class="perf-error">✕ error: {_e(self.reports_error)}</div>'
        if not self.reports:
            return (
                title + '<div class="perf-empty">No report notebook has run yet. '
                "<code>ingmon report backtest</code> writes "
                f"<code>{_e(self._data_dir / 'reports')}/backtest/&lt;day&gt;/backtest.html"
                "</code> (schedule it with cron or a systemd timer).</div>"
            )
        now = self.loaded_at_ms or self._clock()
        order = sorted(self.reports, key=lambda link: (link.report != "backtest", link.report))
        items = []
        for link in order:
            status = badge("ok" if link.last_status == "success" else "error")
            if link.html is None:
                where = '<span class="perf-note">no successful run yet</span>'
            elif not link.html_exists:
                where = f"<code>{_e(link.html)}</code> — missing (moved or deleted)"
            else:
                where = (
                    f"<code>{_e(link.html)}</code><br>"
                    f'<span class="perf-note">open it on the server: '
                    f"<code>python3 -m webbrowser file://{_e(link.html)}</code></span>"
                )
            age = (
                ""
                if link.last_success_finished_ms is None
                else f" · last good run {_utc(link.last_success_finished_ms)} "
                f"({format_duration((now - link.last_success_finished_ms) / 1000)} ago)"
            )
            failure = (
                f'<br><span class="perf-note">last failure: {_e(link.last_failure_message)}</span>'
                if link.last_status != "success" and link.last_failure_message
                else ""
            )
            items.append(f"<li><b>{_e(link.report)}</b> {status}{_e(age)}<br>{where}{failure}</li>")
        hint = (
            '<div class="perf-note">ingmon serve does not serve report files (yet): the path '
            "is on the machine that ran the report.</div>"
        )
        return title + f"<ul>{''.join(items)}</ul>" + hint

    def __panel__(self) -> pn.viewable.Viewable:
        picker = pn.Column(
            pn.pane.Markdown("**Runs** (newest first)"),  # type: ignore[no-untyped-call]
            self.picker,
            width=380,
            max_height=520,
            scroll=True,
        )
        controls = pn.Row(
            pn.Column(pn.pane.Markdown("Window"), self.window_widget),  # type: ignore[no-untyped-call]
            pn.Column(pn.pane.Markdown("Equity points"), self.curve_widget),  # type: ignore[no-untyped-call]
        )
        main = pn.Column(
            controls,
            # the plot loads after the page (its panes are updated in place from then on)
            pn.panel(self._chart_area, defer_load=True, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        return pn.Column(
            pn.pane.Markdown("## Performance: saved backtest runs"),  # type: ignore[no-untyped-call]
            self._header,
            pn.Row(picker, main, sizing_mode="stretch_width"),
            self._comparison,
            pn.Column(self.breakdown_widget, self._breakdowns, sizing_mode="stretch_width"),
            pn.Column(self._trades_table, self._trades_paging, sizing_mode="stretch_width"),
            self._reports,
            sizing_mode="stretch_width",
        )

    @param.depends()
    def _chart_area(self) -> pn.Column:
        """The chart's caption and plot (one Column, updated in place by _show_chart)."""
        return self._chart_box

"""The Signals drill-down: a symbol's candles aggregated to the zoom, its signals as markers
coloured by score, the visible range's volume profile beside the chart on the same price axis,
the signal table, and the 7-point audit of the selected signal.

The data comes from :mod:`ingmon.signals.chart` (plain functions over the lake, bounded by a bar
budget, cached here for a few seconds); this module only draws it. The chart is a set of
HoloViews DynamicMaps on one ``RangeX`` stream: a zoom or pan re-aggregates the bars and
recomputes the profile for the new range, and ``refresh()`` re-runs the same maps on the range
the user is looking at, so new bars and signals arrive without resetting the zoom.

The chart is drawn once per page: another symbol, timeframe, range button or link re-runs the
same maps at the new range and moves the figure's time range there (the price axis follows the
bars), and the table, the caption and the audit are panes whose content is replaced — a
drill-down sends new data to the browser, never a new plot.

State in the URL (``URL_PARAMS``): symbol, signal timeframe, visible range (ISO UTC) and the
selected signal — a link reopens the same view.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
import polars as pl

from ingmon.api.cache import TTLCache
from ingmon.errors import IngmonError
from ingmon.lake import Lake
from ingmon.schema import SIGNAL_TIMEFRAMES
from ingmon.signals.chart import (
    SCORE_COLORS,
    SignalAudit,
    VisibleRange,
    candle_extent,
    default_range,
    interval_label,
    profile_bins,
    signal_audit,
    signal_markers,
    symbol_signals,
    visible_range,
)
from ingmon.signals.rules import RULES_VERSION
from ingmon.times import DAY_MS, iso_ms, parse_instant_ms
from workbench.plots import CSS, PALETTE, to_datetime, utc
from workbench.plots import escape as _e

__all__ = [
    "RANGE_PRESETS",
    "RESULTS",
    "TABLE_COLUMNS",
    "SignalsPage",
    "audit_html",
    "format_value",
    "signal_table",
]

UP_COLOR = "#0072B2"  # Okabe-Ito blue: close ≥ open
DOWN_COLOR = "#E69F00"  # Okabe-Ito orange: close < open
POC_COLOR = "#D55E00"
VALUE_AREA_COLOR = "#56B4E9"
OUTSIDE_COLOR = "#BBBBBB"
MARKER_LINE = "#222222"
FRAME_HEIGHT = 420
RANGE_PRESETS: Mapping[str, int | None] = {
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "7d": 7 * DAY_MS,
    "30d": 30 * DAY_MS,
    "90d": 90 * DAY_MS,
    "all": None,
}
TABLE_COLUMNS = ("time (UTC)", "setup", "direction", "score", "confidence", "signal_id")
# A rubric point's result: glyph + word + the status palette's fill (never colour alone).
RESULTS: Mapping[int | None, tuple[str, str, str]] = {
    1: ("✓", "passed", "ok"),
    0: ("✕", "failed", "error"),
    None: ("–", "missing", "unknown"),  # an input it needs is missing
}
_CSS = """
.sig-audit { border-collapse: separate; border-spacing: 2px; background: #EEEEEE;
  font-variant-numeric: tabular-nums; font-size: 90%; width: 100%; table-layout: auto; }
.sig-audit .point { white-space: nowrap; }
.sig-audit .rule { font-size: 85%; }
.sig-audit th { background: #FFFFFF; padding: 3px 6px; text-align: left; }
.sig-audit td { background: #FFFFFF; padding: 3px 6px; vertical-align: top; }
.sig-audit td.result { white-space: nowrap; font-weight: 600; }
"""
# Chart reads are shared by every session for a few seconds (one read per range and symbol).
_READS = TTLCache(10.0, max_entries=128)


def _pane(text: str, **params: Any) -> pn.pane.HTML:
    """An HTML pane with the workbench's styles and the audit table's."""
    return pn.pane.HTML(  # type: ignore[no-untyped-call]  # Panel is untyped
        text, stylesheets=[CSS, _CSS], **params
    )


def _iso(value_ms: int) -> str:
    """Epoch ms as the URL's ISO form, to the second (``2026-12-02T12:00:00Z``)."""
    return f"{iso_ms(value_ms)}"[:19] + "Z"


def _utc(value_ms: int | None) -> str:
    return utc(value_ms, seconds=False)


def _ms(value: Any) -> int:
    """A RangeX bound (datetime64, Timestamp, datetime or epoch ms) as epoch ms."""
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ms]").astype(np.int64))
    if isinstance(value, pd.Timestamp):
        return int(value.value // 1_000_000)
    if hasattr(value, "timestamp"):
        return round(float(value.timestamp()) * 1000)
    return round(float(value))


def _same_range(one: tuple[int, int], other: tuple[int, int]) -> bool:
    """Equal to the second (what the URL keeps)."""
    return abs(one[0] - other[0]) < 1000 and abs(one[1] - other[1]) < 1000


def format_value(value: Any) -> str:
    """An audit value for people: ``–`` when missing, integers without decimals, other numbers
    with six significant digits, lists joined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return "–".join(format_value(item) for item in value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def signal_table(signals: pl.DataFrame) -> pd.DataFrame:
    """The table's rows from :func:`~ingmon.signals.chart.symbol_signals` rows, newest first:
    time (UTC), setup, direction (glyph + word), score (``–`` unscored), confidence, and the
    hidden ``signal_id``."""
    if not signals.height:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in TABLE_COLUMNS})
    frame = signals.sort("bar_open_ms", descending=True)
    return pd.DataFrame(
        {
            "time (UTC)": [_utc(ms)[:-4] for ms in frame["bar_close_ms"].to_list()],
            "setup": frame["setup"].to_list(),
            "direction": [
                ("▲ " if direction == "long" else "▼ ") + direction
                for direction in frame["direction"].to_list()
            ],
            "score": ["–" if s is None else f"{s} / 7" for s in frame["score"].to_list()],
            "confidence": [c or "–" for c in frame["confidence"].to_list()],
            "signal_id": frame["signal_id"].to_list(),
        }
    )


def _result_cell(value: int | None) -> str:
    glyph, word, status = RESULTS.get(value, RESULTS[None])
    fill, ink = PALETTE[status]
    return (
        f'<td class="result"><span class="ingmon-badge" style="background:{fill};color:{ink}" '
        f'data-result="{_e(word)}">{glyph} {_e(word)}</span></td>'
    )


def _pairs(values: Mapping[str, Any]) -> str:
    if not values:
        return '<span class="ingmon-muted">— (compares its inputs)</span>'
    return "<br>".join(f"{_e(name)} = {_e(format_value(v))}" for name, v in values.items())


def audit_html(audit: SignalAudit) -> str:
    """The audit record as HTML: the signal, its score and confidence, then one row per rubric
    point — ✓ passed / ✕ failed / – missing input, its inputs, its thresholds and its rule."""
    signal = audit.signal
    direction = ("▲ " if signal["direction"] == "long" else "▼ ") + signal["direction"]
    head = (
        f"<h3>Audit: {_e(signal['setup'])} {_e(direction)} · {_e(_utc(signal['bar_close_ms']))}"
        "</h3>"
        f'<div class="ingmon-muted">signal {_e(signal["signal_id"])} · close '
        f"{_e(format_value(signal['close']))} · stop {_e(format_value(signal['stop_price']))} · "
        f"target {_e(format_value(signal['target_price']))}</div>"
    )
    if not audit.scored:
        return head + (
            f'<div class="ingmon-empty"><b>Not scored under {_e(RULES_VERSION)} yet.</b> '
            "The worker scores new bars each tick (or run <code>ingmon score</code>).</div>"
        )
    groups = " · ".join(f"{g} {n}" for g, n in audit.points_by_group.items())
    summary = (
        f"<p><b>Score {audit.score} / 7</b> ({_e(groups)}) · confidence "
        f"<b>{_e(audit.confidence)}</b> · data quality {_e(audit.data_quality)}</p>"
    )
    rows = "".join(
        "<tr>" + _result_cell(point.value) + f'<td><b class="point">{_e(point.name)}</b> '
        f'<span class="ingmon-muted">{_e(point.group)} · {point.points} pt</span><br>'
        f'<span class="rule ingmon-muted">{_e(point.rule)}</span></td>'
        f"<td>{_pairs(point.inputs)}</td><td>{_pairs(point.thresholds)}</td></tr>"
        for point in audit.points
    )
    table = (
        '<table class="sig-audit"><tr><th>result</th><th>point and rule</th><th>input</th>'
        f"<th>threshold</th></tr>{rows}</table>"
    )
    marks = ", ".join(f"{_e(k)} {_e(_utc(v))}" for k, v in sorted(audit.watermarks.items()))
    notes = "; ".join(_e(note) for note in audit.notes) or "none"
    foot = (
        f'<div class="ingmon-muted">notes: {notes}<br>data as of: {marks or "–"}<br>'
        f"rules {_e(audit.rules_version)} · config {_e((audit.config_hash or '')[:12])} · "
        f"{_e(audit.code_version)} · scored {_e(_utc(audit.scored_at_ms))}</div>"
    )
    return head + summary + table + foot


class SignalsPage(pn.viewable.Viewer):
    """The Signals drill-down of one symbol. State in params, synced to the URL by the app."""

    URL_PARAMS: ClassVar[dict[str, str]] = {
        "symbol": "sig_symbol",
        "timeframe": "sig_tf",
        "start": "sig_start",
        "end": "sig_end",
        "signal_id": "sig_signal",
    }

    symbol = param.Selector(  # type: ignore[var-annotated]
        default=None, objects=[], check_on_set=False, allow_None=True, doc="Symbol"
    )
    timeframe = param.Selector(  # type: ignore[var-annotated]
        default="15m", objects=list(SIGNAL_TIMEFRAMES), doc="Signal timeframe"
    )
    start = param.String(default="", doc="Visible range start, ISO UTC ('' = the latest days)")
    end = param.String(default="", doc="Visible range end, ISO UTC (exclusive)")
    signal_id = param.String(default="", doc="The selected signal ('' = none)")
    revision = param.Integer(default=0, precedence=-1, doc="Bumped when new bars/signals arrive")
    default_days = param.Integer(
        default=7, bounds=(1, None), precedence=-1, doc="Days shown when no range is asked for"
    )

    def __init__(
        self,
        *,
        data_dir: Path,
        navigate: Callable[..., None] | None = None,
        **params: Any,
    ) -> None:
        self._lake = Lake(Path(data_dir) / "lake")
        self._navigate = navigate
        symbols = self._symbols()
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self.param.symbol.objects = symbols
        if self.symbol is None and symbols:
            self.symbol = symbols[0]
        self._extent: tuple[int, int] | None = None
        self._signals: pl.DataFrame | None = None
        self._view: tuple[int, int] | None = None  # the range on screen, from the RangeX stream
        self._syncing = False
        self._last_seen: tuple[Any, ...] | None = None
        self._range_stream: hv.streams.RangeX | None = None
        self._data_stream: Any = None
        self._marker_stream: Any = None
        self._selected_stream: Any = None
        self._redraws = 0  # the data streams' counter: each push is a new frame (no memo hit)
        self._x_ranges: list[Any] = []  # the drawn figures' time ranges (one per rendered root)
        self._table = pn.widgets.Tabulator(  # type: ignore[no-untyped-call]
            signal_table(pl.DataFrame()),
            selectable=1,
            disabled=True,
            show_index=False,
            hidden_columns=["signal_id"],
            widths={
                "time (UTC)": 135,
                "setup": 115,
                "direction": 80,
                "score": 55,
                "confidence": 100,
            },
            configuration={"columnDefaults": {"headerSort": False}},
            height=380,
            width=495,
        )
        self._table.param.watch(self._on_table_selection, "selection")
        self._plot = pn.Column(sizing_mode="stretch_width")
        self._table_caption = _pane("", sizing_mode="stretch_width")
        self._caption = _pane("", sizing_mode="stretch_width")
        self._audit = _pane("", sizing_mode="stretch_width")
        self._load_symbol()
        self.param.watch(self._on_params, ["symbol", "timeframe", "start", "end", "signal_id"])
        # after _on_params (watchers run in the order they were added): it reads the new state
        self.param.watch(self._update_audit, ["signal_id", "symbol", "timeframe", "revision"])
        self._update_audit()

    # ---- data ------------------------------------------------------------------------------

    def _symbols(self) -> list[str]:
        try:
            return self._lake.symbols("candles")
        except (OSError, IngmonError):
            return []

    def _load_symbol(self) -> None:
        """Read the symbol's extent and signals (cached), then show its chart: the drawn chart
        updated in place when there is one."""
        self._extent = None
        self._signals = None
        if self.symbol:
            self._extent = self._read(("extent", self.symbol), self._read_extent)
            self._signals = self._read(("signals", self.symbol, self.timeframe), self._read_signals)
            self._last_seen = self._seen(self._extent, self._signals)
        self._place_selected(only_default=True)
        self._draw()

    @staticmethod
    def _seen(extent: tuple[int, int] | None, signals: pl.DataFrame) -> tuple[Any, ...]:
        """What refresh() compares to tell new bars or signals."""
        last = signals["score_id"].to_list()[-1:] if signals.height else 0
        return (extent, signals.height, last)

    def _read(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        return _READS.get((str(self._lake.root), *key), load)

    def _read_extent(self) -> tuple[int, int] | None:
        assert self.symbol is not None
        try:
            return candle_extent(self._lake, self.symbol)
        except (OSError, IngmonError):
            return None

    def _read_signals(self) -> pl.DataFrame:
        assert self.symbol is not None
        return symbol_signals(self._lake, self.symbol, timeframe=self.timeframe)

    def _range_ms(self) -> tuple[int, int] | None:
        """The range the params ask for; the default (the latest 7 days) when unset or bad."""
        if self._extent is None:
            return None
        try:
            start, end = parse_instant_ms(self.start), parse_instant_ms(self.end)
        except ValueError:
            return default_range(self._extent, days=self.default_days)
        if end <= start:
            return default_range(self._extent, days=self.default_days)
        return start, end

    def visible(self, start_ms: int, end_ms: int) -> VisibleRange | None:
        """The chart's data for a range (None without candles), cached for a few seconds."""
        if not self.symbol or self._extent is None:
            return None
        symbol, last = self.symbol, self._extent[1]
        key = ("visible", symbol, start_ms, end_ms, last)
        found: VisibleRange = self._read(
            key, lambda: visible_range(self._lake, symbol, start_ms=start_ms, end_ms=end_ms)
        )
        return found

    def audit(self) -> SignalAudit | None:
        """The selected signal's audit (None: nothing selected or unknown id)."""
        if not self.signal_id or not self.symbol or self._signals is None:
            return None
        return signal_audit(
            self._lake,
            symbol=self.symbol,
            signal_id=self.signal_id,
            timeframe=self.timeframe,
            signals=self._signals,
        )

    # ---- reactions -------------------------------------------------------------------------

    def _on_params(self, *events: Any) -> None:
        """One batch of param changes (the URL sets several at once; a widget one)."""
        if self._syncing:
            return
        changed = {event.name for event in events}
        if "symbol" in changed:
            # A new symbol opens on its latest days, with nothing selected — unless the same
            # batch (a link, the URL) says which range or signal.
            reset: dict[str, str] = {}
            if not changed & {"start", "end"}:
                reset.update(start="", end="")
            if "signal_id" not in changed:
                reset["signal_id"] = ""
            self._quietly(**reset)
            self._view = None
            self._load_symbol()
            return
        if "timeframe" in changed and self.symbol:
            self._signals = self._read(("signals", self.symbol, self.timeframe), self._read_signals)
            self._last_seen = self._seen(self._extent, self._signals)
            if "signal_id" not in changed:
                self._quietly(signal_id="")  # a signal id belongs to one timeframe
        wanted = self._range_ms()
        moved = wanted is not None and (self._view is None or not _same_range(wanted, self._view))
        if changed & {"start", "end"} and moved:
            self._draw()
            return
        if "signal_id" in changed and self._place_selected(only_default=True):
            self._draw()
            return
        if "timeframe" in changed:
            self._update_table()
            self._push(data=False)  # the markers (and ring) of the new timeframe
            return
        self._select_row()
        if self._selected_stream is not None:
            self._selected_stream.event(signal_id=self.signal_id)

    def _quietly(self, **values: Any) -> None:
        """Set params (the URL follows) without reacting to them here."""
        if not values:
            return
        self._syncing = True
        try:
            self.param.update(**values)
        finally:
            self._syncing = False

    def _place_selected(self, *, only_default: bool = False) -> bool:
        """Move the range to the selected signal when it is off screen (with ``only_default``,
        only when no range was asked for: a range in the URL wins); True if it moved."""
        if not self.signal_id or self._signals is None or self._extent is None:
            return False
        if only_default and (self.start or self.end):
            return False
        found = self._signals.filter(pl.col("signal_id") == self.signal_id)
        if not found.height:
            return False
        at = int(found["bar_close_ms"][0])
        view = self._view or self._range_ms()
        assert view is not None  # the extent is known
        start, end = view
        if start <= at < end:
            return False
        span = min(end - start, 3 * DAY_MS)
        self._set_range(at - span // 2, at + span // 2)
        return True

    def _set_range(self, start_ms: int, end_ms: int) -> None:
        self._quietly(start=_iso(start_ms), end=_iso(end_ms))

    def _on_table_selection(self, event: Any) -> None:
        if self._syncing or not event.new:
            return
        rows = self._table.value
        index = event.new[0]
        if 0 <= index < len(rows):
            self.signal_id = str(rows["signal_id"].iloc[index])

    def _select_row(self) -> None:
        rows = self._table.value
        wanted = (
            [int(i) for i in np.flatnonzero(rows["signal_id"].to_numpy() == self.signal_id)]
            if self.signal_id and "signal_id" in rows
            else []
        )
        if list(self._table.selection) != wanted[:1]:
            self._syncing = True
            try:
                self._table.selection = wanted[:1]
            finally:
                self._syncing = False

    def show_range(self, preset: str) -> None:
        """Show the last ``preset`` (``1d`` … ``90d``) of the symbol's candles, or ``all``."""
        if self._extent is None:
            return
        span = RANGE_PRESETS[preset]
        first, end = self._extent
        start = first if span is None else max(first, end - span)
        margin = max(60_000, (end - start) // 20)
        self.param.update(start=_iso(start), end=_iso(end + margin))

    def refresh(self) -> None:
        """New bars and signals, drawn in place on the range the user is looking at."""
        symbols = self._symbols()
        if symbols != self.param.symbol.objects:
            self.param.symbol.objects = symbols
        if not self.symbol:
            if symbols:
                self.symbol = symbols[0]
            return
        extent = self._read(("extent", self.symbol), self._read_extent)
        signals = self._read(("signals", self.symbol, self.timeframe), self._read_signals)
        seen = self._seen(extent, signals)
        if seen == self._last_seen:
            return
        self._last_seen = seen
        had_chart = self._extent is not None
        self._extent, self._signals = extent, signals
        if not had_chart:
            self._draw()
            return
        self.revision += 1
        self._update_table()
        self._push()  # the range on screen stays: only its data is new

    # ---- the chart -------------------------------------------------------------------------

    def _current(self, x_range: Any) -> tuple[int, int] | None:
        if x_range is not None and x_range[0] is not None:
            return _ms(x_range[0]), _ms(x_range[1])
        return self._view or self._range_ms()

    def _on_view(self, x_range: Any = None, **_: Any) -> None:
        """The user zoomed or panned: remember the range, put it in the URL, list its signals."""
        if x_range is None or x_range[0] is None:
            return
        view = (_ms(x_range[0]), _ms(x_range[1]))
        if self._view is not None and all(
            abs(a - b) < 1000 for a, b in zip(view, self._view, strict=True)
        ):
            return  # the plot reporting the range it was drawn at
        self._view = view
        self._set_range(*view)
        self._update_table()
        self._update_caption()

    def _update_table(self) -> None:
        signals = self._signals
        view = self._view or self._range_ms()
        if signals is None or view is None:
            rows = signal_table(pl.DataFrame())
        else:
            start, end = view
            inside = signals.filter(
                (pl.col("bar_close_ms") >= start) & (pl.col("bar_close_ms") < end)
            )
            rows = signal_table(inside)
        self._syncing = True
        try:
            self._table.value = rows
        finally:
            self._syncing = False
        self._select_row()
        self._table_caption.object = self._caption_html(len(rows))

    def _caption_html(self, shown: int) -> str:
        if not self.symbol or self._extent is None:
            return ""
        total = 0 if self._signals is None else self._signals.height
        if total == 0:
            return (
                f'<div class="ingmon-empty"><b>No {_e(self.timeframe)} signals for '
                f"{_e(self.symbol)} yet.</b> The worker scores new bars each tick (or run "
                f"<code>ingmon score --symbol {_e(self.symbol)}</code>).</div>"
            )
        if shown == 0:
            return (
                f'<div class="ingmon-empty"><b>No signals in the visible range</b> ({total} '
                "outside it): zoom out or show all.</div>"
            )
        return f'<div class="ingmon-muted">{shown} of {total} signals, in the visible range</div>'

    def _candles(self, x_range: Any = None, revision: int = 0) -> hv.Overlay:
        del revision
        view = self._current(x_range)
        data = None if view is None else self.visible(*view)
        bars = data.bars if data is not None else None
        if bars is None or not bars.height:
            times = to_datetime([])
            wicks = hv.Segments(
                (times, [], times, []), kdims=["time", "price", "time_end", "price_end"]
            )
            bodies = hv.Rectangles(
                (times, [], times, [], [], [], [], [], [], [], []),
                kdims=["time", "price", "time_end", "price_end"],
                vdims=["open", "high", "low", "close", "volume", "bar", "color"],
            )
            return wicks * bodies
        assert data is not None
        step = data.interval_ms
        opened = bars["open_time_ms"].to_numpy()
        middle = to_datetime(opened + step // 2)
        wicks = hv.Segments(
            (middle, bars["low"].to_numpy(), middle, bars["high"].to_numpy()),
            kdims=["time", "price", "time_end", "price_end"],
        )
        open_, close = bars["open"].to_numpy(), bars["close"].to_numpy()
        pad = max(1, step // 8)
        colors = np.where(close >= open_, UP_COLOR, DOWN_COLOR)
        labels = [f"{_utc(ms)} · {interval_label(step)}" for ms in opened.tolist()]
        bodies = hv.Rectangles(
            (
                to_datetime(opened + pad),
                np.minimum(open_, close),
                to_datetime(opened + step - pad),
                np.maximum(open_, close),
                open_,
                bars["high"].to_numpy(),
                bars["low"].to_numpy(),
                close,
                bars["volume"].to_numpy(),
                labels,
                colors,
            ),
            kdims=["time", "price", "time_end", "price_end"],
            vdims=["open", "high", "low", "close", "volume", "bar", "color"],
        )
        return wicks * bodies

    def _markers(self, x_range: Any = None, revision: int = 0) -> hv.Points:
        del revision
        view = self._current(x_range)
        frame = (
            signal_markers(self._signals, start_ms=view[0], end_ms=view[1])
            if self._signals is not None and view is not None
            else None
        )
        vdims = ["setup", "direction", "score", "confidence", "color", "size", "marker", "when"]
        if frame is None or not frame.height:
            return hv.Points(
                (to_datetime([]), [], [], [], [], [], [], [], [], []),
                kdims=["time", "price"],
                vdims=vdims,
            )
        return hv.Points(
            (
                to_datetime(frame["time_ms"].to_numpy()),
                frame["price"].to_numpy(),
                frame["setup"].to_list(),
                frame["direction"].to_list(),
                ["–" if s is None else f"{s} / 7" for s in frame["score"].to_list()],
                [c or "–" for c in frame["confidence"].to_list()],
                frame["color"].to_list(),
                frame["size"].to_numpy(),
                [
                    "triangle" if d == "long" else "inverted_triangle"
                    for d in frame["direction"].to_list()
                ],
                [_utc(ms) for ms in frame["time_ms"].to_list()],
            ),
            kdims=["time", "price"],
            vdims=vdims,
        )

    def _selected(self, signal_id: str = "", revision: int = 0) -> hv.Points:
        del revision
        found = (
            self._signals.filter(pl.col("signal_id") == signal_id)
            if self._signals is not None and signal_id
            else None
        )
        if found is None or not found.height:
            return hv.Points((to_datetime([]), []), kdims=["time", "price"])
        return hv.Points(
            (to_datetime(found["bar_close_ms"].to_numpy()), found["close"].to_numpy()),
            kdims=["time", "price"],
        )

    def _levels(self, x_range: Any = None, revision: int = 0, *, which: str) -> hv.HLines:
        del revision
        view = self._current(x_range)
        data = None if view is None else self.visible(*view)
        if data is None or data.profile is None:
            return hv.HLines([], kdims=["price"])
        profile = data.profile.profile
        prices = [profile.poc_price] if which == "poc" else [profile.val, profile.vah]
        return hv.HLines(prices, kdims=["price"])

    def _profile(self, x_range: Any = None, revision: int = 0) -> hv.Rectangles:
        del revision
        view = self._current(x_range)
        data = None if view is None else self.visible(*view)
        vdims = ["volume", "buy_volume", "sell_volume", "zone", "color"]
        kdims = ["share", "price", "share_end", "price_end"]
        if data is None or data.profile is None:
            return hv.Rectangles(([], [], [], [], [], [], [], [], []), kdims=kdims, vdims=vdims)
        bins = profile_bins(data.profile.profile)
        zone_color = {"poc": POC_COLOR, "value_area": VALUE_AREA_COLOR, "outside": OUTSIDE_COLOR}
        zeros = np.zeros(bins.height)
        return hv.Rectangles(
            (
                zeros,
                bins["price_low"].to_numpy(),
                bins["share_of_poc"].to_numpy(),
                bins["price_high"].to_numpy(),
                bins["volume"].to_numpy(),
                bins["buy_volume"].to_numpy(),
                bins["sell_volume"].to_numpy(),
                bins["zone"].to_list(),
                [zone_color[z] for z in bins["zone"].to_list()],
            ),
            kdims=kdims,
            vdims=vdims,
        )

    def _fit_prices(self, plot: Any, element: Any) -> None:
        """Keep the price axis on the visible bars (the time axis is the user's)."""
        if not len(element):
            return
        low = float(np.min(element.dimension_values("price")))
        high = float(np.max(element.dimension_values("price_end")))
        pad = (high - low) * 0.05 or max(abs(high) * 0.001, 1e-9)
        plot.state.y_range.update(start=low - pad, end=high + pad)

    def _level_maps(self, streams: list[Any], opts: dict[str, Any]) -> tuple[Any, Any]:
        """POC (solid) and value area (dashed) lines of the visible range's profile."""
        poc = hv.DynamicMap(
            lambda x_range=None, revision=0: self._levels(x_range, revision, which="poc"),
            streams=streams,
        ).opts(color=POC_COLOR, line_width=2, **opts)
        value_area = hv.DynamicMap(
            lambda x_range=None, revision=0: self._levels(x_range, revision, which="va"),
            streams=streams,
        ).opts(color=VALUE_AREA_COLOR, line_width=1.5, line_dash="dashed", **opts)
        return poc, value_area

    def _draw(self) -> None:
        """Show the params' range. A drawn chart is updated in place — its streams get the new
        range and data, its figures the new time range — which costs a fraction of drawing a
        new one (in the server and in the browser); a new chart only when none is drawn."""
        if self._range_stream is None or not self.symbol or self._extent is None:
            self._build_chart()
            return
        view = self._range_ms()
        assert view is not None  # the extent is known
        self._view = view
        self._update_table()
        self._push(view)

    def _push(self, view: tuple[int, int] | None = None, *, data: bool = True) -> None:
        """Redraw the chart's data in place in one stream trigger (each plot updates once): the
        markers and the selection ring, with ``data`` the bars and the profile too; with
        ``view``, at that range (the figures' time range follows), else at the range on screen
        (the user's zoom stays)."""
        if self._range_stream is None:
            return
        self._redraws += 1
        streams: list[Any] = [self._marker_stream, self._selected_stream]
        self._marker_stream.update(revision=self._redraws)
        self._selected_stream.update(signal_id=self.signal_id, revision=self._redraws)
        if data:
            self._data_stream.update(revision=self._redraws)
            streams.append(self._data_stream)
        if view is not None:
            self._range_stream.update(x_range=tuple(to_datetime(list(view))))
            streams.append(self._range_stream)
        hv.streams.Stream.trigger(streams)
        if view is not None:
            start, end = (float(bound) for bound in view)
            for x_range in self._x_ranges:
                x_range.update(start=start, end=end, reset_start=start, reset_end=end)
        self._update_caption()

    def _keep_figure(self, plot: Any, element: Any) -> None:
        """The chart's hook (run when it is drawn and on each update): remember a new figure's
        time range, which _push moves to a new range, and start it at the range shown now —
        the chart may have moved in place since it was built, and HoloViews, drawing it, set
        the range stream to the data's extent (wider: whole buckets)."""
        del element
        x_range = plot.state.x_range
        if any(kept is x_range for kept in self._x_ranges):
            return
        self._x_ranges.append(x_range)
        if self._view is not None and self._range_stream is not None:
            start, end = self._view
            x_range.update(
                start=float(start), end=float(end), reset_start=float(start), reset_end=float(end)
            )
            self._range_stream.update(x_range=tuple(to_datetime([start, end])))

    def _build_chart(self) -> None:
        """Draw the chart at the params' range (a new plot: the first time, or after an empty
        state)."""
        self._range_stream = None
        self._data_stream = self._marker_stream = self._selected_stream = None
        self._x_ranges = []
        if not self.symbol:
            self._plot[:] = [
                _pane(
                    '<div class="ingmon-empty"><b>No candles in the lake yet.</b> Backfill a '
                    "symbol: <code>ingmon backfill --symbol BTCUSDT</code>.</div>"
                )
            ]
            self._update_table()
            return
        if self._extent is None:
            known = ", ".join(self.param.symbol.objects) or "none"
            self._plot[:] = [
                _pane(
                    f'<div class="ingmon-empty"><b>No 1m candles of {_e(self.symbol)} in the '
                    f"lake.</b> Symbols with candles: {_e(known)}.</div>"
                )
            ]
            self._update_table()
            return
        view = self._range_ms()
        assert view is not None
        self._view = view
        revision = hv.streams.Stream.define("Revision", revision=0)
        selected = hv.streams.Stream.define("Selected", signal_id="", revision=0)
        self._range_stream = hv.streams.RangeX(x_range=tuple(to_datetime(list(view))))
        self._data_stream = revision(revision=self._redraws)
        self._marker_stream = revision(revision=self._redraws)
        self._selected_stream = selected(signal_id=self.signal_id, revision=self._redraws)
        data_streams = [self._range_stream, self._data_stream]
        candles = hv.DynamicMap(self._candles, streams=data_streams)
        self._range_stream.add_subscriber(self._on_view)
        tools = {"default_tools": ["xpan", "xwheel_zoom", "reset", "save"]}
        candles = candles.opts(
            hv.opts.Segments(color="#555555", line_width=1, hooks=[self._fit_prices], **tools),
            hv.opts.Rectangles(
                color="color",
                line_color="color",
                tools=["hover"],
                hover_tooltips=[
                    ("bar", "@bar"),
                    ("open", "@open{0,0.[0000]}"),
                    ("high", "@high{0,0.[0000]}"),
                    ("low", "@low{0,0.[0000]}"),
                    ("close", "@close{0,0.[0000]}"),
                    ("volume", "@volume{0,0.[00]}"),
                ],
                **tools,
            ),
        )
        markers = hv.DynamicMap(self._markers, streams=[self._range_stream, self._marker_stream])
        markers = markers.opts(
            color="color",
            size="size",
            marker="marker",
            line_color=MARKER_LINE,
            line_width=1.5,
            tools=["hover"],
            hover_tooltips=[
                ("signal", "@setup @direction"),
                ("time", "@when"),
                ("price", "@price{0,0.[0000]}"),
                ("score", "@score"),
                ("confidence", "@confidence"),
            ],
            **tools,
        )
        ring = hv.DynamicMap(self._selected, streams=[self._selected_stream]).opts(
            marker="circle", size=26, fill_alpha=0, line_color="#000000", line_width=2, **tools
        )
        poc, value_area = self._level_maps(data_streams, tools)
        chart = (candles * poc * value_area * markers * ring).opts(
            hv.opts.Overlay(
                responsive=True,
                frame_height=FRAME_HEIGHT,
                min_width=500,
                xlabel="time (UTC)",
                ylabel="price",
                show_legend=False,
                active_tools=["xpan", "xwheel_zoom"],
                title="",
                hooks=[self._keep_figure],
            )
        )
        profile = hv.DynamicMap(self._profile, streams=data_streams).opts(
            color="color",
            line_color="#FFFFFF",
            line_width=0.5,
            tools=["hover"],
            default_tools=[],
            hover_tooltips=[
                ("price", "@price{0,0.[0000]} – @price_end{0,0.[0000]}"),
                ("volume", "@volume{0,0.[00]}"),
                ("buys / sells", "@buy_volume{0,0.[00]} / @sell_volume{0,0.[00]}"),
                ("zone", "@zone"),
            ],
        )
        profile_poc, profile_va = self._level_maps(data_streams, {"default_tools": []})
        profile_plot = (profile * profile_poc * profile_va).opts(
            hv.opts.Overlay(
                frame_height=FRAME_HEIGHT,
                frame_width=200,
                xlim=(0, 1.05),
                yaxis=None,
                xlabel="volume (÷ POC bin)",
                toolbar=None,
                title="",
            )
        )
        self._plot[:] = [
            pn.Row(
                pn.pane.HoloViews(  # type: ignore[no-untyped-call]
                    chart, sizing_mode="stretch_width", linked_axes=True
                ),
                pn.pane.HoloViews(  # type: ignore[no-untyped-call]
                    profile_plot, linked_axes=True
                ),
                sizing_mode="stretch_width",
            ),
            self._caption,
        ]
        self._update_table()
        self._update_caption()

    # ---- views -----------------------------------------------------------------------------

    def _update_caption(self) -> None:
        """The line under the chart, for the range on screen (updated in place)."""
        self._caption.object = self._chart_caption_html()

    def _chart_caption(self) -> pn.pane.HTML:
        """The line under the chart as a pane (what ``_caption`` shows)."""
        return _pane(self._chart_caption_html(), sizing_mode="stretch_width")

    def _chart_caption_html(self) -> str:
        view = self._view or self._range_ms()
        data = None if view is None else self.visible(*view)
        if data is None:
            return ""
        if not data.bars.height:
            return (
                '<div class="ingmon-empty"><b>No candles in the visible range</b> '
                f"({_e(_utc(data.start_ms))} → {_e(_utc(data.end_ms))}): pan or show all.</div>"
            )
        text = (
            f"{data.bars.height} bars of {interval_label(data.interval_ms)} from "
            f"{data.minutes:,} 1m candles · {_e(_utc(data.start_ms))} → {_e(_utc(data.end_ms))}"
        )
        if data.profile is None:
            text += "<br>no volume profile: the visible range trades at a single price"
        else:
            p = data.profile
            source = (
                f"{p.source_rows:,} trades"
                if p.method == "trades"
                else f"{p.source_rows:,} bars of {interval_label(p.source_interval_ms or 0)}"
            )
            text += (
                f"<br>profile of the visible range: {len(p.profile)} rows · w = "
                f"{format_value(p.profile.bin_width)} · POC {format_value(p.profile.poc_price)} · "
                f"VA {format_value(p.profile.val)}–{format_value(p.profile.vah)} "
                f"({100 * p.profile.value_area_share:.0f} %, CBOT) · from {source} ({_e(p.note)})"
            )
        legend = " ".join(
            f'<span class="ingmon-badge" style="background:{color};'
            f'color:{"#FFFFFF" if score >= 5 else "#1A1A1A"};border:1px solid {MARKER_LINE}">'
            f"{score}</span>"
            for score, color in enumerate(SCORE_COLORS)
        )
        text += (
            f"<br>markers: ▲ long · ▼ short · colour and size by score {legend} · white = not "
            "scored · lines: POC (solid), value area (dashed)"
        )
        return f'<div class="ingmon-muted">{text}</div>'

    def audit_view(self) -> pn.pane.HTML:
        """The selected signal's audit, or why there is none (what the page's audit pane
        shows)."""
        return _pane(self._audit_html(), sizing_mode="stretch_width")

    def _audit_html(self) -> str:
        if not self.signal_id:
            if self._signals is None or not self._signals.height:
                return ""
            return (
                '<div class="ingmon-empty">Select a signal (a row of the table) to see its '
                "7-point audit.</div>"
            )
        audit = self.audit()
        if audit is None:
            return (
                f'<div class="ingmon-empty"><b>Unknown signal {_e(self.signal_id)}</b>: no '
                f"{_e(self.timeframe)} signal of {_e(self.symbol or '–')} has this id.</div>"
            )
        return audit_html(audit)

    def _update_audit(self, *_: Any) -> None:
        """The audit pane, updated in place (after _on_params has read the new state)."""
        text = self._audit_html()
        if text != self._audit.object:
            self._audit.object = text

    def _preset_handler(self, preset: str) -> Callable[[Any], None]:
        def show(_: Any) -> None:
            self.show_range(preset)

        return show

    def __panel__(self) -> pn.viewable.Viewable:
        symbol = pn.widgets.Select.from_param(self.param.symbol, label="Symbol", width=160)
        timeframe = pn.widgets.Select.from_param(
            self.param.timeframe, label="Signal timeframe", width=120
        )
        presets = []
        for preset in RANGE_PRESETS:
            button = pn.widgets.Button(  # type: ignore[no-untyped-call]
                label=preset, width=56, margin=(24, 2, 5, 2)
            )
            button.on_click(self._preset_handler(preset))
            presets.append(button)
        return pn.Column(
            pn.Row(symbol, timeframe, *presets),
            self._plot,
            pn.Row(
                pn.Column(self._table_caption, self._table, width=505),
                pn.Column(self._audit, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )

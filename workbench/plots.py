"""What every page of the workbench shares: the status palette, glyph + word badges, number and
time formats, HTML panes with the workbench's styles, a clickable HTML pane for drill-downs and
Bokeh plots over time whose data is updated in place (the user's zoom stays).

Status is never told by colour alone: a badge is a glyph, a word and a colour (✓ ok, ! warn,
✕ error, – no data) from Paul Tol's high-contrast colours with a quiet OK, which stay apart under
colour-vision deficiencies. Durations are their two largest units (``format_duration``, the
API's own), times are printed in UTC with the zone.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import holoviews as hv
import numpy as np
import numpy.typing as npt
import panel as pn
import param
from bokeh.models import ColumnDataSource, DatetimeTickFormatter, HoverTool, Span
from bokeh.plotting import figure
from panel.custom import JSComponent

from ingmon.api.documents import format_duration
from ingmon.monitor.series_detail import peak_indices
from ingmon.times import iso_ms

__all__ = [
    "CSS",
    "GLYPHS",
    "KIND_COLOURS",
    "LINE_BUDGET",
    "PALETTE",
    "ClickableHTML",
    "LineChart",
    "badge",
    "empty_state",
    "escape",
    "format_duration",
    "hover",
    "html_pane",
    "html_table",
    "nav_attribute",
    "percent",
    "status_colour",
    "status_label",
    "threshold",
    "time_figure",
    "to_datetime",
    "utc",
]

# The pages drawing with HoloViews (Signals, Performance) set plot options, which need the
# Bokeh backend loaded: once, here, for every page.
if "bokeh" not in hv.Store.renderers:
    hv.extension("bokeh", logo=False)

# fill, text colour (contrast ≥ 4.5:1 on each fill)
PALETTE: Mapping[str, tuple[str, str]] = {
    "ok": ("#D6E2EE", "#1A1A1A"),
    "warn": ("#DDAA33", "#1A1A1A"),
    "error": ("#BB5566", "#FFFFFF"),
    "unknown": ("#BBBBBB", "#1A1A1A"),
}
GLYPHS: Mapping[str, tuple[str, str]] = {
    "ok": ("✓", "ok"),
    "warn": ("!", "warn"),
    "error": ("✕", "error"),
    "unknown": ("–", "no data"),
}
# Marks on plots: the quiet OK fill is too pale on white, so points use Tol's dark blue.
_MARKS: Mapping[str, str] = {
    "ok": "#004488",
    "warn": "#DDAA33",
    "error": "#BB5566",
    "unknown": "#BBBBBB",
}
# The gaps timeline: a gap the health model counts, one the exchange itself has, a stale tail.
KIND_COLOURS: Mapping[str, str] = {
    "missing": "#BB5566",
    "exchange": "#888888",
    "stale": "#DDAA33",
}
# Points a line sends to the browser at most (per zoom level): about one per pixel.
LINE_BUDGET = 800

CSS = """
.ingmon-grid { border-collapse: separate; border-spacing: 2px; background: #EEEEEE;
  font-variant-numeric: tabular-nums; }
.ingmon-grid th { background: #FFFFFF; padding: 4px 8px; text-align: left; font-weight: 600; }
.ingmon-grid td { padding: 4px 8px; white-space: nowrap; }
.ingmon-grid td.num { text-align: right; }
.ingmon-grid td.cell a { color: inherit; text-decoration: none; display: block; }
.ingmon-grid td.cell a:hover, .ingmon-grid td.cell a:focus { text-decoration: underline; }
.ingmon-grid td.cell { cursor: pointer; }
.ingmon-stale .ingmon-grid td.cell { opacity: 0.6; font-style: italic; }
.ingmon-badge { display: inline-block; padding: 1px 6px; border-radius: 3px; }
.ingmon-banner { padding: 6px 10px; border-radius: 3px; margin: 4px 0; }
.ingmon-empty { color: #444444; padding: 8px 0; }
.ingmon-muted { color: #555555; font-size: 90%; }
"""


# ---- text ---------------------------------------------------------------------------------


def escape(text: Any) -> str:
    """``text`` safe inside HTML text and attributes."""
    return html.escape(str(text), quote=True)


def status_label(status: str) -> str:
    """``✓ ok``, ``! warn``, ``✕ error``, ``– no data``."""
    glyph, word = GLYPHS.get(status, GLYPHS["unknown"])
    return f"{glyph} {word}"


def status_colour(status: str) -> str:
    """The colour a plot marks ``status`` with (readable on white)."""
    return _MARKS.get(status, _MARKS["unknown"])


def badge(status: str, *, text: str | None = None) -> str:
    """A status as glyph + word (+ ``text``) on its colour: never colour alone."""
    fill, ink = PALETTE.get(status, PALETTE["unknown"])
    label = status_label(status) + (f" · {text}" if text else "")
    return (
        f'<span class="ingmon-badge" style="background:{fill};color:{ink}" '
        f'data-status="{escape(status)}">{escape(label)}</span>'
    )


def percent(value: float | None, *, decimals: int = 1, signed: bool = False) -> str:
    """A fraction as a percentage with fixed decimals (``+1.25 %``); ``–`` when unknown."""
    if value is None:
        return "–"
    sign = "+" if signed and value > 0 else ""
    return f"{sign}{100 * value:.{decimals}f} %"


def utc(value_ms: int | None, *, seconds: bool = True) -> str:
    """``2026-03-01 12:03:05 UTC``; ``–`` when unknown."""
    text = iso_ms(value_ms)
    if text is None:
        return "–"
    return f"{text[: 19 if seconds else 16].replace('T', ' ')} UTC"


def to_datetime(values_ms: npt.ArrayLike) -> npt.NDArray[np.datetime64]:
    """Epoch milliseconds as ``datetime64[ms]`` (what a time axis wants)."""
    return np.asarray(values_ms, dtype=np.int64).astype("datetime64[ms]")


def nav_attribute(
    page: str, params: Mapping[str, Any], *, url_params: Mapping[str, str] | None = None
) -> str:
    """The attributes that make an element inside a :class:`ClickableHTML` open ``page`` with
    ``params`` (parameter names, as ``navigate(page, **params)`` takes them): a data attribute
    the click handler reads, and an ``href`` with the same state in the URL — its keys from
    the page's ``url_params`` (``URL_PARAMS``) — which a middle click opens in a new tab."""
    keys = url_params or {}
    state = {"page": page, **{keys.get(name, name): value for name, value in params.items()}}
    query = urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in state.items()})
    payload = json.dumps({"page": page, **params})
    return f'href="?{escape(query)}" data-nav="{escape(payload)}"'


def empty_state(title: str, detail: str = "") -> str:
    """An empty state: a short sentence saying why, then what to do (HTML allowed in detail)."""
    return f'<div class="ingmon-empty"><b>{escape(title)}</b> {detail}</div>'


def html_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[int] = ()
) -> str:
    """An HTML table; cells are HTML already; ``numeric`` columns align right."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if n in numeric else f"<td>{cell}</td>"
            for n, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="ingmon-grid"><tr>{head}</tr>{body}</table>'


def html_pane(text: str, **params: Any) -> pn.pane.HTML:
    """An HTML pane with the workbench's styles (each pane renders in its own shadow root)."""
    params.setdefault("sizing_mode", "stretch_width")
    return pn.pane.HTML(  # type: ignore[no-untyped-call]  # Panel is untyped
        text, stylesheets=[CSS], **params
    )


# ---- components -----------------------------------------------------------------------------


class ClickableHTML(JSComponent):  # type: ignore[misc]  # Panel is untyped
    """HTML in which a plain click on an element carrying :func:`nav_attribute` calls
    ``on_navigate(page, params)`` on the server instead of loading its ``href`` (a click with
    a modifier key, or a middle click, still follows the link)."""

    object = param.String(default="", doc="The HTML shown")

    _esm = """
    export function render({ model, el }) {
      const root = document.createElement("div");
      const draw = () => { root.innerHTML = model.object; };
      draw();
      model.on("object", draw);
      root.addEventListener("click", (event) => {
        const target = event.target.closest("[data-nav]");
        if (!target || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) {
          return;
        }
        event.preventDefault();
        model.send_msg(JSON.parse(target.dataset.nav));
      });
      return root;
    }
    """

    def __init__(
        self,
        object: str = "",  # Panel's name for a pane's content
        *,
        on_navigate: Callable[..., None] | None = None,
        **params: Any,
    ) -> None:
        params.setdefault("stylesheets", [CSS])
        params.setdefault("sizing_mode", "stretch_width")
        super().__init__(object=object, **params)
        self._on_navigate = on_navigate

    def _handle_msg(self, data: Any) -> None:
        if self._on_navigate is None or not isinstance(data, dict) or "page" not in data:
            return
        params = {str(k): v for k, v in data.items() if k != "page"}
        self._on_navigate(str(data["page"]), **params)


# ---- plots (Bokeh): data updated in place -------------------------------------------------


def time_figure(*, y_label: str, height: int = 220) -> figure:
    """A plot over time (UTC) that pans and zooms along x; its ranges follow the data until
    the user zooms, and keep the zoom while new data arrives (Bokeh's DataRange1d)."""
    plot = figure(
        x_axis_type="datetime",
        height=height,
        sizing_mode="stretch_width",
        tools="xpan,xwheel_zoom,box_zoom,reset,save",
        active_drag="xpan",
        toolbar_location="right",
    )
    plot.toolbar.logo = None
    plot.xaxis.axis_label = "time (UTC)"
    plot.yaxis.axis_label = y_label
    plot.xaxis.formatter = DatetimeTickFormatter(
        microseconds="%H:%M:%S.%3N",
        milliseconds="%H:%M:%S.%3N",
        seconds="%H:%M:%S",
        minsec="%H:%M:%S",
        minutes="%H:%M",
        hourmin="%H:%M",
        hours="%H:%M",
        days="%m-%d",
        months="%Y-%m",
    )
    plot.x_range.default_span = 3_600_000  # a lone point: an hour around it (ms)
    return plot


def threshold(plot: figure, value: float, *, status: str) -> None:
    """A dashed horizontal line at ``value`` in ``status``'s colour (a warn or error limit)."""
    plot.add_layout(
        Span(
            location=value,
            dimension="width",
            line_color=status_colour(status),
            line_dash="dashed",
            line_width=1.5,
        )
    )


def hover(plot: figure, *tooltips: tuple[str, str]) -> None:
    """Tooltips; ``@time`` printed as a UTC date and time."""
    plot.add_tools(
        HoverTool(
            tooltips=[("time (UTC)", "@time{%F %T}"), *tooltips],
            formatters={"@time": "datetime"},
        )
    )


class LineChart:
    """A line over time with a marker on each point, updated in place by ``update`` (the
    plot, and the user's zoom, stay); at most ``budget`` points reach the browser, the largest
    of each run kept (``ingmon.monitor.series_detail.peak_indices``)."""

    def __init__(
        self,
        *,
        y_label: str,
        unit: str = "",
        colour: str = "#004488",
        budget: int = LINE_BUDGET,
        height: int = 220,
    ) -> None:
        self.budget = budget
        self.source = ColumnDataSource({"time": to_datetime([]), "value": np.zeros(0)})
        self.figure = time_figure(y_label=y_label, height=height)
        self.figure.line("time", "value", source=self.source, color=colour, line_width=1.5)
        self.figure.scatter("time", "value", source=self.source, color=colour, size=4)
        hover(self.figure, (y_label, f"@value{{0.0}} {unit}".rstrip()))

    def update(self, times_ms: npt.ArrayLike, values: npt.ArrayLike) -> None:
        times = np.asarray(times_ms, dtype=np.int64)
        data = np.asarray(values, dtype=np.float64)
        keep = peak_indices(data, self.budget)
        self.source.data = {"time": to_datetime(times[keep]), "value": data[keep]}

    @property
    def points(self) -> int:
        """Points the browser has."""
        return len(self.source.data["value"])

"""The Overview page: is every feed fresh, are signals coming, how did the latest runs do, what is
firing, and is the worker alive — one screen, refreshed while it is open.

The page reads the same documents the JSON API serves (``ingmon.api.health_document`` and
``metrics_document``), so the dashboard and ``/api/*`` never disagree. The shaping from those
documents to cells and rows is in plain functions here (``freshness_grid``, ``signal_matrix``,
``performance_rows``, …) that the tests call directly; the view methods only render them.

Status is never told by colour alone: each cell has a glyph and a word too (✓ ok, ! warn,
✕ error, – no data), on a palette that stays apart under colour-vision deficiencies (Paul Tol's
high-contrast colours with a quiet OK; docs/monitoring.md).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import panel as pn
import param

from ingmon.api import STATUSES, format_duration, health_document, metrics_document
from ingmon.config import Settings, load_settings
from ingmon.times import now_ms, parse_instant_ms
from workbench.freshness import FreshnessPage
from workbench.plots import CSS as _CSS
from workbench.plots import GLYPHS, PALETTE, ClickableHTML, badge, nav_attribute, percent

__all__ = [
    "GLYPHS",
    "PALETTE",
    "FreshnessCell",
    "FreshnessGrid",
    "Overview",
    "badge",
    "freshness_grid",
    "percent",
    "performance_rows",
    "series_causes",
    "signal_matrix",
]

# PALETTE, GLYPHS, badge and percent are the workbench's shared ones (workbench.plots).
_RANK: dict[str, int] = {status: rank for rank, status in enumerate(STATUSES)}
_CONFIDENCES = ("high", "medium", "low")


def _pane(text: str, **params: Any) -> pn.pane.HTML:
    """An HTML pane with the page's styles (each pane renders in its own shadow root)."""
    return pn.pane.HTML(  # type: ignore[no-untyped-call]  # Panel is untyped
        text, stylesheets=[_CSS], **params
    )


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _ago(iso: str | None, now: int) -> str:
    if iso is None:
        return "never"
    return f"{format_duration((now - parse_instant_ms(iso)) / 1000)} ago"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="ingmon-grid {cls}"><tr>{head}</tr>{body}</table>'


# ---- freshness grid: dataset × symbol ---------------------------------------------------------


def series_causes(series: Mapping[str, Any]) -> list[str]:
    """Why a series is not ok, in words: stale, late (latency), cadence, gaps, duplicates,
    corrupt."""
    causes = []
    for part, word in (("freshness", "stale"), ("latency", "late"), ("cadence", "cadence")):
        if series[part]["status"] in ("warn", "error"):
            causes.append(word)
    if series["gaps"]:
        causes.append(f"{series['gaps']} gaps")
    if series["duplicates"]:
        causes.append("duplicates")
    if series["corrupt_files"]:
        causes.append("corrupt")
    return causes


@dataclass(frozen=True)
class FreshnessCell:
    """One dataset × symbol: its status, the lag of its newest event and why it is not ok."""

    status: str
    lag: str  # "3m 12s", or "–" when nothing is stored
    causes: tuple[str, ...]
    title: str  # the tooltip: last event, thresholds, the parts' statuses
    dataset: str = ""  # the series, for the link to its Freshness drill-down
    symbol: str = ""

    def html(self) -> str:
        text = self.lag + (f" · {', '.join(self.causes)}" if self.causes else "")
        fill, ink = PALETTE.get(self.status, PALETTE["unknown"])
        glyph, word = GLYPHS.get(self.status, GLYPHS["unknown"])
        content = f"{_e(glyph)} {_e(word)}<br>{_e(text)}"
        if self.dataset and self.symbol:
            link = nav_attribute(
                "freshness",
                {"dataset": self.dataset, "symbol": self.symbol},
                url_params=FreshnessPage.URL_PARAMS,
            )
            content = f"<a {link}>{content}</a>"
        return (
            f'<td class="cell" style="background:{fill};color:{ink}" '
            f'data-status="{_e(self.status)}" title="{_e(self.title)}">{content}</td>'
        )


@dataclass(frozen=True)
class FreshnessGrid:
    """Rows (dataset and its parameter), columns (symbols), both worst first."""

    rows: tuple[str, ...]
    symbols: tuple[str, ...]
    cells: Mapping[tuple[str, str], FreshnessCell]

    def html(self) -> str:
        head = "<th>dataset</th>" + "".join(f"<th>{_e(s)}</th>" for s in self.symbols)
        body = []
        for row in self.rows:
            cells = []
            for symbol in self.symbols:
                cell = self.cells.get((row, symbol))
                cells.append(cell.html() if cell else '<td class="ingmon-muted">not watched</td>')
            body.append(f"<tr><th>{_e(row)}</th>{''.join(cells)}</tr>")
        return f'<table class="ingmon-grid"><tr>{head}</tr>{"".join(body)}</table>'


def _worst_order(statuses: Mapping[str, list[str]]) -> tuple[str, ...]:
    """Names ordered by their worst status (error first), then by how many are bad, then name."""

    def key(name: str) -> tuple[int, int, str]:
        ranks = [_RANK.get(status, _RANK["unknown"]) for status in statuses[name]]
        return (min(ranks), -sum(1 for rank in ranks if rank <= _RANK["warn"]), name)

    return tuple(sorted(statuses, key=key))


def freshness_grid(metrics: Mapping[str, Any]) -> FreshnessGrid:
    """The ``/api/metrics`` series as a dataset × symbol grid, rows and columns worst first."""
    cells: dict[tuple[str, str], FreshnessCell] = {}
    by_row: dict[str, list[str]] = {}
    by_symbol: dict[str, list[str]] = {}
    for series in metrics["ingestion"]["series"]:
        row = " ".join(part for part in (series["dataset"], series["param"]) if part)
        freshness = series["freshness"]
        title = (
            f"last event {freshness['last_event_close_at'] or 'never'} UTC; freshness "
            f"{freshness['status']} (warn after {format_duration(freshness['warn_seconds'])}, "
            f"error after {format_duration(freshness['error_seconds'])}); latency "
            f"{series['latency']['status']}; cadence {series['cadence']['status']}; "
            f"{series['gaps']} gaps in the window"
        )
        cells[row, series["symbol"]] = FreshnessCell(
            status=series["status"],
            lag=format_duration(freshness["age_seconds"]),
            causes=tuple(series_causes(series)) if series["status"] != "ok" else (),
            title=title,
            dataset=series["dataset"],
            symbol=series["symbol"],
        )
        by_row.setdefault(row, []).append(series["status"])
        by_symbol.setdefault(series["symbol"], []).append(series["status"])
    return FreshnessGrid(rows=_worst_order(by_row), symbols=_worst_order(by_symbol), cells=cells)


# ---- signals and performance ------------------------------------------------------------------


def signal_matrix(metrics: Mapping[str, Any]) -> tuple[tuple[str, ...], list[list[Any]]]:
    """Signals of the health window by setup × confidence (hourly buckets summed), most
    frequent setup first: the column names and one row per setup ending with its total."""
    counts: dict[str, dict[str, int]] = {}
    for bucket in metrics["signals"]["counts"]:
        if bucket["granularity"] != "hour":
            continue
        row = counts.setdefault(bucket["setup"], {})
        row[bucket["confidence"]] = row.get(bucket["confidence"], 0) + bucket["count"]
    extra = sorted({c for row in counts.values() for c in row} - set(_CONFIDENCES))
    columns = (*_CONFIDENCES, *extra)
    rows: list[list[Any]] = [
        [setup, *(row.get(c, 0) for c in columns), sum(row.values())]
        for setup, row in counts.items()
    ]
    rows.sort(key=lambda r: (-int(r[-1]), str(r[0])))
    return ("setup", *columns, "total"), rows


def performance_rows(metrics: Mapping[str, Any], *, now: int) -> list[list[str]]:
    """The latest run per symbol (``all``), then its setups: formatted KPI cells."""
    runs = sorted(
        metrics["performance"]["runs"],
        key=lambda run: (run["symbol"], run["setup"] != "all", run["setup"]),
    )
    return [
        [
            _e(run["symbol"]),
            _e(run["setup"]),
            str(run["trades"]),
            "–" if run["wins"] is None else f"{run['wins']} / {run['losses']}",
            percent(run["hit_rate"], decimals=1),
            percent(run["expectancy"], decimals=2, signed=True),
            percent(run["max_drawdown"], decimals=1),
            f'<span title="{_e(run["run_id"])}">{_e(_ago(run["created_at"], now))}</span>',
        ]
        for run in runs
    ]


# ---- the page -------------------------------------------------------------------------------


class Overview(pn.viewable.Viewer):
    """The Overview page. State in params (the latest documents), views as methods; it reads
    the state files through ``ingmon.api`` every ``refresh_seconds`` while a browser has it
    (the workbench's periodic callback calls ``refresh``). A grid cell opens the Freshness
    drill-down of its series through ``navigate``."""

    URL_PARAMS: ClassVar[dict[str, str]] = {}  # the Overview has no state of its own to share

    refresh_seconds = param.Integer(
        default=15, bounds=(1, 3600), doc="Seconds between reads of the state while open"
    )
    health = param.Dict(default=None, allow_None=True, doc="The /api/health document")
    metrics = param.Dict(default=None, allow_None=True, doc="The /api/metrics document")
    loaded_at_ms = param.Integer(default=None, allow_None=True, doc="When they were read")
    error = param.String(default=None, allow_None=True, doc="Why the last read failed")

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        navigate: Callable[..., None] | None = None,
        settings: Settings | None = None,
        clock: Callable[[], int] = now_ms,
        **params: Any,
    ) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        if settings is None and data_dir is not None:
            settings = load_settings(data_dir=data_dir)
        self._settings = settings
        self._navigate = navigate
        self._clock = clock
        self._callback: Any = None  # the workbench runs the periodic refresh

    # ---- state ----

    def refresh(self) -> None:
        """Read the state again (what /api/health and /api/metrics answer now)."""
        now = self._clock()
        try:
            settings = self._settings or load_settings()
            health = health_document(settings, now_ms=now)
            metrics = metrics_document(settings, now_ms=now)
        except Exception as error:  # the page stays up and says why
            self.error = f"could not read the state: {error}"
            return
        self.param.update(health=health, metrics=metrics, loaded_at_ms=now, error=None)

    @property
    def has_snapshot(self) -> bool:
        return self.metrics is not None and self.metrics["snapshot"]["generated_at"] is not None

    @property
    def is_stale(self) -> bool:
        """The snapshot is older than the worker should have let it get."""
        if self.health is None:
            return False
        return bool(self.health["components"]["snapshot"]["status"] in ("warn", "error"))

    # ---- views ----

    @param.depends("health", "loaded_at_ms", "error")
    def header(self) -> pn.pane.HTML:
        if self.health is None or self.loaded_at_ms is None:
            text = "Loading…" if self.error is None else _e(self.error)
            return _pane(f'<div class="ingmon-empty">{text}</div>')
        snapshot = self.health["components"]["snapshot"]
        as_of = (
            f"health snapshot of {_e(snapshot['as_of'])} "
            f"({format_duration(snapshot['age_seconds'])} old)"
            if snapshot["as_of"]
            else "no health snapshot yet"
        )
        parts = [
            f"<b>Overall</b> {badge(self.health['status'])}",
            as_of,
            f"read {_e(self.health['generated_at'])}, "
            f"again every {format_duration(self.refresh_seconds)}",
        ]
        if self.error:
            parts.append(badge("error", text=self.error))
        components = " ".join(
            f'<span title="{_e(c["hint"] or c["summary"])}">{_e(name)} {badge(c["status"])}</span>'
            for name, c in self.health["components"].items()
        )
        return _pane(" · ".join(parts) + f"<div>{components}</div>", sizing_mode="stretch_width")

    @param.depends("metrics", "health")
    def status_strip(self) -> pn.pane.HTML:
        if self.metrics is None:
            return _pane("")
        counts = self.metrics["ingestion"]["counts"]
        strip = " · ".join(
            badge(status, text=str(counts[status])) for status in STATUSES if counts[status]
        )
        banner = ""
        snapshot = None if self.health is None else self.health["components"]["snapshot"]
        if snapshot is not None and self.is_stale:
            banner = (
                f'<div class="ingmon-banner" style="background:{PALETTE["warn"][0]}">'
                f"! stale: {_e(snapshot['summary'])}. {_e(snapshot['hint'] or '')}</div>"
            )
        return _pane(banner + f"<div>Series: {strip or 'none'}</div>", sizing_mode="stretch_width")

    @param.depends("metrics", "health")
    def freshness(self) -> pn.pane.HTML | ClickableHTML:
        title = "<h3>Ingestion: freshness per dataset × symbol</h3>"
        if not self.has_snapshot:
            return _pane(
                title + '<div class="ingmon-empty"><b>No health snapshot yet.</b> '
                "Run <code>ingmon worker</code> (or <code>ingmon health</code> once) to write "
                "state/health.json; this page reads it every "
                f"{format_duration(self.refresh_seconds)}.</div>",
                sizing_mode="stretch_width",
            )
        assert self.metrics is not None
        if not self.metrics["ingestion"]["series"]:
            body = (
                '<div class="ingmon-empty"><b>No market series in the lake yet.</b> Backfill one: '
                "<code>ingmon backfill --symbol BTCUSDT</code>.</div>"
            )
        else:
            body = freshness_grid(self.metrics).html()
        wrapper = "ingmon-stale" if self.is_stale else ""
        # A click on a cell opens its series' Freshness drill-down.
        return ClickableHTML(
            f'{title}<div class="{wrapper}">{body}</div>', on_navigate=self._navigate
        )

    @param.depends("metrics", "loaded_at_ms")
    def signals(self) -> pn.pane.HTML:
        if self.metrics is None or self.loaded_at_ms is None:
            return _pane("")
        signals = self.metrics["signals"]
        title = f"<h3>Signals: last {signals['window_hours']:g} h</h3>"
        if not signals["symbols"]:
            return _pane(
                title + '<div class="ingmon-empty"><b>No signals scored yet.</b> '
                "The worker scores new bars each tick (or run <code>ingmon score</code>).</div>",
                sizing_mode="stretch_width",
            )
        now = self.loaded_at_ms
        per_symbol = _table(
            ("symbol", "signals", "last signal"),
            [
                [
                    _e(s["symbol"]),
                    str(s["window_count"]),
                    f'<span title="{_e(s["last_signal_at"] or "")} UTC">'
                    f"{_e(_ago(s['last_signal_at'], now))}</span>",
                ]
                for s in signals["symbols"]
            ],
        )
        headers, rows = signal_matrix(self.metrics)
        matrix = (
            _table(headers, [[_e(cell) for cell in row] for row in rows])
            if rows
            else f'<div class="ingmon-empty">No signals in the last {signals["window_hours"]:g} '
            "h.</div>"
        )
        return _pane(
            title + per_symbol + "<p>By setup × confidence</p>" + matrix,
            sizing_mode="stretch_width",
        )

    @param.depends("metrics", "loaded_at_ms")
    def performance(self) -> pn.pane.HTML:
        if self.metrics is None or self.loaded_at_ms is None:
            return _pane("")
        title = "<h3>Performance: latest backtest run per symbol</h3>"
        rows = performance_rows(self.metrics, now=self.loaded_at_ms)
        if not rows:
            return _pane(
                title + '<div class="ingmon-empty"><b>No saved backtest runs.</b> '
                "Run one: <code>ingmon backtest --symbol BTCUSDT</code>.</div>",
                sizing_mode="stretch_width",
            )
        headers = (
            "symbol",
            "setup",
            "trades",
            "wins / losses",
            "hit rate",
            "expectancy (per trade)",
            "max drawdown (of equity)",
            "run",
        )
        return _pane(title + _table(headers, rows), sizing_mode="stretch_width")

    @param.depends("metrics", "loaded_at_ms")
    def alerts(self) -> pn.pane.HTML:
        if self.metrics is None or self.loaded_at_ms is None:
            return _pane("")
        alerts = self.metrics["alerts"]
        title = f"<h3>Alerts: {alerts['firing']} firing, {alerts['pending']} pending</h3>"
        firing = [a for a in alerts["items"] if a["state"] == "firing"]
        if not firing:
            return _pane(
                title + '<div class="ingmon-empty">No alerts firing.</div>',
                sizing_mode="stretch_width",
            )
        now = self.loaded_at_ms
        rows = [
            [
                badge("error" if a["severity"] in ("critical", "error") else "warn")
                + f" {_e(a['severity'] or '')}",
                _e(a["alertname"] or ""),
                _e(
                    ", ".join(
                        f"{k}={v}"
                        for k, v in sorted(a["labels"].items())
                        if k in ("dataset", "symbol", "setup")
                    )
                ),
                _e(a["annotations"].get("summary", "")),
                _e(_ago(a["fired_at"] or a["active_since"], now)),
            ]
            for a in firing
        ]
        headers = ("severity", "alert", "where", "what", "since")
        return _pane(title + _table(headers, rows), sizing_mode="stretch_width")

    @param.depends("metrics", "health")
    def worker(self) -> pn.pane.HTML:
        if self.metrics is None or self.health is None:
            return _pane("")
        component = self.health["components"]["worker"]
        hint = (
            f" <span class='ingmon-muted'>{_e(component['hint'])}</span>"
            if component["hint"]
            else ""
        )
        return _pane(
            f"<h3>Worker</h3>{badge(component['status'])} {_e(component['summary'])}{hint}",
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        if self.health is None:
            self.refresh()
        return pn.Column(
            self.header,
            self.status_strip,
            self.freshness,
            pn.Row(self.signals, self.performance, sizing_mode="stretch_width"),
            pn.Row(self.alerts, self.worker, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

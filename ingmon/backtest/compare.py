"""Saved backtest runs side by side, for the dashboard's Performance page: the run list, each
run's equity and drawdown (downsampled to a point budget), its trailing-window metrics,
breakdowns and trades, and where the latest report notebooks are — plain data from the lake,
the exports and the report state, no Panel.

The readers (:func:`saved_runs`, :func:`run_summary`, :func:`run_trades`,
:func:`exported_curve`, :func:`latest_reports`) are the I/O edge; everything else is a pure
function of what they return.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from ingmon.errors import DataIntegrityError
from ingmon.lake import Lake
from ingmon.reports.state import report_state
from ingmon.schema import BACKTEST_RUNS, BACKTEST_TRADES
from ingmon.times import DAY_MS, iso_ms, parse_instant_ms, to_ms

__all__ = [
    "BREAKDOWN_SLICES",
    "COMPARISON_METRICS",
    "DEFAULT_POINT_BUDGET",
    "STANDARD_WINDOWS",
    "TRADE_COLUMNS",
    "WINDOW_ALL",
    "ComparisonMetric",
    "Curve",
    "ReportLink",
    "SavedRun",
    "Series",
    "breakdown_rows",
    "comparison_rows",
    "curve_series",
    "downsample",
    "downsample_indices",
    "drawdown",
    "exported_curve",
    "latest_reports",
    "realised_curve",
    "run_summary",
    "run_trades",
    "saved_runs",
    "steps",
    "trades_in_window",
    "window_labels",
    "window_report",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_POINT_BUDGET = 2000
WINDOW_ALL = "all"
STANDARD_WINDOWS: tuple[str, ...] = ("30d", "60d", "90d")
BREAKDOWN_SLICES: tuple[str, ...] = ("setup", "score", "confidence", "direction", "session")
_CONFIDENCE_ORDER = ("high", "medium", "low")
TRADE_COLUMNS: tuple[str, ...] = (
    "trade_id",
    "sequence",
    "run_id",
    "symbol",
    "signal_id",
    "setup",
    "direction",
    "score",
    "confidence",
    "entry_time_ms",
    "entry_price",
    "exit_time_ms",
    "exit_price",
    "exit_reason",
    "qty",
    "net_return",
    "pnl",
)


# ---- the saved runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedRun:
    """One saved run's headline (a ``backtest_runs`` row without its documents)."""

    run_id: str
    symbol: str
    created_at_ms: int
    source: str
    timeframe: str | None
    data_start_ms: int  # open time of the first 1m candle
    data_end_ms: int  # open time of the last 1m candle
    trades: int
    net_return: float | None
    max_drawdown: float | None

    @property
    def label(self) -> str:
        """``BTCUSDT · 2026-12-06 06:33 UTC · 47 trades`` (what the run picker shows)."""
        created = (iso_ms(self.created_at_ms) or "")[:16].replace("T", " ")
        plural = "" if self.trades == 1 else "s"
        return f"{self.symbol} · {created} UTC · {self.trades} trade{plural}"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def saved_runs(lake: Lake) -> list[SavedRun]:
    """Every saved run's headline, newest first (ties by run id); [] when none is saved."""
    columns = (
        "run_id",
        "created_at",
        "source",
        "timeframe",
        "data_start",
        "data_end",
        "trades",
        "net_return",
        "max_drawdown",
    )
    runs = [
        SavedRun(
            run_id=row["run_id"],
            symbol=row["symbol"],
            created_at_ms=to_ms(row["created_at"]),
            source=row["source"],
            timeframe=row["timeframe"],
            data_start_ms=to_ms(row["data_start"]),
            data_end_ms=to_ms(row["data_end"]),
            trades=int(row["trades"]),
            net_return=_finite(row["net_return"]),
            max_drawdown=_finite(row["max_drawdown"]),
        )
        for row in lake.read(BACKTEST_RUNS, columns=columns).to_pylist()
    ]
    runs.sort(key=lambda run: run.run_id)
    runs.sort(key=lambda run: run.created_at_ms, reverse=True)
    return runs


def run_summary(lake: Lake, run: SavedRun) -> dict[str, Any] | None:
    """The run's export document (``summary.json``'s content, kept in the lake); None when the
    run is gone. DataIntegrityError when the stored document is not JSON."""
    table = lake.read(BACKTEST_RUNS, symbols=run.symbol, columns=("run_id", "summary"))
    for row in table.to_pylist():
        if row["run_id"] == run.run_id:
            try:
                document: dict[str, Any] = json.loads(row["summary"])
            except (TypeError, ValueError) as error:
                raise DataIntegrityError(
                    f"backtest run {run.run_id}: its stored summary is not JSON: {error}"
                ) from None
            return document
    return None


def run_trades(lake: Lake, run: SavedRun) -> pd.DataFrame:
    """The run's saved trades in the order they were made (:data:`TRADE_COLUMNS`; times in
    epoch ms; ``sequence`` is the trade's number in the run); empty for a run without trades."""
    # every trade enters inside the run's data: read only that span of the symbol's trades
    table = lake.read(
        BACKTEST_TRADES, symbols=run.symbol, start=run.data_start_ms, end=run.data_end_ms
    )
    frame = table.to_pandas()
    frame = frame[frame["run_id"] == run.run_id] if len(frame) else frame
    if not len(frame):
        return pd.DataFrame({name: pd.Series(dtype=object) for name in TRADE_COLUMNS})
    frame = frame.assign(
        sequence=[int(trade_id.rpartition(":")[2]) for trade_id in frame["trade_id"]],
        entry_time_ms=[to_ms(value) for value in frame["entry_time"]],
        exit_time_ms=[to_ms(value) for value in frame["exit_time"]],
        score=pd.array(frame["score"], dtype="Int64"),
    )
    ordered: pd.DataFrame = frame.sort_values("sequence", kind="stable")[list(TRADE_COLUMNS)]
    return ordered.reset_index(drop=True)


# ---- equity and drawdown ----------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """Values over time (epoch ms), same length."""

    time_ms: IntArray
    values: FloatArray

    def __len__(self) -> int:
        return len(self.time_ms)


@dataclass(frozen=True)
class Curve:
    """A run's equity (quote currency) and drawdown (≤ 0, a fraction of the running peak) at the
    same instants; ``source`` says what the points are: ``trades`` (realised equity after each
    exit) or ``daily`` (mark-to-market at each UTC day's last close, from ``equity.csv``)."""

    time_ms: IntArray
    equity: FloatArray
    drawdown: FloatArray
    source: Literal["trades", "daily"]

    def __len__(self) -> int:
        return len(self.time_ms)


def drawdown(equity: FloatArray, initial_equity: float) -> FloatArray:
    """``E / peak − 1`` at each point (0 at a new high, −0.25 a quarter below it), the peak being
    the running maximum of the equity starting at ``initial_equity`` (> 0)."""
    if not initial_equity > 0:
        raise ValueError(f"initial equity must be > 0, not {initial_equity}")
    values = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(np.concatenate(([initial_equity], values)))[1:]
    result: FloatArray = values / peak - 1.0
    return result


def realised_curve(
    trades: pd.DataFrame, *, initial_equity: float, start_ms: int, end_ms: int
) -> Curve:
    """Realised equity: ``initial_equity`` at ``start_ms``, then ``initial + Σ pnl`` after each
    trade's exit (in exit order, ties in trade order), held to ``end_ms``; a run without
    trades is a flat line."""
    ordered = (
        trades.sort_values(["exit_time_ms", "sequence"], kind="stable") if len(trades) else trades
    )
    exits = np.asarray(ordered["exit_time_ms"], dtype=np.int64)
    equity = initial_equity + np.cumsum(np.asarray(ordered["pnl"], dtype=np.float64))
    time_ms = np.concatenate(([start_ms], exits))
    values = np.concatenate(([initial_equity], equity))
    if end_ms > time_ms[-1]:
        time_ms = np.append(time_ms, end_ms)
        values = np.append(values, values[-1])
    return Curve(time_ms, values, drawdown(values, initial_equity), "trades")


def exported_curve(exports_dir: Path, *, end_ms: int | None = None) -> Curve | None:
    """The daily mark-to-market equity of a run's ``equity.csv`` (``exports_dir`` =
    ``<data_dir>/backtests/<run_id>``): each day's point at its close (the run's ``end_ms`` for
    the last, partial day); None when the run has no such export. DataIntegrityError when the
    file is not the export's format."""
    path = exports_dir / "equity.csv"
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as error:
        raise DataIntegrityError(f"{path} is unreadable: {error}") from None
    try:
        days = [parse_instant_ms(f"{day}T00:00:00Z") for day in frame["date"]]
        time_ms = np.asarray(days, dtype=np.int64) + DAY_MS
        equity = frame["equity"].to_numpy(dtype=np.float64)
        loss = frame["drawdown"].to_numpy(dtype=np.float64)
    except (KeyError, ValueError, TypeError) as error:
        raise DataIntegrityError(f"{path} is not an equity export: {error}") from None
    if end_ms is not None and len(time_ms):
        time_ms = np.minimum(time_ms, end_ms)
    return Curve(time_ms, equity, -loss, "daily")


def downsample_indices(values: FloatArray, budget: int) -> npt.NDArray[np.intp]:
    """Positions of at most ``budget`` (≥ 4) points that keep a series' shape: all of them when
    they fit; else the first and the last, and the minimum and the maximum of each of
    ``(budget − 2) // 2`` equal buckets of the points between (in order) — so the global
    minimum and maximum always survive."""
    if budget < 4:
        raise ValueError(f"a point budget must be at least 4, not {budget}")
    count = len(values)
    if count <= budget:
        return np.arange(count)
    buckets = (budget - 2) // 2
    edges = np.linspace(1, count - 1, buckets + 1).astype(np.intp)
    keep = [0]
    for start, stop in itertools.pairwise(edges):
        chunk = values[start:stop]
        low, high = start + int(np.argmin(chunk)), start + int(np.argmax(chunk))
        keep.extend((low, high) if low <= high else (high, low))
    keep.append(count - 1)
    return np.unique(np.asarray(keep, dtype=np.intp))


def downsample(time_ms: IntArray, values: FloatArray, budget: int = DEFAULT_POINT_BUDGET) -> Series:
    """The series cut to ``budget`` points by :func:`downsample_indices`."""
    keep = downsample_indices(np.asarray(values, dtype=np.float64), budget)
    return Series(np.asarray(time_ms, dtype=np.int64)[keep], np.asarray(values)[keep])


def steps(series: Series) -> Series:
    """A step series (each value holds until the next point) as the points of a plain line:
    before each point after the first, one at its time with the previous value
    (``2n − 1`` points)."""
    if len(series) < 2:
        return series
    time_ms = np.repeat(series.time_ms, 2)[1:]
    values = np.repeat(series.values, 2)[:-1]
    return Series(time_ms, values)


def curve_series(curve: Curve, budget: int = DEFAULT_POINT_BUDGET) -> tuple[Series, Series]:
    """The equity and the drawdown of ``curve`` ready to draw as lines, each at most ``budget``
    (≥ 8) points: downsampled by :func:`downsample`; realised equity (a step function) drawn as
    steps, downsampled to half the budget first."""
    if budget < 8:
        raise ValueError(f"a curve's point budget must be at least 8, not {budget}")
    if curve.source == "trades":
        half = (budget + 1) // 2
        return (
            steps(downsample(curve.time_ms, curve.equity, half)),
            steps(downsample(curve.time_ms, curve.drawdown, half)),
        )
    return (
        downsample(curve.time_ms, curve.equity, budget),
        downsample(curve.time_ms, curve.drawdown, budget),
    )


# ---- windows, comparison and breakdowns --------------------------------------------------------


def window_labels(summary: Mapping[str, Any]) -> list[str]:
    """The run's trailing windows (``30d`` …), shortest first."""
    windows = [w for w in summary.get("windows", []) if w.get("kind") == "trailing"]
    return [w["label"] for w in sorted(windows, key=lambda w: (w.get("days") or 0, w["label"]))]


def window_report(summary: Mapping[str, Any], window: str) -> dict[str, Any] | None:
    """The part of the run's document for ``window``: ``all`` (the whole data) or a trailing
    window's label; keys label, start, end, flags, metrics, breakdowns. None when the run has
    no such window."""
    if window == WINDOW_ALL:
        data = summary.get("data", {})
        return {
            "label": WINDOW_ALL,
            "start": data.get("start"),
            "end": data.get("as_of") or data.get("end"),
            "flags": summary.get("flags", []),
            "metrics": summary.get("metrics", {}),
            "breakdowns": summary.get("breakdowns", {}),
        }
    for report in summary.get("windows", []):
        if report.get("kind") == "trailing" and report.get("label") == window:
            return dict(report)
    return None


@dataclass(frozen=True)
class ComparisonMetric:
    """A row of the run comparison: the metric's key in the document, its label, how its
    value reads (count, fraction, signed_fraction, money, cost, ratio, days) and its definition."""

    key: str
    label: str
    kind: str
    definition: str


COMPARISON_METRICS: tuple[ComparisonMetric, ...] = (
    ComparisonMetric("trades", "trades", "count", "closed trades in the window"),
    ComparisonMetric("hit_rate", "hit rate", "fraction", "winning trades / trades (net > 0)"),
    ComparisonMetric(
        "expectancy",
        "expectancy (per trade)",
        "signed_fraction",
        "mean net return per trade, after fees, slippage and funding, % of its notional",
    ),
    ComparisonMetric(
        "expectancy_r", "expectancy (R)", "ratio", "mean PnL per trade in units of its risk"
    ),
    ComparisonMetric("profit_factor", "profit factor", "ratio", "Σ winning PnL / |Σ losing PnL|"),
    ComparisonMetric("net_pnl", "net PnL", "money", "Σ PnL of the trades, quote currency"),
    ComparisonMetric(
        "total_return",
        "total return",
        "signed_fraction",
        "equity change over the window, % of the initial equity (not compounded with fixed "
        "notional sizing)",
    ),
    ComparisonMetric(
        "max_drawdown",
        "max drawdown",
        "fraction",
        "deepest fall of the mark-to-market equity (every 1m close) from its running peak, "
        "% of the peak",
    ),
    ComparisonMetric("sharpe", "Sharpe", "ratio", "mean / std of daily returns × √365 (rf = 0)"),
    ComparisonMetric("fees", "fees", "cost", "Σ fees paid, quote currency"),
    ComparisonMetric("days", "days", "days", "calendar span of the window's data"),
)


def comparison_rows(
    reports: Sequence[Mapping[str, Any] | None],
) -> list[tuple[ComparisonMetric, list[Any]]]:
    """Metrics × runs: for each of :data:`COMPARISON_METRICS`, the value in each run's window
    report (:func:`window_report`; None for a run without that window or a metric it lacks)."""
    return [
        (
            metric,
            [None if report is None else report["metrics"].get(metric.key) for report in reports],
        )
        for metric in COMPARISON_METRICS
    ]


_BREAKDOWN_FIELDS = (
    "trades",
    "wins",
    "losses",
    "hit_rate",
    "expectancy",
    "expectancy_r",
    "profit_factor",
    "net_pnl",
)


def _slice_order(by: str, value: str) -> tuple[int, float, str]:
    if by == "score":
        try:
            return (0, float(value), value)
        except ValueError:
            return (1, 0.0, value)
    if by == "confidence" and value in _CONFIDENCE_ORDER:
        return (0, float(_CONFIDENCE_ORDER.index(value)), value)
    return (1, 0.0, value)


def breakdown_rows(report: Mapping[str, Any], by: str) -> list[dict[str, Any]]:
    """One row per value of ``by`` (setup, score, confidence, direction, session) in a window
    report's breakdowns: value, trades, wins, losses, hit_rate, expectancy, expectancy_r,
    profit_factor, net_pnl. Scores in numeric order, confidence high → low, the rest by name;
    [] when no trade carries that label."""
    slices: Mapping[str, Mapping[str, Any]] = report.get("breakdowns", {}).get(by, {})
    return [
        {"value": value, **{name: slices[value].get(name) for name in _BREAKDOWN_FIELDS}}
        for value in sorted(slices, key=lambda value: _slice_order(by, value))
    ]


def trades_in_window(trades: pd.DataFrame, report: Mapping[str, Any]) -> pd.DataFrame:
    """The run's trades that entered inside the window report's ``[start, end)``."""
    if report.get("label") == WINDOW_ALL or not len(trades):
        return trades
    start, end = parse_instant_ms(report["start"]), parse_instant_ms(report["end"])
    entered = trades["entry_time_ms"].astype("int64")
    return trades[(entered >= start) & (entered < end)].reset_index(drop=True)


# ---- the latest report notebooks --------------------------------------------------------------


@dataclass(frozen=True)
class ReportLink:
    """A report notebook's latest run and where its last good HTML is."""

    report: str
    last_status: str
    last_finished: str
    last_success_finished_ms: int | None
    html: Path | None  # the last successful run's HTML (code hidden)
    html_exists: bool
    last_failure_message: str | None


def latest_reports(data_dir: Path) -> list[ReportLink]:
    """Each report's latest run (``<data_dir>/state/reports.json``), by name; [] before any
    report ran. DataIntegrityError when the state file is unreadable."""
    links = []
    for name, state in sorted(report_state(data_dir).items()):
        outputs = state.last_success_outputs or {}
        html = Path(outputs["html"]) if outputs.get("html") else None
        finished = state.last_success_timestamp_seconds
        links.append(
            ReportLink(
                report=name,
                last_status=state.last_status,
                last_finished=state.last_finished,
                last_success_finished_ms=None if finished is None else round(finished * 1000),
                html=html,
                html_exists=html is not None and html.is_file(),
                last_failure_message=state.last_failure_message,
            )
        )
    return links

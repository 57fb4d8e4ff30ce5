"""Evaluation windows: the whole data, trailing 30/60/90 days, rolling (walk-forward) windows.

Each window is its own backtest on the bars inside it — flat at its start, a trade still open
at its end closed at its last bar's close (``exit_reason == "end"``) — so a window's numbers
never depend on what came before or after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ingmon.backtest.engine import BacktestConfig, BacktestResult, Bars, Funding, run_backtest
from ingmon.backtest.metrics import breakdowns, summarize
from ingmon.errors import UsageError
from ingmon.times import DAY_MS, iso_ms

__all__ = [
    "MIN_DAYS",
    "MIN_TRADES",
    "Window",
    "WindowReport",
    "evaluate_windows",
    "rolling_windows",
    "trailing_windows",
]

MIN_TRADES = 30  # fewer closed trades: the window is flagged insufficient_trades
MIN_DAYS = 30  # fewer daily returns: Sharpe/Sortino are flagged as noisy (few_days)

WindowKind = Literal["all", "trailing", "rolling"]


@dataclass(frozen=True)
class Window:
    """A half-open time range ``[start_ms, end_ms)`` of bar open times."""

    label: str
    kind: WindowKind
    start_ms: int
    end_ms: int
    days: float | None = None


@dataclass(frozen=True)
class WindowReport:
    """The backtest of one window, its metrics, breakdowns and flags."""

    window: Window
    result: BacktestResult
    metrics: dict[str, Any]
    breakdowns: dict[str, Any]
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.window.label,
            "kind": self.window.kind,
            "days": self.window.days,
            "start": iso_ms(self.window.start_ms),
            "end": iso_ms(self.window.end_ms),
            "flags": list(self.flags),
            "skipped_signals": dict(self.result.skipped),
            "metrics": self.metrics,
            "breakdowns": self.breakdowns,
        }


def trailing_windows(as_of_ms: int, window_days: tuple[float, ...]) -> list[Window]:
    """``[as_of − N days, as_of)`` for each N."""
    return [
        Window(f"{days:g}d", "trailing", as_of_ms - round(days * DAY_MS), as_of_ms, days)
        for days in window_days
    ]


def rolling_windows(
    first_ms: int, as_of_ms: int, *, days: float, step_days: float | None = None
) -> list[Window]:
    """Consecutive windows of ``days`` stepping back by ``step_days`` (default ``days``) from
    ``as_of``, as many as fit entirely after ``first_ms``; oldest first."""
    length, step = round(days * DAY_MS), round((step_days or days) * DAY_MS)
    windows = []
    end = as_of_ms
    while end - length >= first_ms:
        start = end - length
        label = f"{iso_ms(start)[:10]}..{iso_ms(end - 1)[:10]}"  # type: ignore[index]
        windows.append(Window(label, "rolling", start, end, days))
        end -= step
    return windows[::-1]


def evaluate_windows(
    bars: Bars,
    signals: pd.DataFrame,
    *,
    config: BacktestConfig,
    funding: Funding | None = None,
    windows: list[Window],
    min_trades: int = MIN_TRADES,
) -> list[WindowReport]:
    """Backtest each window on its own bars and signals (a signal belongs to the window its
    bar opens in) and flag the thin ones.

    Flags: ``insufficient_trades`` (fewer than ``min_trades`` closed trades),
    ``partial_data`` (the bars start or end more than a bar inside the window),
    ``few_days`` (fewer than 30 daily returns: the annualised ratios are noise),
    ``equity_depleted`` (the equity reached zero: no return ratios).
    A window without any bar is bad input (:class:`UsageError`).
    """
    funding = funding or Funding.empty()
    signal_time = signals["time"].to_numpy(dtype=np.int64)
    reports = []
    for window in windows:
        lo, hi = np.searchsorted(bars.open_time_ms, [window.start_ms, window.end_ms])
        if hi <= lo:
            raise UsageError(
                f"window_days {window.label}: no candles in "
                f"[{iso_ms(window.start_ms)}, {iso_ms(window.end_ms)})",
                field="window_days",
            )
        s_lo, s_hi = np.searchsorted(signal_time, [window.start_ms, window.end_ms])
        result = run_backtest(
            bars.slice(int(lo), int(hi)),
            signals.iloc[int(s_lo) : int(s_hi)],
            config=config,
            funding=funding,
        )
        metrics = summarize(result)
        flags = []
        if metrics["trades"] < min_trades:
            flags.append("insufficient_trades")
        first, last = int(bars.open_time_ms[lo]), int(bars.open_time_ms[hi - 1])
        if first - window.start_ms > bars.bar_ms or window.end_ms - last > 2 * bars.bar_ms:
            flags.append("partial_data")
        if metrics.get("daily_returns", 0) < MIN_DAYS:
            flags.append("few_days")
        if metrics.get("equity_depleted"):
            flags.append("equity_depleted")
        reports.append(WindowReport(window, result, metrics, breakdowns(result.trades), flags))
    return reports

"""Metrics of a backtest: per-trade statistics, equity and risk ratios, breakdowns by slice.

Pure functions over the trades frame and the mark-to-market equity of a
:class:`~ingmon.backtest.engine.BacktestResult`. Formulas: docs/backtesting.md. A value that
is undefined (no trades, no losses, one day) is ``None``, never ``NaN`` or infinity.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from ingmon.backtest.engine import EXIT_REASONS, BacktestResult
from ingmon.times import DAY_MS

__all__ = [
    "BREAKDOWN_COLUMNS",
    "PERIODS_PER_YEAR",
    "breakdowns",
    "daily_equity",
    "drawdown_stats",
    "equity_metrics",
    "summarize",
    "trade_metrics",
    "wilson_interval",
]

PERIODS_PER_YEAR = 365  # crypto trades every day
BREAKDOWN_COLUMNS: tuple[str, ...] = ("setup", "direction", "score", "confidence", "session")
_Z95 = 1.959963984540054

FloatArray = npt.NDArray[np.float64]
_Result = TypeVar("_Result")


def _quiet(compute: Callable[..., _Result]) -> Callable[..., _Result]:
    """Run ``compute`` with numpy's floating-point warnings off: a division by a zero equity or
    an empty slice yields inf/NaN, which the metrics report as None, not as a warning."""

    @functools.wraps(compute)
    def quiet(*args: Any, **kwargs: Any) -> _Result:
        with np.errstate(all="ignore"):
            return compute(*args, **kwargs)

    return quiet


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return _number(numerator / denominator) if denominator != 0 else None


def _compound(growth: float, power: float) -> float:
    """growth^power − 1 (−1 for a growth of zero or less; inf when it overflows a float)."""
    if growth <= 0:
        return -1.0
    try:
        return float(growth**power - 1)
    except OverflowError:
        return math.inf


def wilson_interval(wins: int, trials: int, *, z: float = _Z95) -> tuple[float, float] | None:
    """95 % Wilson score interval of a hit rate (None without trials)."""
    if trials == 0:
        return None
    p = wins / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return (centre - spread) / scale, (centre + spread) / scale


def _longest_run(flags: npt.NDArray[np.bool_]) -> int:
    if not flags.any():
        return 0
    padded = np.concatenate(([False], flags, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[0::2]).max())


@_quiet
def trade_metrics(trades: pd.DataFrame) -> dict[str, Any]:
    """Statistics of closed trades: counts, hit rate, expectancy, R, profit factor, streaks."""
    returns = trades["net_return"].to_numpy(dtype=np.float64)
    pnl = trades["pnl"].to_numpy(dtype=np.float64)
    count = len(returns)
    wins, losses = returns > 0, returns < 0
    n_wins, n_losses = int(wins.sum()), int(losses.sum())
    avg_win = float(returns[wins].mean()) if n_wins else None
    avg_loss = float(-returns[losses].mean()) if n_losses else None
    r = trades["r_multiple"].to_numpy(dtype=np.float64)
    r = r[np.isfinite(r)]
    gross_profit, gross_loss = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    interval = wilson_interval(n_wins, count)
    reasons = trades["exit_reason"].value_counts()
    return {
        "trades": count,
        "wins": n_wins,
        "losses": n_losses,
        "draws": count - n_wins - n_losses,
        "hit_rate": n_wins / count if count else None,
        "hit_rate_ci95": list(interval) if interval else None,
        "expectancy": float(returns.mean()) if count else None,
        "expectancy_pnl": float(pnl.mean()) if count else None,
        "expectancy_r": float(r.mean()) if len(r) else None,
        "sqn_r": _ratio(float(r.mean()) * math.sqrt(len(r)), float(r.std(ddof=1)))
        if len(r) > 1
        else None,
        "avg_win": avg_win,
        "avg_loss": avg_loss,
        "payoff_ratio": _ratio(avg_win, avg_loss) if avg_win and avg_loss else None,
        "profit_factor": _ratio(gross_profit, gross_loss),
        "gross_profit": gross_profit,
        "gross_loss": gross_loss,
        "net_pnl": float(pnl.sum()),
        "best_trade": float(returns.max()) if count else None,
        "worst_trade": float(returns.min()) if count else None,
        "max_win_streak": _longest_run(wins),
        "max_loss_streak": _longest_run(losses),
        "avg_bars_held": float(trades["bars_held"].mean()) if count else None,
        "longs": int((trades["direction"] == "long").sum()),
        "shorts": int((trades["direction"] == "short").sum()),
        "fees": float(trades["fees"].sum()),
        "funding_paid": float(-trades["funding"].sum()),
        "slippage": float(trades["slippage"].sum()),
        "exit_reasons": {reason: int(reasons.get(reason, 0)) for reason in EXIT_REASONS},
    }


@_quiet
def daily_equity(
    open_time_ms: npt.NDArray[np.int64], equity: FloatArray, initial_equity: float
) -> pd.DataFrame:
    """Equity at the last bar close of each UTC day (days without bars carry the previous
    value), the day's return (the first day's against the initial equity) and the drawdown
    from the running peak of these daily values."""
    if len(open_time_ms) == 0:
        return pd.DataFrame({"date": [], "equity": [], "return": [], "drawdown": []})
    day = open_time_ms // DAY_MS
    first, last = int(day[0]), int(day[-1])
    ends = np.searchsorted(day, np.arange(first, last + 1), side="right") - 1
    values = equity[ends]
    previous = np.concatenate(([initial_equity], values[:-1]))
    peak = np.maximum.accumulate(np.concatenate(([initial_equity], values)))[1:]
    return pd.DataFrame(
        {
            "date": pd.to_datetime(np.arange(first, last + 1) * DAY_MS, unit="ms").strftime(
                "%Y-%m-%d"
            ),
            "equity": values,
            "return": values / previous - 1,
            "drawdown": (peak - values) / peak,
        }
    )


@_quiet
def drawdown_stats(
    time_ms: npt.NDArray[np.int64], equity: FloatArray, initial_equity: float, *, start_ms: int
) -> dict[str, Any]:
    """Max drawdown (absolute and as a fraction of the peak) of a mark-to-market curve, with
    the duration of that drawdown (peak → recovery, or → the end if it never recovered) and
    the longest time under water of any drawdown, in days. The initial equity at ``start_ms``
    is the first peak."""
    values = np.concatenate(([initial_equity], equity))

    def time_of(index: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.where(index == 0, start_ms, time_ms[np.maximum(index - 1, 0)])

    peak = np.maximum.accumulate(values)
    drop = peak - values
    relative = drop / peak  # the peak is at least the initial equity, > 0
    trough = int(relative.argmax())
    max_dd = float(relative[trough])
    result: dict[str, Any] = {
        "max_drawdown": max_dd,
        "max_drawdown_abs": float(drop.max()),
        "max_drawdown_start": None,
        "max_drawdown_trough": None,
        "max_drawdown_end": None,
        "max_drawdown_days": 0.0,
        "max_drawdown_recovered": True,
        "longest_underwater_days": 0.0,
    }
    if max_dd <= 0:
        return result
    # The drawdown began at the last bar at that peak before the trough.
    began = trough - int(np.argmax(values[trough::-1] >= peak[trough]))
    after = np.flatnonzero(values[trough:] >= peak[trough])
    recovered = bool(after.size)
    ended = trough + int(after[0]) if recovered else len(values) - 1
    marks = time_of(np.array([began, trough, ended]))
    result.update(
        max_drawdown_start=int(marks[0]),
        max_drawdown_trough=int(marks[1]),
        max_drawdown_end=int(marks[2]) if recovered else None,
        max_drawdown_days=int(marks[2] - marks[0]) / DAY_MS,
        max_drawdown_recovered=recovered,
    )
    # Each under-water run lasts from the bar before it (at the peak) to the first bar back
    # at the peak, or to the end.
    padded = np.concatenate(([0], (drop > 0).view(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    starts, stops = edges[0::2], edges[1::2]
    lasted = time_of(np.minimum(stops, len(values) - 1)) - time_of(starts - 1)
    result["longest_underwater_days"] = float(lasted.max() / DAY_MS)
    return result


@_quiet
def equity_metrics(
    daily_returns: FloatArray,
    *,
    initial_equity: float,
    final_equity: float,
    days: float,
    max_drawdown: float,
) -> dict[str, Any]:
    """Sharpe and Sortino of daily returns ×√365 (rf = 0), CAGR over calendar days, Calmar."""
    count = len(daily_returns)
    mean = float(daily_returns.mean()) if count else 0.0
    std = float(daily_returns.std(ddof=1)) if count > 1 else 0.0
    downside = math.sqrt(float(np.sum(np.minimum(daily_returns, 0.0) ** 2)) / count) if count else 0
    growth = final_equity / initial_equity
    cagr = _compound(growth, PERIODS_PER_YEAR / days) if days > 0 else None
    annual = math.sqrt(PERIODS_PER_YEAR)
    return {
        "days": days,
        "daily_returns": count,
        "daily_mean": mean if count else None,
        "daily_std": std if count > 1 else None,
        "sharpe": mean / std * annual if count > 1 and std > 0 else None,
        "sortino": mean / downside * annual if downside > 0 else None,
        "cagr": _number(cagr) if cagr is not None else None,
        "calmar": _ratio(cagr, max_drawdown) if cagr is not None and max_drawdown > 0 else None,
    }


@_quiet
def summarize(result: BacktestResult) -> dict[str, Any]:
    """Every metric of a run: trades, equity, risk, exposure, costs, buy and hold."""
    bars, config, trades = result.bars, result.config, result.trades
    metrics = trade_metrics(trades)
    if len(bars) == 0:
        return metrics
    first_open = int(bars.open_time_ms[0])
    end_ms = int(bars.close_time_ms[-1]) + 1
    days = (end_ms - first_open) / DAY_MS
    equity = result.equity
    final = float(equity[-1])
    daily = daily_equity(bars.open_time_ms, equity, config.initial_equity)
    drawdown = drawdown_stats(
        bars.close_time_ms, equity, config.initial_equity, start_ms=first_open
    )
    held_ms = (trades["exit_time"] - trades["entry_time"]).to_numpy(dtype=np.float64)
    metrics.update(drawdown)
    ratios = equity_metrics(
        daily["return"].to_numpy(dtype=np.float64),
        initial_equity=config.initial_equity,
        final_equity=final,
        days=days,
        max_drawdown=drawdown["max_drawdown"],
    )
    depleted = bool((equity <= 0).any())
    if depleted:  # returns on a zero or negative equity mean nothing
        ratios.update(sharpe=None, sortino=None, cagr=None, calmar=None)
    metrics.update(ratios)
    metrics.update(
        {
            "initial_equity": config.initial_equity,
            "final_equity": final,
            "total_return": final / config.initial_equity - 1,
            "exposure": float(held_ms.sum()) / (end_ms - first_open),
            "avg_hold_minutes": float(held_ms.mean()) / 60_000 if len(held_ms) else None,
            "trades_per_day": len(trades) / days if days > 0 else None,
            "buy_and_hold": float(bars.close[-1] / bars.open[0] - 1),
            "equity_depleted": depleted,
            "bars": len(bars),
            "start": first_open,
            "end": end_ms,
        }
    )
    return metrics


@_quiet
def breakdowns(trades: pd.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
    """Trade metrics per value of each slice column (setup, direction, score, confidence,
    session); a column that is empty for every trade gives no slices."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for column in BREAKDOWN_COLUMNS:
        labels = trades[column].map(_label)
        if labels.isna().all():
            continue
        out[column] = {
            str(key): trade_metrics(group)
            for key, group in trades.groupby(labels, sort=True, dropna=True)
        }
    return out


def _label(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a score read as a float
    return str(value)

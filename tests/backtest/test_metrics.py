"""Metrics against hand-worked examples and the quantstats/empyrical formulas re-implemented."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from ingmon.backtest.engine import BacktestConfig, run_backtest
from ingmon.backtest.metrics import (
    breakdowns,
    daily_equity,
    drawdown_stats,
    equity_metrics,
    summarize,
    trade_metrics,
    wilson_interval,
)
from tests.backtest._market import START_MS, random_bars, random_signals

DAY = 86_400_000


def trades_of(returns: list[float], **columns: list[object]) -> pd.DataFrame:
    """A trades frame with the columns trade_metrics reads; notional 1000, so pnl = 1000·r."""
    n = len(returns)
    frame = pd.DataFrame(
        {
            "net_return": returns,
            "pnl": [1000 * r for r in returns],
            "r_multiple": [r / 0.01 for r in returns],
            "exit_reason": ["time"] * n,
            "bars_held": [10] * n,
            "direction": ["long"] * n,
            "fees": [1.0] * n,
            "funding": [-0.5] * n,
            "slippage": [0.0] * n,
        }
    )
    for name, values in columns.items():
        frame[name] = values
    return frame


def test_trade_metrics_of_a_hand_worked_list() -> None:
    """Returns +2 %, −1 %, 0, +3 %, −2 %, −1 %: 2 wins, 3 losses, 1 draw; hit rate 2/6;
    expectancy 1/600; avg win 2.5 %, avg loss 4/300; payoff 1.875; profit factor 50/40;
    streaks: 1 win, 2 losses (a draw breaks a streak)."""
    metrics = trade_metrics(trades_of([0.02, -0.01, 0.0, 0.03, -0.02, -0.01]))
    assert (metrics["trades"], metrics["wins"], metrics["losses"], metrics["draws"]) == (6, 2, 3, 1)
    assert metrics["hit_rate"] == pytest.approx(2 / 6)
    assert metrics["expectancy"] == pytest.approx(0.01 / 6)
    assert metrics["expectancy_pnl"] == pytest.approx(10 / 6)
    assert metrics["expectancy_r"] == pytest.approx(1 / 6)
    assert metrics["avg_win"] == pytest.approx(0.025)
    assert metrics["avg_loss"] == pytest.approx(0.04 / 3)
    assert metrics["payoff_ratio"] == pytest.approx(0.025 / (0.04 / 3))
    assert metrics["profit_factor"] == pytest.approx(50 / 40)
    assert (metrics["best_trade"], metrics["worst_trade"]) == (0.03, -0.02)
    assert (metrics["max_win_streak"], metrics["max_loss_streak"]) == (1, 2)
    assert metrics["fees"] == 6.0 and metrics["funding_paid"] == 3.0
    r = np.array([2, -1, 0, 3, -2, -1], dtype=float)
    assert metrics["sqn_r"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(6))


def test_no_losses_and_no_trades_give_none_not_infinity() -> None:
    """Profit factor and payoff are undefined without a loss; everything is None without
    trades."""
    assert trade_metrics(trades_of([0.01, 0.02]))["profit_factor"] is None
    empty = trade_metrics(trades_of([]))
    assert empty["trades"] == 0 and empty["hit_rate"] is None and empty["expectancy"] is None


def test_wilson_interval_matches_the_published_value() -> None:
    """8 wins out of 10: the 95 % Wilson interval is [0.4902, 0.9433] (Wilson 1927, as in
    statsmodels' proportion_confint(method='wilson'))."""
    low, high = wilson_interval(8, 10)  # type: ignore[misc]
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)


def quantstats_sharpe(returns: pd.Series) -> float:
    """quantstats.stats.sharpe(periods=365, rf=0): mean / std(ddof=1) · √365."""
    return float(returns.mean() / returns.std(ddof=1) * np.sqrt(365))


def quantstats_sortino(returns: pd.Series) -> float:
    """quantstats.stats.sortino(periods=365): mean / sqrt(Σ min(r,0)² / N) · √365."""
    downside = np.sqrt((returns[returns < 0] ** 2).sum() / len(returns))
    return float(returns.mean() / downside * np.sqrt(365))


def empyrical_max_drawdown(returns: pd.Series) -> float:
    """empyrical.max_drawdown: cumulative value from 100, min((cum − cummax)/cummax)."""
    cumulative = 100 * (1 + returns).cumprod()
    peak = np.maximum.accumulate(np.concatenate(([100.0], cumulative)))[1:]
    return float(((cumulative - peak) / peak).min())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ratios_match_quantstats_and_empyrical_formulas(seed: int) -> None:
    """Sharpe, Sortino, max drawdown and CAGR of a daily series equal the reference formulas."""
    rng = np.random.default_rng(seed)
    returns = pd.Series(rng.normal(0.001, 0.02, 120))
    equity = 10_000 * (1 + returns).cumprod().to_numpy()
    days = 120.0
    times = START_MS + np.arange(1, 121, dtype=np.int64) * DAY
    drawdown = drawdown_stats(times, equity, 10_000.0, start_ms=START_MS)
    ratios = equity_metrics(
        returns.to_numpy(),
        initial_equity=10_000.0,
        final_equity=float(equity[-1]),
        days=days,
        max_drawdown=drawdown["max_drawdown"],
    )
    assert ratios["sharpe"] == pytest.approx(quantstats_sharpe(returns), rel=1e-12)
    assert ratios["sortino"] == pytest.approx(quantstats_sortino(returns), rel=1e-12)
    assert -drawdown["max_drawdown"] == pytest.approx(empyrical_max_drawdown(returns), rel=1e-12)
    cagr = (equity[-1] / 10_000) ** (365 / days) - 1
    assert ratios["cagr"] == pytest.approx(cagr, rel=1e-12)
    assert ratios["calmar"] == pytest.approx(cagr / drawdown["max_drawdown"], rel=1e-12)


def test_drawdown_durations_of_a_hand_worked_curve() -> None:
    """Equity 100 → 110, 99, 105, 111, 90, 95 on consecutive days: the max drawdown is
    111 → 90 (21/111), unrecovered, 2 days to the end; the longest time under water is
    110 → 111, 3 days."""
    values = np.array([110, 99, 105, 111, 90, 95], dtype=float)
    times = START_MS + np.arange(1, 7, dtype=np.int64) * DAY
    stats = drawdown_stats(times, values, 100.0, start_ms=START_MS)
    assert stats["max_drawdown"] == pytest.approx(21 / 111)
    assert stats["max_drawdown_abs"] == pytest.approx(21)
    assert stats["max_drawdown_recovered"] is False
    assert stats["max_drawdown_start"] == START_MS + 4 * DAY
    assert stats["max_drawdown_trough"] == START_MS + 5 * DAY
    assert stats["max_drawdown_days"] == pytest.approx(2.0)
    assert stats["longest_underwater_days"] == pytest.approx(3.0)


def test_daily_equity_keeps_days_without_bars() -> None:
    """Day 1 ends at 110, day 2 has no bar (carries 110, return 0), day 3 ends at 99."""
    times = np.array([START_MS, START_MS + 600_000, START_MS + 2 * DAY + 5], dtype=np.int64)
    daily = daily_equity(times, np.array([105.0, 110.0, 99.0]), 100.0)
    assert daily["date"].tolist() == ["2026-01-01", "2026-01-02", "2026-01-03"]
    np.testing.assert_allclose(daily["return"], [0.1, 0.0, -0.1])
    np.testing.assert_allclose(daily["drawdown"], [0.0, 0.0, 0.1])


def test_summary_of_a_run_is_consistent_with_its_trades_and_bars() -> None:
    """Total return is Σ pnl over the initial equity; exposure is time held over the data's
    span; buy and hold is the last close over the first open; fees add up."""
    bars = random_bars(5, 3 * 1440)
    signals = random_signals(5, bars, probability=0.01)
    result = run_backtest(bars, signals, config=BacktestConfig(hold_bars=30, stop_pct=0.005))
    metrics = summarize(result)
    trades = result.trades
    assert metrics["total_return"] == pytest.approx(trades["pnl"].sum() / 10_000)
    held = (trades["exit_time"] - trades["entry_time"]).sum()
    assert metrics["exposure"] == pytest.approx(held / (3 * DAY))
    assert metrics["buy_and_hold"] == pytest.approx(
        bars["close"].iloc[-1] / bars["open"].iloc[0] - 1
    )
    assert metrics["days"] == pytest.approx(3.0) and metrics["daily_returns"] == 3
    assert metrics["fees"] == pytest.approx(trades["fees"].sum())
    assert metrics["final_equity"] == pytest.approx(result.equity[-1])


def test_breakdowns_slice_by_setup_score_and_confidence() -> None:
    """Each slice holds the trade metrics of its trades; scores read as floats print as ints;
    a column empty for every trade gives no slice."""
    trades = trades_of(
        [0.01, -0.01, 0.02],
        setup=["a", "b", "a"],
        score=[5.0, 3.0, 5.0],
        confidence=["high", None, "high"],
        session=["asia", "asia", "london"],
    )
    out = breakdowns(trades)
    assert out["setup"]["a"]["trades"] == 2 and out["setup"]["a"]["hit_rate"] == 1.0
    assert set(out["score"]) == {"3", "5"}
    assert list(out["confidence"]) == ["high"]
    assert out["direction"]["long"]["trades"] == 3


def loop_drawdowns(times: list[int], values: list[float], initial: float) -> dict[str, float]:
    """Drawdowns by walking the curve: the deepest fall from a running peak, and the longest
    stretch from a peak until the curve is back at it (or the end)."""
    peak, peak_time = initial, START_MS
    deepest, deepest_abs, longest = 0.0, 0.0, 0.0
    for time_ms, value in zip(times, values, strict=True):
        if value >= peak:
            longest = max(longest, time_ms - peak_time)
            peak, peak_time = value, time_ms
        else:
            deepest = max(deepest, (peak - value) / peak)
            deepest_abs = max(deepest_abs, peak - value)
    if values and values[-1] < peak:
        longest = max(longest, times[-1] - peak_time)
    return {"max_drawdown": deepest, "max_drawdown_abs": deepest_abs, "longest": longest / DAY}


@pytest.mark.parametrize("seed", range(6))
def test_drawdowns_match_a_walk_over_random_curves(seed: int) -> None:
    """Max drawdown (fraction and absolute) and the longest time under water equal a loop."""
    rng = np.random.default_rng(seed)
    values = 1_000 * np.cumprod(1 + rng.normal(0.0005, 0.01, 400))
    times = START_MS + np.cumsum(rng.integers(1, 5, 400)) * 3_600_000
    stats = drawdown_stats(times, values, 1_000.0, start_ms=START_MS)
    expected = loop_drawdowns(times.tolist(), values.tolist(), 1_000.0)
    assert stats["max_drawdown"] == pytest.approx(expected["max_drawdown"], rel=1e-12)
    assert stats["max_drawdown_abs"] == pytest.approx(expected["max_drawdown_abs"], rel=1e-12)
    assert stats["longest_underwater_days"] == pytest.approx(expected["longest"], rel=1e-12)


def _bars_at(prices: list[float], minutes_each: int) -> pd.DataFrame:
    """Flat bars holding each price for ``minutes_each`` minutes in turn."""
    closes = np.repeat(np.asarray(prices, dtype=np.float64), minutes_each)
    return pd.DataFrame(
        {
            "open_time": START_MS + np.arange(len(closes), dtype=np.int64) * 60_000,
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
        }
    )


def test_a_wiped_out_account_and_a_huge_short_growth_give_none_without_warnings() -> None:
    """Equity at zero for two days (0/0 daily returns) and a tripling within four minutes (a
    CAGR beyond any float) give None ratios, no RuntimeWarning and no OverflowError."""
    signal = pd.DataFrame({"time": [START_MS], "direction": [1]})
    wiped = run_backtest(
        _bars_at([100.0, 1e-300, 1e-300], 1440),
        signal,
        config=BacktestConfig(sizing="fraction", fraction=1.0, fee_rate=0),
    )
    tripled = run_backtest(
        _bars_at([100.0, 100.0, 300.0, 300.0], 1),
        signal,
        config=BacktestConfig(hold_bars=1, fee_rate=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        depleted = summarize(wiped)
        breakdowns(wiped.trades)
        daily_equity(wiped.bars.open_time_ms, wiped.equity, 10_000.0)
        grown = summarize(tripled)
    assert depleted["equity_depleted"] and depleted["sharpe"] is None
    assert grown["total_return"] == pytest.approx(2.0)
    assert grown["cagr"] is None and grown["calmar"] is None

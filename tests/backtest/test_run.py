"""Runs: windows as separate backtests, rolling windows, sweeps, hashes."""

from __future__ import annotations

import pytest

from ingmon.backtest import BacktestConfig, Bars, run_backtest, run_backtests, summarize, sweep
from ingmon.backtest.engine import Funding
from ingmon.backtest.run import data_hash
from ingmon.errors import UsageError
from tests.backtest._market import random_bars, random_signals

DAY_BARS = 1440


def test_trailing_windows_are_the_backtest_of_their_own_bars() -> None:
    """The 1-day window equals a run on the last day's bars and signals alone; a window
    longer than the data is flagged partial_data; thin windows insufficient_trades."""
    frame = random_bars(41, 3 * DAY_BARS)
    signals = random_signals(41, frame, probability=0.01)
    bars = Bars.from_frame(frame)
    config = BacktestConfig(hold_bars=20, stop_pct=0.004)
    run = run_backtests(bars, signals, config=config, window_days=(1, 5), rolling_days=1)
    day = run.windows[0]
    last_day = frame.iloc[-DAY_BARS:].reset_index(drop=True)
    alone = run_backtest(
        last_day, signals[signals["time"] >= last_day["open_time"].iloc[0]], config=config
    )
    assert day.metrics == summarize(alone)
    assert "partial_data" in run.windows[1].flags and "partial_data" not in day.flags
    assert "insufficient_trades" in day.flags and "few_days" in day.flags
    assert [r.window.label for r in run.rolling] == [
        "2026-01-01..2026-01-01",
        "2026-01-02..2026-01-02",
        "2026-01-03..2026-01-03",
    ]
    assert sum(r.metrics["trades"] for r in run.rolling) >= run.overall.metrics["trades"] - 2


def test_sweep_rows_equal_separate_runs() -> None:
    """Each sweep row holds the parameters and the metrics of the same run made alone."""
    frame = random_bars(42, DAY_BARS)
    bars = Bars.from_frame(frame)
    signals = random_signals(42, frame, probability=0.02)
    configs = [BacktestConfig(hold_bars=hold) for hold in (5, 30)]
    table = sweep(bars, [({"hold": c.hold_bars}, signals, c) for c in configs])
    for row, config in zip(table.itertuples(), configs, strict=True):
        alone = summarize(run_backtest(bars, signals, config=config))
        assert row.hold == config.hold_bars
        assert row.trades == alone["trades"]
        assert row.total_return == pytest.approx(alone["total_return"], rel=1e-12)
        assert row.max_drawdown == pytest.approx(alone["max_drawdown"], rel=1e-12)


def test_the_data_hash_changes_with_any_input() -> None:
    """Same inputs, same hash; one price, one signal direction or one funding rate changed,
    another hash."""
    frame = random_bars(43, 500)
    signals = random_signals(43, frame)
    funding = Funding.from_frame(
        frame.iloc[[100]].rename(columns={"open_time": "funding_time"}).assign(funding_rate=1e-4)
    )
    base = data_hash(Bars.from_frame(frame), signals, funding)
    assert base == data_hash(Bars.from_frame(frame.copy()), signals.copy(), funding)
    moved = frame.copy()
    moved.loc[10, "close"] += 0.01
    flipped = signals.copy()
    flipped.loc[0, "direction"] *= -1
    other = Funding(funding.time_ms, funding.rate * 2, funding.mark_price)
    assert base != data_hash(Bars.from_frame(moved), signals, funding)
    assert base != data_hash(Bars.from_frame(frame), flipped, funding)
    assert base != data_hash(Bars.from_frame(frame), signals, other)


def test_windows_are_anchored_at_as_of_and_a_window_the_data_does_not_fill_is_flagged() -> None:
    """as_of_ms half a day after the last bar: the trailing windows end there, the 1-day
    window is the run of the last half day of bars alone and, like every window, flagged
    partial_data; without as_of_ms the windows end at the last bar's close, unflagged."""
    frame = random_bars(43, 3 * DAY_BARS)
    signals = random_signals(43, frame, probability=0.01)
    bars = Bars.from_frame(frame)
    config = BacktestConfig(hold_bars=20)
    last_close = int(bars.close_time_ms[-1]) + 1
    as_of = last_close + DAY_BARS // 2 * 60_000
    run = run_backtests(bars, signals, config=config, window_days=(1, 2), as_of_ms=as_of)
    assert [report.window.end_ms for report in run.windows] == [as_of, as_of]
    assert all("partial_data" in report.flags for report in [run.overall, *run.windows])
    half_day = frame.iloc[-DAY_BARS // 2 :].reset_index(drop=True)
    alone = run_backtest(
        half_day, signals[signals["time"] >= half_day["open_time"].iloc[0]], config=config
    )
    assert run.windows[0].metrics == summarize(alone)
    default = run_backtests(bars, signals, config=config, window_days=(1, 2))
    assert [report.window.end_ms for report in default.windows] == [last_close, last_close]
    assert not any("partial_data" in report.flags for report in default.windows)


def test_rolling_windows_longer_than_the_data_are_bad_input() -> None:
    """rolling_days beyond the data's span is a UsageError, not a run without rolling windows."""
    frame = random_bars(44, DAY_BARS)
    with pytest.raises(UsageError, match="rolling windows of 2 days are longer than the data"):
        run_backtests(
            Bars.from_frame(frame),
            random_signals(44, frame),
            config=BacktestConfig(hold_bars=5),
            rolling_days=2,
        )

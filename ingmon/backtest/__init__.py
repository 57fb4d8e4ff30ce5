"""Backtests of signals on 1m candles: fills, costs, metrics, windows and exports.

The pure core is importable from here; the edges (``ingmon.backtest.files`` for inputs,
``ingmon.backtest.export`` for outputs, ``ingmon.backtest.commands`` for the CLI) are imported
from their modules.
"""

from __future__ import annotations

from ingmon.backtest.engine import (
    EXIT_REASONS,
    SESSIONS,
    BacktestConfig,
    BacktestResult,
    Bars,
    Funding,
    prepare_signals,
    run_backtest,
    session_of,
)
from ingmon.backtest.metrics import (
    breakdowns,
    daily_equity,
    drawdown_stats,
    equity_metrics,
    summarize,
    trade_metrics,
    wilson_interval,
)
from ingmon.backtest.run import SCHEMA_VERSION, BacktestRun, run_backtests, sweep
from ingmon.backtest.windows import (
    Window,
    WindowReport,
    evaluate_windows,
    rolling_windows,
    trailing_windows,
)

__all__ = [
    "EXIT_REASONS",
    "SCHEMA_VERSION",
    "SESSIONS",
    "BacktestConfig",
    "BacktestResult",
    "BacktestRun",
    "Bars",
    "Funding",
    "Window",
    "WindowReport",
    "breakdowns",
    "daily_equity",
    "drawdown_stats",
    "equity_metrics",
    "evaluate_windows",
    "prepare_signals",
    "rolling_windows",
    "run_backtest",
    "run_backtests",
    "session_of",
    "summarize",
    "sweep",
    "trade_metrics",
    "trailing_windows",
    "wilson_interval",
]

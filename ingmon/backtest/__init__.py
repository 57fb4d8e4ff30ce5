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

REPORT_BRACKET = BacktestConfig(
    stop_atr=1.0, take_profit_atr=1.5, hold_bars=240, fee_rate=0.0005, slippage_bps=1.0
)
"""The bracket the demo, the reports and docs/backtesting.md use: market entry on the bar after
the signal, stop 1 ATR and target 1.5 ATR of the signal timeframe, time exit after 240 1m bars
(4 h), taker fee 0.05 % and 1 bp slippage per side. ``notebooks/backtest_report.py`` repeats
these as literal parameter defaults (papermill reads literals); a test keeps them equal."""

__all__ = [
    "EXIT_REASONS",
    "REPORT_BRACKET",
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

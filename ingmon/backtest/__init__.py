"""Backtests of signals on 1m candles: fills, costs, metrics, windows and exports.

The pure core is importable from here; the edges (``ingmon.backtest.files`` for inputs,
``ingmon.backtest.export`` for outputs, ``ingmon.backtest.commands`` for the CLI) are imported
from their modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingmon.backtest.engine import (
        EXIT_REASONS,
        REPORT_BRACKET,
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

# Names are imported on first use (PEP 562), so that `ingmon --help`, which imports the
# command modules of this package, does not load pandas with the engine.
_HOME = {
    "BacktestConfig": "ingmon.backtest.engine",
    "BacktestResult": "ingmon.backtest.engine",
    "BacktestRun": "ingmon.backtest.run",
    "Bars": "ingmon.backtest.engine",
    "breakdowns": "ingmon.backtest.metrics",
    "daily_equity": "ingmon.backtest.metrics",
    "drawdown_stats": "ingmon.backtest.metrics",
    "equity_metrics": "ingmon.backtest.metrics",
    "evaluate_windows": "ingmon.backtest.windows",
    "EXIT_REASONS": "ingmon.backtest.engine",
    "Funding": "ingmon.backtest.engine",
    "prepare_signals": "ingmon.backtest.engine",
    "REPORT_BRACKET": "ingmon.backtest.engine",
    "rolling_windows": "ingmon.backtest.windows",
    "run_backtest": "ingmon.backtest.engine",
    "run_backtests": "ingmon.backtest.run",
    "SCHEMA_VERSION": "ingmon.backtest.run",
    "session_of": "ingmon.backtest.engine",
    "SESSIONS": "ingmon.backtest.engine",
    "summarize": "ingmon.backtest.metrics",
    "sweep": "ingmon.backtest.run",
    "trade_metrics": "ingmon.backtest.metrics",
    "trailing_windows": "ingmon.backtest.windows",
    "wilson_interval": "ingmon.backtest.metrics",
    "Window": "ingmon.backtest.windows",
    "WindowReport": "ingmon.backtest.windows",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value

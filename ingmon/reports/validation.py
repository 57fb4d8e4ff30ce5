"""What each report accepts: its parameters' values, checked before a kernel starts.

``ingmon.reports.notebooks`` types a ``-p`` value by the notebook's annotation; this module
checks the value against the library that will use it, so that a bad value is one UsageError
line (exit 2) rather than a traceback in a cell of a recorded failed run, and a symbol that is
not in the lake is refused rather than reported as an empty success. :data:`CHECKS` is the one
table of which parameter of which report is checked how; ``symbols`` is checked against the
lake for every report that declares it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from ingmon.arguments import MAX_WINDOW_DAYS, symbol_list
from ingmon.errors import UsageError
from ingmon.lake import Lake
from ingmon.schema import CANDLES, MARKET_SERIES, SIGNAL_TIMEFRAMES

__all__ = ["CHECKS", "MAX_SCORE", "check_values"]

# The signal score is out of 7 (docs/signals.md); 0 takes every signal, scored or not.
MAX_SCORE = 7
# The signal engine and the backtest read 1m candles; a symbol without them has no report.
_CANDLE_INTERVAL = "1m"

# A check takes the parameter's value and raises ValueError (or UsageError) with a message
# that starts with the parameter's name.
Check = Callable[[str, Any], None]


def _one_of(choices: Collection[str]) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}")

    return check


def _subset_of(choices: Collection[str]) -> Check:
    def check(name: str, value: Any) -> None:
        unknown = [item for item in value if item not in choices]
        if unknown:
            raise ValueError(
                f"{name}: unknown {', '.join(map(repr, unknown))}; expected any of "
                f"{', '.join(choices)}"
            )

    return check


def _int_between(low: int, high: int) -> Check:
    def check(name: str, value: Any) -> None:
        if not low <= value <= high:
            raise ValueError(f"{name} must be {low}-{high}")

    return check


def _window_days(name: str, value: Any) -> None:
    if not 0 < value <= MAX_WINDOW_DAYS:
        raise ValueError(f"{name} must be > 0 and <= {MAX_WINDOW_DAYS} days")


def _window_days_list(name: str, value: Any) -> None:
    if not value:
        raise ValueError(f"{name} needs at least one window")
    for days in value:
        if not 0 < days <= MAX_WINDOW_DAYS:
            raise ValueError(f"{name}: each window must be > 0 and <= {MAX_WINDOW_DAYS} days")


def _known_setups(name: str, value: Any) -> None:
    from ingmon.signals.setups import SETUPS  # noqa: PLC0415 - the signal engine loads ~20 ms

    _subset_of(SETUPS)(name, value)


def _engine_config(name: str, value: Any) -> None:
    """The backtest engine's own rule for one of its config fields (fee_rate >= 0, …)."""
    from ingmon.backtest import BacktestConfig  # noqa: PLC0415 - numpy only when a report runs

    BacktestConfig(**{name: value})


CHECKS: Mapping[str, Mapping[str, Check]] = {
    "backtest": {
        "window_days": _window_days_list,
        "setups": _known_setups,
        "min_score": _int_between(0, MAX_SCORE),
        "fee_rate": _engine_config,
        "slippage_bps": _engine_config,
        "stop_atr": _engine_config,
        "take_profit_atr": _engine_config,
        "hold_bars": _engine_config,
        "timeframe": _one_of(SIGNAL_TIMEFRAMES),
    },
    "integrity": {
        "window_days": _window_days,
        "datasets": _subset_of(MARKET_SERIES),
    },
}


def _shown(value: Any) -> str:
    """A value as it would be written after ``-p name=`` (lists comma-separated)."""
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def check_values(report: str, values: Mapping[str, Any], *, lake_dir: Path) -> None:
    """UsageError (one line naming the parameter) for a value ``report`` cannot run with.

    ``values`` are the parameters the notebook would run with, defaults included; a parameter
    the notebook does not declare is not checked.
    """
    for name, check in CHECKS.get(report, {}).items():
        if name not in values:
            continue
        try:
            check(name, values[name])
        except (ValueError, UsageError) as error:
            raise UsageError(f"-p {name}={_shown(values[name])}: {error}", field=name) from None
    if "symbols" in values:
        _check_symbols(values["symbols"], lake_dir=lake_dir)


def _check_symbols(symbols: list[str], *, lake_dir: Path) -> None:
    """Upper-case perpetual names with 1m candles in the lake; none given: the lake has some."""
    lake = Lake(lake_dir)
    stored = [
        symbol
        for symbol in lake.symbols(CANDLES)
        if lake.series_dir(CANDLES, symbol=symbol, param=_CANDLE_INTERVAL).is_dir()
    ]
    if not symbols:
        if not stored:
            raise UsageError(f"no data in {lake_dir}: no symbol has 1m candles", field="symbols")
        return
    shown = f"-p symbols={_shown(symbols)}"
    for symbol in symbols:
        try:
            symbol_list(symbol)
        except argparse.ArgumentTypeError as error:
            raise UsageError(f"{shown}: {error}", field="symbols") from None
        if symbol != symbol.upper():
            raise UsageError(
                f"{shown}: symbols are upper-case, like {symbol.upper()}", field="symbols"
            )
    missing = [symbol for symbol in symbols if symbol not in stored]
    if missing:
        held = ", ".join(stored) if stored else "none"
        raise UsageError(
            f"{shown}: no 1m candles for {', '.join(missing)} in {lake_dir} (it holds {held})",
            field="symbols",
        )

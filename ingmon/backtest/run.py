"""One backtest run: the whole data plus its evaluation windows, with the hashes that identify
the config and the data it ran on. Pure (no I/O); :mod:`ingmon.backtest.export` writes it."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ingmon.backtest.engine import BacktestConfig, Bars, Funding, run_backtest
from ingmon.backtest.metrics import drawdown_stats, trade_metrics
from ingmon.backtest.windows import (
    MIN_TRADES,
    Window,
    WindowReport,
    evaluate_windows,
    rolling_windows,
    trailing_windows,
)
from ingmon.errors import UsageError
from ingmon.times import DAY_MS, iso_ms

__all__ = [
    "SCHEMA_VERSION",
    "BacktestRun",
    "config_hash",
    "data_hash",
    "run_backtests",
    "sweep",
]

SCHEMA_VERSION = "ingmon.backtest/v1"


@dataclass(frozen=True)
class BacktestRun:
    """A run: who/what/when, the whole-data report, trailing and rolling windows."""

    run_id: str
    created_at_ms: int
    symbol: str
    source: str
    timeframe: str | None
    config: BacktestConfig
    filters: dict[str, Any]
    data: dict[str, Any]
    overall: WindowReport
    windows: list[WindowReport]
    rolling: list[WindowReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said in the summary: defaults applied, …

    @property
    def config_document(self) -> dict[str, Any]:
        return {
            "engine": self.config.to_dict(),
            "filters": self.filters,
            "timeframe": self.timeframe,
        }

    @property
    def config_hash(self) -> str:
        return config_hash(self.config_document)


def config_hash(document: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a config document."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def data_hash(bars: Bars, signals: pd.DataFrame, funding: Funding) -> str:
    """sha256 over the bars, the signals (time, when known, direction, levels, labels) and the
    funding events a run used: the same inputs give the same hash on any machine."""
    digest = hashlib.sha256()
    for array in (bars.open_time_ms, bars.open, bars.high, bars.low, bars.close):
        digest.update(np.ascontiguousarray(array).tobytes())
    for name in ("time", "known_ms", "direction", "stop_price", "target_price", "atr"):
        if name in signals:
            digest.update(name.encode())
            digest.update(signals[name].to_numpy(dtype=np.float64, na_value=np.nan).tobytes())
    for name in ("signal_id", "setup", "score", "confidence"):
        if name in signals:
            digest.update(name.encode())
            digest.update("\x1f".join(map(str, signals[name].tolist())).encode())
    for array in (funding.time_ms, funding.rate, funding.mark_price):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def run_backtests(
    bars: Bars,
    signals: pd.DataFrame,
    *,
    config: BacktestConfig,
    funding: Funding | None = None,
    window_days: tuple[float, ...] = (30, 60, 90),
    rolling_days: float | None = None,
    min_trades: int = MIN_TRADES,
    symbol: str = "",
    source: str = "file",
    timeframe: str | None = None,
    filters: dict[str, Any] | None = None,
    created_at_ms: int = 0,
    run_id: str | None = None,
    as_of_ms: int | None = None,
    notes: tuple[str, ...] = (),
) -> BacktestRun:
    """The whole data, the trailing windows ending at ``as_of_ms`` and, with ``rolling_days``,
    consecutive rolling windows of that length ending there, each its own backtest.

    ``as_of_ms`` defaults to the last bar's close (file mode: the data ends where it ends);
    lake mode passes the end it read the data for (``--end`` or now), so a stale lake shows as
    windows flagged ``partial_data`` instead of windows silently shifted back in time. Rolling
    days longer than the data are bad input (:class:`UsageError`), not zero windows."""
    funding = funding or Funding.empty()
    first_ms = int(bars.open_time_ms[0])
    data_end_ms = int(bars.close_time_ms[-1]) + 1
    if as_of_ms is None:
        as_of_ms = data_end_ms
    everything = Window("all", "all", first_ms, as_of_ms, (as_of_ms - first_ms) / DAY_MS)

    def evaluate(windows: list[Window]) -> list[WindowReport]:
        return evaluate_windows(
            bars, signals, config=config, funding=funding, windows=windows, min_trades=min_trades
        )

    (overall,) = evaluate([everything])
    windows = evaluate(trailing_windows(as_of_ms, window_days))
    rolling: list[WindowReport] = []
    if rolling_days:
        fitting = rolling_windows(first_ms, as_of_ms, days=rolling_days)
        if not fitting:
            raise UsageError(
                f"rolling windows of {rolling_days:g} days are longer than the data: "
                f"{(as_of_ms - first_ms) / DAY_MS:.2f} days from {iso_ms(first_ms)} to "
                f"{iso_ms(as_of_ms)}",
                field="rolling_days",
            )
        rolling = evaluate(fitting)
    data = {
        "start": iso_ms(first_ms),
        "end": iso_ms(data_end_ms),
        "as_of": iso_ms(as_of_ms),
        "bars": len(bars),
        "bar_ms": bars.bar_ms,
        "signals": len(signals),
        "funding_events": len(funding.time_ms),
        "hash": data_hash(bars, signals, funding),
    }
    return BacktestRun(
        run_id=run_id or f"bt-{uuid.uuid4().hex[:16]}",
        created_at_ms=created_at_ms,
        symbol=symbol,
        source=source,
        timeframe=timeframe,
        config=config,
        filters=dict(filters or {}),
        data=data,
        overall=overall,
        windows=windows,
        rolling=rolling,
        notes=list(notes),
    )


def sweep(
    bars: Bars,
    candidates: list[tuple[dict[str, Any], pd.DataFrame, BacktestConfig]],
    *,
    funding: Funding | None = None,
) -> pd.DataFrame:
    """Headline metrics of many (parameters, signals, config) combinations on the same bars,
    one row per combination with its parameters: trades, hit rate, expectancy, profit factor,
    total return and max drawdown (of the mark-to-market equity)."""
    rows = []
    for parameters, signals, config in candidates:
        result = run_backtest(bars, signals, config=config, funding=funding)
        metrics = trade_metrics(result.trades)
        drawdown = drawdown_stats(
            bars.close_time_ms,
            result.equity,
            config.initial_equity,
            start_ms=int(bars.open_time_ms[0]),
        )
        rows.append(
            {
                **parameters,
                "trades": metrics["trades"],
                "hit_rate": metrics["hit_rate"],
                "expectancy": metrics["expectancy"],
                "profit_factor": metrics["profit_factor"],
                "total_return": result.final_equity / config.initial_equity - 1,
                "max_drawdown": drawdown["max_drawdown"],
            }
        )
    return pd.DataFrame(rows)

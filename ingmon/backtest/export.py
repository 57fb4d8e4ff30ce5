"""Exports of a backtest run at the edge: the JSON document, trades and equity CSVs, and the
``backtest_runs``/``backtest_trades`` rows in the lake."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ingmon import __version__
from ingmon.backtest.metrics import daily_equity
from ingmon.backtest.run import SCHEMA_VERSION, BacktestRun
from ingmon.lake import Lake
from ingmon.schema import BACKTEST_RUNS, BACKTEST_TRADES
from ingmon.times import iso_ms

__all__ = [
    "EXPORT_FORMATS",
    "TRADE_CSV_COLUMNS",
    "equity_frame",
    "run_document",
    "save_run",
    "trades_frame",
    "write_exports",
]

EXPORT_FORMATS: tuple[str, ...] = ("json", "csv")
TRADE_CSV_COLUMNS: tuple[str, ...] = (
    "trade_id",
    "signal_id",
    "symbol",
    "setup",
    "direction",
    "score",
    "confidence",
    "session",
    "signal_time",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "exit_reason",
    "bars_held",
    "qty",
    "notional",
    "stop_price",
    "target_price",
    "gross_return",
    "fee_entry",
    "fee_exit",
    "fees",
    "slippage",
    "funding",
    "pnl",
    "net_return",
    "r_multiple",
    "mfe",
    "mae",
)
# Metrics whose value is a time in epoch ms: ISO strings in the document.
_TIME_METRICS = ("start", "end", "max_drawdown_start", "max_drawdown_trough", "max_drawdown_end")


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _with_iso_times(metrics: dict[str, Any]) -> dict[str, Any]:
    out = dict(metrics)
    for name in _TIME_METRICS:
        if out.get(name) is not None:
            out[name] = iso_ms(int(out[name]))
    return out


def run_document(run: BacktestRun) -> dict[str, Any]:
    """The run as one JSON-ready document (``schema_version`` ingmon.backtest/v1)."""

    def window(report: Any) -> dict[str, Any]:
        document: dict[str, Any] = report.to_dict()
        document["metrics"] = _with_iso_times(document["metrics"])
        return document

    overall = run.overall
    document: dict[str, Any] = _plain(
        {
            "schema_version": SCHEMA_VERSION,
            "run_id": run.run_id,
            "created_at": iso_ms(run.created_at_ms),
            "code_version": __version__,
            "symbol": run.symbol,
            "source": run.source,
            "config": run.config_document,
            "config_hash": run.config_hash,
            "data": run.data,
            "notes": list(run.notes),
            "skipped_signals": dict(overall.result.skipped),
            "own_levels_ignored": overall.result.own_levels_ignored,
            "flags": list(overall.flags),
            "metrics": _with_iso_times(overall.metrics),
            "breakdowns": overall.breakdowns,
            "windows": [window(report) for report in run.windows],
            "rolling": [window(report) for report in run.rolling],
        }
    )
    return document


def trades_frame(run: BacktestRun) -> pd.DataFrame:
    """The whole-data trades with ISO times, in :data:`TRADE_CSV_COLUMNS` order."""
    trades = run.overall.result.trades.copy()
    trades["symbol"] = run.symbol
    for column in ("signal_time", "entry_time", "exit_time"):
        trades[column] = [iso_ms(int(v)) for v in trades[column]]
    return trades[list(TRADE_CSV_COLUMNS)]


def equity_frame(run: BacktestRun) -> pd.DataFrame:
    """Daily equity of the whole-data run: date, equity, return, drawdown."""
    result = run.overall.result
    return daily_equity(result.bars.open_time_ms, result.equity, result.config.initial_equity)


def _write_atomic(target: Path, write: Any) -> None:
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temp))
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_exports(run: BacktestRun, out_dir: Path, formats: Sequence[str]) -> list[Path]:
    """``summary.json`` and/or ``trades.csv`` + ``equity.csv`` in ``out_dir`` (created),
    each written to a temp file and renamed into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if "json" in formats:
        target = out_dir / "summary.json"
        text = json.dumps(run_document(run), indent=2, allow_nan=False) + "\n"
        _write_atomic(target, lambda path: path.write_text(text, encoding="utf-8"))
        written.append(target)
    if "csv" in formats:
        for name, frame in (("trades.csv", trades_frame(run)), ("equity.csv", equity_frame(run))):
            target = out_dir / name
            _write_atomic(target, lambda path, f=frame: f.to_csv(path, index=False))
            written.append(target)
    return written


def save_run(lake: Lake, run: BacktestRun) -> None:
    """One ``backtest_runs`` row (config, data hash, headline metrics, the document) and the
    run's trades in ``backtest_trades``, under the run's symbol. Both tables are built before
    either is written, so a run that cannot be stored leaves nothing behind."""
    metrics = run.overall.metrics
    document = run_document(run)
    row = {
        "run_id": [run.run_id],
        "created_at": pa.array([run.created_at_ms * 1000], pa.timestamp("us", tz="UTC")),
        "source": [run.source],
        "timeframe": [run.timeframe],
        "data_start": pa.array([metrics["start"]], pa.timestamp("ms", tz="UTC")),
        "data_end": pa.array([metrics["end"] - run.data["bar_ms"]], pa.timestamp("ms", tz="UTC")),
        "data_hash": [run.data["hash"]],
        "config_hash": [run.config_hash],
        "config": [json.dumps(run.config_document, sort_keys=True)],
        "code_version": [__version__],
        "trades": [metrics["trades"]],
        "net_return": [metrics["total_return"]],
        "max_drawdown": [metrics["max_drawdown"]],
        "summary": [json.dumps(document, allow_nan=False)],
    }
    runs_table = pa.table(row)
    trades = run.overall.result.trades
    trades_table = _trades_table(run, trades) if len(trades) else None
    lake.upsert(BACKTEST_RUNS, runs_table, symbol=run.symbol)
    if trades_table is not None:
        lake.upsert(BACKTEST_TRADES, trades_table, symbol=run.symbol)


def _text_or_none(values: Any) -> pa.Array:
    """Labels as strings (a setup named 7 is "7"), missing ones null."""
    return pa.array([None if pd.isna(value) else str(value) for value in values], pa.string())


def _trades_table(run: BacktestRun, trades: pd.DataFrame) -> pa.Table:
    score = pd.to_numeric(trades["score"], errors="coerce")
    return pa.table(
        {
            "trade_id": [f"{run.run_id}:{int(i)}" for i in trades["trade_id"]],
            "run_id": [run.run_id] * len(trades),
            "signal_id": _text_or_none(trades["signal_id"].tolist()),
            "setup": _text_or_none(trades["setup"].tolist()),
            "direction": trades["direction"].tolist(),
            "score": pa.array(
                [None if math.isnan(v) else int(v) for v in score.to_numpy(dtype=np.float64)],
                pa.int32(),
            ),
            "confidence": _text_or_none(trades["confidence"].tolist()),
            "entry_time": pa.array(trades["entry_time"].to_numpy(), pa.timestamp("ms", tz="UTC")),
            "entry_price": trades["entry_price"].to_numpy(),
            "exit_time": pa.array(trades["exit_time"].to_numpy(), pa.timestamp("ms", tz="UTC")),
            "exit_price": trades["exit_price"].to_numpy(),
            "exit_reason": trades["exit_reason"].tolist(),
            "qty": trades["qty"].to_numpy(),
            "net_return": trades["net_return"].to_numpy(),
            "pnl": trades["pnl"].to_numpy(),
        }
    )

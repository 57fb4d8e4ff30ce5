"""``ingmon export``: the runbook's snapshot files (JSON lines or CSV), written atomically."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ingmon.config import Settings
from ingmon.errors import CorruptPartitionError
from ingmon.lake import Lake
from ingmon.schema import CANDLES, MARKET_SERIES, OPEN_INTEREST, Dataset
from ingmon.times import DAY_MS, now_ms

__all__ = ["export_snapshots", "snapshot_name"]


def snapshot_name(
    dataset: Dataset,
    symbol: str,
    param: str | None,
    fmt: str,
    *,
    window_days: float | None = None,
) -> str:
    """File name of a snapshot: ``btcusdt_1m_candles.jsonl``, ``btcusdt_funding.csv``…

    A window of the last N days gets its own name, ``btcusdt_1m_candles.last-0.5d.jsonl``, so a
    partial export never replaces the full snapshot that consumers of the plain name expect.
    """
    series = MARKET_SERIES[dataset.name]
    base = series.snapshot_stem.format(symbol=symbol.lower(), param=param, dataset=dataset.name)
    if window_days is not None:
        # ``:g`` keeps the name as typed for everyday values: 0.5 → "0.5", 2.0 → "2".
        base = f"{base}.last-{window_days:g}d"
    return f"{base}.{fmt}"


def _write_atomic(frame: pl.DataFrame, target: Path, fmt: str) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    try:
        if fmt == "jsonl":
            frame.write_ndjson(tmp)
        else:
            frame.write_csv(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _collect(
    lake: Lake, scan: pl.LazyFrame, dataset: Dataset, *, symbol: str, param: str | None
) -> pl.DataFrame:
    """Run the scan; damage inside a file (past a sound footer) is named like any other."""
    try:
        return scan.collect()
    except pl.exceptions.ComputeError:
        damaged = lake.find_corrupt(dataset, symbol=symbol, param=param, deep=True)
        if damaged:
            raise CorruptPartitionError(damaged[0]) from None
        raise


def export_snapshots(
    settings: Settings,
    *,
    symbols: Sequence[str] | None,
    fmt: str,
    interval: str = "1m",
    oi_period: str = "5m",
    window_days: float | None = None,
    end_ms: int | None = None,
) -> list[Path]:
    """Write one file per stored (dataset, symbol) under ``<data root>/binance``; times in ms.

    Without ``window_days`` each file holds everything stored, under its plain name; with it,
    the rows of ``[end − window_days, end)`` (``end_ms`` defaults to now) go to a file named
    for the window (:func:`snapshot_name`).
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown format {fmt!r}")
    lake = Lake(settings.lake_dir)
    out_dir = settings.data_dir / "binance"
    out_dir.mkdir(parents=True, exist_ok=True)
    window_end_ms = now_ms() if end_ms is None else end_ms
    start_ms = None if window_days is None else window_end_ms - round(window_days * DAY_MS)
    time_type = CANDLES.arrow_schema.field("open_time").type
    written = []
    params = {CANDLES.name: interval, OPEN_INTEREST.name: oi_period}
    for dataset, param in (
        (series.dataset, params.get(name)) for name, series in MARKET_SERIES.items()
    ):
        for symbol in symbols or lake.symbols(dataset):
            if not lake.files(dataset, symbol=symbol, param=param):
                continue
            scan = lake.scan(dataset, symbols=symbol, param=param, start=start_ms)
            if start_ms is not None:
                # The end is applied here rather than through scan(), whose end bound is
                # inclusive: the window is half-open, [start, end).
                scan = scan.filter(pl.col(dataset.time_column).dt.epoch("ms") < window_end_ms)
            frame = (
                _collect(lake, scan, dataset, symbol=symbol, param=param)
                .select(dataset.column_names)
                .with_columns(
                    pl.col(c.name).dt.epoch("ms")
                    for c in dataset.columns
                    if c.type.equals(time_type)
                )
            )
            name = snapshot_name(dataset, symbol, param, fmt, window_days=window_days)
            target = out_dir / name
            _write_atomic(frame, target, fmt)
            written.append(target)
    return written

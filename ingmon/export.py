"""``ingmon export``: the runbook's snapshot files (JSON lines or CSV), written atomically."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ingmon.config import Settings
from ingmon.lake import Lake
from ingmon.schema import AGG_TRADES, CANDLES, FUNDING, OPEN_INTEREST, Dataset
from ingmon.times import DAY_MS, now_ms

__all__ = ["export_snapshots", "snapshot_name"]


def snapshot_name(dataset: Dataset, symbol: str, param: str | None, fmt: str) -> str:
    """File name of a snapshot: ``btcusdt_1m_candles.jsonl``, ``btcusdt_funding.csv``…"""
    stem = symbol.lower()
    if dataset is CANDLES:
        return f"{stem}_{param}_candles.{fmt}"
    if dataset is OPEN_INTEREST:
        return f"{stem}_open_interest_{param}.{fmt}"
    return f"{stem}_{dataset.name}.{fmt}"


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


def export_snapshots(
    settings: Settings,
    *,
    symbols: Sequence[str] | None,
    fmt: str,
    interval: str = "1m",
    oi_period: str = "5m",
    window_days: float | None = None,
) -> list[Path]:
    """Write one file per stored (dataset, symbol) under ``<data root>/binance``; times in ms."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown format {fmt!r}")
    lake = Lake(settings.lake_dir)
    out_dir = settings.data_dir / "binance"
    out_dir.mkdir(parents=True, exist_ok=True)
    start = now_ms() - int(window_days * DAY_MS) if window_days else None
    written = []
    for dataset, param in (
        (CANDLES, interval),
        (OPEN_INTEREST, oi_period),
        (FUNDING, None),
        (AGG_TRADES, None),
    ):
        for symbol in symbols or lake.symbols(dataset):
            if not lake.files(dataset, symbol=symbol, param=param):
                continue
            frame = lake.scan(dataset, symbols=symbol, param=param, start=start).collect()
            frame = frame.select(dataset.column_names).with_columns(
                pl.col(c.name).dt.epoch("ms")
                for c in dataset.columns
                if c.type.equals(CANDLES.arrow_schema.field("open_time").type)
            )
            target = out_dir / snapshot_name(dataset, symbol, param, fmt)
            _write_atomic(frame, target, fmt)
            written.append(target)
    return written

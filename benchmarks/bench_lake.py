"""Lake upserts and reads side by side with a raw ``pyarrow.parquet.write_table`` of the rows."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks._harness import Case, median_seconds, print_table
from ingmon.lake import COMPRESSION, Lake, write_options
from ingmon.schema import AGG_TRADES, CANDLES, Dataset
from ingmon.times import DAY_MS, MINUTE_MS

__all__ = ["main"]

SYMBOL = "BTCUSDT"
START_MS = 1_785_542_400_000  # 2026-08-01T00:00:00Z
CANDLE_DAYS = 90
TRADE_ROWS = 2_000_000
TRADE_DAYS = 5  # 400,000 aggregated trades a day: a busy BTCUSDT day
# The floor: one write_table call with the options the lake writes with (zstd, no dictionary).
RAW_LAKE_OPTIONS = "raw write_table, lake's options"


def candles_table(*, days: int = CANDLE_DAYS, seed: int = 1) -> pa.Table:
    """``days`` of 1m candles as a random walk, in the lake's schema."""
    rng = np.random.default_rng(seed)
    rows = days * DAY_MS // MINUTE_MS
    open_ms = START_MS + np.arange(rows, dtype=np.int64) * MINUTE_MS
    close = 60_000 + np.cumsum(rng.normal(0, 15, rows)).round(1)
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 10, rows)).round(1)
    volume = rng.gamma(2.0, 20.0, rows).round(3)
    taker = (volume * rng.uniform(0.3, 0.7, rows)).round(3)
    columns = {
        "open_time": open_ms,
        "open": open_,
        "high": np.maximum(open_, close) + spread,
        "low": np.minimum(open_, close) - spread,
        "close": close,
        "volume": volume,
        "close_time": open_ms + MINUTE_MS - 1,
        "quote_volume": (volume * close).round(2),
        "trade_count": rng.integers(50, 3_000, rows),
        "taker_buy_volume": taker,
        "taker_buy_quote_volume": (taker * close).round(2),
        "ignore": np.zeros(rows),
    }
    return _as_dataset_table(CANDLES, columns)


def trades_table(*, rows: int = TRADE_ROWS, days: int = TRADE_DAYS, seed: int = 2) -> pa.Table:
    """``rows`` aggregated trades with consecutive ids spread evenly over ``days``."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(days * DAY_MS / rows, rows)
    transact_ms = START_MS + np.minimum(np.cumsum(gaps), days * DAY_MS - 1).astype(np.int64)
    first_trade = 5_000_000_000 + np.cumsum(rng.integers(1, 4, rows))
    columns = {
        "agg_trade_id": 2_500_000_000 + np.arange(rows, dtype=np.int64),
        "price": (60_000 + np.cumsum(rng.normal(0, 0.8, rows))).round(1),
        "quantity": rng.gamma(1.2, 0.05, rows).round(3),
        "first_trade_id": first_trade,
        "last_trade_id": first_trade + rng.integers(0, 3, rows),
        "transact_time": transact_ms,
        "is_buyer_maker": rng.random(rows) < 0.5,
    }
    return _as_dataset_table(AGG_TRADES, columns)


def _as_dataset_table(ds: Dataset, columns: dict[str, np.ndarray]) -> pa.Table:
    arrays = [pa.array(columns[field.name]).cast(field.type) for field in ds.arrow_schema]
    return pa.Table.from_arrays(arrays, schema=ds.arrow_schema)


def _changed(table: pa.Table, column: str, every: int) -> pa.Table:
    """The table with every ``every``-th value of ``column`` nudged (rows that must be replaced)."""
    values = table[column].to_numpy().copy()
    values[::every] += 0.5
    index = table.schema.get_field_index(column)
    return table.set_column(index, table.schema.field(index), pa.array(values))


class _Scratch:
    """A temporary directory with a fresh sub-directory per timed run."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ingmon-bench-"))
        self._counter = 0

    def fresh(self) -> Path:
        self._counter += 1
        path = self.root / f"run{self._counter}"
        path.mkdir()
        return path

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def bench_dataset(
    title: str,
    ds: Dataset,
    table: pa.Table,
    *,
    param: str | None,
    day_start_ms: int,
    repeat: int,
) -> list[Case]:
    """Raw writes, upserts (empty, no-op, overlapping merge) and one-day reads of one dataset."""
    scratch = _Scratch()
    rows = table.num_rows
    state: dict[str, Path] = {}

    def fresh_dir() -> None:
        state["dir"] = scratch.fresh()

    def raw(**options: Any) -> Callable[[], None]:
        return lambda: pq.write_table(table, state["dir"] / "raw.parquet", **options)

    def upsert_into(lake_dir: Path, rows_table: pa.Table) -> None:
        Lake(lake_dir).upsert(ds, rows_table, symbol=SYMBOL, param=param)

    try:
        cases = [
            Case(
                RAW_LAKE_OPTIONS,
                rows,
                median_seconds(raw(**write_options(table.schema)), repeat=repeat, setup=fresh_dir),
            ),
            Case(
                f"raw write_table {COMPRESSION}, defaults",
                rows,
                median_seconds(raw(compression=COMPRESSION), repeat=repeat, setup=fresh_dir),
            ),
            Case(
                "raw write_table snappy, defaults",
                rows,
                median_seconds(raw(), repeat=repeat, setup=fresh_dir),
            ),
            Case(
                "upsert into empty lake",
                rows,
                median_seconds(
                    lambda: upsert_into(state["dir"], table), repeat=repeat, setup=fresh_dir
                ),
            ),
        ]
        full = scratch.fresh()
        upsert_into(full, table)
        cases.append(
            Case(
                "re-upsert same rows (no-op)",
                rows,
                median_seconds(lambda: upsert_into(full, table), repeat=repeat),
            )
        )
        # Stored: the first two thirds. Incoming: the last two thirds, so half of it overlaps
        # (1 in 100 overlapping rows changed) and half is new.
        third = rows // 3
        stored = table.slice(0, 2 * third)
        incoming = _changed(table.slice(third), table.column_names[1], 100)
        template = scratch.fresh()
        upsert_into(template, stored)

        def copy_template() -> None:
            state["dir"] = scratch.fresh()
            shutil.copytree(template, state["dir"], dirs_exist_ok=True, symlinks=True)

        cases.append(
            Case(
                "overlapping merge (½ new, ½ stored)",
                incoming.num_rows,
                median_seconds(
                    lambda: upsert_into(state["dir"], incoming), repeat=repeat, setup=copy_template
                ),
            )
        )
        lake = Lake(full)
        day_end_ms = day_start_ms + DAY_MS - 1
        day_rows = lake.read(ds, symbols=SYMBOL, param=param, start=day_start_ms, end=day_end_ms)
        cases.append(
            Case(
                "read one day: Lake.read (DuckDB)",
                day_rows.num_rows,
                median_seconds(
                    lambda: lake.read(
                        ds, symbols=SYMBOL, param=param, start=day_start_ms, end=day_end_ms
                    ),
                    repeat=repeat,
                ),
            )
        )
        cases.append(
            Case(
                "read one day: Lake.scan (polars)",
                day_rows.num_rows,
                median_seconds(
                    lambda: lake.scan(
                        ds, symbols=SYMBOL, param=param, start=day_start_ms, end=day_end_ms
                    ).collect(),
                    repeat=repeat,
                ),
            )
        )
        files = lake.files(ds, symbol=SYMBOL, param=param, start=day_start_ms, end=day_end_ms)
        time_type = ds.arrow_schema.field(ds.time_column).type
        day_filter = [
            (ds.time_column, ">=", pa.scalar(day_start_ms, time_type)),
            (ds.time_column, "<=", pa.scalar(day_end_ms, time_type)),
        ]
        cases.append(
            Case(
                "read one day: raw pq.read_table + filter",
                day_rows.num_rows,
                median_seconds(
                    lambda: [pq.read_table(path, filters=day_filter) for path in files],
                    repeat=repeat,
                ),
            )
        )
    finally:
        scratch.close()
    print_table(title, cases, baseline=RAW_LAKE_OPTIONS)
    seconds = {case.name: case.seconds for case in cases}
    for floor in (RAW_LAKE_OPTIONS, f"raw write_table {COMPRESSION}, defaults"):
        ratio = seconds["upsert into empty lake"] / seconds[floor]
        print(f"upsert into empty lake ÷ {floor}: {ratio:.2f} (aim: within 2)")
    return cases


def main() -> None:
    """Print the lake tables: 1m candles (90 days) and 2,000,000 aggregated trades (5 days)."""
    bench_dataset(
        f"lake: 1m candles, {CANDLE_DAYS} days × 1 symbol",
        CANDLES,
        candles_table(),
        param="1m",
        day_start_ms=START_MS + 45 * DAY_MS,
        repeat=7,
    )
    bench_dataset(
        f"lake: {TRADE_ROWS:,} aggregated trades over {TRADE_DAYS} days",
        AGG_TRADES,
        trades_table(),
        param=None,
        day_start_ms=START_MS + 2 * DAY_MS,
        repeat=3,
    )


if __name__ == "__main__":
    main()

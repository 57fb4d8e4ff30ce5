"""The lake in one process: upsert semantics against a dict model, layout, reads and pruning."""

from __future__ import annotations

import calendar
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingmon.errors import CorruptPartitionError
from ingmon.lake import Lake
from ingmon.schema import AGG_TRADES, CANDLES, FUNDING, INGEST_LOG, Dataset
from ingmon.times import to_ms

SYMBOL = "BTCUSDT"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
JAN_2026_MS = calendar.timegm((2026, 1, 1, 0, 0, 0)) * 1000
JAN_2024_MS = calendar.timegm((2024, 1, 1, 0, 0, 0)) * 1000


# ---- helpers ---------------------------------------------------------------------------------


def utc(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def bucket_label(ms: int, bucket: str) -> str:
    """Partition label computed with calendar arithmetic, independently of the lake's numpy."""
    moment = utc(ms)
    if bucket == "day":
        return f"{bucket}={moment:%Y-%m-%d}"
    if bucket == "month":
        return f"{bucket}={moment:%Y-%m}"
    return f"{bucket}={moment:%Y}"


def canonical(value: Any) -> Any:
    """A comparable form: floats by repr (NaN == NaN, -0.0 != 0.0), datetimes as epoch ms."""
    if isinstance(value, datetime):
        return to_ms(value)
    if isinstance(value, float):
        return repr(value)
    return value


def same_value(a: Any, b: Any) -> bool:
    """The lake's notion of an unchanged value: equal, both null, or both NaN."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return bool(a == b)


def table_of(ds: Dataset, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ds.arrow_schema)


def lake_rows(lake: Lake, ds: Dataset, param: str | None) -> list[tuple[Any, ...]]:
    table = lake.read(ds, symbols=SYMBOL, param=param)
    return [tuple(canonical(row[n]) for n in ds.column_names) for row in table.to_pylist()]


def snapshot(root: Path) -> dict[str, tuple[int, int, str | None]]:
    """Inode, mtime and link target of every path under ``root`` (directories included)."""
    found = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        target = os.readlink(path) if path.is_symlink() else None
        found[str(path.relative_to(root))] = (stat.st_ino, stat.st_mtime_ns, target)
    return found


# ---- the model: a dict per key, last write wins ------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How a test slot (0..SLOTS-1) becomes a row of one dataset."""

    ds: Dataset
    param: str | None
    bucket: str
    key_of: Callable[[int], int]
    time_of: Callable[[int], int]
    values: st.SearchStrategy[dict[str, Any]]
    derived: Callable[[int, dict[str, Any]], dict[str, Any]]

    def row(self, slot: int, values: dict[str, Any]) -> dict[str, Any]:
        return {**self.derived(slot, values), **values}


SLOTS = 24
FLOATS = st.sampled_from([0.0, -0.0, 1.5, -2.25, math.nan, 1e300, 5e-324])

SPECS = {
    # 1m candles, month partitions: slot s opens at 2026-01-01 + 6 days·s + s minutes (5 months)
    "candles": Spec(
        ds=CANDLES,
        param="1m",
        bucket="month",
        key_of=lambda s: JAN_2026_MS + s * 6 * DAY_MS + s * 60_000,
        time_of=lambda s: JAN_2026_MS + s * 6 * DAY_MS + s * 60_000,
        values=st.fixed_dictionaries(
            {"open": FLOATS, "close": FLOATS, "volume": FLOATS, "trade_count": st.integers(0, 2)}
        ),
        derived=lambda s, v: {
            "open_time": JAN_2026_MS + s * 6 * DAY_MS + s * 60_000,
            "high": 2.0,
            "low": 1.0,
            "close_time": JAN_2026_MS + s * 6 * DAY_MS + s * 60_000 + 59_999,
            "quote_volume": 3.0,
            "taker_buy_volume": 0.5,
            "taker_buy_quote_volume": 1.5,
            "ignore": 0.0,
        },
    ),
    # funding, year partitions, nullable columns: slot s settles at 2024-01-01 + 50 days·s
    "funding": Spec(
        ds=FUNDING,
        param=None,
        bucket="year",
        key_of=lambda s: JAN_2024_MS + s * 50 * DAY_MS,
        time_of=lambda s: JAN_2024_MS + s * 50 * DAY_MS,
        values=st.fixed_dictionaries(
            {
                "funding_rate": FLOATS,
                "mark_price": st.none() | FLOATS,
                "funding_interval_hours": st.none() | st.sampled_from([4, 8]),
            }
        ),
        derived=lambda s, v: {"funding_time": JAN_2024_MS + s * 50 * DAY_MS},
    ),
    # aggregated trades, day partitions, key (id) differs from time: id 7000+s at 5 h·s
    "agg_trades": Spec(
        ds=AGG_TRADES,
        param=None,
        bucket="day",
        key_of=lambda s: 7_000 + s,
        time_of=lambda s: JAN_2026_MS + s * 5 * HOUR_MS,
        values=st.fixed_dictionaries(
            {"price": FLOATS, "quantity": FLOATS, "is_buyer_maker": st.booleans()}
        ),
        derived=lambda s, v: {
            "agg_trade_id": 7_000 + s,
            "first_trade_id": 2 * (7_000 + s),
            "last_trade_id": 2 * (7_000 + s) + 1,
            "transact_time": JAN_2026_MS + s * 5 * HOUR_MS,
        },
    ),
}


@dataclass
class Expected:
    rows: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    deleted: int = 0
    batch_duplicates: int = 0


def apply_to_model(
    spec: Spec,
    model: dict[int, dict[str, Any]],
    batch: list[tuple[int, dict[str, Any]]],
    window: tuple[int, int] | None,
) -> tuple[Expected, set[str]]:
    """Brute-force upsert on a dict; returns the counts and the labels of changed partitions."""
    last: dict[int, dict[str, Any]] = {}
    for slot, values in batch:
        last[slot] = spec.row(slot, values)
    expected = Expected(rows=len(last), batch_duplicates=len(batch) - len(last))
    changed: set[str] = set()
    if window is not None:
        for slot in list(model):
            if window[0] <= spec.time_of(slot) <= window[1] and slot not in last:
                del model[slot]
                expected.deleted += 1
                changed.add(bucket_label(spec.time_of(slot), spec.bucket))
    for slot, row in last.items():
        if slot not in model:
            expected.inserted += 1
        elif all(same_value(model[slot][n], row[n]) for n in spec.ds.column_names):
            expected.unchanged += 1
            continue
        else:
            expected.replaced += 1
        model[slot] = row
        changed.add(bucket_label(spec.time_of(slot), spec.bucket))
    return expected, changed


def model_rows(spec: Spec, model: dict[int, dict[str, Any]]) -> list[tuple[Any, ...]]:
    ordered = sorted(model.values(), key=lambda row: row[spec.ds.key])
    return [tuple(canonical(row[n]) for n in spec.ds.column_names) for row in ordered]


def batches_for(spec: Spec) -> st.SearchStrategy[Any]:
    offsets = st.sampled_from([-1, 0, 1])
    window = st.none() | st.tuples(
        st.integers(0, SLOTS - 1), st.integers(0, SLOTS - 1), offsets, offsets
    )
    batch = st.lists(st.tuples(st.integers(0, SLOTS - 1), spec.values), max_size=12)
    return st.lists(st.tuples(batch, window), min_size=1, max_size=5)


def check_files(lake: Lake, spec: Spec) -> None:
    """Every data file holds keys strictly ascending, each row in its own time bucket."""
    for path in lake.files(spec.ds, symbol=SYMBOL, param=spec.param):
        table = pq.read_table(path)
        keys = [canonical(k) for k in table[spec.ds.key].to_pylist()]
        assert keys == sorted(set(keys)), path
        labels = {
            bucket_label(to_ms(t), spec.bucket) for t in table[spec.ds.time_column].to_pylist()
        }
        assert labels <= {path.parent.name}, path


def run_model(spec: Spec, steps: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lake = Lake(root)
        model: dict[int, dict[str, Any]] = {}
        for batch, window_slots in steps:
            window = None
            if window_slots is not None:
                first, last, start_offset, end_offset = window_slots
                low, high = sorted((first, last))
                window = (spec.time_of(low) + start_offset, spec.time_of(high) + end_offset)
            table = table_of(spec.ds, [spec.row(slot, values) for slot, values in batch])
            expected, changed = apply_to_model(spec, model, batch, window)

            result = lake.upsert(
                spec.ds, table, symbol=SYMBOL, param=spec.param, replace_range=window
            )
            assert (
                Expected(
                    result.rows,
                    result.inserted,
                    result.replaced,
                    result.unchanged,
                    result.deleted,
                    result.batch_duplicates,
                )
                == expected
            )
            assert {p.parent.name for p in result.files_written} == changed
            assert lake_rows(lake, spec.ds, spec.param) == model_rows(spec, model)
            check_files(lake, spec)

            before = snapshot(root)
            again = lake.upsert(
                spec.ds, table, symbol=SYMBOL, param=spec.param, replace_range=window
            )
            assert again.files_written == []
            assert (again.inserted, again.replaced, again.deleted) == (0, 0, 0)
            assert again.unchanged == expected.rows
            assert snapshot(root) == before


MODEL_SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@MODEL_SETTINGS
@given(steps=batches_for(SPECS["candles"]))
def test_upsert_matches_last_write_wins_model_candles(steps: list[Any]) -> None:
    """Random candle batches (month partitions) leave exactly the dict model's rows and counts."""
    run_model(SPECS["candles"], steps)


@MODEL_SETTINGS
@given(steps=batches_for(SPECS["funding"]))
def test_upsert_matches_last_write_wins_model_funding(steps: list[Any]) -> None:
    """Random funding batches with nulls and NaN (year partitions) follow the dict model."""
    run_model(SPECS["funding"], steps)


@MODEL_SETTINGS
@given(steps=batches_for(SPECS["agg_trades"]))
def test_upsert_matches_last_write_wins_model_agg_trades(steps: list[Any]) -> None:
    """Random trade batches keyed by id (day partitions) follow the dict model."""
    run_model(SPECS["agg_trades"], steps)


# ---- hand-worked upsert cases -----------------------------------------------------------------


def candle(open_ms: int, close: float) -> dict[str, Any]:
    return SPECS["candles"].row(
        0, {"open": 1.0, "close": close, "volume": 1.0, "trade_count": 1}
    ) | {
        "open_time": open_ms,
        "close_time": open_ms + 59_999,
    }


def test_batch_duplicates_last_row_wins(tmp_path: Path) -> None:
    """Within one batch the last row of a key is stored and the earlier ones are counted."""
    lake = Lake(tmp_path)
    t = JAN_2026_MS
    batch = [candle(t, 1.0), candle(t + 60_000, 2.0), candle(t, 3.0), candle(t, 4.0)]
    result = lake.upsert(CANDLES, table_of(CANDLES, batch), symbol=SYMBOL, param="1m")
    assert (result.rows, result.inserted, result.batch_duplicates) == (2, 2, 2)
    stored = lake.read(CANDLES, symbols=SYMBOL, param="1m", columns=["open_time", "close"])
    assert stored["close"].to_pylist() == [4.0, 2.0]


def test_conflicting_row_is_replaced_and_counted(tmp_path: Path) -> None:
    """A different row for a stored key replaces it; equal rows count as unchanged."""
    lake = Lake(tmp_path)
    t = JAN_2026_MS
    lake.upsert(
        CANDLES,
        table_of(CANDLES, [candle(t, 1.0), candle(t + 60_000, 2.0)]),
        symbol=SYMBOL,
        param="1m",
    )
    result = lake.upsert(
        CANDLES,
        table_of(CANDLES, [candle(t, 1.0), candle(t + 60_000, 9.0), candle(t + 120_000, 3.0)]),
        symbol=SYMBOL,
        param="1m",
    )
    assert (result.inserted, result.replaced, result.unchanged) == (1, 1, 1)
    stored = lake.read(CANDLES, symbols=SYMBOL, param="1m", columns=["close"])
    assert stored["close"].to_pylist() == [1.0, 9.0, 3.0]


def test_upsert_casts_compatible_input_and_rejects_bad_input(tmp_path: Path) -> None:
    """Int64 epoch-ms times and extra columns are accepted; missing columns or nulls are refused."""
    lake = Lake(tmp_path)
    row = candle(JAN_2026_MS, 1.0)
    loose = pa.table({**{k: [v] for k, v in row.items()}, "extra": ["x"]})  # times as int64
    assert lake.upsert(CANDLES, loose, symbol=SYMBOL, param="1m").inserted == 1
    assert lake.read(CANDLES, symbols=SYMBOL, param="1m")["open_time"].to_pylist() == [
        datetime(2026, 1, 1, tzinfo=UTC)
    ]
    with pytest.raises(ValueError, match="missing columns close"):
        lake.upsert(CANDLES, loose.drop_columns(["close"]), symbol=SYMBOL, param="1m")
    open_index = loose.schema.get_field_index("open")
    with_null = loose.set_column(open_index, "open", pa.array([None], pa.float64()))
    with pytest.raises(ValueError, match="column open has nulls"):
        lake.upsert(CANDLES, with_null, symbol=SYMBOL, param="1m")
    with pytest.raises(ValueError, match="invalid interval '7m'"):
        lake.upsert(CANDLES, loose, symbol=SYMBOL, param="7m")


def ingest_row(batch_id: str, fetched_at: datetime) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "run_id": "run-1",
        "dataset": "candles",
        "interval": "1m",
        "first_event_time": fetched_at,
        "last_event_time": fetched_at,
        "rows_fetched": 1,
        "rows_inserted": 1,
        "rows_replaced": 0,
        "fetched_at": fetched_at,
        "written_at": fetched_at,
        "source": "rest",
        "request_cursor": "/fapi/v1/klines",
    }


def test_microsecond_time_columns_are_partitioned_and_windowed_by_their_time(
    tmp_path: Path,
) -> None:
    """ingest_log (time in µs, string key) lands in its day and answers windowed reads."""
    lake = Lake(tmp_path)
    late_november = datetime(2026, 11, 30, 23, 59, 59, 999_999, tzinfo=UTC)
    december = datetime(2026, 12, 1, tzinfo=UTC)
    rows = [ingest_row("b2", december), ingest_row("b1", late_november)]
    lake.upsert(INGEST_LOG, table_of(INGEST_LOG, rows), symbol=SYMBOL)
    days = sorted(p.name for p in (tmp_path / "ingest_log" / f"symbol={SYMBOL}").iterdir())
    assert days == ["day=2026-11-30", "day=2026-12-01"]
    window = {"start": "2026-11-30T23:59:59.999Z", "end": "2026-11-30T23:59:59.999Z"}
    assert lake.read(INGEST_LOG, symbols=SYMBOL, **window)["batch_id"].to_pylist() == ["b1"]
    assert lake.scan(INGEST_LOG, symbols=SYMBOL, **window).collect()["batch_id"].to_list() == ["b1"]
    # Rebuild December: b2 is not in the batch, so it goes; b3 comes.
    result = lake.upsert(
        INGEST_LOG,
        table_of(INGEST_LOG, [ingest_row("b3", december + timedelta(hours=1))]),
        symbol=SYMBOL,
        replace_range=(december, december + timedelta(days=1)),
    )
    assert (result.inserted, result.deleted) == (1, 1)
    assert lake.read(INGEST_LOG, symbols=SYMBOL)["batch_id"].to_pylist() == ["b1", "b3"]


# ---- layout, versions, external readers ----------------------------------------------------------


def write_days(lake: Lake, days: range, *, price: float) -> None:
    """One aggregated trade per hour of each day in ``days`` (from 2026-01-01), id = hour index."""
    hours = [d * 24 + h for d in days for h in range(24)]
    rows = [
        SPECS["agg_trades"].derived(0, {})
        | {
            "agg_trade_id": hour,
            "transact_time": JAN_2026_MS + hour * HOUR_MS,
            "price": price,
            "quantity": 1.0,
            "is_buyer_maker": False,
        }
        for hour in hours
    ]
    lake.upsert(AGG_TRADES, table_of(AGG_TRADES, rows), symbol=SYMBOL)


def test_partition_holds_link_to_immutable_version(tmp_path: Path) -> None:
    """data.parquet is a link to a hidden version file; a rewrite adds a version, keeps the old."""
    lake = Lake(tmp_path)
    write_days(lake, range(1), price=1.0)
    part = tmp_path / "agg_trades" / f"symbol={SYMBOL}" / "day=2026-01-01"
    first = os.readlink(part / "data.parquet")
    assert first.startswith(".data.parquet.v0000000001-")
    write_days(lake, range(1), price=2.0)
    second = os.readlink(part / "data.parquet")
    assert second.startswith(".data.parquet.v0000000002-")
    assert pq.read_table(part / first)["price"].to_pylist() == [1.0] * 24  # untouched
    assert sorted(os.listdir(part)) == sorted([".lock", "data.parquet", first, second])


def test_superseded_versions_are_deleted_after_the_grace_period(tmp_path: Path) -> None:
    """With a zero grace period a rewrite deletes the superseded version (and orphans)."""
    lake = Lake(tmp_path, version_grace_seconds=0)
    write_days(lake, range(1), price=1.0)
    part = tmp_path / "agg_trades" / f"symbol={SYMBOL}" / "day=2026-01-01"
    orphan = part / ".data.parquet.v0000000009-dead-000000000000"  # a killed writer's version
    orphan.write_bytes(b"complete but never linked")
    os.utime(orphan, (3600, 3600))  # written in 1970
    write_days(lake, range(1), price=2.0)
    current = os.readlink(part / "data.parquet")
    assert sorted(os.listdir(part)) == sorted([".lock", "data.parquet", current])


def test_external_readers_of_the_directory_see_each_row_once(tmp_path: Path) -> None:
    """pyarrow datasets and DuckDB/polars globs over the lake ignore versions, locks and temps."""
    lake = Lake(tmp_path)
    write_days(lake, range(3), price=1.0)
    write_days(lake, range(3), price=2.0)  # old versions stay for their grace period
    part = tmp_path / "agg_trades" / f"symbol={SYMBOL}" / "day=2026-01-02"
    (part / ".data.parquet.123-abc.tmp").write_bytes(b"PAR1 half a file")  # killed writer
    base = tmp_path / "agg_trades"

    arrow = pads.dataset(base, format="parquet", partitioning="hive").to_table()
    assert arrow.num_rows == 72
    assert set(arrow["price"].to_pylist()) == {2.0}
    glob = str(base / "**" / "*.parquet")
    counted = duckdb.sql(
        f"SELECT count(*), count(DISTINCT agg_trade_id), min(price) FROM "
        f"read_parquet('{glob}', hive_partitioning = true)"
    ).fetchall()
    assert counted == [(72, 72, 2.0)]
    assert pl.scan_parquet(glob, hive_partitioning=True).collect().height == 72


def test_plain_data_file_of_an_older_lake_is_read_and_upgraded(tmp_path: Path) -> None:
    """A partition holding a plain data.parquet is read, merged, and becomes a versioned link."""
    part = tmp_path / "agg_trades" / f"symbol={SYMBOL}" / "day=2026-01-01"
    part.mkdir(parents=True)
    old_row = SPECS["agg_trades"].row(0, {"price": 5.0, "quantity": 1.0, "is_buyer_maker": True})
    pq.write_table(table_of(AGG_TRADES, [old_row]), part / "data.parquet")
    lake = Lake(tmp_path)
    assert lake.read(AGG_TRADES, symbols=SYMBOL)["price"].to_pylist() == [5.0]
    new_row = SPECS["agg_trades"].row(1, {"price": 6.0, "quantity": 1.0, "is_buyer_maker": True})
    result = lake.upsert(AGG_TRADES, table_of(AGG_TRADES, [new_row]), symbol=SYMBOL)
    assert (result.inserted, result.unchanged) == (1, 0)
    assert (part / "data.parquet").is_symlink()
    assert lake.read(AGG_TRADES, symbols=SYMBOL)["price"].to_pylist() == [5.0, 6.0]


# ---- reads ------------------------------------------------------------------------------------


@pytest.fixture
def two_symbol_lake(tmp_path: Path) -> Lake:
    """BTCUSDT: 1h candles of Jan–Mar 2026 (close = hour index); ETHUSDT: January only."""
    lake = Lake(tmp_path)
    for symbol, hours in (("BTCUSDT", range(90 * 24)), ("ETHUSDT", range(31 * 24))):
        rows = [
            candle(JAN_2026_MS + h * HOUR_MS, float(h))
            | {"close_time": JAN_2026_MS + h * HOUR_MS + HOUR_MS - 1}
            for h in hours
        ]
        lake.upsert(CANDLES, table_of(CANDLES, rows), symbol=symbol, param="1h")
    return lake


def test_read_filters_by_symbol_and_inclusive_time_range(two_symbol_lake: Lake) -> None:
    """read() returns symbol, interval, columns for start <= open_time <= end, sorted."""
    start = datetime(2026, 1, 31, 22, tzinfo=UTC)
    table = two_symbol_lake.read(
        CANDLES, param="1h", start=start, end="2026-02-01T01:00:00Z", columns=["close"]
    )
    assert table.column_names == ["symbol", "interval", "close"]
    first_hour = 30 * 24 + 22
    assert table.to_pylist() == [
        {"symbol": "BTCUSDT", "interval": "1h", "close": float(first_hour + i)} for i in range(4)
    ] + [{"symbol": "ETHUSDT", "interval": "1h", "close": float(first_hour + i)} for i in range(2)]
    only_eth = two_symbol_lake.read(CANDLES, symbols=["ETHUSDT"], param="1h")
    assert set(only_eth["symbol"].to_pylist()) == {"ETHUSDT"}
    assert only_eth.num_rows == 31 * 24


def test_scan_returns_the_same_rows_as_read(two_symbol_lake: Lake) -> None:
    """The polars scan and the DuckDB read agree on columns and rows for a window."""
    window = {"start": "2026-02-27T12:00:00Z", "end": JAN_2026_MS + 60 * DAY_MS}
    via_duckdb = two_symbol_lake.read(CANDLES, param="1h", **window)
    via_polars = two_symbol_lake.scan(CANDLES, param="1h", **window).collect()
    assert via_polars.columns == via_duckdb.column_names
    assert via_polars.to_arrow().cast(via_duckdb.schema).equals(via_duckdb)
    assert via_duckdb.num_rows == 60 + 1  # Feb 27 12:00 .. Mar 2 00:00, both ends included


def test_read_sorts_by_key_when_partitions_are_not_in_key_order(tmp_path: Path) -> None:
    """Trade ids that run backwards across days still come back sorted by id (key not selected)."""
    lake = Lake(tmp_path)
    rows = [
        SPECS["agg_trades"].derived(0, {})
        | {
            "agg_trade_id": trade_id,
            "transact_time": JAN_2026_MS + day * DAY_MS,
            "price": float(trade_id),
            "quantity": 1.0,
            "is_buyer_maker": False,
        }
        for trade_id, day in ((30, 0), (31, 0), (10, 1), (20, 2), (21, 2))
    ]
    lake.upsert(AGG_TRADES, table_of(AGG_TRADES, rows), symbol=SYMBOL)
    prices = lake.read(AGG_TRADES, symbols=SYMBOL, columns=["price"])
    assert prices.column_names == ["symbol", "price"]
    assert prices["price"].to_pylist() == [10.0, 20.0, 21.0, 30.0, 31.0]


def test_reads_of_nothing_have_the_full_schema(two_symbol_lake: Lake) -> None:
    """An unknown symbol or an empty window gives zero rows with the usual columns."""
    empty = two_symbol_lake.read(CANDLES, symbols="XRPUSDT", param="1h")
    assert empty.num_rows == 0
    assert empty.column_names == ["symbol", "interval", *CANDLES.column_names]
    scanned = two_symbol_lake.scan(CANDLES, symbols="XRPUSDT", param="1h").collect()
    assert (scanned.height, scanned.columns) == (0, empty.column_names)


def test_files_prunes_partitions_to_the_window(two_symbol_lake: Lake) -> None:
    """files() lists only the partitions that meet [start, end] (day and year buckets)."""
    lake = Lake(two_symbol_lake.root / "trades")
    write_days(lake, range(5), price=1.0)
    days = lake.files(
        AGG_TRADES,
        symbol=SYMBOL,
        start="2026-01-02T23:59:59.999Z",
        end=datetime(2026, 1, 4, tzinfo=UTC),
    )
    assert [p.parent.name for p in days] == ["day=2026-01-02", "day=2026-01-03", "day=2026-01-04"]
    assert [p.parent.name for p in two_symbol_lake.files(CANDLES, symbol=SYMBOL, param="1h")] == [
        "year=2026"
    ]


def test_reads_never_open_partitions_outside_the_window(tmp_path: Path) -> None:
    """With a corrupt file in day 1, reads of days 2–3 (DuckDB, polars) still work: pruned."""
    lake = Lake(tmp_path)
    write_days(lake, range(3), price=1.0)
    day_one = lake.files(AGG_TRADES, symbol=SYMBOL, end="2026-01-01T23:59:59.999Z")
    assert len(day_one) == 1
    day_one[0].write_bytes(b"not parquet at all")
    window = {"start": "2026-01-02", "end": "2026-01-03T23:59:59.999Z"}
    assert lake.read(AGG_TRADES, symbols=SYMBOL, **window).num_rows == 48
    assert lake.scan(AGG_TRADES, symbols=SYMBOL, **window).collect().height == 48
    with pytest.raises(CorruptPartitionError):
        lake.read(AGG_TRADES, symbols=SYMBOL)  # the corrupt day is read when asked for


def test_read_lists_again_when_a_listed_version_was_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version deleted between listing and reading (grace period over) makes read() list again."""
    lake = Lake(tmp_path, version_grace_seconds=0)
    write_days(lake, range(1), price=1.0)
    stale = lake.files(AGG_TRADES, symbol=SYMBOL)
    write_days(lake, range(1), price=2.0)  # grace 0: the first version is deleted
    assert not stale[0].exists()
    real_files = Lake.files
    calls = []

    def first_call_stale(self: Lake, *args: Any, **kwargs: Any) -> list[Path]:
        calls.append(1)
        return stale if len(calls) == 1 else real_files(self, *args, **kwargs)

    monkeypatch.setattr(Lake, "files", first_call_stale)
    assert set(lake.read(AGG_TRADES, symbols=SYMBOL)["price"].to_pylist()) == {2.0}
    assert len(calls) == 2


def test_key_range_reads_footers(two_symbol_lake: Lake) -> None:
    """key_range gives rows, first and last key of a series."""
    rows, first, last = two_symbol_lake.key_range(CANDLES, symbol="BTCUSDT", param="1h") or (
        0,
        0,
        0,
    )
    assert (rows, first, last) == (90 * 24, JAN_2026_MS, JAN_2026_MS + (90 * 24 - 1) * HOUR_MS)
    assert two_symbol_lake.key_range(CANDLES, symbol="XRPUSDT", param="1h") is None
    with pytest.raises(ValueError, match="integer or time key"):
        two_symbol_lake.key_range(INGEST_LOG, symbol="BTCUSDT")


def test_duckdb_read_is_independent_of_the_machine_time_zone(
    two_symbol_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read in a process whose local zone is not UTC selects the same UTC window."""
    monkeypatch.setenv("TZ", "America/New_York")
    import ingmon.lake as lake_module

    monkeypatch.setattr(lake_module, "_duckdb_local", lake_module._DuckDBLocal())
    table = two_symbol_lake.read(
        CANDLES,
        symbols="BTCUSDT",
        param="1h",
        start="2026-01-01T05:00:00Z",
        end="2026-01-01T05:00:00Z",
    )
    assert table["close"].to_pylist() == [5.0]


# ---- time conversion ----------------------------------------------------------------------------


@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_to_ms_is_exact_for_any_datetime(moment: datetime) -> None:
    """to_ms floors to the millisecond without float error (reference: integer calendar math)."""
    seconds = calendar.timegm(moment.utctimetuple())
    assert to_ms(moment) == seconds * 1000 + moment.microsecond // 1000
    assert to_ms(moment.replace(tzinfo=None)) == to_ms(moment)
    assert to_ms(moment.isoformat().replace("+00:00", "Z")) == to_ms(moment)


def test_to_ms_accepts_offsets_and_integers_and_refuses_bools() -> None:
    """Offsets are honoured, numpy and Python ints pass through, a bool is not a time."""
    plus_two = datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert to_ms(plus_two) == JAN_2026_MS
    assert to_ms("2026-01-01T02:00:00+02:00") == JAN_2026_MS
    assert to_ms(np.int64(JAN_2026_MS)) == JAN_2026_MS  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        to_ms(True)
    with pytest.raises(TypeError):
        to_ms(1.5)  # type: ignore[arg-type]

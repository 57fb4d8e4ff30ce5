"""Damaged partitions: reads name the unreadable file, find_corrupt lists them, quarantine and
upserts get the lake readable again.

Each damage is what an operator meets: a version file cut short (a full disk, a killed copy),
overwritten with garbage, or left at zero bytes.
"""

from __future__ import annotations

import calendar
import os
import pickle
import random
import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from ingmon import CorruptPartition, CorruptPartitionError, DataIntegrityError, Lake
from ingmon.schema import AGG_TRADES, CANDLES

SYMBOL = "BTCUSDT"
OTHER_SYMBOL = "ETHUSDT"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
DAYS = 3  # 2026-01-01 .. 2026-01-03, one trade partition each
DAMAGED_DAY = 1  # 2026-01-02


def utc_ms(year: int, month: int = 1, day: int = 1) -> int:
    return calendar.timegm((year, month, day, 0, 0, 0)) * 1000


JAN_2026_MS = utc_ms(2026)


# ---- data and damage ---------------------------------------------------------------------------


def trades(days: range, *, price: float, step_hours: int = 1) -> pa.Table:
    """One trade every ``step_hours`` of each day (from 2026-01-01), id = the hour index."""
    hours = [d * 24 + h for d in days for h in range(0, 24, step_hours)]
    return pa.Table.from_pydict(
        {
            "agg_trade_id": hours,
            "price": [price + hour for hour in hours],
            "quantity": [1.0] * len(hours),
            "first_trade_id": [10 * hour for hour in hours],
            "last_trade_id": [10 * hour + 1 for hour in hours],
            "transact_time": [JAN_2026_MS + hour * HOUR_MS for hour in hours],
            "is_buyer_maker": [hour % 2 == 0 for hour in hours],
        },
        schema=AGG_TRADES.arrow_schema,
    )


def candles(start_ms: int, count: int, step_ms: int) -> pa.Table:
    opens = [start_ms + i * step_ms for i in range(count)]
    prices = [100.0 + i for i in range(count)]
    columns: dict[str, list[object]] = {
        "open_time": opens,
        "close_time": [t + step_ms - 1 for t in opens],
        "trade_count": [1] * count,
    }
    for name in CANDLES.column_names:
        columns.setdefault(name, prices)
    return pa.Table.from_pydict(columns, schema=CANDLES.arrow_schema)


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def garbage(data: bytes) -> bytes:
    return random.Random(len(data)).randbytes(len(data))


def zero_length(data: bytes) -> bytes:
    return b""


DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "truncated": truncate,
    "garbage": garbage,
    "zero-length": zero_length,
}


def damage(version: Path, how: Callable[[bytes], bytes]) -> None:
    """Replace a version file's bytes at once (a concurrent reader never sees a half copy)."""
    spare = version.with_name(version.name + ".damage")
    spare.write_bytes(how(version.read_bytes()))
    os.replace(spare, version)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """Trades of two symbols over three days (day buckets), 1m candles over two months."""
    lake = Lake(tmp_path)
    lake.upsert(AGG_TRADES, trades(range(DAYS), price=1.0), symbol=SYMBOL)
    lake.upsert(AGG_TRADES, trades(range(DAYS), price=5.0), symbol=OTHER_SYMBOL)
    lake.upsert(CANDLES, candles(JAN_2026_MS, 2 * 31 * 24, HOUR_MS), symbol=SYMBOL, param="1m")
    return lake


def day_version(lake: Lake, day: int = DAMAGED_DAY, symbol: str = SYMBOL) -> Path:
    """The current version file of one trades day, found by its calendar name."""
    directory = lake.root / "agg_trades" / f"symbol={symbol}" / f"day=2026-01-{day + 1:02d}"
    target = os.readlink(directory / "data.parquet")
    return directory / target


def damaged_lake(lake: Lake, kind: str) -> Path:
    version = day_version(lake)
    damage(version, DAMAGES[kind])
    return version


def assert_names_day(record: CorruptPartition | CorruptPartitionError, version: Path) -> None:
    """The record names the damaged version, its partition and the day's whole range."""
    assert record.dataset == "agg_trades"
    assert record.symbol == SYMBOL
    assert record.param is None
    assert record.version == version
    assert record.directory == version.parent
    assert record.directory.name == "day=2026-01-02"
    assert record.start_ms == utc_ms(2026, 1, 2)
    assert record.end_ms == utc_ms(2026, 1, 3) - 1


def trade_ids(table: pa.Table | pl.DataFrame) -> list[int]:
    if isinstance(table, pl.DataFrame):
        return list(table["agg_trade_id"].to_list())
    return list(table["agg_trade_id"].to_pylist())


def ids_of_days(days: list[int]) -> list[int]:
    return [d * 24 + h for d in days for h in range(24)]


KINDS = pytest.mark.parametrize("kind", list(DAMAGES))


# ---- reads -------------------------------------------------------------------------------------


@KINDS
def test_read_raises_corrupt_partition_error_naming_the_file(lake: Lake, kind: str) -> None:
    """Lake.read of a series with a damaged version raises CorruptPartitionError naming it."""
    version = damaged_lake(lake, kind)
    with pytest.raises(CorruptPartitionError) as caught:
        lake.read(AGG_TRADES, symbols=SYMBOL)
    error = caught.value
    assert isinstance(error, DataIntegrityError)
    assert_names_day(error, version)
    assert_names_day(error.partition, version)
    message = str(error)
    assert "\n" not in message
    assert str(version) in message and "day=2026-01-02" in message
    assert isinstance(error.__cause__, duckdb.Error)  # the engine's error, kept as the cause


@KINDS
def test_reads_that_prune_the_damaged_partition_still_work(lake: Lake, kind: str) -> None:
    """Reads of other days, and of the other symbol, are not affected by the damaged day."""
    damaged_lake(lake, kind)
    window = {"start": utc_ms(2026, 1, 3), "end": utc_ms(2026, 1, 4) - 1}
    assert trade_ids(lake.read(AGG_TRADES, symbols=SYMBOL, **window)) == ids_of_days([2])
    assert trade_ids(lake.scan(AGG_TRADES, symbols=SYMBOL, **window).collect()) == ids_of_days([2])
    assert trade_ids(lake.read(AGG_TRADES, symbols=OTHER_SYMBOL)) == ids_of_days([0, 1, 2])


@KINDS
def test_read_of_several_symbols_names_the_damaged_one(lake: Lake, kind: str) -> None:
    """A read over every symbol raises for the damaged file, not a raw engine error."""
    version = damaged_lake(lake, kind)
    with pytest.raises(CorruptPartitionError) as caught:
        lake.read(AGG_TRADES)
    assert_names_day(caught.value, version)


@KINDS
def test_scan_raises_corrupt_partition_error_before_collect(lake: Lake, kind: str) -> None:
    """Lake.scan raises CorruptPartitionError itself, not a polars error at collect()."""
    version = damaged_lake(lake, kind)
    with pytest.raises(CorruptPartitionError) as caught:
        lake.scan(AGG_TRADES, symbols=SYMBOL)
    assert_names_day(caught.value, version)


@KINDS
def test_key_range_raises_corrupt_partition_error(lake: Lake, kind: str) -> None:
    """Lake.key_range raises CorruptPartitionError for an unreadable footer."""
    version = damaged_lake(lake, kind)
    with pytest.raises(CorruptPartitionError) as caught:
        lake.key_range(AGG_TRADES, symbol=SYMBOL)
    assert_names_day(caught.value, version)
    assert lake.key_range(AGG_TRADES, symbol=OTHER_SYMBOL) == (3 * 24, 0, 3 * 24 - 1)


def test_damage_inside_a_page_is_found_on_the_error_path(lake: Lake) -> None:
    """A file whose footer is sound but whose pages are garbage: read still names it."""
    version = day_version(lake)

    def scramble_pages(data: bytes) -> bytes:
        footer_bytes = int.from_bytes(data[-8:-4], "little")
        body = len(data) - 8 - footer_bytes
        return data[:4] + random.Random(7).randbytes(body - 4) + data[body:]

    damage(version, scramble_pages)
    pq.read_metadata(version)  # really: the footer still parses
    with pytest.raises(CorruptPartitionError) as caught:
        lake.read(AGG_TRADES, symbols=SYMBOL)
    assert_names_day(caught.value, version)
    assert lake.find_corrupt(AGG_TRADES) == []  # footers only
    assert [p.version for p in lake.find_corrupt(AGG_TRADES, deep=True)] == [version]


def test_a_dangling_link_is_reported_as_a_missing_version(lake: Lake) -> None:
    """A data.parquet link whose version file was deleted by hand is a damaged partition."""
    version = day_version(lake)
    version.unlink()
    with pytest.raises(CorruptPartitionError, match="missing") as caught:
        lake.read(AGG_TRADES, symbols=SYMBOL)
    assert_names_day(caught.value, version)
    [found] = lake.find_corrupt(AGG_TRADES, symbol=SYMBOL)
    assert found.version == version
    lake.quarantine(found)
    assert trade_ids(lake.read(AGG_TRADES, symbols=SYMBOL)) == ids_of_days([0, 2])


def test_the_error_survives_pickling(lake: Lake) -> None:
    """CorruptPartitionError crosses a process boundary with its record (process pools)."""
    version = damaged_lake(lake, "garbage")
    with pytest.raises(CorruptPartitionError) as caught:
        lake.read(AGG_TRADES, symbols=SYMBOL)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.partition == caught.value.partition
    assert str(copy) == str(caught.value)
    assert_names_day(copy, version)


# ---- find_corrupt ------------------------------------------------------------------------------


def test_find_corrupt_on_a_sound_lake_is_empty(lake: Lake) -> None:
    """Nothing is reported when every version reads."""
    assert lake.find_corrupt(AGG_TRADES) == []
    assert lake.find_corrupt(CANDLES) == []


@KINDS
def test_find_corrupt_reports_the_file_and_the_partition_range(lake: Lake, kind: str) -> None:
    """find_corrupt gives exactly the damaged version, with its day's bounds."""
    version = damaged_lake(lake, kind)
    found = lake.find_corrupt(AGG_TRADES)
    assert len(found) == 1
    assert_names_day(found[0], version)
    assert lake.find_corrupt(AGG_TRADES, symbol=OTHER_SYMBOL) == []
    assert lake.find_corrupt(AGG_TRADES, start=utc_ms(2026, 1, 3)) == []  # pruned like files()


def test_find_corrupt_reports_every_damaged_partition_at_once(lake: Lake) -> None:
    """Damage in two symbols and a month-bucketed param series: all are listed, in order."""
    lake.upsert(CANDLES, candles(JAN_2026_MS, 48, HOUR_MS), symbol=SYMBOL, param="1h")
    trades_a, trades_b = day_version(lake, 0), day_version(lake, 2, OTHER_SYMBOL)
    february = lake.files(CANDLES, symbol=SYMBOL, param="1m", start=utc_ms(2026, 2, 1))
    yearly = lake.files(CANDLES, symbol=SYMBOL, param="1h")
    for version, kind in ((trades_a, "truncated"), (trades_b, "garbage")):
        damage(version, DAMAGES[kind])
    for version in (february[0], yearly[0]):
        damage(version, zero_length)

    found = lake.find_corrupt(AGG_TRADES)
    assert [(p.symbol, p.version) for p in found] == [(SYMBOL, trades_a), (OTHER_SYMBOL, trades_b)]
    assert (found[1].start_ms, found[1].end_ms) == (utc_ms(2026, 1, 3), utc_ms(2026, 1, 4) - 1)

    by_param = {p.param: p for p in lake.find_corrupt(CANDLES, symbol=SYMBOL)}
    assert set(by_param) == {"1m", "1h"}
    month, year = by_param["1m"], by_param["1h"]
    assert month.version == february[0] and month.directory.name == "month=2026-02"
    assert (month.start_ms, month.end_ms) == (utc_ms(2026, 2, 1), utc_ms(2026, 3, 1) - 1)
    assert year.version == yearly[0] and year.directory.name == "year=2026"
    assert (year.start_ms, year.end_ms) == (utc_ms(2026), utc_ms(2027) - 1)
    assert month.reason == "empty file (0 bytes)"
    assert lake.find_corrupt(CANDLES, symbol=SYMBOL, param="1h") == [year]


# ---- quarantine --------------------------------------------------------------------------------


@KINDS
def test_quarantine_moves_the_version_aside_and_the_partition_reads_empty(
    lake: Lake, kind: str
) -> None:
    """After quarantine every read sees the damaged day as empty and the rest intact."""
    version = damaged_lake(lake, kind)
    damaged_bytes = version.read_bytes()
    [found] = lake.find_corrupt(AGG_TRADES)
    moved = lake.quarantine(found)

    assert moved == version.parent / "quarantine" / version.name
    assert moved.read_bytes() == damaged_bytes
    assert not version.exists()
    assert not os.path.lexists(version.parent / "data.parquet")
    sound = ids_of_days([0, 2])
    assert trade_ids(lake.read(AGG_TRADES, symbols=SYMBOL)) == sound
    assert trade_ids(lake.scan(AGG_TRADES, symbols=SYMBOL).collect()) == sound
    assert lake.key_range(AGG_TRADES, symbol=SYMBOL) == (48, sound[0], sound[-1])
    assert trade_ids(lake.read(AGG_TRADES, symbols=OTHER_SYMBOL)) == ids_of_days([0, 1, 2])
    assert lake.find_corrupt(AGG_TRADES) == []
    # Tools reading the lake directory directly do not see the quarantined file either.
    hive = pads.dataset(lake.root / "agg_trades", format="parquet", partitioning="hive")
    assert hive.count_rows() == 5 * 24
    pattern = str(lake.root / "agg_trades" / "**" / "*.parquet")
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchall() == [(5 * 24,)]


def test_quarantine_is_idempotent(lake: Lake) -> None:
    """A second quarantine of the same record changes nothing and returns the same path."""
    damaged_lake(lake, "garbage")
    [found] = lake.find_corrupt(AGG_TRADES)
    moved = lake.quarantine(found)
    assert lake.quarantine(found) == moved
    assert moved.exists()
    assert trade_ids(lake.read(AGG_TRADES, symbols=SYMBOL)) == ids_of_days([0, 2])


def test_quarantine_leaves_a_newer_version_alone(lake: Lake) -> None:
    """A record gone stale (the partition was rewritten since) moves only the old file."""
    version = damaged_lake(lake, "truncated")
    [found] = lake.find_corrupt(AGG_TRADES)
    lake.upsert(AGG_TRADES, trades(range(DAMAGED_DAY, DAMAGED_DAY + 1), price=9.0), symbol=SYMBOL)
    fresh = day_version(lake)
    assert fresh != version
    lake.quarantine(found)
    assert day_version(lake) == fresh
    assert trade_ids(lake.read(AGG_TRADES, symbols=SYMBOL)) == ids_of_days([0, 1, 2])


def test_quarantine_refuses_a_record_of_another_lake(lake: Lake, tmp_path: Path) -> None:
    """A record whose directory is outside this lake is a caller's mistake: ValueError."""
    damaged_lake(lake, "garbage")
    [found] = lake.find_corrupt(AGG_TRADES)
    with pytest.raises(ValueError, match="not a partition"):
        Lake(tmp_path / "elsewhere").quarantine(found)


# ---- writers -----------------------------------------------------------------------------------


@KINDS
def test_upsert_onto_a_damaged_partition_quarantines_it_and_writes_the_rows(
    lake: Lake, kind: str
) -> None:
    """An upsert into a damaged day moves the file aside; the day is exactly the new rows."""
    version = damaged_lake(lake, kind)
    batch = trades(range(DAMAGED_DAY, DAMAGED_DAY + 1), price=7.0, step_hours=3)
    result = lake.upsert(AGG_TRADES, batch, symbol=SYMBOL)

    assert result.quarantined == [version.parent / "quarantine" / version.name]
    assert result.quarantined[0].exists()
    assert (result.rows, result.inserted, result.replaced, result.deleted) == (8, 8, 0, 0)
    day = {"start": utc_ms(2026, 1, 2), "end": utc_ms(2026, 1, 3) - 1}
    assert lake.read(AGG_TRADES, symbols=SYMBOL, **day).drop_columns(["symbol"]) == batch
    assert lake.find_corrupt(AGG_TRADES) == []
    assert trade_ids(lake.read(AGG_TRADES, symbols=SYMBOL)) == sorted(
        ids_of_days([0, 2]) + batch["agg_trade_id"].to_pylist()
    )


@KINDS
def test_full_refresh_of_a_damaged_partition_equals_a_fresh_write(
    lake: Lake, kind: str, tmp_path: Path
) -> None:
    """With replace_range over the whole damaged day the lake equals one written from scratch."""
    version = damaged_lake(lake, kind)
    [found] = lake.find_corrupt(AGG_TRADES)
    refresh = trades(range(DAMAGED_DAY, DAMAGED_DAY + 1), price=3.0)
    result = lake.upsert(
        AGG_TRADES, refresh, symbol=SYMBOL, replace_range=(found.start_ms, found.end_ms)
    )
    assert result.quarantined == [version.parent / "quarantine" / version.name]
    assert result.inserted == 24

    fresh = Lake(tmp_path / "fresh")
    fresh.upsert(AGG_TRADES, trades(range(DAYS), price=1.0), symbol=SYMBOL)
    fresh.upsert(AGG_TRADES, refresh, symbol=SYMBOL)
    assert lake.read(AGG_TRADES, symbols=SYMBOL) == fresh.read(AGG_TRADES, symbols=SYMBOL)


def test_full_refresh_with_no_rows_leaves_the_damaged_partition_empty(lake: Lake) -> None:
    """A refresh that finds nothing to write (exchange has no rows) still clears the damage."""
    version = damaged_lake(lake, "garbage")
    [found] = lake.find_corrupt(AGG_TRADES)
    empty = trades(range(0), price=0.0)
    result = lake.upsert(
        AGG_TRADES, empty, symbol=SYMBOL, replace_range=(found.start_ms, found.end_ms)
    )
    assert result.quarantined == [version.parent / "quarantine" / version.name]
    assert result.files_written == []
    assert trade_ids(lake.read(AGG_TRADES, symbols=SYMBOL)) == ids_of_days([0, 2])


# ---- concurrency -------------------------------------------------------------------------------


def test_a_reader_during_quarantine_sees_the_damage_or_the_empty_day_never_a_half_state(
    lake: Lake,
) -> None:
    """Reads racing damage and quarantine get all days, a CorruptPartitionError, or the day
    gone — never another error or some of the day's rows."""
    allowed = {tuple(ids_of_days([0, 1, 2])), tuple(ids_of_days([0, 2]))}
    outcomes: dict[str, int] = {"rows": 0, "corrupt": 0, "started": 0, "done": 0}
    failures: list[BaseException] = []
    seen: set[tuple[int, ...]] = set()
    named: set[str] = set()
    stop = threading.Event()
    progress = threading.Condition()

    def reader() -> None:
        while not stop.is_set():
            with progress:
                outcomes["started"] += 1
            try:
                ids = tuple(trade_ids(lake.read(AGG_TRADES, symbols=SYMBOL)))
            except CorruptPartitionError as error:
                named.add(error.directory.name)
                outcomes["corrupt"] += 1
            except BaseException as error:  # the main thread reports it
                failures.append(error)
                return
            else:
                seen.add(ids)
                outcomes["rows"] += 1
            with progress:
                outcomes["done"] += 1
                progress.notify_all()

    def await_a_read_started_after_now() -> None:
        """Hold the damage until the reader has finished a read that began after it."""
        with progress:
            mark = outcomes["started"]
            met = progress.wait_for(lambda: outcomes["done"] > mark or bool(failures), 60)
        assert met, "the reader made no progress in 60 s"

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        # Odd rounds race the reader freely; even rounds wait until it has met the damage, so
        # every outcome is exercised however the threads happen to be scheduled.
        for round_number in range(40):
            day = trades(range(DAMAGED_DAY, DAMAGED_DAY + 1), price=float(round_number))
            lake.upsert(AGG_TRADES, day, symbol=SYMBOL)
            damage(day_version(lake), list(DAMAGES.values())[round_number % len(DAMAGES)])
            if round_number % 2 == 0:
                await_a_read_started_after_now()
            for found in lake.find_corrupt(AGG_TRADES, symbol=SYMBOL):
                lake.quarantine(found)
            if round_number % 2 == 0:
                await_a_read_started_after_now()
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not failures, failures
    assert seen <= allowed
    assert named == {"day=2026-01-02"}
    assert outcomes["rows"] > 0 and outcomes["corrupt"] > 0, outcomes

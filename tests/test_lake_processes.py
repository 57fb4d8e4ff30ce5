"""The lake across processes: readers during writes, writers killed with SIGKILL, two writers.

The test functions start this file as a script (``python test_lake_processes.py <role> …``) to get
real separate processes; the roles are at the bottom.
"""

from __future__ import annotations

import calendar
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from ingmon.lake import Lake
from ingmon.schema import CANDLES

SYMBOL = "BTCUSDT"
MINUTE_MS = 60_000
MONTH_STARTS_MS = (
    calendar.timegm((2026, 1, 1, 0, 0, 0)) * 1000,
    calendar.timegm((2026, 2, 1, 0, 0, 0)) * 1000,
)
MARCH_MS = calendar.timegm((2026, 3, 1, 0, 0, 0)) * 1000
WHOLE_WINDOW = (MONTH_STARTS_MS[0], MARCH_MS - 1)
VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume")
KILLS = 5
# The reader role's rounds (each reads with DuckDB, polars and pyarrow), and the most it may
# take while waiting to see the writer's generations change under it.
READER_ROUNDS = 30
READER_MAX_ROUNDS = 3000


# ---- generations: what a writer commits and what a reader may see ------------------------------


def generation_rows(generation: int, scale: int) -> int:
    """Rows per month partition in generation ``generation`` (varies, so sizes differ)."""
    return (100 + (generation * 7919) % 1900) * scale


def generation_table(generation: int, scale: int) -> pa.Table:
    """Both months' first N minutes, every value column equal to the generation number."""
    rows = generation_rows(generation, scale)
    open_ms = np.concatenate([start + np.arange(rows) * MINUTE_MS for start in MONTH_STARTS_MS])
    value = np.full(open_ms.size, float(generation))
    columns: dict[str, Any] = dict.fromkeys(VALUE_COLUMNS, value)
    columns |= {
        "open_time": open_ms,
        "close_time": open_ms + MINUTE_MS - 1,
        "trade_count": np.full(open_ms.size, generation),
        "taker_buy_volume": value,
        "taker_buy_quote_volume": value,
        "ignore": np.zeros(open_ms.size),
    }
    arrays = [pa.array(columns[f.name]).cast(f.type) for f in CANDLES.arrow_schema]
    return pa.Table.from_arrays(arrays, schema=CANDLES.arrow_schema)


def commit_generation(lake: Lake, generation: int, scale: int) -> None:
    """Make both partitions hold exactly this generation (rows outside it are deleted)."""
    lake.upsert(
        CANDLES,
        generation_table(generation, scale),
        symbol=SYMBOL,
        param="1m",
        replace_range=WHOLE_WINDOW,
    )


def partition_generations(table: pa.Table, scale: int) -> list[int]:
    """The generation of each month in ``table``; AssertionError if a month is not one whole
    generation (mixed values, wrong row count or wrong keys)."""
    open_ms = table["open_time"].cast(pa.int64()).to_numpy()
    found = []
    for start in MONTH_STARTS_MS:
        in_month = (open_ms >= start) & (open_ms < start + 31 * 24 * 60 * MINUTE_MS)
        month = table.filter(pa.array(in_month))
        columns = [*VALUE_COLUMNS, "trade_count"]
        values = np.unique(np.concatenate([month[n].to_numpy().astype(float) for n in columns]))
        assert values.size == 1, f"month {start}: mixed values {values[:6]}"
        generation = int(values[0])
        rows = generation_rows(generation, scale)
        expected_keys = start + np.arange(rows) * MINUTE_MS
        got_keys = month["open_time"].cast(pa.int64()).to_numpy()
        assert np.array_equal(got_keys, expected_keys), (
            f"month {start}: {got_keys.size} rows, generation {generation} has {rows}"
        )
        found.append(generation)
    return found


def read_three_ways(lake: Lake, scale: int, *, delay: float = 0.0) -> dict[str, list[int]]:
    """Generations seen by Lake.read (DuckDB), Lake.scan (polars) and plain pyarrow."""
    scan = lake.scan(CANDLES, symbols=SYMBOL, param="1m")
    time.sleep(delay)  # a LazyFrame collected later, while writers carry on
    via_pyarrow = pa.concat_tables(
        pq.read_table(path) for path in lake.files(CANDLES, symbol=SYMBOL, param="1m")
    )
    return {
        "duckdb": partition_generations(lake.read(CANDLES, symbols=SYMBOL, param="1m"), scale),
        "polars": partition_generations(scan.collect().to_arrow(), scale),
        "pyarrow": partition_generations(via_pyarrow, scale),
    }


def partition_dirs(root: Path) -> list[Path]:
    base = root / "candles" / f"symbol={SYMBOL}" / "interval=1m"
    return [base / "month=2026-01", base / "month=2026-02"]


def temp_files(root: Path) -> list[Path]:
    return [p for d in partition_dirs(root) for p in d.iterdir() if p.name.endswith(".tmp")]


def start_role(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process: subprocess.Popen[str], wanted: str) -> list[str]:
    """Lines the process printed up to and including the one starting with ``wanted``."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line.strip())
        if line.startswith(wanted):
            return seen
    _, stderr = process.communicate()
    raise AssertionError(f"{wanted!r} never printed; stdout {seen}, stderr {stderr}")


def upsert_with_timeout(lake: Lake, generation: int, scale: int, seconds: float = 30) -> None:
    """Commit a generation in a thread; fail (instead of hanging) if a stale lock blocks it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            commit_generation(lake, generation, scale)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the next write is blocked (a dead writer's lock?)"
    assert not errors, errors


# ---- tests ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_reader_in_another_process_sees_only_whole_generations(tmp_path: Path) -> None:
    """DuckDB, polars (also collected late) and pyarrow readers polling in another process while
    this one rewrites the same partitions never fail and never see a partial or mixed file."""
    scale = 1
    lake = Lake(tmp_path)
    commit_generation(lake, 1, scale)
    reader = start_role("reader", tmp_path, READER_ROUNDS, scale)
    wait_for_line(reader, "ready")
    generation = 1
    while reader.poll() is None:
        generation += 1
        commit_generation(lake, generation, scale)
    stdout, stderr = reader.communicate(timeout=60)
    assert reader.returncode == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["errors"] == []
    assert generation > 10
    for method in ("duckdb", "polars", "pyarrow"):
        assert report["reads"][method] >= READER_ROUNDS, report
        assert len(report["generations"][method]) >= 3, report  # it did overlap the writes


@pytest.mark.slow
def test_writer_killed_at_random_moments_leaves_committed_generations(tmp_path: Path) -> None:
    """SIGKILL of a writer at random moments (a random fraction into a write, timed by its own
    previous write): each partition stays a committed generation, readers ignore leftovers,
    and the next writer (despite the dead one's lock file) succeeds."""
    scale = 20  # ~40,000 rows a partition: a write takes long enough to be interrupted
    rng = random.Random(20261127)
    lake = Lake(tmp_path)
    commit_generation(lake, 1, scale)
    before = [1, 1]  # generation of each month partition
    kills_with_leftovers = 0
    for _ in range(KILLS):
        first = max(before) + 1
        writer = start_role("writer", tmp_path, first, scale)
        lines = wait_for_line(writer, "committed")
        started = time.perf_counter()
        lines += wait_for_line(writer, "committed")
        # How long a write takes here and now, so the kill lands inside the next one.
        write_seconds = time.perf_counter() - started
        time.sleep(rng.uniform(0.0, 1.0) * write_seconds)
        writer.send_signal(signal.SIGKILL)
        stdout, _ = writer.communicate(timeout=30)
        assert writer.returncode == -signal.SIGKILL
        lines += stdout.splitlines()
        printed = [int(line.split()[1]) for line in lines if line.startswith("committed")]
        kills_with_leftovers += bool(temp_files(tmp_path))

        seen = read_three_ways(lake, scale)
        for month in range(len(before)):
            # Both partitions of a printed generation are committed; the writer may have
            # committed the next one's partitions (not the printing) before the kill.
            allowed = {printed[-1], printed[-1] + 1}
            for generations in seen.values():
                assert generations[month] in allowed, (seen, before, printed)
        directory = pads.dataset(tmp_path / "candles", format="parquet", partitioning="hive")
        assert partition_generations(directory.to_table(), scale) == seen["pyarrow"]
        before = seen["pyarrow"]

    last_committed = max(before)
    upsert_with_timeout(lake, last_committed + 1, scale)
    assert read_three_ways(lake, scale)["duckdb"] == [last_committed + 1] * 2
    assert temp_files(tmp_path) == []
    print(f"{kills_with_leftovers} of {KILLS} kills left a temp file")


@pytest.mark.slow
def test_writer_killed_mid_file_leaves_old_data_and_no_blocking_lock(tmp_path: Path) -> None:
    """A writer killed while half its temp file is on disk (and holding the lock): the old data
    is intact, readers ignore the half file, the next write neither blocks nor keeps it."""
    scale = 1
    lake = Lake(tmp_path)
    commit_generation(lake, 7, scale)
    writer = start_role("stall", tmp_path, 8, scale)
    wait_for_line(writer, "stalled")
    leftovers = temp_files(tmp_path)
    assert len(leftovers) == 1
    half = leftovers[0].read_bytes()
    assert half.startswith(b"PAR1")
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(io.BytesIO(half))  # really a partial file
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=30)

    assert read_three_ways(lake, scale) == {"duckdb": [7, 7], "polars": [7, 7], "pyarrow": [7, 7]}
    directory = pads.dataset(tmp_path / "candles", format="parquet", partitioning="hive")
    assert partition_generations(directory.to_table(), scale) == [7, 7]
    upsert_with_timeout(lake, 9, scale, seconds=10)
    assert read_three_ways(lake, scale)["polars"] == [9, 9]
    assert temp_files(tmp_path) == []


@pytest.mark.slow
def test_two_writer_processes_with_disjoint_keys_lose_no_update(tmp_path: Path) -> None:
    """Two processes upserting even and odd minutes into the same two partitions at the same
    time: the lake ends with the union of both, each row as its writer last wrote it."""
    batches = 40
    go = tmp_path / "go"
    writers = [start_role("disjoint", tmp_path / "lake", parity, batches, go) for parity in (0, 1)]
    for writer in writers:
        wait_for_line(writer, "ready")
    go.touch()
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr

    stored = Lake(tmp_path / "lake").read(CANDLES, symbols=SYMBOL, param="1m")
    got = dict(
        zip(
            stored["open_time"].cast(pa.int64()).to_pylist(),
            stored["close"].to_pylist(),
            strict=True,
        )
    )
    expected = {}
    for parity in (0, 1):
        for batch in range(batches):
            for open_ms in disjoint_batch_keys(parity, batch):
                expected[open_ms] = float(1000 * parity + batch)
    assert len(got) == len(expected) == 2 * batches * 2 * 20
    assert got == expected


# ---- roles run in the child processes ---------------------------------------------------------


def disjoint_batch_keys(parity: int, batch: int) -> list[int]:
    """20 minutes of each month, all of one parity, different for every batch."""
    minutes = [batch * 40 + 2 * i + parity for i in range(20)]
    return [start + m * MINUTE_MS for start in MONTH_STARTS_MS for m in minutes]


def role_reader(root: str, rounds: str, scale: str) -> None:
    """Read ``rounds`` times, and on until every method has seen three generations and one
    of them generation 11 (at most READER_MAX_ROUNDS): progress, not a duration, so a fast
    or a loaded box only changes how long it takes."""
    lake = Lake(root)
    rng = random.Random(os.getpid())
    reads = {"duckdb": 0, "polars": 0, "pyarrow": 0}
    generations: dict[str, set[int]] = {name: set() for name in reads}
    errors: list[str] = []
    print("ready", flush=True)
    for round_number in range(READER_MAX_ROUNDS):
        overlapped = all(len(seen) >= 3 for seen in generations.values())
        if round_number >= int(rounds) and overlapped and max(generations["duckdb"]) > 10:
            break
        try:
            seen = read_three_ways(lake, int(scale), delay=rng.uniform(0, 0.01))
        except BaseException as error:  # polars panics are BaseExceptions
            errors.append(f"{type(error).__name__}: {str(error)[:300]}")
            continue
        for name, found in seen.items():
            reads[name] += 1
            generations[name].update(found)
    report = {"reads": reads, "generations": {k: sorted(v) for k, v in generations.items()}}
    print(json.dumps(report | {"errors": errors[:5]}), flush=True)


def role_writer(root: str, first: str, scale: str) -> None:
    lake = Lake(root)
    print("ready", flush=True)
    generation = int(first)
    while True:
        commit_generation(lake, generation, int(scale))
        print(f"committed {generation}", flush=True)
        generation += 1


def role_stall(root: str, generation: str, scale: str) -> None:
    """Write half of the first partition's temp file, then hang until killed."""
    real_write = pq.write_table

    def half_write(table: pa.Table, where: Any, **options: Any) -> None:
        buffer = io.BytesIO()
        real_write(table, buffer, **options)
        data = buffer.getvalue()
        with open(where, "wb") as handle:
            handle.write(data[: len(data) // 2])
        print("stalled", flush=True)
        time.sleep(600)

    pq.write_table = half_write
    commit_generation(Lake(root), int(generation), int(scale))


def role_disjoint(root: str, parity: str, batches: str, go: str) -> None:
    lake = Lake(root)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    for batch in range(int(batches)):
        keys = np.array(disjoint_batch_keys(int(parity), batch))
        table = generation_table(1, 1).slice(0, 0)
        value = float(1000 * int(parity) + batch)
        columns = {name: table[name].type for name in table.column_names}
        data = {name: np.full(keys.size, value) for name in VALUE_COLUMNS}
        data |= {
            "open_time": keys,
            "close_time": keys + MINUTE_MS - 1,
            "trade_count": np.full(keys.size, batch),
            "taker_buy_volume": np.zeros(keys.size),
            "taker_buy_quote_volume": np.zeros(keys.size),
            "ignore": np.zeros(keys.size),
        }
        rows = pa.table({name: pa.array(data[name]).cast(kind) for name, kind in columns.items()})
        lake.upsert(CANDLES, rows, symbol=SYMBOL, param="1m")


if __name__ == "__main__":
    roles = {
        "reader": role_reader,
        "writer": role_writer,
        "stall": role_stall,
        "disjoint": role_disjoint,
    }
    roles[sys.argv[1]](*sys.argv[2:])

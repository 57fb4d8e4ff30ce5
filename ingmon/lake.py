"""The Parquet lake: hive-partitioned files, atomic idempotent upserts, DuckDB/polars reads."""

from __future__ import annotations

import fcntl
import numbers
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingmon.schema import Bucket, Dataset, dataset

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Lake", "TimeLike", "UpsertResult", "to_ms"]

DATA_FILE = "data.parquet"
LOCK_FILE = ".lock"
TMP_SUFFIX = ".tmp"
COMPRESSION = "zstd"

TimeLike = datetime | int | str
_EPOCH_DAY = np.datetime64("1970-01-01", "D")


def to_ms(value: TimeLike) -> int:
    """A time as integer epoch milliseconds: datetime (naive = UTC), ISO-8601 string, or int ms."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a time")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


@dataclass
class UpsertResult:
    """What an upsert did: rows received, new, replaced (conflicting), unchanged, written files."""

    rows: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    deleted: int = 0
    batch_duplicates: int = 0
    files_written: list[Path] = field(default_factory=list)

    def add(self, other: UpsertResult) -> None:
        self.rows += other.rows
        self.inserted += other.inserted
        self.replaced += other.replaced
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.batch_duplicates += other.batch_duplicates
        self.files_written.extend(other.files_written)


def _key_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, Any]:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.to_numpy(zero_copy_only=False)


def _bucket_codes(times_ms: np.ndarray[Any, Any], bucket: Bucket) -> np.ndarray[Any, Any]:
    days = times_ms.astype("datetime64[ms]").astype("datetime64[D]")
    if bucket == "day":
        return days.astype(np.int64)
    if bucket == "month":
        return days.astype("datetime64[M]").astype(np.int64)
    return days.astype("datetime64[Y]").astype(np.int64)


def _bucket_label(code: int, bucket: Bucket) -> str:
    unit = {"day": "D", "month": "M", "year": "Y"}[bucket]
    return str(np.datetime64(int(code), unit))


def _bucket_range(start_ms: int | None, end_ms: int | None, bucket: Bucket) -> tuple[int, int]:
    lo = -(2**62) if start_ms is None else int(_bucket_codes(np.array([start_ms]), bucket)[0])
    hi = 2**62 if end_ms is None else int(_bucket_codes(np.array([end_ms]), bucket)[0])
    return lo, hi


def _label_code(label: str, bucket: Bucket) -> int:
    unit = {"day": "D", "month": "M", "year": "Y"}[bucket]
    return int(np.datetime64(label, unit).astype(np.int64))


def _same_rows(old: pa.Table, new: pa.Table) -> np.ndarray[Any, Any]:
    """Row-wise equality of two aligned tables; nulls equal nulls and NaN equals NaN."""
    same = np.ones(new.num_rows, dtype=bool)
    for name in new.column_names:
        a, b = old[name], new[name]
        equal = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        equal = pc.or_(equal, both_null)
        if pa.types.is_floating(a.type):
            equal = pc.or_(equal, pc.and_(pc.is_nan(a), pc.is_nan(b)))
        same &= _key_numpy(equal).astype(bool)
    return same


def _sorted_unique(table: pa.Table, key: str) -> tuple[pa.Table, int]:
    """Sort by key and keep the last row of each key (the newest wins); return dropped count."""
    keys = _key_numpy(table[key])
    if keys.size < 2 or bool(np.all(keys[1:] > keys[:-1])):
        return table, 0
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    last_of_run = np.append(sorted_keys[1:] != sorted_keys[:-1], True)
    keep = order[last_of_run]
    return table.take(keep), int(keys.size - keep.size)


class _PartitionLock:
    """An exclusive ``flock`` on the partition's lock file; the kernel drops it if we die."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / LOCK_FILE
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_duckdb_local = threading.local()


def _duckdb() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB connection per thread: no database file is shared between processes."""
    connection = getattr(_duckdb_local, "connection", None)
    if connection is None:
        connection = duckdb.connect(":memory:")
        _duckdb_local.connection = connection
    return connection


class Lake:
    """The store of record under ``<data root>/lake``.

    **Usage**::

        lake = Lake(settings.lake_dir)
        lake.upsert("candles", table, symbol="BTCUSDT", param="1m")
        lake.read("candles", symbols="BTCUSDT", param="1m", start="2026-11-01")
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # ---- layout -------------------------------------------------------------------------

    def series_dir(self, ds: Dataset | str, *, symbol: str, param: str | None = None) -> Path:
        """Directory of one (dataset, symbol, parameter) series."""
        ds = dataset(ds) if isinstance(ds, str) else ds
        param = ds.check_param(param)
        path = self.root / ds.name / f"symbol={symbol}"
        return path / f"{ds.param_name}={param}" if ds.param_name else path

    def symbols(self, ds: Dataset | str) -> list[str]:
        """Symbols that have a directory in the dataset, sorted."""
        ds = dataset(ds) if isinstance(ds, str) else ds
        base = self.root / ds.name
        if not base.is_dir():
            return []
        return sorted(p.name.removeprefix("symbol=") for p in base.glob("symbol=*") if p.is_dir())

    def files(
        self,
        ds: Dataset | str,
        *,
        symbol: str,
        param: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> list[Path]:
        """Existing data files of a series whose time bucket meets ``[start, end]`` (pruning)."""
        ds = dataset(ds) if isinstance(ds, str) else ds
        bucket = ds.bucket(param)
        lo, hi = _bucket_range(
            None if start is None else to_ms(start), None if end is None else to_ms(end), bucket
        )
        series = self.series_dir(ds, symbol=symbol, param=param)
        found = []
        for part in series.glob(f"{bucket}=*"):
            code = _label_code(part.name.split("=", 1)[1], bucket)
            data_file = part / DATA_FILE
            if lo <= code <= hi and data_file.is_file():
                found.append((code, data_file))
        return [path for _, path in sorted(found)]

    # ---- writes -------------------------------------------------------------------------

    def upsert(
        self,
        ds: Dataset | str,
        table: pa.Table,
        *,
        symbol: str,
        param: str | None = None,
        replace_range: tuple[TimeLike, TimeLike] | None = None,
    ) -> UpsertResult:
        """Merge ``table`` into the series by key, atomically per partition.

        Re-writing stored rows changes nothing (no file is rewritten); new keys are inserted; a
        different row for a stored key replaces it and is counted in ``replaced``. With
        ``replace_range=(start, end)`` stored rows whose time falls inside it and whose key is not
        in ``table`` are deleted — a rebuild of that window.
        """
        ds = dataset(ds) if isinstance(ds, str) else ds
        table = self._conform(ds, table)
        table, batch_duplicates = _sorted_unique(table, ds.key)
        result = UpsertResult(rows=table.num_rows, batch_duplicates=batch_duplicates)
        bucket = ds.bucket(param)
        series = self.series_dir(ds, symbol=symbol, param=param)
        times = _key_numpy(table[ds.time_column])
        codes = _bucket_codes(times, bucket) if times.size else np.array([], dtype=np.int64)
        groups: dict[int, pa.Table] = {}
        if codes.size:
            order = np.argsort(codes, kind="stable")
            sorted_codes = codes[order]
            bounds = np.flatnonzero(np.diff(sorted_codes)) + 1
            for chunk in np.split(order, bounds):
                chunk_table = table if chunk.size == table.num_rows else table.take(chunk)
                groups[int(codes[chunk[0]])] = chunk_table
        window: tuple[int, int] | None = None
        if replace_range is not None:
            window = (to_ms(replace_range[0]), to_ms(replace_range[1]))
            for path in self.files(ds, symbol=symbol, param=param, start=window[0], end=window[1]):
                code = _label_code(path.parent.name.split("=", 1)[1], bucket)
                groups.setdefault(code, table.slice(0, 0))
        for code in sorted(groups):
            directory = series / f"{bucket}={_bucket_label(code, bucket)}"
            result.add(self._merge_partition(ds, directory, groups[code], window))
        return result

    def _conform(self, ds: Dataset, table: pa.Table) -> pa.Table:
        schema = ds.arrow_schema
        missing = [name for name in schema.names if name not in table.column_names]
        if missing:
            raise ValueError(f"{ds.name}: missing columns {', '.join(missing)}")
        table = table.select(schema.names)
        if table.schema != schema:
            table = table.cast(schema)
        for column in ds.columns:
            if not column.nullable and table[column.name].null_count:
                raise ValueError(f"{ds.name}: column {column.name} has nulls")
        return table

    def _merge_partition(
        self,
        ds: Dataset,
        directory: Path,
        incoming: pa.Table,
        window: tuple[int, int] | None,
    ) -> UpsertResult:
        directory.mkdir(parents=True, exist_ok=True)
        with _PartitionLock(directory):
            for stale in directory.glob(f"{DATA_FILE}.*{TMP_SUFFIX}"):
                stale.unlink(missing_ok=True)  # left by a writer that was killed mid-write
            target = directory / DATA_FILE
            existing = pq.read_table(target) if target.exists() else None
            merged, result = _merge(ds, existing, incoming, window)
            if merged is not None:
                self._write_atomic(merged, target)
                result.files_written.append(target)
            return result

    @staticmethod
    def _write_atomic(table: pa.Table, target: Path) -> None:
        tmp = target.with_name(f"{target.name}.{os.getpid()}-{uuid.uuid4().hex}{TMP_SUFFIX}")
        try:
            with open(tmp, "wb") as handle:
                pq.write_table(table, handle, compression=COMPRESSION)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    # ---- reads --------------------------------------------------------------------------

    def read(
        self,
        ds: Dataset | str,
        *,
        symbols: str | Sequence[str] | None = None,
        param: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows of one or more series with ``start <= time <= end``, sorted by symbol and key.

        Reads through an in-memory DuckDB connection over the pruned file list. The result has
        ``symbol`` (and the parameter column) first, then the dataset's columns.
        """
        ds = dataset(ds) if isinstance(ds, str) else ds
        param = ds.check_param(param)
        names = list(columns) if columns is not None else ds.column_names
        unknown = [n for n in names if n not in ds.column_names]
        if unknown:
            raise ValueError(f"{ds.name}: unknown columns {', '.join(unknown)}")
        start_ms = None if start is None else to_ms(start)
        end_ms = None if end is None else to_ms(end)
        wanted = [symbols] if isinstance(symbols, str) else symbols
        selected = self.symbols(ds) if wanted is None else list(wanted)
        files = [
            (symbol, path)
            for symbol in selected
            for path in self.files(ds, symbol=symbol, param=param, start=start_ms, end=end_ms)
        ]
        prefix = [pa.field("symbol", pa.string())]
        if ds.param_name:
            prefix.append(pa.field(ds.param_name, pa.string()))
        schema = pa.schema(prefix + [ds.arrow_schema.field(n) for n in names])
        if not files:
            return schema.empty_table()
        time_col = ds.time_column
        conditions = []
        if start_ms is not None:
            conditions.append(f"epoch_ms({time_col}) >= {start_ms}")
        if end_ms is not None:
            conditions.append(f"epoch_ms({time_col}) <= {end_ms}")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        quoted = ", ".join(f'"{n}"' for n in names)
        parts = []
        for symbol, path in files:
            literal = str(path).replace("'", "''")
            parts.append(
                f"SELECT '{symbol}' AS symbol, {quoted} FROM read_parquet('{literal}') {where}"
            )
        query = " UNION ALL ".join(parts) + f' ORDER BY symbol, "{ds.key}"'
        result = _duckdb().sql(query).to_arrow_table()
        if ds.param_name:
            result = result.add_column(1, ds.param_name, pa.array([param] * result.num_rows))
        return result.cast(schema)

    def scan(
        self,
        ds: Dataset | str,
        *,
        symbols: str | Sequence[str] | None = None,
        param: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> pl.LazyFrame:
        """A polars lazy scan of the pruned files, filtered to ``start <= time <= end``."""
        import polars as pl  # noqa: PLC0415 - polars is only needed by callers of scan()

        ds = dataset(ds) if isinstance(ds, str) else ds
        param = ds.check_param(param)
        wanted = [symbols] if isinstance(symbols, str) else symbols
        selected = self.symbols(ds) if wanted is None else list(wanted)
        frames = []
        for symbol in selected:
            paths = self.files(ds, symbol=symbol, param=param, start=start, end=end)
            if paths:
                frame = pl.scan_parquet(paths).with_columns(pl.lit(symbol).alias("symbol"))
                frames.append(frame)
        if not frames:
            empty = pl.from_arrow(ds.arrow_schema.empty_table())
            assert isinstance(empty, pl.DataFrame)
            return empty.lazy().with_columns(pl.lit(None, pl.String).alias("symbol"))
        lazy = pl.concat(frames)
        time = pl.col(ds.time_column).dt.epoch("ms")
        if start is not None:
            lazy = lazy.filter(time >= to_ms(start))
        if end is not None:
            lazy = lazy.filter(time <= to_ms(end))
        return lazy

    def key_range(
        self, ds: Dataset | str, *, symbol: str, param: str | None = None
    ) -> tuple[int, int, int] | None:
        """(rows, first key, last key) of a series, reading only the Parquet footers."""
        ds = dataset(ds) if isinstance(ds, str) else ds
        rows, first, last = 0, None, None
        index = ds.column_names.index(ds.key)
        for path in self.files(ds, symbol=symbol, param=param):
            meta = pq.ParquetFile(path).metadata
            rows += meta.num_rows
            for group in range(meta.num_row_groups):
                stats = meta.row_group(group).column(index).statistics
                if stats is None or not stats.has_min_max:
                    continue
                lo, hi = _stat_int(stats.min), _stat_int(stats.max)
                first = lo if first is None else min(first, lo)
                last = hi if last is None else max(last, hi)
        if rows == 0 or first is None or last is None:
            return None
        return rows, first, last


def _stat_int(value: Any) -> int:
    if isinstance(value, datetime):
        return to_ms(value)
    return int(value)


def _merge(
    ds: Dataset,
    existing: pa.Table | None,
    incoming: pa.Table,
    window: tuple[int, int] | None,
) -> tuple[pa.Table | None, UpsertResult]:
    """Merge a sorted, de-duplicated batch into a partition's rows; None when nothing changes."""
    result = UpsertResult()
    if existing is None or existing.num_rows == 0:
        result.inserted = incoming.num_rows
        if incoming.num_rows == 0 and existing is not None:
            return None, result
        return incoming, result
    existing = existing.cast(ds.arrow_schema)
    key = ds.key
    old_keys = _key_numpy(existing[key])
    new_keys = _key_numpy(incoming[key])
    keep_old = np.ones(old_keys.size, dtype=bool)
    if window is not None:
        old_times = _key_numpy(existing[ds.time_column])
        in_window = (old_times >= window[0]) & (old_times <= window[1])
        in_new = np.isin(old_keys, new_keys)
        doomed = in_window & ~in_new
        result.deleted = int(doomed.sum())
        keep_old &= ~doomed
    if new_keys.size and new_keys[0] > old_keys[-1]:
        result.inserted = int(new_keys.size)
        if result.deleted:
            existing = existing.filter(pa.array(keep_old))
        return pa.concat_tables([existing, incoming]), result
    position = np.minimum(np.searchsorted(old_keys, new_keys), old_keys.size - 1)
    present = old_keys[position] == new_keys if new_keys.size else np.zeros(0, dtype=bool)
    add_new = ~present
    if present.any():
        present_index = np.flatnonzero(present)
        same = _same_rows(existing.take(position[present]), incoming.take(present_index))
        changed = present_index[~same]
        result.replaced = int(changed.size)
        result.unchanged = int(same.sum())
        keep_old[position[changed]] = False
        add_new[changed] = True
    result.inserted = int((~present).sum())
    if result.inserted == 0 and result.replaced == 0 and result.deleted == 0:
        return None, result
    merged = pa.concat_tables([existing.filter(pa.array(keep_old)), incoming.filter(add_new)])
    order = np.argsort(_key_numpy(merged[key]), kind="stable")
    return merged.take(order), result

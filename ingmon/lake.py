"""The Parquet lake: hive-partitioned files, atomic idempotent upserts, DuckDB/polars reads."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingmon.damage import (
    READ_ERRORS,
    CorruptPartition,
    Describe,
    any_vanished,
    damage_reason,
    first_corrupt,
    is_damage,
    quarantine_partition,
    vanished_or_damaged,
)
from ingmon.errors import CorruptPartitionError
from ingmon.partition import (
    COMPRESSION,
    DATA_FILE,
    VERSION_GRACE_SECONDS,
    PartitionLock,
    commit,
    current_file,
    temp_files,
    write_options,
)
from ingmon.partition import quarantine as quarantine_version
from ingmon.rows import (
    UpsertResult,
    bucket_bounds_ms,
    bucket_label,
    bucket_range,
    key_values,
    label_code,
    merge_rows,
    sorted_unique,
    split_by_bucket,
)
from ingmon.schema import Dataset, dataset
from ingmon.times import TimeLike, to_ms

if TYPE_CHECKING:
    import polars as pl

__all__ = ["COMPRESSION", "CorruptPartition", "Lake", "UpsertResult", "write_options"]

# A read that loses a race (a version collected, or quarantined, between listing and opening)
# lists the files again; a partition rewritten over and over can make it lose a few in a row.
_READ_ATTEMPTS = 10


class _DuckDBLocal(threading.local):
    pid: int = -1
    connection: duckdb.DuckDBPyConnection | None = None


_duckdb_local = _DuckDBLocal()


def _duckdb() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB connection per thread (and process: a forked child makes its own).

    No database file is shared between processes; the session time zone is UTC so that time
    literals compare with the stored UTC timestamps the same way on every machine.
    """
    local = _duckdb_local
    if local.connection is None or local.pid != os.getpid():
        connection = duckdb.connect(":memory:")
        connection.sql("SET TimeZone = 'UTC'")
        local.connection, local.pid = connection, os.getpid()
    return local.connection


class Lake:
    """The store of record under ``<data root>/lake``.

    **Usage**::

        lake = Lake(settings.lake_dir)
        lake.upsert("candles", table, symbol="BTCUSDT", param="1m")
        lake.read("candles", symbols="BTCUSDT", param="1m", start="2026-11-01")

    **Layout** of one partition, ``<dataset>/symbol=<SYM>/[<param>=<value>/]<bucket>=<label>/``:

    - ``data.parquet``: a symlink to the current version — what other tools read, e.g.
      DuckDB over ``lake/candles/**/*.parquet`` with ``hive_partitioning=true``;
    - ``.data.parquet.v<generation>-<id>``: immutable, complete Parquet files. A writer adds a
      new one and moves the link; superseded ones are deleted ``version_grace_seconds`` later;
    - ``.lock``: the writers' ``flock``; ``*.tmp``: a write in progress, or the remains of a
      killed writer (removed by the next writer; never read);
    - ``quarantine/``: damaged versions moved aside by :meth:`quarantine` (or by an upsert that
      found one), never read, never collected: evidence for the operator.

    **Damage**: a read that meets an unreadable version raises :class:`CorruptPartitionError`
    naming it; :meth:`find_corrupt` lists them all; :meth:`quarantine`, or an upsert over the
    partition, clears one.

    The key of a row determines its time (true of every dataset), so a key lives in one
    partition; an upsert only touches the partitions of its rows.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        version_grace_seconds: float = VERSION_GRACE_SECONDS,
    ) -> None:
        self.root = Path(root)
        self.version_grace_seconds = version_grace_seconds

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
        """Data files of a series whose time bucket meets ``[start, end]`` (partition pruning).

        In time order; each path is the immutable current version of its partition (see the
        class docstring), safe to open any number of times while writers carry on.
        """
        ds = dataset(ds) if isinstance(ds, str) else ds
        bucket = ds.bucket(param)
        lo, hi = bucket_range(
            None if start is None else to_ms(start), None if end is None else to_ms(end), bucket
        )
        series = self.series_dir(ds, symbol=symbol, param=param)
        found = []
        for part in series.glob(f"{bucket}=*"):
            code = label_code(part.name.split("=", 1)[1], bucket)
            if lo <= code <= hi:
                current = current_file(part)
                if current is not None:
                    found.append((code, current))
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
        different row for a stored key replaces it and is counted in ``replaced``; within the
        batch the last row of a key wins. With ``replace_range=(start, end)`` stored rows whose
        time falls inside it and whose key is not in ``table`` are deleted — a rebuild of that
        window. Each partition is committed on its own: a reader sees every partition either
        before or after, never half-written.
        """
        ds = dataset(ds) if isinstance(ds, str) else ds
        table = self._conform(ds, table)
        table, batch_duplicates = sorted_unique(table, ds.key)
        result = UpsertResult(rows=table.num_rows, batch_duplicates=batch_duplicates)
        bucket = ds.bucket(param)
        series = self.series_dir(ds, symbol=symbol, param=param)
        groups = split_by_bucket(table, ds.time_column, bucket)
        window: tuple[int, int] | None = None
        if replace_range is not None:
            window = (to_ms(replace_range[0]), to_ms(replace_range[1]))
            for path in self.files(ds, symbol=symbol, param=param, start=window[0], end=window[1]):
                code = label_code(path.parent.name.split("=", 1)[1], bucket)
                groups.setdefault(code, table.slice(0, 0))
        for code in sorted(groups):
            directory = series / f"{bucket}={bucket_label(code, bucket)}"
            result.add(self._merge_partition(ds, directory, groups[code], window))
        return result

    def _conform(self, ds: Dataset, table: pa.Table) -> pa.Table:
        schema = ds.arrow_schema
        missing = [name for name in schema.names if name not in table.column_names]
        if missing:
            raise ValueError(f"{ds.name}: missing columns {', '.join(missing)}")
        columns = []
        for target in schema:
            column = table[target.name]
            if column.null_count and not target.nullable:
                raise ValueError(f"{ds.name}: column {target.name} has nulls")
            columns.append(column if column.type == target.type else column.cast(target.type))
        # Same types, the dataset's field nullability and no metadata: no copy of the data.
        return pa.Table.from_arrays(columns, schema=schema)

    def _merge_partition(
        self,
        ds: Dataset,
        directory: Path,
        incoming: pa.Table,
        window: tuple[int, int] | None,
    ) -> UpsertResult:
        directory.mkdir(parents=True, exist_ok=True)
        with PartitionLock(directory):
            # Every writer holds the lock while its temp files exist: these are a dead writer's.
            for stale in temp_files(directory):
                stale.unlink(missing_ok=True)
            current = current_file(directory)
            existing = None
            moved: Path | None = None
            if current is not None:
                try:
                    existing = pq.read_table(current)
                except READ_ERRORS as error:
                    if not is_damage(error):
                        raise
                    # Its rows cannot be merged: move it aside and let the batch be the
                    # partition, which a full refresh (replace_range over it) makes exact.
                    moved = quarantine_version(directory, current)
                    current = None
            merged, result = merge_rows(ds, existing, incoming, window)
            if moved is not None:
                result.quarantined.append(moved)
            if merged is not None:
                commit(directory, merged, current, grace_seconds=self.version_grace_seconds)
                result.files_written.append(directory / DATA_FILE)
            return result

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

        Times compare in whole milliseconds (a µs time counts as its millisecond).

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
        prefix = [pa.field("symbol", pa.string())]
        if ds.param_name:
            prefix.append(pa.field(ds.param_name, pa.string()))
        schema = pa.schema(prefix + [ds.arrow_schema.field(n) for n in names])
        for attempt in range(_READ_ATTEMPTS):
            files = self._files_by_symbol(ds, symbols, param, start_ms, end_ms)
            if not files:
                return schema.empty_table()
            try:
                result = self._query(
                    ds, files, param=param, names=names, start_ms=start_ms, end_ms=end_ms
                )
            except duckdb.Error as error:
                # A version read later than its grace period was deleted, or one was
                # quarantined meanwhile (maybe while we looked): list the files again.
                retry = attempt < _READ_ATTEMPTS - 1
                if retry and any_vanished(files):
                    continue
                # Only now, on the error path, look for the file DuckDB could not read.
                corrupt = first_corrupt(
                    files, describe=self._describe(ds, param), engine_message=str(error)
                )
                if corrupt is not None:
                    raise CorruptPartitionError(corrupt) from error
                if retry and any_vanished(files):
                    continue
                raise
            return result.cast(schema)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _corrupt_record(
        ds: Dataset, symbol: str, param: str | None, version: Path, reason: str
    ) -> CorruptPartition:
        bucket = ds.bucket(param)
        code = label_code(version.parent.name.split("=", 1)[1], bucket)
        start_ms, end_ms = bucket_bounds_ms(code, bucket)
        return CorruptPartition(
            dataset=ds.name,
            symbol=symbol,
            param=param,
            directory=version.parent,
            version=version,
            start_ms=start_ms,
            end_ms=end_ms,
            reason=reason,
        )

    @staticmethod
    def _describe(ds: Dataset, param: str | None) -> Describe:
        """The record of a damaged file of one (dataset, parameter), given symbol and reason."""
        return lambda symbol, version, reason: Lake._corrupt_record(
            ds, symbol, param, version, reason
        )

    def _files_by_symbol(
        self,
        ds: Dataset,
        symbols: str | Sequence[str] | None,
        param: str | None,
        start_ms: int | None,
        end_ms: int | None,
    ) -> dict[str, list[Path]]:
        wanted = [symbols] if isinstance(symbols, str) else symbols
        selected = self.symbols(ds) if wanted is None else sorted(set(wanted))
        found = {}
        for symbol in selected:
            paths = self.files(ds, symbol=symbol, param=param, start=start_ms, end=end_ms)
            if paths:
                found[symbol] = paths
        return found

    @staticmethod
    def _query(
        ds: Dataset,
        files: dict[str, list[Path]],
        *,
        param: str | None,
        names: list[str],
        start_ms: int | None,
        end_ms: int | None,
    ) -> pa.Table:
        time_col = f'"{ds.time_column}"'
        conditions: list[str] = []
        condition_params: list[Any] = []
        if start_ms is not None:
            conditions.append(f"{time_col} >= epoch_ms(?)::TIMESTAMPTZ")
            condition_params.append(start_ms)
        if end_ms is not None:
            # "<= end" in whole milliseconds, also for µs columns: "< end + 1 ms".
            conditions.append(f"{time_col} < epoch_ms(?)::TIMESTAMPTZ")
            condition_params.append(end_ms + 1)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        selected = ", ".join(f'"{n}"' for n in names)
        sort_key = f'"{ds.key}"' if ds.key in names else '"__key"'
        if ds.key not in names:
            selected += f', "{ds.key}" AS "__key"'
        head = "?::VARCHAR AS symbol, "
        if ds.param_name:
            head += f'?::VARCHAR AS "{ds.param_name}", '
        parts: list[str] = []
        params: list[Any] = []
        for symbol, paths in files.items():
            parts.append(f"SELECT {head}{selected} FROM read_parquet(?){where}")
            params += [symbol, *([param] if ds.param_name else []), [str(p) for p in paths]]
            params += condition_params
        query = " UNION ALL ".join(parts)
        if len(parts) > 1:
            query += f" ORDER BY symbol, {sort_key}"
        result = _duckdb().sql(query, params=params).to_arrow_table()
        if len(parts) == 1:
            # Files are sorted by key and usually follow each other in key order, and DuckDB
            # keeps that order: check (cheap) instead of sorting (a fifth of a one-day read).
            keys = key_values(result[sort_key.strip('"')])
            if not bool(np.all(keys[1:] > keys[:-1])):
                result = result.sort_by(sort_key.strip('"'))
        if ds.key not in names:
            result = result.drop_columns(["__key"])
        return result

    def scan(
        self,
        ds: Dataset | str,
        *,
        symbols: str | Sequence[str] | None = None,
        param: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> pl.LazyFrame:
        """A polars lazy scan of the pruned files, filtered to ``start <= time <= end``.

        Columns as in :meth:`read` (``symbol``, the parameter, then the dataset's); rows in
        file order, which is by symbol and time. Collect it within ``version_grace_seconds``.
        """
        import polars as pl  # noqa: PLC0415 - polars is only needed by callers of scan()

        ds = dataset(ds) if isinstance(ds, str) else ds
        param = ds.check_param(param)
        start_ms = None if start is None else to_ms(start)
        end_ms = None if end is None else to_ms(end)
        head = [pl.lit(None, pl.String).alias("symbol")]
        if ds.param_name:
            head.append(pl.lit(param, pl.String).alias(ds.param_name))
        for _ in range(_READ_ATTEMPTS):
            files = self._files_by_symbol(ds, symbols, param, start_ms, end_ms)
            if not vanished_or_damaged(files, describe=self._describe(ds, param)):
                break
        frames = []
        for symbol, paths in files.items():
            frame = pl.scan_parquet([str(p) for p in paths], hive_partitioning=False)
            head[0] = pl.lit(symbol, pl.String).alias("symbol")
            frames.append(frame.select(*head, *ds.column_names))
        if not frames:
            empty = pl.from_arrow(ds.arrow_schema.empty_table())
            assert isinstance(empty, pl.DataFrame)
            return empty.lazy().select(*head, *ds.column_names)
        lazy = pl.concat(frames) if len(frames) > 1 else frames[0]
        time_type = pl.Datetime("ms", "UTC")
        if start_ms is not None:
            lazy = lazy.filter(pl.col(ds.time_column) >= pl.lit(start_ms).cast(time_type))
        if end_ms is not None:
            lazy = lazy.filter(pl.col(ds.time_column) < pl.lit(end_ms + 1).cast(time_type))
        return lazy

    def key_range(
        self, ds: Dataset | str, *, symbol: str, param: str | None = None
    ) -> tuple[int, int, int] | None:
        """(rows, first key, last key) of a series with an integer or time key, from the footers.

        Raises :class:`CorruptPartitionError` for the first file whose footer is unreadable.
        """
        ds = dataset(ds) if isinstance(ds, str) else ds
        key_type = ds.arrow_schema.field(ds.key).type
        if not (pa.types.is_integer(key_type) or pa.types.is_timestamp(key_type)):
            raise ValueError(f"{ds.name}: key_range needs an integer or time key, not {key_type}")
        param = ds.check_param(param)
        for attempt in range(_READ_ATTEMPTS):
            footers = []
            for path in self.files(ds, symbol=symbol, param=param):
                try:
                    footers.append(pq.read_metadata(path))
                except READ_ERRORS as error:
                    if not is_damage(error):
                        raise
                    reason = damage_reason(path, deep=False)
                    if reason is not None:
                        record = self._corrupt_record(ds, symbol, param, path, reason)
                        raise CorruptPartitionError(record) from error
                    if attempt == _READ_ATTEMPTS - 1:
                        raise
                    break  # gone since listed (collected, quarantined): list again
            else:
                return _key_range(footers, ds.column_names.index(ds.key))
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- damaged partitions -------------------------------------------------------------

    def find_corrupt(
        self,
        ds: Dataset | str,
        *,
        symbol: str | None = None,
        param: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        deep: bool = False,
    ) -> list[CorruptPartition]:
        """Every partition whose current version is unreadable, by symbol, parameter and time.

        ``symbol=None``: every symbol; ``param=None`` on a dataset with a parameter: every
        value stored. Checks each footer (tens of µs a file); ``deep=True`` also decodes every
        page (a full read of the series), which finds damage inside a file with a sound footer.
        """
        ds = dataset(ds) if isinstance(ds, str) else ds
        found = []
        for name in self.symbols(ds) if symbol is None else [symbol]:
            for value in self._stored_params(ds, name, param):
                for path in self.files(ds, symbol=name, param=value, start=start, end=end):
                    reason = damage_reason(path, deep=deep)
                    if reason is not None:
                        found.append(self._corrupt_record(ds, name, value, path, reason))
        return found

    def _stored_params(self, ds: Dataset, symbol: str, param: str | None) -> list[str | None]:
        if ds.param_name is None or param is not None:
            return [ds.check_param(param)]
        symbol_dir = self.root / ds.name / f"symbol={symbol}"
        return [v for v in ds.param_values if (symbol_dir / f"{ds.param_name}={v}").is_dir()]

    def quarantine(self, partition: CorruptPartition) -> Path:
        """Move a damaged version aside, under the partition lock; the partition reads as empty.

        The file goes to ``<partition>/quarantine/<version name>`` (no read glob, nor the
        garbage collector, looks there: delete it by hand once examined) and ``data.parquet``
        is removed if it still points to it; a newer version written meanwhile is left alone.
        Idempotent. Returns the file's new path (which does not exist if the version was
        missing to begin with). Refill the range with an upsert, e.g. a backfill with
        ``--full-refresh`` over ``[partition.start_ms, partition.end_ms]``.
        """
        return quarantine_partition(partition, root=self.root)


def _key_range(footers: list[pq.FileMetaData], index: int) -> tuple[int, int, int] | None:
    """(rows, first, last) of the key column at ``index`` from row-group statistics."""
    rows, first, last = 0, None, None
    for meta in footers:
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

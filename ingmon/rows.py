"""The lake's row arithmetic: keys, time buckets, and merging a batch into a partition's rows.

Pure functions of Arrow tables and numpy arrays (no files): ``Lake`` calls them under its
partition locks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingmon.schema import Bucket, Dataset

__all__ = [
    "UpsertResult",
    "bucket_bounds_ms",
    "bucket_codes",
    "bucket_label",
    "bucket_range",
    "int_numpy",
    "key_values",
    "label_code",
    "merge_rows",
    "sorted_unique",
    "split_by_bucket",
    "times_ms",
]

_BUCKET_UNIT: dict[Bucket, Literal["D", "M", "Y"]] = {"day": "D", "month": "M", "year": "Y"}
_MS_PER_UNIT = {"s": 1000, "ms": 1}
_UNITS_PER_MS = {"us": 1000, "ns": 1_000_000}


@dataclass
class UpsertResult:
    """What an upsert did, in rows and files.

    ``rows`` counts the distinct keys of the batch (``batch_duplicates`` were dropped before, the
    last row of a key winning); each is ``inserted`` (new key), ``replaced`` (a different row was
    stored) or ``unchanged``. ``deleted`` counts rows removed by ``replace_range``.
    """

    rows: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    deleted: int = 0
    batch_duplicates: int = 0
    files_written: list[Path] = field(default_factory=list)
    # Damaged versions found in the way and moved aside (``Lake.quarantine``): their rows are
    # lost and not counted in ``deleted``; the partition now holds the batch's rows only.
    quarantined: list[Path] = field(default_factory=list)

    def add(self, other: UpsertResult) -> None:
        self.rows += other.rows
        self.inserted += other.inserted
        self.replaced += other.replaced
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.batch_duplicates += other.batch_duplicates
        self.files_written.extend(other.files_written)
        self.quarantined.extend(other.quarantined)


def int_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, Any]:
    """An integer or timestamp column as int64 numpy (zero-copy when it has one chunk)."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values: np.ndarray[Any, Any] = column.to_numpy(zero_copy_only=False)
    return values


def times_ms(column: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, Any]:
    """A timestamp column (any unit: ingest_log's are µs) as int64 epoch milliseconds, floored."""
    values = int_numpy(column)
    unit = column.type.unit
    if unit in _UNITS_PER_MS:
        return values // _UNITS_PER_MS[unit]
    return values * _MS_PER_UNIT[unit]


def bucket_codes(times_ms: np.ndarray[Any, Any], bucket: Bucket) -> np.ndarray[Any, Any]:
    """Time bucket of each time: days, months or years since 1970 (numpy datetime64 units)."""
    unit = _BUCKET_UNIT[bucket]
    codes: np.ndarray[Any, Any] = (
        times_ms.astype("datetime64[ms]").astype(f"datetime64[{unit}]").astype(np.int64)
    )
    return codes


def bucket_label(code: int, bucket: Bucket) -> str:
    return str(np.datetime64(code, _BUCKET_UNIT[bucket]))


def label_code(label: str, bucket: Bucket) -> int:
    return int(np.datetime64(label, _BUCKET_UNIT[bucket]).astype(np.int64))


def bucket_bounds_ms(code: int, bucket: Bucket) -> tuple[int, int]:
    """First and last millisecond of one time bucket."""
    unit = _BUCKET_UNIT[bucket]
    edges = np.array([code, code + 1]).astype(f"datetime64[{unit}]").astype("datetime64[ms]")
    start_ms, next_ms = (int(v) for v in edges.astype(np.int64))
    return start_ms, next_ms - 1


def bucket_range(start_ms: int | None, end_ms: int | None, bucket: Bucket) -> tuple[int, int]:
    lo = -(2**62) if start_ms is None else int(bucket_codes(np.array([start_ms]), bucket)[0])
    hi = 2**62 if end_ms is None else int(bucket_codes(np.array([end_ms]), bucket)[0])
    return lo, hi


def _same_rows(old: pa.Table, new: pa.Table) -> np.ndarray[Any, Any]:
    """Row-wise equality of two aligned tables; nulls equal nulls and NaN equals NaN."""
    same = np.ones(new.num_rows, dtype=bool)
    for name in new.column_names:
        a, b = old[name], new[name]
        equal = pc.equal(a, b)
        if pa.types.is_floating(a.type):
            equal = pc.or_kleene(equal, pc.and_kleene(pc.is_nan(a), pc.is_nan(b)))
        if a.null_count or b.null_count:
            # Plain and_/or_ would turn "null or True" into null (= changed): use null masks.
            both_null = pc.and_(pc.is_null(a), pc.is_null(b))
            equal = pc.or_(pc.fill_null(equal, False), both_null)
        same &= pc.fill_null(equal, False).to_numpy(zero_copy_only=False)
    return same


def sorted_unique(table: pa.Table, key: str) -> tuple[pa.Table, int]:
    """Sort by key and keep the last row of each key (the newest wins); return dropped count."""
    keys = key_values(table[key])
    if keys.size < 2 or bool(np.all(keys[1:] > keys[:-1])):
        return table, 0
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    last_of_run = np.append(sorted_keys[1:] != sorted_keys[:-1], True)
    keep = order[last_of_run]
    return table.take(keep), int(keys.size - keep.size)


def key_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, Any]:
    """Keys as a sortable numpy array: int64 for ints/timestamps, objects for strings."""
    if pa.types.is_integer(column.type) or pa.types.is_timestamp(column.type):
        return int_numpy(column)
    values: np.ndarray[Any, Any] = np.asarray(column.to_pylist(), dtype=object)
    return values


def split_by_bucket(table: pa.Table, time_column: str, bucket: Bucket) -> dict[int, pa.Table]:
    """The rows of each time bucket, keeping their (key) order."""
    if table.num_rows == 0:
        return {}
    times = times_ms(table[time_column])
    if bool(np.all(times[1:] >= times[:-1])):
        # Time follows the key (the usual case): each bucket is a slice, found by bisection.
        first, last = (int(c) for c in bucket_codes(times[[0, -1]], bucket))
        unit = _BUCKET_UNIT[bucket]
        starts_ms = (
            np.arange(first + 1, last + 1)
            .astype(f"datetime64[{unit}]")
            .astype("datetime64[ms]")
            .astype(np.int64)
        )
        edges = [0, *np.searchsorted(times, starts_ms).tolist(), times.size]
        return {
            first + offset: table.slice(lo, hi - lo)
            for offset, (lo, hi) in enumerate(itertools.pairwise(edges))
            if hi > lo
        }
    codes = bucket_codes(times, bucket)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return {int(codes[chunk[0]]): table.take(chunk) for chunk in np.split(order, bounds)}


def merge_rows(
    ds: Dataset,
    existing: pa.Table | None,
    incoming: pa.Table,
    window: tuple[int, int] | None,
) -> tuple[pa.Table | None, UpsertResult]:
    """Merge a sorted, de-duplicated batch into a partition's rows; None when nothing changes."""
    result = UpsertResult()
    if existing is None or existing.num_rows == 0:
        result.inserted = incoming.num_rows
        if incoming.num_rows == 0:
            return None, result
        return incoming, result
    if existing.schema != ds.arrow_schema:
        existing = existing.cast(ds.arrow_schema)
    key = ds.key
    old_keys = key_values(existing[key])
    new_keys = key_values(incoming[key])
    keep_old = np.ones(old_keys.size, dtype=bool)
    if window is not None:
        old_times = times_ms(existing[ds.time_column])
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
        stored, offered = _aligned(existing, incoming, position[present_index], present_index)
        same = _same_rows(stored, offered)
        changed = present_index[~same]
        result.replaced = int(changed.size)
        result.unchanged = int(same.sum())
        keep_old[position[changed]] = False
        add_new[changed] = True
    result.inserted = int((~present).sum())
    if result.inserted == 0 and result.replaced == 0 and result.deleted == 0:
        return None, result
    kept = existing if keep_old.all() else existing.filter(pa.array(keep_old))
    added = incoming if add_new.all() else incoming.filter(pa.array(add_new))
    kept_keys, added_keys = old_keys[keep_old], new_keys[add_new]
    if added_keys.size == 0:
        return kept, result
    if kept_keys.size == 0 or added_keys[0] > kept_keys[-1]:
        return pa.concat_tables([kept, added]), result
    merged = pa.concat_tables([kept, added])
    order = np.argsort(np.concatenate([kept_keys, added_keys]), kind="stable")
    return merged.take(order), result


def _aligned(
    existing: pa.Table,
    incoming: pa.Table,
    stored_index: np.ndarray[Any, Any],
    incoming_index: np.ndarray[Any, Any],
) -> tuple[pa.Table, pa.Table]:
    """Stored and incoming rows of the same keys side by side; slices (no copy) when each side
    is one contiguous run — always so when a batch is written again."""
    # Keys are sorted and unique on both sides, so the indexes increase strictly.
    if (
        stored_index[-1] - stored_index[0] == stored_index.size - 1
        and incoming_index[-1] - incoming_index[0] == incoming_index.size - 1
    ):
        return (
            existing.slice(int(stored_index[0]), stored_index.size),
            incoming.slice(int(incoming_index[0]), incoming_index.size),
        )
    return existing.take(stored_index), incoming.take(incoming_index)

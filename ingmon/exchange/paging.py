"""Gap-tolerant window walking: the first or last ``limit`` rows of a time range, fetched in
just-big-enough chunks of the data's time grid."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from ingmon.exchange.formats import concat_columns, slice_columns

__all__ = ["collect_backward", "collect_forward"]


class _Table(Protocol):
    def __len__(self) -> int: ...


TableT = TypeVar("TableT", bound=_Table)


def collect_forward(
    fetch: Callable[[int, int], TableT],
    lo_ms: int,
    hi_ms: int,
    *,
    limit: int,
    step_ms: int,
) -> TableT:
    """The first ``limit`` rows of [lo, hi], fetching just enough grid slots at a time (gaps such
    as maintenance windows make a slot count fall short, so it asks again past them)."""
    parts = []
    got = 0
    cursor_ms = lo_ms
    while cursor_ms <= hi_ms and got < limit:
        chunk_hi_ms = min(hi_ms, cursor_ms + (limit - got) * step_ms - 1)
        part = fetch(cursor_ms, chunk_hi_ms)
        parts.append(part)
        got += len(part)
        cursor_ms = chunk_hi_ms + 1
    if not parts:
        return slice_columns(fetch(lo_ms, lo_ms), slice(0, 0))
    return slice_columns(concat_columns(parts), slice(0, limit))


def collect_backward(
    fetch: Callable[[int, int], TableT],
    floor_ms: int,
    hi_ms: int,
    *,
    limit: int,
    step_ms: int,
) -> TableT:
    """The last ``limit`` rows of [floor, hi], walking back from ``hi`` past any gaps."""
    parts: list[TableT] = []
    got = 0
    cursor_ms = hi_ms
    while cursor_ms >= floor_ms and got < limit:
        chunk_lo_ms = max(floor_ms, cursor_ms - (limit - got) * step_ms + 1)
        part = fetch(chunk_lo_ms, cursor_ms)
        parts.insert(0, part)
        got += len(part)
        cursor_ms = chunk_lo_ms - 1
    if not parts:
        return slice_columns(fetch(hi_ms, hi_ms), slice(0, 0))
    joined = concat_columns(parts)
    total = len(joined)
    return slice_columns(joined, slice(max(0, total - limit), total))

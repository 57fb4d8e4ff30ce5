"""Backfill planning: what each (dataset, symbol) is missing in a window, and where to get it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import numpy as np
import pyarrow as pa

from ingmon.binance.archive import ArchiveFile, ArchiveKind, archive_file
from ingmon.coverage import series_coverage
from ingmon.lake import Lake
from ingmon.schema import (
    AGG_TRADES,
    CANDLES,
    DAY_MS,
    EXCHANGE_GAPS,
    FUNDING,
    HOUR_MS,
    OPEN_INTEREST,
    Dataset,
    interval_ms,
)

__all__ = [
    "OI_REST_RETENTION_MS",
    "Source",
    "Task",
    "Window",
    "known_exchange_gaps",
    "plan_series",
    "rest_tasks",
    "subtract",
]

Source = Literal["auto", "rest", "archive"]
_BUCKET_UNIT = {"day": "D", "month": "M", "year": "Y"}
Range = tuple[int, int]

# openInterestHist serves about the last 30 days; keep a minute of margin off the wall.
OI_REST_RETENTION_MS = 30 * DAY_MS - 60_000
# A daily archive is assumed published one day after the day ends (freqtrade assumes two).
ARCHIVE_DELAY_MS = DAY_MS


@dataclass(frozen=True)
class Window:
    """The backfill window of one symbol, already clipped to its listing and to server time."""

    start_ms: int
    end_ms: int
    server_now_ms: int
    # Open interest and funding exist only strictly after the listing (no positions before).
    listing_ms: int = 0

    @property
    def positions_start_ms(self) -> int:
        return max(self.start_ms, self.listing_ms + 1)


@dataclass(frozen=True)
class Task:
    """One unit of fetching: a REST range (optionally id-bounded) or one archive file."""

    dataset: Dataset
    symbol: str
    param: str | None
    start_ms: int
    end_ms: int
    source: Literal["rest", "archive", "unavailable"]
    archive: ArchiveFile | None = None
    from_id: int | None = None
    to_id: int | None = None
    replace: bool = False
    # Where to go when the archive has no such file (auto mode), or None to report it.
    fallback: Literal["rest"] | None = None
    # Why an "unavailable" task cannot be fetched from anywhere.
    reason: str = ""


def subtract(ranges: Iterable[Range], holes: Sequence[Range]) -> list[Range]:
    """Inclusive ranges minus inclusive holes (on a millisecond line)."""
    out: list[Range] = []
    for start, end in ranges:
        pieces = [(start, end)]
        for hole_start, hole_end in holes:
            next_pieces = []
            for a, b in pieces:
                if hole_end < a or hole_start > b:
                    next_pieces.append((a, b))
                    continue
                if a < hole_start:
                    next_pieces.append((a, hole_start - 1))
                if hole_end < b:
                    next_pieces.append((hole_end + 1, b))
            pieces = next_pieces
        out.extend(pieces)
    return out


def known_exchange_gaps(
    lake: Lake, dataset: Dataset, symbol: str, param: str | None
) -> list[Range]:
    """Ranges confirmed missing at the exchange itself (maintenance), from earlier fetches."""
    table = lake.read(
        EXCHANGE_GAPS, symbols=symbol, columns=["dataset", "interval", "start_time", "end_time"]
    )
    if table.num_rows == 0:
        return []
    rows = table.to_pylist()
    return sorted(
        (_ms(row["start_time"]), _ms(row["end_time"]))
        for row in rows
        if row["dataset"] == dataset.name and row["interval"] == param
    )


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date()


def _day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _month_start(day: date) -> int:
    return _day_start(day.replace(day=1))


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _published(end_ms: int, server_now_ms: int) -> bool:
    return end_ms + ARCHIVE_DELAY_MS < server_now_ms


def _days(start_ms: int, end_ms: int) -> list[tuple[date, Range]]:
    """The UTC days that [start, end] touches, each with the part of the range inside it."""
    out = []
    day = _day(start_ms)
    while _day_start(day) <= end_ms:
        day_start = _day_start(day)
        out.append((day, (max(start_ms, day_start), min(end_ms, day_start + DAY_MS - 1))))
        day += timedelta(days=1)
    return out


def _archive_task(
    dataset: Dataset,
    symbol: str,
    param: str | None,
    piece: Range,
    *,
    kind: ArchiveKind,
    period: Literal["daily", "monthly"],
    replace: bool,
    fallback: bool,
) -> Task:
    file = archive_file(
        kind, symbol, _day(piece[0]), period=period, interval=param if kind == "klines" else None
    )
    return Task(
        dataset,
        symbol,
        param,
        piece[0],
        piece[1],
        "archive",
        archive=file,
        replace=replace,
        fallback="rest" if fallback else None,
    )


def _time_tasks(
    dataset: Dataset,
    symbol: str,
    param: str | None,
    ranges: Sequence[Range],
    *,
    window: Window,
    source: Source,
    replace: bool,
    archive_kind: ArchiveKind | None,
) -> list[Task]:
    """Tasks for missing time ranges.

    auto: whole published months/days from the archive (REST if a file is missing), the rest
    from REST; rest: everything from REST; archive: every published day from its file, filtered
    to the range, and what is not published yet reported as unavailable.
    """
    tasks: list[Task] = []
    now = window.server_now_ms
    for start, end in ranges:
        if source == "rest" or archive_kind is None:
            if source == "archive":
                tasks.append(
                    Task(
                        dataset,
                        symbol,
                        param,
                        start,
                        end,
                        "unavailable",
                        reason="no archive exists for this dataset",
                    )
                )
                continue
            tasks.extend(rest_tasks(dataset, symbol, param, start, end, replace=replace))
            continue
        rest_from: int | None = None

        def from_archive(piece: Range, period: Literal["daily", "monthly"], fallback: bool) -> None:
            """Close the REST run before ``piece`` and take ``piece`` from one archive file."""
            nonlocal rest_from
            if rest_from is not None:
                tasks.extend(
                    rest_tasks(dataset, symbol, param, rest_from, piece[0] - 1, replace=replace)
                )
                rest_from = None
            tasks.append(
                _archive_task(
                    dataset,
                    symbol,
                    param,
                    piece,
                    kind=archive_kind,
                    period=period,
                    replace=replace,
                    fallback=fallback,
                )
            )

        days = _days(start, end)
        index = 0
        while index < len(days):
            day, (a, b) = days[index]
            day_start = _day_start(day)
            whole_day = a == day_start and b == day_start + DAY_MS - 1
            month_end = _month_start(_next_month(day)) - 1
            whole_month = whole_day and day.day == 1 and month_end <= end
            if (
                source == "auto"
                and archive_kind != "metrics"
                and whole_month
                and _published(month_end, now)
            ):
                from_archive((a, month_end), "monthly", fallback=True)
                index += (_next_month(day) - day).days
                continue
            if _published(day_start + DAY_MS - 1, now) and (whole_day or source == "archive"):
                from_archive((a, b), "daily", fallback=source == "auto")
            elif source == "archive":
                tasks.append(
                    Task(
                        dataset,
                        symbol,
                        param,
                        a,
                        b,
                        "unavailable",
                        reason="the archive has not published this day yet",
                    )
                )
            elif rest_from is None:
                rest_from = a
            index += 1
        if rest_from is not None:
            tasks.extend(rest_tasks(dataset, symbol, param, rest_from, end, replace=replace))
    return tasks


def rest_tasks(
    dataset: Dataset, symbol: str, param: str | None, start: int, end: int, *, replace: bool
) -> list[Task]:
    """REST tasks for [start, end], cut where the lake's partitions are cut (days for trades,
    months for 1m candles, …): each task then writes its partition once, and tasks of different
    partitions run in parallel."""
    unit = _BUCKET_UNIT[dataset.bucket(param)]
    tasks = []
    cursor = start
    while cursor <= end:
        bucket = np.datetime64(cursor, "ms").astype(f"datetime64[{unit}]")
        next_start = int((bucket + 1).astype("datetime64[ms]").astype(np.int64))
        tasks.append(
            Task(dataset, symbol, param, cursor, min(end, next_start - 1), "rest", replace=replace)
        )
        cursor = next_start
    return tasks


def _grid(start_ms: int, end_ms: int, step_ms: int) -> Range | None:
    first = -(-start_ms // step_ms) * step_ms
    last = end_ms // step_ms * step_ms
    return (first, last) if first <= last else None


def plan_series(
    lake: Lake,
    dataset: Dataset,
    *,
    symbol: str,
    param: str | None,
    window: Window,
    source: Source,
    full_refresh: bool,
    funding_interval_hours: int = 8,
) -> list[Task]:
    """The tasks that bring one series to completeness over ``window``.

    Resume (default) fetches the head before the first stored row, the internal gaps and the
    tail after the last one, skipping ranges the exchange is known not to have. Full refresh
    fetches the whole window and replaces what is stored inside it.
    """
    if dataset is AGG_TRADES:
        return _plan_trades(
            lake, symbol=symbol, window=window, source=source, full_refresh=full_refresh
        )
    if dataset is FUNDING:
        step = funding_interval_hours * HOUR_MS
        grid = _grid(window.positions_start_ms, min(window.end_ms, window.server_now_ms), step)
        if grid is None:
            return []
        if full_refresh:
            return [Task(FUNDING, symbol, None, grid[0], grid[1], "rest", replace=True)]
        coverage = series_coverage(lake, FUNDING, symbol=symbol, start=grid[0], end=grid[1])
        ranges = (
            [(g.first_missing, g.last_missing) for g in coverage.gaps] if coverage.rows else [grid]
        )
        ranges = subtract(ranges, known_exchange_gaps(lake, FUNDING, symbol, None))
        # fundingRate pages are anchored at startTime and hold 1000 settlements: one task.
        return [Task(FUNDING, symbol, None, a, b, "rest") for a, b in _merge_close(ranges, step)]
    step = interval_ms(param or "")
    # Only periods that are over: the open candle / the OI of the running period is not final.
    first = window.positions_start_ms if dataset is OPEN_INTEREST else window.start_ms
    grid = _grid(first, min(window.end_ms, window.server_now_ms - step), step)
    if grid is None:
        return []
    if full_refresh:
        ranges = [grid]
    else:
        coverage = series_coverage(
            lake, dataset, symbol=symbol, param=param, start=grid[0], end=grid[1]
        )
        ranges = (
            [(g.first_missing, g.last_missing) for g in coverage.gaps] if coverage.rows else [grid]
        )
        ranges = subtract(ranges, known_exchange_gaps(lake, dataset, symbol, param))
    if dataset is CANDLES:
        return _time_tasks(
            CANDLES,
            symbol,
            param,
            ranges,
            window=window,
            source=source,
            replace=full_refresh,
            archive_kind="klines",
        )
    assert dataset is OPEN_INTEREST
    return _plan_open_interest(
        symbol, param, ranges, window=window, source=source, replace=full_refresh
    )


def _plan_open_interest(
    symbol: str,
    param: str | None,
    ranges: Sequence[Range],
    *,
    window: Window,
    source: Source,
    replace: bool,
) -> list[Task]:
    """REST inside its 30 days; older 5m data from the daily metrics archive; else unavailable."""
    rest_from = window.server_now_ms - OI_REST_RETENTION_MS
    archive_kind: ArchiveKind | None = "metrics" if param == "5m" else None
    tasks: list[Task] = []
    for a, b in ranges:
        if a < rest_from:
            old = (a, min(b, rest_from - 1))
            if archive_kind is None or source == "rest":
                why = "openInterestHist serves only the last 30 days" + (
                    "" if archive_kind else f"; the metrics archive has 5m only, not {param}"
                )
                tasks.append(Task(OPEN_INTEREST, symbol, param, *old, "unavailable", reason=why))
            else:
                tasks.extend(
                    _time_tasks(
                        OPEN_INTEREST,
                        symbol,
                        param,
                        [old],
                        window=window,
                        source="archive",
                        replace=replace,
                        archive_kind=archive_kind,
                    )
                )
        if b >= rest_from:
            recent = (max(a, rest_from), b)
            tasks.extend(
                _time_tasks(
                    OPEN_INTEREST,
                    symbol,
                    param,
                    [recent],
                    window=window,
                    source="archive" if source == "archive" else "rest",
                    replace=replace,
                    archive_kind=archive_kind,
                )
            )
    return tasks


def _merge_close(ranges: Sequence[Range], step: int) -> list[Range]:
    """Join ranges separated by less than 1000 steps: one paged request covers both."""
    merged: list[Range] = []
    for a, b in sorted(ranges):
        if merged and a - merged[-1][1] < 1000 * step:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _plan_trades(
    lake: Lake, *, symbol: str, window: Window, source: Source, full_refresh: bool
) -> list[Task]:
    """Aggregate trades: id gaps by id, the head and tail by time (archive days, REST edges)."""
    end = min(window.end_ms, window.server_now_ms)
    if window.start_ms > end:
        return []

    def by_time(
        a: int, b: int, *, from_id: int | None = None, to_id: int | None = None
    ) -> list[Task]:
        tasks = _time_tasks(
            AGG_TRADES,
            symbol,
            None,
            [(a, b)],
            window=window,
            source=source,
            replace=full_refresh,
            archive_kind="aggTrades",
        )
        out = []
        for planned in tasks:
            task = planned
            if task.source == "rest":
                # The ids just outside a range are known: page from/to them without discovery.
                task = Task(
                    AGG_TRADES,
                    symbol,
                    None,
                    task.start_ms,
                    task.end_ms,
                    "rest",
                    from_id=from_id if task.start_ms == a else None,
                    to_id=to_id if task.end_ms == b else None,
                    replace=full_refresh,
                )
            out.append(task)
        return out

    if full_refresh:
        return by_time(window.start_ms, end)
    table = lake.read(
        AGG_TRADES,
        symbols=symbol,
        start=window.start_ms,
        end=end,
        columns=["agg_trade_id", "transact_time"],
    )
    if table.num_rows == 0:
        return by_time(window.start_ms, end)
    ids = table["agg_trade_id"].to_numpy()
    times = table["transact_time"].cast(pa.int64()).to_numpy()
    tasks: list[Task] = []
    first_time, last_time = int(times[0]), int(times[-1])
    if first_time > window.start_ms:
        tasks.extend(by_time(window.start_ms, first_time, to_id=int(ids[0]) - 1))
    for index in np.flatnonzero(np.diff(ids) > 1):
        tasks.append(
            Task(
                AGG_TRADES,
                symbol,
                None,
                int(times[index]),
                int(times[index + 1]),
                "rest",
                from_id=int(ids[index]) + 1,
                to_id=int(ids[index + 1]) - 1,
            )
        )
    if last_time < end:
        tasks.extend(by_time(last_time, end, from_id=int(ids[-1]) + 1))
    return tasks

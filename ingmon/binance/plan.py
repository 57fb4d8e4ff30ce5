"""Backfill planning: what each (dataset, symbol) is missing in a window, and where to get it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Literal

import numpy as np
import pyarrow as pa

from ingmon.binance.archive import ArchiveFile, ArchiveKind, archive_file, coverage_offset_ms
from ingmon.binance.request import Source
from ingmon.coverage import series_coverage
from ingmon.integrity import known_exchange_gaps, subtract
from ingmon.lake import Lake
from ingmon.schema import AGG_TRADES, OPEN_INTEREST, MarketSeries, interval_ms
from ingmon.times import (
    DAY_MS,
    HOUR_MS,
    ceil_ms,
    day_of,
    day_start_ms,
    floor_ms,
    month_start_ms,
    next_month,
)

__all__ = [
    "OI_REST_RETENTION_MS",
    "SeriesPlan",
    "Task",
    "Unavailable",
    "Window",
    "plan_series",
    "rest_tasks",
]

_BUCKET_UNIT = {"day": "D", "month": "M", "year": "Y"}
Range = tuple[int, int]
Period = Literal["daily", "monthly"]

# openInterestHist serves about the last 30 days; keep a minute of margin off the wall.
OI_REST_RETENTION_MS = 30 * DAY_MS - 60_000
# A daily archive is assumed published one day after the day ends (freqtrade assumes two).
ARCHIVE_DELAY_MS = DAY_MS


@dataclass(frozen=True)
class Window:
    """The backfill window of one symbol, already clipped to its listing and to server time.

    Both ends are inclusive here (``end_ms`` is the last millisecond of the user's half-open
    window): every range the planner handles is an inclusive ``(first, last)`` pair.
    """

    start_ms: int
    end_ms: int
    server_now_ms: int
    # Open interest and funding exist only strictly after the listing (no positions before).
    listing_ms: int = 0

    @property
    def positions_start_ms(self) -> int:
        return max(self.start_ms, self.listing_ms + 1)

    def first_ms(self, series: MarketSeries) -> int:
        """Where ``series`` can start inside this window."""
        return self.positions_start_ms if series.after_listing else self.start_ms

    def last_final_ms(self, series: MarketSeries, step_ms: int) -> int:
        """The latest row time of ``series`` the exchange serves as final: a candle once it has
        closed, an open-interest snapshot or a settlement as soon as it exists."""
        end = min(self.end_ms, self.server_now_ms)
        return min(end, self.server_now_ms - step_ms) if series.final_after_step else end


@dataclass(frozen=True)
class Task:
    """One unit of fetching: a REST range (optionally id-bounded) or one archive file."""

    series: MarketSeries
    symbol: str
    param: str | None
    start_ms: int
    end_ms: int
    source: Literal["rest", "archive"]
    archive: ArchiveFile | None = None
    from_id: int | None = None
    to_id: int | None = None
    replace: bool = False
    # Where to go when the archive has no such file (auto mode), or None to report it.
    fallback: Literal["rest"] | None = None

    @property
    def dataset(self) -> str:
        return self.series.name


@dataclass(frozen=True)
class Unavailable:
    """A range no source can provide (too old for REST, not archived, not published yet)."""

    series: MarketSeries
    symbol: str
    param: str | None
    start_ms: int
    end_ms: int
    reason: str
    # Whether the same command can get it later (a day the archive has not published yet),
    # rather than never from these sources (older than REST's retention, no archive at all).
    later: bool = False


@dataclass
class SeriesPlan:
    """What one series needs: tasks to run, and ranges that cannot be fetched from anywhere."""

    tasks: list[Task] = field(default_factory=list)
    unavailable: list[Unavailable] = field(default_factory=list)

    def extend(self, other: SeriesPlan) -> None:
        self.tasks.extend(other.tasks)
        self.unavailable.extend(other.unavailable)


def _published(end_ms: int, server_now_ms: int) -> bool:
    return end_ms + ARCHIVE_DELAY_MS < server_now_ms


def _days(start_ms: int, end_ms: int, *, offset_ms: int = 0) -> list[tuple[date, Range]]:
    """The UTC days that [start, end] touches, each with the part of the range inside it; a
    day spans [00:00 + offset_ms, next 00:00 + offset_ms)."""
    out = []
    day = day_of(start_ms - offset_ms)
    while day_start_ms(day) + offset_ms <= end_ms:
        day_start = day_start_ms(day) + offset_ms
        out.append((day, (max(start_ms, day_start), min(end_ms, day_start + DAY_MS - 1))))
        day += timedelta(days=1)
    return out


def rest_tasks(
    series: MarketSeries, symbol: str, param: str | None, start: int, end: int, *, replace: bool
) -> list[Task]:
    """REST tasks for [start, end], cut where the lake's partitions are cut (days for trades,
    months for 1m candles, …): each task then writes its partition once, and tasks of different
    partitions run in parallel."""
    unit = _BUCKET_UNIT[series.dataset.bucket(param)]
    tasks = []
    cursor = start
    while cursor <= end:
        bucket = np.datetime64(cursor, "ms").astype(f"datetime64[{unit}]")
        next_start = int((bucket + 1).astype("datetime64[ms]").astype(np.int64))
        tasks.append(
            Task(series, symbol, param, cursor, min(end, next_start - 1), "rest", replace=replace)
        )
        cursor = next_start
    return tasks


class _ArchiveSplitter:
    """Splits one missing range into archive files and REST runs (see ``_time_plan``)."""

    def __init__(
        self,
        series: MarketSeries,
        symbol: str,
        param: str | None,
        *,
        kind: ArchiveKind,
        source: Source,
        replace: bool,
        server_now_ms: int,
    ) -> None:
        self.series, self.symbol, self.param = series, symbol, param
        self.kind, self.source, self.replace = kind, source, replace
        self.server_now_ms = server_now_ms
        self.plan = SeriesPlan()
        self._rest_from: int | None = None

    def split(self, start: int, end: int) -> None:
        days = _days(start, end, offset_ms=coverage_offset_ms(self.kind))
        index = 0
        while index < len(days):
            index += self._take(days, index, end)
        self._close_rest(end)

    def _take(self, days: list[tuple[date, Range]], index: int, end: int) -> int:
        """Plan ``days[index]`` (or its whole month); return how many days were used."""
        day, (a, b) = days[index]
        day_start = day_start_ms(day) + coverage_offset_ms(self.kind)
        whole_day = a == day_start and b == day_start + DAY_MS - 1
        month_end = month_start_ms(next_month(day)) - 1
        whole_month = whole_day and day.day == 1 and month_end <= end
        if (
            self.source == "auto"
            and self.kind != "metrics"  # the metrics archive is daily only
            and whole_month
            and _published(month_end, self.server_now_ms)
        ):
            self._from_archive((a, month_end), day, "monthly", fallback=True)
            return (next_month(day) - day).days
        if _published(day_start + DAY_MS - 1, self.server_now_ms) and (
            whole_day or self.source == "archive"
        ):
            self._from_archive((a, b), day, "daily", fallback=self.source == "auto")
        elif self.source == "archive":
            self._unavailable((a, b), "the archive has not published this day yet", later=True)
        elif self._rest_from is None:
            self._rest_from = a
        return 1

    def _from_archive(self, piece: Range, day: date, period: Period, *, fallback: bool) -> None:
        """Close the REST run before ``piece`` and take ``piece`` from the file of ``day``."""
        self._close_rest(piece[0] - 1)
        file = archive_file(
            self.kind,
            self.symbol,
            day,
            period=period,
            interval=self.param if self.kind == "klines" else None,
        )
        self.plan.tasks.append(
            Task(
                self.series,
                self.symbol,
                self.param,
                piece[0],
                piece[1],
                "archive",
                archive=file,
                replace=self.replace,
                fallback="rest" if fallback else None,
            )
        )

    def _close_rest(self, end: int) -> None:
        if self._rest_from is not None and self._rest_from <= end:
            self.plan.tasks.extend(
                rest_tasks(
                    self.series, self.symbol, self.param, self._rest_from, end, replace=self.replace
                )
            )
        self._rest_from = None

    def _unavailable(self, piece: Range, reason: str, *, later: bool) -> None:
        self.plan.unavailable.append(
            Unavailable(
                self.series, self.symbol, self.param, piece[0], piece[1], reason, later=later
            )
        )


def _time_plan(
    series: MarketSeries,
    symbol: str,
    param: str | None,
    ranges: Sequence[Range],
    *,
    window: Window,
    source: Source,
    replace: bool,
    archive_kind: ArchiveKind | None,
) -> SeriesPlan:
    """Tasks for missing time ranges.

    auto: whole published months/days from the archive (REST if a file is missing), the rest
    from REST; rest: everything from REST; archive: every published day from its file, filtered
    to the range, and what is not published yet reported as unavailable.
    """
    plan = SeriesPlan()
    for start, end in ranges:
        if archive_kind is None and source == "archive":
            plan.unavailable.append(
                Unavailable(series, symbol, param, start, end, "no archive exists for this dataset")
            )
        elif source == "rest" or archive_kind is None:
            plan.tasks.extend(rest_tasks(series, symbol, param, start, end, replace=replace))
        else:
            splitter = _ArchiveSplitter(
                series,
                symbol,
                param,
                kind=archive_kind,
                source=source,
                replace=replace,
                server_now_ms=window.server_now_ms,
            )
            splitter.split(start, end)
            plan.extend(splitter.plan)
    return plan


def _grid(start_ms: int, end_ms: int, step_ms: int) -> Range | None:
    first, last = ceil_ms(start_ms, step_ms), floor_ms(end_ms, step_ms)
    return (first, last) if first <= last else None


def _missing(
    lake: Lake, series: MarketSeries, symbol: str, param: str | None, grid: Range
) -> list[Range]:
    """Ranges of ``grid`` with no stored row, minus those the exchange is known not to have."""
    coverage = series_coverage(
        lake, series.dataset, symbol=symbol, param=param, start=grid[0], end=grid[1]
    )
    ranges = [(g.first_missing, g.last_missing) for g in coverage.gaps] if coverage.rows else [grid]
    return subtract(ranges, known_exchange_gaps(lake, series, symbol, param))


def plan_series(
    lake: Lake,
    series: MarketSeries,
    *,
    symbol: str,
    param: str | None,
    window: Window,
    source: Source,
    full_refresh: bool,
    funding_interval_hours: int = 8,
) -> SeriesPlan:
    """What brings one series to completeness over ``window``.

    Resume (default) fetches the head before the first stored row, the internal gaps and the
    tail after the last one, skipping ranges the exchange is known not to have. Full refresh
    fetches the whole window and replaces what is stored inside it.
    """
    if series.cadence == "ids":
        return _plan_trades(
            lake, series, symbol=symbol, window=window, source=source, full=full_refresh
        )
    if series.cadence == "funding":
        return SeriesPlan(
            _plan_funding(lake, series, symbol, window, funding_interval_hours, full=full_refresh)
        )
    step = interval_ms(param or "")
    grid = _grid(window.first_ms(series), window.last_final_ms(series, step), step)
    if grid is None:
        return SeriesPlan()
    ranges = [grid] if full_refresh else _missing(lake, series, symbol, param, grid)
    if series.dataset is OPEN_INTEREST:
        return _plan_open_interest(
            series, symbol, param, ranges, window=window, source=source, replace=full_refresh
        )
    return _time_plan(
        series,
        symbol,
        param,
        ranges,
        window=window,
        source=source,
        replace=full_refresh,
        archive_kind=series.archive_kind,
    )


def _plan_funding(
    lake: Lake,
    series: MarketSeries,
    symbol: str,
    window: Window,
    interval_hours: int,
    *,
    full: bool,
) -> list[Task]:
    """Funding pages are anchored at startTime and hold 1000 settlements: few, merged tasks."""
    step = interval_hours * HOUR_MS
    grid = _grid(window.first_ms(series), window.last_final_ms(series, step), step)
    if grid is None:
        return []
    if full:
        return [Task(series, symbol, None, grid[0], grid[1], "rest", replace=True)]
    ranges = _missing(lake, series, symbol, None, grid)
    return [Task(series, symbol, None, a, b, "rest") for a, b in _merge_close(ranges, step)]


def _plan_open_interest(
    series: MarketSeries,
    symbol: str,
    param: str | None,
    ranges: Sequence[Range],
    *,
    window: Window,
    source: Source,
    replace: bool,
) -> SeriesPlan:
    """REST inside its 30 days; older 5m data from the daily metrics archive; else unavailable."""
    rest_from = window.server_now_ms - OI_REST_RETENTION_MS
    archive_kind: ArchiveKind | None = "metrics" if param == "5m" else None
    plan = SeriesPlan()
    for a, b in ranges:
        if a < rest_from:
            old = (a, min(b, rest_from - 1))
            if archive_kind is None or source == "rest":
                why = "openInterestHist serves only the last 30 days" + (
                    "" if archive_kind else f"; the metrics archive has 5m only, not {param}"
                )
                plan.unavailable.append(Unavailable(series, symbol, param, *old, why))
            else:
                plan.extend(
                    _time_plan(
                        series,
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
            plan.extend(
                _time_plan(
                    series,
                    symbol,
                    param,
                    [(max(a, rest_from), b)],
                    window=window,
                    source="archive" if source == "archive" else "rest",
                    replace=replace,
                    archive_kind=archive_kind,
                )
            )
    return plan


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
    lake: Lake,
    series: MarketSeries,
    *,
    symbol: str,
    window: Window,
    source: Source,
    full: bool,
) -> SeriesPlan:
    """Aggregate trades: id gaps by id, the head and tail by time (archive days, REST edges)."""
    end = min(window.end_ms, window.server_now_ms)
    if window.start_ms > end:
        return SeriesPlan()

    def by_time(a: int, b: int, *, from_id: int | None = None, to_id: int | None = None) -> None:
        """[a, b] by time; the ids just outside it, when known, spare REST the id discovery."""
        timed = _time_plan(
            series,
            symbol,
            None,
            [(a, b)],
            window=window,
            source=source,
            replace=full,
            archive_kind=series.archive_kind,
        )
        plan.unavailable.extend(timed.unavailable)
        for task in timed.tasks:
            plan.tasks.append(
                replace(
                    task,
                    from_id=from_id if task.start_ms == a else None,
                    to_id=to_id if task.end_ms == b else None,
                )
                if task.source == "rest"
                else task
            )

    plan = SeriesPlan()
    if full:
        by_time(window.start_ms, end)
        return plan
    table = lake.read(
        AGG_TRADES,
        symbols=symbol,
        start=window.start_ms,
        end=end,
        columns=["agg_trade_id", "transact_time"],
    )
    if table.num_rows == 0:
        by_time(window.start_ms, end)
        return plan
    ids = table["agg_trade_id"].to_numpy()
    times = table["transact_time"].cast(pa.int64()).to_numpy()
    first_time, last_time = int(times[0]), int(times[-1])
    if first_time > window.start_ms:
        by_time(window.start_ms, first_time, to_id=int(ids[0]) - 1)
    for index in np.flatnonzero(np.diff(ids) > 1):
        plan.tasks.append(
            Task(
                series,
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
        by_time(last_time, end, from_id=int(ids[-1]) + 1)
    return plan

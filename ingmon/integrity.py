"""One integrity model: what a stored series holds, what is wrong with it, and how to repair it.

``assess_series`` is the single definition of gaps, known exchange gaps, duplicates and
staleness. The backfill summary, ``ingmon check`` and (later) the monitor's health model and the
API are all built on its ``SeriesHealth``; they differ only in what they *expect*:

- ``expect="window"`` (a backfill that just ran): the series must fill its window completely,
  the tail included; staleness is not judged (the window ends where the run stopped).
- ``expect="live"`` (a check of a lake that is kept fresh): the head and internal gaps inside
  the window are problems, the tail is judged as freshness against the dataset's thresholds,
  and an empty series is a problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from ingmon.config import Threshold
from ingmon.coverage import Coverage, Gap, series_coverage
from ingmon.errors import CorruptPartitionError
from ingmon.lake import CorruptPartition, Lake
from ingmon.problems import Problem, RepairContext, Severity, range_problem, refetch_command
from ingmon.schema import EXCHANGE_GAPS, MARKET_SERIES, MarketSeries
from ingmon.times import DAY_MS, iso_ms

__all__ = [
    "Expectation",
    "SeriesHealth",
    "Verdict",
    "assess_series",
    "freshness_verdict",
    "known_exchange_gaps",
    "subtract",
    "thresholds_for_step",
]

Range = tuple[int, int]
Verdict = Severity
Expectation = Literal["window", "live"]


# ---- ranges ------------------------------------------------------------------------------------


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
    lake: Lake, series: MarketSeries | str, symbol: str, param: str | None
) -> list[Range]:
    """Ranges confirmed missing at the exchange itself (maintenance), from earlier fetches."""
    name = series if isinstance(series, str) else series.name
    table = lake.read(
        EXCHANGE_GAPS, symbols=symbol, columns=["dataset", "interval", "start_time", "end_time"]
    )
    if table.num_rows == 0:
        return []
    starts = table["start_time"].cast(pa.int64()).to_pylist()
    ends = table["end_time"].cast(pa.int64()).to_pylist()
    names = table["dataset"].to_pylist()
    params = table["interval"].to_pylist()
    return sorted(
        (start, end)
        for start, end, gap_dataset, gap_param in zip(starts, ends, names, params, strict=True)
        if gap_dataset == name and gap_param == param
    )


# ---- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesHealth:
    """The integrity of one (dataset, symbol, parameter) series over a window."""

    dataset: str
    symbol: str
    param: str | None
    window_start_ms: int | None
    window_end_ms: int  # exclusive: the window is [start, end)
    rows: int
    first_event_ms: int | None
    last_event_ms: int | None
    step_ms: int | None
    gaps: tuple[Gap, ...]  # missing, and not explained by the exchange
    exchange_gaps: tuple[Gap, ...]  # missing at the exchange itself (maintenance)
    duplicates: int
    # Age of the newest event at ``now`` (for a gridded series: of the end of its last
    # period) and its verdict against the dataset's thresholds; None when not judged.
    age_seconds: float | None
    freshness: Verdict | None
    problems: tuple[Problem, ...]
    # Version files that cannot be read. The series' own: nothing else is judged while there
    # are any. Its symbol's exchange_gaps: the series is judged, every gap counting as missing.
    corrupt_files: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "earliest": iso_ms(self.first_event_ms),
            "latest": iso_ms(self.last_event_ms),
            "window": [iso_ms(self.window_start_ms), iso_ms(self.window_end_ms)],
            "gaps": len(self.gaps),
            "exchange_gaps": len(self.exchange_gaps),
            "duplicates": self.duplicates,
            "age_seconds": self.age_seconds,
            "freshness": self.freshness,
            "corrupt_files": list(self.corrupt_files),
        }


def freshness_verdict(age_seconds: float, thresholds: Threshold) -> Verdict:
    """ok up to the warn age, warn up to the error age, error beyond (as dbt's warn/error_after)."""
    if age_seconds > thresholds.error_seconds:
        return "error"
    if age_seconds > thresholds.warn_seconds:
        return "warn"
    return "ok"


def _explained(gap: Gap, series: MarketSeries, exchange: Sequence[Range]) -> bool:
    """Every slot of a time gap is a known exchange gap (trade id gaps never are)."""
    if series.cadence == "ids":
        return False
    return not subtract([(gap.first_missing, gap.last_missing)], exchange)


def _gap_problem(
    gap: Gap, series: MarketSeries, *, symbol: str, param: str | None, context: RepairContext
) -> Problem:
    if series.cadence == "ids":
        start, end = gap.after_time_ms or 0, gap.before_time_ms or 0
        return Problem(
            series.name,
            symbol,
            "id_gap",
            f"aggregate ids {gap.first_missing}..{gap.last_missing} missing",
            param=param,
            first_missing=gap.first_missing,
            last_missing=gap.last_missing,
            missing=gap.missing,
            repair=refetch_command(
                series=series,
                symbol=symbol,
                param=param,
                start_ms=start,
                end_ms=end,
                context=context,
            ),
            details={"after": iso_ms(gap.after_time_ms), "before": iso_ms(gap.before_time_ms)},
            start_ms=start,
            end_ms=end,
        )
    return range_problem(
        series,
        symbol=symbol,
        param=param,
        kind=f"{gap.kind}_gap",
        message=f"{gap.missing} {gap.kind} slot(s) missing",
        start_ms=gap.first_missing,
        end_ms=gap.last_missing,
        context=context,
        missing=gap.missing,
    )


def thresholds_for_step(
    thresholds: Threshold, series: MarketSeries, step_ms: int | None
) -> Threshold:
    """Thresholds set for the series' nominal step, shifted to this series' own step."""
    if step_ms is None or series.nominal_step_ms is None:
        return thresholds
    shift = (step_ms - series.nominal_step_ms) / 1000
    return Threshold(
        warn_seconds=thresholds.warn_seconds + shift,
        error_seconds=thresholds.error_seconds + shift,
    )


def _age_seconds(coverage: Coverage, series: MarketSeries, now_ms: int) -> float | None:
    """Age of the newest data at ``now_ms``: a candle is data up to its close; a snapshot, a
    settlement or a trade at its own time."""
    if coverage.latest_ms is None:
        return None
    step = coverage.step_ms or 0 if series.final_after_step else 0
    return round((now_ms - (coverage.latest_ms + step)) / 1000, 1)


def _stale_problem(
    coverage: Coverage,
    series: MarketSeries,
    *,
    age: float,
    verdict: Verdict,
    now_ms: int,
    context: RepairContext,
) -> Problem:
    assert coverage.latest_ms is not None
    # Resume from the newest stored row: the command refetches exactly the missing tail.
    start = coverage.latest_ms + (coverage.step_ms or 0 if series.cadence != "ids" else 0)
    start = min(start, now_ms - 1)
    problem = range_problem(
        series,
        symbol=coverage.symbol,
        param=coverage.param,
        kind="stale",
        message=f"newest data is {age:g} s old",
        start_ms=start,
        end_ms=now_ms - 1,
        context=context,
    )
    return Problem(
        problem.dataset,
        problem.symbol,
        "stale",
        problem.message,
        param=problem.param,
        severity=verdict,
        repair=problem.repair,
        details={"latest": iso_ms(coverage.latest_ms), "age_seconds": age},
        start_ms=start,
        end_ms=now_ms - 1,
    )


def _empty_problem(
    series: MarketSeries,
    *,
    symbol: str,
    param: str | None,
    start_ms: int | None,
    end_ms: int,
    context: RepairContext,
) -> Problem:
    """Nothing stored: backfill the window (or, without one, the last day to start with)."""
    first = start_ms if start_ms is not None else end_ms - DAY_MS
    problem = range_problem(
        series,
        symbol=symbol,
        param=param,
        kind="empty",
        message="nothing stored"
        + ("" if start_ms is not None else "; the command backfills the last day to start with"),
        start_ms=first,
        end_ms=end_ms - 1,
        context=context,
    )
    return Problem(
        problem.dataset,
        symbol,
        "empty",
        problem.message,
        param=param,
        repair=problem.repair,
        start_ms=first,
        end_ms=end_ms - 1,
    )


def _duplicates_problem(
    coverage: Coverage, series: MarketSeries, *, context: RepairContext
) -> Problem:
    """Rows sharing a key: a full refresh of the range holding them keeps one row per key."""
    assert coverage.duplicate_span_ms is not None
    first, last = coverage.duplicate_span_ms
    command = refetch_command(
        series=series,
        symbol=coverage.symbol,
        param=coverage.param,
        start_ms=first,
        end_ms=last,
        context=context,
        full_refresh=True,
    )
    return Problem(
        series.name,
        coverage.symbol,
        "duplicates",
        f"{coverage.duplicates} rows share a key with another row",
        param=coverage.param,
        repair=command,
        details={"count": coverage.duplicates},
        start_ms=first,
        end_ms=last,
    )


def _unreadable(
    damaged: Sequence[CorruptPartition],
    series: MarketSeries,
    *,
    symbol: str,
    param: str | None,
    start_ms: int | None,
    end_ms: int,
    now_ms: int,
    context: RepairContext,
) -> SeriesHealth:
    """A series with damaged partitions: nothing else is judged until they are rewritten."""
    problems = []
    for part in damaged:
        last = min(part.end_ms, now_ms - 1)
        problems.append(
            Problem(
                series.name,
                symbol,
                "corrupt_partition",
                f"{part.message}; the command rewrites the partition (a backfill moves the "
                f"damaged file to {part.directory / 'quarantine'} first)",
                param=param,
                repair=refetch_command(
                    series=series,
                    symbol=symbol,
                    param=param,
                    start_ms=part.start_ms,
                    end_ms=last,
                    context=context,
                    full_refresh=True,
                ),
                details={"file": str(part.version), "reason": part.reason},
                start_ms=part.start_ms,
                end_ms=last,
            )
        )
    return SeriesHealth(
        dataset=series.name,
        symbol=symbol,
        param=param,
        window_start_ms=start_ms,
        window_end_ms=end_ms,
        rows=0,
        first_event_ms=None,
        last_event_ms=None,
        step_ms=None,
        gaps=(),
        exchange_gaps=(),
        duplicates=0,
        age_seconds=None,
        freshness=None,
        problems=tuple(problems),
        corrupt_files=tuple(str(part.version) for part in damaged),
    )


def _read(
    lake: Lake,
    series: MarketSeries,
    *,
    symbol: str,
    param: str | None,
    start_ms: int | None,
    end_ms: int,
    tolerance_ratio: float,
) -> tuple[Coverage | None, list[CorruptPartition]]:
    """The series' coverage over ``[start_ms, end_ms)``, or None with the damaged partitions
    that keep it from being read (found by their footers, or by the read itself)."""
    last_ms = end_ms - 1
    damaged = lake.find_corrupt(
        series.dataset, symbol=symbol, param=param, start=start_ms, end=last_ms
    )
    if damaged:
        return None, damaged
    try:
        coverage = series_coverage(
            lake,
            series.dataset,
            symbol=symbol,
            param=param,
            start=start_ms,
            end=last_ms,
            tolerance_ratio=tolerance_ratio,
        )
    except CorruptPartitionError as error:  # damage past a sound footer
        return None, [error.partition]
    return coverage, []


def _split_gaps(
    lake: Lake, coverage: Coverage, series: MarketSeries, *, expect: Expectation
) -> tuple[tuple[Gap, ...], tuple[Gap, ...], list[CorruptPartition]]:
    """(gaps that are problems, gaps the exchange itself has, damaged ``exchange_gaps``
    partitions). Live, the tail is no gap: how far behind the series is, is its freshness.
    When the symbol's known exchange gaps cannot be read, none is known: every gap counts.
    (They never explain a gap in trade ids, so a trade series does not read them.)"""
    exchange: list[Range] = []
    damaged: list[CorruptPartition] = []
    try:
        if series.cadence != "ids":
            exchange = known_exchange_gaps(lake, series, coverage.symbol, coverage.param)
    except CorruptPartitionError as error:
        exchange = []
        damaged = lake.find_corrupt(EXCHANGE_GAPS, symbol=coverage.symbol)
        if error.partition.version not in {part.version for part in damaged}:
            damaged.append(error.partition)  # damage past a sound footer
    explained = tuple(g for g in coverage.gaps if _explained(g, series, exchange))
    unexplained = tuple(g for g in coverage.gaps if g not in explained)
    if expect == "live":
        unexplained = tuple(g for g in unexplained if g.kind != "tail")
    return unexplained, explained, damaged


def _exchange_gaps_problem(
    part: CorruptPartition, series: MarketSeries, *, symbol: str, param: str | None
) -> Problem:
    """A damaged partition of the symbol's known exchange gaps: the series is read, but no
    gap of it can be told to be the exchange's own."""
    return Problem(
        series.name,
        symbol,
        "corrupt_partition",
        f"{part.message}; the exchange's own gaps cannot be read, so every gap counts as "
        f"missing. Move the file to {part.directory / 'quarantine'} (the backfill records an "
        "exchange gap again when it meets one)",
        param=param,
        details={"file": str(part.version), "reason": part.reason, "source": part.dataset},
    )


def assess_series(
    lake: Lake,
    series: MarketSeries | str,
    *,
    symbol: str,
    param: str | None,
    start_ms: int | None,
    end_ms: int,
    now_ms: int,
    expect: Expectation,
    thresholds: Threshold | None = None,
    tolerance_ratio: float = 0.1,
    context: RepairContext | None = None,
) -> SeriesHealth:
    """The health of one series over the half-open window ``[start_ms, end_ms)`` at ``now_ms``
    (``start_ms`` None: from the first stored row).

    Gaps come from ``series_coverage`` (candles and OI on their grid, funding by its interval,
    trades by id continuity); those entirely inside known exchange gaps are ``exchange_gaps``.
    See the module docstring for what ``expect`` changes.
    """
    series = MARKET_SERIES[series] if isinstance(series, str) else series
    context = context or RepairContext()
    coverage, damaged = _read(
        lake,
        series,
        start_ms=start_ms,
        end_ms=end_ms,
        tolerance_ratio=tolerance_ratio,
        symbol=symbol,
        param=param,
    )
    if coverage is None:
        return _unreadable(
            damaged,
            series,
            start_ms=start_ms,
            end_ms=end_ms,
            now_ms=now_ms,
            context=context,
            symbol=symbol,
            param=param,
        )
    gaps, exchange_gaps, damaged = _split_gaps(lake, coverage, series, expect=expect)
    if expect == "live" and coverage.rows == 0:
        gaps = ()  # the whole window is missing: one ``empty`` problem says it, not a gap too
    problems = [
        _exchange_gaps_problem(part, series, symbol=symbol, param=param) for part in damaged
    ]
    problems.extend(
        _gap_problem(gap, series, context=context, symbol=symbol, param=param) for gap in gaps
    )
    age = _age_seconds(coverage, series, now_ms) if expect == "live" else None
    verdict: Verdict | None = None
    if age is not None and thresholds is not None:
        verdict = freshness_verdict(age, thresholds_for_step(thresholds, series, coverage.step_ms))
    if expect == "live" and coverage.rows == 0:
        problems.append(
            _empty_problem(
                series,
                start_ms=start_ms,
                end_ms=end_ms,
                context=context,
                symbol=symbol,
                param=param,
            )
        )
    if verdict in ("warn", "error") and age is not None:
        problems.append(
            _stale_problem(
                coverage, series, age=age, verdict=verdict, now_ms=now_ms, context=context
            )
        )
    if coverage.duplicates:
        problems.append(_duplicates_problem(coverage, series, context=context))
    return SeriesHealth(
        dataset=series.name,
        window_start_ms=start_ms,
        window_end_ms=end_ms,
        rows=coverage.rows,
        first_event_ms=coverage.earliest_ms,
        last_event_ms=coverage.latest_ms,
        step_ms=coverage.step_ms,
        gaps=gaps,
        exchange_gaps=exchange_gaps,
        duplicates=coverage.duplicates,
        age_seconds=age,
        freshness=verdict,
        problems=tuple(problems),
        symbol=symbol,
        param=param,
        corrupt_files=tuple(str(part.version) for part in damaged),
    )

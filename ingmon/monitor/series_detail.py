"""One series up close, for the freshness drill-down: its latency over time, its cadence
deviations, its gaps and its latest ingest batches over a window — plain data, no web framework.

Built on the same definitions as the health snapshot, so the drill-down explains the grid cell
it was opened from: ``ingmon.latency.series_batches`` says which batches are live and what their
latency is, the cadence is judged on the intervals between successive *successful* live batches
against ``expected_interval_seconds`` (``ingmon.monitor.health``), and the gaps are those of
``ingmon.integrity.assess_series(expect="live")`` plus the exchange's own gaps. Reads are
bounded by the window (at most ``MAX_WINDOW_HOURS``) and the table by ``batch_limit`` rows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ingmon.config import Settings
from ingmon.coverage import Gap
from ingmon.errors import CorruptPartitionError
from ingmon.integrity import SeriesHealth
from ingmon.lake import Lake
from ingmon.latency import series_batches
from ingmon.monitor.health import expected_interval_seconds, live_health
from ingmon.monitor.status import Status, judge_above
from ingmon.schema import CANDLES, INGEST_LOG, MARKET_SERIES, MarketSeries, market_series
from ingmon.times import HOUR_MS, iso_ms

__all__ = [
    "BATCH_COLUMNS",
    "MAX_WINDOW_HOURS",
    "CadenceSeries",
    "GapRange",
    "IngestBatch",
    "LatencySeries",
    "SeriesDetail",
    "peak_indices",
    "series_detail",
    "series_symbols",
]

MAX_WINDOW_HOURS = 7 * 24
# The ``ingest_log`` columns the drill-down shows (a superset of what series_batches needs).
BATCH_COLUMNS = (
    "batch_id",
    "dataset",
    "interval",
    "first_event_time",
    "last_event_time",
    "rows_fetched",
    "rows_inserted",
    "rows_replaced",
    "fetched_at",
    "written_at",
    "source",
)
# ``ingest_log`` is partitioned by ``fetched_at``: a batch written in the window was fetched
# at most this long before it (as ``ingmon.latency.read_ingest_log`` reads it).
_FETCH_TO_WRITE_MARGIN_MS = HOUR_MS

GapKind = Literal["missing", "exchange", "stale"]


@dataclass(frozen=True)
class LatencySeries:
    """Each live batch with events (``written_at`` order): when it was written and how long
    after its newest event closed — what the latency p50/p95 of the health model are taken
    over — and the thresholds the p95 is judged by."""

    written_ms: npt.NDArray[np.int64]
    latency_seconds: npt.NDArray[np.float64]
    warn_seconds: float
    error_seconds: float
    backfill_batches: int  # batches with events that were not live (archive, older pages)


@dataclass(frozen=True)
class CadenceSeries:
    """The interval before each successful live batch (from the previous one), its deviation
    ratio ``interval / expected − 1`` and its status by the warn/error ratios; the interval
    still open at the window's end (``now`` − the last successful batch) is judged alike."""

    written_ms: npt.NDArray[np.int64]  # the later batch of each pair
    interval_seconds: npt.NDArray[np.float64]
    deviation_ratio: npt.NDArray[np.float64]
    statuses: tuple[Status, ...]
    expected_seconds: float
    warn_ratio: float
    error_ratio: float
    last_success_ms: int | None
    open_interval_seconds: float | None
    open_status: Status | None


@dataclass(frozen=True)
class GapRange:
    """A stretch of time the series lacks, ``[start_ms, end_ms)``: ``missing`` (a gap the
    health model counts), ``exchange`` (missing at the exchange itself, not counted) or
    ``stale`` (from the newest event's close to now, when freshness is warn/error)."""

    kind: GapKind
    start_ms: int
    end_ms: int
    missing: int | None  # slots (or trade ids) missing; None for the stale tail
    label: str

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


@dataclass(frozen=True)
class IngestBatch:
    """One ``ingest_log`` row of the series, and whether it was live (its latency then)."""

    batch_id: str
    fetched_ms: int
    written_ms: int
    first_event_ms: int | None
    last_event_ms: int | None
    rows_fetched: int
    rows_inserted: int
    rows_replaced: int
    source: str
    live: bool
    latency_seconds: float | None


@dataclass(frozen=True)
class SeriesDetail:
    """A series over ``[start_ms, end_ms)`` (``end_ms`` is now)."""

    dataset: str
    symbol: str
    param: str | None
    start_ms: int
    end_ms: int
    rows: int  # stored in the window
    last_event_close_ms: int | None
    age_seconds: float | None
    freshness: Status  # of the newest event against the dataset's ages (unknown: none)
    batches: int  # ingest_log rows of the series written in the window
    latency: LatencySeries
    cadence: CadenceSeries
    gaps: tuple[GapRange, ...]
    latest_batches: tuple[IngestBatch, ...]  # newest first
    problems: tuple[str, ...]  # what else is wrong (damaged partitions, duplicates…)

    @property
    def has_log(self) -> bool:
        """Some batch of the series was logged in the window."""
        return self.batches > 0


def peak_indices(values: npt.ArrayLike, budget: int) -> npt.NDArray[np.int64]:
    """At most ``budget`` (≥ 3) indices of ``values`` to draw them: all of them when few
    enough; else the first, the last and the largest of each of ``budget − 2`` equal runs
    between them — a latency spike is never averaged or skipped away."""
    array = np.asarray(values, dtype=np.float64)
    count = array.size
    if count <= budget:
        return np.arange(count, dtype=np.int64)
    if budget < 3:
        raise ValueError(f"budget must be at least 3, not {budget}")
    edges = np.linspace(1, count - 1, budget - 1).astype(np.int64)
    peaks = [start + int(np.argmax(array[start:end])) for start, end in itertools.pairwise(edges)]
    return np.asarray([0, *peaks, count - 1], dtype=np.int64)


def series_symbols(lake: Lake) -> list[str]:
    """Symbols with any market data or ingest log, sorted."""
    names = {*lake.symbols(INGEST_LOG), *lake.symbols(CANDLES)}
    for market in MARKET_SERIES.values():
        names.update(lake.symbols(market.dataset))
    return sorted(names)


def _ingest_log(
    lake: Lake, market: MarketSeries, *, symbol: str, param: str | None, start_ms: int, end_ms: int
) -> tuple[pa.Table, list[str]]:
    """The series' ``ingest_log`` rows written in ``[start_ms, end_ms)``, in ``written_at``
    order (ties as stored), and why it could not be read (a damaged partition)."""
    try:
        table = lake.read(
            INGEST_LOG,
            symbols=symbol,
            start=start_ms - _FETCH_TO_WRITE_MARGIN_MS,
            end=end_ms,
            columns=list(BATCH_COLUMNS),
        )
    except CorruptPartitionError as error:
        empty = pa.schema([INGEST_LOG.arrow_schema.field(n) for n in BATCH_COLUMNS]).empty_table()
        return empty, [f"the ingest log cannot be read: {error}"]
    names = np.asarray(table["dataset"].to_pylist(), dtype=object)
    params = np.asarray(table["interval"].to_pylist(), dtype=object)
    written_us = table["written_at"].cast(pa.int64()).to_numpy()
    mine = (
        (names == market.name)
        & (params == param)
        & (written_us >= start_ms * 1000)
        & (written_us < end_ms * 1000)
    )
    rows = np.flatnonzero(mine)
    order = rows[np.argsort(written_us[rows], kind="stable")]
    return table.take(pa.array(order, pa.int64())), []


def _latency(
    log: pa.Table,
    market: MarketSeries,
    settings: Settings,
    *,
    param: str | None,
    start_ms: int,
    end_ms: int,
) -> tuple[LatencySeries, npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Latency of the live batches, and per row of ``log``: live, latency seconds, successful."""
    # ``log`` holds only this series' rows in written_at order, so the batches line up with it.
    batches = series_batches(log, market.name, param=param, start_ms=start_ms, end_ms=end_ms)
    latency = (batches.written_us - batches.close_us) / 1e6
    timed = batches.timed
    series = LatencySeries(
        written_ms=(batches.written_us[timed] // 1000).astype(np.int64),
        latency_seconds=latency[timed].astype(np.float64),
        warn_seconds=settings.latency_warn_seconds,
        error_seconds=settings.latency_error_seconds,
        backfill_batches=int(np.count_nonzero(batches.has_events & ~batches.live)),
    )
    return series, timed, latency.astype(np.float64), batches.successful


def _cadence(
    written_ms: npt.NDArray[np.int64],
    settings: Settings,
    *,
    expected_seconds: float,
    now_ms: int,
) -> CadenceSeries:
    """Intervals between the successful batches written at ``written_ms`` (ascending)."""
    warn, error = settings.cadence_warn_ratio, settings.cadence_error_ratio
    intervals = np.diff(written_ms) / 1000
    ratios = intervals / expected_seconds - 1
    statuses: tuple[Status, ...] = tuple(
        judge_above(float(ratio), warn=warn, error=error) for ratio in ratios
    )
    last = int(written_ms[-1]) if written_ms.size else None
    open_seconds = None if last is None else (now_ms - last) / 1000
    open_status: Status | None = None
    if open_seconds is not None:
        open_status = judge_above(open_seconds / expected_seconds - 1, warn=warn, error=error)
    return CadenceSeries(
        written_ms=written_ms[1:].astype(np.int64),
        interval_seconds=intervals.astype(np.float64),
        deviation_ratio=ratios.astype(np.float64),
        statuses=statuses,
        expected_seconds=expected_seconds,
        warn_ratio=warn,
        error_ratio=error,
        last_success_ms=last,
        open_interval_seconds=open_seconds,
        open_status=open_status,
    )


def _gap_range(gap: Gap, market: MarketSeries, *, kind: GapKind, step_ms: int | None) -> GapRange:
    """A gap as time: slots ``[first, last + step)``; missing trade ids between the trades
    around the hole."""
    if market.cadence == "ids":
        start = gap.after_time_ms if gap.after_time_ms is not None else 0
        end = gap.before_time_ms if gap.before_time_ms is not None else start
        label = f"trade ids {gap.first_missing}..{gap.last_missing} missing ({gap.missing})"
        return GapRange(kind, start, max(end, start + 1), gap.missing, label)
    end = gap.last_missing + (step_ms or 1)
    noun = "slot" if gap.missing == 1 else "slots"
    where = "at the exchange" if kind == "exchange" else "missing"
    label = (
        f"{gap.missing} {noun} {where}: {iso_ms(gap.first_missing)} – {iso_ms(gap.last_missing)}"
    )
    return GapRange(kind, gap.first_missing, end, gap.missing, label)


def _gaps(
    health: SeriesHealth, market: MarketSeries, *, now_ms: int, last_close_ms: int | None
) -> tuple[GapRange, ...]:
    ranges = [
        _gap_range(gap, market, kind="missing", step_ms=health.step_ms) for gap in health.gaps
    ]
    ranges += [
        _gap_range(gap, market, kind="exchange", step_ms=health.step_ms)
        for gap in health.exchange_gaps
    ]
    if health.freshness in ("warn", "error") and last_close_ms is not None:
        ranges.append(
            GapRange(
                "stale",
                last_close_ms,
                now_ms,
                None,
                f"nothing since {iso_ms(last_close_ms)} ({health.freshness})",
            )
        )
    return tuple(sorted(ranges, key=lambda r: (r.start_ms, r.kind)))


def _batches(
    log: pa.Table,
    *,
    live: npt.NDArray[np.bool_],
    latency_seconds: npt.NDArray[np.float64],
    limit: int,
) -> tuple[IngestBatch, ...]:
    """The last ``limit`` rows of ``log`` (written_at order), newest first."""
    first = max(0, log.num_rows - limit)
    tail = log.slice(first)
    events_first = tail["first_event_time"].cast(pa.int64()).to_pylist()
    events_last = tail["last_event_time"].cast(pa.int64()).to_pylist()
    fetched = tail["fetched_at"].cast(pa.int64()).to_pylist()
    written = tail["written_at"].cast(pa.int64()).to_pylist()
    rows = []
    for n in range(tail.num_rows):
        timed = bool(live[first + n]) and events_last[n] is not None
        rows.append(
            IngestBatch(
                batch_id=str(tail["batch_id"][n].as_py()),
                fetched_ms=int(fetched[n]) // 1000,
                written_ms=int(written[n]) // 1000,
                first_event_ms=events_first[n],
                last_event_ms=events_last[n],
                rows_fetched=int(tail["rows_fetched"][n].as_py()),
                rows_inserted=int(tail["rows_inserted"][n].as_py()),
                rows_replaced=int(tail["rows_replaced"][n].as_py()),
                source=str(tail["source"][n].as_py()),
                live=bool(live[first + n]),
                latency_seconds=float(latency_seconds[first + n]) if timed else None,
            )
        )
    return tuple(reversed(rows))


def series_detail(
    lake: Lake,
    settings: Settings,
    *,
    dataset: str,
    symbol: str,
    param: str | None = None,
    window_hours: float | None = None,
    now_ms: int,
    batch_limit: int = 50,
) -> SeriesDetail:
    """The drill-down of one series over the ``window_hours`` before ``now_ms`` (default: the
    health window; at most ``MAX_WINDOW_HOURS``). ``param`` defaults to the dataset's default
    interval/period (the one the health snapshot watches). ValueError for an unknown dataset.

    - latency: each live batch with events, as ``ingmon.latency`` defines them;
    - cadence: the interval before each successful live batch against the expected one;
    - gaps: the integrity model's gaps (live: the tail is freshness, shown as ``stale`` when
      warn/error) and the exchange's own gaps, as time ranges;
    - the latest ``batch_limit`` batches of the series written in the window, newest first.
    """
    market = market_series(dataset)
    param = param if param is not None else market.default_param
    hours = min(window_hours or settings.health_window_hours, MAX_WINDOW_HOURS)
    start_ms = now_ms - round(hours * HOUR_MS)
    health = live_health(
        lake, settings, market, symbol=symbol, param=param, start_ms=start_ms, now_ms=now_ms
    )
    log, problems = _ingest_log(
        lake, market, symbol=symbol, param=param, start_ms=start_ms, end_ms=now_ms
    )
    latency, live, latency_seconds, successful = _latency(
        log, market, settings, param=param, start_ms=start_ms, end_ms=now_ms
    )
    written_ms = log["written_at"].cast(pa.int64()).to_numpy() // 1000
    cadence = _cadence(
        written_ms[successful].astype(np.int64),
        settings,
        expected_seconds=expected_interval_seconds(market, settings, step_ms=health.step_ms),
        now_ms=now_ms,
    )
    step = health.step_ms if market.final_after_step else 0
    last_close = None if health.last_event_ms is None else health.last_event_ms + (step or 0)
    problem_texts = [
        problem.message
        for problem in health.problems
        if problem.kind not in ("internal_gap", "head_gap", "id_gap", "stale", "empty")
    ]
    return SeriesDetail(
        dataset=market.name,
        symbol=symbol,
        param=param,
        start_ms=start_ms,
        end_ms=now_ms,
        rows=health.rows,
        last_event_close_ms=last_close,
        age_seconds=health.age_seconds,
        freshness=health.freshness or "unknown",
        batches=log.num_rows,
        latency=latency,
        cadence=cadence,
        gaps=_gaps(health, market, now_ms=now_ms, last_close_ms=last_close),
        latest_batches=_batches(log, live=live, latency_seconds=latency_seconds, limit=batch_limit),
        problems=(*problems, *problem_texts),
    )

"""Coverage of the lake: rows, earliest, latest and gaps against each dataset's cadence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from ingmon.config import Settings
from ingmon.errors import CorruptPartitionError, UsageError
from ingmon.lake import Lake
from ingmon.schema import AGG_TRADES, FUNDING, MARKET_SERIES, Dataset, dataset, interval_ms
from ingmon.times import HOUR_MS, TimeLike, iso_ms, to_ms

__all__ = [
    "MARKET_DATASETS",
    "Coverage",
    "CoverageReport",
    "Gap",
    "coverage_report",
    "series_coverage",
]

GapKind = Literal["internal", "head", "tail"]

# The datasets with a cadence, in report order.
MARKET_DATASETS = tuple(MARKET_SERIES)


@dataclass(frozen=True)
class Gap:
    """A run of missing slots (times in ms) or, for aggregated trades, missing ids."""

    kind: GapKind
    first_missing: int
    last_missing: int
    missing: int
    # Times around the hole: the last present event before it and the first after it.
    after_time_ms: int | None = None
    before_time_ms: int | None = None

    def to_dict(self, *, keyed_by_time: bool) -> dict[str, Any]:
        out = asdict(self)
        if keyed_by_time:
            out["first_missing_iso"] = iso_ms(self.first_missing)
            out["last_missing_iso"] = iso_ms(self.last_missing)
        return out


@dataclass
class Coverage:
    """What one (dataset, symbol, parameter) series holds."""

    dataset: str
    symbol: str
    param: str | None
    rows: int
    earliest_ms: int | None
    latest_ms: int | None
    step_ms: int | None
    gaps: list[Gap] = field(default_factory=list)
    # Rows whose key another row of the series also holds (0 in a healthy lake), and the
    # time range of every row involved.
    duplicates: int = 0
    duplicate_span_ms: tuple[int, int] | None = None
    # Damaged partitions that kept the series from being read (one line each).
    corrupt: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(gap.missing for gap in self.gaps)

    def to_dict(self) -> dict[str, Any]:
        keyed_by_time = self.dataset != AGG_TRADES.name
        return {
            "dataset": self.dataset,
            "symbol": self.symbol,
            "param": self.param,
            "rows": self.rows,
            "earliest": iso_ms(self.earliest_ms),
            "latest": iso_ms(self.latest_ms),
            "step_ms": self.step_ms,
            "missing": self.missing,
            "duplicates": self.duplicates,
            "corrupt": self.corrupt,
            "gaps": [gap.to_dict(keyed_by_time=keyed_by_time) for gap in self.gaps],
        }


def _time_gaps(
    times: np.ndarray[Any, Any],
    steps: np.ndarray[Any, Any],
    tolerance_ratio: float,
) -> list[Gap]:
    """Internal gaps: a step to the next time longer than its expected step × (1 + tolerance)."""
    if times.size < 2:
        return []
    diffs = np.diff(times)
    expected = steps[1:]
    where = np.flatnonzero(diffs > expected * (1 + tolerance_ratio))
    gaps = []
    for index in where:
        step = int(expected[index])
        prev, nxt = int(times[index]), int(times[index + 1])
        missing = round((nxt - prev) / step) - 1
        gaps.append(Gap("internal", prev + step, nxt - step, max(missing, 1), prev, nxt))
    return gaps


def _edge_gaps(
    earliest: int, latest: int, step: int, start_ms: int | None, end_ms: int | None
) -> list[Gap]:
    """Slots on the step grid inside [start, end] but before the first or after the last row."""
    gaps = []
    if start_ms is not None:
        first_slot = -(-start_ms // step) * step
        if first_slot < earliest:
            missing = (earliest - first_slot) // step
            gaps.append(Gap("head", first_slot, earliest - step, missing, None, earliest))
    if end_ms is not None:
        last_slot = end_ms // step * step
        if last_slot > latest:
            missing = (last_slot - latest) // step
            gaps.append(Gap("tail", latest + step, last_slot, missing, latest, None))
    return gaps


def _empty_window_gaps(step: int | None, start_ms: int | None, end_ms: int | None) -> list[Gap]:
    """A window without a single row misses all of its slots: one ``head`` gap."""
    if step is None or start_ms is None or end_ms is None:
        return []
    first_slot = -(-start_ms // step) * step
    last_slot = end_ms // step * step
    if first_slot > last_slot:
        return []
    return [Gap("head", first_slot, last_slot, (last_slot - first_slot) // step + 1)]


def _funding_steps(
    times: np.ndarray[Any, Any], hours: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Expected step before each settlement: its own interval, else the series' usual one."""
    hours = hours.astype(float)
    known = hours[~np.isnan(hours)]
    if known.size:
        usual = int(np.bincount(known.astype(np.int64)).argmax())
    elif times.size > 1:
        usual = max(int(np.diff(times).min() // HOUR_MS), 1)
    else:
        usual = 8
    return np.where(np.isnan(hours), usual, hours).astype(np.int64) * HOUR_MS


def series_coverage(
    lake: Lake,
    ds: Dataset | str,
    *,
    symbol: str,
    param: str | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    tolerance_ratio: float = 0.1,
) -> Coverage:
    """Coverage of one series, optionally against a window ``[start, end]``.

    Candles step by their interval, open interest by its period, funding by the symbol's
    funding interval (``funding_interval_hours`` of each row, else the most common one), and
    aggregated trades by id continuity (no head/tail: trade ids before the first row are unknown).
    Against a window, slots between ``start`` and the first row are a ``head`` gap, slots after
    the last row up to ``end`` a ``tail`` gap; a window with no row at all is one ``head`` gap
    (not for funding, whose interval is only known from its rows).
    """
    ds = dataset(ds) if isinstance(ds, str) else ds
    start_ms = None if start is None else to_ms(start)
    end_ms = None if end is None else to_ms(end)
    if ds.name == AGG_TRADES.name:
        table = lake.read(
            ds,
            symbols=symbol,
            start=start_ms,
            end=end_ms,
            columns=["agg_trade_id", "transact_time"],
        )
        ids = table["agg_trade_id"].to_numpy()
        times = table["transact_time"].cast("int64").to_numpy()
        result = Coverage(ds.name, symbol, None, int(ids.size), None, None, None)
        result.duplicates, result.duplicate_span_ms = _repeated(ids, times)
        if ids.size:
            result.earliest_ms, result.latest_ms = int(times.min()), int(times.max())
            result.gaps = _id_gaps(ids, times)
        return result
    if ds.name == FUNDING.name:
        table = lake.read(
            ds,
            symbols=symbol,
            start=start_ms,
            end=end_ms,
            columns=["funding_time", "funding_interval_hours"],
        )
        times = table["funding_time"].cast("int64").to_numpy()
        steps = _funding_steps(
            times, table["funding_interval_hours"].to_numpy(zero_copy_only=False)
        )
        step = int(np.bincount(steps // HOUR_MS).argmax()) * HOUR_MS if steps.size else None
    else:
        if param is None:
            raise ValueError(f"{ds.name} needs its {ds.param_name}")
        table = lake.read(
            ds, symbols=symbol, param=param, start=start_ms, end=end_ms, columns=[ds.key]
        )
        times = table[ds.key].cast("int64").to_numpy()
        step = interval_ms(param)
        steps = np.full(times.size, step, dtype=np.int64)
    result = Coverage(ds.name, symbol, param, int(times.size), None, None, step)
    result.duplicates, result.duplicate_span_ms = _repeated(times, times)
    if times.size == 0:
        result.gaps = _empty_window_gaps(step, start_ms, end_ms)
        return result
    result.earliest_ms, result.latest_ms = int(times[0]), int(times[-1])
    result.gaps = _time_gaps(times, steps, tolerance_ratio)
    if step is not None:
        head = _edge_gaps(result.earliest_ms, result.latest_ms, step, start_ms, None)
        tail = _edge_gaps(result.earliest_ms, result.latest_ms, step, None, end_ms)
        result.gaps = head + result.gaps + tail
    return result


def _id_gaps(ids: np.ndarray[Any, Any], times: np.ndarray[Any, Any]) -> list[Gap]:
    """Holes in the sorted aggregate ids, with the times around each. An id stored more than
    once (under two day partitions) has several times: the range around a hole takes the
    earliest of the id before it and the latest of the id after it, so it covers the hole."""
    unique_ids, starts = np.unique(ids, return_index=True)  # ids are sorted: groups are runs
    earliest = np.minimum.reduceat(times, starts)
    latest = np.maximum.reduceat(times, starts)
    gaps = []
    for index in np.flatnonzero(np.diff(unique_ids) > 1):
        first, last = int(unique_ids[index]) + 1, int(unique_ids[index + 1]) - 1
        after_ms, before_ms = int(earliest[index]), int(latest[index + 1])
        gaps.append(Gap("internal", first, last, last - first + 1, after_ms, before_ms))
    return gaps


def _repeated(
    sorted_keys: np.ndarray[Any, Any], times_ms: np.ndarray[Any, Any]
) -> tuple[int, tuple[int, int] | None]:
    """Rows repeating the key of the row before them (the lake reads sorted by key), and the
    time range of all rows holding a repeated key."""
    if sorted_keys.size < 2:
        return 0, None
    repeats = np.flatnonzero(np.diff(sorted_keys) == 0)
    if repeats.size == 0:
        return 0, None
    involved = np.isin(sorted_keys, sorted_keys[repeats + 1])
    span = times_ms[involved]
    return int(repeats.size), (int(span.min()), int(span.max()))


def _series_of(lake: Lake, ds: Dataset, symbol: str) -> list[str | None]:
    if ds.param_name is None:
        return [None]
    base = lake.root / ds.name / f"symbol={symbol}"
    prefix = f"{ds.param_name}="
    found = sorted(p.name.removeprefix(prefix) for p in base.glob(f"{prefix}*") if p.is_dir())
    return [param for param in found if param in ds.param_values]


@dataclass
class CoverageReport:
    """Coverage of every stored market-data series of a lake."""

    lake: str
    series: list[Coverage]

    def to_dict(self) -> dict[str, Any]:
        return {"lake": self.lake, "series": [coverage.to_dict() for coverage in self.series]}


def coverage_report(
    settings: Settings,
    *,
    symbols: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
) -> CoverageReport:
    """Coverage of every stored market-data series (or of the given symbols and datasets)."""
    lake = Lake(settings.lake_dir)
    names = list(datasets) if datasets else list(MARKET_DATASETS)
    unknown = [name for name in names if name not in MARKET_DATASETS]
    if unknown:
        raise UsageError(
            f"unknown dataset {unknown[0]!r}: expected one of {', '.join(MARKET_DATASETS)}",
            field="dataset",
        )
    series = []
    for name in names:
        ds = dataset(name)
        for symbol in symbols or lake.symbols(ds):
            for param in _series_of(lake, ds, symbol):
                damaged = lake.find_corrupt(ds, symbol=symbol, param=param)
                try:
                    cov = (
                        None
                        if damaged
                        else series_coverage(
                            lake,
                            ds,
                            symbol=symbol,
                            param=param,
                            tolerance_ratio=settings.cadence_tolerance_ratio,
                        )
                    )
                except CorruptPartitionError as error:
                    damaged, cov = [error.partition], None
                if cov is None:
                    # Unreadable: say which files, count nothing (`ingmon check` has the repair).
                    cov = Coverage(ds.name, symbol, param, 0, None, None, None)
                    cov.corrupt = [part.message for part in damaged]
                series.append(cov)
    return CoverageReport(str(lake.root), series)

"""Indicators and per-bar features for the signal engine: pure numpy over time-aligned arrays.

Every function is causal: the value at index i uses inputs at indices ≤ i only (trailing z-scores
use indices < i), so a feature computed on a prefix of the data equals the same feature computed
on all of it. Warm-up values are NaN. Conventions (documented in docs/signals.md): standard
deviations are population (ddof=0); EMA and Wilder averages are seeded with the simple mean of
their first ``length`` values; the true range of the first bar is its high − low.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Final

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from ingmon.times import DAY_MS, HOUR_MS, MINUTE_MS

__all__ = [
    "SESSIONS",
    "SESSION_NAMES",
    "Bars",
    "FundingState",
    "adx",
    "asof_index",
    "atr",
    "bollinger",
    "candle_delta",
    "ema",
    "funding_state",
    "hour_of_week_baseline",
    "hour_of_week_weight",
    "keltner",
    "lag",
    "linreg_last",
    "rolling_max",
    "rolling_min",
    "rolling_std",
    "rolling_sum",
    "rsi",
    "run_lengths",
    "session_cvd",
    "session_labels",
    "sma",
    "trade_minute_flow",
    "trailing_zscore",
    "true_range",
    "value_asof",
    "wilder",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

WEEK_MS: Final = 7 * DAY_MS
# 1970-01-01 was a Thursday: shift so that hour-of-week 0 is Monday 00:00 UTC.
_MONDAY_OFFSET_MS: Final = 3 * DAY_MS


# ---- bars ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bars:
    """Closed OHLCV bars of one symbol on one interval, oldest first, with their order flow.

    ``delta`` is taker-buy minus taker-sell base volume per bar (from trades when the lake has
    them, else the candle identity 2·taker_buy − volume: the same number on exchange data).
    """

    open_time_ms: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    taker_buy_volume: FloatArray
    delta: FloatArray
    interval_ms: int

    def __len__(self) -> int:
        return int(self.open_time_ms.size)

    @property
    def close_time_ms(self) -> IntArray:
        """When each bar closed (Binance's close time: open + interval − 1 ms)."""
        return self.open_time_ms + (self.interval_ms - 1)

    @classmethod
    def from_candles(
        cls,
        *,
        open_time_ms: npt.ArrayLike,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike,
        taker_buy_volume: npt.ArrayLike,
        interval_ms: int = MINUTE_MS,
        delta: npt.ArrayLike | None = None,
    ) -> Bars:
        """Bars from candle columns; ``delta`` defaults to the candle identity."""
        volume_array = np.asarray(volume, dtype=np.float64)
        taker_array = np.asarray(taker_buy_volume, dtype=np.float64)
        return cls(
            open_time_ms=np.asarray(open_time_ms, dtype=np.int64),
            open=np.asarray(open, dtype=np.float64),
            high=np.asarray(high, dtype=np.float64),
            low=np.asarray(low, dtype=np.float64),
            close=np.asarray(close, dtype=np.float64),
            volume=volume_array,
            taker_buy_volume=taker_array,
            delta=(
                candle_delta(volume_array, taker_array)
                if delta is None
                else np.asarray(delta, dtype=np.float64)
            ),
            interval_ms=interval_ms,
        )

    def take(self, selector: slice | IntArray | BoolArray) -> Bars:
        """The bars at ``selector`` (a slice, indices or a mask)."""
        arrays = {
            item.name: getattr(self, item.name)[selector]
            for item in fields(self)
            if item.name != "interval_ms"
        }
        return replace(self, **arrays)

    def until(self, end_ms: int) -> Bars:
        """The bars that closed before ``end_ms`` (exclusive): what was known at ``end_ms``."""
        stop = int(np.searchsorted(self.open_time_ms + self.interval_ms, end_ms, side="right"))
        return self.take(slice(0, stop))

    def resample(self, interval_ms: int, *, known_until_ms: int | None = None) -> Bars:
        """Aggregate to a longer interval aligned to the epoch (15m bars open at :00, :15, …).

        A longer bar is emitted only once it is closed: its end is at or before
        ``known_until_ms`` (default: the end of the last bar here). A bar with missing minutes
        inside (an exchange outage) is still emitted from the minutes that exist; a first bar
        that the data enters midway is not.
        """
        if interval_ms % self.interval_ms:
            raise ValueError(f"cannot resample {self.interval_ms} ms bars to {interval_ms} ms")
        if not len(self):
            return replace(self.take(slice(0, 0)), interval_ms=interval_ms)
        if known_until_ms is None:
            known_until_ms = int(self.open_time_ms[-1]) + self.interval_ms
        group = self.open_time_ms // interval_ms
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        ends = np.r_[starts[1:], group.size]
        open_time = group[starts] * interval_ms
        closed = open_time + interval_ms <= known_until_ms
        # Data that starts inside a longer bar has only its tail: the bar would depend on where
        # loading began, so it is left out (gaps later on are outages and are kept).
        closed[0] &= bool(self.open_time_ms[0] == open_time[0])
        starts, ends, open_time = starts[closed], ends[closed], open_time[closed]
        if not starts.size:
            return replace(self.take(slice(0, 0)), interval_ms=interval_ms)
        stop = int(ends[-1])
        offsets = starts

        def summed(values: FloatArray) -> FloatArray:
            return np.add.reduceat(values[:stop], offsets)

        return Bars(
            open_time_ms=open_time.astype(np.int64),
            open=self.open[starts],
            high=np.maximum.reduceat(self.high[:stop], offsets),
            low=np.minimum.reduceat(self.low[:stop], offsets),
            close=self.close[ends - 1],
            volume=summed(self.volume),
            taker_buy_volume=summed(self.taker_buy_volume),
            delta=summed(self.delta),
            interval_ms=interval_ms,
        )


def candle_delta(volume: FloatArray, taker_buy_volume: FloatArray) -> FloatArray:
    """Taker buy − taker sell volume of a candle: 2·taker_buy − volume (exact on Binance data)."""
    return 2.0 * taker_buy_volume - volume


def trade_minute_flow(
    transact_time_ms: npt.ArrayLike,
    quantity: npt.ArrayLike,
    is_buyer_maker: npt.ArrayLike,
    *,
    bucket_ms: int = MINUTE_MS,
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Per-bucket taker buy and taker sell volume from aggregated trades.

    ``is_buyer_maker`` true means the taker sold. Returns (bucket open times, buy volume, sell
    volume) for the buckets that have trades, oldest first; delta is buy − sell.
    """
    times = np.asarray(transact_time_ms, dtype=np.int64)
    quantities = np.asarray(quantity, dtype=np.float64)
    sold = np.asarray(is_buyer_maker, dtype=bool)
    if not times.size:
        empty = np.zeros(0, dtype=np.float64)
        return np.zeros(0, dtype=np.int64), empty, empty.copy()
    buckets, position = np.unique(times // bucket_ms, return_inverse=True)
    buy = np.bincount(position, weights=np.where(sold, 0.0, quantities), minlength=buckets.size)
    sell = np.bincount(position, weights=np.where(sold, quantities, 0.0), minlength=buckets.size)
    return (
        (buckets * bucket_ms).astype(np.int64),
        buy.astype(np.float64),
        sell.astype(np.float64),
    )


# ---- rolling windows ----------------------------------------------------------------------------


def lag(values: npt.ArrayLike, periods: int = 1) -> FloatArray:
    """``values`` shifted ``periods`` places later (index i holds value i − periods), NaN-filled;
    same length as the input, also when it is shorter than ``periods``."""
    array = np.asarray(values, dtype=np.float64)
    out = np.full(array.size, np.nan)
    if periods < array.size:
        out[periods:] = array[: array.size - periods]
    return out


def _windows(values: FloatArray, length: int) -> FloatArray:
    if length < 1:
        raise ValueError(f"window length must be ≥ 1, got {length}")
    return sliding_window_view(values, length)


def _padded(result: FloatArray, length: int, size: int) -> FloatArray:
    out = np.full(size, np.nan)
    out[length - 1 :] = result
    return out


def _rolling(values: npt.ArrayLike, length: int, how: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.size < length:
        return np.full(array.size, np.nan)
    windows = _windows(array, length)
    reduced = {
        "mean": lambda: windows.mean(axis=1),
        "sum": lambda: windows.sum(axis=1),
        "std": lambda: windows.std(axis=1),
        "max": lambda: windows.max(axis=1),
        "min": lambda: windows.min(axis=1),
    }[how]()
    return _padded(reduced, length, array.size)


def sma(values: npt.ArrayLike, length: int) -> FloatArray:
    """Simple moving average over the last ``length`` values (NaN before)."""
    return _rolling(values, length, "mean")


def rolling_sum(values: npt.ArrayLike, length: int) -> FloatArray:
    """Sum of the last ``length`` values (NaN before)."""
    return _rolling(values, length, "sum")


def rolling_std(values: npt.ArrayLike, length: int) -> FloatArray:
    """Population standard deviation (ddof=0) of the last ``length`` values."""
    return _rolling(values, length, "std")


def rolling_max(values: npt.ArrayLike, length: int) -> FloatArray:
    """Highest of the last ``length`` values."""
    return _rolling(values, length, "max")


def rolling_min(values: npt.ArrayLike, length: int) -> FloatArray:
    """Lowest of the last ``length`` values."""
    return _rolling(values, length, "min")


def trailing_zscore(values: npt.ArrayLike, length: int) -> FloatArray:
    """(x_i − mean) / std over the ``length`` values *before* i (the current value is excluded
    from its own baseline). NaN without a full baseline or when the baseline is flat."""
    array = np.asarray(values, dtype=np.float64)
    out = np.full(array.size, np.nan)
    if array.size <= length:
        return out
    windows = _windows(array[:-1], length)
    mean = windows.mean(axis=1)
    std = windows.std(axis=1)
    # A flat baseline's std comes out as rounding noise, not 0: test flatness exactly.
    flat = windows.max(axis=1) == windows.min(axis=1)
    current = array[length:]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[length:] = np.where(~flat & (std > 0), (current - mean) / std, np.nan)
    return out


def linreg_last(values: npt.ArrayLike, length: int) -> FloatArray:
    """The least-squares line over the last ``length`` values, evaluated at the last one
    (TA-Lib LINEARREG; the squeeze momentum's smoothing)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size < length:
        return np.full(array.size, np.nan)
    x = np.arange(length, dtype=np.float64)
    x_centred = x - x.mean()
    windows = _windows(array, length)
    slope = windows @ x_centred / float(x_centred @ x_centred)
    intercept = windows.mean(axis=1) - slope * x.mean()
    return _padded(intercept + slope * (length - 1), length, array.size)


# ---- recursive averages -------------------------------------------------------------------------


def _first_full_window(values: FloatArray, length: int) -> int | None:
    """Index where the first run of ``length`` finite values ends, None if there is none."""
    finite = np.isfinite(values)
    run = 0
    for index, ok in enumerate(finite):
        run = run + 1 if ok else 0
        if run == length:
            return index
    return None


def _recursive(values: npt.ArrayLike, length: int, alpha: float) -> FloatArray:
    """y_i = y_{i−1} + alpha·(x_i − y_{i−1}), seeded with the mean of the first full window."""
    array = np.asarray(values, dtype=np.float64)
    out = np.full(array.size, np.nan)
    seed_index = _first_full_window(array, length)
    if seed_index is None:
        return out
    level = float(array[seed_index - length + 1 : seed_index + 1].mean())
    out[seed_index] = level
    keep = 1.0 - alpha
    for index in range(seed_index + 1, array.size):
        level = keep * level + alpha * float(array[index])
        out[index] = level
    return out


def ema(values: npt.ArrayLike, length: int) -> FloatArray:
    """Exponential moving average, alpha = 2 / (length + 1), seeded with the first SMA."""
    return _recursive(values, length, 2.0 / (length + 1))


def wilder(values: npt.ArrayLike, length: int) -> FloatArray:
    """Wilder's running average (RMA), alpha = 1 / length, seeded with the first SMA."""
    return _recursive(values, length, 1.0 / length)


# ---- price indicators ---------------------------------------------------------------------------


def true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """max(high − low, |high − previous close|, |low − previous close|); the first bar's is
    high − low."""
    previous = lag(close)
    ranges = np.vstack([high - low, np.abs(high - previous), np.abs(low - previous)])
    return np.asarray(np.nanmax(ranges, axis=0), dtype=np.float64)


def atr(high: FloatArray, low: FloatArray, close: FloatArray, length: int = 14) -> FloatArray:
    """Average true range, Wilder-smoothed."""
    return wilder(true_range(high, low, close), length)


def rsi(close: FloatArray, length: int = 14) -> FloatArray:
    """Wilder's RSI: 100 − 100/(1 + avg gain / avg loss) over close-to-close changes (first
    value at index ``length``); 100 with no losses, 50 on a flat window."""
    if not close.size:
        return np.zeros(0)
    change = close - lag(close)
    gain = wilder(np.where(change > 0, change, 0.0) + 0.0 * change, length)
    loss = wilder(np.where(change < 0, -change, 0.0) + 0.0 * change, length)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + gain / loss)
    value = np.where((loss == 0) & (gain > 0), 100.0, value)
    return np.where((loss == 0) & (gain == 0), 50.0, value)


def adx(
    high: FloatArray, low: FloatArray, close: FloatArray, length: int = 14
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Wilder's ADX with +DI and −DI.

    +DM = up move if it is positive and larger than the down move (else 0), −DM the mirror; TR,
    +DM and −DM Wilder-smoothed from bar 1; DX = 100·|+DI − −DI| / (+DI + −DI); ADX = Wilder
    average of DX (first value at index 2·length − 1).
    """
    if not high.size:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    up = high - lag(high)
    down = lag(low) - low
    plus_dm = np.where((up > down) & (up > 0), up, 0.0) + 0.0 * up
    minus_dm = np.where((down > up) & (down > 0), down, 0.0) + 0.0 * down
    ranges = true_range(high, low, close)
    ranges[0] = np.nan  # the smoothing starts with the first bar that has a previous close
    smoothed_range = wilder(ranges, length)
    with np.errstate(divide="ignore", invalid="ignore"):
        plus_di = np.where(
            smoothed_range > 0, 100.0 * wilder(plus_dm, length) / smoothed_range, 0.0
        )
        minus_di = np.where(
            smoothed_range > 0, 100.0 * wilder(minus_dm, length) / smoothed_range, 0.0
        )
        total = plus_di + minus_di
        dx = np.where(total > 0, 100.0 * np.abs(plus_di - minus_di) / total, 0.0)
    nan = np.isnan(smoothed_range)
    plus_di[nan] = minus_di[nan] = dx[nan] = np.nan
    return wilder(dx, length), plus_di, minus_di


def bollinger(
    close: FloatArray, length: int = 20, num_std: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(middle, upper, lower): SMA ± num_std · population std."""
    middle = sma(close, length)
    width = num_std * rolling_std(close, length)
    return middle, middle + width, middle - width


def keltner(
    high: FloatArray, low: FloatArray, close: FloatArray, length: int = 20, scalar: float = 1.5
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(middle, upper, lower) as the TTM squeeze uses them: SMA of close ± scalar · SMA of the
    true range (not the stand-alone EMA/ATR(10) Keltner channel)."""
    middle = sma(close, length)
    band = scalar * sma(true_range(high, low, close), length)
    return middle, middle + band, middle - band


# ---- alignment with other feeds -----------------------------------------------------------------


def asof_index(event_time_ms: IntArray, at_ms: IntArray) -> IntArray:
    """For each time in ``at_ms``, the index of the last event at or before it (−1 if none).
    ``event_time_ms`` must be sorted."""
    return (np.searchsorted(event_time_ms, at_ms, side="right") - 1).astype(np.int64)


def value_asof(event_time_ms: IntArray, values: FloatArray, at_ms: IntArray) -> FloatArray:
    """The last value known at each time of ``at_ms`` (NaN before the first event)."""
    index = asof_index(event_time_ms, at_ms)
    out = np.full(at_ms.size, np.nan)
    known = index >= 0
    out[known] = values[index[known]]
    return out


@dataclass(frozen=True)
class FundingState:
    """The settled funding known at each bar: the rate, its interval, the 8h-equivalent rate and
    how many settlements in a row (ending with it) were negative / positive."""

    rate: FloatArray
    interval_hours: FloatArray
    rate_8h: FloatArray
    negative_streak: IntArray
    positive_streak: IntArray


def funding_state(
    funding_time_ms: IntArray,
    funding_rate: FloatArray,
    at_ms: IntArray,
    *,
    interval_hours: FloatArray | None = None,
) -> FundingState:
    """Funding known at each time of ``at_ms`` (a settlement counts from its funding time).

    The interval comes from ``interval_hours`` when the lake has it, else from the gap to the
    previous settlement (8 h for the first one): ``rate_8h = rate · 8 / interval_hours``.
    """
    times = np.asarray(funding_time_ms, dtype=np.int64)
    rates = np.asarray(funding_rate, dtype=np.float64)
    gaps = np.r_[8.0, np.diff(times) / HOUR_MS] if times.size else np.zeros(0)
    hours = gaps if interval_hours is None else np.asarray(interval_hours, dtype=np.float64)
    hours = np.where(np.isfinite(hours) & (hours > 0), np.round(hours), np.round(gaps))
    negative = run_lengths(rates < 0)
    positive = run_lengths(rates > 0)
    index = asof_index(times, at_ms)
    known = index >= 0
    safe = np.where(known, index, 0)

    def pick(values: FloatArray) -> FloatArray:
        return np.where(known, values[safe], np.nan) if values.size else np.full(at_ms.size, np.nan)

    rate = pick(rates)
    hour_values = pick(hours)
    return FundingState(
        rate=rate,
        interval_hours=hour_values,
        rate_8h=rate * 8.0 / hour_values,
        negative_streak=np.where(known, negative[safe], 0) if times.size else index * 0,
        positive_streak=np.where(known, positive[safe], 0) if times.size else index * 0,
    )


def run_lengths(flags: BoolArray) -> IntArray:
    """Length of the run of True values ending at each index (0 where False)."""
    counts = np.zeros(flags.size, dtype=np.int64)
    run = 0
    for index, flag in enumerate(flags):
        run = run + 1 if flag else 0
        counts[index] = run
    return counts


# ---- sessions and seasonality -------------------------------------------------------------------

# The fixed-UTC session table (reference §4): a bar belongs to the session of its open time;
# overlaps are labels of their own so that nothing is counted twice. Saturday and Sunday (UTC)
# are "weekend" whatever the hour.
SESSIONS: Final[tuple[tuple[str, int, int], ...]] = (
    ("asia", 0, 7),
    ("asia_london_overlap", 7, 8),
    ("london", 8, 13),
    ("london_ny_overlap", 13, 16),
    ("new_york", 16, 21),
    ("off_hours", 21, 24),
)
SESSION_NAMES: Final[tuple[str, ...]] = (*(name for name, _, _ in SESSIONS), "weekend")
_SESSION_OF_HOUR: Final = np.array(
    [next(i for i, (_, lo, hi) in enumerate(SESSIONS) if lo <= hour < hi) for hour in range(24)],
    dtype=np.int64,
)


def session_labels(open_time_ms: IntArray) -> IntArray:
    """Index into ``SESSION_NAMES`` of each bar's session (by its open time, UTC)."""
    hour_of_week = ((open_time_ms + _MONDAY_OFFSET_MS) % WEEK_MS) // HOUR_MS
    weekend = hour_of_week >= 5 * 24
    return np.where(weekend, len(SESSIONS), _SESSION_OF_HOUR[hour_of_week % 24]).astype(np.int64)


def session_cvd(
    open_time_ms: IntArray, delta: FloatArray, *, anchor_ms: int = DAY_MS
) -> FloatArray:
    """Cumulative delta that restarts at every anchor (default: each UTC day's 00:00)."""
    session = open_time_ms // anchor_ms
    total = np.cumsum(delta)
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
    before = np.r_[0.0, total[:-1]][starts]
    run_of = np.cumsum(np.r_[True, session[1:] != session[:-1]]) - 1
    return np.asarray(total - before[run_of], dtype=np.float64)


def _row_medians(matrix: FloatArray) -> FloatArray:
    """The median of each row's finite values (NaN for a row without any): np.nanmedian's
    result from one sort instead of a Python loop over rows."""
    ordered = np.sort(matrix, axis=1)  # NaNs sort last
    count = np.isfinite(matrix).sum(axis=1)
    rows = np.arange(matrix.shape[0])
    last = max(matrix.shape[1] - 1, 0)
    low = ordered[rows, np.clip((count - 1) // 2, 0, last)]
    high = ordered[rows, np.clip(count // 2, 0, last)]
    return np.where(count > 0, (low + high) / 2.0, np.nan)


def hour_of_week_baseline(
    open_time_ms: IntArray,
    volume: FloatArray,
    *,
    weeks: int = 4,
    min_weeks: int = 2,
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Hourly volume baselines for every hour h from the first to the last bar:
    (hour open times, the median volume of h's hour-of-week in the previous ``weeks`` weeks —
    NaN until ``min_weeks`` of them exist —, the median volume of every hour in the ``weeks``
    weeks before h's UTC day). Only hours before h's day are used."""
    if not open_time_ms.size:
        empty = np.zeros(0)
        return np.zeros(0, dtype=np.int64), empty, empty.copy()
    hour = open_time_ms // HOUR_MS
    first, last = int(hour[0]), int(hour[-1])
    size = last - first + 1
    hourly = np.full(size, np.nan)
    sums = np.bincount(hour - first, weights=volume, minlength=size)
    present = np.bincount(hour - first, minlength=size) > 0
    hourly[present] = sums[present]
    span = weeks * 168
    pad = span + 24  # a day that starts before the first hour still has a full window
    padded = np.r_[np.full(pad, np.nan), hourly]
    relative = np.arange(size)
    same_hour = np.stack(
        [padded[relative + pad - 168 * back] for back in range(1, weeks + 1)], axis=1
    ).reshape(size, weeks)
    enough = np.sum(np.isfinite(same_hour), axis=1) >= min_weeks
    day_start = relative - (first + relative) % 24  # relative index of each hour's 00:00
    days = np.unique(day_start)
    windows = sliding_window_view(padded, span)[days + pad - span]  # the weeks before each day
    every_hour = _row_medians(windows)[np.searchsorted(days, day_start)]
    same = np.where(enough, _row_medians(same_hour), np.nan)
    hours = (np.arange(first, last + 1, dtype=np.int64) * HOUR_MS).astype(np.int64)
    return hours, same, every_hour


def hour_of_week_weight(
    open_time_ms: IntArray,
    volume: FloatArray,
    *,
    weeks: int = 4,
    min_weeks: int = 2,
) -> tuple[IntArray, FloatArray]:
    """The liquidity of each hour of the week relative to normal, from hourly volume — the
    data-driven session weight of reference §4 (not clipped here), recomputed daily:
    ``w(h) = median(volume of h's hour-of-week in the previous weeks) / median(volume of every
    hour in the weeks before h's UTC day)`` (see ``hour_of_week_baseline``).

    Returns (hour open times, weight) for every hour from the first to the last bar; NaN until
    ``min_weeks`` earlier weeks of that hour exist.
    """
    hours, same_hour, every_hour = hour_of_week_baseline(
        open_time_ms, volume, weeks=weeks, min_weeks=min_weeks
    )
    with np.errstate(all="ignore"):
        weight = np.where(every_hour > 0, same_hour / every_hour, np.nan)
    return hours, weight

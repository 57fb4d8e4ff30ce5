"""``ingmon.signals.features`` against plain-loop references, prefix causality, and trade delta
equal to the candle identity on the simulated exchange."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from ingmon.exchange.market import Market
from ingmon.signals import features as ft
from ingmon.times import HOUR_MS, MINUTE_MS

Arrays = dict[str, np.ndarray]
NAN = math.nan
# Friday 2024-03-01 22:30 UTC: random bars cross midnights and a weekend.
START_MS = 1_709_332_200_000


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def _random_bars(seed: int, size: int = 500) -> Arrays:
    """Consistent OHLCV on a 0.5 grid (many ties) with flat stretches of 5–16 identical bars."""
    rng = np.random.default_rng(seed)
    close = 100.0 + np.cumsum(rng.choice([-1.0, 0.0, 0.0, 1.0], size) * rng.integers(1, 4, size))
    close *= 0.5
    open_ = np.r_[close[0], close[:-1]] + rng.choice([0.0, 0.0, 0.0, 0.5, -0.5], size)
    high = np.maximum(open_, close) + rng.choice([0.0, 0.0, 0.5, 1.0], size)
    low = np.minimum(open_, close) - rng.choice([0.0, 0.0, 0.5, 1.0], size)
    volume = np.round(rng.gamma(2.0, 5.0, size), 3) * (rng.random(size) > 0.05)
    for start in rng.integers(0, size - 20, 5):
        flat = slice(start, start + int(rng.integers(5, 17)))
        open_[flat] = high[flat] = low[flat] = close[flat] = close[start]
        volume[flat] = 0.0
    gaps = rng.choice([1, 1, 1, 2, 7, 61], size)  # minutes between bars: crosses UTC midnights
    return {
        "open_time_ms": START_MS + np.cumsum(gaps).astype(np.int64) * MINUTE_MS,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "taker_buy_volume": np.round(volume * rng.random(size), 3),
    }


def _assert_close(actual: np.ndarray, expected: list[float] | np.ndarray) -> None:
    np.testing.assert_allclose(actual, np.asarray(expected, float), rtol=1e-9, atol=1e-9)


# ---- plain-loop references -----------------------------------------------------------------------


def _window_loop(values: np.ndarray, length: int, reduce: Callable[[list[float]], float]) -> list:
    out = [NAN] * len(values)
    for i in range(length - 1, len(values)):
        out[i] = reduce([float(v) for v in values[i - length + 1 : i + 1]])
    return out


def _mean(window: list[float]) -> float:
    return math.fsum(window) / len(window)


def _pstd(window: list[float]) -> float:
    mean = _mean(window)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in window) / len(window))


def _linreg(window: list[float]) -> float:
    """Least squares y = a + b·x on x = 0…n−1 by the normal equations, evaluated at x = n−1."""
    n = len(window)
    sx = sy = sxx = sxy = 0.0
    for x, y in enumerate(window):
        sx, sy, sxx, sxy = sx + x, sy + y, sxx + x * x, sxy + x * y
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    return (sy - slope * sx) / n + slope * (n - 1)


def _zscore_loop(values: np.ndarray, length: int) -> list[float]:
    out = [NAN] * len(values)
    for i in range(length, len(values)):
        baseline = [float(v) for v in values[i - length : i]]
        if len(set(baseline)) > 1:
            out[i] = (values[i] - _mean(baseline)) / _pstd(baseline)
    return out


def _smoothed_loop(values: list[float], length: int, alpha: float) -> list[float]:
    """Seed with the mean of the first ``length`` finite values in a row, then y += α·(x − y)."""
    out, run, level = [NAN] * len(values), 0, None
    for i, value in enumerate(values):
        if level is None:
            run = run + 1 if math.isfinite(value) else 0
            if run == length:
                level = _mean(values[i - length + 1 : i + 1])
                out[i] = level
            continue
        level = level + alpha * (value - level)
        out[i] = level
    return out


def _true_range_loop(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> list[float]:
    out = [float(high[0] - low[0])]
    for i in range(1, len(high)):
        previous = close[i - 1]
        out.append(max(high[i] - low[i], abs(high[i] - previous), abs(low[i] - previous)))
    return out


def _wilder_classic(values: list[float], first: int, length: int) -> list[float]:
    """Wilder's own form from index ``first``: the mean of ``length`` values, then
    (previous·(n − 1) + x) / n."""
    out = [NAN] * len(values)
    seed_at = first + length - 1
    if seed_at < len(values):
        out[seed_at] = _mean(values[first : seed_at + 1])
        for i in range(seed_at + 1, len(values)):
            out[i] = (out[i - 1] * (length - 1) + values[i]) / length
    return out


def _rsi_loop(close: np.ndarray, length: int) -> list[float]:
    gains, losses = [NAN], [NAN]
    for i in range(1, len(close)):
        change = close[i] - close[i - 1]
        gains.append(max(change, 0.0))
        losses.append(max(-change, 0.0))
    avg_gain = _wilder_classic(gains, 1, length)
    avg_loss = _wilder_classic(losses, 1, length)
    out = [NAN] * len(close)
    for i, (gain, loss) in enumerate(zip(avg_gain, avg_loss, strict=True)):
        if math.isnan(gain):
            continue
        if loss == 0:
            out[i] = 100.0 if gain > 0 else 50.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + gain / loss)
    return out


def _adx_loop(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, length: int
) -> tuple[list[float], list[float], list[float]]:
    """Wilder, step by step: running sums TR_n, +DM_n, −DM_n (sum of the first n from bar 1, then
    S − S/n + x), +DI = 100·(+DM_n)/TR_n, DX, and ADX = mean of the first n DX then Wilder."""
    size = len(high)
    true_ranges = _true_range_loop(high, low, close)
    plus_dm, minus_dm = [0.0] * size, [0.0] * size
    for i in range(1, size):
        up, down = high[i] - high[i - 1], low[i - 1] - low[i]
        plus_dm[i] = up if up > down and up > 0 else 0.0
        minus_dm[i] = down if down > up and down > 0 else 0.0
    plus_di, minus_di, dx = [NAN] * size, [NAN] * size, [NAN] * size
    for i in range(length, size):
        if i == length:
            tr_sum, plus_sum, minus_sum = (
                math.fsum(series[1 : length + 1]) for series in (true_ranges, plus_dm, minus_dm)
            )
        else:
            tr_sum = tr_sum - tr_sum / length + true_ranges[i]
            plus_sum = plus_sum - plus_sum / length + plus_dm[i]
            minus_sum = minus_sum - minus_sum / length + minus_dm[i]
        plus_di[i] = 100.0 * plus_sum / tr_sum if tr_sum > 0 else 0.0
        minus_di[i] = 100.0 * minus_sum / tr_sum if tr_sum > 0 else 0.0
        total = plus_di[i] + minus_di[i]
        dx[i] = 100.0 * abs(plus_di[i] - minus_di[i]) / total if total > 0 else 0.0
    return _wilder_classic(dx, length, length), plus_di, minus_di


# ---- indicators equal their loops ----------------------------------------------------------------

ROLLING = {
    "sma": (ft.sma, _mean),
    "rolling_sum": (ft.rolling_sum, math.fsum),
    "rolling_std": (ft.rolling_std, _pstd),
    "rolling_max": (ft.rolling_max, max),
    "rolling_min": (ft.rolling_min, min),
    "linreg_last": (ft.linreg_last, _linreg),
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("length", [2, 14, 20])
@pytest.mark.parametrize("column", ["close", "volume"])
@pytest.mark.parametrize("name", sorted(ROLLING))
def test_rolling_windows_equal_loops(name: str, column: str, length: int, seed: int) -> None:
    """Each rolling-window statistic equals the loop over its window, NaN during warm-up."""
    function, reduce = ROLLING[name]
    values = _random_bars(seed)[column]
    _assert_close(function(values, length), _window_loop(values, length, reduce))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("length", [20, 30])
@pytest.mark.parametrize("column", ["close", "volume"])
def test_trailing_zscore_excludes_current_value(column: str, length: int, seed: int) -> None:
    """z_i = (x_i − mean) / pstd of the ``length`` values before i (never including x_i)."""
    values = _random_bars(seed)[column]
    _assert_close(ft.trailing_zscore(values, length), _zscore_loop(values, length))


@pytest.mark.parametrize("level", [0.1, 27123.4])
def test_trailing_zscore_is_nan_on_a_flat_baseline(level: float) -> None:
    """A baseline of identical values gives NaN, as documented, not a z from rounding noise."""
    values = np.r_[np.full(20, level), level, level + 0.1]
    np.testing.assert_array_equal(ft.trailing_zscore(values, 20)[20:], [NAN, NAN])


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("length", [1, 3, 14, 20])
@pytest.mark.parametrize(("name", "alpha"), [("ema", "2/(n+1)"), ("wilder", "1/n")])
def test_recursive_averages_equal_loop(name: str, alpha: str, length: int, seed: int) -> None:
    """EMA (α = 2/(n+1)) and Wilder (α = 1/n) equal the SMA-seeded loop, with and without NaNs."""
    values = _random_bars(seed)["close"].copy()
    weight = 2.0 / (length + 1) if alpha == "2/(n+1)" else 1.0 / length
    function = getattr(ft, name)
    _assert_close(function(values, length), _smoothed_loop(list(values), length, weight))
    values[[0, 2]] = NAN  # the seed is then the mean of the first run of finite values
    _assert_close(function(values, length), _smoothed_loop(list(values), length, weight))


def test_ema_hand_worked() -> None:
    """EMA(3) of 1…5: seed mean(1, 2, 3) = 2 at index 2, then 2 + ½·(4 − 2) = 3, then 4."""
    np.testing.assert_array_equal(ft.ema(np.arange(1.0, 6.0), 3), [NAN, NAN, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("length", [3, 14])
def test_recursive_averages_match_pandas_ewm(length: int) -> None:
    """Cross-check with pandas: ewm(adjust=False) started from the SMA seed gives EMA and Wilder."""
    import pandas as pd

    values = _random_bars(4)["close"]
    for function, alpha in ((ft.ema, 2.0 / (length + 1)), (ft.wilder, 1.0 / length)):
        seeded = np.r_[values[:length].mean(), values[length:]]
        expected = pd.Series(seeded).ewm(alpha=alpha, adjust=False).mean().to_numpy()
        _assert_close(function(values, length), np.r_[np.full(length - 1, NAN), expected])


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("length", [3, 14, 20])
def test_price_indicators_equal_loops(seed: int, length: int) -> None:
    """TR (first = high − low), ATR, RSI, ADX/±DI, Bollinger and squeeze Keltner equal loops."""
    bars = _random_bars(seed)
    high, low, close = bars["high"], bars["low"], bars["close"]
    true_ranges = _true_range_loop(high, low, close)
    _assert_close(ft.true_range(high, low, close), true_ranges)
    _assert_close(ft.atr(high, low, close, length), _wilder_classic(true_ranges, 0, length))
    _assert_close(ft.rsi(close, length), _rsi_loop(close, length))
    adx_lines = ft.adx(high, low, close, length), _adx_loop(high, low, close, length)
    for got, expected in zip(*adx_lines, strict=True):
        _assert_close(got, expected)
    middle = np.array(_window_loop(close, length, _mean))
    deviation = np.array(_window_loop(close, length, _pstd))
    band = np.array(_window_loop(np.array(true_ranges), length, _mean))  # an SMA "ATR"
    bands = [(ft.bollinger(close, length, 2.5), 2.5 * deviation)]
    bands.append((ft.keltner(high, low, close, length, 1.5), 1.5 * band))
    for (got_middle, upper, lower), width in bands:
        _assert_close(got_middle, middle)
        _assert_close(upper, middle + width)
        _assert_close(lower, middle - width)


@pytest.mark.parametrize(
    ("closes", "expected"),
    [
        ([1, 2, 3, 4, 5, 6], [NAN, NAN, NAN, 100, 100, 100]),
        ([5, 5, 5, 5, 5, 5], [NAN, NAN, NAN, 50, 50, 50]),
        ([1, 2, 3, 4, 4, 4], [NAN, NAN, NAN, 100, 100, 100]),
        ([6, 5, 4, 3, 3, 3], [NAN, NAN, NAN, 0, 0, 0]),
        # gains 1, 0, 1 / losses 0, 1, 0 → RS 2; then RS 2; then (8/27) / (13/27)
        ([1, 2, 1, 2, 2, 1], [NAN, NAN, NAN, 200 / 3, 200 / 3, 100 - 100 / (1 + 8 / 13)]),
    ],
)
def test_rsi_edge_cases(closes: list[float], expected: list[float]) -> None:
    """RSI(3) is 100 without losses (even once flat), 50 on a flat window, 0 without gains."""
    _assert_close(ft.rsi(np.array(closes, dtype=float), 3), expected)


def test_flat_market_has_no_direction() -> None:
    """With no range and no moves, ±DI and DX are 0 (not NaN) and so is ADX; ATR is 0."""
    flat = np.full(12, 7.0)
    adx, plus_di, minus_di = ft.adx(flat, flat, flat, 3)
    np.testing.assert_array_equal(plus_di, [NAN] * 3 + [0.0] * 9)
    np.testing.assert_array_equal(minus_di, plus_di)
    np.testing.assert_array_equal(adx, [NAN] * 5 + [0.0] * 7)
    np.testing.assert_array_equal(ft.atr(flat, flat, flat, 3), [NAN] * 2 + [0.0] * 10)


# ---- order flow, sessions, funding, seasonality --------------------------------------------------


def test_session_cvd_restarts_at_utc_midnight() -> None:
    """Session CVD is the running sum of delta that restarts at each UTC calendar day."""
    bars = _random_bars(5)
    delta = ft.candle_delta(bars["volume"], bars["taker_buy_volume"])
    expected, running, day = [], 0.0, None
    for time_ms, value in zip(bars["open_time_ms"], delta, strict=True):
        today = datetime.fromtimestamp(time_ms / 1000, UTC).date()
        running = value + (running if today == day else 0.0)
        day = today
        expected.append(running)
    assert len({datetime.fromtimestamp(t / 1000, UTC).date() for t in bars["open_time_ms"]}) > 3
    _assert_close(ft.session_cvd(bars["open_time_ms"], delta), expected)
    _assert_close(delta, 2 * bars["taker_buy_volume"] - bars["volume"])


# The reference §4 fixed-UTC table, typed out independently of SESSIONS.
_SESSION_BY_HOUR = (
    ["asia"] * 7
    + ["asia_london_overlap"]
    + ["london"] * 5
    + ["london_ny_overlap"] * 3
    + ["new_york"] * 5
    + ["off_hours"] * 3
)


# Wednesday 2024-03-06 hour by hour, Friday 8th → Saturday 9th, Sunday 10th → Monday 11th, and
# the epoch's first Friday/Saturday (1970-01-01 was a Thursday).
_BOUNDARIES = """
2024-03-06T00:00 asia                 2024-03-06T06:59:59.999 asia
2024-03-06T07:00 asia_london_overlap  2024-03-06T07:59 asia_london_overlap
2024-03-06T08:00 london               2024-03-06T12:59 london
2024-03-06T13:00 london_ny_overlap    2024-03-06T15:59 london_ny_overlap
2024-03-06T16:00 new_york             2024-03-06T20:59 new_york
2024-03-06T21:00 off_hours            2024-03-06T23:59 off_hours
2024-03-08T23:59 off_hours            2024-03-09T00:00 weekend
2024-03-10T23:59:59.999 weekend       2024-03-11T00:00 asia
1970-01-02T23:59 off_hours            1970-01-03T00:00 weekend
"""


@pytest.mark.parametrize(
    ("iso", "expected"), [tuple(pair) for pair in np.reshape(_BOUNDARIES.split(), (-1, 2))]
)
def test_session_label_boundaries(iso: str, expected: str) -> None:
    """A bar belongs to the session of its open time on the fixed UTC table; Sat/Sun are weekend."""
    label = ft.session_labels(np.array([_ms(iso)], dtype=np.int64))
    assert ft.SESSION_NAMES[int(label[0])] == expected


def test_session_labels_equal_calendar_loop() -> None:
    """Over random minutes of two years, labels equal datetime's weekday and hour on the table."""
    times = np.random.default_rng(6).integers(_ms("2024-01-01"), _ms("2026-01-01"), 5000)
    times = times // MINUTE_MS * MINUTE_MS
    expected = []
    for time_ms in times:
        moment = datetime.fromtimestamp(time_ms / 1000, UTC)
        expected.append("weekend" if moment.weekday() >= 5 else _SESSION_BY_HOUR[moment.hour])
    labels = ft.session_labels(times)
    assert [ft.SESSION_NAMES[i] for i in labels] == expected


def _funding_loop(
    times: list[int], rates: list[float], at_ms: list[int], intervals: list[float] | None
) -> list[tuple[float, float, float, int, int]]:
    rows = []
    for at in at_ms:
        last = max((i for i, time_ms in enumerate(times) if time_ms <= at), default=-1)
        if last < 0:
            rows.append((NAN, NAN, NAN, 0, 0))
            continue
        hours = intervals[last] if intervals is not None else NAN
        if not (math.isfinite(hours) and hours > 0):
            hours = 8.0 if last == 0 else (times[last] - times[last - 1]) / HOUR_MS
        streaks = []
        for sign in (-1, 1):
            count = 0
            while last - count >= 0 and np.sign(rates[last - count]) == sign:
                count += 1
            streaks.append(count)
        rows.append((rates[last], hours, rates[last] * 8 / hours, *streaks))
    return rows


@pytest.mark.parametrize(
    ("interval_hours", "given"), [(8, True), (8, False), (4, True), (4, False)]
)
def test_funding_state_as_of_each_time(interval_hours: int, given: bool) -> None:
    """Funding known at a time: the last settlement at or before it, 8h-normalised, with streaks."""
    rng = np.random.default_rng(interval_hours)
    count = 20
    times = [_ms("2024-03-01") + i * interval_hours * HOUR_MS for i in range(count)]
    rates = list(rng.choice([-2e-4, -1e-4, 0.0, 1e-4, 3e-4], count))
    intervals = [float(interval_hours)] * count if given else None
    if given:
        intervals[5] = NAN  # a missing interval falls back to the gap
    at_ms = [times[0] - 1, *[times[0] + i * 30 * MINUTE_MS - 1 for i in range(200)], times[7]]
    state = ft.funding_state(
        np.array(times),
        np.array(rates),
        np.array(at_ms, dtype=np.int64),
        interval_hours=None if intervals is None else np.array(intervals),
    )
    got = [state.rate, state.interval_hours, state.rate_8h, state.negative_streak]
    expected = np.array(_funding_loop(times, rates, at_ms, intervals)).T
    for got_column, expected_column in zip([*got, state.positive_streak], expected, strict=True):
        _assert_close(got_column, expected_column)
    if given and interval_hours == 4:
        known = np.isfinite(state.rate)
        _assert_close(state.rate_8h[known], 2 * state.rate[known])


def test_value_asof_and_asof_index_equal_loop() -> None:
    """As-of lookups pick the last event at or before each time (ties included), else −1 / NaN."""
    rng = np.random.default_rng(8)
    events = np.sort(rng.integers(0, 1000, 60)) * 1000  # duplicate event times included
    values = rng.normal(size=events.size)
    at_ms = np.r_[-1, events[:5], events[5:10] - 1, rng.integers(-5000, 1_100_000, 300)]
    expected_index = [max((i for i, e in enumerate(events) if e <= at), default=-1) for at in at_ms]
    np.testing.assert_array_equal(ft.asof_index(events, at_ms), expected_index)
    expected = [values[i] if i >= 0 else NAN for i in expected_index]
    np.testing.assert_array_equal(ft.value_asof(events, values, at_ms), expected)


def _hourly_loop(
    open_time_ms: np.ndarray, volume: np.ndarray, weeks: int, min_weeks: int
) -> tuple[list[int], list[float]]:
    by_hour: dict[int, float] = {}
    for time_ms, value in zip(open_time_ms, volume, strict=True):
        by_hour[int(time_ms) // HOUR_MS] = by_hour.get(int(time_ms) // HOUR_MS, 0.0) + value
    hours = list(range(min(by_hour), max(by_hour) + 1))
    weights = []
    for hour in hours:
        same = [by_hour[hour - 168 * k] for k in range(1, weeks + 1) if hour - 168 * k in by_hour]
        day_start = hour - hour % 24  # the denominator is recomputed once per UTC day
        every = [by_hour[h] for h in range(day_start - 168 * weeks, day_start) if h in by_hour]
        if len(same) < min_weeks or statistics.median(every) <= 0:
            weights.append(NAN)
        else:
            weights.append(statistics.median(same) / statistics.median(every))
    return [hour * HOUR_MS for hour in hours], weights


def _quarter_hour_volume(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Six weeks of 15-minute volume with an hour-of-day profile, zeros and a 30-hour outage."""
    rng = np.random.default_rng(seed)
    times = _ms("2024-02-07T05:00") + np.arange(6 * 7 * 96, dtype=np.int64) * 15 * MINUTE_MS
    hour = (times // HOUR_MS) % 24
    volume = rng.gamma(2.0, 1.0 + (hour >= 13) * 2.0) * (rng.random(times.size) > 0.02)
    keep = (times < _ms("2024-03-01T10:00")) | (times >= _ms("2024-03-02T16:00"))
    return times[keep], volume[keep]


@pytest.mark.parametrize(("weeks", "min_weeks"), [(4, 2), (3, 1), (2, 2)])
def test_hour_of_week_weight_equals_loop(weeks: int, min_weeks: int) -> None:
    """Weight = median(same hour, previous weeks) / median(all hours of the weeks before the
    hour's UTC day), NaN early."""
    times, volume = _quarter_hour_volume(weeks)
    hours, weights = ft.hour_of_week_weight(times, volume, weeks=weeks, min_weeks=min_weeks)
    expected_hours, expected = _hourly_loop(times, volume, weeks, min_weeks)
    np.testing.assert_array_equal(hours, expected_hours)
    _assert_close(weights, expected)
    assert np.isnan(weights[: 168 * min_weeks]).all() and np.isfinite(weights[-24:]).all()


@pytest.mark.parametrize(("weeks", "min_weeks"), [(4, 2), (2, 1)])
def test_hour_of_week_baseline_equals_loop(weeks: int, min_weeks: int) -> None:
    """The same-hour median (NaN before min_weeks earlier weeks) and the every-hour median of
    the weeks before the hour's UTC day equal plain loops; their ratio is the weight."""
    times, volume = _quarter_hour_volume(weeks + 7)
    hours, same, every = ft.hour_of_week_baseline(times, volume, weeks=weeks, min_weeks=min_weeks)
    by_hour: dict[int, float] = {}
    for time_ms, value in zip(times, volume, strict=True):
        by_hour[int(time_ms) // HOUR_MS] = by_hour.get(int(time_ms) // HOUR_MS, 0.0) + value
    expected_same, expected_every = [], []
    for hour in range(min(by_hour), max(by_hour) + 1):
        earlier = [
            by_hour[hour - 168 * k] for k in range(1, weeks + 1) if hour - 168 * k in by_hour
        ]
        expected_same.append(statistics.median(earlier) if len(earlier) >= min_weeks else NAN)
        day_start = hour - hour % 24
        window = [by_hour[h] for h in range(day_start - 168 * weeks, day_start) if h in by_hour]
        expected_every.append(statistics.median(window) if window else NAN)
    assert hours.tolist() == [h * HOUR_MS for h in range(min(by_hour), max(by_hour) + 1)]
    _assert_close(same, expected_same)
    _assert_close(every, expected_every)
    _, weight = ft.hour_of_week_weight(times, volume, weeks=weeks, min_weeks=min_weeks)
    _assert_close(weight, np.where(every > 0, same / every, NAN))


# ---- bars and trades -----------------------------------------------------------------------------


def _bars_from(arrays: Arrays, keep: np.ndarray | slice = slice(None)) -> ft.Bars:
    return ft.Bars.from_candles(**{name: values[keep] for name, values in arrays.items()})


def _minute_bars(seed: int, minutes: int) -> Arrays:
    arrays = _random_bars(seed, minutes)
    arrays["open_time_ms"] = _ms("2024-03-04T09:00") + np.arange(minutes) * MINUTE_MS
    return arrays


def _resample_loop(bars: ft.Bars, interval_ms: int, known_until_ms: int) -> list[tuple]:
    groups: dict[int, list[int]] = {}
    for i, time_ms in enumerate(bars.open_time_ms):
        groups.setdefault(int(time_ms) - int(time_ms) % interval_ms, []).append(i)
    closed = [
        (t, group)
        for t, group in sorted(groups.items())
        if t + interval_ms <= known_until_ms
        # a first bar that the data enters midway is left out
        and not (group[0] == 0 and int(bars.open_time_ms[0]) != t)
    ]
    return [
        (t, bars.open[g[0]], max(bars.high[i] for i in g), min(bars.low[i] for i in g),
         bars.close[g[-1]], *(math.fsum(column[i] for i in g) for column in _rows(bars)[5:]))
        for t, g in closed
    ]  # fmt: skip


def _rows(bars: ft.Bars) -> list[np.ndarray]:
    return [
        bars.open_time_ms, bars.open, bars.high, bars.low, bars.close,
        bars.volume, bars.taker_buy_volume, bars.delta,
    ]  # fmt: skip


@pytest.mark.parametrize("minutes", [5, 15, 60])
@pytest.mark.parametrize("case", ["complete", "ragged_end", "missing_inside", "known_until"])
def test_resample_equals_grouping_loop(minutes: int, case: str) -> None:
    """Resampling groups 1m bars by epoch-aligned interval and emits only bars closed when known."""
    arrays = _minute_bars(9, 300)
    keep = np.ones(300, dtype=bool)
    known_until_ms = None
    if case == "ragged_end":
        keep[-7:] = False  # the last longer bar is incomplete: dropped
    if case == "missing_inside":
        keep[[0, 1, 31, 32, 100, 181]] = False  # outages inside bars (or before): still emitted
    if case == "known_until":
        keep[-3:] = False  # an outage at the end of the data, but time has moved on
        known_until_ms = int(arrays["open_time_ms"][-1]) + MINUTE_MS
    bars = _bars_from(arrays, keep)
    interval_ms = minutes * MINUTE_MS
    result = bars.resample(interval_ms, known_until_ms=known_until_ms)
    until = known_until_ms or int(bars.open_time_ms[-1]) + MINUTE_MS
    expected = _resample_loop(bars, interval_ms, until)
    assert result.interval_ms == interval_ms and len(result) == len(expected) > 0
    for got, column in zip(_rows(result), zip(*expected, strict=True), strict=True):
        _assert_close(got, column)
    assert int(result.close_time_ms[-1]) < until
    if case == "ragged_end":
        assert int(result.open_time_ms[-1]) + interval_ms <= int(bars.open_time_ms[-1])


def test_resample_known_until_earlier_than_data_and_empty() -> None:
    """known_until_ms caps which longer bars are closed; no closed bar gives an empty result."""
    bars = _bars_from(_minute_bars(10, 120))
    start = int(bars.open_time_ms[0])
    for known_minutes, count in [(44, 2), (45, 3), (59, 3), (60, 4)]:
        for offset_ms in (-1, 0):
            known_until_ms = start + known_minutes * MINUTE_MS + offset_ms
            expected = count - 1 if offset_ms and known_minutes % 15 == 0 else count
            assert len(bars.resample(15 * MINUTE_MS, known_until_ms=known_until_ms)) == expected
    assert len(bars.resample(HOUR_MS, known_until_ms=start + 59 * MINUTE_MS)) == 0
    assert len(bars.take(slice(0, 0)).resample(HOUR_MS)) == 0


def test_until_keeps_bars_closed_before_end() -> None:
    """Bars.until(end) keeps exactly the bars whose close time is before ``end``."""
    bars = _bars_from(_minute_bars(11, 50), np.arange(50) != 20)
    first = int(bars.open_time_ms[0])
    ends = [
        first,
        first + MINUTE_MS - 1,
        first + MINUTE_MS,
        *range(first, first + 3_100_000, 7_001),
    ]
    for end_ms in ends:
        closes = zip(bars.open_time_ms, bars.close_time_ms, strict=True)
        np.testing.assert_array_equal(
            bars.until(end_ms).open_time_ms, [t for t, close in closes if close < end_ms]
        )
    assert bars.close_time_ms[0] == first + MINUTE_MS - 1


def test_trade_minute_flow_equals_loop() -> None:
    """Per-minute taker buy and sell volume from trades (is_buyer_maker ⇒ the taker sold)."""
    rng = np.random.default_rng(12)
    times = np.sort(rng.integers(0, 20 * MINUTE_MS, 400)) + _ms("2024-03-04")
    times[50:60] = times[49]  # several trades in the same millisecond
    quantity = np.round(rng.gamma(1.0, 0.2, times.size), 3)
    sold = rng.random(times.size) < 0.45
    buckets: dict[int, list[float]] = {}
    for time_ms, qty, seller in zip(times, quantity, sold, strict=True):
        flow = buckets.setdefault(int(time_ms) - int(time_ms) % MINUTE_MS, [0.0, 0.0])
        flow[1 if seller else 0] += qty
    got_times, buy, sell = ft.trade_minute_flow(times, quantity, sold)
    np.testing.assert_array_equal(got_times, sorted(buckets))
    _assert_close(buy, [buckets[t][0] for t in sorted(buckets)])
    _assert_close(sell, [buckets[t][1] for t in sorted(buckets)])
    assert [array.size for array in ft.trade_minute_flow([], [], [])] == [0, 0, 0]


def test_trade_delta_equals_candle_identity_on_exchange_data() -> None:
    """On the simulated exchange, per-minute buy − sell of aggTrades is 2·takerBuy − volume."""
    now_ms = _ms("2024-03-01")
    market = Market.demo(symbols=["BTCUSDT"], days=2, seed=7, now_ms=now_ms)
    spec = market.spec("BTCUSDT")
    start, end = _ms("2024-02-28T22:00"), _ms("2024-02-29T01:00")  # across a UTC midnight
    trades = market.agg_trades("BTCUSDT", start, end - 1)
    klines = market.klines("BTCUSDT", "1m", start, end - 1, now_ms=now_ms)
    assert len(trades) > 1000 and len(klines) == 180
    traded = klines.trade_count > 0
    # Exact in integer steps first, then in base units (steps are 10**-quantity_decimals).
    for unit in (1.0, 10.0**-spec.quantity_decimals):
        times, buy, sell = ft.trade_minute_flow(
            trades.time_ms, trades.qty_steps * unit, trades.buyer_is_maker
        )
        volume = klines.volume_steps[traded] * unit
        taker_buy = klines.taker_buy_volume_steps[traded] * unit
        np.testing.assert_array_equal(times, klines.open_time_ms[traded])
        np.testing.assert_allclose(buy, taker_buy, rtol=1e-12, atol=0)
        np.testing.assert_allclose(
            buy - sell, ft.candle_delta(volume, taker_buy), rtol=0, atol=1e-9
        )
        np.testing.assert_allclose(
            ft.session_cvd(times, buy - sell),
            ft.session_cvd(times, ft.candle_delta(volume, taker_buy)),
            rtol=0,
            atol=1e-8,
        )


# ---- causality: a prefix sees the same values ----------------------------------------------------

_EVENTS_MS = START_MS + np.arange(0, 40 * HOUR_MS, 4 * HOUR_MS)
_EVENT_RATES = np.array([1e-4, -1e-4, -2e-4, 0.0, 3e-4, 1e-4, -1e-4, -1e-4, 2e-4, 1e-4])


def _funding_until(bars: Arrays) -> tuple[np.ndarray, ...]:
    """Funding as of each bar from only the settlements published by the last bar."""
    known = bars["open_time_ms"].max(initial=-1) >= _EVENTS_MS
    state = ft.funding_state(_EVENTS_MS[known], _EVENT_RATES[known], bars["open_time_ms"])
    return (state.rate, state.interval_hours, state.rate_8h, state.negative_streak)


CAUSAL: dict[str, Callable[[Arrays], object]] = {
    "sma": lambda b: ft.sma(b["close"], 14),
    "rolling_sum": lambda b: ft.rolling_sum(b["volume"], 14),
    "rolling_std": lambda b: ft.rolling_std(b["close"], 14),
    "rolling_max": lambda b: ft.rolling_max(b["high"], 14),
    "rolling_min": lambda b: ft.rolling_min(b["low"], 14),
    "trailing_zscore": lambda b: ft.trailing_zscore(b["volume"], 20),
    "linreg_last": lambda b: ft.linreg_last(b["close"], 20),
    "ema": lambda b: ft.ema(b["close"], 14),
    "wilder": lambda b: ft.wilder(b["close"], 14),
    "true_range": lambda b: ft.true_range(b["high"], b["low"], b["close"]),
    "atr": lambda b: ft.atr(b["high"], b["low"], b["close"], 14),
    "rsi": lambda b: ft.rsi(b["close"], 14),
    "adx": lambda b: ft.adx(b["high"], b["low"], b["close"], 14),
    "bollinger": lambda b: ft.bollinger(b["close"], 20),
    "keltner": lambda b: ft.keltner(b["high"], b["low"], b["close"], 20),
    "candle_delta": lambda b: ft.candle_delta(b["volume"], b["taker_buy_volume"]),
    "session_cvd": lambda b: ft.session_cvd(b["open_time_ms"], b["volume"]),
    "session_labels": lambda b: ft.session_labels(b["open_time_ms"]),
    "value_asof": lambda b: ft.value_asof(_EVENTS_MS, _EVENT_RATES, b["open_time_ms"]),
    "funding_state": _funding_until,
}


@pytest.mark.parametrize("name", sorted(CAUSAL))
def test_prefix_gives_identical_values(name: str) -> None:
    """At every index < k, the feature of values[:k] equals the feature of all values, exactly."""
    bars = _random_bars(13, 400)
    full = CAUSAL[name](bars)
    cuts = np.r_[1, 2, 15, 28, 399, np.random.default_rng(14).integers(1, 400, 25)]
    for k in cuts:
        prefix = CAUSAL[name]({column: values[:k] for column, values in bars.items()})
        for got, whole in zip(_arrays(prefix), _arrays(full), strict=True):
            np.testing.assert_array_equal(got, whole[:k], err_msg=f"{name} at k={k}")


def _arrays(result: object) -> tuple[np.ndarray, ...]:
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("name", sorted(CAUSAL))
def test_no_bars_give_empty_features(name: str) -> None:
    """A feature of no bars is empty, not an error (a symbol with nothing loaded yet)."""
    bars = {column: values[:0] for column, values in _random_bars(13, 50).items()}
    assert all(array.shape == (0,) for array in _arrays(CAUSAL[name](bars)))


def test_resample_and_hour_weights_are_causal() -> None:
    """Resampled bars known at T, and hour-of-week weights of a prefix, equal the full-data ones."""
    bars = _bars_from(_minute_bars(15, 600))
    full = bars.resample(15 * MINUTE_MS)
    times, volume = _quarter_hour_volume(16)
    hours, weights = ft.hour_of_week_weight(times, volume)
    rng = np.random.default_rng(17)
    for end_ms in int(bars.open_time_ms[0]) + rng.integers(1, 600, 20) * MINUTE_MS:
        known = bars.until(int(end_ms)).resample(15 * MINUTE_MS, known_until_ms=int(end_ms))
        closed = full.take(full.open_time_ms + full.interval_ms <= end_ms)
        for got, whole in zip(_rows(known), _rows(closed), strict=True):
            np.testing.assert_array_equal(got, whole)
    for k in rng.integers(1, times.size, 8):
        prefix_hours, prefix_weights = ft.hour_of_week_weight(times[:k], volume[:k])
        np.testing.assert_array_equal(prefix_hours, hours[: prefix_hours.size])
        np.testing.assert_array_equal(prefix_weights, weights[: prefix_hours.size])

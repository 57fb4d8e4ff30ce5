"""The feature table of one symbol on the signal timeframe: every input the setups and the
rubric read, computed once from closed 1m bars, open interest and funding."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from ingmon.signals import features as ft
from ingmon.signals.profile import VolumeProfile, infer_tick_size, session_profiles
from ingmon.signals.rules import SignalConfig
from ingmon.times import DAY_MS, HOUR_MS

__all__ = ["LEVEL_NAMES", "PROFILE_LEVELS", "FeatureFrame", "MarketInputs", "build_features"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Levels a bar may trade against: the previous UTC session's profile levels, high and low.
PROFILE_LEVELS = ("poc", "vah", "val", "hvn_1", "hvn_2", "hvn_3")
LEVEL_NAMES = (*PROFILE_LEVELS, "session_high", "session_low")


@dataclass(frozen=True)
class MarketInputs:
    """Everything the signal engine reads about one symbol, as arrays sorted by time.

    ``minutes`` are closed 1m bars whose ``delta`` comes from trades where the lake has them
    (``trade_delta`` tells) and from the candle identity elsewhere. Open interest is the
    snapshot stamped at its timestamp (known from then on); funding counts from its
    settlement time. ``known_until_ms`` (exclusive) is the as-of instant of the whole input.
    """

    symbol: str
    minutes: ft.Bars
    oi_time_ms: IntArray
    oi_value: FloatArray
    funding_time_ms: IntArray
    funding_rate: FloatArray
    funding_interval_hours: FloatArray
    known_until_ms: int
    tick_size: float | None = None
    trade_delta: bool = False

    def until(self, end_ms: int) -> MarketInputs:
        """What was known at the instant ``end_ms``: the bars closed by then, and the OI
        snapshots and funding settlements stamped up to and including it."""
        end_ms = min(end_ms, self.known_until_ms)
        oi_stop = int(np.searchsorted(self.oi_time_ms, end_ms, side="right"))
        funding_stop = int(np.searchsorted(self.funding_time_ms, end_ms, side="right"))
        return replace(
            self,
            minutes=self.minutes.until(end_ms),
            oi_time_ms=self.oi_time_ms[:oi_stop],
            oi_value=self.oi_value[:oi_stop],
            funding_time_ms=self.funding_time_ms[:funding_stop],
            funding_rate=self.funding_rate[:funding_stop],
            funding_interval_hours=self.funding_interval_hours[:funding_stop],
            known_until_ms=end_ms,
        )

    def watermarks(self) -> dict[str, int | None]:
        """Latest event time of each feed (ms): the as-of state of this input."""

        def last(times: IntArray) -> int | None:
            return int(times[-1]) if times.size else None

        return {
            "candles": last(self.minutes.open_time_ms),
            "open_interest": last(self.oi_time_ms),
            "funding": last(self.funding_time_ms),
        }


@dataclass(frozen=True)
class FeatureFrame:
    """Signal-timeframe bars and their named feature columns (index i = bar i).

    ``levels[name][i]`` is a level of the previous UTC session that bar i may trade against
    (``LEVEL_NAMES``: its volume profile's POC, value-area edges and high-volume nodes, and its
    high and low; NaN when unknown); ``profiles`` holds those sessions' volume profiles by
    session start, and the column ``profile_bin_width`` their bin width.
    """

    symbol: str
    bars: ft.Bars
    columns: dict[str, FloatArray]
    session: IntArray
    levels: dict[str, FloatArray]
    profiles: dict[int, VolumeProfile]
    tick_size: float

    def __len__(self) -> int:
        return len(self.bars)

    def __getitem__(self, name: str) -> FloatArray:
        return self.columns[name]

    def levels_at(self, index: int) -> dict[str, float]:
        """The previous session's levels that bar ``index`` may trade against (name → price)."""
        return {
            name: float(values[index])
            for name, values in self.levels.items()
            if np.isfinite(values[index])
        }


def build_features(inputs: MarketInputs, config: SignalConfig) -> FeatureFrame:
    """Every feature of every closed signal bar of ``inputs`` (causal: see features.py)."""
    params = config.detector
    minutes = inputs.minutes
    bars = minutes.resample(config.timeframe_ms, known_until_ms=inputs.known_until_ms)
    high, low, close = bars.high, bars.low, bars.close
    baseline = config.baseline_bars
    close_ms = bars.close_time_ms
    known_at = close_ms + 1  # a bar's close instant: events stamped then are known

    columns: dict[str, FloatArray] = {
        "open": bars.open,
        "high": high,
        "low": low,
        "close": close,
        "volume": bars.volume,
    }
    columns["ema20"] = ft.ema(close, 20)
    columns["ema50"] = ft.ema(close, 50)
    columns["ema200"] = ft.ema(close, 200)
    columns["atr"] = ft.atr(high, low, close, params.atr_length)
    columns["rsi"] = ft.rsi(close, params.rsi_length)
    columns["adx"], columns["plus_di"], columns["minus_di"] = ft.adx(
        high, low, close, params.adx_length
    )
    band = params.band_length
    bb_mid, columns["bb_upper"], columns["bb_lower"] = ft.bollinger(
        close, band, params.bollinger_std
    )
    _, columns["kc_upper"], columns["kc_lower"] = ft.keltner(
        high, low, close, band, params.keltner_scalar
    )
    columns["squeeze_on"] = (
        (columns["bb_lower"] > columns["kc_lower"]) & (columns["bb_upper"] < columns["kc_upper"])
    ).astype(np.float64)
    # LazyBear momentum: linreg of close − mean(midrange, SMA) over the band length.
    middle = ((ft.rolling_max(high, band) + ft.rolling_min(low, band)) / 2.0 + bb_mid) / 2.0
    columns["momentum"] = ft.linreg_last(close - middle, band)
    columns["bb_middle"] = bb_mid

    with np.errstate(divide="ignore", invalid="ignore"):
        previous_close = ft.lag(close)
        columns["bar_return"] = close / previous_close - 1.0
        columns["return_z"] = ft.trailing_zscore(columns["bar_return"], baseline)
        columns["delta"] = bars.delta
        columns["delta_z"] = ft.trailing_zscore(bars.delta, baseline)
        columns["taker_buy_ratio"] = np.where(
            bars.volume > 0, bars.taker_buy_volume / bars.volume, np.nan
        )
        volume_before = ft.lag(ft.sma(bars.volume, band))
        columns["relative_volume"] = bars.volume / volume_before
        columns["progress_atr"] = (close - bars.open) / columns["atr"]
        columns["close_location"] = np.where(high > low, (close - low) / (high - low), 0.5)
        body_top = np.maximum(bars.open, close)
        body_bottom = np.minimum(bars.open, close)
        columns["upper_wick"] = np.where(high > low, (high - body_top) / (high - low), 0.0)
        columns["lower_wick"] = np.where(high > low, (body_bottom - low) / (high - low), 0.0)
    columns["cvd"] = ft.session_cvd(bars.open_time_ms, bars.delta)

    _open_interest(
        columns,
        inputs,
        known_at,
        baseline=baseline,
        hour_bars=max(1, HOUR_MS // config.timeframe_ms),
    )
    _funding(columns, inputs, known_at)
    _higher_timeframe(columns, minutes, inputs.known_until_ms, close_ms)
    session = ft.session_labels(bars.open_time_ms)
    hours, same_hour, every_hour = ft.hour_of_week_baseline(minutes.open_time_ms, minutes.volume)
    with np.errstate(all="ignore"):
        weight = np.where(every_hour > 0, same_hour / every_hour, np.nan)
        columns["hour_of_week_weight"] = _at_hours(hours, weight, bars.open_time_ms)
        # the bar's volume against what its hour of the week usually trades in that time
        usual = _at_hours(hours, same_hour, bars.open_time_ms) * (config.timeframe_ms / HOUR_MS)
        columns["relative_volume_how"] = np.where(usual > 0, bars.volume / usual, np.nan)
    columns["hour_utc"] = ((bars.open_time_ms % DAY_MS) // HOUR_MS).astype(np.float64)
    columns["weekday"] = (((bars.open_time_ms // DAY_MS) + 3) % 7).astype(np.float64)

    tick_size = inputs.tick_size or _tick_size(minutes)
    profiles = session_profiles(
        minutes.open_time_ms,
        minutes.high,
        minutes.low,
        minutes.volume,
        minutes.taker_buy_volume,
        tick_size=tick_size,
        rows=params.profile_rows,
    )
    profiles = _closed_sessions(profiles, inputs.known_until_ms)
    levels = _session_levels(profiles, bars.open_time_ms)
    columns["profile_bin_width"] = levels.pop("bin_width")
    _session_range(levels, minutes, bars)
    return FeatureFrame(
        symbol=inputs.symbol,
        bars=bars,
        columns=columns,
        session=session,
        levels=levels,
        profiles=profiles,
        tick_size=tick_size,
    )


def _tick_size(minutes: ft.Bars) -> float:
    """The price grid seen in the bars (1.0 while there are too few prices to tell: nothing is
    scored from so little data anyway)."""
    prices = np.concatenate([minutes.open, minutes.high, minutes.low, minutes.close])
    if np.unique(prices).size < 2:
        return 1.0
    return infer_tick_size(prices)


def _open_interest(
    columns: dict[str, FloatArray],
    inputs: MarketInputs,
    known_at: IntArray,
    *,
    baseline: int,
    hour_bars: int,
) -> None:
    """OI as of each bar's close, its change over the bar (and its z-score), an hour and a day."""
    value = ft.value_asof(inputs.oi_time_ms, inputs.oi_value, known_at)
    index = ft.asof_index(inputs.oi_time_ms, known_at)
    age = np.where(index >= 0, known_at - inputs.oi_time_ms[np.maximum(index, 0)], np.nan)
    if not inputs.oi_time_ms.size:
        age = np.full(known_at.size, np.nan)
    columns["open_interest"] = value
    columns["open_interest_age_s"] = age / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        columns["oi_change"] = value / ft.lag(value) - 1.0
        # over longer windows too: one hour and one baseline (a day) of signal bars
        for name, bars_back in (("oi_change_1h", hour_bars), ("oi_change_24h", baseline)):
            columns[name] = value / ft.lag(value, bars_back) - 1.0
    columns["oi_change_z"] = ft.trailing_zscore(columns["oi_change"], baseline)


def _funding(columns: dict[str, FloatArray], inputs: MarketInputs, known_at: IntArray) -> None:
    state = ft.funding_state(
        inputs.funding_time_ms,
        inputs.funding_rate,
        known_at,
        interval_hours=inputs.funding_interval_hours,
    )
    columns["funding_rate"] = state.rate
    columns["funding_interval_hours"] = state.interval_hours
    columns["funding_8h"] = state.rate_8h
    columns["funding_negative_streak"] = state.negative_streak.astype(np.float64)
    columns["funding_positive_streak"] = state.positive_streak.astype(np.float64)
    index = ft.asof_index(inputs.funding_time_ms, known_at)
    last = inputs.funding_time_ms[np.maximum(index, 0)] if inputs.funding_time_ms.size else 0
    columns["funding_age_s"] = np.where(index >= 0, (known_at - last) / 1000.0, np.nan)


def _higher_timeframe(
    columns: dict[str, FloatArray], minutes: ft.Bars, known_until_ms: int, close_ms: IntArray
) -> None:
    """The 1h trend (EMA50 slope over 3 hours in 1h ATRs) as of each signal bar's close."""
    hourly = minutes.resample(HOUR_MS, known_until_ms=known_until_ms)
    ema50 = ft.ema(hourly.close, 50)
    atr = ft.atr(hourly.high, hourly.low, hourly.close, 14)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (ema50 - ft.lag(ema50, 3)) / (3.0 * atr)
    # An hour is usable once it has closed: its close time ≤ the signal bar's close time.
    columns["htf_slope_atr"] = ft.value_asof(hourly.close_time_ms, slope, close_ms)


def _at_hours(hours: IntArray, weight: FloatArray, open_time_ms: IntArray) -> FloatArray:
    """The weight of the hour each bar opens in."""
    if not hours.size:
        return np.full(open_time_ms.size, np.nan)
    return ft.value_asof(hours, weight, open_time_ms)


def _session_levels(
    profiles: dict[int, VolumeProfile], open_time_ms: IntArray
) -> dict[str, FloatArray]:
    """Each bar's previous-session profile levels, as one column per level name."""
    previous_day = open_time_ms // DAY_MS * DAY_MS - DAY_MS
    names = (*PROFILE_LEVELS, "bin_width")
    by_day: dict[int, list[float]] = {}
    for start, profile in profiles.items():
        found = profile.levels()
        by_day[start] = [found.get(name, np.nan) for name in PROFILE_LEVELS]
        by_day[start].append(profile.bin_width)
    days, position = np.unique(previous_day, return_inverse=True)
    table = np.array([by_day.get(int(day), [np.nan] * len(names)) for day in days])
    if not table.size:
        return {name: np.full(open_time_ms.size, np.nan) for name in names}
    return {name: table[position, column] for column, name in enumerate(names)}


def _session_range(columns: dict[str, FloatArray], minutes: ft.Bars, bars: ft.Bars) -> None:
    """The previous UTC day's high and low for each bar (NaN on the first day)."""
    day = minutes.open_time_ms // DAY_MS
    if not day.size:
        columns["session_high"] = np.full(len(bars), np.nan)
        columns["session_low"] = np.full(len(bars), np.nan)
        return
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    days = day[starts]
    highs = np.maximum.reduceat(minutes.high, starts)
    lows = np.minimum.reduceat(minutes.low, starts)
    wanted = bars.open_time_ms // DAY_MS - 1
    position = np.searchsorted(days, wanted)
    found = (position < days.size) & (days[np.minimum(position, days.size - 1)] == wanted)
    safe = np.minimum(position, days.size - 1)
    columns["session_high"] = np.where(found, highs[safe], np.nan)
    columns["session_low"] = np.where(found, lows[safe], np.nan)


def _closed_sessions(
    profiles: dict[int, VolumeProfile], known_until_ms: int
) -> dict[int, VolumeProfile]:
    """Only sessions that ended by ``known_until_ms`` (a running day is no prior session)."""
    return {start: p for start, p in profiles.items() if start + DAY_MS <= known_until_ms}

"""The signal engine on 90 days of one symbol's simulated 1m candles, side by side with pandas.

1. ``evaluate`` end to end (features + setups + scores): the warm median in this process, and
   cold: a fresh interpreter that imports ingmon, loads the inputs from a saved ``.npz`` and
   evaluates once (the issue's goal: the 90-day pipeline under 1 s).
2. ``build_features`` against a straightforward pandas version of the same features, written
   the way a user would (``resample().agg``, ``ewm(adjust=False)``, ``rolling``, ``groupby``,
   ``merge_asof``); key columns are asserted equal to 1e-6 relative after the warm-up, so both
   sides compute the same numbers. ingmon's time also builds a candle volume profile per UTC
   day and its levels, which the pandas version leaves out: the ratio flatters pandas. The
   indicator subset alone is also timed against ``ta`` when that peer is importable.
3. Trade-level volume profiles (trades/s): ``trade_session_profiles`` over 14 days and
   ``trade_profile`` over one, against a pandas ``groupby`` of ``(price / bin).floor()`` buy and
   sell sums (the bins only: ingmon also derives POC, value area and nodes).

Inputs come straight from ``Market.demo`` (no HTTP, no lake); generating them is not timed.
The minute delta is the candle identity 2·taker_buy − volume, which equals the trade delta on
this exchange (tests/signals/test_features.py proves it).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._harness import Case, interleaved_medians, print_table
from ingmon.exchange.market import Market
from ingmon.signals import features as ft
from ingmon.signals.engine import evaluate
from ingmon.signals.frame import FeatureFrame, MarketInputs, build_features
from ingmon.signals.profile import VolumeProfile, trade_profile, trade_session_profiles
from ingmon.signals.rules import SignalConfig
from ingmon.signals.scoring import score_signal
from ingmon.signals.setups import detect
from ingmon.times import DAY_MS, HOUR_MS, MINUTE_MS

__all__ = ["main"]

SYMBOL = "BTCUSDT"
SEED = 7
NOW_MS = 1_772_323_200_000  # 2026-03-01T00:00:00Z, the signal tests' fixed "now"
CANDLE_DAYS = 90
TRADE_DAYS = 14
BIN_TICKS = 10  # the fixed profile bin both sides use: 10 ticks (1.0 USDT on BTCUSDT)
WARM_REPEAT = 7
COLD_REPEAT = 3
# Bars skipped before comparing with pandas: EMA200 and ADX warm-up, and 4 weeks of hourly
# history for the hour-of-week weight are all inside it.
COMPARE_FROM_BAR = 300
RELATIVE_TOLERANCE = 1e-6
REPO = Path(__file__).resolve().parents[1]

BAR_FIELDS = ("open_time_ms", "open", "high", "low", "close", "volume", "taker_buy_volume")

# Run by a fresh interpreter: imports, loads the saved inputs, evaluates once, prints timings.
COLD_SCRIPT = """
import time
started = time.perf_counter()
import json, sys
import numpy as np
from ingmon.signals.engine import evaluate
from ingmon.signals.features import Bars
from ingmon.signals.frame import MarketInputs
from ingmon.signals.rules import SignalConfig
imported = time.perf_counter()
saved = np.load(sys.argv[1])
inputs = MarketInputs(
    symbol=sys.argv[2],
    minutes=Bars.from_candles(
        **{name: saved[name] for name in sys.argv[3].split(",")}, delta=saved["delta"]
    ),
    oi_time_ms=saved["oi_time_ms"],
    oi_value=saved["oi_value"],
    funding_time_ms=saved["funding_time_ms"],
    funding_rate=saved["funding_rate"],
    funding_interval_hours=saved["funding_interval_hours"],
    known_until_ms=int(saved["known_until_ms"]),
    tick_size=float(saved["tick_size"]),
)
loaded = time.perf_counter()
evaluation = evaluate(inputs, SignalConfig())
done = time.perf_counter()
print(json.dumps({
    "import_s": imported - started,
    "load_s": loaded - imported,
    "evaluate_s": done - loaded,
    "signals": len(evaluation.signals),
}))
"""


# ---- inputs ---------------------------------------------------------------------------------


def simulated_inputs(market: Market, *, start_ms: int, end_ms: int) -> MarketInputs:
    """Closed 1m candles with their minute delta, 5m open interest and funding of ``SYMBOL``
    in [start_ms, end_ms), as the engine reads them."""
    spec = market.spec(SYMBOL)
    price = 10.0**-spec.price_decimals
    quantity = 10.0**-spec.quantity_decimals
    last_ms = end_ms - 1
    candles = market.klines(SYMBOL, "1m", start_ms, last_ms, now_ms=last_ms)
    interest = market.open_interest(SYMBOL, "5m", start_ms, last_ms)
    funding = market.funding(SYMBOL, start_ms, last_ms)
    volume = np.asarray(candles.volume_steps * quantity, dtype=np.float64)
    taker_buy = np.asarray(candles.taker_buy_volume_steps * quantity, dtype=np.float64)
    gaps_hours = np.diff(funding.funding_time_ms) / HOUR_MS
    return MarketInputs(
        symbol=SYMBOL,
        minutes=ft.Bars.from_candles(
            open_time_ms=candles.open_time_ms,
            open=candles.open_ticks * price,
            high=candles.high_ticks * price,
            low=candles.low_ticks * price,
            close=candles.close_ticks * price,
            volume=volume,
            taker_buy_volume=taker_buy,
            delta=ft.candle_delta(volume, taker_buy),
        ),
        oi_time_ms=interest.timestamp_ms,
        oi_value=np.asarray(interest.sum_open_interest_steps * quantity, dtype=np.float64),
        funding_time_ms=funding.funding_time_ms,
        funding_rate=np.asarray(funding.funding_rate, dtype=np.float64),
        funding_interval_hours=np.r_[float(spec.funding_interval_hours), gaps_hours],
        known_until_ms=end_ms,
        tick_size=float(spec.tick_size),
    )


def save_inputs(inputs: MarketInputs, path: Path) -> None:
    """The arrays ``COLD_SCRIPT`` rebuilds ``inputs`` from."""
    minutes = inputs.minutes
    np.savez(
        path,
        **{name: getattr(minutes, name) for name in BAR_FIELDS},
        delta=minutes.delta,
        oi_time_ms=inputs.oi_time_ms,
        oi_value=inputs.oi_value,
        funding_time_ms=inputs.funding_time_ms,
        funding_rate=inputs.funding_rate,
        funding_interval_hours=inputs.funding_interval_hours,
        known_until_ms=np.int64(inputs.known_until_ms),
        tick_size=np.float64(inputs.tick_size or 0.0),
    )


def _utc(time_ms: Any) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(
        pd.to_datetime(np.asarray(time_ms, dtype=np.int64), unit="ms", utc=True)
    )


def pandas_frames(inputs: MarketInputs) -> dict[str, pd.DataFrame]:
    """The same inputs as a pandas user holds them: DataFrames on a UTC DatetimeIndex."""
    minutes = inputs.minutes
    return {
        "minutes": pd.DataFrame(
            {
                "open": minutes.open,
                "high": minutes.high,
                "low": minutes.low,
                "close": minutes.close,
                "volume": minutes.volume,
                "taker_buy_volume": minutes.taker_buy_volume,
                "delta": minutes.delta,
            },
            index=_utc(minutes.open_time_ms),
        ),
        "open_interest": pd.DataFrame(
            {"time": _utc(inputs.oi_time_ms), "open_interest": inputs.oi_value}
        ),
        "funding": pd.DataFrame(
            {
                "time": _utc(inputs.funding_time_ms),
                "funding_rate": inputs.funding_rate,
                "interval_hours": inputs.funding_interval_hours,
            }
        ),
    }


# ---- the straightforward pandas version -----------------------------------------------------

OHLCV_AGG = {
    "open": "first",
    "high": "max",
    "low": "min",
    "close": "last",
    "volume": "sum",
    "taker_buy_volume": "sum",
    "delta": "sum",
}


def pd_resample(minutes: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Closed-left bars labelled by their open; intervals without a minute are dropped."""
    return minutes.resample(rule, closed="left", label="left").agg(OHLCV_AGG).dropna()


def pd_seeded_ewm(values: pd.Series, length: int, alpha: float) -> pd.Series:
    """``ewm(adjust=False)`` seeded with the SMA of the first full window (pandas-ta's way)."""
    seed = values.rolling(length).mean()
    first = int(seed.notna().to_numpy().argmax())
    seeded = values.copy()
    seeded.iloc[:first] = np.nan
    seeded.iloc[first] = seed.iloc[first]
    return seeded.ewm(alpha=alpha, adjust=False).mean()


def pd_ema(values: pd.Series, length: int) -> pd.Series:
    return pd_seeded_ewm(values, length, 2.0 / (length + 1))


def pd_wilder(values: pd.Series, length: int) -> pd.Series:
    return pd_seeded_ewm(values, length, 1.0 / length)


def pd_true_range(bars: pd.DataFrame) -> pd.Series:
    previous = bars["close"].shift(1)
    ranges = pd.concat(
        [
            bars["high"] - bars["low"],
            (bars["high"] - previous).abs(),
            (bars["low"] - previous).abs(),
        ],
        axis=1,
    )
    return ranges.max(axis=1)


def pd_rsi(close: pd.Series, length: int) -> pd.Series:
    change = close.diff()
    gain = pd_wilder(change.clip(lower=0.0), length)
    loss = pd_wilder((-change).clip(lower=0.0), length)
    rsi = 100.0 - 100.0 / (1.0 + gain / loss)
    rsi = rsi.mask((loss == 0) & (gain > 0), 100.0)
    return rsi.mask((loss == 0) & (gain == 0), 50.0)


def pd_adx(bars: pd.DataFrame, length: int) -> tuple[pd.Series, pd.Series, pd.Series]:
    up = bars["high"].diff()
    down = -bars["low"].diff()
    plus_dm = up.where((up > down) & (up > 0), 0.0).where(up.notna())
    minus_dm = down.where((down > up) & (down > 0), 0.0).where(down.notna())
    ranges = pd_true_range(bars)
    ranges.iloc[0] = np.nan
    smoothed = pd_wilder(ranges, length)
    plus_di = 100.0 * pd_wilder(plus_dm, length) / smoothed
    minus_di = 100.0 * pd_wilder(minus_dm, length) / smoothed
    dx = 100.0 * (plus_di - minus_di).abs() / (plus_di + minus_di)
    return pd_wilder(dx, length), plus_di, minus_di


def pd_linreg_last(values: pd.Series, length: int) -> pd.Series:
    x = np.arange(length, dtype=np.float64)
    x_centred = x - x.mean()
    denominator = float(x_centred @ x_centred)

    def last_point(window: np.ndarray) -> float:
        slope = window @ x_centred / denominator
        return float(window.mean() + slope * (length - 1 - x.mean()))

    return values.rolling(length).apply(last_point, raw=True)


def pd_zscore(values: pd.Series, length: int) -> pd.Series:
    """z of each value against the ``length`` values before it (population std)."""
    baseline = values.shift(1).rolling(length)
    std = baseline.std(ddof=0)
    return (values - baseline.mean()) / std.where(std > 0)


def pd_hour_of_week_weight(minutes: pd.DataFrame) -> pd.Series:
    """median(same hour of week, 4 weeks back, ≥ 2 of them) / median(all 672 hours before the
    hour's UTC day)."""
    hourly = minutes["volume"].resample("1h").sum(min_count=1)
    hours = pd.DatetimeIndex(hourly.index)
    hour_of_week = hours.dayofweek * 24 + hours.hour
    same_hour = hourly.groupby(hour_of_week).transform(
        lambda series: series.shift(1).rolling(4, min_periods=2).median()
    )
    every_hour = hourly.shift(1).rolling(4 * 168, min_periods=1).median()
    # recomputed daily: each hour takes the value at its day's 00:00
    daily = every_hour[hours.hour == 0]
    every_hour = pd.Series(daily.reindex(hours.floor("D")).to_numpy(), index=hourly.index)
    return same_hour / every_hour.where(every_hour > 0)


def pandas_indicators(bars: pd.DataFrame, config: SignalConfig) -> pd.DataFrame:
    """EMA 20/50/200, ATR, RSI, ADX ±DI, Bollinger and TTM Keltner bands of signal bars."""
    params = config.detector
    band = params.band_length
    close = bars["close"]
    out = pd.DataFrame(index=bars.index)
    for length in (20, 50, 200):
        out[f"ema{length}"] = pd_ema(close, length)
    true_range = pd_true_range(bars)
    out["atr"] = pd_wilder(true_range, params.atr_length)
    out["rsi"] = pd_rsi(close, params.rsi_length)
    out["adx"], out["plus_di"], out["minus_di"] = pd_adx(bars, params.adx_length)
    rolling_close = close.rolling(band)
    out["bb_middle"] = rolling_close.mean()
    width = params.bollinger_std * rolling_close.std(ddof=0)
    out["bb_upper"] = out["bb_middle"] + width
    out["bb_lower"] = out["bb_middle"] - width
    keltner = params.keltner_scalar * true_range.rolling(band).mean()
    out["kc_upper"] = out["bb_middle"] + keltner
    out["kc_lower"] = out["bb_middle"] - keltner
    return out


def pandas_features(frames: dict[str, pd.DataFrame], config: SignalConfig) -> pd.DataFrame:
    """The feature columns of ``build_features`` (all but the daily volume profiles' levels)."""
    minutes = frames["minutes"]
    band = config.detector.band_length
    baseline = config.baseline_bars
    bars = pd_resample(minutes, f"{config.timeframe_ms // MINUTE_MS}min")
    out = pd.concat(
        [bars[["open", "high", "low", "close", "volume"]], pandas_indicators(bars, config)], axis=1
    )
    close, high, low, open_ = bars["close"], bars["high"], bars["low"], bars["open"]
    opened = pd.DatetimeIndex(bars.index)
    out["squeeze_on"] = (
        (out["bb_lower"] > out["kc_lower"]) & (out["bb_upper"] < out["kc_upper"])
    ).astype(float)
    middle = ((high.rolling(band).max() + low.rolling(band).min()) / 2.0 + out["bb_middle"]) / 2.0
    out["momentum"] = pd_linreg_last(close - middle, band)
    out["bar_return"] = close / close.shift(1) - 1.0
    out["return_z"] = pd_zscore(out["bar_return"], baseline)
    out["delta"] = bars["delta"]
    out["delta_z"] = pd_zscore(bars["delta"], baseline)
    out["taker_buy_ratio"] = bars["taker_buy_volume"] / bars["volume"].where(bars["volume"] > 0)
    out["relative_volume"] = bars["volume"] / bars["volume"].rolling(band).mean().shift(1)
    out["progress_atr"] = (close - open_) / out["atr"]
    span = (high - low).where(high > low)
    out["close_location"] = ((close - low) / span).fillna(0.5)
    out["upper_wick"] = ((high - pd.concat([open_, close], axis=1).max(axis=1)) / span).fillna(0.0)
    out["lower_wick"] = ((pd.concat([open_, close], axis=1).min(axis=1) - low) / span).fillna(0.0)
    out["cvd"] = bars["delta"].groupby(opened.floor("D")).cumsum()

    # Open interest and funding as of each bar's close instant (events stamped then are known).
    known = pd.DataFrame({"known_at": opened + pd.Timedelta(config.timeframe_ms, "ms")})
    interest = pd.merge_asof(
        known, frames["open_interest"], left_on="known_at", right_on="time", direction="backward"
    )
    out["open_interest"] = interest["open_interest"].to_numpy()
    out["oi_change"] = out["open_interest"] / out["open_interest"].shift(1) - 1.0
    out["oi_change_z"] = pd_zscore(out["oi_change"], baseline)
    funding = pd.merge_asof(
        known, frames["funding"], left_on="known_at", right_on="time", direction="backward"
    )
    out["funding_rate"] = funding["funding_rate"].to_numpy()
    out["funding_8h"] = (funding["funding_rate"] * 8.0 / funding["interval_hours"]).to_numpy()

    # The 1h trend: EMA50 slope over 3 hours in 1h ATRs, from hours closed by the bar's close.
    hourly = pd_resample(minutes, "1h")
    ema50 = pd_ema(hourly["close"], 50)
    slope = (ema50 - ema50.shift(3)) / (3.0 * pd_wilder(pd_true_range(hourly), 14))
    hour_close = pd.DatetimeIndex(hourly.index) + pd.Timedelta(hours=1)
    hours = pd.DataFrame({"hour_close": hour_close, "slope": slope})
    bar_close = pd.DataFrame({"bar_close": known["known_at"]})
    trend = pd.merge_asof(
        bar_close, hours, left_on="bar_close", right_on="hour_close", direction="backward"
    )
    out["htf_slope_atr"] = trend["slope"].to_numpy()

    weight = pd_hour_of_week_weight(minutes)
    out["hour_of_week_weight"] = weight.reindex(opened.floor("h")).to_numpy()
    out["hour_utc"] = opened.hour.astype(float)
    out["weekday"] = opened.dayofweek.astype(float)
    daily = minutes[["high", "low"]].resample("D").agg({"high": "max", "low": "min"}).shift(1)
    previous_day = daily.reindex(opened.floor("D"))
    out["session_high"] = previous_day["high"].to_numpy()
    out["session_low"] = previous_day["low"].to_numpy()
    return out


# Columns asserted equal between ingmon and pandas (levels: the feature frame's levels dict).
COMPARED_COLUMNS = (
    "close",
    "volume",
    "ema20",
    "ema200",
    "atr",
    "rsi",
    "adx",
    "plus_di",
    "bb_upper",
    "kc_lower",
    "momentum",
    "return_z",
    "delta_z",
    "relative_volume",
    "cvd",
    "open_interest",
    "oi_change_z",
    "funding_8h",
    "htf_slope_atr",
    "hour_of_week_weight",
)
COMPARED_LEVELS = ("session_high", "session_low")


def assert_same_features(frame: FeatureFrame, theirs: pd.DataFrame) -> list[str]:
    """Check the compared columns agree to ``RELATIVE_TOLERANCE`` after ``COMPARE_FROM_BAR``
    (NaN where the other is NaN); returns the names checked."""
    opened = _utc(frame.bars.open_time_ms)
    if not opened.equals(pd.DatetimeIndex(theirs.index)):
        raise AssertionError("ingmon and pandas emit different signal bars")
    checked = []
    for name in (*COMPARED_COLUMNS, *COMPARED_LEVELS):
        ours = (frame.levels if name in COMPARED_LEVELS else frame.columns)[name]
        ours = ours[COMPARE_FROM_BAR:]
        other = theirs[name].to_numpy(dtype=np.float64)[COMPARE_FROM_BAR:]
        if not np.array_equal(np.isnan(ours), np.isnan(other)):
            raise AssertionError(f"{name}: ingmon and pandas differ in where the value is NaN")
        finite = np.isfinite(ours)
        # Relative to the column's typical size, so values crossing zero (z-scores) compare.
        scale = float(np.median(np.abs(other[finite]))) if finite.any() else 0.0
        np.testing.assert_allclose(
            ours[finite],
            other[finite],
            rtol=RELATIVE_TOLERANCE,
            atol=RELATIVE_TOLERANCE * scale,
            err_msg=f"ingmon and pandas disagree on {name}",
        )
        checked.append(name)
    return checked


def ingmon_indicators(bars: ft.Bars, config: SignalConfig) -> dict[str, np.ndarray]:
    """The indicator subset of ``build_features`` through ``features.py``."""
    params = config.detector
    high, low, close = bars.high, bars.low, bars.close
    out = {f"ema{length}": ft.ema(close, length) for length in (20, 50, 200)}
    out["atr"] = ft.atr(high, low, close, params.atr_length)
    out["rsi"] = ft.rsi(close, params.rsi_length)
    out["adx"], out["plus_di"], out["minus_di"] = ft.adx(high, low, close, params.adx_length)
    out["bb_middle"], out["bb_upper"], out["bb_lower"] = ft.bollinger(
        close, params.band_length, params.bollinger_std
    )
    _, out["kc_upper"], out["kc_lower"] = ft.keltner(
        high, low, close, params.band_length, params.keltner_scalar
    )
    return out


def ta_indicators() -> Callable[[pd.DataFrame, SignalConfig], object] | None:
    """The same indicator subset through the ``ta`` library, None when it is not installed.
    (Its Keltner channel is the EMA/ATR one, not TTM's: a band of the same cost.)"""
    try:
        import ta  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None

    def run(bars: pd.DataFrame, config: SignalConfig) -> object:
        params = config.detector
        high, low, close = bars["high"], bars["low"], bars["close"]
        found = [ta.trend.EMAIndicator(close, length).ema_indicator() for length in (20, 50, 200)]
        found.append(
            ta.volatility.AverageTrueRange(high, low, close, params.atr_length).average_true_range()
        )
        found.append(ta.momentum.RSIIndicator(close, params.rsi_length).rsi())
        directional = ta.trend.ADXIndicator(high, low, close, params.adx_length)
        found += [directional.adx(), directional.adx_pos(), directional.adx_neg()]
        bands = ta.volatility.BollingerBands(close, params.band_length, params.bollinger_std)
        found += [bands.bollinger_mavg(), bands.bollinger_hband(), bands.bollinger_lband()]
        channel = ta.volatility.KeltnerChannel(high, low, close, params.band_length)
        found += [channel.keltner_channel_hband(), channel.keltner_channel_lband()]
        return found

    return run


# ---- the benchmarks -------------------------------------------------------------------------


def timed_cases(runs: dict[str, tuple[int, Callable[[], object]]], *, unit: str) -> list[Case]:
    """One ``Case`` per run (name → (items, run)), the runs timed in turn round by round."""
    seconds = interleaved_medians(
        {name: run for name, (_, run) in runs.items()}, repeat=WARM_REPEAT
    )
    return [Case(name, items, seconds[name], unit=unit) for name, (items, _) in runs.items()]


def bench_pipeline(inputs: MarketInputs, config: SignalConfig) -> None:
    """``evaluate`` warm with its stages (median of ``WARM_REPEAT``) and cold (fresh
    processes)."""
    evaluation = evaluate(inputs, config)
    frame, signals = evaluation.frame, evaluation.signals
    minutes = len(inputs.minutes)
    warm_name = "evaluate warm: features+setups+scores"
    warm = timed_cases(
        {
            warm_name: (minutes, lambda: evaluate(inputs, config)),
            "  of which build_features": (minutes, lambda: build_features(inputs, config)),
            "  of which detect (setups)": (minutes, lambda: detect(frame, config)),
            "  of which score_signal × signals": (
                minutes,
                lambda: [score_signal(frame, one, config, code_version="") for one in signals],
            ),
        },
        unit="1m bars",
    )
    with tempfile.TemporaryDirectory(prefix="ingmon-bench-") as scratch:
        saved = Path(scratch) / "inputs.npz"
        save_inputs(inputs, saved)
        script = Path(scratch) / "cold.py"
        script.write_text(COLD_SCRIPT)
        runs = [_cold_run(script, saved) for _ in range(COLD_REPEAT)]
    if any(run["signals"] != len(signals) for run in runs):
        raise AssertionError("the cold process found other signals than the warm run")

    def median_of(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    cold = [
        Case("evaluate cold (fresh process)", minutes, median_of("evaluate_s")),
        Case("  cold: imports", minutes, median_of("import_s")),
        Case("  cold: whole process, spawn to exit", minutes, median_of("process_s")),
    ]
    print_table(
        f"signals: evaluate {SYMBOL}, {CANDLE_DAYS} d of 1m bars ({minutes:,}) → "
        f"{len(frame):,} 15m bars, {len(signals):,} signals scored "
        f"(warm: median of {WARM_REPEAT}; cold: median of {COLD_REPEAT} processes)",
        [*warm, *cold],
        baseline=warm_name,
    )
    print(
        f"evaluate warm {warm[0].seconds:.3f} s, cold {cold[0].seconds:.3f} s "
        f"(aim: under 1 s for {CANDLE_DAYS} days)"
    )


def _cold_run(script: Path, saved: Path) -> dict[str, float]:
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, str(script), str(saved), SYMBOL, ",".join(BAR_FIELDS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    process_s = time.perf_counter() - started
    result: dict[str, float] = json.loads(finished.stdout.strip().splitlines()[-1])
    result["process_s"] = process_s
    return result


def bench_features(inputs: MarketInputs, config: SignalConfig) -> None:
    """``build_features`` against the pandas version (same numbers asserted), and the
    indicator subset against ``ta``."""
    frames = pandas_frames(inputs)
    frame = build_features(inputs, config)
    checked = assert_same_features(frame, pandas_features(frames, config))
    minutes = len(inputs.minutes)
    ours_name = "ingmon build_features (+ daily profiles)"
    pandas_name = "pandas, straightforward (no profiles)"
    bars = frame.bars
    pandas_bars = pd_resample(frames["minutes"], f"{config.timeframe_ms // MINUTE_MS}min")
    ours = ingmon_indicators(bars, config)
    theirs = pandas_indicators(pandas_bars, config)
    for name, values in ours.items():
        np.testing.assert_allclose(
            values[COMPARE_FROM_BAR:],
            theirs[name].to_numpy()[COMPARE_FROM_BAR:],
            rtol=RELATIVE_TOLERANCE,
            err_msg=f"indicator {name}",
        )
    cases = timed_cases(
        {
            ours_name: (minutes, lambda: build_features(inputs, config)),
            pandas_name: (minutes, lambda: pandas_features(frames, config)),
        },
        unit="1m bars",
    )
    indicator_runs: dict[str, tuple[int, Callable[[], object]]] = {
        "indicators only: ingmon features.py": (
            len(bars),
            lambda: ingmon_indicators(bars, config),
        ),
        "indicators only: pandas": (len(bars), lambda: pandas_indicators(pandas_bars, config)),
    }
    peer = ta_indicators()
    if peer is not None:
        indicator_runs["indicators only: ta"] = (len(bars), lambda: peer(pandas_bars, config))
    indicator_cases = timed_cases(indicator_runs, unit="15m bars")
    print_table(
        f"signals: features of {CANDLE_DAYS} d of 1m bars → {len(bars):,} 15m bars "
        f"(median of {WARM_REPEAT}; {len(checked)} columns equal to "
        f"{RELATIVE_TOLERANCE:g} rel. from bar {COMPARE_FROM_BAR})",
        [*cases, *indicator_cases],
        baseline=pandas_name,
    )
    if peer is None:
        print("ta: not installed, skipped (pip install ta to add it as a peer)")
    print(
        f"pandas ÷ ingmon build_features: {cases[1].seconds / cases[0].seconds:.1f}× "
        f"(aim: several times); indicators only: "
        f"{indicator_cases[1].seconds / indicator_cases[0].seconds:.1f}×"
    )


def pandas_trade_bins(trades: pd.DataFrame, bin_width: float) -> pd.DataFrame:
    """Buy and sell volume per (UTC day, price bin): the straightforward delta profile."""
    bins = trades.assign(
        session=trades["time"].dt.floor("D"),
        price_bin=np.floor(trades["price"] / bin_width),
        buy=trades["quantity"].where(~trades["is_buyer_maker"], 0.0),
        sell=trades["quantity"].where(trades["is_buyer_maker"], 0.0),
    )
    return bins.groupby(["session", "price_bin"])[["buy", "sell"]].sum()


def bench_trade_profiles(market: Market) -> None:
    """Trade profiles per UTC day over ``TRADE_DAYS`` and for one day, against pandas."""
    spec = market.spec(SYMBOL)
    tick = float(spec.tick_size)
    raw = market.agg_trades(SYMBOL, NOW_MS - TRADE_DAYS * DAY_MS, NOW_MS - 1)
    time_ms = raw.time_ms
    price = raw.price_ticks * 10.0**-spec.price_decimals  # "ticks" are price units here
    quantity = raw.qty_steps * 10.0**-spec.quantity_decimals
    maker = raw.buyer_is_maker
    bin_width = BIN_TICKS * tick
    trades = pd.DataFrame(
        {"time": _utc(time_ms), "price": price, "quantity": quantity, "is_buyer_maker": maker}
    )
    one_day = time_ms >= NOW_MS - DAY_MS
    day_trades = trades[one_day]

    def sessions(ticks_per_bin: int | None) -> Callable[[], dict[int, VolumeProfile]]:
        return lambda: trade_session_profiles(
            time_ms, price, quantity, maker, tick_size=tick, ticks_per_bin=ticks_per_bin
        )

    profiles = sessions(BIN_TICKS)()
    _assert_same_bins(profiles, pandas_trade_bins(trades, bin_width))
    count, day_count = len(raw), int(one_day.sum())
    pandas_name = f"pandas groupby day × {BIN_TICKS}-tick bin, {TRADE_DAYS} d"

    def one_day_profile(ticks_per_bin: int) -> Callable[[], VolumeProfile]:
        return lambda: trade_profile(
            price[one_day],
            quantity[one_day],
            maker[one_day],
            tick_size=tick,
            ticks_per_bin=ticks_per_bin,
        )

    cases = timed_cases(
        {
            f"ingmon trade_session_profiles {TRADE_DAYS} d, 120 rows": (count, sessions(None)),
            f"ingmon trade_session_profiles {TRADE_DAYS} d, {BIN_TICKS}-tick": (
                count,
                sessions(BIN_TICKS),
            ),
            pandas_name: (count, lambda: pandas_trade_bins(trades, bin_width)),
            f"ingmon trade_profile 1 d, {BIN_TICKS}-tick": (day_count, one_day_profile(BIN_TICKS)),
            "ingmon trade_profile 1 d, 1-tick": (day_count, one_day_profile(1)),
            f"pandas groupby day × {BIN_TICKS}-tick bin, 1 d": (
                day_count,
                lambda: pandas_trade_bins(day_trades, bin_width),
            ),
        },
        unit="trades",
    )
    print_table(
        f"signals: trade volume profiles, {SYMBOL} {count:,} simulated aggTrades "
        f"(median of {WARM_REPEAT}; ingmon adds POC, value area and nodes, pandas only bins; "
        f"same bins asserted)",
        cases,
        baseline=pandas_name,
    )
    print(
        f"pandas ÷ ingmon trade_session_profiles ({BIN_TICKS}-tick bins): "
        f"{cases[2].seconds / cases[1].seconds:.1f}×; one day: "
        f"{cases[5].seconds / cases[3].seconds:.1f}×"
    )


def _assert_same_bins(profiles: dict[int, VolumeProfile], theirs: pd.DataFrame) -> None:
    """Each session's non-empty ingmon bins equal the pandas group sums (same bin numbers)."""
    for start_ms, profile in profiles.items():
        session = theirs.xs(pd.Timestamp(start_ms, unit="ms", tz="UTC"), level="session")
        index = session.index.to_numpy().astype(np.int64) - profile.first_bin
        traded = (profile.buy_volume + profile.sell_volume) > 0
        if not np.array_equal(np.flatnonzero(traded), index):
            raise AssertionError(f"session {start_ms}: ingmon and pandas have other bins")
        for side in ("buy", "sell"):
            np.testing.assert_allclose(
                getattr(profile, f"{side}_volume")[index],
                session[side].to_numpy(),
                rtol=1e-9,
                err_msg=f"session {start_ms} {side} volume",
            )


def main() -> None:
    """Print the signal-engine tables (about a minute, most of it generating the market)."""
    started = time.perf_counter()
    market = Market.demo(symbols=[SYMBOL], days=CANDLE_DAYS, seed=SEED, now_ms=NOW_MS)
    inputs = simulated_inputs(market, start_ms=NOW_MS - CANDLE_DAYS * DAY_MS, end_ms=NOW_MS)
    config = SignalConfig()
    print(f"\nsignals: generated the simulated market in {time.perf_counter() - started:.1f} s")
    bench_pipeline(inputs, config)
    bench_features(inputs, config)
    bench_trade_profiles(market)
    print(f"signals: done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

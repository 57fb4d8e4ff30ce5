"""The setups: squeeze fire, short/long squeeze, exhaustion, divergence, sweep-and-reclaim and
absorption, each detected on closed signal bars of a :class:`FeatureFrame`.

Every detector is causal: a signal on bar i reads bars ≤ i only (pivots are used from the bar
that confirms them, R bars after the pivot). Definitions and defaults: docs/signals.md.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from ingmon.signals import features as ft
from ingmon.signals.frame import FeatureFrame
from ingmon.signals.rules import DetectorParams, SignalConfig

__all__ = ["SETUPS", "SETUP_FAMILY", "Signal", "detect", "signal_id"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Direction = Literal["long", "short"]
Family = Literal["continuation", "squeeze", "reversal", "absorption"]

# How each setup trades: the rubric's open-interest point and the confidence cut-offs differ.
SETUP_FAMILY: Final[dict[str, Family]] = {
    "squeeze_fire": "continuation",
    "short_squeeze": "squeeze",
    "long_squeeze": "squeeze",
    "exhaustion": "reversal",
    "divergence": "reversal",
    "sweep_reclaim": "reversal",
    "absorption": "absorption",
}
SETUPS: Final = tuple(SETUP_FAMILY)


def signal_id(symbol: str, timeframe: str, setup: str, direction: str, bar_open_ms: int) -> str:
    """Stable id of a signal: the same bar, setup and direction always hash the same."""
    text = f"{symbol}|{timeframe}|{setup}|{direction}|{bar_open_ms}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Signal:
    """One setup on one closed signal bar, with the levels it used and why it fired."""

    symbol: str
    timeframe: str
    setup: str
    direction: Direction
    bar_index: int
    bar_open_ms: int
    bar_close_ms: int
    close: float
    stop_price: float | None = None
    target_price: float | None = None
    level_kind: str | None = None
    level_price: float | None = None
    levels: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> Family:
        return SETUP_FAMILY[self.setup]

    @property
    def signal_id(self) -> str:
        return signal_id(self.symbol, self.timeframe, self.setup, self.direction, self.bar_open_ms)


Detector = Callable[[FeatureFrame, DetectorParams, str], list[Signal]]


def detect(frame: FeatureFrame, config: SignalConfig, *, first_index: int = 0) -> list[Signal]:
    """Every setup on the bars of ``frame`` from ``first_index`` on, ordered by bar and setup."""
    found: list[Signal] = []
    for detector in _DETECTORS:
        found.extend(
            signal
            for signal in detector(frame, config.detector, config.timeframe)
            if signal.bar_index >= first_index
        )
    found.sort(key=lambda signal: (signal.bar_index, SETUPS.index(signal.setup), signal.direction))
    return found


# ---- helpers ------------------------------------------------------------------------------------


def _flag(values: FloatArray) -> BoolArray:
    """A 0/1 float column as booleans (NaN is False)."""
    return np.nan_to_num(values, nan=0.0) > 0.5


def _round(value: float) -> float:
    return float(np.round(value, 12))


def _make(
    frame: FeatureFrame,
    timeframe: str,
    setup: str,
    direction: Direction,
    index: int,
    **details: Any,
) -> Signal:
    bars = frame.bars
    reasons = {name: _jsonable(value) for name, value in details.pop("reasons", {}).items()}
    close = float(bars.close[index])
    # A stop must protect (below a long's close, above a short's) and a target lie ahead;
    # a level on the wrong side (EMA20 already passed, say) is no level for this signal.
    sign = 1.0 if direction == "long" else -1.0
    stop, target = details.pop("stop_price", None), details.pop("target_price", None)
    if stop is not None and not (np.isfinite(stop) and sign * (close - stop) > 0):
        stop = None
    if target is not None and not (np.isfinite(target) and sign * (target - close) > 0):
        target = None
    return Signal(
        symbol=frame.symbol,
        timeframe=timeframe,
        setup=setup,
        direction=direction,
        bar_index=index,
        bar_open_ms=int(bars.open_time_ms[index]),
        bar_close_ms=int(bars.close_time_ms[index]),
        close=close,
        stop_price=stop,
        target_price=target,
        reasons=reasons,
        **details,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if not np.isfinite(value) else _round(value)
    return value


# ---- squeeze fire (volatility compression released) ---------------------------------------------


def squeeze_fire(frame: FeatureFrame, params: DetectorParams, timeframe: str) -> list[Signal]:
    """Bollinger bands back outside the Keltner channel after ≥ N bars inside, momentum's sign
    giving the direction (and, by default, momentum accelerating that way)."""
    on = _flag(frame["squeeze_on"])
    run = ft.run_lengths(on)
    momentum = frame["momentum"]
    signals: list[Signal] = []
    for index in np.flatnonzero(~on[1:] & (run[:-1] >= params.squeeze_min_bars)) + 1:
        value, previous = momentum[index], momentum[index - 1]
        if not (np.isfinite(value) and np.isfinite(previous)) or value == 0:
            continue
        sign = 1.0 if value > 0 else -1.0
        accelerating = (value - previous) * sign > 0
        if params.squeeze_require_acceleration and not accelerating:
            continue
        squeeze_bars = int(run[index - 1])
        first = index - squeeze_bars
        low = float(frame.bars.low[first:index].min())
        high = float(frame.bars.high[first:index].max())
        direction: Direction = "long" if sign > 0 else "short"
        signals.append(
            _make(
                frame,
                timeframe,
                "squeeze_fire",
                direction,
                int(index),
                stop_price=low if direction == "long" else high,
                level_kind="squeeze_range_high" if direction == "long" else "squeeze_range_low",
                level_price=high if direction == "long" else low,
                levels={"squeeze_range_high": high, "squeeze_range_low": low},
                reasons={
                    "squeeze_bars": squeeze_bars,
                    "momentum": value,
                    "momentum_previous": previous,
                    "bb_upper": frame["bb_upper"][index],
                    "kc_upper": frame["kc_upper"][index],
                },
            )
        )
    return signals


# ---- short squeeze / long squeeze (positioning) -------------------------------------------------


def positioning_squeeze(
    frame: FeatureFrame, params: DetectorParams, timeframe: str
) -> list[Signal]:
    """Short squeeze: a return z ≥ 2 with open interest falling over the bar (≥ 0.5 %, or an OI
    change z ≤ −1.5: shorts covering), funding not above the 0.01 %/8h baseline (longs are not
    the crowded side) and net aggressive buying (delta > 0, taker-buy ratio ≥ 0.55). The long
    squeeze mirrors every inequality. Funding strictly below the baseline is the rubric's
    ``funding_not_crowded`` point, not a condition: Binance funding sits exactly at the
    baseline most of the time."""
    return_z = frame["return_z"]
    oi_change = frame["oi_change"]
    funding = frame["funding_8h"]
    delta = frame["delta"]
    buy_ratio = frame["taker_buy_ratio"]
    with np.errstate(invalid="ignore"):
        oi_falls = (oi_change <= params.squeeze_oi_drop) | (
            frame["oi_change_z"] <= -params.squeeze_oi_drop_z
        )
        baseline = params.squeeze_funding_baseline
        short_squeeze = (
            (return_z >= params.squeeze_return_z)
            & oi_falls
            & (funding <= baseline)
            & (delta > 0)
            & (buy_ratio >= params.squeeze_taker_buy_ratio)
        )
        long_squeeze = (
            (return_z <= -params.squeeze_return_z)
            & oi_falls
            & (funding >= baseline)
            & (delta < 0)
            & (buy_ratio <= 1.0 - params.squeeze_taker_buy_ratio)
        )
    signals: list[Signal] = []
    for setup, mask, direction in (
        ("short_squeeze", short_squeeze, "long"),
        ("long_squeeze", long_squeeze, "short"),
    ):
        for index in np.flatnonzero(mask):
            bars = frame.bars
            signals.append(
                _make(
                    frame,
                    timeframe,
                    setup,
                    direction,  # type: ignore[arg-type]
                    int(index),
                    stop_price=float(bars.low[index] if direction == "long" else bars.high[index]),
                    reasons={
                        "return_z": return_z[index],
                        "oi_change": oi_change[index],
                        "funding_8h": funding[index],
                        "funding_negative_streak": frame["funding_negative_streak"][index],
                        "funding_positive_streak": frame["funding_positive_streak"][index],
                        "delta": delta[index],
                        "taker_buy_ratio": buy_ratio[index],
                    },
                )
            )
    return signals


# ---- reversals ----------------------------------------------------------------------------------


def exhaustion(frame: FeatureFrame, params: DetectorParams, timeframe: str) -> list[Signal]:
    """A climax bar (a new 20-bar extreme meeting ≥ 2 of: extension outside the Bollinger band
    or ≥ 2.5 ATR from EMA20, relative volume ≥ 3, a rejection wick ≥ half the range, RSI ≥ 70 /
    ≤ 30) confirmed by the next bar closing beyond the climax bar's midpoint."""
    bars = frame.bars
    close, high, low = bars.close, bars.high, bars.low
    atr, ema20 = frame["atr"], frame["ema20"]
    band = params.band_length
    with np.errstate(invalid="ignore"):
        prior_high = ft.lag(ft.rolling_max(high, band))
        prior_low = ft.lag(ft.rolling_min(low, band))
        volume_climax = frame["relative_volume"] >= params.exhaustion_relative_volume
        top = {
            "extension": (close > frame["bb_upper"])
            | (close - ema20 >= params.exhaustion_atr_extension * atr),
            "climactic_volume": volume_climax,
            "rejection_wick": frame["upper_wick"] >= params.exhaustion_wick_share,
            "rsi_extreme": frame["rsi"] >= params.exhaustion_rsi_high,
        }
        bottom = {
            "extension": (close < frame["bb_lower"])
            | (ema20 - close >= params.exhaustion_atr_extension * atr),
            "climactic_volume": volume_climax,
            "rejection_wick": frame["lower_wick"] >= params.exhaustion_wick_share,
            "rsi_extreme": frame["rsi"] <= params.exhaustion_rsi_low,
        }
        midpoint = (high + low) / 2.0
        climax_top = (high > prior_high) & (
            sum(c.astype(int) for c in top.values()) >= params.exhaustion_min_conditions
        )
        climax_bottom = (low < prior_low) & (
            sum(c.astype(int) for c in bottom.values()) >= params.exhaustion_min_conditions
        )
        previous_midpoint = ft.lag(midpoint)
        confirm_top = ft.lag(climax_top) > 0.5
        confirm_top &= close < previous_midpoint
        confirm_bottom = ft.lag(climax_bottom) > 0.5
        confirm_bottom &= close > previous_midpoint
    signals: list[Signal] = []
    for mask, conditions, direction in (
        (confirm_top, top, "short"),
        (confirm_bottom, bottom, "long"),
    ):
        for index in np.flatnonzero(mask):
            climax = int(index) - 1
            extreme = float(high[climax] if direction == "short" else low[climax])
            signals.append(
                _make(
                    frame,
                    timeframe,
                    "exhaustion",
                    direction,  # type: ignore[arg-type]
                    int(index),
                    stop_price=extreme,
                    target_price=float(ema20[index]) if np.isfinite(ema20[index]) else None,
                    level_kind="climax_high" if direction == "short" else "climax_low",
                    level_price=extreme,
                    levels={"climax_midpoint": float(midpoint[climax])},
                    reasons={
                        "conditions": sorted(n for n, c in conditions.items() if c[climax]),
                        "relative_volume": frame["relative_volume"][climax],
                        "rsi": frame["rsi"][climax],
                        "close_vs_ema20_atr": (close[climax] - ema20[climax]) / atr[climax],
                    },
                )
            )
    return signals


def pivots(values: FloatArray, left: int, right: int, *, high: bool) -> npt.NDArray[np.int64]:
    """Indices j whose value is the extreme of [j − left, j + right] (strictly beyond the
    values to its right). Pivot j is known only at bar j + right."""
    sign = 1.0 if high else -1.0
    signed = sign * values
    size = signed.size
    if size < left + right + 1:
        return np.zeros(0, dtype=np.int64)
    window = ft.rolling_max(signed, left + right + 1)
    right_max = ft.rolling_max(signed, right)
    candidates = np.arange(left, size - right)
    is_pivot = (signed[candidates] >= window[candidates + right]) & (
        signed[candidates] > right_max[candidates + right]
    )
    return candidates[is_pivot].astype(np.int64)


def divergence(frame: FeatureFrame, params: DetectorParams, timeframe: str) -> list[Signal]:
    """Regular divergence on confirmed pivots: price makes a higher pivot high while RSI (or
    the session CVD, within one session) makes a lower one → short; the mirror at pivot lows
    → long. Signalled on the bar that confirms the newer pivot."""
    bars = frame.bars
    signals: list[Signal] = []
    day = bars.open_time_ms // 86_400_000
    for high, direction in ((True, "short"), (False, "long")):
        prices = bars.high if high else bars.low
        found = pivots(prices, params.pivot_left, params.pivot_right, high=high)
        sign = 1.0 if high else -1.0
        for previous, newer in itertools.pairwise(found):
            distance = int(newer - previous)
            if not params.divergence_min_bars <= distance <= params.divergence_max_bars:
                continue
            if sign * (prices[newer] - prices[previous]) <= 0:
                continue
            oscillators = []
            rsi = frame["rsi"]
            if sign * (rsi[newer] - rsi[previous]) < 0:  # False when either is NaN
                oscillators.append("rsi")
            cvd = frame["cvd"]
            if day[newer] == day[previous] and sign * (cvd[newer] - cvd[previous]) < 0:
                oscillators.append("cvd")
            if not oscillators:
                continue
            index = int(newer) + params.pivot_right
            signals.append(
                _make(
                    frame,
                    timeframe,
                    "divergence",
                    direction,  # type: ignore[arg-type]
                    index,
                    stop_price=float(prices[newer]),
                    level_kind="pivot_high" if high else "pivot_low",
                    level_price=float(prices[newer]),
                    levels={"previous_pivot": float(prices[previous])},
                    reasons={
                        "oscillators": oscillators,
                        "pivot_bars_apart": distance,
                        "rsi_previous": rsi[previous],
                        "rsi_newer": rsi[newer],
                        "cvd_previous": cvd[previous],
                        "cvd_newer": cvd[newer],
                    },
                )
            )
    return signals


def sweep_reclaim(frame: FeatureFrame, params: DetectorParams, timeframe: str) -> list[Signal]:
    """A bar trades through a level by ε = max(1 tick, 0.05·ATR) and closes back on the side
    it came from (the previous close was there too). Levels, in order of preference: the
    previous session's high/low, the last confirmed swing pivot, the value-area edge."""
    bars = frame.bars
    size = len(bars)
    buffer = np.maximum(frame.tick_size, params.sweep_atr_buffer * frame["atr"])
    previous_close = ft.lag(bars.close)
    signals: list[Signal] = []
    for direction, names, extremes in (
        ("short", ("session_high", "swing_high", "vah"), bars.high),
        ("long", ("session_low", "swing_low", "val"), bars.low),
    ):
        sign = 1.0 if direction == "short" else -1.0
        swings = _confirmed_swings(frame, params, high=direction == "short")
        taken = np.zeros(size, dtype=bool)
        for name in names:
            level = swings if name.startswith("swing") else frame.levels[name]
            with np.errstate(invalid="ignore"):
                hit = (
                    (sign * (extremes - level) >= buffer)
                    & (sign * (bars.close - level) < 0)
                    & (sign * (previous_close - level) < 0)
                    & ~taken
                )
            taken |= hit
            for index in np.flatnonzero(hit):
                levels = frame.levels_at(int(index))
                if np.isfinite(swings[index]):
                    levels[f"swing_{'high' if direction == 'short' else 'low'}"] = float(
                        swings[index]
                    )
                extreme = float(extremes[index])
                signals.append(
                    _make(
                        frame,
                        timeframe,
                        "sweep_reclaim",
                        direction,  # type: ignore[arg-type]
                        int(index),
                        stop_price=extreme + sign * float(buffer[index]),
                        target_price=levels.get("poc"),
                        level_kind=name,
                        level_price=float(level[index]),
                        levels=levels,
                        reasons={
                            "swept_by": sign * (extreme - float(level[index])),
                            "buffer": buffer[index],
                            "delta_z": frame["delta_z"][index],
                        },
                    )
                )
    return signals


def _confirmed_swings(frame: FeatureFrame, params: DetectorParams, *, high: bool) -> FloatArray:
    """For each bar, the price of the last swing pivot confirmed before it (NaN if none)."""
    prices = frame.bars.high if high else frame.bars.low
    found = pivots(prices, params.pivot_left, params.pivot_right, high=high)
    known_from = found + params.pivot_right + 1  # confirmed at pivot + R, usable on the next bar
    position = np.searchsorted(known_from, np.arange(prices.size), side="right") - 1
    return (
        np.where(position >= 0, prices[found[np.maximum(position, 0)]], np.nan)
        if found.size
        else np.full(prices.size, np.nan)
    )


# ---- absorption ---------------------------------------------------------------------------------


def absorption(frame: FeatureFrame, params: DetectorParams, timeframe: str) -> list[Signal]:
    """Heavy aggressive flow (|delta z| ≥ 2, relative volume ≥ 1.5) that moves price ≤ 0.15 ATR
    its way, at a level of the previous session (within max(2 profile bins, 0.25 ATR) of its
    POC, value-area edges, high-volume nodes, high or low). Buying absorbed → short; selling
    absorbed → long."""
    bars = frame.bars
    delta_z, progress = frame["delta_z"], frame["progress_atr"]
    names = list(frame.levels)
    table = np.vstack([frame.levels[name] for name in names])
    distance = np.abs(table - bars.close)
    nearest = np.argmin(np.where(np.isfinite(distance), distance, np.inf), axis=0)
    columns = np.arange(len(bars))
    nearest_distance = distance[nearest, columns]
    reach = np.fmax(
        params.absorption_level_bins * frame["profile_bin_width"],
        params.absorption_level_atr * frame["atr"],
    )
    limit = params.absorption_max_progress_atr
    with np.errstate(invalid="ignore"):
        at_level = nearest_distance <= reach
        heavy = frame["relative_volume"] >= params.absorption_relative_volume
        buying_absorbed = (delta_z >= params.absorption_delta_z) & (progress <= limit)
        selling_absorbed = (delta_z <= -params.absorption_delta_z) & (progress >= -limit)
    signals: list[Signal] = []
    for mask, direction in ((buying_absorbed, "short"), (selling_absorbed, "long")):
        for index in np.flatnonzero(mask & heavy & at_level):
            extreme = float(bars.high[index] if direction == "short" else bars.low[index])
            level_name = names[int(nearest[index])]
            signals.append(
                _make(
                    frame,
                    timeframe,
                    "absorption",
                    direction,  # type: ignore[arg-type]
                    int(index),
                    stop_price=extreme,
                    level_kind=level_name,
                    level_price=float(table[nearest[index], index]),
                    levels=frame.levels_at(int(index)),
                    reasons={
                        "delta_z": delta_z[index],
                        "relative_volume": frame["relative_volume"][index],
                        "progress_atr": progress[index],
                        "distance_to_level": nearest_distance[index],
                        "level_reach": reach[index],
                    },
                )
            )
    return signals


_DETECTORS: Final[tuple[Detector, ...]] = (
    squeeze_fire,
    positioning_squeeze,
    exhaustion,
    divergence,
    sweep_reclaim,
    absorption,
)

"""Levels a trader marks (prior session's volume profile, recent swings) and absorptions at them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ingmon.exchange._facts_data import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    MINUTES_PER_DAY,
    SWING_LOOKBACK_MS,
    Series,
    mask_of,
)
from ingmon.exchange._facts_rows import DERIVED, Band, EpisodeMeasurement, Fact, rate
from ingmon.exchange._facts_stats import FloatArray, roc_auc

NEAR_LEVEL_HOUR_SIGMAS = 0.25  # "at a level": within a quarter of an hourly σ in price
PROFILE_ROWS = 50  # reference §3.2: 24–50 rows for a session's levels
VALUE_AREA_SHARE = 0.70  # CBOT value area
SWING_BARS = 5  # pivot of 5 bars left and right on 15-minute candles
SWINGS_PER_SIDE = 2  # the two most recent confirmed swing highs and lows
HVN_COUNT = 2
RANDOM_MINUTE_STRIDE = 7


@dataclass(frozen=True)
class Profile:
    """A session's volume profile (prices): point of control, value area, high-volume nodes, and
    the session's high and low."""

    poc: float
    vah: float
    val: float
    hvns: tuple[float, ...]
    high: float
    low: float

    def levels(self) -> list[float]:
        """Every level a trader would mark from this session."""
        return [self.poc, self.vah, self.val, *self.hvns, self.high, self.low]


def volume_profile(
    low: FloatArray,
    high: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    *,
    rows: int = PROFILE_ROWS,
) -> Profile | None:
    """A session's volume profile from one-minute candles (reference §3.1–3.3).

    Each candle's volume is spread evenly over the rows its [low, high] overlaps (all of it at
    the close when low == high); ``rows`` equal rows span the session's range. POC = the fullest
    row (lowest on ties); the value area grows from the POC one row at a time toward the fuller
    neighbour (CBOT; ties go up) until it holds 70 %, VAH/VAL being its outer edges; HVNs are the
    fullest local maxima (±2 rows) more than one row from the POC.
    """
    keep = np.isfinite(low) & np.isfinite(high) & np.isfinite(close) & (volume > 0)
    lows, highs, closes, weights = low[keep], high[keep], close[keep], volume[keep]
    if weights.size == 0:
        return None
    bottom, top = float(lows.min()), float(highs.max())
    if top <= bottom:
        return Profile(poc=bottom, vah=bottom, val=bottom, hvns=(), high=top, low=bottom)
    width = (top - bottom) / rows
    edges = bottom + np.arange(rows + 1) * width
    span = highs - lows
    overlap = np.clip(
        np.minimum(highs[:, None], edges[None, 1:]) - np.maximum(lows[:, None], edges[None, :-1]),
        0.0,
        None,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(span[:, None] > 0, overlap / span[:, None], 0.0)
    point_row = np.minimum(((closes - bottom) / width).astype(np.int64), rows - 1)
    share[np.flatnonzero(span <= 0), point_row[span <= 0]] = 1.0
    per_row = (share * weights[:, None]).sum(axis=0)
    poc = int(np.argmax(per_row))
    lower, upper = poc, poc
    target = VALUE_AREA_SHARE * float(per_row.sum())
    inside = float(per_row[poc])
    while inside < target and (lower > 0 or upper < rows - 1):
        below = per_row[lower - 1] if lower > 0 else -1.0
        above = per_row[upper + 1] if upper < rows - 1 else -1.0
        if above >= below:
            upper += 1
            inside += float(above)
        else:
            lower -= 1
            inside += float(below)
    padded = np.pad(per_row, 2, constant_values=-1.0)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 5)
    peaks = np.flatnonzero((per_row == windows.max(axis=1)) & (per_row > 0))
    peaks = peaks[np.abs(peaks - poc) > 1]
    heaviest = peaks[np.argsort(-per_row[peaks], kind="stable")][:HVN_COUNT]
    return Profile(
        poc=float(edges[poc] + width / 2),
        vah=float(edges[upper + 1]),
        val=float(edges[lower]),
        hvns=tuple(float(edges[row] + width / 2) for row in heaviest),
        high=top,
        low=bottom,
    )


def _trailing_sigma(data: Series, minute: int, *, window: int = MINUTES_PER_DAY) -> float:
    """Std of one-minute log returns over the ``window`` minutes before ``minute``."""
    returns = data.log_return[max(0, minute - window) : max(0, minute)]
    returns = returns[np.isfinite(returns)]
    return float(returns.std()) if returns.size > 30 else math.nan


class LevelFinder:
    """Levels a trader would mark at a given time: the prior UTC session's profile (POC, VAH, VAL,
    HVNs, high, low) and the most recent confirmed 15-minute swing highs and lows."""

    def __init__(self, data: Series) -> None:
        self.data = data
        self.profiles: dict[int, Profile | None] = {}
        for day in range(data.minutes // MINUTES_PER_DAY):
            day_minutes = slice(day * MINUTES_PER_DAY, (day + 1) * MINUTES_PER_DAY)
            self.profiles[day] = volume_profile(
                data.low[day_minutes],
                data.high[day_minutes],
                data.close[day_minutes],
                data.volume[day_minutes],
            )
        highs = data.swing_15m_high
        lows = data.swing_15m_low
        span = 2 * SWING_BARS + 1
        bar_ms = 15 * MINUTE_MS
        if highs.size >= span:
            window_high = np.lib.stride_tricks.sliding_window_view(highs, span).max(axis=1)
            window_low = np.lib.stride_tricks.sliding_window_view(lows, span).min(axis=1)
            centre = np.arange(SWING_BARS, highs.size - SWING_BARS)
            is_high = highs[centre] >= window_high
            is_low = lows[centre] <= window_low
            confirmed = data.swing_15m_open_ms[centre + SWING_BARS] + bar_ms
            self.high_confirmed_ms = confirmed[is_high]
            self.high_price = highs[centre][is_high]
            self.high_time_ms = data.swing_15m_open_ms[centre][is_high]
            self.low_confirmed_ms = confirmed[is_low]
            self.low_price = lows[centre][is_low]
            self.low_time_ms = data.swing_15m_open_ms[centre][is_low]
        else:
            empty = np.zeros(0, dtype=np.int64)
            self.high_confirmed_ms = self.low_confirmed_ms = empty
            self.high_time_ms = self.low_time_ms = empty
            self.high_price = self.low_price = np.zeros(0)

    def levels_at(self, time_ms: int) -> list[float]:
        """Levels known at ``time_ms`` (empty on the first day: no prior session)."""
        day = (time_ms - self.data.start_ms) // DAY_MS
        profile = self.profiles.get(day - 1)
        found = profile.levels() if profile is not None else []
        if profile is None:
            return []
        for confirmed, times, prices in (
            (self.high_confirmed_ms, self.high_time_ms, self.high_price),
            (self.low_confirmed_ms, self.low_time_ms, self.low_price),
        ):
            last = int(np.searchsorted(confirmed, time_ms, side="right"))
            for row in range(last - 1, max(-1, last - 1 - SWINGS_PER_SIDE), -1):
                if times[row] >= time_ms - SWING_LOOKBACK_MS:
                    found.append(float(prices[row]))
        return found

    def distance(self, time_ms: int, price: float) -> float:
        """|price − nearest level| in hourly σ of price (trailing day's one-minute returns)."""
        levels = self.levels_at(time_ms)
        sigma = _trailing_sigma(self.data, self.data.minute_index(time_ms))
        if not levels or not math.isfinite(sigma) or sigma == 0 or not math.isfinite(price):
            return math.nan
        nearest = min(abs(price - level) for level in levels)
        return nearest / (price * sigma * math.sqrt(60.0))

    def absorption_distance(self, start_ms: int, end_ms: int) -> float | None:
        """Distance of the absorption's VWAP (its one-minute candles) to the nearest level."""
        span = slice(self.data.minute_index(start_ms), self.data.minute_index(end_ms))
        volume = float(self.data.volume[span].sum())
        if volume <= 0:
            return None
        vwap = float(self.data.quote_volume[span].sum()) / volume
        value = self.distance(start_ms, vwap)
        return value if math.isfinite(value) else None


def level_facts(
    series: dict[str, Series], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    ratio: dict[str, float | None] = {}
    near: dict[str, float | None] = {}
    near_error: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    detail: dict[str, Any] = {}
    for symbol, data in series.items():
        finder = LevelFinder(data)
        absorbed = np.asarray(
            [
                item.level_distance_hour_sigmas
                for item in measured[symbol]
                if item.kind == "absorption"
                and item.outcome != "decoy"
                and item.level_distance_hour_sigmas is not None
            ],
            dtype=np.float64,
        )
        busy = mask_of(
            data,
            [(item.start_ms - HOUR_MS, item.end_ms + HOUR_MS) for item in data.planted],
        )
        random_distance = np.asarray(
            [
                finder.distance(data.start_ms + minute * MINUTE_MS, float(data.close[minute]))
                for minute in range(MINUTES_PER_DAY, data.minutes, RANDOM_MINUTE_STRIDE)
                if data.present[minute] and not busy[minute]
            ],
            dtype=np.float64,
        )
        random_distance = random_distance[np.isfinite(random_distance)]
        samples[symbol] = int(absorbed.size)
        if absorbed.size == 0 or random_distance.size == 0:
            continue
        ratio[symbol] = float(np.median(absorbed) / np.median(random_distance))
        near[symbol], near_error[symbol] = rate(
            int(np.count_nonzero(absorbed <= NEAR_LEVEL_HOUR_SIGMAS)), int(absorbed.size)
        )
        recorded = [
            abs(item.level_price - _vwap(data, item.start_ms, item.end_ms))
            / (item.level_price * _trailing_sigma(data, data.minute_index(item.start_ms)) * 60**0.5)
            for item in data.planted
            if item.kind == "absorption" and item.level_price is not None
        ]
        detail[symbol] = {
            "random_near_share": float(np.mean(random_distance <= NEAR_LEVEL_HOUR_SIGMAS)),
            "median_absorption_distance": float(np.median(absorbed)),
            "median_random_distance": float(np.median(random_distance)),
            "random_minutes": int(random_distance.size),
            "auc_closer_than_random": roc_auc(
                -np.concatenate([absorbed, random_distance]),
                np.concatenate(
                    [np.ones(absorbed.size, bool), np.zeros(random_distance.size, bool)]
                ),
            ),
            "recorded_level_within_near_share": float(
                np.mean(np.asarray(recorded) <= NEAR_LEVEL_HOUR_SIGMAS)
            )
            if recorded
            else None,
        }
    return [
        Fact(
            key="absorption_level_distance_ratio",
            title="absorption: median distance to a level ÷ random minutes'",
            group="absorption location",
            values=ratio,
            samples=samples,
            band=Band(0.0, 0.5, DERIVED + ": absorption happens at levels"),
            detail=detail,
        ),
        Fact(
            key="absorption_near_level_share",
            title="absorption: share within ¼ hourly σ of a level",
            group="absorption location",
            values=near,
            errors=near_error,
            samples=samples,
            band=Band(0.5, 1.0, "issue 8: most absorptions happen near a level"),
        ),
    ]


def _vwap(data: Series, start_ms: int, end_ms: int) -> float:
    span = slice(data.minute_index(start_ms), data.minute_index(end_ms))
    volume = float(data.volume[span].sum())
    return float(data.quote_volume[span].sum()) / volume if volume > 0 else math.nan

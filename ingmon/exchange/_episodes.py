"""Where the simulator plants outages and market-structure episodes: pure functions of the day."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ingmon.exchange._model import (
    DAY_MS,
    MINUTE_MS,
    MINUTES_PER_DAY,
    STREAM_EPISODES,
    STREAM_MAINTENANCE,
    SymbolModel,
    rng_for,
)

# One outage somewhere in every block of 15 UTC days: gaps of 0–30 days, ~15 on average.
MAINTENANCE_BLOCK_DAYS = 15
MAINTENANCE_MINUTES = (10, 60)

COMPRESSION_PROBABILITY = 0.6  # per symbol and day
SQUEEZE_PROBABILITY = 0.15
ABSORPTION_COUNTS = (0, 1, 2)
ABSORPTION_COUNT_WEIGHTS = (0.3, 0.45, 0.25)
GUARD_MINUTES = 20  # quiet gap kept between planted episodes and outages


@dataclass(frozen=True)
class Segment:
    """A stretch of minutes whose dynamics an episode overrides (minutes of the UTC day)."""

    start_minute: int
    end_minute: int
    vol_mult: float = 1.0
    count_mult: float = 1.0
    qty_mult: float = 1.0
    drift_log: float = 0.0  # planted log-price change over the segment
    buy_prob: float | None = None  # taker-buy probability of its trades
    oi_log: float = 0.0  # planted log open-interest change over the segment
    oi_flow_gain: float = 1.0  # how much ordinary flow still moves open interest
    premium_target: float | None = None
    pin_phi: float | None = None  # mean-reverting path around the planted drift (bounded noise)


@dataclass(frozen=True)
class PlannedEpisode:
    """An episode of one symbol on one UTC day: the reported window plus its segments."""

    kind: str
    start_minute: int
    end_minute: int
    segments: tuple[Segment, ...]
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def span(self) -> tuple[int, int]:
        """Minutes touched by the episode, including preparation and aftermath."""
        return (
            min(segment.start_minute for segment in self.segments),
            max(segment.end_minute for segment in self.segments),
        )


@lru_cache(maxsize=4096)
def maintenance_of_block(seed: int, block: int) -> tuple[int, int, int]:
    rng = rng_for(seed, STREAM_MAINTENANCE, block)
    day_offset = int(rng.integers(0, MAINTENANCE_BLOCK_DAYS))
    start_minute = int(rng.integers(60, MINUTES_PER_DAY - 120))
    duration = int(rng.integers(MAINTENANCE_MINUTES[0], MAINTENANCE_MINUTES[1] + 1))
    return block * MAINTENANCE_BLOCK_DAYS + day_offset, start_minute, start_minute + duration


def maintenance_minutes(seed: int, day: int) -> tuple[int, int] | None:
    """The outage [start, end) in minutes of UTC day ``day``, if that day has one (all symbols)."""
    outage_day, start_minute, end_minute = maintenance_of_block(seed, day // MAINTENANCE_BLOCK_DAYS)
    return (start_minute, end_minute) if outage_day == day else None


def _place(
    rng: Any,
    length: int,
    occupied: list[tuple[int, int]],
    *,
    lowest: int,
    highest_end: int,
    tries: int = 25,
) -> int | None:
    """A start minute for ``length`` minutes clear of every occupied span (with guard), or None."""
    if highest_end - length < lowest:
        return None
    for _ in range(tries):
        start = int(rng.integers(lowest, highest_end - length + 1))
        end = start + length
        if all(end + GUARD_MINUTES <= lo or start >= hi + GUARD_MINUTES for lo, hi in occupied):
            return start
    return None


def plan_day(model: SymbolModel, day: int) -> list[PlannedEpisode]:
    """Episodes of one symbol whose whole span lies in UTC day ``day`` and after the listing."""
    rng = rng_for(model.seed, model.key, STREAM_EPISODES, day)
    # Draw every random decision up front so that a rejected placement never shifts later draws.
    want_squeeze = bool(rng.random() < SQUEEZE_PROBABILITY)
    want_compression = bool(rng.random() < COMPRESSION_PROBABILITY)
    absorption_count = int(rng.choice(ABSORPTION_COUNTS, p=ABSORPTION_COUNT_WEIGHTS))
    sigma_day = model.sigma_per_day
    day_start_ms = day * DAY_MS
    first_minute = max(0, -(-(model.listing_ms - day_start_ms) // MINUTE_MS))
    occupied: list[tuple[int, int]] = []
    outage = maintenance_minutes(model.seed, day)
    if outage is not None:
        occupied.append(outage)
    planned: list[PlannedEpisode] = []

    def ms(minute: int) -> int:
        return day_start_ms + minute * MINUTE_MS

    interval = model.funding_interval_minutes
    squeeze_minutes = int(rng.integers(20, 61))
    fuel_oi = float(rng.uniform(0.06, 0.12))
    squeeze_oi = float(rng.uniform(0.06, 0.12))
    fuel_drift = -float(rng.uniform(0.3, 0.7)) * sigma_day
    squeeze_drift = float(rng.uniform(1.5, 3.0)) * sigma_day
    fuel_premium = -float(rng.uniform(0.0012, 0.0030))
    settlements = [
        settle
        for settle in range(interval, MINUTES_PER_DAY, interval)
        if settle - interval - 30 >= first_minute
        and settle + 20 + squeeze_minutes + GUARD_MINUTES <= MINUTES_PER_DAY
    ]
    squeeze_pick = rng.random()
    squeeze_offset = rng.random()
    if want_squeeze and settlements:
        settle = settlements[int(squeeze_pick * len(settlements))]
        latest = min(settle + interval - 10, MINUTES_PER_DAY - 5 - squeeze_minutes)
        start = settle + 20 + int(squeeze_offset * (latest - settle - 20 + 1))
        fuel_start = settle - interval - 30
        end = start + squeeze_minutes
        if all(
            end + GUARD_MINUTES <= lo or fuel_start >= hi + GUARD_MINUTES for lo, hi in occupied
        ):
            occupied.append((fuel_start, end))
            planned.append(
                PlannedEpisode(
                    kind="short_squeeze",
                    start_minute=start,
                    end_minute=end,
                    segments=(
                        # Fuel: shorts pile in — price drifts lower, OI builds, the perp trades
                        # under the index so funding turns negative.
                        Segment(
                            fuel_start,
                            start,
                            vol_mult=0.8,
                            drift_log=fuel_drift,
                            buy_prob=0.44,
                            oi_log=fuel_oi,
                            oi_flow_gain=0.0,
                            premium_target=fuel_premium,
                        ),
                        # Squeeze: forced short covering — price rips on buy-side flow while
                        # open interest falls.
                        Segment(
                            start,
                            end,
                            vol_mult=1.8,
                            count_mult=3.0,
                            qty_mult=1.4,
                            drift_log=squeeze_drift,
                            buy_prob=0.70,
                            oi_log=-squeeze_oi,
                            oi_flow_gain=0.0,
                            premium_target=0.0006,
                            pin_phi=math.exp(-1.0 / 15.0),
                        ),
                    ),
                    detail={
                        "fuel_start_ms": ms(fuel_start),
                        "funding_settlement_ms": ms(settle),
                        "planned_move_pct": round(100.0 * math.expm1(squeeze_drift), 3),
                        "planned_oi_change_pct": round(100.0 * math.expm1(-squeeze_oi), 3),
                        "planned_fuel_premium": round(fuel_premium, 6),
                    },
                )
            )

    compression_minutes = int(rng.integers(120, 301))
    breakout_minutes = int(rng.integers(30, 76))
    direction = 1 if rng.random() < 0.5 else -1
    breakout_drift = direction * float(rng.uniform(0.8, 1.6)) * sigma_day
    breakout_oi = float(rng.uniform(0.02, 0.05))
    compression_rng = rng_for(model.seed, model.key, STREAM_EPISODES, day, 1)
    if want_compression:
        total = compression_minutes + breakout_minutes
        start_or_none = _place(
            compression_rng,
            total,
            occupied,
            lowest=first_minute + 60,
            highest_end=MINUTES_PER_DAY - 5,
        )
        if start_or_none is not None:
            start = start_or_none
            breakout = start + compression_minutes
            end = breakout + breakout_minutes
            occupied.append((start, end))
            planned.append(
                PlannedEpisode(
                    kind="compression_breakout",
                    start_minute=start,
                    end_minute=end,
                    segments=(
                        # Compression: a tight, mean-reverting range on thin activity.
                        Segment(
                            start,
                            breakout,
                            vol_mult=0.25,
                            count_mult=0.55,
                            qty_mult=0.9,
                            oi_flow_gain=0.5,
                            pin_phi=math.exp(-1.0 / 5.0),
                        ),
                        # Breakout: range expansion with directional flow and new positions.
                        Segment(
                            breakout,
                            end,
                            vol_mult=2.0,
                            count_mult=2.5,
                            qty_mult=1.3,
                            drift_log=breakout_drift,
                            buy_prob=0.5 + 0.18 * direction,
                            oi_log=breakout_oi,
                            premium_target=0.0001 + 0.0004 * direction,
                            pin_phi=math.exp(-1.0 / 15.0),
                        ),
                    ),
                    detail={
                        "direction": "up" if direction > 0 else "down",
                        "breakout_start_ms": ms(breakout),
                        "planned_move_pct": round(100.0 * math.expm1(breakout_drift), 3),
                    },
                )
            )

    for index in range(absorption_count):
        absorption_rng = rng_for(model.seed, model.key, STREAM_EPISODES, day, 2 + index)
        length = int(absorption_rng.integers(10, 31))
        aggressor = 1 if absorption_rng.random() < 0.5 else -1
        absorbed_oi = float(absorption_rng.uniform(0.01, 0.025))
        reversal_drift = -aggressor * float(absorption_rng.uniform(0.3, 0.6)) * sigma_day
        reversal_minutes = 30
        start_or_none = _place(
            absorption_rng,
            length + reversal_minutes,
            occupied,
            lowest=first_minute + 60,
            highest_end=MINUTES_PER_DAY - 5,
        )
        if start_or_none is None:
            continue
        start = start_or_none
        end = start + length
        occupied.append((start, end + reversal_minutes))
        planned.append(
            PlannedEpisode(
                kind="absorption",
                start_minute=start,
                end_minute=end,
                segments=(
                    # Absorption: heavy one-sided aggression into a passive wall — volume and
                    # imbalance spike, the price stays pinned.
                    Segment(
                        start,
                        end,
                        vol_mult=0.45,
                        count_mult=3.0,
                        qty_mult=1.5,
                        buy_prob=0.5 + 0.36 * aggressor,
                        oi_log=absorbed_oi,
                        oi_flow_gain=0.0,
                        pin_phi=math.exp(-1.0 / 3.0),
                    ),
                    # Aftermath: the absorbed side gives up and price turns against it.
                    Segment(
                        end,
                        end + reversal_minutes,
                        count_mult=1.5,
                        drift_log=reversal_drift,
                        buy_prob=0.5 - 0.1 * aggressor,
                    ),
                ),
                detail={
                    "aggressor": "buy" if aggressor > 0 else "sell",
                    "bias": "bearish" if aggressor > 0 else "bullish",
                    "reversal_end_ms": ms(end + reversal_minutes),
                },
            )
        )
    planned.sort(key=lambda episode: episode.start_minute)
    return planned

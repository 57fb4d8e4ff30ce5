"""Where the simulator plants outages and market-structure episodes.

Outages are pure functions of (seed, day). Episodes are drawn per symbol and UTC day from their
own random stream (``draw_day``: kinds, directions, outcomes, times, sizes — never the data) and
then resolved by the skeleton against what is already planted: squeezes and breakouts keep their
drawn times, absorptions wait in a search window for the price to reach a level of the previous
session (``place_absorption``). Minutes here are absolute (minutes since the epoch), so an
episode may run past midnight; the skeleton carries its remaining segments into the next day.

Fairness, by construction:
- every kind comes in both directions with equal probability, at any minute of the day;
- a share of each kind are decoys (the precursor without the payoff), the rest follow through
  with probability ``EpisodeRates.follow_through`` and fail otherwise;
- a failure moves against the direction by enough that, from the moment the setup is
  observable, the expected move is zero: p·S = (1 − p)·X, plus the part of the trigger leg a
  detector can still catch. Sizes and durations are heavy-tailed (Pareto), moves are jagged
  (a thrust, a 30–60 % retrace, a final leg).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from ingmon.exchange._levels import Levels
from ingmon.exchange._model import (
    MINUTE_MS,
    MINUTES_PER_DAY,
    STREAM_EPISODES,
    STREAM_MAINTENANCE,
    FloatArray,
    SymbolModel,
    rng_for,
    season_profile,
)

# One outage somewhere in every block of 15 UTC days: gaps of 0–30 days, ~15 on average.
MAINTENANCE_BLOCK_DAYS = 15
MAINTENANCE_MINUTES = (10, 60)

GUARD_MINUTES = 20  # quiet gap kept between planted episodes (and outages)
_KIND_SQUEEZE, _KIND_BREAKOUT, _KIND_ABSORPTION = 0, 1, 2  # sub-stream keys
_STRATA_KEY = 7
# Directions and outcomes are stratified over blocks of this many days (see _block_strata); a
# block is long enough that earlier outcomes say next to nothing about the next one.
STRATA_DAYS = 30
_PIN_LEG = math.exp(-1.0 / 10.0)  # legs: bounded noise around the planted move
_PIN_RANGE = math.exp(-1.0 / 5.0)  # compressions: a tight range
_PIN_ABSORB = math.exp(-1.0 / 3.0)  # absorptions: price held at the level
# The neutral premium (the skeleton's PREMIUM_MEAN, just inside the funding formula's dead band
# [−0.04 %, +0.06 %]): crowded shorts push it below the band (negative funding), crowded longs
# above it.
_NEUTRAL_PREMIUM = 0.0004
_CROWDED_SHORTS_PREMIUM = (-0.0007, -0.0002)
_CROWDED_LONGS_PREMIUM = (0.0006, 0.001)


@dataclass(frozen=True)
class EpisodeRates:
    """How many episodes of each kind to plant per symbol and UTC day (Poisson means) and their
    outcome mix. The defaults give ≥ 30 of each kind per symbol in 90 days."""

    squeeze_per_day: float = 0.8
    breakout_per_day: float = 0.85
    absorption_per_day: float = 1.25  # candidates: those that never meet a level are dropped
    decoy_share: float = 0.2  # of each kind: the precursor only, no payoff planted
    follow_through: float = 0.6  # of the non-decoys; the rest fail
    level_search_minutes: int = 480  # how long an absorption waits for price to reach a level

    def __post_init__(self) -> None:
        if min(self.squeeze_per_day, self.breakout_per_day, self.absorption_per_day) < 0:
            raise ValueError("episode rates must be ≥ 0")
        if not (0.0 <= self.decoy_share <= 1.0 and 0.0 < self.follow_through < 1.0):
            raise ValueError("decoy_share must be in [0, 1] and follow_through in (0, 1)")


@dataclass(frozen=True)
class Segment:
    """A stretch of absolute minutes whose dynamics an episode overrides."""

    start_minute: int
    end_minute: int
    vol_mult: float = 1.0
    count_mult: float = 1.0
    qty_mult: float = 1.0
    drift_log: float = 0.0  # planted log-price change over the whole segment
    buy_prob: float | None = None  # taker-buy probability of its trades
    oi_log: float = 0.0  # planted log open-interest change over the whole segment
    oi_flow_gain: float = 1.0  # how much ordinary flow still moves open interest
    premium_target: float | None = None
    pin_phi: float | None = None  # mean-reverting path around the planted drift
    background: bool = False  # applied first; core segments of other episodes may overlap it

    def shifted(self, minutes: int) -> Segment:
        return replace(
            self, start_minute=self.start_minute + minutes, end_minute=self.end_minute + minutes
        )


@dataclass(frozen=True)
class PlannedEpisode:
    """An episode of one symbol, in absolute minutes: the reported window plus its segments."""

    kind: str  # "squeeze" | "compression_breakout" | "absorption"
    direction: int  # +1 up, −1 down: the way price goes if it follows through
    outcome: str  # "follow_through" | "failed" | "decoy"
    start_minute: int
    end_minute: int
    trigger_minute: int
    segments: tuple[Segment, ...]
    level_ticks: int | None = None
    level_kind: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def core(self) -> tuple[int, int]:
        """Minutes of its non-background segments (no other core may overlap them)."""
        cores = [s for s in self.segments if not s.background] or list(self.segments)
        return min(s.start_minute for s in cores), max(s.end_minute for s in cores)

    @property
    def background(self) -> tuple[int, int] | None:
        backgrounds = [s for s in self.segments if s.background]
        if not backgrounds:
            return None
        return min(s.start_minute for s in backgrounds), max(s.end_minute for s in backgrounds)


@dataclass(frozen=True)
class AbsorptionDraw:
    """An absorption before placement: everything but where the price meets a level."""

    earliest_minute: int
    outcome: str
    absorb_minutes: int
    aftermath_minutes: int
    move_log: float  # follow-through size (failures and decoys scale from it)
    fallback_direction: int  # the side of the level it waits for (decoys: the side they fake)
    legs: tuple[float, float, float, float]  # jagged-path shape draws
    oi_log: float


@dataclass(frozen=True)
class DayDraw:
    """Candidate episodes of one symbol-day, before resolution."""

    scheduled: tuple[PlannedEpisode, ...]  # squeezes first, then breakouts
    absorptions: tuple[AbsorptionDraw, ...]


# --- outages ---------------------------------------------------------------------------------


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


def outage_spans(seed: int, first_day: int, last_day: int) -> list[tuple[int, int]]:
    """Outages of days first_day..last_day in absolute minutes."""
    spans = []
    for day in range(first_day, last_day + 1):
        outage = maintenance_minutes(seed, day)
        if outage is not None:
            spans.append((day * MINUTES_PER_DAY + outage[0], day * MINUTES_PER_DAY + outage[1]))
    return spans


# --- shapes ------------------------------------------------------------------------------------


def _heavy(rng: np.random.Generator, low: float, alpha: float, cap: float) -> float:
    """A Pareto draw: ``low`` at least, tail index ``alpha``, at most ``cap``."""
    return min(cap, low * (1.0 + float(rng.pareto(alpha))))


def _leg_shape(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """(thrust share of the move, retrace share of the thrust, thrust and retrace time shares)."""
    return (
        float(rng.uniform(0.6, 0.95)),
        float(rng.uniform(0.3, 0.6)),
        float(rng.uniform(0.3, 0.45)),
        float(rng.uniform(0.15, 0.25)),
    )


def _jagged(
    start: int,
    minutes: int,
    move_log: float,
    shape: tuple[float, float, float, float],
    *,
    made_log: float = 0.0,
    **dynamics: Any,
) -> list[Segment]:
    """A move in three pinned legs: thrust, a retrace of 30–60 % of the move made so far
    (``made_log`` before this one, in the same direction, plus the thrust), then a final leg to
    a new extreme. Flow follows each leg."""
    thrust_share, retrace_share, thrust_time, retrace_time = shape
    thrust = move_log * thrust_share
    retrace = -(thrust + made_log * (np.sign(made_log) == np.sign(move_log))) * retrace_share
    moves = (thrust, retrace, move_log - thrust - retrace)
    first = max(1, round(minutes * thrust_time))
    second = max(1, round(minutes * retrace_time))
    bounds = (
        start,
        start + first,
        start + first + second,
        start + max(minutes, first + second + 1),
    )
    tilt = dynamics.pop("flow_tilt", 0.15)
    return [
        Segment(
            lo,
            hi,
            drift_log=move,
            buy_prob=0.5 + tilt * float(np.sign(move)),
            pin_phi=_PIN_LEG,
            **dynamics,
        )
        for lo, hi, move in zip(bounds[:-1], bounds[1:], moves, strict=True)
    ]


def _active_minute(rng: np.random.Generator, day: int) -> int:
    """A minute of UTC day ``day`` (absolute), drawn in proportion to the day's activity profile:
    setups need participants, so they start where the volume is, at any hour."""
    activity = np.cumsum(season_profile(day))
    minute = int(np.searchsorted(activity, float(rng.random()) * activity[-1]))
    return day * MINUTES_PER_DAY + min(minute, MINUTES_PER_DAY - 1)


def _outcome(draw: float, rates: EpisodeRates) -> str:
    """The outcome a uniform draw in [0, 1) stands for."""
    if draw < rates.decoy_share:
        return "decoy"
    follow = rates.decoy_share + (1.0 - rates.decoy_share) * rates.follow_through
    return "follow_through" if draw < follow else "failed"


def _failure_move(follow_move: float, trigger_move: float, rates: EpisodeRates) -> float:
    """Size of a failure's move against the direction: zero expectancy after the trigger."""
    odds = rates.follow_through / (1.0 - rates.follow_through)
    return follow_move * odds + trigger_move


def _ms(minute: int) -> int:
    return minute * MINUTE_MS


# --- drawing one day -------------------------------------------------------------------------


def _draw_squeeze(
    model: SymbolModel,
    rng: np.random.Generator,
    day_minute: int,
    rates: EpisodeRates,
    stratum: tuple[int, float],
) -> PlannedEpisode:
    """Crowding (fuel) for hours, often across a funding settlement, then a forced unwind — or
    not."""
    direction, outcome = stratum[0], _outcome(stratum[1], rates)
    sigma_day = model.sigma_per_day
    # The squeeze fires on the next day, so its fuel (≤ 15 h) starts on this one or that one.
    start = _active_minute(rng, day_minute // MINUTES_PER_DAY + 1)
    fuel = round(_heavy(rng, 240.0, 1.5, 900.0))
    fuel_start = start - fuel
    ignition = round(_heavy(rng, 10.0, 2.0, 25.0))
    continuation = round(_heavy(rng, 60.0, 1.8, 240.0))
    fuel_drift = -direction * float(rng.uniform(0.05, 0.2)) * sigma_day
    fuel_oi = float(rng.uniform(0.02, 0.05))
    squeeze_oi = float(rng.uniform(0.025, 0.05))
    crowded = _CROWDED_SHORTS_PREMIUM if direction > 0 else _CROWDED_LONGS_PREMIUM
    fuel_premium = float(rng.uniform(*crowded))
    ignition_move = direction * _heavy(rng, 0.2, 3.0, 0.5) * sigma_day
    follow_move = direction * _heavy(rng, 0.25, 2.5, 0.9) * sigma_day
    ignition_shape = _leg_shape(rng)
    shape = _leg_shape(rng)
    end = start + ignition + continuation
    segments = [
        # Fuel: the crowded side piles in against the coming move — price drifts its way, open
        # interest builds, the perp trades away from the index so funding leans against it.
        Segment(
            fuel_start,
            start,
            vol_mult=0.85,
            drift_log=fuel_drift,
            buy_prob=0.5 - 0.05 * direction,
            oi_log=fuel_oi,
            oi_flow_gain=0.0,
            premium_target=fuel_premium,
            background=True,
        )
    ]
    move = 0.0
    if outcome == "decoy":
        # The crowding unwinds without a squeeze: the window is reserved but nothing is planted.
        segments.append(Segment(start, end))
    else:
        # Ignition: forced covering — a fast, jagged move on one-sided flow while open interest
        # falls (a wick and a retest before the new extreme).
        segments += _jagged(
            start,
            ignition,
            ignition_move,
            ignition_shape,
            vol_mult=1.8,
            count_mult=3.0,
            qty_mult=1.4,
            flow_tilt=0.2,
            oi_log=-0.2 * squeeze_oi,
            oi_flow_gain=0.0,
            premium_target=_NEUTRAL_PREMIUM + 0.0004 * direction,
        )
        if outcome == "follow_through":
            continuation_move = follow_move
            continuation_oi = -0.4 * squeeze_oi
        else:
            continuation_move = -_failure_move(follow_move, ignition_move, rates)
            continuation_oi = 0.0
        segments += _jagged(
            start + ignition,
            continuation,
            continuation_move,
            shape,
            made_log=ignition_move,
            vol_mult=1.5,
            count_mult=2.0,
            qty_mult=1.2,
            oi_log=continuation_oi / 3.0,
            oi_flow_gain=0.0,
        )
        move = ignition_move + continuation_move
    return PlannedEpisode(
        kind="squeeze",
        direction=direction,
        outcome=outcome,
        start_minute=start,
        end_minute=end,
        trigger_minute=start,
        segments=tuple(segments),
        detail={
            "fuel_start_ms": _ms(fuel_start),
            "planned_move_pct": round(100.0 * math.expm1(move), 3),
            "planned_oi_change_pct": round(
                100.0 * math.expm1(-squeeze_oi if outcome == "follow_through" else 0.0), 3
            )
            if outcome != "decoy"
            else 0.0,
            "planned_fuel_premium": round(fuel_premium, 6),
        },
    )


def _draw_breakout(
    model: SymbolModel,
    rng: np.random.Generator,
    day_minute: int,
    rates: EpisodeRates,
    stratum: tuple[int, float],
) -> PlannedEpisode:
    """A quiet range, a breakout leg, then continuation or a failed breakout — or a fizzle."""
    direction, outcome = stratum[0], _outcome(stratum[1], rates)
    sigma_day = model.sigma_per_day
    start = _active_minute(rng, day_minute // MINUTES_PER_DAY)
    compression = round(_heavy(rng, 60.0, 1.5, 360.0))
    leg = round(_heavy(rng, 6.0, 2.0, 20.0))
    continuation = round(_heavy(rng, 60.0, 1.8, 240.0))
    leg_move = direction * _heavy(rng, 0.08, 3.0, 0.25) * sigma_day
    follow_move = direction * _heavy(rng, 0.25, 2.5, 0.9) * sigma_day
    breakout_oi = float(rng.uniform(0.01, 0.03))
    shape = _leg_shape(rng)
    breakout = start + compression
    end = breakout + leg + continuation
    # Compression: a tight, mean-reverting range on thin activity.
    segments = [
        Segment(
            start,
            breakout,
            vol_mult=0.3,
            count_mult=0.55,
            qty_mult=0.9,
            oi_flow_gain=0.5,
            pin_phi=_PIN_RANGE,
        )
    ]
    move = 0.0
    if outcome == "decoy":
        # The range fizzles: the window is reserved, the market just carries on.
        segments.append(Segment(breakout, end))
    else:
        # Breakout: range expansion with directional flow and new positions.
        segments.append(
            Segment(
                breakout,
                breakout + leg,
                vol_mult=2.0,
                count_mult=2.5,
                qty_mult=1.3,
                drift_log=leg_move,
                buy_prob=0.5 + 0.18 * direction,
                oi_log=breakout_oi,
                premium_target=_NEUTRAL_PREMIUM + 0.0003 * direction,
                pin_phi=_PIN_LEG,
            )
        )
        if outcome == "follow_through":
            continuation_move = follow_move
        else:
            # A failed breakout falls back through the range (trapped breakout traders exit).
            continuation_move = -_failure_move(follow_move, leg_move, rates)
        segments += _jagged(
            breakout + leg,
            continuation,
            continuation_move,
            shape,
            made_log=leg_move,
            vol_mult=1.3,
            count_mult=1.5,
        )
        move = leg_move + continuation_move
    return PlannedEpisode(
        kind="compression_breakout",
        direction=direction,
        outcome=outcome,
        start_minute=start,
        end_minute=end,
        trigger_minute=breakout,
        segments=tuple(segments),
        detail={
            "breakout_start_ms": _ms(breakout),
            "planned_move_pct": round(100.0 * math.expm1(move), 3),
        },
    )


def _draw_absorption(
    model: SymbolModel,
    rng: np.random.Generator,
    day_minute: int,
    rates: EpisodeRates,
    stratum: tuple[int, float],
) -> AbsorptionDraw:
    outcome = _outcome(stratum[1], rates)
    return AbsorptionDraw(
        earliest_minute=_active_minute(rng, day_minute // MINUTES_PER_DAY),
        outcome=outcome,
        absorb_minutes=round(_heavy(rng, 8.0, 1.8, 45.0)),  # (heavy-tailed, like all sizes)
        aftermath_minutes=round(_heavy(rng, 25.0, 1.8, 120.0)),
        move_log=_heavy(rng, 0.22, 2.5, 0.7) * model.sigma_per_day,
        fallback_direction=stratum[0],
        legs=_leg_shape(rng),
        oi_log=float(rng.uniform(0.01, 0.025)),
    )


@lru_cache(maxsize=4096)
def _day_counts(model: SymbolModel, day: int, rates: EpisodeRates) -> tuple[int, int, int]:
    """How many candidates of each kind (squeeze, breakout, absorption) the day draws."""
    rng = rng_for(model.seed, model.key, STREAM_EPISODES, day)
    counts = rng.poisson((rates.squeeze_per_day, rates.breakout_per_day, rates.absorption_per_day))
    return int(counts[0]), int(counts[1]), int(counts[2])


@lru_cache(maxsize=256)
def _block_strata(
    model: SymbolModel, block: int, kind: int, rates: EpisodeRates
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Directions and outcome draws of every candidate of one kind in a block of STRATA_DAYS
    days, in candidate order: half up and half down, and outcome draws spread evenly over
    [0, 1) (one per stratum, shuffled), so a 90-day window shows the configured shares up to
    rounding instead of up to sampling luck. Only the block's counts are read (pure draws)."""
    first_day = block * STRATA_DAYS
    total = sum(
        _day_counts(model, day, rates)[kind] for day in range(first_day, first_day + STRATA_DAYS)
    )
    rng = rng_for(model.seed, model.key, STREAM_EPISODES, block, kind, _STRATA_KEY)
    ups = np.arange(total) < (total + int(rng.integers(0, 2))) // 2
    directions = np.where(rng.permutation(ups), 1, -1)
    draws = (rng.permutation(total) + rng.random(total)) / max(total, 1)
    return tuple(int(value) for value in directions), tuple(float(value) for value in draws)


def _stratum(
    model: SymbolModel, day: int, kind: int, index: int, rates: EpisodeRates
) -> tuple[int, float]:
    """(direction, outcome draw) of candidate ``index`` of ``kind`` on ``day``."""
    first_day = day // STRATA_DAYS * STRATA_DAYS
    ordinal = index + sum(
        _day_counts(model, earlier, rates)[kind] for earlier in range(first_day, day)
    )
    directions, draws = _block_strata(model, day // STRATA_DAYS, kind, rates)
    return directions[ordinal], draws[ordinal]


@lru_cache(maxsize=4096)
def draw_day(model: SymbolModel, day: int, rates: EpisodeRates) -> DayDraw:
    """Every candidate episode of one symbol-day (a pure function: no data is read)."""
    counts = _day_counts(model, day, rates)
    day_minute = day * MINUTES_PER_DAY

    def sub(kind: int, index: int) -> np.random.Generator:
        # Each candidate has its own stream: counts never shift another candidate's draws.
        return rng_for(model.seed, model.key, STREAM_EPISODES, day, kind, index)

    def stratum(kind: int, index: int) -> tuple[int, float]:
        return _stratum(model, day, kind, index, rates)

    squeezes = [
        _draw_squeeze(
            model, sub(_KIND_SQUEEZE, index), day_minute, rates, stratum(_KIND_SQUEEZE, index)
        )
        for index in range(counts[0])
    ]
    breakouts = [
        _draw_breakout(
            model, sub(_KIND_BREAKOUT, index), day_minute, rates, stratum(_KIND_BREAKOUT, index)
        )
        for index in range(counts[1])
    ]
    absorptions = sorted(
        (
            _draw_absorption(
                model,
                sub(_KIND_ABSORPTION, index),
                day_minute,
                rates,
                stratum(_KIND_ABSORPTION, index),
            )
            for index in range(counts[2])
        ),
        key=lambda draw: draw.earliest_minute,
    )
    return DayDraw(scheduled=(*squeezes, *breakouts), absorptions=tuple(absorptions))


# --- resolution ------------------------------------------------------------------------------


@dataclass
class Occupancy:
    """Spans already planted (absolute minutes): cores exclude cores, backgrounds backgrounds."""

    cores: list[tuple[int, int]] = field(default_factory=list)
    backgrounds: list[tuple[int, int]] = field(default_factory=list)

    def free(self, core: tuple[int, int], background: tuple[int, int] | None = None) -> bool:
        if not _clear(core, self.cores):
            return False
        return background is None or _clear(background, self.backgrounds)

    def take(self, episode: PlannedEpisode) -> None:
        self.cores.append(episode.core)
        if episode.background is not None:
            self.backgrounds.append(episode.background)


def _clear(span: tuple[int, int], taken: Iterable[tuple[int, int]]) -> bool:
    lo, hi = span
    return all(hi + GUARD_MINUTES <= start or lo >= end + GUARD_MINUTES for start, end in taken)


def accept_scheduled(
    draw: DayDraw, occupancy: Occupancy, *, first_minute: int
) -> list[PlannedEpisode]:
    """The day's squeezes and breakouts that fit (after the listing, clear of the rest)."""
    accepted = []
    for episode in draw.scheduled:
        spans = [segment.start_minute for segment in episode.segments]
        if min(spans) < first_minute or not occupancy.free(episode.core, episode.background):
            continue
        occupancy.take(episode)
        accepted.append(episode)
    return accepted


def place_absorption(
    draw: AbsorptionDraw,
    *,
    path_ticks: FloatArray,
    day_minute: int,
    levels: Levels,
    occupancy: Occupancy,
    first_minute: int,
    rates: EpisodeRates,
) -> PlannedEpisode | None:
    """Put an absorption where the day's price path first meets a level of the previous session
    inside the draw's search window (no absorption if it never does); decoys are
    heavy one-sided flow that moves price normally, anywhere."""
    length = draw.absorb_minutes + (0 if draw.outcome == "decoy" else draw.aftermath_minutes)
    day_end = day_minute + MINUTES_PER_DAY
    lowest = max(draw.earliest_minute, first_minute)
    highest = min(draw.earliest_minute + rates.level_search_minutes, day_end - length - 1)
    if highest < lowest:
        return None
    if draw.outcome == "decoy" or not levels.kinds:
        return _absorption_at(
            draw,
            lowest,
            direction=draw.fallback_direction,
            level=None,
            rates=rates,
            occupancy=occupancy,
        )
    local = np.arange(lowest, highest + 1) - day_minute  # the close at minute m, pinned from m+1
    prices = np.asarray(levels.prices_ticks, dtype=np.float64)
    distance = np.abs(path_ticks[local][:, None] - prices[None, :])
    near = distance.min(axis=1) <= max(2.0, levels.bin_ticks / 3.0)
    direction = draw.fallback_direction
    for index in np.flatnonzero(near).tolist():
        minute = int(local[index])
        which = int(distance[index].argmin())
        came_from = path_ticks[max(0, minute - 15)] - prices[which]
        # Coming down onto a level, sellers are the aggressors and the level holds them: "up".
        # The draw's (stratified) direction picks which approach it waits for, so a trending
        # market does not tilt the up/down balance.
        if came_from * direction <= 0:
            continue
        level = (int(levels.prices_ticks[which]), levels.kinds[which])
        placed = _absorption_at(
            draw,
            day_minute + minute + 1,
            direction=direction,
            level=level,
            rates=rates,
            occupancy=occupancy,
        )
        if placed is not None:
            return placed
    return None  # price never came to a level: no absorption (they happen at levels)


def _absorption_at(
    draw: AbsorptionDraw,
    start: int,
    *,
    direction: int,
    level: tuple[int, str] | None,
    rates: EpisodeRates,
    occupancy: Occupancy,
) -> PlannedEpisode | None:
    aggressor = -direction
    end = start + draw.absorb_minutes
    if draw.outcome == "decoy":
        # Heavy one-sided flow that simply moves price its way: no passive wall, no payoff.
        segments: list[Segment] = [
            Segment(
                start,
                end,
                vol_mult=1.2,
                count_mult=2.5,
                qty_mult=1.3,
                drift_log=aggressor * 0.5 * draw.move_log,
                buy_prob=0.5 + 0.3 * aggressor,
                oi_log=draw.oi_log,
                oi_flow_gain=0.0,
            )
        ]
        detail_end = end
    else:
        # Absorption: heavy aggression into a passive wall — volume and imbalance spike, the price
        # stays pinned at the level.
        segments = [
            Segment(
                start,
                end,
                vol_mult=0.45,
                count_mult=3.0,
                qty_mult=1.5,
                buy_prob=0.5 + 0.25 * aggressor,
                oi_log=draw.oi_log,
                oi_flow_gain=0.0,
                pin_phi=_PIN_ABSORB,
            )
        ]
        if draw.outcome == "follow_through":
            move = direction * draw.move_log  # the absorbed side gives up
        else:
            move = -direction * _failure_move(draw.move_log, 0.0, rates)  # the wall gives way
        segments += _jagged(end, draw.aftermath_minutes, move, draw.legs, count_mult=1.5)
        detail_end = end + draw.aftermath_minutes
    episode = PlannedEpisode(
        kind="absorption",
        direction=direction,
        outcome=draw.outcome,
        start_minute=start,
        end_minute=end,
        trigger_minute=end,
        segments=tuple(segments),
        level_ticks=None if level is None else level[0],
        level_kind=None if level is None else level[1],
        detail={
            "aggressor": "buy" if aggressor > 0 else "sell",
            "aftermath_end_ms": _ms(detail_end),
        },
    )
    if not occupancy.free(episode.core):
        return None
    occupancy.take(episode)
    return episode

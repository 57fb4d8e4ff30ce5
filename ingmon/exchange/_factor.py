"""The market factor every symbol shares: common volatility regimes and common return shocks.

A pure function of (seed, UTC day). It never reads a symbol's state, so a symbol's data is the
same whichever other symbols a Market holds and whatever order the days are asked for in.

Volatility is exp(slow + medium + fast):
- slow: weeks-long regimes (AR(1) on daily nodes, half-life _SLOW_HALF_LIFE_DAYS);
- medium: news days (AR(1) on daily nodes, half-life _MEDIUM_HALF_LIFE_DAYS);
- fast: intraday clustering (AR(1) per minute, half-life _FAST_HALF_LIFE_MINUTES).
On top, market-wide jump days: with probability JUMP_DAY_PROBABILITY a day carries one fast
repricing (news, a cascade) of JUMP_SIGMAS daily σ (normal size, either sign) spread over
30–120 minutes — the fat tail of daily returns (Cont 2001) that 90 days of regimes alone
cannot show. The daily nodes are truncated moving averages of per-day innovations (so day d
needs no earlier day's output), linearly interpolated across the day; the fast part is warmed
up on the previous day's innovations, which makes it continuous at midnight to within
phi**1440 ≈ 0.4 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ingmon.exchange._model import MINUTES_PER_DAY, STREAM_FACTOR, FloatArray, ar1, rng_for

_BLOCK_DAYS = 64  # daily innovations are drawn in blocks of this many days
_SLOW_HALF_LIFE_DAYS = 12.0
_SLOW_SD = 0.34
_MEDIUM_HALF_LIFE_DAYS = 1.2
_MEDIUM_SD = 0.45
_MEMORY_DAYS = 200  # slow weight after this many days: 2**-16
_FAST_HALF_LIFE_MINUTES = 180.0
_FAST_SD = 0.30
_STUDENT_DF = 5.0
JUMP_DAY_PROBABILITY = 0.12
JUMP_SIGMAS = 3.5
_JUMP_MINUTES = (30, 121)

_SLOW_PHI = math.exp(-math.log(2.0) / _SLOW_HALF_LIFE_DAYS)
_MEDIUM_PHI = math.exp(-math.log(2.0) / _MEDIUM_HALF_LIFE_DAYS)
_FAST_PHI = math.exp(-math.log(2.0) / _FAST_HALF_LIFE_MINUTES)
_LAGS = np.arange(_MEMORY_DAYS - 1, -1, -1, dtype=np.float64)  # oldest innovation first
_SLOW_WEIGHTS = _SLOW_SD * math.sqrt(1.0 - _SLOW_PHI**2) * _SLOW_PHI**_LAGS
_MEDIUM_WEIGHTS = _MEDIUM_SD * math.sqrt(1.0 - _MEDIUM_PHI**2) * _MEDIUM_PHI**_LAGS
_FAST_INNOVATION = _FAST_SD * math.sqrt(1.0 - _FAST_PHI**2)
# Variance of the factor's log-volatility (stationary), for the activity normalisation.
LOG_VOL_VARIANCE = _SLOW_SD**2 + _MEDIUM_SD**2 + _FAST_SD**2


@dataclass(frozen=True)
class FactorDay:
    """The market factor over one UTC day (arrays of 1440, index = minute of the day)."""

    log_vol: FloatArray  # common log-volatility multiplier
    shock: FloatArray  # common return shock, unit variance, Student-t(5) tails
    jump_sigmas: FloatArray  # market-wide jump, per minute, in daily σ of each symbol


@lru_cache(maxsize=32)
def _daily_innovations(seed: int, block: int) -> FloatArray:
    """Standard normals (2, _BLOCK_DAYS) for the slow and medium nodes of one block of days."""
    innovations: FloatArray = rng_for(seed, STREAM_FACTOR, 0, block).standard_normal(
        (2, _BLOCK_DAYS)
    )
    innovations.setflags(write=False)
    return innovations


@lru_cache(maxsize=1024)
def _node(seed: int, day: int) -> float:
    """Slow + medium log-volatility at the start of UTC day ``day``."""
    first_day = day - _MEMORY_DAYS + 1
    pieces = [
        _daily_innovations(seed, block)
        for block in range(first_day // _BLOCK_DAYS, day // _BLOCK_DAYS + 1)
    ]
    joined = np.concatenate(pieces, axis=1)
    offset = first_day - first_day // _BLOCK_DAYS * _BLOCK_DAYS
    window = joined[:, offset : offset + _MEMORY_DAYS]
    return float(window[0] @ _SLOW_WEIGHTS + window[1] @ _MEDIUM_WEIGHTS)


@lru_cache(maxsize=8)
def _minute_draws(seed: int, day: int) -> tuple[FloatArray, FloatArray]:
    """(fast-volatility innovations, Student-t shocks) of one day, fixed order."""
    rng = rng_for(seed, STREAM_FACTOR, 1, day)
    fast = rng.standard_normal(MINUTES_PER_DAY)
    shock = rng.standard_t(_STUDENT_DF, MINUTES_PER_DAY) * math.sqrt(
        (_STUDENT_DF - 2.0) / _STUDENT_DF
    )
    fast.setflags(write=False)
    shock.setflags(write=False)
    return fast, shock


@lru_cache(maxsize=16)
def factor_day(seed: int, day: int) -> FactorDay:
    """The factor over UTC day ``day`` for ``seed`` (the same for every symbol)."""
    nodes = np.interp(
        np.arange(MINUTES_PER_DAY, dtype=np.float64) / MINUTES_PER_DAY,
        (0.0, 1.0),
        (_node(seed, day), _node(seed, day + 1)),
    )
    warm_up, _ = _minute_draws(seed, day - 1)
    fast_innovations, shock = _minute_draws(seed, day)
    fast = ar1(np.concatenate((warm_up, fast_innovations)) * _FAST_INNOVATION, _FAST_PHI, 0.0)[
        MINUTES_PER_DAY:
    ]
    log_vol = nodes + fast
    log_vol.setflags(write=False)
    return FactorDay(log_vol=log_vol, shock=shock, jump_sigmas=_jump(seed, day))


def _jump(seed: int, day: int) -> FloatArray:
    """The day's market-wide jump (zeros on most days)."""
    rng = rng_for(seed, STREAM_FACTOR, 2, day)
    happens, start_draw, length_draw = rng.random(3)
    jump = np.zeros(MINUTES_PER_DAY)
    if happens < JUMP_DAY_PROBABILITY:
        length = _JUMP_MINUTES[0] + int(length_draw * (_JUMP_MINUTES[1] - _JUMP_MINUTES[0]))
        start = int(start_draw * (MINUTES_PER_DAY - length))
        # Normal sizes: heavy enough for fat daily tails, never one hour that swamps 90 days.
        magnitude = JUMP_SIGMAS * float(rng.standard_normal())
        jump[start : start + length] = magnitude / length
    jump.setflags(write=False)
    return jump

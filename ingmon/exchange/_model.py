"""Shared pieces of the market simulator: seeding, time constants, seasonality, per-symbol model."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np

IntArray = np.ndarray[Any, np.dtype[np.int64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
MINUTES_PER_DAY = 1440

# Independent random streams: every draw is keyed by (seed, symbol, stream, block), so no result
# depends on which other symbols exist or on the order in which anything was asked for.
STREAM_SKELETON = 1
STREAM_TRADES = 2
STREAM_EPISODES = 3
STREAM_MAINTENANCE = 4
STREAM_SPEC = 5
STREAM_FACTOR = 6  # keyed by (seed, …) only: the market factor every symbol shares
STREAM_SIZES = 7

_MASK64 = (1 << 64) - 1

# Relative activity by UTC hour: Asia quiet-ish, Europe building from 07:00, the London–New York
# overlap and the 16:00–17:00 "tea time" peak (reference/signals-and-backtest-semantics.md §4),
# then the US evening fade.
_HOUR_ACTIVITY = (
    0.85, 0.80, 0.72, 0.65, 0.60, 0.60, 0.65, 0.78, 0.95, 1.00, 1.00, 1.00,
    1.10, 1.35, 1.60, 1.80, 1.90, 1.60, 1.35, 1.20, 1.05, 0.95, 0.90, 0.88,
)  # fmt: skip
WEEKEND_ACTIVITY = 0.55
# Bursts at the full hour (scheduled releases, bots on hourly timers).
_FULL_HOUR_BURST = 1.35


def rng_for(*keys: int) -> np.random.Generator:
    """A generator seeded from a tuple of integers (any sign, any size)."""
    return np.random.default_rng(np.random.SeedSequence([key & _MASK64 for key in keys]))


def symbol_key(symbol: str) -> int:
    """A stable 64-bit key for a symbol name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(symbol.encode(), digest_size=8).digest(), "little")


def decimals_of(text: str) -> int:
    """Digits after the decimal point as written: "0.10" → 2, "1" → 0."""
    return len(text.split(".", 1)[1]) if "." in text else 0


def units_of(text: str) -> int:
    """The decimal string as an integer in units of its last written digit: "0.10" → 10."""
    return int(Decimal(text).scaleb(decimals_of(text)))


def ar1(innovations: FloatArray, phi: float, initial: float) -> FloatArray:
    """x[t] = phi·x[t−1] + innovations[t] with x[−1] = initial, without a Python loop per step.

    x[t] = phi^(t+1)·(x[−1] + Σ_{s≤t} u[s]·phi^−(s+1)); chunks keep phi^−L below 1e6 so the
    rescaling costs at most ~1e−10 relative precision.
    """
    count = innovations.size
    out = np.empty(count, dtype=np.float64)
    if count == 0:
        return out
    chunk = count if phi >= 1.0 else max(1, min(count, int(13.8 / -math.log(phi))))
    powers_full = phi ** np.arange(1, chunk + 1, dtype=np.float64)
    previous = initial
    for begin in range(0, count, chunk):
        segment = innovations[begin : begin + chunk]
        powers = powers_full[: segment.size]
        values = powers * (previous + np.cumsum(segment / powers))
        out[begin : begin + segment.size] = values
        previous = float(values[-1])
    return out


@lru_cache(maxsize=2)
def _season_table(weekend: bool) -> FloatArray:
    hour_centres = np.arange(-1, 25, dtype=np.float64) * 60.0 + 30.0
    levels = np.array([_HOUR_ACTIVITY[-1], *_HOUR_ACTIVITY, _HOUR_ACTIVITY[0]], dtype=np.float64)
    minutes = np.arange(MINUTES_PER_DAY, dtype=np.float64)
    table = np.interp(minutes, hour_centres, levels)
    table[(np.arange(MINUTES_PER_DAY) % 60) < 2] *= _FULL_HOUR_BURST
    if weekend:
        table *= WEEKEND_ACTIVITY
    table.setflags(write=False)
    return table


@lru_cache(maxsize=1)
def _season_norm() -> float:
    return float((5.0 * _season_table(False).mean() + 2.0 * _season_table(True).mean()) / 7.0)


def is_weekend(day: int) -> bool:
    """1970-01-01 (day 0) was a Thursday; Saturday and Sunday are days 2 and 3 mod 7."""
    return (day + 3) % 7 >= 5


def season_profile(day: int) -> FloatArray:
    """Per-minute activity multiplier for a UTC day, normalised to a weekly mean of 1."""
    return _season_table(is_weekend(day)) / _season_norm()


@dataclass(frozen=True)
class SymbolModel:
    """The simulator's numeric view of a SymbolSpec (true tick/step multiples, not decimals)."""

    symbol: str
    seed: int
    key: int
    listing_ms: int
    funding_interval_minutes: int
    trades_per_minute: float
    sigma_per_minute: float  # log-price standard deviation of a typical minute
    mean_qty_steps: float
    max_qty_steps: int
    oi_base_steps: float
    initial_log_ticks: float
    tick_units: int  # one tick in units of 10**-price_decimals (the public price unit)
    step_units: int  # one step in units of 10**-quantity_decimals
    market_beta: float = 0.85  # correlation of the symbol's return shocks with the market factor

    @property
    def listing_day(self) -> int:
        return self.listing_ms // DAY_MS

    @property
    def sigma_per_day(self) -> float:
        return self.sigma_per_minute * math.sqrt(MINUTES_PER_DAY)

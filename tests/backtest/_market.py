"""Synthetic 1m markets and signals for the backtest tests (seeded; gaps on purpose)."""

from __future__ import annotations

import numpy as np
import pandas as pd

MINUTE_MS = 60_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def random_bars(seed: int, n: int, *, gap_probability: float = 0.01) -> pd.DataFrame:
    """A random walk of 1m OHLC bars around 100 whose opens sometimes gap 1–4 % away from the
    previous close, so that stops get gapped through."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    previous = np.concatenate(([100.0], close[:-1]))
    gaps = rng.random(n) < gap_probability
    jump = rng.choice([-1, 1], n) * rng.uniform(0.01, 0.04, n)
    open_ = previous * np.where(gaps, 1 + jump, 1 + rng.normal(0, 0.0002, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    return pd.DataFrame(
        {
            "open_time": START_MS + np.arange(n, dtype=np.int64) * MINUTE_MS,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(1, 10, n),
        }
    )


def random_signals(
    seed: int, bars: pd.DataFrame, *, probability: float = 0.02, margin: int = 0
) -> pd.DataFrame:
    """Long/short signals on random bars (one per bar at most), none on the first bar or the
    last ``margin`` bars."""
    rng = np.random.default_rng(seed + 10_000)
    n = len(bars)
    at = np.flatnonzero(rng.random(n) < probability)
    at = at[(at >= 1) & (at < n - margin)]
    direction = rng.choice([-1, 1], len(at)).astype(np.int8)
    times = bars["open_time"].to_numpy()[at]
    return pd.DataFrame(
        {"time": times, "direction": direction, "known_ms": times + MINUTE_MS, "bar": at}
    )

"""Return and volatility facts: cross-symbol correlation, drift, volume vs |return|, regimes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ingmon.exchange._facts_data import HOUR_MS, MINUTES_PER_DAY, Series
from ingmon.exchange._facts_rows import CONT, GOPI, ISSUE, Band, EpisodeMeasurement, Fact
from ingmon.exchange._facts_stats import (
    FloatArray,
    autocorrelation,
    block_jackknife_acf,
    excess_kurtosis,
    hill_tail_index,
    jackknife_kurtosis,
    spearman,
)


def correlation_fact(series: dict[str, Series], symbols: Sequence[str]) -> Fact:
    reference = series[symbols[0]]
    values: dict[str, float | None] = {}
    errors: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for symbol in symbols[1:]:
        other = series[symbol]
        common, left, right = np.intersect1d(
            reference.hour_open_ms, other.hour_open_ms, return_indices=True
        )
        consecutive = np.diff(common) == HOUR_MS
        first = np.diff(np.log(reference.hour_close[left]))[consecutive]
        second = np.diff(np.log(other.hour_close[right]))[consecutive]
        if first.size < 10:
            continue
        rho = float(np.corrcoef(first, second)[0, 1])
        values[symbol] = rho
        errors[symbol] = (1 - rho * rho) / math.sqrt(first.size - 3)
        samples[symbol] = int(first.size)
    return Fact(
        key="corr_1h_log_return",
        title=f"1h log-return correlation with {symbols[0]}",
        group="correlation",
        values=values,
        errors=errors,
        samples=samples,
        band=Band(0.7, 0.9, ISSUE + ": ≈0.8"),
    )


def _episode_window_returns(data: Series) -> FloatArray:
    """Log return of the price across each planted episode's [start, end)."""
    returns = [
        math.log(data.price_at(item.end_ms) / data.price_at(item.start_ms))
        for item in data.planted
        if math.isfinite(data.price_at(item.end_ms) / data.price_at(item.start_ms))
    ]
    return np.asarray(returns, dtype=np.float64)


def drift_facts(
    series: dict[str, Series], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    drift: dict[str, float | None] = {}
    drift_z: dict[str, float | None] = {}
    episode_drift: dict[str, float | None] = {}
    episode_z: dict[str, float | None] = {}
    episode_count: dict[str, int] = {}
    for symbol, data in series.items():
        present = np.flatnonzero(data.present)
        if present.size < 2:
            continue
        total = math.log(data.close[present[-1]] / data.open[present[0]])
        daily = np.diff(np.log(data.day_close))
        drift[symbol] = total
        if daily.size > 2 and daily.std() > 0:
            drift_z[symbol] = total / (float(daily.std()) * math.sqrt(daily.size + 1))
        windows = _episode_window_returns(data)
        episode_count[symbol] = int(windows.size)
        episode_drift[symbol] = float(windows.sum())
        power = float(np.sqrt(np.sum(windows**2)))
        if power > 0:
            # Self-normalised sum: ≈ N(0, 1) if episode moves are symmetric and independent.
            episode_z[symbol] = float(windows.sum()) / power
    return [
        Fact(
            key="drift_log_return",
            title="drift over the window (log return)",
            group="drift",
            values=drift,
        ),
        Fact(
            key="drift_z",
            title="drift ÷ (daily σ·√days)",
            group="drift",
            values=drift_z,
            band=Band(-3.0, 3.0, "zero drift in expectation: a random walk stays within ±3 σ"),
        ),
        Fact(
            key="episode_drift_log_return",
            title="log return inside planted episodes",
            group="drift",
            values=episode_drift,
            samples=episode_count,
        ),
        Fact(
            key="episode_drift_z",
            title="episode log return ÷ √Σ(episode return²)",
            group="drift",
            values=episode_z,
            samples=episode_count,
            band=Band(-3.0, 3.0, "episodes must not move the long-run drift (issue 8)"),
        ),
    ]


def volume_return_fact(series: dict[str, Series]) -> Fact:
    values: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for symbol, data in series.items():
        valid = np.isfinite(data.log_return)
        values[symbol] = spearman(data.quote_volume[valid], np.abs(data.log_return[valid]))
        samples[symbol] = int(valid.sum())
    return Fact(
        key="spearman_volume_abs_return_1m",
        title="1m Spearman(volume, |return|)",
        group="volume vs |return|",
        values=values,
        samples=samples,
        band=Band(0.5, 0.7, ISSUE + "; " + CONT + " (volume/volatility correlation)"),
    )


def daily_kurtosis_fact(daily_returns: dict[str, FloatArray]) -> Fact:
    """Excess kurtosis of each symbol's daily log returns, ± its leave-one-out jackknife error.

    Judged like every row (the 99 % interval must reach 3–8): 90 daily returns estimate a fat
    tail so loosely (the error grows with the kurtosis) that a point-in-band rule would fail a
    market whose true kurtosis is 5 on most seeds, while normal days (≈ 0 ± 0.5) still fail the
    interval rule. The table says "within sampling error" when the point estimate is outside.
    """
    values: dict[str, float | None] = {}
    errors: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for symbol, returns in daily_returns.items():
        values[symbol] = excess_kurtosis(returns)
        errors[symbol] = jackknife_kurtosis(returns)
        samples[symbol] = int(returns.size)
    return Fact(
        key="daily_excess_kurtosis",
        title="daily log-return excess kurtosis",
        group="volatility regimes",
        values=values,
        errors=errors,
        samples=samples,
        band=Band(3.0, 8.0, ISSUE + "; " + CONT),
    )


def volatility_facts(series: dict[str, Series]) -> list[Fact]:
    daily_returns: dict[str, FloatArray] = {}
    acf: dict[str, float | None] = {}
    acf_error: dict[str, float | None] = {}
    minute_kurtosis: dict[str, float | None] = {}
    minute_tail: dict[str, float | None] = {}
    taker: dict[str, float | None] = {}
    for symbol, data in series.items():
        daily_returns[symbol] = np.diff(np.log(data.day_close))
        absolute = np.abs(data.log_return)
        acf[symbol] = autocorrelation(absolute, MINUTES_PER_DAY)
        acf_error[symbol] = block_jackknife_acf(absolute, MINUTES_PER_DAY)
        minute_kurtosis[symbol] = excess_kurtosis(data.log_return)
        minute_tail[symbol] = hill_tail_index(absolute[np.isfinite(absolute)])
        volume = float(data.volume.sum())
        taker[symbol] = float(data.taker_buy_volume.sum()) / volume if volume > 0 else None
    return [
        daily_kurtosis_fact(daily_returns),
        Fact(
            key="acf_abs_1m_return_1d",
            title="ACF of |1m return| at 1 day (lag 1440)",
            group="volatility regimes",
            values=acf,
            errors=acf_error,
            band=Band(0.10, 0.15, ISSUE + "; " + CONT + " (slow decay of |r| ACF)"),
        ),
        Fact(
            key="minute_excess_kurtosis",
            title="1m log-return excess kurtosis (keep)",
            group="volatility regimes",
            values=minute_kurtosis,
            band=Band(10.0, None, "issue 8: ≈25 today, keep; " + CONT),
        ),
        Fact(
            key="minute_return_tail_alpha",
            title="|1m return| tail exponent (Hill, top 1 %) (keep)",
            group="volatility regimes",
            values=minute_tail,
            band=Band(2.0, 5.0, GOPI),
        ),
        Fact(
            key="taker_buy_share",
            title="taker-buy share of volume (keep)",
            group="volatility regimes",
            values=taker,
            band=Band(0.45, 0.55, "issue 8: ≈0.5 today, keep"),
        ),
    ]

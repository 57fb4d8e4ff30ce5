"""Pure statistics for the facts instrument: tail index, moments, ranks, KS, jackknife errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]

TAIL_FRACTION = 0.01  # Hill estimator on the top 1 % (trade notionals, |1m returns|)


def hill_tail_index(values: FloatArray, *, tail_fraction: float = TAIL_FRACTION) -> float:
    """Hill (1975) estimate of the tail exponent α from the top ``tail_fraction`` of ``values``.

    α̂ = k / Σ_{i≤k} ln(X_(i) / X_(k+1)) over the k largest positive values (descending order).
    """
    positive = np.asarray(values, dtype=np.float64)
    positive = positive[positive > 0]
    k = int(positive.size * tail_fraction)
    if k < 2:
        return math.nan
    top = np.partition(positive, positive.size - k - 1)[positive.size - k - 1 :]
    threshold = top.min()
    logs = np.log(top / threshold)
    return float(k / logs.sum()) if logs.sum() > 0 else math.nan


def excess_kurtosis(values: FloatArray) -> float:
    """Fisher's excess kurtosis with population moments: m4 / m2² − 3 (NaN values ignored)."""
    sample = np.asarray(values, dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size < 4:
        return math.nan
    centred = sample - sample.mean()
    m2 = float(np.mean(centred**2))
    return float(np.mean(centred**4)) / (m2 * m2) - 3.0 if m2 > 0 else math.nan


def autocorrelation(values: FloatArray, lag: int) -> float:
    """Sample autocorrelation at ``lag`` over the pairs where both values are finite."""
    series = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(series)
    if lag >= series.size or valid.sum() < 2:
        return math.nan
    centred = np.where(valid, series - series[valid].mean(), 0.0)
    both = valid[:-lag] & valid[lag:]
    variance = float(np.mean(centred[valid] ** 2))
    if not both.any() or variance == 0:
        return math.nan
    return float(np.mean((centred[:-lag] * centred[lag:])[both])) / variance


def _average_ranks(values: FloatArray) -> FloatArray:
    """Ranks 1..n with ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], sorted_values.size]
    average = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1..end
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def spearman(first: FloatArray, second: FloatArray) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks)."""
    if first.size < 3:
        return math.nan
    return float(np.corrcoef(_average_ranks(first), _average_ranks(second))[0, 1])


def roc_auc(scores: FloatArray, positives: BoolArray) -> float:
    """Area under the ROC curve (Mann–Whitney U / (n₊·n₋), ties count one half)."""
    count_positive = int(positives.sum())
    count_negative = int(positives.size - count_positive)
    if count_positive == 0 or count_negative == 0:
        return math.nan
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    rank_sum = float(ranks[positives].sum())
    return (rank_sum - count_positive * (count_positive + 1) / 2) / (
        count_positive * count_negative
    )


def _kolmogorov_survival(statistic: float) -> float:
    """P(K > statistic) for the Kolmogorov distribution (alternating series)."""
    if statistic < 0.2:
        return 1.0
    total = 0.0
    for term in range(1, 101):
        total += (-1) ** (term - 1) * math.exp(-2.0 * term * term * statistic * statistic)
    return max(0.0, min(1.0, 2.0 * total))


def ks_test(samples: FloatArray, cdf: Callable[[FloatArray], FloatArray]) -> tuple[float, float]:
    """One-sample Kolmogorov–Smirnov: (D, asymptotic p-value with Stephens' small-n correction)."""
    ordered = np.sort(np.asarray(samples, dtype=np.float64))
    count = ordered.size
    if count == 0:
        return math.nan, math.nan
    expected = cdf(ordered)
    above = np.arange(1, count + 1) / count - expected
    below = expected - np.arange(count) / count
    statistic = float(max(above.max(), below.max()))
    root = math.sqrt(count)
    return statistic, _kolmogorov_survival((root + 0.12 + 0.11 / root) * statistic)


def median_error(values: FloatArray) -> float | None:
    """Standard error of a sample median, 1.2533 σ/√n (normal approximation); None below 2."""
    if values.size < 2:
        return None
    return 1.2533 * float(values.std()) / math.sqrt(values.size)


def rolling_sum(values: FloatArray, window: int) -> FloatArray:
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    out = np.full(values.size, math.nan)
    out[window - 1 :] = cumulative[window:] - cumulative[:-window]
    return out


def trailing_mean_std(values: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    """Mean and std of the ``window`` values before each position (excluding it; NaN skipped)."""
    valid = np.isfinite(values)
    filled = np.where(valid, values, 0.0)
    count = np.concatenate([[0.0], np.cumsum(valid)])
    total = np.concatenate([[0.0], np.cumsum(filled)])
    squares = np.concatenate([[0.0], np.cumsum(filled * filled)])
    index = np.arange(values.size)
    low = np.maximum(index - window, 0)
    n = count[index] - count[low]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (total[index] - total[low]) / n
        variance = (squares[index] - squares[low]) / n - mean * mean
        std = np.sqrt(np.maximum(variance, 0.0))
    enough = n >= window // 2
    return np.where(enough, mean, math.nan), np.where(enough & (std > 0), std, math.nan)


def clustered_mean_error(values: FloatArray, clusters: IntArray) -> float:
    """Cluster-robust standard error of the mean (CR1): samples sharing a cluster key are
    correlated (e.g. two symbols' returns after the same funding settlement), clusters are not.

    SE² = G/(G − 1) · Σ_c (Σ_{i∈c} (x_i − x̄))² / n², with G clusters and n samples.
    """
    sample = np.asarray(values, dtype=np.float64)
    count = sample.size
    _, cluster_index = np.unique(np.asarray(clusters), return_inverse=True)
    groups = int(cluster_index.max()) + 1 if count else 0
    if groups < 2:
        return math.nan
    sums = np.bincount(cluster_index, weights=sample - sample.mean(), minlength=groups)
    return math.sqrt(groups / (groups - 1) * float(np.sum(sums * sums))) / count


def block_jackknife(
    values: FloatArray, statistic: Callable[[FloatArray], float], *, blocks: int = 10
) -> float:
    """Delete-a-block jackknife standard error over ``blocks`` consecutive blocks (time order)."""
    size = values.size // blocks
    if size == 0:
        return math.nan
    estimates = np.asarray(
        [
            statistic(np.concatenate([values[: block * size], values[(block + 1) * size :]]))
            for block in range(blocks)
        ],
        dtype=np.float64,
    )
    return float(math.sqrt((blocks - 1) / blocks * np.sum((estimates - estimates.mean()) ** 2)))


def jackknife_kurtosis(values: FloatArray) -> float:
    """Leave-one-out jackknife standard error of the excess kurtosis."""
    count = values.size
    if count < 5:
        return math.nan
    estimates = np.asarray(
        [excess_kurtosis(np.delete(values, index)) for index in range(count)], dtype=np.float64
    )
    return float(math.sqrt((count - 1) / count * np.sum((estimates - estimates.mean()) ** 2)))


def block_jackknife_acf(values: FloatArray, lag: int, *, blocks: int = 10) -> float:
    """Delete-a-block jackknife standard error of the autocorrelation at ``lag``."""
    size = values.size // blocks
    if size <= lag:
        return math.nan
    estimates = []
    for block in range(blocks):
        reduced = values.copy()
        reduced[block * size : (block + 1) * size] = math.nan
        estimates.append(autocorrelation(reduced, lag))
    spread = np.asarray(estimates, dtype=np.float64)
    return float(math.sqrt((blocks - 1) / blocks * np.sum((spread - spread.mean()) ** 2)))

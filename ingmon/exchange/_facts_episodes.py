"""Planted episodes against their price path: outcome, detectability, timing, counts, retrace."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ingmon.exchange._facts_data import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    MINUTES_PER_DAY,
    Planted,
    Series,
    mask_of,
)
from ingmon.exchange._facts_levels import LevelFinder
from ingmon.exchange._facts_rows import (
    DERIVED,
    EPISODE_KINDS,
    ISSUE,
    POOLED,
    Band,
    EpisodeMeasurement,
    Fact,
    columns_of,
    episodes_of,
    rate,
    squeeze_values,
)
from ingmon.exchange._facts_stats import (
    BoolArray,
    FloatArray,
    ks_test,
    median_error,
    roc_auc,
    rolling_sum,
    trailing_mean_std,
)

OUTCOME_MIN_HORIZON_MINUTES = 60
OUTCOME_MAX_HORIZON_MINUTES = 480
RETRACE_MIN_MOVE_SHARE = 0.25  # retraces count once the move reached a quarter of its peak
SQUEEZE_WINDOW_MINUTES = 15
SQUEEZE_MATCH_SLACK_MS = 30 * MINUTE_MS
ALERT_GAP_MS = 60 * MINUTE_MS  # alerts closer than this are one detector event
# 5m buckets inside absorptions needed to judge imbalance separability (≈ 15 absorptions; the
# precision's standard error is then ≤ 0.07, enough to tell 0.6 from a leak's 1.0).
ABSORPTION_MIN_POSITIVE_BUCKETS = 50


def measure_episodes(data: Series) -> list[EpisodeMeasurement]:
    levels = LevelFinder(data)
    measured: list[EpisodeMeasurement] = []
    for item in data.planted:
        horizon = int(
            min(
                OUTCOME_MAX_HORIZON_MINUTES,
                max(OUTCOME_MIN_HORIZON_MINUTES, (item.end_ms - item.trigger_ms) // MINUTE_MS),
            )
        )
        outcome, signed_return = _horizon_outcome(data, item, horizon)
        distance: float | None = None
        if item.kind == "absorption":
            distance = levels.absorption_distance(item.start_ms, item.end_ms)
        measured.append(
            EpisodeMeasurement(
                symbol=data.symbol,
                kind=item.kind,
                start_ms=item.start_ms,
                end_ms=item.end_ms,
                trigger_ms=item.trigger_ms,
                direction=item.direction,
                outcome=item.outcome,
                measured_outcome=outcome,
                measured_return_log=signed_return,
                horizon_minutes=horizon,
                start_minute_of_day=int(item.start_ms % DAY_MS // MINUTE_MS),
                retrace_depth=_retrace_depth(data, item) if item.kind == "squeeze" else None,
                oi_change=_oi_change(data, item.start_ms, item.end_ms),
                level_distance_hour_sigmas=distance,
                level_price=item.level_price,
                level_kind=item.level_kind,
            )
        )
    return measured


def _horizon_outcome(data: Series, item: Planted, horizon: int) -> tuple[str | None, float | None]:
    """Follow-through from the price path: the log return from the close at ``trigger_ms`` to
    the close ``horizon`` minutes later, signed by the episode's direction, is positive.

    The end point decides, not the first touch: a failed breakout or squeeze typically moves the
    right way first (the fake-out) and then reverses.
    """
    if item.sign == 0:
        return None, None
    entry = data.price_at(item.trigger_ms)
    stop_ms = min(item.trigger_ms + horizon * MINUTE_MS, data.start_ms + data.minutes * MINUTE_MS)
    later = data.price_at(stop_ms)
    if stop_ms <= item.trigger_ms or not (math.isfinite(entry) and math.isfinite(later)):
        return None, None
    signed = item.sign * math.log(later / entry)
    return ("follow_through" if signed > 0 else "failed"), signed


def _retrace_depth(data: Series, item: Planted) -> float | None:
    """Deepest pullback before the window's peak, as a share of the move made so far."""
    if item.sign == 0:
        return None
    first = data.minute_index(item.start_ms)
    stop = min(data.minutes, data.minute_index(item.end_ms))
    entry = data.price_at(item.start_ms)
    path = data.close_filled[first:stop]
    if path.size < 3 or not math.isfinite(entry):
        return None
    progress = item.sign * np.log(path / entry)
    peak_index = int(np.argmax(progress))
    peak = float(progress[peak_index])
    if peak <= 0:
        return None
    running = np.maximum.accumulate(progress[: peak_index + 1])
    counted = running >= RETRACE_MIN_MOVE_SHARE * peak
    if not counted.any():
        return 0.0
    pullback = (running - progress[: peak_index + 1])[counted] / running[counted]
    return float(min(1.0, pullback.max()))


def _oi_at(data: Series, time_ms: int) -> float:
    """Open interest of the latest 5-minute row at or before ``time_ms``."""
    row = int(np.searchsorted(data.oi_time_ms, time_ms, side="right")) - 1
    return float(data.oi_base[row]) if row >= 0 else math.nan


def _oi_change(data: Series, start_ms: int, end_ms: int) -> float | None:
    before = _oi_at(data, start_ms)
    after = _oi_at(data, end_ms)
    if not (math.isfinite(before) and math.isfinite(after)) or before <= 0:
        return None
    return after / before - 1.0


def outcome_facts(
    symbols: Sequence[str], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    facts: list[Fact] = []
    band = Band(0.55, 0.65, ISSUE + ": follow-through 55–65 %, failures common")
    for kind in EPISODE_KINDS:
        path: dict[str, float | None] = {}
        path_error: dict[str, float | None] = {}
        path_samples: dict[str, int] = {}
        label: dict[str, float | None] = {}
        label_error: dict[str, float | None] = {}
        label_samples: dict[str, int] = {}
        agree: dict[str, float | None] = {}
        agree_error: dict[str, float | None] = {}
        agree_samples: dict[str, int] = {}
        by_direction: dict[str, dict[str, Any]] = {}
        for column in columns_of(symbols):
            items = [
                item for item in episodes_of(measured, column, kind) if item.outcome != "decoy"
            ]
            judged = [item for item in items if item.measured_outcome is not None]
            hits = sum(item.measured_outcome == "follow_through" for item in judged)
            path[column], path_error[column] = rate(hits, len(judged))
            path_samples[column] = len(judged)
            labelled = [item for item in items if item.outcome in ("follow_through", "failed")]
            label_hits = sum(item.outcome == "follow_through" for item in labelled)
            label[column], label_error[column] = rate(label_hits, len(labelled))
            label_samples[column] = len(labelled)
            both = [item for item in labelled if item.measured_outcome is not None]
            matches = sum(item.outcome == item.measured_outcome for item in both)
            agree[column], agree_error[column] = rate(matches, len(both))
            agree_samples[column] = len(both)
            if column == POOLED:
                for direction in ("up", "down"):
                    sided = [item for item in judged if item.direction == direction]
                    sided_labelled = [item for item in labelled if item.direction == direction]
                    by_direction[direction] = {
                        "count": len(sided),
                        "measured_follow_through": rate(
                            sum(i.measured_outcome == "follow_through" for i in sided),
                            len(sided),
                        )[0],
                        "labelled_follow_through": rate(
                            sum(i.outcome == "follow_through" for i in sided_labelled),
                            len(sided_labelled),
                        )[0],
                    }
        facts.append(
            Fact(
                key=f"follow_through_measured.{kind}",
                title=f"{kind}: follow-through (price path)",
                group="outcome of planted episodes",
                values=path,
                errors=path_error,
                samples=path_samples,
                band=band,
                detail={"by_direction": by_direction},
            )
        )
        facts.append(
            Fact(
                key=f"follow_through_labelled.{kind}",
                title=f"{kind}: follow-through (outcome label)",
                group="outcome of planted episodes",
                values=label,
                errors=label_error,
                samples=label_samples,
                band=band,
            )
        )
        facts.append(
            Fact(
                key=f"outcome_agreement.{kind}",
                title=f"{kind}: label agrees with price path",
                group="outcome of planted episodes",
                values=agree,
                errors=agree_error,
                samples=agree_samples,
                band=Band(0.7, 1.0, DERIVED + ": a label must describe the path"),
            )
        )
    return facts


def _five_minute_imbalance(data: Series) -> tuple[FloatArray, FloatArray]:
    """Taker imbalance (buy − sell) / volume per 5-minute bucket, and each bucket's volume."""
    buckets = data.minutes // 5
    volume = data.volume[: buckets * 5].reshape(buckets, 5).sum(axis=1)
    buys = data.taker_buy_volume[: buckets * 5].reshape(buckets, 5).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        imbalance = np.where(volume > 0, (2 * buys - volume) / volume, math.nan)
    return imbalance, volume


def _squeeze_alerts(data: Series) -> list[tuple[int, int]]:
    """The textbook squeeze rule (reference §1.2) on closed one-minute bars: (time_ms, sign)."""
    minutes = data.minutes
    window = SQUEEZE_WINDOW_MINUTES
    close = data.close_filled
    ret = np.full(minutes, math.nan)
    ret[window:] = close[window:] / close[:-window] - 1.0
    mean, std = trailing_mean_std(ret, MINUTES_PER_DAY)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_ret = (ret - mean) / std
    close_ms = data.start_ms + (np.arange(minutes) + 1) * MINUTE_MS
    oi_row = np.searchsorted(data.oi_time_ms, close_ms, side="right") - 1
    oi = np.where(oi_row >= 0, data.oi_base[np.maximum(oi_row, 0)], math.nan)
    d_oi = np.full(minutes, math.nan)
    d_oi[window:] = oi[window:] / oi[:-window] - 1.0
    funding_row = np.searchsorted(data.funding_time_ms, close_ms, side="right") - 1
    funding = np.where(funding_row >= 0, data.funding_rate[np.maximum(funding_row, 0)], 0.0001)
    volume = rolling_sum(data.volume, window)
    buys = rolling_sum(data.taker_buy_volume, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        buy_share = buys / volume
    delta = 2 * buys - volume
    short_squeeze = (
        (z_ret >= 2.0) & (d_oi <= -0.005) & (funding < 0.0001) & (delta > 0) & (buy_share >= 0.55)
    )
    long_squeeze = (
        (z_ret <= -2.0) & (d_oi <= -0.005) & (funding > 0.0001) & (delta < 0) & (buy_share <= 0.45)
    )
    alerts: list[tuple[int, int]] = []
    last_ms = {1: -(10**15), -1: -(10**15)}
    for minute in np.flatnonzero(short_squeeze | long_squeeze):
        sign = 1 if short_squeeze[minute] else -1
        time_ms = int(close_ms[minute])
        if time_ms - last_ms[sign] > ALERT_GAP_MS:
            alerts.append((time_ms, sign))
        last_ms[sign] = time_ms
    return alerts


def separability_facts(
    series: dict[str, Series], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    buckets: dict[str, tuple[FloatArray, FloatArray, BoolArray]] = {}
    squeeze_precision: dict[str, float | None] = {}
    squeeze_error: dict[str, float | None] = {}
    squeeze_samples: dict[str, int] = {}
    pooled_alerts = [0, 0]
    for symbol, data in series.items():
        absorptions = [
            (item.start_ms, item.end_ms)
            for item in data.planted
            if item.kind == "absorption" and item.real
        ]
        imbalance, volume = _five_minute_imbalance(data)
        inside = mask_of(data, absorptions)
        count = imbalance.size
        positive: BoolArray = np.asarray(inside[: count * 5].reshape(count, 5).any(axis=1))
        buckets[symbol] = (imbalance, volume, positive)
        squeezes = [item for item in data.planted if item.kind == "squeeze" and item.real]
        alerts = _squeeze_alerts(data)
        true_alerts = sum(
            any(
                item.sign == sign
                and item.start_ms <= time_ms < item.end_ms + SQUEEZE_MATCH_SLACK_MS
                for item in squeezes
            )
            for time_ms, sign in alerts
        )
        squeeze_precision[symbol], squeeze_error[symbol] = rate(true_alerts, len(alerts))
        squeeze_samples[symbol] = len(alerts)
        pooled_alerts[0] += true_alerts
        pooled_alerts[1] += len(alerts)
    squeeze_precision[POOLED], squeeze_error[POOLED] = rate(*pooled_alerts)
    squeeze_samples[POOLED] = pooled_alerts[1]
    return [
        *imbalance_separability_facts(buckets),
        Fact(
            key="squeeze_rule_precision",
            title="squeeze: precision of the textbook rule (§1.2)",
            group="separability",
            values=squeeze_precision,
            errors=squeeze_error,
            samples=squeeze_samples,
            band=Band(0.3, 0.6, ISSUE + ": precision 0.3–0.6"),
        ),
    ]


def imbalance_separability_facts(
    buckets: dict[str, tuple[FloatArray, FloatArray, BoolArray]],
) -> list[Fact]:
    """How well |5-minute taker imbalance| alone finds absorptions. ``buckets`` maps a symbol to
    its 5m buckets' imbalance, volume and whether each overlaps a non-decoy absorption.

    Both rows are one-sided claims that a leak breaks: AUC ≤ 0.9 and the precision of the top-n
    buckets (n = positives) ≤ 0.6. Each needs ``ABSORPTION_MIN_POSITIVE_BUCKETS`` positives.
    """
    auc: dict[str, float | None] = {}
    precision: dict[str, float | None] = {}
    precision_error: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    detail: dict[str, Any] = {}
    for symbol, (imbalance, volume, positive) in buckets.items():
        usable = np.isfinite(imbalance) & (volume > 0)
        scores = np.abs(imbalance[usable])
        labels = positive[usable]
        count_positive = int(labels.sum())
        samples[symbol] = count_positive
        auc[symbol] = roc_auc(scores, labels)
        if count_positive == 0:
            precision[symbol] = None
            continue
        top = np.argsort(-scores, kind="stable")[:count_positive]
        precision[symbol], precision_error[symbol] = rate(int(labels[top].sum()), count_positive)
        base_rate = count_positive / labels.size
        detail[symbol] = {
            "positive_buckets": count_positive,
            "buckets": int(labels.size),
            "base_rate": base_rate,
            "lift": (precision[symbol] or 0.0) / base_rate,
            "lowest_top_abs_imbalance": float(scores[top].min()),
        }
    return [
        Fact(
            key="absorption_imbalance_auc",
            title="absorption: AUC of |5m taker imbalance|",
            group="separability",
            values=auc,
            samples=samples,
            band=Band(0.5, 0.9, DERIVED + ": imbalance alone is a weak edge (now 0.994)"),
            min_samples=ABSORPTION_MIN_POSITIVE_BUCKETS,
        ),
        Fact(
            key="absorption_imbalance_precision",
            title="absorption: precision of top-|imbalance| 5m buckets",
            group="separability",
            values=precision,
            errors=precision_error,
            samples=samples,
            band=Band(0.0, 0.6, ISSUE + ": a good setup is a weak edge, precision 0.3–0.6"),
            detail=detail,
            min_samples=ABSORPTION_MIN_POSITIVE_BUCKETS,
        ),
    ]


def _hour_weights(series: dict[str, Series], symbols: Sequence[str]) -> FloatArray:
    """Share of trades per UTC hour of day over the window (the activity the timing is tested
    against)."""
    counts = np.zeros(24)
    for symbol in symbols:
        data = series[symbol]
        hours = (np.arange(data.minutes) // 60 + data.start_ms // HOUR_MS) % 24
        counts += np.bincount(hours, weights=data.trade_count, minlength=24)
    total = counts.sum()
    return counts / total if total > 0 else np.full(24, 1 / 24)


def _minute_of_day_cdf(weights: FloatArray) -> Callable[[FloatArray], FloatArray]:
    """CDF over minute-of-day [0, 1440) with a density constant within each hour."""
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])

    def cdf(minutes: FloatArray) -> FloatArray:
        hour = np.clip((minutes // 60).astype(np.int64), 0, 23)
        within = cumulative[hour] + weights[hour] * (minutes - hour * 60) / 60.0
        return np.asarray(within, dtype=np.float64)

    return cdf


def timing_facts(
    series: dict[str, Series], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    facts: list[Fact] = []
    symbols = list(series)
    for kind in EPISODE_KINDS:
        values: dict[str, float | None] = {}
        samples: dict[str, int] = {}
        detail: dict[str, Any] = {}
        for column in columns_of(symbols):
            chosen = symbols if column == POOLED else [column]
            starts = np.asarray(
                [item.start_minute_of_day + 0.5 for item in episodes_of(measured, column, kind)],
                dtype=np.float64,
            )
            samples[column] = int(starts.size)
            if starts.size < 5:
                continue
            weighted = ks_test(starts, _minute_of_day_cdf(_hour_weights(series, chosen)))
            uniform = ks_test(starts, _minute_of_day_cdf(np.full(24, 1 / 24)))
            # Not concentrated = consistent with activity-weighted OR clock-uniform hours: both
            # are "any hour"; a clock-bound schedule fails both.
            values[column] = max(weighted[1], uniform[1])
            hours = np.bincount((starts // 60).astype(np.int64), minlength=24)
            detail[column] = {
                "ks_p_activity": weighted[1],
                "ks_d_activity": weighted[0],
                "ks_p_uniform": uniform[1],
                "ks_d_uniform": uniform[0],
                "starts_per_hour": hours.tolist(),
            }
        facts.append(
            Fact(
                key=f"start_hour_ks_p.{kind}",
                title=f"{kind}: start time KS p (activity-weighted or uniform hours)",
                group="timing",
                values=values,
                samples=samples,
                band=Band(0.001, None, ISSUE + ": any hour, any funding settlement"),
                detail=detail,
            )
        )
    return facts


def count_facts(
    symbols: Sequence[str], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    facts: list[Fact] = []
    for kind in EPISODE_KINDS:
        counts: dict[str, float | None] = {}
        decoys: dict[str, float | None] = {}
        up_share: dict[str, float | None] = {}
        up_error: dict[str, float | None] = {}
        up_samples: dict[str, int] = {}
        for column in columns_of(symbols):
            items = episodes_of(measured, column, kind)
            real = [item for item in items if item.outcome != "decoy"]
            if column != POOLED:
                counts[column] = float(len(real))
            decoys[column] = float(len(items) - len(real))
            directed = [item for item in real if item.direction is not None]
            up_share[column], up_error[column] = rate(
                sum(item.direction == "up" for item in directed), len(directed)
            )
            up_samples[column] = len(directed)
        facts.append(
            Fact(
                key=f"count.{kind}",
                title=f"{kind}: episodes (not decoys)",
                group="counts",
                values=counts,
                band=Band(30.0, None, ISSUE + ": ≥ 30 per 90 days to measure hit rates"),
            )
        )
        facts.append(
            Fact(key=f"decoys.{kind}", title=f"{kind}: decoys", group="counts", values=decoys)
        )
        facts.append(
            Fact(
                key=f"up_share.{kind}",
                title=f"{kind}: share of episodes going up",
                group="counts",
                values=up_share,
                errors=up_error,
                samples=up_samples,
                band=Band(0.5, 0.5, ISSUE + ": both directions (symmetric)"),
            )
        )
    return facts


def retrace_fact(symbols: Sequence[str], measured: dict[str, list[EpisodeMeasurement]]) -> Fact:
    values: dict[str, float | None] = {}
    errors: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for column in columns_of(symbols):
        depths = squeeze_values(measured, column, lambda item: item.retrace_depth)
        samples[column] = int(depths.size)
        if depths.size:
            values[column] = float(np.median(depths))
            errors[column] = median_error(depths)
    return Fact(
        key="squeeze_retrace_depth",
        title="squeeze: deepest retrace before the peak (median)",
        group="squeeze path",
        values=values,
        errors=errors,
        samples=samples,
        band=Band(0.3, 0.6, ISSUE + ": jagged, 30–60 % retraces"),
    )

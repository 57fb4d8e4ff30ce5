"""Tape and contract facts: trade sizes, funding, the funding fake edge, open interest."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ingmon.exchange._facts_data import DAY_MS, MINUTE_MS, MINUTES_PER_DAY, Series
from ingmon.exchange._facts_rows import (
    DERIVED,
    GABAIX,
    ISSUE,
    Band,
    EpisodeMeasurement,
    Fact,
    columns_of,
    episodes_of,
    rate,
)
from ingmon.exchange._facts_stats import TAIL_FRACTION, FloatArray, block_jackknife, hill_tail_index

TAKER_FEE_RATE = 0.0005  # Binance USD-M VIP 0 taker fee per side
FUNDING_HOT_RATE = 0.0005  # |funding| above 0.05 % per settlement: a hot market
FUNDING_MILD_NEGATIVE_RATE = -0.0002  # real negatives are mostly above −0.02 %
FAKE_EDGE_HORIZON_MINUTES = 480  # forward return after a funding settlement: 8 hours


def _top_share(notional: FloatArray) -> float:
    """Share of all notional held by the largest 1 % of trades."""
    count_top = max(1, notional.size // 100)
    top = np.partition(notional, notional.size - count_top)[notional.size - count_top :]
    return float(top.sum() / notional.sum())


def trade_size_facts(series: dict[str, Series]) -> list[Fact]:
    alpha: dict[str, float | None] = {}
    alpha_error: dict[str, float | None] = {}
    top_share: dict[str, float | None] = {}
    top_share_error: dict[str, float | None] = {}
    median: dict[str, float | None] = {}
    round_excess: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for symbol, data in series.items():
        notional = data.trade_notional
        samples[symbol] = int(notional.size)
        if notional.size < 1000:
            continue
        alpha[symbol] = hill_tail_index(notional)
        alpha_error[symbol] = alpha[symbol] / math.sqrt(notional.size * TAIL_FRACTION)  # type: ignore[operator]
        top_share[symbol] = _top_share(notional)
        top_share_error[symbol] = block_jackknife(notional, _top_share)
        median[symbol] = float(np.median(notional))
        if data.round_lot_expected > 0:
            round_excess[symbol] = data.round_lot_trades / data.round_lot_expected
    return [
        Fact(
            key="trade_size_tail_alpha",
            title="trade notional tail exponent (Hill, top 1 %)",
            group="trade sizes",
            values=alpha,
            errors=alpha_error,
            samples=samples,
            band=Band(1.3, 2.0, ISSUE + "; " + GABAIX),
        ),
        Fact(
            key="trade_notional_top1pct_share",
            title="share of notional in the top 1 % of trades",
            group="trade sizes",
            values=top_share,
            errors=top_share_error,
            samples=samples,
            band=Band(0.30, 0.50, ISSUE),
        ),
        Fact(
            key="trade_notional_median_usdt",
            title="median trade notional (USDT)",
            group="trade sizes",
            values=median,
            samples=samples,
        ),
        Fact(
            key="round_lot_excess",
            title="round-lot trades ÷ chance (one significant digit)",
            group="trade sizes",
            values=round_excess,
            band=Band(2.0, None, DERIVED + ": round-lot clusters (issue 8)"),
        ),
    ]


def funding_facts(series: dict[str, Series]) -> list[Fact]:
    hot: dict[str, float | None] = {}
    hot_error: dict[str, float | None] = {}
    negative: dict[str, float | None] = {}
    minimum: dict[str, float | None] = {}
    mild: dict[str, float | None] = {}
    mild_error: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for symbol, data in series.items():
        rates = data.funding_rate
        samples[symbol] = int(rates.size)
        if rates.size == 0:
            continue
        hot[symbol], hot_error[symbol] = rate(
            int(np.count_nonzero(np.abs(rates) > FUNDING_HOT_RATE)), int(rates.size)
        )
        negative[symbol] = float(np.mean(rates < 0))
        minimum[symbol] = float(rates.min())
        below = rates[rates < 0]
        mild[symbol], mild_error[symbol] = rate(
            int(np.count_nonzero(below >= FUNDING_MILD_NEGATIVE_RATE)), int(below.size)
        )
    return [
        Fact(
            key="funding_share_abs_above_5bp",
            title="funding: share of |f| > 0.05 %",
            group="funding",
            values=hot,
            errors=hot_error,
            samples=samples,
            band=Band(0.0, 0.05, ISSUE + ": a few % (hot markets)"),
        ),
        Fact(
            key="funding_share_negative",
            title="funding: share negative",
            group="funding",
            values=negative,
            samples=samples,
        ),
        Fact(
            key="funding_min",
            title="funding: lowest rate",
            group="funding",
            values=minimum,
        ),
        Fact(
            key="funding_negatives_above_2bp_share",
            title="funding: share of negatives above −0.02 %",
            group="funding",
            values=mild,
            errors=mild_error,
            band=Band(0.5, 1.0, ISSUE + ": negatives mostly above −0.02 %"),
        ),
    ]


def fake_edge_fact(series: dict[str, Series]) -> Fact:
    values: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    detail: dict[str, Any] = {}
    for symbol, data in series.items():
        forward = []
        for time_ms in data.funding_time_ms.tolist():
            later = data.price_at(time_ms + FAKE_EDGE_HORIZON_MINUTES * MINUTE_MS)
            now = data.price_at(time_ms)
            forward.append(math.log(later / now) if now > 0 and later > 0 else math.nan)
        returns = np.asarray(forward, dtype=np.float64)
        valid = np.isfinite(returns)
        cheap = valid & (data.funding_rate < -FUNDING_HOT_RATE)
        samples[symbol] = int(cheap.sum())
        spread = float(returns[valid].std()) if valid.sum() > 2 else math.nan
        if cheap.any() and spread > 0:
            edge = float(returns[cheap].mean() - returns[valid].mean())
            values[symbol] = edge / (spread / math.sqrt(cheap.sum()))
            detail[symbol] = {
                "mean_forward_8h_log_return": float(returns[cheap].mean()),
                "share_above_3pct": float(np.mean(returns[cheap] > math.log(1.03))),
            }
        else:
            values[symbol] = 0.0  # no such settlement: no free lunch to take
    return Fact(
        key="fake_edge_z",
        title="8h return after funding < −0.05 % (z vs all settlements)",
        group="fake edge",
        values=values,
        samples=samples,
        band=Band(-3.0, 3.0, ISSUE + ": no such free lunch"),
        detail=detail,
    )


def open_interest_facts(
    series: dict[str, Series], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    turnover: dict[str, float | None] = {}
    turnover_error: dict[str, float | None] = {}
    drop: dict[str, float | None] = {}
    drop_error: dict[str, float | None] = {}
    drop_samples: dict[str, int] = {}
    symbols = list(series)
    for symbol, data in series.items():
        days = data.minutes // MINUTES_PER_DAY
        volume = data.volume[: days * MINUTES_PER_DAY].reshape(days, MINUTES_PER_DAY).sum(axis=1)
        inside = (data.oi_time_ms > data.start_ms) & (
            data.oi_time_ms <= data.start_ms + days * DAY_MS
        )
        day_of_row = (data.oi_time_ms[inside] - 1 - data.start_ms) // DAY_MS
        rows = np.bincount(day_of_row, minlength=days)
        mean_oi = np.bincount(
            day_of_row, weights=data.oi_base[inside], minlength=days
        ) / np.maximum(rows, 1)
        ratio = mean_oi[(volume > 0) & (rows > 0)] / volume[(volume > 0) & (rows > 0)]
        if ratio.size:
            turnover[symbol] = float(np.median(ratio))
            turnover_error[symbol] = 1.2533 * float(ratio.std()) / math.sqrt(ratio.size)
    for column in columns_of(symbols):
        changes = np.asarray(
            [
                -item.oi_change
                for item in episodes_of(measured, column, "squeeze")
                if item.outcome != "decoy" and item.oi_change is not None
            ],
            dtype=np.float64,
        )
        drop_samples[column] = int(changes.size)
        if changes.size:
            drop[column] = float(np.median(changes))
            drop_error[column] = (
                1.2533 * float(changes.std()) / math.sqrt(changes.size)
                if changes.size > 1
                else None
            )
    return [
        Fact(
            key="oi_to_daily_volume",
            title="open interest ÷ daily volume (median day)",
            group="open interest",
            values=turnover,
            errors=turnover_error,
            band=Band(0.5, 0.8, ISSUE),
        ),
        Fact(
            key="squeeze_oi_drop",
            title="open-interest drop inside a squeeze (median)",
            group="open interest",
            values=drop,
            errors=drop_error,
            samples=drop_samples,
            band=Band(0.02, 0.05, ISSUE),
        ),
    ]

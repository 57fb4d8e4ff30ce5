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
    POOLED,
    Band,
    EpisodeMeasurement,
    Fact,
    columns_of,
    rate,
    squeeze_values,
)
from ingmon.exchange._facts_stats import (
    TAIL_FRACTION,
    FloatArray,
    IntArray,
    block_jackknife,
    clustered_mean_error,
    hill_tail_index,
    median_error,
)

TAKER_FEE_RATE = 0.0005  # Binance USD-M VIP 0 taker fee per side
FUNDING_HOT_RATE = 0.0005  # |funding| above 0.05 % per settlement: a hot market
FUNDING_MILD_NEGATIVE_RATE = -0.0002  # real negatives are mostly above −0.02 %
FAKE_EDGE_HORIZON_MINUTES = 480  # forward return after a funding settlement: 8 hours
# The precursor: a settlement among the lowest 5 % of its symbol's funding rates. A calm market
# settles below 0 only 2–5 % of the time and below −0.02 % a handful of times in 90 days, too few
# to measure an edge; the lowest 5 % gives 14 per symbol in 90 days.
FAKE_EDGE_PRECURSOR_SHARE = 0.05
FAKE_EDGE_MIN_EVENTS = 20  # pooled precursor settlements below which the row is not judged


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


def fake_edge_facts(series: dict[str, Series]) -> list[Fact]:
    """The funding fake edge, from each symbol's settlements and the 8h log return after each."""
    settlements: dict[str, tuple[IntArray, FloatArray, FloatArray]] = {}
    for symbol, data in series.items():
        forward = []
        for time_ms in data.funding_time_ms.tolist():
            later = data.price_at(time_ms + FAKE_EDGE_HORIZON_MINUTES * MINUTE_MS)
            now = data.price_at(time_ms)
            forward.append(math.log(later / now) if now > 0 and later > 0 else math.nan)
        settlements[symbol] = (
            data.funding_time_ms,
            data.funding_rate,
            np.asarray(forward, dtype=np.float64),
        )
    return funding_precursor_facts(settlements)


def funding_precursor_facts(
    settlements: dict[str, tuple[IntArray, FloatArray, FloatArray]],
) -> list[Fact]:
    """Is unusually low funding a free lunch? ``settlements`` maps a symbol to its settlement
    times, funding rates and the 8h forward log return after each (NaN where unknown).

    The precursor is a settlement among the lowest ``FAKE_EDGE_PRECURSOR_SHARE`` of its symbol's
    rates (a calm market has too few negative ones to measure). Pooled over symbols, the mean
    forward return must be 0 and the share of rises ½, each within sampling error; standard
    errors are clustered by settlement time because the symbols co-move. Fewer than
    ``FAKE_EDGE_MIN_EVENTS`` pooled precursors is insufficient data, which fails.
    """
    event_time: list[int] = []
    event_return: list[float] = []
    detail: dict[str, Any] = {}
    for symbol, (time_ms, funding, forward) in settlements.items():
        valid = np.flatnonzero(np.isfinite(forward))
        if valid.size == 0:
            detail[symbol] = {"precursors": 0}
            continue
        count = math.ceil(FAKE_EDGE_PRECURSOR_SHARE * valid.size)
        chosen = valid[np.argsort(funding[valid], kind="stable")[:count]]
        returns = forward[chosen]
        event_time.extend(int(value) for value in time_ms[chosen])
        event_return.extend(float(value) for value in returns)
        detail[symbol] = {
            "precursors": int(chosen.size),
            "funding_threshold": float(funding[chosen].max()),
            "mean_forward_8h_log_return": float(returns.mean()),
            "up_share": float(np.mean(returns > 0)),
            "share_above_3pct": float(np.mean(returns > math.log(1.03))),
            "mean_forward_8h_log_return_all_settlements": float(forward[valid].mean()),
        }
    events = np.asarray(event_return, dtype=np.float64)
    clusters = np.asarray(event_time, dtype=np.int64)
    ups = (events > 0).astype(np.float64)
    samples = {POOLED: int(events.size)}
    mean: dict[str, float | None] = {POOLED: float(events.mean()) if events.size else None}
    up_share: dict[str, float | None] = {POOLED: float(ups.mean()) if events.size else None}
    detail["pooled"] = {"settlement_times": int(np.unique(clusters).size)}
    source = ISSUE + ": no such free lunch"
    return [
        Fact(
            key="fake_edge_mean_8h_return",
            title="8h log return after funding in its lowest 5 % (pooled)",
            group="fake edge",
            values=mean,
            errors={POOLED: clustered_mean_error(events, clusters)},
            samples=samples,
            band=Band(0.0, 0.0, source),
            detail=detail,
            min_samples=FAKE_EDGE_MIN_EVENTS,
        ),
        Fact(
            key="fake_edge_up_share",
            title="share of rises 8h after funding in its lowest 5 % (pooled)",
            group="fake edge",
            values=up_share,
            errors={POOLED: clustered_mean_error(ups, clusters)},
            samples=samples,
            band=Band(0.5, 0.5, source),
            min_samples=FAKE_EDGE_MIN_EVENTS,
        ),
    ]


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
            turnover_error[symbol] = median_error(ratio)
    for column in columns_of(symbols):
        changes = -squeeze_values(measured, column, lambda item: item.oi_change)
        drop_samples[column] = int(changes.size)
        if changes.size:
            drop[column] = float(np.median(changes))
            drop_error[column] = median_error(changes)
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

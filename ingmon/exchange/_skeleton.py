"""The per-minute skeleton of one symbol-day: price path, activity, flow, open interest, funding.

A day is a pure function of (the state at the start of the day, the day's random stream, the
planted episodes, the outage), so any day can be regenerated from its checkpoint and days only
ever depend on earlier days. Trade-level detail is generated later from this skeleton.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ingmon.exchange._episodes import PlannedEpisode
from ingmon.exchange._model import (
    DAY_MS,
    MINUTE_MS,
    MINUTES_PER_DAY,
    STREAM_SKELETON,
    BoolArray,
    FloatArray,
    IntArray,
    SymbolModel,
    ar1,
    rng_for,
    season_profile,
)

# Volatility: two log-vol AR(1) factors (hours and days) give GARCH-like clustering and regimes.
_FAST_HALF_LIFE_MINUTES = 180.0
_FAST_SD = 0.40
_SLOW_HALF_LIFE_MINUTES = 2880.0
_SLOW_SD = 0.35
_FAST_PHI = math.exp(-math.log(2.0) / _FAST_HALF_LIFE_MINUTES)
_SLOW_PHI = math.exp(-math.log(2.0) / _SLOW_HALF_LIFE_MINUTES)
_FAST_INNOVATION = _FAST_SD * math.sqrt(1.0 - _FAST_PHI**2)
_SLOW_INNOVATION = _SLOW_SD * math.sqrt(1.0 - _SLOW_PHI**2)
_ACTIVITY_VOL_ELASTICITY = 0.8  # busy markets are volatile markets
# E[exp(0.8·(fast+slow))] for the stationary factors, so mean activity stays trades_per_minute.
_ACTIVITY_NORM = math.exp(0.5 * _ACTIVITY_VOL_ELASTICITY**2 * (_FAST_SD**2 + _SLOW_SD**2))
_EPISODE_VOL_CLIP = (0.6, 1.6)  # planted episodes keep their shape whatever the regime
_STUDENT_DF = 5.0
_CALM_SHOCK_LIMIT = 2.5
_REVERSION_MINUTES = 60.0 * MINUTES_PER_DAY  # weak pull back to the listing price

# Flow: taker-buy probability follows the minute's return (aggression moves price).
_FLOW_AMPLITUDE = 0.22
_FLOW_SLOPE = 0.8
_UNDERLYING_PER_AGG = 1.3  # extra exchange trades per aggregate trade, on average

# Open interest: log deviation from a base level, mean-reverting over days; one-sided flow
# opens positions, tail moves liquidate them.
_OI_PHI = math.exp(-math.log(2.0) / (4.0 * MINUTES_PER_DAY))
_OI_FLOW = 0.001
_OI_NEUTRAL_IMBALANCE = 0.195  # E|2·buy_prob − 1| of ordinary minutes
_OI_LIQUIDATION = 0.0015
_OI_LIQUIDATION_SHOCK = 2.5
_OI_NOISE = 0.0004

# Premium of the perpetual over the index: AR(1) with a one-hour memory around a small positive
# mean, pushed by the flow (positioning).
_PREMIUM_PHI = math.exp(-1.0 / 60.0)
_PREMIUM_MEAN = 0.00005
_PREMIUM_FLOW = 0.0015
# Crowding: after a run-up longs pay more (and shorts after a sell-off) — the premium follows the
# price's distance from its ~12-hour exponential average.
_TREND_PHI = math.exp(-math.log(2.0) / 720.0)
_PREMIUM_TREND = 0.03
_PREMIUM_NOISE = 0.00015 * math.sqrt(1.0 - _PREMIUM_PHI**2)
# Binance: rate = P̄ + clamp(I − P̄, ±0.05 %), I = 0.01 % per 8 h; capped at ±0.75 %.
_INTEREST_PER_8H = 0.0001
_PREMIUM_CLAMP = 0.0005
_FUNDING_CAP = 0.0075


@dataclass(frozen=True)
class DayState:
    """Everything the next day needs from the previous one (a checkpoint)."""

    log_ticks: float
    vol_fast: float
    vol_slow: float
    oi_log: float
    premium: float
    trend_log_ticks: float  # slow exponential average of the log price
    close_ticks: int  # last traded price (true tick multiples)
    next_agg_id: int
    next_trade_id: int


@dataclass(frozen=True)
class DaySkeleton:
    """One symbol-day at minute resolution (arrays of 1440, index = minute of the UTC day)."""

    day: int
    state_in: DayState
    state_out: DayState
    present: BoolArray  # listed and not in an outage: the minute has a candle
    count: IntArray  # aggregate trades
    underlying: IntArray  # exchange trades covered by them
    close_ticks: IntArray  # last traded price after the minute (carried through quiet minutes)
    sigma_ticks: FloatArray  # intra-minute path amplitude
    buy_prob: FloatArray
    qty_mean_steps: FloatArray
    oi_steps: IntArray  # open interest at the end of the minute
    premium: FloatArray
    funding_time_ms: IntArray  # settlements in (day start, day end]
    funding_rate_e8: IntArray
    funding_mark_ticks: IntArray

    @property
    def start_ms(self) -> int:
        return self.day * DAY_MS


def initial_state(model: SymbolModel) -> DayState:
    """The state at the start of the listing day."""
    return DayState(
        log_ticks=model.initial_log_ticks,
        vol_fast=0.0,
        vol_slow=0.0,
        oi_log=0.0,
        premium=_PREMIUM_MEAN,
        trend_log_ticks=model.initial_log_ticks,
        close_ticks=max(1, round(math.exp(model.initial_log_ticks))),
        next_agg_id=0,
        next_trade_id=0,
    )


def build_day(
    model: SymbolModel,
    day: int,
    state: DayState,
    episodes: list[PlannedEpisode],
    outage: tuple[int, int] | None,
) -> DaySkeleton:
    """The skeleton of UTC day ``day`` starting from ``state``."""
    rng = rng_for(model.seed, model.key, STREAM_SKELETON, day)
    minutes = MINUTES_PER_DAY
    minute_ms = day * DAY_MS + np.arange(minutes, dtype=np.int64) * MINUTE_MS
    live = minute_ms >= model.listing_ms
    present = live.copy()
    if outage is not None:
        present[outage[0] : outage[1]] = False
    season = season_profile(day)
    # A fixed number of draws per day, in a fixed order: the stream never depends on the data.
    z_fast, z_slow, z_oi, z_premium = rng.standard_normal((4, minutes))
    shock = rng.standard_t(_STUDENT_DF, minutes) * math.sqrt((_STUDENT_DF - 2.0) / _STUDENT_DF)

    vol_mult = np.ones(minutes)
    count_mult = np.ones(minutes)
    qty_mult = np.ones(minutes)
    drift = np.zeros(minutes)
    buy_override = np.full(minutes, np.nan)
    oi_force = np.zeros(minutes)
    oi_gain = np.ones(minutes)
    premium_override = np.full(minutes, np.nan)
    in_episode = np.zeros(minutes, dtype=bool)
    pins: list[tuple[int, int, float]] = []
    for episode in episodes:
        for segment in episode.segments:
            lo, hi = segment.start_minute, segment.end_minute
            length = hi - lo
            vol_mult[lo:hi] = segment.vol_mult
            count_mult[lo:hi] = segment.count_mult
            qty_mult[lo:hi] = segment.qty_mult
            drift[lo:hi] = segment.drift_log / length
            oi_force[lo:hi] = segment.oi_log / length
            oi_gain[lo:hi] = segment.oi_flow_gain
            in_episode[lo:hi] = True
            if segment.buy_prob is not None:
                buy_override[lo:hi] = segment.buy_prob
            if segment.premium_target is not None:
                premium_override[lo:hi] = segment.premium_target
            if segment.pin_phi is not None:
                pins.append((lo, hi, segment.pin_phi))

    # Quiet episodes are quiet: no fat-tailed jumps inside them.
    calm = vol_mult < 1.0
    shock = np.where(calm, np.clip(shock, -_CALM_SHOCK_LIMIT, _CALM_SHOCK_LIMIT), shock)

    regime = ar1(z_fast * _FAST_INNOVATION, _FAST_PHI, state.vol_fast)
    slow = ar1(z_slow * _SLOW_INNOVATION, _SLOW_PHI, state.vol_slow)
    factor = np.exp(regime + slow)
    factor = np.where(in_episode, np.clip(factor, *_EPISODE_VOL_CLIP), factor)
    sigma = model.sigma_per_minute * factor * np.sqrt(season) * vol_mult
    intensity = (
        model.trades_per_minute
        * season
        * factor**_ACTIVITY_VOL_ELASTICITY
        / _ACTIVITY_NORM
        * count_mult
    )
    count = rng.poisson(intensity).astype(np.int64) * present

    reversion = -(state.log_ticks - model.initial_log_ticks) / _REVERSION_MINUTES
    returns = sigma * shock + drift + reversion
    for lo, hi, phi in pins:
        # Bounded noise around the planted drift: the episode's net move is reliable.
        deviation = ar1(sigma[lo:hi] * shock[lo:hi], phi, 0.0)
        returns[lo:hi] = drift[lo:hi] + np.diff(deviation, prepend=0.0)
    returns = np.where(live, returns, 0.0)
    log_ticks = state.log_ticks + np.cumsum(returns)
    latent_ticks = np.maximum(1, np.rint(np.exp(log_ticks))).astype(np.int64)
    # Only a trade moves the traded price: quiet minutes and outages carry the last one.
    traded = count > 0
    last_traded = np.maximum.accumulate(np.where(traded, np.arange(minutes), -1))
    close_ticks = np.where(
        last_traded >= 0, latent_ticks[np.maximum(last_traded, 0)], state.close_ticks
    ).astype(np.int64)

    buy_prob = 0.5 + _FLOW_AMPLITUDE * np.tanh(_FLOW_SLOPE * shock)
    buy_prob = np.where(np.isnan(buy_override), buy_prob, buy_override)

    imbalance = np.abs(2.0 * buy_prob - 1.0)
    flow = oi_gain * (count / model.trades_per_minute) * (imbalance - _OI_NEUTRAL_IMBALANCE)
    liquidation = np.clip(np.abs(shock) - _OI_LIQUIDATION_SHOCK, 0.0, None)
    oi_innovation = _OI_FLOW * flow - _OI_LIQUIDATION * liquidation + _OI_NOISE * z_oi + oi_force
    oi_log = ar1(np.where(live, oi_innovation, 0.0), _OI_PHI, state.oi_log)
    oi_steps = np.maximum(1, np.rint(model.oi_base_steps * np.exp(oi_log))).astype(np.int64)

    trend = ar1((1.0 - _TREND_PHI) * log_ticks, _TREND_PHI, state.trend_log_ticks)
    premium_target = (
        _PREMIUM_MEAN
        + _PREMIUM_FLOW * (2.0 * buy_prob - 1.0)
        + _PREMIUM_TREND * (log_ticks - trend)
    )
    premium_target = np.where(np.isnan(premium_override), premium_target, premium_override)
    premium = ar1(
        (1.0 - _PREMIUM_PHI) * premium_target + _PREMIUM_NOISE * z_premium,
        _PREMIUM_PHI,
        state.premium,
    )

    underlying = count + rng.poisson(count * _UNDERLYING_PER_AGG).astype(np.int64)

    funding_time_ms, funding_rate_e8, funding_mark_ticks = _settle_funding(
        model, day, live, premium, close_ticks
    )
    state_out = DayState(
        log_ticks=float(log_ticks[-1]),
        vol_fast=float(regime[-1]),
        vol_slow=float(slow[-1]),
        oi_log=float(oi_log[-1]),
        premium=float(premium[-1]),
        trend_log_ticks=float(trend[-1]),
        close_ticks=int(close_ticks[-1]),
        next_agg_id=state.next_agg_id + int(count.sum()),
        next_trade_id=state.next_trade_id + int(underlying.sum()),
    )
    return DaySkeleton(
        day=day,
        state_in=state,
        state_out=state_out,
        present=present,
        count=count,
        underlying=underlying,
        close_ticks=close_ticks,
        sigma_ticks=sigma * np.exp(log_ticks),
        buy_prob=buy_prob,
        qty_mean_steps=model.mean_qty_steps * qty_mult,
        oi_steps=oi_steps,
        premium=premium,
        funding_time_ms=funding_time_ms,
        funding_rate_e8=funding_rate_e8,
        funding_mark_ticks=funding_mark_ticks,
    )


def _settle_funding(
    model: SymbolModel,
    day: int,
    live: BoolArray,
    premium: FloatArray,
    close_ticks: IntArray,
) -> tuple[IntArray, IntArray, IntArray]:
    """Settlements at the end of each funding interval of the day, from its mean premium."""
    interval = model.funding_interval_minutes
    windows = MINUTES_PER_DAY // interval
    times = day * DAY_MS + np.arange(1, windows + 1, dtype=np.int64) * interval * MINUTE_MS
    live_windows = live.reshape(windows, interval)
    live_minutes = live_windows.sum(axis=1)
    premium_sum = np.where(live_windows, premium.reshape(windows, interval), 0.0).sum(axis=1)
    mean_premium = premium_sum / np.maximum(live_minutes, 1)
    interest = _INTEREST_PER_8H * interval / 480.0
    rate = mean_premium + np.clip(interest - mean_premium, -_PREMIUM_CLAMP, _PREMIUM_CLAMP)
    rate_e8 = np.rint(np.clip(rate, -_FUNDING_CAP, _FUNDING_CAP) * 1e8).astype(np.int64)
    last_minute = np.arange(1, windows + 1) * interval - 1
    # The mark sits near the index: last price with part of the premium taken out.
    mark = close_ticks[last_minute] / (1.0 + 0.5 * premium[last_minute])
    mark_ticks = np.maximum(1, np.rint(mark)).astype(np.int64)
    keep = times > model.listing_ms
    return times[keep], rate_e8[keep], mark_ticks[keep]

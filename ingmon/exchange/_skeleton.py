"""The per-minute skeleton of one symbol-day: price path, activity, flow, open interest, funding.

A day is a pure function of (the state at the start of the day, the day's random streams, the
market factor of the day, the outage), so any day can be regenerated from its checkpoint and days
only ever depend on earlier days. Episodes are resolved here (absorptions need the price path)
and their unfinished segments travel to the next day in the state. Trade-level detail is
generated later from this skeleton; the skeleton already knows each minute's exact volume.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ingmon.exchange._episodes import (
    DayDraw,
    EpisodeRates,
    Occupancy,
    PlannedEpisode,
    accept_scheduled,
    draw_day,
    outage_spans,
    place_absorption,
)
from ingmon.exchange._factor import LOG_VOL_VARIANCE, FactorDay, factor_day
from ingmon.exchange._levels import NO_LEVELS, Levels, session_levels
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
from ingmon.exchange._sizes import trade_quantities

# Idiosyncratic volatility on top of the market factor's: hours and days, small (regimes are
# mostly shared, as in real markets).
_IDIO_FAST_HALF_LIFE_MINUTES = 180.0
_IDIO_FAST_SD = 0.1
_IDIO_SLOW_HALF_LIFE_MINUTES = 2880.0
_IDIO_SLOW_SD = 0.08
_IDIO_FAST_PHI = math.exp(-math.log(2.0) / _IDIO_FAST_HALF_LIFE_MINUTES)
_IDIO_SLOW_PHI = math.exp(-math.log(2.0) / _IDIO_SLOW_HALF_LIFE_MINUTES)
_IDIO_FAST_INNOVATION = _IDIO_FAST_SD * math.sqrt(1.0 - _IDIO_FAST_PHI**2)
_IDIO_SLOW_INNOVATION = _IDIO_SLOW_SD * math.sqrt(1.0 - _IDIO_SLOW_PHI**2)
_ACTIVITY_VOL_ELASTICITY = 0.8  # busy markets are volatile markets
# E[exp(0.8·log_vol)] of the stationary factors, so mean activity stays trades_per_minute.
_ACTIVITY_NORM = math.exp(
    0.5 * _ACTIVITY_VOL_ELASTICITY**2 * (LOG_VOL_VARIANCE + _IDIO_FAST_SD**2 + _IDIO_SLOW_SD**2)
)
# Volume spikes with the minute's move: activity ∝ (1 − w) + w·|move| / E|move|.
_ACTIVITY_MOVE_WEIGHT = 0.45
_EPISODE_VOL_CLIP = (0.6, 1.6)  # planted episodes keep their shape whatever the regime
_STUDENT_DF = 5.0
_CALM_SHOCK_LIMIT = 2.5
_REVERSION_MINUTES = 60.0 * MINUTES_PER_DAY  # weak pull back to the listing price

# Flow: taker-buy probability follows the minute's return (aggression moves price), plus a
# persistent part of its own (order signs are autocorrelated: Lillo & Farmer 2004), so one-sided
# flow is common and imbalance alone is a weak signal.
_FLOW_AMPLITUDE = 0.22
_FLOW_SLOPE = 0.8
_FLOW_PHI = math.exp(-math.log(2.0) / 10.0)
_FLOW_INNOVATION = 0.14 * math.sqrt(1.0 - _FLOW_PHI**2)
_BUY_PROB_CLIP = (0.05, 0.95)
_UNDERLYING_PER_AGG = 1.3  # extra exchange trades per aggregate trade, on average

# Open interest: log deviation from a base level, mean-reverting over days; one-sided flow
# opens positions, tail moves liquidate them.
_OI_PHI = math.exp(-math.log(2.0) / (4.0 * MINUTES_PER_DAY))
_OI_FLOW = 0.0006
_OI_NEUTRAL_IMBALANCE = 0.26  # E|2·buy_prob − 1| of ordinary minutes
_OI_LIQUIDATION = 0.004
_OI_LIQUIDATION_SHOCK = 2.2


def _mean_liquidation_excess() -> float:
    """E[(|shock| − _OI_LIQUIDATION_SHOCK)+] for a unit-variance Student-t(5) shock (numeric)."""
    scale = math.sqrt((_STUDENT_DF - 2.0) / _STUDENT_DF)
    grid = np.linspace(_OI_LIQUIDATION_SHOCK, 60.0, 200_001)
    t = grid / scale
    norm = math.gamma((_STUDENT_DF + 1) / 2) / (
        math.sqrt(_STUDENT_DF * math.pi) * math.gamma(_STUDENT_DF / 2)
    )
    density = norm * (1.0 + t * t / _STUDENT_DF) ** (-(_STUDENT_DF + 1) / 2) / scale
    return float(2.0 * np.trapezoid((grid - _OI_LIQUIDATION_SHOCK) * density, grid))


# New positions open at the rate liquidations close them on average, so tail moves leave dents
# in open interest, not a lower level.
_OI_OPENING = _OI_LIQUIDATION * _mean_liquidation_excess()
_OI_NOISE = 0.0004

# Premium of the perpetual over the index: AR(1) with a one-hour memory around a small positive
# mean, pushed by the flow (positioning) and, weakly, by the price's distance from its ~12-hour
# average (crowding after a run). Calm enough that funding mostly sits at the 0.01 % baseline.
_PREMIUM_PHI = math.exp(-1.0 / 60.0)
PREMIUM_MEAN = 0.0004  # just inside the dead band: the rate is mostly the 0.01 % baseline
_PREMIUM_FLOW = 0.0004
_TREND_PHI = math.exp(-math.log(2.0) / 720.0)
_PREMIUM_TREND = 0.008
_PREMIUM_NOISE = 0.00015 * math.sqrt(1.0 - _PREMIUM_PHI**2)
# Positioning regimes over days move the premium's level: funding sits below the baseline for a
# while without any squeeze following (real funding has such stretches in every bear phase).
_PREMIUM_REGIME_PHI = math.exp(-math.log(2.0) / (2.0 * MINUTES_PER_DAY))
_PREMIUM_REGIME_INNOVATION = 0.00025 * math.sqrt(1.0 - _PREMIUM_REGIME_PHI**2)
# Binance: rate = P̄ + clamp(I − P̄, ±0.05 %), I = 0.01 % per 8 h; capped at ±0.75 %.
_INTEREST_PER_8H = 0.0001
_PREMIUM_CLAMP = 0.0005
_FUNDING_CAP = 0.0075


@dataclass(frozen=True)
class DayState:
    """Everything the next day needs from the previous one (a checkpoint)."""

    log_ticks: float
    vol_fast: float  # idiosyncratic log-volatility components
    vol_slow: float
    oi_log: float
    premium: float
    trend_log_ticks: float  # slow exponential average of the log price
    close_ticks: int  # last traded price (true tick multiples)
    next_agg_id: int
    next_trade_id: int
    premium_regime: float = 0.0
    flow: float = 0.0  # persistent part of the taker-buy probability
    levels: Levels = NO_LEVELS  # the previous session's profile levels
    carried: tuple[PlannedEpisode, ...] = ()  # episodes still running at the day's start


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
    volume_steps: IntArray  # exact: Σ of the trades' quantities (true steps)
    oi_steps: IntArray  # open interest at the end of the minute
    premium: FloatArray
    funding_time_ms: IntArray  # settlements in (day start, day end]
    funding_rate_e8: IntArray
    funding_mark_ticks: IntArray
    episodes: tuple[PlannedEpisode, ...]  # resolved episodes planned on this day

    @property
    def start_ms(self) -> int:
        return self.day * DAY_MS


@dataclass
class _Overrides:
    """Per-minute dynamics of the planted episodes (neutral where there are none)."""

    vol_mult: FloatArray = field(default_factory=lambda: np.ones(MINUTES_PER_DAY))
    count_mult: FloatArray = field(default_factory=lambda: np.ones(MINUTES_PER_DAY))
    qty_mult: FloatArray = field(default_factory=lambda: np.ones(MINUTES_PER_DAY))
    drift: FloatArray = field(default_factory=lambda: np.zeros(MINUTES_PER_DAY))
    buy_prob: FloatArray = field(default_factory=lambda: np.full(MINUTES_PER_DAY, np.nan))
    oi_force: FloatArray = field(default_factory=lambda: np.zeros(MINUTES_PER_DAY))
    oi_gain: FloatArray = field(default_factory=lambda: np.ones(MINUTES_PER_DAY))
    premium: FloatArray = field(default_factory=lambda: np.full(MINUTES_PER_DAY, np.nan))
    in_episode: BoolArray = field(default_factory=lambda: np.zeros(MINUTES_PER_DAY, dtype=bool))
    pins: list[tuple[int, int, float]] = field(default_factory=list)

    def apply(self, episode: PlannedEpisode, day_minute: int) -> None:
        """Write the episode's segments that fall in this day (backgrounds first)."""
        for segment in sorted(episode.segments, key=lambda item: not item.background):
            lo = max(segment.start_minute, day_minute) - day_minute
            hi = min(segment.end_minute, day_minute + MINUTES_PER_DAY) - day_minute
            if lo >= hi:
                continue
            length = segment.end_minute - segment.start_minute
            self.vol_mult[lo:hi] = segment.vol_mult
            self.count_mult[lo:hi] = segment.count_mult
            self.qty_mult[lo:hi] = segment.qty_mult
            self.drift[lo:hi] = segment.drift_log / length
            self.oi_force[lo:hi] = segment.oi_log / length
            self.oi_gain[lo:hi] = segment.oi_flow_gain
            self.in_episode[lo:hi] = True
            if segment.buy_prob is not None:
                self.buy_prob[lo:hi] = segment.buy_prob
            if segment.premium_target is not None:
                self.premium[lo:hi] = segment.premium_target
            if segment.pin_phi is not None:
                self.pins.append((lo, hi, segment.pin_phi))


@dataclass(frozen=True)
class _Draws:
    """The day's idiosyncratic random numbers: a fixed count in a fixed order."""

    z_fast: FloatArray
    z_slow: FloatArray
    z_oi: FloatArray
    z_premium: FloatArray
    z_regime: FloatArray
    z_flow: FloatArray
    shock: FloatArray  # Student-t, unit variance
    rng: np.random.Generator  # continues with the activity draws


def initial_state(model: SymbolModel) -> DayState:
    """The state at the start of the listing day."""
    return DayState(
        log_ticks=model.initial_log_ticks,
        vol_fast=0.0,
        vol_slow=0.0,
        oi_log=0.0,
        premium=PREMIUM_MEAN,
        trend_log_ticks=model.initial_log_ticks,
        close_ticks=max(1, round(math.exp(model.initial_log_ticks))),
        next_agg_id=0,
        next_trade_id=0,
    )


def build_day(
    model: SymbolModel,
    day: int,
    state: DayState,
    *,
    outage: tuple[int, int] | None,
    rates: EpisodeRates,
) -> DaySkeleton:
    """The skeleton of UTC day ``day`` starting from ``state``."""
    minute_ms = day * DAY_MS + np.arange(MINUTES_PER_DAY, dtype=np.int64) * MINUTE_MS
    live = minute_ms >= model.listing_ms
    present = live.copy()
    if outage is not None:
        present[outage[0] : outage[1]] = False
    season = season_profile(day)
    draws = _draw(model, day)
    walk = _walk(model, day, state, live=live, season=season, draws=draws, rates=rates)
    move = np.abs(walk.shock) + np.abs(walk.jump) / model.sigma_per_minute
    count, qty_mean, volume, underlying = _activity(
        model,
        day,
        draws=draws,
        overrides=walk.overrides,
        log_vol=walk.log_vol,
        move=move,
        season=season,
        present=present,
    )
    close_ticks = _traded_closes(walk.log_ticks, count, state.close_ticks)
    flow, buy_prob = _taker_buy_prob(state, draws, walk)
    oi_log = _open_interest(
        model,
        state,
        draws=draws,
        overrides=walk.overrides,
        count=count,
        buy_prob=buy_prob,
        shock=walk.shock,
        live=live,
    )
    trend, regime, premium = _premium(state, draws, walk.overrides, walk.log_ticks, buy_prob)
    funding_time_ms, funding_rate_e8, funding_mark_ticks = _settle_funding(
        model, day, live, premium, close_ticks
    )
    state_out = replace(
        state,
        log_ticks=float(walk.log_ticks[-1]),
        vol_fast=float(walk.idio_fast[-1]),
        vol_slow=float(walk.idio_slow[-1]),
        oi_log=float(oi_log[-1]),
        premium=float(premium[-1]),
        trend_log_ticks=float(trend[-1]),
        premium_regime=float(regime[-1]),
        flow=float(flow[-1]),
        close_ticks=int(close_ticks[-1]),
        next_agg_id=state.next_agg_id + int(count.sum()),
        next_trade_id=state.next_trade_id + int(underlying.sum()),
        levels=session_levels(close_ticks[present], volume[present]),
        carried=_still_running((*state.carried, *walk.planted), (day + 1) * MINUTES_PER_DAY),
    )
    return DaySkeleton(
        day=day,
        state_in=state,
        state_out=state_out,
        present=present,
        count=count,
        underlying=underlying,
        close_ticks=close_ticks,
        sigma_ticks=walk.sigma * np.exp(walk.log_ticks),
        buy_prob=buy_prob,
        qty_mean_steps=qty_mean,
        volume_steps=volume,
        oi_steps=np.maximum(1, np.rint(model.oi_base_steps * np.exp(oi_log))).astype(np.int64),
        premium=premium,
        funding_time_ms=funding_time_ms,
        funding_rate_e8=funding_rate_e8,
        funding_mark_ticks=funding_mark_ticks,
        episodes=tuple(sorted(walk.planted, key=lambda episode: episode.start_minute)),
    )


def _still_running(
    episodes: tuple[PlannedEpisode, ...], day_end_minute: int
) -> tuple[PlannedEpisode, ...]:
    """Episodes with segments after the day's end (the next day applies the rest)."""
    return tuple(
        episode
        for episode in episodes
        if max(segment.end_minute for segment in episode.segments) > day_end_minute
    )


@dataclass(frozen=True)
class _Walk:
    """The day's price path with its episodes resolved."""

    overrides: _Overrides
    planted: tuple[PlannedEpisode, ...]  # episodes planned on this day
    log_ticks: FloatArray
    sigma: FloatArray
    log_vol: FloatArray
    idio_fast: FloatArray
    idio_slow: FloatArray
    shock: FloatArray
    jump: FloatArray


def _walk(
    model: SymbolModel,
    day: int,
    state: DayState,
    *,
    live: BoolArray,
    season: FloatArray,
    draws: _Draws,
    rates: EpisodeRates,
) -> _Walk:
    """Schedule the day's episodes, walk the price, then place absorptions on that walk."""
    factor = factor_day(model.seed, day)
    overrides = _Overrides()
    occupancy, scheduled = _schedule(model, day, state, live, rates)
    for episode in (*state.carried, *scheduled):
        overrides.apply(episode, day * MINUTES_PER_DAY)
    log_vol, idio_fast, idio_slow = _log_volatility(state, draws, factor)
    shock = _combined_shock(model, draws, factor)
    # The market-wide jump, scaled to this symbol's daily σ and its loading on the market.
    jump = model.market_beta * model.sigma_per_day * factor.jump_sigmas

    def path() -> tuple[FloatArray, FloatArray]:
        return _price_path(
            model,
            state,
            overrides=overrides,
            log_vol=log_vol,
            shock=shock,
            jump=jump,
            season=season,
            live=live,
        )

    absorptions = _place_absorptions(
        model, day, state, draws=draw_day(model, day, rates), occupancy=occupancy,
        overrides=overrides, path=path, live=live, rates=rates,
    )  # fmt: skip
    log_ticks, sigma = path()
    return _Walk(
        overrides=overrides,
        planted=(*scheduled, *absorptions),
        log_ticks=log_ticks,
        sigma=sigma,
        log_vol=log_vol,
        idio_fast=idio_fast,
        idio_slow=idio_slow,
        shock=shock,
        jump=jump,
    )


def _taker_buy_prob(state: DayState, draws: _Draws, walk: _Walk) -> tuple[FloatArray, FloatArray]:
    """(persistent flow, taker-buy probability) per minute; episodes override the latter."""
    flow = ar1(draws.z_flow * _FLOW_INNOVATION, _FLOW_PHI, state.flow)
    buy_prob = np.clip(
        0.5 + _FLOW_AMPLITUDE * np.tanh(_FLOW_SLOPE * walk.shock) + flow, *_BUY_PROB_CLIP
    )
    overridden = walk.overrides.buy_prob
    return flow, np.where(np.isnan(overridden), buy_prob, overridden)


def _draw(model: SymbolModel, day: int) -> _Draws:
    rng = rng_for(model.seed, model.key, STREAM_SKELETON, day)
    z_fast, z_slow, z_oi, z_premium, z_regime, z_flow = rng.standard_normal((6, MINUTES_PER_DAY))
    shock = rng.standard_t(_STUDENT_DF, MINUTES_PER_DAY) * math.sqrt(
        (_STUDENT_DF - 2.0) / _STUDENT_DF
    )
    return _Draws(z_fast, z_slow, z_oi, z_premium, z_regime, z_flow, shock, rng)


def _schedule(
    model: SymbolModel, day: int, state: DayState, live: BoolArray, rates: EpisodeRates
) -> tuple[Occupancy, list[PlannedEpisode]]:
    """The day's squeezes and breakouts that fit around running episodes and outages."""
    occupancy = Occupancy()
    for lo, hi in outage_spans(model.seed, day, day + 2):
        occupancy.cores.append((lo, hi))
        occupancy.backgrounds.append((lo, hi))
    for episode in state.carried:
        occupancy.take(episode)
    if not live.any():
        return occupancy, []
    draw: DayDraw = draw_day(model, day, rates)
    return occupancy, accept_scheduled(draw, occupancy, first_minute=_first_minute(model, day))


def _first_minute(model: SymbolModel, day: int) -> int:
    """The first minute an episode may start: an hour after the listing (a trading history to
    see it against), or the day's start."""
    return max(day * MINUTES_PER_DAY, model.listing_ms // MINUTE_MS + 60)


def _log_volatility(
    state: DayState, draws: _Draws, factor: FactorDay
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(total log-volatility, idiosyncratic fast part, idiosyncratic slow part) per minute."""
    idio_fast = ar1(draws.z_fast * _IDIO_FAST_INNOVATION, _IDIO_FAST_PHI, state.vol_fast)
    idio_slow = ar1(draws.z_slow * _IDIO_SLOW_INNOVATION, _IDIO_SLOW_PHI, state.vol_slow)
    return factor.log_vol + idio_fast + idio_slow, idio_fast, idio_slow


def _combined_shock(model: SymbolModel, draws: _Draws, factor: FactorDay) -> FloatArray:
    """Unit-variance return shocks: β·market + √(1 − β²)·own."""
    beta = model.market_beta
    shock: FloatArray = beta * factor.shock + math.sqrt(1.0 - beta**2) * draws.shock
    return shock


def _price_path(
    model: SymbolModel,
    state: DayState,
    *,
    overrides: _Overrides,
    log_vol: FloatArray,
    shock: FloatArray,
    jump: FloatArray,
    season: FloatArray,
    live: BoolArray,
) -> tuple[FloatArray, FloatArray]:
    """(log price in ticks, per-minute volatility) after the episodes' overrides."""
    # Quiet episodes are quiet: no fat-tailed jumps inside them.
    calm = overrides.vol_mult < 1.0
    shock = np.where(calm, np.clip(shock, -_CALM_SHOCK_LIMIT, _CALM_SHOCK_LIMIT), shock)
    regime = np.exp(log_vol)
    regime = np.where(overrides.in_episode, np.clip(regime, *_EPISODE_VOL_CLIP), regime)
    sigma = model.sigma_per_minute * regime * np.sqrt(season) * overrides.vol_mult
    reversion = -(state.log_ticks - model.initial_log_ticks) / _REVERSION_MINUTES
    returns = sigma * shock + jump + overrides.drift + reversion
    for lo, hi, phi in overrides.pins:
        # Bounded noise around the planted drift: the episode's net move is reliable.
        deviation = ar1(sigma[lo:hi] * shock[lo:hi], phi, 0.0)
        returns[lo:hi] = overrides.drift[lo:hi] + np.diff(deviation, prepend=0.0)
    returns = np.where(live, returns, 0.0)
    return state.log_ticks + np.cumsum(returns), sigma


def _place_absorptions(
    model: SymbolModel,
    day: int,
    state: DayState,
    *,
    draws: DayDraw,
    occupancy: Occupancy,
    overrides: _Overrides,
    path: Callable[[], tuple[FloatArray, FloatArray]],
    live: BoolArray,
    rates: EpisodeRates,
) -> list[PlannedEpisode]:
    """Place the day's absorptions one by one where the path meets a level; each changes the
    path after it (only after it), so the next one searches the updated path."""
    if not live.any() or not draws.absorptions:
        return []
    day_minute = day * MINUTES_PER_DAY
    first_minute = _first_minute(model, day)
    placed: list[PlannedEpisode] = []
    path_ticks = np.exp(path()[0])
    for draw in draws.absorptions:
        episode = place_absorption(
            draw,
            path_ticks=path_ticks,
            day_minute=day_minute,
            levels=state.levels,
            occupancy=occupancy,
            first_minute=first_minute,
            rates=rates,
        )
        if episode is not None:
            placed.append(episode)
            overrides.apply(episode, day_minute)
            path_ticks = np.exp(path()[0])
    return placed


def _activity(
    model: SymbolModel,
    day: int,
    *,
    draws: _Draws,
    overrides: _Overrides,
    log_vol: FloatArray,
    move: FloatArray,
    season: FloatArray,
    present: BoolArray,
) -> tuple[IntArray, FloatArray, IntArray, IntArray]:
    """(aggregate trades, mean size, exact volume, underlying trades) per minute; ``move`` is
    the size of the minute's return in units of its volatility."""
    move_factor = (1.0 - _ACTIVITY_MOVE_WEIGHT) + _ACTIVITY_MOVE_WEIGHT * move / move.mean()
    intensity = (
        model.trades_per_minute
        * season
        * np.exp(_ACTIVITY_VOL_ELASTICITY * log_vol)
        / _ACTIVITY_NORM
        * overrides.count_mult
        * move_factor
    )
    count = draws.rng.poisson(intensity).astype(np.int64) * present
    underlying = count + draws.rng.poisson(count * _UNDERLYING_PER_AGG).astype(np.int64)
    qty_mean = model.mean_qty_steps * overrides.qty_mult
    quantities = trade_quantities(model, day, np.repeat(qty_mean, count))
    volume = np.zeros(MINUTES_PER_DAY, dtype=np.int64)
    traded = count > 0
    if traded.any():
        starts = np.concatenate(([0], np.cumsum(count)[:-1]))[traded]
        volume[traded] = np.add.reduceat(quantities, starts)
    return count, qty_mean, volume, underlying


def _traded_closes(log_ticks: FloatArray, count: IntArray, previous_close: int) -> IntArray:
    """Only a trade moves the traded price: quiet minutes and outages carry the last one."""
    latent_ticks = np.maximum(1, np.rint(np.exp(log_ticks))).astype(np.int64)
    last_traded = np.maximum.accumulate(np.where(count > 0, np.arange(MINUTES_PER_DAY), -1))
    closes: IntArray = np.where(
        last_traded >= 0, latent_ticks[np.maximum(last_traded, 0)], previous_close
    ).astype(np.int64)
    return closes


def _open_interest(
    model: SymbolModel,
    state: DayState,
    *,
    draws: _Draws,
    overrides: _Overrides,
    count: IntArray,
    buy_prob: FloatArray,
    shock: FloatArray,
    live: BoolArray,
) -> FloatArray:
    """Log deviation of open interest from its base, at the end of each minute."""
    imbalance = np.abs(2.0 * buy_prob - 1.0)
    flow = (
        overrides.oi_gain * (count / model.trades_per_minute) * (imbalance - _OI_NEUTRAL_IMBALANCE)
    )
    liquidation = np.clip(np.abs(shock) - _OI_LIQUIDATION_SHOCK, 0.0, None)
    innovation = (
        _OI_FLOW * flow
        - _OI_LIQUIDATION * liquidation
        + _OI_OPENING
        + _OI_NOISE * draws.z_oi
        + overrides.oi_force
    )
    return ar1(np.where(live, innovation, 0.0), _OI_PHI, state.oi_log)


def _premium(
    state: DayState,
    draws: _Draws,
    overrides: _Overrides,
    log_ticks: FloatArray,
    buy_prob: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(slow price average, positioning regime, premium over the index) per minute."""
    trend = ar1((1.0 - _TREND_PHI) * log_ticks, _TREND_PHI, state.trend_log_ticks)
    regime = ar1(
        draws.z_regime * _PREMIUM_REGIME_INNOVATION, _PREMIUM_REGIME_PHI, state.premium_regime
    )
    target = (
        PREMIUM_MEAN
        + regime
        + _PREMIUM_FLOW * (2.0 * buy_prob - 1.0)
        + _PREMIUM_TREND * (log_ticks - trend)
    )
    # Crowding episodes push the premium away from wherever the regime has it.
    target = np.where(np.isnan(overrides.premium), target, overrides.premium + regime)
    premium = ar1(
        (1.0 - _PREMIUM_PHI) * target + _PREMIUM_NOISE * draws.z_premium,
        _PREMIUM_PHI,
        state.premium,
    )
    return trend, regime, premium


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

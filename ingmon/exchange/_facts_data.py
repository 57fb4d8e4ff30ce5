"""One symbol's served data on a one-minute grid, read through the Market's public methods only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ingmon.exchange._facts_stats import BoolArray, FloatArray, IntArray
from ingmon.exchange.market import Episode, Market

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
MINUTES_PER_DAY = 1440

SWING_LOOKBACK_MS = 48 * HOUR_MS


@dataclass(frozen=True)
class Planted:
    """An episode with every field of the issue-8 API (older reports filled in from detail)."""

    kind: str
    start_ms: int
    end_ms: int
    direction: str | None
    outcome: str | None
    trigger_ms: int
    level_price: float | None
    level_kind: str | None

    @property
    def sign(self) -> int:
        return 1 if self.direction == "up" else -1 if self.direction == "down" else 0

    @property
    def real(self) -> bool:
        """Not a decoy: the setup's payoff was planted (it may still fail)."""
        return self.outcome != "decoy"


def _planted(episode: Episode) -> Planted | None:
    """Normalise an episode; maintenance windows → None.

    Until the issue-8 Episode (direction/outcome/trigger_ms/level) lands, the older report is
    read through its detail dict: "short_squeeze" is an upward squeeze.
    """
    kind = str(episode.kind)
    if kind == "maintenance":
        return None
    detail = episode.detail
    direction: str | None = getattr(episode, "direction", None)
    trigger_ms: int | None = getattr(episode, "trigger_ms", None)
    if kind == "short_squeeze":
        kind = "squeeze"
        direction = direction or "up"
    if direction is None and "direction" in detail:
        direction = str(detail["direction"])
    if direction is None and "bias" in detail:
        direction = "up" if detail["bias"] == "bullish" else "down"
    if trigger_ms is None:
        fallback = detail.get("breakout_start_ms")
        if fallback is None:
            fallback = episode.end_ms if kind == "absorption" else episode.start_ms
        trigger_ms = int(fallback)
    level_price = getattr(episode, "level_price", None)
    return Planted(
        kind=kind,
        start_ms=episode.start_ms,
        end_ms=episode.end_ms,
        direction=direction,
        outcome=getattr(episode, "outcome", None),
        trigger_ms=int(trigger_ms),
        level_price=None if level_price is None else float(level_price),
        level_kind=getattr(episode, "level_kind", None),
    )


@dataclass
class Series:
    """One symbol's served data on a one-minute grid over [start_ms, end_ms)."""

    symbol: str
    start_ms: int
    present: BoolArray
    open: FloatArray  # prices (NaN where no candle)
    high: FloatArray
    low: FloatArray
    close: FloatArray
    close_filled: FloatArray  # last known close (NaN before the first candle)
    volume: FloatArray  # base units
    quote_volume: FloatArray  # USDT
    taker_buy_volume: FloatArray
    trade_count: FloatArray
    log_return: FloatArray  # close-to-close; NaN unless both minutes have candles
    hour_open_ms: IntArray
    hour_close: FloatArray
    day_close: FloatArray
    oi_time_ms: IntArray
    oi_base: FloatArray
    funding_time_ms: IntArray
    funding_rate: FloatArray
    swing_15m_open_ms: IntArray
    swing_15m_high: FloatArray
    swing_15m_low: FloatArray
    planted: list[Planted]
    trade_notional: FloatArray
    round_lot_trades: int
    round_lot_expected: float

    @property
    def minutes(self) -> int:
        return int(self.present.size)

    def minute_index(self, time_ms: int) -> int:
        """Grid index of the minute containing ``time_ms``."""
        return (time_ms - self.start_ms) // MINUTE_MS

    def price_at(self, time_ms: int) -> float:
        """Last close at or before ``time_ms`` (the minute ending at it), NaN if unknown."""
        index = self.minute_index(time_ms) - 1
        if index < 0 or index >= self.minutes:
            return math.nan
        return float(self.close_filled[index])


def load_series(market: Market, symbol: str, start_ms: int, end_ms: int) -> Series:
    spec = market.spec(symbol)
    price_scale = 10.0**-spec.price_decimals
    qty_scale = 10.0**-spec.quantity_decimals
    last_ms = end_ms - 1
    minutes = (end_ms - start_ms) // MINUTE_MS
    candles = market.klines(symbol, "1m", start_ms, last_ms, now_ms=last_ms)
    index = (candles.open_time_ms - start_ms) // MINUTE_MS
    present = np.zeros(minutes, dtype=bool)
    present[index] = True

    def grid(values: IntArray, scale: float, empty: float) -> FloatArray:
        out = np.full(minutes, empty, dtype=np.float64)
        out[index] = values * scale
        return out

    close = grid(candles.close_ticks, price_scale, math.nan)
    filled_index = np.maximum.accumulate(np.where(present, np.arange(minutes), -1))
    close_filled = np.where(filled_index >= 0, close[np.maximum(filled_index, 0)], math.nan)
    log_return = np.full(minutes, math.nan)
    log_return[1:] = np.where(present[1:] & present[:-1], np.log(close[1:] / close[:-1]), math.nan)

    hours = market.klines(symbol, "1h", start_ms, last_ms, now_ms=last_ms)
    days = market.klines(symbol, "1d", start_ms, last_ms, now_ms=last_ms)
    swings = market.klines(symbol, "15m", start_ms - SWING_LOOKBACK_MS, last_ms, now_ms=last_ms)
    interest = market.open_interest(symbol, "5m", start_ms - HOUR_MS, end_ms)
    funding = market.funding(symbol, start_ms, last_ms)
    planted = [
        item
        for episode in market.episodes(symbol, start_ms, last_ms)
        if (item := _planted(episode)) is not None
        and start_ms <= item.start_ms
        and item.end_ms <= end_ms
    ]

    notionals: list[FloatArray] = []
    round_trades = 0
    round_expected = 0.0
    for day_start in range(start_ms, end_ms, DAY_MS):
        trades = market.agg_trades(symbol, day_start, min(day_start + DAY_MS, end_ms) - 1)
        quantity = trades.qty_steps
        notionals.append(
            np.asarray(trades.price_ticks * quantity, dtype=np.float64) * (price_scale * qty_scale)
        )
        # Round lots: quantities with one significant digit (0.1, 0.5, 2 BTC …) among trades of
        # at least three digits in steps, against the 10^-(digits-1) share a smooth law gives.
        big = quantity[quantity >= 100]
        if big.size:
            digits = np.floor(np.log10(big.astype(np.float64))).astype(np.int64)
            lead = 10**digits
            round_trades += int(np.count_nonzero(big % lead == 0))
            round_expected += float(np.sum(1.0 / lead))
    return Series(
        symbol=symbol,
        start_ms=start_ms,
        present=present,
        open=grid(candles.open_ticks, price_scale, math.nan),
        high=grid(candles.high_ticks, price_scale, math.nan),
        low=grid(candles.low_ticks, price_scale, math.nan),
        close=close,
        close_filled=close_filled,
        volume=grid(candles.volume_steps, qty_scale, 0.0),
        quote_volume=grid(candles.quote_volume_units, price_scale * qty_scale, 0.0),
        taker_buy_volume=grid(candles.taker_buy_volume_steps, qty_scale, 0.0),
        trade_count=grid(candles.trade_count, 1.0, 0.0),
        log_return=log_return,
        hour_open_ms=hours.open_time_ms,
        hour_close=_scaled(hours.close_ticks, price_scale),
        day_close=_scaled(days.close_ticks, price_scale),
        oi_time_ms=interest.timestamp_ms,
        oi_base=_scaled(interest.sum_open_interest_steps, qty_scale),
        funding_time_ms=funding.funding_time_ms,
        funding_rate=funding.funding_rate,
        swing_15m_open_ms=swings.open_time_ms,
        swing_15m_high=_scaled(swings.high_ticks, price_scale),
        swing_15m_low=_scaled(swings.low_ticks, price_scale),
        planted=planted,
        trade_notional=np.concatenate(notionals) if notionals else np.zeros(0),
        round_lot_trades=round_trades,
        round_lot_expected=round_expected,
    )


def _scaled(units: IntArray, scale: float) -> FloatArray:
    return np.asarray(units, dtype=np.float64) * scale


def mask_of(data: Series, windows: list[tuple[int, int]]) -> BoolArray:
    mask = np.zeros(data.minutes, dtype=bool)
    for start_ms, end_ms in windows:
        mask[max(0, data.minute_index(start_ms)) : max(0, data.minute_index(end_ms))] = True
    return mask

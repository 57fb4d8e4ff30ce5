"""The simulated market as signal-engine inputs, straight from ``Market`` (no HTTP, no lake):
the recall, lookahead and benchmark measurements need months of data quickly."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ingmon.exchange.market import Episode, Market
from ingmon.lake import Lake
from ingmon.schema import CANDLES, FUNDING, OPEN_INTEREST
from ingmon.signals.features import Bars
from ingmon.signals.frame import MarketInputs
from ingmon.times import DAY_MS

# A fixed "now" for every measurement: 2026-03-01 00:00 UTC.
NOW_MS = 1_772_323_200_000


def demo_market(*, days: int, seed: int = 7, symbols: tuple[str, ...] = ("BTCUSDT",)) -> Market:
    """A demo market listed ``days`` before ``NOW_MS``."""
    return Market.demo(symbols=list(symbols), days=days, seed=seed, now_ms=NOW_MS)


def market_inputs(market: Market, symbol: str, start_ms: int, end_ms: int) -> MarketInputs:
    """Closed 1m candles (delta from the candle identity), 5m open interest and funding of
    ``symbol`` in [start_ms, end_ms)."""
    spec = market.spec(symbol)
    price = 10.0**-spec.price_decimals
    quantity = 10.0**-spec.quantity_decimals
    last_ms = end_ms - 1
    candles = market.klines(symbol, "1m", start_ms, last_ms, now_ms=last_ms)
    interest = market.open_interest(symbol, "5m", start_ms, last_ms)
    funding = market.funding(symbol, start_ms, last_ms)
    gaps = np.diff(funding.funding_time_ms) / 3_600_000
    return MarketInputs(
        symbol=symbol,
        minutes=Bars.from_candles(
            open_time_ms=candles.open_time_ms,
            open=candles.open_ticks * price,
            high=candles.high_ticks * price,
            low=candles.low_ticks * price,
            close=candles.close_ticks * price,
            volume=candles.volume_steps * quantity,
            taker_buy_volume=candles.taker_buy_volume_steps * quantity,
        ),
        oi_time_ms=interest.timestamp_ms,
        oi_value=interest.sum_open_interest_steps * quantity,
        funding_time_ms=funding.funding_time_ms,
        funding_rate=np.asarray(funding.funding_rate, dtype=np.float64),
        funding_interval_hours=np.r_[float(spec.funding_interval_hours), gaps],
        known_until_ms=end_ms,
        tick_size=float(spec.tick_size),
    )


def planted(market: Market, symbol: str, start_ms: int, end_ms: int) -> list[Episode]:
    """The planted episodes (no outages) whose trigger lies in [start_ms, end_ms)."""
    return [
        episode
        for episode in market.episodes(symbol, start_ms, end_ms)
        if episode.kind != "maintenance"
        and episode.trigger_ms is not None
        and start_ms <= episode.trigger_ms < end_ms
    ]


def listing_ms(market: Market, symbol: str) -> int:
    """The symbol's listing, floored to its UTC day."""
    return market.spec(symbol).listing_ms // DAY_MS * DAY_MS


def write_lake(lake: Lake, market: Market, symbol: str, start_ms: int, end_ms: int) -> None:
    """The market's 1m candles, 5m open interest and funding of [start_ms, end_ms) stored in
    ``lake`` as a backfill would store them (no trades: their delta is the candles' own)."""
    spec = market.spec(symbol)
    quantity = 10.0**-spec.quantity_decimals
    last_ms = end_ms - 1

    def price(ticks: np.ndarray) -> np.ndarray:  # as parsed from the exchange's decimal strings
        return np.round(ticks * 10.0**-spec.price_decimals, spec.price_decimals)

    candles = market.klines(symbol, "1m", start_ms, last_ms, now_ms=last_ms)
    lake.upsert(
        CANDLES,
        pa.table(
            {
                "open_time": candles.open_time_ms,
                "open": price(candles.open_ticks),
                "high": price(candles.high_ticks),
                "low": price(candles.low_ticks),
                "close": price(candles.close_ticks),
                "volume": candles.volume_steps * quantity,
                "close_time": candles.close_time_ms,
                "quote_volume": candles.quote_volume_units * 10.0**-spec.price_decimals * quantity,
                "trade_count": candles.trade_count,
                "taker_buy_volume": candles.taker_buy_volume_steps * quantity,
                "taker_buy_quote_volume": candles.taker_buy_quote_units
                * 10.0**-spec.price_decimals
                * quantity,
                "ignore": np.zeros(len(candles)),
            }
        ),
        symbol=symbol,
        param="1m",
    )
    interest = market.open_interest(symbol, "5m", start_ms, last_ms)
    lake.upsert(
        OPEN_INTEREST,
        pa.table(
            {
                "timestamp": interest.timestamp_ms,
                "sum_open_interest": interest.sum_open_interest_steps * quantity,
                "sum_open_interest_value": interest.sum_open_interest_value,
                "cmc_circulating_supply": interest.cmc_circulating_supply,
            }
        ),
        symbol=symbol,
        param="5m",
    )
    funding = market.funding(symbol, start_ms, last_ms)
    lake.upsert(
        FUNDING,
        pa.table(
            {
                "funding_time": funding.funding_time_ms,
                "funding_rate": np.asarray(funding.funding_rate, dtype=np.float64),
                "mark_price": price(funding.mark_price_ticks),
                "funding_interval_hours": pa.array(
                    np.full(len(funding), spec.funding_interval_hours), pa.int32()
                ),
            }
        ),
        symbol=symbol,
    )

"""A deterministic, lazily generated market: trades, candles, open interest and funding.

INTERFACE STUB — the signatures and docstrings below are the contract between the simulator and
the server (ingmon/exchange/server.py). Bodies are filled in by the simulator work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "AggTrades",
    "Episode",
    "FundingRates",
    "Klines",
    "Market",
    "OpenInterest",
    "SymbolSpec",
    "format_fixed",
]

IntArray = np.ndarray[Any, np.dtype[np.int64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]

EpisodeKind = Literal["compression_breakout", "absorption", "short_squeeze", "maintenance"]


@dataclass(frozen=True)
class SymbolSpec:
    """One perpetual contract of the simulated exchange."""

    symbol: str                     # "BTCUSDT"
    base_asset: str                 # "BTC"
    tick_size: str                  # PRICE_FILTER tickSize as Binance writes it, e.g. "0.10"
    step_size: str                  # LOT_SIZE stepSize, e.g. "0.001"
    listing_ms: int                 # onboardDate: first trade time (ms, UTC, minute-aligned)
    initial_price: float            # price at listing
    funding_interval_hours: int = 8 # 8 by default; some symbols 4
    trades_per_minute: float = 40.0 # mean aggregate-trade activity

    @property
    def price_decimals(self) -> int: ...  # decimals of tick_size ("0.10" -> 2)

    @property
    def quantity_decimals(self) -> int: ...  # decimals of step_size ("0.001" -> 3)


@dataclass(frozen=True)
class AggTrades:
    """Aggregate trades, ascending by id. Prices in ticks, quantities in steps (exact integers)."""

    agg_id: IntArray
    price_ticks: IntArray
    qty_steps: IntArray
    first_trade_id: IntArray
    last_trade_id: IntArray
    time_ms: IntArray
    buyer_is_maker: BoolArray

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Klines:
    """Candles, ascending by open time: exactly the aggregation of the trades in each interval.

    Quote volumes are in (tick × step) units: quote = Σ price_ticks·qty_steps, so
    quote_volume_str has price_decimals + quantity_decimals decimals.
    """

    open_time_ms: IntArray
    open_ticks: IntArray
    high_ticks: IntArray
    low_ticks: IntArray
    close_ticks: IntArray
    volume_steps: IntArray
    close_time_ms: IntArray          # open_time + interval − 1
    quote_volume_units: IntArray     # Σ price_ticks·qty_steps
    trade_count: IntArray            # number of trades: Σ (last_trade_id − first_trade_id + 1)
    taker_buy_volume_steps: IntArray
    taker_buy_quote_units: IntArray

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class OpenInterest:
    """Open interest per period, timestamps on the period grid."""

    timestamp_ms: IntArray
    sum_open_interest_steps: IntArray   # base units in steps
    sum_open_interest_value: FloatArray # USDT, rendered with 8 decimals
    cmc_circulating_supply: FloatArray


@dataclass(frozen=True)
class FundingRates:
    """Funding settlements on the symbol's funding grid (exact hours; jitter is the server's)."""

    funding_time_ms: IntArray
    funding_rate: FloatArray            # rendered with 8 decimals, e.g. "0.00010000"
    mark_price_ticks: IntArray


@dataclass(frozen=True)
class Episode:
    """Ground truth: where the simulator planted a market-structure episode."""

    kind: EpisodeKind
    symbol: str
    start_ms: int
    end_ms: int
    detail: dict[str, Any] = field(default_factory=dict)


class Market:
    """A seeded market over any number of symbols, generated lazily by time window.

    Same seed and symbols → identical data, whatever the order or size of the queries. Data
    exists from each symbol's listing onwards, without an end (the clock decides what is "now").
    """

    def __init__(self, symbols: Sequence[SymbolSpec], *, seed: int) -> None: ...

    @classmethod
    def demo(cls, *, symbols: Sequence[str], days: int, seed: int, now_ms: int) -> Market:
        """Known symbols (BTCUSDT, ETHUSDT, SOLUSDT, … plus generated specs for any other name)
        listed ``days`` before ``now_ms`` (floored to the day)."""
        ...

    @property
    def symbols(self) -> list[SymbolSpec]: ...

    def spec(self, symbol: str) -> SymbolSpec:
        """KeyError for an unknown symbol."""
        ...

    def agg_trades(self, symbol: str, start_ms: int, end_ms: int) -> AggTrades:
        """Trades with start_ms <= T <= end_ms."""
        ...

    def agg_trades_from_id(self, symbol: str, from_id: int, limit: int) -> AggTrades:
        """Up to ``limit`` trades with id >= from_id (no upper time bound: the server clips)."""
        ...

    def first_agg_id_at(self, symbol: str, time_ms: int) -> int:
        """Id of the first trade with T >= time_ms."""
        ...

    def klines(self, symbol: str, interval: str, start_ms: int, end_ms: int, *, now_ms: int) -> Klines:
        """Candles with start_ms <= open_time <= end_ms and open_time <= now_ms. A candle that
        contains now_ms aggregates only trades with T <= now_ms (the open, partial candle).
        Zero-trade intervals are emitted (OHLC = last price, volumes 0); maintenance windows and
        times before listing produce no candles."""
        ...

    def open_interest(self, symbol: str, period: str, start_ms: int, end_ms: int) -> OpenInterest: ...

    def funding(self, symbol: str, start_ms: int, end_ms: int) -> FundingRates: ...

    def maintenance_windows(self, symbol: str, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """[start, end) windows without trades or candles that overlap the range."""
        ...

    def episodes(self, symbol: str, start_ms: int, end_ms: int) -> list[Episode]: ...


def format_fixed(units: IntArray, decimals: int) -> list[str]:
    """Integers in units of 10**-decimals as Binance decimal strings: (123456, 2) -> "1234.56"."""
    ...

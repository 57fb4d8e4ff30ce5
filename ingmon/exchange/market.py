"""A deterministic, lazily generated market: trades, candles, open interest and funding.

Units. "Ticks" and "steps" in the public arrays are the units of the LAST WRITTEN DIGIT of
``tick_size`` / ``step_size``, i.e. 10**-price_decimals and 10**-quantity_decimals, so that
``format_fixed(price_ticks, spec.price_decimals)`` renders Binance's string directly. Prices are
always multiples of ``spec.tick_units`` (BTCUSDT tick "0.10": price_ticks is in cents and a
multiple of 10); quantities multiples of ``spec.step_units``. Quote volumes are Σ price·qty in
those units (price_decimals + quantity_decimals decimals).

Time. Everything is keyed by UTC day: a per-minute skeleton (price path, activity, flow, open
interest, premium) is generated sequentially from the listing with one checkpoint per day, and
trade-level detail for a day is generated only when a query touches that day, from a random
stream of its own. Results never depend on the order or the size of the queries.

Semantics beyond the method docstrings:
- Outages (``maintenance_windows``) are the same for every symbol, on minute boundaries, about one
  per 15 days; they have no trades and no candles. Open interest keeps its (flat) rows through
  them and funding still settles.
- Open interest at timestamp T is the position count at T (after the minute ending at T); every
  period samples the same series, so 1h rows equal the 5m rows at the full hours.
- A funding settlement at T uses the mean premium of [T − interval, T); times are exact (the
  server adds jitter). ``funding_rate`` holds exact multiples of 1e−8 (``funding_rate_e8``).
- ``episodes`` reports the planted ground truth, maintenance windows included as
  kind="maintenance"; an episode's window is [start_ms, end_ms).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from ingmon.exchange._episodes import (
    MAINTENANCE_BLOCK_DAYS,
    EpisodeRates,
    PlannedEpisode,
    maintenance_minutes,
    maintenance_of_block,
)
from ingmon.exchange._model import DAY_MS, MINUTE_MS, MINUTES_PER_DAY, decimals_of, units_of
from ingmon.exchange._skeleton import DaySkeleton, DayState, build_day, initial_state
from ingmon.exchange._specs import Lru, demo_spec_fields, model_for
from ingmon.exchange._trades import (
    CLOSE,
    COUNT,
    HIGH,
    LOW,
    OPEN,
    QUOTE,
    TAKER_QUOTE,
    TAKER_VOLUME,
    VOLUME,
    MinuteCandles,
    TradeBlock,
    aggregate,
    generate_trades,
    minute_candles,
)

__all__ = [
    "AggTrades",
    "Episode",
    "EpisodeRates",
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

EpisodeKind = Literal["compression_breakout", "absorption", "squeeze", "maintenance"]
EpisodeDirection = Literal["up", "down"]
EpisodeOutcome = Literal["follow_through", "failed", "decoy"]

KLINE_INTERVAL_MINUTES = {
    "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120,
    "4h": 240, "6h": 360, "8h": 480, "12h": 720, "1d": 1440,
}  # fmt: skip
OI_PERIOD_MINUTES = {
    "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240, "6h": 360, "12h": 720,
    "1d": 1440,
}  # fmt: skip

# Trade-level detail and candles are only kept for recently used days; skeletons are cheap to
# rebuild from their checkpoint.
_MAX_DAYS_AHEAD = 3660  # id look-ups never generate more than ~10 years past the listing
_EPISODE_LOOKBACK_DAYS = 2  # an episode's window starts at most this many days after its plan


@dataclass(frozen=True)
class SymbolSpec:
    """One perpetual contract of the simulated exchange."""

    symbol: str  # "BTCUSDT"
    base_asset: str  # "BTC"
    tick_size: str  # PRICE_FILTER tickSize as Binance writes it, e.g. "0.10"
    step_size: str  # LOT_SIZE stepSize, e.g. "0.001"
    listing_ms: int  # onboardDate: first trade time (ms, UTC, minute-aligned)
    initial_price: float  # price at listing
    funding_interval_hours: int = 8  # 8 by default; some symbols 4
    trades_per_minute: float = 40.0  # mean aggregate-trade activity
    volatility_per_minute: float = 0.0008  # log-return standard deviation of a typical minute
    mean_trade_notional: float = 5000.0  # USDT per aggregate trade, on average
    circulating_supply: float = 0.0  # CMCCirculatingSupply (base units)
    market_beta: float = 0.8  # correlation of its return shocks with the shared market factor

    @property
    def price_decimals(self) -> int:
        """Decimals of tick_size as written ("0.10" -> 2)."""
        return decimals_of(self.tick_size)

    @property
    def quantity_decimals(self) -> int:
        """Decimals of step_size as written ("0.001" -> 3)."""
        return decimals_of(self.step_size)

    @property
    def tick_units(self) -> int:
        """One tick in price units of 10**-price_decimals ("0.10" -> 10, "0.0100" -> 100)."""
        return units_of(self.tick_size)

    @property
    def step_units(self) -> int:
        """One step in quantity units of 10**-quantity_decimals ("0.001" -> 1, "10" -> 10)."""
        return units_of(self.step_size)


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

    def __len__(self) -> int:
        return int(self.agg_id.size)


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
    close_time_ms: IntArray  # open_time + interval − 1
    quote_volume_units: IntArray  # Σ price_ticks·qty_steps
    trade_count: IntArray  # number of trades: Σ (last_trade_id − first_trade_id + 1)
    taker_buy_volume_steps: IntArray
    taker_buy_quote_units: IntArray

    def __len__(self) -> int:
        return int(self.open_time_ms.size)


@dataclass(frozen=True)
class OpenInterest:
    """Open interest per period, timestamps on the period grid."""

    timestamp_ms: IntArray
    sum_open_interest_steps: IntArray  # base units in steps
    sum_open_interest_value: FloatArray  # USDT, rendered with 8 decimals
    cmc_circulating_supply: FloatArray

    def __len__(self) -> int:
        return int(self.timestamp_ms.size)


@dataclass(frozen=True)
class FundingRates:
    """Funding settlements on the symbol's funding grid (exact hours; jitter is the server's)."""

    funding_time_ms: IntArray
    funding_rate: FloatArray  # rendered with 8 decimals, e.g. "0.00010000"
    mark_price_ticks: IntArray

    def __len__(self) -> int:
        return int(self.funding_time_ms.size)

    @property
    def funding_rate_e8(self) -> IntArray:
        """Rates as exact integers in units of 1e−8 (format_fixed(…, 8) renders them)."""
        return np.rint(self.funding_rate * 1e8).astype(np.int64)


@dataclass(frozen=True)
class Episode:
    """Ground truth: where the simulator planted a market-structure episode.

    ``direction`` is the way price goes IF the episode follows through (a squeeze "up" is a short
    squeeze; an absorption of aggressive selling is "up"); ``outcome`` says whether it did, failed
    (moved the other way), or was a decoy (the precursor only, no payoff planted). ``trigger_ms``
    is when the setup becomes observable: the breakout bar, the end of the absorption, the start
    of the squeeze. Absorptions record the previous-session level they happen at (see
    docs/simulator.md for how levels are computed). Maintenance windows keep all of these None.
    """

    kind: EpisodeKind
    symbol: str
    start_ms: int  # [start_ms, end_ms) the episode's window
    end_ms: int
    direction: EpisodeDirection | None = None
    outcome: EpisodeOutcome | None = None
    trigger_ms: int | None = None
    level_price: float | None = None
    level_kind: str | None = None  # "poc" | "vah" | "val" | "hvn" | "swing_high" | "swing_low"
    detail: dict[str, Any] = field(default_factory=dict)


class Market:
    """A seeded market over any number of symbols, generated lazily by time window.

    Same seed and symbols → identical data, whatever the order or size of the queries. Data
    exists from each symbol's listing onwards, without an end (the clock decides what is "now").
    Thread-safe (one lock); the caches are bounded (days of trade detail / one-minute candles /
    skeletons kept). ``episode_rates`` sets how often each episode kind is planted.
    """

    def __init__(
        self,
        symbols: Sequence[SymbolSpec],
        *,
        seed: int,
        trade_cache_days: int = 8,
        candle_cache_days: int = 1024,
        skeleton_cache_days: int = 512,
        episode_rates: EpisodeRates | None = None,
    ) -> None:
        self._seed = seed
        self._rates = episode_rates if episode_rates is not None else EpisodeRates()
        self._specs: dict[str, SymbolSpec] = {}
        for spec in symbols:
            if spec.symbol in self._specs:
                raise ValueError(f"duplicate symbol {spec.symbol}")
            self._specs[spec.symbol] = spec
        self._models = {name: model_for(spec, seed) for name, spec in self._specs.items()}
        self._lock = threading.RLock()
        # checkpoint i = state at the start of UTC day (listing day + i); ids parallel for bisect.
        self._checkpoints: dict[str, list[DayState]] = {
            name: [initial_state(model)] for name, model in self._models.items()
        }
        self._checkpoint_ids: dict[str, list[int]] = {name: [0] for name in self._models}
        self._skeletons: Lru[tuple[str, int], DaySkeleton] = Lru(skeleton_cache_days)
        self._trades: Lru[tuple[str, int], TradeBlock] = Lru(trade_cache_days)
        self._candles: Lru[tuple[str, int], MinuteCandles] = Lru(candle_cache_days)
        self._trade_days: dict[str, set[int]] = {name: set() for name in self._models}
        self._trade_generations = 0

    @classmethod
    def demo(
        cls,
        *,
        symbols: Sequence[str],
        days: int,
        seed: int,
        now_ms: int,
        trade_cache_days: int | None = None,
        episode_rates: EpisodeRates | None = None,
    ) -> Market:
        """Known symbols (BTCUSDT, ETHUSDT, SOLUSDT, … plus generated specs for any other name)
        listed ``days`` before ``now_ms`` (floored to the day).

        The trade cache holds every day of every symbol by default (``days`` + 1 per symbol), so
        klines then aggTrades over the whole demo never generate a day twice.
        """
        listing_ms = (now_ms // DAY_MS - days) * DAY_MS
        if trade_cache_days is None:
            trade_cache_days = (days + 1) * max(1, len(symbols))
        return cls(
            [
                SymbolSpec(listing_ms=listing_ms, **demo_spec_fields(name, seed=seed))
                for name in symbols
            ],
            seed=seed,
            trade_cache_days=trade_cache_days,
            episode_rates=episode_rates,
        )

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def symbols(self) -> list[SymbolSpec]:
        return list(self._specs.values())

    @property
    def episode_rates(self) -> EpisodeRates:
        return self._rates

    def spec(self, symbol: str) -> SymbolSpec:
        """KeyError for an unknown symbol."""
        return self._specs[symbol]

    # --- trades -----------------------------------------------------------------------------

    def agg_trades(self, symbol: str, start_ms: int, end_ms: int) -> AggTrades:
        """Trades with start_ms <= T <= end_ms."""
        model = self._models[symbol]
        low_ms = max(start_ms, model.listing_ms)
        pieces: list[AggTrades] = []
        with self._lock:
            for day in range(low_ms // DAY_MS, end_ms // DAY_MS + 1) if end_ms >= low_ms else ():
                block = self._trade_block(symbol, day)
                first = int(np.searchsorted(block.time_ms, low_ms, side="left"))
                stop = int(np.searchsorted(block.time_ms, end_ms, side="right"))
                pieces.append(_agg_slice(block, first, stop))
        return _concat_trades(pieces)

    def agg_trades_from_id(
        self, symbol: str, from_id: int, limit: int, *, until_ms: int | None = None
    ) -> AggTrades:
        """Up to ``limit`` trades with id >= from_id (no upper time bound: the server clips).

        ``until_ms`` (optional) stops at trades with T > until_ms and keeps the simulator from
        generating days after it. Ids beyond ~10 years after the listing return nothing.
        """
        model = self._models[symbol]
        from_id = max(from_id, 0)
        pieces: list[AggTrades] = []
        remaining = limit
        with self._lock:
            day = self._day_of_agg_id(symbol, from_id, until_ms=until_ms)
            while remaining > 0 and day is not None:
                if until_ms is not None and day * DAY_MS > until_ms:
                    break
                if day - model.listing_day > _MAX_DAYS_AHEAD:
                    break
                block = self._trade_block(symbol, day)
                first = max(0, from_id - block.first_agg_id)
                stop = min(len(block), first + remaining)
                clipped = False
                if until_ms is not None:
                    cut = int(np.searchsorted(block.time_ms, until_ms, side="right"))
                    clipped = cut < stop
                    stop = min(stop, cut)
                if stop > first:
                    pieces.append(_agg_slice(block, first, stop))
                    remaining -= stop - first
                if clipped:
                    break
                day += 1
        return _concat_trades(pieces)

    def first_agg_id_at(self, symbol: str, time_ms: int) -> int:
        """Id of the first trade with T >= time_ms."""
        model = self._models[symbol]
        if time_ms <= model.listing_ms:
            return 0
        day, offset_ms = divmod(time_ms, DAY_MS)
        with self._lock:
            skeleton = self._skeleton(symbol, day)
            if offset_ms % MINUTE_MS == 0:
                # Minute boundaries need no trade detail: ids are cumulative minute counts.
                minute = offset_ms // MINUTE_MS
                return skeleton.state_in.next_agg_id + int(skeleton.count[:minute].sum())
            block = self._trade_block(symbol, day)
            return block.first_agg_id + int(np.searchsorted(block.time_ms, time_ms, side="left"))

    # --- candles ----------------------------------------------------------------------------

    def klines(
        self, symbol: str, interval: str, start_ms: int, end_ms: int, *, now_ms: int
    ) -> Klines:
        """Candles with start_ms <= open_time <= end_ms and open_time <= now_ms. A candle that
        contains now_ms aggregates only trades with T <= now_ms (the open, partial candle).
        Zero-trade intervals are emitted (OHLC = last price, volumes 0); maintenance windows and
        times before listing produce no candles."""
        if interval not in KLINE_INTERVAL_MINUTES:
            raise ValueError(f"unsupported interval {interval!r}")
        minutes = KLINE_INTERVAL_MINUTES[interval]
        interval_ms = minutes * MINUTE_MS
        model = self._models[symbol]
        high_ms = min(end_ms, now_ms)
        first_day = max(start_ms // DAY_MS, model.listing_day)
        pieces: list[tuple[IntArray, IntArray]] = []
        with self._lock:
            for day in range(first_day, high_ms // DAY_MS + 1) if high_ms >= start_ms else ():
                candles = self._minute_candles_until(symbol, day, now_ms)
                exists, values = aggregate(candles, minutes)
                open_time = day * DAY_MS + np.arange(exists.size, dtype=np.int64) * interval_ms
                keep = exists & (open_time >= start_ms) & (open_time <= high_ms)
                pieces.append((open_time[keep], values[:, keep]))
        if pieces:
            open_time = np.concatenate([times for times, _ in pieces])
            values = np.concatenate([rows for _, rows in pieces], axis=1)
        else:
            open_time = _empty_int()
            values = np.zeros((9, 0), dtype=np.int64)
        return Klines(
            open_time_ms=open_time,
            open_ticks=values[OPEN],
            high_ticks=values[HIGH],
            low_ticks=values[LOW],
            close_ticks=values[CLOSE],
            volume_steps=values[VOLUME],
            close_time_ms=open_time + (interval_ms - 1),
            quote_volume_units=values[QUOTE],
            trade_count=values[COUNT],
            taker_buy_volume_steps=values[TAKER_VOLUME],
            taker_buy_quote_units=values[TAKER_QUOTE],
        )

    # --- open interest and funding ----------------------------------------------------------

    def open_interest(self, symbol: str, period: str, start_ms: int, end_ms: int) -> OpenInterest:
        """Rows at period-grid timestamps T with start_ms <= T <= end_ms and T > listing."""
        if period not in OI_PERIOD_MINUTES:
            raise ValueError(f"unsupported period {period!r}")
        period_ms = OI_PERIOD_MINUTES[period] * MINUTE_MS
        model = self._models[symbol]
        spec = self._specs[symbol]
        low_ms = max(start_ms, model.listing_ms + 1)
        first_ms = -(-low_ms // period_ms) * period_ms
        times: list[IntArray] = []
        amounts: list[IntArray] = []
        prices: list[IntArray] = []
        with self._lock:
            for day in range((first_ms - 1) // DAY_MS, (end_ms - 1) // DAY_MS + 1):
                if first_ms > end_ms:
                    break
                day_start = day * DAY_MS
                lo = max(first_ms, -(-(day_start + 1) // period_ms) * period_ms)
                hi = min(end_ms, day_start + DAY_MS)
                if lo > hi:
                    continue
                stamps = np.arange(lo, hi + 1, period_ms, dtype=np.int64)
                skeleton = self._skeleton(symbol, day)
                minute = (stamps - 1 - day_start) // MINUTE_MS
                times.append(stamps)
                amounts.append(skeleton.oi_steps[minute])
                prices.append(skeleton.close_ticks[minute])
        stamps = np.concatenate(times) if times else _empty_int()
        steps = np.concatenate(amounts) if amounts else _empty_int()
        close = np.concatenate(prices) if prices else _empty_int()
        value: FloatArray = np.round(
            (steps * float(spec.step_size)) * (close * float(spec.tick_size)), 8
        ).astype(np.float64)
        return OpenInterest(
            timestamp_ms=stamps,
            sum_open_interest_steps=steps * model.step_units,
            sum_open_interest_value=value,
            cmc_circulating_supply=np.full(stamps.size, spec.circulating_supply),
        )

    def funding(self, symbol: str, start_ms: int, end_ms: int) -> FundingRates:
        """Settlements with start_ms <= funding_time <= end_ms, after the listing."""
        model = self._models[symbol]
        low_ms = max(start_ms, model.listing_ms + 1)
        times: list[IntArray] = []
        rates: list[IntArray] = []
        marks: list[IntArray] = []
        with self._lock:
            for day in range((low_ms - 1) // DAY_MS, (end_ms - 1) // DAY_MS + 1):
                if low_ms > end_ms:
                    break
                skeleton = self._skeleton(symbol, day)
                keep = (skeleton.funding_time_ms >= low_ms) & (skeleton.funding_time_ms <= end_ms)
                times.append(skeleton.funding_time_ms[keep])
                rates.append(skeleton.funding_rate_e8[keep])
                marks.append(skeleton.funding_mark_ticks[keep])
        rate_e8 = np.concatenate(rates) if rates else _empty_int()
        return FundingRates(
            funding_time_ms=np.concatenate(times) if times else _empty_int(),
            funding_rate=rate_e8 / 1e8,
            mark_price_ticks=(np.concatenate(marks) if marks else _empty_int()) * model.tick_units,
        )

    # --- ground truth -----------------------------------------------------------------------

    def maintenance_windows(self, symbol: str, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """[start, end) windows without trades or candles that overlap the range."""
        model = self._models[symbol]
        low_ms = max(start_ms, model.listing_ms)
        windows: list[tuple[int, int]] = []
        if end_ms < low_ms:
            return windows
        first_block = low_ms // DAY_MS // MAINTENANCE_BLOCK_DAYS
        last_block = end_ms // DAY_MS // MAINTENANCE_BLOCK_DAYS
        for block in range(first_block, last_block + 1):
            day, start_minute, end_minute = maintenance_of_block(self._seed, block)
            window = (
                day * DAY_MS + start_minute * MINUTE_MS,
                day * DAY_MS + end_minute * MINUTE_MS,
            )
            if window[0] <= end_ms and window[1] > low_ms:
                windows.append(window)
        return windows

    def episodes(self, symbol: str, start_ms: int, end_ms: int) -> list[Episode]:
        """Planted episodes and outages whose [start, end) overlaps [start_ms, end_ms]."""
        model = self._models[symbol]
        spec = self._specs[symbol]
        low_ms = max(start_ms, model.listing_ms)
        found = [
            Episode(kind="maintenance", symbol=symbol, start_ms=lo, end_ms=hi)
            for lo, hi in self.maintenance_windows(symbol, start_ms, end_ms)
        ]
        first_day = max(model.listing_day, low_ms // DAY_MS - _EPISODE_LOOKBACK_DAYS)
        with self._lock:
            for day in range(first_day, end_ms // DAY_MS + 1) if end_ms >= low_ms else ():
                for planned in self._skeleton(symbol, day).episodes:
                    episode = _public_episode(planned, spec)
                    if episode.start_ms <= end_ms and episode.end_ms > start_ms:
                        found.append(episode)
        found.sort(key=lambda episode: (episode.start_ms, episode.kind))
        return found

    # --- introspection ----------------------------------------------------------------------

    def generated_trade_days(self, symbol: str) -> list[int]:
        """UTC day numbers (ms // 86_400_000) whose trade detail has been generated so far."""
        with self._lock:
            return sorted(self._trade_days[symbol])

    def cache_info(self) -> dict[str, int]:
        """Sizes of the caches and how many day blocks of trades were generated in total."""
        with self._lock:
            return {
                "trade_days_cached": len(self._trades),
                "candle_days_cached": len(self._candles),
                "skeleton_days_cached": len(self._skeletons),
                "checkpoint_days": sum(len(items) for items in self._checkpoints.values()),
                "trade_day_generations": self._trade_generations,
            }

    # --- internals (call with the lock held) -------------------------------------------------

    def _build(self, symbol: str, day: int, state: DayState) -> DaySkeleton:
        skeleton = build_day(
            self._models[symbol],
            day,
            state,
            outage=maintenance_minutes(self._seed, day),
            rates=self._rates,
        )
        self._skeletons.put((symbol, day), skeleton)
        return skeleton

    def _extend_checkpoints(self, symbol: str) -> None:
        checkpoints = self._checkpoints[symbol]
        day = self._models[symbol].listing_day + len(checkpoints) - 1
        skeleton = self._skeletons.get((symbol, day)) or self._build(symbol, day, checkpoints[-1])
        checkpoints.append(skeleton.state_out)
        self._checkpoint_ids[symbol].append(skeleton.state_out.next_agg_id)

    def _skeleton(self, symbol: str, day: int) -> DaySkeleton:
        skeleton = self._skeletons.get((symbol, day))
        if skeleton is not None:
            return skeleton
        model = self._models[symbol]
        index = day - model.listing_day
        if index < 0:
            raise ValueError(f"{symbol}: day {day} is before the listing")
        while len(self._checkpoints[symbol]) <= index:
            self._extend_checkpoints(symbol)
        return self._skeletons.get((symbol, day)) or self._build(
            symbol, day, self._checkpoints[symbol][index]
        )

    def _day_of_agg_id(self, symbol: str, agg_id: int, *, until_ms: int | None) -> int | None:
        """The UTC day holding trade ``agg_id`` (None when it lies beyond the allowed horizon)."""
        model = self._models[symbol]
        ids = self._checkpoint_ids[symbol]
        horizon = model.listing_day + _MAX_DAYS_AHEAD
        if until_ms is not None:
            horizon = min(horizon, until_ms // DAY_MS)
        while ids[-1] <= agg_id:
            if model.listing_day + len(ids) - 1 > horizon:
                return None
            self._extend_checkpoints(symbol)
        return model.listing_day + bisect.bisect_right(ids, agg_id) - 1

    def _trade_block(self, symbol: str, day: int) -> TradeBlock:
        key = (symbol, day)
        block = self._trades.get(key)
        if block is None:
            block = generate_trades(self._models[symbol], self._skeleton(symbol, day))
            self._trades.put(key, block)
            self._trade_days[symbol].add(day)
            self._trade_generations += 1
        return block

    def _minute_candles_until(self, symbol: str, day: int, now_ms: int) -> MinuteCandles:
        """The day's one-minute candles as seen at ``now_ms`` (full days are cached)."""
        day_start = day * DAY_MS
        model = self._models[symbol]
        if now_ms >= day_start + DAY_MS - 1:
            key = (symbol, day)
            candles = self._candles.get(key)
            if candles is None:
                skeleton = self._skeleton(symbol, day)
                candles = minute_candles(
                    self._trade_block(symbol, day),
                    start_ms=day_start,
                    present=skeleton.present,
                    previous_close=skeleton.state_in.close_ticks * model.tick_units,
                )
                self._candles.put(key, candles)
            return candles
        skeleton = self._skeleton(symbol, day)
        block = self._trade_block(symbol, day)
        minute_open = day_start + np.arange(MINUTES_PER_DAY, dtype=np.int64) * MINUTE_MS
        return minute_candles(
            block,
            start_ms=day_start,
            present=skeleton.present & (minute_open <= now_ms),
            previous_close=skeleton.state_in.close_ticks * model.tick_units,
            trade_limit=int(np.searchsorted(block.time_ms, now_ms, side="right")),
        )


def _public_episode(planned: PlannedEpisode, spec: SymbolSpec) -> Episode:
    """The ground-truth record of a resolved episode (absolute minutes → ms, ticks → price)."""
    tick = float(spec.tick_size)
    return Episode(
        kind=planned.kind,  # type: ignore[arg-type]
        symbol=spec.symbol,
        start_ms=planned.start_minute * MINUTE_MS,
        end_ms=planned.end_minute * MINUTE_MS,
        direction="up" if planned.direction > 0 else "down",
        outcome=planned.outcome,  # type: ignore[arg-type]
        trigger_ms=planned.trigger_minute * MINUTE_MS,
        level_price=None
        if planned.level_ticks is None
        else round(planned.level_ticks * tick, spec.price_decimals),
        level_kind=planned.level_kind,
        detail=dict(planned.detail),
    )


def _empty_int() -> IntArray:
    return np.zeros(0, dtype=np.int64)


def _agg_slice(block: TradeBlock, first: int, stop: int) -> AggTrades:
    return AggTrades(
        agg_id=block.first_agg_id + np.arange(first, stop, dtype=np.int64),
        price_ticks=block.price[first:stop],
        qty_steps=block.qty[first:stop],
        first_trade_id=block.first_trade_id[first:stop],
        last_trade_id=block.last_trade_id[first:stop],
        time_ms=block.time_ms[first:stop],
        buyer_is_maker=block.buyer_is_maker[first:stop],
    )


def _concat_trades(pieces: list[AggTrades]) -> AggTrades:
    if len(pieces) == 1:
        return pieces[0]
    if not pieces:
        empty = _empty_int()
        return AggTrades(empty, empty, empty, empty, empty, empty, np.zeros(0, dtype=bool))
    return AggTrades(
        agg_id=np.concatenate([piece.agg_id for piece in pieces]),
        price_ticks=np.concatenate([piece.price_ticks for piece in pieces]),
        qty_steps=np.concatenate([piece.qty_steps for piece in pieces]),
        first_trade_id=np.concatenate([piece.first_trade_id for piece in pieces]),
        last_trade_id=np.concatenate([piece.last_trade_id for piece in pieces]),
        time_ms=np.concatenate([piece.time_ms for piece in pieces]),
        buyer_is_maker=np.concatenate([piece.buyer_is_maker for piece in pieces]),
    )


def format_fixed(units: IntArray, decimals: int) -> list[str]:
    """Integers in units of 10**-decimals as Binance decimal strings: (123456, 2) -> "1234.56".

    Negative values keep their sign ("-0.00010000"); zero is never negative; decimals 0 → "5".
    """
    values = np.ascontiguousarray(units, dtype=np.int64)
    if values.size == 0:
        return []
    if decimals <= 0:
        plain: list[str] = pa.array(values).cast(pa.string()).to_pylist()
        return plain
    # Arrow renders decimal128 in C, ~3× faster than any per-value Python formatting: the int64
    # units become the unscaled 128-bit values (high word = sign extension).
    wide = np.empty((values.size, 2), dtype=np.int64)
    wide[:, 0] = values
    wide[:, 1] = values >> 63
    decimal = pa.Array.from_buffers(
        pa.decimal128(38, decimals), values.size, [None, pa.py_buffer(wide)]
    )
    texts: list[str] = decimal.cast(pa.string()).to_pylist()
    if decimals > 6:
        # Arrow switches to scientific notation ("5E-8") below 1e-6; write those by hand.
        magnitude = np.abs(values)
        small = np.flatnonzero((magnitude < 10 ** (decimals - 6)) | (magnitude < 0))
        scale = 10**decimals
        for index in small.tolist():
            value = int(values[index])
            whole, fraction = divmod(abs(value), scale)
            texts[index] = f"{'-' if value < 0 else ''}{whole}.{fraction:0{decimals}d}"
    return texts

"""Trade-level detail of one symbol-day and the candles that aggregate it exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingmon.exchange._model import (
    MINUTE_MS,
    MINUTES_PER_DAY,
    STREAM_TRADES,
    BoolArray,
    IntArray,
    SymbolModel,
    rng_for,
)
from ingmon.exchange._sizes import trade_quantities
from ingmon.exchange._skeleton import DaySkeleton

# A trade that lifts the price is more likely a taker buy (and vice versa).
_TICK_RULE_WEIGHT = 0.2
_LARGE_TRADE_MULTIPLE = 4.0  # a trade this many times its minute's mean size is a block
_LARGE_TRADE_LEAN = 1.5
_BUY_PROB_CLIP = (0.03, 0.97)

# Rows of MinuteCandles.values and of aggregated candles.
OPEN, HIGH, LOW, CLOSE, VOLUME, QUOTE, COUNT, TAKER_VOLUME, TAKER_QUOTE = range(9)
FIELDS = 9


@dataclass(frozen=True)
class TradeBlock:
    """All aggregate trades of one symbol-day, ascending, in public units.

    Prices are integers in units of 10**-price_decimals, quantities in 10**-quantity_decimals.
    """

    day: int
    first_agg_id: int
    time_ms: IntArray
    price: IntArray
    qty: IntArray
    first_trade_id: IntArray
    last_trade_id: IntArray
    buyer_is_maker: BoolArray

    def __len__(self) -> int:
        return int(self.time_ms.size)


@dataclass(frozen=True)
class MinuteCandles:
    """The 1440 one-minute candles of a day: ``values[field, minute]`` and which minutes exist."""

    present: BoolArray
    values: IntArray


def generate_trades(model: SymbolModel, skeleton: DaySkeleton) -> TradeBlock:
    """Trades of the day: a Brownian bridge on the tick grid from each minute's previous close
    to its close, with sides, sizes and underlying-trade counts drawn around the skeleton."""
    rng = rng_for(model.seed, model.key, STREAM_TRADES, skeleton.day)
    counts = skeleton.count
    total = int(counts.sum())
    offsets = np.zeros(MINUTES_PER_DAY + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    starts = offsets[:-1]
    nonempty = counts > 0
    last_of_minute = offsets[1:][nonempty] - 1

    minute_of_trade = np.repeat(np.arange(MINUTES_PER_DAY, dtype=np.int64), counts)
    time_ms = (
        skeleton.start_ms
        + minute_of_trade * MINUTE_MS
        + rng.integers(0, MINUTE_MS, total, dtype=np.int64)
    )
    # Minutes occupy disjoint ranges of milliseconds, so one sort orders within each minute.
    time_ms.sort()

    walk = np.cumsum(rng.standard_normal(total))
    walk -= np.repeat(np.concatenate(([0.0], walk))[starts], counts)
    position = np.arange(1, total + 1, dtype=np.int64) - np.repeat(starts, counts)
    fraction = position / np.repeat(counts, counts)
    walk_end = np.zeros(MINUTES_PER_DAY)
    walk_end[nonempty] = walk[last_of_minute]
    bridge = walk - fraction * np.repeat(walk_end, counts)
    previous_close = np.concatenate(([skeleton.state_in.close_ticks], skeleton.close_ticks[:-1]))
    from_ticks = np.repeat(previous_close, counts).astype(np.float64)
    to_ticks = np.repeat(skeleton.close_ticks, counts).astype(np.float64)
    amplitude = np.repeat(skeleton.sigma_ticks / np.sqrt(np.maximum(counts, 1)), counts)
    price = np.rint(from_ticks + fraction * (to_ticks - from_ticks) + amplitude * bridge)
    price_ticks = np.maximum(price, 1.0).astype(np.int64)
    # The bridge ends exactly on the close; pin it against floating-point residue.
    price_ticks[last_of_minute] = skeleton.close_ticks[nonempty]

    # The same quantities the skeleton summed into each minute's volume.
    qty_mean = np.repeat(skeleton.qty_mean_steps, counts)
    qty_steps = trade_quantities(model, skeleton.day, qty_mean)

    previous_price = np.concatenate(([skeleton.state_in.close_ticks], price_ticks[:-1]))
    minute_buy_prob = np.repeat(skeleton.buy_prob, counts)
    small_buy_prob = minute_buy_prob + _TICK_RULE_WEIGHT * np.sign(price_ticks - previous_price)
    # Block trades carry the minute's intent more than the tape's tick: the flow's lean, amplified.
    large_buy_prob = 0.5 + _LARGE_TRADE_LEAN * (minute_buy_prob - 0.5)
    large = qty_steps > _LARGE_TRADE_MULTIPLE * qty_mean
    buy_prob = np.clip(np.where(large, large_buy_prob, small_buy_prob), *_BUY_PROB_CLIP)
    taker_buy = rng.random(total) < buy_prob

    extra = skeleton.underlying - counts
    extra_total = int(extra.sum())
    owner = np.repeat(starts, extra) + (rng.random(extra_total) * np.repeat(counts, extra)).astype(
        np.int64
    )
    per_trade = 1 + np.bincount(owner, minlength=total).astype(np.int64)
    last_trade_id = skeleton.state_in.next_trade_id + np.cumsum(per_trade) - 1
    first_trade_id = last_trade_id - per_trade + 1

    return TradeBlock(
        day=skeleton.day,
        first_agg_id=skeleton.state_in.next_agg_id,
        time_ms=time_ms,
        price=price_ticks * model.tick_units,
        qty=qty_steps * model.step_units,
        first_trade_id=first_trade_id,
        last_trade_id=last_trade_id,
        buyer_is_maker=~taker_buy,
    )


def minute_candles(
    block: TradeBlock,
    *,
    start_ms: int,
    present: BoolArray,
    previous_close: int,
    trade_limit: int | None = None,
) -> MinuteCandles:
    """One-minute candles of the day from its first ``trade_limit`` trades (all by default).

    Quiet minutes carry the last traded price (``previous_close`` before the first trade).
    """
    stop = len(block) if trade_limit is None else trade_limit
    price = block.price[:stop]
    qty = block.qty[:stop]
    minute = (block.time_ms[:stop] - start_ms) // MINUTE_MS
    counts = np.bincount(minute, minlength=MINUTES_PER_DAY)
    nonempty = counts > 0
    offsets = np.concatenate(([0], np.cumsum(counts)))
    first = offsets[:-1][nonempty]
    last = offsets[1:][nonempty] - 1

    values = np.zeros((FIELDS, MINUTES_PER_DAY), dtype=np.int64)
    if first.size:
        quote = price * qty
        taker = ~block.buyer_is_maker[:stop]
        values[OPEN, nonempty] = price[first]
        values[HIGH, nonempty] = np.maximum.reduceat(price, first)
        values[LOW, nonempty] = np.minimum.reduceat(price, first)
        values[CLOSE, nonempty] = price[last]
        values[VOLUME, nonempty] = np.add.reduceat(qty, first)
        values[QUOTE, nonempty] = np.add.reduceat(quote, first)
        trades = block.last_trade_id[:stop] - block.first_trade_id[:stop] + 1
        values[COUNT, nonempty] = np.add.reduceat(trades, first)
        values[TAKER_VOLUME, nonempty] = np.add.reduceat(np.where(taker, qty, 0), first)
        values[TAKER_QUOTE, nonempty] = np.add.reduceat(np.where(taker, quote, 0), first)
    last_traded = np.maximum.accumulate(np.where(nonempty, np.arange(MINUTES_PER_DAY), -1))
    carried_close = np.where(
        last_traded >= 0, values[CLOSE][np.maximum(last_traded, 0)], previous_close
    )
    carried_before = np.concatenate(([previous_close], carried_close[:-1]))
    for row in (OPEN, HIGH, LOW, CLOSE):
        values[row] = np.where(nonempty, values[row], carried_before)
    return MinuteCandles(present=present, values=values)


def aggregate(candles: MinuteCandles, minutes_per_candle: int) -> tuple[BoolArray, IntArray]:
    """Candles of ``minutes_per_candle`` (a divisor of a day) from the day's one-minute candles.

    Returns (exists, values[field, candle]); a candle exists when one of its minutes does. OHLC
    come from the minutes with trades; with none, the carried price of its first present minute.
    """
    groups = MINUTES_PER_DAY // minutes_per_candle
    present = candles.present.reshape(groups, minutes_per_candle)
    values = candles.values.reshape(FIELDS, groups, minutes_per_candle)
    traded = values[COUNT] > 0
    exists: BoolArray = np.asarray(present.any(axis=1), dtype=np.bool_)
    any_traded = traded.any(axis=1)
    rows = np.arange(groups)
    first_traded = traded.argmax(axis=1)
    last_traded = minutes_per_candle - 1 - traded[:, ::-1].argmax(axis=1)
    carried = values[OPEN][rows, present.argmax(axis=1)]
    int_min = np.iinfo(np.int64).min
    int_max = np.iinfo(np.int64).max
    out: IntArray = np.empty((FIELDS, groups), dtype=np.int64)
    out[OPEN] = np.where(any_traded, values[OPEN][rows, first_traded], carried)
    out[CLOSE] = np.where(any_traded, values[CLOSE][rows, last_traded], carried)
    out[HIGH] = np.where(any_traded, np.where(traded, values[HIGH], int_min).max(axis=1), carried)
    out[LOW] = np.where(any_traded, np.where(traded, values[LOW], int_max).min(axis=1), carried)
    out[VOLUME:] = values[VOLUME:].sum(axis=2)
    return exists, out

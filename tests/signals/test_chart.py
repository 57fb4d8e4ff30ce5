"""The Signals drill-down's data: candles aggregated to the zoom agree with a brute-force loop and
a hand-worked table, the bar count stays within the budget from 1 h to 90 d (and beyond), the
visible range's profile is profile.py's own profile of the same bars or trades, markers are
coloured by score, and the audit lists the seven rubric points with their inputs and thresholds.

Lakes: a hand-written 90-day lake of 1m candles (no trades), and a lake backfilled over real HTTP
from the local exchange (three days of BTCUSDT with trades) and scored by the signal engine.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from binance._reference import backfill_complete, exchange, settings_for

from ingmon.binance.request import BackfillRequest
from ingmon.errors import UsageError
from ingmon.exchange import Market
from ingmon.lake import Lake
from ingmon.schema import CANDLES
from ingmon.signals.chart import (
    CHART_BAR_BUDGET,
    CHART_INTERVALS,
    SCORE_COLORS,
    UNSCORED_COLOR,
    aggregate_candles,
    audit_points,
    bucket_count,
    candle_extent,
    choose_interval,
    default_range,
    interval_label,
    point_thresholds,
    profile_bins,
    score_color,
    signal_audit,
    signal_markers,
    symbol_signals,
    visible_range,
)
from ingmon.signals.profile import candle_profile, infer_tick_size, trade_profile
from ingmon.signals.rules import ScoreRules, SignalConfig
from ingmon.signals.scoring import evaluate_points
from ingmon.signals.store import read_scores, score_symbol
from ingmon.times import DAY_MS, HOUR_MS, MINUTE_MS, day_of

NOW_MS = 1_790_000_000_000 + 37_123  # 2026-09-21 14:13:57.123 UTC
SYMBOL = "BTCUSDT"
T0 = 1_789_999_200_000  # 2026-09-21 14:00 UTC: a multiple of 15m
COLUMNS = (
    "open_time_ms",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "taker_buy_volume",
    "trade_count",
    "minutes",
)
# Which thresholds each rubric point's predicate reads (written from scoring.py's predicates).
THRESHOLDS_READ = {
    "ema_stack": set(),
    "htf_slope": {"htf_slope_min"},
    "adx_trend": {"adx_min"},
    "delta_confirm": {"delta_z_min"},
    "oi_supports_thesis": {"oi_spike_z", "oi_spike_bars"},
    "funding_not_crowded": {"funding_baseline"},
    "liquid_session": {"liquid_hours_utc", "liquid_weight_min"},
}


# ---- the references: plain loops ----------------------------------------------------------------


def bars_of(rows: Sequence[Sequence[float]]) -> pl.DataFrame:
    """Bars from (open_time_ms, open, high, low, close, volume, taker_buy, trades) rows."""
    return pl.DataFrame(
        [(*row, 1) for row in rows],
        schema={
            "open_time_ms": pl.Int64,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
            "taker_buy_volume": pl.Float64,
            "trade_count": pl.Int64,
            "minutes": pl.Int64,
        },
        orient="row",
    )


def brute_aggregate(bars: pl.DataFrame, interval_ms: int) -> list[dict[str, Any]]:
    """One dict per bucket, oldest first, by walking the bars in time order."""
    buckets: dict[int, dict[str, Any]] = {}
    for row in sorted(bars.to_dicts(), key=lambda r: r["open_time_ms"]):
        key = row["open_time_ms"] - row["open_time_ms"] % interval_ms
        bar = buckets.get(key)
        if bar is None:
            buckets[key] = {**row, "open_time_ms": key}
            continue
        bar["high"] = max(bar["high"], row["high"])
        bar["low"] = min(bar["low"], row["low"])
        bar["close"] = row["close"]
        for name in ("volume", "taker_buy_volume", "trade_count", "minutes"):
            bar[name] += row[name]
    return [buckets[key] for key in sorted(buckets)]


def assert_bars_equal(actual: pl.DataFrame, expected: list[dict[str, Any]]) -> None:
    assert actual.columns == list(COLUMNS)
    assert len(actual) == len(expected)
    for got, want in zip(actual.to_dicts(), expected, strict=True):
        assert got.keys() == want.keys()
        for name in COLUMNS:
            assert got[name] == pytest.approx(want[name], rel=1e-12), name


def random_minutes(count: int, *, seed: int, start_ms: int = T0, gaps: bool = True) -> pl.DataFrame:
    """A random walk on a 0.1 grid, one bar a minute, some minutes missing."""
    rng = random.Random(seed)
    price = 1000.0
    rows = []
    for minute in range(count):
        if gaps and rng.random() < 0.1:
            continue
        open_ = price
        close = round(open_ + rng.randint(-20, 20) / 10, 1)
        high = round(max(open_, close) + rng.randint(0, 10) / 10, 1)
        low = round(min(open_, close) - rng.randint(0, 10) / 10, 1)
        volume = rng.randint(1, 400) / 4
        trades = rng.randint(1, 50)
        rows.append(
            (start_ms + minute * MINUTE_MS, open_, high, low, close, volume, volume / 4, trades)
        )
        price = close
    return bars_of(rows)


# ---- aggregation --------------------------------------------------------------------------------


def test_aggregating_a_hand_built_table_gives_the_hand_worked_bars() -> None:
    """Seven minutes (one missing) on a 3m grid: open of the first, high max, low min, close of
    the last minute, volumes and trades summed, the minutes counted — worked out by hand."""
    minute = MINUTE_MS
    table = bars_of(
        [
            (T0 + 0 * minute, 100, 102, 99, 101, 5, 2, 10),
            (T0 + 1 * minute, 101, 103, 100, 102, 3, 1, 6),
            (T0 + 2 * minute, 102, 102, 98, 99, 4, 3, 8),
            # T0 + 3 minutes is missing
            (T0 + 4 * minute, 99, 105, 99, 104, 6, 4, 12),
            (T0 + 5 * minute, 104, 104, 101, 103, 2, 1, 3),
            (T0 + 6 * minute, 103, 106, 102, 105, 1, 1, 2),
        ]
    )
    expected = [
        {"open_time_ms": T0, "open": 100, "high": 103, "low": 98, "close": 99, "volume": 12,
         "taker_buy_volume": 6, "trade_count": 24, "minutes": 3},
        {"open_time_ms": T0 + 3 * minute, "open": 99, "high": 105, "low": 99, "close": 103,
         "volume": 8, "taker_buy_volume": 5, "trade_count": 15, "minutes": 2},
        {"open_time_ms": T0 + 6 * minute, "open": 103, "high": 106, "low": 102, "close": 105,
         "volume": 1, "taker_buy_volume": 1, "trade_count": 2, "minutes": 1},
    ]  # fmt: skip
    assert_bars_equal(aggregate_candles(table, interval_ms=3 * minute), expected)
    assert expected == brute_aggregate(table, 3 * minute)
    shuffled = table.sample(fraction=1.0, shuffle=True, seed=3)
    assert_bars_equal(aggregate_candles(shuffled, interval_ms=3 * minute), expected)


@pytest.mark.parametrize("interval_ms", [MINUTE_MS, 5 * MINUTE_MS, HOUR_MS, 4 * HOUR_MS, DAY_MS])
def test_aggregation_equals_a_brute_force_loop(interval_ms: int) -> None:
    """Three days of random minutes with gaps, on epoch-aligned buckets of every size."""
    minutes = random_minutes(3 * 1440, seed=interval_ms % 997, start_ms=T0 + 7 * MINUTE_MS)
    assert_bars_equal(
        aggregate_candles(minutes, interval_ms=interval_ms), brute_aggregate(minutes, interval_ms)
    )


def test_aggregating_bars_of_a_dividing_interval_equals_aggregating_the_minutes() -> None:
    """1m → 5m → 1h gives the bars of 1m → 1h: the profile's bars feed the chart's exactly."""
    minutes = random_minutes(2000, seed=5)
    five = aggregate_candles(minutes, interval_ms=5 * MINUTE_MS)
    assert_bars_equal(
        aggregate_candles(five, interval_ms=HOUR_MS), brute_aggregate(minutes, HOUR_MS)
    )


def test_bucket_count_counts_the_buckets_a_range_meets() -> None:
    """Against enumerating the buckets minute by minute."""
    for start, end, interval in [
        (T0, T0 + HOUR_MS, 15 * MINUTE_MS),
        (T0 + 1, T0 + HOUR_MS, 15 * MINUTE_MS),
        (T0 + 7 * MINUTE_MS, T0 + 8 * MINUTE_MS + 1, 5 * MINUTE_MS),
        (T0, T0 + 1, DAY_MS),
        (T0, T0, MINUTE_MS),
    ]:
        met = {t // interval for t in range(start, end, 1000)}
        assert bucket_count(start, end, interval) == len(met)
    with pytest.raises(UsageError):
        bucket_count(T0, T0 + 1, 0)


SPANS = [HOUR_MS, 6 * HOUR_MS, DAY_MS, 3 * DAY_MS, 7 * DAY_MS, 30 * DAY_MS, 90 * DAY_MS]


@pytest.mark.parametrize("span_ms", [*SPANS, 365 * DAY_MS, 5 * 365 * DAY_MS])
@pytest.mark.parametrize("offset_ms", [0, 7 * MINUTE_MS + 13_000])
@pytest.mark.parametrize("budget", [CHART_BAR_BUDGET, 300])
def test_the_chosen_interval_keeps_the_bars_within_the_budget(
    span_ms: int, offset_ms: int, budget: int
) -> None:
    """From 1 h to 5 years, aligned or not: at most ``budget`` bars, and the finest interval
    that does so (the next finer one of the list would exceed it)."""
    start = T0 + offset_ms
    end = start + span_ms
    interval = choose_interval(start, end, budget=budget)
    assert bucket_count(start, end, interval) <= budget
    finer = [step for step in CHART_INTERVALS if step < interval]
    if finer:
        assert bucket_count(start, end, finer[-1]) > budget


def test_a_90_day_range_gets_4h_bars_and_an_hour_gets_minutes() -> None:
    """The worked numbers: 90 days of 1m (129,600 candles) → 540 bars of 4h; 1 h → 60 × 1m."""
    start = T0 - T0 % DAY_MS
    interval = choose_interval(start, start + 90 * DAY_MS)
    assert interval_label(interval) == "4h"
    assert bucket_count(start, start + 90 * DAY_MS, interval) == 540
    assert choose_interval(T0, T0 + HOUR_MS) == MINUTE_MS
    assert interval_label(2 * DAY_MS) == "2d"
    assert interval_label(15 * MINUTE_MS) == "15m"


def test_within_picks_only_intervals_that_divide_it() -> None:
    """The profile's interval divides the chart's (3m never serves 5m bars)."""
    start, end = T0, T0 + 2 * DAY_MS
    assert choose_interval(start, end, budget=1000, within=5 * MINUTE_MS) == 5 * MINUTE_MS
    assert choose_interval(start, end, budget=5000, within=15 * MINUTE_MS) == 1 * MINUTE_MS
    assert choose_interval(start, end, budget=2, within=HOUR_MS) == HOUR_MS
    with pytest.raises(UsageError):
        choose_interval(start, end, budget=1)


def test_the_default_range_is_the_latest_week_with_room_for_new_bars() -> None:
    """Seven days back from the last candle's end, a twentieth of that ahead; never before
    the first candle."""
    first, end = T0 - 30 * DAY_MS, T0
    assert default_range((first, end)) == (end - 7 * DAY_MS, end + 7 * DAY_MS // 20)
    assert default_range((end - HOUR_MS, end)) == (end - HOUR_MS, end + 3 * MINUTE_MS)


# ---- a 90-day lake of 1m candles ----------------------------------------------------------------


def candle_table(minutes: pl.DataFrame) -> pa.Table:
    """The lake's candle rows for bars of 1m."""
    opens = minutes["open_time_ms"].to_numpy()
    return pa.table(
        {
            "open_time": pa.array(opens, pa.timestamp("ms", tz="UTC")),
            "open": minutes["open"].to_numpy(),
            "high": minutes["high"].to_numpy(),
            "low": minutes["low"].to_numpy(),
            "close": minutes["close"].to_numpy(),
            "volume": minutes["volume"].to_numpy(),
            "close_time": pa.array(opens + MINUTE_MS - 1, pa.timestamp("ms", tz="UTC")),
            "quote_volume": minutes["volume"].to_numpy() * minutes["close"].to_numpy(),
            "trade_count": minutes["trade_count"].to_numpy(),
            "taker_buy_volume": minutes["taker_buy_volume"].to_numpy(),
            "taker_buy_quote_volume": np.zeros(len(minutes)),
            "ignore": np.zeros(len(minutes)),
        }
    )


LONG_START = T0 - 90 * DAY_MS - T0 % DAY_MS  # 00:00 UTC, 90 days before T0's day


@pytest.fixture(scope="module")
def long_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, pl.DataFrame]:
    """90 full days of 1m candles (129,600, no gaps, no trades) and the minutes written."""
    lake = Lake(tmp_path_factory.mktemp("chart90") / "lake")
    minutes = random_minutes(90 * 1440, seed=90, start_ms=LONG_START, gaps=False)
    lake.upsert(CANDLES, candle_table(minutes), symbol=SYMBOL, param="1m")
    return lake, minutes


def test_a_90_day_chart_sends_540_bars_not_129600(long_lake: tuple[Lake, pl.DataFrame]) -> None:
    """The payload is bounded by the budget: 90 days → 540 bars of 4h from all 129,600
    minutes, each equal to the brute-force aggregation of the stored minutes."""
    lake, minutes = long_lake
    start, end = LONG_START, LONG_START + 90 * DAY_MS
    view = visible_range(lake, SYMBOL, start_ms=start, end_ms=end)
    assert view.bars.height == 540 <= CHART_BAR_BUDGET
    assert interval_label(view.interval_ms) == "4h"
    assert view.minutes == 129_600
    assert_bars_equal(view.bars, brute_aggregate(minutes, 4 * HOUR_MS))
    assert candle_extent(lake, SYMBOL) == (start, end)


@pytest.mark.parametrize(
    ("start_offset_ms", "span_ms"),
    [(40 * DAY_MS, HOUR_MS), (40 * DAY_MS + 13 * MINUTE_MS + 5_000, 6 * HOUR_MS),
     (40 * DAY_MS + 7 * HOUR_MS, 3 * DAY_MS), (41 * DAY_MS + 1, 30 * DAY_MS),
     (-5 * DAY_MS, 10 * DAY_MS)],
)  # fmt: skip
def test_the_bars_of_any_range_are_the_whole_buckets_around_it(
    long_lake: tuple[Lake, pl.DataFrame], start_offset_ms: int, span_ms: int
) -> None:
    """Edge buckets are read whole (a small pan does not change a bar); a range reaching
    before the first candle gets the bars that exist."""
    lake, minutes = long_lake
    start = LONG_START + start_offset_ms
    end = start + span_ms
    view = visible_range(lake, SYMBOL, start_ms=start, end_ms=end)
    interval = choose_interval(start, end)
    assert view.interval_ms == interval
    first, last = start - start % interval, end + (-end) % interval
    around = minutes.filter((pl.col("open_time_ms") >= first) & (pl.col("open_time_ms") < last))
    assert_bars_equal(view.bars, brute_aggregate(around, interval))
    assert view.bars.height <= CHART_BAR_BUDGET


def test_the_candle_profile_is_profile_py_on_the_range_bars(
    long_lake: tuple[Lake, pl.DataFrame],
) -> None:
    """A 3-day range: its profile is candle_profile of the bars of the profile's interval
    opening in [floor(start), end), with the tick inferred from their prices."""
    lake, minutes = long_lake
    start = LONG_START + 50 * DAY_MS + 17 * MINUTE_MS
    end = start + 3 * DAY_MS
    view = visible_range(lake, SYMBOL, start_ms=start, end_ms=end)
    built = view.profile
    assert built is not None and built.method == "candles"
    assert built.source_interval_ms is not None
    step = built.source_interval_ms
    assert view.interval_ms % step == 0
    assert bucket_count(start, end, step) <= 5000
    bars = pl.DataFrame(brute_aggregate(minutes, step)).filter(
        (pl.col("open_time_ms") >= start - start % step) & (pl.col("open_time_ms") < end)
    )
    prices = np.concatenate([bars[c].to_numpy() for c in ("open", "high", "low", "close")])
    expected = candle_profile(
        bars["high"].to_numpy(),
        bars["low"].to_numpy(),
        bars["volume"].to_numpy(),
        bars["taker_buy_volume"].to_numpy(),
        tick_size=infer_tick_size(prices),
    )
    profile = built.profile
    assert built.source_rows == bars.height
    assert (profile.first_bin, profile.ticks_per_bin) == (
        expected.first_bin,
        expected.ticks_per_bin,
    )
    np.testing.assert_allclose(profile.volume, expected.volume, rtol=1e-9)
    np.testing.assert_allclose(profile.buy_volume, expected.buy_volume, rtol=1e-9)
    assert (profile.poc_price, profile.val, profile.vah) == (
        expected.poc_price,
        expected.val,
        expected.vah,
    )


def test_a_short_range_without_trades_uses_the_candles_and_says_why(
    long_lake: tuple[Lake, pl.DataFrame],
) -> None:
    """Two hours (short enough for trades) in a lake without trades: the 1m candles' profile,
    with the reason in its note."""
    lake, _ = long_lake
    start = LONG_START + 20 * DAY_MS
    view = visible_range(lake, SYMBOL, start_ms=start, end_ms=start + 2 * HOUR_MS)
    assert view.profile is not None
    assert view.profile.method == "candles"
    assert view.profile.source_interval_ms == MINUTE_MS
    assert "incomplete" in view.profile.note


def test_a_range_without_candles_has_no_bars_and_no_profile(
    long_lake: tuple[Lake, pl.DataFrame],
) -> None:
    """Before the first candle, and a symbol never stored: empty bars, no profile, no extent."""
    lake, _ = long_lake
    view = visible_range(lake, SYMBOL, start_ms=LONG_START - 3 * DAY_MS, end_ms=LONG_START)
    assert view.bars.height == 0 and view.profile is None and view.minutes == 0
    other = visible_range(lake, "ETHUSDT", start_ms=LONG_START, end_ms=LONG_START + DAY_MS)
    assert other.bars.height == 0 and other.profile is None
    assert candle_extent(lake, "ETHUSDT") is None
    with pytest.raises(UsageError):
        visible_range(lake, SYMBOL, start_ms=LONG_START, end_ms=LONG_START)


# ---- a backfilled and scored lake ---------------------------------------------------------------


def scored_lake(root: Path) -> Lake:
    """Three days of BTCUSDT (1m candles, trades, open interest, funding) backfilled over HTTP
    from the local exchange into ``root``/lake and scored on 15m by the signal engine."""
    market = Market.demo(symbols=(SYMBOL,), days=4, seed=13, now_ms=NOW_MS)
    with exchange(market, NOW_MS) as server:
        backfill_complete(
            settings_for(root, server), BackfillRequest(symbols=(SYMBOL,), window_days=3)
        )
    lake = Lake(root / "lake")
    score_symbol(lake, SYMBOL, config=SignalConfig(), clock_ms=NOW_MS)
    return lake


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return scored_lake(tmp_path_factory.mktemp("chart_scored"))


def test_a_short_range_with_complete_trades_gets_the_trade_profile(scored: Lake) -> None:
    """Two hours whose trades are all in the lake: trade_profile of exactly those trades."""
    extent = candle_extent(scored, SYMBOL)
    assert extent is not None
    start = extent[0] + DAY_MS + 7 * MINUTE_MS
    end = start + 2 * HOUR_MS
    view = visible_range(scored, SYMBOL, start_ms=start, end_ms=end)
    built = view.profile
    assert built is not None and built.method == "trades"
    first = start - start % MINUTE_MS
    last = end + (-end) % MINUTE_MS
    trades = scored.read("agg_trades", symbols=SYMBOL, start=first, end=last - 1)
    candles = scored.read("candles", symbols=SYMBOL, param="1m", start=first, end=last - 1)
    counted = pc.sum(candles.column("trade_count")).as_py()
    ids = pc.subtract(trades.column("last_trade_id"), trades.column("first_trade_id"))
    assert pc.sum(ids).as_py() + trades.num_rows == counted
    prices = trades.column("price").to_numpy()
    candle_prices = np.concatenate(
        [candles.column(c).to_numpy() for c in ("open", "high", "low", "close")]
    )
    expected = trade_profile(
        prices,
        trades.column("quantity").to_numpy(),
        trades.column("is_buyer_maker").to_numpy(zero_copy_only=False),
        tick_size=infer_tick_size(np.concatenate([candle_prices, prices])),
    )
    assert built.source_rows == trades.num_rows
    np.testing.assert_allclose(built.profile.volume, expected.volume, rtol=1e-12)
    np.testing.assert_allclose(built.profile.sell_volume, expected.sell_volume, rtol=1e-12)
    assert built.profile.poc_price == expected.poc_price
    assert (built.profile.val, built.profile.vah) == (expected.val, expected.vah)


def test_missing_trades_make_the_short_range_fall_back_to_candles(
    scored: Lake, tmp_path: Path
) -> None:
    """With one day of trades deleted, a range in that day gets the candle profile."""
    copy = tmp_path / "lake"
    shutil.copytree(scored.root, copy, symlinks=True)
    lake = Lake(copy)
    extent = candle_extent(lake, SYMBOL)
    assert extent is not None
    start = extent[0] + DAY_MS + 3 * HOUR_MS
    day = start - start % DAY_MS
    partitions = list((copy / "agg_trades" / f"symbol={SYMBOL}").iterdir())
    removed = [p for p in partitions if p.name.endswith(day_of(day).isoformat())]
    assert removed, [p.name for p in partitions]
    for partition in removed:
        shutil.rmtree(partition)
    view = visible_range(lake, SYMBOL, start_ms=start, end_ms=start + HOUR_MS)
    assert view.profile is not None and view.profile.method == "candles"
    assert "incomplete" in view.profile.note


def test_profile_bins_mark_the_poc_and_value_area(scored: Lake) -> None:
    """Zones, edges and the share of the POC bin, against the profile's own fields."""
    extent = candle_extent(scored, SYMBOL)
    assert extent is not None
    view = visible_range(scored, SYMBOL, start_ms=extent[0], end_ms=extent[1])
    assert view.profile is not None
    profile = view.profile.profile
    bins = profile_bins(profile)
    assert bins.height == len(profile)
    zones = bins["zone"].to_list()
    for index, zone in enumerate(zones):
        if index == profile.poc_index:
            assert zone == "poc"
        elif profile.value_area_low_index <= index <= profile.value_area_high_index:
            assert zone == "value_area"
        else:
            assert zone == "outside"
    assert bins["price_low"][0] == pytest.approx(profile.price_low)
    assert bins["price_high"][-1] == pytest.approx(profile.price_high)
    assert bins["price_low"][profile.value_area_low_index] == pytest.approx(profile.val)
    assert bins["price_high"][profile.value_area_high_index] == pytest.approx(profile.vah)
    widths = (bins["price_high"] - bins["price_low"]).to_numpy()
    np.testing.assert_allclose(widths, profile.bin_width)
    np.testing.assert_allclose(
        bins["share_of_poc"].to_numpy(), profile.volume / profile.volume[profile.poc_index]
    )
    assert bins["share_of_poc"].max() == 1.0


def test_markers_are_the_signals_of_the_range_coloured_and_sized_by_score(scored: Lake) -> None:
    """One marker per signal whose bar closes in the range, at that close and price; colour
    = the score's step of the palette, white without a score; size grows with the score."""
    signals = symbol_signals(scored, SYMBOL)
    assert signals.height > 10
    assert signals["bar_open_ms"].is_sorted()
    middle = int(signals["bar_close_ms"][signals.height // 2])
    markers = signal_markers(signals, start_ms=middle, end_ms=middle + DAY_MS)
    inside = [row for row in signals.to_dicts() if middle <= row["bar_close_ms"] < middle + DAY_MS]
    assert markers["signal_id"].to_list() == [row["signal_id"] for row in inside]
    assert markers["time_ms"].to_list() == [row["bar_close_ms"] for row in inside]
    assert markers["price"].to_list() == [row["close"] for row in inside]
    assert markers["color"].to_list() == [SCORE_COLORS[row["score"]] for row in inside]
    by_score = dict(zip(markers["score"].to_list(), markers["size"].to_list(), strict=True))
    assert [by_score[s] for s in sorted(by_score)] == sorted(by_score.values())
    assert score_color(None) == UNSCORED_COLOR
    assert score_color(0) == SCORE_COLORS[0] and score_color(7) == SCORE_COLORS[7]
    assert len(set(SCORE_COLORS)) == 8


def test_the_audit_lists_the_seven_points_with_their_inputs_and_thresholds(scored: Lake) -> None:
    """Every stored signal: the points in rubric order, each with the stored value, points and
    inputs, and exactly the thresholds its predicate reads; the values re-derive from the
    stored inputs and thresholds with scoring.evaluate_points."""
    signals = symbol_signals(scored, SYMBOL)
    scores = read_scores(scored, symbols=SYMBOL).to_dicts()
    stored = {row["score_id"]: row for row in scores}
    rubric = ScoreRules()
    seen_values = set()
    for signal in signals.to_dicts():
        audit = signal_audit(scored, symbol=SYMBOL, signal_id=signal["signal_id"])
        assert audit is not None and audit.scored
        row = stored[signal["score_id"]]
        components = json.loads(row["components"])
        thresholds = json.loads(row["thresholds"])
        inputs = json.loads(row["inputs"])
        assert [p.name for p in audit.points] == [p.name for p in rubric.points]
        assert audit.score == row["score"] == sum(p.points for p in audit.points)
        assert audit.confidence == row["confidence"] == signal["confidence"]
        rederived = evaluate_points(
            inputs, thresholds, direction=signal["direction"], setup=signal["setup"], rules=rubric
        )
        for point in audit.points:
            stored_point = components[point.name]
            assert point.value == stored_point["value"] == rederived[point.name]
            assert point.inputs == stored_point["inputs"]
            assert point.thresholds == {n: thresholds[n] for n in THRESHOLDS_READ[point.name]}
            assert point.group == stored_point["group"]
            seen_values.add(point.value)
        assert audit.watermarks == json.loads(row["watermarks"])
        assert list(audit.notes) == json.loads(row["notes"])
    assert seen_values == {0, 1, None}  # passed, failed and missing all occur in the data


def test_an_unknown_signal_has_no_audit_and_an_unscored_one_says_so(
    scored: Lake, tmp_path: Path
) -> None:
    """An id the symbol does not have → None; a stored signal without a score → scored False."""
    assert signal_audit(scored, symbol=SYMBOL, signal_id="0" * 32) is None
    assert signal_audit(scored, symbol="ETHUSDT", signal_id="0" * 32) is None
    from tests.monitor._lake import signal_row, write_signals

    lake = Lake(tmp_path / "lake")
    write_signals(lake, [signal_row(bar_open_ms=T0, score=None)], symbol=SYMBOL)
    (signal_id,) = symbol_signals(lake, SYMBOL)["signal_id"].to_list()
    audit = signal_audit(lake, symbol=SYMBOL, signal_id=signal_id)
    assert audit is not None and not audit.scored and audit.points == ()
    assert audit.signal["bar_open_ms"] == T0


def test_point_thresholds_are_the_names_a_rule_mentions() -> None:
    """Whole names only: ``adx_min`` in the text, not ``adx`` inside ``adx_min``."""
    thresholds = {"adx_min": 20.0, "adx": 1, "oi_spike_z": 1.5, "oi_spike_bars": 4}
    assert point_thresholds("ADX ≥ adx_min and +DI > −DI", thresholds) == {"adx_min": 20.0}
    assert point_thresholds("EMA20 > EMA50", thresholds) == {}
    components = {
        "zeta": {"group": "x", "value": 1, "points": 1, "inputs": {}, "rule": "zeta"},
        "adx_trend": {"group": "trend", "value": None, "points": 0, "inputs": {"adx": None},
                      "rule": "ADX ≥ adx_min"},
    }  # fmt: skip
    points = audit_points(components, thresholds)
    assert [p.name for p in points] == ["adx_trend", "zeta"]
    assert points[0].value is None and points[0].thresholds == {"adx_min": 20.0}

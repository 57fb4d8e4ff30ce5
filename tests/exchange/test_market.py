"""The market simulator: exact candles, continuous ids, grids, determinism, laziness, episodes."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pytest

from ingmon.exchange.market import AggTrades, Episode, Klines, Market, SymbolSpec, format_fixed

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
MINUTES_PER_DAY = 1440
# 2024-03-05 00:00 UTC; "now" is 20 days after the demo listing, mid-candle on purpose.
BASE_DAY_MS = 1_709_596_800_000
NOW_MS = BASE_DAY_MS + 13 * HOUR_MS + 17 * MINUTE_MS + 23_456
SEEDS = (1, 2, 3)
INTERVAL_MS = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "1h": HOUR_MS,
    "4h": 4 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "1d": DAY_MS,
}
OI_PERIOD_MS = {
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
}


def quiet_spec(listing_ms: int) -> SymbolSpec:
    """A thin contract (under one trade a minute) listed mid-day: plenty of zero-trade candles."""
    return SymbolSpec(
        symbol="QUIETUSDT",
        base_asset="QUIET",
        tick_size="0.0010",
        step_size="0.1",
        listing_ms=listing_ms,
        initial_price=25.0,
        funding_interval_hours=4,
        trades_per_minute=0.7,
    )


def make_market(seed: int, *, days: int = 20) -> Market:
    """Demo BTC/ETH/SOL listed ``days`` before NOW plus QUIETUSDT listed at 07:30 two days later."""
    demo = Market.demo(
        symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"], days=days, seed=seed, now_ms=NOW_MS
    )
    listing_ms = demo.spec("BTCUSDT").listing_ms
    return Market([*demo.symbols, quiet_spec(listing_ms + 2 * DAY_MS + 450 * MINUTE_MS)], seed=seed)


@pytest.fixture(scope="module", params=SEEDS)
def seeded(request: pytest.FixtureRequest) -> Market:
    """One market per seed, shared by the module's read-only tests."""
    return make_market(request.param)


# --- independent reference computations ----------------------------------------------------


@dataclass
class Row:
    """A brute-force candle."""

    open_time_ms: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    close_time_ms: int
    quote: int
    count: int
    taker_volume: int
    taker_quote: int


def reference_klines(
    trades: AggTrades,
    *,
    interval_ms: int,
    start_ms: int,
    end_ms: int,
    now_ms: int,
    listing_ms: int,
    outages: list[tuple[int, int]],
    listing_price: int,
) -> list[Row]:
    """Candles by a plain loop over trades: a candle exists if one of its minutes is listed,
    opened by now and outside every outage; OHLC from its trades (T <= now) or the last price
    (the listing price before the first trade)."""
    times = trades.time_ms.tolist()
    prices = trades.price_ticks.tolist()
    quantities = trades.qty_steps.tolist()
    takers = (~trades.buyer_is_maker).tolist()
    counts = (trades.last_trade_id - trades.first_trade_id + 1).tolist()
    rows: list[Row] = []
    open_ms = -(-start_ms // interval_ms) * interval_ms
    while open_ms <= min(end_ms, now_ms):
        minutes = [
            minute
            for minute in range(open_ms, open_ms + interval_ms, MINUTE_MS)
            if minute >= listing_ms
            and minute <= now_ms
            and not any(lo <= minute < hi for lo, hi in outages)
        ]
        if minutes:
            lo = bisect.bisect_left(times, open_ms)
            hi = bisect.bisect_right(times, min(open_ms + interval_ms - 1, now_ms))
            if hi > lo:
                span = prices[lo:hi]
                ohlc = (span[0], max(span), min(span), span[-1])
            elif lo > 0:
                ohlc = (prices[lo - 1],) * 4
            else:
                assert trades.agg_id[0] == 0, "reference needs the trade before the candle"
                ohlc = (listing_price,) * 4
            volume = quote = count = taker_volume = taker_quote = 0
            for index in range(lo, hi):
                volume += quantities[index]
                quote += prices[index] * quantities[index]
                count += counts[index]
                if takers[index]:
                    taker_volume += quantities[index]
                    taker_quote += prices[index] * quantities[index]
            rows.append(
                Row(
                    open_ms,
                    *ohlc,
                    volume,
                    open_ms + interval_ms - 1,
                    quote,
                    count,
                    taker_volume,
                    taker_quote,
                )
            )
        open_ms += interval_ms
    return rows


def as_rows(klines: Klines) -> list[Row]:
    """The simulator's candles in the reference's shape."""
    return [
        Row(*values)
        for values in zip(
            klines.open_time_ms.tolist(),
            klines.open_ticks.tolist(),
            klines.high_ticks.tolist(),
            klines.low_ticks.tolist(),
            klines.close_ticks.tolist(),
            klines.volume_steps.tolist(),
            klines.close_time_ms.tolist(),
            klines.quote_volume_units.tolist(),
            klines.trade_count.tolist(),
            klines.taker_buy_volume_steps.tolist(),
            klines.taker_buy_quote_units.tolist(),
            strict=True,
        )
    ]


def assert_same_trades(left: AggTrades, right: AggTrades) -> None:
    """Every column equal."""
    for name in (
        "agg_id",
        "price_ticks",
        "qty_steps",
        "first_trade_id",
        "last_trade_id",
        "time_ms",
    ):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name), err_msg=name)
    np.testing.assert_array_equal(left.buyer_is_maker, right.buyer_is_maker)


def first_outage_day_ms(market: Market, symbol: str) -> int:
    """Start of the UTC day holding the symbol's first outage."""
    outages = market.maintenance_windows(symbol, market.spec(symbol).listing_ms, NOW_MS)
    assert outages, "a 20-day market has at least one outage (one per 15-day block)"
    return outages[0][0] // DAY_MS * DAY_MS


# --- candles are exactly the aggregation of trades -----------------------------------------


@pytest.mark.parametrize("symbol", ["QUIETUSDT", "SOLUSDT"])
def test_candles_equal_brute_force_aggregation_of_trades(seeded: Market, symbol: str) -> None:
    """Every interval's candles equal a loop over the trades: OHLC, volumes, quote volumes,
    counts, taker volumes, zero-trade candles, outages, the listing and the partial candle."""
    spec = seeded.spec(symbol)
    outage_day = first_outage_day_ms(seeded, symbol)
    windows = [
        (outage_day - 7 * HOUR_MS, outage_day + DAY_MS + 5 * HOUR_MS),
        (NOW_MS - 30 * HOUR_MS, NOW_MS + DAY_MS),  # ends in the open candle
    ]
    if symbol == "QUIETUSDT":
        windows.append((spec.listing_ms // DAY_MS * DAY_MS, spec.listing_ms + DAY_MS))
    zero_trade_candles = 0
    for start_ms, end_ms in windows:
        trades = seeded.agg_trades(symbol, start_ms - DAY_MS, min(end_ms + DAY_MS, NOW_MS))
        outages = seeded.maintenance_windows(symbol, start_ms - DAY_MS, end_ms)
        for interval, interval_ms in INTERVAL_MS.items():
            expected = reference_klines(
                trades,
                interval_ms=interval_ms,
                start_ms=start_ms,
                end_ms=end_ms,
                now_ms=NOW_MS,
                listing_ms=spec.listing_ms,
                outages=outages,
                listing_price=int(Decimal(str(spec.initial_price)).scaleb(spec.price_decimals)),
            )
            actual = as_rows(seeded.klines(symbol, interval, start_ms, end_ms, now_ms=NOW_MS))
            assert actual == expected, (symbol, interval, start_ms)
            zero_trade_candles += sum(row.count == 0 for row in expected)
    if symbol == "QUIETUSDT":
        assert zero_trade_candles > 100


def test_open_candle_counts_only_trades_up_to_now(seeded: Market) -> None:
    """The candle holding now_ms is partial and grows as now moves on."""
    open_ms = NOW_MS // HOUR_MS * HOUR_MS
    earlier = seeded.klines("BTCUSDT", "1h", open_ms, open_ms, now_ms=NOW_MS)
    later = seeded.klines("BTCUSDT", "1h", open_ms, open_ms, now_ms=open_ms + HOUR_MS - 1)
    in_hour = seeded.agg_trades("BTCUSDT", open_ms, NOW_MS)
    assert earlier.open_time_ms.tolist() == [open_ms]
    assert earlier.close_time_ms.tolist() == [open_ms + HOUR_MS - 1]
    assert int(earlier.volume_steps[0]) == int(in_hour.qty_steps.sum())
    assert int(later.volume_steps[0]) > int(earlier.volume_steps[0])
    assert (
        len(seeded.klines("BTCUSDT", "1m", NOW_MS + MINUTE_MS, NOW_MS + DAY_MS, now_ms=NOW_MS)) == 0
    )


# --- trades -------------------------------------------------------------------------------


def test_trade_ids_are_continuous_and_values_on_the_grid(seeded: Market) -> None:
    """Agg ids and underlying trade ids have no holes (across midnight too); times ascend;
    prices are tick multiples and quantities whole steps, and their strings parse back."""
    for spec in seeded.symbols:
        start_ms = max(spec.listing_ms, NOW_MS - 2 * DAY_MS) + 5 * HOUR_MS
        trades = seeded.agg_trades(spec.symbol, start_ms, start_ms + DAY_MS)
        assert len(trades) > 100
        assert np.all(np.diff(trades.agg_id) == 1)
        assert np.all(trades.first_trade_id[1:] == trades.last_trade_id[:-1] + 1)
        assert np.all(trades.last_trade_id >= trades.first_trade_id)
        assert np.all(np.diff(trades.time_ms) >= 0)
        assert trades.time_ms[0] >= start_ms
        assert trades.time_ms[-1] <= start_ms + DAY_MS
        assert np.all(trades.price_ticks % spec.tick_units == 0)
        assert np.all(trades.price_ticks > 0)
        assert np.all(trades.qty_steps % spec.step_units == 0)
        assert np.all(trades.qty_steps >= spec.step_units)
        tick, step = Decimal(spec.tick_size), Decimal(spec.step_size)
        sample = slice(0, 500)
        prices = format_fixed(trades.price_ticks[sample], spec.price_decimals)
        quantities = format_fixed(trades.qty_steps[sample], spec.quantity_decimals)
        for text, units in zip(prices, trades.price_ticks[sample].tolist(), strict=True):
            assert Decimal(text) == Decimal(units).scaleb(-spec.price_decimals)
            assert Decimal(text) % tick == 0
        for text in quantities:
            assert Decimal(text) % step == 0
            assert Decimal(text) >= step


def test_first_trade_ids_start_at_zero_at_listing(seeded: Market) -> None:
    """The first trade after the listing has agg id 0 and trade id 0."""
    spec = seeded.spec("QUIETUSDT")
    trades = seeded.agg_trades("QUIETUSDT", 0, spec.listing_ms + HOUR_MS)
    assert trades.agg_id[0] == 0
    assert trades.first_trade_id[0] == 0
    assert trades.time_ms[0] >= spec.listing_ms
    assert seeded.first_agg_id_at("QUIETUSDT", 0) == 0


def test_first_agg_id_at_matches_the_trades(seeded: Market) -> None:
    """first_agg_id_at(t) is the id of the first trade with T >= t (aligned or not)."""
    trades = seeded.agg_trades("ETHUSDT", NOW_MS - DAY_MS, NOW_MS + HOUR_MS)
    times = trades.time_ms.tolist()
    rng = np.random.default_rng(5)
    probes = [NOW_MS - DAY_MS + 60 * MINUTE_MS * k for k in range(0, 24, 5)]
    probes += rng.integers(NOW_MS - DAY_MS + 1, NOW_MS, 20).tolist() + times[100:103]
    for time_ms in probes:
        expected = int(trades.agg_id[bisect.bisect_left(times, time_ms)])
        assert seeded.first_agg_id_at("ETHUSDT", time_ms) == expected, time_ms


def test_pages_by_id_concatenate_to_the_time_range(seeded: Market) -> None:
    """agg_trades_from_id pages (crossing midnight) equal one agg_trades over the same range."""
    start_ms, end_ms = NOW_MS - DAY_MS - 2 * HOUR_MS, NOW_MS - DAY_MS + 3 * HOUR_MS
    whole = seeded.agg_trades("SOLUSDT", start_ms, end_ms)
    pages: list[AggTrades] = []
    next_id = seeded.first_agg_id_at("SOLUSDT", start_ms)
    while next_id <= int(whole.agg_id[-1]):
        page = seeded.agg_trades_from_id("SOLUSDT", next_id, 1000)
        pages.append(page)
        next_id = int(page.agg_id[-1]) + 1
    joined = AggTrades(
        *(
            np.concatenate([getattr(page, name) for page in pages])
            for name in AggTrades.__dataclass_fields__
        )
    )
    keep = joined.agg_id <= whole.agg_id[-1]
    assert_same_trades(
        AggTrades(*(getattr(joined, n)[keep] for n in AggTrades.__dataclass_fields__)), whole
    )
    bounded = seeded.agg_trades_from_id("SOLUSDT", int(whole.agg_id[0]), 10**9, until_ms=end_ms)
    assert_same_trades(bounded, whole)


# --- open interest and funding --------------------------------------------------------------


def test_open_interest_on_its_grid_and_positive(seeded: Market) -> None:
    """OI rows sit on every period grid after the listing, are positive, value = amount × price,
    and coarser periods sample the same series as 5m."""
    spec = seeded.spec("QUIETUSDT")
    start_ms, end_ms = spec.listing_ms - DAY_MS, spec.listing_ms + 3 * DAY_MS
    five = seeded.open_interest("QUIETUSDT", "5m", start_ms, end_ms)
    by_time = dict(
        zip(five.timestamp_ms.tolist(), five.sum_open_interest_steps.tolist(), strict=True)
    )
    closes = seeded.klines("QUIETUSDT", "1m", start_ms, end_ms, now_ms=NOW_MS)
    last_close = dict(
        zip((closes.open_time_ms + MINUTE_MS).tolist(), closes.close_ticks.tolist(), strict=True)
    )
    for period, period_ms in OI_PERIOD_MS.items():
        table = seeded.open_interest("QUIETUSDT", period, start_ms, end_ms)
        stamps = table.timestamp_ms
        first_expected = -(-(spec.listing_ms + 1) // period_ms) * period_ms
        assert stamps[0] == first_expected
        assert stamps[-1] <= end_ms
        assert np.all(stamps % period_ms == 0)
        assert np.all(np.diff(stamps) == period_ms)
        assert np.all(table.sum_open_interest_steps > 0)
        assert np.all(table.sum_open_interest_steps % spec.step_units == 0)
        for time_ms, amount in zip(
            stamps.tolist(), table.sum_open_interest_steps.tolist(), strict=True
        ):
            assert by_time[time_ms] == amount
        for time_ms, amount, value in zip(
            stamps.tolist(),
            table.sum_open_interest_steps.tolist(),
            table.sum_open_interest_value.tolist(),
            strict=True,
        ):
            if time_ms in last_close:  # the minute before T has a candle (not an outage)
                expected = (
                    amount
                    * 10.0**-spec.quantity_decimals
                    * last_close[time_ms]
                    * 10.0**-spec.price_decimals
                )
                assert value == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("symbol", "hours"), [("BTCUSDT", 8), ("SOLUSDT", 4), ("QUIETUSDT", 4)])
def test_funding_on_the_symbols_grid(seeded: Market, symbol: str, hours: int) -> None:
    """Settlements every funding_interval_hours from 00:00 UTC, first one after the listing,
    rates exact multiples of 1e-8 within ±0.75 %, marks on the tick grid."""
    spec = seeded.spec(symbol)
    assert spec.funding_interval_hours == hours
    rates = seeded.funding(symbol, 0, NOW_MS)
    grid_ms = hours * HOUR_MS
    times = rates.funding_time_ms
    assert times[0] == (spec.listing_ms // grid_ms + 1) * grid_ms
    assert np.all(times % grid_ms == 0)
    assert np.all(np.diff(times) == grid_ms)
    assert times[-1] <= NOW_MS < times[-1] + grid_ms
    e8 = rates.funding_rate * 1e8
    assert np.all(np.abs(e8 - np.rint(e8)) < 1e-6)
    assert np.all(np.abs(rates.funding_rate) <= 0.0075)
    assert np.all(rates.mark_price_ticks % spec.tick_units == 0)
    for text, units in zip(
        format_fixed(rates.funding_rate_e8, 8), rates.funding_rate_e8.tolist(), strict=True
    ):
        assert Decimal(text) == Decimal(units).scaleb(-8)
    assert len(set(rates.funding_rate_e8.tolist())) > 3  # funding moves with the market


# --- determinism and laziness ----------------------------------------------------------------


def test_same_seed_same_data_whatever_the_query_order_and_split() -> None:
    """A fresh market with a one-day trade cache, queried hour by hour backwards and
    interleaved with other days, returns exactly what one whole-day query returns."""
    day_ms = NOW_MS // DAY_MS * DAY_MS - 3 * DAY_MS
    whole = make_market(2).agg_trades("BTCUSDT", day_ms, day_ms + DAY_MS - 1)
    demo = make_market(2)
    other = Market(
        demo.symbols, seed=2, trade_cache_days=1, candle_cache_days=1, skeleton_cache_days=2
    )
    hours = []
    for hour in reversed(range(24)):
        other.agg_trades("ETHUSDT", day_ms - 5 * DAY_MS, day_ms - 5 * DAY_MS + HOUR_MS)
        hours.append(
            other.agg_trades("BTCUSDT", day_ms + hour * HOUR_MS, day_ms + (hour + 1) * HOUR_MS - 1)
        )
    joined = AggTrades(
        *(
            np.concatenate([getattr(page, name) for page in reversed(hours)])
            for name in AggTrades.__dataclass_fields__
        )
    )
    assert_same_trades(joined, whole)
    daily = [
        other.klines(
            "BTCUSDT", "5m", day_ms + k * DAY_MS, day_ms + (k + 1) * DAY_MS - 1, now_ms=NOW_MS
        )
        for k in (1, 0)
    ]
    together = make_market(2).klines(
        "BTCUSDT", "5m", day_ms, day_ms + 2 * DAY_MS - 1, now_ms=NOW_MS
    )
    assert as_rows(daily[1]) + as_rows(daily[0]) == as_rows(together)
    funding = make_market(2).funding("SOLUSDT", 0, NOW_MS)
    np.testing.assert_array_equal(
        other.funding("SOLUSDT", 0, NOW_MS).funding_rate, funding.funding_rate
    )


def test_different_seeds_give_different_markets() -> None:
    """Changing the seed changes trades, open interest and outages."""
    day_ms = NOW_MS // DAY_MS * DAY_MS - DAY_MS
    first, second = make_market(1), make_market(4)
    assert not np.array_equal(
        first.agg_trades("BTCUSDT", day_ms, day_ms + HOUR_MS).price_ticks[:100],
        second.agg_trades("BTCUSDT", day_ms, day_ms + HOUR_MS).price_ticks[:100],
    )
    assert not np.array_equal(
        first.open_interest("ETHUSDT", "1h", day_ms, day_ms + DAY_MS).sum_open_interest_steps,
        second.open_interest("ETHUSDT", "1h", day_ms, day_ms + DAY_MS).sum_open_interest_steps,
    )
    assert first.maintenance_windows("BTCUSDT", 0, NOW_MS) != second.maintenance_windows(
        "BTCUSDT", 0, NOW_MS
    )


def test_a_late_day_does_not_generate_earlier_trade_detail() -> None:
    """Trades and candles of day 80 of a 90-day market generate that day's detail only."""
    market = Market.demo(symbols=["BTCUSDT"], days=90, seed=9, now_ms=NOW_MS)
    listing_day = market.spec("BTCUSDT").listing_ms // DAY_MS
    day_ms = (listing_day + 80) * DAY_MS
    assert len(market.agg_trades("BTCUSDT", day_ms + HOUR_MS, day_ms + 2 * HOUR_MS)) > 100
    assert len(market.klines("BTCUSDT", "1m", day_ms, day_ms + DAY_MS - 1, now_ms=NOW_MS)) > 1300
    assert market.first_agg_id_at("BTCUSDT", day_ms - 7 * HOUR_MS) > 1_000_000  # minute-aligned
    market.open_interest("BTCUSDT", "5m", day_ms - 30 * DAY_MS, day_ms)
    market.funding("BTCUSDT", 0, day_ms)
    assert market.generated_trade_days("BTCUSDT") == [listing_day + 80]
    assert market.cache_info()["trade_day_generations"] == 1


# --- outages and planted episodes ------------------------------------------------------------


def test_maintenance_windows_have_no_trades_and_no_candles() -> None:
    """Outages: minute-aligned, 10–60 minutes, about one per 15 days, the same for every symbol;
    no trades or candles inside, candles right before and after."""
    market = Market.demo(symbols=["BTCUSDT", "SOLUSDT"], days=90, seed=5, now_ms=NOW_MS)
    spec = market.spec("BTCUSDT")
    outages = market.maintenance_windows("BTCUSDT", spec.listing_ms, NOW_MS)
    assert outages == market.maintenance_windows("SOLUSDT", spec.listing_ms, NOW_MS)
    assert 3 <= len(outages) <= 8
    assert [
        (episode.start_ms, episode.end_ms)
        for episode in market.episodes("BTCUSDT", 0, NOW_MS)
        if episode.kind == "maintenance"
    ] == outages
    for start_ms, end_ms in outages[:3]:
        assert start_ms % MINUTE_MS == 0
        assert end_ms % MINUTE_MS == 0
        assert 10 * MINUTE_MS <= end_ms - start_ms <= 60 * MINUTE_MS
        for symbol in ("BTCUSDT", "SOLUSDT"):
            assert len(market.agg_trades(symbol, start_ms, end_ms - 1)) == 0
            candles = market.klines(
                symbol, "1m", start_ms - 5 * MINUTE_MS, end_ms + 4 * MINUTE_MS, now_ms=NOW_MS
            )
            expected = [start_ms - k * MINUTE_MS for k in range(5, 0, -1)] + [
                end_ms + k * MINUTE_MS for k in range(5)
            ]
            assert candles.open_time_ms.tolist() == expected
        assert len(market.agg_trades("BTCUSDT", end_ms, end_ms + MINUTE_MS)) > 0


@pytest.fixture(scope="module")
def episodic() -> Market:
    """A 40-day demo market with enough planted episodes of every kind."""
    return Market.demo(symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"], days=40, seed=21, now_ms=NOW_MS)


def minute_table(market: Market, symbol: str, start_ms: int, end_ms: int) -> Klines:
    """1m candles over a closed range (all complete at NOW_MS)."""
    return market.klines(symbol, "1m", start_ms, end_ms, now_ms=NOW_MS)


def completed_episodes(market: Market, symbol: str, kind: str) -> list[Episode]:
    """Planted episodes of one kind that were over before NOW_MS."""
    return [
        episode
        for episode in market.episodes(symbol, 0, NOW_MS)
        if episode.kind == kind and episode.end_ms <= NOW_MS
    ]


def test_squeezes_move_their_way_while_open_interest_falls(episodic: Market) -> None:
    """Every planted squeeze that followed through: price ends its window moved its way, open
    interest falls across it, its fuel began before it; failed ones end against their direction."""
    seen = {"follow_through": 0, "failed": 0}
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        for episode in completed_episodes(episodic, symbol, "squeeze"):
            if episode.outcome == "decoy":
                continue
            seen[str(episode.outcome)] += 1
            sign = 1 if episode.direction == "up" else -1
            candles = minute_table(episodic, symbol, episode.start_ms, episode.end_ms - MINUTE_MS)
            move = math.log(candles.close_ticks[-1] / candles.open_ticks[0])
            assert episode.detail["fuel_start_ms"] < episode.start_ms == episode.trigger_ms
            if episode.outcome == "failed":
                assert sign * move < 0
                continue
            assert sign * move > 0
            interest = episodic.open_interest(
                symbol, "5m", episode.start_ms - 5 * MINUTE_MS, episode.end_ms + 5 * MINUTE_MS
            )
            assert interest.sum_open_interest_steps[-1] < interest.sum_open_interest_steps[0]
    assert seen["follow_through"] >= 5
    assert seen["failed"] >= 3


def test_absorptions_are_heavy_one_sided_flow_without_price_progress(episodic: Market) -> None:
    """Planted absorptions (not decoys): taker imbalance on the aggressor's side in at least 90 %
    of them (a median of at least 25 %; heavy-tailed trade sizes let one block trade dent a
    window), volume above the day's median, and a price held within three one-minute σ of the
    day from its first minute to its last."""
    seen = 0
    imbalances: list[float] = []
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        for episode in completed_episodes(episodic, symbol, "absorption"):
            if episode.outcome == "decoy":
                continue
            seen += 1
            day_ms = episode.start_ms // DAY_MS * DAY_MS
            day = minute_table(episodic, symbol, day_ms, day_ms + DAY_MS - 1)
            inside = (day.open_time_ms >= episode.start_ms) & (day.open_time_ms < episode.end_ms)
            volume = day.volume_steps.astype(float)
            delta = 2.0 * day.taker_buy_volume_steps - volume
            imbalance = delta[inside].sum() / volume[inside].sum()
            aggressor = 1.0 if episode.detail["aggressor"] == "buy" else -1.0
            imbalances.append(aggressor * imbalance)
            assert (episode.direction == "up") == (episode.detail["aggressor"] == "sell")
            assert volume[inside].mean() > np.median(volume)
            # Held at the wall: over the whole absorption price moves no more than a few typical
            # one-minute moves of that day, although ordinary flow this one-sided would push it.
            minute_sigma = np.diff(np.log(day.close_ticks.astype(float))).std()
            progress = math.log(day.close_ticks[inside][-1] / day.open_ticks[inside][0])
            assert abs(progress) < 3.0 * minute_sigma
    assert seen >= 10
    assert np.mean(np.array(imbalances) > 0) >= 0.9
    assert np.median(imbalances) >= 0.25


def test_compressions_are_quiet_ranges_followed_by_breakouts(episodic: Market) -> None:
    """Every planted compression: realised volatility below the day's; unless it is a decoy (a
    fizzle), a breakout at least twice as volatile follows, ending the window moved the reported
    way if it followed through and the other way if it failed."""
    seen = 0
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        for episode in completed_episodes(episodic, symbol, "compression_breakout"):
            seen += 1
            day_ms = episode.start_ms // DAY_MS * DAY_MS
            day = minute_table(episodic, symbol, day_ms, day_ms + 2 * DAY_MS - 1)
            returns = np.diff(np.log(day.close_ticks.astype(float)))
            times = day.open_time_ms[1:]
            breakout_ms = episode.detail["breakout_start_ms"]
            assert breakout_ms == episode.trigger_ms
            quiet = returns[(times >= episode.start_ms) & (times < breakout_ms)]
            loud = returns[(times >= breakout_ms) & (times < episode.end_ms)]
            assert quiet.std() < 0.75 * returns[: MINUTES_PER_DAY - 1].std()
            if episode.outcome == "decoy":
                continue
            assert loud.std() > 2.0 * quiet.std()
            before = day.close_ticks[day.open_time_ms == breakout_ms - MINUTE_MS][0]
            after = day.close_ticks[day.open_time_ms == episode.end_ms - MINUTE_MS][0]
            went_up = after > before
            assert went_up == ((episode.direction == "up") == (episode.outcome == "follow_through"))
    assert seen >= 10


def test_sessions_weekends_and_volatility_clustering(episodic: Market) -> None:
    """Activity peaks in the Europe–US overlap, troughs in late Asia, lulls at weekends; absolute
    returns are autocorrelated (volatility clusters)."""
    spec = episodic.spec("BTCUSDT")
    hourly = episodic.klines("BTCUSDT", "1h", spec.listing_ms, NOW_MS - DAY_MS, now_ms=NOW_MS)
    hour = (hourly.open_time_ms // HOUR_MS) % 24
    weekday = (hourly.open_time_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
    counts = hourly.trade_count.astype(float)
    workday = weekday < 5
    peak = counts[workday & (hour >= 14) & (hour <= 17)].mean()
    trough = counts[workday & (hour >= 3) & (hour <= 5)].mean()
    assert peak > 2.0 * trough
    assert counts[~workday].mean() < 0.75 * counts[workday].mean()
    minutes = minute_table(episodic, "BTCUSDT", spec.listing_ms, spec.listing_ms + 10 * DAY_MS)
    magnitude = np.abs(np.diff(np.log(minutes.close_ticks.astype(float))))
    for lag in (10, 60):
        assert np.corrcoef(magnitude[:-lag], magnitude[lag:])[0, 1] > 0.05


# --- specs and formatting --------------------------------------------------------------------


def test_demo_specs_are_realistic_and_deterministic() -> None:
    """Known contracts keep Binance's filters; others get a spec derived from name and seed."""
    market = Market.demo(
        symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT", "PEPEUSDT", "XYZUSDT"],
        days=14,
        seed=3,
        now_ms=NOW_MS,
    )
    assert {spec.listing_ms for spec in market.symbols} == {BASE_DAY_MS - 14 * DAY_MS}
    btc, eth, sol = market.spec("BTCUSDT"), market.spec("ETHUSDT"), market.spec("SOLUSDT")
    assert (btc.tick_size, btc.step_size, btc.price_decimals, btc.tick_units) == (
        "0.10",
        "0.001",
        2,
        10,
    )
    assert (eth.tick_size, eth.step_size, eth.funding_interval_hours) == ("0.01", "0.001", 8)
    assert (sol.tick_size, sol.step_size, sol.funding_interval_hours, sol.tick_units) == (
        "0.0100",
        "1",
        4,
        100,
    )
    assert 40_000 < btc.initial_price < 80_000
    assert 1_000 < eth.initial_price < 5_000
    again = Market.demo(symbols=["PEPEUSDT"], days=14, seed=3, now_ms=NOW_MS)
    assert again.spec("PEPEUSDT") == market.spec("PEPEUSDT")
    assert market.spec("PEPEUSDT") != market.spec("XYZUSDT")
    for name in ("PEPEUSDT", "XYZUSDT"):
        spec = market.spec(name)
        assert spec.base_asset == name[:-4]
        assert Decimal(spec.tick_size) > 0
        assert Decimal(spec.step_size) > 0
        assert Decimal(str(spec.initial_price)) % Decimal(spec.tick_size) == 0
        assert spec.funding_interval_hours in (4, 8)
    with pytest.raises(KeyError):
        market.spec("NOPEUSDT")


@pytest.mark.parametrize(
    ("units", "decimals", "expected"),
    [
        (123456, 2, "1234.56"),
        (5, 3, "0.005"),
        (0, 8, "0.00000000"),
        (5, 8, "0.00000005"),
        (-1, 8, "-0.00000001"),
        (123, 12, "0.000000000123"),
        (-9_223_372_036_854_775_808, 8, "-92233720368.54775808"),
        (-10000, 8, "-0.00010000"),
        (-1, 2, "-0.01"),
        (-123, 2, "-1.23"),
        (100, 2, "1.00"),
        (5, 0, "5"),
        (-5, 0, "-5"),
        (0, 0, "0"),
        (9_223_372_036_854_775_807, 8, "92233720368.54775807"),
        (-9_223_372_036_854_775_807, 3, "-9223372036854775.807"),
    ],
)
def test_format_fixed_edge_cases(units: int, decimals: int, expected: str) -> None:
    """Hand-worked renderings: padding, signs, zero, tiny values, no decimals, int64 extremes."""
    assert format_fixed(np.array([units], dtype=np.int64), decimals) == [expected]


def test_format_fixed_matches_decimal_on_random_values() -> None:
    """Vectorised rendering equals Python's Decimal for many values, and handles empty input."""
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.integers(-(10**12), 10**12, 5000), rng.integers(-50, 50, 500)])
    for decimals in (0, 1, 3, 8):
        expected = [f"{Decimal(int(value)).scaleb(-decimals):f}" for value in values.tolist()]
        assert format_fixed(values, decimals) == expected
    assert format_fixed(np.zeros(0, dtype=np.int64), 2) == []

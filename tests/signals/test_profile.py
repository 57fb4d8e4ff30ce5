"""Volume profiles agree with brute-force loops written here, hand-worked examples and the
simulated exchange's own trades."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingmon.errors import DataIntegrityError, UsageError
from ingmon.exchange.market import Market
from ingmon.signals.profile import (
    PROFILE_VERSION,
    VolumeProfile,
    candle_profile,
    composite_profile,
    infer_tick_size,
    rolling_profile,
    session_profiles,
    trade_profile,
    trade_session_profiles,
    value_area,
    volume_nodes,
)

DAY_MS = 86_400_000
NOW_MS = 1_767_225_600_000 + 5 * 3_600_000  # 2026-01-01 05:00 UTC: two full days and a part
SYMBOL = "BTCUSDT"


# ---- the references: plain loops ----------------------------------------------------------------


def brute_poc(volume: list[float]) -> int:
    """Largest bin; among equals the one nearest the middle index, then the lower."""
    best = max(volume)
    ties = [index for index, value in enumerate(volume) if value == best]
    middle = (len(volume) - 1) / 2
    return min(ties, key=lambda index: (abs(index - middle), index))


def brute_value_area(volume: list[float], poc: int, share: float) -> tuple[int, int]:
    """Grow around the POC one step at a time, re-summing the included bins every step."""
    low = high = poc
    while sum(volume[low : high + 1]) < share * sum(volume):
        sides = []
        if high + 1 < len(volume):
            sides.append(("above", volume[high + 1]))
        if low - 1 >= 0:
            sides.append(("below", volume[low - 1]))
        if not sides:
            break
        larger = max(value for _, value in sides)
        for side, value in sides:
            if value == larger and side == "above":
                high += 1
            elif value == larger:
                low -= 1
    return low, high


def brute_candle_bins(
    high_ticks: list[int], low_ticks: list[int], volume: list[float], ticks_per_bin: int
) -> dict[int, float]:
    """Every candle on its own: each tick low..high gets volume / ticks, into bin tick // k."""
    bins: dict[int, float] = defaultdict(float)
    for top, bottom, size in zip(high_ticks, low_ticks, volume, strict=True):
        ticks = top - bottom + 1
        for tick in range(bottom, top + 1):
            bins[tick // ticks_per_bin] += size / ticks
    return bins


def dense(bins: dict[int, float], first: int, count: int) -> list[float]:
    return [bins.get(first + offset, 0.0) for offset in range(count)]


def assert_same_profile(actual: VolumeProfile, expected: VolumeProfile) -> None:
    """Bitwise-equal arrays and identical derived levels."""
    assert (actual.tick_size, actual.ticks_per_bin, actual.first_bin) == (
        expected.tick_size,
        expected.ticks_per_bin,
        expected.first_bin,
    )
    for name in ("volume", "buy_volume", "sell_volume"):
        assert np.array_equal(getattr(actual, name), getattr(expected, name)), name
    assert actual.to_dict() == expected.to_dict()


# ---- the simulated exchange ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tape:
    """Two days and five hours of one symbol, in prices and base units as the lake stores them."""

    tick_size: float
    trade_time_ms: np.ndarray[Any, Any]
    price: np.ndarray[Any, Any]
    quantity: np.ndarray[Any, Any]
    is_buyer_maker: np.ndarray[Any, Any]
    price_units: np.ndarray[Any, Any]  # exact integers: price · 10**price_decimals
    open_time_ms: np.ndarray[Any, Any]
    high: np.ndarray[Any, Any]
    low: np.ndarray[Any, Any]
    volume: np.ndarray[Any, Any]
    taker_buy_volume: np.ndarray[Any, Any]


@pytest.fixture(scope="module")
def tape() -> Tape:
    market = Market.demo(symbols=[SYMBOL], days=2, seed=7, now_ms=NOW_MS)
    spec = market.spec(SYMBOL)
    price_scale = 10.0**spec.price_decimals
    step = float(spec.step_size)
    trades = market.agg_trades(SYMBOL, spec.listing_ms, NOW_MS - 1)
    candles = market.klines(SYMBOL, "1m", spec.listing_ms, NOW_MS - 1, now_ms=NOW_MS)
    return Tape(
        tick_size=float(spec.tick_size),
        trade_time_ms=trades.time_ms,
        price=trades.price_ticks / price_scale,
        quantity=trades.qty_steps * step,
        is_buyer_maker=trades.buyer_is_maker,
        price_units=trades.price_ticks,
        open_time_ms=candles.open_time_ms,
        high=candles.high_ticks / price_scale,
        low=candles.low_ticks / price_scale,
        volume=candles.volume_steps * step,
        taker_buy_volume=candles.taker_buy_volume_steps * step,
    )


# ---- POC and value area -------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    volume=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=40),
    share=st.sampled_from([0.5, 0.7, 0.7, 0.9, 1.0]),
    ticks_per_bin=st.integers(min_value=1, max_value=7),
    first_bin=st.integers(min_value=0, max_value=10_000),
)
def test_poc_and_value_area_equal_the_brute_force_loops(
    volume: list[int], share: float, ticks_per_bin: int, first_bin: int
) -> None:
    """POC, VA indices and VAH/VAL prices equal plain loops over random profiles with many ties,
    all-zero and single-bin profiles included (small integer volumes keep every sum exact)."""
    sizes = [float(value) for value in volume]
    profile = VolumeProfile.from_bins(
        tick_size=0.1,
        ticks_per_bin=ticks_per_bin,
        first_bin=first_bin,
        volume=sizes,
        buy_volume=sizes,
        sell_volume=[0.0] * len(sizes),
        value_area_share=share,
    )
    poc = brute_poc(sizes)
    low, high = brute_value_area(sizes, poc, share)
    assert profile.poc_index == poc
    assert (profile.value_area_low_index, profile.value_area_high_index) == (low, high)
    width = ticks_per_bin / 10
    assert profile.val == pytest.approx((first_bin + low) * width, abs=1e-9)
    assert profile.vah == pytest.approx((first_bin + high + 1) * width, abs=1e-9)
    assert profile.poc_price == pytest.approx((first_bin + poc + 0.5) * width, abs=1e-9)
    if sum(sizes) > 0:
        assert profile.value_area_share >= share - 1e-12


def test_value_area_hand_worked() -> None:
    """Worked on paper (CBOT single-row expansion).

    volume [2, 5, 8, 12, 6, 4, 3], total 40, 70 % = 28. POC = bin 3 (12).
    step 1: above 6 < below 8 → add bin 2, 20. step 2: above 6 > below 5 → add bin 4, 26.
    step 3: above 4 < below 5 → add bin 1, 31 ≥ 28 → VA = bins 1..4 (31/40 = 77.5 %).
    Tie: [1, 3, 9, 3, 1], 70 % of 17 = 11.9; from 9 both neighbours are 3 → add both, 15 → 1..3.
    """
    assert value_area([2, 5, 8, 12, 6, 4, 3], 3) == (1, 4)
    assert value_area([1, 3, 9, 3, 1], 2) == (1, 3)
    assert value_area([5.0], 0) == (0, 0)
    assert value_area([0.0, 0.0, 0.0], 1) == (1, 1)
    # At the lower end the expansion can only go up: 0.7 · 20 = 14 needs bins 0..2.
    assert value_area([10, 3, 2, 5], 0) == (0, 2)
    profile = VolumeProfile.from_bins(
        tick_size=0.5,
        ticks_per_bin=2,
        first_bin=100,
        volume=[2, 5, 8, 12, 6, 4, 3],
        buy_volume=[1, 2, 3, 4, 5, 6, 3],
        sell_volume=[1, 3, 5, 8, 1, -2, 0],
    )
    # Bins are 1.0 wide starting at 100.0: VA bins 1..4 = [101, 105); POC bin 3 centre 103.5.
    assert (profile.val, profile.vah, profile.poc_price) == (101.0, 105.0, 103.5)
    assert profile.value_area_share == pytest.approx(31 / 40)


def test_poc_tie_breaks_toward_the_centre_then_down() -> None:
    """Equal maxima: the bin nearest the middle index wins; equidistant ones give the lower."""
    assert _profile_of([4, 1, 4, 1, 4, 2]).poc_index == 2  # centre 2.5: |2−2.5| < |4−2.5|
    assert _profile_of([5, 0, 0, 5]).poc_index == 0  # centre 1.5, both 1.5 away
    assert _profile_of([1, 7, 7, 1]).poc_index == 1


def _profile_of(volume: list[float]) -> VolumeProfile:
    return VolumeProfile.from_bins(
        tick_size=1.0,
        ticks_per_bin=1,
        first_bin=0,
        volume=volume,
        buy_volume=volume,
        sell_volume=[0.0] * len(volume),
    )


# ---- nodes --------------------------------------------------------------------------------------


def test_bimodal_profile_has_two_hvns_and_the_lvn_between() -> None:
    """Worked on paper: V = [1, 2, 8, 2, 1, 0, 1, 3, 6, 3, 1] smooths ([1,2,1]/4, zeros beyond)
    to [1, 3.25, 5, 3.25, 1, 0.5, 1.25, 3.25, 4.5, 3.25, 1.25]; peaks 2 (prominence 5) and 8
    (4.5 − max(0.5, 0) = 4 ≥ 0.5); the minimum between is bin 5 (0.5 ≤ 0.5·4.5) → LVN."""
    volume = [1, 2, 8, 2, 1, 0, 1, 3, 6, 3, 1]
    assert volume_nodes(volume) == ((2, 8), (5,))
    profile = VolumeProfile.from_bins(
        tick_size=0.1,
        ticks_per_bin=1,
        first_bin=1000,
        volume=volume,
        buy_volume=volume,
        sell_volume=[0] * len(volume),
    )
    levels = profile.levels()
    assert (levels["hvn_1"], levels["hvn_2"], levels["lvn_1"]) == (100.25, 100.85, 100.55)
    assert "hvn_3" not in levels and "lvn_2" not in levels


def test_a_small_bump_is_not_an_hvn() -> None:
    """V = [1, 4, 20, 4, 1, 1, 1, 2, 1, 1] smooths to peaks 2 (12) and 7 (1.5); the bump's
    prominence is 1.5 − max(1.0, 0) = 0.5 < 10 % of 12 → one HVN, no LVN."""
    assert volume_nodes([1, 4, 20, 4, 1, 1, 1, 2, 1, 1]) == ((2,), ())


def test_lvn_needs_a_valley_at_most_half_the_lower_hvn() -> None:
    """[8, 8, 4, 4, 8, 8] smooths to [6, 7, 5, 5, 7, 6]: HVNs 1 and 4, valley 5 > 3.5 → no LVN;
    [8, 8, 1, 1, 8, 8] gives [6, 6.25, 2.75, 2.75, 6.25, 6]: valley 2.75 ≤ 3.125 → LVN at 2 (the
    lower middle of the flat bottom)."""
    assert volume_nodes([8, 8, 4, 4, 8, 8]) == ((1, 4), ())
    assert volume_nodes([8, 8, 1, 1, 8, 8]) == ((1, 4), (2,))


def test_flat_or_empty_profiles_have_no_spurious_nodes() -> None:
    """All zero: nothing; one flat block: one HVN in its middle; a single bin: that bin."""
    assert volume_nodes([0, 0, 0]) == ((), ())
    assert volume_nodes([3, 3, 3, 3, 3]) == ((2,), ())
    assert volume_nodes([7]) == ((0,), ())


# ---- candle profiles ----------------------------------------------------------------------------


def test_one_candle_spreads_uniformly_over_its_ticks() -> None:
    """100.0–100.9 is ticks 1000..1009: with 3-tick bins 999–1001, …, 1008–1010 the bins hold
    2, 3, 3 and 2 of its 10 ticks; with 2-tick bins every bin gets a fifth."""
    profile = candle_profile([100.9], [100.0], [10.0], [4.0], tick_size=0.1, ticks_per_bin=3)
    assert profile.first_bin == 333
    assert profile.volume.tolist() == pytest.approx([2.0, 3.0, 3.0, 2.0])
    assert profile.buy_volume.tolist() == pytest.approx([0.8, 1.2, 1.2, 0.8])
    assert profile.sell_volume.tolist() == pytest.approx([1.2, 1.8, 1.8, 1.2])
    assert profile.price_low == 99.9
    fifths = candle_profile([100.9], [100.0], [10.0], [4.0], tick_size=0.1, ticks_per_bin=2)
    assert fifths.volume.tolist() == pytest.approx([2.0] * 5)


def test_a_candle_with_high_equal_low_puts_everything_in_its_bin() -> None:
    """A doji at 100.3 (tick 1003) with 3-tick bins lands wholly in bin 334 = [100.2, 100.5)."""
    profile = candle_profile(
        [100.3, 100.9], [100.3, 100.0], [6.0, 0.0], [1.5, 0.0], tick_size=0.1, ticks_per_bin=3
    )
    assert profile.volume[334 - profile.first_bin] == 6.0
    assert profile.total_volume == 6.0
    assert profile.buy_volume.sum() == 1.5
    assert profile.poc_price == 100.35


@settings(max_examples=150, deadline=None)
@given(
    candles=st.lists(
        st.tuples(
            st.integers(min_value=9_000, max_value=9_400),
            st.integers(min_value=0, max_value=60),
            st.floats(min_value=0, max_value=50, allow_nan=False),
            st.floats(min_value=0, max_value=1),
        ),
        min_size=1,
        max_size=60,
    ),
    ticks_per_bin=st.one_of(st.none(), st.integers(min_value=1, max_value=9)),
    rows=st.integers(min_value=1, max_value=60),
)
def test_candle_profile_equals_spreading_each_candle_in_a_loop(
    candles: list[tuple[int, int, float, float]], ticks_per_bin: int | None, rows: int
) -> None:
    """Random candles on a 0.01 grid equal the candle-by-candle tick loop, with fixed and with
    adaptive (ceil(range / rows) ticks) bins; total, buy and sell volume are conserved."""
    low_ticks = [low for low, _, _, _ in candles]
    high_ticks = [low + span for low, span, _, _ in candles]
    volume = [size for _, _, size, _ in candles]
    buys = [size * ratio for _, _, size, ratio in candles]
    profile = candle_profile(
        [tick * 0.01 for tick in high_ticks],
        [tick * 0.01 for tick in low_ticks],
        volume,
        buys,
        tick_size=0.01,
        ticks_per_bin=ticks_per_bin,
        rows=rows,
    )
    width = ticks_per_bin or max(1, math.ceil((max(high_ticks) - min(low_ticks)) / rows))
    assert profile.ticks_per_bin == width
    assert profile.first_bin == min(low_ticks) // width
    assert len(profile) == max(high_ticks) // width - min(low_ticks) // width + 1
    expected = dense(brute_candle_bins(high_ticks, low_ticks, volume, width), *_span(profile))
    expected_buys = dense(brute_candle_bins(high_ticks, low_ticks, buys, width), *_span(profile))
    assert profile.volume.tolist() == pytest.approx(expected, abs=1e-9)
    assert profile.buy_volume.tolist() == pytest.approx(expected_buys, abs=1e-9)
    assert profile.total_volume == pytest.approx(sum(volume), abs=1e-9)
    assert (profile.buy_volume + profile.sell_volume).tolist() == pytest.approx(
        profile.volume.tolist(), abs=1e-9
    )


def _span(profile: VolumeProfile) -> tuple[int, int]:
    return profile.first_bin, len(profile)


def test_candle_profile_rejects_impossible_candles() -> None:
    """High below low or taker buys above volume is a data error; no candles a usage error."""
    with pytest.raises(DataIntegrityError):
        candle_profile([1.0], [2.0], [1.0], [0.5], tick_size=0.1)
    with pytest.raises(DataIntegrityError):
        candle_profile([2.0], [1.0], [1.0], [1.5], tick_size=0.1)
    with pytest.raises(UsageError):
        candle_profile([], [], [], [], tick_size=0.1)


# ---- trade profiles on the simulated exchange --------------------------------------------------


def test_trade_profile_conserves_volume_and_delta(tape: Tape) -> None:
    """Summed over bins, volume is the trades' total quantity and buy − sell their taker delta."""
    profile = trade_profile(tape.price, tape.quantity, tape.is_buyer_maker, tick_size=0.1)
    signed = np.where(tape.is_buyer_maker, -tape.quantity, tape.quantity)
    assert profile.total_volume == pytest.approx(math.fsum(tape.quantity), rel=1e-12)
    assert profile.delta.sum() == pytest.approx(math.fsum(signed), abs=1e-6)
    assert profile.buy_volume.sum() == pytest.approx(
        math.fsum(tape.quantity[~tape.is_buyer_maker]), rel=1e-12
    )
    assert len(profile) in (120, 121)


def test_one_tick_bins_hold_exactly_the_trades_at_that_price(tape: Tape) -> None:
    """With ticks_per_bin=1 bin i is tick first_bin + i, and holds the quantity traded there
    (summed in a dict keyed by the exact integer price), buy and sell apart."""
    profile = trade_profile(
        tape.price, tape.quantity, tape.is_buyer_maker, tick_size=0.1, ticks_per_bin=1
    )
    at_tick: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for units, size, seller in zip(
        tape.price_units.tolist(), tape.quantity.tolist(), tape.is_buyer_maker.tolist(), strict=True
    ):
        assert units % 10 == 0  # price units are 0.01; the grid is 0.1
        at_tick[units // 10][1 if seller else 0] += size
    assert profile.first_bin == min(at_tick)
    assert len(profile) == max(at_tick) - min(at_tick) + 1
    buys = [at_tick[tick][0] if tick in at_tick else 0.0 for tick in _ticks(profile)]
    sells = [at_tick[tick][1] if tick in at_tick else 0.0 for tick in _ticks(profile)]
    assert profile.buy_volume.tolist() == pytest.approx(buys, rel=1e-12, abs=1e-12)
    assert profile.sell_volume.tolist() == pytest.approx(sells, rel=1e-12, abs=1e-12)
    assert profile.bin_width == 0.1


def _ticks(profile: VolumeProfile) -> range:
    return range(profile.first_bin, profile.first_bin + len(profile))


def test_grid_prices_with_float_error_land_in_their_own_tick() -> None:
    """0.1·k is not exact in binary (0.1·3 = 0.30000000000000004, 0.1·7 = 0.7000000000000001);
    each still gets its own one-tick bin, and 1-tick bins have centres half a tick up."""
    ticks = np.arange(1, 2_000)
    profile = trade_profile(
        ticks * 0.1, np.ones(ticks.size), np.zeros(ticks.size, bool), tick_size=0.1, ticks_per_bin=1
    )
    assert profile.volume.tolist() == [1.0] * ticks.size
    assert profile.bin_centres[:3].tolist() == [0.15, 0.25, 0.35]


def test_candle_and_trade_profiles_of_the_same_minutes_hold_the_same_volume(tape: Tape) -> None:
    """The exchange's candles are its trades aggregated: equal totals and equal delta."""
    candles = candle_profile(
        tape.high, tape.low, tape.volume, tape.taker_buy_volume, tick_size=tape.tick_size
    )
    trades = trade_profile(tape.price, tape.quantity, tape.is_buyer_maker, tick_size=tape.tick_size)
    assert candles.total_volume == pytest.approx(trades.total_volume, rel=1e-9)
    assert candles.delta.sum() == pytest.approx(trades.delta.sum(), abs=1e-6)
    # Candle highs and lows are the trades' extremes: the same range, so the same grid.
    same_rows = trade_profile(
        tape.price, tape.quantity, tape.is_buyer_maker, tick_size=tape.tick_size, rows=48
    )
    assert (candles.ticks_per_bin, candles.first_bin, len(candles)) == (
        same_rows.ticks_per_bin,
        same_rows.first_bin,
        len(same_rows),
    )


# ---- scopes -------------------------------------------------------------------------------------


def test_session_profiles_equal_one_candle_profile_per_day(tape: Tape) -> None:
    """Three UTC days (the last partial), each equal bit for bit to candle_profile on its rows."""
    sessions = session_profiles(
        tape.open_time_ms,
        tape.high,
        tape.low,
        tape.volume,
        tape.taker_buy_volume,
        tick_size=tape.tick_size,
    )
    days = sorted({time // DAY_MS * DAY_MS for time in tape.open_time_ms.tolist()})
    assert sorted(sessions) == days and len(days) == 3
    for day in days:
        rows = (tape.open_time_ms >= day) & (tape.open_time_ms < day + DAY_MS)
        alone = candle_profile(
            tape.high[rows],
            tape.low[rows],
            tape.volume[rows],
            tape.taker_buy_volume[rows],
            tick_size=tape.tick_size,
        )
        assert_same_profile(sessions[day], alone)


def test_session_profiles_group_unsorted_rows_and_offset_sessions() -> None:
    """Shuffled random candles in 8-hour sessions starting 02:00 equal per-session calls."""
    rng = np.random.default_rng(11)
    count = 3_000
    time_ms = rng.integers(0, 5 * DAY_MS, count)
    low_ticks = rng.integers(50_000, 50_400, count)
    high_ticks = low_ticks + rng.integers(0, 40, count)
    volume = rng.exponential(3.0, count)
    buys = volume * rng.uniform(0, 1, count)
    session_ms, offset_ms = 8 * 3_600_000, 2 * 3_600_000
    sessions = session_profiles(
        time_ms,
        high_ticks * 0.5,
        low_ticks * 0.5,
        volume,
        buys,
        tick_size=0.5,
        session_ms=session_ms,
        session_offset_ms=offset_ms,
        ticks_per_bin=4,
    )
    starts = sorted({(time - offset_ms) // session_ms * session_ms + offset_ms for time in time_ms})
    assert sorted(sessions) == starts
    for start in starts:
        rows = (time_ms >= start) & (time_ms < start + session_ms)
        alone = candle_profile(
            high_ticks[rows] * 0.5,
            low_ticks[rows] * 0.5,
            volume[rows],
            buys[rows],
            tick_size=0.5,
            ticks_per_bin=4,
        )
        assert_same_profile(sessions[start], alone)


def test_trade_session_profiles_equal_one_trade_profile_per_day(tape: Tape) -> None:
    """Every UTC day's trades, profiled together, equal trade_profile on that day alone."""
    sessions = trade_session_profiles(
        tape.trade_time_ms,
        tape.price,
        tape.quantity,
        tape.is_buyer_maker,
        tick_size=tape.tick_size,
    )
    days = sorted({time // DAY_MS * DAY_MS for time in tape.trade_time_ms.tolist()})
    assert sorted(sessions) == days and len(days) == 3
    for day in days:
        rows = (tape.trade_time_ms >= day) & (tape.trade_time_ms < day + DAY_MS)
        alone = trade_profile(
            tape.price[rows],
            tape.quantity[rows],
            tape.is_buyer_maker[rows],
            tick_size=tape.tick_size,
        )
        assert_same_profile(sessions[day], alone)


def test_session_profiles_of_nothing_is_empty() -> None:
    """No rows, no sessions."""
    assert session_profiles([], [], [], [], [], tick_size=0.1) == {}
    assert trade_session_profiles([], [], [], [], tick_size=0.1) == {}


def test_rolling_profile_uses_only_the_window_before_its_end(tape: Tape) -> None:
    """A 4-hour window ending at 12:00 equals candle_profile of 08:00–11:59 candles, and
    changing every candle from 12:00 on (or before 08:00) changes nothing."""
    end_ms = int(tape.open_time_ms[0]) + 12 * 3_600_000
    window_ms = 4 * 3_600_000
    columns = (tape.open_time_ms, tape.high, tape.low, tape.volume, tape.taker_buy_volume)
    rolled = rolling_profile(*columns, end_ms=end_ms, window_ms=window_ms, tick_size=0.1)
    rows = (tape.open_time_ms >= end_ms - window_ms) & (tape.open_time_ms < end_ms)
    assert rows.sum() == 240
    alone = candle_profile(
        tape.high[rows],
        tape.low[rows],
        tape.volume[rows],
        tape.taker_buy_volume[rows],
        tick_size=0.1,
    )
    assert_same_profile(rolled, alone)
    outside = ~rows
    damaged_high = np.where(outside, tape.high * 2, tape.high)
    damaged_volume = np.where(outside, tape.volume * 7, tape.volume)
    again = rolling_profile(
        tape.open_time_ms,
        damaged_high,
        tape.low,
        damaged_volume,
        tape.taker_buy_volume,
        end_ms=end_ms,
        window_ms=window_ms,
        tick_size=0.1,
    )
    assert_same_profile(again, rolled)
    with pytest.raises(UsageError):
        rolling_profile(*columns, end_ms=0, window_ms=window_ms, tick_size=0.1)


def test_composite_of_sessions_equals_the_profile_of_all_their_trades(tape: Tape) -> None:
    """Daily trade profiles with 5-tick bins merge into the 5-tick profile of all the trades."""
    sessions = trade_session_profiles(
        tape.trade_time_ms,
        tape.price,
        tape.quantity,
        tape.is_buyer_maker,
        tick_size=0.1,
        ticks_per_bin=5,
    )
    merged = composite_profile(list(sessions.values()))
    whole = trade_profile(
        tape.price, tape.quantity, tape.is_buyer_maker, tick_size=0.1, ticks_per_bin=5
    )
    assert (merged.ticks_per_bin, merged.first_bin, len(merged)) == (5, whole.first_bin, len(whole))
    assert merged.volume.tolist() == pytest.approx(whole.volume.tolist(), rel=1e-12, abs=1e-9)
    assert merged.delta.tolist() == pytest.approx(whole.delta.tolist(), rel=1e-12, abs=1e-9)
    assert merged.poc_index == whole.poc_index


def test_composite_of_different_widths_uses_their_least_common_multiple(tape: Tape) -> None:
    """2-tick and 3-tick profiles merge on a 6-tick grid with no volume crossing a bin edge:
    equal to the 6-tick profile of all the trades."""
    half = tape.trade_time_ms < tape.trade_time_ms[0] + DAY_MS
    first = trade_profile(
        tape.price[half],
        tape.quantity[half],
        tape.is_buyer_maker[half],
        tick_size=0.1,
        ticks_per_bin=2,
    )
    second = trade_profile(
        tape.price[~half],
        tape.quantity[~half],
        tape.is_buyer_maker[~half],
        tick_size=0.1,
        ticks_per_bin=3,
    )
    merged = composite_profile([first, second])
    whole = trade_profile(
        tape.price, tape.quantity, tape.is_buyer_maker, tick_size=0.1, ticks_per_bin=6
    )
    assert merged.ticks_per_bin == 6
    assert merged.first_bin == whole.first_bin
    assert merged.volume.tolist() == pytest.approx(whole.volume.tolist(), rel=1e-12, abs=1e-9)
    with pytest.raises(UsageError):
        composite_profile([first, second], ticks_per_bin=4)
    with pytest.raises(UsageError):
        composite_profile([])


# ---- tick size, output --------------------------------------------------------------------------


def test_infer_tick_size_recovers_the_exchange_grid(tape: Tape) -> None:
    """The exchange's trade prices give its 0.10 tick; sparse or noisy grids snap to 1-2-5."""
    assert infer_tick_size(tape.price) == 0.1
    assert infer_tick_size([100.0, 100.3, 100.9]) == 0.1  # gaps of 3 ticks, not a 0.2 grid
    assert infer_tick_size([1.5, 2.0, 3.5]) == 0.5
    assert infer_tick_size(np.arange(10_000, 10_100) * 0.01) == 0.01
    assert infer_tick_size([0.00012, 0.00014, 0.0002]) == 0.00002
    assert infer_tick_size([60_000.0, 60_010.0, 60_030.0]) == 10.0
    with pytest.raises(UsageError):
        infer_tick_size([1.0, 1.0])
    with pytest.raises(DataIntegrityError):
        infer_tick_size([1.0, 1.0 + math.pi / 1000, 1.0 + math.e / 1000])


def test_from_bins_rejects_mismatched_arrays_and_bad_grids() -> None:
    """Arrays of different lengths, an empty profile, a zero tick or share are usage errors."""
    good: dict[str, Any] = {
        "tick_size": 0.1,
        "ticks_per_bin": 1,
        "first_bin": 0,
        "volume": [1.0, 2.0],
        "buy_volume": [1.0, 2.0],
        "sell_volume": [0.0, 0.0],
    }
    bad_values: list[dict[str, Any]] = [
        {"sell_volume": [0.0]},
        {"buy_volume": [1.0, 2.0, 3.0]},
        {"volume": [], "buy_volume": [], "sell_volume": []},
        {"tick_size": 0.0},
        {"ticks_per_bin": 0},
        {"value_area_share": 0.0},
    ]
    VolumeProfile.from_bins(**good)
    for bad in bad_values:
        with pytest.raises(UsageError):
            VolumeProfile.from_bins(**(good | bad))


def test_to_dict_is_json_with_version_grid_levels_and_arrays() -> None:
    """The record carries the rules version and bin width and survives a JSON round trip.

    0.2-wide bins from 100.0. Value area (70 % of 28 = 19.6): 8, tie 2|2 → 12, tie 1|1 → 14
    (bins 0..4), only above is left: 0, 1, 3, 6 → 24, so bins 0..8 = [100.0, 101.8).
    """
    volume = [1, 2, 8, 2, 1, 0, 1, 3, 6, 3, 1]
    profile = VolumeProfile.from_bins(
        tick_size=0.1,
        ticks_per_bin=2,
        first_bin=500,
        volume=volume,
        buy_volume=[value / 2 for value in volume],
        sell_volume=[value / 2 for value in volume],
    )
    record = json.loads(json.dumps(profile.to_dict()))
    assert record["version"] == PROFILE_VERSION
    assert record["bin_width"] == 0.2 and record["price_low"] == 100.0
    assert record["levels"] == {
        "poc": 100.5,
        "vah": 101.8,
        "val": 100.0,
        "hvn_1": 100.5,
        "hvn_2": 101.7,
        "lvn_1": 101.1,
    }
    assert record["volume"] == volume
    assert not profile.volume.flags.writeable

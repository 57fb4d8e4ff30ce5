"""The calibrated simulator's structure: fair episodes, levels, the shared factor, caches."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from ingmon.exchange.market import Episode, EpisodeRates, Market

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
NOW_MS = 1_785_542_400_000 + 12 * HOUR_MS  # 2026-08-01T12:00:00Z
PROFILE_ROWS = 48  # docs/simulator.md, "Levels"
VALUE_AREA_SHARE = 0.70


@pytest.fixture(scope="module")
def ninety_days() -> Market:
    """BTCUSDT and ETHUSDT over 90 days, seed 7 (the issue's calibration market)."""
    return Market.demo(symbols=["BTCUSDT", "ETHUSDT"], days=90, seed=7, now_ms=NOW_MS)


def planted(market: Market, symbol: str) -> list[Episode]:
    """Every planted episode of the symbol (maintenance windows left out)."""
    return [
        episode for episode in market.episodes(symbol, 0, NOW_MS) if episode.kind != "maintenance"
    ]


# --- an independent volume profile (a plain loop over the served candles) --------------------


def profile_levels(closes: list[int], volumes: list[int]) -> dict[str, list[int]]:
    """POC, VAH, VAL, HVNs and the session's close extremes, by the rules written in
    docs/simulator.md, computed with plain Python over (close, volume) pairs in true ticks."""
    low, high = min(closes), max(closes)
    width = max(1, -(-(high - low + 1) // PROFILE_ROWS))
    rows = (high - low) // width + 1
    profile = [0] * rows
    for close, volume in zip(closes, volumes, strict=True):
        profile[(close - low) // width] += volume
    poc = max(range(rows), key=lambda row: (profile[row], -row))
    below = above = poc
    held = profile[poc]
    while held < VALUE_AREA_SHARE * sum(profile) and (below > 0 or above < rows - 1):
        up = profile[above + 1] if above < rows - 1 else -1
        down = profile[below - 1] if below > 0 else -1
        if up >= down:
            above += 1
            held += up
        else:
            below -= 1
            held += down
    padded = [0, *profile, 0]
    smooth = [(padded[i] + 2 * padded[i + 1] + padded[i + 2]) / 4 for i in range(rows)]
    peaks = [
        row
        for row in range(1, rows - 1)
        if smooth[row] > smooth[row - 1]
        and smooth[row] >= smooth[row + 1]
        and abs(row - poc) > 1
        and smooth[row] >= 0.5 * max(smooth)
    ]
    peaks.sort(key=lambda row: -smooth[row])
    return {
        "poc": [low + (2 * poc + 1) * width // 2],
        "vah": [low + (above + 1) * width],
        "val": [low + below * width],
        "hvn": [low + (2 * row + 1) * width // 2 for row in peaks[:2]],
        "swing_high": [high],
        "swing_low": [low],
        "width": [width],
    }


# --- fair episodes -------------------------------------------------------------------------


def test_every_kind_comes_in_both_directions_with_failures_and_decoys(
    ninety_days: Market,
) -> None:
    """Each kind has up and down episodes and all three outcomes, at least 30 real ones (not
    decoys) per symbol in 90 days, most but not all following through; maintenance windows carry
    no direction or outcome."""
    for symbol in ("BTCUSDT", "ETHUSDT"):
        episodes = planted(ninety_days, symbol)
        for kind in ("compression_breakout", "absorption", "squeeze"):
            mine = [episode for episode in episodes if episode.kind == kind]
            assert {episode.direction for episode in mine} == {"up", "down"}, (symbol, kind)
            outcomes = Counter(episode.outcome for episode in mine)
            assert set(outcomes) == {"follow_through", "failed", "decoy"}, (symbol, kind)
            assert outcomes["follow_through"] + outcomes["failed"] >= 30, (symbol, kind)
            real = outcomes["follow_through"] + outcomes["failed"]
            assert 0.4 <= outcomes["follow_through"] / real <= 0.8, (symbol, kind)
            for episode in mine:
                assert episode.start_ms <= episode.trigger_ms <= episode.end_ms  # type: ignore[operator]
        for episode in ninety_days.episodes(symbol, 0, NOW_MS):
            if episode.kind == "maintenance":
                assert (episode.direction, episode.outcome, episode.trigger_ms) == (None,) * 3


def test_episodes_start_at_any_hour(ninety_days: Market) -> None:
    """Starts spread over the day: every kind starts in at least 16 distinct UTC hours, and no
    hour holds more than a fifth of a kind's starts (today's model fired every squeeze 16–23 h)."""
    for kind in ("compression_breakout", "absorption", "squeeze"):
        hours = Counter(
            episode.start_ms // HOUR_MS % 24
            for symbol in ("BTCUSDT", "ETHUSDT")
            for episode in planted(ninety_days, symbol)
            if episode.kind == kind
        )
        assert len(hours) >= 16, kind
        assert max(hours.values()) <= 0.2 * sum(hours.values()), kind


def test_episode_windows_are_whole_minutes_and_do_not_overlap(ninety_days: Market) -> None:
    """Reported windows are minute-aligned, non-empty and never overlap another planted window
    of the same symbol (each one can be measured on its own)."""
    for symbol in ("BTCUSDT", "ETHUSDT"):
        windows = sorted((e.start_ms, e.end_ms) for e in planted(ninety_days, symbol))
        for start_ms, end_ms in windows:
            assert start_ms % MINUTE_MS == 0
            assert end_ms % MINUTE_MS == 0
            assert end_ms > start_ms
        for (_, first_end), (second_start, _) in itertools.pairwise(windows):
            assert second_start >= first_end


def test_episode_rates_are_configurable() -> None:
    """Rates of zero plant nothing of that kind; the other kinds still appear."""
    market = Market.demo(
        symbols=["BTCUSDT"],
        days=30,
        seed=7,
        now_ms=NOW_MS,
        episode_rates=EpisodeRates(squeeze_per_day=0.0, absorption_per_day=0.0),
    )
    kinds = Counter(episode.kind for episode in planted(market, "BTCUSDT"))
    assert kinds["squeeze"] == 0
    assert kinds["absorption"] == 0
    assert kinds["compression_breakout"] >= 10
    with pytest.raises(ValueError, match="follow_through"):
        EpisodeRates(follow_through=1.0)


# --- absorptions at levels -------------------------------------------------------------------


def test_absorption_levels_are_the_previous_sessions_levels(ninety_days: Market) -> None:
    """Most real absorptions record a level; each recorded level equals the level of its kind
    recomputed from the served 1m candles of the previous UTC day (within a tick), and the
    price at the absorption's start sits within one profile row of it."""
    spec = ninety_days.spec("BTCUSDT")
    absorptions = [
        episode
        for episode in planted(ninety_days, "BTCUSDT")
        if episode.kind == "absorption" and episode.outcome != "decoy"
    ]
    levelled = [episode for episode in absorptions if episode.level_price is not None]
    assert len(levelled) >= 0.5 * len(absorptions)
    tick = float(spec.tick_size)
    for episode in levelled[:12]:
        day_ms = episode.start_ms // DAY_MS * DAY_MS
        prior = ninety_days.klines("BTCUSDT", "1m", day_ms - DAY_MS, day_ms - 1, now_ms=NOW_MS)
        levels = profile_levels(
            (prior.close_ticks // spec.tick_units).tolist(),
            (prior.volume_steps // spec.step_units).tolist(),
        )
        assert episode.level_kind in levels
        recorded_ticks = round(episode.level_price / tick)  # type: ignore[operator]
        assert any(abs(recorded_ticks - level) <= 1 for level in levels[episode.level_kind])
        before = ninety_days.klines(
            "BTCUSDT", "1m", episode.start_ms - MINUTE_MS, episode.start_ms - 1, now_ms=NOW_MS
        )
        close_ticks = int(before.close_ticks[0]) // spec.tick_units
        assert abs(close_ticks - recorded_ticks) <= levels["width"][0]


# --- the market factor -------------------------------------------------------------------------


def test_a_symbol_is_the_same_whatever_other_symbols_the_market_holds() -> None:
    """BTCUSDT alone and BTCUSDT beside ETHUSDT (queried in another order) give identical
    trades, candles, open interest, funding and episodes: the factor reads no symbol's state."""
    alone = Market.demo(symbols=["BTCUSDT"], days=12, seed=5, now_ms=NOW_MS)
    paired = Market.demo(symbols=["ETHUSDT", "BTCUSDT"], days=12, seed=5, now_ms=NOW_MS)
    listing_ms = alone.spec("BTCUSDT").listing_ms
    paired.klines("ETHUSDT", "1h", listing_ms, NOW_MS, now_ms=NOW_MS)
    day_ms = listing_ms + 9 * DAY_MS
    left = alone.agg_trades("BTCUSDT", day_ms, day_ms + DAY_MS - 1)
    right = paired.agg_trades("BTCUSDT", day_ms, day_ms + DAY_MS - 1)
    for name in ("agg_id", "price_ticks", "qty_steps", "time_ms", "buyer_is_maker"):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name), err_msg=name)
    for interval in ("1m", "1h"):
        first = alone.klines("BTCUSDT", interval, listing_ms, NOW_MS, now_ms=NOW_MS)
        second = paired.klines("BTCUSDT", interval, listing_ms, NOW_MS, now_ms=NOW_MS)
        np.testing.assert_array_equal(first.close_ticks, second.close_ticks)
        np.testing.assert_array_equal(first.volume_steps, second.volume_steps)
    np.testing.assert_array_equal(
        alone.open_interest("BTCUSDT", "5m", 0, NOW_MS).sum_open_interest_steps,
        paired.open_interest("BTCUSDT", "5m", 0, NOW_MS).sum_open_interest_steps,
    )
    np.testing.assert_array_equal(
        alone.funding("BTCUSDT", 0, NOW_MS).funding_rate_e8,
        paired.funding("BTCUSDT", 0, NOW_MS).funding_rate_e8,
    )
    assert alone.episodes("BTCUSDT", 0, NOW_MS) == paired.episodes("BTCUSDT", 0, NOW_MS)


def test_symbols_share_the_market_factor(ninety_days: Market) -> None:
    """Hourly log returns of BTCUSDT and ETHUSDT are strongly correlated (a sanity check of the
    shared factor; the calibrated band is tests/exchange/test_facts.py's)."""
    listing_ms = ninety_days.spec("BTCUSDT").listing_ms
    closes = [
        ninety_days.klines(symbol, "1h", listing_ms, NOW_MS - DAY_MS, now_ms=NOW_MS).close_ticks
        for symbol in ("BTCUSDT", "ETHUSDT")
    ]
    returns = [np.diff(np.log(close.astype(float))) for close in closes]
    size = min(len(returns[0]), len(returns[1]))
    assert np.corrcoef(returns[0][:size], returns[1][:size])[0, 1] > 0.6


# --- caches ------------------------------------------------------------------------------------


def test_a_demo_market_never_generates_a_day_twice() -> None:
    """A 14-day, 3-symbol demo queried klines first, then every aggTrade, generates each
    symbol-day's trades exactly once (the trade cache holds the whole demo)."""
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    market = Market.demo(symbols=symbols, days=14, seed=7, now_ms=NOW_MS)
    listing_ms = market.spec("BTCUSDT").listing_ms
    for symbol in symbols:
        market.klines(symbol, "1m", listing_ms, NOW_MS, now_ms=NOW_MS)
    for symbol in symbols:
        market.agg_trades(symbol, listing_ms, NOW_MS)
    days = NOW_MS // DAY_MS - listing_ms // DAY_MS + 1
    assert market.cache_info()["trade_day_generations"] == len(symbols) * days

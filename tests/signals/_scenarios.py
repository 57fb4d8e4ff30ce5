"""Hand-built markets for the setup tests: a seeded random walk of 15m bars as warm-up (whole
UTC days, so the previous session's levels exist), then decisive 15m bars described by their
OHLC, volume, delta and open-interest change, all expanded to the 1m bars, 5m open interest and
8h funding that the engine really reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingmon.signals.features import Bars
from ingmon.signals.frame import FeatureFrame, MarketInputs, build_features
from ingmon.signals.rules import SignalConfig
from ingmon.signals.setups import Signal, detect
from ingmon.times import DAY_MS, HOUR_MS, MINUTE_MS

# 2026-02-02 00:00 UTC, a Monday: the warm-up starts here.
START_MS = 1_769_990_400_000
BAR_MS = 15 * MINUTE_MS
TICK = 0.01
WARMUP_DAYS = 3
BASELINE_FUNDING = 0.0001
CONFIG = SignalConfig()


@dataclass(frozen=True)
class Bar:
    """One target 15m bar: OHLC, base volume, delta (taker buy − taker sell) and the relative
    change of open interest over the bar."""

    open: float
    high: float
    low: float
    close: float
    volume: float = 100.0
    delta: float = 0.0
    oi_change: float = 0.0


def bar(
    open_: float,
    close: float,
    *,
    high: float | None = None,
    low: float | None = None,
    pad: float = 0.05,
    volume: float = 100.0,
    delta: float = 0.0,
    oi_change: float = 0.0,
) -> Bar:
    """A bar from open to close with wicks of ``pad`` unless high/low are given."""
    return Bar(
        open=open_,
        high=max(open_, close) + pad if high is None else high,
        low=min(open_, close) - pad if low is None else low,
        close=close,
        volume=volume,
        delta=delta,
        oi_change=oi_change,
    )


def path(start: float, closes: list[float], **kwargs: float) -> list[Bar]:
    """Consecutive bars, each opening at the previous close and closing at the next value."""
    bars = []
    for close in closes:
        bars.append(bar(start, close, **kwargs))
        start = close
    return bars


def random_walk(count: int, *, seed: int, price: float = 100.0) -> list[Bar]:
    """``count`` seeded random-walk bars (0.2 % steps, small wicks, noisy volume and delta)."""
    rng = np.random.default_rng(seed)
    bars = []
    for _ in range(count):
        close = price * (1.0 + rng.normal(0.0, 0.002))
        volume = float(100.0 * rng.lognormal(0.0, 0.25))
        bars.append(
            Bar(
                open=price,
                high=max(price, close) + abs(rng.normal(0.0, 0.05)),
                low=min(price, close) - abs(rng.normal(0.0, 0.05)),
                close=close,
                volume=volume,
                delta=float(np.clip(rng.normal(0.0, 10.0), -0.5 * volume, 0.5 * volume)),
                oi_change=float(rng.normal(0.0, 0.0005)),
            )
        )
        price = close
    return bars


def _round(value: float) -> float:
    return round(round(value / TICK) * TICK, 8)


def minutes_of(bars: list[Bar], start_ms: int) -> Bars:
    """1m bars whose 15m aggregation is exactly ``bars`` (prices on the 0.01 tick): each 15m
    bar walks open → low → high → close (open → high → low → close when it closes down)."""
    times, opens, highs, lows, closes, volumes, buys = ([] for _ in range(7))
    for number, target in enumerate(bars):
        o, h, lo, c = (_round(v) for v in (target.open, target.high, target.low, target.close))
        first, second = (lo, h) if c >= o else (h, lo)
        waypoints = np.interp(np.arange(1, 16), [0, 5, 10, 15], [o, first, second, c])
        minute_closes = [_round(v) for v in waypoints]
        previous = o
        for minute, close in enumerate(minute_closes):
            times.append(start_ms + number * BAR_MS + minute * MINUTE_MS)
            opens.append(previous)
            highs.append(max(previous, close))
            lows.append(min(previous, close))
            closes.append(close)
            volumes.append(target.volume / 15.0)
            buys.append((target.volume + target.delta) / 30.0)
            previous = close
    return Bars.from_candles(
        open_time_ms=times,
        open=opens,
        high=highs,
        low=lows,
        close=closes,
        volume=volumes,
        taker_buy_volume=buys,
    )


@dataclass(frozen=True)
class Scenario:
    """The decisive bars appended to the warm-up, as engine inputs and features."""

    inputs: MarketInputs
    frame: FeatureFrame
    first: int  # index of the first decisive bar

    def signals(self, setup: str, *, inputs: MarketInputs | None = None) -> list[Signal]:
        """The ``setup`` signals on the decisive bars (of ``inputs`` if given: a prefix)."""
        frame = self.frame if inputs is None else build_features(inputs, CONFIG)
        return [s for s in detect(frame, CONFIG, first_index=self.first) if s.setup == setup]

    def end_of(self, index: int) -> int:
        """The instant bar ``index`` closes (its close time + 1 ms)."""
        return START_MS + (index + 1) * BAR_MS


def warmup(seed: int = 1, days: int = WARMUP_DAYS) -> list[Bar]:
    """Whole UTC days of random walk: the decisive bars start on the next day at 00:00."""
    return random_walk(days * DAY_MS // BAR_MS, seed=seed)


def build(
    history: list[Bar], decisive: list[Bar], *, funding_rate: float = BASELINE_FUNDING
) -> Scenario:
    """Engine inputs for ``history`` then ``decisive`` 15m bars from ``START_MS``; funding
    settles every 8 h at the baseline, and at ``funding_rate`` from the first settlement at or
    after the first decisive bar; open interest is snapshotted every 5 minutes."""
    bars = history + decisive
    minutes = minutes_of(bars, START_MS)
    end_ms = START_MS + len(bars) * BAR_MS
    # OI after bar i is 1e6 · Π(1 + change); a snapshot shows the last bar ended by its stamp.
    after = 1e6 * np.cumprod([1.0 + b.oi_change for b in bars])
    stamps = np.arange(START_MS + 5 * MINUTE_MS, end_ms + 1, 5 * MINUTE_MS, dtype=np.int64)
    ended = (stamps - START_MS) // BAR_MS - 1
    oi = np.where(ended >= 0, after[np.maximum(ended, 0)], 1e6)
    decisive_ms = START_MS + len(history) * BAR_MS
    settlements = np.arange(START_MS, end_ms, 8 * HOUR_MS, dtype=np.int64)
    rates = np.where(settlements >= decisive_ms, funding_rate, BASELINE_FUNDING)
    inputs = MarketInputs(
        symbol="TESTUSDT",
        minutes=minutes,
        oi_time_ms=stamps,
        oi_value=oi.astype(np.float64),
        funding_time_ms=settlements,
        funding_rate=rates.astype(np.float64),
        funding_interval_hours=np.full(settlements.size, 8.0),
        known_until_ms=end_ms,
        tick_size=TICK,
    )
    return Scenario(inputs=inputs, frame=build_features(inputs, CONFIG), first=len(history))

"""No free lunch on the simulated market: textbook detectors are weak, precursors are coin flips.

Every detector here is written from the served candles, open interest and funding only (the
reference's textbook definitions), scored against ``Market.episodes()`` ground truth, and traded
with a 0.05 % taker fee per side. Expectancy bounds use the sample's own standard error (trades
are at least an hour apart, so they are close to independent): |mean gross return| must stay
within 2·fee + 3 SE, which a market without an edge breaks with probability ≈ 0.3 %. A cheating
detector that reads the episode's outcome label must break it — proof that the test can fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from ingmon.exchange import Market
from ingmon.exchange.market import Episode

SYMBOLS = ("BTCUSDT", "ETHUSDT")
SEEDS = (7, 11)
DAYS = 90
END_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
FEE_RATE = 0.0005  # taker, per side
ROUND_TRIP_FEE = 2 * FEE_RATE
STANDARD_ERRORS = 3.0
MIN_TRADES = 20
MAX_PRECISION = 0.7  # "well below 1": a good setup is a weak edge (precision 0.3–0.6)
KINDS = ("compression_breakout", "absorption", "squeeze")

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True)
class Truth:
    """An episode in the issue-8 shape (older reports read through their detail)."""

    kind: str
    start_ms: int
    end_ms: int
    direction: int  # +1 up, −1 down
    outcome: str | None
    trigger_ms: int


def _truth(episode: Episode) -> Truth | None:
    kind = str(episode.kind)
    if kind == "maintenance":
        return None
    direction = getattr(episode, "direction", None)
    trigger_ms = getattr(episode, "trigger_ms", None)
    if kind == "short_squeeze":  # the pre-issue-8 report: squeezes only went up
        kind, direction = "squeeze", direction or "up"
    direction = direction or episode.detail.get("direction")
    if direction is None and "bias" in episode.detail:
        direction = "up" if episode.detail["bias"] == "bullish" else "down"
    if trigger_ms is None:
        trigger_ms = episode.detail.get("breakout_start_ms") or (
            episode.end_ms if kind == "absorption" else episode.start_ms
        )
    return Truth(
        kind=kind,
        start_ms=episode.start_ms,
        end_ms=episode.end_ms,
        direction=1 if direction == "up" else -1,
        outcome=getattr(episode, "outcome", None),
        trigger_ms=int(trigger_ms),
    )


@dataclass
class Tape:
    """One symbol's served data on a one-minute grid (prices forward-filled through gaps)."""

    start_ms: int
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    taker_buy: FloatArray
    trades: FloatArray
    oi: FloatArray  # latest 5-minute open interest known at each minute's close
    funding_time_ms: list[int]
    funding_rate: list[float]
    truths: list[Truth]

    def minute(self, time_ms: int) -> int:
        return (time_ms - self.start_ms) // MINUTE_MS

    def price_at(self, time_ms: int) -> float:
        """Close of the minute that ends at ``time_ms`` (NaN outside the window)."""
        index = self.minute(time_ms) - 1
        return float(self.close[index]) if 0 <= index < self.close.size else math.nan


def _tape(market: Market, symbol: str, start_ms: int, end_ms: int) -> Tape:
    spec = market.spec(symbol)
    price = 10.0**-spec.price_decimals
    quantity = 10.0**-spec.quantity_decimals
    candles = market.klines(symbol, "1m", start_ms, end_ms - 1, now_ms=end_ms - 1)
    minutes = (end_ms - start_ms) // MINUTE_MS
    index = (candles.open_time_ms - start_ms) // MINUTE_MS
    present = np.zeros(minutes, dtype=bool)
    present[index] = True
    last = np.maximum.accumulate(np.where(present, np.arange(minutes), 0))

    def filled(values: Any, scale: float) -> FloatArray:
        grid = np.zeros(minutes)
        grid[index] = np.asarray(values, dtype=np.float64) * scale
        return grid[last]

    def summed(values: Any, scale: float) -> FloatArray:
        grid = np.zeros(minutes)
        grid[index] = np.asarray(values, dtype=np.float64) * scale
        return grid

    close = filled(candles.close_ticks, price)
    interest = market.open_interest(symbol, "5m", start_ms - HOUR_MS, end_ms)
    close_ms = start_ms + (np.arange(minutes) + 1) * MINUTE_MS
    row = np.searchsorted(interest.timestamp_ms, close_ms, side="right") - 1
    funding = market.funding(symbol, start_ms, end_ms - 1)
    truths = [
        truth
        for episode in market.episodes(symbol, start_ms, end_ms - 1)
        if (truth := _truth(episode)) is not None and truth.end_ms <= end_ms
    ]
    return Tape(
        start_ms=start_ms,
        open=np.where(present, summed(candles.open_ticks, price), close),
        high=np.where(present, summed(candles.high_ticks, price), close),
        low=np.where(present, summed(candles.low_ticks, price), close),
        close=close,
        volume=summed(candles.volume_steps, quantity),
        taker_buy=summed(candles.taker_buy_volume_steps, quantity),
        trades=summed(candles.trade_count, 1.0),
        oi=np.asarray(interest.sum_open_interest_steps, dtype=np.float64)[np.maximum(row, 0)],
        funding_time_ms=funding.funding_time_ms.tolist(),
        funding_rate=funding.funding_rate.tolist(),
        truths=truths,
    )


@pytest.fixture(scope="module")
def tapes() -> dict[int, dict[str, Tape]]:
    """90 days of BTCUSDT and ETHUSDT for each seed, loaded once."""
    loaded: dict[int, dict[str, Tape]] = {}
    start_ms = END_MS - DAYS * DAY_MS
    for seed in SEEDS:
        market = Market.demo(symbols=list(SYMBOLS), days=DAYS, seed=seed, now_ms=END_MS)
        loaded[seed] = {symbol: _tape(market, symbol, start_ms, END_MS) for symbol in SYMBOLS}
    return loaded


# --- textbook detectors --------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    """A detector event on a closed bar: when it is known and which way it trades."""

    time_ms: int
    direction: int
    hold_minutes: int


def _bars(tape: Tape, minutes: int) -> dict[str, FloatArray]:
    """Candles of ``minutes`` minutes resampled from the one-minute grid."""
    count = tape.close.size // minutes
    shaped = {
        name: getattr(tape, name)[: count * minutes].reshape(count, minutes)
        for name in ("open", "high", "low", "close", "volume", "taker_buy")
    }
    return {
        "open": shaped["open"][:, 0],
        "high": shaped["high"].max(axis=1),
        "low": shaped["low"].min(axis=1),
        "close": shaped["close"][:, -1],
        "volume": shaped["volume"].sum(axis=1),
        "taker_buy": shaped["taker_buy"].sum(axis=1),
    }


def _sma(values: FloatArray, length: int) -> FloatArray:
    out = np.full(values.size, np.nan)
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    out[length - 1 :] = (cumulative[length:] - cumulative[:-length]) / length
    return out


def _rolling_std(values: FloatArray, length: int) -> FloatArray:
    """Population std of the last ``length`` values (cumulative sums of centred data)."""
    centred = values - np.nanmean(values)
    mean = _sma(centred, length)
    return np.sqrt(np.maximum(_sma(centred * centred, length) - mean * mean, 0.0))


def _true_range(bars: dict[str, FloatArray]) -> FloatArray:
    previous = np.concatenate([[bars["close"][0]], bars["close"][:-1]])
    return np.maximum.reduce(
        [bars["high"] - bars["low"], abs(bars["high"] - previous), abs(bars["low"] - previous)]
    )


def _ttm_squeeze_fires(tape: Tape) -> list[Signal]:
    """TTM squeeze on 5m bars (BB 20/2 inside KC 20/1.5·ATR) released after ≥ 6 bars, traded
    in the sign of LazyBear's momentum for one hour (reference §1.1)."""
    bars = _bars(tape, 5)
    close = bars["close"]
    mid = _sma(close, 20)
    deviation = 2.0 * _rolling_std(close, 20)
    band = 1.5 * _sma(_true_range(bars), 20)
    squeeze_on = (mid - deviation > mid - band) & (mid + deviation < mid + band)
    highest = np.full(close.size, np.nan)
    lowest = np.full(close.size, np.nan)
    highest[19:] = np.lib.stride_tricks.sliding_window_view(bars["high"], 20).max(axis=1)
    lowest[19:] = np.lib.stride_tricks.sliding_window_view(bars["low"], 20).min(axis=1)
    detrended = close - ((highest + lowest) / 2 + mid) / 2
    momentum = np.full(close.size, np.nan)
    x = np.arange(20, dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(detrended, 20)
    slope = ((windows - windows.mean(axis=1, keepdims=True)) * (x - x.mean())).sum(axis=1) / (
        (x - x.mean()) ** 2
    ).sum()
    momentum[19:] = windows.mean(axis=1) + slope * (19 - x.mean())
    signals = []
    run = 0
    for bar in range(1, close.size):
        run = run + 1 if squeeze_on[bar - 1] else 0
        if run >= 6 and not squeeze_on[bar] and np.isfinite(momentum[bar]) and momentum[bar]:
            signals.append(
                Signal(
                    time_ms=tape.start_ms + (bar + 1) * 5 * MINUTE_MS,
                    direction=1 if momentum[bar] > 0 else -1,
                    hold_minutes=60,
                )
            )
    return signals


def _absorption_fades(tape: Tape) -> list[Signal]:
    """5m bars with heavy one-sided taker flow (|imbalance| z ≥ 2.5 vs the trailing day) but
    price progress under a quarter ATR: fade the aggressor for 30 minutes (reference §2.2)."""
    bars = _bars(tape, 5)
    with np.errstate(invalid="ignore", divide="ignore"):
        imbalance = np.where(
            bars["volume"] > 0, (2 * bars["taker_buy"] - bars["volume"]) / bars["volume"], 0.0
        )
    mean = np.full(imbalance.size, np.nan)
    spread = np.full(imbalance.size, np.nan)
    mean[288:] = _sma(imbalance, 288)[287:-1]
    spread[288:] = _rolling_std(imbalance, 288)[287:-1]
    atr = _sma(_true_range(bars), 14)
    progress = abs(bars["close"] - bars["open"])
    with np.errstate(invalid="ignore"):
        heavy = abs(imbalance - mean) >= 2.5 * spread
        stalled = progress <= 0.25 * atr
    signals: list[Signal] = []
    last_ms = -(10**15)
    for bar in np.flatnonzero(heavy & stalled):
        time_ms = tape.start_ms + (int(bar) + 1) * 5 * MINUTE_MS
        if time_ms - last_ms >= HOUR_MS:
            signals.append(Signal(time_ms, -1 if imbalance[bar] > 0 else 1, 30))
            last_ms = time_ms
    return signals


def _squeeze_chases(tape: Tape) -> list[Signal]:
    """The reference §1.2 short/long-squeeze rule on closed 1m bars (15-minute window), chased
    for one hour."""
    window = 15
    close = tape.close
    ret = np.full(close.size, np.nan)
    ret[window:] = close[window:] / close[:-window] - 1
    mean = np.full(close.size, np.nan)
    spread = np.full(close.size, np.nan)
    valid = np.nan_to_num(ret)
    mean[window + 1440 :] = _sma(valid, 1440)[window + 1439 : -1]
    spread[window + 1440 :] = _rolling_std(valid, 1440)[window + 1439 : -1]
    z_score = (ret - mean) / spread
    oi_change = np.full(close.size, np.nan)
    oi_change[window:] = tape.oi[window:] / tape.oi[:-window] - 1
    close_ms = tape.start_ms + (np.arange(close.size) + 1) * MINUTE_MS
    row = np.searchsorted(np.asarray(tape.funding_time_ms), close_ms, side="right") - 1
    funding = np.where(row >= 0, np.asarray([*tape.funding_rate, 0.0])[row], 0.0001)
    volume = _sma(tape.volume, window) * window
    buys = _sma(tape.taker_buy, window) * window
    with np.errstate(invalid="ignore", divide="ignore"):
        buy_share = buys / volume
        up = (z_score >= 2) & (oi_change <= -0.005) & (funding < 0.0001) & (buy_share >= 0.55)
        down = (z_score <= -2) & (oi_change <= -0.005) & (funding > 0.0001) & (buy_share <= 0.45)
    signals: list[Signal] = []
    last_ms = -(10**15)
    for minute in np.flatnonzero(up | down):
        time_ms = int(close_ms[minute])
        if time_ms - last_ms >= HOUR_MS:
            signals.append(Signal(time_ms, 1 if up[minute] else -1, 60))
            last_ms = time_ms
    return signals


DETECTORS = {
    "compression_breakout": _ttm_squeeze_fires,
    "absorption": _absorption_fades,
    "squeeze": _squeeze_chases,
}


def _gross_return(tape: Tape, signal: Signal) -> float:
    """Log return of a trade entered at the next minute's open, exited at the close after the
    hold, in the signal's direction (NaN past the window)."""
    entry = tape.minute(signal.time_ms)
    exit_minute = entry + signal.hold_minutes - 1
    if exit_minute >= tape.close.size:
        return math.nan
    return signal.direction * math.log(tape.close[exit_minute] / tape.open[entry])


def _is_hit(tape: Tape, signal: Signal, kind: str) -> bool:
    """The signal lands inside a planted (non-decoy) episode of the kind, or 30 minutes after."""
    return any(
        truth.kind == kind
        and truth.outcome != "decoy"
        and truth.start_ms <= signal.time_ms < truth.end_ms + 30 * MINUTE_MS
        for truth in tape.truths
    )


@dataclass(frozen=True)
class Scorecard:
    precision: float
    signals: int
    mean_gross: float
    standard_error: float

    def describe(self) -> str:
        return (
            f"precision {self.precision:.3f} over {self.signals} signals, mean gross "
            f"{self.mean_gross * 100:+.3f} % ± {self.standard_error * 100:.3f} % (SE)"
        )


def _score(trades: list[tuple[bool, float]]) -> Scorecard:
    returns = np.asarray([value for _, value in trades if math.isfinite(value)])
    hits = sum(hit for hit, _ in trades)
    return Scorecard(
        precision=hits / len(trades) if trades else math.nan,
        signals=len(trades),
        mean_gross=float(returns.mean()) if returns.size else math.nan,
        standard_error=float(returns.std(ddof=1) / math.sqrt(returns.size))
        if returns.size > 1
        else math.inf,
    )


def _no_edge(card: Scorecard) -> bool:
    """Neither the trade nor its mirror earns more than 3 SE after the round-trip fee."""
    return abs(card.mean_gross) <= ROUND_TRIP_FEE + STANDARD_ERRORS * card.standard_error


# --- the tests -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_textbook_detector_is_a_weak_edge_that_fees_eat(
    tapes: dict[int, dict[str, Tape]], seed: int, kind: str
) -> None:
    """A textbook detector of each kind has precision ≤ 0.7 against the planted truth, and its
    trades (or their mirror) earn nothing beyond the 0.1 % round-trip fee + 3 SE."""
    trades = [
        (_is_hit(tape, signal, kind), _gross_return(tape, signal))
        for tape in tapes[seed].values()
        for signal in DETECTORS[kind](tape)
    ]
    card = _score(trades)
    assert card.signals >= MIN_TRADES, f"{kind} detector barely fires: {card.describe()}"
    assert card.precision <= MAX_PRECISION, f"{kind}: too separable, {card.describe()}"
    assert _no_edge(card), f"{kind}: a free lunch, {card.describe()}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_detector_that_reads_the_outcome_label_has_an_edge(
    tapes: dict[int, dict[str, Tape]], seed: int, kind: str
) -> None:
    """Trading only episodes labelled follow-through, at the trigger, in their direction, earns
    far more than the bound allows — so the no-edge test can fail."""
    trades = []
    for tape in tapes[seed].values():
        for truth in tape.truths:
            if truth.kind != kind or truth.outcome not in ("follow_through", None):
                continue
            hold = max(60, (truth.end_ms - truth.trigger_ms) // MINUTE_MS)
            signal = Signal(truth.trigger_ms, truth.direction, int(min(hold, 480)))
            trades.append((True, _gross_return(tape, signal)))
    card = _score(trades)
    assert card.signals >= 10, card.describe()
    assert card.mean_gross - ROUND_TRIP_FEE > STANDARD_ERRORS * card.standard_error, (
        f"{kind}: cheating detector shows no edge: {card.describe()}"
    )


def _settlement_samples(tape: Tape) -> list[tuple[float, float, float, float]]:
    """(funding rate, 5m taker imbalance, 1h OI change, forward 8h log return) per settlement."""
    samples = []
    for time_ms, rate in zip(tape.funding_time_ms, tape.funding_rate, strict=True):
        now = tape.price_at(time_ms)
        later = tape.price_at(time_ms + 8 * HOUR_MS)
        minute = tape.minute(time_ms)
        if not (math.isfinite(now) and math.isfinite(later)) or minute < 60 or later == now:
            continue
        volume = float(tape.volume[minute - 5 : minute].sum())
        buys = float(tape.taker_buy[minute - 5 : minute].sum())
        imbalance = (2 * buys - volume) / volume if volume > 0 else 0.0
        oi_change = float(tape.oi[minute - 1] / tape.oi[minute - 61] - 1)
        samples.append((rate, imbalance, oi_change, math.log(later / now)))
    return samples


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("precursor", ["funding sign", "5m taker imbalance", "1h OI change"])
def test_no_single_precursor_predicts_the_next_8_hours(
    tapes: dict[int, dict[str, Tape]], seed: int, precursor: str
) -> None:
    """The sign of funding, of the last 5 minutes' taker imbalance or of the last hour's OI
    change calls the sign of the next 8 h return at 0.5 ± 3 SE (either way round)."""
    column = ["funding sign", "5m taker imbalance", "1h OI change"].index(precursor)
    calls = [
        (sample[column] > 0) == (sample[3] > 0)
        for tape in tapes[seed].values()
        for sample in _settlement_samples(tape)
        if sample[column] != 0
    ]
    hit_rate = sum(calls) / len(calls)
    # The two symbols move together, so count their settlements once: SE = 0.5/√(n/2).
    standard_error = 0.5 / math.sqrt(len(calls) / len(SYMBOLS))
    assert abs(hit_rate - 0.5) <= STANDARD_ERRORS * standard_error, (
        f"{precursor}: hit rate {hit_rate:.3f} over {len(calls)} settlements "
        f"(SE {standard_error:.3f})"
    )


def _binomial_two_sided_p(successes: int, trials: int) -> float:
    """Exact two-sided binomial test p-value against p = 0.5 (doubling the smaller tail)."""
    tail = min(successes, trials - successes)
    probability = sum(math.comb(trials, count) for count in range(tail + 1)) / 2**trials
    return min(1.0, 2 * probability)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_episodes_are_direction_symmetric(
    tapes: dict[int, dict[str, Tape]], seed: int, kind: str
) -> None:
    """Up and down episodes are equally common (exact binomial p ≥ 0.001) and follow through
    equally often (two-proportion |z| ≤ 3.29, i.e. p ≥ 0.001)."""
    truths = [
        truth
        for tape in tapes[seed].values()
        for truth in tape.truths
        if truth.kind == kind and truth.outcome != "decoy"
    ]
    ups = sum(truth.direction > 0 for truth in truths)
    p_value = _binomial_two_sided_p(ups, len(truths))
    assert p_value >= 0.001, f"{kind}: {ups} up of {len(truths)} (binomial p={p_value:.2g})"
    labelled = [truth for truth in truths if truth.outcome in ("follow_through", "failed")]
    rates = []
    for direction in (1, -1):
        sided = [truth for truth in labelled if truth.direction == direction]
        wins = sum(truth.outcome == "follow_through" for truth in sided)
        rates.append((wins, len(sided)))
    (wins_up, count_up), (wins_down, count_down) = rates
    assert count_up and count_down, f"{kind}: outcomes by direction not reported: {rates}"
    pooled = (wins_up + wins_down) / (count_up + count_down)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / count_up + 1 / count_down)) or 1.0
    z_score = (wins_up / count_up - wins_down / count_down) / spread
    assert abs(z_score) <= 3.29, f"{kind}: follow-through up vs down {rates}, z={z_score:.2f}"


def _kolmogorov_p(statistic: float, count: int) -> float:
    """Asymptotic KS p-value with Stephens' correction (Numerical Recipes probks)."""
    scaled = (math.sqrt(count) + 0.12 + 0.11 / math.sqrt(count)) * statistic
    if scaled < 0.2:
        return 1.0
    return max(
        0.0,
        min(
            1.0,
            2
            * sum((-1) ** (j - 1) * math.exp(-2 * j * j * scaled * scaled) for j in range(1, 101)),
        ),
    )


def _ks_statistic(sorted_values: list[float], cdf: Callable[[float], float]) -> float:
    count = len(sorted_values)
    return max(
        max((index + 1) / count - cdf(value), cdf(value) - index / count)
        for index, value in enumerate(sorted_values)
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_episode_start_hours_are_not_concentrated(
    tapes: dict[int, dict[str, Tape]], seed: int, kind: str
) -> None:
    """Start times (minute of the UTC day) pass a KS test (p ≥ 0.001) against uniform-within-hour
    times weighted by each hour's share of trades, or against plain clock-uniform times — either
    is "any hour"; a schedule bound to the clock fails both."""
    weights = [0.0] * 24
    for tape in tapes[seed].values():
        for minute, count in enumerate(tape.trades.tolist()):
            weights[(tape.start_ms // HOUR_MS + minute // 60) % 24] += count
    total = sum(weights)
    cumulative = [sum(weights[:hour]) / total for hour in range(25)]

    def activity_cdf(minute_of_day: float) -> float:
        hour = min(23, int(minute_of_day // 60))
        return cumulative[hour] + weights[hour] / total * (minute_of_day - 60 * hour) / 60

    def uniform_cdf(minute_of_day: float) -> float:
        return minute_of_day / 1440

    starts = sorted(
        truth.start_ms % DAY_MS / MINUTE_MS + 0.5
        for tape in tapes[seed].values()
        for truth in tape.truths
        if truth.kind == kind
    )
    assert len(starts) >= 10, f"{kind}: only {len(starts)} episodes"
    p_activity = _kolmogorov_p(_ks_statistic(starts, activity_cdf), len(starts))
    p_uniform = _kolmogorov_p(_ks_statistic(starts, uniform_cdf), len(starts))
    hours = sorted({int(value // 60) for value in starts})
    assert max(p_activity, p_uniform) >= 0.001, (
        f"{kind}: KS p={p_activity:.2g} (activity), {p_uniform:.2g} (uniform), hours {hours}"
    )

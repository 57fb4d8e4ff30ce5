"""Stylized facts of a simulated market, measured from its served data the way a quant would.

Everything here reads the ``Market`` through its public data methods only (``klines``,
``agg_trades``, ``open_interest``, ``funding``, ``episodes``) plus the contract's tick/step
decimals (what ``exchangeInfo`` serves) — never the simulator's parameters — so the report is an
independent instrument for calibrating the simulator (docs/simulator.md, "Stylized facts").

A band is met when the 99 % confidence interval of the estimate (value ± 2.576 standard errors,
where a standard error is known) overlaps it: a 90-day sample measures the market's property with
sampling error, and the instrument must not fail a well-calibrated market by chance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ingmon.exchange.market import Episode, Market

__all__ = [
    "CONFIDENCE_Z",
    "EPISODE_KINDS",
    "POOLED",
    "SCHEMA",
    "Band",
    "EpisodeMeasurement",
    "Fact",
    "FactsReport",
    "Profile",
    "autocorrelation",
    "excess_kurtosis",
    "hill_tail_index",
    "ks_test",
    "measure_facts",
    "roc_auc",
    "spearman",
    "volume_profile",
]

SCHEMA = "ingmon.exchange.facts/v1"
EPISODE_KINDS = ("compression_breakout", "absorption", "squeeze")
POOLED = "all"  # the column that pools every symbol (episode statistics)
CONFIDENCE_Z = 2.576  # two-sided 99 %

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
MINUTES_PER_DAY = 1440

TAKER_FEE_RATE = 0.0005  # Binance USD-M VIP 0 taker fee per side
FUNDING_HOT_RATE = 0.0005  # |funding| above 0.05 % per settlement: a hot market
FUNDING_MILD_NEGATIVE_RATE = -0.0002  # real negatives are mostly above −0.02 %
FAKE_EDGE_HORIZON_MINUTES = 480  # forward return after a funding settlement: 8 hours
OUTCOME_MIN_HORIZON_MINUTES = 60
OUTCOME_MAX_HORIZON_MINUTES = 480
NEAR_LEVEL_HOUR_SIGMAS = 0.25  # "at a level": within a quarter of an hourly σ in price
PROFILE_ROWS = 50  # reference §3.2: 24–50 rows for a session's levels
VALUE_AREA_SHARE = 0.70  # CBOT value area
SWING_BARS = 5  # pivot of 5 bars left and right on 15-minute candles
SWING_LOOKBACK_MS = 48 * HOUR_MS
SWINGS_PER_SIDE = 2  # the two most recent confirmed swing highs and lows
HVN_COUNT = 2
RANDOM_MINUTE_STRIDE = 7
RETRACE_MIN_MOVE_SHARE = 0.25  # retraces count once the move reached a quarter of its peak
SQUEEZE_WINDOW_MINUTES = 15
SQUEEZE_MATCH_SLACK_MS = 30 * MINUTE_MS
ALERT_GAP_MS = 60 * MINUTE_MS  # alerts closer than this are one detector event
TAIL_FRACTION = 0.01  # Hill estimator on the top 1 % (trade notionals, |1m returns|)

# Real-market references (docs/simulator.md lists them with their sources).
_ISSUE = "issue 8 table (real BTCUSDT/ETHUSDT perpetuals)"
_CONT = "Cont (2001), Quantitative Finance 1:223-236"
_GABAIX = "Gabaix, Gopikrishnan, Plerou, Stanley (2003, 2006): trade-size tail ζ≈1.5"
_GOPI = "Gopikrishnan et al. (1999): inverse cubic law of returns; Cont (2001): 2<α<5"
_DERIVED = "derived (no number in the issue); see docs/simulator.md"


@dataclass(frozen=True)
class Band:
    """The range a real market shows for a fact (either side open), and where it comes from."""

    low: float | None
    high: float | None
    source: str

    def describe(self) -> str:
        """ "0.5–0.7", "≥ 30", "≤ 0.05"."""
        if self.low is not None and self.high is not None:
            return f"{_number(self.low)}–{_number(self.high)}"
        if self.low is not None:
            return f"≥ {_number(self.low)}"
        if self.high is not None:
            return f"≤ {_number(self.high)}"
        return "any"


@dataclass(frozen=True)
class Fact:
    """One row of the report: a value per column (symbol, or ``POOLED``) against a band."""

    key: str  # stable identifier, e.g. "corr_1h_log_return" or "follow_through_measured.squeeze"
    title: str  # what a reader sees in the table
    group: str  # the issue's table row it belongs to
    values: dict[str, float | None]
    errors: dict[str, float | None] = field(default_factory=dict)  # standard errors, if known
    samples: dict[str, int] = field(default_factory=dict)  # sample sizes behind each value
    band: Band | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def ok(self, column: str) -> bool | None:
        """Whether the column's 99 % interval overlaps the band (None: no band or no value)."""
        value = self.values.get(column)
        if self.band is None or value is None or not math.isfinite(value):
            return None
        error = self.errors.get(column) or 0.0
        margin = CONFIDENCE_Z * error if math.isfinite(error) else math.inf
        if self.band.low is not None and value + margin < self.band.low:
            return False
        return not (self.band.high is not None and value - margin > self.band.high)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready row (NaN/inf become None)."""
        return {
            "key": self.key,
            "title": self.title,
            "group": self.group,
            "values": {name: _finite(value) for name, value in self.values.items()},
            "errors": {name: _finite(value) for name, value in self.errors.items()},
            "samples": dict(self.samples),
            "band": None
            if self.band is None
            else {"low": self.band.low, "high": self.band.high, "source": self.band.source},
            "ok": {name: self.ok(name) for name in self.values},
            "detail": _jsonable(self.detail),
        }


@dataclass(frozen=True)
class EpisodeMeasurement:
    """A planted episode as reported by ``episodes()`` and what its price path actually did."""

    symbol: str
    kind: str  # compression_breakout | absorption | squeeze
    start_ms: int
    end_ms: int
    trigger_ms: int
    direction: str | None  # "up" | "down": where price goes if it follows through
    outcome: str | None  # the label: follow_through | failed | decoy (None: not reported)
    measured_outcome: str | None  # follow_through | failed from the path after trigger_ms
    measured_return_log: float | None  # log return after trigger_ms, signed by direction
    horizon_minutes: int
    start_minute_of_day: int
    retrace_depth: float | None  # deepest pullback before the peak, as a share of the move
    oi_change: float | None  # OI(end) / OI(start) − 1 from the 5-minute series
    level_distance_hour_sigmas: float | None  # absorption VWAP to the nearest profile level
    level_price: float | None  # the level ``episodes()`` reports (absorptions)
    level_kind: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready row."""
        return _jsonable(self.__dict__)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class FactsReport:
    """Every stylized fact of one market window, plus the per-episode measurements behind them."""

    seed: int
    symbols: tuple[str, ...]
    start_ms: int
    end_ms: int
    days: int
    elapsed_seconds: float
    facts: tuple[Fact, ...]
    episodes: tuple[EpisodeMeasurement, ...]
    schema: str = SCHEMA

    def fact(self, key: str) -> Fact:
        """The row with this key (KeyError if there is none)."""
        for fact in self.facts:
            if fact.key == key:
                return fact
        raise KeyError(key)

    def out_of_band(self) -> list[tuple[str, str]]:
        """(fact key, column) pairs whose value misses the band."""
        return [
            (fact.key, column)
            for fact in self.facts
            for column in fact.values
            if fact.ok(column) is False
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report (schema ``ingmon.exchange.facts/v1``)."""
        return {
            "schema": self.schema,
            "seed": self.seed,
            "symbols": list(self.symbols),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "days": self.days,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "confidence_z": CONFIDENCE_Z,
            "facts": [fact.to_dict() for fact in self.facts],
            "out_of_band": [list(pair) for pair in self.out_of_band()],
            "episodes": [episode.to_dict() for episode in self.episodes],
        }

    def table(self) -> str:
        """The report as a fixed-width text table (fact, value per column, band, status)."""
        columns = [*self.symbols, POOLED]
        used = [c for c in columns if any(f.values.get(c) is not None for f in self.facts)]
        header = ["fact", *used, "real market", "status"]
        rows: list[list[str]] = []
        for fact in self.facts:
            cells = [_cell(fact, column) for column in used]
            verdicts = [fact.ok(column) for column in used]
            missed = [column for column, verdict in zip(used, verdicts, strict=True) if not verdict]
            if fact.band is None or all(verdict is None for verdict in verdicts):
                status = "info"
            elif any(verdict is False for verdict in verdicts):
                status = "OUT " + ",".join(c for c in missed if fact.ok(c) is False)
            else:
                status = "ok"
            band = fact.band.describe() if fact.band is not None else ""
            rows.append([fact.title, *cells, band, status])
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [
            f"ingmon exchange facts: seed {self.seed}, {self.days} days, "
            f"{_iso(self.start_ms)} → {_iso(self.end_ms)} ({self.elapsed_seconds:.1f} s); "
            f"± = standard error, ok = 99 % interval meets the band",
            "  ".join(text.ljust(width) for text, width in zip(header, widths, strict=True)),
            "  ".join("-" * width for width in widths),
        ]
        group = ""
        for fact, row in zip(self.facts, rows, strict=True):
            if fact.group != group:
                group = fact.group
                lines.append(f"[{group}]")
            lines.append(
                "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True))
            )
        return "\n".join(line.rstrip() for line in lines)


@dataclass(frozen=True)
class Profile:
    """A session's volume profile (prices): point of control, value area, high-volume nodes, and
    the session's high and low."""

    poc: float
    vah: float
    val: float
    hvns: tuple[float, ...]
    high: float
    low: float

    def levels(self) -> list[float]:
        """Every level a trader would mark from this session."""
        return [self.poc, self.vah, self.val, *self.hvns, self.high, self.low]


# --- pure statistics ---------------------------------------------------------------------------


def hill_tail_index(values: FloatArray, *, tail_fraction: float = TAIL_FRACTION) -> float:
    """Hill (1975) estimate of the tail exponent α from the top ``tail_fraction`` of ``values``.

    α̂ = k / Σ_{i≤k} ln(X_(i) / X_(k+1)) over the k largest positive values (descending order).
    """
    positive = np.asarray(values, dtype=np.float64)
    positive = positive[positive > 0]
    k = int(positive.size * tail_fraction)
    if k < 2:
        return math.nan
    top = np.partition(positive, positive.size - k - 1)[positive.size - k - 1 :]
    threshold = top.min()
    logs = np.log(top / threshold)
    return float(k / logs.sum()) if logs.sum() > 0 else math.nan


def excess_kurtosis(values: FloatArray) -> float:
    """Fisher's excess kurtosis with population moments: m4 / m2² − 3 (NaN values ignored)."""
    sample = np.asarray(values, dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size < 4:
        return math.nan
    centred = sample - sample.mean()
    m2 = float(np.mean(centred**2))
    return float(np.mean(centred**4)) / (m2 * m2) - 3.0 if m2 > 0 else math.nan


def autocorrelation(values: FloatArray, lag: int) -> float:
    """Sample autocorrelation at ``lag`` over the pairs where both values are finite."""
    series = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(series)
    if lag >= series.size or valid.sum() < 2:
        return math.nan
    centred = np.where(valid, series - series[valid].mean(), 0.0)
    both = valid[:-lag] & valid[lag:]
    variance = float(np.mean(centred[valid] ** 2))
    if not both.any() or variance == 0:
        return math.nan
    return float(np.mean((centred[:-lag] * centred[lag:])[both])) / variance


def _average_ranks(values: FloatArray) -> FloatArray:
    """Ranks 1..n with ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], sorted_values.size]
    average = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1..end
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def spearman(first: FloatArray, second: FloatArray) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks)."""
    if first.size < 3:
        return math.nan
    return float(np.corrcoef(_average_ranks(first), _average_ranks(second))[0, 1])


def roc_auc(scores: FloatArray, positives: BoolArray) -> float:
    """Area under the ROC curve (Mann–Whitney U / (n₊·n₋), ties count one half)."""
    count_positive = int(positives.sum())
    count_negative = int(positives.size - count_positive)
    if count_positive == 0 or count_negative == 0:
        return math.nan
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    rank_sum = float(ranks[positives].sum())
    return (rank_sum - count_positive * (count_positive + 1) / 2) / (
        count_positive * count_negative
    )


def _kolmogorov_survival(statistic: float) -> float:
    """P(K > statistic) for the Kolmogorov distribution (alternating series)."""
    if statistic < 0.2:
        return 1.0
    total = 0.0
    for term in range(1, 101):
        total += (-1) ** (term - 1) * math.exp(-2.0 * term * term * statistic * statistic)
    return max(0.0, min(1.0, 2.0 * total))


def ks_test(samples: FloatArray, cdf: Callable[[FloatArray], FloatArray]) -> tuple[float, float]:
    """One-sample Kolmogorov–Smirnov: (D, asymptotic p-value with Stephens' small-n correction)."""
    ordered = np.sort(np.asarray(samples, dtype=np.float64))
    count = ordered.size
    if count == 0:
        return math.nan, math.nan
    expected = cdf(ordered)
    above = np.arange(1, count + 1) / count - expected
    below = expected - np.arange(count) / count
    statistic = float(max(above.max(), below.max()))
    root = math.sqrt(count)
    return statistic, _kolmogorov_survival((root + 0.12 + 0.11 / root) * statistic)


def volume_profile(
    low: FloatArray,
    high: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    *,
    rows: int = PROFILE_ROWS,
) -> Profile | None:
    """A session's volume profile from one-minute candles (reference §3.1–3.3).

    Each candle's volume is spread evenly over the rows its [low, high] overlaps (all of it at
    the close when low == high); ``rows`` equal rows span the session's range. POC = the fullest
    row (lowest on ties); the value area grows from the POC one row at a time toward the fuller
    neighbour (CBOT; ties go up) until it holds 70 %, VAH/VAL being its outer edges; HVNs are the
    fullest local maxima (±2 rows) more than one row from the POC.
    """
    keep = np.isfinite(low) & np.isfinite(high) & np.isfinite(close) & (volume > 0)
    lows, highs, closes, weights = low[keep], high[keep], close[keep], volume[keep]
    if weights.size == 0:
        return None
    bottom, top = float(lows.min()), float(highs.max())
    if top <= bottom:
        return Profile(poc=bottom, vah=bottom, val=bottom, hvns=(), high=top, low=bottom)
    width = (top - bottom) / rows
    edges = bottom + np.arange(rows + 1) * width
    span = highs - lows
    overlap = np.clip(
        np.minimum(highs[:, None], edges[None, 1:]) - np.maximum(lows[:, None], edges[None, :-1]),
        0.0,
        None,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(span[:, None] > 0, overlap / span[:, None], 0.0)
    point_row = np.minimum(((closes - bottom) / width).astype(np.int64), rows - 1)
    share[np.flatnonzero(span <= 0), point_row[span <= 0]] = 1.0
    per_row = (share * weights[:, None]).sum(axis=0)
    poc = int(np.argmax(per_row))
    lower, upper = poc, poc
    target = VALUE_AREA_SHARE * float(per_row.sum())
    inside = float(per_row[poc])
    while inside < target and (lower > 0 or upper < rows - 1):
        below = per_row[lower - 1] if lower > 0 else -1.0
        above = per_row[upper + 1] if upper < rows - 1 else -1.0
        if above >= below:
            upper += 1
            inside += float(above)
        else:
            lower -= 1
            inside += float(below)
    padded = np.pad(per_row, 2, constant_values=-1.0)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 5)
    peaks = np.flatnonzero((per_row == windows.max(axis=1)) & (per_row > 0))
    peaks = peaks[np.abs(peaks - poc) > 1]
    heaviest = peaks[np.argsort(-per_row[peaks], kind="stable")][:HVN_COUNT]
    return Profile(
        poc=float(edges[poc] + width / 2),
        vah=float(edges[upper + 1]),
        val=float(edges[lower]),
        hvns=tuple(float(edges[row] + width / 2) for row in heaviest),
        high=top,
        low=bottom,
    )


# --- the measurement -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planted:
    """An episode with every field of the issue-8 API (older reports filled in from detail)."""

    kind: str
    start_ms: int
    end_ms: int
    direction: str | None
    outcome: str | None
    trigger_ms: int
    level_price: float | None
    level_kind: str | None

    @property
    def sign(self) -> int:
        return 1 if self.direction == "up" else -1 if self.direction == "down" else 0

    @property
    def real(self) -> bool:
        """Not a decoy: the setup's payoff was planted (it may still fail)."""
        return self.outcome != "decoy"


def _planted(episode: Episode) -> _Planted | None:
    """Normalise an episode; maintenance windows → None.

    Until the issue-8 Episode (direction/outcome/trigger_ms/level) lands, the older report is
    read through its detail dict: "short_squeeze" is an upward squeeze.
    """
    kind = str(episode.kind)
    if kind == "maintenance":
        return None
    detail = episode.detail
    direction: str | None = getattr(episode, "direction", None)
    trigger_ms: int | None = getattr(episode, "trigger_ms", None)
    if kind == "short_squeeze":
        kind = "squeeze"
        direction = direction or "up"
    if direction is None and "direction" in detail:
        direction = str(detail["direction"])
    if direction is None and "bias" in detail:
        direction = "up" if detail["bias"] == "bullish" else "down"
    if trigger_ms is None:
        fallback = detail.get("breakout_start_ms")
        if fallback is None:
            fallback = episode.end_ms if kind == "absorption" else episode.start_ms
        trigger_ms = int(fallback)
    level_price = getattr(episode, "level_price", None)
    return _Planted(
        kind=kind,
        start_ms=episode.start_ms,
        end_ms=episode.end_ms,
        direction=direction,
        outcome=getattr(episode, "outcome", None),
        trigger_ms=int(trigger_ms),
        level_price=None if level_price is None else float(level_price),
        level_kind=getattr(episode, "level_kind", None),
    )


@dataclass
class _Series:
    """One symbol's served data on a one-minute grid over [start_ms, end_ms)."""

    symbol: str
    start_ms: int
    present: BoolArray
    open: FloatArray  # prices (NaN where no candle)
    high: FloatArray
    low: FloatArray
    close: FloatArray
    close_filled: FloatArray  # last known close (NaN before the first candle)
    volume: FloatArray  # base units
    quote_volume: FloatArray  # USDT
    taker_buy_volume: FloatArray
    trade_count: FloatArray
    log_return: FloatArray  # close-to-close; NaN unless both minutes have candles
    hour_open_ms: IntArray
    hour_close: FloatArray
    day_close: FloatArray
    oi_time_ms: IntArray
    oi_base: FloatArray
    funding_time_ms: IntArray
    funding_rate: FloatArray
    swing_15m_open_ms: IntArray
    swing_15m_high: FloatArray
    swing_15m_low: FloatArray
    planted: list[_Planted]
    trade_notional: FloatArray
    round_lot_trades: int
    round_lot_expected: float

    @property
    def minutes(self) -> int:
        return int(self.present.size)

    def minute_index(self, time_ms: int) -> int:
        """Grid index of the minute containing ``time_ms``."""
        return (time_ms - self.start_ms) // MINUTE_MS

    def price_at(self, time_ms: int) -> float:
        """Last close at or before ``time_ms`` (the minute ending at it), NaN if unknown."""
        index = self.minute_index(time_ms) - 1
        if index < 0 or index >= self.minutes:
            return math.nan
        return float(self.close_filled[index])


def _load(market: Market, symbol: str, start_ms: int, end_ms: int) -> _Series:
    spec = market.spec(symbol)
    price_scale = 10.0**-spec.price_decimals
    qty_scale = 10.0**-spec.quantity_decimals
    last_ms = end_ms - 1
    minutes = (end_ms - start_ms) // MINUTE_MS
    candles = market.klines(symbol, "1m", start_ms, last_ms, now_ms=last_ms)
    index = (candles.open_time_ms - start_ms) // MINUTE_MS
    present = np.zeros(minutes, dtype=bool)
    present[index] = True

    def grid(values: IntArray, scale: float, empty: float) -> FloatArray:
        out = np.full(minutes, empty, dtype=np.float64)
        out[index] = values * scale
        return out

    close = grid(candles.close_ticks, price_scale, math.nan)
    filled_index = np.maximum.accumulate(np.where(present, np.arange(minutes), -1))
    close_filled = np.where(filled_index >= 0, close[np.maximum(filled_index, 0)], math.nan)
    log_return = np.full(minutes, math.nan)
    log_return[1:] = np.where(present[1:] & present[:-1], np.log(close[1:] / close[:-1]), math.nan)

    hours = market.klines(symbol, "1h", start_ms, last_ms, now_ms=last_ms)
    days = market.klines(symbol, "1d", start_ms, last_ms, now_ms=last_ms)
    swings = market.klines(symbol, "15m", start_ms - SWING_LOOKBACK_MS, last_ms, now_ms=last_ms)
    interest = market.open_interest(symbol, "5m", start_ms - HOUR_MS, end_ms)
    funding = market.funding(symbol, start_ms, last_ms)
    planted = [
        item
        for episode in market.episodes(symbol, start_ms, last_ms)
        if (item := _planted(episode)) is not None
        and start_ms <= item.start_ms
        and item.end_ms <= end_ms
    ]

    notionals: list[FloatArray] = []
    round_trades = 0
    round_expected = 0.0
    for day_start in range(start_ms, end_ms, DAY_MS):
        trades = market.agg_trades(symbol, day_start, min(day_start + DAY_MS, end_ms) - 1)
        quantity = trades.qty_steps
        notionals.append(
            np.asarray(trades.price_ticks * quantity, dtype=np.float64) * (price_scale * qty_scale)
        )
        # Round lots: quantities with one significant digit (0.1, 0.5, 2 BTC …) among trades of
        # at least three digits in steps, against the 10^-(digits-1) share a smooth law gives.
        big = quantity[quantity >= 100]
        if big.size:
            digits = np.floor(np.log10(big.astype(np.float64))).astype(np.int64)
            lead = 10**digits
            round_trades += int(np.count_nonzero(big % lead == 0))
            round_expected += float(np.sum(1.0 / lead))
    return _Series(
        symbol=symbol,
        start_ms=start_ms,
        present=present,
        open=grid(candles.open_ticks, price_scale, math.nan),
        high=grid(candles.high_ticks, price_scale, math.nan),
        low=grid(candles.low_ticks, price_scale, math.nan),
        close=close,
        close_filled=close_filled,
        volume=grid(candles.volume_steps, qty_scale, 0.0),
        quote_volume=grid(candles.quote_volume_units, price_scale * qty_scale, 0.0),
        taker_buy_volume=grid(candles.taker_buy_volume_steps, qty_scale, 0.0),
        trade_count=grid(candles.trade_count, 1.0, 0.0),
        log_return=log_return,
        hour_open_ms=hours.open_time_ms,
        hour_close=_scaled(hours.close_ticks, price_scale),
        day_close=_scaled(days.close_ticks, price_scale),
        oi_time_ms=interest.timestamp_ms,
        oi_base=_scaled(interest.sum_open_interest_steps, qty_scale),
        funding_time_ms=funding.funding_time_ms,
        funding_rate=funding.funding_rate,
        swing_15m_open_ms=swings.open_time_ms,
        swing_15m_high=_scaled(swings.high_ticks, price_scale),
        swing_15m_low=_scaled(swings.low_ticks, price_scale),
        planted=planted,
        trade_notional=np.concatenate(notionals) if notionals else np.zeros(0),
        round_lot_trades=round_trades,
        round_lot_expected=round_expected,
    )


def _scaled(units: IntArray, scale: float) -> FloatArray:
    return np.asarray(units, dtype=np.float64) * scale


def measure_facts(
    market: Market, *, symbols: Sequence[str], days: int, end_ms: int | None = None
) -> FactsReport:
    """Measure every stylized fact over the ``days`` UTC days before ``end_ms``.

    ``end_ms`` defaults to ``days`` days after the latest listing (the window ``Market.demo``
    lists). The first symbol is the reference of the cross-symbol correlation.
    """
    began = time.perf_counter()
    if not symbols:
        raise ValueError("measure_facts needs at least one symbol")
    if days < 2:
        raise ValueError("measure_facts needs at least two days")
    if end_ms is None:
        end_ms = max(market.spec(symbol).listing_ms for symbol in symbols) + days * DAY_MS
    end_ms = end_ms // DAY_MS * DAY_MS
    start_ms = end_ms - days * DAY_MS
    series = {symbol: _load(market, symbol, start_ms, end_ms) for symbol in symbols}
    measurements = {symbol: _measure_episodes(data) for symbol, data in series.items()}
    facts: list[Fact] = []
    facts.append(_correlation_fact(series, symbols))
    facts.extend(_drift_facts(series, measurements))
    facts.extend(_outcome_facts(symbols, measurements))
    facts.extend(_separability_facts(series, measurements))
    facts.extend(_timing_facts(series, measurements))
    facts.append(_fake_edge_fact(series))
    facts.extend(_level_facts(series, measurements))
    facts.extend(_count_facts(symbols, measurements))
    facts.extend(_trade_size_facts(series))
    facts.append(_volume_return_fact(series))
    facts.extend(_funding_facts(series))
    facts.extend(_open_interest_facts(series, measurements))
    facts.extend(_volatility_facts(series))
    facts.append(_retrace_fact(symbols, measurements))
    return FactsReport(
        seed=market.seed,
        symbols=tuple(symbols),
        start_ms=start_ms,
        end_ms=end_ms,
        days=days,
        elapsed_seconds=time.perf_counter() - began,
        facts=tuple(facts),
        episodes=tuple(item for symbol in symbols for item in measurements[symbol]),
    )


# --- per-episode measurements --------------------------------------------------------------


def _trailing_sigma(data: _Series, minute: int, *, window: int = MINUTES_PER_DAY) -> float:
    """Std of one-minute log returns over the ``window`` minutes before ``minute``."""
    returns = data.log_return[max(0, minute - window) : max(0, minute)]
    returns = returns[np.isfinite(returns)]
    return float(returns.std()) if returns.size > 30 else math.nan


def _measure_episodes(data: _Series) -> list[EpisodeMeasurement]:
    levels = _LevelFinder(data)
    measured: list[EpisodeMeasurement] = []
    for item in data.planted:
        horizon = int(
            min(
                OUTCOME_MAX_HORIZON_MINUTES,
                max(OUTCOME_MIN_HORIZON_MINUTES, (item.end_ms - item.trigger_ms) // MINUTE_MS),
            )
        )
        outcome, signed_return = _horizon_outcome(data, item, horizon)
        distance: float | None = None
        if item.kind == "absorption":
            distance = levels.absorption_distance(item.start_ms, item.end_ms)
        measured.append(
            EpisodeMeasurement(
                symbol=data.symbol,
                kind=item.kind,
                start_ms=item.start_ms,
                end_ms=item.end_ms,
                trigger_ms=item.trigger_ms,
                direction=item.direction,
                outcome=item.outcome,
                measured_outcome=outcome,
                measured_return_log=signed_return,
                horizon_minutes=horizon,
                start_minute_of_day=int(item.start_ms % DAY_MS // MINUTE_MS),
                retrace_depth=_retrace_depth(data, item) if item.kind == "squeeze" else None,
                oi_change=_oi_change(data, item.start_ms, item.end_ms),
                level_distance_hour_sigmas=distance,
                level_price=item.level_price,
                level_kind=item.level_kind,
            )
        )
    return measured


def _horizon_outcome(
    data: _Series, item: _Planted, horizon: int
) -> tuple[str | None, float | None]:
    """Follow-through from the price path: the log return from the close at ``trigger_ms`` to
    the close ``horizon`` minutes later, signed by the episode's direction, is positive.

    The end point decides, not the first touch: a failed breakout or squeeze typically moves the
    right way first (the fake-out) and then reverses.
    """
    if item.sign == 0:
        return None, None
    entry = data.price_at(item.trigger_ms)
    stop_ms = min(item.trigger_ms + horizon * MINUTE_MS, data.start_ms + data.minutes * MINUTE_MS)
    later = data.price_at(stop_ms)
    if stop_ms <= item.trigger_ms or not (math.isfinite(entry) and math.isfinite(later)):
        return None, None
    signed = item.sign * math.log(later / entry)
    return ("follow_through" if signed > 0 else "failed"), signed


def _retrace_depth(data: _Series, item: _Planted) -> float | None:
    """Deepest pullback before the window's peak, as a share of the move made so far."""
    if item.sign == 0:
        return None
    first = data.minute_index(item.start_ms)
    stop = min(data.minutes, data.minute_index(item.end_ms))
    entry = data.price_at(item.start_ms)
    path = data.close_filled[first:stop]
    if path.size < 3 or not math.isfinite(entry):
        return None
    progress = item.sign * np.log(path / entry)
    peak_index = int(np.argmax(progress))
    peak = float(progress[peak_index])
    if peak <= 0:
        return None
    running = np.maximum.accumulate(progress[: peak_index + 1])
    counted = running >= RETRACE_MIN_MOVE_SHARE * peak
    if not counted.any():
        return 0.0
    pullback = (running - progress[: peak_index + 1])[counted] / running[counted]
    return float(min(1.0, pullback.max()))


def _oi_at(data: _Series, time_ms: int) -> float:
    """Open interest of the latest 5-minute row at or before ``time_ms``."""
    row = int(np.searchsorted(data.oi_time_ms, time_ms, side="right")) - 1
    return float(data.oi_base[row]) if row >= 0 else math.nan


def _oi_change(data: _Series, start_ms: int, end_ms: int) -> float | None:
    before = _oi_at(data, start_ms)
    after = _oi_at(data, end_ms)
    if not (math.isfinite(before) and math.isfinite(after)) or before <= 0:
        return None
    return after / before - 1.0


class _LevelFinder:
    """Levels a trader would mark at a given time: the prior UTC session's profile (POC, VAH, VAL,
    HVNs, high, low) and the most recent confirmed 15-minute swing highs and lows."""

    def __init__(self, data: _Series) -> None:
        self.data = data
        self.profiles: dict[int, Profile | None] = {}
        for day in range(data.minutes // MINUTES_PER_DAY):
            day_minutes = slice(day * MINUTES_PER_DAY, (day + 1) * MINUTES_PER_DAY)
            self.profiles[day] = volume_profile(
                data.low[day_minutes],
                data.high[day_minutes],
                data.close[day_minutes],
                data.volume[day_minutes],
            )
        highs = data.swing_15m_high
        lows = data.swing_15m_low
        span = 2 * SWING_BARS + 1
        bar_ms = 15 * MINUTE_MS
        if highs.size >= span:
            window_high = np.lib.stride_tricks.sliding_window_view(highs, span).max(axis=1)
            window_low = np.lib.stride_tricks.sliding_window_view(lows, span).min(axis=1)
            centre = np.arange(SWING_BARS, highs.size - SWING_BARS)
            is_high = highs[centre] >= window_high
            is_low = lows[centre] <= window_low
            confirmed = data.swing_15m_open_ms[centre + SWING_BARS] + bar_ms
            self.high_confirmed_ms = confirmed[is_high]
            self.high_price = highs[centre][is_high]
            self.high_time_ms = data.swing_15m_open_ms[centre][is_high]
            self.low_confirmed_ms = confirmed[is_low]
            self.low_price = lows[centre][is_low]
            self.low_time_ms = data.swing_15m_open_ms[centre][is_low]
        else:
            empty = np.zeros(0, dtype=np.int64)
            self.high_confirmed_ms = self.low_confirmed_ms = empty
            self.high_time_ms = self.low_time_ms = empty
            self.high_price = self.low_price = np.zeros(0)

    def levels_at(self, time_ms: int) -> list[float]:
        """Levels known at ``time_ms`` (empty on the first day: no prior session)."""
        day = (time_ms - self.data.start_ms) // DAY_MS
        profile = self.profiles.get(day - 1)
        found = profile.levels() if profile is not None else []
        if profile is None:
            return []
        for confirmed, times, prices in (
            (self.high_confirmed_ms, self.high_time_ms, self.high_price),
            (self.low_confirmed_ms, self.low_time_ms, self.low_price),
        ):
            last = int(np.searchsorted(confirmed, time_ms, side="right"))
            for row in range(last - 1, max(-1, last - 1 - SWINGS_PER_SIDE), -1):
                if times[row] >= time_ms - SWING_LOOKBACK_MS:
                    found.append(float(prices[row]))
        return found

    def distance(self, time_ms: int, price: float) -> float:
        """|price − nearest level| in hourly σ of price (trailing day's one-minute returns)."""
        levels = self.levels_at(time_ms)
        sigma = _trailing_sigma(self.data, self.data.minute_index(time_ms))
        if not levels or not math.isfinite(sigma) or sigma == 0 or not math.isfinite(price):
            return math.nan
        nearest = min(abs(price - level) for level in levels)
        return nearest / (price * sigma * math.sqrt(60.0))

    def absorption_distance(self, start_ms: int, end_ms: int) -> float | None:
        """Distance of the absorption's VWAP (its one-minute candles) to the nearest level."""
        span = slice(self.data.minute_index(start_ms), self.data.minute_index(end_ms))
        volume = float(self.data.volume[span].sum())
        if volume <= 0:
            return None
        vwap = float(self.data.quote_volume[span].sum()) / volume
        value = self.distance(start_ms, vwap)
        return value if math.isfinite(value) else None


# --- fact groups -----------------------------------------------------------------------------


def _correlation_fact(series: dict[str, _Series], symbols: Sequence[str]) -> Fact:
    reference = series[symbols[0]]
    values: dict[str, float | None] = {}
    errors: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for symbol in symbols[1:]:
        other = series[symbol]
        common, left, right = np.intersect1d(
            reference.hour_open_ms, other.hour_open_ms, return_indices=True
        )
        consecutive = np.diff(common) == HOUR_MS
        first = np.diff(np.log(reference.hour_close[left]))[consecutive]
        second = np.diff(np.log(other.hour_close[right]))[consecutive]
        if first.size < 10:
            continue
        rho = float(np.corrcoef(first, second)[0, 1])
        values[symbol] = rho
        errors[symbol] = (1 - rho * rho) / math.sqrt(first.size - 3)
        samples[symbol] = int(first.size)
    return Fact(
        key="corr_1h_log_return",
        title=f"1h log-return correlation with {symbols[0]}",
        group="correlation",
        values=values,
        errors=errors,
        samples=samples,
        band=Band(0.7, 0.9, _ISSUE + ": ≈0.8"),
    )


def _episode_window_returns(data: _Series) -> FloatArray:
    """Log return of the price across each planted episode's [start, end)."""
    returns = [
        math.log(data.price_at(item.end_ms) / data.price_at(item.start_ms))
        for item in data.planted
        if math.isfinite(data.price_at(item.end_ms) / data.price_at(item.start_ms))
    ]
    return np.asarray(returns, dtype=np.float64)


def _drift_facts(
    series: dict[str, _Series], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    drift: dict[str, float | None] = {}
    drift_z: dict[str, float | None] = {}
    episode_drift: dict[str, float | None] = {}
    episode_z: dict[str, float | None] = {}
    episode_count: dict[str, int] = {}
    for symbol, data in series.items():
        present = np.flatnonzero(data.present)
        if present.size < 2:
            continue
        total = math.log(data.close[present[-1]] / data.open[present[0]])
        daily = np.diff(np.log(data.day_close))
        drift[symbol] = total
        if daily.size > 2 and daily.std() > 0:
            drift_z[symbol] = total / (float(daily.std()) * math.sqrt(daily.size + 1))
        windows = _episode_window_returns(data)
        episode_count[symbol] = int(windows.size)
        episode_drift[symbol] = float(windows.sum())
        power = float(np.sqrt(np.sum(windows**2)))
        if power > 0:
            # Self-normalised sum: ≈ N(0, 1) if episode moves are symmetric and independent.
            episode_z[symbol] = float(windows.sum()) / power
    return [
        Fact(
            key="drift_log_return",
            title="drift over the window (log return)",
            group="drift",
            values=drift,
        ),
        Fact(
            key="drift_z",
            title="drift ÷ (daily σ·√days)",
            group="drift",
            values=drift_z,
            band=Band(-3.0, 3.0, "zero drift in expectation: a random walk stays within ±3 σ"),
        ),
        Fact(
            key="episode_drift_log_return",
            title="log return inside planted episodes",
            group="drift",
            values=episode_drift,
            samples=episode_count,
        ),
        Fact(
            key="episode_drift_z",
            title="episode log return ÷ √Σ(episode return²)",
            group="drift",
            values=episode_z,
            samples=episode_count,
            band=Band(-3.0, 3.0, "episodes must not move the long-run drift (issue 8)"),
        ),
    ]


def _rate(hits: int, total: int) -> tuple[float | None, float | None]:
    """A proportion and its binomial standard error (None without samples)."""
    if total == 0:
        return None, None
    share = hits / total
    return share, math.sqrt(max(share * (1 - share), 0.25 / total) / total)


def _columns(symbols: Sequence[str]) -> list[str]:
    return [*symbols, POOLED]


def _selected(
    measured: dict[str, list[EpisodeMeasurement]], column: str, kind: str
) -> list[EpisodeMeasurement]:
    symbols = list(measured) if column == POOLED else [column]
    return [item for symbol in symbols for item in measured[symbol] if item.kind == kind]


def _outcome_facts(
    symbols: Sequence[str], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    facts: list[Fact] = []
    band = Band(0.55, 0.65, _ISSUE + ": follow-through 55–65 %, failures common")
    for kind in EPISODE_KINDS:
        path: dict[str, float | None] = {}
        path_error: dict[str, float | None] = {}
        path_samples: dict[str, int] = {}
        label: dict[str, float | None] = {}
        label_error: dict[str, float | None] = {}
        label_samples: dict[str, int] = {}
        agree: dict[str, float | None] = {}
        agree_error: dict[str, float | None] = {}
        agree_samples: dict[str, int] = {}
        by_direction: dict[str, dict[str, Any]] = {}
        for column in _columns(symbols):
            items = [item for item in _selected(measured, column, kind) if item.outcome != "decoy"]
            judged = [item for item in items if item.measured_outcome is not None]
            hits = sum(item.measured_outcome == "follow_through" for item in judged)
            path[column], path_error[column] = _rate(hits, len(judged))
            path_samples[column] = len(judged)
            labelled = [item for item in items if item.outcome in ("follow_through", "failed")]
            label_hits = sum(item.outcome == "follow_through" for item in labelled)
            label[column], label_error[column] = _rate(label_hits, len(labelled))
            label_samples[column] = len(labelled)
            both = [item for item in labelled if item.measured_outcome is not None]
            matches = sum(item.outcome == item.measured_outcome for item in both)
            agree[column], agree_error[column] = _rate(matches, len(both))
            agree_samples[column] = len(both)
            if column == POOLED:
                for direction in ("up", "down"):
                    sided = [item for item in judged if item.direction == direction]
                    sided_labelled = [item for item in labelled if item.direction == direction]
                    by_direction[direction] = {
                        "count": len(sided),
                        "measured_follow_through": _rate(
                            sum(i.measured_outcome == "follow_through" for i in sided),
                            len(sided),
                        )[0],
                        "labelled_follow_through": _rate(
                            sum(i.outcome == "follow_through" for i in sided_labelled),
                            len(sided_labelled),
                        )[0],
                    }
        facts.append(
            Fact(
                key=f"follow_through_measured.{kind}",
                title=f"{kind}: follow-through (price path)",
                group="outcome of planted episodes",
                values=path,
                errors=path_error,
                samples=path_samples,
                band=band,
                detail={"by_direction": by_direction},
            )
        )
        facts.append(
            Fact(
                key=f"follow_through_labelled.{kind}",
                title=f"{kind}: follow-through (outcome label)",
                group="outcome of planted episodes",
                values=label,
                errors=label_error,
                samples=label_samples,
                band=band,
            )
        )
        facts.append(
            Fact(
                key=f"outcome_agreement.{kind}",
                title=f"{kind}: label agrees with price path",
                group="outcome of planted episodes",
                values=agree,
                errors=agree_error,
                samples=agree_samples,
                band=Band(0.7, 1.0, _DERIVED + ": a label must describe the path"),
            )
        )
    return facts


def _mask_of(data: _Series, windows: list[tuple[int, int]]) -> BoolArray:
    mask = np.zeros(data.minutes, dtype=bool)
    for start_ms, end_ms in windows:
        mask[max(0, data.minute_index(start_ms)) : max(0, data.minute_index(end_ms))] = True
    return mask


def _five_minute_imbalance(data: _Series) -> tuple[FloatArray, FloatArray]:
    """Taker imbalance (buy − sell) / volume per 5-minute bucket, and each bucket's volume."""
    buckets = data.minutes // 5
    volume = data.volume[: buckets * 5].reshape(buckets, 5).sum(axis=1)
    buys = data.taker_buy_volume[: buckets * 5].reshape(buckets, 5).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        imbalance = np.where(volume > 0, (2 * buys - volume) / volume, math.nan)
    return imbalance, volume


def _squeeze_alerts(data: _Series) -> list[tuple[int, int]]:
    """The textbook squeeze rule (reference §1.2) on closed one-minute bars: (time_ms, sign)."""
    minutes = data.minutes
    window = SQUEEZE_WINDOW_MINUTES
    close = data.close_filled
    ret = np.full(minutes, math.nan)
    ret[window:] = close[window:] / close[:-window] - 1.0
    mean, std = _trailing_mean_std(ret, MINUTES_PER_DAY)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_ret = (ret - mean) / std
    close_ms = data.start_ms + (np.arange(minutes) + 1) * MINUTE_MS
    oi_row = np.searchsorted(data.oi_time_ms, close_ms, side="right") - 1
    oi = np.where(oi_row >= 0, data.oi_base[np.maximum(oi_row, 0)], math.nan)
    d_oi = np.full(minutes, math.nan)
    d_oi[window:] = oi[window:] / oi[:-window] - 1.0
    funding_row = np.searchsorted(data.funding_time_ms, close_ms, side="right") - 1
    funding = np.where(funding_row >= 0, data.funding_rate[np.maximum(funding_row, 0)], 0.0001)
    volume = _rolling_sum(data.volume, window)
    buys = _rolling_sum(data.taker_buy_volume, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        buy_share = buys / volume
    delta = 2 * buys - volume
    short_squeeze = (
        (z_ret >= 2.0) & (d_oi <= -0.005) & (funding < 0.0001) & (delta > 0) & (buy_share >= 0.55)
    )
    long_squeeze = (
        (z_ret <= -2.0) & (d_oi <= -0.005) & (funding > 0.0001) & (delta < 0) & (buy_share <= 0.45)
    )
    alerts: list[tuple[int, int]] = []
    last_ms = {1: -(10**15), -1: -(10**15)}
    for minute in np.flatnonzero(short_squeeze | long_squeeze):
        sign = 1 if short_squeeze[minute] else -1
        time_ms = int(close_ms[minute])
        if time_ms - last_ms[sign] > ALERT_GAP_MS:
            alerts.append((time_ms, sign))
        last_ms[sign] = time_ms
    return alerts


def _rolling_sum(values: FloatArray, window: int) -> FloatArray:
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    out = np.full(values.size, math.nan)
    out[window - 1 :] = cumulative[window:] - cumulative[:-window]
    return out


def _trailing_mean_std(values: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    """Mean and std of the ``window`` values before each position (excluding it; NaN skipped)."""
    valid = np.isfinite(values)
    filled = np.where(valid, values, 0.0)
    count = np.concatenate([[0.0], np.cumsum(valid)])
    total = np.concatenate([[0.0], np.cumsum(filled)])
    squares = np.concatenate([[0.0], np.cumsum(filled * filled)])
    index = np.arange(values.size)
    low = np.maximum(index - window, 0)
    n = count[index] - count[low]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (total[index] - total[low]) / n
        variance = (squares[index] - squares[low]) / n - mean * mean
        std = np.sqrt(np.maximum(variance, 0.0))
    enough = n >= window // 2
    return np.where(enough, mean, math.nan), np.where(enough & (std > 0), std, math.nan)


def _separability_facts(
    series: dict[str, _Series], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    auc: dict[str, float | None] = {}
    precision_top: dict[str, float | None] = {}
    precision_top_error: dict[str, float | None] = {}
    squeeze_precision: dict[str, float | None] = {}
    squeeze_error: dict[str, float | None] = {}
    squeeze_samples: dict[str, int] = {}
    pooled_alerts = [0, 0]
    for symbol, data in series.items():
        absorptions = [
            (item.start_ms, item.end_ms)
            for item in data.planted
            if item.kind == "absorption" and item.real
        ]
        imbalance, volume = _five_minute_imbalance(data)
        inside = _mask_of(data, absorptions)
        buckets = imbalance.size
        positive: BoolArray = np.asarray(inside[: buckets * 5].reshape(buckets, 5).any(axis=1))
        usable = np.isfinite(imbalance) & (volume > 0)
        scores = np.abs(imbalance[usable])
        labels = positive[usable]
        auc[symbol] = roc_auc(scores, labels)
        count_positive = int(labels.sum())
        if count_positive:
            top = np.argsort(-scores, kind="stable")[:count_positive]
            precision_top[symbol], precision_top_error[symbol] = _rate(
                int(labels[top].sum()), count_positive
            )
        squeezes = [item for item in data.planted if item.kind == "squeeze" and item.real]
        alerts = _squeeze_alerts(data)
        true_alerts = sum(
            any(
                item.sign == sign
                and item.start_ms <= time_ms < item.end_ms + SQUEEZE_MATCH_SLACK_MS
                for item in squeezes
            )
            for time_ms, sign in alerts
        )
        squeeze_precision[symbol], squeeze_error[symbol] = _rate(true_alerts, len(alerts))
        squeeze_samples[symbol] = len(alerts)
        pooled_alerts[0] += true_alerts
        pooled_alerts[1] += len(alerts)
    squeeze_precision[POOLED], squeeze_error[POOLED] = _rate(*pooled_alerts)
    squeeze_samples[POOLED] = pooled_alerts[1]
    return [
        Fact(
            key="absorption_imbalance_auc",
            title="absorption: AUC of |5m taker imbalance|",
            group="separability",
            values=auc,
            band=Band(0.5, 0.9, _DERIVED + ": imbalance alone is a weak edge (now 0.994)"),
        ),
        Fact(
            key="absorption_imbalance_precision",
            title="absorption: precision of top-|imbalance| 5m buckets",
            group="separability",
            values=precision_top,
            errors=precision_top_error,
            band=Band(0.0, 0.6, _ISSUE + ": a good setup is a weak edge, precision 0.3–0.6"),
        ),
        Fact(
            key="squeeze_rule_precision",
            title="squeeze: precision of the textbook rule (§1.2)",
            group="separability",
            values=squeeze_precision,
            errors=squeeze_error,
            samples=squeeze_samples,
            band=Band(0.3, 0.6, _ISSUE + ": precision 0.3–0.6"),
        ),
    ]


def _hour_weights(series: dict[str, _Series], symbols: Sequence[str]) -> FloatArray:
    """Share of trades per UTC hour of day over the window (the activity the timing is tested
    against)."""
    counts = np.zeros(24)
    for symbol in symbols:
        data = series[symbol]
        hours = (np.arange(data.minutes) // 60 + data.start_ms // HOUR_MS) % 24
        counts += np.bincount(hours, weights=data.trade_count, minlength=24)
    total = counts.sum()
    return counts / total if total > 0 else np.full(24, 1 / 24)


def _minute_of_day_cdf(weights: FloatArray) -> Callable[[FloatArray], FloatArray]:
    """CDF over minute-of-day [0, 1440) with a density constant within each hour."""
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])

    def cdf(minutes: FloatArray) -> FloatArray:
        hour = np.clip((minutes // 60).astype(np.int64), 0, 23)
        within = cumulative[hour] + weights[hour] * (minutes - hour * 60) / 60.0
        return np.asarray(within, dtype=np.float64)

    return cdf


def _timing_facts(
    series: dict[str, _Series], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    facts: list[Fact] = []
    symbols = list(series)
    for kind in EPISODE_KINDS:
        values: dict[str, float | None] = {}
        samples: dict[str, int] = {}
        detail: dict[str, Any] = {}
        for column in _columns(symbols):
            chosen = symbols if column == POOLED else [column]
            starts = np.asarray(
                [item.start_minute_of_day + 0.5 for item in _selected(measured, column, kind)],
                dtype=np.float64,
            )
            samples[column] = int(starts.size)
            if starts.size < 5:
                continue
            weighted = ks_test(starts, _minute_of_day_cdf(_hour_weights(series, chosen)))
            uniform = ks_test(starts, _minute_of_day_cdf(np.full(24, 1 / 24)))
            # Not concentrated = consistent with activity-weighted OR clock-uniform hours: both
            # are "any hour"; a clock-bound schedule fails both.
            values[column] = max(weighted[1], uniform[1])
            hours = np.bincount((starts // 60).astype(np.int64), minlength=24)
            detail[column] = {
                "ks_p_activity": weighted[1],
                "ks_d_activity": weighted[0],
                "ks_p_uniform": uniform[1],
                "ks_d_uniform": uniform[0],
                "starts_per_hour": hours.tolist(),
            }
        facts.append(
            Fact(
                key=f"start_hour_ks_p.{kind}",
                title=f"{kind}: start time KS p (activity-weighted or uniform hours)",
                group="timing",
                values=values,
                samples=samples,
                band=Band(0.001, None, _ISSUE + ": any hour, any funding settlement"),
                detail=detail,
            )
        )
    return facts


def _fake_edge_fact(series: dict[str, _Series]) -> Fact:
    values: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    detail: dict[str, Any] = {}
    for symbol, data in series.items():
        forward = []
        for time_ms in data.funding_time_ms.tolist():
            later = data.price_at(time_ms + FAKE_EDGE_HORIZON_MINUTES * MINUTE_MS)
            now = data.price_at(time_ms)
            forward.append(math.log(later / now) if now > 0 and later > 0 else math.nan)
        returns = np.asarray(forward, dtype=np.float64)
        valid = np.isfinite(returns)
        cheap = valid & (data.funding_rate < -FUNDING_HOT_RATE)
        samples[symbol] = int(cheap.sum())
        spread = float(returns[valid].std()) if valid.sum() > 2 else math.nan
        if cheap.any() and spread > 0:
            edge = float(returns[cheap].mean() - returns[valid].mean())
            values[symbol] = edge / (spread / math.sqrt(cheap.sum()))
            detail[symbol] = {
                "mean_forward_8h_log_return": float(returns[cheap].mean()),
                "share_above_3pct": float(np.mean(returns[cheap] > math.log(1.03))),
            }
        else:
            values[symbol] = 0.0  # no such settlement: no free lunch to take
    return Fact(
        key="fake_edge_z",
        title="8h return after funding < −0.05 % (z vs all settlements)",
        group="fake edge",
        values=values,
        samples=samples,
        band=Band(-3.0, 3.0, _ISSUE + ": no such free lunch"),
        detail=detail,
    )


def _level_facts(
    series: dict[str, _Series], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    ratio: dict[str, float | None] = {}
    near: dict[str, float | None] = {}
    near_error: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    detail: dict[str, Any] = {}
    for symbol, data in series.items():
        finder = _LevelFinder(data)
        absorbed = np.asarray(
            [
                item.level_distance_hour_sigmas
                for item in measured[symbol]
                if item.kind == "absorption"
                and item.outcome != "decoy"
                and item.level_distance_hour_sigmas is not None
            ],
            dtype=np.float64,
        )
        busy = _mask_of(
            data,
            [(item.start_ms - HOUR_MS, item.end_ms + HOUR_MS) for item in data.planted],
        )
        random_distance = np.asarray(
            [
                finder.distance(data.start_ms + minute * MINUTE_MS, float(data.close[minute]))
                for minute in range(MINUTES_PER_DAY, data.minutes, RANDOM_MINUTE_STRIDE)
                if data.present[minute] and not busy[minute]
            ],
            dtype=np.float64,
        )
        random_distance = random_distance[np.isfinite(random_distance)]
        samples[symbol] = int(absorbed.size)
        if absorbed.size == 0 or random_distance.size == 0:
            continue
        ratio[symbol] = float(np.median(absorbed) / np.median(random_distance))
        near[symbol], near_error[symbol] = _rate(
            int(np.count_nonzero(absorbed <= NEAR_LEVEL_HOUR_SIGMAS)), int(absorbed.size)
        )
        recorded = [
            abs(item.level_price - _vwap(data, item.start_ms, item.end_ms))
            / (item.level_price * _trailing_sigma(data, data.minute_index(item.start_ms)) * 60**0.5)
            for item in data.planted
            if item.kind == "absorption" and item.level_price is not None
        ]
        detail[symbol] = {
            "random_near_share": float(np.mean(random_distance <= NEAR_LEVEL_HOUR_SIGMAS)),
            "median_absorption_distance": float(np.median(absorbed)),
            "median_random_distance": float(np.median(random_distance)),
            "random_minutes": int(random_distance.size),
            "auc_closer_than_random": roc_auc(
                -np.concatenate([absorbed, random_distance]),
                np.concatenate(
                    [np.ones(absorbed.size, bool), np.zeros(random_distance.size, bool)]
                ),
            ),
            "recorded_level_within_near_share": float(
                np.mean(np.asarray(recorded) <= NEAR_LEVEL_HOUR_SIGMAS)
            )
            if recorded
            else None,
        }
    return [
        Fact(
            key="absorption_level_distance_ratio",
            title="absorption: median distance to a level ÷ random minutes'",
            group="absorption location",
            values=ratio,
            samples=samples,
            band=Band(0.0, 0.5, _DERIVED + ": absorption happens at levels"),
            detail=detail,
        ),
        Fact(
            key="absorption_near_level_share",
            title="absorption: share within ¼ hourly σ of a level",
            group="absorption location",
            values=near,
            errors=near_error,
            samples=samples,
            band=Band(0.5, 1.0, "issue 8: most absorptions happen near a level"),
        ),
    ]


def _vwap(data: _Series, start_ms: int, end_ms: int) -> float:
    span = slice(data.minute_index(start_ms), data.minute_index(end_ms))
    volume = float(data.volume[span].sum())
    return float(data.quote_volume[span].sum()) / volume if volume > 0 else math.nan


def _count_facts(
    symbols: Sequence[str], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    facts: list[Fact] = []
    for kind in EPISODE_KINDS:
        counts: dict[str, float | None] = {}
        decoys: dict[str, float | None] = {}
        up_share: dict[str, float | None] = {}
        up_error: dict[str, float | None] = {}
        up_samples: dict[str, int] = {}
        for column in _columns(symbols):
            items = _selected(measured, column, kind)
            real = [item for item in items if item.outcome != "decoy"]
            if column != POOLED:
                counts[column] = float(len(real))
            decoys[column] = float(len(items) - len(real))
            directed = [item for item in real if item.direction is not None]
            up_share[column], up_error[column] = _rate(
                sum(item.direction == "up" for item in directed), len(directed)
            )
            up_samples[column] = len(directed)
        facts.append(
            Fact(
                key=f"count.{kind}",
                title=f"{kind}: episodes (not decoys)",
                group="counts",
                values=counts,
                band=Band(30.0, None, _ISSUE + ": ≥ 30 per 90 days to measure hit rates"),
            )
        )
        facts.append(
            Fact(key=f"decoys.{kind}", title=f"{kind}: decoys", group="counts", values=decoys)
        )
        facts.append(
            Fact(
                key=f"up_share.{kind}",
                title=f"{kind}: share of episodes going up",
                group="counts",
                values=up_share,
                errors=up_error,
                samples=up_samples,
                band=Band(0.5, 0.5, _ISSUE + ": both directions (symmetric)"),
            )
        )
    return facts


def _top_share(notional: FloatArray) -> float:
    """Share of all notional held by the largest 1 % of trades."""
    count_top = max(1, notional.size // 100)
    top = np.partition(notional, notional.size - count_top)[notional.size - count_top :]
    return float(top.sum() / notional.sum())


def _block_jackknife(
    values: FloatArray, statistic: Callable[[FloatArray], float], *, blocks: int = 10
) -> float:
    """Delete-a-block jackknife standard error over ``blocks`` consecutive blocks (time order)."""
    size = values.size // blocks
    if size == 0:
        return math.nan
    estimates = np.asarray(
        [
            statistic(np.concatenate([values[: block * size], values[(block + 1) * size :]]))
            for block in range(blocks)
        ],
        dtype=np.float64,
    )
    return float(math.sqrt((blocks - 1) / blocks * np.sum((estimates - estimates.mean()) ** 2)))


def _trade_size_facts(series: dict[str, _Series]) -> list[Fact]:
    alpha: dict[str, float | None] = {}
    alpha_error: dict[str, float | None] = {}
    top_share: dict[str, float | None] = {}
    top_share_error: dict[str, float | None] = {}
    median: dict[str, float | None] = {}
    round_excess: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for symbol, data in series.items():
        notional = data.trade_notional
        samples[symbol] = int(notional.size)
        if notional.size < 1000:
            continue
        alpha[symbol] = hill_tail_index(notional)
        alpha_error[symbol] = alpha[symbol] / math.sqrt(notional.size * TAIL_FRACTION)  # type: ignore[operator]
        top_share[symbol] = _top_share(notional)
        top_share_error[symbol] = _block_jackknife(notional, _top_share)
        median[symbol] = float(np.median(notional))
        if data.round_lot_expected > 0:
            round_excess[symbol] = data.round_lot_trades / data.round_lot_expected
    return [
        Fact(
            key="trade_size_tail_alpha",
            title="trade notional tail exponent (Hill, top 1 %)",
            group="trade sizes",
            values=alpha,
            errors=alpha_error,
            samples=samples,
            band=Band(1.3, 2.0, _ISSUE + "; " + _GABAIX),
        ),
        Fact(
            key="trade_notional_top1pct_share",
            title="share of notional in the top 1 % of trades",
            group="trade sizes",
            values=top_share,
            errors=top_share_error,
            samples=samples,
            band=Band(0.30, 0.50, _ISSUE),
        ),
        Fact(
            key="trade_notional_median_usdt",
            title="median trade notional (USDT)",
            group="trade sizes",
            values=median,
            samples=samples,
        ),
        Fact(
            key="round_lot_excess",
            title="round-lot trades ÷ chance (one significant digit)",
            group="trade sizes",
            values=round_excess,
            band=Band(2.0, None, _DERIVED + ": round-lot clusters (issue 8)"),
        ),
    ]


def _volume_return_fact(series: dict[str, _Series]) -> Fact:
    values: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for symbol, data in series.items():
        valid = np.isfinite(data.log_return)
        values[symbol] = spearman(data.quote_volume[valid], np.abs(data.log_return[valid]))
        samples[symbol] = int(valid.sum())
    return Fact(
        key="spearman_volume_abs_return_1m",
        title="1m Spearman(volume, |return|)",
        group="volume vs |return|",
        values=values,
        samples=samples,
        band=Band(0.5, 0.7, _ISSUE + "; " + _CONT + " (volume/volatility correlation)"),
    )


def _funding_facts(series: dict[str, _Series]) -> list[Fact]:
    hot: dict[str, float | None] = {}
    hot_error: dict[str, float | None] = {}
    negative: dict[str, float | None] = {}
    minimum: dict[str, float | None] = {}
    mild: dict[str, float | None] = {}
    mild_error: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for symbol, data in series.items():
        rates = data.funding_rate
        samples[symbol] = int(rates.size)
        if rates.size == 0:
            continue
        hot[symbol], hot_error[symbol] = _rate(
            int(np.count_nonzero(np.abs(rates) > FUNDING_HOT_RATE)), int(rates.size)
        )
        negative[symbol] = float(np.mean(rates < 0))
        minimum[symbol] = float(rates.min())
        below = rates[rates < 0]
        mild[symbol], mild_error[symbol] = _rate(
            int(np.count_nonzero(below >= FUNDING_MILD_NEGATIVE_RATE)), int(below.size)
        )
    return [
        Fact(
            key="funding_share_abs_above_5bp",
            title="funding: share of |f| > 0.05 %",
            group="funding",
            values=hot,
            errors=hot_error,
            samples=samples,
            band=Band(0.0, 0.05, _ISSUE + ": a few % (hot markets)"),
        ),
        Fact(
            key="funding_share_negative",
            title="funding: share negative",
            group="funding",
            values=negative,
            samples=samples,
        ),
        Fact(
            key="funding_min",
            title="funding: lowest rate",
            group="funding",
            values=minimum,
        ),
        Fact(
            key="funding_negatives_above_2bp_share",
            title="funding: share of negatives above −0.02 %",
            group="funding",
            values=mild,
            errors=mild_error,
            band=Band(0.5, 1.0, _ISSUE + ": negatives mostly above −0.02 %"),
        ),
    ]


def _open_interest_facts(
    series: dict[str, _Series], measured: dict[str, list[EpisodeMeasurement]]
) -> list[Fact]:
    turnover: dict[str, float | None] = {}
    turnover_error: dict[str, float | None] = {}
    drop: dict[str, float | None] = {}
    drop_error: dict[str, float | None] = {}
    drop_samples: dict[str, int] = {}
    symbols = list(series)
    for symbol, data in series.items():
        days = data.minutes // MINUTES_PER_DAY
        volume = data.volume[: days * MINUTES_PER_DAY].reshape(days, MINUTES_PER_DAY).sum(axis=1)
        inside = (data.oi_time_ms > data.start_ms) & (
            data.oi_time_ms <= data.start_ms + days * DAY_MS
        )
        day_of_row = (data.oi_time_ms[inside] - 1 - data.start_ms) // DAY_MS
        rows = np.bincount(day_of_row, minlength=days)
        mean_oi = np.bincount(
            day_of_row, weights=data.oi_base[inside], minlength=days
        ) / np.maximum(rows, 1)
        ratio = mean_oi[(volume > 0) & (rows > 0)] / volume[(volume > 0) & (rows > 0)]
        if ratio.size:
            turnover[symbol] = float(np.median(ratio))
            turnover_error[symbol] = 1.2533 * float(ratio.std()) / math.sqrt(ratio.size)
    for column in _columns(symbols):
        changes = np.asarray(
            [
                -item.oi_change
                for item in _selected(measured, column, "squeeze")
                if item.outcome != "decoy" and item.oi_change is not None
            ],
            dtype=np.float64,
        )
        drop_samples[column] = int(changes.size)
        if changes.size:
            drop[column] = float(np.median(changes))
            drop_error[column] = (
                1.2533 * float(changes.std()) / math.sqrt(changes.size)
                if changes.size > 1
                else None
            )
    return [
        Fact(
            key="oi_to_daily_volume",
            title="open interest ÷ daily volume (median day)",
            group="open interest",
            values=turnover,
            errors=turnover_error,
            band=Band(0.5, 0.8, _ISSUE),
        ),
        Fact(
            key="squeeze_oi_drop",
            title="open-interest drop inside a squeeze (median)",
            group="open interest",
            values=drop,
            errors=drop_error,
            samples=drop_samples,
            band=Band(0.02, 0.05, _ISSUE),
        ),
    ]


def _jackknife_kurtosis(values: FloatArray) -> float:
    """Leave-one-out jackknife standard error of the excess kurtosis."""
    count = values.size
    if count < 5:
        return math.nan
    estimates = np.asarray(
        [excess_kurtosis(np.delete(values, index)) for index in range(count)], dtype=np.float64
    )
    return float(math.sqrt((count - 1) / count * np.sum((estimates - estimates.mean()) ** 2)))


def _block_jackknife_acf(values: FloatArray, lag: int, *, blocks: int = 10) -> float:
    """Delete-a-block jackknife standard error of the autocorrelation at ``lag``."""
    size = values.size // blocks
    if size <= lag:
        return math.nan
    estimates = []
    for block in range(blocks):
        reduced = values.copy()
        reduced[block * size : (block + 1) * size] = math.nan
        estimates.append(autocorrelation(reduced, lag))
    spread = np.asarray(estimates, dtype=np.float64)
    return float(math.sqrt((blocks - 1) / blocks * np.sum((spread - spread.mean()) ** 2)))


def _volatility_facts(series: dict[str, _Series]) -> list[Fact]:
    daily: dict[str, float | None] = {}
    daily_error: dict[str, float | None] = {}
    acf: dict[str, float | None] = {}
    acf_error: dict[str, float | None] = {}
    minute_kurtosis: dict[str, float | None] = {}
    minute_tail: dict[str, float | None] = {}
    taker: dict[str, float | None] = {}
    for symbol, data in series.items():
        returns = np.diff(np.log(data.day_close))
        daily[symbol] = excess_kurtosis(returns)
        daily_error[symbol] = _jackknife_kurtosis(returns)
        absolute = np.abs(data.log_return)
        acf[symbol] = autocorrelation(absolute, MINUTES_PER_DAY)
        acf_error[symbol] = _block_jackknife_acf(absolute, MINUTES_PER_DAY)
        minute_kurtosis[symbol] = excess_kurtosis(data.log_return)
        minute_tail[symbol] = hill_tail_index(absolute[np.isfinite(absolute)])
        volume = float(data.volume.sum())
        taker[symbol] = float(data.taker_buy_volume.sum()) / volume if volume > 0 else None
    return [
        Fact(
            key="daily_excess_kurtosis",
            title="daily log-return excess kurtosis",
            group="volatility regimes",
            values=daily,
            errors=daily_error,
            band=Band(3.0, 8.0, _ISSUE + "; " + _CONT),
        ),
        Fact(
            key="acf_abs_1m_return_1d",
            title="ACF of |1m return| at 1 day (lag 1440)",
            group="volatility regimes",
            values=acf,
            errors=acf_error,
            band=Band(0.10, 0.15, _ISSUE + "; " + _CONT + " (slow decay of |r| ACF)"),
        ),
        Fact(
            key="minute_excess_kurtosis",
            title="1m log-return excess kurtosis (keep)",
            group="volatility regimes",
            values=minute_kurtosis,
            band=Band(10.0, None, "issue 8: ≈25 today, keep; " + _CONT),
        ),
        Fact(
            key="minute_return_tail_alpha",
            title="|1m return| tail exponent (Hill, top 1 %) (keep)",
            group="volatility regimes",
            values=minute_tail,
            band=Band(2.0, 5.0, _GOPI),
        ),
        Fact(
            key="taker_buy_share",
            title="taker-buy share of volume (keep)",
            group="volatility regimes",
            values=taker,
            band=Band(0.45, 0.55, "issue 8: ≈0.5 today, keep"),
        ),
    ]


def _retrace_fact(symbols: Sequence[str], measured: dict[str, list[EpisodeMeasurement]]) -> Fact:
    values: dict[str, float | None] = {}
    errors: dict[str, float | None] = {}
    samples: dict[str, int] = {}
    for column in _columns(symbols):
        depths = np.asarray(
            [
                item.retrace_depth
                for item in _selected(measured, column, "squeeze")
                if item.outcome != "decoy" and item.retrace_depth is not None
            ],
            dtype=np.float64,
        )
        samples[column] = int(depths.size)
        if depths.size:
            values[column] = float(np.median(depths))
            errors[column] = (
                1.2533 * float(depths.std()) / math.sqrt(depths.size) if depths.size > 1 else None
            )
    return Fact(
        key="squeeze_retrace_depth",
        title="squeeze: deepest retrace before the peak (median)",
        group="squeeze path",
        values=values,
        errors=errors,
        samples=samples,
        band=Band(0.3, 0.6, _ISSUE + ": jagged, 30–60 % retraces"),
    )


# --- formatting ------------------------------------------------------------------------------


def _number(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2e}"


def _cell(fact: Fact, column: str) -> str:
    value = fact.values.get(column)
    if value is None or not math.isfinite(value):
        return "—" if column in fact.values else ""
    error = fact.errors.get(column)
    text = _number(value)
    if error is not None and math.isfinite(error) and error > 0:
        text += f" ±{_number(error)}"
    if column in fact.samples and fact.group not in ("counts", "trade sizes", "volume vs |return|"):
        text += f" (n={fact.samples[column]})"
    return text


def _iso(time_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time_ms / 1000))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return _finite(value)
    return value

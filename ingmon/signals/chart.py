"""What the Signals drill-down draws: candles aggregated to the zoom, the visible range's volume
profile, signal markers and the audit of one signal — plain data, bounded by a bar budget.

**Candles.** The lake keeps 1m candles; a chart of a range gets bars of the coarsest-needed
interval of :data:`CHART_INTERVALS` (epoch-aligned UTC buckets, then whole days) such that at
most ``budget`` buckets meet the range (:func:`choose_interval`). A bucket's bar is
``open`` of its first minute, ``high`` max, ``low`` min, ``close`` of its last minute,
``volume``/``taker_buy_volume``/``trade_count`` summed, and ``minutes`` the 1m candles in it
(:func:`aggregate_candles`). Edge buckets are read whole, so a bar does not change when the view
moves a little. The payload is bounded by the budget, not by the range: 90 days of 1m candles
(129,600) become 540 bars of 4h.

**Profile.** The visible range ``[start_ms, end_ms)`` gets its own volume profile
(:mod:`ingmon.signals.profile`): from the aggregate trades when the range is at most
``trade_max_ms`` long and its trades are complete (their trade count equals the candles'),
otherwise from candles — the finest interval dividing the chart's that keeps at most
``profile_budget`` bars (TradingView's visible-range profile steps up its timeframe the same
way), bars opening in ``[floor(start_ms, interval), end_ms)``.

**Audit.** A stored score's ``components`` (per rubric point: value, points, the inputs it
read, its rule) with the thresholds its rule names, in rubric order (:func:`audit_points`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ingmon.errors import UsageError
from ingmon.lake import Lake
from ingmon.schema import AGG_TRADES, CANDLES, SIGNAL_TIMEFRAMES
from ingmon.signals.profile import VolumeProfile, candle_profile, infer_tick_size, trade_profile
from ingmon.signals.rules import RULES_VERSION, ScoreRules
from ingmon.times import DAY_MS, HOUR_MS, MINUTE_MS, ceil_ms, floor_ms

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "BAR_COLUMNS",
    "CHART_BAR_BUDGET",
    "CHART_INTERVALS",
    "PROFILE_BAR_BUDGET",
    "SCORE_COLORS",
    "TRADE_PROFILE_MAX_MS",
    "TRADE_PROFILE_MAX_TRADES",
    "UNSCORED_COLOR",
    "AuditPoint",
    "RangeProfile",
    "SignalAudit",
    "VisibleRange",
    "aggregate_candles",
    "audit_points",
    "bucket_count",
    "candle_extent",
    "choose_interval",
    "default_range",
    "interval_label",
    "point_thresholds",
    "profile_bins",
    "range_profile",
    "score_color",
    "signal_audit",
    "signal_markers",
    "symbol_signals",
    "visible_range",
]

CHART_BAR_BUDGET: Final = 800
PROFILE_BAR_BUDGET: Final = 5000
TRADE_PROFILE_MAX_MS: Final = 4 * HOUR_MS
TRADE_PROFILE_MAX_TRADES: Final = 250_000  # trades counted by the candles, read only below it
CHART_INTERVALS: Final[tuple[int, ...]] = (
    MINUTE_MS,
    3 * MINUTE_MS,
    5 * MINUTE_MS,
    15 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    4 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    DAY_MS,
)
# A bar: its bucket's open time (epoch ms), OHLC, and the sums over its 1m candles.
BAR_COLUMNS: Final = (
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
# Score 0…7 on an 8-step sequential purple (lightness falls with the score, so it survives
# colour-vision deficiencies and greyscale; apart from the blue/orange candles). Markers get a
# dark outline, so the light low scores stay visible.
SCORE_COLORS: Final[tuple[str, ...]] = (
    "#F2F0F7",
    "#DADAEB",
    "#BCBDDC",
    "#9E9AC8",
    "#807DBA",
    "#6A51A3",
    "#54278F",
    "#3F007D",
)
UNSCORED_COLOR: Final = "#FFFFFF"


# ---- intervals --------------------------------------------------------------------------------


def bucket_count(start_ms: int, end_ms: int, interval_ms: int) -> int:
    """How many epoch-aligned buckets of ``interval_ms`` meet ``[start_ms, end_ms)``."""
    if interval_ms <= 0:
        raise UsageError(f"interval_ms must be > 0, got {interval_ms}")
    if end_ms <= start_ms:
        return 0
    return (end_ms - 1) // interval_ms - start_ms // interval_ms + 1


def choose_interval(
    start_ms: int, end_ms: int, *, budget: int = CHART_BAR_BUDGET, within: int | None = None
) -> int:
    """The finest interval of :data:`CHART_INTERVALS` (then whole days) with at most ``budget``
    buckets meeting ``[start_ms, end_ms)``; with ``within``, only intervals dividing it (the
    profile's bars then aggregate exactly into the chart's), and ``within`` itself when none
    of them fits."""
    if budget < 2:
        raise UsageError(f"budget must be ≥ 2, got {budget}")
    for interval in CHART_INTERVALS:
        if within is not None and within % interval:
            continue
        if within is not None and interval > within:
            break
        if bucket_count(start_ms, end_ms, interval) <= budget:
            return interval
    if within is not None:
        return within
    # k days: at most ceil(span / k days) + 1 buckets, so span ≤ (budget − 1)·k days suffices.
    days = max(1, math.ceil((end_ms - start_ms) / ((budget - 1) * DAY_MS)))
    return days * DAY_MS


def interval_label(interval_ms: int) -> str:
    """``60000`` → ``1m``, ``14400000`` → ``4h``, ``172800000`` → ``2d``."""
    for unit_ms, unit in ((DAY_MS, "d"), (HOUR_MS, "h"), (MINUTE_MS, "m")):
        if interval_ms % unit_ms == 0:
            return f"{interval_ms // unit_ms}{unit}"
    return f"{interval_ms}ms"


def default_range(extent: tuple[int, int], *, days: int = 7) -> tuple[int, int]:
    """The range a chart opens on: the last ``days`` of ``extent`` (first candle, end of the
    last), and a twentieth of that beyond the last candle, where new bars will appear."""
    first, end = extent
    start = max(first, end - days * DAY_MS)
    return start, end + max(MINUTE_MS, (end - start) // 20)


# ---- candles ----------------------------------------------------------------------------------


def _aggregate(bars: pl.LazyFrame, interval_ms: int) -> pl.LazyFrame:
    import polars as pl  # noqa: PLC0415 - polars loads only for the reads that use it

    bucket = pl.col("open_time_ms") // interval_ms * interval_ms
    return (
        bars.sort("open_time_ms")
        .group_by(bucket.alias("bucket"), maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.col("taker_buy_volume").sum(),
            pl.col("trade_count").sum(),
            pl.col("minutes").sum(),
        )
        .rename({"bucket": "open_time_ms"})
        .select(BAR_COLUMNS)
        .sort("open_time_ms")
    )


def aggregate_candles(bars: pl.DataFrame, *, interval_ms: int) -> pl.DataFrame:
    """Bars (:data:`BAR_COLUMNS`, any order) summed into epoch-aligned buckets of
    ``interval_ms``, oldest first: open first, high max, low min, close last, the rest
    summed. Aggregating bars that were themselves aggregated on a dividing interval gives the
    same bars as aggregating the minutes directly."""
    if interval_ms <= 0:
        raise UsageError(f"interval_ms must be > 0, got {interval_ms}")
    return _aggregate(bars.lazy(), interval_ms).collect()


def _minutes(lake: Lake, symbol: str, *, start_ms: int, end_ms: int) -> pl.LazyFrame:
    """The 1m candles opening in ``[start_ms, end_ms)`` as bars (lazy)."""
    import polars as pl  # noqa: PLC0415

    return (
        lake.scan(CANDLES, symbols=symbol, param="1m", start=start_ms, end=end_ms - 1)
        .select(
            pl.col("open_time").cast(pl.Int64).alias("open_time_ms"),
            "open",
            "high",
            "low",
            "close",
            "volume",
            "taker_buy_volume",
            pl.col("trade_count").cast(pl.Int64),
            pl.lit(1, pl.Int64).alias("minutes"),
        )
        .filter(pl.col("open_time_ms") < end_ms)
    )


def candle_extent(lake: Lake, symbol: str) -> tuple[int, int] | None:
    """(open time of the first 1m candle, end of the last one) of ``symbol``; None without
    any. Read from the Parquet footers only."""
    stored = lake.key_range(CANDLES, symbol=symbol, param="1m")
    if stored is None or stored[0] == 0:
        return None
    return int(stored[1]), int(stored[2]) + MINUTE_MS


@dataclass(frozen=True)
class RangeProfile:
    """The volume profile of a visible range and how it was built."""

    profile: VolumeProfile
    method: str  # "trades" | "candles"
    source_interval_ms: int | None  # the candles' interval (None for trades)
    source_rows: int  # bars or aggregate trades read
    start_ms: int  # what it covers: [start_ms, end_ms)
    end_ms: int
    note: str  # why it is built this way, for the caption


@dataclass(frozen=True)
class VisibleRange:
    """Everything the chart shows for one symbol and range."""

    symbol: str
    start_ms: int  # the range asked for
    end_ms: int
    interval_ms: int  # the bars' interval
    bars: pl.DataFrame  # BAR_COLUMNS, oldest first, bucket-aligned around the range
    profile: RangeProfile | None  # None without candles in the range

    @property
    def minutes(self) -> int:
        """1m candles behind the bars."""
        return int(self.bars["minutes"].sum()) if self.bars.height else 0


def visible_range(
    lake: Lake,
    symbol: str,
    *,
    start_ms: int,
    end_ms: int,
    budget: int = CHART_BAR_BUDGET,
    profile_budget: int = PROFILE_BAR_BUDGET,
    trade_max_ms: int = TRADE_PROFILE_MAX_MS,
    trade_max_count: int = TRADE_PROFILE_MAX_TRADES,
) -> VisibleRange:
    """The bars (at most ``budget``) and the volume profile of ``symbol`` over
    ``[start_ms, end_ms)``: one scan of the 1m candles, aggregated to the profile's interval
    and from there to the chart's."""
    if end_ms <= start_ms:
        raise UsageError(f"end_ms must be after start_ms, got [{start_ms}, {end_ms})")
    if profile_budget < budget:
        raise UsageError("profile_budget must be ≥ budget")
    interval = choose_interval(start_ms, end_ms, budget=budget)
    fine_interval = choose_interval(start_ms, end_ms, budget=profile_budget, within=interval)
    first, last = floor_ms(start_ms, interval), ceil_ms(end_ms, interval)
    fine = _aggregate(_minutes(lake, symbol, start_ms=first, end_ms=last), fine_interval).collect()
    bars = aggregate_candles(fine, interval_ms=interval)
    profile = range_profile(
        lake,
        symbol,
        fine,
        interval_ms=fine_interval,
        start_ms=start_ms,
        end_ms=end_ms,
        trade_max_ms=trade_max_ms,
        trade_max_count=trade_max_count,
    )
    return VisibleRange(
        symbol=symbol,
        start_ms=start_ms,
        end_ms=end_ms,
        interval_ms=interval,
        bars=bars,
        profile=profile,
    )


# ---- the profile ------------------------------------------------------------------------------


def range_profile(
    lake: Lake,
    symbol: str,
    bars: pl.DataFrame,
    *,
    interval_ms: int,
    start_ms: int,
    end_ms: int,
    trade_max_ms: int = TRADE_PROFILE_MAX_MS,
    trade_max_count: int = TRADE_PROFILE_MAX_TRADES,
) -> RangeProfile | None:
    """The profile of ``[start_ms, end_ms)`` from ``bars`` of ``interval_ms`` (those opening in
    ``[floor(start_ms, interval_ms), end_ms)``), or from the lake's aggregate trades when the
    range is short, ``bars`` are 1m and the trades are complete; None without bars or with a
    single price."""
    import polars as pl  # noqa: PLC0415

    first = floor_ms(start_ms, interval_ms)
    inside = bars.filter((pl.col("open_time_ms") >= first) & (pl.col("open_time_ms") < end_ms))
    if not inside.height:
        return None
    prices = np.concatenate([inside[name].to_numpy() for name in ("open", "high", "low", "close")])
    expected_trades = int(inside["trade_count"].sum())
    note = f"range longer than {interval_label(trade_max_ms)}"
    if end_ms - start_ms <= trade_max_ms and interval_ms == MINUTE_MS:
        if expected_trades > trade_max_count:
            note = f"more than {trade_max_count:,} trades"
        else:
            trades = _complete_trades(
                lake,
                symbol,
                start_ms=first,
                end_ms=ceil_ms(end_ms, MINUTE_MS),
                expected_trades=expected_trades,
            )
            if trades is not None and trades.height:
                try:
                    tick = infer_tick_size(np.concatenate([prices, trades["price"].to_numpy()]))
                except UsageError:
                    return None
                profile = trade_profile(
                    trades["price"].to_numpy(),
                    trades["quantity"].to_numpy(),
                    trades["is_buyer_maker"].to_numpy(),
                    tick_size=tick,
                )
                return RangeProfile(
                    profile=profile,
                    method="trades",
                    source_interval_ms=None,
                    source_rows=trades.height,
                    start_ms=first,
                    end_ms=ceil_ms(end_ms, MINUTE_MS),
                    note="every trade of the range",
                )
            note = "the range's trades are incomplete in the lake"
    try:
        tick = infer_tick_size(prices)
    except UsageError:
        return None
    profile = candle_profile(
        inside["high"].to_numpy(),
        inside["low"].to_numpy(),
        inside["volume"].to_numpy(),
        inside["taker_buy_volume"].to_numpy(),
        tick_size=tick,
    )
    return RangeProfile(
        profile=profile,
        method="candles",
        source_interval_ms=interval_ms,
        source_rows=inside.height,
        start_ms=first,
        end_ms=int(inside["open_time_ms"].to_numpy().max()) + interval_ms,
        note=note,
    )


def _complete_trades(
    lake: Lake, symbol: str, *, start_ms: int, end_ms: int, expected_trades: int
) -> pl.DataFrame | None:
    """The aggregate trades of ``[start_ms, end_ms)`` when they hold exactly the trades the
    candles count; None otherwise (a hole in the trades, or none stored)."""
    import polars as pl  # noqa: PLC0415

    trades = (
        lake.scan(AGG_TRADES, symbols=symbol, start=start_ms, end=end_ms - 1)
        .select(
            "price",
            "quantity",
            "is_buyer_maker",
            (pl.col("last_trade_id") - pl.col("first_trade_id") + 1).alias("trades"),
        )
        .collect()
    )
    if int(trades["trades"].sum()) != expected_trades:
        return None
    return trades


def profile_bins(profile: VolumeProfile) -> pl.DataFrame:
    """One row per bin, lowest price first: ``price_low``, ``price_high``, ``volume``,
    ``buy_volume``, ``sell_volume``, ``share_of_poc`` (volume ÷ the POC bin's) and ``zone``
    (``poc``, ``value_area`` or ``outside``)."""
    import polars as pl  # noqa: PLC0415

    index = np.arange(len(profile))
    edges = (profile.first_bin + np.arange(len(profile) + 1)) * profile.ticks_per_bin
    prices = np.round(edges * profile.tick_size, 10)
    zone = np.where(
        (index >= profile.value_area_low_index) & (index <= profile.value_area_high_index),
        "value_area",
        "outside",
    )
    zone[profile.poc_index] = "poc"
    top = float(profile.volume[profile.poc_index])
    return pl.DataFrame(
        {
            "price_low": prices[:-1],
            "price_high": prices[1:],
            "volume": profile.volume,
            "buy_volume": profile.buy_volume,
            "sell_volume": profile.sell_volume,
            "share_of_poc": profile.volume / top if top > 0 else np.zeros(len(profile)),
            "zone": zone,
        }
    )


# ---- signals ----------------------------------------------------------------------------------


def score_color(score: int | None) -> str:
    """The marker colour of a score (0…7); :data:`UNSCORED_COLOR` without a score."""
    if score is None:
        return UNSCORED_COLOR
    return SCORE_COLORS[min(max(int(score), 0), len(SCORE_COLORS) - 1)]


def symbol_signals(lake: Lake, symbol: str, *, timeframe: str = "15m") -> pl.DataFrame:
    """The stored signals of one symbol and signal timeframe with their current score (null
    when unscored), oldest first: ``signal_id``, ``bar_open_ms``, ``bar_close_ms``, ``setup``,
    ``direction``, ``close``, ``stop_price``, ``target_price``, ``score``, ``confidence``,
    ``data_quality``, ``score_id``."""
    import polars as pl  # noqa: PLC0415

    from ingmon.signals.store import read_signals  # noqa: PLC0415 - the lake edge

    if timeframe not in SIGNAL_TIMEFRAMES:
        raise UsageError(
            f"timeframe must be one of {', '.join(SIGNAL_TIMEFRAMES)}, got {timeframe!r}",
            field="timeframe",
        )
    frame = read_signals(lake, symbols=symbol, timeframe=timeframe)
    return frame.select(
        "signal_id",
        pl.col("bar_open_time").dt.epoch("ms").alias("bar_open_ms"),
        pl.col("bar_close_time").dt.epoch("ms").alias("bar_close_ms"),
        "setup",
        "direction",
        "close",
        "stop_price",
        "target_price",
        pl.col("score").cast(pl.Int64),
        "confidence",
        "data_quality",
        "score_id",
    ).sort("bar_open_ms", "setup", "signal_id")


def signal_markers(
    signals: pl.DataFrame, *, start_ms: int | None = None, end_ms: int | None = None
) -> pl.DataFrame:
    """Chart markers of :func:`symbol_signals` rows whose bar closes in ``[start_ms, end_ms)``:
    ``signal_id``, ``time_ms`` (the bar's close, when the signal was known), ``price`` (the
    close), ``setup``, ``direction``, ``score``, ``confidence``, ``color`` (by score) and
    ``size`` (grows with the score: score is not told by colour alone)."""
    import polars as pl  # noqa: PLC0415

    frame = signals
    if start_ms is not None:
        frame = frame.filter(pl.col("bar_close_ms") >= start_ms)
    if end_ms is not None:
        frame = frame.filter(pl.col("bar_close_ms") < end_ms)
    colors = [score_color(score) for score in frame["score"].to_list()]
    return frame.select(
        "signal_id",
        pl.col("bar_close_ms").alias("time_ms"),
        pl.col("close").alias("price"),
        "setup",
        "direction",
        "score",
        "confidence",
        pl.Series("color", colors, dtype=pl.String),
        (9 + pl.col("score").fill_null(0) * 1.5).cast(pl.Float64).alias("size"),
    )


# ---- the audit --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditPoint:
    """One rubric point of a stored score: passed (1), failed (0) or missing input (None)."""

    name: str
    group: str
    weight: int
    value: int | None
    points: int
    inputs: dict[str, Any]
    thresholds: dict[str, Any]  # the thresholds its rule names ({} when it compares inputs)
    rule: str


@dataclass(frozen=True)
class SignalAudit:
    """A signal and, when it was scored under the current rules, its audit record."""

    signal: dict[str, Any]  # a symbol_signals row
    scored: bool
    score: int | None
    confidence: str | None
    data_quality: str | None
    points_by_group: dict[str, int]
    points: tuple[AuditPoint, ...]
    notes: tuple[str, ...]
    watermarks: dict[str, int | None]
    rules_version: str | None
    config_hash: str | None
    code_version: str | None
    scored_at_ms: int | None


def point_thresholds(rule: str, thresholds: Mapping[str, Any]) -> dict[str, Any]:
    """The thresholds a rule names (its text uses their names: ``ADX ≥ adx_min``)."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", rule))
    return {name: value for name, value in thresholds.items() if name in words}


def audit_points(
    components: Mapping[str, Mapping[str, Any]], thresholds: Mapping[str, Any]
) -> tuple[AuditPoint, ...]:
    """The stored ``components`` as points in rubric order (unknown names after, by name),
    each with the thresholds its rule names."""
    order = [point.name for point in ScoreRules().points]
    names = [name for name in order if name in components]
    names += sorted(name for name in components if name not in order)
    found = []
    for name in names:
        component = components[name]
        rule = str(component.get("rule", ""))
        value = component.get("value")
        found.append(
            AuditPoint(
                name=name,
                group=str(component.get("group", "")),
                weight=int(component.get("weight", 1)),
                value=None if value is None else int(value),
                points=int(component.get("points", 0) or 0),
                inputs=dict(component.get("inputs") or {}),
                thresholds=point_thresholds(rule, thresholds),
                rule=rule,
            )
        )
    return tuple(found)


def _loads(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def signal_audit(
    lake: Lake,
    *,
    symbol: str,
    signal_id: str,
    timeframe: str = "15m",
    signals: pl.DataFrame | None = None,
    rules_version: str = RULES_VERSION,
) -> SignalAudit | None:
    """The audit of one signal of ``symbol`` (its current score's record, as in
    :func:`symbol_signals`); None when the symbol has no such signal. ``signals`` (that
    function's frame) saves reading the signals again."""
    import polars as pl  # noqa: PLC0415

    from ingmon.signals.store import read_scores  # noqa: PLC0415 - the lake edge

    frame = signals if signals is not None else symbol_signals(lake, symbol, timeframe=timeframe)
    rows = frame.filter(pl.col("signal_id") == signal_id).to_dicts()
    if not rows:
        return None
    signal = rows[0]
    record: dict[str, Any] | None = None
    if signal["score_id"] is not None:
        scores = read_scores(
            lake,
            symbols=symbol,
            timeframe=timeframe,
            start_ms=signal["bar_open_ms"],
            end_ms=signal["bar_open_ms"] + 1,
        ).filter(
            (pl.col("score_id") == signal["score_id"]) & (pl.col("rules_version") == rules_version)
        )
        if scores.height:
            record = scores.with_columns(
                pl.col("scored_at").dt.epoch("ms").alias("scored_at_ms")
            ).to_dicts()[-1]
    if record is None:
        return SignalAudit(
            signal=signal,
            scored=False,
            score=None,
            confidence=None,
            data_quality=None,
            points_by_group={},
            points=(),
            notes=(),
            watermarks={},
            rules_version=None,
            config_hash=None,
            code_version=None,
            scored_at_ms=None,
        )
    return SignalAudit(
        signal=signal,
        scored=True,
        score=int(record["score"]),
        confidence=record["confidence"],
        data_quality=record["data_quality"],
        points_by_group={
            group: int(record[f"{group}_points"]) for group in ("trend", "flow", "session")
        },
        points=audit_points(_loads(record["components"], {}), _loads(record["thresholds"], {})),
        notes=tuple(str(note) for note in _loads(record["notes"], [])),
        watermarks=dict(_loads(record["watermarks"], {})),
        rules_version=record["rules_version"],
        config_hash=record["config_hash"],
        code_version=record["code_version"],
        scored_at_ms=record["scored_at_ms"],
    )

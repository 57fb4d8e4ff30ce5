"""The signal engine against the lake: load a symbol's inputs, score incrementally, persist the
``signals``, ``scores`` and ``score_runs`` rows append-only, and read them back as frames."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ingmon.errors import UsageError
from ingmon.lake import Lake
from ingmon.schema import SCORE_RUNS, SCORES, SIGNALS, Dataset
from ingmon.signals.engine import Evaluation, evaluate
from ingmon.signals.features import Bars
from ingmon.signals.frame import MarketInputs
from ingmon.signals.rules import RULES_VERSION, SignalConfig
from ingmon.times import DAY_MS, MINUTE_MS, ceil_ms, floor_ms, iso_ms, now_ms

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ScoreRun",
    "load_inputs",
    "read_scores",
    "read_signals",
    "require_candles",
    "score_symbol",
]


def _column(table: pa.Table, name: str, dtype: type = np.float64) -> Any:
    return table.column(name).to_numpy().astype(dtype)


def _times(table: pa.Table, name: str) -> Any:
    return table.column(name).cast(pa.int64()).to_numpy()


def load_inputs(
    lake: Lake,
    symbol: str,
    *,
    start_ms: int,
    end_ms: int,
    oi_period: str = "5m",
    use_trades: bool = True,
) -> MarketInputs:
    """A symbol's 1m candles in [start_ms, end_ms), and the open interest and funding stamped
    up to the instant end_ms (a bar closing then sees them; see ``MarketInputs.until``).

    The per-minute delta comes from the lake's trades for every minute whose trades are all
    there (their trade count matches the candle's), else from the candle identity.
    """
    candles = lake.read(
        "candles",
        symbols=symbol,
        param="1m",
        start=start_ms,
        end=end_ms - 1,
        columns=[
            "open_time",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "trade_count",
            "taker_buy_volume",
        ],
    )
    open_time = _times(candles, "open_time")
    minutes = Bars.from_candles(
        open_time_ms=open_time,
        open=_column(candles, "open"),
        high=_column(candles, "high"),
        low=_column(candles, "low"),
        close=_column(candles, "close"),
        volume=_column(candles, "volume"),
        taker_buy_volume=_column(candles, "taker_buy_volume"),
    )
    trade_delta = False
    if use_trades and open_time.size:
        trade_delta = _use_trade_delta(
            lake, symbol, minutes, _column(candles, "trade_count", np.int64), end_ms=end_ms
        )
    interest = lake.read(
        "open_interest",
        symbols=symbol,
        param=oi_period,
        start=start_ms,
        end=end_ms,  # a snapshot stamped at the end instant is known then
        columns=["timestamp", "sum_open_interest"],
    )
    funding = lake.read(
        "funding",
        symbols=symbol,
        start=start_ms - 7 * DAY_MS,  # a few settlements before: streaks and intervals
        end=end_ms,
        columns=["funding_time", "funding_rate", "funding_interval_hours"],
    )
    hours = funding.column("funding_interval_hours").to_numpy(zero_copy_only=False)
    known_until = min(end_ms, int(open_time[-1]) + MINUTE_MS) if open_time.size else start_ms
    return MarketInputs(
        symbol=symbol,
        minutes=minutes,
        oi_time_ms=_times(interest, "timestamp"),
        oi_value=_column(interest, "sum_open_interest"),
        funding_time_ms=_times(funding, "funding_time"),
        funding_rate=_column(funding, "funding_rate"),
        funding_interval_hours=np.asarray(hours, dtype=np.float64),
        known_until_ms=known_until,
        trade_delta=trade_delta,
    )


def _use_trade_delta(
    lake: Lake, symbol: str, minutes: Bars, trade_count: Any, *, end_ms: int
) -> bool:
    """Replace the candle delta by the trades' own where a minute's trades are complete."""
    import polars as pl  # noqa: PLC0415 - polars loads only for the reads that use it

    first = int(minutes.open_time_ms[0])
    flows = (
        lake.scan("agg_trades", symbols=symbol, start=first, end=end_ms - 1)
        .select(
            (pl.col("transact_time").cast(pl.Int64) // MINUTE_MS * MINUTE_MS).alias("minute"),
            pl.when(pl.col("is_buyer_maker"))
            .then(-pl.col("quantity"))
            .otherwise(pl.col("quantity"))
            .alias("signed"),
            (pl.col("last_trade_id") - pl.col("first_trade_id") + 1).alias("trades"),
        )
        .group_by("minute")
        .agg(pl.col("signed").sum(), pl.col("trades").sum())
        .collect()
    )
    if not flows.height:
        return False
    minute = flows["minute"].to_numpy()
    position = np.searchsorted(minutes.open_time_ms, minute)
    inside = position < len(minutes)
    position, minute = position[inside], minute[inside]
    signed = flows["signed"].to_numpy()[inside]
    trades = flows["trades"].to_numpy()[inside]
    complete = (minutes.open_time_ms[position] == minute) & (trades == trade_count[position])
    minutes.delta[position[complete]] = signed[complete]
    return bool(complete.any())


@dataclass(frozen=True)
class ScoreRun:
    """What one scoring run of one symbol did (a ``score_runs`` row, and the CLI's summary)."""

    run_id: str
    symbol: str
    timeframe: str
    rules_version: str
    config_hash: str
    first_bar_ms: int | None
    last_bar_ms: int | None
    bars: int
    signals: int
    signals_inserted: int
    scores_inserted: int
    trade_delta: bool
    watermarks: dict[str, int | None]
    started_at_ms: int
    finished_at_ms: int
    by_setup: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "rules_version": self.rules_version,
            "config_hash": self.config_hash,
            "first_bar": iso_ms(self.first_bar_ms),
            "last_bar": iso_ms(self.last_bar_ms),
            "bars": self.bars,
            "signals": self.signals,
            "signals_inserted": self.signals_inserted,
            "scores_inserted": self.scores_inserted,
            "delta_source": "trades" if self.trade_delta else "candles",
            "by_setup": self.by_setup,
            "watermarks": {name: iso_ms(value) for name, value in self.watermarks.items()},
        }


def require_candles(lake: Lake, symbols: Sequence[str]) -> dict[str, int]:
    """The first 1m candle of each symbol; UsageError naming the first symbol without any (so
    that a command can refuse before it writes anything)."""
    first: dict[str, int] = {}
    for symbol in symbols:
        stored = lake.key_range("candles", symbol=symbol, param="1m")
        if stored is None:
            raise UsageError(f"no 1m candles of {symbol} in the lake", field="symbols")
        first[symbol] = int(stored[1])
    return first


def last_scored_bar(lake: Lake, symbol: str, config: SignalConfig) -> int | None:
    """Where an incremental run resumes: the last bar of the unbroken stretch of bars that runs
    with this timeframe and configuration have scored, counted from the first scored bar. A
    windowed run further on (``--start``/``--window-days``) does not move it past bars that
    were never scored; None when nothing was scored yet."""
    import polars as pl  # noqa: PLC0415 - polars loads only for the reads that use it

    runs = lake.read(SCORE_RUNS, symbols=symbol)
    if not runs.num_rows:
        return None
    frame = pl.from_arrow(runs)
    assert isinstance(frame, pl.DataFrame)
    done = frame.filter(
        (pl.col("timeframe") == config.timeframe)
        & (pl.col("rules_version") == RULES_VERSION)
        & (pl.col("config_hash") == config.config_hash)
        & pl.col("last_bar_open_time").is_not_null()
    )
    if not done.height:
        return None
    stretches = done.select(
        pl.col("first_bar_open_time").cast(pl.Int64).alias("first"),
        pl.col("last_bar_open_time").cast(pl.Int64).alias("last"),
    ).sort("first")
    step = config.timeframe_ms
    covered_until: int | None = None
    for first, last in stretches.iter_rows():
        if covered_until is not None and first > covered_until + step:
            break  # a hole: the bars after covered_until were never scored
        covered_until = last if covered_until is None else max(covered_until, last)
    return covered_until


def score_symbol(
    lake: Lake,
    symbol: str,
    *,
    config: SignalConfig,
    start_ms: int | None = None,
    end_ms: int | None = None,
    use_trades: bool = True,
    code_version: str = "",
    clock_ms: int | None = None,
) -> ScoreRun:
    """Score the closed signal bars of ``symbol`` that open in [start_ms, end_ms); persist them.

    Without ``start_ms`` the run is incremental: it starts after the unbroken stretch of bars
    that earlier runs with the same timeframe and configuration scored (``last_scored_bar``),
    or at the first candle in the lake. ``warmup_days`` of
    history before the first bar are loaded but not scored. Rows already stored are kept as
    they are (append-only), so rerunning the same rules on the same data changes nothing.
    """
    started = clock_ms if clock_ms is not None else now_ms()
    end_ms = end_ms if end_ms is not None else started
    tf_ms = config.timeframe_ms
    first_candle_ms = require_candles(lake, [symbol])[symbol]
    if start_ms is None:
        previous = last_scored_bar(lake, symbol, config)
        start_ms = previous + tf_ms if previous is not None else first_candle_ms
    start_ms = ceil_ms(start_ms, tf_ms)  # bars opening in [start_ms, end_ms)
    load_from = floor_ms(start_ms - config.warmup_days * DAY_MS, DAY_MS)
    inputs = load_inputs(lake, symbol, start_ms=load_from, end_ms=end_ms, use_trades=use_trades)
    result = evaluate(inputs, config, first_bar_ms=start_ms, code_version=code_version)
    written_us = (clock_ms if clock_ms is not None else now_ms()) * 1000
    signals_new, scores_new = (
        _new_rows(
            lake,
            dataset,
            table,
            symbol=symbol,
            config=config,
            start_ms=start_ms,
            end_ms=end_ms,
        )
        for dataset, table in (
            (SIGNALS, result.signals_table(detected_at_us=written_us)),
            (SCORES, result.scores_table(scored_at_us=written_us)),
        )
    )
    for dataset, rows in ((SIGNALS, signals_new), (SCORES, scores_new)):
        if rows.num_rows:
            lake.upsert(dataset, rows, symbol=symbol, param=config.timeframe)
    finished = clock_ms if clock_ms is not None else now_ms()
    run = _run_of(
        result,
        symbol=symbol,
        inputs=inputs,
        started_ms=started,
        finished_ms=finished,
        signals_inserted=signals_new.num_rows,
        scores_inserted=scores_new.num_rows,
    )
    if run.bars:
        lake.upsert(SCORE_RUNS, _run_row(run), symbol=symbol)
    return run


def _new_rows(
    lake: Lake,
    dataset: Dataset,
    table: pa.Table,
    *,
    symbol: str,
    config: SignalConfig,
    start_ms: int,
    end_ms: int,
) -> pa.Table:
    """The rows of ``table`` whose key is not stored yet (the datasets are append-only)."""
    if not table.num_rows:
        return table
    key = dataset.key
    stored = lake.read(
        dataset, symbols=symbol, param=config.timeframe, start=start_ms, end=end_ms, columns=[key]
    )
    known = set(stored.column(key).to_pylist())
    if not known:
        return table
    keep = [value not in known for value in table.column(key).to_pylist()]
    return table.filter(pa.array(keep))


def _run_of(
    result: Evaluation,
    *,
    symbol: str,
    inputs: MarketInputs,
    started_ms: int,
    finished_ms: int,
    signals_inserted: int,
    scores_inserted: int,
) -> ScoreRun:
    by_setup: dict[str, int] = {}
    for signal in result.signals:
        by_setup[signal.setup] = by_setup.get(signal.setup, 0) + 1
    return ScoreRun(
        run_id=uuid.uuid4().hex,
        symbol=symbol,
        timeframe=result.config.timeframe,
        rules_version=RULES_VERSION,
        config_hash=result.config.config_hash,
        first_bar_ms=result.first_bar_ms,
        last_bar_ms=result.last_bar_ms,
        bars=result.bars_evaluated,
        signals=len(result.signals),
        signals_inserted=signals_inserted,
        scores_inserted=scores_inserted,
        trade_delta=inputs.trade_delta,
        watermarks=inputs.watermarks(),
        started_at_ms=started_ms,
        finished_at_ms=finished_ms,
        by_setup=dict(sorted(by_setup.items())),
    )


def _run_row(run: ScoreRun) -> pa.Table:
    row = {
        "run_id": run.run_id,
        "timeframe": run.timeframe,
        "rules_version": run.rules_version,
        "config_hash": run.config_hash,
        "first_bar_open_time": run.first_bar_ms,
        "last_bar_open_time": run.last_bar_ms,
        "bars": run.bars,
        "signals": run.signals,
        "signals_inserted": run.signals_inserted,
        "scores_inserted": run.scores_inserted,
        "watermarks": json.dumps(run.watermarks, sort_keys=True),
        "started_at": run.started_at_ms * 1000,
        "finished_at": run.finished_at_ms * 1000,
    }
    return pa.Table.from_pylist([row], schema=SCORE_RUNS.arrow_schema)


def read_signals(
    lake: Lake,
    *,
    symbols: str | Sequence[str] | None = None,
    timeframe: str = "15m",
    start_ms: int | None = None,
    end_ms: int | None = None,
    rules_version: str = RULES_VERSION,
) -> pl.DataFrame:
    """Stored signals with their score under ``rules_version`` (score columns null when that
    version has not scored a signal), oldest first — the frame notebooks and the backtest use.
    ``end_ms`` is exclusive."""
    import polars as pl  # noqa: PLC0415 - polars loads only for the reads that use it

    end = None if end_ms is None else end_ms - 1
    signals = pl.from_arrow(
        lake.read(SIGNALS, symbols=symbols, param=timeframe, start=start_ms, end=end)
    )
    scores = pl.from_arrow(
        lake.read(SCORES, symbols=symbols, param=timeframe, start=start_ms, end=end)
    )
    assert isinstance(signals, pl.DataFrame)
    assert isinstance(scores, pl.DataFrame)
    scored = (
        scores.filter(pl.col("rules_version") == rules_version)
        .sort("scored_at")
        .select(
            "signal_id",
            "score",
            "confidence",
            "data_quality",
            "trend_points",
            "flow_points",
            "session_points",
            "rules_version",
            "config_hash",
            "score_id",
        )
    )
    # Several configurations of one rules version: the latest-scored row wins.
    scored = scored.unique(subset="signal_id", keep="last", maintain_order=True)
    return signals.join(scored, on="signal_id", how="left").sort("bar_open_time", "symbol")


def read_scores(
    lake: Lake,
    *,
    symbols: str | Sequence[str] | None = None,
    timeframe: str = "15m",
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> pl.DataFrame:
    """The stored audit records (every rules version and configuration), with their JSON
    columns (components, inputs, thresholds, watermarks, notes) as strings, oldest bar first.
    ``end_ms`` is exclusive."""
    import polars as pl  # noqa: PLC0415 - polars loads only for the reads that use it

    end = None if end_ms is None else end_ms - 1
    frame = pl.from_arrow(
        lake.read(SCORES, symbols=symbols, param=timeframe, start=start_ms, end=end)
    )
    assert isinstance(frame, pl.DataFrame)
    return frame.sort("bar_open_time", "symbol", "scored_at")

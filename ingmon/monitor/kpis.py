"""Signal health and performance KPIs: what the signal engine found lately, and how the latest
saved backtest run of each symbol did — the non-ingestion half of the health snapshot."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from ingmon.damage import READ_ERRORS, is_damage
from ingmon.errors import CorruptPartitionError
from ingmon.lake import CorruptPartition, Lake
from ingmon.problems import Problem
from ingmon.schema import BACKTEST_RUNS, INTERVAL_MS, SCORES, SIGNAL_TIMEFRAMES, SIGNALS
from ingmon.times import DAY_MS, HOUR_MS, iso_ms

__all__ = [
    "DAILY_DAYS",
    "UNSCORED",
    "PerformanceKPI",
    "SignalCount",
    "SignalHealth",
    "SymbolSignals",
    "performance_kpis",
    "signal_health",
]

Granularity = Literal["hour", "day"]
# Daily counts cover this many days before now (hourly counts cover the health window).
DAILY_DAYS = 7
# The confidence (and score -1) of a signal that the current rules version has not scored.
UNSCORED = "unscored"


@dataclass(frozen=True)
class SignalCount:
    """Signals of one symbol whose bar closed in one hour or UTC day, per setup/confidence/score."""

    symbol: str
    granularity: Granularity
    start_ms: int  # the hour or day: bar_close_time floored to it
    setup: str
    confidence: str  # high | medium | low | "unscored"
    score: int  # 0–7; -1 when unscored
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "granularity": self.granularity,
            "start_ms": self.start_ms,
            "start": iso_ms(self.start_ms),
            "setup": self.setup,
            "confidence": self.confidence,
            "score": self.score,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignalCount:
        granularity: Granularity = "day" if data["granularity"] == "day" else "hour"
        return cls(
            symbol=str(data["symbol"]),
            granularity=granularity,
            start_ms=int(data["start_ms"]),
            setup=str(data["setup"]),
            confidence=str(data["confidence"]),
            score=int(data["score"]),
            count=int(data["count"]),
        )


@dataclass(frozen=True)
class SymbolSignals:
    """One symbol's signals: the newest, and the window's by setup, confidence and score."""

    symbol: str
    last_signal_ms: int | None  # bar close time of the newest signal (any time, not only window)
    window_count: int  # signals in the health window
    by_setup: dict[str, int] = field(default_factory=dict)
    by_confidence: dict[str, int] = field(default_factory=dict)
    by_score: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "last_signal_ms": self.last_signal_ms,
            "last_signal": iso_ms(self.last_signal_ms),
            "window_count": self.window_count,
            "by_setup": dict(self.by_setup),
            "by_confidence": dict(self.by_confidence),
            "by_score": {str(score): count for score, count in self.by_score.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SymbolSignals:
        last = data.get("last_signal_ms")
        return cls(
            symbol=str(data["symbol"]),
            last_signal_ms=None if last is None else int(last),
            window_count=int(data["window_count"]),
            by_setup={str(k): int(v) for k, v in data.get("by_setup", {}).items()},
            by_confidence={str(k): int(v) for k, v in data.get("by_confidence", {}).items()},
            by_score={int(k): int(v) for k, v in data.get("by_score", {}).items()},
        )


@dataclass(frozen=True)
class SignalHealth:
    """Signal counts of the snapshot's symbols: per symbol, and hourly/daily buckets."""

    window_hours: float
    symbols: tuple[SymbolSignals, ...] = ()
    counts: tuple[SignalCount, ...] = ()  # hourly over the window, daily over DAILY_DAYS days
    # Damaged signal or score partitions met while counting (Problem.to_dict(), severity
    # error): what the counts above could not see.
    problems: tuple[dict[str, Any], ...] = ()

    def since_last_signal_seconds(self, symbol: str, now_ms: int) -> float | None:
        """Seconds from the newest signal's bar close to ``now_ms``; None without any signal
        (or for a symbol the snapshot does not cover)."""
        for entry in self.symbols:
            if entry.symbol == symbol and entry.last_signal_ms is not None:
                return (now_ms - entry.last_signal_ms) / 1000
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_hours": self.window_hours,
            "symbols": [entry.to_dict() for entry in self.symbols],
            "counts": [count.to_dict() for count in self.counts],
            "problems": [dict(problem) for problem in self.problems],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignalHealth:
        return cls(
            window_hours=float(data["window_hours"]),
            symbols=tuple(SymbolSignals.from_dict(s) for s in data.get("symbols", ())),
            counts=tuple(SignalCount.from_dict(c) for c in data.get("counts", ())),
            problems=tuple(dict(p) for p in data.get("problems", ())),
        )


@dataclass(frozen=True)
class PerformanceKPI:
    """The latest saved backtest run of a symbol, whole (setup "all") or for one setup."""

    symbol: str
    setup: str  # "all" for the whole run
    run_id: str
    created_at_ms: int
    trades: int
    hit_rate: float | None  # winning trades / trades (net return > 0)
    expectancy: float | None  # mean net return per trade (fraction of the entry notional)
    max_drawdown: float | None  # fraction of equity (0.12 = 12 %), whole run only (None per setup)

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "setup": self.setup,
            "run_id": self.run_id,
            "created_at_ms": self.created_at_ms,
            "created_at": iso_ms(self.created_at_ms),
            "trades": self.trades,
            "hit_rate": self.hit_rate,
            "expectancy": self.expectancy,
            "max_drawdown": self.max_drawdown,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceKPI:
        return cls(
            symbol=str(data["symbol"]),
            setup=str(data["setup"]),
            run_id=str(data["run_id"]),
            created_at_ms=int(data["created_at_ms"]),
            trades=int(data["trades"]),
            hit_rate=_number(data.get("hit_rate")),
            expectancy=_number(data.get("expectancy")),
            max_drawdown=_number(data.get("max_drawdown")),
        )


def _number(value: Any) -> float | None:
    """A finite float, else None (JSON null, NaN, a missing metric)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ---- signals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signal:
    close_ms: int
    setup: str
    confidence: str
    score: int


def _stored_timeframes(lake: Lake, symbol: str) -> list[str]:
    return [
        timeframe
        for timeframe in SIGNAL_TIMEFRAMES
        if lake.series_dir(SIGNALS, symbol=symbol, param=timeframe).is_dir()
    ]


def _damage_problem(part: CorruptPartition, consequence: str) -> dict[str, Any]:
    """A damaged signal or score partition as a problem of the signal health."""
    rescore = (
        f"ingmon score --symbol {part.symbol} --timeframe {part.param} "
        f"--start {iso_ms(part.start_ms)} --end {iso_ms(part.end_ms + 1)}"
    )
    return Problem(
        part.dataset,
        part.symbol,
        "corrupt_partition",
        f"{part.message}; {consequence}. Move the file to {part.directory / 'quarantine'}, "
        f"then score its bars again: {rescore}",
        param=part.param,
        details={"file": str(part.version), "reason": part.reason},
        start_ms=part.start_ms,
        end_ms=part.end_ms,
    ).to_dict()


def _damaged(
    lake: Lake, error: CorruptPartitionError, *, start_ms: int, end_ms: int
) -> list[CorruptPartition]:
    """Every damaged partition of the error's series in ``[start_ms, end_ms]`` (their footers
    say so), and the one the read met (which may be damaged past a sound footer)."""
    found = lake.find_corrupt(
        error.dataset, symbol=error.symbol, param=error.param, start=start_ms, end=end_ms
    )
    if error.partition.version not in {part.version for part in found}:
        found.append(error.partition)
    return found


def _recent_signals(
    lake: Lake,
    symbol: str,
    timeframe: str,
    *,
    after_ms: int,
    now_ms: int,
    problems: list[dict[str, Any]],
) -> list[_Signal]:
    """Signals whose bar closed in ``(after_ms, now_ms]``, with their score under the current
    rules version (``read_signals``: the latest-scored row wins). When a scores partition is
    damaged the signals still count, unscored, and the damage is added to ``problems``."""
    from ingmon.signals.store import read_signals  # noqa: PLC0415 - polars, for this read only

    start_ms = after_ms - INTERVAL_MS[timeframe]  # bars are read by their open time
    rows: Iterable[tuple[Any, Any, Any, Any]]
    try:
        frame = read_signals(
            lake, symbols=symbol, timeframe=timeframe, start_ms=start_ms, end_ms=now_ms + 1
        )
        rows = zip(
            frame["bar_close_time"].dt.epoch("ms").to_list(),
            frame["setup"].to_list(),
            frame["confidence"].to_list(),
            frame["score"].to_list(),
            strict=True,
        )
    except CorruptPartitionError as error:
        if error.dataset != SCORES.name:
            raise
        problems.extend(
            _damage_problem(part, "its signals count as unscored")
            for part in _damaged(lake, error, start_ms=start_ms, end_ms=now_ms)
        )
        table = lake.read(
            SIGNALS,
            symbols=symbol,
            param=timeframe,
            start=start_ms,
            end=now_ms,
            columns=["bar_close_time", "setup"],
        )
        closes = table["bar_close_time"].cast(pa.int64()).to_pylist()
        unscored = [None] * table.num_rows
        rows = zip(closes, table["setup"].to_pylist(), unscored, unscored, strict=True)
    found = []
    for close_ms, setup, confidence, score in rows:
        if close_ms is not None and after_ms < close_ms <= now_ms:
            found.append(
                _Signal(
                    close_ms=int(close_ms),
                    setup=str(setup),
                    confidence=UNSCORED if confidence is None else str(confidence),
                    score=-1 if score is None else int(score),
                )
            )
    return found


def _newest_close(lake: Lake, symbol: str, timeframe: str, *, now_ms: int) -> int | None:
    """Bar close time of the newest signal closed by ``now_ms``: the partitions are read
    newest first, their ``bar_close_time`` only, until one holds such a signal — a symbol
    quiet for a week costs a partition or two, not its whole history. Raises
    CorruptPartitionError for a damaged partition met on the way."""
    column = "bar_close_time"
    for path in reversed(lake.files(SIGNALS, symbol=symbol, param=timeframe, end=now_ms)):
        try:
            table = pq.read_table(path, columns=[column])
        except READ_ERRORS as error:
            if not is_damage(error):
                raise
            for part in lake.find_corrupt(SIGNALS, symbol=symbol, param=timeframe, deep=True):
                if part.version == path:
                    raise CorruptPartitionError(part) from error
            raise
        closes = table[column].cast(pa.int64()).to_numpy()
        closes = closes[closes <= now_ms]
        if closes.size:
            return int(closes.max())
    return None


def _bucketed(
    symbol: str, signals: Sequence[_Signal], granularity: Granularity, *, step_ms: int
) -> list[SignalCount]:
    tally: Counter[tuple[int, str, str, int]] = Counter(
        (s.close_ms // step_ms * step_ms, s.setup, s.confidence, s.score) for s in signals
    )
    return [
        SignalCount(symbol, granularity, start, setup, confidence, score, count)
        for (start, setup, confidence, score), count in sorted(tally.items())
    ]


def signal_health(
    lake: Lake, *, symbols: Sequence[str], now_ms: int, window_hours: float
) -> SignalHealth:
    """Signal counts of ``symbols`` at ``now_ms``, over every stored signal timeframe.

    A signal counts at its bar's close (``bar_close_time``, when it is known): in the window
    when it closed in ``(now − window, now]``, in the hourly bucket of that close's UTC hour,
    and in the daily bucket of its UTC day when it closed in ``(now − 7 days, now]``. Scores
    and confidences are the current rules version's; a signal it has not scored counts as
    confidence ``"unscored"``, score -1 — so do the signals whose scores partition is damaged.
    A timeframe with a damaged signals partition is skipped. Either damage is listed in
    ``problems``.
    """
    window_ms = round(window_hours * HOUR_MS)
    day_span_ms = DAILY_DAYS * DAY_MS
    read_after = now_ms - max(window_ms, day_span_ms)
    entries: list[SymbolSignals] = []
    counts: list[SignalCount] = []
    problems: list[dict[str, Any]] = []
    for symbol in symbols:
        recent: list[_Signal] = []
        last: int | None = None
        for timeframe in _stored_timeframes(lake, symbol):
            try:
                found = _recent_signals(
                    lake,
                    symbol,
                    timeframe,
                    after_ms=read_after,
                    now_ms=now_ms,
                    problems=problems,
                )
                newest = (
                    max(s.close_ms for s in found)
                    if found
                    else _newest_close(lake, symbol, timeframe, now_ms=now_ms)
                )
            except CorruptPartitionError as error:
                problems.append(
                    _damage_problem(
                        error.partition,
                        f"the {timeframe} signals of {symbol} are not counted, and the newest "
                        "signal may be older than it is",
                    )
                )
                continue
            recent.extend(found)
            if newest is not None and (last is None or newest > last):
                last = newest
        in_window = [s for s in recent if s.close_ms > now_ms - window_ms]
        in_days = [s for s in recent if s.close_ms > now_ms - day_span_ms]
        entries.append(
            SymbolSignals(
                symbol=symbol,
                last_signal_ms=last,
                window_count=len(in_window),
                by_setup=dict(sorted(Counter(s.setup for s in in_window).items())),
                by_confidence=dict(sorted(Counter(s.confidence for s in in_window).items())),
                by_score=dict(sorted(Counter(s.score for s in in_window).items())),
            )
        )
        counts.extend(_bucketed(symbol, in_window, "hour", step_ms=HOUR_MS))
        counts.extend(_bucketed(symbol, in_days, "day", step_ms=DAY_MS))
    return SignalHealth(
        window_hours=window_hours,
        symbols=tuple(entries),
        counts=tuple(counts),
        problems=tuple(problems),
    )


# ---- backtests ---------------------------------------------------------------------------------


def _latest_run(lake: Lake, symbol: str) -> dict[str, Any] | None:
    """The backtest_runs row of ``symbol`` created last (ties: the greatest run id): picked
    by its small columns, then only that run's summary document is read."""
    table = lake.read(
        BACKTEST_RUNS, symbols=symbol, columns=["run_id", "created_at", "trades", "max_drawdown"]
    )
    if not table.num_rows:
        return None
    created = table["created_at"].cast(pa.int64()).to_pylist()  # µs
    run_ids = table["run_id"].to_pylist()
    index = max(range(table.num_rows), key=lambda i: (created[i], run_ids[i]))
    row: dict[str, Any] = table.slice(index, 1).to_pylist()[0]
    row["created_at_ms"] = created_ms = created[index] // 1000
    # The run's own partition and creation millisecond: one row (or a few created with it).
    same = lake.read(
        BACKTEST_RUNS,
        symbols=symbol,
        start=created_ms,
        end=created_ms,
        columns=["run_id", "summary"],
    )
    summaries = dict(zip(same["run_id"].to_pylist(), same["summary"].to_pylist(), strict=True))
    row["summary"] = summaries.get(row["run_id"])
    return row


def _summary(text: Any) -> dict[str, Any]:
    try:
        document = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def performance_kpis(lake: Lake, *, symbols: Sequence[str]) -> tuple[PerformanceKPI, ...]:
    """KPIs of the latest saved backtest run of each symbol (the runs saved under the
    symbol, e.g. by ``ingmon backtest --symbol``): the whole run (setup ``"all"``: its trade
    count, hit rate, expectancy and max drawdown), then one entry per setup from the run's
    setup breakdown (no drawdown: the run has one equity curve). Hit rate and expectancy are
    the run's own ``trade_metrics``: winning trades (net return > 0) over trades, and the mean
    net return per trade. Symbols without a run (or whose runs cannot be read) are left out."""
    out: list[PerformanceKPI] = []
    for symbol in symbols:
        try:
            row = _latest_run(lake, symbol)
        except CorruptPartitionError:
            continue
        if row is None:
            continue
        document = _summary(row["summary"])
        metrics = document.get("metrics")
        metrics = metrics if isinstance(metrics, dict) else {}
        run_id, created_ms = str(row["run_id"]), int(row["created_at_ms"])
        out.append(
            PerformanceKPI(
                symbol=symbol,
                setup="all",
                run_id=run_id,
                created_at_ms=created_ms,
                trades=int(row["trades"]),
                hit_rate=_number(metrics.get("hit_rate")),
                expectancy=_number(metrics.get("expectancy")),
                max_drawdown=_number(row["max_drawdown"]),
            )
        )
        breakdowns = document.get("breakdowns")
        by_setup = breakdowns.get("setup") if isinstance(breakdowns, dict) else None
        for setup, slice_metrics in sorted((by_setup or {}).items()):
            if not isinstance(slice_metrics, dict):
                continue
            out.append(
                PerformanceKPI(
                    symbol=symbol,
                    setup=str(setup),
                    run_id=run_id,
                    created_at_ms=created_ms,
                    trades=int(slice_metrics.get("trades") or 0),
                    hit_rate=_number(slice_metrics.get("hit_rate")),
                    expectancy=_number(slice_metrics.get("expectancy")),
                    max_drawdown=None,
                )
            )
    return tuple(out)

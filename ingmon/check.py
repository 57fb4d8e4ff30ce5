"""``ingmon check``: the integrity of the stored market data, with the command that repairs it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from ingmon.config import Settings
from ingmon.integrity import SeriesHealth, Verdict, assess_series
from ingmon.lake import Lake
from ingmon.problems import Problem, RepairContext, refetch_command
from ingmon.schema import AGG_TRADES, CANDLES, MARKET_SERIES, interval_ms
from ingmon.times import DAY_MS, iso_ms, now_ms

__all__ = ["CHECK_SCHEMA", "CheckReport", "candle_trade_mismatches", "run_check"]

CHECK_SCHEMA = "ingmon.check/v1"
# Float sums of the same decimal quantities in a different order differ in the last bits only.
_RELATIVE_TOLERANCE = 1e-9
_MAX_LISTED = 20


def _differs(stored: str, summed: str) -> str:
    """SQL: the candle's value and the trades' sum differ beyond float rounding."""
    return (
        f"abs({stored} - coalesce({summed}, 0)) > "
        f"{_RELATIVE_TOLERANCE} * greatest(abs({stored}), 1e-12) + 1e-12"
    )


def candle_trade_mismatches(
    candles: pa.Table, trades: pa.Table, *, interval: str
) -> list[dict[str, Any]]:
    """Candles whose volume, taker-buy volume or trade count differ from their trades.

    Only candles inside the span the stored trades cover completely are compared (the first and
    last candle of that span may hold trades from before/after it).
    """
    if candles.num_rows == 0 or trades.num_rows == 0:
        return []
    step = interval_ms(interval)
    connection = duckdb.connect(":memory:")
    connection.register("candles", candles)
    connection.register("trades", trades)
    rows = connection.sql(f"""
        WITH per_candle AS (
            SELECT (epoch_ms(transact_time) // {step}) * {step} AS open_ms,
                   sum(quantity) AS volume,
                   sum(CASE WHEN NOT is_buyer_maker THEN quantity ELSE 0 END) AS taker_buy,
                   sum(last_trade_id - first_trade_id + 1) AS trade_count
            FROM trades GROUP BY 1
        ), span AS (
            SELECT min(epoch_ms(transact_time)) AS first_ms, max(epoch_ms(transact_time)) AS last_ms
            FROM trades
        )
        SELECT epoch_ms(c.open_time) AS open_ms, c.volume, coalesce(t.volume, 0) AS trade_volume,
               c.taker_buy_volume, coalesce(t.taker_buy, 0) AS trade_taker_buy,
               c.trade_count, coalesce(t.trade_count, 0) AS trades_count
        FROM candles c LEFT JOIN per_candle t ON epoch_ms(c.open_time) = t.open_ms, span
        WHERE epoch_ms(c.open_time) > (span.first_ms // {step}) * {step}
          AND epoch_ms(c.open_time) < (span.last_ms // {step}) * {step}
          AND ({_differs("c.volume", "t.volume")}
            OR {_differs("c.taker_buy_volume", "t.taker_buy")}
            OR c.trade_count != coalesce(t.trade_count, 0))
        ORDER BY 1
    """).fetchall()
    connection.close()
    return [
        {
            "open_time": iso_ms(int(r[0])),
            "open_time_ms": int(r[0]),
            "candle_volume": r[1],
            "trade_volume": r[2],
            "candle_taker_buy_volume": r[3],
            "trade_taker_buy_volume": r[4],
            "candle_trade_count": r[5],
            "trade_count": int(r[6]),
        }
        for r in rows
    ]


@dataclass
class SymbolCheck:
    """The check of one symbol: each dataset's health and the candle-vs-trade comparison."""

    series: dict[str, SeriesHealth]
    mismatches: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: health.to_dict() for name, health in self.series.items()}
        out["candle_vs_trades"] = {
            "mismatches": len(self.mismatches),
            "examples": self.mismatches[:_MAX_LISTED],
        }
        return out


@dataclass
class CheckReport:
    """The integrity report of some symbols (schema ``ingmon.check/v1``).

    ``verdict``: ``error`` when any problem is an error, ``warn`` when only freshness warnings
    were found, ``ok`` otherwise; ``ingmon check`` exits 1 on ``error`` and 0 otherwise (as
    dbt's source freshness does), so a warning is logged but does not fail a cron job.
    """

    lake: str
    start_ms: int | None
    end_ms: int
    skipped: tuple[str, ...] = ()
    symbols: dict[str, SymbolCheck] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        severities = {problem.severity for problem in self.problems}
        return "error" if "error" in severities else "warn" if "warn" in severities else "ok"

    @property
    def status(self) -> str:
        """The v1 field: ``ok`` unless the verdict is ``error``."""
        return "problems" if self.verdict == "error" else "ok"

    @property
    def exit_status(self) -> int:
        return 1 if self.verdict == "error" else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": CHECK_SCHEMA,
            "lake": self.lake,
            "window": [iso_ms(self.start_ms), iso_ms(self.end_ms)],
            "skipped": list(self.skipped),
            "symbols": {symbol: check.to_dict() for symbol, check in self.symbols.items()},
            "problems": [problem.to_dict() for problem in self.problems],
            "status": self.status,
            "verdict": self.verdict,
        }


def _mismatch_problems(
    mismatches: list[dict[str, Any]], *, symbol: str, interval: str, context: RepairContext
) -> list[Problem]:
    """One problem per dataset at fault. Each aggregated trade names the range of trade ids it
    holds, so a candle counting more trades than its stored aggregates cover is missing trades
    (refetch the trades); a candle whose count matches but whose volumes do not, or that counts
    fewer, is itself wrong (refetch the candles)."""
    short = [m for m in mismatches if m["trade_count"] < m["candle_trade_count"]]
    wrong = [m for m in mismatches if m not in short]
    problems = []
    for dataset, found, why in (
        ("agg_trades", short, "hold more than their stored trades: trades are missing"),
        ("candles", wrong, "differ from the sum of their trades: the candles are wrong"),
    ):
        if not found:
            continue
        first, last = found[0]["open_time_ms"], found[-1]["open_time_ms"]
        end = last + interval_ms(interval) - 1
        series = MARKET_SERIES[dataset]
        param = interval if dataset == CANDLES.name else None
        problems.append(
            Problem(
                dataset,
                symbol,
                "candle_trade_mismatch",
                f"{len(found)} {interval} candles {why}",
                param=param,
                repair=refetch_command(
                    series=series,
                    symbol=symbol,
                    param=param,
                    start_ms=first,
                    end_ms=end,
                    context=context,
                    full_refresh=True,
                ),
                details={"count": len(found), "first": iso_ms(first), "last": iso_ms(last)},
                start_ms=first,
                end_ms=end,
            )
        )
    return problems


def _compare_candles_with_trades(
    lake: Lake, *, symbol: str, interval: str, start_ms: int | None, end_ms: int
) -> list[dict[str, Any]]:
    candles = lake.read(
        CANDLES,
        symbols=symbol,
        param=interval,
        start=start_ms,
        end=end_ms - 1,
        columns=["open_time", "volume", "taker_buy_volume", "trade_count"],
    )
    trades = lake.read(
        AGG_TRADES,
        symbols=symbol,
        start=start_ms,
        end=end_ms - 1,
        columns=["transact_time", "quantity", "is_buyer_maker", "first_trade_id", "last_trade_id"],
    )
    return candle_trade_mismatches(candles, trades, interval=interval)


def run_check(
    settings: Settings,
    *,
    symbols: Sequence[str],
    window_days: float | None = None,
    end_ms: int | None = None,
    interval: str = "1m",
    oi_period: str = "5m",
    skip: Sequence[str] = (),
    context: RepairContext | None = None,
) -> CheckReport:
    """The integrity report of ``symbols`` over ``[end − window_days, end)`` (default end: now;
    no window: everything stored before the end), judged at ``end``.

    Datasets in ``skip`` are left out on purpose and not judged. ``context`` is what the
    printed repair commands carry (default: this lake's data root and exchange URLs).
    """
    lake = Lake(settings.lake_dir)
    end = end_ms if end_ms is not None else now_ms()
    start = end - int(window_days * DAY_MS) if window_days else None
    context = context or RepairContext.of(settings)
    params = {CANDLES.name: interval, "open_interest": oi_period}
    kept = {name: series for name, series in MARKET_SERIES.items() if name not in skip}
    report = CheckReport(lake=str(lake.root), start_ms=start, end_ms=end, skipped=tuple(skip))
    for symbol in symbols:
        healths = {
            name: assess_series(
                lake,
                series,
                symbol=symbol,
                param=params.get(name),
                start_ms=start,
                end_ms=end,
                now_ms=end,
                expect="live",
                thresholds=settings.freshness(name),
                tolerance_ratio=settings.cadence_tolerance_ratio,
                context=context,
            )
            for name, series in kept.items()
        }
        for health in healths.values():
            report.problems.extend(health.problems)
        mismatches = []
        # Damaged files or duplicated trades would make every candle look wrong: repair those
        # first (their own problems say how), then the comparison means something.
        comparable = not any(h.corrupt_files or h.duplicates for h in healths.values())
        if CANDLES.name in kept and AGG_TRADES.name in kept and comparable:
            mismatches = _compare_candles_with_trades(
                lake, symbol=symbol, interval=interval, start_ms=start, end_ms=end
            )
            report.problems.extend(
                _mismatch_problems(mismatches, symbol=symbol, interval=interval, context=context)
            )
        report.symbols[symbol] = SymbolCheck(healths, mismatches)
    return report

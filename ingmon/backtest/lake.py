"""The lake pipeline of a backtest: the signal engine's signals and the lake's candles and funding
in, a saved run and its exports out — one function for ``ingmon backtest --symbol`` and the demo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingmon.backtest.engine import BacktestConfig, Bars, Funding
from ingmon.backtest.export import EXPORT_FORMATS, save_run, write_exports
from ingmon.backtest.files import read_lake_inputs
from ingmon.backtest.run import BacktestRun, run_backtests
from ingmon.lake import Lake
from ingmon.signals.rules import RULES_VERSION
from ingmon.times import DAY_MS, MINUTE_MS

__all__ = ["LakeBacktest", "backtest_lake"]


@dataclass(frozen=True)
class LakeBacktest:
    """A run of lake signals and the export files written for it."""

    run: BacktestRun
    written: list[Path]


def backtest_lake(
    lake: Lake,
    symbol: str,
    *,
    config: BacktestConfig,
    timeframe: str,
    window_days: Sequence[float],
    end_ms: int,
    exports_root: Path,
    out_dir: Path | None = None,
    formats: Sequence[str] = EXPORT_FORMATS,
    save: bool = True,
    rolling_days: float | None = None,
    setups: Sequence[str] = (),
    min_score: int | None = None,
    confidences: Sequence[str] = (),
    direction: str = "both",
    rules_version: str = RULES_VERSION,
    created_at_ms: int | None = None,
    notes: Sequence[str] = (),
) -> LakeBacktest:
    """Backtest ``symbol``'s ``timeframe`` signals scored under ``rules_version`` on the lake's
    1m candles and funding in ``[end_ms − the longest window, end_ms)``, windows anchored at
    ``end_ms``; save the run in the lake (unless ``save`` is false), then write its exports
    into ``out_dir`` (default ``exports_root/RUN_ID``). Bad input raises before anything is
    written."""
    span_days = max(*window_days, rolling_days or 0)
    inputs = read_lake_inputs(
        lake,
        symbol=symbol,
        timeframe=timeframe,
        start_ms=end_ms - round(span_days * DAY_MS),
        end_ms=end_ms,
        setups=setups,
        min_score=min_score,
        confidences=confidences,
        rules_version=rules_version,
        atr_bars=config.atr_bars,
    )
    filters = {
        "setup": list(setups),
        "min_score": min_score,
        "confidence": list(confidences),
        "direction": direction,
        "rules_version": rules_version,
    }
    run = run_backtests(
        Bars.from_frame(inputs.bars, bar_ms=MINUTE_MS),
        inputs.signals,
        config=config,
        funding=Funding.from_frame(inputs.funding),
        window_days=tuple(window_days),
        rolling_days=rolling_days,
        symbol=symbol,
        source="lake",
        timeframe=timeframe,
        filters=filters,
        created_at_ms=end_ms if created_at_ms is None else created_at_ms,
        as_of_ms=end_ms,
        notes=tuple(notes),
    )
    if save:
        save_run(lake, run)
    written = write_exports(run, out_dir or exports_root / run.run_id, formats)
    return LakeBacktest(run, written)

"""The signal engine's setups backtested on the calibrated simulated market, through the lake
path the CLI and the dashboard use: simulated candles, OI and funding stored in a lake →
``score_symbol`` → ``read_lake_inputs`` → ``run_backtests`` over 30/60/90-day windows with taker
fees, slippage and funding. Run ``python tests/backtest/_setups.py`` to print the tables of
docs/backtesting.md; ``tests/backtest/test_setups_measured.py`` keeps them true."""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ingmon.backtest import REPORT_BRACKET, Bars, Funding, run_backtests, trade_metrics
from ingmon.backtest.files import read_lake_inputs
from ingmon.lake import Lake
from ingmon.signals import SETUPS, SignalConfig, score_symbol
from ingmon.times import DAY_MS, MINUTE_MS

if __package__:
    from signals._market import NOW_MS, demo_market, listing_ms, write_lake
else:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from signals._market import NOW_MS, demo_market, listing_ms, write_lake

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
WINDOWS = (30, 60, 90)
# Market entry and stop/time exit: taker fees both sides (0.05 %), 1 bp slippage per side, a
# stop at 1 ATR and a target at 1.5 ATR of the 15m signal timeframe, at most 4 hours held.
CONFIG = REPORT_BRACKET


@dataclass(frozen=True)
class Measured:
    """Trades pooled over the symbols, per (setup or "all", window), and per score."""

    trades: dict[tuple[str, str], pd.DataFrame]
    max_drawdown: dict[tuple[str, str], float]  # the worst symbol's, as a fraction


def measure(*, days: int = 90, seed: int = 7, symbols: tuple[str, ...] = SYMBOLS) -> Measured:
    market = demo_market(days=days, seed=seed, symbols=symbols)
    pooled: dict[tuple[str, str], list[pd.DataFrame]] = defaultdict(list)
    drawdowns: dict[tuple[str, str], float] = defaultdict(float)
    with tempfile.TemporaryDirectory() as root:
        lake = Lake(Path(root))
        for symbol in symbols:
            write_lake(lake, market, symbol, listing_ms(market, symbol), NOW_MS)
            score_symbol(lake, symbol, config=SignalConfig(), end_ms=NOW_MS, clock_ms=NOW_MS)
        for symbol in symbols:
            for setup in (*SETUPS, "all"):
                inputs = read_lake_inputs(
                    lake,
                    symbol=symbol,
                    timeframe="15m",
                    start_ms=NOW_MS - max(WINDOWS) * DAY_MS,
                    end_ms=NOW_MS,
                    setups=() if setup == "all" else (setup,),
                )
                run = run_backtests(
                    Bars.from_frame(inputs.bars, bar_ms=MINUTE_MS),
                    inputs.signals,
                    config=CONFIG,
                    funding=Funding.from_frame(inputs.funding),
                    window_days=tuple(float(days) for days in WINDOWS),
                    symbol=symbol,
                    source="lake",
                    timeframe="15m",
                )
                for report in run.windows:
                    key = (setup, report.window.label)
                    pooled[key].append(report.result.trades)
                    drawdown = report.metrics.get("max_drawdown") or 0.0
                    drawdowns[key] = max(drawdowns[key], abs(drawdown))
    return Measured(
        trades={key: pd.concat(frames, ignore_index=True) for key, frames in pooled.items()},
        max_drawdown=dict(drawdowns),
    )


def _t_stat(trades: pd.DataFrame) -> float | None:
    """Mean net return over its standard error: how many standard errors from no edge."""
    returns = trades["net_return"].to_numpy(dtype=float)
    if len(returns) < 2 or returns.std(ddof=1) == 0:
        return None
    return float(returns.mean() / returns.std(ddof=1) * len(returns) ** 0.5)


def _bps(value: Any) -> str:
    return "–" if value is None else f"{value * 1e4:+.1f}"


def _number(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def tables(measured: Measured) -> str:
    """The markdown tables of docs/backtesting.md."""
    lines = [
        "| setup | window | trades | hit rate | expectancy (bps) | t | profit factor "
        "| fees (bps) | funding (bps) | max DD (worst symbol) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setup in (*SETUPS, "all"):
        for days in WINDOWS:
            key = (setup, f"{days}d")
            trades = measured.trades[key]
            metrics = trade_metrics(trades)
            notional = trades["notional"].sum() if len(trades) else 0.0
            fees = trades["fees"].sum() / notional if notional else None
            funding = trades["funding"].sum() / notional if notional else None
            lines.append(
                f"| {setup} | {days}d | {metrics['trades']} | {_number(metrics['hit_rate'])} "
                f"| {_bps(metrics['expectancy'])} | {_number(_t_stat(trades), 1)} "
                f"| {_number(metrics['profit_factor'])} "
                f"| {_bps(fees)} | {_bps(funding)} | {measured.max_drawdown[key] * 100:.1f} % |"
            )
    lines += [
        "",
        "All setups, 90 days, by score (trades, hit rate, expectancy in bps):",
        "",
        "| score | " + " | ".join(str(score) for score in range(8)) + " |",
        "|---|" + "---|" * 8,
    ]
    everything = measured.trades[("all", "90d")]
    cells = []
    for score in range(8):
        subset = everything[everything["score"] == score]
        if not len(subset):
            cells.append("–")
            continue
        metrics = trade_metrics(subset)
        cells.append(
            f"{metrics['trades']}, {metrics['hit_rate']:.2f}, {_bps(metrics['expectancy'])}"
        )
    lines.append("| all setups | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| confidence | trades | hit rate | expectancy (bps) |",
        "|---|---|---|---|",
    ]
    for tag in ("high", "medium", "low"):
        subset = everything[everything["confidence"] == tag]
        metrics = trade_metrics(subset)
        lines.append(
            f"| {tag} | {metrics['trades']} | {_number(metrics['hit_rate'])} "
            f"| {_bps(metrics['expectancy'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(tables(measure()))

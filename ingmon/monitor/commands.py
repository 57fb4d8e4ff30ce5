"""The ``ingmon health`` subcommand: build the health snapshot, show it, and save it when it is
the full, current one."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ingmon.arguments import add_data_dir, iso_time, settings_from, symbol_list

if TYPE_CHECKING:
    from ingmon.monitor.status import HealthSnapshot, SeriesStatus

__all__ = ["format_table", "register"]

_GLYPHS = {"ok": "✓", "warn": "!", "error": "✗", "unknown": "?"}


def _age(seconds: float | None) -> str:
    """A duration for people: 42s, 7m05s, 3h12m, 2d04h."""
    if seconds is None:
        return "-"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    whole = int(seconds)
    if whole < 60:
        text = f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    elif whole < 3600:
        text = f"{whole // 60}m{whole % 60:02d}s"
    elif whole < 86400:
        text = f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    else:
        text = f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
    return sign + text


def _cadence(entry: SeriesStatus) -> str:
    cadence = entry.cadence
    if cadence.last_interval_seconds is None:
        return f"{cadence.status} (expect {_age(cadence.expected_seconds)})"
    return (
        f"{_age(cadence.last_interval_seconds)}/{_age(cadence.expected_seconds)}"
        f" open {_age(cadence.open_interval_seconds)}"
    )


def _gaps(entry: SeriesStatus) -> str:
    parts = [f"{entry.gaps} ({entry.missing} missing)" if entry.gaps else "0"]
    if entry.duplicates:
        parts.append(f"{entry.duplicates} dup")
    if entry.corrupt_files:
        parts.append(f"{len(entry.corrupt_files)} damaged")
    return ", ".join(parts)


def format_table(snapshot: HealthSnapshot) -> str:
    """The snapshot for a terminal: a summary line, one row per series (worst first), then the
    signal and backtest lines."""
    from ingmon.times import iso_ms  # noqa: PLC0415

    counts = snapshot.counts()
    summary = ", ".join(f"{counts[s]} {s}" for s in ("error", "warn", "unknown", "ok") if counts[s])
    lines = [
        f"health {_GLYPHS[snapshot.status]} {snapshot.status} at {iso_ms(snapshot.now_ms)} "
        f"(window {snapshot.window_hours:g} h): {len(snapshot.series)} series"
        + (f" — {summary}" if summary else "")
    ]
    header = ("STATUS", "DATASET", "SYMBOL", "AGE", "P95 LATENCY", "CADENCE", "GAPS")
    rows = [
        (
            f"{_GLYPHS[entry.status]} {entry.status}",
            entry.dataset + (f" {entry.param}" if entry.param else ""),
            entry.symbol,
            _age(entry.freshness.age_seconds),
            _age(entry.latency.p95_seconds),
            _cadence(entry),
            _gaps(entry),
        )
        for entry in snapshot.series
    ]
    if rows:
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            lines.append(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
    for entry in snapshot.signals.symbols:
        since = snapshot.signals.since_last_signal_seconds(entry.symbol, snapshot.now_ms)
        lines.append(
            f"signals {entry.symbol}: {entry.window_count} in {snapshot.window_hours:g} h, "
            f"last {_age(since) + ' ago' if since is not None else 'never'}"
        )
    for problem in snapshot.signals.problems:
        lines.append(f"signals {_GLYPHS['error']} {problem.get('message', problem)}")
    for kpi in snapshot.performance:
        if kpi.setup != "all":
            continue
        hit = "-" if kpi.hit_rate is None else f"{kpi.hit_rate:.1%}"
        expectancy = "-" if kpi.expectancy is None else f"{kpi.expectancy:+.3%}"
        drawdown = "-" if kpi.max_drawdown is None else f"{kpi.max_drawdown:.1%}"
        lines.append(
            f"backtest {kpi.symbol} {kpi.run_id}: {kpi.trades} trades, hit {hit}, "
            f"expectancy {expectancy}, max drawdown {drawdown}"
        )
    return "\n".join(lines)


def _cmd_health(args: argparse.Namespace) -> int:
    from ingmon.errors import UsageError  # noqa: PLC0415
    from ingmon.lake import Lake  # noqa: PLC0415
    from ingmon.monitor.health import build_snapshot, write_snapshot  # noqa: PLC0415
    from ingmon.schema import MARKET_SERIES  # noqa: PLC0415
    from ingmon.times import now_ms  # noqa: PLC0415

    settings = settings_from(args, reads_only=True)
    if not settings.lake_dir.is_dir():
        raise UsageError(f"no lake at {str(settings.lake_dir)!r}", field="data_dir")
    lake = Lake(settings.lake_dir)
    symbols: list[str] | None = None
    if args.symbol:
        symbols = []
        for group in args.symbol:
            symbols.extend(s for s in group if s not in symbols)
        stored = {s for series in MARKET_SERIES.values() for s in lake.symbols(series.dataset)}
        unknown = [s for s in symbols if s not in stored]
        if unknown:
            raise UsageError(f"no data of {unknown[0]} in the lake", field="symbols")
    at = args.now if args.now is not None else now_ms()
    snapshot = build_snapshot(lake, settings, symbols=symbols, now_ms=at)
    # Only the full, current snapshot may replace what the worker wrote (the server, the
    # exporter and the alerts read it): a subset of symbols or a past instant is printed only.
    if not (args.no_write or args.symbol or args.now is not None):
        write_snapshot(settings.state_dir, snapshot)
    if args.json:
        json.dump(snapshot.to_dict(), sys.stdout, indent=2 if sys.stdout.isatty() else None)
        sys.stdout.write("\n")
    else:
        print(format_table(snapshot))
    return 1 if snapshot.status == "error" else 0


def register(subparsers: Any) -> None:
    """Add ``health`` to the ``ingmon`` command tree."""
    health = subparsers.add_parser(
        "health",
        help="freshness, latency, cadence and gaps of every feed (exit 1 on an error)",
        description=(
            "Build the health snapshot of the lake: per symbol and market dataset the age of "
            "the newest event, the p95 ingest latency and the delivery cadence of the live "
            "batches, gaps, duplicates and damaged partitions, each ok/warn/error against the "
            "INGMON_* thresholds; plus signal counts and the latest backtest KPIs. Prints a "
            "table, worst first, and writes state/health.json (what the server, the exporter "
            "and the alerts read) — only for the full, current snapshot: with --symbol or "
            "--now (or --no-write) nothing is written. Exit 0 when nothing is in error, 1 "
            "when something is."
        ),
    )
    add_data_dir(health)
    health.add_argument(
        "--symbol",
        action="append",
        type=symbol_list,
        metavar="SYM[,SYM…]",
        help="symbol(s) to judge (repeatable; default: every symbol with candles); "
        "state/health.json is then not written",
    )
    health.add_argument(
        "--now",
        type=iso_time,
        metavar="ISO",
        help="judge at this instant instead of now (ISO-8601 UTC or epoch ms); "
        "state/health.json is then not written",
    )
    health.add_argument(
        "--no-write",
        action="store_true",
        help="do not write state/health.json (it is written only without --symbol and --now)",
    )
    health.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    health.set_defaults(handler=_cmd_health)

"""Subcommands of the ``ingmon`` CLI for Binance data: backfill, check and export."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ingmon.arguments import add_data_dir, iso_time, positive_days, settings_from, symbol_list
from ingmon.schema import INTERVAL_MS, MARKET_SERIES, OI_PERIODS

__all__ = ["register"]

EXIT_PROBLEMS = 1


def _symbols(args: argparse.Namespace) -> tuple[str, ...]:
    flat: list[str] = []
    for group in args.symbol or []:
        flat.extend(s for s in group if s not in flat)
    return tuple(flat)


def _settings(args: argparse.Namespace, *, reads_only: bool = False) -> Any:
    return settings_from(
        args,
        reads_only=reads_only,
        binance_base_url=getattr(args, "base_url", None),
        binance_archive_url=getattr(args, "archive_url", None),
    )


def _print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _cmd_backfill(args: argparse.Namespace) -> int:
    from ingmon.binance.backfill import BackfillRequest, run_backfill  # noqa: PLC0415
    from ingmon.binance.reporting import Reporter  # noqa: PLC0415

    settings = _settings(args)
    datasets = _kept_datasets(args)
    request = BackfillRequest(
        symbols=_symbols(args),
        window_days=args.window_days,
        start_ms=args.start,
        end_ms=args.end,
        full_refresh=args.full_refresh,
        datasets=datasets,
        interval=args.interval,
        oi_period=args.oi_period,
        source=args.source,
        concurrency=args.concurrency,
    )
    summary = run_backfill(
        request, settings=settings, reporter=Reporter(mode=args.log_format or settings.log_format)
    )
    _print_json(summary.to_dict())
    return summary.exit_status


def _cmd_check(args: argparse.Namespace) -> int:
    from ingmon.check import run_check  # noqa: PLC0415

    settings = _settings(args, reads_only=True)
    report = run_check(
        settings,
        symbols=_symbols(args),
        window_days=args.window_days,
        end_ms=args.end,
        interval=args.interval,
        oi_period=args.oi_period,
    )
    _print_json(report.to_dict())
    return EXIT_PROBLEMS if report.problems else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ingmon.export import export_snapshots  # noqa: PLC0415

    settings = _settings(args, reads_only=True)
    written = export_snapshots(
        settings,
        symbols=_symbols(args) or None,
        fmt=args.format,
        interval=args.interval,
        oi_period=args.oi_period,
        window_days=args.window_days,
    )
    _print_json({"format": args.format, "files": [str(p) for p in written]})
    return 0


def _kept_datasets(args: argparse.Namespace) -> tuple[str, ...]:
    """The datasets whose ``--skip-…`` flag was not given, in the canonical order."""
    return tuple(
        name
        for name, series in MARKET_SERIES.items()
        if not getattr(args, _skip_dest(series.skip_flag))
    )


def _skip_dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def _data_flags(parser: argparse.ArgumentParser, *, output_alias: bool = False) -> None:
    flags = ("--data-dir", "--output") if output_alias else ("--data-dir",)
    add_data_dir(parser, flags=flags)


def _symbol_flag(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--symbol",
        action="append",
        type=symbol_list,
        required=required,
        metavar="SYM[,SYM…]",
        help="symbol(s), repeatable or comma-separated"
        + ("" if required else " (default: every stored symbol)"),
    )


def _series_flags(parser: argparse.ArgumentParser) -> None:
    """--interval and --oi-period: which candle and open-interest series a command works on."""
    parser.add_argument(
        "--interval", default="1m", choices=list(INTERVAL_MS), help="kline interval (default 1m)"
    )
    parser.add_argument(
        "--oi-period",
        default="5m",
        choices=list(OI_PERIODS),
        help="open-interest period (default 5m)",
    )


def register(subparsers: Any) -> None:
    """Add ``backfill``, ``check`` and ``export`` to the ``ingmon`` parser."""
    backfill = subparsers.add_parser(
        "backfill",
        help="backfill 1m candles, aggregated trades, open interest and funding into the lake",
        description=(
            "Backfill Binance USD-M history into the lake: REST pages and data.binance.vision "
            "archives, paced to the exchange's weight limits, resumable and idempotent. Logs one "
            "line per batch on stderr (JSON lines unless stderr is a TTY, where progress bars are "
            "shown) and prints a JSON summary (schema ingmon.backfill.summary/v1) on stdout. "
            "Exit 0 when the window is complete apart from exchange maintenance gaps, 1 when "
            "something could not be fetched, 2 on bad input or an unreachable exchange."
        ),
    )
    _symbol_flag(backfill, required=True)
    when = backfill.add_argument_group("window (one of)")
    when.add_argument(
        "--window-days",
        type=positive_days,
        metavar="N",
        help="the last N days up to now (or --end)",
    )
    when.add_argument("--start", type=iso_time, metavar="ISO", help="window start, ISO-8601 UTC")
    when.add_argument(
        "--end",
        type=iso_time,
        metavar="ISO",
        help="window end, ISO-8601 UTC (default: now, by the exchange's clock)",
    )
    mode = backfill.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        dest="full_refresh",
        action="store_false",
        help="continue from what is stored and fill missing ranges (default)",
    )
    mode.add_argument(
        "--full-refresh",
        dest="full_refresh",
        action="store_true",
        help="refetch the whole window and replace what is stored inside it",
    )
    backfill.set_defaults(full_refresh=False)
    skip = backfill.add_argument_group("datasets")
    for series in MARKET_SERIES.values():
        skip.add_argument(
            series.skip_flag,
            action="store_true",
            help=f"do not fetch {series.name.replace('_', ' ')}",
        )
    _series_flags(backfill)
    _data_flags(backfill, output_alias=True)
    backfill.add_argument(
        "--base-url",
        help="REST base URL (default $INGMON_BINANCE_BASE_URL or https://fapi.binance.com)",
    )
    backfill.add_argument(
        "--archive-url",
        help="archive base URL (default "
        "$INGMON_BINANCE_ARCHIVE_URL or https://data.binance.vision)",
    )
    backfill.add_argument(
        "--source",
        default="auto",
        choices=["auto", "rest", "archive"],
        help="auto: archive for published days, REST for the recent tail and "
        "what the archive lacks (default)",
    )
    backfill.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="parallel fetches (default 4; the weight budget is shared)",
    )
    backfill.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        default=None,
        help="stderr format (default $INGMON_LOG_FORMAT or auto)",
    )
    backfill.set_defaults(handler=_cmd_backfill)

    check = subparsers.add_parser(
        "check",
        help="integrity check of the stored data (JSON; exit 1 on problems)",
        description=(
            "Check the lake for each symbol: counts, earliest/latest against the window, gaps "
            "(candles by interval, open interest by period, funding by the symbol's interval, "
            "trades by aggregate-id continuity), duplicates, and candle-vs-trade consistency. "
            "Prints JSON; exit 1 when problems are found, each naming its range and the command "
            "that refetches it."
        ),
    )
    _symbol_flag(check, required=True)
    check.add_argument(
        "--window-days",
        type=positive_days,
        metavar="N",
        help="expect data over the last N days before --end (default: what is stored)",
    )
    check.add_argument(
        "--end", type=iso_time, metavar="ISO", help="end of the expected window (default: now)"
    )
    _series_flags(check)
    _data_flags(check, output_alias=True)
    check.add_argument("--base-url", help=argparse.SUPPRESS)
    check.set_defaults(handler=_cmd_check)

    export = subparsers.add_parser(
        "export",
        help="write the runbook snapshot files (jsonl/csv) under <data root>/binance/",
        description=(
            "Write runbook-compatible snapshots: <data root>/binance/<symbol>_<interval>_candles"
            ".<fmt>, <symbol>_open_interest_<period>.<fmt>, <symbol>_funding.<fmt>, "
            "<symbol>_agg_trades.<fmt>; one JSON object per line (jsonl) with times in epoch ms, "
            "written atomically. With --window-days N the files are named for the window, "
            "<symbol>_<interval>_candles.last-<N>d.<fmt> and so on, and hold the rows of "
            "[now - N days, now): a partial export never replaces a full snapshot."
        ),
    )
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    _symbol_flag(export, required=False)
    _series_flags(export)
    export.add_argument(
        "--window-days",
        type=positive_days,
        metavar="N",
        help="only the last N days, [now - N days, now), written to files named "
        "<name>.last-<N>d.<fmt> beside the full snapshots (default: everything stored)",
    )
    _data_flags(export, output_alias=True)
    export.set_defaults(handler=_cmd_export)

"""The ``ingmon`` command: one subcommand per job, bad input → one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from collections.abc import Callable, Sequence

from ingmon.arguments import (
    EXIT_USAGE,
    CommandParser,
    add_data_dir,
    int_in,
    settings_from,
    symbol_list,
)
from ingmon.errors import IngmonError, UsageError

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

# Request fields named by domain errors, and the flag a user of this command typed for each.
_FLAG_OF_FIELD = {
    "symbols": "--symbol",
    "window_days": "--window-days",
    "start_ms": "--start",
    "end_ms": "--end",
    "interval": "--interval",
    "oi_period": "--oi-period",
    "datasets": "--skip-*",
    "concurrency": "--concurrency",
    "klines_page_limit": "--klines-page-limit",
    "base_url": "--base-url",
    "archive_url": "--archive-url",
    "data_dir": "--data-dir",
}
_FIELD_NAMES = re.compile(r"\b(" + "|".join(_FLAG_OF_FIELD) + r")\b")


def in_flags(error: IngmonError) -> str:
    """The error's message with the request fields it names said as this CLI's flags."""
    message = str(error)
    if isinstance(error, UsageError) and error.field is not None:
        message = _FIELD_NAMES.sub(lambda m: _FLAG_OF_FIELD[m.group(1)], message)
    return message


def _cmd_coverage(args: argparse.Namespace) -> int:
    from ingmon.coverage import coverage_report  # noqa: PLC0415 - keep --help fast

    settings = settings_from(args, reads_only=True)
    report = coverage_report(
        settings,
        symbols=args.symbol or None,
        datasets=args.dataset or None,
    )
    print(json.dumps(report.to_dict(), indent=2))
    for coverage in report.series:
        for damaged in coverage.corrupt:  # the series was not read: say so where logs go
            print(f"ingmon coverage: damaged partition: {damaged}", file=sys.stderr)
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    shown = settings.model_dump(mode="json")
    for name in ("webhook_secret", "basic_auth", "cookie_secret", "metrics_token"):
        if shown.get(name):
            shown[name] = "***"
    # A webhook URL's path is often its credential (Slack, Teams): show where it goes only.
    shown["webhook_urls"] = [_origin_only(url) for url in shown.get("webhook_urls", [])]
    print(json.dumps(shown, indent=2))
    return 0


def _origin_only(url: str) -> str:
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/***"


def _cmd_demo(args: argparse.Namespace) -> int:
    from ingmon.demo import DEMO_SYMBOLS, run_demo  # noqa: PLC0415

    return run_demo(
        settings_from(args),
        days=args.days,
        seed=args.seed,
        symbols=args.symbols or DEMO_SYMBOLS,
        fresh=args.fresh,
        serve=args.serve,
        serve_port=args.port,
    )


def build_parser() -> argparse.ArgumentParser:
    """The full command tree (each subcommand has its own --help)."""
    parser = CommandParser(
        prog="ingmon",
        description="Analytics workbench for Binance USDT-margined futures data pipelines.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    sub.required = True

    coverage = sub.add_parser(
        "coverage",
        help="rows, earliest/latest and gaps per dataset and symbol in the lake (JSON)",
        description="Coverage of the lake: rows, earliest, latest and gaps against each "
        "dataset's cadence, as JSON on stdout.",
    )
    add_data_dir(coverage)
    coverage.add_argument("--symbol", action="append", help="symbol (repeatable; default: all)")
    coverage.add_argument("--dataset", action="append", help="dataset (repeatable; default: all)")
    coverage.set_defaults(handler=_cmd_coverage)

    config = sub.add_parser(
        "config",
        help="print the effective settings (secrets masked)",
        description="Print the effective settings from INGMON_* variables and .env as JSON.",
    )
    add_data_dir(config)
    config.set_defaults(handler=_cmd_config)

    demo = sub.add_parser(
        "demo",
        help="run the demo end to end on a local exchange",
        description="Start the local exchange, backfill it into the lake, check and export. "
        "The data root remembers its market (ingmon-demo.json): a rerun continues it, another "
        "--seed is refused (exit 2) unless --fresh is given.",
    )
    add_data_dir(demo)
    demo.add_argument("--days", type=int, default=14, help="days of history (default 14)")
    demo.add_argument("--seed", type=int, default=7, help="market seed (default 7)")
    demo.add_argument(
        "--symbols",
        type=symbol_list,
        metavar="SYM[,SYM…]",
        help="comma-separated symbols (default BTCUSDT,ETHUSDT,SOLUSDT)",
    )
    demo.add_argument(
        "--fresh",
        action="store_true",
        help="first delete the lake and snapshots of this demo data root (only a root the "
        "demo wrote, marked by ingmon-demo.json)",
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then keep the exchange live and run `ingmon worker` and `ingmon serve` beside it "
        "(logs in DATA_DIR/logs/) until Ctrl-C or SIGTERM stops all three (make demo does this)",
    )
    demo.add_argument(
        "--port",
        type=int_in(1, 65535, name="port"),
        help="with --serve: the dashboard's port (default: INGMON_SERVER_PORT or 8080)",
    )
    demo.set_defaults(handler=_cmd_demo)

    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


# Modules that add subcommands through ``register(subparsers)``; they import heavy things lazily.
_COMMAND_MODULES = (
    "ingmon.exchange.commands",
    "ingmon.binance.commands",
    "ingmon.signals.commands",
    "ingmon.backtest.commands",
    "ingmon.reports.commands",
    "ingmon.monitor.commands",
    "ingmon.monitor.alert_commands",
    "ingmon.serving",
    "ingmon.worker",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except IngmonError as error:
        print(f"ingmon {args.command}: error: {in_flags(error)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        # The machine said no (read-only file system, disk full, permissions): one line.
        where = f": {error.filename}" if error.filename else ""
        print(f"ingmon {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"ingmon {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

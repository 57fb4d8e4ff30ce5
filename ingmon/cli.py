"""The ``ingmon`` command: one subcommand per job, bad input → one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ingmon.config import Settings, load_settings
from ingmon.errors import IngmonError

__all__ = ["CommandParser", "add_data_dir", "main", "settings_from"]

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


class CommandParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def add_data_dir(
    parser: argparse.ArgumentParser, *, flags: Sequence[str] = ("--data-dir",)
) -> None:
    """The data-root flag every data command takes (default: INGMON_DATA_DIR or ./data)."""
    parser.add_argument(
        *flags,
        dest="data_dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="data root holding lake/ (default: $INGMON_DATA_DIR or ./data)",
    )


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from env/.env with the command's flags applied on top."""
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def _cmd_coverage(args: argparse.Namespace) -> int:
    from ingmon.coverage import coverage_report  # noqa: PLC0415 - keep --help fast

    settings = settings_from(args)
    report = coverage_report(
        settings,
        symbols=args.symbol or None,
        datasets=args.dataset or None,
    )
    print(json.dumps(report, indent=2))
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    shown = settings.model_dump(mode="json")
    for name in ("webhook_secret", "basic_auth", "cookie_secret"):
        if shown.get(name):
            shown[name] = "***"
    print(json.dumps(shown, indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ingmon.demo import run_demo  # noqa: PLC0415

    return run_demo(settings_from(args), days=args.days, seed=args.seed)


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
        description="Start the local exchange, backfill it into the lake and print coverage.",
    )
    add_data_dir(demo)
    demo.add_argument("--days", type=int, default=14, help="days of history (default 14)")
    demo.add_argument("--seed", type=int, default=7, help="market seed (default 7)")
    demo.set_defaults(handler=_cmd_demo)

    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


# Modules that add subcommands through ``register(subparsers)``; they import heavy things lazily.
_COMMAND_MODULES = ("ingmon.exchange.commands", "ingmon.binance.commands")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except IngmonError as error:
        print(f"ingmon {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"ingmon {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``ingmon backtest`` subcommand."""

from __future__ import annotations

import argparse
from typing import Any

from ingmon.errors import UsageError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``backtest`` to the ``ingmon`` command tree."""
    backtest = subparsers.add_parser(
        "backtest",
        help="backtest signals on 1m candles (lake or files)",
        description="Backtest signals on 1m candles.",
    )
    backtest.set_defaults(handler=_cmd_backtest)


def _cmd_backtest(args: argparse.Namespace) -> int:
    raise UsageError("ingmon backtest is not available yet")

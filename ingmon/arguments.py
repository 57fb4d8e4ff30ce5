"""The argument types and shared flags of every ``ingmon`` command (one set, one set of rules).

Command modules (``ingmon.binance.commands``, ``ingmon.exchange.commands``) build their
subcommands from these; ``ingmon.cli`` assembles them. Nothing here imports a command module,
and no domain module imports this one.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from ingmon.binance.request import MAX_WINDOW_DAYS
from ingmon.config import Settings, load_settings
from ingmon.errors import IngmonError, UsageError

__all__ = [
    "EXIT_USAGE",
    "MAX_WINDOW_DAYS",
    "CommandParser",
    "add_data_dir",
    "checked",
    "int_in",
    "iso_time",
    "non_negative_float",
    "non_negative_int",
    "positive_days",
    "positive_float",
    "positive_int",
    "settings_from",
    "symbol_list",
]

EXIT_USAGE = 2
T = TypeVar("T")


class CommandParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse ``type=`` from a parser: its ValueError (or ingmon error) becomes argparse's
    one-line usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except (ValueError, IngmonError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = parse.__name__.lstrip("_")
    return convert


@checked
def iso_time(text: str) -> int:
    """An ISO-8601 UTC time or date (``2026-10-01``, ``2026-10-01T12:00:00Z``) or epoch ms."""
    from ingmon.times import parse_instant_ms  # noqa: PLC0415 - keep --help fast

    return parse_instant_ms(text)


# A USDⓈ-M perpetual: base asset letters/digits, then the quote asset.
_PERPETUAL = re.compile(r"^[A-Z0-9]{1,20}(USDT|USDC)$")


@checked
def symbol_list(text: str) -> list[str]:
    """A symbol or a comma-separated list of USDⓈ-M perpetual symbols (``BTCUSDT``), in any
    case (upper-cased), repeats dropped."""
    symbols: list[str] = []
    for part in text.split(","):
        symbol = part.strip().upper()
        if not symbol:
            continue
        if not _PERPETUAL.match(symbol):
            raise ValueError(f"invalid symbol {symbol!r}: expected a perpetual like BTCUSDT")
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        raise ValueError("empty symbol list")
    return symbols


def _number(text: str, kind: type[int] | type[float], *, minimum: float, strict: bool) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    if value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{text} must be {bound}")
    return value


@checked
def positive_int(text: str) -> int:
    """An integer > 0."""
    value: int = _number(text, int, minimum=0, strict=True)
    return value


@checked
def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value: int = _number(text, int, minimum=0, strict=False)
    return value


@checked
def positive_float(text: str) -> float:
    """A number > 0."""
    value: float = _number(text, float, minimum=0, strict=True)
    return value


@checked
def non_negative_float(text: str) -> float:
    """A number >= 0."""
    value: float = _number(text, float, minimum=0, strict=False)
    return value


def int_in(low: int, high: int, *, name: str) -> Callable[[str], int]:
    """An integer type within ``low..high`` (a port, a compression level, …)."""

    @checked
    def in_range(text: str) -> int:
        value: int = _number(text, int, minimum=low, strict=False)
        if value > high:
            raise ValueError(f"{name} {text} is out of range {low}..{high}")
        return value

    in_range.__name__ = name.replace(" ", "_")
    return in_range


@checked
def positive_days(text: str) -> float:
    """A number of days > 0 (fractions allowed)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"invalid number of days {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"must be > 0, got {text}")
    if value > MAX_WINDOW_DAYS:
        raise ValueError(f"must be at most {MAX_WINDOW_DAYS} (a century), got {text}")
    return value


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


def settings_from(
    args: argparse.Namespace, *, reads_only: bool = False, **overrides: Any
) -> Settings:
    """Settings from env/.env with the command's flags applied on top.

    The data root must be a directory; a command that only reads (``reads_only``) also needs
    it to exist, so that a mistyped root is an error rather than an empty report.
    """
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    root = settings.data_dir
    if root.exists() and not root.is_dir():
        raise UsageError(f"data_dir {str(root)!r} is not a directory", field="data_dir")
    if reads_only and not root.exists():
        raise UsageError(f"data_dir {str(root)!r} does not exist", field="data_dir")
    return settings

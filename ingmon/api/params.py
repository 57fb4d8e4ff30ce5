"""The query parameters of the API: how each is parsed, validated (400 naming it) and documented.

A :class:`Param` parses the text of one query argument (``ValueError`` → 400 naming it) and
describes itself for the OpenAPI document; each route's tuple of them is defined here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ingmon.monitor.health import STATUSES
from ingmon.schema import MARKET_SERIES, SIGNAL_TIMEFRAMES
from ingmon.signals.setups import SETUPS
from ingmon.times import iso_ms, parse_instant_ms

__all__ = [
    "BACKTESTS_PARAMETERS",
    "BACKTEST_PARAMETERS",
    "FRESHNESS_PARAMETERS",
    "SIGNALS_PARAMETERS",
    "Param",
]

_PERPETUAL = re.compile(r"^[A-Z0-9]{1,20}(USDT|USDC)$")
# An integer as a client writes one: ASCII digits, maybe a sign — not Python's wider int()
# syntax (underscores, other scripts' digits).
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Epoch milliseconds below this (1973-03-03) are not a time anyone asks signals of; with 9 or
# 10 digits they are epoch seconds given by mistake.
_FIRST_MS = 10**11


@dataclass(frozen=True)
class Param:
    """One query parameter: how it is parsed (ValueError → 400 naming it) and documented."""

    name: str
    description: str
    schema: Mapping[str, Any]
    example: str
    parse: Callable[[str], Any]
    default: Any = None

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "description": self.description,
            "schema": dict(self.schema),
            "example": self.example,
        }


def _integer(text: str, *, minimum: int, maximum: int) -> int:
    if not _INTEGER.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not an integer (ASCII digits, no separators)")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ValueError(f"{value} is out of range {minimum}..{maximum}")
    return value


def _integer_param(
    name: str, description: str, *, minimum: int, maximum: int, default: int | None, example: str
) -> Param:
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum, "maximum": maximum}
    if default is not None:
        schema["default"] = default
    return Param(
        name,
        description,
        schema,
        example,
        partial(_integer, minimum=minimum, maximum=maximum),
        default,
    )


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"{text!r} is not a boolean: expected true or false")


def _boolean_param(name: str, description: str) -> Param:
    return Param(
        name, description, {"type": "boolean", "default": False}, "true", _boolean, default=False
    )


_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _time(text: str) -> int:
    stripped = text.strip()
    if stripped.isdigit() and not stripped.isascii():
        raise ValueError(f"{text!r}: epoch milliseconds are written in ASCII digits")
    value = parse_instant_ms(text)
    if not 0 <= value <= _LAST_MS:
        raise ValueError(f"{text!r} is outside 1970-01-01 .. 9999-12-31")
    if stripped.isdigit() and 0 < value < _FIRST_MS:
        as_ms = iso_ms(value)
        if len(stripped) in (9, 10):
            raise ValueError(
                f"{stripped} looks like epoch seconds (as milliseconds it is {as_ms}): "
                f"epoch milliseconds are expected, {value * 1000} for {iso_ms(value * 1000)}"
            )
        raise ValueError(
            f"{stripped} as epoch milliseconds is {as_ms}: give epoch milliseconds "
            "(13 digits) or an ISO-8601 time like 2026-10-01"
        )
    return value


def _time_param(name: str, description: str, example: str) -> Param:
    schema = {
        "type": "string",
        "description": "epoch milliseconds or ISO-8601 (2026-10-01, 2026-10-01T12:00:00Z)",
    }
    return Param(name, description, schema, example, _time)


def _choices(text: str, *, choices: Sequence[str], what: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [part for part in chosen if part not in choices]
    if unknown or not chosen:
        raise ValueError(
            f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)}: expected "
            f"{', '.join(choices)} (comma-separated)"
        )
    return chosen


def _choice_param(
    name: str, description: str, choices: Sequence[str], *, example: str, what: str
) -> Param:
    schema = {
        "type": "string",
        "description": f"one or more (comma-separated) of: {', '.join(choices)}",
    }
    return Param(name, description, schema, example, partial(_choices, choices=choices, what=what))


def _one_choice(text: str, *, choices: Sequence[str], what: str) -> str:
    if text not in choices:
        raise ValueError(f"unknown {what} {text!r}: expected one of {', '.join(choices)}")
    return text


def _symbols(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip().upper() for part in text.split(",") if part.strip()))
    for symbol in chosen:
        if not _PERPETUAL.match(symbol):
            raise ValueError(f"invalid symbol {symbol!r}: expected a perpetual like BTCUSDT")
    if not chosen:
        raise ValueError("empty symbol list")
    return chosen


_SYMBOL = Param(
    "symbol",
    "Only these symbols (comma-separated USDⓈ-M perpetuals, any case).",
    {"type": "string", "pattern": "^[A-Za-z0-9,]+$"},
    "BTCUSDT",
    _symbols,
)
_LIMIT_SIGNALS = _integer_param(
    "limit", "Page size.", minimum=1, maximum=1000, default=100, example="50"
)
_LIMIT_RUNS = _integer_param(
    "limit", "Page size.", minimum=1, maximum=200, default=20, example="10"
)
_OFFSET = _integer_param(
    "offset",
    "How many matching items to skip (the `next_offset` of the previous page).",
    minimum=0,
    maximum=10**9,
    default=0,
    example="0",
)


FRESHNESS_PARAMETERS = (
    _SYMBOL,
    _choice_param(
        "dataset",
        "Only these datasets.",
        tuple(MARKET_SERIES),
        example="candles",
        what="dataset",
    ),
    _choice_param(
        "status",
        "Only series whose freshness has one of these statuses.",
        tuple(reversed(STATUSES)),
        example="warn,error",
        what="status",
    ),
)
SIGNALS_PARAMETERS = (
    _SYMBOL,
    _choice_param("setup", "Only these setups.", SETUPS, example="absorption", what="setup"),
    _integer_param(
        "min_score",
        "Only signals scored at least this (0–7) under the current rules version.",
        minimum=0,
        maximum=7,
        default=None,
        example="4",
    ),
    _time_param("since", "Only signal bars opened at or after this time.", "2026-01-01"),
    _time_param("until", "Only signal bars opened before this time.", "2030-01-01T00:00:00Z"),
    Param(
        "timeframe",
        "The signal timeframe.",
        {"type": "string", "enum": list(SIGNAL_TIMEFRAMES), "default": "15m"},
        "15m",
        partial(_one_choice, choices=SIGNAL_TIMEFRAMES, what="timeframe"),
        default="15m",
    ),
    _LIMIT_SIGNALS,
    _OFFSET,
    _boolean_param("audit", "Include each signal's audit record (the 0–7 rubric's detail)."),
)
BACKTESTS_PARAMETERS = (_SYMBOL, _LIMIT_RUNS, _OFFSET)
BACKTEST_PARAMETERS = (_boolean_param("trades", "Include the run's trades."),)

"""Time conversion: epoch milliseconds ⇄ datetime ⇄ ISO-8601, in integer arithmetic only.

Every time inside ingmon is an ``int`` of epoch milliseconds (UTC) until it reaches the edge:
Arrow timestamps in the lake, ISO strings in JSON and logs, ``datetime`` for the calendar. No
float seconds are involved anywhere, so a round trip is exact to the millisecond.
"""

from __future__ import annotations

import operator
import time
from datetime import UTC, date, datetime, timedelta

__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "SECOND_MS",
    "TimeLike",
    "ceil_ms",
    "day_of",
    "day_start_ms",
    "floor_ms",
    "from_ms",
    "iso_ms",
    "iso_now",
    "month_start_ms",
    "next_month",
    "now_ms",
    "parse_instant_ms",
    "to_ms",
]

TimeLike = datetime | date | int | str

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(value: TimeLike) -> int:
    """A time as epoch milliseconds: ``datetime`` (naive = UTC), ``date`` (its 00:00 UTC),
    ISO-8601 string (``2026-10-01``, ``2026-10-01T12:00:00Z``) or int ms.

    Exact: sub-millisecond parts are floored. ValueError for an unparsable string, TypeError
    for anything that is not a time (a bool included).
    """
    if isinstance(value, bool):
        raise TypeError("a bool is not a time")
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // _ONE_MS
    if isinstance(value, date):
        return (value - _EPOCH.date()).days * DAY_MS
    return operator.index(value)  # int and numpy integers; TypeError for anything else


def parse_instant_ms(text: str) -> int:
    """Epoch milliseconds from ``1718000000000`` or any ISO-8601 form ``to_ms`` accepts.

    ValueError naming the expected forms for anything else.
    """
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    try:
        return to_ms(stripped)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: expected epoch ms or ISO-8601 like 2026-10-01 "
            "or 2026-10-01T12:00:00Z"
        ) from None


def from_ms(value_ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC ``datetime``."""
    return _EPOCH + value_ms * _ONE_MS


def iso_ms(value_ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds (``2026-11-27T06:00:00.000Z``)."""
    if value_ms is None:
        return None
    return from_ms(value_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def iso_now() -> str:
    """The wall clock as ISO-8601 UTC with milliseconds."""
    iso = iso_ms(now_ms())
    assert iso is not None
    return iso


def floor_ms(value_ms: int, step_ms: int) -> int:
    """The last multiple of ``step_ms`` at or before ``value_ms``."""
    return value_ms // step_ms * step_ms


def ceil_ms(value_ms: int, step_ms: int) -> int:
    """The first multiple of ``step_ms`` at or after ``value_ms``."""
    return -(-value_ms // step_ms) * step_ms


def day_of(value_ms: int) -> date:
    """The UTC calendar day holding ``value_ms``."""
    return date.fromordinal(_EPOCH.date().toordinal() + value_ms // DAY_MS)


def day_start_ms(day: date) -> int:
    """00:00 UTC of ``day`` in epoch milliseconds."""
    return (day - _EPOCH.date()).days * DAY_MS


def month_start_ms(day: date) -> int:
    """00:00 UTC of the first day of ``day``'s month."""
    return day_start_ms(day.replace(day=1))


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)

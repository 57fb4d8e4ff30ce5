"""The one exception hierarchy of ingmon; the CLI turns any of these into one line and exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingmon.lake import CorruptPartition

__all__ = [
    "BannedError",
    "ConfigError",
    "CorruptPartitionError",
    "DataIntegrityError",
    "ExchangeError",
    "ExchangeUnavailableError",
    "IngmonError",
    "RateLimitedError",
    "UsageError",
]


class IngmonError(Exception):
    """Base class of every error ingmon raises on purpose."""


class ConfigError(IngmonError):
    """A setting has an invalid value; the message names the setting and the expected form."""


class UsageError(IngmonError):
    """A request that cannot work (bad symbol, empty window, …).

    ``field`` names the request field at fault, and the message starts with that name
    (``window_days must be > 0``): the CLI, the API and the worker each say it their own way
    (the CLI maps it to its flag, ``--window-days must be > 0``).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DataIntegrityError(IngmonError):
    """Stored or fetched data violates an invariant of its dataset (schema, key, window)."""


class CorruptPartitionError(DataIntegrityError):
    """A partition's current version file cannot be read (truncated, garbage, empty, missing).

    ``partition`` is the :class:`ingmon.lake.CorruptPartition` record, the argument of
    ``Lake.quarantine``; its fields are repeated here. ``start_ms``/``end_ms`` are the
    partition's whole time bucket, both inclusive (``replace_range=(start_ms, end_ms)`` of an
    upsert rewrites exactly that partition). The message is one line naming the file and what
    is wrong with it.
    """

    def __init__(self, partition: CorruptPartition) -> None:
        super().__init__(partition.message)
        self.partition = partition
        self.dataset: str = partition.dataset
        self.symbol: str = partition.symbol
        self.param: str | None = partition.param
        self.directory: Path = partition.directory
        self.version: Path = partition.version
        self.start_ms: int = partition.start_ms
        self.end_ms: int = partition.end_ms
        self.reason: str = partition.reason

    def __reduce__(self) -> tuple[type[CorruptPartitionError], tuple[CorruptPartition]]:
        # The default would call cls(message): keep the record across pickling (process pools).
        return type(self), (self.partition,)


class ExchangeError(IngmonError):
    """The exchange answered with an error body (Binance ``{"code": …, "msg": …}``) or bad data."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RateLimitedError(ExchangeError):
    """HTTP 429: the request-weight budget is spent; ``retry_after_seconds`` says for how long."""

    def __init__(
        self, message: str, *, retry_after_seconds: float, code: int | None = -1003
    ) -> None:
        super().__init__(message, status=429, code=code)
        self.retry_after_seconds = retry_after_seconds


class BannedError(ExchangeError):
    """HTTP 418: the IP is banned until ``banned_until_ms``; nothing may be sent before then."""

    def __init__(self, message: str, *, retry_after_seconds: float, banned_until_ms: int) -> None:
        super().__init__(message, status=418, code=-1003)
        self.retry_after_seconds = retry_after_seconds
        self.banned_until_ms = banned_until_ms


class ExchangeUnavailableError(ExchangeError):
    """The exchange could not be reached or kept failing (5xx, timeouts) after every retry."""

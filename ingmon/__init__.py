"""ingmon: an analytics workbench for Binance USDT-margined futures data pipelines."""

from __future__ import annotations

from ingmon.config import Settings, load_settings
from ingmon.errors import (
    BannedError,
    ConfigError,
    CorruptPartitionError,
    DataIntegrityError,
    ExchangeError,
    ExchangeUnavailableError,
    IngmonError,
    RateLimitedError,
    UsageError,
)
from ingmon.lake import CorruptPartition, Lake, UpsertResult

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 - sorted by str.casefold, as httpx; pinned by a test
    "__version__",
    "BannedError",
    "ConfigError",
    "CorruptPartition",
    "CorruptPartitionError",
    "DataIntegrityError",
    "ExchangeError",
    "ExchangeUnavailableError",
    "IngmonError",
    "Lake",
    "load_settings",
    "RateLimitedError",
    "Settings",
    "UpsertResult",
    "UsageError",
]

"""ingmon: an analytics workbench for Binance USDT-margined futures data pipelines."""

from __future__ import annotations

from ingmon.config import Settings, load_settings
from ingmon.errors import (
    BannedError,
    ConfigError,
    DataIntegrityError,
    ExchangeError,
    ExchangeUnavailableError,
    IngmonError,
    RateLimitedError,
    UsageError,
)
from ingmon.lake import Lake, UpsertResult

__version__ = "0.1.0"

__all__ = [
    "BannedError",
    "ConfigError",
    "DataIntegrityError",
    "ExchangeError",
    "ExchangeUnavailableError",
    "IngmonError",
    "Lake",
    "RateLimitedError",
    "Settings",
    "UpsertResult",
    "UsageError",
    "load_settings",
]

"""What a backfill is asked to do, validated before anything is fetched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ingmon.errors import UsageError
from ingmon.schema import INTERVAL_MS, MARKET_SERIES, OI_PERIODS, MarketSeries
from ingmon.times import iso_ms

__all__ = ["DATASET_ORDER", "MAX_WINDOW_DAYS", "BackfillRequest", "Source", "check_symbol"]

Source = Literal["auto", "rest", "archive"]
DATASET_ORDER = tuple(MARKET_SERIES)
# A century: a longer window is a typo (and would run past the calendar).
MAX_WINDOW_DAYS = 36_500


def check_symbol(symbol: str) -> str:
    """A Binance symbol: upper-case letters and digits (``BTCUSDT``); UsageError otherwise."""
    if not symbol or not symbol.isalnum() or not symbol.isascii() or symbol.upper() != symbol:
        raise UsageError(
            f"invalid symbol {symbol!r}: expected upper-case letters/digits like BTCUSDT",
            field="symbols",
        )
    return symbol


@dataclass(frozen=True)
class BackfillRequest:
    """What to backfill: symbols, window, datasets, mode and source."""

    symbols: tuple[str, ...]
    window_days: float | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    full_refresh: bool = False
    datasets: tuple[str, ...] = DATASET_ORDER
    interval: str = "1m"
    oi_period: str = "5m"
    source: Source = "auto"
    concurrency: int = 4
    klines_page_limit: int = 499

    def validate(self) -> None:
        """UsageError naming the field at fault, before anything is fetched."""
        if not self.symbols:
            raise UsageError("no symbols given", field="symbols")
        for symbol in self.symbols:
            check_symbol(symbol)
        self._validate_window()
        if self.interval not in INTERVAL_MS:
            raise UsageError(
                f"invalid interval {self.interval!r}: expected one of {', '.join(INTERVAL_MS)}",
                field="interval",
            )
        if self.oi_period not in OI_PERIODS:
            raise UsageError(
                f"invalid oi_period {self.oi_period!r}: expected one of {', '.join(OI_PERIODS)}",
                field="oi_period",
            )
        unknown = [d for d in self.datasets if d not in MARKET_SERIES]
        if unknown:
            raise UsageError(f"unknown datasets {', '.join(unknown)}", field="datasets")
        if not self.datasets:
            raise UsageError("every dataset is skipped: nothing to do", field="datasets")
        if self.concurrency < 1:
            raise UsageError("concurrency must be >= 1", field="concurrency")
        if not 1 <= self.klines_page_limit <= 1500:
            raise UsageError("klines_page_limit must be within 1..1500", field="klines_page_limit")

    def _validate_window(self) -> None:
        if self.window_days is not None and not 0 < self.window_days <= MAX_WINDOW_DAYS:
            raise UsageError(
                f"window_days must be > 0 and at most {MAX_WINDOW_DAYS}, got {self.window_days:g}",
                field="window_days",
            )
        if self.window_days is not None and self.start_ms is not None:
            raise UsageError(
                "give either window_days or start_ms/end_ms, not both", field="window_days"
            )
        if self.start_ms is not None and self.end_ms is not None and self.end_ms <= self.start_ms:
            raise UsageError(
                f"end_ms ({iso_ms(self.end_ms)}) is not after start_ms ({iso_ms(self.start_ms)})",
                field="end_ms",
            )
        if self.window_days is None and self.start_ms is None:
            raise UsageError(
                "give window_days or start_ms (and optionally end_ms)", field="window_days"
            )

    def param(self, dataset: str) -> str | None:
        """The series parameter of a dataset in this request (interval, OI period or None)."""
        return {"candles": self.interval, "open_interest": self.oi_period}.get(dataset)

    @property
    def series(self) -> tuple[MarketSeries, ...]:
        """The requested datasets' specs, in the canonical order."""
        return tuple(MARKET_SERIES[name] for name in self.datasets)

"""What a backfill is asked to do, validated before anything is fetched."""

from __future__ import annotations

from dataclasses import dataclass

from ingmon.binance.plan import Source
from ingmon.coverage import iso_ms
from ingmon.errors import UsageError
from ingmon.schema import (
    AGG_TRADES,
    CANDLES,
    FUNDING,
    INTERVAL_MS,
    OI_PERIODS,
    OPEN_INTEREST,
    Dataset,
)

__all__ = ["DATASETS", "DATASET_ORDER", "SKIP_FLAGS", "BackfillRequest", "refetch_command"]

SKIP_FLAGS = {
    "candles": "--skip-candles",
    "agg_trades": "--skip-trades",
    "open_interest": "--skip-open-interest",
    "funding": "--skip-funding",
}
DATASET_ORDER = ("candles", "agg_trades", "open_interest", "funding")
DATASETS: dict[str, Dataset] = {
    "candles": CANDLES,
    "agg_trades": AGG_TRADES,
    "open_interest": OPEN_INTEREST,
    "funding": FUNDING,
}


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
        """UsageError (exit 2) for a request that cannot work, before anything is fetched."""
        if not self.symbols:
            raise UsageError("no --symbol given")
        for symbol in self.symbols:
            if not symbol.isalnum() or symbol.upper() != symbol:
                raise UsageError(
                    f"invalid symbol {symbol!r}: expected upper-case letters/digits like BTCUSDT"
                )
        if self.window_days is not None and self.window_days <= 0:
            raise UsageError(f"--window-days must be > 0, got {self.window_days:g}")
        if self.window_days is not None and self.start_ms is not None:
            raise UsageError("give either --window-days or --start/--end, not both")
        if self.start_ms is not None and self.end_ms is not None and self.end_ms <= self.start_ms:
            raise UsageError(
                f"--end ({iso_ms(self.end_ms)}) is not after --start ({iso_ms(self.start_ms)})"
            )
        if self.window_days is None and self.start_ms is None:
            raise UsageError("give --window-days N or --start (and optionally --end)")
        if self.interval not in INTERVAL_MS:
            raise UsageError(
                f"invalid --interval {self.interval!r}: expected one of {', '.join(INTERVAL_MS)}"
            )
        if self.oi_period not in OI_PERIODS:
            raise UsageError(
                f"invalid --oi-period {self.oi_period!r}: expected one of {', '.join(OI_PERIODS)}"
            )
        unknown = [d for d in self.datasets if d not in DATASETS]
        if unknown:
            raise UsageError(f"unknown datasets {', '.join(unknown)}")
        if not self.datasets:
            raise UsageError("every dataset is skipped: nothing to do")
        if self.concurrency < 1:
            raise UsageError("--concurrency must be >= 1")
        if not 1 <= self.klines_page_limit <= 1500:
            raise UsageError("--klines-page-limit must be within 1..1500")

    def param(self, dataset: str) -> str | None:
        return {"candles": self.interval, "open_interest": self.oi_period}.get(dataset)


def refetch_command(
    *,
    dataset: str,
    symbol: str,
    start_ms: int,
    end_ms: int,
    request: BackfillRequest | None,
    base_url: str | None,
) -> str:
    """The backfill command that refetches exactly one range of one dataset."""
    skips = " ".join(SKIP_FLAGS[d] for d in DATASET_ORDER if d != dataset)
    start = iso_ms(start_ms)
    end = iso_ms(end_ms + 1)
    parts = [f"ingmon backfill --symbol {symbol} --start {start} --end {end} {skips}"]
    if request is not None:
        if dataset == "candles" and request.interval != "1m":
            parts.append(f"--interval {request.interval}")
        if dataset == "open_interest" and request.oi_period != "5m":
            parts.append(f"--oi-period {request.oi_period}")
    if base_url:
        parts.append(f"--base-url {base_url}")
    return " ".join(parts)

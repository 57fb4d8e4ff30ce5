"""The data.binance.vision side: lazily built, byte-stable zip files with CHECKSUM siblings."""

from __future__ import annotations

import calendar
import hashlib
import io
import re
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from ingmon.errors import ConfigError
from ingmon.exchange.clock import Clock
from ingmon.exchange.formats import (
    ARCHIVE_DAILY_INTERVALS,
    ARCHIVE_MONTHLY_INTERVALS,
    DAY_MS,
    HOUR_MS,
    KLINE_INTERVAL_MS,
    fixed_from_float,
    market_klines,
    slice_columns,
)
from ingmon.exchange.market import AggTrades, Market, SymbolSpec, format_fixed
from ingmon.exchange.render import agg_trades_csv, klines_csv

__all__ = ["ArchiveFile", "ArchiveOptions", "ArchiveStore", "archive_path"]

PREFIX = "/data/futures/um/"

KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
AGG_TRADES_HEADER = (
    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
)
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,"
    "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,"
    "sum_taker_long_short_vol_ratio"
)
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"

# Binance's daily metrics files switched their create_time labels at 2026-06-25 00:00 UTC
# (binance-public-data#491): files dated before label each 5-minute period by its end
# (00:05:00 … 00:00:00 the next day), files dated from this day on by its start (00:00:00 …
# 23:55:00), so the 00:00 label of 2026-06-25 sits in two consecutive files.
METRICS_START_LABELS_FROM_MS = 1_782_345_600_000  # 2026-06-25 00:00 UTC
METRICS_PERIOD_MS = 5 * 60_000

_DATE = r"(?P<date>\d{4}-\d{2}(?:-\d{2})?)"
_PATTERNS = {
    "klines": re.compile(
        r"^(?P<period>daily|monthly)/klines/(?P<symbol>[A-Z0-9]+)/(?P<interval>[0-9a-z]+)/"
        rf"(?P=symbol)-(?P=interval)-{_DATE}\.zip(?P<checksum>\.CHECKSUM)?$"
    ),
    "aggTrades": re.compile(
        r"^(?P<period>daily|monthly)/aggTrades/(?P<symbol>[A-Z0-9]+)/"
        rf"(?P=symbol)-aggTrades-{_DATE}\.zip(?P<checksum>\.CHECKSUM)?$"
    ),
    "metrics": re.compile(
        r"^(?P<period>daily)/metrics/(?P<symbol>[A-Z0-9]+)/"
        rf"(?P=symbol)-metrics-{_DATE}\.zip(?P<checksum>\.CHECKSUM)?$"
    ),
    "fundingRate": re.compile(
        r"^(?P<period>monthly)/fundingRate/(?P<symbol>[A-Z0-9]+)/"
        rf"(?P=symbol)-fundingRate-{_DATE}\.zip(?P<checksum>\.CHECKSUM)?$"
    ),
}


@dataclass(frozen=True)
class ArchiveOptions:
    """How the archive publishes: delays after the period end, header cut-over, ordering, cache.

    ``header_from_ms``: klines/aggTrades files for periods starting at or after this instant
    have a header row, older ones none (None: the middle of the market's history at start-up).
    metrics and fundingRate files always have one. ``monthly_agg_trades_sorted=False`` shuffles
    blocks of rows in monthly aggTrades files as Binance's do (binance-public-data#339).
    """

    daily_delay_ms: int = 6 * HOUR_MS
    monthly_delay_ms: int = 6 * HOUR_MS
    header_from_ms: int | None = None
    monthly_agg_trades_sorted: bool = False
    cache_bytes: int = 256 * 2**20
    compress_level: int = 1  # deflate level: 1 is ~6x faster than 6 for ~18% larger files

    def __post_init__(self) -> None:
        if self.daily_delay_ms < 0 or self.monthly_delay_ms < 0:
            raise ConfigError("archive publication delays must be >= 0")
        if not 0 <= self.compress_level <= 9:
            raise ConfigError("archive compress level must be within 0..9")


@dataclass(frozen=True)
class ArchiveFile:
    """One archive file named by a request path: which data, which period, zip or CHECKSUM."""

    dataset: str
    period: str
    symbol: str
    interval: str | None
    date: str
    start_ms: int
    end_ms: int
    checksum: bool

    @property
    def zip_name(self) -> str:
        middle = self.interval if self.dataset == "klines" else self.dataset
        return f"{self.symbol}-{middle}-{self.date}.zip"


def archive_path(
    dataset: str, *, period: str, symbol: str, date: str, interval: str | None = None
) -> str:
    """The request path of a zip: ``/data/futures/um/daily/klines/BTCUSDT/1m/…-2024-01-02.zip``."""
    if dataset == "klines":
        return f"{PREFIX}{period}/klines/{symbol}/{interval}/{symbol}-{interval}-{date}.zip"
    return f"{PREFIX}{period}/{dataset}/{symbol}/{symbol}-{dataset}-{date}.zip"


def _period_bounds(period: str, date: str) -> tuple[int, int] | None:
    try:
        if period == "daily":
            start = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
            start_ms = int(start.timestamp() * 1000)
            return start_ms, start_ms + DAY_MS
        start = datetime.strptime(date, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        return None
    days = calendar.monthrange(start.year, start.month)[1]
    start_ms = int(start.timestamp() * 1000)
    return start_ms, start_ms + days * DAY_MS


def _zip_time(instant_ms: int) -> tuple[int, int, int, int, int, int]:
    moment = datetime.fromtimestamp(max(instant_ms, 315_532_800_000) / 1000, tz=UTC)
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def _csv(columns: Sequence[list[str]], header: str | None) -> bytes:
    lines = "\n".join(map(",".join, zip(*columns, strict=True)))
    text = f"{header}\n{lines}" if header is not None else lines
    return (text + "\n").encode() if lines else (f"{header}\n" if header else "").encode()


class ArchiveStore:
    """Resolves archive paths, applies publication rules, builds and caches the zips."""

    def __init__(self, market: Market, *, clock: Clock, options: ArchiveOptions) -> None:
        self.market = market
        self.clock = clock
        self.options = options
        self._specs = {spec.symbol: spec for spec in market.symbols}
        if options.header_from_ms is not None:
            self.header_from_ms = options.header_from_ms
        else:
            first_listing_ms = min((spec.listing_ms for spec in market.symbols), default=0)
            middle_ms = (first_listing_ms + max(first_listing_ms, clock.now_ms())) // 2
            self.header_from_ms = middle_ms // DAY_MS * DAY_MS
        self._cache: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}

    def resolve(self, path: str) -> ArchiveFile | None:
        """The file a path names, or None when no such file can exist (wrong name or layout)."""
        if not path.startswith(PREFIX):
            return None
        relative = path[len(PREFIX) :]
        for dataset, pattern in _PATTERNS.items():
            found = pattern.match(relative)
            if found is None:
                continue
            period = found["period"]
            date = found["date"]
            if (period == "daily") != (len(date) == 10):
                return None
            interval = found.groupdict().get("interval")
            if interval is not None:
                allowed = (
                    ARCHIVE_DAILY_INTERVALS if period == "daily" else ARCHIVE_MONTHLY_INTERVALS
                )
                if interval not in allowed:
                    return None
            bounds = _period_bounds(period, date)
            if bounds is None:
                return None
            return ArchiveFile(
                dataset=dataset,
                period=period,
                symbol=found["symbol"],
                interval=interval,
                date=date,
                start_ms=bounds[0],
                end_ms=bounds[1],
                checksum=found["checksum"] is not None,
            )
        return None

    def published(self, file: ArchiveFile) -> bool:
        """Whether the file exists now: known symbol, listed before the period ends, and the
        period ended at least the publication delay ago."""
        spec = self._specs.get(file.symbol)
        if spec is None or file.end_ms <= spec.listing_ms:
            return False
        delay_ms = (
            self.options.daily_delay_ms if file.period == "daily" else self.options.monthly_delay_ms
        )
        return self.clock.now_ms() >= file.end_ms + delay_ms

    def content(self, file: ArchiveFile, *, checksum_fault: bool = False) -> bytes:
        """The zip or CHECKSUM bytes. ``checksum_fault``: the CHECKSUM names a digest the zip
        does not have, or the zip is a re-issued copy whose bytes differ from the CHECKSUM."""
        zip_bytes, digest = self._zip(file)
        if file.checksum:
            if checksum_fault:
                digest = hashlib.sha256(zip_bytes + b"stale").hexdigest()
            return f"{digest}  {file.zip_name}\n".encode()
        if checksum_fault:
            # A re-issued file: same rows, another zip timestamp, so other bytes (§3.2, #498).
            csv_bytes = self._csv_bytes(file, self._specs[file.symbol])
            return self._pack(file, csv_bytes, stamp_ms=file.end_ms + DAY_MS)
        return zip_bytes

    # --- building -----------------------------------------------------------------------------

    def _zip(self, file: ArchiveFile) -> tuple[bytes, str]:
        key = file.zip_name if file.dataset != "klines" else f"{file.period}/{file.zip_name}"
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None:
                return cached
            csv_bytes = self._csv_bytes(file, self._specs[file.symbol])
            zip_bytes = self._pack(file, csv_bytes, stamp_ms=file.end_ms)
            entry = (zip_bytes, hashlib.sha256(zip_bytes).hexdigest())
            with self._lock:
                self._building.pop(key, None)
                self._cache[key] = entry
                self._cached_bytes += len(zip_bytes)
                while self._cached_bytes > self.options.cache_bytes and len(self._cache) > 1:
                    _, (evicted, _) = self._cache.popitem(last=False)
                    self._cached_bytes -= len(evicted)
            return entry

    def _pack(self, file: ArchiveFile, csv_bytes: bytes, *, stamp_ms: int) -> bytes:
        # Fixed metadata (time, system, permissions) so the same rows give the same bytes.
        info = zipfile.ZipInfo(file.zip_name.removesuffix(".zip") + ".csv", _zip_time(stamp_ms))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 3
        info.external_attr = 0o644 << 16
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(info, csv_bytes, compresslevel=self.options.compress_level)
        return buffer.getvalue()

    def _csv_bytes(self, file: ArchiveFile, spec: SymbolSpec) -> bytes:
        last_ms = file.end_ms - 1
        headed = file.start_ms >= self.header_from_ms
        if file.dataset == "klines":
            assert file.interval is not None
            interval = ARCHIVE_MONTHLY_INTERVALS[file.interval]
            # "now" one interval past the period, so a candle opened in it is complete.
            klines = market_klines(
                self.market,
                file.symbol,
                interval,
                file.start_ms,
                last_ms,
                now_ms=last_ms + KLINE_INTERVAL_MS[interval],
            )
            header = f"{KLINE_HEADER}\n".encode() if headed else b""
            return header + klines_csv(klines, spec)
        if file.dataset == "aggTrades":
            trades = self.market.agg_trades(file.symbol, file.start_ms, last_ms)
            if file.period == "monthly" and not self.options.monthly_agg_trades_sorted:
                trades = _unsorted(trades)
            header = f"{AGG_TRADES_HEADER}\n".encode() if headed else b""
            return header + agg_trades_csv(trades, spec)
        if file.dataset == "metrics":
            return _csv(self._metrics_columns(file, spec), METRICS_HEADER)
        rates = self.market.funding(file.symbol, file.start_ms, last_ms)
        columns = [
            list(map(str, rates.funding_time_ms.tolist())),
            [str(spec.funding_interval_hours)] * len(rates.funding_time_ms),
            format_fixed(rates.funding_rate_e8, 8),
        ]
        return _csv(columns, FUNDING_HEADER)

    def _metrics_columns(self, file: ArchiveFile, spec: SymbolSpec) -> list[list[str]]:
        # A day's file holds the periods ending in (00:00, next 00:00], labelled by their end
        # or, from METRICS_START_LABELS_FROM_MS on, by their start.
        interest = self.market.open_interest(file.symbol, "5m", file.start_ms + 1, file.end_ms)
        count = len(interest.timestamp_ms)
        label_ms = interest.timestamp_ms
        if file.start_ms >= METRICS_START_LABELS_FROM_MS:
            label_ms = label_ms - METRICS_PERIOD_MS
        stamps = np.datetime_as_string(label_ms.astype("datetime64[ms]"), unit="s")
        # The long/short ratio endpoints are not simulated; plausible, smooth and seeded values
        # keep the columns realistic (ratios around 1, never negative).
        seed = zlib.crc32(file.zip_name.encode()) ^ zlib.crc32(
            interest.sum_open_interest_steps.tobytes()
        )
        rng = np.random.default_rng(seed)
        drift = rng.normal(0.0, 0.02, count).cumsum() + rng.normal(0.0, 0.2)
        return [
            [stamp.replace("T", " ") for stamp in stamps.tolist()],
            [spec.symbol] * count,
            format_fixed(interest.sum_open_interest_steps, spec.quantity_decimals),
            fixed_from_float(interest.sum_open_interest_value, 8),
            fixed_from_float(np.exp(0.25 + drift), 8),
            fixed_from_float(np.exp(0.05 + 0.5 * drift + rng.normal(0.0, 0.01, count)), 8),
            fixed_from_float(np.exp(0.35 + 0.8 * drift), 8),
            fixed_from_float(np.exp(rng.normal(0.0, 0.25, count)), 8),
        ]


def _unsorted(trades: AggTrades) -> AggTrades:
    """Rows in eight blocks with neighbouring blocks swapped: interleaved ids, as in #339."""
    count = len(trades.agg_id)
    if count < 2:
        return trades
    blocks = np.array_split(np.arange(count), min(8, count))
    order = []
    for position in range(0, len(blocks) - 1, 2):
        order.extend([blocks[position + 1], blocks[position]])
    if len(blocks) % 2:
        order.append(blocks[-1])
    return slice_columns(trades, np.concatenate(order))

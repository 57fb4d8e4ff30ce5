"""data.binance.vision archives: file paths, sha256 CHECKSUM verification and CSV parsing."""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ingmon.binance.client import BinanceClient
from ingmon.errors import DataIntegrityError
from ingmon.schema import AGG_TRADES, CANDLES, FUNDING, OPEN_INTEREST, Dataset
from ingmon.times import DAY_MS

__all__ = [
    "METRICS_START_LABELS_FROM",
    "ArchiveFile",
    "archive_file",
    "coverage_offset_ms",
    "download",
    "parse_csv",
]

Period = Literal["daily", "monthly"]
ArchiveKind = Literal["klines", "aggTrades", "metrics", "fundingRate"]

# Files before these dates carry no header row; the parser sniffs instead of trusting dates.
_KLINE_COLUMNS = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trade_count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
]
_AGG_COLUMNS = [
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
]
_METRICS_COLUMNS = [
    "create_time",
    "symbol",
    "sum_open_interest",
    "sum_open_interest_value",
    "count_toptrader_long_short_ratio",
    "sum_toptrader_long_short_ratio",
    "count_long_short_ratio",
    "sum_taker_long_short_vol_ratio",
]
_FUNDING_COLUMNS = ["calc_time", "funding_interval_hours", "last_funding_rate"]

_DATASET_OF: dict[str, Dataset] = {
    "klines": CANDLES,
    "aggTrades": AGG_TRADES,
    "metrics": OPEN_INTEREST,
    "fundingRate": FUNDING,
}
# Timestamps above this are microseconds (the spot archives switched in 2025).
_MICROSECONDS_ABOVE = 10**13
# The metrics archive's create_time labels each 5-minute period by its end in files dated
# before this day and by its start from it on (binance-public-data#491, 2026-06-25 00:00 UTC).
# openInterestHist's timestamp is the period end, so start labels are moved to the end.
METRICS_START_LABELS_FROM = date(2026, 6, 25)
_METRICS_PERIOD_MS = 5 * 60_000


@dataclass(frozen=True)
class ArchiveFile:
    """One archive zip: where it lives and which dataset it feeds."""

    kind: ArchiveKind
    period: Period
    symbol: str
    label: str  # YYYY-MM-DD (daily) or YYYY-MM (monthly)
    interval: str | None = None

    @property
    def name(self) -> str:
        middle = self.interval if self.kind == "klines" else self.kind
        return f"{self.symbol}-{middle}-{self.label}.zip"

    @property
    def path(self) -> str:
        folder = f"/data/futures/um/{self.period}/{self.kind}/{self.symbol}"
        if self.interval is not None:
            folder += f"/{self.interval}"
        return f"{folder}/{self.name}"

    @property
    def dataset(self) -> Dataset:
        return _DATASET_OF[self.kind]


def coverage_offset_ms(kind: ArchiveKind) -> int:
    """How far a daily file's rows are shifted from its UTC day: the file of day D holds row
    times in [D + offset, D + 1 day + offset). A metrics file holds the periods ending in
    (D 00:00, D+1 00:00] (once labels are read as period ends), so its offset is 1 ms."""
    return 1 if kind == "metrics" else 0


def archive_file(
    kind: ArchiveKind,
    symbol: str,
    day_or_month: date,
    *,
    period: Period,
    interval: str | None = None,
) -> ArchiveFile:
    """The archive file of one day (``period="daily"``) or month (``"monthly"``)."""
    if kind == "metrics" and period != "daily":
        raise ValueError("metrics archives are daily only")
    if kind == "fundingRate" and period != "monthly":
        raise ValueError("fundingRate archives are monthly only")
    if (kind == "klines") != (interval is not None):
        raise ValueError("klines archives need an interval; others take none")
    label = day_or_month.isoformat() if period == "daily" else f"{day_or_month:%Y-%m}"
    return ArchiveFile(kind, period, symbol, label, interval)


def _checksum_of(text: bytes, name: str) -> str:
    parts = text.decode("ascii", "replace").split()
    if len(parts) < 1 or len(parts[0]) != 64:
        raise DataIntegrityError(f"{name}.CHECKSUM: not sha256sum format")
    if len(parts) > 1 and parts[1].lstrip("*") != name:
        raise DataIntegrityError(f"{name}.CHECKSUM: names {parts[1]!r}")
    return parts[0].lower()


def download(client: BinanceClient, file: ArchiveFile) -> tuple[bytes, str] | None:
    """The verified zip bytes and their sha256, or None when the file is not published.

    A checksum mismatch is retried once (zip and CHECKSUM both re-downloaded); a second
    mismatch raises DataIntegrityError naming the file.
    """
    for attempt in (1, 2):
        payload = client.archive_bytes(file.path)
        if payload is None:
            return None
        checksum = client.archive_bytes(file.path + ".CHECKSUM")
        if checksum is None:
            raise DataIntegrityError(f"{file.path}: published without a .CHECKSUM")
        expected = _checksum_of(checksum, file.name)
        actual = hashlib.sha256(payload).hexdigest()
        if actual == expected:
            return payload, actual
        if attempt == 2:
            raise DataIntegrityError(
                f"{file.path}: sha256 {actual} does not match CHECKSUM {expected} "
                "(downloaded twice)"
            )
    return None


def _read_csv(payload: bytes, columns: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            members = [n for n in archive.namelist() if n.endswith(".csv")]
            if len(members) != 1:
                raise DataIntegrityError(f"zip holds {len(members)} CSV files, expected one")
            raw = archive.read(members[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as error:
        raise DataIntegrityError(f"unreadable archive zip: {error}") from None
    if not raw.strip():
        return pa.table({c: pa.array([], types.get(c, pa.string())) for c in columns})
    # Header rows exist in newer files only: a first byte that is a digit means data.
    has_header = not raw[:1].isdigit()
    read_options = pacsv.ReadOptions(
        column_names=columns, skip_rows=1 if has_header else 0, use_threads=True
    )
    convert = pacsv.ConvertOptions(
        column_types=types, true_values=["true", "True"], false_values=["false", "False"]
    )
    try:
        return pacsv.read_csv(io.BytesIO(raw), read_options=read_options, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise DataIntegrityError(f"unreadable archive CSV: {error}") from None


def _to_ms(column: Any) -> pa.Array:
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)
    values = np.where(values > _MICROSECONDS_ABOVE, values // 1000, values)
    return pa.array(values, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))


def _sorted_unique(table: pa.Table, key: str) -> pa.Table:
    keys = table[key].cast(pa.int64()).to_numpy()
    if keys.size > 1 and not bool(np.all(keys[1:] > keys[:-1])):
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        first = np.insert(sorted_keys[1:] != sorted_keys[:-1], 0, True)
        table = table.take(order[first])
    return table


def _period_ends(file: ArchiveFile, create_time: Any) -> pa.Array:
    """A metrics file's create_time labels as period ends, the meaning of openInterestHist's
    timestamp. DataIntegrityError when a label lies outside the range its file's date allows
    (end labels in (D 00:00, D+1 00:00], start labels in [D 00:00, D 23:55]): a file in the
    other convention would otherwise shift every row by a period, silently."""
    if create_time.null_count:
        raise DataIntegrityError(f"{file.name}: {create_time.null_count} rows without create_time")
    day_ms = int(np.datetime64(file.label, "ms").astype(np.int64))
    labels = np.asarray(
        pc.cast(create_time, pa.timestamp("ms")).cast(pa.int64()).to_numpy(), dtype=np.int64
    )
    if date.fromisoformat(file.label) >= METRICS_START_LABELS_FROM:
        labels = labels + _METRICS_PERIOD_MS
        convention = "start-of-period labels (from 2026-06-25, #491)"
    else:
        convention = "end-of-period labels (before 2026-06-25, #491)"
    outside = (labels <= day_ms) | (labels > day_ms + DAY_MS)
    if outside.any():
        first = np.datetime64(int(labels[outside][0]), "ms")
        raise DataIntegrityError(
            f"{file.name}: create_time labels a period ending {first}, outside its day "
            f"under {convention}"
        )
    return pa.array(labels, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))


def parse_csv(file: ArchiveFile, payload: bytes) -> pa.Table:
    """The archive's rows in the lake schema of ``file.dataset``, sorted and de-duplicated."""
    f64, i64 = pa.float64(), pa.int64()
    if file.kind == "klines":
        raw = _read_csv(
            payload,
            _KLINE_COLUMNS,
            {
                c: (i64 if c in ("open_time", "close_time", "trade_count") else f64)
                for c in _KLINE_COLUMNS
            },
        )
        table = raw.set_column(0, "open_time", _to_ms(raw["open_time"]))
        table = table.set_column(6, "close_time", _to_ms(raw["close_time"]))
    elif file.kind == "aggTrades":
        raw = _read_csv(
            payload,
            _AGG_COLUMNS,
            {
                "agg_trade_id": i64,
                "price": f64,
                "quantity": f64,
                "first_trade_id": i64,
                "last_trade_id": i64,
                "transact_time": i64,
                "is_buyer_maker": pa.bool_(),
            },
        )
        table = raw.set_column(5, "transact_time", _to_ms(raw["transact_time"]))
    elif file.kind == "metrics":
        raw = _read_csv(
            payload,
            _METRICS_COLUMNS,
            {
                "create_time": pa.timestamp("s"),
                "symbol": pa.string(),
                "sum_open_interest": f64,
                "sum_open_interest_value": f64,
            },
        )
        table = pa.table(
            {
                "timestamp": _period_ends(file, raw["create_time"]),
                "sum_open_interest": raw["sum_open_interest"],
                "sum_open_interest_value": raw["sum_open_interest_value"],
                "cmc_circulating_supply": pa.nulls(raw.num_rows, f64),
            }
        )
    else:
        raw = _read_csv(
            payload,
            _FUNDING_COLUMNS,
            {
                "calc_time": i64,
                "funding_interval_hours": pa.int32(),
                "last_funding_rate": f64,
            },
        )
        times = np.asarray(raw["calc_time"].to_numpy(), dtype=np.int64) // 1000 * 1000
        table = pa.table(
            {
                "funding_time": pa.array(times).cast(pa.timestamp("ms", tz="UTC")),
                "funding_rate": raw["last_funding_rate"],
                "mark_price": pa.nulls(raw.num_rows, f64),
                "funding_interval_hours": raw["funding_interval_hours"],
            }
        )
    dataset = file.dataset
    return _sorted_unique(
        table.select(dataset.column_names).cast(dataset.arrow_schema), dataset.key
    )

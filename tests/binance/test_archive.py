"""data.binance.vision archives: paths, verified downloads, CSV parsing into the lake schema."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pyarrow as pa
import pytest

from ingmon.binance.archive import ArchiveFile, archive_file, download, parse_csv
from ingmon.binance.client import BinanceClient
from ingmon.errors import DataIntegrityError, ExchangeUnavailableError
from ingmon.exchange import ArchiveOptions, ExchangeServer, FaultSchedule, Market
from ingmon.schema import AGG_TRADES, CANDLES, FUNDING, OPEN_INTEREST

from ._reference import table_rows

DAY_MS = 86_400_000
HEADER_FROM = date(2024, 2, 14)  # klines/aggTrades files of this day and later have a header

StartExchange = Callable[..., ExchangeServer]
MakeClient = Callable[..., BinanceClient]


def day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def decimal(units: Any, places: int) -> float:
    """``units`` × 10**-places read back the way a parser reads the archive's decimal text."""
    return float(str(Decimal(int(units)).scaleb(-places)))


def csv_text(payload: bytes) -> str:
    """The one CSV inside an archive zip."""
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        (name,) = archive.namelist()
        return archive.read(name).decode()


def zipped(name: str, text: str) -> bytes:
    """A hand-built archive zip holding ``name`` with ``text``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def corrupted(payload: bytes, *, at: int) -> bytes:
    """``payload`` with the byte at ``at`` flipped (inside the deflate stream)."""
    broken = bytearray(payload)
    broken[at] ^= 0xFF
    return bytes(broken)


@pytest.fixture
def archive_exchange(market: Market, start_exchange: StartExchange) -> ExchangeServer:
    """A fault-free exchange whose klines/aggTrades files get a header from HEADER_FROM on."""
    return start_exchange(market, archive=ArchiveOptions(header_from_ms=day_ms(HEADER_FROM)))


# ---- paths -------------------------------------------------------------------------------------

TEMPLATES = [
    (
        ("klines", "BTCUSDT", date(2023, 12, 1), "daily", "1m"),
        "https://data.binance.vision/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2023-12-01.zip",
    ),
    (
        ("klines", "BTCUSDT", date(2024, 1, 1), "monthly", "1h"),
        "https://data.binance.vision/data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01.zip",
    ),
    (
        ("aggTrades", "BTCUSDT", date(2023, 10, 28), "daily", None),
        "https://data.binance.vision/data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2023-10-28.zip",
    ),
    (
        ("aggTrades", "BTCUSDT", date(2023, 5, 1), "monthly", None),
        "https://data.binance.vision/data/futures/um/monthly/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2023-05.zip",
    ),
    (
        ("metrics", "BTCUSDT", date(2023, 7, 25), "daily", None),
        "https://data.binance.vision/data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2023-07-25.zip",
    ),
    (
        ("fundingRate", "BTCUSDT", date(2024, 2, 1), "monthly", None),
        "https://data.binance.vision/data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-02.zip",
    ),
]


@pytest.mark.parametrize(("args", "url"), TEMPLATES, ids=[url[-30:] for _, url in TEMPLATES])
def test_paths_match_binance_url_templates(args: tuple[Any, ...], url: str) -> None:
    """Every kind's path and file name are the data.binance.vision URL templates of §3.1."""
    kind, symbol, day, period, interval = args
    file = archive_file(kind, symbol, day, period=period, interval=interval)
    assert "https://data.binance.vision" + file.path == url
    assert file.name == url.rsplit("/", 1)[1]


def test_monthly_label_ignores_the_day() -> None:
    """A monthly file is named by its month whatever day of it is given."""
    file = archive_file("klines", "ETHUSDT", date(2024, 2, 17), period="monthly", interval="5m")
    assert file.name == "ETHUSDT-5m-2024-02.zip"


@pytest.mark.parametrize(
    ("kind", "period", "interval"),
    [
        ("metrics", "monthly", None),
        ("fundingRate", "daily", None),
        ("klines", "daily", None),
        ("aggTrades", "daily", "1m"),
    ],
    ids=["monthly-metrics", "daily-funding", "klines-without-interval", "trades-with-interval"],
)
def test_files_binance_does_not_publish_are_refused(
    kind: Any, period: Any, interval: str | None
) -> None:
    """metrics are daily only, fundingRate monthly only, and only klines take an interval."""
    with pytest.raises(ValueError, match=r"metrics|fundingRate|interval"):
        archive_file(kind, "BTCUSDT", date(2024, 2, 1), period=period, interval=interval)


def test_datasets_of_each_kind() -> None:
    """klines feed candles, aggTrades agg_trades, metrics open_interest, fundingRate funding."""
    day = date(2024, 2, 1)
    assert archive_file("klines", "X", day, period="daily", interval="1m").dataset is CANDLES
    assert archive_file("aggTrades", "X", day, period="daily").dataset is AGG_TRADES
    assert archive_file("metrics", "X", day, period="daily").dataset is OPEN_INTEREST
    assert archive_file("fundingRate", "X", day, period="monthly").dataset is FUNDING


# ---- downloads ---------------------------------------------------------------------------------

KLINES_DAY = archive_file("klines", "BTCUSDT", date(2024, 3, 3), period="daily", interval="1m")


def test_download_returns_bytes_matching_the_published_checksum(
    archive_exchange: ExchangeServer, binance_client: MakeClient
) -> None:
    """download gives the zip and its sha256, which is what the .CHECKSUM file publishes."""
    got = download(binance_client(archive_exchange), KLINES_DAY)
    assert got is not None
    payload, digest = got
    assert digest == hashlib.sha256(payload).hexdigest()
    published = httpx.get(archive_exchange.base_url + KLINES_DAY.path + ".CHECKSUM").text
    assert published == f"{digest}  {KLINES_DAY.name}\n"
    assert payload == httpx.get(archive_exchange.base_url + KLINES_DAY.path).content


@pytest.mark.parametrize("glob", ["*.CHECKSUM", "*.zip"], ids=["stale-checksum", "reissued-zip"])
def test_one_checksum_mismatch_is_downloaded_again(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient, glob: str
) -> None:
    """A mismatch on the first try only (stale CHECKSUM or a re-issued zip) is fetched again
    and then verifies."""
    server = start_exchange(market, faults=FaultSchedule.parse([f"archive:{glob}=checksum"]))
    got = download(binance_client(server), KLINES_DAY)
    assert got is not None
    payload, digest = got
    assert digest == hashlib.sha256(payload).hexdigest()
    assert [event.kind for event in server.stats.faults] == ["checksum"]
    assert server.stats.requests_for("archive", 200) == 4  # zip + CHECKSUM, twice


def test_persistent_checksum_mismatch_raises_data_integrity_error(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """A mismatch that persists after one re-download raises DataIntegrityError naming the file."""
    server = start_exchange(market, faults=FaultSchedule.parse(["archive:*.CHECKSUM=checksum@1"]))
    with pytest.raises(DataIntegrityError, match=r"BTCUSDT-1m-2024-03-03\.zip.*twice"):
        download(binance_client(server), KLINES_DAY)
    assert server.stats.requests_for("archive", 200) == 4


@pytest.mark.parametrize(
    "file",
    [
        archive_file("klines", "BTCUSDT", date(2024, 3, 5), period="daily", interval="1m"),
        archive_file("aggTrades", "BTCUSDT", date(2024, 3, 1), period="monthly"),
        archive_file("metrics", "SOLUSDT", date(2024, 2, 1), period="daily"),
        archive_file("klines", "NOPEUSDT", date(2024, 3, 1), period="daily", interval="1m"),
    ],
    ids=["today", "this-month", "before-listing", "unknown-symbol"],
)
def test_unpublished_file_is_none(
    archive_exchange: ExchangeServer, binance_client: MakeClient, file: ArchiveFile
) -> None:
    """A file the archive does not have (404) downloads as None, without a CHECKSUM request."""
    assert download(binance_client(archive_exchange), file) is None
    assert archive_exchange.stats.requests_for("archive") == 1


def test_archive_5xx_retried(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """5xx answers from the archive are retried like REST ones."""
    server = start_exchange(market, faults=FaultSchedule.parse(["archive=503,502,ok"]))
    assert download(binance_client(server), KLINES_DAY) is not None
    assert server.stats.requests_for("archive") == 4


def test_archive_exhausted_retries_name_the_file(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """An archive that keeps failing raises ExchangeUnavailableError naming the path."""
    server = start_exchange(market, faults=FaultSchedule.parse(["archive=500@1"]))
    with pytest.raises(ExchangeUnavailableError, match=r"BTCUSDT-1m-2024-03-03\.zip"):
        download(binance_client(server, max_retries=1), KLINES_DAY)


# ---- parsing: the exchange's files -------------------------------------------------------------


def expected_candles(market: Market, symbol: str, start_ms: int, end_ms: int) -> list[Any]:
    spec = market.spec(symbol)
    price, quantity = spec.price_decimals, spec.quantity_decimals
    candles = market.klines(symbol, "1m", start_ms, end_ms, now_ms=end_ms + DAY_MS)
    return [
        {
            "open_time": int(candles.open_time_ms[i]),
            "open": decimal(candles.open_ticks[i], price),
            "high": decimal(candles.high_ticks[i], price),
            "low": decimal(candles.low_ticks[i], price),
            "close": decimal(candles.close_ticks[i], price),
            "volume": decimal(candles.volume_steps[i], quantity),
            "close_time": int(candles.close_time_ms[i]),
            "quote_volume": decimal(candles.quote_volume_units[i], price + quantity),
            "trade_count": int(candles.trade_count[i]),
            "taker_buy_volume": decimal(candles.taker_buy_volume_steps[i], quantity),
            "taker_buy_quote_volume": decimal(candles.taker_buy_quote_units[i], price + quantity),
            "ignore": 0.0,
        }
        for i in range(len(candles))
    ]


def expected_trades(market: Market, symbol: str, start_ms: int, end_ms: int) -> list[Any]:
    spec = market.spec(symbol)
    trades = market.agg_trades(symbol, start_ms, end_ms)
    return [
        {
            "agg_trade_id": int(trades.agg_id[i]),
            "price": decimal(trades.price_ticks[i], spec.price_decimals),
            "quantity": decimal(trades.qty_steps[i], spec.quantity_decimals),
            "first_trade_id": int(trades.first_trade_id[i]),
            "last_trade_id": int(trades.last_trade_id[i]),
            "transact_time": int(trades.time_ms[i]),
            "is_buyer_maker": bool(trades.buyer_is_maker[i]),
        }
        for i in range(len(trades))
    ]


@pytest.mark.parametrize(
    ("day", "headed"), [(date(2024, 2, 10), False), (date(2024, 3, 3), True)], ids=["old", "new"]
)
def test_daily_klines_with_and_without_header_equal_market(
    market: Market,
    archive_exchange: ExchangeServer,
    binance_client: MakeClient,
    day: date,
    headed: bool,
) -> None:
    """Old files without a header row and new ones with it both parse to the market's candles."""
    file = archive_file("klines", "BTCUSDT", day, period="daily", interval="1m")
    got = download(binance_client(archive_exchange), file)
    assert got is not None
    text = csv_text(got[0])
    assert text.startswith("open_time,") is headed
    assert text[:1].isdigit() is not headed
    start_ms = day_ms(day)
    want = expected_candles(market, "BTCUSDT", start_ms, start_ms + DAY_MS - 1)
    assert len(want) == 1440
    assert table_rows(parse_csv(file, got[0])) == want


def test_monthly_klines_equal_market(
    market: Market, archive_exchange: ExchangeServer, binance_client: MakeClient
) -> None:
    """A monthly 1m file (February, with its maintenance gaps) parses to the market's candles."""
    file = archive_file("klines", "BTCUSDT", date(2024, 2, 1), period="monthly", interval="1m")
    got = download(binance_client(archive_exchange), file)
    assert got is not None
    table = parse_csv(file, got[0])
    assert table.schema == CANDLES.arrow_schema
    start_ms = day_ms(date(2024, 2, 1))
    want = expected_candles(market, "BTCUSDT", start_ms, day_ms(date(2024, 3, 1)) - 1)
    assert 40_000 < len(want) < 29 * 1440
    assert table_rows(table) == want


@pytest.mark.parametrize(("day", "headed"), [(date(2024, 2, 10), False), (date(2024, 3, 3), True)])
def test_daily_agg_trades_equal_market(
    market: Market,
    archive_exchange: ExchangeServer,
    binance_client: MakeClient,
    day: date,
    headed: bool,
) -> None:
    """A daily aggTrades file (with or without header) parses to the market's trades of the day."""
    file = archive_file("aggTrades", "SOLUSDT", day, period="daily")
    got = download(binance_client(archive_exchange), file)
    assert got is not None
    assert csv_text(got[0]).startswith("agg_trade_id,") is headed
    start_ms = day_ms(day)
    table = parse_csv(file, got[0])
    assert table.schema == AGG_TRADES.arrow_schema
    assert table_rows(table) == expected_trades(market, "SOLUSDT", start_ms, start_ms + DAY_MS - 1)


@pytest.mark.slow
def test_unsorted_monthly_agg_trades_come_out_sorted(
    market: Market, archive_exchange: ExchangeServer, binance_client: MakeClient
) -> None:
    """A monthly aggTrades file whose rows are out of id order (binance-public-data#339)
    parses to the month's trades in id order."""
    file = archive_file("aggTrades", "SOLUSDT", date(2024, 2, 1), period="monthly")
    got = download(binance_client(archive_exchange), file)
    assert got is not None
    raw_ids = [int(row[0]) for row in csv.reader(io.StringIO(csv_text(got[0])))]
    assert raw_ids != sorted(raw_ids), "the exchange wrote this month sorted"
    want = expected_trades(
        market, "SOLUSDT", day_ms(date(2024, 2, 1)), day_ms(date(2024, 3, 1)) - 1
    )
    assert len(raw_ids) == len(want)
    assert table_rows(parse_csv(file, got[0])) == want


def test_metrics_become_open_interest_at_utc_times(
    market: Market, archive_exchange: ExchangeServer, binance_client: MakeClient
) -> None:
    """The metrics file's ``YYYY-MM-DD HH:MM:SS`` times are read as UTC; OI and its value equal
    the market's 5-minute open interest; the supply column (not archived) is null. A file dated
    before 2026-06-25 labels periods by their end (00:05 … 00:00 the next day), kept as is."""
    day = date(2024, 3, 3)
    file = archive_file("metrics", "BTCUSDT", day, period="daily")
    got = download(binance_client(archive_exchange), file)
    assert got is not None
    table = parse_csv(file, got[0])
    assert table.schema == OPEN_INTEREST.arrow_schema
    assert table["timestamp"].type == pa.timestamp("ms", tz="UTC")
    first_text = list(csv.reader(io.StringIO(csv_text(got[0]))))[1][0]
    first = datetime.strptime(first_text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert table["timestamp"][0].as_py() == first
    spec = market.spec("BTCUSDT")
    interest = market.open_interest("BTCUSDT", "5m", day_ms(day) + 1, day_ms(day) + DAY_MS)
    want = [
        {
            "timestamp": int(interest.timestamp_ms[i]),
            "sum_open_interest": decimal(
                interest.sum_open_interest_steps[i], spec.quantity_decimals
            ),
            "sum_open_interest_value": decimal(round(interest.sum_open_interest_value[i] * 1e8), 8),
            "cmc_circulating_supply": None,
        }
        for i in range(len(interest))
    ]
    assert len(want) == 288
    assert want[0]["timestamp"] == day_ms(day) + 5 * 60_000
    assert want[-1]["timestamp"] == day_ms(day) + DAY_MS
    assert table_rows(table) == want


def metrics_zip(day: date, labels: list[str]) -> tuple[ArchiveFile, bytes]:
    """A hand-built metrics file of ``day`` with one row per label (OI 1, 2, 3 …)."""
    header = (
        "create_time,symbol,sum_open_interest,sum_open_interest_value,"
        "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
        "count_long_short_ratio,sum_taker_long_short_vol_ratio"
    )
    lines = [f"{label},BTCUSDT,{n}.5,{n}0.25,1.1,1.2,1.3,1.4" for n, label in enumerate(labels, 1)]
    file = archive_file("metrics", "BTCUSDT", day, period="daily")
    return file, zipped(file.name.removesuffix(".zip") + ".csv", "\n".join([header, *lines]) + "\n")


def test_metrics_start_labels_from_2026_06_25_become_period_ends() -> None:
    """From the 2026-06-25 file on, create_time is the period start (#491): each label is moved
    5 minutes on to the period end, openInterestHist's timestamp; the 06-24 file's last label
    and the 06-25 file's first (both 2026-06-25 00:00:00) become two consecutive periods."""
    before = metrics_zip(date(2026, 6, 24), ["2026-06-24 00:05:00", "2026-06-25 00:00:00"])
    after = metrics_zip(date(2026, 6, 25), ["2026-06-25 00:00:00", "2026-06-25 23:55:00"])
    switch_ms = day_ms(date(2026, 6, 25))
    assert [r["timestamp"] for r in table_rows(parse_csv(*before))] == [
        switch_ms - DAY_MS + 300_000,
        switch_ms,
    ]
    rows = table_rows(parse_csv(*after))
    assert [r["timestamp"] for r in rows] == [switch_ms + 300_000, switch_ms + DAY_MS]
    assert [r["sum_open_interest"] for r in rows] == [1.5, 2.5]


@pytest.mark.parametrize(
    ("day", "label"),
    [
        (date(2026, 6, 24), "2026-06-24 00:00:00"),  # a start label in an end-labelled file
        (date(2026, 6, 25), "2026-06-26 00:00:00"),  # an end label in a start-labelled file
        (date(2024, 3, 3), "2024-03-05 12:00:00"),  # another day altogether
    ],
)
def test_metrics_label_outside_its_files_day_is_data_integrity_error(day: date, label: str) -> None:
    """A label the file's date convention cannot hold raises DataIntegrityError naming the file,
    instead of storing every row a period early or late."""
    file, payload = metrics_zip(day, [label])
    with pytest.raises(DataIntegrityError, match=file.name.replace(".", r"\.")):
        parse_csv(file, payload)


@pytest.mark.parametrize("symbol", ["BTCUSDT", "SOLUSDT"])
def test_monthly_funding_equals_market(
    market: Market, archive_exchange: ExchangeServer, binance_client: MakeClient, symbol: str
) -> None:
    """A monthly fundingRate file gives settlement times, rates and the interval in hours; the
    archive has no mark price, so it is null."""
    file = archive_file("fundingRate", symbol, date(2024, 2, 1), period="monthly")
    got = download(binance_client(archive_exchange), file)
    assert got is not None
    table = parse_csv(file, got[0])
    assert table.schema == FUNDING.arrow_schema
    rates = market.funding(symbol, day_ms(date(2024, 2, 1)), day_ms(date(2024, 3, 1)) - 1)
    hours = market.spec(symbol).funding_interval_hours
    want = [
        {
            "funding_time": int(rates.funding_time_ms[i]),
            "funding_rate": decimal(rates.funding_rate_e8[i], 8),
            "mark_price": None,
            "funding_interval_hours": hours,
        }
        for i in range(len(rates))
    ]
    assert len(want) > 50
    assert table_rows(table) == want


# ---- parsing: hand-built files -----------------------------------------------------------------

TRADES_FILE = archive_file("aggTrades", "BTCUSDT", date(2024, 3, 1), period="monthly")
TRADE_ROWS = {
    7: "7,42000.10,0.015,70,72,1709251200000,true",
    8: "8,42000.20,1.250,73,73,1709251200005,false",
    9: "9,41999.90,0.002,74,80,1709251201000,true",
    10: "10,42001.00,0.100,81,81,1709337599999,false",
}


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_agg_trades_sorted_and_deduplicated(header: bool) -> None:
    """Rows out of order and a row repeated (as across daily files) come out once, in id order,
    with the header row (if any) not read as data."""
    lines = [TRADE_ROWS[i] for i in (9, 7, 10, 8, 9, 7)]
    if header:
        lines.insert(0, "agg_trade_id,price,quantity,first_trade_id,last_trade_id,")
        lines[0] += "transact_time,is_buyer_maker"
    payload = zipped("BTCUSDT-aggTrades-2024-03.csv", "\n".join(lines) + "\n")
    rows = table_rows(parse_csv(TRADES_FILE, payload))
    assert [row["agg_trade_id"] for row in rows] == [7, 8, 9, 10]
    assert rows[1] == {
        "agg_trade_id": 8,
        "price": 42000.2,
        "quantity": 1.25,
        "first_trade_id": 73,
        "last_trade_id": 73,
        "transact_time": 1709251200005,
        "is_buyer_maker": False,
    }


def test_microsecond_timestamps_normalised_to_ms() -> None:
    """Times written in microseconds (as spot archives from 2025) are read as milliseconds."""
    line = "5,1.0,1.0,5,5,1709251200123456,True"
    rows = table_rows(parse_csv(TRADES_FILE, zipped("x.csv", line + "\n")))
    assert rows[0]["transact_time"] == 1709251200123
    assert rows[0]["is_buyer_maker"] is True


def test_empty_archive_csv_is_an_empty_table() -> None:
    """A zip with an empty CSV (a symbol-day without trades) is an empty table of the schema."""
    table = parse_csv(TRADES_FILE, zipped("x.csv", ""))
    assert table.num_rows == 0
    assert table.schema == AGG_TRADES.arrow_schema


@pytest.mark.parametrize(
    "payload",
    [
        zipped("x.csv", "7,abc,0.015,70,72,1709251200000,true\n"),
        b"PK not a zip",
        corrupted(zipped("x.csv", "7,1.0,1.0,7,7,1709251200000,true\n" * 2000), at=40),
    ],
    ids=["bad-number", "not-a-zip", "corrupt-deflate"],
)
def test_unreadable_archive_raises(payload: bytes) -> None:
    """A CSV that does not parse as the documented columns, or bytes that are not a zip, are a
    DataIntegrityError (the backfill reports it as a problem instead of crashing)."""
    with pytest.raises(DataIntegrityError):
        parse_csv(TRADES_FILE, payload)

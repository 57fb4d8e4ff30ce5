"""The data.binance.vision emulation: paths, zips, CSV layouts, headers, CHECKSUMs and 404s."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from ingmon.exchange import (
    ArchiveOptions,
    ExchangeServer,
    FrozenClock,
    Limits,
    Market,
    archive_path,
)

from ._support import DAY_MS, LISTING_MS, MINUTE_MS, NOW_MS, SOL_LISTING_MS, brute_force_candle

KLINE_HEADER = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
]
AGG_TRADES_HEADER = [
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
]
METRICS_HEADER = [
    "create_time",
    "symbol",
    "sum_open_interest",
    "sum_open_interest_value",
    "count_toptrader_long_short_ratio",
    "sum_toptrader_long_short_ratio",
    "count_long_short_ratio",
    "sum_taker_long_short_vol_ratio",
]


def day_ms(date: str) -> int:
    """Midnight UTC of an ISO date in epoch ms."""
    return int(datetime.fromisoformat(date).replace(tzinfo=UTC).timestamp() * 1000)


def fetch_zip(http: httpx.Client, path: str) -> tuple[bytes, list[list[str]]]:
    """Download a zip, check its one member is the CSV named like it, return bytes and rows."""
    response = http.get(path)
    assert response.status_code == 200, path
    assert response.headers["content-type"] == "application/zip"
    name = path.rsplit("/", 1)[1]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == [name.removesuffix(".zip") + ".csv"]
        text = archive.read(archive.namelist()[0]).decode()
    assert text.endswith("\n")
    return response.content, list(csv.reader(io.StringIO(text)))


def test_daily_klines_zip_checksum_and_rows(client: httpx.Client, market: Market) -> None:
    """A daily 1m file: sha256sum-style CHECKSUM, header, one row per candle equal to REST."""
    path = archive_path(
        "klines", period="daily", symbol="BTCUSDT", interval="1m", date="2024-03-01"
    )
    assert path == "/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-03-01.zip"
    body, rows = fetch_zip(client, path)
    checksum = client.get(path + ".CHECKSUM")
    assert checksum.status_code == 200
    assert checksum.text == f"{hashlib.sha256(body).hexdigest()}  BTCUSDT-1m-2024-03-01.zip\n"
    assert re.fullmatch(r"[0-9a-f]{64}  BTCUSDT-1m-2024-03-01\.zip\n", checksum.text)
    assert rows[0] == KLINE_HEADER
    start_ms = day_ms("2024-03-01")
    gaps = market.maintenance_windows("BTCUSDT", start_ms, start_ms + DAY_MS - 1)
    gap_minutes = sum(
        (min(end, start_ms + DAY_MS) - max(begin, start_ms)) // MINUTE_MS for begin, end in gaps
    )
    assert len(rows) - 1 == 1440 - gap_minutes
    served: list[list[object]] = []
    for offset in (0, 1000):
        served += client.get(
            "/fapi/v1/klines",
            params={
                "symbol": "BTCUSDT",
                "interval": "1m",
                "startTime": start_ms + offset * MINUTE_MS,
                "endTime": min(start_ms + (offset + 1000) * MINUTE_MS, start_ms + DAY_MS) - 1,
                "limit": 1000,
            },
        ).json()
    assert rows[1:] == [[str(value) for value in row] for row in served]
    first = brute_force_candle(market, "BTCUSDT", int(rows[1][0]), MINUTE_MS, now_ms=NOW_MS)
    assert first is not None
    assert (Decimal(rows[1][1]), int(rows[1][8]), rows[1][11]) == (first.open, first.count, "0")


def test_header_rows_only_in_newer_files(client: httpx.Client) -> None:
    """By default files of the first half of the history have no header row, later ones do."""

    def first_line(path: str) -> list[str]:
        return fetch_zip(client, path)[1][0]

    for dataset, interval, header in (
        ("klines", "1h", KLINE_HEADER),
        ("aggTrades", None, AGG_TRADES_HEADER),
    ):
        old = first_line(
            archive_path(
                dataset, period="daily", symbol="BTCUSDT", interval=interval, date="2024-02-13"
            )
        )
        new = first_line(
            archive_path(
                dataset, period="daily", symbol="BTCUSDT", interval=interval, date="2024-02-14"
            )
        )
        assert old[0].isdigit()
        assert new == header
    monthly = first_line(
        archive_path("klines", period="monthly", symbol="BTCUSDT", interval="1d", date="2024-02")
    )
    assert monthly[0].isdigit()


def test_header_cutover_is_configurable(market: Market) -> None:
    """ArchiveOptions.header_from_ms moves the first file with a header row."""
    server = ExchangeServer(
        market,
        clock=FrozenClock(NOW_MS),
        limits=Limits(enabled=False),
        archive=ArchiveOptions(header_from_ms=day_ms("2024-02-01")),
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        before = fetch_zip(
            http,
            archive_path(
                "klines", period="daily", symbol="BTCUSDT", interval="4h", date="2024-01-31"
            ),
        )
        after = fetch_zip(
            http,
            archive_path(
                "klines", period="daily", symbol="BTCUSDT", interval="4h", date="2024-02-01"
            ),
        )
        monthly = fetch_zip(
            http,
            archive_path(
                "klines", period="monthly", symbol="BTCUSDT", interval="4h", date="2024-02"
            ),
        )
    assert before[1][0][0].isdigit()
    assert after[1][0] == KLINE_HEADER
    assert monthly[1][0] == KLINE_HEADER


def test_daily_agg_trades_csv(client: httpx.Client, market: Market) -> None:
    """Daily aggTrades rows are the day's trades with lowercase booleans, in id order."""
    _, rows = fetch_zip(
        client, archive_path("aggTrades", period="daily", symbol="BTCUSDT", date="2024-03-02")
    )
    assert rows[0] == AGG_TRADES_HEADER
    start_ms = day_ms("2024-03-02")
    trades = market.agg_trades("BTCUSDT", start_ms, start_ms + DAY_MS - 1)
    body = rows[1:]
    assert [int(row[0]) for row in body] == trades.agg_id.tolist()
    assert [Decimal(row[1]) for row in body] == [
        Decimal(int(value)).scaleb(-2) for value in trades.price_ticks
    ]
    assert [Decimal(row[2]) for row in body] == [
        Decimal(int(value)) / 1000 for value in trades.qty_steps
    ]
    assert [int(row[5]) for row in body] == trades.time_ms.tolist()
    assert [row[6] for row in body] == [
        "true" if maker else "false" for maker in trades.buyer_is_maker.tolist()
    ]
    assert [(int(row[3]), int(row[4])) for row in body] == list(
        zip(trades.first_trade_id.tolist(), trades.last_trade_id.tolist(), strict=True)
    )


def test_monthly_agg_trades_unsorted_by_default(client: httpx.Client, market: Market) -> None:
    """Monthly aggTrades hold the month's trades, not in id order (binance-public-data#339)."""
    _, rows = fetch_zip(
        client, archive_path("aggTrades", period="monthly", symbol="SOLUSDT", date="2024-02")
    )
    assert rows[0][0].isdigit()
    ids = [int(row[0]) for row in rows]
    expected = market.agg_trades(
        "SOLUSDT", day_ms("2024-02-01"), day_ms("2024-03-01") - 1
    ).agg_id.tolist()
    assert ids != sorted(ids)
    assert sorted(ids) == expected


def test_monthly_agg_trades_sorted_option(market: Market) -> None:
    """ArchiveOptions(monthly_agg_trades_sorted=True) keeps monthly rows in id order."""
    server = ExchangeServer(
        market,
        clock=FrozenClock(NOW_MS),
        limits=Limits(enabled=False),
        archive=ArchiveOptions(monthly_agg_trades_sorted=True),
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        _, rows = fetch_zip(
            http, archive_path("aggTrades", period="monthly", symbol="SOLUSDT", date="2024-02")
        )
    ids = [int(row[0]) for row in rows]
    assert ids == sorted(ids)


def test_monthly_klines_and_the_1mo_interval(client: httpx.Client) -> None:
    """Monthly 1d files hold the month's candles; "1mo" names the 1M interval."""
    _, daily_rows = fetch_zip(
        client,
        archive_path("klines", period="monthly", symbol="BTCUSDT", interval="1d", date="2024-02"),
    )
    assert [int(row[0]) for row in daily_rows] == [
        day_ms("2024-02-01") + index * DAY_MS for index in range(29)
    ]
    _, month_rows = fetch_zip(
        client,
        archive_path("klines", period="monthly", symbol="BTCUSDT", interval="1mo", date="2024-02"),
    )
    assert len(month_rows) == 1
    assert (int(month_rows[0][0]), int(month_rows[0][6])) == (
        day_ms("2024-02-01"),
        day_ms("2024-03-01") - 1,
    )
    assert int(month_rows[0][8]) == sum(int(row[8]) for row in daily_rows)


def test_metrics_daily_file(client: httpx.Client, market: Market) -> None:
    """metrics before 2026-06-25: 288 five-minute rows, the periods ending in (00:00, next
    00:00], whose create_time equals the OI timestamps (period ends), ratios > 0."""
    _, rows = fetch_zip(
        client, archive_path("metrics", period="daily", symbol="BTCUSDT", date="2024-02-20")
    )
    assert rows[0] == METRICS_HEADER
    start_ms = day_ms("2024-02-20")
    interest = market.open_interest("BTCUSDT", "5m", start_ms + 1, start_ms + DAY_MS)
    assert len(rows) - 1 == len(interest.timestamp_ms) == 288
    assert (rows[1][0], rows[-1][0]) == ("2024-02-20 00:05:00", "2024-02-21 00:00:00")
    stamps = [
        datetime.fromtimestamp(value / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        for value in interest.timestamp_ms.tolist()
    ]
    assert [row[0] for row in rows[1:]] == stamps
    assert {row[1] for row in rows[1:]} == {"BTCUSDT"}
    assert [Decimal(row[2]) for row in rows[1:]] == [
        Decimal(int(v)) / 1000 for v in interest.sum_open_interest_steps
    ]
    for row in rows[1:]:
        ratios = [Decimal(value) for value in row[4:]]
        assert all(Decimal("0.05") < ratio < Decimal(20) for ratio in ratios)


def test_funding_rate_monthly_file(client: httpx.Client, market: Market) -> None:
    """fundingRate monthly: calc_time, funding_interval_hours, last_funding_rate per settlement."""
    for symbol, hours in (("BTCUSDT", "8"), ("SOLUSDT", "4")):
        _, rows = fetch_zip(
            client, archive_path("fundingRate", period="monthly", symbol=symbol, date="2024-02")
        )
        assert rows[0] == ["calc_time", "funding_interval_hours", "last_funding_rate"]
        funding = market.funding(symbol, day_ms("2024-02-01"), day_ms("2024-03-01") - 1)
        assert [int(row[0]) for row in rows[1:]] == funding.funding_time_ms.tolist()
        assert {row[1] for row in rows[1:]} == {hours}
        assert [Decimal(row[2]) for row in rows[1:]] == [
            round(Decimal(rate), 8) for rate in funding.funding_rate.tolist()
        ]
        assert all(len(row[2].partition(".")[2]) == 8 for row in rows[1:])


@pytest.mark.parametrize(
    "path",
    [
        archive_path(
            "klines", period="daily", symbol="BTCUSDT", interval="1m", date="2024-03-05"
        ),  # today
        archive_path(
            "klines", period="monthly", symbol="BTCUSDT", interval="1m", date="2024-03"
        ),  # this month
        archive_path(
            "klines", period="daily", symbol="BTCUSDT", interval="1m", date="2024-01-24"
        ),  # pre-listing
        archive_path(
            "aggTrades", period="daily", symbol="SOLUSDT", date="2024-02-03"
        ),  # pre-listing
        archive_path(
            "aggTrades", period="monthly", symbol="SOLUSDT", date="2024-01"
        ),  # pre-listing
        archive_path("klines", period="daily", symbol="XRPUSDT", interval="1m", date="2024-03-01"),
        archive_path("klines", period="daily", symbol="BTCUSDT", interval="1s", date="2024-03-01"),
        archive_path("klines", period="daily", symbol="BTCUSDT", interval="1w", date="2024-03-01"),
        archive_path("klines", period="daily", symbol="BTCUSDT", interval="1m", date="2024-02-30"),
        "/data/futures/um/monthly/metrics/BTCUSDT/BTCUSDT-metrics-2024-02.zip",
        "/data/futures/um/daily/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-02-01.zip",
        "/data/futures/um/daily/klines/BTCUSDT/1m/ETHUSDT-1m-2024-03-01.zip",
        "/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-03.zip",
        archive_path("klines", period="daily", symbol="BTCUSDT", interval="1m", date="2024-03-05")
        + ".CHECKSUM",
        "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-03-01.zip",
    ],
)
def test_missing_files_are_404(client: httpx.Client, path: str) -> None:
    """Unpublished, pre-listing, unknown and misnamed files answer 404."""
    assert client.get(path).status_code == 404


def test_partial_listing_day_and_month_exist(client: httpx.Client) -> None:
    """The listing day and month are published, holding only the data after the listing."""
    _, rows = fetch_zip(
        client,
        archive_path("klines", period="daily", symbol="SOLUSDT", interval="1h", date="2024-02-04"),
    )
    assert rows[0][0].isdigit()
    # The first hourly candle is the one containing the 07:30 listing.
    assert int(rows[0][0]) == SOL_LISTING_MS // 3_600_000 * 3_600_000
    _, month = fetch_zip(
        client,
        archive_path("klines", period="monthly", symbol="BTCUSDT", interval="1d", date="2024-01"),
    )
    assert int(month[0][0]) == LISTING_MS
    assert len(month) == 7


def test_publication_delay_follows_the_clock(market: Market) -> None:
    """A day appears once the clock passes its end plus the delay; a month likewise."""
    clock = FrozenClock(day_ms("2024-03-05") + 5 * 3_600_000)
    server = ExchangeServer(market, clock=clock, limits=Limits(enabled=False))
    daily = archive_path(
        "klines", period="daily", symbol="BTCUSDT", interval="1m", date="2024-03-04"
    )
    monthly = archive_path(
        "klines", period="monthly", symbol="BTCUSDT", interval="1h", date="2024-02"
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        assert http.get(daily).status_code == 404
        clock.set(day_ms("2024-03-05") + 6 * 3_600_000)
        assert http.get(daily).status_code == 200
        assert http.get(daily + ".CHECKSUM").status_code == 200
        clock.set(day_ms("2024-03-01") + 6 * 3_600_000 - 1)
        assert http.get(monthly).status_code == 404
        clock.advance(1)
        assert http.get(monthly).status_code == 200


def test_zips_are_byte_stable(client: httpx.Client) -> None:
    """The same file has the same bytes on every request, with a fixed zip timestamp."""
    path = archive_path(
        "klines", period="daily", symbol="SOLUSDT", interval="5m", date="2024-02-10"
    )
    first = client.get(path).content
    second = client.get(path).content
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.infolist()[0].date_time == (2024, 2, 11, 0, 0, 0)


def test_head_request_reports_the_length(client: httpx.Client) -> None:
    """HEAD on an archive file returns its Content-Length without a body."""
    path = archive_path(
        "klines", period="daily", symbol="BTCUSDT", interval="1d", date="2024-03-01"
    )
    head = client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(client.get(path).content)


# 2026-06-28 12:00 UTC: after the metrics label switch of 2026-06-25 (binance-public-data#491).
AFTER_SWITCH_NOW_MS = 1_782_648_000_000


def test_metrics_labels_switch_from_period_end_to_start_on_2026_06_25() -> None:
    """Files dated before 2026-06-25 label 00:05 … 00:00 the next day (period ends), files from
    it on 00:00 … 23:55 (period starts), so "2026-06-25 00:00:00" is in two files; every row
    holds the OI of the period ending 5 minutes after a start label, at an end label, and the
    CHECKSUM matches the zip."""
    market = Market.demo(symbols=("BTCUSDT",), days=6, seed=3, now_ms=AFTER_SWITCH_NOW_MS)
    spec = market.spec("BTCUSDT")
    server = ExchangeServer(
        market, clock=FrozenClock(AFTER_SWITCH_NOW_MS), limits=Limits(enabled=False)
    )
    expected_ranges = {
        "2026-06-23": ("2026-06-23 00:05:00", "2026-06-24 00:00:00", 0),
        "2026-06-24": ("2026-06-24 00:05:00", "2026-06-25 00:00:00", 0),
        "2026-06-25": ("2026-06-25 00:00:00", "2026-06-25 23:55:00", 5),
        "2026-06-26": ("2026-06-26 00:00:00", "2026-06-26 23:55:00", 5),
    }
    with server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        for date, (first, last, end_after_label_minutes) in expected_ranges.items():
            path = archive_path("metrics", period="daily", symbol="BTCUSDT", date=date)
            body, rows = fetch_zip(http, path)
            assert http.get(path + ".CHECKSUM").text == (
                f"{hashlib.sha256(body).hexdigest()}  {path.rsplit('/', 1)[1]}\n"
            )
            assert rows[0] == METRICS_HEADER
            labels = [row[0] for row in rows[1:]]
            assert (len(labels), labels[0], labels[-1]) == (288, first, last), date
            for row in rows[1:]:
                label_ms = int(
                    datetime.fromisoformat(row[0]).replace(tzinfo=UTC).timestamp() * 1000
                )
                end_ms = label_ms + end_after_label_minutes * MINUTE_MS
                interest = market.open_interest("BTCUSDT", "5m", end_ms, end_ms)
                assert interest.timestamp_ms.tolist() == [end_ms]
                assert Decimal(row[2]) == Decimal(int(interest.sum_open_interest_steps[0])).scaleb(
                    -spec.quantity_decimals
                ), (date, row[0])
        before, after = (
            fetch_zip(http, archive_path("metrics", period="daily", symbol="BTCUSDT", date=d))[1]
            for d in ("2026-06-24", "2026-06-25")
        )
    # The same label names two different periods: 23:55–00:00 in one file, 00:00–00:05 in the next.
    assert before[-1][0] == after[1][0] == "2026-06-25 00:00:00"
    assert before[-1][2:4] != after[1][2:4]

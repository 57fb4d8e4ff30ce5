"""REST conformance of ping, time, exchangeInfo, fundingInfo and klines; determinism."""

from __future__ import annotations

import http.client
import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import orjson
import pytest

from ingmon.exchange import (
    ExchangeServer,
    FrozenClock,
    Limits,
    Market,
    RealClock,
    RestOptions,
    parse_instant_ms,
)
from ingmon.exchange.limits import UNLIMITED_WEIGHT

from ._support import (
    DAY_MS,
    LISTING_MS,
    MINUTE_MS,
    NOW_MS,
    SOL_LISTING_MS,
    assert_error,
    brute_force_candle,
    decimals_of,
    klines,
    small_market,
)

HOUR_MS = 60 * MINUTE_MS
# An aligned minute two days before NOW, well inside the history.
T0_MS = (NOW_MS - 2 * DAY_MS) // HOUR_MS * HOUR_MS


# --- ping, time, exchangeInfo, fundingInfo ------------------------------------------------------


def test_ping_and_time(client: httpx.Client) -> None:
    """ping answers {} and time answers the frozen clock as an integer."""
    ping = client.get("/fapi/v1/ping")
    assert ping.status_code == 200
    assert ping.content == b"{}"
    assert ping.headers["content-type"] == "application/json"
    assert client.get("/fapi/v1/time").json() == {"serverTime": NOW_MS}


def test_exchange_info_describes_each_symbol(client: httpx.Client) -> None:
    """exchangeInfo lists every symbol with listing date, filters, precisions and rate limits."""
    info = client.get("/fapi/v1/exchangeInfo").json()
    assert info["timezone"] == "UTC"
    assert {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": UNLIMITED_WEIGHT,  # the shared server has limits off
    } in info["rateLimits"]
    symbols = {entry["symbol"]: entry for entry in info["symbols"]}
    assert set(symbols) == {"BTCUSDT", "SOLUSDT"}
    btc = symbols["BTCUSDT"]
    assert btc["onboardDate"] == LISTING_MS
    assert symbols["SOLUSDT"]["onboardDate"] == SOL_LISTING_MS
    assert btc["contractType"] == "PERPETUAL"
    assert btc["status"] == "TRADING"
    assert (btc["baseAsset"], btc["quoteAsset"], btc["marginAsset"]) == ("BTC", "USDT", "USDT")
    assert (btc["pricePrecision"], btc["quantityPrecision"]) == (2, 3)
    filters = {entry["filterType"]: entry for entry in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.10"
    assert filters["LOT_SIZE"]["stepSize"] == "0.001"
    sol_filters = {entry["filterType"]: entry for entry in symbols["SOLUSDT"]["filters"]}
    assert (sol_filters["PRICE_FILTER"]["tickSize"], sol_filters["LOT_SIZE"]["stepSize"]) == (
        "0.0100",
        "1",
    )
    assert symbols["SOLUSDT"]["quantityPrecision"] == 0


def test_funding_info_lists_only_adjusted_intervals(client: httpx.Client) -> None:
    """fundingInfo has entries only for symbols whose funding interval is not 8 hours."""
    entries = client.get("/fapi/v1/fundingInfo").json()
    assert [entry["symbol"] for entry in entries] == ["SOLUSDT"]
    assert entries[0]["fundingIntervalHours"] == 4
    assert isinstance(entries[0]["fundingIntervalHours"], int)
    assert entries[0]["disclaimer"] is False


# --- klines --------------------------------------------------------------------------------------


def test_klines_types_and_values_match_the_trades(client: httpx.Client, market: Market) -> None:
    """Each kline has ints at 0/6/8, strings elsewhere, "0" at 11, and equals its trades' sums."""
    rows = klines(client, startTime=T0_MS, limit=5)
    assert [row[0] for row in rows] == [T0_MS + index * MINUTE_MS for index in range(5)]
    for row in rows:
        assert len(row) == 12
        assert [type(value) for value in row] == [
            int,
            str,
            str,
            str,
            str,
            str,
            int,
            str,
            int,
            str,
            str,
            str,
        ]
        assert row[11] == "0"
        open_ms = row[0]
        assert isinstance(open_ms, int)
        assert row[6] == open_ms + MINUTE_MS - 1
        expected = brute_force_candle(market, "BTCUSDT", open_ms, MINUTE_MS, now_ms=NOW_MS)
        assert expected is not None
        served = [Decimal(str(value)) for value in row[1:6]] + [Decimal(str(row[7]))]
        assert served == [
            expected.open,
            expected.high,
            expected.low,
            expected.close,
            expected.volume,
            expected.quote_volume,
        ]
        assert row[8] == expected.count
        assert Decimal(str(row[9])) == expected.taker_buy_volume
        assert Decimal(str(row[10])) == expected.taker_buy_quote_volume
        assert [decimals_of(str(value)) for value in row[1:6]] == [2, 2, 2, 2, 3]


def test_klines_hourly_candle_aggregates_its_trades(client: httpx.Client, market: Market) -> None:
    """A 1h candle equals the brute-force aggregation of the hour's trades."""
    (row,) = klines(client, interval="1h", startTime=T0_MS, endTime=T0_MS, limit=1)
    expected = brute_force_candle(market, "BTCUSDT", T0_MS, HOUR_MS, now_ms=NOW_MS)
    assert expected is not None
    assert row[0] == T0_MS
    assert row[6] == T0_MS + HOUR_MS - 1
    assert (Decimal(str(row[2])), Decimal(str(row[3])), row[8]) == (
        expected.high,
        expected.low,
        expected.count,
    )


def test_klines_window_is_inclusive_and_aligned(client: httpx.Client) -> None:
    """startTime rounds up and endTime down to open times; aligned bounds are both inclusive."""
    aligned = klines(client, startTime=T0_MS, endTime=T0_MS + 4 * MINUTE_MS, limit=100)
    assert [row[0] for row in aligned] == [T0_MS + index * MINUTE_MS for index in range(5)]
    shifted = klines(client, startTime=T0_MS + 1, endTime=T0_MS + 4 * MINUTE_MS + 59_999, limit=100)
    assert [row[0] for row in shifted] == [T0_MS + index * MINUTE_MS for index in range(1, 5)]


def test_klines_default_limit_applies_to_a_wide_range(client: httpx.Client) -> None:
    """Without limit, a 600-minute window still returns only the first 500 candles."""
    rows = klines(client, startTime=T0_MS, endTime=T0_MS + 600 * MINUTE_MS)
    assert len(rows) == 500
    assert rows[0][0] == T0_MS
    assert rows[-1][0] == T0_MS + 499 * MINUTE_MS


def test_klines_maximum_limit_and_rejections(client: httpx.Client) -> None:
    """limit=1500 is served; 1501 and 0 get 400/-1130 by default."""
    assert len(klines(client, startTime=T0_MS - DAY_MS, limit=1500)) == 1500
    for limit in (1501, 0):
        response = client.get(
            "/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": limit}
        )
        assert_error(response, -1130, "Data sent for parameter 'limit' is not valid.")


def test_klines_limit_clamp_option(market: Market) -> None:
    """With limit_policy="clamp" an oversized limit is served as the maximum."""
    server = ExchangeServer(
        market,
        clock=FrozenClock(NOW_MS),
        limits=Limits(enabled=False),
        rest=RestOptions(limit_policy="clamp"),
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        assert len(klines(http, startTime=T0_MS - DAY_MS, limit=5000)) == 1500
        assert (
            len(http.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "limit": 5000}).json())
            == 1000
        )


def test_klines_latest_ends_with_the_partial_candle(client: httpx.Client, market: Market) -> None:
    """Without times the last `limit` candles come back, ending with the open candle at now."""
    rows = klines(client, limit=3)
    current_open_ms = NOW_MS // MINUTE_MS * MINUTE_MS
    assert [row[0] for row in rows] == [
        current_open_ms - 2 * MINUTE_MS,
        current_open_ms - MINUTE_MS,
        current_open_ms,
    ]
    last = rows[-1]
    assert isinstance(last[6], int)
    assert last[6] > NOW_MS
    partial = brute_force_candle(market, "BTCUSDT", current_open_ms, MINUTE_MS, now_ms=NOW_MS)
    assert partial is not None
    assert (last[8], Decimal(str(last[4]))) == (partial.count, partial.close)


def test_klines_only_end_time_returns_the_candles_before_it(client: httpx.Client) -> None:
    """With only endTime, the last `limit` candles opening at or before it come back."""
    rows = klines(client, endTime=T0_MS + 30_000, limit=10)
    assert [row[0] for row in rows] == [T0_MS - index * MINUTE_MS for index in range(9, -1, -1)]


def test_klines_never_extend_past_now(client: httpx.Client) -> None:
    """A window reaching into the future stops at the candle containing now."""
    rows = klines(client, startTime=NOW_MS - 3 * MINUTE_MS, endTime=NOW_MS + DAY_MS, limit=100)
    assert [row[0] for row in rows] == [
        NOW_MS // MINUTE_MS * MINUTE_MS - index * MINUTE_MS for index in (2, 1, 0)
    ]
    assert klines(client, startTime=NOW_MS + MINUTE_MS, limit=10) == []


def test_klines_from_zero_start_at_the_listing(client: httpx.Client) -> None:
    """startTime=0 returns the earliest candles (freqtrade's listing detection); before is empty."""
    rows = klines(client, symbol="SOLUSDT", startTime=0, limit=3)
    assert [row[0] for row in rows] == [SOL_LISTING_MS + index * MINUTE_MS for index in range(3)]
    assert klines(client, symbol="SOLUSDT", startTime=0, endTime=SOL_LISTING_MS - 1) == []


def test_klines_follow_the_clock(own_server: ExchangeServer, market: Market) -> None:
    """The open candle holds exactly the trades up to the clock, then the next candle opens."""
    clock = own_server.clock
    assert isinstance(clock, FrozenClock)
    minute_ms = T0_MS + 7 * MINUTE_MS
    seen = []
    with httpx.Client(base_url=own_server.base_url) as http:
        for now_ms in (minute_ms + 5_000, minute_ms + 55_000, minute_ms + MINUTE_MS):
            clock.set(now_ms)
            rows = klines(http, limit=2)
            assert rows[-1][0] == now_ms // MINUTE_MS * MINUTE_MS
            expected = brute_force_candle(market, "BTCUSDT", minute_ms, MINUTE_MS, now_ms=now_ms)
            count, volume = (
                (0, Decimal(0)) if expected is None else (expected.count, expected.volume)
            )
            candle = next(row for row in rows if row[0] == minute_ms)
            assert (candle[8], Decimal(str(candle[5]))) == (count, volume)
            seen.append(count)
    assert seen[0] < seen[1] <= seen[2]


def test_klines_skip_maintenance_windows(client: httpx.Client, market: Market) -> None:
    """Outages produce no candles and no trades; the candles around them are served."""
    begin_ms, end_ms = market.maintenance_windows("BTCUSDT", LISTING_MS, NOW_MS)[0]
    rows = klines(
        client, startTime=begin_ms - 10 * MINUTE_MS, endTime=end_ms + 10 * MINUTE_MS - 1, limit=1000
    )
    opens = [row[0] for row in rows]
    assert opens == [begin_ms - (10 - index) * MINUTE_MS for index in range(10)] + [
        end_ms + index * MINUTE_MS for index in range(10)
    ]
    trades = client.get(
        "/fapi/v1/aggTrades",
        params={"symbol": "BTCUSDT", "startTime": begin_ms, "endTime": end_ms - 1},
    ).json()
    assert trades == []


def test_weekly_three_day_and_monthly_klines(client: httpx.Client, market: Market) -> None:
    """1w opens on Mondays, 3d on the epoch grid, 1M on the 1st; each sums its daily candles."""
    daily = market.klines("BTCUSDT", "1d", LISTING_MS, NOW_MS, now_ms=NOW_MS)
    by_day = dict(zip(daily.open_time_ms.tolist(), daily.volume_steps.tolist(), strict=True))
    counts = dict(zip(daily.open_time_ms.tolist(), daily.trade_count.tolist(), strict=True))
    for interval, first_open_ms in (
        ("1w", 1_706_486_400_000),  # Monday 2024-01-29, the first after the listing
        ("3d", -(-LISTING_MS // (3 * DAY_MS)) * 3 * DAY_MS),
        ("1M", 1_706_745_600_000),  # 2024-02-01
    ):
        rows = klines(client, interval=interval, startTime=LISTING_MS, limit=100)
        assert rows[0][0] == first_open_ms, interval
        for row, following in zip(rows, [*rows[1:], None], strict=True):
            open_ms, close_ms = row[0], row[6]
            assert isinstance(open_ms, int)
            assert isinstance(close_ms, int)
            if following is not None:
                assert close_ms == following[0] - 1
            days = [day for day in by_day if open_ms <= day <= min(close_ms, NOW_MS)]
            assert Decimal(str(row[5])) == Decimal(sum(by_day[day] for day in days)).scaleb(-3)
            assert row[8] == sum(counts[day] for day in days)
        assert rows[-1][0] <= NOW_MS <= rows[-1][6]
    weekly = klines(client, interval="1w", limit=2)
    assert [datetime.fromtimestamp(row[0] / 1000, tz=UTC).weekday() for row in weekly] == [0, 0]


@pytest.mark.parametrize(
    ("params", "code", "msg"),
    [
        (
            {"interval": "1m"},
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        ),
        (
            {"symbol": "", "interval": "1m"},
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        ),
        (
            {"symbol": "BTCUSDT"},
            -1102,
            "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
        ),
        ({"symbol": "DOGEUSDT", "interval": "1m"}, -1121, "Invalid symbol."),
        ({"symbol": "BTCUSDT", "interval": "1s"}, -1120, "Invalid interval."),
        ({"symbol": "BTCUSDT", "interval": "2m"}, -1120, "Invalid interval."),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "startTime": 5, "endTime": 4},
            -1023,
            "Start time is greater than end time.",
        ),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "startTime": "abc"},
            -1100,
            "Illegal characters found in parameter 'startTime'; legal range is '^[0-9]{1,20}$'.",
        ),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "limit": "-5"},
            -1100,
            "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
        ),
    ],
)
def test_klines_errors(
    client: httpx.Client, params: dict[str, object], code: int, msg: str
) -> None:
    """Bad klines input gets HTTP 400 with Binance's code and message (code first)."""
    response = client.get("/fapi/v1/klines", params=params)
    assert_error(response, code, msg)
    assert response.content.startswith(b'{"code":')


def test_duplicate_parameter_is_rejected(client: httpx.Client) -> None:
    """Sending a parameter twice gets -1101."""
    response = client.get("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=5&limit=6")
    assert_error(response, -1101, "Duplicate values for a parameter detected.")


def test_unknown_path_is_404(client: httpx.Client) -> None:
    """Routes the exchange does not have answer 404."""
    assert client.get("/fapi/v1/depth?symbol=BTCUSDT").status_code == 404
    assert client.get("/fapi/v2/klines").status_code == 404


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes() -> None:
    """Two servers over two markets with the same seed answer byte-identical bodies."""
    requests = [
        "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=1709000000000&limit=1500",
        "/fapi/v1/aggTrades?symbol=SOLUSDT&limit=1000",
        "/fapi/v1/fundingRate?limit=1000",
        "/futures/data/openInterestHist?symbol=BTCUSDT&period=15m&limit=500",
        "/fapi/v1/exchangeInfo",
        "/data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-03-01.zip",
    ]
    bodies = []
    for _ in range(2):
        server = ExchangeServer(
            small_market(seed=11), clock=FrozenClock(NOW_MS), limits=Limits(enabled=False)
        )
        with server, httpx.Client(base_url=server.base_url) as http:
            responses = [http.get(path) for path in requests]
        assert [response.status_code for response in responses] == [200] * len(requests)
        bodies.append([response.content for response in responses])
    assert bodies[0] == bodies[1]
    other = ExchangeServer(
        small_market(seed=12), clock=FrozenClock(NOW_MS), limits=Limits(enabled=False)
    )
    with other, httpx.Client(base_url=other.base_url) as http:
        assert http.get(requests[0]).content != bodies[0][0]


def test_bodies_parse_with_orjson(client: httpx.Client) -> None:
    """Every JSON route answers a body orjson accepts (sanity for the fault tests)."""
    for path in ("/fapi/v1/ping", "/fapi/v1/time", "/fapi/v1/exchangeInfo", "/fapi/v1/fundingInfo"):
        orjson.loads(client.get(path).content)


def test_keep_alive_reuses_one_connection(server: ExchangeServer) -> None:
    """HTTP/1.1 keep-alive: several requests (an error among them) share one TCP connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sockets = []
        for path in ("/fapi/v1/ping", "/fapi/v1/klines?symbol=NOPE&interval=1m", "/fapi/v1/time"):
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.version == 11
            response.read()
            sockets.append(connection.sock)
        assert sockets[0] is not None
        assert all(sock is sockets[0] for sock in sockets)
    finally:
        connection.close()


def test_real_clock_with_offset(market: Market) -> None:
    """RealClock follows wall time, shifted by its offset."""
    server = ExchangeServer(
        market, clock=RealClock(offset_ms=-DAY_MS), limits=Limits(enabled=False)
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        served_ms = http.get("/fapi/v1/time").json()["serverTime"]
    assert abs(served_ms - (time.time() * 1000 - DAY_MS)) < 5_000


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("1709642096789", 1_709_642_096_789),
        ("2024-03-05T12:34:56.789Z", 1_709_642_096_789),
        ("2024-03-05T12:34:56.789", 1_709_642_096_789),
        ("2024-03-05T13:34:56.789+01:00", 1_709_642_096_789),
    ],
)
def test_parse_instant(text: str, expected_ms: int) -> None:
    """--frozen-at takes epoch ms or ISO-8601 (naive = UTC)."""
    assert parse_instant_ms(text) == expected_ms

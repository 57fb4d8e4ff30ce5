"""REST conformance of the local exchange: shapes, types, defaults, maxima, windows and errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import orjson
import pytest

from ingmon.exchange import ExchangeServer, FrozenClock, Limits, Market, RestOptions

from ._support import (
    DAY_MS,
    LISTING_MS,
    MINUTE_MS,
    NOW_MS,
    SOL_LISTING_MS,
    assert_error,
    brute_force_candle,
    decimals_of,
    small_market,
)

HOUR_MS = 60 * MINUTE_MS
# An aligned minute two days before NOW, well inside the history.
T0_MS = (NOW_MS - 2 * DAY_MS) // HOUR_MS * HOUR_MS


def klines(client: httpx.Client, **params: object) -> list[list[object]]:
    """GET /fapi/v1/klines for BTCUSDT 1m (overridable) and return the parsed rows."""
    query = {"symbol": "BTCUSDT", "interval": "1m", **params}
    response = client.get("/fapi/v1/klines", params=query)
    assert response.status_code == 200, response.text
    rows: list[list[object]] = response.json()
    return rows


@pytest.fixture
def own_server(market: Market) -> Iterator[ExchangeServer]:
    """A private server (its clock may be moved) frozen at NOW_MS, limits off."""
    with ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=Limits(enabled=False)) as running:
        yield running


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
        "limit": 2400,
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


# --- aggTrades -----------------------------------------------------------------------------------


def test_agg_trades_keys_types_and_values(client: httpx.Client, market: Market) -> None:
    """aggTrades rows are {a,p,q,f,l,T,m} with ints/strings/bool, equal to the market's trades."""
    start_ms, end_ms = T0_MS, T0_MS + 10 * MINUTE_MS - 1
    rows = client.get(
        "/fapi/v1/aggTrades",
        params={"symbol": "BTCUSDT", "startTime": start_ms, "endTime": end_ms, "limit": 1000},
    ).json()
    trades = market.agg_trades("BTCUSDT", start_ms, end_ms)
    assert 0 < len(rows) == len(trades.agg_id)
    for row in rows:
        assert list(row) == ["a", "p", "q", "f", "l", "T", "m"]
        assert [type(row[key]) for key in "apqflTm"] == [int, str, str, int, int, int, bool]
        assert decimals_of(row["p"]) == 2
        assert decimals_of(row["q"]) == 3
    assert [row["a"] for row in rows] == trades.agg_id.tolist()
    assert [row["T"] for row in rows] == trades.time_ms.tolist()
    assert [Decimal(row["p"]) for row in rows] == [
        Decimal(int(value)).scaleb(-2) for value in trades.price_ticks
    ]
    assert [Decimal(row["q"]) for row in rows] == [
        Decimal(int(value)) / 1000 for value in trades.qty_steps
    ]
    assert [row["m"] for row in rows] == trades.buyer_is_maker.tolist()
    assert [(row["f"], row["l"]) for row in rows] == list(
        zip(trades.first_trade_id.tolist(), trades.last_trade_id.tolist(), strict=True)
    )


def test_agg_trades_default_is_the_latest_500(client: httpx.Client, market: Market) -> None:
    """Without parameters the most recent 500 trades (T <= now) come back, ascending."""
    rows = client.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT"}).json()
    assert len(rows) == 500
    last_id = market.first_agg_id_at("BTCUSDT", NOW_MS + 1) - 1
    assert [row["a"] for row in rows] == list(range(last_id - 499, last_id + 1))
    assert rows[-1]["T"] <= NOW_MS


def test_agg_trades_limit_maximum(client: httpx.Client) -> None:
    """limit=1000 is served; 1001 gets -1130."""
    assert (
        len(client.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "limit": 1000}).json())
        == 1000
    )
    response = client.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "limit": 1001})
    assert_error(response, -1130, "Data sent for parameter 'limit' is not valid.")


def test_agg_trades_from_id_is_inclusive(client: httpx.Client, market: Market) -> None:
    """fromId returns that trade first, then consecutive ids; paging with last+1 has no overlap."""
    first_id = market.first_agg_id_at("BTCUSDT", T0_MS)
    page = client.get(
        "/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "fromId": first_id, "limit": 50}
    ).json()
    assert [row["a"] for row in page] == list(range(first_id, first_id + 50))
    following = client.get(
        "/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "fromId": page[-1]["a"] + 1, "limit": 50}
    ).json()
    assert following[0]["a"] == page[-1]["a"] + 1


def test_agg_trades_from_id_stops_at_now(client: httpx.Client, market: Market) -> None:
    """fromId near the newest trade returns only trades up to now."""
    last_id = market.first_agg_id_at("BTCUSDT", NOW_MS + 1) - 1
    rows = client.get(
        "/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "fromId": last_id - 2, "limit": 100}
    ).json()
    assert [row["a"] for row in rows] == [last_id - 2, last_id - 1, last_id]


def test_agg_trades_one_hour_window_rule(client: httpx.Client) -> None:
    """startTime/endTime one hour apart or more get -1127; just under an hour is fine."""
    ok = client.get(
        "/fapi/v1/aggTrades",
        params={"symbol": "BTCUSDT", "startTime": T0_MS, "endTime": T0_MS + HOUR_MS - 1},
    )
    assert ok.status_code == 200
    too_wide = client.get(
        "/fapi/v1/aggTrades",
        params={"symbol": "BTCUSDT", "startTime": T0_MS, "endTime": T0_MS + HOUR_MS},
    )
    assert_error(too_wide, -1127, "More than 1 hours between startTime and endTime.")
    backwards = client.get(
        "/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "startTime": T0_MS + 1, "endTime": T0_MS}
    )
    assert_error(backwards, -1023, "Start time is greater than end time.")


def test_agg_trades_out_of_retention_returns_recent_trades(market: Market) -> None:
    """With 24 h retention an older window returns the most recent trades, not an error."""
    server = ExchangeServer(
        market,
        clock=FrozenClock(NOW_MS),
        limits=Limits(enabled=False),
        rest=RestOptions(agg_trades_retention_ms=DAY_MS),
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        latest = http.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "limit": 100}).json()
        old_window = http.get(
            "/fapi/v1/aggTrades",
            params={
                "symbol": "BTCUSDT",
                "startTime": T0_MS,
                "endTime": T0_MS + 60_000,
                "limit": 100,
            },
        )
        assert old_window.status_code == 200
        assert old_window.json() == latest
        assert all(row["T"] > T0_MS + 60_000 for row in old_window.json())
        from_zero = http.get(
            "/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "fromId": 0, "limit": 5}
        ).json()
    assert from_zero[0]["a"] == market.first_agg_id_at("BTCUSDT", NOW_MS - DAY_MS)


def test_agg_trades_default_retention_reaches_the_listing(
    client: httpx.Client, market: Market
) -> None:
    """With the default one-year retention the first trades after listing are served."""
    rows = client.get(
        "/fapi/v1/aggTrades",
        params={"symbol": "BTCUSDT", "startTime": LISTING_MS, "endTime": LISTING_MS + 59_999},
    ).json()
    assert [row["a"] for row in rows] == market.agg_trades(
        "BTCUSDT", LISTING_MS, LISTING_MS + 59_999
    ).agg_id.tolist()


def test_agg_trades_unknown_symbol(client: httpx.Client) -> None:
    """An unknown symbol gets -1121; a missing one -1102."""
    assert_error(
        client.get("/fapi/v1/aggTrades", params={"symbol": "XRPUSDT"}), -1121, "Invalid symbol."
    )
    assert_error(
        client.get("/fapi/v1/aggTrades"),
        -1102,
        "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    )


# --- openInterestHist ----------------------------------------------------------------------------


def test_open_interest_shape_and_defaults(client: httpx.Client, market: Market) -> None:
    """Default 30 rows ending at now, 5-minute grid, integer timestamps, string amounts."""
    response = client.get(
        "/futures/data/openInterestHist", params={"symbol": "BTCUSDT", "period": "5m"}
    )
    rows = response.json()
    assert len(rows) == 30
    for row in rows:
        assert list(row) == [
            "symbol",
            "sumOpenInterest",
            "sumOpenInterestValue",
            "CMCCirculatingSupply",
            "timestamp",
        ]
        assert row["symbol"] == "BTCUSDT"
        assert isinstance(row["timestamp"], int)
        for key in ("sumOpenInterest", "sumOpenInterestValue", "CMCCirculatingSupply"):
            assert isinstance(row[key], str)
            Decimal(row[key])
    stamps = [row["timestamp"] for row in rows]
    assert stamps == sorted(stamps)
    assert all(stamp % (5 * MINUTE_MS) == 0 for stamp in stamps)
    assert stamps[-1] <= NOW_MS < stamps[-1] + 5 * MINUTE_MS
    table = market.open_interest("BTCUSDT", "5m", stamps[0], stamps[-1])
    assert table.timestamp_ms.tolist() == stamps
    steps = [Decimal(int(value)) / 1000 for value in table.sum_open_interest_steps]
    assert [Decimal(row["sumOpenInterest"]) for row in rows] == steps


def test_open_interest_limit_and_window(client: httpx.Client) -> None:
    """limit up to 500; a start/end window returns its grid points, both ends inclusive."""
    start_ms = T0_MS
    rows = client.get(
        "/futures/data/openInterestHist",
        params={
            "symbol": "BTCUSDT",
            "period": "1h",
            "startTime": start_ms,
            "endTime": start_ms + 5 * HOUR_MS,
        },
    ).json()
    assert [row["timestamp"] for row in rows] == [start_ms + index * HOUR_MS for index in range(6)]
    assert (
        len(
            client.get(
                "/futures/data/openInterestHist",
                params={"symbol": "BTCUSDT", "period": "5m", "limit": 500},
            ).json()
        )
        == 500
    )
    response = client.get(
        "/futures/data/openInterestHist", params={"symbol": "BTCUSDT", "period": "5m", "limit": 501}
    )
    assert response.status_code == 400
    assert (
        response.content
        == b'{"msg":"Data sent for parameter \'limit\' is not valid.","code":-1130}'
    )


def test_open_interest_thirty_day_retention(client: httpx.Client) -> None:
    """A startTime older than 30 days gets -1130 "parameter 'startTime' is invalid." (msg first)."""
    response = client.get(
        "/futures/data/openInterestHist",
        params={"symbol": "BTCUSDT", "period": "5m", "startTime": NOW_MS - 31 * DAY_MS},
    )
    assert response.status_code == 400
    assert response.content == b'{"msg":"parameter \'startTime\' is invalid.","code":-1130}'
    recent = client.get(
        "/futures/data/openInterestHist",
        params={
            "symbol": "BTCUSDT",
            "period": "1d",
            "startTime": NOW_MS - 29 * DAY_MS,
            "limit": 500,
        },
    ).json()
    assert len(recent) == 29


def test_open_interest_errors(client: httpx.Client) -> None:
    """Missing or bad period and unknown symbols get Binance's errors, msg first."""
    missing = client.get("/futures/data/openInterestHist", params={"symbol": "BTCUSDT"})
    assert missing.status_code == 400
    assert missing.json() == {
        "code": -1102,
        "msg": "Mandatory parameter 'period' was not sent, was empty/null, or malformed.",
    }
    assert missing.content.startswith(b'{"msg":')
    bad_period = client.get(
        "/futures/data/openInterestHist", params={"symbol": "BTCUSDT", "period": "3m"}
    )
    assert bad_period.json() == {"code": -1130, "msg": "parameter 'period' is invalid."}
    unknown = client.get(
        "/futures/data/openInterestHist", params={"symbol": "XRPUSDT", "period": "5m"}
    )
    assert unknown.json() == {"code": -1121, "msg": "Invalid symbol."}


def test_open_interest_string_timestamp_option(market: Market) -> None:
    """oi_timestamp_as_string serves the documented string timestamps."""
    server = ExchangeServer(
        market,
        clock=FrozenClock(NOW_MS),
        limits=Limits(enabled=False),
        rest=RestOptions(oi_timestamp_as_string=True),
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        rows = http.get(
            "/futures/data/openInterestHist",
            params={"symbol": "BTCUSDT", "period": "5m", "limit": 2},
        ).json()
    assert all(isinstance(row["timestamp"], str) and row["timestamp"].isdigit() for row in rows)


# --- fundingRate ---------------------------------------------------------------------------------


def test_funding_rate_fields_and_start_anchor(client: httpx.Client, market: Market) -> None:
    """Rows are symbol/fundingRate/fundingTime/markPrice/rateType, anchored at startTime."""
    rows = client.get(
        "/fapi/v1/fundingRate", params={"symbol": "BTCUSDT", "startTime": LISTING_MS, "limit": 3}
    ).json()
    expected = market.funding("BTCUSDT", LISTING_MS, LISTING_MS + DAY_MS)
    assert [row["fundingTime"] for row in rows] == expected.funding_time_ms.tolist()[:3]
    assert [row["fundingTime"] % (8 * HOUR_MS) for row in rows] == [0, 0, 0]
    for row, rate in zip(rows, expected.funding_rate.tolist(), strict=False):
        assert list(row) == ["symbol", "fundingRate", "fundingTime", "markPrice", "rateType"]
        assert isinstance(row["fundingTime"], int)
        assert isinstance(row["fundingRate"], str)
        assert decimals_of(row["fundingRate"]) == 8
        assert Decimal(row["fundingRate"]) == round(Decimal(rate), 8)
        assert isinstance(row["markPrice"], str)
        assert Decimal(row["markPrice"]) > 0


def test_funding_rate_default_is_the_most_recent(client: httpx.Client, market: Market) -> None:
    """Without times the most recent `limit` settlements (default 100) come back."""
    rows = client.get("/fapi/v1/fundingRate", params={"symbol": "BTCUSDT", "limit": 4}).json()
    settled = market.funding("BTCUSDT", LISTING_MS, NOW_MS).funding_time_ms.tolist()
    assert [row["fundingTime"] for row in rows] == settled[-4:]
    everything = client.get("/fapi/v1/fundingRate", params={"symbol": "BTCUSDT"}).json()
    assert len(everything) == min(100, len(settled))
    too_many = client.get("/fapi/v1/fundingRate", params={"symbol": "BTCUSDT", "limit": 1001})
    assert_error(too_many, -1130, "Data sent for parameter 'limit' is not valid.")


def test_funding_rate_without_symbol_covers_all(client: httpx.Client) -> None:
    """Without symbol, rows of every symbol come back in time order (SOLUSDT every 4 hours)."""
    rows = client.get("/fapi/v1/fundingRate", params={"startTime": NOW_MS - DAY_MS}).json()
    symbols = {row["symbol"] for row in rows}
    assert symbols == {"BTCUSDT", "SOLUSDT"}
    times = [row["fundingTime"] for row in rows]
    assert times == sorted(times)
    assert sum(row["symbol"] == "SOLUSDT" for row in rows) == 6
    assert sum(row["symbol"] == "BTCUSDT" for row in rows) == 3


def test_funding_time_jitter_option(market: Market) -> None:
    """funding_jitter_ms moves fundingTime 0..N ms after the hour, the same on every request."""
    server = ExchangeServer(
        market,
        clock=FrozenClock(NOW_MS),
        limits=Limits(enabled=False),
        rest=RestOptions(funding_jitter_ms=3),
    )
    params = {"symbol": "SOLUSDT", "limit": 100}
    with server, httpx.Client(base_url=server.base_url) as http:
        first = http.get("/fapi/v1/fundingRate", params=params).json()
        second = http.get("/fapi/v1/fundingRate", params=params).json()
    assert first == second
    offsets = [row["fundingTime"] % HOUR_MS for row in first]
    assert set(offsets) <= {0, 1, 2, 3}
    assert len(set(offsets)) > 1


def test_funding_rate_errors(client: httpx.Client) -> None:
    """Unknown symbol and reversed windows get Binance's errors."""
    assert_error(
        client.get("/fapi/v1/fundingRate", params={"symbol": "XRPUSDT"}), -1121, "Invalid symbol."
    )
    reversed_window = client.get("/fapi/v1/fundingRate", params={"startTime": 10, "endTime": 9})
    assert_error(reversed_window, -1023, "Start time is greater than end time.")


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

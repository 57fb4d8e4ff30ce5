"""REST conformance of aggTrades, openInterestHist and fundingRate: shapes, windows, retention."""

from __future__ import annotations

from decimal import Decimal

import httpx

from ingmon.exchange import ExchangeServer, FrozenClock, Limits, Market, RestOptions

from ._support import (
    DAY_MS,
    LISTING_MS,
    MINUTE_MS,
    NOW_MS,
    assert_error,
    decimals_of,
)

HOUR_MS = 60 * MINUTE_MS
# An aligned minute two days before NOW, well inside the history.
T0_MS = (NOW_MS - 2 * DAY_MS) // HOUR_MS * HOUR_MS


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

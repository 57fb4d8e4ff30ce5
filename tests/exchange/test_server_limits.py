"""Request weights, X-MBX-USED-WEIGHT headers, 429 → 418 escalation and the 5-minute limits."""

from __future__ import annotations

import httpx
import pytest

from ingmon.errors import ConfigError
from ingmon.exchange import ExchangeServer, FrozenClock, Limits, Market
from ingmon.exchange.limits import RateLimiter

from ._support import NOW_MS

# A day-long weight window, so the weight header is X-MBX-USED-WEIGHT-1D.
DAY_WINDOW = Limits(window_seconds=86_400.0)
# 2024-03-05 12:30:00.250 UTC: the limiter's wall time in these tests. A quarter second into
# a one-second window, half an hour into an hour and mid-day: no window ends unless a test
# moves the clock.
WALL_MS = 1_709_641_800_250


def limited_server(market: Market, limits: Limits, wall: FrozenClock) -> ExchangeServer:
    """An exchange whose rate limiter reads ``wall`` instead of real time (limit windows are
    real time by design): window boundaries come only when a test moves ``wall``."""
    server = ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=limits)
    server.limiter = RateLimiter(limits, wall_seconds=lambda: wall.now_ms() / 1000)
    return server


def used(response: httpx.Response, header: str = "X-MBX-USED-WEIGHT-1D") -> int:
    """The used-weight header as an integer."""
    return int(response.headers[header])


def test_default_limits_advertise_one_minute_weight(market: Market) -> None:
    """Binance's defaults: 2400 weight per minute, header X-MBX-USED-WEIGHT-1M on every route."""
    server = ExchangeServer(market, clock=FrozenClock(NOW_MS))
    with server, httpx.Client(base_url=server.base_url) as http:
        info = http.get("/fapi/v1/exchangeInfo")
        weight_limit = [
            entry
            for entry in info.json()["rateLimits"]
            if entry["rateLimitType"] == "REQUEST_WEIGHT"
        ]
        assert weight_limit == [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 2400,
            }
        ]
        for path in (
            "/fapi/v1/ping",
            "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1",
            "/fapi/v1/klines?symbol=NOPE&interval=1m",
            "/fapi/v1/fundingRate?symbol=BTCUSDT&limit=1",
            "/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&limit=1",
        ):
            assert "X-MBX-USED-WEIGHT-1M" in http.get(path).headers


def test_scaled_limits_rename_the_header_and_rate_limits(market: Market) -> None:
    """Limits.scaled(0.1) runs a 6 s window, advertised as 6 SECOND and X-MBX-USED-WEIGHT-6S."""
    limits = Limits().scaled(0.1)
    assert (limits.window_seconds, limits.ban_seconds, limits.five_minute_window_seconds) == (
        6.0,
        12.0,
        30.0,
    )
    server = ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=limits)
    with server, httpx.Client(base_url=server.base_url) as http:
        info = http.get("/fapi/v1/exchangeInfo")
    assert "X-MBX-USED-WEIGHT-6S" in info.headers
    assert "X-MBX-USED-WEIGHT-1M" not in info.headers
    assert {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "SECOND",
        "intervalNum": 6,
        "limit": 2400,
    } in info.json()["rateLimits"]


def test_limits_reject_bad_windows() -> None:
    """A fractional or zero weight window and a non-positive scale are configuration errors."""
    with pytest.raises(ConfigError):
        Limits(window_seconds=1.5)
    with pytest.raises(ConfigError):
        Limits(weight_per_window=0)
    with pytest.raises(ConfigError):
        Limits().scaled(0)
    assert Limits().scaled(0.001).window_seconds == 1.0


@pytest.mark.parametrize(
    ("path", "weight"),
    [
        ("/fapi/v1/ping", 1),
        ("/fapi/v1/time", 1),
        ("/fapi/v1/exchangeInfo", 1),
        ("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=99", 1),
        ("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=100", 2),
        ("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=499", 2),
        ("/fapi/v1/klines?symbol=BTCUSDT&interval=1m", 5),
        ("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1000", 5),
        ("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1001", 10),
        ("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1500", 10),
        ("/fapi/v1/aggTrades?symbol=BTCUSDT&limit=1", 20),
        ("/fapi/v1/aggTrades?symbol=BTCUSDT&limit=1000", 20),
        ("/fapi/v1/fundingRate?symbol=BTCUSDT", 0),
        ("/fapi/v1/fundingInfo", 0),
        ("/futures/data/openInterestHist?symbol=BTCUSDT&period=5m", 0),
    ],
)
def test_request_weight_per_route(market: Market, path: str, weight: int) -> None:
    """Each route charges Binance's weight (klines by limit tier), visible in the header."""
    server = limited_server(market, DAY_WINDOW, FrozenClock(WALL_MS))
    with server, httpx.Client(base_url=server.base_url) as http:
        before = used(http.get("/fapi/v1/ping"))
        response = http.get(path)
    assert response.status_code == 200
    assert used(response) - before == weight
    assert server.stats.weight_used == 1 + weight


def test_limits_off_still_count_weight(market: Market) -> None:
    """Limits(enabled=False) never rejects but keeps counting the used weight."""
    limits = Limits(enabled=False, weight_per_window=3, window_seconds=86_400.0)
    server = limited_server(market, limits, FrozenClock(WALL_MS))
    with server, httpx.Client(base_url=server.base_url) as http:
        responses = [http.get("/fapi/v1/ping") for _ in range(6)]
    assert [response.status_code for response in responses] == [200] * 6
    assert [used(response) for response in responses] == [1, 2, 3, 4, 5, 6]


def test_429_body_and_retry_after(market: Market) -> None:
    """Over the weight limit: 429, Retry-After = whole seconds to the window end, -1003 body."""
    limits = Limits(weight_per_window=25, window_seconds=86_400.0)
    server = limited_server(market, limits, FrozenClock(WALL_MS))
    with server, httpx.Client(base_url=server.base_url) as http:
        accepted = http.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "limit": 1})
        refused = http.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "limit": 1})
        small = http.get("/fapi/v1/ping")
    assert accepted.status_code == 200
    assert refused.status_code == 429
    # 12:30:00.250 → midnight is 41 399.75 s away: Retry-After rounds up to whole seconds.
    assert refused.headers["Retry-After"] == "41400"
    assert refused.json() == {
        "code": -1003,
        "msg": "Too many requests; current limit of IP(127.0.0.1) is 25 requests per day. "
        "Please use the websocket for live updates to avoid polling the API.",
    }
    assert used(refused) == 20
    # A client in back-off is refused even for requests that would fit.
    assert small.status_code == 429
    assert server.stats.rate_limited == 2


def test_429_escalates_to_418_ban_and_recovers(market: Market) -> None:
    """Requests after a 429 lead to a 418 ban with Retry-After; the ban outlives the window."""
    limits = Limits(weight_per_window=5, requests_before_ban=2).scaled(1 / 60)
    assert (limits.window_seconds, limits.ban_seconds) == (1.0, 2.0)
    wall = FrozenClock(WALL_MS)
    server = limited_server(market, limits, wall)
    with server, httpx.Client(base_url=server.base_url) as http:
        statuses = [http.get("/fapi/v1/ping").status_code for _ in range(5)]
        limited = [http.get("/fapi/v1/ping") for _ in range(3)]
        banned = http.get("/fapi/v1/ping")
        assert statuses == [200] * 5
        assert [response.status_code for response in limited] == [429, 429, 429]
        assert [response.headers["Retry-After"] for response in limited] == ["1", "1", "1"]
        assert "X-MBX-USED-WEIGHT-1S" in limited[0].headers
        assert banned.status_code == 418
        assert banned.headers["Retry-After"] == "2"
        message = banned.json()["msg"]
        assert message.startswith("Way too many requests; IP(127.0.0.1) banned until ")
        until_ms = int(message.split("banned until ")[1].split(".")[0])
        assert until_ms == WALL_MS + 2000
        wall.advance(1100)  # the weight window rolled over, the ban did not
        assert http.get("/fapi/v1/ping").status_code == 418
        wall.set(until_ms - 1)
        assert http.get("/fapi/v1/ping").status_code == 418
        wall.set(until_ms)
        assert http.get("/fapi/v1/ping").status_code == 200
    assert server.stats.banned == 3  # the first 418 and the two probes while banned
    assert server.stats.rate_limited == 3


def test_repeat_bans_double(market: Market) -> None:
    """A second ban lasts twice as long as the first (Binance scales bans for repeat offenders)."""
    limits = Limits(
        weight_per_window=1, window_seconds=86_400.0, requests_before_ban=0, ban_seconds=1.0
    )
    wall = FrozenClock(WALL_MS)
    server = limited_server(market, limits, wall)
    with server, httpx.Client(base_url=server.base_url) as http:
        assert http.get("/fapi/v1/ping").status_code == 200
        assert http.get("/fapi/v1/ping").status_code == 429
        first = http.get("/fapi/v1/ping")
        wall.advance(1000)  # the first ban is over; the day's weight is still spent
        assert http.get("/fapi/v1/ping").status_code == 429
        second = http.get("/fapi/v1/ping")
    assert (first.status_code, second.status_code) == (418, 418)
    assert (first.headers["Retry-After"], second.headers["Retry-After"]) == ("1", "2")


def test_five_minute_limits_are_separate(market: Market) -> None:
    """fundingRate+fundingInfo share one 5-minute counter, /futures/data another; weight stays 0."""
    limits = Limits(
        weight_per_window=2400,
        window_seconds=86_400.0,
        funding_requests_per_5m=3,
        data_requests_per_5m=2,
        five_minute_window_seconds=3_600.0,
    )
    server = limited_server(market, limits, FrozenClock(WALL_MS))
    with server, httpx.Client(base_url=server.base_url) as http:
        funding = [
            http.get("/fapi/v1/fundingRate", params={"symbol": "BTCUSDT", "limit": 1}),
            http.get("/fapi/v1/fundingInfo"),
            http.get("/fapi/v1/fundingRate", params={"symbol": "BTCUSDT", "limit": 1}),
            http.get("/fapi/v1/fundingInfo"),
        ]
        interest = [
            http.get("/futures/data/openInterestHist", params={"symbol": "BTCUSDT", "period": "5m"})
            for _ in range(3)
        ]
        klines = http.get(
            "/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 1}
        )
    assert [response.status_code for response in funding] == [200, 200, 200, 429]
    assert [response.status_code for response in interest] == [200, 200, 429]
    assert "is 3 requests per hour" in funding[-1].json()["msg"]
    assert "Retry-After" in interest[-1].headers
    assert klines.status_code == 200
    assert used(klines) == 1


def test_limits_are_per_client_address(market: Market) -> None:
    """Another loopback source address (127.0.0.2) has its own budget."""
    limits = Limits(weight_per_window=2, window_seconds=86_400.0)
    server = limited_server(market, limits, FrozenClock(WALL_MS))
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with (
        server,
        httpx.Client(base_url=server.base_url) as first,
        httpx.Client(base_url=server.base_url, transport=other) as second,
    ):
        assert [first.get("/fapi/v1/ping").status_code for _ in range(3)] == [200, 200, 429]
        response = second.get("/fapi/v1/ping")
        assert response.status_code == 200
        assert used(response) == 1
        assert "IP(127.0.0.1)" in first.get("/fapi/v1/ping").json()["msg"]


def test_archive_requests_are_not_weighted(market: Market) -> None:
    """Archive downloads neither charge weight nor carry the weight header."""
    server = limited_server(market, DAY_WINDOW, FrozenClock(WALL_MS))
    with server, httpx.Client(base_url=server.base_url) as http:
        archive = http.get("/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-03-01.zip")
        ping = http.get("/fapi/v1/ping")
    assert archive.status_code == 200
    assert "X-MBX-USED-WEIGHT-1D" not in archive.headers
    assert used(ping) == 1
    assert server.stats.weight_used == 1

"""BinanceClient over real HTTP against the local exchange: parsing, retries, limits, errors."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ingmon.binance.client import BinanceClient
from ingmon.binance.limits import Aborted, RateLimits
from ingmon.errors import BannedError, ExchangeError, ExchangeUnavailableError
from ingmon.exchange import (
    ExchangeServer,
    FaultRule,
    FaultSchedule,
    FrozenClock,
    Limits,
    Market,
    RestOptions,
)
from ingmon.exchange.limits import UNLIMITED_WEIGHT

from ._reference import table_rows

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
# 2024-03-03 00:00 UTC: two days before the exchanges' frozen now, inside every REST retention
# and clear of the test market's maintenance windows.
T0_MS = 1_709_424_000_000

StartExchange = Callable[..., ExchangeServer]
MakeClient = Callable[..., BinanceClient]


# ---- independent reference values: the Market's integer arrays as decimal strings → float ----


def decimal(units: Any, places: int) -> float:
    """``units`` × 10**-places read back the way a client reads Binance's decimal strings."""
    return float(str(Decimal(int(units)).scaleb(-places)))


def rounded(value: float, places: int) -> float:
    """A float rendered with ``places`` decimals (as the exchange writes it), read back."""
    return decimal(round(float(value) * 10**places), places)


def expected_klines(
    market: Market, symbol: str, first_open_ms: int, last_open_ms: int, *, now_ms: int
) -> list[dict[str, Any]]:
    """Closed 1m candles opening in [first, last], from the market's arrays."""
    spec = market.spec(symbol)
    price, quantity = spec.price_decimals, spec.quantity_decimals
    candles = market.klines(symbol, "1m", first_open_ms, last_open_ms, now_ms=now_ms)
    rows = []
    for index in range(len(candles)):
        if int(candles.close_time_ms[index]) >= now_ms:
            continue
        rows.append(
            {
                "open_time": int(candles.open_time_ms[index]),
                "open": decimal(candles.open_ticks[index], price),
                "high": decimal(candles.high_ticks[index], price),
                "low": decimal(candles.low_ticks[index], price),
                "close": decimal(candles.close_ticks[index], price),
                "volume": decimal(candles.volume_steps[index], quantity),
                "close_time": int(candles.close_time_ms[index]),
                "quote_volume": decimal(candles.quote_volume_units[index], price + quantity),
                "trade_count": int(candles.trade_count[index]),
                "taker_buy_volume": decimal(candles.taker_buy_volume_steps[index], quantity),
                "taker_buy_quote_volume": decimal(
                    candles.taker_buy_quote_units[index], price + quantity
                ),
                "ignore": 0.0,
            }
        )
    return rows


def expected_trades(
    market: Market, symbol: str, start_ms: int, end_ms: int, *, from_id: int = 0, count: int
) -> list[dict[str, Any]]:
    """The first ``count`` trades with id >= from_id among those of [start, end]."""
    spec = market.spec(symbol)
    trades = market.agg_trades(symbol, start_ms, end_ms)
    rows = [
        {
            "agg_trade_id": int(trades.agg_id[index]),
            "price": decimal(trades.price_ticks[index], spec.price_decimals),
            "quantity": decimal(trades.qty_steps[index], spec.quantity_decimals),
            "first_trade_id": int(trades.first_trade_id[index]),
            "last_trade_id": int(trades.last_trade_id[index]),
            "transact_time": int(trades.time_ms[index]),
            "is_buyer_maker": bool(trades.buyer_is_maker[index]),
        }
        for index in range(len(trades))
        if int(trades.agg_id[index]) >= from_id
    ]
    assert len(rows) >= count, "the reference window is too short"
    return rows[:count]


def expected_open_interest(
    market: Market, symbol: str, start_ms: int, end_ms: int
) -> list[dict[str, Any]]:
    spec = market.spec(symbol)
    interest = market.open_interest(symbol, "5m", start_ms, end_ms)
    return [
        {
            "timestamp": int(interest.timestamp_ms[index]),
            "sum_open_interest": decimal(
                interest.sum_open_interest_steps[index], spec.quantity_decimals
            ),
            "sum_open_interest_value": rounded(interest.sum_open_interest_value[index], 8),
            "cmc_circulating_supply": rounded(interest.cmc_circulating_supply[index], 2),
        }
        for index in range(len(interest))
    ]


def expected_funding(
    market: Market, symbol: str, start_ms: int, end_ms: int
) -> list[dict[str, Any]]:
    spec = market.spec(symbol)
    rates = market.funding(symbol, start_ms, end_ms)
    return [
        {
            "funding_time": int(rates.funding_time_ms[index]),
            "funding_rate": decimal(rates.funding_rate_e8[index], 8),
            "mark_price": decimal(rates.mark_price_ticks[index], spec.price_decimals),
            "funding_interval_hours": None,
        }
        for index in range(len(rates))
    ]


# ---- a transport that records what went over the wire ------------------------------------------


@dataclass
class Exchange:
    """One request/response pair as seen on the wire."""

    sent_at: float
    received_at: float
    path: str
    response: httpx.Response


class RecordingTransport(httpx.HTTPTransport):
    """A real HTTP transport that keeps every request's send time and response."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sent_at = time.time()
        response = super().handle_request(request)
        response.read()
        with self._lock:
            self.exchanges.append(Exchange(sent_at, time.time(), request.url.path, response))
        return response

    def statuses(self) -> list[int]:
        return [exchange.response.status_code for exchange in self.exchanges]


def faults(*specs: str, **options: Any) -> FaultSchedule:
    return FaultSchedule.parse(specs, **options)


def one_hour_of_klines(client: BinanceClient) -> Any:
    return client.klines("BTCUSDT", "1m", start_ms=T0_MS, end_ms=T0_MS + HOUR_MS - 1)


# ---- each route parsed into the lake schema ---------------------------------------------------


@pytest.fixture(scope="module")
def plain_exchange(market: Market) -> Iterator[ExchangeServer]:
    """One fault-free, limit-free server shared by a module's read-only tests."""
    now_ms = 1_709_642_096_789  # conftest's default now
    with ExchangeServer(market, clock=FrozenClock(now_ms), limits=Limits(enabled=False)) as server:
        yield server


@pytest.mark.parametrize("symbol", ["BTCUSDT", "SOLUSDT"])
def test_klines_page_equals_market(
    market: Market, plain_exchange: ExchangeServer, binance_client: MakeClient, symbol: str
) -> None:
    """A klines page of a day window holds the first 499 candles, each equal to the market's."""
    client = binance_client(plain_exchange)
    page = client.klines(symbol, "1m", start_ms=T0_MS, end_ms=T0_MS + DAY_MS - 1, limit=499)
    now_ms = plain_exchange.clock.now_ms()
    want = expected_klines(market, symbol, T0_MS, T0_MS + 498 * MINUTE_MS, now_ms=now_ms)
    assert len(want) == 499
    assert table_rows(page.table) == want
    assert page.full
    assert (page.received, page.rejected, page.duplicates) == (499, 0, 0)
    assert page.cursor.startswith("/fapi/v1/klines?symbol=" + symbol)


def test_klines_open_candle_dropped(
    market: Market, plain_exchange: ExchangeServer, binance_client: MakeClient
) -> None:
    """The exchange sends the still-open candle; ``closed_before_ms=now`` keeps it out."""
    now_ms = plain_exchange.clock.now_ms()
    start_ms = now_ms // MINUTE_MS * MINUTE_MS - 10 * MINUTE_MS
    client = binance_client(plain_exchange)
    page = client.klines("BTCUSDT", "1m", start_ms=start_ms, end_ms=now_ms, closed_before_ms=now_ms)
    assert page.received == 11
    assert page.rejected == 1
    assert table_rows(page.table) == expected_klines(
        market, "BTCUSDT", start_ms, now_ms, now_ms=now_ms
    )
    assert len(page.table) == 10


@pytest.mark.parametrize("symbol", ["BTCUSDT", "SOLUSDT"])
def test_agg_trades_by_from_id_equal_market(
    market: Market, plain_exchange: ExchangeServer, binance_client: MakeClient, symbol: str
) -> None:
    """A fromId page holds the 1000 trades from fromId on, each equal to the market's."""
    from_id = market.first_agg_id_at(symbol, T0_MS) + 17
    client = binance_client(plain_exchange)
    page = client.agg_trades(symbol, from_id=from_id)
    want = expected_trades(market, symbol, T0_MS, T0_MS + DAY_MS, from_id=from_id, count=1000)
    assert table_rows(page.table) == want
    assert page.full


def test_agg_trades_by_time_window_equal_market(
    market: Market, plain_exchange: ExchangeServer, binance_client: MakeClient
) -> None:
    """A startTime/endTime page (< 1 h) holds that window's trades, equal to the market's."""
    end_ms = T0_MS + 20 * MINUTE_MS - 1
    client = binance_client(plain_exchange)
    page = client.agg_trades("BTCUSDT", start_ms=T0_MS, end_ms=end_ms)
    count = len(market.agg_trades("BTCUSDT", T0_MS, end_ms))
    assert 0 < count < 1000
    assert table_rows(page.table) == expected_trades(market, "BTCUSDT", T0_MS, end_ms, count=count)
    assert not page.full


@pytest.mark.parametrize("as_string", [False, True], ids=["int-timestamp", "string-timestamp"])
def test_open_interest_equals_market(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient, as_string: bool
) -> None:
    """openInterestHist rows of one day equal the market's, whatever the timestamp's JSON type."""
    server = start_exchange(market, rest=RestOptions(oi_timestamp_as_string=as_string))
    client = binance_client(server)
    end_ms = T0_MS + DAY_MS - 1
    page = client.open_interest("SOLUSDT", "5m", start_ms=T0_MS, end_ms=end_ms)
    want = expected_open_interest(market, "SOLUSDT", T0_MS, end_ms)
    assert len(want) == 288
    assert table_rows(page.table) == want


@pytest.mark.parametrize("symbol", ["BTCUSDT", "SOLUSDT"])
def test_funding_equals_market_with_ms_jitter(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient, symbol: str
) -> None:
    """fundingRate sent a few ms after the hour is stored on the market's exact settlement times."""
    server = start_exchange(market, rest=RestOptions(funding_jitter_ms=7))
    client = binance_client(server)
    start_ms = T0_MS - 20 * DAY_MS
    # Not on a settlement: a jittered settlement at exactly endTime would lie past it.
    end_ms = T0_MS + DAY_MS + HOUR_MS
    page = client.funding_rates(symbol, start_ms=start_ms, end_ms=end_ms)
    raw = httpx.get(
        f"{server.base_url}/fapi/v1/fundingRate",
        params={"symbol": symbol, "startTime": start_ms, "endTime": end_ms, "limit": 1000},
    ).json()
    assert any(row["fundingTime"] % 1000 for row in raw), "the exchange sent no jitter"
    want = expected_funding(market, symbol, start_ms, end_ms)
    hours = market.spec(symbol).funding_interval_hours
    assert len(want) == (end_ms - start_ms) // (hours * HOUR_MS) + 1
    assert table_rows(page.table) == want


def test_exchange_info_symbols(
    market: Market, plain_exchange: ExchangeServer, binance_client: MakeClient
) -> None:
    """exchangeInfo gives each symbol's listing time, status and filters, and the weight limit."""
    info = binance_client(plain_exchange).exchange_info()
    assert set(info.symbols) == {"BTCUSDT", "SOLUSDT"}
    for spec in market.symbols:
        symbol = info.symbols[spec.symbol]
        assert symbol.onboard_ms == spec.listing_ms
        assert (symbol.tick_size, symbol.step_size) == (spec.tick_size, spec.step_size)
        assert (symbol.status, symbol.contract_type) == ("TRADING", "PERPETUAL")
    assert (info.weight_limit, info.weight_window_seconds) == (UNLIMITED_WEIGHT, 60.0)  # limits off


def test_funding_intervals_list_adjusted_symbols_only(
    plain_exchange: ExchangeServer, binance_client: MakeClient
) -> None:
    """fundingInfo lists only the symbols whose interval is not 8 h (SOLUSDT: 4 h)."""
    assert binance_client(plain_exchange).funding_intervals() == {"SOLUSDT": 4}


def test_server_time(plain_exchange: ExchangeServer, binance_client: MakeClient) -> None:
    """/fapi/v1/time is the exchange's clock in milliseconds."""
    assert binance_client(plain_exchange).server_time_ms() == plain_exchange.clock.now_ms()


def test_archive_bytes_none_for_404(
    plain_exchange: ExchangeServer, binance_client: MakeClient
) -> None:
    """A file the archive has not published (today's, or a name that cannot exist) is None."""
    client = binance_client(plain_exchange)
    today = "/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-03-05.zip"
    assert client.archive_bytes(today) is None
    assert client.archive_bytes("/data/futures/um/daily/klines/NOPE/1m/x.zip") is None
    published = client.archive_bytes(today.replace("03-05", "03-03"))
    assert published is not None
    assert published[:2] == b"PK"


# ---- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["500", "502", "503", "408"])
def test_server_errors_retried_then_succeed(
    market: Market,
    start_exchange: StartExchange,
    binance_client: MakeClient,
    now_ms: int,
    status: str,
) -> None:
    """500/502/503/408 twice in a row are retried; the third answer's page is the right one."""
    server = start_exchange(market, faults=faults(f"klines={status},{status}"))
    client = binance_client(server)
    page = one_hour_of_klines(client)
    assert table_rows(page.table) == expected_klines(
        market, "BTCUSDT", T0_MS, T0_MS + HOUR_MS - 1, now_ms=now_ms
    )
    assert server.stats.requests_for("klines") == 3
    assert server.stats.requests_for("klines", int(status)) == 2
    assert client.stats["klines"].retries == 2


def test_timeouts_retried_then_succeed(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient, now_ms: int
) -> None:
    """A response held back past the client's timeout is retried; the next one is used."""
    server = start_exchange(market, faults=faults("klines=timeout,ok", timeout_delay_seconds=1.0))
    client = binance_client(server, timeout_seconds=0.25)
    started = time.perf_counter()
    page = one_hour_of_klines(client)
    assert time.perf_counter() - started >= 0.25
    assert table_rows(page.table) == expected_klines(
        market, "BTCUSDT", T0_MS, T0_MS + HOUR_MS - 1, now_ms=now_ms
    )
    assert client.stats["klines"].retries == 1


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_broken_json_retried_then_succeeds(
    market: Market,
    start_exchange: StartExchange,
    binance_client: MakeClient,
    now_ms: int,
    kind: str,
) -> None:
    """A 200 whose body is not JSON (malformed or cut short) is retried like a 5xx."""
    server = start_exchange(market, faults=faults(f"klines={kind}"))
    client = binance_client(server)
    page = one_hour_of_klines(client)
    assert table_rows(page.table) == expected_klines(
        market, "BTCUSDT", T0_MS, T0_MS + HOUR_MS - 1, now_ms=now_ms
    )
    assert client.stats["klines"].malformed == 1
    assert client.stats["klines"].retries == 1


@pytest.mark.parametrize(
    ("kind", "problem"),
    [("503", "HTTP 503"), ("malformed", "malformed JSON body"), ("truncated", "malformed JSON")],
)
def test_exhausted_retries_raise_unavailable_naming_the_route(
    market: Market,
    start_exchange: StartExchange,
    binance_client: MakeClient,
    kind: str,
    problem: str,
) -> None:
    """A route that fails every time raises ExchangeUnavailableError after max_retries,
    naming the route and the last problem."""
    server = start_exchange(market, faults=faults(f"aggTrades={kind}@1"))
    client = binance_client(server, max_retries=2)
    with pytest.raises(ExchangeUnavailableError, match=rf"aggTrades: {problem}.*3 attempts"):
        client.agg_trades("BTCUSDT", from_id=5)
    assert server.stats.requests_for("aggTrades") == 3


def test_exhausted_retries_on_timeouts_raise_unavailable(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """Timeouts on every attempt also end in ExchangeUnavailableError naming the route."""
    server = start_exchange(market, faults=faults("fundingRate=timeout@1", timeout_delay_seconds=1))
    client = binance_client(server, max_retries=1, timeout_seconds=0.2)
    with pytest.raises(ExchangeUnavailableError, match=r"fundingRate: .*Timeout"):
        client.funding_rates("BTCUSDT", start_ms=T0_MS, end_ms=T0_MS + DAY_MS)


def test_from_id_past_the_retention_is_an_error_not_a_retry(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """aggTrades answering a fromId older than the REST retention from a later id (as Binance
    does) is reported at once as an ExchangeError naming the retention, without retries."""
    server = start_exchange(market, rest=RestOptions(agg_trades_retention_ms=DAY_MS))
    client = binance_client(server, max_retries=2)
    with pytest.raises(ExchangeError, match="older than the REST retention"):
        client.agg_trades("BTCUSDT", from_id=0)
    assert server.stats.requests_for("aggTrades", 200) == 1
    assert client.stats["aggTrades"].retries == 0


# ---- rate limits -------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_retry_after_shorter_than_the_window_resumes_after_retry_after(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient, now_ms: int
) -> None:
    """A 429's Retry-After (1 s) is all the client waits, even when its own weight window is an
    hour long and far from full: it does not sit out the rest of the window."""
    server = start_exchange(market, faults=faults("klines=429", retry_after_seconds=1))
    transport = RecordingTransport()
    client = binance_client(server, transport=transport, limits=RateLimits(window_seconds=3600.0))
    started = time.perf_counter()
    page = one_hour_of_klines(client)
    elapsed = time.perf_counter() - started
    assert transport.statuses() == [429, 200]
    assert transport.exchanges[1].sent_at - transport.exchanges[0].received_at >= 1.0
    assert elapsed < 5.0
    assert table_rows(page.table) == expected_klines(
        market, "BTCUSDT", T0_MS, T0_MS + HOUR_MS - 1, now_ms=now_ms
    )
    assert client.stats["klines"].http_429 == 1
    assert client.stats["klines"].retries == 0


@pytest.mark.slow
def test_real_429_retry_after_honoured_without_ban(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """With pacing off, the exchange's own limiter answers 429; the client waits at least
    Retry-After before its next request, never gets a 418, and every page is complete."""
    limits = Limits(weight_per_window=100, window_seconds=2, requests_before_ban=1)
    server = start_exchange(market, limits=limits)
    transport = RecordingTransport()
    client = binance_client(server, transport=transport)
    first_id = market.first_agg_id_at("BTCUSDT", T0_MS)
    pages = [client.agg_trades("BTCUSDT", from_id=first_id + 1000 * k) for k in range(9)]
    assert server.stats.rate_limited >= 1
    assert server.stats.banned == 0
    assert client.stats["aggTrades"].http_429 == server.stats.rate_limited
    assert client.stats["aggTrades"].http_418 == 0
    for before, after in zip(transport.exchanges, transport.exchanges[1:], strict=False):
        if before.response.status_code == 429:
            retry_after = float(before.response.headers["Retry-After"])
            assert retry_after >= 1
            assert after.sent_at - before.received_at >= retry_after - 0.01
    ids = [row["agg_trade_id"] for page in pages for row in table_rows(page.table)]
    assert ids == list(range(first_id, first_id + 9000))


def test_real_ban_raises_banned_error_with_ban_time(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """When the IP is banned (418), the client raises BannedError carrying the ban's end."""
    limits = Limits(weight_per_window=1, window_seconds=60, requests_before_ban=0)
    server = start_exchange(market, limits=limits)
    with httpx.Client(base_url=server.base_url) as http:
        for _ in range(10):
            response = http.get("/fapi/v1/ping")
            if response.status_code == 418:
                break
    assert response.status_code == 418
    until_ms = int(re.search(r"banned until (\d+)", response.json()["msg"]).group(1))  # type: ignore[union-attr]
    client = binance_client(server)
    with pytest.raises(BannedError) as raised:
        one_hour_of_klines(client)
    assert raised.value.banned_until_ms == until_ms
    assert raised.value.retry_after_seconds >= 100
    assert raised.value.status == 418
    assert time.strftime("%Y-%m-%dT%H:%M", time.gmtime(until_ms / 1000)) in str(raised.value)
    assert server.stats.requests_for("klines") == 1


def test_injected_418_raises_banned_error(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """A 418 is never retried: BannedError with the time the exchange's message names."""
    server = start_exchange(market, faults=faults("klines=418", retry_after_seconds=7))
    transport = RecordingTransport()
    client = binance_client(server, transport=transport)
    with pytest.raises(BannedError) as raised:
        one_hour_of_klines(client)
    message = transport.exchanges[-1].response.json()["msg"]
    until_ms = int(re.search(r"banned until (\d+)", message).group(1))  # type: ignore[union-attr]
    assert raised.value.banned_until_ms == until_ms
    assert raised.value.retry_after_seconds == 7
    assert transport.statuses() == [418]


@pytest.mark.slow
def test_pacing_with_scaled_limits_produces_no_429(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """A client that adopts the advertised weight window sends a 4-thread burst worth three
    windows of weight without one 429."""
    server = start_exchange(market, limits=Limits(weight_per_window=100, window_seconds=1))
    client = binance_client(server, limits=RateLimits())
    info = client.exchange_info()
    assert (info.weight_limit, info.weight_window_seconds) == (100, 1.0)
    client.adopt_rate_limits(weight_limit=100, window_seconds=1.0)
    first_id = market.first_agg_id_at("BTCUSDT", T0_MS)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for k in range(4):
                client.agg_trades("BTCUSDT", from_id=first_id + 1000 * (4 * offset + k))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert server.stats.requests_for("aggTrades") == 16  # 320 weight: 4 one-second windows
    assert server.stats.rate_limited == 0
    assert client.stats["aggTrades"].http_429 == 0
    assert time.perf_counter() - started >= 2.0


@pytest.mark.slow
def test_pacing_of_the_five_minute_counters_produces_no_429(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """openInterestHist and fundingRate are paced on their own request counters, not weight."""
    limits = Limits(data_requests_per_5m=4, funding_requests_per_5m=3, five_minute_window_seconds=1)
    server = start_exchange(market, limits=limits)
    client = binance_client(
        server,
        limits=RateLimits(
            data_requests_per_window=4, funding_requests_per_window=3, five_minute_seconds=1
        ),
    )
    for _ in range(7):
        client.open_interest("BTCUSDT", "5m", start_ms=T0_MS, end_ms=T0_MS + HOUR_MS)
        client.funding_rates("BTCUSDT", start_ms=T0_MS, end_ms=T0_MS + DAY_MS)
    assert server.stats.rate_limited == 0
    assert server.stats.requests_for("openInterestHist", 200) == 7
    assert server.stats.requests_for("fundingRate", 200) == 7


def test_adopting_limits_keeps_what_the_window_already_cost(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """The exchangeInfo call that advertises the limits already spent weight in this window:
    two concurrent (slow) requests that would fit only without it do not both go out."""
    limits = Limits(weight_per_window=40, window_seconds=2)
    schedule = faults("aggTrades=timeout@1", timeout_delay_seconds=0.3)
    server = start_exchange(market, limits=limits, faults=schedule)
    client = binance_client(server, limits=RateLimits())
    # exchangeInfo and both sends must share a window, or the second send would fit anyway:
    # a margin of 1 s holds for three local requests on a slow, loaded box.
    left_s = 2.0 - time.time() % 2.0
    if left_s < 1.0:
        time.sleep(left_s + 0.05)
    info = client.exchange_info()
    assert info.weight_window_seconds is not None
    client.adopt_rate_limits(weight_limit=40, window_seconds=info.weight_window_seconds)
    from_id = market.first_agg_id_at("BTCUSDT", T0_MS)
    threads = [
        threading.Thread(target=client.agg_trades, args=("BTCUSDT",), kwargs={"from_id": from_id})
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.stats.rate_limited == 0
    assert server.stats.requests_for("aggTrades", 200) == 2
    assert client.weight_budget.waited_seconds > 0  # the second send waited for a new window


def test_adopt_rate_limits_follows_exchange_info(
    market: Market, start_exchange: StartExchange
) -> None:
    """The advertised REQUEST_WEIGHT limit and window become the client's pacing (5-minute
    windows scaled alike), never above the client's configured cap."""
    server = start_exchange(market, limits=Limits(weight_per_window=1234).scaled(0.1))
    for cap, expected_limit in ((2400, 1234), (1000, 1000)):
        with BinanceClient(server.base_url, limits=RateLimits(weight_per_window=cap)) as client:
            info = client.exchange_info()
            assert (info.weight_limit, info.weight_window_seconds) == (1234, 6.0)
            client.adopt_rate_limits(
                weight_limit=info.weight_limit, window_seconds=info.weight_window_seconds
            )
            assert client.limits.weight_per_window == expected_limit
            assert client.limits.window_seconds == 6.0
            assert client.limits.five_minute_seconds == pytest.approx(30.0)
            assert client.weight_budget.limit == expected_limit
            assert client.weight_budget.window_seconds == 6.0
            assert client.data_budget.window_seconds == pytest.approx(30.0)
            assert client.funding_budget.window_seconds == pytest.approx(30.0)


# ---- Binance errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [("NOPEUSDT", "1m", -1121), ("BTCUSDT", "7m", -1120)],
    ids=["unknown-symbol", "bad-interval"],
)
def test_400_maps_to_exchange_error_with_code(
    market: Market,
    start_exchange: StartExchange,
    binance_client: MakeClient,
    case: tuple[str, str, int],
) -> None:
    """A 400 is not retried: ExchangeError with Binance's code, the status and the route."""
    symbol, interval, code = case
    server = start_exchange(market)
    client = binance_client(server)
    with pytest.raises(ExchangeError) as raised:
        client.klines(symbol, interval, start_ms=T0_MS, end_ms=T0_MS + HOUR_MS)
    assert type(raised.value) is ExchangeError
    assert (raised.value.status, raised.value.code) == (400, code)
    assert "/fapi/v1/klines" in str(raised.value)
    assert f"code {code}" in str(raised.value)
    assert server.stats.requests_for("klines") == 1


def test_open_interest_beyond_retention_is_exchange_error(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient, now_ms: int
) -> None:
    """openInterestHist older than 30 days is Binance's 400/-1130, not retried."""
    server = start_exchange(market)
    client = binance_client(server)
    start_ms = now_ms - 35 * DAY_MS
    with pytest.raises(ExchangeError) as raised:
        client.open_interest("BTCUSDT", "5m", start_ms=start_ms, end_ms=start_ms + DAY_MS)
    assert (raised.value.status, raised.value.code) == (400, -1130)
    assert server.stats.requests_for("openInterestHist") == 1


# ---- faulty rows never reach Page.table ---------------------------------------------------------


def fetch_route(
    client: BinanceClient, market: Market, route: str, *, now_ms: int
) -> tuple[Any, list[Any]]:
    """(page, expected rows) of one request on ``route`` over a window two days before now."""
    if route == "klines":
        end_ms = T0_MS + HOUR_MS - 1
        page = client.klines("BTCUSDT", "1m", start_ms=T0_MS, end_ms=end_ms)
        return page, expected_klines(market, "BTCUSDT", T0_MS, end_ms, now_ms=now_ms)
    if route == "aggTrades":
        from_id = market.first_agg_id_at("BTCUSDT", T0_MS)
        page = client.agg_trades("BTCUSDT", from_id=from_id, limit=300)
        return page, expected_trades(
            market, "BTCUSDT", T0_MS, T0_MS + DAY_MS, from_id=from_id, count=300
        )
    if route == "aggTrades-window":
        end_ms = T0_MS + 10 * MINUTE_MS
        page = client.agg_trades("BTCUSDT", start_ms=T0_MS, end_ms=end_ms)
        count = len(market.agg_trades("BTCUSDT", T0_MS, end_ms))
        return page, expected_trades(market, "BTCUSDT", T0_MS, end_ms, count=count)
    if route == "openInterestHist":
        end_ms = T0_MS + 6 * HOUR_MS
        page = client.open_interest("BTCUSDT", "5m", start_ms=T0_MS, end_ms=end_ms)
        return page, expected_open_interest(market, "BTCUSDT", T0_MS, end_ms)
    end_ms = T0_MS + DAY_MS
    page = client.funding_rates("SOLUSDT", start_ms=T0_MS, end_ms=end_ms)
    return page, expected_funding(market, "SOLUSDT", T0_MS, end_ms)


@pytest.mark.parametrize("kind", ["duplicates", "outside"])
@pytest.mark.parametrize(
    "route", ["klines", "aggTrades", "aggTrades-window", "openInterestHist", "fundingRate"]
)
def test_faulty_rows_never_reach_the_page(
    market: Market,
    start_exchange: StartExchange,
    binance_client: MakeClient,
    route: str,
    kind: str,
) -> None:
    """Rows repeated from the previous page or beyond the asked window are dropped and counted;
    the page holds exactly the window's rows."""
    server_route = route.split("-", maxsplit=1)[0]
    schedule = FaultSchedule(rules=[FaultRule(server_route, sequence=[kind])], outside_rows=2)
    server = start_exchange(market, faults=schedule)
    page, want = fetch_route(binance_client(server), market, route, now_ms=server.clock.now_ms())
    assert server.stats.faults[0].kind == kind
    assert table_rows(page.table) == want
    extra = page.received - len(want)
    assert extra == (1 if kind == "duplicates" else 2)
    assert page.rejected + page.duplicates == extra


# ---- stopping and announcing waits -------------------------------------------------------------


def test_a_retry_after_wait_is_announced_with_its_reason_and_seconds(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """A 429's Retry-After of 2 s is told to ``on_wait`` before the client waits, once."""
    server = start_exchange(market, faults=faults("klines=429", retry_after_seconds=2))
    waits: list[tuple[str, float]] = []
    client = binance_client(server, on_wait=lambda reason, seconds: waits.append((reason, seconds)))
    one_hour_of_klines(client)
    assert len(waits) == 1
    reason, seconds = waits[0]
    assert reason == "Retry-After (HTTP 429)"
    assert 1.0 < seconds <= 2.0


@pytest.mark.timeout(20)
def test_stop_ends_a_long_retry_after_wait_at_once(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """Waiting out a 60 s Retry-After, the client raises Aborted as soon as ``stop`` is set and
    sends nothing more."""
    server = start_exchange(market, faults=faults("klines=429", retry_after_seconds=60))
    stop = threading.Event()
    waiting = threading.Event()
    client = binance_client(server, stop=stop, on_wait=lambda reason, seconds: waiting.set())
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            one_hour_of_klines(client)
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=fetch)
    worker.start()
    assert waiting.wait(10), "the client never started waiting"
    stopped_at = time.perf_counter()
    stop.set()
    worker.join(5)
    assert not worker.is_alive()
    assert time.perf_counter() - stopped_at < 0.5
    assert len(outcome) == 1 and isinstance(outcome[0], Aborted)
    assert server.stats.requests_for("klines") == 1


def test_a_stopped_client_sends_nothing(
    market: Market, start_exchange: StartExchange, binance_client: MakeClient
) -> None:
    """With ``stop`` already set, a request raises Aborted before anything is sent."""
    server = start_exchange(market)
    stop = threading.Event()
    stop.set()
    client = binance_client(server, stop=stop)
    with pytest.raises(Aborted):
        one_hour_of_klines(client)
    assert server.stats.requests_for("klines") == 0

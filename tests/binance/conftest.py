"""Shared fixtures for tests/binance: a small seeded market, local exchanges, fast clients.

Typical use::

    def test_something(market, start_exchange, binance_client):
        server = start_exchange(market, faults=FaultSchedule.parse(["klines=503,ok"]))
        client = binance_client(server)
        page = client.klines("BTCUSDT", "1m", start_ms=..., end_ms=...)

``server.clock`` is the server's FrozenClock (``set``/``advance`` it to move "now").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from exchange._support import NOW_MS, small_market

from ingmon.binance.client import BinanceClient
from ingmon.binance.limits import RateLimits
from ingmon.exchange import ExchangeServer, FrozenClock, Limits, Market


@pytest.fixture(scope="session")
def market() -> Market:
    """BTCUSDT (listed LISTING_MS, 8 h funding) and SOLUSDT (SOL_LISTING_MS, 4 h funding),
    with few trades per minute so whole days stay cheap. Read-only and deterministic."""
    return small_market(seed=7)


@pytest.fixture
def now_ms() -> int:
    """The instant the exchanges of ``start_exchange`` are frozen at by default."""
    return NOW_MS


@pytest.fixture
def start_exchange() -> Iterator[Callable[..., ExchangeServer]]:
    """``start_exchange(market, *, now_ms=NOW_MS, limits=None, **options)`` → a running
    ExchangeServer on 127.0.0.1 (any free port) with ``FrozenClock(now_ms)``; limits are off
    unless ``limits`` is given; ``options`` go to ExchangeServer (``faults``, ``rest``,
    ``archive``). Every server started is stopped at teardown."""
    started: list[ExchangeServer] = []

    def start(
        market: Market, *, now_ms: int = NOW_MS, limits: Limits | None = None, **options: Any
    ) -> ExchangeServer:
        server = ExchangeServer(
            market,
            clock=FrozenClock(now_ms),
            limits=limits if limits is not None else Limits(enabled=False),
            **options,
        )
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def binance_client() -> Iterator[Callable[..., BinanceClient]]:
    """``binance_client(server, **overrides)`` → a BinanceClient on the server (REST and
    archive) with millisecond backoffs and no pacing of its own (a huge weight cap), so tests
    run fast; ``overrides`` go to BinanceClient (e.g. ``limits=``, ``timeout_seconds=``,
    ``max_retries=``). Every client made is closed at teardown."""
    made: list[BinanceClient] = []

    def make(server: ExchangeServer, **overrides: Any) -> BinanceClient:
        options: dict[str, Any] = {
            "timeout_seconds": 5.0,
            "max_retries": 4,
            "backoff_base_seconds": 0.005,
            "backoff_cap_seconds": 0.02,
            "limits": RateLimits(weight_per_window=10**9),
        }
        options.update(overrides)
        client = BinanceClient(server.base_url, archive_url=server.base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()

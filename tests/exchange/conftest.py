"""Fixtures for the exchange server tests: a small seeded market and servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ingmon.exchange import ExchangeServer, FrozenClock, Limits, Market

from ._support import DAY_MS, LISTING_MS, NOW_MS, SOL_LISTING_MS, small_market


@pytest.fixture(scope="session")
def market() -> Market:
    """The shared test market (read-only: the Market is deterministic and lazily generated)."""
    built = small_market()
    # Tests pick fixed instants (the two days before NOW, the listing hour); an outage there
    # would make contiguous-candle expectations wrong, so fail loudly if the seed ever moves one.
    for symbol, listing_ms in (("BTCUSDT", LISTING_MS), ("SOLUSDT", SOL_LISTING_MS)):
        assert not built.maintenance_windows(symbol, NOW_MS - 3 * DAY_MS, NOW_MS)
        assert not built.maintenance_windows(symbol, listing_ms, listing_ms + DAY_MS)
    return built


@pytest.fixture(scope="module")
def server(market: Market) -> Iterator[ExchangeServer]:
    """A server frozen at NOW_MS with limits off, shared by a module's read-only tests."""
    with ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=Limits(enabled=False)) as running:
        yield running


@pytest.fixture
def client(server: ExchangeServer) -> Iterator[httpx.Client]:
    """An httpx client on the shared server (one keep-alive connection)."""
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        yield http


@pytest.fixture
def listing_ms() -> int:
    """BTCUSDT's listing time in the test market."""
    return LISTING_MS


@pytest.fixture
def own_server(market: Market) -> Iterator[ExchangeServer]:
    """A private server (its clock may be moved) frozen at NOW_MS, limits off."""
    with ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=Limits(enabled=False)) as running:
        yield running

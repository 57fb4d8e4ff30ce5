"""The honest "no limits" mode: nothing rejected, an unlimited weight advertised, no pacing."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingmon.binance.backfill import BackfillRequest, run_backfill
from ingmon.binance.client import BinanceClient
from ingmon.binance.reporting import Reporter
from ingmon.config import load_settings
from ingmon.exchange import ExchangeServer, FrozenClock, Limits, Market
from ingmon.exchange.limits import UNLIMITED_WEIGHT

from ._support import DAY_MS, NOW_MS

# Windows of a day: a budget's end-of-window margin cannot fall inside a test run by chance.
DAY_WINDOW_SECONDS = 86_400


def advertised_weight(base_url: str) -> dict[str, Any]:
    """The REQUEST_WEIGHT entry of exchangeInfo's rateLimits."""
    info = httpx.get(f"{base_url}/fapi/v1/exchangeInfo", timeout=10).json()
    [entry] = [e for e in info["rateLimits"] if e["rateLimitType"] == "REQUEST_WEIGHT"]
    return dict(entry)


def assert_never_waited(client: BinanceClient) -> None:
    """No budget slept and no route met a 429 or 418."""
    budgets = (client.weight_budget, client.data_budget, client.funding_budget)
    assert [budget.waited_seconds for budget in budgets] == [0.0, 0.0, 0.0]
    assert all(stats.http_429 == stats.http_418 == 0 for stats in client.stats.values())


@pytest.fixture
def no_limits_process() -> Iterator[str]:
    """``ingmon exchange serve --no-limits`` in a subprocess (1 symbol, 2 days); its base URL."""
    command = [
        *(sys.executable, "-m", "ingmon.cli", "exchange", "serve", "--no-limits"),
        *("--port", "0", "--symbols", "BTCUSDT", "--days", "2", "--frozen-at", str(NOW_MS)),
        *("--weight-window-seconds", str(DAY_WINDOW_SECONDS), "--archive-delay-hours", "0"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        found = re.search(r" on (http://\S+)", process.stdout.readline())
        assert found is not None, "the exchange did not report its URL"
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_limits_off_advertise_an_unlimited_weight_and_limits_on_their_own(market: Market) -> None:
    """exchangeInfo shows UNLIMITED_WEIGHT with limits off and the configured limit with them on."""
    for limits, expected in ((Limits(enabled=False), UNLIMITED_WEIGHT), (Limits(), 2400)):
        with ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=limits) as server:
            entry = advertised_weight(server.base_url)
        assert (entry["limit"], entry["interval"], entry["intervalNum"]) == (expected, "MINUTE", 1)


@pytest.mark.timeout(120)
def test_a_default_client_following_a_no_limits_exchange_spends_past_2400_without_waiting(
    market: Market,
) -> None:
    """A client built without limits adopts the unlimited weight and sends 2410 weight unpaced."""
    limits = Limits(enabled=False, window_seconds=float(DAY_WINDOW_SECONDS))
    with (
        ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=limits) as server,
        BinanceClient(server.base_url) as client,
    ):
        info = client.exchange_info()
        assert info.weight_limit == UNLIMITED_WEIGHT
        assert info.weight_window_seconds is not None
        client.adopt_rate_limits(
            weight_limit=info.weight_limit, window_seconds=info.weight_window_seconds
        )
        assert client.weight_budget.limit == UNLIMITED_WEIGHT
        start_ms = NOW_MS - 2 * DAY_MS
        for _ in range(241):  # weight 10 each: past Binance's 2400, where a capped client waits
            client.klines("BTCUSDT", "1m", start_ms=start_ms, end_ms=NOW_MS, limit=1500)
        assert server.stats.weight_used >= 2411  # exchangeInfo + 241 pages
        assert_never_waited(client)


@pytest.mark.slow
def test_backfill_on_default_settings_is_not_paced_by_a_no_limits_exchange(
    no_limits_process: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --no-limits`: a default-settings backfill adopts the unlimited weight and never
    waits; an explicit INGMON_BINANCE_WEIGHT_LIMIT_PER_MINUTE still caps it."""
    assert advertised_weight(no_limits_process)["limit"] == UNLIMITED_WEIGHT
    made: list[BinanceClient] = []
    build = BinanceClient.__init__

    def recording_init(self: BinanceClient, *args: Any, **kwargs: Any) -> None:
        build(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(BinanceClient, "__init__", recording_init)
    monkeypatch.delenv("INGMON_BINANCE_WEIGHT_LIMIT_PER_MINUTE", raising=False)
    request = BackfillRequest(
        symbols=("BTCUSDT",), window_days=1, datasets=("candles", "funding"), source="rest"
    )
    urls = {"binance_base_url": no_limits_process, "binance_archive_url": no_limits_process}
    for cap, expected_limit in ((None, UNLIMITED_WEIGHT), (1200, 1200)):
        made.clear()
        explicit = {} if cap is None else {"binance_weight_limit_per_minute": cap}
        settings = load_settings(env_file=None, data_dir=tmp_path / str(cap), **urls, **explicit)
        run_backfill(
            request, settings=settings, reporter=Reporter(mode="json", stream=io.StringIO())
        )
        [client] = made
        assert client.stats["klines"].requests > 0
        assert client.weight_budget.limit == expected_limit
        assert client.weight_budget.window_seconds == DAY_WINDOW_SECONDS
        assert_never_waited(client)

"""Shared constants and brute-force reference computations for the exchange server tests."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import httpx

from ingmon.exchange import Market, SymbolSpec

DAY_MS = 86_400_000
MINUTE_MS = 60_000
# 2024-03-05 12:34:56.789 UTC: mid-candle on purpose, so the last candle is partial.
NOW_MS = 1_709_642_096_789
# 2024-01-25 00:00 UTC, 40 days before NOW: a complete January tail and a complete February.
LISTING_MS = 1_706_140_800_000
# SOLUSDT lists ten days later at 07:30, mid-day, with 4-hour funding.
SOL_LISTING_MS = LISTING_MS + 10 * DAY_MS + 450 * MINUTE_MS


def small_market(seed: int = 7) -> Market:
    """Two symbols with few trades per minute, so whole days and months stay cheap."""
    return Market(
        [
            SymbolSpec(
                symbol="BTCUSDT",
                base_asset="BTC",
                tick_size="0.10",
                step_size="0.001",
                listing_ms=LISTING_MS,
                initial_price=42_000.0,
                funding_interval_hours=8,
                trades_per_minute=6.0,
            ),
            SymbolSpec(
                symbol="SOLUSDT",
                base_asset="SOL",
                tick_size="0.0100",
                step_size="1",
                listing_ms=SOL_LISTING_MS,
                initial_price=100.0,
                funding_interval_hours=4,
                trades_per_minute=4.0,
            ),
        ],
        seed=seed,
    )


@dataclass(frozen=True)
class Candle:
    """A candle recomputed from trades with plain Python (the reference for klines)."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    count: int
    taker_buy_volume: Decimal
    taker_buy_quote_volume: Decimal


def brute_force_candle(
    market: Market, symbol: str, open_ms: int, interval_ms: int, *, now_ms: int
) -> Candle | None:
    """Aggregate the market's trades with open_ms <= T <= min(close, now) one by one."""
    spec = market.spec(symbol)
    # Market arrays count units of the last written digit of tickSize/stepSize.
    trades = market.agg_trades(symbol, open_ms, min(open_ms + interval_ms - 1, now_ms))
    prices = [Decimal(int(value)).scaleb(-spec.price_decimals) for value in trades.price_ticks]
    quantities = [Decimal(int(value)).scaleb(-spec.quantity_decimals) for value in trades.qty_steps]
    if not prices:
        return None
    count = 0
    taker_volume = Decimal(0)
    taker_quote = Decimal(0)
    for index in range(len(prices)):
        count += int(trades.last_trade_id[index]) - int(trades.first_trade_id[index]) + 1
        if not bool(trades.buyer_is_maker[index]):
            taker_volume += quantities[index]
            taker_quote += prices[index] * quantities[index]
    return Candle(
        open=prices[0],
        high=max(prices),
        low=min(prices),
        close=prices[-1],
        volume=sum(quantities, Decimal(0)),
        quote_volume=sum((p * q for p, q in zip(prices, quantities, strict=True)), Decimal(0)),
        count=count,
        taker_buy_volume=taker_volume,
        taker_buy_quote_volume=taker_quote,
    )


def decimals_of(text: str) -> int:
    """How many digits follow the decimal point in a Binance decimal string."""
    return len(text.partition(".")[2])


def assert_error(response: httpx.Response, code: int, msg: str, *, status: int = 400) -> None:
    """The response is Binance's error body with this code and message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"code": code, "msg": msg}


def klines(client: httpx.Client, **params: object) -> list[list[object]]:
    """GET /fapi/v1/klines for BTCUSDT 1m (overridable) and return the parsed rows."""
    query = {"symbol": "BTCUSDT", "interval": "1m", **params}
    response = client.get("/fapi/v1/klines", params=query)
    assert response.status_code == 200, response.text
    rows: list[list[object]] = response.json()
    return rows

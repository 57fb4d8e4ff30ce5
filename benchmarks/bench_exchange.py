"""The local exchange: simulator throughput, and rows served over loopback HTTP vs in-process."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile

import httpx
import orjson

from benchmarks._harness import Case, median_seconds, print_table
from ingmon.exchange import ExchangeServer, FrozenClock, Limits, Market, archive_path

__all__ = ["main"]

NOW_MS = 1_785_542_400_000 + 12 * 3_600_000  # 2026-08-01T12:00:00Z
DAY_MS = 86_400_000
MINUTE_MS = 60_000
DEMO_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DEMO_DAYS = 14
SERVED_DAYS = 3  # the warm serving cases page through this many days of one symbol


def _market(days: int, symbols: tuple[str, ...] = ("BTCUSDT",)) -> Market:
    return Market.demo(symbols=symbols, days=days, seed=7, now_ms=NOW_MS)


def _listing_ms(market: Market) -> int:
    return market.symbols[0].listing_ms


def simulate_trades(days: int) -> int:
    """Generate every trade of ``days`` days of BTCUSDT on a cold market; returns the count."""
    market = _market(days)
    start_ms = _listing_ms(market)
    return sum(
        len(
            market.agg_trades("BTCUSDT", start_ms + day * DAY_MS, start_ms + (day + 1) * DAY_MS - 1)
        )
        for day in range(days)
    )


def simulate_candles(days: int) -> int:
    """Generate ``days`` days of BTCUSDT 1m candles on a cold market; returns the count."""
    market = _market(days)
    return len(market.klines("BTCUSDT", "1m", _listing_ms(market), NOW_MS, now_ms=NOW_MS))


def page_klines(http: httpx.Client, symbol: str, start_ms: int, end_ms: int) -> int:
    """Every 1m kline of [start, end] in limit=1500 pages; returns the rows received."""
    rows = 0
    cursor_ms = start_ms
    while cursor_ms <= end_ms:
        response = http.get(
            "/fapi/v1/klines",
            params={
                "symbol": symbol,
                "interval": "1m",
                "startTime": cursor_ms,
                "endTime": end_ms,
                "limit": 1500,
            },
        )
        page = orjson.loads(response.content)
        if not page:
            break
        rows += len(page)
        cursor_ms = page[-1][0] + MINUTE_MS
    return rows


def page_agg_trades(http: httpx.Client, symbol: str, first_id: int, last_id: int) -> int:
    """Every aggTrade with first_id <= a <= last_id in limit=1000 fromId pages."""
    rows = 0
    next_id = first_id
    while next_id <= last_id:
        response = http.get(
            "/fapi/v1/aggTrades", params={"symbol": symbol, "fromId": next_id, "limit": 1000}
        )
        page = orjson.loads(response.content)
        if not page:
            break
        kept = [row for row in page if row["a"] <= last_id]
        rows += len(kept)
        next_id = page[-1]["a"] + 1
    return rows


def _served_window(market: Market) -> tuple[int, int]:
    start_ms = _listing_ms(market)
    return start_ms, start_ms + SERVED_DAYS * DAY_MS - 1


def serving_cases(repeat: int) -> list[Case]:
    """Warm rows/s for klines and aggTrades pages: in-process rendering vs over loopback HTTP."""
    market = _market(DEMO_DAYS)
    start_ms, end_ms = _served_window(market)
    first_id = market.first_agg_id_at("BTCUSDT", start_ms)
    last_id = market.first_agg_id_at("BTCUSDT", end_ms + 1) - 1
    server = ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=Limits(enabled=False))
    api = server.api
    with server, httpx.Client(base_url=server.base_url, timeout=60) as http:
        kline_rows = page_klines(http, "BTCUSDT", start_ms, end_ms)  # warm the market's caches
        trade_rows = page_agg_trades(http, "BTCUSDT", first_id, last_id)

        def render_klines() -> None:
            for page_start_ms in range(start_ms, end_ms + 1, 1500 * MINUTE_MS):
                params = {
                    "symbol": "BTCUSDT",
                    "interval": "1m",
                    "startTime": str(page_start_ms),
                    "endTime": str(end_ms),
                    "limit": "1500",
                }
                api.klines(params, None)

        def render_trades() -> None:
            for page_id in range(first_id, last_id + 1, 1000):
                api.agg_trades({"symbol": "BTCUSDT", "fromId": str(page_id), "limit": "1000"}, None)

        return [
            Case(
                "klines 1m, in-process render",
                kline_rows,
                median_seconds(render_klines, repeat=repeat),
            ),
            Case(
                "klines 1m, HTTP limit=1500 pages",
                kline_rows,
                median_seconds(
                    lambda: page_klines(http, "BTCUSDT", start_ms, end_ms), repeat=repeat
                ),
            ),
            Case(
                "aggTrades, in-process render",
                trade_rows,
                median_seconds(render_trades, repeat=repeat),
            ),
            Case(
                "aggTrades, HTTP fromId limit=1000 pages",
                trade_rows,
                median_seconds(
                    lambda: page_agg_trades(http, "BTCUSDT", first_id, last_id), repeat=repeat
                ),
            ),
        ]


def demo_backfill() -> tuple[int, int]:
    """Cold: generate and serve all 1m klines and all aggTrades of the demo (14 d × 3 symbols)."""
    market = _market(DEMO_DAYS, DEMO_SYMBOLS)
    start_ms = _listing_ms(market)
    kline_rows = trade_rows = 0
    with (
        ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=Limits(enabled=False)) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as http,
    ):
        for symbol in DEMO_SYMBOLS:
            kline_rows += page_klines(http, symbol, start_ms, NOW_MS)
            last_id = market.first_agg_id_at(symbol, NOW_MS + 1) - 1
            trade_rows += page_agg_trades(http, symbol, 0, last_id)
    return kline_rows, trade_rows


def demo_archive_then_rest() -> tuple[int, int]:
    """Cold: the demo the way a backfill should fetch it — daily archive zips (verified against
    their CHECKSUM) for the finished days, REST pages for today."""
    market = _market(DEMO_DAYS, DEMO_SYMBOLS)
    today_ms = NOW_MS // DAY_MS * DAY_MS
    kline_rows = trade_rows = 0
    with (
        ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=Limits(enabled=False)) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as http,
    ):
        for symbol in DEMO_SYMBOLS:
            for day_ms in range(_listing_ms(market), today_ms, DAY_MS):
                date = time.strftime("%Y-%m-%d", time.gmtime(day_ms / 1000))
                for dataset, interval in (("klines", "1m"), ("aggTrades", None)):
                    path = archive_path(
                        dataset, period="daily", symbol=symbol, date=date, interval=interval
                    )
                    body = http.get(path).content
                    digest = http.get(path + ".CHECKSUM").text.split()[0]
                    assert hashlib.sha256(body).hexdigest() == digest
                    with zipfile.ZipFile(io.BytesIO(body)) as archive:
                        text = archive.read(archive.namelist()[0])
                    rows = text.count(b"\n") - (not text[:1].isdigit())
                    if dataset == "klines":
                        kline_rows += rows
                    else:
                        trade_rows += rows
            kline_rows += page_klines(http, symbol, today_ms, NOW_MS)
            first_id = market.first_agg_id_at(symbol, today_ms)
            last_id = market.first_agg_id_at(symbol, NOW_MS + 1) - 1
            trade_rows += page_agg_trades(http, symbol, first_id, last_id)
    return kline_rows, trade_rows


def main() -> None:
    trade_days = 2
    trades = simulate_trades(trade_days)
    candles = simulate_candles(DEMO_DAYS)
    simulator = [
        Case(
            f"simulate trades, {trade_days} d BTCUSDT (cold)",
            trades,
            median_seconds(lambda: simulate_trades(trade_days), repeat=3),
            "trades",
        ),
        Case(
            f"simulate 1m candles, {DEMO_DAYS} d BTCUSDT (cold)",
            candles,
            median_seconds(lambda: simulate_candles(DEMO_DAYS), repeat=3),
            "candles",
        ),
    ]
    print_table("exchange simulator (items/s)", simulator, baseline=simulator[0].name)
    serving = serving_cases(repeat=3)
    print_table(
        f"exchange server, warm, {SERVED_DAYS} d BTCUSDT, limits off (rows/s)",
        serving,
        baseline="klines 1m, in-process render",
    )
    print(f"\n== demo: {DEMO_DAYS} d × {len(DEMO_SYMBOLS)} symbols, generated and served cold")
    for label, run in (
        ("REST pages only", demo_backfill),
        ("archive zips + REST for today", demo_archive_then_rest),
    ):
        started = time.perf_counter()
        kline_rows, trade_rows = run()
        wall_seconds = time.perf_counter() - started
        print(
            f"{label:<32} {kline_rows:>9,} 1m klines + {trade_rows:>10,} aggTrades "
            f"in {wall_seconds:6.1f} s"
        )


if __name__ == "__main__":
    main()

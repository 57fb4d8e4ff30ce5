"""Independent reference values for backfill tests: the simulator's arrays rendered as floats.

The server renders integers in tick/step units as decimal strings and the client parses them
with Arrow; here the same numbers come straight from the Market's integer arrays via Decimal
(or an exact IEEE division where both operands are exact), so a formatting or parsing bug on
either side of the wire shows up as a difference.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ingmon.binance.backfill import BackfillRequest, BackfillSummary, run_backfill
from ingmon.binance.client import BinanceClient
from ingmon.binance.limits import RateLimits
from ingmon.binance.reporting import Reporter
from ingmon.config import Settings, load_settings
from ingmon.demo import SIMULATED_FRESHNESS
from ingmon.exchange import ExchangeServer, FrozenClock, Limits, Market
from ingmon.lake import Lake
from ingmon.schema import INGEST_LOG

MINUTE_MS = 60_000
DAY_MS = 86_400_000
UNLIMITED = 1_000_000_000


def decimals(units: Any, places: int) -> list[float]:
    return [float(Decimal(int(u)).scaleb(-places)) for u in units]


def expected_candles(
    market: Market, symbol: str, start_ms: int, end_ms: int, now_ms: int
) -> list[dict[str, Any]]:
    """Closed 1m candles with start <= open_time <= end."""
    spec = market.spec(symbol)
    first = -(-start_ms // MINUTE_MS) * MINUTE_MS
    last = min(end_ms, now_ms - MINUTE_MS) // MINUTE_MS * MINUTE_MS
    k = market.klines(symbol, "1m", first, last, now_ms=now_ms)
    price, qty = spec.price_decimals, spec.quantity_decimals
    columns = {
        "open_time": k.open_time_ms.tolist(),
        "open": decimals(k.open_ticks, price),
        "high": decimals(k.high_ticks, price),
        "low": decimals(k.low_ticks, price),
        "close": decimals(k.close_ticks, price),
        "volume": decimals(k.volume_steps, qty),
        "close_time": k.close_time_ms.tolist(),
        "quote_volume": decimals(k.quote_volume_units, price + qty),
        "trade_count": k.trade_count.tolist(),
        "taker_buy_volume": decimals(k.taker_buy_volume_steps, qty),
        "taker_buy_quote_volume": decimals(k.taker_buy_quote_units, price + qty),
        "ignore": [0.0] * len(k),
    }
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]


def expected_trades(
    market: Market, symbol: str, start_ms: int, end_ms: int
) -> dict[str, np.ndarray[Any, Any]]:
    spec = market.spec(symbol)
    trades = market.agg_trades(symbol, start_ms, end_ms)
    return {
        "agg_trade_id": trades.agg_id,
        # ticks and 10**d are exact doubles: IEEE division is the correctly rounded decimal.
        "price": trades.price_ticks / 10.0**spec.price_decimals,
        "quantity": trades.qty_steps / 10.0**spec.quantity_decimals,
        "first_trade_id": trades.first_trade_id,
        "last_trade_id": trades.last_trade_id,
        "transact_time": trades.time_ms,
        "is_buyer_maker": trades.buyer_is_maker,
    }


def expected_open_interest(
    market: Market, symbol: str, period: str, start_ms: int, end_ms: int
) -> list[dict[str, Any]]:
    spec = market.spec(symbol)
    oi = market.open_interest(symbol, period, start_ms, end_ms)
    values = [round(float(v) * 1e8) for v in oi.sum_open_interest_value]
    return [
        {"timestamp": int(t), "sum_open_interest": a, "sum_open_interest_value": v}
        for t, a, v in zip(
            oi.timestamp_ms,
            decimals(oi.sum_open_interest_steps, spec.quantity_decimals),
            decimals(values, 8),
            strict=True,
        )
    ]


def expected_funding(
    market: Market, symbol: str, start_ms: int, end_ms: int
) -> list[dict[str, Any]]:
    spec = market.spec(symbol)
    funding = market.funding(symbol, start_ms, end_ms)
    return [
        {"funding_time": int(t), "funding_rate": r, "mark_price": m}
        for t, r, m in zip(
            funding.funding_time_ms,
            decimals(funding.funding_rate_e8, 8),
            decimals(funding.mark_price_ticks, spec.price_decimals),
            strict=True,
        )
    ]


def stored(
    lake: Lake,
    dataset: str,
    symbol: str,
    param: str | None = None,
    columns: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Lake rows with times as epoch ms, for comparison with the references."""
    table = lake.read(dataset, symbols=symbol, param=param, columns=columns)
    out = {}
    for name in table.column_names:
        column = table[name]
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        out[name] = column.to_pylist()
    keep = [n for n in table.column_names if n not in ("symbol", "interval", "period")]
    return [
        dict(zip(keep, values, strict=True)) for values in zip(*(out[n] for n in keep), strict=True)
    ]


def stored_trades(lake: Lake, symbol: str) -> dict[str, np.ndarray[Any, Any]]:
    table = lake.read("agg_trades", symbols=symbol)
    return {
        name: (
            table[name].cast(pa.int64()) if pa.types.is_timestamp(table[name].type) else table[name]
        ).to_numpy()
        for name in table.column_names
        if name != "symbol"
    }


def settings_for(data_dir: Path, server: ExchangeServer, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "binance_base_url": server.base_url,
        "binance_archive_url": server.base_url,
        "binance_weight_limit_per_minute": UNLIMITED,
        **SIMULATED_FRESHNESS,  # thresholds for the simulator's sparser tape
    }
    options.update(overrides)
    return load_settings(env_file=None, **options)


def fast_client(
    server: ExchangeServer, *, timeout_seconds: float = 10.0, max_retries: int = 6, **kwargs: Any
) -> BinanceClient:
    """A client that backs off in milliseconds, so fault tests stay quick; its own weight cap is
    lifted, so it paces to whatever the exchange advertises."""
    kwargs.setdefault("limits", RateLimits(weight_per_window=UNLIMITED))
    return BinanceClient(
        server.base_url,
        timeout_seconds=timeout_seconds,
        max_retries=max_retries,
        backoff_base_seconds=0.01,
        backoff_cap_seconds=0.05,
        **kwargs,
    )


@contextmanager
def exchange(market: Market, now_ms: int, **kwargs: Any) -> Iterator[ExchangeServer]:
    """The local exchange, frozen at ``now_ms``, limits off (but advertised as huge) by default."""
    kwargs.setdefault("limits", Limits(enabled=False, weight_per_window=UNLIMITED))
    with ExchangeServer(market, clock=FrozenClock(now_ms), **kwargs) as server:
        yield server


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of a lake-schema table with timestamps as epoch milliseconds."""
    columns = {}
    for name in table.column_names:
        column = table[name]
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        columns[name] = column.to_pylist()
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]


def run_verbatim(command: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run a printed command exactly as a user would paste it into a shell: from ``workdir``,
    with no INGMON_* setting, ``ingmon`` found on PATH next to this Python."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# The default series of every market dataset (as a backfill without --interval/--oi-period).
DEFAULT_SERIES = (
    ("candles", "1m"),
    ("agg_trades", None),
    ("open_interest", "5m"),
    ("funding", None),
)


def lake_rows(data_dir: Path, symbols: str) -> dict[str, pa.Table]:
    """Every default series of ``symbols`` (comma-separated) under ``data_dir``, by name."""
    lake = Lake(data_dir / "lake")
    return {
        f"{name}/{symbol}": lake.read(name, symbols=symbol, param=param)
        for name, param in DEFAULT_SERIES
        for symbol in symbols.split(",")
    }


def committed_batches(data_dir: Path) -> int:
    """Batches committed under ``data_dir`` so far: the rows of the lake's ingest_log."""
    return int(Lake(data_dir / "lake").read(INGEST_LOG, columns=["batch_id"]).num_rows)


def backfill_complete(settings: Settings, request: BackfillRequest) -> BackfillSummary:
    """Run a backfill quietly and insist it completed: the setup of a test, not its subject."""
    summary = run_backfill(
        request, settings=settings, reporter=Reporter(mode="json", stream=io.StringIO())
    )
    assert summary.status == "complete", summary.to_dict()["problems"]
    return summary


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of an ``ingmon`` subprocess: no INGMON_* of the caller's, no weight cap
    of the client's own (it paces to what each exchange advertises), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}
    env["INGMON_BINANCE_WEIGHT_LIMIT_PER_MINUTE"] = str(UNLIMITED)
    env.update(extra)
    return env


def backfill_command(
    server: ExchangeServer, data_dir: Path, symbols: str, *extra: str
) -> list[str]:
    """``ingmon backfill`` of 3.5 days of ``symbols`` from ``server`` into ``data_dir``."""
    return [
        sys.executable,
        "-m",
        "ingmon",
        "backfill",
        "--symbol",
        symbols,
        "--window-days",
        "3.5",
        "--base-url",
        server.base_url,
        "--archive-url",
        server.base_url,
        "--output",
        str(data_dir),
        *extra,
    ]

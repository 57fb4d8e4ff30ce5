"""Every repair command ``ingmon check`` prints, run verbatim, turns the check clean: for 1m and
5m candles, 1h open interest, trades and funding, in a non-default data root, from a local
exchange whose URL is not Binance's."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ingmon.binance.backfill import BackfillRequest
from ingmon.check import run_check
from ingmon.config import Settings
from ingmon.exchange import ExchangeServer, Market
from ingmon.lake import Lake

from ._reference import (
    DAY_MS,
    MINUTE_MS,
    backfill_complete,
    exchange,
    run_verbatim,
    settings_for,
)

NOW_MS = 1_790_000_000_000 + 37_123
SYMBOL = "SOLUSDT"
HOUR_MS = 60 * MINUTE_MS
# (interval, OI period) of the two check configurations the lake holds.
SERIES = (("1m", "5m"), ("5m", "1h"))


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.demo(symbols=(SYMBOL,), days=3, seed=21, now_ms=NOW_MS)


@pytest.fixture
def lake_and_exchange(market: Market, tmp_path: Path) -> Iterator[tuple[ExchangeServer, Settings]]:
    """Two days of every dataset, 1m+5m candles and 5m+1h OI, in ``<tmp>/not-the-default``."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path / "not-the-default", server)
        for interval, period in SERIES:
            backfill_complete(
                settings,
                BackfillRequest(
                    symbols=(SYMBOL,), window_days=2, interval=interval, oi_period=period
                ),
            )
        yield server, settings


def _delete(lake: Lake, dataset: str, param: str | None, first_ms: int, last_ms: int) -> int:
    empty = lake.read(dataset, symbols=SYMBOL, param=param).slice(0, 0)
    empty = empty.drop_columns([c for c in empty.column_names if c in ("symbol", "interval")])
    if "period" in empty.column_names:
        empty = empty.drop_columns(["period"])
    return lake.upsert(
        dataset, empty, symbol=SYMBOL, param=param, replace_range=(first_ms, last_ms)
    ).deleted


def _check(settings: Settings, interval: str, period: str, **kwargs: Any) -> dict[str, Any]:
    return run_check(
        settings,
        symbols=[SYMBOL],
        window_days=2,
        end_ms=NOW_MS,
        interval=interval,
        oi_period=period,
        **kwargs,
    ).to_dict()


def _run_verbatim(command: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_verbatim(command, tmp_path / "cwd")


def test_every_printed_repair_command_repairs_this_lake(
    lake_and_exchange: tuple[ExchangeServer, Settings], tmp_path: Path
) -> None:
    """Holes planted in every series are each reported with a command that, run verbatim,
    refetches exactly them into the checked lake: both checks end clean."""
    server, settings = lake_and_exchange
    lake = Lake(settings.lake_dir)
    middle = (NOW_MS - DAY_MS) // HOUR_MS * HOUR_MS
    assert _delete(lake, "candles", "1m", middle, middle + 6 * MINUTE_MS) == 7
    assert _delete(lake, "candles", "5m", middle, middle + 10 * MINUTE_MS) == 3
    assert _delete(lake, "open_interest", "1h", middle, middle + 2 * HOUR_MS) == 3
    assert _delete(lake, "open_interest", "5m", middle, middle + 5 * MINUTE_MS) == 2
    trades = lake.read("agg_trades", symbols=SYMBOL, start=middle, end=middle + MINUTE_MS - 1)
    assert trades.num_rows > 2
    assert _delete(lake, "agg_trades", None, middle, middle + MINUTE_MS - 1) == trades.num_rows
    funding_times = lake.read("funding", symbols=SYMBOL)["funding_time"].cast(pa.int64())
    one_settlement = funding_times.to_pylist()[1]
    assert _delete(lake, "funding", None, one_settlement, one_settlement) == 1

    commands: list[str] = []
    for interval, period in SERIES:
        skip = () if interval == "1m" else ("agg_trades", "funding")
        report = _check(settings, interval, period, skip=skip)
        found = {(p["dataset"], p["param"], p["kind"]) for p in report["problems"]}
        expected = {
            ("candles", interval, "internal_gap"),
            ("open_interest", period, "internal_gap"),
        }
        if interval == "1m":
            expected |= {("agg_trades", None, "id_gap"), ("funding", None, "internal_gap")}
        # Missing trades also show as candles holding more than their trades: named for trades.
        found.discard(("agg_trades", None, "candle_trade_mismatch"))
        assert found == expected
        commands += [p["refetch_command"] for p in report["problems"]]

    data_root = str(settings.data_dir.resolve())
    for command in commands:
        argv = shlex.split(command)
        assert argv[:2] == ["ingmon", "backfill"]
        assert argv[argv.index("--data-dir") + 1] == data_root
        assert argv[argv.index("--base-url") + 1] == server.base_url
        assert argv[argv.index("--archive-url") + 1] == server.base_url
        done = _run_verbatim(command, tmp_path)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert json.loads(done.stdout)["status"] == "complete"

    assert not (tmp_path / "cwd" / "data").exists()  # nothing went to a default ./data
    for interval, period in SERIES:
        skip = () if interval == "1m" else ("agg_trades", "funding")
        report = _check(settings, interval, period, skip=skip)
        assert report["problems"] == [], report["problems"]
        assert report["verdict"] == "ok"


def test_a_5m_gap_is_repaired_with_5m_candles(
    lake_and_exchange: tuple[ExchangeServer, Settings], tmp_path: Path
) -> None:
    """The command for a 5m candle gap asks for --interval 5m: the 1m series is not touched."""
    _, settings = lake_and_exchange
    lake = Lake(settings.lake_dir)
    before_1m = lake.read("candles", symbols=SYMBOL, param="1m").num_rows
    first = (NOW_MS - DAY_MS) // HOUR_MS * HOUR_MS
    assert _delete(lake, "candles", "5m", first, first + 25 * MINUTE_MS) == 6
    [gap] = _check(settings, "5m", "1h", skip=("agg_trades", "funding"))["problems"]
    argv = shlex.split(gap["refetch_command"])
    assert argv[argv.index("--interval") + 1] == "5m"
    assert "--oi-period" not in argv  # 1h is not the series repaired; OI is skipped
    done = _run_verbatim(gap["refetch_command"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["datasets"]["candles"]["inserted"] == 6
    assert lake.read("candles", symbols=SYMBOL, param="1m").num_rows == before_1m

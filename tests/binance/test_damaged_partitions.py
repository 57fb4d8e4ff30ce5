"""A truncated and a garbage partition file: every command reports it in one line or a problem
(never a traceback), and the documented repair — the printed command, or a plain resume —
restores a lake equal to the exchange."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingmon.binance.backfill import BackfillRequest, run_backfill
from ingmon.binance.reporting import Reporter
from ingmon.config import Settings
from ingmon.demo import SIMULATED_FRESHNESS
from ingmon.exchange import ExchangeServer, Market
from ingmon.lake import Lake

from ._reference import (
    DAY_MS,
    MINUTE_MS,
    backfill_complete,
    exchange,
    expected_candles,
    expected_trades,
    run_verbatim,
    settings_for,
    stored,
    stored_trades,
)

NOW_MS = 1_790_000_000_000 + 37_123
SYMBOL = "SOLUSDT"


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.demo(symbols=(SYMBOL,), days=3, seed=21, now_ms=NOW_MS)


@pytest.fixture
def filled(market: Market, tmp_path: Path) -> Iterator[tuple[ExchangeServer, Settings]]:
    """Two days of every dataset, then one candle partition truncated and one trade day
    partition overwritten with garbage."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path / "data", server)
        backfill_complete(settings, BackfillRequest(symbols=(SYMBOL,), window_days=2))
        yield server, settings


def _damage(settings: Settings) -> list[Path]:
    lake = Lake(settings.lake_dir)
    candle_file = lake.files("candles", symbol=SYMBOL, param="1m")[-1].resolve()
    trade_file = lake.files("agg_trades", symbol=SYMBOL)[0].resolve()
    size = candle_file.stat().st_size
    with open(candle_file, "r+b") as handle:  # a write cut short by a full disk
        handle.truncate(size // 2)
    trade_file.write_bytes(b"not parquet at all\n" * 100)
    return [candle_file, trade_file]


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}
    env.update({f"INGMON_{k.upper()}": str(v) for k, v in SIMULATED_FRESHNESS.items()})
    return subprocess.run(
        [sys.executable, "-m", "ingmon", *args, "--data-dir", str(settings.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _assert_exact(lake: Lake, market: Market) -> None:
    """The stored candles and trades equal the exchange's from their first row on (a whole
    partition was rewritten, so that may be before the window), and cover the window."""
    candles = stored(lake, "candles", SYMBOL, "1m")
    first = candles[0]["open_time"]
    assert first < NOW_MS - 2 * DAY_MS + MINUTE_MS
    assert candles == expected_candles(market, SYMBOL, first, NOW_MS - 1, NOW_MS)
    got = stored_trades(lake, SYMBOL)
    first = int(got["transact_time"][0])
    assert first < NOW_MS - 2 * DAY_MS + MINUTE_MS
    want = expected_trades(market, SYMBOL, first, NOW_MS - 1)
    assert got.keys() == want.keys()
    assert all((got[name] == values).all() for name, values in want.items())


def test_every_command_reports_damage_and_the_printed_repair_restores_the_lake(
    filled: tuple[ExchangeServer, Settings], market: Market, tmp_path: Path
) -> None:
    """check: a corrupt_partition problem per damaged file (exit 1); coverage: the files
    named, exit 0; export: one line, exit 2; the printed commands, run verbatim, leave a lake
    equal to the exchange and a clean check."""
    server, settings = filled
    damaged = _damage(settings)
    # check names the exchange the lake comes from, so its repair commands go there too.
    end = ["--end", str(NOW_MS), "--base-url", server.base_url, "--archive-url", server.base_url]
    check = _cli(settings, "check", "--symbol", SYMBOL, "--window-days", "2", *end)
    assert check.returncode == 1 and "Traceback" not in check.stderr, check.stderr
    report = json.loads(check.stdout)
    corrupt = [p for p in report["problems"] if p["kind"] == "corrupt_partition"]
    assert sorted(p["file"] for p in corrupt) == sorted(str(path) for path in damaged)
    assert {p["dataset"] for p in corrupt} == {"candles", "agg_trades"}

    coverage = _cli(settings, "coverage", "--symbol", SYMBOL)
    assert coverage.returncode == 0 and "Traceback" not in coverage.stderr, coverage.stderr
    named = [c for s in json.loads(coverage.stdout)["series"] for c in s["corrupt"]]
    assert len(named) == 2 and all(any(str(p) in line for p in damaged) for line in named)

    export = _cli(settings, "export", "--symbol", SYMBOL)
    lines = export.stderr.strip().splitlines()
    assert export.returncode == 2 and len(lines) == 1 and "Traceback" not in export.stderr
    assert any(str(path) in lines[0] for path in damaged)

    for problem in corrupt:
        assert f"--base-url {server.base_url}" in problem["refetch_command"]
        done = run_verbatim(problem["refetch_command"], tmp_path / "elsewhere")
        assert done.returncode == 0, done.stderr[-2000:]
    lake = Lake(settings.lake_dir)
    quarantined = sorted(p.name for p in settings.lake_dir.rglob("quarantine/*"))
    assert quarantined == sorted(path.name for path in damaged)
    _assert_exact(lake, market)
    after = _cli(settings, "check", "--symbol", SYMBOL, "--window-days", "2", *end)
    assert after.returncode == 0, after.stdout[-3000:]


def test_a_plain_resume_repairs_damaged_partitions(
    filled: tuple[ExchangeServer, Settings], market: Market
) -> None:
    """A resume moves the damaged files aside, refetches their ranges, and says so."""
    settings = filled[1]
    _damage(settings)
    log = io.StringIO()
    summary = run_backfill(
        BackfillRequest(symbols=(SYMBOL,), window_days=2),
        settings=settings,
        reporter=Reporter(mode="json", stream=log),
    )
    assert summary.status == "complete", summary.to_dict()["problems"]
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    moved = [e for e in events if e["event"] == "quarantined"]
    assert {e["dataset"] for e in moved} == {"candles", "agg_trades"}
    _assert_exact(Lake(settings.lake_dir), market)

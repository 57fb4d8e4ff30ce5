"""``ingmon check``: planted problems are found with their exact ranges and repaired by the
command the report names; ``ingmon export`` writes the runbook snapshots."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from ingmon.binance.backfill import BackfillRequest
from ingmon.check import run_check
from ingmon.config import Settings
from ingmon.exchange import ExchangeServer, Market
from ingmon.export import export_snapshots
from ingmon.lake import Lake
from ingmon.times import iso_ms

from ._reference import (
    DAY_MS,
    MINUTE_MS,
    UNLIMITED,
    backfill_complete,
    exchange,
    settings_for,
)

NOW_MS = 1_790_000_000_000 + 37_123
SYMBOL = "SOLUSDT"


@pytest.fixture(scope="module")
def market() -> Market:
    """Three days of SOLUSDT."""
    return Market.demo(symbols=(SYMBOL,), days=3, seed=21, now_ms=NOW_MS)


@pytest.fixture
def filled(market: Market, tmp_path: Path) -> Iterator[tuple[ExchangeServer, Settings]]:
    """A lake with two complete days of every dataset, and the exchange it came from."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        backfill_complete(settings, BackfillRequest(symbols=(SYMBOL,), window_days=2))
        yield server, settings


def _check(settings: Settings) -> dict:
    return run_check(settings, symbols=[SYMBOL], window_days=2, end_ms=NOW_MS).to_dict()


def _run_command(
    command: str, server: ExchangeServer, settings: Settings
) -> subprocess.CompletedProcess[str]:
    """Run a refetch command from a report exactly as printed (plus where the lake is)."""
    argv = shlex.split(command)
    assert argv[:2] == ["ingmon", "backfill"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}
    env["INGMON_BINANCE_WEIGHT_LIMIT_PER_MINUTE"] = str(UNLIMITED)
    full = [
        sys.executable,
        "-m",
        "ingmon.cli",
        *argv[1:],
        "--output",
        str(settings.data_dir),
        "--archive-url",
        server.base_url,
    ]
    return subprocess.run(full, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_clean_backfill_checks_ok(filled: tuple[ExchangeServer, Settings]) -> None:
    """Right after a complete backfill the check finds nothing; every candle matches its trades."""
    report = _check(filled[1])
    assert report["problems"] == []
    assert report["status"] == "ok"
    per = report["symbols"][SYMBOL]
    assert per["candle_vs_trades"]["mismatches"] == 0
    first = -(-(NOW_MS - 2 * DAY_MS) // MINUTE_MS) * MINUTE_MS
    last_closed = NOW_MS // MINUTE_MS * MINUTE_MS - MINUTE_MS
    assert per["candles"]["rows"] == (last_closed - first) // MINUTE_MS + 1


def test_planted_candle_gap_is_found_and_repaired(filled: tuple[ExchangeServer, Settings]) -> None:
    """Deleting 7 candles shows one internal gap of exactly those minutes; its command fixes it."""
    server, settings = filled
    lake = Lake(settings.lake_dir)
    first = (NOW_MS - DAY_MS) // MINUTE_MS * MINUTE_MS
    last = first + 6 * MINUTE_MS
    empty = (
        lake.read("candles", symbols=SYMBOL, param="1m")
        .drop_columns(["symbol", "interval"])
        .slice(0, 0)
    )
    assert (
        lake.upsert(
            "candles", empty, symbol=SYMBOL, param="1m", replace_range=(first, last)
        ).deleted
        == 7
    )
    report = _check(settings)
    gaps = [p for p in report["problems"] if p["kind"] == "internal_gap"]
    assert len(gaps) == 1
    gap = gaps[0]
    assert (gap["dataset"], gap["first_missing"], gap["last_missing"], gap["missing"]) == (
        "candles",
        iso_ms(first),
        iso_ms(last),
        7,
    )
    done = _run_command(gap["refetch_command"], server, settings)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["datasets"]["candles"]["inserted"] == 7
    assert _check(settings)["problems"] == []


def test_planted_trade_hole_is_an_id_gap_and_a_candle_mismatch(
    filled: tuple[ExchangeServer, Settings],
) -> None:
    """Removing trades leaves an id gap, and the candles of those minutes disagree with them."""
    server, settings = filled
    lake = Lake(settings.lake_dir)
    minute = (NOW_MS - DAY_MS // 2) // MINUTE_MS * MINUTE_MS + 30 * MINUTE_MS
    inside = lake.read("agg_trades", symbols=SYMBOL, start=minute, end=minute + MINUTE_MS - 1)
    assert inside.num_rows > 0
    ids = inside["agg_trade_id"].to_pylist()
    empty = inside.drop_columns(["symbol"]).slice(0, 0)
    lake.upsert("agg_trades", empty, symbol=SYMBOL, replace_range=(minute, minute + MINUTE_MS - 1))
    report = _check(settings)
    id_gap = next(p for p in report["problems"] if p["dataset"] == "agg_trades")
    assert (id_gap["first_missing"], id_gap["last_missing"], id_gap["missing"]) == (
        ids[0],
        ids[-1],
        len(ids),
    )
    mismatch = next(p for p in report["problems"] if p["kind"] == "candle_trade_mismatch")
    assert (mismatch["count"], mismatch["first"]) == (1, iso_ms(minute))
    done = _run_command(id_gap["refetch_command"], server, settings)
    assert done.returncode == 0, done.stderr
    assert _check(settings)["problems"] == []


def test_tampered_candle_is_a_mismatch_fixed_by_full_refresh(
    filled: tuple[ExchangeServer, Settings],
) -> None:
    """A candle whose volume no longer equals its trades is named, and --full-refresh repairs it."""
    server, settings = filled
    lake = Lake(settings.lake_dir)
    candles = lake.read("candles", symbols=SYMBOL, param="1m").drop_columns(["symbol", "interval"])
    row = candles.slice(1000, 1)
    index = candles.column_names.index("taker_buy_volume")
    lake.upsert(
        "candles",
        row.set_column(
            index, "taker_buy_volume", pa.array([row["taker_buy_volume"][0].as_py() + 1.0])
        ),
        symbol=SYMBOL,
        param="1m",
    )
    report = _check(settings)
    mismatch = next(p for p in report["problems"] if p["kind"] == "candle_trade_mismatch")
    opened = row["open_time"][0].value
    assert mismatch["first"] == mismatch["last"] == iso_ms(opened)
    assert mismatch["refetch_command"].endswith("--full-refresh")
    done = _run_command(mismatch["refetch_command"], server, settings)
    assert done.returncode == 0, done.stderr
    assert _check(settings)["problems"] == []


def test_duplicate_keys_across_partitions_are_counted(
    filled: tuple[ExchangeServer, Settings],
) -> None:
    """The same trade id stored again under another day is reported as a duplicate."""
    settings = filled[1]
    lake = Lake(settings.lake_dir)
    trade = lake.read("agg_trades", symbols=SYMBOL).drop_columns(["symbol"]).slice(10, 1)
    moved = trade.set_column(
        5, "transact_time", pa.array([NOW_MS - 5 * DAY_MS], pa.timestamp("ms", tz="UTC"))
    )
    lake.upsert("agg_trades", moved, symbol=SYMBOL)
    report = run_check(settings, symbols=[SYMBOL], end_ms=NOW_MS).to_dict()
    duplicates = [p for p in report["problems"] if p["kind"] == "duplicates"]
    assert [(p["dataset"], p["symbol"], p["param"], p["count"]) for p in duplicates] == [
        ("agg_trades", SYMBOL, None, 1)
    ]


def test_stale_data_is_reported_against_the_freshness_threshold(
    filled: tuple[ExchangeServer, Settings],
) -> None:
    """Checked an hour after the last backfill, candles, trades and OI are stale (errors);
    funding, settled every 8 h, is not yet."""
    report = run_check(
        filled[1], symbols=[SYMBOL], window_days=2, end_ms=NOW_MS + 3_600_000
    ).to_dict()
    stale = {(p["dataset"], p["severity"]) for p in report["problems"] if p["kind"] == "stale"}
    assert stale == {("candles", "error"), ("agg_trades", "error"), ("open_interest", "error")}
    assert report["verdict"] == "error"
    assert report["symbols"][SYMBOL]["funding"]["freshness"] == "ok"


def test_a_warning_is_not_an_error_and_skipped_datasets_are_not_judged(
    filled: tuple[ExchangeServer, Settings],
) -> None:
    """100 s after the backfill the last closed candle is 137 s old: a warning (90 < 137 <
    180), verdict warn, exit status 0; trades (60 s error threshold) are skipped on purpose."""
    settings = filled[1]
    later = NOW_MS + 100_000
    last_close = NOW_MS // MINUTE_MS * MINUTE_MS
    report = run_check(
        settings, symbols=[SYMBOL], window_days=1, end_ms=later, skip=("agg_trades",)
    )
    document = report.to_dict()
    candles = document["symbols"][SYMBOL]["candles"]
    assert candles["age_seconds"] == round((later - last_close) / 1000, 1)
    assert candles["freshness"] == "warn"
    assert "agg_trades" not in document["symbols"][SYMBOL]
    assert [(p["dataset"], p["kind"], p["severity"]) for p in document["problems"]] == [
        ("candles", "stale", "warn")
    ]
    assert (document["verdict"], document["status"], report.exit_status) == ("warn", "ok", 0)
    # Judged at Binance's own trade thresholds (15 s / 60 s), 100 s old trades are an error.
    binance = settings.model_copy(
        update={
            "agg_trades_freshness_warn_seconds": 15.0,
            "agg_trades_freshness_error_seconds": 60.0,
        }
    )
    everything = run_check(binance, symbols=[SYMBOL], window_days=1, end_ms=later)
    assert everything.verdict == "error" and everything.exit_status == 1


def test_check_cli_exit_codes(filled: tuple[ExchangeServer, Settings]) -> None:
    """`ingmon check` prints JSON and exits 0 when clean, 1 when problems are found."""
    settings = filled[1]
    base = [
        sys.executable,
        "-m",
        "ingmon.cli",
        "check",
        "--symbol",
        SYMBOL,
        "--data-dir",
        str(settings.data_dir),
        "--window-days",
        "2",
        "--end",
        iso_ms(NOW_MS) or "",
    ]
    clean = subprocess.run(base, capture_output=True, text=True, timeout=60, check=False)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["status"] == "ok"
    late = [*base[:-1], iso_ms(NOW_MS + 3_600_000) or ""]
    stale = subprocess.run(late, capture_output=True, text=True, timeout=60, check=False)
    assert stale.returncode == 1
    assert json.loads(stale.stdout)["status"] == "problems"


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_writes_one_record_per_row(
    filled: tuple[ExchangeServer, Settings], fmt: str
) -> None:
    """Every stored row is one line/record, times as epoch ms, values as stored; no temp files."""
    settings = filled[1]
    files = export_snapshots(settings, symbols=[SYMBOL], fmt=fmt)
    names = sorted(p.name for p in files)
    assert names == sorted(
        f"solusdt_{n}.{fmt}" for n in ("1m_candles", "open_interest_5m", "funding", "agg_trades")
    )
    lake = Lake(settings.lake_dir)
    candles = lake.read("candles", symbols=SYMBOL, param="1m")
    path = settings.data_dir / "binance" / f"solusdt_1m_candles.{fmt}"
    if fmt == "jsonl":
        records = [json.loads(line) for line in path.read_text().splitlines()]
    else:
        import csv

        records = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(path.open())]
    assert len(records) == candles.num_rows
    first = candles.slice(0, 1).to_pylist()[0]
    assert int(records[0]["open_time"]) == int(first["open_time"].timestamp() * 1000)
    assert float(records[0]["close"]) == first["close"]
    assert float(records[0]["quote_volume"]) == first["quote_volume"]
    assert not [p for p in (settings.data_dir / "binance").iterdir() if p.name.startswith(".")]


def test_export_cli_replaces_existing_files(filled: tuple[ExchangeServer, Settings]) -> None:
    """`ingmon export` lists what it wrote and replaces an older snapshot atomically."""
    settings = filled[1]
    target = settings.data_dir / "binance" / "solusdt_funding.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("stale\n")
    command = [
        sys.executable,
        "-m",
        "ingmon.cli",
        "export",
        "--format",
        "jsonl",
        "--output",
        str(settings.data_dir),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert str(target) in json.loads(done.stdout)["files"]
    lines = target.read_text().splitlines()
    assert lines and json.loads(lines[0])["funding_time"] % 1000 == 0

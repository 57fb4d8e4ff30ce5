"""``ingmon demo``: one market per data root — a rerun continues it, another seed is refused
without touching the lake, ``--fresh`` rebuilds, and a log that is not a terminal gets no
escape codes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from binance._reference import DAY_MS, expected_candles

from ingmon.exchange import Market
from ingmon.lake import Lake

SYMBOL = "SOLUSDT"
MARKER = "ingmon-demo.json"

pytestmark = pytest.mark.slow


def _demo(root: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """``ingmon demo`` on two days of one symbol, as a separate process with pipes (no TTY)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}
    argv = [sys.executable, "-m", "ingmon", "demo", "--days", "2", "--symbols", SYMBOL]
    return subprocess.run(
        [*argv, "--data-dir", str(root), *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _listing(root: Path) -> dict[str, int]:
    """Every file under the data root with its modification time (ns)."""
    return {
        str(path.relative_to(root)): path.lstat().st_mtime_ns
        for path in sorted(root.rglob("*"))
        if not path.is_dir()
    }


def _assert_lake_is_market(root: Path, seed: int) -> None:
    """The stored candles are exactly those of the seeded market listed where the marker says."""
    listing_ms = json.loads((root / MARKER).read_text())["listing_ms"]
    # Market.demo lists ``days`` before now, floored to the day: this puts it at listing_ms.
    market = Market.demo(symbols=(SYMBOL,), days=2, seed=seed, now_ms=listing_ms + 2 * DAY_MS)
    files = sorted((root / "lake/candles/symbol=SOLUSDT/interval=1m").glob("**/data.parquet"))
    table = pa.concat_tables(pq.read_table(p, columns=["open_time", "close"]) for p in files)
    stored = dict(
        zip(
            table["open_time"].cast(pa.int64()).to_pylist(),
            table["close"].to_pylist(),
            strict=True,
        )
    )
    first, last = min(stored), max(stored)
    reference = expected_candles(market, SYMBOL, first, last, int(time.time() * 1000))
    assert stored == {row["open_time"]: row["close"] for row in reference}


def _assert_scored_and_backtested(root: Path, printed: dict[str, Any]) -> None:
    """The demo stored the signals it counted, an audit row for each, one saved, exported
    backtest run per symbol whose trades come from those signals, and a health snapshot of
    every dataset of the symbol that knows that run."""
    lake = Lake(root / "lake")
    signals = lake.read("signals", symbols=SYMBOL, param="15m")
    scores = lake.read("scores", symbols=SYMBOL, param="15m")
    assert signals.num_rows == printed["signals_new"] > 0
    assert set(scores["signal_id"].to_pylist()) == set(signals["signal_id"].to_pylist())
    [run_id] = printed["backtests"]
    summary = json.loads((root / "backtests" / run_id / "summary.json").read_text())
    assert summary["run_id"] == run_id
    assert lake.read("backtest_runs", symbols=SYMBOL)["run_id"].to_pylist() == [run_id]
    with (root / "backtests" / run_id / "trades.csv").open() as handle:
        traded = {row["signal_id"] for row in csv.DictReader(handle)}
    assert traded and traded <= set(signals["signal_id"].to_pylist())
    health = json.loads((root / "state" / "health.json").read_text())
    assert health["status"] == printed["health"]
    assert {(s["dataset"], s["symbol"]) for s in health["series"]} == {
        (name, SYMBOL) for name in ("candles", "agg_trades", "open_interest", "funding")
    }
    assert [kpi["run_id"] for kpi in health["performance"] if kpi["setup"] == "all"] == [run_id]


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_rerun_resumes_other_seed_refused_fresh_rebuilds(tmp_path: Path) -> None:
    """Same seed twice → one market; --seed 3 → exit 2, one line, lake untouched; --seed 3
    --fresh → the seed-3 market alone; no run writes an escape code to a piped stderr."""
    root = tmp_path / "demo"
    runs: list[subprocess.CompletedProcess[str]] = []

    runs.append(_demo(root))
    assert runs[-1].returncode == 0, runs[-1].stderr
    marker: dict[str, Any] = json.loads((root / MARKER).read_text())
    assert (marker["seed"], marker["days"], marker["symbols"]) == (7, 2, [SYMBOL])
    _assert_scored_and_backtested(root, json.loads(runs[-1].stdout))

    runs.append(_demo(root))
    assert runs[-1].returncode == 0, runs[-1].stderr
    assert json.loads((root / MARKER).read_text()) == marker
    _assert_lake_is_market(root, seed=7)

    before = _listing(root)
    refused = _demo(root, "--seed", "3")
    assert refused.returncode == 2
    line = _one_line(refused.stderr)
    assert line.startswith("ingmon demo: error:")
    assert "--seed 7" in line
    assert "--fresh" in line
    assert refused.stdout == ""
    assert _listing(root) == before

    runs.append(_demo(root, "--seed", "3", "--fresh"))
    assert runs[-1].returncode == 0, runs[-1].stderr
    assert json.loads((root / MARKER).read_text())["seed"] == 3
    _assert_lake_is_market(root, seed=3)

    for run in runs:
        assert "\x1b[" not in run.stderr
        assert "\r" not in run.stderr
        assert json.loads(run.stdout)["backfill"] == "complete"


def test_fresh_never_deletes_a_lake_the_demo_did_not_write(tmp_path: Path) -> None:
    """A data root with a lake but no demo marker is refused in one line, --fresh or not."""
    root = tmp_path / "user"
    partition = root / "lake/candles/symbol=BTCUSDT/interval=1m/month=2026-10"
    partition.mkdir(parents=True)
    (partition / "data.parquet").write_bytes(b"user data")
    before = _listing(root)

    for flags in ((), ("--fresh",)):
        refused = _demo(root, *flags)
        assert refused.returncode == 2
        assert "--data-dir" in _one_line(refused.stderr)
        assert _listing(root) == before

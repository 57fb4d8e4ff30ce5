"""``ingmon export``: a window export is written beside the full snapshots, never over them."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from binance._reference import DAY_MS, backfill_complete, exchange, settings_for

from ingmon.binance.backfill import BackfillRequest
from ingmon.cli import main
from ingmon.config import Settings
from ingmon.exchange import Market
from ingmon.export import export_snapshots

NOW_MS = 1_790_000_000_000 + 37_123
SYMBOL = "SOLUSDT"
HALF_DAY = 0.5

# (dataset directory and partition parameter in the lake, time column, snapshot file stem):
# written out by hand so that the reference does not borrow ingmon's own naming.
SERIES = (
    ("candles/symbol=SOLUSDT/interval=1m", "open_time", "solusdt_1m_candles"),
    ("open_interest/symbol=SOLUSDT/period=5m", "timestamp", "solusdt_open_interest_5m"),
    ("funding/symbol=SOLUSDT", "funding_time", "solusdt_funding"),
    ("agg_trades/symbol=SOLUSDT", "transact_time", "solusdt_agg_trades"),
)


@pytest.fixture(scope="module")
def market() -> Market:
    """Three days of SOLUSDT."""
    return Market.demo(symbols=(SYMBOL,), days=3, seed=21, now_ms=NOW_MS)


@pytest.fixture
def filled(market: Market, tmp_path: Path) -> Settings:
    """A lake with two complete days of every dataset."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        backfill_complete(settings, BackfillRequest(symbols=(SYMBOL,), window_days=2))
    return settings


def _lake_times(lake_dir: Path, series_dir: str, time_column: str) -> pa.Array:
    """Every stored time (epoch ms) of one series, read straight from its partition files."""
    paths = sorted((lake_dir / series_dir).glob("**/data.parquet"))
    assert paths, f"nothing stored under {series_dir}"
    columns = [pq.read_table(p, columns=[time_column])[time_column] for p in paths]
    return pa.chunked_array(columns).cast(pa.int64()).combine_chunks()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_window_export_leaves_full_snapshot_byte_identical(filled: Settings) -> None:
    """A 0.5-day export writes `<name>.last-0.5d.jsonl` with exactly the window's rows and the
    full snapshot of the same series keeps every byte."""
    out_dir = filled.data_dir / "binance"
    full_files = export_snapshots(filled, symbols=[SYMBOL], fmt="jsonl", end_ms=NOW_MS)
    assert sorted(p.name for p in full_files) == sorted(f"{stem}.jsonl" for _, _, stem in SERIES)
    before = {p.name: p.read_bytes() for p in full_files}

    partial_files = export_snapshots(
        filled, symbols=[SYMBOL], fmt="jsonl", window_days=HALF_DAY, end_ms=NOW_MS
    )

    assert sorted(p.name for p in partial_files) == sorted(
        f"{stem}.last-0.5d.jsonl" for _, _, stem in SERIES
    )
    assert {p.name: p.read_bytes() for p in full_files} == before
    start_ms = NOW_MS - DAY_MS // 2
    for series_dir, time_column, stem in SERIES:
        times = _lake_times(filled.lake_dir, series_dir, time_column)
        assert len(_lines(out_dir / f"{stem}.jsonl")) == len(times)
        inside = pc.and_(pc.greater_equal(times, start_ms), pc.less(times, NOW_MS))
        expected = sorted(pc.filter(times, inside).to_pylist())
        exported = sorted(
            json.loads(line)[time_column] for line in _lines(out_dir / f"{stem}.last-0.5d.jsonl")
        )
        assert exported == expected, stem
        # The window really is a part: the full file holds rows before it.
        assert 0 < len(expected) < len(times), stem


def test_cli_window_export_names_files_for_the_window(
    filled: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ingmon export --window-days 0.5` lists and writes only `.last-0.5d` files; the full ones
    from a plain `ingmon export` stay as they were."""
    root = str(filled.data_dir)
    assert main(["export", "--data-dir", root]) == 0
    full = {
        Path(p).name: Path(p).read_bytes() for p in json.loads(capsys.readouterr().out)["files"]
    }

    assert main(["export", "--data-dir", root, "--window-days", "0.5"]) == 0

    partial = [Path(p) for p in json.loads(capsys.readouterr().out)["files"]]
    assert sorted(p.name for p in partial) == sorted(
        f"{stem}.last-0.5d.jsonl" for _, _, stem in SERIES
    )
    assert all(p.is_file() for p in partial)
    out_dir = filled.data_dir / "binance"
    assert {name: (out_dir / name).read_bytes() for name in full} == full

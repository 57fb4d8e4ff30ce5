"""``ingmon health``: the table or JSON of the snapshot, state/health.json, exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingmon.cli import main
from ingmon.lake import Lake
from ingmon.monitor.health import read_snapshot
from ingmon.times import HOUR_MS, MINUTE_MS, iso_ms, now_ms
from tests.monitor._lake import (
    NOW_MS,
    damage_partition,
    healthy_lake,
    partition_version,
    save_backtest,
    signal_row,
    write_signals,
)

NOW = iso_ms(NOW_MS)
assert NOW is not None


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root with a healthy BTCUSDT lake, a signal and a saved backtest; the working
    directory moved away from any .env."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data"
    lake = Lake(root / "lake")
    healthy_lake(lake)
    write_signals(lake, [signal_row(bar_open_ms=NOW_MS - HOUR_MS)])
    save_backtest(lake)
    return root


def run(*args: str) -> int:
    return main(["health", *args])


def test_a_healthy_lake_exits_0(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Everything ok at --now: exit 0, one table row per series, the signal and backtest
    lines; a snapshot of a chosen instant is not written to health.json."""
    assert run("--data-dir", str(data_dir), "--now", NOW) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("health ✓ ok at 2026-03-01T00:00:00.000Z (window 24 h): 4 series")
    assert lines[1].split() == [
        "STATUS",
        "DATASET",
        "SYMBOL",
        "AGE",
        "P95",
        "LATENCY",
        "CADENCE",
        "GAPS",
    ]
    rows = lines[2:6]
    assert [row.split()[:3] for row in rows] == [
        ["✓", "ok", "candles"],
        ["✓", "ok", "agg_trades"],
        ["✓", "ok", "open_interest"],
        ["✓", "ok", "funding"],
    ]
    assert "1m00s" in rows[0]  # the candles' age
    assert any(line.startswith("signals BTCUSDT: 1 in 24 h, last 45m00s ago") for line in lines)
    assert any(line.startswith("backtest BTCUSDT ") for line in lines)
    assert not (data_dir / "state" / "health.json").exists()


def test_only_the_full_current_snapshot_is_written(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --symbol and --now the snapshot of every symbol, judged at the wall clock, is
    written; a later run with --symbol, or with --now, prints its own snapshot and leaves
    that file as it was."""
    before = now_ms()
    run("--data-dir", str(data_dir))
    after = now_ms()
    state = data_dir / "state" / "health.json"
    written = state.read_bytes()
    snapshot = read_snapshot(data_dir / "state")
    assert snapshot is not None
    assert before <= snapshot.now_ms <= after
    assert snapshot.symbols == ("BTCUSDT",)
    capsys.readouterr()

    assert run("--data-dir", str(data_dir), "--symbol", "BTCUSDT", "--json") in (0, 1)
    assert json.loads(capsys.readouterr().out)["now_ms"] >= snapshot.now_ms
    assert run("--data-dir", str(data_dir), "--now", NOW, "--json") == 0
    assert json.loads(capsys.readouterr().out)["now_ms"] == NOW_MS
    assert state.read_bytes() == written


def test_an_error_exits_1_worst_first_and_json(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Judged an hour later, without writing: stale series are errors (exit 1), listed
    first; --json prints the snapshot document; nothing written with --no-write."""
    later = iso_ms(NOW_MS + HOUR_MS)
    assert later is not None
    assert run("--data-dir", str(data_dir), "--now", later, "--no-write", "--json") == 1
    document = json.loads(capsys.readouterr().out)
    assert document["schema"] == "ingmon.health/v1"
    assert document["status"] == "error"
    statuses = [entry["status"] for entry in document["series"]]
    assert statuses == sorted(statuses, key=["error", "warn", "unknown", "ok"].index)
    assert document["series"][0]["dataset"] == "candles"
    assert not (data_dir / "state" / "health.json").exists()


def test_a_damaged_scores_partition_is_shown_and_exits_1(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every series ok, but the signal's scores partition is damaged: the signal still counts,
    a line names the damaged file, and the exit status is 1."""
    version = partition_version(
        Lake(data_dir / "lake"), dataset="scores", param="15m", partition="month=2026-02"
    )
    damage_partition(version)
    assert run("--data-dir", str(data_dir), "--now", NOW) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("health ✗ error at 2026-03-01T00:00:00.000Z")
    assert any(line.startswith("signals BTCUSDT: 1 in 24 h") for line in lines)
    (damage,) = [line for line in lines if line.startswith("signals ✗ ")]
    assert str(version) in damage


def test_symbols_are_checked_against_the_lake(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--symbol of a stored symbol judges it alone; one the lake does not hold is bad input:
    exit 2 with one line naming it; a malformed one is refused by the parser."""
    assert run("--data-dir", str(data_dir), "--now", NOW, "--symbol", "btcusdt", "--json") == 0
    assert json.loads(capsys.readouterr().out)["symbols"] == ["BTCUSDT"]
    assert run("--data-dir", str(data_dir), "--symbol", "BTCUSDT,XRPUSDT") == 2
    err = capsys.readouterr().err
    assert err == "ingmon health: error: no data of XRPUSDT in the lake\n"
    with pytest.raises(SystemExit) as exited:
        run("--data-dir", str(data_dir), "--symbol", "BTC-USD")
    assert exited.value.code == 2


def test_a_missing_lake_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A data root that does not exist, or holds no lake: exit 2 with one line each."""
    assert run("--data-dir", str(tmp_path / "nowhere")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run("--data-dir", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("ingmon health: error: no lake at ") and err.count("\n") == 1


def test_a_bad_now_is_refused(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--now that is no instant: exit 2 from the parser, one line."""
    with pytest.raises(SystemExit) as exited:
        run("--data-dir", str(data_dir), "--now", "yesterday-ish")
    assert exited.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_real_command_in_a_subprocess(data_dir: Path) -> None:
    """The console entry in its own process: exit 1 two hours on (stale), its table on
    stdout, nothing on stderr; --help lists the flags."""
    later = iso_ms(NOW_MS + 2 * HOUR_MS + MINUTE_MS)
    assert later is not None
    done = subprocess.run(
        [sys.executable, "-m", "ingmon", "health", "--data-dir", str(data_dir), "--now", later],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("health ✗ error")
    assert done.stderr == ""
    shown = subprocess.run(
        [sys.executable, "-m", "ingmon", "health", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in ("--data-dir", "--symbol", "--now", "--no-write", "--json"):
        assert flag in shown
    assert "with --symbol or --now (or --no-write) nothing is written" in " ".join(shown.split())

"""``ingmon backfill`` as a process: SIGKILL at random moments, bad input, logs and summary."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from ingmon.exchange import ExchangeServer, Market

from ._reference import backfill_command, cli_env, committed_batches, exchange, lake_rows

NOW_MS = 1_790_000_000_000 + 37_123
SYMBOLS = "ETHUSDT,SOLUSDT"
# How often a test checks a running backfill's progress.
POLL_SECONDS = 0.01


@pytest.fixture(scope="module")
def server() -> Iterator[ExchangeServer]:
    """One frozen exchange for the module's processes to share."""
    market = Market.demo(symbols=("ETHUSDT", "SOLUSDT"), days=5, seed=13, now_ms=NOW_MS)
    with exchange(market, NOW_MS) as running:
        yield running


def _env() -> dict[str, str]:
    return cli_env()


def _command(server: ExchangeServer, data_dir: Path, *extra: str) -> list[str]:
    return backfill_command(server, data_dir, SYMBOLS, *extra)


def _kill_after_batches(
    command: list[str], data_dir: Path, *, batches: int, log: Path
) -> tuple[int, int]:
    """Run ``command`` (stderr to ``log``) and SIGKILL it once it has committed ``batches``
    more batches; (its exit code, -9 when killed; the batches it committed)."""
    before = committed_batches(data_dir)
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        # Progress, not seconds, decides the moment: the same on a fast box and a loaded one.
        while process.poll() is None and committed_batches(data_dir) < before + batches:
            time.sleep(POLL_SECONDS)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        returncode = process.wait()
    return returncode, committed_batches(data_dir) - before


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(
    server: ExchangeServer, tmp_path: Path
) -> None:
    """Killed with SIGKILL four times mid-run (after a random number of committed batches)
    and resumed, the lake ends row-for-row equal to a run that was never interrupted."""
    clean = tmp_path / "clean"
    done = subprocess.run(
        _command(server, clean),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reference = lake_rows(clean, SYMBOLS)
    total_batches = committed_batches(clean)
    # Four kills, each after at most a sixth of the run: every run is killed with work left.
    most_per_kill = total_batches // 6
    assert most_per_kill >= 2, f"the run has {total_batches} batches: too short to kill 4 times"

    killed = tmp_path / "killed"
    rng = random.Random(2026)
    for run in range(4):
        returncode, committed = _kill_after_batches(
            _command(server, killed),
            killed,
            batches=rng.randint(1, most_per_kill),
            log=tmp_path / f"killed-{run}.log",
        )
        log = (tmp_path / f"killed-{run}.log").read_text()[-2000:]
        assert returncode == -signal.SIGKILL, (
            f"run {run} ended on its own (exit {returncode}, {committed} batches): {log}"
        )
    final = subprocess.run(
        _command(server, killed),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    resumed = lake_rows(killed, SYMBOLS)
    for key, table in reference.items():
        assert resumed[key].equals(table), key
        keys = table.column(2 if table.column_names[1] in ("interval", "period") else 1)
        assert len(set(keys.cast(pa.int64()).to_pylist())) == table.num_rows, (
            f"{key} has duplicate keys"
        )


def test_json_logs_on_stderr_and_summary_on_stdout(server: ExchangeServer, tmp_path: Path) -> None:
    """Not on a TTY: stderr carries JSON lines per batch, stdout one versioned JSON summary."""
    command = _command(server, tmp_path, "--skip-trades")
    command[command.index("3.5")] = "1"
    done = subprocess.run(
        command, env=_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["schema"] == "ingmon.backfill.summary/v1" and summary["status"] == "complete"
    assert set(summary["datasets"]) == {"candles", "open_interest", "funding"}
    for stats in summary["datasets"].values():
        assert {
            "fetched",
            "inserted",
            "duplicates",
            "requests",
            "weight_used",
            "retries",
            "http_429",
            "records_per_second",
            "stages",
        } <= stats.keys()
    events = [json.loads(line) for line in done.stderr.splitlines()]
    batches = [e for e in events if e["event"] == "batch"]
    assert batches and all(e["level"] == "info" and e["ts"].endswith("Z") for e in batches)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbol", "NOPEUSDT", "--window-days", "1"], "unknown symbol NOPEUSDT"),
        (["--symbol", "SOLUSDT", "--window-days", "1", "--interval", "7m"], "invalid choice: '7m'"),
        (
            ["--symbol", "SOLUSDT", "--window-days", "1", "--oi-period", "1m"],
            "invalid choice: '1m'",
        ),
        (["--symbol", "SOLUSDT", "--window-days", "0"], "must be > 0"),
        (["--symbol", "SOLUSDT", "--window-days", "-3"], "must be > 0"),
        (
            ["--symbol", "SOLUSDT", "--start", "2026-09-20", "--end", "2026-09-19"],
            "is not after --start",
        ),
        (["--symbol", "SOLUSDT", "--start", "yesterday"], "invalid time 'yesterday'"),
        (["--symbol", "SOLUSDT"], "give --window-days or --start"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    server: ExchangeServer, tmp_path: Path, args: list[str], message: str
) -> None:
    """Bad flags and unknown symbols: one clear stderr line, exit 2, nothing written."""
    command = [
        sys.executable,
        "-m",
        "ingmon.cli",
        "backfill",
        *args,
        "--base-url",
        server.base_url,
        "--output",
        str(tmp_path),
    ]
    done = subprocess.run(
        command, env=_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "lake").exists()


def test_unreachable_base_url_is_exit_2(tmp_path: Path) -> None:
    """Nothing listening at --base-url: one line naming it, exit 2, nothing written."""
    command = [
        sys.executable,
        "-m",
        "ingmon.cli",
        "backfill",
        "--symbol",
        "SOLUSDT",
        "--window-days",
        "1",
        "--base-url",
        "http://127.0.0.1:9",
        "--output",
        str(tmp_path),
    ]
    done = subprocess.run(
        command, env=_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach http://127.0.0.1:9" in lines[0]
    assert not (tmp_path / "lake").exists()


def test_module_entry_point_has_the_same_help() -> None:
    """``python -m ingmon backfill --help`` is the backfill's own help."""
    done = subprocess.run(
        [sys.executable, "-m", "ingmon", "backfill", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    for flag in (
        "--symbol",
        "--window-days",
        "--resume",
        "--full-refresh",
        "--skip-open-interest",
        "--source",
        "--output",
        "--base-url",
        "--archive-url",
        "--oi-period",
    ):
        assert flag in done.stdout

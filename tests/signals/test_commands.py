"""``ingmon score`` on a real lake: one JSON document with a run per symbol, windows, the candle
delta, and bad input as one line on stderr with exit 2 and the lake untouched.

The lake is backfilled once per module over real HTTP from the local exchange (three days of
ETHUSDT and SOLUSDT with trades); every test scores a copy of it.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from binance._reference import backfill_complete, cli_env, exchange, settings_for

from ingmon.binance.request import BackfillRequest
from ingmon.cli import build_parser, main
from ingmon.exchange import Market
from ingmon.lake import Lake

# 2026-09-21 14:13:57.123 UTC: in the past, so a run without --end (now) sees every bar.
NOW_MS = 1_790_000_000_000 + 37_123
SYMBOLS = ("ETHUSDT", "SOLUSDT")
DAYS = 3
BAR_MS = 15 * 60_000
# Every flag `ingmon score` takes (issue 9's command line, and the delta switch).
FLAGS = ("--symbol", "--window-days", "--start", "--end", "--timeframe", "--data-dir")
FLAGS += ("--candle-delta", "--help")


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root backfilled from the local exchange: 3 days of 1m candles, trades, 5m open
    interest and funding of two symbols. Read-only: tests score a copy."""
    market = Market.demo(symbols=SYMBOLS, days=DAYS + 1, seed=29, now_ms=NOW_MS)
    root = tmp_path_factory.mktemp("backfilled")
    with exchange(market, NOW_MS) as server:
        backfill_complete(
            settings_for(root, server), BackfillRequest(symbols=SYMBOLS, window_days=DAYS)
        )
    return root


@pytest.fixture
def data_dir(backfilled: Path, tmp_path: Path) -> Path:
    """A private copy of the backfilled data root."""
    copy = tmp_path / "data"
    shutil.copytree(backfilled, copy, symlinks=True)
    return copy


def run_score(*argv: str) -> tuple[int, str, str]:
    """``ingmon score ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["score", *argv])
        except SystemExit as stop:  # argparse's own errors and --help
            code = stop.code if isinstance(stop.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def tree(root: Path) -> dict[str, bytes | str | None]:
    """Every path under ``root``: directories as None, symlinks by target, files by content."""
    found: dict[str, bytes | str | None] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = str(path.readlink())
        elif path.is_dir():
            found[name] = None
        else:
            found[name] = path.read_bytes()
    return found


def stored_ids(data_dir: Path, symbol: str, dataset: str = "signals") -> list[str]:
    key = "signal_id" if dataset == "signals" else "score_id"
    table = Lake(data_dir / "lake").read(dataset, symbols=symbol, param="15m", columns=[key])
    return sorted(table[key].to_pylist())


def closed_bars(data_dir: Path, symbol: str) -> list[int]:
    """Open times of the 15m bars whose 15 minutes are all in the lake (a plain count)."""
    table = Lake(data_dir / "lake").read("candles", symbols=symbol, param="1m")
    minutes = Counter(t - t % BAR_MS for t in table["open_time"].cast(pa.int64()).to_pylist())
    return sorted(bar for bar, count in minutes.items() if count == BAR_MS // 60_000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.mark.slow
def test_score_prints_one_json_document_with_a_run_per_symbol(data_dir: Path) -> None:
    """As a process: repeated and comma-separated --symbol (any case, repeats dropped) give one
    JSON document on stdout with one run per symbol in order, covering every closed bar of the
    lake and counting the rows stored; nothing on stderr. A second run finds nothing new."""
    command = [sys.executable, "-m", "ingmon", "score", "--data-dir", str(data_dir)]
    command += ["--symbol", "ethusdt", "--symbol", "SOLUSDT,ETHUSDT"]

    done = subprocess.run(command, env=cli_env(), capture_output=True, text=True, check=False)

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.count("\n") == 1
    runs = json.loads(done.stdout)["runs"]
    assert [run["symbol"] for run in runs] == list(SYMBOLS)
    for run in runs:
        bars = closed_bars(data_dir, run["symbol"])
        assert (run["bars"], run["first_bar"], run["last_bar"]) == (
            len(bars),
            iso(bars[0]),
            iso(bars[-1]),
        )
        assert run["timeframe"] == "15m"
        assert run["delta_source"] == "trades"
        ids = stored_ids(data_dir, run["symbol"])
        assert run["signals"] == run["signals_inserted"] == run["scores_inserted"] == len(ids)
        assert sum(run["by_setup"].values()) == len(ids) > 0
        assert stored_ids(data_dir, run["symbol"], "scores") != []
        assert set(run["watermarks"]) == {"candles", "open_interest", "funding"}

    lake_before = tree(data_dir / "lake" / "signals") | tree(data_dir / "lake" / "scores")
    again = subprocess.run(command, env=cli_env(), capture_output=True, text=True, check=False)
    assert (again.returncode, again.stderr) == (0, "")
    for run in json.loads(again.stdout)["runs"]:
        assert (run["bars"], run["signals_inserted"], run["first_bar"]) == (0, 0, None)
    assert tree(data_dir / "lake" / "signals") | tree(data_dir / "lake" / "scores") == lake_before


def test_window_days_and_start_end_score_the_same_bars(data_dir: Path) -> None:
    """--window-days 1 --end T scores the 96 bars of the day before T; --start T−1d --end T is
    the same window: a rerun of it inserts nothing."""
    end = "2026-09-21T12:00:00Z"
    code, out, err = run_score(
        "--data-dir", str(data_dir), "--symbol", "ETHUSDT", "--window-days", "1", "--end", end
    )
    assert (code, err) == (0, "")
    (run,) = json.loads(out)["runs"]
    assert (run["bars"], run["first_bar"], run["last_bar"]) == (
        96,
        "2026-09-20T12:00:00.000Z",
        "2026-09-21T11:45:00.000Z",
    )
    assert run["signals_inserted"] == len(stored_ids(data_dir, "ETHUSDT")) > 0

    code, out, err = run_score(
        "--data-dir",
        str(data_dir),
        "--symbol",
        "ETHUSDT",
        "--start",
        "2026-09-20T12:00Z",
        "--end",
        end,
    )
    assert (code, err) == (0, "")
    (again,) = json.loads(out)["runs"]
    assert (again["bars"], again["signals"]) == (96, run["signals"])
    assert (again["signals_inserted"], again["scores_inserted"]) == (0, 0)


def test_candle_delta_flag_stores_the_same_signals(data_dir: Path, tmp_path: Path) -> None:
    """--candle-delta reports delta_source "candles" and stores the same signals and score ids
    as the default (trades) run."""
    candles_dir = tmp_path / "candles"
    shutil.copytree(data_dir, candles_dir, symlinks=True)
    code, out, _ = run_score("--data-dir", str(data_dir), "--symbol", "SOLUSDT")
    code_c, out_c, _ = run_score(
        "--data-dir", str(candles_dir), "--symbol", "SOLUSDT", "--candle-delta"
    )
    assert (code, code_c) == (0, 0)
    (trades_run,), (candles_run,) = json.loads(out)["runs"], json.loads(out_c)["runs"]
    assert (trades_run["delta_source"], candles_run["delta_source"]) == ("trades", "candles")
    assert stored_ids(data_dir, "SOLUSDT") == stored_ids(candles_dir, "SOLUSDT") != []
    assert stored_ids(data_dir, "SOLUSDT", "scores") == stored_ids(candles_dir, "SOLUSDT", "scores")
    assert trades_run["by_setup"] == candles_run["by_setup"]


BAD_INPUT = {
    "window and start": (["--window-days", "1", "--start", "2026-09-20"], "not allowed with"),
    "unknown timeframe": (["--timeframe", "7m"], "--timeframe"),
    "bad symbol": (["--symbol", "BTC-USD"], "BTC-USD"),
    "start after end": (["--start", "2026-09-21", "--end", "2026-09-20"], "--start"),
    "start at end": (["--start", "2026-09-21", "--end", "2026-09-21"], "--start"),
    "bad time": (["--end", "yesterday"], "--end"),
    "zero window": (["--window-days", "0"], "--window-days"),
    "no candles": (["--symbol", "XRPUSDT"], "XRPUSDT"),
}


@pytest.mark.parametrize(("argv", "named"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_exit_2_and_leaves_the_lake_alone(
    data_dir: Path, argv: list[str], named: str
) -> None:
    """Each bad input is one line on stderr naming what is wrong, exit 2, nothing on stdout,
    no traceback, and not one file of the data root changed."""
    before = tree(data_dir)
    if "--symbol" not in argv:
        argv = [*argv, "--symbol", "ETHUSDT"]
    code, out, err = run_score("--data-dir", str(data_dir), *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("ingmon score: error: ") and named in err, err
    assert tree(data_dir) == before


def test_a_data_dir_that_does_not_exist_is_one_line_exit_2(tmp_path: Path) -> None:
    """A mistyped data root is refused in one line (exit 2) and not created."""
    missing = tmp_path / "nowhere"
    code, out, err = run_score("--data-dir", str(missing), "--symbol", "ETHUSDT")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "does not exist" in err and str(missing) in err, err
    assert not missing.exists()


def test_a_symbol_without_candles_in_a_window_is_one_line_exit_2(data_dir: Path) -> None:
    """A symbol the lake has no candles of is an error with a window as without one."""
    before = tree(data_dir)
    code, out, err = run_score(
        "--data-dir",
        str(data_dir),
        "--symbol",
        "XRPUSDT",
        "--window-days",
        "1",
        "--end",
        "2026-09-21",
    )
    assert (code, out, err.count("\n")) == (2, "", 1), (out, err)
    assert tree(data_dir) == before


def test_a_bad_symbol_among_good_ones_writes_nothing(data_dir: Path) -> None:
    """--symbol ETHUSDT,XRPUSDT (no candles of XRPUSDT) fails before anything is stored."""
    before = tree(data_dir)
    code, out, err = run_score("--data-dir", str(data_dir), "--symbol", "ETHUSDT,XRPUSDT")
    assert (code, out, err.count("\n")) == (2, "", 1), (out, err)
    assert tree(data_dir) == before


def test_a_window_before_the_lake_s_data_is_no_traceback(data_dir: Path) -> None:
    """--window-days over days the lake has no candles of (a stale lake) is either an empty run
    or one line and exit 2 — never a traceback — and stores nothing."""
    before = tree(data_dir / "lake")
    code, out, err = run_score(
        "--data-dir",
        str(data_dir),
        "--symbol",
        "ETHUSDT",
        "--window-days",
        "1",
        "--end",
        "2026-09-10",
    )
    if code == 0:
        (run,) = json.loads(out)["runs"]
        assert (run["bars"], run["signals"]) == (0, 0)
    else:
        assert (code, out, err.count("\n")) == (2, "", 1), (out, err)
    assert {k: v for k, v in tree(data_dir / "lake").items() if "score_runs" not in k} == {
        k: v for k, v in before.items() if "score_runs" not in k
    }


def test_bad_input_in_a_real_process_has_no_traceback(data_dir: Path) -> None:
    """As a process too: a symbol without candles is exit 2 and one line, no traceback."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingmon",
            "score",
            "--data-dir",
            str(data_dir),
            "--symbol",
            "XRPUSDT",
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "ingmon score: error: no 1m candles of XRPUSDT in the lake\n"


def score_parser() -> Any:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sub.choices["score"]


def test_help_documents_every_flag() -> None:
    """--help lists every flag with its help text and every timeframe choice; the parser has no
    flag the list above lacks."""
    code, out, _ = run_score("--help")
    assert code == 0
    flags = {
        option
        for action in score_parser()._actions
        for option in action.option_strings
        if option.startswith("--")
    }
    assert flags == set(FLAGS)
    for action in score_parser()._actions:
        assert action.help, action.option_strings
    for flag in FLAGS:
        assert flag in out, flag
    for timeframe in ("5m", "15m", "1h"):
        assert timeframe in out
    assert "incremental" in out

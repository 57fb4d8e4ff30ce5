"""``ingmon backtest`` on files: bad input is one line and exit 2; good input writes the
summary JSON, the trades and equity CSVs and a lake run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingmon.backtest.export import TRADE_CSV_COLUMNS
from ingmon.cli import main
from ingmon.lake import Lake
from tests.backtest._market import MINUTE_MS, random_bars, random_signals

DAYS = 4


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Four days of 1m candles (CSV, ISO times in a ``Date`` column, upper-case OHLCV), a
    Parquet signals file with setup/score/confidence, and a funding CSV."""
    bars = random_bars(21, DAYS * 1440)
    signals = random_signals(21, bars, probability=0.01)
    candles = bars.rename(columns=str.capitalize)
    candles.insert(0, "Date", pd.to_datetime(bars["open_time"], unit="ms", utc=True))
    candles = candles.drop(columns=["Open_time"])
    candles["Date"] = candles["Date"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    candles.to_csv(tmp_path / "candles.csv", index=False)
    rng = np.random.default_rng(21)
    pd.DataFrame(
        {
            "time": signals["time"],
            "direction": np.where(signals["direction"] > 0, "long", "short"),
            "setup": rng.choice(["sweep_reclaim", "absorption"], len(signals)),
            "score": rng.integers(0, 8, len(signals)),
            "confidence": rng.choice(["high", "medium", "low"], len(signals)),
        }
    ).to_parquet(tmp_path / "signals.parquet")
    eight_hours = 8 * 60 * MINUTE_MS
    first = int(bars["open_time"].iloc[0])
    pd.DataFrame(
        {
            "funding_time": first + eight_hours * np.arange(1, 3 * DAYS),
            "funding_rate": 0.0001,
        }
    ).to_csv(tmp_path / "funding.csv", index=False)
    bars.to_csv(tmp_path / "plain.csv", index=False)
    return {
        "candles": tmp_path / "candles.csv",
        "signals": tmp_path / "signals.parquet",
        "funding": tmp_path / "funding.csv",
        "plain": tmp_path / "plain.csv",
    }


def run_cli(*args: object, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["backtest", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_files_give_summary_json_trades_and_equity_csv_and_a_lake_run(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The happy path: the summary table on stdout; summary.json with schema_version, config,
    data hash, metrics, breakdowns and the 1/2-day windows; trades.csv with the documented
    columns, one row per trade; equity.csv one row per day; the run listed in the lake."""
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        "--candles", files["candles"], "--signals", files["signals"], "--funding",
        files["funding"], "--window-days", 1, 2, "--hold-bars", 600, "--stop-pct", 2,
        "--setup", "sweep_reclaim,absorption", "--out", out, "--data-dir", tmp_path / "data",
        "--symbol", "BTCUSDT", capsys=capsys,
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    assert "hit rate" in stdout and "sharpe" in stdout and "1d" in stdout
    document = json.loads((out / "summary.json").read_text())
    assert document["schema_version"] == "ingmon.backtest/v1"
    assert document["config"]["engine"]["stop_pct"] == 0.02
    assert document["config"]["engine"]["hold_bars"] == 600
    assert len(document["data"]["hash"]) == 64 and document["data"]["bars"] == DAYS * 1440
    assert document["data"]["funding_events"] == 3 * DAYS - 1
    assert [w["label"] for w in document["windows"]] == ["1d", "2d"]
    assert {"setup", "direction", "score", "confidence", "session"} <= set(document["breakdowns"])
    metrics = document["metrics"]
    assert metrics["funding_paid"] != 0
    with (out / "trades.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == TRADE_CSV_COLUMNS
    assert len(rows) == metrics["trades"] > 3
    assert rows[0]["entry_time"].endswith("Z")
    equity = pd.read_csv(out / "equity.csv")
    assert list(equity.columns) == ["date", "equity", "return", "drawdown"]
    assert len(equity) == DAYS
    assert equity["equity"].iloc[-1] == pytest.approx(metrics["final_equity"])
    runs = Lake(tmp_path / "data" / "lake").read("backtest_runs", symbols="BTCUSDT")
    assert runs["run_id"].to_pylist() == [document["run_id"]]
    assert runs["data_hash"].to_pylist() == [document["data"]["hash"]]


def test_score_and_confidence_filters_select_signals(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--min-score and --confidence keep only matching signals: every trade satisfies both."""
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        "--candles", files["candles"], "--signals", files["signals"], "--min-score", 4,
        "--confidence", "high,medium", "--hold-bars", 10, "--out", out, "--no-save",
        "--data-dir", tmp_path, capsys=capsys,
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) > 0
    assert (trades["score"] >= 4).all()
    assert set(trades["confidence"]) <= {"high", "medium"}
    assert not (tmp_path / "lake").exists()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


CANDLE_HEADER = "open_time,open,high,low,close,volume\n"
T0 = 1_767_225_600_000


def candle_rows(*minutes: int) -> str:
    return "".join(f"{T0 + m * MINUTE_MS},100,101,99,100,5\n" for m in minutes)


BAD_CANDLES = {
    "missing column": ("open_time,open,high,low,volume\n1,2,3,4,5\n", "missing column(s) close"),
    "no time column": ("t,open,high,low,close,volume\n1,2,3,4,5,6\n", "open_time|time|"),
    "unsorted": (CANDLE_HEADER + candle_rows(0, 2, 1), "times are not sorted: row 3"),
    "duplicate": (CANDLE_HEADER + candle_rows(0, 1, 1), "duplicate time 2026-01-01T00:01"),
    "empty": (CANDLE_HEADER, "has no rows"),
    "seconds": (CANDLE_HEADER + "1767225600,100,101,99,100,5\n", "not epoch milliseconds"),
    "bad time": ("date,open,high,low,close,volume\nyesterday,1,2,1,1,1\n", "unparsable time"),
    "bad price": (
        CANDLE_HEADER + f"{T0},100,101,99,x,5\n",
        "column close has a non-numeric value 'x' (row 1)",
    ),
    "empty price": (
        CANDLE_HEADER + candle_rows(0) + f"{T0 + MINUTE_MS},100,101,99,,5\n",
        "empty value in column close (row 2)",
    ),
    "zero price": (
        CANDLE_HEADER + candle_rows(0) + f"{T0 + MINUTE_MS},0,101,99,100,5\n",
        "column open has 0.0 (row 2); it must be finite and > 0",
    ),
    "low above the open": (
        CANDLE_HEADER + candle_rows(0, 1) + f"{T0 + 2 * MINUTE_MS},100,101,100.5,100.7,5\n",
        "inconsistent candle (row 3): open 100.0, high 101.0, low 100.5, close 100.7",
    ),
    "high below the close": (
        CANDLE_HEADER + f"{T0},100,101,99,102,5\n",
        "inconsistent candle (row 1)",
    ),
    "text among epoch ms": (
        CANDLE_HEADER + candle_rows(0) + "soon,100,101,99,100,5\n",
        "unparsable time 'soon' in column open_time (row 2)",
    ),
    "epoch ms among ISO": (
        "date,open,high,low,close,volume\n2026-01-01T00:00:00Z,100,101,99,100,5\n"
        f"{T0 + MINUTE_MS},100,101,99,100,5\n",
        f"unparsable time '{T0 + MINUTE_MS}' in column date (row 2)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CANDLES))
def test_bad_candle_files_are_one_line_and_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each problem of a candles file is named in one line on stderr, exit 2."""
    text, message = BAD_CANDLES[case]
    candles = write(tmp_path / "c.csv", text)
    signals = write(tmp_path / "s.csv", f"time,direction\n{T0},long\n")
    code, stdout, stderr = run_cli(
        "--candles", candles, "--signals", signals, "--data-dir", tmp_path, capsys=capsys
    )
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert stderr.startswith("ingmon backtest: error: candles file")
    assert "np." not in stderr


BAD_SIGNALS = {
    "missing direction": ("time\n{t}\n", "missing column(s) direction"),
    "outside": ("time,direction\n{t}\n{late},short\n", "1 signal(s) outside the candles"),
    "before": ("time,direction\n{early},long\n", "1 signal(s) outside the candles"),
    "unsorted": ("time,direction\n{t2},long\n{t},short\n", "times are not sorted"),
    "twice": ("time,direction\n{t},long\n{t},long\n", "is there twice"),
    "direction": ("time,direction\n{t},up\n", "direction 'up' (row 1)"),
    "numeric direction": ("time,direction\n{t},1\n{t2},2\n", "direction 2 (row 2)"),
    "empty direction": ("time,direction\n{t},long\n{t2},\n", "empty direction (row 2)"),
    "score above 7": ("time,direction,score\n{t},long,3\n{t2},long,8\n", "score 8.0 (row 2)"),
    "fractional score": ("time,direction,score\n{t},long,2.5\n", "score 2.5 (row 1)"),
    "text score": ("time,direction,score\n{t},long,\n{t2},long,high\n", "value 'high' (row 2)"),
    "confidence": ("time,direction,confidence\n{t},long,sure\n", "confidence 'sure' (row 1)"),
    "zero stop": ("time,direction,stop\n{t},long,\n{t2},long,0\n", "column stop has 0.0 (row 2)"),
    "negative target": ("time,direction,target\n{t},short,-1\n", "column target has -1.0"),
    "infinite target": ("time,direction,target\n{t},short,inf\n", "column target has inf"),
}


@pytest.mark.parametrize("case", list(BAD_SIGNALS))
def test_bad_signal_files_are_one_line_and_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing columns, signals outside the data, unsorted or repeated signals, unknown
    directions: one line, exit 2."""
    template, message = BAD_SIGNALS[case]
    if case == "outside":
        template = "time,direction\n{t},long\n{late},short\n"
    candles = write(tmp_path / "c.csv", CANDLE_HEADER + candle_rows(*range(10)))
    text = template.format(t=T0, t2=T0 + MINUTE_MS, late=T0 + 10 * MINUTE_MS, early=T0 - MINUTE_MS)
    signals = write(tmp_path / "s.csv", text)
    code, _, stderr = run_cli(
        "--candles", candles, "--signals", signals, "--data-dir", tmp_path, capsys=capsys
    )
    assert code == 2
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert "np." not in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--candles", "nope.csv", "--signals", "nope.csv"], "does not exist"),
        (["--candles", "c.csv"], "file mode needs both --candles FILE and --signals FILE"),
        (["--stop-pct", "0", "--candles", "c.csv"], "argument --stop-pct: 0 must be > 0"),
        (["--fee-rate", "0.5", "--candles", "c.csv"], "is a fraction per side"),
        (["--export", "xml"], "invalid format"),
        ([], "give --symbol SYM (lake mode) or --candles and --signals files"),
        (["--candles", "c.txt", "--signals", "c.txt"], "unknown format .txt"),
        (
            ["--candles", "c.csv", "--signals", "s.csv", "--timeframe", "7m"],
            "invalid interval '7m'",
        ),
        (["--slippage-bps", "1000", "--candles", "c.csv"], "1000 must be < 1000"),
        (["--fraction", "101", "--candles", "c.csv"], "101 must be <= 100"),
        (["--notional", "1e16", "--candles", "c.csv"], "1e16 must be <= 1e+15"),
        (["--initial-equity", "inf", "--candles", "c.csv"], "'inf' is not a finite number"),
        (
            ["--candles", "c.csv", "--signals", "s.csv", "--rolling-days", "3"],
            "rolling windows of 3 days are longer than the data",
        ),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    args: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Flags that cannot work: one line, exit 2, whether argparse or the command says it."""
    write(tmp_path / "c.csv", CANDLE_HEADER + candle_rows(0, 1))
    write(tmp_path / "s.csv", f"time,direction\n{T0},long\n")
    write(tmp_path / "c.txt", "x")
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["backtest", "--data-dir", str(tmp_path), *args])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    stderr = capsys.readouterr().err
    assert code == 2
    assert stderr.count("\n") == 1 and message in stderr, stderr


def test_the_console_script_says_bad_input_in_one_line(tmp_path: Path) -> None:
    """The real process: exit 2, one line on stderr, no traceback."""
    candles = write(tmp_path / "c.csv", CANDLE_HEADER + candle_rows(0, 2, 1))
    command = Path(sys.executable).parent / "ingmon"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}
    done = subprocess.run(
        [str(command), "backtest", "--candles", str(candles), "--signals", str(candles),
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "times are not sorted" in done.stderr


def test_without_an_exit_option_positions_leave_after_240_one_minute_bars(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --hold-bars, stop, target or own levels: the run uses --hold-bars 240 and says so in
    the summary and the document; every trade leaves by time 240 1m bars after its entry (or
    at the end of the data), never holding one trade to the end."""
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        "--candles", files["candles"], "--signals", files["signals"], "--window-days", 1,
        "--out", out, "--no-save", "--data-dir", tmp_path, capsys=capsys,
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    assert "no exit option given: default --hold-bars 240" in stdout
    document = json.loads((out / "summary.json").read_text())
    assert document["config"]["engine"]["hold_bars"] == 240
    assert any("--hold-bars 240" in note for note in document["notes"])
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) > 10
    held = pd.to_datetime(trades["exit_time"]) - pd.to_datetime(trades["entry_time"])
    timed = trades["exit_reason"] == "time"
    assert (held[timed] == pd.Timedelta(minutes=240)).all()
    assert set(trades["exit_reason"]) <= {"time", "end"} and timed.sum() >= len(trades) - 1


def test_help_says_the_default_exit_and_that_bars_are_one_minute_bars(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--help: --hold-bars and --entry-delay count 1m bars; the default exit is 240 of them."""
    with pytest.raises(SystemExit):
        main(["backtest", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    hold = text[text.rindex("--hold-bars N") :]
    delay = text[text.rindex("--entry-delay BARS") :]
    assert "1m bar" in hold[:200] and "--hold-bars 240" in hold[:400]
    assert "1m bar" in delay[:200]


def test_numeric_setups_and_ids_are_saved_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A signals file whose setup and signal_id columns are numbers (setup 7, id 12) runs to
    the end: the lake's backtest_trades hold "7" and "12", the exports are written."""
    bars = random_bars(3, 600)
    bars.to_csv(tmp_path / "c.csv", index=False)
    times = bars["open_time"].to_numpy()[[10, 200, 400]]
    pd.DataFrame(
        {"time": times, "direction": [1, -1, 1], "setup": [7, 7, 3], "signal_id": [12, 13, 14]}
    ).to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        "--candles", tmp_path / "c.csv", "--signals", tmp_path / "s.csv", "--hold-bars", 30,
        "--window-days", 0.25, "--setup", "7", "--symbol", "BTCUSDT", "--out", out,
        "--data-dir", tmp_path / "data", capsys=capsys,
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    saved = Lake(tmp_path / "data" / "lake").read("backtest_trades", symbols="BTCUSDT")
    assert saved["setup"].to_pylist() == ["7", "7"]
    assert saved["signal_id"].to_pylist() == ["12", "13"]
    assert (out / "summary.json").exists() and (out / "trades.csv").exists()
    document = json.loads((out / "summary.json").read_text())
    assert set(document["breakdowns"]["setup"]) == {"7"}

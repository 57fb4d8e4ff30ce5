"""The real ``ingmon`` console script: bad settings or flags → one line on stderr, exit 2."""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from ingmon.cli import main
from ingmon.lake import Lake
from ingmon.schema import CANDLES

INGMON = Path(sys.executable).parent / "ingmon"
BAD_SETTINGS = {
    "INGMON_SERVER_PORT": ("abc", "an integer >= 1 and <= 65535"),
    "INGMON_CADENCE_TOLERANCE_RATIO": ("5", "a number >= 0 and <= 1"),
    "INGMON_BINANCE_BASE_URL": ("ftp://x", "an http(s) URL"),
    "INGMON_LOG_FORMAT": ("xml", "one of 'auto', 'json' or 'text'"),
    "INGMON_CANDLES_FRESHNESS_WARN_SECONDS": ("500", "must be below"),
}
BAD_ARGS = {
    "unknown flag": (["coverage", "--bogus"], "unrecognized arguments: --bogus"),
    "unknown command": (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
}


def start(
    *args: str, cwd: Path, env: dict[str, str] | None = None, module: bool = False
) -> subprocess.Popen[str]:
    """Start the installed console script (or ``python -m ingmon.cli``) in ``cwd``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}
    command = [sys.executable, "-m", "ingmon.cli"] if module else [str(INGMON)]
    return subprocess.Popen(
        [*command, *args],
        cwd=cwd,
        env=clean | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every command line of this module, run at once (each start of ingmon takes ~1 s)."""
    plain = tmp_path_factory.mktemp("plain")
    env_file_dir = tmp_path_factory.mktemp("env-file")
    (env_file_dir / ".env").write_text(
        "INGMON_SERVER_PORT=9001\nINGMON_SERVER_HOST=0.0.0.0\nINGMON_BASIC_AUTH=bob:pw\n"
    )
    data = tmp_path_factory.mktemp("with-lake")
    write_small_lake(data / "data" / "lake")

    processes = {
        name: start("config", cwd=plain, env={name: value})
        for name, (value, _) in BAD_SETTINGS.items()
    }
    processes |= {name: start(*args, cwd=plain) for name, (args, _) in BAD_ARGS.items()}
    processes |= {
        ".env and environment": start(
            "config", cwd=env_file_dir, env={"INGMON_SERVER_PORT": "9002"}
        ),
        "module": start("coverage", "--bogus", cwd=plain, module=True),
        "coverage": start("coverage", "--data-dir", str(data / "data"), cwd=plain),
    }
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(
            process.args, process.returncode, stdout, stderr
        )
    return results


def write_small_lake(root: Path) -> None:
    """Three 1m candles of 2026-01-01 with 00:02 missing."""
    start_ms = calendar.timegm((2026, 1, 1, 0, 0, 0)) * 1000
    open_ms = [start_ms, start_ms + 60_000, start_ms + 180_000]
    time_type = CANDLES.arrow_schema.field("open_time").type
    columns = {name: pa.array([1.0] * 3) for name in CANDLES.column_names}
    columns["open_time"] = pa.array(open_ms).cast(time_type)
    columns["close_time"] = pa.array([t + 59_999 for t in open_ms]).cast(time_type)
    columns["trade_count"] = pa.array([1, 1, 1])
    Lake(root).upsert(CANDLES, pa.table(columns), symbol="BTCUSDT", param="1m")


def assert_one_line_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("name", sorted(BAD_SETTINGS))
def test_bad_setting_is_one_line_and_exit_2(
    ran: dict[str, subprocess.CompletedProcess[str]], name: str
) -> None:
    """An invalid INGMON_* value stops a command with one line naming it, exit status 2."""
    assert_one_line_usage_error(ran[name], "ingmon config: error: ", name, BAD_SETTINGS[name][1])


def test_env_file_is_read_and_environment_overrides_it(
    ran: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """`ingmon config` shows values from ./.env, except the one an exported variable overrides."""
    shown = json.loads(ran[".env and environment"].stdout)
    assert (shown["server_host"], shown["basic_auth"]) == ("0.0.0.0", "***")
    assert shown["server_port"] == 9002


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_bad_flag_or_command_is_one_line_and_exit_2(
    ran: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    """Unknown flags, commands or datasets: one line on stderr, exit 2, no traceback."""
    assert_one_line_usage_error(ran[case], BAD_ARGS[case][1])


def test_module_entry_point_behaves_like_the_script(
    ran: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """`python -m ingmon.cli` reports a bad flag the same way."""
    assert_one_line_usage_error(ran["module"], "unrecognized arguments: --bogus")


def test_coverage_command_prints_the_lake_report(
    ran: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """`ingmon coverage --data-dir DIR` prints JSON coverage of the lake under DIR/lake."""
    result = ran["coverage"]
    assert result.returncode == 0, result.stderr
    [series] = json.loads(result.stdout)["series"]
    assert (series["rows"], series["missing"]) == (3, 1)
    assert series["gaps"][0]["first_missing_iso"] == "2026-01-01T00:02:00.000Z"


# ---- the same entry point in-process (fast) for the remaining cases ----------------------------


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse exits; handlers return
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["coverage", "--dataset", "klines", "--data-dir", "."], "unknown dataset 'klines'"),
        (["coverage", "--data-dir"], "argument --data-dir: expected one argument"),
    ],
)
def test_other_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    """No command, an unknown dataset, a flag without its value: one line, status 2."""
    status, out, err = run_main(args, capsys)
    assert (status, out) == (2, "")
    assert err.count("\n") == 1
    assert fragment in err


def test_bad_env_file_value_stops_a_data_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad value in ./.env stops `ingmon coverage` with one line naming it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("INGMON_SERVER_PORT=eighty\n")
    status, out, err = run_main(["coverage"], capsys)
    assert (status, out) == (2, "")
    assert err == (
        "ingmon coverage: error: invalid setting INGMON_SERVER_PORT='eighty': "
        "expected an integer >= 1 and <= 65535\n"
    )


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists the commands and exits 0."""
    status, out, _ = run_main(["--help"], capsys)
    assert status == 0
    assert "coverage" in out


@pytest.mark.parametrize("command", ["coverage", "check", "export"])
@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_bad_data_root_is_one_line_and_exit_2(
    command: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Read commands refuse a data root that does not exist or is a file; nothing is created."""
    root = tmp_path / "nowhere"
    if kind == "file":
        root.write_text("not a directory")
    args = [command, "--data-dir", str(root)]
    if command == "check":
        args += ["--symbol", "BTCUSDT"]
    status, out, err = run_main(args, capsys)
    assert (status, out) == (2, "")
    assert err.count("\n") == 1
    assert f"--data-dir '{root}'" in err
    assert ("does not exist" if kind == "missing" else "is not a directory") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if kind == "missing" else ["nowhere"])


def test_backfill_into_a_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backfill whose data root is a file stops before contacting any exchange."""
    root = tmp_path / "a-file"
    root.write_text("x")
    args = ["backfill", "--symbol", "BTCUSDT", "--window-days", "1", "--data-dir", str(root)]
    status, out, err = run_main([*args, "--base-url", "http://127.0.0.1:9"], capsys)
    assert (status, out) == (2, "")
    assert err.count("\n") == 1 and "is not a directory" in err

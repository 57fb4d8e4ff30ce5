"""The report runner: papermill over tiny notebooks in tmp_path, then the real integrity report.

The tiny notebooks stand in for ``notebooks/`` (``--notebooks DIR``): a parameters cell with
annotated types, a cell writing ``result_path`` JSON from inside the kernel, and a cell that
raises when asked to. Every run goes through a real kernel.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import ingmon
from ingmon.cli import main
from ingmon.config import Settings, load_settings
from ingmon.errors import UsageError
from ingmon.reports import (
    REPORTS,
    NotebookFailedError,
    ReportError,
    ReportRun,
    find_notebook,
    notebook_parameters,
    report_paths,
    report_runs,
    report_state,
    run_report,
)

DAY = date(2026, 11, 26)

# Text that is only in the code of the tiny notebook; its printed output is OUTPUT_MARKER.
CODE_MARKER = "only_in_the_code_cell"
OUTPUT_MARKER = "printed by the kernel"

TINY = textwrap.dedent(
    f'''\
    # ---
    # jupyter:
    #   kernelspec:
    #     display_name: Python 3
    #     language: python
    #     name: python3
    # ---

    # %% tags=["parameters"]
    symbols: list[str] = ["BTCUSDT"]  # symbols to look at
    windows: list[int] = [30, 60]
    min_score: int = 4
    fee_rate: float = 0.0005
    fail: bool = False
    refuse: bool = False
    write_result: bool = True
    sleep_seconds: float = 0.0
    as_of: str = ""
    data_dir: str = ""
    result_path: str = ""

    # %%
    import json
    import os

    {CODE_MARKER} = "{OUTPUT_MARKER}"
    print({CODE_MARKER})
    values = {{
        "symbols": symbols, "windows": windows, "min_score": min_score, "fee_rate": fee_rate
    }}
    document = {{
        "verdict": "ok",
        "values": values,
        "types": {{name: repr(type(value)) for name, value in values.items()}},
        "item_types": {{
            name: sorted({{repr(type(item)) for item in value}})
            for name, value in values.items()
            if isinstance(value, list)
        }},
        "as_of": as_of,
        "data_dir": data_dir,
        "cwd": os.getcwd(),
    }}
    if result_path and write_result:
        with open(result_path, "w") as handle:
            json.dump(document, handle)

    # %% [markdown]
    # A markdown cell: cells are numbered as in the source file.

    # %%
    if fail:
        raise ValueError("planted failure")
    if refuse:
        from ingmon.errors import UsageError
        raise UsageError("planted refusal: only the library can tell")
    import time; time.sleep(sleep_seconds)
    '''
)

FAILING = textwrap.dedent(
    """\
    # %% tags=["parameters"]
    data_dir: str = ""
    result_path: str = ""

    # %%
    x = 1

    # %% [markdown]
    # text

    # %%
    y = x / 0
    """
)


@pytest.fixture
def notebooks(tmp_path: Path) -> Path:
    """A notebooks directory: the tiny notebook as `integrity`, the failing one as `backtest`."""
    directory = tmp_path / "notebooks"
    directory.mkdir()
    (directory / f"{REPORTS['integrity']}.py").write_text(TINY)
    (directory / f"{REPORTS['backtest']}.py").write_text(FAILING)
    return directory


# Symbols with a 1m candle series in the data_dir fixture's lake (empty directories: the
# runner only asks the lake which symbols it holds; the tiny notebooks read nothing).
LAKE_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data root whose lake lists LAKE_SYMBOLS with 1m candles."""
    root = tmp_path / "data"
    for symbol in LAKE_SYMBOLS:
        (root / "lake" / "candles" / f"symbol={symbol}" / "interval=1m").mkdir(parents=True)
    return root


def _settings(data_dir: Path) -> Settings:
    """Settings of ``data_dir`` alone: no .env of the developer's working copy."""
    return load_settings(env_file=None, data_dir=data_dir)


def _nothing_written(data_dir: Path) -> bool:
    return sorted(path.name for path in data_dir.iterdir()) == ["lake"]


def _run(notebooks: Path, data_dir: Path, *overrides: str, **options: Any) -> ReportRun:
    options.setdefault("day", DAY)
    return run_report(
        "integrity",
        settings=_settings(data_dir),
        notebooks_dir=notebooks,
        overrides=overrides,
        **options,
    )


def _sidecar(data_dir: Path, day: date = DAY) -> dict[str, Any]:
    path = report_paths(data_dir / "reports", "integrity", day).sidecar
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_outputs_land_in_report_slash_day_named_after_the_report(
    notebooks: Path, data_dir: Path
) -> None:
    """A run writes exactly <out>/integrity/2026-11-26/integrity.{ipynb,html,json}, nothing else."""
    run = _run(notebooks, data_dir)
    directory = data_dir / "reports" / "integrity" / "2026-11-26"
    assert sorted(path.name for path in directory.iterdir()) == [
        "integrity.html",
        "integrity.ipynb",
        "integrity.json",
    ]
    assert run.outputs == {
        "ipynb": str(directory / "integrity.ipynb"),
        "html": str(directory / "integrity.html"),
        "json": str(directory / "integrity.json"),
    }
    # No staging directory is left behind (only the lock file beside the days).
    assert sorted(path.name for path in directory.parent.iterdir()) == [".lock", "2026-11-26"]
    executed = json.loads((directory / "integrity.ipynb").read_text())
    assert executed["metadata"]["papermill"]["exception"] is not True
    assert executed["metadata"]["papermill"]["input_path"] == str(notebooks / "data_integrity.py")


def test_out_flag_moves_the_outputs_and_html_shows_outputs_without_code(
    notebooks: Path, data_dir: Path, tmp_path: Path
) -> None:
    """--out picks the root; the HTML holds what the kernel printed but none of the code."""
    out = tmp_path / "elsewhere"
    _run(notebooks, data_dir, out_dir=out)
    html = report_paths(out, "integrity", DAY).html.read_text()
    assert OUTPUT_MARKER in html
    assert CODE_MARKER not in html
    assert "result_path" not in html and "import json" not in html
    assert not (data_dir / "reports").exists()


def test_sidecar_is_the_notebooks_document_plus_the_run(notebooks: Path, data_dir: Path) -> None:
    """The sidecar keeps the notebook's keys and adds report_run: name, date, parameters as run,
    times, duration, outputs and the ingmon version."""
    run = _run(notebooks, data_dir, "min_score=6")
    sidecar = _sidecar(data_dir)
    assert sidecar["verdict"] == "ok"
    assert sidecar["values"]["min_score"] == 6
    meta = sidecar["report_run"]
    assert meta["report"] == "integrity"
    assert meta["notebook"] == "data_integrity.py"
    assert meta["date"] == "2026-11-26"
    assert meta["status"] == "success"
    assert meta["failure"] is None
    assert meta["ingmon_version"] == ingmon.__version__
    assert meta["parameters"] == {
        "symbols": ["BTCUSDT"],
        "windows": [30, 60],
        "min_score": 6,
        "fee_rate": 0.0005,
        "fail": False,
        "refuse": False,
        "write_result": True,
        "sleep_seconds": 0.0,
        "as_of": "2026-11-27T00:00:00.000Z",
        "data_dir": str(data_dir.resolve()),
    }
    assert meta["outputs"] == run.outputs
    assert meta["started"] < meta["finished"]
    assert meta["duration_seconds"] == pytest.approx(run.duration_seconds)
    assert 0 < meta["duration_seconds"] < 120
    # The kernel saw the runner's resolved data root.
    assert sidecar["data_dir"] == str(data_dir.resolve())


def test_the_kernel_runs_in_the_callers_working_directory(
    notebooks: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel's working directory is the caller's (where load_settings finds .env), not the
    run's staging directory; data_dir is passed resolved, so a relative --data-dir still works."""
    caller = tmp_path / "operator"
    caller.mkdir()
    monkeypatch.chdir(caller)
    run_report(
        "integrity",
        settings=load_settings(env_file=None, data_dir=Path("..") / "data"),
        notebooks_dir=notebooks,
        day=DAY,
    )
    sidecar = _sidecar(data_dir)
    assert sidecar["cwd"] == str(caller)
    assert sidecar["data_dir"] == str(data_dir.resolve())


def test_overrides_reach_the_kernel_typed(notebooks: Path, data_dir: Path) -> None:
    """-p values arrive as the annotation says: list[str], list[int], int, float."""
    _run(
        notebooks,
        data_dir,
        "symbols=BTCUSDT, ETHUSDT",
        "windows=7,14,90",
        "min_score=5",
        "fee_rate=0.0004",
    )
    sidecar = _sidecar(data_dir)
    assert sidecar["values"] == {
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "windows": [7, 14, 90],
        "min_score": 5,
        "fee_rate": 0.0004,
    }
    assert sidecar["types"] == {
        "symbols": "<class 'list'>",
        "windows": "<class 'list'>",
        "min_score": "<class 'int'>",
        "fee_rate": "<class 'float'>",
    }
    assert sidecar["item_types"] == {"symbols": ["<class 'str'>"], "windows": ["<class 'int'>"]}


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("min_score=high", "min_score expects int"),
        ("min_score=4.5", "min_score expects int"),
        ("fee_rate=cheap", "fee_rate expects float"),
        ("fee_rate=nan", "fee_rate expects float"),
        ("windows=30,sixty", "windows expects list[int]"),
        ("fail=maybe", "fail expects bool"),
        ("window=30", "-p window: unknown parameter"),
        ("min_score", "expected key=value"),
        ("data_dir=/elsewhere", "-p data_dir: set by --data-dir"),
        ("result_path=/tmp/x.json", "-p result_path: set by the runner"),
        ("as_of=yesterday", "-p as_of=yesterday: invalid time"),
        ("as_of=0", "-p as_of=0: as_of must be after 1970-01-01"),
        ("as_of=2999-01-01", "-p as_of=2999-01-01: as_of 2999-01-01T00:00:00.000Z is after now"),
        ("symbols=DOGEUSDT", "no 1m candles for DOGEUSDT in"),
        ("symbols=solusdt", "-p symbols=solusdt: symbols are upper-case, like SOLUSDT"),
        ("symbols=SOL-USDT", "invalid symbol 'SOL-USDT'"),
    ],
)
def test_bad_overrides_are_usage_errors_before_anything_runs(
    notebooks: Path, data_dir: Path, override: str, named: str
) -> None:
    """A bad -p is a one-line UsageError naming the parameter (and its type); nothing is
    written or recorded."""
    with pytest.raises(UsageError) as raised:
        _run(notebooks, data_dir, override)
    message = str(raised.value)
    assert named in message
    assert "\n" not in message
    assert _nothing_written(data_dir)


def test_the_day_and_as_of_follow_each_other(notebooks: Path, data_dir: Path) -> None:
    """--date D runs as of the end of D; -p as_of names the day of its last instant (windows
    are half-open) and reaches the kernel as canonical ISO-8601 whatever its form; a future
    --date, and a --date that is not as_of's day, are refused."""
    run = _run(notebooks, data_dir, day=date(2026, 10, 1))
    assert run.parameters["as_of"] == "2026-10-02T00:00:00.000Z"
    run = _run(notebooks, data_dir, "as_of=2026-10-05", day=None)
    assert run.day == date(2026, 10, 4)
    assert _sidecar(data_dir, date(2026, 10, 4))["as_of"] == "2026-10-05T00:00:00.000Z"
    run = _run(notebooks, data_dir, "as_of=2026-10-05T06:00:00Z", day=None)
    assert run.day == date(2026, 10, 5)
    # Epoch ms of 2026-10-05T06:00Z by hand: 56 years with 14 leap days, 273 + 4 days, 6 h.
    run = _run(
        notebooks,
        data_dir,
        f"as_of={((56 * 365 + 14 + 273 + 4) * 86400 + 6 * 3600) * 1000}",
        day=None,
    )
    assert run.parameters["as_of"] == "2026-10-05T06:00:00.000Z"
    assert _sidecar(data_dir, date(2026, 10, 5))["as_of"] == "2026-10-05T06:00:00.000Z"
    # --date agreeing with as_of is fine; another day is refused.
    run = _run(notebooks, data_dir, "as_of=2026-10-05", day=date(2026, 10, 4))
    assert run.day == date(2026, 10, 4)
    with pytest.raises(UsageError, match=r"--date 2026-10-05 and -p as_of=2026-10-05 name"):
        _run(notebooks, data_dir, "as_of=2026-10-05", day=date(2026, 10, 5))
    with pytest.raises(UsageError, match="after today"):
        _run(notebooks, data_dir, day=date(2999, 1, 1))


def test_a_rerun_the_same_day_replaces_the_outputs(notebooks: Path, data_dir: Path) -> None:
    """The second run of a day replaces the whole day directory: new sidecar, no stale file."""
    _run(notebooks, data_dir, "symbols=BTCUSDT")
    paths = report_paths(data_dir / "reports", "integrity", DAY)
    (paths.directory / "stale.txt").write_text("from an earlier run")
    first_started = _sidecar(data_dir)["report_run"]["started"]
    _run(notebooks, data_dir, "symbols=ETHUSDT")
    sidecar = _sidecar(data_dir)
    assert sidecar["values"]["symbols"] == ["ETHUSDT"]
    assert sidecar["report_run"]["started"] > first_started
    assert sorted(path.name for path in paths.directory.iterdir()) == [
        "integrity.html",
        "integrity.ipynb",
        "integrity.json",
    ]
    assert len(report_runs(data_dir)) == 2


def test_state_and_log_record_a_success_then_a_failure(notebooks: Path, data_dir: Path) -> None:
    """reports.json keeps the last success when a later run fails; the log has both runs; the
    good outputs stay and the failed run's partial notebook and HTML sit beside them."""
    assert report_state(data_dir) == {}
    good = _run(notebooks, data_dir)
    state = report_state(data_dir)["integrity"]
    assert state.last_status == "success"
    assert state.last_success_timestamp_seconds == good.finished_ms / 1000
    assert state.last_success_duration_seconds == good.duration_seconds
    assert (state.runs_total, state.failures_total) == (1, 0)
    assert state.last_failure_message is None

    with pytest.raises(NotebookFailedError) as raised:
        _run(notebooks, data_dir, "fail=true")
    state = report_state(data_dir)["integrity"]
    assert state.last_status == "failed"
    assert state.last_success_timestamp_seconds == good.finished_ms / 1000
    assert (state.runs_total, state.failures_total) == (2, 1)
    assert state.last_failure_message is not None
    assert "ValueError: planted failure" in state.last_failure_message
    assert state.last_failure_time == raised.value.run.to_dict()["finished"]

    runs = report_runs(data_dir)
    assert [run["status"] for run in runs] == ["success", "failed"]
    assert runs[0]["started"] == good.to_dict()["started"]
    assert runs[1]["parameters"]["fail"] is True
    stored = json.loads((data_dir / "state" / "reports.json").read_text())
    assert stored["format"] == 1 and set(stored["reports"]) == {"integrity"}

    paths = report_paths(data_dir / "reports", "integrity", DAY)
    assert _sidecar(data_dir)["report_run"]["status"] == "success"
    assert paths.failed_notebook.exists() and paths.failed_html.exists()
    assert raised.value.partial_notebook == paths.failed_notebook


def test_a_notebook_that_writes_no_result_fails(notebooks: Path, data_dir: Path) -> None:
    """A run whose notebook finishes without writing result_path is a failure, recorded."""
    with pytest.raises(NotebookFailedError, match="wrote no result"):
        _run(notebooks, data_dir, "write_result=false")
    assert report_state(data_dir)["integrity"].last_status == "failed"
    assert report_state(data_dir)["integrity"].last_success_timestamp_seconds is None


def test_a_cell_over_the_timeout_fails_the_run_naming_it(notebooks: Path, data_dir: Path) -> None:
    """A cell running past --timeout is a failed run naming that cell, recorded as such."""
    with pytest.raises(NotebookFailedError) as raised:
        # 5 s: far beyond what the trivial cells before take even on a loaded machine
        _run(notebooks, data_dir, "sleep_seconds=300", timeout_seconds=5)
    assert raised.value.cell is not None
    assert raised.value.cell.number == 4
    assert raised.value.cell.error_type == "CellTimeoutError"
    assert "cell 4" in str(raised.value)
    assert report_state(data_dir)["integrity"].last_status == "failed"


def test_leftovers_of_killed_runs_are_swept_after_a_day(notebooks: Path, data_dir: Path) -> None:
    """A staging directory older than a day (a killed run) goes at the next run; a young one
    (a run in progress) stays."""
    report_dir = data_dir / "reports" / "integrity"
    old = report_dir / ".2026-11-20.dead.tmp"
    young = report_dir / ".2026-11-26.running.tmp"
    for directory in (old, young):
        directory.mkdir(parents=True)
        (directory / "integrity.ipynb").write_text("{}")
    os.utime(old, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    _run(notebooks, data_dir)
    assert not old.exists()
    assert young.exists()


def _unwritable_state(data_dir: Path) -> None:
    """Make <data_dir>/state impossible to create (a file in its place): the tests run as
    root here, where a read-only mode would not stop a write."""
    (data_dir / "state").write_text("not a directory")


def test_a_run_that_cannot_be_recorded_keeps_its_outputs_and_warns(
    notebooks: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the state cannot be written the report is still written and the CLI exits 0, with
    one warning line naming the state directory."""
    _unwritable_state(data_dir)
    status = main(
        [
            *("report", "integrity", "--notebooks", str(notebooks), "--data-dir", str(data_dir)),
            *("--date", DAY.isoformat()),
        ]
    )
    captured = capsys.readouterr()
    assert status == 0
    sidecar = report_paths(data_dir.resolve() / "reports", "integrity", DAY).sidecar
    assert captured.out == f"{sidecar}\n"
    assert _sidecar(data_dir)["report_run"]["status"] == "success"
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert warnings == [
        "ingmon report: integrity: warning: the run is not recorded in "
        f"{data_dir.resolve() / 'state'}: File exists: {data_dir.resolve() / 'state'}"
    ]
    assert "error" not in captured.err


def test_a_failed_run_that_cannot_be_recorded_still_exits_1_naming_the_cell(
    notebooks: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failing notebook on a data root whose state cannot be written: exit 1 naming the
    failing cell (not exit 2 about the state), plus the warning."""
    _unwritable_state(data_dir)
    status = main(
        [
            *("report", "backtest", "--notebooks", str(notebooks), "--data-dir", str(data_dir)),
            *("--date", DAY.isoformat()),
        ]
    )
    err = capsys.readouterr().err
    assert status == 1
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1
    assert "cell 4 (In [" in errors[0]
    assert "ZeroDivisionError" in errors[0]
    assert len([line for line in err.splitlines() if ": warning: " in line]) == 1


def test_cli_failing_cell_exits_1_naming_the_cell(
    notebooks: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ingmon report` on a notebook whose 4th cell divides by zero exits 1 with one error line
    naming cell 4, its first source line and the exception; the partial notebook is kept and
    the failure recorded."""
    status = main(
        [
            "report",
            "backtest",
            "--notebooks",
            str(notebooks),
            "--data-dir",
            str(data_dir),
            "--date",
            DAY.isoformat(),
        ]
    )
    assert status == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if ": error: " in line]
    assert len(errors) == 1
    assert "cell 4 (In [" in errors[0]
    assert "`y = x / 0`" in errors[0]
    assert "ZeroDivisionError: division by zero" in errors[0]
    partial = data_dir / "reports" / "backtest" / "2026-11-26" / "backtest.failed.ipynb"
    assert str(partial) in errors[0]
    executed = json.loads(partial.read_text())
    assert executed["metadata"]["papermill"]["exception"] is True
    assert "running" in captured.err  # the progress line said which notebook
    state = report_state(data_dir)["backtest"]
    assert state.last_status == "failed"
    assert state.last_failure_message is not None
    assert "cell 4" in state.last_failure_message


def test_cli_success_prints_the_sidecar_and_progress(
    notebooks: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Success: exit 0, the sidecar's path on stdout, which notebook / where / how long on
    stderr; the default output root is DATA_DIR/reports."""
    status = main(
        [
            *("report", "integrity", "--notebooks", str(notebooks), "--data-dir", str(data_dir)),
            *("-p", "symbols=SOLUSDT", "--date", DAY.isoformat()),
        ]
    )
    captured = capsys.readouterr()
    assert status == 0
    sidecar = report_paths(data_dir.resolve() / "reports", "integrity", DAY).sidecar
    assert captured.out == f"{sidecar}\n"
    assert "data_integrity.py" in captured.err
    assert str(sidecar.parent) in captured.err
    assert " s\n" in captured.err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["integrity", "-p", "window_days=x"], "window_days expects int"),
        (["backtest", "-p", "nope=1"], "-p nope: unknown parameter"),
        (["integrity", "--date", "26/11/2026"], "invalid date '26/11/2026'"),
        (
            ["integrity", "--data-dir", "/nonexistent/ingmon-data"],
            "--data-dir '/nonexistent/ingmon-data'",
        ),
        # Values, checked before a kernel starts, each line naming its parameter.
        (["backtest", "-p", "fee_rate=-0.001"], "-p fee_rate=-0.001: fee_rate must be >= 0"),
        (["backtest", "-p", "slippage_bps=-1"], "-p slippage_bps=-1.0: slippage_bps must be >= 0"),
        (["backtest", "-p", "stop_atr=0"], "-p stop_atr=0.0: stop_atr must be > 0"),
        (["backtest", "-p", "take_profit_atr=-2"], "-p take_profit_atr=-2.0: take_profit_atr"),
        (["backtest", "-p", "hold_bars=0"], "-p hold_bars=0: hold_bars must be an integer >= 1"),
        (["backtest", "-p", "timeframe=2m"], "-p timeframe=2m: timeframe must be one of 5m, 15m"),
        (["backtest", "-p", "window_days="], "-p window_days=: window_days needs at least one"),
        (["backtest", "-p", "window_days=30,0"], "-p window_days=30,0: window_days: each window"),
        (["backtest", "-p", "window_days=36501"], "must be > 0 and <= 36500 days"),
        (["backtest", "-p", "min_score=8"], "-p min_score=8: min_score must be 0-7"),
        (["backtest", "-p", "min_score=-1"], "-p min_score=-1: min_score must be 0-7"),
        (["backtest", "-p", "setups=squeeze_fire,moon"], "-p setups=squeeze_fire,moon: setups"),
        (["integrity", "-p", "window_days=0"], "-p window_days=0: window_days must be > 0"),
        (["integrity", "-p", "window_days=99999"], "window_days must be > 0 and <= 36500"),
        (["integrity", "-p", "datasets=candles,klines"], "-p datasets=candles,klines: datasets"),
        (["integrity", "-p", "as_of=2999-01-01"], "-p as_of=2999-01-01: as_of 2999-01-01T00"),
        (["integrity", "-p", "as_of=2026-10-05", "--date", "2026-10-05"], "name different days"),
        # Symbols: upper-case perpetuals with 1m candles in the lake.
        (["backtest", "-p", "symbols=DOGEUSDT"], "no 1m candles for DOGEUSDT in"),
        (["integrity", "-p", "symbols=solusdt"], "symbols are upper-case, like SOLUSDT"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    """Bad -p (type or value), --date or --data-dir, on the real report notebooks: exit 2, one
    line on stderr, no traceback; no kernel started, nothing written or recorded."""
    report, *rest = argv
    status = _cli_status(["report", report, "--data-dir", str(data_dir), *rest])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1, err
    assert named in err
    assert "Traceback" not in err
    assert "running" not in err
    assert _nothing_written(data_dir)


def _cli_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exited:  # argparse's own errors (a malformed --date)
        return int(exited.code or 0)


def test_cli_an_empty_lake_is_no_data_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no symbols given and no 1m candles in the lake, each report refuses before running:
    exit 2, `no data in <lake>`, no empty report replacing a good one, nothing recorded."""
    root = tmp_path / "empty"
    root.mkdir()
    for report in REPORTS:
        assert _cli_status(["report", report, "--data-dir", str(root)]) == 2
        err = capsys.readouterr().err
        assert (
            err == f"ingmon report: {report}: error: no data in {root / 'lake'}: no symbol "
            "has 1m candles\n"
        )
    assert list(root.iterdir()) == []


def test_cli_a_usage_error_raised_in_a_cell_exits_2_with_its_message(
    notebooks: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A UsageError raised inside the notebook (a check only the library can make) is bad input:
    exit 2, its message first on the one error line, the cell named after it."""
    status = _cli_status(
        [
            *("report", "integrity", "--notebooks", str(notebooks)),
            *("--data-dir", str(data_dir), "--date", DAY.isoformat(), "-p", "refuse=true"),
        ]
    )
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert status == 2
    assert len(errors) == 1
    assert errors[0].startswith(
        "ingmon report: integrity: error: planted refusal: only the library can tell "
        "(raised by data_integrity.py cell 4 (In ["
    )
    assert report_state(data_dir)["integrity"].last_status == "failed"


def test_report_list_shows_each_reports_parameters(
    notebooks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ingmon report list` prints every report's notebook and its typed parameters."""
    assert main(["report", "list", "--notebooks", str(notebooks)]) == 0
    out = capsys.readouterr().out
    assert f"integrity: {notebooks / 'data_integrity.py'}" in out
    assert '  symbols: list[str] = ["BTCUSDT"]  # symbols to look at' in out
    assert "  windows: list[int] = [30, 60]" in out
    assert "  fee_rate: float = 0.0005" in out
    assert '  data_dir: str = ""  (set by --data-dir)' in out
    assert f"backtest: {notebooks / 'backtest_report.py'}" in out


def test_a_missing_notebook_or_contract_is_a_report_error(tmp_path: Path, data_dir: Path) -> None:
    """No notebook, or one without data_dir/result_path parameters: a one-line ReportError."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReportError, match=r"data_integrity\.py of report 'integrity' not found"):
        run_report("integrity", settings=_settings(data_dir), notebooks_dir=empty)
    (empty / "data_integrity.py").write_text('# %% tags=["parameters"]\nx: int = 1\n')
    with pytest.raises(ReportError, match="does not declare data_dir and result_path"):
        run_report("integrity", settings=_settings(data_dir), notebooks_dir=empty)
    with pytest.raises(UsageError, match="unknown report 'weekly'"):
        run_report("weekly", settings=_settings(data_dir), notebooks_dir=empty)


# ---- the real notebooks ---------------------------------------------------------------------

CONTRACT = {
    "backtest": {
        "symbols": "list[str]",
        "window_days": "list[int]",
        "setups": "list[str]",
        "min_score": "int",
        "fee_rate": "float",
        "slippage_bps": "float",
        "stop_atr": "float",
        "take_profit_atr": "float",
        "hold_bars": "int",
        "as_of": "str",
        "timeframe": "str",
        "data_dir": "str",
        "result_path": "str",
    },
    "integrity": {
        "symbols": "list[str]",
        "datasets": "list[str]",
        "window_days": "int",
        "as_of": "str",
        "data_dir": "str",
        "result_path": "str",
    },
}


def test_the_wheel_ships_each_report_notebook() -> None:
    """pyproject's hatch force-include puts every report's notebook into ingmon/_notebooks,
    where find_notebook looks first."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    included = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for stem in REPORTS.values():
        assert included[f"notebooks/{stem}.py"] == f"ingmon/_notebooks/{stem}.py"


def _real_notebook(report: str) -> Path:
    """The report's shipped notebook; a missing one fails the test (it is part of the product)."""
    try:
        return find_notebook(report)
    except ReportError as error:
        pytest.fail(f"report {report!r} has no notebook: {error}")


@pytest.mark.parametrize("report", sorted(REPORTS))
def test_the_real_notebooks_declare_the_runners_contract(report: str) -> None:
    """Each scheduled notebook declares exactly the agreed parameters, each with its type."""
    declared = notebook_parameters(_real_notebook(report))
    assert {parameter.name: parameter.type_name for parameter in declared} == CONTRACT[report]


def _demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, days: int) -> Settings:
    """A demo lake of SOLUSDT under tmp_path/data, built without any .env; the working
    directory (the kernel's too) moves to tmp_path so the working copy's .env stays out."""
    from ingmon.demo import run_demo

    monkeypatch.chdir(tmp_path)
    settings = load_settings(env_file=None, data_dir=tmp_path / "data")
    assert run_demo(settings, days=days, seed=7, symbols=("SOLUSDT",)) == 0
    return settings


def _minute_ago() -> tuple[int, str]:
    """A whole minute at or before now, as epoch ms and as the canonical text of -p as_of."""
    from ingmon.times import iso_ms, now_ms

    as_of_ms = now_ms() // 60_000 * 60_000
    as_of = iso_ms(as_of_ms)
    assert as_of is not None
    return as_of_ms, as_of


@pytest.mark.slow
def test_integrity_report_end_to_end_matches_run_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ingmon report integrity` on a 2-day demo lake: the sidecar's verdict, status and
    problems are ingmon.check.run_check's for the same symbols, window and instant."""
    from ingmon.check import run_check
    from ingmon.times import day_of

    _real_notebook("integrity")
    settings = _demo(tmp_path, monkeypatch, days=2)
    as_of_ms, as_of = _minute_ago()
    status = main(
        [
            *("report", "integrity", "--data-dir", str(settings.data_dir)),
            *("-p", "symbols=SOLUSDT", "-p", "window_days=2", "-p", f"as_of={as_of}"),
        ]
    )
    assert status == 0
    day = day_of(as_of_ms - 1)
    sidecar = json.loads(
        report_paths(settings.data_dir / "reports", "integrity", day).sidecar.read_text()
    )
    expected = run_check(settings, symbols=["SOLUSDT"], window_days=2, end_ms=as_of_ms)
    assert sidecar["verdict"] == expected.verdict
    assert sidecar["status"] == expected.status
    assert len(sidecar["problems"]) == len(expected.problems)
    assert sidecar["rows"], "the notebook judged no series"
    assert sidecar["report_run"]["parameters"]["window_days"] == 2
    assert sidecar["report_run"]["parameters"]["as_of"] == as_of
    state = report_state(settings.data_dir)["integrity"]
    assert state.last_status == "success"


@pytest.mark.slow
def test_the_operators_env_reaches_the_integrity_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .env in the working directory that tightens the funding's freshness (warn 1 s, error
    2 s: funding is hours old at any instant) turns `ingmon check` over the last day to error;
    the integrity report, run from the same directory, says the same: the kernel reads the
    operator's settings, not the defaults."""
    from ingmon.check import run_check

    _real_notebook("integrity")
    settings = _demo(tmp_path, monkeypatch, days=2)
    as_of_ms, as_of = _minute_ago()
    capsys.readouterr()  # the demo's own lines
    # Without the .env the demo lake is fresh enough: the .env is what changes the verdict.
    assert run_check(settings, symbols=["SOLUSDT"], window_days=1, end_ms=as_of_ms).verdict in (
        "ok",
        "warn",
    )
    (tmp_path / ".env").write_text(
        "INGMON_FUNDING_FRESHNESS_WARN_SECONDS=1\nINGMON_FUNDING_FRESHNESS_ERROR_SECONDS=2\n"
    )
    window = ["--data-dir", "data"]
    check_status = main(
        ["check", "--symbol", "SOLUSDT", "--window-days", "1", "--end", as_of, *window]
    )
    checked = json.loads(capsys.readouterr().out)
    assert check_status == 1
    assert checked["verdict"] == "error"
    status = main(
        [
            *("report", "integrity", *window, "-p", "symbols=SOLUSDT"),
            *("-p", "window_days=1", "-p", f"as_of={as_of}"),
        ]
    )
    assert status == 0
    sidecar = json.loads(Path(capsys.readouterr().out.strip()).read_text())
    assert sidecar["verdict"] == checked["verdict"] == "error"
    assert sidecar["status"] == checked["status"]
    assert len(sidecar["problems"]) == len(checked["problems"])


@pytest.mark.slow
def test_backtest_report_end_to_end_matches_backtest_lake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_report("backtest") on a 3-day demo lake: the sidecar's config and data hashes, and
    per window its metrics, flags and breakdowns, are backtest_lake's (save=False) for the same
    parameters."""
    from ingmon.backtest import BacktestConfig
    from ingmon.backtest.export import run_document
    from ingmon.backtest.lake import backtest_lake
    from ingmon.lake import Lake

    _real_notebook("backtest")
    settings = _demo(tmp_path, monkeypatch, days=3)
    as_of_ms, as_of = _minute_ago()
    run = run_report(
        "backtest",
        settings=settings,
        overrides=[
            *("symbols=SOLUSDT", "window_days=1,2", "setups=", "min_score=0", "timeframe=15m"),
            *("fee_rate=0.0004", "slippage_bps=2", "stop_atr=1.25", "take_profit_atr=2"),
            *("hold_bars=120", f"as_of={as_of}"),
        ],
    )
    sidecar = json.loads(Path(run.outputs["json"]).read_text())
    expected = run_document(
        backtest_lake(
            Lake(settings.lake_dir),
            "SOLUSDT",
            config=BacktestConfig(
                stop_atr=1.25, take_profit_atr=2.0, hold_bars=120, fee_rate=0.0004, slippage_bps=2.0
            ),
            timeframe="15m",
            window_days=[1, 2],
            end_ms=as_of_ms,
            exports_root=tmp_path / "expected",
            formats=(),
            save=False,
            setups=[],
            min_score=None,
        ).run
    )
    # Through JSON, as the sidecar went: tuples become lists, the floats stay bit for bit.
    expected = json.loads(json.dumps(expected, default=str))
    got = sidecar["symbols"]["SOLUSDT"]
    assert sidecar["as_of"] == as_of
    assert set(sidecar["symbols"]) == {"SOLUSDT"}
    assert got["run_id"].startswith("bt-")  # a fresh id per run, like any backtest_lake's
    assert got["config_hash"] == expected["config_hash"]
    assert got["data_hash"] == expected["data"]["hash"]
    assert got["data"] == expected["data"]
    reports = {"all": expected, **{item["label"]: item for item in expected["windows"]}}
    assert set(got["windows"]) == set(reports)
    for label, window in got["windows"].items():
        for key, value in window.items():
            wanted = reports[label]["flags"] if key == "flags" else reports[label]["metrics"][key]
            assert value == wanted, (label, key)
    assert got["windows"]["all"]["trades"] > 0, "the demo lake gave the backtest no trades"
    for column, slices in got["breakdowns"].items():
        assert slices == expected["breakdowns"].get(column, {}), column
    assert run.parameters["hold_bars"] == 120
    assert report_state(settings.data_dir)["backtest"].last_status == "success"

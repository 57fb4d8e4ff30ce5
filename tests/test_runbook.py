"""docs/operations.md works as written: its cron line runs under ``/bin/sh`` and its systemd
unit's ``ExecStart`` needs no shell, each appending one JSON summary per run and logging apart."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from binance._reference import UNLIMITED, exchange

from ingmon.exchange import ExchangeServer, Market

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
NOW_MS = 1_790_000_000_000 + 37_123
# The documented machine's paths; a test puts each under its tmp_path.
APP_DIR = "/srv/ingmon"
LOG_DIR = "/var/log/ingmon"
TAG = "ingmon-backfill"
# The PATH cron gives a job.
CRON_PATH = "/usr/bin:/bin"
# Stands in for logger(1), which would write to this machine's syslog: the tag, then each line.
LOGGER_SHIM = """#!/bin/sh
tag=logger
while [ $# -gt 0 ]; do
  case "$1" in -t) tag="$2"; shift 2 ;; *) shift ;; esac
done
sed "s|^|$tag: |" >> "$LOGGER_SHIM_OUT"
"""

pytestmark = pytest.mark.slow


def _fenced(language: str) -> list[str]:
    """The bodies of the doc's fenced blocks of one language."""
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), flags=re.M | re.S)


@pytest.fixture(scope="module")
def server() -> Iterator[ExchangeServer]:
    """A local exchange with the documented symbols, three days of history, frozen at NOW_MS."""
    market = Market.demo(symbols=("BTCUSDT", "ETHUSDT"), days=3, seed=7, now_ms=NOW_MS)
    with exchange(market, NOW_MS) as running:
        yield running


def _machine(tmp_path: Path) -> tuple[Path, Path]:
    """The documented layout under tmp_path: the app dir with its venv, and the log dir."""
    app = tmp_path / APP_DIR.lstrip("/")
    app.mkdir(parents=True)
    (app / ".venv").symlink_to(Path(sys.prefix))
    if not (app / ".venv/bin/ingmon").exists():
        pytest.skip("the ingmon console script is not installed in this venv")
    logs = tmp_path / LOG_DIR.lstrip("/")
    logs.mkdir(parents=True)
    return app, logs


def _localize(text: str, tmp_path: Path) -> str:
    return text.replace(LOG_DIR, str(tmp_path / LOG_DIR.lstrip("/"))).replace(
        APP_DIR, str(tmp_path / APP_DIR.lstrip("/"))
    )


def _exchange_env(server: ExchangeServer) -> dict[str, str]:
    """What the operator would set to point the job at this exchange instead of Binance."""
    return {
        "INGMON_BINANCE_BASE_URL": server.base_url,
        "INGMON_BINANCE_ARCHIVE_URL": server.base_url,
        "INGMON_BINANCE_WEIGHT_LIMIT_PER_MINUTE": str(UNLIMITED),
    }


def _summaries(path: Path) -> list[dict[str, object]]:
    """The JSON documents appended to the summary file, in order, whatever their layout."""
    text, documents, decoder = path.read_text(), [], json.JSONDecoder()
    position = 0
    while text[position:].strip():
        position += len(text[position:]) - len(text[position:].lstrip())
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    return documents


def _expect_one_line_per_summary(path: Path) -> None:
    """Each summary on one line, so the file is JSON lines (one document per run)."""
    lines, documents = path.read_text().splitlines(), _summaries(path)
    assert len(lines) == len(documents)
    assert [json.loads(line) for line in lines] == documents


def test_cron_line_runs_under_posix_sh(server: ExchangeServer, tmp_path: Path) -> None:
    """The documented crontab line, run by /bin/sh -c from $HOME with cron's PATH, appends one
    summary line per run and hands every stderr line to logger with its tag."""
    (block,) = _fenced("cron")
    (line,) = [row for row in block.splitlines() if row.strip() and not row.startswith("#")]
    fields = line.split(None, 5)
    assert fields[:5] == ["*/5", "*", "*", "*", "*"]
    command = _localize(fields[5], tmp_path)
    app, logs = _machine(tmp_path)
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    (shim_dir / "logger").write_text(LOGGER_SHIM)
    (shim_dir / "logger").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    logged = tmp_path / "logger.out"
    env = {
        "HOME": str(home),
        "LOGNAME": "ingmon",
        "SHELL": "/bin/sh",
        "PATH": f"{shim_dir}:{CRON_PATH}",
        "LOGGER_SHIM_OUT": str(logged),
        **_exchange_env(server),
    }

    for run in (1, 2):  # the first run fills the window, the second resumes the tail
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
        assert done.stderr == ""
        summaries = _summaries(logs / "backfill.jsonl")
        assert len(summaries) == run
        assert summaries[-1]["schema"] == "ingmon.backfill.summary/v1"
        assert summaries[-1]["status"] == "complete"

    log_lines = logged.read_text().splitlines()
    assert log_lines
    assert all(row.startswith(f"{TAG}: ") for row in log_lines)
    assert all("event" in json.loads(row.removeprefix(f"{TAG}: ")) for row in log_lines)
    assert (app / "data/lake/candles").is_dir()
    _expect_one_line_per_summary(logs / "backfill.jsonl")


def test_systemd_unit_runs_without_a_shell(server: ExchangeServer, tmp_path: Path) -> None:
    """The documented service's ExecStart has no shell syntax and, run as systemd would (its
    directory, its Environment=, stdout appended to the StandardOutput= file), exits 0 with
    one summary line; the timer fires every five minutes."""
    (block,) = _fenced("ini")
    units: dict[str, configparser.ConfigParser] = {}
    for name, body in re.findall(
        r"^# /etc/systemd/system/(\S+)\n(.*?)(?=^# /|\Z)", block, re.M | re.S
    ):
        unit = configparser.ConfigParser(interpolation=None, strict=True)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read_string(body)
        units[name] = unit
    service = units["ingmon-backfill.service"]["Service"]
    timer = units["ingmon-backfill.timer"]
    assert timer["Timer"]["OnCalendar"] == "*:0/5"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert service["Type"] == "oneshot"
    assert service["StandardError"] == "journal"
    assert service["SyslogIdentifier"] == TAG
    exec_start = service["ExecStart"]
    assert not set(exec_start) & set("|&;<>$`()*"), exec_start

    app, logs = _machine(tmp_path)
    argv = shlex.split(_localize(exec_start, tmp_path))
    assert Path(argv[0]).is_absolute()
    env_name, _, env_value = service["Environment"].partition("=")
    output = service["StandardOutput"]
    assert output.startswith("append:")
    with Path(_localize(output.removeprefix("append:"), tmp_path)).open("a") as stdout:
        done = subprocess.run(
            argv,
            cwd=_localize(service["WorkingDirectory"], tmp_path),
            env={
                "PATH": CRON_PATH,
                env_name: _localize(env_value, tmp_path),
                **_exchange_env(server),
            },
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    (summary,) = _summaries(logs / "backfill.jsonl")
    assert summary["status"] == "complete"
    assert all("event" in json.loads(row) for row in done.stderr.splitlines())
    assert (app / "data/lake/candles").is_dir()
    _expect_one_line_per_summary(logs / "backfill.jsonl")

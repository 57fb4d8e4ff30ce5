"""`ingmon exchange serve`: starts a real server process; bad flags exit 2 with one stderr line."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ingmon.cli import main
from ingmon.exchange import ExchangeServer, FrozenClock, Limits

from ._support import NOW_MS, small_market

SERVE = [sys.executable, "-m", "ingmon.cli", "exchange", "serve"]


def read_base_url(process: subprocess.Popen[str], *, timeout_seconds: float = 30) -> str:
    """The URL from the server's "serving … on http://…" line."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        found = re.search(r"on (http://\S+)", line)
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
    raise AssertionError("the server did not report its URL")


@pytest.mark.slow
def test_serve_starts_answers_and_stops(tmp_path: Path) -> None:
    """The subprocess serves ping/time/klines with the flags given, then exits 0 on SIGTERM."""
    faults = tmp_path / "faults.json"
    faults.write_text('{"rules": ["time=503,ok"]}')
    process = subprocess.Popen(
        [
            *SERVE,
            "--port",
            "0",
            "--symbols",
            "BTCUSDT,SOLUSDT",
            "--days",
            "3",
            "--seed",
            "7",
            "--frozen-at",
            "2024-03-05T12:00:00Z",
            "--limit-scale",
            "0.1",
            "--fault",
            "ping=ok,502",
            "--fault-file",
            str(faults),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = read_base_url(process)
        with httpx.Client(base_url=base_url, timeout=10) as http:
            assert http.get("/fapi/v1/ping").status_code == 200
            assert http.get("/fapi/v1/ping").status_code == 502
            assert http.get("/fapi/v1/time").status_code == 503
            time_response = http.get("/fapi/v1/time")
            assert time_response.json() == {"serverTime": 1_709_640_000_000}
            assert "X-MBX-USED-WEIGHT-6S" in time_response.headers
            info = http.get("/fapi/v1/exchangeInfo").json()
            assert [entry["symbol"] for entry in info["symbols"]] == ["BTCUSDT", "SOLUSDT"]
            assert (
                info["symbols"][0]["onboardDate"]
                == 1_709_640_000_000 // 86_400_000 * 86_400_000 - 3 * 86_400_000
            )
            rows = http.get(
                "/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1h", "limit": 3}
            ).json()
            assert rows[-1][0] == 1_709_640_000_000
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


@pytest.mark.parametrize(
    "flags",
    [
        ["--days", "0"],
        ["--days", "many"],
        ["--port", "70000"],
        ["--symbols", "BTC"],
        ["--symbols", "BTC-USDT"],
        ["--symbols", ","],
        ["--fault", "klines=nope"],
        ["--fault", "klines"],
        ["--fault", "nowhere=503@0.1"],
        ["--fault", "klines=503@2"],
        ["--limit-scale", "-1"],
        ["--frozen-at", "yesterday"],
        ["--limit-policy", "ignore"],
        ["--funding-jitter-ms", "-3"],
        ["--archive-compress-level", "10"],
    ],
)
def test_bad_flags_exit_2_with_one_line(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each bad flag is reported in one stderr line and exit status 2, without a traceback."""
    with pytest.raises(SystemExit) as exited:
        main(["exchange", "serve", *flags])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("ingmon exchange serve: error: ")


def test_runtime_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing fault file and a busy port are one-line errors with status 2."""
    assert (
        main(["exchange", "serve", "--port", "0", "--fault-file", str(tmp_path / "none.json")]) == 2
    )
    assert "cannot read fault file" in capsys.readouterr().err
    with ExchangeServer(
        small_market(), clock=FrozenClock(NOW_MS), limits=Limits(enabled=False)
    ) as busy:
        status = main(
            ["exchange", "serve", "--host", "127.0.0.1", "--port", str(busy.port), "--days", "1"]
        )
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert "cannot listen on 127.0.0.1" in err


def test_bad_flag_in_a_subprocess_has_no_traceback() -> None:
    """End to end through the interpreter: exit 2 and a single stderr line."""
    done = subprocess.run(
        [*SERVE, "--port", "99999"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_help_documents_the_fault_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    """--help explains the fault syntax and the main flags."""
    with pytest.raises(SystemExit) as exited:
        main(["exchange", "serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for needle in (
        "ROUTE[:GLOB]=SPEC",
        "KIND@PROBABILITY",
        "--frozen-at",
        "--no-limits",
        "--limit-scale",
        "--fault-file",
    ):
        assert needle in out

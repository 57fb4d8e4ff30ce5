"""``ingmon demo --serve``: the set-up, then a live worker and ``ingmon serve`` beside the local
exchange — the printed URL answers, the worker ticks and the API sees it, and Ctrl-C (SIGINT to
the demo's process group, as a terminal sends it) stops everything, exit 0, nothing left over.
A taken port is refused in one line before anything starts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

SYMBOL = "BTCUSDT"
SETUP_SECONDS = 300  # the demo's set-up (2 days of one symbol) and the server's start
TICK_SECONDS = 120  # the worker's first tick after the server answers
STOP_SECONDS = 60  # from SIGINT to the demo's exit


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}


def _demo_argv(root: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ingmon",
        "demo",
        "--serve",
        "--days",
        "2",
        "--symbols",
        SYMBOL,
        "--data-dir",
        str(root),
        "--port",
        str(port),
    ]


def _process_groups() -> dict[int, int]:
    """Every live process's pid → its process group (from /proc; zombies count as gone)."""
    groups = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp …: comm may hold spaces, so split after its ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            groups[int(entry.name)] = int(fields[2])
    return groups


def _survivors(groups: set[int]) -> dict[int, int]:
    return {pid: group for pid, group in _process_groups().items() if group in groups}


def _poll(
    what: str, check: Any, *, seconds: float, demo: subprocess.Popen[bytes], log: Path
) -> Any:
    """``check()`` until it returns something truthy (its value), failing when the demo exits
    or the deadline passes (no fixed sleep: the demo's own progress decides)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise AssertionError(
                f"the demo exited ({demo.returncode}) waiting for {what}: {log.read_text()[-3000:]}"
            )
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"no {what} within {seconds} s: {log.read_text()[-3000:]}")


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    document: dict[str, Any] = response.json()
    return document


@contextlib.contextmanager
def _demo(root: Path, port: int, logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The demo in its own session (its pid is its process group), output in files; whatever
    happens, nothing of it outlives the test."""
    with (logs / "stdout").open("wb") as out, (logs / "stderr").open("wb") as err:
        demo = subprocess.Popen(
            _demo_argv(root, port),
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield demo
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        printed = _printed(logs / "stdout")
        for pid in (printed or {}).get("pids", {}).values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _printed(stdout: Path) -> dict[str, Any] | None:
    """The demo's JSON line, once it has printed the one with the dashboard's URL."""
    for line in stdout.read_text().splitlines():
        with contextlib.suppress(ValueError):
            document = json.loads(line)
            if isinstance(document, dict) and "dashboard" in document:
                return document
    return None


@pytest.mark.slow
def test_serve_runs_worker_and_server_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    root, logs = tmp_path / "demo", tmp_path / "logs"
    logs.mkdir()
    port = _free_port()
    stderr = logs / "stderr"
    with _demo(root, port, logs) as demo:
        printed = _poll(
            "printed URL",
            lambda: _printed(logs / "stdout"),
            seconds=SETUP_SECONDS,
            demo=demo,
            log=stderr,
        )
        url = printed["dashboard"]
        assert url == f"http://localhost:{port}/dashboard"
        assert url in stderr.read_text()
        base = url.removesuffix("/dashboard")
        pids = printed["pids"]
        assert set(pids) == {"worker", "serve"}
        for name in ("worker", "serve"):
            assert Path(printed["logs"][name]) == root.resolve() / "logs" / f"{name}.log"

        # The printed URL answers: liveness, the dashboard page, the API.
        assert httpx.get(f"{base}/liveness", timeout=10).status_code == 200
        assert httpx.get(url, timeout=30).status_code == 200
        health = _poll(
            "/api/health",
            lambda: _get_json(f"{base}/api/health"),
            seconds=30,
            demo=demo,
            log=stderr,
        )
        assert set(health["components"]) >= {"ingestion", "worker"}

        # The worker (the printed pid) completes a tick against the live exchange …
        worker_state = root / "state" / "worker.json"

        def ticked() -> dict[str, Any] | None:
            try:
                state: dict[str, Any] = json.loads(worker_state.read_text())
            except (OSError, ValueError):
                return None
            return state if state.get("tick", 0) >= 1 and state.get("finished_ms") else None

        tick = _poll("a worker tick", ticked, seconds=TICK_SECONDS, demo=demo, log=stderr)
        assert tick["pid"] == pids["worker"]
        assert tick["symbols"] == [SYMBOL]
        assert tick["interval_seconds"] == 20
        assert tick["steps"]["backfill"]["ok"], tick

        # … and the API sees it (its caches expire on the file's change).
        def worker_known() -> dict[str, Any] | None:
            document = _get_json(f"{base}/api/health")
            component = None if document is None else document["components"]["worker"]
            return component if component and component["status"] != "unknown" else None

        component = _poll(
            "the worker in /api/health", worker_known, seconds=30, demo=demo, log=stderr
        )
        assert component["status"] in ("ok", "warn"), component

        groups = {demo.pid, *pids.values()}
        running = _survivors(groups)
        assert set(pids.values()) <= set(running), running

        # Ctrl-C: a terminal sends SIGINT to the foreground process group (the demo's).
        os.killpg(demo.pid, signal.SIGINT)
        try:
            status = demo.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not stop in {STOP_SECONDS} s: {stderr.read_text()[-3000:]}")
        said = stderr.read_text()
        assert status == 0, said[-3000:]
        assert f"stopped ingmon worker (pid {pids['worker']}, exit status 0)" in said
        assert f"stopped ingmon serve (pid {pids['serve']}" in said
        assert "stopped the local exchange" in said
        assert _survivors(groups) == {}
        # The worker recorded its own stop, and the port is free again.
        assert "stopped_ms" in json.loads(worker_state.read_text())
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """Exit 2, one line naming the port and --port, nothing written to the data root."""
    root = tmp_path / "demo"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            _demo_argv(root, port),
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("ingmon demo: error:")
    assert str(port) in line
    assert "--port" in line
    assert done.stdout == ""
    assert not root.exists()


def test_port_needs_serve(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ingmon", "demo", "--port", "8080", "--data-dir", str(tmp_path)],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "ingmon demo: error: --port is the dashboard's port: it needs --serve"
    )

"""Child processes for the end-to-end benchmarks: ``ingmon`` commands in their own sessions,
ready when their URL answers, stopped with their whole process group."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["child_process", "environment", "exchange_url", "free_port", "ingmon", "wait_for"]

READY_SECONDS = 180


def ingmon(*args: str) -> list[str]:
    """The argv of an ``ingmon`` command run by this interpreter."""
    return [sys.executable, "-m", "ingmon.cli", *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(data_dir: Path) -> dict[str, str]:
    """This environment without the caller's INGMON_* settings, on ``data_dir``, JSON logs and
    the demo's trade-freshness thresholds (the simulated market trades ~20x less often than
    Binance: docs/simulator.md)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}
    env["INGMON_DATA_DIR"] = str(data_dir)
    env["INGMON_LOG_FORMAT"] = "json"
    env["INGMON_AGG_TRADES_FRESHNESS_WARN_SECONDS"] = "120"
    env["INGMON_AGG_TRADES_FRESHNESS_ERROR_SECONDS"] = "300"
    return env


@contextmanager
def child_process(
    argv: Sequence[str], *, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process in its own session, output to ``log``; its group is stopped on exit."""
    with log.open("wb") as sink:
        child = subprocess.Popen(
            list(argv), env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield child
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def wait_for(url: str, *, child: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``url`` until it answers 200 (the child exiting first is an error)."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{url}: the process exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {READY_SECONDS} s")


def exchange_url(log: Path, child: subprocess.Popen[bytes]) -> str:
    """The base URL ``ingmon exchange serve`` prints once it listens."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        found = re.search(r"on (http://\S+)", log.read_text())
        if found:
            return found.group(1)
        if child.poll() is not None:
            raise RuntimeError(f"the exchange exited:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError("the exchange did not start")

"""Browser tests of the workbench: a real ``ingmon serve`` on demo data, driven in headless
Chromium from Debian's ``chromium`` package through playwright (no browser download).

Fixtures:

- ``demo_root`` (session): a data root filled by ``ingmon demo`` (BTCUSDT and ETHUSDT, a few
  days: lake, signals, scores, saved backtest runs, ``state/health.json``).
- ``empty_root``: a data root with nothing in it (empty states).
- ``start_server(data_dir, *flags)`` → base URL of a running ``ingmon serve`` (any free port),
  ready (``/liveness`` answered); every server is stopped (process group) at teardown.
- ``demo_server`` (session): ``ingmon serve`` on ``demo_root``.
- ``page``: a fresh browser page; console errors and page errors are collected in
  ``page.console_errors`` and fail the test at teardown; a full-page screenshot of the last
  state is saved to ``UI_ARTIFACTS`` (``tests/ui/artifacts/<test>.png``, git-ignored) whatever
  the outcome.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
UI_ARTIFACTS = Path(__file__).parent / "artifacts"
DEMO_SYMBOLS = ("BTCUSDT", "ETHUSDT")
DEMO_DAYS = 4
READY_SECONDS = 90


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}
    env["INGMON_DATA_DIR"] = str(data_dir)
    return env


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo data root (built once per session by the real ``ingmon demo``)."""
    root = tmp_path_factory.mktemp("ui") / "demo"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingmon.cli",
            "demo",
            "--days",
            str(DEMO_DAYS),
            "--symbols",
            ",".join(DEMO_SYMBOLS),
            "--data-dir",
            str(root),
        ],
        env=_environment(root),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert (root / "state" / "health.json").exists(), done.stderr[-3000:]
    return root


@pytest.fixture
def empty_root(tmp_path: Path) -> Path:
    """A data root with an empty lake and no state."""
    root = tmp_path / "empty"
    (root / "lake").mkdir(parents=True)
    return root


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def _serve(
    data_dir: Path, flags: tuple[str, ...], log: Path
) -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    argv = [sys.executable, "-m", "ingmon.cli", "serve", "--port", str(port)]
    argv += ["--data-dir", str(data_dir), *flags]
    with log.open("wb") as sink:
        child = subprocess.Popen(
            argv,
            env=_environment(data_dir),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise AssertionError(f"ingmon serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/liveness", timeout=2).status_code == 200:
                return base, child
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    _stop(child)
    raise AssertionError(f"ingmon serve not ready in {READY_SECONDS} s: {log.read_text()[-3000:]}")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``start_server(data_dir, *flags)`` → the base URL of a ready ``ingmon serve``."""
    started: list[subprocess.Popen[bytes]] = []

    def start(data_dir: Path, *flags: str) -> str:
        base, child = _serve(data_dir, flags, tmp_path / f"serve-{len(started)}.log")
        started.append(child)
        return base

    yield start
    for child in started:
        _stop(child)


@pytest.fixture(scope="session")
def demo_server(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ingmon serve`` on the demo root for the whole session."""
    base, child = _serve(demo_root, (), tmp_path_factory.mktemp("serve") / "serve.log")
    yield base
    _stop(child)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's package."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium missing: apt-get install chromium (make test does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (1400×900); fails the test on console or page errors; screenshot kept."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.console_errors = errors
    yield page
    UI_ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.screenshot(path=str(UI_ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()
    assert not errors, f"console errors: {errors}"

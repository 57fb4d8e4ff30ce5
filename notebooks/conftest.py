"""``pytest --nbval-lax notebooks/``: the notebooks run on their default parameters against a
small demo lake built here once, in a temporary data root named by ``INGMON_DATA_DIR`` (the
kernels inherit the environment, and ``data_dir = ""`` means the settings' default)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ingmon.config import load_settings
from ingmon.demo import run_demo

# Small and fast (a few seconds): three days of two simulated symbols, scored and backtested.
DEMO_DAYS = 3
DEMO_SEED = 7
DEMO_SYMBOLS = ("SOLUSDT", "ETHUSDT")


def pytest_configure(config: pytest.Config) -> None:
    if not (config.getoption("nbval", False) or config.getoption("nbval_lax", False)):
        return
    root = Path(tempfile.mkdtemp(prefix="ingmon-nbval-"))
    config.add_cleanup(lambda: shutil.rmtree(root, ignore_errors=True))
    for name in [name for name in os.environ if name.startswith("INGMON_")]:
        del os.environ[name]  # the developer's own settings must not reach the kernels
    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        status = run_demo(
            load_settings(env_file=None, data_dir=root),
            days=DEMO_DAYS,
            seed=DEMO_SEED,
            symbols=DEMO_SYMBOLS,
        )
    if status != 0:
        raise pytest.UsageError(f"the demo lake for the notebooks failed:\n{log.getvalue()}")
    os.environ["INGMON_DATA_DIR"] = str(root)

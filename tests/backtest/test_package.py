"""``ingmon.backtest`` exports its names lazily: every exported name resolves, and the CLI's
command module loads without the engine's pandas (``ingmon --help`` stays quick)."""

from __future__ import annotations

import subprocess
import sys

import ingmon.backtest


def test_every_exported_name_resolves_from_its_home() -> None:
    """``__all__`` and the lazy table name the same things, and each one imports."""
    assert set(ingmon.backtest.__all__) == set(ingmon.backtest._HOME)
    for name in ingmon.backtest.__all__:
        assert getattr(ingmon.backtest, name) is not None, name


def test_the_command_module_does_not_load_pandas() -> None:
    """Registering ``ingmon backtest`` (what every ``ingmon`` call does) imports no pandas."""
    code = (
        "import sys, ingmon.backtest.commands; "
        "print('pandas' in sys.modules, 'ingmon.backtest.engine' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]

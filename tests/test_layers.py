"""Layers point one way: an AST walk over every module of ``ingmon`` pins who may import whom.

Every import counts, including those inside functions and ``importlib.import_module("…")`` with
a literal name, because a function-level import is still a dependency (and an import cycle).
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "ingmon"
# The only modules allowed to import the CLI: the CLI itself and a `python -m ingmon` entry.
CLI_IMPORTERS = frozenset({"ingmon.cli", "ingmon.__main__"})


class Import(NamedTuple):
    """One imported name as a dotted path, where it appears."""

    module: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.module} imports {self.target} (line {self.line})"


def module_name(path: Path) -> str:
    """``ingmon/binance/backfill.py`` → ``ingmon.binance.backfill``; a package → its name."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_targets(tree: ast.AST, *, module: str, is_package: bool) -> list[tuple[str, int]]:
    """Every dotted name ``tree`` imports; ``from a import b`` yields ``a`` and ``a.b``."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.append((base, node.lineno))
            found.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and _called_name(node.func) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, node.lineno))
    return found


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


@functools.cache
def all_imports() -> tuple[Import, ...]:
    """Every import in every module under ``ingmon/``."""
    imports: list[Import] = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = imported_targets(tree, module=module, is_package=path.name == "__init__.py")
        imports.extend(Import(module, target, line) for target, line in targets)
    return tuple(imports)


def within(name: str, package: str) -> bool:
    """``name`` is ``package`` or one of its submodules (or a name in one)."""
    return name == package or name.startswith(package + ".")


def offending(importer: str, imported: str, *, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Imports from modules inside ``importer`` of anything inside ``imported``, except from the
    ``allowed`` modules; one line per import statement (``from a import b`` reports ``a``)."""
    seen: dict[tuple[str, int], Import] = {}
    for item in all_imports():
        if (
            within(item.module, importer)
            and item.module not in allowed
            and within(item.target, imported)
        ):
            known = seen.get((item.module, item.line))
            if known is None or len(item.target) < len(known.target):
                seen[item.module, item.line] = item
    return [str(item) for item in seen.values()]


def test_the_walk_sees_function_level_and_relative_imports() -> None:
    """The scanner finds imports inside functions, relative imports and import_module calls."""
    source = (
        "from . import sibling\n"
        "from ..cli import main\n"
        "def run():\n"
        "    import ingmon.cli\n"
        "    importlib.import_module('workbench.app')\n"
    )
    targets = {
        target
        for target, _ in imported_targets(
            ast.parse(source), module="ingmon.binance.backfill", is_package=False
        )
    }
    assert {"ingmon.binance.sibling", "ingmon.cli", "ingmon.cli.main", "workbench.app"} <= targets
    assert module_name(PACKAGE_DIR / "exchange" / "__init__.py") == "ingmon.exchange"
    assert any(item.module == "ingmon.cli" for item in all_imports())


@pytest.mark.parametrize(
    ("importer", "imported"),
    [("ingmon.exchange", "ingmon.binance"), ("ingmon.binance", "ingmon.exchange")],
)
def test_the_exchange_simulator_and_the_binance_client_never_import_each_other(
    importer: str, imported: str
) -> None:
    """The simulator and the client meet only over HTTP: neither package imports the other."""
    found = offending(importer, imported)
    assert not found, f"{importer} must not import {imported}:\n" + "\n".join(found)


def test_only_the_cli_imports_the_cli() -> None:
    """No module below the CLI imports ingmon.cli, not even inside a function."""
    found = offending("ingmon", "ingmon.cli", allowed=CLI_IMPORTERS)
    assert not found, "only the CLI may import ingmon.cli:\n" + "\n".join(found)


def test_ingmon_never_imports_the_workbench() -> None:
    """The workbench builds on ingmon, never the other way round."""
    found = offending("ingmon", "workbench")
    assert not found, "ingmon must not import workbench:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("ingmon.signals", "ingmon.exchange"),
        ("ingmon.signals", "ingmon.binance"),
        ("ingmon.signals", "ingmon.backtest"),
        ("ingmon.backtest", "ingmon.exchange"),
        ("ingmon.backtest", "ingmon.binance"),
    ],
)
def test_the_analytics_read_the_lake_never_the_exchange(importer: str, imported: str) -> None:
    """Signals and backtests work on what the lake holds: they never reach for the exchange
    client or the simulator, and the signal engine does not depend on the backtest."""
    found = offending(importer, imported)
    assert not found, f"{importer} must not import {imported}:\n" + "\n".join(found)


def test_only_the_api_handlers_import_tornado() -> None:
    """Tornado stays at the web edge: of ingmon, only ingmon.api.handlers imports it, so the API's
    documents, queries, parameters and OpenAPI document are plain functions and data."""
    found = offending("ingmon", "tornado", allowed=frozenset({"ingmon.api.handlers"}))
    assert not found, "only ingmon.api.handlers may import tornado:\n" + "\n".join(found)


def test_the_api_documents_load_without_tornado() -> None:
    """The dashboard's `from ingmon.api import health_document` loads no Tornado (the package
    imports its names on first use); ROUTES, which Panel's --plugins reads, loads the handlers."""
    script = (
        "import sys\n"
        "from ingmon.api import format_duration, health_document, metrics_document\n"
        "assert 'tornado' not in sys.modules, 'the documents loaded tornado'\n"
        "from ingmon.api import ROUTES\n"
        "assert 'tornado' in sys.modules and ROUTES\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

"""Report notebooks: where they are, what parameters they declare, and typed ``-p`` overrides.

A report is a jupytext ``py:percent`` notebook (``notebooks/<stem>.py``) whose first code cell is
tagged ``parameters`` and declares every parameter with a type annotation
(``window_days: list[int] = [30, 60, 90]``), always including ``data_dir: str = ""`` and
``result_path: str = ""`` — papermill reads the annotations (``papermill --help-notebook``).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingmon.errors import IngmonError, UsageError

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = [
    "KERNEL_NAME",
    "REPORTS",
    "RUNNER_PARAMETERS",
    "NotebookParameter",
    "ReportError",
    "find_notebook",
    "notebook_parameters",
    "parameters_of",
    "parse_overrides",
    "read_notebook",
]

# Report name → notebook stem (``notebooks/<stem>.py``); only these are scheduled.
REPORTS: Mapping[str, str] = {"backtest": "backtest_report", "integrity": "data_integrity"}
KERNEL_NAME = "python3"
# Parameters the runner fills in itself, and who sets them; -p may not.
RUNNER_PARAMETERS: Mapping[str, str] = {
    "data_dir": "--data-dir",
    "result_path": "the runner",
}


class ReportError(IngmonError):
    """A report cannot be run: its notebook is missing or breaks the runner's contract."""


@dataclass(frozen=True)
class NotebookParameter:
    """One declared parameter of a notebook, as papermill infers it from the parameters cell."""

    name: str
    type_name: str
    default: str
    help: str = ""

    def default_value(self) -> Any:
        """The default as a Python value when it is a literal, else its source text."""
        try:
            return ast.literal_eval(self.default)
        except (ValueError, SyntaxError):
            return self.default

    def parse(self, text: str) -> Any:
        """``text`` as this parameter's type; UsageError naming the parameter and the type.

        Lists are comma-separated (``BTCUSDT,ETHUSDT``; empty text = empty list).
        """
        inner = _list_item_type(self.type_name)
        try:
            if inner is not None:
                return [_scalar(inner, part.strip()) for part in text.split(",") if part.strip()]
            return _scalar(self.type_name, text)
        except ValueError:
            raise UsageError(
                f"-p {self.name}={text}: {self.name} expects {self.type_name} "
                f"({_TYPE_HINTS.get(inner or self.type_name, 'a literal')}"
                f"{', comma-separated' if inner else ''})",
                field=self.name,
            ) from None

    def describe(self) -> str:
        """``symbols: list[str] = ["BTCUSDT"]  # help`` as shown by ``ingmon report list``."""
        line = f"{self.name}: {self.type_name} = {self.default}"
        return f"{line}  # {self.help}" if self.help else line


_TYPE_HINTS = {
    "str": "text",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
}


def _list_item_type(type_name: str) -> str | None:
    compact = type_name.replace(" ", "")
    for prefix in ("list[", "List["):
        if compact.startswith(prefix) and compact.endswith("]"):
            return compact[len(prefix) : -1]
    return None


def _scalar(type_name: str, text: str) -> Any:
    if type_name == "str":
        return text
    if type_name == "int":
        return int(text)
    if type_name == "float":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    if type_name == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    raise ValueError(text)


def _settable(parameter: NotebookParameter) -> bool:
    return (_list_item_type(parameter.type_name) or parameter.type_name) in _TYPE_HINTS


# ---- finding and reading notebooks ---------------------------------------------------------


def _notebook_dirs() -> tuple[Path, ...]:
    """Where notebooks are looked up: the copy shipped in the wheel (hatch ``force-include``
    of ``notebooks/`` as ``ingmon/_notebooks``), then the repository's ``notebooks/``."""
    package = Path(__file__).resolve().parents[1]
    return (package / "_notebooks", package.parent / "notebooks")


def find_notebook(report: str, *, notebooks_dir: Path | None = None) -> Path:
    """The source of ``report``'s notebook: ``<stem>.py`` (jupytext), else ``<stem>.ipynb``.

    ``notebooks_dir`` replaces the default search (the wheel's ``ingmon/_notebooks``, then the
    repository's ``notebooks/``). UsageError for an unknown report, ReportError when missing.
    """
    if report not in REPORTS:
        raise UsageError(
            f"unknown report {report!r}: expected one of {', '.join(REPORTS)}", field="report"
        )
    stem = REPORTS[report]
    directories = (notebooks_dir,) if notebooks_dir is not None else _notebook_dirs()
    for directory in directories:
        for suffix in (".py", ".ipynb"):
            candidate = directory / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    searched = ", ".join(str(directory) for directory in directories)
    raise ReportError(f"notebook {stem}.py of report {report!r} not found in {searched}")


def read_notebook(path: Path) -> NotebookNode:
    import jupytext  # noqa: PLC0415 - jupytext and nbformat load in ~0.3 s; keep --help fast

    try:
        notebook: NotebookNode = jupytext.read(path)
    except (OSError, ValueError) as error:
        raise ReportError(f"cannot read notebook {path}: {error}") from None
    if not notebook.metadata.get("kernelspec"):
        # papermill refuses a notebook without one; the contract is kernel python3 anyway.
        notebook.metadata["kernelspec"] = {
            "name": KERNEL_NAME,
            "display_name": "Python 3",
            "language": "python",
        }
    return notebook


def parameters_of(notebook: NotebookNode) -> tuple[NotebookParameter, ...]:
    """The parameters declared in ``notebook``'s first cell tagged ``parameters``."""
    from papermill.translators import PythonTranslator  # noqa: PLC0415

    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return tuple(
                NotebookParameter(
                    name=found.name,
                    type_name=found.inferred_type_name,
                    default=found.default,
                    help=found.help,
                )
                for found in PythonTranslator.inspect(cell)
            )
    return ()


def notebook_parameters(path: Path) -> tuple[NotebookParameter, ...]:
    """The parameters declared in the notebook's cell tagged ``parameters``, in order."""
    return parameters_of(read_notebook(path))


def parse_overrides(
    declared: Sequence[NotebookParameter], overrides: Sequence[str]
) -> dict[str, Any]:
    """``["min_score=5", "symbols=BTCUSDT,ETHUSDT"]`` → typed values, checked against the
    notebook's declarations. UsageError (one line, naming the parameter) for a malformed item,
    an unknown name, a runner-owned name or a value of the wrong type."""
    by_name = {parameter.name: parameter for parameter in declared}
    values: dict[str, Any] = {}
    for item in overrides:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"-p {item!r}: expected key=value", field="parameters")
        if name in RUNNER_PARAMETERS:
            raise UsageError(f"-p {name}: set by {RUNNER_PARAMETERS[name]}, not by -p", field=name)
        parameter = by_name.get(name)
        if parameter is None:
            settable = ", ".join(p.name for p in declared if p.name not in RUNNER_PARAMETERS)
            raise UsageError(
                f"-p {name}: unknown parameter; this notebook takes {settable or 'none'}",
                field=name,
            )
        if not _settable(parameter):
            raise UsageError(
                f"-p {name}: its type {parameter.type_name} cannot be set from the command line "
                "(str, int, float, bool or a list of them)",
                field=name,
            )
        values[name] = parameter.parse(text)
    return values

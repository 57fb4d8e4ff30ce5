"""Run a report: papermill executes its notebook → ipynb + HTML (no code) + JSON sidecar.

:func:`run_report` checks ``-p key=value`` overrides against the notebook's declared parameters,
executes it with papermill, exports HTML without the code, writes the JSON sidecar (the
notebook's own ``result_path`` document plus a ``report_run`` block) and records the run for
monitoring (:mod:`ingmon.reports.state`).

Outputs of a day live in ``<out>/<report>/<YYYY-MM-DD>/<report>.{ipynb,html,json}``; a rerun of
the same day replaces the whole directory with two renames (between them, for an instant, the
day's directory is absent). A failed run keeps the last good outputs and leaves
``<report>.failed.ipynb`` (and ``.failed.html``) beside them for inspection.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingmon.errors import UsageError
from ingmon.partition import PartitionLock
from ingmon.reports.notebooks import (
    KERNEL_NAME,
    RUNNER_PARAMETERS,
    NotebookParameter,
    ReportError,
    find_notebook,
    parameters_of,
    parse_overrides,
    read_notebook,
)
from ingmon.reports.state import ReportRun, record_run, write_text_atomic
from ingmon.reports.validation import check_values
from ingmon.times import day_of, day_start_ms, iso_ms, now_ms, parse_instant_ms

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from ingmon.config import Settings

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "FailedCell",
    "NotebookFailedError",
    "ReportPaths",
    "report_paths",
    "run_report",
]

# papermill's per-cell limit (nbclient ``timeout``); a cron report that hangs must end.
DEFAULT_TIMEOUT_SECONDS = 1800.0
KERNEL_START_TIMEOUT_SECONDS = 60
# Age after which a staging directory is a killed run's remains (see _sweep_leftovers).
LEFTOVER_AGE_SECONDS = 24 * 3600
_AS_OF = "as_of"
# An exception's first line is kept up to this length in the error line and the run state.
_MESSAGE_LIMIT = 1000
# The kernel's "running over TCP without encryption" warning would land in every cron mail.
_KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FailedCell:
    """The notebook cell that raised: its number among the notebook's cells (1-based, as in
    the source file, markdown included), its ``In [n]`` count, first source line and error."""

    number: int | None
    execution_count: int | None
    first_line: str
    error_type: str
    error_message: str

    def where(self) -> str:
        """``cell 4 (In [3]) `1 / 0```."""
        where = f"cell {self.number}" if self.number is not None else "a cell"
        if self.execution_count is not None:
            where += f" (In [{self.execution_count}])"
        if self.first_line:
            where += f" `{self.first_line}`"
        return where

    def describe(self) -> str:
        """``cell 4 (In [3]) `1 / 0`: ZeroDivisionError: division by zero``."""
        return f"{self.where()}: {self.error_type}: {self.error_message}".rstrip(": ")


class NotebookFailedError(ReportError):
    """The notebook ran and failed (a cell raised, timed out, the kernel died, or it wrote no
    result). The run is recorded and its partial notebook kept at ``partial_notebook``."""

    def __init__(
        self,
        message: str,
        *,
        run: ReportRun,
        cell: FailedCell | None,
        partial_notebook: Path | None,
    ) -> None:
        super().__init__(message)
        self.run = run
        self.cell = cell
        self.partial_notebook = partial_notebook


@dataclass(frozen=True)
class ReportPaths:
    """Where one day's report lives: ``<out>/<report>/<YYYY-MM-DD>/<report>.*``."""

    directory: Path
    notebook: Path
    html: Path
    sidecar: Path
    failed_notebook: Path
    failed_html: Path


def report_paths(out_dir: Path, report: str, day: date) -> ReportPaths:
    """The output files of ``report`` for ``day`` under ``out_dir``."""
    directory = out_dir / report / day.isoformat()
    return ReportPaths(
        directory=directory,
        notebook=directory / f"{report}.ipynb",
        html=directory / f"{report}.html",
        sidecar=directory / f"{report}.json",
        failed_notebook=directory / f"{report}.failed.ipynb",
        failed_html=directory / f"{report}.failed.html",
    )


def _resolve_day(
    declared: Mapping[str, NotebookParameter],
    values: dict[str, Any],
    *,
    day: date | None,
    started_ms: int,
) -> date:
    """The report's day, and ``as_of`` made concrete (canonical ISO-8601) when the notebook
    takes one.

    ``--date D`` alone runs the report as of the end of D (or now, for today); ``as_of`` alone
    names the day holding its last instant (windows are half-open, so ``2026-11-27`` is the end
    of 26 November); neither: as of now, named today (UTC). UsageError for a day after today,
    an ``as_of`` after now or not after the epoch, and a ``--date`` that is not ``as_of``'s day.
    """
    today = day_of(started_ms)
    if day is not None and day > today:
        raise UsageError(f"date {day.isoformat()} is after today ({today.isoformat()} UTC)")
    if _AS_OF not in declared:
        return day or today
    given = str(values.get(_AS_OF, "")).strip()
    if given:
        as_of_ms = _as_of_ms(given, started_ms=started_ms)
        as_of_day = day_of(as_of_ms - 1)
        if day is not None and day != as_of_day:
            raise UsageError(
                f"--date {day.isoformat()} and -p {_AS_OF}={given} name different days "
                f"(as_of {iso_ms(as_of_ms)} ends {as_of_day.isoformat()}): give one of them",
                field=_AS_OF,
            )
        values[_AS_OF] = iso_ms(as_of_ms)
        return as_of_day
    if day is None:
        values[_AS_OF] = iso_ms(started_ms)
        return today
    values[_AS_OF] = iso_ms(min(day_start_ms(day + timedelta(days=1)), started_ms))
    return day


def _as_of_ms(given: str, *, started_ms: int) -> int:
    """``-p as_of`` as epoch ms: a time after the epoch and not after now."""
    try:
        as_of_ms = parse_instant_ms(given)
    except ValueError as error:
        raise UsageError(f"-p {_AS_OF}={given}: {error}", field=_AS_OF) from None
    if as_of_ms <= 0:
        raise UsageError(f"-p {_AS_OF}={given}: as_of must be after 1970-01-01", field=_AS_OF)
    if as_of_ms > started_ms:
        raise UsageError(
            f"-p {_AS_OF}={given}: as_of {iso_ms(as_of_ms)} is after now ({iso_ms(started_ms)})",
            field=_AS_OF,
        )
    return as_of_ms


def run_report(
    report: str,
    *,
    settings: Settings,
    out_dir: Path | None = None,
    overrides: Sequence[str] = (),
    day: date | None = None,
    notebooks_dir: Path | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    progress: Progress | None = None,
) -> ReportRun:
    """Run ``report`` on the lake of ``settings`` and write its outputs (see the module doc).

    ``overrides`` are ``key=value`` texts checked against the notebook's parameters, then with
    the defaults against :data:`ingmon.reports.validation.CHECKS` and the lake; ``day`` names
    the outputs (default: the day of ``as_of``, else today UTC). Bad input raises UsageError
    before anything runs. The kernel runs in the caller's working directory (where its
    ``load_settings`` finds the same ``.env``) and gets the resolved data root as ``data_dir``.

    A failing notebook raises NotebookFailedError after the run is recorded; success returns
    the recorded :class:`ReportRun`. When the run cannot be recorded (a read-only data root)
    the run's own outcome stands and ``progress`` gets one ``warning:`` line.
    """
    say = progress or (lambda _line: None)
    data_dir = settings.data_dir.resolve()
    out_dir = (out_dir or data_dir / "reports").resolve()
    source = find_notebook(report, notebooks_dir=notebooks_dir)
    notebook = read_notebook(source)
    declared = {parameter.name: parameter for parameter in parameters_of(notebook)}
    missing = [name for name in RUNNER_PARAMETERS if name not in declared]
    if missing:
        raise ReportError(
            f"notebook {source} does not declare {' and '.join(missing)} in its cell tagged "
            "parameters"
        )
    passed = parse_overrides(tuple(declared.values()), overrides)
    started_ms = now_ms()
    report_day = _resolve_day(declared, passed, day=day, started_ms=started_ms)
    passed["data_dir"] = str(data_dir)
    parameters = {
        name: passed.get(name, parameter.default_value())
        for name, parameter in declared.items()
        if name != "result_path"
    }
    check_values(report, parameters, lake_dir=settings.lake_dir.resolve())
    paths = report_paths(out_dir, report, report_day)
    staging = paths.directory.parent / f".{report_day.isoformat()}.{uuid.uuid4().hex}.tmp"
    staging.mkdir(parents=True)
    _sweep_leftovers(paths.directory.parent)
    staged_notebook = staging / paths.notebook.name
    staged_html = staging / paths.html.name
    result_file = staging / f"{report}.result.json"
    passed["result_path"] = str(result_file)

    say(f"running {source} (kernel {KERNEL_NAME}, cell timeout {timeout_seconds:g} s)")
    try:
        failure, cell = _execute(
            notebook,
            source=source,
            output=staged_notebook,
            parameters=passed,
            cwd=Path.cwd(),
            timeout_seconds=timeout_seconds,
        )
        html_error = _export_html(staged_notebook, staged_html)
        document: dict[str, Any] = {}
        if failure is None and html_error is not None:
            failure = f"HTML export failed: {html_error}"
        if failure is None:
            document, failure = _read_result(result_file)
        if failure is None:
            outputs = {
                "ipynb": str(paths.notebook),
                "html": str(paths.html),
                "json": str(paths.sidecar),
            }
        else:
            outputs = {"ipynb": str(paths.failed_notebook)} if staged_notebook.exists() else {}
            if staged_html.exists():
                outputs["html"] = str(paths.failed_html)
        run = ReportRun(
            report=report,
            notebook=source.name,
            day=report_day,
            status="success" if failure is None else "failed",
            parameters=parameters,
            started_ms=started_ms,
            finished_ms=now_ms(),
            outputs=outputs,
            failure=failure,
            document=document,
        )
        with PartitionLock(_ensure_dir(paths.directory.parent)):
            if failure is None:
                sidecar = {**document, "report_run": run.to_dict()}
                text = json.dumps(sidecar, indent=2, allow_nan=False, default=str) + "\n"
                write_text_atomic(staging / paths.sidecar.name, text)
                result_file.unlink()
                _swap_directory(staging, paths.directory)
            else:
                _keep_failed(staged_notebook, staged_html, paths)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        record_run(data_dir, run)
    except OSError as error:
        # The outputs are written; the run's own result decides the exit status.
        say(f"warning: the run is not recorded in {data_dir / 'state'}: {_os_error(error)}")
    if failure is not None:
        raise NotebookFailedError(
            f"{source.name} failed: {failure}",
            run=run,
            cell=cell,
            partial_notebook=paths.failed_notebook if "ipynb" in outputs else None,
        )
    say(f"wrote {paths.directory}/{report}.{{ipynb,html,json}} in {run.duration_seconds:.1f} s")
    return run


def _execute(
    notebook: NotebookNode,
    *,
    source: Path,
    output: Path,
    parameters: Mapping[str, Any],
    cwd: Path,
    timeout_seconds: float,
) -> tuple[str | None, FailedCell | None]:
    """Run the notebook into ``output``; (None, None) on success, else what failed and where."""
    import nbformat  # noqa: PLC0415
    import papermill  # noqa: PLC0415

    failure: str | None = None
    cell: FailedCell | None = None
    try:
        papermill.execute_notebook(
            notebook,
            str(output),
            parameters=dict(parameters),
            kernel_name=KERNEL_NAME,
            cwd=str(cwd),
            progress_bar=False,
            start_timeout=KERNEL_START_TIMEOUT_SECONDS,
            execution_timeout=timeout_seconds,
            extra_arguments=_KERNEL_ARGUMENTS,
        )
    except papermill.PapermillExecutionError as error:
        cell = FailedCell(
            number=None,
            execution_count=error.exec_count,
            first_line=_first_line(error.source),
            error_type=error.ename,
            error_message=_first_line(error.evalue, limit=_MESSAGE_LIMIT),
        )
    except Exception as error:
        failure = _first_line(str(error)) or type(error).__name__
        cell = FailedCell(
            number=None,
            execution_count=None,
            first_line="",
            error_type=type(error).__name__,
            error_message=failure,
        )
    if not output.exists():
        return (cell.describe() if cell else failure), cell
    executed = nbformat.read(output, as_version=4)
    # papermill records the input as given; a NotebookNode would be copied whole.
    executed.metadata.setdefault("papermill", {})["input_path"] = str(source)
    if cell is not None:
        cell = _locate(cell, notebook, executed)
    nbformat.write(executed, output)
    return (cell.describe() if cell is not None else None), cell


def _locate(cell: FailedCell, source: NotebookNode, executed: NotebookNode) -> FailedCell:
    """Number the failing cell as in the source notebook (papermill adds cells of its own).

    A raising cell is known by its ``In [n]``; after a timeout or a dead kernel it is the last
    code cell papermill started (the cells after it stay ``pending``).
    """
    position = {item.get("id"): number for number, item in enumerate(source.cells, start=1)}
    found = None
    for item in executed.cells:
        if item.get("cell_type") != "code" or item.get("id") not in position:
            continue
        if cell.execution_count is not None:
            if item.get("execution_count") == cell.execution_count:
                found = item
                break
        elif item.get("metadata", {}).get("papermill", {}).get("start_time"):
            found = item
    if found is None:
        return cell
    return FailedCell(
        number=position[found.get("id")],
        execution_count=found.get("execution_count") or cell.execution_count,
        first_line=cell.first_line or _first_line(found.get("source", "")),
        error_type=cell.error_type,
        error_message=cell.error_message,
    )


def _os_error(error: OSError) -> str:
    """``Read-only file system: /srv/ingmon/data/state/.lock`` (one line)."""
    where = f": {error.filename}" if error.filename else ""
    return f"{error.strerror or error}{where}"


def _first_line(text: str, *, limit: int = 120) -> str:
    """The first non-blank line, cut to ``limit`` characters (a source line: its start says
    which cell; an error message gets a larger limit, its end is often what matters)."""
    for line in str(text).splitlines():
        if line.strip():
            stripped = line.strip()
            return stripped if len(stripped) <= limit else stripped[: limit - 3] + "..."
    return ""


def _export_html(notebook: Path, html: Path) -> str | None:
    """HTML of the executed notebook without code or prompts; None, or why it failed."""
    if not notebook.exists():
        return "no executed notebook"
    import nbformat  # noqa: PLC0415
    from nbconvert import HTMLExporter  # noqa: PLC0415

    try:
        exporter = HTMLExporter(
            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
        )
        body, _resources = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    except Exception as error:
        return _first_line(str(error)) or type(error).__name__
    write_text_atomic(html, body)
    return None


def _read_result(path: Path) -> tuple[dict[str, Any], str | None]:
    """The notebook's result document, or why there is none (a failure of the run)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, "the notebook finished but wrote no result document to result_path"
    except ValueError as error:
        return {}, f"the notebook's result document is not JSON: {error}"
    if not isinstance(document, dict):
        return {}, "the notebook's result document is not a JSON object"
    return document, None


def _ensure_dir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _sweep_leftovers(report_dir: Path) -> None:
    """Remove staging and retired directories that a killed run left behind a day ago or more
    (a run in progress is younger than that: its cells time out long before)."""
    cutoff = time.time() - LEFTOVER_AGE_SECONDS
    for leftover in [*report_dir.glob(".*.tmp"), *report_dir.glob(".*.old")]:
        try:
            if leftover.is_dir() and leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except FileNotFoundError:
            continue  # another run's cleanup got there first


def _swap_directory(staging: Path, target: Path) -> None:
    """Put ``staging`` at ``target``: two renames. Each file is whole, and a reader never finds
    one run's files mixed with another's in the directory, but between the renames ``target``
    is absent for an instant (an open there fails with ENOENT; a retry succeeds)."""
    retired = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _keep_failed(notebook: Path, html: Path, paths: ReportPaths) -> None:
    """Move a failed run's partial notebook (and HTML) beside the day's last good outputs."""
    if not notebook.exists():
        return
    paths.directory.mkdir(parents=True, exist_ok=True)
    os.replace(notebook, paths.failed_notebook)
    if html.exists():
        os.replace(html, paths.failed_html)
    else:
        paths.failed_html.unlink(missing_ok=True)

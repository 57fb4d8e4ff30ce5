"""The ``ingmon report`` subcommand: run a report notebook, or list the reports' parameters."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from ingmon.arguments import EXIT_USAGE, CommandParser, add_data_dir, positive_float, settings_from
from ingmon.errors import IngmonError, UsageError
from ingmon.reports.notebooks import REPORTS

__all__ = ["EXIT_NOTEBOOK_FAILED", "register"]

# A notebook that ran and failed (a cell raised, timed out, no result): the job failed, the
# input was fine; cron and systemd see 1, bad input stays 2.
EXIT_NOTEBOOK_FAILED = 1


def _say(line: str) -> None:
    print(f"ingmon report: {line}", file=sys.stderr)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: expected YYYY-MM-DD") from None


def _parameters_text(report: str, notebooks_dir: Path | None = None) -> str:
    """``report``'s notebook and its parameters, one per line (read from the notebook)."""
    from ingmon.reports.notebooks import (  # noqa: PLC0415 - jupytext only when asked
        RUNNER_PARAMETERS,
        find_notebook,
        notebook_parameters,
    )

    try:
        source = find_notebook(report, notebooks_dir=notebooks_dir)
        declared = notebook_parameters(source)
    except IngmonError as error:
        return f"{report}: {error}"
    lines = [f"{report}: {source}"]
    for parameter in declared:
        owner = RUNNER_PARAMETERS.get(parameter.name)
        suffix = f"  (set by {owner})" if owner else ""
        lines.append(f"  {parameter.describe()}{suffix}")
    return "\n".join(lines)


class _ReportParser(CommandParser):
    """A report's parser: its --help lists the notebook's parameters, read only when asked."""

    report = ""

    def format_help(self) -> str:
        self.epilog = (
            "notebook parameters (-p NAME=VALUE; lists comma-separated):\n"
            + _parameters_text(self.report)
            + "\n\nexit status: 0 ok, 1 the notebook failed (the cell is named), 2 bad input"
        )
        return super().format_help()


def register(subparsers: Any) -> None:
    """Add ``report`` to the ``ingmon`` command tree."""
    parser = subparsers.add_parser(
        "report",
        help="run a scheduled report notebook (papermill → ipynb, HTML, JSON sidecar)",
        description="Run a report notebook with papermill and write "
        "<out>/<report>/<YYYY-MM-DD>/<report>.{ipynb,html,json}: the executed notebook, its "
        "HTML without code, and a JSON sidecar with the notebook's results and the run's "
        "metadata. Each run is recorded in <data-dir>/state/ for monitoring. "
        "`ingmon report list` shows every report's parameters.",
    )
    reports = parser.add_subparsers(
        dest="report", metavar="REPORT", parser_class=_ReportParser, required=True
    )
    for report, stem in REPORTS.items():
        run = reports.add_parser(
            report,
            help=f"run notebooks/{stem}.py",
            description=f"Run the {report} report (notebooks/{stem}.py) with papermill.",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        run.report = report
        add_data_dir(run)
        run.add_argument(
            "-p",
            "--parameter",
            dest="parameters",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="set a notebook parameter (repeatable; typed by the notebook's annotation)",
        )
        run.add_argument(
            "--out", type=Path, metavar="DIR", help="output root (default: DATA_DIR/reports)"
        )
        run.add_argument(
            "--date",
            type=_day,
            metavar="YYYY-MM-DD",
            help="the report's day: names the outputs; as_of defaults to the end of that day "
            "(default: the day of -p as_of, else today UTC)",
        )
        run.add_argument(
            "--timeout",
            type=positive_float,
            metavar="SECONDS",
            help="limit per notebook cell (default 1800)",
        )
        run.add_argument(
            "--notebooks",
            type=Path,
            metavar="DIR",
            help="run the notebook from DIR instead of the installed one",
        )
        run.set_defaults(handler=_cmd_run)
    listing = reports.add_parser(
        "list",
        help="each report's notebook and its parameters with types and defaults",
        description="Each report's notebook and its parameters (name: type = default  # help).",
    )
    listing.add_argument("--notebooks", type=Path, metavar="DIR", help="notebooks directory")
    listing.set_defaults(handler=_cmd_list)


def _cmd_list(args: argparse.Namespace) -> int:
    print("\n\n".join(_parameters_text(report, args.notebooks) for report in REPORTS))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from ingmon.reports.runner import (  # noqa: PLC0415 - papermill loads only to run
        DEFAULT_TIMEOUT_SECONDS,
        NotebookFailedError,
        run_report,
    )

    settings = settings_from(args, reads_only=True)
    try:
        run = run_report(
            args.report,
            settings=settings,
            out_dir=args.out,
            overrides=args.parameters,
            day=args.date,
            notebooks_dir=args.notebooks,
            timeout_seconds=args.timeout or DEFAULT_TIMEOUT_SECONDS,
            progress=lambda line: _say(f"{args.report}: {line}"),
        )
    except NotebookFailedError as error:
        where = f" (partial notebook: {error.partial_notebook})" if error.partial_notebook else ""
        if error.cell is not None and error.cell.error_type == UsageError.__name__:
            # A check only the notebook could make (the library refused the input): bad input.
            raised = f"raised by {error.run.notebook} {error.cell.where()}"
            _say(f"{args.report}: error: {error.cell.error_message} ({raised}){where}")
            return EXIT_USAGE
        _say(f"{args.report}: error: {error}{where}")
        return EXIT_NOTEBOOK_FAILED
    except UsageError as error:
        # Said here, not by ingmon.cli: its flag mapping would rename -p parameters
        # (window_days is a notebook parameter here, not --window-days).
        _say(f"{args.report}: error: {error}")
        return EXIT_USAGE
    print(run.outputs["json"])
    return 0

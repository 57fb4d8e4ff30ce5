"""Scheduled reports: parameterised notebooks run by papermill into ipynb, HTML and JSON.

``run_report`` runs one (``ingmon report backtest|integrity`` is its command, in
``ingmon.reports.commands``); ``report_state`` is what monitoring reads of past runs.
"""

from __future__ import annotations

from ingmon.reports.notebooks import (
    KERNEL_NAME,
    REPORTS,
    NotebookParameter,
    ReportError,
    find_notebook,
    notebook_parameters,
    parse_overrides,
)
from ingmon.reports.runner import (
    DEFAULT_TIMEOUT_SECONDS,
    FailedCell,
    NotebookFailedError,
    ReportPaths,
    report_paths,
    run_report,
)
from ingmon.reports.state import (
    RUNS_LOG,
    STATE_FILE,
    ReportRun,
    ReportState,
    report_runs,
    report_state,
)

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "KERNEL_NAME",
    "REPORTS",
    "RUNS_LOG",
    "STATE_FILE",
    "FailedCell",
    "NotebookFailedError",
    "NotebookParameter",
    "ReportError",
    "ReportPaths",
    "ReportRun",
    "ReportState",
    "find_notebook",
    "notebook_parameters",
    "parse_overrides",
    "report_paths",
    "report_runs",
    "report_state",
    "run_report",
]

"""What the report runner records: one run (:class:`ReportRun`) and each report's state.

``<data_dir>/state/reports.json`` holds per report its last run and last success (rewritten
atomically under a lock); ``<data_dir>/state/report_runs.jsonl`` gets one line per run. The
monitoring (the Prometheus exporter, once it publishes them) reads them through
:func:`report_state`, never the files' format.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

from ingmon.errors import DataIntegrityError
from ingmon.partition import PartitionLock
from ingmon.times import iso_ms

__all__ = [
    "RUNS_LOG",
    "STATE_FILE",
    "STATE_FORMAT",
    "ReportRun",
    "ReportState",
    "record_run",
    "report_runs",
    "report_state",
    "write_text_atomic",
]

STATE_FILE = "reports.json"
RUNS_LOG = "report_runs.jsonl"
STATE_FORMAT = 1


@dataclass(frozen=True)
class ReportRun:
    """One run of a report, as recorded in the sidecar's ``report_run`` and the run log."""

    report: str
    notebook: str
    day: date
    status: str  # "success" or "failed"
    parameters: Mapping[str, Any]
    started_ms: int
    finished_ms: int
    outputs: Mapping[str, str]
    failure: str | None = None
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def duration_seconds(self) -> float:
        return (self.finished_ms - self.started_ms) / 1000

    def to_dict(self) -> dict[str, Any]:
        """The run's metadata (not the notebook's document) as JSON-ready values."""
        from ingmon import __version__  # noqa: PLC0415 - the package imports its modules first

        return {
            "report": self.report,
            "notebook": self.notebook,
            "date": self.day.isoformat(),
            "status": self.status,
            "parameters": dict(self.parameters),
            "started": iso_ms(self.started_ms),
            "finished": iso_ms(self.finished_ms),
            "duration_seconds": self.duration_seconds,
            "outputs": dict(self.outputs),
            "failure": self.failure,
            "ingmon_version": __version__,
        }


@dataclass(frozen=True)
class ReportState:
    """What monitoring needs of one report: its last run and its last success."""

    report: str
    last_status: str
    last_started: str
    last_finished: str
    last_duration_seconds: float
    last_date: str
    runs_total: int
    failures_total: int
    last_success_timestamp_seconds: float | None = None
    last_success_duration_seconds: float | None = None
    last_success_outputs: Mapping[str, str] | None = None
    last_failure_time: str | None = None
    last_failure_message: str | None = None


# Keys of a newer format that this version does not know are ignored when reading.
_FIELDS = frozenset(item.name for item in fields(ReportState)) - {"report"}


def _state_dir(data_dir: Path) -> Path:
    return data_dir / "state"


def report_state(data_dir: Path) -> dict[str, ReportState]:
    """Per report, its recorded state (``<data_dir>/state/reports.json``); {} before any run.

    DataIntegrityError naming the file when it cannot be read as written by this module.
    """
    path = _state_dir(data_dir) / STATE_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return {
            name: ReportState(report=name, **{k: v for k, v in entry.items() if k in _FIELDS})
            for name, entry in stored["reports"].items()
        }
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataIntegrityError(f"report state {path} is unreadable: {error}") from None


def report_runs(data_dir: Path) -> list[dict[str, Any]]:
    """Every recorded run, oldest first (``<data_dir>/state/report_runs.jsonl``); lines that
    cannot be parsed (a torn last line after a crash) are skipped."""
    path = _state_dir(data_dir) / RUNS_LOG
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    runs = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            runs.append(entry)
    return runs


def record_run(data_dir: Path, run: ReportRun) -> None:
    """Append the run to the log and fold it into the state file, under the state lock."""
    state_dir = _state_dir(data_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps(run.to_dict(), default=str) + "\n"
    with PartitionLock(state_dir):
        with open(state_dir / RUNS_LOG, "a", encoding="utf-8") as log:
            log.write(line)
        try:
            known = {name: vars(state) for name, state in report_state(data_dir).items()}
        except DataIntegrityError:
            known = {}  # rebuilt from this run on; the log keeps the history
        known[run.report] = _fold(known.get(run.report, {}), run)
        stored = {
            "format": STATE_FORMAT,
            "reports": {
                name: {key: value for key, value in entry.items() if key != "report"}
                for name, entry in sorted(known.items())
            },
        }
        write_text_atomic(state_dir / STATE_FILE, json.dumps(stored, indent=2, default=str) + "\n")


def _fold(previous: Mapping[str, Any], run: ReportRun) -> dict[str, Any]:
    success = run.status == "success"
    entry = dict(previous)
    entry.update(
        report=run.report,
        last_status=run.status,
        last_started=iso_ms(run.started_ms),
        last_finished=iso_ms(run.finished_ms),
        last_duration_seconds=run.duration_seconds,
        last_date=run.day.isoformat(),
        runs_total=int(previous.get("runs_total", 0)) + 1,
        failures_total=int(previous.get("failures_total", 0)) + (0 if success else 1),
    )
    if success:
        entry.update(
            last_success_timestamp_seconds=run.finished_ms / 1000,
            last_success_duration_seconds=run.duration_seconds,
            last_success_outputs=dict(run.outputs),
        )
    else:
        entry.update(last_failure_time=iso_ms(run.finished_ms), last_failure_message=run.failure)
    return entry


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it into place."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise

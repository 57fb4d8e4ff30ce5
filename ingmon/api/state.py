"""What the server knows at an instant: the worker's state files, read through a change-aware cache.

``health.json``, ``alerts.json`` and ``worker.json`` are parsed again only when they change;
:func:`monitor_state` judges the health snapshot at the instant it is given. A file that is
torn, foreign or holds impossible values is *damaged* (named in ``MonitorState.damaged``), not
absent: the documents say so instead of "no state yet".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from ingmon.api.cache import FileCache
from ingmon.config import Settings
from ingmon.monitor.alerts import ALERTS_FILE, Alert, AlertState
from ingmon.monitor.exporter import read_state_object, snapshot_problem
from ingmon.monitor.health import HEALTH_FILE, HealthSnapshot
from ingmon.worker.state import WORKER_STATE

__all__ = ["STATE_FILES", "MonitorState", "WorkerTick", "monitor_state", "seconds_between"]

T = TypeVar("T")
_FILES = FileCache()
# The state file of each source, as hints name it (under the data root).
STATE_FILES = {
    "health": f"state/{HEALTH_FILE}",
    "alerts": f"state/{ALERTS_FILE}",
    "worker": f"state/{WORKER_STATE}",
}
# What reading a torn, foreign, unreadable or impossible state file raises (UnicodeDecodeError and
# JSONDecodeError are ValueErrors; OverflowError an ArithmeticError).
_DAMAGE = (OSError, ValueError, KeyError, TypeError, AttributeError, ArithmeticError)
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def seconds_between(later_ms: int, earlier_ms: int | None) -> float | None:
    """``later_ms - earlier_ms`` in seconds; None when ``earlier_ms`` is unknown."""
    return None if earlier_ms is None else (later_ms - earlier_ms) / 1000


@dataclass(frozen=True)
class WorkerTick:
    """The worker's last tick, from ``state/worker.json`` (``ingmon.worker.TickResult``)."""

    started_ms: int | None
    finished_ms: int | None
    duration_seconds: float | None
    outcome: str | None  # ok | error | interrupted
    interval_seconds: float | None  # None for a one-off tick (--once)
    stopped_ms: int | None  # the worker stopped (SIGTERM/SIGINT) after this tick

    @property
    def last_ms(self) -> int | None:
        return self.finished_ms if self.finished_ms is not None else self.started_ms


def _number(value: Any) -> float | None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number and math.isfinite(value) else None


def _positive(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0 else None


def _time(document: Mapping[str, Any], name: str) -> int | None:
    number = _number(document.get(name))
    if number is None:
        return None
    if not 0 <= number <= _LAST_MS:
        raise ValueError(f"{name} {document[name]!r} is not a time in 1970..9999")
    return int(number)


def _check_times(name: str, values: dict[str, int | None]) -> None:
    for field_name, value in values.items():
        if value is not None and not 0 <= value <= _LAST_MS:
            raise ValueError(f"{name}: {field_name} {value} is not a time in 1970..9999")


def _load_snapshot(path: Path) -> HealthSnapshot | None:
    data = read_state_object(path)
    if data is None:
        return None
    snapshot = HealthSnapshot.from_dict(data)
    problem = snapshot_problem(snapshot)
    if problem is not None:
        raise ValueError(problem)
    return snapshot


def _load_alerts(path: Path) -> tuple[Alert, ...]:
    """The pending and firing alerts: firing first, then by name and labels (as
    ``alerts.active_alerts``, which reads a damaged file as empty)."""
    data = read_state_object(path)
    if data is None:
        return ()
    active = AlertState.from_dict(data).active
    for alert in active:
        _check_times(
            f"alert {alert.fingerprint}",
            {"active_since_ms": alert.active_since_ms, "fired_at_ms": alert.fired_at_ms},
        )
    return tuple(
        sorted(
            active,
            key=lambda a: (a.state != "firing", a.labels["alertname"], sorted(a.labels.items())),
        )
    )


def _load_worker(path: Path) -> WorkerTick | None:
    document = read_state_object(path)
    if document is None:
        return None
    outcome = document.get("outcome")
    return WorkerTick(
        started_ms=_time(document, "started_ms"),
        finished_ms=_time(document, "finished_ms"),
        duration_seconds=_number(document.get("duration_seconds")),
        outcome=None if outcome is None else str(outcome),
        interval_seconds=_positive(document.get("interval_seconds")),
        stopped_ms=_time(document, "stopped_ms"),
    )


@dataclass(frozen=True)
class _Read:
    """A state file's value, or why it could not be used (None: absent, or read fine)."""

    value: Any
    damage: str | None


def _read(kind: str, path: Path, load: Callable[[Path], T]) -> _Read:
    """The file through the change-aware cache; a damaged file is remembered as damaged."""

    def attempt() -> _Read:
        try:
            return _Read(load(path), None)
        except _DAMAGE as error:
            reason = str(error) or type(error).__name__
            return _Read(None, f"{STATE_FILES[kind]} is damaged ({reason})")

    found: _Read = _FILES.get(kind, path, attempt)
    return found


@dataclass(frozen=True)
class MonitorState:
    """What the server knows at ``now_ms``: the health snapshot judged at that instant (None
    before the first ``ingmon health``/worker tick, or when damaged), the active alerts and
    the worker's tick. ``damaged`` names each source ("health", "alerts", "worker") whose
    state file is torn, foreign or holds impossible values, with why (naming the file)."""

    settings: Settings
    now_ms: int
    snapshot: HealthSnapshot | None
    snapshot_generated_ms: int | None
    alerts: tuple[Alert, ...]
    worker: WorkerTick | None
    damaged: Mapping[str, str] = field(default_factory=dict)

    @property
    def snapshot_age_seconds(self) -> float | None:
        return seconds_between(self.now_ms, self.snapshot_generated_ms)

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(alert for alert in self.alerts if alert.state == "firing")

    @property
    def pending(self) -> tuple[Alert, ...]:
        return tuple(alert for alert in self.alerts if alert.state == "pending")

    def used(self, name: str) -> float:
        """A setting as the worker used it — the snapshot's ``settings_used`` (the worker may
        run with its own environment) — else the server's own."""
        if self.snapshot is not None:
            value = _positive(self.snapshot.settings_used.get(name))
            if value is not None:
                return value
        server: float = getattr(self.settings, name)
        return server

    @property
    def worker_interval_seconds(self) -> float:
        """The worker's interval: the one its last tick recorded in ``worker.json``, else the
        one the snapshot was built with, else the server's setting."""
        if self.worker is not None and self.worker.interval_seconds is not None:
            return self.worker.interval_seconds
        return self.used("worker_interval_seconds")

    def without(self, source: str, damage: str) -> MonitorState:
        """This state with one source's file treated as damaged (its value dropped)."""
        damaged = {**self.damaged, source: damage}
        if source == "health":
            return replace(self, snapshot=None, snapshot_generated_ms=None, damaged=damaged)
        if source == "alerts":
            return replace(self, alerts=(), damaged=damaged)
        return replace(self, worker=None, damaged=damaged)


def monitor_state(settings: Settings, *, now_ms: int) -> MonitorState:
    """Read the state files (through the change-aware cache) and judge them at ``now_ms``."""
    state_dir = settings.state_dir
    health = _read("health", state_dir / HEALTH_FILE, _load_snapshot)
    alerts = _read("alerts", state_dir / ALERTS_FILE, _load_alerts)
    worker = _read("worker", state_dir / WORKER_STATE, _load_worker)
    damaged = {
        source: read.damage
        for source, read in (("health", health), ("alerts", alerts), ("worker", worker))
        if read.damage is not None
    }
    stored: HealthSnapshot | None = health.value
    judged = None
    if stored is not None:
        try:
            judged = stored.at(now_ms)
        except _DAMAGE as error:  # a value snapshot_problem does not know of
            damaged["health"] = f"{STATE_FILES['health']} cannot be judged ({error})"
            stored = None
    return MonitorState(
        settings=settings,
        now_ms=now_ms,
        snapshot=judged,
        snapshot_generated_ms=None if stored is None else stored.generated_at_ms,
        alerts=alerts.value or (),
        worker=worker.value,
        damaged=damaged,
    )

"""What the server knows at an instant: the worker's state files, read through a change-aware cache.

``health.json``, ``alerts.json`` and ``worker.json`` are parsed again only when they change;
:func:`monitor_state` judges the health snapshot at the instant it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ingmon.api.cache import FileCache
from ingmon.config import Settings
from ingmon.monitor.alerts import ALERTS_FILE, Alert, active_alerts
from ingmon.monitor.health import HEALTH_FILE, HealthSnapshot, read_snapshot
from ingmon.worker import WORKER_STATE, read_worker_state

__all__ = ["MonitorState", "WorkerTick", "monitor_state", "seconds_between"]

_FILES = FileCache()


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


def _whole(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _read_worker_tick(state_dir: Path) -> WorkerTick | None:
    document = read_worker_state(state_dir)
    if document is None:
        return None
    outcome = document.get("outcome")
    return WorkerTick(
        started_ms=_whole(document.get("started_ms")),
        finished_ms=_whole(document.get("finished_ms")),
        duration_seconds=_number(document.get("duration_seconds")),
        outcome=None if outcome is None else str(outcome),
        interval_seconds=_number(document.get("interval_seconds")),
        stopped_ms=_whole(document.get("stopped_ms")),
    )


@dataclass(frozen=True)
class MonitorState:
    """What the server knows at ``now_ms``: the health snapshot judged at that instant (None
    before the first ``ingmon health``/worker tick), the active alerts and the worker's tick."""

    settings: Settings
    now_ms: int
    snapshot: HealthSnapshot | None
    snapshot_generated_ms: int | None
    alerts: tuple[Alert, ...]
    worker: WorkerTick | None

    @property
    def snapshot_age_seconds(self) -> float | None:
        return seconds_between(self.now_ms, self.snapshot_generated_ms)

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(alert for alert in self.alerts if alert.state == "firing")

    @property
    def pending(self) -> tuple[Alert, ...]:
        return tuple(alert for alert in self.alerts if alert.state == "pending")


def monitor_state(settings: Settings, *, now_ms: int) -> MonitorState:
    """Read the state files (through the change-aware cache) and judge them at ``now_ms``."""
    state_dir = settings.state_dir
    snapshot = _FILES.get("health", state_dir / HEALTH_FILE, partial(read_snapshot, state_dir))
    alerts = _FILES.get("alerts", state_dir / ALERTS_FILE, lambda: tuple(active_alerts(state_dir)))
    worker = _FILES.get("worker", state_dir / WORKER_STATE, partial(_read_worker_tick, state_dir))
    return MonitorState(
        settings=settings,
        now_ms=now_ms,
        snapshot=None if snapshot is None else snapshot.at(now_ms),
        snapshot_generated_ms=None if snapshot is None else snapshot.generated_at_ms,
        alerts=alerts,
        worker=worker,
    )

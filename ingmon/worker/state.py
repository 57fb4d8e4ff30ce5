"""``state/worker.json``: what the last tick did (:class:`TickResult`), written and read back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ingmon.times import iso_ms

__all__ = [
    "WORKER_SCHEMA",
    "WORKER_STATE",
    "Outcome",
    "StepResult",
    "TickResult",
    "read_worker_state",
    "write_worker_state",
]

WORKER_STATE = "worker.json"
WORKER_SCHEMA = "ingmon.worker/v1"

Outcome = Literal["ok", "error", "interrupted"]


@dataclass
class StepResult:
    """One step of a tick: how long it took, whether it worked, and what it did."""

    seconds: float = 0.0
    ok: bool = True
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"seconds": round(self.seconds, 3), "ok": self.ok}
        if self.error is not None:
            document["error"] = self.error
        document.update(self.details)
        return document


@dataclass(frozen=True)
class TickResult:
    """What one tick did; ``to_dict()`` is the ``worker.json`` document."""

    tick: int
    pid: int
    started_ms: int
    finished_ms: int
    duration_seconds: float
    outcome: Outcome
    symbols: tuple[str, ...]
    steps: dict[str, StepResult]
    interval_seconds: float | None
    worker_started_ms: int | None = None
    stopped_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "schema": WORKER_SCHEMA,
            "pid": self.pid,
            "tick": self.tick,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "started_at": iso_ms(self.started_ms),
            "finished_at": iso_ms(self.finished_ms),
            "duration_seconds": round(self.duration_seconds, 3),
            "outcome": self.outcome,
            "symbols": list(self.symbols),
            "steps": {name: step.to_dict() for name, step in self.steps.items()},
            "interval_seconds": self.interval_seconds,
            "worker_started_ms": self.worker_started_ms,
        }
        if self.stopped_ms is not None:
            document["stopped_ms"] = self.stopped_ms
        return document


def read_worker_state(state_dir: Path) -> dict[str, Any] | None:
    """The last ``worker.json`` (None when absent or unreadable: written atomically, so only a
    foreign file can be unreadable)."""
    try:
        document = json.loads((state_dir / WORKER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def write_worker_state(state_dir: Path, result: TickResult) -> None:
    """Write ``result`` to ``state_dir/worker.json`` atomically."""
    from ingmon.reports.state import write_text_atomic  # noqa: PLC0415

    state_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(state_dir / WORKER_STATE, json.dumps(result.to_dict(), indent=2) + "\n")

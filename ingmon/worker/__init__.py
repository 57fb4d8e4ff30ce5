"""``ingmon worker``: every interval, keep the symbols fresh, score, judge health and alert.

The modules: ``steps`` (one tick: backfill the tail, score the new closed bars, write the health
snapshot, evaluate the alert rules, deliver webhooks — a failing step is recorded and the next
one runs), ``loop`` (the cadence, one worker per data directory), ``state`` (what each tick did,
in ``state/worker.json``) and ``command`` (the flags; SIGTERM/SIGINT stop the loop cleanly).
"""

from __future__ import annotations

from ingmon.worker.command import register
from ingmon.worker.loop import WORKER_LOCK, resolve_symbols, run_worker
from ingmon.worker.state import (
    WORKER_SCHEMA,
    WORKER_STATE,
    StepResult,
    TickResult,
    read_worker_state,
)
from ingmon.worker.steps import STEPS, tick

__all__ = [
    "STEPS",
    "WORKER_LOCK",
    "WORKER_SCHEMA",
    "WORKER_STATE",
    "StepResult",
    "TickResult",
    "read_worker_state",
    "register",
    "resolve_symbols",
    "run_worker",
    "tick",
]

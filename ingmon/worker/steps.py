"""One tick of the worker: its steps in order, each failure recorded and kept to its step."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingmon.binance.reporting import Reporter
from ingmon.errors import IngmonError, UsageError
from ingmon.times import SECOND_MS, iso_ms
from ingmon.times import now_ms as _wall_ms
from ingmon.worker.state import Outcome, StepResult, TickResult, write_worker_state

if TYPE_CHECKING:
    import httpx

    from ingmon.binance.client import BinanceClient
    from ingmon.config import Settings
    from ingmon.lake import Lake
    from ingmon.monitor.status import HealthSnapshot

__all__ = ["STEPS", "tick"]

# The steps of a tick, in order; a step switched off (--no-…) is left out of worker.json.
STEPS = ("backfill", "score", "health", "alerts", "webhooks")


# ---- logs ---------------------------------------------------------------------------------


class _WorkerReporter(Reporter):
    """The backfill's reporter without progress bars: a daemon's stderr is a journal, and on a
    terminal a bar per dataset every tick would scroll the tick lines away."""

    def start_dataset(self, dataset: str, *, total: int, unit: str) -> None:
        return


def _describe(error: BaseException, settings: Settings) -> str:
    """One line for a failed step: ingmon's own errors say what went wrong; anything else is
    named by its type. Webhook URLs and secrets are blanked (a Slack URL is a credential)."""
    text = str(error) if isinstance(error, IngmonError) else f"{type(error).__name__}: {error}"
    text = " ".join(text.split())
    hidden = list(settings.webhook_urls)
    for secret in (settings.webhook_secret, settings.basic_auth, settings.metrics_token):
        if secret is not None and secret.get_secret_value():
            hidden.append(secret.get_secret_value())
    for value in hidden:
        text = text.replace(value, "***")
    return text


# ---- steps --------------------------------------------------------------------------------


@dataclass
class _Tick:
    """The state one tick's steps share."""

    settings: Settings
    symbols: tuple[str, ...]
    reporter: Reporter
    stop: threading.Event
    number: int
    now: Callable[[], int]
    client: BinanceClient | None
    webhook_client: httpx.Client | None
    snapshot: HealthSnapshot | None = None

    @property
    def lake(self) -> Lake:
        from ingmon.lake import Lake  # noqa: PLC0415

        return Lake(self.settings.lake_dir)


def _step_backfill(state: _Tick, result: StepResult) -> None:
    """Per symbol, a resume over the catch-up window ending at the exchange's now: only what
    is missing is fetched (the tail since the last tick, or a hole an outage left)."""
    from ingmon.binance.backfill import BackfillRequest, run_backfill  # noqa: PLC0415
    from ingmon.binance.limits import Aborted  # noqa: PLC0415

    settings = state.settings
    per_symbol: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    unreachable: str | None = None
    for symbol in state.symbols:
        if state.stop.is_set():
            break
        if unreachable is not None:
            # The first symbol found the exchange down: the others would only wait for it too.
            per_symbol[symbol] = {"status": "error", "error": unreachable}
            failed.append(f"{symbol}: {unreachable}")
            continue
        request = BackfillRequest(
            symbols=(symbol,),
            window_days=settings.worker_catch_up_days,
            source="auto",
        )
        reporter = _WorkerReporter(mode=state.reporter.mode, stream=state.reporter.stream)
        try:
            summary = run_backfill(
                request,
                settings=settings,
                client=state.client,
                reporter=reporter,
                stop=state.stop,
            )
        except Aborted:
            per_symbol[symbol] = {"status": "interrupted"}
            break
        except Exception as error:
            message = _describe(error, settings)
            per_symbol[symbol] = {"status": "error", "error": message}
            failed.append(f"{symbol}: {message}")
            if isinstance(error, UsageError) and error.field == "base_url":
                unreachable = message
            continue
        document = summary.to_dict()
        totals = document["totals"]
        per_symbol[symbol] = {
            "status": summary.status,
            "run_id": summary.run_id,
            "fetched": totals["fetched"],
            "inserted": totals["inserted"],
            "requests": totals["requests"],
            "problems": len(summary.problems),
        }
        if summary.status in ("incomplete", "banned"):
            first = summary.problems[0] if summary.problems else None
            detail = first.message if first is not None else summary.status
            failed.append(f"{symbol}: {summary.status}: {detail}")
        if summary.status == "banned":
            break  # the ban is the IP's: every other symbol would be refused too
    result.details["symbols"] = per_symbol
    if failed:
        result.ok = False
        result.error = "; ".join(failed)


def _step_score(state: _Tick, result: StepResult) -> None:
    """Score each symbol's new closed bars with the default configuration, as ``ingmon score``
    does (same rules version and config hash, so the runs share one incremental stretch)."""
    from ingmon.signals import SignalConfig, score_symbol  # noqa: PLC0415
    from ingmon.signals.commands import code_version  # noqa: PLC0415

    lake = state.lake
    config = SignalConfig()
    version = code_version()
    per_symbol: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for symbol in state.symbols:
        if state.stop.is_set():
            break
        if lake.key_range("candles", symbol=symbol, param="1m") is None:
            per_symbol[symbol] = {"status": "skipped", "reason": "no 1m candles yet"}
            continue
        try:
            run = score_symbol(
                lake, symbol, config=config, end_ms=state.now(), code_version=version
            )
        except Exception as error:
            message = _describe(error, state.settings)
            per_symbol[symbol] = {"status": "error", "error": message}
            failed.append(f"{symbol}: {message}")
            continue
        per_symbol[symbol] = {
            "status": "ok",
            "timeframe": run.timeframe,
            "bars": run.bars,
            "signals_inserted": run.signals_inserted,
            "last_bar": iso_ms(run.last_bar_ms),
        }
    result.details["symbols"] = per_symbol
    if failed:
        result.ok = False
        result.error = "; ".join(failed)


def _step_health(state: _Tick, result: StepResult) -> None:
    """The health snapshot of the symbols, judged now, written to ``state/health.json``."""
    from ingmon.monitor.health import build_snapshot, write_snapshot  # noqa: PLC0415

    snapshot = build_snapshot(
        state.lake, state.settings, symbols=list(state.symbols), now_ms=state.now()
    )
    write_snapshot(state.settings.state_dir, snapshot)
    state.snapshot = snapshot
    problems = [s for s in snapshot.series if s.status in ("warn", "error")]
    result.details.update(status=snapshot.status, series=len(snapshot.series))
    result.details["not_ok"] = [
        f"{s.dataset}/{s.symbol}{'/' + s.param if s.param else ''}: {s.status}" for s in problems
    ]


def _step_alerts(state: _Tick, result: StepResult) -> None:
    """The alert rules on this tick's snapshot (firing/resolved notifications are queued).
    When the health step failed, on the last saved snapshot judged now instead (ages keep
    growing, so a feed that stalled still alerts); skipped only when there is none."""
    from ingmon.monitor.alerts import evaluate  # noqa: PLC0415
    from ingmon.monitor.health import read_snapshot  # noqa: PLC0415

    now = state.now()
    snapshot = state.snapshot
    if snapshot is not None:
        result.details["snapshot"] = "this tick"
    else:
        snapshot = read_snapshot(state.settings.state_dir)
        if snapshot is None:
            raise _Skipped("no health snapshot this tick nor saved: alerts were not evaluated")
        snapshot = snapshot.at(now)
        result.details["snapshot"] = "saved"
        result.details["snapshot_generated_at"] = iso_ms(snapshot.generated_at_ms)
    evaluation = evaluate(snapshot, state.settings, now_ms=now)
    result.details.update(
        firing=len(evaluation.firing),
        pending=len(evaluation.pending),
        resolved=len(evaluation.resolved),
        notifications=len(evaluation.notifications),
    )


def _step_webhooks(state: _Tick, result: StepResult) -> None:
    """Deliver what the outbox holds (this tick's notifications and earlier failures due)."""
    from ingmon.monitor.outbox import deliver  # noqa: PLC0415

    delivery = deliver(state.settings, now_ms=state.now(), client=state.webhook_client)
    result.details.update(
        delivered=delivery.delivered,
        failed=delivery.failed,
        waiting=delivery.waiting + delivery.deferred,
        outbox_pending=delivery.pending,
    )
    if delivery.failed:
        result.ok = False
        result.error = (
            f"{delivery.failed} webhook deliveries failed; kept in the outbox, retried with backoff"
        )


class _Skipped(Exception):
    """A step could not run because an earlier one failed (recorded as a failure, not logged
    as a second error)."""


_STEP_FUNCTIONS: dict[str, Callable[[_Tick, StepResult], None]] = {
    "backfill": _step_backfill,
    "score": _step_score,
    "health": _step_health,
    "alerts": _step_alerts,
    "webhooks": _step_webhooks,
}


# ---- one tick -----------------------------------------------------------------------------


def tick(
    settings: Settings,
    *,
    symbols: Sequence[str],
    now_ms: int | None = None,
    client: BinanceClient | None = None,
    webhook_client: httpx.Client | None = None,
    stop: threading.Event | None = None,
    reporter: Reporter | None = None,
    number: int = 1,
    steps: Sequence[str] = STEPS,
    interval_seconds: float | None = None,
    worker_started_ms: int | None = None,
) -> TickResult:
    """Run one tick's ``steps`` for ``symbols`` and write ``state/worker.json``; never raises
    for a failing step (it is logged and recorded, and the next step runs).

    ``now_ms`` fixes "now" for the scoring end, the health judgement and the alerts (tests and
    demos drive time with it); by default each step reads the clock. The backfill always ends
    at the exchange's own time. ``stop`` set: the running step winds down (a backfill finishes
    the requests in flight and the partition it is writing), no further step starts, and the
    outcome is ``interrupted``.
    """
    stop = stop or threading.Event()
    reporter = reporter or Reporter(mode=settings.log_format)
    unknown = [name for name in steps if name not in STEPS]
    if unknown:
        raise ValueError(f"unknown worker steps: {', '.join(unknown)}")
    fixed = now_ms

    def now() -> int:
        return fixed if fixed is not None else _wall_ms()

    started_ms = now()
    clock = time.perf_counter()
    state = _Tick(
        settings=settings,
        symbols=tuple(symbols),
        reporter=reporter,
        stop=stop,
        number=number,
        now=now,
        client=client,
        webhook_client=webhook_client,
    )
    reporter.event("tick_start", tick=number, symbols=list(state.symbols), now=iso_ms(started_ms))
    results: dict[str, StepResult] = {}
    for name in STEPS:
        if name not in steps:
            continue
        if stop.is_set():
            break
        results[name] = _run_step(name, state)
    interrupted = stop.is_set()
    finished_ms = started_ms + round((time.perf_counter() - clock) * SECOND_MS)
    outcome: Outcome = (
        "interrupted"
        if interrupted
        else ("ok" if all(step.ok for step in results.values()) else "error")
    )
    result = TickResult(
        tick=number,
        pid=os.getpid(),
        started_ms=started_ms,
        finished_ms=finished_ms,
        duration_seconds=time.perf_counter() - clock,
        outcome=outcome,
        symbols=state.symbols,
        steps=results,
        interval_seconds=interval_seconds,
        worker_started_ms=worker_started_ms,
    )
    try:
        write_worker_state(settings.state_dir, result)
    except OSError as error:  # a full disk must not end the loop: the next tick tries again
        reporter.event("state_not_written", level="error", error=_describe(error, settings))
    summary = ", ".join(
        f"{name} {step.seconds:.1f} s" + ("" if step.ok else " FAILED")
        for name, step in results.items()
    )
    reporter.notice(
        "tick",
        f"tick {number} {outcome} in {result.duration_seconds:.1f} s ({summary or 'no steps'})",
        level="info" if outcome == "ok" else "warning",
        tick=number,
        outcome=outcome,
        duration_seconds=round(result.duration_seconds, 3),
        steps={name: step.ok for name, step in results.items()},
    )
    return result


def _run_step(name: str, state: _Tick) -> StepResult:
    """One step, timed; an exception becomes the step's error (logged), never the tick's."""
    result = StepResult()
    clock = time.perf_counter()
    try:
        _STEP_FUNCTIONS[name](state, result)
    except _Skipped as skipped:
        result.ok, result.error = False, str(skipped)
    except Exception as error:
        result.ok, result.error = False, _describe(error, state.settings)
    result.seconds = time.perf_counter() - clock
    fields = result.to_dict()
    fields.pop("ok")
    fields.pop("error", None)
    state.reporter.event(
        "step",
        level="info" if result.ok else "warning",
        tick=state.number,
        step=name,
        ok=result.ok,
        **({"error": result.error} if result.error is not None else {}),
        **fields,
    )
    return result

"""``ingmon worker``: every interval, keep the symbols' data fresh, score new bars, judge health,
alert, and record what the tick did in ``state/worker.json``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

from ingmon.arguments import add_data_dir, positive_float, settings_from, symbol_list
from ingmon.binance.reporting import Reporter
from ingmon.errors import IngmonError, UsageError
from ingmon.times import SECOND_MS, iso_ms
from ingmon.times import now_ms as _wall_ms

if TYPE_CHECKING:
    import httpx

    from ingmon.binance.client import BinanceClient
    from ingmon.config import Settings
    from ingmon.lake import Lake
    from ingmon.monitor.health import HealthSnapshot

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

WORKER_STATE = "worker.json"
WORKER_LOCK = "worker.lock"
WORKER_SCHEMA = "ingmon.worker/v1"
# The steps of a tick, in order; a step switched off (--no-…) is left out of worker.json.
STEPS = ("backfill", "score", "health", "alerts", "webhooks")

Outcome = Literal["ok", "error", "interrupted"]


# ---- results ------------------------------------------------------------------------------


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


def _write_state(state_dir: Path, result: TickResult) -> None:
    from ingmon.reports.state import write_text_atomic  # noqa: PLC0415

    state_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(state_dir / WORKER_STATE, json.dumps(result.to_dict(), indent=2) + "\n")


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
    from ingmon.monitor.webhooks import deliver  # noqa: PLC0415

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
        _write_state(settings.state_dir, result)
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


# ---- the loop -----------------------------------------------------------------------------


def resolve_symbols(settings: Settings, symbols: Sequence[str] | None = None) -> tuple[str, ...]:
    """The symbols to keep fresh: ``symbols``, else ``settings.worker_symbols``, else every
    symbol with candles in the lake; UsageError when there are none at all."""
    from ingmon.binance.request import check_symbol  # noqa: PLC0415
    from ingmon.lake import Lake  # noqa: PLC0415

    for symbol in symbols or ():
        check_symbol(symbol)
    for symbol in settings.worker_symbols:
        try:
            check_symbol(symbol)
        except UsageError:
            raise UsageError(
                f"invalid symbol {symbol!r} in INGMON_WORKER_SYMBOLS: expected upper-case "
                "letters/digits like BTCUSDT"
            ) from None
    chosen = list(symbols or settings.worker_symbols)
    if not chosen:
        chosen = Lake(settings.lake_dir).symbols("candles")
    if not chosen:
        raise UsageError(
            "no symbols to watch: give --symbol SYM, or set INGMON_WORKER_SYMBOLS, "
            f"or backfill a symbol into {settings.lake_dir} first"
        )
    return tuple(dict.fromkeys(chosen))


class _Lock:
    """One worker per data directory: an exclusive ``flock`` on ``state/worker.lock``, held
    for the process's life (the kernel drops it when the process dies, even by SIGKILL), with
    the holder's pid written in the file for the refusal message."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / WORKER_LOCK
        self._fd: int | None = None

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(
                f"another worker (pid {holder}) holds {self.path}: one worker per data directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            # The pid stays in the file: harmless, and the file is not unlinked, since a
            # second worker may already hold an open descriptor of it.
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def run_worker(
    settings: Settings,
    *,
    symbols: Sequence[str] | None = None,
    interval_seconds: float | None = None,
    once: bool = False,
    stop: threading.Event | None = None,
    steps: Sequence[str] = STEPS,
    reporter: Reporter | None = None,
    client: BinanceClient | None = None,
    clock: Callable[[], int] | None = None,
    max_ticks: int | None = None,
) -> int:
    """Tick every ``interval_seconds`` (default ``settings.worker_interval_seconds``) until
    ``stop`` is set (or once); the exit status: 0, or 1 when ``once`` and its tick failed.

    Ticks start on a fixed cadence (start of the previous + interval); a tick longer than the
    interval skips the starts it overran. The wait between ticks ends at once on ``stop``.
    ``symbols`` None: ``settings.worker_symbols``, else the lake's symbols, looked up each
    tick (a symbol backfilled meanwhile joins). ``clock`` fixes each tick's "now" (demos).
    Raises UsageError when the data directory has another worker or there is nothing to watch.
    """
    stop = stop or threading.Event()
    reporter = reporter or Reporter(mode=settings.log_format)
    interval = (
        interval_seconds if interval_seconds is not None else settings.worker_interval_seconds
    )
    if not interval > 0:
        raise UsageError(f"interval_seconds must be > 0, got {interval:g}")
    if interval != settings.worker_interval_seconds:
        # Health judges the cadence against the interval the worker really ticks at.
        settings = settings.model_copy(update={"worker_interval_seconds": interval})
    resolve_symbols(settings, symbols)  # nothing to watch: refuse before taking the lock
    with _Lock(settings.state_dir):
        started_ms = _wall_ms()
        reporter.notice(
            "worker_start",
            f"worker started (pid {os.getpid()}), a tick every {interval:g} s",
            pid=os.getpid(),
            interval_seconds=interval,
            data_dir=str(settings.data_dir),
            base_url=settings.binance_base_url,
        )
        last: TickResult | None = None
        number = 0
        while not stop.is_set():
            number += 1
            tick_started = time.monotonic()
            try:
                watched = resolve_symbols(settings, symbols)
            except UsageError as error:  # the lake's symbols vanished: keep waiting for some
                reporter.event("tick_skipped", level="warning", tick=number, error=str(error))
            else:
                last = tick(
                    settings,
                    symbols=watched,
                    now_ms=clock() if clock is not None else None,
                    client=client,
                    stop=stop,
                    reporter=reporter,
                    number=number,
                    steps=steps,
                    interval_seconds=None if once else interval,
                    worker_started_ms=started_ms,
                )
            if once or stop.is_set() or (max_ticks is not None and number >= max_ticks):
                break
            wait = _next_wait(tick_started, time.monotonic(), interval)
            if wait.skipped:
                reporter.event(
                    "ticks_skipped",
                    level="warning",
                    tick=number,
                    skipped=wait.skipped,
                    message=f"tick {number} overran the interval: {wait.skipped} start(s) skipped",
                )
            if stop.wait(wait.seconds):
                break
        if last is not None:  # worker.json says the worker is gone (and when)
            last = dataclasses.replace(last, stopped_ms=_wall_ms())
            with contextlib.suppress(OSError):
                _write_state(settings.state_dir, last)
        reporter.notice(
            "worker_stop",
            f"worker stopped after {number} tick(s)",
            ticks=number,
            last_outcome=last.outcome if last is not None else None,
        )
    if once and last is not None and last.outcome == "error":
        return 1
    return 0


@dataclass(frozen=True)
class _Wait:
    seconds: float
    skipped: int


def _next_wait(tick_started: float, now: float, interval: float) -> _Wait:
    """Seconds to the next start on the cadence ``tick_started + k·interval`` (the first not
    in the past), and how many starts the tick overran."""
    elapsed = now - tick_started
    periods = max(1, math.ceil(elapsed / interval))
    return _Wait(seconds=max(0.0, tick_started + periods * interval - now), skipped=periods - 1)


# ---- the command --------------------------------------------------------------------------


class _StopSignals:
    """SIGTERM and SIGINT while the worker runs: the first sets ``stop`` (the running step winds
    down, the worker exits 0), a second exits at once with 128 + the signal.

    The handler only writes a byte to a pipe (it may run between any two bytecodes of the main
    thread, even inside a lock ``stop.set()`` would take); a thread reads the pipe, sets
    ``stop`` and logs the announcement.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, reporter: Reporter) -> None:
        self.stop = threading.Event()
        self.received: int | None = None
        self._reporter = reporter
        self._previous: dict[int, Any] = {}
        self._read, self._write = os.pipe()
        self._thread = threading.Thread(target=self._watch, name="worker-signals", daemon=True)

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        os.write(self._write, b"\0")
        self._thread.join()
        os.close(self._read)
        os.close(self._write)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            message = "second signal: exiting now, in the middle of the tick"
            line = self._reporter.json_line("exit_now", level="warning", message=message)
            os.write(2, (line if self._reporter.mode == "json" else message + "\n").encode())
            os._exit(128 + signum)
        self.received = signum
        os.write(self._write, bytes([signum]))

    def _watch(self) -> None:
        while True:
            byte = os.read(self._read, 1)
            if not byte or byte == b"\0":
                return
            name = signal.Signals(byte[0]).name
            self.stop.set()
            self._reporter.notice(
                "stopping",
                f"{name} received: finishing the running step, then exiting "
                "(send it again to exit now)",
                level="warning",
                signal=name,
            )


_LOG_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warning", "ERROR": "error"}


class _LogBridge(logging.Handler):
    """Records of Python's logging (the alerts and webhooks modules log there) as the worker's
    JSON lines: ingmon's own from INFO up, other libraries' from WARNING up."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(level=logging.INFO)
        self.reporter = reporter
        self._ingmon_level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reporter.event(
                "log",
                level=_LOG_LEVELS.get(record.levelname, "error"),
                logger=record.name,
                message=record.getMessage(),
            )
        except Exception:
            self.handleError(record)

    def __enter__(self) -> _LogBridge:
        self._ingmon_level = logging.getLogger("ingmon").level
        logging.getLogger("ingmon").setLevel(logging.INFO)
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)
        logging.getLogger("ingmon").setLevel(self._ingmon_level)


def _cmd_worker(args: argparse.Namespace) -> int:
    settings = settings_from(
        args,
        binance_base_url=args.base_url,
        binance_archive_url=args.archive_url,
        # The health model's expected cadence is the interval the worker really ticks at.
        worker_interval_seconds=args.interval_seconds,
    )
    steps = [
        name
        for name, off in (
            ("backfill", args.no_backfill),
            ("score", args.no_score),
            ("health", False),
            ("alerts", args.no_alerts),
            ("webhooks", args.no_alerts),
        )
        if not off
    ]
    symbols: list[str] = []
    for group in args.symbol or []:
        symbols.extend(s for s in group if s not in symbols)
    reporter = Reporter(mode=settings.log_format)
    with _LogBridge(reporter), _StopSignals(reporter) as signals:
        return run_worker(
            settings,
            symbols=symbols or None,
            interval_seconds=args.interval_seconds,
            once=args.once,
            stop=signals.stop,
            steps=steps,
            reporter=reporter,
        )


def register(subparsers: Any) -> None:
    """Add ``worker`` to the ``ingmon`` command tree."""
    worker = subparsers.add_parser(
        "worker",
        help="keep symbols fresh every interval: backfill, score, health, alerts (a daemon)",
        description=(
            "Every interval (INGMON_WORKER_INTERVAL_SECONDS, default 60 s) for the symbols: "
            "resume the backfill over the last INGMON_WORKER_CATCH_UP_DAYS days (only the "
            "missing tail is fetched), score the new closed bars, write state/health.json, "
            "evaluate the alert rules and deliver webhooks, and write state/worker.json. A "
            "failing step is logged and recorded and the loop carries on. One worker per data "
            "directory (state/worker.lock; a second exits 2). SIGTERM/SIGINT: the running step "
            "finishes its requests in flight and the partition it writes, then exit 0; a "
            "second signal exits at once. Logs: JSON lines on stderr (INGMON_LOG_FORMAT)."
        ),
    )
    add_data_dir(worker)
    worker.add_argument(
        "--symbol",
        action="append",
        type=symbol_list,
        metavar="SYM[,SYM…]",
        help="symbol(s), repeatable or comma-separated (default $INGMON_WORKER_SYMBOLS, else "
        "every symbol with candles in the lake)",
    )
    worker.add_argument(
        "--interval-seconds",
        type=positive_float,
        metavar="N",
        help="seconds between tick starts (default $INGMON_WORKER_INTERVAL_SECONDS or 60)",
    )
    worker.add_argument(
        "--once", action="store_true", help="run one tick and exit (1 if it failed)"
    )
    worker.add_argument(
        "--base-url",
        metavar="URL",
        help="REST base URL (default $INGMON_BINANCE_BASE_URL or https://fapi.binance.com)",
    )
    worker.add_argument(
        "--archive-url",
        metavar="URL",
        help="archive base URL, used only for whole published days of a long catch-up "
        "(default $INGMON_BINANCE_ARCHIVE_URL or https://data.binance.vision)",
    )
    worker.add_argument("--no-backfill", action="store_true", help="skip the backfill step")
    worker.add_argument("--no-score", action="store_true", help="skip the scoring step")
    worker.add_argument(
        "--no-alerts", action="store_true", help="skip alert evaluation and webhook delivery"
    )
    worker.set_defaults(handler=_cmd_worker)

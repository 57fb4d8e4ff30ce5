"""The worker's loop: a tick on a fixed cadence until stopped, one worker per data directory."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ingmon.binance.reporting import Reporter
from ingmon.errors import UsageError
from ingmon.times import now_ms as _wall_ms
from ingmon.worker.state import TickResult, write_worker_state
from ingmon.worker.steps import STEPS, tick

if TYPE_CHECKING:
    from ingmon.binance.client import BinanceClient
    from ingmon.config import Settings

__all__ = ["WORKER_LOCK", "resolve_symbols", "run_worker"]

WORKER_LOCK = "worker.lock"


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
                write_worker_state(settings.state_dir, last)
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

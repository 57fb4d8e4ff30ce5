"""``ingmon worker``: the command's flags, and the process around the loop (signals, logs)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

from ingmon.arguments import add_data_dir, positive_float, settings_from, symbol_list
from ingmon.binance.reporting import Reporter
from ingmon.worker.loop import run_worker

__all__ = ["register"]


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

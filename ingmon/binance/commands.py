"""Subcommands of the ``ingmon`` CLI for Binance data: backfill, check and export."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from ingmon.arguments import add_data_dir, iso_time, positive_days, settings_from, symbol_list
from ingmon.schema import INTERVAL_MS, MARKET_SERIES, OI_PERIODS

if TYPE_CHECKING:
    from ingmon.binance.reporting import Reporter

__all__ = ["register"]

EXIT_PROBLEMS = 1


def _symbols(args: argparse.Namespace) -> tuple[str, ...]:
    flat: list[str] = []
    for group in args.symbol or []:
        flat.extend(s for s in group if s not in flat)
    return tuple(flat)


def _settings(args: argparse.Namespace, *, reads_only: bool = False) -> Any:
    return settings_from(
        args,
        reads_only=reads_only,
        binance_base_url=getattr(args, "base_url", None),
        binance_archive_url=getattr(args, "archive_url", None),
    )


def _print_json(document: Any) -> None:
    """Indented for a person at a terminal; one line otherwise, so that a cron job appending
    to a file writes JSON lines (one document per run)."""
    json.dump(document, sys.stdout, indent=2 if sys.stdout.isatty() else None)
    sys.stdout.write("\n")


def _cmd_backfill(args: argparse.Namespace) -> int:
    from ingmon.binance.backfill import BackfillRequest, run_backfill  # noqa: PLC0415
    from ingmon.binance.limits import Aborted  # noqa: PLC0415
    from ingmon.binance.reporting import Reporter  # noqa: PLC0415

    settings = _settings(args)
    datasets = _kept_datasets(args)
    request = BackfillRequest(
        symbols=_symbols(args),
        window_days=args.window_days,
        start_ms=args.start,
        end_ms=args.end,
        full_refresh=args.full_refresh,
        datasets=datasets,
        interval=args.interval,
        oi_period=args.oi_period,
        source=args.source,
        concurrency=args.concurrency,
    )
    reporter = Reporter(mode=args.log_format or settings.log_format)
    with _Interrupts(reporter) as interrupts:
        try:
            summary = run_backfill(
                request, settings=settings, reporter=reporter, stop=interrupts.stop
            )
        except Aborted:
            reporter.notice(
                "interrupted",
                "interrupted before the backfill was planned: nothing was written",
                level="warning",
            )
            return interrupts.exit_status()
    # A run that completed all the same (the signal came after its last task) keeps its status.
    if summary.status == "interrupted":
        summary.stop_signal = interrupts.exit_status() - 128
    _print_json(summary.to_dict())
    return summary.exit_status


_INTERRUPT_ANNOUNCEMENTS = {
    signal.SIGINT: "interrupt received: finishing requests in flight, ctrl-c again to exit now",
    signal.SIGTERM: "SIGTERM received: finishing requests in flight, send it again to exit now",
}


class _Interrupts:
    """SIGINT and SIGTERM during a backfill (a context manager; the previous handlers return
    on exit): the first sets ``stop`` and is announced, a second exits at once.

    The handler runs on the main thread between two bytecodes, perhaps while it holds the
    reporter's lock or is inside a write to stderr, so it only sets events; the announcement
    is written by a thread of its own.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, reporter: Reporter) -> None:
        self.stop = threading.Event()
        self.received: int | None = None
        self._reporter = reporter
        self._previous: dict[int, Any] = {}
        self._noticed = threading.Event()
        self._finished = False
        self._announcer = threading.Thread(
            target=self._announce, name="backfill-interrupts", daemon=True
        )

    def __enter__(self) -> _Interrupts:
        # signal.signal works on the main thread only (main() called from a thread: no handlers).
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                # An ignored SIGINT (a background job of a script) stays ignored.
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        self._announcer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._finished = True
        self._noticed.set()
        self._announcer.join()

    def exit_status(self) -> int:
        """128 + the number of the signal received (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + (self.received if self.received is not None else signal.SIGINT)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            # Exit now, without the summary. os._exit skips all cleanup, so a worker may be
            # half-way through writing a partition: the lake stays consistent because a new
            # version becomes visible only by an atomic rename of the partition's link, after
            # the file is complete and synced; the *.tmp left behind is removed by the next
            # writer, and a resume refetches what was not committed.
            message = "second interrupt: exiting now, without a summary"
            if self._reporter.mode == "json":
                line = self._reporter.json_line("exit_now", level="warning", message=message)
            else:
                line = message + "\n"
            os.write(2, line.encode())
            os._exit(128 + signum)
        self.received = signum
        self.stop.set()
        self._noticed.set()

    def _announce(self) -> None:
        self._noticed.wait()
        if self._finished or self.received is None:
            return
        signum = signal.Signals(self.received)
        self._reporter.notice(
            "interrupt",
            _INTERRUPT_ANNOUNCEMENTS[signum],
            level="warning",
            signal=signum.name,
        )


def _cmd_check(args: argparse.Namespace) -> int:
    from ingmon.check import run_check  # noqa: PLC0415

    settings = _settings(args, reads_only=True)
    kept = _kept_datasets(args)
    report = run_check(
        settings,
        symbols=_symbols(args),
        window_days=args.window_days,
        end_ms=args.end,
        interval=args.interval,
        oi_period=args.oi_period,
        skip=tuple(name for name in MARKET_SERIES if name not in kept),
    )
    _print_json(report.to_dict())
    return report.exit_status


def _cmd_export(args: argparse.Namespace) -> int:
    from ingmon.export import export_snapshots  # noqa: PLC0415

    settings = _settings(args, reads_only=True)
    written = export_snapshots(
        settings,
        symbols=_symbols(args) or None,
        fmt=args.format,
        interval=args.interval,
        oi_period=args.oi_period,
        window_days=args.window_days,
    )
    _print_json({"format": args.format, "files": [str(p) for p in written]})
    return 0


def _kept_datasets(args: argparse.Namespace) -> tuple[str, ...]:
    """The datasets whose ``--skip-…`` flag was not given, in the canonical order."""
    return tuple(
        name
        for name, series in MARKET_SERIES.items()
        if not getattr(args, _skip_dest(series.skip_flag))
    )


def _skip_flags(parser: argparse.ArgumentParser, *, verb: str) -> None:
    """``--skip-candles`` … one per market dataset: leave it out on purpose."""
    group = parser.add_argument_group("datasets")
    for series in MARKET_SERIES.values():
        group.add_argument(
            series.skip_flag,
            action="store_true",
            help=f"do not {verb} {series.name.replace('_', ' ')}",
        )


def _url_flags(parser: argparse.ArgumentParser, *, purpose: str) -> None:
    """--base-url and --archive-url: the exchange the data is (or was) fetched from."""
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help=f"REST base URL {purpose} "
        "(default $INGMON_BINANCE_BASE_URL or https://fapi.binance.com)",
    )
    parser.add_argument(
        "--archive-url",
        metavar="URL",
        help=f"archive base URL {purpose} "
        "(default $INGMON_BINANCE_ARCHIVE_URL or https://data.binance.vision)",
    )


def _skip_dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def _data_flags(parser: argparse.ArgumentParser, *, output_alias: bool = False) -> None:
    flags = ("--data-dir", "--output") if output_alias else ("--data-dir",)
    add_data_dir(parser, flags=flags)


def _symbol_flag(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--symbol",
        action="append",
        type=symbol_list,
        required=required,
        metavar="SYM[,SYM…]",
        help="symbol(s), repeatable or comma-separated"
        + ("" if required else " (default: every stored symbol)"),
    )


def _series_flags(parser: argparse.ArgumentParser) -> None:
    """--interval and --oi-period: which candle and open-interest series a command works on."""
    parser.add_argument(
        "--interval", default="1m", choices=list(INTERVAL_MS), help="kline interval (default 1m)"
    )
    parser.add_argument(
        "--oi-period",
        default="5m",
        choices=list(OI_PERIODS),
        help="open-interest period (default 5m)",
    )


def register(subparsers: Any) -> None:
    """Add ``backfill``, ``check`` and ``export`` to the ``ingmon`` parser."""
    _register_backfill(subparsers)
    _register_check(subparsers)
    _register_export(subparsers)


def _register_backfill(subparsers: Any) -> None:
    """``ingmon backfill``: fetch into the lake."""
    backfill = subparsers.add_parser(
        "backfill",
        help="backfill 1m candles, aggregated trades, open interest and funding into the lake",
        description=(
            "Backfill Binance USD-M history into the lake: REST pages and data.binance.vision "
            "archives, paced to the exchange's weight limits, resumable and idempotent. Logs one "
            "line per batch on stderr (JSON lines unless stderr is a TTY, where progress bars are "
            "shown) and prints a JSON summary (schema ingmon.backfill.summary/v1) on stdout, "
            "one line unless stdout is a TTY. The window is half-open, [start, end). "
            "Exit 0 when the window is complete apart from exchange maintenance gaps, 1 when "
            "something could not be fetched or written (or the IP was banned), 2 on bad input or "
            "an unreachable exchange, 130/143 when stopped by SIGINT/SIGTERM (the summary then "
            "says interrupted; a second Ctrl-C exits at once; rerun to resume)."
        ),
    )
    _symbol_flag(backfill, required=True)
    when = backfill.add_argument_group("window (one of)")
    when.add_argument(
        "--window-days",
        type=positive_days,
        metavar="N",
        help="the window [now - N days, now) (or up to --end)",
    )
    when.add_argument(
        "--start", type=iso_time, metavar="ISO", help="window start, inclusive, ISO-8601 UTC"
    )
    when.add_argument(
        "--end",
        type=iso_time,
        metavar="ISO",
        help="window end, exclusive: --end 2026-11-01 stops before the 00:00 candle of that day "
        "(default: now, by the exchange's clock)",
    )
    mode = backfill.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        dest="full_refresh",
        action="store_false",
        help="continue from what is stored and fill missing ranges (default)",
    )
    mode.add_argument(
        "--full-refresh",
        dest="full_refresh",
        action="store_true",
        help="refetch the whole window and replace what is stored inside it",
    )
    backfill.set_defaults(full_refresh=False)
    _skip_flags(backfill, verb="fetch")
    _series_flags(backfill)
    _data_flags(backfill, output_alias=True)
    _url_flags(backfill, purpose="fetched from")
    backfill.add_argument(
        "--source",
        default="auto",
        choices=["auto", "rest", "archive"],
        help="auto: archive for published days, REST for the recent tail and "
        "what the archive lacks (default)",
    )
    backfill.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="parallel fetches (default 4; the weight budget is shared)",
    )
    backfill.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        default=None,
        help="stderr format (default $INGMON_LOG_FORMAT or auto)",
    )
    backfill.set_defaults(handler=_cmd_backfill)


def _register_check(subparsers: Any) -> None:
    """``ingmon check``: judge the lake."""
    check = subparsers.add_parser(
        "check",
        help="integrity check of the stored data (JSON; exit 1 on errors)",
        description=(
            "Check the lake for each symbol over the window [end - N days, end): counts, "
            "earliest/latest, gaps (candles by interval, open interest by period, funding by "
            "the symbol's interval, trades by aggregate-id continuity), known exchange gaps, "
            "duplicates, freshness against INGMON_<DATASET>_FRESHNESS_WARN/ERROR_SECONDS, and "
            "candle-vs-trade consistency. Prints JSON with a verdict: ok, warn (only freshness "
            "warnings) or error. Exit 0 for ok and warn, 1 for error, 2 for bad input. Every "
            "problem names its range and the exact command that repairs this lake (its data "
            "root, interval/period and exchange URLs)."
        ),
    )
    _symbol_flag(check, required=True)
    check.add_argument(
        "--window-days",
        type=positive_days,
        metavar="N",
        help="expect data over [end - N days, end) (default: everything stored before end)",
    )
    check.add_argument(
        "--end",
        type=iso_time,
        metavar="ISO",
        help="end of the window, exclusive, and the time freshness is judged at (default: now)",
    )
    _series_flags(check)
    _skip_flags(check, verb="check")
    _data_flags(check, output_alias=True)
    _url_flags(check, purpose="printed in repair commands")
    check.set_defaults(handler=_cmd_check)


def _register_export(subparsers: Any) -> None:
    """``ingmon export``: the runbook's snapshot files."""
    export = subparsers.add_parser(
        "export",
        help="write the runbook snapshot files (jsonl/csv) under <data root>/binance/",
        description=(
            "Write runbook-compatible snapshots: <data root>/binance/<symbol>_<interval>_candles"
            ".<fmt>, <symbol>_open_interest_<period>.<fmt>, <symbol>_funding.<fmt>, "
            "<symbol>_agg_trades.<fmt>; one JSON object per line (jsonl) with times in epoch ms, "
            "written atomically. With --window-days N the files are named for the window, "
            "<symbol>_<interval>_candles.last-<N>d.<fmt> and so on, and hold the rows of "
            "[now - N days, now): a partial export never replaces a full snapshot."
        ),
    )
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    _symbol_flag(export, required=False)
    _series_flags(export)
    export.add_argument(
        "--window-days",
        type=positive_days,
        metavar="N",
        help="only the last N days, [now - N days, now), written to files named "
        "<name>.last-<N>d.<fmt> beside the full snapshots (default: everything stored)",
    )
    _data_flags(export, output_alias=True)
    export.set_defaults(handler=_cmd_export)

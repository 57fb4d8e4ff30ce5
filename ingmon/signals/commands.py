"""The ``ingmon score`` subcommand: detect and score setups on the lake's data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ingmon.arguments import add_data_dir, iso_time, positive_days, settings_from, symbol_list
from ingmon.schema import SIGNAL_TIMEFRAMES
from ingmon.times import DAY_MS, now_ms

__all__ = ["code_version", "register"]


def code_version() -> str:
    """``ingmon <version>``, plus the git commit when running from a checkout."""
    from ingmon import __version__  # noqa: PLC0415 - the package imports this module lazily

    version = f"ingmon {__version__}"
    git = Path(__file__).resolve().parents[2] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = git / head.removeprefix("ref: ")
            head = ref.read_text().strip() if ref.exists() else ""
    except OSError:
        return version
    return f"{version}+g{head[:12]}" if head else version


def _cmd_score(args: argparse.Namespace) -> int:
    from ingmon.errors import UsageError  # noqa: PLC0415
    from ingmon.lake import Lake  # noqa: PLC0415
    from ingmon.signals.rules import SignalConfig  # noqa: PLC0415
    from ingmon.signals.store import require_candles, score_symbol  # noqa: PLC0415

    settings = settings_from(args, reads_only=True)
    clock = now_ms()
    end_ms = args.end if args.end is not None else clock
    start_ms = args.start
    if args.window_days is not None:
        start_ms = end_ms - round(args.window_days * DAY_MS)
    if start_ms is not None and start_ms >= end_ms:
        raise UsageError("start_ms must be before end_ms", field="start_ms")
    config = SignalConfig(timeframe=args.timeframe)
    lake = Lake(settings.lake_dir)
    symbols: list[str] = []
    for group in args.symbol:
        symbols.extend(s for s in group if s not in symbols)
    require_candles(lake, symbols)  # refuse before anything is written
    version = code_version()
    runs: list[dict[str, Any]] = []
    for symbol in symbols:
        run = score_symbol(
            lake,
            symbol,
            config=config,
            start_ms=start_ms,
            end_ms=end_ms,
            use_trades=not args.candle_delta,
            code_version=version,
        )
        runs.append(run.to_dict())
        if sys.stderr.isatty():
            print(
                f"ingmon score: {symbol} {config.timeframe}: {run.bars} bars, "
                f"{run.signals} signals ({run.signals_inserted} new)",
                file=sys.stderr,
            )
    json.dump({"runs": runs}, sys.stdout, indent=2 if sys.stdout.isatty() else None)
    sys.stdout.write("\n")
    return 0


def register(subparsers: Any) -> None:
    """Add ``score`` to the ``ingmon`` command tree."""
    score = subparsers.add_parser(
        "score",
        help="detect setups and score them 0–7 on the lake's data (incremental)",
        description=(
            "Detect squeeze, reversal and absorption setups on closed signal-timeframe bars "
            "built from the lake's 1m candles, open interest, funding and trades, score each "
            "0–7 and store the signals and their audit records in the lake (append-only). "
            "Without --window-days/--start the run is incremental: it scores only the bars "
            "after the last bar scored with the same rules. Prints one JSON document with a "
            "summary per symbol."
        ),
    )
    add_data_dir(score)
    score.add_argument(
        "--symbol",
        action="append",
        required=True,
        type=symbol_list,
        metavar="SYM[,SYM…]",
        help="symbol(s) to score (repeatable)",
    )
    when = score.add_mutually_exclusive_group()
    when.add_argument(
        "--window-days",
        type=positive_days,
        metavar="N",
        help="score the bars of [end - N days, end), scored before or not",
    )
    when.add_argument("--start", type=iso_time, metavar="ISO", help="first bar, ISO-8601 UTC")
    score.add_argument(
        "--end",
        type=iso_time,
        metavar="ISO",
        help="end of the window, exclusive (default: now; only closed bars are scored)",
    )
    score.add_argument(
        "--timeframe",
        choices=SIGNAL_TIMEFRAMES,
        default="15m",
        help="signal timeframe, resampled from closed 1m bars (default 15m)",
    )
    score.add_argument(
        "--candle-delta",
        action="store_true",
        help="take order flow from the candles' taker-buy volume only (skip reading trades)",
    )
    score.set_defaults(handler=_cmd_score)

"""The ``ingmon backtest`` subcommand: lake signals or files in, a summary table and files out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingmon.arguments import (
    add_data_dir,
    checked,
    int_in,
    iso_time,
    non_negative_float,
    positive_days,
    positive_float,
    positive_int,
    settings_from,
    symbol_list,
)
from ingmon.errors import UsageError
from ingmon.schema import INTERVAL_MS, SIGNAL_TIMEFRAMES

if TYPE_CHECKING:
    from ingmon.backtest.run import BacktestRun

__all__ = ["DEFAULT_HOLD_BARS", "register"]

# With no exit option a position would be held to the end of the data: 4 hours of 1m bars.
DEFAULT_HOLD_BARS = 240
_EXIT_OPTIONS = ("hold_bars", "stop_pct", "take_profit_pct", "stop_atr", "take_profit_atr")
MAX_SLIPPAGE_BPS = 1000.0  # 10 %: beyond it a fill is not a fill
MAX_FRACTION = 100.0  # 100× equity
MAX_MONEY = 1e15


@checked
def _percent(text: str) -> float:
    """A percentage in (0, 100) → a fraction."""
    value = float(positive_float(text))
    if value >= 100:
        raise ValueError(f"{text} must be < 100 (a percentage)")
    return value / 100


@checked
def _fee_rate(text: str) -> float:
    value = float(non_negative_float(text))
    if value >= 0.1:
        raise ValueError(f"{text} is a fraction per side (0.0005 = 0.05 %), must be < 0.1")
    return value


def _at_most(parse: Any, high: float, *, inclusive: bool, what: str) -> Any:
    """An argparse type: ``parse`` (already one-line on bad input), then an upper bound."""

    def bounded(text: str) -> float:
        value = float(parse(text))
        if value > high or (not inclusive and value == high):
            raise argparse.ArgumentTypeError(
                f"{text} must be {'<=' if inclusive else '<'} {high:g} ({what})"
            )
        return value

    bounded.__name__ = getattr(parse, "__name__", "number")
    return bounded


@checked
def _formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in ("json", "csv")]
    if unknown or not names:
        raise ValueError(f"invalid format {','.join(unknown) or text!r}: expected json, csv")
    return names


def _words(choices: tuple[str, ...] | None = None) -> Any:
    @checked
    def words(text: str) -> list[str]:
        out = [part.strip() for part in text.split(",") if part.strip()]
        if not out:
            raise ValueError("empty list")
        if choices is not None:
            bad = [word for word in out if word not in choices]
            if bad:
                raise ValueError(f"invalid choice {bad[0]!r}: expected {', '.join(choices)}")
        return out

    return words


def register(subparsers: Any) -> None:
    """Add ``backtest`` to the ``ingmon`` command tree."""
    parser = subparsers.add_parser(
        "backtest",
        help="backtest signals on 1m candles: lake signals or CSV/Parquet files",
        description="Backtest signals with next-open entries, stops/targets/time exits, taker "
        "fees, slippage and funding; metrics over the whole data and trailing windows. "
        "Lake mode: --symbol (the signal engine's signals, the lake's 1m candles and funding). "
        "File mode: --candles FILE --signals FILE [--funding FILE]. Prints a summary table and "
        "writes summary.json, trades.csv and equity.csv into --out. Bad input: one line, exit 2.",
    )
    add_data_dir(parser)
    source = parser.add_argument_group("data")
    source.add_argument("--symbol", type=symbol_list, metavar="SYM", help="symbol (lake mode)")
    source.add_argument("--candles", type=Path, metavar="FILE", help="OHLCV file (file mode)")
    source.add_argument("--signals", type=Path, metavar="FILE", help="signals file (file mode)")
    source.add_argument("--funding", type=Path, metavar="FILE", help="funding file (file mode)")
    source.add_argument(
        "--timeframe",
        metavar="TF",
        help="signal bar length: lake mode reads the signals of this timeframe, one of "
        f"{', '.join(SIGNAL_TIMEFRAMES)} (default 15m); file mode: the signals' bar length, "
        "any kline interval (default: the candles' interval)",
    )
    source.add_argument(
        "--window-days",
        type=positive_days,
        nargs="+",
        default=[30, 60, 90],
        metavar="N",
        help="trailing windows in days (default 30 60 90), ending at --end (lake mode, default "
        "now) or at the last candle's close (file mode); a window the data does not fill is "
        "flagged partial_data",
    )
    source.add_argument(
        "--rolling-days",
        type=positive_days,
        metavar="N",
        help="also consecutive rolling (walk-forward) windows of N days",
    )
    source.add_argument(
        "--end",
        type=iso_time,
        help="lake mode: end of the data and of the windows (default now)",
    )
    filters = parser.add_argument_group("signal filters")
    filters.add_argument("--setup", type=_words(), action="extend", help="setup(s), comma list")
    filters.add_argument(
        "--min-score", type=int_in(0, 7, name="score"), metavar="N", help="minimum score 0–7"
    )
    filters.add_argument(
        "--confidence", type=_words(("high", "medium", "low")), action="extend", help="tag(s)"
    )
    filters.add_argument("--direction", choices=("both", "long", "short"), default="both")
    fills = parser.add_argument_group("fills and costs")
    fills.add_argument("--fee-rate", type=_fee_rate, default=0.0005, help="per side (0.0005)")
    fills.add_argument(
        "--slippage-bps",
        type=_at_most(non_negative_float, MAX_SLIPPAGE_BPS, inclusive=False, what="bps per side"),
        default=0.0,
        help="per side, < 1000",
    )
    fills.add_argument(
        "--hold-bars",
        type=positive_int,
        metavar="N",
        help="time exit at the open of the Nth 1m bar after the entry bar (1m bars whatever "
        f"--timeframe); without any exit option (--hold-bars, --stop-*, --take-profit-*, "
        f"--signal-levels) the default is --hold-bars {DEFAULT_HOLD_BARS}",
    )
    fills.add_argument("--stop-pct", type=_percent, metavar="P", help="stop at P %% from entry")
    fills.add_argument("--take-profit-pct", type=_percent, metavar="P", help="target at P %%")
    fills.add_argument("--stop-atr", type=positive_float, metavar="K", help="stop at K × ATR")
    fills.add_argument("--take-profit-atr", type=positive_float, metavar="K", help="K × ATR")
    fills.add_argument(
        "--signal-levels", action="store_true", help="use the signals' own stop/target levels"
    )
    fills.add_argument(
        "--entry-delay",
        type=positive_int,
        default=1,
        metavar="BARS",
        help="enter at the open of the Nth 1m bar after the signal is known (default 1: the "
        "next 1m bar)",
    )
    fills.add_argument("--opposite", choices=("ignore", "close", "reverse"), default="ignore")
    fills.add_argument("--sizing", choices=("notional", "fraction"), default="notional")
    money = _at_most(positive_float, MAX_MONEY, inclusive=True, what="quote currency")
    fills.add_argument("--notional", type=money, default=10_000.0, help="<= 1e15")
    fills.add_argument(
        "--fraction",
        type=_at_most(positive_float, MAX_FRACTION, inclusive=True, what="times equity"),
        default=1.0,
        help="of equity per trade, <= 100",
    )
    fills.add_argument("--initial-equity", type=money, default=10_000.0, help="<= 1e15")
    out = parser.add_argument_group("output")
    out.add_argument("--export", type=_formats, default=("json", "csv"), help="json,csv")
    out.add_argument(
        "--out", type=Path, metavar="DIR", help="directory (default: DATA/backtests/RUN)"
    )
    out.add_argument("--no-save", action="store_true", help="do not record the run in the lake")
    parser.set_defaults(handler=_cmd_backtest)


def _cmd_backtest(args: argparse.Namespace) -> int:
    # Heavy imports only when the command runs: `ingmon --help` stays fast.
    from ingmon.backtest.engine import BacktestConfig  # noqa: PLC0415
    from ingmon.times import now_ms  # noqa: PLC0415

    notes = []
    hold_bars = args.hold_bars
    if not args.signal_levels and all(getattr(args, name) is None for name in _EXIT_OPTIONS):
        hold_bars = DEFAULT_HOLD_BARS
        notes.append(
            f"no exit option given: default --hold-bars {DEFAULT_HOLD_BARS} "
            f"(time exit {DEFAULT_HOLD_BARS} 1m bars after entry)"
        )
    config = BacktestConfig(
        entry_delay_bars=args.entry_delay,
        hold_bars=hold_bars,
        stop_pct=args.stop_pct,
        take_profit_pct=args.take_profit_pct,
        stop_atr=args.stop_atr,
        take_profit_atr=args.take_profit_atr,
        signal_levels=args.signal_levels,
        opposite=args.opposite,
        directions=args.direction,
        fee_rate=args.fee_rate,
        slippage_bps=args.slippage_bps,
        sizing=args.sizing,
        notional=args.notional,
        fraction=args.fraction,
        initial_equity=args.initial_equity,
    )
    file_mode = args.candles is not None or args.signals is not None
    symbols = args.symbol or []
    if len(symbols) > 1:
        raise UsageError("give one --symbol per backtest")
    settings = settings_from(args, reads_only=not file_mode)
    created = now_ms()
    if file_mode:
        run, written = _backtest_files(args, config, settings, created, notes)
    else:
        run, written = _backtest_lake(args, config, settings, created, notes)
    print(summary_table(run))
    for path in written:
        print(f"wrote {path}")
    sys.stdout.flush()
    return 0


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "setup": args.setup or [],
        "min_score": args.min_score,
        "confidence": args.confidence or [],
        "direction": args.direction,
    }


def _backtest_files(
    args: argparse.Namespace, config: Any, settings: Any, created: int, notes: list[str]
) -> tuple[BacktestRun, list[Path]]:
    """File mode: every file read and checked, the run computed, then saved, then exported."""
    from ingmon.backtest.engine import Bars, Funding  # noqa: PLC0415
    from ingmon.backtest.export import save_run, write_exports  # noqa: PLC0415
    from ingmon.backtest.files import read_candles, read_funding, read_signals  # noqa: PLC0415
    from ingmon.backtest.run import run_backtests  # noqa: PLC0415
    from ingmon.lake import Lake  # noqa: PLC0415

    if args.candles is None or args.signals is None:
        raise UsageError("file mode needs both --candles FILE and --signals FILE")
    if args.end is not None:
        raise UsageError("--end applies to lake mode; trim the files instead")
    if args.timeframe is not None and args.timeframe not in INTERVAL_MS:
        raise UsageError(
            f"argument --timeframe: invalid interval {args.timeframe!r}: expected one of "
            f"{', '.join(INTERVAL_MS)}"
        )
    filters = _filters(args)
    candles = read_candles(args.candles)
    bars = Bars.from_frame(candles)
    timeframe_ms = INTERVAL_MS[args.timeframe] if args.timeframe else bars.bar_ms
    signals = read_signals(args.signals, candles=candles, timeframe_ms=timeframe_ms)
    signals = _filter_file_signals(signals, filters)
    funding = Funding.from_frame(read_funding(args.funding) if args.funding else None)
    run = run_backtests(
        bars,
        signals,
        config=config,
        funding=funding,
        window_days=tuple(args.window_days),
        rolling_days=args.rolling_days,
        symbol=args.symbol[0] if args.symbol else "FILE",
        source="file",
        timeframe=args.timeframe,
        filters=filters,
        created_at_ms=created,
        notes=tuple(notes),
    )
    if not args.no_save:
        save_run(Lake(settings.lake_dir), run)
    written = write_exports(
        run, args.out or settings.data_dir / "backtests" / run.run_id, args.export
    )
    return run, written


def _backtest_lake(
    args: argparse.Namespace, config: Any, settings: Any, created: int, notes: list[str]
) -> tuple[BacktestRun, list[Path]]:
    """Lake mode: the signal engine's signals of one symbol, windows anchored at --end/now."""
    from ingmon.backtest.lake import backtest_lake  # noqa: PLC0415
    from ingmon.lake import Lake  # noqa: PLC0415
    from ingmon.signals.setups import SETUPS  # noqa: PLC0415

    if not args.symbol:
        raise UsageError("give --symbol SYM (lake mode) or --candles and --signals files")
    if args.funding is not None:
        raise UsageError("--funding FILE applies to file mode; lake mode reads the lake's")
    timeframe = args.timeframe or "15m"
    if timeframe not in SIGNAL_TIMEFRAMES:
        raise UsageError(
            f"argument --timeframe: invalid signal timeframe {timeframe!r}: expected one of "
            f"{', '.join(SIGNAL_TIMEFRAMES)}"
        )
    unknown = [setup for setup in args.setup or [] if setup not in SETUPS]
    if unknown:
        raise UsageError(
            f"argument --setup: unknown setup {unknown[0]!r}: expected one of {', '.join(SETUPS)}"
        )
    done = backtest_lake(
        Lake(settings.lake_dir),
        args.symbol[0],
        config=config,
        timeframe=timeframe,
        window_days=tuple(args.window_days),
        rolling_days=args.rolling_days,
        end_ms=args.end if args.end is not None else created,
        exports_root=settings.data_dir / "backtests",
        out_dir=args.out,
        formats=args.export,
        save=not args.no_save,
        setups=args.setup or (),
        min_score=args.min_score,
        confidences=args.confidence or (),
        direction=args.direction,
        created_at_ms=created,
        notes=notes,
    )
    return done.run, done.written


def _filter_file_signals(signals: Any, filters: dict[str, Any]) -> Any:
    keep = signals["time"] == signals["time"]
    if filters["setup"]:
        if "setup" not in signals:
            raise UsageError("--setup needs a setup column in the signals file")
        keep &= signals["setup"].isin(filters["setup"])
    if filters["min_score"] is not None:
        if "score" not in signals:
            raise UsageError("--min-score needs a score column in the signals file")
        keep &= signals["score"].fillna(-1) >= filters["min_score"]
    if filters["confidence"]:
        if "confidence" not in signals:
            raise UsageError("--confidence needs a confidence column in the signals file")
        keep &= signals["confidence"].isin(filters["confidence"])
    return signals[keep].reset_index(drop=True)


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{value * 100:+.2f}%"
    if kind == "rate":
        return f"{value * 100:.2f}%"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "int":
        return f"{int(value)}"
    return f"{value + 0.0:,.2f}"  # + 0.0: no "-0.00"


_ROWS = (
    ("trades", "trades", "int"),
    ("hit rate", "hit_rate", "rate"),
    ("expectancy / trade", "expectancy", "pct"),
    ("expectancy (R)", "expectancy_r", "ratio"),
    ("profit factor", "profit_factor", "ratio"),
    ("payoff ratio", "payoff_ratio", "ratio"),
    ("total return", "total_return", "pct"),
    ("max drawdown", "max_drawdown", "rate"),
    ("drawdown days", "max_drawdown_days", "ratio"),
    ("sharpe (daily, √365)", "sharpe", "ratio"),
    ("sortino", "sortino", "ratio"),
    ("calmar", "calmar", "ratio"),
    ("exposure", "exposure", "rate"),
    ("fees paid", "fees", "money"),
    ("funding paid", "funding_paid", "money"),
    ("buy and hold", "buy_and_hold", "pct"),
)


def summary_table(run: BacktestRun) -> str:
    """The one-screen table: one column per window, one row per headline metric, flags below."""
    reports = [run.overall, *run.windows]
    names = ["all", *(report.window.label for report in run.windows)]
    width = 22
    lines = [
        f"backtest {run.run_id}  {run.symbol}  {run.source}"
        + (f" {run.timeframe}" if run.timeframe else "")
        + f"  {run.data['start']} .. {run.data['end']}",
        f"{'':<{width}}" + "".join(f"{name:>12}" for name in names),
    ]
    for label, key, kind in _ROWS:
        cells = "".join(f"{_cell(report.metrics.get(key), kind):>12}" for report in reports)
        lines.append(f"{label:<{width}}{cells}")
    for name, report in zip(names, reports, strict=True):
        if report.flags:
            lines.append(f"flags {name}: {', '.join(report.flags)}")
    skipped = {k: v for k, v in run.overall.result.skipped.items() if v}
    if skipped:
        lines.append("skipped signals: " + ", ".join(f"{k} {v}" for k, v in skipped.items()))
    ignored = run.overall.result.own_levels_ignored
    if ignored:
        lines.append(
            f"own levels ignored: {ignored} (a signal's stop/target on the wrong side of the "
            "entry fill, or not a positive price)"
        )
    rules_version = run.filters.get("rules_version")
    if rules_version:
        lines.append(f"scores: rules version {rules_version}")
    lines.extend(f"note: {note}" for note in run.notes)
    return "\n".join(lines)

"""Subcommands of the `ingmon` CLI that belong to ingmon.exchange: ``ingmon exchange serve``."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from ingmon.arguments import (
    checked,
    int_in,
    iso_time,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    symbol_list,
)

__all__ = ["register"]

_EPILOG_HEAD = """\
examples:
  ingmon exchange serve --symbols BTCUSDT,ETHUSDT,SOLUSDT --days 30 --seed 7
  ingmon exchange serve --port 0 --frozen-at 2024-06-01T00:00:00Z --no-limits
  ingmon exchange serve --limit-scale 0.1 --fault klines=503@0.1 --fault aggTrades=ok,timeout,ok

REST under /fapi/v1 and /futures/data, the data.binance.vision archive under /data/futures/um.

"""


def register(subparsers: Any) -> None:
    """Add ``ingmon exchange serve`` to the `ingmon` parser."""
    from ingmon.exchange.faults import FAULT_SYNTAX  # noqa: PLC0415 - keep `ingmon --help` fast

    exchange = subparsers.add_parser(
        "exchange",
        help="the local Binance USD-M compatible exchange (for the demo and tests)",
        description="The local Binance USD-M compatible exchange.",
    )
    commands = exchange.add_subparsers(
        dest="exchange_command", metavar="COMMAND", parser_class=type(exchange)
    )
    commands.required = True
    serve = commands.add_parser(
        "serve",
        help="serve REST + archive for a seeded simulated market",
        description="Serve a seeded simulated market over HTTP/1.1 like fapi.binance.com and "
        "data.binance.vision, until interrupted (SIGINT/SIGTERM).",
        epilog=_EPILOG_HEAD + FAULT_SYNTAX,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _market_flags(serve)
    _clock_flags(serve)
    _limits_flags(serve)
    _rest_flags(serve)
    _archive_flags(serve)
    _faults_flags(serve)
    serve.set_defaults(handler=_cmd_serve)
    _register_facts(commands)


def _market_flags(serve: argparse.ArgumentParser) -> None:
    """Where it listens and which market it serves."""
    market = serve.add_argument_group("market")
    market.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    market.add_argument(
        "--port",
        type=int_in(0, 65_535, name="port"),
        default=9100,
        help="TCP port, 0 = any free one (default 9100)",
    )
    market.add_argument(
        "--symbols",
        type=symbol_list,
        default=["BTCUSDT", "ETHUSDT", "SOLUSDT"],
        metavar="SYM,SYM,...",
        help="perpetual symbols (default BTCUSDT,ETHUSDT,SOLUSDT)",
    )
    market.add_argument(
        "--days", type=positive_int, default=30, help="days of history before now (default 30)"
    )
    market.add_argument("--seed", type=int, default=7, help="market seed (default 7)")


def _clock_flags(serve: argparse.ArgumentParser) -> None:
    """Real or frozen time."""
    clock = serve.add_argument_group("clock")
    clock.add_argument(
        "--frozen-at",
        type=iso_time,
        metavar="ISO|MS",
        help="freeze the market clock at this instant (default: real time)",
    )
    clock.add_argument(
        "--clock-offset-seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="shift the real-time clock by S seconds (ignored with --frozen-at)",
    )


def _limits_flags(serve: argparse.ArgumentParser) -> None:
    """Binance's weight windows, 429/418 escalation."""
    limits = serve.add_argument_group("rate limits (windows run on real time)")
    limits.add_argument(
        "--no-limits",
        action="store_true",
        help="never answer 429/418 and advertise an unlimited weight (weights still counted)",
    )
    limits.add_argument(
        "--limit-scale",
        type=positive_float,
        default=1.0,
        metavar="F",
        help="multiply window lengths and ban durations by F (e.g. 0.1: 6 s weight window)",
    )
    limits.add_argument(
        "--weight-limit", type=positive_int, default=2400, metavar="N", help="weight per window"
    )
    limits.add_argument(
        "--weight-window-seconds",
        type=positive_int,
        default=60,
        metavar="S",
        help="weight window before scaling (default 60 → X-MBX-USED-WEIGHT-1M)",
    )
    limits.add_argument(
        "--ban-after",
        type=non_negative_int,
        default=5,
        metavar="N",
        help="requests tolerated after a 429 before a 418 ban (default 5)",
    )
    limits.add_argument(
        "--ban-seconds",
        type=positive_float,
        default=120.0,
        metavar="S",
        help="first ban length before scaling, doubling per repeat (default 120)",
    )


def _rest_flags(serve: argparse.ArgumentParser) -> None:
    """REST details that differ between Binance's docs and its behaviour."""
    rest = serve.add_argument_group("REST behaviour")
    rest.add_argument(
        "--limit-policy",
        choices=("reject", "clamp"),
        default="reject",
        help="out-of-range limit: 400/-1130 (default) or clamp",
    )
    rest.add_argument(
        "--agg-trades-retention-hours",
        type=positive_float,
        default=365 * 24.0,
        metavar="H",
        help="REST aggTrades history depth; older requests get recent trades (default 8760 = 1y)",
    )
    rest.add_argument(
        "--oi-timestamp",
        choices=("int", "string"),
        default="int",
        help="JSON type of openInterestHist timestamp (default int)",
    )
    rest.add_argument(
        "--oi-anchor",
        choices=("end", "start"),
        default="end",
        help="which rows of an openInterestHist window a limit keeps (default end: latest)",
    )
    rest.add_argument(
        "--funding-jitter-ms",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="fundingTime lands 0..N ms after the hour (deterministic; default 0)",
    )


def _archive_flags(serve: argparse.ArgumentParser) -> None:
    """The data.binance.vision layout."""
    archive = serve.add_argument_group("archive (data.binance.vision)")
    archive.add_argument(
        "--archive-delay-hours",
        type=non_negative_float,
        default=6.0,
        metavar="H",
        help="a day/month is published H hours after it ends (default 6)",
    )
    archive.add_argument(
        "--archive-header-from",
        type=iso_time,
        metavar="ISO|MS",
        help="klines/aggTrades files from this date on have a header row "
        "(default: the middle of the history)",
    )
    archive.add_argument(
        "--archive-compress-level",
        type=int_in(0, 9, name="compress level"),
        default=1,
        metavar="0-9",
        help="deflate level of the zips (default 1; 0 stores them, fastest)",
    )
    archive.add_argument(
        "--archive-sorted",
        action="store_true",
        help="keep monthly aggTrades rows sorted (default: blocks shuffled, as on Binance)",
    )


def _faults_flags(serve: argparse.ArgumentParser) -> None:
    """Injected faults."""
    faults = serve.add_argument_group("faults (syntax below)")
    faults.add_argument(
        "--fault",
        action="append",
        type=_fault,
        default=[],
        metavar="ROUTE=SPEC",
        help="inject faults on a route (repeatable), e.g. klines=503@0.1",
    )
    faults.add_argument(
        "--fault-file",
        metavar="PATH",
        help="JSON fault schedule (see FaultSchedule.from_json); its rules come first",
    )
    faults.add_argument(
        "--fault-seed", type=int, default=None, metavar="N", help="seed of fault draws (default 0)"
    )
    faults.add_argument(
        "--fault-timeout-delay",
        type=non_negative_float,
        default=None,
        metavar="S",
        help="how long a 'timeout' response is held back (default 5)",
    )
    faults.add_argument(
        "--fault-retry-after",
        type=positive_int,
        default=None,
        metavar="S",
        help="Retry-After of injected 429/418 (default 1)",
    )


_FACTS_DEFAULT_NOW = "2024-06-01T00:00:00Z"


def _register_facts(commands: Any) -> None:
    """Add ``ingmon exchange facts``: the stylized-facts report of a seeded market."""
    facts = commands.add_parser(
        "facts",
        help="measure the simulated market's stylized facts against real-market bands",
        description="Measure the stylized facts of a seeded simulated market (docs/simulator.md,\n"
        "'Stylized facts') from its served candles, trades, open interest, funding and planted\n"
        "episodes. Prints a table on stdout, or JSON (schema ingmon.exchange.facts/v1) with\n"
        "--json; the format never depends on whether stdout is a terminal.",
        epilog="example:\n  ingmon exchange facts --symbols BTCUSDT,ETHUSDT --days 90 --seed 7\n\n"
        "ok = the value's 99 % confidence interval meets the band; info = no band.\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    facts.add_argument(
        "--symbols",
        type=symbol_list,
        default=["BTCUSDT", "ETHUSDT"],
        metavar="SYM,SYM,...",
        help="symbols; the first is the correlation reference (default BTCUSDT,ETHUSDT)",
    )
    facts.add_argument(
        "--days", type=_facts_days, default=90, help="days measured before --now (default 90)"
    )
    facts.add_argument("--seed", type=int, default=7, help="market seed (default 7)")
    facts.add_argument(
        "--now",
        type=iso_time,
        default=_FACTS_DEFAULT_NOW,
        metavar="ISO|MS",
        help=f"market clock: the window ends at this day's start (default {_FACTS_DEFAULT_NOW}, "
        "so a seed always gives the same table)",
    )
    facts.add_argument(
        "--json", action="store_true", help="print the report as JSON instead of the table"
    )
    facts.set_defaults(handler=_cmd_facts)


_facts_days = int_in(2, 100_000, name="days")


def _cmd_facts(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from ingmon.exchange.facts import measure_facts  # noqa: PLC0415 - numpy import is slow
    from ingmon.exchange.market import Market  # noqa: PLC0415

    market = Market.demo(symbols=args.symbols, days=args.days, seed=args.seed, now_ms=args.now)
    report = measure_facts(market, symbols=args.symbols, days=args.days)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ingmon.exchange.archive import ArchiveOptions  # noqa: PLC0415 - numpy import is slow
    from ingmon.exchange.clock import Clock, FrozenClock, RealClock  # noqa: PLC0415
    from ingmon.exchange.faults import FaultSchedule  # noqa: PLC0415
    from ingmon.exchange.formats import HOUR_MS  # noqa: PLC0415
    from ingmon.exchange.limits import Limits  # noqa: PLC0415
    from ingmon.exchange.market import Market  # noqa: PLC0415
    from ingmon.exchange.routes import RestOptions  # noqa: PLC0415
    from ingmon.exchange.server import ExchangeServer  # noqa: PLC0415

    clock: Clock
    if args.frozen_at is not None:
        clock = FrozenClock(args.frozen_at)
    else:
        clock = RealClock(offset_ms=round(args.clock_offset_seconds * 1000))
    limits = Limits(
        enabled=not args.no_limits,
        weight_per_window=args.weight_limit,
        window_seconds=float(args.weight_window_seconds),
        requests_before_ban=args.ban_after,
        ban_seconds=args.ban_seconds,
    ).scaled(args.limit_scale)
    base = FaultSchedule() if args.fault_file is None else FaultSchedule.from_json(args.fault_file)
    schedule = FaultSchedule(
        rules=(*base.rules, *args.fault),
        seed=base.seed if args.fault_seed is None else args.fault_seed,
        timeout_delay_seconds=(
            base.timeout_delay_seconds
            if args.fault_timeout_delay is None
            else args.fault_timeout_delay
        ),
        retry_after_seconds=(
            base.retry_after_seconds if args.fault_retry_after is None else args.fault_retry_after
        ),
        duplicate_rows=base.duplicate_rows,
        outside_rows=base.outside_rows,
    )
    market = Market.demo(
        symbols=args.symbols, days=args.days, seed=args.seed, now_ms=clock.now_ms()
    )
    delay_ms = round(args.archive_delay_hours * HOUR_MS)
    server = ExchangeServer(
        market,
        clock=clock,
        limits=limits,
        faults=schedule,
        rest=RestOptions(
            limit_policy=args.limit_policy,
            agg_trades_retention_ms=round(args.agg_trades_retention_hours * HOUR_MS),
            oi_timestamp_as_string=args.oi_timestamp == "string",
            oi_anchor=args.oi_anchor,
            funding_jitter_ms=args.funding_jitter_ms,
        ),
        archive=ArchiveOptions(
            daily_delay_ms=delay_ms,
            monthly_delay_ms=delay_ms,
            header_from_ms=args.archive_header_from,
            monthly_agg_trades_sorted=args.archive_sorted,
            compress_level=args.archive_compress_level,
        ),
        host=args.host,
        port=args.port,
    ).start()

    def stop(signum: int, frame: object) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"ingmon exchange: serving {','.join(args.symbols)} ({args.days} days, seed {args.seed}) "
        f"on {server.base_url}",
        flush=True,
    )
    server.wait()
    print("ingmon exchange: stopped", file=sys.stderr, flush=True)
    return 0


@checked
def _fault(text: str) -> Any:
    from ingmon.exchange.faults import parse_fault_spec  # noqa: PLC0415

    return parse_fault_spec(text)

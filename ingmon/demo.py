"""``make demo``: the end-to-end path on embedded defaults, as far as the landed features reach.

Today: a local Binance-compatible exchange (seeded simulator, real HTTP on 127.0.0.1) →
backfill of candles, aggregated trades, open interest and funding into the Parquet lake →
integrity check → runbook snapshot export. No network beyond loopback.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ingmon.config import Settings

__all__ = ["DEMO_SYMBOLS", "run_demo"]

DEMO_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def _say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def _dataset_line(name: str, stats: dict[str, Any]) -> str:
    return (
        f"  {name:<14} fetched {stats['fetched']:>10,}  inserted {stats['inserted']:>10,}  "
        f"requests {stats['requests']:>5}  archive files {stats['archive_files']:>4}  "
        f"{stats['records_per_second'] or 0:>12,.0f} rows/s"
    )


def run_demo(settings: Settings, *, days: int, seed: int, port: int = 0) -> int:
    """Serve a simulated market, backfill ``days`` of it, check and export; return exit status."""
    from ingmon.binance.backfill import BackfillRequest, run_backfill  # noqa: PLC0415
    from ingmon.binance.reporting import Reporter  # noqa: PLC0415
    from ingmon.check import run_check  # noqa: PLC0415
    from ingmon.exchange import ExchangeServer, Limits, Market, RealClock  # noqa: PLC0415
    from ingmon.export import export_snapshots  # noqa: PLC0415

    now_ms = int(time.time() * 1000)
    market = Market.demo(symbols=DEMO_SYMBOLS, days=days, seed=seed, now_ms=now_ms)
    # Loopback needs no pacing: with limits off the exchange advertises an unlimited weight,
    # which the client follows on default settings (docs/operations.md, "Local exchange").
    unlimited = Limits(enabled=False)
    with ExchangeServer(market, clock=RealClock(), limits=unlimited, port=port) as server:
        _say(
            f"local exchange on {server.base_url} "
            f"({', '.join(DEMO_SYMBOLS)}, {days} days, seed {seed})"
        )
        settings = settings.model_copy(
            update={
                "binance_base_url": server.base_url,
                "binance_archive_url": server.base_url,
            }
        )
        request = BackfillRequest(symbols=DEMO_SYMBOLS, window_days=days)
        _say(f"backfilling into {settings.lake_dir} …")
        summary = run_backfill(request, settings=settings, reporter=Reporter(mode="text")).to_dict()
    _say(f"backfill {summary['status']} in {summary['duration_seconds']:.1f} s:")
    for name, stats in summary["datasets"].items():
        print(_dataset_line(name, stats), file=sys.stderr)
    for problem in summary["problems"]:
        _say(f"problem: {json.dumps(problem)}")
    check = run_check(settings, symbols=DEMO_SYMBOLS, end_ms=int(time.time() * 1000)).to_dict()
    _say(f"integrity check: {check['status']} ({len(check['problems'])} problems)")
    for symbol, datasets in check["symbols"].items():
        for name, info in datasets.items():
            if "rows" in info:
                print(
                    f"  {symbol:<8} {name:<14} rows {info['rows']:>10,}  "
                    f"{info['earliest']} → {info['latest']}  gaps {info['gaps']}  "
                    f"exchange gaps {info['exchange_gaps']}",
                    file=sys.stderr,
                )
    files = export_snapshots(settings, symbols=DEMO_SYMBOLS, fmt="jsonl")
    _say(f"exported {len(files)} snapshot files to {settings.data_dir / 'binance'}")
    json.dump({"backfill": summary["status"], "check": check["status"]}, sys.stdout)
    sys.stdout.write("\n")
    return 0 if summary["exit_status"] == 0 and not check["problems"] else 1

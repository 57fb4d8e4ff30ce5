"""``make demo``: the end-to-end path on embedded defaults, as far as the landed features reach.

Today: a local Binance-compatible exchange (seeded simulator, real HTTP on 127.0.0.1) →
backfill of candles, aggregated trades, open interest and funding into the Parquet lake →
integrity check → runbook snapshot export → signals scored 0–7 into the lake → each symbol's
signals backtested (saved runs + JSON/CSV exports) → the first health snapshot
(``state/health.json``, what ``ingmon serve`` shows). No network beyond loopback.

The demo's data root carries a marker file (``ingmon-demo.json``) naming the market it holds,
so a rerun continues that market, a rerun with another seed is refused instead of mixing two
markets in one lake, and ``--fresh`` may wipe the lake: it never touches a root without one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ingmon.binance.reporting import Reporter
from ingmon.config import Settings
from ingmon.errors import UsageError
from ingmon.times import DAY_MS, iso_ms, now_ms

__all__ = ["DEMO_MARKER", "DEMO_SYMBOLS", "SIMULATED_FRESHNESS", "run_demo"]

DEMO_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DEMO_MARKER = "ingmon-demo.json"
_MARKER_SCHEMA = "ingmon.demo/v1"

# The simulated market trades ~20x less often than Binance (docs/simulator.md): a symbol can go
# a minute without a trade, so Binance's trade-freshness thresholds (15 s / 60 s) would call a
# healthy demo lake stale. Applied unless INGMON_AGG_TRADES_FRESHNESS_* are set.
SIMULATED_FRESHNESS = {
    "agg_trades_freshness_warn_seconds": 120.0,
    "agg_trades_freshness_error_seconds": 300.0,
}


def _say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def _dataset_line(name: str, stats: dict[str, Any]) -> str:
    return (
        f"  {name:<14} fetched {stats['fetched']:>10,}  inserted {stats['inserted']:>10,}  "
        f"requests {stats['requests']:>5}  archive files {stats['archive_files']:>4}  "
        f"{stats['records_per_second'] or 0:>12,.0f} rows/s"
    )


def _read_marker(path: Path) -> dict[str, Any] | None:
    """The marker's parameters, ``{}`` when it exists but cannot be read, None when absent."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        marker = json.loads(text)
    except ValueError:
        return {}
    return marker if isinstance(marker, dict) else {}


def _write_marker(path: Path, marker: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(marker, indent=2) + "\n")
    os.replace(tmp, path)


def _prepare_root(
    settings: Settings, *, seed: int, days: int, symbols: Sequence[str], fresh: bool
) -> int:
    """Check the data root holds this demo's market (or nothing); return the market's listing.

    The simulated market depends on its listing day as well as the seed, so a rerun reuses the
    recorded listing: tomorrow's demo, or one with more ``--days``, then extends the same market
    rather than stitching a different one onto the stored history.
    """
    root = settings.data_dir
    marker_path = root / DEMO_MARKER
    marker = _read_marker(marker_path)
    if marker is None:
        lake = settings.lake_dir
        if lake.is_dir() and any(lake.iterdir()):
            raise UsageError(
                f"{root} holds a lake the demo did not write (no {DEMO_MARKER}); "
                "give the demo a --data-dir of its own"
            )
    elif fresh:
        _say(f"--fresh: removing the demo lake and snapshots under {root}")
        for written in (settings.lake_dir, root / "binance"):
            if written.exists():
                shutil.rmtree(written)
        marker_path.unlink()
        marker = None
    elif not isinstance(marker.get("seed"), int) or not isinstance(marker.get("listing_ms"), int):
        raise UsageError(f"{marker_path} is unreadable; add --fresh to wipe the demo lake")
    elif marker["seed"] != seed:
        raise UsageError(
            f"{root} holds the demo market of seed {marker['seed']}, not {seed}; rerun with "
            f"--seed {marker['seed']} to continue it, or add --fresh to wipe it and start over"
        )
    if marker is not None:
        listing_ms: int = marker["listing_ms"]
        return listing_ms
    listing_ms = (now_ms() // DAY_MS - days) * DAY_MS
    root.mkdir(parents=True, exist_ok=True)
    _write_marker(
        marker_path,
        {
            "schema": _MARKER_SCHEMA,
            "seed": seed,
            "days": days,
            "symbols": list(symbols),
            "listing_ms": listing_ms,
            "listed_at": iso_ms(listing_ms),
            "created_at": iso_ms(now_ms()),
        },
    )
    return listing_ms


class _LineReporter(Reporter):
    """JSON mode without the JSON: no bars, and only warnings and errors, as plain lines."""

    def event(self, event: str, *, level: str = "info", **fields: Any) -> None:
        if level in ("warning", "error"):
            detail = " ".join(f"{key}={value}" for key, value in fields.items())
            with self._lock:
                print(f"[demo] {level}: {event} {detail}", file=self.stream, flush=True)


def _reporter(settings: Settings) -> Reporter:
    """Progress bars on a terminal; off one (CI, a pipe), one plain line per warning or problem.

    Per-batch JSON lines would bury the demo's own summary in a CI log, and bars would fill it
    with escape codes; ``INGMON_LOG_FORMAT=json|text`` still picks a mode explicitly.
    """
    if settings.log_format != "auto":
        return Reporter(mode=settings.log_format)
    if sys.stderr.isatty():
        return Reporter(mode="text")
    return _LineReporter(mode="json")


def _score(settings: Settings, symbols: Sequence[str]) -> int:
    """Score every symbol incrementally (a rerun scores only the new bars); total signals."""
    from ingmon.lake import Lake  # noqa: PLC0415
    from ingmon.signals import SignalConfig, score_symbol  # noqa: PLC0415
    from ingmon.signals.commands import code_version  # noqa: PLC0415

    lake = Lake(settings.lake_dir)
    total = 0
    for symbol in symbols:
        run = score_symbol(lake, symbol, config=SignalConfig(), code_version=code_version())
        total += run.signals_inserted
        setups = ", ".join(f"{name} {count}" for name, count in run.by_setup.items()) or "none"
        _say(
            f"scored {symbol} {run.timeframe}: {run.bars} new bars, {run.signals_inserted} "
            f"new signals ({setups})"
        )
    return total


def _backtest(settings: Settings, symbols: Sequence[str], *, days: int) -> list[str]:
    """Backtest every symbol's signals with ``REPORT_BRACKET``, the bracket of
    docs/backtesting.md (stop 1 ATR, target 1.5 ATR, 4 h time exit, taker fees, 1 bp slippage,
    funding) over trailing windows that fit the demo's history; save each run in the lake and
    export it. Run ids."""
    from ingmon.backtest import REPORT_BRACKET  # noqa: PLC0415
    from ingmon.backtest.lake import backtest_lake  # noqa: PLC0415
    from ingmon.lake import Lake  # noqa: PLC0415

    lake = Lake(settings.lake_dir)
    windows = tuple(float(n) for n in (7, 14, 30, 60, 90) if n <= days) or (float(days),)
    end_ms = now_ms()
    run_ids = []
    for symbol in symbols:
        run = backtest_lake(
            lake,
            symbol,
            config=REPORT_BRACKET,
            timeframe="15m",
            window_days=windows,
            end_ms=end_ms,
            exports_root=settings.data_dir / "backtests",
        ).run
        run_ids.append(run.run_id)
        metrics = run.overall.metrics
        hit_rate = metrics.get("hit_rate")
        expectancy = metrics.get("expectancy")
        _say(
            f"backtested {symbol}: {metrics['trades']} trades over {days} days, hit rate "
            f"{'–' if hit_rate is None else f'{hit_rate:.2f}'}, expectancy "
            f"{'–' if expectancy is None else f'{expectancy * 1e4:+.1f} bps'} after fees "
            f"and funding, max drawdown {metrics.get('max_drawdown', 0.0) * 100:.1f} % "
            f"({settings.data_dir / 'backtests' / run.run_id})"
        )
    return run_ids


def _health(settings: Settings, symbols: Sequence[str]) -> str:
    """Write the first health snapshot (what ``ingmon serve`` shows until a worker runs) and
    return its status."""
    from ingmon.lake import Lake  # noqa: PLC0415
    from ingmon.monitor.health import build_snapshot, write_snapshot  # noqa: PLC0415

    snapshot = build_snapshot(Lake(settings.lake_dir), settings, symbols=symbols, now_ms=now_ms())
    path = write_snapshot(settings.state_dir, snapshot)
    counts = ", ".join(f"{count} {status}" for status, count in snapshot.counts().items() if count)
    _say(f"health snapshot: {snapshot.status} ({counts}) in {path}")
    _say(
        f"look at it: ingmon serve --data-dir {settings.data_dir} → http://localhost:8080/dashboard"
    )
    return snapshot.status


def run_demo(
    settings: Settings,
    *,
    days: int,
    seed: int,
    symbols: Sequence[str] = DEMO_SYMBOLS,
    fresh: bool = False,
    port: int = 0,
) -> int:
    """Serve a simulated market, backfill ``days`` of it, check and export; return exit status.

    Raises UsageError, before writing anything, when the data root holds another market.
    """
    from ingmon.binance.backfill import BackfillRequest, run_backfill  # noqa: PLC0415
    from ingmon.check import run_check  # noqa: PLC0415
    from ingmon.exchange import ExchangeServer, Limits, Market, RealClock  # noqa: PLC0415
    from ingmon.export import export_snapshots  # noqa: PLC0415

    symbols = tuple(symbols)
    listing_ms = _prepare_root(settings, seed=seed, days=days, symbols=symbols, fresh=fresh)
    started_ms = now_ms()
    market_days = started_ms // DAY_MS - listing_ms // DAY_MS
    if market_days < days:
        _say(
            f"this demo market starts {iso_ms(listing_ms)}: backfilling {market_days} days, "
            f"not {days} (add --fresh for a longer history)"
        )
    market = Market.demo(symbols=symbols, days=market_days, seed=seed, now_ms=started_ms)
    # Loopback needs no pacing: with limits off the exchange advertises an unlimited weight,
    # which the client follows on default settings (docs/operations.md, "Local exchange").
    unlimited = Limits(enabled=False)
    with ExchangeServer(market, clock=RealClock(), limits=unlimited, port=port) as server:
        _say(
            f"local exchange on {server.base_url} ({', '.join(symbols)}, {days} days, seed {seed})"
        )
        own = {k: v for k, v in SIMULATED_FRESHNESS.items() if k not in settings.model_fields_set}
        settings = settings.model_copy(
            update={
                "binance_base_url": server.base_url,
                "binance_archive_url": server.base_url,
                **own,
            }
        )
        request = BackfillRequest(symbols=symbols, window_days=min(days, market_days))
        _say(f"backfilling into {settings.lake_dir} …")
        summary = run_backfill(request, settings=settings, reporter=_reporter(settings)).to_dict()
    _say(f"backfill {summary['status']} in {summary['duration_seconds']:.1f} s:")
    for name, stats in summary["datasets"].items():
        print(_dataset_line(name, stats), file=sys.stderr)
    for problem in summary["problems"]:
        _say(f"problem: {json.dumps(problem)}")
    check = run_check(settings, symbols=symbols, end_ms=now_ms()).to_dict()
    # The exchange stops with the backfill, so the newest rows age while the check runs: a
    # freshness warning is expected here, and only an error verdict fails the demo.
    verdict = check.get("verdict", "error" if check["problems"] else "ok")
    _say(f"integrity check: {verdict} ({len(check['problems'])} problems)")
    for problem in check["problems"]:
        _say(
            f"problem: {problem['symbol']} {problem['dataset']} {problem['kind']}: "
            f"{problem.get('message', '')}"
        )
    for symbol, datasets in check["symbols"].items():
        for name, info in datasets.items():
            if "rows" in info:
                print(
                    f"  {symbol:<8} {name:<14} rows {info['rows']:>10,}  "
                    f"{info['earliest']} → {info['latest']}  gaps {info['gaps']}  "
                    f"exchange gaps {info['exchange_gaps']}",
                    file=sys.stderr,
                )
    files = export_snapshots(settings, symbols=symbols, fmt="jsonl")
    _say(f"exported {len(files)} snapshot files to {settings.data_dir / 'binance'}")
    signals = _score(settings, symbols)
    runs = _backtest(settings, symbols, days=min(days, market_days))
    health = _health(settings, symbols)
    json.dump(
        {
            "backfill": summary["status"],
            "check": verdict,
            "signals_new": signals,
            "backtests": runs,
            "health": health,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0 if summary["exit_status"] == 0 and verdict != "error" else 1

"""``make demo``: the end-to-end path on embedded defaults, as far as the landed features reach.

Today: a local Binance-compatible exchange (seeded simulator, real HTTP on 127.0.0.1) →
backfill of candles, aggregated trades, open interest and funding into the Parquet lake →
integrity check → runbook snapshot export → signals scored 0–7 into the lake → each symbol's
signals backtested (saved runs + JSON/CSV exports) → the first health snapshot
(``state/health.json``, what ``ingmon serve`` shows). No network beyond loopback.

With ``--serve`` (what ``make demo`` runs) the exchange keeps running in real time after the
set-up, and two child processes watch it: ``ingmon worker`` (a tick every
``DEMO_WORKER_INTERVAL_SECONDS``: the new candles, trades, open interest and funding, the new
signals scored, health and alerts) and ``ingmon serve`` (the dashboard, the API, Prometheus).
Each runs in its own session with its log under ``<data_dir>/logs/``; Ctrl-C (SIGINT) or
SIGTERM stops both (their process groups) and the exchange, and the demo exits 0.

The demo's data root carries a marker file (``ingmon-demo.json``) naming the market it holds,
so a rerun continues that market, a rerun with another seed is refused instead of mixing two
markets in one lake, and ``--fresh`` may wipe the lake: it never touches a root without one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from ingmon.binance.reporting import Reporter
from ingmon.config import Settings
from ingmon.errors import UsageError
from ingmon.times import DAY_MS, iso_ms, now_ms

__all__ = [
    "DEMO_MARKER",
    "DEMO_SYMBOLS",
    "DEMO_WORKER_INTERVAL_SECONDS",
    "SIMULATED_FRESHNESS",
    "run_demo",
]

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

# --serve: the worker ticks often enough that freshness and new signals move while you watch.
DEMO_WORKER_INTERVAL_SECONDS = 20.0
# How long the server may take to answer /liveness, and a child to stop once asked.
_READY_SECONDS = 180.0
_STOP_SECONDS = 30.0
_POLL_SECONDS = 0.2


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


def _health(settings: Settings, symbols: Sequence[str], *, serve: bool) -> str:
    """Write the first health snapshot (what ``ingmon serve`` shows until a worker runs) and
    return its status."""
    from ingmon.lake import Lake  # noqa: PLC0415
    from ingmon.monitor.health import build_snapshot, write_snapshot  # noqa: PLC0415

    snapshot = build_snapshot(Lake(settings.lake_dir), settings, symbols=symbols, now_ms=now_ms())
    path = write_snapshot(settings.state_dir, snapshot)
    counts = ", ".join(f"{count} {status}" for status, count in snapshot.counts().items() if count)
    _say(f"health snapshot: {snapshot.status} ({counts}) in {path}")
    if not serve:
        _say(
            f"look at it: ingmon serve --data-dir {settings.data_dir} → "
            "http://localhost:8080/dashboard (or run the demo with --serve)"
        )
    return snapshot.status


# ---- --serve: the worker and the server beside the live exchange ------------------------------


class _Signals:
    """SIGINT/SIGTERM while the children run: the handler only counts (no lock, no I/O); the
    main loop polls the count. The first signal stops everything cleanly, a second one while
    stopping kills the children's groups at once."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)


@dataclass
class _Child:
    """One child process of the demo (its own session, so its own process group)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 12) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _ingmon_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "ingmon.cli", *args]


def _child_environment(settings: Settings) -> dict[str, str]:
    """The demo's environment, plus the settings the demo chose itself (the data root and the
    simulated market's trade freshness) so the worker judges health as the demo did."""
    env = dict(os.environ)
    env["INGMON_DATA_DIR"] = str(settings.data_dir.resolve())
    for name in SIMULATED_FRESHNESS:
        env[f"INGMON_{name.upper()}"] = f"{getattr(settings, name):g}"
    return env


def _spawn(name: str, argv: list[str], *, env: dict[str, str], log: Path) -> _Child:
    with log.open("ab") as sink:
        sink.write(f"\n--- ingmon demo started {name}: {' '.join(argv)}\n".encode())
        sink.flush()
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return _Child(name, process, log)


def _liveness(url: str) -> bool:
    import httpx  # noqa: PLC0415

    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _exited(children: Sequence[_Child]) -> _Child | None:
    return next((child for child in children if child.process.poll() is not None), None)


def _report_exit(child: _Child) -> None:
    _say(
        f"{child.name} (pid {child.process.pid}) exited with status {child.process.returncode}; "
        f"the end of {child.log}:"
    )
    for line in child.tail().splitlines():
        print(f"  {line}", file=sys.stderr, flush=True)


def _stop_children(children: Sequence[_Child], signals: _Signals) -> None:
    """SIGTERM to every child's process group, then wait (a second Ctrl-C, or
    ``_STOP_SECONDS`` without exiting: SIGKILL); say what stopped."""
    received = len(signals.received)
    for child in children:
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_SECONDS
    killed: set[str] = set()
    while any(child.process.poll() is None for child in children):
        if len(signals.received) > received + 1 or time.monotonic() > deadline:
            for child in children:
                if child.process.poll() is None:
                    killed.add(child.name)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.process.pid, signal.SIGKILL)
            for child in children:
                child.process.wait()
            break
        time.sleep(_POLL_SECONDS)
    for child in children:
        # The group may hold grandchildren the leader left behind: nothing of it stays.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
        how = "killed" if child.name in killed else f"exit status {child.process.returncode}"
        _say(f"stopped {child.name} (pid {child.process.pid}, {how}); its log: {child.log}")


def _serve_live(
    settings: Settings,
    *,
    symbols: Sequence[str],
    exchange_url: str,
    port: int,
    summary: dict[str, Any],
    out: IO[str],
) -> int:
    """Start ``ingmon worker`` and ``ingmon serve``, print the URL, run until SIGINT/SIGTERM
    (or a child dies), stop both. 0 after a clean stop, 1 when a child failed."""
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = _child_environment(settings)
    data_dir = str(settings.data_dir.resolve())
    worker_argv = _ingmon_argv(
        "worker",
        "--data-dir",
        data_dir,
        "--symbol",
        ",".join(symbols),
        "--interval-seconds",
        f"{DEMO_WORKER_INTERVAL_SECONDS:g}",
        "--base-url",
        exchange_url,
        "--archive-url",
        exchange_url,
    )
    serve_argv = _ingmon_argv("serve", "--data-dir", data_dir, "--port", str(port))
    host = settings.server_host
    probe_host = "127.0.0.1" if host in ("", "0.0.0.0", "::", "localhost") else host
    shown_host = "localhost" if probe_host == "127.0.0.1" else host
    url = f"http://{shown_host}:{port}/dashboard"
    children: list[_Child] = []
    with _Signals() as signals:
        try:
            children.append(_spawn("ingmon worker", worker_argv, env=env, log=logs / "worker.log"))
            children.append(_spawn("ingmon serve", serve_argv, env=env, log=logs / "serve.log"))
            for child in children:
                _say(f"started {child.name} (pid {child.process.pid}), log: {child.log}")
            _say(f"waiting for the server on port {port} …")
            deadline = time.monotonic() + _READY_SECONDS
            while not signals.received:
                failed = _exited(children)
                if failed is not None:
                    _report_exit(failed)
                    return 1
                if _liveness(f"http://{probe_host}:{port}/liveness"):
                    break
                if time.monotonic() > deadline:
                    _say(f"the server did not answer in {_READY_SECONDS:.0f} s; see {logs}")
                    return 1
                time.sleep(_POLL_SECONDS)
            if signals.received:
                return 0
            json.dump(
                {
                    **summary,
                    "dashboard": url,
                    "exchange": exchange_url,
                    "pids": {"worker": children[0].process.pid, "serve": children[1].process.pid},
                    "logs": {"worker": str(children[0].log), "serve": str(children[1].log)},
                },
                out,
            )
            out.write("\n")
            out.flush()
            _say(
                f"the worker ticks every {DEMO_WORKER_INTERVAL_SECONDS:g} s: new candles, trades, "
                "open interest and funding, new signals scored, health and alerts"
            )
            _say(f"dashboard: {url}   (API: http://{shown_host}:{port}/api/health)")
            _say("press Ctrl-C to stop the worker, the server and the local exchange")
            while not signals.received:
                failed = _exited(children)
                if failed is not None:
                    _report_exit(failed)
                    return 1
                time.sleep(_POLL_SECONDS)
            name = signal.Signals(signals.received[0]).name
            _say(f"{name} received: stopping (Ctrl-C again to kill at once)")
            return 0
        finally:
            _stop_children(children, signals)


def run_demo(
    settings: Settings,
    *,
    days: int,
    seed: int,
    symbols: Sequence[str] = DEMO_SYMBOLS,
    fresh: bool = False,
    port: int = 0,
    serve: bool = False,
    serve_port: int | None = None,
) -> int:
    """Serve a simulated market, backfill ``days`` of it, check, export, score, backtest and
    write the first health snapshot; return the exit status.

    ``port`` is the local exchange's (0: any free one). ``serve``: then keep the exchange
    running in real time with ``ingmon worker`` and ``ingmon serve`` (on ``serve_port``, default
    ``settings.server_port``) beside it until SIGINT/SIGTERM (see the module's docstring).

    Raises UsageError, before writing anything, when the data root holds another market or the
    dashboard's port is taken.
    """
    from ingmon.binance.backfill import BackfillRequest, run_backfill  # noqa: PLC0415
    from ingmon.exchange import ExchangeServer, Limits, Market, RealClock  # noqa: PLC0415

    symbols = tuple(symbols)
    if serve_port is not None and not serve:
        raise UsageError("--port is the dashboard's port: it needs --serve")
    dashboard_port = settings.server_port if serve_port is None else serve_port
    if serve:
        from ingmon.serving import check_port_free  # noqa: PLC0415

        check_port_free(settings.server_host, dashboard_port)
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
    with contextlib.ExitStack() as running:
        server = running.enter_context(
            ExchangeServer(market, clock=RealClock(), limits=unlimited, port=port)
        )
        _say(
            f"local exchange on {server.base_url} ({', '.join(symbols)}, {days} days, seed {seed}"
            f"{', live' if serve else ''})"
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
        if not serve:
            running.close()  # the exchange stops with the backfill
        verdicts, exit_status = _after_backfill(
            settings, symbols, summary, days=min(days, market_days), serve=serve
        )
        if not serve:
            json.dump(verdicts, sys.stdout)
            sys.stdout.write("\n")
            return exit_status
        served = _serve_live(
            settings,
            symbols=symbols,
            exchange_url=server.base_url,
            port=dashboard_port,
            summary=verdicts,
            out=sys.stdout,
        )
        _say(f"stopped the local exchange ({server.base_url})")
    return served or exit_status


def _after_backfill(
    settings: Settings,
    symbols: Sequence[str],
    summary: dict[str, Any],
    *,
    days: int,
    serve: bool,
) -> tuple[dict[str, Any], int]:
    """Report the backfill, check, export, score, backtest and write the health snapshot; the
    demo's verdicts (printed as JSON) and its exit status."""
    from ingmon.check import run_check  # noqa: PLC0415
    from ingmon.export import export_snapshots  # noqa: PLC0415

    _say(f"backfill {summary['status']} in {summary['duration_seconds']:.1f} s:")
    for name, stats in summary["datasets"].items():
        print(_dataset_line(name, stats), file=sys.stderr)
    for problem in summary["problems"]:
        _say(f"problem: {json.dumps(problem)}")
    check = run_check(settings, symbols=symbols, end_ms=now_ms()).to_dict()
    # Without --serve the exchange stops with the backfill, so the newest rows age while the
    # check runs: a freshness warning is expected here, and only an error verdict fails the demo.
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
    runs = _backtest(settings, symbols, days=days)
    health = _health(settings, symbols, serve=serve)
    verdicts = {
        "backfill": summary["status"],
        "check": verdict,
        "signals_new": signals,
        "backtests": runs,
        "health": health,
    }
    return verdicts, 0 if summary["exit_status"] == 0 and verdict != "error" else 1

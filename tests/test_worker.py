"""The worker: each tick resumes the backfill (only the tail is fetched), scores new bars, writes
health.json and worker.json; a failing step is recorded and the loop carries on; one worker per
data directory; SIGTERM stops it promptly with exit 0 and an intact lake."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from exchange._support import NOW_MS, small_market

from ingmon.binance.client import BinanceClient
from ingmon.binance.limits import RateLimits
from ingmon.binance.reporting import Reporter
from ingmon.cli import main
from ingmon.config import Settings, load_settings
from ingmon.demo import SIMULATED_FRESHNESS
from ingmon.exchange import ExchangeServer, FaultSchedule, FrozenClock, Limits, Market
from ingmon.lake import Lake
from ingmon.monitor import health as health_module
from ingmon.monitor.health import read_snapshot
from ingmon.schema import INGEST_LOG
from ingmon.worker import TickResult, read_worker_state, run_worker, tick
from ingmon.worker.loop import _next_wait
from tests.monitor._lake import NOW_MS as LAKE_NOW_MS
from tests.monitor._lake import healthy_lake

SYMBOL = "BTCUSDT"
MINUTE_MS = 60_000
DAY_MS = 86_400_000
# From a signal to the worker's exit: a prompt stop takes well under a second here.
STOP_BOUND_SECONDS = 10.0
POLL_SECONDS = 0.02
# (dataset, param, time column) of the series a backfill writes.
SERIES = (
    ("candles", "1m", "open_time"),
    ("agg_trades", None, "transact_time"),
    ("open_interest", "5m", "timestamp"),
    ("funding", None, "funding_time"),
)


@pytest.fixture(scope="module")
def market() -> Market:
    """The small seeded market of the backfill tests (few trades per minute)."""
    return small_market(seed=7)


@pytest.fixture
def exchange(market: Market) -> Iterator[ExchangeServer]:
    """The local exchange on loopback, frozen at NOW_MS (the test moves its clock)."""
    with ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=Limits(enabled=False)) as server:
        yield server


@pytest.fixture
def client(exchange: ExchangeServer) -> Iterator[BinanceClient]:
    """A client of the exchange with millisecond backoffs and no pacing of its own."""
    made = BinanceClient(
        exchange.base_url,
        archive_url=exchange.base_url,
        timeout_seconds=5.0,
        max_retries=2,
        backoff_base_seconds=0.005,
        backoff_cap_seconds=0.02,
        limits=RateLimits(weight_per_window=10**9),
    )
    yield made
    made.close()


def _settings(data_dir: Path, server: ExchangeServer, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "binance_base_url": server.base_url,
        "binance_archive_url": server.base_url,
        "worker_catch_up_days": 1,
        "log_format": "json",
        **SIMULATED_FRESHNESS,
    }
    options.update(overrides)
    return load_settings(env_file=None, **options)


def _expected_rows(market: Market, *, start_ms: int, now_ms: int) -> dict[str, int]:
    """The simulator's rows of each series in [start_ms, now_ms) that the exchange serves as
    final at now_ms: closed candles, trades, snapshots and settlements (counted from the
    market's own arrays, not through the exchange or the client)."""
    first_minute = -(-start_ms // MINUTE_MS) * MINUTE_MS
    last_closed = (now_ms - MINUTE_MS) // MINUTE_MS * MINUTE_MS
    return {
        "candles": len(market.klines(SYMBOL, "1m", first_minute, last_closed, now_ms=now_ms)),
        "agg_trades": len(market.agg_trades(SYMBOL, start_ms, now_ms - 1)),
        "open_interest": len(market.open_interest(SYMBOL, "5m", start_ms, now_ms - 1)),
        "funding": len(market.funding(SYMBOL, start_ms, now_ms - 1)),
    }


def _stored_rows(lake: Lake) -> dict[str, int]:
    return {
        name: lake.read(name, symbols=SYMBOL, param=param, columns=[column]).num_rows
        for name, param, column in SERIES
    }


def _newest(lake: Lake) -> dict[str, int]:
    newest = {}
    for name, param, column in SERIES:
        times = lake.read(name, symbols=SYMBOL, param=param, columns=[column])[column]
        newest[name] = int(pc.max(times.cast("int64")).as_py())
    return newest


def _candle_freshness(state_dir: Path) -> Any:
    snapshot = read_snapshot(state_dir)
    assert snapshot is not None
    (candles,) = [s for s in snapshot.series if s.dataset == "candles" and s.symbol == SYMBOL]
    return candles.freshness


def _tick(
    settings: Settings,
    client: BinanceClient,
    now_ms: int,
    *,
    log: io.StringIO | None = None,
    **options: Any,
) -> TickResult:
    log = log if log is not None else io.StringIO()
    start = len(log.getvalue())
    result = tick(
        settings,
        symbols=options.pop("symbols", [SYMBOL]),
        now_ms=now_ms,
        client=client,
        reporter=Reporter(mode="json", stream=log),
        **options,
    )
    # One line when the tick starts, one per step, one when it ends.
    lines = log.getvalue()[start:].splitlines()
    events = [json.loads(line)["event"] for line in lines]
    events = [name for name in events if name in ("tick_start", "step", "tick")]
    assert events == ["tick_start", *["step"] * len(result.steps), "tick"]
    return result


# ---- one tick after another, in process ------------------------------------------------------


def test_ticks_backfill_the_catch_up_window_then_only_the_tail_and_score_new_bars(
    market: Market, exchange: ExchangeServer, client: BinanceClient, tmp_path: Path
) -> None:
    """On an empty lake a tick backfills the 1-day catch-up window, scores it and writes
    health.json and worker.json; 12 exchange minutes later the next tick fetches only the new
    tail (small batches, each at or after what was stored), scores the one new 15m bar, and the
    lake equals the simulator's rows; candles are fresh."""
    settings = _settings(tmp_path, exchange)
    lake = Lake(settings.lake_dir)
    first = _tick(settings, client, NOW_MS)

    assert first.outcome == "ok", first.to_dict()
    window_start = NOW_MS - DAY_MS
    assert _stored_rows(lake) == _expected_rows(market, start_ms=window_start, now_ms=NOW_MS)
    state = read_worker_state(settings.state_dir)
    assert state is not None
    assert state["outcome"] == "ok" and state["tick"] == 1 and state["pid"] == os.getpid()
    assert state["started_ms"] == NOW_MS and state["finished_ms"] >= NOW_MS
    assert state["symbols"] == [SYMBOL]
    assert list(state["steps"]) == ["backfill", "score", "health", "alerts", "webhooks"]
    assert all(step["ok"] and step["seconds"] >= 0 for step in state["steps"].values())
    # NOW is 12:34:56.789: the last closed 15m bar opens at 12:15 (12:30 closes at 12:45).
    scored = state["steps"]["score"]["symbols"][SYMBOL]
    assert scored["last_bar"] == "2024-03-05T12:15:00.000Z" and scored["bars"] > 0
    assert (settings.state_dir / "health.json").is_file()

    stored_before = _newest(lake)
    batches_before = lake.read(INGEST_LOG, symbols=SYMBOL).num_rows
    later = exchange.clock.advance(12 * MINUTE_MS)  # 12:46:56.789
    second = _tick(settings, client, later, number=2)

    assert second.outcome == "ok", second.to_dict()
    assert _stored_rows(lake) == _expected_rows(market, start_ms=window_start, now_ms=later)
    run_id = second.steps["backfill"].details["symbols"][SYMBOL]["run_id"]
    log = lake.read(INGEST_LOG, symbols=SYMBOL)
    assert log.num_rows > batches_before
    new = [row for row in log.to_pylist() if row["run_id"] == run_id]
    assert len(new) == log.num_rows - batches_before
    expected_new = {
        name: count - _expected_rows(market, start_ms=window_start, now_ms=NOW_MS)[name]
        for name, count in _expected_rows(market, start_ms=window_start, now_ms=later).items()
    }
    for row in new:
        if row["rows_inserted"]:  # nothing new before the tail
            first_ms = int(row["first_event_time"].timestamp() * 1000)
            assert first_ms >= stored_before[row["dataset"]], row
        # Beyond the tail, at most one stored row is read again: the trades' id anchors at
        # the head of the moved window and at the last stored id.
        assert row["rows_fetched"] <= expected_new[row["dataset"]] + 1, row
    assert sum(row["rows_fetched"] for row in new) <= sum(expected_new.values()) + len(new)
    inserted = dict.fromkeys(expected_new, 0)
    for row in new:
        inserted[row["dataset"]] += row["rows_inserted"]
    assert inserted == expected_new
    assert expected_new["candles"] == 12  # 12:34 … 12:45 opened and closed since
    rescored = second.steps["score"].details["symbols"][SYMBOL]
    assert rescored["bars"] == 1 and rescored["last_bar"] == "2024-03-05T12:30:00.000Z"

    freshness = _candle_freshness(settings.state_dir)
    # The newest candle (12:45) closed at 12:46:00.000, 56.789 s before the tick's now.
    assert freshness.last_event_close_ms == later - 56_789
    assert freshness.age_seconds == pytest.approx(56.789, abs=0.05)
    assert freshness.status == "ok"
    assert read_worker_state(settings.state_dir)["tick"] == 2  # type: ignore[index]


def test_a_failing_symbol_and_a_down_exchange_are_recorded_and_the_tick_carries_on(
    market: Market, exchange: ExchangeServer, client: BinanceClient, tmp_path: Path
) -> None:
    """A symbol the exchange does not list fails alone (the other is backfilled and scored);
    with the exchange stopped the backfill step fails for both, yet health.json is written
    (candle freshness ages by the minutes that passed) and worker.json says error; no raise."""
    settings = _settings(tmp_path, exchange)
    first = _tick(settings, client, NOW_MS, symbols=[SYMBOL, "DOGEUSDT"])

    backfill = first.steps["backfill"]
    assert first.outcome == "error" and not backfill.ok
    assert backfill.details["symbols"][SYMBOL]["status"] == "complete"
    assert backfill.details["symbols"]["DOGEUSDT"]["status"] == "error"
    assert backfill.error is not None and backfill.error.startswith("DOGEUSDT: unknown symbol")
    assert first.steps["score"].ok
    assert first.steps["score"].details["symbols"]["DOGEUSDT"]["status"] == "skipped"
    assert first.steps["health"].ok

    exchange.stop()
    outage = NOW_MS + 10 * MINUTE_MS
    down = _tick(settings, client, outage, symbols=[SYMBOL, "DOGEUSDT"], number=2)

    assert down.outcome == "error"
    assert not down.steps["backfill"].ok
    for symbol in (SYMBOL, "DOGEUSDT"):
        assert "cannot reach" in down.steps["backfill"].details["symbols"][symbol]["error"]
    assert all(down.steps[name].ok for name in ("score", "health", "alerts", "webhooks"))
    state = read_worker_state(settings.state_dir)
    assert state is not None and state["outcome"] == "error" and state["tick"] == 2
    assert "cannot reach" in state["steps"]["backfill"]["error"]
    freshness = _candle_freshness(settings.state_dir)
    # The last candle (12:33) closed at 12:34:00.000; now is 12:44:56.789.
    assert freshness.age_seconds == pytest.approx(656.789, abs=0.05)
    assert freshness.status != "ok"


def test_the_next_tick_keeps_the_cadence_and_skips_overrun_starts() -> None:
    """Ticks start at start + k·interval: a short tick waits for the rest of the interval, a
    tick that overran two starts skips them, one ending exactly on a start begins at once."""
    assert (_next_wait(100.0, 110.0, 60.0).seconds, _next_wait(100.0, 110.0, 60.0).skipped) == (
        50.0,
        0,
    )
    overran = _next_wait(100.0, 250.0, 60.0)
    assert (overran.seconds, overran.skipped) == (30.0, 2)
    exact = _next_wait(100.0, 220.0, 60.0)
    assert (exact.seconds, exact.skipped) == (0.0, 1)


def test_when_the_health_step_fails_the_alerts_judge_the_saved_snapshot_now(
    tmp_path: Path, receiver: _Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tick 1 saves a healthy snapshot. Tick 2, ten minutes on, cannot build one (the build
    raises): the health step fails, yet the alerts step evaluates the saved snapshot judged
    at tick 2's now — candles are 660 s old, so IngmonFeedStale fires and is delivered —
    and worker.json says which snapshot was used."""
    healthy_lake(Lake(tmp_path / "lake"), now_ms=LAKE_NOW_MS)
    secret = "worker-test-secret"
    settings = load_settings(
        env_file=None,
        data_dir=tmp_path,
        webhook_urls=receiver.url,
        webhook_secret=secret,
        alert_stale_for_seconds=0,
    )
    steps = ("health", "alerts", "webhooks")
    log = Reporter(mode="json", stream=io.StringIO())
    first = tick(settings, symbols=[SYMBOL], now_ms=LAKE_NOW_MS, steps=steps, reporter=log)
    assert first.outcome == "ok", first.to_dict()
    assert first.steps["alerts"].details["snapshot"] == "this tick"

    def unbuildable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the lake cannot be judged")

    monkeypatch.setattr(health_module, "build_snapshot", unbuildable)
    later = LAKE_NOW_MS + 10 * MINUTE_MS
    second = tick(settings, symbols=[SYMBOL], now_ms=later, steps=steps, reporter=log, number=2)

    assert second.outcome == "error"
    assert second.steps["health"].error == "RuntimeError: the lake cannot be judged"
    alerts_step = second.steps["alerts"]
    assert alerts_step.ok, alerts_step.to_dict()
    assert alerts_step.details["snapshot"] == "saved"
    assert alerts_step.details["snapshot_generated_at"] == "2026-03-01T00:00:00.000Z"
    assert alerts_step.details["firing"] >= 1
    assert _candle_staleness(receiver, secret) == ["firing"]
    state = read_worker_state(settings.state_dir)
    assert state is not None and state["steps"]["alerts"]["snapshot"] == "saved"


def test_the_interval_flag_is_the_cadence_health_expects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``worker --interval-seconds 120``: the snapshot it writes expects candles and trades
    every 120 s (5m open interest: 300 s, funding: 8 h) and records 120 in settings_used;
    run_worker(interval_seconds=90) on default settings likewise expects 90 s."""
    monkeypatch.chdir(tmp_path)
    quiet = ["--no-backfill", "--no-score", "--no-alerts", "--symbol", SYMBOL]
    argv = ["worker", "--once", "--data-dir", str(tmp_path), "--interval-seconds", "120"]
    assert main([*argv, *quiet]) == 0

    def judged(state_dir: Path) -> tuple[float, dict[str, float]]:
        """(the interval in settings_used, each series' expected cadence)."""
        snapshot = read_snapshot(state_dir)
        assert snapshot is not None
        expected = {s.dataset: s.cadence.expected_seconds for s in snapshot.series}
        return snapshot.settings_used["worker_interval_seconds"], expected

    assert judged(tmp_path / "state") == (
        120.0,
        {"candles": 120.0, "agg_trades": 120.0, "open_interest": 300.0, "funding": 28_800.0},
    )
    other = tmp_path / "other"
    settings = load_settings(env_file=None, data_dir=other, log_format="json")
    assert settings.worker_interval_seconds == 60
    run_worker(
        settings,
        symbols=[SYMBOL],
        interval_seconds=90,
        once=True,
        steps=("health",),
        reporter=Reporter(mode="json", stream=io.StringIO()),
    )
    assert judged(other / "state") == (
        90.0,
        {"candles": 90.0, "agg_trades": 90.0, "open_interest": 300.0, "funding": 28_800.0},
    )


# ---- the command -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--interval-seconds", "0"], "--interval-seconds: 0 must be > 0"),
        (["--interval-seconds", "soon"], "--interval-seconds: 'soon' is not a number"),
        (["--symbol", "BTC-USD"], "invalid symbol 'BTC-USD'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad worker flags: argparse's one line naming the flag, exit 2."""
    with pytest.raises(SystemExit) as exited:
        main(["worker", "--data-dir", str(tmp_path), *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_no_symbols_at_all_is_a_one_line_hint_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --symbol, no INGMON_WORKER_SYMBOLS and no candles in the lake: a hint, exit 2."""
    assert main(["worker", "--data-dir", str(tmp_path), "--once"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ingmon worker: error: no symbols to watch: give --symbol SYM")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "state" / "worker.lock").exists()


def test_once_runs_one_tick_and_exits_0_or_1_when_a_step_failed(
    exchange: ExchangeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--once``: one tick, exit 0 when it succeeded; with a symbol the exchange does not list
    the backfill step fails and the exit status is 1. Either way worker.json records the tick
    with no loop interval, and when the worker stopped."""
    monkeypatch.setenv("INGMON_WORKER_CATCH_UP_DAYS", "1")
    monkeypatch.setenv("INGMON_LOG_FORMAT", "json")
    urls = ["--base-url", exchange.base_url, "--archive-url", exchange.base_url]
    command = ["worker", "--once", "--data-dir", str(tmp_path), *urls]
    assert main([*command, "--symbol", SYMBOL]) == 0
    state = read_worker_state(tmp_path / "state")
    assert state is not None and state["outcome"] == "ok" and state["interval_seconds"] is None
    assert state["stopped_ms"] >= state["finished_ms"]

    assert main([*command, "--symbol", "DOGEUSDT", "--no-score", "--no-alerts"]) == 1
    state = read_worker_state(tmp_path / "state")
    assert state is not None and state["outcome"] == "error" and state["tick"] == 1
    assert list(state["steps"]) == ["backfill", "health"]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [e["outcome"] for e in lines if e["event"] == "tick"] == ["ok", "error"]


def _worker_command(server: ExchangeServer, data_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ingmon",
        "worker",
        "--data-dir",
        str(data_dir),
        "--symbol",
        SYMBOL,
        "--base-url",
        server.base_url,
        "--archive-url",
        server.base_url,
        *extra,
    ]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGMON_")}
    env.update(
        INGMON_WORKER_CATCH_UP_DAYS="1",
        INGMON_LOG_FORMAT="json",
        INGMON_BINANCE_WEIGHT_LIMIT_PER_MINUTE=str(10**9),
        **extra,
    )
    return env


def _default_signals() -> None:
    # A test run started as a background job ignores SIGINT, and so would its children.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(command: list[str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as stderr:
        return subprocess.Popen(
            command,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            preexec_fn=_default_signals,  # noqa: PLW1509 - see _default_signals
        )


def _log_events(log: Path) -> list[dict[str, Any]]:
    text = log.read_text()
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def _await(process: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, f"the worker exited ({process.returncode}) {what}"
        assert time.monotonic() < deadline, f"timed out {what}"
        time.sleep(POLL_SECONDS)


def _terminate(process: subprocess.Popen[str]) -> float:
    """SIGTERM; seconds until the process exited. Fails past the bound."""
    sent = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the worker was still running {STOP_BOUND_SECONDS} s after SIGTERM")
    return time.perf_counter() - sent


def _lake_is_intact(data_dir: Path) -> None:
    """No temp file left behind, nothing damaged, and every series reads."""
    lake_dir = data_dir / "lake"
    assert not list(lake_dir.rglob("*.tmp"))
    lake = Lake(lake_dir)
    for name, param, _ in SERIES:
        assert not lake.find_corrupt(name, symbol=SYMBOL, param=param)
        lake.read(name, symbols=SYMBOL, param=param)
    assert not list((data_dir / "state").glob("*.tmp"))


@pytest.mark.slow
def test_a_second_worker_on_the_same_data_dir_exits_2_and_sigterm_between_ticks_exits_0(
    exchange: ExchangeServer, tmp_path: Path
) -> None:
    """While a worker waits for its next tick, a second one on the same data directory exits 2
    with one line naming the first one's pid; SIGTERM then ends the wait at once: exit 0,
    worker.json keeps the tick's outcome and records when it stopped."""
    log = tmp_path / "worker.log"
    process = _start(_worker_command(exchange, tmp_path, "--interval-seconds", "3600"), log)
    try:
        _await(
            process,
            lambda: any(e["event"] == "tick" for e in _log_events(log)),
            "before its first tick ended",
        )
        second = subprocess.run(
            _worker_command(exchange, tmp_path, "--once"),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        assert second.stderr.splitlines() == [
            f"ingmon worker: error: another worker (pid {process.pid}) holds "
            f"{tmp_path / 'state' / 'worker.lock'}: one worker per data directory"
        ]
        elapsed = _terminate(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()[-2000:]
    # The interval is an hour: exiting within the bound (seconds) means SIGTERM cut the wait.
    assert elapsed < STOP_BOUND_SECONDS
    state = read_worker_state(tmp_path / "state")
    assert state is not None
    assert state["pid"] == process.pid and state["outcome"] == "ok" and state["tick"] == 1
    assert state["stopped_ms"] >= state["finished_ms"]
    events = _log_events(log)
    assert [e["signal"] for e in events if e["event"] == "stopping"] == ["SIGTERM"]
    assert events[-1]["event"] == "worker_stop"
    assert "Traceback" not in log.read_text()
    _lake_is_intact(tmp_path)


@pytest.mark.slow
def test_sigterm_during_a_backfill_finishes_the_request_in_flight_and_exits_0(
    market: Market, tmp_path: Path
) -> None:
    """SIGTERM while the first tick's backfill waits for a request the exchange holds for 2 s:
    the worker waits for it (the in-flight request is not cut), no further request or step
    starts, worker.json says interrupted, exit 0 soon after, and the lake is intact."""
    faults = FaultSchedule.parse(["aggTrades=timeout,ok"], timeout_delay_seconds=2)
    with ExchangeServer(
        market, clock=FrozenClock(NOW_MS), limits=Limits(enabled=False), faults=faults
    ) as holding:
        log = tmp_path / "worker.log"
        process = _start(_worker_command(holding, tmp_path), log)
        try:
            _await(process, lambda: bool(holding.stats.faults), "before the held request")
            elapsed = _terminate(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0, log.read_text()[-2000:]
    assert elapsed < STOP_BOUND_SECONDS
    state = read_worker_state(tmp_path / "state")
    assert state is not None
    assert state["outcome"] == "interrupted" and state["tick"] == 1
    assert list(state["steps"]) == ["backfill"]  # no step started after the signal
    assert state["steps"]["backfill"]["symbols"][SYMBOL]["status"] == "interrupted"
    events = _log_events(log)
    assert [e["signal"] for e in events if e["event"] == "stopping"] == ["SIGTERM"]
    assert [e["outcome"] for e in events if e["event"] == "tick"] == ["interrupted"]
    assert "Traceback" not in log.read_text()
    _lake_is_intact(tmp_path)


# ---- alerts end to end ------------------------------------------------------------------------


class _Receiver(ThreadingHTTPServer):
    """A webhook receiver on loopback that keeps every POST (signature header, parsed body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str | None, bytes]] = []
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook/T0K3N"


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers.get("X-Ingmon-Signature-256"), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    """A running webhook receiver; stopped at teardown."""
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _candle_staleness(receiver: _Receiver, secret: str) -> list[str]:
    """The statuses of IngmonFeedStale for BTCUSDT candles the receiver got, in order; every
    body's HMAC-SHA256 signature checked against the shared secret."""
    statuses = []
    for signature, body in receiver.received:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert signature == f"sha256={digest}"
        payload = json.loads(body)
        assert payload["version"] == "4"
        statuses.extend(
            alert["status"]
            for alert in payload["alerts"]
            if alert["labels"]["alertname"] == "IngmonFeedStale"
            and alert["labels"].get("dataset") == "candles"
            and alert["labels"].get("symbol") == SYMBOL
        )
    return statuses


def test_a_stale_feed_fires_a_webhook_and_the_next_fresh_tick_resolves_it(
    exchange: ExchangeServer, client: BinanceClient, receiver: _Receiver, tmp_path: Path
) -> None:
    """The exchange's clock stands still while the worker's now moves on: candles go stale
    (> 180 s) at +3 min, the alert is pending, and once that has held for 120 s the receiver
    gets IngmonFeedStale firing (signed); with the exchange caught up the next tick fetches the
    tail and the receiver gets it resolved: each exactly once."""
    secret = "worker-test-secret"
    settings = _settings(tmp_path, exchange, webhook_urls=receiver.url, webhook_secret=secret)
    log = io.StringIO()
    assert _tick(settings, client, NOW_MS, log=log).steps["alerts"].ok
    for number, minutes in ((2, 3), (3, 4)):  # ages 236.789 s and 296.789 s: stale since +3
        stale = _tick(settings, client, NOW_MS + minutes * MINUTE_MS, log=log, number=number)
        assert stale.steps["alerts"].ok and stale.steps["webhooks"].ok
        assert _candle_freshness(settings.state_dir).status == "error"
        assert _candle_staleness(receiver, secret) == []  # pending, not yet for 120 s
    fired = _tick(settings, client, NOW_MS + 5 * MINUTE_MS, log=log, number=4)

    assert fired.steps["webhooks"].details["delivered"] >= 1
    assert _candle_staleness(receiver, secret) == ["firing"]
    caught_up = exchange.clock.advance(6 * MINUTE_MS)
    fresh = _tick(settings, client, caught_up, log=log, number=5)

    assert fresh.outcome == "ok", fresh.to_dict()
    assert _candle_freshness(settings.state_dir).status == "ok"
    assert _candle_staleness(receiver, secret) == ["firing", "resolved"]
    written = log.getvalue() + (settings.state_dir / "worker.json").read_text()
    assert "T0K3N" not in written and secret not in written  # the URL's path is a credential

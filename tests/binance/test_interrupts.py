"""Interrupting a backfill: SIGINT and SIGTERM stop it promptly with an ``interrupted`` summary,
a second SIGINT exits at once, the lake stays readable and a resume completes it exactly; waits
on the rate limits end when the run is stopped and are shown while they last."""

from __future__ import annotations

import io
import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ingmon.binance.backfill import BackfillRequest, run_backfill
from ingmon.binance.reporting import Reporter
from ingmon.exchange import ExchangeServer, FaultSchedule, Limits, Market

from ._reference import (
    backfill_command,
    cli_env,
    committed_batches,
    exchange,
    lake_rows,
    settings_for,
)

NOW_MS = 1_790_000_000_000 + 37_123
SYMBOLS = "ETHUSDT,SOLUSDT"
# 2,000 weight per 20 s window: a 3.5-day REST run of both symbols weighs ~6,700 (measured: 333
# aggTrades pages of weight 20), so it spends about a minute mostly asleep on the window. A
# thread that could not be woken would hold an interrupted run for up to 20 s, and a queue that
# was not cancelled for the rest of that minute: both far beyond the bound below.
LIMITED = Limits(weight_per_window=2000, window_seconds=20)
# From the signal to the process's exit. Generous for a loaded CI box: a prompt stop takes well
# under a second here (the requests in flight, then the summary).
STOP_BOUND_SECONDS = 10.0
# How often a test looks at a running backfill's progress.
POLL_SECONDS = 0.02


@pytest.fixture(scope="module")
def market() -> Market:
    """Five days of ETHUSDT and SOLUSDT (the market of test_backfill_cli)."""
    return Market.demo(symbols=("ETHUSDT", "SOLUSDT"), days=5, seed=13, now_ms=NOW_MS)


@pytest.fixture(scope="module")
def fast(market: Market) -> Iterator[ExchangeServer]:
    """The exchange without limits: the reference run and every resume."""
    with exchange(market, NOW_MS) as running:
        yield running


@pytest.fixture(scope="module")
def limited(market: Market) -> Iterator[ExchangeServer]:
    """The same market behind a small weight window (LIMITED): the runs that are interrupted."""
    with exchange(market, NOW_MS, limits=LIMITED) as running:
        yield running


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run: its lake, how many batches it committed, what it weighed."""

    rows: dict[str, pa.Table]
    batches: int
    weight: int


@pytest.fixture(scope="module")
def reference(fast: ExchangeServer, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """One uninterrupted run on the fast exchange, to compare resumed lakes with."""
    data_dir = tmp_path_factory.mktemp("reference")
    done = subprocess.run(
        _command(fast, data_dir),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    weight = json.loads(done.stdout)["totals"]["weight_used"]
    # The bound means something only if a rate-limited run lasts several windows.
    assert weight >= 3 * LIMITED.weight_per_window, weight
    return Reference(lake_rows(data_dir, SYMBOLS), committed_batches(data_dir), weight)


def _env(**extra: str) -> dict[str, str]:
    return cli_env(**extra)


def _command(server: ExchangeServer, data_dir: Path) -> list[str]:
    return backfill_command(server, data_dir, SYMBOLS, "--source", "rest")


def _default_signals() -> None:
    # A test run started as a background job of a script ignores SIGINT, and so would its
    # children: the backfill (rightly) keeps an ignored SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(command: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    with log.open("w") as stderr:
        return subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            preexec_fn=_default_signals if ignored else None,  # noqa: PLW1509 - see above
        )


def _events(log: Path) -> list[dict[str, Any]]:
    """The JSON events of a stderr log so far (a line still being written is left out)."""
    text = log.read_text()
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def _await(process: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    """Poll until ``ready()``; fail if the backfill ends first (it had work left)."""
    while not ready():
        assert process.poll() is None, f"the backfill ended (exit {process.returncode}) {what}"
        time.sleep(POLL_SECONDS)


def _signal_and_wait(process: subprocess.Popen[str], signum: int) -> tuple[float, str]:
    """Send ``signum``; (seconds until the process exited, its stdout). Fails past the bound."""
    sent_at = time.perf_counter()
    process.send_signal(signum)
    try:
        stdout, _ = process.communicate(timeout=STOP_BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"still running {STOP_BOUND_SECONDS} s after {signal.Signals(signum).name}")
    return time.perf_counter() - sent_at, stdout


def _resume_equals_reference(fast: ExchangeServer, data_dir: Path, reference: Reference) -> None:
    """The lake is readable as it is, and a resume makes it equal to the uninterrupted run."""
    lake_rows(data_dir, SYMBOLS)  # every dataset reads without an error before the resume
    done = subprocess.run(
        _command(fast, data_dir),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["status"] == "complete"
    resumed = lake_rows(data_dir, SYMBOLS)
    for key, table in reference.rows.items():
        assert resumed[key].equals(table), key


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "moment"),
    [(signal.SIGINT, "after a batch"), (signal.SIGTERM, "during a window wait")],
)
def test_a_signal_stops_the_run_promptly_with_an_interrupted_summary_and_resume_completes_it(
    limited: ExchangeServer,
    fast: ExchangeServer,
    reference: Reference,
    tmp_path: Path,
    signum: int,
    moment: str,
) -> None:
    """SIGINT right after the Nth committed batch, SIGTERM at the first window wait after it
    (N random within the uninterrupted run): exit 130/143 within the bound, an interrupted
    summary and log, a readable lake, and a resume equal to the uninterrupted run."""
    seed = random.randrange(2**32)
    batches = random.Random(seed).randint(1, reference.batches // 2)
    log = tmp_path / "stderr.log"
    process = _start(_command(limited, tmp_path), env=_env(), log=log)
    try:
        _await(process, lambda: committed_batches(tmp_path) >= batches, f"before batch {batches}")
        if moment == "during a window wait":
            # A wait long enough that not cutting it short would break the bound below.
            def long_waits() -> int:
                return sum(e["event"] == "wait" and e["seconds"] > 5 for e in _events(log))

            waits = long_waits()
            _await(process, lambda: long_waits() > waits, "before a long window wait")
        elapsed, stdout = _signal_and_wait(process, signum)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    name = signal.Signals(signum).name
    print(f"{name} {moment} (batch {batches}, seed {seed}): exited in {elapsed:.3f} s")
    events = _events(log)
    assert process.returncode == 128 + signum, (seed, log.read_text()[-2000:])
    # Mid-wait, the run must not sit out the rest of the (> 5 s) wait; 3 s is over three times
    # the slowest stop measured with both cores busy.
    assert elapsed < (3.0 if moment == "during a window wait" else STOP_BOUND_SECONDS)
    summary = json.loads(stdout)
    assert summary["status"] == "interrupted" and summary["exit_status"] == 128 + signum
    assert [e["signal"] for e in events if e["event"] == "interrupt"] == [name]
    assert [e["level"] for e in events if e["event"] == "interrupted"] == ["warning"]
    assert "Traceback" not in log.read_text()
    _resume_equals_reference(fast, tmp_path, reference)


@pytest.mark.slow
def test_a_second_sigint_exits_at_once_while_the_first_waits_for_a_request(
    market: Market, fast: ExchangeServer, reference: Reference, tmp_path: Path
) -> None:
    """While the first SIGINT waits for a request in flight (held 60 s by the exchange), a
    second SIGINT exits 130 at once without a summary; the lake stays readable and a resume
    equals the uninterrupted run. The held request is a random one of the run's first half."""
    seed = random.randrange(2**32)
    held = random.Random(seed).randint(1, 150)  # of ~333 aggTrades requests
    # Each aggTrades request takes the next entry; the held one answers after 60 s.
    faults = FaultSchedule.parse(
        ["aggTrades=" + ",".join(["ok"] * (held - 1) + ["timeout"])], timeout_delay_seconds=60
    )
    log = tmp_path / "stderr.log"
    with exchange(market, NOW_MS, faults=faults) as holding:
        # The client must not give up on the held request before the test is done with it.
        env = _env(INGMON_BINANCE_TIMEOUT_SECONDS="120")
        process = _start(_command(holding, tmp_path), env=env, log=log)
        try:
            _await(process, lambda: bool(holding.stats.faults), "before the held request")
            process.send_signal(signal.SIGINT)
            _await(
                process,
                lambda: any(e["event"] == "interrupt" for e in _events(log)),
                "before announcing the first interrupt",
            )
            elapsed, stdout = _signal_and_wait(process, signal.SIGINT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    print(f"second SIGINT (request {held}, seed {seed}): exited in {elapsed:.3f} s")
    assert process.returncode == 130, (seed, log.read_text()[-2000:])
    # The first interrupt alone would have waited for the held request: ~60 s.
    assert elapsed < STOP_BOUND_SECONDS / 2
    assert stdout == ""
    assert [e["event"] for e in _events(log)][-1] == "exit_now"
    _resume_equals_reference(fast, tmp_path, reference)


def test_a_sigint_before_the_plan_is_one_line_and_exit_130(market: Market, tmp_path: Path) -> None:
    """SIGINT while the run's first request (exchangeInfo) is held by the exchange: once it is
    answered nothing more is sent, one ``interrupted`` line, no summary, exit 130, no lake."""
    faults = FaultSchedule.parse(["exchangeInfo=timeout"], timeout_delay_seconds=3)
    log = tmp_path / "stderr.log"
    with exchange(market, NOW_MS, faults=faults) as holding:
        process = _start(_command(holding, tmp_path), env=_env(), log=log)
        try:
            _await(process, lambda: bool(holding.stats.faults), "before its first request")
            _, stdout = _signal_and_wait(process, signal.SIGINT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert holding.stats.requests_for("time") == 0
    assert process.returncode == 130, log.read_text()[-2000:]
    assert stdout == ""
    events = _events(log)
    assert [e["event"] for e in events] == ["interrupt", "interrupted"], events
    assert "nothing was written" in events[-1]["message"]
    assert not (tmp_path / "lake").exists()


def test_a_stop_during_a_window_wait_returns_at_once_with_the_wait_shown(
    market: Market, tmp_path: Path
) -> None:
    """In-process: the first long wait for the weight window is logged ("waiting N s for the
    rate-limit window"); setting ``stop`` then ends the run within a second (not at the turn of
    the 30 s window) with status interrupted, and the interruption is logged."""
    stop = threading.Event()
    announced = threading.Event()

    class Announcing(Reporter):
        def wait(self, reason: str, seconds: float) -> None:
            super().wait(reason, seconds)
            announced.set()

    stopped_at: list[float] = []

    def stop_at_the_first_wait() -> None:
        if announced.wait(120):
            stopped_at.append(time.perf_counter())
            stop.set()

    log = io.StringIO()
    stopper = threading.Thread(target=stop_at_the_first_wait, daemon=True)
    with exchange(
        market, NOW_MS, limits=Limits(weight_per_window=300, window_seconds=30)
    ) as server:
        stopper.start()
        summary = run_backfill(
            BackfillRequest(
                symbols=("ETHUSDT",), window_days=1, datasets=("agg_trades",), source="rest"
            ),
            settings=settings_for(tmp_path, server),
            reporter=Announcing(mode="json", stream=log),
            stop=stop,
        )
        returned_at = time.perf_counter()
    assert stopped_at, "the run never waited for a window"
    assert returned_at - stopped_at[0] < 1.0
    assert summary.status == "interrupted" and summary.exit_status == 1
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    waits = [e for e in events if e["event"] == "wait"]
    assert waits[0]["reason"] == "the rate-limit window"
    assert 1.0 <= waits[0]["seconds"] <= 30.1
    assert waits[0]["message"] == f"waiting {waits[0]['seconds']:.0f} s for the rate-limit window"
    assert [e["event"] for e in events][-1] == "interrupted"


def test_a_wait_is_a_json_event_off_a_tty_and_a_line_above_the_bars_on_one() -> None:
    """Reporter.wait: a ``wait`` JSON event with reason and seconds, or the plain sentence."""
    as_json, as_text = io.StringIO(), io.StringIO()
    Reporter(mode="json", stream=as_json).wait("the rate-limit window", 42.04)
    text = Reporter(mode="text", stream=as_text)
    text.start_dataset("agg_trades", total=100, unit="rows")
    text.wait("the rate-limit window", 42.04)
    text.close()
    event = json.loads(as_json.getvalue())
    assert event["event"] == "wait" and event["level"] == "info"
    assert event["reason"] == "the rate-limit window" and event["seconds"] == 42.0
    assert event["message"] == "waiting 42 s for the rate-limit window"
    assert "waiting 42 s for the rate-limit window\n" in as_text.getvalue()

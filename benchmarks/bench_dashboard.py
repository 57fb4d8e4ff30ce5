"""The dashboard in Chromium on 20 symbols × 90 days: time from navigation to the Overview
rendered, time for a drill-down to update, and the bytes a 90-day 1m candle chart costs.

Set-up (not timed, a few minutes on two cores): a local exchange in real time with 20 symbols
and 91 days of history (``ingmon exchange serve``); ``ingmon backfill`` of 90 days of 1m
candles, 5m open interest and funding for all of them, and of the last day of aggregate trades
only (90 days × 20 symbols of simulated trades would be ~100 million rows and most of an hour
here, and no page reads trades beyond a few hours: the volume profile of a wider range comes
from the candles); ``ingmon score --candle-delta`` of every symbol (order flow from the
candles' taker-buy volume, since trades cover one day) and ``ingmon backtest`` (30/60/90-day
windows, saved in the lake) of ``BACKTESTED`` symbols; ``ingmon health`` for the first
snapshot; then ``ingmon serve``. ``BENCH_DASHBOARD_DATA=DIR`` keeps the data root in DIR and
reuses it on the next run (the set-up is skipped: the measurements do not depend on the data
being fresh).

Measured in headless Chromium (Debian's package through playwright, a new browser context per
sample, so every sample is a new Bokeh session on a warm server; the first, cold one is
discarded), ``REPEAT`` samples per case, the median printed:

- **first render**: ``page.goto(/dashboard)`` until the Overview's freshness grid shows the last
  symbol's row (the page is usable: status of all 20 × 4 series);
- **drill-down**: on a loaded drill-down page, the time from a user's change (the Signals page's
  symbol, the Performance page's run selection) until the page shows the new state;
- **chart payload**: the bytes the browser receives (HTTP bodies and websocket frames) from
  navigation to the Signals page rendered, with the candle chart over the last 7 and the last
  90 days of 1m candles (10,080 vs 129,600 bars in the lake): aggregation to a bar budget
  bounds it, so the two are of the same order.

Goals (the issue): first render < 3 s, drill-down < 0.5 s, payload bounded by aggregation.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from benchmarks._processes import (
    child_process,
    environment,
    exchange_url,
    free_port,
    ingmon,
    wait_for,
)
from ingmon.lake import Lake
from ingmon.times import DAY_MS, MINUTE_MS, iso_ms, now_ms

__all__ = ["main"]

SYMBOLS = tuple(["BTCUSDT", "ETHUSDT", "SOLUSDT"] + [f"SIM{index:02d}USDT" for index in range(17)])
DAYS = 90
TRADE_DAYS = 1
BACKTESTED = SYMBOLS[:6]
REPEAT = 5
PAYLOAD_REPEAT = 3
PAYLOAD_DAYS = (7, 30, DAYS)
QUIET_SECONDS = 0.5  # no websocket frame for this long: the update has arrived
CHROMIUM = "/usr/bin/chromium"
RENDER_TIMEOUT_MS = 60_000
GOAL_FIRST_RENDER_SECONDS = 3.0
GOAL_DRILL_DOWN_SECONDS = 0.5


def _run(
    what: str, argv: Sequence[str], *, env: dict[str, str], log: Path, ok: Sequence[int] = (0,)
) -> None:
    started = time.perf_counter()
    done = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    log.write_text(done.stdout + done.stderr)
    if done.returncode not in ok:
        raise RuntimeError(f"{what} failed ({done.returncode}): see {log}")
    print(f"  {what:<56} {time.perf_counter() - started:>6.0f} s")


def _prepare(data_dir: Path, env: dict[str, str], base_url: str, logs: Path) -> None:
    """Backfill, score, backtest and judge the lake (each step idempotent: a kept data root
    only gets the tail)."""
    started = time.perf_counter()
    symbols = ",".join(SYMBOLS)
    urls = ["--base-url", base_url, "--archive-url", base_url]
    common = ["--data-dir", str(data_dir), "--concurrency", "4", *urls]
    _run(
        f"backfill {DAYS} d of candles, open interest, funding",
        ingmon("backfill", "--symbol", symbols, "--window-days", str(DAYS), "--skip-trades")
        + common,
        env=env,
        log=logs / "backfill-90d.log",
        ok=(0, 1),
    )
    only_trades = ["--skip-candles", "--skip-open-interest", "--skip-funding"]
    _run(
        f"backfill {TRADE_DAYS} d of aggregate trades",
        ingmon("backfill", "--symbol", symbols, "--window-days", str(TRADE_DAYS), *only_trades)
        + common,
        env=env,
        log=logs / "backfill-trades.log",
        ok=(0, 1),
    )
    _run(
        "score (15m, order flow from the candles)",
        ingmon("score", "--symbol", symbols, "--candle-delta", "--data-dir", str(data_dir)),
        env=env,
        log=logs / "score.log",
    )
    for symbol in BACKTESTED:
        _run(
            f"backtest {symbol} (30/60/90 d)",
            [
                *ingmon("backtest", "--symbol", symbol, "--window-days", "30", "60", "90"),
                *("--data-dir", str(data_dir), "--out", str(data_dir / "backtests" / symbol)),
            ],
            env=env,
            log=logs / f"backtest-{symbol}.log",
        )
    _run(
        "health snapshot",
        ingmon("health", "--data-dir", str(data_dir)),
        env=env,
        log=logs / "health.log",
        ok=(0, 1),
    )
    print(
        f"set-up: {len(SYMBOLS)} symbols × {DAYS} days (1m candles, 5m open interest, funding; "
        f"trades for the last {TRADE_DAYS} day), scored, {len(BACKTESTED)} backtested, in "
        f"{time.perf_counter() - started:.0f} s"
    )


# ---- the browser side ---------------------------------------------------------------------


@dataclass
class Traffic:
    """What the browser received since it started watching: HTTP bytes on the wire (bodies
    and headers, as Chromium's network layer counts them) and websocket frame payloads (Bokeh's
    document and its patches), with the time of the last frame."""

    http_bytes: int = 0
    ws_bytes: int = 0
    ws_frames: int = 0
    first_frame: float | None = None
    last_frame: float = 0.0

    def reset(self) -> None:
        self.http_bytes = self.ws_bytes = self.ws_frames = 0
        self.first_frame = None
        self.last_frame = time.perf_counter()

    def first_after(self, started: float) -> float:
        """Seconds from ``started`` to the first frame since the reset (the server's answer)."""
        return (self.first_frame or self.last_frame) - started


def _watch(context: Any, page: Any) -> Traffic:
    traffic = Traffic()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")

    def finished(event: dict[str, Any]) -> None:
        traffic.http_bytes += int(event.get("encodedDataLength", 0))

    def on_websocket(socket_: Any) -> None:
        def frame(payload: str | bytes) -> None:
            traffic.ws_bytes += len(payload.encode() if isinstance(payload, str) else payload)
            traffic.ws_frames += 1
            traffic.last_frame = time.perf_counter()
            if traffic.first_frame is None:
                traffic.first_frame = traffic.last_frame

        socket_.on("framereceived", frame)

    cdp.on("Network.loadingFinished", finished)
    page.on("websocket", on_websocket)
    return traffic


def _settle(page: Any, traffic: Traffic) -> float:
    """Wait until no frame came for ``QUIET_SECONDS``; the time of the last frame."""
    while time.perf_counter() - traffic.last_frame < QUIET_SECONDS:
        page.wait_for_timeout(50)  # lets playwright deliver the frames meanwhile
    return traffic.last_frame


@dataclass(frozen=True)
class Sample:
    first: float  # seconds to the first websocket frame (a drill-down: the server's answer)
    visible: float  # seconds to the awaited element
    settled: float  # seconds to the last websocket frame of the update
    traffic: Traffic
    text: str = ""  # the awaited element's text


class Browser:
    """Headless Chromium (Debian's); each sample in a new context (a new Bokeh session)."""

    def __init__(self, playwright: Any, base: str) -> None:
        self.base = base
        self.browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )

    def close(self) -> None:
        self.browser.close()

    def url(self, **query: str) -> str:
        return f"{self.base}/dashboard" + (f"?{urlencode(query)}" if query else "")

    @contextmanager
    def page(self) -> Iterator[tuple[Any, Traffic]]:
        context = self.browser.new_context(viewport={"width": 1400, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(RENDER_TIMEOUT_MS)
            traffic = _watch(context, page)
            yield page, traffic
        finally:
            context.close()

    def load(self, url: str, ready: Callable[[Any], Any]) -> Sample:
        """Navigate to ``url`` in a new context until ``ready(page)`` is visible."""
        with self.page() as (page, traffic):
            traffic.reset()
            started = time.perf_counter()
            page.goto(url, wait_until="commit")
            shown = ready(page)
            shown.wait_for(state="visible")
            visible = time.perf_counter() - started
            settled = _settle(page, traffic) - started
            first = traffic.first_after(started)
            return Sample(first, visible, max(settled, visible), traffic, shown.inner_text())


def _median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def _first_render(browser: Browser) -> list[Sample]:
    """The Overview (the default page) until the freshness grid shows the last symbol."""
    last = SYMBOLS[-1]
    ready = lambda page: page.get_by_text(last, exact=True).first  # noqa: E731
    browser.load(browser.url(), ready)  # warm-up: the server's first session imports the pages
    return [browser.load(browser.url(), ready) for _ in range(REPEAT)]


def _signal_totals(data_dir: Path) -> dict[str, int]:
    from ingmon.signals.chart import symbol_signals

    lake = Lake(data_dir / "lake")
    return {symbol: symbol_signals(lake, symbol).height for symbol in SYMBOLS}


def _signals_switch(browser: Browser, data_dir: Path) -> list[Sample]:
    """The Signals page on BTCUSDT; pick another symbol in its selector (one not seen yet in
    this server, so its reads are cold) until the table says the new symbol's signal count."""
    totals = _signal_totals(data_dir)
    first = SYMBOLS[0]
    others = [s for s in SYMBOLS[1:] if totals[s] != totals[first] and totals[s] > 0]
    samples = []
    for symbol in [others[-1], *others[:REPEAT]]:  # the first is a warm-up
        with browser.page() as (page, traffic):
            page.goto(browser.url(page="signals", sig_symbol=first))
            page.get_by_text(re.compile(rf" of {totals[first]} signals")).wait_for()
            _settle(page, traffic)
            traffic.reset()
            started = time.perf_counter()
            page.get_by_label("Symbol").select_option(symbol)
            page.get_by_text(re.compile(rf" of {totals[symbol]} signals")).wait_for()
            visible = time.perf_counter() - started
            settled = _settle(page, traffic) - started
            assert f"sig_symbol={symbol}" in page.url, page.url
            answer = traffic.first_after(started)
            samples.append(Sample(answer, visible, max(visible, settled), traffic))
    return samples[1:]


def _performance_tick(browser: Browser, data_dir: Path) -> list[Sample]:
    """The Performance page comparing one run; tick another in the run picker until the
    comparison table has its column."""
    from ingmon.backtest.compare import saved_runs

    runs = saved_runs(Lake(data_dir / "lake"))
    first, others = runs[0], runs[1:]
    samples = []
    for run in [others[-1], *others[:REPEAT]]:  # the first is a warm-up
        with browser.page() as (page, traffic):
            page.goto(browser.url(page="performance", perf_runs=first.run_id))
            page.locator(f'span[title="{first.run_id}"]').first.wait_for()
            _settle(page, traffic)
            traffic.reset()
            started = time.perf_counter()
            page.get_by_text(run.label, exact=True).first.click()
            page.locator(f'span[title="{run.run_id}"]').first.wait_for()
            visible = time.perf_counter() - started
            settled = _settle(page, traffic) - started
            assert run.run_id in page.url, page.url
            answer = traffic.first_after(started)
            samples.append(Sample(answer, visible, max(visible, settled), traffic))
    return samples[1:]


def _chart_payload(browser: Browser, days: int) -> tuple[list[Sample], str]:
    """The Signals page of BTCUSDT over the last ``days`` days (from the URL) until the chart's
    caption says how many bars it drew; the bytes received, and that caption."""
    end = (now_ms() // MINUTE_MS + 1) * MINUTE_MS
    query = {
        "page": "signals",
        "sig_symbol": SYMBOLS[0],
        "sig_start": f"{iso_ms(end - days * DAY_MS)}"[:19] + "Z",
        "sig_end": f"{iso_ms(end)}"[:19] + "Z",
    }
    caption = re.compile(r"\d+ bars of \S+ from [\d,]+ 1m candles")
    samples = [
        browser.load(browser.url(**query), lambda page: page.get_by_text(caption).first)
        for _ in range(PAYLOAD_REPEAT)
    ]
    found = caption.search(samples[-1].text)
    return samples, found.group(0) if found else samples[-1].text


def _measure(browser: Browser, data_dir: Path) -> None:
    loaded = os.getloadavg()[0]  # a shared machine: other work skews the times
    rows: list[tuple[str, list[Sample], float | None]] = []
    missing: list[str] = []
    rows.append(
        (
            f"first render: Overview, {len(SYMBOLS)} × 4 series",
            _first_render(browser),
            GOAL_FIRST_RENDER_SECONDS,
        )
    )
    for name, run in (
        ("drill-down: Signals, switch symbol", _signals_switch),
        ("drill-down: Performance, tick a run", _performance_tick),
    ):
        try:
            rows.append((name, run(browser, data_dir), GOAL_DRILL_DOWN_SECONDS))
        except Exception as error:  # a page still missing or changed: say so, measure the rest
            missing.append(f"{name}: {type(error).__name__}: {str(error).splitlines()[0]}")
    payloads: dict[int, tuple[list[Sample], str]] = {}
    for days in PAYLOAD_DAYS:
        try:
            payloads[days] = _chart_payload(browser, days)
        except Exception as error:
            missing.append(f"chart {days} d: {type(error).__name__}: {str(error).splitlines()[0]}")
    for days, (samples, _) in payloads.items():
        rows.append((f"Signals page, BTCUSDT chart over {days} d", samples, None))

    print(
        f"\n== dashboard in Chromium: {len(SYMBOLS)} symbols × {DAYS} days, median of {REPEAT} "
        f"samples (payload: {PAYLOAD_REPEAT}), each a new browser context; machine load "
        f"{loaded:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"{'case':<44} {'1st frame s':>11} {'visible s':>10} {'settled s':>10} {'ws KiB':>9} "
        f"{'http KiB':>9} {'goal':>8} {'met':>4}"
    )
    for name, samples, goal in rows:
        first = _median([s.first for s in samples])
        visible = _median([s.visible for s in samples])
        settled = _median([s.settled for s in samples])
        ws = _median([s.traffic.ws_bytes for s in samples]) / 1024
        http = _median([s.traffic.http_bytes for s in samples]) / 1024
        shown = "" if goal is None else f"< {goal:g} s"
        met = "" if goal is None else ("yes" if visible < goal else "NO")
        print(
            f"{name:<44} {first:>11.3f} {visible:>10.3f} {settled:>10.3f} {ws:>9,.0f} "
            f"{http:>9,.0f} {shown:>8} {met:>4}"
        )
    for days, (_, caption) in payloads.items():
        print(f"chart {days:>2} d: {caption}")
    if 7 in payloads and DAYS in payloads:
        ratio = _median([s.traffic.ws_bytes for s in payloads[DAYS][0]]) / max(
            1, _median([s.traffic.ws_bytes for s in payloads[7][0]])
        )
        print(
            f"websocket payload {DAYS} d ÷ 7 d: {ratio:.2f} (the range holds {DAYS / 7:.1f}× the "
            "1m candles; the chart's bars stay within the budget, the rest grows with the "
            "signals in the range: markers and the table's rows)"
        )
    print(
        "1st frame: until the first websocket frame (the server's first reaction); "
        "visible: until the awaited element shows; settled: until the last websocket frame "
        f"({QUIET_SECONDS:g} s of quiet after it). ws: websocket payload bytes; http: bytes on "
        "the wire (a new context has an empty cache: the page's scripts count)."
    )
    for line in missing:
        print(f"not measured — {line}")


def _serve(data_dir: Path, env: dict[str, str], logs: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    argv = ingmon("serve", "--port", str(port), "--data-dir", str(data_dir))
    with child_process(argv, env=env, log=logs / "serve.log") as server:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/liveness", child=server, log=logs / "serve.log")
        with sync_playwright() as playwright:
            browser = Browser(playwright, base)
            try:
                _measure(browser, data_dir)
            finally:
                browser.close()


def main() -> None:
    kept = os.environ.get("BENCH_DASHBOARD_DATA")
    root = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="ingmon-bench-dashboard-"))
    data_dir, logs = root / "data", root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = environment(data_dir)
    exchange_argv = ingmon("exchange", "serve", "--port", "0", "--no-limits")
    exchange_argv += ["--days", str(DAYS + 1), "--symbols", ",".join(SYMBOLS)]
    try:
        prepared = root / "prepared"
        if prepared.exists():
            print(f"set-up: reusing {data_dir} (BENCH_DASHBOARD_DATA)")
        else:
            with child_process(exchange_argv, env=env, log=logs / "exchange.log") as exchange:
                base_url = exchange_url(logs / "exchange.log", exchange)
                _prepare(data_dir, env, base_url, logs)
            prepared.touch()
        _serve(data_dir, env, logs)
    finally:
        if not kept:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

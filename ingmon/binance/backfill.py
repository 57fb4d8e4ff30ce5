"""The backfill: plan → fetch (REST and archive, concurrently, within budget) → write → summary."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingmon.binance.client import BinanceClient, ExchangeInfo, RouteStats
from ingmon.binance.fetch import Fetcher
from ingmon.binance.limits import RateLimits
from ingmon.binance.plan import SeriesPlan, Task, Window, plan_series
from ingmon.binance.reporting import Reporter
from ingmon.binance.request import DATASET_ORDER, BackfillRequest
from ingmon.binance.runner import Runner, Totals, execute
from ingmon.config import Settings
from ingmon.errors import BannedError, ExchangeUnavailableError, UsageError
from ingmon.ingest import IngestWriter
from ingmon.integrity import SeriesHealth, assess_series
from ingmon.lake import Lake
from ingmon.problems import Problem, RepairContext
from ingmon.schema import MarketSeries, interval_ms
from ingmon.times import DAY_MS, HOUR_MS, iso_ms, to_ms

__all__ = ["DATASET_ORDER", "SUMMARY_SCHEMA", "BackfillRequest", "BackfillSummary", "run_backfill"]

SUMMARY_SCHEMA = "ingmon.backfill.summary/v1"
# Counters summed over the datasets into the summary's totals.
_TOTALS = (
    "fetched",
    "inserted",
    "replaced",
    "unchanged",
    "deleted",
    "duplicates",
    "rejected",
    "requests",
    "weight_used",
    "retries",
    "http_429",
)


# ---- the summary -------------------------------------------------------------------------------


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


@dataclass(frozen=True)
class DatasetReport:
    """One dataset of a run: its counters, its route's HTTP stats and each symbol's health."""

    param: str | None
    totals: Totals
    route: RouteStats
    symbols: dict[str, SeriesHealth]

    def to_dict(self, elapsed: float) -> dict[str, Any]:
        totals, route = self.totals, self.route
        return {
            "fetched": totals.fetched,
            "inserted": totals.inserted,
            "replaced": totals.replaced,
            "unchanged": totals.unchanged,
            "deleted": totals.deleted,
            "duplicates": totals.duplicates,
            "rejected": totals.rejected,
            "batches": totals.batches,
            "requests": route.requests,
            "weight_used": route.weight,
            # Every request sent again: after a 5xx/timeout/malformed body, and after a 429.
            "retries": route.retries + route.http_429,
            "http_429": route.http_429,
            "http_418": route.http_418,
            "malformed_responses": route.malformed,
            "archive_files": totals.archive_files,
            "archive_missing": totals.archive_missing,
            "checksum_failures": totals.checksum_failures,
            "bytes_received": route.bytes_received,
            "records_per_second": _rate(totals.fetched, elapsed),
            "stages": {
                "fetch": {
                    "seconds": round(totals.fetch_seconds, 3),
                    "records_per_second": _rate(totals.fetched, totals.fetch_seconds),
                },
                "write": {
                    "seconds": round(totals.write_seconds, 3),
                    "records_per_second": _rate(totals.fetched, totals.write_seconds),
                },
            },
            "busy_seconds": round(totals.fetch_seconds + totals.write_seconds, 3),
            "param": self.param,
            "symbols": {symbol: health.to_dict() for symbol, health in self.symbols.items()},
        }


@dataclass
class BackfillSummary:
    """What a run did (schema ``ingmon.backfill.summary/v1``); ``to_dict()`` is the JSON."""

    run_id: str
    request: BackfillRequest
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    server_time_ms: int
    base_url: str
    datasets: dict[str, DatasetReport]
    routes: dict[str, RouteStats]
    exchange_gaps_recorded: int
    problems: list[Problem] = field(default_factory=list)
    ban_message: str | None = None
    banned_until_ms: int | None = None
    # Weight spent outside the datasets' routes (time, exchangeInfo).
    overhead_weight: int = 0
    # Told to stop (``stop``: SIGINT/SIGTERM in the CLI) before every task was done, and the
    # number of the signal that did it, when one did (the CLI sets it).
    interrupted: bool = False
    stop_signal: int | None = None

    @property
    def status(self) -> str:
        """banned, interrupted (stopped with work left: rerun to resume), complete or incomplete."""
        if self.banned_until_ms is not None:
            return "banned"
        if self.interrupted:
            return "interrupted"
        return "complete" if not self.problems else "incomplete"

    @property
    def exit_status(self) -> int:
        """0: the window is complete (apart from exchange maintenance); 128 + the signal when a
        signal interrupted it (130 SIGINT, 143 SIGTERM), as a shell reports it; 1 otherwise."""
        if self.status == "interrupted" and self.stop_signal is not None:
            return 128 + self.stop_signal
        return 0 if self.status == "complete" else 1

    def to_dict(self) -> dict[str, Any]:
        elapsed = self.duration_seconds
        datasets = {name: report.to_dict(elapsed) for name, report in self.datasets.items()}
        totals: dict[str, Any] = {k: sum(d[k] for d in datasets.values()) for k in _TOTALS}
        totals["weight_used"] += self.overhead_weight
        archive = self.routes.get("archive")
        if archive is not None:  # archive downloads are shared by the datasets
            totals["retries"] += archive.retries + archive.http_429
        totals["records_per_second"] = _rate(totals["fetched"], elapsed)
        summary: dict[str, Any] = {
            "schema": SUMMARY_SCHEMA,
            "run_id": self.run_id,
            "status": self.status,
            "exit_status": self.exit_status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_seconds": round(elapsed, 3),
            "server_time": iso_ms(self.server_time_ms),
            "base_url": self.base_url,
            "mode": "full-refresh" if self.request.full_refresh else "resume",
            "source": self.request.source,
            "symbols": list(self.request.symbols),
            "datasets": datasets,
            "totals": totals,
            "routes": {route: asdict(stats) for route, stats in sorted(self.routes.items())},
            "exchange_gaps_recorded": self.exchange_gaps_recorded,
            "problems": [problem.to_dict() for problem in self.problems],
        }
        if self.banned_until_ms is not None:
            summary["banned_until"] = iso_ms(self.banned_until_ms)
            summary["ban_message"] = self.ban_message
        return summary


def _iso(moment: datetime) -> str | None:
    return iso_ms(to_ms(moment))


# ---- the run -----------------------------------------------------------------------------------


def _connect(client: BinanceClient) -> tuple[ExchangeInfo, int]:
    """exchangeInfo, its rate limits adopted, then the exchange's time.

    exchangeInfo comes first: the weight its response says this IP already used in the window
    must be judged against the limit the exchange advertises, not against the client's default
    (against a local exchange without limits, a second run within a minute would otherwise wait
    for the next window). An exchange that cannot be reached is a UsageError.
    """
    try:
        info = client.exchange_info(max_retries=1)
    except ExchangeUnavailableError as error:
        raise UsageError(f"cannot reach {client.base_url}: {error}", field="base_url") from None
    if info.weight_limit is not None and info.weight_window_seconds is not None:
        client.adopt_rate_limits(
            weight_limit=info.weight_limit, window_seconds=info.weight_window_seconds
        )
    return info, client.server_time_ms()


def _resolve_windows(
    request: BackfillRequest, info: ExchangeInfo, server_now_ms: int, *, base_url: str
) -> tuple[dict[str, Window], list[str]]:
    """Per-symbol windows clipped to the listing date; unknown symbols are a UsageError."""
    unknown = [s for s in request.symbols if s not in info.symbols]
    if unknown:
        raise UsageError(
            f"unknown symbol {', '.join(unknown)} (not in exchangeInfo of {base_url})",
            field="symbols",
        )
    # The window is half-open, [start, end): --end (or the exchange's "now") is not included.
    end = min(request.end_ms if request.end_ms is not None else server_now_ms, server_now_ms)
    if request.window_days is not None:
        start = end - int(request.window_days * DAY_MS)
    else:
        assert request.start_ms is not None
        start = request.start_ms
    if start >= server_now_ms:
        raise UsageError(
            f"the window starts at {iso_ms(start)}, "
            f"after the exchange's time {iso_ms(server_now_ms)}",
            field="start_ms",
        )
    windows = {}
    notes = []
    for symbol in request.symbols:
        listed = info.symbols[symbol].onboard_ms
        symbol_start = max(start, listed)
        if symbol_start >= end:
            raise UsageError(
                f"the window [{iso_ms(start)}, {iso_ms(end)}) ends before {symbol} was listed "
                f"at {iso_ms(listed)}: nothing to fetch",
                field="end_ms",
            )
        if symbol_start > start:
            notes.append(f"{symbol} listed at {iso_ms(listed)}: window starts there")
        windows[symbol] = Window(symbol_start, end - 1, server_now_ms, listing_ms=listed)
    return windows, notes


def _expected_rows(task: Task, funding_hours: dict[str, int]) -> int:
    """Rows a task should bring (0 when unknown in advance: trades)."""
    span = task.end_ms - task.start_ms + 1
    if task.series.cadence == "ids":
        return 0
    if task.series.cadence == "funding":
        return span // (funding_hours.get(task.symbol, 8) * HOUR_MS) + 1
    return span // interval_ms(task.param or "1m") + 1


def _open_client(settings: Settings, limits: RateLimits | None) -> BinanceClient:
    # The weight setting caps the pace only when it was set; by default the client follows
    # exchangeInfo (2400/min on Binance, UNLIMITED_WEIGHT on a local exchange without limits).
    if limits is None and "binance_weight_limit_per_minute" in settings.model_fields_set:
        limits = RateLimits(weight_per_window=settings.binance_weight_limit_per_minute)
    return BinanceClient(
        settings.binance_base_url,
        archive_url=settings.binance_archive_url,
        timeout_seconds=settings.binance_timeout_seconds,
        max_retries=settings.binance_max_retries,
        limits=limits,
    )


def run_backfill(
    request: BackfillRequest,
    *,
    settings: Settings,
    client: BinanceClient | None = None,
    reporter: Reporter | None = None,
    limits: RateLimits | None = None,
    stop: threading.Event | None = None,
) -> BackfillSummary:
    """Run one backfill and return its summary.

    Raises UsageError for bad input or an unreachable exchange before anything is written.
    Setting ``stop`` makes the run finish the requests in flight (no more are sent, every wait
    ends at once, queued tasks are cancelled) and return a summary with status
    ``interrupted``; Aborted when it is set before the plan is made (nothing is written then).
    """
    request.validate()
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    own_client = client is None
    client = client or _open_client(settings, limits)
    reporter = reporter or Reporter(mode=settings.log_format)
    stop = stop or threading.Event()
    # The client's waits (rate-limit windows, Retry-After, backoffs) end on this run's stop and
    # are shown as progress; a caller's client gets its own settings back afterwards.
    bound = client.stop, client.on_wait
    client.stop, client.on_wait = stop, reporter.wait
    lake = Lake(settings.lake_dir)
    try:
        info, server_now = _connect(client)
        windows, notes = _resolve_windows(request, info, server_now, base_url=client.base_url)
        for note in notes:
            reporter.event("listing", level="info", message=note)
        funding_hours = client.funding_intervals() if "funding" in request.datasets else {}
        runner = Runner(
            fetcher=Fetcher(
                client,
                windows=windows,
                klines_page_limit=request.klines_page_limit,
                stop=stop,
                on_fetch=lambda name, seconds: runner.count(name, fetch_seconds=seconds),
            ),
            writer=IngestWriter(lake),
            reporter=reporter,
            context=RepairContext.of(
                settings, base_url=client.base_url, archive_url=client.archive_url
            ),
            datasets=request.datasets,
            funding_hours=funding_hours,
        )
        _quarantine_damaged(lake, request, windows, reporter)
        plan = _plan(lake, request, windows, funding_hours)
        for series in request.series:
            runner.totals[series.name].expected = sum(
                _expected_rows(t, funding_hours) for t in plan.tasks if t.series is series
            )
            reporter.start_dataset(
                series.name, total=runner.totals[series.name].expected, unit="rows"
            )
        reporter.event(
            "plan",
            run_id=runner.run_id,
            tasks=len(plan.tasks),
            server_time=iso_ms(server_now),
            # Half-open, as everywhere the user sees a window: [start, end).
            windows={s: [iso_ms(w.start_ms), iso_ms(w.end_ms + 1)] for s, w in windows.items()},
        )
        runner.unavailable(plan.unavailable)
        execute(runner, plan.tasks, request.concurrency)
        if runner.interrupted:
            reporter.notice(
                "interrupted",
                "interrupted before the window was complete: what was committed stays; "
                "run the same command again to resume",
                level="warning",
                run_id=runner.run_id,
                unfinished_tasks=runner.unfinished_tasks,
            )
        return _summarize(
            runner,
            request=request,
            settings=settings,
            client=client,
            lake=lake,
            windows=windows,
            started_at=started_at,
            elapsed=time.perf_counter() - clock,
            server_now=server_now,
        )
    finally:
        reporter.close()
        client.stop, client.on_wait = bound
        if own_client:
            client.close()


def _quarantine_damaged(
    lake: Lake, request: BackfillRequest, windows: dict[str, Window], reporter: Reporter
) -> None:
    """Move unreadable partition files of the window aside (``quarantine/``): their range then
    reads as missing and is refetched by this run, resume or full refresh alike."""
    for series in request.series:
        for symbol, window in windows.items():
            for part in lake.find_corrupt(
                series.dataset,
                symbol=symbol,
                param=request.param(series.name),
                start=window.start_ms,
                end=window.end_ms,
            ):
                moved = lake.quarantine(part)
                reporter.event(
                    "quarantined",
                    level="warning",
                    dataset=part.dataset,
                    symbol=symbol,
                    file=str(part.version),
                    moved_to=str(moved),
                    reason=part.reason,
                )


def _plan(
    lake: Lake,
    request: BackfillRequest,
    windows: dict[str, Window],
    funding_hours: dict[str, int],
) -> SeriesPlan:
    plan = SeriesPlan()
    for series in request.series:
        for symbol in request.symbols:
            plan.extend(
                plan_series(
                    lake,
                    series,
                    symbol=symbol,
                    param=request.param(series.name),
                    window=windows[symbol],
                    source=request.source,
                    full_refresh=request.full_refresh,
                    funding_interval_hours=funding_hours.get(symbol, 8),
                )
            )
    return plan


def _series_health(
    lake: Lake,
    series: MarketSeries,
    *,
    symbol: str,
    param: str | None,
    window: Window,
    settings: Settings,
    context: RepairContext,
) -> SeriesHealth:
    """Did the run fill the window? The window ends at the last row the exchange serves as
    final (a closed candle, a taken OI snapshot)."""
    step = interval_ms(param) if series.time_gridded and param else 0
    end = window.last_final_ms(series, step)
    return assess_series(
        lake,
        series,
        symbol=symbol,
        param=param,
        start_ms=window.first_ms(series),
        end_ms=end + 1,
        now_ms=window.server_now_ms,
        expect="window",
        tolerance_ratio=settings.cadence_tolerance_ratio,
        context=context,
    )


def _ban_problem(ban: BannedError, request: BackfillRequest) -> Problem:
    until = iso_ms(ban.banned_until_ms)
    return Problem(
        "*",
        ",".join(request.symbols),
        "banned",
        f"nothing to do before {until}: the exchange banned this IP ({ban}); then rerun the "
        "same command, which resumes where this run stopped",
        details={"banned_until": until},
    )


def _summarize(
    runner: Runner,
    *,
    request: BackfillRequest,
    settings: Settings,
    client: BinanceClient,
    lake: Lake,
    windows: dict[str, Window],
    started_at: datetime,
    elapsed: float,
    server_now: int,
) -> BackfillSummary:
    problems = list(runner.problems)
    datasets = {}
    for series in request.series:
        param = request.param(series.name)
        healths = {
            symbol: _series_health(
                lake,
                series,
                symbol=symbol,
                param=param,
                window=windows[symbol],
                settings=settings,
                context=runner.context,
            )
            for symbol in request.symbols
        }
        if runner.ban is None and not runner.stop.is_set():
            for health in healths.values():
                # A gap inside a range a task already reported is that task's problem.
                problems.extend(
                    found
                    for found in health.problems
                    if not any(found.overlaps(known) for known in runner.problems)
                )
        datasets[series.name] = DatasetReport(
            param, runner.totals[series.name], client.stats[series.route], healths
        )
    if runner.ban is not None:
        problems.append(_ban_problem(runner.ban, request))
    return BackfillSummary(
        run_id=runner.run_id,
        request=request,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        duration_seconds=elapsed,
        server_time_ms=server_now,
        base_url=client.base_url,
        datasets=datasets,
        routes=dict(client.stats),
        exchange_gaps_recorded=runner.gaps_recorded,
        problems=problems,
        ban_message=str(runner.ban) if runner.ban else None,
        banned_until_ms=runner.ban.banned_until_ms if runner.ban else None,
        overhead_weight=client.stats["time"].weight + client.stats["exchangeInfo"].weight,
        interrupted=runner.interrupted,
    )

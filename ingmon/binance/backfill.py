"""The backfill: plan → fetch (REST and archive, concurrently, within budget) → write → summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from ingmon.binance.client import BinanceClient, RouteStats
from ingmon.binance.limits import RateLimits
from ingmon.binance.plan import Task, Window, known_exchange_gaps, plan_series, subtract
from ingmon.binance.reporting import Reporter
from ingmon.binance.request import (
    DATASET_ORDER,
    DATASETS,
    SKIP_FLAGS,
    BackfillRequest,
    refetch_command,
)
from ingmon.binance.runner import Problem, Runner, Totals, execute
from ingmon.config import Settings
from ingmon.coverage import iso_ms, series_coverage
from ingmon.errors import ExchangeUnavailableError, UsageError
from ingmon.lake import Lake
from ingmon.schema import AGG_TRADES, CANDLES, DAY_MS, FUNDING, HOUR_MS, OPEN_INTEREST, interval_ms

__all__ = [
    "DATASET_ORDER",
    "SKIP_FLAGS",
    "SUMMARY_SCHEMA",
    "BackfillRequest",
    "refetch_command",
    "run_backfill",
]

SUMMARY_SCHEMA = "ingmon.backfill.summary/v1"
_ROUTE_OF = {
    "candles": "klines",
    "agg_trades": "aggTrades",
    "open_interest": "openInterestHist",
    "funding": "fundingRate",
}


# ---- the run ---------------------------------------------------------------------------------


def _resolve_windows(
    request: BackfillRequest, client: BinanceClient, server_now_ms: int
) -> tuple[dict[str, Window], list[str]]:
    """Per-symbol windows clipped to the listing date; unknown symbols are a UsageError."""
    info = client.exchange_info()
    if info.weight_limit is not None and info.weight_window_seconds is not None:
        client.adopt_rate_limits(
            weight_limit=info.weight_limit, window_seconds=info.weight_window_seconds
        )
    unknown = [s for s in request.symbols if s not in info.symbols]
    if unknown:
        raise UsageError(
            f"unknown symbol {', '.join(unknown)} (not in exchangeInfo of {client.base_url})"
        )
    end = min(request.end_ms if request.end_ms is not None else server_now_ms, server_now_ms)
    if request.window_days is not None:
        start = end - int(request.window_days * DAY_MS)
    else:
        assert request.start_ms is not None
        start = request.start_ms
    if start >= server_now_ms:
        raise UsageError(
            f"the window starts at {iso_ms(start)}, "
            f"after the exchange's time {iso_ms(server_now_ms)}"
        )
    windows = {}
    notes = []
    for symbol in request.symbols:
        listed = info.symbols[symbol].onboard_ms
        symbol_start = max(start, listed)
        if symbol_start > start:
            notes.append(f"{symbol} listed at {iso_ms(listed)}: window starts there")
        windows[symbol] = Window(symbol_start, end, server_now_ms, listing_ms=listed)
    return windows, notes


def _stats_dict(totals: Totals, route: RouteStats, elapsed: float) -> dict[str, Any]:
    busy = totals.fetch_seconds + totals.write_seconds
    return {
        "fetched": totals.fetched,
        "inserted": totals.inserted,
        "replaced": totals.replaced,
        "duplicates": totals.duplicates,
        "rejected": totals.rejected,
        "batches": totals.batches,
        "requests": route.requests,
        "weight_used": route.weight,
        "retries": route.retries,
        "http_429": route.http_429,
        "http_418": route.http_418,
        "malformed_responses": route.malformed,
        "archive_files": totals.archive_files,
        "archive_missing": totals.archive_missing,
        "checksum_failures": totals.checksum_failures,
        "bytes_received": route.bytes_received,
        "records_per_second": round(totals.fetched / elapsed, 1) if elapsed > 0 else None,
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
        "busy_seconds": round(busy, 3),
    }


def _overlaps(a: Problem, b: Problem) -> bool:
    """Same series and intersecting ranges: the gap is already explained by a task's problem."""
    if (a.dataset, a.symbol) != (b.dataset, b.symbol):
        return False
    if None in (a.start_ms, a.end_ms, b.start_ms, b.end_ms):
        return False
    return not (a.end_ms < b.start_ms or b.end_ms < a.start_ms)  # type: ignore[operator]


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def run_backfill(
    request: BackfillRequest,
    *,
    settings: Settings,
    client: BinanceClient | None = None,
    reporter: Reporter | None = None,
    limits: RateLimits | None = None,
) -> dict[str, Any]:
    """Run one backfill and return its summary (schema ``ingmon.backfill.summary/v1``).

    Raises UsageError for bad input or an unreachable exchange before anything is written.
    """
    request.validate()
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    own_client = client is None
    if client is None:
        # The weight setting caps the pace only when it was set; by default the client follows
        # exchangeInfo (2400/min on Binance, UNLIMITED_WEIGHT on a local exchange without limits).
        if limits is None and "binance_weight_limit_per_minute" in settings.model_fields_set:
            limits = RateLimits(weight_per_window=settings.binance_weight_limit_per_minute)
        client = BinanceClient(
            settings.binance_base_url,
            archive_url=settings.binance_archive_url,
            timeout_seconds=settings.binance_timeout_seconds,
            max_retries=settings.binance_max_retries,
            limits=limits,
        )
    reporter = reporter or Reporter(mode=settings.log_format)
    lake = Lake(settings.lake_dir)
    try:
        try:
            server_now = client.server_time_ms(max_retries=1)
        except ExchangeUnavailableError as error:
            raise UsageError(f"cannot reach {client.base_url}: {error}") from None
        windows, notes = _resolve_windows(request, client, server_now)
        for note in notes:
            reporter.event("listing", level="info", message=note)
        funding_hours = client.funding_intervals() if "funding" in request.datasets else {}
        runner = Runner(
            request=request,
            lake=lake,
            client=client,
            reporter=reporter,
            windows=windows,
            funding_hours=funding_hours,
        )
        tasks: list[Task] = []
        for name in request.datasets:
            dataset = DATASETS[name]
            for symbol in request.symbols:
                tasks.extend(
                    plan_series(
                        lake,
                        dataset,
                        symbol=symbol,
                        param=request.param(name),
                        window=windows[symbol],
                        source=request.source,
                        full_refresh=request.full_refresh,
                        funding_interval_hours=funding_hours.get(symbol, 8),
                    )
                )
        for name in request.datasets:
            expected = sum(
                _expected_rows(t, funding_hours) for t in tasks if t.dataset.name == name
            )
            runner.totals[name].expected = expected
            reporter.start_dataset(name, total=expected, unit="rows")
        reporter.event(
            "plan",
            run_id=runner.run_id,
            tasks=len(tasks),
            server_time=iso_ms(server_now),
            windows={s: [iso_ms(w.start_ms), iso_ms(w.end_ms)] for s, w in windows.items()},
        )
        execute(runner, tasks, request.concurrency)
        elapsed = time.perf_counter() - clock
        return _summary(
            runner=runner,
            request=request,
            settings=settings,
            client=client,
            lake=lake,
            started_at=started_at,
            elapsed=elapsed,
            server_now=server_now,
        )
    finally:
        reporter.close()
        if own_client:
            client.close()


def _expected_rows(task: Task, funding_hours: dict[str, int]) -> int:
    span = task.end_ms - task.start_ms + 1
    if task.dataset is AGG_TRADES:
        return 0
    if task.dataset is FUNDING:
        return span // (funding_hours.get(task.symbol, 8) * HOUR_MS) + 1
    return span // interval_ms(task.param or "1m") + 1


def _summary(
    *,
    runner: Runner,
    request: BackfillRequest,
    settings: Settings,
    client: BinanceClient,
    lake: Lake,
    started_at: datetime,
    elapsed: float,
    server_now: int,
) -> dict[str, Any]:
    datasets: dict[str, Any] = {}
    problems = list(runner.problems)
    for name in request.datasets:
        dataset = DATASETS[name]
        param = request.param(name)
        stats = _stats_dict(runner.totals[name], client.stats[_ROUTE_OF[name]], elapsed)
        per_symbol = {}
        for symbol in request.symbols:
            window = runner.windows[symbol]
            end = min(window.end_ms, server_now)
            if dataset in (CANDLES, OPEN_INTEREST):
                end = min(end, server_now - interval_ms(param or "1m"))
            coverage = series_coverage(
                lake,
                dataset,
                symbol=symbol,
                param=param,
                start=window.positions_start_ms
                if dataset in (FUNDING, OPEN_INTEREST)
                else window.start_ms,
                end=end,
                tolerance_ratio=settings.cadence_tolerance_ratio,
            )
            exchange = known_exchange_gaps(lake, dataset, symbol, param)
            unexplained = []
            for gap in coverage.gaps:
                if dataset is AGG_TRADES:
                    unexplained.append(gap)
                    continue
                rest = subtract([(gap.first_missing, gap.last_missing)], exchange)
                if rest:
                    unexplained.append(gap)
            if not runner.ban:
                for gap in unexplained:
                    if dataset is AGG_TRADES:
                        found = Problem(
                            name,
                            symbol,
                            "id_gap",
                            f"aggregate ids {gap.first_missing}..{gap.last_missing} missing",
                            gap.after_time_ms,
                            gap.before_time_ms,
                            gap.missing,
                        )
                    else:
                        found = Problem(
                            name,
                            symbol,
                            "gap",
                            f"{gap.kind} gap",
                            gap.first_missing,
                            gap.last_missing,
                            gap.missing,
                        )
                    if not any(_overlaps(found, known) for known in runner.problems):
                        problems.append(found)
            per_symbol[symbol] = {
                "rows": coverage.rows,
                "earliest": iso_ms(coverage.earliest_ms),
                "latest": iso_ms(coverage.latest_ms),
                "gaps": len(unexplained),
                "exchange_gaps": sum(1 for g in coverage.gaps if g not in unexplained),
                "window": [iso_ms(window.start_ms), iso_ms(end)],
            }
        stats["param"] = param
        stats["symbols"] = per_symbol
        datasets[name] = stats
    status = "banned" if runner.ban else ("complete" if not problems else "incomplete")
    exit_status = 0 if status == "complete" else 1
    totals = {
        k: sum(d[k] for d in datasets.values())
        for k in (
            "fetched",
            "inserted",
            "replaced",
            "duplicates",
            "rejected",
            "requests",
            "weight_used",
            "retries",
            "http_429",
        )
    }
    weight = client.stats["time"].weight + client.stats["exchangeInfo"].weight
    totals["weight_used"] += weight
    totals["records_per_second"] = round(totals["fetched"] / elapsed, 1) if elapsed > 0 else None
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "run_id": runner.run_id,
        "status": status,
        "exit_status": exit_status,
        "started_at": started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "duration_seconds": round(elapsed, 3),
        "server_time": iso_ms(server_now),
        "base_url": client.base_url,
        "mode": "full-refresh" if request.full_refresh else "resume",
        "source": request.source,
        "symbols": list(request.symbols),
        "datasets": datasets,
        "totals": totals,
        "routes": {route: asdict(stats) for route, stats in sorted(client.stats.items())},
        "exchange_gaps_recorded": runner.gaps_recorded,
        "problems": [p.to_dict(request, client.base_url) for p in problems],
    }
    if runner.ban is not None:
        summary["banned_until"] = iso_ms(runner.ban.banned_until_ms)
        summary["ban_message"] = str(runner.ban)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ingmon.binance.backfill`` — the same as ``ingmon backfill``."""
    from ingmon.cli import main as cli_main  # noqa: PLC0415 - avoid an import cycle

    return cli_main(["backfill", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

"""Executes backfill tasks: REST paging, archive files, batched writes, the ingest log."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from ingmon.binance.archive import download, parse_csv
from ingmon.binance.client import BinanceClient
from ingmon.binance.pages import Page
from ingmon.binance.plan import Task, Window, rest_tasks
from ingmon.binance.reporting import Reporter
from ingmon.binance.request import BackfillRequest, refetch_command
from ingmon.coverage import iso_ms
from ingmon.errors import BannedError, DataIntegrityError, ExchangeError
from ingmon.lake import Lake
from ingmon.schema import (
    AGG_TRADES,
    CANDLES,
    EXCHANGE_GAPS,
    FUNDING,
    HOUR_MS,
    INGEST_LOG,
    OPEN_INTEREST,
    interval_ms,
)

__all__ = ["Aborted", "Problem", "Runner", "Totals", "execute"]

# Rows buffered per task before a write: big enough that a partition is rewritten rarely.
_FLUSH_ROWS = {"candles": 50_000, "agg_trades": 250_000, "open_interest": 50_000, "funding": 50_000}
_FLUSH_SECONDS = 10.0
# Allowed funding intervals; a longer step between settlements is a hole, not an interval.
_FUNDING_HOURS = (1, 2, 4, 8)


@dataclass
class Totals:
    """Counters of one dataset (all symbols) during a run."""

    fetched: int = 0
    inserted: int = 0
    replaced: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    archive_files: int = 0
    archive_missing: int = 0
    checksum_failures: int = 0
    fetch_seconds: float = 0.0
    write_seconds: float = 0.0
    expected: int = 0


@dataclass
class Problem:
    """Something a run could not fetch or complete: what, where, and the range if known."""

    dataset: str
    symbol: str
    kind: str
    message: str
    start_ms: int | None = None
    end_ms: int | None = None
    missing: int | None = None

    def to_dict(self, request: BackfillRequest, settings_base_url: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "symbol": self.symbol,
            "kind": self.kind,
            "message": self.message,
        }
        if self.start_ms is not None and self.end_ms is not None:
            out["first_missing"] = iso_ms(self.start_ms)
            out["last_missing"] = iso_ms(self.end_ms)
            out["missing"] = self.missing
            out["refetch_command"] = refetch_command(
                dataset=self.dataset,
                symbol=self.symbol,
                start_ms=self.start_ms,
                end_ms=self.end_ms,
                request=request,
                base_url=settings_base_url,
            )
        return out


class Aborted(Exception):
    """Another task hit a ban: stop before sending anything else."""


class Runner:
    """Executes the tasks of one backfill run and keeps its counters."""

    def __init__(
        self,
        *,
        request: BackfillRequest,
        lake: Lake,
        client: BinanceClient,
        reporter: Reporter,
        windows: dict[str, Window],
        funding_hours: dict[str, int],
    ) -> None:
        self.request = request
        self.lake = lake
        self.client = client
        self.reporter = reporter
        self.windows = windows
        self.funding_hours = funding_hours
        self.run_id = uuid.uuid4().hex[:12]
        self.totals = {name: Totals() for name in request.datasets}
        self.problems: list[Problem] = []
        self.gaps_recorded = 0
        self._lock = threading.Lock()
        self.abort = threading.Event()
        self.ban: BannedError | None = None

    # ---- writing ------------------------------------------------------------------------

    def write(
        self,
        task: Task,
        pages: Sequence[Page],
        table: pa.Table,
        *,
        source: str,
        cursor: str,
        covered: tuple[int, int] | None,
        next_cursor: str | None,
    ) -> None:
        """Upsert one batch, append its ingest_log row and log it."""
        name = task.dataset.name
        started = time.perf_counter()
        replace = covered if task.replace and covered is not None else None
        if name == FUNDING.name:
            table = self._with_funding_hours(task.symbol, table)
        result = self.lake.upsert(
            task.dataset, table, symbol=task.symbol, param=task.param, replace_range=replace
        )
        written_at = datetime.now(UTC)
        seconds = time.perf_counter() - started
        times = (
            table[task.dataset.time_column].cast(pa.int64()).to_numpy() if table.num_rows else None
        )
        fetched_at = pages[-1].fetched_at if pages else written_at
        log_row = {
            "batch_id": uuid.uuid4().hex,
            "run_id": self.run_id,
            "dataset": name,
            "interval": task.param,
            "first_event_time": int(times.min()) if times is not None else None,
            "last_event_time": int(times.max()) if times is not None else None,
            "rows_fetched": table.num_rows,
            "rows_inserted": result.inserted,
            "rows_replaced": result.replaced,
            "fetched_at": fetched_at,
            "written_at": written_at,
            "source": source,
            "request_cursor": cursor,
        }
        self.lake.upsert(INGEST_LOG, _ingest_row(log_row), symbol=task.symbol)
        duplicates = sum(p.duplicates for p in pages) + result.batch_duplicates
        with self._lock:
            totals = self.totals[name]
            totals.fetched += table.num_rows
            totals.inserted += result.inserted
            totals.replaced += result.replaced
            totals.duplicates += duplicates
            totals.rejected += sum(p.rejected for p in pages)
            totals.batches += 1
            totals.write_seconds += seconds
        self.reporter.event(
            "batch",
            dataset=name,
            symbol=task.symbol,
            interval=task.param,
            source=source,
            fetched=table.num_rows,
            inserted=result.inserted,
            replaced=result.replaced,
            duplicates=duplicates,
            next_cursor=next_cursor,
        )
        self.reporter.advance(name, table.num_rows)

    def _with_funding_hours(self, symbol: str, table: pa.Table) -> pa.Table:
        """Fill ``funding_interval_hours`` from the step to the previous settlement."""
        hours = table["funding_interval_hours"]
        if table.num_rows == 0 or hours.null_count == 0:
            return table
        times = table["funding_time"].cast(pa.int64()).to_numpy()
        current = self.funding_hours.get(symbol, 8)
        steps = np.diff(times, prepend=times[0] - current * HOUR_MS) / HOUR_MS
        derived = np.where(np.isin(steps, _FUNDING_HOURS), steps, current).astype(np.int32)
        known = hours.to_numpy(zero_copy_only=False)
        filled = np.where(np.isnan(known.astype(float)), derived, known).astype(np.int32)
        index = table.column_names.index("funding_interval_hours")
        return table.set_column(index, "funding_interval_hours", pa.array(filled, pa.int32()))

    def record_exchange_gaps(
        self, task: Task, keys: np.ndarray[Any, Any], start: int, end: int
    ) -> None:
        """Slots of [start, end] on the dataset's grid that the exchange did not return."""
        if task.dataset not in (CANDLES, OPEN_INTEREST) or task.param is None:
            return
        step = interval_ms(task.param)
        first = -(-start // step) * step
        if first > end:
            return
        grid = np.arange(first, end + 1, step, dtype=np.int64)
        missing = grid[~np.isin(grid, keys)]
        if missing.size == 0:
            return
        breaks = np.flatnonzero(np.diff(missing) != step) + 1
        rows = []
        detected = datetime.now(UTC)
        for run in np.split(missing, breaks):
            gap_start, gap_end = int(run[0]), int(run[-1])
            rows.append(
                {
                    "gap_id": f"{task.dataset.name}/{task.param}/{gap_start}",
                    "dataset": task.dataset.name,
                    "interval": task.param,
                    "start_time": gap_start,
                    "end_time": gap_end,
                    "detected_at": detected,
                }
            )
            self.reporter.event(
                "exchange_gap",
                level="warning",
                dataset=task.dataset.name,
                symbol=task.symbol,
                first_missing=iso_ms(gap_start),
                last_missing=iso_ms(gap_end),
                missing=run.size,
            )
        table = pa.Table.from_pylist(rows, schema=EXCHANGE_GAPS.arrow_schema)
        self.lake.upsert(EXCHANGE_GAPS, table, symbol=task.symbol)
        with self._lock:
            self.gaps_recorded += len(rows)

    def problem(self, problem: Problem) -> None:
        with self._lock:
            self.problems.append(problem)
        self.reporter.event(
            "problem",
            level="error",
            dataset=problem.dataset,
            symbol=problem.symbol,
            kind=problem.kind,
            message=problem.message,
            first_missing=iso_ms(problem.start_ms),
            last_missing=iso_ms(problem.end_ms),
        )

    # ---- tasks --------------------------------------------------------------------------

    def run_task(self, task: Task) -> None:
        if self.abort.is_set():
            raise Aborted
        try:
            if task.source == "unavailable":
                self.problem(
                    Problem(
                        task.dataset.name,
                        task.symbol,
                        "unavailable",
                        task.reason,
                        task.start_ms,
                        task.end_ms,
                    )
                )
            elif task.source == "archive":
                self._archive(task)
            elif task.dataset is AGG_TRADES:
                self._rest_trades(task)
            else:
                self._rest_series(task)
        except BannedError as error:
            self.ban = error
            self.abort.set()
            raise
        except (ExchangeError, DataIntegrityError) as error:
            self.problem(
                Problem(
                    task.dataset.name,
                    task.symbol,
                    "fetch_failed",
                    str(error),
                    task.start_ms,
                    task.end_ms,
                )
            )

    def _buffer(self, task: Task, source: str) -> Batcher:
        return Batcher(self, task, source)

    def _rest_series(self, task: Task) -> None:
        """Candles, open interest and funding: time-window pages from ``task.start_ms``.

        Candle and open-interest requests never span more slots than ``limit``, so a page is
        complete whichever end of the window the exchange anchors ``limit`` to; funding pages
        are anchored at startTime (documented) and continue after the last settlement.
        """
        window = self.windows[task.symbol]
        name = task.dataset.name
        gridded = task.dataset in (CANDLES, OPEN_INTEREST)
        step = interval_ms(task.param or "") if gridded else 1
        limit = {CANDLES.name: self.request.klines_page_limit, OPEN_INTEREST.name: 500}.get(
            name, 1000
        )
        batcher = self._buffer(task, "rest")
        cursor = task.start_ms
        keys: list[np.ndarray[Any, Any]] = []
        while cursor <= task.end_ms:
            if self.abort.is_set():
                raise Aborted
            request_end = min(task.end_ms, cursor + (limit - 1) * step) if gridded else task.end_ms
            started = time.perf_counter()
            if task.dataset is CANDLES:
                page = self.client.klines(
                    task.symbol,
                    task.param or "1m",
                    start_ms=cursor,
                    end_ms=request_end,
                    limit=limit,
                    closed_before_ms=window.server_now_ms,
                )
            elif task.dataset is OPEN_INTEREST:
                page = self.client.open_interest(
                    task.symbol,
                    task.param or "5m",
                    start_ms=cursor,
                    end_ms=request_end,
                    limit=limit,
                )
            else:
                page = self.client.funding_rates(
                    task.symbol, start_ms=cursor, end_ms=request_end, limit=limit
                )
            self._fetched(name, time.perf_counter() - started)
            got = page.table[task.dataset.key].cast(pa.int64()).to_numpy()
            keys.append(got)
            if got.size == 0 and page.full:
                raise DataIntegrityError(f"{page.cursor}: a full page without one valid row")
            if gridded:
                next_cursor: int | None = request_end + 1
            else:
                next_cursor = int(got[-1]) + 1 if page.full and got.size else None
            covered_to = request_end if next_cursor is None else next_cursor - 1
            more = next_cursor is not None and next_cursor <= task.end_ms
            batcher.add(page, covered_to=covered_to, next_cursor=next_cursor if more else None)
            if not more:
                break
            assert next_cursor is not None
            cursor = next_cursor
        batcher.flush()
        all_keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        self.record_exchange_gaps(task, all_keys, task.start_ms, task.end_ms)

    def _rest_trades(self, task: Task) -> None:
        """Aggregate trades: find the first id by time (unless known), then page by ``fromId``."""
        batcher = self._buffer(task, "rest")
        from_id = task.from_id
        hour_start = task.start_ms
        while from_id is None:
            if hour_start > task.end_ms or self.abort.is_set():
                batcher.flush()
                return
            hour_end = min(hour_start + HOUR_MS - 1, task.end_ms)
            started = time.perf_counter()
            page = self.client.agg_trades(task.symbol, start_ms=hour_start, end_ms=hour_end)
            self._fetched("agg_trades", time.perf_counter() - started)
            if page.table.num_rows == 0:
                if page.received:
                    raise ExchangeError(
                        f"aggTrades for {iso_ms(hour_start)} came back outside the window: "
                        "older than the REST retention; use the archive (--source auto/archive)"
                    )
                hour_start = hour_end + 1
                continue
            ids = page.table["agg_trade_id"].to_numpy()
            batcher.add(page, covered_to=hour_end if not page.full else None, next_cursor=None)
            from_id = int(ids[-1]) + 1
            if not page.full:
                hour_start = hour_end + 1
                if hour_start > task.end_ms:
                    batcher.flush()
                    return
        while True:
            if task.to_id is not None and from_id > task.to_id:
                break
            if self.abort.is_set():
                raise Aborted
            started = time.perf_counter()
            page = self.client.agg_trades(task.symbol, from_id=from_id)
            self._fetched("agg_trades", time.perf_counter() - started)
            table = page.table
            if table.num_rows == 0:
                break
            times = table["transact_time"].cast(pa.int64()).to_numpy()
            ids = table["agg_trade_id"].to_numpy()
            keep = times <= task.end_ms
            if task.to_id is not None:
                keep &= ids <= task.to_id
            reached_end = not bool(keep.all())
            if reached_end:
                page.table = table.filter(pa.array(keep))
                ids = ids[keep]
            if ids.size:
                from_id = int(ids[-1]) + 1
            batcher.add(page, covered_to=None, next_cursor=from_id)
            if reached_end or not page.full:
                break
        batcher.flush()

    def _archive(self, task: Task) -> None:
        """One archive file, filtered to the task's range; REST when it is missing (auto)."""
        assert task.archive is not None
        name = task.dataset.name
        started = time.perf_counter()
        try:
            got = download(self.client, task.archive)
        except DataIntegrityError as error:
            with self._lock:
                self.totals[name].checksum_failures += 1
            self.reporter.event(
                "checksum_mismatch",
                level="error",
                dataset=name,
                symbol=task.symbol,
                file=task.archive.path,
                message=str(error),
            )
            if task.fallback != "rest":
                raise
            got = None
        self._fetched(name, time.perf_counter() - started)
        if got is None:
            with self._lock:
                self.totals[name].archive_missing += 1
            if task.fallback == "rest":
                for rest_task in rest_tasks(
                    task.dataset,
                    task.symbol,
                    task.param,
                    task.start_ms,
                    task.end_ms,
                    replace=task.replace,
                ):
                    self.run_task(rest_task)
                return
            self.problem(
                Problem(
                    name,
                    task.symbol,
                    "archive_missing",
                    f"{task.archive.path} is not published",
                    task.start_ms,
                    task.end_ms,
                )
            )
            return
        payload, _ = got
        table = parse_csv(task.archive, payload)
        times = table[task.dataset.time_column].cast(pa.int64()).to_numpy()
        inside = (times >= task.start_ms) & (times <= task.end_ms)
        if not inside.all():
            table = table.filter(pa.array(inside))
        with self._lock:
            self.totals[name].archive_files += 1
        page = Page(
            task.dataset, table, int(times.size), 0, 0, int(times.size) + 1, task.archive.path
        )
        batcher = self._buffer(task, "archive")
        batcher.add(page, covered_to=task.end_ms, next_cursor=None)
        batcher.flush()
        keys = table[task.dataset.key].cast(pa.int64()).to_numpy()
        self.record_exchange_gaps(task, keys, task.start_ms, task.end_ms)

    def _fetched(self, dataset: str, seconds: float) -> None:
        with self._lock:
            self.totals[dataset].fetch_seconds += seconds


def _ingest_row(row: dict[str, Any]) -> pa.Table:
    schema = INGEST_LOG.arrow_schema
    arrays = []
    for column in schema:
        value = row[column.name]
        if pa.types.is_timestamp(column.type) and isinstance(value, int):
            arrays.append(pa.array([value], pa.int64()).cast(column.type))
        else:
            arrays.append(pa.array([value], column.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class Batcher:
    """Buffers the pages of one task and writes them in batches of a few tens of thousands."""

    def __init__(self, runner: Runner, task: Task, source: str) -> None:
        self.runner = runner
        self.task = task
        self.source = source
        self.pages: list[Page] = []
        self.rows = 0
        self.covered_from = task.start_ms
        self.covered_to: int | None = None
        self.next_cursor: int | None = None
        self.opened = time.monotonic()

    def add(self, page: Page, *, covered_to: int | None, next_cursor: int | None) -> None:
        self.pages.append(page)
        self.rows += page.table.num_rows
        # How far the stored range is now known complete: for a full refresh, stored rows in
        # it that the exchange did not send are deleted.
        reached = [c for c in (self.covered_to, covered_to) if c is not None]
        if page.table.num_rows:
            times = page.table[self.task.dataset.time_column].cast(pa.int64()).to_numpy()
            reached.append(int(times.max()))
        if reached:
            self.covered_to = max(reached)
        self.next_cursor = next_cursor
        flush_rows = _FLUSH_ROWS[self.task.dataset.name]
        if self.rows >= flush_rows or time.monotonic() - self.opened > _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.pages:
            return
        table = pa.concat_tables([p.table for p in self.pages])
        cursor = self.pages[0].cursor + (
            f" (+{len(self.pages) - 1} pages)" if len(self.pages) > 1 else ""
        )
        covered = (self.covered_from, self.covered_to) if self.covered_to is not None else None
        next_iso = None
        if self.next_cursor is not None:
            next_iso = (
                str(self.next_cursor)
                if self.task.dataset is AGG_TRADES
                else iso_ms(self.next_cursor)
            )
        self.runner.write(
            self.task,
            self.pages,
            table,
            source=self.source,
            cursor=cursor,
            covered=covered,
            next_cursor=next_iso,
        )
        if self.covered_to is not None:
            self.covered_from = self.covered_to + 1
        self.pages, self.rows, self.opened = [], 0, time.monotonic()


def execute(runner: Runner, tasks: Sequence[Task], concurrency: int) -> None:
    """Run the tasks on worker threads until done or banned.

    Weight-paced work (candles, trades, archive files) gets ``concurrency`` threads; open
    interest and funding REST pages, paced by their own 5-minute counters, get two more, so a
    thread waiting for one budget never holds up work that needs the other.
    """

    def own_counter(task: Task) -> bool:
        return task.source == "rest" and task.dataset in (OPEN_INTEREST, FUNDING)

    # Long trade tasks first so that they overlap the many short candle pages.
    ordered = sorted(tasks, key=lambda t: (t.dataset is not AGG_TRADES, t.symbol, t.start_ms))
    with (
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="backfill") as weighted,
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="backfill-5m") as counted,
    ):
        futures: list[Future[None]] = [
            (counted if own_counter(task) else weighted).submit(runner.run_task, task)
            for task in ordered
        ]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        if runner.abort.is_set():
            for future in pending:
                future.cancel()
        for future in futures:
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None and not isinstance(error, (Aborted, BannedError)):
                raise error

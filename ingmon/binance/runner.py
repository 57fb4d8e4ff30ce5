"""Runs backfill tasks: connects the fetcher (pages) to the lake writer (batches), and counts.

The runner decides nothing about *what* to fetch (``plan``) or *how* (``fetch``) or how a
batch is committed (``ingmon.ingest``): it buffers chunks into batches, hands them over, keeps
the per-dataset counters and turns failures into problems.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from ingmon.binance.fetch import Aborted, Chunk, Fetcher
from ingmon.binance.pages import complete_funding_hours
from ingmon.binance.plan import Task, Unavailable, rest_tasks
from ingmon.binance.reporting import Reporter
from ingmon.errors import BannedError, DataIntegrityError, ExchangeError
from ingmon.ingest import Batch, IngestWriter, missing_slots
from ingmon.problems import Problem, RepairContext, range_problem
from ingmon.schema import interval_ms
from ingmon.times import iso_ms

__all__ = ["Runner", "Totals", "execute"]

_FLUSH_SECONDS = 10.0
# How often execute looks at the stop event while tasks run.
_STOP_POLL_SECONDS = 0.05


@dataclass
class Totals:
    """Counters of one dataset (all symbols) during a run."""

    fetched: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    deleted: int = 0
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
class Runner:
    """Executes the tasks of one backfill run and keeps its counters."""

    fetcher: Fetcher
    writer: IngestWriter
    reporter: Reporter
    context: RepairContext
    datasets: Sequence[str]
    funding_hours: dict[str, int]
    totals: dict[str, Totals] = field(init=False)
    problems: list[Problem] = field(default_factory=list)
    gaps_recorded: int = 0
    ban: BannedError | None = None
    # Tasks that did not run to their end: cancelled before they started, or Aborted.
    unfinished_tasks: int = 0

    def __post_init__(self) -> None:
        self.totals = {name: Totals() for name in self.datasets}
        self._lock = threading.Lock()
        self._halted = False

    @property
    def run_id(self) -> str:
        return self.writer.run_id

    @property
    def stop(self) -> threading.Event:
        return self.fetcher.stop

    def halt(self) -> None:
        """Stop the run from inside (a ban, an unwritable lake), which is not an interrupt."""
        self._halted = True
        self.stop.set()

    @property
    def interrupted(self) -> bool:
        """Stopped from outside (the caller set ``stop``: SIGINT, SIGTERM) with work left."""
        return self.stop.is_set() and not self._halted and self.unfinished_tasks > 0

    # ---- reporting ----------------------------------------------------------------------

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

    def unavailable(self, items: Iterable[Unavailable]) -> None:
        """Ranges no source has: each one a problem, with the command to retry it when the
        source will have it later, or saying there is nothing to do."""
        for item in items:
            found = range_problem(
                item.series,
                symbol=item.symbol,
                param=item.param,
                kind="unavailable",
                message=item.reason
                if item.later
                else f"nothing to do: {item.reason} (not fetchable from these sources)",
                start_ms=item.start_ms,
                end_ms=item.end_ms,
                context=self.context,
            )
            self.problem(found if item.later else replace(found, repair=None))

    def _task_problem(self, task: Task, kind: str, message: str) -> None:
        self.problem(
            range_problem(
                task.series,
                symbol=task.symbol,
                param=task.param,
                kind=kind,
                message=message,
                start_ms=task.start_ms,
                end_ms=task.end_ms,
                context=self.context,
            )
        )

    def count(self, dataset: str, **amounts: float) -> None:
        """Add to the counters of one dataset (thread-safe)."""
        with self._lock:
            totals = self.totals[dataset]
            for name, amount in amounts.items():
                setattr(totals, name, getattr(totals, name) + amount)

    # ---- tasks --------------------------------------------------------------------------

    def run_task(self, task: Task) -> None:
        if self.stop.is_set():
            raise Aborted
        try:
            if task.source == "archive":
                self._archive(task)
            else:
                chunks = (
                    self.fetcher.rest_series(task)
                    if task.series.time_gridded or task.series.cadence == "funding"
                    else self.fetcher.rest_trades(task)
                )
                self._store(task, "rest", chunks)
        except BannedError as error:
            self.ban = error
            self.halt()
            self.reporter.event(
                "banned",
                level="error",
                banned_until=iso_ms(error.banned_until_ms),
                message=str(error),
            )
            raise
        except OSError as error:
            # The lake cannot be written (read-only, disk full, …): nothing else will work.
            self.halt()
            self._task_problem(task, "write_failed", f"cannot write the lake: {error}")
        except (ExchangeError, DataIntegrityError) as error:
            self._task_problem(task, "fetch_failed", str(error))

    def _store(self, task: Task, source: str, chunks: Iterable[Chunk]) -> None:
        """Buffer the chunks into batches, write them, then record the exchange's own gaps."""
        batcher = Batcher(self, task, source)
        keys: list[np.ndarray[Any, Any]] = []
        for chunk in chunks:
            if task.series.time_gridded:
                keys.append(chunk.page.table[task.series.dataset.key].cast(pa.int64()).to_numpy())
            batcher.add(chunk)
        batcher.flush()
        if task.series.time_gridded and task.param is not None:
            gaps = missing_slots(
                np.concatenate(keys) if keys else np.zeros(0, np.int64),
                start_ms=task.start_ms,
                end_ms=task.end_ms,
                step_ms=interval_ms(task.param),
            )
            self._record_gaps(task, gaps)

    def _record_gaps(self, task: Task, gaps: list[tuple[int, int]]) -> None:
        step = interval_ms(task.param or "")
        for start, end in gaps:
            self.reporter.event(
                "exchange_gap",
                level="warning",
                dataset=task.dataset,
                symbol=task.symbol,
                first_missing=iso_ms(start),
                last_missing=iso_ms(end),
                missing=(end - start) // step + 1,
            )
        self.writer.record_exchange_gaps(
            task.series, symbol=task.symbol, param=task.param, gaps=gaps
        )
        # Slots the exchange has no data for are done: the progress bar ends at 100 %.
        self.reporter.advance(task.dataset, sum((end - start) // step + 1 for start, end in gaps))
        with self._lock:
            self.gaps_recorded += len(gaps)

    def _archive(self, task: Task) -> None:
        """One archive file, filtered to the task's range; REST when it is missing (auto)."""
        assert task.archive is not None
        try:
            chunk = self.fetcher.archive(task)
        except DataIntegrityError as error:
            self.count(task.dataset, checksum_failures=1)
            self.reporter.event(
                "checksum_mismatch",
                level="error",
                dataset=task.dataset,
                symbol=task.symbol,
                file=task.archive.path,
                message=str(error),
            )
            if task.fallback != "rest":
                raise
            chunk = None
        if chunk is None:
            self.count(task.dataset, archive_missing=1)
            if task.fallback == "rest":
                for rest_task in rest_tasks(
                    task.series,
                    task.symbol,
                    task.param,
                    task.start_ms,
                    task.end_ms,
                    replace=task.replace,
                ):
                    self.run_task(rest_task)
                return
            self._task_problem(task, "archive_missing", f"{task.archive.path} is not published")
            return
        self.count(task.dataset, archive_files=1)
        self._store(task, "archive", [chunk])

    def write(self, task: Task, chunks: Sequence[Chunk], covered: tuple[int, int] | None) -> None:
        """Commit one batch of chunks and count it."""
        pages = [c.page for c in chunks]
        table = pa.concat_tables([p.table for p in pages])
        if task.series.cadence == "funding":
            table = complete_funding_hours(table, self.funding_hours.get(task.symbol, 8))
        cursor = pages[0].cursor + (f" (+{len(pages) - 1} pages)" if len(pages) > 1 else "")
        started = time.perf_counter()
        written = self.writer.write(
            Batch(
                task.series,
                task.symbol,
                task.param,
                table,
                source="archive" if task.source == "archive" else "rest",
                cursor=cursor,
                fetched_at=pages[-1].fetched_at,
                replace_range=covered if task.replace else None,
            )
        )
        result = written.result
        duplicates = sum(p.duplicates for p in pages) + result.batch_duplicates
        self.count(
            task.dataset,
            fetched=table.num_rows,
            inserted=result.inserted,
            replaced=result.replaced,
            unchanged=result.unchanged,
            deleted=result.deleted,
            duplicates=duplicates,
            rejected=sum(p.rejected for p in pages),
            batches=1,
            write_seconds=time.perf_counter() - started,
        )
        next_cursor = chunks[-1].next_cursor
        self.reporter.event(
            "batch",
            dataset=task.dataset,
            symbol=task.symbol,
            interval=task.param,
            source=task.source,
            fetched=table.num_rows,
            inserted=result.inserted,
            replaced=result.replaced,
            duplicates=duplicates,
            next_cursor=None
            if next_cursor is None
            else (iso_ms(next_cursor) if task.series.cadence != "ids" else str(next_cursor)),
        )
        self.reporter.advance(task.dataset, table.num_rows)


class Batcher:
    """Buffers the chunks of one task and writes them in batches of a few tens of thousands."""

    def __init__(self, runner: Runner, task: Task, source: str) -> None:
        self.runner = runner
        self.task = task
        self.source = source
        self.chunks: list[Chunk] = []
        self.rows = 0
        self.covered_from = task.start_ms
        self.covered_to: int | None = None
        self.opened = time.monotonic()

    def add(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        table = chunk.page.table
        self.rows += table.num_rows
        reached = [c for c in (self.covered_to, chunk.covered_to) if c is not None]
        if table.num_rows:
            times = table[self.task.series.dataset.time_column].cast(pa.int64()).to_numpy()
            reached.append(int(times.max()))
        if reached:
            self.covered_to = max(reached)
        if (
            self.rows >= self.task.series.flush_rows
            or time.monotonic() - self.opened > _FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if not self.chunks:
            return
        covered = (self.covered_from, self.covered_to) if self.covered_to is not None else None
        self.runner.write(self.task, self.chunks, covered)
        if self.covered_to is not None:
            self.covered_from = self.covered_to + 1
        self.chunks, self.rows, self.opened = [], 0, time.monotonic()


def execute(runner: Runner, tasks: Sequence[Task], concurrency: int) -> None:
    """Run the tasks on worker threads until done, banned or stopped.

    Weight-paced work (candles, trades, archive files) gets ``concurrency`` threads; open
    interest and funding REST pages, paced by their own 5-minute counters, get two more, so a
    thread waiting for one budget never holds up work that needs the other.
    """

    def own_counter(task: Task) -> bool:
        return task.source == "rest" and task.series.own_counter

    # Long trade tasks first so that they overlap the many short candle pages.
    ordered = sorted(tasks, key=lambda t: (t.series.cadence != "ids", t.symbol, t.start_ms))
    with (
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="backfill") as weighted,
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="backfill-5m") as counted,
    ):
        futures: list[Future[None]] = [
            (counted if own_counter(task) else weighted).submit(runner.run_task, task)
            for task in ordered
        ]
        # wait(FIRST_EXCEPTION) alone wakes only when a task raises, and a stop set while the
        # running tasks sit in a request would leave the queue to drain: look at the stop
        # event a few times a second and cancel what has not started the moment it is set.
        pending: set[Future[None]] = set(futures)
        while pending and not runner.stop.is_set():
            done, pending = wait(pending, timeout=_STOP_POLL_SECONDS, return_when=FIRST_EXCEPTION)
            if any(not f.cancelled() and f.exception() is not None for f in done):
                break
        if runner.stop.is_set():
            for future in pending:
                future.cancel()
        # Leaving the pools waits for the running tasks: a stopped one ends within its request
        # (its waits are interruptible) and never inside a lake write.
        for future in futures:
            if future.cancelled():
                runner.unfinished_tasks += 1
                continue
            error = future.exception()
            if isinstance(error, Aborted):
                runner.unfinished_tasks += 1
            elif error is not None and not isinstance(error, BannedError):
                raise error

"""Fetching: the validated pages of one planned task, from REST or from an archive file.

Nothing here writes: a ``Fetcher`` yields ``Chunk``s (a page plus how far the task's range is
now known complete) and the runner hands them to the lake writer. Every loop checks ``stop``
between requests, and the client's waits (rate-limit windows, backoffs) end when it is set, so
a run stops within one request of being asked to. ``Aborted`` (raised then) lives with the
budgets, the lowest layer that raises it; it is re-exported here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from functools import partial

import pyarrow as pa

from ingmon.binance.archive import download, parse_csv
from ingmon.binance.client import BinanceClient
from ingmon.binance.limits import Aborted
from ingmon.binance.pages import Page
from ingmon.binance.plan import Task, Window
from ingmon.errors import DataIntegrityError, ExchangeError
from ingmon.schema import interval_ms
from ingmon.times import HOUR_MS, iso_ms

__all__ = ["Aborted", "Chunk", "Fetcher"]


@dataclass
class Chunk:
    """One validated page of a task and what it proves about the task's range."""

    page: Page
    # The task's range is complete from its start (or the last chunk) up to here: for a full
    # refresh, stored rows in it that the exchange did not send are deleted. None: unknown.
    covered_to: int | None
    # Where the next request starts (logged with the batch; None when the task is done).
    next_cursor: int | None


class Fetcher:
    """Pages of tasks from one client; ``on_fetch(dataset, seconds)`` is told of every wait."""

    def __init__(
        self,
        client: BinanceClient,
        *,
        windows: dict[str, Window],
        klines_page_limit: int,
        stop: threading.Event,
        on_fetch: Callable[[str, float], None],
    ) -> None:
        self.client = client
        self.windows = windows
        self.klines_page_limit = klines_page_limit
        self.stop = stop
        self.on_fetch = on_fetch

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Aborted

    def _timed(self, task: Task, request: Callable[[], Page]) -> Page:
        self._check_stop()
        started = time.perf_counter()
        page = request()
        self.on_fetch(task.dataset, time.perf_counter() - started)
        return page

    # ---- REST series: candles, open interest, funding ----------------------------------------

    def _series_page(self, task: Task, start_ms: int, end_ms: int, limit: int) -> Page:
        route = task.series.route
        if route == "klines":
            return self.client.klines(
                task.symbol,
                task.param or "1m",
                start_ms=start_ms,
                end_ms=end_ms,
                limit=limit,
                closed_before_ms=self.windows[task.symbol].server_now_ms,
            )
        if route == "openInterestHist":
            return self.client.open_interest(
                task.symbol, task.param or "5m", start_ms=start_ms, end_ms=end_ms, limit=limit
            )
        return self.client.funding_rates(task.symbol, start_ms=start_ms, end_ms=end_ms, limit=limit)

    def rest_series(self, task: Task) -> Iterator[Chunk]:
        """Candles, open interest and funding: time-window pages from ``task.start_ms``.

        Candle and open-interest requests never span more slots than ``limit``, so a page is
        complete whichever end of the window the exchange anchors ``limit`` to; funding pages
        are anchored at startTime (documented) and continue after the last settlement.
        """
        series = task.series
        gridded = series.time_gridded
        step = interval_ms(task.param or "") if gridded else 1
        limit = self.klines_page_limit if series.route == "klines" else series.page_limit
        cursor = task.start_ms
        while cursor <= task.end_ms:
            request_end = min(task.end_ms, cursor + (limit - 1) * step) if gridded else task.end_ms
            page = self._timed(task, partial(self._series_page, task, cursor, request_end, limit))
            keys = page.table[series.dataset.key].cast(pa.int64()).to_numpy()
            if keys.size == 0 and page.full:
                raise DataIntegrityError(f"{page.cursor}: a full page without one valid row")
            if gridded:
                next_cursor: int | None = request_end + 1
            else:
                next_cursor = int(keys[-1]) + 1 if page.full and keys.size else None
            covered_to = request_end if next_cursor is None else next_cursor - 1
            more = next_cursor is not None and next_cursor <= task.end_ms
            yield Chunk(page, covered_to, next_cursor if more else None)
            if not more:
                return
            assert next_cursor is not None
            cursor = next_cursor

    # ---- REST aggregated trades ---------------------------------------------------------

    def rest_trades(self, task: Task) -> Iterator[Chunk]:
        """Aggregate trades: find the first id by time (unless known), then page by ``fromId``."""
        from_id = task.from_id
        if from_id is None:
            found = yield from self._first_trade_id(task)
            if found is None:
                return
            from_id = found
        while task.to_id is None or from_id <= task.to_id:
            page = self._timed(task, partial(self.client.agg_trades, task.symbol, from_id=from_id))
            table = page.table
            if table.num_rows == 0:
                return
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
            yield Chunk(page, None, from_id)
            if reached_end or not page.full:
                return

    def _first_trade_id(self, task: Task) -> Generator[Chunk, None, int | None]:
        """Hour windows from ``task.start_ms`` until trades show up; return the id after the
        last one received (None when the task's range has no trades at all)."""
        hour_start = task.start_ms
        while hour_start <= task.end_ms:
            hour_end = min(hour_start + HOUR_MS - 1, task.end_ms)
            page = self._timed(
                task,
                partial(self.client.agg_trades, task.symbol, start_ms=hour_start, end_ms=hour_end),
            )
            if page.table.num_rows == 0:
                if page.received:
                    raise ExchangeError(
                        f"aggTrades for {iso_ms(hour_start)} came back outside the window: "
                        "older than the REST retention; use the archive (--source auto/archive)"
                    )
                hour_start = hour_end + 1
                continue
            last_id = int(page.table["agg_trade_id"][-1].as_py())
            yield Chunk(page, hour_end if not page.full else None, None)
            if not page.full and hour_end >= task.end_ms:
                return None  # the whole range fitted in this page
            return last_id + 1
        return None

    # ---- archive files ------------------------------------------------------------------

    def archive(self, task: Task) -> Chunk | None:
        """The task's archive file, filtered to its range, as one chunk; None when the file
        is not published. DataIntegrityError when its checksum keeps failing."""
        assert task.archive is not None
        self._check_stop()
        started = time.perf_counter()
        try:
            got = download(self.client, task.archive)
        finally:
            self.on_fetch(task.dataset, time.perf_counter() - started)
        if got is None:
            return None
        payload, _ = got
        table = parse_csv(task.archive, payload)
        times = table[task.series.dataset.time_column].cast(pa.int64()).to_numpy()
        inside = (times >= task.start_ms) & (times <= task.end_ms)
        if not inside.all():
            table = table.filter(pa.array(inside))
        received = int(times.size)
        page = Page(task.series.dataset, table, received, 0, 0, received + 1, task.archive.path)
        return Chunk(page, task.end_ms, None)

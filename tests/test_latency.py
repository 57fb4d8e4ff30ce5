"""Ingestion latency from hand-built ``ingest_log`` rows whose latencies are known by
construction: candles close one interval after their open, other events at their own time; only
live batches (REST, newest event within two steps of the fetch but at most 15 min, 60 s for
trades) are timed."""

from __future__ import annotations

import calendar
import statistics
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ingmon.lake import Lake
from ingmon.latency import ingest_latency
from ingmon.schema import INGEST_LOG

SYMBOL = "BTCUSDT"
MINUTE_MS = 60_000
DAY_MS = 86_400_000
START_MS = calendar.timegm((2026, 3, 1, 0, 0, 0)) * 1000
END_MS = START_MS + DAY_MS


def _row(
    dataset: str,
    interval: str | None,
    last_event_ms: int | None,
    written_ms: float,
    *,
    source: str = "rest",
    fetched_ms: float | None = None,
) -> dict[str, Any]:
    written_us = round(written_ms * 1000)
    fetched_us = written_us - 5_000 if fetched_ms is None else round(fetched_ms * 1000)
    return {
        "batch_id": uuid.uuid4().hex,
        "run_id": "test",
        "dataset": dataset,
        "interval": interval,
        "first_event_time": last_event_ms,
        "last_event_time": last_event_ms,
        "rows_fetched": 1,
        "rows_inserted": 1,
        "rows_replaced": 0,
        "fetched_at": fetched_us,  # by default 5 ms before the commit
        "written_at": written_us,
        "source": source,
        "request_cursor": "test",
    }


def _write(lake: Lake, rows: list[dict[str, Any]], symbol: str = SYMBOL) -> None:
    lake.upsert(
        INGEST_LOG, pa.Table.from_pylist(rows, schema=INGEST_LOG.arrow_schema), symbol=symbol
    )


def _percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p95 by the standard library (linear between order statistics)."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def test_candle_latency_counts_from_the_candle_close(lake: Lake) -> None:
    """A 1m candle opened at T closes at T + 1 min: its latency is written_at − (T + 60 s)."""
    latencies = [0.25, 1.5, 3.0, 2.0, 0.75, 10.0, 4.5, 0.5, 7.25, 1.0, 2.5]
    rows = []
    for n, seconds in enumerate(latencies):
        open_ms = START_MS + 3600_000 + n * 5 * MINUTE_MS
        rows.append(_row("candles", "1m", open_ms, open_ms + MINUTE_MS + seconds * 1000))
    _write(lake, rows)
    result = ingest_latency(lake, "candles", symbol=SYMBOL, start_ms=START_MS, end_ms=END_MS)
    p50, p95 = _percentiles(latencies)
    assert result["batches"] == len(latencies)
    assert result["last_seconds"] == pytest.approx(latencies[-1])
    assert result["p50_seconds"] == pytest.approx(p50)
    assert result["p95_seconds"] == pytest.approx(p95)


@pytest.mark.parametrize(
    ("dataset", "param"), [("agg_trades", None), ("open_interest", "5m"), ("funding", None)]
)
def test_events_close_at_their_own_time(lake: Lake, dataset: str, param: str | None) -> None:
    """Trades, open-interest snapshots and funding settlements are final at their stamp: the
    latency is written_at − last_event_time, with no step added."""
    latencies = [12.0, 0.5, 3.25, 45.0, 7.0]  # all live: within 60 s (trades) of the fetch
    event_ms = [START_MS + 7200_000 + n * 600_000 for n in range(len(latencies))]
    rows = [
        _row(dataset, param, at, at + seconds * 1000)
        for at, seconds in zip(event_ms, latencies, strict=True)
    ]
    _write(lake, rows)
    result = ingest_latency(
        lake, dataset, symbol=SYMBOL, param=param, start_ms=START_MS, end_ms=END_MS
    )
    ordered = sorted(latencies)
    assert result["batches"] == 5
    assert result["backfill_batches"] == 0
    assert result["last_seconds"] == pytest.approx(latencies[-1])
    assert result["p50_seconds"] == pytest.approx(ordered[2])  # the median of five
    # p95 of five by hand: rank 0.95 · 4 = 3.8, between the 4th and 5th smallest.
    assert result["p95_seconds"] == pytest.approx(ordered[3] + 0.8 * (ordered[4] - ordered[3]))


def test_only_the_series_and_window_asked_for(lake: Lake) -> None:
    """Other datasets, other intervals, other symbols, empty batches and batches written
    outside [start, end) are not counted; a batch of older history written later is a backfill
    batch, not the last latency."""
    in_window = [
        _row("candles", "1m", START_MS + 10 * MINUTE_MS, START_MS + 11 * MINUTE_MS + 2_000),
        # Written later but holding older events (a backfill of the day before).
        _row("candles", "1m", START_MS - DAY_MS, START_MS + 20 * MINUTE_MS),
    ]
    noise = [
        _row("candles", "5m", START_MS, START_MS + 6 * MINUTE_MS),
        _row("agg_trades", None, START_MS, START_MS + 1_000),
        _row("candles", "1m", None, START_MS + 30 * MINUTE_MS),
        _row("candles", "1m", START_MS - 2 * MINUTE_MS, START_MS - 1),  # written just before
        _row("candles", "1m", END_MS - 2 * MINUTE_MS, END_MS),  # written at the exclusive end
    ]
    _write(lake, in_window + noise)
    _write(lake, [_row("candles", "1m", START_MS, START_MS + 3 * MINUTE_MS)], symbol="ETHUSDT")
    result = ingest_latency(
        lake, "candles", symbol=SYMBOL, param="1m", start_ms=START_MS, end_ms=END_MS
    )
    assert result == {
        "batches": 1,
        "backfill_batches": 1,
        "last_seconds": pytest.approx(2.0),
        "p50_seconds": pytest.approx(2.0),
        "p95_seconds": pytest.approx(2.0),
    }


def test_no_batches(lake: Lake) -> None:
    """A series without batches in the window: zero batches and no seconds."""
    assert ingest_latency(lake, "funding", symbol=SYMBOL, start_ms=START_MS, end_ms=END_MS) == {
        "batches": 0,
        "backfill_batches": 0,
        "last_seconds": None,
        "p50_seconds": None,
        "p95_seconds": None,
    }


def test_one_batch_is_every_percentile(lake: Lake) -> None:
    """With a single batch, its latency is the last, the median and the 95th percentile."""
    _write(lake, [_row("funding", None, START_MS + 8 * 3600_000, START_MS + 8 * 3600_000 + 750)])
    result = ingest_latency(lake, "funding", symbol=SYMBOL, start_ms=START_MS, end_ms=END_MS)
    assert result == {
        "batches": 1,
        "backfill_batches": 0,
        "last_seconds": 0.75,
        "p50_seconds": 0.75,
        "p95_seconds": 0.75,
    }


def test_backfill_batches_are_counted_apart_from_the_live_latency(lake: Lake) -> None:
    """A freshly backfilled lake: archive files and REST pages of old history (latencies of
    days) are counted as backfill batches; p50/p95/last are those of the live 1m batches
    alone — REST, newest candle closed at most two minutes before the fetch."""
    head_ms = START_MS + 12 * 3600_000  # the head of the series when the backfill ran
    backfill = [
        # Archive files of the days before, written minutes apart.
        _row("candles", "1m", START_MS - 2 * DAY_MS, head_ms, source="archive"),
        _row("candles", "1m", START_MS - DAY_MS, head_ms + 60_000, source="archive"),
        # An archive file of recent candles is still not a live fetch.
        _row("candles", "1m", head_ms - 2 * MINUTE_MS, head_ms + 90_000, source="archive"),
        # REST pages of history: newest candle closed hours before the fetch.
        _row("candles", "1m", head_ms - 6 * 3600_000, head_ms + 120_000),
        # Just too old: closed 2 min + 1 s before its fetch.
        _row(
            "candles",
            "1m",
            head_ms - 3 * MINUTE_MS - 1_000,
            head_ms + 150_000,
            fetched_ms=head_ms,
        ),
    ]
    # Live: (candle open, seconds from its close to the fetch, seconds from fetch to commit).
    live_batches = [
        (head_ms - MINUTE_MS, 1.5, 0.25),
        (head_ms + 5 * MINUTE_MS, 0.5, 0.5),
        # Exactly two steps: the newest candle closed 120 s before the fetch.
        (head_ms + 10 * MINUTE_MS, 120.0, 0.75),
        (head_ms + 20 * MINUTE_MS, 3.0, 1.0),
    ]
    live = []
    expected_seconds = []
    for open_ms, to_fetch_seconds, to_commit_seconds in live_batches:
        fetched_ms = open_ms + MINUTE_MS + to_fetch_seconds * 1000
        written_ms = fetched_ms + to_commit_seconds * 1000
        live.append(_row("candles", "1m", open_ms, written_ms, fetched_ms=fetched_ms))
        expected_seconds.append(to_fetch_seconds + to_commit_seconds)
    _write(lake, backfill + live)
    result = ingest_latency(lake, "candles", symbol=SYMBOL, start_ms=START_MS, end_ms=END_MS)
    p50, p95 = _percentiles(expected_seconds)
    assert result["batches"] == 4
    assert result["backfill_batches"] == 5
    assert result["last_seconds"] == pytest.approx(expected_seconds[-1])  # 3 s + 1 s
    assert result["p50_seconds"] == pytest.approx(p50)
    assert result["p95_seconds"] == pytest.approx(p95)
    assert result["p95_seconds"] < 121  # not the days of the backfill


@pytest.mark.parametrize(
    ("dataset", "param", "step_seconds", "head_seconds"),
    [
        ("agg_trades", None, 0, 60),
        ("candles", "1m", 60, 120),
        ("open_interest", "5m", 0, 600),  # a snapshot: closes at its own time
        ("candles", "15m", 900, 900),  # two steps would be 30 min
        ("candles", "4h", 4 * 3600, 900),
        ("funding", None, 0, 900),  # two nominal 8 h steps would be 16 h
    ],
)
def test_the_head_of_each_series(
    lake: Lake, dataset: str, param: str | None, step_seconds: int, head_seconds: int
) -> None:
    """Live is a newest event that closed (a candle: open + step) at most 60 s (trades), two
    steps (1m candles, 5m open interest) or 15 min (funding, candles of 15m and longer) before
    the fetch; a second more is backfill."""
    at_ms = START_MS + 3 * 3600_000
    close_ms = at_ms + step_seconds * 1000
    rows = [
        _row(dataset, param, at_ms, close_ms + head_seconds * 1000 + 5),
        _row(dataset, param, at_ms, close_ms + (head_seconds + 1) * 1000 + 5),
    ]
    _write(lake, rows)
    result = ingest_latency(
        lake, dataset, symbol=SYMBOL, param=param, start_ms=START_MS, end_ms=START_MS + 2 * DAY_MS
    )
    assert result == {
        "batches": 1,
        "backfill_batches": 1,
        "last_seconds": pytest.approx(head_seconds + 0.005),
        "p50_seconds": pytest.approx(head_seconds + 0.005),
        "p95_seconds": pytest.approx(head_seconds + 0.005),
    }


def test_a_funding_settlement_fetched_hours_later_is_backfill(lake: Lake) -> None:
    """A backfill at 06:18 that fetched the 00:00 settlement is not a live batch 6 h 18 min
    late (it would turn ingestion to error); the next settlement, fetched by the poller 40 s
    after 08:00 and committed 0.5 s later, is live with a latency of 40.5 s."""
    midnight_ms = START_MS  # 2026-03-01T00:00Z, a settlement
    backfill_fetch_ms = midnight_ms + (6 * 60 + 18) * MINUTE_MS
    settlement_ms = midnight_ms + 8 * 3600_000
    rows = [
        _row("funding", None, midnight_ms, backfill_fetch_ms + 500, fetched_ms=backfill_fetch_ms),
        _row(
            "funding",
            None,
            settlement_ms,
            settlement_ms + 40_500,
            fetched_ms=settlement_ms + 40_000,
        ),
    ]
    _write(lake, rows)
    result = ingest_latency(lake, "funding", symbol=SYMBOL, start_ms=START_MS, end_ms=END_MS)
    assert result == {
        "batches": 1,
        "backfill_batches": 1,
        "last_seconds": pytest.approx(40.5),
        "p50_seconds": pytest.approx(40.5),
        "p95_seconds": pytest.approx(40.5),
    }

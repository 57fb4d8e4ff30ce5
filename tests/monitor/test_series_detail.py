"""The freshness drill-down's data: one series' latency over time, cadence deviations, gaps and
latest batches, checked against a hand-built hour of candles and ``ingest_log`` batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ingmon.config import Settings, load_settings
from ingmon.lake import Lake
from ingmon.monitor.series_detail import SeriesDetail, peak_indices, series_detail, series_symbols
from ingmon.schema import EXCHANGE_GAPS
from ingmon.times import MINUTE_MS, SECOND_MS
from tests.monitor._lake import (
    NOW_MS,
    SYMBOL,
    damage_partition,
    ingest_row,
    minute_grid,
    partition_version,
    write_candles,
    write_ingest_log,
    write_trades,
)

M, S = MINUTE_MS, SECOND_MS
# Candle opens of the hour before NOW: 3 slots missing (NOW-40m..-38m, a gap), 2 missing at
# the exchange itself (NOW-25m, -24m), and nothing after the candle opening NOW-11m (closed
# NOW-10m: 600 s old, beyond the 180 s error age).
MISSING = {NOW_MS - 40 * M, NOW_MS - 39 * M, NOW_MS - 38 * M}
AT_EXCHANGE = {NOW_MS - 25 * M, NOW_MS - 24 * M}
OPENS = [
    t
    for t in minute_grid(start_ms=NOW_MS - 60 * M, end_ms=NOW_MS - 10 * M)
    if t not in MISSING | AT_EXCHANGE
]


def candle_batch(last_open_ms: int, written_ms: int, *, inserted: int = 1) -> dict[str, object]:
    return ingest_row(
        dataset="candles",
        param="1m",
        last_event_ms=last_open_ms,
        written_ms=written_ms,
        rows_inserted=inserted,
    )


# The series' batches in written_at order, with the latency each live one has by hand
# (written − the close of its newest candle, open + 1 min):
A = candle_batch(NOW_MS - 20 * M, NOW_MS - 19 * M + 2 * S)  # live: 2 s
B = candle_batch(NOW_MS - 19 * M, NOW_MS - 18 * M + 5 * S)  # live: 5 s
C = candle_batch(NOW_MS - 19 * M, NOW_MS - 17 * M + 1 * S, inserted=0)  # live, nothing new: 61 s
D = candle_batch(NOW_MS - 12 * M, NOW_MS - 11 * M + 30 * S)  # live: 30 s
EMPTY = ingest_row(
    dataset="candles", param="1m", last_event_ms=None, written_ms=NOW_MS - 10 * M + S // 2
)
E = candle_batch(NOW_MS - 11 * M, NOW_MS - 10 * M + 3 * S)  # live: 3 s
# Not live: an archive file, and a REST page of history fetched 19 min after its candle closed.
ARCHIVE = ingest_row(
    dataset="candles",
    param="1m",
    last_event_ms=NOW_MS - 61 * M,
    written_ms=NOW_MS - 59 * M,
    source="archive",
    rows_inserted=60,
)
OLD_PAGE = candle_batch(NOW_MS - 50 * M, NOW_MS - 30 * M)
# Not this series: open interest, 5m candles, and a live batch written before the window.
OTHERS = [
    ingest_row(
        dataset="open_interest",
        param="5m",
        last_event_ms=NOW_MS - 15 * M,
        written_ms=NOW_MS - 14 * M,
    ),
    ingest_row(
        dataset="candles", param="5m", last_event_ms=NOW_MS - 20 * M, written_ms=NOW_MS - 15 * M + S
    ),
    candle_batch(NOW_MS - 63 * M, NOW_MS - 62 * M + 2 * S),
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The hour before NOW_MS as the module's constants describe it."""
    settings = load_settings(env_file=None, data_dir=tmp_path / "root")
    lake = Lake(settings.lake_dir)
    write_candles(lake, open_times_ms=OPENS)
    lake.upsert(
        EXCHANGE_GAPS,
        pa.Table.from_pylist(
            [
                {
                    "gap_id": "candles/1m/x",
                    "dataset": "candles",
                    "interval": "1m",
                    "start_time": min(AT_EXCHANGE),
                    "end_time": max(AT_EXCHANGE),
                    "detected_at": NOW_MS * 1000,
                }
            ],
            schema=EXCHANGE_GAPS.arrow_schema,
        ),
        symbol=SYMBOL,
    )
    # Stored out of order: the detail orders by written_at itself.
    write_ingest_log(lake, [E, OLD_PAGE, C, A, *OTHERS, EMPTY, D, ARCHIVE, B])
    return settings


def detail_of(settings: Settings, *, batch_limit: int = 50) -> SeriesDetail:
    """BTCUSDT's 1m candles over the hour before NOW_MS."""
    return series_detail(
        Lake(settings.lake_dir),
        settings,
        dataset="candles",
        symbol=SYMBOL,
        window_hours=1,
        now_ms=NOW_MS,
        batch_limit=batch_limit,
    )


def test_latency_is_each_live_batch_with_events(settings: Settings) -> None:
    """Latency points are the live batches with events, in written order (the one that
    inserted nothing included); archive files and late history pages are backfill."""
    detail = detail_of(settings)
    latency = detail.latency
    assert latency.written_ms.tolist() == [
        NOW_MS - 19 * M + 2 * S,
        NOW_MS - 18 * M + 5 * S,
        NOW_MS - 17 * M + 1 * S,
        NOW_MS - 11 * M + 30 * S,
        NOW_MS - 10 * M + 3 * S,
    ]
    assert latency.latency_seconds.tolist() == [2.0, 5.0, 61.0, 30.0, 3.0]
    assert latency.backfill_batches == 2
    assert (latency.warn_seconds, latency.error_seconds) == (120.0, 300.0)
    assert detail.batches == 8 and detail.has_log


def test_cadence_deviations_between_successful_batches(settings: Settings) -> None:
    """Intervals between successive batches that inserted rows (A→B 63 s, B→D 445 s, D→E 33 s)
    over the expected 60 s: ratios 0.05 ok, 6.42 error (above 4), −0.45 ok; the interval
    still open at NOW (597 s since E) is an error too."""
    cadence = detail_of(settings).cadence
    assert cadence.expected_seconds == 60.0
    assert cadence.written_ms.tolist() == [
        NOW_MS - 18 * M + 5 * S,
        NOW_MS - 11 * M + 30 * S,
        NOW_MS - 10 * M + 3 * S,
    ]
    assert cadence.interval_seconds.tolist() == [63.0, 445.0, 33.0]
    assert np.allclose(cadence.deviation_ratio, [63 / 60 - 1, 445 / 60 - 1, 33 / 60 - 1])
    assert cadence.statuses == ("ok", "error", "ok")
    assert (cadence.warn_ratio, cadence.error_ratio) == (1.0, 4.0)
    assert cadence.last_success_ms == NOW_MS - 10 * M + 3 * S
    assert cadence.open_interval_seconds == 597.0
    assert cadence.open_status == "error"


def test_gaps_timeline_has_the_gap_the_exchange_gap_and_the_stale_tail(settings: Settings) -> None:
    """Three slots missing (a counted gap), two missing at the exchange (shown, not counted)
    and the stale tail from the last close to now, in time order; 45 candles stored."""
    detail = detail_of(settings)
    spans = [(g.kind, g.start_ms, g.end_ms, g.missing) for g in detail.gaps]
    assert spans == [
        ("missing", NOW_MS - 40 * M, NOW_MS - 37 * M, 3),
        ("exchange", NOW_MS - 25 * M, NOW_MS - 23 * M, 2),
        ("stale", NOW_MS - 10 * M, NOW_MS, None),
    ]
    assert detail.gaps[0].label.startswith("3 slots missing: 2026-02-28T23:20:00")
    assert detail.rows == 45
    assert detail.last_event_close_ms == NOW_MS - 10 * M
    assert (detail.age_seconds, detail.freshness) == (600.0, "error")


def test_latest_batches_newest_first_with_their_latency(settings: Settings) -> None:
    """The series' batches written in the window, newest first, each live or not, with the
    latency of the live ones; ``batch_limit`` keeps the newest."""
    detail = detail_of(settings)
    rows = detail.latest_batches
    assert [row.written_ms for row in rows] == [
        NOW_MS - 10 * M + 3 * S,
        NOW_MS - 10 * M + S // 2,
        NOW_MS - 11 * M + 30 * S,
        NOW_MS - 17 * M + 1 * S,
        NOW_MS - 18 * M + 5 * S,
        NOW_MS - 19 * M + 2 * S,
        NOW_MS - 30 * M,
        NOW_MS - 59 * M,
    ]
    assert [row.latency_seconds for row in rows] == [3.0, None, 30.0, 61.0, 5.0, 2.0, None, None]
    assert [row.live for row in rows] == [True, False, True, True, True, True, False, False]
    newest = rows[0]
    assert newest.fetched_ms == newest.written_ms - 5
    assert (newest.first_event_ms, newest.last_event_ms) == (NOW_MS - 11 * M,) * 2
    assert (newest.rows_fetched, newest.rows_inserted, newest.source) == (1, 1, "rest")
    assert rows[1].last_event_ms is None and rows[1].rows_fetched == 0
    assert rows[-1].source == "archive" and rows[-1].rows_inserted == 60
    limited = detail_of(settings, batch_limit=3).latest_batches
    assert [row.batch_id for row in limited] == [row.batch_id for row in rows[:3]]


def test_a_series_without_ingest_log(settings: Settings) -> None:
    """Candles stored but no batch logged for open interest: no latency, no cadence, no
    batches — and nothing stored: no rows, freshness unknown."""
    detail = series_detail(
        Lake(settings.lake_dir),
        settings,
        dataset="open_interest",
        symbol="SOLUSDT",
        window_hours=1,
        now_ms=NOW_MS,
    )
    assert not detail.has_log and detail.batches == 0
    assert detail.latency.written_ms.size == 0 and detail.cadence.interval_seconds.size == 0
    assert detail.cadence.open_interval_seconds is None and detail.cadence.open_status is None
    assert detail.latest_batches == () and detail.gaps == ()
    assert detail.rows == 0 and detail.freshness == "unknown" and detail.param == "5m"


def test_trade_id_gaps_are_placed_between_the_trades_around_them(settings: Settings) -> None:
    """Aggregate ids 5..7 missing: the range runs from the trade before to the trade after."""
    lake = Lake(settings.lake_dir)
    times = {n: NOW_MS - 30 * M + n * S for n in range(1, 11)}
    write_trades(lake, trades=[(n, t) for n, t in times.items() if n not in (5, 6, 7)])
    detail = series_detail(
        lake, settings, dataset="agg_trades", symbol=SYMBOL, window_hours=1, now_ms=NOW_MS
    )
    missing = [g for g in detail.gaps if g.kind == "missing"]
    assert [(g.start_ms, g.end_ms, g.missing) for g in missing] == [(times[4], times[8], 3)]
    assert "trade ids 5..7 missing" in missing[0].label


def test_a_damaged_ingest_log_is_said_not_raised(settings: Settings) -> None:
    """A damaged ingest_log partition: no batches, and the problem names it."""
    lake = Lake(settings.lake_dir)
    damage_partition(partition_version(lake, dataset="ingest_log", partition="day=2026-02-28"))
    detail = detail_of(settings)
    assert detail.batches == 0
    assert any("ingest log cannot be read" in problem for problem in detail.problems)
    assert detail.rows == 45  # the candles themselves are still read


def test_unknown_dataset_and_the_window_bound(settings: Settings) -> None:
    """An unknown dataset is a ValueError naming the known ones; the window is capped."""
    lake = Lake(settings.lake_dir)
    with pytest.raises(ValueError, match="expected one of candles"):
        series_detail(lake, settings, dataset="nope", symbol=SYMBOL, now_ms=NOW_MS)
    wide = series_detail(
        lake, settings, dataset="candles", symbol=SYMBOL, window_hours=10_000, now_ms=NOW_MS
    )
    assert wide.end_ms - wide.start_ms == 7 * 24 * 60 * M
    default = series_detail(lake, settings, dataset="candles", symbol=SYMBOL, now_ms=NOW_MS)
    assert default.end_ms - default.start_ms == 24 * 60 * M


def test_series_symbols_lists_every_symbol_with_data(settings: Settings) -> None:
    """Symbols with market data or an ingest log, sorted; none in an empty lake."""
    lake = Lake(settings.lake_dir)
    write_trades(lake, symbol="ETHUSDT", trades=[(1, NOW_MS - M)])
    assert series_symbols(lake) == ["BTCUSDT", "ETHUSDT"]
    assert series_symbols(Lake(settings.data_dir / "nowhere")) == []


def test_peak_indices_keep_the_ends_and_each_runs_largest() -> None:
    """Ten values in a budget of five: the ends, and the largest of runs [1, 3), [3, 6) and
    [6, 9); a short series is kept whole; a budget under three is an error."""
    values = [0, 5, 1, 2, 9, 3, 0, 7, 1, 4]
    assert peak_indices(values, 5).tolist() == [0, 1, 4, 7, 9]
    assert peak_indices(values, 10).tolist() == list(range(10))
    assert peak_indices([], 5).tolist() == []
    with pytest.raises(ValueError, match="at least 3"):
        peak_indices(values, 2)

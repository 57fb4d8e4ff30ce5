"""The health model against hand-built lakes and ingest logs whose latency, cadence, gaps,
duplicates, damage and ages are known by construction."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ingmon.config import Settings, load_settings
from ingmon.lake import Lake
from ingmon.monitor.health import (
    HealthSnapshot,
    SeriesStatus,
    build_snapshot,
    read_snapshot,
    worst,
    write_snapshot,
)
from ingmon.schema import EXCHANGE_GAPS
from ingmon.times import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS
from tests.monitor._lake import (
    NOW_MS,
    SYMBOL,
    damage_partition,
    healthy_lake,
    ingest_row,
    minute_grid,
    partition_version,
    save_backtest,
    signal_row,
    write_candles,
    write_funding,
    write_ingest_log,
    write_signals,
    write_trades,
)

WINDOW_START_MS = NOW_MS - DAY_MS  # the default 24 h health window


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env_file=None, data_dir=tmp_path)


def build(lake: Lake, settings: Settings, *, now_ms: int) -> HealthSnapshot:
    """The snapshot of SYMBOL (named: some lakes here hold no candles to find it by)."""
    return build_snapshot(lake, settings, symbols=[SYMBOL], now_ms=now_ms)


def series_of(snapshot: HealthSnapshot, dataset: str, symbol: str = SYMBOL) -> SeriesStatus:
    [found] = [s for s in snapshot.series if s.dataset == dataset and s.symbol == symbol]
    return found


def fresh_candles(lake: Lake, *, now_ms: int = NOW_MS, skip: range = range(0)) -> list[int]:
    """1m candles over the whole window, the last one closing at ``now_ms``, minus the slots
    whose index is in ``skip``."""
    grid = minute_grid(start_ms=now_ms - DAY_MS, end_ms=now_ms)
    kept = [t for n, t in enumerate(grid) if n not in skip]
    write_candles(lake, open_times_ms=kept)
    return kept


def delivered(written_ms: float, **fields: Any) -> dict[str, Any]:
    """A successful live candle batch: its newest candle closed 1 s before the commit."""
    return ingest_row(
        dataset="candles",
        param="1m",
        last_event_ms=int(written_ms) - MINUTE_MS - SECOND_MS,
        written_ms=written_ms,
        **fields,
    )


# ---- statuses ----------------------------------------------------------------------------------


def test_worst_orders_error_warn_unknown_ok() -> None:
    """worst(): error beats warn beats unknown beats ok; nothing at all is ok."""
    assert worst(["ok", "unknown", "warn", "error"]) == "error"
    assert worst(["ok", "unknown", "warn"]) == "warn"
    assert worst(["ok", "unknown"]) == "unknown"
    assert worst(["ok", "ok"]) == "ok"
    assert worst([]) == "ok"


def test_a_healthy_lake_is_ok_everywhere(lake: Lake, settings: Settings) -> None:
    """Live candles, trades, open interest and funding delivered 2 s late on their grid: every
    series ok, the ages and cadences those of the grid."""
    healthy_lake(lake)
    snapshot = build(lake, settings, now_ms=NOW_MS)
    assert snapshot.status == "ok"
    assert [s.status for s in snapshot.series] == ["ok"] * 4
    assert [s.dataset for s in snapshot.series] == [
        "candles",
        "agg_trades",
        "open_interest",
        "funding",
    ]
    candles = series_of(snapshot, "candles")
    # The candle closing at NOW is written 2 s later: the newest stored closes at NOW − 1 min.
    assert candles.freshness.age_seconds == 60.0
    assert candles.rows == 1439
    assert candles.latency.p95_seconds == pytest.approx(2.0)
    assert candles.cadence.last_interval_seconds == pytest.approx(60.0)
    assert candles.cadence.open_interval_seconds == pytest.approx(58.0)
    funding = series_of(snapshot, "funding")
    assert funding.freshness.age_seconds == 8 * 3600.0  # the 16:00 settlement
    assert funding.cadence.expected_seconds == 8 * 3600.0
    assert series_of(snapshot, "open_interest").cadence.expected_seconds == 300.0
    assert series_of(snapshot, "agg_trades").cadence.expected_seconds == 60.0


# ---- latency -----------------------------------------------------------------------------------


def test_latency_percentiles_of_the_live_batches(lake: Lake, settings: Settings) -> None:
    """p50/p95/last of written_at − candle close over the live batches in the window, as
    statistics.quantiles(method="inclusive") gives them; an archive batch is a backfill batch."""
    latencies = [0.4, 2.5, 1.0, 7.75, 3.0, 0.9, 12.5, 1.6]
    rows = []
    for n, seconds in enumerate(latencies):
        open_ms = NOW_MS - 20 * HOUR_MS + n * 10 * MINUTE_MS
        close_ms = open_ms + MINUTE_MS
        rows.append(
            ingest_row(
                dataset="candles",
                param="1m",
                last_event_ms=open_ms,
                written_ms=close_ms + seconds * 1000,
                fetched_ms=close_ms + 100,
            )
        )
    rows.append(
        ingest_row(
            dataset="candles",
            param="1m",
            last_event_ms=NOW_MS - 3 * DAY_MS,
            written_ms=NOW_MS - 10 * HOUR_MS,
            source="archive",
        )
    )
    write_ingest_log(lake, rows)
    latency = series_of(build(lake, settings, now_ms=NOW_MS), "candles").latency
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    assert latency.batches == 8
    assert latency.backfill_batches == 1
    assert latency.last_seconds == pytest.approx(1.6)
    assert latency.p50_seconds == pytest.approx(cuts[49])
    assert latency.p95_seconds == pytest.approx(cuts[94])
    assert latency.status == "ok"


@pytest.mark.parametrize(
    ("seconds", "status"),
    [(120.0, "ok"), (120.1, "warn"), (300.0, "warn"), (300.1, "error")],
)
def test_latency_status_at_the_thresholds(
    lake: Lake, settings: Settings, seconds: float, status: str
) -> None:
    """One live batch: its latency is the p95; above 120 s warns, above 300 s is an error
    (the thresholds themselves are still the better status)."""
    close_ms = NOW_MS - HOUR_MS
    write_ingest_log(
        lake,
        [
            ingest_row(
                dataset="candles",
                param="1m",
                last_event_ms=close_ms - MINUTE_MS,
                written_ms=close_ms + seconds * 1000,
                fetched_ms=close_ms + 1000,  # fetched at the head, committed late
            )
        ],
    )
    candles = series_of(build(lake, settings, now_ms=NOW_MS), "candles")
    assert candles.latency.p95_seconds == pytest.approx(seconds)
    assert candles.latency.status == status


# ---- cadence -----------------------------------------------------------------------------------


def test_cadence_intervals_between_successful_live_batches(lake: Lake, settings: Settings) -> None:
    """Successful live batches written at +0, 60, 125, 180 and 300 s: intervals 60, 65, 55 and
    120 s; the last is 60 s over the expected 60 s (ratio 1.0: not above the warn ratio).
    A live batch that inserted nothing, an archive batch, an empty batch and a REST page of old
    history written in between are not deliveries."""
    base = NOW_MS - HOUR_MS
    rows = [delivered(base + s * 1000) for s in (0, 60, 125, 180, 300)]
    rows += [
        delivered(base + 200_000, rows_inserted=0),
        delivered(base + 250_000, source="archive"),
        ingest_row(dataset="candles", param="1m", last_event_ms=None, written_ms=base + 270_000),
        ingest_row(
            dataset="candles", param="1m", last_event_ms=base - DAY_MS, written_ms=base + 280_000
        ),
    ]
    write_ingest_log(lake, rows)
    now = base + 310_000
    cadence = series_of(build(lake, settings, now_ms=now), "candles").cadence
    assert cadence.expected_seconds == 60.0
    assert cadence.batches == 5
    assert cadence.last_interval_seconds == pytest.approx(120.0)
    assert cadence.median_interval_seconds == pytest.approx(62.5)
    assert cadence.max_interval_seconds == pytest.approx(120.0)
    assert cadence.deviation_seconds == pytest.approx(60.0)
    assert cadence.deviation_ratio == pytest.approx(1.0)
    assert cadence.last_success_written_ms == base + 300_000
    assert cadence.open_interval_seconds == pytest.approx(10.0)
    assert cadence.status == "ok"


@pytest.mark.parametrize(
    ("last_interval_seconds", "status"),
    [(120.0, "ok"), (120.5, "warn"), (300.0, "warn"), (300.5, "error")],
)
def test_cadence_status_at_the_thresholds(
    lake: Lake, settings: Settings, last_interval_seconds: float, status: str
) -> None:
    """Last interval / 60 s − 1 above 1.0 warns, above 4.0 is an error; the series takes the
    cadence's status (freshness unknown: no candles stored, latency ok)."""
    base = NOW_MS - HOUR_MS
    last = base + 60_000 + last_interval_seconds * 1000
    write_ingest_log(lake, [delivered(base), delivered(base + 60_000), delivered(last)])
    candles = series_of(build(lake, settings, now_ms=int(last) + 1000), "candles")
    assert candles.cadence.deviation_ratio == pytest.approx(last_interval_seconds / 60 - 1)
    assert candles.cadence.status == status
    assert candles.freshness.status == "unknown"
    assert candles.latency.status == "ok"
    assert candles.status == status


def test_a_stalled_delivery_turns_the_cadence_bad_before_the_next_batch(
    lake: Lake, settings: Settings
) -> None:
    """No batch since the last successful one: now − its written_at is judged like an
    interval, at .at() as at a build — ok up to 120 s, warn beyond, error beyond 300 s."""
    base = NOW_MS - HOUR_MS
    last = base + 60_000
    write_ingest_log(lake, [delivered(base), delivered(last)])
    built = series_of(build(lake, settings, now_ms=last + 1000), "candles")
    assert built.cadence.status == "ok"
    expected = {120_000: "ok", 120_001: "warn", 300_000: "warn", 300_001: "error"}
    for after_ms, status in expected.items():
        aged = built.at(last + after_ms)
        assert aged.cadence.open_interval_seconds == pytest.approx(after_ms / 1000)
        assert aged.cadence.status == status
        assert aged.status == status
        rebuilt = series_of(build(lake, settings, now_ms=last + after_ms), "candles")
        assert rebuilt.cadence == aged.cadence


def test_one_delivery_gives_no_cadence_until_it_is_overdue(lake: Lake, settings: Settings) -> None:
    """A single successful batch: no interval, cadence unknown — until the open interval
    alone breaches the warn ratio."""
    written = NOW_MS - HOUR_MS
    write_ingest_log(lake, [delivered(written)])
    candles = series_of(build(lake, settings, now_ms=written + 30_000), "candles")
    assert candles.cadence.batches == 1
    assert candles.cadence.last_interval_seconds is None
    assert candles.cadence.status == "unknown"
    assert candles.at(written + 120_000).cadence.status == "unknown"
    assert candles.at(written + 120_001).cadence.status == "warn"
    assert candles.at(written + 300_001).cadence.status == "error"


def test_funding_every_four_hours_shifts_thresholds_and_cadence(
    lake: Lake, settings: Settings
) -> None:
    """A 4 h funding interval: freshness thresholds 4 h earlier than the 8 h defaults (8 h 5 m
    → 4 h 5 m, 8 h 30 m → 4 h 30 m) and an expected cadence of 4 h."""
    write_funding(lake, times_ms=[NOW_MS - n * 4 * HOUR_MS for n in range(1, 8)], interval_hours=4)
    funding = series_of(build(lake, settings, now_ms=NOW_MS), "funding")
    assert funding.freshness.warn_seconds == 4 * 3600 + 300
    assert funding.freshness.error_seconds == 4 * 3600 + 1800
    assert funding.freshness.age_seconds == 4 * 3600.0
    assert funding.freshness.status == "ok"
    assert funding.cadence.expected_seconds == 4 * 3600.0
    assert funding.at(NOW_MS - 4 * HOUR_MS + (4 * 3600 + 301) * 1000).freshness.status == "warn"


# ---- freshness and ageing ----------------------------------------------------------------------


def test_freshness_ages_at_the_exact_thresholds(lake: Lake, settings: Settings) -> None:
    """Candles up to the one closing at NOW: age 0. Judged later, the age grows by the
    elapsed time: ok up to 90 s, warn up to 180 s, error beyond (candles' defaults)."""
    fresh_candles(lake)
    snapshot = build(lake, settings, now_ms=NOW_MS)
    candles = series_of(snapshot, "candles")
    assert candles.freshness.last_event_close_ms == NOW_MS
    assert (candles.freshness.age_seconds, candles.status) == (0.0, "ok")
    assert (candles.freshness.warn_seconds, candles.freshness.error_seconds) == (90.0, 180.0)
    for after_ms, status in (
        (90_000, "ok"),
        (90_100, "warn"),
        (180_000, "warn"),
        (180_100, "error"),
    ):
        aged = snapshot.at(NOW_MS + after_ms)
        assert aged.now_ms == NOW_MS + after_ms
        assert aged.generated_at_ms == NOW_MS
        entry = series_of(aged, "candles")
        assert entry.freshness.age_seconds == after_ms / 1000
        assert entry.freshness.status == status
        assert entry.status == status
        # The three datasets never stored stay unknown: the snapshot is the worst of all.
        assert aged.status == worst([status, "unknown"])
        assert aged.series[0] == entry or status == "ok"  # worst first


def test_freshness_thresholds_come_from_the_settings(tmp_path: Path, lake: Lake) -> None:
    """INGMON_CANDLES_FRESHNESS_* set to 30/45 s: a 40 s old candle warns."""
    fresh_candles(lake)
    settings = load_settings(
        env_file=None,
        data_dir=tmp_path,
        candles_freshness_warn_seconds=30,
        candles_freshness_error_seconds=45,
    )
    candles = series_of(build(lake, settings, now_ms=NOW_MS + 40_000), "candles")
    assert (candles.freshness.warn_seconds, candles.freshness.error_seconds) == (30.0, 45.0)
    assert candles.freshness.status == "warn"


def test_the_snapshot_records_the_limits_the_worker_judged_with(tmp_path: Path, lake: Lake) -> None:
    """settings_used carries the worker's interval and alert limits (the server reads them),
    and survives the JSON round trip."""
    fresh_candles(lake)
    settings = load_settings(
        env_file=None,
        data_dir=tmp_path,
        worker_interval_seconds=90,
        alert_no_signals_seconds=7200,
        alert_max_drawdown_ratio=0.4,
    )
    snapshot = build(lake, settings, now_ms=NOW_MS)
    used = HealthSnapshot.from_dict(snapshot.to_dict()).settings_used
    assert used["worker_interval_seconds"] == 90
    assert used["alert_no_signals_seconds"] == 7200
    assert used["alert_max_drawdown_ratio"] == 0.4


def test_never_stored_is_unknown_and_stored_long_ago_is_an_error(
    lake: Lake, settings: Settings
) -> None:
    """A dataset never stored for the symbol: unknown, with the integrity model's ``empty``
    problem. Candles whose newest closed 3 days ago (none in the window): freshness judged on
    that newest candle, 259200 s old, an error."""
    write_candles(
        lake, open_times_ms=minute_grid(start_ms=NOW_MS - 4 * DAY_MS, end_ms=NOW_MS - 3 * DAY_MS)
    )
    snapshot = build(lake, settings, now_ms=NOW_MS)
    for dataset in ("agg_trades", "open_interest", "funding"):
        entry = series_of(snapshot, dataset)
        assert entry.status == "unknown"
        assert entry.rows == 0
        assert entry.freshness.status == "unknown"
        assert [p["kind"] for p in entry.problems] == ["empty"]
    candles = series_of(snapshot, "candles")
    assert candles.rows == 0
    assert candles.freshness.last_event_close_ms == NOW_MS - 3 * DAY_MS
    assert candles.freshness.age_seconds == 3 * 86400.0
    assert candles.status == "error"
    assert [p["kind"] for p in candles.problems] == ["empty"]
    assert snapshot.series[0] == candles  # worst first


# ---- integrity ---------------------------------------------------------------------------------


def test_a_gap_in_the_candles_warns(lake: Lake, settings: Settings) -> None:
    """Five 1m slots missing inside the window: one gap of 5, a warn (fresh otherwise)."""
    fresh_candles(lake, skip=range(100, 105))
    candles = series_of(build(lake, settings, now_ms=NOW_MS), "candles")
    assert (candles.gaps, candles.missing, candles.rows) == (1, 5, 1440 - 5)
    assert candles.freshness.status == "ok"
    assert candles.status == "warn"
    [problem] = candles.problems
    assert problem["kind"] == "internal_gap"
    assert problem["missing"] == 5


def test_duplicated_trades_warn(lake: Lake, settings: Settings) -> None:
    """Trade id 10 stored under two UTC days (two partitions): one duplicate, a warn."""
    now = NOW_MS + 12 * HOUR_MS
    write_trades(lake, trades=[(n, NOW_MS - 100_000 + n * 1000) for n in range(1, 11)])
    write_trades(lake, trades=[(n, now - 21_000 + n * 1000) for n in range(10, 21)])
    trades = series_of(build(lake, settings, now_ms=now), "agg_trades")
    assert trades.duplicates == 1
    assert trades.gaps == 0
    assert trades.freshness.age_seconds == 1.0
    assert trades.status == "warn"
    assert [p["kind"] for p in trades.problems] == ["duplicates"]


def test_a_damaged_partition_is_an_error(lake: Lake, settings: Settings) -> None:
    """The candles' February partition cut in half: the series is an error naming the file,
    nothing else about it is judged."""
    fresh_candles(lake)
    version = partition_version(lake, dataset="candles", param="1m", partition="month=2026-02")
    damage_partition(version)
    candles = series_of(build(lake, settings, now_ms=NOW_MS), "candles")
    assert candles.corrupt_files == (str(version),)
    assert candles.freshness.status == "unknown"
    assert candles.status == "error"
    assert [p["kind"] for p in candles.problems] == ["corrupt_partition"]


def test_a_damaged_exchange_gaps_partition_is_an_error_not_a_crash(
    lake: Lake, settings: Settings
) -> None:
    """A healthy lake whose exchange_gaps partition (one known 1-minute maintenance hole) is
    cut in half: the snapshot is built; candles, open interest and funding are still judged
    (freshness ok) and are errors naming the file; so is the snapshot. Trades are ok: the
    exchange's gaps never explain a gap in trade ids, so their judgement does not need them."""
    healthy_lake(lake)
    hole_ms = NOW_MS - 2 * HOUR_MS
    gap = {
        "gap_id": f"candles/1m/{hole_ms}",
        "dataset": "candles",
        "interval": "1m",
        "start_time": hole_ms,
        "end_time": hole_ms,
        "detected_at": NOW_MS * 1000,
    }
    lake.upsert(
        EXCHANGE_GAPS, pa.Table.from_pylist([gap], schema=EXCHANGE_GAPS.arrow_schema), symbol=SYMBOL
    )
    version = partition_version(lake, dataset="exchange_gaps", partition="year=2026")
    damage_partition(version)
    snapshot = build(lake, settings, now_ms=NOW_MS)
    assert snapshot.status == "error"
    assert series_of(snapshot, "agg_trades").status == "ok"
    for dataset in ("candles", "open_interest", "funding"):
        entry = series_of(snapshot, dataset)
        assert entry.status == "error"
        assert entry.freshness.status == "ok"
        assert entry.corrupt_files == (str(version),)
        (problem,) = entry.problems
        assert (problem["kind"], problem["severity"], problem["file"], problem["source"]) == (
            "corrupt_partition",
            "error",
            str(version),
            "exchange_gaps",
        )


def test_a_damaged_ingest_log_partition_is_listed_on_every_series(
    lake: Lake, settings: Settings
) -> None:
    """The log of the whole window (one day partition) cut in half: latency and cadence are
    unknown and each series is an error naming the log file — the snapshot no longer ok."""
    healthy_lake(lake)
    version = partition_version(lake, dataset="ingest_log", partition="day=2026-02-28")
    damage_partition(version)
    snapshot = build(lake, settings, now_ms=NOW_MS)
    assert snapshot.status == "error"
    assert len(snapshot.series) == 4
    for entry in snapshot.series:
        assert (entry.latency.status, entry.cadence.status) == ("unknown", "unknown")
        assert entry.freshness.status == "ok"
        assert entry.corrupt_files == (str(version),)
        assert entry.status == "error"
        (problem,) = entry.problems
        assert (problem["kind"], problem["severity"], problem["file"], problem["source"]) == (
            "corrupt_partition",
            "error",
            str(version),
            "ingest_log",
        )


def test_a_damaged_scores_partition_makes_the_snapshot_an_error(
    lake: Lake, settings: Settings
) -> None:
    """A healthy lake with one scored signal whose scores partition is cut in half: the signal
    still counts (unscored), the damage is a signal problem, and the snapshot is an error
    though every series is ok."""
    healthy_lake(lake)
    write_signals(lake, [signal_row(bar_open_ms=NOW_MS - HOUR_MS)])
    version = partition_version(lake, dataset="scores", param="15m", partition="month=2026-02")
    damage_partition(version)
    snapshot = build(lake, settings, now_ms=NOW_MS)
    assert [s.status for s in snapshot.series] == ["ok"] * 4
    (btc,) = snapshot.signals.symbols
    assert (btc.window_count, btc.by_confidence) == (1, {"unscored": 1})
    assert btc.last_signal_ms == NOW_MS - 45 * MINUTE_MS - 1
    assert [p["file"] for p in snapshot.signals.problems] == [str(version)]
    assert snapshot.status == "error"
    assert HealthSnapshot.from_dict(json.loads(json.dumps(snapshot.to_dict()))) == snapshot


# ---- the snapshot ------------------------------------------------------------------------------


class CountingLake(Lake):
    """A lake that counts its reads of ingest_log."""

    log_reads = 0

    def read(self, ds: Any, **kwargs: Any) -> Any:
        if getattr(ds, "name", ds) == "ingest_log":
            self.log_reads += 1
        return super().read(ds, **kwargs)


def test_symbols_default_to_those_with_candles_and_the_log_is_read_once_each(
    tmp_path: Path, settings: Settings
) -> None:
    """Default symbols: those with candles (ETHUSDT has only funding); ingest_log is read once
    per symbol for all four series."""
    lake = CountingLake(tmp_path / "lake")
    healthy_lake(lake)
    write_candles(lake, symbol="SOLUSDT", open_times_ms=[NOW_MS - MINUTE_MS])
    write_funding(lake, symbol="ETHUSDT", times_ms=[NOW_MS - HOUR_MS])
    snapshot = build_snapshot(lake, settings, now_ms=NOW_MS)
    assert snapshot.symbols == ("BTCUSDT", "SOLUSDT")
    assert len(snapshot.series) == 8
    assert lake.log_reads == 2
    only = build_snapshot(lake, settings, symbols=["ETHUSDT"], now_ms=NOW_MS)
    assert {s.symbol for s in only.series} == {"ETHUSDT"}
    assert series_of(only, "funding", "ETHUSDT").freshness.age_seconds == 3600.0


def test_round_trip_through_json_and_the_state_file(lake: Lake, settings: Settings) -> None:
    """to_dict → JSON → from_dict gives the same snapshot (signals and KPIs included);
    write_snapshot/read_snapshot through state/health.json too."""
    healthy_lake(lake)
    # SOLUSDT: one old candle and nothing else, problems (with repair commands) to carry.
    write_candles(lake, symbol="SOLUSDT", open_times_ms=[NOW_MS - HOUR_MS])
    write_signals(lake, [signal_row(bar_open_ms=NOW_MS - HOUR_MS, score=None)])
    save_backtest(lake)
    snapshot = build_snapshot(lake, settings, now_ms=NOW_MS)
    assert snapshot.performance and snapshot.signals.counts
    assert snapshot.series[0].symbol == "SOLUSDT" and snapshot.series[0].problems
    assert HealthSnapshot.from_dict(json.loads(json.dumps(snapshot.to_dict()))) == snapshot
    path = write_snapshot(settings.state_dir, snapshot)
    assert path == settings.state_dir / "health.json"
    assert read_snapshot(settings.state_dir) == snapshot
    aged = snapshot.at(NOW_MS + HOUR_MS)
    assert HealthSnapshot.from_dict(json.loads(json.dumps(aged.to_dict()))) == aged


@pytest.mark.parametrize(
    "text",
    ["", '{"schema": "ingmon.health/v1", "generated', "[1, 2]", '{"schema": "other/v9"}', "\xff"],
)
def test_read_snapshot_of_a_damaged_file_is_none(tmp_path: Path, text: str) -> None:
    """A truncated, foreign or undecodable health.json reads as no snapshot, without raising."""
    (tmp_path / "health.json").write_bytes(text.encode("latin-1"))
    assert read_snapshot(tmp_path) is None


def test_read_snapshot_without_a_file_is_none(tmp_path: Path) -> None:
    """No state directory yet: no snapshot."""
    assert read_snapshot(tmp_path / "state") is None

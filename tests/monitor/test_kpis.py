"""Signal counts from hand-placed signals and performance KPIs of real saved backtest runs,
recomputed by brute force over the stored trades and the equity curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingmon.lake import Lake
from ingmon.monitor.kpis import (
    PerformanceKPI,
    SignalCount,
    SignalHealth,
    performance_kpis,
    signal_health,
)
from ingmon.times import DAY_MS, HOUR_MS, MINUTE_MS
from tests.monitor._lake import (
    NOW_MS,
    damage_partition,
    partition_version,
    save_backtest,
    signal_row,
    write_signals,
)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def placed_signals(lake: Lake) -> None:
    """BTCUSDT's signals (15m bars unless said; a bar closes at open + 15 min − 1 ms):
    a 22:00 squeeze 5/high, b 22:30 exhaustion 3/low, c 23:45 squeeze 5/high (closes 1 ms
    before NOW), d 00:00 on NOW's day (not closed yet at NOW), e Feb 27 23:45 absorption
    6/medium (closes 1 ms before the window), f Feb 21 23:45 (closes 1 ms before the 7 days),
    g Feb 22 00:00 absorption 6/medium, h Feb 28 10:00 divergence unscored, i a 1h bar at
    20:00 squeeze 5/high. ETHUSDT: one signal 30 days ago."""
    write_signals(
        lake,
        [
            signal_row(bar_open_ms=NOW_MS - 2 * HOUR_MS),
            signal_row(
                bar_open_ms=NOW_MS - 90 * MINUTE_MS, setup="exhaustion", score=3, confidence="low"
            ),
            signal_row(bar_open_ms=NOW_MS - 15 * MINUTE_MS),
            signal_row(bar_open_ms=NOW_MS),
            signal_row(
                bar_open_ms=NOW_MS - DAY_MS - 15 * MINUTE_MS,
                setup="absorption",
                score=6,
                confidence="medium",
            ),
            signal_row(bar_open_ms=NOW_MS - 7 * DAY_MS - 15 * MINUTE_MS),
            signal_row(
                bar_open_ms=NOW_MS - 7 * DAY_MS, setup="absorption", score=6, confidence="medium"
            ),
            signal_row(bar_open_ms=NOW_MS - 14 * HOUR_MS, setup="divergence", score=None),
            signal_row(bar_open_ms=NOW_MS - 4 * HOUR_MS, timeframe="1h"),
        ],
    )
    write_signals(lake, [signal_row(bar_open_ms=NOW_MS - 30 * DAY_MS)], symbol="ETHUSDT")


def test_signal_counts_per_hour_and_day(lake: Lake) -> None:
    """Window (24 h): a, b, c, h, i by the hour of their close; days (7): those plus e and g
    by UTC day; d is not closed yet, f is too old; the newest is c, 1 ms before NOW."""
    placed_signals(lake)
    health = signal_health(
        lake, symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"], now_ms=NOW_MS, window_hours=24
    )
    btc, eth, sol = health.symbols
    assert btc.last_signal_ms == NOW_MS - 1
    assert btc.window_count == 5
    assert btc.by_setup == {"divergence": 1, "exhaustion": 1, "squeeze_fire": 3}
    assert btc.by_confidence == {"high": 3, "low": 1, "unscored": 1}
    assert btc.by_score == {-1: 1, 3: 1, 5: 3}
    assert health.since_last_signal_seconds("BTCUSDT", NOW_MS) == pytest.approx(0.001)

    def hour(n: int, setup: str, confidence: str, score: int) -> SignalCount:
        return SignalCount("BTCUSDT", "hour", NOW_MS - n * HOUR_MS, setup, confidence, score, 1)

    def day(n: int, setup: str, confidence: str, score: int, count: int = 1) -> SignalCount:
        return SignalCount("BTCUSDT", "day", NOW_MS - n * DAY_MS, setup, confidence, score, count)

    assert sorted(health.counts, key=repr) == sorted(
        [
            hour(14, "divergence", "unscored", -1),
            hour(4, "squeeze_fire", "high", 5),
            hour(2, "exhaustion", "low", 3),
            hour(2, "squeeze_fire", "high", 5),
            hour(1, "squeeze_fire", "high", 5),
            day(7, "absorption", "medium", 6),
            day(2, "absorption", "medium", 6),
            day(1, "divergence", "unscored", -1),
            day(1, "exhaustion", "low", 3),
            day(1, "squeeze_fire", "high", 5, count=3),
        ],
        key=repr,
    )
    # ETHUSDT's only signal is a month old: still its newest; SOLUSDT never had one.
    assert eth.last_signal_ms == NOW_MS - 30 * DAY_MS + 15 * MINUTE_MS - 1
    assert (eth.window_count, eth.by_setup) == (0, {})
    assert health.since_last_signal_seconds("ETHUSDT", NOW_MS) == pytest.approx(
        30 * 86400 - 900 + 0.001
    )
    assert (sol.last_signal_ms, sol.window_count) == (None, 0)
    assert health.since_last_signal_seconds("SOLUSDT", NOW_MS) is None
    assert health.since_last_signal_seconds("XRPUSDT", NOW_MS) is None


def test_a_shorter_window_counts_fewer_hours_but_the_same_days(lake: Lake) -> None:
    """A 6 h window leaves h (14 h before NOW) out of the hours, not out of the days."""
    placed_signals(lake)
    health = signal_health(lake, symbols=["BTCUSDT"], now_ms=NOW_MS, window_hours=6)
    assert health.symbols[0].window_count == 4
    assert sum(c.count for c in health.counts if c.granularity == "hour") == 4
    assert sum(c.count for c in health.counts if c.granularity == "day") == 7


def test_empty_lake_gives_empty_results(lake: Lake) -> None:
    """No signals and no runs: zero counts, no buckets, no KPIs — no exception."""
    health = signal_health(lake, symbols=["BTCUSDT"], now_ms=NOW_MS, window_hours=24)
    assert health.counts == ()
    assert health.symbols[0].last_signal_ms is None
    assert performance_kpis(lake, symbols=["BTCUSDT"]) == ()
    assert signal_health(lake, symbols=[], now_ms=NOW_MS, window_hours=24) == SignalHealth(24)


def test_damaged_signals_are_skipped(lake: Lake) -> None:
    """A damaged signals partition does not break the health: that timeframe counts nothing,
    and the damaged file is listed as a problem of the signal health."""
    placed_signals(lake)
    version = partition_version(lake, dataset="signals", param="15m", partition="month=2026-02")
    damage_partition(version)
    health = signal_health(lake, symbols=["BTCUSDT"], now_ms=NOW_MS, window_hours=24)
    assert health.symbols[0].window_count == 1  # the 1h signal only
    assert health.symbols[0].last_signal_ms == NOW_MS - 3 * HOUR_MS - 1
    (problem,) = health.problems
    assert (problem["dataset"], problem["param"], problem["kind"], problem["file"]) == (
        "signals",
        "15m",
        "corrupt_partition",
        str(version),
    )


def test_a_damaged_scores_partition_counts_the_signals_unscored(lake: Lake) -> None:
    """BTCUSDT's February 15m scores cut in half: a, b, c and h still count in the window (now
    unscored), i (1h, its own scores) keeps its score; the newest is still c; one problem
    names the file."""
    placed_signals(lake)
    version = partition_version(lake, dataset="scores", param="15m", partition="month=2026-02")
    damage_partition(version)
    health = signal_health(lake, symbols=["BTCUSDT"], now_ms=NOW_MS, window_hours=24)
    (btc,) = health.symbols
    assert btc.last_signal_ms == NOW_MS - 1
    assert btc.window_count == 5
    assert btc.by_setup == {"divergence": 1, "exhaustion": 1, "squeeze_fire": 3}
    assert btc.by_confidence == {"high": 1, "unscored": 4}
    assert btc.by_score == {-1: 4, 5: 1}
    (problem,) = health.problems
    assert (problem["dataset"], problem["param"], problem["severity"], problem["file"]) == (
        "scores",
        "15m",
        "error",
        str(version),
    )
    assert SignalHealth.from_dict(health.to_dict()) == health


def test_the_newest_signal_of_a_quiet_symbol_reads_only_the_newest_partitions(
    lake: Lake,
) -> None:
    """ETHUSDT: a signal in January (30 days ago) and one in December whose partition is
    damaged. Nothing in the last 7 days, so the newest is looked up — from the newest
    partition back, stopping at January: the December damage is never met."""
    placed_signals(lake)
    december_ms = NOW_MS - 70 * DAY_MS  # 2025-12-21
    write_signals(lake, [signal_row(bar_open_ms=december_ms)], symbol="ETHUSDT")
    version = partition_version(
        lake, dataset="signals", symbol="ETHUSDT", param="15m", partition="month=2025-12"
    )
    damage_partition(version)
    health = signal_health(lake, symbols=["ETHUSDT"], now_ms=NOW_MS, window_hours=24)
    assert health.symbols[0].last_signal_ms == NOW_MS - 30 * DAY_MS + 15 * MINUTE_MS - 1
    assert health.problems == ()


class SummaryCountingLake(Lake):
    """A lake that counts the backtest_runs rows read with their summary document."""

    summaries_read = 0

    def read(self, ds: Any, **kwargs: Any) -> Any:
        table = super().read(ds, **kwargs)
        if "summary" in (kwargs.get("columns") or ()):
            self.summaries_read += table.num_rows
        return table


def test_only_the_latest_runs_summary_is_read(tmp_path: Path) -> None:
    """Three saved runs: the KPIs are the newest's, and one summary document is read."""
    lake = SummaryCountingLake(tmp_path / "lake")
    for n, run_id in enumerate(("bt-a", "bt-b", "bt-c")):
        save_backtest(lake, seed=5 + n, created_at_ms=NOW_MS - (2 - n) * DAY_MS, run_id=run_id)
    kpis = performance_kpis(lake, symbols=["BTCUSDT"])
    assert {k.run_id for k in kpis} == {"bt-c"}
    assert [k.setup for k in kpis] == ["all", "exhaustion", "squeeze_fire"]
    assert lake.summaries_read == 1


def test_kpis_of_the_latest_run_recomputed_from_its_trades(lake: Lake) -> None:
    """The newer of two saved runs: trades, hit rate (net return > 0) and expectancy (mean net
    return) over its stored trades, whole and per setup, by a plain loop; max drawdown by a
    running peak over its equity curve; no run, no KPI."""
    save_backtest(lake, seed=5, created_at_ms=NOW_MS - DAY_MS, run_id="bt-older")
    run = save_backtest(lake, seed=6, created_at_ms=NOW_MS, run_id="bt-newer")
    kpis = performance_kpis(lake, symbols=["BTCUSDT", "ETHUSDT"])

    trades = lake.read("backtest_trades", symbols="BTCUSDT").to_pylist()
    mine = [t for t in trades if t["run_id"] == "bt-newer"]
    assert len(mine) >= 10

    def expected(setup: str, rows: list[dict[str, object]]) -> PerformanceKPI:
        returns = [float(str(r["net_return"])) for r in rows]
        wins = 0
        total = 0.0
        for value in returns:
            wins += value > 0
            total += value
        return PerformanceKPI(
            symbol="BTCUSDT",
            setup=setup,
            run_id="bt-newer",
            created_at_ms=NOW_MS,
            trades=len(rows),
            hit_rate=wins / len(rows),
            expectancy=total / len(rows),
            max_drawdown=None,
        )

    peak = run.config.initial_equity
    drawdown = 0.0
    for value in run.overall.result.equity:
        peak = max(peak, value)
        drawdown = max(drawdown, (peak - value) / peak)

    setups = sorted({str(t["setup"]) for t in mine})
    assert setups == ["exhaustion", "squeeze_fire"]
    assert [k.setup for k in kpis] == ["all", *setups]
    whole, *per_setup = kpis
    reference = expected("all", mine)
    assert (whole.run_id, whole.created_at_ms, whole.trades) == ("bt-newer", NOW_MS, len(mine))
    assert whole.hit_rate == pytest.approx(reference.hit_rate, abs=1e-12)
    assert whole.expectancy == pytest.approx(reference.expectancy, rel=1e-9)
    assert whole.max_drawdown == pytest.approx(drawdown, rel=1e-9)
    for kpi, setup in zip(per_setup, setups, strict=True):
        rows = [t for t in mine if t["setup"] == setup]
        reference = expected(setup, rows)
        assert kpi.trades == reference.trades
        assert kpi.hit_rate == pytest.approx(reference.hit_rate, abs=1e-12)
        assert kpi.expectancy == pytest.approx(reference.expectancy, rel=1e-9)
        assert kpi.max_drawdown is None


def test_round_trip_of_the_kpi_records(lake: Lake) -> None:
    """SignalHealth and PerformanceKPI survive to_dict/from_dict (score keys as strings)."""
    placed_signals(lake)
    save_backtest(lake)
    health = signal_health(lake, symbols=["BTCUSDT"], now_ms=NOW_MS, window_hours=24)
    assert SignalHealth.from_dict(health.to_dict()) == health
    for kpi in performance_kpis(lake, symbols=["BTCUSDT"]):
        assert PerformanceKPI.from_dict(kpi.to_dict()) == kpi

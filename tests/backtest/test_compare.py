"""Comparing saved runs (ingmon.backtest.compare): the run list, realised and exported equity,
drawdown, downsampling to a point budget, window reports, breakdowns and the report links —
checked against hand-worked values and brute-force loops over real saved runs."""

from __future__ import annotations

import bisect
import itertools
import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingmon.backtest.compare import (
    COMPARISON_METRICS,
    Curve,
    SavedRun,
    Series,
    breakdown_rows,
    comparison_rows,
    curve_series,
    downsample,
    downsample_indices,
    drawdown,
    exported_curve,
    latest_reports,
    realised_curve,
    run_summary,
    run_trades,
    saved_runs,
    steps,
    trades_in_window,
    window_labels,
    window_report,
)
from ingmon.backtest.engine import BacktestConfig, Bars
from ingmon.backtest.export import equity_frame, save_run, write_exports
from ingmon.backtest.run import BacktestRun, run_backtests
from ingmon.errors import DataIntegrityError
from ingmon.lake import Lake
from ingmon.reports.state import ReportRun, record_run
from ingmon.times import DAY_MS, parse_instant_ms
from tests.backtest._market import START_MS, random_bars, random_signals

Saved = tuple[Path, dict[str, BacktestRun]]
SETUPS = ("squeeze_fire", "exhaustion", "absorption")
CONFIDENCES = ("high", "medium", "low")


def _run(
    *, seed: int, symbol: str, created_at_ms: int, signals: bool = True, bars: int = 3 * 1440
) -> BacktestRun:
    """A real run on a seeded random walk: random signals with setups, scores (some missing)
    and confidences; whole data and 1d/2d trailing windows."""
    frame = random_bars(seed, bars)
    chosen = random_signals(seed, frame, probability=0.01 if signals else 0.0)
    rng = np.random.default_rng(seed)
    count = len(chosen)
    chosen["setup"] = [SETUPS[n % len(SETUPS)] for n in range(count)]
    scores = rng.integers(0, 8, count).astype("float64")
    scores[rng.random(count) < 0.1] = np.nan
    chosen["score"] = scores
    chosen["confidence"] = [CONFIDENCES[int(n) % 3] for n in rng.integers(0, 3, count)]
    return run_backtests(
        Bars.from_frame(frame),
        chosen,
        config=BacktestConfig(hold_bars=60, stop_pct=0.004, take_profit_pct=0.006),
        window_days=(2, 1),
        symbol=symbol,
        source="lake",
        timeframe="15m",
        created_at_ms=created_at_ms,
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    """A data root with three saved runs (BTCUSDT older, ETHUSDT newer, SOLUSDT without
    trades), each exported under backtests/<run_id>/."""
    root = tmp_path_factory.mktemp("compare")
    lake = Lake(root / "lake")
    runs = {
        "btc": _run(seed=3, symbol="BTCUSDT", created_at_ms=START_MS + 4 * DAY_MS),
        "eth": _run(seed=4, symbol="ETHUSDT", created_at_ms=START_MS + 5 * DAY_MS),
        "sol": _run(seed=5, symbol="SOLUSDT", created_at_ms=START_MS + 3 * DAY_MS, signals=False),
    }
    for run in runs.values():
        save_run(lake, run)
        write_exports(run, root / "backtests" / run.run_id, ("json", "csv"))
    return root, runs


def _headline(root: Path, run: BacktestRun) -> SavedRun:
    return next(r for r in saved_runs(Lake(root / "lake")) if r.run_id == run.run_id)


# ---- the run list and a run's data --------------------------------------------------------------


def test_saved_runs_are_newest_first_with_their_headline(saved: Saved) -> None:
    """Every saved run, newest first, with symbol, trades, data range and a picker label."""
    root, runs = saved
    listed = saved_runs(Lake(root / "lake"))
    assert [r.run_id for r in listed] == [runs[k].run_id for k in ("eth", "btc", "sol")]
    eth = listed[0]
    assert eth.symbol == "ETHUSDT"
    assert eth.trades == runs["eth"].overall.metrics["trades"] > 0
    assert eth.created_at_ms == START_MS + 5 * DAY_MS
    assert eth.data_start_ms == START_MS
    assert eth.label == f"ETHUSDT · 2026-01-06 00:00 UTC · {eth.trades} trades"
    assert listed[2].trades == 0 and listed[2].label.endswith("· 0 trades")


def test_no_saved_runs_is_an_empty_list(tmp_path: Path) -> None:
    """An empty lake has no runs (not an error)."""
    assert saved_runs(Lake(tmp_path / "lake")) == []


def test_run_trades_are_the_runs_trades_in_order(saved: Saved) -> None:
    """The saved trades of one run (not another symbol's), numbered and timed as the engine
    made them."""
    root, runs = saved
    run = runs["btc"]
    trades = run_trades(Lake(root / "lake"), _headline(root, run))
    engine = run.overall.result.trades
    assert list(trades["sequence"]) == list(range(1, len(engine) + 1))
    assert set(trades["run_id"]) == {run.run_id}
    assert list(trades["entry_time_ms"]) == list(engine["entry_time"])
    assert list(trades["exit_time_ms"]) == list(engine["exit_time"])
    np.testing.assert_allclose(trades["pnl"], engine["pnl"], rtol=0, atol=0)


def test_a_run_without_trades_reads_as_empty(saved: Saved) -> None:
    """A zero-trade run: no trades, a flat realised curve, no breakdown slices."""
    root, runs = saved
    headline = _headline(root, runs["sol"])
    lake = Lake(root / "lake")
    trades = run_trades(lake, headline)
    assert trades.empty
    curve = realised_curve(
        trades,
        initial_equity=10_000.0,
        start_ms=headline.data_start_ms,
        end_ms=headline.data_end_ms,
    )
    assert list(curve.equity) == [10_000.0, 10_000.0]
    assert list(curve.time_ms) == [headline.data_start_ms, headline.data_end_ms]
    assert list(curve.drawdown) == [0.0, 0.0]
    summary = run_summary(lake, headline)
    assert summary is not None
    report = window_report(summary, "all")
    assert report is not None
    assert breakdown_rows(report, "setup") == []


# ---- equity and drawdown ------------------------------------------------------------------------


def test_drawdown_matches_a_hand_loop() -> None:
    """E / running peak − 1, the peak starting at the initial equity: hand-worked and a loop."""
    equity = np.array([100.0, 110.0, 99.0, 105.0, 121.0, 90.75, 95.0])
    expected = [0.0, 0.0, 99 / 110 - 1, 105 / 110 - 1, 0.0, 90.75 / 121 - 1, 95 / 121 - 1]
    np.testing.assert_allclose(drawdown(equity, 100.0), expected, rtol=1e-15)
    assert drawdown(equity, 100.0)[5] == pytest.approx(-0.25)
    # below the initial equity from the start: the peak is the initial equity
    np.testing.assert_allclose(drawdown(np.array([90.0, 95.0]), 100.0), [-0.1, -0.05])
    rng = np.random.default_rng(1)
    walk = 1000 + np.cumsum(rng.normal(0, 10, 500))
    peak, looped = 1000.0, []
    for value in walk:
        peak = max(peak, value)
        looped.append((value - peak) / peak)
    np.testing.assert_allclose(drawdown(walk, 1000.0), looped, rtol=1e-12, atol=1e-15)


def test_drawdown_needs_a_positive_initial_equity() -> None:
    with pytest.raises(ValueError, match="initial equity"):
        drawdown(np.array([1.0]), 0.0)


def test_realised_curve_steps_at_each_exit() -> None:
    """Hand-worked: the start, one point per exit in exit order (ties in trade order), held to
    the end."""
    trades = pd.DataFrame(
        {
            "sequence": [1, 2, 3],
            "exit_time_ms": [5_000, 3_000, 5_000],
            "pnl": [10.0, -20.0, 5.0],
        }
    )
    curve = realised_curve(trades, initial_equity=100.0, start_ms=1_000, end_ms=9_000)
    assert list(curve.time_ms) == [1_000, 3_000, 5_000, 5_000, 9_000]
    assert list(curve.equity) == [100.0, 80.0, 90.0, 95.0, 95.0]
    np.testing.assert_allclose(curve.drawdown, [0.0, -0.2, -0.1, -0.05, -0.05])
    assert curve.source == "trades"


def test_realised_curve_of_a_saved_run_ends_at_its_final_equity(saved: Saved) -> None:
    """Initial equity + Σ PnL = the run's final equity (every position is closed at the end)."""
    root, runs = saved
    run = runs["eth"]
    headline = _headline(root, run)
    trades = run_trades(Lake(root / "lake"), headline)
    curve = realised_curve(
        trades,
        initial_equity=10_000.0,
        start_ms=headline.data_start_ms,
        end_ms=headline.data_end_ms,
    )
    assert len(curve) == len(trades) + 2
    assert curve.equity[-1] == pytest.approx(run.overall.metrics["final_equity"], rel=1e-12)
    # realised drawdown never exceeds the mark-to-market one (it sees fewer prices)
    assert -curve.drawdown.min() <= run.overall.metrics["max_drawdown"] + 1e-12


def test_exported_curve_reads_equity_csv(saved: Saved) -> None:
    """The daily export: one point per UTC day at its close (the last at the run's end),
    equity and drawdown (negated) as written."""
    root, runs = saved
    run = runs["btc"]
    end_ms = _headline(root, run).data_end_ms + 60_000
    curve = exported_curve(root / "backtests" / run.run_id, end_ms=end_ms)
    assert curve is not None and curve.source == "daily"
    frame = equity_frame(run)
    np.testing.assert_allclose(curve.equity, frame["equity"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(curve.drawdown, -frame["drawdown"].to_numpy(), rtol=1e-12)
    days = [parse_instant_ms(f"{d}T00:00:00Z") + DAY_MS for d in frame["date"]]
    assert list(curve.time_ms) == [min(day, end_ms) for day in days]


def test_exported_curve_missing_or_damaged(tmp_path: Path) -> None:
    """No equity.csv: None; a file that is not the export: DataIntegrityError naming it."""
    assert exported_curve(tmp_path / "nothing") is None
    (tmp_path / "equity.csv").write_text("when,value\n1,2\n")
    with pytest.raises(DataIntegrityError, match=r"equity\.csv"):
        exported_curve(tmp_path)


# ---- downsampling -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_downsampling_keeps_extremes_and_endpoints_within_budget(seed: int) -> None:
    """Brute force over random series and budgets: at most ``budget`` points, strictly
    increasing positions, the first and last point, the global min and max, and each bucket's
    min and max; a series that fits is kept whole."""
    rng = np.random.default_rng(seed)
    for _ in range(30):
        count = int(rng.integers(1, 6000))
        budget = int(rng.integers(4, 3000))
        values = np.cumsum(rng.normal(0, 1, count))
        if rng.random() < 0.3:
            values = np.round(values)  # ties
        keep = downsample_indices(values, budget)
        assert len(keep) <= budget
        assert np.all(np.diff(keep) > 0)
        if count <= budget:
            assert list(keep) == list(range(count))
            continue
        assert keep[0] == 0 and keep[-1] == count - 1
        kept = values[keep]
        assert kept.min() == values.min() and kept.max() == values.max()
        buckets = (budget - 2) // 2
        edges = np.linspace(1, count - 1, buckets + 1).astype(int)
        positions = keep.tolist()
        for start, stop in itertools.pairwise(edges.tolist()):
            inside = positions[
                bisect.bisect_left(positions, start) : bisect.bisect_left(positions, stop)
            ]
            assert min(values[inside]) == values[start:stop].min()
            assert max(values[inside]) == values[start:stop].max()


def test_downsample_hand_worked() -> None:
    """Budget 6 on 10 points: the ends and the min/max of two buckets of the 8 between."""
    values = np.array([5.0, 1.0, 9.0, 2.0, 3.0, 4.0, 0.0, 8.0, 6.0, 7.0])
    times = np.arange(10, dtype=np.int64) * 1000
    # buckets over positions 1..8: [1, 5) and [5, 9)
    assert list(downsample_indices(values, 6)) == [0, 1, 2, 6, 7, 9]
    series = downsample(times, values, 6)
    assert list(series.values) == [5.0, 1.0, 9.0, 0.0, 8.0, 7.0]
    assert list(series.time_ms) == [0, 1000, 2000, 6000, 7000, 9000]
    with pytest.raises(ValueError, match="at least 4"):
        downsample_indices(values, 3)


def test_steps_draw_a_step_function() -> None:
    """(t0, v0), (t1, v0), (t1, v1), (t2, v1), (t2, v2): 2n − 1 points."""
    stepped = steps(Series(np.array([0, 10, 20]), np.array([1.0, 2.0, 3.0])))
    assert list(stepped.time_ms) == [0, 10, 10, 20, 20]
    assert list(stepped.values) == [1.0, 1.0, 2.0, 2.0, 3.0]


@pytest.mark.parametrize("source", ["trades", "daily"])
def test_curve_series_stay_within_the_budget(source: str) -> None:
    """Equity and drawdown of a long curve, ready to draw: ≤ budget points each, global
    extremes and both ends kept (realised curves as steps)."""
    rng = np.random.default_rng(9)
    count = 50_000
    time_ms = np.arange(count, dtype=np.int64) * 60_000
    equity = 10_000 + np.cumsum(rng.normal(0, 5, count))
    curve = Curve(time_ms, equity, drawdown(equity, 10_000.0), source)  # type: ignore[arg-type]
    for budget in (8, 9, 100, 2000):
        top, bottom = curve_series(curve, budget)
        for series, original in ((top, curve.equity), (bottom, curve.drawdown)):
            assert len(series) <= budget
            assert series.values.min() == original.min()
            assert series.values.max() == original.max()
            assert series.time_ms[0] == time_ms[0] and series.time_ms[-1] == time_ms[-1]
            assert series.values[-1] == original[-1]
            assert np.all(np.diff(series.time_ms) >= 0)
    with pytest.raises(ValueError, match="at least 8"):
        curve_series(curve, 7)


# ---- windows, comparison, breakdowns ------------------------------------------------------------


def test_window_reports_all_and_trailing(saved: Saved) -> None:
    """``all`` is the whole data's part of the document; a trailing label is its window;
    a window the run lacks is None."""
    root, runs = saved
    run = runs["btc"]
    summary = run_summary(Lake(root / "lake"), _headline(root, run))
    assert summary is not None
    assert window_labels(summary) == ["1d", "2d"]
    whole = window_report(summary, "all")
    assert whole is not None
    assert whole["metrics"]["trades"] == run.overall.metrics["trades"]
    one_day = window_report(summary, "1d")
    assert one_day is not None and one_day["label"] == "1d"
    assert one_day["metrics"]["trades"] == next(
        w.metrics["trades"] for w in run.windows if w.window.label == "1d"
    )
    assert window_report(summary, "30d") is None


def test_comparison_rows_are_metrics_by_runs(saved: Saved) -> None:
    """One row per comparison metric, one value per run; None for a run without the window."""
    root, runs = saved
    lake = Lake(root / "lake")
    summaries = [run_summary(lake, _headline(root, runs[k])) for k in ("btc", "eth")]
    reports = [window_report(s or {}, "1d") for s in summaries] + [None]
    rows = comparison_rows(reports)
    assert [metric for metric, _ in rows] == list(COMPARISON_METRICS)
    by_key = {metric.key: values for metric, values in rows}
    assert by_key["trades"][:2] == [
        next(w.metrics["trades"] for w in runs[k].windows if w.window.label == "1d")
        for k in ("btc", "eth")
    ]
    assert by_key["trades"][2] is None


@pytest.mark.parametrize("by", ["setup", "score", "confidence"])
def test_breakdowns_equal_a_groupby_over_the_saved_trades(saved: Saved, by: str) -> None:
    """Each slice's trades, wins, losses, hit rate, expectancy and net PnL equal a brute-force
    loop over the run's trades as saved in the lake (unlabelled trades in no slice)."""
    root, runs = saved
    lake = Lake(root / "lake")
    for key in ("btc", "eth"):
        headline = _headline(root, runs[key])
        summary = run_summary(lake, headline)
        assert summary is not None
        report = window_report(summary, "all")
        assert report is not None
        rows = breakdown_rows(report, by)
        trades = run_trades(lake, headline)
        groups: dict[str, list[tuple[float, float]]] = {}
        for _, trade in trades.iterrows():
            label = trade[by]
            if label is None or label is pd.NA or (isinstance(label, float) and math.isnan(label)):
                continue
            groups.setdefault(str(label), []).append((trade["net_return"], trade["pnl"]))
        assert {row["value"] for row in rows} == set(groups)
        for row in rows:
            members = groups[row["value"]]
            returns = [r for r, _ in members]
            assert row["trades"] == len(members)
            assert row["wins"] == sum(1 for r in returns if r > 0)
            assert row["losses"] == sum(1 for r in returns if r < 0)
            assert row["hit_rate"] == pytest.approx(row["wins"] / len(members))
            assert row["expectancy"] == pytest.approx(sum(returns) / len(returns), rel=1e-12)
            assert row["net_pnl"] == pytest.approx(sum(p for _, p in members), rel=1e-12)
        if by == "score":
            assert [row["value"] for row in rows] == sorted((row["value"] for row in rows), key=int)
        if by == "confidence":
            order = ["high", "medium", "low"]
            assert [row["value"] for row in rows] == [c for c in order if c in groups]


def test_trades_in_window_keeps_entries_inside(saved: Saved) -> None:
    """The trades entering in ``[start, end)`` of the window; ``all`` keeps every trade."""
    root, runs = saved
    lake = Lake(root / "lake")
    headline = _headline(root, runs["btc"])
    summary = run_summary(lake, headline) or {}
    trades = run_trades(lake, headline)
    whole = window_report(summary, "all")
    assert whole is not None
    assert len(trades_in_window(trades, whole)) == len(trades)
    report = window_report(summary, "1d")
    assert report is not None
    start, end = parse_instant_ms(report["start"]), parse_instant_ms(report["end"])
    inside = trades_in_window(trades, report)
    expected = [
        s
        for s, t in zip(trades["sequence"], trades["entry_time_ms"], strict=True)
        if start <= t < end
    ]
    assert list(inside["sequence"]) == expected
    assert 0 < len(expected) < len(trades)


# ---- report links -------------------------------------------------------------------------------


def _report_run(root: Path, *, status: str, finished_ms: int, html: Path | None) -> ReportRun:
    return ReportRun(
        report="backtest",
        notebook="backtest_report.ipynb",
        day=date(2026, 1, 5),
        status=status,
        parameters={},
        started_ms=finished_ms - 30_000,
        finished_ms=finished_ms,
        outputs={"html": str(html)} if html else {},
        failure=None if status == "success" else "cell 3 raised ValueError: boom",
    )


def test_latest_reports_name_the_last_good_html(tmp_path: Path) -> None:
    """None before any run; after a success its HTML (existing); after a later failure the
    status is failed and the link still points at the last good HTML."""
    assert latest_reports(tmp_path) == []
    html = tmp_path / "reports" / "backtest" / "2026-01-05" / "backtest.html"
    html.parent.mkdir(parents=True)
    html.write_text("<html></html>")
    record_run(tmp_path, _report_run(tmp_path, status="success", finished_ms=START_MS, html=html))
    (link,) = latest_reports(tmp_path)
    assert (link.report, link.last_status, link.html, link.html_exists) == (
        "backtest",
        "success",
        html,
        True,
    )
    assert link.last_success_finished_ms == START_MS
    record_run(
        tmp_path, _report_run(tmp_path, status="failed", finished_ms=START_MS + 1, html=None)
    )
    (link,) = latest_reports(tmp_path)
    assert link.last_status == "failed" and link.html == html
    assert link.last_failure_message == "cell 3 raised ValueError: boom"
    html.unlink()
    assert latest_reports(tmp_path)[0].html_exists is False


def test_latest_reports_unreadable_state_is_an_integrity_error(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "reports.json").write_text(json.dumps({"nope": 1}))
    with pytest.raises(DataIntegrityError, match=r"reports\.json"):
        latest_reports(tmp_path)


def test_run_trades_keep_runs_of_one_symbol_apart(tmp_path: Path) -> None:
    """Two saved runs of the same symbol: each reads only its own trades."""
    lake = Lake(tmp_path / "lake")
    first = _run(seed=7, symbol="BTCUSDT", created_at_ms=START_MS + 3 * DAY_MS)
    second = _run(seed=8, symbol="BTCUSDT", created_at_ms=START_MS + 4 * DAY_MS)
    for run in (first, second):
        save_run(lake, run)
    by_id = {headline.run_id: headline for headline in saved_runs(lake)}
    for run in (first, second):
        trades = run_trades(lake, by_id[run.run_id])
        assert set(trades["run_id"]) == {run.run_id}
        assert len(trades) == run.overall.metrics["trades"]

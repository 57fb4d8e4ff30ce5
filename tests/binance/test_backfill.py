"""The backfill against the local exchange over real HTTP: exact data, resume, faults, input."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from ingmon.binance.backfill import SUMMARY_SCHEMA, BackfillRequest, run_backfill
from ingmon.binance.reporting import Reporter
from ingmon.check import run_check
from ingmon.config import load_settings
from ingmon.errors import UsageError
from ingmon.exchange import FaultRule, FaultSchedule, Limits, Market
from ingmon.lake import Lake
from ingmon.times import iso_ms

from ._reference import (
    DAY_MS,
    MINUTE_MS,
    exchange,
    expected_candles,
    expected_funding,
    expected_open_interest,
    expected_trades,
    fast_client,
    settings_for,
    stored,
    stored_trades,
)

# A frozen "now" that is not on a minute boundary: the open candle must not be stored.
NOW_MS = 1_790_000_000_000 + 37_123
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
# Time a neighbour needs to spend a rate-limit window before the backfill starts.
NEIGHBOUR_MARGIN_SECONDS = 3.0


@pytest.fixture(scope="module")
def market() -> Market:
    """Five days of three symbols (SOLUSDT settles funding every 4 h)."""
    return Market.demo(symbols=SYMBOLS, days=5, seed=11, now_ms=NOW_MS)


def _run(
    settings: Any, request: BackfillRequest, client: Any = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    log = io.StringIO()
    summary = run_backfill(
        request, settings=settings, client=client, reporter=Reporter(mode="json", stream=log)
    ).to_dict()
    return summary, [json.loads(line) for line in log.getvalue().splitlines()]


def assert_lake_equals_exchange(
    lake: Lake,
    market: Market,
    symbol: str,
    start_ms: int,
    end_ms: int,
    now_ms: int,
    *,
    datasets: tuple[str, ...] = ("candles", "agg_trades", "open_interest", "funding"),
) -> None:
    """Every dataset of ``symbol`` in the lake equals the simulator's own data over the window."""
    if "candles" in datasets:
        assert stored(lake, "candles", symbol, "1m") == expected_candles(
            market, symbol, start_ms, end_ms, now_ms
        )
    if "agg_trades" in datasets:
        got, want = (
            stored_trades(lake, symbol),
            expected_trades(market, symbol, start_ms, min(end_ms, now_ms)),
        )
        assert got.keys() == want.keys()
        for name, values in want.items():
            np.testing.assert_array_equal(got[name], values, err_msg=name)
    if "open_interest" in datasets:
        # A snapshot stamped T is served (and final) from T on: the latest one is stored too.
        last = min(end_ms, now_ms)
        rows = stored(
            lake,
            "open_interest",
            symbol,
            "5m",
            ["timestamp", "sum_open_interest", "sum_open_interest_value"],
        )
        assert rows == expected_open_interest(market, symbol, "5m", start_ms, last)
    if "funding" in datasets:
        rows = stored(lake, "funding", symbol, None, ["funding_time", "funding_rate", "mark_price"])
        assert rows == expected_funding(market, symbol, start_ms, min(end_ms, now_ms))


def test_three_symbols_all_datasets_equal_the_exchange(market: Market, tmp_path: Path) -> None:
    """A 3-symbol, 3-day auto backfill (archive + REST tail) stores exactly the exchange data."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        summary, events = _run(settings, BackfillRequest(symbols=SYMBOLS, window_days=3))
    assert summary["schema"] == SUMMARY_SCHEMA
    assert summary["status"] == "complete", summary["problems"]
    assert summary["exit_status"] == 0
    assert summary["datasets"]["candles"]["archive_files"] > 0, (
        "published days come from the archive"
    )
    assert summary["datasets"]["agg_trades"]["requests"] > 0, "the recent tail comes from REST"
    start = NOW_MS - 3 * DAY_MS
    lake = Lake(settings.lake_dir)
    for symbol in SYMBOLS:
        assert_lake_equals_exchange(lake, market, symbol, start, NOW_MS, NOW_MS)
    hours = lake.read("funding", symbols="SOLUSDT", columns=["funding_interval_hours"])
    assert set(hours["funding_interval_hours"].to_pylist()) == {4}
    batches = [e for e in events if e["event"] == "batch"]
    assert batches and all(
        {"dataset", "symbol", "fetched", "inserted", "duplicates", "next_cursor"} <= e.keys()
        for e in batches
    )
    log = lake.read("ingest_log")
    assert log.num_rows == sum(d["batches"] for d in summary["datasets"].values())
    assert set(log["source"].to_pylist()) == {"rest", "archive"}


def test_rest_only_equals_the_exchange(market: Market, tmp_path: Path) -> None:
    """--source rest fetches everything through REST pages and stores the same exact data."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        summary, _ = _run(
            settings, BackfillRequest(symbols=("SOLUSDT",), window_days=1.5, source="rest")
        )
    assert summary["status"] == "complete"
    assert all(d["archive_files"] == 0 for d in summary["datasets"].values())
    assert_lake_equals_exchange(
        Lake(settings.lake_dir), market, "SOLUSDT", NOW_MS - int(1.5 * DAY_MS), NOW_MS, NOW_MS
    )


def test_archive_only_reports_the_unpublished_tail(market: Market, tmp_path: Path) -> None:
    """--source archive stores the published days exactly and names the days it could not get."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        summary, _ = _run(
            settings,
            BackfillRequest(
                symbols=("SOLUSDT",), window_days=3, source="archive", datasets=("candles",)
            ),
        )
    assert summary["exit_status"] == 1
    kinds = {p["kind"] for p in summary["problems"]}
    assert kinds <= {"unavailable", "archive_missing"} and kinds
    assert all(
        p["refetch_command"].startswith("ingmon backfill --symbol SOLUSDT")
        for p in summary["problems"]
    )
    lake = Lake(settings.lake_dir)
    rows = stored(lake, "candles", "SOLUSDT", "1m")
    want = {
        r["open_time"]: r
        for r in expected_candles(market, "SOLUSDT", NOW_MS - 3 * DAY_MS, NOW_MS, NOW_MS)
    }
    assert rows and all(want[r["open_time"]] == r for r in rows)


def test_resume_fetches_only_the_new_tail(market: Market, tmp_path: Path) -> None:
    """After the clock moves 90 minutes, a resume fetches exactly the new candles and trades."""
    later = NOW_MS + 90 * MINUTE_MS
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        first, _ = _run(settings, BackfillRequest(symbols=("ETHUSDT",), window_days=1))
        assert first["status"] == "complete"
        server.clock.set(later)
        second, _ = _run(settings, BackfillRequest(symbols=("ETHUSDT",), window_days=1))
    assert second["status"] == "complete"
    new_candles = (later // MINUTE_MS - 1) - (NOW_MS // MINUTE_MS - 1)
    assert (
        second["datasets"]["candles"]["inserted"]
        == new_candles
        == second["datasets"]["candles"]["fetched"]
    )
    new_trades = len(market.agg_trades("ETHUSDT", NOW_MS + 1, later))
    assert second["datasets"]["agg_trades"]["inserted"] == new_trades
    assert second["datasets"]["agg_trades"]["fetched"] <= new_trades + 1
    assert second["datasets"]["candles"]["requests"] == 1
    lake = Lake(settings.lake_dir)
    assert_lake_equals_exchange(
        lake, market, "ETHUSDT", NOW_MS - DAY_MS, later, later, datasets=("candles", "agg_trades")
    )


def test_a_second_identical_run_changes_nothing(market: Market, tmp_path: Path) -> None:
    """Resume with nothing new: no rows inserted, no file rewritten (idempotent)."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        _run(settings, BackfillRequest(symbols=("SOLUSDT",), window_days=1))
        files = {
            p: p.stat().st_mtime_ns
            for p in Path(settings.lake_dir).rglob("data.parquet")
            if "ingest_log" not in str(p)
        }
        second, _ = _run(settings, BackfillRequest(symbols=("SOLUSDT",), window_days=1))
    assert second["status"] == "complete"
    assert second["totals"]["inserted"] == 0
    assert {p: p.stat().st_mtime_ns for p in files} == files


def test_full_refresh_replaces_tampered_rows(market: Market, tmp_path: Path) -> None:
    """A stored candle that differs from the exchange survives resume but not --full-refresh."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        request = BackfillRequest(symbols=("SOLUSDT",), window_days=1, datasets=("candles",))
        _run(settings, request)
        lake = Lake(settings.lake_dir)
        table = lake.read("candles", symbols="SOLUSDT", param="1m").drop_columns(
            ["symbol", "interval"]
        )
        tampered = table.slice(100, 1).set_column(5, "volume", pa.array([123456.0]))
        lake.upsert("candles", tampered, symbol="SOLUSDT", param="1m")
        # A row the exchange does not have: a candle stamped half a minute off the grid.
        stray = table.slice(200, 1)
        off_grid = stray["open_time"].cast(pa.int64())[0].as_py() + 30_000
        stray = stray.set_column(
            0,
            "open_time",
            pa.array([off_grid], pa.int64()).cast(stray.schema.field("open_time").type),
        )
        lake.upsert("candles", stray, symbol="SOLUSDT", param="1m")
        resumed, _ = _run(settings, request)
        assert resumed["datasets"]["candles"]["replaced"] == 0
        refreshed, _ = _run(
            settings,
            BackfillRequest(
                symbols=("SOLUSDT",), window_days=1, datasets=("candles",), full_refresh=True
            ),
        )
    candles = refreshed["datasets"]["candles"]
    assert (candles["replaced"], candles["deleted"]) == (1, 1)
    assert candles["unchanged"] == candles["fetched"] - 1  # every other row came back identical
    assert refreshed["mode"] == "full-refresh"
    assert stored(lake, "candles", "SOLUSDT", "1m") == expected_candles(
        market, "SOLUSDT", NOW_MS - DAY_MS, NOW_MS, NOW_MS
    )


def test_maintenance_windows_are_recorded_not_refetched(tmp_path: Path) -> None:
    """An exchange outage leaves no problem, is recorded once, and is not asked for again."""
    probe = Market.demo(symbols=("SOLUSDT",), days=40, seed=3, now_ms=NOW_MS)
    windows = probe.maintenance_windows("SOLUSDT", NOW_MS - 40 * DAY_MS, NOW_MS)
    outage_start, outage_end = windows[-1]
    now = outage_end + 6 * 3_600_000 + 17
    market = Market.demo(symbols=("SOLUSDT",), days=40, seed=3, now_ms=now)
    assert market.maintenance_windows("SOLUSDT", outage_start, outage_end) == [
        (outage_start, outage_end)
    ]
    with exchange(market, now) as server:
        settings = settings_for(tmp_path, server)
        request = BackfillRequest(
            symbols=("SOLUSDT",),
            start_ms=outage_start - 3 * 3_600_000,
            source="rest",
            datasets=("candles", "agg_trades"),
        )
        summary, events = _run(settings, request)
        assert summary["status"] == "complete", summary["problems"]
        gaps = Lake(settings.lake_dir).read("exchange_gaps", symbols="SOLUSDT").to_pylist()
        assert [
            (
                g["dataset"],
                int(g["start_time"].timestamp() * 1000),
                int(g["end_time"].timestamp() * 1000),
            )
            for g in gaps
        ] == [("candles", outage_start, outage_end - MINUTE_MS)]
        assert any(e["event"] == "exchange_gap" for e in events)
        again, _ = _run(settings, request)
    assert again["datasets"]["candles"]["requests"] == 0
    assert again["status"] == "complete"
    assert_lake_equals_exchange(
        Lake(settings.lake_dir),
        market,
        "SOLUSDT",
        outage_start - 3 * 3_600_000,
        now,
        now,
        datasets=("candles", "agg_trades"),
    )


def test_open_interest_older_than_30_days(tmp_path: Path) -> None:
    """5m OI older than REST's 30 days comes from metrics archives; 15m OI there is reported."""
    market = Market.demo(symbols=("ETHUSDT",), days=40, seed=5, now_ms=NOW_MS)
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path / "five", server)
        five, _ = _run(
            settings,
            BackfillRequest(symbols=("ETHUSDT",), window_days=35, datasets=("open_interest",)),
        )
        assert five["status"] == "complete", five["problems"]
        assert five["datasets"]["open_interest"]["archive_files"] >= 4
        rows = stored(
            Lake(settings.lake_dir),
            "open_interest",
            "ETHUSDT",
            "5m",
            ["timestamp", "sum_open_interest", "sum_open_interest_value"],
        )
        assert rows == expected_open_interest(market, "ETHUSDT", "5m", NOW_MS - 35 * DAY_MS, NOW_MS)
        settings = settings_for(tmp_path / "fifteen", server)
        fifteen, _ = _run(
            settings,
            BackfillRequest(
                symbols=("ETHUSDT",), window_days=35, datasets=("open_interest",), oi_period="15m"
            ),
        )
    assert fifteen["exit_status"] == 1
    problem = next(p for p in fifteen["problems"] if p["kind"] == "unavailable")
    assert "30 days" in problem["message"] and problem["dataset"] == "open_interest"
    # No source will ever have it: the problem says so instead of printing a futile command.
    assert problem["message"].startswith("nothing to do: ") and "refetch_command" not in problem


FAULT_CASES = {
    "500": [FaultRule(route="*", kind="500", probability=0.2)],
    "502": [FaultRule(route="*", kind="502", probability=0.2)],
    "503": [FaultRule(route="*", kind="503", probability=0.2)],
    "408": [FaultRule(route="*", kind="408", probability=0.2)],
    "429": [FaultRule(route="*", kind="429", probability=0.2)],
    "timeout": [
        FaultRule(route="klines", kind="timeout", probability=0.2),
        FaultRule(route="aggTrades", kind="timeout", probability=0.1),
    ],
    "malformed": [FaultRule(route="*", kind="malformed", probability=0.2)],
    "truncated": [FaultRule(route="*", kind="truncated", probability=0.2)],
    "duplicates": [
        FaultRule(route=r, kind="duplicates", probability=0.5)
        for r in ("klines", "aggTrades", "fundingRate", "openInterestHist")
    ],
    "outside": [
        FaultRule(route=r, kind="outside", probability=0.5)
        for r in ("klines", "aggTrades", "fundingRate", "openInterestHist")
    ],
    "checksum": [FaultRule(route="archive", kind="checksum", probability=0.5)],
    "mixed": [
        FaultRule(route="klines", kind="503", probability=0.1),
        FaultRule(route="aggTrades", kind="truncated", probability=0.1),
        FaultRule(route="aggTrades", kind="outside", probability=0.2),
        FaultRule(route="klines", kind="duplicates", probability=0.2),
        FaultRule(route="openInterestHist", kind="malformed", probability=0.2),
        FaultRule(route="fundingRate", kind="429", probability=0.2),
        FaultRule(route="archive", kind="checksum", probability=0.3),
        FaultRule(route="archive", kind="500", probability=0.1),
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(FAULT_CASES))
def test_fault_matrix_completes_with_exact_data(market: Market, tmp_path: Path, case: str) -> None:
    """Under each fault (and all mixed) the run completes with exactly the exchange's rows."""
    faults = FaultSchedule(
        rules=FAULT_CASES[case], seed=7, timeout_delay_seconds=0.6, retry_after_seconds=0
    )
    with exchange(market, NOW_MS, faults=faults) as server:
        settings = settings_for(tmp_path, server)
        client = fast_client(server, timeout_seconds=0.3, max_retries=8)
        summary, _ = _run(
            settings, BackfillRequest(symbols=("SOLUSDT",), window_days=3.5), client=client
        )
        fired = {event.kind for event in server.stats.faults}
    assert fired, "the scheduled fault happened"
    assert summary["status"] == "complete", summary["problems"]
    assert_lake_equals_exchange(
        Lake(settings.lake_dir), market, "SOLUSDT", NOW_MS - int(3.5 * DAY_MS), NOW_MS, NOW_MS
    )
    totals = summary["totals"]
    if case in ("duplicates", "outside"):
        assert totals["rejected"] + totals["duplicates"] > 0
    if case not in ("duplicates", "outside", "checksum"):
        assert totals["retries"] + totals["http_429"] > 0


def test_checksum_mismatch_in_archive_mode_fails_the_day_loudly(
    market: Market, tmp_path: Path
) -> None:
    """A persistent checksum mismatch with --source archive is a named problem, not silent data."""
    faults = FaultSchedule(
        rules=[FaultRule(route="archive", kind="checksum", probability=1.0, match="*SOLUSDT-1m-*")]
    )
    with exchange(market, NOW_MS, faults=faults) as server:
        settings = settings_for(tmp_path, server)
        summary, events = _run(
            settings,
            BackfillRequest(
                symbols=("SOLUSDT",), window_days=3, source="archive", datasets=("candles",)
            ),
            client=fast_client(server),
        )
    assert summary["exit_status"] == 1
    assert summary["datasets"]["candles"]["checksum_failures"] >= 1
    assert any(
        p["kind"] == "fetch_failed" and "sha256" in p["message"] for p in summary["problems"]
    )
    assert any(e["event"] == "checksum_mismatch" and e["level"] == "error" for e in events)
    assert Lake(settings.lake_dir).read("candles", symbols="SOLUSDT", param="1m").num_rows == 0


def test_a_ban_stops_the_run_cleanly(market: Market, tmp_path: Path) -> None:
    """A 418 stops every task, reports the ban time, exits 1 and sends nothing after it."""
    faults = FaultSchedule(rules=[FaultRule(route="aggTrades", sequence=["ok", "ok", "418"])])
    with exchange(market, NOW_MS, faults=faults) as server:
        settings = settings_for(tmp_path, server)
        summary, events = _run(
            settings,
            BackfillRequest(
                symbols=("SOLUSDT",),
                window_days=1,
                source="rest",
                datasets=("agg_trades",),
                concurrency=1,
            ),
            client=fast_client(server),
        )
        after_ban = server.stats.requests_for("aggTrades")
    assert summary["status"] == "banned" and summary["exit_status"] == 1
    assert summary["banned_until"] and "418" in summary["ban_message"]
    assert after_ban == 3
    # A cron log shows it: an error event on stderr and a problem saying when to rerun.
    [banned] = [e for e in events if e["event"] == "banned"]
    assert banned["level"] == "error" and banned["banned_until"] == summary["banned_until"]
    [problem] = [p for p in summary["problems"] if p["kind"] == "banned"]
    assert summary["banned_until"] in problem["message"] and "refetch_command" not in problem


def test_retry_after_is_honoured_and_never_earns_a_ban(market: Market, tmp_path: Path) -> None:
    """A budget already spent by a neighbour on the same IP gets a real 429; the backfill
    waits out its Retry-After (one more request in back-off would be banned) and completes."""
    window_s = 5
    limits = Limits(
        weight_per_window=300, window_seconds=window_s, requests_before_ban=0, ban_seconds=60
    )
    # 0.2 days of SOLUSDT trades: 12 pages, 242 weight with time and exchangeInfo. Everything
    # after the 429 fits one window, so no later window boundary (where a request sent just
    # before it may be counted just after it on a loaded box) can add a 429 of its own.
    request = BackfillRequest(
        symbols=("SOLUSDT",), window_days=0.2, source="rest", datasets=("agg_trades",)
    )
    with exchange(market, NOW_MS, limits=limits) as server:
        settings = settings_for(tmp_path, server)
        # The neighbour's 15 requests and the backfill's first one must share a window: a
        # margin of 3 s holds for 16 local requests on a slow, loaded box.
        left_s = window_s - time.time() % window_s
        if left_s < NEIGHBOUR_MARGIN_SECONDS:
            time.sleep(left_s + 0.05)
        with httpx.Client() as neighbour:
            for _ in range(15):  # 15 × weight 20 = the whole window
                params = {"symbol": "SOLUSDT", "fromId": 0, "limit": 1}
                answer = neighbour.get(f"{server.base_url}/fapi/v1/aggTrades", params=params)
                assert answer.status_code == 200
        assert answer.headers["X-MBX-USED-WEIGHT-5S"] == "300"
        summary, _ = _run(settings, request, client=fast_client(server))
        banned, limited = server.stats.banned, server.stats.rate_limited
    assert summary["status"] == "complete"
    assert summary["datasets"]["agg_trades"]["fetched"] > 10_000
    # The run's first request (exchangeInfo) meets the spent window and waits out its 429.
    assert limited >= 1 and summary["routes"]["exchangeInfo"]["http_429"] == 1
    assert banned == 0


def test_bad_requests_fail_before_anything_is_written(market: Market, tmp_path: Path) -> None:
    """Unknown symbol, empty window, inverted window: UsageError and no lake directory."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        for request in (
            BackfillRequest(symbols=("NOPEUSDT",), window_days=1),
            BackfillRequest(symbols=("SOLUSDT",), window_days=0),
            BackfillRequest(symbols=("SOLUSDT",), start_ms=NOW_MS, end_ms=NOW_MS - DAY_MS),
            BackfillRequest(symbols=("SOLUSDT",), window_days=1, interval="7m"),
            BackfillRequest(symbols=("SOLUSDT",), window_days=1, oi_period="1m"),
        ):
            with pytest.raises(UsageError):
                run_backfill(
                    request, settings=settings, reporter=Reporter(mode="json", stream=io.StringIO())
                )
    assert not (tmp_path / "lake").exists()


def test_listing_clips_the_window(tmp_path: Path) -> None:
    """A window reaching before the listing starts at the listing, without problems."""
    market = Market.demo(symbols=("SOLUSDT",), days=2, seed=1, now_ms=NOW_MS)
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        summary, _ = _run(
            settings,
            BackfillRequest(symbols=("SOLUSDT",), window_days=10, datasets=("candles", "funding")),
        )
    assert summary["status"] == "complete", summary["problems"]
    listing = market.spec("SOLUSDT").listing_ms
    assert summary["datasets"]["candles"]["symbols"]["SOLUSDT"]["earliest"] == iso_ms(listing)


def test_a_window_before_the_listing_is_bad_input(tmp_path: Path) -> None:
    """A window that ends before the symbol existed is a UsageError naming the listing, with
    nothing written — not a 'complete' run over an inverted window."""
    market = Market.demo(symbols=("SOLUSDT",), days=2, seed=1, now_ms=NOW_MS)
    listing = market.spec("SOLUSDT").listing_ms
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        with pytest.raises(UsageError, match=f"before SOLUSDT was listed at {iso_ms(listing)}"):
            _run(settings, BackfillRequest(symbols=("SOLUSDT",), start_ms=0, end_ms=listing))
    assert not (tmp_path / "lake").exists()


# The metrics archive labels periods by their start from 2026-06-25 00:00 UTC (#491).
LABEL_SWITCH_MS = 1_782_345_600_000
# 2026-06-28 12:00 UTC: the files of 2026-06-22 … 2026-06-26 are published, and REST's 30 days
# still reach back past the switch, so both sources can serve the same range.
AFTER_SWITCH_NOW_MS = LABEL_SWITCH_MS + 3 * DAY_MS + 12 * 60 * MINUTE_MS


def test_open_interest_from_archive_equals_rest_across_the_label_switch(tmp_path: Path) -> None:
    """5m OI over 2026-06-23 … 2026-06-26 from metrics files only (end labels before the
    switch, start labels after it) is stored row for row as a REST-only backfill stores it and
    as the market has it: same timestamps (period ends), same values, no gap and no duplicate
    at the 00:00 label both the 06-24 and the 06-25 file carry."""
    market = Market.demo(symbols=("BTCUSDT",), days=8, seed=13, now_ms=AFTER_SWITCH_NOW_MS)
    start_ms, end_ms = LABEL_SWITCH_MS - 2 * DAY_MS, LABEL_SWITCH_MS + 2 * DAY_MS
    columns = ["timestamp", "sum_open_interest", "sum_open_interest_value"]
    stored_by_source = {}
    with exchange(market, AFTER_SWITCH_NOW_MS) as server:
        for source in ("archive", "rest"):
            settings = settings_for(tmp_path / source, server)
            summary, _ = _run(
                settings,
                BackfillRequest(
                    symbols=("BTCUSDT",),
                    start_ms=start_ms,
                    end_ms=end_ms,
                    datasets=("open_interest",),
                    source=source,
                ),
            )
            assert summary["status"] == "complete", summary["problems"]
            counts = summary["datasets"]["open_interest"]
            # 2026-06-23 00:00 ends a period of the 06-22 file; the 06-26 file ends at 06-27 00:00.
            assert counts["archive_files"] == (5 if source == "archive" else 0)
            stored_by_source[source] = stored(
                Lake(settings.lake_dir), "open_interest", "BTCUSDT", "5m", columns
            )
    want = expected_open_interest(market, "BTCUSDT", "5m", start_ms, end_ms - 1)
    assert [row["timestamp"] for row in want] == list(range(start_ms, end_ms, 5 * MINUTE_MS))
    assert stored_by_source["rest"] == want
    assert stored_by_source["archive"] == want


def test_open_interest_before_the_label_switch_keeps_end_labels(tmp_path: Path) -> None:
    """Older metrics files (end-of-period labels) are stored at their labels, as before the
    switch was handled: a 2024 archive-only backfill equals the market's own open interest."""
    now_ms = 1_709_642_096_789  # 2024-03-05 12:34:56.789 UTC
    market = Market.demo(symbols=("ETHUSDT",), days=6, seed=17, now_ms=now_ms)
    start_ms = now_ms // DAY_MS * DAY_MS - 4 * DAY_MS
    end_ms = start_ms + 2 * DAY_MS
    with exchange(market, now_ms) as server:
        settings = settings_for(tmp_path, server)
        summary, _ = _run(
            settings,
            BackfillRequest(
                symbols=("ETHUSDT",),
                start_ms=start_ms,
                end_ms=end_ms,
                datasets=("open_interest",),
                source="archive",
            ),
        )
    assert summary["status"] == "complete", summary["problems"]
    assert summary["datasets"]["open_interest"]["archive_files"] == 3
    rows = stored(
        Lake(settings.lake_dir),
        "open_interest",
        "ETHUSDT",
        "5m",
        ["timestamp", "sum_open_interest", "sum_open_interest_value"],
    )
    assert rows == expected_open_interest(market, "ETHUSDT", "5m", start_ms, end_ms - 1)
    assert len(rows) == 2 * 288


def test_latest_open_interest_snapshot_is_stored_at_its_true_freshness(tmp_path: Path) -> None:
    """At 10 minutes past an hour the exchange serves that hour's 1h OI row: the backfill stores
    it, a resume fetches nothing more, and the check reports a 10-minute age (not 70)."""
    hour_ms = 60 * MINUTE_MS
    now_ms = 1_790_002_800_000 + 10 * MINUTE_MS  # 10:10 UTC
    assert now_ms % hour_ms == 10 * MINUTE_MS
    market = Market.demo(symbols=("SOLUSDT",), days=3, seed=5, now_ms=now_ms)
    request = BackfillRequest(
        symbols=("SOLUSDT",),
        window_days=1,
        oi_period="1h",
        datasets=("open_interest",),
    )
    with exchange(market, now_ms) as server:
        settings = settings_for(tmp_path, server)
        first, _ = _run(settings, request)
        again, _ = _run(settings, request)
    lake = Lake(settings.lake_dir)
    stamps = [r["timestamp"] for r in stored(lake, "open_interest", "SOLUSDT", "1h")]
    assert stamps[-1] == now_ms - 10 * MINUTE_MS
    assert stamps == list(range(stamps[0], now_ms, hour_ms))
    assert first["status"] == "complete"
    assert again["datasets"]["open_interest"]["requests"] == 0
    report = run_check(
        settings, symbols=["SOLUSDT"], window_days=1, end_ms=now_ms, oi_period="1h"
    ).to_dict()
    assert report["symbols"]["SOLUSDT"]["open_interest"]["age_seconds"] == 600
    assert report["symbols"]["SOLUSDT"]["open_interest"]["freshness"] == "ok"


def test_back_to_back_runs_on_a_limits_off_exchange_never_wait(tmp_path: Path) -> None:
    """The weight a first run spent (reported by the exchange on the next run's first response)
    is judged against the advertised unlimited weight, not the client's 2400 default: a second
    run in the same minute does not wait for the next window."""
    market = Market.demo(symbols=("BTCUSDT",), days=7, seed=3, now_ms=NOW_MS)
    request = BackfillRequest(
        symbols=("BTCUSDT",), window_days=6, source="rest", datasets=("agg_trades",)
    )
    with exchange(market, NOW_MS, limits=Limits(enabled=False)) as server:
        # Default settings: no INGMON_BINANCE_WEIGHT_LIMIT_PER_MINUTE, so the client follows
        # exchangeInfo.
        settings = load_settings(
            env_file=None,
            data_dir=tmp_path / "first",
            binance_base_url=server.base_url,
            binance_archive_url=server.base_url,
        )
        first, _ = _run(settings, request)
        assert first["datasets"]["agg_trades"]["weight_used"] > 2400  # past the default budget
        again = settings.model_copy(update={"data_dir": tmp_path / "second"})
        second, events = _run(again, request)
    assert second["status"] == "complete"
    assert [e for e in events if e["event"] == "wait"] == []

"""Every repair command ``ingmon check`` or a backfill summary prints, run verbatim, turns the
check clean: for 1m and 5m candles, 1h open interest, trades and funding, in a non-default data
root, from a local exchange whose URL is not Binance's; for gaps, failed fetches, stale and empty
series, duplicates and candle-vs-trade mismatches."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ingmon.binance.backfill import BackfillRequest, run_backfill
from ingmon.binance.reporting import Reporter
from ingmon.check import run_check
from ingmon.config import Settings
from ingmon.exchange import ExchangeServer, FaultRule, FaultSchedule, Market
from ingmon.lake import Lake
from ingmon.times import iso_ms, to_ms

from ._reference import (
    DAY_MS,
    MINUTE_MS,
    backfill_complete,
    exchange,
    fast_client,
    run_verbatim,
    settings_for,
)

NOW_MS = 1_790_000_000_000 + 37_123
SYMBOL = "SOLUSDT"
HOUR_MS = 60 * MINUTE_MS
# (interval, OI period) of the two check configurations the lake holds.
SERIES = (("1m", "5m"), ("5m", "1h"))


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.demo(symbols=(SYMBOL,), days=3, seed=21, now_ms=NOW_MS)


@pytest.fixture
def lake_and_exchange(market: Market, tmp_path: Path) -> Iterator[tuple[ExchangeServer, Settings]]:
    """Two days of every dataset, 1m+5m candles and 5m+1h OI, in ``<tmp>/not-the-default``."""
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path / "not-the-default", server)
        for interval, period in SERIES:
            backfill_complete(
                settings,
                BackfillRequest(
                    symbols=(SYMBOL,), window_days=2, interval=interval, oi_period=period
                ),
            )
        yield server, settings


def _delete(lake: Lake, dataset: str, param: str | None, first_ms: int, last_ms: int) -> int:
    empty = lake.read(dataset, symbols=SYMBOL, param=param).slice(0, 0)
    empty = empty.drop_columns([c for c in empty.column_names if c in ("symbol", "interval")])
    if "period" in empty.column_names:
        empty = empty.drop_columns(["period"])
    return lake.upsert(
        dataset, empty, symbol=SYMBOL, param=param, replace_range=(first_ms, last_ms)
    ).deleted


def _check(settings: Settings, interval: str, period: str, **kwargs: Any) -> dict[str, Any]:
    return run_check(
        settings,
        symbols=[SYMBOL],
        window_days=2,
        end_ms=NOW_MS,
        interval=interval,
        oi_period=period,
        **kwargs,
    ).to_dict()


def _run_verbatim(command: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_verbatim(command, tmp_path / "cwd")


def test_every_printed_repair_command_repairs_this_lake(
    lake_and_exchange: tuple[ExchangeServer, Settings], tmp_path: Path
) -> None:
    """Holes planted in every series are each reported with a command that, run verbatim,
    refetches exactly them into the checked lake: both checks end clean."""
    server, settings = lake_and_exchange
    lake = Lake(settings.lake_dir)
    middle = (NOW_MS - DAY_MS) // HOUR_MS * HOUR_MS
    assert _delete(lake, "candles", "1m", middle, middle + 6 * MINUTE_MS) == 7
    assert _delete(lake, "candles", "5m", middle, middle + 10 * MINUTE_MS) == 3
    assert _delete(lake, "open_interest", "1h", middle, middle + 2 * HOUR_MS) == 3
    assert _delete(lake, "open_interest", "5m", middle, middle + 5 * MINUTE_MS) == 2
    trades = lake.read("agg_trades", symbols=SYMBOL, start=middle, end=middle + MINUTE_MS - 1)
    assert trades.num_rows > 2
    assert _delete(lake, "agg_trades", None, middle, middle + MINUTE_MS - 1) == trades.num_rows
    funding_times = lake.read("funding", symbols=SYMBOL)["funding_time"].cast(pa.int64())
    one_settlement = funding_times.to_pylist()[1]
    assert _delete(lake, "funding", None, one_settlement, one_settlement) == 1

    commands: list[str] = []
    for interval, period in SERIES:
        skip = () if interval == "1m" else ("agg_trades", "funding")
        report = _check(settings, interval, period, skip=skip)
        found = {(p["dataset"], p["param"], p["kind"]) for p in report["problems"]}
        expected = {
            ("candles", interval, "internal_gap"),
            ("open_interest", period, "internal_gap"),
        }
        if interval == "1m":
            expected |= {("agg_trades", None, "id_gap"), ("funding", None, "internal_gap")}
        # Missing trades also show as candles holding more than their trades: named for trades.
        found.discard(("agg_trades", None, "candle_trade_mismatch"))
        assert found == expected
        commands += [p["refetch_command"] for p in report["problems"]]

    data_root = str(settings.data_dir.resolve())
    for command in commands:
        argv = shlex.split(command)
        assert argv[:2] == ["ingmon", "backfill"]
        assert argv[argv.index("--data-dir") + 1] == data_root
        assert argv[argv.index("--base-url") + 1] == server.base_url
        assert argv[argv.index("--archive-url") + 1] == server.base_url
        done = _run_verbatim(command, tmp_path)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert json.loads(done.stdout)["status"] == "complete"

    assert not (tmp_path / "cwd" / "data").exists()  # nothing went to a default ./data
    for interval, period in SERIES:
        skip = () if interval == "1m" else ("agg_trades", "funding")
        report = _check(settings, interval, period, skip=skip)
        assert report["problems"] == [], report["problems"]
        assert report["verdict"] == "ok"


def test_a_5m_gap_is_repaired_with_5m_candles(
    lake_and_exchange: tuple[ExchangeServer, Settings], tmp_path: Path
) -> None:
    """The command for a 5m candle gap asks for --interval 5m: the 1m series is not touched."""
    _, settings = lake_and_exchange
    lake = Lake(settings.lake_dir)
    before_1m = lake.read("candles", symbols=SYMBOL, param="1m").num_rows
    first = (NOW_MS - DAY_MS) // HOUR_MS * HOUR_MS
    assert _delete(lake, "candles", "5m", first, first + 25 * MINUTE_MS) == 6
    [gap] = _check(settings, "5m", "1h", skip=("agg_trades", "funding"))["problems"]
    argv = shlex.split(gap["refetch_command"])
    assert argv[argv.index("--interval") + 1] == "5m"
    assert "--oi-period" not in argv  # 1h is not the series repaired; OI is skipped
    done = _run_verbatim(gap["refetch_command"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["datasets"]["candles"]["inserted"] == 6
    assert lake.read("candles", symbols=SYMBOL, param="1m").num_rows == before_1m


# ---- the backfill summary's repair commands ------------------------------------------------------

# The REST routes of the four datasets: each answers 503 until the client's retries run out.
FAILING_ROUTES = ("klines", "aggTrades", "openInterestHist", "fundingRate")
RETRIES = 2


def test_every_backfill_summary_repair_command_repairs_this_lake(
    market: Market, tmp_path: Path
) -> None:
    """A backfill whose four routes answer 503 past the client's retries reports one
    fetch_failed problem per dataset; each command, run verbatim once the exchange recovered,
    refetches its range into this lake from this exchange, and the check ends clean."""
    # The exchange's fault schedule is fixed when it starts (its injector is private), so the
    # fault heals itself instead: a scripted sequence of exactly one task's attempts per route,
    # after which the route answers normally.
    faults = FaultSchedule(
        rules=[FaultRule(route=r, sequence=["503"] * (RETRIES + 1)) for r in FAILING_ROUTES]
    )
    with exchange(market, NOW_MS, faults=faults) as server:
        settings = settings_for(tmp_path / "not-the-default", server)
        summary = run_backfill(
            # One task at a time: the attempts of one task meet the sequence back to back.
            BackfillRequest(symbols=(SYMBOL,), window_days=2, concurrency=1),
            settings=settings,
            client=fast_client(server, max_retries=RETRIES),
            reporter=Reporter(mode="json", stream=io.StringIO()),
        ).to_dict()
        injected = len(server.stats.faults)
        assert injected == len(FAILING_ROUTES) * (RETRIES + 1)
        assert summary["status"] == "incomplete"
        problems = summary["problems"]
        assert sorted((p["dataset"], p["kind"]) for p in problems) == [
            ("agg_trades", "fetch_failed"),
            ("candles", "fetch_failed"),
            ("funding", "fetch_failed"),
            ("open_interest", "fetch_failed"),
        ]
        before = _check(settings, "1m", "5m")
        assert {p["dataset"] for p in before["problems"]} >= {"candles", "open_interest"}

        data_root = str(settings.data_dir.resolve())
        for problem in problems:
            command = problem["refetch_command"]
            argv = shlex.split(command)
            assert argv[:2] == ["ingmon", "backfill"]
            assert argv[argv.index("--data-dir") + 1] == data_root
            assert argv[argv.index("--base-url") + 1] == server.base_url
            assert argv[argv.index("--archive-url") + 1] == server.base_url
            done = _run_verbatim(command, tmp_path)
            assert done.returncode == 0, (command, done.stderr[-2000:])
            repaired = json.loads(done.stdout)
            assert repaired["status"] == "complete"
            assert repaired["datasets"][problem["dataset"]]["inserted"] > 0
        assert len(server.stats.faults) == injected  # the repairs met a healthy exchange

    assert not (tmp_path / "cwd" / "data").exists()
    report = _check(settings, "1m", "5m")
    assert report["problems"] == [], report["problems"]
    assert report["verdict"] == "ok"


# ---- check problem kinds whose repair no other test runs -----------------------------------------


def _repair_verbatim(problem: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Run one problem's printed command as a user would; its summary."""
    done = _run_verbatim(problem["refetch_command"], tmp_path)
    assert done.returncode == 0, (problem["refetch_command"], done.stderr[-2000:])
    summary: dict[str, Any] = json.loads(done.stdout)
    assert summary["status"] == "complete", summary["problems"]
    return summary


@pytest.mark.parametrize(
    ("dataset", "param", "deleted_minutes"),
    [("candles", "1m", 10), ("agg_trades", None, 15), ("open_interest", "5m", 30)],
)
def test_a_stale_series_is_repaired_by_its_command(
    lake_and_exchange: tuple[ExchangeServer, Settings],
    tmp_path: Path,
    dataset: str,
    param: str | None,
    deleted_minutes: int,
) -> None:
    """With its newest rows deleted a series is stale at the check's end (beyond its error age);
    the stale problem's command, run verbatim, refetches the tail and the check is clean."""
    _, settings = lake_and_exchange
    lake = Lake(settings.lake_dir)
    time_column = {"candles": "open_time", "agg_trades": "transact_time"}.get(dataset, "timestamp")

    def times() -> list[int]:
        table = lake.read(dataset, symbols=SYMBOL, param=param, columns=[time_column])
        return table[time_column].cast(pa.int64()).to_pylist()

    since = NOW_MS - deleted_minutes * MINUTE_MS
    first_deleted = min(t for t in times() if t >= since)
    assert _delete(lake, dataset, param, since, NOW_MS) > 0
    newest_kept = times()[-1]
    assert newest_kept < first_deleted
    report = _check(settings, "1m", "5m")
    [stale] = report["problems"]
    assert (stale["dataset"], stale["param"], stale["kind"]) == (dataset, param, "stale")
    assert stale["severity"] == "error"
    # The command resumes from the newest stored row (a candle: the slot after it) up to the
    # check's end, so it covers every deleted row.
    argv = shlex.split(stale["refetch_command"])
    assert newest_kept <= to_ms(argv[argv.index("--start") + 1]) <= first_deleted
    assert to_ms(argv[argv.index("--end") + 1]) == NOW_MS
    assert _repair_verbatim(stale, tmp_path)["datasets"][dataset]["inserted"] > 0
    assert _check(settings, "1m", "5m")["problems"] == []


def test_empty_series_are_repaired_by_their_commands(
    lake_and_exchange: tuple[ExchangeServer, Settings], tmp_path: Path
) -> None:
    """Checked for 15m candles and 15m OI, which nothing stored, the check reports both empty
    with a command over the checked window for that interval/period; run verbatim, both fill
    the window and the 15m check is clean (the 1m/5m series untouched)."""
    _, settings = lake_and_exchange
    lake = Lake(settings.lake_dir)
    before = {
        (name, param): lake.read(name, symbols=SYMBOL, param=param).num_rows
        for name, param in (("candles", "1m"), ("open_interest", "5m"))
    }
    report = _check(settings, "15m", "15m")
    # Each series is also reported as one head gap over the same window; the empty problem's
    # command alone must repair it.
    assert {(p["dataset"], p["param"]) for p in report["problems"]} == {
        ("candles", "15m"),
        ("open_interest", "15m"),
    }
    empty = [p for p in report["problems"] if p["kind"] == "empty"]
    assert sorted((p["dataset"], p["param"], p["kind"]) for p in empty) == [
        ("candles", "15m", "empty"),
        ("open_interest", "15m", "empty"),
    ]
    for problem in empty:
        argv = shlex.split(problem["refetch_command"])
        assert argv[argv.index("--start") + 1] == iso_ms(NOW_MS - 2 * DAY_MS)
        assert argv[argv.index("--end") + 1] == iso_ms(NOW_MS)
        flag = "--interval" if problem["dataset"] == "candles" else "--oi-period"
        assert argv[argv.index(flag) + 1] == "15m"
        _repair_verbatim(problem, tmp_path)
    # [now − 2 d, now): every 15m slot of the window whose period has ended.
    first_slot = -(-(NOW_MS - 2 * DAY_MS) // (15 * MINUTE_MS)) * 15 * MINUTE_MS
    closed = range(first_slot, NOW_MS - 15 * MINUTE_MS + 1, 15 * MINUTE_MS)
    stored = lake.read("candles", symbols=SYMBOL, param="15m")["open_time"].cast(pa.int64())
    assert stored.to_pylist() == list(closed)
    assert _check(settings, "15m", "15m")["problems"] == []
    assert before == {
        (name, param): lake.read(name, symbols=SYMBOL, param=param).num_rows
        for name, param in before
    }


def test_duplicated_trades_are_repaired_by_the_duplicates_command(
    lake_and_exchange: tuple[ExchangeServer, Settings], tmp_path: Path
) -> None:
    """A trade stored again under the previous day is one duplicate whose command (a full
    refresh over both rows' times), run verbatim, leaves one row per id and a clean check."""
    _, settings = lake_and_exchange
    lake = Lake(settings.lake_dir)
    midnight = NOW_MS // DAY_MS * DAY_MS
    [trade] = lake.read(
        "agg_trades", symbols=SYMBOL, start=midnight, end=midnight + MINUTE_MS
    ).to_pylist()[:1]
    trade.pop("symbol")
    original_ms = int(trade["transact_time"].timestamp() * 1000)
    copy_ms = midnight - MINUTE_MS + 500  # the day before: another partition
    copy = pa.Table.from_pylist([trade]).set_column(
        5, "transact_time", pa.array([copy_ms], pa.timestamp("ms", tz="UTC"))
    )
    lake.upsert("agg_trades", copy, symbol=SYMBOL)
    ids = lake.read("agg_trades", symbols=SYMBOL)["agg_trade_id"].to_pylist()
    assert len(ids) - len(set(ids)) == 1

    report = _check(settings, "1m", "5m")
    [duplicates] = [p for p in report["problems"] if p["kind"] == "duplicates"]
    assert (duplicates["dataset"], duplicates["count"]) == ("agg_trades", 1)
    argv = shlex.split(duplicates["refetch_command"])
    assert argv[argv.index("--start") + 1] == iso_ms(copy_ms)
    assert argv[argv.index("--end") + 1] == iso_ms(original_ms + 1)
    assert "--full-refresh" in argv
    # The extra trade also makes its candle look wrong; the duplicates repair alone fixes both.
    _repair_verbatim(duplicates, tmp_path)
    ids = lake.read("agg_trades", symbols=SYMBOL)["agg_trade_id"].to_pylist()
    assert len(ids) == len(set(ids))
    assert _check(settings, "1m", "5m")["problems"] == []


def test_a_mismatch_from_missing_trades_is_repaired_by_refetching_trades(
    lake_and_exchange: tuple[ExchangeServer, Settings], tmp_path: Path
) -> None:
    """Trades deleted from inside one minute leave its candle holding more than its trades:
    the mismatch names agg_trades, and its command alone, run verbatim, restores them (the
    id gap with them)."""
    _, settings = lake_and_exchange
    lake = Lake(settings.lake_dir)
    minute = (NOW_MS - DAY_MS) // HOUR_MS * HOUR_MS
    inside = lake.read("agg_trades", symbols=SYMBOL, start=minute, end=minute + MINUTE_MS - 1)
    assert inside.num_rows > 2
    times = inside["transact_time"].cast(pa.int64()).to_pylist()
    assert _delete(lake, "agg_trades", None, times[1], times[-2]) == inside.num_rows - 2
    report = _check(settings, "1m", "5m")
    assert sorted((p["dataset"], p["kind"]) for p in report["problems"]) == [
        ("agg_trades", "candle_trade_mismatch"),
        ("agg_trades", "id_gap"),
    ]
    [mismatch] = [p for p in report["problems"] if p["kind"] == "candle_trade_mismatch"]
    assert (mismatch["first"], mismatch["last"], mismatch["count"]) == (
        iso_ms(minute),
        iso_ms(minute),
        1,
    )
    repaired = _repair_verbatim(mismatch, tmp_path)
    assert repaired["datasets"]["agg_trades"]["inserted"] == inside.num_rows - 2
    assert _check(settings, "1m", "5m")["problems"] == []


def _tamper_candle(lake: Lake, open_ms: int, volume_factor: float) -> None:
    row = lake.read("candles", symbols=SYMBOL, param="1m", start=open_ms, end=open_ms)
    row = row.drop_columns(["symbol", "interval"])
    volume = row["volume"].to_pylist()[0]
    index = row.column_names.index("volume")
    tampered = row.set_column(index, "volume", pa.array([volume * volume_factor]))
    assert lake.upsert("candles", tampered, symbol=SYMBOL, param="1m").replaced == 1


@pytest.mark.parametrize("volume_factor", [0.5, 2.0], ids=["lowered", "inflated"])
def test_a_mismatch_from_a_wrong_candle_is_repaired_by_refetching_candles(
    lake_and_exchange: tuple[ExchangeServer, Settings], tmp_path: Path, volume_factor: float
) -> None:
    """A candle whose volume was lowered or raised (its trades complete, their count matching)
    is named by the mismatch as the candles' fault; its command, run verbatim, rewrites that
    one candle and the check is clean."""
    _, settings = lake_and_exchange
    lake = Lake(settings.lake_dir)
    minute = (NOW_MS - DAY_MS) // HOUR_MS * HOUR_MS
    _tamper_candle(lake, minute, volume_factor)
    [mismatch] = _check(settings, "1m", "5m")["problems"]
    assert (mismatch["dataset"], mismatch["param"], mismatch["kind"]) == (
        "candles",
        "1m",
        "candle_trade_mismatch",
    )
    assert (mismatch["first"], mismatch["last"]) == (iso_ms(minute), iso_ms(minute))
    assert _repair_verbatim(mismatch, tmp_path)["datasets"]["candles"]["replaced"] == 1
    assert _check(settings, "1m", "5m")["problems"] == []

"""The signal store on a real lake: scoring runs persist signals, their audit rows and one run
row; reruns are append-only no-ops; incremental runs equal one run over the whole period; the
per-minute delta comes from complete trades and falls back to the candles elsewhere.

The lake is backfilled once per module over real HTTP from the local exchange (four days of
ETHUSDT and SOLUSDT with trades); every test scores a copy of it.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from binance._reference import backfill_complete, exchange, settings_for

from ingmon.binance.request import BackfillRequest
from ingmon.exchange import Market
from ingmon.lake import Lake
from ingmon.schema import SCORE_RUNS, dataset
from ingmon.signals.rules import RULES_VERSION, ScoreRules, SignalConfig
from ingmon.signals.store import load_inputs, read_signals, score_symbol
from ingmon.times import DAY_MS, MINUTE_MS

# 2026-09-21 14:13:57.123 UTC: mid-candle, so the newest 1m candle and 15m bar are still open.
NOW_MS = 1_790_000_000_000 + 37_123
SYMBOLS = ("ETHUSDT", "SOLUSDT")
SYMBOL = "ETHUSDT"
DAYS = 4
CONFIG = SignalConfig()  # 15m
BAR_MS = 15 * MINUTE_MS
# The write instant handed to score_symbol, so detected_at/scored_at are known values.
CLOCK_MS = NOW_MS + DAY_MS
# Columns that say when a row was written, not what it is.
WRITTEN = {"signals": "detected_at", "scores": "scored_at"}


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake backfilled from the local exchange: 4 days of 1m candles, trades, 5m open interest
    and funding of two symbols. Read-only: tests score a copy."""
    market = Market.demo(symbols=SYMBOLS, days=DAYS + 1, seed=13, now_ms=NOW_MS)
    root = tmp_path_factory.mktemp("backfilled")
    with exchange(market, NOW_MS) as server:
        backfill_complete(
            settings_for(root, server), BackfillRequest(symbols=SYMBOLS, window_days=DAYS)
        )
    return root / "lake"


def copy_lake(backfilled: Path, target: Path) -> Lake:
    shutil.copytree(backfilled, target, symlinks=True)
    return Lake(target)


@pytest.fixture
def lake(backfilled: Path, tmp_path: Path) -> Lake:
    """A private copy of the backfilled lake."""
    return copy_lake(backfilled, tmp_path / "lake")


def minute_candles(lake: Lake, symbol: str) -> dict[str, Any]:
    table = lake.read(
        "candles",
        symbols=symbol,
        param="1m",
        columns=["open_time", "volume", "taker_buy_volume", "trade_count"],
    )
    return {
        "open_time": table["open_time"].cast(pa.int64()).to_numpy(),
        "volume": table["volume"].to_numpy(),
        "taker_buy_volume": table["taker_buy_volume"].to_numpy(),
        "trade_count": table["trade_count"].to_numpy(),
    }


def trade_flow(lake: Lake, symbol: str) -> dict[int, tuple[float, int]]:
    """Per minute, a plain loop over the lake's trades: (taker buys − taker sells, trades)."""
    table = lake.read(
        "agg_trades",
        symbols=symbol,
        columns=["transact_time", "quantity", "is_buyer_maker", "first_trade_id", "last_trade_id"],
    )
    flow: dict[int, list[float]] = defaultdict(lambda: [0.0, 0])
    for time_ms, quantity, maker, first, last in zip(
        table["transact_time"].cast(pa.int64()).to_pylist(),
        table["quantity"].to_pylist(),
        table["is_buyer_maker"].to_pylist(),
        table["first_trade_id"].to_pylist(),
        table["last_trade_id"].to_pylist(),
        strict=True,
    ):
        minute = time_ms - time_ms % MINUTE_MS
        flow[minute][0] += -quantity if maker else quantity
        flow[minute][1] += last - first + 1
    return {minute: (signed, int(count)) for minute, (signed, count) in flow.items()}


def closed_bars(open_times: Any, *, start_ms: int, end_ms: int) -> list[int]:
    """Open times of the 15m bars opening at or after start_ms whose 15 minutes are all in the
    lake and which closed by end_ms (a plain count, independent of the resampler)."""
    minutes = Counter(int(t) - int(t) % BAR_MS for t in open_times)
    return sorted(
        bar
        for bar, count in minutes.items()
        if count == BAR_MS // MINUTE_MS and bar >= start_ms and bar + BAR_MS <= end_ms
    )


def on_bar(time_ms: int) -> int:
    """The 15m bar boundary at or before ``time_ms``."""
    return time_ms - time_ms % BAR_MS


def without_written(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in WRITTEN.values() if c in table.column_names])


def stored(lake: Lake, name: str, symbol: str = SYMBOL) -> pa.Table:
    return lake.read(name, symbols=symbol, param=CONFIG.timeframe)


def file_bytes(root: Path) -> dict[str, bytes | str]:
    """Every file under ``root``: symlinks by target, files by content."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(root))] = str(path.readlink())
        elif path.is_file():
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def _ms(row: dict[str, Any]) -> int:
    return round(row["bar_open_time"].timestamp() * 1000)


def test_a_run_persists_its_signals_their_scores_and_one_run_row(lake: Lake) -> None:
    """score_symbol stores one signal row and one audit row per signal and one score_runs row
    whose counts, bars and watermarks match an independent reading of the lake; read_signals
    returns those signals joined with their score and confidence."""
    start_ms = on_bar(NOW_MS - 3 * DAY_MS)
    end_ms = NOW_MS - 7 * MINUTE_MS
    run = score_symbol(
        lake,
        SYMBOL,
        config=CONFIG,
        start_ms=start_ms,
        end_ms=end_ms,
        code_version="test",
        clock_ms=CLOCK_MS,
    )

    candles = minute_candles(lake, SYMBOL)
    bars = closed_bars(candles["open_time"], start_ms=start_ms, end_ms=end_ms)
    assert (run.bars, run.first_bar_ms, run.last_bar_ms) == (len(bars), bars[0], bars[-1])
    interest = lake.read("open_interest", symbols=SYMBOL, param="5m", end=end_ms)
    funding = lake.read("funding", symbols=SYMBOL, end=end_ms)
    assert run.watermarks == {
        "candles": int(candles["open_time"][candles["open_time"] < end_ms].max()),
        "open_interest": int(interest["timestamp"].cast(pa.int64()).to_numpy().max()),
        "funding": int(funding["funding_time"].cast(pa.int64()).to_numpy().max()),
    }

    signals, scores = stored(lake, "signals"), stored(lake, "scores")
    assert run.signals > 0
    assert run.signals == run.signals_inserted == run.scores_inserted == signals.num_rows
    assert scores.num_rows == signals.num_rows
    assert sorted(scores["signal_id"].to_pylist()) == sorted(signals["signal_id"].to_pylist())
    assert set(scores["rules_version"].to_pylist()) == {RULES_VERSION}
    assert set(scores["code_version"].to_pylist()) == {"test"}
    assert set(signals["detected_at"].cast(pa.int64()).to_pylist()) == {CLOCK_MS * 1000}
    assert set(scores["scored_at"].cast(pa.int64()).to_pylist()) == {CLOCK_MS * 1000}
    opens = signals["bar_open_time"].cast(pa.int64()).to_pylist()
    assert set(opens) <= set(bars)
    assert dict(Counter(signals["setup"].to_pylist())) == run.by_setup

    runs = lake.read(SCORE_RUNS, symbols=SYMBOL).to_pylist()
    assert len(runs) == 1
    row = runs[0]
    assert row["run_id"] == run.run_id
    assert (row["timeframe"], row["rules_version"]) == ("15m", RULES_VERSION)
    assert (row["bars"], row["signals"]) == (run.bars, run.signals)
    assert (row["signals_inserted"], row["scores_inserted"]) == (run.signals, run.signals)
    assert row["first_bar_open_time"].timestamp() * 1000 == run.first_bar_ms
    assert row["last_bar_open_time"].timestamp() * 1000 == run.last_bar_ms
    assert json.loads(row["watermarks"]) == run.watermarks

    frame = read_signals(lake, symbols=SYMBOL)
    assert frame.height == run.signals
    assert frame["signal_id"].n_unique() == run.signals
    by_id = {r["signal_id"]: r for r in scores.to_pylist()}
    for joined in frame.iter_rows(named=True):
        audit = by_id[joined["signal_id"]]
        assert (joined["score"], joined["confidence"]) == (audit["score"], audit["confidence"])
        assert joined["score"] == sum(
            audit[f"{group}_points"] for group in ("trend", "flow", "session")
        )
        assert joined["confidence"] in {"high", "medium", "low"}
    assert frame["bar_open_time"].is_sorted()

    later = bars[len(bars) // 2]
    window = read_signals(lake, symbols=SYMBOL, start_ms=later, end_ms=later + DAY_MS)
    assert window["signal_id"].to_list() == [
        r["signal_id"] for r in frame.iter_rows(named=True) if later <= _ms(r) < later + DAY_MS
    ]
    unscored = read_signals(lake, symbols=SYMBOL, rules_version="score-0")
    assert unscored.height == run.signals
    assert unscored["score"].null_count() == run.signals


def test_rerunning_a_window_inserts_nothing_and_changes_no_stored_byte(lake: Lake) -> None:
    """Append-only: the same window scored again (later, by a different clock) inserts 0 signals
    and 0 scores, leaves every signals/scores file byte-for-byte and every row as it was
    (detected_at/scored_at keep their first values) and only adds its own run row."""
    window = {"start_ms": NOW_MS - 2 * DAY_MS, "end_ms": NOW_MS - DAY_MS}
    first = score_symbol(lake, SYMBOL, config=CONFIG, clock_ms=CLOCK_MS, **window)
    assert first.signals_inserted > 0
    tables = {name: stored(lake, name) for name in WRITTEN}
    files = {name: file_bytes(lake.root / name) for name in WRITTEN}
    (first_run,) = lake.read(SCORE_RUNS, symbols=SYMBOL).to_pylist()

    again = score_symbol(lake, SYMBOL, config=CONFIG, clock_ms=CLOCK_MS + DAY_MS, **window)

    assert (again.signals_inserted, again.scores_inserted) == (0, 0)
    assert (again.bars, again.signals, again.by_setup) == (
        first.bars,
        first.signals,
        first.by_setup,
    )
    for name, written in WRITTEN.items():
        assert stored(lake, name).equals(tables[name]), name
        assert file_bytes(lake.root / name) == files[name], name
        assert set(stored(lake, name)[written].cast(pa.int64()).to_pylist()) == {CLOCK_MS * 1000}
    runs = {row["run_id"]: row for row in lake.read(SCORE_RUNS, symbols=SYMBOL).to_pylist()}
    assert set(runs) == {first.run_id, again.run_id}
    assert runs[first.run_id] == first_run
    assert (runs[again.run_id]["signals_inserted"], runs[again.run_id]["scores_inserted"]) == (0, 0)


def test_a_wider_window_inserts_only_the_signals_outside_the_stored_one(lake: Lake) -> None:
    """Scoring a window that contains a scored one inserts exactly the signals of the added
    bars; the stored rows stay as they were."""
    inner = {"start_ms": on_bar(NOW_MS - 2 * DAY_MS), "end_ms": on_bar(NOW_MS - DAY_MS)}
    score_symbol(lake, SYMBOL, config=CONFIG, clock_ms=CLOCK_MS, **inner)
    before = {name: stored(lake, name) for name in WRITTEN}
    wide = score_symbol(
        lake,
        SYMBOL,
        config=CONFIG,
        start_ms=NOW_MS - 3 * DAY_MS,
        end_ms=NOW_MS,
        clock_ms=CLOCK_MS + DAY_MS,
    )
    signals = stored(lake, "signals").to_pylist()
    old_ids = set(before["signals"]["signal_id"].to_pylist())
    added = [row for row in signals if not inner["start_ms"] <= _ms(row) < inner["end_ms"]]
    assert old_ids == {row["signal_id"] for row in signals} - {row["signal_id"] for row in added}
    assert wide.signals_inserted == wide.scores_inserted == len(added) > 0
    assert wide.signals == len(signals)
    for name in WRITTEN:
        kept = stored(lake, name).filter(
            pa.compute.is_in(stored(lake, name)["signal_id"], pa.array(sorted(old_ids)))
        )
        assert kept.equals(before[name]), name


def test_two_incremental_runs_store_what_one_run_over_the_whole_period_stores(
    backfilled: Path, tmp_path: Path
) -> None:
    """Scored in two steps (to a cut mid-minute, then incrementally with no start) the lake
    holds the same signal ids, scores and audit inputs as after one run over the whole period;
    the second run starts right after the first one's last bar; a third finds nothing."""
    stepwise = copy_lake(backfilled, tmp_path / "stepwise")
    whole = copy_lake(backfilled, tmp_path / "whole")
    cut_ms = NOW_MS - DAY_MS - 37 * MINUTE_MS - 20_000  # neither on a bar nor on a minute

    first = score_symbol(stepwise, SYMBOL, config=CONFIG, end_ms=cut_ms, clock_ms=CLOCK_MS)
    second = score_symbol(stepwise, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS + 1)
    third = score_symbol(stepwise, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS + 2)
    one = score_symbol(whole, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS)

    assert first.last_bar_ms is not None
    assert first.last_bar_ms + BAR_MS <= cut_ms < first.last_bar_ms + 2 * BAR_MS
    assert second.first_bar_ms == first.last_bar_ms + BAR_MS
    assert (first.first_bar_ms, second.last_bar_ms) == (one.first_bar_ms, one.last_bar_ms)
    assert first.bars + second.bars == one.bars
    assert first.signals > 0 and second.signals > 0
    assert first.signals + second.signals == one.signals
    assert (third.bars, third.first_bar_ms, third.signals_inserted) == (0, None, 0)
    for name in WRITTEN:
        assert without_written(stored(stepwise, name)).equals(
            without_written(stored(whole, name))
        ), name
    runs = stepwise.read(SCORE_RUNS, symbols=SYMBOL)
    assert sorted(runs["run_id"].to_pylist()) == sorted([first.run_id, second.run_id])


def test_a_windowed_run_further_on_does_not_make_the_incremental_run_skip_bars(
    backfilled: Path, tmp_path: Path
) -> None:
    """Incremental to a cut, then a --start/--end window hours later, then incremental again:
    the last run resumes right after the first cut (the bars between were never scored), and
    the lake ends up exactly as after one run over the whole period."""
    gapped = copy_lake(backfilled, tmp_path / "gapped")
    whole = copy_lake(backfilled, tmp_path / "whole")
    cut_ms = on_bar(NOW_MS - 2 * DAY_MS)
    first = score_symbol(gapped, SYMBOL, config=CONFIG, end_ms=cut_ms, clock_ms=CLOCK_MS)
    window = score_symbol(
        gapped,
        SYMBOL,
        config=CONFIG,
        start_ms=cut_ms + DAY_MS,
        end_ms=cut_ms + DAY_MS + 6 * 3_600_000,
        clock_ms=CLOCK_MS + 1,
    )
    resumed = score_symbol(gapped, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS + 2)
    score_symbol(whole, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS)

    assert first.last_bar_ms is not None
    assert window.bars == 24
    assert resumed.first_bar_ms == first.last_bar_ms + BAR_MS
    for name in WRITTEN:
        ids = set(stored(gapped, name)[f"{name[:-1]}_id"].to_pylist())
        assert ids == set(stored(whole, name)[f"{name[:-1]}_id"].to_pylist()), name


def test_another_configuration_keeps_its_own_incremental_start(lake: Lake) -> None:
    """A run with other rubric thresholds (another config hash) starts from the beginning even
    after a default run: each configuration keeps its own mark."""
    default = score_symbol(lake, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS)
    strict = SignalConfig(rules=ScoreRules(adx_min=30.0))
    other = score_symbol(lake, SYMBOL, config=strict, end_ms=NOW_MS, clock_ms=CLOCK_MS + 1)
    again = score_symbol(lake, SYMBOL, config=strict, end_ms=NOW_MS, clock_ms=CLOCK_MS + 2)
    assert other.first_bar_ms == default.first_bar_ms
    assert other.bars == default.bars
    assert (again.bars, again.config_hash) == (0, strict.config_hash)


def test_the_incremental_start_is_kept_per_timeframe(lake: Lake) -> None:
    """A 15m run does not move the start of an incremental 5m run, and vice versa."""
    fifteen = score_symbol(lake, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS)
    five = score_symbol(
        lake, SYMBOL, config=SignalConfig(timeframe="5m"), end_ms=NOW_MS, clock_ms=CLOCK_MS
    )
    assert five.first_bar_ms == fifteen.first_bar_ms
    assert five.bars == 3 * fifteen.bars + 2  # two closed 5m bars of the open 15m bar


def test_trade_delta_equals_the_candle_identity_on_exchange_data(lake: Lake) -> None:
    """With trades in the lake the per-minute delta is the trades' own (taker buys − sells, a
    plain loop over the stored trades) and equals the candle identity 2·takerbuy − volume; the
    run reports delta_source "trades" and every stored bar delta equals the candle identity."""
    candles = minute_candles(lake, SYMBOL)
    flow = trade_flow(lake, SYMBOL)
    inputs = load_inputs(lake, SYMBOL, start_ms=NOW_MS - 5 * DAY_MS, end_ms=NOW_MS)
    assert inputs.trade_delta
    assert inputs.minutes.open_time_ms.tolist() == candles["open_time"].tolist()
    identity = 2.0 * candles["taker_buy_volume"] - candles["volume"]
    for index, minute in enumerate(candles["open_time"].tolist()):
        signed, count = flow.get(minute, (0.0, 0))
        assert count == candles["trade_count"][index]
        assert inputs.minutes.delta[index] == pytest.approx(signed, rel=1e-12, abs=1e-9)
        assert signed == pytest.approx(identity[index], rel=1e-9, abs=1e-9)

    run = score_symbol(lake, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS)
    assert run.trade_delta and run.to_dict()["delta_source"] == "trades"
    by_bar: dict[int, float] = defaultdict(float)
    for minute, value in zip(candles["open_time"].tolist(), identity, strict=True):
        by_bar[minute - minute % BAR_MS] += float(value)
    scores = stored(lake, "scores").to_pylist()
    assert len(scores) == run.signals > 0
    for row in scores:
        delta = json.loads(row["inputs"])["delta"]
        assert delta == pytest.approx(by_bar[_ms(row)], rel=1e-9, abs=1e-9)


def test_a_minute_with_complete_trades_takes_its_delta_from_the_trades(lake: Lake) -> None:
    """The trades really are the source: flip the aggressor side of one minute's stored trades
    (their count still matches the candle) and that minute's delta flips, no other changes."""
    minute = NOW_MS - 2 * DAY_MS - (NOW_MS - 2 * DAY_MS) % MINUTE_MS
    trades = lake.read("agg_trades", symbols=SYMBOL, start=minute, end=minute + MINUTE_MS - 1)
    assert trades.num_rows > 0
    flipped = trades.set_column(
        trades.schema.get_field_index("is_buyer_maker"),
        "is_buyer_maker",
        pa.compute.invert(trades["is_buyer_maker"]),
    )
    before = load_inputs(lake, SYMBOL, start_ms=NOW_MS - 3 * DAY_MS, end_ms=NOW_MS)
    lake.upsert("agg_trades", flipped.drop_columns(["symbol"]), symbol=SYMBOL)
    after = load_inputs(lake, SYMBOL, start_ms=NOW_MS - 3 * DAY_MS, end_ms=NOW_MS)

    changed = np.flatnonzero(after.minutes.delta != before.minutes.delta)
    assert after.minutes.open_time_ms[changed].tolist() == [minute]
    assert after.minutes.delta[changed[0]] == pytest.approx(-before.minutes.delta[changed[0]])


def test_the_candle_delta_gives_the_same_signals(backfilled: Path, tmp_path: Path) -> None:
    """use_trades=False (the CLI's --candle-delta) reports delta_source "candles" and stores the
    same signals and scores as the trade-delta run (the delta agrees to rounding)."""
    trades = copy_lake(backfilled, tmp_path / "trades")
    candles = copy_lake(backfilled, tmp_path / "candles")
    with_trades = score_symbol(trades, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS)
    from_candles = score_symbol(
        candles, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS, use_trades=False
    )
    assert with_trades.to_dict()["delta_source"] == "trades"
    assert from_candles.to_dict()["delta_source"] == "candles"
    assert_same_signals(trades, candles)


def assert_same_signals(left: Lake, right: Lake) -> None:
    """Same signals and scores; the JSON inputs/reasons equal to rounding (trade sums and the
    candle identity differ in the last bits)."""
    exact_signals = ["signal_id", "bar_open_time", "setup", "direction", "level_kind"]
    assert (
        stored(left, "signals")
        .select(exact_signals)
        .equals(stored(right, "signals").select(exact_signals))
    )
    exact_scores = ["score_id", "signal_id", "score", "confidence", "data_quality", "notes"]
    assert (
        stored(left, "scores")
        .select(exact_scores)
        .equals(stored(right, "scores").select(exact_scores))
    )
    for name, columns in (("signals", ["reasons", "levels"]), ("scores", ["inputs"])):
        for a, b in zip(
            stored(left, name).select(columns).to_pylist(),
            stored(right, name).select(columns).to_pylist(),
            strict=True,
        ):
            for column in columns:
                assert_close(json.loads(a[column]), json.loads(b[column]))
    components = [
        {name: c["value"] for name, c in json.loads(text).items()}
        for text in stored(left, "scores")["components"].to_pylist()
    ]
    assert components == [
        {name: c["value"] for name, c in json.loads(text).items()}
        for text in stored(right, "scores")["components"].to_pylist()
    ]


def assert_close(left: Any, right: Any) -> None:
    if isinstance(left, dict):
        assert left.keys() == right.keys()
        for key in left:
            assert_close(left[key], right[key])
    elif isinstance(left, float) and isinstance(right, float):
        assert left == pytest.approx(right, rel=1e-9, abs=1e-9)
    else:
        assert left == right


def test_minutes_without_complete_trades_fall_back_to_the_candle_delta(
    backfilled: Path, tmp_path: Path
) -> None:
    """With a day and half a minute of trades deleted, those minutes take the candle identity
    (the remaining half minute's trades are not used), the rest keep the trades'; scoring runs
    without error and stores the same signals as the candle-delta run."""
    lake = copy_lake(backfilled, tmp_path / "holed")
    candles_only = copy_lake(backfilled, tmp_path / "candles")
    day_ms = (NOW_MS - 2 * DAY_MS) // DAY_MS * DAY_MS
    half_minute_ms = day_ms + DAY_MS + 30_000
    lake.upsert(
        "agg_trades",
        dataset("agg_trades").arrow_schema.empty_table(),
        symbol=SYMBOL,
        replace_range=(day_ms, half_minute_ms - 1),
    )
    candles = minute_candles(lake, SYMBOL)
    flow = trade_flow(lake, SYMBOL)
    identity = 2.0 * candles["taker_buy_volume"] - candles["volume"]
    partial = flow[day_ms + DAY_MS]
    index = int(np.searchsorted(candles["open_time"], day_ms + DAY_MS))
    assert 0 < partial[1] < candles["trade_count"][index]
    assert partial[0] != pytest.approx(identity[index])  # using them would show

    inputs = load_inputs(lake, SYMBOL, start_ms=NOW_MS - 5 * DAY_MS, end_ms=NOW_MS)
    assert inputs.trade_delta
    opens = inputs.minutes.open_time_ms
    holed = (opens >= day_ms) & (opens <= day_ms + DAY_MS)
    assert holed.sum() == DAY_MS // MINUTE_MS + 1
    np.testing.assert_array_equal(inputs.minutes.delta[holed], identity[holed])
    for position in np.flatnonzero(~holed):
        signed, _ = flow.get(int(opens[position]), (0.0, 0))
        assert inputs.minutes.delta[position] == pytest.approx(signed, rel=1e-12, abs=1e-9)

    run = score_symbol(lake, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS)
    assert run.to_dict()["delta_source"] == "trades"
    score_symbol(
        candles_only, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS, use_trades=False
    )
    assert run.signals > 0
    assert_same_signals(lake, candles_only)


def test_read_signals_joins_the_latest_written_configuration_of_a_rules_version(
    lake: Lake,
) -> None:
    """Scored again under another configuration of the same rules version (new audit rows, as
    score_id hashes the config), read_signals joins each signal with the row written last."""
    default = score_symbol(lake, SYMBOL, config=CONFIG, end_ms=NOW_MS, clock_ms=CLOCK_MS)
    strict = SignalConfig(rules=ScoreRules(adx_min=30.0))
    later = score_symbol(
        lake,
        SYMBOL,
        config=strict,
        start_ms=default.first_bar_ms,
        end_ms=NOW_MS,
        clock_ms=CLOCK_MS + DAY_MS,
    )
    assert (later.signals_inserted, later.scores_inserted) == (0, default.signals)
    assert stored(lake, "scores").num_rows == 2 * default.signals
    frame = read_signals(lake, symbols=SYMBOL)
    assert frame.height == default.signals
    assert frame["config_hash"].value_counts().rows() == [(strict.config_hash, default.signals)]


@pytest.mark.parametrize("closed_hours", [0, 1, 2, 3])
def test_a_lake_with_a_few_hours_of_history_scores_without_error(
    lake: Lake, closed_hours: int
) -> None:
    """A freshly listed symbol: with only minutes to hours of candles in the lake, the
    incremental run scores the closed 15m bars there are (the first, entered midway, is not)."""
    stored_range = lake.key_range("candles", symbol=SYMBOL, param="1m")
    assert stored_range is not None
    first_ms = stored_range[1]
    first_full_hour = first_ms - first_ms % 3_600_000 + 3_600_000
    end_ms = first_full_hour + closed_hours * 3_600_000
    expected = closed_bars(minute_candles(lake, SYMBOL)["open_time"], start_ms=0, end_ms=end_ms)
    run = score_symbol(lake, SYMBOL, config=CONFIG, end_ms=end_ms, clock_ms=CLOCK_MS)
    assert (run.bars, run.first_bar_ms, run.last_bar_ms) == (
        len(expected),
        expected[0],
        expected[-1],
    )


def test_a_window_before_the_first_candle_is_an_empty_run(lake: Lake) -> None:
    """A window with no candles of a known symbol (e.g. --window-days on a stale lake)
    evaluates 0 bars and writes nothing."""
    before = {name: file_bytes(lake.root / name) for name in (*WRITTEN, "score_runs")}
    run = score_symbol(
        lake,
        SYMBOL,
        config=CONFIG,
        start_ms=NOW_MS - 9 * DAY_MS,
        end_ms=NOW_MS - 8 * DAY_MS,
        clock_ms=CLOCK_MS,
    )
    assert (run.bars, run.signals, run.first_bar_ms) == (0, 0, None)
    assert {name: file_bytes(lake.root / name) for name in before} == before

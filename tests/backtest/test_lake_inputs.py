"""``ingmon backtest --symbol`` on the lake: 1m candles, funding, and signal/score rows written
here with ``Lake.upsert`` (as the signal engine will write them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ingmon.backtest.engine import BacktestConfig
from ingmon.backtest.files import read_lake_inputs
from ingmon.backtest.lake import backtest_lake
from ingmon.cli import main
from ingmon.lake import Lake
from ingmon.schema import CANDLES, FUNDING, SCORES, SIGNALS
from ingmon.signals.rules import RULES_VERSION
from tests.backtest._market import MINUTE_MS, random_bars

DAYS = 2
QUARTER_MS = 15 * MINUTE_MS


def table(schema: pa.Schema, rows: dict[str, Any]) -> pa.Table:
    """A table of the dataset's schema; times given as epoch ms."""
    arrays = []
    for target in schema:
        values = rows[target.name]
        if pa.types.is_timestamp(target.type):
            values = pa.array(np.asarray(values, dtype=np.int64) * (
                1000 if target.type.unit == "us" else 1
            ), pa.int64()).cast(target.type)  # fmt: skip
        arrays.append(pa.array(values, target.type) if not isinstance(values, pa.Array) else values)
    return pa.Table.from_arrays(arrays, schema=schema)


CURRENT, OLD = RULES_VERSION, "score-0"
# (quarter index, setup, direction, scores as (rules_version, scored_at offset, score, tag)):
# sig-40 was rescored later under the old rubric, sig-100 only ever under it.
SIGNAL_ROWS = [
    (4, "sweep_reclaim", "long", [(OLD, 0, 3, "low"), (CURRENT, 1, 6, "high")]),
    (50, "absorption", "short", [(CURRENT, 0, 5, "medium")]),
    (40, "sweep_reclaim", "short", [(CURRENT, 0, 6, "high"), (OLD, 1, 2, "low")]),
    (60, "exhaustion", "long", []),
    (100, "absorption", "long", [(OLD, 0, 7, "high")]),
    (150, "sweep_reclaim", "long", [(CURRENT, 0, 4, "medium")]),
]


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    """Two days of BTCUSDT 1m candles, 8-hourly funding, six 15m signals and their scores."""
    lake = Lake(tmp_path / "lake")
    bars = random_bars(31, DAYS * 1440, gap_probability=0.0)
    t = bars["open_time"].to_numpy()
    n = len(bars)
    lake.upsert(
        CANDLES,
        table(
            CANDLES.arrow_schema,
            {
                **{c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
                "open_time": t,
                "close_time": t + MINUTE_MS - 1,
                "quote_volume": bars["volume"].to_numpy() * 100,
                "trade_count": np.full(n, 10),
                "taker_buy_volume": bars["volume"].to_numpy() / 2,
                "taker_buy_quote_volume": bars["volume"].to_numpy() * 50,
                "ignore": np.zeros(n),
            },
        ),
        symbol="BTCUSDT",
        param="1m",
    )
    settle = t[0] + 8 * 60 * MINUTE_MS * np.arange(1, 3 * DAYS)
    lake.upsert(
        FUNDING,
        table(
            FUNDING.arrow_schema,
            {
                "funding_time": settle,
                "funding_rate": np.full(len(settle), 0.0003),
                "mark_price": np.full(len(settle), 100.0),
                "funding_interval_hours": np.full(len(settle), 8),
            },
        ),
        symbol="BTCUSDT",
    )
    signal_rows: dict[str, list[Any]] = {name: [] for name in SIGNALS.column_names}
    score_rows: dict[str, list[Any]] = {name: [] for name in SCORES.column_names}
    for quarter, setup, direction, scores in SIGNAL_ROWS:
        opened = int(t[0]) + quarter * QUARTER_MS
        signal_id = f"sig-{quarter}"
        close_at = bars["close"].to_numpy()[(quarter + 1) * 15 - 1]
        for name, value in {
            "signal_id": signal_id, "bar_open_time": opened,
            "bar_close_time": opened + QUARTER_MS - 1, "setup": setup, "direction": direction,
            "close": close_at, "stop_price": None, "target_price": None, "level_kind": None,
            "level_price": None, "levels": "{}", "reasons": "{}", "detector_version": "d1",
            "detected_at": opened + QUARTER_MS,
        }.items():  # fmt: skip
            signal_rows[name].append(value)
        for version, offset, score, tag in scores:
            for name, value in {
                "score_id": f"{signal_id}|{version}", "signal_id": signal_id,
                "bar_open_time": opened, "setup": setup, "direction": direction,
                "rules_version": version, "config_hash": "h", "code_version": "0",
                "score": score, "trend_points": 0, "flow_points": 0, "session_points": 0,
                "confidence": tag, "data_quality": "ok", "components": "[]", "inputs": "{}",
                "thresholds": "{}", "watermarks": "{}", "notes": "[]",
                "scored_at": opened + QUARTER_MS + offset * 3_600_000,
            }.items():  # fmt: skip
                score_rows[name].append(value)
    lake.upsert(SIGNALS, table(SIGNALS.arrow_schema, signal_rows), symbol="BTCUSDT", param="15m")
    lake.upsert(SCORES, table(SCORES.arrow_schema, score_rows), symbol="BTCUSDT", param="15m")
    return tmp_path


def end_of(root: Path) -> int:
    candles = Lake(root / "lake").read("candles", symbols="BTCUSDT", param="1m")
    return int(candles["open_time"].cast(pa.int64())[-1].as_py()) + MINUTE_MS


def test_scores_join_one_rules_version_and_filters_apply(lake_root: Path) -> None:
    """Each signal carries its score under the current rules version only, never a later
    rescoring under another rubric: --min-score 4 keeps sig-4 (6), sig-40 (6, though rescored 2
    later by the old rules), sig-50 (5) and sig-150 (4), and drops sig-100 (scored only by the
    old rules) and the unscored sig-60; known at bar_close_time + 1 ms."""
    end = end_of(lake_root)
    inputs = read_lake_inputs(
        Lake(lake_root / "lake"),
        symbol="BTCUSDT",
        timeframe="15m",
        start_ms=end - DAYS * 86_400_000,
        end_ms=end,
        min_score=4,
    )
    signals = inputs.signals
    assert inputs.rules_version == RULES_VERSION
    assert signals["signal_id"].tolist() == ["sig-4", "sig-40", "sig-50", "sig-150"]
    assert signals["score"].tolist() == [6, 6, 5, 4]
    assert signals["confidence"].tolist() == ["high", "high", "medium", "medium"]
    np.testing.assert_array_equal(signals["known_ms"], signals["time"] + QUARTER_MS)
    assert len(inputs.bars) == DAYS * 1440 and len(inputs.funding) == 3 * DAYS - 1  # type: ignore[arg-type]


def test_another_rules_version_is_asked_for_by_name(lake_root: Path) -> None:
    """rules_version="score-0" joins that rubric's scores alone: sig-4 3, sig-40 2, sig-100 7."""
    end = end_of(lake_root)
    inputs = read_lake_inputs(
        Lake(lake_root / "lake"),
        symbol="BTCUSDT",
        timeframe="15m",
        start_ms=end - DAYS * 86_400_000,
        end_ms=end,
        min_score=0,
        rules_version=OLD,
    )
    assert inputs.signals["signal_id"].tolist() == ["sig-4", "sig-40", "sig-100"]
    assert inputs.signals["score"].tolist() == [3, 2, 7]


def wilder_atr_by_hand(quarters: pd.DataFrame, length: int) -> np.ndarray:
    """Wilder's ATR as written in the reference: true range (the first bar's is high − low),
    seeded with the mean of the first ``length`` values, then atr = (prev·(n−1) + tr) / n."""
    high, low, close = (quarters[c].to_numpy() for c in ("high", "low", "close"))
    true_range = [high[0] - low[0]]
    for i in range(1, len(quarters)):
        true_range.append(
            max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        )
    out = [float("nan")] * len(quarters)
    level = sum(true_range[:length]) / length
    out[length - 1] = level
    for i in range(length, len(quarters)):
        level = (level * (length - 1) + true_range[i]) / length
        out[i] = level
    return np.asarray(out)


def test_lake_signals_carry_the_signal_engines_wilder_atr_without_lookahead(
    lake_root: Path,
) -> None:
    """The ATR a signal brings is Wilder's ATR14 on 15m bars (pandas resample of the 1m
    candles, a hand loop for the average) at its bar: NaN for sig-4 (5 quarters of history),
    equal elsewhere; reading only up to a signal bar's close gives it the same value."""
    end = end_of(lake_root)
    lake = Lake(lake_root / "lake")
    inputs = read_lake_inputs(
        lake, symbol="BTCUSDT", timeframe="15m", start_ms=end - DAYS * 86_400_000, end_ms=end
    )
    candles = lake.read("candles", symbols="BTCUSDT", param="1m").to_pandas()
    indexed = candles.set_index("open_time")
    quarters = indexed.resample("15min").agg({"high": "max", "low": "min", "close": "last"})
    expected = pd.Series(wilder_atr_by_hand(quarters, 14), index=quarters.index.as_unit("ms"))
    by_time = expected.set_axis(expected.index.asi8)
    signals = inputs.signals
    assert np.isnan(signals["atr"].iloc[0]) and np.isfinite(signals["atr"].iloc[1:]).all()
    np.testing.assert_allclose(
        signals["atr"].to_numpy(), by_time.loc[signals["time"]].to_numpy(), rtol=1e-12
    )
    sig_50 = signals[signals["signal_id"] == "sig-50"].iloc[0]
    cut = read_lake_inputs(
        lake, symbol="BTCUSDT", timeframe="15m", start_ms=end - DAYS * 86_400_000,
        end_ms=int(sig_50["known_ms"]),
    )  # fmt: skip
    assert cut.signals["signal_id"].iloc[-1] == "sig-50"
    assert cut.signals["atr"].iloc[-1] == sig_50["atr"]


def test_backtest_of_lake_signals_enters_after_the_signal_bar_closes(
    lake_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI on the lake: trades of the filtered signals only, each entering at the open of
    the first 1m bar after its 15m bar closed, with funding charged and the run saved with the
    rules version its scores come from."""
    out = lake_root / "out"
    code = main(
        ["backtest", "--symbol", "BTCUSDT", "--window-days", "1", "2", "--timeframe", "15m",
         "--min-score", "4", "--confidence", "high,medium", "--hold-bars", "140",
         "--end", str(end_of(lake_root)), "--data-dir", str(lake_root), "--out", str(out)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert (code, captured.err) == (0, ""), captured.err
    trades = pd.read_csv(out / "trades.csv")
    assert trades["signal_id"].tolist() == ["sig-4", "sig-40", "sig-50", "sig-150"]
    signal_open = pd.to_datetime(trades["signal_time"])
    entry = pd.to_datetime(trades["entry_time"])
    assert ((entry - signal_open) == pd.Timedelta(minutes=15)).all()
    assert (trades["funding"] != 0).any()
    document = json.loads((out / "summary.json").read_text())
    assert document["source"] == "lake" and document["config"]["timeframe"] == "15m"
    assert document["config"]["filters"]["min_score"] == 4
    assert document["config"]["filters"]["rules_version"] == RULES_VERSION
    assert set(document["breakdowns"]["score"]) == {"4", "5", "6"}
    runs = Lake(lake_root / "lake").read("backtest_runs", symbols="BTCUSDT")
    assert runs["run_id"].to_pylist() == [document["run_id"]]
    assert json.loads(runs["config"][0].as_py())["filters"]["rules_version"] == RULES_VERSION
    saved = Lake(lake_root / "lake").read("backtest_trades", symbols="BTCUSDT")
    assert saved.num_rows == 4


def test_a_window_without_candles_is_one_line_and_exit_2(
    lake_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Asking for a time the lake has no candles for: one line naming the symbol, exit 2."""
    code = main(
        ["backtest", "--symbol", "ETHUSDT", "--data-dir", str(lake_root), "--no-save",
         "--out", str(lake_root / "out")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "ETHUSDT: no 1m candles in the lake" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--timeframe", "2h"], "invalid signal timeframe '2h': expected one of 5m, 15m, 30m"),
        (["--timeframe", "1m"], "invalid signal timeframe '1m'"),
        (["--setup", "sweep_reclaim,moonshot"], "unknown setup 'moonshot': expected one of"),
    ],
)
def test_lake_mode_takes_signal_timeframes_and_known_setups_only(
    flags: list[str], message: str, lake_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A timeframe the signal engine does not score, or a setup it does not have: one line,
    exit 2, no traceback."""
    code = main(
        ["backtest", "--symbol", "BTCUSDT", *flags, "--end", str(end_of(lake_root)),
         "--data-dir", str(lake_root), "--no-save", "--out", str(lake_root / "out")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_windows_end_at_the_requested_end_and_a_stale_lake_is_flagged(
    lake_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--end 12 hours after the last candle: the 1- and 2-day windows end at --end (not at the
    last candle) and, holding 12 and 36 hours of data, are flagged partial_data; so is the
    whole run."""
    end = end_of(lake_root) + 12 * 3_600_000
    out = lake_root / "out"
    code = main(
        ["backtest", "--symbol", "BTCUSDT", "--window-days", "1", "2", "--hold-bars", "60",
         "--end", str(end), "--data-dir", str(lake_root), "--no-save", "--out", str(out)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert (code, captured.err) == (0, ""), captured.err
    document = json.loads((out / "summary.json").read_text())
    end_iso = pd.Timestamp(end, unit="ms", tz="UTC")
    for window in document["windows"]:
        assert pd.Timestamp(window["end"]) == end_iso
        assert "partial_data" in window["flags"], window["label"]
    assert "partial_data" in document["flags"]
    assert pd.Timestamp(document["data"]["as_of"]) == end_iso
    assert "flags 1d: " in captured.out and "partial_data" in captured.out


def test_backtest_lake_is_the_pipeline_the_cli_runs(
    lake_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """backtest_lake with the CLI's options saves the run, writes its exports and backtests the
    same data (same data hash, same trades) as ``ingmon backtest --symbol``."""
    end = end_of(lake_root)
    out = lake_root / "cli"
    code = main(
        ["backtest", "--symbol", "BTCUSDT", "--window-days", "1", "2", "--hold-bars", "140",
         "--min-score", "4", "--end", str(end), "--data-dir", str(lake_root), "--no-save",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    lake = Lake(lake_root / "lake")
    done = backtest_lake(
        lake,
        "BTCUSDT",
        config=BacktestConfig(hold_bars=140),
        timeframe="15m",
        window_days=(1, 2),
        end_ms=end,
        min_score=4,
        exports_root=lake_root / "exports",
    )
    cli_document = json.loads((out / "summary.json").read_text())
    assert done.run.data["hash"] == cli_document["data"]["hash"]
    assert done.run.config_hash == cli_document["config_hash"]
    ours = pd.read_csv(lake_root / "exports" / done.run.run_id / "trades.csv")
    pd.testing.assert_frame_equal(ours, pd.read_csv(out / "trades.csv"))
    assert {path.name for path in done.written} == {"summary.json", "trades.csv", "equity.csv"}
    assert lake.read("backtest_runs", symbols="BTCUSDT")["run_id"].to_pylist() == [done.run.run_id]

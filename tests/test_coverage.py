"""Coverage finds planted gaps exactly: compared with a slot-by-slot walk written here."""

from __future__ import annotations

import calendar
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ingmon.config import load_settings
from ingmon.coverage import coverage_report, series_coverage
from ingmon.errors import UsageError
from ingmon.lake import Lake
from ingmon.schema import AGG_TRADES, CANDLES, FUNDING, OPEN_INTEREST
from ingmon.times import iso_ms

SYMBOL = "BTCUSDT"
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
JAN_2026_MS = calendar.timegm((2026, 1, 1, 0, 0, 0)) * 1000
STEP_MS = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "1h": HOUR_MS,
    "4h": 4 * HOUR_MS,
    "1d": 24 * HOUR_MS,
}


# ---- the reference: walk every expected slot ----------------------------------------------------


def walk_gaps(
    times_ms: list[int], step_ms: int, start_ms: int | None, end_ms: int | None
) -> list[tuple[str, int, int, int]]:
    """Missing runs on the step grid as (kind, first, last, count), by visiting every slot."""
    present = {
        t
        for t in times_ms
        if (start_ms is None or t >= start_ms) and (end_ms is None or t <= end_ms)
    }
    if not present and (start_ms is None or end_ms is None):
        return []
    slot = min(present) if start_ms is None else start_ms
    slot += -slot % step_ms  # the first grid slot at or after the window start
    last_slot = max(present) if end_ms is None else end_ms
    last_slot -= last_slot % step_ms
    runs: list[list[int]] = []
    in_run = False
    while slot <= last_slot:
        if slot in present:
            in_run = False
        elif in_run:
            runs[-1][1] = slot
        else:
            runs.append([slot, slot])
            in_run = True
        slot += step_ms
    gaps = []
    for first, last in runs:
        if not present or last < min(present):
            kind = "head"
        elif first > max(present):
            kind = "tail"
        else:
            kind = "internal"
        gaps.append((kind, first, last, (last - first) // step_ms + 1))
    return gaps


def walk_id_gaps(ids: list[int]) -> list[tuple[int, int, int]]:
    """Missing aggregate ids between the first and last stored one, visiting every id."""
    present = set(ids)
    runs: list[list[int]] = []
    for trade_id in range(min(ids), max(ids) + 1) if ids else []:
        if trade_id in present:
            continue
        if runs and runs[-1][1] == trade_id - 1:
            runs[-1][1] = trade_id
        else:
            runs.append([trade_id, trade_id])
    return [(first, last, last - first + 1) for first, last in runs]


def found_gaps(coverage: Any) -> list[tuple[str, int, int, int]]:
    return [(g.kind, g.first_missing, g.last_missing, g.missing) for g in coverage.gaps]


# ---- lake builders ------------------------------------------------------------------------------


def candle_rows(times_ms: list[int], step_ms: int) -> pa.Table:
    count = len(times_ms)
    time_type = CANDLES.arrow_schema.field("open_time").type
    columns = {name: pa.array([1.0] * count) for name in CANDLES.column_names}
    columns["open_time"] = pa.array(times_ms, pa.int64()).cast(time_type)
    columns["close_time"] = pa.array([t + step_ms - 1 for t in times_ms], pa.int64()).cast(
        time_type
    )
    columns["trade_count"] = pa.array([1] * count, pa.int64())
    return pa.table(columns)


def oi_rows(times_ms: list[int]) -> pa.Table:
    return pa.table(
        {
            "timestamp": pa.array(times_ms, pa.int64()).cast(
                OPEN_INTEREST.arrow_schema.field("timestamp").type
            ),
            "sum_open_interest": [1.0] * len(times_ms),
            "sum_open_interest_value": [2.0] * len(times_ms),
            "cmc_circulating_supply": [None] * len(times_ms),
        }
    )


def funding_rows(times_ms: list[int], hours: list[int | None]) -> pa.Table:
    return pa.table(
        {
            "funding_time": pa.array(times_ms, pa.int64()).cast(
                FUNDING.arrow_schema.field("funding_time").type
            ),
            "funding_rate": [0.0001] * len(times_ms),
            "mark_price": [None] * len(times_ms),
            "funding_interval_hours": pa.array(hours, pa.int32()),
        }
    )


def window_strategy() -> st.SearchStrategy[Any]:
    """None, or (start slot, end slot, jitter ms, jitter ms) around the data; may be empty."""
    jitter = st.sampled_from([-1, 0, 1])
    return st.none() | st.tuples(st.integers(-6, 66), st.integers(-6, 66), jitter, jitter)


def as_window(base_ms: int, step_ms: int, window: Any) -> tuple[int | None, int | None]:
    if window is None:
        return None, None
    first, last, start_jitter, end_jitter = window
    low, high = sorted((first, last))
    return base_ms + low * step_ms + start_jitter, base_ms + high * step_ms + end_jitter


# ---- candles and open interest: the interval / period grid --------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    interval=st.sampled_from(sorted(STEP_MS)),
    removed=st.sets(st.integers(0, 59), max_size=40),
    window=window_strategy(),
)
def test_candle_gaps_match_a_slot_walk(interval: str, removed: set[int], window: Any) -> None:
    """Candles of 1m…1d with planted holes (and head/tail against a window) match the walk."""
    step = STEP_MS[interval]
    base = JAN_2026_MS + 7 * step  # the grid is the epoch's; start a few slots into 2026
    times = [base + i * step for i in range(60) if i not in removed]
    start, end = as_window(base, step, window)
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(tmp)
        lake.upsert(CANDLES, candle_rows(times, step), symbol=SYMBOL, param=interval)
        coverage = series_coverage(
            lake, CANDLES, symbol=SYMBOL, param=interval, start=start, end=end
        )
    assert found_gaps(coverage) == walk_gaps(times, step, start, end)
    inside = [t for t in times if (start is None or t >= start) and (end is None or t <= end)]
    assert coverage.rows == len(inside)
    assert (coverage.earliest_ms, coverage.latest_ms) == (
        (min(inside), max(inside)) if inside else (None, None)
    )
    for gap in coverage.gaps:
        if gap.kind == "internal":  # the rows either side of the hole
            assert (gap.after_time_ms, gap.before_time_ms) == (
                gap.first_missing - step,
                gap.last_missing + step,
            )


@settings(max_examples=30, deadline=None)
@given(
    period=st.sampled_from(["5m", "1h", "1d"]),
    removed=st.sets(st.integers(0, 59), max_size=30),
    window=window_strategy(),
)
def test_open_interest_gaps_match_a_slot_walk(period: str, removed: set[int], window: Any) -> None:
    """Open interest steps by its period: holes, head and tail match the walk."""
    step = STEP_MS[period]
    base = JAN_2026_MS
    times = [base + i * step for i in range(60) if i not in removed]
    start, end = as_window(base, step, window)
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(tmp)
        lake.upsert(OPEN_INTEREST, oi_rows(times), symbol=SYMBOL, param=period)
        coverage = series_coverage(
            lake, OPEN_INTEREST, symbol=SYMBOL, param=period, start=start, end=end
        )
    assert found_gaps(coverage) == walk_gaps(times, step, start, end)
    assert coverage.step_ms == step


def test_candle_window_hand_worked(tmp_path: Path) -> None:
    """Hand-worked: 1h candles 02:00–05:00 minus 04:00, window 00:30–07:59 → head, hole, tail."""
    lake = Lake(tmp_path)
    times = [JAN_2026_MS + h * HOUR_MS for h in (2, 3, 5)]
    lake.upsert(CANDLES, candle_rows(times, HOUR_MS), symbol=SYMBOL, param="1h")
    coverage = series_coverage(
        lake,
        "candles",
        symbol=SYMBOL,
        param="1h",
        start="2026-01-01T00:30:00Z",
        end="2026-01-01T07:59:00Z",
    )
    assert [
        (g.kind, iso_ms(g.first_missing), iso_ms(g.last_missing), g.missing) for g in coverage.gaps
    ] == [
        ("head", "2026-01-01T01:00:00.000Z", "2026-01-01T01:00:00.000Z", 1),
        ("internal", "2026-01-01T04:00:00.000Z", "2026-01-01T04:00:00.000Z", 1),
        ("tail", "2026-01-01T06:00:00.000Z", "2026-01-01T07:00:00.000Z", 2),
    ]
    assert coverage.missing == 4
    empty = series_coverage(
        lake, "candles", symbol=SYMBOL, param="1h", start="2026-01-02", end="2026-01-02T02:00:00Z"
    )
    assert (empty.rows, found_gaps(empty)) == (
        0,
        [("head", JAN_2026_MS + 24 * HOUR_MS, JAN_2026_MS + 26 * HOUR_MS, 3)],
    )


# ---- funding: the symbol's own interval ---------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    interval_hours=st.sampled_from([8, 4]),
    removed=st.sets(st.integers(0, 59), max_size=30),
    null_hours=st.sets(st.integers(0, 59)),
    window=window_strategy(),
)
def test_funding_gaps_follow_the_symbols_interval(
    interval_hours: int, removed: set[int], null_hours: set[int], window: Any
) -> None:
    """8h and 4h symbols, some rows without funding_interval_hours: holes match the walk."""
    step = interval_hours * HOUR_MS
    base = JAN_2026_MS
    slots = [i for i in range(60) if i not in removed]
    times = [base + i * step for i in slots]
    hours = [None if i in null_hours else interval_hours for i in slots]
    start, end = as_window(base, step, window)
    inside = [
        (t, h)
        for t, h in zip(times, hours, strict=True)
        if (start is None or t >= start) and (end is None or t <= end)
    ]
    # At least one row must state the interval (the all-null case has its own test below).
    assume(not inside or any(h is not None for _, h in inside))
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(tmp)
        lake.upsert(FUNDING, funding_rows(times, hours), symbol=SYMBOL)
        coverage = series_coverage(lake, FUNDING, symbol=SYMBOL, start=start, end=end)
    expected = walk_gaps(times, step, start, end) if inside else []  # no rows: interval unknown
    assert found_gaps(coverage) == expected
    assert coverage.step_ms == (step if inside else None)


def test_funding_4h_symbol_without_interval_column(tmp_path: Path) -> None:
    """A 4h symbol whose rows all lack funding_interval_hours: the usual step is 4h, not 8h."""
    lake = Lake(tmp_path)
    slots = [0, 1, 2, 4, 5, 9]
    times = [JAN_2026_MS + s * 4 * HOUR_MS for s in slots]
    lake.upsert(FUNDING, funding_rows(times, [None] * len(times)), symbol="ETHUSDT")
    coverage = series_coverage(lake, FUNDING, symbol="ETHUSDT")
    assert coverage.step_ms == 4 * HOUR_MS
    assert found_gaps(coverage) == walk_gaps(times, 4 * HOUR_MS, None, None)
    assert coverage.missing == 1 + 3


# ---- aggregated trades: id continuity -----------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    removed=st.sets(st.integers(1, 198), max_size=80),
    window=st.none() | st.tuples(st.integers(0, 199), st.integers(0, 199)),
)
def test_agg_trade_gaps_are_missing_ids(removed: set[int], window: Any) -> None:
    """Missing aggregate ids (not times) are the gaps, with the trade times either side."""
    first_id = 3_000_000_000
    ids = [first_id + i for i in range(200) if i not in removed]
    time_of = {
        trade_id: JAN_2026_MS + (trade_id - first_id) * 7_919 for trade_id in ids
    }  # crosses days
    table = pa.table(
        {
            "agg_trade_id": ids,
            "price": [1.0] * len(ids),
            "quantity": [1.0] * len(ids),
            "first_trade_id": ids,
            "last_trade_id": ids,
            "transact_time": pa.array([time_of[i] for i in ids]).cast(
                AGG_TRADES.arrow_schema.field("transact_time").type
            ),
            "is_buyer_maker": [True] * len(ids),
        }
    )
    start = end = None
    if window is not None:
        low, high = sorted(window)
        start, end = JAN_2026_MS + low * 7_919, JAN_2026_MS + high * 7_919
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(tmp)
        lake.upsert(AGG_TRADES, table, symbol=SYMBOL)
        coverage = series_coverage(lake, AGG_TRADES, symbol=SYMBOL, start=start, end=end)
    inside = [
        i
        for i in ids
        if (start is None or time_of[i] >= start) and (end is None or time_of[i] <= end)
    ]
    assert [(g.first_missing, g.last_missing, g.missing) for g in coverage.gaps] == walk_id_gaps(
        inside
    )
    assert {g.kind for g in coverage.gaps} <= {"internal"}
    for gap in coverage.gaps:
        assert gap.after_time_ms == time_of[gap.first_missing - 1]
        assert gap.before_time_ms == time_of[gap.last_missing + 1]
    assert coverage.rows == len(inside)


# ---- the report ---------------------------------------------------------------------------------


def test_coverage_report_lists_every_series_as_json(tmp_path: Path) -> None:
    """The report has one entry per dataset, symbol and interval, with ISO times, JSON-ready."""
    lake = Lake(tmp_path / "lake")
    for interval in ("1m", "1h"):
        step = STEP_MS[interval]
        lake.upsert(
            CANDLES,
            candle_rows([JAN_2026_MS, JAN_2026_MS + 2 * step], step),
            symbol=SYMBOL,
            param=interval,
        )
    lake.upsert(FUNDING, funding_rows([JAN_2026_MS], [8]), symbol="ETHUSDT")
    settings = load_settings(env_file=None, data_dir=tmp_path)
    report = json.loads(json.dumps(coverage_report(settings).to_dict()))
    summary = [
        (s["dataset"], s["symbol"], s["param"], s["rows"], s["missing"]) for s in report["series"]
    ]
    assert summary == [
        ("candles", SYMBOL, "1h", 2, 1),
        ("candles", SYMBOL, "1m", 2, 1),
        ("funding", "ETHUSDT", None, 1, 0),
    ]
    first = report["series"][1]
    assert first["earliest"] == "2026-01-01T00:00:00.000Z"
    assert first["gaps"][0]["first_missing_iso"] == "2026-01-01T00:01:00.000Z"
    only = coverage_report(settings, symbols=["ETHUSDT"], datasets=["funding"]).to_dict()
    assert [s["symbol"] for s in only["series"]] == ["ETHUSDT"]
    with pytest.raises(UsageError, match="unknown dataset 'klines'"):
        coverage_report(settings, datasets=["klines"])

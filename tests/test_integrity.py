"""The integrity model against a slot-by-slot walk: gaps, known exchange gaps, duplicates,
staleness and the repair commands of ``assess_series``."""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from test_coverage import JAN_2026_MS, MINUTE_MS, SYMBOL, candle_rows, walk_gaps

from ingmon.config import Threshold
from ingmon.integrity import SeriesHealth, assess_series, freshness_verdict, subtract
from ingmon.lake import Lake
from ingmon.problems import RepairContext
from ingmon.schema import AGG_TRADES, EXCHANGE_GAPS, MARKET_SERIES
from ingmon.times import DAY_MS, iso_ms

CANDLES = MARKET_SERIES["candles"]
SLOTS = 240  # a 4-hour window of 1m candles


def exchange_gap_rows(gaps: list[tuple[int, int]], *, dataset: str, param: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "gap_id": f"{dataset}/{param}/{start}",
                "dataset": dataset,
                "interval": param,
                "start_time": start,
                "end_time": end,
                "detected_at": JAN_2026_MS * 1000,
            }
            for start, end in gaps
        ],
        schema=EXCHANGE_GAPS.arrow_schema,
    )


def runs(slots: list[int]) -> list[tuple[int, int]]:
    """Consecutive slot indexes as (first, last) runs."""
    out: list[tuple[int, int]] = []
    for slot in sorted(slots):
        if out and out[-1][1] == slot - 1:
            out[-1] = (out[-1][0], slot)
        else:
            out.append((slot, slot))
    return out


@settings(max_examples=40, deadline=None)
@given(
    missing=st.sets(st.integers(0, SLOTS - 1), max_size=60),
    maintenance=st.sets(st.integers(0, SLOTS - 1), max_size=40),
    head_ms=st.integers(0, 5 * MINUTE_MS),
    tail_ms=st.integers(0, 5 * MINUTE_MS),
)
def test_window_health_equals_a_slot_walk(
    missing: set[int], maintenance: set[int], head_ms: int, tail_ms: int
) -> None:
    """Every missing run of [start, end) is a gap, unless all of it is a known exchange gap."""
    stored = [JAN_2026_MS + i * MINUTE_MS for i in range(SLOTS) if i not in missing]
    exchange = [
        (JAN_2026_MS + a * MINUTE_MS, JAN_2026_MS + b * MINUTE_MS) for a, b in runs(maintenance)
    ]
    start = JAN_2026_MS - head_ms
    end = JAN_2026_MS + (SLOTS - 1) * MINUTE_MS + tail_ms + 1  # half-open: [start, end)
    with tempfile.TemporaryDirectory() as root:
        lake = Lake(Path(root))
        if stored:
            lake.upsert("candles", candle_rows(stored, MINUTE_MS), symbol=SYMBOL, param="1m")
        if exchange:
            lake.upsert(
                EXCHANGE_GAPS,
                exchange_gap_rows(exchange, dataset="candles", param="1m"),
                symbol=SYMBOL,
            )
        health = assess_series(
            lake,
            CANDLES,
            symbol=SYMBOL,
            param="1m",
            start_ms=start,
            end_ms=end,
            now_ms=end,
            expect="window",
        )
    walked = walk_gaps(stored, MINUTE_MS, start, end - 1)
    explained = [g for g in walked if not subtract([(g[1], g[2])], exchange)]
    unexplained = [g for g in walked if g not in explained]

    def as_tuples(gaps: tuple) -> list[tuple[str, int, int, int]]:
        return [(g.kind, g.first_missing, g.last_missing, g.missing) for g in gaps]

    assert as_tuples(health.gaps) == unexplained
    assert as_tuples(health.exchange_gaps) == explained
    assert health.rows == len(stored)
    assert [(p.first_missing, p.last_missing) for p in health.problems] == [
        (g[1], g[2]) for g in unexplained
    ]
    assert [p.kind for p in health.problems] == [f"{g[0]}_gap" for g in unexplained]


def test_live_health_judges_the_tail_as_freshness() -> None:
    """Live: a late tail is an age, not a gap: ok/warn/error by the thresholds, stale beyond."""
    stored = [JAN_2026_MS + i * MINUTE_MS for i in range(60)]
    last_close = stored[-1] + MINUTE_MS  # the last candle holds data up to its close
    thresholds = Threshold(warn_seconds=90, error_seconds=180)
    with tempfile.TemporaryDirectory() as root:
        lake = Lake(Path(root))
        lake.upsert("candles", candle_rows(stored, MINUTE_MS), symbol=SYMBOL, param="1m")
        verdicts = {}
        for age_seconds in (30, 120, 600):
            now = last_close + age_seconds * 1000
            health = assess_series(
                lake,
                CANDLES,
                symbol=SYMBOL,
                param="1m",
                start_ms=stored[0],
                end_ms=now,
                now_ms=now,
                expect="live",
                thresholds=thresholds,
                context=RepairContext(base_url="http://127.0.0.1:1"),
            )
            assert health.gaps == ()
            assert health.age_seconds == age_seconds
            verdicts[age_seconds] = (
                health.freshness,
                [(p.kind, p.severity) for p in health.problems],
            )
        stale = health.problems[0]
    assert verdicts == {
        30: ("ok", []),
        120: ("warn", [("stale", "warn")]),
        600: ("error", [("stale", "error")]),
    }
    argv = shlex.split(stale.repair or "")
    assert argv[argv.index("--start") + 1] == iso_ms(last_close)
    assert argv[argv.index("--base-url") + 1] == "http://127.0.0.1:1"


def test_freshness_verdict_boundaries() -> None:
    """The verdict changes strictly above each threshold (an age equal to warn is still ok)."""
    pair = Threshold(warn_seconds=10, error_seconds=20)
    assert [freshness_verdict(age, pair) for age in (0, 10, 10.1, 20, 20.1)] == [
        "ok",
        "ok",
        "warn",
        "warn",
        "error",
    ]


def trade_rows(ids: list[int], times_ms: list[int]) -> pa.Table:
    time_type = AGG_TRADES.arrow_schema.field("transact_time").type
    return pa.table(
        {
            "agg_trade_id": pa.array(ids, pa.int64()),
            "price": [100.0] * len(ids),
            "quantity": [1.0] * len(ids),
            "first_trade_id": pa.array(ids, pa.int64()),
            "last_trade_id": pa.array(ids, pa.int64()),
            "transact_time": pa.array(times_ms, pa.int64()).cast(time_type),
            "is_buyer_maker": [False] * len(ids),
        }
    )


def test_trades_id_gaps_and_duplicates(tmp_path: Path) -> None:
    """An id hole is an id_gap repaired over the times around it; a key stored twice (in two
    day partitions) is counted once as a duplicate."""
    ids = [*range(1, 11), *range(15, 21)]
    times = [JAN_2026_MS + i * 1000 for i in range(len(ids))]
    lake = Lake(tmp_path)
    lake.upsert(AGG_TRADES, trade_rows(ids, times), symbol=SYMBOL)
    lake.upsert(AGG_TRADES, trade_rows([3], [JAN_2026_MS - 86_400_000]), symbol=SYMBOL)
    health = assess_series(
        lake,
        "agg_trades",
        symbol=SYMBOL,
        param=None,
        start_ms=None,
        end_ms=times[-1] + 1,
        now_ms=times[-1],
        expect="live",
    )
    assert health.duplicates == 1
    id_gap = next(p for p in health.problems if p.kind == "id_gap")
    assert (id_gap.first_missing, id_gap.last_missing, id_gap.missing) == (11, 14, 4)
    hole_after, hole_before = times[ids.index(10)], times[ids.index(15)]
    assert (id_gap.start_ms, id_gap.end_ms) == (hole_after, hole_before)
    assert [p.kind for p in health.problems] == ["id_gap", "duplicates"]


# ---- trades: id gaps and duplicates against a walk over the stored (id, time) pairs -------------

TRADES = 90  # ids 1..90, one every 48 minutes: three days of trades from Jan 2
TRADE_STEP_MS = 3 * DAY_MS // TRADES


def original_time(agg_id: int) -> int:
    return JAN_2026_MS + DAY_MS + (agg_id - 1) * TRADE_STEP_MS


def walk_trades(
    pairs: list[tuple[int, int]],
) -> tuple[list[tuple[int, int, int, int, int]], int, tuple[int, int] | None]:
    """Id gaps as (first, last, count, time before, time after), the duplicate count and the
    time span of every row whose id is stored more than once, by visiting every stored row.
    Only meaningful when the ids around a hole are stored once (their time is then unique)."""
    times_of: dict[int, list[int]] = {}
    for agg_id, time_ms in pairs:
        times_of.setdefault(agg_id, []).append(time_ms)
    gaps = []
    previous: int | None = None
    for agg_id in sorted(times_of):
        if previous is not None and agg_id > previous + 1:
            [before] = times_of[previous]
            [after] = times_of[agg_id]
            gaps.append((previous + 1, agg_id - 1, agg_id - previous - 1, before, after))
        previous = agg_id
    duplicates = 0
    involved: list[int] = []
    for times in times_of.values():
        if len(times) > 1:
            duplicates += len(times) - 1
            involved += times
    span = (min(involved), max(involved)) if involved else None
    return gaps, duplicates, span


def store_trades(lake: Lake, pairs: list[tuple[int, int]]) -> None:
    """Upsert (id, time) rows; an id's copies go in separate upserts (one per round), so each
    lands in its own day partition as a second row with that id."""
    rounds: list[list[tuple[int, int]]] = []
    for agg_id, time_ms in pairs:
        free = next((r for r in rounds if all(i != agg_id for i, _ in r)), None)
        if free is None:
            free = []
            rounds.append(free)
        free.append((agg_id, time_ms))
    for batch in rounds:
        ids, times = zip(*batch, strict=True)
        lake.upsert(AGG_TRADES, trade_rows(list(ids), list(times)), symbol=SYMBOL)


def assess_trades(lake: Lake) -> SeriesHealth:
    """The health of the whole trade series, judged as a backfill window (no staleness)."""
    end = JAN_2026_MS + 5 * DAY_MS
    return assess_series(
        lake,
        "agg_trades",
        symbol=SYMBOL,
        param=None,
        start_ms=None,
        end_ms=end,
        now_ms=end,
        expect="window",
        context=RepairContext(base_url="http://127.0.0.1:1"),
    )


def command_window(command: str | None) -> tuple[str, str, bool]:
    argv = shlex.split(command or "")
    return argv[argv.index("--start") + 1], argv[argv.index("--end") + 1], "--full-refresh" in argv


@settings(max_examples=40, deadline=None)
@given(
    missing=st.sets(st.integers(1, TRADES), max_size=30),
    # (id, day 0..4 after Jan 1, ms into that day): a copy of a stored trade under another day.
    copies=st.lists(
        st.tuples(st.integers(1, TRADES), st.integers(0, 4), st.integers(0, DAY_MS - 1)),
        max_size=12,
    ),
)
def test_trade_health_equals_a_walk_over_stored_rows(
    missing: set[int], copies: list[tuple[int, int, int]]
) -> None:
    """Id gaps (ids, count, the times around them), the duplicate count and the duplicates
    repair range (a full refresh spanning exactly the times of every row of a repeated id)
    equal a walk over the stored (id, time) pairs, with copies across day partitions."""
    stored_ids = [i for i in range(1, TRADES + 1) if i not in missing]
    pairs = [(i, original_time(i)) for i in stored_ids]
    # The ids next to a hole keep one row: which copy's time bounds a hole is the subject of
    # test_a_duplicated_id_next_to_a_hole_keeps_the_hole_inside_its_repair.
    next_to_hole = {i for i in stored_ids if i - 1 in missing or i + 1 in missing}
    copied_days: set[tuple[int, int]] = set()
    for agg_id, day, offset_ms in copies:
        day_start = JAN_2026_MS + day * DAY_MS
        own_day = (agg_id, original_time(agg_id) // DAY_MS * DAY_MS)
        if agg_id in missing or agg_id in next_to_hole or own_day == (agg_id, day_start):
            continue
        if (agg_id, day) in copied_days:  # a second copy in one partition would be merged
            continue
        copied_days.add((agg_id, day))
        pairs.append((agg_id, day_start + offset_ms))
    with tempfile.TemporaryDirectory() as root:
        lake = Lake(Path(root))
        if pairs:
            store_trades(lake, pairs)
        health = assess_trades(lake)

    gaps, duplicates, span = walk_trades(pairs)
    assert health.rows == len(pairs)
    assert [
        (g.first_missing, g.last_missing, g.missing, g.after_time_ms, g.before_time_ms)
        for g in health.gaps
    ] == gaps
    assert {g.kind for g in health.gaps} <= {"internal"}
    assert health.duplicates == duplicates
    id_gaps = [p for p in health.problems if p.kind == "id_gap"]
    assert [(p.first_missing, p.last_missing, p.start_ms, p.end_ms) for p in id_gaps] == [
        (first, last, before, after) for first, last, _, before, after in gaps
    ]
    assert [command_window(p.repair) for p in id_gaps] == [
        (iso_ms(before), iso_ms(after + 1), False) for *_, before, after in gaps
    ]
    found = [p for p in health.problems if p.kind == "duplicates"]
    assert [p.kind for p in health.problems] == ["id_gap"] * len(gaps) + ["duplicates"] * len(found)
    if span is None:
        assert found == []
    else:
        [problem] = found
        assert problem.details["count"] == duplicates
        assert (problem.start_ms, problem.end_ms) == span
        assert command_window(problem.repair) == (iso_ms(span[0]), iso_ms(span[1] + 1), True)


def test_a_duplicated_id_next_to_a_hole_keeps_the_hole_inside_its_repair(tmp_path: Path) -> None:
    """Ids 11..14 are missing and ids 10 and 15 are stored again under other days: the id
    gap's repair range still spans the hole's true place, from id 10's to id 15's time."""
    ids = [*range(1, 11), *range(15, 21)]
    lake = Lake(tmp_path)
    store_trades(
        lake,
        [(i, original_time(i)) for i in ids]
        + [(10, JAN_2026_MS + 3 * DAY_MS + 5), (15, JAN_2026_MS + 5)],
    )
    [id_gap] = [p for p in assess_trades(lake).problems if p.kind == "id_gap"]
    assert (id_gap.first_missing, id_gap.last_missing) == (11, 14)
    assert id_gap.start_ms is not None and id_gap.end_ms is not None
    assert id_gap.start_ms <= original_time(10) < original_time(15) <= id_gap.end_ms


def test_a_damaged_exchange_gaps_partition_is_reported_and_every_gap_counts(
    tmp_path: Path,
) -> None:
    """A 5-minute hole the exchange itself had is no gap; once the symbol's exchange_gaps
    partition is damaged the series is still judged (no raise): the hole counts as a gap, and
    the damaged file is named in corrupt_files and in a corrupt_partition problem."""
    stored = [JAN_2026_MS + i * MINUTE_MS for i in range(60) if not 20 <= i < 25]
    hole = (JAN_2026_MS + 20 * MINUTE_MS, JAN_2026_MS + 24 * MINUTE_MS)
    lake = Lake(tmp_path)
    lake.upsert("candles", candle_rows(stored, MINUTE_MS), symbol=SYMBOL, param="1m")
    lake.upsert(
        EXCHANGE_GAPS, exchange_gap_rows([hole], dataset="candles", param="1m"), symbol=SYMBOL
    )
    end = JAN_2026_MS + 60 * MINUTE_MS

    def judge() -> SeriesHealth:
        return assess_series(
            lake,
            CANDLES,
            symbol=SYMBOL,
            param="1m",
            start_ms=JAN_2026_MS,
            end_ms=end,
            now_ms=end,
            expect="live",
            thresholds=Threshold(warn_seconds=90, error_seconds=180),
        )

    sound = judge()
    assert (len(sound.gaps), len(sound.exchange_gaps), sound.corrupt_files) == (0, 1, ())

    (partition,) = [p for p in (tmp_path / "exchange_gaps").rglob("year=*") if p.is_dir()]
    version = partition / (partition / "data.parquet").readlink()
    version.write_bytes(version.read_bytes()[:40])  # cut short: no footer
    damaged = judge()
    assert [(g.first_missing, g.last_missing, g.missing) for g in damaged.gaps] == [(*hole, 5)]
    assert damaged.exchange_gaps == ()
    assert damaged.corrupt_files == (str(version),)
    assert (damaged.rows, damaged.freshness) == (55, "ok")
    kinds = [(p.kind, p.severity, p.details.get("file")) for p in damaged.problems]
    assert kinds == [("corrupt_partition", "error", str(version)), ("internal_gap", "error", None)]

"""The lake-backed answers of ``/api/signals`` and ``/api/backtests``: small reads, cached briefly.

Signals and saved backtest runs are read from the lake at most once every 5 s per filter (polars
only when asked); each answer is plain JSON-ready data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ingmon.api.cache import TTLCache
from ingmon.api.documents import finite
from ingmon.config import Settings
from ingmon.lake import Lake
from ingmon.schema import BACKTEST_RUNS, BACKTEST_TRADES
from ingmon.times import iso_ms, to_ms

if TYPE_CHECKING:
    import polars as pl

__all__ = ["AUDIT_JSON", "backtest_document", "backtests_page", "signals_page"]

_LAKE_TTL_SECONDS = 5.0
_LAKE = TTLCache(_LAKE_TTL_SECONDS)


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _signals_frame(settings: Settings, timeframe: str) -> pl.DataFrame:
    from ingmon.signals.store import read_signals  # noqa: PLC0415 - polars only when asked

    return _LAKE.get(
        ("signals", settings.lake_dir, timeframe),
        lambda: read_signals(Lake(settings.lake_dir), timeframe=timeframe),
    )


AUDIT_JSON = ("components", "inputs", "thresholds", "watermarks", "notes")
_AUDIT_FIELDS = (
    "score_id",
    "rules_version",
    "config_hash",
    "code_version",
    "score",
    "trend_points",
    "flow_points",
    "session_points",
    "confidence",
    "data_quality",
)


def _audit_records(
    settings: Settings, *, timeframe: str, rows: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The audit record of each row's score (``score_id``), read for the page's bars only."""
    import polars as pl  # noqa: PLC0415

    from ingmon.signals.store import read_scores  # noqa: PLC0415

    wanted = {row["score_id"] for row in rows if row.get("score_id")}
    if not wanted:
        return {}
    frame = read_scores(
        Lake(settings.lake_dir),
        symbols=sorted({row["symbol"] for row in rows}),
        timeframe=timeframe,
        start_ms=min(row["bar_open_ms"] for row in rows),
        end_ms=max(row["bar_open_ms"] for row in rows) + 1,
    )
    frame = frame.filter(pl.col("score_id").is_in(sorted(wanted))).with_columns(
        pl.col("scored_at").dt.epoch("ms").alias("scored_at_ms")
    )
    records = {}
    for row in frame.to_dicts():
        record = {name: row[name] for name in _AUDIT_FIELDS}
        record.update({name: _json_or_none(row[name]) for name in AUDIT_JSON})
        record["scored_at"] = iso_ms(row["scored_at_ms"])
        records[row["score_id"]] = record
    return records


def signals_page(
    settings: Settings,
    *,
    timeframe: str = "15m",
    symbols: Sequence[str] | None = None,
    setups: Sequence[str] | None = None,
    min_score: int | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int = 100,
    offset: int = 0,
    audit: bool = False,
) -> tuple[int, list[dict[str, Any]]]:
    """The total of matching signals and one page of them, newest bar first."""
    import polars as pl  # noqa: PLC0415

    frame = _signals_frame(settings, timeframe)
    opened = pl.col("bar_open_time").dt.epoch("ms")
    if symbols:
        frame = frame.filter(pl.col("symbol").is_in(list(symbols)))
    if setups:
        frame = frame.filter(pl.col("setup").is_in(list(setups)))
    if min_score is not None:
        frame = frame.filter(pl.col("score") >= min_score)
    if since_ms is not None:
        frame = frame.filter(opened >= since_ms)
    if until_ms is not None:
        frame = frame.filter(opened < until_ms)
    total = frame.height
    page = (
        frame.sort(
            ["bar_open_time", "symbol", "setup", "signal_id"],
            descending=[True, False, False, False],
        )
        .slice(offset, limit)
        .with_columns(
            opened.alias("bar_open_ms"),
            pl.col("bar_close_time").dt.epoch("ms").alias("bar_close_ms"),
        )
    )
    rows = page.to_dicts()
    records = _audit_records(settings, timeframe=timeframe, rows=rows) if audit else {}
    items = []
    for row in rows:
        item = {
            "signal_id": row["signal_id"],
            "symbol": row["symbol"],
            "timeframe": row.get("timeframe", timeframe),
            "setup": row["setup"],
            "direction": row["direction"],
            "bar_open_time": iso_ms(row["bar_open_ms"]),
            "bar_close_time": iso_ms(row["bar_close_ms"]),
            "close": finite(row["close"]),
            "stop_price": finite(row["stop_price"]),
            "target_price": finite(row["target_price"]),
            "level_kind": row["level_kind"],
            "level_price": finite(row["level_price"]),
            "levels": _json_or_none(row["levels"]),
            "reasons": _json_or_none(row["reasons"]),
            "detector_version": row["detector_version"],
            "score": row["score"],
            "confidence": row["confidence"],
            "data_quality": row["data_quality"],
            "rules_version": row["rules_version"],
            "score_id": row["score_id"],
        }
        if audit:
            item["audit"] = records.get(row["score_id"]) if row["score_id"] else None
        items.append(item)
    return total, items


_RUN_COLUMNS = (
    "run_id",
    "created_at",
    "source",
    "timeframe",
    "data_start",
    "data_end",
    "data_hash",
    "config_hash",
    "code_version",
    "trades",
    "net_return",
    "max_drawdown",
)


def _time_iso(value: Any) -> str | None:
    return None if value is None else iso_ms(to_ms(value))


def _run_item(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "symbol": row["symbol"],
        "created_at": _time_iso(row["created_at"]),
        "source": row["source"],
        "timeframe": row["timeframe"],
        "data_start": _time_iso(row["data_start"]),
        "data_end": _time_iso(row["data_end"]),
        "trades": row["trades"],
        "net_return": finite(row["net_return"]),
        "max_drawdown": finite(row["max_drawdown"]),
        "config_hash": row["config_hash"],
        "data_hash": row["data_hash"],
        "code_version": row["code_version"],
        "url": f"/api/backtests/{row['run_id']}",
    }


def _saved_runs(settings: Settings) -> list[dict[str, Any]]:
    """Every saved run's headline (no documents), newest first."""

    def load() -> list[dict[str, Any]]:
        table = Lake(settings.lake_dir).read(BACKTEST_RUNS, columns=_RUN_COLUMNS)
        rows = table.to_pylist()
        rows.sort(key=lambda row: row["run_id"])
        rows.sort(key=lambda row: to_ms(row["created_at"]), reverse=True)
        return [_run_item(row) for row in rows]

    return _LAKE.get(("backtest_runs", settings.lake_dir), load)


def backtests_page(
    settings: Settings, *, symbols: Sequence[str] | None = None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """The total of saved runs (of ``symbols``) and one page of them, newest first."""
    runs = [run for run in _saved_runs(settings) if not symbols or run["symbol"] in symbols]
    return len(runs), runs[offset : offset + limit]


def backtest_document(
    settings: Settings, run_id: str, *, trades: bool = False
) -> dict[str, Any] | None:
    """One saved run: its headline, config and export document (and its trades); None when
    no run has that id."""
    run = next((item for item in _saved_runs(settings) if item["run_id"] == run_id), None)
    if run is None:
        return None
    lake = Lake(settings.lake_dir)
    table = lake.read(BACKTEST_RUNS, symbols=run["symbol"], columns=("run_id", "config", "summary"))
    row = next((item for item in table.to_pylist() if item["run_id"] == run_id), None)
    if row is None:  # deleted since the listing was cached
        return None
    document: dict[str, Any] = {
        "run": run,
        "config": _json_or_none(row["config"]),
        "document": _json_or_none(row["summary"]),
    }
    if trades:
        rows = lake.read(BACKTEST_TRADES, symbols=run["symbol"]).to_pylist()
        document["trades"] = [
            {
                "trade_id": trade["trade_id"],
                "signal_id": trade["signal_id"],
                "setup": trade["setup"],
                "direction": trade["direction"],
                "score": trade["score"],
                "confidence": trade["confidence"],
                "entry_time": _time_iso(trade["entry_time"]),
                "entry_price": finite(trade["entry_price"]),
                "exit_time": _time_iso(trade["exit_time"]),
                "exit_price": finite(trade["exit_price"]),
                "exit_reason": trade["exit_reason"],
                "qty": finite(trade["qty"]),
                "net_return": finite(trade["net_return"]),
                "pnl": finite(trade["pnl"]),
            }
            for trade in sorted(rows, key=lambda t: (to_ms(t["entry_time"]), t["trade_id"]))
            if trade["run_id"] == run_id
        ]
    return document

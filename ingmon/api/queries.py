"""The lake-backed answers of ``/api/signals`` and ``/api/backtests``: small reads, cached briefly.

Signals are read at most once every 5 s per timeframe and filter (symbols, since, until: the
lake prunes its partitions by them), with only the columns a page shows — the score's audit
JSON is read for the page's own signals, and only with ``audit=true``. The saved runs'
headlines are read at most once every 5 s; one run's config, export document and trades only
when it is asked for, cached per run. Polars only when asked; each answer is plain JSON-ready
data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ingmon.api.cache import TTLCache
from ingmon.api.documents import finite
from ingmon.config import Settings
from ingmon.lake import Lake
from ingmon.schema import BACKTEST_RUNS, BACKTEST_TRADES, SCORES, SIGNALS
from ingmon.times import iso_ms, to_ms

if TYPE_CHECKING:
    import polars as pl

__all__ = ["AUDIT_JSON", "backtest_document", "backtests_page", "signals_page"]

_LAKE_TTL_SECONDS = 5.0
_LAKE = TTLCache(_LAKE_TTL_SECONDS)
# One saved run's document and trades: a run does not change once saved, but it can be
# deleted, so kept for a minute.
_RUNS = TTLCache(60.0, max_entries=64)


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


# What a page shows of a signal, and of its score (the audit JSON apart).
_SIGNAL_COLUMNS = (
    "signal_id",
    "bar_open_time",
    "bar_close_time",
    "setup",
    "direction",
    "close",
    "stop_price",
    "target_price",
    "level_kind",
    "level_price",
    "levels",
    "reasons",
    "detector_version",
)
_SCORE_COLUMNS = (
    "signal_id",
    "score_id",
    "rules_version",
    "score",
    "confidence",
    "data_quality",
    "scored_at",
)


def _signals_frame(
    settings: Settings,
    *,
    timeframe: str,
    symbols: Sequence[str] | None,
    since_ms: int | None,
    until_ms: int | None,
) -> pl.DataFrame:
    """The signals of the timeframe (of ``symbols``, with bars opened in ``[since, until)``)
    with their score under the current rules version (the latest-scored configuration), as
    ``ingmon.signals.store.read_signals`` joins them — without the audit JSON."""
    import polars as pl  # noqa: PLC0415 - polars only when asked

    from ingmon.signals.rules import RULES_VERSION  # noqa: PLC0415

    def load() -> pl.DataFrame:
        lake = Lake(settings.lake_dir)
        where: dict[str, Any] = {
            "symbols": None if not symbols else sorted(symbols),
            "param": timeframe,
            "start": since_ms,
            "end": None if until_ms is None else until_ms - 1,
        }
        signals = pl.from_arrow(lake.read(SIGNALS, columns=_SIGNAL_COLUMNS, **where))
        scores = pl.from_arrow(lake.read(SCORES, columns=_SCORE_COLUMNS, **where))
        assert isinstance(signals, pl.DataFrame)
        assert isinstance(scores, pl.DataFrame)
        scored = (
            scores.filter(pl.col("rules_version") == RULES_VERSION)
            .sort("scored_at")
            .drop("symbol", "timeframe", "scored_at")
            .unique(subset="signal_id", keep="last", maintain_order=True)
        )
        return signals.join(scored, on="signal_id", how="left")

    key = ("signals", settings.lake_dir, timeframe, symbols, since_ms, until_ms)
    return _LAKE.get(key, load)


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
    """The audit record of each row's score (``score_id``): the score rows of the page's
    symbols and bars only, kept for the page's own scores."""
    import polars as pl  # noqa: PLC0415

    scored = [row for row in rows if row.get("score_id")]
    if not scored:
        return {}
    table = Lake(settings.lake_dir).read(
        SCORES,
        symbols=sorted({row["symbol"] for row in scored}),
        param=timeframe,
        start=min(row["bar_open_ms"] for row in scored),
        end=max(row["bar_open_ms"] for row in scored),
        columns=(*_AUDIT_FIELDS, *AUDIT_JSON, "scored_at"),
    )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    wanted = sorted({row["score_id"] for row in scored})
    frame = frame.filter(pl.col("score_id").is_in(wanted)).with_columns(
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

    frame = _signals_frame(
        settings,
        timeframe=timeframe,
        symbols=None if not symbols else tuple(sorted(symbols)),
        since_ms=since_ms,
        until_ms=until_ms,
    )
    opened = pl.col("bar_open_time").dt.epoch("ms")
    if setups:
        frame = frame.filter(pl.col("setup").is_in(list(setups)))
    if min_score is not None:
        frame = frame.filter(pl.col("score") >= min_score)
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
    no run has that id. Only that run's rows are read: the runs partition of its creation
    time, the trades of its symbol over its data span (cached per run)."""
    run = next((item for item in _saved_runs(settings) if item["run_id"] == run_id), None)
    if run is None:
        return None
    details = _RUNS.get(("run", settings.lake_dir, run_id), lambda: _run_details(settings, run))
    if details is None:  # deleted since the listing was cached
        return None
    document: dict[str, Any] = {"run": run, **details}
    if trades:
        document["trades"] = _RUNS.get(
            ("trades", settings.lake_dir, run_id), lambda: _run_trades(settings, run)
        )
    return document


def _run_details(settings: Settings, run: Mapping[str, Any]) -> dict[str, Any] | None:
    import pyarrow.compute as pc  # noqa: PLC0415

    created = run["created_at"]
    table = Lake(settings.lake_dir).read(
        BACKTEST_RUNS,
        symbols=run["symbol"],
        start=created,
        end=created,
        columns=("run_id", "config", "summary"),
    )
    table = table.filter(pc.equal(table["run_id"], run["run_id"]))
    if table.num_rows == 0:
        return None
    row = table.slice(0, 1).to_pylist()[0]
    return {"config": _json_or_none(row["config"]), "document": _json_or_none(row["summary"])}


def _run_trades(settings: Settings, run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's trades, by entry: those of its symbol entered over its data span."""
    import pyarrow.compute as pc  # noqa: PLC0415

    table = Lake(settings.lake_dir).read(
        BACKTEST_TRADES, symbols=run["symbol"], start=run["data_start"], end=run["data_end"]
    )
    rows = table.filter(pc.equal(table["run_id"], run["run_id"])).to_pylist()
    return [
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
    ]

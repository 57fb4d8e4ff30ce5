"""The backtest's inputs at the edge: candle, signal and funding files (CSV or Parquet), and the
lake's 1m candles, funding and scored signals.

Every problem with a file is one :class:`UsageError` naming the file, the column and the row
(1-based, not counting a CSV header), so the CLI can say it in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ingmon.backtest.engine import Bars, timeframe_atr
from ingmon.errors import UsageError
from ingmon.lake import Lake
from ingmon.schema import CANDLES, FUNDING, SCORES, SIGNALS, interval_ms
from ingmon.times import MINUTE_MS, iso_ms

__all__ = [
    "CANDLE_TIME_COLUMNS",
    "Inputs",
    "read_candles",
    "read_funding",
    "read_lake_inputs",
    "read_signals",
]

CANDLE_TIME_COLUMNS: tuple[str, ...] = ("open_time", "time", "timestamp", "date")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
_DIRECTIONS = {"long": 1, "short": -1, "1": 1, "-1": -1, "1.0": 1, "-1.0": -1}
_SIGNAL_OPTIONAL = {
    "setup": ("setup",),
    "score": ("score",),
    "confidence": ("confidence",),
    "signal_id": ("signal_id", "id"),
    "stop_price": ("stop_price", "stop"),
    "target_price": ("target_price", "target", "take_profit"),
    "atr": ("atr",),
}
# Epoch-ms values below this (1973-03-03) are taken for seconds: refused, not guessed.
_MIN_EPOCH_MS = 100_000_000_000


@dataclass(frozen=True)
class Inputs:
    """What a backtest runs on: bars (open_time ms + OHLCV), signals, funding, and where
    they came from."""

    bars: pd.DataFrame
    signals: pd.DataFrame
    funding: pd.DataFrame | None
    source: str
    timeframe_ms: int


def _read_table(path: Path, what: str) -> pd.DataFrame:
    if not path.exists():
        raise UsageError(f"{what} file {str(path)!r} does not exist", field=what)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise UsageError(
                f"{what} file {str(path)!r}: unknown format {suffix or '(none)'}; "
                "expected .csv or .parquet",
                field=what,
            )
    except UsageError:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(
            f"{what} file {str(path)!r}: cannot read: {first_line}", field=what
        ) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if frame.empty:
        raise UsageError(f"{what} file {str(path)!r} has no rows", field=what)
    return frame


def _find(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((name for name in names if name in frame.columns), None)


def _times_ms(values: pd.Series, *, where: str, what: str, column: str) -> np.ndarray:
    """Epoch ms from integer ms, ISO-8601 strings or timestamps."""
    if pd.api.types.is_datetime64_any_dtype(values):
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0]) + 1
            raise UsageError(f"{where}: empty time in column {column} (row {row})", field=what)
        stamps = values.dt.tz_localize("UTC") if values.dt.tz is None else values
        return np.asarray(
            stamps.dt.tz_convert("UTC").astype("datetime64[ms, UTC]").astype(np.int64),
            dtype=np.int64,
        )
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        ms = numeric.to_numpy(dtype=np.float64)
        if not np.all(ms == np.floor(ms)):
            raise UsageError(f"{where}: column {column} has fractional epoch ms", field=what)
        if ms.min() < _MIN_EPOCH_MS:
            raise UsageError(
                f"{where}: column {column} holds {int(ms.min())}, which is not epoch "
                "milliseconds (seconds?)",
                field=what,
            )
        return ms.astype(np.int64)
    parsed = pd.to_datetime(values.astype(str), utc=True, errors="coerce", format="ISO8601")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise UsageError(
            f"{where}: unparsable time {values.iloc[row]!r} in column {column} (row {row + 1}); "
            "expected epoch ms or ISO-8601",
            field=what,
        )
    return parsed.astype("datetime64[ms, UTC]").astype(np.int64).to_numpy()


def _check_increasing(times: np.ndarray, *, where: str, what: str) -> None:
    steps = np.diff(times)
    if (steps > 0).all():
        return
    row = int(np.flatnonzero(steps <= 0)[0])
    if steps[row] == 0:
        raise UsageError(
            f"{where}: duplicate time {iso_ms(int(times[row]))} at rows {row + 1} and {row + 2}",
            field=what,
        )
    raise UsageError(
        f"{where}: times are not sorted: row {row + 2} ({iso_ms(int(times[row + 1]))}) comes "
        f"after row {row + 1} ({iso_ms(int(times[row]))})",
        field=what,
    )


def read_candles(path: Path) -> pd.DataFrame:
    """OHLCV candles from a CSV/Parquet file: a time column (``open_time``, ``time``,
    ``timestamp`` or ``date``; epoch ms or ISO-8601) and open/high/low/close/volume, any case.
    Times must be strictly increasing; prices finite and positive, high >= low."""
    where = f"candles file {str(path)!r}"
    frame = _read_table(path, "candles")
    time_column = _find(frame, CANDLE_TIME_COLUMNS)
    missing = [c for c in (*PRICE_COLUMNS, "volume") if c not in frame.columns]
    if time_column is None:
        missing.insert(0, "open_time|time|timestamp|date")
    if missing or time_column is None:
        raise UsageError(f"{where}: missing column(s) {', '.join(missing)}", field="candles")
    times = _times_ms(frame[time_column], where=where, what="candles", column=time_column)
    _check_increasing(times, where=where, what="candles")
    out = pd.DataFrame({"open_time": times})
    for column in (*PRICE_COLUMNS, "volume"):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values < 0 if column == "volume" else values <= 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise UsageError(
                f"{where}: column {column} has an empty, negative or non-numeric value "
                f"{frame[column].iloc[row]!r} (row {row + 1})",
                field="candles",
            )
        out[column] = values
    inverted = np.flatnonzero(out["high"].to_numpy() < out["low"].to_numpy())
    if inverted.size:
        raise UsageError(f"{where}: high below low (row {int(inverted[0]) + 1})", field="candles")
    return out


def read_signals(path: Path, *, candles: pd.DataFrame, timeframe_ms: int) -> pd.DataFrame:
    """Signals from a CSV/Parquet file: ``time`` (the signal bar's open; epoch ms or ISO) and
    ``direction`` (long/short or 1/-1), optionally setup, score, confidence, signal_id,
    stop/stop_price, target/target_price, atr. Sorted by time; no (time, direction, setup)
    twice; every signal bar inside the candles. A signal is known at its bar's close,
    ``time + timeframe_ms``."""
    where = f"signals file {str(path)!r}"
    frame = _read_table(path, "signals")
    missing = [c for c in ("time", "direction") if c not in frame.columns]
    if missing:
        raise UsageError(f"{where}: missing column(s) {', '.join(missing)}", field="signals")
    times = _times_ms(frame["time"], where=where, what="signals", column="time")
    steps = np.diff(times)
    if (steps < 0).any():
        row = int(np.flatnonzero(steps < 0)[0])
        raise UsageError(
            f"{where}: times are not sorted: row {row + 2} ({iso_ms(int(times[row + 1]))}) "
            f"comes after row {row + 1} ({iso_ms(int(times[row]))})",
            field="signals",
        )
    words = frame["direction"].astype(str).str.strip().str.lower()
    unknown = ~words.isin(list(_DIRECTIONS))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise UsageError(
            f"{where}: direction {frame['direction'].iloc[row]!r} (row {row + 1}); expected "
            "long, short, 1 or -1",
            field="signals",
        )
    out = pd.DataFrame({"time": times, "direction": words.map(_DIRECTIONS).astype(np.int8)})
    for name, aliases in _SIGNAL_OPTIONAL.items():
        column = _find(frame, aliases)
        if column is None:
            continue
        if name in ("stop_price", "target_price", "atr", "score"):
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = values.isna() & frame[column].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise UsageError(
                    f"{where}: column {column} has a non-numeric value "
                    f"{frame[column].iloc[row]!r} (row {row + 1})",
                    field="signals",
                )
            out[name] = values.to_numpy(dtype=np.float64)
        else:
            out[name] = frame[column].astype(object).where(frame[column].notna(), None)
    key = out[["time", "direction"]].assign(setup=out.get("setup"))
    twice = key.duplicated()
    if twice.any():
        row = int(np.flatnonzero(twice.to_numpy())[0])
        raise UsageError(
            f"{where}: the signal at {iso_ms(int(times[row]))} (row {row + 1}) is there twice",
            field="signals",
        )
    first, last = int(candles["open_time"].iloc[0]), int(candles["open_time"].iloc[-1])
    outside = (times < first) | (times > last)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise UsageError(
            f"{where}: {int(outside.sum())} signal(s) outside the candles "
            f"({iso_ms(first)} .. {iso_ms(last)}), the first at {iso_ms(int(times[row]))} "
            f"(row {row + 1})",
            field="signals",
        )
    out["known_ms"] = out["time"] + timeframe_ms
    return out


def read_funding(path: Path) -> pd.DataFrame:
    """Funding settlements from a file: ``funding_time`` (or ``time``), ``funding_rate`` (or
    ``rate``), optional ``mark_price``; strictly increasing times."""
    where = f"funding file {str(path)!r}"
    frame = _read_table(path, "funding")
    time_column = _find(frame, ("funding_time", "time"))
    rate_column = _find(frame, ("funding_rate", "rate"))
    if time_column is None or rate_column is None:
        missing = [
            name
            for name, found in (("funding_time", time_column), ("funding_rate", rate_column))
            if found is None
        ]
        raise UsageError(f"{where}: missing column(s) {', '.join(missing)}", field="funding")
    times = _times_ms(frame[time_column], where=where, what="funding", column=time_column)
    _check_increasing(times, where=where, what="funding")
    rate = pd.to_numeric(frame[rate_column], errors="coerce")
    if rate.isna().any():
        row = int(np.flatnonzero(rate.isna().to_numpy())[0])
        raise UsageError(f"{where}: non-numeric funding rate (row {row + 1})", field="funding")
    mark = (
        pd.to_numeric(frame["mark_price"], errors="coerce")
        if "mark_price" in frame.columns
        else pd.Series(np.nan, index=frame.index)
    )
    return pd.DataFrame(
        {"funding_time": times, "funding_rate": rate.to_numpy(), "mark_price": mark.to_numpy()}
    )


# ---- the lake -------------------------------------------------------------------------------


def _ms_column(table: Any, name: str) -> np.ndarray:
    return np.asarray(table[name].cast("int64").to_numpy(zero_copy_only=False), dtype=np.int64)


def read_lake_inputs(
    lake: Lake,
    *,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    setups: Sequence[str] = (),
    min_score: int | None = None,
    confidences: Sequence[str] = (),
    directions: Sequence[str] = (),
    atr_bars: int = 14,
) -> Inputs:
    """1m candles, funding and the signals of ``timeframe`` in ``[start_ms, end_ms)``, each
    signal with the score of its latest scoring (by ``scored_at``) and filtered by setup,
    minimum score, confidence and direction. A signal is known at ``bar_close_time + 1 ms``.
    Each signal carries ``atr``: the mean true range of the ``atr_bars`` timeframe bars
    (built from the 1m candles, read from that many bars before ``start_ms``) ending with its
    bar, for ATR-multiple stops and targets on the signal timeframe.

    A filter on score or confidence drops the signals that have no score yet."""
    last_ms = end_ms - 1  # Lake.read is inclusive of both ends
    timeframe_ms = interval_ms(timeframe)
    candles = lake.read(
        CANDLES,
        symbols=symbol,
        param="1m",
        start=start_ms - atr_bars * timeframe_ms,
        end=last_ms,
        columns=["open_time", "open", "high", "low", "close", "volume"],
    )
    if candles.num_rows == 0:
        raise UsageError(
            f"symbol {symbol}: no 1m candles in the lake for [{iso_ms(start_ms)}, "
            f"{iso_ms(end_ms)}) (backfill them first: ingmon backfill --symbol {symbol})",
            field="symbols",
        )
    bars = pd.DataFrame(
        {
            "open_time": _ms_column(candles, "open_time"),
            **{c: candles[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
        }
    )
    funding_table = lake.read(FUNDING, symbols=symbol, start=start_ms, end=last_ms)
    funding = pd.DataFrame(
        {
            "funding_time": _ms_column(funding_table, "funding_time"),
            "funding_rate": funding_table["funding_rate"].to_numpy(),
            "mark_price": funding_table["mark_price"].to_numpy(zero_copy_only=False),
        }
    )
    signal_table = lake.read(SIGNALS, symbols=symbol, param=timeframe, start=start_ms, end=last_ms)
    signals = signal_table.to_pandas()
    for column in ("bar_open_time", "bar_close_time"):
        signals[column] = _ms_column(signal_table, column)
    score_table = lake.read(
        SCORES,
        symbols=symbol,
        param=timeframe,
        start=start_ms,
        end=last_ms,
        columns=["signal_id", "score", "confidence", "rules_version", "scored_at"],
    )
    scores = score_table.to_pandas()
    if len(scores):
        scores = scores.sort_values("scored_at").drop_duplicates("signal_id", keep="last")
    signals = signals.merge(
        scores[["signal_id", "score", "confidence", "rules_version"]], on="signal_id", how="left"
    )
    keep = np.ones(len(signals), dtype=bool)
    if setups:
        keep &= signals["setup"].isin(list(setups)).to_numpy()
    if directions:
        keep &= signals["direction"].isin(list(directions)).to_numpy()
    if min_score is not None:
        keep &= (signals["score"].fillna(-1) >= min_score).to_numpy()
    if confidences:
        keep &= signals["confidence"].isin(list(confidences)).to_numpy()
    signals = signals[keep].sort_values(["bar_close_time", "signal_id"], kind="stable")
    frame = pd.DataFrame(
        {
            "time": signals["bar_open_time"].to_numpy(dtype=np.int64),
            "direction": np.where(signals["direction"] == "long", 1, -1).astype(np.int8),
            "known_ms": signals["bar_close_time"].to_numpy(dtype=np.int64) + 1,
            "signal_id": signals["signal_id"].to_numpy(dtype=object),
            "setup": signals["setup"].to_numpy(dtype=object),
            "score": signals["score"].to_numpy(dtype=np.float64, na_value=np.nan),
            "confidence": signals["confidence"]
            .astype(object)
            .where(signals["confidence"].notna(), None)
            .to_numpy(),
            "stop_price": signals["stop_price"].to_numpy(dtype=np.float64, na_value=np.nan),
            "target_price": signals["target_price"].to_numpy(dtype=np.float64, na_value=np.nan),
        }
    )
    coarse_open, coarse_atr = timeframe_atr(
        Bars.from_frame(bars, bar_ms=MINUTE_MS), timeframe_ms, atr_bars
    )
    at = np.searchsorted(coarse_open, frame["time"].to_numpy())
    found = (at < len(coarse_open)) & (
        coarse_open[np.minimum(at, len(coarse_open) - 1)] == frame["time"].to_numpy()
    )
    frame["atr"] = np.where(found, coarse_atr[np.minimum(at, len(coarse_open) - 1)], np.nan)
    bars = bars[bars["open_time"] >= start_ms].reset_index(drop=True)  # the warm-up goes
    if bars.empty:
        raise UsageError(
            f"symbol {symbol}: no 1m candles in the lake for [{iso_ms(start_ms)}, "
            f"{iso_ms(end_ms)})",
            field="symbols",
        )
    return Inputs(bars, frame.reset_index(drop=True), funding, "lake", timeframe_ms)

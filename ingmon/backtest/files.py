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

from ingmon.errors import UsageError
from ingmon.lake import Lake
from ingmon.schema import CANDLES, FUNDING, interval_ms
from ingmon.signals.features import Bars as SignalBars
from ingmon.signals.features import atr as wilder_atr
from ingmon.signals.rules import RULES_VERSION
from ingmon.signals.store import read_signals as read_scored_signals
from ingmon.times import MINUTE_MS, iso_ms

__all__ = [
    "ATR_WARMUP_FACTOR",
    "CANDLE_TIME_COLUMNS",
    "CONFIDENCES",
    "Inputs",
    "read_candles",
    "read_funding",
    "read_lake_inputs",
    "read_signals",
    "signal_timeframe_atr",
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
CONFIDENCES: tuple[str, ...] = ("high", "medium", "low")
# Lake mode reads this many × atr_bars signal-timeframe bars before the data for the Wilder ATR:
# the seed's weight left after them, (1 − 1/14)^266 < 1e-8, is below any price tick.
ATR_WARMUP_FACTOR = 20


@dataclass(frozen=True)
class Inputs:
    """What a backtest runs on: bars (open_time ms + OHLCV), signals, funding, and where
    they came from."""

    bars: pd.DataFrame
    signals: pd.DataFrame
    funding: pd.DataFrame | None
    source: str
    timeframe_ms: int
    rules_version: str | None = None


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


def _show(value: Any) -> str:
    """A cell as the user wrote it: Python's repr of a plain value, never numpy's."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _first(mask: Any) -> int:
    """0-based position of the first True of a boolean array or Series."""
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def _find(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((name for name in names if name in frame.columns), None)


def _times_ms(values: pd.Series, *, where: str, what: str, column: str) -> np.ndarray:
    """Epoch ms from integer ms, ISO-8601 strings or timestamps. The first row decides which:
    a number among ISO strings (or text among numbers) is named by its row."""
    empty = values.isna().to_numpy()
    if empty.any():
        row = _first(empty)
        raise UsageError(f"{where}: empty time in column {column} (row {row + 1})", field=what)
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values.dt.tz_localize("UTC") if values.dt.tz is None else values
        return np.asarray(
            stamps.dt.tz_convert("UTC").astype("datetime64[ms, UTC]").astype(np.int64),
            dtype=np.int64,
        )
    numeric = pd.to_numeric(values, errors="coerce")
    is_number = numeric.notna().to_numpy()
    if is_number[0]:
        if not is_number.all():
            row = _first(~is_number)
            raise UsageError(
                f"{where}: unparsable time {_show(values.iloc[row])} in column {column} "
                f"(row {row + 1}); expected epoch ms like the rows before it",
                field=what,
            )
        ms = numeric.to_numpy(dtype=np.float64)
        fractional = ms != np.floor(ms)
        if fractional.any():
            row = _first(fractional)
            raise UsageError(
                f"{where}: column {column} has fractional epoch ms {float(ms[row])!r} "
                f"(row {row + 1})",
                field=what,
            )
        small = ms < _MIN_EPOCH_MS
        if small.any():
            row = _first(small)
            raise UsageError(
                f"{where}: column {column} holds {int(ms[row])} (row {row + 1}), which is not "
                "epoch milliseconds (seconds?)",
                field=what,
            )
        return ms.astype(np.int64)
    parsed = pd.to_datetime(values.astype(str), utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy() | is_number
    if bad.any():
        row = _first(bad)
        raise UsageError(
            f"{where}: unparsable time {_show(values.iloc[row])} in column {column} "
            f"(row {row + 1}); expected epoch ms or ISO-8601",
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
        out[column] = _numbers(
            frame[column], where=where, what="candles", column=column, low=0.0,
            low_inclusive=column == "volume",
        )  # fmt: skip
    _check_consistent(out, where=where)
    return out


def _numbers(
    values: pd.Series,
    *,
    where: str,
    what: str,
    column: str,
    low: float | None = None,
    low_inclusive: bool = False,
    high: float | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """A numeric column, checked in the order a reader would fix it: empty cells, then text,
    then values that are not finite or outside (low, high]; each named by its first row."""
    empty = values.isna().to_numpy()
    if empty.any() and not allow_empty:
        row = _first(empty)
        raise UsageError(f"{where}: empty value in column {column} (row {row + 1})", field=what)
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    text = np.isnan(numeric) & ~empty
    if text.any():
        row = _first(text)
        raise UsageError(
            f"{where}: column {column} has a non-numeric value {_show(values.iloc[row])} "
            f"(row {row + 1})",
            field=what,
        )
    with np.errstate(invalid="ignore"):
        bad = ~empty & ~np.isfinite(numeric)
        if low is not None:
            bad |= ~empty & ((numeric < low) if low_inclusive else (numeric <= low))
        if high is not None:
            bad |= ~empty & (numeric > high)
    if bad.any():
        row = _first(bad)
        bound = f"{'>=' if low_inclusive else '>'} {low:g}" if low is not None else "finite"
        raise UsageError(
            f"{where}: column {column} has {float(numeric[row])!r} (row {row + 1}); it must be "
            f"finite and {bound}",
            field=what,
        )
    return numeric


def _check_consistent(candles: pd.DataFrame, *, where: str) -> None:
    """low <= min(open, close) and high >= max(open, close) on every bar."""
    open_, close = candles["open"].to_numpy(), candles["close"].to_numpy()
    low, high = candles["low"].to_numpy(), candles["high"].to_numpy()
    bad = (low > np.minimum(open_, close)) | (high < np.maximum(open_, close))
    if bad.any():
        row = _first(bad)
        raise UsageError(
            f"{where}: inconsistent candle (row {row + 1}): open {float(open_[row])!r}, high "
            f"{float(high[row])!r}, low {float(low[row])!r}, close {float(close[row])!r}; "
            "expected low <= open, close <= high",
            field="candles",
        )


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
    empty = frame["direction"].isna().to_numpy()
    if empty.any():
        row = _first(empty)
        raise UsageError(f"{where}: empty direction (row {row + 1})", field="signals")
    words = frame["direction"].map(_text).str.strip().str.lower()
    unknown = ~words.isin(list(_DIRECTIONS))
    if unknown.any():
        row = _first(unknown)
        raise UsageError(
            f"{where}: direction {_show(frame['direction'].iloc[row])} (row {row + 1}); "
            "expected long, short, 1 or -1",
            field="signals",
        )
    out = pd.DataFrame({"time": times, "direction": words.map(_DIRECTIONS).astype(np.int8)})
    for name, aliases in _SIGNAL_OPTIONAL.items():
        column = _find(frame, aliases)
        if column is not None:
            out[name] = _optional_signal_column(frame[column], name, where=where, column=column)
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


def _text(value: Any) -> Any:
    """A cell as text: integers read as floats (a column with gaps) lose their ".0"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _optional_signal_column(values: pd.Series, name: str, *, where: str, column: str) -> Any:
    """An optional signal column checked and typed: levels and atr finite and > 0, score an
    integer 0–7, confidence high/medium/low, setup and signal_id text; empty cells allowed."""
    if name in ("stop_price", "target_price", "atr"):
        return _numbers(values, where=where, what="signals", column=column, low=0.0,
                        allow_empty=True)  # fmt: skip
    if name == "score":
        score = _numbers(values, where=where, what="signals", column=column, allow_empty=True)
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(score) & ((score != np.floor(score)) | (score < 0) | (score > 7))
        if bad.any():
            row = _first(bad)
            raise UsageError(
                f"{where}: score {float(score[row])!r} (row {row + 1}); expected an integer 0–7",
                field="signals",
            )
        return score
    text = values.map(_text).astype(object)
    if name == "confidence":
        text = text.map(lambda tag: None if tag is None else tag.strip().lower())
        bad = text.notna() & ~text.isin(list(CONFIDENCES))
        if bad.any():
            row = _first(bad)
            raise UsageError(
                f"{where}: confidence {_show(values.iloc[row])} (row {row + 1}); expected "
                f"{', '.join(CONFIDENCES)}",
                field="signals",
            )
    return text.where(text.notna(), None).to_numpy(dtype=object)


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
    rules_version: str = RULES_VERSION,
    atr_bars: int = 14,
) -> Inputs:
    """1m candles, funding and the signals of ``timeframe`` in ``[start_ms, end_ms)``, each
    signal with its score under ``rules_version`` (the latest scoring by ``scored_at`` within
    that version; scores of other rubrics are never mixed in), filtered by setup, minimum
    score, confidence and direction. A signal is known at ``bar_close_time + 1 ms``.

    Each signal carries ``atr``: the signal engine's ATR (Wilder, ``atr_bars``) on the signal
    timeframe at its bar, from 1m candles resampled the way the signal engine does and read
    from ``ATR_WARMUP_FACTOR × atr_bars`` timeframe bars before ``start_ms``; only bars closed
    by the signal bar's close enter it.

    A filter on score or confidence drops the signals that have no score in that version."""
    last_ms = end_ms - 1  # Lake.read is inclusive of both ends
    timeframe_ms = interval_ms(timeframe)
    warmup_ms = ATR_WARMUP_FACTOR * atr_bars * timeframe_ms
    candles = lake.read(
        CANDLES,
        symbols=symbol,
        param="1m",
        start=start_ms - warmup_ms,
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
    import polars as pl  # noqa: PLC0415 - the signal reader's frames; loaded for lake runs only

    # The signal engine's own reader: each signal with its latest score of ``rules_version``.
    joined = read_scored_signals(
        lake,
        symbols=symbol,
        timeframe=timeframe,
        start_ms=start_ms,
        end_ms=end_ms,
        rules_version=rules_version,
    )
    signals = joined.with_columns(
        pl.col("bar_open_time").cast(pl.Int64), pl.col("bar_close_time").cast(pl.Int64)
    ).to_pandas()
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
    frame["atr"] = signal_timeframe_atr(
        bars, timeframe_ms=timeframe_ms, length=atr_bars, end_ms=end_ms, at_ms=frame["time"]
    )
    bars = bars[bars["open_time"] >= start_ms].reset_index(drop=True)  # the warm-up goes
    if bars.empty:
        raise UsageError(
            f"symbol {symbol}: no 1m candles in the lake for [{iso_ms(start_ms)}, "
            f"{iso_ms(end_ms)})",
            field="symbols",
        )
    return Inputs(bars, frame.reset_index(drop=True), funding, "lake", timeframe_ms, rules_version)


def signal_timeframe_atr(
    minutes: pd.DataFrame, *, timeframe_ms: int, length: int, end_ms: int, at_ms: Any
) -> np.ndarray:
    """The signal engine's ATR (``ingmon.signals.features.atr``: Wilder over ``length`` bars)
    on 1m ``minutes`` resampled to ``timeframe_ms`` as the signal engine resamples them, at the
    bars opening at each of ``at_ms`` (NaN where there is no such closed bar or too little
    history). Causal: a bar's value uses the bars up to and including it."""
    signal_bars = SignalBars.from_candles(
        open_time_ms=minutes["open_time"].to_numpy(dtype=np.int64),
        open=minutes["open"].to_numpy(dtype=np.float64),
        high=minutes["high"].to_numpy(dtype=np.float64),
        low=minutes["low"].to_numpy(dtype=np.float64),
        close=minutes["close"].to_numpy(dtype=np.float64),
        volume=minutes["volume"].to_numpy(dtype=np.float64),
        taker_buy_volume=np.zeros(len(minutes)),  # not needed for the ATR
        interval_ms=MINUTE_MS,
    ).resample(timeframe_ms, known_until_ms=end_ms)
    wanted = np.asarray(at_ms, dtype=np.int64)
    out = np.full(len(wanted), np.nan)
    if not len(signal_bars) or not len(wanted):
        return out
    values = wilder_atr(signal_bars.high, signal_bars.low, signal_bars.close, length)
    at = np.minimum(np.searchsorted(signal_bars.open_time_ms, wanted), len(signal_bars) - 1)
    found = signal_bars.open_time_ms[at] == wanted
    out[found] = values[at[found]]
    return out

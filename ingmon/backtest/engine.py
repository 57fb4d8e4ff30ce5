"""The fill engine: signals on closed bars → trades with next-open entries, stops, costs, funding.

Pure: arrays and frames in, :class:`BacktestResult` out, no I/O. The engine walks the signals
(not the bars): each accepted signal's exit is found by a first-crossing search over the bar
arrays, and everything after the walk (sizes, fees, funding, excursions, the mark-to-market
equity) is computed with whole-array numpy operations.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from ingmon.errors import UsageError
from ingmon.signals.features import SESSION_NAMES, session_labels

__all__ = [
    "EXIT_REASONS",
    "REPORT_BRACKET",
    "SESSIONS",
    "BacktestConfig",
    "BacktestResult",
    "Bars",
    "Funding",
    "fill_bars_mean_true_range",
    "prepare_signals",
    "run_backtest",
    "session_codes",
    "session_of",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

Opposite = Literal["ignore", "close", "reverse"]
Directions = Literal["both", "long", "short"]
Sizing = Literal["notional", "fraction"]

# Codes of the exit reasons in the arrays; the trades frame carries the names.
EXIT_REASONS: tuple[str, ...] = ("stop", "target", "time", "opposite", "end")
_STOP, _TARGET, _TIME, _OPPOSITE, _END = range(5)

# The session of a signal bar is the signal engine's (ingmon.signals.features: fixed UTC hours,
# overlaps their own labels, Saturday and Sunday "weekend"), so breakdowns by session use the
# labels of the audit records.
SESSIONS: tuple[str, ...] = SESSION_NAMES
_SIDES = ("long", "short")

# The first-crossing search looks at this many bars first, then 4× more each round: short
# holds cost one small slice, long ones stay linear in the bars they cover.
_FIRST_CHUNK_BARS = 64


@dataclass(frozen=True, kw_only=True)
class BacktestConfig:
    """Every parameter of a run (recorded in the exports; fractions, not percent).

    Stops and targets are fixed at entry from the entry fill: ``stop_pct``/``take_profit_pct``
    (fraction of the entry price), or ``stop_atr``/``take_profit_atr`` (multiples of the
    signal's ``atr`` column — lake mode: the signal engine's Wilder ATR on the signal timeframe
    — else of :func:`fill_bars_mean_true_range` over ``atr_bars`` fill bars ending at the
    signal bar). With ``signal_levels`` the signal's own ``stop_price``/``target_price`` are
    used where they can bracket the entry fill, the percent/ATR rule where not (see
    :func:`_levels`). ``entry_delay_bars`` and ``hold_bars`` count bars of the market filled
    on (1m in the CLI).
    """

    entry_delay_bars: int = 1
    hold_bars: int | None = None
    stop_pct: float | None = None
    take_profit_pct: float | None = None
    stop_atr: float | None = None
    take_profit_atr: float | None = None
    signal_levels: bool = False
    atr_bars: int = 14
    opposite: Opposite = "ignore"
    directions: Directions = "both"
    fee_rate: float = 0.0005
    slippage_bps: float = 0.0
    sizing: Sizing = "notional"
    notional: float = 10_000.0
    fraction: float = 1.0
    initial_equity: float = 10_000.0

    def __post_init__(self) -> None:
        _at_least(self.entry_delay_bars, 1, "entry_delay_bars")
        if self.hold_bars is not None:
            _at_least(self.hold_bars, 1, "hold_bars")
        _at_least(self.atr_bars, 1, "atr_bars")
        for name in ("stop_pct", "take_profit_pct", "stop_atr", "take_profit_atr"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise UsageError(f"{name} must be > 0, got {value}", field=name)
        if self.stop_pct is not None and self.stop_atr is not None:
            raise UsageError("stop_pct and stop_atr exclude each other", field="stop_pct")
        if self.take_profit_pct is not None and self.take_profit_atr is not None:
            raise UsageError(
                "take_profit_pct and take_profit_atr exclude each other", field="take_profit_pct"
            )
        if self.stop_pct is not None and self.stop_pct >= 1:
            raise UsageError(
                f"stop_pct must be < 1 (a fraction), got {self.stop_pct}", field="stop_pct"
            )
        if self.opposite not in ("ignore", "close", "reverse"):
            raise UsageError(f"opposite must be ignore|close|reverse, got {self.opposite!r}")
        if self.directions not in ("both", "long", "short"):
            raise UsageError(f"directions must be both|long|short, got {self.directions!r}")
        if self.sizing not in ("notional", "fraction"):
            raise UsageError(
                f"sizing must be notional|fraction, got {self.sizing!r}", field="sizing"
            )
        for name in ("fee_rate", "slippage_bps"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise UsageError(f"{name} must be >= 0, got {value}", field=name)
        if self.fee_rate >= 0.1:
            raise UsageError(f"fee_rate is a fraction (0.0005 = 0.05 %), got {self.fee_rate}")
        for name in ("notional", "fraction", "initial_equity"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise UsageError(f"{name} must be > 0, got {value}", field=name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def slippage(self) -> float:
        """Slippage per side as a fraction of the price."""
        return self.slippage_bps / 10_000.0


def _at_least(value: int, low: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UsageError(f"{name} must be an integer >= {low}, got {value!r}", field=name)


REPORT_BRACKET = BacktestConfig(
    stop_atr=1.0, take_profit_atr=1.5, hold_bars=240, fee_rate=0.0005, slippage_bps=1.0
)
"""The bracket the demo, the reports and docs/backtesting.md use: market entry on the bar after
the signal, stop 1 ATR and target 1.5 ATR of the signal timeframe, time exit after 240 1m bars
(4 h), taker fee 0.05 % and 1 bp slippage per side. ``notebooks/backtest_report.py`` repeats
these as literal parameter defaults (papermill reads literals); a test keeps them equal."""


@dataclass(frozen=True)
class Bars:
    """OHLC bars as arrays, in time order: the market the engine fills on (usually 1m)."""

    open_time_ms: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    bar_ms: int

    def __len__(self) -> int:
        return len(self.open_time_ms)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, bar_ms: int | None = None) -> Bars:
        """From a frame with ``open_time`` (epoch ms) and ``open/high/low/close`` columns; the
        bar length defaults to the most common step between open times."""
        times = np.ascontiguousarray(frame["open_time"].to_numpy(dtype=np.int64))
        if bar_ms is None:
            bar_ms = infer_bar_ms(times)
        return cls(
            open_time_ms=times,
            open=np.ascontiguousarray(frame["open"].to_numpy(dtype=np.float64)),
            high=np.ascontiguousarray(frame["high"].to_numpy(dtype=np.float64)),
            low=np.ascontiguousarray(frame["low"].to_numpy(dtype=np.float64)),
            close=np.ascontiguousarray(frame["close"].to_numpy(dtype=np.float64)),
            bar_ms=bar_ms,
        )

    def slice(self, start: int, stop: int) -> Bars:
        """Bars ``[start, stop)`` (views, no copy)."""
        return Bars(
            self.open_time_ms[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.bar_ms,
        )

    @property
    def close_time_ms(self) -> IntArray:
        return self.open_time_ms + (self.bar_ms - 1)


def infer_bar_ms(open_time_ms: IntArray) -> int:
    """The most common step between consecutive open times (60,000 for 1m bars)."""
    if len(open_time_ms) < 2:
        return 60_000
    steps, counts = np.unique(np.diff(open_time_ms), return_counts=True)
    return int(steps[np.argmax(counts)])


@dataclass(frozen=True)
class Funding:
    """Funding settlements: time, rate and mark price (NaN mark → the bar open at that time)."""

    time_ms: IntArray
    rate: FloatArray
    mark_price: FloatArray

    @classmethod
    def empty(cls) -> Funding:
        return cls(np.empty(0, np.int64), np.empty(0), np.empty(0))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | None) -> Funding:
        """From ``funding_time`` (ms), ``funding_rate`` and optional ``mark_price`` columns."""
        if frame is None or frame.empty:
            return cls.empty()
        mark = (
            frame["mark_price"].to_numpy(dtype=np.float64, na_value=np.nan)
            if "mark_price" in frame
            else np.full(len(frame), np.nan)
        )
        return cls(
            frame["funding_time"].to_numpy(dtype=np.int64),
            frame["funding_rate"].to_numpy(dtype=np.float64),
            mark,
        )


def session_codes(open_time_ms: IntArray) -> npt.NDArray[np.int8]:
    """Index into :data:`SESSIONS` of each bar open time."""
    return session_labels(np.asarray(open_time_ms, dtype=np.int64)).astype(np.int8)


def session_of(open_time_ms: IntArray) -> npt.NDArray[np.object_]:
    """The fixed-UTC session label of each bar open time (see :data:`SESSIONS`)."""
    return np.asarray(SESSIONS, dtype=object)[session_codes(open_time_ms)]


def prepare_signals(
    frame: pd.DataFrame, *, bar_ms: int, known_column: str | None = None
) -> pd.DataFrame:
    """A signal frame in the engine's form.

    ``frame`` has ``time`` (the signal bar's open, epoch ms) and ``direction`` (+1 long, −1
    short), and optionally ``known_ms`` or ``known_column``: when the signal is known, by
    default the signal bar's close, ``time + bar_ms``. Other columns (``stop_price``,
    ``target_price``, ``atr``, ``signal_id``, ``setup``, ``score``, ``confidence``) pass
    through. Rows are kept in order (the engine needs them sorted by ``known_ms``).
    """
    out = frame.copy()
    out["time"] = out["time"].astype(np.int64)
    out["direction"] = out["direction"].astype(np.int8)
    if known_column is not None:
        out["known_ms"] = out[known_column].astype(np.int64)
    elif "known_ms" not in out:
        out["known_ms"] = out["time"] + bar_ms
    return out


class BacktestResult:
    """The trades of one run, what it skipped, and (computed on first use) its mark-to-market
    equity and signed position at every bar's close."""

    def __init__(
        self,
        config: BacktestConfig,
        bars: Bars,
        trades: pd.DataFrame,
        funding: Funding,
        skipped: Mapping[str, int],
        *,
        own_levels_ignored: int = 0,
    ) -> None:
        self.config = config
        self.bars = bars
        self.trades = trades
        self.funding = funding
        self.skipped = dict(skipped)
        # Signals' own stops/targets refused (wrong side of the fill, non-positive, not finite).
        self.own_levels_ignored = own_levels_ignored

    @functools.cached_property
    def _curve(self) -> tuple[FloatArray, FloatArray]:
        return _equity(self.bars, self.trades, self.funding, self.config.initial_equity)

    @property
    def equity(self) -> FloatArray:
        """Equity at each bar's close: realised PnL plus the open position marked to market."""
        return self._curve[0]

    @property
    def position(self) -> FloatArray:
        """Signed quantity held at each bar's close (0 when flat)."""
        return self._curve[1]

    @property
    def final_equity(self) -> float:
        return self.config.initial_equity + float(self.trades["pnl"].sum())


# ---- the walk over signals ----------------------------------------------------------------


class _Walk:
    """The sequential part: which signals become trades, and where each one exits."""

    def __init__(self, bars: Bars, config: BacktestConfig) -> None:
        self.open = bars.open
        self.high = bars.high
        self.low = bars.low
        self.n = len(bars)
        self.config = config
        self.slip = config.slippage

    def exit_of(
        self, entry: int, direction: int, stop: float, target: float
    ) -> tuple[int, float, int]:
        """(exit bar, raw exit price, reason) of a position entered at the open of ``entry``."""
        n = self.n
        hold = self.config.hold_bars
        end = n if hold is None else min(n, entry + hold)
        if not (math.isnan(stop) and math.isnan(target)):  # a level: look for its first touch
            found = self._first_touch(entry, end, direction, stop, target)
            if found is not None:
                return found
        if hold is not None and entry + hold < n:
            return entry + hold, float(self.open[entry + hold]), _TIME
        return n - 1, float(np.nan), _END

    def _first_touch(
        self, start: int, end: int, direction: int, stop: float, target: float
    ) -> tuple[int, float, int] | None:
        chunk = _FIRST_CHUNK_BARS
        low_side, high_side = (self.low, self.high) if direction > 0 else (self.high, self.low)
        has_stop, has_target = not math.isnan(stop), not math.isnan(target)
        lo = start
        while lo < end:
            hi = min(end, lo + chunk)
            stop_at = target_at = hi - lo
            if has_stop:
                hits = low_side[lo:hi] <= stop if direction > 0 else low_side[lo:hi] >= stop
                first = int(hits.argmax())
                if hits[first]:
                    stop_at = first
            if has_target:
                window = high_side[lo:hi]
                hits = window >= target if direction > 0 else window <= target
                first = int(hits.argmax())
                if hits[first]:
                    target_at = first
            if stop_at < hi - lo or target_at < hi - lo:
                return self._fill(lo + stop_at, lo + target_at, direction, levels=(stop, target))
            lo = hi
            chunk *= 4
        return None

    def _fill(
        self, stop_bar: int, target_bar: int, direction: int, *, levels: tuple[float, float]
    ) -> tuple[int, float, int]:
        stop, target = levels
        bar_open = float(self.open[min(stop_bar, target_bar)])
        if target_bar < stop_bar or (
            target_bar == stop_bar and (bar_open - target) * direction >= 0
        ):
            # The target first, or the bar opened at or beyond it: a limit fills at the level
            # or at the better open.
            bar = target_bar
            price = max(bar_open, target) if direction > 0 else min(bar_open, target)
            return bar, price, _TARGET
        # The stop first — also when both are inside one bar (conservative): at the level, or
        # at the worse open when the bar gapped through it.
        bar = stop_bar
        price = min(bar_open, stop) if direction > 0 else max(bar_open, stop)
        return bar, price, _STOP


def _own_level_usable(level: float, entry_fill: float, *, side: int) -> bool:
    """Whether a signal's own level can bracket a position entered at ``entry_fill``: finite,
    positive, and strictly on its side of the fill (``side`` +1: above it, −1: below it)."""
    return math.isfinite(level) and level > 0 and (level - entry_fill) * side > 0


@dataclass(frozen=True, slots=True)
class _Levels:
    """The stop and target of a position (NaN: none) and how many of the signal's own levels
    were refused."""

    stop_price: float
    target_price: float
    own_levels_ignored: int


def _levels(
    config: BacktestConfig,
    entry_fill: float,
    *,
    direction: int,
    atr: float,
    own_stop: float,
    own_target: float,
) -> _Levels:
    """The stop and target fixed at entry. With ``signal_levels`` the signal's own level wins
    where it is usable; one on the wrong side of the fill (a long's stop above it, a short's
    target above it, …), non-positive or not finite is ignored and counted, and the percent/ATR
    rule (else none) applies instead."""
    stop = target = math.nan
    if config.stop_pct is not None:
        stop = entry_fill * (1 - direction * config.stop_pct)
    elif config.stop_atr is not None:
        stop = entry_fill - direction * config.stop_atr * atr
    if config.take_profit_pct is not None:
        target = entry_fill * (1 + direction * config.take_profit_pct)
    elif config.take_profit_atr is not None:
        target = entry_fill + direction * config.take_profit_atr * atr
    ignored = 0
    if config.signal_levels:
        if not math.isnan(own_stop):
            if _own_level_usable(own_stop, entry_fill, side=-direction):
                stop = own_stop
            else:
                ignored += 1
        if not math.isnan(own_target):
            if _own_level_usable(own_target, entry_fill, side=direction):
                target = own_target
            else:
                ignored += 1
    return _Levels(float(stop), float(target), ignored)


def fill_bars_mean_true_range(bars: Bars, signal_bar: IntArray, length: int) -> FloatArray:
    """The file-mode fallback ATR: the simple mean true range of the ``length`` fill bars (the
    candles traded on, usually 1m) ending at each signal bar; NaN before enough bars.

    Used for ATR-multiple stops and targets only when the signals carry no ``atr`` column; lake
    mode passes the signal engine's Wilder ATR on the signal timeframe instead."""
    high, low, close = bars.high, bars.low, bars.close
    previous = np.concatenate(([close[0]], close[:-1])) if len(close) else close
    true_range = np.maximum(high - low, np.maximum(abs(high - previous), abs(low - previous)))
    sums = np.concatenate(([0.0], np.cumsum(true_range)))
    out = np.full(len(signal_bar), np.nan)
    ok = signal_bar >= length - 1
    ends = signal_bar[ok] + 1
    out[ok] = (sums[ends] - sums[ends - length]) / length
    return out


@dataclass(slots=True)
class _Position:
    """A position from the signal that opened it to its exit (found at entry, moved earlier by
    an opposite signal)."""

    signal_index: int
    entry_bar: int
    exit_bar: int
    raw_exit_price: float  # before slippage; NaN for an end-of-data exit (the last close)
    exit_reason: int
    stop_price: float
    target_price: float


@dataclass(frozen=True)
class _SignalPlan:
    """Per signal, as plain lists for the sequential walk: the bar that makes it known, the bar
    it would enter at, its direction, own levels and ATR."""

    signal_bar: list[int]
    entry_bar: list[int]
    direction: list[int]
    own_stop: list[float]
    own_target: list[float]
    atr: list[float]


class _Trader:
    """The sequential part of a run: which signals become positions and where each exits."""

    def __init__(self, bars: Bars, plan: _SignalPlan, config: BacktestConfig) -> None:
        self.bars = bars
        self.plan = plan
        self.config = config
        self.exits = _Walk(bars, config)
        self.allowed_directions = {"both": (1, -1), "long": (1,), "short": (-1,)}[config.directions]
        self.needs_atr = config.stop_atr is not None or config.take_profit_atr is not None
        self.skipped = {"before_data": 0, "no_entry_bar": 0, "in_position": 0, "no_atr": 0}
        self.own_levels_ignored = 0

    def open_position(self, index: int) -> _Position | None:
        """Enter signal ``index`` at its entry bar's open (None when its ATR is unknown)."""
        plan = self.plan
        atr = plan.atr[index]
        if self.needs_atr and math.isnan(atr):
            self.skipped["no_atr"] += 1
            return None
        entry_bar, direction = plan.entry_bar[index], plan.direction[index]
        entry_fill = float(self.bars.open[entry_bar]) * (1 + direction * self.config.slippage)
        levels = _levels(
            self.config,
            entry_fill,
            direction=direction,
            atr=atr,
            own_stop=plan.own_stop[index],
            own_target=plan.own_target[index],
        )
        self.own_levels_ignored += levels.own_levels_ignored
        exit_bar, raw_exit_price, reason = self.exits.exit_of(
            entry_bar, direction, levels.stop_price, levels.target_price
        )
        return _Position(
            index,
            entry_bar,
            exit_bar,
            raw_exit_price,
            reason,
            levels.stop_price,
            levels.target_price,
        )

    def closes_on_opposite(self, position: _Position, index: int) -> bool:
        """Signal ``index`` opposes ``position``, is known once it is entered, and enters no
        later than it exits: with ``opposite`` close/reverse it closes the position."""
        plan = self.plan
        return (
            self.config.opposite != "ignore"
            and plan.direction[index] != plan.direction[position.signal_index]
            and plan.signal_bar[index] >= position.entry_bar
            and plan.entry_bar[index] <= position.exit_bar
        )

    def trade(self) -> list[_Position]:
        """Walk the signals in order; the closed positions, oldest first."""
        plan, bar_count = self.plan, len(self.bars)
        closed: list[_Position] = []
        position: _Position | None = None
        last_exit_bar = -1
        for index, signal_bar in enumerate(plan.signal_bar):
            if signal_bar < 0:
                self.skipped["before_data"] += 1
                continue
            entry_bar = plan.entry_bar[index]
            if entry_bar >= bar_count:
                self.skipped["no_entry_bar"] += 1
                continue
            if position is not None:
                if signal_bar >= position.exit_bar:  # closed by the close of this signal's bar
                    closed.append(position)
                    last_exit_bar, position = position.exit_bar, None
                elif self.closes_on_opposite(position, index):
                    position.exit_bar = entry_bar
                    position.raw_exit_price = float(self.bars.open[entry_bar])
                    position.exit_reason = _OPPOSITE
                    closed.append(position)
                    last_exit_bar, position = entry_bar, None
                    if (
                        self.config.opposite == "reverse"
                        and plan.direction[index] in self.allowed_directions
                    ):
                        position = self.open_position(index)
                    continue
                else:
                    self.skipped["in_position"] += 1
                    continue
            if signal_bar < last_exit_bar:
                self.skipped["in_position"] += 1
                continue
            if plan.direction[index] not in self.allowed_directions:
                continue
            position = self.open_position(index)
        if position is not None:
            closed.append(position)
        return closed


def run_backtest(
    bars: Bars | pd.DataFrame,
    signals: pd.DataFrame,
    *,
    config: BacktestConfig | None = None,
    funding: Funding | pd.DataFrame | None = None,
) -> BacktestResult:
    """Trade ``signals`` on ``bars``.

    A signal known at ``known_ms`` (default: ``time`` + the bar length, its bar's close) enters
    at the open of the first bar that opens at or after it, plus ``entry_delay_bars − 1``
    bars. Only one position is open at a time: a signal is taken when the position is flat at
    the close of the bar that makes it known; an opposite signal closes (or reverses) the
    position at its own entry open when ``config.opposite`` says so; any other signal
    meanwhile is skipped (counted in
    ``skipped``). See docs/backtesting.md for the fill and cost model.
    """
    config = config or BacktestConfig()
    if not isinstance(bars, Bars):
        bars = Bars.from_frame(bars)
    if not isinstance(funding, Funding):
        funding = Funding.from_frame(funding)
    if "known_ms" in signals:
        known_ms = signals["known_ms"].to_numpy(dtype=np.int64)
    else:  # known at the close of the bar that opens at ``time``
        known_ms = signals["time"].to_numpy(dtype=np.int64) + bars.bar_ms
    first_bar_known = np.searchsorted(bars.open_time_ms, known_ms, side="left")
    signal_bar = first_bar_known - 1
    atr = _column(signals, "atr")
    if (config.stop_atr is not None or config.take_profit_atr is not None) and not (
        np.isfinite(atr).any()
    ):
        atr = fill_bars_mean_true_range(bars, signal_bar, config.atr_bars)
    plan = _SignalPlan(
        signal_bar=signal_bar.tolist(),
        entry_bar=(first_bar_known + (config.entry_delay_bars - 1)).tolist(),
        direction=signals["direction"].to_numpy(dtype=np.int64).tolist(),
        own_stop=_column(signals, "stop_price").tolist(),
        own_target=_column(signals, "target_price").tolist(),
        atr=atr.tolist(),
    )
    trader = _Trader(bars, plan, config)
    positions = trader.trade()
    trades = _account(bars, signals, positions, config, funding)
    return BacktestResult(
        config, bars, trades, funding, trader.skipped, own_levels_ignored=trader.own_levels_ignored
    )


def _column(frame: pd.DataFrame, name: str) -> FloatArray:
    if name not in frame:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


# ---- costs, sizes and equity: whole-array arithmetic over the trades ------------------------


def _account(
    bars: Bars,
    signals: pd.DataFrame,
    positions: list[_Position],
    config: BacktestConfig,
    funding: Funding,
) -> pd.DataFrame:
    table = np.array(
        [
            (
                position.signal_index,
                position.entry_bar,
                position.exit_bar,
                position.raw_exit_price,
                position.exit_reason,
                position.stop_price,
                position.target_price,
            )
            for position in positions
        ],
        dtype=np.float64,
    ).reshape(len(positions), 7)
    signal_index = table[:, 0].astype(np.int64)
    entry = table[:, 1].astype(np.int64)
    exit_bar = table[:, 2].astype(np.int64)
    raw_exit = table[:, 3]
    reason = table[:, 4].astype(np.int64)
    stop, target = table[:, 5], table[:, 6]
    direction = signals["direction"].to_numpy(dtype=np.int64)[signal_index]
    ended = reason == _END
    raw_exit = np.where(ended, bars.close[exit_bar], raw_exit)

    slip = config.slippage
    raw_entry = bars.open[entry]
    entry_fill = raw_entry * (1 + direction * slip)
    exit_fill = raw_exit * (1 - direction * slip)
    gross_return = direction * (exit_fill / entry_fill - 1)
    fee_return = config.fee_rate * (1 + exit_fill / entry_fill)

    entry_ms = bars.open_time_ms[entry]
    exit_ms = bars.open_time_ms[exit_bar] + np.where(ended, bars.bar_ms - 1, 0)
    # Funding per unit held: Σ mark·rate over settlements with entry < τ <= exit.
    per_unit = _funding_per_unit(bars, funding)
    settled = np.concatenate(([0.0], np.cumsum(per_unit)))
    paid_from = np.searchsorted(funding.time_ms, entry_ms, side="right")
    paid_to = np.searchsorted(funding.time_ms, exit_ms, side="right")
    funding_per_unit = -direction * (settled[paid_to] - settled[paid_from])
    net_return = gross_return - fee_return + funding_per_unit / entry_fill

    if config.sizing == "notional":
        notional = np.full(len(signal_index), config.notional)
    else:
        growth = np.concatenate(([1.0], np.cumprod(1 + config.fraction * net_return)[:-1]))
        notional = config.fraction * config.initial_equity * growth
    qty = notional / entry_fill
    pnl = notional * net_return
    fee_entry = qty * entry_fill * config.fee_rate
    fee_exit = qty * exit_fill * config.fee_rate
    funding_cash = qty * funding_per_unit
    slippage_cost = qty * (np.abs(entry_fill - raw_entry) + np.abs(exit_fill - raw_exit))
    risk = qty * np.abs(entry_fill - stop)
    r_multiple = np.full(len(signal_index), np.nan)
    has_risk = risk > 0  # False for NaN (no stop) too
    r_multiple[has_risk] = pnl[has_risk] / risk[has_risk]

    # Bars the position is held at the close of: entry .. exit−1 (an exit at the open or inside
    # bar x leaves it flat at x's close; the end-of-data exit realises at the last close).
    held_bars = exit_bar - entry
    mfe, mae = _excursions(
        bars,
        entry=entry,
        exit_bar=exit_bar,
        reason=reason,
        direction=direction,
        entry_fill=entry_fill,
    )

    signal_time = signals["time"].to_numpy(dtype=np.int64)[signal_index]
    return pd.DataFrame(
        {
            "trade_id": np.arange(1, len(signal_index) + 1),
            "signal_id": _passthrough(signals, "signal_id", signal_index),
            "setup": _passthrough(signals, "setup", signal_index),
            # Fixed vocabularies as categoricals: no per-row string conversion.
            "direction": _labels(direction < 0, _SIDES),
            "score": _passthrough(signals, "score", signal_index),
            "confidence": _passthrough(signals, "confidence", signal_index),
            "session": _labels(session_codes(signal_time), SESSIONS),
            "signal_time": signal_time,
            "entry_bar": entry,
            "exit_bar": exit_bar,
            "entry_time": entry_ms,
            "entry_price": entry_fill,
            "exit_time": exit_ms,
            "exit_price": exit_fill,
            "exit_reason": _labels(reason, EXIT_REASONS),
            "bars_held": held_bars,
            "qty": qty,
            "notional": notional,
            "stop_price": stop,
            "target_price": target,
            "gross_return": gross_return,
            "fee_entry": fee_entry,
            "fee_exit": fee_exit,
            "fees": fee_entry + fee_exit,
            "slippage": slippage_cost,
            "funding": funding_cash,
            "pnl": pnl,
            "net_return": net_return,
            "r_multiple": r_multiple,
            "mfe": mfe,
            "mae": mae,
        }
    )


@functools.cache
def _categories(names: tuple[str, ...]) -> Any:
    return pd.CategoricalDtype(list(names))


def _labels(codes: npt.NDArray[Any], names: tuple[str, ...]) -> Any:
    """A categorical column of fixed labels from their codes (no per-row strings)."""
    return pd.Categorical.from_codes(codes.astype(np.int8), dtype=_categories(names))


def _passthrough(frame: pd.DataFrame, name: str, rows: IntArray) -> Any:
    if name in frame:
        return frame[name].to_numpy()[rows]
    return np.full(len(rows), None, dtype=object)


def _funding_per_unit(bars: Bars, funding: Funding) -> FloatArray:
    """mark·rate of each settlement; a missing mark is the open of the bar holding τ."""
    mark = funding.mark_price.copy()
    missing = ~np.isfinite(mark)
    if missing.any() and len(bars):
        at = np.clip(
            np.searchsorted(bars.open_time_ms, funding.time_ms[missing], side="right") - 1,
            0,
            len(bars) - 1,
        )
        mark[missing] = bars.open[at]
    return mark * funding.rate


def _excursions(
    bars: Bars,
    *,
    entry: IntArray,
    exit_bar: IntArray,
    reason: IntArray,
    direction: IntArray,
    entry_fill: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Max favourable / adverse excursion of each trade as a return on the entry, over the bars
    it was exposed to (the exit bar counts when it exited inside or at the end of that bar)."""
    if len(entry) == 0:
        return np.empty(0), np.empty(0)
    inside = (reason == _STOP) | (reason == _TARGET) | (reason == _END)
    last = np.maximum(np.where(inside, exit_bar, exit_bar - 1), entry)
    bounds = np.empty(2 * len(entry), dtype=np.int64)
    bounds[0::2] = entry
    bounds[1::2] = last + 1
    if bounds[-1] >= len(bars):  # the last segment runs to the end: reduceat's default
        bounds = bounds[:-1]
    highest = np.maximum.reduceat(bars.high, bounds)[0::2]
    lowest = np.minimum.reduceat(bars.low, bounds)[0::2]
    up = highest / entry_fill - 1
    down = lowest / entry_fill - 1
    long = direction > 0
    return np.where(long, up, -down), np.where(long, down, -up)


def _equity(
    bars: Bars, trades: pd.DataFrame, funding: Funding, initial_equity: float
) -> tuple[FloatArray, FloatArray]:
    """Mark-to-market equity at every bar's close: realised PnL so far, plus the open
    position's price move, its entry fee and the funding settled since its entry."""
    n = len(bars)
    entry = trades["entry_bar"].to_numpy(dtype=np.int64)
    exit_bar = trades["exit_bar"].to_numpy(dtype=np.int64)
    held_bars = trades["bars_held"].to_numpy(dtype=np.int64)
    signed = np.where(trades["direction"].to_numpy() == "long", 1.0, -1.0) * trades["qty"].to_numpy(
        dtype=np.float64
    )
    entry_fill = trades["entry_price"].to_numpy(dtype=np.float64)
    fee_entry = trades["fee_entry"].to_numpy(dtype=np.float64)
    realised = np.cumsum(np.bincount(exit_bar, weights=trades["pnl"].to_numpy(), minlength=n))
    equity: FloatArray = initial_equity + realised[:n].astype(np.float64)
    position = np.zeros(n)
    total = int(held_bars.sum())
    if total:
        trade_of = np.repeat(np.arange(len(entry)), held_bars)
        starts = np.cumsum(held_bars) - held_bars
        at = entry[trade_of] + (np.arange(total) - starts[trade_of])
        held = signed[trade_of]
        open_value = held * (bars.close[at] - entry_fill[trade_of]) - fee_entry[trade_of]
        if len(funding.time_ms):
            settled = np.concatenate(([0.0], np.cumsum(_funding_per_unit(bars, funding))))
            closes_ms = bars.open_time_ms[at] + (bars.bar_ms - 1)
            settled_by_close = settled[np.searchsorted(funding.time_ms, closes_ms, side="right")]
            settled_at_entry = settled[
                np.searchsorted(funding.time_ms, bars.open_time_ms[entry], side="right")
            ][trade_of]
            open_value -= held * (settled_by_close - settled_at_entry)
        equity[at] += open_value
        position[at] = held
    return equity, position

"""A row of the facts report: its real-market band, a value per column, the episodes behind it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EPISODE_KINDS = ("compression_breakout", "absorption", "squeeze")
POOLED = "all"  # the column that pools every symbol (episode statistics)
CONFIDENCE_Z = 2.576  # two-sided 99 %

# Real-market references (docs/simulator.md lists them with their sources).
ISSUE = "issue 8 table (real BTCUSDT/ETHUSDT perpetuals)"
CONT = "Cont (2001), Quantitative Finance 1:223-236"
GABAIX = "Gabaix, Gopikrishnan, Plerou, Stanley (2003, 2006): trade-size tail ζ≈1.5"
GOPI = "Gopikrishnan et al. (1999): inverse cubic law of returns; Cont (2001): 2<α<5"
DERIVED = "derived (no number in the issue); see docs/simulator.md"


@dataclass(frozen=True)
class Band:
    """The range a real market shows for a fact (either side open), and where it comes from."""

    low: float | None
    high: float | None
    source: str

    def describe(self) -> str:
        """ "0.5–0.7", "≥ 30", "≤ 0.05"."""
        if self.low is not None and self.high is not None:
            return f"{format_number(self.low)}–{format_number(self.high)}"
        if self.low is not None:
            return f"≥ {format_number(self.low)}"
        if self.high is not None:
            return f"≤ {format_number(self.high)}"
        return "any"


@dataclass(frozen=True)
class Fact:
    """One row of the report: a value per column (symbol, or ``POOLED``) against a band."""

    key: str  # stable identifier, e.g. "corr_1h_log_return" or "follow_through_measured.squeeze"
    title: str  # what a reader sees in the table
    group: str  # the issue's table row it belongs to
    values: dict[str, float | None]
    errors: dict[str, float | None] = field(default_factory=dict)  # standard errors, if known
    samples: dict[str, int] = field(default_factory=dict)  # sample sizes behind each value
    band: Band | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # A judged column needs at least this many samples; with fewer it is "insufficient data" and
    # fails (a row that cannot be measured must not pass by default).
    min_samples: int = 0

    def insufficient(self, column: str) -> bool:
        """Whether the column has fewer samples than the row needs to be judged."""
        return (
            self.band is not None
            and column in self.values
            and self.min_samples > 0
            and self.samples.get(column, 0) < self.min_samples
        )

    def ok(self, column: str) -> bool | None:
        """Whether the column's 99 % interval overlaps the band (None: no band or no value).

        False also when the column has fewer than ``min_samples`` samples.
        """
        if self.insufficient(column):
            return False
        value = self.values.get(column)
        if self.band is None or value is None or not math.isfinite(value):
            return None
        error = self.errors.get(column) or 0.0
        margin = CONFIDENCE_Z * error if math.isfinite(error) else math.inf
        if self.band.low is not None and value + margin < self.band.low:
            return False
        return not (self.band.high is not None and value - margin > self.band.high)

    def point_in_band(self, column: str) -> bool | None:
        """Whether the point estimate itself lies in the band (None: no band or no value).

        A point band (low == high: "0.5", "0") claims equality, which only an interval can
        judge, so it counts as met whenever ``ok`` is.
        """
        value = self.values.get(column)
        if self.band is None or value is None or not math.isfinite(value):
            return None
        if self.band.low is not None and self.band.low == self.band.high:
            return self.ok(column)
        if self.band.low is not None and value < self.band.low:
            return False
        return not (self.band.high is not None and value > self.band.high)

    def verdict(self, column: str) -> str | None:
        """``ok`` (the point estimate is in the band), ``within_sampling_error`` (it is not, but
        its 99 % interval overlaps the band), ``out``, ``insufficient_data``, or None (info)."""
        judged = self.ok(column)
        if judged is None:
            return None
        if self.insufficient(column):
            return "insufficient_data"
        if not judged:
            return "out"
        return "ok" if self.point_in_band(column) else "within_sampling_error"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready row (NaN/inf become None)."""
        return {
            "key": self.key,
            "title": self.title,
            "group": self.group,
            "values": {name: _finite(value) for name, value in self.values.items()},
            "errors": {name: _finite(value) for name, value in self.errors.items()},
            "samples": dict(self.samples),
            "band": None
            if self.band is None
            else {"low": self.band.low, "high": self.band.high, "source": self.band.source},
            "min_samples": self.min_samples,
            "ok": {name: self.ok(name) for name in self.values},
            "verdict": {name: self.verdict(name) for name in self.values},
            "detail": _jsonable(self.detail),
        }


@dataclass(frozen=True)
class EpisodeMeasurement:
    """A planted episode as reported by ``episodes()`` and what its price path actually did."""

    symbol: str
    kind: str  # compression_breakout | absorption | squeeze
    start_ms: int
    end_ms: int
    trigger_ms: int
    direction: str | None  # "up" | "down": where price goes if it follows through
    outcome: str | None  # the label: follow_through | failed | decoy (None: not reported)
    measured_outcome: str | None  # follow_through | failed from the path after trigger_ms
    measured_return_log: float | None  # log return after trigger_ms, signed by direction
    horizon_minutes: int
    start_minute_of_day: int
    retrace_depth: float | None  # deepest pullback before the peak, as a share of the move
    oi_change: float | None  # OI(end) / OI(start) − 1 from the 5-minute series
    level_distance_hour_sigmas: float | None  # absorption VWAP to the nearest profile level
    level_price: float | None  # the level ``episodes()`` reports (absorptions)
    level_kind: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready row."""
        return _jsonable(self.__dict__)  # type: ignore[no-any-return]


def rate(hits: int, total: int) -> tuple[float | None, float | None]:
    """A proportion and its binomial standard error (None without samples)."""
    if total == 0:
        return None, None
    share = hits / total
    return share, math.sqrt(max(share * (1 - share), 0.25 / total) / total)


def columns_of(symbols: Sequence[str]) -> list[str]:
    return [*symbols, POOLED]


def episodes_of(
    measured: dict[str, list[EpisodeMeasurement]], column: str, kind: str
) -> list[EpisodeMeasurement]:
    symbols = list(measured) if column == POOLED else [column]
    return [item for symbol in symbols for item in measured[symbol] if item.kind == kind]


def squeeze_values(
    measured: dict[str, list[EpisodeMeasurement]],
    column: str,
    value: Callable[[EpisodeMeasurement], float | None],
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``value`` of every squeeze of a column that is not a decoy and has it (not None)."""
    found = (
        value(item) for item in episodes_of(measured, column, "squeeze") if item.outcome != "decoy"
    )
    return np.asarray([v for v in found if v is not None], dtype=np.float64)


def format_number(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2e}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return _finite(value)
    return value

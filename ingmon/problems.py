"""Problems found in the lake, and the exact command that repairs each one.

A ``Problem`` is what the integrity model, the backfill and (later) the monitor report; its
``repair`` reproduces the lake's own context (``RepairContext``: data root, exchange URLs, the
series' interval or period) so that running it verbatim fixes *this* lake.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ingmon.config import Settings
from ingmon.schema import MARKET_SERIES, MarketSeries, interval_ms
from ingmon.times import iso_ms

__all__ = ["Problem", "RepairContext", "Severity", "range_problem", "refetch_command"]

Severity = Literal["ok", "warn", "error"]


# ---- repair commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairContext:
    """What a printed repair command must carry so that it repairs *this* lake.

    ``None`` leaves a flag out (the command then relies on the default or the environment).
    """

    base_url: str | None = None
    archive_url: str | None = None
    data_dir: str | None = None

    @classmethod
    def of(
        cls, settings: Settings, *, base_url: str | None = None, archive_url: str | None = None
    ) -> RepairContext:
        """The context of a lake: its data root (absolute, so the command works from any
        directory) and the exchange URLs when they are not Binance's defaults."""
        defaults = Settings.model_fields
        base = base_url or settings.binance_base_url
        archive = archive_url or settings.binance_archive_url
        return cls(
            base_url=None if base == defaults["binance_base_url"].default else base,
            archive_url=None if archive == defaults["binance_archive_url"].default else archive,
            data_dir=str(settings.data_dir.resolve()),
        )


def refetch_command(
    *,
    series: MarketSeries,
    symbol: str,
    param: str | None,
    start_ms: int,
    end_ms: int,
    context: RepairContext,
    full_refresh: bool = False,
) -> str:
    """The backfill command that refetches exactly ``[start_ms, end_ms]`` (inclusive) of one
    series; it prints the window half-open, ``--end`` being the first millisecond after it."""
    skips = [other.skip_flag for other in MARKET_SERIES.values() if other is not series]
    # The exclusive end: the next slot after the last missing one on a gridded series (a
    # round time a person reads easily), else the millisecond after it.
    step = interval_ms(param) if series.time_gridded and param else 1
    end_exclusive = end_ms + step if end_ms % step == 0 else end_ms + 1
    parts = [
        "ingmon backfill",
        f"--symbol {symbol}",
        f"--start {iso_ms(start_ms)}",
        f"--end {iso_ms(end_exclusive)}",
        *skips,
    ]
    if series.param_flag is not None and param != series.default_param:
        parts.append(f"{series.param_flag} {param}")
    for flag, value in (
        ("--data-dir", shlex.quote(context.data_dir) if context.data_dir else None),
        ("--base-url", shlex.quote(context.base_url) if context.base_url else None),
        ("--archive-url", shlex.quote(context.archive_url) if context.archive_url else None),
    ):
        if value:
            parts.append(f"{flag} {value}")
    if full_refresh:
        parts.append("--full-refresh")
    return " ".join(parts)


# ---- problems ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Something wrong with one series: what, where (a range when known) and the repair.

    ``first_missing``/``last_missing`` are epoch ms, or aggregate ids for an ``id_gap``;
    ``details`` carries the kind's own fields (a count, an age, …) into the JSON. ``repair`` is
    the command that fixes it, or None with the reason in ``message`` ("nothing to do: …").
    """

    dataset: str
    symbol: str
    kind: str
    message: str
    param: str | None = None
    severity: Severity = "error"
    first_missing: int | None = None
    last_missing: int | None = None
    missing: int | None = None
    repair: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    # The time range the problem covers (for an id gap: the trades around the hole).
    start_ms: int | None = None
    end_ms: int | None = None

    @property
    def by_id(self) -> bool:
        return self.kind == "id_gap"

    def overlaps(self, other: Problem) -> bool:
        """Same series and intersecting time ranges."""
        if (self.dataset, self.symbol) != (other.dataset, other.symbol):
            return False
        if None in (self.start_ms, self.end_ms, other.start_ms, other.end_ms):
            return False
        return not (self.end_ms < other.start_ms or other.end_ms < self.start_ms)  # type: ignore[operator]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "symbol": self.symbol,
            "param": self.param,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
        }
        if self.first_missing is not None and self.last_missing is not None:
            if self.by_id:
                out["first_missing"], out["last_missing"] = self.first_missing, self.last_missing
            else:
                out["first_missing"] = iso_ms(self.first_missing)
                out["last_missing"] = iso_ms(self.last_missing)
            out["missing"] = self.missing
        out.update(self.details)
        if self.repair is not None:
            out["refetch_command"] = self.repair
        return out


def range_problem(
    series: MarketSeries,
    *,
    symbol: str,
    param: str | None,
    kind: str,
    message: str,
    start_ms: int,
    end_ms: int,
    context: RepairContext,
    missing: int | None = None,
) -> Problem:
    """A problem over a time range, repaired by refetching exactly that range."""
    return Problem(
        series.name,
        symbol,
        kind,
        message,
        param=param,
        first_missing=start_ms,
        last_missing=end_ms,
        missing=missing,
        repair=refetch_command(
            series=series,
            symbol=symbol,
            param=param,
            start_ms=start_ms,
            end_ms=end_ms,
            context=context,
        ),
        start_ms=start_ms,
        end_ms=end_ms,
    )

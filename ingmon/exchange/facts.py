"""Stylized facts of a simulated market, measured from its served data the way a quant would.

Everything here reads the ``Market`` through its public data methods only (``klines``,
``agg_trades``, ``open_interest``, ``funding``, ``episodes``) plus the contract's tick/step
decimals (what ``exchangeInfo`` serves) — never the simulator's parameters — so the report is an
independent instrument for calibrating the simulator (docs/simulator.md, "Stylized facts").

A band is met when the 99 % confidence interval of the estimate (value ± 2.576 standard errors,
where a standard error is known) overlaps it: a 90-day sample measures the market's property with
sampling error, and the instrument must not fail a well-calibrated market by chance. The table
says "ok" only when the point estimate itself is in the band and "within sampling error" when just
the interval reaches it; a row with fewer samples than it needs is "insufficient data" and fails.

This module holds the report and ``measure_facts``; the rest is split by family:
``_facts_data`` (the served data on a one-minute grid), ``_facts_stats`` (pure statistics),
``_facts_rows`` (a row, its band, the episode measurements), and the fact groups in
``_facts_returns``, ``_facts_episodes``, ``_facts_levels`` and ``_facts_microstructure``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ingmon.exchange._facts_data import DAY_MS, load_series
from ingmon.exchange._facts_episodes import (
    count_facts,
    measure_episodes,
    outcome_facts,
    retrace_fact,
    separability_facts,
    timing_facts,
)
from ingmon.exchange._facts_levels import Profile, level_facts, volume_profile
from ingmon.exchange._facts_microstructure import (
    fake_edge_facts,
    funding_facts,
    open_interest_facts,
    trade_size_facts,
)
from ingmon.exchange._facts_returns import (
    correlation_fact,
    drift_facts,
    volatility_facts,
    volume_return_fact,
)
from ingmon.exchange._facts_rows import (
    CONFIDENCE_Z,
    EPISODE_KINDS,
    POOLED,
    Band,
    EpisodeMeasurement,
    Fact,
    format_number,
)
from ingmon.exchange._facts_stats import (
    autocorrelation,
    excess_kurtosis,
    hill_tail_index,
    ks_test,
    roc_auc,
    spearman,
)
from ingmon.exchange.market import Market

__all__ = [
    "CONFIDENCE_Z",
    "EPISODE_KINDS",
    "POOLED",
    "SCHEMA",
    "Band",
    "EpisodeMeasurement",
    "Fact",
    "FactsReport",
    "Profile",
    "autocorrelation",
    "excess_kurtosis",
    "hill_tail_index",
    "ks_test",
    "measure_facts",
    "roc_auc",
    "spearman",
    "volume_profile",
]

SCHEMA = "ingmon.exchange.facts/v1"


@dataclass(frozen=True)
class FactsReport:
    """Every stylized fact of one market window, plus the per-episode measurements behind them."""

    seed: int
    symbols: tuple[str, ...]
    start_ms: int
    end_ms: int
    days: int
    elapsed_seconds: float
    facts: tuple[Fact, ...]
    episodes: tuple[EpisodeMeasurement, ...]
    schema: str = SCHEMA

    def fact(self, key: str) -> Fact:
        """The row with this key (KeyError if there is none)."""
        for fact in self.facts:
            if fact.key == key:
                return fact
        raise KeyError(key)

    def out_of_band(self) -> list[tuple[str, str]]:
        """(fact key, column) pairs whose value misses the band."""
        return [
            (fact.key, column)
            for fact in self.facts
            for column in fact.values
            if fact.ok(column) is False
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report (schema ``ingmon.exchange.facts/v1``)."""
        return {
            "schema": self.schema,
            "seed": self.seed,
            "symbols": list(self.symbols),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "days": self.days,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "confidence_z": CONFIDENCE_Z,
            "facts": [fact.to_dict() for fact in self.facts],
            "out_of_band": [list(pair) for pair in self.out_of_band()],
            "episodes": [episode.to_dict() for episode in self.episodes],
        }

    def table(self) -> str:
        """The report as a fixed-width text table (fact, value per column, band, status)."""
        columns = [*self.symbols, POOLED]
        used = [c for c in columns if any(f.values.get(c) is not None for f in self.facts)]
        header = ["fact", *used, "real market", "status"]
        rows: list[list[str]] = []
        for fact in self.facts:
            cells = [_cell(fact, column) for column in used]
            band = fact.band.describe() if fact.band is not None else ""
            rows.append([fact.title, *cells, band, _status(fact, used)])
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [
            f"ingmon exchange facts: seed {self.seed}, {self.days} days, "
            f"{_iso(self.start_ms)} → {_iso(self.end_ms)} ({self.elapsed_seconds:.1f} s); "
            "± = standard error; ok = the value is in the band, within sampling error = only "
            "its 99 % interval meets it",
            "  ".join(text.ljust(width) for text, width in zip(header, widths, strict=True)),
            "  ".join("-" * width for width in widths),
        ]
        group = ""
        for fact, row in zip(self.facts, rows, strict=True):
            if fact.group != group:
                group = fact.group
                lines.append(f"[{group}]")
            lines.append(
                "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True))
            )
        return "\n".join(line.rstrip() for line in lines)


def measure_facts(
    market: Market, *, symbols: Sequence[str], days: int, end_ms: int | None = None
) -> FactsReport:
    """Measure every stylized fact over the ``days`` UTC days before ``end_ms``.

    ``end_ms`` defaults to ``days`` days after the latest listing (the window ``Market.demo``
    lists). The first symbol is the reference of the cross-symbol correlation.
    """
    began = time.perf_counter()
    if not symbols:
        raise ValueError("measure_facts needs at least one symbol")
    if days < 2:
        raise ValueError("measure_facts needs at least two days")
    if end_ms is None:
        end_ms = max(market.spec(symbol).listing_ms for symbol in symbols) + days * DAY_MS
    end_ms = end_ms // DAY_MS * DAY_MS
    start_ms = end_ms - days * DAY_MS
    series = {symbol: load_series(market, symbol, start_ms, end_ms) for symbol in symbols}
    measurements = {symbol: measure_episodes(data) for symbol, data in series.items()}
    facts: list[Fact] = []
    facts.append(correlation_fact(series, symbols))
    facts.extend(drift_facts(series, measurements))
    facts.extend(outcome_facts(symbols, measurements))
    facts.extend(separability_facts(series, measurements))
    facts.extend(timing_facts(series, measurements))
    facts.extend(fake_edge_facts(series))
    facts.extend(level_facts(series, measurements))
    facts.extend(count_facts(symbols, measurements))
    facts.extend(trade_size_facts(series))
    facts.append(volume_return_fact(series))
    facts.extend(funding_facts(series))
    facts.extend(open_interest_facts(series, measurements))
    facts.extend(volatility_facts(series))
    facts.append(retrace_fact(symbols, measurements))
    return FactsReport(
        seed=market.seed,
        symbols=tuple(symbols),
        start_ms=start_ms,
        end_ms=end_ms,
        days=days,
        elapsed_seconds=time.perf_counter() - began,
        facts=tuple(facts),
        episodes=tuple(item for symbol in symbols for item in measurements[symbol]),
    )


# --- formatting ------------------------------------------------------------------------------


def _cell(fact: Fact, column: str) -> str:
    value = fact.values.get(column)
    if value is None or not math.isfinite(value):
        return "—" if column in fact.values else ""
    error = fact.errors.get(column)
    text = format_number(value)
    if error is not None and math.isfinite(error) and error > 0:
        text += f" ±{format_number(error)}"
    if column in fact.samples and fact.group not in ("counts", "trade sizes", "volume vs |return|"):
        text += f" (n={fact.samples[column]})"
    return text


def _status(fact: Fact, columns: Sequence[str]) -> str:
    """The table's verdict on a row: info, ok, or the columns that miss (worst first)."""
    verdicts = {column: fact.verdict(column) for column in columns}
    if all(verdict is None for verdict in verdicts.values()):
        return "info"
    parts = []
    for verdict, label in (
        ("out", "OUT"),
        ("insufficient_data", f"INSUFFICIENT DATA (n < {fact.min_samples})"),
        ("within_sampling_error", "within sampling error"),
    ):
        named = [column for column, seen in verdicts.items() if seen == verdict]
        if named:
            parts.append(f"{label} {','.join(named)}")
    return "; ".join(parts) or "ok"


def _iso(time_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time_ms / 1000))

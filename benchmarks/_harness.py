"""Shared helpers for the benchmarks: repeated timing with medians, and ratio tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Case", "median_seconds", "print_table"]


def median_seconds(
    run: Callable[[], object], *, repeat: int = 5, setup: Callable[[], object] | None = None
) -> float:
    """Median wall time of ``run`` over ``repeat`` runs (``setup`` runs untimed before each)."""
    samples = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


@dataclass(frozen=True)
class Case:
    """One measured line of a table: what ran, how many items, the median seconds."""

    name: str
    items: int
    seconds: float
    unit: str = "rows"

    @property
    def per_second(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("inf")


def print_table(title: str, cases: Sequence[Case], *, baseline: str) -> None:
    """Print items/s per case and each case's time as a ratio of the ``baseline`` case."""
    base = next(case for case in cases if case.name == baseline)
    print(f"\n== {title}")
    print(f"{'case':<44} {'items':>11} {'median s':>10} {'items/s':>13} {'× ' + baseline:>16}")
    for case in cases:
        ratio = case.seconds / base.seconds if base.seconds > 0 else float("nan")
        print(
            f"{case.name:<44} {case.items:>11,} {case.seconds:>10.4f} "
            f"{case.per_second:>13,.0f} {ratio:>16.2f}"
        )

"""Shared helpers for the benchmarks: repeated timing with medians, and ratio tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Case", "interleaved_medians", "median_seconds", "print_table"]


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


def interleaved_medians(
    runs: Mapping[str, Callable[[], object]], *, repeat: int = 5
) -> dict[str, float]:
    """Median wall time of each of ``runs``, timed in turn within each round so that peers side
    by side see the same machine load (a busy shared machine skews one-after-the-other medians)."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


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

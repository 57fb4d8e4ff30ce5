"""The setups measured against the simulated market's planted episodes (90 days × 3 symbols):
recall floors pinned, and the tables of docs/signals.md kept true."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._measure import KIND_OF_SETUP, SetupMeasure, measure, tables

DOCS = Path(__file__).resolve().parents[2] / "docs" / "signals.md"

# Measured at the defaults (15m, seed 7): squeeze_fire 0.09, short_squeeze 0.32, long_squeeze
# 0.41, absorption 0.31. The floors leave room for honest retuning, not for a broken detector.
RECALL_FLOOR = {
    "squeeze_fire": 0.05,
    "short_squeeze": 0.25,
    "long_squeeze": 0.30,
    "absorption": 0.25,
}


@pytest.fixture(scope="module")
def measured() -> dict[str, SetupMeasure]:
    return measure()


@pytest.mark.slow
@pytest.mark.parametrize("setup", sorted(RECALL_FLOOR))
def test_recall_of_the_planted_episodes_stays_above_its_floor(
    measured: dict[str, SetupMeasure], setup: str
) -> None:
    """Each setup finds at least its floor share of the planted (non-decoy) episodes of its
    kind, over 90 days × BTCUSDT/ETHUSDT/SOLUSDT."""
    found = measured[setup]
    assert found.episodes >= 60, found.episodes
    assert found.recall is not None
    assert found.recall >= RECALL_FLOOR[setup], (setup, found.found, found.episodes)


@pytest.mark.slow
# Not squeeze_fire: on 15m it fires on fizzled compressions as often as on real breakouts
# (docs/signals.md, findings) — a weakness reported there, not a property to pin.
@pytest.mark.parametrize("setup", sorted(set(KIND_OF_SETUP) - {"squeeze_fire"}))
def test_decoys_rarely_fire(measured: dict[str, SetupMeasure], setup: str) -> None:
    """Planted decoys (the precursor without the pattern) fire a setup far less often than
    the real episodes do."""
    found = measured[setup]
    assert found.decoys >= 10
    assert found.recall is not None
    assert found.decoys_fired / found.decoys < found.recall


@pytest.mark.slow
def test_docs_show_the_measured_table(measured: dict[str, SetupMeasure]) -> None:
    """docs/signals.md carries exactly the tables this measurement prints."""
    assert tables(measured) in DOCS.read_text(encoding="utf-8")

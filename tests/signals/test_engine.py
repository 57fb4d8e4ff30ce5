"""The engine end to end on the simulated market: no lookahead for any setup or score component,
and the recall of the planted episodes pinned."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict

import pytest

from ingmon.signals.engine import Evaluation, evaluate
from ingmon.signals.rules import SignalConfig
from ingmon.signals.setups import SETUPS
from ingmon.times import DAY_MS

from ._market import NOW_MS, demo_market, listing_ms, market_inputs

DAYS = 30


@pytest.fixture(scope="module")
def inputs_30d():  # type: ignore[no-untyped-def]
    market = demo_market(days=DAYS, symbols=("ETHUSDT",))
    return market_inputs(market, "ETHUSDT", listing_ms(market, "ETHUSDT"), NOW_MS)


@pytest.fixture(scope="module")
def full_run(inputs_30d) -> Evaluation:  # type: ignore[no-untyped-def]
    return evaluate(inputs_30d, SignalConfig(), code_version="test")


def records(evaluation: Evaluation, before_ms: int) -> list[dict[str, object]]:
    """Every signal whose bar closed before ``before_ms`` with its whole audit record."""
    return [
        {**asdict(record.signal), **record.to_row()}
        for record in evaluation.scores
        if record.signal.bar_close_ms < before_ms
    ]


def test_the_full_run_exercises_every_setup_and_every_rubric_point(full_run: Evaluation) -> None:
    """The lookahead test below is only as good as its coverage: every setup fires in the
    30 days, and every rubric point is both awarded and refused somewhere."""
    setups = Counter(signal.setup for signal in full_run.signals)
    assert set(setups) == set(SETUPS), setups
    for name in full_run.config.rules.points:
        values = {record.components[name.name]["value"] for record in full_run.scores}
        assert {0, 1} <= values, (name.name, values)


def test_signals_and_scores_on_a_prefix_equal_the_full_run_up_to_the_cut(
    inputs_30d, full_run: Evaluation
) -> None:  # type: ignore[no-untyped-def]
    """No lookahead (freqtrade's lookahead analysis): cut the data at random instants — on and
    off minute boundaries — and every signal, level, reason, input, component and score of the
    bars closed by the cut is identical to the full run's; nothing else appears."""
    chooser = random.Random(20261206)
    start = int(inputs_30d.minutes.open_time_ms[0]) + 3 * DAY_MS
    cuts = [chooser.randrange(start, NOW_MS) for _ in range(16)]
    cuts += [cut - cut % 900_000 for cut in cuts[:6]]  # exactly at signal-bar boundaries
    for cut in cuts:
        prefix = evaluate(inputs_30d.until(cut), SignalConfig(), code_version="test")
        assert records(prefix, cut + 1) == records(full_run, cut + 1), f"cut at {cut}"
        assert all(record.signal.bar_close_ms < cut for record in prefix.scores)


def test_a_later_first_bar_only_drops_the_earlier_signals(full_run: Evaluation, inputs_30d) -> None:  # type: ignore[no-untyped-def]
    """Scoring from a later bar (the incremental path) gives the full run's signals from that bar
    on: warm-up bars feed the features but are not scored."""
    first_bar_ms = NOW_MS - 10 * DAY_MS
    later = evaluate(inputs_30d, SignalConfig(), first_bar_ms=first_bar_ms, code_version="test")
    expected = [r for r in full_run.scores if r.signal.bar_open_ms >= first_bar_ms]
    assert [r.to_row() for r in later.scores] == [r.to_row() for r in expected]
    assert later.first_bar_ms == first_bar_ms

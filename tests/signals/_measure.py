"""Recall, precision and hit rate by score of the setups on the calibrated simulated market.

The simulator plants episodes with ground truth (kind, direction, outcome, trigger time); this
module matches signals to them. Run ``python tests/signals/_measure.py`` to print the tables of
docs/signals.md; ``tests/signals/test_measured.py`` pins their floors.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ingmon.exchange.market import Episode
from ingmon.signals.engine import Evaluation, evaluate
from ingmon.signals.rules import SignalConfig
from ingmon.signals.setups import SETUPS
from ingmon.times import MINUTE_MS

if __package__:
    from ._market import NOW_MS, demo_market, listing_ms, market_inputs, planted
else:  # run as a script: python tests/signals/_measure.py [timeframe]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _market import NOW_MS, demo_market, listing_ms, market_inputs, planted

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
# The planted kind each setup is meant to find (reversal setups have no planted kind).
KIND_OF_SETUP = {
    "squeeze_fire": "compression_breakout",
    "short_squeeze": "squeeze",
    "long_squeeze": "squeeze",
    "absorption": "absorption",
}
# A signal bar closing in [trigger − before, trigger + after] (and after the episode's start)
# is the setup seeing the episode: a breakout or squeeze is visible from its trigger on, an
# absorption while it happens (its trigger is the absorption's end).
MATCH_WINDOW_MS = {
    "compression_breakout": (15 * MINUTE_MS, 60 * MINUTE_MS),
    "squeeze": (15 * MINUTE_MS, 60 * MINUTE_MS),
    "absorption": (60 * MINUTE_MS, 30 * MINUTE_MS),
}
FORWARD_BARS = 16  # forward-return horizon of the hit rate: 4 h of 15m bars


@dataclass
class SetupMeasure:
    """Counts for one setup over every symbol."""

    signals: int = 0
    matched_signals: int = 0
    episodes: int = 0  # planted non-decoy episodes of the setup's kind and direction(s)
    found: int = 0
    decoys: int = 0
    decoys_fired: int = 0
    # score → [forward hits, signals]; and for matched signals, score → [follow-throughs, n]
    forward: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    follow: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    @property
    def recall(self) -> float | None:
        return self.found / self.episodes if self.episodes else None

    @property
    def precision(self) -> float | None:
        return self.matched_signals / self.signals if self.signals else None


def _direction(episode: Episode) -> str:
    return "long" if episode.direction == "up" else "short"


def _matches(bar_close_ms: int, episode: Episode) -> bool:
    assert episode.trigger_ms is not None
    before, after = MATCH_WINDOW_MS[episode.kind]
    return (
        max(episode.start_ms, episode.trigger_ms - before)
        <= bar_close_ms
        <= episode.trigger_ms + after
    )


def _setups_for(episode: Episode) -> set[str]:
    if episode.kind == "squeeze":
        return {"short_squeeze"} if episode.direction == "up" else {"long_squeeze"}
    return {setup for setup, kind in KIND_OF_SETUP.items() if kind == episode.kind}


def measure_symbol(
    evaluation: Evaluation, episodes: list[Episode], measures: dict[str, SetupMeasure]
) -> None:
    """Add one symbol's signals and episodes to ``measures``."""
    bars = evaluation.frame.bars
    scores = {record.signal.signal_id: record.score for record in evaluation.scores}
    for signal in evaluation.signals:
        measure = measures[signal.setup]
        measure.signals += 1
        score = scores[signal.signal_id]
        exit_index = signal.bar_index + FORWARD_BARS
        if exit_index < len(bars):
            sign = 1.0 if signal.direction == "long" else -1.0
            entry = bars.open[signal.bar_index + 1]
            hit = sign * (bars.open[exit_index] / entry - 1.0) > 0
            measure.forward[score][0] += int(hit)
            measure.forward[score][1] += 1
        kind = KIND_OF_SETUP.get(signal.setup)
        if kind is None:
            continue
        hits = [
            episode
            for episode in episodes
            if episode.kind == kind
            and episode.outcome != "decoy"
            and signal.setup in _setups_for(episode)
            and _direction(episode) == signal.direction
            and _matches(signal.bar_close_ms, episode)
        ]
        if hits:
            measure.matched_signals += 1
            measure.follow[score][0] += int(hits[0].outcome == "follow_through")
            measure.follow[score][1] += 1
    for episode in episodes:
        for setup in _setups_for(episode):
            measure = measures[setup]
            seen = any(
                signal.setup == setup
                and signal.direction == _direction(episode)
                and _matches(signal.bar_close_ms, episode)
                for signal in evaluation.signals
            )
            if episode.outcome == "decoy":
                measure.decoys += 1
                measure.decoys_fired += int(seen)
            else:
                measure.episodes += 1
                measure.found += int(seen)


def measure(
    *,
    days: int = 90,
    seed: int = 7,
    symbols: tuple[str, ...] = SYMBOLS,
    config: SignalConfig | None = None,
) -> dict[str, SetupMeasure]:
    """Every setup measured over ``days`` × ``symbols`` of the demo market (default config).
    The first 3 days are warm-up: neither their signals nor their episodes count."""
    market = demo_market(days=days, seed=seed, symbols=symbols)
    measures = {setup: SetupMeasure() for setup in SETUPS}
    for symbol in symbols:
        start_ms = listing_ms(market, symbol)
        inputs = market_inputs(market, symbol, start_ms, NOW_MS)
        first_bar_ms = start_ms + 3 * 86_400_000
        evaluation = evaluate(inputs, config or SignalConfig(), first_bar_ms=first_bar_ms)
        measure_symbol(evaluation, planted(market, symbol, first_bar_ms, NOW_MS), measures)
    return measures


def _rate(pair: list[int]) -> str:
    hits, total = pair
    return f"{hits / total:.2f} ({total})" if total else "–"


def tables(measures: dict[str, SetupMeasure]) -> str:
    """The markdown tables of docs/signals.md."""
    lines = [
        "| setup | signals | recall | precision | decoys fired | follow-through of matched |",
        "|---|---|---|---|---|---|",
    ]
    for setup, m in measures.items():
        recall = f"{m.recall:.2f} ({m.found}/{m.episodes})" if m.recall is not None else "n/a"
        precision = f"{m.precision:.2f}" if setup in KIND_OF_SETUP and m.signals else "n/a"
        decoys = f"{m.decoys_fired}/{m.decoys}" if m.decoys else "n/a"
        matched = [0, 0]
        for pair in m.follow.values():
            matched[0] += pair[0]
            matched[1] += pair[1]
        lines.append(
            f"| {setup} | {m.signals} | {recall} | {precision} | {decoys} | {_rate(matched)} |"
        )
    lines += [
        "",
        f"Hit rate of the {FORWARD_BARS}-bar forward move by score (hits/signals, count):",
        "",
        "| setup | " + " | ".join(str(s) for s in range(8)) + " |",
        "|---|" + "---|" * 8,
    ]
    for setup, m in measures.items():
        cells = [_rate(m.forward[score]) if score in m.forward else "–" for score in range(8)]
        lines.append(f"| {setup} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Follow-through rate of the matched planted episodes by score:",
        "",
        "| setup | " + " | ".join(str(s) for s in range(8)) + " |",
        "|---|" + "---|" * 8,
    ]
    for setup, m in measures.items():
        if setup not in KIND_OF_SETUP:
            continue
        cells = [_rate(m.follow[score]) if score in m.follow else "–" for score in range(8)]
        lines.append(f"| {setup} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pooled_forward_hit_rates(measures: dict[str, SetupMeasure]) -> dict[int, tuple[int, int]]:
    """Forward hits and signals per score over every setup."""
    pooled: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for m in measures.values():
        for score, (hits, total) in m.forward.items():
            pooled[score][0] += hits
            pooled[score][1] += total
    return {score: (pair[0], pair[1]) for score, pair in sorted(pooled.items())}


if __name__ == "__main__":
    found = measure(config=SignalConfig(timeframe=sys.argv[1]) if len(sys.argv) > 1 else None)
    print(tables(found))
    print()
    for score, (hits, total) in pooled_forward_hit_rates(found).items():
        print(f"score {score}: {hits}/{total} = {hits / total:.3f}" if total else "")

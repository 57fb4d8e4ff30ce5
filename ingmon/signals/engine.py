"""Inputs → features → setups → scores for one symbol, as one pure function, and the rows it
produces for the ``signals`` and ``scores`` datasets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ingmon.schema import SCORES, SIGNALS
from ingmon.signals.frame import FeatureFrame, MarketInputs, build_features
from ingmon.signals.rules import DETECTOR_VERSION, SignalConfig
from ingmon.signals.scoring import ScoreRecord, score_signal
from ingmon.signals.setups import Signal, detect

__all__ = ["Evaluation", "evaluate"]


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found: the feature frame, the signals and their audit records."""

    frame: FeatureFrame
    config: SignalConfig
    first_index: int  # the first bar evaluated (earlier bars were warm-up)
    signals: list[Signal]
    scores: list[ScoreRecord]

    @property
    def bars_evaluated(self) -> int:
        return max(0, len(self.frame) - self.first_index)

    @property
    def first_bar_ms(self) -> int | None:
        if not self.bars_evaluated:
            return None
        return int(self.frame.bars.open_time_ms[self.first_index])

    @property
    def last_bar_ms(self) -> int | None:
        if not self.bars_evaluated:
            return None
        return int(self.frame.bars.open_time_ms[-1])

    def signals_table(self, *, detected_at_us: int) -> pa.Table:
        """The signals as rows of the ``signals`` dataset (without the partition columns)."""
        rows = [
            {
                "signal_id": signal.signal_id,
                "bar_open_time": signal.bar_open_ms,
                "bar_close_time": signal.bar_close_ms,
                "setup": signal.setup,
                "direction": signal.direction,
                "close": signal.close,
                "stop_price": signal.stop_price,
                "target_price": signal.target_price,
                "level_kind": signal.level_kind,
                "level_price": signal.level_price,
                "levels": _json(signal.levels),
                "reasons": _json(signal.reasons),
                "detector_version": DETECTOR_VERSION,
                "detected_at": detected_at_us,
            }
            for signal in self.signals
        ]
        return pa.Table.from_pylist(rows, schema=SIGNALS.arrow_schema)

    def scores_table(self, *, scored_at_us: int) -> pa.Table:
        """The audit records as rows of the ``scores`` dataset."""
        rows = [{**record.to_row(), "scored_at": scored_at_us} for record in self.scores]
        return pa.Table.from_pylist(rows, schema=SCORES.arrow_schema)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def evaluate(
    inputs: MarketInputs,
    config: SignalConfig,
    *,
    first_bar_ms: int | None = None,
    code_version: str = "",
) -> Evaluation:
    """Detect and score every closed signal bar of ``inputs`` that opens at or after
    ``first_bar_ms`` (default: all of them); earlier bars only warm the features up.

    Pure: the same inputs and config give the same signals and records, and ``inputs.until(t)``
    gives exactly the signals of the full run whose bar closed before t (no lookahead).
    """
    frame = build_features(inputs, config)
    first_index = 0
    if first_bar_ms is not None:
        first_index = int(frame.bars.open_time_ms.searchsorted(first_bar_ms, side="left"))
    signals = detect(frame, config, first_index=first_index)
    scores = [score_signal(frame, signal, config, code_version=code_version) for signal in signals]
    return Evaluation(
        frame=frame, config=config, first_index=first_index, signals=signals, scores=scores
    )

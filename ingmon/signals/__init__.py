"""Signal engine: features, volume profiles, setups and the 0–7 score with its audit."""

from __future__ import annotations

from ingmon.signals.engine import Evaluation, evaluate
from ingmon.signals.frame import FeatureFrame, MarketInputs, build_features
from ingmon.signals.rules import (
    DETECTOR_VERSION,
    RULES_VERSION,
    DetectorParams,
    ScoreRules,
    SignalConfig,
)
from ingmon.signals.scoring import ScoreRecord
from ingmon.signals.setups import SETUPS, Signal
from ingmon.signals.store import ScoreRun, load_inputs, read_scores, read_signals, score_symbol

__all__ = [  # noqa: RUF022 - sorted by str.casefold, as ingmon's own
    "build_features",
    "DETECTOR_VERSION",
    "DetectorParams",
    "evaluate",
    "Evaluation",
    "FeatureFrame",
    "load_inputs",
    "MarketInputs",
    "read_scores",
    "read_signals",
    "RULES_VERSION",
    "ScoreRecord",
    "ScoreRules",
    "ScoreRun",
    "score_symbol",
    "SETUPS",
    "Signal",
    "SignalConfig",
]

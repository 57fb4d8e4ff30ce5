"""The 0–7 score: named, direction-aware rubric points, confidence tags and the audit record.

Each point is a pure predicate over a flat dict of scalar inputs and the rubric's thresholds, so
an audit record (inputs + thresholds as stored) re-evaluates to exactly the stored components:
see :func:`evaluate_points`. A point whose inputs are missing scores 0, is recorded as null and
marks the record's data quality ``degraded``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ingmon.signals.features import SESSION_NAMES
from ingmon.signals.frame import FeatureFrame
from ingmon.signals.rules import RULES_VERSION, ScoreRules, SignalConfig
from ingmon.signals.setups import SETUP_FAMILY, Signal

__all__ = [
    "POINTS",
    "ScoreRecord",
    "confidence_of",
    "evaluate_points",
    "score_id",
    "score_signal",
    "signal_inputs",
]

Inputs = Mapping[str, Any]
Thresholds = Mapping[str, Any]


@dataclass(frozen=True)
class Point:
    """How one rubric point is decided: the inputs it reads, its rule in words, the predicate
    (inputs, thresholds, +1 long / −1 short, setup family) → passed."""

    inputs: tuple[str, ...]
    rule: str
    passes: Callable[[Inputs, Thresholds, int, str], bool]


def _ema_stack(x: Inputs, _: Thresholds, sign: int, __: str) -> bool:
    return bool(
        sign * (x["ema20"] - x["ema50"]) > 0
        and sign * (x["ema50"] - x["ema200"]) > 0
        and sign * (x["close"] - x["ema20"]) > 0
    )


def _htf_slope(x: Inputs, t: Thresholds, sign: int, _: str) -> bool:
    return bool(sign * x["htf_slope_atr"] >= t["htf_slope_min"])


def _adx_trend(x: Inputs, t: Thresholds, sign: int, _: str) -> bool:
    return bool(x["adx"] >= t["adx_min"] and sign * (x["plus_di"] - x["minus_di"]) > 0)


def _delta_confirm(x: Inputs, t: Thresholds, sign: int, _: str) -> bool:
    return bool(sign * x["delta"] > 0 and sign * x["delta_z"] >= t["delta_z_min"])


def _oi_supports_thesis(x: Inputs, t: Thresholds, _: int, family: str) -> bool:
    if family == "continuation":  # new positions carry the move
        return bool(x["oi_change"] > 0)
    if family == "squeeze":  # the crowded side is closing
        return bool(x["oi_change"] < 0)
    # reversal / absorption: the trapped side has just piled in
    return bool(x["oi_change_z_max"] >= t["oi_spike_z"])


def _funding_not_crowded(x: Inputs, t: Thresholds, sign: int, _: str) -> bool:
    return bool(sign * (t["funding_baseline"] - x["funding_8h"]) > 0)


def _liquid_session(x: Inputs, t: Thresholds, _: int, __: str) -> bool:
    first, last = t["liquid_hours_utc"]
    return bool(
        x["weekday"] < 5
        and first <= x["hour_utc"] < last
        and x["hour_of_week_weight"] >= t["liquid_weight_min"]
    )


POINTS: Final[dict[str, Point]] = {
    "ema_stack": Point(
        ("close", "ema20", "ema50", "ema200"),
        "EMA20 > EMA50 > EMA200 and close > EMA20 (short: all reversed)",
        _ema_stack,
    ),
    "htf_slope": Point(
        ("htf_slope_atr",),
        "1h EMA50 slope over 3 h in 1h ATRs ≥ htf_slope_min (short: ≤ −htf_slope_min)",
        _htf_slope,
    ),
    "adx_trend": Point(
        ("adx", "plus_di", "minus_di"),
        "ADX ≥ adx_min and +DI > −DI (short: −DI > +DI)",
        _adx_trend,
    ),
    "delta_confirm": Point(
        ("delta", "delta_z"),
        "bar delta > 0 and its z-score ≥ delta_z_min (short: < 0 and ≤ −delta_z_min)",
        _delta_confirm,
    ),
    "oi_supports_thesis": Point(
        ("oi_change", "oi_change_z_max"),
        "continuation: OI rose over the bar; squeeze: OI fell; reversal/absorption: an OI "
        "change z ≥ oi_spike_z within the last oi_spike_bars bars",
        _oi_supports_thesis,
    ),
    "funding_not_crowded": Point(
        ("funding_8h",),
        "8h-equivalent funding < funding_baseline (short: > funding_baseline)",
        _funding_not_crowded,
    ),
    "liquid_session": Point(
        ("weekday", "hour_utc", "hour_of_week_weight"),
        "weekday bar opening within liquid_hours_utc and hour-of-week weight ≥ liquid_weight_min",
        _liquid_session,
    ),
}
# The inputs each point really needs (oi_change_z_max only for reversal/absorption).
_OPTIONAL_BY_FAMILY: Final = {
    "continuation": {"oi_change_z_max"},
    "squeeze": {"oi_change_z_max"},
    "reversal": {"oi_change"},
    "absorption": {"oi_change"},
}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def evaluate_points(
    inputs: Inputs, thresholds: Thresholds, *, direction: str, setup: str, rules: ScoreRules
) -> dict[str, int | None]:
    """Each rubric point's result: 1 passed, 0 failed, None when an input it needs is missing."""
    sign = 1 if direction == "long" else -1
    family = SETUP_FAMILY[setup]
    results: dict[str, int | None] = {}
    for rubric_point in rules.points:
        point = POINTS[rubric_point.name]
        needed = [n for n in point.inputs if n not in _OPTIONAL_BY_FAMILY[family]]
        if any(_missing(inputs.get(name)) for name in needed):
            results[rubric_point.name] = None
            continue
        results[rubric_point.name] = int(point.passes(inputs, thresholds, sign, family))
    return results


def confidence_of(
    *, score: int, flow_points: int, degraded: bool, feed_error: bool, setup: str, rules: ScoreRules
) -> str:
    """high / medium / low (reference §5.3): reversal and absorption setups, which fade the
    trend, have their own lower cut-offs; a feed in error caps everything at low."""
    if feed_error:
        return "low"
    fading = SETUP_FAMILY[setup] in {"reversal", "absorption"}
    high_min = rules.fade_high_min_score if fading else rules.high_min_score
    medium_min = rules.fade_medium_min_score if fading else rules.medium_min_score
    if score >= high_min:
        if flow_points >= rules.high_min_flow_points and not degraded:
            return "high"
        return "medium"
    if score >= medium_min:
        return "medium"
    return "low"


def score_id(signal_id: str, rules_version: str, config_hash: str) -> str:
    """One audit row per (signal, rules version, configuration)."""
    text = f"{signal_id}|{rules_version}|{config_hash}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _scalar(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def signal_inputs(frame: FeatureFrame, signal: Signal, rules: ScoreRules) -> dict[str, Any]:
    """The raw inputs of every rubric point at the signal bar, as JSON-ready scalars."""
    index = signal.bar_index
    names = (
        "close",
        "ema20",
        "ema50",
        "ema200",
        "htf_slope_atr",
        "adx",
        "plus_di",
        "minus_di",
        "delta",
        "delta_z",
        "oi_change",
        "funding_rate",
        "funding_interval_hours",
        "funding_8h",
        "weekday",
        "hour_utc",
        "hour_of_week_weight",
        "open_interest_age_s",
        "funding_age_s",
    )
    found: dict[str, Any] = {name: _scalar(frame[name][index]) for name in names}
    recent = frame["oi_change_z"][max(0, index - rules.oi_spike_bars + 1) : index + 1]
    finite = recent[np.isfinite(recent)]
    found["oi_change_z_max"] = float(finite.max()) if finite.size else None
    found["session"] = SESSION_NAMES[int(frame.session[index])]
    return found


def _watermarks(signal: Signal, inputs: Inputs) -> dict[str, int | None]:
    """The latest event of each feed the score used: the as-of state behind the record."""
    known_at = signal.bar_close_ms + 1

    def since(age_name: str) -> int | None:
        age = inputs.get(age_name)
        return None if age is None or _missing(age) else known_at - round(float(age) * 1000)

    return {
        "candles": signal.bar_close_ms + 1 - 60_000,
        "open_interest": since("open_interest_age_s"),
        "funding": since("funding_age_s"),
    }


def feed_errors(inputs: Inputs, rules: ScoreRules) -> list[str]:
    """The feeds in error at the signal bar: open interest or funding missing or too old."""
    errors: list[str] = []
    oi_age = inputs.get("open_interest_age_s")
    if oi_age is None or _missing(oi_age) or oi_age > rules.open_interest_error_seconds:
        errors.append("open_interest")
    funding_age = inputs.get("funding_age_s")
    hours = inputs.get("funding_interval_hours")
    if (
        funding_age is None
        or hours is None
        or _missing(funding_age)
        or _missing(hours)
        or funding_age > hours * 3600 + rules.funding_error_extra_seconds
    ):
        errors.append("funding")
    return errors


@dataclass(frozen=True)
class ScoreRecord:
    """The audit of one signal under one rubric: enough to re-derive the score by hand."""

    score_id: str
    signal: Signal
    rules_version: str
    config_hash: str
    code_version: str
    score: int
    points_by_group: dict[str, int]
    confidence: str
    data_quality: str
    components: dict[str, dict[str, Any]]
    inputs: dict[str, Any]
    thresholds: dict[str, Any]
    watermarks: dict[str, int | None]
    notes: list[str]

    def to_row(self) -> dict[str, Any]:
        """The ``scores`` dataset's columns (JSON columns as canonical strings)."""

        def text(value: Any) -> str:
            return json.dumps(value, sort_keys=True, separators=(",", ":"))

        return {
            "score_id": self.score_id,
            "signal_id": self.signal.signal_id,
            "bar_open_time": self.signal.bar_open_ms,
            "setup": self.signal.setup,
            "direction": self.signal.direction,
            "rules_version": self.rules_version,
            "config_hash": self.config_hash,
            "code_version": self.code_version,
            "score": self.score,
            "trend_points": self.points_by_group.get("trend", 0),
            "flow_points": self.points_by_group.get("flow", 0),
            "session_points": self.points_by_group.get("session", 0),
            "confidence": self.confidence,
            "data_quality": self.data_quality,
            "components": text(self.components),
            "inputs": text(self.inputs),
            "thresholds": text(self.thresholds),
            "watermarks": text(self.watermarks),
            "notes": text(self.notes),
        }


def score_signal(
    frame: FeatureFrame,
    signal: Signal,
    config: SignalConfig,
    *,
    code_version: str,
) -> ScoreRecord:
    """Score one signal and build its audit record."""
    rules = config.rules
    inputs = signal_inputs(frame, signal, rules)
    thresholds = rules.thresholds()
    results = evaluate_points(
        inputs, thresholds, direction=signal.direction, setup=signal.setup, rules=rules
    )
    points_by_group: dict[str, int] = {}
    components: dict[str, dict[str, Any]] = {}
    for rubric_point in rules.points:
        value = results[rubric_point.name]
        earned = rubric_point.weight * (value or 0)
        points_by_group[rubric_point.group] = points_by_group.get(rubric_point.group, 0) + earned
        point = POINTS[rubric_point.name]
        components[rubric_point.name] = {
            "group": rubric_point.group,
            "weight": rubric_point.weight,
            "value": value,
            "points": earned,
            "inputs": {name: inputs.get(name) for name in point.inputs},
            "rule": point.rule,
        }
    notes = [f"missing input for {name}" for name, value in results.items() if value is None]
    errors = feed_errors(inputs, rules)
    notes.extend(f"feed in error: {feed}" for feed in errors)
    score = sum(points_by_group.values())
    degraded = any(value is None for value in results.values())
    confidence = confidence_of(
        score=score,
        flow_points=points_by_group.get("flow", 0),
        degraded=degraded,
        feed_error=bool(errors),
        setup=signal.setup,
        rules=rules,
    )
    return ScoreRecord(
        score_id=score_id(signal.signal_id, RULES_VERSION, config.config_hash),
        signal=signal,
        rules_version=RULES_VERSION,
        config_hash=config.config_hash,
        code_version=code_version,
        score=score,
        points_by_group=points_by_group,
        confidence=confidence,
        data_quality="degraded" if degraded else "ok",
        components=components,
        inputs=inputs,
        thresholds=thresholds,
        watermarks=_watermarks(signal, inputs),
        notes=notes,
    )

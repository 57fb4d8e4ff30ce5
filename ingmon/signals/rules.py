"""Every parameter of the setups and the 0–7 rubric, their versions and the config hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Final

from ingmon.schema import INTERVAL_MS, SIGNAL_TIMEFRAMES

__all__ = [
    "DETECTOR_VERSION",
    "RULES_VERSION",
    "DetectorParams",
    "RubricPoint",
    "ScoreRules",
    "SignalConfig",
]

# Bump when a setup's definition or default changes: stored signals say which one found them.
DETECTOR_VERSION: Final = "setups-1"
# Bump when a rubric point, weight, group or cut-off changes: a new version means new audit rows.
RULES_VERSION: Final = "score-1"


@dataclass(frozen=True)
class DetectorParams:
    """Setup parameters on the signal timeframe (defaults: reference §1–2, docs/signals.md)."""

    # indicator lengths
    atr_length: int = 14
    rsi_length: int = 14
    adx_length: int = 14
    band_length: int = 20
    bollinger_std: float = 2.0
    keltner_scalar: float = 1.5
    # z-score baseline: 24 h of signal bars is computed from the timeframe
    baseline_hours: int = 24
    # squeeze fire
    squeeze_min_bars: int = 6
    squeeze_require_acceleration: bool = True
    # short / long squeeze
    squeeze_return_z: float = 2.0
    squeeze_oi_drop: float = -0.005
    squeeze_oi_drop_z: float = 1.5
    squeeze_funding_baseline: float = 0.0001
    squeeze_taker_buy_ratio: float = 0.55
    # exhaustion
    exhaustion_atr_extension: float = 2.5
    exhaustion_relative_volume: float = 3.0
    exhaustion_wick_share: float = 0.5
    exhaustion_rsi_high: float = 70.0
    exhaustion_rsi_low: float = 30.0
    exhaustion_min_conditions: int = 2
    # divergence on confirmed pivots
    pivot_left: int = 5
    pivot_right: int = 5
    divergence_min_bars: int = 5
    divergence_max_bars: int = 60
    # sweep and reclaim
    sweep_atr_buffer: float = 0.05
    # absorption
    absorption_delta_z: float = 2.0
    absorption_relative_volume: float = 1.5
    absorption_max_progress_atr: float = 0.15
    absorption_level_atr: float = 0.25
    absorption_level_bins: int = 2
    # the previous session's volume profile (levels for absorption and sweeps)
    profile_rows: int = 48


@dataclass(frozen=True)
class RubricPoint:
    """One named, direction-aware point of the rubric and the group it counts for."""

    name: str
    group: str  # "trend" | "flow" | "session"
    weight: int = 1


@dataclass(frozen=True)
class ScoreRules:
    """The 0–7 rubric (reference §5.2–5.3): points, thresholds and confidence cut-offs."""

    points: tuple[RubricPoint, ...] = (
        RubricPoint("ema_stack", "trend"),
        RubricPoint("htf_slope", "trend"),
        RubricPoint("adx_trend", "trend"),
        RubricPoint("delta_confirm", "flow"),
        RubricPoint("oi_supports_thesis", "flow"),
        RubricPoint("funding_not_crowded", "flow"),
        RubricPoint("liquid_session", "session"),
    )
    htf_slope_min: float = 0.05  # (EMA50_1h − its value 3 h earlier) / (3 · ATR14_1h)
    adx_min: float = 20.0
    delta_z_min: float = 1.0
    oi_spike_z: float = 1.5
    oi_spike_bars: int = 4
    funding_baseline: float = 0.0001  # 0.01 % per 8 h: Binance's interest component
    liquid_hours_utc: tuple[int, int] = (7, 21)  # London ∪ New York, weekdays
    liquid_weight_min: float = 0.9
    # confidence: high needs this score, medium the lower one (reversal/absorption have own)
    high_min_score: int = 6
    medium_min_score: int = 4
    high_min_flow_points: int = 2
    fade_high_min_score: int = 5
    fade_medium_min_score: int = 3
    # a feed is in error when its newest row is older than this at the bar's close (seconds)
    open_interest_error_seconds: float = 900.0
    funding_error_extra_seconds: float = 1800.0  # beyond the symbol's funding interval

    @property
    def max_score(self) -> int:
        return sum(point.weight for point in self.points)

    def thresholds(self) -> dict[str, Any]:
        """The thresholds an audit row stores (everything but the point list); a fresh copy."""
        return dict(self._thresholds)

    @cached_property
    def _thresholds(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("points")
        values["liquid_hours_utc"] = list(self.liquid_hours_utc)
        return values


@dataclass(frozen=True)
class SignalConfig:
    """What a scoring run needs besides the data: timeframe, setup parameters and rubric."""

    timeframe: str = "15m"
    detector: DetectorParams = field(default_factory=DetectorParams)
    rules: ScoreRules = field(default_factory=ScoreRules)
    # history loaded before the first bar to score: the hour-of-week weight looks 4 weeks back
    warmup_days: int = 29

    def __post_init__(self) -> None:
        if self.timeframe not in SIGNAL_TIMEFRAMES:
            raise ValueError(
                f"invalid timeframe {self.timeframe!r}: expected one of "
                f"{', '.join(SIGNAL_TIMEFRAMES)}"
            )

    @property
    def timeframe_ms(self) -> int:
        return INTERVAL_MS[self.timeframe]

    @property
    def baseline_bars(self) -> int:
        """Signal bars in the z-score baseline (24 h by default)."""
        return max(2, self.detector.baseline_hours * 3_600_000 // self.timeframe_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "timeframe": self.timeframe,
            "detector_version": DETECTOR_VERSION,
            "rules_version": RULES_VERSION,
            "detector": asdict(self.detector),
            "rules": asdict(self.rules),
            "warmup_days": self.warmup_days,
        }

    @cached_property
    def config_hash(self) -> str:
        """sha256 of the canonical JSON of every parameter (sorted keys, no spaces)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

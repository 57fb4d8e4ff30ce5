"""The 0–7 rubric: every point toggled by a minimal input change (long and short, per setup
family), missing inputs, the confidence cut-offs of reference §5.3 worked by hand, and audit
records that an independent re-implementation of the rubric reproduces exactly."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from ingmon.signals.engine import evaluate
from ingmon.signals.rules import ScoreRules, SignalConfig
from ingmon.signals.scoring import confidence_of, evaluate_points, score_signal
from ingmon.signals.setups import SETUPS, Signal, detect
from tests.signals import _scenarios as sc
from tests.signals._market import NOW_MS, demo_market, listing_ms, market_inputs

RULES = ScoreRules()
THRESHOLDS = RULES.thresholds()
NAMES = ("ema_stack", "htf_slope", "adx_trend", "delta_confirm", "oi_supports_thesis")
NAMES += ("funding_not_crowded", "liquid_session")
# The setup families of reference §5.2 (F2), written out here rather than read from the code.
FAMILY = {
    "squeeze_fire": "continuation",
    "short_squeeze": "squeeze",
    "long_squeeze": "squeeze",
    "exhaustion": "reversal",
    "divergence": "reversal",
    "sweep_reclaim": "reversal",
    "absorption": "absorption",
}
GROUP = {"ema_stack": "trend", "htf_slope": "trend", "adx_trend": "trend"}
GROUP |= {"delta_confirm": "flow", "oi_supports_thesis": "flow", "funding_not_crowded": "flow"}
GROUP |= {"liquid_session": "session"}

# Inputs where every point passes, per direction and family (a Wednesday 14:00 UTC bar).
_COMMON = {"weekday": 2.0, "hour_utc": 14.0, "hour_of_week_weight": 1.2}
_LONG = {"close": 105.0, "ema20": 104.0, "ema50": 103.0, "ema200": 100.0}
_LONG |= {"htf_slope_atr": 0.2, "adx": 30.0, "plus_di": 30.0, "minus_di": 10.0}
_LONG |= {"delta": 50.0, "delta_z": 2.0, "funding_8h": -0.0001}
_SHORT = {"close": 95.0, "ema20": 96.0, "ema50": 97.0, "ema200": 100.0}
_SHORT |= {"htf_slope_atr": -0.2, "adx": 30.0, "plus_di": 10.0, "minus_di": 30.0}
_SHORT |= {"delta": -50.0, "delta_z": -2.0, "funding_8h": 0.0003}
_OI = {  # the open-interest picture that supports each family's thesis
    "continuation": {"oi_change": 0.01, "oi_change_z_max": 0.0},
    "squeeze": {"oi_change": -0.01, "oi_change_z_max": 0.0},
    "reversal": {"oi_change": 0.0, "oi_change_z_max": 2.0},
    "absorption": {"oi_change": 0.0, "oi_change_z_max": 2.0},
}


def base(direction: str, setup: str) -> dict[str, Any]:
    """Inputs on which all seven points pass for ``direction`` and ``setup``."""
    side = _LONG if direction == "long" else _SHORT
    return {**_COMMON, **side, **_OI[FAMILY[setup]]}


def points(inputs: dict[str, Any], direction: str, setup: str) -> dict[str, int | None]:
    return evaluate_points(inputs, THRESHOLDS, direction=direction, setup=setup, rules=RULES)


# (point, direction or None for both, families or None for all, passing change, failing change)
FLIPS: list[tuple[str, str | None, set[str] | None, dict[str, float], dict[str, float]]] = [
    ("ema_stack", "long", None, {"close": 104.01}, {"close": 104.0}),
    ("ema_stack", "long", None, {"ema50": 103.99}, {"ema50": 104.0}),
    ("ema_stack", "long", None, {"ema200": 102.99}, {"ema200": 103.0}),
    ("ema_stack", "short", None, {"close": 95.99}, {"close": 96.0}),
    ("ema_stack", "short", None, {"ema50": 96.01}, {"ema50": 96.0}),
    ("ema_stack", "short", None, {"ema200": 97.01}, {"ema200": 97.0}),
    ("htf_slope", "long", None, {"htf_slope_atr": 0.05}, {"htf_slope_atr": 0.0499}),
    ("htf_slope", "short", None, {"htf_slope_atr": -0.05}, {"htf_slope_atr": -0.0499}),
    ("adx_trend", None, None, {"adx": 20.0}, {"adx": 19.99}),
    ("adx_trend", "long", None, {"minus_di": 29.99}, {"minus_di": 30.0}),
    ("adx_trend", "short", None, {"plus_di": 29.99}, {"plus_di": 30.0}),
    ("delta_confirm", "long", None, {"delta_z": 1.0}, {"delta_z": 0.99}),
    ("delta_confirm", "long", None, {"delta": 0.01}, {"delta": 0.0}),
    ("delta_confirm", "short", None, {"delta_z": -1.0}, {"delta_z": -0.99}),
    ("delta_confirm", "short", None, {"delta": -0.01}, {"delta": 0.0}),
    ("oi_supports_thesis", None, {"continuation"}, {"oi_change": 1e-6}, {"oi_change": 0.0}),
    ("oi_supports_thesis", None, {"squeeze"}, {"oi_change": -1e-6}, {"oi_change": 0.0}),
    (
        "oi_supports_thesis",
        None,
        {"reversal", "absorption"},
        {"oi_change_z_max": 1.5},
        {"oi_change_z_max": 1.49},
    ),
    ("funding_not_crowded", "long", None, {"funding_8h": 0.0000999}, {"funding_8h": 0.0001}),
    ("funding_not_crowded", "short", None, {"funding_8h": 0.0001001}, {"funding_8h": 0.0001}),
    ("liquid_session", None, None, {"hour_utc": 7.0}, {"hour_utc": 6.0}),
    ("liquid_session", None, None, {"hour_utc": 20.0}, {"hour_utc": 21.0}),
    ("liquid_session", None, None, {"weekday": 4.0}, {"weekday": 5.0}),
    ("liquid_session", None, None, {"hour_of_week_weight": 0.9}, {"hour_of_week_weight": 0.89}),
]
TOGGLES = [
    pytest.param(
        name, direction, setup, on, off, id=f"{name}-{direction}-{setup}-{next(iter(off))}"
    )
    for name, only_direction, families, on, off in FLIPS
    for direction in ("long", "short")
    for setup in SETUPS
    if only_direction in (None, direction) and (families is None or FAMILY[setup] in families)
]


@pytest.mark.parametrize(("name", "direction", "setup", "on", "off"), TOGGLES)
def test_point_toggles_on_one_input(
    name: str, direction: str, setup: str, on: dict[str, float], off: dict[str, float]
) -> None:
    """One input moved across its threshold turns exactly that point from 1 to 0."""
    inputs = base(direction, setup)
    assert points({**inputs, **on}, direction, setup) == dict.fromkeys(NAMES, 1)
    assert points({**inputs, **off}, direction, setup) == {**dict.fromkeys(NAMES, 1), name: 0}


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("direction", ["long", "short"])
def test_opposite_direction_scores_nothing(direction: str, setup: str) -> None:
    """Inputs that pass every point for one side pass none of the directional ones for the other."""
    other = "short" if direction == "long" else "long"
    result = points(base(direction, setup), other, setup)
    directional = {"ema_stack", "htf_slope", "adx_trend", "delta_confirm", "funding_not_crowded"}
    assert all(result[name] == 0 for name in directional)
    assert result["liquid_session"] == 1  # the session does not depend on direction


# Which inputs each point needs, per family (reference §5.2 table).
NEEDS = {
    "ema_stack": ("close", "ema20", "ema50", "ema200"),
    "htf_slope": ("htf_slope_atr",),
    "adx_trend": ("adx", "plus_di", "minus_di"),
    "delta_confirm": ("delta", "delta_z"),
    "funding_not_crowded": ("funding_8h",),
    "liquid_session": ("weekday", "hour_utc", "hour_of_week_weight"),
}
MISSING = (
    [
        pytest.param(name, field, setup, value, id=f"{field}-{setup}-{value}")
        for name, fields in NEEDS.items()
        for field in fields
        for setup in ("squeeze_fire", "exhaustion")
        for value in (None, math.nan)
    ]
    + [
        pytest.param("oi_supports_thesis", "oi_change", s, None, id=f"oi_change-{s}")
        for s in ("squeeze_fire", "short_squeeze")
    ]
    + [
        pytest.param("oi_supports_thesis", "oi_change_z_max", s, None, id=f"oi_z-{s}")
        for s in ("exhaustion", "absorption")
    ]
)


@pytest.mark.parametrize(("name", "field", "setup", "value"), MISSING)
def test_missing_input_makes_its_point_none(
    name: str, field: str, setup: str, value: float | None
) -> None:
    """A missing (None or NaN) input makes only the point that needs it None."""
    inputs = {**base("long", setup), field: value}
    assert points(inputs, "long", setup) == {**dict.fromkeys(NAMES, 1), name: None}


@pytest.mark.parametrize(
    ("field", "setup"),
    [("oi_change_z_max", "squeeze_fire"), ("oi_change_z_max", "long_squeeze")]
    + [("oi_change", s) for s in ("exhaustion", "divergence", "sweep_reclaim", "absorption")],
)
def test_input_another_family_uses_may_be_missing(field: str, setup: str) -> None:
    """The OI input only the other families read may be missing without degrading anything."""
    inputs = {**base("short", setup), field: None}
    assert points(inputs, "short", setup) == dict.fromkeys(NAMES, 1)


# ---- missing inputs through score_signal --------------------------------------------------------


def _scored_frame() -> tuple[Any, Signal]:
    """A scenario with three days of history and a long squeeze_fire on its last bar."""
    flat = [sc.bar(sc.warmup()[-1].close, sc.warmup()[-1].close, pad=0.6) for _ in range(7)]
    last = flat[-1].close
    scenario = sc.build(sc.warmup(), [*flat, sc.bar(last, last + 3.0, pad=0.05)])
    (signal,) = scenario.signals("squeeze_fire")
    return scenario.frame, signal


FRAME, SIGNAL = _scored_frame()
CONFIG = SignalConfig()


@pytest.mark.parametrize(
    ("column", "name"),
    [
        ("ema200", "ema_stack"),
        ("htf_slope_atr", "htf_slope"),
        ("adx", "adx_trend"),
        ("delta_z", "delta_confirm"),
        ("oi_change", "oi_supports_thesis"),
        ("funding_8h", "funding_not_crowded"),
    ],
)
def test_missing_feature_scores_zero_and_degrades(column: str, name: str) -> None:
    """A NaN feature at the signal bar: its point is null, counts 0, and quality is degraded."""
    full = score_signal(FRAME, SIGNAL, CONFIG, code_version="t")
    values = FRAME[column].copy()
    values[SIGNAL.bar_index] = np.nan
    frame = replace(FRAME, columns={**FRAME.columns, column: values})
    record = score_signal(frame, SIGNAL, CONFIG, code_version="t")
    assert record.components[name]["value"] is None and record.components[name]["points"] == 0
    assert record.data_quality == "degraded"
    assert f"missing input for {name}" in record.notes
    others = {n: c["points"] for n, c in record.components.items() if n != name}
    assert others == {n: c["points"] for n, c in full.components.items() if n != name}
    assert record.score == sum(others.values())


def test_short_history_leaves_the_session_weight_missing() -> None:
    """With three days of history the hour-of-week weight is unknown: the session point is null,
    the record degraded and its confidence never high."""
    record = score_signal(FRAME, SIGNAL, CONFIG, code_version="t")
    assert record.inputs["hour_of_week_weight"] is None
    assert record.components["liquid_session"]["value"] is None
    assert record.data_quality == "degraded" and record.confidence != "high"


# ---- confidence ---------------------------------------------------------------------------------

TREND = ("squeeze_fire", "short_squeeze", "long_squeeze")
FADE = ("exhaustion", "divergence", "sweep_reclaim", "absorption")
# (score, flow points, degraded, feed error, trend-following tag, fading tag), from §5.3:
# high = score ≥ 6 (fade: ≥ 5) with ≥ 2 flow points and quality ok; medium = 4–5 (fade: 3–4),
# or at/above the high cut-off but degraded or short of flow points; low = below; feed error → low.
CONFIDENCE = [
    (7, 3, False, False, "high", "high"),
    (6, 2, False, False, "high", "high"),
    (6, 2, True, False, "medium", "medium"),
    (6, 3, False, True, "low", "low"),
    (5, 2, False, False, "medium", "high"),
    (5, 3, True, False, "medium", "medium"),
    (5, 1, False, False, "medium", "medium"),  # fade: ≥ 5 but one flow point only
    (5, 2, False, True, "low", "low"),
    (4, 2, False, False, "medium", "medium"),
    (4, 0, True, False, "medium", "medium"),
    (3, 3, False, False, "low", "medium"),
    (3, 1, True, False, "low", "medium"),
    (2, 2, False, False, "low", "low"),
    (0, 0, False, False, "low", "low"),
    (7, 3, True, True, "low", "low"),
]


@pytest.mark.parametrize(("score", "flow", "degraded", "error", "trend", "fade"), CONFIDENCE)
@pytest.mark.parametrize("setup", SETUPS)
def test_confidence_cut_offs(
    setup: str, score: int, flow: int, degraded: bool, error: bool, trend: str, fade: str
) -> None:
    """confidence_of follows the §5.3 table, with the fade cut-offs for reversal/absorption."""
    got = confidence_of(
        score=score,
        flow_points=flow,
        degraded=degraded,
        feed_error=error,
        setup=setup,
        rules=RULES,
    )
    assert got == (fade if setup in FADE else trend)


# ---- audit records ------------------------------------------------------------------------------


def rubric(x: dict[str, Any], t: dict[str, Any], direction: str, setup: str) -> dict[str, Any]:
    """The rubric of reference §5.2 and the stored rule strings, re-implemented: name → 1/0/None."""
    s = 1 if direction == "long" else -1
    family = FAMILY[setup]

    def have(*names: str) -> bool:
        return all(x.get(n) is not None and math.isfinite(x[n]) for n in names)

    out: dict[str, Any] = dict.fromkeys(NAMES)
    if have("close", "ema20", "ema50", "ema200"):
        stack = s * x["close"] > s * x["ema20"] > s * x["ema50"] > s * x["ema200"]
        out["ema_stack"] = int(stack)
    if have("htf_slope_atr"):
        out["htf_slope"] = int(s * x["htf_slope_atr"] >= t["htf_slope_min"])
    if have("adx", "plus_di", "minus_di"):
        di = x["plus_di"] > x["minus_di"] if s > 0 else x["minus_di"] > x["plus_di"]
        out["adx_trend"] = int(x["adx"] >= t["adx_min"] and di)
    if have("delta", "delta_z"):
        out["delta_confirm"] = int(s * x["delta"] > 0 and s * x["delta_z"] >= t["delta_z_min"])
    if family in ("continuation", "squeeze") and have("oi_change"):
        rising = x["oi_change"] > 0
        out["oi_supports_thesis"] = int(rising if family == "continuation" else x["oi_change"] < 0)
    if family in ("reversal", "absorption") and have("oi_change_z_max"):
        out["oi_supports_thesis"] = int(x["oi_change_z_max"] >= t["oi_spike_z"])
    if have("funding_8h"):
        f = x["funding_8h"]
        b = t["funding_baseline"]
        out["funding_not_crowded"] = int(f < b if s > 0 else f > b)
    if have("weekday", "hour_utc", "hour_of_week_weight"):
        first, last = t["liquid_hours_utc"]
        out["liquid_session"] = int(
            x["weekday"] <= 4
            and first <= x["hour_utc"] < last
            and x["hour_of_week_weight"] >= t["liquid_weight_min"]
        )
    return out


def feed_error(x: dict[str, Any], t: dict[str, Any]) -> bool:
    """Open interest older than its limit, or funding older than its interval plus grace."""
    oi, age, hours = (
        x.get("open_interest_age_s"),
        x.get("funding_age_s"),
        x.get("funding_interval_hours"),
    )
    if oi is None or oi > t["open_interest_error_seconds"]:
        return True
    return age is None or hours is None or age > hours * 3600 + t["funding_error_extra_seconds"]


def confidence(score: int, flow: int, degraded: bool, error: bool, setup: str) -> str:
    """§5.3 with the v1 override for setups that fade the trend."""
    if error:
        return "low"
    high, medium = (5, 3) if FAMILY[setup] in ("reversal", "absorption") else (6, 4)
    if score >= high:
        return "high" if flow >= 2 and not degraded else "medium"
    return "medium" if score >= medium else "low"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    """The audit rows of 20 days of the simulated market."""
    market = demo_market(days=20)
    start = listing_ms(market, "BTCUSDT")
    inputs = market_inputs(market, "BTCUSDT", start, NOW_MS)
    return [record.to_row() for record in evaluate(inputs, SignalConfig()).scores]


def test_audit_rows_cover_the_rubric(rows: list[dict[str, Any]]) -> None:
    """The 20-day run exercises every point both ways, missing inputs and several setups."""
    seen: dict[str, set[Any]] = {name: set() for name in NAMES}
    for row in rows:
        for name, component in json.loads(row["components"]).items():
            seen[name].add(component["value"])
    assert all({0, 1} <= values for values in seen.values()), seen
    assert None in set().union(*seen.values())
    assert len({row["setup"] for row in rows}) >= 5
    assert {row["confidence"] for row in rows} >= {"low", "medium"}


def test_audit_rows_reproduce_their_scores(rows: list[dict[str, Any]]) -> None:
    """Every stored component, group total, score and confidence follows from the stored
    inputs and thresholds by the independent rubric above."""
    assert rows
    for row in rows:
        x, t = json.loads(row["inputs"]), json.loads(row["thresholds"])
        components = json.loads(row["components"])
        expected = rubric(x, t, row["direction"], row["setup"])
        assert {n: c["value"] for n, c in components.items()} == expected, row["signal_id"]
        groups = {"trend": 0, "flow": 0, "session": 0}
        for name, value in expected.items():
            groups[GROUP[name]] += value or 0
            assert components[name]["points"] == (value or 0)
            assert components[name]["group"] == GROUP[name]
        assert (row["trend_points"], row["flow_points"], row["session_points"]) == (
            groups["trend"],
            groups["flow"],
            groups["session"],
        )
        assert row["score"] == sum(groups.values()) == sum(c["points"] for c in components.values())
        assert 0 <= row["score"] <= 7
        degraded = any(value is None for value in expected.values())
        assert row["data_quality"] == ("degraded" if degraded else "ok")
        error = feed_error(x, t)
        assert row["confidence"] == confidence(
            row["score"], groups["flow"], degraded, error, row["setup"]
        ), row["signal_id"]


def test_detect_then_score_matches_evaluate() -> None:
    """score_signal on detect's signals gives the records evaluate stores (same rows)."""
    market = demo_market(days=6)
    inputs = market_inputs(market, "BTCUSDT", listing_ms(market, "BTCUSDT"), NOW_MS)
    run = evaluate(inputs, CONFIG)
    again = [score_signal(run.frame, s, CONFIG, code_version="") for s in detect(run.frame, CONFIG)]
    assert [r.to_row() for r in again] == [r.to_row() for r in run.scores]

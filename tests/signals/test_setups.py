"""Each setup fires on a hand-built market where the answer is obvious and stays quiet on its
near-miss twin (which differs in the one condition that matters). The markets go the real way:
1m bars → MarketInputs → build_features → detect, after three UTC days of seeded random walk."""

from __future__ import annotations

import numpy as np
import pytest

from tests.signals import _scenarios as sc

HISTORY = sc.warmup()
LAST = HISTORY[-1].close
P = round(LAST, 2)
LEVELS = sc.build(HISTORY, [sc.bar(LAST, LAST)]).frame.levels_at(len(HISTORY))


def _one(signals: list, direction: str | None = None) -> object:
    """The single signal (of ``direction``) in ``signals``."""
    found = [s for s in signals if direction is None or s.direction == direction]
    assert len(found) == 1, found
    return found[0]


# ---- squeeze fire -------------------------------------------------------------------------------


def _squeeze(flat_bars: int, move: float) -> sc.Scenario:
    """``flat_bars`` wide-ranging bars that close where they open (the first dilutes the random
    walk's Bollinger width, the rest are squeezed), then one bar that moves ``move``."""
    flat = [sc.bar(LAST, LAST, pad=0.6) for _ in range(flat_bars)]
    return sc.build(HISTORY, [*flat, sc.bar(LAST, LAST + move, pad=0.05)])


@pytest.mark.parametrize(("move", "direction"), [(-3.0, "short"), (3.0, "long")])
def test_squeeze_fire_after_six_squeezed_bars(move: float, direction: str) -> None:
    """Six squeezed bars then an expansion bar fire squeeze_fire its way, stopped at the range."""
    scenario = _squeeze(7, move)
    on = scenario.frame["squeeze_on"][scenario.first :].astype(int).tolist()
    assert on == [0, 1, 1, 1, 1, 1, 1, 0]
    fire = _one(scenario.signals("squeeze_fire"))
    assert fire.bar_index == scenario.first + 7
    assert fire.direction == direction
    assert fire.reasons["squeeze_bars"] == 6
    high, low = round(P + 0.6, 2), round(P - 0.6, 2)
    assert fire.levels == {"squeeze_range_high": high, "squeeze_range_low": low}
    assert fire.stop_price == (low if direction == "long" else high)
    assert fire.level_price == (high if direction == "long" else low)
    momentum = scenario.frame["momentum"]
    sign = 1 if direction == "long" else -1
    assert sign * momentum[fire.bar_index] > 0
    assert sign * (momentum[fire.bar_index] - momentum[fire.bar_index - 1]) > 0


@pytest.mark.parametrize("move", [-3.0, 3.0])
def test_squeeze_fire_quiet_after_five_squeezed_bars(move: float) -> None:
    """The twin with one flat bar fewer (five squeezed bars) releases without a signal."""
    scenario = _squeeze(6, move)
    assert scenario.frame["squeeze_on"][scenario.first :].astype(int).tolist() == [
        0,
        *[1] * 5,
        0,
    ]
    assert scenario.signals("squeeze_fire") == []


# ---- short squeeze / long squeeze ---------------------------------------------------------------


def _positioning(sign: int, *, oi_change: float, funding: float) -> sc.Scenario:
    """One 3 % bar (up for sign +1) on 70 %/30 % taker buying with the given OI change and
    funding settled at the start of the day."""
    decisive = sc.bar(LAST, LAST * (1 + 0.03 * sign), volume=200, delta=80.0 * sign)
    decisive = sc.Bar(**{**decisive.__dict__, "oi_change": oi_change})
    return sc.build(HISTORY, [decisive], funding_rate=funding)


@pytest.mark.parametrize(
    ("sign", "setup", "direction", "funding"),
    [(1, "short_squeeze", "long", -0.0002), (-1, "long_squeeze", "short", 0.0003)],
)
def test_positioning_squeeze_fires(sign: int, setup: str, direction: str, funding: float) -> None:
    """Return z ≥ 2, OI −1 %, funding on the squeezed side and taker flow the move's way fire."""
    scenario = _positioning(sign, oi_change=-0.01, funding=funding)
    signal = _one(scenario.signals(setup))
    assert (signal.bar_index, signal.direction) == (scenario.first, direction)
    bars = scenario.frame.bars
    assert signal.stop_price == (bars.low if sign > 0 else bars.high)[scenario.first]
    assert sign * signal.reasons["return_z"] >= 2.0
    assert signal.reasons["oi_change"] == pytest.approx(-0.01)
    assert signal.reasons["funding_8h"] == funding
    assert signal.reasons["taker_buy_ratio"] == pytest.approx(0.5 + 0.2 * sign)


@pytest.mark.parametrize(
    ("sign", "setup", "oi_change", "funding"),
    [
        (1, "short_squeeze", 0.01, -0.0002),  # OI rising: new longs, not shorts covering
        (1, "short_squeeze", -0.01, 0.0003),  # funding above the baseline: longs crowded
        (-1, "long_squeeze", 0.01, 0.0003),
        (-1, "long_squeeze", -0.01, -0.0002),
    ],
)
def test_positioning_squeeze_quiet_on_twin(
    sign: int, setup: str, oi_change: float, funding: float
) -> None:
    """The same bar with OI rising, or funding on the wrong side of the baseline, is quiet."""
    scenario = _positioning(sign, oi_change=oi_change, funding=funding)
    assert scenario.signals(setup) == []


# ---- exhaustion ---------------------------------------------------------------------------------


def _exhaustion(next_close: float) -> sc.Scenario:
    """A climb, then a climax bar (new high, 6× volume, long upper wick), then ``next_close``."""
    climb = sc.path(LAST, [LAST + 0.3, LAST + 0.6, LAST + 0.9])
    top = LAST + 0.9
    climax = sc.bar(top, top + 0.2, high=top + 1.5, volume=600)
    return sc.build(HISTORY, [*climb, climax, sc.bar(top + 0.2, next_close)])


def test_exhaustion_fires_on_confirmation_bar() -> None:
    """A climax top confirmed by a close below its midpoint is a short on the confirming bar."""
    scenario = _exhaustion(LAST + 1.2)
    signal = _one(scenario.signals("exhaustion"))
    climax = scenario.first + 3
    assert (signal.bar_index, signal.direction) == (climax + 1, "short")
    high = scenario.frame.bars.high[climax]
    assert high == round(P + 2.4, 2)
    assert (signal.stop_price, signal.level_kind, signal.level_price) == (
        high,
        "climax_high",
        high,
    )
    low = scenario.frame.bars.low[climax]
    assert low == round(LAST + 0.85, 2)
    assert signal.levels["climax_midpoint"] == pytest.approx((high + low) / 2)
    assert signal.target_price == pytest.approx(scenario.frame["ema20"][climax + 1])
    assert {"climactic_volume", "rejection_wick"} <= set(signal.reasons["conditions"])


def test_exhaustion_quiet_without_confirmation() -> None:
    """The same climax followed by a close above its midpoint gives no exhaustion signal."""
    assert _exhaustion(LAST + 1.9).signals("exhaustion") == []


# ---- divergence ---------------------------------------------------------------------------------

STEEP = [1.0] * 6  # +6 in six straight up-closes: RSI high
CHOP = [0.8, -0.3] * 4 + [0.8]  # +2.8 in nine bars with down-closes: RSI lower


def _divergence(first: list[float], second: list[float]) -> tuple[sc.Scenario, int, int]:
    """Rise ``first`` to pivot A, fall six bars, rise ``second`` to a higher pivot B, fall six
    bars (positive delta throughout, so the session CVD only rises). Returns (scenario, A, B)."""
    moves = [-0.2] * 4 + first + [-0.4] * 6 + second + [-0.4] * 6
    peak_a = 4 + len(first) - 1
    peak_b = peak_a + 6 + len(second)
    bars, close = [], LAST
    for number, move in enumerate(moves):
        wick = close + move + 0.2 if number in (peak_a, peak_b) else None
        bars.append(sc.bar(close, close + move, high=wick, delta=5.0))
        close += move
    scenario = sc.build(HISTORY, bars)
    return scenario, scenario.first + peak_a, scenario.first + peak_b


def test_divergence_fires_pivot_right_bars_after_the_higher_high() -> None:
    """A higher pivot high on lower RSI is a short exactly pivot_right bars after the new pivot."""
    scenario, a, b = _divergence(STEEP, CHOP)
    high, rsi = scenario.frame.bars.high, scenario.frame["rsi"]
    assert high[b] > high[a] and rsi[b] < rsi[a]
    signal = _one(scenario.signals("divergence"), "short")
    right = sc.CONFIG.detector.pivot_right
    assert signal.bar_index == b + right
    assert (signal.stop_price, signal.level_kind, signal.level_price) == (
        high[b],
        "pivot_high",
        high[b],
    )
    assert signal.levels == {"previous_pivot": high[a]}
    assert signal.reasons["oscillators"] == ["rsi"]
    assert signal.reasons["pivot_bars_apart"] == b - a


@pytest.mark.parametrize("offset", [0, 1, 4])
def test_divergence_never_signalled_before_the_pivot_is_confirmed(offset: int) -> None:
    """On the data known at bars B .. B + R − 1 there is no divergence yet (no lookahead)."""
    scenario, _, b = _divergence(STEEP, CHOP)
    prefix = scenario.inputs.until(scenario.end_of(b + offset))
    assert [
        s for s in scenario.signals("divergence", inputs=prefix) if s.direction == "short"
    ] == []
    known = scenario.inputs.until(scenario.end_of(b + sc.CONFIG.detector.pivot_right))
    assert _one(scenario.signals("divergence", inputs=known), "short").bar_index == b + 5


def test_divergence_quiet_when_rsi_confirms_the_high() -> None:
    """The twin with the steep rally second (higher high on higher RSI) gives no short."""
    scenario, a, b = _divergence(CHOP, STEEP)
    high, rsi = scenario.frame.bars.high, scenario.frame["rsi"]
    assert high[b] > high[a] and rsi[b] > rsi[a]
    assert [s for s in scenario.signals("divergence") if s.direction == "short"] == []


# ---- sweep and reclaim --------------------------------------------------------------------------


def _sweep(high_above: float, close_vs_level: float) -> tuple[sc.Scenario, float]:
    """Climb to 0.3 below the previous session's high, then a bar reaching ``high_above`` over
    it and closing ``close_vs_level`` from it."""
    level = LEVELS["session_high"]
    approach = sc.path(LAST, list(np.linspace(LAST, level - 0.3, 7)[1:]), pad=0.05)
    sweep = sc.bar(level - 0.3, level + close_vs_level, high=level + high_above)
    return sc.build(HISTORY, [*approach, sweep]), level


def test_sweep_reclaim_fires_on_close_back_below_the_session_high() -> None:
    """A bar through the previous session's high by ≥ ε that closes back below it is a short."""
    scenario, level = _sweep(0.3, -0.2)
    signal = _one(scenario.signals("sweep_reclaim"), "short")
    index = scenario.first + 6
    assert signal.bar_index == index
    assert (signal.level_kind, signal.level_price) == ("session_high", level)
    buffer = max(sc.TICK, 0.05 * scenario.frame["atr"][index])
    assert signal.stop_price == pytest.approx(round(level + 0.3, 2) + buffer, abs=1e-9)
    assert signal.reasons["swept_by"] == pytest.approx(0.3)
    assert signal.target_price == LEVELS["poc"]


@pytest.mark.parametrize(
    ("high_above", "close_vs_level"),
    [(0.3, 0.1), (0.01, -0.2)],  # closes above the level; pokes through by less than ε
    ids=["closes-above", "swept-by-less-than-epsilon"],
)
def test_sweep_reclaim_quiet_on_twin(high_above: float, close_vs_level: float) -> None:
    """Closing above the swept high, or poking through it by less than ε, gives no short."""
    scenario, _ = _sweep(high_above, close_vs_level)
    assert [s for s in scenario.signals("sweep_reclaim") if s.direction == "short"] == []


# ---- absorption ---------------------------------------------------------------------------------


def _absorption(price: float, progress: float) -> sc.Scenario:
    """Drift to ``price``, then a bar with 4× volume and +200 delta that moves ``progress``."""
    approach = sc.path(LAST, list(np.linspace(LAST, price, 5)[1:]), pad=0.05)
    heavy = sc.bar(price, price + progress, pad=0.1, volume=400, delta=200)
    return sc.build(HISTORY, [*approach, heavy])


def test_absorption_fires_at_the_previous_session_poc() -> None:
    """Heavy buying that barely moves price at the previous session's POC is a short."""
    poc = LEVELS["poc"]
    scenario = _absorption(poc, 0.02)
    signal = _one(scenario.signals("absorption"))
    index = scenario.first + 4
    assert (signal.bar_index, signal.direction) == (index, "short")
    assert (signal.level_kind, signal.level_price) == ("poc", poc)
    assert signal.stop_price == round(poc + 0.12, 2)
    frame = scenario.frame
    assert frame["delta_z"][index] >= 2.0 and frame["relative_volume"][index] >= 1.5
    assert frame["progress_atr"][index] <= 0.15
    assert signal.reasons["distance_to_level"] == pytest.approx(0.02)


def test_absorption_quiet_far_from_every_level() -> None:
    """The same heavy bar three points above the previous session's high is quiet."""
    scenario = _absorption(LEVELS["session_high"] + 3.0, 0.02)
    index = scenario.first + 4
    distances = [abs(v - scenario.frame.bars.close[index]) for v in LEVELS.values()]
    assert min(distances) > 0.25 * scenario.frame["atr"][index] + 1.0
    assert scenario.signals("absorption") == []


def test_absorption_quiet_when_price_moves() -> None:
    """The same heavy bar at the POC moving ≥ 0.15 ATR with the flow is quiet."""
    scenario = _absorption(LEVELS["poc"], 0.15)
    assert scenario.frame["progress_atr"][scenario.first + 4] >= 0.15
    assert scenario.signals("absorption") == []


@pytest.mark.parametrize("direction", ["long", "short"])
def test_a_stop_or_target_on_the_wrong_side_of_the_close_is_dropped(direction: str) -> None:
    """A signal never carries a stop that does not protect it or a target already passed (an
    EMA20 target above a short's close, say): such levels become None; sound ones are kept."""
    from ingmon.signals import setups

    frame = _exhaustion(LAST + 1.2).frame
    index = len(frame) - 1
    close = float(frame.bars.close[index])
    sign = 1.0 if direction == "long" else -1.0
    wrong = setups._make(
        frame, "15m", "exhaustion", direction, index,
        stop_price=close + sign, target_price=close - sign,
    )  # fmt: skip
    assert (wrong.stop_price, wrong.target_price) == (None, None)
    right = setups._make(
        frame, "15m", "exhaustion", direction, index,
        stop_price=close - sign, target_price=close + sign,
    )  # fmt: skip
    assert (right.stop_price, right.target_price) == (close - sign, close + sign)
    at_close = setups._make(frame, "15m", "exhaustion", direction, index, stop_price=close)
    assert at_close.stop_price is None

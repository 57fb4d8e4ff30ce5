"""Aggregate-trade quantities: a power-law tail with round-lot clusters.

The skeleton and the trade generator both call ``trade_quantities`` with the same inputs and
get the same integers (one random stream per symbol-day), so the skeleton knows each minute's
exact volume — the candles' volume — without keeping a day of trades in memory.
"""

from __future__ import annotations

import numpy as np

from ingmon.exchange._model import STREAM_SIZES, FloatArray, IntArray, SymbolModel, rng_for

# A light body of ordinary trades and a power-law tail of large ones (a mixture, like the
# retail/institutional split of real tapes): TAIL_SHARE of trades come from a Pareto with index
# SIZE_TAIL_ALPHA starting TAIL_START× above the body's mean. Real BTC/ETH trade sizes have a
# tail index ≈ 1.3–2 (Gabaix et al. 2003, 2006) and the top 1 % of trades carry 30–50 % of the
# notional (issue 8): here the top 1 % are the upper third of the tail, ≈ 37 % of the notional.
SIZE_TAIL_ALPHA = 1.6
TAIL_SHARE = 0.03
TAIL_START = 12.0
_BODY_ALPHA = 2.5
# Mean of a unit draw before scaling: body mean s, tail mean TAIL_START·s·α/(α−1).
_BODY_MEAN = 1.0 / (
    (1.0 - TAIL_SHARE) + TAIL_SHARE * TAIL_START * SIZE_TAIL_ALPHA / (SIZE_TAIL_ALPHA - 1.0)
)
_BODY_MIN = _BODY_MEAN * (_BODY_ALPHA - 1.0) / _BODY_ALPHA
_TAIL_MIN = _BODY_MEAN * TAIL_START
# Trades are often typed in by hand: one significant digit (1–10 × 10**k steps) — a share of the
# large trades and of the body's above-average ones.
ROUND_LOT_SHARE = 0.4
BODY_ROUND_LOT_SHARE = 0.2


def trade_quantities(model: SymbolModel, day: int, qty_mean_steps: FloatArray) -> IntArray:
    """Quantities (true steps, ≥ 1) of the day's trades; ``qty_mean_steps`` holds each trade's
    mean size (its minute's mean, repeated per trade)."""
    total = int(qty_mean_steps.size)
    rng = rng_for(model.seed, model.key, STREAM_SIZES, day)
    kind_draw = rng.random(total)
    large = kind_draw < TAIL_SHARE
    # Inverse-CDF Pareto draws: x_min · u^(−1/α); the tail only for the large trades.
    unit = rng.random(total) ** (-1.0 / _BODY_ALPHA) * _BODY_MIN
    unit[large] = rng.random(int(large.sum())) ** (-1.0 / SIZE_TAIL_ALPHA) * _TAIL_MIN
    qty = np.clip(np.rint(qty_mean_steps * unit), 1, model.max_qty_steps)
    # kind_draw, rescaled within each kind, is a fresh uniform for the round-lot decision.
    snap = np.where(
        large,
        kind_draw < TAIL_SHARE * ROUND_LOT_SHARE,
        (unit > 1.0) & (kind_draw - TAIL_SHARE < (1.0 - TAIL_SHARE) * BODY_ROUND_LOT_SHARE),
    ) & (qty >= 10)
    if snap.any():
        big = qty[snap]
        magnitude = 10.0 ** np.floor(np.log10(big))
        # The nearest one-significant-digit quantity: 1–10 × 10**k.
        qty[snap] = np.clip(np.rint(big / magnitude) * magnitude, 1, model.max_qty_steps)
    quantities: IntArray = qty.astype(np.int64)
    return quantities

"""Aggregate-trade quantities: a power-law tail with round-lot clusters.

The skeleton and the trade generator both call ``trade_quantities`` with the same inputs and
get the same integers (one random stream per symbol-day), so the skeleton knows each minute's
exact volume — the candles' volume — without keeping a day of trades in memory.
"""

from __future__ import annotations

import numpy as np

from ingmon.exchange._model import STREAM_SIZES, FloatArray, IntArray, SymbolModel, rng_for

# Pareto tail index of trade sizes. Real BTC/ETH perpetual trade sizes have α ≈ 1.3–2 (Gabaix et
# al. 2003 "A theory of power-law distributions in financial market fluctuations"); with the
# round-lot snapping below the top 1 % of trades carry ≈ 30–50 % of the notional.
SIZE_TAIL_ALPHA = 1.33
# Classic Pareto with minimum x_m has mean x_m·α/(α−1); the cap at model.max_qty_steps (5000× the
# mean) trims the mean by ~2 %, which _MEAN_CORRECTION restores.
_MEAN_CORRECTION = 1.02
_X_MIN = (SIZE_TAIL_ALPHA - 1.0) / SIZE_TAIL_ALPHA * _MEAN_CORRECTION
# Trades above this multiple of the mean size are often typed in by hand: 1, 2, 5 × 10**k steps.
ROUND_LOT_MIN_MULTIPLE = 4.0
ROUND_LOT_SHARE = 0.6
_MANTISSAS = np.array([1.0, 2.0, 5.0, 10.0])


def trade_quantities(model: SymbolModel, day: int, qty_mean_steps: FloatArray) -> IntArray:
    """Quantities (true steps, ≥ 1) of the day's trades; ``qty_mean_steps`` holds each trade's
    mean size (its minute's mean, repeated per trade)."""
    total = int(qty_mean_steps.size)
    rng = rng_for(model.seed, model.key, STREAM_SIZES, day)
    unit = (rng.pareto(SIZE_TAIL_ALPHA, total) + 1.0) * _X_MIN
    snap_draw = rng.random(total)
    qty = np.clip(np.rint(qty_mean_steps * unit), 1, model.max_qty_steps)
    snap = (unit >= ROUND_LOT_MIN_MULTIPLE) & (snap_draw < ROUND_LOT_SHARE) & (qty >= 10)
    if snap.any():
        big = qty[snap]
        magnitude = 10.0 ** np.floor(np.log10(big))
        mantissa = big / magnitude
        nearest = _MANTISSAS[np.abs(mantissa[:, None] - _MANTISSAS[None, :]).argmin(axis=1)]
        qty[snap] = np.clip(nearest * magnitude, 1, model.max_qty_steps)
    quantities: IntArray = qty.astype(np.int64)
    return quantities

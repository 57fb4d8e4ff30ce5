"""Price levels a trader sees on a session's volume profile: POC, value area, HVNs, swings.

The profile is the one a user can rebuild from the served 1m candles of the session (one UTC day):
each minute's volume sits at its close. Prices are in true ticks (price / tick_size). Bins are
PROFILE_ROWS rows over the closes' range: width w = ceil((max − min + 1) / PROFILE_ROWS) ticks,
bin i covers [min + i·w, min + (i+1)·w).
- poc: centre of the fullest bin, floor(min + (2i + 1)·w / 2); ties → the lowest bin;
- vah / val: upper / lower edge of the 70 % value area grown one row at a time from the POC
  towards the fuller neighbour (CBOT single-row; ties go up);
- hvn: centres of up to two other local maxima of the [1, 2, 1]/4-smoothed profile (more than one
  bin from the POC) holding at least HVN_MIN_SHARE of the smoothed peak;
- swing_high / swing_low: the highest / lowest 1m close of the session.
(reference/signals-and-backtest-semantics.md §3.3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ingmon.exchange._model import IntArray

PROFILE_ROWS = 48
VALUE_AREA_SHARE = 0.70
HVN_MIN_SHARE = 0.5

Profile = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Levels:
    """A session's levels in true ticks, with the profile's bin width."""

    bin_ticks: int
    kinds: tuple[str, ...]
    prices_ticks: tuple[int, ...]


NO_LEVELS = Levels(bin_ticks=1, kinds=(), prices_ticks=())


def session_levels(close_ticks: IntArray, volume_steps: IntArray) -> Levels:
    """Levels of one session from its minutes' closes and volumes."""
    if close_ticks.size == 0 or int(volume_steps.sum()) == 0:
        return NO_LEVELS
    low = int(close_ticks.min())
    high = int(close_ticks.max())
    width = max(1, -(-(high - low + 1) // PROFILE_ROWS))
    rows = (high - low) // width + 1
    profile: Profile = np.asarray(
        np.bincount(
            (close_ticks - low) // width, weights=volume_steps.astype(np.float64), minlength=rows
        ),
        dtype=np.float64,
    )
    poc = int(profile.argmax())
    below, above = _value_area(profile, poc)
    kinds = ["poc", "vah", "val"]
    prices = [low + (2 * poc + 1) * width // 2, low + (above + 1) * width, low + below * width]
    for node in _high_volume_nodes(profile, poc):
        kinds.append("hvn")
        prices.append(low + (2 * node + 1) * width // 2)
    kinds += ["swing_high", "swing_low"]
    prices += [high, low]
    return Levels(bin_ticks=width, kinds=tuple(kinds), prices_ticks=tuple(prices))


def _value_area(profile: Profile, poc: int) -> tuple[int, int]:
    """Lowest and highest bin of the value area around ``poc``."""
    target = VALUE_AREA_SHARE * float(profile.sum())
    below = above = poc
    held = float(profile[poc])
    while held < target and (below > 0 or above < profile.size - 1):
        up = float(profile[above + 1]) if above < profile.size - 1 else -1.0
        down = float(profile[below - 1]) if below > 0 else -1.0
        if up >= down:
            above += 1
            held += up
        else:
            below -= 1
            held += down
    return below, above


def _high_volume_nodes(profile: Profile, poc: int) -> list[int]:
    """Up to two local maxima of the smoothed profile besides the POC, fullest first."""
    padded = np.concatenate(([0.0], profile, [0.0]))
    smooth = (padded[:-2] + 2.0 * padded[1:-1] + padded[2:]) / 4.0
    if smooth.size < 3:
        return []
    inner = np.arange(1, smooth.size - 1)
    peaks = inner[(smooth[inner] > smooth[inner - 1]) & (smooth[inner] >= smooth[inner + 1])]
    peaks = peaks[(np.abs(peaks - poc) > 1) & (smooth[peaks] >= HVN_MIN_SHARE * smooth.max())]
    ordered = peaks[np.argsort(-smooth[peaks], kind="stable")]
    return [int(node) for node in ordered[:2]]

"""Signal engine: features, volume profiles, setups and the 0–7 score with its audit."""

from __future__ import annotations

"""``make demo``: the end-to-end path on embedded defaults, as far as the landed features reach."""

from __future__ import annotations

from ingmon.config import Settings

__all__ = ["run_demo"]


def run_demo(settings: Settings, *, days: int, seed: int) -> int:
    """Placeholder until the local exchange and backfill land."""
    raise NotImplementedError

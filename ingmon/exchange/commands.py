"""Subcommands of the `ingmon` CLI that belong to ingmon.exchange."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add this package's subcommands to the `ingmon` parser (none yet)."""

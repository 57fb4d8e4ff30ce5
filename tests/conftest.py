"""Shared test set-up: no INGMON_* variable of the developer's shell leaks into a test."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_ingmon_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("INGMON_"):
            monkeypatch.delenv(name)

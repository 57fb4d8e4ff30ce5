"""The JSON API and ``/metrics/prometheus``: ``ROUTES`` for ``panel serve --plugins ingmon.api``.

The modules, from the state files outward: ``state`` (what the worker wrote, judged at an
instant), ``documents`` (the ``/api/health``, ``/api/metrics`` and ``/api/freshness`` documents),
``queries`` (cached lake reads for ``/api/signals`` and ``/api/backtests``), ``params`` (query
parameters), ``openapi`` (the OpenAPI 3.1 document) and ``handlers`` (Tornado, the only one that
imports it). The document builders are plain functions of the settings and ``now_ms``, so the
dashboard shows exactly what the API answers without loading the web handlers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingmon.api.documents import (
        COMPONENTS,
        STATUSES,
        format_duration,
        freshness_document,
        health_document,
        metrics_document,
    )
    from ingmon.api.handlers import ROUTES, openapi_document
    from ingmon.api.params import Param
    from ingmon.api.queries import backtest_document, backtests_page, signals_page
    from ingmon.api.state import MonitorState, WorkerTick, monitor_state

__all__ = [
    "COMPONENTS",
    "ROUTES",
    "STATUSES",
    "MonitorState",
    "Param",
    "WorkerTick",
    "backtest_document",
    "backtests_page",
    "format_duration",
    "freshness_document",
    "health_document",
    "metrics_document",
    "monitor_state",
    "openapi_document",
    "signals_page",
]

# Names are imported on first use (PEP 562), as in ingmon.backtest: the dashboard reads the
# documents without loading Tornado's handlers, and Panel's `--plugins` lookup of ROUTES loads them.
_HOME = {
    "backtest_document": "ingmon.api.queries",
    "backtests_page": "ingmon.api.queries",
    "COMPONENTS": "ingmon.api.documents",
    "format_duration": "ingmon.api.documents",
    "freshness_document": "ingmon.api.documents",
    "health_document": "ingmon.api.documents",
    "metrics_document": "ingmon.api.documents",
    "monitor_state": "ingmon.api.state",
    "MonitorState": "ingmon.api.state",
    "openapi_document": "ingmon.api.handlers",
    "Param": "ingmon.api.params",
    "ROUTES": "ingmon.api.handlers",
    "signals_page": "ingmon.api.queries",
    "STATUSES": "ingmon.api.documents",
    "WorkerTick": "ingmon.api.state",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value

"""The OpenAPI 3.1 document of the API: the JSON Schema of every answer, an operation per route.

Pure data built from the route table (:class:`Endpoint`), with no web framework behind it; the
handlers serve it at ``/api/openapi.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from ingmon import __version__
from ingmon.api.documents import COMPONENTS, STATUSES
from ingmon.api.params import Param
from ingmon.api.queries import AUDIT_JSON

__all__ = ["Endpoint", "RouteHandler", "build_openapi"]


class RouteHandler(Protocol):
    """What the document reads of a route's handler class."""

    PARAMETERS: ClassVar[tuple[Param, ...]]
    requires_login: ClassVar[bool]


H_co = TypeVar("H_co", bound=RouteHandler, covariant=True)


@dataclass(frozen=True)
class Endpoint(Generic[H_co]):
    """One route: its handler class and how the OpenAPI document describes it."""

    template: str  # OpenAPI path template: /api/backtests/{run_id}
    handler: type[H_co]
    summary: str
    description: str
    schema: str  # the response schema in components/schemas, or the media type for non-JSON
    errors: tuple[int, ...] = (400, 401)  # besides 405 and 500, which every route may answer
    path_parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def pattern(self) -> str:
        return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$"


# JSON Schema building blocks (OpenAPI 3.1 = JSON Schema 2020-12).
def _obj(properties: Mapping[str, Any], *, optional: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def _maybe(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": dict(schema)}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TIME = _maybe("string", format="date-time")
_STATUS = {"type": "string", "enum": ["ok", "warn", "error", "unknown"]}
_COUNTS = _obj(dict.fromkeys(STATUSES, _INT))
_TALLY = {"type": "object", "additionalProperties": _INT}
_FREE = {"type": "object"}
_PAGE = {
    "total": _INT,
    "limit": _INT,
    "offset": _INT,
    "next_offset": _maybe("integer"),
    "next": _maybe("string"),
}


def _schemas() -> dict[str, Any]:
    component = _obj(
        {
            "status": _STATUS,
            "summary": _STR,
            "hint": _maybe("string"),
            "as_of": _MAYBE_TIME,
            "age_seconds": _maybe("number"),
        }
    )
    series = _obj(
        {
            "dataset": _STR,
            "param": _maybe("string"),
            "symbol": _STR,
            "status": _STATUS,
            "rows": _INT,
            "first_event_at": _MAYBE_TIME,
            "last_event_at": _MAYBE_TIME,
            "last_batch_written_at": _MAYBE_TIME,
            "freshness": _obj(
                {
                    "status": _STATUS,
                    "last_event_close_at": _MAYBE_TIME,
                    "age_seconds": _maybe("number"),
                    "warn_seconds": _NUM,
                    "error_seconds": _NUM,
                }
            ),
            "latency": _obj(
                {
                    "status": _STATUS,
                    "batches": _INT,
                    "backfill_batches": _INT,
                    "last_seconds": _maybe("number"),
                    "p50_seconds": _maybe("number"),
                    "p95_seconds": _maybe("number"),
                    "warn_seconds": _NUM,
                    "error_seconds": _NUM,
                }
            ),
            "cadence": _obj(
                {
                    "status": _STATUS,
                    "expected_seconds": _NUM,
                    "batches": _INT,
                    "last_interval_seconds": _maybe("number"),
                    "median_interval_seconds": _maybe("number"),
                    "max_interval_seconds": _maybe("number"),
                    "deviation_seconds": _maybe("number"),
                    "deviation_ratio": _maybe("number"),
                }
            ),
            "gaps": _INT,
            "missing": _INT,
            "exchange_gaps": _INT,
            "duplicates": _INT,
            "corrupt_files": _list(_STR),
            "problems": _list(_FREE),
        }
    )
    symbol_signals = _obj(
        {
            "symbol": _STR,
            "window_count": _INT,
            "last_signal_at": _MAYBE_TIME,
            "since_last_signal_seconds": _maybe("number"),
            "by_setup": _TALLY,
            "by_confidence": _TALLY,
            "by_score": _TALLY,
        }
    )
    signal_count = _obj(
        {
            "symbol": _STR,
            "granularity": {"type": "string", "enum": ["hour", "day"]},
            "start": _TIME,
            "setup": _STR,
            "confidence": _STR,
            "score": _INT,
            "count": _INT,
        }
    )
    kpi = _obj(
        {
            "symbol": _STR,
            "setup": {"type": "string", "description": "`all` for the whole run"},
            "run_id": _STR,
            "created_at": _TIME,
            "trades": _INT,
            "wins": _maybe("integer"),
            "losses": _maybe("integer", description="trades that did not win (break-even too)"),
            "hit_rate": _maybe("number", description="wins / trades"),
            "expectancy": _maybe("number", description="mean net return per trade (fraction)"),
            "max_drawdown": _maybe("number", description="fraction of equity, whole run only"),
        }
    )
    alert = _obj(
        {
            "fingerprint": _STR,
            "alertname": _maybe("string"),
            "severity": _maybe("string"),
            "state": {"type": "string", "enum": ["pending", "firing", "resolved"]},
            "labels": {"type": "object", "additionalProperties": _STR},
            "annotations": {"type": "object", "additionalProperties": _STR},
            "active_since": _TIME,
            "fired_at": _MAYBE_TIME,
            "value": _maybe("number"),
        }
    )
    audit = _obj(
        {
            "score_id": _STR,
            "rules_version": _STR,
            "config_hash": _STR,
            "code_version": _STR,
            "score": {"type": "integer", "minimum": 0, "maximum": 7},
            "trend_points": _INT,
            "flow_points": _INT,
            "session_points": _INT,
            "confidence": _STR,
            "data_quality": _STR,
            **{name: {"description": "JSON, as stored"} for name in AUDIT_JSON},
            "scored_at": _TIME,
        }
    )
    signal = _obj(
        {
            "signal_id": _STR,
            "symbol": _STR,
            "timeframe": _STR,
            "setup": _STR,
            "direction": {"type": "string", "enum": ["long", "short"]},
            "bar_open_time": _TIME,
            "bar_close_time": _TIME,
            "close": _maybe("number"),
            "stop_price": _maybe("number"),
            "target_price": _maybe("number"),
            "level_kind": _maybe("string"),
            "level_price": _maybe("number"),
            "levels": {"description": "JSON: every level the setup looked at"},
            "reasons": {"description": "JSON: the measured values that made the setup fire"},
            "detector_version": _STR,
            "score": _maybe("integer", minimum=0, maximum=7),
            "confidence": _maybe("string"),
            "data_quality": _maybe("string"),
            "rules_version": _maybe("string"),
            "score_id": _maybe("string"),
            "audit": {"anyOf": [_ref("Audit"), {"type": "null"}]},
        },
        optional=("audit",),
    )
    run = _obj(
        {
            "run_id": _STR,
            "symbol": _STR,
            "created_at": _TIME,
            "source": _STR,
            "timeframe": _maybe("string"),
            "data_start": _TIME,
            "data_end": _TIME,
            "trades": _INT,
            "net_return": _maybe("number"),
            "max_drawdown": _maybe("number"),
            "config_hash": _STR,
            "data_hash": _STR,
            "code_version": _STR,
            "url": _STR,
        }
    )
    trade = _obj(
        {
            "trade_id": _STR,
            "signal_id": _maybe("string"),
            "setup": _maybe("string"),
            "direction": _STR,
            "score": _maybe("integer"),
            "confidence": _maybe("string"),
            "entry_time": _TIME,
            "entry_price": _maybe("number"),
            "exit_time": _TIME,
            "exit_price": _maybe("number"),
            "exit_reason": _STR,
            "qty": _maybe("number"),
            "net_return": _maybe("number"),
            "pnl": _maybe("number"),
        }
    )
    return {
        "Error": _obj(
            {
                "error": _obj(
                    {
                        "status": _INT,
                        "message": _STR,
                        "parameter": {"type": "string", "description": "the parameter at fault"},
                    },
                    optional=("parameter",),
                )
            }
        ),
        "Component": component,
        "Health": _obj(
            {
                "status": _STATUS,
                "generated_at": _TIME,
                "components": _obj({name: _ref("Component") for name in COMPONENTS}),
            }
        ),
        "Series": series,
        "Alert": alert,
        "PerformanceKPI": kpi,
        "Metrics": _obj(
            {
                "generated_at": _TIME,
                "status": _STATUS,
                "snapshot": _obj(
                    {
                        "generated_at": _MAYBE_TIME,
                        "age_seconds": _maybe("number"),
                        "window_hours": _maybe("number"),
                    }
                ),
                "ingestion": _obj({"counts": _COUNTS, "series": _list(_ref("Series"))}),
                "signals": _obj(
                    {
                        "window_hours": _NUM,
                        "total": _INT,
                        "by_setup": _TALLY,
                        "by_confidence": _TALLY,
                        "by_score": _TALLY,
                        "symbols": _list(symbol_signals),
                        "counts": _list(signal_count),
                    }
                ),
                "performance": _obj({"runs": _list(_ref("PerformanceKPI"))}),
                "alerts": _obj({"firing": _INT, "pending": _INT, "items": _list(_ref("Alert"))}),
                "worker": _obj(
                    {
                        "last_tick_at": _MAYBE_TIME,
                        "age_seconds": _maybe("number"),
                        "outcome": _maybe("string"),
                        "duration_seconds": _maybe("number"),
                        "interval_seconds": _NUM,
                    }
                ),
            }
        ),
        "Freshness": _obj(
            {
                "generated_at": _TIME,
                "snapshot_generated_at": _MAYBE_TIME,
                "count": _INT,
                "counts": _COUNTS,
                "items": _list(
                    _obj(
                        {
                            "dataset": _STR,
                            "param": _maybe("string"),
                            "symbol": _STR,
                            "status": _STATUS,
                            "last_event_at": _MAYBE_TIME,
                            "last_event_ms": _maybe("integer"),
                            "age_seconds": _maybe("number"),
                            "warn_seconds": _NUM,
                            "error_seconds": _NUM,
                        }
                    )
                ),
            }
        ),
        "Audit": audit,
        "Signal": signal,
        "SignalPage": _obj(
            {
                "generated_at": _TIME,
                "timeframe": _STR,
                **_PAGE,
                "items": _list(_ref("Signal")),
            }
        ),
        "BacktestRun": run,
        "BacktestPage": _obj({"generated_at": _TIME, **_PAGE, "items": _list(_ref("BacktestRun"))}),
        "Trade": trade,
        "BacktestDetail": _obj(
            {
                "run": _ref("BacktestRun"),
                "config": {"description": "JSON: the full engine config"},
                "document": {"description": "JSON: the export document (ingmon.backtest/v1)"},
                "trades": _list(_ref("Trade")),
            },
            optional=("trades",),
        ),
        "OpenAPI": {"type": "object", "required": ["openapi", "paths"]},
    }


_ERROR_TEXT = {
    400: "A bad or unknown query parameter (named in error.parameter).",
    401: "Not logged in (the server runs with authentication), or a wrong bearer token.",
    404: "No such item.",
    405: "A method other than GET (the Allow header says GET).",
    500: "Anything unexpected: `internal error (logged on the server)`, no traceback.",
    503: "Damaged storage: a lake partition behind the answer cannot be read (the message "
    "names the file).",
}
# Every route may answer these.
_ALWAYS = (405, 500)


def _operation(endpoint: Endpoint[RouteHandler]) -> dict[str, Any]:
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in endpoint.path_parameters.items()
    ]
    parameters += [param.openapi() for param in endpoint.handler.PARAMETERS]
    if endpoint.schema.startswith("text/"):
        ok = {
            "description": "The exposition",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}},
            },
        }
    else:
        ok = {
            "description": endpoint.summary,
            "content": {"application/json": {"schema": _ref(endpoint.schema)}},
        }
    errors = {
        str(status): {
            "description": _ERROR_TEXT[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for status in sorted({*endpoint.errors, *_ALWAYS})
    }
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "description": endpoint.description,
        "operationId": endpoint.handler.__name__.removesuffix("Handler").lower(),
        "parameters": parameters,
        "responses": {"200": ok, **errors},
    }
    if endpoint.handler.requires_login:
        operation["security"] = [{}, {"session": []}]
    else:
        operation["security"] = [{}, {"bearer": []}]
    return operation


def build_openapi(endpoints: Iterable[Endpoint[RouteHandler]]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ingmon monitoring API",
            "version": __version__,
            "description": "Health, freshness, signals and backtests of an ingmon data "
            "root, read from the worker's state and the lake. Times are ISO-8601 UTC; "
            "durations are seconds; ratios are fractions.",
        },
        "paths": {endpoint.template: {"get": _operation(endpoint)} for endpoint in endpoints},
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "user",
                    "description": "The session cookie of POST /login (only when the "
                    "server runs with --basic-auth or OAuth).",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "INGMON_METRICS_TOKEN (only when it is set).",
                },
            },
        },
    }

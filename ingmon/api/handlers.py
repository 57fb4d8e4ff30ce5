"""The Tornado side of the API: the handlers, their login and errors, and ``ROUTES`` for Panel.

``ROUTES`` serves ``/api/health``, ``/api/metrics``, ``/api/freshness``, ``/api/signals``,
``/api/backtests``, ``/api/backtests/{run_id}``, ``/api/openapi.json`` (the OpenAPI 3.1
document of all of them) and ``/metrics/prometheus``. The server process only reads: the
worker's state files and small, cached lake reads; heavy work runs in ``ingmon worker``.

Every answer is JSON with a stable shape; errors are ``{"error": {"status", "message",
"parameter"?}}`` — 400 for a bad or unknown query parameter (named), 401, 404, 405, 503 for
damaged storage, and a 500 without a traceback for anything unexpected (logged). When the
server runs with authentication (``--basic-auth``, OAuth) the ``/api/*`` routes need a logged-in
session too — Panel protects only its own pages, so the handlers ask the server's auth provider
themselves, as Panel's ``AuthenticatedStaticFileHandler`` does. ``/metrics/prometheus`` is open
unless a metrics token is set (``Authorization: Bearer <token>``; a blank token is no token).

Two thread pools keep the IOLoop free: one renders the state documents and the exposition,
the other reads the lake for signals and backtests — so slow lake reads never hold up a scrape
or ``/api/health``.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlencode

import orjson
from tornado.httputil import url_concat
from tornado.web import HTTPError, RequestHandler

from ingmon.api.cache import Compressed, LatestValue, TTLCache
from ingmon.api.documents import freshness_document, health_document, metrics_document
from ingmon.api.openapi import Endpoint, build_openapi
from ingmon.api.params import (
    BACKTEST_PARAMETERS,
    BACKTESTS_PARAMETERS,
    FRESHNESS_PARAMETERS,
    SIGNALS_PARAMETERS,
    Param,
)
from ingmon.api.queries import backtest_document, backtests_page, signals_page
from ingmon.config import Settings, load_settings
from ingmon.errors import DataIntegrityError
from ingmon.monitor.exporter import build_registry, exposition
from ingmon.times import iso_ms, now_ms

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "ROUTES",
    "ApiError",
    "BacktestHandler",
    "BacktestsHandler",
    "FreshnessHandler",
    "HealthHandler",
    "MetricsHandler",
    "NotFoundHandler",
    "OpenAPIHandler",
    "PrometheusHandler",
    "SignalsHandler",
    "openapi_document",
]

T = TypeVar("T")

_BODY_TTL_SECONDS = 1.0
# The state documents' bodies, rebuilt at most once a second: ages are whole-second news, and
# twenty clients polling at once cost one build.
_BODIES = TTLCache(_BODY_TTL_SECONDS)
# Renderings in progress: concurrent requests get the previous body instead of waiting, as
# long as it is less than a second older than a cached body may be.
# gzip of those bodies, once per body (Prometheus and httpx send Accept-Encoding: gzip).
_COMPRESSED = Compressed()
# A body younger than a second is served as it is: the documents are rebuilt at most once a
# second anyway, and the exposition's ages only move by the second.
_LATEST = LatestValue(max_age_seconds=_BODY_TTL_SECONDS + 1.0, fresh_seconds=_BODY_TTL_SECONDS)
_JSON = "application/json; charset=utf-8"


class ApiError(HTTPError):
    """An error answered as ``{"error": {...}}`` with its status, message and parameter."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        parameter: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.message = message
        self.parameter = parameter
        self.headers = dict(headers or {})


# ---- handlers ----------------------------------------------------------------------------------

_settings_lock = threading.Lock()
_settings: Settings | None = None
_registry: CollectorRegistry | None = None
# Work off the IOLoop, so /liveness always answers: the state documents and the exposition
# (small files, cached) on one pool, lake reads (DuckDB releases the GIL) on another, so that
# lake reads stuck on a slow disk never queue a scrape or /api/health behind them.
_STATE_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingmon-state")
_LAKE_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingmon-lake")


def _server_settings() -> Settings:
    """The server's settings, read once from the environment ``ingmon serve`` prepared."""
    global _settings  # noqa: PLW0603 - one per process, like the registry
    with _settings_lock:
        if _settings is None:
            _settings = load_settings()
        return _settings


def _prometheus_registry() -> CollectorRegistry:
    global _registry  # noqa: PLW0603
    settings = _server_settings()
    with _settings_lock:
        if _registry is None:
            _registry = build_registry(settings)
        return _registry


class _Handler(RequestHandler):
    """JSON answers, validated query parameters, the server's login for ``/api/*``."""

    PARAMETERS: ClassVar[tuple[Param, ...]] = ()
    requires_login: ClassVar[bool] = True

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", _JSON)
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def prepare(self) -> None:
        if self.requires_login:
            await self._require_login()

    async def _require_login(self) -> None:
        """Ask the server's auth provider (Panel's basic auth or OAuth) for the user, as
        Panel's own ``AuthenticatedStaticFileHandler`` does; no provider, no login."""
        provider = getattr(self.application, "auth_provider", None)
        get_user_async = getattr(provider, "get_user_async", None)
        get_user = getattr(provider, "get_user", None)
        if get_user_async is not None:
            user = await get_user_async(self)
        elif get_user is not None:
            user = get_user(self)
        else:
            return
        if user:
            self.current_user = user
            return
        login_url = self._login_url(provider)
        if "text/html" in self.request.headers.get("Accept", ""):
            self.redirect(url_concat(login_url, {"next": self.request.uri}))
            return
        raise ApiError(
            HTTPStatus.UNAUTHORIZED,
            f"authentication required: log in with POST {login_url} (a session cookie), "
            "then send the cookie with each request",
            headers={"WWW-Authenticate": f'Cookie realm="ingmon", login="{login_url}"'},
        )

    def _login_url(self, provider: Any) -> str:
        get_login_url = getattr(provider, "get_login_url", None)
        if get_login_url is not None:
            return str(get_login_url(self))
        return str(getattr(provider, "login_url", None) or "/login")

    def query(self) -> dict[str, Any]:
        """The validated query parameters (defaults filled in); ApiError 400 naming the first
        unknown, repeated or invalid one."""
        known = {param.name: param for param in self.PARAMETERS}
        values = {param.name: param.default for param in self.PARAMETERS}
        for name, raw in self.request.query_arguments.items():
            param = known.get(name)
            if param is None:
                accepted = ", ".join(sorted(known)) or "none"
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    f"unknown parameter {name!r} (accepted: {accepted})",
                    parameter=name,
                )
            if len(raw) > 1:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, f"{name} is given more than once", parameter=name
                )
            try:
                text = raw[0].decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST, f"{name} is not UTF-8", parameter=name
                ) from None
            if not text.strip():
                continue  # ?symbol= means "no filter", as in an empty form field
            try:
                values[name] = param.parse(text)
            except ValueError as error:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"{name}: {error}", parameter=name) from None
        return values

    def send_json(self, document: Any, *, status: int = HTTPStatus.OK) -> None:
        self.send_body(orjson.dumps(document), status=status)

    def send_body(self, body: bytes, *, status: int = HTTPStatus.OK) -> None:
        self.set_status(status)
        self.finish(body)

    def page_links(self, *, total: int, limit: int, offset: int) -> dict[str, Any]:
        """The pagination fields of a page: its place and the link to the next one."""
        next_offset = offset + limit if offset + limit < total else None
        next_link = None
        if next_offset is not None:
            query = {
                name: values[-1].decode("utf-8", "replace")
                for name, values in self.request.query_arguments.items()
            }
            query["offset"] = str(next_offset)
            next_link = f"{self.request.path}?{urlencode(query)}"
        return {
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": next_offset,
            "next": next_link,
        }

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        parameter = None
        if isinstance(error, ApiError):
            message = error.message
            parameter = error.parameter
            for name, value in error.headers.items():
                self.set_header(name, value)
        elif isinstance(error, DataIntegrityError):
            status_code = HTTPStatus.SERVICE_UNAVAILABLE
            self.set_status(status_code)
            message = f"damaged storage: {error}"
        elif isinstance(error, HTTPError):
            message = error.reason or HTTPStatus(status_code).phrase
            if status_code == HTTPStatus.METHOD_NOT_ALLOWED:
                self.set_header("Allow", "GET")
                message = f"{self.request.method} is not allowed here: only GET"
        else:  # tornado logged the traceback; the client gets one line
            message = "internal error (logged on the server)"
        body: dict[str, Any] = {"status": status_code, "message": message}
        if parameter is not None:
            body["parameter"] = parameter
        self.finish(orjson.dumps({"error": body}))

    async def read_lake(self, work: Callable[[], T]) -> T:
        """``work`` (a lake read) on the lake pool."""
        return await asyncio.get_running_loop().run_in_executor(_LAKE_EXECUTOR, work)

    async def read_state(self, work: Callable[[], T]) -> T:
        """``work`` (state files, rendering) on the state pool, never behind a lake read."""
        return await asyncio.get_running_loop().run_in_executor(_STATE_EXECUTOR, work)

    async def shared_body(self, key: tuple[Any, ...], render: Callable[[], bytes]) -> bytes:
        """A document body rendered off the IOLoop, at most once a ``_BODY_TTL_SECONDS`` and by
        one thread at a time; concurrent requests meanwhile get the previous body. Gzipped
        (once per body) for a client that accepts it."""
        gzipped = self.accepts_gzip()

        def encoded() -> bytes:
            body = _BODIES.get(key, render)
            return _COMPRESSED.get(key, body) if gzipped else body

        def work() -> bytes:
            return _LATEST.get((*key, gzipped), encoded)

        body = await self.read_state(work)
        self.mark_encoding(gzipped=gzipped)
        return body

    def accepts_gzip(self) -> bool:
        return "gzip" in self.request.headers.get("Accept-Encoding", "").lower()

    def mark_encoding(self, *, gzipped: bool) -> None:
        self.set_header("Vary", "Accept-Encoding")
        if gzipped:
            self.set_header("Content-Encoding", "gzip")

    def compute_etag(self) -> None:
        """No ETag: the bodies change every second and are ``no-store``; hashing a 400 KB
        exposition for each request would cost more than it saves."""
        return


class HealthHandler(_Handler):
    async def get(self) -> None:
        self.query()
        self.send_body(
            await self.shared_body(
                ("health",),
                lambda: orjson.dumps(health_document(_server_settings(), now_ms=now_ms())),
            )
        )


class MetricsHandler(_Handler):
    async def get(self) -> None:
        self.query()
        self.send_body(
            await self.shared_body(
                ("metrics",),
                lambda: orjson.dumps(metrics_document(_server_settings(), now_ms=now_ms())),
            )
        )


class FreshnessHandler(_Handler):
    PARAMETERS = FRESHNESS_PARAMETERS

    async def get(self) -> None:
        query = self.query()
        filters = {name: query[name] for name in ("symbol", "dataset", "status")}
        self.send_body(
            await self.shared_body(
                ("freshness", *filters.values()),
                lambda: orjson.dumps(
                    freshness_document(
                        _server_settings(),
                        now_ms=now_ms(),
                        symbols=filters["symbol"],
                        datasets=filters["dataset"],
                        statuses=filters["status"],
                    )
                ),
            )
        )


class SignalsHandler(_Handler):
    PARAMETERS = SIGNALS_PARAMETERS

    async def get(self) -> None:
        query = self.query()
        if (
            query["since"] is not None
            and query["until"] is not None
            and query["until"] <= query["since"]
        ):
            raise ApiError(HTTPStatus.BAD_REQUEST, "until must be after since", parameter="until")
        settings = _server_settings()
        total, items = await self.read_lake(
            partial(
                signals_page,
                settings,
                timeframe=query["timeframe"],
                symbols=query["symbol"],
                setups=query["setup"],
                min_score=query["min_score"],
                since_ms=query["since"],
                until_ms=query["until"],
                limit=query["limit"],
                offset=query["offset"],
                audit=query["audit"],
            )
        )
        self.send_json(
            {
                "generated_at": iso_ms(now_ms()),
                "timeframe": query["timeframe"],
                **self.page_links(total=total, limit=query["limit"], offset=query["offset"]),
                "items": items,
            }
        )


class BacktestsHandler(_Handler):
    PARAMETERS = BACKTESTS_PARAMETERS

    async def get(self) -> None:
        query = self.query()
        settings = _server_settings()
        total, items = await self.read_lake(
            partial(
                backtests_page,
                settings,
                symbols=query["symbol"],
                limit=query["limit"],
                offset=query["offset"],
            )
        )
        self.send_json(
            {
                "generated_at": iso_ms(now_ms()),
                **self.page_links(total=total, limit=query["limit"], offset=query["offset"]),
                "items": items,
            }
        )


class BacktestHandler(_Handler):
    PARAMETERS = BACKTEST_PARAMETERS

    async def get(self, run_id: str) -> None:
        query = self.query()
        settings = _server_settings()
        document = await self.read_lake(
            partial(backtest_document, settings, run_id, trades=query["trades"])
        )
        if document is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                f"no saved backtest run {run_id!r} (list them at /api/backtests)",
            )
        self.send_json(document)


class OpenAPIHandler(_Handler):
    def get(self) -> None:
        self.query()
        self.send_json(openapi_document())


class PrometheusHandler(_Handler):
    """``/metrics/prometheus``: open unless ``INGMON_METRICS_TOKEN`` is set (and not blank),
    then it needs ``Authorization: Bearer <token>`` (the scheme in any case); the server's
    login does not apply (Prometheus has no browser session). The token is checked before the
    query parameters: an anonymous client learns nothing about them."""

    requires_login = False

    async def get(self) -> None:
        self._require_token()
        self.query()
        accept = self.request.headers.get("Accept", "")
        key = ("prometheus", accept)
        gzipped = self.accepts_gzip()

        def encoded() -> tuple[bytes, str]:
            body, content_type = exposition(_prometheus_registry(), accept)
            return (_COMPRESSED.get(key, body) if gzipped else body), content_type

        def work() -> tuple[bytes, str]:
            return _LATEST.get((*key, gzipped), encoded)

        body, content_type = await self.read_state(work)
        self.set_header("Content-Type", content_type)
        self.mark_encoding(gzipped=gzipped)
        self.finish(body)

    def _require_token(self) -> None:
        secret = _server_settings().metrics_token
        token = "" if secret is None else secret.get_secret_value().strip()
        if not token:  # unset, or set to nothing: the endpoint is open
            return
        scheme, _, credentials = self.request.headers.get("Authorization", "").partition(" ")
        given = credentials.strip().encode("utf-8", "replace")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, token.encode()):
            raise ApiError(
                HTTPStatus.UNAUTHORIZED,
                "a bearer token is required: Authorization: Bearer <INGMON_METRICS_TOKEN>",
                headers={"WWW-Authenticate": 'Bearer realm="ingmon metrics"'},
            )


class NotFoundHandler(_Handler):
    """Any other ``/api/…`` path: a JSON 404 (after the login check, so that an anonymous
    client learns nothing about which paths exist)."""

    async def prepare(self) -> None:
        await super().prepare()
        if not self._finished:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                f"no such endpoint {self.request.path!r}: see /api/openapi.json",
            )


# ---- routes -----------------------------------------------------------------------------------

_ENDPOINTS: tuple[Endpoint[_Handler], ...] = (
    Endpoint(
        "/api/health",
        HealthHandler,
        "Status of each component",
        "One status per component (ingestion = the worst series, signals, performance, "
        "alerts, worker = the age of its last tick against its interval, snapshot = the age of "
        "state/health.json), and the worst of them. `unknown` with a hint when there is no "
        "state yet. Always 200: the status is in the body.",
        "Health",
    ),
    Endpoint(
        "/api/metrics",
        MetricsHandler,
        "The aggregated monitoring document",
        "Ingestion per dataset × symbol (freshness, latency, cadence, gaps, duplicates), "
        "signal counts by setup, confidence and score over the health window, the latest "
        "backtest run per symbol (trades, wins/losses, hit rate, expectancy, max drawdown), "
        "alerts and the worker — statuses judged at the time of the request.",
        "Metrics",
    ),
    Endpoint(
        "/api/freshness",
        FreshnessHandler,
        "Age of the newest event per dataset × symbol",
        "Worst first: by status (error, warn, unknown, ok), then by age relative to the "
        "series' warn age (age ÷ warn_seconds: a funding rate 6 h old is fresher than a 1m "
        "candle 2 min old), the most overdue first.",
        "Freshness",
    ),
    Endpoint(
        "/api/signals",
        SignalsHandler,
        "Stored signals with their scores, newest first",
        "Signals of one timeframe with their score under the current rules version; "
        "`audit=true` adds each score's audit record. Paginated: follow `next`.",
        "SignalPage",
        errors=(400, 401, 503),
    ),
    Endpoint(
        "/api/backtests",
        BacktestsHandler,
        "Saved backtest runs, newest first",
        "The headline of each saved run. Paginated: follow `next`.",
        "BacktestPage",
        errors=(400, 401, 503),
    ),
    Endpoint(
        "/api/backtests/{run_id}",
        BacktestHandler,
        "One saved backtest run",
        "The run's headline, its engine config and its export document (metrics, "
        "breakdowns, windows); `trades=true` adds its trades.",
        "BacktestDetail",
        errors=(400, 401, 404, 503),
        path_parameters={"run_id": "The run's id (`run_id` of /api/backtests)."},
    ),
    Endpoint(
        "/api/openapi.json",
        OpenAPIHandler,
        "This document",
        "The OpenAPI 3.1 description of every route.",
        "OpenAPI",
    ),
    Endpoint(
        "/metrics/prometheus",
        PrometheusHandler,
        "Prometheus exposition",
        "The exporter's metrics, computed at scrape time from the state files. Content "
        "negotiation by `Accept` (text format 0.0.4 or OpenMetrics). Open unless "
        "INGMON_METRICS_TOKEN is set (a blank one counts as unset); then `Authorization: "
        "Bearer <token>` is required, checked before the query parameters. The dashboard's "
        "login does not apply.",
        "text/plain",
    ),
)

ROUTES: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [
    (endpoint.pattern, endpoint.handler, {}) for endpoint in _ENDPOINTS
] + [(r"/api/.*", NotFoundHandler, {})]


_openapi: dict[str, Any] | None = None


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in ``ROUTES`` (built once)."""
    global _openapi  # noqa: PLW0603
    if _openapi is None:
        _openapi = build_openapi(_ENDPOINTS)
    return _openapi

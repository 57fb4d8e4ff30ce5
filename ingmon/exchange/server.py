"""The local Binance USD-M exchange over real HTTP: REST + archive routes, limits, faults, stats."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import orjson

from ingmon.errors import ConfigError
from ingmon.exchange.archive import ArchiveOptions, ArchiveStore
from ingmon.exchange.clock import Clock, RealClock
from ingmon.exchange.faults import DATA_KINDS, STATUS_KINDS, FaultInjector, FaultSchedule
from ingmon.exchange.limits import Limits, RateLimiter, route_weight
from ingmon.exchange.market import Market
from ingmon.exchange.routes import ApiError, RestApi, RestOptions, raw_limit

__all__ = ["ExchangeServer", "FaultEvent", "ServerStats"]

logger = logging.getLogger(__name__)

JSON = "application/json"
_FAPI_ROUTES = frozenset(
    {"ping", "time", "exchangeInfo", "fundingInfo", "klines", "aggTrades", "fundingRate"}
)
_DATA_ROUTES = frozenset({"openInterestHist"})
_ARCHIVE_PREFIX = "/data/"
_SERVER_NAME = "ingmon-exchange"

_GATEWAY_HTML = (
    b"<html><head><title>{status}</title></head><body><center><h1>{status}</h1></center>"
    b"</body></html>"
)
_S3_NOT_FOUND = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    b"<Message>The specified key does not exist.</Message></Error>"
)


class FaultEvent(NamedTuple):
    """One injected fault: the route, the kind, and the request's index among the route's."""

    route: str
    kind: str
    request_index: int


class ServerStats:
    """Thread-safe counters of what the server answered (read them from tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._requests: Counter[tuple[str, int]] = Counter()
            self._weight_used = 0
            self._rate_limited = 0
            self._banned = 0
            self._faults: list[FaultEvent] = []

    def record(self, route: str, status: int) -> None:
        with self._lock:
            self._requests[route, status] += 1

    def charge(self, weight: int) -> None:
        with self._lock:
            self._weight_used += weight

    def limited(self, status: int) -> None:
        with self._lock:
            if status == 429:
                self._rate_limited += 1
            else:
                self._banned += 1

    def fault(self, event: FaultEvent) -> None:
        with self._lock:
            self._faults.append(event)

    @property
    def requests(self) -> dict[tuple[str, int], int]:
        """Responses per (route, HTTP status); routes as in FaultRule plus "unknown"."""
        with self._lock:
            return dict(self._requests)

    def requests_for(self, route: str, status: int | None = None) -> int:
        """How many requests ``route`` answered (with ``status``, when given)."""
        with self._lock:
            return sum(
                count
                for (name, code), count in self._requests.items()
                if name == route and (status is None or code == status)
            )

    @property
    def weight_used(self) -> int:
        """Request weight charged to all clients since start (or the last reset)."""
        with self._lock:
            return self._weight_used

    @property
    def rate_limited(self) -> int:
        """429s the limiter issued (injected 429 faults are in ``faults`` instead)."""
        with self._lock:
            return self._rate_limited

    @property
    def banned(self) -> int:
        """418s the limiter issued (injected 418 faults are in ``faults`` instead)."""
        with self._lock:
            return self._banned

    @property
    def faults(self) -> list[FaultEvent]:
        """Every fault injected, in order, as (route, kind, request index of that route)."""
        with self._lock:
            return list(self._faults)

    def snapshot(self) -> dict[str, object]:
        """All counters as plain JSON-able data."""
        with self._lock:
            return {
                "requests": {
                    f"{route} {status}": n for (route, status), n in self._requests.items()
                },
                "weight_used": self._weight_used,
                "rate_limited": self._rate_limited,
                "banned": self._banned,
                "faults": [list(event) for event in self._faults],
            }


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


class ExchangeServer:
    """A Binance USD-M compatible HTTP server on a background thread (context manager).

    REST under ``/fapi/v1`` and ``/futures/data``, the data.binance.vision archive under
    ``/data/futures/um``. Windows of the rate limits run on real time; the market's "now" is
    ``clock`` (RealClock by default, FrozenClock for tests).
    """

    def __init__(
        self,
        market: Market,
        *,
        clock: Clock | None = None,
        limits: Limits | None = None,
        faults: FaultSchedule | None = None,
        rest: RestOptions | None = None,
        archive: ArchiveOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not 0 <= port <= 65_535:
            raise ConfigError(f"port must be within 0..65535, got {port}")
        self.market = market
        self.clock: Clock = clock if clock is not None else RealClock()
        self.limits = limits if limits is not None else Limits()
        self.faults = faults if faults is not None else FaultSchedule()
        self.host = host
        self._requested_port = port
        self.stats = ServerStats()
        self.limiter = RateLimiter(self.limits)
        self.api = RestApi(
            market,
            clock=self.clock,
            limits=self.limits,
            options=rest if rest is not None else RestOptions(),
            duplicate_rows=self.faults.duplicate_rows,
            outside_rows=self.faults.outside_rows,
        )
        self.archive = ArchiveStore(
            market, clock=self.clock, options=archive if archive is not None else ArchiveOptions()
        )
        self._injector = FaultInjector(self.faults)
        self._weight_header = self.limits.weight_header
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ExchangeServer:
        """Bind and serve on a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        try:
            httpd = _HttpServer((self.host, self._requested_port), self)
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {self.host}:{self._requested_port}: {error.strerror}"
            ) from None
        self._stopping.clear()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"exchange-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and release the port."""
        httpd = self._httpd
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def wait(self) -> None:
        """Block until ``stop`` is called from another thread (or a signal handler)."""
        while self._httpd is not None and not self._stopping.wait(0.5):
            pass

    def __enter__(self) -> ExchangeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the free one picked for port=0); only after ``start``."""
        if self._httpd is None:
            raise RuntimeError("the exchange server is not running; call start() first")
        return int(self._httpd.server_address[1])

    @property
    def open_connections(self) -> int:
        """Client connections whose handler has not finished yet (0 when idle or stopped)."""
        return 0 if self._httpd is None else self._httpd.open_connections

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` — REST and archive paths go below it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- requests ------------------------------------------------------------------------------

    def _dispatch(self, path_and_query: str, *, client_ip: str) -> _Answer:
        """Answer one GET (or HEAD) request line."""
        split = urlsplit(path_and_query)
        path = split.path
        if path.startswith(_ARCHIVE_PREFIX):
            return self._archive(path, client_ip)
        route = path.rsplit("/", 1)[-1]
        if not (
            (path == f"/fapi/v1/{route}" and route in _FAPI_ROUTES)
            or (path == f"/futures/data/{route}" and route in _DATA_ROUTES)
        ):
            self.stats.record("unknown", 404)
            return _Answer(404, b"", "text/html")
        return self._rest(route, path, split.query, client_ip)

    def _rest(self, route: str, path: str, query: str, client_ip: str) -> _Answer:
        pairs = parse_qsl(query, keep_blank_values=True)
        params = dict(pairs)
        weight, group = route_weight(route, raw_limit(params))
        decision = self.limiter.admit(client_ip, weight=weight, group=group)
        headers: list[tuple[str, str]] = [(self._weight_header, str(decision.used_weight))]
        if decision.status != 200:
            self.stats.limited(decision.status)
            self.stats.record(route, decision.status)
            headers.append(("Retry-After", str(decision.retry_after_seconds)))
            body = orjson.dumps({"code": -1003, "msg": decision.message})
            return _Answer(decision.status, body, JSON, tuple(headers))
        self.stats.charge(weight)
        target = f"{path}?{query}" if query else path
        fault, index = self._injector.pick(route, target)
        answer: _Answer | None = None
        if fault is not None:
            self.stats.fault(FaultEvent(route, fault, index))
            if fault in STATUS_KINDS:
                answer = self._status_fault(fault, client_ip, archive=False)
            elif fault == "timeout":
                self._stopping.wait(self.faults.timeout_delay_seconds)
        if answer is None:
            msg_first = path.startswith("/futures/data/")
            try:
                if len(params) != len(pairs):
                    raise ApiError(-1101, "Duplicate values for a parameter detected.")
                handler = self.api.handlers[route]
                body = handler(params, fault if fault in DATA_KINDS else None)
                answer = _Answer(200, body)
            except ApiError as error:
                answer = _Answer(error.status, error.body(msg_first=msg_first))
            answer.body = _corrupted(answer.body, fault)
        answer.headers = (*headers, *answer.headers)
        self.stats.record(route, answer.status)
        return answer

    def _archive(self, path: str, client_ip: str) -> _Answer:
        fault, index = self._injector.pick("archive", path)
        if fault is not None:
            self.stats.fault(FaultEvent("archive", fault, index))
            if fault in STATUS_KINDS:
                answer = self._status_fault(fault, client_ip, archive=True)
                self.stats.record("archive", answer.status)
                return answer
            if fault == "timeout":
                self._stopping.wait(self.faults.timeout_delay_seconds)
        file = self.archive.resolve(path)
        if file is None or not self.archive.published(file):
            self.stats.record("archive", 404)
            return _Answer(404, _S3_NOT_FOUND, "application/xml")
        body = self.archive.content(file, checksum_fault=fault == "checksum")
        if fault == "malformed":
            body = body[::-1]
        elif fault == "truncated":
            body = body[: len(body) // 2]
        self.stats.record("archive", 200)
        content_type = "text/plain" if file.checksum else "application/zip"
        return _Answer(200, body, content_type)

    def _status_fault(self, kind: str, client_ip: str, *, archive: bool) -> _Answer:
        status = int(kind)
        retry_after = self.faults.retry_after_seconds
        if archive or status in (403, 502):
            # Gateways, the WAF and the archive's CDN answer in HTML, not Binance JSON.
            text = f"{status} {HTTPStatus(status).phrase}".encode()
            retry = (("Retry-After", str(retry_after)),) if status in (418, 429) else ()
            return _Answer(status, _GATEWAY_HTML.replace(b"{status}", text), "text/html", retry)
        headers: tuple[tuple[str, str], ...] = ()
        if status == 429:
            message = (
                f"Too many requests; current limit of IP({client_ip}) is "
                f"{self.limits.weight_per_window} requests per minute. Please use the websocket "
                "for live updates to avoid polling the API."
            )
            body = {"code": -1003, "msg": message}
            headers = (("Retry-After", str(retry_after)),)
        elif status == 418:
            until_ms = int(time.time() * 1000) + retry_after * 1000
            message = (
                f"Way too many requests; IP({client_ip}) banned until {until_ms}. Please use the "
                "websocket for live updates to avoid bans."
            )
            body = {"code": -1003, "msg": message}
            headers = (("Retry-After", str(retry_after)),)
        elif status == 408:
            body = {
                "code": -1007,
                "msg": "Timeout waiting for response from backend server. Send status unknown; "
                "execution status unknown.",
            }
        elif status == 503:
            body = {"code": -1001, "msg": "Service Unavailable."}
        else:
            body = {
                "code": -1001,
                "msg": "Internal error; unable to process your request. Please try again.",
            }
        return _Answer(status, orjson.dumps(body), JSON, headers)


def _corrupted(body: bytes, fault: str | None) -> bytes:
    if fault == "truncated":
        return body[: max(1, len(body) // 2)]
    if fault == "malformed":
        # A trailing comma before the closing bracket: looks like JSON, never parses.
        return body[:-1] + b",," + body[-1:]
    return body


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; one thread per connection (ThreadingHTTPServer)."""

    protocol_version = "HTTP/1.1"
    server: _HttpServer
    timeout = 300  # idle keep-alive connections are dropped after this many seconds

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus delayed ACKs
        # would add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        try:
            answer = self.server.exchange._dispatch(self.path, client_ip=self.client_address[0])
        except Exception:
            logger.exception("exchange server failed on %s", self.path)
            answer = _Answer(
                500,
                orjson.dumps(
                    {"code": -1000, "msg": "An unknown error occured while processing the request."}
                ),
            )
        lines = [
            f"{self.protocol_version} {answer.status} {HTTPStatus(answer.status).phrase}",
            f"Server: {_SERVER_NAME}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {answer.content_type}",
            f"Content-Length: {len(answer.body)}",
            *(f"{name}: {value}" for name, value in answer.headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.log_request(answer.status, len(answer.body))
        try:
            # One write for head and body: fewer wake-ups of the client, and no Nagle stall.
            self.wfile.write(head_bytes if head else head_bytes + answer.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout fired during a "timeout" fault).
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], exchange: ExchangeServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.exchange = exchange
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # Untracked only after handle_error ran, so an idle server has nothing left to print.
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            # Resets and broken pipes are how clients leave (timeouts, kills): not a server fault.
            logger.debug("client %s went away: %r", client_address, error)
            return
        super().handle_error(request, client_address)

    @property
    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def close_connections(self) -> None:
        """Wake every handler blocked on an idle keep-alive connection so its thread ends."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

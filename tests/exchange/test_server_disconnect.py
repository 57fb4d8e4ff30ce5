"""Clients that hang up: the server logs a debug line, never a traceback on stderr."""

from __future__ import annotations

import logging
import socket
import struct
import time

import pytest

from ingmon.exchange import ExchangeServer

REQUEST = (
    b"GET /fapi/v1/aggTrades?symbol=BTCUSDT&limit=1000 HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
)


def hang_up_with_reset(connection: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST, as a killed or timed-out client does."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def wait_until_idle(server: ExchangeServer, *, timeout_seconds: float = 30.0) -> None:
    """Block until every connection's handler thread has finished (error handling included)."""
    deadline = time.monotonic() + timeout_seconds
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.open_connections == 0, "a handler thread is still running"


def test_client_disconnecting_mid_response_leaves_stderr_empty(
    own_server: ExchangeServer,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Resets before, during and after a response only log at debug level: stderr stays empty."""
    caplog.set_level(logging.DEBUG, logger="ingmon.exchange.server")
    for read_bytes in (0, 16, 64 * 1024):
        connection = socket.create_connection((own_server.host, own_server.port), timeout=10)
        connection.sendall(REQUEST)
        received = 0
        while received < read_bytes:
            chunk = connection.recv(read_bytes - received)
            assert chunk, "the server closed the connection before answering"
            received += len(chunk)
        hang_up_with_reset(connection)
    wait_until_idle(own_server)
    # The server still answers new clients.
    with socket.create_connection((own_server.host, own_server.port), timeout=10) as connection:
        connection.sendall(b"GET /fapi/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert connection.recv(64).startswith(b"HTTP/1.1 200 OK")
    assert capfd.readouterr().err == ""
    assert any("went away" in record.getMessage() for record in caplog.records)

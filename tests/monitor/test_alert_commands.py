"""``ingmon alerts test|status|deliver``: the installed command against a loopback receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingmon.cli import main
from ingmon.config import load_settings
from ingmon.lake import Lake
from ingmon.monitor import alerts, outbox, webhooks
from ingmon.monitor.health import build_snapshot
from tests.monitor._lake import NOW_MS, live_feed
from tests.monitor._receiver import Receiver, closed_port

SECRET = "cli-hmac-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def ingmon(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real command in a child process (cwd tmp_path: no developer .env is read)."""
    return subprocess.run(
        [sys.executable, "-m", "ingmon", *args],
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_alerts_test_posts_a_signed_firing_alert(tmp_path: Path, receiver: Receiver) -> None:
    """Against a live receiver: exit 0, the status printed, one signed v4 firing payload."""
    done = ingmon(
        tmp_path,
        "alerts",
        "test",
        "--url",
        receiver.url(),
        "--secret-from-env",
        env={"INGMON_WEBHOOK_SECRET": SECRET},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "HTTP 200 OK\n", "")
    (request,) = receiver.received
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-ingmon-signature-256"] == f"sha256={expected}"
    payload = request.json()
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "ingmon"
    (alert,) = payload["alerts"]
    assert alert["labels"] == {"alertname": "IngmonTest", "severity": "none"}
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["fingerprint"] == webhooks.fingerprint(alert["labels"])
    assert SECRET not in done.stdout + done.stderr


def test_alerts_test_against_a_closed_port_fails_in_one_line(tmp_path: Path) -> None:
    """Nobody listening: exit 1 and exactly one line on stderr, nothing on stdout."""
    done = ingmon(tmp_path, "alerts", "test", "--url", f"http://127.0.0.1:{closed_port()}/x")
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("ingmon alerts: error: no answer from http://127.0.0.1:")


def test_alerts_test_with_a_bad_url_is_a_usage_error(tmp_path: Path) -> None:
    """A URL that is not http(s) with a host: exit 2, one line."""
    done = ingmon(tmp_path, "alerts", "test", "--url", "ftp://example.org/hook")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert "must be an http(s) URL" in done.stderr


def test_alerts_test_in_process_cases(
    tmp_path: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 500 answer exits 1 with the status printed; --secret-from-env without a secret is a
    usage error; --format slack sends a text body; no secret means no signature."""
    monkeypatch.chdir(tmp_path)
    receiver.status = 500
    assert main(["alerts", "test", "--url", receiver.url()]) == 1
    out, err = capsys.readouterr()
    assert out == "HTTP 500 Internal Server Error\n"
    assert "answered HTTP 500" in err
    assert "x-ingmon-signature-256" not in receiver.received[-1].headers

    assert main(["alerts", "test", "--url", receiver.url(), "--secret-from-env"]) == 2
    assert "INGMON_WEBHOOK_SECRET is not set" in capsys.readouterr().err

    receiver.status = 204
    assert main(["alerts", "test", "--url", receiver.url(), "--format", "slack"]) == 0
    text = receiver.received[-1].json()["text"]
    assert text.startswith("*[FIRING] IngmonTest* (none)")


def test_alerts_status_and_deliver(
    tmp_path: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After an evaluation of a stale real lake: `status` shows the firing alert and one
    pending outbox entry (no secret, no URL path); `deliver` sends it (exit 0) and empties
    the outbox; with the receiver failing, `deliver` exits 1 and keeps the entry."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INGMON_WEBHOOK_URLS", receiver.url("/hook/path-token"))
    monkeypatch.setenv("INGMON_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("INGMON_ALERT_STALE_FOR_SECONDS", "0")
    settings = load_settings(env_file=None, data_dir=tmp_path)
    lake = Lake(settings.lake_dir)
    live_feed(lake, dataset="candles", now_ms=NOW_MS, hours=24)
    snapshot = build_snapshot(lake, settings, symbols=["BTCUSDT"], now_ms=NOW_MS)
    alerts.evaluate(snapshot, settings, now_ms=NOW_MS + 600_000)

    assert main(["alerts", "status", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    status = json.loads(out)
    assert status["firing"] == 1
    (alert,) = [a for a in status["active"] if a["state"] == "firing"]  # cadence: pending
    assert alert["labels"]["alertname"] == "IngmonFeedStale"
    assert status["outbox"]["pending"] == 1
    (entry,) = status["outbox"]["entries"]
    assert entry["status"] == "firing"
    assert entry["attempts"] == 0
    assert entry["url"] == f"http://127.0.0.1:{receiver.port}/…"
    assert SECRET not in out
    assert "path-token" not in out

    assert main(["alerts", "deliver", "--data-dir", str(tmp_path)]) == 0
    delivered = json.loads(capsys.readouterr().out)
    assert (delivered["delivered"], delivered["pending"]) == (1, 0)
    (request,) = receiver.received
    assert request.path == "/hook/path-token"
    assert request.json()["alerts"][0]["labels"]["alertname"] == "IngmonFeedStale"

    live_feed(lake, dataset="candles", now_ms=NOW_MS + 900_000, hours=1)
    fresh = build_snapshot(lake, settings, symbols=["BTCUSDT"], now_ms=NOW_MS + 900_000)
    alerts.evaluate(fresh, settings, now_ms=NOW_MS + 900_000)
    receiver.status = 503
    assert main(["alerts", "deliver", "--data-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["failed"] == 1
    assert "IngmonFeedStale resolved" in err
    assert "HTTP 503" in err
    assert outbox.outbox_pending(settings.state_dir) == 1


def test_alerts_status_of_a_missing_data_dir_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --data-dir: exit 2, one line."""
    assert main(["alerts", "status", "--data-dir", str(tmp_path / "nope")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1

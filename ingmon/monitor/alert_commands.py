"""The ``ingmon alerts`` subcommands: send a test alert, show the alert state, flush the outbox."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Literal

from ingmon.arguments import CommandParser, add_data_dir, settings_from

__all__ = ["EXIT_DELIVERY_FAILED", "register"]

# The receiver did not take the alert (no answer, or not 2xx); bad input stays 2.
EXIT_DELIVERY_FAILED = 1


def _say(line: str) -> None:
    print(f"ingmon alerts: {line}", file=sys.stderr)


def _cmd_test(args: argparse.Namespace) -> int:
    import httpx  # noqa: PLC0415 - keep --help fast

    from ingmon.errors import UsageError  # noqa: PLC0415
    from ingmon.monitor import webhooks  # noqa: PLC0415
    from ingmon.times import now_ms  # noqa: PLC0415

    url = webhooks.check_url(args.url)
    settings = settings_from(args)
    secret: str | None = None
    if args.secret_from_env:
        if settings.webhook_secret is None:
            raise UsageError("--secret-from-env: INGMON_WEBHOOK_SECRET is not set")
        secret = settings.webhook_secret.get_secret_value()
    body_format: Literal["alertmanager", "slack"] = args.format or settings.webhook_format
    clock = now_ms()
    labels = {"alertname": "IngmonTest", "severity": "none"}
    notification = webhooks.Notification(
        fingerprint=webhooks.fingerprint(labels),
        status="firing",
        labels=labels,
        annotations={
            "summary": "ingmon test alert",
            "description": "sent by `ingmon alerts test` to check that this receiver accepts "
            "ingmon's webhooks; nothing is wrong",
        },
        starts_at_ms=clock,
        ends_at_ms=None,
        generator_url=f"{settings.external_url}/dashboard",
    )
    if body_format == "slack":
        payload = webhooks.slack_payload([notification])
    else:
        payload = webhooks.alertmanager_payload([notification], external_url=settings.external_url)
    shown = webhooks.redact_url(url)
    try:
        with httpx.Client() as client:
            response = webhooks.post_webhook(
                client,
                url,
                webhooks.body_bytes(payload),
                secret=secret,
                timeout_seconds=settings.webhook_timeout_seconds,
                delivery_id=f"test-{clock}",
            )
    except httpx.HTTPError as error:
        reason = str(error).replace(url, shown) or type(error).__name__
        _say(f"error: no answer from {shown}: {type(error).__name__}: {reason}")
        return EXIT_DELIVERY_FAILED
    print(f"HTTP {response.status_code} {response.reason_phrase}".rstrip())
    if not 200 <= response.status_code < 300:
        _say(f"error: {shown} answered HTTP {response.status_code}")
        return EXIT_DELIVERY_FAILED
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ingmon.monitor import outbox  # noqa: PLC0415
    from ingmon.monitor.alerts import read_alert_state  # noqa: PLC0415
    from ingmon.times import iso_ms  # noqa: PLC0415

    settings = settings_from(args, reads_only=True)
    state_dir = settings.state_dir
    state = read_alert_state(state_dir)
    active = sorted(
        state.active,
        key=lambda a: (a.state != "firing", a.labels["alertname"], sorted(a.labels.items())),
    )
    entries = outbox.outbox_entries(state_dir)
    document = {
        "evaluated_at": iso_ms(state.evaluated_at_ms),
        "firing": sum(1 for alert in active if alert.state == "firing"),
        "pending": sum(1 for alert in active if alert.state == "pending"),
        "active": [alert.to_dict() for alert in active],
        "resolved": [alert.to_dict() for alert in state.resolved],
        "outbox": {
            "pending": outbox.outbox_pending(state_dir),
            "entries": [entry.to_dict(with_body=False) for entry in entries],
        },
        "deliveries": outbox.delivery_counts(state_dir),
    }
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


def _cmd_deliver(args: argparse.Namespace) -> int:
    from ingmon.monitor.outbox import deliver  # noqa: PLC0415
    from ingmon.times import now_ms  # noqa: PLC0415

    settings = settings_from(args, reads_only=True)
    delivery = deliver(settings, now_ms=now_ms())
    print(json.dumps(delivery.to_dict(), indent=2, ensure_ascii=False))
    for result in delivery.results:
        if result.outcome == "failure":
            _say(f"{result.alertname} {result.status} to {result.url}: {result.error}")
    return EXIT_DELIVERY_FAILED if delivery.failed else 0


def register(subparsers: Any) -> None:
    """Add ``alerts`` to the ``ingmon`` command tree."""
    parser = subparsers.add_parser(
        "alerts",
        help="webhook alerts: send a test alert, show the state, flush the outbox",
        description="The alert rules run in `ingmon worker`; these commands test a receiver, "
        "show the active alerts and the webhook outbox, and deliver what is due.",
    )
    commands = parser.add_subparsers(
        dest="alerts_command", metavar="COMMAND", parser_class=CommandParser, required=True
    )
    test = commands.add_parser(
        "test",
        help="send one synthetic firing alert to a URL and print the HTTP status",
        description="POST one synthetic firing alert (alertname IngmonTest) to URL, "
        "synchronously, and print the receiver's HTTP status. Exit 0 on a 2xx answer, 1 when "
        "the receiver cannot be reached or answers otherwise, 2 for a bad URL.",
    )
    test.add_argument("--url", required=True, help="the webhook URL (http or https)")
    test.add_argument(
        "--secret-from-env",
        action="store_true",
        help="sign the body with INGMON_WEBHOOK_SECRET (environment or .env; never a flag, "
        "so it stays out of the process list)",
    )
    test.add_argument(
        "--format",
        choices=("alertmanager", "slack"),
        help="body format (default: INGMON_WEBHOOK_FORMAT, else alertmanager)",
    )
    test.set_defaults(handler=_cmd_test)

    status = commands.add_parser(
        "status",
        help="active alerts and the outbox as JSON",
        description="Print the pending and firing alerts, the last day's resolved ones, the "
        "webhook outbox and the delivery counters as JSON (read from DATA_DIR/state).",
    )
    add_data_dir(status)
    status.set_defaults(handler=_cmd_status)

    flush = commands.add_parser(
        "deliver",
        help="post the due outbox entries once",
        description="Post every due entry of the webhook outbox once (what the worker does "
        "each tick) and print the outcome as JSON. Exit 1 when an attempt failed (the entry "
        "stays in the outbox with its next attempt).",
    )
    add_data_dir(flush)
    flush.set_defaults(handler=_cmd_deliver)

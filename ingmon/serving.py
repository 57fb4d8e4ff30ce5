"""``ingmon serve``: one ``panel serve`` process for the dashboard, the JSON API and Prometheus.

It validates the flags (one line and exit 2 for bad input), then replaces itself with

    python -m panel serve <workbench/dashboard.py> --plugins ingmon.api --liveness
        --port PORT --address ADDRESS [--basic-auth FILE] [--allow-websocket-origin …]

so that signals (systemd's SIGTERM) reach the server directly. Settings travel in the
environment, never on the command line: ``INGMON_DATA_DIR`` and ``INGMON_METRICS_TOKEN`` for
``ingmon.api`` and the dashboard, ``PANEL_COOKIE_SECRET`` and ``PANEL_OAUTH_*`` for Panel. Basic
auth is handed over as a JSON file ``{"user": "password"}`` — Panel's own format, and the only
way to make it check the user name — held in an anonymous in-memory file (``memfd``) that
``/proc/self/fd/N`` names, so no password is written to disk or shown by ``ps``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import importlib.util
import json
import os
import secrets
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingmon.arguments import add_data_dir, int_in, positive_int, settings_from
from ingmon.errors import UsageError

__all__ = [
    "OAUTH_PROVIDERS",
    "ServePlan",
    "check_port_free",
    "dashboard_path",
    "plan_serve",
    "register",
]

# Panel 1.9's OAuth providers (panel.auth.AUTH_PROVIDERS); ingmon may not import Panel.
OAUTH_PROVIDERS = (
    "auth0",
    "auth_code",
    "azure",
    "azurev2",
    "bitbucket",
    "generic",
    "github",
    "gitlab",
    "google",
    "okta",
    "pam",
    "password",
)
# Environment variables that carry secrets to the server: shown masked by --dry-run.
_SECRET_ENV = frozenset(
    {"PANEL_COOKIE_SECRET", "PANEL_OAUTH_SECRET", "PANEL_OAUTH_ENCRYPTION", "INGMON_METRICS_TOKEN"}
)
# What ``ingmon serve`` sets itself: a value of the caller's environment would conflict.
_PANEL_AUTH_ENV = (
    "PANEL_BASIC_AUTH",
    "PANEL_OAUTH_PROVIDER",
    "PANEL_OAUTH_KEY",
    "PANEL_OAUTH_SECRET",
    "PANEL_OAUTH_ENCRYPTION",
    "PANEL_OAUTH_REDIRECT_URI",
)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def dashboard_path() -> Path:
    """``workbench/dashboard.py``: the copy shipped in the wheel (``ingmon/_workbench``), else
    the repository's (an editable install)."""
    package = Path(__file__).resolve().parent
    for root in (package / "_workbench", package.parent):
        candidate = root / "workbench" / "dashboard.py"
        if candidate.is_file():
            return candidate
    raise UsageError(
        f"the dashboard is missing: no workbench/dashboard.py in {package / '_workbench'} "
        f"or {package.parent} (reinstall ingmon)"
    )


@dataclass
class ServePlan:
    """The server's command line, the environment it adds, and what to tell the user."""

    argv: list[str]
    env: dict[str, str]
    drop_env: tuple[str, ...]
    notes: list[str] = field(default_factory=list)
    inherit_fds: list[int] = field(default_factory=list)

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        merged = {k: v for k, v in base.items() if k not in self.drop_env}
        merged.update(self.env)
        return merged

    def describe(self) -> str:
        """The command and the variables it sets, secrets masked (``--dry-run``)."""
        lines = [" ".join(self.argv)]
        for name in sorted(self.env):
            shown = "***" if name in _SECRET_ENV else self.env[name]
            lines.append(f"  {name}={shown}")
        return "\n".join(lines)


def _users_from_file(path: Path) -> None:
    """Check a basic-auth file: JSON ``{"user": "password", …}`` (Panel reads it at login)."""
    try:
        users = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        reason = getattr(error, "strerror", None) or "not JSON"
        raise UsageError(f"--basic-auth file {str(path)!r} is unreadable: {reason}") from None
    if (
        not isinstance(users, dict)
        or not users
        or not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in users.items())
    ):
        raise UsageError(
            f'--basic-auth file {str(path)!r} must hold a JSON object {{"user": "password", …}}'
        )


def _secret_file(text: str, *, name: str) -> tuple[str, int | None]:
    """A path the server can open to read ``text``: an inherited in-memory file on Linux
    (nothing on disk), else a private temporary file (0600 in a 0700 directory)."""
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create(name, 0)
        os.write(descriptor, text.encode("utf-8"))
        os.set_inheritable(descriptor, True)
        return f"/proc/self/fd/{descriptor}", descriptor
    directory = Path(tempfile.mkdtemp(prefix="ingmon-serve-"))
    target = directory / f"{name}.json"
    handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    return str(target), None


def _basic_auth_argument(value: str) -> tuple[str, int | None]:
    """``USER:PASSWORD`` or a JSON file of users → the file Panel's ``--basic-auth`` reads."""
    path = Path(value).expanduser()
    if path.is_file():
        _users_from_file(path)
        return str(path.resolve()), None
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        # Never echo the value: it may be a password typed without its user.
        raise UsageError(
            "--basic-auth (or INGMON_BASIC_AUTH) must be USER:PASSWORD or an existing JSON "
            'file {"user": "password", …}'
        )
    return _secret_file(json.dumps({user: password}), name="ingmon-basic-auth")


def _check_encryption_key(key: str) -> None:
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise UsageError(
            "--oauth-encryption-key must be 32 url-safe base64-encoded bytes "
            "(generate one with `panel oauth-secret`)"
        )
    if importlib.util.find_spec("cryptography") is None:
        raise UsageError(
            "--oauth-encryption-key needs the cryptography package: pip install cryptography"
        )


def check_port_free(address: str, port: int) -> None:
    """Fail early, in one line, when the port is taken (the server would die with a traceback)."""
    try:
        infos = socket.getaddrinfo(
            address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise UsageError(f"--address {address!r} cannot be resolved: {error.strerror}") from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                raise UsageError(
                    f"cannot listen on {address}:{port}: {error.strerror} "
                    "(another server? choose --port)"
                ) from None


def _origins(args: argparse.Namespace, address: str, port: int) -> tuple[list[str], list[str]]:
    """The websocket origins Bokeh accepts (without them the page loads but stays empty)."""
    if args.allow_websocket_origin:
        return list(args.allow_websocket_origin), []
    origins = [f"localhost:{port}", f"127.0.0.1:{port}"]
    notes = []
    if address in ("", "0.0.0.0", "::"):
        notes.append(
            "listening on every interface: a browser on another machine needs "
            f"--allow-websocket-origin HOST:{port} with the host name it uses"
        )
    elif address not in _LOOPBACK:
        origins.append(f"{address}:{port}")
    return origins, notes


def plan_serve(args: argparse.Namespace, *, environ: Mapping[str, str]) -> ServePlan:
    """Validate the flags and settings, and say how the server is started (no side effect but
    the in-memory basic-auth file)."""
    settings = settings_from(
        args,
        reads_only=True,
        server_host=args.address,
        server_port=args.port,
        cookie_secret=args.cookie_secret,
        metrics_token=args.metrics_token,
    )
    address, port = settings.server_host, settings.server_port
    # --basic-auth may name a file, which INGMON_BASIC_AUTH (user:password) may not.
    basic_auth = args.basic_auth or (
        None if settings.basic_auth is None else settings.basic_auth.get_secret_value()
    )
    if args.oauth_provider and basic_auth is not None:
        raise UsageError("choose one login: --basic-auth or --oauth-provider, not both")

    dashboard = dashboard_path()
    argv = [
        sys.executable,
        "-m",
        "panel",
        "serve",
        str(dashboard),
        "--plugins",
        "ingmon.api",
        "--liveness",
        "--port",
        str(port),
        "--address",
        address,
    ]
    # The dashboard imports the workbench package from beside the script.
    python_path = [
        str(dashboard.parent.parent),
        *filter(None, environ.get("PYTHONPATH", "").split(os.pathsep)),
    ]
    env = {
        "INGMON_DATA_DIR": str(settings.data_dir.resolve()),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
    }
    if settings.metrics_token is not None:
        env["INGMON_METRICS_TOKEN"] = settings.metrics_token.get_secret_value()
    login = basic_auth is not None or bool(args.oauth_provider)
    # Our login replaces one configured through Panel's variables (Panel refuses both).
    plan = ServePlan(argv=argv, env=env, drop_env=_PANEL_AUTH_ENV if login else ())
    if basic_auth is not None:
        path, descriptor = _basic_auth_argument(basic_auth)
        argv += ["--basic-auth", path]
        if descriptor is not None:
            plan.inherit_fds.append(descriptor)
    if login:
        # Panel's own login/logout pages load their logo from cdn.holoviz.org: ours don't.
        templates = dashboard_path().parent / "templates"
        if basic_auth is not None:
            argv += ["--basic-login-template", str(templates / "login.html")]
        argv += ["--logout-template", str(templates / "logout.html")]
    if args.oauth_provider:
        if args.oauth_provider != "pam" and not (args.oauth_key and args.oauth_secret):
            raise UsageError(
                f"--oauth-provider {args.oauth_provider} needs --oauth-key and --oauth-secret"
            )
        env["PANEL_OAUTH_PROVIDER"] = args.oauth_provider
        for flag, name in (
            ("oauth_key", "PANEL_OAUTH_KEY"),
            ("oauth_secret", "PANEL_OAUTH_SECRET"),
            ("oauth_redirect_uri", "PANEL_OAUTH_REDIRECT_URI"),
        ):
            if getattr(args, flag):
                env[name] = getattr(args, flag)
        if args.oauth_encryption_key:
            _check_encryption_key(args.oauth_encryption_key)
            env["PANEL_OAUTH_ENCRYPTION"] = args.oauth_encryption_key
    elif any(getattr(args, flag) for flag in ("oauth_key", "oauth_secret", "oauth_encryption_key")):
        raise UsageError("--oauth-key/--oauth-secret/--oauth-encryption-key need --oauth-provider")

    if settings.cookie_secret is not None:
        env["PANEL_COOKIE_SECRET"] = settings.cookie_secret.get_secret_value()
    elif login and not environ.get("PANEL_COOKIE_SECRET"):
        env["PANEL_COOKIE_SECRET"] = secrets.token_urlsafe(32)
        plan.notes.append(
            "no cookie secret set: generated one for this run, so logins end when the server "
            "restarts (set INGMON_COOKIE_SECRET to keep them)"
        )

    origins, notes = _origins(args, address, port)
    plan.notes += notes
    for origin in origins:
        argv += ["--allow-websocket-origin", origin]
    if args.num_threads is not None:
        argv += ["--num-threads", str(args.num_threads)]
    check_port_free(address, port)
    return plan


def _cmd_serve(args: argparse.Namespace) -> int:  # noqa: RET503 - execve does not return
    plan = plan_serve(args, environ=os.environ)
    for note in plan.notes:
        print(f"ingmon serve: {note}", file=sys.stderr)
    if args.dry_run:
        print(plan.describe())
        return 0
    print(
        f"ingmon serve: dashboard http://{_shown_host(args, plan)}/dashboard · API /api/ · "
        "Prometheus /metrics/prometheus",
        file=sys.stderr,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(plan.argv[0], plan.argv, plan.environment(os.environ))


def _shown_host(args: argparse.Namespace, plan: ServePlan) -> str:
    port = plan.argv[plan.argv.index("--port") + 1]
    address = plan.argv[plan.argv.index("--address") + 1]
    host = "localhost" if address in ("", "0.0.0.0", "::", "127.0.0.1") else address
    return f"{host}:{port}"


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``ingmon`` command tree."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the dashboard, the JSON API and /metrics/prometheus (panel serve)",
        description="Run one server: the dashboard at /dashboard, the JSON API under /api/ "
        "(/api/openapi.json describes it), Prometheus at /metrics/prometheus and /liveness. "
        "It only reads the data root; run `ingmon worker` beside it to keep the data and the "
        "state fresh. Secrets are best given as INGMON_BASIC_AUTH, INGMON_COOKIE_SECRET and "
        "INGMON_METRICS_TOKEN (environment or .env): flags show in the shell's history.",
        epilog="exit status: 2 bad input (nothing started); otherwise the server's own",
    )
    add_data_dir(parser)
    parser.add_argument(
        "--port",
        type=int_in(1, 65535, name="port"),
        help="TCP port (default: INGMON_SERVER_PORT or 8080)",
    )
    parser.add_argument(
        "--address",
        metavar="HOST",
        help="interface to listen on (default: INGMON_SERVER_HOST or 127.0.0.1; 0.0.0.0 for all)",
    )
    parser.add_argument(
        "--basic-auth",
        metavar="USER:PASSWORD|FILE",
        help='require a login: USER:PASSWORD, or a JSON file {"user": "password", …} '
        "(default: INGMON_BASIC_AUTH; none: no login)",
    )
    parser.add_argument(
        "--cookie-secret",
        metavar="SECRET",
        help="signs the login cookies (default: INGMON_COOKIE_SECRET; generated per run when a "
        "login is required and none is set)",
    )
    oauth = parser.add_argument_group("OAuth login (Panel's providers)")
    oauth.add_argument(
        "--oauth-provider",
        choices=OAUTH_PROVIDERS,
        metavar="NAME",
        help=f"one of {', '.join(OAUTH_PROVIDERS)}",
    )
    oauth.add_argument("--oauth-key", metavar="KEY", help="the OAuth client id")
    oauth.add_argument("--oauth-secret", metavar="SECRET", help="the OAuth client secret")
    oauth.add_argument(
        "--oauth-encryption-key",
        metavar="KEY",
        help="encrypts the tokens in cookies (32 url-safe base64 bytes: `panel oauth-secret`; "
        "needs the cryptography package)",
    )
    oauth.add_argument("--oauth-redirect-uri", metavar="URL", help="the OAuth redirect URL")
    parser.add_argument(
        "--allow-websocket-origin",
        action="append",
        metavar="HOST[:PORT]",
        help="a host browsers reach the dashboard by (repeatable; default: localhost and "
        "127.0.0.1 at the port, and --address)",
    )
    parser.add_argument(
        "--metrics-token",
        metavar="TOKEN",
        help="require Authorization: Bearer TOKEN on /metrics/prometheus "
        "(default: INGMON_METRICS_TOKEN; none: open)",
    )
    parser.add_argument(
        "--num-threads",
        type=positive_int,
        metavar="N",
        help="threads for the dashboard's sessions (default: Panel's, none)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the panel command and the variables it gets (secrets masked), start nothing",
    )
    parser.set_defaults(handler=_cmd_serve)

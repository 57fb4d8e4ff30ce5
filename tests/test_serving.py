"""``ingmon serve``: flags and settings become the ``panel serve`` command and its environment,
with no secret on the command line; bad input is one line and exit 2 before anything starts.
(The real server is exercised end to end in tests/test_api.py.)"""

from __future__ import annotations

import argparse
import json
import os
import socket
from pathlib import Path

import pytest

from ingmon.cli import build_parser, main
from ingmon.serving import ServePlan, dashboard_path, plan_serve

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_panel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PANEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def port() -> int:
    """A port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free: int = probe.getsockname()[1]
    return free


def args_of(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def plan(*argv: str, environ: dict[str, str] | None = None) -> ServePlan:
    built = plan_serve(args_of(*argv), environ=environ or {})
    for descriptor in built.inherit_fds:  # the exec never happens here
        os.close(descriptor)
    return built


def option(built: ServePlan, flag: str) -> list[str]:
    """Every value given to ``flag`` on the server's command line."""
    return [built.argv[i + 1] for i, arg in enumerate(built.argv) if arg == flag]


def test_the_command_is_panel_serve_with_the_api_plugin(tmp_path: Path, port: int) -> None:
    """Without login: panel serve of the repository's dashboard with --plugins ingmon.api and
    --liveness, the data root in INGMON_DATA_DIR, the workbench importable, no cookie secret."""
    built = plan("--data-dir", str(tmp_path), "--port", str(port))
    assert built.argv[1:5] == ["-m", "panel", "serve", str(REPO / "workbench" / "dashboard.py")]
    assert dashboard_path() == REPO / "workbench" / "dashboard.py"
    assert option(built, "--plugins") == ["ingmon.api"]
    assert "--liveness" in built.argv
    assert option(built, "--port") == [str(port)]
    assert option(built, "--address") == ["127.0.0.1"]
    assert option(built, "--allow-websocket-origin") == [f"localhost:{port}", f"127.0.0.1:{port}"]
    assert "--basic-auth" not in built.argv
    assert built.env["INGMON_DATA_DIR"] == str(tmp_path.resolve())
    assert built.env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
    assert "PANEL_COOKIE_SECRET" not in built.env
    assert built.drop_env == ()


def test_user_and_password_travel_in_an_in_memory_file(tmp_path: Path, port: int) -> None:
    """--basic-auth USER:PASSWORD (split at the first colon) becomes Panel's JSON users file in
    a memfd named by /proc/self/fd/N, inherited by the server; nothing is on disk."""
    built = plan_serve(
        args_of("--data-dir", str(tmp_path), "--port", str(port), "--basic-auth", "al:p:w"),
        environ={},
    )
    try:
        (path,) = option(built, "--basic-auth")
        assert path == f"/proc/self/fd/{built.inherit_fds[0]}"
        assert os.get_inheritable(built.inherit_fds[0])
        assert json.loads(Path(path).read_text(encoding="utf-8")) == {"al": "p:w"}
        assert json.loads(Path(path).read_text(encoding="utf-8")) == {"al": "p:w"}  # re-readable
    finally:
        for descriptor in built.inherit_fds:
            os.close(descriptor)
    assert "p:w" not in " ".join(built.argv)
    assert not list(tmp_path.iterdir())


def test_a_users_file_is_passed_as_it_is(tmp_path: Path, port: int) -> None:
    """--basic-auth FILE with a JSON object of users: its absolute path goes to Panel."""
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": "a", "bob": "b"}), encoding="utf-8")
    built = plan("--data-dir", str(tmp_path), "--port", str(port), "--basic-auth", str(users))
    assert option(built, "--basic-auth") == [str(users.resolve())]
    assert built.inherit_fds == []


def test_a_login_without_cookie_secret_gets_one_generated(tmp_path: Path, port: int) -> None:
    """Panel needs a cookie secret to sign logins: without one, a random one for this run (and
    a note that logins end at a restart); a given one is passed in the environment."""
    built = plan("--data-dir", str(tmp_path), "--port", str(port), "--basic-auth", "a:b")
    secret = built.env["PANEL_COOKIE_SECRET"]
    assert len(secret) >= 40
    assert any("generated one for this run" in note for note in built.notes)
    again = plan("--data-dir", str(tmp_path), "--port", str(port), "--basic-auth", "a:b")
    assert again.env["PANEL_COOKIE_SECRET"] != secret
    given = plan(
        "--data-dir",
        str(tmp_path),
        "--port",
        str(port),
        "--basic-auth",
        "a:b",
        "--cookie-secret",
        "fixed-secret",
    )
    assert given.env["PANEL_COOKIE_SECRET"] == "fixed-secret"
    assert given.notes == []
    assert "PANEL_BASIC_AUTH" in given.drop_env  # Panel refuses a login from both places


def test_settings_apply_when_flags_are_absent(
    tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """INGMON_SERVER_PORT/HOST, INGMON_BASIC_AUTH, INGMON_COOKIE_SECRET and
    INGMON_METRICS_TOKEN take effect without flags; a flag wins over its setting."""
    monkeypatch.setenv("INGMON_SERVER_PORT", str(port))
    monkeypatch.setenv("INGMON_SERVER_HOST", "localhost")
    monkeypatch.setenv("INGMON_BASIC_AUTH", "carol:pw")
    monkeypatch.setenv("INGMON_COOKIE_SECRET", "from-env")
    monkeypatch.setenv("INGMON_METRICS_TOKEN", "tok-env")
    built = plan("--data-dir", str(tmp_path))
    assert option(built, "--port") == [str(port)]
    assert option(built, "--address") == ["localhost"]
    assert option(built, "--basic-auth")[0].startswith("/proc/self/fd/")
    assert built.env["PANEL_COOKIE_SECRET"] == "from-env"
    assert built.env["INGMON_METRICS_TOKEN"] == "tok-env"
    flagged = plan("--data-dir", str(tmp_path), "--metrics-token", "tok-flag")
    assert flagged.env["INGMON_METRICS_TOKEN"] == "tok-flag"


def test_dry_run_masks_secrets(
    tmp_path: Path, port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run prints the command and the variables, secret values as ***, and starts
    nothing."""
    code = main(
        [
            "serve",
            "--data-dir",
            str(tmp_path),
            "--port",
            str(port),
            "--basic-auth",
            "alice:hunter2",
            "--cookie-secret",
            "sig-secret",
            "--metrics-token",
            "bearer-secret",
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert " -m panel serve " in out and "--plugins ingmon.api --liveness" in out
    assert "PANEL_COOKIE_SECRET=***" in out and "INGMON_METRICS_TOKEN=***" in out
    for secret in ("hunter2", "sig-secret", "bearer-secret"):
        assert secret not in out


def test_oauth_settings_go_to_panels_environment(tmp_path: Path, port: int) -> None:
    """--oauth-*: Panel's PANEL_OAUTH_* variables (the secret never on the command line)."""
    built = plan(
        "--data-dir",
        str(tmp_path),
        "--port",
        str(port),
        "--oauth-provider",
        "github",
        "--oauth-key",
        "client-id",
        "--oauth-secret",
        "client-secret",
        "--oauth-redirect-uri",
        "https://ingmon.example/login",
    )
    assert built.env["PANEL_OAUTH_PROVIDER"] == "github"
    assert built.env["PANEL_OAUTH_KEY"] == "client-id"
    assert built.env["PANEL_OAUTH_SECRET"] == "client-secret"
    assert built.env["PANEL_OAUTH_REDIRECT_URI"] == "https://ingmon.example/login"
    assert "PANEL_COOKIE_SECRET" in built.env
    assert "client-secret" not in " ".join(built.argv)


def test_websocket_origins_follow_the_address(tmp_path: Path, port: int) -> None:
    """Every interface: a note that remote browsers need --allow-websocket-origin; given
    origins replace the defaults."""
    everywhere = plan("--data-dir", str(tmp_path), "--port", str(port), "--address", "0.0.0.0")
    assert any("--allow-websocket-origin" in note for note in everywhere.notes)
    chosen = plan(
        "--data-dir",
        str(tmp_path),
        "--port",
        str(port),
        "--allow-websocket-origin",
        "ingmon.example:443",
        "--allow-websocket-origin",
        "localhost:9999",
    )
    assert option(chosen, "--allow-websocket-origin") == ["ingmon.example:443", "localhost:9999"]
    threads = plan("--data-dir", str(tmp_path), "--port", str(port), "--num-threads", "4")
    assert option(threads, "--num-threads") == ["4"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--basic-auth", "no-colon-secret"], "must be USER:PASSWORD"),
        (["--basic-auth", ":pw"], "must be USER:PASSWORD"),
        (["--oauth-provider", "github"], "needs --oauth-key and --oauth-secret"),
        (["--oauth-key", "k"], "need --oauth-provider"),
        (
            ["--basic-auth", "a:b", "--oauth-provider", "github", "--oauth-key", "k"],
            "not both",
        ),
        (
            [
                *("--oauth-provider", "github", "--oauth-key", "k", "--oauth-secret", "s"),
                *("--oauth-encryption-key", "short"),
            ],
            "32 url-safe base64-encoded bytes",
        ),
        (["--address", "no.such.host.invalid"], "cannot be resolved"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    tmp_path: Path, port: int, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Each bad combination: exit 2, one line on stderr naming the problem, nothing started,
    and a would-be secret never echoed."""
    code = main(["serve", "--data-dir", str(tmp_path), "--port", str(port), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ingmon serve: error: ")
    assert message in err
    assert "no-colon-secret" not in err


def test_a_bad_users_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A users file that is not a JSON object of strings: exit 2 naming the file."""
    users = tmp_path / "users.json"
    for text in ("not json", "[1, 2]", '{"alice": 3}', "{}"):
        users.write_text(text, encoding="utf-8")
        assert main(["serve", "--data-dir", str(tmp_path), "--basic-auth", str(users)]) == 2
        err = capsys.readouterr().err
        assert str(users) in err and err.count("\n") == 1


def test_a_taken_port_or_missing_data_dir_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port something already listens on, and a data root that does not exist: exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert main(["serve", "--data-dir", str(tmp_path), "--port", str(busy)]) == 2
    assert f"cannot listen on 127.0.0.1:{busy}" in capsys.readouterr().err
    assert main(["serve", "--data-dir", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_argument_types_are_checked_by_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Out-of-range port, unknown OAuth provider, zero threads: argparse's one line, exit 2."""
    for argv in (
        ["--port", "70000"],
        ["--oauth-provider", "myspace"],
        ["--num-threads", "0"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", "--data-dir", str(tmp_path), *argv])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith("ingmon serve: error: ")

"""`emaildoctor smtp-test` as a user runs it: the installed command, against real SMTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from tests.commands import clean_env, run
from tests.plugin.scripted_smtp import Behaviour, scripted_server

PASSWORD = "correct horse battery staple"
SEND_AS = "550 5.7.60 SMTP; Client does not have permissions to send as this sender"


async def run_cli(*args: str, extra_env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return await run(*args, env=clean_env(SMTP_PASSWORD=PASSWORD, **(extra_env or {})), within=60)


def _args(port: int, ca_file: Path, *extra: str, password: bool = True) -> list[str]:
    args = ["smtp-test", "--host", "localhost", "--port", str(port), "--ca-file", str(ca_file), "--timeout", "2"]
    args += ["--user", "admin@business.com", "--from", "admin@business.com"]
    if password:
        args += ["--password-env", "SMTP_PASSWORD"]
    return args + list(extra)


@pytest.mark.parametrize(
    ("behaviour", "mode", "extra", "exit_code", "stage", "code"),
    [
        ({}, "starttls", [], 0, "done", None),
        ({"users": {"admin@business.com": "something else"}}, "starttls", [], 28, "auth", "auth_failed"),
        ({"replies": {"mail": SEND_AS}}, "starttls", ["--from", "alice@business.com"], 23, "mail", "send_as_denied"),
        ({}, "starttls", ["--security", "tls"], 29, "tls", "tls_mode_mismatch"),
        ({}, "untrusted", [], 29, "tls", "tls_certificate_invalid"),
        ({}, "starttls", ["--security", "none"], 28, "auth", "auth_unavailable"),
        ({"delays": {"ehlo": 5.0}}, "starttls", [], 22, "ehlo", "timeout"),
        ({"replies": {"banner": "554 5.7.1 no service for you"}}, "starttls", [], 21, "banner", "server_unavailable"),
        ({"replies": {"rcpt": "550 5.1.1 no such user"}}, "starttls", [], 24, "rcpt", "recipient_rejected"),
        ({"replies": {"data_command": "554 5.7.1 no DATA today"}}, "starttls", [], 25, "data", None),
        ({"replies": {"data": "554 5.2.0 quota exceeded"}}, "starttls", [], 26, "data", "quota_exceeded"),
    ],
    ids=[
        "success",
        "wrong-password",
        "sender-not-allowed",
        "wrong-tls-mode",
        "untrusted-cert",
        "auth-after-starttls",
        "timeout",
        "banner-refused",
        "rcpt-refused",
        "data-refused",
        "message-refused",
    ],
)
async def test_json_stage_and_code(
    behaviour: dict[str, Any],
    mode: str,
    extra: list[str],
    exit_code: int,
    stage: str,
    code: str | None,
    ca_file: Path,
    server_tls: ssl.SSLContext,
    untrusted_tls: ssl.SSLContext,
) -> None:
    tls = untrusted_tls if mode == "untrusted" else server_tls
    async with scripted_server(Behaviour(**behaviour), tls=tls) as server:
        returncode, out, err = await run_cli(*_args(server.port, ca_file, "--json", *extra))
    assert returncode == exit_code, err
    result = json.loads(out)
    assert result["stage"] == stage
    assert result["ok"] is (exit_code == 0)
    if code is not None or exit_code == 0:
        assert (result["diagnosis"] or {}).get("code") == code
    assert set(result) >= {"ok", "stage", "reply", "diagnosis", "transcript", "timings_ms"}
    if code:
        assert set(result["diagnosis"]) >= {"code", "cause", "fix", "remedy"}
    assert PASSWORD not in out + err


async def test_closed_port(ca_file: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    returncode, out, _ = await run_cli(*_args(port, ca_file, "--json"))
    result = json.loads(out)
    assert (returncode, result["stage"], result["diagnosis"]["code"]) == (20, "connect", "connect_refused")


async def test_text_output_is_readable(ca_file: Path, server_tls: ssl.SSLContext) -> None:
    async with scripted_server(Behaviour(replies={"mail": SEND_AS}), tls=server_tls) as server:
        returncode, out, err = await run_cli(*_args(server.port, ca_file, "--from", "alice@business.com"))
    assert returncode == 23
    assert "✓ ehlo" in err and "✗ mail" in err  # not a terminal: plain progress lines on stderr
    assert "FAILED at mail:" in out
    assert "Send As denied  [send_as_denied; who acts: permission]" in out
    assert "admin@business.com signed in, but the message is from alice@business.com" in out
    assert "Run:   emaildoctor grant SendAs --mailbox alice@business.com --trustee admin@business.com" in out
    assert "Transcript (secrets redacted):" in out and "AUTH PLAIN <credentials of admin@business.com, redacted>" in out
    assert PASSWORD not in out


async def test_password_file(tmp_path: Path, ca_file: Path, server_tls: ssl.SSLContext) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    async with scripted_server(Behaviour(), tls=server_tls) as server:
        args = _args(server.port, ca_file, "--password-file", str(secret), "--json", password=False)
        returncode, out, _ = await run_cli(*args)
    assert returncode == 0 and json.loads(out)["ok"] is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--port", "587", "--security", "tls"], "--security tls on port 587"),
        (["--port", "465", "--security", "starttls"], "--security starttls on port 465"),
        (["--from", "alice@business.com\r\nBcc: x@evil.example"], "--from: contains a line break"),
        (["--to", "not an address"], "--to: 'not an address' is not an email address"),
        (["--timeout", "0"], "--timeout: 0 s is out of range"),
        (["--password-env", "NOT_SET_ANYWHERE"], "environment variable NOT_SET_ANYWHERE is not set"),
        (["--password-env", "SMTP_PASSWORD", "--oauth"], "not allowed with argument"),
        (["--ca-file", "/nonexistent/ca.pem"], "--ca-file: /nonexistent/ca.pem: no such file"),
        # What aiosmtplib would refuse only after connecting (ValueError): refused before, in words.
        (["--helo", "mail example"], "--helo: 'mail example' is not a host name"),
        (["--helo", "mail\u2028x.example"], "--helo: 'mail\\u2028x.example' is not a host name"),  # shown escaped
        (["--from", '"a\u2028b"@business.com'], "--from: contains a line break"),
        (["--to", '"a\u0085b"@business.com'], "--to: contains a line break"),
    ],
)
async def test_bad_arguments_exit_2_and_change_nothing(extra: list[str], message: str, ca_file: Path) -> None:
    args = ["smtp-test", "--host", "localhost", "--from", "admin@business.com", "--user", "admin@business.com"]
    returncode, out, err = await run_cli(*args, *extra)
    assert returncode == 2
    assert message in err
    assert out == ""
    assert "Traceback" not in err


async def test_help_teaches() -> None:
    returncode, out, _ = await run_cli("smtp-test", "--help")
    assert returncode == 0
    assert "examples:" in out and "--password-env" in out and "exit status" in out


async def test_swaks_habits_server_host_port_header_body_and_quit_after(
    tmp_path: Path, ca_file: Path, server_tls: ssl.SSLContext
) -> None:
    body = tmp_path / "body.txt"
    body.write_text("Hello from the helpdesk.\n", encoding="utf-8")
    behaviour = Behaviour()
    async with scripted_server(behaviour, tls=server_tls) as server:
        args = _args(server.port, ca_file, "--json", "--header", "X-Ticket: 4711", "--header", "Subject: hello")
        args[args.index("--host") : args.index("--host") + 4] = ["--server", f"localhost:{server.port}"]
        returncode, out, err = await run_cli(*args, "--body", f"@{body}")
        assert returncode == 0, err
        assert json.loads(out)["ok"] is True
        message = behaviour.received[0]
        assert (message["X-Ticket"], message["Subject"]) == ("4711", "hello")
        assert message["X-Emaildoctor-Test-Id"] == json.loads(out)["test_id"]
        assert str(message.get_payload()).strip() == "Hello from the helpdesk."

        returncode, out, err = await run_cli(*_args(server.port, ca_file, "--json", "--quit-after", "EHLO"))
        result = json.loads(out)
        assert (returncode, result["ok"], result["stage"]) == (0, True, "ehlo")
        assert set(result["timings_ms"]) == {"connect", "banner", "ehlo"}
        assert [line.split()[0] for line in behaviour.auth_lines_seen] == ["PLAIN"]  # no AUTH after EHLO
        assert len(behaviour.received) == 1  # and no second message


async def test_auth_mismatch_names_what_the_server_offers(ca_file: Path, server_tls: ssl.SSLContext) -> None:
    async with scripted_server(Behaviour(mechanisms=("LOGIN", "XOAUTH2")), tls=server_tls) as server:
        returncode, out, _ = await run_cli(*_args(server.port, ca_file, "--json", "--auth", "plain"))
    diagnosis = json.loads(out)["diagnosis"]
    assert (returncode, diagnosis["code"]) == (28, "auth_mechanism_unsupported")
    assert diagnosis["fix"].startswith("The server offers LOGIN, XOAUTH2; use --auth login")
    assert "it offers LOGIN, XOAUTH2" in diagnosis["cause"]

"""swaks habits of `emaildoctor smtp-test`, without a server: host:port, --quit-after, --header, --body, the
password rule off a terminal, the per-stage exit codes, and settings refused before anything is sent."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from plugin.classify import Stage
from plugin.cli import main
from plugin.cli_smtp import EXIT_CODES, exit_code, read_body, split_host
from plugin.errors import ConfigError
from plugin.probe_diagnosis import CLI_SOURCE, auth_advice
from plugin.probe_request import ProbeRequest, ProbeResult
from plugin.settings import Security
from plugin.testmessage import build_test_message, parse_header

BASE = ["smtp-test", "--from", "admin@business.com"]


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("smtp.office365.com", ("smtp.office365.com", None)),
        ("smtp.office365.com:587", ("smtp.office365.com", 587)),
        ("localhost:2525", ("localhost", 2525)),
        ("[::1]:25", ("::1", 25)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("::1", ("::1", None)),  # a bare IPv6 address is a host, not host:port
    ],
)
def test_split_host(text: str, expected: tuple[str, int | None]) -> None:
    assert split_host(text) == expected


def test_parse_header() -> None:
    assert parse_header("X-Ticket: 4711") == ("X-Ticket", "4711")
    assert parse_header("Subject:  hello world ") == ("Subject", "hello world")
    for bad, words in [
        ("no colon here", "is not a header"),
        (": empty name", "is not a header"),
        ("Bad Name: x", "is not a header name"),
        ("X-A: one\r\nBcc: evil@example.com", "line break"),
        ("Message-ID: <mine@example.com>", "identifies the test message"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_header(bad)


def test_headers_replace_or_add_and_body_replaces_the_text() -> None:
    message = build_test_message(
        from_addr="a@b.example",
        to_addr="c@d.example",
        sender=None,
        test_id="ED-1",
        headers=[("Subject", "mine"), ("X-One", "1"), ("X-One", "2")],
        body="just this\n",
    )
    assert message.get_all("Subject") == ["mine"]
    assert message.get_all("X-One") == ["1", "2"]
    assert message["X-Emaildoctor-Test-Id"] == "ED-1"
    assert message.get_content() == "just this\n"


def test_read_body(tmp_path: Path) -> None:
    assert read_body("plain words") == "plain words"
    path = tmp_path / "body.txt"
    path.write_text("from a file\n", encoding="utf-8")
    assert read_body(f"@{path}") == "from a file\n"
    with pytest.raises(ConfigError, match="--body: cannot read"):
        read_body(f"@{tmp_path / 'missing.txt'}")


def _result(stage: Stage, ok: bool = False, message_id: str | None = None) -> ProbeResult:
    return ProbeResult(ok, stage, None, None, (), {}, "ED-1", message_id=message_id)


def test_exit_code_per_stage() -> None:
    assert exit_code(_result(Stage.DONE, ok=True)) == 0
    assert exit_code(_result(Stage.EHLO, ok=True)) == 0  # --quit-after ehlo: what ran succeeded
    codes = {stage: exit_code(_result(stage)) for stage in EXIT_CODES}
    assert codes == {
        Stage.CONNECT: 20,
        Stage.BANNER: 21,
        Stage.EHLO: 22,
        Stage.MAIL: 23,
        Stage.RCPT: 24,
        Stage.DATA: 25,
        Stage.AUTH: 28,
        Stage.TLS: 29,
    }
    assert exit_code(_result(Stage.DATA, message_id="<x@y>")) == 26  # refused after the message was sent
    assert len(set(codes.values()) | {0, 1, 2, 26}) == len(codes) + 4  # all distinct


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--host", "localhost", "--port", "0"], "--port 0 is not a TCP port"),
        (["--server", "localhost:0"], "--port: 0 is not a TCP port"),
        (["--host", "localhost:2525", "--port", "587"], "names port 2525 but --port says 587; give the port once"),
        (["--host", "localhost", "--user", "admin@business.com"], "--user admin@business.com needs a password"),
        (["--host", "localhost", "--header", "no colon"], "--header: 'no colon' is not a header"),
        (["--host", "localhost", "--header", "To: a@b.example", "--header", "To: c@d.example"], "--header/--body"),
        (["--host", "localhost", "--body", "@/nonexistent/body.txt"], "--body: cannot read /nonexistent/body.txt"),
        (["--host", "localhost", "--quit-after", "lunch"], "invalid choice: 'lunch'"),
    ],
)
def test_refused_before_anything_is_sent(args: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(*BASE, *args)
    err += capsys.readouterr().err  # argparse writes its own errors to sys.stderr
    assert code == 2, err
    assert words in err
    assert out == "" and "Traceback" not in err


def test_no_password_is_asked_when_quitting_before_auth() -> None:
    code, out, err = run(*BASE, "--host", "localhost", "--port", "1", "--user", "a@b.example", "--quit-after", "tls")
    assert "needs a password" not in err and code == 20  # it tried to connect (nothing listens on port 1)
    assert "FAILED at connect" in out


def test_ca_file_that_is_not_pem(tmp_path: Path) -> None:
    for content in (b"", b"this is not a certificate\n", b"-----BEGIN CERTIFICATE-----\nnot base64\n"):
        path = tmp_path / "ca.pem"
        path.write_bytes(content)
        code, _, err = run(*BASE, "--host", "localhost", "--ca-file", str(path))
        assert code == 2, err
        assert f"--ca-file: {path} holds no PEM certificate" in err or f"--ca-file: {path} is not a PEM" in err
        assert "TLS" not in err.replace("PEM", "")  # not a TLS version problem


def test_help_documents_the_exit_codes_and_habits(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run("smtp-test", "--help")
    out = capsys.readouterr().out  # argparse prints help to sys.stdout
    assert code == 0
    for words in ("--server", "HOST[:PORT]", "--quit-after", "--header", "--body", "-v, --verbose", "exit status"):
        assert words in out
    for number in ("20", "21", "22", "23", "24", "25", "26", "28", "29"):
        assert f"\n  {number}  " in out


async def _token() -> str:
    return "token"


def test_auth_advice_names_what_the_server_offers() -> None:
    cli = ProbeRequest("h", 587, Security.STARTTLS, "a@b.example", "a@b.example", user="a@b.example")
    cli = dataclasses.replace(cli, server_source=CLI_SOURCE)
    assert auth_advice(("login", "xoauth2"), "plain", cli).startswith(
        "The server offers LOGIN, XOAUTH2; use --auth login"
    )
    assert auth_advice(("xoauth2",), "plain", cli).startswith(
        "The server offers XOAUTH2: no password sign-in. Sign in with OAuth (XOAUTH2) instead (smtp-test --oauth)"
    )
    oauth = dataclasses.replace(cli, token_source=_token)
    assert auth_advice(("plain", "login"), "xoauth2", oauth).startswith(
        "The server offers PLAIN, LOGIN, not XOAUTH2; sign in with a password instead (--password-env or "
        "--password-file, --auth plain)"
    )
    assert "none of which emaildoctor can use" in auth_advice(("cram-md5", "ntlm"), "plain", cli)
    directory = dataclasses.replace(cli, server_source="the system Outgoing Mail Server")
    advice = auth_advice(("login",), "plain", directory)
    assert advice.startswith("The server offers LOGIN; use LOGIN for this account") and "--auth" not in advice

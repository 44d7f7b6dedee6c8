"""The SMTP probe against real SMTP servers on 127.0.0.1: server behaviour -> stage and diagnosis code."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from plugin.classify import Stage
from plugin.diagnosis import Code, Right
from plugin.probe import run_probe
from plugin.probe_request import ProbeRequest, ProbeResult
from plugin.settings import Security
from tests.plugin.scripted_smtp import Behaviour, RunningServer, scripted_server

PASSWORD = "correct horse battery staple"
ADMIN = "admin@business.com"
ALICE = "alice@business.com"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlMzY1LmNvbSJ9.c2lnbmF0dXJl"

SEND_AS_5760 = "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
SEND_AS_52252 = (
    "554 5.2.252 SendAsDenied; admin@business.com not allowed to send as alice@business.com; "
    "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due "
    "to a permanent exception with message [BeginDiagnosticData]Cannot submit message."
)


@dataclass
class Case:
    behaviour: dict[str, Any] = field(default_factory=dict)
    mode: str = "starttls"
    security: Security = Security.STARTTLS
    password: str | None = PASSWORD
    oauth: bool = False
    from_addr: str = ADMIN
    sender: str | None = None
    timeout: float = 5.0
    cert: str = "trusted"
    port: int | None = None


async def _token() -> str:
    return TOKEN


def _request(case: Case, port: int, ca_file: Path, host: str = "localhost") -> ProbeRequest:
    return ProbeRequest(
        host=host,
        port=case.port or port,
        security=case.security,
        from_addr=case.from_addr,
        to_addr=case.from_addr,
        user=ADMIN if case.password or case.oauth else None,
        password=SecretStr(case.password) if case.password and not case.oauth else None,
        token_source=_token if case.oauth else None,
        sender=case.sender,
        timeout=case.timeout,
        ca_file=ca_file,
    )


@asynccontextmanager
async def _serve(case: Case, server_tls: ssl.SSLContext, untrusted: ssl.SSLContext) -> AsyncIterator[RunningServer]:
    behaviour = Behaviour(**case.behaviour)
    if "tokens" not in case.behaviour:
        behaviour.tokens[TOKEN] = ADMIN
    tls = server_tls if case.cert == "trusted" else untrusted
    async with scripted_server(behaviour, mode=case.mode, tls=tls if case.mode != "plain" else None) as server:
        yield server


CASES: dict[str, tuple[Case, Stage, Code | None]] = {
    "success": (Case(), Stage.DONE, None),
    "success over implicit TLS": (Case(mode="tls", security=Security.TLS), Stage.DONE, None),
    "success with XOAUTH2": (Case(oauth=True), Stage.DONE, None),
    "success with LOGIN only": (Case(behaviour={"mechanisms": ("LOGIN",)}), Stage.DONE, None),
    "wrong password": (Case(password="wrong"), Stage.AUTH, Code.AUTH_FAILED),
    "send as denied at MAIL FROM (5.7.60)": (
        Case(from_addr=ALICE, behaviour={"replies": {"mail": SEND_AS_5760}}),
        Stage.MAIL,
        Code.SEND_AS_DENIED,
    ),
    "send as denied after DATA (5.2.252)": (
        Case(from_addr=ALICE, behaviour={"replies": {"data": SEND_AS_52252}}),
        Stage.DATA,
        Code.SEND_AS_DENIED,
    ),
    "postfix: sender not owned by user": (
        Case(
            from_addr=ALICE,
            behaviour={
                "replies": {
                    "rcpt": "553 5.7.1 <alice@business.com>: Sender address rejected: not owned by user admin@business.com"
                }
            },
        ),
        Stage.RCPT,
        Code.SEND_AS_DENIED,
    ),
    "implicit TLS spoken to a STARTTLS port": (Case(security=Security.TLS), Stage.TLS, Code.TLS_MODE_MISMATCH),
    "STARTTLS spoken to an implicit-TLS port 465": (
        Case(mode="tls", security=Security.NONE, timeout=1.0),
        Stage.BANNER,
        Code.TLS_MODE_MISMATCH,
    ),
    "untrusted certificate": (Case(cert="untrusted"), Stage.TLS, Code.TLS_CERTIFICATE_INVALID),
    "AUTH only after STARTTLS, SSL off": (Case(security=Security.NONE), Stage.AUTH, Code.AUTH_UNAVAILABLE),
    "STARTTLS not offered": (Case(behaviour={"offer_starttls": False}), Stage.TLS, Code.STARTTLS_UNAVAILABLE),
    "XOAUTH2 not offered": (
        Case(oauth=True, behaviour={"mechanisms": ("LOGIN", "PLAIN")}),
        Stage.AUTH,
        Code.AUTH_MECHANISM_UNSUPPORTED,
    ),
    "XOAUTH2 token refused with an error challenge": (
        Case(oauth=True, behaviour={"tokens": {"other": ADMIN}, "xoauth2_error_challenge": True}),
        Stage.AUTH,
        Code.OAUTH_TOKEN_INVALID,
    ),
    "SMTP AUTH disabled for the tenant": (
        Case(
            behaviour={
                "replies": {
                    "auth": "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
                }
            }
        ),
        Stage.AUTH,
        Code.SMTP_AUTH_DISABLED,
    ),
    "security defaults": (
        Case(
            behaviour={
                "replies": {
                    "auth": "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator."
                }
            }
        ),
        Stage.AUTH,
        Code.BASIC_AUTH_BLOCKED,
    ),
    "basic auth retired": (
        Case(
            behaviour={"replies": {"auth": "550 5.7.30 Basic authentication is not supported for Client Submission."}}
        ),
        Stage.AUTH,
        Code.BASIC_AUTH_BLOCKED,
    ),
    "mail without signing in": (
        Case(password=None, behaviour={"replies": {"mail": "530 5.7.57 Client not authenticated to send mail."}}),
        Stage.MAIL,
        Code.NOT_AUTHENTICATED,
    ),
    "bad outbound sender": (
        Case(behaviour={"replies": {"mail": "550 5.1.8 Bad outbound sender"}}),
        Stage.MAIL,
        Code.SENDER_REJECTED,
    ),
    "recipient unknown": (
        Case(behaviour={"replies": {"rcpt": "550 5.1.1 User unknown"}}),
        Stage.RCPT,
        Code.RECIPIENT_REJECTED,
    ),
    "thread limit (432 4.3.2)": (
        Case(behaviour={"replies": {"mail": "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"}}),
        Stage.MAIL,
        Code.THROTTLED,
    ),
    "daily quota": (
        Case(
            behaviour={
                "replies": {
                    "data": "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message"
                }
            }
        ),
        Stage.DATA,
        Code.QUOTA_EXCEEDED,
    ),
    "tenant blocked": (
        Case(behaviour={"replies": {"mail": "550 5.7.705 Access denied, tenant has exceeded threshold"}}),
        Stage.MAIL,
        Code.TENANT_BLOCKED,
    ),
    "greeting 421": (
        Case(behaviour={"replies": {"banner": "421 4.3.2 Service not available, closing transmission channel"}}),
        Stage.BANNER,
        Code.SERVER_UNAVAILABLE,
    ),
    "unrecognised reply after DATA": (
        Case(behaviour={"replies": {"data": "550 Message content rejected by local policy"}}),
        Stage.DATA,
        Code.UNKNOWN,
    ),
    **{
        f"timeout at {stage}": (
            Case(timeout=1.0, behaviour={"delays": {key: 3.0}}),
            stage,
            Code.TIMEOUT,
        )
        for key, stage in (
            ("banner", Stage.BANNER),
            ("ehlo", Stage.EHLO),
            ("starttls", Stage.TLS),
            ("auth", Stage.AUTH),
            ("mail", Stage.MAIL),
            ("rcpt", Stage.RCPT),
            ("data", Stage.DATA),
        )
    },
}


@pytest.mark.parametrize("name", list(CASES))
async def test_server_behaviour_maps_to_stage_and_code(
    name: str, ca_file: Path, server_tls: ssl.SSLContext, untrusted_tls: ssl.SSLContext
) -> None:
    case, stage, code = CASES[name]
    async with _serve(case, server_tls, untrusted_tls) as server:
        result = await run_probe(_request(case, server.port, ca_file))
    assert result.stage is stage, result.transcript
    if code is None:
        assert result.ok, result.diagnosis
        assert result.diagnosis is None
        assert len(server.behaviour.received) == 1
        assert server.behaviour.received[0]["Subject"] == f"emaildoctor test {result.test_id}"
    else:
        assert not result.ok
        assert result.diagnosis is not None
        assert result.diagnosis.code is code, (result.diagnosis, result.transcript)
        assert not server.behaviour.received
    _assert_no_secret(result)


def _assert_no_secret(result: ProbeResult) -> None:
    text = repr(result.to_json())
    for secret in (PASSWORD, TOKEN, "Y29ycmVjdCBob3JzZ"):
        assert secret not in text


async def test_send_as_denied_names_principal_from_and_right(ca_file: Path, server_tls: ssl.SSLContext) -> None:
    behaviour = Behaviour(replies={"data": SEND_AS_52252})
    async with scripted_server(behaviour, tls=server_tls) as server:
        result = await run_probe(_request(Case(from_addr=ALICE), server.port, ca_file))
    diagnosis = result.diagnosis
    assert diagnosis is not None and diagnosis.code is Code.SEND_AS_DENIED
    assert "admin@business.com" in diagnosis.cause and "alice@business.com" in diagnosis.cause
    assert "Send As" in diagnosis.cause
    assert diagnosis.fix_action is not None
    assert (diagnosis.fix_action.right, diagnosis.fix_action.mailbox, diagnosis.fix_action.trustee) == (
        Right.SEND_AS,
        ALICE,
        ADMIN,
    )
    assert result.reply is not None and result.reply.code == 554 and result.reply.enhanced == "5.2.252"


async def test_send_on_behalf_header_and_right(ca_file: Path, server_tls: ssl.SSLContext) -> None:
    behaviour = Behaviour(replies={"data": SEND_AS_52252})
    async with scripted_server(behaviour, tls=server_tls) as server:
        result = await run_probe(_request(Case(from_addr=ALICE, sender=ADMIN), server.port, ca_file))
    # smtp-test reads no rights: it must not claim Send on Behalf is missing (SMTP may not honour it at all)
    diagnosis = result.diagnosis
    assert diagnosis is not None and diagnosis.code is Code.SEND_AS_DENIED and diagnosis.fix_action is None
    assert "Send on Behalf" in diagnosis.cause and "does not hold" not in diagnosis.cause
    assert "does not read mailbox rights, so it cannot tell whether" in diagnosis.cause
    assert f"emaildoctor perms {ALICE}" in diagnosis.fix
    assert f"emaildoctor grant SendAs --mailbox {ALICE} --trustee {ADMIN}" in diagnosis.fix


async def test_message_headers_and_envelope(ca_file: Path, server_tls: ssl.SSLContext) -> None:
    behaviour = Behaviour()
    async with scripted_server(behaviour, tls=server_tls) as server:
        result = await run_probe(_request(Case(sender="assistant@business.com"), server.port, ca_file))
    assert result.ok
    message = behaviour.received[0]
    assert message["From"] == ADMIN and message["To"] == ADMIN
    assert message["Sender"] == "assistant@business.com"
    assert message["Message-ID"] == result.message_id
    assert message["Date"]
    assert result.test_id in message["Subject"]
    assert behaviour.envelopes == [(ADMIN, [ADMIN])]
    assert result.tls is not None and result.tls.version.startswith("TLSv1.")
    assert set(result.timings_ms) == {"connect", "banner", "ehlo", "tls", "auth", "mail", "rcpt", "data"}


@pytest.mark.parametrize(
    ("quit_after", "sent"),
    [(Stage.CONNECT, []), (Stage.TLS, []), (Stage.AUTH, ["PLAIN"]), (Stage.RCPT, ["PLAIN"])],
)
async def test_quit_after(quit_after: Stage, sent: list[str], ca_file: Path, server_tls: ssl.SSLContext) -> None:
    behaviour = Behaviour()
    async with scripted_server(behaviour, tls=server_tls) as server:
        request = _request(Case(), server.port, ca_file)
        result = await run_probe(ProbeRequest(**{**request.__dict__, "quit_after": quit_after}))
    assert result.ok and result.stage is quit_after
    assert [line.split()[0] for line in behaviour.auth_lines_seen] == sent
    assert not behaviour.received


async def test_transcript_redacts_login_password_and_token(ca_file: Path, server_tls: ssl.SSLContext) -> None:
    for case in (Case(behaviour={"mechanisms": ("LOGIN",)}), Case(oauth=True), Case()):
        behaviour = Behaviour(**case.behaviour)
        behaviour.tokens[TOKEN] = ADMIN
        async with scripted_server(behaviour, tls=server_tls) as server:
            result = await run_probe(_request(case, server.port, ca_file))
        assert result.ok, result.transcript
        _assert_no_secret(result)
        assert any("redacted" in line for line in result.transcript)


async def test_secrets_never_reach_logs(
    ca_file: Path, server_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for case in (Case(behaviour={"mechanisms": ("LOGIN",)}), Case(oauth=True), Case(), Case(password="wrong")):
        behaviour = Behaviour(**case.behaviour)
        behaviour.tokens[TOKEN] = ADMIN
        async with scripted_server(behaviour, tls=server_tls) as server:
            result = await run_probe(_request(case, server.port, ca_file))
        _assert_no_secret(result)
    assert caplog.records, "the servers and clients log at DEBUG; this test must see their lines"
    for secret in (PASSWORD, TOKEN, "Y29ycmVjdCBob3JzZ"):
        assert secret not in caplog.text


async def test_closed_port_is_connect_refused(ca_file: Path) -> None:
    with _closed_port() as port:
        result = await run_probe(_request(Case(), port, ca_file))
    assert (result.stage, result.diagnosis and result.diagnosis.code) == (Stage.CONNECT, Code.CONNECT_REFUSED)


async def test_silent_host_is_connect_timeout(ca_file: Path) -> None:
    with _full_backlog() as port:
        result = await run_probe(_request(Case(timeout=1.0), port, ca_file))
    assert (result.stage, result.diagnosis and result.diagnosis.code) == (Stage.CONNECT, Code.CONNECT_TIMEOUT)


async def test_unknown_host_is_dns_unresolved(ca_file: Path) -> None:
    result = await run_probe(_request(Case(), 587, ca_file, host="nonexistent.invalid"))
    assert (result.stage, result.diagnosis and result.diagnosis.code) == (Stage.CONNECT, Code.DNS_UNRESOLVED)


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_no_common_cipher_is_tls_failed(mode: str, ca_file: Path, ca: Any) -> None:
    """The server offers only SHA-1 ciphers, which a modern client refuses: the handshake fails."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
    case = Case(mode=mode, security=Security(mode))
    async with scripted_server(Behaviour(), mode=mode, tls=context) as server:
        result = await run_probe(_request(case, server.port, ca_file))
    assert result.stage is Stage.TLS, result.transcript
    assert result.diagnosis is not None and result.diagnosis.code is Code.TLS_FAILED


@contextmanager
def _closed_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    yield port


@contextmanager
def _full_backlog() -> Iterator[int]:
    """A listener that never accepts: once its queue is full, the kernel drops further SYNs (no answer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    try:
        yield port
    finally:
        filler.close()
        listener.close()

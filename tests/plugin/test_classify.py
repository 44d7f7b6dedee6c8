"""Reply parsing and classification: real replies from Exchange Online, on-premises Exchange, Postfix, Exim and
Gmail, servers without enhanced codes, and property tests that the classifier is total."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.classify import Failure, FailureKind, Stage, classify, classify_reply
from plugin.diagnosis import Code
from plugin.replies import Reply, parse_reply, parse_reply_line
from plugin.settings import Security

REAL_REPLIES: list[tuple[str, Stage, str, Code]] = [
    # Exchange Online (shared/reference/exchange-online.md, section 3)
    (
        "exo",
        Stage.AUTH,
        "451 5.7.3 STARTTLS is required to send mail [SG2PR02CA0073.apcprd02.prod.outlook.com 2024-07-24T03:43:18.298Z 08DCAB6EB788477A]",
        Code.TLS_MODE_MISMATCH,
    ),
    (
        "exo",
        Stage.MAIL,
        "451 5.7.3 STARTTLS is required to send mail [SG2PR02CA0073.apcprd02.prod.outlook.com]",
        Code.TLS_MODE_MISMATCH,
    ),
    ("exo", Stage.TLS, "454 4.7.0 TLS not available due to local problem", Code.TLS_FAILED),
    (
        "exo",
        Stage.AUTH,
        "535 5.7.3 Authentication unsuccessful [BN0PR04CA0001.namprd04.prod.outlook.com]",
        Code.AUTH_FAILED,
    ),
    (
        "exo",
        Stage.AUTH,
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
        Code.SMTP_AUTH_DISABLED,
    ),
    (
        "exo",
        Stage.AUTH,
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
        Code.SMTP_AUTH_DISABLED,
    ),
    (
        "exo",
        Stage.AUTH,
        "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator.",
        Code.BASIC_AUTH_BLOCKED,
    ),
    (
        "exo",
        Stage.AUTH,
        "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator.",
        Code.BASIC_AUTH_BLOCKED,
    ),
    (
        "exo",
        Stage.AUTH,
        "535 5.7.139 Authentication unsuccessful, basic authentication is disabled.",
        Code.BASIC_AUTH_BLOCKED,
    ),
    (
        "exo",
        Stage.AUTH,
        "535 5.7.139 Authentication unsuccessful, federated STS service was unreachable.",
        Code.SERVER_UNAVAILABLE,
    ),
    (
        "exo",
        Stage.AUTH,
        "550 5.7.30 Basic authentication is not supported for Client Submission.",
        Code.BASIC_AUTH_BLOCKED,
    ),
    ("exo", Stage.MAIL, "530 5.7.57 Client not authenticated to send mail.", Code.NOT_AUTHENTICATED),
    (
        "exo",
        Stage.MAIL,
        "530 5.7.57 SMTP; Client was not authenticated to send anonymous mail during MAIL FROM [BN0PR04CA0001]",
        Code.NOT_AUTHENTICATED,
    ),
    (
        "exo",
        Stage.MAIL,
        "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
        Code.SEND_AS_DENIED,
    ),
    (
        "exo",
        Stage.MAIL,
        "554 5.7.60 SMTP; Client does not have permissions to send as this sender",
        Code.SEND_AS_DENIED,
    ),
    (
        "exo",
        Stage.DATA,
        "554 5.2.252 SendAsDenied; admin@business.com not allowed to send as alice@business.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
        Code.SEND_AS_DENIED,
    ),
    (
        "exo",
        Stage.DATA,
        "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message",
        Code.SEND_AS_DENIED,
    ),
    ("exo", Stage.MAIL, "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", Code.THROTTLED),
    (
        "exo",
        Stage.DATA,
        "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message",
        Code.QUOTA_EXCEEDED,
    ),
    ("exo", Stage.MAIL, "550 5.1.8 Bad outbound sender", Code.SENDER_REJECTED),
    ("exo", Stage.MAIL, "550 5.7.705 Access denied, tenant has exceeded threshold", Code.TENANT_BLOCKED),
    ("exo", Stage.MAIL, "550 5.7.708 Access denied, traffic not accepted from this IP", Code.TENANT_BLOCKED),
    ("exo", Stage.MAIL, "550 5.7.750 Client blocked from sending from unregistered domain", Code.TENANT_BLOCKED),
    (
        "exo",
        Stage.RCPT,
        "550 5.7.703 Your message can't be delivered because one or more recipients are blocked by your organization's tenant recipient block policy",
        Code.RECIPIENT_REJECTED,
    ),
    ("exo", Stage.MAIL, "451 4.7.500 Server busy. Please try again later from [1.2.3.4]. (AS761)", Code.THROTTLED),
    ("exo", Stage.AUTH, "504 5.7.4 Unrecognized authentication type", Code.AUTH_MECHANISM_UNSUPPORTED),
    ("exo", Stage.EHLO, "503 5.5.2 Send hello first", Code.UNKNOWN),
    # on-premises Exchange
    ("exchange", Stage.MAIL, "550 5.7.1 Client does not have permissions to send as this sender", Code.SEND_AS_DENIED),
    ("exchange", Stage.MAIL, "530 5.7.1 Client was not authenticated", Code.NOT_AUTHENTICATED),
    (
        "exchange",
        Stage.BANNER,
        "421 4.3.2 Service not available, closing transmission channel",
        Code.SERVER_UNAVAILABLE,
    ),
    # Postfix
    (
        "postfix",
        Stage.RCPT,
        "553 5.7.1 <alice@business.com>: Sender address rejected: not owned by user admin@business.com",
        Code.SEND_AS_DENIED,
    ),
    ("postfix", Stage.RCPT, "554 5.7.1 <bob@elsewhere.example>: Relay access denied", Code.NOT_AUTHENTICATED),
    (
        "postfix",
        Stage.RCPT,
        "550 5.1.1 <nobody@business.com>: Recipient address rejected: User unknown in virtual mailbox table",
        Code.RECIPIENT_REJECTED,
    ),
    ("postfix", Stage.AUTH, "535 5.7.8 Error: authentication failed: authentication failure", Code.AUTH_FAILED),
    (
        "postfix",
        Stage.MAIL,
        "450 4.7.1 <alice@business.com>: Sender address rejected: temporarily deferred, rate limit",
        Code.THROTTLED,
    ),
    (
        "postfix",
        Stage.RCPT,
        "452 4.2.2 <bob@business.com>: Recipient address rejected: mailbox over quota",
        Code.SERVER_UNAVAILABLE,
    ),
    # Exim (no enhanced codes by default)
    ("exim", Stage.AUTH, "535 Incorrect authentication data", Code.AUTH_FAILED),
    ("exim", Stage.AUTH, "503 AUTH command used when not advertised", Code.AUTH_UNAVAILABLE),
    ("exim", Stage.MAIL, "550 Submission mode requires authentication", Code.NOT_AUTHENTICATED),
    ("exim", Stage.RCPT, "550 relay not permitted", Code.RECIPIENT_REJECTED),
    ("exim", Stage.BANNER, "554 SMTP synchronization error", Code.SERVER_UNAVAILABLE),
    # Gmail
    (
        "gmail",
        Stage.AUTH,
        "535 5.7.8 Username and Password not accepted. For more information, go to https://support.google.com/mail/?p=BadCredentials",
        Code.AUTH_FAILED,
    ),
    ("gmail", Stage.AUTH, "534 5.7.9 Application-specific password required.", Code.BASIC_AUTH_BLOCKED),
    ("gmail", Stage.MAIL, "530 5.7.0 Must issue a STARTTLS command first.", Code.AUTH_UNAVAILABLE),
    ("gmail", Stage.DATA, "550 5.4.5 Daily user sending quota exceeded.", Code.QUOTA_EXCEEDED),
    ("gmail", Stage.MAIL, "421 4.7.0 Try again later, closing connection.", Code.THROTTLED),
    # no enhanced codes, generic
    ("generic", Stage.AUTH, "535 authentication failed", Code.AUTH_FAILED),
    ("generic", Stage.AUTH, "454 Temporary authentication failure", Code.SERVER_UNAVAILABLE),
    ("generic", Stage.MAIL, "553 sorry, that domain isn't in my list of allowed rcpthosts", Code.SENDER_REJECTED),
    ("generic", Stage.DATA, "552 message size exceeds fixed maximum message size", Code.UNKNOWN),
]


@pytest.mark.parametrize(
    ("server", "stage", "line", "code"), REAL_REPLIES, ids=[f"{r[0]}-{r[3]}" for r in REAL_REPLIES]
)
def test_real_replies(server: str, stage: Stage, line: str, code: Code) -> None:
    reply = parse_reply_line(line)
    assert reply is not None
    assert classify_reply(stage, reply) is code


def test_xoauth2_rejection_is_a_token_problem_not_a_password() -> None:
    reply = parse_reply_line("535 5.7.3 Authentication unsuccessful [xyz]")
    assert reply is not None
    assert classify_reply(Stage.AUTH, reply, mechanism="xoauth2") is Code.OAUTH_TOKEN_INVALID
    assert classify_reply(Stage.AUTH, reply, mechanism="login") is Code.AUTH_FAILED


def test_relay_denied_after_signing_in_is_the_recipient() -> None:
    reply = parse_reply_line("554 5.7.1 <bob@elsewhere.example>: Relay access denied")
    assert reply is not None
    assert classify_reply(Stage.RCPT, reply, authenticated=True) is Code.RECIPIENT_REJECTED


@pytest.mark.parametrize(
    ("message", "enhanced", "text"),
    [
        ("5.7.60 SMTP; Client does not", "5.7.60", "SMTP; Client does not"),
        ("Authentication unsuccessful", None, "Authentication unsuccessful"),
        ("mx.example Hello\nSIZE 1000\nAUTH LOGIN", None, "mx.example Hello SIZE 1000 AUTH LOGIN"),
        ("5.2.0 first\n5.2.0 second", "5.2.0", "first second"),
        ("", None, ""),
    ],
)
def test_parse_reply(message: str, enhanced: str | None, text: str) -> None:
    reply = parse_reply(550, message)
    assert (reply.enhanced, reply.text) == (enhanced, text)


def test_parse_reply_line_multiline_and_garbage() -> None:
    reply = parse_reply_line("250-mx Hello\n250-SIZE 10\n250 AUTH LOGIN")
    assert reply is not None and reply.code == 250 and reply.text == "mx Hello SIZE 10 AUTH LOGIN"
    assert parse_reply_line("hello world") is None
    assert parse_reply_line("") is None


@given(st.text(max_size=300))
def test_parse_reply_line_never_crashes(line: str) -> None:
    reply = parse_reply_line(line)
    assert reply is None or 0 <= reply.code <= 999


@given(
    stage=st.sampled_from(list(Stage)),
    code=st.integers(min_value=200, max_value=599),
    enhanced=st.one_of(st.none(), st.from_regex(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True)),
    text=st.text(max_size=200),
    mechanism=st.sampled_from([None, "plain", "login", "xoauth2"]),
    authenticated=st.booleans(),
)
def test_classify_reply_is_total(
    stage: Stage, code: int, enhanced: str | None, text: str, mechanism: str | None, authenticated: bool
) -> None:
    result = classify_reply(stage, Reply(code, enhanced, text), mechanism=mechanism, authenticated=authenticated)
    assert isinstance(result, Code)


@given(
    stage=st.sampled_from(list(Stage)),
    kind=st.sampled_from(list(FailureKind)),
    security=st.sampled_from(list(Security)),
    port=st.integers(min_value=1, max_value=65535),
    detail=st.text(max_size=80),
    missing=st.sampled_from(["", "starttls", "auth", "xoauth2", "plain"]),
    line=st.one_of(st.none(), st.text(max_size=120)),
)
def test_classify_failure_is_total(
    stage: Stage, kind: FailureKind, security: Security, port: int, detail: str, missing: str, line: str | None
) -> None:
    reply = parse_reply_line(line) if line is not None else None
    failure = Failure(stage=stage, kind=kind, reply=reply, detail=detail, missing=missing, security=security, port=port)
    assert isinstance(classify(failure), Code)


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (Failure(Stage.CONNECT, FailureKind.DNS), Code.DNS_UNRESOLVED),
        (Failure(Stage.CONNECT, FailureKind.REFUSED), Code.CONNECT_REFUSED),
        (Failure(Stage.CONNECT, FailureKind.TIMEOUT), Code.CONNECT_TIMEOUT),
        (Failure(Stage.CONNECT, FailureKind.UNREACHABLE), Code.CONNECT_TIMEOUT),
        (
            Failure(Stage.TLS, FailureKind.TLS_ERROR, detail="[SSL: WRONG_VERSION_NUMBER] wrong version number"),
            Code.TLS_MODE_MISMATCH,
        ),
        (Failure(Stage.TLS, FailureKind.TLS_ERROR, detail="sslv3 alert handshake failure"), Code.TLS_FAILED),
        (Failure(Stage.TLS, FailureKind.CERTIFICATE), Code.TLS_CERTIFICATE_INVALID),
        (Failure(Stage.BANNER, FailureKind.TIMEOUT, security=Security.STARTTLS, port=465), Code.TLS_MODE_MISMATCH),
        (
            Failure(Stage.BANNER, FailureKind.TIMEOUT, security=Security.STARTTLS, port=2525, tls_detected=True),
            Code.TLS_MODE_MISMATCH,
        ),
        (Failure(Stage.BANNER, FailureKind.TIMEOUT, security=Security.STARTTLS, port=2525), Code.TIMEOUT),
        (Failure(Stage.TLS, FailureKind.NOT_OFFERED, missing="starttls"), Code.STARTTLS_UNAVAILABLE),
        (Failure(Stage.AUTH, FailureKind.NOT_OFFERED, missing="auth"), Code.AUTH_UNAVAILABLE),
        (Failure(Stage.AUTH, FailureKind.NOT_OFFERED, missing="xoauth2"), Code.AUTH_MECHANISM_UNSUPPORTED),
        (Failure(Stage.AUTH, FailureKind.TOKEN, token_code=Code.GRAPH_ACCESS_DENIED), Code.GRAPH_ACCESS_DENIED),
        (Failure(Stage.AUTH, FailureKind.TOKEN), Code.OAUTH_TOKEN_INVALID),
        (Failure(Stage.MAIL, FailureKind.DISCONNECTED), Code.SERVER_UNAVAILABLE),
        (Failure(Stage.RCPT, FailureKind.TIMEOUT), Code.TIMEOUT),
    ],
)
def test_classify_failures_without_replies(failure: Failure, code: Code) -> None:
    assert classify(failure) is code

"""Turn what went wrong in an SMTP exchange into exactly one catalogue code.

Classification reads the stage, the reply code, the enhanced status code and the text together, so it
works for Exchange Online (whose exact replies are in shared/reference/exchange-online.md) and for
Postfix, Exim, Gmail, on-premises Exchange and servers that send no enhanced codes at all. Specific
signals (the words of a Send As denial, 5.7.139 variants, tenant blocks) win over stage defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from plugin.diagnosis import Code
from plugin.replies import Reply
from plugin.settings import Security


class Stage(StrEnum):
    CONNECT = "connect"
    BANNER = "banner"
    EHLO = "ehlo"
    TLS = "tls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    DONE = "done"


class FailureKind(StrEnum):
    DNS = "dns"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    TLS_ERROR = "tls_error"
    CERTIFICATE = "certificate"
    DISCONNECTED = "disconnected"
    REPLY = "reply"
    NOT_OFFERED = "not_offered"
    TOKEN = "token"  # noqa: S105 - a failure kind, not a secret


@dataclass(frozen=True)
class Failure:
    """What the probe saw when a stage failed."""

    stage: Stage
    kind: FailureKind
    reply: Reply | None = None
    detail: str = ""
    missing: str = ""
    """For NOT_OFFERED: what the server did not offer (``starttls``, ``auth`` or a mechanism name)."""
    security: Security = Security.STARTTLS
    port: int = 587
    mechanism: str | None = None
    offered: tuple[str, ...] = ()
    """The AUTH mechanisms the server offered (lower case), when it listed any."""
    authenticated: bool = False
    tls_active: bool = False
    token_code: Code | None = None
    tls_detected: bool = False
    """The port answered a TLS handshake although the settings speak plain text first."""


_SEND_AS = re.compile(
    r"sendasdenied|send ?as denied|not allowed to send as|permissions? to send as|"
    r"not owned by (?:auth(?:enticated)? )?user|sender address rejected: not owned|"
    r"not authorized to send (?:as|on behalf)",
    re.IGNORECASE,
)
_SMTP_AUTH_DISABLED = re.compile(r"smtpclientauthentication is disabled|smtp_auth_disabled", re.IGNORECASE)
_BASIC_BLOCKED = re.compile(
    r"security defaults|did not meet the criteria|basic authentication is (?:disabled|not supported)|"
    r"legacy authentication|application-specific password required|web browser|conditional access",
    re.IGNORECASE,
)
_QUOTA = re.compile(r"quota|sending limit|daily user sending|submissionquotaexceeded|limit exceeded for", re.IGNORECASE)
_THROTTLE = re.compile(
    r"throttl|rate limit|too many (?:connections|messages|concurrent|requests)|thread limit|"
    r"try again later|concurrent|slow down|temporarily deferred",
    re.IGNORECASE,
)
_TENANT_BLOCK = re.compile(
    r"tenant has exceeded threshold|traffic not accepted from this ip|unregistered domain", re.IGNORECASE
)
_NOT_AUTHENTICATED = re.compile(
    r"not authenticated|authentication required|requires authentication|must authenticate|anonymous|"
    r"auth(?:entication)? first|"
    r"login first|relay(?:ing)? (?:access )?denied|unable to relay",
    re.IGNORECASE,
)
_STARTTLS_REQUIRED = re.compile(r"starttls is required", re.IGNORECASE)
_TLS_SERVER_PROBLEM = re.compile(r"tls not available", re.IGNORECASE)
_TLS_FIRST = re.compile(r"starttls (?:command )?first|must issue a starttls|encryption required", re.IGNORECASE)
_BAD_CREDENTIALS = re.compile(
    r"authentication (?:unsuccessful|failed|credentials invalid)|invalid credentials|incorrect authentication|"
    r"username and password not accepted|bad ?credentials|401|password",
    re.IGNORECASE,
)
_MODE_MISMATCH_TLS: tuple[str, ...] = (
    "wrong_version_number",
    "wrong version number",
    "unknown protocol",
    "record layer failure",
    "packet length too long",
    "http request",
    "unexpected eof while reading",
)
_IMPLICIT_PORTS = (465,)


def classify(failure: Failure) -> Code:
    """The one catalogue code for ``failure``. Total: every input gets a code, ``unknown`` at worst."""
    kind = failure.kind
    if kind is FailureKind.DNS:
        return Code.DNS_UNRESOLVED
    if kind is FailureKind.REFUSED:
        return Code.CONNECT_REFUSED
    if kind is FailureKind.UNREACHABLE:
        return Code.CONNECT_TIMEOUT
    if kind is FailureKind.TOKEN:
        return failure.token_code or Code.OAUTH_TOKEN_INVALID
    if kind is FailureKind.CERTIFICATE:
        return Code.TLS_CERTIFICATE_INVALID
    if kind is FailureKind.TLS_ERROR:
        detail = failure.detail.casefold()
        if any(marker in detail for marker in _MODE_MISMATCH_TLS):
            return Code.TLS_MODE_MISMATCH
        return Code.TLS_FAILED
    if kind is FailureKind.TIMEOUT:
        return _timeout(failure)
    if kind is FailureKind.NOT_OFFERED:
        return _not_offered(failure)
    if kind is FailureKind.DISCONNECTED:
        if failure.stage is Stage.BANNER and failure.security is not Security.TLS and failure.port in _IMPLICIT_PORTS:
            return Code.TLS_MODE_MISMATCH
        return Code.SERVER_UNAVAILABLE
    if failure.reply is None:
        return Code.UNKNOWN
    return classify_reply(
        failure.stage, failure.reply, mechanism=failure.mechanism, authenticated=failure.authenticated
    )


def _timeout(failure: Failure) -> Code:
    if failure.stage is Stage.CONNECT:
        return Code.CONNECT_TIMEOUT
    # Plain text to an implicit-TLS port: both sides wait for the other to speak first.
    plain_first = failure.stage is Stage.BANNER and failure.security is not Security.TLS
    if plain_first and (failure.tls_detected or failure.port in _IMPLICIT_PORTS):
        return Code.TLS_MODE_MISMATCH
    return Code.TIMEOUT


def _not_offered(failure: Failure) -> Code:
    if failure.missing == "starttls":
        return Code.STARTTLS_UNAVAILABLE
    if failure.missing == "auth":
        return Code.AUTH_UNAVAILABLE
    return Code.AUTH_MECHANISM_UNSUPPORTED


def classify_reply(stage: Stage, reply: Reply, *, mechanism: str | None = None, authenticated: bool = False) -> Code:
    """Classify a server reply seen at ``stage``."""
    text = reply.text
    enhanced = reply.enhanced or ""
    specific = _specific(stage, reply, text, enhanced)
    if specific is not None:
        return specific
    if reply.code == 530 or enhanced == "5.7.57" or (reply.code in (530, 550, 554) and _NOT_AUTHENTICATED.search(text)):
        if _TLS_FIRST.search(text):
            return Code.AUTH_UNAVAILABLE
        if authenticated and "relay" in text.casefold():
            return Code.RECIPIENT_REJECTED
        return Code.NOT_AUTHENTICATED
    if _TLS_FIRST.search(text) or reply.code == 538:
        return Code.AUTH_UNAVAILABLE
    if reply.transient:
        if reply.code in (421, 432, 450, 451, 452) and _THROTTLE.search(text):
            return Code.THROTTLED
        if enhanced.startswith("4.7.") and reply.code in (421, 451):
            return Code.THROTTLED
        return Code.SERVER_UNAVAILABLE
    return _by_stage(stage, reply, text, enhanced, mechanism)


def _specific(stage: Stage, reply: Reply, text: str, enhanced: str) -> Code | None:
    # "451 5.7.3 STARTTLS is required to send mail": AUTH or MAIL before STARTTLS, a TLS-mode problem, not an
    # outage; "454 4.7.0 TLS not available due to local problem": TLS broken on the server's side.
    if _STARTTLS_REQUIRED.search(text):
        return Code.TLS_MODE_MISMATCH
    if reply.code == 454 and _TLS_SERVER_PROBLEM.search(text):
        return Code.TLS_FAILED
    if enhanced in ("5.7.705", "5.7.708", "5.7.750") or _TENANT_BLOCK.search(text):
        return Code.TENANT_BLOCKED
    if enhanced == "5.7.60" or enhanced == "5.2.252" or _SEND_AS.search(text):
        return Code.SEND_AS_DENIED
    if _SMTP_AUTH_DISABLED.search(text):
        return Code.SMTP_AUTH_DISABLED
    if enhanced == "5.7.30" or (reply.permanent and _BASIC_BLOCKED.search(text)):
        return Code.BASIC_AUTH_BLOCKED
    if reply.code == 432 or (enhanced == "4.3.2" and _THROTTLE.search(text)):
        return Code.THROTTLED
    if "federated sts" in text.casefold():
        return Code.SERVER_UNAVAILABLE if "unreachable" in text.casefold() else Code.AUTH_FAILED
    if _QUOTA.search(text) and stage is not Stage.RCPT:
        return Code.QUOTA_EXCEEDED
    if enhanced == "5.1.8":
        return Code.SENDER_REJECTED
    if enhanced == "5.7.703":
        return Code.RECIPIENT_REJECTED
    return None


def _by_stage(stage: Stage, reply: Reply, text: str, enhanced: str, mechanism: str | None) -> Code:
    if stage is Stage.AUTH:
        if reply.code == 504 or enhanced == "5.7.4" or "unrecognized authentication type" in text.casefold():
            return Code.AUTH_MECHANISM_UNSUPPORTED
        if mechanism == "xoauth2" and reply.code in (334, 535, 550, 554, 534):
            return Code.OAUTH_TOKEN_INVALID
        if (
            reply.code in (535, 534, 550, 554)
            or enhanced in ("5.7.8", "5.7.3", "5.7.1")
            or _BAD_CREDENTIALS.search(text)
        ):
            return Code.AUTH_FAILED
        if reply.code == 503:
            return Code.AUTH_UNAVAILABLE
        return Code.UNKNOWN
    if stage is Stage.MAIL:
        return Code.SENDER_REJECTED if reply.permanent else Code.UNKNOWN
    if stage is Stage.RCPT:
        return Code.RECIPIENT_REJECTED if reply.permanent else Code.UNKNOWN
    if stage in (Stage.BANNER, Stage.EHLO) and reply.code in (554, 521, 550):
        return Code.SERVER_UNAVAILABLE
    if stage is Stage.TLS and reply.code in (454, 500, 502):
        return Code.STARTTLS_UNAVAILABLE
    return Code.UNKNOWN

"""Diagnosis as data: every failure becomes one :class:`Diagnosis` with a stable :class:`Code`.

The codes are a public contract (PRODUCT.md's catalogue): scripts match on them, the bot renders
them, the troubleshooting guide is generated from them. Add codes; never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Remedy(StrEnum):
    """Who has to act, and how: fix settings, fix credentials, grant a right, ask the provider, retry."""

    CONFIGURATION = "configuration"
    CREDENTIALS = "credentials"
    PERMISSION = "permission"
    REMOTE_POLICY = "remote_policy"
    TRANSIENT = "transient"


class Code(StrEnum):
    DNS_UNRESOLVED = "dns_unresolved"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    TLS_MODE_MISMATCH = "tls_mode_mismatch"
    TLS_CERTIFICATE_INVALID = "tls_certificate_invalid"
    TLS_FAILED = "tls_failed"
    STARTTLS_UNAVAILABLE = "starttls_unavailable"
    AUTH_UNAVAILABLE = "auth_unavailable"
    AUTH_MECHANISM_UNSUPPORTED = "auth_mechanism_unsupported"
    AUTH_FAILED = "auth_failed"
    SMTP_AUTH_DISABLED = "smtp_auth_disabled"
    BASIC_AUTH_BLOCKED = "basic_auth_blocked"
    OAUTH_TOKEN_INVALID = "oauth_token_invalid"  # noqa: S105 - a code, not a secret
    NOT_AUTHENTICATED = "not_authenticated"
    SEND_AS_DENIED = "send_as_denied"
    SEND_ON_BEHALF_NOT_HONOURED = "send_on_behalf_not_honoured"
    SENDER_REJECTED = "sender_rejected"
    RECIPIENT_REJECTED = "recipient_rejected"
    MISSING_EMAIL_ADDRESS = "missing_email_address"
    USER_NOT_FOUND = "user_not_found"
    MAILBOX_NOT_FOUND = "mailbox_not_found"
    AMBIGUOUS_USER = "ambiguous_user"
    FROM_OUTSIDE_TENANT = "from_outside_tenant"
    GRAPH_ACCESS_DENIED = "graph_access_denied"
    EXCHANGE_ROLE_MISSING = "exchange_role_missing"
    THROTTLED = "throttled"
    QUOTA_EXCEEDED = "quota_exceeded"
    TENANT_BLOCKED = "tenant_blocked"
    SERVER_UNAVAILABLE = "server_unavailable"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"


class Right(StrEnum):
    """Exchange Online mailbox rights, spelled as Exchange spells them."""

    SEND_AS = "SendAs"
    SEND_ON_BEHALF = "SendOnBehalf"
    FULL_ACCESS = "FullAccess"


@dataclass(frozen=True)
class FixAction:
    """A ready-to-run grant: ``emaildoctor grant {right} --mailbox {mailbox} --trustee {trustee}``."""

    right: Right
    mailbox: str
    trustee: str

    def command(self) -> str:
        return f"emaildoctor grant {self.right} --mailbox {self.mailbox} --trustee {self.trustee}"

    def to_json(self) -> dict[str, str]:
        return {"right": str(self.right), "mailbox": self.mailbox, "trustee": self.trustee}


@dataclass(frozen=True)
class Diagnosis:
    """One failure explained: the stable code, who must act, the cause and the fix in plain words.

    ``evidence`` holds the facts the verdict rests on (the server's reply, the stage, a token claim),
    already redacted, in the order a person should read them.
    """

    code: Code
    remedy: Remedy
    cause: str
    fix: str
    evidence: tuple[str, ...] = field(default=())
    fix_action: FixAction | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "code": str(self.code),
            "remedy": str(self.remedy),
            "cause": self.cause,
            "fix": self.fix,
            "evidence": list(self.evidence),
        }
        if self.fix_action is not None:
            data["fix_action"] = self.fix_action.to_json()
        return data

"""What Exchange Online decides during SMTP client submission: who may sign in (basic auth switches,
XOAUTH2 tokens), who may send as whom, quotas, and delivering accepted mail.

Rights are read through the *effective* (propagated) view of the tenant.
"""

from __future__ import annotations

import email.policy
import uuid
from dataclasses import dataclass, replace
from datetime import date
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses

from sandbox.graph_mail import deliver as deliver_message
from sandbox.rights import Trustee
from sandbox.state import Message, Tenant, User
from sandbox.tokens import InvalidTokenError, TokenIssuer

FRONTEND = "BN8PR12CA0001.outlook.office365.com"
BACKEND_HOST = "BN8PR12MB3210.namprd12.prod.outlook.com"
QUIT = "221 2.0.0 Service closing transmission channel"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = (
    f"535 5.7.3 Authentication unsuccessful [{FRONTEND.replace('outlook.office365.com', 'namprd12.prod.outlook.com')}]"
)
BASIC_RETIRED = "550 5.7.30 Basic authentication is not supported for Client Submission."
_139 = "535 5.7.139 Authentication unsuccessful, "
SMTP_AUTH_DISABLED = (
    _139
    + "SmtpClientAuthentication is disabled for the {scope}. Visit https://aka.ms/smtp_auth_disabled for more information."
)
SECURITY_DEFAULTS = _139 + "user is locked by your organization's security defaults policy. Contact your administrator."
CONDITIONAL_ACCESS = (
    _139 + "the request did not meet the criteria to be authenticated successfully. Contact your administrator."
)
BASIC_DISABLED = _139 + "basic authentication is disabled."
SEND_AS_ENVELOPE = "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
QUOTA = (
    "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a "
    "permanent exception with message [BeginDiagnosticData]Message submission quota was exceeded. [Hostname={host}]"
)


def send_as_denied(login: str, sender: str) -> str:
    return (
        f"554 5.2.252 SendAsDenied; {login} not allowed to send as {sender}; "
        "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due "
        "to a permanent exception with message [BeginDiagnosticData]Cannot submit message. 0.35250:0A00C184, "
        f"1.36674:0A000000, 1.61250:00000000, 1.45378:02000000 [Hostname={BACKEND_HOST}]"
    )


@dataclass
class Submission:
    tenant: Tenant
    login: User
    """The mailbox that signed in (for XOAUTH2, the ``user=`` mailbox)."""
    login_name: str


AuthOutcome = tuple[str, User | None, str]
"""(reply, the signed-in mailbox or None, the login name as given)."""


def auth_basic(tenant: Tenant, login: str, password: str) -> AuthOutcome:
    if tenant.basic_auth_retired:
        return BASIC_RETIRED, None, login
    user = tenant.user_by_address(login)
    if user is None or not user.account_enabled or user.smtp_password is None or user.smtp_password != password:
        return AUTH_FAILED, None, login
    if tenant.basic_auth_disabled:
        return BASIC_DISABLED, None, login
    if tenant.security_defaults:
        return SECURITY_DEFAULTS, None, login
    if tenant.conditional_access_block_legacy_auth:
        return CONDITIONAL_ACCESS, None, login
    scope = tenant.smtp_auth_disabled_for(user)
    if scope is not None:
        return SMTP_AUTH_DISABLED.format(scope=scope), None, login
    return AUTH_OK, user, login


def auth_xoauth2(tenant: Tenant, issuer: TokenIssuer, blob: bytes) -> AuthOutcome:
    """``base64("user=" + user + "\\x01auth=Bearer " + token + "\\x01\\x01")`` (already decoded)."""
    fields = dict(part.split("=", 1) for part in blob.decode(errors="replace").split("\x01") if "=" in part)
    login = fields.get("user", "")
    auth = fields.get("auth", "")
    if not login or not auth.lower().startswith("bearer "):
        return AUTH_FAILED, None, login
    try:
        claims = issuer.validate(auth[7:].strip(), "exchange")
    except InvalidTokenError:
        return AUTH_FAILED, None, login
    mailbox = tenant.user_by_address(login)
    if mailbox is None or not mailbox.has_mailbox:
        return AUTH_FAILED, None, login
    scope = tenant.smtp_auth_disabled_for(mailbox)
    if scope is not None:
        return SMTP_AUTH_DISABLED.format(scope=scope), None, login
    if claims.app_only:
        app = tenant.app(claims.app_id)
        allowed = (
            app is not None
            and "SMTP.SendAsApp" in claims.roles
            and app.exchange_service_principal
            and tenant.effective("FullAccess", mailbox, [Trustee("sp", app.service_principal_id)])
        )
    else:
        caller = tenant.users.get(claims.oid)
        allowed = (
            "SMTP.Send" in claims.scopes
            and caller is not None
            and (caller.id == mailbox.id or tenant.user_may("FullAccess", caller, mailbox))
        )
    return (AUTH_OK, mailbox, login) if allowed else (AUTH_FAILED, None, login)


def may_send_as(submission: Submission, from_address: str, sender_address: str | None) -> bool:
    tenant, login = submission.tenant, submission.login
    target = tenant.user_by_address(from_address)
    if target is None or not target.has_mailbox:
        return False
    if target.id == login.id or tenant.user_may("SendAs", login, target):
        return True
    if tenant.behaviour.smtp_send_on_behalf and sender_address:
        sender = tenant.user_by_address(sender_address)
        return sender is not None and sender.id == login.id and tenant.user_may("SendOnBehalf", login, target)
    return False


OUTBOUND_BLOCKS = {
    "threshold": "550 5.7.705 Access denied, tenant has exceeded threshold",
    "ip": "550 5.7.708 Access denied, traffic not accepted from this IP",
    "unregistered_domain": "550 5.7.750 Client blocked from sending from unregistered domain",
}
"""Microsoft's tenant-wide outbound blocks (SupportArticles 5.7.700-5.7.750), by ``Tenant.outbound_block``."""


def check_mail_from(submission: Submission, address: str) -> str | None:
    block = submission.tenant.outbound_block
    if block is not None:
        return OUTBOUND_BLOCKS[block]
    if submission.tenant.behaviour.smtp_send_as_check in ("mail", "both") and not may_send_as(
        submission, address, None
    ):
        return SEND_AS_ENVELOPE
    return None


def _parse(content: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(content)
    assert isinstance(message, EmailMessage)
    return message


def _first_address(message: EmailMessage, header: str) -> str | None:
    values = message.get_all(header) or []
    pairs = getaddresses([str(v) for v in values])
    return next((address for _, address in pairs if address), None)


def check_data(
    submission: Submission, mail_from: str, recipients: list[str], content: bytes, counts: dict[tuple[str, date], int]
) -> str | None:
    tenant = submission.tenant
    key = (submission.login.id, tenant.now().date())
    if counts.get(key, 0) + len(recipients) > tenant.behaviour.smtp_daily_recipient_limit:
        return QUOTA.format(host=BACKEND_HOST)
    if tenant.behaviour.smtp_send_as_check in ("data", "both"):
        message = _parse(content)
        header_from = _first_address(message, "From") or mail_from
        if not may_send_as(submission, header_from, _first_address(message, "Sender")):
            return send_as_denied(submission.login.upn, header_from)
    counts[key] = counts.get(key, 0) + len(recipients)
    return None


def deliver(submission: Submission, mail_from: str, recipients: list[str], content: bytes) -> str:
    """Put an accepted message into its recipients' mailboxes (and the sender's Sent Items); its Message-ID."""
    tenant, login = submission.tenant, submission.login
    parsed = _parse(content)
    from_address = _first_address(parsed, "From") or mail_from
    sender_address = _first_address(parsed, "Sender") or from_address
    message_id = str(parsed.get("Message-ID") or f"<{uuid.uuid4().hex.upper()}@{BACKEND_HOST}>").strip()
    body_part = parsed.get_body(preferencelist=("plain", "html"))
    body = body_part.get_content() if isinstance(body_part, EmailMessage) else ""
    from_user = tenant.user_by_address(from_address)
    sender_user = tenant.user_by_address(sender_address)
    record = Message(
        id="",
        internet_message_id=message_id,
        subject=str(parsed.get("Subject") or ""),
        body=str(body),
        body_content_type="html"
        if isinstance(body_part, EmailMessage) and body_part.get_content_subtype() == "html"
        else "text",
        from_address=from_address,
        from_name=from_user.display_name if from_user else from_address,
        sender_address=sender_address,
        sender_name=sender_user.display_name if sender_user else sender_address,
        to=[a for _, a in getaddresses([str(v) for v in parsed.get_all("To") or []]) if a],
        cc=[a for _, a in getaddresses([str(v) for v in parsed.get_all("Cc") or []]) if a],
        received=tenant.now(),
        headers={k: str(v) for k, v in parsed.items()},
        via="smtp",
    )
    deliver_message(tenant, record, recipients)
    tenant.deliver(login, _sent_copy(record))
    return message_id


def _sent_copy(message: Message) -> Message:
    return replace(message, id="AAMkA" + uuid.uuid4().hex, folder="sentitems")

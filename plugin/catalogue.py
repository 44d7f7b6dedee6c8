"""The wording of every diagnosis, in one place. The CLI, the Slack bot and the generated troubleshooting
guide (docs/troubleshooting.md) all render from here, so they always say the same thing.

Causes and fixes are written for a helpdesk person: they name who signs in, the From address and the
missing right in words, and say who has to do what.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from plugin.diagnosis import Code, Diagnosis, FixAction, Remedy, Right
from plugin.redact import redact

RIGHT_WORDS = {Right.SEND_AS: "Send As", Right.SEND_ON_BEHALF: "Send on Behalf", Right.FULL_ACCESS: "Full Access"}


@dataclass(frozen=True)
class Facts:
    """What is known about the failed send; every field is optional and the wording copes without it."""

    principal: str | None = None
    from_addr: str | None = None
    to_addr: str | None = None
    right: Right | None = None
    host: str | None = None
    port: int | None = None
    stage: str | None = None
    timeout: float | None = None
    reply: str | None = None
    user: str | None = None
    mechanism: str | None = None
    server_source: str | None = None
    detail: str | None = None
    """A short clause appended to the cause, e.g. ' for the mailbox admin@business.com'."""
    wait_minutes: float | None = None
    """How long Exchange may take to apply a new right (settings.m365.propagation_minutes)."""
    cmdlet: str | None = None
    """The Exchange cmdlet that was refused (exchange_role_missing)."""
    role: str | None = None
    """The Exchange role that would allow it (graph/exchange_roles.py)."""
    candidates: tuple[str, ...] = ()
    """ambiguous_user: each person the query matches, with where the record comes from."""
    domains: tuple[str, ...] = ()
    """from_outside_tenant: the organisation's domains (the first is named in the fix)."""


@dataclass(frozen=True)
class Entry:
    code: Code
    remedy: Remedy
    title: str
    meaning: str
    evidence: str
    cause: str
    fix: str


def _e(code: Code, remedy: Remedy, title: str, meaning: str, evidence: str, cause: str, fix: str) -> Entry:
    return Entry(code, remedy, title, meaning, evidence, cause, fix)


_C, _CR, _P, _RP, _T = (
    Remedy.CONFIGURATION,
    Remedy.CREDENTIALS,
    Remedy.PERMISSION,
    Remedy.REMOTE_POLICY,
    Remedy.TRANSIENT,
)

CATALOGUE: dict[Code, Entry] = {
    entry.code: entry
    for entry in (
        _e(
            Code.DNS_UNRESOLVED,
            _C,
            "Server name not found",
            "The mail server's name does not resolve in DNS.",
            "The name lookup failed before any connection was attempted.",
            "The server name {host} does not exist in DNS, so there is nothing to connect to.",
            "Check the spelling of the server name in {server_source}. For Microsoft 365 it is smtp.office365.com.",
        ),
        _e(
            Code.CONNECT_REFUSED,
            _C,
            "Connection refused",
            "Nothing accepts connections on that port.",
            "The server actively refused the TCP connection.",
            "{host} answered, but nothing accepts connections on port {port}.",
            "Check the port in {server_source}: Microsoft 365 uses 587 with SSL (STARTTLS) on. If the port is right, "
            "the mail service is down or a firewall rejects the connection.",
        ),
        _e(
            Code.CONNECT_TIMEOUT,
            _C,
            "No answer from the server",
            "The connection attempt got no answer: a firewall, or a wrong host or port.",
            "The TCP connection did not complete within the timeout, or the network reported the host unreachable.",
            "No answer from {host} on port {port}{timeout_clause}: a firewall is dropping the connection, or the "
            "server name or port is wrong.",
            "Check the server name and port (Microsoft 365: smtp.office365.com, port 587). Ask whoever runs the "
            "network whether outgoing connections to port {port} are allowed; many networks block port 25.",
        ),
        _e(
            Code.TLS_MODE_MISMATCH,
            _C,
            "SSL setting does not match the port",
            "Implicit TLS was spoken to a STARTTLS port (587) or plain text to an implicit-TLS port (465).",
            "The TLS handshake read plain text (wrong version number), the greeting never came on port 465, or "
            '"451 5.7.3 STARTTLS is required to send mail" (signing in or sending before STARTTLS).',
            "The SSL setting does not match what {host} speaks on port {port}: one side started encrypted "
            "(implicit TLS) while the other expected plain text upgraded with STARTTLS, or the connection never "
            "switched to TLS at all.",
            "Use port 587 with SSL on (STARTTLS), the recommended setting, or port 465 with implicit TLS. Do not "
            "use implicit TLS on 587 or STARTTLS on 465.",
        ),
        _e(
            Code.TLS_CERTIFICATE_INVALID,
            _C,
            "Server certificate not trusted",
            "The server's certificate is untrusted, expired or for another host name.",
            "Certificate verification failed during the TLS handshake.",
            "The certificate {host} presented cannot be trusted{detail}.",
            "Use the server's real name (the one on its certificate, e.g. smtp.office365.com, not an IP address). "
            "If the server uses a private certificate authority, pass it with --ca-file "
            "(EMAILDOCTOR_SMTP__CA_FILE).",
        ),
        _e(
            Code.TLS_FAILED,
            _C,
            "TLS handshake failed",
            "Any other TLS failure: an old TLS version or no common cipher.",
            "The TLS handshake failed for a reason other than the certificate or the mode, or the server answered "
            'STARTTLS with "454 4.7.0 TLS not available due to local problem" (its own side).',
            "The TLS handshake with {host} failed{detail}. Usually one side accepts only old TLS versions or ciphers; "
            "a 454 reply to STARTTLS means TLS is broken on the server's side, which is not an outage.",
            "Microsoft 365 requires TLS 1.2 or later: update the sending system's TLS support, or check the "
            "server's TLS configuration (after a 454, the server's administrator must fix its certificate or TLS "
            "setup).",
        ),
        _e(
            Code.STARTTLS_UNAVAILABLE,
            _C,
            "STARTTLS not offered",
            "SSL is on, but the server does not offer STARTTLS on this port.",
            "STARTTLS is missing from the EHLO reply, or the STARTTLS command was refused.",
            "SSL is on, but {host} does not offer STARTTLS on port {port}.",
            "Use a port that offers STARTTLS (587 for Microsoft 365), or 465 with implicit TLS if the server "
            "supports it. Turning SSL off would send the password unencrypted.",
        ),
        _e(
            Code.AUTH_UNAVAILABLE,
            _C,
            "Sign-in not offered here",
            "The server offers no AUTH at this point, typically because it offers it only after STARTTLS.",
            "No AUTH in the EHLO reply, or a reply asking for STARTTLS first.",
            "{host} does not offer sign-in (AUTH) at this point of the connection{detail}. Exchange Online and "
            "most providers offer it only after STARTTLS.",
            "Turn SSL on (port 587, STARTTLS). If SSL is already on, this server or port does not accept "
            "authenticated submission: check the server name and port.",
        ),
        _e(
            Code.AUTH_MECHANISM_UNSUPPORTED,
            _C,
            "Sign-in method not offered",
            "The server does not offer the authentication mechanism needed (e.g. XOAUTH2).",
            "The mechanism is missing from the AUTH list, or the server answered 504 5.7.4.",
            "{host} does not offer the sign-in method needed ({mechanism}){detail}.",
            "For OAuth (XOAUTH2) use smtp.office365.com on port 587 with SSL on. For a password, use a server and "
            "port that offer PLAIN or LOGIN.",
        ),
        _e(
            Code.AUTH_FAILED,
            _CR,
            "Wrong user name or password",
            'The server refused the user name or password ("401 Unauthorized" in the application).',
            '535 5.7.3, 535 5.7.8, "Authentication unsuccessful", "Incorrect authentication data".',
            "The mail server refused the user name or password of {principal}; the application shows this as "
            '"Status 401: Unauthorized".',
            "Re-enter the password for {principal} in {server_source}. If the account uses multi-factor "
            "authentication it needs an app password or, better, OAuth (version 6.3 and later).",
        ),
        _e(
            Code.SMTP_AUTH_DISABLED,
            _RP,
            "SMTP AUTH turned off in Microsoft 365",
            "Authenticated SMTP is disabled for the tenant or the mailbox.",
            "535 5.7.139 … SmtpClientAuthentication is disabled for the Tenant/Mailbox.",
            "Microsoft 365 has SMTP AUTH turned off{detail}, so {principal} cannot sign in to send mail, even with "
            "the right password.",
            "An Exchange admin enables it for this mailbox only (Microsoft's recommended pattern): "
            "Set-CASMailbox -Identity {principal} -SmtpClientAuthenticationDisabled $false, or in the Microsoft 365 "
            "admin center: the user's Mail settings, 'Authenticated SMTP'. It takes effect within an hour.",
        ),
        _e(
            Code.BASIC_AUTH_BLOCKED,
            _RP,
            "Password sign-in blocked by policy",
            "Basic authentication is blocked: security defaults, Conditional Access, or its retirement.",
            "535 5.7.139 (security defaults, criteria not met, basic authentication disabled), 550 5.7.30.",
            "Microsoft 365 refuses password sign-in for {principal}{detail}.",
            "Move this account to OAuth (version 6.3 and later: SMTP XOAUTH2 or Microsoft Graph). Until then an "
            "admin can exclude it from the policy that blocks legacy authentication.",
        ),
        _e(
            Code.OAUTH_TOKEN_INVALID,
            _CR,
            "OAuth token rejected",
            "The token expired, is for the wrong audience or scope, or the service principal is not set up.",
            "535 5.7.3 after AUTH XOAUTH2, a 334 error challenge, Graph 401 InvalidAuthenticationToken.",
            "Microsoft 365 rejected the OAuth token used to sign in as {principal}{detail}.",
            "Check that the app has SMTP.SendAsApp (SMTP) or Mail.Send (Graph) with admin consent, that its "
            "service principal is registered in Exchange (New-ServicePrincipal) and holds Full Access on "
            "{principal}, and that the token is for https://outlook.office365.com.",
        ),
        _e(
            Code.NOT_AUTHENTICATED,
            _C,
            "Mail sent without signing in",
            "The server refused mail because the connection did not sign in first.",
            '530 5.7.57 Client not authenticated, "Relay access denied", "authentication required".',
            "The server refused the mail because the connection did not sign in first.",
            "Set a user name and password (or OAuth) in {server_source}; Exchange Online never accepts anonymous "
            "submission on port 587.",
        ),
        _e(
            Code.SEND_AS_DENIED,
            _P,
            "Send As denied",
            "The signing-in account lacks Send As (or Send on Behalf) on the mailbox the mail claims to be from.",
            '550 5.7.60, 554 5.2.252 SendAsDenied, SendAsDeniedException, "not owned by user", Graph '
            "ErrorSendAsDenied.",
            "{principal} signed in, but the message is from {from_addr}, and {principal} does not hold {right} on "
            '{from_addr}\'s mailbox, so Exchange refused it ("Send As denied").',
            "An Exchange admin grants {principal} {right} on {from_addr}'s mailbox ({grant_command}), or the user "
            "gets their own alternate server settings. A new grant can take up to an hour to apply.",
        ),
        _e(
            Code.SEND_ON_BEHALF_NOT_HONOURED,
            _C,
            "Send on Behalf not honoured over SMTP",
            "The signing-in account holds Send on Behalf, but SMTP submission refused the message anyway: Exchange "
            "Online's SMTP submission may not honour Send on Behalf.",
            "Exchange shows the Send on Behalf grant; the SMTP send (From = the mailbox, Sender = the signing-in "
            "account) is still refused with 550 5.7.60 or 554 5.2.252 SendAsDenied.",
            "{principal} holds Send on Behalf on {from_addr}'s mailbox{detail}, but Exchange's SMTP submission still "
            "refused the message from {from_addr} sent by {principal}. SMTP submission may not honour Send on Behalf "
            "at all: Microsoft documents it for Outlook and Microsoft Graph, and names Send As for SMTP.",
            "Waiting will not help. Either an Exchange admin grants {principal} Send As on {from_addr}'s mailbox "
            "({send_as_command}) and the application sends as the user (delegation: send_as), or the application "
            "sends through Microsoft Graph (server type microsoft365), which honours Send on Behalf.",
        ),
        _e(
            Code.SENDER_REJECTED,
            _RP,
            "Sender address refused",
            "The server refused the sender address for another reason.",
            "A 5xx reply to MAIL FROM, 550 5.1.8 Bad outbound sender.",
            "The server refused {from_addr} as the sender{detail}.",
            "Check that {from_addr} belongs to your organisation and is not blocked (Microsoft 365: Defender "
            "portal, Restricted entities); the server's reply says why.",
        ),
        _e(
            Code.RECIPIENT_REJECTED,
            _C,
            "Recipient refused",
            "The server refused the recipient.",
            "A 5xx reply to RCPT TO, 550 5.1.1, 550 5.7.703.",
            "The server refused the recipient {to_addr}{detail}.",
            "Check the recipient address; for a test, send to the user's own address.",
        ),
        _e(
            Code.MISSING_EMAIL_ADDRESS,
            _C,
            "No email address on record",
            "The user's directory record has no email address.",
            "The Employee record's email address is empty.",
            "{user} has no email address on their Employee record, so the application has no From address and "
            "cannot send a test email.",
            "Enter the user's email address on their Employee record in the application, then run the test again.",
        ),
        _e(
            Code.USER_NOT_FOUND,
            _C,
            "User not found",
            "No such user in the directory or in Microsoft 365.",
            "No directory record, or Graph 404 ErrorInvalidUser / Request_ResourceNotFound.",
            "{user} was not found{detail}.",
            "Check the spelling; use the login, the email address or the display name as the directory has it.",
        ),
        _e(
            Code.MAILBOX_NOT_FOUND,
            _C,
            "No Exchange Online mailbox",
            "The address has no Exchange Online mailbox (unlicensed, inactive, soft-deleted, on-premises, or no "
            "account has it at all).",
            "Graph 404 MailboxNotEnabledForRESTAPI, Exchange ManagementObjectNotFoundException, or no Microsoft 365 "
            "user with the From address while the recipient or sender is refused (550 5.1.10 RecipientNotFound).",
            "{from_addr} has no Exchange Online mailbox{mailbox_reason}.",
            "Check that {from_addr} is spelled right on {user}'s Employee record. If it is, a Microsoft 365 admin "
            "assigns an Exchange Online licence to the account (or creates the mailbox); otherwise use an address "
            "that has a mailbox.",
        ),
        _e(
            Code.AMBIGUOUS_USER,
            _C,
            "Several users match",
            "The login, address or name matches more than one person in the directory or in Microsoft 365, so "
            "emaildoctor cannot tell which one is meant.",
            "Two or more directory records, or Microsoft 365 users, share the login, the email address or the name.",
            "'{user}' matches {candidate_count}{detail}: {candidates}.",
            "Test one of them by its login (emaildoctor test <login>). If two employees should not share an "
            "address, correct their Employee records; if several Microsoft 365 users have it, a Microsoft 365 "
            "admin keeps it on one user only.",
        ),
        _e(
            Code.FROM_OUTSIDE_TENANT,
            _C,
            "From address outside the organisation",
            "The From address is in a domain this Microsoft 365 organisation does not host; no mailbox right "
            "can make Microsoft 365 send as it.",
            "The From address's domain is not one of the tenant's domains (Microsoft Graph /domains); Exchange "
            "answers 550 5.7.60 or 554 5.2.252 SendAsDenied whatever is granted.",
            "The message is from {from_addr}, but {from_domain} is not a domain of this Microsoft 365 organisation"
            "{detail}. Microsoft 365 will not send as an address it does not host, so no right granted to "
            "{principal} can make this work.",
            "Use an address in {tenant_domain} as the email address on {user}'s Employee record, or send through "
            "the provider that hosts {from_domain} ({user}'s alternate server settings, with that provider's "
            "server and account).",
        ),
        _e(
            Code.GRAPH_ACCESS_DENIED,
            _RP,
            "App not allowed to use that mailbox",
            "Application access policy, RBAC for Applications, or missing admin consent.",
            'Graph 403 ErrorAccessDenied ("[RAOP]" for access policies), Exchange 403 without a role.',
            "Microsoft 365 refused emaildoctor's app access to {principal}'s mailbox{detail}.",
            "Grant the app's permissions with admin consent (manifests/entra-app.json) and check that no "
            "application access policy or RBAC for Applications scope excludes {principal}'s mailbox.",
        ),
        _e(
            Code.EXCHANGE_ROLE_MISSING,
            _RP,
            "App lacks an Exchange role",
            "emaildoctor's app signed in, but its Exchange role does not allow a cmdlet it runs, or it has none.",
            'Exchange admin API 401 "User is not allowed to call <cmdlet>", or 403 with an empty (all-NUL) body.',
            "Exchange Online did not let emaildoctor's app run {cmdlet}: the app's Exchange role does not include "
            "it, or the app has no Exchange role at all{detail}. Its sign-in and secret are fine.",
            "An admin assigns {role} to emaildoctor's app (Entra ID: Roles and administrators, or an Exchange role "
            "group through New-ServicePrincipal and Add-RoleGroupMember; see manifests/README.md). Do not renew "
            "the secret. A new role can take up to an hour to reach Exchange.",
        ),
        _e(
            Code.THROTTLED,
            _T,
            "Throttled",
            "Too many messages, connections or requests at once.",
            "432 4.3.2 sender thread limit exceeded, 421 4.7.x, HTTP 429 with Retry-After.",
            "Microsoft 365 is throttling {principal}: too many messages, connections or requests at once{detail}.",
            "Wait a few minutes and try again. Exchange Online allows 30 messages a minute and 3 connections at "
            "once per mailbox; spread bulk sending out.",
        ),
        _e(
            Code.QUOTA_EXCEEDED,
            _T,
            "Sending limit reached",
            "The account reached its sending quota.",
            "554 5.2.0 SubmissionQuotaExceededException, 550 5.4.5 daily sending quota exceeded.",
            "{principal} has reached its sending limit.",
            "Wait until the limit resets (Exchange Online: 10,000 recipients a day), or send bulk mail through a "
            "service made for it.",
        ),
        _e(
            Code.TENANT_BLOCKED,
            _RP,
            "Outgoing mail blocked for the organisation",
            "Microsoft blocked outgoing mail for the tenant or the sending IP.",
            "550 5.7.705, 550 5.7.708, 550 5.7.750.",
            "Microsoft 365 has blocked outgoing mail from this organisation or this IP{detail}.",
            "A Microsoft 365 admin checks the Defender portal (Restricted entities) and the reply's reason; "
            "unblocking usually needs Microsoft support.",
        ),
        _e(
            Code.SERVER_UNAVAILABLE,
            _T,
            "Server temporarily unavailable",
            "A transient failure: 421, other 4xx replies, HTTP 5xx, a dropped connection.",
            "421 Service not available, 4xx replies, the connection closed unexpectedly.",
            "The mail server is temporarily unavailable{detail}.",
            "Try again in a few minutes; if it persists, check your mail provider's service status.",
        ),
        _e(
            Code.TIMEOUT,
            _T,
            "Timed out",
            "A stage took longer than the configured timeout.",
            "No reply to a command within the timeout.",
            "{host} stopped answering during the {stage} stage{timeout_clause}.",
            "Try again. If it keeps stopping at the same stage, a firewall or mail filter is interfering; raise "
            "the timeout only for a server known to be slow.",
        ),
        _e(
            Code.UNKNOWN,
            _RP,
            "Unrecognised failure",
            "Nothing above fits; the reply is shown verbatim.",
            "Any reply the classifier does not recognise.",
            "The server refused with a reply emaildoctor does not recognise{detail}.",
            "Read the server's reply in the evidence; give it and the transcript to your mail provider's support.",
        ),
    )
}


# A right that Exchange's directory already shows but sending does not honour yet: not a denial to fix,
# a wait. Same code (the server still said Send As denied), different cause, fix and remedy.
PENDING = Entry(
    Code.SEND_AS_DENIED,
    Remedy.TRANSIENT,
    "Granted, waiting for Exchange to apply it",
    "The right is granted but Exchange has not applied it to sending yet.",
    "The admin API shows the right; the send is still refused.",
    "{principal} already holds {right} on {from_addr}'s mailbox{detail}, but Exchange has not applied it to "
    "sending yet, so this send was still refused.",
    "Nothing to grant: wait and test again. Exchange Online applies new mailbox rights within {wait}, often sooner.",
)


# A Send on Behalf denial that smtp-test cannot explain further: it does not read mailbox rights, so it must not say
# the right is missing. Same code (the server said Send As denied), no ready grant.
SENDER_UNCHECKED = Entry(
    Code.SEND_AS_DENIED,
    Remedy.PERMISSION,
    "Send on Behalf refused",
    "A message with a Sender (Send on Behalf) was refused; the mailbox rights were not checked.",
    "550 5.7.60 or 554 5.2.252 SendAsDenied for a message whose Sender is the signing-in account.",
    "{principal} signed in and sent a message from {from_addr} with itself as the Sender (Send on Behalf), and the "
    "server refused it. This test does not read mailbox rights, so it cannot tell whether {principal} lacks Send on "
    "Behalf on {from_addr}'s mailbox or the server's SMTP submission does not honour Send on Behalf (Exchange "
    "Online's may not).",
    "Check the rights (emaildoctor perms {from_addr}, or emaildoctor test for the user). If {principal} lacks Send on "
    "Behalf, an Exchange admin grants it ({grant_command}); if it holds it, use Send As instead "
    "({send_as_command}) or send through Microsoft Graph.",
)


class _Words(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _wait_words(minutes: float | None) -> str:
    if not minutes:
        return "an hour"
    if minutes < 1:
        return f"about {round(minutes * 60)} seconds"
    return f"about {minutes:.0f} minutes" if minutes != 1 else "about a minute"


def _grant_command(right: Right, facts: Facts) -> str:
    if facts.principal and facts.from_addr:
        return FixAction(right, facts.from_addr, facts.principal).command()
    return "emaildoctor grant SendAs --mailbox <from> --trustee <principal>"


def _words(facts: Facts) -> _Words:
    right = RIGHT_WORDS[facts.right] if facts.right else "Send As"
    grant = _grant_command(facts.right or Right.SEND_AS, facts)
    return _Words(
        principal=facts.principal or "the account that signs in",
        from_addr=facts.from_addr or "the From address",
        to_addr=facts.to_addr or "",
        right=right,
        host=facts.host or "the mail server",
        port=str(facts.port) if facts.port else "the configured port",
        stage=facts.stage or "connection",
        timeout_clause=f" within {facts.timeout:g} seconds" if facts.timeout else "",
        user=facts.user or "The user",
        mechanism=facts.mechanism.upper() if facts.mechanism else "the required method",
        server_source=facts.server_source or "the outgoing mail server settings",
        detail=facts.detail or "",
        grant_command=grant,
        send_as_command=_grant_command(Right.SEND_AS, facts),
        wait=_wait_words(facts.wait_minutes),
        cmdlet=facts.cmdlet or "a cmdlet",
        role=facts.role or "Exchange Recipient Administrator and the View-Only Organization Management role group",
        candidates="; ".join(facts.candidates) or "several people",
        candidate_count=f"{len(facts.candidates)} users" if facts.candidates else "more than one user",
        from_domain=facts.from_addr.rpartition("@")[2] if facts.from_addr else "its domain",
        tenant_domain=_tenant_domain(facts.domains),
        mailbox_reason=facts.detail or ": it is unlicensed, inactive, soft-deleted or hosted on-premises",
    )


def _tenant_domain(domains: tuple[str, ...]) -> str:
    """The domain to suggest: the first one people use (not the initial ``….onmicrosoft.com``), else any."""
    usable = [d for d in domains if not d.casefold().endswith(".onmicrosoft.com")] or list(domains)
    return usable[0] if usable else "one of your organisation's domains"


def diagnose(
    code: Code,
    facts: Facts,
    evidence: Iterable[str] = (),
    *,
    secrets: Iterable[str] = (),
    fix_action: FixAction | None = None,
    pending: bool = False,
    sender_unchecked: bool = False,
) -> Diagnosis:
    """Render the catalogue entry for ``code`` with ``facts``; evidence is redacted here.

    ``pending``: a Send As denial although Exchange's directory already shows the right (a fresh grant).
    ``sender_unchecked``: a Send on Behalf denial whose right nobody read (smtp-test --sender): no claim, no grant.
    """
    entry = PENDING if pending and code is Code.SEND_AS_DENIED else CATALOGUE[code]
    if sender_unchecked and code is Code.SEND_AS_DENIED:
        entry = SENDER_UNCHECKED
    words = _words(facts)
    secret_list = list(secrets)
    cause = entry.cause.format_map(words).replace("  ", " ")
    fix = entry.fix.format_map(words)
    lines = tuple(redact(line, secret_list) for line in evidence if line)
    ready = code is Code.SEND_AS_DENIED and not pending and not sender_unchecked
    if ready and fix_action is None and facts.principal and facts.from_addr:
        fix_action = FixAction(facts.right or Right.SEND_AS, facts.from_addr, facts.principal)
    return Diagnosis(
        code=code,
        remedy=entry.remedy,
        cause=redact(cause, secret_list),
        fix=redact(fix, secret_list),
        evidence=lines,
        fix_action=fix_action,
    )

"""`emaildoctor check` for Microsoft 365: Entra sign-in and the roles in each token, then (side by side) the
Exchange role per cmdlet (:mod:`graph.checks_exchange`), the directory's accounts in the tenant and the SMTP AUTH
switches of the accounts that sign in.

A check that cannot run because an earlier one failed says so (``–``) rather than failing again for the same
reason, so each ✗ has one cause and one fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from graph.auth import SignInError, exchange_scope, graph_scope
from graph.azure_credentials import describe_credential
from graph.checks_exchange import exchange_checks, service_principal_check
from graph.services import M365Services
from graph.token_lint import EXCHANGE_ADMIN_APP_ROLE, GRAPH_SEND_ROLE, SMTP_APP_ROLE, decode_claims
from plugin.checks import CheckResult, failed, passed, skipped
from plugin.checks_local import smtp_servers
from plugin.diagnosis import Code
from plugin.directory import Directory, Transport
from plugin.directory_files import load_directory
from plugin.errors import EmailDoctorError
from plugin.interfaces import MailboxKind
from plugin.settings import Settings

CERTIFICATE_WARNING = timedelta(days=30)
GRAPH_ROLES = ("User.Read.All", GRAPH_SEND_ROLE)
"""Application permissions every feature needs in the Graph token (user lookups, Graph test sends)."""
_CONSENT_FIX = (
    "In the Entra admin center, App registrations > {app} > API permissions: add the application permission(s) "
    "{missing} ({resource}), then 'Grant admin consent for the tenant' (manifests/entra-app.json lists them all)."
)


def _directory(settings: Settings) -> Directory | None:
    try:
        return load_directory(settings.directory.path)
    except EmailDoctorError:
        return None


def uses_xoauth2(directory: Directory | None) -> bool:
    return directory is not None and any(s.oauth for s in smtp_servers(directory))


class Microsoft365Checks:
    name = "Microsoft 365"
    areas: tuple[str, ...] = ("m365", "exchange", "smtp", "directory")

    async def run(self, settings: Settings, environ: Mapping[str, str], only: frozenset[str]) -> list[CheckResult]:
        if not settings.m365.configured:
            return [
                skipped(area, name, "Microsoft 365 is not configured (EMAILDOCTOR_M365__TENANT_ID, …)")
                for area, name in (("m365", "Entra sign-in"), ("exchange", "Exchange role"))
            ]
        directory = await asyncio.to_thread(_directory, settings)
        async with M365Services(settings.m365) as m365:
            rows = [*certificate_rows(settings)]
            try:
                graph_ok, graph_rows = await _token_rows(
                    m365, "Microsoft Graph", graph_scope(settings.m365), GRAPH_ROLES
                )
            except SignInError as exc:  # the tenant, the app or the credential: nothing else can be checked
                said = (
                    f"refused (AADSTS{exc.aadsts}: {exc.error})"
                    if exc.aadsts
                    else f"no token ({exc.error or exc.code})"
                )
                detail = f"{describe_credential(settings.m365)}: {said}"
                return [*rows, failed("m365", "Entra sign-in", detail, str(exc))]
            credential = describe_credential(settings.m365)
            app = settings.m365.client_id or "(its system-assigned identity)"
            known = f"tenant {settings.m365.tenant_id} and app {app} known, {credential} accepted: token obtained"
            rows.append(passed("m365", "Entra sign-in", known))
            needed = (EXCHANGE_ADMIN_APP_ROLE, *([SMTP_APP_ROLE] if uses_xoauth2(directory) else []))
            exchange_ok, exchange_rows = await _token_rows(
                m365, "Exchange Online", exchange_scope(settings.m365), needed
            )
            rows += graph_rows + exchange_rows
            if not exchange_ok:
                rows.append(
                    skipped("exchange", "Exchange role", "not checked: no usable Exchange Online token (see m365)")
                )
            later: list[tuple[str, Coroutine[Any, Any, list[CheckResult]]]] = []
            if exchange_ok and "exchange" in only:
                later.append(("exchange", exchange_checks(m365, directory)))
            if exchange_ok and "smtp" in only and directory is not None:
                later.append(("smtp", _smtp_auth_rows(m365, directory)))
                if uses_xoauth2(directory):
                    later.append(("smtp", service_principal_check(m365, directory, settings)))
            if graph_ok and "directory" in only and directory is not None:
                later.append(("directory", _tenant_rows(m365, directory)))
            for more in await asyncio.gather(*(_contained(area, group) for area, group in later)):
                rows += more
        return rows


async def _contained(area: str, group: Coroutine[Any, Any, list[CheckResult]]) -> list[CheckResult]:
    """One group of checks failing does not hide the others' rows."""
    try:
        return await group
    except EmailDoctorError as exc:
        return [_unverified(area, f"{area} checks", exc)]


def _unverified(area: str, name: str, exc: EmailDoctorError) -> CheckResult:
    """A missing Exchange role is the exchange area's ✗; rows that needed it only say they could not tell."""
    if exc.code is Code.EXCHANGE_ROLE_MISSING:
        return skipped(area, name, "not verified: the app's Exchange role does not allow it (see exchange)")
    return failed(area, name, str(exc), "Fix the problem named, then run the check again.")


async def _token_rows(
    m365: M365Services, resource: str, scope: str, needed: tuple[str, ...]
) -> tuple[bool, list[CheckResult]]:
    """The token for ``resource`` and whether it carries the ``needed`` roles (a refused sign-in raises)."""
    name = f"token for {resource}"
    try:
        token = (await m365.tokens.token(scope)).token
    except SignInError as exc:
        if resource == "Microsoft Graph":
            raise
        said = f"AADSTS{exc.aadsts}" if exc.aadsts else exc.error or exc.code
        return False, [failed("m365", name, f"sign-in refused ({said})", str(exc))]
    held = {str(r) for r in (decode_claims(token) or {}).get("roles") or ()}
    missing = [role for role in needed if role not in held]
    if missing:
        app = m365.settings.client_id or "the app"
        fix = _CONSENT_FIX.format(app=app, missing=", ".join(missing), resource=resource)
        if resource == "Exchange Online":
            fix = fix.replace(
                "add the application",
                "add (under 'APIs my organization uses' > Office 365 Exchange Online) the application",
            )
        return False, [failed("m365", name, f"issued, but without the role(s) {', '.join(missing)}", fix)]
    return True, [passed("m365", name, f"issued with {', '.join(needed)}")]


def certificate_rows(settings: Settings) -> list[CheckResult]:
    path = settings.m365.certificate_path
    if path is None:
        return []
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.expanduser().read_bytes())
    except (OSError, ValueError) as exc:
        return [
            failed(
                "m365",
                "app certificate",
                f"{path}: cannot read the certificate ({exc})",
                "Point EMAILDOCTOR_M365__CERTIFICATE_PATH at a PEM file with the key and the certificate.",
            )
        ]
    left = cert.not_valid_after_utc - datetime.now(UTC)
    until = f"{cert.not_valid_after_utc:%Y-%m-%d}"
    renew = (
        "Create a new certificate, upload it in App registrations > Certificates & secrets, and point "
        "EMAILDOCTOR_M365__CERTIFICATE_PATH at it."
    )
    if left <= timedelta(0):
        return [failed("m365", "app certificate", f"expired on {until}", renew)]
    if left < CERTIFICATE_WARNING:
        return [CheckResult("m365", "app certificate", True, f"expires on {until}, in {left.days} days", renew)]
    return [passed("m365", "app certificate", f"valid until {until}")]


def signing_in_accounts(directory: Directory) -> list[str]:
    servers = smtp_servers(directory)
    return sorted({s.user for s in servers})


async def _smtp_auth_rows(m365: M365Services, directory: Directory) -> list[CheckResult]:
    async def one(account: str) -> CheckResult:
        name = f"SMTP AUTH for {account}"
        try:
            state = await m365.permissions.smtp_auth(account)
        except EmailDoctorError as exc:
            return _unverified("smtp", name, exc)
        if state.enabled:
            return passed("smtp", name, state.describe(account))
        return failed(
            "smtp",
            name,
            state.describe(account),
            f"Exchange admin center > Recipients > Mailboxes > {account} > Mail apps: turn on Authenticated SMTP "
            f"(or: Set-CASMailbox -Identity {account} -SmtpClientAuthenticationDisabled $false).",
        )

    accounts = [a for a in signing_in_accounts(directory) if "@" in a]
    return list(await asyncio.gather(*(one(a) for a in accounts)))


async def _tenant_rows(m365: M365Services, directory: Directory) -> list[CheckResult]:
    """Every signing-in account and every From address exists in the tenant and has an Exchange Online mailbox."""
    addresses = {s.user for s in smtp_servers(directory) if "@" in s.user}
    addresses |= {
        e.server.user for e in directory.employees if e.server and e.server.effective_transport is Transport.GRAPH
    }
    addresses |= {e.email for e in directory.employees if e.email}

    unverified: list[EmailDoctorError] = []

    async def problem(address: str) -> str | None:
        try:
            user = await m365.directory.get_user(address)
        except EmailDoctorError as exc:
            unverified.append(exc)
            return None
        if user is None:
            return f"{address}: no such user in the tenant"
        if user.mailbox is MailboxKind.NONE:
            return f"{address}: no Exchange Online mailbox (unlicensed, a guest, or on-premises)"
        return None

    found = await asyncio.gather(*(problem(a) for a in sorted(addresses)))
    problems = [p for p in found if p]
    name = "directory accounts in the tenant"
    if problems:
        return [
            failed(
                "directory",
                name,
                "; ".join(problems),
                "Correct the address in the directory file, or create the user and give them an Exchange Online "
                "licence (Microsoft 365 admin center > Users > Active users).",
            )
        ]
    if unverified:
        return [_unverified("directory", name, unverified[0])]
    return [passed("directory", name, f"{len(addresses)} addresses exist, each with a mailbox")]


PROVIDER = Microsoft365Checks()

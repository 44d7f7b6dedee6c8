"""Does the app's Exchange role cover every cmdlet emaildoctor calls? Each read cmdlet of
:data:`graph.exchange_roles.CMDLET_ROLES` is tried with harmless parameters (``-ResultSize 1``, or an Identity
that only names something): Exchange checks the role before it looks anything up, so "not found" means allowed,
and a refusal (401 "not allowed to call …", or 403 when the app has no role at all) is named with the role from
the table that would cover it. A refusal is never a token problem: the token was accepted before the role check.

Write cmdlets cannot be tried without a change; they are reported "not verified", with the role they need.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from graph.exchange_errors import ExchangeNotFoundError, ExchangeServiceError
from graph.exchange_roles import CMDLET_ROLES, RECOMMENDED, role_advice, roles_covering
from plugin.checks import CheckResult, failed, passed, skipped
from plugin.checks_local import smtp_servers
from plugin.classify import Stage
from plugin.diagnosis import Code
from plugin.directory import Directory, MailServer
from plugin.errors import EmailDoctorError
from plugin.probe import run_probe
from plugin.probe_request import ProbeRequest
from plugin.settings import Settings

if TYPE_CHECKING:
    from graph.services import M365Services

READ_PREFIX = "Get-"
NO_ROLE = "the app has no Exchange role at all (HTTP 403)"
_NEEDS_IDENTITY = {"Get-MailboxPermission", "Get-DistributionGroupMember"}
_NO_PARAMETERS = {"Get-TransportConfig", "Get-ServicePrincipal"}
ROLE_GROUPS = frozenset(
    {"View-Only Organization Management", "Organization Management", "Recipient Management", "Help Desk",
     "Compliance Management"}
)  # fmt: skip
"""Exchange role groups (assigned in Exchange to the app's service principal), not Entra roles."""


def assign_fix(cmdlet: str) -> str:
    """Where to assign the least role that covers ``cmdlet`` (an Entra role, or an Exchange role group)."""
    covering = roles_covering(cmdlet)
    role = next((r for r in RECOMMENDED if r in covering), covering[0])
    if role in ROLE_GROUPS:
        where = (
            f"add the app's service principal to the Exchange role group {role} (Exchange admin center > Roles > "
            f"Admin roles > {role} > Assigned; the app must be registered with New-ServicePrincipal first)"
        )
    else:
        where = f"assign the Entra role {role} to the emaildoctor app (Entra admin center > Roles and administrators > {role} > Add assignments)"
    also = "" if role == "Exchange Administrator" else "; Exchange Administrator alone also covers it"
    return f"{where[0].upper()}{where[1:]}{also}. A new role can take up to an hour to reach Exchange."


def read_cmdlets() -> list[str]:
    return sorted(c for c in CMDLET_ROLES if c.startswith(READ_PREFIX))


def write_cmdlets() -> list[str]:
    return sorted(c for c in CMDLET_ROLES if not c.startswith(READ_PREFIX))


def _parameters(cmdlet: str, probe_identity: str) -> dict[str, Any]:
    if cmdlet in _NO_PARAMETERS:
        return {}
    if cmdlet in _NEEDS_IDENTITY:
        return {"Identity": probe_identity}
    return {"ResultSize": 1}


async def try_cmdlet(m365: M365Services, cmdlet: str, probe_identity: str) -> CheckResult:
    name = f"Exchange role covers {cmdlet}"
    try:
        await m365.exchange.invoke(cmdlet, _parameters(cmdlet, probe_identity))
    except ExchangeNotFoundError:
        return passed("exchange", name, "allowed (tried with an identity that only names something)")
    except ExchangeServiceError as exc:
        if exc.code is not Code.EXCHANGE_ROLE_MISSING:
            return failed(
                "exchange",
                name,
                f"could not be tried: {exc}",
                "Run the check again; if it persists, see the message above.",
            )
        status = exc.info.status
        said = NO_ROLE if status == 403 else f"Exchange answered {status}: {exc.info.text or 'not allowed'}"
        return failed("exchange", name, f"refused: {said}", assign_fix(cmdlet))
    return passed("exchange", name, "allowed (read-only call, nothing changed)")


async def exchange_checks(m365: M365Services, directory: Directory | None) -> list[CheckResult]:
    probe_identity = _probe_identity(directory)
    rows = list(await asyncio.gather(*(try_cmdlet(m365, c, probe_identity) for c in read_cmdlets())))
    if all(NO_ROLE in row.detail for row in rows):  # one cause, one ✗
        both = " and ".join(RECOMMENDED)
        rows = [failed("exchange", "Exchange role", f"every cmdlet refused: {NO_ROLE}", f"Give the app {both}: "
                       f"{assign_fix('Get-Mailbox')} Then: {assign_fix('Get-TransportConfig')}")]  # fmt: skip
    by_role: dict[str, list[str]] = {}
    for cmdlet in write_cmdlets():
        by_role.setdefault(role_advice(cmdlet), []).append(cmdlet)
    needs = "; ".join(
        f"{', '.join(cmdlets)} {'need' if len(cmdlets) > 1 else 'needs'} {role}" for role, cmdlets in by_role.items()
    )
    rows.append(
        skipped(
            "exchange",
            "Exchange role covers the write cmdlets",
            f"not verified (they cannot be tried without a change): {needs}; the recommended "
            f"{' + '.join(RECOMMENDED)} cover every cmdlet emaildoctor calls",
        )
    )
    return rows


def _probe_identity(directory: Directory | None) -> str:
    """An address to name in Identity: the system's signing-in account, else any employee's (never changed)."""
    if directory is not None:
        if directory.system.server and "@" in directory.system.server.user:
            return directory.system.server.user
        for employee in directory.employees:
            if employee.email:
                return employee.email
    return "emaildoctor-check@invalid.example"


async def service_principal_check(m365: M365Services, directory: Directory, settings: Settings) -> list[CheckResult]:
    """XOAUTH2 app-only needs the app's service principal registered in Exchange (New-ServicePrincipal) and Full
    Access for it on each mailbox it signs in as; a real XOAUTH2 AUTH on each such server proves both."""
    name = "app registered in Exchange (XOAUTH2)"
    app_id = m365.settings.client_id or ""
    register = (
        f"In Exchange Online PowerShell: New-ServicePrincipal -AppId {app_id} -ObjectId <the enterprise "
        "application's Object ID>, then Add-MailboxPermission -Identity <each OAuth mailbox> -User <that Object "
        "ID> -AccessRights FullAccess (Microsoft Learn: 'Authenticate an IMAP, POP or SMTP connection using OAuth')."
    )
    try:
        result = await m365.exchange.invoke("Get-ServicePrincipal", {"Identity": app_id})
    except ExchangeNotFoundError:
        return [failed("smtp", name, f"Exchange has no service principal for the app {app_id}", register)]
    except EmailDoctorError as exc:
        # The role may not cover Get-ServicePrincipal (the exchange area names it); the real sign-in below decides.
        said = "the app's Exchange role does not cover Get-ServicePrincipal (see exchange)"
        rows = [skipped("smtp", name, f"not verified: {said if exc.code is Code.EXCHANGE_ROLE_MISSING else exc}")]
        unconfirmed = register
    else:
        found = ", ".join(str(r.get("DisplayName") or r.get("AppId")) for r in result.rows) or app_id
        rows, unconfirmed = [passed("smtp", name, f"registered ({found})")], ""
    servers = {(s.effective_host, s.effective_port, s.effective_security, s.user): s for s in smtp_servers(directory)}
    rows += await asyncio.gather(*(_xoauth2(m365, settings, s, unconfirmed) for s in servers.values() if s.oauth))
    return rows


async def _xoauth2(m365: M365Services, settings: Settings, server: MailServer, register: str) -> CheckResult:
    name = f"XOAUTH2 sign-in as {server.user}"
    request = ProbeRequest(
        host=server.effective_host,
        port=server.effective_port,
        security=server.effective_security,
        from_addr=server.user,
        to_addr=server.user,
        user=server.user,
        token_source=m365.smtp_token_source(),
        mechanism="xoauth2",
        timeout=min(server.timeout, settings.smtp.timeout),
        ca_file=settings.smtp.ca_file,
        quit_after=Stage.AUTH,
        helo_name=settings.smtp.helo_name,
    )
    result = await run_probe(request, secrets=m365.secrets)
    if result.ok:
        return passed("smtp", name, f"{server.effective_host}:{server.effective_port} accepted the XOAUTH2 sign-in")
    diagnosis = result.diagnosis
    return failed(
        "smtp",
        name,
        f"{diagnosis.cause if diagnosis else result.stage} [{diagnosis.code if diagnosis else 'unknown'}]",
        " ".join(
            part
            for part in (
                diagnosis.fix if diagnosis else "See emaildoctor smtp-test --oauth for the transcript.",
                register,
            )
            if part
        ),
    )

"""The checks the core runs itself: the directory file, and every distinct SMTP server it names.

An SMTP server is checked up to STARTTLS/TLS and the EHLO after it (never signing in or sending): it answers,
the TLS mode and certificate are right, and it offers AUTH. Password sign-ins are flagged with Microsoft's
Basic-auth retirement date (shared/reference/exchange-online.md, "Basic auth retirement timeline").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

from plugin.checks import CheckResult, failed, passed, skipped
from plugin.classify import Stage
from plugin.directory import Directory, MailServer, Transport
from plugin.directory_files import directory_problems, load_directory
from plugin.errors import EmailDoctorError
from plugin.probe import run_probe
from plugin.probe_request import ProbeRequest
from plugin.settings import Settings

BASIC_AUTH_RETIREMENT = (
    "Microsoft disables SMTP AUTH with passwords (Basic auth) by default for existing tenants at the end of "
    "December 2026 (announced 2026-01-27): move {users} to OAuth (oauth: true, sending through Microsoft Graph "
    "or SMTP XOAUTH2) before then."
)


def smtp_servers(directory: Directory) -> list[MailServer]:
    """Every server the directory names (the system's, then each alternate one), SMTP transport only."""
    servers = [directory.system.server] if directory.system.server else []
    servers += [e.server for e in directory.employees if e.server is not None]
    return [s for s in servers if s.effective_transport is Transport.SMTP]


class DirectoryFileChecks:
    name = "directory file"
    areas: tuple[str, ...] = ("directory",)

    async def run(self, settings: Settings, environ: Mapping[str, str], only: frozenset[str]) -> list[CheckResult]:
        path = settings.directory.path
        problems = await asyncio.to_thread(directory_problems, path)
        if problems:
            return [
                failed(
                    "directory",
                    "directory file",
                    f"{len(problems)} problem(s): " + "; ".join(problems),
                    f"Correct each record named in {path} (see README.md, 'The directory file'), or point "
                    "EMAILDOCTOR_DIRECTORY__PATH at the right file.",
                )
            ]
        directory = await asyncio.to_thread(load_directory, path)
        missing = [
            server.password_env
            for server in smtp_servers(directory)
            if server.password_env and not environ.get(server.password_env)
        ]
        if missing:
            names = ", ".join(sorted(set(missing)))
            return [
                failed(
                    "directory",
                    "directory file",
                    f"{path}: the password variable(s) {names} named by the directory are not set",
                    f"Set {names} in the environment or the .env file (the password of the account that signs in).",
                )
            ]
        return [passed("directory", "directory file", f"{path}: {len(directory.employees)} employees, all valid")]


class SmtpServerChecks:
    name = "SMTP"
    areas: tuple[str, ...] = ("smtp",)

    async def run(self, settings: Settings, environ: Mapping[str, str], only: frozenset[str]) -> list[CheckResult]:
        try:
            directory = await asyncio.to_thread(load_directory, settings.directory.path)
        except EmailDoctorError:
            return [skipped("smtp", "SMTP servers", "not checked: the directory file does not load (see directory)")]
        servers = smtp_servers(directory)
        if not servers:
            return [skipped("smtp", "SMTP servers", "the directory names no SMTP server (every user sends by Graph)")]
        distinct = {(s.effective_host, s.effective_port, s.effective_security): s for s in servers}
        rows = list(await asyncio.gather(*(self._server(settings, s) for s in distinct.values())))
        password_users = sorted({s.user for s in servers if not s.oauth})
        if password_users:
            rows.append(
                CheckResult(
                    "smtp",
                    "Basic-auth retirement",
                    True,
                    f"{len(password_users)} account(s) sign in with a password: {', '.join(password_users)}",
                    BASIC_AUTH_RETIREMENT.format(users=", ".join(password_users)),
                )
            )
        return rows

    async def _server(self, settings: Settings, server: MailServer) -> CheckResult:
        where = f"{server.effective_host}:{server.effective_port} ({server.effective_security})"
        name = f"SMTP server {where}"
        request = ProbeRequest(
            host=server.effective_host,
            port=server.effective_port,
            security=server.effective_security,
            from_addr=server.user if "@" in server.user else "check@invalid.example",
            to_addr="check@invalid.example",
            timeout=min(server.timeout, settings.smtp.timeout),
            ca_file=settings.smtp.ca_file,
            quit_after=Stage.TLS,
            helo_name=settings.smtp.helo_name,
        )
        result = await run_probe(request)
        if not result.ok:
            diagnosis = result.diagnosis
            cause = diagnosis.cause if diagnosis else f"failed at {result.stage}"
            fix = diagnosis.fix if diagnosis else "Check the host, port and SSL settings of this server."
            return failed("smtp", name, f"{cause} [{diagnosis.code if diagnosis else 'unknown'}]", fix)
        last_ehlo = max((i for i, line in enumerate(result.transcript) if "EHLO" in line), default=0)
        offers_auth = any(_AUTH_LINE.match(line) for line in result.transcript[last_ehlo:])
        tls = f"TLS {result.tls.version}" if result.tls else "no TLS"
        if not offers_auth:
            return failed(
                "smtp",
                name,
                f"answers ({tls}) but offers no AUTH",
                "Turn SSL on for this server (Exchange offers AUTH only after STARTTLS), or use the submission port "
                "587 of the mail service.",
            )
        return passed("smtp", name, f"answers, {tls} with a valid certificate, AUTH offered")


_AUTH_LINE = re.compile(r"^<-\s+250[- ]AUTH\b", re.IGNORECASE)

PROVIDERS = (DirectoryFileChecks(), SmtpServerChecks())

"""The checks the core runs itself: the directory file (with a ✗ per bad record, by file and line), and every
distinct SMTP server it names.

An SMTP server is checked up to STARTTLS/TLS and the EHLO after it (never signing in or sending): it answers,
the TLS mode and certificate are right, and it offers AUTH. Password sign-ins are flagged with Microsoft's
Basic-auth retirement date (shared/reference/exchange-online.md, "Basic auth retirement timeline").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path

from plugin.checks import CheckResult, failed, passed, skipped
from plugin.classify import Stage
from plugin.directory import Directory, MailServer, Transport
from plugin.directory_files import load_directory
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
        try:
            directory = await asyncio.to_thread(load_directory, path)
        except EmailDoctorError as exc:  # the file cannot be used at all
            return [
                failed(
                    "directory",
                    "directory file",
                    str(exc),
                    f"Correct {path} (see README.md, 'The directory file'), or point EMAILDOCTOR_DIRECTORY__PATH at "
                    "the right file.",
                )
            ]
        rows = [_file_row(path, directory), *_record_rows(directory)]
        missing = [
            server.password_env
            for server in smtp_servers(directory)
            if server.password_env and not environ.get(server.password_env)
        ]
        if missing:
            names = ", ".join(sorted(set(missing)))
            rows.append(
                failed(
                    "directory",
                    "directory passwords",
                    f"{path}: the password variable(s) {names} named by the directory are not set",
                    f"Set {names} in the environment or the .env file (the password of the account that signs in).",
                )
            )
        return rows


def _file_row(path: Path, directory: Directory) -> CheckResult:
    count = len(directory.employees)
    if not directory.problems:
        return passed("directory", "directory file", f"{path}: {count} employees, all valid")
    return failed(
        "directory",
        "directory file",
        f"{path}: {count} valid employee record(s); {len(directory.problems)} bad record(s) skipped, listed below "
        "(everyone else can still be tested)",
        "Correct each record listed (see README.md, 'The directory file'), then run the check again.",
    )


def _record_rows(directory: Directory) -> list[CheckResult]:
    """One ✗ per bad record, named by its file and line."""
    rows: list[CheckResult] = []
    seen: dict[str, int] = {}
    for problem in directory.problems:
        seen[problem.origin] = seen.get(problem.origin, 0) + 1
        name = f"bad record {problem.origin}" + (f" ({seen[problem.origin]})" if seen[problem.origin] > 1 else "")
        skipped_what = (
            "the system outgoing mail server is skipped: employees without alternate server settings cannot be tested"
            if problem.record == "system"
            else "this record is skipped until it is corrected"
        )
        rows.append(failed("directory", name, problem.what, f"Correct it; {skipped_what}."))
    return rows


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

"""`emaildoctor check`: verify the whole setup before anyone relies on it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from plugin.checks import AREAS, CheckReport, discover_providers, render, run_checks
from plugin.cli_output import add_output_option, wants_json
from plugin.redact import redact
from plugin.settings import Settings

if TYPE_CHECKING:
    from plugin.cli import CliContext

DESCRIPTION = """\
Checks everything the configured features need, side by side, and prints a checklist: ✓ works, ✗ fails (with
the exact fix: which portal page, role, scope, setting or command), – not configured or not verifiable without
a change. Areas: m365 (Entra sign-in, tokens and their roles), exchange (the app's Exchange role, per cmdlet),
smtp (each server of the directory, TLS, AUTH, SMTP AUTH switches, XOAUTH2), directory (the file, and its
accounts in the tenant), slack (token, scopes, channels, IT approvers), store (database, schema, audit chain).

examples:
  emaildoctor check
  emaildoctor check --only exchange
  emaildoctor check --json | jq '.checks[] | select(.ok == false)'

exit status: 0 everything configured works, 1 something fails, 2 unusable settings."""


class CheckCommand:
    name = "check"
    help = "verify the setup: Entra app, Exchange roles, SMTP, directory, Slack, store"
    description = DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_output_option(parser, '{"ok": …, "checks": [{name, ok, detail, fix}]}')
        parser.add_argument("--only", choices=AREAS, action="append", metavar="AREA", help=f"one of {', '.join(AREAS)}")

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        settings = context.settings()
        secrets = [*settings.secret_values(), *directory_secrets(settings, context.environ)]
        report = await check_setup(settings, context.environ, frozenset(args.only or AREAS), secrets)
        if wants_json(args):
            print(redact(json.dumps(report.to_json(), indent=2, ensure_ascii=False), secrets), file=context.out)
        else:
            render(report, context.out)
        return 0 if report.ok else 1


async def check_setup(
    settings: Settings, environ: Mapping[str, str], only: frozenset[str], secrets: Iterable[str]
) -> CheckReport:
    """Every installed provider's checks for the areas in ``only``, redacted of ``secrets`` (which should include
    :func:`directory_secrets`): `emaildoctor check`, `/emaildoctor check` in Slack and the bot's /readyz all run
    this, so they never disagree."""
    return await run_checks(discover_providers(), settings, environ, only, secrets)


def directory_secrets(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """The SMTP passwords the directory's variables hold: no check may print them either."""
    from plugin.checks_local import smtp_servers
    from plugin.directory_files import load_directory
    from plugin.errors import EmailDoctorError

    try:
        directory = load_directory(settings.directory.path)
    except EmailDoctorError:
        return []
    names = {s.password_env for s in smtp_servers(directory) if s.password_env}
    return [environ[n] for n in names if environ.get(n)]


COMMAND = CheckCommand()

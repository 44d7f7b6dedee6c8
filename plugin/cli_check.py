"""`emaildoctor check`: verify the whole setup before anyone relies on it."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from plugin.checks import AREAS, discover_providers, render, run_checks
from plugin.redact import redact

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
        parser.add_argument("--json", action="store_true", help='print {"ok": …, "checks": [{name, ok, detail, fix}]}')
        parser.add_argument("--only", choices=AREAS, action="append", metavar="AREA", help=f"one of {', '.join(AREAS)}")

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        settings = context.settings()
        secrets = [*settings.secret_values(), *_directory_secrets(context)]
        only = frozenset(args.only or AREAS)
        report = await run_checks(discover_providers(), settings, context.environ, only, secrets)
        if args.json:
            print(redact(json.dumps(report.to_json(), indent=2, ensure_ascii=False), secrets), file=context.out)
        else:
            render(report, context.out)
        return 0 if report.ok else 1


def _directory_secrets(context: CliContext) -> list[str]:
    """The SMTP passwords the directory's variables hold: no check may print them either."""
    from plugin.checks_local import smtp_servers
    from plugin.directory_files import load_directory
    from plugin.errors import EmailDoctorError

    try:
        directory = load_directory(context.settings().directory.path)
    except EmailDoctorError:
        return []
    names = {s.password_env for s in smtp_servers(directory) if s.password_env}
    return [context.environ[n] for n in names if context.environ.get(n)]


COMMAND = CheckCommand()

"""`emaildoctor test USER` and `emaildoctor perms MAILBOX | --trustee USER`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING

from graph.cli_signin import add_option, microsoft365
from graph.exchange import ExchangeAdmin
from graph.groups import GroupMembers, who_including_groups
from graph.permissions_model import Grant, MailboxRights, TrusteeKind
from graph.recipients import Recipient, look_up
from graph.services import M365Services
from plugin.addresses import is_address
from plugin.cli_output import add_output_option, wants_json
from plugin.directory_files import FileDirectorySource
from plugin.doctor import Doctor
from plugin.progress import progress_for
from plugin.redact import redact
from plugin.render_text import render_report
from plugin.resolve import RIGHT_WORDS

if TYPE_CHECKING:
    from plugin.cli import CliContext

TEST_DESCRIPTION = """\
The full /emailtest diagnosis for a user of the directory: who signs in, which address the mail claims,
checks run side by side (user and mailbox exist, SMTP AUTH switches, the needed right, server and TLS),
then a real test send on the user's transport (SMTP or Microsoft Graph), explained in plain words.

USER is a login, an email address or a name from the directory (EMAILDOCTOR_DIRECTORY__PATH).
Without Microsoft 365 settings only the SMTP parts run.

examples:
  emaildoctor test alice
  emaildoctor test alice@business.com --json | jq .diagnosis.fix_action

exit status: 0 the test passed, 1 it failed (the diagnosis says why), 2 bad arguments or settings."""

PERMS_DESCRIPTION = """\
Who holds Send As, Send on Behalf and Full Access on a mailbox (NT AUTHORITY\\SELF left out; inherited,
group, disabled, external and orphaned trustees marked), or with --trustee, what one user can send as,
on behalf of, or open, directly or through the mail-enabled security groups it belongs to (nested groups
included). Read from the Exchange admin API with the emaildoctor app's permissions.

examples:
  emaildoctor perms alice@business.com
  emaildoctor perms --trustee admin@business.com --output json      (--json for short)"""


def _print(context: CliContext, text: str, secrets: list[str]) -> None:
    print(redact(text, secrets), file=context.out)


class TestCommand:
    name = "test"
    help = "full diagnosis of a directory user's outgoing email (the /emailtest of the terminal)"
    description = TEST_DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("user", metavar="USER", help="login, email address or name in the directory")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        if not args.user.strip():
            print("emaildoctor test: error: USER is empty: give a login, an email address or a name", file=context.err)
            return 2
        settings = context.settings()
        secrets = list(settings.secret_values())
        directory = FileDirectorySource(settings.directory.path)
        m365 = M365Services(settings.m365) if settings.m365.configured else None
        progress = progress_for(context.err, enabled=not args.json, prefix="test: ", secrets=secrets)
        try:
            doctor = Doctor(
                directory=directory,
                settings=settings,
                environ=context.environ,
                m365=m365,
                secrets=secrets,
                progress=progress,
            )
            with progress:
                progress.step(f"testing {args.user}: the checks, then the test send")
                report = await doctor.diagnose(args.user)
        finally:
            if m365 is not None:
                await m365.aclose()
        text = json.dumps(report.to_json(), indent=2) if args.json else render_report(report)
        _print(context, text, secrets)
        return 0 if report.ok else 1


class PermsCommand:
    name = "perms"
    help = "who holds SendAs / SendOnBehalf / FullAccess on a mailbox (or --trustee: what a user holds)"
    description = PERMS_DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("mailbox", metavar="MAILBOX", nargs="?", help="the mailbox's address")
        parser.add_argument("--trustee", metavar="USER", help="reverse lookup: what USER holds on other mailboxes")
        parser.add_argument("--all", action="store_true", help="also list Exchange's own inherited system entries")
        add_option(parser)
        add_output_option(parser, "the mailbox's rights, or the trustee's grants")

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        if any(value is not None and not value.strip() for value in (args.mailbox, args.trustee)):
            print("emaildoctor perms: error: MAILBOX or --trustee is empty: give an address", file=context.err)
            return 2
        if bool(args.mailbox) == bool(args.trustee):
            print("emaildoctor perms: error: give a MAILBOX, or --trustee USER (one of the two)", file=context.err)
            return 2
        settings = context.settings()
        secrets = list(settings.secret_values())
        async with microsoft365(settings.m365, device=args.device_login, prompt_to=context.err) as (m365, _):
            if args.trustee:
                grants = await who_including_groups(m365.permissions, GroupMembers(m365.exchange), args.trustee)
                data: object = {"trustee": args.trustee, "grants": [g.to_json() for g in grants]}
                text = _render_who(args.trustee, grants)
            else:
                rights = await marked(m365.exchange, await m365.permissions.show(args.mailbox))
                data = rights.to_json()
                text = _render_show(rights, everything=args.all)
        _print(context, json.dumps(data, indent=2) if wants_json(args) else text, secrets)
        return 0


async def marked(exchange: ExchangeAdmin, rights: MailboxRights) -> MailboxRights:
    """The holders with disabled, external (guests, other domains) and unknown trustees marked, from Exchange:
    one or two lookups per distinct trustee printed as an address. Deleted accounts (bare SIDs) are marked
    already."""
    grants = [*rights.send_as, *rights.send_on_behalf, *rights.full_access]
    wanted = sorted(
        {g.trustee.casefold() for g in grants if g.trustee_kind is TrusteeKind.USER and is_address(g.trustee)}
    )
    found = dict(zip(wanted, await asyncio.gather(*(look_up(exchange, t) for t in wanted)), strict=True))
    domains = {rights.mailbox.rsplit("@", 1)[-1].casefold()}
    domains |= {r.address.rsplit("@", 1)[-1].casefold() for r in found.values() if r is not None and not r.guest}

    def mark(grant: Grant) -> Grant:
        key = grant.trustee.casefold()
        if key not in found:
            return grant
        kind = _trustee_kind(found[key], key, domains)
        return grant if kind is TrusteeKind.USER else dataclasses.replace(grant, trustee_kind=kind)

    return dataclasses.replace(
        rights,
        send_as=tuple(mark(g) for g in rights.send_as),
        send_on_behalf=tuple(mark(g) for g in rights.send_on_behalf),
        full_access=tuple(mark(g) for g in rights.full_access),
    )


def _trustee_kind(recipient: Recipient | None, address: str, domains: set[str]) -> TrusteeKind:
    if recipient is None:
        return TrusteeKind.UNKNOWN if address.rsplit("@", 1)[-1] in domains else TrusteeKind.EXTERNAL
    if recipient.guest:
        return TrusteeKind.EXTERNAL
    if recipient.group:
        return TrusteeKind.GROUP
    return TrusteeKind.DISABLED if recipient.disabled else TrusteeKind.USER


def _render_show(rights: MailboxRights, *, everything: bool = False) -> str:
    lines = [f"Rights on {rights.mailbox}"]
    shown, hidden = rights.holders(everything=everything)
    for right, grants in shown:
        holders = ", ".join(g.describe() for g in grants) or "nobody"
        lines.append(f"  {RIGHT_WORDS[right] + ':':<16}{holders}")
    if hidden:
        lines.append(f"  (and {hidden} inherited entries of Exchange's own accounts; --all lists them)")
    lines += [f"  warning: {w}" for w in rights.warnings]
    return "\n".join(lines)


def _render_who(trustee: str, grants: list[Grant]) -> str:
    if not grants:
        return f"{trustee} holds no Send As, Send on Behalf or Full Access on other mailboxes."
    lines = [f"What {trustee} holds on other mailboxes"]
    lines += [
        f"  {RIGHT_WORDS[g.right] + ':':<16}{g.mailbox}"
        + (" (inherited)" if g.inherited else "")
        + (f" (through the group {g.via_group})" if g.via_group else "")
        for g in sorted(grants, key=lambda g: (g.right, g.mailbox))
    ]
    return "\n".join(lines)


TEST = TestCommand()
PERMS = PermsCommand()

"""`emaildoctor grant|revoke` and `emaildoctor audit`: the terminal's way to change and audit rights.

They live beside the store because they write to it: every change goes into the same hash-chained audit
log as the bot's (before it runs, and with its outcome), and every audit is kept as a snapshot, so the
next one reports what changed, whichever of the CLI or the bot ran it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.changes import describe_duration, parse_duration, parse_right
from bot.pipeline import Pipeline
from bot.store import ChangeRecord, ChangeState, RequestKind, Store
from graph.cli_signin import add_option, microsoft365
from plugin.directory_files import FileDirectorySource
from plugin.errors import ConfigError
from plugin.progress import LiveProgress, Reporter, progress_for
from plugin.redact import redact
from plugin.resolve import RIGHT_WORDS

if TYPE_CHECKING:
    from graph.audit import AuditProgress
    from graph.audit_findings import AuditReport
    from plugin.cli import CliContext

CHANGE_DESCRIPTION = """\
{verb} a mailbox right in Exchange Online, then read it back. Idempotent: {verb_lower}ing what is already so
reports "unchanged". Recorded in EMAILDOCTOR_STORE__URL before Exchange is touched, and audited with its
outcome; if Exchange does not answer, the bot (`emaildoctor bot`) finishes it.

RIGHT is SendAs, SendOnBehalf or FullAccess; the trustee gets (or loses) the right on the mailbox.

examples:
  emaildoctor {verb_lower} SendAs --mailbox alice@business.com --trustee admin@business.com{example_tail}

exit status: 0 done and read back, 1 refused, failed or not finished yet, 2 bad arguments."""

AUDIT_DESCRIPTION = """\
Inventory every SendAs, SendOnBehalf and FullAccess grant in the tenant with the Exchange admin API's
tenant-wide paged queries, compare with the previous audit (kept in EMAILDOCTOR_STORE__URL), and report
risky grants (disabled, deleted and external trustees) and every directory user whose configured sending
needs a right that is missing: a Send As denied predicted before it happens.

examples:
  emaildoctor audit
  emaildoctor audit --csv rights.csv --json > audit.json"""


def change_json(change: ChangeRecord) -> dict[str, object]:
    return {
        "change": change.id,
        "action": str(change.kind),
        "right": str(change.right),
        "mailbox": change.mailbox,
        "trustee": change.trustee,
        "state": str(change.state),
        "ok": change.state is ChangeState.VERIFIED,
        "detail": change.detail,
        "expires_at": change.expires_at.isoformat() if change.expires_at else None,
    }


def actor() -> str:
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


class ChangeCommand:
    def __init__(self, verb: str) -> None:
        self.name = verb
        self.help = f"{verb} SendAs / SendOnBehalf / FullAccess on a mailbox (audited, read back)"
        tail = " --for 8h" if verb == "grant" else ""
        self.description = CHANGE_DESCRIPTION.format(verb=verb.capitalize(), verb_lower=verb, example_tail=tail)

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("right", metavar="RIGHT", help="SendAs, SendOnBehalf or FullAccess")
        parser.add_argument("--mailbox", required=True, metavar="M", help="the mailbox the right is on")
        parser.add_argument("--trustee", required=True, metavar="T", help="who gets or loses the right")
        if self.name == "grant":
            parser.add_argument(
                "--for",
                dest="duration",
                metavar="DURATION",
                help="time-bound: 30m, 8h, 2d … (the bot's scheduler revokes it when it runs out)",
            )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        add_option(parser)

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        from plugin.clock import SystemClock

        right = parse_right(args.right)
        settings = context.settings()
        longest = timedelta(days=settings.limits.max_grant_days)
        duration = parse_duration(args.duration, longest) if getattr(args, "duration", None) else None
        clock = SystemClock()
        m365_context = microsoft365(settings.m365, device=args.device_login, prompt_to=context.err, clock=clock)
        async with m365_context as (m365, admin):
            who = admin or actor()
            secrets = [*settings.secret_values(), *m365.secrets]
            async with await Store.open(settings.store.url, clock=clock, secrets=secrets) as store:
                pipeline = Pipeline(store, m365.permissions, settings.changes, clock=clock, replica=actor())
                record = await pipeline.record(
                    RequestKind(self.name), right, args.mailbox, args.trustee, by=who, duration=duration
                )
                with progress_for(context.err, enabled=not args.json) as live:  # a spinner on a terminal only
                    live.step(f"{self.name} {args.right} {args.trustee} on {args.mailbox}: Exchange, then a read-back")
                    change = await pipeline.drive(record.id) or await store.get_change(record.id)
        ok = change.state is ChangeState.VERIFIED
        if args.json:
            text = json.dumps(change_json(change), indent=2)
        else:
            words = f"{args.trustee} {RIGHT_WORDS[right]} on {args.mailbox}"
            text = f"{self.name} {words}: {change.state}. {change.detail or ''}".rstrip()
            if not change.state.final:
                text += (
                    f"\nNot finished (change {change.id}): the bot (`emaildoctor bot`) keeps trying and posts the "
                    "outcome in the approvals channel."
                )
            if duration and change.state is not ChangeState.FAILED:
                text += (
                    f"\nTime-bound: revoked after {describe_duration(duration)} by the bot's scheduler "
                    "(`emaildoctor bot` must be running)."
                )
            if ok and self.name == "grant":
                text += (
                    "\nExchange can take up to an hour to apply a new right to sending; re-test with emaildoctor test."
                )
        print(redact(text, secrets), file=context.out)
        return 0 if ok else 1


class AuditCommand:
    name = "audit"
    help = "inventory every SendAs / SendOnBehalf / FullAccess grant, with findings and changes"
    description = AUDIT_DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--csv", type=Path, metavar="FILE", help="also write one CSV row per grant to FILE")
        parser.add_argument("--json", action="store_true", help="print the snapshot, diff and findings as JSON")
        parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
        add_option(parser)

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        from bot.audits import previous_snapshot_from
        from graph.audit import TenantAudit
        from graph.audit_output import audit_json, write_audit_csv
        from plugin.clock import SystemClock

        if args.csv is not None and not args.csv.parent.is_dir():
            raise ConfigError(f"--csv: the folder {args.csv.parent} does not exist")
        settings = context.settings()
        clock = SystemClock()
        live = progress_for(context.err, enabled=not args.quiet)  # a rich spinner on a terminal
        progress = None if args.quiet else _progress_printer(context, live)
        async with microsoft365(settings.m365, device=args.device_login, prompt_to=context.err, clock=clock) as (
            m365,
            admin,
        ):
            secrets = [*settings.secret_values(), *m365.secrets]
            directory = await FileDirectorySource(settings.directory.path).load()
            async with await Store.open(settings.store.url, clock=clock, secrets=secrets) as store:
                previous = await previous_snapshot_from(store)
                audit = TenantAudit(m365.exchange, m365.directory, clock=clock, progress=progress)
                with live:  # started after sign-in, so a device-login prompt is never overdrawn
                    report = await audit.run(directory=directory, previous=previous)
                snapshot = report.snapshot.to_json()
                grants = snapshot.pop("grants")
                await store.save_snapshot(report.snapshot.taken_at, snapshot, grants)
                await store.append_audit(admin or actor(), "audit", {"mailboxes": report.snapshot.mailboxes}, "ok")
        if progress is not None and not isinstance(live, LiveProgress):
            print(file=context.err)
        if args.csv is not None:
            with args.csv.open("w", encoding="utf-8", newline="") as stream:
                rows = write_audit_csv(report, stream, secrets)
            print(f"wrote {rows} rows to {args.csv}", file=context.err)
        text = json.dumps(audit_json(report, audit.stats, secrets), indent=2) if args.json else render_audit(report)
        print(redact(text, secrets), file=context.out)
        return 0


def render_audit(report: AuditReport) -> str:
    snap = report.snapshot
    lines = [f"Audit of {snap.mailboxes} mailboxes at {snap.taken_at:%Y-%m-%d %H:%M} UTC: {len(snap.grants)} grants"]
    for right, words in RIGHT_WORDS.items():
        lines.append(f"  {words + ':':<16}{sum(1 for g in snap.grants if g.right is right)}")
    if report.diff.previous_taken_at is None:
        lines.append("Changes: first audit (the next one reports what changed).")
    else:
        lines.append(f"Changes since {report.diff.previous_taken_at:%Y-%m-%d %H:%M} UTC:")
        lines += [f"  + {RIGHT_WORDS[g.right]} {g.trustee} on {g.mailbox}" for g in report.diff.granted]
        lines += [f"  - {RIGHT_WORDS[g.right]} {g.trustee} on {g.mailbox}" for g in report.diff.removed]
        if report.diff.empty:
            lines.append("  none")
    lines.append(f"Findings ({len(report.findings)}):")
    for finding in report.findings:
        who = f" [users: {', '.join(finding.users)}]" if finding.users else ""
        lines.append(f"  {finding.kind}: {finding.detail}{who}")
        lines.append(f"      {finding.remedy}")
    return "\n".join(lines)


def _progress_printer(context: CliContext, live: Reporter) -> Callable[[AuditProgress], None]:
    stream = context.err
    interactive = isinstance(live, LiveProgress)

    last_at, last_phase = 0.0, ""

    def show(progress: AuditProgress) -> None:
        nonlocal last_at, last_phase
        now = time.monotonic()
        if progress.phase == last_phase and now - last_at < (0.2 if interactive else 2.0):
            return  # a line per phase and every couple of seconds is progress; one per batch is noise
        last_at, last_phase = now, progress.phase
        total = str(progress.mailboxes_listed) + ("" if progress.listing_complete else "+")
        line = f"audit: {progress.phase}: {progress.mailboxes_done}/{total} mailboxes"
        if interactive:
            live.update(line)
        else:
            print(line, file=stream, flush=True)

    return show


GRANT = ChangeCommand("grant")
REVOKE = ChangeCommand("revoke")
AUDIT = AuditCommand()

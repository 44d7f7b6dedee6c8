"""`emaildoctor grant|revoke` and `emaildoctor audit`: the terminal's way to change and audit rights.

They live beside the store because they write to it: every change goes into the same hash-chained audit
log as the bot's (before it runs, and with its outcome), and every audit is kept as a snapshot, so the
next one reports what changed, whichever of the CLI or the bot ran it.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.changes import parse_duration, parse_right
from bot.pipeline import Pipeline, found_unchanged
from bot.store import ChangeRecord, ChangeState, RequestKind, Store
from graph.cli_signin import add_option, microsoft365
from plugin.cli_output import add_output_option, wants_json
from plugin.diagnosis import Right
from plugin.directory import Directory
from plugin.directory_files import FileDirectorySource
from plugin.errors import ConfigError, EmailDoctorError
from plugin.progress import LiveProgress, Reporter, progress_for
from plugin.redact import redact
from plugin.resolve import RIGHT_WORDS

if TYPE_CHECKING:
    from graph.audit import AuditProgress
    from graph.audit_findings import AuditReport
    from plugin.cli import CliContext

CHANGE_DESCRIPTION = """\
{verb} a mailbox right in Exchange Online, then read it back. Idempotent: {verb_lower}ing what is already so
says "nothing changed". Recorded in EMAILDOCTOR_STORE__URL before Exchange is touched, and audited with its
outcome; if Exchange does not answer, the bot (`emaildoctor bot`) finishes it.

RIGHT is SendAs, SendOnBehalf or FullAccess; the trustee gets (or loses) the right on the mailbox. The mailbox
and the trustee may be an email address, a UPN, an Exchange alias or a login of the directory.

examples:
  emaildoctor {verb_lower} SendAs --mailbox alice@business.com --trustee admin@business.com --what-if
  emaildoctor {verb_lower} SendAs --mailbox alice@business.com --trustee admin@business.com{example_tail}

exit status: 0 done and read back (or --what-if), 1 refused, failed or not finished yet, 2 bad arguments."""

AUDIT_DESCRIPTION = """\
Inventory every SendAs, SendOnBehalf and FullAccess grant in the tenant with the Exchange admin API's
tenant-wide paged queries, compare with the previous audit (kept in EMAILDOCTOR_STORE__URL), and report
risky grants (disabled, deleted and external trustees) and every directory user whose configured sending
needs a right that is missing: a Send As denied predicted before it happens.

examples:
  emaildoctor audit
  emaildoctor audit --csv rights.csv --output json > audit.json
  emaildoctor audit --csv - --quiet | grep disabled_trustee     # the CSV on stdout (the summary on stderr)
  emaildoctor audit --quiet --fail-on predicted                  # for cron: exit 1 when a send will fail

exit status: 0 done (and, with --fail-on, nothing of that kind found), 1 failed or --fail-on matched, 2 bad
arguments or settings."""


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
                help="time-bound: 30m, 8h, 2d … (the bot's scheduler revokes it when it runs out; it must share "
                "the store, EMAILDOCTOR_STORE__URL)",
            )
            parser.add_argument(
                "--no-automapping",
                action="store_true",
                help="FullAccess only: do not add the mailbox to the trustee's Outlook (-AutoMapping:$false)",
            )
        parser.add_argument(
            "--what-if", action="store_true", help="print the cmdlet and its effect; change nothing (like -WhatIf)"
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        add_option(parser)

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        from bot.cli_change import expiry_words, outcome_words, resolve, what_if
        from plugin.clock import SystemClock

        right = parse_right(args.right)
        automapping = not getattr(args, "no_automapping", False)
        if not automapping and right is not Right.FULL_ACCESS:
            raise ConfigError("--no-automapping applies to FullAccess only (Outlook maps mailboxes, not send rights)")
        settings = context.settings()
        longest = timedelta(days=settings.limits.max_grant_days)
        duration = parse_duration(args.duration, longest) if getattr(args, "duration", None) else None
        if not args.what_if:  # a store that cannot be opened is named before Microsoft is asked anything
            from bot.store.engine import check_store_url

            check_store_url(settings.store.url)
        clock = SystemClock()
        directory = await _directory_or_none(settings.directory.path)
        m365_context = microsoft365(settings.m365, device=args.device_login, prompt_to=context.err, clock=clock)
        async with m365_context as (m365, admin):
            who = admin or actor()
            secrets = [*settings.secret_values(), *m365.secrets]
            resolved = await resolve(m365.exchange, directory, self.name, right, args.mailbox, args.trustee)
            resolved.change = dataclasses.replace(resolved.change, duration=duration)
            for line in [*resolved.notes, *(f"warning: {w}" for w in resolved.warnings)]:
                print(redact(line, secrets), file=context.err)
            if args.what_if:
                text = what_if(resolved, automapping=automapping, now=clock.now())
                if args.json:
                    lines = text.split("\n")
                    data = {"what_if": True, "cmdlet": lines[0].removeprefix("What if: "), "effect": lines[1]}
                    text = json.dumps(data | {"warnings": resolved.warnings}, indent=2)
                print(redact(text, secrets), file=context.out)
                return 0
            m365.permissions.automapping = automapping
            change_ = resolved.change
            async with await Store.open(settings.store.url, clock=clock, secrets=secrets) as store:
                pipeline = Pipeline(store, m365.permissions, settings.changes, clock=clock, replica=actor())
                record = await pipeline.record(
                    RequestKind(self.name), right, change_.mailbox, change_.trustee, by=who, duration=duration
                )
                with progress_for(context.err, enabled=not args.json) as live:  # a spinner on a terminal only
                    live.step(f"{self.name} {args.right} {args.trustee} on {args.mailbox}: Exchange, then a read-back")
                    change = await pipeline.drive(record.id) or await store.get_change(record.id)
        ok = change.state is ChangeState.VERIFIED
        if args.json:
            data = change_json(change) | {"changed": ok and not found_unchanged(change), "warnings": resolved.warnings}
            text = json.dumps(data, indent=2)
        else:
            text = outcome_words(self.name, change)
            if duration and change.state is not ChangeState.FAILED and change.expires_at is not None:
                text += "\n" + expiry_words(change.expires_at)
        print(redact(text, secrets), file=context.out)
        return 0 if ok else 1


async def _directory_or_none(path: Path) -> Directory | None:
    """The directory, for resolving logins; None when there is none to read (addresses still work)."""
    try:
        return await FileDirectorySource(path).load()
    except EmailDoctorError:
        return None


class AuditCommand:
    name = "audit"
    help = "inventory every SendAs / SendOnBehalf / FullAccess grant, with findings and changes"
    description = AUDIT_DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--csv", type=Path, metavar="FILE", help="also write one CSV row per grant to FILE ('-': to stdout)"
        )
        add_output_option(parser, "the snapshot, diff and findings")
        parser.add_argument(
            "--fail-on",
            choices=FAIL_ON,
            help="exit 1 when the audit has findings (any), or predicted send failures only (for cron)",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
        add_option(parser)

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        from bot.audits import previous_snapshot_from
        from graph.audit import TenantAudit
        from graph.audit_output import audit_json, write_audit_csv
        from plugin.clock import SystemClock

        to_stdout = args.csv is not None and str(args.csv) == "-"
        if to_stdout and wants_json(args):
            raise ConfigError("--csv - and --output json both print to stdout: write the CSV to a file instead")
        if args.csv is not None and not to_stdout and (problem := _csv_problem(args.csv)):
            raise ConfigError(f"--csv {args.csv}: {problem}")
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
        if to_stdout:
            write_audit_csv(report, context.out, secrets)
        elif args.csv is not None:
            try:
                with args.csv.open("w", encoding="utf-8", newline="") as stream:
                    rows = write_audit_csv(report, stream, secrets)
            except OSError as exc:  # the audit is saved in the store; only the file failed
                print(f"emaildoctor audit: failed: cannot write {args.csv}: {exc.strerror or exc}", file=context.err)
                return 1
            print(f"wrote {rows} rows to {args.csv}", file=context.err)
        if wants_json(args):
            text = json.dumps(audit_json(report, audit.stats, secrets), indent=2)
        else:
            text = render_audit(report)
        print(redact(text, secrets), file=context.err if to_stdout else context.out)
        return 1 if _fails(report, args.fail_on) else 0


FAIL_ON = ("findings", "predicted")


def _fails(report: AuditReport, fail_on: str | None) -> bool:
    from graph.audit_findings import FindingKind

    if fail_on == "findings":
        return bool(report.findings)
    if fail_on == "predicted":
        return any(f.kind is FindingKind.PREDICTED_SEND_FAILURE for f in report.findings)
    return False


def _csv_problem(path: Path) -> str | None:
    """Why the CSV could not be written, checked before the audit runs (it takes minutes on a large tenant)."""
    target = path.expanduser()
    if target.is_dir():
        return "is a folder: name a file, e.g. rights.csv"
    folder = target.parent
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    existed = target.exists()
    try:  # the only reliable test (permissions, read-only file systems, root): open it for writing
        with target.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        return f"cannot be written: {exc.strerror or exc}"
    if not existed:
        target.unlink(missing_ok=True)
    return None


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

"""Tenant audits from chat and on a schedule: run, store the snapshot, post a summary and the CSV.

Every audit post also carries the audit log's chain head (the last entry's number and hash): Slack keeps a copy
the store's writers cannot rewrite, and ``emaildoctor log verify --head SEQ:HASH`` (:mod:`bot.cli_log`) checks the
store against it later.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot import blocks
from bot.context import BotContext
from bot.observe import audit_event
from bot.store import ChainHead, Store
from plugin.errors import ConfigError
from plugin.resolve import RIGHT_WORDS

if TYPE_CHECKING:
    from graph.audit_findings import AuditReport, Finding, Snapshot
    from graph.permissions_model import Grant

MAX_LISTED = 8


async def previous_snapshot_from(store: Store) -> Snapshot | None:
    """The last audit kept in the store (by the bot or the CLI), as the audit's own snapshot type."""
    from graph.audit_findings import Snapshot

    stored = await store.latest_snapshot()
    if stored is None:
        return None
    return Snapshot.from_json({**stored.summary, "grants": list(stored.rows)})


async def run_audit(ctx: BotContext) -> AuditReport:
    """Audit the tenant, diff against the last stored snapshot, store this one."""
    if ctx.auditor is None:
        raise ConfigError("Microsoft 365 is not configured, so emaildoctor cannot audit mailbox rights")
    started = time.perf_counter()
    previous = await previous_snapshot_from(ctx.store)
    directory = await ctx.directory.load()
    report = await ctx.auditor.run(directory=directory, previous=previous)
    kinds = Counter(str(finding.kind) for finding in report.findings)
    audit_event(time.perf_counter() - started, report.snapshot.mailboxes, dict(kinds))
    snapshot = report.snapshot.to_json()
    grants = snapshot.pop("grants")
    await ctx.store.save_snapshot(report.snapshot.taken_at, snapshot, grants)
    await ctx.store.append_audit(
        "emaildoctor",
        "audit",
        {"mailboxes": report.snapshot.mailboxes, "grants": len(report.snapshot.grants)},
        "ok",
        detail=f"{len(report.findings)} findings, {len(report.diff.granted)} granted, {len(report.diff.removed)} removed",
    )
    return report


def summary(report: AuditReport, *, scheduled: bool) -> blocks.Message:
    snap = report.snapshot
    counts = Counter(g.right for g in snap.grants)
    by_kind: dict[str, list[Finding]] = {}
    for finding in report.findings:
        by_kind.setdefault(str(finding.kind), []).append(finding)
    title = "Scheduled mailbox-rights audit" if scheduled else "Mailbox-rights audit"
    lines = [
        f"*{title}* of {snap.mailboxes} mailboxes at {_when(snap.taken_at)}",
        " · ".join(f"{RIGHT_WORDS[right]}: {counts.get(right, 0)}" for right in RIGHT_WORDS),
    ]
    if report.diff.previous_taken_at is None:
        lines.append("Changes: this is the first audit; the next one will show what changed.")
    elif report.diff.empty:
        lines.append(f"Changes since {_when(report.diff.previous_taken_at)}: none.")
    else:
        lines.append(f"Changes since {_when(report.diff.previous_taken_at)}:")
        lines += [f"  ➕ {_grant(g)}" for g in report.diff.granted[:MAX_LISTED]] + _more(report.diff.granted)
        lines += [f"  ➖ {_grant(g)}" for g in report.diff.removed[:MAX_LISTED]] + _more(report.diff.removed)
    predicted = by_kind.get("predicted_send_failure", [])
    if predicted:
        lines.append(f":rotating_light: *Sending that will fail before anyone tries* ({len(predicted)}):")
        lines += [f"  • {_finding(f)}" for f in predicted[:MAX_LISTED]] + _more(predicted)
    risky = [f for kind, items in by_kind.items() if kind != "predicted_send_failure" for f in items]
    if risky:
        lines.append(f":warning: *Risky grants* ({len(risky)}):")
        lines += [f"  • {_finding(f)}" for f in risky[:MAX_LISTED]] + _more(risky)
    if not predicted and not risky:
        lines.append(":white_check_mark: No risky grants and no predicted Send As failures.")
    text = "\n".join(lines)
    return lines[0], [{"type": "section", "text": {"type": "mrkdwn", "text": blocks.clip(text, rest="see the CSV")}}]


def _more(items: Sequence[object]) -> list[str]:
    left = len(items) - MAX_LISTED
    return [f"  … and {left} more (see the CSV)"] if left > 0 else []


def _grant(grant: Grant) -> str:
    return f"{RIGHT_WORDS[grant.right]} {blocks.escape(grant.trustee)} → {blocks.escape(grant.mailbox)}"


def _finding(finding: Finding) -> str:
    # Names and addresses come from the tenant and the directory: escaped like anything typed.
    who = f" (users: {blocks.escape(', '.join(finding.users))})" if finding.users else ""
    return f"{blocks.escape(finding.detail)}{who} — `{blocks.escape(finding.remedy)}`"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def csv_text(report: AuditReport, secrets: list[str]) -> str:
    from graph.audit_output import write_audit_csv

    stream = io.StringIO()
    write_audit_csv(report, stream, secrets)
    return stream.getvalue()


def head_block(head: ChainHead) -> blocks.Block:
    """The audit log's chain head, as a context line under the audit's summary."""
    text = (
        f":link: Audit log head: entry {head.seq}, `{head}` — to check the store against it later: "
        f"`emaildoctor log verify --head {head}`"
    )
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text, "verbatim": True}]}


async def post_audit(ctx: BotContext, report: AuditReport, channel: str, *, scheduled: bool) -> None:
    text, summary_blocks = summary(report, scheduled=scheduled)
    head = await ctx.store.chain_head()  # after run_audit's own entry: the post anchors the log up to it
    await ctx.poster.post(channel, (text, [*summary_blocks, head_block(head)]))
    stamp = report.snapshot.taken_at.strftime("%Y%m%d-%H%M")
    await ctx.poster.upload(
        channel,
        filename=f"mailbox-rights-{stamp}.csv",
        content=csv_text(report, ctx.secrets),
        title=f"Mailbox rights {stamp}",
        comment="Every SendAs, SendOnBehalf and FullAccess grant, with findings.",
    )


def last_summary(stored: Any) -> blocks.Message:
    data = stored.summary
    return blocks.plain(
        f"The last audit ran at {_when(stored.taken_at)}: {data.get('mailboxes', '?')} mailboxes, "
        f"{len(stored.rows)} grants. Run `/mailaudit run` for a fresh one with findings."
    )

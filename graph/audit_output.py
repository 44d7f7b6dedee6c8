"""Audit output: one JSON document, and a CSV with one row per grant. Column and key names are stable.

JSON (``audit_json``)::

    {"schema": "emaildoctor.audit/1",
     "summary":  {"mailboxes", "grants": {"SendAs", "SendOnBehalf", "FullAccess"}, "granted", "removed",
                  "findings": {<kind>: count}},
     "snapshot": Snapshot.to_json()   (schema emaildoctor.audit.snapshot/1: tenant, taken_at, mailboxes, grants[],
                                        warnings[]; each grant: right, mailbox, trustee, trustee_kind, inherited, deny),
     "diff":     {"previous_taken_at", "granted": [grant], "removed": [grant]},
     "findings": [{"kind", "right", "mailbox", "trustee", "trustee_kind", "detail", "users", "remedy",
                   "fix_action": {"right", "mailbox", "trustee"} | null}],
     "stats":    {"requests", "batch_items", "retries", "throttled", "seconds"} | null}

CSV (``write_audit_csv``), columns in this order (:data:`CSV_COLUMNS`):

=========================  =================================================================================
``status``                 ``held`` (in the snapshot), ``granted`` (new since the previous audit), ``removed``
                           (gone since the previous audit), ``missing`` (a right the directory needs, absent)
``right``                  ``SendAs`` | ``SendOnBehalf`` | ``FullAccess``
``mailbox``, ``trustee``   addresses (a group's name, or a bare SID, as trustee)
``trustee_kind``           ``user`` ``group`` ``external`` ``orphaned_sid`` ``disabled`` ``app`` ``unknown`` ``system``
``inherited``, ``deny``    ``true`` / ``false``
one column per finding     ``disabled_trustee``, ``orphaned_sid``, ``external_trustee``,
                           ``full_access_without_send``, ``predicted_send_failure``: ``true`` / ``false``
``affected_users``         directory logins concerned, separated by ``;``
``remedy``                 the emaildoctor command that fixes the finding (empty when there is none)
=========================  =================================================================================

Everything passes through :func:`plugin.redact.redact`; cells that a spreadsheet would run as a formula are
prefixed with ``'``.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from typing import Any, TextIO

from graph.audit import AuditStats
from graph.audit_findings import AuditReport, Finding, FindingKind
from graph.permissions_model import Grant
from plugin.diagnosis import Right
from plugin.redact import redact

AUDIT_SCHEMA = "emaildoctor.audit/1"
FINDING_COLUMNS = tuple(str(kind) for kind in FindingKind)
CSV_COLUMNS = (
    "status",
    "right",
    "mailbox",
    "trustee",
    "trustee_kind",
    "inherited",
    "deny",
    *FINDING_COLUMNS,
    "affected_users",
    "remedy",
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def audit_json(report: AuditReport, stats: AuditStats | None = None, secrets: Iterable[str] = ()) -> dict[str, Any]:
    secrets = list(secrets)
    grants = Counter(str(g.right) for g in report.snapshot.grants)
    data: dict[str, Any] = {
        "schema": AUDIT_SCHEMA,
        "summary": {
            "mailboxes": report.snapshot.mailboxes,
            "grants": {str(r): grants.get(str(r), 0) for r in Right},
            "granted": len(report.diff.granted),
            "removed": len(report.diff.removed),
            "findings": dict(Counter(str(f.kind) for f in report.findings)),
        },
        "snapshot": report.snapshot.to_json(),
        "diff": report.diff.to_json(),
        "findings": [f.to_json() for f in report.findings],
        "stats": None
        if stats is None
        else {
            "requests": stats.requests,
            "batch_items": stats.batch_items,
            "retries": stats.retries,
            "throttled": stats.throttled,
            "seconds": round(stats.seconds, 3),
        },
    }
    redacted: dict[str, Any] = _redacted(data, secrets)
    return redacted


def csv_rows(report: AuditReport) -> list[dict[str, str]]:
    """The CSV rows as dicts keyed by :data:`CSV_COLUMNS` (not yet redacted or formula-guarded)."""
    by_grant: dict[tuple[str, str, str], list[Finding]] = {}
    for finding in report.findings:
        if finding.kind is not FindingKind.PREDICTED_SEND_FAILURE:
            by_grant.setdefault(_key(finding.right, finding.mailbox, finding.trustee), []).append(finding)
    granted = {g.key for g in report.diff.granted}
    rows = [
        _grant_row("granted" if g.key in granted else "held", g, by_grant.get(_key(g.right, g.mailbox, g.trustee), []))
        for g in report.snapshot.grants
    ]
    rows += [_grant_row("removed", g, []) for g in report.diff.removed]
    for finding in report.findings:
        if finding.kind is FindingKind.PREDICTED_SEND_FAILURE:
            row = dict.fromkeys(CSV_COLUMNS, "")
            row.update(
                status="missing",
                right=str(finding.right),
                mailbox=finding.mailbox,
                trustee=finding.trustee,
                trustee_kind=str(finding.trustee_kind),
                inherited="false",
                deny="false",
                affected_users=";".join(finding.users),
                remedy=finding.remedy,
            )
            row.update(
                {column: str(column == FindingKind.PREDICTED_SEND_FAILURE).lower() for column in FINDING_COLUMNS}
            )
            rows.append(row)
    return rows


def write_audit_csv(report: AuditReport, stream: TextIO, secrets: Iterable[str] = ()) -> int:
    """Write the CSV (header first) to ``stream``; returns the number of data rows."""
    secrets = list(secrets)
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows = csv_rows(report)
    for row in rows:
        writer.writerow({k: _cell(v, secrets) for k, v in row.items()})
    return len(rows)


def _grant_row(status: str, grant: Grant, found: list[Finding]) -> dict[str, str]:
    kinds = {f.kind for f in found}
    row = {
        "status": status,
        "right": str(grant.right),
        "mailbox": grant.mailbox,
        "trustee": grant.trustee,
        "trustee_kind": str(grant.trustee_kind),
        "inherited": str(grant.inherited).lower(),
        "deny": str(grant.deny).lower(),
        "affected_users": ";".join(dict.fromkeys(u for f in found for u in f.users)),
        "remedy": found[0].remedy if found else "",
    }
    row.update({str(kind): str(kind in kinds).lower() for kind in FindingKind})
    return row


def _key(right: Right, mailbox: str, trustee: str) -> tuple[str, str, str]:
    return (str(right), mailbox.casefold(), trustee.casefold())


def _cell(value: str, secrets: list[str]) -> str:
    text = redact(value, secrets)
    return "'" + text if text.startswith(_FORMULA) else text


def _redacted(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: _redacted(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, secrets) for v in value]
    return value

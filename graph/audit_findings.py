"""What a tenant audit produces, as data: the :class:`Snapshot` of every grant, the :func:`diff` against the previous
snapshot, and the :func:`findings` (risky grants, and the Send As failures the directory predicts).

Pure functions over frozen dataclasses: no I/O here, so the bot can diff a stored snapshot (``Snapshot.from_json``)
against a fresh one and the tests can check findings without a tenant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from graph.permissions_model import Grant, TrusteeKind
from plugin.addresses import same_address
from plugin.diagnosis import FixAction, Right
from plugin.directory import Directory
from plugin.errors import ConfigError, EmailDoctorError
from plugin.resolve import RIGHT_WORDS, resolve

SNAPSHOT_SCHEMA = "emaildoctor.audit.snapshot/1"
SEND_RIGHTS = (Right.SEND_AS, Right.SEND_ON_BEHALF)


@dataclass(frozen=True)
class Snapshot:
    """Every SendAs, SendOnBehalf and FullAccess grant in the tenant at ``taken_at`` (sorted, deterministic).
    ``mailboxes``: how many mailboxes were audited. Exchange's own inherited principals are left out."""

    tenant: str
    taken_at: datetime
    grants: tuple[Grant, ...]
    mailboxes: int
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SNAPSHOT_SCHEMA,
            "tenant": self.tenant,
            "taken_at": self.taken_at.isoformat(),
            "mailboxes": self.mailboxes,
            "grants": [g.to_json() for g in self.grants],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        """Read a stored snapshot back; ConfigError if it is not one."""
        if not isinstance(data, dict) or data.get("schema") != SNAPSHOT_SCHEMA:
            raise ConfigError(f"not an emaildoctor audit snapshot (expected schema {SNAPSHOT_SCHEMA})")
        try:
            return cls(
                tenant=str(data["tenant"]),
                taken_at=datetime.fromisoformat(str(data["taken_at"])),
                grants=tuple(sorted(Grant.from_json(g) for g in data["grants"])),
                mailboxes=int(data["mailboxes"]),
                warnings=tuple(str(w) for w in data.get("warnings", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the stored audit snapshot is damaged: {exc}") from exc


@dataclass(frozen=True)
class SnapshotDiff:
    """Grants that appeared (``granted``) or disappeared (``removed``) since the previous snapshot."""

    previous_taken_at: datetime | None
    granted: tuple[Grant, ...] = ()
    removed: tuple[Grant, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.granted and not self.removed

    def to_json(self) -> dict[str, Any]:
        return {
            "previous_taken_at": self.previous_taken_at.isoformat() if self.previous_taken_at else None,
            "granted": [g.to_json() for g in self.granted],
            "removed": [g.to_json() for g in self.removed],
        }


def diff(previous: Snapshot | None, current: Snapshot) -> SnapshotDiff:
    """Compare by (right, mailbox, trustee, deny), addresses case-insensitively. No previous snapshot: no diff."""
    if previous is None:
        return SnapshotDiff(previous_taken_at=None)
    before = {g.key: g for g in previous.grants}
    after = {g.key: g for g in current.grants}
    return SnapshotDiff(
        previous_taken_at=previous.taken_at,
        granted=tuple(sorted(g for k, g in after.items() if k not in before)),
        removed=tuple(sorted(g for k, g in before.items() if k not in after)),
    )


class FindingKind(StrEnum):
    DISABLED_TRUSTEE = "disabled_trustee"
    ORPHANED_SID = "orphaned_sid"
    EXTERNAL_TRUSTEE = "external_trustee"
    FULL_ACCESS_WITHOUT_SEND = "full_access_without_send"
    PREDICTED_SEND_FAILURE = "predicted_send_failure"


RISKY_KINDS = {
    TrusteeKind.DISABLED: FindingKind.DISABLED_TRUSTEE,
    TrusteeKind.ORPHANED_SID: FindingKind.ORPHANED_SID,
    TrusteeKind.EXTERNAL: FindingKind.EXTERNAL_TRUSTEE,
}


@dataclass(frozen=True)
class Finding:
    """One thing an IT admin should look at. ``fix`` is a ready grant (``emaildoctor grant …``) when granting
    fixes it; ``remedy`` is the command to run in every case (a revoke for risky grants)."""

    kind: FindingKind
    right: Right
    mailbox: str
    trustee: str
    trustee_kind: TrusteeKind
    detail: str
    remedy: str
    users: tuple[str, ...] = field(default=())
    """Directory logins whose sending this concerns (predicted failures, FullAccess without the send right)."""
    fix: FixAction | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "right": str(self.right),
            "mailbox": self.mailbox,
            "trustee": self.trustee,
            "trustee_kind": str(self.trustee_kind),
            "detail": self.detail,
            "users": list(self.users),
            "remedy": self.remedy,
            "fix_action": self.fix.to_json() if self.fix else None,
        }


@dataclass(frozen=True)
class AuditReport:
    snapshot: Snapshot
    diff: SnapshotDiff
    findings: tuple[Finding, ...]


def findings(
    snapshot: Snapshot,
    directory: Directory | None = None,
    canonical: Mapping[str, str] | None = None,
    memberships: Mapping[str, frozenset[str]] | None = None,
) -> tuple[Finding, ...]:
    """Risky grants (disabled, deleted-SID and external trustees) and, with the application's ``directory``, every
    user whose configured sending needs a right the snapshot lacks, plus FullAccess held without that right.

    ``canonical`` maps addresses (case-folded) to the primary SMTP address Exchange prints in the snapshot, for
    directories that name a mailbox or a sign-in by its UPN or another alias. ``memberships`` maps a group's label
    (case-folded) to the keys of all its members, nested groups included (:meth:`graph.groups.GroupMembers.transitive`):
    a principal in a group that holds the right is not predicted to fail."""
    found: list[Finding] = [
        _risky(grant, RISKY_KINDS[grant.trustee_kind])
        for grant in snapshot.grants
        if grant.trustee_kind in RISKY_KINDS and not grant.deny
    ]
    if directory is not None:
        found.extend(_directory_findings(snapshot.grants, directory, canonical or {}, memberships or {}))
    return tuple(sorted(found, key=lambda f: (f.kind, f.mailbox.casefold(), f.trustee.casefold(), f.right)))


def _risky(grant: Grant, kind: FindingKind) -> Finding:
    why = {
        FindingKind.DISABLED_TRUSTEE: f"{grant.trustee}'s account is disabled but still holds {grant.right}",
        FindingKind.ORPHANED_SID: f"a deleted account (SID {grant.trustee}) still holds {grant.right}",
        FindingKind.EXTERNAL_TRUSTEE: f"{grant.trustee} is outside the organisation and holds {grant.right}",
    }[kind]
    return Finding(
        kind=kind,
        right=grant.right,
        mailbox=grant.mailbox,
        trustee=grant.trustee,
        trustee_kind=grant.trustee_kind,
        detail=f"{why} on {grant.mailbox}",
        remedy=f"emaildoctor revoke {grant.right} --mailbox {grant.mailbox} --trustee {grant.trustee}",
    )


def planned_addresses(directory: Directory) -> set[str]:
    """Every From address and signing-in principal the directory's send plans that need a right refer to."""
    found: set[str] = set()
    for employee in directory.employees:
        try:
            plan = resolve(employee, directory)
        except EmailDoctorError:
            continue
        if plan.required_right is not None:
            found.update((plan.from_addr, plan.principal))
    return found


def planned_groups(grants: Iterable[Grant], planned: set[str]) -> set[str]:
    """The groups holding a send right on a mailbox the directory sends from: the only ones predictions expand."""
    return {
        g.trustee
        for g in grants
        if g.trustee_kind is TrusteeKind.GROUP and g.right in SEND_RIGHTS and g.mailbox.casefold() in planned
    }


def _directory_findings(
    grants: Iterable[Grant],
    directory: Directory,
    canonical: Mapping[str, str],
    memberships: Mapping[str, frozenset[str]],
) -> list[Finding]:
    """Every employee whose send plan needs a right the principal does not hold, directly or through a group
    (without a deny)."""
    by_mailbox: dict[str, list[Grant]] = {}
    for grant in grants:
        by_mailbox.setdefault(grant.mailbox.casefold(), []).append(grant)
    needs: dict[tuple[Right, str, str], list[str]] = {}
    for employee in directory.employees:
        try:
            plan = resolve(employee, directory)
        except EmailDoctorError:
            continue  # no address on record, no server: diagnosed by `emaildoctor test`, not a rights problem
        if plan.required_right is None:
            continue
        mailbox, principal = (canonical.get(a.casefold(), a).casefold() for a in (plan.from_addr, plan.principal))
        key = (plan.required_right, mailbox, principal)
        needs.setdefault(key, []).append(employee.login)
    found: list[Finding] = []
    for (right, mailbox_key, principal_key), logins in sorted(needs.items()):
        on_mailbox = by_mailbox.get(mailbox_key, [])
        mine = [g for g in on_mailbox if same_address(g.trustee, principal_key)]
        through_group = any(
            g.right is right and not g.deny and principal_key in memberships.get(g.trustee.casefold(), ())
            for g in on_mailbox
            if g.trustee_kind is TrusteeKind.GROUP
        )
        held = any(g.right is right and not g.deny for g in mine) or through_group
        if held and not any(g.right is right and g.deny for g in mine):
            continue
        mailbox = on_mailbox[0].mailbox if on_mailbox else mailbox_key
        principal = mine[0].trustee if mine else principal_key
        fix = FixAction(right=right, mailbox=mailbox, trustee=principal)
        users = tuple(logins)
        words = RIGHT_WORDS[right]
        groups = sorted(
            g.trustee
            for g in on_mailbox
            if g.right is right and g.trustee_kind is TrusteeKind.GROUP and g.trustee.casefold() not in memberships
        )
        unless = f" (unless {principal} is a member of {', '.join(groups)}, which hold {words} there)" if groups else ""
        found.append(
            Finding(
                kind=FindingKind.PREDICTED_SEND_FAILURE,
                right=right,
                mailbox=mailbox,
                trustee=principal,
                trustee_kind=TrusteeKind.USER,
                detail=(
                    f"{', '.join(users)}: the application signs in as {principal} and sends from {mailbox}; "
                    f"{principal} does not hold {words} on {mailbox}, so the send will be denied{unless}"
                ),
                remedy=fix.command(),
                users=users,
                fix=fix,
            )
        )
        full = [g for g in mine if g.right is Right.FULL_ACCESS and not g.deny]
        if full and right in SEND_RIGHTS:
            found.append(
                Finding(
                    kind=FindingKind.FULL_ACCESS_WITHOUT_SEND,
                    right=Right.FULL_ACCESS,
                    mailbox=mailbox,
                    trustee=principal,
                    trustee_kind=full[0].trustee_kind,
                    detail=(
                        f"{principal} holds Full Access on {mailbox} but not {words}, which the sending of "
                        f"{', '.join(users)} needs: Full Access opens the mailbox but does not let anyone send from it"
                    ),
                    remedy=fix.command(),
                    users=users,
                    fix=fix,
                )
            )
    return found

"""Mailbox rights (SendAs, SendOnBehalf, FullAccess) with the time each grant or removal was made.

Two views of the same records, as in Exchange Online:

* the **directory view** (``held``): what the admin API reads back, changed at once by a grant or a
  removal;
* the **effective view** (``is_effective``): what SMTP and Graph enforce, which follows a change only
  after the tenant's propagation delay;
* the **listed view** (``listed``): what the admin API's Get-* cmdlets print. Live reads are eventually
  consistent, so a change made through a cmdlet shows there only after a short read lag (a change recorded
  without ``mono``, e.g. from tenant.yaml or a test, shows at once).

Grants are indexed by mailbox and by trustee, so every lookup is O(rights on one object).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Right = Literal["SendAs", "SendOnBehalf", "FullAccess"]
RIGHTS: tuple[Right, ...] = ("SendAs", "SendOnBehalf", "FullAccess")
TrusteeKind = Literal["user", "group", "sid", "sp"]


@dataclass(frozen=True)
class Trustee:
    """Who holds a right: a user or group (by object id), a bare SID, or a service principal (object id)."""

    kind: TrusteeKind
    id: str


def _settled(at: datetime | None, at_mono: float | None, now: datetime, mono: float, lag: float) -> bool:
    """A change is past the read lag once ``lag`` seconds passed in real time or on the sandbox's clock (so a test
    can skip the wait by advancing a ManualClock)."""
    if at is None or at_mono is None or lag <= 0:
        return True
    return mono - at_mono >= lag or (now - at).total_seconds() >= lag


@dataclass
class Grant:
    right: Right
    mailbox_id: str
    trustee: Trustee
    granted_at: datetime | None
    """None: held since before the sandbox started (effective at once)."""
    removed_at: datetime | None = None
    granted_mono: float | None = None
    """``time.monotonic()`` of a grant made through a cmdlet (None: not subject to the read lag)."""
    removed_mono: float | None = None
    access_rights: tuple[str, ...] = ()
    """Further rights of the same ACE (FullAccess may come with ReadPermission …), printed with it."""

    def listed(self, now: datetime, mono: float, lag: float) -> bool:
        """Whether Get-* cmdlets print this record ``lag`` seconds after its last change (real or clock time)."""
        if not _settled(self.granted_at, self.granted_mono, now, mono, lag):
            return False
        return self.removed_at is None or not _settled(self.removed_at, self.removed_mono, now, mono, lag)

    def effective_from(self, delay: timedelta) -> datetime | None:
        return None if self.granted_at is None else self.granted_at + delay

    def effective_until(self, delay: timedelta) -> datetime | None:
        return None if self.removed_at is None else self.removed_at + delay

    def is_effective(self, now: datetime, delay: timedelta) -> bool:
        start = self.effective_from(delay)
        end = self.effective_until(delay)
        return (start is None or start <= now) and (end is None or now < end)

    def state(self, now: datetime, delay: timedelta) -> str:
        if self.removed_at is not None:
            return "pending_removal" if self.is_effective(now, delay) else "removed"
        return "effective" if self.is_effective(now, delay) else "pending_grant"


class RightsStore:
    def __init__(self) -> None:
        self._by_mailbox: dict[str, list[Grant]] = {}
        self._by_trustee: dict[Trustee, list[Grant]] = {}
        self.version = 0
        """Bumped on every change, so cached tenant-wide listings know when to rebuild."""
        self.last_change: Grant | None = None
        """The latest change made through a cmdlet (subject to the read lag)."""

    # --- directory view ---------------------------------------------------------------------------
    def held(self, mailbox_id: str, right: Right | None = None) -> list[Grant]:
        return [
            g
            for g in self._by_mailbox.get(mailbox_id, ())
            if g.removed_at is None and (right is None or g.right == right)
        ]

    def held_by(self, trustee: Trustee, right: Right | None = None) -> list[Grant]:
        return [
            g for g in self._by_trustee.get(trustee, ()) if g.removed_at is None and (right is None or g.right == right)
        ]

    def holds(self, right: Right, mailbox_id: str, trustee: Trustee) -> bool:
        return any(g.trustee == trustee for g in self.held(mailbox_id, right))

    def listed(self, mailbox_id: str, right: Right, now: datetime, mono: float, lag: float) -> list[Grant]:
        """The read-lagged view the admin API prints (one record per trustee)."""
        found = [g for g in self._by_mailbox.get(mailbox_id, ()) if g.right == right and g.listed(now, mono, lag)]
        return list({g.trustee: g for g in found}.values())

    def listed_by(self, trustee: Trustee, right: Right, now: datetime, mono: float, lag: float) -> list[Grant]:
        found = [g for g in self._by_trustee.get(trustee, ()) if g.right == right and g.listed(now, mono, lag)]
        return list({g.mailbox_id: g for g in found}.values())

    def settled(self, now: datetime, mono: float, lag: float) -> bool:
        """No change is still inside the read lag (cached listings are valid)."""
        last = self.last_change
        if last is None:
            return True
        if last.removed_at is not None:
            return _settled(last.removed_at, last.removed_mono, now, mono, lag)
        return _settled(last.granted_at, last.granted_mono, now, mono, lag)

    def grant(
        self,
        right: Right,
        mailbox_id: str,
        trustee: Trustee,
        at: datetime | None,
        *,
        mono: float | None = None,
        access_rights: tuple[str, ...] = (),
    ) -> bool:
        """Record a grant; False (and no change) when the directory already shows it."""
        if self.holds(right, mailbox_id, trustee):
            return False
        record = Grant(
            right=right,
            mailbox_id=mailbox_id,
            trustee=trustee,
            granted_at=at,
            granted_mono=mono,
            access_rights=access_rights,
        )
        if mono is not None:
            self.last_change = record
        self._by_mailbox.setdefault(mailbox_id, []).append(record)
        self._by_trustee.setdefault(trustee, []).append(record)
        self.version += 1
        return True

    def revoke(
        self, right: Right, mailbox_id: str, trustee: Trustee, at: datetime, *, mono: float | None = None
    ) -> bool:
        """Mark a grant removed (it stays effective for the propagation delay); False if not held."""
        changed = False
        for record in self.held(mailbox_id, right):
            if record.trustee == trustee:
                record.removed_at, record.removed_mono = at, mono
                changed = True
                if mono is not None:
                    self.last_change = record
        if changed:
            self.version += 1
        return changed

    def replace_all(
        self, right: Right, mailbox_id: str, trustees: Iterable[Trustee], at: datetime, *, mono: float | None = None
    ) -> bool:
        """Make ``trustees`` exactly the holders of ``right`` on the mailbox (Set-Mailbox with an array)."""
        wanted = list(dict.fromkeys(trustees))
        current = {g.trustee for g in self.held(mailbox_id, right)}
        changed = False
        for trustee in current - set(wanted):
            changed |= self.revoke(right, mailbox_id, trustee, at, mono=mono)
        for trustee in wanted:
            if trustee not in current:
                changed |= self.grant(right, mailbox_id, trustee, at, mono=mono)
        return changed

    # --- effective view ---------------------------------------------------------------------------
    def is_effective(
        self, right: Right, mailbox_id: str, trustees: Iterable[Trustee], now: datetime, delay: timedelta
    ) -> bool:
        wanted = set(trustees)
        return any(
            g.right == right and g.trustee in wanted and g.is_effective(now, delay)
            for g in self._by_mailbox.get(mailbox_id, ())
        )

    def records(self) -> Iterator[Grant]:
        """Every record, removed ones included (for the admin API)."""
        for grants in self._by_mailbox.values():
            yield from grants

    def forget_settled(self, now: datetime, delay: timedelta) -> None:
        """Drop removed records whose removal has taken effect."""
        for mailbox_id, grants in list(self._by_mailbox.items()):
            keep = [g for g in grants if g.removed_at is None or g.is_effective(now, delay)]
            if len(keep) != len(grants):
                self._by_mailbox[mailbox_id] = keep
                for gone in (g for g in grants if g not in keep):
                    self._by_trustee[gone.trustee].remove(gone)

"""Mailbox rights (SendAs, SendOnBehalf, FullAccess) with the time each grant or removal was made.

Two views of the same records, as in Exchange Online:

* the **directory view** (``held``): what the admin API reads back, changed at once by a grant or a
  removal;
* the **effective view** (``is_effective``): what SMTP and Graph enforce, which follows a change only
  after the tenant's propagation delay.

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


@dataclass
class Grant:
    right: Right
    mailbox_id: str
    trustee: Trustee
    granted_at: datetime | None
    """None: held since before the sandbox started (effective at once)."""
    removed_at: datetime | None = None

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

    def grant(self, right: Right, mailbox_id: str, trustee: Trustee, at: datetime | None) -> bool:
        """Record a grant; False (and no change) when the directory already shows it."""
        if self.holds(right, mailbox_id, trustee):
            return False
        record = Grant(right=right, mailbox_id=mailbox_id, trustee=trustee, granted_at=at)
        self._by_mailbox.setdefault(mailbox_id, []).append(record)
        self._by_trustee.setdefault(trustee, []).append(record)
        self.version += 1
        return True

    def revoke(self, right: Right, mailbox_id: str, trustee: Trustee, at: datetime) -> bool:
        """Mark a grant removed (it stays effective for the propagation delay); False if not held."""
        changed = False
        for record in self.held(mailbox_id, right):
            if record.trustee == trustee:
                record.removed_at = at
                changed = True
        if changed:
            self.version += 1
        return changed

    def replace_all(self, right: Right, mailbox_id: str, trustees: Iterable[Trustee], at: datetime) -> bool:
        """Make ``trustees`` exactly the holders of ``right`` on the mailbox (Set-Mailbox with an array)."""
        wanted = list(dict.fromkeys(trustees))
        current = {g.trustee for g in self.held(mailbox_id, right)}
        changed = False
        for trustee in current - set(wanted):
            changed |= self.revoke(right, mailbox_id, trustee, at)
        for trustee in wanted:
            if trustee not in current:
                changed |= self.grant(right, mailbox_id, trustee, at)
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

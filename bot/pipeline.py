"""Changes to Exchange: desired state, then settle (ARCHITECTURE.md). The whole state machine is here.

    intent (Store.record_change, or Store.decide on Approve) — committed before Exchange is touched
      │
      ▼
    approved ──claim, attempt──► applying ──grant/revoke──┬─ read back ───────────────────► verified
      ▲  (due_at)                                          ├─ accepted, not visible yet ──► applied ─┬─ read back ─► verified
      │                                                    │                                         └─ verify_timeout ─► failed
      └──── Exchange down, throttled: retry at due_at ◄────┤       (time limits are retried until done, never failed)
                                                           └─ refused, or gave up ──────────────────────────────► failed

A change is worked on by the replica holding its lease (renewed while it works). A crash leaves the row
``approved``, ``applying`` or ``applied``; when the lease lapses :meth:`Pipeline.reconcile` (at start-up and
on every scheduler tick, on any replica) claims it and settles it from Exchange's actual state: grant and
revoke read the right first, so a change that did land is found and recorded, never made twice. The final
state and its audit outcome commit together (with the re-test a verified fix needs, :mod:`bot.retest`). Slack
is a view of the row (:class:`ChangeView`): a view that fails is shown again by the reconciler, with back-off,
and never holds a change up. An ``applied`` change is read back with back-off too (:meth:`Policy.next_read`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from bot.observe import change_event
from bot.store import ChangeOrigin, ChangeRecord, ChangeState, RequestKind, Store, StoreError
from graph.permissions_model import ChangeOutcome
from plugin.clock import Clock
from plugin.diagnosis import Code, Right
from plugin.errors import ConfigError, EmailDoctorError, NotFoundError
from plugin.logs import bind
from plugin.settings import ChangeSettings

if TYPE_CHECKING:
    from graph.permissions import PermissionService

log = logging.getLogger(__name__)

KEPT = "kept"
"""A time limit's detail when the right stays: the time-bound grant found it already held and added nothing."""


def found_unchanged(change: ChangeRecord) -> bool:
    """Exchange already showed what the change asked for, so its last attempt changed nothing."""
    return (change.detail or "").startswith(str(ChangeOutcome.UNCHANGED))


TRANSIENT = {Code.THROTTLED, Code.SERVER_UNAVAILABLE, Code.TIMEOUT, Code.CONNECT_TIMEOUT, Code.CONNECT_REFUSED}
"""Refusals worth another attempt: Exchange was busy or unreachable, not opposed to the change."""


class ChangeView(Protocol):
    """How people see a change (a Slack card, a reply, a notice). Raises EmailDoctorError when it cannot."""

    async def show(self, change: ChangeRecord) -> None: ...

    async def escalate(self, change: ChangeRecord) -> None: ...


class _Unseen:
    """For callers that report the outcome themselves (the command line)."""

    async def show(self, change: ChangeRecord) -> None:
        return None

    async def escalate(self, change: ChangeRecord) -> None:
        return None


UNSEEN: ChangeView = _Unseen()


@dataclass(frozen=True)
class Policy:
    settings: ChangeSettings

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def delay(self, attempts: int) -> timedelta:
        """Doubling from the first delay, capped at the maximum."""
        first, cap = self.settings.retry_first_delay_seconds, self.settings.retry_max_delay_seconds
        return timedelta(seconds=min(cap, first * 2 ** max(0, attempts - 1)))

    def next_read(self, change: ChangeRecord) -> timedelta:
        """The wait before reading an ``applied`` change back again: twice the last wait (``due_at`` was set
        that long after ``updated_at``), from the first delay, capped at the maximum."""
        first, cap = self.settings.retry_first_delay_seconds, self.settings.retry_max_delay_seconds
        last = (change.due_at - change.updated_at).total_seconds()
        return timedelta(seconds=min(cap, max(first, 2 * last)))

    def gave_up(self, change: ChangeRecord, now: datetime) -> bool:
        if change.origin is ChangeOrigin.TIME_LIMIT:
            return False  # a time limit is retried until it is done
        return now - change.created_at >= timedelta(minutes=self.settings.give_up_minutes)

    def overdue(self, change: ChangeRecord, now: datetime) -> bool:
        limit = timedelta(minutes=self.settings.escalate_after_minutes)
        return change.expires_at is not None and now - change.expires_at >= limit


class Pipeline:
    def __init__(
        self,
        store: Store,
        permissions: PermissionService | None,
        settings: ChangeSettings,
        *,
        clock: Clock,
        replica: str,
        view: ChangeView = UNSEEN,
    ) -> None:
        self.store = store
        self.permissions = permissions
        self.policy = Policy(settings)
        self.clock = clock
        self.replica = replica
        self.view = view
        self._active: set[int] = set()

    async def record(
        self,
        kind: RequestKind,
        right: Right,
        mailbox: str,
        trustee: str,
        *,
        by: str,
        duration: timedelta | None = None,
    ) -> ChangeRecord:
        """Check the input, then write the intent of a change made directly by ``by`` (IT, the command line).
        Bad input raises ConfigError and records nothing."""
        from graph.permissions_model import check_mailbox, check_trustee

        mailbox = check_mailbox(mailbox)
        trustee = check_trustee(trustee, allow_sid=kind is RequestKind.REVOKE and right is not Right.SEND_ON_BEHALF)
        return await self.store.record_change(
            kind=kind,
            origin=ChangeOrigin.DIRECT,
            right=right,
            mailbox=mailbox,
            trustee=trustee,
            requested_by=by,
            approved_by=by,
            duration=duration,
        )

    async def drive(self, change_id: int, *, view: ChangeView | None = None) -> ChangeRecord | None:
        """Take the change one step towards a final state and show it; None if another replica has it."""
        change = await self.store.claim_change(change_id, self.replica, self.policy.lease)
        if change is None:
            return None
        self._active.add(change_id)
        keeper = asyncio.create_task(self._keep_lease(change_id), name=f"lease-{change_id}")
        shown: str | None = None
        show_again_at: datetime | None = None
        try:
            if not change.state.final:
                with bind(change_id=change_id):
                    if change.attempts == 0 and change.state is ChangeState.APPROVED:
                        change_event(
                            change, "approved", requested_by=change.requested_by, approved_by=change.approved_by
                        )
                    change = await self._step(change)
            try:
                await (view or self.view).show(change)
                shown = change.state.value
            except EmailDoctorError as exc:  # the reconciler shows it again, with back-off; the change is recorded
                show_again_at = self.clock.now() + self.policy.delay(change.show_failures + 1)
                log.warning(
                    "change %s is %s but Slack could not show it (again at %s): %s",
                    change.id,
                    change.state,
                    f"{show_again_at:%H:%M:%S}",
                    exc,
                )
            return change
        finally:
            keeper.cancel()
            self._active.discard(change_id)
            with contextlib.suppress(StoreError):  # the lease lapses by itself
                await self.store.release_change(change_id, self.replica, shown=shown, show_again_at=show_again_at)

    async def reconcile(self) -> int:
        """Settle every change that is due and not being worked on; tell people of overdue time limits.
        Returns how many changes this replica took a step on."""
        settled = 0
        for change in await self.store.workable_changes(self.policy.lease):
            if change.id in self._active:
                continue
            try:
                if await self.drive(change.id) is not None:
                    settled += 1
            except EmailDoctorError as exc:
                log.warning("could not settle change %s: %s", change.id, exc)
        now = self.clock.now()
        for change in await self.store.overdue_revocations(now):
            due = change.escalated_at is None and self.policy.overdue(change, now)
            if due and await self.store.mark_escalated(change.id):
                try:
                    await self.view.escalate(change)
                except EmailDoctorError as exc:
                    log.warning("could not announce the overdue revocation %s: %s", change.id, exc)
                    await self.store.mark_escalated(change.id, escalated=False)
        return settled

    # --- the steps ------------------------------------------------------------------------------------------
    async def _step(self, change: ChangeRecord) -> ChangeRecord:
        now = self.clock.now()
        if change.parent_id is not None:
            parent = await self.store.get_change(change.parent_id)
            if not parent.state.final:  # revoke only once the grant is settled, or it could land after
                return await self._settle(change, change.state, "waiting for the grant to settle", now)
            held_before = parent.attempts == 1 and found_unchanged(parent)
            if parent.state is ChangeState.VERIFIED and held_before:
                # The grant's first attempt found the right already there, so it added nothing and removing it
                # would take away more than it gave. After a later attempt "unchanged" may be an earlier attempt's
                # work (a crash after Exchange ran it): then the time limit removes it, as it must.
                return await self._settle(change, ChangeState.VERIFIED, KEPT + ": it was held before the grant")
        if change.kind is RequestKind.GRANT and change.expires_at is not None and change.expires_at <= now:
            return await self._settle(change, ChangeState.FAILED, "the time limit ran out before it was applied")
        if self.permissions is None:
            return await self._settle(change, ChangeState.FAILED, "Microsoft 365 is not configured")
        if change.state is ChangeState.APPLIED:
            return await self._verify(change, now)
        change = await self.store.start_attempt(change.id, self.replica)
        change_event(change, "applying")
        try:
            if change.kind is RequestKind.GRANT:
                result = await self.permissions.grant(change.right, change.mailbox, change.trustee)
            else:
                result = await self.permissions.revoke(change.right, change.mailbox, change.trustee)
        except (ConfigError, NotFoundError) as exc:
            return await self._refused(change, exc)
        except EmailDoctorError as exc:  # no answer: it may or may not have landed; the next attempt reads first
            return await self._retry(change, str(exc), ChangeState.APPROVED)
        detail = f"{result.outcome}: {result.detail}"
        if result.ok and result.verified:
            detail = f"{result.outcome} (read back from Exchange): {result.detail}"
            return await self._settle(change, ChangeState.VERIFIED, detail)
        if result.ok:
            return await self._settle(change, ChangeState.APPLIED, detail, now + self.policy.delay(1))
        if result.code in TRANSIENT:
            return await self._retry(change, result.detail, ChangeState.APPROVED)
        return await self._settle(change, ChangeState.FAILED, result.detail)

    async def _verify(self, change: ChangeRecord, now: datetime) -> ChangeRecord:
        assert self.permissions is not None
        try:
            holding = await self.permissions.holds(change.right, change.mailbox, change.trustee, direct=True)
        except (ConfigError, NotFoundError) as exc:
            return await self._refused(change, exc)
        except EmailDoctorError as exc:
            return await self._retry(change, f"could not read it back: {exc}", ChangeState.APPLIED)
        # Only the direct grant counts: a right the trustee also holds through a group is not what was changed.
        held_directly = holding.held and holding.via_group is None
        if held_directly == (change.kind is RequestKind.GRANT):
            return await self._settle(change, ChangeState.VERIFIED, "read back from Exchange")
        verify_timeout = timedelta(minutes=self.policy.settings.verify_timeout_minutes)
        if change.origin is not ChangeOrigin.TIME_LIMIT and now - change.created_at >= verify_timeout:
            return await self._settle(change, ChangeState.FAILED, "Exchange accepted it but never showed it")
        return await self._settle(
            change, ChangeState.APPLIED, "not visible in Exchange yet", now + self.policy.next_read(change)
        )

    async def _refused(self, change: ChangeRecord, exc: EmailDoctorError) -> ChangeRecord:
        if change.origin is ChangeOrigin.TIME_LIMIT and isinstance(exc, NotFoundError):
            return await self._settle(change, ChangeState.VERIFIED, f"nothing left to remove: {exc}")
        return await self._settle(change, ChangeState.FAILED, str(exc))

    async def _retry(self, change: ChangeRecord, why: str, state: ChangeState) -> ChangeRecord:
        now = self.clock.now()
        if self.policy.gave_up(change, now):
            return await self._settle(change, ChangeState.FAILED, f"gave up after {change.attempts} attempts: {why}")
        due = now + self.policy.delay(change.attempts)
        return await self._settle(change, state, f"attempt {change.attempts} failed: {why}", due)

    async def _settle(
        self, change: ChangeRecord, state: ChangeState, detail: str, due_at: datetime | None = None
    ) -> ChangeRecord:
        if due_at is None and not state.final:
            due_at = self.clock.now() + self.policy.delay(1)
        settled = await self.store.settle_change(change.id, self.replica, state, detail, due_at=due_at)
        if settled.state is not change.state or state.final:
            change_event(settled, state.value, detail=detail)
        return settled

    async def _keep_lease(self, change_id: int) -> None:
        lease = self.policy.lease
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            with contextlib.suppress(StoreError):
                await self.store.renew_lease(change_id, self.replica, lease)

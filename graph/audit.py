"""The tenant audit: every SendAs, SendOnBehalf and FullAccess grant, with tenant-wide paged queries.

Phases (requests for a tenant of N mailboxes with G SendAs grants, page size P ≤ 1000):

1. **SendOnBehalf**: ``Get-Mailbox -Filter 'GrantSendOnBehalfTo -ne $null' -ResultSize Unlimited`` in pages (only
   mailboxes that have delegates).
2. **SendAs**: ``Get-RecipientPermission -AccessRights SendAs -ResultSize Unlimited`` without an Identity, in
   pages: (N + G) / P requests (one ``NT AUTHORITY\\SELF`` row per mailbox comes along and is dropped).
3. **Mailboxes and FullAccess**: ``Get-Mailbox -ResultSize Unlimited`` in pages (N / P requests). The API has no
   tenant-wide FullAccess query, so each listed page feeds ``Get-MailboxPermission -Identity`` for its mailboxes,
   10 per ``$batch`` (N / 10 requests), run by a bounded pool of workers while the listing goes on.
4. **Trustees**: facts (disabled, guest, shared, unknown) for the trustees that hold something, from one more
   paged ``Get-Mailbox`` (N / P requests) and, for the few trustees without a mailbox, the directory
   (:mod:`graph.audit_trustees`).

Phases 1, 2 and 3 run side by side (a Name that phase 1 or 2 asks for once the listing is under way, and that the
listing did not match, is looked up afterwards with ``Get-Mailbox -Identity``, ten per ``$batch``, and kept only
when the mailbox's Identity or Name is that Name, as the listing matches); phase 4's listing starts once phase 3 has
listed every mailbox and the FullAccess reads still queued take about as long as it will; the groups that
predictions expand are read while phase 4's last lookups run; and the directory's addresses are mapped while the
snapshot is taken. All of it shares the client's eight requests in flight, so that none sits idle for long. Requests are
paced by :class:`graph.exchange.ExchangeAdmin` (in-flight limit, and the service's request budget learned from its
``Rate-Limit-*`` answers), so a large tenant waits for its budget instead of collecting 429s.

Memory: one page of each listing at a time, a bounded queue of mailbox chunks, the pending grants and the facts of
their trustees, i.e. the size of the result, not of the tenant. Raw responses are never kept. Throttling is the
client's (:class:`graph.exchange.ExchangeAdmin`): Retry-After is honoured, in-flight requests are bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from graph.audit_findings import AuditReport, Snapshot, diff, findings, planned_addresses, planned_groups
from graph.audit_trustees import TrusteeFacts, UserSource

__all__ = ["AuditProgress", "AuditStats", "Clock", "TenantAudit", "UserSource"]
from graph.exchange import Command, ExchangeAdmin, first_error
from graph.groups import GroupMembers
from graph.permission_rows import full_access_command, mailbox_permission_grant, recipient_permission_grant
from graph.permissions_model import SELF, Grant, TrusteeKind, display_trustee, kind_from_label
from plugin.clock import Clock
from plugin.diagnosis import Right
from plugin.directory import Directory
from plugin.errors import ConfigError, NotFoundError

LISTING_FIELDS = ("Identity", "Name", "PrimarySmtpAddress", "UserPrincipalName")


@dataclass(frozen=True)
class AuditProgress:
    """``mailboxes_done`` of ``mailboxes_listed`` have had their FullAccess read; the total is final once
    ``listing_complete`` (Exchange does not say how many mailboxes there are before listing them)."""

    phase: str
    mailboxes_done: int
    mailboxes_listed: int
    listing_complete: bool


@dataclass(frozen=True)
class AuditStats:
    """Requests the audit sent (each ``$batch`` counts once), items in batches, retries after throttling, time."""

    requests: int
    batch_items: int
    retries: int
    throttled: int
    seconds: float


class TenantAudit:
    def __init__(
        self,
        exchange: ExchangeAdmin,
        users: UserSource,
        *,
        clock: Clock | None = None,
        concurrency: int = 8,
        progress: Callable[[AuditProgress], None] | None = None,
        include_system: bool = False,
        directory_lookup_limit: int = 50,
    ) -> None:
        self._exchange = exchange
        self._users = users
        self._clock = clock
        self._concurrency = max(1, concurrency)
        self._progress = progress
        self._include_system = include_system
        self._lookup_limit = directory_lookup_limit
        self.stats: AuditStats | None = None
        self.groups_read = 0
        """Groups whose members the last run read (``Get-DistributionGroupMember``), nested ones included."""
        self.looked_up = 0
        """Names and trustees the last snapshot asked for one by one, because a listing had passed them first."""

    async def run(self, *, directory: Directory | None = None, previous: Snapshot | None = None) -> AuditReport:
        """Take a snapshot, diff it against ``previous`` and derive the findings (with ``directory``: predictions)."""
        if directory is None:
            snapshot = await self.snapshot()
            self.groups_read = 0  # no predictions: no group to expand
            return AuditReport(snapshot=snapshot, diff=diff(previous, snapshot), findings=findings(snapshot, None))
        # The directory's addresses do not depend on the snapshot: they are mapped while it is taken; the groups
        # are read once the grants are known, while the trustees' facts are settled.
        state = _Run(self)
        try:
            async with asyncio.TaskGroup() as group:
                taken = group.create_task(self.snapshot(state))
                mapped = group.create_task(self._canonical(planned_addresses(directory)))
                expanded = group.create_task(self._memberships(state, mapped))
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from group_error
        snapshot, canonical = taken.result(), mapped.result()
        found = findings(snapshot, directory, canonical, expanded.result())
        return AuditReport(snapshot=snapshot, diff=diff(previous, snapshot), findings=found)

    async def _memberships(self, state: _Run, canonical: Awaitable[Mapping[str, str]]) -> dict[str, frozenset[str]]:
        """The members of the groups that hold a send right on a mailbox the directory sends from, each group (and
        each group nested in it) read once: O(groups) requests, whatever the number of members or mailboxes."""
        grants = await state.collected  # a group's grants do not wait for the trustees' facts
        groups = planned_groups(grants, {a.casefold() for a in (await canonical).values()})
        members = GroupMembers(self._exchange)
        expanded = await members.transitive(sorted(groups)) if groups else {}
        self.groups_read = members.groups_read
        return expanded

    async def _canonical(self, addresses: set[str]) -> dict[str, str]:
        """The primary SMTP address of every mailbox the directory names (one ``$batch`` per 10), so a directory
        that uses a UPN or an alias still matches the snapshot."""
        ordered = sorted(addresses)
        outcomes = await self._exchange.batch(
            [Command("Get-Mailbox", {"Identity": a}, select=("PrimarySmtpAddress",)) for a in ordered]
        )
        canonical: dict[str, str] = {}
        for address, outcome in zip(ordered, outcomes, strict=True):
            if isinstance(outcome.error, NotFoundError):
                continue
            rows = outcome.unwrap().rows
            if rows and rows[0].get("PrimarySmtpAddress"):
                canonical[address.casefold()] = str(rows[0]["PrimarySmtpAddress"])
        return canonical

    async def snapshot(self, state: _Run | None = None) -> Snapshot:
        started, before = time.monotonic(), dataclasses.replace(self._exchange.stats)
        run = state or _Run(self)
        grants = await run.collect()
        self.looked_up = run.looked_up + run.facts.looked_up
        after = self._exchange.stats
        self.stats = AuditStats(
            requests=after.requests - before.requests,
            batch_items=after.batch_items - before.batch_items,
            retries=after.retries - before.retries,
            throttled=after.throttled - before.throttled,
            seconds=time.monotonic() - started,
        )
        taken_at = self._clock.now() if self._clock else datetime.now(UTC)
        return Snapshot(
            tenant=self._exchange.tenant_id,
            taken_at=taken_at,
            grants=tuple(sorted(grants)),
            mailboxes=run.listed,
            warnings=tuple(run.warnings),
        )


class _Run:
    """The state of one audit: pending grants by mailbox Name, delegate Names, trustee facts."""

    def __init__(self, audit: TenantAudit) -> None:
        self.audit = audit
        self.exchange = audit._exchange
        self.grants: list[Grant] = []
        self.send_as: dict[str, list[Grant]] = {}  # mailbox Name/Identity (casefold) → SendAs rows awaiting an address
        self.delegations: list[tuple[str, str]] = []  # (mailbox address, delegate Name)
        self.names: dict[str, str] = {}  # recipient Name (casefold) → address, for the Names we need
        self.domains: set[str] = set()
        self.listed = 0
        self.done = 0
        self.listing_complete = False
        self.listing_started = False
        self.late_names: set[str] = set()
        """Names asked for once the listing was under way: it may have passed their mailbox already."""
        self.chunks_queued = 0
        self.chunks_done = 0
        self.trustees_go = asyncio.Event()
        self.collected: asyncio.Future[list[Grant]] = asyncio.get_running_loop().create_future()
        """The grants to groups, once every grant is known (the trustees' facts do not change them)."""
        self.looked_up = 0
        """Names looked up on their own because the listing had passed them (see :meth:`_look_up_names`)."""
        self.warnings: list[str] = []
        self.facts = TrusteeFacts(self.exchange, audit._users, lookup_limit=audit._lookup_limit)

    async def collect(self) -> list[Grant]:
        # The two tenant-wide queries and the listing run side by side. The listing maps to addresses the Names the
        # queries have asked for by the time it lists them (memory bounded by the result, not the tenant); a Name
        # asked for once it was under way and not matched is looked up afterwards (_look_up_names).
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._send_on_behalf())
                group.create_task(self._send_as())
                group.create_task(self._mailboxes_and_full_access())
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from group_error
        await self._look_up_names()
        while self.send_as:
            name, rows = self.send_as.popitem()
            address = self.names.get(name) or None
            if address is None:
                self.warnings.append(f"SendAs on '{name}', which is not a mailbox (a group?), kept under that name")
            self.grants.extend(dataclasses.replace(g, mailbox=address or g.mailbox) for g in rows)
        self.grants.extend(self._delegation_grants())
        self.collected.set_result([g for g in self.grants if g.trustee_kind is TrusteeKind.GROUP])
        return await self._classify()

    def _delegation_grants(self) -> list[Grant]:
        grants = []
        for mailbox, name in self.delegations:
            address = self.names.get(name.casefold()) or None
            label = address or display_trustee(name)
            grants.append(Grant(Right.SEND_ON_BEHALF, mailbox, label, _unresolved_kind(name, address)))
        return grants

    async def _list_trustees(self) -> None:
        """The trustees' listing (:class:`graph.audit_trustees.TrusteeFacts`), started when the FullAccess reads
        still to come take about as long as it will (:meth:`_time_for_trustees`): the delegates are known by then,
        so it keeps their facts too. With no trustee to look for yet, it is left to the end (if needed at all)."""
        await self.trustees_go.wait()
        for grant in self._delegation_grants():
            self.facts.want(grant)
        if self.facts.wanting:
            await self.facts.list_mailboxes()

    def _time_for_trustees(self) -> None:
        """Once every mailbox is listed: go when the chunks left take no more rounds of the FullAccess workers than
        the trustees' listing takes pages (one request after another)."""
        workers, pages = self.audit._concurrency, -(-self.listed // self.exchange.page_size)
        if self.listing_complete and self.chunks_queued - self.chunks_done <= workers * pages:
            self.trustees_go.set()

    async def _look_up_names(self) -> None:
        """The Names asked for once the listing was under way and not matched by it: ``Get-Mailbox -Identity``,
        kept only when the mailbox's Identity or Name is that Name, as the listing matches. A Name that is no
        mailbox (a group), or names several, stays unresolved as it would have."""
        wanted = sorted(name for name in self.late_names if not self.names.get(name))
        if not wanted:
            return
        self.looked_up += len(wanted)
        outcomes = await self.exchange.batch(
            [Command("Get-Mailbox", {"Identity": name}, select=LISTING_FIELDS) for name in wanted]
        )
        for name, outcome in zip(wanted, outcomes, strict=True):
            if isinstance(outcome.error, NotFoundError | ConfigError):  # not a mailbox; ambiguous
                continue
            for row in outcome.unwrap().rows:
                if name in {str(row.get(f) or "").casefold() for f in ("Identity", "Name")}:
                    self.names[name] = str(row.get("PrimarySmtpAddress") or row.get("UserPrincipalName") or "")

    # --- phases 1 and 2: tenant-wide queries ------------------------------------------------------------------
    async def _send_on_behalf(self) -> None:
        self._report("send_on_behalf")
        async for page in self.exchange.pages(
            "Get-Mailbox",
            {"Filter": "GrantSendOnBehalfTo -ne $null", "ResultSize": "Unlimited"},
            select=("PrimarySmtpAddress", "GrantSendOnBehalfTo"),
        ):
            for row in page.rows:
                mailbox = str(row.get("PrimarySmtpAddress") or "")
                for name in row.get("GrantSendOnBehalfTo") or []:
                    self.delegations.append((mailbox, str(name)))
                    self._want_name(str(name))

    async def _send_as(self) -> None:
        self._report("send_as")
        async for page in self.exchange.pages(
            "Get-RecipientPermission", {"AccessRights": ["SendAs"], "ResultSize": "Unlimited"}
        ):
            for row in page.rows:
                if str(row.get("Trustee") or "").upper() == SELF:
                    continue
                name = str(row.get("Identity") or "")
                grant = recipient_permission_grant(row, name)
                if grant is not None and self._keep(grant):
                    self.send_as.setdefault(name.casefold(), []).append(grant)
                    self.facts.want(grant)
                    self._want_name(name)

    # --- phase 3: the mailbox listing feeds the per-mailbox FullAccess reads --------------------------------
    async def _mailboxes_and_full_access(self) -> None:
        # A page of mailboxes may wait for its FullAccess read: the listing ends that much before the reads do.
        queued = max(self.audit._concurrency * 2, self.exchange.page_size // self.exchange.batch_size)
        queue: asyncio.Queue[list[str] | None] = asyncio.Queue(maxsize=queued)
        workers = self.audit._concurrency
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(self._full_access_worker(queue))
                group.create_task(self._list_trustees())
                chunk: list[str] = []
                async for page in self.exchange.pages(
                    "Get-Mailbox", {"ResultSize": "Unlimited"}, select=LISTING_FIELDS
                ):
                    self.listing_started = True
                    for row in page.rows:
                        address = str(row.get("PrimarySmtpAddress") or row.get("UserPrincipalName") or "")
                        self._note_mailbox(row, address)
                        chunk.append(address)
                        if len(chunk) == self.exchange.batch_size:
                            self.chunks_queued += 1
                            await queue.put(chunk)
                            chunk = []
                    self.listed += len(page.rows)
                    self._report("full_access")
                if chunk:
                    self.chunks_queued += 1
                    await queue.put(chunk)
                self.listing_complete = True
                self._report("full_access")
                self._time_for_trustees()
                for _ in range(workers):
                    await queue.put(None)
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from group_error

    async def _full_access_worker(self, queue: asyncio.Queue[list[str] | None]) -> None:
        while (chunk := await queue.get()) is not None:
            outcomes = await self.exchange.batch([full_access_command(a) for a in chunk])
            for address, outcome in zip(chunk, outcomes, strict=True):
                if isinstance(outcome.error, NotFoundError):
                    self.warnings.append(f"{address} disappeared during the audit: {outcome.error}")
                    continue
                for row in outcome.unwrap().rows:
                    grant = mailbox_permission_grant(row, address)
                    if grant is not None and self._keep(grant):
                        self.grants.append(grant)
                        self.facts.want(grant)
            self.done += len(chunk)
            self.chunks_done += 1
            self._report("full_access")
            self._time_for_trustees()

    def _want_name(self, name: str) -> None:
        key = name.casefold()
        if key not in self.names:
            self.names[key] = ""
            if self.listing_started:  # the listing may have passed it already
                self.late_names.add(key)

    def _note_mailbox(self, row: dict[str, object], address: str) -> None:
        if "@" in address:
            self.domains.add(address.rsplit("@", 1)[1].casefold())
        for field in ("Identity", "Name"):
            key = str(row.get(field) or "").casefold()
            if key in self.names:
                self.names[key] = address

    def _keep(self, grant: Grant) -> bool:
        return self.audit._include_system or not (grant.inherited and _system(grant))

    # --- phase 4: trustee facts ------------------------------------------------------------------------------
    async def _classify(self) -> list[Grant]:
        self._report("trustees")
        facts = self.facts
        await facts.settle(self.grants, self.domains)
        for index, grant in enumerate(self.grants):  # in place: the unclassified row is freed at once
            self.grants[index] = facts.classify(grant)
        return self.grants

    def _report(self, phase: str) -> None:
        if self.audit._progress is not None:
            self.audit._progress(AuditProgress(phase, self.done, self.listed, self.listing_complete))


def _unresolved_kind(name: str, address: str | None) -> TrusteeKind:
    """A GrantSendOnBehalfTo Name: a mailbox we listed (user), an object id (an Entra object without a mailbox,
    settled from the directory), or a group's name."""
    if address:
        return TrusteeKind.USER
    kind = kind_from_label(name)
    return TrusteeKind.UNKNOWN if kind is TrusteeKind.APP else kind


def _system(grant: Grant) -> bool:
    return grant.trustee_kind is TrusteeKind.SYSTEM

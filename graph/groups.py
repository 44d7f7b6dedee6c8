"""Rights held through groups: SendAs, FullAccess and SendOnBehalf granted to a mail-enabled security group apply to
its members, transitively (a member may itself be a group).

Membership comes from Exchange, the same API and role as the rights themselves (no Graph group permission):

=================================================  ==========================================================
``Get-DistributionGroupMember -Identity G``        the *direct* members of G; a nested group is one member row
                                                   (``RecipientType`` ``Mail…Group``), read in turn
``Get-DistributionGroup -RecipientTypeDetails``    every mail-enabled security group (for "what can X send as")
``MailUniversalSecurityGroup``
``Get-Recipient -Identity X``                      every name of X (Name, addresses, object id) to compare with
=================================================  ==========================================================

:class:`GroupMembers` reads each group **once** per instance, ten groups per ``$batch`` and one round per nesting
level, so a tenant-wide job costs O(groups) requests, never O(members × mailboxes). Create one per run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from graph.exchange import Command, ExchangeAdmin, Row
from graph.exchange_reads import ExchangeReader
from graph.permissions_model import Grant, MailboxRights, TrusteeKind
from plugin.diagnosis import Right
from plugin.errors import NotFoundError

MEMBER_FIELDS = ("Name", "PrimarySmtpAddress", "ExternalDirectoryObjectId", "WindowsLiveID", "RecipientType")
SECURITY_GROUPS = "MailUniversalSecurityGroup"


@dataclass(frozen=True)
class Member:
    """One member row: every key it may be named by (case-folded), and whether it is a group."""

    keys: frozenset[str]
    label: str
    group: bool


def member_of_row(row: Row) -> Member:
    keys = frozenset(str(row[f]).casefold() for f in MEMBER_FIELDS[:-1] if row.get(f))
    label = str(row.get("PrimarySmtpAddress") or row.get("Name") or "")
    return Member(keys, label, "group" in str(row.get("RecipientType") or "").casefold())


class GroupMembers:
    """Transitive group membership, each group read once (see the module docstring)."""

    def __init__(self, exchange: ExchangeAdmin, *, reads: ExchangeReader | None = None) -> None:
        """``reads``: send the reads of groups and names through it (with the other reads that start with them, and
        shared with other callers asking the same) instead of as requests of their own."""
        self._exchange = exchange
        self._reads = reads
        self._direct: dict[str, tuple[Member, ...]] = {}  # any key of a group → its direct members
        self._names: dict[str, frozenset[str]] = {}  # identity → every key Get-Recipient knows it by
        self.groups_read = 0

    async def expand(self, groups: Iterable[str]) -> None:
        """Read the direct members of ``groups`` and of every group nested in them; a name that is no group (a user,
        a deleted group) has no members."""
        todo = list(dict.fromkeys(g for g in groups if g and g.casefold() not in self._direct))
        aliases: dict[str, frozenset[str]] = {}
        while todo:
            outcomes = await (self._reads or self._exchange).batch(
                [
                    Command(
                        "Get-DistributionGroupMember", {"Identity": g, "ResultSize": "Unlimited"}, select=MEMBER_FIELDS
                    )
                    for g in todo
                ]
            )
            read: list[tuple[Member, ...]] = []
            for group, outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome.error, NotFoundError):
                    members: tuple[Member, ...] = ()
                else:
                    members = tuple(member_of_row(r) for r in outcome.unwrap().rows)
                self.groups_read += 1
                read.append(members)
                for key in {group.casefold(), *aliases.get(group, frozenset())}:
                    self._direct[key] = members
            todo = []
            for member in (m for members in read for m in members if m.group):
                known = next((self._direct[k] for k in member.keys if k in self._direct), None)
                if known is not None:  # read already under another of its names: remember them all
                    self._direct.update(dict.fromkeys(member.keys, known))
                elif member.label not in aliases:
                    aliases[member.label] = member.keys
                    todo.append(member.label)

    async def keys_of(self, identity: str) -> frozenset[str]:
        """Every key ``identity`` may appear under in a member list (``Get-Recipient``, read once)."""
        if identity.casefold() not in self._names:
            keys = {identity.casefold()}
            try:
                result = await (self._reads or self._exchange).invoke(
                    "Get-Recipient", {"Identity": identity}, select=MEMBER_FIELDS
                )
                keys.update(k for row in result.rows for k in member_of_row(row).keys)
            except NotFoundError:
                pass  # a bare SID or an unknown name: only its own spelling can match
            self._names[identity.casefold()] = frozenset(keys)
        return self._names[identity.casefold()]

    async def path(self, group: str, keys: frozenset[str]) -> tuple[str, ...] | None:
        """The groups from ``group`` down to the one that lists a member named by ``keys`` (``(group,)`` when it is
        a direct member), or None. Cycles end the search."""
        await self.expand([group])
        queue: list[tuple[str, tuple[str, ...]]] = [(group.casefold(), (group,))]
        seen = {group.casefold()}
        while queue:
            current, chain = queue.pop(0)
            members = self._direct.get(current, ())
            if any(m.keys & keys for m in members):
                return chain
            for member in members:
                if member.group and not member.keys & seen:
                    seen.update(member.keys)
                    await self.expand([member.label])
                    queue.append((member.label.casefold(), (*chain, member.label)))
        return None

    async def transitive(self, groups: Iterable[str]) -> dict[str, frozenset[str]]:
        """Each group (case-folded label) → the keys of every member, nested groups' members included."""
        wanted = list(dict.fromkeys(groups))
        await self.expand(wanted)
        result: dict[str, frozenset[str]] = {}
        for group in wanted:
            keys: set[str] = set()
            stack, seen = [group.casefold()], {group.casefold()}
            while stack:
                for member in self._direct.get(stack.pop(), ()):
                    keys |= member.keys
                    if member.group and not member.keys & seen:
                        seen |= member.keys
                        stack.append(member.label.casefold())
            result[group.casefold()] = frozenset(keys)
        return result

    async def security_groups(self) -> dict[str, str]:
        """Every mail-enabled security group: address (or Name) → Name, one paged listing."""
        found: dict[str, str] = {}
        async for page in self._exchange.pages(
            "Get-DistributionGroup",
            {"RecipientTypeDetails": SECURITY_GROUPS, "ResultSize": "Unlimited"},
            select=("Name", "PrimarySmtpAddress"),
        ):
            found.update(
                (str(r.get("PrimarySmtpAddress") or r.get("Name")), str(r.get("Name") or "")) for r in page.rows
            )
        return found

    async def groups_containing(self, identity: str) -> dict[str, str]:
        """Every mail-enabled security group that contains ``identity``, transitively: address → Name."""
        keys = await self.keys_of(identity)
        groups = await self.security_groups()
        await self.expand(groups)
        return {address: name for address, name in groups.items() if await self.path(address, keys) is not None}


async def group_holding(
    show: Callable[[str], Awaitable[MailboxRights]], members: GroupMembers, right: Right, mailbox: str, trustee: str
) -> str | None:
    """The group through which ``trustee`` holds ``right`` on ``mailbox``: every holder from one ``show`` (the
    ``$batch`` of ``PermissionService.show``), and only when a group is among them, the groups expanded."""
    holders = (await show(mailbox)).grants
    if not any(g.right is right and g.trustee_kind is TrusteeKind.GROUP for g in holders):
        return None
    return await holding_group(members, holders, right, trustee)


async def holding_group(members: GroupMembers, grants: Iterable[Grant], right: Right, trustee: str) -> str | None:
    """The group through which ``trustee`` holds ``right``, among ``grants`` (every holder of that right on one
    mailbox); None when no group gives it, or when a deny entry for the trustee or one of its groups wins."""
    keys = await members.keys_of(trustee)
    via: str | None = None
    for grant in grants:
        if grant.right is not right:
            continue
        if grant.trustee.casefold() in keys:
            if grant.deny:
                return None
            continue
        if grant.trustee_kind is not TrusteeKind.GROUP or await members.path(grant.trustee, keys) is None:
            continue
        if grant.deny:
            return None
        via = via or grant.trustee
    return via


class ReverseLookup(Protocol):
    """``graph.permissions.PermissionService.who``."""

    async def who(self, trustee: str, *, include_full_access: bool = True) -> list[Grant]: ...


async def who_including_groups(
    rights: ReverseLookup, members: GroupMembers, trustee: str, *, include_full_access: bool = True
) -> list[Grant]:
    """What ``trustee`` holds directly, plus what every group it belongs to (transitively) holds, marked with
    ``via_group``. Cost: the direct lookup, one paged group listing, the groups' members (once each) and one more
    lookup per group the trustee is in (each with its FullAccess scan unless ``include_full_access`` is False)."""
    found = await rights.who(trustee, include_full_access=include_full_access)
    for address, name in (await members.groups_containing(trustee)).items():
        held = await rights.who(address, include_full_access=include_full_access)
        found.extend(dataclasses.replace(g, via_group=name or address) for g in held)
    return sorted(found)

"""Trustee facts for the audit: is the account behind a grant enabled, a guest, a shared mailbox, or unknown?

Exchange prints trustees as UPNs (users), display names (groups), bare SIDs (deleted accounts) and object ids
(service principals). Only the first kind needs facts, and only for the trustees that hold something:

1. **Exchange, tenant-wide**: one more paged ``Get-Mailbox -ResultSize Unlimited`` (N/1000 requests) selecting
   ``AccountDisabled`` and ``RecipientTypeDetails``; facts are kept only for wanted trustees. This settles every
   trustee that has a mailbox (nearly all of them), and knows that a shared mailbox's disabled account is no risk.
   The audit starts it while its last FullAccess reads are still out (:meth:`TrusteeFacts.list_mailboxes`), and
   names each trustee as it finds it (:meth:`TrusteeFacts.want`); a trustee first wanted once the listing was under
   way and not matched by it is asked for on its own (``Get-Mailbox -Identity``, ten per ``$batch``, kept only by
   the fields the listing matches).
2. **The directory** (``graph.users.GraphUserDirectory``) for the rest (mail users, guests whose UPN has no
   ``#EXT#``, object ids in GrantSendOnBehalfTo): one lookup each when they are few, else one pass over
   ``all_users`` keeping only the matches. Streaming the whole directory every time would cost about 4 ms per user
   in msgraph-sdk's model parsing (microsoftgraph/msgraph-sdk-python#584), 40 s for 10,000 users.

Memory: facts for wanted trustees only (bounded by the result), one page at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Protocol

from graph.exchange import Command, ExchangeAdmin, Row
from graph.permissions_model import GUID, Grant, TrusteeKind, as_bool, external_address
from plugin.addresses import is_address
from plugin.errors import ConfigError, NotFoundError
from plugin.interfaces import MailboxKind, UserRecord

SHARED_TYPES = {"sharedmailbox", "roommailbox", "equipmentmailbox"}
FACT_FIELDS = (
    "PrimarySmtpAddress",
    "UserPrincipalName",
    "ExternalDirectoryObjectId",
    "AccountDisabled",
    "RecipientTypeDetails",
)


class UserSource(Protocol):
    """The Microsoft 365 directory (``graph.users.GraphUserDirectory`` implements it)."""

    def all_users(self, page_size: int = 999) -> AsyncIterator[UserRecord]: ...

    async def find_user(self, query: str) -> UserRecord | None: ...

    async def get_user(self, id_or_upn: str) -> UserRecord | None: ...


@dataclass(frozen=True)
class Facts:
    address: str
    enabled: bool
    guest: bool = False
    shared: bool = False


class TrusteeFacts:
    def __init__(
        self, exchange: ExchangeAdmin, users: UserSource, *, lookup_limit: int = 50, lookup_concurrency: int = 4
    ) -> None:
        self._exchange = exchange
        self._users = users
        self._lookup_limit = lookup_limit
        self._gate = asyncio.Semaphore(lookup_concurrency)
        self.facts: dict[str, Facts] = {}
        self.directory_lookups = 0
        self.directory_streamed = False
        self.looked_up = 0
        """Trustees asked of Exchange on their own: first wanted after the listing had passed their mailbox."""
        self._domains: set[str] = set()
        self._wanted: set[str] = set()
        self._late: set[str] = set()  # wanted once the listing had started: it may have passed them
        self._listing: bool | None = None  # None: not started, False: under way, True: done

    def want(self, grant: Grant) -> str | None:
        """``grant``'s trustee needs facts (if it is one that does): the listing keeps them from now on. Returns the
        key its facts go under, or None when it needs none."""
        if not _needs_facts(grant):
            return None
        key = grant.trustee.casefold()
        if key not in self._wanted:
            self._wanted.add(key)
            if self._listing is not None:
                self._late.add(key)
        return key

    @property
    def wanting(self) -> bool:
        """Some trustee needs facts already."""
        return bool(self._wanted)

    async def list_mailboxes(self) -> None:
        """The tenant-wide listing, keeping the facts of the trustees wanted by the time each page arrives."""
        self._listing = False
        async for page in self._exchange.pages("Get-Mailbox", {"ResultSize": "Unlimited"}, select=FACT_FIELDS):
            for row in page.rows:
                self._note(row)
        self._listing = True

    async def settle(self, grants: Iterable[Grant], tenant_domains: set[str]) -> None:
        """Find the facts of every trustee in ``grants`` that needs them (see the module docstring)."""
        self._domains = tenant_domains
        needed = {key for grant in grants if (key := self.want(grant)) is not None}
        if self._listing is None and needed:
            await self.list_mailboxes()
        await self._from_exchange(sorted(k for k in needed & self._late if k not in self.facts))
        leftovers = sorted(needed - set(self.facts))
        if len(leftovers) > self._lookup_limit:
            await self._stream_directory(set(leftovers))
        elif leftovers:
            await asyncio.gather(*(self._look_up(key) for key in leftovers))

    async def _from_exchange(self, keys: list[str]) -> None:
        """``Get-Mailbox -Identity`` for trustees the listing may have passed before they were wanted, each row kept
        as the listing would have kept it (only by the address, UPN or object id it lists)."""
        if not keys:
            return
        self.looked_up += len(keys)
        outcomes = await self._exchange.batch(
            [Command("Get-Mailbox", {"Identity": key}, select=FACT_FIELDS) for key in keys]
        )
        for outcome in outcomes:
            if isinstance(outcome.error, NotFoundError | ConfigError):
                continue  # no mailbox, or several: the directory is asked, as after the listing
            for row in outcome.unwrap().rows:
                self._note(row)

    def _note(self, row: Row) -> None:
        keys = {str(row.get(f) or "").casefold() for f in FACT_FIELDS[:3]} - {""}
        hits = keys & self._wanted
        if hits:
            shared = str(row.get("RecipientTypeDetails") or "").casefold() in SHARED_TYPES
            disabled = as_bool(row.get("AccountDisabled"))
            fact = Facts(str(row.get("PrimarySmtpAddress") or next(iter(hits))), not disabled, shared=shared)
            self.facts.update(dict.fromkeys(hits, fact))

    async def _look_up(self, key: str) -> None:
        async with self._gate:
            self.directory_lookups += 1
            try:
                user = await (self._users.get_user(key) if GUID.match(key) else self._users.find_user(key))
            except ConfigError:
                return  # ambiguous: leave it unknown
        if user is not None:
            self.facts[key] = _from_record(user)

    async def _stream_directory(self, wanted: set[str]) -> None:
        self.directory_streamed = True
        async for user in self._users.all_users():
            hits = _keys(user) & wanted
            if hits:
                self.facts.update(dict.fromkeys(hits, _from_record(user)))

    def classify(self, grant: Grant) -> Grant:
        """The grant with its trustee's address and kind settled from the facts."""
        if not _needs_facts(grant):
            return grant
        fact = self.facts.get(grant.trustee.casefold())
        if fact is None:
            if GUID.match(grant.trustee):
                return dataclasses.replace(grant, trustee_kind=TrusteeKind.UNKNOWN)
            domain = grant.trustee.rsplit("@", 1)[-1].casefold()
            kind = TrusteeKind.UNKNOWN if domain in self._domains else TrusteeKind.EXTERNAL
            return dataclasses.replace(grant, trustee_kind=kind)
        if fact.guest:
            kind = TrusteeKind.EXTERNAL
        elif not fact.enabled and not fact.shared:
            kind = TrusteeKind.DISABLED
        else:
            kind = TrusteeKind.USER
        return dataclasses.replace(grant, trustee=fact.address, trustee_kind=kind)


def _needs_facts(grant: Grant) -> bool:
    """Users printed by UPN or address, and object ids left over from GrantSendOnBehalfTo."""
    if grant.trustee_kind is TrusteeKind.USER:
        return is_address(grant.trustee)
    return grant.trustee_kind is TrusteeKind.UNKNOWN


def _from_record(user: UserRecord) -> Facts:
    return Facts(
        address=user.mail or user.upn,
        enabled=user.enabled,
        guest=user.guest,
        shared=user.mailbox is MailboxKind.SHARED,
    )


def _keys(user: UserRecord) -> set[str]:
    keys = {user.upn.casefold(), user.id.casefold()}
    if user.mail:
        keys.add(user.mail.casefold())
    keys.update(p.split(":", 1)[1].casefold() for p in user.proxy_addresses if p.casefold().startswith("smtp:"))
    external = external_address(user.upn)
    if external:
        keys.add(external.casefold())
    return keys

"""Trustee facts for the audit: is the account behind a grant enabled, a guest, a shared mailbox, or unknown?

Exchange prints trustees as UPNs (users), display names (groups), bare SIDs (deleted accounts) and object ids
(service principals). Only the first kind needs facts, and only for the trustees that hold something:

1. **Exchange**: the audit's own mailbox listing (``Get-Mailbox -ResultSize Unlimited``, which also feeds the
   FullAccess reads) selects ``AccountDisabled`` and ``RecipientTypeDetails`` too and hands every row to
   :meth:`TrusteeFacts.note`, which keeps the facts of the trustees found so far (:meth:`TrusteeFacts.want`). The
   trustees found after the listing passed their row are read one ``Get-Mailbox`` each (10 per ``$batch``) when
   they are few, else with one more paged listing (N/1000 requests, fewer of the service's budget than thousands of
   single reads). Without a listing of the audit's, :meth:`TrusteeFacts.settle` lists the mailboxes itself. This
   settles every trustee that has a mailbox (nearly all of them), and knows that a shared mailbox's disabled
   account is no risk.
2. **The directory** (``graph.users.GraphUserDirectory``) for the rest (mail users, guests whose UPN has no
   ``#EXT#``, object ids in GrantSendOnBehalfTo): one lookup each when they are few, else one pass over
   ``all_users`` keeping only the matches. Streaming the whole directory every time would cost about 4 ms per user
   in msgraph-sdk's model parsing (microsoftgraph/msgraph-sdk-python#584), 40 s for 10,000 users.

Memory: facts for wanted trustees only (bounded by the result), one page at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from graph.exchange import Command, ExchangeAdmin
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


@dataclass(frozen=True, slots=True)
class Facts:
    address: str
    enabled: bool
    guest: bool = False
    shared: bool = False


class TrusteeFacts:
    def __init__(
        self,
        exchange: ExchangeAdmin,
        users: UserSource,
        *,
        lookup_limit: int = 50,
        lookup_concurrency: int = 4,
        batch_limit: int = 200,
    ) -> None:
        """``batch_limit``: up to this many trustees the listing missed are read one by one in ``$batch`` (each
        costs one of the service's request budget), more are read with one more listing (one per 1,000)."""
        self._batch_limit = batch_limit
        self._exchange = exchange
        self._users = users
        self._lookup_limit = lookup_limit
        self._gate = asyncio.Semaphore(lookup_concurrency)
        self.facts: dict[str, Facts] = {}
        self.directory_lookups = 0
        self.directory_streamed = False
        self._domains: set[str] = set()
        self._wanted: set[str] = set()
        self._listed = False

    def want(self, grant: Grant) -> None:
        """A grant found before the listing reached its trustee: keep the trustee's facts when the row comes."""
        if _needs_facts(grant):
            self._wanted.add(grant.trustee.casefold())

    def note(self, row: Mapping[str, object], names: Mapping[str, object] | None = None) -> None:
        """Keep the facts of one ``Get-Mailbox`` row (selected with :data:`FACT_FIELDS`) listed by the audit, if a
        trustee wanted so far (:meth:`want`), or a Name in ``names`` (SendOnBehalf delegates), is this mailbox."""
        self._listed = True
        keys = _row_keys(row)
        names = names or {}
        labels = keys | {str(row.get(f) or "").casefold() for f in ("Identity", "Name")}
        if keys & self._wanted or any(label in names for label in labels):
            fact = _fact_of(row)
            if fact is not None:
                self.facts.update(dict.fromkeys(keys, fact))

    async def settle(self, grants: Iterable[Grant], tenant_domains: set[str]) -> None:
        """Find the facts of every trustee in ``grants`` that needs them (see the module docstring)."""
        self._domains = tenant_domains
        wanted = {g.trustee.casefold() for g in grants if _needs_facts(g)}
        self._wanted = set()
        missing = wanted - set(self.facts)
        if missing and self._listed and len(missing) <= self._batch_limit:
            await self._from_exchange_each(missing)
        elif missing:
            await self._from_exchange(missing)
        leftovers = sorted(wanted - set(self.facts))
        if len(leftovers) > self._lookup_limit:
            await self._stream_directory(set(leftovers))
        elif leftovers:
            await asyncio.gather(*(self._look_up(key) for key in leftovers))

    async def _from_exchange(self, wanted: set[str]) -> None:
        async for page in self._exchange.pages("Get-Mailbox", {"ResultSize": "Unlimited"}, select=FACT_FIELDS):
            for row in page.rows:
                hits = _row_keys(row) & wanted
                if hits:
                    fact = _fact_of(row) or Facts(next(iter(hits)), True)
                    self.facts.update(dict.fromkeys(hits, fact))

    async def _from_exchange_each(self, wanted: set[str]) -> None:
        """The trustees found after the listing passed them: one ``Get-Mailbox`` each, 10 per ``$batch``."""
        keys = sorted(k for k in wanted if not GUID.match(k))
        outcomes = await self._exchange.batch(
            [Command("Get-Mailbox", {"Identity": k}, select=FACT_FIELDS) for k in keys]
        )
        for key, outcome in zip(keys, outcomes, strict=True):
            if outcome.result is not None and outcome.result.rows:
                fact = _fact_of(outcome.result.rows[0])
                if fact is not None:
                    self.facts[key] = fact
            elif outcome.error is not None and not isinstance(outcome.error, NotFoundError):
                raise outcome.error

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


def _row_keys(row: Mapping[str, object]) -> set[str]:
    return {str(row.get(f) or "").casefold() for f in FACT_FIELDS[:3]} - {""}


def _fact_of(row: Mapping[str, object]) -> Facts | None:
    address = str(row.get("PrimarySmtpAddress") or row.get("UserPrincipalName") or "")
    shared = str(row.get("RecipientTypeDetails") or "").casefold() in SHARED_TYPES
    return Facts(address, not as_bool(row.get("AccountDisabled")), shared=shared) if address else None


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

"""The Microsoft 365 directory through Graph: find users, tell what mailbox they have, list them all.

Searches use fixed ``$filter`` templates only; the user's text becomes one OData string literal
(:func:`graph.graph_client.odata_literal`: quotes doubled, control characters refused), so no input can
change a query's meaning.

**Mailbox kind.** Graph's user resource does not say whether a user has a mailbox or which kind. We ask
``GET /users/{id}/mailboxSettings``: ``userPurpose`` (v1.0) says ``user``, ``shared``, ``room``, …, and a
404 ``MailboxNotEnabledForRESTAPI`` means no Exchange Online mailbox. That needs the application permission
``MailboxSettings.Read``, which the emaildoctor app registration does not request; without it Graph answers
403 and we fall back to ``GET /users/{id}/messages?$top=1`` (``Mail.ReadBasic.All``, which the app has):
200 means a mailbox exists, 404 ``MailboxNotEnabledForRESTAPI`` means none, and the kind is then inferred
from the account: a shared mailbox's account is disabled (Exchange creates it so), an enabled account's
mailbox is a user mailbox. The inference calls a *disabled user's* mailbox shared; granting
``MailboxSettings.Read`` makes the answer exact. Guests never have a mailbox in the tenant. When even the
fallback is refused (an application access policy), the kind is UNKNOWN.

With the Exchange admin API at hand (``exchange_kind``, as ``graph.services`` assembles it), Exchange's
``RecipientTypeDetails`` answers exactly and Graph's mailboxSettings is not asked at all; a search by address asks
Exchange at the same time as Graph (one round trip, not two).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from graph.domains import TenantDomains
from graph.graph_client import GraphClient, GraphError, odata_literal
from plugin.ambiguity import AmbiguousUserError as Ambiguous
from plugin.ambiguity import Candidate
from plugin.diagnosis import Code
from plugin.errors import ConfigError
from plugin.interfaces import MailboxKind, SmtpAuthState, UserRecord
from plugin.single_flight import SingleFlight

if TYPE_CHECKING:
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.models.user import User
    from msgraph.generated.models.user_collection_response import UserCollectionResponse
    from msgraph.generated.users.item.messages.messages_request_builder import MessagesRequestBuilder
    from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder

USER_FIELDS = ("id", "userPrincipalName", "mail", "displayName", "accountEnabled", "userType", "proxyAddresses")
MAX_QUERY_LENGTH = 256
MAX_PAGE_SIZE = 999
SEARCH_LIMIT = 10


def address_filter(address: str) -> str:
    """Users whose mail, UPN or any proxy address is ``address`` (Graph compares case-insensitively)."""
    literal = odata_literal(address)
    proxy = odata_literal(f"smtp:{address}")
    return f"mail eq {literal} or userPrincipalName eq {literal} or proxyAddresses/any(p:p eq {proxy})"


def display_name_filter(prefix: str) -> str:
    return f"startswith(displayName,{odata_literal(prefix)})"


class AmbiguousUserError(Ambiguous):
    """A search matched several users; the message lists them so the person can be more precise
    (``ambiguous_user``; a ConfigError, as before)."""

    def __init__(self, query: str, candidates: list[UserRecord]) -> None:
        matches = [Candidate(u.display_name, u.mail or u.upn, "Microsoft 365") for u in candidates]
        super().__init__(query, matches, hint="Use the email address.")
        self.candidates = tuple(candidates)


def _search_text(query: str) -> str:
    text = query.strip()
    if not text:
        raise ConfigError("give an email address, a user principal name or a display name")
    if len(text) > MAX_QUERY_LENGTH:
        raise ConfigError(f"a user search is at most {MAX_QUERY_LENGTH} characters")
    odata_literal(text)  # refuses control characters
    return text


def _record(user: User, mailbox: MailboxKind = MailboxKind.UNKNOWN) -> UserRecord:
    upn = user.user_principal_name or ""
    return UserRecord(
        id=user.id or "",
        upn=upn,
        mail=user.mail,
        display_name=user.display_name or upn,
        enabled=user.account_enabled is not False,
        mailbox=mailbox,
        guest=(user.user_type or "").lower() == "guest",
        proxy_addresses=tuple(user.proxy_addresses or ()),
    )


def _best_by_address(users: list[UserRecord], address: str) -> UserRecord | None:
    key = address.casefold()
    ranks: tuple[Callable[[UserRecord], bool], ...] = (
        lambda u: (u.mail or "").casefold() == key,
        lambda u: u.upn.casefold() == key,
        lambda u: any(p.split(":", 1)[-1].casefold() == key for p in u.proxy_addresses),
    )
    for rank in ranks:
        found = [u for u in users if rank(u)]
        if len(found) > 1:
            raise AmbiguousUserError(address, found)
        if found:
            return found[0]
    return None


def _best_by_name(users: list[UserRecord], name: str) -> UserRecord | None:
    exact = [u for u in users if u.display_name.casefold() == name.casefold()]
    candidates = exact or users
    if len(candidates) > 1:
        raise AmbiguousUserError(name, candidates)
    return candidates[0] if candidates else None


class GraphUserDirectory:
    """:class:`plugin.interfaces.UserDirectory` on Microsoft Graph. ``smtp_auth`` answers the SMTP AUTH
    switches of a mailbox (the Exchange admin API knows them; Graph does not)."""

    def __init__(
        self,
        graph: GraphClient,
        smtp_auth: Callable[[str], Awaitable[SmtpAuthState]],
        *,
        exchange_kind: Callable[[str], Awaitable[MailboxKind]] | None = None,
    ) -> None:
        """``exchange_kind``: Exchange's own answer (Get-Mailbox RecipientTypeDetails), used when Graph may not
        read mailbox settings; exact where the messages check can only guess from the account state."""
        self._graph = graph
        self._smtp_auth = smtp_auth
        self._exchange_kind = exchange_kind
        self._settings_readable: bool | None = None
        """False once Graph said the app may not read mailboxSettings at all (not an access policy)."""
        self._domains = TenantDomains(graph)
        self._finding: SingleFlight[str, UserRecord | None] = SingleFlight()

    async def find_user(self, query: str) -> UserRecord | None:
        """By email address, UPN or proxy address (text with an @), else by display name (prefix; an exact
        name wins). None when nobody matches; :class:`AmbiguousUserError` when several do. A search for the same
        text already under way (another diagnosis of a burst asking about the same admin@) is shared."""
        text = _search_text(query)
        return await self._finding.run(text.casefold(), lambda: self._find_user(text))

    async def _find_user(self, text: str) -> UserRecord | None:
        if "@" in text and self._exchange_kind is not None:
            # Exchange's answer for the address does not depend on Graph's: ask both at once.
            search, kind = await asyncio.gather(
                self._search(address_filter(text), f"the address {text}"),
                self._exchange_kind(text),
                return_exceptions=True,
            )
            if isinstance(search, BaseException):
                raise search
            found = _best_by_address(search, text)
            if found is None or found.guest:
                return None if found is None else replace(found, mailbox=MailboxKind.NONE)
            if isinstance(kind, ConfigError):  # not an address Exchange takes: ask by the user's UPN
                return replace(found, mailbox=await self.mailbox_kind(found))
            if isinstance(kind, BaseException):
                raise kind
            return replace(found, mailbox=kind)
        if "@" in text:
            found = _best_by_address(await self._search(address_filter(text), f"the address {text}"), text)
        else:
            found = _best_by_name(await self._search(display_name_filter(text), f"the name {text!r}"), text)
        if found is None:
            return None
        return replace(found, mailbox=await self.mailbox_kind(found))

    async def get_user(self, id_or_upn: str) -> UserRecord | None:
        """By object id or user principal name; None when Graph has no such user."""
        key = _search_text(id_or_upn)
        try:
            user = await self._graph.run(
                f"reading the user {key}",
                lambda c: c.users.by_user_id(key).get(request_configuration=_user_config()),
            )
        except GraphError as exc:
            if exc.status == 404 and exc.code is Code.USER_NOT_FOUND:
                return None
            raise
        if user is None:
            return None
        record = _record(user)
        return replace(record, mailbox=await self.mailbox_kind(record))

    async def mailbox_kind(self, user: UserRecord) -> MailboxKind:
        """USER, SHARED or NONE for ``user``; UNKNOWN when Graph will not tell (see the module docstring)."""
        if user.guest:
            return MailboxKind.NONE
        if self._exchange_kind is not None:  # Exchange answers exactly: no mailboxSettings round trip first
            return await self._exchange_kind(user.upn)
        if self._settings_readable is not False:
            try:
                settings = await self._graph.run(
                    f"reading the mailbox settings of {user.upn}",
                    lambda c: c.users.by_user_id(user.id).mailbox_settings.get(),
                )
            except GraphError as exc:
                if exc.code is Code.MAILBOX_NOT_FOUND:
                    return MailboxKind.NONE
                if exc.code is not Code.GRAPH_ACCESS_DENIED:
                    raise
                if "[RAOP]" not in exc.graph_message:
                    self._settings_readable = False
            else:
                purpose = str(getattr(settings, "user_purpose", None) or "").lower().rsplit(".", 1)[-1]
                if purpose in ("shared", "room", "equipment"):
                    return MailboxKind.SHARED
                if purpose:
                    return MailboxKind.USER
        return await self._mailbox_from_messages(user)

    async def _mailbox_from_messages(self, user: UserRecord) -> MailboxKind:
        try:
            await self._graph.run(
                f"checking the mailbox of {user.upn}",
                lambda c: c.users.by_user_id(user.id).messages.get(request_configuration=messages_config(["id"], 1)),
            )
        except GraphError as exc:
            if exc.code is Code.MAILBOX_NOT_FOUND:
                return MailboxKind.NONE
            if exc.code is Code.GRAPH_ACCESS_DENIED:
                return MailboxKind.UNKNOWN
            raise
        return MailboxKind.USER if user.enabled else MailboxKind.SHARED

    async def smtp_auth(self, mailbox: str) -> SmtpAuthState:
        return await self._smtp_auth(_search_text(mailbox))

    async def accepted_domains(self) -> frozenset[str] | None:
        """The tenant's verified domains (graph/domains.py); None without Domain.Read.All."""
        return await self._domains.get()

    async def all_users(self, page_size: int = MAX_PAGE_SIZE) -> AsyncIterator[UserRecord]:
        """Every user, page by page (``@odata.nextLink``), holding one page at a time; mailbox UNKNOWN."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ConfigError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        page = await self._graph.run(
            "listing users", lambda c: c.users.get(request_configuration=users_config(None, USER_FIELDS, page_size))
        )
        while page is not None:
            for user in page.value or ():
                yield _record(user)
            link = page.odata_next_link
            if not link:
                return
            page = await self._next_page(link)

    async def _next_page(self, link: str) -> UserCollectionResponse | None:
        # Follow only links into Graph itself: the request carries the app's token.
        if urlsplit(link).hostname != self._graph.host or not link.startswith(self._graph.settings.graph_url):
            raise GraphError(
                f"Microsoft Graph returned a next-page link outside {self._graph.settings.graph_url}",
                code=Code.UNKNOWN,
                status=None,
            )
        return await self._graph.run("listing users", lambda c: c.users.with_url(link).get())

    async def _search(self, odata_filter: str, what: str) -> list[UserRecord]:
        page = await self._graph.run(
            f"searching users by {what}",
            lambda c: c.users.get(request_configuration=users_config(odata_filter, USER_FIELDS, SEARCH_LIMIT)),
        )
        return [_record(u) for u in (page.value if page is not None else None) or ()]


# Request configurations: built inside GraphClient.run's callable, once the SDK is loaded (its modules warn on
# import unless graph.graph_client.load_sdk imported them).


def users_config(
    odata_filter: str | None, select: Sequence[str], top: int
) -> RequestConfiguration[UsersRequestBuilder.UsersRequestBuilderGetQueryParameters]:
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder

    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(filter=odata_filter, select=list(select), top=top)
    return RequestConfiguration(query_parameters=query)


def messages_config(
    select: Sequence[str], top: int, odata_filter: str | None = None
) -> RequestConfiguration[MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters]:
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.item.messages.messages_request_builder import MessagesRequestBuilder

    query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
        filter=odata_filter, select=list(select), top=top
    )
    return RequestConfiguration(query_parameters=query)


def _user_config() -> RequestConfiguration[UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters]:
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

    query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=list(USER_FIELDS))
    return RequestConfiguration(query_parameters=query)

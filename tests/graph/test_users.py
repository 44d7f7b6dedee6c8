"""The Microsoft 365 directory through the real msgraph-sdk against the sandbox: lookups by every key, injection
attempts, mailbox kinds and the paged listing."""

from __future__ import annotations

import math
import uuid

import pytest

from graph.users import AmbiguousUserError, GraphUserDirectory, address_filter, display_name_filter
from plugin.errors import ConfigError
from plugin.interfaces import MailboxKind, SmtpAuthState
from sandbox.bulk import build_large_tenant
from sandbox.odata import AnyOf, BoolOp, Call, Compare, parse_filter
from sandbox.runtime import Sandbox
from sandbox.state import User
from sandbox.testing import SandboxFactory, manual_clock
from tests.graph.fixtures_m365 import app_named, graph_stack, m365_settings, smtp_auth_enabled


def add_user(sandbox: Sandbox, upn: str, display_name: str, **fields: object) -> User:
    user = User(id=str(uuid.uuid4()), upn=upn, display_name=display_name, mail=upn, **fields)  # type: ignore[arg-type]
    user.proxy_addresses = user.proxy_addresses or [f"SMTP:{upn}"]
    sandbox.tenant.add_user(user)
    return user


async def test_find_by_email_upn_and_display_name(sandbox: Sandbox) -> None:
    async with graph_stack(sandbox) as (graph, _log):
        users = GraphUserDirectory(graph, smtp_auth_enabled)
        by_mail = await users.find_user("Alice@Business.com")
        by_name = await users.find_user("Alice Archer")
        by_prefix = await users.find_user("Ali")
        guest = await users.find_user("partner_fabrikam.com#EXT#@businesscom.onmicrosoft.com")
    alice = sandbox.tenant.user("alice@business.com")
    assert alice is not None
    assert by_mail is not None and by_mail.id == alice.id
    assert (by_mail.upn, by_mail.mail, by_mail.display_name) == (
        "alice@business.com",
        "alice@business.com",
        "Alice Archer",
    )
    assert (by_mail.enabled, by_mail.guest, by_mail.mailbox) == (True, False, MailboxKind.USER)
    assert by_name == by_mail == by_prefix
    assert guest is not None
    assert (guest.mail, guest.guest, guest.mailbox) == ("partner@fabrikam.com", True, MailboxKind.NONE)


async def test_find_by_proxy_address(sandbox: Sandbox) -> None:
    alice = sandbox.tenant.user("alice@business.com")
    assert alice is not None
    alice.proxy_addresses.append("smtp:a.archer@business.com")
    sandbox.tenant.add_user(alice)  # re-index the new address
    async with graph_stack(sandbox) as (graph, log):
        found = await GraphUserDirectory(graph, smtp_auth_enabled).find_user("A.Archer@business.com")
    assert found is not None and found.id == alice.id
    assert "smtp:a.archer@business.com" in found.proxy_addresses
    assert log.params("/v1.0/users", "$filter") == [address_filter("A.Archer@business.com")]


async def test_nobody_and_ambiguous_names(sandbox: Sandbox) -> None:
    async with graph_stack(sandbox) as (graph, _log):
        users = GraphUserDirectory(graph, smtp_auth_enabled)
        assert await users.find_user("nobody@business.com") is None
        assert await users.find_user("Zed") is None
        with pytest.raises(AmbiguousUserError) as caught:
            await users.find_user("H")
    assert {u.upn for u in caught.value.candidates} == {"hannah@business.com", "henry@business.com"}
    assert "Use the email address" in caught.value.message


async def test_a_name_with_an_apostrophe_is_found(sandbox: Sandbox) -> None:
    add_user(sandbox, "pat.obrien@business.com", "Pat O'Brien")
    async with graph_stack(sandbox) as (graph, log):
        found = await GraphUserDirectory(graph, smtp_auth_enabled).find_user("Pat O'Brien")
    assert found is not None and found.upn == "pat.obrien@business.com"
    assert log.params("/v1.0/users", "$filter") == ["startswith(displayName,'Pat O''Brien')"]


HOSTILE = [
    "x' or 1 eq 1 or mail eq 'y",
    "') or (true",
    "Al' or startswith(displayName,'",
    "Alice&$top=999&$filter=mail eq 'a'",
    "Al#ice%27 or 1 eq 1",
    "alice@business.com' or userPrincipalName eq 'bob@business.com",
    "x@y' or accountEnabled eq true or mail eq '",
]


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_input_cannot_change_the_query(sandbox: Sandbox, hostile: str) -> None:
    async with graph_stack(sandbox) as (graph, log):
        found = await GraphUserDirectory(graph, smtp_auth_enabled).find_user(hostile)
    assert found is None
    received = log.params("/v1.0/users", "$filter")
    assert len(received) == 1
    if "@" in hostile:
        expected = BoolOp(
            "or",
            BoolOp("or", Compare("mail", "eq", hostile), Compare("userPrincipalName", "eq", hostile)),
            AnyOf("proxyAddresses", "p", Compare("p", "eq", f"smtp:{hostile}")),
        )
    else:
        expected = Call("startswith", "displayName", hostile)  # type: ignore[assignment]
    assert parse_filter(received[0]) == expected  # the sandbox reads the whole input as one string literal
    assert [p for p in log.paths() if p == "/v1.0/users"] == ["/v1.0/users"]


@pytest.mark.parametrize("bad", ["alice\r\n@business.com", "Alice\x00", "", "   ", "a" * 300])
async def test_bad_input_is_refused_before_any_request(sandbox: Sandbox, bad: str) -> None:
    async with graph_stack(sandbox) as (graph, log):
        users = GraphUserDirectory(graph, smtp_auth_enabled)
        with pytest.raises(ConfigError):
            await users.find_user(bad)
        with pytest.raises(ConfigError):
            await users.get_user(bad)
    assert log.requests == []


def test_filter_templates_quote_their_input() -> None:
    assert display_name_filter("O'Brien") == "startswith(displayName,'O''Brien')"
    assert address_filter("a'b@c.com") == (
        "mail eq 'a''b@c.com' or userPrincipalName eq 'a''b@c.com' or proxyAddresses/any(p:p eq 'smtp:a''b@c.com')"
    )
    with pytest.raises(ConfigError):
        display_name_filter("line\nbreak")


async def test_shared_mailboxes_and_users_without_a_mailbox(sandbox: Sandbox) -> None:
    add_user(sandbox, "unlicensed@business.com", "Una Licensed", mailbox="none")
    async with graph_stack(sandbox) as (graph, log):
        users = GraphUserDirectory(graph, smtp_auth_enabled)
        sales = await users.find_user("sales@business.com")
        scanner = await users.get_user("scanner@business.com")
        unlicensed = await users.find_user("unlicensed@business.com")
    assert sales is not None and (sales.enabled, sales.mailbox) == (False, MailboxKind.SHARED)
    assert scanner is not None and scanner.mailbox is MailboxKind.SHARED
    assert unlicensed is not None and unlicensed.mailbox is MailboxKind.NONE
    # The app has no MailboxSettings.Read: asked once, then the messages probe (Mail.ReadBasic.All) decides.
    assert sum(p.endswith("/mailboxSettings") for p in log.paths()) == 1
    assert sum(p.endswith("/messages") for p in log.paths()) == 3


async def test_mailbox_settings_give_the_exact_kind_when_the_app_may_read_them(sandbox: Sandbox) -> None:
    sandbox.app.graph_roles.add("MailboxSettings.Read")  # the permission README suggests for exact answers
    async with graph_stack(sandbox) as (graph, log):
        users = GraphUserDirectory(graph, smtp_auth_enabled)
        sales = await users.find_user("sales@business.com")
        oscar = await users.find_user("oscar@business.com")  # disabled, but a user mailbox
        guest_free = add_user(sandbox, "nomailbox@business.com", "No Mailbox", mailbox="none")
        none = await users.get_user(guest_free.id)
    assert sales is not None and sales.mailbox is MailboxKind.SHARED
    assert oscar is not None and (oscar.enabled, oscar.mailbox) == (False, MailboxKind.USER)
    assert none is not None and none.mailbox is MailboxKind.NONE
    assert not any(p.endswith("/messages") for p in log.paths())


async def test_without_the_inference_a_disabled_user_looks_shared(sandbox: Sandbox) -> None:
    # The documented limit of the fallback (graph/users.py): grant MailboxSettings.Read to avoid it.
    async with graph_stack(sandbox) as (graph, _log):
        oscar = await GraphUserDirectory(graph, smtp_auth_enabled).find_user("oscar@business.com")
    assert oscar is not None and oscar.mailbox is MailboxKind.SHARED


async def test_access_policy_leaves_the_kind_unknown(sandbox: Sandbox) -> None:
    settings = m365_settings(sandbox, app_named(sandbox, "legacy-scanner"))
    async with graph_stack(sandbox, settings) as (graph, _log):
        users = GraphUserDirectory(graph, smtp_auth_enabled)
        alice = await users.find_user("alice@business.com")  # outside the policy's scope
        scanner = await users.find_user("scanner@business.com")  # inside it
    assert alice is not None and alice.mailbox is MailboxKind.UNKNOWN
    assert scanner is not None and scanner.mailbox is MailboxKind.SHARED


async def test_get_user_by_id_and_upn(sandbox: Sandbox) -> None:
    bob = sandbox.tenant.user("bob@business.com")
    assert bob is not None
    async with graph_stack(sandbox) as (graph, _log):
        users = GraphUserDirectory(graph, smtp_auth_enabled)
        by_id = await users.get_user(bob.id)
        by_upn = await users.get_user("bob@business.com")
        guest = await users.get_user("partner_fabrikam.com#EXT#@businesscom.onmicrosoft.com")
        missing = await users.get_user("nobody@business.com")
    assert by_id is not None and by_id == by_upn
    assert by_id.proxy_addresses == ("SMTP:bob@business.com",)
    assert guest is not None and guest.guest
    assert missing is None


async def test_smtp_auth_is_delegated(sandbox: Sandbox) -> None:
    asked: list[str] = []

    async def exchange_says(mailbox: str) -> SmtpAuthState:
        asked.append(mailbox)
        return SmtpAuthState(tenant_disabled=True, mailbox_disabled=None)

    async with graph_stack(sandbox) as (graph, log):
        state = await GraphUserDirectory(graph, exchange_says).smtp_auth("alice@business.com")
    assert asked == ["alice@business.com"]
    assert not state.enabled
    assert log.requests == []


async def test_all_users_streams_pages(sandbox_factory: SandboxFactory) -> None:
    tenant = build_large_tenant(60, seed=4, clock=manual_clock())
    async with sandbox_factory(tenant) as sandbox, graph_stack(sandbox) as (graph, log):
        users = GraphUserDirectory(graph, smtp_auth_enabled)
        stream = users.all_users(page_size=7)
        first = await anext(stream)
        assert len(log.requests) == 1  # one page fetched, not the whole tenant
        rest = [user async for user in stream]
    listed = [first, *rest]
    assert len(listed) == len(sandbox.tenant.users) == 19 + 60
    assert {u.id for u in listed} == set(sandbox.tenant.users)
    assert all(u.mailbox is MailboxKind.UNKNOWN for u in listed)
    assert len(log.requests) == math.ceil(len(listed) / 7)
    assert set(log.params("/v1.0/users", "$top")) == {"7"}
    assert set(log.params("/v1.0/users", "$select")) == {
        "id,userPrincipalName,mail,displayName,accountEnabled,userType,proxyAddresses"
    }
    oscar = next(u for u in listed if u.upn == "oscar@business.com")
    partner = next(u for u in listed if u.mail == "partner@fabrikam.com")
    assert (oscar.enabled, partner.guest) == (False, True)


async def test_all_users_page_size_is_checked(sandbox: Sandbox) -> None:
    async with graph_stack(sandbox) as (graph, _log):
        users = GraphUserDirectory(graph, smtp_auth_enabled)
        with pytest.raises(ConfigError):
            await anext(users.all_users(page_size=1000))

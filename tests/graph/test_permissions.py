"""graph.permissions against the sandbox: show, who, grant / revoke with read-back, holds, SMTP AUTH switches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from graph.permissions import PermissionService
from graph.permissions_model import ChangeOutcome, Grant, TrusteeKind, parse_right
from plugin.diagnosis import Code, Right
from plugin.errors import ConfigError, NotFoundError
from plugin.interfaces import RightsReader, SmtpAuthState
from sandbox.exchange_cmdlets import Outcome, Params
from sandbox.runtime import Sandbox
from tests.graph.fixtures_exchange import exchange_for, record_cmdlets

ORPHAN = "S-1-5-21-3623811015-3361044348-30300820-1013"
EMAILDOCTOR_SP = "143a87ab-1675-41a6-ab2c-2cd527f82665"


def explicit(grants: tuple[Grant, ...]) -> list[tuple[str, TrusteeKind]]:
    return [(g.trustee, g.trustee_kind) for g in grants if not g.inherited]


def state(sandbox: Sandbox) -> set[tuple[Any, ...]]:
    return {(g.right, g.mailbox_id, g.trustee, g.granted_at, g.removed_at) for g in sandbox.tenant.rights.records()}


def holders(sandbox: Sandbox, right: str, mailbox: str) -> set[str]:
    box = sandbox.tenant.user_by_address(mailbox)
    assert box is not None
    return {sandbox.tenant.trustee_label(g.trustee) for g in sandbox.tenant.rights.held(box.id, right)}  # type: ignore[arg-type]


async def test_show_alice_sales_support_and_frank(sandbox: Sandbox) -> None:
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange, clock=sandbox.clock)
        alice = await service.show("alice@business.com")
        sales = await service.show("SALES@business.com")
        support = await service.show("support@business.com")
        frank = await service.show("frank@business.com")
    assert (alice.send_as, alice.send_on_behalf, explicit(alice.full_access)) == ((), (), [])
    assert alice.full_access and all(g.inherited and g.trustee_kind is TrusteeKind.SYSTEM for g in alice.full_access)
    assert sales.mailbox == "sales@business.com"
    assert explicit(sales.send_as) == [
        ("admin@business.com", TrusteeKind.USER),
        ("oscar@business.com", TrusteeKind.USER),  # disabled: only the audit consults the directory
        (ORPHAN, TrusteeKind.ORPHANED_SID),
    ]
    assert explicit(sales.full_access) == [(EMAILDOCTOR_SP, TrusteeKind.APP)]
    assert explicit(support.send_as) == [("partner@fabrikam.com", TrusteeKind.EXTERNAL)]
    assert explicit(support.full_access) == [
        ("oscar@business.com", TrusteeKind.USER),
        ("ivan@business.com", TrusteeKind.USER),
    ]
    inherited = [g for g in support.full_access if g.inherited]
    assert inherited and any(g.deny for g in inherited)
    for rights in (alice, sales, support, frank):
        assert all("SELF" not in g.trustee for g in rights.grants)
    # GrantSendOnBehalfTo holds recipient Names (object ids): shown as addresses
    assert [(g.right, g.trustee, g.trustee_kind) for g in frank.send_on_behalf] == [
        (Right.SEND_ON_BEHALF, "admin@business.com", TrusteeKind.USER)
    ]
    assert sales.to_json()["SendAs"][0] == {
        "right": "SendAs",
        "mailbox": "sales@business.com",
        "trustee": "admin@business.com",
        "trustee_kind": "user",
        "inherited": False,
        "deny": False,
    }


async def test_who_finds_what_admin_holds_across_the_tenant(sandbox: Sandbox) -> None:
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange)
        everything = await service.who("admin@business.com")
        cheap = await service.who("admin@business.com", include_full_access=False)
        orphan = await service.who(ORPHAN)
    assert [(g.right, g.mailbox) for g in everything] == [
        (Right.FULL_ACCESS, "grace@business.com"),
        (Right.SEND_AS, "henry@business.com"),
        (Right.SEND_AS, "sales@business.com"),
        (Right.SEND_ON_BEHALF, "frank@business.com"),
    ]
    assert all(g.trustee == "admin@business.com" and not g.inherited for g in everything)
    assert [g.right for g in cheap] == [Right.SEND_AS, Right.SEND_AS, Right.SEND_ON_BEHALF]
    assert [(g.right, g.mailbox, g.trustee_kind) for g in orphan] == [
        (Right.SEND_AS, "sales@business.com", TrusteeKind.ORPHANED_SID)
    ]


async def test_grant_send_as_is_read_back_and_idempotent(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange, clock=sandbox.clock)
        reader: RightsReader = service
        before = await reader.holds(Right.SEND_AS, "alice@business.com", "admin@business.com")
        first = await service.grant("SendAs", "alice@business.com", "admin@business.com")
        after = await reader.holds(Right.SEND_AS, "alice@business.com", "admin@business.com")
        second = await service.grant("send-as", "Alice@Business.com", "admin@business.com")
    assert before.held is False and after.held is True
    assert (first.outcome, first.verified, first.ok) == (ChangeOutcome.CHANGED, True, True)
    assert "read back" in first.detail and first.at == sandbox.clock.now()
    assert second.outcome is ChangeOutcome.UNCHANGED and second.verified
    assert "admin@business.com" in holders(sandbox, "SendAs", "alice@business.com")
    adds = [p for name, p in log.calls if name == "Add-RecipientPermission"]
    assert adds == [
        {
            "Identity": "alice@business.com",
            "Trustee": "admin@business.com",
            "AccessRights": ["SendAs"],
            "Confirm": False,
        }
    ]  # the second grant saw the right and made no call
    assert first.to_json()["outcome"] == "changed" and second.to_json()["outcome"] == "unchanged"


async def test_revoke_twice_changed_then_unchanged(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange)
        first = await service.revoke(Right.SEND_AS, "henry@business.com", "admin@business.com")
        second = await service.revoke(Right.SEND_AS, "henry@business.com", "admin@business.com")
        orphan = await service.revoke(Right.SEND_AS, "sales@business.com", ORPHAN.lower())
    assert first.outcome is ChangeOutcome.CHANGED and first.verified
    assert second.outcome is ChangeOutcome.UNCHANGED and second.verified
    assert orphan.outcome is ChangeOutcome.CHANGED and orphan.trustee == ORPHAN
    assert holders(sandbox, "SendAs", "henry@business.com") == set()
    assert holders(sandbox, "SendAs", "sales@business.com") == {"admin@business.com", "oscar@business.com"}
    assert log.names.count("Remove-RecipientPermission") == 2


async def test_send_on_behalf_uses_the_hashtable_and_keeps_other_delegates(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange)
        added = await service.grant(Right.SEND_ON_BEHALF, "frank@business.com", "bob@business.com")
        both = holders(sandbox, "SendOnBehalf", "frank@business.com")
        shown = await service.show("frank@business.com")
        removed = await service.revoke(Right.SEND_ON_BEHALF, "frank@business.com", "bob@business.com")
        again = await service.revoke(Right.SEND_ON_BEHALF, "frank@business.com", "bob@business.com")
    assert added.outcome is ChangeOutcome.CHANGED and removed.outcome is ChangeOutcome.CHANGED
    assert again.outcome is ChangeOutcome.UNCHANGED
    assert both == {"admin@business.com", "bob@business.com"}
    assert {g.trustee for g in shown.send_on_behalf} == {"admin@business.com", "bob@business.com"}
    assert holders(sandbox, "SendOnBehalf", "frank@business.com") == {"admin@business.com"}
    sets = [p["GrantSendOnBehalfTo"] for name, p in log.calls if name == "Set-Mailbox"]
    assert sets == [
        {"@odata.type": "#Exchange.GenericHashTable", "add": ["bob@business.com"]},
        {"@odata.type": "#Exchange.GenericHashTable", "remove": ["bob@business.com"]},
    ]


async def test_full_access_grant_and_revoke(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange)
        granted = await service.grant(Right.FULL_ACCESS, "alice@business.com", "bob@business.com")
        held = await service.holds(Right.FULL_ACCESS, "alice@business.com", "bob@business.com")
        revoked = await service.revoke(Right.FULL_ACCESS, "alice@business.com", "bob@business.com")
        gone = await service.holds(Right.FULL_ACCESS, "alice@business.com", "bob@business.com")
    assert (granted.outcome, held.held, revoked.outcome, gone.held) == (
        ChangeOutcome.CHANGED,
        True,
        ChangeOutcome.CHANGED,
        False,
    )
    [add] = [p for name, p in log.calls if name == "Add-MailboxPermission"]
    assert add["AccessRights"] == ["FullAccess"] and add["AutoMapping"] is True and add["Confirm"] is False


async def test_time_bound_grant_carries_its_expiry(sandbox: Sandbox) -> None:
    expires = sandbox.clock.now() + timedelta(hours=8)
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange, clock=sandbox.clock)
        result = await service.grant(Right.SEND_AS, "grace@business.com", "admin@business.com", expires_at=expires)
        with pytest.raises(ConfigError, match="future"):
            await service.grant(
                Right.SEND_AS, "grace@business.com", "admin@business.com", expires_at=sandbox.clock.now()
            )
    assert result.expires_at == expires and result.to_json()["expires_at"] == expires.isoformat()


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda s: s.grant("ReadPermission", "alice@business.com", "admin@business.com"), "unknown right"),
        (lambda s: s.grant("SendAs", "alice", "admin@business.com"), "mailbox must be an email address"),
        (lambda s: s.grant("SendAs", "alice@business.com", "admin@business.com\r\nX: y"), "trustee"),
        (lambda s: s.grant("SendAs", "alice@business.com", ORPHAN), "trustee"),  # SIDs only for clean-up
        (lambda s: s.revoke("SendOnBehalf", "frank@business.com", ORPHAN), "trustee"),
        (lambda s: s.revoke("FullAccess", "", "bob@business.com"), "mailbox"),
        (lambda s: s.show("alice@business.com'; Remove-Mailbox"), "mailbox"),
        (lambda s: s.who("' -or Name -like '*"), "trustee"),
        (lambda s: s.holds("SendAs", "alice@business.com", ""), "trustee"),
        (lambda s: s.smtp_auth("not an address"), "mailbox"),
    ],
)
async def test_bad_input_is_refused_before_any_call(sandbox: Sandbox, call: Any, words: str) -> None:
    log = record_cmdlets(sandbox)
    before = state(sandbox)
    async with exchange_for(sandbox) as exchange:
        with pytest.raises(ConfigError, match=words):
            await call(PermissionService(exchange))
        assert exchange.stats.requests == 0
    assert log.calls == [] and state(sandbox) == before


def test_right_names() -> None:
    assert parse_right("Send on Behalf") is Right.SEND_ON_BEHALF
    assert parse_right("FULLACCESS") is Right.FULL_ACCESS
    assert parse_right(Right.SEND_AS) is Right.SEND_AS


async def test_unknown_mailbox_or_trustee_changes_nothing(sandbox: Sandbox) -> None:
    before = state(sandbox)
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange)
        with pytest.raises(NotFoundError) as mailbox:
            await service.grant(Right.SEND_AS, "nobody@business.com", "admin@business.com")
        with pytest.raises(NotFoundError) as trustee:
            await service.grant(Right.FULL_ACCESS, "alice@business.com", "ghost@business.com")
        with pytest.raises(NotFoundError) as shown:
            await service.show("nobody@business.com")
    assert mailbox.value.code is Code.MAILBOX_NOT_FOUND and shown.value.code is Code.MAILBOX_NOT_FOUND
    assert trustee.value.code is Code.USER_NOT_FOUND
    assert state(sandbox) == before


async def test_a_grant_that_never_shows_is_not_visible_yet_not_failed(sandbox: Sandbox) -> None:
    # Test setup: this sandbox accepts Add-RecipientPermission and silently does nothing.
    handler, allowed = sandbox.exchange.cmdlets.handlers["add-recipientpermission"]

    def swallow(params: Params) -> Outcome:
        del params
        return Outcome()

    sandbox.exchange.cmdlets.handlers["add-recipientpermission"] = (swallow, allowed)
    waited: list[float] = []

    async def sleep(seconds: float) -> None:  # the read-back's clock: no real waiting in the test
        waited.append(seconds)

    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange, sleep=sleep, monotonic=lambda: sum(waited))
        result = await service.grant(Right.SEND_AS, "alice@business.com", "admin@business.com")
    assert result.outcome is ChangeOutcome.NOT_VISIBLE and result.ok and not result.verified
    assert "does not show in Exchange yet after 120 s" in result.detail
    assert sum(waited) == 120.0 and waited[:3] == [0.5, 1.0, 2.0] and max(waited) == 10.0
    reads = [c for c, _ in log.calls if c == "Get-RecipientPermission"]
    assert len(reads) == len(waited) + 2  # the check before the change, then one read per wait and a first one
    del handler


async def test_a_change_exchange_refuses_is_failed_with_its_code(sandbox: Sandbox) -> None:
    sandbox.app.entra_roles = {"Global Reader"}  # may read, may not change
    async with exchange_for(sandbox) as exchange:
        result = await PermissionService(exchange).grant(Right.SEND_AS, "alice@business.com", "admin@business.com")
    assert result.outcome is ChangeOutcome.FAILED and result.code is Code.EXCHANGE_ROLE_MISSING
    assert "Add-RecipientPermission" in result.detail and "Exchange Recipient Administrator" in result.detail
    assert "admin@business.com" not in holders(sandbox, "SendAs", "alice@business.com")


async def test_smtp_auth_switches_with_a_cached_transport_config(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange)
        admin = await service.smtp_auth("admin@business.com")
        alice = await service.smtp_auth("alice@business.com")
        with pytest.raises(NotFoundError) as missing:
            await service.smtp_auth("nobody@business.com")
    assert admin == SmtpAuthState(tenant_disabled=True, mailbox_disabled=False) and admin.enabled
    assert alice == SmtpAuthState(tenant_disabled=True, mailbox_disabled=None) and not alice.enabled
    assert missing.value.code is Code.MAILBOX_NOT_FOUND
    assert log.names.count("Get-TransportConfig") == 1 and log.names.count("Get-CASMailbox") == 3

"""Rights held through (nested) mail-enabled security groups, against the sandbox: holds(), show(), who() with
groups, Send on Behalf granted to a group read back, and what the sandbox answers for the group cmdlets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from graph.audit import TenantAudit
from graph.audit_findings import FindingKind
from graph.groups import GroupMembers, holding_group, who_including_groups
from graph.permissions import PermissionService
from graph.permissions_model import ChangeOutcome, Grant, TrusteeKind
from plugin.diagnosis import Right
from plugin.directory import Directory, raw_directory
from sandbox.bulk import build_large_tenant
from sandbox.rights import Trustee
from sandbox.runtime import Sandbox
from sandbox.state import Group, Tenant, User
from sandbox.testing import SandboxFactory, manual_clock
from tests.graph.fixtures_exchange import exchange_for, record_cmdlets
from tests.graph.test_audit import users_for

EXAMPLES = Path(__file__).resolve().parents[2] / "sandbox" / "examples"

ADMIN, KIM, ALICE, BOB, CAROL = (f"{n}@business.com" for n in ("admin", "kim", "alice", "bob", "carol"))
SENDERS, OPERATORS = "mail-senders@business.com", "mail-operators@business.com"


def add_group(sandbox: Sandbox, name: str, *members: str) -> Group:
    """A mail-enabled security group whose members are addresses of users or of groups added before."""
    tenant = sandbox.tenant
    ids = set()
    for member in members:
        user = tenant.user_by_address(member)
        ids.add(user.id if user else next(g.id for g in tenant.groups.values() if g.mail == member))
    group = Group(id=f"00000000-0000-4000-8000-{len(tenant.groups):012d}", display_name=name,
                  mail=f"{name.lower().replace(' ', '-')}@business.com", members=ids)  # fmt: skip
    tenant.add_group(group)
    return group


async def test_send_as_through_a_nested_group_is_held_and_names_the_group(sandbox: Sandbox) -> None:
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange, clock=sandbox.clock)
        nested = await service.holds(Right.SEND_AS, KIM, ADMIN)
        outsider = await service.holds(Right.SEND_AS, KIM, BOB)
        direct = await service.holds(Right.SEND_AS, "henry@business.com", ADMIN)
        nothing = await service.holds(Right.SEND_AS, ALICE, ADMIN)
    assert (nested.held, nested.via_group) == (True, "Mail Senders")
    assert (outsider.held, outsider.via_group) == (False, None)
    assert (direct.held, direct.via_group) == (True, None)
    assert (nothing.held, nothing.via_group) == (False, None)
    # and the sandbox's SMTP and Graph agree: admin@ may send as kim@ through the groups
    tenant = sandbox.tenant
    admin, kim = tenant.user(ADMIN), tenant.user(KIM)
    assert admin is not None and kim is not None and tenant.user_may("SendAs", admin, kim)


async def test_full_access_through_a_group(sandbox: Sandbox) -> None:
    team = add_group(sandbox, "Support Team", CAROL)
    support = sandbox.tenant.user_by_address("support@business.com")
    assert support is not None
    sandbox.tenant.rights.grant("FullAccess", support.id, Trustee("group", team.id), None)
    async with exchange_for(sandbox) as exchange:
        held = await PermissionService(exchange).holds(Right.FULL_ACCESS, "support@business.com", CAROL)
    assert (held.held, held.via_group) == (True, "Support Team")


async def test_send_on_behalf_granted_to_a_group_reads_back_and_reaches_its_members(sandbox: Sandbox) -> None:
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange, clock=sandbox.clock)
        granted = await service.grant(Right.SEND_ON_BEHALF, ALICE, SENDERS)
        shown = await service.show(ALICE)
        member = await service.holds(Right.SEND_ON_BEHALF, ALICE, ADMIN)
        revoked = await service.revoke(Right.SEND_ON_BEHALF, ALICE, SENDERS)
    assert granted.outcome is ChangeOutcome.CHANGED and granted.verified
    assert [(g.trustee, g.trustee_kind) for g in shown.send_on_behalf] == [(SENDERS, TrusteeKind.GROUP)]
    assert (member.held, member.via_group) == (True, SENDERS)
    assert revoked.outcome is ChangeOutcome.CHANGED and revoked.verified
    alice = sandbox.tenant.user(ALICE)
    assert alice is not None and sandbox.tenant.rights.held(alice.id, "SendOnBehalf") == []


async def test_reverse_lookup_lists_rights_held_through_groups(sandbox: Sandbox) -> None:
    async with exchange_for(sandbox) as exchange:
        grants = await who_including_groups(PermissionService(exchange), GroupMembers(exchange), ADMIN)
        bob = await who_including_groups(PermissionService(exchange), GroupMembers(exchange), BOB)
    rows = {(g.right, g.mailbox, g.via_group) for g in grants}
    assert (Right.SEND_AS, KIM, "Mail Senders") in rows
    assert (Right.SEND_AS, "henry@business.com", "") in rows  # direct grants still listed
    assert all(g.mailbox != KIM for g in bob)


async def test_each_group_is_read_once_however_many_questions(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox) as exchange:
        members = GroupMembers(exchange)
        everyone = await members.transitive(["Mail Senders", "Mail Operators", "Mail Senders"])
        for _ in range(3):
            assert await members.path("Mail Senders", await members.keys_of(ADMIN)) == ("Mail Senders", OPERATORS)
    assert ADMIN in everyone["mail senders"] and ADMIN in everyone["mail operators"]
    assert "Mail Operators".casefold() in everyone["mail senders"]  # the nested group itself is a member
    assert log.names.count("Get-DistributionGroupMember") == 2
    assert log.names.count("Get-Recipient") == 1


@pytest.mark.parametrize("cmdlet", ["Get-DistributionGroupMember", "Get-DistributionGroup"])
async def test_group_cmdlets_answer_like_exchange(sandbox: Sandbox, cmdlet: str) -> None:
    async with exchange_for(sandbox) as exchange:
        result = await exchange.invoke(cmdlet, {"Identity": "Mail Senders"})
        with pytest.raises(Exception, match="couldn't be found"):
            await exchange.invoke(cmdlet, {"Identity": ALICE})  # a mailbox is no group
    row = result.rows[0]
    if cmdlet == "Get-DistributionGroup":
        assert (row["PrimarySmtpAddress"], row["GroupType"]) == (SENDERS, "Universal, SecurityEnabled")
    else:  # direct members only: the nested group is one row, its members are not flattened in
        assert [(r["PrimarySmtpAddress"], r["RecipientType"]) for r in result.rows] == [
            (OPERATORS, "MailUniversalSecurityGroup")
        ]


def mailbox(tenant: Tenant, address: str) -> User:
    found = tenant.user_by_address(address)
    assert found is not None
    return found


def directory_sending_from(tenant: Tenant, mailboxes: list[str]) -> Directory:
    """The example directory plus one employee per mailbox, each sending through the system's admin@ account."""
    data = yaml.safe_load((EXAMPLES / "directory.yaml").read_text(encoding="utf-8"))
    data["employees"] += [{"name": f"Employee {i}", "login": f"e{i:05d}", "email": m} for i, m in enumerate(mailboxes)]
    return raw_directory(data, "directory.yaml with bulk employees")


async def test_audit_predictions_read_each_group_once_not_per_member_or_mailbox(
    sandbox_factory: SandboxFactory,
) -> None:
    tenant = build_large_tenant(3000, seed=5, clock=manual_clock())
    admin = tenant.user(ADMIN)
    assert admin is not None
    group_held = sorted(
        {
            tenant.users[g.mailbox_id].upn
            for g in tenant.rights.records()
            if g.trustee.kind == "group" and g.right == "SendAs"
        }
    )
    directory = directory_sending_from(tenant, group_held)
    async with (
        sandbox_factory(tenant) as sandbox,
        exchange_for(sandbox) as exchange,
        users_for(sandbox, exchange) as users,
    ):
        log = record_cmdlets(sandbox)
        report = await TenantAudit(exchange, users).run(directory=directory)
    predicted = {f.mailbox for f in report.findings if f.kind is FindingKind.PREDICTED_SEND_FAILURE}
    # the sandbox's own answer: what admin@ may send as, directly or through nested groups
    allowed = {m for m in group_held if tenant.user_may("SendAs", admin, mailbox(tenant, m))}
    assert allowed and set(group_held) - allowed  # some through groups, some not: both kinds are predicted right
    assert predicted & set(group_held) == set(group_held) - allowed
    reads = [str(p["Identity"]).casefold() for name, p in log.calls if name == "Get-DistributionGroupMember"]
    assert len(reads) == len(set(reads)) <= len(tenant.groups)  # each group once, nested ones included
    members = sum(len(g.members) for g in tenant.groups.values())
    assert len(reads) < len(group_held) < members * len(group_held)


async def test_a_deny_for_the_member_or_its_group_wins_over_the_group_allow(sandbox: Sandbox) -> None:
    allow = Grant(Right.SEND_AS, KIM, "Mail Senders", TrusteeKind.GROUP)
    cases = {
        "group allow": ([allow], "Mail Senders"),
        "member denied": ([allow, Grant(Right.SEND_AS, KIM, ADMIN, deny=True)], None),
        "group denied": ([Grant(Right.SEND_AS, KIM, "Mail Senders", TrusteeKind.GROUP, deny=True)], None),
        "other right": ([Grant(Right.FULL_ACCESS, KIM, "Mail Senders", TrusteeKind.GROUP)], None),
    }
    async with exchange_for(sandbox) as exchange:
        members = GroupMembers(exchange)
        found = {
            name: await holding_group(members, grants, Right.SEND_AS, ADMIN) for name, (grants, _) in cases.items()
        }
    assert found == {name: expected for name, (_, expected) in cases.items()}


async def test_groups_that_contain_each_other_end_the_search(sandbox: Sandbox) -> None:
    first = add_group(sandbox, "Ring One", BOB)
    second = add_group(sandbox, "Ring Two", "ring-one@business.com")
    first.members.add(second.id)  # a cycle: One ⊃ Two ⊃ One
    bob, carol = sandbox.tenant.user(BOB), sandbox.tenant.user(CAROL)
    assert bob is not None and carol is not None
    assert set(sandbox.tenant.member_of(bob.id)) == {first.id, second.id}
    async with exchange_for(sandbox) as exchange:
        members = GroupMembers(exchange)
        everyone = await asyncio.wait_for(members.transitive(["Ring Two"]), 10)
        outsider = await asyncio.wait_for(members.path("Ring Two", await members.keys_of(CAROL)), 10)
    assert BOB in everyone["ring two"] and outsider is None
    assert members.groups_read == 2

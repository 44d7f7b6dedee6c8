"""Nested groups in the sandbox's tenant model: loading them, rights reaching members transitively, bad files, and
groups at scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.bulk import build_large_tenant
from sandbox.clock import ManualClock
from sandbox.loader import EXAMPLE_TENANT, TenantFileError, load_tenant
from sandbox.state import Tenant, User


def user(tenant: Tenant, address: str) -> User:
    found = tenant.user_by_address(address)
    assert found is not None
    return found


def example_with_groups(groups: list[dict[str, Any]]) -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLE_TENANT.read_text(encoding="utf-8"))
    data["groups"] = groups
    data["rights"] = []
    data.pop("application_access_policies", None)
    return dict(data)


def test_the_example_nests_mail_operators_in_mail_senders() -> None:
    tenant = load_tenant(clock=ManualClock())
    admin, bob, kim = (user(tenant, f"{n}@business.com") for n in ("admin", "bob", "kim"))
    names = {tenant.groups[g].display_name for g in tenant.member_of(admin.id)}
    assert names == {"Mail Operators", "Mail Senders"}
    assert tenant.user_may("SendAs", admin, kim) and not tenant.user_may("SendAs", bob, kim)
    assert [g.trustee.kind for g in tenant.rights.held(kim.id, "SendAs")] == ["group"]  # not admin@ directly


def test_a_group_may_name_a_group_defined_after_it() -> None:
    tenant = load_tenant(
        example_with_groups(
            [
                {
                    "id": "00000000-0000-4000-8000-000000000001",
                    "display_name": "Outer",
                    "mail": "outer@business.com",
                    "members": ["inner@business.com"],
                },
                {
                    "id": "00000000-0000-4000-8000-000000000002",
                    "display_name": "Inner",
                    "mail": "inner@business.com",
                    "members": ["bob@business.com"],
                },
            ]
        ),
        clock=ManualClock(),
    )
    assert tenant.member_of(user(tenant, "bob@business.com").id) == [
        "00000000-0000-4000-8000-000000000002",
        "00000000-0000-4000-8000-000000000001",
    ]


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (
            [{"id": "g1", "display_name": "One", "mail": "one@business.com", "members": ["nobody@business.com"]}],
            "unknown member 'nobody@business.com'",
        ),
        (
            [{"id": "g1", "display_name": "One", "mail": "one@business.com", "members": ["One"]}],
            "must be another group",
        ),
        (
            [
                {"id": "g1", "display_name": "One", "mail": "one@business.com", "members": ["Two"]},
                {"id": "g2", "display_name": "Two", "members": ["bob@business.com"]},
            ],
            "both must be mail-enabled",
        ),
    ],
)
def test_bad_groups_name_the_problem(tmp_path: Path, groups: list[dict[str, Any]], message: str) -> None:
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(example_with_groups(groups)))
    with pytest.raises(TenantFileError, match=message):
        load_tenant(path)


def test_the_large_tenant_nests_groups_and_grants_to_them() -> None:
    tenant = build_large_tenant(2000, seed=3, clock=ManualClock())
    nested = [g for g in tenant.groups.values() if any(m in tenant.groups for m in g.members)]
    assert {g.display_name for g in nested} >= {"All Departments", "Department 00"}
    admin = user(tenant, "admin@business.com")
    assert "All Departments" in {tenant.groups[g].display_name for g in tenant.member_of(admin.id)}
    to_groups = [r for r in tenant.rights.records() if r.trustee.kind == "group"]
    assert to_groups and any(tenant.groups[r.trustee.id] in nested for r in to_groups)

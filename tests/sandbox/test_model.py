"""The tenant model without servers: YAML loading, rights with effective times, the filter parsers, bulk tenants."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sandbox.bulk import build_large_tenant
from sandbox.clock import ManualClock
from sandbox.loader import TenantFileError, load_tenant
from sandbox.odata import FilterSyntaxError, parse_filter
from sandbox.opath import OpathError, evaluate, parse_opath
from sandbox.rights import RightsStore, Trustee
from sandbox.settings import Behaviour


def test_example_tenant_tells_the_story() -> None:
    tenant = load_tenant(clock=ManualClock())
    user = tenant.user_by_address

    def holds(right: str, mailbox: str, trustee: str) -> bool:
        found = tenant.trustee(trustee)
        target = user(mailbox)
        assert found is not None and target is not None
        return tenant.rights.holds(right, target.id, found)  # type: ignore[arg-type]

    assert tenant.id == "7c4d0e52-3b1a-4f7e-9a51-2d7b8e6f1c90"
    assert tenant.smtp_client_authentication_disabled is True and tenant.security_defaults is False
    assert not holds("SendAs", "alice@business.com", "admin@business.com")
    assert holds("SendAs", "henry@business.com", "admin@business.com")
    assert holds("SendAs", "sales@business.com", "admin@business.com")
    assert holds("SendOnBehalf", "frank@business.com", "admin@business.com")
    assert holds("FullAccess", "grace@business.com", "admin@business.com")
    assert not holds("SendAs", "grace@business.com", "admin@business.com")
    assert holds("FullAccess", "support@business.com", "oscar@business.com")
    assert holds("SendAs", "sales@business.com", "S-1-5-21-3623811015-3361044348-30300820-1013")
    assert holds("SendAs", "support@business.com", "partner@fabrikam.com")
    assert holds("FullAccess", "support@business.com", "ivan@business.com")
    sales = user("sales@business.com")
    app = tenant.service_principal("emaildoctor")
    assert sales is not None and app is not None
    assert tenant.rights.holds("FullAccess", sales.id, Trustee("sp", app.service_principal_id))
    assert [u.upn for u in tenant.users.values() if u.smtp_auth_disabled is False] == [
        "admin@business.com", "bob@business.com", "support@business.com", "sales@business.com",
    ]  # fmt: skip
    oscar = user("oscar@business.com")
    assert oscar is not None and oscar.account_enabled is False
    assert {u.upn for u in tenant.users.values() if u.smtp_password} == {
        "admin@business.com",
        "bob@business.com",
        "support@business.com",
    }
    assert tenant.slack is not None and tenant.slack["team"]["id"] == "T0BUSINESS"
    legacy = next(a for a in tenant.apps.values() if a.name == "legacy-scanner")
    alice = user("alice@business.com")
    assert alice is not None and tenant.raop_blocks(legacy, alice)


def test_rights_have_a_directory_view_and_an_effective_view() -> None:
    clock = ManualClock()
    store = RightsStore()
    delay = timedelta(seconds=60)
    trustee = Trustee("user", "t")
    assert store.grant("SendAs", "m", trustee, clock.now()) is True
    assert store.grant("SendAs", "m", trustee, clock.now()) is False
    assert store.holds("SendAs", "m", trustee)
    assert not store.is_effective("SendAs", "m", [trustee], clock.now(), delay)
    clock.advance(60)
    assert store.is_effective("SendAs", "m", [trustee], clock.now(), delay)
    assert store.revoke("SendAs", "m", trustee, clock.now()) is True
    assert store.revoke("SendAs", "m", trustee, clock.now()) is False
    assert not store.holds("SendAs", "m", trustee)
    assert store.is_effective("SendAs", "m", [trustee], clock.now(), delay)
    clock.advance(60)
    assert not store.is_effective("SendAs", "m", [trustee], clock.now(), delay)
    store.forget_settled(clock.now(), delay)
    assert list(store.records()) == []


def test_group_membership_carries_rights() -> None:
    tenant = load_tenant(clock=ManualClock())
    group = next(iter(tenant.groups.values()))
    scanner, alice = tenant.user_by_address("scanner@business.com"), tenant.user_by_address("alice@business.com")
    assert scanner is not None and alice is not None
    tenant.rights.grant("SendAs", alice.id, Trustee("group", group.id), None)
    assert tenant.user_may("SendAs", scanner, alice)
    bob = tenant.user_by_address("bob@business.com")
    assert bob is not None and not tenant.user_may("SendAs", bob, alice)


@pytest.mark.parametrize(
    "text",
    [
        "mail eq 'a'",
        "startswith(displayName,'O''Br')",
        "proxyAddresses/any(x:x eq 'smtp:a@b')",
        "(a eq 1) and (b eq true or c eq null)",
    ],
)
def test_odata_filters_parse(text: str) -> None:
    parse_filter(text)


@pytest.mark.parametrize(
    "text", ["mail eq", "mail 'a'", "eq 'a'", "(mail eq 'a'", "mail eq 'a' and", "mail eq 'a' 'b'", "mail ~ 'a'"]
)
def test_odata_syntax_errors(text: str) -> None:
    with pytest.raises(FilterSyntaxError):
        parse_filter(text)


@pytest.mark.parametrize(
    ("text", "row", "expected"),
    [
        ("GrantSendOnBehalfTo -ne $null", {"GrantSendOnBehalfTo": ["x"]}, True),
        ("GrantSendOnBehalfTo -ne `$null", {"GrantSendOnBehalfTo": []}, False),
        ("GrantSendOnBehalfTo -eq $null", {"GrantSendOnBehalfTo": []}, True),
        ("alias -like 'fr*'", {"Alias": "frank"}, True),
        (
            "Alias -notlike 'fr*' -or RecipientTypeDetails -eq SharedMailbox",
            {"Alias": "frank", "RecipientTypeDetails": "SharedMailbox"},
            True,
        ),
        ('-not (Alias -eq "frank")', {"Alias": "frank"}, False),
        ("EmailAddresses -eq 'smtp:b@x'", {"EmailAddresses": ["SMTP:a@x", "smtp:b@x"]}, True),
        ("AccountDisabled -eq $true", {"AccountDisabled": False}, False),
    ],
)
def test_opath(text: str, row: dict[str, object], expected: bool) -> None:
    assert evaluate(parse_opath(text), row) is expected


@pytest.mark.parametrize(
    "text", ["Alias -eq", "Alias -is 'x'", "(Alias -eq 'x'", "$null -eq Alias", "Alias -eq $nothing"]
)
def test_opath_errors(text: str) -> None:
    with pytest.raises(OpathError):
        parse_opath(text)


def test_bad_tenant_files_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "tenant.yaml"
    bad.write_text("tenant: {id: x}\nrights: [{right: SendAs, mailbox: nobody@x.com, trustee: a@x.com}]\n")
    with pytest.raises(TenantFileError, match="unknown mailbox"):
        load_tenant(bad)
    bad.write_text("tenant: {id: x}\nbehaviour: {smtp_send_as_check: sometimes}\n")
    with pytest.raises(TenantFileError, match="smtp_send_as_check"):
        load_tenant(bad)
    bad.write_text("- not a mapping\n")
    with pytest.raises(TenantFileError):
        load_tenant(bad)


def test_behaviour_validation() -> None:
    assert Behaviour().changed(exchange_batch_max=20).exchange_batch_max == 20
    with pytest.raises(ValueError, match="unknown setting"):
        Behaviour().changed(colour="red")
    with pytest.raises(ValueError, match="positive"):
        Behaviour().changed(exchange_rate_limit=0)


def test_large_tenant_has_a_realistic_spread() -> None:
    tenant = build_large_tenant(10_000, seed=7, clock=ManualClock())
    assert len(tenant.mailboxes()) >= 10_000
    counts = dict.fromkeys(("SendAs", "SendOnBehalf", "FullAccess"), 0)
    for grant in tenant.rights.records():
        counts[grant.right] += 1
    assert counts["SendAs"] > 500 and counts["SendOnBehalf"] > 300 and counts["FullAccess"] > 1000

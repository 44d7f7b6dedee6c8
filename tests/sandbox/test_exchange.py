"""The Exchange admin API (InvokeCommand, $batch, v2.0 Mailbox) over HTTPS with httpx."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from sandbox.runtime import Sandbox
from tests.sandbox.helpers import bearer, cmdlet, http, invoke, invoke_url

ADMIN_ID = "5b289388-8808-4fca-bf5d-84c3cab28b3f"
FRANK_ID = "dd6cbbc9-0cf3-4e55-81ac-76f295586139"


def detail(response: httpx.Response) -> tuple[str, str]:
    """(exception class, text) where live answers put them: ``innererror.internalexception``."""
    internal = response.json()["error"]["innererror"]["internalexception"]
    return str(internal["type"]), str(internal["message"])


async def test_get_mailbox_shape(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        response = await invoke(client, sandbox, "Get-Mailbox", Identity="frank@business.com")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json;odata.metadata=minimal")
    body = response.json()
    assert body["@adminapi.warnings"] == []
    assert body["@odata.context"].endswith("$metadata#Collection(Exchange.GenericHashTable)")
    [row] = body["value"]
    assert row["Identity"] == row["Name"] == row["ExternalDirectoryObjectId"] == FRANK_ID
    assert row["Alias"] == "frank"
    assert row["PrimarySmtpAddress"] == row["UserPrincipalName"] == "frank@business.com"
    assert row["RecipientTypeDetails"] == "UserMailbox"
    assert row["GrantSendOnBehalfTo"] == [ADMIN_ID]  # recipient Names, the Entra object id for cloud users
    assert row["GrantSendOnBehalfTo@odata.type"] == "#Collection(String)"
    assert row["EmailAddresses"] == ["SMTP:frank@business.com"]
    assert row["Guid@data.type"] == "System.Guid"
    for header in ("Request-Id", "Rate-Limit-Limit", "Rate-Limit-Remaining", "Rate-Limit-Reset"):
        assert header in response.headers


async def test_get_mailbox_filter_select_and_result_size(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        delegated = await client.post(
            invoke_url(sandbox) + "?$select=PrimarySmtpAddress,GrantSendOnBehalfTo",
            json=cmdlet("Get-Mailbox", Filter="GrantSendOnBehalfTo -ne `$null", ResultSize="Unlimited"),
            headers=bearer(sandbox.app_token("exchange")),
        )
        shared = await invoke(client, sandbox, "Get-Mailbox", Filter="RecipientTypeDetails -eq 'SharedMailbox'")
        anr = await invoke(client, sandbox, "Get-Mailbox", Anr="Hen")
        limited = await invoke(client, sandbox, "Get-Mailbox", ResultSize=2)
        sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(exchange_default_result_size=3)
        defaulted = await invoke(client, sandbox, "Get-Mailbox")
        bad_filter = await invoke(client, sandbox, "Get-Mailbox", Filter="Alias -eq")
    [row] = delegated.json()["value"]
    assert set(row) == {"PrimarySmtpAddress", "GrantSendOnBehalfTo", "GrantSendOnBehalfTo@odata.type"}
    assert row["PrimarySmtpAddress"] == "frank@business.com"
    assert sorted(r["PrimarySmtpAddress"] for r in shared.json()["value"]) == [
        "sales@business.com",
        "scanner@business.com",
    ]
    assert [r["Alias"] for r in anr.json()["value"]] == ["henry"]
    assert len(limited.json()["value"]) == 2 and limited.json()["@adminapi.warnings"] == []
    assert len(defaulted.json()["value"]) == 3
    assert defaulted.json()["@adminapi.warnings"][0].startswith("By default, only the first 3 items are returned.")
    assert bad_filter.status_code == 400
    assert detail(bad_filter)[0] == "System.Management.Automation.ParameterBindingException"


async def test_paging_with_next_link_repost(sandbox: Sandbox) -> None:
    body = cmdlet("Get-RecipientPermission")
    headers = {**bearer(sandbox.app_token("exchange")), "Prefer": "odata.maxpagesize=4"}
    rows: list[dict[str, Any]] = []
    async with http(sandbox) as client:
        url: str | None = invoke_url(sandbox)
        while url:
            response = await client.post(url, json=body, headers=headers)
            assert response.headers["Preference-Applied"] == "odata.maxpagesize=4"
            rows += response.json()["value"]
            url = response.json().get("@odata.nextLink")
        changed_body = await client.post(
            response.request.url.copy_with(params={"$skiptoken": "MToxMjM0"}),
            json=cmdlet("Get-Mailbox"),
            headers=headers,
        )
    assert changed_body.status_code == 400
    mailboxes = len(sandbox.tenant.mailboxes())
    send_as = [r for r in rows if r["Trustee"] != "NT AUTHORITY\\SELF"]
    assert len(rows) == mailboxes + len(send_as)
    assert sorted(r["Trustee"] for r in send_as) == sorted(
        [
            "admin@business.com",
            "admin@business.com",
            "Mail Senders",
            "oscar@business.com",
            "S-1-5-21-3623811015-3361044348-30300820-1013",
            "partner_fabrikam.com#EXT#@businesscom.onmicrosoft.com",
        ]
    )
    assert all(r["AccessRights"] == ["SendAs"] and r["AccessControlType"] == "Allow" for r in rows)


async def test_recipient_permission_filters(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        by_trustee = await invoke(client, sandbox, "Get-RecipientPermission", Trustee="admin@business.com")
        on_sales = await invoke(
            client, sandbox, "Get-RecipientPermission", Identity="sales@business.com", AccessRights=["SendAs"]
        )
        bad_right = await invoke(
            client, sandbox, "Get-RecipientPermission", Identity="sales@business.com", AccessRights=["FullAccess"]
        )
    assert sorted(r["Identity"] for r in by_trustee.json()["value"]) == sorted(
        [ADMIN_ID, "d4b5b95a-9237-4453-8096-fa3c7862f1b8", "d150ae8a-9a47-4507-aa38-2fd91075ceaa"]
    )
    assert len(on_sales.json()["value"]) == 4  # SELF, admin, oscar, the orphaned SID
    assert bad_right.status_code == 400


async def test_add_and_remove_send_as_with_warnings(sandbox: Sandbox) -> None:
    params = {
        "Identity": "alice@business.com",
        "Trustee": "admin@business.com",
        "AccessRights": ["SendAs"],
        "Confirm": False,
    }
    async with http(sandbox) as client:
        added = await invoke(client, sandbox, "Add-RecipientPermission", **params)
        at_once = await invoke(client, sandbox, "Get-RecipientPermission", Identity="alice@business.com")
        sandbox.advance(1)  # past the read lag (exchange_read_lag_seconds), on the sandbox clock
        listed = await invoke(client, sandbox, "Get-RecipientPermission", Identity="alice@business.com")
        removed = await invoke(client, sandbox, "Remove-RecipientPermission", **params)
        again = await invoke(client, sandbox, "Remove-RecipientPermission", **params)
    assert added.status_code == 200 and added.json()["value"] == []
    # Reads are eventually consistent: right after the change the grant does not show yet (live).
    assert [r["Trustee"] for r in at_once.json()["value"]] == ["NT AUTHORITY\\SELF"]
    assert [r["Trustee"] for r in listed.json()["value"]] == ["NT AUTHORITY\\SELF", "admin@business.com"]
    row = listed.json()["value"][1]
    assert set(row) == {
        "Identity", "Trustee", "AccessControlType", "AccessRights@odata.type", "AccessRights",
        "TrusteeSidString", "TrusteeWithPrimarySmtpAddress",
    }  # fmt: skip
    assert removed.json()["@adminapi.warnings"] == []
    [warning] = again.json()["@adminapi.warnings"]
    assert "because the ACE isn't present" in warning


async def test_mailbox_permission_lists_inherited_entries(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        response = await invoke(client, sandbox, "Get-MailboxPermission", Identity="support@business.com")
        user = await invoke(
            client, sandbox, "Get-MailboxPermission", Identity="support@business.com", User="ivan@business.com"
        )
        nobody = await invoke(
            client, sandbox, "Get-MailboxPermission", Identity="support@business.com", User="alice@business.com"
        )
        missing_identity = await invoke(client, sandbox, "Get-MailboxPermission")
    rows = response.json()["value"]
    explicit = [(r["User"], r["AccessRights"]) for r in rows if not r["IsInherited"]]
    assert explicit == [
        ("NT AUTHORITY\\SELF", ["FullAccess, ReadPermission"]),  # a flags enum: one joined element (live)
        ("oscar@business.com", ["FullAccess"]),
        ("ivan@business.com", ["FullAccess"]),
    ]
    assert any(r["IsInherited"] and r["Deny"] for r in rows)
    assert [r["User"] for r in user.json()["value"]] == ["ivan@business.com"]
    assert nobody.status_code == 404
    assert nobody.json()["error"]["code"] == "NotFound"
    assert "No permissions were found for the user:alice@business.com" in detail(nobody)[1]
    assert missing_identity.status_code == 400
    assert (
        detail(missing_identity)[1]
        == "Cannot process command because of one or more missing mandatory parameters: Identity."
    )


async def test_full_access_grant_and_absent_removal(sandbox: Sandbox) -> None:
    params = {"Identity": "alice@business.com", "User": "ivan@business.com", "AccessRights": ["FullAccess"]}
    async with http(sandbox) as client:
        await invoke(client, sandbox, "Add-MailboxPermission", AutoMapping=False, InheritanceType="All", **params)
        sandbox.advance(1)  # past the read lag
        held = await invoke(
            client, sandbox, "Get-MailboxPermission", Identity="alice@business.com", User="ivan@business.com"
        )
        await invoke(client, sandbox, "Remove-MailboxPermission", **params)
        absent = await invoke(client, sandbox, "Remove-MailboxPermission", **params)
    assert held.json()["value"][0]["AccessRights"] == ["FullAccess"]
    alice = sandbox.tenant.user("alice@business.com")
    assert alice is not None
    assert absent.json()["@adminapi.warnings"] == [
        f'Can\'t remove the access control entry on the object "{alice.name}" for account "ivan@business.com" because the ACE doesn\'t exist on the object.'
    ]


async def test_set_mailbox_send_on_behalf_hashtable_and_overwrite(sandbox: Sandbox) -> None:
    async def delegates() -> list[str]:
        sandbox.advance(1)  # past the read lag
        response = await invoke(client, sandbox, "Get-Mailbox", Identity="alice@business.com")
        return list(response.json()["value"][0]["GrantSendOnBehalfTo"])

    admin = sandbox.tenant.user("admin@business.com")
    hannah = sandbox.tenant.user("hannah@business.com")
    assert admin is not None and hannah is not None
    async with http(sandbox) as client:
        add = {"@odata.type": "#Exchange.GenericHashTable", "add": "admin@business.com"}
        first = await invoke(
            client, sandbox, "Set-Mailbox", Identity="alice@business.com", GrantSendOnBehalfTo=add, Confirm=False
        )
        second = await invoke(client, sandbox, "Set-Mailbox", Identity="alice@business.com", GrantSendOnBehalfTo=add)
        await invoke(
            client,
            sandbox,
            "Set-Mailbox",
            Identity="alice@business.com",
            GrantSendOnBehalfTo={"@odata.type": "#Exchange.GenericHashTable", "Add": ["hannah@business.com"]},
        )
        both = await delegates()
        await invoke(
            client,
            sandbox,
            "Set-Mailbox",
            Identity="alice@business.com",
            GrantSendOnBehalfTo={"@odata.type": "#Exchange.GenericHashTable", "REMOVE": "admin@business.com"},
        )
        after_remove = await delegates()
        await invoke(
            client, sandbox, "Set-Mailbox", Identity="alice@business.com", GrantSendOnBehalfTo=["admin@business.com"]
        )
        overwritten = await delegates()
        unknown = await invoke(
            client,
            sandbox,
            "Set-Mailbox",
            Identity="alice@business.com",
            GrantSendOnBehalfTo={"add": "ghost@business.com"},
        )
    assert first.json()["@adminapi.warnings"] == []
    assert second.json()["@adminapi.warnings"] == [
        f"The command completed successfully but no settings of '{sandbox.tenant.user('alice@business.com').name}' have been modified."  # type: ignore[union-attr]
    ]
    assert sorted(both) == sorted([admin.name, hannah.name])
    assert after_remove == [hannah.name]
    assert overwritten == [admin.name]
    assert unknown.status_code == 404


async def test_errors_have_exchange_shape(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        missing = await invoke(client, sandbox, "Get-Mailbox", Identity="ghost@business.com")
        unknown_cmdlet = await invoke(client, sandbox, "Get-Everything")
        unknown_parameter = await invoke(client, sandbox, "Get-Mailbox", Colour="blue")
        bad_body = await client.post(
            invoke_url(sandbox), json={"nope": 1}, headers=bearer(sandbox.app_token("exchange"))
        )
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["code"] == "NotFound"
    assert error["message"] == "Invalid Operation"
    assert "details" not in error  # live answers (2026) carry no details array
    klass, text = detail(missing)
    assert klass == "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    assert text.startswith(
        "The operation couldn't be performed because object 'ghost@business.com' couldn't be found on '"
    )
    assert error["innererror"]["type"] == "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"
    assert missing.headers["x-ExceptionType"] == "ManagementObjectNotFoundException"
    assert unknown_cmdlet.status_code == 400 and "is not recognized" in detail(unknown_cmdlet)[1]
    assert unknown_parameter.status_code == 400
    assert detail(unknown_parameter)[1] == "A parameter cannot be found that matches parameter name 'Colour'."
    assert bad_body.status_code == 400


async def test_token_and_role_checks(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        no_token = await client.post(invoke_url(sandbox), json=cmdlet("Get-Mailbox"))
        graph_token = await invoke(client, sandbox, "Get-Mailbox", token=sandbox.app_token("graph"))
        sandbox.app.exchange_roles.discard("Exchange.ManageAsApp")
        no_permission = await invoke(client, sandbox, "Get-Mailbox")
        sandbox.app.exchange_roles.add("Exchange.ManageAsApp")
        groups = set(sandbox.app.exchange_role_groups)
        sandbox.app.entra_roles.clear()
        sandbox.app.exchange_role_groups.clear()
        no_role = await invoke(client, sandbox, "Get-Mailbox")
        sandbox.app.entra_roles.add("Exchange Recipient Administrator")
        recipient_only_transport = await invoke(client, sandbox, "Get-TransportConfig")
        sandbox.app.exchange_role_groups.update(groups)
        transport = await invoke(client, sandbox, "Get-TransportConfig")
        org_cmdlet = await invoke(client, sandbox, "Set-TransportConfig", SmtpClientAuthenticationDisabled=False)
        delegated = await invoke(
            client,
            sandbox,
            "Get-CASMailbox",
            token=sandbox.user_token("exchange", "ivan@business.com", ["Exchange.Manage"]),
            Identity="bob@business.com",
        )
        delegated_no_role = await invoke(
            client,
            sandbox,
            "Get-CASMailbox",
            token=sandbox.user_token("exchange", "hannah@business.com", ["Exchange.Manage"]),
        )
    for response in (no_token, graph_token, no_permission):
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert "audience" in graph_token.headers["x-ms-diagnostics"]
    # No role at all: 403 whose body is 4,096 NUL bytes (live); a role that does not cover the cmdlet: 401 JSON.
    for refused in (no_role, delegated_no_role):
        assert refused.status_code == 403 and refused.content == b"\x00" * 4096
    assert recipient_only_transport.status_code == 401
    assert recipient_only_transport.json() == {
        "error": {
            "code": "Unauthorized",
            "message": "User is not allowed to call Get-TransportConfig",
            "innererror": {
                "message": "User is not allowed to call Get-TransportConfig",
                "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
            },
        }
    }
    assert transport.status_code == 200
    assert org_cmdlet.status_code == 401
    assert org_cmdlet.json()["error"]["message"] == "User is not allowed to call Set-TransportConfig"
    assert delegated.status_code == 200 and delegated.json()["value"][0]["SmtpClientAuthenticationDisabled"] is False


async def test_cas_mailbox_and_transport_config(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        alice = await invoke(client, sandbox, "Get-CASMailbox", Identity="alice@business.com")
        transport = await invoke(client, sandbox, "Get-TransportConfig")
        sandbox.app.entra_roles.add("Exchange Administrator")
        await invoke(
            client, sandbox, "Set-CASMailbox", Identity="alice@business.com", SmtpClientAuthenticationDisabled=False
        )
        unchanged = await invoke(
            client, sandbox, "Set-CASMailbox", Identity="alice@business.com", SmtpClientAuthenticationDisabled=False
        )
        changed = await invoke(client, sandbox, "Set-TransportConfig", SmtpClientAuthenticationDisabled=False)
    assert alice.json()["value"][0]["SmtpClientAuthenticationDisabled"] is None
    assert transport.json()["value"][0]["SmtpClientAuthenticationDisabled"] is True
    assert unchanged.json()["@adminapi.warnings"][0].startswith("The command completed successfully but no settings of")
    assert changed.status_code == 200
    assert sandbox.tenant.smtp_client_authentication_disabled is False
    user = sandbox.tenant.user("alice@business.com")
    assert user is not None and user.smtp_auth_disabled is False


async def test_batch(sandbox: Sandbox) -> None:
    url = invoke_url(sandbox)
    requests = [
        {
            "id": "1",
            "method": "POST",
            "url": url,
            "body": cmdlet("Get-MailboxPermission", Identity="sales@business.com"),
            "headers": {"X-CmdletName": "Get-MailboxPermission"},
        },
        {"id": "2", "method": "POST", "url": url, "body": cmdlet("Get-Mailbox", Identity="ghost@business.com")},
        {
            "id": "3",
            "method": "POST",
            "url": url,
            "body": cmdlet("Get-RecipientPermission", Identity="henry@business.com"),
        },
    ]
    async with http(sandbox) as client:
        response = await client.post(
            f"{sandbox.urls.exchange}/adminapi/beta/{sandbox.tenant.id}/$batch",
            json={"requests": requests},
            headers=bearer(sandbox.app_token("exchange")),
        )
        too_many = await client.post(
            f"{sandbox.urls.exchange}/adminapi/beta/{sandbox.tenant.id}/$batch",
            json={"requests": [dict(requests[0], id=str(i)) for i in range(11)]},
            headers=bearer(sandbox.app_token("exchange")),
        )
    assert response.status_code == 200
    items = {r["id"]: r for r in response.json()["responses"]}
    assert items["1"]["status"] == 200
    assert any(r["User"] == sandbox.app.service_principal_id for r in items["1"]["body"]["value"])
    assert items["2"]["status"] == 404 and items["2"]["body"]["error"]["code"] == "NotFound"
    assert [r["Trustee"] for r in items["3"]["body"]["value"]] == ["NT AUTHORITY\\SELF", "admin@business.com"]
    assert too_many.status_code == 400
    assert int(response.headers["Rate-Limit-Remaining"]) <= 30000 - 3


async def test_v2_mailbox_endpoint(sandbox: Sandbox) -> None:
    url = f"{sandbox.urls.exchange}/adminapi/v2.0/{sandbox.tenant.id}/Mailbox"
    async with http(sandbox) as client:
        v1_role = await client.post(
            url,
            json=cmdlet("Get-Mailbox", Identity="frank@business.com"),
            headers=bearer(sandbox.app_token("exchange")),
        )
        sandbox.app.exchange_roles.add("Exchange.ManageAsAppV2")
        token = bearer(sandbox.app_token("exchange"))
        read = await client.post(url, json=cmdlet("Get-Mailbox", Identity="frank@business.com"), headers=token)
        write = await client.post(
            url,
            json=cmdlet("Set-Mailbox", Identity="alice@business.com", GrantSendOnBehalfTo=["hannah@business.com"]),
            headers=token,
        )
        other = await client.post(
            url, json=cmdlet("Get-RecipientPermission", Identity="alice@business.com"), headers=token
        )
    assert v1_role.status_code == 401
    assert read.json()["value"][0]["GrantSendOnBehalfTo"] == [ADMIN_ID]
    assert write.status_code == 200
    assert other.status_code == 400


async def test_token_bucket_and_retry_after(sandbox: Sandbox) -> None:
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(
        exchange_rate_limit=3, exchange_rate_window_seconds=3000
    )
    async with http(sandbox) as client:
        responses = [await invoke(client, sandbox, "Get-TransportConfig") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["Rate-Limit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0].headers["Rate-Limit-Limit"] == "3"
    assert int(responses[3].headers["Retry-After"]) >= 1
    assert responses[3].json()["error"]["code"] == "TooManyRequests"


async def test_concurrent_request_limit(sandbox: Sandbox) -> None:
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(exchange_max_concurrent_requests=2)
    sandbox.faults.set("exchange", latency_ms=300)
    async with http(sandbox) as client:
        responses = await asyncio.gather(*(invoke(client, sandbox, "Get-TransportConfig") for _ in range(3)))
    throttled = [r for r in responses if r.status_code == 429]
    assert len(throttled) == 1
    assert throttled[0].text.startswith(
        "You have reached the maximum number of concurrent requests per tenant. Please wait and try again"
    )
    assert throttled[0].headers["Retry-After"] == "1"


@pytest.mark.parametrize("status", [500, 503])
async def test_fault_errors(sandbox: Sandbox, status: int) -> None:
    sandbox.faults.set("exchange", error_rate=1.0, error_status=status)
    async with http(sandbox) as client:
        response = await invoke(client, sandbox, "Get-TransportConfig")
    assert response.status_code == status
    assert "innererror" in response.json()["error"]

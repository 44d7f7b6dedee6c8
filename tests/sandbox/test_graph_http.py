"""Microsoft Graph over plain HTTP: the exact error bodies, $filter/$select/$top paging, messages, $batch."""

from __future__ import annotations

import asyncio
import base64
from email.message import EmailMessage
from typing import Any

import pytest

from sandbox.runtime import Sandbox
from tests.sandbox.helpers import bearer, http

SEND_AS_DENIED = (
    "The user account which was used to submit this request does not have the right to send mail on behalf of the "
    "specified sending account. Cannot submit message."
)


def message(subject: str, to: str, sender: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": subject,
        "body": {"contentType": "Text", "content": "hello"},
        "toRecipients": [{"emailAddress": {"address": to}}],
    }
    if sender:
        body["from"] = {"emailAddress": {"address": sender}}
    return {"message": body, "saveToSentItems": False}


def assert_error(response: Any, status: int, code: str, text: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if text is not None:
        assert error["message"] == text
    assert set(error["innerError"]) == {"request-id", "date", "client-request-id"}


async def test_token_errors(sandbox: Sandbox) -> None:
    graph = sandbox.urls.graph
    async with http(sandbox) as client:
        empty = await client.get(f"{graph}/v1.0/users/alice@business.com")
        wrong_audience = await client.get(
            f"{graph}/v1.0/users/alice@business.com", headers=bearer(sandbox.app_token("exchange"))
        )
        token = sandbox.app_token("graph")
        sandbox.advance(3600)
        expired = await client.get(f"{graph}/v1.0/users/alice@business.com", headers=bearer(token))
        garbage = await client.get(f"{graph}/v1.0/users/alice@business.com", headers=bearer("not-a-jwt"))
    assert_error(empty, 401, "InvalidAuthenticationToken", "Access token is empty.")
    assert "WWW-Authenticate" in empty.headers
    assert_error(
        wrong_audience, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
    )
    assert_error(expired, 401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
    assert_error(garbage, 401, "InvalidAuthenticationToken", "Access token validation failure.")


async def test_client_request_id_is_echoed(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        response = await client.get(
            f"{sandbox.urls.graph}/v1.0/users/nobody@business.com",
            headers={**bearer(sandbox.app_token("graph")), "client-request-id": "abc-123"},
        )
    assert_error(response, 404, "Request_ResourceNotFound")
    assert response.json()["error"]["innerError"]["client-request-id"] == "abc-123"
    assert response.headers["client-request-id"] == "abc-123"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("mail eq 'alice@business.com'", ["alice@business.com"]),
        ("userPrincipalName eq 'BOB@business.com'", ["bob@business.com"]),
        ("proxyAddresses/any(p:p eq 'smtp:henry@business.com')", ["henry@business.com"]),
        ("startswith(displayName,'Iv') and accountEnabled eq true", ["ivan@business.com", "ivy@business.com"]),
        (
            "mail eq 'alice@business.com' or (mail eq 'frank@business.com')",
            ["alice@business.com", "frank@business.com"],
        ),
        ("displayName eq 'O''Brien'", []),
        ("userType eq 'Guest'", ["partner_fabrikam.com#EXT#@businesscom.onmicrosoft.com"]),
    ],
)
async def test_users_filter(sandbox: Sandbox, query: str, expected: list[str]) -> None:
    async with http(sandbox) as client:
        response = await client.get(
            f"{sandbox.urls.graph}/v1.0/users",
            params={"$filter": query, "$select": "userPrincipalName"},
            headers=bearer(sandbox.app_token("graph")),
        )
    assert response.status_code == 200, response.text
    assert sorted(u["userPrincipalName"] for u in response.json()["value"]) == expected


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("companyName eq 'x'", "Request_UnsupportedQuery"),
        ("mail ne 'x'", "Request_UnsupportedQuery"),
        ("not (mail eq 'x')", "Request_UnsupportedQuery"),
        ("mail eq", "BadRequest"),
        ("mail eq 'unterminated", "BadRequest"),
        ("startswith(displayName)", "BadRequest"),
        ("__import__('os') eq 1", "BadRequest"),
        ("__class__ eq 'x'", "Request_UnsupportedQuery"),
    ],
)
async def test_users_filter_errors(sandbox: Sandbox, query: str, code: str) -> None:
    async with http(sandbox) as client:
        response = await client.get(
            f"{sandbox.urls.graph}/v1.0/users", params={"$filter": query}, headers=bearer(sandbox.app_token("graph"))
        )
    assert_error(response, 400, code)


async def test_users_paging_with_next_link(sandbox: Sandbox) -> None:
    seen: list[str] = []
    async with http(sandbox) as client:
        url: str | None = f"{sandbox.urls.graph}/v1.0/users?$top=5&$select=id"
        pages = 0
        while url:
            response = await client.get(url, headers=bearer(sandbox.app_token("graph")))
            body = response.json()
            assert set(body["value"][0]) == {"id"}
            seen += [u["id"] for u in body["value"]]
            url = body.get("@odata.nextLink")
            pages += 1
    assert pages == 4
    assert sorted(seen) == sorted(sandbox.tenant.users)


async def test_default_user_properties_and_select_validation(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        user = (
            await client.get(
                f"{sandbox.urls.graph}/v1.0/users/alice@business.com", headers=bearer(sandbox.app_token("graph"))
            )
        ).json()
        bad = await client.get(
            f"{sandbox.urls.graph}/v1.0/users/alice@business.com?$select=shoeSize",
            headers=bearer(sandbox.app_token("graph")),
        )
    assert "proxyAddresses" not in user and user["userPrincipalName"] == "alice@business.com"
    assert_error(bad, 400, "Request_BadRequest")


async def test_users_need_a_directory_permission(sandbox: Sandbox) -> None:
    sandbox.app.graph_roles.discard("User.Read.All")
    async with http(sandbox) as client:
        response = await client.get(f"{sandbox.urls.graph}/v1.0/users", headers=bearer(sandbox.app_token("graph")))
    assert_error(response, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


async def test_send_mail_outcomes(sandbox: Sandbox) -> None:
    url = f"{sandbox.urls.graph}/v1.0/users/{{}}/sendMail"
    token = bearer(sandbox.app_token("graph"))
    async with http(sandbox) as client:
        denied = await client.post(
            url.format("admin@business.com"), json=message("x", "bob@business.com", "alice@business.com"), headers=token
        )
        send_as = await client.post(
            url.format("admin@business.com"),
            json=message("as henry", "bob@business.com", "henry@business.com"),
            headers=token,
        )
        on_behalf = await client.post(
            url.format("admin@business.com"),
            json=message("for frank", "bob@business.com", "frank@business.com"),
            headers=token,
        )
        full_access_only = await client.post(
            url.format("admin@business.com"), json=message("x", "bob@business.com", "grace@business.com"), headers=token
        )
        unknown = await client.post(
            url.format("nobody@business.com"), json=message("x", "bob@business.com"), headers=token
        )
        guest = await client.post(
            url.format("partner_fabrikam.com#EXT#@businesscom.onmicrosoft.com".replace("#", "%23")),
            json=message("x", "bob@business.com"),
            headers=token,
        )
        no_recipients = await client.post(
            url.format("erin@business.com"), json={"message": {"subject": "x"}}, headers=token
        )
    assert_error(denied, 403, "ErrorSendAsDenied", SEND_AS_DENIED)
    assert_error(full_access_only, 403, "ErrorSendAsDenied", SEND_AS_DENIED)
    assert send_as.status_code == on_behalf.status_code == 202
    assert send_as.content == b""
    assert_error(unknown, 404, "ErrorInvalidUser", "The requested user 'nobody@business.com' is invalid.")
    assert_error(
        guest,
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )
    assert_error(no_recipients, 400, "ErrorInvalidRecipients")
    bob = sandbox.tenant.user("bob@business.com")
    assert bob is not None
    stamped = {m.subject: (m.from_address, m.sender_address) for m in sandbox.tenant.messages[bob.id]}
    assert stamped == {
        "as henry": ("henry@business.com", "henry@business.com"),
        "for frank": ("frank@business.com", "admin@business.com"),
    }


async def test_send_as_wins_over_send_on_behalf(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        await client.post(
            f"{sandbox.urls.exchange}/adminapi/beta/{sandbox.tenant.id}/InvokeCommand",
            json={
                "CmdletInput": {
                    "CmdletName": "Add-RecipientPermission",
                    "Parameters": {
                        "Identity": "frank@business.com",
                        "Trustee": "admin@business.com",
                        "AccessRights": ["SendAs"],
                    },
                }
            },
            headers=bearer(sandbox.app_token("exchange")),
        )
        response = await client.post(
            f"{sandbox.urls.graph}/v1.0/users/admin@business.com/sendMail",
            json=message("both", "bob@business.com", "frank@business.com"),
            headers=bearer(sandbox.app_token("graph")),
        )
    assert response.status_code == 202
    bob = sandbox.tenant.user("bob@business.com")
    assert bob is not None
    assert sandbox.tenant.messages[bob.id][-1].sender_address == "frank@business.com"


async def test_raop_and_missing_permission(sandbox: Sandbox) -> None:
    scanner_app = next(a for a in sandbox.tenant.apps.values() if a.name == "legacy-scanner")
    token = bearer(sandbox.app_token("graph", scanner_app))
    async with http(sandbox) as client:
        blocked = await client.post(
            f"{sandbox.urls.graph}/v1.0/users/alice@business.com/sendMail",
            json=message("x", "bob@business.com"),
            headers=token,
        )
        allowed = await client.post(
            f"{sandbox.urls.graph}/v1.0/users/scanner@business.com/sendMail",
            json=message("scan", "bob@business.com"),
            headers=token,
        )
        sandbox.app.graph_roles.discard("Mail.Send")
        no_permission = await client.post(
            f"{sandbox.urls.graph}/v1.0/users/erin@business.com/sendMail",
            json=message("x", "bob@business.com"),
            headers=bearer(sandbox.app_token("graph")),
        )
    assert_error(
        blocked,
        403,
        "ErrorAccessDenied",
        "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
    )
    assert allowed.status_code == 202
    assert_error(no_permission, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


async def test_delegated_me_send_mail(sandbox: Sandbox) -> None:
    token = bearer(sandbox.user_token("graph", "erin@business.com", ["Mail.Send"]))
    async with http(sandbox) as client:
        own = await client.post(
            f"{sandbox.urls.graph}/v1.0/me/sendMail", json=message("mine", "bob@business.com"), headers=token
        )
        other = await client.post(
            f"{sandbox.urls.graph}/v1.0/me/sendMail",
            json=message("x", "bob@business.com", "alice@business.com"),
            headers=token,
        )
        me = await client.get(
            f"{sandbox.urls.graph}/v1.0/me",
            headers=bearer(sandbox.user_token("graph", "erin@business.com", ["User.Read"])),
        )
    assert own.status_code == 202
    assert_error(other, 403, "ErrorSendAsDenied", SEND_AS_DENIED)
    assert me.json()["userPrincipalName"] == "erin@business.com"


async def test_messages_filter_select_order_and_permission(sandbox: Sandbox) -> None:
    token = bearer(sandbox.app_token("graph"))
    async with http(sandbox) as client:
        for subject in ("first", "second", "it's third"):
            await client.post(
                f"{sandbox.urls.graph}/v1.0/users/erin@business.com/sendMail",
                json=message(subject, "bob@business.com"),
                headers=token,
            )
            sandbox.advance(60)
        listed = await client.get(
            f"{sandbox.urls.graph}/v1.0/users/bob@business.com/messages",
            params={"$select": "subject,internetMessageId,from", "$top": "2", "$orderby": "receivedDateTime desc"},
            headers=token,
        )
        body = listed.json()
        quoted = await client.get(
            f"{sandbox.urls.graph}/v1.0/users/bob@business.com/messages",
            params={"$filter": "subject eq 'it''s third'"},
            headers=token,
        )
        by_id = await client.get(
            f"{sandbox.urls.graph}/v1.0/users/bob@business.com/messages",
            params={"$filter": f"internetMessageId eq '{body['value'][1]['internetMessageId']}'"},
            headers=token,
        )
        more = await client.get(body["@odata.nextLink"], headers=token)
        sandbox.app.graph_roles.discard("Mail.ReadBasic.All")
        forbidden = await client.get(
            f"{sandbox.urls.graph}/v1.0/users/bob@business.com/messages", headers=bearer(sandbox.app_token("graph"))
        )
    assert [m["subject"] for m in body["value"]] == ["it's third", "second"]
    assert set(body["value"][0]) == {"@odata.etag", "id", "subject", "internetMessageId", "from"}
    assert [m["subject"] for m in quoted.json()["value"]] == ["it's third"]
    assert "body" not in quoted.json()["value"][0]  # Mail.ReadBasic.All hides the body
    assert [m["subject"] for m in by_id.json()["value"]] == ["second"]
    assert [m["subject"] for m in more.json()["value"]] == ["first"]
    assert_error(forbidden, 403, "ErrorAccessDenied")


async def test_mailbox_settings(sandbox: Sandbox) -> None:
    sandbox.app.graph_roles.add("MailboxSettings.Read")
    token = bearer(sandbox.app_token("graph"))
    async with http(sandbox) as client:
        shared = await client.get(f"{sandbox.urls.graph}/v1.0/users/sales@business.com/mailboxSettings", headers=token)
        none = await client.get(
            f"{sandbox.urls.graph}/v1.0/users/c964fddd-a462-4157-9c18-35e2abbe556e/mailboxSettings", headers=token
        )
    assert shared.json()["userPurpose"] == "shared"
    assert_error(none, 404, "MailboxNotEnabledForRESTAPI")


async def test_batch(sandbox: Sandbox) -> None:
    token = bearer(sandbox.app_token("graph"))
    requests = [
        {"id": "1", "method": "GET", "url": "/users/alice@business.com?$select=displayName"},
        {
            "id": "2",
            "method": "POST",
            "url": "/users/admin@business.com/sendMail",
            "headers": {"Content-Type": "application/json"},
            "body": message("x", "bob@business.com", "alice@business.com"),
        },
        {"id": "3", "method": "GET", "url": "/users/bob@business.com", "dependsOn": ["2"]},
        {
            "id": "4",
            "method": "POST",
            "url": "/users/erin@business.com/sendMail",
            "headers": {"Content-Type": "application/json"},
            "body": message("batched", "bob@business.com"),
        },
    ]
    async with http(sandbox) as client:
        response = await client.post(f"{sandbox.urls.graph}/v1.0/$batch", json={"requests": requests}, headers=token)
        too_many = await client.post(
            f"{sandbox.urls.graph}/v1.0/$batch",
            json={"requests": [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)]},
            headers=token,
        )
        duplicate = await client.post(
            f"{sandbox.urls.graph}/v1.0/$batch",
            json={
                "requests": [
                    {"id": "a", "method": "GET", "url": "/users"},
                    {"id": "a", "method": "GET", "url": "/users"},
                ]
            },
            headers=token,
        )
    assert response.status_code == 200
    statuses = {r["id"]: r["status"] for r in response.json()["responses"]}
    assert statuses == {"1": 200, "2": 403, "3": 424, "4": 202}
    items = {r["id"]: r for r in response.json()["responses"]}
    assert items["1"]["body"]["displayName"] == "Alice Archer"
    assert items["2"]["body"]["error"]["code"] == "ErrorSendAsDenied"
    assert "body" not in items["4"]
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "BadRequest"
    assert duplicate.status_code == 400


async def test_batch_items_are_throttled_one_by_one(sandbox: Sandbox) -> None:
    token = bearer(sandbox.app_token("graph"))
    sandbox.faults.set("graph", throttle_burst=1, retry_after_s=2)
    async with http(sandbox) as client:
        response = await client.post(
            f"{sandbox.urls.graph}/v1.0/$batch",
            json={
                "requests": [
                    {"id": "a", "method": "GET", "url": "/users/alice@business.com"},
                    {"id": "b", "method": "GET", "url": "/users/bob@business.com"},
                ]
            },
            headers=token,
        )
    items = {r["id"]: r for r in response.json()["responses"]}
    assert response.status_code == 200
    assert items["a"]["status"] == 429
    assert items["a"]["headers"]["Retry-After"] == "2,120"  # live shape: a list, the first value counts
    assert items["a"]["body"]["error"]["code"] == "ApplicationThrottled"
    assert items["b"]["status"] == 200


async def test_mailbox_concurrency_limit(sandbox: Sandbox) -> None:
    sandbox.faults.set("graph", latency_ms=300)
    token = bearer(sandbox.app_token("graph"))
    async with http(sandbox) as client:
        responses = await asyncio.gather(
            *(client.get(f"{sandbox.urls.graph}/v1.0/users/bob@business.com/messages", headers=token) for _ in range(5))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 200, 429]
    throttled = next(r for r in responses if r.status_code == 429)
    assert_error(throttled, 429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
    first, _, longest = throttled.headers["Retry-After"].partition(",")
    assert first.isdigit() and longest == "120"


async def test_send_mail_accepts_base64_mime(sandbox: Sandbox) -> None:
    mime = EmailMessage()
    mime["From"] = "henry@business.com"
    mime["To"] = "bob@business.com"
    mime["Subject"] = "mime test"
    mime.set_content("sent as MIME")
    headers = {**bearer(sandbox.app_token("graph")), "Content-Type": "text/plain"}
    async with http(sandbox) as client:
        accepted = await client.post(
            f"{sandbox.urls.graph}/v1.0/users/admin@business.com/sendMail",
            content=base64.b64encode(mime.as_bytes()),
            headers=headers,
        )
        invalid = await client.post(
            f"{sandbox.urls.graph}/v1.0/users/admin@business.com/sendMail", content=b"%%%", headers=headers
        )
    assert accepted.status_code == 202
    assert_error(invalid, 400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
    bob = sandbox.tenant.user("bob@business.com")
    assert bob is not None
    [received] = sandbox.tenant.messages[bob.id]
    assert (received.subject, received.from_address, received.body.strip()) == (
        "mime test",
        "henry@business.com",
        "sent as MIME",
    )


async def test_refresh_token_grant(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        code = (
            await client.post(
                f"{sandbox.authority}/oauth2/v2.0/devicecode",
                data={"client_id": sandbox.app.client_id, "scope": "Mail.Send offline_access"},
            )
        ).json()
        await client.post(
            f"{sandbox.urls.admin}/_sandbox/devicecode/approve",
            json={"user_code": code["user_code"], "upn": "erin@business.com"},
        )
        token_url = f"{sandbox.authority}/oauth2/v2.0/token"
        first = (
            await client.post(
                token_url,
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                    "client_id": sandbox.app.client_id,
                    "device_code": code["device_code"],
                },
            )
        ).json()
        refreshed = await client.post(
            token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": sandbox.app.client_id,
                "refresh_token": first["refresh_token"],
            },
        )
        reused = await client.post(
            token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": sandbox.app.client_id,
                "refresh_token": first["refresh_token"],
            },
        )
        me = await client.get(
            f"{sandbox.urls.graph}/v1.0/me/messages", headers=bearer(refreshed.json()["access_token"])
        )
    assert first["scope"] == "https://graph.microsoft.com/Mail.Send"
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != first["refresh_token"]
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert me.status_code == 403  # Mail.Send does not read mail

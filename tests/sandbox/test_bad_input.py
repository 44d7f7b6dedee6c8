"""Malformed requests get the service's own 4xx error, never a 500 or a hang."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.runtime import Sandbox
from tests.sandbox.helpers import bearer, http

GRAPH_CASES: list[tuple[str, str, Any]] = [
    ("POST", "/v1.0/users/erin@business.com/sendMail", b"not json"),
    ("POST", "/v1.0/users/erin@business.com/sendMail", [1, 2]),
    ("POST", "/v1.0/users/erin@business.com/sendMail", {"message": {"toRecipients": "bob@business.com"}}),
    ("POST", "/v1.0/users/erin@business.com/sendMail", {"message": {"toRecipients": [{"emailAddress": 5}]}}),
    (
        "POST",
        "/v1.0/users/erin@business.com/sendMail",
        {"message": {"toRecipients": [{"emailAddress": {"address": "x@y"}}], "from": "me"}},
    ),
    ("POST", "/v1.0/$batch", {"requests": [{"id": "1", "method": "GET", "url": "/users", "headers": ["x"]}]}),
    ("POST", "/v1.0/$batch", {"requests": [{"id": "1", "url": "https://evil.example/users"}]}),
    ("POST", "/v1.0/$batch", {"requests": [{"id": "1", "url": "/users", "dependsOn": ["2"]}]}),
    ("POST", "/v1.0/$batch", {"requests": "all"}),
    ("GET", "/v1.0/users?$top=0", None),
    ("GET", "/v1.0/users?$skiptoken=%%%", None),
    ("GET", "/v1.0/users/erin@business.com/messages?$orderby=subject", None),
    ("GET", "/v1.0/users/erin@business.com/messages?$top=x", None),
    ("GET", "/v1.0/users/erin@business.com/messages?$filter=body eq 'x'", None),
    ("GET", "/v1.0/users/erin@business.com/mailFolders/archive/messages", None),
    ("GET", "/v1.0/groups", None),
    ("DELETE", "/v1.0/users/erin@business.com/sendMail", None),
]


@pytest.mark.parametrize(("method", "path", "body"), GRAPH_CASES)
async def test_graph_rejects_bad_requests_cleanly(sandbox: Sandbox, method: str, path: str, body: Any) -> None:
    sandbox.app.graph_roles.add("Mail.Read")
    async with http(sandbox) as client:
        kwargs: dict[str, Any] = (
            {"content": body} if isinstance(body, bytes) else {"json": body} if body is not None else {}
        )
        response = await client.request(
            method, f"{sandbox.urls.graph}{path}", headers=bearer(sandbox.app_token("graph")), **kwargs
        )
    assert 400 <= response.status_code < 500 or (response.status_code == 200 and "$batch" in path), response.text
    if response.status_code == 200:
        assert all(item["status"] < 500 for item in response.json()["responses"])
    else:
        assert set(response.json()["error"]) >= {"code", "message", "innerError"}


EXCHANGE_CASES: list[Any] = [
    b"{",
    {"CmdletInput": "Get-Mailbox"},
    {"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": ["Identity"]}},
    {"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"Identity": 42}}},
    {"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"ResultSize": "lots"}}},
    {"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"Filter": "Alias -eq 'x' -and"}}},
    {
        "CmdletInput": {
            "CmdletName": "Set-Mailbox",
            "Parameters": {"Identity": "alice@business.com", "GrantSendOnBehalfTo": {"replace": "x"}},
        }
    },
    {
        "CmdletInput": {
            "CmdletName": "Set-Mailbox",
            "Parameters": {"Identity": "alice@business.com", "GrantSendOnBehalfTo": [7]},
        }
    },
    {
        "CmdletInput": {
            "CmdletName": "Add-RecipientPermission",
            "Parameters": {"Identity": "alice@business.com", "Trustee": "admin@business.com", "AccessRights": {"a": 1}},
        }
    },
    {
        "CmdletInput": {
            "CmdletName": "Add-MailboxPermission",
            "Parameters": {
                "Identity": "alice@business.com",
                "User": "admin@business.com",
                "AccessRights": ["Everything"],
            },
        }
    },
    {
        "CmdletInput": {
            "CmdletName": "Set-CASMailbox",
            "Parameters": {"Identity": "alice@business.com", "SmtpClientAuthenticationDisabled": "no"},
        }
    },
    {"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"Identity": "Alice Archer", "Anr": 3}}},
]


@pytest.mark.parametrize("body", EXCHANGE_CASES)
async def test_exchange_rejects_bad_requests_cleanly(sandbox: Sandbox, body: Any) -> None:
    url = f"{sandbox.urls.exchange}/adminapi/beta/{sandbox.tenant.id}/InvokeCommand"
    async with http(sandbox) as client:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = await client.post(url, headers=bearer(sandbox.app_token("exchange")), **kwargs)
    assert 400 <= response.status_code < 500, response.text
    internal = response.json()["error"]["innererror"]["internalexception"]
    assert internal["type"] and internal["message"]


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"grant_type": "password"},
        {"grant_type": "client_credentials"},
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": "3f6e8a4b-9d2c-4e1f-8b7a-5c6d4e3f2a10",
            "device_code": "x",
        },
    ],
)
async def test_sign_in_rejects_bad_requests_cleanly(sandbox: Sandbox, form: dict[str, str]) -> None:
    async with http(sandbox) as client:
        response = await client.post(f"{sandbox.authority}/oauth2/v2.0/token", data=form)
    assert 400 <= response.status_code < 500
    assert response.json()["error_description"].startswith("AADSTS")

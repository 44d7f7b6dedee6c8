"""Sign-in: the real msal and azure-identity against the sandbox authority, and Entra's error bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import jwt
import msal
import pytest
import requests
from azure.identity.aio import ClientSecretCredential

from sandbox.runtime import Sandbox
from sandbox.testing import requests_session
from tests.sandbox.helpers import http

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
EXCHANGE_SCOPE = "https://outlook.office365.com/.default"


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def session(sandbox: Sandbox) -> Iterator[requests.Session]:
    with requests_session(sandbox) as opened:
        yield opened


async def confidential(
    sandbox: Sandbox, session: requests.Session, credential: Any, client_id: str | None = None
) -> msal.ConfidentialClientApplication:
    """A fresh msal app per test (msal caches and throttles itself); built in a thread because it reads the
    OpenID configuration in its constructor, from this event loop's server."""
    return await asyncio.to_thread(
        msal.ConfidentialClientApplication,
        client_id or sandbox.app.client_id,
        client_credential=credential,
        authority=sandbox.authority,
        instance_discovery=False,
        http_client=session,
    )


async def test_msal_client_secret_gets_app_token_with_roles(sandbox: Sandbox, session: requests.Session) -> None:
    app = await confidential(sandbox, session, sandbox.app.secrets[0])
    result = await asyncio.to_thread(app.acquire_token_for_client, [GRAPH_SCOPE])
    assert result["token_type"] == "Bearer"
    token = claims(result["access_token"])
    assert token["aud"] == "https://graph.microsoft.com"
    assert token["tid"] == sandbox.tenant.id
    assert token["appid"] == token["azp"] == sandbox.app.client_id
    assert token["oid"] == sandbox.app.service_principal_id
    assert token["idtyp"] == "app"
    assert sorted(token["roles"]) == ["Mail.ReadBasic.All", "Mail.Send", "User.Read.All"]
    assert token["exp"] - token["iat"] == result["expires_in"] == 3599
    assert jwt.get_unverified_header(result["access_token"])["kid"]


async def test_msal_certificate_assertion_for_exchange(sandbox: Sandbox, session: requests.Session) -> None:
    pem = sandbox.app_certificate_path.read_text()
    app = await confidential(sandbox, session, {"private_key": pem, "public_certificate": pem})
    result = await asyncio.to_thread(app.acquire_token_for_client, [EXCHANGE_SCOPE])
    token = claims(result["access_token"])
    assert token["aud"] == "https://outlook.office365.com"
    assert sorted(token["roles"]) == ["Exchange.ManageAsApp", "SMTP.SendAsApp"]


async def test_msal_certificate_with_sha1_thumbprint(sandbox: Sandbox, session: requests.Session) -> None:
    cert = sandbox.app.certificates[0]
    assert cert.private_key_pem is not None
    app = await confidential(
        sandbox, session, {"private_key": cert.private_key_pem, "thumbprint": cert.thumbprint_sha1}
    )
    result = await asyncio.to_thread(app.acquire_token_for_client, [GRAPH_SCOPE])
    assert "access_token" in result, result


async def test_unregistered_certificate_is_refused(sandbox: Sandbox, session: requests.Session) -> None:
    from sandbox.tls import generated_app_certificate

    other = generated_app_certificate("someone-else")
    assert other.private_key_pem is not None
    app = await confidential(sandbox, session, {"private_key": other.private_key_pem, "public_certificate": other.pem})
    result = await asyncio.to_thread(app.acquire_token_for_client, [GRAPH_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS700027: The certificate with identifier used to sign")
    assert result["error_codes"] == [700027]


async def test_azure_identity_async_client_secret(sandbox: Sandbox) -> None:
    credential = ClientSecretCredential(
        sandbox.tenant.id,
        sandbox.app.client_id,
        sandbox.app.secrets[0],
        authority=sandbox.urls.login,
        disable_instance_discovery=True,
        connection_verify=str(sandbox.ca_path),
    )
    async with credential:
        token = await credential.get_token(EXCHANGE_SCOPE)
    assert claims(token.token)["aud"] == "https://outlook.office365.com"
    assert token.expires_on > 0


@pytest.mark.parametrize(
    ("form", "status", "error", "code", "start"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215, "AADSTS7000215: Invalid client secret provided."),
        (
            {"client_id": "00000000-1111-2222-3333-444444444444"},
            400,
            "unauthorized_client",
            700016,
            "AADSTS700016: Application with identifier '00000000-1111-2222-3333-444444444444' was not found",
        ),
        ({"scope": "User.Read"}, 400, "invalid_scope", 70011, "AADSTS70011: "),
        (
            {"scope": "https://example.org/.default"},
            400,
            "invalid_resource",
            500011,
            "AADSTS500011: The resource principal named https://example.org was not found",
        ),
    ],
)
async def test_token_errors_have_entra_shape(
    sandbox: Sandbox, form: dict[str, str], status: int, error: str, code: int, start: str
) -> None:
    data = {
        "grant_type": "client_credentials",
        "client_id": sandbox.app.client_id,
        "client_secret": sandbox.app.secrets[0],
        "scope": GRAPH_SCOPE,
    } | form
    async with http(sandbox) as client:
        response = await client.post(f"{sandbox.authority}/oauth2/v2.0/token", data=data)
    body = response.json()
    assert response.status_code == status
    assert body["error"] == error
    assert body["error_description"].startswith(start)
    assert body["error_codes"] == [code]
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)
    assert f"Trace ID: {body['trace_id']}" in body["error_description"]


async def test_unknown_tenant_is_aadsts90002(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        response = await client.get(f"{sandbox.urls.login}/contoso.example/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert response.json()["error_description"].startswith("AADSTS90002: Tenant 'contoso.example' not found.")


async def test_scope_may_name_the_sandbox_service_but_audience_is_canonical(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        for base, audience in (
            (sandbox.urls.graph, "https://graph.microsoft.com"),
            (sandbox.urls.exchange, "https://outlook.office365.com"),
        ):
            response = await client.post(
                f"{sandbox.authority}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": sandbox.app.client_id,
                    "client_secret": sandbox.app.secrets[0],
                    "scope": f"{base}/.default",
                },
            )
            assert claims(response.json()["access_token"])["aud"] == audience
        for guid, audience in (
            ("00000003-0000-0000-c000-000000000000", "https://graph.microsoft.com"),
            ("00000002-0000-0ff1-ce00-000000000000", "https://outlook.office365.com"),
        ):
            response = await client.post(
                f"{sandbox.urls.login}/business.com/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": sandbox.app.client_id,
                    "client_secret": sandbox.app.secrets[0],
                    "scope": f"{guid}/.default",
                },
            )
            assert claims(response.json()["access_token"])["aud"] == audience


async def test_token_lifetime_setting_and_discovery_endpoints(sandbox: Sandbox) -> None:
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(token_lifetime_seconds=60)
    async with http(sandbox) as client:
        discovery = (await client.get(f"{sandbox.urls.login}/common/discovery/instance")).json()
        keys = (await client.get(f"{sandbox.authority}/discovery/v2.0/keys")).json()
        response = await client.post(
            f"{sandbox.authority}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": sandbox.app.client_id,
                "client_secret": sandbox.app.secrets[0],
                "scope": GRAPH_SCOPE,
            },
        )
    assert discovery["tenant_discovery_endpoint"].endswith("/v2.0/.well-known/openid-configuration")
    token = response.json()["access_token"]
    assert response.json()["expires_in"] == 60
    key = jwt.PyJWK(keys["keys"][0])
    assert (
        jwt.decode(token, key.key, algorithms=["RS256"], audience="https://graph.microsoft.com")["tid"]
        == sandbox.tenant.id
    )


async def test_device_code_pending_until_approved(sandbox: Sandbox, session: requests.Session) -> None:
    app = await asyncio.to_thread(
        msal.PublicClientApplication,
        sandbox.app.client_id,
        authority=sandbox.authority,
        instance_discovery=False,
        http_client=session,
    )
    flow = await asyncio.to_thread(app.initiate_device_flow, ["https://outlook.office.com/SMTP.Send"])
    assert "user_code" in flow, flow
    async with http(sandbox) as client:
        pending = await client.post(
            f"{sandbox.authority}/oauth2/v2.0/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": sandbox.app.client_id,
                "device_code": flow["device_code"],
            },
        )
        assert pending.status_code == 400
        assert pending.json()["error"] == "authorization_pending"
        assert pending.json()["error_description"].startswith("AADSTS70016:")
        approved = await client.post(
            f"{sandbox.urls.admin}/_sandbox/devicecode/approve",
            json={"user_code": flow["user_code"], "upn": "erin@business.com"},
        )
        assert approved.status_code == 200
    result = await asyncio.to_thread(app.acquire_token_by_device_flow, flow)
    token = claims(result["access_token"])
    assert token["upn"] == "erin@business.com"
    assert token["scp"] == "SMTP.Send"
    assert token["aud"] == "https://outlook.office365.com"
    assert token["idtyp"] == "user"


async def test_login_faults_answer_with_entra_body(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        patched = await client.patch(
            f"{sandbox.urls.admin}/_sandbox/faults/login", json={"throttle_burst": 1, "retry_after_s": 7}
        )
        assert patched.status_code == 200
        response = await client.post(f"{sandbox.authority}/oauth2/v2.0/token", data={})
        again = await client.post(f"{sandbox.authority}/oauth2/v2.0/token", data={})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"] == "temporarily_unavailable"
    assert again.status_code == 400


async def test_msal_with_the_sandbox_instance_discovery_endpoint(sandbox: Sandbox, session: requests.Session) -> None:
    app = await asyncio.to_thread(
        msal.ConfidentialClientApplication,
        sandbox.app.client_id,
        client_credential=sandbox.app.secrets[0],
        authority=f"{sandbox.urls.login}/business.com",
        instance_discovery=f"{sandbox.urls.login}/common/discovery/instance",
        http_client=session,
    )
    result = await asyncio.to_thread(app.acquire_token_for_client, [EXCHANGE_SCOPE])
    assert claims(result["access_token"])["tid"] == sandbox.tenant.id

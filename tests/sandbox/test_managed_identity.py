"""The sandbox's secretless sign-in over real sockets: the App Service managed identity endpoint (its response
shape, its refusals) and federated client assertions at the token endpoint, whose tokens Graph and the Exchange
admin API accept with the app's roles."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import jwt

from sandbox.managed_identity import DEFAULT_SUBJECT, FEDERATED_AUDIENCE
from sandbox.runtime import Sandbox
from tests.sandbox.helpers import bearer, http, invoke

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


async def identity_get(sandbox: Sandbox, header: str | None, **query: str) -> httpx.Response:
    headers = {"X-IDENTITY-HEADER": header} if header is not None else {}
    params = {"api-version": "2019-08-01", **query}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.get(sandbox.urls.identity_endpoint, params=params, headers=headers)


async def test_identity_endpoint_answers_as_app_service_and_graph_and_exchange_accept_the_tokens(
    sandbox: Sandbox,
) -> None:
    assert sandbox.urls.identity_endpoint.startswith("http://127.0.0.1:")  # plain HTTP on loopback, as on the platform
    answer = await identity_get(sandbox, sandbox.managed_identity.header, resource="https://graph.microsoft.com")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert body["resource"] == "https://graph.microsoft.com" and body["token_type"] == "Bearer"
    assert body["client_id"] == sandbox.app.client_id  # the system-assigned identity is the product app
    token = claims(body["access_token"])
    assert isinstance(body["expires_on"], str) and int(body["expires_on"]) == token["exp"]
    assert token["aud"] == "https://graph.microsoft.com" and token["appid"] == sandbox.app.client_id
    assert sorted(token["roles"]) == sorted(sandbox.app.graph_roles)

    exchange = await identity_get(
        sandbox, sandbox.managed_identity.header, resource=sandbox.urls.exchange, client_id=sandbox.app.client_id
    )
    assert exchange.status_code == 200 and exchange.json()["resource"] == sandbox.urls.exchange
    async with http(sandbox) as client:
        users = await client.get(
            f"{sandbox.urls.graph}/v1.0/users/alice@business.com", headers=bearer(body["access_token"])
        )
        assert users.status_code == 200 and users.json()["userPrincipalName"] == "alice@business.com"
        mailbox = await invoke(client, sandbox, "Get-Mailbox", exchange.json()["access_token"], Identity="alice")
        assert mailbox.status_code == 200, mailbox.text
    asked = sandbox.managed_identity.requests
    assert [r["header_ok"] for r in asked] == ["true", "true"] and asked[1]["client_id"] == sandbox.app.client_id


async def test_identity_endpoint_refusals(sandbox: Sandbox) -> None:
    header = sandbox.managed_identity.header
    for sent in ("wrong-header", None):
        refused = await identity_get(sandbox, sent, resource="https://graph.microsoft.com")
        assert refused.status_code == 401 and refused.headers["Content-Type"].startswith("text/plain")
        assert "access_token" not in refused.text and header not in refused.text
    cases = [
        ({"resource": "https://graph.microsoft.com", "api-version": "2017-09-01"}, "api-version"),
        ({"resource": "https://vault.azure.net"}, "AADSTS500011"),
        ({"resource": "https://graph.microsoft.com", "client_id": "00000000-0000-0000-0000-000000000001"}, "Unable"),
    ]
    for query, said in cases:
        answer = await identity_get(sandbox, header, **query)
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert set(body) == {"statusCode", "message", "correlationId"} and said in body["message"]


async def test_login_faults_reach_the_identity_endpoint(sandbox: Sandbox) -> None:
    sandbox.faults.set("login", throttle_burst=1, retry_after_s=2)
    throttled = await identity_get(sandbox, sandbox.managed_identity.header, resource="https://graph.microsoft.com")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert set(throttled.json()) == {"statusCode", "message", "correlationId"}
    again = await identity_get(sandbox, sandbox.managed_identity.header, resource="https://graph.microsoft.com")
    assert again.status_code == 200


def assertion_form(
    sandbox: Sandbox, assertion: str, scope: str = "https://graph.microsoft.com/.default"
) -> dict[str, str]:
    return {
        "client_id": sandbox.app.client_id,
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }


async def test_federated_assertion_signs_the_app_in_and_entra_refuses_the_others(sandbox: Sandbox) -> None:
    token_url = f"{sandbox.authority}/oauth2/v2.0/token"
    good = sandbox.federation.mint()
    assert claims(good)["iss"] == sandbox.federation.issuer and claims(good)["sub"] == DEFAULT_SUBJECT
    async with http(sandbox) as client:
        issued = await client.post(
            token_url, data=assertion_form(sandbox, good, "https://outlook.office365.com/.default")
        )
        assert issued.status_code == 200, issued.text
        access = issued.json()["access_token"]
        assert claims(access)["appid"] == sandbox.app.client_id
        assert sorted(claims(access)["roles"]) == sorted(sandbox.app.exchange_roles)
        mailbox = await invoke(client, sandbox, "Get-Mailbox", access, Identity="alice")
        assert mailbox.status_code == 200, mailbox.text

        head, _, signature = good.split(".")
        forged_claims = {**claims(good), "sub": "system:serviceaccount:other:other"}
        forged_payload = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).decode().rstrip("=")
        refusals = {
            700211: sandbox.federation.mint(issuer="https://oidc.untrusted.example/"),
            700024: sandbox.federation.mint(lifetime_seconds=-600),
            700212: sandbox.federation.mint(audience="api://SomethingElse"),
            700213: sandbox.federation.mint(subject="system:serviceaccount:default:default"),
            700027: f"{head}.{forged_payload}.{signature}",
            50027: "not-a-jwt",
        }
        for number, assertion in refusals.items():
            refused = await client.post(token_url, data=assertion_form(sandbox, assertion))
            body = refused.json()
            assert refused.status_code in (400, 401) and body["error_codes"] == [number], (number, body)
            assert "access_token" not in body

        sandbox.advance(3601)  # the sandbox clock moves past the token's expiry: Entra's clock decides
        late = await client.post(token_url, data=assertion_form(sandbox, good))
        assert late.json()["error_codes"] == [700024]


async def test_admin_api_mints_a_token_file_and_serves_the_issuer_documents(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:
        minted = await client.post(
            f"{sandbox.urls.admin}/_sandbox/federated-token", json={"file": "token", "lifetime_seconds": 600}
        )
        assert minted.status_code == 200, minted.text
        body = minted.json()
        path = sandbox.workdir / "token"
        assert body["path"] == str(path) and path.read_text(encoding="utf-8") == body["token"]
        assert path.stat().st_mode & 0o077 == 0
        assert (body["issuer"], body["subject"], body["audience"]) == (
            sandbox.federation.issuer,
            DEFAULT_SUBJECT,
            FEDERATED_AUDIENCE,
        )
        discovery = (await client.get(f"{sandbox.federation.issuer}/.well-known/openid-configuration")).json()
        assert discovery["issuer"] == sandbox.federation.issuer
        keys = (await client.get(discovery["jwks_uri"])).json()["keys"]
        public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(keys[0]))
        verified = jwt.decode(body["token"], public, algorithms=["RS256"], audience=FEDERATED_AUDIENCE)  # type: ignore[arg-type]
        assert verified["sub"] == DEFAULT_SUBJECT
        for bad in ({"file": "../escape"}, {"lifetime_seconds": "long"}, {"colour": "red"}):
            refused = await client.post(f"{sandbox.urls.admin}/_sandbox/federated-token", json=bad)
            assert refused.status_code == 400 and "error" in refused.json()

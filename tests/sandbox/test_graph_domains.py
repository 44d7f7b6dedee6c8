"""Microsoft Graph ``GET /v1.0/domains`` over plain HTTP: Graph's shape, and 403 without a domain permission."""

from __future__ import annotations

from sandbox.runtime import Sandbox
from tests.sandbox.helpers import bearer, http


async def test_domains_in_graphs_shape_with_domain_read_all(sandbox: Sandbox) -> None:
    sandbox.app.graph_roles.add("Domain.Read.All")
    async with http(sandbox) as client:
        response = await client.get(f"{sandbox.urls.graph}/v1.0/domains", headers=bearer(sandbox.app_token("graph")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#domains")
    by_id = {d["id"]: d for d in body["value"]}
    assert set(by_id) == {"business.com", "businesscom.onmicrosoft.com"}
    assert by_id["business.com"]["isDefault"] is True and by_id["business.com"]["isInitial"] is False
    assert by_id["businesscom.onmicrosoft.com"]["isInitial"] is True
    assert all(d["isVerified"] is True and "Email" in d["supportedServices"] for d in body["value"])


async def test_domains_need_a_domain_or_directory_permission(sandbox: Sandbox) -> None:
    async with http(sandbox) as client:  # the emaildoctor app's manifest does not ask for Domain.Read.All
        response = await client.get(f"{sandbox.urls.graph}/v1.0/domains", headers=bearer(sandbox.app_token("graph")))
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "Authorization_RequestDenied"
    assert error["message"] == "Insufficient privileges to complete the operation."

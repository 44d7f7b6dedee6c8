"""Microsoft Graph ``GET /v1.0/domains``: the tenant's domains, in Graph's shape (every domain verified; the first
that is not the initial ``….onmicrosoft.com`` one is the default). Needs Domain.Read.All or Directory.Read.All
(application or delegated), else 403 ``Authorization_RequestDenied`` as Graph answers."""

from __future__ import annotations

from typing import Any

from sandbox.graph_core import Call, GraphError, Reply, require
from sandbox.state import Tenant

DOMAIN_READ = frozenset({"Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})


def domain_json(tenant: Tenant, name: str) -> dict[str, Any]:
    initial = tenant.initial_domain.lower()
    default = next((d for d in tenant.domains if d.lower() != initial), tenant.initial_domain)
    return {
        "authenticationType": "Managed",
        "availabilityStatus": None,
        "id": name,
        "isAdminManaged": True,
        "isDefault": name == default,
        "isInitial": name.lower() == initial,
        "isRoot": True,
        "isVerified": True,
        "passwordNotificationWindowInDays": 14,
        "passwordValidityPeriodInDays": 2147483647,
        "supportedServices": ["Email", "OfficeCommunicationsOnline"],
        "state": None,
    }


def list_domains(tenant: Tenant, call: Call) -> Reply:
    assert call.claims is not None
    require(
        call.claims,
        DOMAIN_READ,
        DOMAIN_READ,
        GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    )
    value = [domain_json(tenant, name) for name in tenant.domains]
    return Reply(200, {"@odata.context": f"{call.base_url}/v1.0/$metadata#domains", "value": value})

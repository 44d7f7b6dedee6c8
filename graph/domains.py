"""The tenant's domains through Microsoft Graph (``GET /v1.0/domains``), to tell a From address the organisation
hosts from one it does not (``from_outside_tenant``, :mod:`plugin.sender_checks`).

Reading them needs the application permission ``Domain.Read.All`` (or Directory.Read.All), which the emaildoctor
app registration does not require: without it Graph answers 403 and the answer is None, once (not asked again).
"""

from __future__ import annotations

import importlib
import warnings

from graph.graph_client import GraphClient, GraphError
from plugin.diagnosis import Code

_BUILDER = "msgraph.generated.domains.domains_request_builder"


class TenantDomains:
    """The verified domains of the tenant, read once per client."""

    def __init__(self, graph: GraphClient) -> None:
        self._graph = graph
        self._domains: frozenset[str] | None = None
        self._readable = True

    async def get(self) -> frozenset[str] | None:
        if self._domains is not None or not self._readable:
            return self._domains
        with warnings.catch_warnings():  # the generated request builder deprecates itself on import
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            importlib.import_module(_BUILDER)
        try:
            page = await self._graph.run("reading the organisation's domains", lambda c: c.domains.get())
        except GraphError as exc:
            if exc.code is Code.GRAPH_ACCESS_DENIED:
                self._readable = False
                return None
            raise
        found = [d.id for d in (page.value if page is not None else None) or () if d.id and d.is_verified is not False]
        self._domains = frozenset(d.casefold() for d in found) or None
        return self._domains

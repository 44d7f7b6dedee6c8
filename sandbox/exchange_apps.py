"""``Get-ServicePrincipal`` behind InvokeCommand: which Entra apps are registered in Exchange Online
(``New-ServicePrincipal``), as SMTP XOAUTH2 app-only sign-in needs (Microsoft Learn, "Authenticate an IMAP, POP
or SMTP connection using OAuth": register the app's service principal, then grant it FullAccess on each mailbox).

Rows: ``AppId``, ``ObjectId`` (the enterprise application's object id), ``DisplayName``, ``Identity``.
``-Identity`` matches the app id, the object id or the display name; no match is
``ManagementObjectNotFoundException``, as for other identities. The cmdlet's role (View-Only Configuration or
Organization Management) is in graph/exchange_roles.py and UNCONFIRMED on a live tenant.
"""

from __future__ import annotations

from typing import Any

from sandbox.exchange_cmdlets import Cmdlets, Outcome, Params
from sandbox.exchange_errors import not_found
from sandbox.state import App


def register_app_cmdlets(cmdlets: Cmdlets) -> None:
    """Add ``Get-ServicePrincipal`` to the sandbox's cmdlet table."""

    def get_service_principal(params: Params) -> Outcome:
        identity = (params.text("Identity") or "").strip().casefold()
        apps = [a for a in cmdlets.tenant.apps.values() if a.exchange_service_principal]
        if identity:
            apps = [a for a in apps if identity in (a.client_id.casefold(), a.service_principal_id, a.name.casefold())]
            if not apps:
                raise not_found(params.text("Identity") or "")
        return Outcome(items=[_row(a) for a in apps])

    cmdlets.handlers["get-serviceprincipal"] = (get_service_principal, {"identity"})


def _row(app: App) -> dict[str, Any]:
    return {
        "@odata.type": "#Exchange.GenericHashTable",
        "AppId": app.client_id,
        "ObjectId": app.service_principal_id,
        "DisplayName": app.name,
        "Identity": app.service_principal_id,
        "Name": app.service_principal_id,
    }

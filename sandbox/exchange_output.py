"""How Exchange prints mailboxes and permissions (OData JSON with type annotations)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sandbox.rights import Grant, Right, Trustee
from sandbox.state import Tenant, User

SELF = Trustee("sid", "NT AUTHORITY\\SELF")
_DOMAIN = "EURPR01A001"
INHERITED_ACES: list[tuple[Trustee, list[str], bool, bool]] = [
    (Trustee("sid", f"{_DOMAIN}\\Administrator"), ["FullAccess"], True, True),
    (Trustee("sid", f"{_DOMAIN}\\Domain Admins"), ["FullAccess"], True, True),
    (Trustee("sid", f"{_DOMAIN}\\Enterprise Admins"), ["FullAccess"], True, True),
    (Trustee("sid", f"{_DOMAIN}\\Organization Management"), ["FullAccess"], True, True),
    (Trustee("sid", "NT AUTHORITY\\SYSTEM"), ["FullAccess"], True, False),
    (Trustee("sid", "NT AUTHORITY\\NETWORK SERVICE"), ["ReadPermission"], True, False),
    (Trustee("sid", f"{_DOMAIN}\\Exchange Servers"), ["FullAccess", "ReadPermission"], True, False),
    (Trustee("sid", f"{_DOMAIN}\\Managed Availability Servers"), ["ReadPermission"], True, False),
]
COLLECTION = "#Collection(String)"


def listed(tenant: Tenant, mailbox_id: str, right: Right) -> list[Grant]:
    """The holders Get-* cmdlets print: the read-lagged view (``exchange_read_lag_seconds``)."""
    return tenant.rights.listed(
        mailbox_id, right, tenant.now(), time.monotonic(), tenant.behaviour.exchange_read_lag_seconds
    )


def mailbox_row(tenant: Tenant, user: User, with_display_names: bool = False) -> dict[str, Any]:
    delegates = listed(tenant, user.id, "SendOnBehalf")
    names = [tenant.recipient_name(g.trustee) for g in delegates]
    primary = user.mail or user.upn
    row: dict[str, Any] = {
        "Identity": user.name,
        "Name": user.name,
        "Alias": user.alias,
        "DisplayName": user.display_name,
        "PrimarySmtpAddress": primary,
        "UserPrincipalName": user.upn,
        "WindowsEmailAddress": primary,
        "RecipientType": "UserMailbox",
        "RecipientTypeDetails": user.recipient_type_details,
        "ExternalDirectoryObjectId": user.id,
        "Guid@data.type": "System.Guid",
        "Guid@odata.type": "#Guid",
        "Guid": user.mailbox_guid,
        "ExchangeGuid@data.type": "System.Guid",
        "ExchangeGuid": user.mailbox_guid,
        "EmailAddresses@odata.type": COLLECTION,
        "EmailAddresses": list(user.proxy_addresses),
        "GrantSendOnBehalfTo@odata.type": COLLECTION,
        "GrantSendOnBehalfTo": names,
        "AccountDisabled": not user.account_enabled,
        "IsMailboxEnabled": True,
        "HiddenFromAddressListsEnabled": False,
        "MessageCopyForSentAsEnabled": False,
        "MessageCopyForSendOnBehalfEnabled": False,
        "DistinguishedName": f"CN={user.name},OU={tenant.initial_domain},OU=Microsoft Exchange Hosted Organizations,"
        f"DC={_DOMAIN},DC=PROD,DC=OUTLOOK,DC=COM",
    }
    if with_display_names:
        row["GrantSendOnBehalfToWithDisplayNames@odata.type"] = COLLECTION
        row["GrantSendOnBehalfToWithDisplayNames"] = [_display(tenant, g.trustee) for g in delegates]
    return row


def _display(tenant: Tenant, trustee: Trustee) -> str:
    if trustee.kind == "user" and trustee.id in tenant.users:
        return tenant.users[trustee.id].display_name
    return tenant.trustee_label(trustee)


def trustee_sid(trustee: Trustee | None) -> str:
    """A stable SID for a trustee (Exchange prints the real one; ``NT AUTHORITY\\SELF`` is S-1-5-10)."""
    if trustee is None or trustee == SELF:
        return "S-1-5-10"
    if trustee.kind == "sid" and trustee.id.upper().startswith("S-1-"):
        return trustee.id
    digest = hashlib.sha256(f"{trustee.kind}:{trustee.id}".encode()).digest()
    return "S-1-5-21-" + "-".join(str(int.from_bytes(digest[i : i + 4], "big")) for i in (0, 4, 8, 12))


def _primary(tenant: Tenant, trustee: Trustee | None) -> str:
    if trustee is not None and trustee.kind == "user" and trustee.id in tenant.users:
        return tenant.users[trustee.id].mail or tenant.users[trustee.id].upn
    return ""


def recipient_permission_row(tenant: Tenant, mailbox: User, trustee: Trustee | None) -> dict[str, Any]:
    """Live output has no ``IsInherited`` / ``Deny`` keys on these rows (2026 captures)."""
    return {
        "Identity": mailbox.name,
        "Trustee": SELF.id if trustee is None else tenant.trustee_label(trustee),
        "AccessControlType": "Allow",
        "AccessRights@odata.type": COLLECTION,
        "AccessRights": ["SendAs"],
        "TrusteeSidString": trustee_sid(trustee),
        "TrusteeWithPrimarySmtpAddress": "",
    }


def mailbox_permission_row(
    tenant: Tenant, mailbox: User, trustee: Trustee, rights: list[str], inherited: bool, deny: bool
) -> dict[str, Any]:
    """``AccessRights`` is a flags enum serialised as ONE element: ``["FullAccess, ReadPermission"]`` (live)."""
    return {
        "Identity": mailbox.name,
        "User": trustee.id if trustee.kind == "sid" else tenant.trustee_label(trustee),
        "AccessRights@odata.type": COLLECTION,
        "AccessRights": [", ".join(rights)],
        "IsInherited": inherited,
        "Deny": deny,
        "InheritanceType": "All",
        "UserSid": trustee_sid(trustee),
        "PrimarySmtpAddress": _primary(tenant, trustee),
        "IsValid": True,
        "ObjectState": "Unchanged",
    }


def cas_row(tenant: Tenant, user: User) -> dict[str, Any]:
    del tenant
    return {
        "Identity": user.name,
        "Name": user.name,
        "DisplayName": user.display_name,
        "PrimarySmtpAddress": user.mail or user.upn,
        "ExternalDirectoryObjectId": user.id,
        "Guid@data.type": "System.Guid",
        "Guid": user.mailbox_guid,
        "SmtpClientAuthenticationDisabled": user.smtp_auth_disabled,
        "ActiveSyncEnabled": True,
        "OWAEnabled": True,
        "PopEnabled": True,
        "ImapEnabled": True,
        "MAPIEnabled": True,
        "EwsEnabled": True,
    }


def transport_row(tenant: Tenant) -> dict[str, Any]:
    return {
        "Identity": "Transport Settings",
        "Name": "Transport Settings",
        "SmtpClientAuthenticationDisabled": tenant.smtp_client_authentication_disabled,
        "AllowLegacyTLSClients": False,
        "MaxSendSize": "35 MB (36,700,160 bytes)",
        "MaxReceiveSize": "36 MB (37,748,736 bytes)",
        "MaxRecipientEnvelopeLimit": "500",
    }

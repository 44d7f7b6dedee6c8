"""Load a :class:`~sandbox.state.Tenant` from ``tenant.yaml`` (see ``sandbox/examples/tenant.yaml``)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from sandbox.clock import Clock, SystemClock
from sandbox.rights import RIGHTS, Trustee
from sandbox.settings import Behaviour
from sandbox.state import AccessPolicy, App, Group, Tenant, User
from sandbox.tls import app_certificate_from_pem, generated_app_certificate

# Package data (pyproject.toml), so an installed wheel's sandbox and demo find them as the checkout does.
EXAMPLES = Path(__file__).resolve().parent / "examples"
EXAMPLE_TENANT = EXAMPLES / "tenant.yaml"
_MAILBOX_NAMESPACE = uuid.UUID("0d4a2c1e-6f3b-4b8e-9c7d-5a1e2f3b4c5d")


class TenantFileError(ValueError):
    """The tenant file is not valid; the message names the entry."""


def load_tenant(source: Path | Mapping[str, Any] | None = None, clock: Clock | None = None) -> Tenant:
    """Build a tenant from a YAML file (default ``sandbox/examples/tenant.yaml``) or an already-parsed mapping."""
    if source is None:
        source = EXAMPLE_TENANT
    if isinstance(source, Path):
        try:
            data = yaml.safe_load(source.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise TenantFileError(f"{source}: {exc}") from exc
    else:
        data = source
    if not isinstance(data, Mapping):
        raise TenantFileError("a tenant file is a mapping with tenant:, users:, apps:, rights: …")
    try:
        return _build(data, clock or SystemClock())
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, TenantFileError):
            raise
        raise TenantFileError(f"invalid tenant file: {exc!s}") from exc


def _build(data: Mapping[str, Any], clock: Clock) -> Tenant:
    info = _mapping(data.get("tenant"), "tenant")
    switches = _mapping(data.get("switches", {}), "switches")
    tenant = Tenant(
        id=str(info["id"]).lower(),
        name=str(info.get("name", "Contoso")),
        domains=[str(d) for d in info.get("domains", [])],
        initial_domain=str(info.get("initial_domain", "")),
        clock=clock,
        smtp_client_authentication_disabled=bool(switches.get("smtp_client_authentication_disabled", True)),
        security_defaults=bool(switches.get("security_defaults", False)),
        conditional_access_block_legacy_auth=bool(switches.get("conditional_access_block_legacy_auth", False)),
        basic_auth_disabled=bool(switches.get("basic_auth_disabled", False)),
        basic_auth_retired=bool(switches.get("basic_auth_retired", False)),
        outbound_block=_outbound_block(switches.get("outbound_block")),
        propagation_delay_seconds=float(data.get("propagation_delay_seconds", 0)),
        behaviour=Behaviour().changed(**_mapping(data.get("behaviour") or {}, "behaviour")),
        slack=dict(data["slack"]) if isinstance(data.get("slack"), Mapping) else None,
    )
    for entry in data.get("users", []):
        tenant.add_user(user_from(_mapping(entry, "users[]")))
    _add_groups(tenant, [_mapping(entry, "groups[]") for entry in data.get("groups", [])])
    for entry in data.get("apps", []):
        app = app_from(_mapping(entry, "apps[]"))
        tenant.apps[app.client_id] = app
    for entry in data.get("application_access_policies", []):
        tenant.policies.append(_policy(tenant, _mapping(entry, "application_access_policies[]")))
    for entry in data.get("rights", []):
        _add_right(tenant, _mapping(entry, "rights[]"))
    return tenant


def _add_groups(tenant: Tenant, entries: list[Mapping[str, Any]]) -> None:
    """Groups first, members second, so a group may name a group defined after it (nested groups)."""
    for entry in entries:
        tenant.add_group(
            Group(id=str(entry["id"]).lower(), display_name=str(entry["display_name"]), mail=entry.get("mail"))
        )
    for entry in entries:
        group = tenant.groups[str(entry["id"]).lower()]
        for member in entry.get("members", []):
            group.members.add(_member_id(tenant, group, str(member)))


def _member_id(tenant: Tenant, group: Group, member: str) -> str:
    """A user (address or id) or a group (name, address or id). Exchange nests only mail-enabled groups."""
    user = tenant.user_by_address(member) or tenant.users.get(member.lower())
    if user is not None:
        return user.id
    found = tenant.groups.get(member.lower()) or next(
        (g for g in tenant.groups.values() if member.lower() in {g.display_name.lower(), (g.mail or "").lower()}), None
    )
    if found is None:
        raise TenantFileError(f"group {group.display_name!r}: unknown member {member!r}")
    if found.id == group.id or not found.mail or not group.mail:
        raise TenantFileError(
            f"group {group.display_name!r}: member {member!r} must be another group, and both must be mail-enabled"
        )
    return found.id


def user_from(entry: Mapping[str, Any]) -> User:
    upn = str(entry["upn"])
    user_id = str(entry.get("id") or uuid.uuid4()).lower()
    mailbox = str(entry.get("mailbox", "user"))
    if mailbox not in ("user", "shared", "none"):
        raise TenantFileError(f"user {upn}: mailbox must be user, shared or none")
    user_type = str(entry.get("user_type", "Member"))
    if user_type not in ("Member", "Guest"):
        raise TenantFileError(f"user {upn}: user_type must be Member or Guest")
    mail = entry.get("mail", upn if mailbox != "none" else None)
    proxies = [str(p) for p in entry.get("proxy_addresses", [])]
    if mail and not any(p.startswith("SMTP:") for p in proxies):
        proxies.insert(0, f"SMTP:{mail}")
    disabled = entry.get("smtp_auth_disabled")
    if disabled is not None and not isinstance(disabled, bool):
        raise TenantFileError(f"user {upn}: smtp_auth_disabled must be true, false or null")
    return User(
        id=user_id,
        upn=upn,
        display_name=str(entry.get("display_name", upn)),
        mail=str(mail) if mail else None,
        proxy_addresses=proxies,
        account_enabled=bool(entry.get("account_enabled", True)),
        user_type=cast("Any", user_type),
        mailbox=cast("Any", mailbox),
        name=str(entry.get("name", user_id)),
        alias=str(entry.get("alias", upn.split("@", 1)[0])),
        mailbox_guid=str(entry.get("mailbox_guid") or uuid.uuid5(_MAILBOX_NAMESPACE, user_id)),
        given_name=entry.get("given_name"),
        surname=entry.get("surname"),
        job_title=entry.get("job_title"),
        smtp_password=entry.get("smtp_password"),
        smtp_auth_disabled=disabled,
        entra_roles={str(r) for r in entry.get("entra_roles", [])},
    )


def app_from(entry: Mapping[str, Any]) -> App:
    name = str(entry["name"])
    certificates = []
    cert = entry.get("certificate")
    if cert == "generated":
        certificates.append(generated_app_certificate(name))
    elif isinstance(cert, str):
        certificates.append(app_certificate_from_pem(cert))
    return App(
        name=name,
        client_id=str(entry["client_id"]).lower(),
        object_id=str(entry.get("object_id") or uuid.uuid4()).lower(),
        service_principal_id=str(entry.get("service_principal_id") or uuid.uuid4()).lower(),
        secrets=[str(s) for s in entry.get("secrets", [])],
        certificates=certificates,
        graph_roles={str(p) for p in entry.get("graph_permissions", [])},
        exchange_roles={str(p) for p in entry.get("exchange_permissions", [])},
        delegated_scopes={str(p) for p in entry.get("delegated_permissions", [])},
        public_client=bool(entry.get("public_client", False)),
        entra_roles={str(r) for r in entry.get("entra_roles", [])},
        exchange_role_groups={str(r) for r in entry.get("exchange_role_groups", [])},
        exchange_service_principal=bool(entry.get("exchange_service_principal", False)),
    )


def _policy(tenant: Tenant, entry: Mapping[str, Any]) -> AccessPolicy:
    app_name = str(entry["app"])
    app = next((a for a in tenant.apps.values() if app_name in (a.name, a.client_id)), None)
    group = tenant.recipient(str(entry["group"]))
    if app is None or not isinstance(group, Group):
        raise TenantFileError(f"application access policy: unknown app {app_name!r} or group {entry['group']!r}")
    right = str(entry.get("access_right", "RestrictAccess"))
    if right not in ("RestrictAccess", "DenyAccess"):
        raise TenantFileError("application access policy: access_right must be RestrictAccess or DenyAccess")
    return AccessPolicy(
        app_id=app.client_id,
        access_right=cast("Any", right),
        group_id=group.id,
        description=str(entry.get("description", "")),
    )


def _add_right(tenant: Tenant, entry: Mapping[str, Any]) -> None:
    right = str(entry["right"])
    if right not in RIGHTS:
        raise TenantFileError(f"right {right!r}: one of {', '.join(RIGHTS)}")
    mailbox = tenant.user_by_address(str(entry["mailbox"]))
    if mailbox is None or not mailbox.has_mailbox:
        raise TenantFileError(f"right on unknown mailbox {entry['mailbox']!r}")
    name = str(entry["trustee"])
    if name.startswith("app:"):
        app = tenant.service_principal(name.removeprefix("app:"))
        trustee = Trustee("sp", app.service_principal_id) if app is not None else None
    else:
        trustee = tenant.trustee(name)
    if trustee is None:
        raise TenantFileError(f"right {right} on {entry['mailbox']}: unknown trustee {name!r}")
    tenant.rights.grant(right, mailbox.id, trustee, None)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TenantFileError(f"{where}: expected a mapping")
    return value


def _outbound_block(value: object) -> Literal["threshold", "ip", "unregistered_domain"] | None:
    if value is None:
        return None
    if value == "threshold" or value == "ip" or value == "unregistered_domain":
        return value
    raise ValueError(f"switches.outbound_block: {value!r} is not one of threshold, ip, unregistered_domain")

"""The tenant: users, groups, app registrations, switches, rights and delivered mail.

One mutable :class:`Tenant` is shared by every sandbox service, so a right granted through the
Exchange admin API changes what SMTP and Graph accept (after the propagation delay). Load it from
YAML with :func:`sandbox.loader.load_tenant`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sandbox.clock import Clock
from sandbox.rights import Grant, Right, RightsStore, Trustee
from sandbox.settings import Behaviour

MailboxKind = Literal["user", "shared", "none"]
SID_PATTERN = re.compile(r"^S-1-\d+(-\d+)+$", re.IGNORECASE)


@dataclass
class User:
    id: str
    upn: str
    display_name: str
    mail: str | None = None
    proxy_addresses: list[str] = field(default_factory=list)
    """Graph form: ``SMTP:primary`` and ``smtp:secondary``."""
    account_enabled: bool = True
    user_type: Literal["Member", "Guest"] = "Member"
    mailbox: MailboxKind = "user"
    name: str = ""
    """Exchange ``Name``: the Entra object id for cloud users, as in real tenants."""
    alias: str = ""
    mailbox_guid: str = ""
    given_name: str | None = None
    surname: str | None = None
    job_title: str | None = None
    smtp_password: str | None = None
    smtp_auth_disabled: bool | None = None
    """``Set-CASMailbox -SmtpClientAuthenticationDisabled``: None inherits the tenant switch."""
    entra_roles: set[str] = field(default_factory=set)
    """Directory roles (e.g. Exchange Administrator), for delegated admin API calls."""

    @property
    def has_mailbox(self) -> bool:
        return self.mailbox != "none"

    @property
    def recipient_type_details(self) -> str:
        return {"user": "UserMailbox", "shared": "SharedMailbox"}.get(self.mailbox, "MailUser")

    def addresses(self) -> list[str]:
        found = [self.upn]
        if self.mail:
            found.append(self.mail)
        found.extend(p.split(":", 1)[1] for p in self.proxy_addresses if p.lower().startswith("smtp:"))
        return list(dict.fromkeys(a.lower() for a in found))


@dataclass
class Group:
    id: str
    display_name: str
    mail: str | None = None
    members: set[str] = field(default_factory=set)
    """Object ids of users and of groups (nested groups: rights granted to a group reach their members too)."""


@dataclass
class AppCertificate:
    pem: str
    """The public certificate (PEM)."""
    thumbprint_sha1: str
    """Hex, upper case (as Entra shows it)."""
    thumbprint_sha256: str
    private_key_pem: str | None = None
    """Only for certificates the sandbox generated, so tests can sign in with them."""


@dataclass
class App:
    name: str
    client_id: str
    object_id: str
    service_principal_id: str
    secrets: list[str] = field(default_factory=list)
    certificates: list[AppCertificate] = field(default_factory=list)
    graph_roles: set[str] = field(default_factory=set)
    exchange_roles: set[str] = field(default_factory=set)
    delegated_scopes: set[str] = field(default_factory=set)
    """Delegated permissions consented for users (``Mail.Send``, ``SMTP.Send``, …)."""
    public_client: bool = False
    entra_roles: set[str] = field(default_factory=set)
    exchange_role_groups: set[str] = field(default_factory=set)
    exchange_service_principal: bool = False
    """Registered in Exchange with New-ServicePrincipal (needed for SMTP XOAUTH2 app-only)."""


@dataclass
class AccessPolicy:
    app_id: str
    access_right: Literal["RestrictAccess", "DenyAccess"]
    group_id: str
    description: str = ""


@dataclass
class Message:
    id: str
    internet_message_id: str
    subject: str
    body: str
    body_content_type: Literal["text", "html"]
    from_address: str
    from_name: str
    sender_address: str
    sender_name: str
    to: list[str]
    cc: list[str]
    received: datetime
    folder: Literal["inbox", "sentitems"] = "inbox"
    headers: dict[str, str] = field(default_factory=dict)
    via: Literal["smtp", "graph"] = "graph"


class AmbiguousIdentityError(LookupError):
    """More than one recipient matches an Exchange identity."""


@dataclass
class Tenant:
    id: str
    name: str
    domains: list[str]
    initial_domain: str
    clock: Clock
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    apps: dict[str, App] = field(default_factory=dict)
    """By client id."""
    policies: list[AccessPolicy] = field(default_factory=list)
    rights: RightsStore = field(default_factory=RightsStore)
    smtp_client_authentication_disabled: bool = True
    """``Set-TransportConfig -SmtpClientAuthenticationDisabled`` (true for tenants made after Jan 2020)."""
    security_defaults: bool = False
    conditional_access_block_legacy_auth: bool = False
    basic_auth_disabled: bool = False
    """Authentication policy or Microsoft's default blocks basic auth: 535 5.7.139 '…basic authentication is disabled.'"""
    outbound_block: Literal["threshold", "ip", "unregistered_domain"] | None = None
    """Microsoft has blocked the tenant's outbound mail: MAIL FROM gets 550 5.7.705 / 5.7.708 / 5.7.750."""
    basic_auth_retired: bool = False
    """After Microsoft's cutover: 550 5.7.30 'Basic authentication is not supported for Client Submission.'"""
    propagation_delay_seconds: float = 0.0
    behaviour: Behaviour = field(default_factory=Behaviour)
    messages: dict[str, list[Message]] = field(default_factory=dict)
    outbound: list[Message] = field(default_factory=list)
    """Mail to addresses outside the tenant."""
    slack: dict[str, Any] | None = None
    """The raw ``slack:`` section of the tenant file, for :func:`sandbox.slack.load_workspace`."""
    changes: int = 0
    """Bumped by every change outside the rights store (switches, users), for cached listings."""
    _addresses: dict[str, str] = field(default_factory=dict, repr=False)
    _names: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _mailbox_order: list[str] | None = field(default=None, repr=False)

    # --- indexes ---------------------------------------------------------------------------------
    def add_user(self, user: User) -> None:
        self.users[user.id] = user
        for address in user.addresses():
            self._addresses[address] = user.id
        for key in {user.id, user.name, user.alias, user.display_name, user.mailbox_guid}:
            if key:
                self._names.setdefault(key.lower(), []).append(user.id)
        self._mailbox_order = None

    def add_group(self, group: Group) -> None:
        self.groups[group.id] = group
        for key in {group.id, group.display_name, group.mail or ""}:
            if key:
                self._names.setdefault(key.lower(), []).append(group.id)

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def delay(self) -> timedelta:
        return timedelta(seconds=self.propagation_delay_seconds)

    def knows_tenant(self, value: str) -> bool:
        return value.lower() == self.id or value.lower() in {d.lower() for d in self.domains}

    # --- lookups ---------------------------------------------------------------------------------
    def user(self, id_or_upn: str) -> User | None:
        """Graph-style: an object id or a user principal name."""
        found = self.users.get(id_or_upn.lower())
        if found is not None:
            return found
        user_id = self._addresses.get(id_or_upn.lower())
        candidate = self.users.get(user_id) if user_id else None
        return candidate if candidate is not None and candidate.upn.lower() == id_or_upn.lower() else None

    def user_by_address(self, address: str) -> User | None:
        user_id = self._addresses.get(address.strip().lower())
        return self.users.get(user_id) if user_id else None

    def mailboxes(self) -> list[User]:
        if self._mailbox_order is None:
            self._mailbox_order = [u.id for u in self.users.values() if u.has_mailbox]
        return [self.users[i] for i in self._mailbox_order]

    def recipient(self, identity: str) -> User | Group | None:
        """Exchange-style identity: any address, UPN, Name, alias, display name, object id or mailbox GUID."""
        key = identity.strip().lower()
        user_id = self._addresses.get(key)
        if user_id:
            return self.users[user_id]
        matches = list(dict.fromkeys(self._names.get(key, [])))
        if len(matches) > 1:
            raise AmbiguousIdentityError(identity)
        if not matches:
            return next((g for g in self.groups.values() if g.mail and g.mail.lower() == key), None)
        return self.users.get(matches[0]) or self.groups.get(matches[0])

    def app(self, client_id: str) -> App | None:
        return self.apps.get(client_id.lower())

    def service_principal(self, identity: str) -> App | None:
        key = identity.strip().lower()
        for app in self.apps.values():
            if key in {app.client_id, app.service_principal_id, app.name.lower()}:
                return app
        return None

    def trustee(self, identity: str) -> Trustee | None:
        """Resolve a trustee named in a cmdlet: user, group, bare SID or registered service principal."""
        if SID_PATTERN.match(identity.strip()):
            return Trustee("sid", identity.strip().upper())
        found = self.recipient(identity)
        if isinstance(found, User):
            return Trustee("user", found.id)
        if isinstance(found, Group):
            return Trustee("group", found.id)
        app = self.service_principal(identity)
        if app is not None and app.exchange_service_principal:
            return Trustee("sp", app.service_principal_id)
        return None

    def grant_record(self, right: str, mailbox: str, trustee: str) -> Grant | None:
        """The directory's record of ``trustee`` holding ``right`` on ``mailbox`` (addresses), for tests and the demo."""
        owner, who = self.user_by_address(mailbox), self.trustee(trustee)
        if owner is None or who is None:
            return None
        return next((g for g in self.rights.held(owner.id, cast(Right, right)) if g.trustee == who), None)

    def trustee_label(self, trustee: Trustee) -> str:
        """How Exchange prints a trustee: UPN for users, display name for groups, the SID, the SP id."""
        if trustee.kind == "user" and trustee.id in self.users:
            return self.users[trustee.id].upn
        if trustee.kind == "group" and trustee.id in self.groups:
            return self.groups[trustee.id].display_name
        return trustee.id

    def recipient_name(self, trustee: Trustee) -> str:
        """The recipient ``Name`` used in ``GrantSendOnBehalfTo``."""
        if trustee.kind == "user" and trustee.id in self.users:
            return self.users[trustee.id].name
        return self.trustee_label(trustee)

    def groups_of(self, user_id: str) -> list[str]:
        return [g.id for g in self.groups.values() if user_id in g.members]

    def member_of(self, object_id: str) -> list[str]:
        """Every group that contains ``object_id`` directly or through nested groups (cycles are harmless)."""
        found: dict[str, None] = {}
        todo = [object_id]
        while todo:
            for group_id in self.groups_of(todo.pop()):
                if group_id not in found:
                    found[group_id] = None
                    todo.append(group_id)
        return list(found)

    def principals(self, user_id: str) -> list[Trustee]:
        """The trustees through which a user holds rights: the user and every group it belongs to, transitively
        (SendAs and FullAccess granted to a mail-enabled security group apply to its nested members)."""
        return [Trustee("user", user_id), *(Trustee("group", g) for g in self.member_of(user_id))]

    # --- the effective (propagated) rights that SMTP and Graph enforce ------------------------------
    def effective(self, right: Right, mailbox: User, trustees: Iterable[Trustee]) -> bool:
        return self.rights.is_effective(right, mailbox.id, trustees, self.now(), self.delay)

    def user_may(self, right: Right, user: User, mailbox: User) -> bool:
        return self.effective(right, mailbox, self.principals(user.id))

    def smtp_auth_disabled_for(self, user: User) -> Literal["Tenant", "Mailbox"] | None:
        if user.smtp_auth_disabled is True:
            return "Mailbox"
        if user.smtp_auth_disabled is None and self.smtp_client_authentication_disabled:
            return "Tenant"
        return None

    def raop_blocks(self, app: App, mailbox: User) -> bool:
        """Application access policy: DenyAccess beats RestrictAccess; no policy means access."""
        policies = [p for p in self.policies if p.app_id == app.client_id]
        member_of = set(self.groups_of(mailbox.id))
        if any(p.access_right == "DenyAccess" and p.group_id in member_of for p in policies):
            return True
        restrict = [p for p in policies if p.access_right == "RestrictAccess"]
        return bool(restrict) and not any(p.group_id in member_of for p in restrict)

    def deliver(self, mailbox: User, message: Message) -> None:
        self.messages.setdefault(mailbox.id, []).append(message)

"""The Exchange Online cmdlets the sandbox runs behind InvokeCommand: mailboxes, SendAs
(RecipientPermission), FullAccess (MailboxPermission), SendOnBehalf (Set-Mailbox GrantSendOnBehalfTo)
and the SMTP AUTH switches.

A cmdlet returns an :class:`Outcome`: the items (cheap references, cached per state version for the
tenant-wide listings), a renderer applied only to the page being returned, and warnings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sandbox.exchange_errors import (
    CmdletError,
    ambiguous,
    bad_parameter,
    not_found,
    recipient_not_found,
)
from sandbox.exchange_output import (
    INHERITED_ACES,
    SELF,
    cas_row,
    listed,
    mailbox_permission_row,
    mailbox_row,
    recipient_permission_row,
    transport_row,
)
from sandbox.opath import OpathError, evaluate, parse_opath
from sandbox.rights import Right, Trustee
from sandbox.state import AmbiguousIdentityError, Group, Tenant, User

MORE_RESULTS_WARNING = (
    "By default, only the first {n} items are returned. Use the ResultSize parameter to specify the number of items "
    'returned. To return all items, specify "-ResultSize Unlimited". Be aware that, depending upon the actual number '
    "of items, returning all items can take a long time and consume a large amount of memory. Also, we don't "
    "recommend storing the results in a variable. Instead, pipe the results to another task or script to perform "
    "batch changes."
)
COMMON = {"confirm", "warningaction", "erroraction", "verbose", "whatif", "domaincontroller"}


@dataclass
class Outcome:
    items: Sequence[Any] = ()
    render: Callable[[Any], dict[str, Any]] = lambda item: cast("dict[str, Any]", item)
    warnings: list[str] = field(default_factory=list)


class Params:
    """Cmdlet parameters, case-insensitive as in PowerShell."""

    def __init__(self, cmdlet: str, raw: Mapping[str, Any], allowed: set[str]) -> None:
        self.cmdlet = cmdlet
        self.values = {str(k).lower(): v for k, v in raw.items()}
        for key, value in raw.items():
            if str(key).lower() not in allowed | COMMON:
                raise bad_parameter(f"A parameter cannot be found that matches parameter name '{key}'.")
            del value

    def get(self, name: str) -> Any:
        return self.values.get(name.lower())

    def has(self, name: str) -> bool:
        return name.lower() in self.values

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                raise bad_parameter(
                    f"Cannot process command because of one or more missing mandatory parameters: {name}."
                )
            return None
        if not isinstance(value, str) or not value.strip():
            raise bad_parameter(f"Cannot bind argument to parameter '{name}' because it is an empty string.")
        return value.strip()

    def rights(self, name: str, valid: set[str]) -> list[str]:
        value = self.get(name)
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else None
        if not values:
            raise bad_parameter(f"Cannot process command because of one or more missing mandatory parameters: {name}.")
        result = []
        for item in values:
            match = next((v for v in valid if v.lower() == str(item).lower()), None)
            if match is None:
                raise bad_parameter(
                    f"Cannot process argument transformation on parameter '{name}'. Cannot convert value \"{item}\" "
                    f'to type "{name}". Error: "The possible enumeration values are {", ".join(sorted(valid))}."'
                )
            result.append(match)
        return result

    def result_size(self, default: int) -> tuple[int | None, bool]:
        """(limit, explicit): None means Unlimited."""
        value = self.get("ResultSize")
        if value is None:
            return default, False
        if isinstance(value, str) and value.lower() == "unlimited":
            return None, True
        try:
            size = int(value)
        except (TypeError, ValueError):
            size = 0
        if size < 1:
            raise bad_parameter(
                f'Cannot bind parameter \'ResultSize\'. Cannot convert value "{value}" to type "Unlimited`1".'
            )
        return size, True


class Cmdlets:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self._cache: dict[tuple[str, str], tuple[tuple[int, int], list[Any]]] = {}
        self.handlers: dict[str, tuple[Callable[[Params], Outcome], set[str]]] = {
            "get-mailbox": (self.get_mailbox, {"identity", "resultsize", "filter", "recipienttypedetails", "includegrantsendonbehalftowithdisplaynames", "anr"}),
            "set-mailbox": (self.set_mailbox, {"identity", "grantsendonbehalfto"}),
            "get-recipientpermission": (self.get_recipient_permission, {"identity", "trustee", "accessrights", "resultsize", "includetrusteewithprimarysmtpaddress"}),
            "add-recipientpermission": (self.add_recipient_permission, {"identity", "trustee", "accessrights"}),
            "remove-recipientpermission": (self.remove_recipient_permission, {"identity", "trustee", "accessrights", "deny", "multitrustees"}),
            "get-mailboxpermission": (self.get_mailbox_permission, {"identity", "user", "resultsize", "owner", "includeunresolvedpermissions"}),
            "add-mailboxpermission": (self.add_mailbox_permission, {"identity", "user", "accessrights", "automapping", "inheritancetype", "deny"}),
            "remove-mailboxpermission": (self.remove_mailbox_permission, {"identity", "user", "accessrights", "inheritancetype", "deny", "bypassmasteraccountsid"}),
            "get-casmailbox": (self.get_cas_mailbox, {"identity", "resultsize", "filter"}),
            "set-casmailbox": (self.set_cas_mailbox, {"identity", "smtpclientauthenticationdisabled"}),
            "get-transportconfig": (self.get_transport_config, set()),
            "set-transportconfig": (self.set_transport_config, {"smtpclientauthenticationdisabled"}),
        }  # fmt: skip

    def run(self, name: str, raw: Mapping[str, Any]) -> Outcome:
        entry = self.handlers.get(name.lower())
        if entry is None:
            raise CmdletError(
                400, "BadRequest", "Ex0F5E2A", "System.Management.Automation.CommandNotFoundException",
                f"The term '{name}' is not recognized as a name of a cmdlet, function, script file, or executable program.",
            )  # fmt: skip
        handler, allowed = entry
        return handler(Params(name, raw, allowed))

    # --- resolution ------------------------------------------------------------------------------
    def mailbox(self, identity: str) -> User:
        try:
            found = self.tenant.recipient(identity)
        except AmbiguousIdentityError as exc:
            raise ambiguous(identity) from exc
        if not isinstance(found, User) or not found.has_mailbox:
            raise not_found(identity)
        return found

    def trustee(self, identity: str) -> Trustee:
        try:
            found = self.tenant.trustee(identity)
        except AmbiguousIdentityError as exc:
            raise ambiguous(identity) from exc
        if found is None:
            raise recipient_not_found(identity)
        return found

    def _cached(self, key: tuple[str, str], build: Callable[[], list[Any]]) -> list[Any]:
        lag = self.tenant.behaviour.exchange_read_lag_seconds
        if not self.tenant.rights.settled(self.tenant.now(), time.monotonic(), lag):
            return build()  # a change is still inside the read lag: what is listed depends on the time
        version = (self.tenant.rights.version, self.tenant.changes)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        items = build()
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = (version, items)
        return items

    def _limit(self, params: Params, items: list[Any]) -> Outcome:
        limit, explicit = params.result_size(self.tenant.behaviour.exchange_default_result_size)
        warnings = []
        if limit is not None and len(items) > limit:
            if not explicit:
                warnings.append(MORE_RESULTS_WARNING.format(n=limit))
            items = items[:limit]
        return Outcome(items=items, warnings=warnings)

    # --- mailboxes (SendOnBehalf) ----------------------------------------------------------------
    def get_mailbox(self, params: Params) -> Outcome:
        with_names = bool(params.get("IncludeGrantSendOnBehalfToWithDisplayNames"))

        def render(user: User) -> dict[str, Any]:
            return mailbox_row(self.tenant, user, with_names)

        identity = params.text("Identity")
        anr = (params.text("Anr") or "").lower()
        if identity is not None and anr:
            raise bad_parameter("Parameter set cannot be resolved using the specified named parameters.")
        if identity is not None:
            return Outcome(items=[self.mailbox(identity)], render=render)
        kind = params.text("RecipientTypeDetails")
        text = params.text("Filter")
        node = None
        if text is not None:
            try:
                node = parse_opath(text)
            except OpathError as exc:
                raise bad_parameter(
                    f'Cannot bind parameter \'Filter\' to the target. Exception setting "Filter": "{exc}"'
                ) from exc
        key = ("mailbox", f"{kind}|{anr}|{text}")

        def build() -> list[Any]:
            users = self.tenant.mailboxes()
            if kind is not None:
                users = [u for u in users if u.recipient_type_details.lower() == kind.lower()]
            if anr:  # ambiguous name resolution: a prefix of a name, alias or address
                users = [u for u in users if any(f.lower().startswith(anr) for f in _anr_fields(u))]
            if node is not None:
                users = [u for u in users if evaluate(node, mailbox_row(self.tenant, u, False))]
            return users

        outcome = self._limit(params, self._cached(key, build))
        outcome.render = render
        return outcome

    def set_mailbox(self, params: Params) -> Outcome:
        mailbox = self.mailbox(params.text("Identity", required=True) or "")
        if not params.has("GrantSendOnBehalfTo"):
            return Outcome(warnings=[_no_change(mailbox)])
        value = params.get("GrantSendOnBehalfTo")
        now = self.tenant.now()
        rights = self.tenant.rights
        changed = False
        if isinstance(value, dict):
            keys = {str(k).lower(): v for k, v in value.items() if not str(k).startswith("@")}
            unknown = set(keys) - {"add", "remove"}
            if unknown:
                raise bad_parameter(
                    f"Cannot process argument transformation on parameter 'GrantSendOnBehalfTo'. Unknown key(s): {', '.join(sorted(unknown))}."
                )
            adds = [self._delegate(x) for x in _as_list(keys.get("add"))]
            removes = [self._delegate(x) for x in _as_list(keys.get("remove"))]
            for trustee in removes:
                changed |= rights.revoke("SendOnBehalf", mailbox.id, trustee, now, mono=time.monotonic())
            for trustee in adds:
                changed |= rights.grant("SendOnBehalf", mailbox.id, trustee, now, mono=time.monotonic())
        else:
            trustees = [self._delegate(x) for x in _as_list(value)]
            changed = rights.replace_all("SendOnBehalf", mailbox.id, trustees, now, mono=time.monotonic())
        return Outcome(warnings=[] if changed else [_no_change(mailbox)])

    def _delegate(self, identity: Any) -> Trustee:
        if not isinstance(identity, str) or not identity.strip():
            raise bad_parameter(
                "Cannot bind argument to parameter 'GrantSendOnBehalfTo' because it is an empty string."
            )
        try:
            found = self.tenant.recipient(identity)
        except AmbiguousIdentityError as exc:
            raise ambiguous(identity) from exc
        if isinstance(found, User):
            return Trustee("user", found.id)
        if isinstance(found, Group) and found.mail:
            return Trustee("group", found.id)
        raise recipient_not_found(identity)

    # --- SendAs ----------------------------------------------------------------------------------
    def get_recipient_permission(self, params: Params) -> Outcome:
        identity = params.text("Identity")
        trustee_name = params.text("Trustee")
        trustee = self.trustee(trustee_name) if trustee_name else None
        if params.has("AccessRights"):
            params.rights("AccessRights", {"SendAs"})

        def entries(user: User) -> list[tuple[User, Trustee | None]]:
            rows: list[tuple[User, Trustee | None]] = []
            if trustee is None or trustee == Trustee("user", user.id):
                rows.append((user, None))
            rows.extend(
                (user, g.trustee) for g in listed(self.tenant, user.id, "SendAs") if trustee in (None, g.trustee)
            )
            return rows

        if identity is not None:
            items: list[Any] = entries(self.mailbox(identity))
        elif trustee is not None:
            items = self._cached(
                ("sendas-trustee", trustee.kind + trustee.id), lambda: self._by_trustee(trustee, "SendAs")
            )
        else:
            items = self._cached(("sendas", ""), lambda: [e for u in self.tenant.mailboxes() for e in entries(u)])
        outcome = self._limit(params, items)
        outcome.render = lambda item: recipient_permission_row(self.tenant, item[0], item[1])
        return outcome

    def _by_trustee(self, trustee: Trustee, right: Right) -> list[Any]:
        rows: list[Any] = []
        if trustee.kind == "user" and trustee.id in self.tenant.users and self.tenant.users[trustee.id].has_mailbox:
            rows.append((self.tenant.users[trustee.id], None))
        lag = self.tenant.behaviour.exchange_read_lag_seconds
        grants = self.tenant.rights.listed_by(trustee, right, self.tenant.now(), time.monotonic(), lag)
        rows.extend((self.tenant.users[g.mailbox_id], g.trustee) for g in grants)
        return rows

    def add_recipient_permission(self, params: Params) -> Outcome:
        mailbox = self.mailbox(params.text("Identity", required=True) or "")
        trustee = self.trustee(params.text("Trustee", required=True) or "")
        params.rights("AccessRights", {"SendAs"})
        self.tenant.rights.grant("SendAs", mailbox.id, trustee, self.tenant.now(), mono=time.monotonic())
        return Outcome()

    def remove_recipient_permission(self, params: Params) -> Outcome:
        mailbox = self.mailbox(params.text("Identity", required=True) or "")
        name = params.text("Trustee", required=True) or ""
        trustee = self.trustee(name)
        params.rights("AccessRights", {"SendAs"})
        if self.tenant.rights.revoke("SendAs", mailbox.id, trustee, self.tenant.now(), mono=time.monotonic()):
            return Outcome()
        label = self.tenant.trustee_label(trustee)
        return Outcome(
            warnings=[
                f'Can\'t remove the access control entry on the object "{mailbox.name}" for account "{label}" because the ACE isn\'t present.'
            ]
        )

    # --- FullAccess ------------------------------------------------------------------------------
    def get_mailbox_permission(self, params: Params) -> Outcome:
        mailbox = self.mailbox(params.text("Identity", required=True) or "")
        user_name = params.text("User")
        unresolved = bool(params.get("IncludeUnresolvedPermissions"))
        rows: list[Any] = [(mailbox, SELF, ["FullAccess", "ReadPermission"], False, False)]
        rows.extend(
            (mailbox, g.trustee, ["FullAccess", *g.access_rights], False, False)
            for g in listed(self.tenant, mailbox.id, "FullAccess")
            # Entries of deleted accounts (a bare SID) only with -IncludeUnresolvedPermissions (live, issue #9089).
            if unresolved or g.trustee.kind != "sid"
        )
        rows.extend((mailbox, *ace) for ace in INHERITED_ACES)
        if user_name is not None:
            trustee = self.trustee(user_name)
            rows = [r for r in rows if r[1] == trustee]
            if not rows and self.tenant.behaviour.exchange_user_filter_not_found:
                raise CmdletError(
                    404, "NotFound", "ExA4F2B1", "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                    f"No permissions were found for the user:{user_name}", target=user_name,
                )  # fmt: skip
        outcome = self._limit(params, rows)
        outcome.render = lambda row: mailbox_permission_row(self.tenant, *row)
        return outcome

    def add_mailbox_permission(self, params: Params) -> Outcome:
        mailbox = self.mailbox(params.text("Identity", required=True) or "")
        trustee = self.trustee(params.text("User", required=True) or "")
        rights = params.rights(
            "AccessRights",
            {"FullAccess", "ChangeOwner", "ChangePermission", "DeleteItem", "ExternalAccount", "ReadPermission"},
        )
        if "FullAccess" in rights:
            extra = tuple(r for r in rights if r != "FullAccess")
            self.tenant.rights.grant(
                "FullAccess", mailbox.id, trustee, self.tenant.now(), mono=time.monotonic(), access_rights=extra
            )
        return Outcome()

    def remove_mailbox_permission(self, params: Params) -> Outcome:
        mailbox = self.mailbox(params.text("Identity", required=True) or "")
        trustee = self.trustee(params.text("User", required=True) or "")
        rights = params.rights(
            "AccessRights",
            {"FullAccess", "ChangeOwner", "ChangePermission", "DeleteItem", "ExternalAccount", "ReadPermission"},
        )
        now = self.tenant.now()
        if "FullAccess" in rights and self.tenant.rights.revoke(
            "FullAccess", mailbox.id, trustee, now, mono=time.monotonic()
        ):
            return Outcome()
        label = self.tenant.trustee_label(trustee)
        return Outcome(
            warnings=[
                f'Can\'t remove the access control entry on the object "{mailbox.name}" for account "{label}" because the ACE doesn\'t exist on the object.'
            ]
        )

    # --- SMTP AUTH switches ----------------------------------------------------------------------
    def get_cas_mailbox(self, params: Params) -> Outcome:
        identity = params.text("Identity")
        if identity is not None:
            items: list[Any] = [self.mailbox(identity)]
        else:
            items = self.tenant.mailboxes()
        outcome = self._limit(params, items)
        outcome.render = lambda user: cas_row(self.tenant, user)
        return outcome

    def set_cas_mailbox(self, params: Params) -> Outcome:
        mailbox = self.mailbox(params.text("Identity", required=True) or "")
        if params.has("SmtpClientAuthenticationDisabled"):
            value = params.get("SmtpClientAuthenticationDisabled")
            if value is not None and not isinstance(value, bool):
                raise bad_parameter(
                    "Cannot process argument transformation on parameter 'SmtpClientAuthenticationDisabled'."
                )
            if value != mailbox.smtp_auth_disabled:
                mailbox.smtp_auth_disabled = value
                self.tenant.changes += 1
                return Outcome()
        return Outcome(warnings=[_no_change(mailbox)])

    def get_transport_config(self, params: Params) -> Outcome:
        del params
        return Outcome(items=[transport_row(self.tenant)])

    def set_transport_config(self, params: Params) -> Outcome:
        value = params.get("SmtpClientAuthenticationDisabled")
        if not isinstance(value, bool):
            raise bad_parameter(
                "Cannot process argument transformation on parameter 'SmtpClientAuthenticationDisabled'."
            )
        if value == self.tenant.smtp_client_authentication_disabled:
            return Outcome(
                warnings=[
                    "The command completed successfully but no settings of 'Transport Settings' have been modified."
                ]
            )
        self.tenant.smtp_client_authentication_disabled = value
        self.tenant.changes += 1
        return Outcome()


def _anr_fields(user: User) -> list[str]:
    return [user.display_name, user.alias, user.upn, *(user.addresses()), user.given_name or "", user.surname or ""]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _no_change(mailbox: User) -> str:
    return f"The command completed successfully but no settings of '{mailbox.name}' have been modified."

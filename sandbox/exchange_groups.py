"""Groups and recipients behind InvokeCommand: ``Get-DistributionGroup``, ``Get-DistributionGroupMember`` and
``Get-Recipient``, which is how a client sees which mail-enabled security groups exist, who is in them (one level
at a time: a nested group is a member row of its own) and what a recipient ``Name`` stands for.

Shapes, from Microsoft's cmdlet reference (office-docs-powershell ``exchange/exchange-ps/ExchangePowerShell``):

- ``Get-DistributionGroupMember -Identity G [-ResultSize]`` lists the *direct* members of a distribution group or
  mail-enabled security group as ReducedRecipient rows (``Name``, ``PrimarySmtpAddress``, ``RecipientType``,
  ``RecipientTypeDetails``, ``ExternalDirectoryObjectId`` …); a nested group appears as one row whose
  ``RecipientType`` is ``MailUniversalSecurityGroup``, and scripts recurse into it themselves
  (``Get-DistributionGroupMember.md``; scriptrunner/ActionPacks ``Get-EODistributionGroupMailboxes.ps1`` recurses on
  that RecipientType). An Identity that is not such a group is ``ManagementObjectNotFoundException``.
- ``Get-DistributionGroup [-Identity] [-RecipientTypeDetails MailUniversalSecurityGroup] [-ResultSize]``.
- ``Get-Recipient -Identity X``: any mail-enabled object (mailbox, mail user, guest, group); the reference's live
  captures say ``GrantSendOnBehalfTo`` Names are resolved with it, groups included.

Every group in the sandbox that has a mail address is a mail-enabled security group (``Universal,
SecurityEnabled``); a group without one is not a recipient and these cmdlets do not see it. Like the other
listings, an unlimited result is returned in pages and more than ``ResultSize`` (default 1000) items bring the
"only the first N items" warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.exchange_cmdlets import Cmdlets, Outcome, Params
from sandbox.exchange_errors import ambiguous, bad_parameter, not_found
from sandbox.exchange_output import COLLECTION
from sandbox.state import AmbiguousIdentityError, Group, Tenant, User

SECURITY_GROUP = "MailUniversalSecurityGroup"
GROUP_CMDLETS = ("Get-DistributionGroup", "Get-DistributionGroupMember", "Get-Recipient")


def register_group_cmdlets(cmdlets: Cmdlets) -> None:
    """Add the group and recipient cmdlets to the sandbox's cmdlet table."""
    groups = GroupCmdlets(cmdlets)
    handlers: dict[str, tuple[Callable[[Params], Outcome], set[str]]] = {
        "get-distributiongroup": (groups.get_distribution_group, {"identity", "resultsize", "recipienttypedetails"}),
        "get-distributiongroupmember": (groups.get_distribution_group_member, {"identity", "resultsize", "includesoftdeletedobjects"}),
        "get-recipient": (groups.get_recipient, {"identity", "resultsize", "recipienttypedetails"}),
    }  # fmt: skip
    cmdlets.handlers.update(handlers)


class GroupCmdlets:
    def __init__(self, cmdlets: Cmdlets) -> None:
        self.cmdlets = cmdlets
        self.tenant = cmdlets.tenant

    def get_distribution_group(self, params: Params) -> Outcome:
        identity = params.text("Identity")
        kind = params.text("RecipientTypeDetails")
        if kind is not None and kind.lower() not in {
            SECURITY_GROUP.lower(),
            "mailuniversaldistributiongroup",
            "roomlist",
        }:
            raise bad_parameter(f"Cannot bind parameter 'RecipientTypeDetails' to the value '{kind}'.")
        if identity is not None:
            items: list[Any] = [self._group(identity)]
        else:
            items = [g for g in self.tenant.groups.values() if g.mail]
        if kind is not None and kind.lower() != SECURITY_GROUP.lower():
            items = []  # the sandbox's mail-enabled groups are all security groups
        outcome = self.cmdlets._limit(params, items)
        outcome.render = lambda group: group_row(self.tenant, group)
        return outcome

    def get_distribution_group_member(self, params: Params) -> Outcome:
        group = self._group(params.text("Identity", required=True) or "")
        members = [self._member(object_id) for object_id in sorted(group.members)]
        outcome = self.cmdlets._limit(params, [m for m in members if m is not None])
        outcome.render = lambda member: recipient_row(self.tenant, member)
        return outcome

    def get_recipient(self, params: Params) -> Outcome:
        identity = params.text("Identity")
        kind = (params.text("RecipientTypeDetails") or "").lower()
        if identity is not None:
            found = self._recipient(identity)
            if found is None:
                raise not_found(identity)
            items: list[Any] = [found]
        else:
            users: list[Any] = [u for u in self.tenant.users.values() if _is_recipient(u)]
            items = users + [g for g in self.tenant.groups.values() if g.mail]
        if kind:
            items = [i for i in items if str(recipient_row(self.tenant, i)["RecipientTypeDetails"]).lower() == kind]
        outcome = self.cmdlets._limit(params, items)
        outcome.render = lambda item: recipient_row(self.tenant, item)
        return outcome

    # --- resolution --------------------------------------------------------------------------------------------
    def _recipient(self, identity: str) -> User | Group | None:
        try:
            found = self.tenant.recipient(identity)
        except AmbiguousIdentityError as exc:
            raise ambiguous(identity) from exc
        if isinstance(found, User) and _is_recipient(found):
            return found
        if isinstance(found, Group) and found.mail:
            return found
        return None

    def _group(self, identity: str) -> Group:
        found = self._recipient(identity)
        if not isinstance(found, Group):
            raise not_found(identity)
        return found

    def _member(self, object_id: str) -> User | Group | None:
        user = self.tenant.users.get(object_id)
        if user is not None:
            return user if _is_recipient(user) else None
        group = self.tenant.groups.get(object_id)
        return group if group is not None and group.mail else None


def _is_recipient(user: User) -> bool:
    """A mailbox, or a guest (a mail user); a member account without a mailbox is no Exchange recipient."""
    return user.has_mailbox or user.user_type == "Guest"


def group_row(tenant: Tenant, group: Group) -> dict[str, Any]:
    row = recipient_row(tenant, group)
    row.update(
        {
            "GroupType": "Universal, SecurityEnabled",
            "ManagedBy@odata.type": COLLECTION,
            "ManagedBy": [],
            "MemberJoinRestriction": "Closed",
            "RequireSenderAuthenticationEnabled": True,
        }
    )
    return row


def recipient_row(tenant: Tenant, item: User | Group) -> dict[str, Any]:
    """A ReducedRecipient row, as Get-Recipient and Get-DistributionGroupMember print one."""
    del tenant
    if isinstance(item, Group):
        mail = item.mail or ""
        name, alias, display = item.display_name, mail.split("@", 1)[0], item.display_name
        kind = details = SECURITY_GROUP
        object_id, guid, addresses = item.id, item.id, [f"SMTP:{mail}"]
    else:
        mail = item.mail or item.upn
        name, alias, display = item.name, item.alias, item.display_name
        kind = "UserMailbox" if item.has_mailbox else "MailUser"
        details = item.recipient_type_details if item.has_mailbox else "GuestMailUser"
        object_id, guid, addresses = item.id, item.mailbox_guid or item.id, list(item.proxy_addresses)
    return {
        "Identity": name,
        "Name": name,
        "Alias": alias,
        "DisplayName": display,
        "PrimarySmtpAddress": mail,
        "WindowsLiveID": "" if isinstance(item, Group) else item.upn,
        "RecipientType": kind,
        "RecipientTypeDetails": details,
        "ExternalDirectoryObjectId": object_id,
        "Guid@data.type": "System.Guid",
        "Guid@odata.type": "#Guid",
        "Guid": guid,
        "EmailAddresses@odata.type": COLLECTION,
        "EmailAddresses": addresses,
    }

"""What a confirmation card warns about: a grant *to* a privileged or disabled account, or *on* an admin's mailbox.

An account counts as privileged when its address names an administrator (admin@, it-admin@, administrator@ …,
:func:`graph.recipients.looks_like_admin`) or when it is a member of the Slack IT group (its Slack user, found by
email address, is in ``slack.it_usergroup_id``). Exchange says whether the account is disabled, a group, a guest,
or unknown. Looking up never blocks the card: what cannot be looked up is said on the card instead.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.changes import Change
from bot.context import BotContext
from graph.permissions_model import SID
from graph.recipients import Recipient, look_up, looks_like_admin
from plugin.errors import EmailDoctorError

log = logging.getLogger(__name__)


async def _in_it_group(ctx: BotContext, address: str) -> bool:
    if not ctx.settings.slack.it_usergroup_id and not ctx.settings.slack.it_user_ids:
        return False
    try:
        response = await ctx.poster.client.users_lookupByEmail(email=address)
    except SlackApiError:
        return False  # no Slack user with that address (users_not_found), or the lookup is not allowed
    user = (response.get("user") or {}).get("id")
    return bool(user) and await ctx.approvers.is_it(str(user), fresh=False)


async def _privileged(ctx: BotContext, address: str) -> str | None:
    if looks_like_admin(address):
        return "its address names an administrator account"
    if await _in_it_group(ctx, address):
        return "it belongs to a member of the IT group"
    return None


async def _recipient(ctx: BotContext, identity: str) -> tuple[Recipient | None, str | None]:
    if ctx.permissions is None or SID.match(identity):
        return None, None
    try:
        return await look_up(ctx.permissions.exchange, identity), None
    except EmailDoctorError as exc:
        log.warning("could not look up %s for a confirmation card: %s", identity, exc)
        return None, f"Exchange could not be asked about {blocks.escape(identity)} ({blocks.escape(str(exc))})."


async def warnings_for(ctx: BotContext, change: Change) -> list[str]:
    """The card's warnings for ``change`` (mrkdwn, escaped), most serious first."""
    found: list[str] = []
    trustee, mailbox = change.trustee, change.mailbox
    who, failed = await _recipient(ctx, trustee)
    if failed:
        found.append(failed)
    if change.kind == "grant":
        why = await _privileged(ctx, who.address if who else trustee)
        if why:
            found.append(f"*{blocks.escape(trustee)} is a privileged account* ({why}).")
        if who is not None and who.disabled:
            found.append(f"*{blocks.escape(trustee)}'s account is disabled*: nobody should need rights through it.")
        if who is not None and who.guest:
            found.append(f"*{blocks.escape(trustee)} is a guest from outside the organisation.*")
        mailbox_why = await _privileged(ctx, mailbox)
        if mailbox_why:
            found.append(
                f"*{blocks.escape(mailbox)} is an admin's mailbox* ({mailbox_why}): "
                f"{blocks.escape(trustee)} could act as an administrator."
            )
    if who is None and not failed and ctx.permissions is not None and not SID.match(trustee):
        found.append(f"Exchange knows no recipient {blocks.escape(trustee)}: the change will fail as it stands.")
    return found

"""The buttons: *Request fix* (anyone), *Approve* / *Deny* (IT only; never the requester), and *Confirm* /
*Cancel* on the card every `/sendas grant|revoke` shows first (only the person who asked; once; 15 minutes)."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import approvals, blocks, confirmations
from bot.change_views import SlackChangeView, direct_reply
from bot.changes import Change, parse_right
from bot.context import BotContext
from bot.errors import after_ack
from bot.grant_grammar import effect_words
from bot.slack_io import Posted
from bot.store import RequestKind, SelfApprovalError
from plugin.errors import ConfigError, EmailDoctorError

SELF_APPROVAL = "You asked for this change, so someone else in IT has to approve it."


def register(app: AsyncApp, ctx: BotContext) -> None:
    @app.action(blocks.ACTION_REQUEST_FIX)
    async def request_fix(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        after_ack(ctx, body, respond, _request_fix(ctx, body, action), name="request_fix")

    @app.action(blocks.ACTION_APPROVE)
    async def approve(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        after_ack(ctx, body, respond, _decide(ctx, body, action, approve=True), name="approve")

    @app.action(blocks.ACTION_DENY)
    async def deny(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        after_ack(ctx, body, respond, _decide(ctx, body, action, approve=False), name="deny")

    @app.action(blocks.ACTION_CONFIRM)
    async def confirm(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        after_ack(ctx, body, respond, _use_card(ctx, body, action, respond, confirm=True), name="confirm")

    @app.action(blocks.ACTION_CANCEL)
    async def cancel(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        after_ack(ctx, body, respond, _use_card(ctx, body, action, respond, confirm=False), name="cancel")


async def _say(ctx: BotContext, respond: AsyncRespond, text: str, *, replace: bool, in_channel: bool = False) -> None:
    payload = blocks.redacted({"text": text, "blocks": blocks.plain(text)[1]}, ctx.secrets)
    kind = "in_channel" if in_channel else "ephemeral"
    await respond(response_type=kind, replace_original=replace, **payload)


async def _use_card(
    ctx: BotContext, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, *, confirm: bool
) -> None:
    """Confirm or Cancel on a /sendas card: only its author, before it expires, once (across replicas)."""
    user = body["user"]["id"]
    proposal = confirmations.unseal(str(action.get("value", "")), confirmations.card_secret(ctx.settings))
    change = proposal.change
    effect = blocks.escape(effect_words(change))
    if user != proposal.asked_by:
        await _say(ctx, respond, f"Only <@{proposal.asked_by}>, who asked for it, can use this card.", replace=False)
        return
    now = ctx.now()
    if now >= proposal.expires_at:
        when = f"{proposal.expires_at:%H:%M} UTC"
        await _say(
            ctx, respond, f":hourglass: This card expired at {when}; nothing changed. Run /sendas again.", replace=True
        )
        return
    direct = confirm and await ctx.approvers.is_it(user)  # asked afresh: someone just removed from IT cannot act
    if not await ctx.store.claim_once(proposal.claim_key, now):
        await _say(ctx, respond, "This card was already used; nothing more was done.", replace=False)
        return
    if not confirm:
        await ctx.store.append_audit(
            user, f"{change.kind}.cancelled", change.subject(), "ok", detail=effect_words(change)
        )
        await _say(ctx, respond, f":no_entry_sign: Cancelled: nothing changed ({effect} was not done).", replace=True)
        return
    if not direct:
        request = await approvals.open_request(
            ctx, change, requested_by=user, origin_channel=proposal.channel, origin_thread_ts=None, test_user=None
        )
        text = f"Only IT can change rights directly, so request {request.id} went to IT for approval: {effect}."
        await _say(ctx, respond, text, replace=True)
        return
    try:  # recorded first: from here on the reconciler finishes it whatever happens to this replica
        record = await ctx.pipeline.record(
            RequestKind(change.kind), change.right, change.mailbox, change.trustee, by=user, duration=change.duration
        )
    except EmailDoctorError as exc:
        text = f":x: Could not record the change ({blocks.escape(str(exc))}); nothing changed. Run /sendas again."
        await _say(ctx, respond, text, replace=True)
        return
    await _say(ctx, respond, f":hourglass_flowing_sand: Confirmed: {effect}. Applying in Exchange…", replace=True)

    async def reply(message: blocks.Message, in_channel: bool) -> None:
        await _say(ctx, respond, message[0], replace=not in_channel, in_channel=in_channel)
        if in_channel:  # the outcome is in the channel for all to see; the card says so instead of "Applying…"
            await _say(
                ctx, respond, f":white_check_mark: Confirmed: {effect}. The outcome is in the channel.", replace=True
            )

    if await ctx.pipeline.drive(record.id, view=SlackChangeView(ctx, reply)) is None:
        # Another replica's reconciler took it first: it posts the outcome in the approvals channel.
        await _say(ctx, respond, direct_reply(record), replace=True)


async def _request_fix(ctx: BotContext, body: dict[str, Any], action: dict[str, Any]) -> None:
    user = body["user"]["id"]
    try:
        value = json.loads(action["value"])
        change = Change("grant", parse_right(value["right"]), value["mailbox"], value["trustee"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError("this button's data is not valid; run the test again") from exc
    channel = value.get("channel") or body["channel"]["id"]
    thread_ts = value.get("thread_ts") or None
    request = await approvals.open_request(
        ctx,
        change,
        requested_by=user,
        origin_channel=channel,
        origin_thread_ts=thread_ts,
        test_user=value.get("user"),
    )
    # Replace the button, so the same fix is not requested twice from this report.
    message = body.get("message") or {}
    kept = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
    note = f":key: Fix requested by <@{user}> (request {request.id}); waiting for IT approval."
    kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    await ctx.poster.update(Posted(body["channel"]["id"], message["ts"]), (message.get("text", note), kept))
    where = f"<#{ctx.settings.slack.approvals_channel}>"
    await ctx.poster.post(channel, blocks.plain(f"{note} The approval card is in {where}."), thread_ts=thread_ts)


async def _decide(ctx: BotContext, body: dict[str, Any], action: dict[str, Any], *, approve: bool) -> None:
    user, channel = body["user"]["id"], body["channel"]["id"]
    try:
        request_id = int(action["value"])
    except (ValueError, KeyError) as exc:
        raise ConfigError("this button's data is not valid") from exc
    request = await ctx.store.get_request(request_id)
    verb = "approve" if approve else "deny"
    if not await ctx.approvers.is_it(user):
        why = f"Only IT admins ({ctx.approvers.handle}) can {verb} changes to mailbox rights."
        await approvals.refuse(ctx, request, user, channel, why, verb)
        return
    if approve and request.requested_by == user:
        await approvals.refuse(ctx, request, user, channel, SELF_APPROVAL, verb)
        return
    try:
        won = await ctx.store.decide(request_id, user, approve=approve, now=ctx.now())
    except SelfApprovalError:
        await approvals.refuse(ctx, request, user, channel, SELF_APPROVAL, verb)
        return
    if not won:
        current = await ctx.store.get_request(request_id)
        await ctx.poster.ephemeral(channel, user, blocks.plain(approvals.already_decided(current, ctx.now())))
        return
    if approve:
        await approvals.approve(ctx, request)
    else:
        await approvals.deny(ctx, request, user)

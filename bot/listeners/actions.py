"""The buttons: *Request fix* (anyone), *Approve* / *Deny* (IT only; never the requester)."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import approvals, blocks
from bot.changes import Change, parse_right
from bot.context import BotContext
from bot.errors import after_ack
from bot.slack_io import Posted
from bot.store import SelfApprovalError
from plugin.errors import ConfigError

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

"""Fix requests and their approval: who may decide, and what happens on Approve (the re-test that follows a
granted fix is :mod:`bot.retest`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot import blocks
from bot.changes import Change, describe_duration
from bot.context import BotContext
from bot.grant_checks import warnings_for
from bot.grant_grammar import effect_words
from bot.slack_io import Posted
from bot.store import FixRequest, RequestKind, RequestStatus
from plugin.errors import ConfigError


def change_of(request: FixRequest) -> Change:
    return Change(str(request.kind), request.right, request.mailbox, request.trustee, request.duration)


def change_words(change: Change) -> str:
    duration = describe_duration(change.duration) if change.duration else None
    return blocks.describe_change(change.kind, change.right, change.trustee, change.mailbox, duration)


async def open_request(
    ctx: BotContext,
    change: Change,
    *,
    requested_by: str,
    origin_channel: str,
    origin_thread_ts: str | None,
    test_user: str | None,
) -> FixRequest:
    """Record the request and post its approval card to the IT channel."""
    channel = ctx.settings.slack.approvals_channel
    if not channel:
        raise ConfigError("no approvals channel is set: EMAILDOCTOR_SLACK__APPROVALS_CHANNEL")
    now = ctx.now()
    request = await ctx.store.create_request(
        kind=RequestKind(change.kind),
        right=change.right,
        mailbox=change.mailbox,
        trustee=change.trustee,
        duration=change.duration,
        requested_by=requested_by,
        origin_channel=origin_channel,
        origin_thread_ts=origin_thread_ts,
        origin_test_user=test_user,
        expires_at=now + timedelta(hours=ctx.settings.slack.request_ttl_hours),
        now=now,
    )
    await ctx.store.append_audit(
        requested_by, f"{change.kind}.requested", change.subject(), "ok", request_id=request.id
    )
    warnings = await warnings_for(ctx, change)
    card = await ctx.poster.post(channel, _card(ctx, request, reason_of(request), warnings=warnings))
    await ctx.store.set_card(request.id, card.channel, card.ts)
    return request


def _card(
    ctx: BotContext, request: FixRequest, reason: str, status: str | None = None, warnings: Sequence[str] = ()
) -> blocks.Message:
    change = change_of(request)
    return blocks.approval_card(
        effect=effect_words(change),
        warnings=warnings,
        request_id=str(request.id),
        requested_by=request.requested_by,
        change=change_words(change),
        reason=reason,
        expires=f"<!date^{int(request.expires_at.timestamp())}^{{date_short_pretty}} {{time}}|{request.expires_at:%Y-%m-%d %H:%M} UTC>",
        it_handle=ctx.approvers.handle if ctx.settings.slack.it_usergroup_id else None,
        status=status,
    )


def reason_of(request: FixRequest) -> str:
    if request.origin_test_user:
        return f"the email test of {request.origin_test_user} failed with Send As denied: this right is missing"
    return "asked with /sendas"


async def update_card(ctx: BotContext, request: FixRequest, status: str) -> None:
    if request.card_channel and request.card_ts:
        await ctx.poster.update(
            Posted(request.card_channel, request.card_ts), _card(ctx, request, reason_of(request), status)
        )


async def tell_origin(ctx: BotContext, request: FixRequest, text: str) -> None:
    await ctx.poster.post(request.origin_channel, blocks.plain(text), thread_ts=request.origin_thread_ts)


async def refuse(ctx: BotContext, request: FixRequest, user: str, channel: str, why: str, action: str) -> None:
    await ctx.store.append_audit(
        user, f"{action}.refused", change_of(request).subject(), "refused", request_id=request.id, detail=why
    )
    await ctx.poster.ephemeral(channel, user, blocks.plain(why))


async def approve(ctx: BotContext, request: FixRequest) -> None:
    """The approver won the decision, which wrote the change: drive it (bot.pipeline); the card follows it."""
    change = await ctx.store.request_change(request.id)
    if change is None:
        raise ConfigError(f"request {request.id} was approved but has no change recorded")
    await ctx.pipeline.drive(change.id)


async def deny(ctx: BotContext, request: FixRequest, decider: str) -> None:
    await ctx.store.append_audit(
        decider, f"{request.kind}.denied", change_of(request).subject(), "ok", request_id=request.id
    )
    await update_card(ctx, request, f":no_entry: Denied by <@{decider}>.")
    await tell_origin(
        ctx, request, f":no_entry: <@{decider}> denied the request to {change_words(change_of(request))}."
    )


def already_decided(request: FixRequest, now: datetime) -> str:
    if request.status is RequestStatus.EXPIRED or (
        request.status is RequestStatus.PENDING and request.expires_at <= now
    ):
        return f"This request expired at {request.expires_at:%Y-%m-%d %H:%M} UTC; ask again from a new test."
    who = f" by <@{request.decided_by}>" if request.decided_by else ""
    if request.status is RequestStatus.DENIED:
        return f"This request was already denied{who}."
    outcome = {
        RequestStatus.APPROVED: ", and the change is under way in Exchange",
        RequestStatus.DONE: ", and the change is done",
        RequestStatus.FAILED: ", but the change failed",
    }
    return f"This request was already approved{who}{outcome.get(request.status, '')}."

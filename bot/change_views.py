"""How a change looks in Slack: the approval card and its thread, the reply to IT's own /sendas, the notices of
time limits. Every view is rendered from the change's row, so showing it again (after a 429 storm or a restart)
shows the same thing; :mod:`bot.pipeline` decides when."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from bot import approvals, blocks, retest
from bot.changes import Change, describe_duration
from bot.context import BotContext
from bot.pipeline import KEPT, found_unchanged
from bot.store import ChangeOrigin, ChangeRecord, ChangeState
from plugin.resolve import RIGHT_WORDS

_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
Reply = Callable[[blocks.Message, bool], Awaitable[None]]
"""Answers the person who ran the command: (message, in_channel)."""


def words_of(change: ChangeRecord) -> str:
    return approvals.change_words(
        Change(str(change.kind), change.right, change.mailbox, change.trustee, change.duration)
    )


def _done(change: ChangeRecord) -> str:
    return "already in place" if found_unchanged(change) else "done"


def _person(who: str) -> str:
    """A Slack user as a mention; anyone else (``emaildoctor grant`` records ``cli:user@host`` or the admin's
    sign-in) as plain text."""
    return f"<@{who}>" if _SLACK_USER.fullmatch(who) else blocks.escape(who)


def _detail(change: ChangeRecord, default: str = "") -> str:
    """What Exchange or the pipeline said, shown as text (it can quote names someone typed)."""
    return blocks.escape(change.detail or default)


def _rights_of(change: ChangeRecord) -> str:
    return f"{blocks.escape(change.trustee)}'s {RIGHT_WORDS[change.right]} on {blocks.escape(change.mailbox)}"


def _when(change: ChangeRecord) -> str:
    return f"{change.due_at:%H:%M:%S} UTC"


def card_status(change: ChangeRecord) -> str:
    """The approval card's status line for each state of the change."""
    by = f"Approved by {_person(change.approved_by)}"
    if change.state is ChangeState.VERIFIED:
        status = f":white_check_mark: {by}: {_done(change)}, read back from Exchange."
        if change.duration:
            status += f" It is revoked automatically after {describe_duration(change.duration)}."
        return status
    if change.state is ChangeState.FAILED:
        return f":x: {by}, but the change did not run: {_detail(change)}"
    if change.state is ChangeState.APPLIED:
        return f":hourglass_flowing_sand: {by}: Exchange accepted it; reading it back again at {_when(change)}."
    if change.attempts and change.state is ChangeState.APPROVED:
        return f":hourglass_flowing_sand: {by}; {_detail(change)}. emaildoctor tries again at {_when(change)}."
    return f":hourglass_flowing_sand: {by}; applying in Exchange…"


def direct_reply(change: ChangeRecord) -> str:
    words = words_of(change)
    if change.state is ChangeState.VERIFIED:
        done = "done" if _done(change) == "done" else "already so, nothing changed"
        tail = f" It is revoked automatically after {describe_duration(change.duration)}." if change.duration else ""
        return f":white_check_mark: {words}: {done} (read back from Exchange).{tail}"
    if change.state is ChangeState.FAILED:
        return f":x: Could not {words}: {_detail(change)}"
    return (
        f":hourglass_flowing_sand: {words}: recorded (change {change.id}); {_detail(change, 'applying')}. "
        "emaildoctor keeps at it and posts the outcome in the approvals channel."
    )


def unsettled_lines(changes: list[ChangeRecord]) -> list[str]:
    """Changes not finished yet, overdue time limits first: what /mailaudit last shows IT."""
    lines = []
    for change in sorted(changes, key=lambda c: (c.origin is not ChangeOrigin.TIME_LIMIT, c.id)):
        if change.origin is ChangeOrigin.TIME_LIMIT:
            ends = f"{change.expires_at:%Y-%m-%d %H:%M} UTC" if change.expires_at else "?"
            what = f":rotating_light: time limit of {_rights_of(change)}"
            lines.append(f"{what} ran out at {ends}; {change.attempts} attempts, last: {_detail(change, 'none yet')}")
        else:
            lines.append(f":hourglass_flowing_sand: change {change.id}: {words_of(change)} is {change.state}")
    return lines


class SlackChangeView:
    """The bot's view of changes; ``reply`` answers the person while they wait (IT's own /sendas)."""

    def __init__(self, ctx: BotContext, reply: Reply | None = None) -> None:
        self.ctx = ctx
        self.reply = reply

    async def show(self, change: ChangeRecord) -> None:
        if change.origin is ChangeOrigin.REQUEST and change.request_id is not None:
            await self._show_request(change)
        elif change.origin is ChangeOrigin.DIRECT:
            if self.reply is not None:
                await self.reply(blocks.plain(direct_reply(change)), change.state is ChangeState.VERIFIED)
            elif change.state.final:  # finished by the reconciler: nobody is waiting for a reply any more
                await self._notice(f"{direct_reply(change)} (change {change.id} by {_person(change.requested_by)})")
        elif change.state.final:
            await self._notice(self._time_limit_words(change))

    async def escalate(self, change: ChangeRecord) -> None:
        words = _rights_of(change)
        expired = f"{change.expires_at:%Y-%m-%d %H:%M} UTC" if change.expires_at else "?"
        await self._notice(
            f":rotating_light: The time limit of {words} ran out at {expired} (granted by {_person(change.approved_by)}), "
            f"but removing it has failed {change.attempts} times: {_detail(change)}. emaildoctor keeps trying; "
            "remove it by hand if it must go now (`/mailaudit last` lists every overdue time limit)."
        )

    async def _show_request(self, change: ChangeRecord) -> None:
        ctx = self.ctx
        assert change.request_id is not None
        request = await ctx.store.get_request(change.request_id)
        await approvals.update_card(ctx, request, card_status(change))
        if not change.state.final:
            return
        by = _person(change.approved_by)
        if change.state is ChangeState.VERIFIED:
            text = f":white_check_mark: {by} approved: {words_of(change)} is {_done(change)}."
        else:
            text = f":x: {by} approved the fix, but it did not run: {_detail(change)}"
        await approvals.tell_origin(ctx, request, text)
        if change.state is ChangeState.VERIFIED and request.origin_test_user and change.kind == "grant":
            ctx.tasks.spawn(retest.follow(ctx, change.id), name=f"retest-{change.id}")  # a row: any replica

    def _time_limit_words(self, change: ChangeRecord) -> str:
        words = _rights_of(change)
        if change.state is ChangeState.VERIFIED and (change.detail or "").startswith(KEPT):
            return (
                f":alarm_clock: The time limit ran out: {words} stays, because it was held before the time-bound "
                f"grant (granted by {_person(change.approved_by)})."
            )
        if change.state is ChangeState.VERIFIED:
            gone = "had already been removed" if _done(change) != "done" else "was removed"
            return f":alarm_clock: The time limit ran out: {words} {gone} (granted by {_person(change.approved_by)})."
        return f":x: The time limit ran out but removing {words} failed: {_detail(change)}. Remove it by hand."

    async def _notice(self, text: str) -> None:
        channel = self.ctx.settings.slack.approvals_channel
        if channel:
            await self.ctx.poster.post(channel, blocks.plain(text))

"""The /sendas confirmation card as a person meets it: type the command, find the card Slack shows only to them,
click Confirm or Cancel."""

from __future__ import annotations

from sandbox.slack import SlackClient, SlackDelivery, SlackMessage, SlackWorkspace

CONFIRM, CANCEL = "confirm_change", "cancel_change"
WITHIN = 20.0


async def card_for(workspace: SlackWorkspace, user: str, needle: str = "", *, after: int = 0) -> SlackMessage:
    """The newest confirmation card shown to ``user`` (beyond the first ``after``) whose text contains ``needle``."""

    def find() -> SlackMessage | None:
        cards = [m for m in workspace.ephemeral_messages(user) if CONFIRM in m.action_ids() or "Confirm:" in m.text]
        cards = [m for m in cards[after:] if needle in m.all_text()]
        return cards[-1] if cards else None

    return await workspace.wait_for(find, timeout=WITHIN)


def cards_shown(workspace: SlackWorkspace, user: str) -> int:
    return sum(1 for m in workspace.ephemeral_messages(user) if m.text.startswith("Confirm:"))


async def ask(
    slack: SlackClient, workspace: SlackWorkspace, user: str, text: str, channel: str = "C0HELPDESK"
) -> SlackMessage:
    """``user`` types ``/sendas <text>``; returns the card it shows them."""
    before = cards_shown(workspace, user)
    delivery = await slack.slash_command(user, "/sendas", text, channel)
    assert delivery.status == 200, (delivery.status, delivery.error, delivery.body)
    return await card_for(workspace, user, after=before)


async def ask_and_confirm(
    slack: SlackClient, workspace: SlackWorkspace, user: str, text: str, channel: str = "C0HELPDESK"
) -> SlackDelivery:
    card = await ask(slack, workspace, user, text, channel)
    click = await slack.click(user, card, CONFIRM)
    assert click.status == 200, (click.status, click.error, click.body)
    return click

"""What a person does in Slack, prepared once for either way Slack delivers it to the app.

:class:`Interactions` turns "Hannah types ``/emailtest alice``" or "Ivan clicks Approve" into an
:class:`Interaction`: the payload (built by ``payloads``), the response_url and trigger_id Slack mints
for it, and both wire shapes — the form body of an HTTP request and the object of a Socket Mode
envelope. It also applies what the app's acknowledgement means, the same for both: a slash command's
ack with a body is shown as a message, a view submission's ``response_action`` acts on the view.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sandbox.slack.blocks import normalize_blocks, validate_blocks, validate_view
from sandbox.slack.model import InteractionKind, JsonObject, MessageRef, SlackMessage, SlackView, User
from sandbox.slack.payloads import (
    action_object,
    block_actions_payload,
    find_element,
    slash_command_fields,
    view_submission_payload,
)
from sandbox.slack.workspace import SlackWorkspace


@dataclass(frozen=True)
class Interaction:
    kind: InteractionKind
    user: User
    payload: JsonObject
    """What the app receives: the ``block_actions`` / ``view_submission`` payload, or a slash command's
    fields as one object (the ``payload`` of a Socket Mode ``slash_commands`` envelope)."""
    form: str
    """The same as an HTTP body: the slash command's fields form-encoded, or ``payload=<json>``."""
    response_url: str | None
    trigger_id: str
    channel: str | None = None
    """Where a slash command was typed (its ack message goes there)."""
    view: SlackView | None = None
    """The view a submission came from."""


class Interactions:
    """Builds interactions for ``workspace``; response_urls point at ``slack_base_url``."""

    def __init__(self, workspace: SlackWorkspace, slack_base_url: str) -> None:
        self.workspace = workspace
        self.slack_base_url = slack_base_url.rstrip("/").removesuffix("/api")

    async def slash_command(self, user_id: str, command: str, text: str, channel_id: str | None) -> Interaction:
        """``/command text`` typed by ``user_id`` in ``channel_id`` (default: their DM with the bot)."""
        if not command.startswith("/") or " " in command:
            raise ValueError(f"a slash command looks like '/emailtest', not {command!r}")
        user = self.person(user_id)
        if channel_id is None:
            channel_id = (await self.workspace.open_dm([user.id]))[0].id
        channel = self.workspace.find_channel(channel_id)
        if channel is None:
            raise ValueError(f"no channel {channel_id!r} in the workspace")
        if user.id not in channel.members:
            raise ValueError(f"{user.id} is not a member of {channel.id}: Slack would not show them the channel")
        response_url = self.response_url(
            self.workspace.mint_response_url("slash_command", channel=channel.id, user=user.id).id
        )
        trigger = self.workspace.mint_trigger(user.id)
        fields = slash_command_fields(
            self.workspace,
            user=user,
            channel=channel,
            command=command,
            text=text,
            response_url=response_url,
            trigger_id=trigger.id,
        )
        return Interaction(
            "slash_command", user, dict(fields), urlencode(fields), response_url, trigger.id, channel=channel.id
        )

    def click(
        self, user_id: str, message_ref: SlackMessage | MessageRef, action_id: str, value: Any, block_id: str | None
    ) -> Interaction:
        """``user_id`` clicks the element ``action_id`` of the message's latest version."""
        user = self.person(user_id)
        message = self.workspace.latest(message_ref)
        if message.deleted:
            raise ValueError(f"message {message.ts} in {message.channel} was deleted")
        if message.ephemeral and message.visible_to != user.id:
            raise ValueError(f"message {message.ts} is ephemeral for {message.visible_to}, not {user.id}")
        found_block, element = find_element(message, action_id, value, block_id)
        response_url = self.response_url(
            self.workspace.mint_response_url(
                "block_actions", channel=message.channel, user=user.id, source=message.ref
            ).id
        )
        trigger = self.workspace.mint_trigger(user.id)
        payload = block_actions_payload(
            self.workspace,
            user=user,
            message=message,
            action=action_object(element, found_block, value, f"{time.time():.6f}"),
            response_url=response_url,
            trigger_id=trigger.id,
            origin=self.slack_base_url,
        )
        return Interaction("block_actions", user, payload, _payload_form(payload), response_url, trigger.id)

    def submit_view(self, user_id: str, view: SlackView | str, values: Mapping[str, Any] | None) -> Interaction:
        """``user_id`` presses Submit on an open modal; ``values`` maps input action_ids to what they entered."""
        user = self.person(user_id)
        record = self.workspace.view(view) if isinstance(view, str) else view
        if record.closed or record.user != user.id:
            raise ValueError(f"view {record.id} is not open for {user.id}")
        trigger = self.workspace.mint_trigger(user.id)
        payload = view_submission_payload(
            self.workspace, user=user, view=record, values=values or {}, trigger_id=trigger.id
        )
        return Interaction("view_submission", user, payload, _payload_form(payload), None, trigger.id, view=record)

    def response_url(self, response_url_id: str) -> str:
        return f"{self.slack_base_url}/response/{response_url_id}"

    def person(self, user_id: str) -> User:
        user = self.workspace.find_user(user_id)
        if user is None:
            raise ValueError(f"no user {user_id!r} in the workspace")
        if user.deleted or user.is_bot:
            raise ValueError(f"{user_id} cannot act in Slack (deactivated or a bot)")
        return user

    # ----------------------------------------------------------------------------- what the ack does

    async def apply_ack(self, interaction: Interaction, answer: Any) -> None:
        """Act on the app's acknowledgement: ``answer`` is what it said (a JSON value), None for an empty ack."""
        if interaction.kind == "slash_command" and interaction.channel is not None:
            await self._show_command_ack(answer, interaction.user, interaction.channel)
        elif interaction.kind == "view_submission" and interaction.view is not None:
            await self._apply_response_action(answer, interaction.view)

    async def _show_command_ack(self, answer: Any, user: User, channel_id: str) -> None:
        """A slash command's ack with a body is a message: ephemeral unless ``in_channel``."""
        if not isinstance(answer, dict) or not (answer.get("text") or answer.get("blocks")):
            return
        blocks = answer.get("blocks")
        if blocks is not None and (not isinstance(blocks, list) or validate_blocks(blocks)):
            return  # Slack shows the user an error instead of the message
        in_channel = answer.get("response_type") == "in_channel"
        await self.workspace.post_message(
            channel_id,
            text=str(answer.get("text") or ""),
            blocks=normalize_blocks(blocks) if blocks else None,
            visible_to=None if in_channel else user.id,
            via="ack",
        )

    async def _apply_response_action(self, answer: Any, view: SlackView) -> None:
        action = answer.get("response_action") if isinstance(answer, dict) else None
        if action == "errors" and isinstance(answer, dict):
            view.errors = answer.get("errors")
            await self.workspace.save_view(view)
        elif action in ("update", "push") and isinstance(answer, dict) and not validate_view(answer.get("view")):
            body = dict(answer["view"])
            body["blocks"] = normalize_blocks(body["blocks"])
            if action == "update":
                view.view, view.errors = body, None
                await self.workspace.save_view(view)
            else:
                pushed = SlackView(
                    id=self.workspace.next_id("V"),
                    user=view.user,
                    view=body,
                    hash=view.hash,
                    external_id=None,
                    root_view_id=view.root_view_id,
                    previous_view_id=view.id,
                )
                await self.workspace.save_view(pushed)
        elif action == "clear":
            for open_view in self.workspace.views(view.user, include_closed=False):
                await self.workspace.close_view(open_view)
        elif action is None:
            await self.workspace.close_view(view)


def _payload_form(payload: JsonObject) -> str:
    return urlencode({"payload": json.dumps(payload)})

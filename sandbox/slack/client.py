"""The sandbox acting as Slack towards the bot: signed slash commands, button clicks and modal submissions.

Requests are form-encoded exactly as Slack sends them (``payload=<json>`` for interactivity) and
signed with ``X-Slack-Signature: v0=HMAC-SHA256(signing secret, "v0:{timestamp}:{body}")``.
Slack waits 3 seconds for the bot's HTTP answer (the ack); a delivery records how long it took.
What a bot answers in the ack is applied as Slack would: a message body for a slash command is
shown (ephemeral, or in the channel), a ``response_action`` for a view submission acts on the view.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp

from sandbox.clock import Clock, SystemClock
from sandbox.slack.blocks import normalize_blocks, validate_blocks, validate_view
from sandbox.slack.model import InteractionKind, MessageRef, SlackDelivery, SlackMessage, SlackView, User
from sandbox.slack.payloads import (
    action_object,
    block_actions_payload,
    find_element,
    slash_command_fields,
    view_submission_payload,
)
from sandbox.slack.workspace import SlackWorkspace

SLACK_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
ACK_TIMEOUT_S = 3.0


class SlackClient:
    """Delivers interactions to the bot at ``bot_url`` (bolt's ``/slack/events``) on behalf of people.

    ``slack_base_url`` is where the sandbox Slack app is served (response_urls point there);
    ``clock`` gives the request timestamps the bot checks against its own wall clock, so it is
    the system clock unless a test wants skew. Every delivery is also recorded in the workspace.
    """

    def __init__(
        self,
        workspace: SlackWorkspace,
        *,
        bot_url: str,
        slack_base_url: str,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self.workspace = workspace
        self.bot_url = bot_url
        self.slack_base_url = slack_base_url.rstrip("/").removesuffix("/api")
        self.ssl_context = ssl_context
        self.clock: Clock = clock or SystemClock()
        self.ack_timeout_s = ack_timeout_s

    # ----------------------------------------------------------------------------- interactions

    async def slash_command(
        self,
        user_id: str,
        command: str,
        text: str = "",
        channel_id: str | None = None,
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        wrong_signature: bool = False,
        timestamp_age_s: int = 0,
    ) -> SlackDelivery:
        """``/command text`` typed by ``user_id`` in ``channel_id`` (default: their DM with the bot)."""
        if not command.startswith("/") or " " in command:
            raise ValueError(f"a slash command looks like '/emailtest', not {command!r}")
        user = self._person(user_id)
        if channel_id is None:
            channel_id = (await self.workspace.open_dm([user.id]))[0].id
        channel = self.workspace.find_channel(channel_id)
        if channel is None:
            raise ValueError(f"no channel {channel_id!r} in the workspace")
        if user.id not in channel.members:
            raise ValueError(f"{user.id} is not a member of {channel.id}: Slack would not show them the channel")
        response_url = self.workspace.mint_response_url("slash_command", channel=channel.id, user=user.id)
        trigger = self.workspace.mint_trigger(user.id)
        fields = slash_command_fields(
            self.workspace,
            user=user,
            channel=channel,
            command=command,
            text=text,
            response_url=self._response_url(response_url.id),
            trigger_id=trigger.id,
        )
        delivery = await self._deliver(
            "slash_command",
            urlencode(fields),
            response_url=self._response_url(response_url.id),
            trigger_id=trigger.id,
            retry=(retry_num, retry_reason),
            wrong_signature=wrong_signature,
            timestamp_age_s=timestamp_age_s,
        )
        if delivery.ok and delivery.body.strip():
            await self._show_command_ack(delivery, user, channel.id)
        return delivery

    async def click(
        self,
        user_id: str,
        message_ref: SlackMessage | MessageRef,
        action_id: str,
        value: Any = None,
        *,
        block_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        wrong_signature: bool = False,
        timestamp_age_s: int = 0,
    ) -> SlackDelivery:
        """``user_id`` clicks the element ``action_id`` of the message's latest version.

        ``value`` picks among buttons sharing an action_id, or is the option/user/date chosen in a select.
        """
        user = self._person(user_id)
        message = self.workspace.latest(message_ref)
        if message.deleted:
            raise ValueError(f"message {message.ts} in {message.channel} was deleted")
        if message.ephemeral and message.visible_to != user.id:
            raise ValueError(f"message {message.ts} is ephemeral for {message.visible_to}, not {user.id}")
        found_block, element = find_element(message, action_id, value, block_id)
        response_url = self.workspace.mint_response_url(
            "block_actions", channel=message.channel, user=user.id, source=message.ref
        )
        trigger = self.workspace.mint_trigger(user.id)
        action = action_object(element, found_block, value, f"{time.time():.6f}")
        payload = block_actions_payload(
            self.workspace,
            user=user,
            message=message,
            action=action,
            response_url=self._response_url(response_url.id),
            trigger_id=trigger.id,
            origin=self.slack_base_url,
        )
        return await self._deliver(
            "block_actions",
            urlencode({"payload": json.dumps(payload)}),
            response_url=self._response_url(response_url.id),
            trigger_id=trigger.id,
            retry=(retry_num, retry_reason),
            wrong_signature=wrong_signature,
            timestamp_age_s=timestamp_age_s,
        )

    async def submit_view(
        self, user_id: str, view: SlackView | str, values: Mapping[str, Any] | None = None
    ) -> SlackDelivery:
        """``user_id`` presses Submit on an open modal; ``values`` maps input action_ids to what they entered."""
        user = self._person(user_id)
        record = self.workspace.view(view) if isinstance(view, str) else view
        if record.closed or record.user != user.id:
            raise ValueError(f"view {record.id} is not open for {user.id}")
        trigger = self.workspace.mint_trigger(user.id)
        payload = view_submission_payload(
            self.workspace, user=user, view=record, values=values or {}, trigger_id=trigger.id
        )
        delivery = await self._deliver(
            "view_submission",
            urlencode({"payload": json.dumps(payload)}),
            response_url=None,
            trigger_id=trigger.id,
            retry=(None, ""),
            wrong_signature=False,
            timestamp_age_s=0,
        )
        if delivery.ok:
            await self._apply_response_action(delivery, record)
        return delivery

    # ----------------------------------------------------------------------------- signing and sending

    async def redeliver(
        self, delivery: SlackDelivery, *, retry_num: int = 1, retry_reason: str = "http_timeout"
    ) -> SlackDelivery:
        """Send the same request again, as Slack retries a delivery it thinks failed: the same body (same
        trigger_id), a fresh signature, and ``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason``."""
        return await self._deliver(
            delivery.kind,
            delivery.request_body,
            response_url=delivery.response_url,
            trigger_id=delivery.trigger_id,
            retry=(retry_num, retry_reason),
            wrong_signature=False,
            timestamp_age_s=0,
        )

    def sign(self, body: str, timestamp: int, secret: str | None = None) -> str:
        base = f"v0:{timestamp}:{body}".encode()
        key = (secret or self.workspace.signing_secret).encode()
        return "v0=" + hmac.new(key, base, hashlib.sha256).hexdigest()

    def _response_url(self, response_url_id: str) -> str:
        return f"{self.slack_base_url}/response/{response_url_id}"

    def _person(self, user_id: str) -> User:
        user = self.workspace.find_user(user_id)
        if user is None:
            raise ValueError(f"no user {user_id!r} in the workspace")
        if user.deleted or user.is_bot:
            raise ValueError(f"{user_id} cannot act in Slack (deactivated or a bot)")
        return user

    async def _deliver(
        self,
        kind: InteractionKind,
        body: str,
        *,
        response_url: str | None,
        trigger_id: str,
        retry: tuple[int | None, str],
        wrong_signature: bool,
        timestamp_age_s: int,
    ) -> SlackDelivery:
        timestamp = int(self.clock.now().timestamp()) - timestamp_age_s
        signature = self.sign(body, timestamp, "not-the-signing-secret" if wrong_signature else None)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": SLACK_USER_AGENT,
            "Accept": "application/json,*/*",
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": signature,
        }
        if retry[0] is not None:
            headers["X-Slack-Retry-Num"] = str(retry[0])
            headers["X-Slack-Retry-Reason"] = retry[1]
        status: int | None = None
        text = ""
        answer_headers: dict[str, str] = {}
        error: str | None = None
        started = time.perf_counter()
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.ack_timeout_s)) as session,
                session.post(self.bot_url, data=body.encode(), headers=headers, ssl=self.ssl_context or True) as answer,
            ):
                text = await answer.text()
                status = answer.status
                answer_headers = dict(answer.headers)
        except TimeoutError:
            error = "operation_timeout"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivery = SlackDelivery(
            kind=kind,
            url=self.bot_url,
            request_body=body,
            request_headers=headers,
            status=status,
            body=text,
            headers=answer_headers,
            elapsed_s=time.perf_counter() - started,
            response_url=response_url,
            trigger_id=trigger_id,
            error=error,
        )
        await self.workspace.record_delivery(delivery)
        return delivery

    # ----------------------------------------------------------------------------- what the ack does

    async def _show_command_ack(self, delivery: SlackDelivery, user: User, channel_id: str) -> None:
        """A slash command's HTTP answer with a body is a message: ephemeral unless ``in_channel``."""
        try:
            answer = delivery.json()
        except json.JSONDecodeError:
            answer = {"text": delivery.body}
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

    async def _apply_response_action(self, delivery: SlackDelivery, view: SlackView) -> None:
        answer = delivery.json() if delivery.body.strip().startswith("{") else None
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

"""The sandbox acting as Slack towards the bot: signed slash commands, button clicks and modal submissions.

Requests are form-encoded exactly as Slack sends them (``payload=<json>`` for interactivity) and
signed with ``X-Slack-Signature: v0=HMAC-SHA256(signing secret, "v0:{timestamp}:{body}")``.
Slack waits 3 seconds for the bot's HTTP answer (the ack); a delivery records how long it took.
What a bot answers in the ack is applied as Slack would (``interactions``): a message body for a
slash command is shown (ephemeral, or in the channel), a ``response_action`` for a view submission
acts on the view. :class:`~sandbox.slack.socket_client.SlackSocketModeClient` delivers the same
interactions over Socket Mode instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from sandbox.clock import Clock, SystemClock
from sandbox.slack.interactions import Interaction, Interactions
from sandbox.slack.model import InteractionKind, MessageRef, SlackDelivery, SlackMessage, SlackView
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
        self.interactions = Interactions(workspace, slack_base_url)
        self.slack_base_url = self.interactions.slack_base_url
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
        interaction = await self.interactions.slash_command(user_id, command, text, channel_id)
        delivery = await self._deliver(
            interaction,
            retry=(retry_num, retry_reason),
            wrong_signature=wrong_signature,
            timestamp_age_s=timestamp_age_s,
        )
        if delivery.ok and delivery.body.strip():
            try:
                answer = delivery.json()
            except json.JSONDecodeError:
                answer = {"text": delivery.body}
            await self.interactions.apply_ack(interaction, answer)
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
        interaction = self.interactions.click(user_id, message_ref, action_id, value, block_id)
        return await self._deliver(
            interaction,
            retry=(retry_num, retry_reason),
            wrong_signature=wrong_signature,
            timestamp_age_s=timestamp_age_s,
        )

    async def submit_view(
        self, user_id: str, view: SlackView | str, values: Mapping[str, Any] | None = None
    ) -> SlackDelivery:
        """``user_id`` presses Submit on an open modal; ``values`` maps input action_ids to what they entered."""
        interaction = self.interactions.submit_view(user_id, view, values)
        delivery = await self._deliver(interaction, retry=(None, ""), wrong_signature=False, timestamp_age_s=0)
        if delivery.ok:
            answer = delivery.json() if delivery.body.strip().startswith("{") else None
            await self.interactions.apply_ack(interaction, answer)
        return delivery

    # ----------------------------------------------------------------------------- signing and sending

    async def redeliver(
        self, delivery: SlackDelivery, *, retry_num: int = 1, retry_reason: str = "http_timeout"
    ) -> SlackDelivery:
        """Send the same request again, as Slack retries a delivery it thinks failed: the same body (same
        trigger_id), a fresh signature, and ``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason``."""
        return await self._post(
            delivery.kind,
            delivery.request_body,
            response_url=delivery.response_url,
            trigger_id=delivery.trigger_id,
            retry=(retry_num, retry_reason),
            wrong_signature=False,
            timestamp_age_s=0,
        )

    def sign(self, body: str | bytes, timestamp: int | str, secret: str | None = None) -> str:
        raw = body if isinstance(body, bytes) else body.encode()
        base = f"v0:{timestamp}:".encode() + raw
        key = (secret or self.workspace.signing_secret).encode()
        return "v0=" + hmac.new(key, base, hashlib.sha256).hexdigest()

    async def send_raw(
        self, body: bytes, headers: Mapping[str, str], *, kind: InteractionKind = "slash_command"
    ) -> SlackDelivery:
        """POST exactly ``body`` with exactly ``headers`` to the bot: what a forger (or a broken proxy) sends.
        Recorded as a delivery like any other."""
        return await self._send(kind, body, dict(headers), response_url=None, trigger_id="")

    async def _deliver(
        self, interaction: Interaction, *, retry: tuple[int | None, str], wrong_signature: bool, timestamp_age_s: int
    ) -> SlackDelivery:
        return await self._post(
            interaction.kind,
            interaction.form,
            response_url=interaction.response_url,
            trigger_id=interaction.trigger_id,
            retry=retry,
            wrong_signature=wrong_signature,
            timestamp_age_s=timestamp_age_s,
        )

    async def _post(
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
        return await self._send(kind, body.encode(), headers, response_url=response_url, trigger_id=trigger_id)

    async def _send(
        self,
        kind: InteractionKind,
        body: bytes,
        headers: dict[str, str],
        *,
        response_url: str | None,
        trigger_id: str,
    ) -> SlackDelivery:
        status: int | None = None
        text = ""
        answer_headers: dict[str, str] = {}
        error: str | None = None
        started = time.perf_counter()
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.ack_timeout_s)) as session,
                session.post(self.bot_url, data=body, headers=headers, ssl=self.ssl_context or True) as answer,
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
            request_body=body.decode(errors="replace"),
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

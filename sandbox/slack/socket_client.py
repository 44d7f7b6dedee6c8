"""The sandbox acting as Slack towards an app connected over Socket Mode.

The same interactions as :class:`~sandbox.slack.client.SlackClient` (built by ``interactions``, so the
payloads, response_urls and trigger_ids are exactly those of an HTTP delivery) go out as envelopes over
the app's WebSocket (``socket_mode``): a slash command as ``slash_commands``, a click or a modal
submission as ``interactive``, all with ``accepts_response_payload: true``. Slack waits 3 seconds for the
ack; the :class:`SlackDelivery` says 200 when it came in time, with the ack's ``payload`` as its body, and
the ack is applied as for HTTP (a slash command's payload is shown as a message, a view submission's
``response_action`` acts on the view). There is no signature: the WebSocket is already authenticated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sandbox.slack.interactions import Interaction, Interactions
from sandbox.slack.model import InteractionKind, JsonObject, MessageRef, SlackDelivery, SlackMessage, SlackView
from sandbox.slack.socket_mode import ACK_TIMEOUT_S, EnvelopeResult, EnvelopeType
from sandbox.slack.workspace import SlackWorkspace

_ENVELOPE_TYPES: dict[InteractionKind, EnvelopeType] = {
    "slash_command": "slash_commands",
    "block_actions": "interactive",
    "view_submission": "interactive",
}


class SlackSocketModeClient:
    """Delivers interactions on behalf of people to whichever app connection is open in ``workspace``.

    ``slack_base_url`` is where the sandbox Slack app is served (response_urls point there). Connect the
    app first (``await workspace.socket_mode.wait_for_connection()``): with no connection a delivery
    fails at once with ``dispatch_failed``. Every delivery is also recorded in the workspace.
    """

    def __init__(self, workspace: SlackWorkspace, *, slack_base_url: str, ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        self.workspace = workspace
        self.interactions = Interactions(workspace, slack_base_url)
        self.slack_base_url = self.interactions.slack_base_url
        self.ack_timeout_s = ack_timeout_s

    async def slash_command(
        self,
        user_id: str,
        command: str,
        text: str = "",
        channel_id: str | None = None,
        *,
        retry_attempt: int | None = None,
        retry_reason: str = "",
    ) -> SlackDelivery:
        """``/command text`` typed by ``user_id`` in ``channel_id`` (default: their DM with the bot)."""
        interaction = await self.interactions.slash_command(user_id, command, text, channel_id)
        delivery = await self._deliver(interaction, retry_attempt, retry_reason)
        if delivery.ok:
            await self.interactions.apply_ack(interaction, delivery.json())
        return delivery

    async def click(
        self,
        user_id: str,
        message_ref: SlackMessage | MessageRef,
        action_id: str,
        value: Any = None,
        *,
        block_id: str | None = None,
        retry_attempt: int | None = None,
        retry_reason: str = "",
    ) -> SlackDelivery:
        """``user_id`` clicks the element ``action_id`` of the message's latest version (see ``SlackClient.click``)."""
        interaction = self.interactions.click(user_id, message_ref, action_id, value, block_id)
        return await self._deliver(interaction, retry_attempt, retry_reason)

    async def submit_view(
        self, user_id: str, view: SlackView | str, values: Mapping[str, Any] | None = None
    ) -> SlackDelivery:
        """``user_id`` presses Submit on an open modal; ``values`` maps input action_ids to what they entered."""
        interaction = self.interactions.submit_view(user_id, view, values)
        delivery = await self._deliver(interaction, None, "")
        if delivery.ok:
            await self.interactions.apply_ack(interaction, delivery.json())
        return delivery

    async def redeliver(
        self, delivery: SlackDelivery, *, retry_attempt: int = 1, retry_reason: str = "timeout"
    ) -> SlackDelivery:
        """Send the same payload again in a new envelope with ``retry_attempt`` / ``retry_reason``, as Slack
        retries what it thinks was not acknowledged (the same trigger_id: the app should see a repeat)."""
        envelope = json.loads(delivery.request_body)
        result = await self.workspace.socket_mode.deliver(
            envelope["type"],
            envelope["payload"],
            accepts_response_payload=bool(envelope["accepts_response_payload"]),
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            ack_timeout_s=self.ack_timeout_s,
        )
        return await self._record(delivery.kind, result, delivery.response_url, delivery.trigger_id)

    async def _deliver(self, interaction: Interaction, retry_attempt: int | None, retry_reason: str) -> SlackDelivery:
        result = await self.workspace.socket_mode.deliver(
            _ENVELOPE_TYPES[interaction.kind],
            interaction.payload,
            accepts_response_payload=True,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            ack_timeout_s=self.ack_timeout_s,
        )
        return await self._record(interaction.kind, result, interaction.response_url, interaction.trigger_id)

    async def _record(
        self, kind: InteractionKind, result: EnvelopeResult, response_url: str | None, trigger_id: str
    ) -> SlackDelivery:
        payload: JsonObject | None = result.ack_payload
        delivery = SlackDelivery(
            kind=kind,
            url=result.connection.url if result.connection is not None else "",
            request_body=json.dumps(result.envelope),
            request_headers={},
            status=200 if result.acked else None,
            body=json.dumps(payload) if payload is not None else "",
            headers={},
            elapsed_s=result.elapsed_s,
            response_url=response_url,
            trigger_id=trigger_id,
            error=result.error,
            envelope_id=result.envelope_id,
        )
        await self.workspace.record_delivery(delivery)
        return delivery

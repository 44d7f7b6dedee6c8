"""The Slack app: `create_app(settings, services)` wires slack-bolt's AsyncApp to our listeners.

The constructor does no network I/O (AsyncApp never calls Slack when built; authorisation happens on the
first request, through auth.test, and is cached).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot import blocks
from bot.context import BotContext
from bot.errors import report_error
from bot.listeners import actions, emailtest, mailaudit, sendas
from plugin.errors import ConfigError
from plugin.settings import Settings

log = logging.getLogger(__name__)

COMMANDS = ("/emailtest", "/sendas", "/mailaudit")
ACTIONS = (blocks.ACTION_REQUEST_FIX, blocks.ACTION_APPROVE, blocks.ACTION_DENY)


def create_app(settings: Settings, services: BotContext) -> AsyncApp:
    slack = settings.slack
    if slack.signing_secret is None:
        raise ConfigError("the Slack bot needs EMAILDOCTOR_SLACK__SIGNING_SECRET (Basic Information → Signing Secret)")
    app = AsyncApp(
        name="emaildoctor",
        client=services.poster.client,
        signing_secret=slack.signing_secret.get_secret_value(),
        logger=logging.getLogger("bot.bolt"),
        raise_error_for_unhandled_request=False,
    )
    app.middleware(_deliver_once(services))
    for module in (emailtest, actions, sendas, mailaudit):
        module.register(app, services)

    async def on_error(error: Exception, body: dict[str, Any], respond: Any = None) -> None:
        await report_error(services, error, body, respond)

    app.error(on_error)
    return app


Next = Callable[[], Awaitable[BoltResponse]]


def delivery_key(body: dict[str, Any]) -> str | None:
    """What identifies one user action across Slack's retried deliveries (X-Slack-Retry-Num)."""
    trigger = body.get("trigger_id")
    if trigger:
        return f"slack:{trigger}"
    actions_ = body.get("actions") or []
    if actions_:
        return f"slack:{body.get('user', {}).get('id')}:{actions_[0].get('action_ts')}"
    return None


def _deliver_once(ctx: BotContext) -> Callable[..., Awaitable[BoltResponse | None]]:
    async def deliver_once(req: AsyncBoltRequest, resp: BoltResponse, next: Next) -> BoltResponse | None:
        key = delivery_key(req.body)
        if key is not None and not await ctx.store.claim_once(key, ctx.now()):
            log.info("ignored a repeated delivery of %s", key)
            return BoltResponse(status=200, body="")
        return await next()

    return deliver_once

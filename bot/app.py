"""The Slack app: `create_app(settings, services)` wires slack-bolt's AsyncApp to our listeners.

The constructor does no network I/O (AsyncApp never calls Slack when built; authorisation happens on the
first request, through auth.test, and is cached). Over HTTP, :mod:`bot.guard` admits a request before bolt
sees it (:mod:`bot.server`); the middleware here applies to Socket Mode as well.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot import blocks
from bot.context import BotContext
from bot.errors import report_error
from bot.guard import RefusedError, RequestGuard, SlackOrigins, check_response_urls, check_shape
from bot.listeners import actions, check, emailtest, mailaudit, sendas
from bot.readiness import Readiness
from plugin.errors import ConfigError
from plugin.settings import Settings

log = logging.getLogger(__name__)

COMMANDS = ("/emailtest", "/sendas", "/mailaudit", "/emaildoctor")
ACTIONS = (blocks.ACTION_REQUEST_FIX, blocks.ACTION_APPROVE, blocks.ACTION_DENY)
DELIVERY_KEY_TTL = timedelta(hours=1)
"""How long a Slack delivery id is kept: Slack retries a delivery three times within about five minutes."""
PRUNE_EVERY = timedelta(minutes=5)


class SlackApp(AsyncApp):
    """bolt's app, with the guard that admits HTTP requests to it and the readiness it reports (see
    :mod:`bot.server`)."""

    guard: RequestGuard
    readiness: Readiness


def create_app(settings: Settings, services: BotContext) -> SlackApp:
    slack = settings.slack
    if slack.signing_secret is None:
        raise ConfigError("the Slack bot needs EMAILDOCTOR_SLACK__SIGNING_SECRET (Basic Information → Signing Secret)")
    secret = slack.signing_secret.get_secret_value()
    app = SlackApp(
        name="emaildoctor",
        client=services.poster.client,
        signing_secret=secret,
        logger=logging.getLogger("bot.bolt"),
        raise_error_for_unhandled_request=False,
    )
    # bolt logs every body whose signature fails at INFO; the guard refuses those first, and says so in one line.
    logging.getLogger("slack_bolt.RequestVerification").setLevel(logging.WARNING)
    origins = SlackOrigins.from_settings(slack.api_url, slack.response_url_hosts)
    app.guard = RequestGuard(secret, origins)
    app.readiness = Readiness(services)
    app.middleware(_well_formed(origins))
    app.middleware(_deliver_once(services))
    for module in (emailtest, actions, sendas, mailaudit, check):
        module.register(app, services)

    async def on_error(error: Exception, body: dict[str, Any], respond: Any = None) -> None:
        await report_error(services, error, body, respond)

    app.error(on_error)
    return app


Next = Callable[[], Awaitable[BoltResponse]]


def _well_formed(origins: SlackOrigins) -> Callable[..., Awaitable[BoltResponse | None]]:
    """The guard's checks of the parsed body, for Socket Mode too (its envelopes skip the HTTP guard)."""

    async def well_formed(req: AsyncBoltRequest, resp: BoltResponse, next: Next) -> BoltResponse | None:
        try:
            check_shape(req.body)
            check_response_urls(req.body, origins)
        except RefusedError as refusal:
            log.warning("refused a Slack request: %s", refusal.kind)
            if req.mode == "socket_mode":  # acknowledged, empty: Slack would redeliver an envelope left unacked
                return BoltResponse(status=200, body="")
            return BoltResponse(status=refusal.status, body={"ok": False, "error": refusal.kind})
        return await next()

    return well_formed


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
    pruned_at: list[datetime] = []

    async def deliver_once(req: AsyncBoltRequest, resp: BoltResponse, next: Next) -> BoltResponse | None:
        key = delivery_key(req.body)
        now = ctx.now()
        if key is not None and not await ctx.store.claim_once(key, now):
            log.info("ignored a repeated delivery of %s", key)
            return BoltResponse(status=200, body="")
        if not pruned_at or now - pruned_at[0] >= PRUNE_EVERY:
            # Ids outlive Slack's retries by a margin, then go: the table stays as small as an hour of traffic.
            pruned_at[:] = [now]
            await ctx.store.prune_keys(now - DELIVERY_KEY_TTL)
        return await next()

    return deliver_once

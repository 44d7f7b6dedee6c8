"""The Slack app: `create_app(settings, services)` wires slack-bolt's AsyncApp to our listeners.

The constructor does no network I/O (AsyncApp never calls Slack when built). Authorisation is one auth.test,
made when the server starts (:mod:`bot.server`) or else on the first request, and then kept in memory: nothing
between Slack's request and the acknowledgement touches the network, the store or the disk. Over HTTP, :mod:`bot.guard` admits a request before bolt
sees it (:mod:`bot.server`); the middleware here applies to Socket Mode as well.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.context import BotContext
from bot.delivery import AckFirst, RecentDeliveries, delivery_key
from bot.errors import report_error
from bot.guard import RefusedError, RequestGuard, SlackOrigins, check_response_urls, check_shape
from bot.listeners import actions, check, emailtest, mailaudit, sendas
from bot.observe import observe_requests
from bot.readiness import Readiness
from bot.slack_io import CachedAuthorization
from plugin.errors import ConfigError
from plugin.settings import Settings

log = logging.getLogger(__name__)

COMMANDS = ("/emailtest", "/sendas", "/mailaudit", "/emaildoctor")


class SlackApp(AsyncApp):
    """bolt's app, with the guard that admits HTTP requests to it and the readiness it reports (see
    :mod:`bot.server`)."""

    guard: RequestGuard
    readiness: Readiness
    authorization: CachedAuthorization
    acks: AckFirst


def create_app(settings: Settings, services: BotContext) -> SlackApp:
    slack = settings.slack
    if slack.signing_secret is None:
        raise ConfigError("the Slack bot needs EMAILDOCTOR_SLACK__SIGNING_SECRET (Basic Information → Signing Secret)")
    secret = slack.signing_secret.get_secret_value()
    poster = services.poster.client
    authorization = CachedAuthorization(poster)

    async def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return await authorization.result()  # bolt passes the arguments it finds by name

    app = SlackApp(
        name="emaildoctor",
        # bolt's client carries no token (``authorize`` hands it one per request) and shares the poster's session.
        client=AsyncWebClient(
            base_url=poster.base_url,
            timeout=poster.timeout,
            ssl=poster.ssl,
            session=poster.session,
            retry_handlers=poster.retry_handlers,
        ),
        authorize=authorize,
        signing_secret=secret,
        logger=logging.getLogger("bot.bolt"),
        raise_error_for_unhandled_request=False,
    )
    # bolt logs every body whose signature fails at INFO; the guard refuses those first, and says so in one line.
    logging.getLogger("slack_bolt.RequestVerification").setLevel(logging.WARNING)
    origins = SlackOrigins.from_settings(slack.api_url, slack.response_url_hosts)
    app.guard = RequestGuard(secret, origins)
    app.authorization = authorization
    app.acks = services.acks
    app.readiness = Readiness(services)
    app.middleware(observe_requests())  # first: its timing and log line cover the whole way to the ack
    app.middleware(_well_formed(origins))
    app.middleware(_deliver_once(RecentDeliveries(), services))
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


def _deliver_once(recent: RecentDeliveries, ctx: BotContext) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Drop a retry this replica has already seen, from memory: nothing before the ack touches the store, the
    network or the disk. The claim across replicas is made after the ack (:func:`bot.errors.after_ack`)."""

    async def deliver_once(req: AsyncBoltRequest, resp: BoltResponse, next: Next) -> BoltResponse | None:
        key = delivery_key(req.body)
        if key is not None and not recent.first_here(key, ctx.now()):
            log.info("ignored a repeated delivery of %s", key)
            return BoltResponse(status=200, body="")
        return await next()

    return deliver_once

"""How failures reach people: one renderer for every error, whether bolt caught it or background work did.

Listeners acknowledge Slack first and hand the rest to :func:`after_ack`, so a failure after the
acknowledgement can never delay or swallow it, and is still rendered here with its catalogue code.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from slack_bolt.error import BoltUnhandledRequestError

from bot import blocks
from bot.context import BotContext
from bot.guard import SlackOrigins
from plugin.catalogue import CATALOGUE
from plugin.errors import ConfigError, EmailDoctorError
from plugin.redact import redact

log = logging.getLogger(__name__)
UNEXPECTED = ":warning: Something went wrong inside emaildoctor; it has been logged. Please try again."


def error_text(error: BaseException) -> str:
    """The message for a person; the error's own words are escaped, as they often quote what was typed."""
    if isinstance(error, EmailDoctorError):
        title = CATALOGUE[error.code].title if error.code and not isinstance(error, ConfigError) else None
        prefix = f":warning: *{title}* [{error.code}]: " if title else ":warning: "
        return prefix + blocks.escape(str(error))
    return UNEXPECTED


async def report_error(ctx: BotContext, error: BaseException, body: dict[str, Any], respond: Any = None) -> None:
    """Tell the person who acted what went wrong (privately), in words; never a stack trace.

    ``body`` is always one Slack signed (or sent over Socket Mode): :mod:`bot.guard` refuses anything else
    before bolt, and so this handler, can see it. Even so its response_url is followed only to Slack.
    """
    if isinstance(error, BoltUnhandledRequestError):
        return
    if not isinstance(error, EmailDoctorError):
        # The traceback goes to the log (redacted with every secret, as every line is), never to Slack.
        log.error("unexpected error: %s", redact(repr(error), ctx.secrets), exc_info=error)
    text = redact(error_text(error), ctx.secrets)
    slack = ctx.settings.slack
    if respond is not None and SlackOrigins.from_settings(slack.api_url, slack.response_url_hosts).allows(
        body.get("response_url")
    ):
        await respond(text=text, response_type="ephemeral", replace_original=False)
        return
    user = (body.get("user") or {}).get("id") or body.get("user_id")
    channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
    if user and channel:
        await ctx.poster.ephemeral(channel, user, blocks.plain(text))


def after_ack(
    ctx: BotContext, body: dict[str, Any], respond: Any, work: Coroutine[Any, Any, None], *, name: str
) -> None:
    """Run ``work`` in the background after Slack has been acknowledged; report its failure to the person.

    It starts once the requests arriving with it are acknowledged (:class:`bot.delivery.AckFirst`); then the
    delivery is claimed in the store (:mod:`bot.delivery`): a retry that another replica took already
    does nothing here.
    """

    async def run() -> None:
        try:
            await ctx.acks.quiet()  # a burst is acknowledged first, then worked on
            claimed = await ctx.deliveries.claim(ctx, body)
        except Exception as error:  # noqa: BLE001 - the store could not say: the person hears it, nothing is done
            work.close()
            await report_error(ctx, error, body, respond)
            return
        except BaseException:
            work.close()
            raise
        if not claimed:
            work.close()
            return
        try:
            await work
        except Exception as error:  # noqa: BLE001 - the background twin of @app.error: every failure is rendered
            await report_error(ctx, error, body, respond)

    ctx.tasks.spawn(run(), name=name)

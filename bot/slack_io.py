"""Talking to Slack: the Web API client from settings, and posting that always redacts first."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import Message, redacted
from plugin.diagnosis import Code
from plugin.errors import ConfigError, ServiceError
from plugin.settings import SlackSettings

SLACK_TIMEOUT_S = 30
KEEPALIVE_S = 30.0
"""Seconds an idle connection to Slack is kept open for the next call (Slack's own idle limit is longer)."""
MAX_CONNECTIONS = 64


def _ssl_context(settings: SlackSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ca_file))
    return context


def open_slack_session(settings: SlackSettings) -> aiohttp.ClientSession:
    """One HTTP session for every Web API call (connections kept alive, TLS set up once per connection) with the
    configured CA. Call it inside the running event loop; the caller closes it (``await session.close()``)."""
    connector = aiohttp.TCPConnector(ssl=_ssl_context(settings), limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=SLACK_TIMEOUT_S))


def build_web_client(settings: SlackSettings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """Slack's Web API client: base URL and CA from settings, retries that honour Retry-After on 429.

    With ``session`` (:func:`open_slack_session`) every call reuses its kept-alive connections; without, each
    call opens (and closes) its own, which is fine for one-off checks.
    """
    if settings.bot_token is None:
        raise ConfigError("the Slack bot needs EMAILDOCTOR_SLACK__BOT_TOKEN (the xoxb-… token of the app)")
    return AsyncWebClient(
        token=settings.bot_token.get_secret_value(),
        base_url=settings.api_url,
        ssl=_ssl_context(settings),
        timeout=SLACK_TIMEOUT_S,
        session=session,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


class CachedAuthorization:
    """bolt's ``authorize`` for our one workspace: ``auth.test`` once (:meth:`warm_up` at start-up, or the first
    request), then answered from memory, so no request waits on Slack before its acknowledgement."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._result: AuthorizeResult | None = None
        self._lock = asyncio.Lock()

    async def result(self) -> AuthorizeResult:
        if self._result is None:
            async with self._lock:  # a burst of first requests makes one auth.test between them
                if self._result is None:
                    answer = await self._client.auth_test()
                    self._result = AuthorizeResult.from_auth_test_response(
                        bot_token=self._client.token, auth_test_response=answer
                    )
        return self._result

    async def warm_up(self) -> bool:
        """Authorise now; False (and the first request tries again) if Slack does not answer."""
        try:
            await self.result()
        except SLACK_FAILURES:
            return False
        return True


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


class Poster:
    """Posts, updates and ephemeral messages, every payload redacted with the known secrets."""

    def __init__(self, client: AsyncWebClient, secrets: Sequence[str]) -> None:
        self.client = client
        self._secrets = list(secrets)

    def _payload(self, message: Message) -> dict[str, Any]:
        text, blocks = message
        payload: dict[str, Any] = redacted({"text": text, "blocks": blocks}, self._secrets)
        return payload

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> Posted:
        try:
            response = await self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, **self._payload(message)
            )
        except SLACK_FAILURES as exc:
            raise _slack_error("post a message", exc) from exc
        return Posted(channel=str(response["channel"]), ts=str(response["ts"]))

    async def update(self, where: Posted, message: Message) -> None:
        try:
            await self.client.chat_update(channel=where.channel, ts=where.ts, **self._payload(message))
        except SLACK_FAILURES as exc:
            raise _slack_error("update a message", exc) from exc

    async def ephemeral(self, channel: str, user: str, message: Message, *, thread_ts: str | None = None) -> None:
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, **self._payload(message)
            )
        except SLACK_FAILURES as exc:
            raise _slack_error("show you a message", exc) from exc

    async def upload(self, channel: str, *, filename: str, content: str, title: str, comment: str) -> None:
        text = redacted(content, self._secrets)
        try:
            await self.client.files_upload_v2(
                channel=channel, filename=filename, content=text, title=title, initial_comment=comment
            )
        except SLACK_FAILURES as exc:
            raise _slack_error("upload a file", exc) from exc


SLACK_FAILURES = (SlackApiError, TimeoutError, aiohttp.ClientError)
"""What slack_sdk raises when Slack refuses, or does not answer in time (it does not wrap the latter)."""


def _slack_error(what: str, exc: Exception) -> ServiceError:
    if not isinstance(exc, SlackApiError):
        code = Code.TIMEOUT if isinstance(exc, TimeoutError) else Code.SERVER_UNAVAILABLE
        return ServiceError(
            f"Slack did not answer when asked to {what} ({type(exc).__name__}); it will be retried", code=code
        )
    error = str(exc.response.get("error", "unknown_error"))
    hint = {
        "not_in_channel": "invite the emaildoctor app to the channel (/invite @emaildoctor)",
        "channel_not_found": "check the channel setting, and invite the app to private channels",
        "ratelimited": "Slack is rate-limiting the app; it will retry",
        "invalid_auth": "check EMAILDOCTOR_SLACK__BOT_TOKEN",
        "not_authed": "check EMAILDOCTOR_SLACK__BOT_TOKEN",
    }.get(error, "")
    code = Code.THROTTLED if error == "ratelimited" else Code.SERVER_UNAVAILABLE
    return ServiceError(f"Slack refused to {what}: {error}" + (f" ({hint})" if hint else ""), code=code)


def is_channel_problem(error: ServiceError) -> bool:
    return "not_in_channel" in str(error) or "channel_not_found" in str(error)

"""The live state of the sandbox Slack workspace: who is in it, and everything that happened in it.

Every change notifies one :class:`asyncio.Condition`, so tests and the demo wait for an outcome
with :meth:`SlackWorkspace.wait_for` instead of polling.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar, cast

from sandbox.clock import Clock, SystemClock
from sandbox.slack.model import (
    ApiCall,
    Bot,
    Channel,
    InboundRequest,
    InteractionKind,
    JsonObject,
    MessageRef,
    ResponsePost,
    ResponseUrl,
    SlackDelivery,
    SlackFile,
    SlackMessage,
    SlackView,
    Team,
    Trigger,
    User,
    Usergroup,
)
from sandbox.slack.ratelimit import RateLimits
from sandbox.slack.socket_mode import SocketModeHub

T = TypeVar("T")

RESPONSE_URL_TTL = timedelta(minutes=30)
RESPONSE_URL_MAX_USES = 5
TRIGGER_TTL = timedelta(seconds=3)


class SlackWorkspace:
    """Team, bot, people, groups and channels (from tenant.yaml) plus every message, view, file,
    Web API call, response_url post and delivery to the bot since the sandbox started."""

    def __init__(
        self,
        *,
        team: Team,
        bot: Bot,
        signing_secret: str,
        users: Iterable[User],
        app_token: str | None = None,
        usergroups: Iterable[Usergroup] = (),
        channels: Iterable[Channel] = (),
        verification_token: str = "sandbox-verification",  # noqa: S107 - a sandbox value, not a secret
        clock: Clock | None = None,
    ) -> None:
        self.team = team
        self.bot = bot
        self.app_token = app_token
        """The app-level token (``xapp-…``) that may open Socket Mode connections; None: the app has none."""
        self.app_token_scopes: tuple[str, ...] = ("connections:write",)
        self.signing_secret = signing_secret
        self.verification_token = verification_token
        self.users: dict[str, User] = {user.id: user for user in users}
        self.usergroups: dict[str, Usergroup] = {group.id: group for group in usergroups}
        self.channels: dict[str, Channel] = {channel.id: channel for channel in channels}
        self.clock: Clock = clock or SystemClock()
        """Replaced by :func:`build_slack_app` with the sandbox clock: message ts, expiry of triggers and response_urls."""
        self.rate_limits = RateLimits()
        self.response_url_replaces_by_default = False
        """UNCONFIRMED in Slack's docs for Block Kit: whether a response_url post from a button click
        without ``replace_original`` replaces the clicked message (legacy attachments did). Default: new message."""
        self._messages: dict[tuple[str, str], list[SlackMessage]] = {}
        self._order: list[tuple[str, str]] = []
        self._calls: list[ApiCall] = []
        self._requests: list[InboundRequest] = []
        self._files: dict[str, SlackFile] = {}
        self._views: dict[str, SlackView] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._response_posts: list[ResponsePost] = []
        self._triggers: dict[str, Trigger] = {}
        self._deliveries: list[SlackDelivery] = []
        self._counter = itertools.count(1)
        self._ts_secs = 0
        self._ts_seq = 0
        self._condition = asyncio.Condition()
        self.socket_mode = SocketModeHub(self)
        """Socket Mode: the app's open WebSocket connections, the envelopes sent over them and their acks."""

    # ----------------------------------------------------------------------------- ids and time

    def next_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._counter):08d}"

    def next_ts(self) -> str:
        """A message timestamp: epoch seconds of the clock and a sequence, strictly increasing."""
        secs = int(self.clock.now().timestamp())
        if secs > self._ts_secs:
            self._ts_secs, self._ts_seq = secs, 0
        self._ts_seq += 1
        return f"{self._ts_secs}.{self._ts_seq:06d}"

    # ----------------------------------------------------------------------------- directory

    def find_user(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    def user_by_email(self, email: str) -> User | None:
        wanted = email.strip().lower()
        return next((u for u in self.users.values() if u.email and u.email.lower() == wanted), None)

    def find_channel(self, channel_id: str) -> Channel | None:
        return self.channels.get(channel_id)

    def resolve_channel(self, ref: str) -> Channel | None:
        """A channel by id, ``#name`` or ``name`` (as chat.postMessage accepts)."""
        if ref in self.channels:
            return self.channels[ref]
        name = ref.removeprefix("#")
        return next((c for c in self.channels.values() if c.name == name and not c.is_im), None)

    def dm_channel(self, user_id: str) -> Channel | None:
        return next((c for c in self.channels.values() if c.is_im and c.im_user == user_id), None)

    # ----------------------------------------------------------------------------- changes

    async def _changed(self) -> None:
        async with self._condition:
            self._condition.notify_all()

    async def notify_changed(self) -> None:
        """Wake :meth:`wait_for` after a change recorded outside the workspace (Socket Mode connections, acks)."""
        await self._changed()

    async def open_dm(self, user_ids: list[str]) -> tuple[Channel, bool]:
        """The DM (one user) or group DM (several) between the bot and ``user_ids``; True if it existed."""
        if len(user_ids) == 1:
            existing = self.dm_channel(user_ids[0])
            if existing is not None:
                return existing, True
            channel = Channel(
                id=f"D{user_ids[0][1:]}",
                name=user_ids[0],
                members=[self.bot.user_id, user_ids[0]],
                is_private=True,
                is_im=True,
                im_user=user_ids[0],
            )
        else:
            members = sorted({self.bot.user_id, *user_ids})
            for existing_group in self.channels.values():
                if existing_group.is_mpim and sorted(existing_group.members) == members:
                    return existing_group, True
            channel = Channel(
                id=self.next_id("G"), name="mpdm-" + "--".join(members), members=members, is_private=True, is_mpim=True
            )
        self.channels[channel.id] = channel
        await self._changed()
        return channel, False

    async def post_message(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[JsonObject] | None = None,
        user: str | None = None,
        thread_ts: str | None = None,
        visible_to: str | None = None,
        files: tuple[str, ...] = (),
        via: str = "chat.postMessage",
        metadata: JsonObject | None = None,
    ) -> SlackMessage:
        """Record a new message. ``user`` defaults to the bot; ``visible_to`` makes it ephemeral."""
        author = user or self.bot.user_id
        if thread_ts is not None:
            parent = self._latest(channel, thread_ts)
            if parent is not None and parent.is_reply:
                thread_ts = parent.thread_ts  # Slack threads a reply-to-a-reply under the parent
        message = SlackMessage(
            channel=channel,
            ts=self.next_ts(),
            text=text,
            blocks=copy.deepcopy(blocks or []),
            user=author,
            bot_id=self.bot.bot_id if author == self.bot.user_id else None,
            thread_ts=thread_ts,
            ephemeral=visible_to is not None,
            visible_to=visible_to,
            files=files,
            via=via,
            metadata=metadata,
        )
        self._messages[(channel, message.ts)] = [message]
        self._order.append((channel, message.ts))
        await self._changed()
        return message

    async def update_message(
        self, ref: MessageRef, *, text: str | None, blocks: list[JsonObject] | None, via: str
    ) -> SlackMessage:
        """Add a version: ``None`` keeps the text or blocks, ``[]`` removes the blocks (as chat.update does)."""
        current = self.message(ref.channel, ref.ts)
        updated = replace(
            current,
            text=current.text if text is None else text,
            blocks=current.blocks if blocks is None else copy.deepcopy(blocks),
            version=current.version + 1,
            edited_ts=None if current.ephemeral else self.next_ts(),
            via=via,
        )
        self._messages[(ref.channel, ref.ts)].append(updated)
        await self._changed()
        return updated

    async def delete_message(self, ref: MessageRef, *, via: str) -> SlackMessage:
        current = self.message(ref.channel, ref.ts)
        gone = replace(current, deleted=True, version=current.version + 1, via=via)
        self._messages[(ref.channel, ref.ts)].append(gone)
        await self._changed()
        return gone

    async def record_request(self, method: str, path: str, status: int) -> None:
        self._requests.append(InboundRequest(method, path, status, self.clock.now()))
        await self._changed()

    async def record_call(
        self, method: str, args: Mapping[str, Any], token: str | None, status: int, response: Mapping[str, Any] | None
    ) -> ApiCall:
        call = ApiCall(len(self._calls) + 1, method, dict(args), token, status, response, self.clock.now())
        self._calls.append(call)
        await self._changed()
        return call

    async def save_view(self, view: SlackView) -> SlackView:
        self._views[view.id] = view
        view.versions.append(copy.deepcopy(view.view))
        await self._changed()
        return view

    async def close_view(self, view: SlackView) -> None:
        view.closed = True
        await self._changed()

    async def save_file(self, file: SlackFile) -> SlackFile:
        self._files[file.id] = file
        await self._changed()
        return file

    async def record_response_post(self, post: ResponsePost) -> None:
        self._response_posts.append(post)
        await self._changed()

    async def record_delivery(self, delivery: SlackDelivery) -> None:
        self._deliveries.append(delivery)
        await self._changed()

    def mint_response_url(
        self, kind: InteractionKind, *, channel: str, user: str, source: MessageRef | None = None
    ) -> ResponseUrl:
        response_url = ResponseUrl(
            id=f"{self.team.id}-{next(self._counter)}-{secrets.token_hex(12)}",
            kind=kind,
            channel=channel,
            user=user,
            issued_at=self.clock.now(),
            source=source,
        )
        self._response_urls[response_url.id] = response_url
        return response_url

    def mint_trigger(self, user: str) -> Trigger:
        secs = int(self.clock.now().timestamp())
        trigger = Trigger(
            id=f"{secs}.{next(self._counter)}.{secrets.token_hex(16)}", user=user, issued_at=self.clock.now()
        )
        self._triggers[trigger.id] = trigger
        return trigger

    def find_response_url(self, response_url_id: str) -> ResponseUrl | None:
        return self._response_urls.get(response_url_id)

    def find_trigger(self, trigger_id: str) -> Trigger | None:
        return self._triggers.get(trigger_id)

    def find_upload(self, upload_token: str) -> SlackFile | None:
        return next((f for f in self._files.values() if f.upload_token == upload_token), None)

    # ----------------------------------------------------------------------------- queries

    def _latest(self, channel: str, ts: str) -> SlackMessage | None:
        versions = self._messages.get((channel, ts))
        return versions[-1] if versions else None

    def message(self, channel: str, ts: str) -> SlackMessage:
        """The latest version of a message (possibly a deleted one); KeyError if it never existed."""
        latest = self._latest(channel, ts)
        if latest is None:
            raise KeyError(f"no message {ts} in {channel}")
        return latest

    def latest(self, ref: MessageRef | SlackMessage) -> SlackMessage:
        return self.message(ref.channel, ref.ts)

    def versions(self, channel: str, ts: str) -> list[SlackMessage]:
        return list(self._messages.get((channel, ts), []))

    def all_messages(self, *, include_deleted: bool = False) -> list[SlackMessage]:
        """The latest version of every message, in the order they were posted."""
        latest = [self._messages[key][-1] for key in self._order]
        return [m for m in latest if include_deleted or not m.deleted]

    def messages(
        self, channel: str, *, include_ephemeral: bool = True, include_replies: bool = False
    ) -> list[SlackMessage]:
        """Messages in a channel (top level unless ``include_replies``), oldest first, latest versions."""
        return [
            m
            for m in self.all_messages()
            if m.channel == channel and (include_ephemeral or not m.ephemeral) and (include_replies or not m.is_reply)
        ]

    def replies(self, channel: str, thread_ts: str) -> list[SlackMessage]:
        """The replies in a thread (without its parent), oldest first."""
        return [m for m in self.all_messages() if m.channel == channel and m.is_reply and m.thread_ts == thread_ts]

    def ephemeral_messages(self, user_id: str | None = None, channel: str | None = None) -> list[SlackMessage]:
        return [
            m
            for m in self.all_messages()
            if m.ephemeral
            and (user_id is None or m.visible_to == user_id)
            and (channel is None or m.channel == channel)
        ]

    def calls(self, method: str | None = None) -> list[ApiCall]:
        """Every Web API call (or those of one method), in order; throttled ones included with status 429."""
        return [c for c in self._calls if method is None or c.method == method]

    def requests(self) -> list[InboundRequest]:
        """Every HTTP request the Slack server received (but ``/_sandbox/``), in order, whatever it asked for."""
        return list(self._requests)

    def calls_by_method(self, method: str) -> list[ApiCall]:
        return self.calls(method)

    def files(self, channel: str | None = None) -> list[SlackFile]:
        """Completed uploads (in ``channel`` if given), oldest first."""
        return [f for f in self._files.values() if f.completed and (channel is None or channel in f.channels)]

    def file(self, file_id: str) -> SlackFile:
        return self._files[file_id]

    def find_file(self, file_id: str) -> SlackFile | None:
        return self._files.get(file_id)

    def views(self, user_id: str | None = None, *, include_closed: bool = True) -> list[SlackView]:
        return [
            v
            for v in self._views.values()
            if (user_id is None or v.user == user_id) and (include_closed or not v.closed)
        ]

    def view(self, view_id: str) -> SlackView:
        return self._views[view_id]

    def find_view(self, view_id: str | None = None, external_id: str | None = None) -> SlackView | None:
        if view_id is not None:
            return self._views.get(view_id)
        return next((v for v in self._views.values() if external_id and v.external_id == external_id), None)

    def response_posts(self, response_url_id: str | None = None) -> list[ResponsePost]:
        return [p for p in self._response_posts if response_url_id is None or p.response_url_id == response_url_id]

    def deliveries(self) -> list[SlackDelivery]:
        return list(self._deliveries)

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float = 5.0) -> T:  # noqa: ASYNC109 - the contract tests and the demo use
        """Wait until ``predicate()`` is truthy (checked now and after every change); return its value.

        Raises TimeoutError naming the latest messages when it does not happen in ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout), self._condition:
                return cast(T, await self._condition.wait_for(predicate))
        except TimeoutError:
            recent = "; ".join(f"{m.channel}/{m.ts}: {m.text[:60]!r}" for m in self.all_messages()[-5:]) or "none"
            raise TimeoutError(f"condition not met within {timeout}s; latest messages: {recent}") from None

    async def wait_for_message(
        self,
        channel: str,
        predicate: Callable[[SlackMessage], bool] = lambda _: True,
        *,
        thread_ts: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - same contract as wait_for
    ) -> SlackMessage:
        """The first message in ``channel`` (or in the thread ``thread_ts``) matching ``predicate``."""

        def found() -> SlackMessage | None:
            pool = self.replies(channel, thread_ts) if thread_ts else self.messages(channel, include_replies=True)
            return next((m for m in pool if predicate(m)), None)

        return await self.wait_for(found, timeout)

"""The things a Slack workspace holds, as plain dataclasses the tests and the demo read.

Records that never change once written (a message version, a Web API call, a delivery) are frozen;
records Slack itself mutates (a channel's members, a view, an upload, a response_url) are not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.checks_slack import REQUIRED_SCOPES

JsonObject = dict[str, Any]

DEFAULT_BOT_SCOPES = REQUIRED_SCOPES
"""What the emaildoctor bot asks for in its manifest (the list ``emaildoctor check`` compares with what Slack granted);
``bot.scopes`` in tenant.yaml overrides it."""


@dataclass(frozen=True)
class Team:
    id: str
    domain: str
    name: str


@dataclass(frozen=True)
class Bot:
    user_id: str
    bot_id: str
    app_id: str
    name: str
    token: str
    scopes: tuple[str, ...] = DEFAULT_BOT_SCOPES


@dataclass(frozen=True)
class User:
    id: str
    name: str
    real_name: str
    email: str | None = None
    deleted: bool = False
    is_bot: bool = False


@dataclass(frozen=True)
class Usergroup:
    id: str
    handle: str
    name: str
    users: tuple[str, ...]


@dataclass
class Channel:
    id: str
    name: str
    members: list[str]
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    im_user: str | None = None
    """For a DM (``D…``): the person the bot talks to."""


@dataclass(frozen=True)
class MessageRef:
    """Where a message lives: enough to find its latest version, click it or update it."""

    channel: str
    ts: str


@dataclass(frozen=True)
class SlackMessage:
    """One version of a message. Updates add versions with the same ``ts``; deletion adds a last one."""

    channel: str
    ts: str
    text: str
    blocks: list[JsonObject]
    user: str | None
    """The author: a person's id, or the bot user's id for messages the bot posts."""
    bot_id: str | None = None
    thread_ts: str | None = None
    ephemeral: bool = False
    visible_to: str | None = None
    """For an ephemeral message: the only user who sees it."""
    files: tuple[str, ...] = ()
    via: str = "chat.postMessage"
    """How it got there: a Web API method, ``response_url``, ``ack`` or ``client`` (typed by a person)."""
    version: int = 0
    edited_ts: str | None = None
    deleted: bool = False
    metadata: JsonObject | None = None

    @property
    def ref(self) -> MessageRef:
        return MessageRef(self.channel, self.ts)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def action_ids(self) -> list[str]:
        """Every interactive element's action_id in the blocks, in order (for tests and error messages)."""
        return [
            element["action_id"]
            for block in self.blocks
            for element in _elements(block)
            if isinstance(element.get("action_id"), str)
        ]

    def all_text(self) -> str:
        """The top-level text and every text in the blocks, joined: what a person reads."""
        parts = [self.text]
        _collect_text(self.blocks, parts)
        return "\n".join(part for part in parts if part)


def _elements(block: Mapping[str, Any]) -> list[JsonObject]:
    out: list[JsonObject] = []
    if isinstance(block.get("elements"), list) and block.get("type") == "actions":
        out.extend(e for e in block["elements"] if isinstance(e, dict))
    out.extend(block[key] for key in ("accessory", "element") if isinstance(block.get(key), dict))
    return out


def _collect_text(node: Any, parts: list[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn", "text") and isinstance(node.get("text"), str):
            parts.append(node["text"])
        for key, value in node.items():
            if key != "text" or not isinstance(value, str):
                _collect_text(value, parts)
    elif isinstance(node, list):
        for item in node:
            _collect_text(item, parts)


@dataclass(frozen=True)
class InboundRequest:
    """Any HTTP request that reached the sandbox Slack server (Web API, a response_url — known or not —,
    uploads, any other path), with the status it got: what an app sent towards "Slack", all of it."""

    method: str
    path: str
    status: int
    at: datetime


@dataclass(frozen=True)
class ApiCall:
    """One request to ``/api/{method}``, answered or not (a throttled one is recorded with 429)."""

    seq: int
    method: str
    args: Mapping[str, Any]
    token: str | None
    status: int
    response: Mapping[str, Any] | None
    at: datetime

    @property
    def ok(self) -> bool:
        return self.response is not None and self.response.get("ok") is True

    @property
    def error(self) -> str | None:
        if self.response is None:
            return None
        error = self.response.get("error")
        return error if isinstance(error, str) else None


@dataclass
class SlackFile:
    id: str
    name: str
    title: str
    length: int
    user: str
    created: int
    upload_token: str
    content: bytes = b""
    uploaded: bool = False
    completed: bool = False
    channels: list[str] = field(default_factory=list)
    initial_comment: str | None = None
    thread_ts: str | None = None
    alt_txt: str | None = None
    snippet_type: str | None = None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass
class SlackView:
    id: str
    user: str
    view: JsonObject
    """The latest view as the bot sent it (without the ids Slack adds)."""
    hash: str
    external_id: str | None
    root_view_id: str
    previous_view_id: str | None = None
    closed: bool = False
    versions: list[JsonObject] = field(default_factory=list)
    errors: JsonObject | None = None
    """The last ``response_action: errors`` the bot answered a submission with."""

    @property
    def callback_id(self) -> str:
        value = self.view.get("callback_id")
        return value if isinstance(value, str) else ""


InteractionKind = Literal["slash_command", "block_actions", "view_submission"]


@dataclass
class ResponseUrl:
    """A response_url minted for one interaction: 30 minutes and 5 uses, as Slack gives."""

    id: str
    kind: InteractionKind
    channel: str
    user: str
    issued_at: datetime
    source: MessageRef | None = None
    """For block_actions: the message whose button was clicked (what replace/delete act on)."""
    uses: int = 0
    last_posted: MessageRef | None = None


@dataclass(frozen=True)
class ResponsePost:
    response_url_id: str
    payload: Mapping[str, Any]
    status: int
    error: str | None
    message: MessageRef | None
    at: datetime


@dataclass
class Trigger:
    id: str
    user: str
    issued_at: datetime
    used: bool = False


@dataclass(frozen=True)
class SlackDelivery:
    """What happened when the sandbox, acting as Slack, delivered one request to the bot (over HTTP, or as a
    Socket Mode envelope)."""

    kind: InteractionKind
    url: str
    request_body: str
    request_headers: Mapping[str, str]
    status: int | None
    """The bot's HTTP status, or None when it did not answer in time (``error`` says why)."""
    body: str
    headers: Mapping[str, str]
    elapsed_s: float
    """From sending the request until the bot's HTTP answer: Slack gives up after 3 seconds."""
    response_url: str | None
    trigger_id: str
    error: str | None = None
    envelope_id: str | None = None
    """Socket Mode only: the envelope the payload went in (``url`` is then the ``wss://`` connection's URL,
    ``request_body`` the envelope as JSON, ``status`` 200 when acknowledged in time, ``body`` the ack's payload)."""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def acked_in_time(self) -> bool:
        return self.ok and self.elapsed_s <= 3.0

    def json(self) -> Any:
        """The bot's answer as JSON (``None`` for an empty body)."""
        return json.loads(self.body) if self.body.strip() else None

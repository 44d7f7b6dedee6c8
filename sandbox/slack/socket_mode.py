"""Socket Mode: ``apps.connections.open``, the WebSocket Slack delivers envelopes over, and the acks.

What Slack documents (docs.slack.dev, "Using Socket Mode" and ``apps.connections.open``), and the
sandbox does:

- ``apps.connections.open`` takes the app-level token (``xapp-…``, scope ``connections:write``) in the
  ``Authorization: Bearer`` header and answers ``{"ok": true, "url": "wss://…/link/?ticket=…&app_id=…"}``.
  A bot token is refused with ``not_allowed_token_type`` (and the app token on any other method too),
  an unknown token with ``invalid_auth``, no token with ``not_authed`` (see ``web_api._dispatch``).
- On connecting, Slack sends ``{"type": "hello", "num_connections", "debug_info": {"host", "started",
  "build_number", "approximate_connection_time"}, "connection_info": {"app_id"}}``.
- Payloads arrive as envelopes ``{"envelope_id", "type": "slash_commands" | "interactive" | "events_api",
  "payload", "accepts_response_payload"}``; the app acknowledges each with ``{"envelope_id", "payload"?}``
  and Slack waits 3 seconds for it, as for an HTTP answer. An app may hold up to 10 connections; each
  payload goes to any one of them (here: in turn).
- Slack ends connections with ``{"type": "disconnect", "reason": "warning" | "refresh_requested" |
  "link_disabled", "debug_info": {"host"}}`` (:meth:`SocketModeHub.disconnect`), or they just drop
  (:meth:`SocketModeHub.drop`, or the ``slack`` fault ``drop_rate`` rolled once per envelope: the
  connection is cut instead of the envelope being sent). slack_sdk then opens a new one through
  ``apps.connections.open``. The other ``slack`` faults act on ``apps.connections.open`` and on the
  WebSocket upgrade through the HTTP fault middleware.

UNCONFIRMED, chosen here:

- a ticket works once, within :data:`TICKET_TTL` of the workspace clock; a used, expired or unknown
  ticket is refused before the upgrade with HTTP 401 ``{"ok": false, "error": "invalid_ticket"}``;
- ``apps.connections.open`` with the app token as a form or query ``token`` answers ``invalid_auth``
  (reported in slackapi/python-slack-sdk#1877; the docs only say "an error");
- ``retry_attempt`` / ``retry_reason`` are in every ``events_api`` envelope (0 and ``""`` the first
  time) and in other envelopes only when a test redelivers; Slack does not retry slash commands or
  interactions on its own (the person sees an error), so :meth:`SocketModeHub.deliver` sends once;
- with no open connection a delivery fails at once with ``dispatch_failed`` (what Slack shows a person
  when it cannot reach an app); the 10-connection limit and Slack's periodic refresh are not modelled:
  a test refreshes with :meth:`SocketModeHub.disconnect`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import WSCloseCode, WSMsgType, web

from sandbox.faults import FaultBook
from sandbox.slack.model import JsonObject

if TYPE_CHECKING:
    from sandbox.slack.workspace import SlackWorkspace

EnvelopeType = Literal["slash_commands", "interactive", "events_api"]
DisconnectReason = Literal["warning", "refresh_requested", "link_disabled"]

ACK_TIMEOUT_S = 3.0
TICKET_TTL = timedelta(seconds=60)
APPROXIMATE_CONNECTION_TIME_S = 18060
LINK_PATH = "/link/"
_HOST = "applink-sandbox"


@dataclass
class Ticket:
    id: str
    issued_at: datetime
    used: bool = False


@dataclass
class SocketConnection:
    """One WebSocket the app opened; ``sent`` and ``received`` hold every message, in order."""

    number: int
    """1 for the app's first connection, 2 for the next (a reconnect) …"""
    url: str
    opened_at: datetime
    ws: web.WebSocketResponse = field(repr=False)
    transport: asyncio.Transport | None = field(repr=False)
    sent: list[JsonObject] = field(default_factory=list)
    received: list[JsonObject] = field(default_factory=list)
    closed_at: datetime | None = None
    dropped: bool = False

    @property
    def open(self) -> bool:
        """Slack may still send over it: neither closed nor cut."""
        return self.closed_at is None and not self.dropped


@dataclass(frozen=True)
class SocketAck:
    envelope_id: str
    payload: JsonObject | None
    connection: int
    in_time: bool
    """False for an ack that came after Slack stopped waiting (or for no envelope at all)."""
    at: datetime


@dataclass(frozen=True)
class EnvelopeResult:
    """One envelope sent (or not: ``connection`` None) and what came of it."""

    envelope: JsonObject
    connection: SocketConnection | None
    acked: bool
    ack_payload: JsonObject | None
    elapsed_s: float
    error: str | None

    @property
    def envelope_id(self) -> str:
        return str(self.envelope["envelope_id"])


class SocketModeHub:
    """The Socket Mode side of one workspace (``workspace.socket_mode``): tickets, connections, envelopes."""

    def __init__(self, workspace: SlackWorkspace) -> None:
        self.workspace = workspace
        self.faults: FaultBook | None = None
        """Set by ``build_slack_app``: ``drop_rate`` of service ``slack`` cuts connections on delivery."""
        self._tickets: dict[str, Ticket] = {}
        self._connections: list[SocketConnection] = []
        self._numbers = itertools.count(1)
        self._turn = itertools.count()
        self._pending: dict[str, asyncio.Future[JsonObject | None]] = {}
        self._acks: list[SocketAck] = []
        self._envelopes: list[JsonObject] = []

    # ----------------------------------------------------------------------------- queries

    def connections(self, *, include_closed: bool = False) -> list[SocketConnection]:
        return [c for c in self._connections if include_closed or c.open]

    def acks(self) -> list[SocketAck]:
        return list(self._acks)

    def envelopes(self) -> list[JsonObject]:
        """Every envelope Slack sent (or meant to send, over a connection that was cut) to the app, in order."""
        return list(self._envelopes)

    async def wait_for_connection(
        self,
        newer_than: SocketConnection | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - the workspace's wait_for contract
    ) -> SocketConnection:
        """The newest open connection (numbered after ``newer_than``, to see a reconnect), once there is one."""
        floor = newer_than.number if newer_than is not None else 0

        def found() -> SocketConnection | None:
            fresh = [c for c in self.connections() if c.number > floor]
            return fresh[-1] if fresh else None

        return await self.workspace.wait_for(found, timeout)

    # ----------------------------------------------------------------------------- apps.connections.open

    def issue_ticket(self) -> Ticket:
        ticket = Ticket(id=f"{uuid.uuid4()}-{secrets.token_hex(8)}", issued_at=self.workspace.clock.now())
        self._tickets[ticket.id] = ticket
        return ticket

    def link_url(self, origin: str) -> str:
        """The ``wss://`` URL (``ws://`` when served without TLS) for a fresh ticket, on the server at ``origin``."""
        scheme, _, host = origin.partition("://")
        ticket = self.issue_ticket()
        ws_scheme = "wss" if scheme == "https" else "ws"
        return f"{ws_scheme}://{host}{LINK_PATH}?ticket={ticket.id}&app_id={self.workspace.bot.app_id}"

    # ----------------------------------------------------------------------------- the WebSocket

    async def link_handler(self, request: web.Request) -> web.StreamResponse:
        """``GET /link/?ticket=…``: upgrade, send ``hello``, then read acks until the socket closes."""
        ticket = self._tickets.get(request.query.get("ticket", ""))
        now = self.workspace.clock.now()
        if ticket is None or ticket.used or now - ticket.issued_at > TICKET_TTL:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        ws = web.WebSocketResponse(autoping=True)
        if not ws.can_prepare(request).ok:
            return web.json_response({"ok": False, "error": "websocket_upgrade_required"}, status=400)
        ticket.used = True
        await ws.prepare(request)
        connection = SocketConnection(
            number=next(self._numbers),
            url=f"{'wss' if request.secure else 'ws'}://{request.host}{request.path_qs}",
            opened_at=now,
            ws=ws,
            transport=request.transport,
        )
        self._connections.append(connection)
        try:
            await self._send(connection, self._hello(connection))
            await self.workspace.notify_changed()
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._received(connection, message.data)
        finally:
            connection.closed_at = self.workspace.clock.now()
            await self.workspace.notify_changed()
        return ws

    def _hello(self, connection: SocketConnection) -> JsonObject:
        return {
            "type": "hello",
            "num_connections": len(self.connections()),
            "debug_info": {
                "host": f"{_HOST}-{connection.number}",
                "started": connection.opened_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                "build_number": 1,
                "approximate_connection_time": APPROXIMATE_CONNECTION_TIME_S,
            },
            "connection_info": {"app_id": self.workspace.bot.app_id},
        }

    async def _send(self, connection: SocketConnection, message: JsonObject) -> None:
        connection.sent.append(message)
        await connection.ws.send_str(json.dumps(message))

    async def _received(self, connection: SocketConnection, data: str) -> None:
        try:
            message: Any = json.loads(data)
        except json.JSONDecodeError:
            return  # Slack ignores what it cannot read
        if not isinstance(message, dict):
            return
        connection.received.append(message)
        envelope_id = message.get("envelope_id")
        if isinstance(envelope_id, str):
            payload = message.get("payload")
            waiting = self._pending.get(envelope_id)
            in_time = waiting is not None and not waiting.done()
            if waiting is not None and in_time:
                waiting.set_result(payload if isinstance(payload, dict) else None)
            ack_payload = payload if isinstance(payload, dict) else None
            self._acks.append(
                SocketAck(envelope_id, ack_payload, connection.number, in_time, self.workspace.clock.now())
            )
        await self.workspace.notify_changed()

    # ----------------------------------------------------------------------------- what Slack does

    async def deliver(
        self,
        envelope_type: EnvelopeType,
        payload: JsonObject,
        *,
        accepts_response_payload: bool,
        retry_attempt: int | None = None,
        retry_reason: str = "",
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> EnvelopeResult:
        """Send ``payload`` in a new envelope over one open connection and wait up to ``ack_timeout_s`` for its ack."""
        envelope: JsonObject = {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": envelope_type,
            "accepts_response_payload": accepts_response_payload,
        }
        if envelope_type == "events_api" or retry_attempt is not None:
            envelope.update(retry_attempt=retry_attempt or 0, retry_reason=retry_reason)
        self._envelopes.append(envelope)
        open_connections = self.connections()
        if not open_connections:
            return EnvelopeResult(envelope, None, False, None, 0.0, "dispatch_failed")
        connection = open_connections[next(self._turn) % len(open_connections)]
        waiting: asyncio.Future[JsonObject | None] = asyncio.get_running_loop().create_future()
        self._pending[envelope["envelope_id"]] = waiting
        started = time.perf_counter()
        try:
            if self.faults is not None and self.faults.roll(self.faults.get("slack").drop_rate):
                connection.sent.append(envelope)  # what Slack meant to send; the connection is cut instead
                self._cut(connection)
            else:
                await self._send(connection, envelope)
            async with asyncio.timeout(ack_timeout_s):
                ack_payload = await waiting
        except TimeoutError:
            return EnvelopeResult(envelope, connection, False, None, time.perf_counter() - started, "operation_timeout")
        except ConnectionError as exc:
            elapsed = time.perf_counter() - started
            return EnvelopeResult(envelope, connection, False, None, elapsed, f"{type(exc).__name__}: {exc}")
        finally:
            self._pending.pop(envelope["envelope_id"], None)
            if not waiting.done():
                waiting.cancel()
        return EnvelopeResult(envelope, connection, True, ack_payload, time.perf_counter() - started, None)

    async def disconnect(self, reason: DisconnectReason = "refresh_requested") -> int:
        """Send Slack's ``disconnect`` message on every open connection (the client then reconnects); how many."""
        targets = self.connections()
        for connection in targets:
            await self._send(connection, {"type": "disconnect", "reason": reason, "debug_info": {"host": _HOST}})
        return len(targets)

    async def drop(self) -> int:
        """Cut every open connection without a close frame, as a network failure would; how many."""
        targets = self.connections()
        for connection in targets:
            self._cut(connection)
        await self.workspace.notify_changed()
        return len(targets)

    def _cut(self, connection: SocketConnection) -> None:
        connection.dropped = True
        if connection.transport is not None:
            connection.transport.abort()

    async def close_all(self) -> None:
        """On server shutdown: close what is still open (1001 going away)."""
        for connection in self.connections():
            await connection.ws.close(code=WSCloseCode.GOING_AWAY)

"""A real SMTP server for the probe's tests: aiosmtpd on 127.0.0.1, an ephemeral port, TLS from a throwaway
CA, AUTH PLAIN/LOGIN/XOAUTH2, and any stage's reply or delay scripted by the test.

Stages that can be scripted: banner, ehlo, starttls, auth, mail, rcpt, data_command (the reply to DATA)
and data (the reply after the message).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

INVALID = "535 5.7.3 Authentication unsuccessful [BN0PR04CA0001.namprd04.prod.outlook.com]"


@dataclass
class Behaviour:
    users: dict[str, str] = field(default_factory=lambda: {"admin@business.com": "correct horse battery staple"})
    tokens: dict[str, str] = field(default_factory=dict)
    """Valid XOAUTH2 tokens and the user each may sign in as."""
    mechanisms: tuple[str, ...] = ("LOGIN", "PLAIN", "XOAUTH2")
    offer_starttls: bool = True
    auth_require_tls: bool = True
    require_auth: bool = True
    replies: dict[str, str] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    xoauth2_error_challenge: bool = False
    received: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    auth_lines_seen: list[str] = field(default_factory=list)


class ScriptedSMTP(SMTP):
    command_size_limit = 16384  # real XOAUTH2 tokens are several kilobytes

    def __init__(self, behaviour: Behaviour, **kwargs: Any) -> None:
        self.behaviour = behaviour
        excluded = [m for m in ("LOGIN", "PLAIN", "XOAUTH2") if m not in behaviour.mechanisms]
        super().__init__(
            _Handler(behaviour),
            authenticator=self._check_password,
            auth_exclude_mechanism=excluded,
            auth_required=behaviour.require_auth,
            hostname="mx.test.example",
            ident="ESMTP scripted test server",
            **kwargs,
        )

    async def _pause(self, stage: str) -> bool:
        """Delay, then push a scripted reply if there is one; True when the stage was answered here."""
        delay = self.behaviour.delays.get(stage, 0.0)
        if delay:
            await asyncio.sleep(delay)
        reply = self.behaviour.replies.get(stage)
        if reply is not None:
            await self.push(reply)
            return True
        return False

    async def _handle_client(self) -> None:
        if await self._pause("banner"):
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    async def smtp_EHLO(self, hostname: str) -> None:
        if await self._pause("ehlo"):
            return
        assert self.session is not None
        self._set_rset_state()
        self.session.extended_smtp = True
        self.session.host_name = hostname
        lines = [f"250-{self.hostname} Hello [127.0.0.1]", "250-SIZE 157286400", "250-ENHANCEDSTATUSCODES"]
        if self.tls_context and not self._tls_protocol and self.behaviour.offer_starttls:
            lines.append("250-STARTTLS")
        if (not self._auth_require_tls or self._tls_protocol) and self._auth_methods:
            lines.append("250-AUTH " + " ".join(sorted(self._auth_methods)))
        lines.append("250 8BITMIME")
        for line in lines:
            await self.push(line)

    async def smtp_STARTTLS(self, arg: str) -> None:
        if await self._pause("starttls"):
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        self.behaviour.auth_lines_seen.append(arg)
        if await self._pause("auth"):
            return
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self._pause("mail"):
            return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self._pause("rcpt"):
            return
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if await self._pause("data_command"):
            return
        await super().smtp_DATA(arg)

    def _check_password(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        user, password = data.login.decode(), data.password.decode()
        if self.behaviour.users.get(user) == password:
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False, message=INVALID)

    async def auth_XOAUTH2(self, _: object, args: list[str]) -> AuthResult:
        raw = base64.b64decode(args[1]) if len(args) > 1 else await self.challenge_auth("")
        assert isinstance(raw, bytes)
        fields = dict(part.split("=", 1) for part in raw.decode().split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        if self.behaviour.tokens.get(token) == user:
            return AuthResult(success=True, auth_data=user)
        if self.behaviour.xoauth2_error_challenge:
            error = {"status": "401", "schemes": "bearer", "scope": "https://outlook.office.com/SMTP.Send"}
            await self.challenge_auth(json.dumps(error))
        return AuthResult(success=False, handled=False, message=INVALID)


class _Handler:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        delay = self.behaviour.delays.get("data", 0.0)
        if delay:
            await asyncio.sleep(delay)
        reply = self.behaviour.replies.get("data")
        if reply is not None:
            return reply
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.behaviour.received.append(message_from_bytes(content))
        self.behaviour.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 2.0.0 OK <queued> [Hostname=mx.test.example]"


@dataclass
class RunningServer:
    port: int
    behaviour: Behaviour
    server: asyncio.Server


@asynccontextmanager
async def scripted_server(
    behaviour: Behaviour,
    *,
    mode: str = "starttls",
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[RunningServer]:
    """Serve ``behaviour`` on 127.0.0.1:0. ``mode``: starttls (plain, STARTTLS offered when ``tls`` is given),
    tls (implicit TLS from the first byte) or plain (no TLS at all)."""
    loop = asyncio.get_running_loop()
    implicit = mode == "tls"

    sessions: list[ScriptedSMTP] = []

    def factory() -> ScriptedSMTP:
        session = ScriptedSMTP(
            behaviour,
            tls_context=None if implicit or mode == "plain" else tls,
            require_starttls=False,
            auth_require_tls=behaviour.auth_require_tls and not implicit,
        )
        sessions.append(session)
        return session

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=tls if implicit else None)
    port = server.sockets[0].getsockname()[1]
    try:
        yield RunningServer(port=port, behaviour=behaviour, server=server)
    finally:
        server.close()
        # Close sessions still open (e.g. a scripted delay outlived the client's timeout).
        for session in sessions:
            if session.transport is not None and not session.transport.is_closing():
                session.transport.close()
        await asyncio.sleep(0.01)
        await server.wait_closed()

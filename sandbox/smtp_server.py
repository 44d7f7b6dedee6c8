"""SMTP client submission as ``smtp.office365.com`` does it: a STARTTLS port (587) and an implicit-TLS
port (465), AUTH LOGIN / PLAIN / XOAUTH2 after TLS, Exchange's replies, SendAs enforcement and delivery
into the tenant's mailboxes (visible through Graph).

The protocol is aiosmtpd's, with Exchange's texts; policy decisions live in :mod:`sandbox.smtp_policy`.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from asyncio import sslproto
from base64 import b64decode
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, TLSSetupException

from sandbox.faults import FaultBook
from sandbox.smtp_policy import (
    BACKEND_HOST,
    FRONTEND,
    QUIT,
    Submission,
    auth_basic,
    auth_xoauth2,
    check_data,
    check_mail_from,
    deliver,
)
from sandbox.state import Tenant, User
from sandbox.tokens import TokenIssuer

EHLO_BEFORE_TLS = ["SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]  # fmt: skip
REWRITES = {
    "354 End data with <CR><LF>.<CR><LF>": "354 Start mail input; end with <CRLF>.<CRLF>",
    "503 Error: need RCPT command": "503 5.5.2 Need rcpt command",
    "503 Error: need MAIL command": "503 5.5.2 Need mail command",
    "503 Error: nested MAIL command": "503 5.5.2 Sender already specified",
    "500 Error: bad syntax": "500 5.3.3 Unrecognized command",
}
BIG = 1 << 16


@dataclass(frozen=True)
class SmtpSignIn:
    """One AUTH attempt: the name given, whether it signed in, and when (wall clock)."""

    login: str
    ok: bool
    at: datetime


@dataclass
class SmtpService:
    tenant: Tenant
    issuer: TokenIssuer
    faults: FaultBook
    tls_context: ssl.SSLContext
    host: str = "127.0.0.1"
    active: dict[str, list[ExchangeSMTP]] = field(default_factory=dict)
    """Authenticated connections per mailbox, oldest first (Exchange serves 3; later ones get 432 4.3.2)."""
    recipients_today: dict[tuple[str, date], int] = field(default_factory=dict)
    protocols: set[asyncio.Protocol] = field(default_factory=set)
    starttls_port: int = 0
    tls_port: int = 0
    sign_ins: list[SmtpSignIn] = field(default_factory=list)
    """Every AUTH attempt, in order: what a sign-in log of the tenant would show."""
    _servers: list[asyncio.Server] = field(default_factory=list)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        plain = await loop.create_server(lambda: self._connection(implicit=False), self.host, 0)
        secure = await loop.create_server(lambda: self._connection(implicit=True), self.host, 0, ssl=self.tls_context)
        self._servers = [plain, secure]
        self.starttls_port = int(plain.sockets[0].getsockname()[1])
        self.tls_port = int(secure.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        tasks = []
        for protocol in list(self.protocols):
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.close()
            task = getattr(protocol, "_handler_coroutine", None)
            if task is not None:
                task.cancel()
                tasks.append(task)
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers = []

    def _connection(self, implicit: bool) -> asyncio.Protocol:
        faults = self.faults.get("smtp")
        if self.faults.roll(faults.drop_rate):
            return _Closing(None)
        if self.faults.roll(faults.error_rate):
            return _Closing("421 4.3.2 Service not available, closing transmission channel")
        throttled = self.faults.take_throttle("smtp")
        reply = faults.throttle_reply or "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"
        if throttled and reply.startswith("421"):
            return _Closing(reply)
        protocol = ExchangeSMTP(self, implicit=implicit, throttle_reply=reply if throttled else None)
        self.protocols.add(protocol)
        return protocol


class _Closing(asyncio.Protocol):
    """A connection the faults decided to drop (no reply) or refuse (one reply, then close)."""

    def __init__(self, reply: str | None) -> None:
        self.reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.reply is not None and isinstance(transport, asyncio.WriteTransport):
            transport.write(self.reply.encode() + b"\r\n")
            transport.close()
        else:
            transport.abort() if isinstance(transport, asyncio.WriteTransport) else transport.close()


class _Hooks:
    """aiosmtpd handler hooks; the real work is on :class:`ExchangeSMTP`."""

    def __init__(self, protocol: ExchangeSMTP) -> None:
        self.protocol = protocol

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return self.protocol.on_mail(envelope, address, options)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return self.protocol.on_rcpt(envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self.protocol.on_data(envelope)

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.protocol.release()
        return QUIT

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 Resetting"

    async def handle_NOOP(self, server: SMTP, session: Session, envelope: Envelope, arg: str) -> str:
        return "250 2.0.0 OK"


class ExchangeSMTP(SMTP):
    line_length_limit = BIG
    command_size_limit = BIG

    def __init__(self, service: SmtpService, *, implicit: bool, throttle_reply: str | None) -> None:
        self.service = service
        self.implicit = implicit
        self.throttle_reply = throttle_reply
        self.stage = "banner"
        self.login_user: User | None = None
        self.login_name = ""
        self.counted: str | None = None
        now = service.tenant.now()
        super().__init__(
            _Hooks(self),
            hostname=FRONTEND,
            ident=f"Microsoft ESMTP MAIL Service ready at {format_datetime(now)} [08DE{now.strftime('%H%M%S')}A1B2C3]",
            tls_context=None if implicit else service.tls_context,
            auth_require_tls=not implicit,
            data_size_limit=157286400,
            enable_SMTPUTF8=True,
            timeout=600,
            loop=asyncio.get_running_loop(),
        )
        self.command_size_limits = collections.defaultdict(lambda: BIG)

    @property
    def secure(self) -> bool:
        return self.implicit or self._tls_protocol is not None

    def connection_lost(self, error: Exception | None) -> None:
        self.release()
        self.service.protocols.discard(self)
        super().connection_lost(error)

    def release(self) -> None:
        if self.counted is not None:
            holders = self.service.active.get(self.counted, [])
            if self in holders:
                holders.remove(self)
            self.counted = None

    async def push(self, status: AnyStr) -> None:
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        text = REWRITES.get(text, text)
        if text.startswith("500 Error: command"):
            text = "500 5.3.3 Unrecognized command"
        faults = self.service.faults
        delay = faults.latency_s("smtp")
        settings = faults.get("smtp")
        if settings.slow_stage == self.stage:
            delay += settings.slow_stage_ms / 1000.0
        if delay:
            await asyncio.sleep(delay)
        await super().push(text)

    async def check_helo_needed(self, helo: str = "HELO") -> bool:
        assert self.session is not None
        if not self.session.host_name:
            await self.push("503 5.5.2 Send hello first")
            return True
        return False

    # --- commands --------------------------------------------------------------------------------
    async def smtp_HELO(self, hostname: str) -> None:
        self.stage = "ehlo"
        if not hostname:
            await self.push("501 5.5.4 Invalid domain name")
            return
        self._set_rset_state()  # type: ignore[no-untyped-call]
        assert self.session is not None
        self.session.extended_smtp = False
        self.session.host_name = hostname
        await self.push(f"250 {self.hostname} Hello [{self._peer_ip()}]")

    async def smtp_EHLO(self, hostname: str) -> None:
        self.stage = "ehlo"
        if not hostname:
            await self.push("501 5.5.4 Invalid domain name")
            return
        self._set_rset_state()  # type: ignore[no-untyped-call]
        assert self.session is not None
        self.session.extended_smtp = True
        self.session.host_name = hostname
        lines = [f"{self.hostname} Hello [{self._peer_ip()}]"]
        for extension in EHLO_BEFORE_TLS:
            if extension == "STARTTLS":
                extension = "AUTH LOGIN XOAUTH2" if self.secure else "STARTTLS"
            lines.append(extension)
        # One write, so latency and slow_stage faults apply once to the whole multi-line reply.
        await self.push("\r\n".join([*(f"250-{line}" for line in lines[:-1]), f"250 {lines[-1]}"]))

    async def smtp_STARTTLS(self, arg: str) -> None:
        self.stage = "starttls"
        if arg:
            await self.push("501 5.5.4 Syntax error in parameters or arguments")
            return
        if self.secure or not self.tls_context:
            await self.push("503 5.5.1 Bad sequence of commands")
            return
        await self.push("220 2.0.0 SMTP server ready")
        waiter = self.loop.create_future()
        self._tls_protocol = sslproto.SSLProtocol(self.loop, self, self.tls_context, waiter, server_side=True)
        self._original_transport = self.transport
        assert self._original_transport is not None
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        try:
            await waiter
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise TLSSetupException() from error

    async def smtp_AUTH(self, arg: str) -> None:
        self.stage = "auth"
        if await self.check_helo_needed("EHLO"):
            return
        assert self.session is not None
        if not self.secure:
            await self.push("504 5.7.4 Unrecognized authentication type")
            return
        if self.session.authenticated:
            await self.push("503 5.5.1 Already authenticated")
            return
        if not arg:
            await self.push("501 5.5.4 Invalid arguments")
            return
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        tenant = self.service.tenant
        reply: str | None
        if mechanism == "LOGIN":
            reply = await self._auth_login(initial.strip())
        elif mechanism == "PLAIN" and tenant.behaviour.smtp_accept_plain:
            reply = await self._auth_plain(initial.strip())
        elif mechanism == "XOAUTH2":
            reply = await self._auth_xoauth2(initial.strip())
        else:
            reply = "504 5.7.4 Unrecognized authentication type"
        if reply is not None:
            await self.push(reply)

    async def _read_b64(self, initial: str, challenge: str) -> bytes | None:
        if initial:
            try:
                return b64decode(initial, validate=True)
            except ValueError:
                await self.push("501 5.5.2 Cannot Base64-decode Client responses")
                return None
        answer = await self.challenge_auth(challenge, encode_to_b64=bool(challenge))
        return None if answer is MISSING else answer

    async def _auth_login(self, initial: str) -> str | None:
        login = await self._read_b64(initial, "Username:")
        if login is None:
            return None
        password = await self._read_b64("", "Password:")
        if password is None:
            return None
        return self._finish(
            *auth_basic(self.service.tenant, login.decode(errors="replace"), password.decode(errors="replace"))
        )

    async def _auth_plain(self, initial: str) -> str | None:
        blob = await self._read_b64(initial, "")
        if blob is None:
            return None
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            return "501 5.5.2 Cannot Base64-decode Client responses"
        return self._finish(
            *auth_basic(self.service.tenant, parts[1].decode(errors="replace"), parts[2].decode(errors="replace"))
        )

    async def _auth_xoauth2(self, initial: str) -> str | None:
        blob = await self._read_b64(initial, "")
        if blob is None:
            return None
        return self._finish(*auth_xoauth2(self.service.tenant, self.service.issuer, blob))

    def _finish(self, reply: str, user: User | None, login_name: str) -> str:
        self.service.sign_ins.append(SmtpSignIn(login_name, user is not None, datetime.now(UTC)))
        if user is not None:
            assert self.session is not None
            self.session.authenticated = True
            self.login_user, self.login_name = user, login_name
            self.counted = user.id
            self.service.active.setdefault(user.id, []).append(self)
        return reply

    async def smtp_MAIL(self, arg: str | None) -> None:
        self.stage = "mail"
        if await self.check_helo_needed():
            return
        assert self.session is not None
        if not self.session.authenticated:
            await self.push("530 5.7.57 Client not authenticated to send mail.")
            return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        self.stage = "rcpt"
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        self.stage = "data"
        await super().smtp_DATA(arg)

    # --- hooks -----------------------------------------------------------------------------------
    def _submission(self) -> Submission:
        assert self.login_user is not None
        return Submission(tenant=self.service.tenant, login=self.login_user, login_name=self.login_name)

    def on_mail(self, envelope: Envelope, address: str, options: list[str]) -> str:
        if self.throttle_reply is not None:
            return self.throttle_reply
        assert self.login_user is not None
        holders = self.service.active.get(self.login_user.id, [])
        if self in holders and holders.index(self) >= self.service.tenant.behaviour.smtp_max_connections_per_mailbox:
            return "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"
        refusal = check_mail_from(self._submission(), address)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender OK"

    def on_rcpt(self, envelope: Envelope, address: str, options: list[str]) -> str:
        user = self.service.tenant.user_by_address(address)
        domain = address.rpartition("@")[2].lower()
        if user is None and domain in {d.lower() for d in self.service.tenant.domains}:
            return f"550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient {address} not found by SMTP address lookup"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Recipient OK"

    def on_data(self, envelope: Envelope) -> str:
        submission = self._submission()
        content = envelope.original_content or b""
        refusal = check_data(
            submission, envelope.mail_from or "", list(envelope.rcpt_tos), content, self.service.recipients_today
        )
        if refusal:
            return refusal
        message_id = deliver(submission, envelope.mail_from or "", list(envelope.rcpt_tos), content)
        return f"250 2.0.0 OK {message_id} [Hostname={BACKEND_HOST}]"

    def _peer_ip(self) -> str:
        peer: Any = self.session.peer if self.session else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "127.0.0.1"

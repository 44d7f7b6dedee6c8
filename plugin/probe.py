"""The SMTP probe: a swaks-like test send, stage by stage, on aiosmtplib.

Stages: connect, banner, ehlo, tls (STARTTLS and the EHLO after it, or the implicit-TLS handshake with
the greeting), auth, mail, rcpt, data. Each stage has its own timeout and timing; the session stops at
the first failure, which becomes a :class:`~plugin.classify.Failure` and then a diagnosis.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import socket
import ssl
import time
from collections.abc import Awaitable, Iterable
from typing import TypeVar

import aiosmtplib

from plugin.classify import Failure, FailureKind, Stage
from plugin.diagnosis import Code
from plugin.errors import EmailDoctorError
from plugin.probe_auth import auth_login, auth_plain, auth_xoauth2
from plugin.probe_diagnosis import diagnose_failure
from plugin.probe_request import ProbeRequest, ProbeResult, TlsInfo, check_request, file_version
from plugin.progress import NULL_PROGRESS, Progress, stage_wait
from plugin.replies import Reply, parse_reply
from plugin.settings import Security
from plugin.testmessage import build_test_message, new_test_id, wire_bytes
from plugin.transcript import Transcript

T = TypeVar("T")


class _Failed(Exception):  # noqa: N818 - control flow inside the session, never escapes it
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.kind)
        self.failure = failure


class _QuitAfter(Exception):  # noqa: N818 - control flow inside the session, never escapes it
    pass


async def run_probe(
    request: ProbeRequest, *, secrets: Iterable[str] = (), progress: Progress | None = None
) -> ProbeResult:
    """Run the test send described by ``request``. Raises ConfigError for settings that cannot work.

    ``progress`` hears of each stage as it starts and ends, and of each transcript line as it is written.
    """
    warnings = check_request(request)
    return await _Session(request, secrets, warnings, progress or NULL_PROGRESS).run()


def tls_context(ca_file: object | None) -> ssl.SSLContext:
    """The system trust store, plus ``ca_file`` if given; host names are checked; TLS 1.2 or later.

    One context per CA file (and its version on disk), shared by every probe: loading the system store takes
    tens of milliseconds of the event loop, and a bot diagnosing many people at once would pay it per test."""
    return _tls_context(None if ca_file is None else str(ca_file), file_version(ca_file))


@functools.lru_cache(maxsize=8)
def _tls_context(ca_file: str | None, version: tuple[int, int] | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


class _Session:
    def __init__(
        self, request: ProbeRequest, secrets: Iterable[str], warnings: tuple[str, ...], progress: Progress
    ) -> None:
        self.r = request
        self.warnings = warnings
        self.secrets = [s for s in secrets if s]
        if request.password is not None:
            self.secrets.append(request.password.get_secret_value())
        self.progress = progress
        self.transcript = Transcript(self.secrets, progress.line)
        self.test_id = request.test_id or new_test_id()
        self.timings: dict[str, float] = {}
        self.stage = Stage.CONNECT
        self.smtp: aiosmtplib.SMTP | None = None
        self.sock: socket.socket | None = None
        self.tls: TlsInfo | None = None
        self.mechanism: str | None = None
        self.offered: tuple[str, ...] = ()
        self.authenticated = False
        self.message_id: str | None = None
        self.implicit = request.security is Security.TLS
        self.handshaking = False

    async def run(self) -> ProbeResult:
        failure: Failure | None = None
        try:
            await self._steps()
            self.stage = Stage.DONE
        except _QuitAfter:
            pass
        except _Failed as failed:
            failure = failed.failure
        finally:
            await self._close()
        if failure is not None and failure.stage is Stage.BANNER and failure.kind is FailureKind.TIMEOUT:
            failure = await self._second_opinion(failure)
        return self._result(failure)

    async def _second_opinion(self, failure: Failure) -> Failure:
        """The greeting never came in plain text: does this port speak implicit TLS instead (as 465 does)?"""
        if self.implicit:
            return failure
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only asks "is this TLS?"; nothing is sent over it
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.r.host, self.r.port, ssl=context), min(self.r.timeout, 5.0)
            )
        except (OSError, TimeoutError):
            return failure
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        self.transcript.note("A second connection answered a TLS handshake: this port speaks implicit TLS.")
        return dataclasses.replace(failure, tls_detected=True)

    async def _steps(self) -> None:
        r = self.r
        await self._timed(Stage.CONNECT, self._connect())
        self._quit_if(Stage.CONNECT)
        await self._timed(Stage.TLS if self.implicit else Stage.BANNER, self._greeting())
        self._quit_if(Stage.BANNER)
        await self._timed(Stage.EHLO, self._ehlo())
        self._quit_if(Stage.EHLO)
        if r.security is Security.STARTTLS:
            await self._timed(Stage.TLS, self._starttls())
        self._quit_if(Stage.TLS)
        if r.password is not None or r.token_source is not None:
            await self._timed(Stage.AUTH, self._auth())
        self._quit_if(Stage.AUTH)
        await self._timed(Stage.MAIL, self._command(f"MAIL FROM:<{r.from_addr}>", (250,)))
        self._quit_if(Stage.MAIL)
        await self._timed(Stage.RCPT, self._command(f"RCPT TO:<{r.to_addr}>", (250, 251)))
        self._quit_if(Stage.RCPT)
        await self._timed(Stage.DATA, self._data())

    def _quit_if(self, stage: Stage) -> None:
        if self.r.quit_after is stage:
            self.stage = stage
            self.transcript.note(f"Quitting after the {stage} stage, as asked.")
            raise _QuitAfter

    async def _timed(self, stage: Stage, step: Awaitable[T]) -> T:
        self.stage = stage
        self.progress.step(stage_wait(str(stage), f"{self.r.host}:{self.r.port}"))
        started, ok = time.perf_counter(), False
        try:
            value = await step
        except _Failed:
            raise
        except EmailDoctorError as exc:  # the token source
            self.transcript.note(f"Could not get a token: {exc}")
            raise _Failed(self._failure(FailureKind.TOKEN, detail=str(exc), token_code=exc.code)) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise _Failed(self._translate(exc)) from exc
        else:
            ok = True
            return value
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self.timings[str(stage)] = round(self.timings.get(str(stage), 0.0) + elapsed, 1)
            self.progress.done(str(stage), ok, f"{elapsed:8.1f} ms")

    # -- stages -------------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        r = self.r
        self.transcript.note(f"Trying {r.host}:{r.port}...")
        deadline = loop.time() + r.timeout
        infos = await asyncio.wait_for(loop.getaddrinfo(r.host, r.port, type=socket.SOCK_STREAM), r.timeout)
        last: BaseException | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, address), max(deadline - loop.time(), 0.001))
            except (OSError, TimeoutError) as exc:
                sock.close()
                last = exc
                continue
            self.sock = sock
            self.transcript.note(f"Connected to {address[0]}.")
            return
        raise last or OSError("no address to connect to")

    async def _greeting(self) -> None:
        r = self.r
        self.smtp = aiosmtplib.SMTP(
            hostname=r.host,
            sock=self.sock,
            use_tls=self.implicit,
            start_tls=False,
            tls_context=tls_context(r.ca_file),
            timeout=r.timeout,
            local_hostname=r.helo_name or socket.gethostname(),
        )
        self.sock = None  # aiosmtplib owns the socket now and closes it
        self.handshaking = self.implicit
        response = await self.smtp.connect()
        self.handshaking = False
        if self.implicit:
            self._record_tls()
        self.transcript.received(response.code, response.message)

    async def _ehlo(self) -> None:
        smtp = self._smtp()
        self.transcript.sent(f"EHLO {smtp.local_hostname}")
        try:
            response = await smtp.ehlo()
        except aiosmtplib.SMTPHeloError as exc:
            self.transcript.received(exc.code, exc.message)
            if exc.code not in (500, 502):
                raise _Failed(self._failure(FailureKind.REPLY, reply=parse_reply(exc.code, exc.message))) from exc
            self.transcript.sent(f"HELO {smtp.local_hostname}")
            response = await smtp.helo()
        self.transcript.received(response.code, response.message)

    async def _starttls(self) -> None:
        smtp = self._smtp()
        if not smtp.supports_extension("starttls"):
            raise _Failed(self._failure(FailureKind.NOT_OFFERED, missing="starttls"))
        self.transcript.sent("STARTTLS")
        self.handshaking = True
        response = await smtp.starttls(server_hostname=self.r.host)
        self.handshaking = False
        self.transcript.received(response.code, response.message)
        self._record_tls()
        await self._ehlo()

    async def _auth(self) -> None:
        smtp, r = self._smtp(), self.r
        offered = smtp.server_auth_methods
        self.offered = tuple(offered)
        if not smtp.supports_extension("auth"):
            before_tls = not self.tls and smtp.supports_extension("starttls")
            raise _Failed(
                self._failure(
                    FailureKind.NOT_OFFERED,
                    missing="auth",
                    detail=" (it offers AUTH only after STARTTLS, and SSL is off)" if before_tls else "",
                )
            )
        wanted = r.mechanism or (
            "xoauth2" if r.token_source else next((m for m in ("plain", "login") if m in offered), None)
        )
        if wanted is None or wanted not in offered:
            self.mechanism = wanted or "plain"
            raise _Failed(
                self._failure(
                    FailureKind.NOT_OFFERED,
                    missing=self.mechanism,
                    detail=f"; it offers {', '.join(m.upper() for m in offered)}",
                )
            )
        self.mechanism = wanted
        if wanted == "xoauth2":
            assert r.token_source is not None
            assert r.user is not None
            token = await r.token_source()
            self.secrets.append(token)
            response = await auth_xoauth2(smtp, self.transcript, r.user, token)
        else:
            password = r.password.get_secret_value() if r.password else ""
            exchange = auth_login if wanted == "login" else auth_plain
            response = await exchange(smtp, self.transcript, r.user or "", password)
        self.transcript.received(response.code, response.message)
        if response.code != 235:
            raise _Failed(self._failure(FailureKind.REPLY, reply=parse_reply(response.code, response.message)))
        self.authenticated = True

    async def _command(self, line: str, accepted: tuple[int, ...]) -> None:
        smtp = self._smtp()
        self.transcript.sent(line)
        response = await smtp.execute_command(*(part.encode() for part in line.split(" ", 1)))
        self.transcript.received(response.code, response.message)
        if response.code not in accepted:
            raise _Failed(self._failure(FailureKind.REPLY, reply=parse_reply(response.code, response.message)))

    async def _data(self) -> None:
        smtp, r = self._smtp(), self.r
        await self._command("DATA", (354,))
        message = build_test_message(
            from_addr=r.from_addr,
            to_addr=r.to_addr,
            sender=r.sender,
            test_id=self.test_id,
            headers=r.headers,
            body=r.body,
        )
        self.message_id = str(message["Message-ID"])
        for name, value in message.items():
            self.transcript.sent(f"{name}: {value}")
        self.transcript.sent("[the message body]" if r.body is not None else "[test message body]")
        self.transcript.sent(".")
        protocol = smtp.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        protocol.write(wire_bytes(message))
        response = await protocol.read_response(timeout=r.timeout)
        self.transcript.received(response.code, response.message)
        if response.code != 250:
            raise _Failed(self._failure(FailureKind.REPLY, reply=parse_reply(response.code, response.message)))

    # -- helpers ------------------------------------------------------------------------------------------

    def _smtp(self) -> aiosmtplib.SMTP:
        assert self.smtp is not None
        return self.smtp

    def _record_tls(self) -> None:
        ssl_object = self._smtp().get_transport_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            cipher = ssl_object.cipher()
            self.tls = TlsInfo(version=ssl_object.version() or "?", cipher=cipher[0] if cipher else "?")
            self.transcript.note(f"TLS started with {self.tls.version}, cipher {self.tls.cipher}.")

    def _failure(
        self,
        kind: FailureKind,
        *,
        reply: Reply | None = None,
        detail: str = "",
        missing: str = "",
        token_code: Code | None = None,
    ) -> Failure:
        return Failure(
            stage=self.stage,
            kind=kind,
            reply=reply,
            detail=detail,
            missing=missing,
            security=self.r.security,
            port=self.r.port,
            mechanism=self.mechanism,
            offered=self.offered,
            authenticated=self.authenticated,
            tls_active=self.tls is not None,
            token_code=token_code,
        )

    def _translate(self, exc: BaseException) -> Failure:
        cause = exc.__cause__ if isinstance(exc, aiosmtplib.SMTPConnectError) and exc.__cause__ else exc
        if isinstance(exc, aiosmtplib.SMTPConnectResponseError | aiosmtplib.SMTPResponseException):
            self.transcript.received(exc.code, exc.message)
            return self._failure(FailureKind.REPLY, reply=parse_reply(exc.code, exc.message))
        if isinstance(cause, ssl.SSLCertVerificationError):
            self.stage = Stage.TLS
            detail = f" ({cause.verify_message})" if cause.verify_message else ""
            self.transcript.note(f"TLS certificate check failed{detail}")
            return self._failure(FailureKind.CERTIFICATE, detail=detail)
        if isinstance(cause, ssl.SSLError):
            self.stage = Stage.TLS
            self.transcript.note(f"TLS handshake failed: {cause.reason or cause}")
            return self._failure(FailureKind.TLS_ERROR, detail=f" ({cause.reason or cause})")
        if isinstance(exc, socket.gaierror):
            self.transcript.note(f"Cannot resolve {self.r.host}: {exc.strerror or exc}")
            return self._failure(FailureKind.DNS, detail=str(exc))
        if isinstance(exc, ConnectionRefusedError):
            self.transcript.note(f"Connection refused: {exc.strerror or exc}")
            return self._failure(FailureKind.REFUSED, detail=str(exc))
        if isinstance(exc, TimeoutError):  # includes aiosmtplib's timeouts
            if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError) and "ready message" in str(exc):
                self.stage = Stage.BANNER
            self.transcript.note(f"No answer within {self.r.timeout:g} s at the {self.stage} stage.")
            return self._failure(FailureKind.TIMEOUT, detail=str(exc))
        if self.handshaking:
            self.stage = Stage.TLS
            self.transcript.note("The server closed the connection during the TLS handshake.")
            return self._failure(
                FailureKind.TLS_ERROR, detail=" (the server closed the connection during the handshake)"
            )
        if self.stage is Stage.CONNECT and isinstance(exc, OSError):
            self.transcript.note(f"Cannot reach {self.r.host}: {exc}")
            return self._failure(FailureKind.UNREACHABLE, detail=str(exc))
        self.transcript.note(f"The server closed the connection: {exc}")
        return self._failure(FailureKind.DISCONNECTED, detail=str(exc))

    async def _close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        smtp = self.smtp
        if smtp is None or not smtp.is_connected:
            return
        try:
            self.transcript.sent("QUIT")
            response = await smtp.quit(timeout=min(self.r.timeout, 5.0))
            self.transcript.received(response.code, response.message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            smtp.close()

    def _result(self, failure: Failure | None) -> ProbeResult:
        return ProbeResult(
            ok=failure is None,
            stage=failure.stage if failure else self.stage,
            reply=failure.reply if failure else None,
            diagnosis=diagnose_failure(failure, self.r, self.tls, self.mechanism, self.secrets) if failure else None,
            transcript=tuple(self.transcript.lines),
            timings_ms=dict(self.timings),
            test_id=self.test_id,
            tls=self.tls,
            message_id=self.message_id,
            mechanism=self.mechanism,
            warnings=self.warnings,
        )

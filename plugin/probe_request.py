"""What an SMTP probe is asked to do, what it reports, and the checks made before connecting."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from plugin.addresses import HOST, has_control_characters, is_helo_name, validate_address
from plugin.classify import Stage
from plugin.diagnosis import Diagnosis
from plugin.errors import ConfigError
from plugin.replies import Reply
from plugin.settings import Security
from plugin.testmessage import build_test_message

TokenSource = Callable[[], Awaitable[str]]
"""The one shape of every token source: an async callable returning a fresh access token."""

MIN_TIMEOUT, MAX_TIMEOUT = 1.0, 300.0
QUIT_STAGES = (Stage.CONNECT, Stage.BANNER, Stage.EHLO, Stage.TLS, Stage.AUTH, Stage.MAIL, Stage.RCPT, Stage.DATA)
"""Where a probe may stop (swaks's --quit-after): connect is the TCP connection alone, banner the greeting too."""
MECHANISMS = ("plain", "login", "xoauth2")


@dataclass(frozen=True)
class ProbeRequest:
    host: str
    port: int
    security: Security
    from_addr: str
    to_addr: str
    user: str | None = None
    password: SecretStr | None = None
    token_source: TokenSource | None = None
    sender: str | None = None
    timeout: float = 30.0
    ca_file: Path | None = None
    quit_after: Stage | None = None
    helo_name: str | None = None
    mechanism: str | None = None
    """Force an AUTH mechanism (plain, login, xoauth2); by default XOAUTH2 with a token, else PLAIN or LOGIN."""
    test_id: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """Headers to add to the test message, or to replace there (smtp-test --header)."""
    body: str | None = None
    """The test message's text instead of the standard one (smtp-test --body)."""
    server_source: str | None = None
    """How reports name where these settings came from, e.g. 'the system Outgoing Mail Server'."""


@dataclass(frozen=True)
class TlsInfo:
    version: str
    cipher: str

    def to_json(self) -> dict[str, str]:
        return {"version": self.version, "cipher": self.cipher}


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    stage: Stage
    reply: Reply | None
    diagnosis: Diagnosis | None
    transcript: tuple[str, ...]
    timings_ms: dict[str, float]
    test_id: str
    tls: TlsInfo | None = None
    message_id: str | None = None
    mechanism: str | None = None
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "stage": str(self.stage),
            "reply": self.reply.to_json() if self.reply else None,
            "diagnosis": self.diagnosis.to_json() if self.diagnosis else None,
            "transcript": list(self.transcript),
            "timings_ms": self.timings_ms,
            "test_id": self.test_id,
            "message_id": self.message_id,
            "tls": self.tls.to_json() if self.tls else None,
            "auth_mechanism": self.mechanism,
            "warnings": list(self.warnings),
        }


def check_request(request: ProbeRequest) -> tuple[str, ...]:
    """Refuse settings that cannot work, saying what to change; return warnings for ones that are unwise.

    Raises :class:`ConfigError` listing every problem at once.
    """
    problems: list[str] = []
    warnings: list[str] = []
    host = request.host.strip()
    if not host or has_control_characters(request.host) or " " in host:
        problems.append("--host: give a server name such as smtp.office365.com (no spaces or line breaks)")
    elif "://" in host or not HOST.match(host):
        problems.append(f"--host: '{host}' is not a host name; give only the name, e.g. smtp.office365.com")
    if not 1 <= request.port <= 65535:
        problems.append(f"--port: {request.port} is not a TCP port (1-65535)")
    if request.security is Security.TLS and request.port in (25, 587):
        problems.append(
            f"--security tls on port {request.port}: port {request.port} speaks plain text first and upgrades with "
            "STARTTLS. Use --security starttls, or port 465 for implicit TLS."
        )
    if request.security is Security.STARTTLS and request.port == 465:
        problems.append(
            "--security starttls on port 465: port 465 expects TLS from the first byte. Use --security tls, or "
            "port 587 with STARTTLS (recommended)."
        )
    for option, value in (("--from", request.from_addr), ("--to", request.to_addr), ("--sender", request.sender)):
        if value is None:
            continue
        try:
            validate_address(value)
        except ValueError as exc:
            problems.append(f"{option}: {exc}")
    if request.user is not None and (not request.user.strip() or has_control_characters(request.user)):
        problems.append("--user: the user name must be one plain line")
    if request.password is not None and has_control_characters(request.password.get_secret_value()):
        problems.append("the password contains a line break or control character (check the file or variable)")
    if request.password is not None and request.token_source is not None:
        problems.append("use a password or OAuth, not both")
    if (request.password is not None or request.token_source is not None) and not request.user:
        problems.append("--user is required to sign in (the account or mailbox address)")
    if request.mechanism is not None:
        if request.mechanism not in MECHANISMS:
            problems.append(f"--auth: '{request.mechanism}' is not one of {', '.join(MECHANISMS)}")
        elif (request.mechanism == "xoauth2") != (request.token_source is not None):
            problems.append("--auth xoauth2 goes with --oauth, and plain/login with a password")
    if not MIN_TIMEOUT <= request.timeout <= MAX_TIMEOUT:
        problems.append(
            f"--timeout: {request.timeout:g} s is out of range; use {MIN_TIMEOUT:g} to {MAX_TIMEOUT:g} seconds "
            "(30 is a good default)"
        )
    if request.helo_name is not None and not is_helo_name(request.helo_name):
        problems.append(f"--helo: {request.helo_name[:80]!r} is not a host name; give one such as mail.example.com")
    if request.ca_file is not None:
        problem = ca_file_problem(request.ca_file)
        if problem:
            problems.append(f"--ca-file: {problem}")
    if request.headers or request.body is not None:
        try:
            build_test_message(
                from_addr=request.from_addr,
                to_addr=request.to_addr,
                sender=request.sender,
                test_id="ED-CHECK",
                headers=request.headers,
                body=request.body,
            )
        except (ValueError, TypeError, IndexError) as exc:
            problems.append(f"--header/--body: the test message cannot be built: {exc}")
    if request.quit_after is not None and request.quit_after not in QUIT_STAGES:
        problems.append(f"--quit-after: one of {', '.join(QUIT_STAGES)}")
    if problems:
        raise ConfigError("cannot run the SMTP test:\n  " + "\n  ".join(problems))
    if request.security is Security.NONE and request.password is not None and not _loopback(host):
        warnings.append("SSL is off: the password crosses the network readable by anyone in between.")
    if request.security is Security.NONE and request.port == 465:
        warnings.append("Port 465 normally expects implicit TLS (--security tls).")
    return tuple(warnings)


def file_version(path: object | None) -> tuple[int, int] | None:
    """What changes when a file is rewritten (modification time and size), for caches keyed by file; None when
    there is no such file."""
    if path is None:
        return None
    try:
        stat = Path(str(path)).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def ca_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as a CA bundle (missing, unreadable, not PEM certificates), or None (worked out once
    per version of the file)."""
    return _ca_file_problem(path, file_version(path))


@functools.lru_cache(maxsize=16)
def _ca_file_problem(path: Path, version: tuple[int, int] | None) -> str | None:
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_file():
        return f"{path} is not a file"
    try:
        text = path.read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if b"-----BEGIN CERTIFICATE-----" not in text:
        return f"{path} is not a PEM certificate (a CA bundle starts with -----BEGIN CERTIFICATE-----)"
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        return f"{path} is not a PEM certificate that can be read ({getattr(exc, 'reason', None) or exc})"
    return None


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")

"""``emaildoctor smtp-test``: a swaks-like probe of any SMTP server, with a diagnosis when it fails."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from plugin.classify import Stage
from plugin.errors import ConfigError
from plugin.probe import run_probe
from plugin.probe_diagnosis import CLI_SOURCE
from plugin.probe_request import MECHANISMS, QUIT_STAGES, ProbeRequest, ProbeResult, TokenSource, check_request
from plugin.progress import LiveProgress, progress_for
from plugin.redact import redact
from plugin.render_text import render_probe
from plugin.settings import Security, Settings
from plugin.testmessage import parse_header

if TYPE_CHECKING:
    from plugin.cli import CliContext

DESCRIPTION = """\
Run a real test send against any SMTP server, stage by stage (connect, banner, EHLO, TLS, AUTH, MAIL,
RCPT, DATA), and explain the first failure in plain words. Needs no Microsoft 365 settings.

examples:
  # the recommended Microsoft 365 setting: port 587, SSL (STARTTLS) on
  emaildoctor smtp-test --host smtp.office365.com --user admin@business.com \\
      --password-env ADMIN_SMTP_PASSWORD --from alice@business.com

  # OAuth (XOAUTH2) with the emaildoctor app's token, as the sales@ mailbox
  emaildoctor smtp-test --host smtp.office365.com --user sales@business.com --oauth \\
      --from sales@business.com

  # stop before sending anything: is the server there, does TLS work, do the credentials work?
  emaildoctor smtp-test --server mail.example.com:465 --security tls --user me@example.com \\
      --password-file ~/.smtp-password --from me@example.com --quit-after auth

  # swaks habits: host:port, the live transcript with timings, your own header and body, a password prompt
  emaildoctor smtp-test --server smtp.office365.com:587 --user admin@business.com --from alice@business.com \\
      -v --header 'X-Ticket: 4711' --body @message.txt

Passwords are read from an environment variable, a file, or (on a terminal) a hidden prompt; never from the
command line, and they never appear in the output. On a terminal each stage is shown as it happens (on
stderr; -v shows the transcript with timings); --json prints only the JSON object."""

EXIT_CODES = {
    Stage.CONNECT: 20,
    Stage.BANNER: 21,
    Stage.EHLO: 22,
    Stage.MAIL: 23,
    Stage.RCPT: 24,
    Stage.DATA: 25,
    Stage.AUTH: 28,
    Stage.TLS: 29,
}
EXIT_AFTER_DATA = 26
EXIT_TABLE = (
    (0, "the send succeeded, or every stage up to --quit-after did"),
    (1, "it failed in a way no code below names (the diagnosis says why)"),
    (2, "bad arguments or settings (nothing was sent)"),
    (20, "cannot connect (name not found, refused, unreachable, timed out)"),
    (21, "the greeting (banner) was refused or never came"),
    (22, "EHLO/HELO refused"),
    (23, "MAIL FROM refused (e.g. Send As denied at the envelope)"),
    (24, "RCPT TO refused"),
    (25, "DATA refused"),
    (26, "the message was refused after it was sent (e.g. Send As denied, quota)"),
    (28, "AUTH failed (wrong password, SMTP AUTH disabled, method not offered, token refused)"),
    (29, "TLS failed (STARTTLS missing, handshake, certificate, wrong TLS mode for the port)"),
)
"""smtp-test's exit codes: swaks's numbers where they fit (21-29); swaks's 2, "cannot connect", is 20 here, since 2
means bad arguments for every emaildoctor command."""
EPILOG = "exit status (swaks's numbers where they fit; swaks's 2, \"cannot connect\", is 20 here):\n" + "\n".join(
    f"  {code:>2}  {words}" for code, words in EXIT_TABLE
)
_HOST_PORT = re.compile(r"^\[(?P<v6>[^\]]+)\]:(?P<port6>\d+)$|^(?P<host>[^:\[\]]+):(?P<port>\d+)$")


class SmtpTestCommand:
    name = "smtp-test"
    help = "test-send through any SMTP server and diagnose the failure"
    description = DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.epilog = EPILOG
        server = parser.add_argument_group("server")
        server.add_argument(
            "--host",
            "--server",
            dest="host",
            required=True,
            metavar="HOST[:PORT]",
            help="SMTP server name, e.g. smtp.office365.com or smtp.office365.com:587 (--server as in swaks)",
        )
        server.add_argument("--port", type=int, help="TCP port (default 587; 465 implies --security tls)")
        server.add_argument(
            "--security",
            choices=[s.value for s in Security],
            help="starttls (SSL on, port 587), tls (implicit, port 465) or none (default: from the port)",
        )
        server.add_argument("--timeout", type=float, metavar="S", help="seconds allowed for each stage (default 30)")
        server.add_argument("--ca-file", type=Path, metavar="PEM", help="also trust this CA bundle for the server")
        server.add_argument("--helo", metavar="NAME", help="name to announce in EHLO (default: this host's name)")
        auth = parser.add_argument_group("sign-in (pick one way to give the secret)")
        auth.add_argument("--user", metavar="U", help="account that signs in (e.g. admin@business.com)")
        secret = auth.add_mutually_exclusive_group()
        secret.add_argument("--password-env", metavar="VAR", help="read the password from environment variable VAR")
        secret.add_argument("--password-file", type=Path, metavar="F", help="read the password from file F")
        secret.add_argument(
            "--oauth", action="store_true", help="sign in with XOAUTH2 using the emaildoctor app's token (M365)"
        )
        auth.add_argument("--auth", choices=MECHANISMS, help="force an AUTH mechanism (default: automatic)")
        message = parser.add_argument_group("message")
        message.add_argument("--from", dest="from_addr", required=True, metavar="ADDR", help="From address")
        message.add_argument("--to", dest="to_addr", metavar="ADDR", help="recipient (default: the From address)")
        message.add_argument(
            "--sender", metavar="ADDR", help="Sender header, for Send on Behalf (From = the mailbox, Sender = you)"
        )
        message.add_argument(
            "--header",
            dest="headers",
            action="append",
            default=[],
            metavar="'NAME: VALUE'",
            help="add this header to the test message, or replace the one of that name (repeatable)",
        )
        message.add_argument(
            "--body", metavar="TEXT|@FILE", help="the test message's text, or @FILE to read it from a file"
        )
        output = parser.add_argument_group("output")
        output.add_argument(
            "--quit-after",
            type=str.lower,
            choices=[s.value for s in QUIT_STAGES],
            help="stop after this stage and report what ran: connect (TCP only), banner, ehlo, tls, auth, mail, "
            "rcpt; 'data' (the default) sends the message",
        )
        output.add_argument(
            "-v", "--verbose", action="store_true", help="show the SMTP transcript with timings as it happens (stderr)"
        )
        output.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        settings = context.settings()
        request = build_request(args, context, settings)
        check_request(request)  # every settings problem before a password is asked for
        signs_in = request.quit_after not in (Stage.CONNECT, Stage.BANNER, Stage.EHLO, Stage.TLS)
        if request.user and request.password is None and request.token_source is None and signs_in:
            request = dataclasses.replace(request, password=ask_password(request.user))
        secrets = [*context.secrets()]
        if request.password is not None:
            secrets.append(request.password.get_secret_value())
        reporter = progress_for(
            context.err, enabled=not args.json, verbose=args.verbose, prefix="smtp-test: ", secrets=secrets
        )
        with reporter:
            result = await run_probe(request, secrets=secrets, progress=reporter)
        if args.json:
            output = json.dumps(result.to_json(), indent=2)
        else:
            # -v on a terminal has shown the transcript already, with timings; the report does not repeat it.
            shown = args.verbose and isinstance(reporter, LiveProgress) and context.out.isatty()
            output = render_probe(request, result, transcript=not shown)
        print(redact(output, secrets), file=context.out)
        return exit_code(result)


def exit_code(result: ProbeResult) -> int:
    """0, or the failing stage's own code (see EPILOG)."""
    if result.ok:
        return 0
    if result.stage is Stage.DATA and result.message_id is not None:
        return EXIT_AFTER_DATA  # DATA was accepted (354) and the message sent: refused after it
    return EXIT_CODES.get(result.stage, 1)


def ask_password(user: str) -> SecretStr:
    """A hidden prompt on a terminal; elsewhere one clear error, never a silent send without AUTH."""
    if not sys.stdin.isatty():
        raise ConfigError(
            f"--user {user} needs a password: give --password-env VAR or --password-file F (or --oauth), or run "
            "on a terminal to be asked for it"
        )
    try:
        password = getpass.getpass(f"Password for {user}: ")
    except EOFError:
        password = ""
    if not password:
        raise ConfigError(f"no password given for {user}; nothing was sent")
    return SecretStr(password)


def split_host(value: str) -> tuple[str, int | None]:
    """``host:port`` or ``[v6]:port`` -> (host, port); a plain name -> (name, None)."""
    match = _HOST_PORT.match(value.strip())
    if match is None:
        return value, None
    host = match.group("v6") or match.group("host")
    return host, int(match.group("port6") or match.group("port"))


def read_body(value: str) -> str:
    """``--body TEXT``, or ``--body @FILE`` read as UTF-8."""
    if not value.startswith("@"):
        return value
    path = Path(value[1:]).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"--body: cannot read {path}: {reason}") from exc


def build_request(args: argparse.Namespace, context: CliContext, settings: Settings) -> ProbeRequest:
    host, host_port = split_host(args.host)
    if host_port is not None and args.port is not None and host_port != args.port:
        raise ConfigError(f"--host {args.host} names port {host_port} but --port says {args.port}; give the port once")
    given_port = host_port if host_port is not None else args.port
    default_port = 465 if args.security == Security.TLS.value else settings.smtp.port
    port = given_port if given_port is not None else default_port
    if args.security:
        security = Security(args.security)
    elif given_port == 465:
        security = Security.TLS
    elif given_port is None:
        security = settings.smtp.security
    else:
        security = Security.STARTTLS
    headers: list[tuple[str, str]] = []
    for text in args.headers:
        try:
            headers.append(parse_header(text))
        except ValueError as exc:
            raise ConfigError(f"--header: {exc}") from exc
    password: SecretStr | None = None
    if args.password_env:
        value = context.environ.get(args.password_env)
        if value is None:
            raise ConfigError(f"--password-env: environment variable {args.password_env} is not set")
        password = SecretStr(value)
    elif args.password_file:
        password = SecretStr(_read_password_file(args.password_file))
    token_source = load_token_source(settings) if args.oauth else None
    return ProbeRequest(
        host=host,
        port=port,
        security=security,
        from_addr=args.from_addr,
        to_addr=args.to_addr or settings.smtp.test_recipient or args.from_addr,
        user=args.user,
        password=password,
        token_source=token_source,
        sender=args.sender,
        timeout=args.timeout if args.timeout is not None else settings.smtp.timeout,
        ca_file=args.ca_file or settings.smtp.ca_file,
        quit_after=Stage(args.quit_after) if args.quit_after else None,
        helo_name=args.helo or settings.smtp.helo_name,
        mechanism=args.auth,
        headers=tuple(headers),
        body=read_body(args.body) if args.body is not None else None,
        server_source=CLI_SOURCE,
    )


def _read_password_file(path: Path) -> str:
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--password-file: cannot read {path}: {exc.strerror or exc}") from exc
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError(f"--password-file: {path} is empty")
    return password


def load_token_source(settings: Settings) -> TokenSource:
    """The SMTP (XOAUTH2) token source contributed by the Microsoft 365 package, built from settings."""
    found = [entry for entry in entry_points(group="emaildoctor.token_sources") if entry.name == "smtp"]
    if not found:
        raise ConfigError("--oauth needs the Microsoft 365 package, which provides the token source")
    factory = found[0].load()
    source: TokenSource = factory(settings)
    return source


COMMAND = SmtpTestCommand()

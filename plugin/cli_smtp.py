"""``emaildoctor smtp-test``: a swaks-like probe of any SMTP server, with a diagnosis when it fails."""

from __future__ import annotations

import argparse
import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from plugin.classify import Stage
from plugin.errors import ConfigError
from plugin.probe import run_probe
from plugin.probe_request import MECHANISMS, QUIT_STAGES, ProbeRequest, TokenSource
from plugin.redact import redact
from plugin.render_text import render_probe
from plugin.settings import Security, Settings

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
  emaildoctor smtp-test --host mail.example.com --port 465 --security tls --user me@example.com \\
      --password-file ~/.smtp-password --from me@example.com --quit-after auth

exit status: 0 the send succeeded, 1 it failed (the diagnosis says why), 2 bad arguments.
Passwords are read from an environment variable or a file, never from the command line, and never
appear in the output."""


class SmtpTestCommand:
    name = "smtp-test"
    help = "test-send through any SMTP server and diagnose the failure"
    description = DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        server = parser.add_argument_group("server")
        server.add_argument("--host", required=True, help="SMTP server name, e.g. smtp.office365.com")
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
        output = parser.add_argument_group("output")
        output.add_argument(
            "--quit-after",
            choices=[s.value for s in QUIT_STAGES],
            help="stop after this stage; 'data' sends the message",
        )
        output.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        settings = context.settings()
        request = build_request(args, context, settings)
        secrets = [*context.secrets()]
        if request.password is not None:
            secrets.append(request.password.get_secret_value())
        result = await run_probe(request, secrets=secrets)
        output = json.dumps(result.to_json(), indent=2) if args.json else render_probe(request, result)
        print(redact(output, secrets), file=context.out)
        return 0 if result.ok else 1


def build_request(args: argparse.Namespace, context: CliContext, settings: Settings) -> ProbeRequest:
    port = args.port or (465 if args.security == Security.TLS.value else settings.smtp.port)
    if args.security:
        security = Security(args.security)
    elif args.port == 465:
        security = Security.TLS
    elif args.port is None:
        security = settings.smtp.security
    else:
        security = Security.STARTTLS
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
        host=args.host,
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
        server_source="the --host/--port settings",
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

"""``emaildoctor sandbox``: run the local Microsoft 365 + SMTP + Slack sandbox until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sandbox.loader import TenantFileError
from sandbox.runtime import Sandbox

if TYPE_CHECKING:
    from plugin.cli import CliContext

DESCRIPTION = """\
Start a faithful local Microsoft 365 tenant (Entra ID sign-in, Microsoft Graph, the Exchange admin API,
SMTP submission on a STARTTLS and an implicit-TLS port) and the Slack workspace, all on 127.0.0.1 with
TLS from a throwaway CA, loaded from sandbox/examples/tenant.yaml (or --tenant). It prints the endpoints and
the CA path, writes the EMAILDOCTOR_… settings that point emaildoctor at it to --env-file, and serves
until you press Ctrl-C.

Secrets (client secret, SMTP passwords, Slack tokens) are written only to the env file, never printed.

examples:
  emaildoctor sandbox --env-file .env.sandbox
      then, in another terminal:
  emaildoctor --env-file .env.sandbox test alice
  set -a; . ./.env.sandbox; set +a          # or export the settings into a shell

  emaildoctor sandbox --env-file .env.sandbox --propagation-delay 0   # grants apply at once
  emaildoctor sandbox --tenant my-tenant.yaml --workdir /tmp/sandbox

The sandbox's own admin API (printed below as "sandbox admin") changes it while it runs:
  curl --cacert .sandbox/ca.pem -X PATCH https://127.0.0.1:PORT/_sandbox/faults/smtp -d '{"latency_ms": 500}'
  curl --cacert .sandbox/ca.pem https://127.0.0.1:PORT/_sandbox/rights?mailbox=alice@business.com
"""


class SandboxCommand:
    name = "sandbox"
    help = "run the local Microsoft 365 + SMTP + Slack sandbox"
    description = DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--env-file",
            dest="sandbox_env_file",
            type=Path,
            metavar="FILE",
            help="write the EMAILDOCTOR_… settings (and SMTP password variables) that point emaildoctor here",
        )
        parser.add_argument(
            "--tenant", type=Path, metavar="FILE", help="tenant file (default: the built-in business.com example)"
        )
        parser.add_argument(
            "--workdir", type=Path, default=Path(".sandbox"), metavar="DIR",
            help="where ca.pem, the app certificate and the directory copy go (default: .sandbox)",
        )  # fmt: skip
        parser.add_argument(
            "--propagation-delay", type=float, metavar="SECONDS",
            help="seconds before a granted or removed right applies to SMTP and Graph (default: from the tenant file)",
        )  # fmt: skip
        parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default: 127.0.0.1)")

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        problem = _check(args)
        if problem:
            print(f"emaildoctor sandbox: error: {problem}", file=context.err)
            return 2
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with Sandbox.running(
                args.tenant,
                workdir=args.workdir.resolve(),
                propagation_delay_seconds=args.propagation_delay,
                host=args.host,
            ) as sandbox:
                env_file = sandbox.write_env_file(args.sandbox_env_file.resolve()) if args.sandbox_env_file else None
                _announce(sandbox, env_file, context.out)
                await stop.wait()
        except TenantFileError as exc:
            print(f"emaildoctor sandbox: error: {exc}", file=context.err)
            return 2
        except OSError as exc:
            print(f"emaildoctor sandbox: error: cannot start: {exc}", file=context.err)
            return 1
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        print("sandbox stopped", file=context.out, flush=True)
        return 0


def _check(args: argparse.Namespace) -> str | None:
    if args.tenant is not None and not args.tenant.is_file():
        return f"--tenant {args.tenant}: no such file"
    if args.propagation_delay is not None and not 0 <= args.propagation_delay <= 86400:
        return "--propagation-delay must be between 0 and 86400 seconds"
    host = str(args.host)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return f"--host {host}: the sandbox listens on loopback addresses only (127.0.0.1, ::1, localhost)"
    return None


def _announce(sandbox: Sandbox, env_file: Path | None, out: TextIO) -> None:
    urls = sandbox.urls
    tenant = sandbox.tenant
    rows = [
        ("sign-in authority", sandbox.authority),
        ("Microsoft Graph", f"{urls.graph}/v1.0"),
        ("Exchange admin API", f"{urls.exchange}/adminapi/beta/{tenant.id}/InvokeCommand"),
        ("SMTP (STARTTLS, as 587)", f"{urls.smtp_host}:{urls.smtp_starttls_port}"),
        ("SMTP (implicit TLS, as 465)", f"{urls.smtp_host}:{urls.smtp_tls_port}"),
        ("Slack Web API", urls.slack_api),
        ("sandbox admin", f"{urls.admin}/_sandbox/"),
        ("CA certificate", str(sandbox.ca_path)),
        ("directory", str(sandbox.directory_path)),
        ("propagation delay", f"{tenant.propagation_delay_seconds:g} s"),
    ]
    print(f"emaildoctor sandbox: tenant {tenant.name} ({', '.join(tenant.domains)}), tenant id {tenant.id}", file=out)
    for label, value in rows:
        print(f"  {label:<28} {value}", file=out)
    if env_file is not None:
        print(f"settings written to {env_file} (it holds the sandbox's secrets; they are never printed)", file=out)
    else:
        print("run with --env-file FILE to get the EMAILDOCTOR_… settings (secrets are never printed)", file=out)
    print("serving; press Ctrl-C to stop", file=out, flush=True)


COMMAND = SandboxCommand()

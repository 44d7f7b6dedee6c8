"""The ``emaildoctor`` command line.

Each package contributes its subcommands through the ``emaildoctor.commands`` entry-point group
(``pyproject.toml``), so the core never imports Microsoft 365, Slack or sandbox code: ``smtp-test``
and ``check`` come from here (``check`` runs the checks other packages add through ``emaildoctor.checks``,
:mod:`plugin.checks`), ``test``/``perms`` from :mod:`graph`, ``grant``/``revoke``/``audit``/``bot`` from
:mod:`bot`, ``sandbox``/``demo`` from :mod:`sandbox`.

Exit status: 0 success, 1 a failure that was diagnosed, 2 bad arguments or settings (nothing
changed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import Protocol, TextIO

from dotenv import dotenv_values

from plugin.errors import ConfigError, EmailDoctorError
from plugin.redact import redact
from plugin.settings import Settings, load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# The order in which `emaildoctor --help` lists the commands: the everyday ones first.
_ORDER = ("test", "check", "smtp-test", "perms", "grant", "revoke", "audit", "bot", "sandbox", "demo")


class Command(Protocol):
    name: str
    help: str
    description: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    async def run(self, args: argparse.Namespace, context: CliContext) -> int: ...


@dataclass
class CliContext:
    """What a command gets from the edge: where settings come from, the environment, the terminal."""

    env_file: Path | None
    environ: Mapping[str, str]
    out: TextIO
    err: TextIO
    _settings: Settings | None = field(default=None, init=False)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.env_file)
        return self._settings

    def secrets(self) -> list[str]:
        """Secret values known at the edge, for :func:`plugin.redact.redact`."""
        try:
            return list(self.settings().secret_values())
        except ConfigError:
            return []


def build_parser(commands: Sequence[Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emaildoctor",
        description=(
            "Diagnose and fix outgoing-email failures on Microsoft 365: who signs in, which address the "
            "mail claims to be from, what the server said, and which Exchange right is missing."
        ),
        epilog=(
            "examples:\n"
            "  emaildoctor test alice                      full diagnosis for a directory user\n"
            "  emaildoctor smtp-test --host smtp.office365.com --user admin@business.com \\\n"
            "      --password-env ADMIN_SMTP_PASSWORD --from alice@business.com\n"
            "  emaildoctor perms alice@business.com        who may send as / on behalf of alice@\n"
            "  emaildoctor sandbox --env-file .env         a local Microsoft 365 + Slack to try it all\n\n"
            "Settings come from EMAILDOCTOR_* environment variables and a .env file; see README.md."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('emaildoctor')}")
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="read settings (EMAILDOCTOR_…) and secrets named by the directory from FILE (default: .env)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(sub)
        sub.set_defaults(_command=command)
    return parser


def discover_commands() -> list[Command]:
    found: dict[str, Command] = {}
    for entry in entry_points(group="emaildoctor.commands"):
        command: Command = entry.load()
        found[command.name] = command
    rank = {name: index for index, name in enumerate(_ORDER)}
    return sorted(found.values(), key=lambda c: (rank.get(c.name, len(rank)), c.name))


def _environ(env_file: Path | None) -> dict[str, str]:
    """The process environment over the .env file: secrets the directory names may live in either."""
    path = env_file or Path(".env")
    values = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}
    values.update(os.environ)
    return values


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser(discover_commands())
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage message already
        return int(exc.code or 0)
    if args.env_file is not None and not args.env_file.is_file():
        print(f"emaildoctor: error: --env-file {args.env_file}: no such file", file=err)
        return EXIT_USAGE
    context = CliContext(env_file=args.env_file, environ=_environ(args.env_file), out=out, err=err)
    command: Command = args._command
    try:
        return asyncio.run(command.run(args, context))
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return EXIT_INTERRUPTED
    except ConfigError as exc:
        print(f"emaildoctor {command.name}: error: {redact(str(exc), context.secrets())}", file=err)
        return EXIT_USAGE
    except EmailDoctorError as exc:
        code = f" [{exc.code}]" if exc.code else ""
        print(f"emaildoctor {command.name}: failed{code}: {redact(str(exc), context.secrets())}", file=err)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

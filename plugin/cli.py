"""The ``emaildoctor`` command line.

Each package contributes its subcommands through the ``emaildoctor.commands`` entry-point group
(``pyproject.toml``), so the core never imports Microsoft 365, Slack or sandbox code: ``smtp-test``,
``check`` and ``completion`` come from here, ``test``/``perms`` from :mod:`graph`,
``grant``/``revoke``/``audit``/``bot`` from :mod:`bot`, ``sandbox``/``demo`` from :mod:`sandbox`.

The entry points name :class:`plugin.commands.LazyCommand` descriptions: ``emaildoctor --help`` and
``--version`` import neither the commands nor the settings model; the chosen subcommand's module is imported
only once it is known (its own ``--help`` included).

Exit status: 0 success, 1 a failure that was diagnosed, 2 bad arguments or settings (nothing
changed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from plugin import paths
from plugin.commands import LazyCommand
from plugin.validate import ca_file_problem, port_problem

if TYPE_CHECKING:
    from plugin.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# The order in which `emaildoctor --help` lists the commands: the everyday ones first.
_ORDER = (
    "test",
    "check",
    "smtp-test",
    "perms",
    "grant",
    "revoke",
    "audit",
    "bot",
    "sandbox",
    "demo",
    "completion",
)


class Command(Protocol):
    name: str
    help: str
    description: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    async def run(self, args: argparse.Namespace, context: CliContext) -> int: ...


Entry = Command | LazyCommand


@dataclass
class CliContext:
    """What a command gets from the edge: where settings come from, the environment, the terminal."""

    env_file: Path | None
    environ: Mapping[str, str]
    out: TextIO
    err: TextIO
    _settings: Settings | None = field(default=None, init=False)

    def settings(self) -> Settings:
        from plugin.settings import load_settings

        if self._settings is None:
            self._settings = load_settings(self.env_file)
        return self._settings

    def secrets(self) -> list[str]:
        """Secret values known at the edge, for :func:`plugin.redact.redact`."""
        from plugin.errors import ConfigError

        try:
            return list(self.settings().secret_values())
        except ConfigError:
            return []


def where_things_live() -> str:
    """The epilog's last section: where settings, the directory file and the store are when not set."""
    return (
        "where things live (defaults; each is a setting):\n"
        "  settings   EMAILDOCTOR_* environment variables, ./.env, or --env-file FILE\n"
        f"  directory  {paths.default_directory_path()}  (EMAILDOCTOR_DIRECTORY__PATH)\n"
        f"  store      {paths.default_store_url()}  (EMAILDOCTOR_STORE__URL)\n"
        "  The CLI and the bot must share the store: a `grant --for` is revoked by the bot's scheduler."
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("emaildoctor")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout that is not installed
        return "unknown"


class _Version(argparse.Action):
    """``--version``: reads the installed metadata only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"emaildoctor {_version()}")
        parser.exit()


def build_parser(commands: Sequence[Entry], chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; a :class:`LazyCommand` is loaded and configured only when it is ``chosen`` (commands that are
    not lazy are configured always)."""
    parser = argparse.ArgumentParser(
        prog="emaildoctor",
        allow_abbrev=False,  # the command is found before parsing (lazy commands): options are spelled in full
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
            "  emaildoctor sandbox --env-file .env         a local Microsoft 365 + Slack to try it all\n"
            "  emaildoctor completion bash > ~/.local/share/bash-completion/completions/emaildoctor\n\n"
            + where_things_live()
            + "\n\nSettings are described in README.md (Settings). Exit status: 0 success, 1 a diagnosed failure, "
            "2 bad arguments or settings."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="read settings (EMAILDOCTOR_…) and secrets named by the directory from FILE (default: .env)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        metavar="FORMAT",
        help="log lines on stderr as key=value text (text, the default) or one JSON object per line (json)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=None,
        metavar="LEVEL",
        help="the least severe log lines written: debug, info, warning or error (default: info for `bot`, "
        "warning for the other commands)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for entry in commands:
        if isinstance(entry, LazyCommand) and entry.name != chosen:
            sub = subparsers.add_parser(entry.name, help=entry.summary)
            sub.set_defaults(_command=entry)
            continue
        command: Command = entry.load() if isinstance(entry, LazyCommand) else entry
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(sub)
        sub.set_defaults(_command=command)
    return parser


def discover_commands() -> list[Entry]:
    """The installed commands, as their entry points name them (lazy descriptions: nothing heavy is imported)."""
    from importlib.metadata import entry_points

    found: dict[str, Entry] = {}
    for entry in entry_points(group="emaildoctor.commands"):
        command: Entry = entry.load()
        found[command.name] = command
    rank = {name: index for index, name in enumerate(_ORDER)}
    return sorted(found.values(), key=lambda c: (rank.get(c.name, len(rank)), c.name))


def chosen_command(argv: Sequence[str], names: set[str]) -> str | None:
    """The subcommand ``argv`` names: the first word that is not an option of ``emaildoctor`` itself."""
    at = _command_position(argv)
    return argv[at] if at is not None and argv[at] in names else None


_VALUED_OPTIONS = frozenset({"--env-file", "--log-format", "--log-level"})
"""Options of ``emaildoctor`` itself that take a value (the next word is not the command)."""


def _command_position(argv: Sequence[str]) -> int | None:
    skip = False
    for at, word in enumerate(argv):
        if skip:
            skip = False
        elif word in _VALUED_OPTIONS:
            skip = True
        elif word != "--" and not word.startswith("-"):
            return at
    return None


def _environ(env_file: Path | None) -> dict[str, str]:
    """The process environment over the .env file: secrets the directory names may live in either."""
    from dotenv import dotenv_values

    path = env_file or Path(".env")
    values = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}
    values.update(os.environ)
    return values


def _env_file_problem(path: Path) -> str | None:
    """None when ``path`` is a readable UTF-8 text file."""
    try:
        path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "is a folder, not a file"
    except UnicodeDecodeError:
        return "is not a UTF-8 text file"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    return None


def common_argument_problem(args: argparse.Namespace) -> str | None:
    """Options several commands share, checked the same way everywhere: ``--port`` and ``--ca-file``."""
    port = getattr(args, "port", None)
    any_port = getattr(getattr(args, "_command", None), "port_zero_means_any", False)  # a server: 0 picks one
    if isinstance(port, int) and (problem := port_problem(port, allow_zero=any_port)):
        return f"--port {problem}"
    ca_file = getattr(args, "ca_file", None)
    if isinstance(ca_file, Path) and (problem := ca_file_problem(ca_file)):
        return f"--ca-file: {problem}"
    return None


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    words = list(sys.argv[1:] if argv is None else argv)
    commands = discover_commands()
    chosen = chosen_command(words, {c.name for c in commands})
    early = _early_settings(words, next((c for c in commands if c.name == chosen), None), err)
    if isinstance(early, int):
        return early
    parser = build_parser(commands, chosen)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # argparse has printed the usage message already
        return int(exc.code or 0)
    name = args.command
    if args.env_file is not None and (problem := _env_file_problem(args.env_file)):
        print(f"emaildoctor: error: --env-file {args.env_file}: {problem}", file=err)
        return EXIT_USAGE
    if problem := common_argument_problem(args):
        print(f"emaildoctor {name}: error: {problem}", file=err)
        return EXIT_USAGE
    context = CliContext(env_file=args.env_file, environ=_environ(args.env_file), out=out, err=err)
    context._settings = early
    return _run(args, context)


def _early_settings(words: list[str], entry: Entry | None, err: TextIO) -> Settings | int | None:
    """Settings loaded before a lazy command's module is imported (see :attr:`LazyCommand.reads_settings`); an exit
    status when they (or the ``--env-file`` holding them) are unusable; None when not wanted (help, or a command
    that reads none)."""
    if not isinstance(entry, LazyCommand) or not entry.reads_settings or {"-h", "--help"} & set(words):
        return None
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--env-file", type=Path)
    known, _ = early.parse_known_args(words[: _command_position(words)])
    if known.env_file is not None and (problem := _env_file_problem(known.env_file)):
        print(f"emaildoctor: error: --env-file {known.env_file}: {problem}", file=err)
        return EXIT_USAGE
    from plugin.errors import ConfigError
    from plugin.settings import load_settings

    try:
        return load_settings(known.env_file)
    except ConfigError as exc:  # its messages name settings, never their values
        print(f"emaildoctor {entry.name}: error: {exc}", file=err)
        return EXIT_USAGE


def _run(args: argparse.Namespace, context: CliContext) -> int:
    import asyncio

    from plugin.errors import ConfigError, EmailDoctorError
    from plugin.redact import redact

    entry: Entry = args._command
    command: Command = entry.load() if isinstance(entry, LazyCommand) else entry
    err = context.err
    try:
        _configure_logging(args, command.name, context)
        return asyncio.run(command.run(args, context))
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `emaildoctor … | head`: the reader left; say nothing more
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except ConfigError as exc:
        print(f"emaildoctor {command.name}: error: {redact(str(exc), context.secrets())}", file=err)
        return EXIT_USAGE
    except EmailDoctorError as exc:
        code = f" [{exc.code}]" if exc.code else ""
        print(f"emaildoctor {command.name}: failed{code}: {redact(str(exc), context.secrets())}", file=err)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "no message", context.secrets())
        print(
            f"emaildoctor {command.name}: failed: unexpected {type(exc).__name__}: {detail} "
            "(please report this as a bug)",
            file=err,
        )
        return EXIT_FAILED


def _configure_logging(args: argparse.Namespace, name: str, context: CliContext) -> None:
    """Structured log lines on stderr (:mod:`plugin.logs`), redacted with the settings' secrets."""
    from plugin.logs import configure_logging

    configure_logging(args.log_format, log_level(args, name), context.secrets(), stream=context.err)


def log_level(args: argparse.Namespace, name: str) -> str:
    """``--log-level``, or its default: info for the bot, warning for the commands a person runs."""
    return str(args.log_level or ("info" if name == "bot" else "warning"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

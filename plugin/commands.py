"""What ``emaildoctor --help`` needs to know about a subcommand, without importing it.

The ``emaildoctor.commands`` entry points (``pyproject.toml``) name a :class:`LazyCommand` in a small module of each
package (``plugin.commands``, ``graph.commands``, ``bot.commands``, ``sandbox.commands``): its name and one-line
summary for the top-level help, and where the real command lives. The real command's module (and with it
Microsoft's SDKs, SQLAlchemy, aiohttp or the sandbox) is imported only when that subcommand is chosen.
This module imports nothing beyond the standard library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LazyCommand:
    name: str
    summary: str
    target: str
    """``module:attribute`` of the real command (see :class:`plugin.cli.Command`)."""
    reads_settings: bool = True
    """Settings are loaded (and a bad one reported) before the command's module is imported: a mistake in them is
    named at once, without waiting for Microsoft's SDKs or SQLAlchemy to load."""

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


SMTP_TEST = LazyCommand(
    "smtp-test", "test-send through any SMTP server and diagnose the failure", "plugin.cli_smtp:COMMAND"
)
CHECK = LazyCommand(
    "check", "verify the setup: Entra app, Exchange roles, SMTP, directory, Slack, store", "plugin.cli_check:COMMAND"
)
COMPLETION = LazyCommand(
    "completion",
    "print a shell completion script (bash, zsh or fish)",
    "plugin.cli_completion:COMMAND",
    reads_settings=False,
)

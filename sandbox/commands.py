"""The subcommands of :mod:`sandbox`, as ``emaildoctor --help`` lists them (see :mod:`plugin.commands`)."""

from __future__ import annotations

from plugin.commands import LazyCommand

SANDBOX = LazyCommand(
    "sandbox", "run the local Microsoft 365 + SMTP + Slack sandbox", "sandbox.cli:COMMAND", reads_settings=False
)
DEMO = LazyCommand(
    "demo",
    "play the Send As denied story end to end against the local sandbox (under a minute)",
    "sandbox.demo:COMMAND",
)

"""The subcommands of :mod:`bot`, as ``emaildoctor --help`` lists them (see :mod:`plugin.commands`)."""

from __future__ import annotations

from plugin.commands import LazyCommand

GRANT = LazyCommand(
    "grant", "grant SendAs / SendOnBehalf / FullAccess on a mailbox (audited, read back)", "bot.cli_admin:GRANT"
)
REVOKE = LazyCommand(
    "revoke", "revoke SendAs / SendOnBehalf / FullAccess on a mailbox (audited, read back)", "bot.cli_admin:REVOKE"
)
AUDIT = LazyCommand(
    "audit",
    "inventory every SendAs / SendOnBehalf / FullAccess grant, with findings and changes",
    "bot.cli_admin:AUDIT",
)
BOT = LazyCommand("bot", "run the Slack bot (HTTP or Socket Mode)", "bot.cli:COMMAND")
LOG = LazyCommand(
    "log",
    "the audit log: print its chain head, or verify the chain against heads posted in Slack",
    "bot.cli_log:COMMAND",
)

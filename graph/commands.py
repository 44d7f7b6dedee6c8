"""The subcommands of :mod:`graph`, as ``emaildoctor --help`` lists them (see :mod:`plugin.commands`)."""

from __future__ import annotations

from plugin.commands import LazyCommand

TEST = LazyCommand(
    "test", "full diagnosis of a directory user's outgoing email (the /emailtest of the terminal)", "graph.cli:TEST"
)
PERMS = LazyCommand(
    "perms",
    "who holds SendAs / SendOnBehalf / FullAccess on a mailbox (or --trustee: what a user holds)",
    "graph.cli:PERMS",
)

"""Placeholder for commands whose package is still being built. Removed before the first release."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugin.cli import CliContext


@dataclass(frozen=True)
class PendingCommand:
    name: str
    help: str = "(not available yet)"
    description: str = "This command is not available yet."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("rest", nargs=argparse.REMAINDER)

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        print(f"emaildoctor {self.name}: not available yet", file=context.err)
        return 2

"""What the bot's listeners work with, built once by :func:`bot.services.build_bot_services` (or by tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from bot.delivery import AckFirst, DeliveryClaims
from bot.limits import Limits
from bot.observe import Diagnoser
from bot.people import Approvers
from bot.pipeline import Pipeline
from bot.slack_io import Poster
from bot.store import Store
from bot.tasks import TaskRegistry
from plugin.clock import Clock
from plugin.directory import DirectorySource
from plugin.settings import Settings

if TYPE_CHECKING:
    from graph.audit import TenantAudit
    from graph.permissions import PermissionService


@dataclass
class BotContext:
    settings: Settings
    doctor: Diagnoser
    directory: DirectorySource
    store: Store
    poster: Poster
    approvers: Approvers
    clock: Clock
    permissions: PermissionService | None
    """None when Microsoft 365 is not configured: /sendas and grants say so."""
    auditor: TenantAudit | None
    replica: str
    """This process's name in scheduled-run and revocation claims."""
    secrets: list[str] = field(default_factory=list)
    environ: Mapping[str, str] = field(default_factory=dict)
    """The environment the settings came from: the directory's SMTP password variables live there."""
    tasks: TaskRegistry = field(default_factory=TaskRegistry)
    limits: Limits = field(default_factory=Limits)
    deliveries: DeliveryClaims = field(default_factory=DeliveryClaims)
    acks: AckFirst = field(default_factory=AckFirst)
    """Counts the Slack requests being answered over HTTP: background work starts once they are (bot.server)."""
    """Claims Slack deliveries in the store after the ack, so a retry to another replica is handled once."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def now(self) -> datetime:
        return self.clock.now()

    @cached_property
    def pipeline(self) -> Pipeline:
        """Drives changes to Exchange (bot.pipeline), shown in Slack by bot.change_views."""
        from bot.change_views import SlackChangeView

        return Pipeline(
            self.store,
            self.permissions,
            self.settings.changes,
            clock=self.clock,
            replica=self.replica,
            view=SlackChangeView(self),
        )

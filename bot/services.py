"""Build the bot's collaborators from settings (the composition root for `emaildoctor bot` and the demo)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from bot.context import BotContext
from bot.observe import ObservedDoctor
from bot.people import Approvers
from bot.slack_io import Poster, build_web_client, open_slack_session
from bot.store import Store
from plugin.clock import Clock, SystemClock
from plugin.directory_cache import CachedDirectorySource
from plugin.doctor import Doctor
from plugin.settings import Settings


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@asynccontextmanager
async def bot_context(
    settings: Settings, environ: Mapping[str, str], *, clock: Clock | None = None, replica: str | None = None
) -> AsyncIterator[BotContext]:
    """Everything the listeners need; closed (tasks cancelled, store and connections closed) on exit."""
    from graph.services import M365Services

    clock = clock or SystemClock()
    m365 = M365Services(settings.m365, clock=clock) if settings.m365.configured else None
    secrets = [*settings.secret_values(), *(m365.secrets if m365 else [])]
    session = open_slack_session(settings.slack)  # one kept-alive connection pool for every Slack call
    directory = CachedDirectorySource(settings.directory.path)  # parsed again only when the file changes
    try:
        client = build_web_client(settings.slack, session=session)
        store = await Store.open(settings.store.url, clock=clock, secrets=secrets)
    except BaseException:
        await session.close()
        raise
    ctx = BotContext(
        settings=settings,
        doctor=ObservedDoctor(
            Doctor(directory=directory, settings=settings, environ=environ, m365=m365, secrets=secrets)
        ),
        directory=directory,
        store=store,
        poster=Poster(client, secrets),
        approvers=Approvers(client, settings.slack),
        clock=clock,
        permissions=m365.permissions if m365 else None,
        auditor=m365.audit if m365 else None,
        replica=replica or replica_name(),
        secrets=secrets,
        environ=environ,
    )
    try:
        yield ctx
    finally:
        await ctx.tasks.cancel_all()
        await store.close()
        await session.close()
        if m365 is not None:
            await m365.aclose()

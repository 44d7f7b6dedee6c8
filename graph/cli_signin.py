"""`--device-login` for the commands that read or change rights: act in Exchange as yourself.

Some organisations would rather not give the app an Exchange role; an admin then signs in with a device
code (delegated ``Exchange.Manage``) and Exchange applies that admin's own roles. The audit log records
the admin's name as the actor.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TextIO

from graph.auth import delegated_scope
from graph.device_login import DeviceCodeLogin, DeviceCodePrompt
from graph.services import M365Services
from plugin.clock import Clock
from plugin.probe_request import TokenSource
from plugin.settings import M365Settings

HELP = "sign in as yourself with a device code (delegated Exchange.Manage) instead of using the app's Exchange role"


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device-login", action="store_true", help=HELP)


@dataclass(frozen=True)
class SignedIn:
    upn: str
    token_source: TokenSource


@asynccontextmanager
async def device_login(settings: M365Settings, prompt_to: TextIO) -> AsyncIterator[SignedIn]:
    """Show the code on ``prompt_to`` (stderr), wait for the sign-in, and give the admin's Exchange token source."""
    login = DeviceCodeLogin(settings)
    scopes = [delegated_scope(settings.exchange_url, "Exchange.Manage")]

    def show(prompt: DeviceCodePrompt) -> None:
        print(f"To sign in, open {prompt.verification_uri} and enter the code {prompt.user_code}", file=prompt_to)
        print(f"(waiting up to {prompt.expires_in // 60} minutes; Ctrl-C cancels)", file=prompt_to, flush=True)

    try:
        user = await login.sign_in(scopes, show)
        print(f"signed in as {user.upn}", file=prompt_to, flush=True)
        yield SignedIn(upn=user.upn, token_source=login.token_source(scopes))
    finally:
        await login.aclose()


@asynccontextmanager
async def microsoft365(
    settings: M365Settings, *, device: bool, prompt_to: TextIO, clock: Clock | None = None
) -> AsyncIterator[tuple[M365Services, str | None]]:
    """The Microsoft 365 services, acting in Exchange as the app or (``device``) as the admin who signs in;
    also the admin's UPN, for the audit log."""
    if not device:
        async with M365Services(settings, clock=clock) as services:
            yield services, None
        return
    async with (
        device_login(settings, prompt_to) as signed,
        M365Services(settings, clock=clock, exchange_token_source=signed.token_source) as services,
    ):
        yield services, signed.upn

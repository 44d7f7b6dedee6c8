"""Counting every HTTP request to Microsoft 365 (:mod:`plugin.metrics`), through httpx's event hooks on the
one client Graph and the Exchange admin API share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from plugin.metrics import M365_REQUESTS, M365_THROTTLED, status_class
from plugin.settings import M365Settings

Hook = Callable[[httpx.Response], Awaitable[None]]


def service_of(url: str, settings: M365Settings) -> str:
    """``graph``, ``exchange`` or ``login`` (the sign-in host), from the settings' base URLs; ``other`` else."""
    host = urlsplit(url).netloc.lower()
    for name, base in (
        ("graph", settings.graph_url),
        ("exchange", settings.exchange_url),
        ("login", settings.authority_host),
    ):
        if host == urlsplit(base).netloc.lower():
            return name
    return "other"


def response_hook(settings: M365Settings) -> Hook:
    async def count(response: httpx.Response) -> None:
        service = service_of(str(response.request.url), settings)
        M365_REQUESTS.labels(service=service, status=status_class(response.status_code)).inc()
        if response.status_code == 429:
            M365_THROTTLED.labels(service=service).inc()

    return count

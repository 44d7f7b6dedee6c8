"""The HTTP client every Microsoft 365 call shares: TLS trust, timeouts, and Retry-After handling."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from graph.http_metrics import response_hook
from plugin.settings import M365Settings

MAX_RETRY_AFTER_S = 120.0


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system trust store plus ``ca_file`` (the sandbox CA, or a corporate TLS-inspection CA)."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def build_http_client(settings: M365Settings) -> httpx.AsyncClient:
    """One client for Graph and the Exchange admin API. Every call has a timeout; the environment's proxy and
    CA variables are not consulted (settings decide), so what runs is what the settings say."""
    return httpx.AsyncClient(
        verify=ssl_context(settings.ca_file),
        timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
        trust_env=False,
        headers={"User-Agent": "emaildoctor"},
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        event_hooks={"response": [response_hook(settings)]},
    )


def retry_after_seconds(response: httpx.Response, default: float = 1.0) -> float:
    """Seconds to wait before retrying, from ``Retry-After`` (seconds or an HTTP date), capped. Graph may send a
    list such as ``30,120`` (live, msgraph-sdk-python #1159): the first value counts."""
    value = response.headers.get("Retry-After")
    if value is None:
        return default
    if "," in value and not value.strip()[:1].isalpha():
        value = value.split(",", 1)[0]
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)

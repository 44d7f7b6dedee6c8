"""``apps.connections.open``: a one-time Socket Mode WebSocket URL for the app (see ``socket_mode``)."""

from __future__ import annotations

from sandbox.slack.model import JsonObject
from sandbox.slack.web_api import ApiRequest, Method


async def apps_connections_open(request: ApiRequest) -> JsonObject:
    return {"ok": True, "url": request.workspace.socket_mode.link_url(request.origin)}


METHODS = {
    "apps.connections.open": Method(apps_connections_open, scope="connections:write", token="app"),
}

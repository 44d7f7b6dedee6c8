"""The sandbox Slack service as one aiohttp application: Web API, response_urls, file uploads, Socket Mode."""

from __future__ import annotations

from aiohttp import web

from sandbox.clock import Clock
from sandbox.faults import FaultBook
from sandbox.http import fault_middleware
from sandbox.slack import api_apps, api_chat, api_directory, api_views, files
from sandbox.slack.render import message_json
from sandbox.slack.responses import response_url_handler
from sandbox.slack.socket_mode import LINK_PATH
from sandbox.slack.web_api import Method, RouteHandler, api_handler, recording_middleware, slack_error_response
from sandbox.slack.workspace import SlackWorkspace

METHODS: dict[str, Method] = {
    **api_directory.METHODS,
    **api_chat.METHODS,
    **api_views.METHODS,
    **files.METHODS,
    **api_apps.METHODS,
}
"""Every Web API method the sandbox answers; any other is ``unknown_method``."""


def build_slack_app(workspace: SlackWorkspace, faults: FaultBook, clock: Clock) -> web.Application:
    """Routes: ``/api/{method}``, ``POST /response/{id}``, ``POST /upload/v1/{token}``,
    ``GET /files-pri/{team}-{file}/{name}``, ``GET /link/?ticket=…`` (the Socket Mode WebSocket that
    ``apps.connections.open`` hands out) and ``GET /_sandbox/slack/state`` (a JSON snapshot).

    The faults of service ``"slack"`` apply to every route but ``/_sandbox/``; every ``/api/`` call
    is recorded in the workspace, including those the faults answered. ``clock`` becomes the
    workspace's clock (message timestamps, trigger and response_url expiry, rate-limit windows).
    """
    workspace.clock = clock
    workspace.socket_mode.faults = faults
    app = web.Application(
        middlewares=[recording_middleware(workspace), fault_middleware("slack", faults, slack_error_response)],
        client_max_size=files.MAX_FILE_BYTES + 1024 * 1024,
    )
    api = api_handler(workspace, METHODS)
    app.router.add_route("GET", "/api/{method}", api)
    app.router.add_route("POST", "/api/{method}", api)
    app.router.add_post("/response/{id}", response_url_handler(workspace))
    app.router.add_post("/upload/v1/{token}", files.upload_handler(workspace))
    app.router.add_get("/files-pri/{team_file}/{name:.*}", files.download_handler(workspace))
    app.router.add_get(LINK_PATH, workspace.socket_mode.link_handler)
    app.router.add_get("/_sandbox/slack/state", _state_handler(workspace))

    async def close_sockets(_: web.Application) -> None:
        await workspace.socket_mode.close_all()

    app.on_shutdown.append(close_sockets)
    return app


def _state_handler(workspace: SlackWorkspace) -> RouteHandler:
    async def handle(request: web.Request) -> web.Response:
        origin = f"{request.scheme}://{request.host}"
        return web.json_response(
            {
                "team": workspace.team.id,
                "messages": [
                    {
                        **message_json(workspace, m, origin),
                        "channel": m.channel,
                        "ephemeral": m.ephemeral,
                        "visible_to": m.visible_to,
                        "via": m.via,
                        "version": m.version,
                    }
                    for m in workspace.all_messages()
                ],
                "calls": [
                    {"method": c.method, "status": c.status, "ok": c.ok, "error": c.error} for c in workspace.calls()
                ],
                "views": [
                    {"id": v.id, "user": v.user, "callback_id": v.callback_id, "closed": v.closed}
                    for v in workspace.views()
                ],
                "files": [
                    {"id": f.id, "name": f.name, "title": f.title, "channels": f.channels} for f in workspace.files()
                ],
                "socket_mode": {
                    "connections": [
                        {"number": c.number, "open": c.open, "dropped": c.dropped}
                        for c in workspace.socket_mode.connections(include_closed=True)
                    ],
                    "envelopes": len(workspace.socket_mode.envelopes()),
                    "acks": len(workspace.socket_mode.acks()),
                },
            }
        )

    return handle

"""Serving the bot: HTTP mode (aiohttp, with /healthz for liveness, /readyz for readiness and /metrics for
Prometheus) or Socket Mode (the same three on a small HTTP server of their own), chosen by settings."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError

from bot.app import SlackApp
from bot.guard import RefusedError
from bot.observe import metrics_endpoint
from plugin.errors import ConfigError
from plugin.metrics import SLACK_REQUESTS

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"


def build_web_app(app: SlackApp, *, events_route: bool = True) -> web.Application:
    """The bot's HTTP server: Slack's events (HTTP mode), and /healthz, /readyz and /metrics (both modes: in
    Socket Mode the server carries only these)."""

    async def events(request: web.Request) -> web.StreamResponse:
        with app.acks.answering():  # background work waits until this answer is sent
            response = await answer(request)
            await response.prepare(request)
            await response.write_eof()
            return response

    async def answer(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            app.guard.admit(request.headers, body, time.time())
        except RefusedError as refusal:
            SLACK_REQUESTS.labels(kind="unverified", outcome="refused").inc()
            return web.json_response({"ok": False, "error": refusal.kind}, status=refusal.status)
        # Admitted: the signature covers these bytes and they decode (checked by the guard).
        bolt_request = AsyncBoltRequest(
            body=body.decode(),
            query=request.query_string,
            headers=request.headers,  # type: ignore[arg-type]  # a multi-dict, as bolt's own aiohttp adapter passes
        )
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    async def health(_: web.Request) -> web.Response:
        # The refusals since start, by kind: forged or malformed requests show up here, not in the logs' bodies.
        refused = dict(app.guard.refused)
        return web.json_response({"ok": True, "service": "emaildoctor-bot", "refused_requests": refused})

    async def ready(_: web.Request) -> web.Response:
        # The deep checks (store, Slack, a Microsoft 365 token), cached briefly: 503 names what is failing.
        ok, checks = await app.readiness.answer()
        return web.json_response({"ok": ok, "checks": checks}, status=200 if ok else 503)

    web_app = web.Application()
    routes = [web.get(HEALTH_PATH, health), web.get(READY_PATH, ready), web.get(METRICS_PATH, metrics_endpoint)]
    web_app.add_routes([web.post(EVENTS_PATH, events), *routes] if events_route else routes)
    return web_app


@dataclass
class RunningServer:
    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{EVENTS_PATH}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def serve_http(app: SlackApp, host: str, port: int, *, events_route: bool = True) -> RunningServer:
    """Serve on host:port (port 0 picks a free one); returns once listening (and authorised with Slack, so the
    first requests do not wait for auth.test). Without ``events_route`` (Socket Mode) only health and metrics."""
    if events_route:
        await app.authorization.warm_up()
    runner = web.AppRunner(build_web_app(app, events_route=events_route), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return RunningServer(runner=runner, host=host, port=int(runner.addresses[0][1]))


async def run_socket_mode(app: SlackApp, app_token: str, stop: asyncio.Event) -> None:
    """Connect to Slack over Socket Mode (no public URL needed) until ``stop`` is set.

    The app-level token is checked first: slack_sdk would otherwise retry a refused token forever.
    """
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    try:
        await app.client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown_error")
        raise ConfigError(
            f"Slack refused the app-level token (EMAILDOCTOR_SLACK__APP_TOKEN): {error}. Create one under Basic "
            "Information → App-Level Tokens with the connections:write scope, and turn Socket Mode on."
        ) from exc
    await app.authorization.warm_up()
    handler = AsyncSocketModeHandler(app, app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]  # untyped in slack_bolt
    try:
        await stop.wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]

"""What every HTTPS service of the sandbox shares: fault injection and serving on an ephemeral port."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from sandbox.faults import FaultBook, Hold, Served

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorResponder = Callable[[int, int], web.Response]
"""Builds the service's own error response for (status, retry_after_seconds)."""


def fault_middleware(
    service: str, faults: FaultBook, error: ErrorResponder, *, burst_exempt: Callable[[web.Request], bool] | None = None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Apply ``faults[service]`` to every request except the sandbox's own admin routes.

    Order: latency, dropped connection, 429 burst, random error, then the real handler. Requests for which
    ``burst_exempt`` is true (e.g. a ``$batch`` whose items take the burst one by one) skip the 429 burst.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        if faults.journal is None:
            return await faulted(request, handler)
        started = time.monotonic()
        try:
            return await faulted(request, handler)
        finally:
            what = request.headers.get("X-CmdletName") or request.path
            faults.journal.append(Served(service, what, started, time.monotonic()))

    async def faulted(request: web.Request, handler: Handler) -> web.StreamResponse:
        settings = faults.get(service)
        delay = faults.latency_s(service)
        if delay:
            await asyncio.sleep(delay)
        if faults.roll(settings.drop_rate):
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("sandbox fault: connection dropped")
        if not (burst_exempt is not None and burst_exempt(request)) and faults.take_throttle(service):
            return error(429, settings.retry_after_s)
        if faults.roll(settings.error_rate):
            return error(settings.error_status, settings.retry_after_s)
        if not faults.holds:
            return await handler(request)
        return await _through_holds(request, handler, faults.holds_for(service, await _described(request)))

    return middleware


async def _described(request: web.Request) -> str:
    """What holds match against: the path and the body (read once; aiohttp keeps it for the handler)."""
    return f"{request.path}\n{(await request.read()).decode('utf-8', 'replace')}"


async def _through_holds(request: web.Request, handler: Handler, holds: list[Hold]) -> web.StreamResponse:
    stopping = [hold for hold in holds if hold.stops()]
    for hold in stopping:
        if hold.stage == "request":
            await hold.wait()
    if _client_gone(request):
        return _drop(stopping)
    response = await handler(request)
    for hold in holds:
        hold.handled += 1
    for hold in stopping:
        if hold.stage == "response":
            await hold.wait()
    if _client_gone(request):
        return _drop(stopping)
    return response


def _client_gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


def _drop(holds: list[Hold]) -> web.Response:
    """Nobody is listening any more: the answer (status 499, nginx's "client closed request") goes nowhere."""
    for hold in holds:
        hold.dropped += 1
    return web.Response(status=499)


@dataclass
class RunningSite:
    runner: web.AppRunner
    host: str
    port: int
    scheme: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop at once: close idle keep-alive connections too, without waiting for TLS close_notify
        from clients that will never send it (otherwise their sockets outlive the event loop)."""
        server = self.runner.server
        for handler in list(server.connections) if server is not None else []:
            transport = handler.transport
            if transport is not None:
                transport.abort()
        await self.runner.cleanup()


async def serve(
    app: web.Application, ssl_context: ssl.SSLContext | None, host: str = "127.0.0.1", port: int = 0
) -> RunningSite:
    """Serve ``app`` on ``host`` and an ephemeral port (or ``port``), over TLS when a context is given."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound_port = int(runner.addresses[0][1])
    return RunningSite(runner=runner, host=host, port=bound_port, scheme="https" if ssl_context else "http")

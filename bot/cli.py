"""`emaildoctor bot`: run the Slack bot (HTTP or Socket Mode, from settings) with its scheduler."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import socket
from typing import TYPE_CHECKING

from plugin.errors import ConfigError, EmailDoctorError
from plugin.redact import redact
from plugin.settings import SlackMode, SlackSettings
from plugin.validate import host_problem, port_problem

if TYPE_CHECKING:
    from bot.context import BotContext
    from plugin.cli import CliContext

DESCRIPTION = """\
Run the Slack bot: /emailtest, /sendas, /mailaudit, approvals, time-bound grants and scheduled audits. At
start-up and every --tick it also finishes changes to Exchange that a restart or an outage interrupted.

Settings (EMAILDOCTOR_SLACK__…): BOT_TOKEN and SIGNING_SECRET (HTTP mode, the default) or APP_TOKEN with
MODE=socket; APPROVALS_CHANNEL, IT_USERGROUP_ID (or IT_USER_IDS), AUDIT_CHANNEL and AUDIT_CRON. The store
(EMAILDOCTOR_STORE__URL) keeps requests, the audit log and snapshots; use PostgreSQL for several replicas.

examples:
  emaildoctor bot                               # HTTP on 127.0.0.1:3000, Slack posts to /slack/events
  emaildoctor bot --host 0.0.0.0 --port 8080    # behind a load balancer or ingress
  emaildoctor sandbox --env-file .env.sandbox & emaildoctor --env-file .env.sandbox bot
"""


class BotCommand:
    name = "bot"
    help = "run the Slack bot (HTTP or Socket Mode)"
    description = DESCRIPTION
    port_zero_means_any = True  # --port 0: any free port (the bot prints the one it got)

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", help="HTTP mode: address to listen on (default: settings, 127.0.0.1)")
        parser.add_argument("--port", type=int, help="HTTP mode: port, 0 for any free one (default: settings, 3000)")
        parser.add_argument(
            "--tick",
            type=float,
            default=30.0,
            metavar="S",
            help="seconds between scheduler runs: audits, expiries, the reconciler (default 30)",
        )

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        if args.host is not None and (problem := host_problem(args.host)):
            raise ConfigError(f"--host {problem}")
        if args.port is not None and (problem := port_problem(args.port, allow_zero=True)):
            raise ConfigError(f"--port {problem}")
        if not 0 < args.tick <= 3600:
            raise ConfigError("--tick must be more than 0 and at most 3600 seconds")
        settings = context.settings()
        slack = settings.slack
        _require_credentials(slack)
        # Slack, aiohttp and the store load only now, once the arguments and settings are known to be usable.
        from bot.app import create_app
        from bot.checks_slack import startup_problems
        from bot.scheduler import Scheduler
        from bot.server import HEALTH_PATH, METRICS_PATH, run_socket_mode, serve_http
        from bot.services import bot_context
        from plugin.cli import log_level
        from plugin.logs import configure_logging

        host = args.host or slack.host
        port = args.port if args.port is not None else slack.port
        if problem := _cannot_listen(host, port):  # Socket Mode serves health and metrics on it too
            print(f"emaildoctor bot: failed: cannot listen on {host}:{port}: {problem}", file=context.err)
            return 1
        for warning in await startup_problems(slack):  # a token that fails auth.test raises: exit 2
            print(
                f"emaildoctor bot: warning: {redact(warning, settings.secret_values())}", file=context.err, flush=True
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with bot_context(settings, context.environ) as ctx:
            # Now every secret is known (the directory's SMTP passwords, a managed identity's header): the log
            # redacts them all, and is written by a thread of its own, off the event loop that answers Slack.
            configure_logging(
                args.log_format, log_level(args, self.name), ctx.secrets, stream=context.err, background=True
            )
            app = create_app(settings, ctx)
            await _warm_up(ctx)
            scheduler = Scheduler(ctx, started_at=ctx.now())
            schedule = asyncio.create_task(scheduler.run(stop, interval=args.tick))
            try:
                if slack.mode is SlackMode.SOCKET:
                    assert slack.app_token is not None
                    try:  # Slack needs no inbound port here: this one serves /healthz, /readyz and /metrics only
                        health = await serve_http(app, host, port, events_route=False)
                    except OSError as exc:
                        print(
                            f"emaildoctor bot: failed: cannot listen on {host}:{port} for health and metrics: "
                            f"{exc.strerror or exc}",
                            file=context.err,
                        )
                        return 1
                    base = f"http://{health.host}:{health.port}"
                    print(
                        f"emaildoctor bot: connecting to Slack over Socket Mode (health: {base}{HEALTH_PATH}, "
                        f"metrics: {base}{METRICS_PATH})",
                        file=context.out,
                        flush=True,
                    )
                    try:
                        await run_socket_mode(app, slack.app_token.get_secret_value(), stop)
                    finally:
                        await health.stop()
                else:
                    try:
                        server = await serve_http(app, host, port)
                    except OSError as exc:
                        print(
                            f"emaildoctor bot: failed: cannot listen on {host}:{port}: {exc.strerror or exc}",
                            file=context.err,
                        )
                        return 1
                    base = f"http://{server.host}:{server.port}"
                    print(
                        f"emaildoctor bot: listening on {server.url} (health: {base}{HEALTH_PATH}); Ctrl-C stops",
                        file=context.out,
                        flush=True,
                    )
                    try:
                        await stop.wait()
                    finally:
                        await server.stop()
            finally:
                stop.set()
                await schedule
        print("emaildoctor bot: stopped", file=context.out)
        return 0


async def _warm_up(ctx: BotContext) -> None:
    """Load now what the first diagnosis would load: Microsoft Graph's SDK (seconds of imports that hold the
    interpreter while they run) and the directory, so that a burst of first requests is not answered late."""
    if ctx.permissions is not None:
        from graph.graph_client import load_sdk

        await asyncio.to_thread(load_sdk)
    with contextlib.suppress(EmailDoctorError):  # a broken directory is reported by the tests that need it
        await ctx.directory.load()


def _require_credentials(slack: SlackSettings) -> None:
    if slack.bot_token is None:
        raise ConfigError(
            "the bot needs the Slack app's bot token: set EMAILDOCTOR_SLACK__BOT_TOKEN (xoxb-…, OAuth & Permissions)"
        )
    if slack.mode is SlackMode.SOCKET and slack.app_token is None:
        raise ConfigError("Socket Mode needs EMAILDOCTOR_SLACK__APP_TOKEN (an xapp-… token with connections:write)")
    if slack.signing_secret is None:  # Socket Mode too: it also seals the /sendas confirmation cards
        raise ConfigError(
            "the bot needs the Slack app's signing secret: set EMAILDOCTOR_SLACK__SIGNING_SECRET (Basic "
            "Information → App Credentials)"
        )


def _cannot_listen(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, not an address of this machine), before Slack is asked
    anything; None when it can (the server binds it for real later)."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"the host name does not resolve ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as exc:
            return "the port is in use by another program" if exc.errno == errno.EADDRINUSE else str(exc.strerror)
    return None


COMMAND = BotCommand()

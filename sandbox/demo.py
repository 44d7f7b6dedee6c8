"""`emaildoctor demo`: the story the product exists for, played through the real bot over HTTP against the sandbox.

Hannah (helpdesk) runs /emailtest alice; Alice's test fails with Send As denied because admin@, which signs
in for her, lacks the right; Hannah requests the fix; Ivan (IT) approves; the bot grants Send As, reads it
back, re-tests until Exchange applies it and the test passes; then the scheduled audit posts its summary,
including Grace, whose sending will fail before she tries. Every step is checked; a missing one ends the
demo with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from sandbox.clock import SystemClock
from sandbox.demo_render import ConversationPrinter, Style
from sandbox.runtime import Sandbox
from sandbox.slack import SlackMessage

if TYPE_CHECKING:
    from plugin.cli import CliContext

T = TypeVar("T")
HELPDESK, APPROVALS, AUDIT = "C0HELPDESK", "C0ITAPPROVE", "C0MAILAUDIT"
HANNAH, IVAN = "U0HANNAH", "U0IVAN"
DESCRIPTION = """\
Play the ticket emaildoctor exists for, end to end, through the real Slack bot over HTTP, against a local
Microsoft 365 tenant and Slack workspace (the sandbox): /emailtest alice fails with Send As denied, the
helpdesk requests the fix, IT approves, the bot grants Send As, re-tests until Exchange applies it, and a
scheduled audit predicts the next failure. Nothing leaves this machine. Takes under a minute.

exit status: 0 when every step of the story happened, 1 when one did not (it says which)."""


class StoryError(Exception):
    """A step of the story did not happen."""


class Story:
    def __init__(
        self, out: TextIO, *, propagation: float, step_timeout: float, color: bool, tenant: Path | None = None
    ) -> None:
        self.out = out
        self.tenant = tenant
        self.propagation = propagation
        self.step_timeout = step_timeout
        self.style = Style(color=color)
        self.started = time.monotonic()

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def step(self, number: int, text: str) -> None:
        self.say()
        self.say(self.style.bold(f"{'①②③④⑤⑥'[number - 1]}  {text}"))
        self.say()

    async def play(self, workdir: Path) -> None:
        from bot.app import create_app
        from bot.server import serve_http
        from bot.services import bot_context
        from plugin.settings import load_settings

        s = self.style
        self.say(s.bold("emaildoctor demo: the 'Send As denied' ticket, from /emailtest to a passing re-test"))
        async with Sandbox.running(
            self.tenant, workdir=workdir / "sandbox", clock=SystemClock(), propagation_delay_seconds=self.propagation
        ) as sandbox:
            env_file = sandbox.write_env_file(workdir / ".env")
            with env_file.open("a", encoding="utf-8") as handle:
                handle.write(
                    f"EMAILDOCTOR_STORE__URL=sqlite:///{workdir / 'emaildoctor.db'}\n"
                    "EMAILDOCTOR_SLACK__RETEST_FIRST_DELAY_SECONDS=3\n"
                    "EMAILDOCTOR_SLACK__RETEST_MAX_DELAY_SECONDS=6\n"
                    "EMAILDOCTOR_SLACK__RETEST_TIMEOUT_MINUTES=5\n"
                    "EMAILDOCTOR_SLACK__AUDIT_CRON=0 7 * * 1-5\n"
                )
            settings = load_settings(env_file)
            self.say(
                s.dim(f"  sandbox: Microsoft 365 tenant business.com and Slack workspace on 127.0.0.1 ({workdir})")
            )
            async with bot_context(settings, sandbox.settings_env(), clock=sandbox.clock, replica="demo") as ctx:
                server = await serve_http(create_app(settings, ctx), "127.0.0.1", 0)
                try:
                    self.say(s.dim(f"  bot: emaildoctor listening on {server.url}, store {settings.store.url}"))
                    await self._story(sandbox, ctx, server.url)
                finally:
                    await ctx.tasks.cancel_all()
                    await server.stop()
        self._where_next()

    async def _story(self, sandbox: Sandbox, ctx: Any, bot_url: str) -> None:
        from bot.scheduler import Scheduler

        s = self.style
        assert sandbox.slack is not None
        workspace = sandbox.slack
        slack = sandbox.slack_client(bot_url)
        chat = ConversationPrinter(workspace, self.out, s)

        self.step(1, "Hannah (helpdesk) types  /emailtest alice  in #helpdesk")
        delivery = await slack.slash_command(HANNAH, "/emailtest", "alice", HELPDESK)
        if not delivery.acked_in_time:
            raise StoryError(
                f"the bot did not acknowledge /emailtest within 3 seconds ({delivery.error or delivery.status})"
            )
        self.say(
            s.dim(
                f"  (the bot acknowledged Slack in {delivery.elapsed_s * 1000:.0f} ms; the test runs in the background)"
            )
        )
        parent = await self._wait(
            "the 'testing…' message", lambda: _first(workspace.messages(HELPDESK), "Testing"), workspace
        )
        await self._wait(
            "the verdict", lambda: "Email test for" in workspace.message(HELPDESK, parent.ts).text, workspace
        )
        if "Send As denied" not in workspace.message(HELPDESK, parent.ts).text:
            chat.flush()
            raise StoryError("Alice's test did not fail with Send As denied")
        await self._wait("the report in the thread", lambda: _reply(workspace, parent, "Request fix"), workspace)
        await self._wait("the transcript", lambda: _reply(workspace, parent, "SMTP transcript"), workspace)
        chat.flush()

        self.step(2, "Hannah presses  [ Request fix ]")
        report = _reply(workspace, parent, "Request fix")
        assert report is not None
        await slack.click(HANNAH, report, "request_fix")
        card = await self._wait(
            "the approval card in #it-approvals",
            lambda: _first(workspace.messages(APPROVALS), "asks to grant"),
            workspace,
        )
        await self._wait(
            "the note in the thread", lambda: _reply(workspace, parent, "waiting for IT approval"), workspace
        )
        chat.flush()

        self.step(3, "Ivan (IT admin, member of @it-admins) presses  [ Approve ]")
        await slack.click(IVAN, card, "approve_request")
        await self._wait(
            "the grant, read back", lambda: "read back" in workspace.message(APPROVALS, card.ts).all_text(), workspace
        )
        chat.flush()
        if sandbox.tenant.grant_record("SendAs", "alice@business.com", "admin@business.com") is None:
            raise StoryError("Exchange (the sandbox) does not show the grant")
        self.say(s.green("  ✔ Exchange now lists admin@business.com with Send As on alice@business.com."))

        self.step(
            4,
            f"Exchange takes time to apply a new right (here {self.propagation:g} s; in Microsoft 365 up to an hour); the bot re-tests",
        )
        await self._wait_for_pass(workspace, parent)
        chat.flush()

        self.step(5, "The scheduled audit runs (cron 0 7 * * 1-5; started now for the demo)")
        await Scheduler(ctx, started_at=ctx.now() - timedelta(days=7)).scheduled_audit()
        summary = await self._wait("the audit summary", lambda: _first(workspace.messages(AUDIT), "audit"), workspace)
        await self._wait("the audit CSV", lambda: workspace.files(AUDIT), workspace)
        chat.flush()
        if "grace" not in summary.all_text():
            raise StoryError("the audit did not predict Grace's failure")
        self.say(s.green("  ✔ The audit predicts that Grace's next email will fail (admin@ lacks Send As on grace@)."))
        chain = await ctx.store.verify_audit_chain()
        if not chain.ok:
            raise StoryError(f"the audit log's hash chain is broken: {chain.problem}")
        entries = await ctx.store.audit_entries(limit=1000)
        self.say(
            s.green(
                f"  ✔ Audit log: {chain.checked} entries, hash chain intact; the grant is logged with who asked and who approved:"
            )
        )
        for entry in entries:
            if entry.action == "grant":
                self.say(
                    s.dim(
                        f"      {entry.recorded_at:%H:%M:%S} grant {dict(entry.subject)} asked by {entry.actor}, approved by {entry.approved_by}: {entry.result}"
                    )
                )

    async def _wait_for_pass(self, workspace: Any, parent: SlackMessage) -> None:
        s = self.style
        started = time.monotonic()
        interactive = self.out.isatty()
        last = ""
        while True:
            passed = _reply(workspace, parent, "passes now")
            progress = _reply(workspace, parent, "Re-test") or _reply(workspace, parent, "Re-testing")
            state = progress.text if progress is not None else "waiting for the first re-test"
            line = (
                f"  ⏳ {time.monotonic() - started:4.0f} s  {ConversationPrinter(workspace, self.out, s).mrkdwn(state)}"
            )
            if interactive:
                print("\r" + line.ljust(100), end="", file=self.out, flush=True)
            elif state != last:
                self.say(line)
            last = state
            if passed is not None:
                break
            if time.monotonic() - started > self.step_timeout + self.propagation:
                raise StoryError("the re-test did not pass in time")
            await _sleep(0.25)
        if interactive:
            self.say()
        self.say(s.green(f"  ✔ The re-test passed {time.monotonic() - started:.0f} s after the grant."))
        self.say()

    async def _wait(self, what: str, predicate: Callable[[], T | None], workspace: Any) -> T:
        try:
            result: T = await workspace.wait_for(predicate, timeout=self.step_timeout)
        except TimeoutError as exc:
            raise StoryError(f"{what} did not appear within {self.step_timeout:g} s") from exc
        return result

    def _where_next(self) -> None:
        s = self.style
        took = time.monotonic() - self.started
        self.say()
        self.say(
            s.bold(f"That is the whole ticket, closed in {took:.0f} s without anyone opening Exchange PowerShell.")
        )
        self.say()
        self.say("Where to look next:")
        self.say(
            "  emaildoctor sandbox --env-file .env.sandbox        run this world yourself, then in another terminal:"
        )
        self.say("  emaildoctor --env-file .env.sandbox test grace     the diagnosis the audit predicted")
        self.say("  emaildoctor --env-file .env.sandbox perms sales@business.com")
        self.say("  emaildoctor --env-file .env.sandbox audit")
        self.say(
            "  README.md                                          how it fits together; connect a real tenant and Slack"
        )
        self.say("  docs/troubleshooting.md                            every diagnosis code, its evidence and its fix")


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def _first(messages: list[SlackMessage], needle: str) -> SlackMessage | None:
    return next((m for m in messages if needle.casefold() in m.all_text().casefold()), None)


def _reply(workspace: Any, parent: SlackMessage, needle: str) -> SlackMessage | None:
    return _first(workspace.replies(parent.channel, parent.ts), needle)


class DemoCommand:
    name = "demo"
    help = "play the Send As denied story end to end against the local sandbox (under a minute)"
    description = DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--propagation-delay",
            type=float,
            default=20.0,
            metavar="S",
            help="seconds the sandbox's Exchange takes to apply a new right (default 20)",
        )
        parser.add_argument("--step-timeout", type=float, default=30.0, metavar="S", help=argparse.SUPPRESS)
        parser.add_argument(
            "--tenant", type=Path, help="the sandbox's tenant file (default: the built-in business.com example)"
        )
        parser.add_argument("--workdir", type=Path, help="keep the sandbox's files here (default: a temporary folder)")
        parser.add_argument("--no-color", action="store_true", help="plain text, no terminal colours")

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        if not 0 <= args.propagation_delay <= 300:
            print("emaildoctor demo: --propagation-delay must be between 0 and 300 seconds", file=context.err)
            return 2
        color = not args.no_color and context.out.isatty()
        if args.tenant is not None and not args.tenant.is_file():
            print(f"emaildoctor demo: --tenant {args.tenant}: no such file", file=context.err)
            return 2
        story = Story(
            context.out,
            propagation=args.propagation_delay,
            step_timeout=args.step_timeout,
            color=color,
            tenant=args.tenant,
        )
        try:
            if args.workdir is not None:
                args.workdir.mkdir(parents=True, exist_ok=True)
                await story.play(args.workdir)
            else:
                with tempfile.TemporaryDirectory(prefix="emaildoctor-demo-") as folder:
                    await story.play(Path(folder))
        except StoryError as exc:
            print(f"\nThe demo stopped: {exc}.", file=context.err)
            return 1
        return 0


COMMAND = DemoCommand()

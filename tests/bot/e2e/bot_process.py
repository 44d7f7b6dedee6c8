"""The real `emaildoctor bot` as a subprocess against a sandbox: started, killed with SIGKILL, started again on
the same store. Its log goes to a file (a pipe nobody reads would fill up and stall it)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sandbox.runtime import Sandbox
from tests.commands import EMAILDOCTOR, clean_env, sandbox_env_file

T = TypeVar("T")

FAST = {
    "EMAILDOCTOR_SLACK__PORT": "0",
    "EMAILDOCTOR_CHANGES__LEASE_SECONDS": "2",
    "EMAILDOCTOR_CHANGES__RETRY_FIRST_DELAY_SECONDS": "0.5",
    "EMAILDOCTOR_CHANGES__RETRY_MAX_DELAY_SECONDS": "2",
    "EMAILDOCTOR_CHANGES__ESCALATE_AFTER_MINUTES": "0.05",
}
"""Short leases and back-off, so a killed bot's changes are taken up again within seconds."""
TICK = "0.5"


async def poll(probe: Callable[[], Awaitable[T | None]], within: float, what: str) -> T:
    """Ask ``probe`` until it answers (anything but None), for at most ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (value := await probe()) is None:
        if loop.time() > deadline:
            raise AssertionError(f"{what}: still not so after {within:.0f} s")
        await asyncio.sleep(0.1)
    return value


async def until(predicate: Callable[[], bool], within: float, what: str) -> None:
    async def probe() -> bool | None:
        return True if predicate() else None

    await poll(probe, within, what)


class BotProcess:
    def __init__(
        self, sandbox: Sandbox, folder: Path, store_url: str, *, global_args: tuple[str, ...] = (), **settings: str
    ) -> None:
        self.global_args = global_args
        self.env_file = sandbox_env_file(
            sandbox, folder, name="bot.env", **{**FAST, "EMAILDOCTOR_STORE__URL": store_url, **settings}
        )
        self.log = folder / "bot.log"
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.starts = 0
        self.pids: list[int] = []

    async def start(self) -> str:
        """Start and wait until it listens; returns its Slack events URL."""
        self.starts += 1
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"--- start {self.starts}\n")
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                EMAILDOCTOR,
                *self.global_args,
                *("--env-file", str(self.env_file), "bot", "--tick", TICK),
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=clean_env(),
            )
        self.pids.append(self.process.pid)
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), 60)).decode()
        assert "listening on " in line, line + self.log.read_text(encoding="utf-8")[-3000:]
        self.url = line.split("listening on ", 1)[1].split()[0]
        return self.url

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no flushing, as when a node dies."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                await self.kill()

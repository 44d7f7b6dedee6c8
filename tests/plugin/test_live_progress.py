"""`emaildoctor smtp-test` on a terminal: the real console script in a pseudo-terminal (Python's pty), against the
sandbox's SMTP server with a slow stage. What was done shows while the slow stage is still pending, and the
password prompt is hidden. Ordering and outcomes only, no timings."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.runtime import Sandbox
from tests.commands import EMAILDOCTOR, clean_env, sandbox_env_file

BOB, BOB_PASSWORD = "bob@business.com", "sandbox-bob-Pa55"


@dataclass
class Terminal:
    """A child process on a pty; ``text`` is everything it has written so far (stdout and stderr, raw)."""

    process: asyncio.subprocess.Process
    master: int
    text: str = ""
    _raw: bytearray = field(default_factory=bytearray)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # OSError (EIO): the child closed the terminal
            while chunk := os.read(self.master, 65536):
                self._raw += chunk
        self.text = self._raw.decode("utf-8", "replace")

    async def wait_for(self, *words: str, within: float = 60) -> None:
        """Read until every word has appeared (or fail, showing what was seen)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not all(word in self.text for word in words):
            assert loop.time() < deadline, f"never saw {words!r} in:\n{self.text}"
            await asyncio.sleep(0.05)
            self._read()

    def write(self, text: str) -> None:
        os.write(self.master, text.encode())

    async def finish(self, within: float = 60) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.process.returncode is None:
            assert loop.time() < deadline, f"did not finish:\n{self.text}"
            await asyncio.sleep(0.05)
            self._read()
        self._read()
        return self.process.returncode


@contextlib.asynccontextmanager
async def terminal(*args: str, env: dict[str, str], cwd: Path | None = None) -> AsyncIterator[Terminal]:
    master, slave = os.openpty()
    fcntl.fcntl(master, fcntl.F_SETFL, fcntl.fcntl(master, fcntl.F_GETFL) | os.O_NONBLOCK)
    process = await asyncio.create_subprocess_exec(
        EMAILDOCTOR, *args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True
    )
    os.close(slave)
    try:
        yield Terminal(process, master)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(master)


def _args(sandbox: Sandbox, *extra: str) -> list[str]:
    server = f"{sandbox.urls.smtp_host}:{sandbox.urls.smtp_starttls_port}"
    return ["smtp-test", "--server", server, "--ca-file", str(sandbox.ca_path), "--user", BOB, "--from", BOB, *extra]


def _env(**extra: str) -> dict[str, str]:
    return clean_env(TERM="xterm-256color", COLUMNS="120", LINES="40", **extra)


async def test_earlier_stages_show_while_a_slow_stage_is_pending(sandbox: Sandbox) -> None:
    sandbox.faults.set("smtp", slow_stage="rcpt", slow_stage_ms=10_000)
    args = _args(sandbox, "--password-env", "BOB_SMTP", "-v", "--timeout", "60")
    async with terminal(*args, env=_env(BOB_SMTP=BOB_PASSWORD)) as tty:
        # The server holds its reply to RCPT TO for 10 s: everything before it is on the screen already.
        await tty.wait_for("waiting for the server's reply to RCPT TO")
        assert tty.process.returncode is None, tty.text  # still waiting: nothing was held back to the end
        for earlier in ("=== Trying ", "<-  220 ", " -> EHLO ", " -> STARTTLS", " -> MAIL FROM:<bob@business.com>"):
            assert earlier in tty.text, (earlier, tty.text)
        assert " -> RCPT TO:<bob@business.com>" in tty.text and "<-  250 2.1.5" not in tty.text
        assert "PASSED" not in tty.text
        assert await tty.finish() == 0, tty.text
    assert tty.text.index(" -> EHLO ") < tty.text.index("<-  250 2.1.5") < tty.text.index("PASSED")
    assert BOB_PASSWORD not in tty.text


async def test_stage_marks_on_a_terminal_and_a_hidden_password_prompt(sandbox: Sandbox) -> None:
    sandbox.faults.set("smtp", slow_stage="rcpt", slow_stage_ms=2_000)
    async with terminal(*_args(sandbox), env=_env()) as tty:
        await tty.wait_for(f"Password for {BOB}:")
        tty.write(BOB_PASSWORD + "\n")
        await tty.wait_for("✓ ehlo", "✓ auth", "waiting for the server's reply to RCPT TO")
        assert await tty.finish() == 0, tty.text
    assert "PASSED: the message was accepted" in tty.text
    assert "AUTH LOGIN" in tty.text or "AUTH PLAIN" in tty.text  # the prompt's password signed in
    assert BOB_PASSWORD not in tty.text  # not echoed, not in the report


async def test_emaildoctor_test_shows_the_test_send_as_it_happens(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = sandbox_env_file(sandbox, tmp_path)
    sandbox.faults.set("smtp", slow_stage="rcpt", slow_stage_ms=3_000)
    async with terminal("--env-file", str(env_file), "test", "alice", env=_env(), cwd=tmp_path) as tty:
        await tty.wait_for("✓ ehlo", "✓ auth", "waiting for the server's reply to RCPT TO")
        assert await tty.finish() == 1, tty.text  # admin@ may not send as alice@ in the example tenant
    assert tty.text.index("✓ auth") < tty.text.index("FAILED:")
    assert "Send As denied" in tty.text

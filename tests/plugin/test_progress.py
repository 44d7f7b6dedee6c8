"""Live progress: the probe reports each stage and transcript line as it happens; how each display shows them."""

from __future__ import annotations

import io
import ssl
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console

from plugin.classify import Stage
from plugin.probe import run_probe
from plugin.probe_request import ProbeRequest
from plugin.progress import LiveProgress, NullProgress, PlainProgress, progress_for, stage_wait
from plugin.settings import Security
from tests.plugin.scripted_smtp import Behaviour, scripted_server

PASSWORD = "correct horse battery staple"


class Recorder:
    """A Progress that keeps every event, to show what the probe reported and in which order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def step(self, text: str) -> None:
        self.events.append(("step", text))

    def done(self, label: str, ok: bool | None, detail: str = "") -> None:
        self.events.append(("done", label, str(ok)))

    def line(self, text: str) -> None:
        self.events.append(("line", text))


async def test_the_probe_reports_each_stage_as_it_happens(ca_file: Path, server_tls: ssl.SSLContext) -> None:
    recorder = Recorder()
    async with scripted_server(Behaviour(replies={"rcpt": "550 5.1.1 no such user"}), tls=server_tls) as server:
        request = ProbeRequest(
            host="localhost",
            port=server.port,
            security=Security.STARTTLS,
            from_addr="admin@business.com",
            to_addr="nobody@business.com",
            user="admin@business.com",
            password=SecretStr(PASSWORD),
            ca_file=ca_file,
        )
        result = await run_probe(request, progress=recorder)
    assert not result.ok and result.stage is Stage.RCPT
    stages = [(e[1], e[2]) for e in recorder.events if e[0] == "done"]
    assert stages == [
        ("connect", "True"),
        ("banner", "True"),
        ("ehlo", "True"),
        ("tls", "True"),
        ("auth", "True"),
        ("mail", "True"),
        ("rcpt", "False"),
    ]
    steps = [e[1] for e in recorder.events if e[0] == "step"]
    assert steps[0] == f"connecting to localhost:{server.port}"
    assert "waiting for the server's reply to RCPT TO" in steps
    lines = [e[1] for e in recorder.events if e[0] == "line"]
    assert len(lines) == len(result.transcript)  # every transcript line, as it was written
    assert all(line.startswith("[") and " ms] " in line for line in lines)
    assert [line.split(" ms] ", 1)[1] for line in lines] == list(result.transcript)
    # each stage's lines come before the stage is reported done: the EHLO reply precedes "ehlo done"
    ehlo_reply = next(i for i, e in enumerate(recorder.events) if e[0] == "line" and "<-  250-mx.test.example" in e[1])
    assert ehlo_reply < recorder.events.index(("done", "ehlo", "True"))
    assert not any(PASSWORD in " ".join(event) for event in recorder.events)


def test_plain_lines_off_a_terminal_and_none_when_disabled() -> None:
    stream = io.StringIO()
    plain = progress_for(stream, prefix="smtp-test: ", secrets=["s3cret"])
    assert isinstance(plain, PlainProgress)
    with plain:
        plain.step("connecting to smtp.example.com:587")
        plain.done("connect", True, "   4.5 ms")
        plain.line("[  1.0 ms] === hidden unless verbose")
        plain.done("auth", False, "password s3cret refused")
    assert stream.getvalue() == "smtp-test: ✓ connect: 4.5 ms\nsmtp-test: ✗ auth: password <redacted> refused\n"
    verbose = io.StringIO()
    with progress_for(verbose, verbose=True) as reporter:
        reporter.done("connect", True, "1 ms")
        reporter.line("[  1.0 ms] <-  220 hello")
    assert verbose.getvalue() == "[  1.0 ms] <-  220 hello\n"
    assert isinstance(progress_for(io.StringIO(), enabled=False), NullProgress)


def test_live_display_on_a_terminal_is_cleared_for_the_report() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100)
    live = LiveProgress(console, secrets=["s3cret"])
    with live:
        live.done("connect", True, "4.5 ms")
        live.step(stage_wait("data", "x:1"))
        live.update("waiting for the server's reply to DATA, s3cret")
    shown = stream.getvalue()
    assert "✓ connect" in shown and "waiting for the server's reply to DATA" in shown and "(0 s)" in shown
    assert "s3cret" not in shown
    verbose_stream = io.StringIO()
    verbose = LiveProgress(Console(file=verbose_stream, force_terminal=True, width=100), verbose=True)
    with verbose:
        verbose.line("[      0.4 ms] === Trying localhost:25...")
    assert "[      0.4 ms] === Trying localhost:25..." in verbose_stream.getvalue()

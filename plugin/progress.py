"""Live progress for slow commands: what is happening now and what has finished, as it happens.

The work (the SMTP probe's stages and transcript lines, a command's steps) reports to a :class:`Progress`;
:func:`progress_for` picks how it is shown: a rich live display (a spinner with the seconds waited so far) on a
terminal, plain lines when the stream is not a terminal, nothing at all (``enabled=False``, e.g. for ``--json``).
Progress goes to the stream it is given (the CLI gives stderr), never to stdout, so it cannot break JSON or a
report piped elsewhere. Every text passes through :func:`plugin.redact.redact` with the known secrets.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from plugin.redact import redact

MARKS = {True: "✓", False: "✗", None: "-"}

_WAITS = {
    "connect": "connecting to {target}",
    "banner": "waiting for the server's greeting",
    "ehlo": "waiting for the server's reply to EHLO",
    "tls": "TLS: waiting for the handshake and the server's reply",
    "auth": "signing in: waiting for the server's reply to AUTH",
    "mail": "waiting for the server's reply to MAIL FROM",
    "rcpt": "waiting for the server's reply to RCPT TO",
    "data": "waiting for the server's reply to DATA",
}


def stage_wait(stage: str, target: str) -> str:
    """What the probe waits for at ``stage``, in words: ``waiting for the server's reply to DATA``."""
    return _WAITS.get(stage, f"{stage}: waiting for the server").format(target=target)


class Progress(Protocol):
    """What slow work reports as it goes. Every method returns at once; none may raise."""

    def step(self, text: str) -> None:
        """Something slow begins (replaces the previous step): shown with a spinner and the seconds so far."""

    def done(self, label: str, ok: bool | None, detail: str = "") -> None:
        """Something finished (a stage, a check): one line with a mark."""

    def line(self, text: str) -> None:
        """A transcript line as it happens; shown in verbose mode only."""


class Reporter:
    """A :class:`Progress` that shows nothing; the base of the ones that do. Use it as a context manager."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = [s for s in secrets if s]

    def __enter__(self) -> Reporter:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Begin showing progress."""

    def stop(self) -> None:
        """Stop, and clear what a live display showed (the command's report follows)."""

    def add_secret(self, secret: str) -> None:
        if secret:
            self._secrets.append(secret)

    def step(self, text: str) -> None:
        return None

    def update(self, text: str) -> None:
        """New words for the current step (a count going up); the seconds keep counting from the step's start."""

    def done(self, label: str, ok: bool | None, detail: str = "") -> None:
        return None

    def line(self, text: str) -> None:
        return None

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)


class NullProgress(Reporter):
    """No progress at all: ``--json``, and every caller that passes none."""


NULL_PROGRESS = NullProgress()


class PlainProgress(Reporter):
    """One plain line per finished stage (and, verbose, per transcript line), flushed at once: for logs and pipes."""

    def __init__(self, stream: TextIO, *, verbose: bool = False, prefix: str = "", secrets: Iterable[str] = ()) -> None:
        super().__init__(secrets)
        self._stream = stream
        self._verbose = verbose
        self._prefix = prefix

    def done(self, label: str, ok: bool | None, detail: str = "") -> None:
        if not self._verbose:
            self._write(f"{MARKS[ok]} {label}" + (f": {detail.strip()}" if detail.strip() else ""))

    def line(self, text: str) -> None:
        if self._verbose:
            self._write(text)

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed pipe must not end the work it reports on
            print(self._prefix + self._clean(text), file=self._stream, flush=True)


class LiveProgress(Reporter):
    """A rich live display on a terminal: finished stages, then a spinner with what is awaited and for how long.

    Verbose: transcript lines are printed for good above the spinner as they happen (swaks-style, with timings).
    The live part is transient: it is cleared when the work ends, and the command's report takes its place.
    """

    def __init__(self, console: Console, *, verbose: bool = False, secrets: Iterable[str] = ()) -> None:
        super().__init__(secrets)
        self._console = console
        self._verbose = verbose
        self._lock = threading.Lock()
        self._finished: list[Text] = []
        self._step: str | None = None
        self._since = time.monotonic()
        self._spinner = Spinner("dots")
        self._live = Live(
            console=console,
            get_renderable=self._render,
            transient=True,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()

    def step(self, text: str) -> None:
        with self._lock:
            self._step, self._since = self._clean(text), time.monotonic()
        self._live.refresh()

    def update(self, text: str) -> None:
        with self._lock:
            if self._step is None:
                self._since = time.monotonic()
            self._step = self._clean(text)

    def done(self, label: str, ok: bool | None, detail: str = "") -> None:
        with self._lock:
            self._step = None
            if not self._verbose:
                self._finished.append(Text(f"  {MARKS[ok]} {label:<8} {self._clean(detail)}".rstrip()))
        self._live.refresh()

    def line(self, text: str) -> None:
        if self._verbose:
            self._live.console.print(Text(self._clean(text)), soft_wrap=True)

    def _render(self) -> RenderableType:
        with self._lock:
            parts: list[RenderableType] = list(self._finished)
            if self._step is not None:
                seconds = time.monotonic() - self._since
                self._spinner.update(text=Text(f"{self._step} ({seconds:.0f} s)"))
                parts.append(self._spinner)
        return Group(*parts)


def progress_for(
    stream: TextIO, *, enabled: bool = True, verbose: bool = False, prefix: str = "", secrets: Iterable[str] = ()
) -> Reporter:
    """The right progress for ``stream``: live on a terminal, plain lines otherwise, none when not ``enabled``."""
    if not enabled:
        return NullProgress()
    console = Console(file=stream, highlight=False)
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveProgress(console, verbose=verbose, secrets=secrets)
    return PlainProgress(stream, verbose=verbose, prefix=prefix, secrets=secrets)

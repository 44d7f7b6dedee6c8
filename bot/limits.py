"""Bounds on what one person can make the bot do: commands per requester, and one real test of a user per
minute (a repeat shows the last result). Counted in this process's memory: with several replicas each
replica counts on its own, which bounds the load per replica (Slack spreads requests across them).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from plugin.doctor import Report
from plugin.errors import ConfigError

MAX_KEYS = 10_000
"""Beyond this many tracked keys, the idle ones are forgotten (so memory stays bounded)."""


@dataclass(frozen=True)
class SharedTest:
    report: Report
    started_at: datetime
    reused: bool
    """True when this caller got the result of a test started earlier (by anyone) instead of a new one."""


@dataclass
class Limits:
    _events: dict[str, deque[datetime]] = field(default_factory=dict)
    _tests: dict[str, tuple[datetime, asyncio.Task[Report]]] = field(default_factory=dict)

    def take(self, key: str, now: datetime, *, count: int, window: timedelta, what: str) -> None:
        """Count one use of ``key``; raise :class:`ConfigError` (changing nothing) past ``count`` per ``window``."""
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= window:
            events.popleft()
        if len(events) >= count:
            wait = max(1, int((events[0] + window - now).total_seconds() + 0.999))
            raise ConfigError(
                f"{what} is limited to {count} per {_words(window)} for each person; try again in {wait} s."
            )
        events.append(now)
        if len(self._events) > MAX_KEYS:
            self._events = {k: v for k, v in self._events.items() if v and now - v[-1] < window}

    async def shared_test(
        self, key: str, now: datetime, reuse: timedelta, run: Callable[[], Awaitable[Report]]
    ) -> SharedTest:
        """The test of ``key`` started within ``reuse`` (finished or still running), else a new one from ``run``."""
        known = self._tests.get(key)
        if known is not None and now - known[0] < reuse and not known[1].cancelled():
            return SharedTest(await asyncio.shield(known[1]), known[0], reused=True)

        async def wrapped() -> Report:
            return await run()

        task = asyncio.ensure_future(wrapped())
        self._tests[key] = (now, task)
        if len(self._tests) > MAX_KEYS:
            self._tests = {k: v for k, v in self._tests.items() if now - v[0] < reuse}
        try:
            report = await asyncio.shield(task)
        except BaseException:
            self._tests.pop(key, None)  # a failed test is not a result to show again
            raise
        return SharedTest(report, now, reused=False)


def _words(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return {60: "minute", 3600: "hour"}.get(seconds, f"{seconds} s")

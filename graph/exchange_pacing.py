"""Pacing to Exchange Online's request budget instead of running into its 429s.

The admin API meters each tenant with a token bucket (``shared/reference/exchange-online.md``, "throttling"; the
sandbox's ``exchange_rate_limit`` / ``exchange_rate_window_seconds``): every ``InvokeCommand`` and every ``$batch``
item costs one token, the bucket refills evenly over its window, and every answer says where it stands::

    Rate-Limit-Limit: 30000          Rate-Limit-Remaining: 17420          Rate-Limit-Reset: 2026-12-06T05:52:01.312Z

:class:`RequestBudget` mirrors that bucket on the client: it learns the size, what is left and the refill rate
(``(Limit - Remaining) / (Reset - now)``) from each answer, counts what is in flight (sent, not yet answered: the
service may not have counted it yet, so it is taken off what is left), and makes a request wait until its cost is
there. What the service says is left already counts some of what is in flight, so the budget errs on the slow side
by at most the in-flight cost (80 items: under a second at 100 per second). Until the service has said anything the client does not wait (the first request tells it). A 429 that still
happens is retried after its ``Retry-After`` as before; pacing only makes it rare.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

DEFAULT_WINDOW_S = 300.0
"""Refill window assumed until an answer shows the rate (the documented 5 minutes; the sandbox's default)."""


class RequestBudget:
    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._monotonic = monotonic
        self._sleep = sleep
        self._now = now
        self._limit: float | None = None
        self._rate: float | None = None
        self._tokens = 0.0
        self._at = 0.0
        self._in_flight = 0.0
        self.waited = 0.0
        """Seconds requests spent waiting for the budget, in total."""

    async def take(self, cost: int) -> None:
        """Wait until ``cost`` tokens are left (never when the service's budget is not known), then spend them."""
        while True:
            if self._limit is None:
                break
            rate = self._rate or self._limit / DEFAULT_WINDOW_S
            now = self._monotonic()
            available = min(self._limit, self._tokens + (now - self._at) * rate) - self._in_flight
            if available >= cost or cost > self._limit:
                self._tokens = available + self._in_flight
                self._at = now
                break
            wait = (cost - available) / rate
            self.waited += wait
            await self._sleep(wait)
        self._in_flight += cost

    def answered(self, cost: int, headers: Mapping[str, str]) -> None:
        """A request of ``cost`` was answered with ``headers``: it is no longer in flight; learn the bucket."""
        self._in_flight = max(0.0, self._in_flight - cost)
        try:
            limit = float(headers["Rate-Limit-Limit"])
            remaining = float(headers["Rate-Limit-Remaining"])
        except (KeyError, ValueError):
            self._tokens -= cost  # no word from the service: count the cost ourselves
            return
        if limit <= 0:
            return
        reset = _parse_time(headers.get("Rate-Limit-Reset", ""))
        if reset is not None and remaining < limit - 1:
            seconds = (reset - self._now()).total_seconds()
            if seconds > 0.5:  # too close to full, the estimate is mostly rounding
                self._rate = (limit - remaining) / seconds
        # What the service says is left; what we sent since is in flight and taken off in take().
        self._tokens, self._at = remaining, self._monotonic()
        self._limit = limit


def _parse_time(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

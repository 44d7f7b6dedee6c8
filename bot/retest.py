"""Re-test after a grant until the test passes or the time limit is reached: Exchange takes minutes to apply a
new right, so the first tests after a grant usually still fail (reported as 'granted, waiting')."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from plugin.diagnosis import Code
from plugin.doctor import Report


@dataclass(frozen=True)
class RetestPolicy:
    first_delay: float
    max_delay: float
    timeout: float

    def delays(self) -> list[float]:
        """The waits before each attempt: doubling from first_delay, capped at max_delay, within timeout."""
        waits: list[float] = []
        delay, total = self.first_delay, 0.0
        while total + delay <= self.timeout:
            waits.append(delay)
            total += delay
            delay = min(delay * 2, self.max_delay)
        return waits


@dataclass(frozen=True)
class RetestOutcome:
    passed: bool
    attempts: int
    waited: float
    last: Report | None
    stopped_early: bool = False
    """The test failed for another reason than Send As denied: waiting longer will not help."""


async def retest_until_passing(
    run: Callable[[], Awaitable[Report]],
    policy: RetestPolicy,
    sleep: Callable[[float], Awaitable[None]],
    on_attempt: Callable[[int, Report], Awaitable[None]] | None = None,
) -> RetestOutcome:
    waited = 0.0
    last: Report | None = None
    for attempt, delay in enumerate(policy.delays(), start=1):
        await sleep(delay)
        waited += delay
        last = await run()
        if on_attempt is not None:
            await on_attempt(attempt, last)
        if last.ok:
            return RetestOutcome(True, attempt, waited, last)
        if last.diagnosis is None or last.diagnosis.code is not Code.SEND_AS_DENIED:
            return RetestOutcome(False, attempt, waited, last, stopped_early=True)
    return RetestOutcome(False, len(policy.delays()), waited, last)

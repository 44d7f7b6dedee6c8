"""The client's mirror of Exchange's request budget (pure logic: a fake clock, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from graph.exchange_pacing import RequestBudget

START = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)


class FakeTime:
    def __init__(self) -> None:
        self.mono = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return START + timedelta(seconds=self.mono)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.mono += seconds


def headers(limit: int, remaining: int, seconds_to_full: float) -> dict[str, str]:
    reset = (START + timedelta(seconds=seconds_to_full)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {"Rate-Limit-Limit": str(limit), "Rate-Limit-Remaining": str(remaining), "Rate-Limit-Reset": reset}


def budget(clock: FakeTime) -> RequestBudget:
    return RequestBudget(monotonic=clock.monotonic, sleep=clock.sleep, now=clock.now)


async def test_no_wait_until_the_service_has_told_its_budget() -> None:
    clock = FakeTime()
    paced = budget(clock)
    for _ in range(5):
        await paced.take(10)
    assert clock.sleeps == []


async def test_waits_for_the_refill_the_headers_describe() -> None:
    clock = FakeTime()
    paced = budget(clock)
    await paced.take(1)
    # 100 tokens, 20 left, full again in 8 s: the bucket refills at 10 tokens a second.
    paced.answered(1, headers(100, 20, 8.0))
    await paced.take(10)  # 20 left: no wait
    await paced.take(10)  # 10 left (the first 10 are in flight): no wait
    assert clock.sleeps == []
    await paced.take(10)  # 0 left: one second for 10 tokens
    assert clock.sleeps == [1.0]
    assert paced.waited == 1.0


async def test_answers_free_what_was_in_flight() -> None:
    clock = FakeTime()
    paced = budget(clock)
    await paced.take(1)
    paced.answered(1, headers(100, 30, 7.0))
    await paced.take(10)
    await paced.take(10)
    await paced.take(10)
    paced.answered(10, headers(100, 20, 8.0))  # the service counted one; two still in flight
    await paced.take(10)  # 20 left less 20 in flight: waits for 10 tokens
    assert clock.sleeps == [1.0]


async def test_a_request_larger_than_the_bucket_is_not_held_forever() -> None:
    clock = FakeTime()
    paced = budget(clock)
    await paced.take(1)
    paced.answered(1, headers(5, 0, 5.0))
    await paced.take(50)
    assert clock.sleeps == []

"""The same question asked while it is being answered shares that answer; nothing is kept after it."""

from __future__ import annotations

import asyncio

import pytest

from plugin.single_flight import SingleFlight


class Asker:
    def __init__(self) -> None:
        self.asked = 0
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.asked += 1
        await self.release.wait()
        return self.asked


async def test_callers_asking_meanwhile_share_one_request() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    ask = Asker()
    callers = [asyncio.ensure_future(flight.run("admin@business.com", ask)) for _ in range(5)]
    await asyncio.sleep(0)
    ask.release.set()
    assert await asyncio.gather(*callers) == [1] * 5
    assert ask.asked == 1 and flight.shared == 4


async def test_the_next_question_after_the_answer_asks_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    ask = Asker()
    ask.release.set()
    assert await flight.run("a", ask) == 1
    assert await flight.run("a", ask) == 2
    assert await flight.run("b", ask) == 3


async def test_an_error_reaches_every_caller_and_is_not_kept() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise LookupError("Graph refused")

    results = await asyncio.gather(*(flight.run("a", failing) for _ in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [LookupError] * 3 and calls == 1
    with pytest.raises(LookupError):
        await flight.run("a", failing)
    assert calls == 2


async def test_one_caller_giving_up_does_not_cancel_the_others() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    ask = Asker()
    impatient = asyncio.ensure_future(flight.run("a", ask))
    patient = asyncio.ensure_future(flight.run("a", ask))
    await asyncio.sleep(0)
    impatient.cancel()
    ask.release.set()
    assert await patient == 1
    assert impatient.cancelled()


async def test_after_forget_a_new_question_does_not_join_the_old_request() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    ask = Asker()
    before = asyncio.ensure_future(flight.run("a", ask))
    await asyncio.sleep(0)
    flight.forget()  # a service refused what the request under way may hand out
    after = asyncio.ensure_future(flight.run("a", ask))
    await asyncio.sleep(0)
    ask.release.set()
    assert await asyncio.gather(before, after) == [2, 2] and ask.asked == 2

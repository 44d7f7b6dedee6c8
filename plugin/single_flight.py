"""The same question asked again while it is still being answered waits for that answer instead of asking twice.

A burst of ``/emailtest`` commands asks Microsoft 365 about the same few addresses (every employee who sends
through admin@ needs admin@'s account looked up). :class:`SingleFlight` runs one request per key at a time and hands
its outcome (a value or an error) to everyone who asked meanwhile: a caller who joins gets the answer to a request
that was already under way when they asked. Nothing is kept once the answer is in: the next question after it asks
again. One caller giving up (cancelled) does not cancel the others' request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._flying: dict[K, asyncio.Future[V]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.shared = 0
        """Questions answered by a request another caller had already made."""

    async def run(self, key: K, ask: Callable[[], Awaitable[V]]) -> V:
        """``ask()``'s outcome, from the request already under way for ``key`` if there is one."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (a new CLI command): nothing under way carries over
            self._loop, self._flying = loop, {}
        future = self._flying.get(key)
        if future is None:
            future = self._flying[key] = asyncio.ensure_future(ask())
            future.add_done_callback(lambda done: self._landed(key, done))
        else:
            self.shared += 1
        return await asyncio.shield(future)

    def forget(self) -> None:
        """Questions asked from now on get a request of their own (after something that may change the answer)."""
        self._flying = {}

    def _landed(self, key: K, done: asyncio.Future[V]) -> None:
        if self._flying.get(key) is done:
            del self._flying[key]
        if not done.cancelled():
            done.exception()  # seen, even when every caller has gone (no "exception was never retrieved")

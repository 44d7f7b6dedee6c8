"""Exchange reads that start together go out together: one ``$batch`` instead of one round trip each.

A diagnosis asks Exchange several independent questions at once (the two mailboxes' kinds, the SMTP AUTH switches,
the right, the trustee's names). Each check calls :meth:`ExchangeReads.invoke` as if alone; the reads that arrive
within a few milliseconds of each other, or while the first of them waits for the Exchange token, are sent as one
``$batch`` (10 per request, the chunks in parallel), and identical reads share one answer. A read that arrives alone
is a plain ``InvokeCommand``, exactly as :meth:`graph.exchange.ExchangeAdmin.invoke` sends it. The same read
asked again before the first is answered (a burst of diagnoses asking about the same admin@) shares that answer;
nothing is kept after it (short-lived keeping is :mod:`graph.mailbox_facts`'s job). Every read gets the
same rows, warnings and errors as it would alone: ``$batch`` items are translated by the same rules.

Only reads go through here; changes (Add-/Set-/Remove-) keep their order on :class:`~graph.exchange.ExchangeAdmin`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from graph.exchange import BatchOutcome, Command, ExchangeAdmin, ExchangeResult
from graph.exchange_model import check_command
from plugin.errors import EmailDoctorError
from plugin.single_flight import SingleFlight

WINDOW_S = 0.003
"""How long the first read of a batch waits for others (then as long as the token takes, if it is not cached)."""


class ExchangeReader(Protocol):
    """What a read needs: :class:`~graph.exchange.ExchangeAdmin` (each read a request of its own: a change's reads)
    or :class:`ExchangeReads` (reads gathered with other callers': a diagnosis's)."""

    async def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        anchor: str | None = None,
        select: Sequence[str] | None = None,
    ) -> ExchangeResult: ...

    async def batch(self, commands: Sequence[Command]) -> list[BatchOutcome]: ...


class ExchangeReads:
    def __init__(self, exchange: ExchangeAdmin, *, window: float = WINDOW_S) -> None:
        self._exchange = exchange
        self._window = window
        self._pending: dict[str, tuple[Command, asyncio.Future[ExchangeResult]]] = {}
        """Reads not sent yet."""
        self._flight: SingleFlight[str, ExchangeResult] = SingleFlight()
        """Reads not answered yet (pending or sent): the same read asked meanwhile shares the answer."""
        self._flush: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        """``$batch`` requests this sent (reads that went together)."""

    @property
    def shared(self) -> int:
        """Reads answered by the same read another caller had already asked (pending or under way)."""
        return self._flight.shared

    async def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        anchor: str | None = None,
        select: Sequence[str] | None = None,
    ) -> ExchangeResult:
        """Every row and warning of one read (all pages), or its error, as :meth:`ExchangeAdmin.invoke` gives them."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (a new CLI command): nothing pending carries over
            self._loop, self._pending, self._flush = loop, {}, None
        command = Command(cmdlet, dict(parameters or {}), anchor, tuple(select) if select else None)
        key = json.dumps([cmdlet, command.parameters, anchor, command.select], sort_keys=True, default=str)
        return await self._flight.run(key, lambda: self._queued(key, command))

    async def _queued(self, key: str, command: Command) -> ExchangeResult:
        """The read's answer, once the batch it joined is back. A read not sent yet is fresh whenever it was asked,
        so one asked again after :meth:`forget` joins it rather than going out twice."""
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = (command, asyncio.get_running_loop().create_future())
            if self._flush is None:
                self._flush = asyncio.get_running_loop().create_task(self._send())
        return await entry[1]

    async def batch(self, commands: Sequence[Command]) -> list[BatchOutcome]:
        """:meth:`ExchangeAdmin.batch`'s outcomes (in order, each item's Exchange error kept in its outcome), with
        every item gathered like :meth:`invoke`: reads that other callers asked at the same time go out once."""
        for command in commands:
            check_command(command)
        answers = await asyncio.gather(
            *(self.invoke(c.cmdlet, c.parameters, anchor=c.anchor, select=c.select) for c in commands),
            return_exceptions=True,
        )
        outcomes = []
        for command, answer in zip(commands, answers, strict=True):
            if isinstance(answer, EmailDoctorError):
                outcomes.append(BatchOutcome(command, error=answer))
            elif isinstance(answer, BaseException):
                raise answer
            else:
                outcomes.append(BatchOutcome(command, result=answer))
        return outcomes

    def forget(self) -> None:
        """Reads asked from now on go out afresh instead of joining one already sent (after a change)."""
        self._flight.forget()

    async def _send(self) -> None:
        try:
            await asyncio.sleep(self._window)
            await self._exchange.token_ready()  # reads arriving while the token is fetched join this batch
        except BaseException as exc:
            self._fail(self._take(), exc)
            if not isinstance(exc, Exception):
                raise
            return
        entries = self._take()
        try:
            if len(entries) == 1:
                command, future = entries[0]
                result = await self._exchange.invoke(
                    command.cmdlet, command.parameters, anchor=command.anchor, select=command.select
                )
                _settle(future, result, None)
                return
            self.batches += 1
            outcomes = await self._exchange.batch([command for command, _ in entries])
        except BaseException as exc:
            self._fail(entries, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), outcome in zip(entries, outcomes, strict=True):
            _settle(future, outcome.result, outcome.error)

    def _take(self) -> list[tuple[Command, asyncio.Future[ExchangeResult]]]:
        entries = list(self._pending.values())
        self._pending, self._flush = {}, None
        return entries

    @staticmethod
    def _fail(entries: list[tuple[Command, asyncio.Future[ExchangeResult]]], exc: BaseException) -> None:
        for _, future in entries:
            if not future.done():
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)


def _settle(future: asyncio.Future[ExchangeResult], result: ExchangeResult | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)

"""Reads gathered and shared (graph/exchange_reads.py), against the sandbox: what it received is the evidence."""

from __future__ import annotations

import asyncio

from graph.exchange import Command
from graph.exchange_reads import ExchangeReads
from plugin.errors import NotFoundError
from sandbox.faults import Served
from sandbox.runtime import Sandbox
from tests.graph.fixtures_exchange import exchange_for

ALICE = "alice@business.com"


def _exchange(journal: list[Served]) -> list[str]:
    return [s.what.rsplit("/", 1)[-1] for s in journal if s.service == "exchange"]


async def test_the_same_read_asked_while_under_way_goes_out_once(sandbox: Sandbox) -> None:
    journal: list[Served] = []
    async with exchange_for(sandbox) as exchange:
        reads = ExchangeReads(exchange)
        sandbox.faults.set("exchange", latency_ms=200)
        sandbox.faults.journal = journal
        first = asyncio.ensure_future(reads.invoke("Get-Mailbox", {"Identity": ALICE}, anchor=ALICE))
        await asyncio.sleep(0.05)  # sent: the gathering window is a few milliseconds
        later = await reads.invoke("Get-Mailbox", {"Identity": ALICE}, anchor=ALICE)
        assert (await first).rows == later.rows and later.rows[0]["PrimarySmtpAddress"] == ALICE
        again = await reads.invoke("Get-Mailbox", {"Identity": ALICE}, anchor=ALICE)  # answered: asked afresh
    sandbox.faults.journal = None
    assert again.rows == later.rows
    assert _exchange(journal) == ["Get-Mailbox", "Get-Mailbox"] and reads.shared == 1


async def test_after_a_change_a_read_does_not_join_one_sent_before_it(sandbox: Sandbox) -> None:
    journal: list[Served] = []
    async with exchange_for(sandbox) as exchange:
        reads = ExchangeReads(exchange)
        sandbox.faults.set("exchange", latency_ms=200)
        sandbox.faults.journal = journal
        before = asyncio.ensure_future(reads.invoke("Get-CASMailbox", {"Identity": ALICE}, anchor=ALICE))
        await asyncio.sleep(0.05)
        reads.forget()  # what emaildoctor's grants and revokes call (through graph.mailbox_facts)
        after = await reads.invoke("Get-CASMailbox", {"Identity": ALICE}, anchor=ALICE)
        await before
    sandbox.faults.journal = None
    assert after.rows and _exchange(journal) == ["Get-CASMailbox", "Get-CASMailbox"] and reads.shared == 0


async def test_batch_keeps_each_items_error_as_the_admin_client_does(sandbox: Sandbox) -> None:
    journal: list[Served] = []
    async with exchange_for(sandbox) as exchange:
        reads = ExchangeReads(exchange)
        sandbox.faults.journal = journal
        commands = [
            Command("Get-Mailbox", {"Identity": ALICE}, ALICE),
            Command("Get-Mailbox", {"Identity": "nobody@business.com"}, "nobody@business.com"),
        ]
        gathered = await reads.batch(commands)
        direct = await exchange.batch(commands)
    sandbox.faults.journal = None
    assert [o.result.rows if o.result else None for o in gathered] == [
        o.result.rows if o.result else None for o in direct
    ]
    assert isinstance(gathered[1].error, NotFoundError) and type(gathered[1].error) is type(direct[1].error)
    assert _exchange(journal) == ["$batch", "$batch"]

"""What one diagnosis asks Microsoft 365: its Exchange reads in one ``$batch``, no Graph mailboxSettings, and kept
mailbox facts on the next diagnosis (read from the sandbox's request journal)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from graph.auth import exchange_scope, graph_scope
from plugin.diagnosis import Code
from sandbox.faults import Served
from sandbox.runtime import Sandbox
from tests.graph.doctor_support import doctor_for


def _names(journal: list[Served], service: str) -> list[str]:
    return [s.what.rsplit("/", 1)[-1] for s in journal if s.service == service]


async def test_one_batch_for_the_exchange_reads_and_kept_facts_next_time(sandbox: Sandbox, tmp_path: Path) -> None:
    first: list[Served] = []
    second: list[Served] = []
    async with doctor_for(sandbox, tmp_path) as (_, doctor):
        sandbox.faults.journal = first
        report = await doctor.diagnose("alice")
        sandbox.faults.journal = second
        again = await doctor.diagnose("alice")
    sandbox.faults.journal = None
    for each in (report, again):
        assert each.diagnosis is not None and each.diagnosis.code is Code.SEND_AS_DENIED
        assert [c.to_json() for c in each.checks] == [c.to_json() for c in report.checks]
    assert _names(first, "exchange") == ["$batch"]
    assert not any(name == "mailboxSettings" for name in _names(first, "graph"))
    assert _names(second, "exchange") == ["$batch"]
    assert _names(second, "login") == []  # tokens kept


def _searches(journal: list[Served]) -> int:
    return sum(1 for s in journal if s.service == "graph" and s.what.endswith("/users"))


async def test_a_failed_test_looks_each_address_up_once(sandbox: Sandbox, tmp_path: Path) -> None:
    """The second look at a failed test (plugin/sender_checks.py) reuses the checks' lookups: no second round."""
    journal: list[Served] = []
    async with doctor_for(sandbox, tmp_path) as (_, doctor):
        sandbox.faults.journal = journal
        report = await doctor.diagnose("alice")
    sandbox.faults.journal = None
    assert report.diagnosis is not None and report.diagnosis.code is Code.SEND_AS_DENIED
    assert _searches(journal) == 2  # admin@ (signs in) and alice@ (From), each once


async def test_a_burst_of_diagnoses_shares_the_lookups_under_way(sandbox: Sandbox, tmp_path: Path) -> None:
    """Three helpdesk requests at once ask Microsoft 365 what one asks (the same admin@, the same alice@)."""
    journal: list[Served] = []
    async with doctor_for(sandbox, tmp_path) as (m365, doctor):
        await m365.tokens.token(exchange_scope(m365.settings))  # signed in, as a running bot is
        await m365.tokens.token(graph_scope(m365.settings))
        for service in ("graph", "exchange"):
            sandbox.faults.set(service, latency_ms=300)  # the three overlap
        sandbox.faults.journal = journal
        reports = await asyncio.gather(*(doctor.diagnose("alice") for _ in range(3)))
    sandbox.faults.journal = None
    for report in reports:
        assert report.diagnosis is not None and report.diagnosis.code is Code.SEND_AS_DENIED
        assert [c.to_json() for c in report.checks] == [c.to_json() for c in reports[0].checks]
    assert _searches(journal) == 2
    assert _names(journal, "exchange") == ["$batch"]
    assert m365.permissions.reads.shared > 0

"""What one diagnosis asks Microsoft 365: its Exchange reads in one ``$batch``, no Graph mailboxSettings, and kept
mailbox facts on the next diagnosis (read from the sandbox's request journal)."""

from __future__ import annotations

from pathlib import Path

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

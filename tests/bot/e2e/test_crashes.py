"""SIGKILL at every step of a grant and of a time-bound grant, on SQLite and PostgreSQL at once (the round waits
for real time limits to run out, so the two backends share the wait): every change ends verified with one
outcome in the audit log and on its card, no grant is made twice, the chain holds, every time limit is revoked
(through an Exchange outage at the moment it runs out, retried and escalated)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sandbox.testing import SandboxFactory
from tests.bot.conftest import _postgres, _sqlite
from tests.bot.e2e.crashes import STEPS, Round, kill_round


async def _round(sandbox_factory: SandboxFactory, folder: Path, backend: str) -> Round:
    database = _postgres(f"kill-{backend}") if backend == "postgres" else _sqlite(folder)
    async with database as db, sandbox_factory() as sandbox:
        return await kill_round(sandbox, folder, db.url, backend)


async def test_sigkill_at_every_step_then_restart(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    for name in ("sqlite", "postgres"):
        (tmp_path / name).mkdir()
    rounds = await asyncio.gather(*(_round(sandbox_factory, tmp_path / name, name) for name in ("sqlite", "postgres")))
    for report in rounds:
        assert report.chain_ok, report.backend
        assert report.escalated, report.backend
        for outcome in report.outcomes:
            where = (report.backend, outcome.step, outcome.mailbox, outcome.timed)
            assert outcome.change.state == "verified", (where, outcome.change.detail)
            assert "read back from Exchange" in outcome.card, (where, outcome.card)
            assert outcome.grants_made == 1, where  # no double change
            assert outcome.outcome_entries == 1, where
            assert report.survived(outcome), where
        assert sorted({o.step for o in report.outcomes}) == sorted(STEPS)

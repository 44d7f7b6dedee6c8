"""The re-test after a granted fix survives the replica that approved it: the real `emaildoctor bot` is killed with
SIGKILL in the middle of a re-test attempt (held by the sandbox at its progress update, lease in hand), another
replica on the same store takes the re-test over once the lease lapses, finishes it and posts the result once.
SQLite and PostgreSQL, one round each, side by side."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bot.store import RetestOutcome, RetestRecord, RetestState, Store
from sandbox.clock import ManualClock
from sandbox.runtime import Sandbox
from sandbox.slack import SlackClient, SlackMessage
from sandbox.testing import SandboxFactory
from tests.bot.conftest import _postgres, _sqlite
from tests.bot.e2e.bot_process import BotProcess, poll, until

HANNAH, IVAN = "U0HANNAH", "U0IVAN"
HELPDESK, APPROVALS = "C0HELPDESK", "C0ITAPPROVE"
WITHIN = 60.0
RETESTS = {
    "EMAILDOCTOR_SLACK__RETEST_FIRST_DELAY_SECONDS": "0.5",
    "EMAILDOCTOR_SLACK__RETEST_MAX_DELAY_SECONDS": "1",
    "EMAILDOCTOR_SLACK__RETEST_TIMEOUT_MINUTES": "10",
}
PROPAGATION_SECONDS = 600
"""Exchange applies the right this long after the grant, on the sandbox's clock (which moves only when told)."""


@dataclass
class Result:
    backend: str
    retest: RetestRecord
    replicas: tuple[str, str]
    thread: list[SlackMessage]
    parent: SlackMessage
    retest_entries: int
    chain_ok: bool


async def _fix_requested_and_approved(sandbox: Sandbox, slack: SlackClient) -> SlackMessage:
    """Hannah's /emailtest of alice fails with Send As denied; she requests the fix; Ivan (IT) approves it."""
    workspace = sandbox.slack
    assert workspace is not None
    delivery = await slack.slash_command(HANNAH, "/emailtest", "alice", HELPDESK)
    assert delivery.status == 200, (delivery.status, delivery.error)

    def parent() -> SlackMessage | None:
        said = "Testing outgoing email for *alice*"
        found = (
            m for m in workspace.messages(HELPDESK) if any(said in v.text for v in workspace.versions(HELPDESK, m.ts))
        )
        return next(found, None)

    top = await workspace.wait_for(parent, timeout=WITHIN)

    def report() -> SlackMessage | None:
        replies = workspace.replies(HELPDESK, top.ts)
        return next((m for m in replies if "request_fix" in m.action_ids()), None)

    click = await slack.click(HANNAH, await workspace.wait_for(report, timeout=WITHIN), "request_fix")
    assert click.status == 200, (click.status, click.error)

    def card() -> SlackMessage | None:
        return next((m for m in workspace.messages(APPROVALS) if "approve_request" in m.action_ids()), None)

    click = await slack.click(IVAN, await workspace.wait_for(card, timeout=WITHIN), "approve_request")
    assert click.status == 200, (click.status, click.error)
    return top


async def _round(sandbox: Sandbox, folder: Path, store_url: str, backend: str) -> Result:
    workspace = sandbox.slack
    assert workspace is not None
    approver = BotProcess(sandbox, folder / "a", store_url, **RETESTS)
    other = BotProcess(sandbox, folder / "b", store_url, **RETESTS)
    # The approver is stopped in its second re-test attempt: tested (still denied), progress not yet shown.
    held = sandbox.faults.hold("slack", "chat.update", "Re-test 2 of alice")
    try:
        slack = SlackClient(workspace, bot_url=await approver.start(), slack_base_url=sandbox.urls.slack)
        parent = await _fix_requested_and_approved(sandbox, slack)
        try:
            await until(lambda: held.held > 0, WITHIN, "the approver held in its second re-test")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; log: {approver.log.read_text()[-3000:]}") from None
        await approver.kill()
        sandbox.faults.release_holds()
        assert isinstance(sandbox.clock, ManualClock)
        sandbox.clock.advance(PROPAGATION_SECONDS)  # Exchange applies the right meanwhile
        await other.start()
        async with await Store.open(store_url, migrate=False) as store:
            change = next(c for c in await store.recent_changes() if c.mailbox == "alice@business.com")

            async def done() -> RetestRecord | None:
                retest = await store.retest_of_change(change.id)
                return retest if retest is not None and retest.state is RetestState.DONE else None

            try:
                retest = await poll(done, WITHIN, "the re-test finished by the other replica")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; log: {other.log.read_text()[-3000:]}") from None
            entries = [e for e in await store.audit_entries(limit=200) if e.action == "retest"]
            chain_ok = (await store.verify_audit_chain()).ok
        return Result(
            backend,
            retest,
            (f":{approver.pids[-1]}", f":{other.pids[-1]}"),
            workspace.replies(HELPDESK, parent.ts),
            workspace.message(HELPDESK, parent.ts),
            len(entries),
            chain_ok,
        )
    finally:
        await other.stop()
        await approver.stop()
        sandbox.faults.release_holds()


async def _backend(sandbox_factory: SandboxFactory, folder: Path, backend: str) -> Result:
    database = _postgres("retest-kill") if backend == "postgres" else _sqlite(folder)
    async with database as db, sandbox_factory(propagation_delay_seconds=PROPAGATION_SECONDS) as sandbox:
        return await _round(sandbox, folder, db.url, backend)


def _folders(tmp_path: Path) -> None:
    for backend in ("sqlite", "postgres"):
        for replica in ("a", "b"):
            (tmp_path / backend / replica).mkdir(parents=True)


async def test_a_retest_survives_the_replica_that_approved_it(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    _folders(tmp_path)
    results = await asyncio.gather(
        *(_backend(sandbox_factory, tmp_path / backend, backend) for backend in ("sqlite", "postgres"))
    )
    for result in results:
        retest, (approver, other) = result.retest, result.replicas
        where = result.backend
        assert retest.outcome is RetestOutcome.PASSED, (where, retest.result_text)
        assert (retest.claimed_by or "").endswith(other), (where, retest.claimed_by, approver)
        assert retest.attempts == 2, where  # the killed attempt is run again, not skipped
        texts = [m.all_text() for m in result.thread]
        finals = [t for t in texts if "email test passes now" in t]
        assert len(finals) == 1, (where, texts)  # the result, once
        assert "re-test 2" in finals[0], (where, finals)
        passing_reports = [m for m in result.thread if m.text.startswith("✅") and "Who signs in" in m.all_text()]
        assert len(passing_reports) == 1, (where, texts)
        assert len([t for t in texts if "Re-testing alice until" in t or "Re-test " in t]) == 0, (where, texts)
        assert "passes after the fix" in result.parent.text, where
        assert result.retest_entries == 1, where
        assert result.chain_ok, where

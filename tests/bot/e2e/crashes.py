"""A kill round: approved grants (plain and time-bound), each stopped by a sandbox hold at one step, the real bot
killed with SIGKILL while all of them are held, restarted on the same store; then what became of every change.

Steps (``STEPS``): ``exchange`` the change cmdlet held before Exchange runs it; ``applied`` run, its answer
withheld; ``read-back`` the read after it held; ``card`` the approval card's final update held. Used by
tests/bot/e2e/test_crashes.py and bench/kill_rounds.py (which counts outcomes over many rounds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.store import ChangeRecord, ChangeState, Store
from sandbox.faults import Hold
from sandbox.runtime import Sandbox
from sandbox.slack import SlackClient, SlackMessage, SlackWorkspace
from tests.bot.e2e.bot_process import BotProcess, poll, until
from tests.bot.e2e.sendas_cards import ask_and_confirm

HANNAH, IVAN, APPROVALS = "U0HANNAH", "U0IVAN", "C0ITAPPROVE"
TRUSTEE = "bob@business.com"
STEPS = ("exchange", "applied", "read-back", "card")
PLAIN = dict(zip(STEPS, ("alice", "carol", "dave", "erin"), strict=True))
TIMED = dict(zip(STEPS, ("ivy", "jack", "hannah", "henry"), strict=True))
WITHIN = 90.0  # per change, after the restart: the full suite on two cores can take its time


@dataclass
class Outcome:
    step: str
    mailbox: str
    timed: bool
    change: ChangeRecord
    card: str
    grants_made: int
    """How many Add-RecipientPermission Exchange ran for this mailbox (1: no double change)."""
    outcome_entries: int
    revoke: ChangeRecord | None = None
    revoked_late_s: float | None = None


@dataclass
class Round:
    backend: str
    outcomes: list[Outcome] = field(default_factory=list)
    chain_ok: bool = False
    seconds: float = 0.0
    escalated: bool = False
    reconciled: int = 0
    """Changes the restarted bot finished (all of them, if the kill landed where it should)."""

    def survived(self, outcome: Outcome) -> bool:
        done = outcome.change.state is ChangeState.VERIFIED and "read back from Exchange" in outcome.card
        revoked = not outcome.timed or (outcome.revoke is not None and outcome.revoke.state is ChangeState.VERIFIED)
        return done and revoked and outcome.grants_made == 1 and outcome.outcome_entries == 1 and self.chain_ok


def _hold(sandbox: Sandbox, step: str, mailbox: str) -> Hold:
    faults = sandbox.faults
    if step == "exchange":
        return faults.hold("exchange", "Add-RecipientPermission", mailbox)
    if step == "applied":
        return faults.hold("exchange", "Add-RecipientPermission", mailbox, stage="response")
    if step == "read-back":  # the first read is the check before the change; the second reads it back
        return faults.hold("exchange", "Get-RecipientPermission", mailbox, skip=1)
    return faults.hold("slack", "chat.update", mailbox, ":white_check_mark:")


async def request_and_approve(
    slack: SlackClient,
    workspace: SlackWorkspace,
    mailbox: str,
    duration: str | None = None,
    store_url: str | None = None,
) -> SlackMessage:
    """Hannah asks for bob@ to send as ``mailbox``; Ivan (IT) approves the card. Returns the card."""
    text = f"grant {TRUSTEE} send-as {mailbox}" + (f" for {duration}" if duration else "")
    await ask_and_confirm(slack, workspace, HANNAH, text)
    card = await card_of(workspace, mailbox)
    for _ in range(3):  # as a person would: if the bot could not take the click (Slack slow to answer), click again
        click = await slack.click(IVAN, card, "approve_request")
        assert click.status == 200, (click.status, click.error, click.body)
        if store_url is None or await _approved(store_url, mailbox):
            break
    return card


async def _approved(store_url: str, mailbox: str) -> bool:
    async with await Store.open(store_url, migrate=False) as store:

        async def decided() -> bool | None:
            return True if any(c.mailbox == mailbox for c in await store.recent_changes()) else None

        try:
            return await poll(decided, WITHIN / 3, f"the approval of the grant on {mailbox}")
        except AssertionError:
            return False


async def card_of(workspace: SlackWorkspace, mailbox: str) -> SlackMessage:
    def find() -> SlackMessage | None:
        return next((m for m in workspace.messages(APPROVALS) if f"*{mailbox}*" in m.all_text()), None)

    return await workspace.wait_for(find, timeout=WITHIN)


async def kill_round(sandbox: Sandbox, folder: Path, store_url: str, backend: str, *, timed: bool = True) -> Round:
    """One SIGKILL with a change held at every step; returns what each change ended as."""
    assert sandbox.slack is not None
    workspace, began = sandbox.slack, time.monotonic()
    plan = [(step, f"{name}@business.com", False) for step, name in PLAIN.items()]
    if timed:
        plan += [(step, f"{name}@business.com", True) for step, name in TIMED.items()]
    counters = {mailbox: sandbox.faults.hold("exchange", "Add-RecipientPermission", mailbox, stage=None)
                for _, mailbox, _ in plan}  # fmt: skip
    holds = [_hold(sandbox, step, mailbox) for step, mailbox, _ in plan]
    bot = BotProcess(sandbox, folder, store_url)
    try:
        slack = SlackClient(workspace, bot_url=await bot.start(), slack_base_url=sandbox.urls.slack)
        for _, mailbox, is_timed in plan:  # one after the other, as people click: each acknowledged in time
            await request_and_approve(slack, workspace, mailbox, "1m" if is_timed else None, store_url)
        try:
            await until(lambda: all(hold.held for hold in holds), 2 * WITHIN, "every change held at its step")
        except AssertionError as exc:
            waiting = [(hold.match, hold.arrived) for hold in holds if not hold.held]
            raise AssertionError(f"{exc}; not held: {waiting}; log: {bot.log.read_text()[-3000:]}") from None
        await bot.kill()
        sandbox.faults.release_holds()
        await bot.start()
        report = Round(backend)
        async with await Store.open(store_url) as store:
            try:
                report.outcomes = [await settled(store, workspace, counters, step, mb, t) for step, mb, t in plan]
            except AssertionError as exc:
                changes = [(c.id, c.mailbox, c.state, c.detail) for c in await store.recent_changes()]
                raise AssertionError(f"{exc}; changes: {changes}; log: {bot.log.read_text()[-3000:]}") from None
            if timed:
                report.escalated = await _expiry_with_exchange_down(sandbox, store, workspace, report)
            report.chain_ok = (await store.verify_audit_chain()).ok
            restarted = f":{bot.pids[-1]}"
            report.reconciled = sum(1 for o in report.outcomes if (o.change.claimed_by or "").endswith(restarted))
    finally:
        await bot.stop()
        sandbox.faults.release_holds()
    report.seconds = time.monotonic() - began
    return report


async def settled(
    store: Store, workspace: SlackWorkspace, counters: dict[str, Hold], step: str, mailbox: str, timed: bool
) -> Outcome:
    async def final() -> ChangeRecord | None:
        change = next((c for c in await store.recent_changes() if c.mailbox == mailbox and c.parent_id is None), None)
        return change if change is not None and change.state.final and change.shown == change.state else None

    change = await poll(final, WITHIN, f"the grant on {mailbox} (killed at {step}) settled and shown")
    card = (await card_of(workspace, mailbox)).all_text()
    assert change.request_id is not None
    entries = [e for e in await store.audit_entries(limit=500, request_id=change.request_id) if e.action == "grant"]
    return Outcome(step, mailbox, timed, change, card, counters[mailbox].handled, len(entries))


async def _expiry_with_exchange_down(sandbox: Sandbox, store: Store, workspace: SlackWorkspace, report: Round) -> bool:
    """Exchange answers 503 when the time limits run out: revocations are retried, escalated, then done."""
    timed = [outcome for outcome in report.outcomes if outcome.timed]
    sandbox.faults.set("exchange", error_rate=1.0, retry_after_s=0)

    async def failing() -> bool | None:
        revokes = [await store.time_limit_of(outcome.change.id) for outcome in timed]
        return True if all(r is not None and r.attempts >= 2 and not r.state.final for r in revokes) else None

    await poll(failing, 120, "every revocation failed twice while Exchange is down")

    def escalations() -> list[SlackMessage] | None:
        found = [m for m in workspace.messages(APPROVALS) if "removing it has failed" in m.text]
        return found if len(found) >= len(timed) else None

    escalated = await workspace.wait_for(escalations, timeout=WITHIN)
    sandbox.faults.reset("exchange")
    for outcome in timed:

        async def revoked(change_id: int = outcome.change.id) -> ChangeRecord | None:
            revoke = await store.time_limit_of(change_id)
            return revoke if revoke is not None and revoke.state.final else None

        outcome.revoke = await poll(revoked, WITHIN, f"the time limit on {outcome.mailbox} revoked")
        assert outcome.revoke.finished_at is not None and outcome.revoke.expires_at is not None
        outcome.revoked_late_s = (outcome.revoke.finished_at - outcome.revoke.expires_at).total_seconds()
        assert sandbox.tenant.grant_record("SendAs", outcome.mailbox, TRUSTEE) is None
    return len(escalated) == len(timed)

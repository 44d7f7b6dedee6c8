"""The audit log: appends from several stores and processes, tamper detection, the two-phase ``audited``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from bot.store import AuditResult, Store, StoreError
from bot.store.chain import GENESIS_HASH, canonical_json, entry_hash, hashed_fields
from tests.bot.store.support import START, Database, FakeClock, run_together

SUBJECT = {"right": "SendAs", "mailbox": "billing@contoso.com", "trustee": "alice@contoso.com"}


async def _append(store: Store, count: int, actor: str = "U_IT") -> None:
    for number in range(count):
        await store.append_audit(actor, "grant", {**SUBJECT, "n": number}, "ok", request_id=number)


async def test_entries_are_chained(store: Store, clock: FakeClock) -> None:
    first = await store.append_audit("U_IT", "grant.started", SUBJECT, "started", approved_by="U_BOSS", request_id=7)
    clock.advance(seconds=2)
    second = await store.append_audit("U_IT", "grant", SUBJECT, "ok", request_id=7, detail="read back")
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.recorded_at == START
    assert second.recorded_at == START + timedelta(seconds=2)
    assert await store.audit_entries() == [first, second]
    report = await store.verify_audit_chain()
    assert (report.ok, report.checked, report.head_seq, report.head_hash) == (True, 2, 2, second.hash)


async def test_an_empty_log_verifies(store: Store) -> None:
    report = await store.verify_audit_chain()
    assert (report.ok, report.checked, report.head_seq, report.head_hash) == (True, 0, 0, GENESIS_HASH)


async def test_the_chain_head_names_the_last_entry(store: Store) -> None:
    empty = await store.chain_head()
    assert (empty.seq, empty.hash, str(empty)) == (0, GENESIS_HASH, f"0:{GENESIS_HASH}")
    first = await store.append_audit("U1", "grant.requested", {"mailbox": "a@contoso.com"}, "ok")
    second = await store.append_audit("U2", "grant.requested", {"mailbox": "b@contoso.com"}, "ok")
    head = await store.chain_head()
    assert (head.seq, head.hash) == (2, second.hash)
    assert await store.audit_entry_at(1) == first
    assert await store.audit_entry_with_hash(second.hash) == second
    assert await store.audit_entry_at(3) is None
    assert await store.audit_entry_with_hash(GENESIS_HASH) is None


async def test_entries_can_be_filtered(store: Store, clock: FakeClock) -> None:
    await _append(store, 3)
    clock.advance(hours=1)
    await _append(store, 3)
    assert [entry.seq for entry in await store.audit_entries(limit=2)] == [5, 6]
    assert [entry.seq for entry in await store.audit_entries(since=START + timedelta(minutes=30))] == [4, 5, 6]
    assert [entry.seq for entry in await store.audit_entries(request_id=1)] == [2, 5]


async def test_subject_must_be_json(store: Store) -> None:
    with pytest.raises(TypeError):
        await store.append_audit("U_IT", "grant", {"when": object()}, "ok")
    assert await store.audit_entries() == []


async def test_two_stores_appending_at_once_never_fork_the_chain(
    database: Database, make_store: Callable[..., Awaitable[Store]]
) -> None:
    first, second = await make_store(), await make_store()
    await asyncio.gather(_append(first, 50, "U_ONE"), _append(second, 50, "U_TWO"))
    report = await first.verify_audit_chain()
    assert (report.ok, report.checked, report.head_seq) == (True, 100, 100)
    rows = await database.rows("SELECT seq, actor FROM audit_log ORDER BY seq")
    assert [seq for seq, _ in rows] == list(range(1, 101))
    assert sorted(actor for _, actor in rows) == ["U_ONE"] * 50 + ["U_TWO"] * 50


APPENDER = """
import asyncio, sys
from bot.store import Store

async def main(url: str, name: str) -> None:
    async with Store(url) as store:
        await store.audit_entries(limit=1)  # connected
        print("ready", flush=True)
        sys.stdin.readline()
        for number in range(50):
            await store.append_audit(name, "grant", {"n": number}, "ok")

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_two_processes_appending_at_once_never_fork_the_chain(database: Database, store: Store) -> None:
    await run_together(APPENDER, [database.url, "U_ONE"], [database.url, "U_TWO"])
    report = await store.verify_audit_chain()
    assert (report.ok, report.checked) == (True, 100)
    actors = [actor for (actor,) in await database.rows("SELECT actor FROM audit_log ORDER BY seq")]
    assert sorted(actors) == ["U_ONE"] * 50 + ["U_TWO"] * 50


async def _raw_chain(database: Database, count: int) -> None:
    """Write ``count`` valid entries straight into the tables (much faster than one append each)."""
    rows, prev_hash = [], GENESIS_HASH
    # SQLite stores naive UTC text, PostgreSQL a timestamptz: what the store's UTCDateTime binds.
    recorded_at = START if database.backend == "postgres" else START.strftime("%Y-%m-%d %H:%M:%S.%f")
    for seq in range(1, count + 1):
        fields = hashed_fields(
            seq=seq,
            recorded_at=START,
            actor="U_IT",
            action="grant",
            subject=SUBJECT,
            result="ok",
            approved_by=None,
            request_id=None,
            detail=None,
        )
        digest = entry_hash(prev_hash, fields)
        rows.append(
            {"seq": seq, "at": recorded_at, "subject": canonical_json(SUBJECT), "prev": prev_hash, "hash": digest}
        )
        prev_hash = digest
    await database.execute_many(
        "INSERT INTO audit_log (seq, recorded_at, actor, action, subject, result, prev_hash, hash) "
        "VALUES (:seq, :at, 'U_IT', 'grant', :subject, 'ok', :prev, :hash)",
        rows,
    )
    await database.execute("UPDATE audit_chain_head SET seq = :seq, hash = :hash", seq=count, hash=prev_hash)


TAMPERING = {
    "edited actor": (["UPDATE audit_log SET actor = 'U_MALLORY' WHERE seq = 4"], 4, "edited"),
    "edited subject": (
        ["UPDATE audit_log SET subject = replace(subject, 'alice', 'mallory') WHERE seq = 4"],
        4,
        "edited",
    ),
    "edited result": (["UPDATE audit_log SET result = 'failed' WHERE seq = 7"], 7, "edited"),
    "edited hash": (["UPDATE audit_log SET hash = 'deadbeef' || substr(hash, 9) WHERE seq = 5"], 5, "edited"),
    "deleted": (["DELETE FROM audit_log WHERE seq = 6"], 6, "deleted"),
    "deleted first": (["DELETE FROM audit_log WHERE seq = 1"], 1, "deleted"),
    "deleted last": (["DELETE FROM audit_log WHERE seq = 10"], 10, "cut short"),
    "swapped": (
        [
            "UPDATE audit_log SET seq = -3 WHERE seq = 3",
            "UPDATE audit_log SET seq = 3 WHERE seq = 7",
            "UPDATE audit_log SET seq = 7 WHERE seq = -3",
        ],
        3,
        "reordered",
    ),
    "renumbered after a deletion": (
        [
            "DELETE FROM audit_log WHERE seq = 6",
            "UPDATE audit_log SET seq = -seq WHERE seq > 6",
            "UPDATE audit_log SET seq = -seq - 1 WHERE seq < 0",
        ],
        6,
        "reordered",
    ),
}


@pytest.mark.parametrize("tampering", TAMPERING, ids=list(TAMPERING))
async def test_tampering_is_detected_at_the_right_entry(database: Database, store: Store, tampering: str) -> None:
    await _append(store, 10)
    assert (await store.verify_audit_chain()).ok
    statements, bad_seq, problem = TAMPERING[tampering]
    for statement in statements:
        await database.execute(statement)
    report = await store.verify_audit_chain()
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert problem in (report.problem or "")


async def test_a_row_forged_beyond_the_head_blocks_appends_loudly(database: Database, store: Store) -> None:
    await _append(store, 2)
    await database.execute(
        "INSERT INTO audit_log (seq, recorded_at, actor, action, subject, result, prev_hash, hash) "
        "SELECT 3, recorded_at, 'U_MALLORY', action, subject, result, hash, 'forged' FROM audit_log WHERE seq = 2"
    )
    with pytest.raises(StoreError, match="could not append to the audit log"):
        await store.append_audit("U_IT", "grant", SUBJECT, "ok")


async def test_a_rewritten_entry_with_a_recomputed_hash_breaks_the_next_link(database: Database, store: Store) -> None:
    await _append(store, 6)
    entry = (await store.audit_entries())[2]
    forged = hashed_fields(
        seq=entry.seq,
        recorded_at=entry.recorded_at,
        actor="U_MALLORY",
        action=entry.action,
        subject=entry.subject,
        result=entry.result,
        approved_by=entry.approved_by,
        request_id=entry.request_id,
        detail=entry.detail,
    )
    await database.execute(
        "UPDATE audit_log SET actor = 'U_MALLORY', hash = :hash WHERE seq = 3",
        hash=entry_hash(entry.prev_hash, forged),
    )
    report = await store.verify_audit_chain()
    assert (report.ok, report.first_bad_seq) == (False, 4)


async def test_long_chains_are_verified_page_by_page(database: Database, store: Store) -> None:
    await _raw_chain(database, 2100)
    report = await store.verify_audit_chain()
    assert (report.ok, report.checked, report.head_seq) == (True, 2100, 2100)
    await database.execute("UPDATE audit_log SET detail = 'x' WHERE seq = 1500")
    report = await store.verify_audit_chain()
    assert (report.ok, report.first_bad_seq) == (False, 1500)


async def test_audited_writes_started_then_outcome(store: Store) -> None:
    ran = False
    async with store.audited("U_IT", "grant", SUBJECT, approved_by="U_BOSS", request_id=3) as record:
        assert [entry.action for entry in await store.audit_entries()] == ["grant.started"]
        ran = True
    assert ran
    started, outcome = await store.audit_entries()
    assert (started.action, started.result, started.approved_by, started.request_id) == (
        "grant.started",
        AuditResult.STARTED,
        "U_BOSS",
        3,
    )
    assert (outcome.action, outcome.result, outcome.subject) == ("grant", AuditResult.OK, SUBJECT)
    assert record.started == started
    assert record.outcome == outcome


async def test_audited_records_the_result_the_body_sets(store: Store) -> None:
    async with store.audited("U_IT", "revoke", SUBJECT) as record:
        record.result = "not_held"
        record.detail = "the trustee did not hold SendAs"
    outcome = (await store.audit_entries())[-1]
    assert (outcome.result, outcome.detail) == ("not_held", "the trustee did not hold SendAs")


async def test_audited_records_a_failure_and_reraises_it(make_store: Callable[..., Awaitable[Store]]) -> None:
    store = await make_store(secrets=["s3cret-client-value"])
    with pytest.raises(RuntimeError, match="Exchange said no"):
        async with store.audited("U_IT", "grant", SUBJECT):
            raise RuntimeError("Exchange said no (client_secret=s3cret-client-value)")
    started, outcome = await store.audit_entries()
    assert started.result == AuditResult.STARTED
    assert (outcome.action, outcome.result) == ("grant", AuditResult.FAILED)
    assert outcome.detail is not None
    assert outcome.detail.startswith("RuntimeError: Exchange said no")
    assert "s3cret-client-value" not in outcome.detail
    assert (await store.verify_audit_chain()).ok


async def test_nothing_runs_when_the_log_cannot_be_written(database: Database, store: Store) -> None:
    await _append(store, 1)
    read_only = Store(database.read_only_url)
    ran = False
    try:
        assert len(await read_only.audit_entries()) == 1  # it can read …
        with pytest.raises(StoreError, match="could not append to the audit log"):
            async with read_only.audited("U_IT", "grant", SUBJECT):
                ran = True  # … but must not get here
    finally:
        await read_only.close()
    assert not ran
    assert len(await store.audit_entries()) == 1


async def test_nothing_runs_when_the_schema_is_gone(database: Database, store: Store) -> None:
    await database.execute("DROP TABLE audit_log")
    ran = False
    with pytest.raises(StoreError):
        async with store.audited("U_IT", "grant", SUBJECT):
            ran = True
    assert not ran


async def test_nothing_runs_on_a_closed_store(make_store: Callable[..., Awaitable[Store]]) -> None:
    store = await make_store()
    await store.close()
    ran = False
    with pytest.raises(StoreError, match="closed"):
        async with store.audited("U_IT", "grant", SUBJECT):
            ran = True
    assert not ran


async def test_an_outcome_that_cannot_be_written_is_reported(database: Database, store: Store) -> None:
    with pytest.raises(StoreError, match=r"grant ran \(audit entry 1\) but its outcome could not be written"):
        async with store.audited("U_IT", "grant", SUBJECT):
            await database.execute("ALTER TABLE audit_log RENAME TO audit_log_gone")


async def test_a_failure_whose_outcome_cannot_be_written_keeps_its_own_exception(
    database: Database, store: Store
) -> None:
    async def failing_grant() -> None:
        async with store.audited("U_IT", "grant", SUBJECT):
            await database.execute("ALTER TABLE audit_log RENAME TO audit_log_gone")
            raise RuntimeError("Exchange said no")

    with pytest.raises(RuntimeError, match="Exchange said no") as caught:
        await failing_grant()
    assert any("could not be written to the audit log" in note for note in caught.value.__notes__)

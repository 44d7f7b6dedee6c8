"""The audit log anchored in Slack: a scheduled audit's post carries the chain head, and `emaildoctor log verify
--head` with it catches an entry rewritten in the store with the whole chain after it recomputed (as someone with
write access to the database would), which the chain alone cannot."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

from bot.scheduler import Scheduler
from bot.store import Store
from bot.store.chain import entry_hash, hashed_fields
from plugin.cli import main
from sandbox.testing import SandboxFactory
from tests.bot.e2e.conftest import AUDIT, start_world
from tests.bot.store.support import Database

EVERY_MINUTE = {"EMAILDOCTOR_SLACK__AUDIT_CRON": "* * * * *"}
HEAD = re.compile(r"`([0-9]+:[0-9a-f]{64})`")


async def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = await asyncio.to_thread(main, list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


async def _rewrite(store: Store, database: Database, seq: int) -> None:
    """Change entry ``seq``'s actor and recompute every hash after it, and the chain head, with direct SQL."""
    entries = [e for e in await store.audit_entries(limit=10_000) if e.seq >= seq]
    prev = entries[0].prev_hash
    for entry in entries:
        actor = "U0SOMEONEELSE" if entry.seq == seq else entry.actor
        fields = hashed_fields(
            seq=entry.seq,
            recorded_at=entry.recorded_at,
            actor=actor,
            action=entry.action,
            subject=entry.subject,
            result=entry.result,
            approved_by=entry.approved_by,
            request_id=entry.request_id,
            detail=entry.detail,
        )
        digest = entry_hash(prev, fields)
        await database.execute(
            "UPDATE audit_log SET actor = :actor, prev_hash = :prev, hash = :hash WHERE seq = :seq",
            actor=actor,
            prev=prev,
            hash=digest,
            seq=entry.seq,
        )
        prev = digest
    await database.execute("UPDATE audit_chain_head SET hash = :hash WHERE id = 1", hash=prev)


async def test_a_rewritten_store_is_caught_with_the_head_posted_to_slack(
    sandbox_factory: SandboxFactory, tmp_path: Path, database: Database
) -> None:
    async with (
        sandbox_factory(propagation_delay_seconds=0) as sandbox,
        start_world(sandbox, tmp_path, database.url, extra=EVERY_MINUTE) as world,
    ):
        env_file = str(tmp_path / "replica-1.env")
        store = world.ctx.store
        for n in range(3):  # the log before the audit: what the rewrite goes after
            await store.append_audit(f"U0USER{n}", "grant.requested", {"mailbox": f"m{n}@business.com"}, "ok")
        started = world.clock.now()
        world.clock.advance(61)
        await Scheduler(world.ctx, started_at=started).tick()
        post = await world.top(AUDIT, "Audit log head")
        match = HEAD.search(post.all_text())
        assert match is not None, post.all_text()
        posted = match.group(1)
        seq = int(posted.split(":")[0])
        assert posted == str(await store.chain_head())
        await store.append_audit("U0LATER", "grant.requested", {"mailbox": "later@business.com"}, "ok")

        status, out, err = await _cli("--env-file", env_file, "log", "head")
        assert (status, err) == (0, "")
        assert out.strip() == str(await store.chain_head()) and out.startswith(f"{seq + 1}:")
        status, out, err = await _cli("--env-file", env_file, "log", "verify", "--head", posted)
        assert status == 0, err
        assert f"entry {seq} matches the head {posted}" in out

        await _rewrite(store, database, 2)
        assert (await store.verify_audit_chain()).ok  # the chain alone: consistent after the recompute
        status, out, err = await _cli("--env-file", env_file, "log", "verify")
        assert status == 0, err
        status, out, err = await _cli("--env-file", env_file, "log", "verify", "--head", posted)
        assert status == 1, (out, err)
        assert f"first bad entry {seq}: it does not match the head {posted}" in err
        assert "was rewritten and the chain after it recomputed" in err and "Traceback" not in err

        # An earlier head that still matches narrows it down.
        first = await store.audit_entry_at(1)
        assert first is not None
        status, out, err = await _cli(
            "--env-file", env_file, "log", "verify", "--head", f"1:{first.hash}", "--head", posted
        )
        assert status == 1 and f"an entry after 1 (which matches an earlier head) and up to {seq}" in err

        status, out, err = await _cli("--env-file", env_file, "log", "verify", "--head", "12:not-a-hash")
        assert status == 2 and "is not a chain head" in err

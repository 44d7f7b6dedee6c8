"""Kill rounds: SIGKILL the real `emaildoctor bot` with a change held at every step, restart, count outcomes.

    .venv/bin/python bench/kill_rounds.py --rounds 5               # plain grants only: about 15 s a round
    .venv/bin/python bench/kill_rounds.py --rounds 2 --timed        # and 1-minute grants: about 80 s a round

Each round runs on SQLite and on PostgreSQL at once (``EMAILDOCTOR_TEST_POSTGRES_URL``, default
``postgresql://root@127.0.0.1:5432/test``, a fresh schema per round), each against its own sandbox: see
``tests/bot/e2e/crashes.py`` for the steps. A change *survives* when it ends verified, read back, shown on its
card, with exactly one outcome in the audit log, Exchange ran its grant once, the hash chain is intact, and (for a
time-bound grant) its time limit was revoked, through an Exchange outage at the moment it ran out.
Benchmarks are not tests: this prints what happened and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.faults import FaultBook  # noqa: E402 - after the path is set
from sandbox.runtime import Sandbox  # noqa: E402
from sandbox.testing import manual_clock  # noqa: E402
from tests.bot.conftest import _postgres, _sqlite  # noqa: E402
from tests.bot.e2e.crashes import Round, kill_round  # noqa: E402


async def one(backend: str, folder: Path, timed: bool) -> Round:
    database = _postgres(f"bench-{backend}") if backend == "postgres" else _sqlite(folder)
    async with (
        database as db,
        Sandbox.running(
            workdir=folder / "sandbox", clock=manual_clock(), faults=FaultBook(), propagation_delay_seconds=0
        ) as sandbox,
    ):
        return await kill_round(sandbox, folder, db.url, backend, timed=timed)


async def main(rounds: int, timed: bool) -> None:
    survived: Counter[tuple[str, str, bool]] = Counter()
    tried: Counter[tuple[str, str, bool]] = Counter()
    reconciled = escalated = 0
    late: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        for number in range(rounds):
            folders = {backend: Path(scratch) / f"{number}-{backend}" for backend in ("sqlite", "postgres")}
            for folder in folders.values():
                folder.mkdir()
            results = await asyncio.gather(
                *(one(backend, folder, timed) for backend, folder in folders.items()),
                return_exceptions=True,
            )
            for backend, result in zip(("sqlite", "postgres"), results, strict=True):
                if isinstance(result, BaseException):
                    print(f"round {number + 1} {backend}: did not finish: {result!r}")
                    continue
                reconciled += result.reconciled
                escalated += result.escalated
                for outcome in result.outcomes:
                    key = (backend, outcome.step, outcome.timed)
                    tried[key] += 1
                    survived[key] += result.survived(outcome)
                    if outcome.revoked_late_s is not None:
                        late.append(outcome.revoked_late_s)
                print(f"round {number + 1} {backend}: {result.seconds:.0f} s, reconciled {result.reconciled}")
    print("\n| backend | step | time-bound | survived |\n|---|---|---|---|")
    for key in sorted(tried):
        backend, step, is_timed = key
        print(f"| {backend} | {step} | {'yes' if is_timed else 'no'} | {survived[key]}/{tried[key]} |")
    print(f"\nchanges settled by the restarted bot: {reconciled}; overdue time limits escalated: {escalated} rounds")
    if late:
        print(f"time limits revoked {min(late):.1f}–{max(late):.1f} s after they ran out (Exchange down meanwhile)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timed", action="store_true", help="also 1-minute grants (waits for them to run out)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.timed))

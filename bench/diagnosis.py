"""Benchmark: one full diagnosis (``emaildoctor test alice --json``) against its critical path.

    .venv/bin/python bench/diagnosis.py                         # 300 ms per Microsoft request, 5 runs
    .venv/bin/python bench/diagnosis.py --latency-ms 300 --runs 5 --user alice --in-process

The sandbox (example tenant) runs in this process with ``--latency-ms`` injected on every Microsoft HTTP request
(sign-in, Graph, the Exchange admin API; SMTP replies are not slowed). Each run is a fresh ``emaildoctor test USER
--json`` process (cold: no token, nothing kept), or with ``--in-process`` the Doctor in this process, one
``M365Services`` for all runs (the first cold, the others with tokens and kept mailbox facts).

**Critical path** = ``t0 + rounds × latency``, where ``t0`` is the median wall time of the same command with no
latency (process start, imports, local work, the SMTP exchanges) and ``rounds`` is the longest chain of Microsoft
requests that depend on each other, from what the diagnosis needs: the sign-in (the authority's metadata, then the
token: 2 rounds, 0 when tokens are cached), then one round in which every lookup can start (the Graph searches for
the two addresses and every Exchange read, all known from the directory file), then one round per level of groups
to expand when a group holds the needed right on the From mailbox (read from the sandbox's tenant). The sandbox's
request journal gives the **observed** chain (the longest sequence of requests each starting after the previous
one ended), printed beside it to show where the rounds went.

Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.faults import FaultBook, Served  # noqa: E402
from sandbox.runtime import Sandbox  # noqa: E402

HTTP_SERVICES = ("login", "graph", "exchange")


def observed_chain(journal: list[Served]) -> list[Served]:
    """The longest chain of requests in which each started after the previous one had ended."""
    ordered = sorted(journal, key=lambda s: s.ended)
    best: list[list[Served]] = []
    for index, served in enumerate(ordered):
        before = [best[i] for i in range(index) if ordered[i].ended <= served.started]
        best.append([*max(before, key=len, default=[]), served])
    return max(best, key=len, default=[])


async def plan_levels(sandbox: Sandbox, user: str) -> tuple[int, str]:
    from plugin.directory_files import FileDirectorySource
    from plugin.resolve import resolve

    directory = await FileDirectorySource(sandbox.directory_path).load()
    plan = resolve(directory.find(user), directory, test_recipient=None)
    tenant = sandbox.tenant
    if plan.required_right is None:
        return 0, "no right needed"
    mailbox = tenant.user_by_address(plan.from_addr)
    if mailbox is None:
        return 0, "no From mailbox"
    right = {"SendAs": "SendAs", "SendOnBehalf": "SendOnBehalf", "FullAccess": "FullAccess"}[str(plan.required_right)]
    groups = [
        g.trustee.id for g in tenant.rights.held(mailbox.id) if g.trustee.kind == "group" and str(g.right) == right
    ]
    if not groups:
        return 0, f"no group holds {right} on {plan.from_addr}"
    return 1 + _nesting(tenant, groups), f"{len(groups)} group(s) hold {right} on {plan.from_addr}"


def _nesting(tenant: Any, group_ids: list[Any]) -> int:
    """Levels of groups nested below ``group_ids`` (each level is one more round of member reads)."""
    levels, seen, todo = 0, set(group_ids), list(group_ids)
    while todo:
        nested = []
        for group_id in todo:
            group = tenant.groups.get(group_id)
            for member in group.members if group is not None else ():
                if member in tenant.groups and member not in seen:
                    seen.add(member)
                    nested.append(member)
        if nested:
            levels += 1
        todo = nested
    return levels


async def run_cli(env: dict[str, str], user: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv" / "bin" / "emaildoctor"),
        "test",
        user,
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    seconds = time.monotonic() - started
    try:
        report = json.loads(out)
    except ValueError as exc:
        raise SystemExit(
            f"emaildoctor test {user} did not print JSON (exit {process.returncode}): {err.decode()}"
        ) from exc
    return seconds, report


async def run_in_process(
    sandbox: Sandbox, workdir: Path, user: str, runs: int
) -> list[tuple[float, dict[str, Any], list[Served]]]:
    from graph.services import M365Services
    from plugin.directory_files import FileDirectorySource
    from plugin.doctor import Doctor
    from plugin.settings import load_settings

    settings = load_settings(sandbox.write_env_file(workdir / ".env"))
    results = []
    async with M365Services(settings.m365) as m365:
        doctor = Doctor(
            directory=FileDirectorySource(settings.directory.path),
            settings=settings,
            environ=sandbox.settings_env(),
            m365=m365,
            secrets=list(settings.secret_values()),
        )
        for _ in range(runs):
            journal: list[Served] = []
            sandbox.faults.journal = journal
            started = time.monotonic()
            report = await doctor.diagnose(user)
            results.append((time.monotonic() - started, report.to_json(), journal))
    return results


def _summary(report: dict[str, Any]) -> str:
    diagnosis = report.get("diagnosis") or {}
    return f"ok={report.get('ok')} code={diagnosis.get('code')}"


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    faults = FaultBook()
    with tempfile.TemporaryDirectory(prefix="emaildoctor-bench-") as tmp:
        workdir = Path(tmp)
        async with Sandbox.running(workdir=workdir, faults=faults) as sandbox:
            env = {**os.environ, **sandbox.settings_env()}
            levels, why = await plan_levels(sandbox, args.user)

            async def runs(latency_ms: float, count: int) -> list[tuple[float, dict[str, Any], list[Served]]]:
                for service in HTTP_SERVICES:
                    faults.set(service, latency_ms=latency_ms)
                done: list[tuple[float, dict[str, Any], list[Served]]] = []
                if args.in_process:
                    return await run_in_process(sandbox, workdir, args.user, count)
                for _ in range(count):
                    faults.journal = []
                    seconds, report = await run_cli(env, args.user)
                    done.append((seconds, report, faults.journal))
                return done

            await runs(0, 1)  # warm the disk cache and the sandbox
            baseline = await runs(0, args.runs)
            loaded = await runs(args.latency_ms, args.runs)
    t0 = statistics.median(s for s, _, _ in baseline)
    if args.in_process:  # the first run signs in (cold); the others find the tokens and facts kept (warm)
        t0_cold, t0 = baseline[0][0], statistics.median(s for s, _, _ in baseline[1:])
    else:
        t0_cold = t0
    latency = args.latency_ms / 1000
    cold_rounds = 2 + 1 + levels
    result: dict[str, Any] = {
        "user": args.user,
        "latency_ms": args.latency_ms,
        "mode": "in-process" if args.in_process else "cli",
        "t0": t0,
        "t0_cold": t0_cold,
        "group_levels": levels,
        "groups": why,
        "runs": [],
    }
    for index, (seconds, report, journal) in enumerate(loaded):
        warm = args.in_process and index > 0
        rounds = cold_rounds - (2 if warm else 0)
        critical = (t0 if warm else t0_cold) + rounds * latency
        chain = observed_chain(journal)
        result["runs"].append(
            {
                "seconds": seconds,
                "rounds": rounds,
                "critical_path": critical,
                "ratio": seconds / critical,
                "added_by_latency": seconds - (t0 if warm else t0_cold),
                "needed_latency": rounds * latency,
                "requests": len(journal),
                "observed_chain": [f"{s.service}:{s.what.rsplit('/', 1)[-1]}" for s in chain],
                "summary": _summary(report),
            }
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--user", default="alice")
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--in-process", action="store_true", help="the Doctor in this process, one M365Services")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args))
    print(
        f"{result['mode']}: `test {result['user']}`, {result['latency_ms']:g} ms per Microsoft request; "
        f"t0 (no latency, median) {result['t0']:.2f} s (cold {result['t0_cold']:.2f} s); group levels {result['group_levels']} ({result['groups']})"
    )
    for run in result["runs"]:
        chain = (
            f"; observed chain {len(run['observed_chain'])}: {' → '.join(run['observed_chain'])}"
            if run["observed_chain"]
            else ""
        )
        print(
            f"  {run['seconds']:.2f} s, critical path {run['critical_path']:.2f} s ({run['rounds']} rounds) = "
            f"{run['ratio']:.2f}×; latency added {run['added_by_latency']:.2f} s for {run['needed_latency']:.2f} s "
            f"needed; {run['requests'] or '?'} requests, {run['summary']}{chain}"
        )
    ratios = [run["ratio"] for run in result["runs"]]
    seconds = [run["seconds"] for run in result["runs"]]
    print(f"median: {statistics.median(seconds):.2f} s = {statistics.median(ratios):.2f}× the critical path")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: the tenant audit next to a per-mailbox loop, against a synthetic tenant in the sandbox.

    .venv/bin/python bench/audit.py                          # 1,000 and 10,000 mailboxes, the loop in full
    .venv/bin/python bench/audit.py --sizes 1000 --loop-sample 500 --write docs/benchmarks.md

For each size a sandbox runs in a **separate process** (so the client's memory and CPU are measured alone) with
``sandbox.bulk.build_large_tenant(size)``, 50 ms latency injected on every Exchange and Graph request and the
sandbox's Exchange throttling at its defaults (10 requests in flight per tenant, a 30,000-request token bucket
refilled over 5 minutes, ``$batch`` of at most 10). The client is the product as ``graph.services.M365Services``
assembles it from settings: msal sign-in, msgraph-sdk for the directory, httpx for the Exchange admin API.

* **audit**: ``TenantAudit.run`` (snapshot, diff, findings), timed, with the example directory plus one employee
  per mailbox that a group (nested groups included) holds a right on, signing in as admin@ (a member of some of
  those groups), so the predictions expand groups at scale; its memory is
  measured in a second, identical run under ``tracemalloc`` (peak of Python allocations in the client), because
  tracing slows the run down.
* **loop**: what the popular PowerShell report scripts do: list the mailboxes, then for each one, sequentially,
  ``Get-RecipientPermission -Identity``, ``Get-MailboxPermission -Identity`` and ``Get-Mailbox -Identity``.
  ``--loop-sample N`` runs it on the first N mailboxes only and extrapolates linearly (said so in the output).

Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from graph.audit import AuditProgress, TenantAudit  # noqa: E402
from graph.audit_findings import FindingKind  # noqa: E402
from graph.exchange import ExchangeAdmin  # noqa: E402
from graph.services import M365Services  # noqa: E402
from plugin.directory import Directory, raw_directory  # noqa: E402
from plugin.settings import load_settings  # noqa: E402


# --- the sandbox, in its own process -----------------------------------------------------------------------------
def _serve_sandbox(size: int, latency_ms: float, behaviour: dict[str, Any], conn: Connection) -> None:
    asyncio.run(_sandbox_main(size, latency_ms, behaviour, conn))


async def _sandbox_main(size: int, latency_ms: float, behaviour: dict[str, Any], conn: Connection) -> None:
    from sandbox.bulk import build_large_tenant
    from sandbox.faults import FaultBook
    from sandbox.runtime import Sandbox

    tenant = build_large_tenant(size, seed=1)
    tenant.behaviour = tenant.behaviour.changed(**behaviour)
    faults = FaultBook()
    for service in ("exchange", "graph"):
        faults.set(service, latency_ms=latency_ms)
    with tempfile.TemporaryDirectory(prefix="emaildoctor-bench-") as workdir:
        async with Sandbox.running(tenant, workdir=Path(workdir), faults=faults) as sandbox:
            group_held = sorted(
                {tenant.users[g.mailbox_id].upn for g in tenant.rights.records() if g.trustee.kind == "group"}
            )
            conn.send(
                {
                    "env": sandbox.settings_env(),
                    "mailboxes": len(tenant.mailboxes()),
                    "groups": len(tenant.groups),
                    "group_held": group_held,
                }
            )
            await asyncio.to_thread(conn.recv)  # until the bench says stop


@dataclass
class Run:
    what: str
    mailboxes: int
    calls: int
    seconds: float
    batch_items: int = 0
    retries: int = 0
    retried_items: int = 0
    """Requests and ``$batch`` items sent again after a 429 (or another retryable answer)."""
    invoke_requests: int = 0
    bound_s: float | None = None
    """requests × latency / in-flight limit: the time the requests take at full concurrency, no budget."""
    floor_s: float | None = None
    """(budget cost − bucket size) / refill rate: the least time the service's request budget allows."""
    budget_waited_s: float = 0.0
    peak_mib: float | None = None
    sampled: int | None = None
    phases: dict[str, float] = field(default_factory=dict)
    grants: int | None = None
    groups: int | None = None
    employees: int | None = None
    groups_read: int | None = None
    predicted: int | None = None


# --- the two ways of reading every right ---------------------------------------------------------------------------
def directory_with(mailboxes: list[str]) -> Directory:
    """The example directory plus one employee per mailbox that a group holds a right on, each sending through the
    system's admin@ account: the predictions then have to expand (nested) groups for every one of them."""
    data = yaml.safe_load((ROOT / "sandbox" / "examples" / "directory.yaml").read_text(encoding="utf-8"))
    data["employees"] += [{"name": f"Employee {i}", "login": f"e{i:05d}", "email": m} for i, m in enumerate(mailboxes)]
    return raw_directory(data, "sandbox/examples/directory.yaml + bulk employees")


async def run_audit(services: M365Services, traced: bool, group_held: list[str]) -> Run:
    waited_before = services.exchange.budget.waited
    directory = directory_with(group_held)
    marks: dict[str, float] = {}
    started = time.monotonic()

    def progress(event: AuditProgress) -> None:
        marks.setdefault(event.phase, time.monotonic() - started)

    audit = TenantAudit(services.exchange, services.directory, progress=progress)
    before = _calls(services.exchange)
    if traced:
        tracemalloc.start()
    try:
        report = await audit.run(directory=directory)
        peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
    finally:
        if traced:
            tracemalloc.stop()
    seconds = time.monotonic() - started
    after = _calls(services.exchange)
    order = [*marks, "end"]
    ends = [*list(marks.values())[1:], seconds]
    return Run(
        what="audit",
        mailboxes=report.snapshot.mailboxes,
        calls=after[0] - before[0],
        seconds=seconds,
        batch_items=after[1] - before[1],
        retries=after[2] - before[2],
        retried_items=after[3] - before[3],
        invoke_requests=(after[0] - before[0]) - (after[4] - before[4]),
        budget_waited_s=services.exchange.budget.waited - waited_before,
        peak_mib=peak,
        phases={name: round(end - marks[name], 2) for name, end in zip(order, ends, strict=False)},
        grants=len(report.snapshot.grants),
        employees=len(directory.employees),
        groups_read=audit.groups_read,
        predicted=sum(1 for f in report.findings if f.kind is FindingKind.PREDICTED_SEND_FAILURE),
    )


async def run_loop(services: M365Services, sample: int | None) -> Run:
    exchange = services.exchange
    before = _calls(exchange)
    started = time.monotonic()
    addresses: list[str] = []
    async for page in exchange.pages("Get-Mailbox", {"ResultSize": "Unlimited"}, select=("PrimarySmtpAddress",)):
        addresses.extend(str(r["PrimarySmtpAddress"]) for r in page.rows)
    listing_calls, listing_seconds = _calls(exchange)[0] - before[0], time.monotonic() - started
    chosen = addresses[:sample] if sample else addresses
    per_mailbox_started = time.monotonic()
    rows = 0
    for address in chosen:
        for cmdlet in ("Get-RecipientPermission", "Get-MailboxPermission", "Get-Mailbox"):
            rows += len((await exchange.invoke(cmdlet, {"Identity": address}, anchor=address)).rows)
    per_mailbox = time.monotonic() - per_mailbox_started
    calls = _calls(exchange)[0] - before[0]
    if sample and sample < len(addresses):
        factor = len(addresses) / len(chosen)
        return Run(
            what="loop (extrapolated)",
            mailboxes=len(addresses),
            calls=listing_calls + round((calls - listing_calls) * factor),
            seconds=listing_seconds + per_mailbox * factor,
            retries=_calls(exchange)[2] - before[2],
            sampled=len(chosen),
        )
    return Run(
        what="loop",
        mailboxes=len(addresses),
        calls=calls,
        seconds=time.monotonic() - started,
        retries=_calls(exchange)[2] - before[2],
    )


def _calls(exchange: ExchangeAdmin) -> tuple[int, int, int, int, int]:
    """(requests, batch items, retries, retried items, batch requests)."""
    stats = exchange.stats
    return stats.requests, stats.batch_items, stats.retries, stats.throttled, stats.batch_requests


def add_bounds(run: Run, latency_ms: float, in_flight: int, behaviour: dict[str, Any]) -> None:
    """The requests × latency / in-flight bound and the request budget's floor (sandbox defaults unless changed)."""
    from sandbox.settings import Behaviour

    limits = Behaviour().changed(**behaviour)
    run.bound_s = run.calls * latency_ms / 1000 / in_flight
    cost = run.batch_items + run.invoke_requests
    rate = limits.exchange_rate_limit / limits.exchange_rate_window_seconds
    run.floor_s = max(0.0, (cost - limits.exchange_rate_limit) / rate)


async def bench_size(
    size: int,
    latency_ms: float,
    loop_sample: int | None,
    skip_loop: bool,
    behaviour: dict[str, Any],
    trace_timed: bool = False,
) -> list[Run]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_sandbox, args=(size, latency_ms, behaviour, child), daemon=True)
    process.start()
    try:
        started = await asyncio.to_thread(parent.recv)
        env = started["env"]
        settings = load_settings(overrides=_settings_overrides(env))
        results: list[Run] = []
        async with M365Services(settings.m365) as services:
            audit = await run_audit(services, traced=trace_timed, group_held=started["group_held"])
            audit.groups = started["groups"]
            add_bounds(audit, latency_ms, services.exchange.max_in_flight, behaviour)
            _say(audit)
            results.append(audit)
            if not trace_timed:
                traced = await run_audit(services, traced=True, group_held=started["group_held"])
                audit.peak_mib = traced.peak_mib
                print(f"  audit under tracemalloc: peak {traced.peak_mib:.1f} MiB", flush=True)
            if not skip_loop:
                loop = await run_loop(services, loop_sample)
                _say(loop)
                results.append(loop)
        return results
    finally:
        parent.send("stop")
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()


def _settings_overrides(env: dict[str, str]) -> dict[str, Any]:
    m365: dict[str, Any] = {
        key.removeprefix("EMAILDOCTOR_M365__").lower(): value for key, value in env.items() if "_M365__" in key
    }
    m365["instance_discovery"] = False
    m365["timeout"] = 60
    return {"m365": m365}


def _say(run: Run) -> None:
    extra = f", sampled {run.sampled}" if run.sampled else ""
    phases = f", phases {run.phases}" if run.phases else ""
    if run.groups is not None:
        phases += (
            f", {run.groups} groups in the tenant, {run.groups_read} read for {run.employees} employees' "
            f"predictions ({run.predicted} predicted failures)"
        )
    bounds = ""
    if run.bound_s is not None and run.floor_s is not None:
        bounds = (
            f", bound {run.bound_s:.1f} s ({run.seconds / run.bound_s:.2f}×), budget floor {run.floor_s:.1f} s"
            + (f" ({run.seconds / run.floor_s:.2f}×)" if run.floor_s else "")
            + f", {run.retried_items} retried items of {run.batch_items + run.invoke_requests}"
            + f", waited {run.budget_waited_s:.1f} s for the budget"
        )
    print(
        f"  {run.what}: {run.mailboxes} mailboxes, {run.calls} requests, {run.seconds:.1f} s, "
        f"{run.retries} retries{extra}{bounds}{phases}",
        flush=True,
    )


# --- the report ----------------------------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def markdown(results: dict[int, list[Run]], latency_ms: float, info: dict[str, str], rss_mib: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        "## Tenant audit vs. a per-mailbox loop (`bench/audit.py`)",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, {info['os']}, run on {info['date']}.",
        "",
        f"Sandbox in a separate process, {latency_ms:g} ms latency injected on every Exchange and Graph request, the "
        "sandbox's Exchange throttling at its defaults (10 requests in flight per tenant, a 30,000-request token "
        "bucket over 5 minutes, `$batch` of at most 10). Client: `graph.services.M365Services` (msal, msgraph-sdk, "
        "httpx), exactly as `emaildoctor audit` builds it.",
        "",
        "| mailboxes | method | requests | wall time | speed-up (loop time ÷ audit time) | peak memory (client) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for runs in results.values():
        audit = next(r for r in runs if r.what == "audit")
        loop = next((r for r in runs if r.what.startswith("loop")), None)
        ratio = f"{loop.seconds / audit.seconds:.0f}× faster" if loop else "—"
        peak = f"{audit.peak_mib:.1f} MiB (tracemalloc)" if audit.peak_mib is not None else "—"
        lines.append(
            f"| {audit.mailboxes:,} | audit | {audit.calls:,} ({audit.batch_items:,} `$batch` items) | "
            f"{audit.seconds:.1f} s | {ratio} | {peak} |"
        )
        if loop:
            how = f" (measured on {loop.sampled:,}, extrapolated)" if loop.sampled else ""
            lines.append(
                f"| {loop.mailboxes:,} | per-mailbox loop{how} | {loop.calls:,} | {_duration(loop.seconds)} | | |"
            )
    lines += ["", "Audit phases (seconds from the start of each phase to the start of the next):", ""]
    for runs in results.values():
        audit = next(r for r in runs if r.what == "audit")
        lines.append(
            f"- {audit.mailboxes:,} mailboxes ({audit.grants:,} grants; {audit.groups} groups, "
            f"{audit.groups_read} of them read once each for {audit.employees:,} employees' predictions): "
            f"{audit.phases}"
        )
    lines += [
        "",
        f"Peak RSS of the client process over the whole run: {rss_mib:.0f} MiB (msal, msgraph-sdk and httpx "
        "imported; the sandbox is another process).",
        "",
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f} s"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--loop-sample", type=int, default=None, help="run the loop on N mailboxes and extrapolate")
    parser.add_argument("--no-loop", action="store_true")
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="the sandbox's per-tenant limit of requests in flight (default 10; below 8 the client gets 429s)",
    )
    parser.add_argument(
        "--trace-timed",
        action="store_true",
        help="measure memory (tracemalloc) in the timed run instead of a second run (for long, budget-bound runs)",
    )
    parser.add_argument("--write", type=Path, default=None, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = parser.parse_args(argv)
    info = machine()
    results: dict[int, list[Run]] = {}
    for size in args.sizes:
        print(f"{size} mailboxes:", flush=True)
        behaviour = {} if args.max_concurrent is None else {"exchange_max_concurrent_requests": args.max_concurrent}
        results[size] = await bench_size(
            size, args.latency_ms, args.loop_sample, args.no_loop, behaviour, args.trace_timed
        )
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this (client) process: {rss_mib:.0f} MiB", flush=True)
    report = markdown(results, args.latency_ms, info, rss_mib)
    print(report)
    if args.write:
        args.write.write_text(report, encoding="utf-8")
    if args.json:
        raw = {"machine": info, "results": {str(k): [asdict(r) for r in v] for k, v in results.items()}}
        args.json.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

"""graph.audit against the sandbox: the example tenant's grants and findings, diffs, outputs, a few thousand
synthetic mailboxes with faults, and memory that grows with the result, not the tenant."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import io
import json
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from graph.audit import AuditProgress, TenantAudit
from graph.audit_findings import AuditReport, FindingKind, Snapshot, diff, findings
from graph.audit_output import CSV_COLUMNS, audit_json, csv_rows, write_audit_csv
from graph.exchange import ExchangeAdmin
from graph.permissions import PermissionService
from graph.permissions_model import Grant, TrusteeKind
from graph.services import M365Services
from graph.users import GraphUserDirectory
from plugin.diagnosis import Right
from plugin.directory import Directory, raw_directory
from plugin.directory_files import load_directory
from plugin.errors import ConfigError
from sandbox.bulk import build_large_tenant
from sandbox.faults import FaultBook
from sandbox.rights import Trustee
from sandbox.runtime import Sandbox
from sandbox.state import Tenant, User
from sandbox.testing import SandboxFactory, manual_clock
from tests.graph.fixtures_exchange import RecordingSleep, exchange_for, record_cmdlets
from tests.graph.fixtures_m365 import graph_stack, m365_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "sandbox" / "examples"
ORPHAN = "S-1-5-21-3623811015-3361044348-30300820-1013"
SP = "143a87ab-1675-41a6-ab2c-2cd527f82665"
ADMIN, GRACE, HENRY, SALES, SUPPORT, FRANK, IVAN, OSCAR = (
    f"{n}@business.com" for n in ("admin", "grace", "henry", "sales", "support", "frank", "ivan", "oscar")
)
EXPECTED = {
    (Right.FULL_ACCESS, GRACE, ADMIN, TrusteeKind.USER),
    (Right.FULL_ACCESS, SALES, SP, TrusteeKind.APP),
    (Right.FULL_ACCESS, SUPPORT, IVAN, TrusteeKind.USER),
    (Right.FULL_ACCESS, SUPPORT, OSCAR, TrusteeKind.DISABLED),
    (Right.SEND_AS, HENRY, ADMIN, TrusteeKind.USER),
    (Right.SEND_AS, SALES, ADMIN, TrusteeKind.USER),
    (Right.SEND_AS, SALES, OSCAR, TrusteeKind.DISABLED),
    (Right.SEND_AS, SALES, ORPHAN, TrusteeKind.ORPHANED_SID),
    (Right.SEND_AS, SUPPORT, "partner@fabrikam.com", TrusteeKind.EXTERNAL),
    (Right.SEND_ON_BEHALF, FRANK, ADMIN, TrusteeKind.USER),
    (Right.SEND_AS, "kim@business.com", "Mail Senders", TrusteeKind.GROUP),  # admin@ is in it through Mail Operators
}


def rows(snapshot: Snapshot) -> set[tuple[Right, str, str, TrusteeKind]]:
    return {(g.right, g.mailbox, g.trustee, g.trustee_kind) for g in snapshot.grants}


def example_directory() -> Directory:
    return load_directory(EXAMPLES / "directory.yaml")


async def audit(sandbox: Sandbox, previous: Snapshot | None = None, **options: Any) -> tuple[AuditReport, TenantAudit]:
    """The audit as the product assembles it (graph.services): msal sign-in, msgraph-sdk's directory, httpx."""
    async with M365Services(m365_settings(sandbox), clock=sandbox.clock) as services:
        runner = TenantAudit(services.exchange, services.directory, clock=sandbox.clock, **options)
        report = await runner.run(directory=example_directory(), previous=previous)
    return report, runner


@contextlib.asynccontextmanager
async def users_for(sandbox: Sandbox, exchange: ExchangeAdmin) -> AsyncIterator[GraphUserDirectory]:
    async with graph_stack(sandbox) as (graph, _):
        yield GraphUserDirectory(graph, PermissionService(exchange).smtp_auth)


async def test_audit_of_the_example_tenant(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    progress: list[AuditProgress] = []
    report, runner = await audit(sandbox, progress=progress.append)
    assert rows(report.snapshot) == EXPECTED and len(report.snapshot.grants) == len(EXPECTED)
    assert report.snapshot.mailboxes == len(sandbox.tenant.mailboxes())
    assert report.snapshot.tenant == sandbox.tenant.id and report.snapshot.taken_at == sandbox.clock.now()
    found = {(f.kind, f.right, f.mailbox, f.trustee) for f in report.findings}
    assert found == {
        (FindingKind.DISABLED_TRUSTEE, Right.FULL_ACCESS, SUPPORT, OSCAR),
        (FindingKind.DISABLED_TRUSTEE, Right.SEND_AS, SALES, OSCAR),
        (FindingKind.ORPHANED_SID, Right.SEND_AS, SALES, ORPHAN),
        (FindingKind.EXTERNAL_TRUSTEE, Right.SEND_AS, SUPPORT, "partner@fabrikam.com"),
        (FindingKind.FULL_ACCESS_WITHOUT_SEND, Right.FULL_ACCESS, GRACE, ADMIN),
        (FindingKind.PREDICTED_SEND_FAILURE, Right.SEND_AS, "alice@business.com", ADMIN),
        (FindingKind.PREDICTED_SEND_FAILURE, Right.SEND_AS, GRACE, ADMIN),
    }  # not henry@, ivy@ (sales@), frank@ (SendOnBehalf held); ivan@'s Full Access is not needed for sending
    predicted = {f.users: f for f in report.findings if f.kind is FindingKind.PREDICTED_SEND_FAILURE}
    assert set(predicted) == {("alice",), ("grace",)}
    fix = predicted[("alice",)].fix
    assert fix is not None and fix.to_json() == {"right": "SendAs", "mailbox": "alice@business.com", "trustee": ADMIN}
    assert predicted[("grace",)].remedy == f"emaildoctor grant SendAs --mailbox {GRACE} --trustee {ADMIN}"
    # the tenant-wide queries, and only Get-MailboxPermission per mailbox
    assert [p for n, p in log.calls if n == "Get-RecipientPermission"] == [
        {"AccessRights": ["SendAs"], "ResultSize": "Unlimited"}
    ]
    assert {"Filter": "GrantSendOnBehalfTo -ne $null", "ResultSize": "Unlimited"} in [p for _, p in log.calls]
    assert log.names.count("Get-MailboxPermission") == len(sandbox.tenant.mailboxes())
    assert runner.stats is not None and runner.stats.requests < 10
    assert progress[-1].listing_complete
    done = [p for p in progress if p.phase == "full_access"][-1]
    assert done.mailboxes_done == done.mailboxes_listed == len(sandbox.tenant.mailboxes()) and done.listing_complete


async def test_a_shared_mailbox_trustee_is_not_a_disabled_account(sandbox: Sandbox) -> None:
    async with exchange_for(sandbox) as exchange:
        await PermissionService(exchange).grant(Right.FULL_ACCESS, "alice@business.com", SALES)  # sales@: shared
    report, _ = await audit(sandbox)
    [grant] = [g for g in report.snapshot.grants if g.mailbox == "alice@business.com"]
    assert grant.trustee == SALES and grant.trustee_kind is TrusteeKind.USER
    assert not [f for f in report.findings if f.trustee == SALES and f.kind is FindingKind.DISABLED_TRUSTEE]


def add_mail_users(sandbox: Sandbox) -> None:
    """Test setup: two accounts without a mailbox that hold rights (Exchange can't describe them; Graph can)."""
    tenant = sandbox.tenant
    for upn, enabled in (("contractor@business.com", False), ("consultant@business.com", True)):
        user_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, upn))
        tenant.add_user(
            User(id=user_id, upn=upn, display_name=upn, mail=upn, mailbox="none", account_enabled=enabled, name=user_id)
        )
    alice, frank = tenant.user("alice@business.com"), tenant.user(FRANK)
    contractor, consultant = tenant.user("contractor@business.com"), tenant.user("consultant@business.com")
    assert alice and frank and contractor and consultant
    tenant.rights.grant("SendAs", alice.id, Trustee("user", contractor.id), None)
    tenant.rights.grant("SendOnBehalf", frank.id, Trustee("user", consultant.id), None)  # listed by its object id


@pytest.mark.parametrize("lookup_limit", [50, 0])
async def test_trustees_without_a_mailbox_are_settled_by_the_directory(sandbox: Sandbox, lookup_limit: int) -> None:
    add_mail_users(sandbox)
    report, _ = await audit(sandbox, directory_lookup_limit=lookup_limit)  # 0: one pass over all_users
    added = rows(report.snapshot) - EXPECTED
    assert added == {
        (Right.SEND_AS, "alice@business.com", "contractor@business.com", TrusteeKind.DISABLED),
        (Right.SEND_ON_BEHALF, FRANK, "consultant@business.com", TrusteeKind.USER),
    }
    assert (FindingKind.DISABLED_TRUSTEE, "contractor@business.com") in {(f.kind, f.trustee) for f in report.findings}


async def test_predictions_match_a_directory_that_names_the_sign_in_by_its_upn(sandbox: Sandbox) -> None:
    # Test setup: a service account whose UPN differs from its primary SMTP address, holding Send As on henry@.
    service_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, "svc"))
    sandbox.tenant.add_user(
        User(id=service_id, upn="svc@businesscom.onmicrosoft.com", display_name="Mailer", mail="mailer@business.com",
             proxy_addresses=["SMTP:mailer@business.com"], name=service_id)
    )  # fmt: skip
    henry = sandbox.tenant.user(HENRY)
    assert henry is not None
    sandbox.tenant.rights.grant("SendAs", henry.id, Trustee("user", service_id), None)
    data = yaml.safe_load((EXAMPLES / "directory.yaml").read_text(encoding="utf-8"))
    data["system"]["server"]["user"] = "svc@businesscom.onmicrosoft.com"
    directory = raw_directory(data, "directory.yaml with a UPN sign-in")
    async with M365Services(m365_settings(sandbox), clock=sandbox.clock) as services:
        report = await TenantAudit(services.exchange, services.directory).run(directory=directory)
    predicted = {f.users: f for f in report.findings if f.kind is FindingKind.PREDICTED_SEND_FAILURE}
    # not henry: the grant is found under mailer@; kim: mailer@ is in no group that holds Send As on kim@
    assert set(predicted) == {("alice",), ("grace",), ("ivy",), ("kim",)}
    assert predicted[("alice",)].trustee == "mailer@business.com"


async def test_the_diff_after_a_grant_and_a_revoke(sandbox: Sandbox) -> None:
    first, _ = await audit(sandbox)
    stored = json.loads(json.dumps(first.snapshot.to_json()))
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange)
        await service.grant(Right.SEND_AS, "alice@business.com", ADMIN)
        await service.revoke(Right.SEND_AS, SALES, OSCAR)
    second, _ = await audit(sandbox, previous=Snapshot.from_json(stored))
    assert Snapshot.from_json(stored) == first.snapshot
    assert second.diff.granted == (Grant(Right.SEND_AS, "alice@business.com", ADMIN, TrusteeKind.USER),)
    assert second.diff.removed == (Grant(Right.SEND_AS, SALES, OSCAR, TrusteeKind.DISABLED),)
    predicted = {f.users for f in second.findings if f.kind is FindingKind.PREDICTED_SEND_FAILURE}
    assert predicted == {("grace",)}
    assert diff(None, second.snapshot).empty and diff(second.snapshot, second.snapshot).empty
    with pytest.raises(ConfigError):
        Snapshot.from_json({"schema": "something else"})


async def test_json_and_csv_outputs(sandbox: Sandbox) -> None:
    first, _ = await audit(sandbox)
    async with exchange_for(sandbox) as exchange:
        await PermissionService(exchange).grant(Right.SEND_AS, "alice@business.com", ADMIN)
    report, runner = await audit(sandbox, previous=first.snapshot)
    data = json.loads(json.dumps(audit_json(report, runner.stats)))
    assert set(data) == {"schema", "summary", "snapshot", "diff", "findings", "stats"}
    assert data["schema"] == "emaildoctor.audit/1" and data["snapshot"]["schema"] == "emaildoctor.audit.snapshot/1"
    assert data["summary"]["grants"] == {"SendAs": 7, "SendOnBehalf": 1, "FullAccess": 4}
    assert data["summary"]["granted"] == 1 and data["summary"]["removed"] == 0
    assert data["summary"]["findings"]["predicted_send_failure"] == 1
    assert set(data["findings"][0]) == {
        "kind", "right", "mailbox", "trustee", "trustee_kind", "detail", "users", "remedy", "fix_action"
    }  # fmt: skip
    assert set(data["stats"]) == {"requests", "batch_items", "retries", "throttled", "seconds"}
    stream = io.StringIO()
    count = write_audit_csv(report, stream)
    parsed = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert stream.getvalue().splitlines()[0] == ",".join(CSV_COLUMNS) and len(parsed) == count == 13
    by = {(r["status"], r["right"], r["mailbox"], r["trustee"]): r for r in parsed}
    assert by[("granted", "SendAs", "alice@business.com", ADMIN)]["trustee_kind"] == "user"
    missing = by[("missing", "SendAs", GRACE, ADMIN)]
    assert missing["predicted_send_failure"] == "true" and missing["affected_users"] == "grace"
    assert missing["remedy"] == f"emaildoctor grant SendAs --mailbox {GRACE} --trustee {ADMIN}"
    orphan = by[("held", "SendAs", SALES, ORPHAN)]
    assert (orphan["orphaned_sid"], orphan["disabled_trustee"], orphan["trustee_kind"]) == (
        "true",
        "false",
        "orphaned_sid",
    )
    assert orphan["remedy"] == f"emaildoctor revoke SendAs --mailbox {SALES} --trustee {ORPHAN}"
    full = by[("held", "FullAccess", GRACE, ADMIN)]
    assert full["full_access_without_send"] == "true" and full["affected_users"] == "grace"


def test_csv_cells_cannot_become_formulas_and_secrets_are_redacted() -> None:
    snapshot = Snapshot(
        tenant="t",
        taken_at=datetime(2026, 1, 1, tzinfo=UTC),
        grants=(
            Grant(Right.SEND_AS, "a@b.com", '=HYPERLINK("http://evil")', TrusteeKind.GROUP),
            Grant(Right.FULL_ACCESS, "a@b.com", "Team hunter2-secret", TrusteeKind.GROUP),
        ),
        mailboxes=1,
    )
    report = AuditReport(snapshot, diff(None, snapshot), findings(snapshot))
    stream = io.StringIO()
    write_audit_csv(report, stream, secrets=["hunter2-secret"])
    text = stream.getvalue()
    assert "'=HYPERLINK" in text and "hunter2-secret" not in text and "<redacted>" in text
    assert "hunter2-secret" not in json.dumps(audit_json(report, secrets=["hunter2-secret"]))
    assert [r["status"] for r in csv_rows(report)] == ["held", "held"]


def ground_truth(tenant: Tenant) -> set[tuple[Right, str, str, TrusteeKind]]:
    """The sandbox's own records, spelled the way the audit reports them."""
    expected = set()
    for record in tenant.rights.records():
        if record.removed_at is not None:
            continue
        mailbox = tenant.users[record.mailbox_id]
        trustee, kind = record.trustee, TrusteeKind.USER
        label = tenant.trustee_label(trustee)
        if trustee.kind == "user":
            user = tenant.users[trustee.id]
            label = user.mail or user.upn
            if user.user_type == "Guest":
                kind = TrusteeKind.EXTERNAL
            elif not user.account_enabled and user.mailbox != "shared":
                kind = TrusteeKind.DISABLED
        elif trustee.kind == "group":
            kind = TrusteeKind.GROUP
        elif trustee.kind == "sid":
            kind = TrusteeKind.ORPHANED_SID
        else:
            kind = TrusteeKind.APP
        expected.add((Right(record.right), mailbox.mail or mailbox.upn, label, kind))
    return expected


async def test_audit_of_thousands_of_mailboxes_with_faults_matches_ground_truth(
    sandbox_factory: SandboxFactory,
) -> None:
    tenant = build_large_tenant(3000, seed=7, clock=manual_clock())
    faults = FaultBook(seed=3)
    sleep = RecordingSleep(scale=0.02)
    async with (
        sandbox_factory(tenant, faults=faults) as sandbox,
        exchange_for(sandbox, sleep=sleep, max_retries=8) as exchange,
        users_for(sandbox, exchange) as users,
    ):
        faults.set("exchange", latency_ms=2, throttle_burst=4, error_rate=0.02, error_status=503, retry_after_s=1)
        runner = TenantAudit(exchange, users)
        report = await runner.run(directory=example_directory())
    assert rows(report.snapshot) == ground_truth(tenant)
    assert len(report.snapshot.grants) == len(ground_truth(tenant)) > 1000
    kinds = {g.trustee_kind for g in report.snapshot.grants}
    assert {TrusteeKind.USER, TrusteeKind.GROUP, TrusteeKind.ORPHANED_SID, TrusteeKind.DISABLED} <= kinds
    assert report.snapshot.mailboxes == len(tenant.mailboxes())
    assert runner.stats is not None and runner.stats.retries > 0 and sleep.waits
    assert runner.stats.requests < len(tenant.mailboxes()) / 8  # tenant-wide pages and batches of 10
    # The listings overlap the reads that find grants: some trustees turned up after their mailbox was listed,
    # were asked for one by one, and still got their facts (the ground truth above matches).
    assert runner.looked_up > 0


async def test_names_and_trustees_found_after_the_listings_passed_them_give_the_same_snapshot(
    sandbox_factory: SandboxFactory,
) -> None:
    """The SendAs and SendOnBehalf queries held until the mailbox listing is done: every Name and trustee they bring
    is one the listings may have passed, asked for one by one, and the snapshot and findings are those of an audit
    whose queries answered first (group delegates and object ids included)."""
    tenant = build_large_tenant(400, seed=5, clock=manual_clock())
    async with sandbox_factory(tenant) as sandbox:
        plain, _ = await audit(sandbox)
        held = [
            sandbox.faults.hold("exchange", "Get-RecipientPermission", "SendAs"),
            sandbox.faults.hold("exchange", "GrantSendOnBehalfTo -ne"),
        ]
        listed = asyncio.Event()

        def progress(event: AuditProgress) -> None:
            if event.listing_complete:
                listed.set()

        async def release_when_listed() -> None:
            await listed.wait()
            for hold in held:
                hold.release()

        releasing = asyncio.ensure_future(release_when_listed())
        late, runner = await audit(sandbox, progress=progress)
        await releasing
    assert all(hold.handled == 1 for hold in held)
    assert rows(late.snapshot) == rows(plain.snapshot)
    assert {g.trustee_kind for g in late.snapshot.grants if g.right is Right.SEND_ON_BEHALF} >= {TrusteeKind.USER}
    assert late.findings == plain.findings and late.snapshot.warnings == plain.snapshot.warnings
    assert runner.looked_up > 0


async def _live_high_water(sandbox: Sandbox, page_size: int) -> tuple[int, int, int]:
    """(grants, bytes retained by the result, live-memory high-water mark above the start) of a second audit."""
    samples: list[int] = []

    def progress(event: AuditProgress) -> None:
        if tracemalloc.is_tracing() and (event.mailboxes_done % 500 == 0 or event.phase != "full_access"):
            gc.collect()
            samples.append(tracemalloc.get_traced_memory()[0])

    async with exchange_for(sandbox, page_size=page_size) as exchange, users_for(sandbox, exchange) as users:
        runner = TenantAudit(exchange, users, progress=progress)
        await runner.snapshot()  # warm the sandbox's own caches of the tenant-wide listings
        gc.collect()
        gc.freeze()  # the tenant and the caches are not what we measure; keeps each gc.collect() cheap
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            snapshot = await runner.snapshot()
            gc.collect()
            retained = tracemalloc.get_traced_memory()[0] - start
            high = max([*samples, start + retained]) - start
        finally:
            tracemalloc.stop()
            gc.unfreeze()
    return len(snapshot.grants), retained, high


async def test_memory_grows_with_the_result_not_the_tenant(sandbox_factory: SandboxFactory) -> None:
    measured = {}
    for size in (1000, 5000):
        async with sandbox_factory(build_large_tenant(size, seed=1, clock=manual_clock())) as sandbox:
            measured[size] = await _live_high_water(sandbox, page_size=200)
    (small_grants, small_result, small_high), (big_grants, big_result, big_high) = measured[1000], measured[5000]
    assert big_grants > 4 * small_grants and big_result > 2 * small_result
    working_small, working_big = small_high - small_result, big_high - big_result
    # beyond the result itself the audit holds a page, a bounded queue and the batches in flight
    assert working_big < 1.5 * working_small + 512 * 1024, measured

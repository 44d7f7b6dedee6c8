"""Issue 9: eventually consistent reads after a change, expiring skip tokens and a refused organisation read,
against the realistic sandbox. Waits run on the sandbox's ManualClock: the product's ``sleep`` advances it, so a
30-second lag costs no real time while the sandbox still answers with live shapes."""

from __future__ import annotations

import httpx
import pytest

from graph.exchange import Command
from graph.permissions import PermissionService
from graph.permissions_model import ChangeOutcome
from plugin.diagnosis import Code, Right
from plugin.errors import ServiceError
from sandbox.runtime import Sandbox
from tests.graph.fixtures_exchange import exchange_for, record_cmdlets
from tests.sandbox.helpers import bearer, cmdlet, http, invoke_url


def clocked_service(sandbox: Sandbox, exchange: object, **options: float) -> PermissionService:
    start = sandbox.clock.now()

    async def sleep(seconds: float) -> None:
        sandbox.advance(seconds)

    def monotonic() -> float:
        return (sandbox.clock.now() - start).total_seconds()

    return PermissionService(exchange, sleep=sleep, monotonic=monotonic, **options)  # type: ignore[arg-type]


async def test_a_grant_whose_read_back_lags_30_s_is_done_with_the_lag(sandbox: Sandbox) -> None:
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(exchange_read_lag_seconds=30)
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox) as exchange:
        result = await clocked_service(sandbox, exchange).grant(
            Right.SEND_AS, "alice@business.com", "admin@business.com"
        )
    assert result.outcome is ChangeOutcome.CHANGED and result.verified
    assert result.lag_seconds is not None and 30 <= result.lag_seconds < 45
    assert f"read back after {result.lag_seconds:.0f} s" in result.detail
    reads = [c for c, _ in log.calls if c == "Get-RecipientPermission"]
    assert len(reads) > 3  # it read again and again until Exchange showed the grant


async def test_a_revoke_that_never_shows_within_the_bound_is_not_visible_yet(sandbox: Sandbox) -> None:
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(exchange_read_lag_seconds=3600)
    async with exchange_for(sandbox) as exchange:
        result = await clocked_service(sandbox, exchange, readback_timeout=120).revoke(
            Right.FULL_ACCESS, "grace@business.com", "admin@business.com"
        )
    assert result.outcome is ChangeOutcome.NOT_VISIBLE and result.ok and not result.verified
    assert "does not show in Exchange yet" in result.detail and "failed" not in result.detail
    assert sandbox.tenant.grant_record("FullAccess", "grace@business.com", "admin@business.com") is None


async def test_a_listing_restarts_once_when_its_skip_token_expires(sandbox: Sandbox) -> None:
    # Scaled down from the live 30 minutes, so the sandbox clock stays inside the token's lifetime.
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(exchange_page_expiry_seconds=60)
    async with exchange_for(sandbox, page_size=3) as exchange:
        expected = [r["Name"] for r in (await exchange.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})).rows]
        names: list[str] = []
        async for page in exchange.pages("Get-Mailbox", {"ResultSize": "Unlimited"}):
            names.extend(str(r["Name"]) for r in page.rows)
            if len(names) == 3 and page.rows:
                sandbox.advance(61)  # the skip token of the next page has expired
    assert names == expected and len(expected) > 6


async def test_a_skip_token_is_bound_to_the_first_pages_anchor(sandbox: Sandbox) -> None:
    body = cmdlet("Get-Mailbox", ResultSize="Unlimited")
    token = sandbox.app_token("exchange")
    async with http(sandbox) as client:

        async def post(url: str, anchor: str) -> httpx.Response:
            headers = {**bearer(token), "X-AnchorMailbox": anchor, "Prefer": "odata.maxpagesize=2"}
            return await client.post(url, json=body, headers=headers)

        first = await post(invoke_url(sandbox), "UPN:alice@business.com")
        same = await post(first.json()["@odata.nextLink"], "UPN:alice@business.com")
        other = await post(first.json()["@odata.nextLink"], "UPN:bob@business.com")
    assert same.status_code == 200
    assert other.status_code == 400
    assert other.json()["error"]["message"].startswith("Expired or Invalid pagination request.")


async def test_smtp_auth_degrades_when_the_organisation_switch_is_refused(sandbox: Sandbox) -> None:
    sandbox.app.exchange_role_groups = set()  # Exchange Recipient Administrator alone: no Get-TransportConfig
    bob = sandbox.tenant.user("bob@business.com")
    assert bob is not None
    bob.smtp_auth_disabled = False
    async with exchange_for(sandbox) as exchange:
        service = PermissionService(exchange)
        own_switch = await service.smtp_auth("bob@business.com")
        with pytest.raises(ServiceError) as inherits:
            await service.smtp_auth("alice@business.com")
    assert own_switch.enabled  # the mailbox's own switch decides; the organisation's is not needed
    assert inherits.value.code is Code.EXCHANGE_ROLE_MISSING
    words = str(inherits.value)
    assert words.startswith("could not read the organisation's SMTP AUTH switch")
    assert "Get-TransportConfig" in words and "View-Only Organization Management" in words


async def test_a_batch_items_next_pages_are_asked_for_through_batch_with_its_anchor(sandbox: Sandbox) -> None:
    """The skip token is bound to the backend the item's anchor routed to: follow it as a ``$batch`` item again,
    with the same anchor (the sandbox answers 400 "Expired or Invalid pagination request" to another one)."""
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox, page_size=3) as exchange:
        expected = (await exchange.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})).rows
        before = exchange.stats.batch_requests
        calls = len(log.calls)
        [outcome] = await exchange.batch(
            [Command("Get-Mailbox", {"ResultSize": "Unlimited"}, anchor="alice@business.com")]
        )
    pages = -(-len(expected) // 3)
    assert outcome.unwrap().rows == expected
    assert exchange.stats.batch_requests - before == pages  # every page went through $batch
    assert len(log.calls) - calls == pages

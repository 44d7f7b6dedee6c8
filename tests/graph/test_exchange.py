"""graph.exchange against the sandbox's Exchange admin API over TLS: paging, headers, warnings, errors, throttling,
$batch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from graph.exchange import Command, ExchangeAdmin, hashtable
from graph.exchange_errors import (
    HANDLED_CLASSES,
    ExchangeConfigError,
    ExchangeErrorInfo,
    ExchangeNotFoundError,
    ExchangeServiceError,
    is_no_permissions,
    parse_error,
    translate,
)
from graph.http import build_http_client
from plugin.diagnosis import Code
from plugin.errors import ConfigError, NotFoundError, ServiceError
from sandbox import exchange_errors as sandbox_errors
from sandbox.runtime import Sandbox
from tests.graph.fixtures_exchange import RecordingSleep, exchange_for, record_cmdlets, settings_for

SYSTEM_ANCHOR = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@"


async def test_pages_give_every_row_exactly_once(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox, page_size=3) as exchange:
        pages = [
            page
            async for page in exchange.pages(
                "Get-RecipientPermission", {"AccessRights": ["SendAs"], "ResultSize": "Unlimited"}
            )
        ]
    rows = [row for page in pages for row in page.rows]
    grants = [g for g in sandbox.tenant.rights.records() if g.right == "SendAs" and g.removed_at is None]
    assert len(rows) == len(sandbox.tenant.mailboxes()) + len(grants)  # one SELF row per mailbox, then the grants
    assert len({(r["Identity"], r["Trustee"]) for r in rows}) == len(rows)
    assert all(len(page.rows) <= 3 for page in pages) and len(pages) == -(-len(rows) // 3)
    assert "@odata.type" not in json.dumps(rows)  # annotations dropped
    # every page is the same cmdlet with the same body, re-POSTed to the next link
    assert log.names == ["Get-RecipientPermission"] * len(pages)
    assert all(params == log.calls[0][1] for _, params in log.calls)


async def test_next_link_reposts_the_same_body_with_the_same_headers(sandbox: Sandbox) -> None:
    seen: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        seen.append(request)

    token = sandbox.app_token("exchange")

    async def tokens() -> str:
        return token

    async with build_http_client(settings_for(sandbox)) as http:
        http.event_hooks["request"].append(capture)
        exchange = ExchangeAdmin(http, tokens, base_url=sandbox.urls.exchange, tenant_id=sandbox.tenant.id, page_size=5)
        result = await exchange.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, select=["PrimarySmtpAddress"])
        await exchange.invoke("Get-CASMailbox", {"Identity": "alice@business.com"}, anchor="alice@business.com")
    listing, cas = seen[:-1], seen[-1]
    assert len(result.rows) == len(sandbox.tenant.mailboxes()) and len(listing) > 1
    assert {r.content for r in listing} == {listing[0].content}
    assert json.loads(listing[0].content) == {
        "CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"ResultSize": "Unlimited"}}
    }
    assert str(listing[0].url).endswith("/InvokeCommand?$select=PrimarySmtpAddress")
    assert all("skiptoken" in str(r.url) for r in listing[1:])
    for request in listing:
        assert request.headers["Authorization"] == f"Bearer {token}"
        assert request.headers["Content-Type"].startswith("application/json")
        assert request.headers["X-CmdletName"] == "Get-Mailbox"
        assert request.headers["Prefer"] == "odata.maxpagesize=5"
        assert request.headers["X-AnchorMailbox"] == SYSTEM_ANCHOR + sandbox.tenant.id
    assert len({r.headers["client-request-id"] for r in seen}) == len(seen)
    assert cas.headers["X-AnchorMailbox"] == "UPN:alice@business.com"
    assert cas.headers["X-CmdletName"] == "Get-CASMailbox"


async def test_warnings_are_returned_with_the_rows(sandbox: Sandbox) -> None:
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(exchange_default_result_size=3)
    async with exchange_for(sandbox) as exchange:
        truncated = await exchange.invoke("Get-Mailbox")
        absent = await exchange.invoke(
            "Remove-RecipientPermission",
            {"Identity": "alice@business.com", "Trustee": "bob@business.com", "AccessRights": ["SendAs"]},
        )
        no_op = await exchange.invoke(
            "Set-Mailbox",
            {"Identity": "frank@business.com", "GrantSendOnBehalfTo": hashtable(add="admin@business.com")},
        )
    assert len(truncated.rows) == 3
    assert truncated.warnings[0].startswith("By default, only the first 3 items are returned.")
    assert absent.rows == () and "because the ACE isn't present" in absent.warnings[0]
    assert "no settings of" in no_op.warnings[0]


async def test_hashtable_parameters_carry_the_odata_type(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox) as exchange:
        await exchange.invoke(
            "Set-Mailbox", {"Identity": "frank@business.com", "GrantSendOnBehalfTo": {"add": ["bob@business.com"]}}
        )
    [(_, params)] = log.calls
    assert params["GrantSendOnBehalfTo"] == {"add": ["bob@business.com"], "@odata.type": "#Exchange.GenericHashTable"}
    assert hashtable(remove="x@y.com") == {"@odata.type": "#Exchange.GenericHashTable", "remove": ["x@y.com"]}


async def test_errors_are_translated_with_the_services_words(sandbox: Sandbox) -> None:
    async with exchange_for(sandbox) as exchange:
        with pytest.raises(ExchangeNotFoundError) as mailbox:
            await exchange.invoke("Get-Mailbox", {"Identity": "nobody@business.com"})
        with pytest.raises(ExchangeNotFoundError) as trustee:
            await exchange.invoke(
                "Get-RecipientPermission", {"Identity": "alice@business.com", "Trustee": "ghost@business.com"}
            )
        with pytest.raises(ExchangeNotFoundError) as no_entry:
            await exchange.invoke(
                "Get-MailboxPermission", {"Identity": "alice@business.com", "User": "bob@business.com"}
            )
        with pytest.raises(ExchangeServiceError) as parameter:
            await exchange.invoke("Get-Mailbox", {"Colour": "blue"})
        with pytest.raises(ExchangeServiceError) as unknown_cmdlet:
            await exchange.invoke("Get-Nothing")
    assert mailbox.value.code is Code.MAILBOX_NOT_FOUND
    assert mailbox.value.info.error_id == ""  # live answers have no details array: the class comes from innererror
    assert mailbox.value.info.exception_class == "ManagementObjectNotFoundException"
    assert "couldn't be found" in str(mailbox.value) and "nobody@business.com" in str(mailbox.value)
    assert trustee.value.code is Code.USER_NOT_FOUND and "ghost@business.com" in str(trustee.value)
    assert is_no_permissions(no_entry.value) and not is_no_permissions(mailbox.value)
    assert parameter.value.code is Code.UNKNOWN and "Colour" in str(parameter.value)
    assert parameter.value.info.exception_class == "ParameterBindingException" and parameter.value.status == 400
    assert unknown_cmdlet.value.info.exception_class == "CommandNotFoundException"


async def test_access_and_token_errors(sandbox: Sandbox) -> None:
    legacy = next(a for a in sandbox.tenant.apps.values() if a.name == "legacy-scanner")
    no_permission = sandbox.app_token("exchange", legacy)  # a valid token without Exchange.ManageAsApp
    async with build_http_client(settings_for(sandbox)) as http:

        def admin(token: str) -> ExchangeAdmin:
            async def tokens() -> str:
                return token

            return ExchangeAdmin(http, tokens, base_url=sandbox.urls.exchange, tenant_id=sandbox.tenant.id)

        with pytest.raises(ServiceError) as garbage:
            await admin("not-a-token").invoke("Get-TransportConfig")
        with pytest.raises(ServiceError) as claims:
            await admin(no_permission).invoke("Get-TransportConfig")
        sandbox.app.entra_roles = set()  # consent but no role at all: 403 with 4,096 NUL bytes
        sandbox.app.exchange_role_groups = set()
        with pytest.raises(ServiceError) as no_role:
            await admin(sandbox.app_token("exchange")).invoke("Get-Mailbox", {"Identity": "alice@business.com"})
        sandbox.app.entra_roles = {"Exchange Recipient Administrator"}  # a role that does not cover the cmdlet: 401
        with pytest.raises(ServiceError) as narrow:
            await admin(sandbox.app_token("exchange")).invoke("Get-TransportConfig")
    assert garbage.value.code is Code.OAUTH_TOKEN_INVALID and garbage.value.status == 401
    assert "token" in str(garbage.value).lower()
    assert claims.value.code is Code.GRAPH_ACCESS_DENIED and "Exchange.ManageAsApp" in str(claims.value)
    assert no_role.value.code is Code.EXCHANGE_ROLE_MISSING and no_role.value.status == 403
    assert "Get-Mailbox" in str(no_role.value) and "Exchange Recipient Administrator" in str(no_role.value)
    assert narrow.value.code is Code.EXCHANGE_ROLE_MISSING and narrow.value.status == 401
    assert "Get-TransportConfig" in str(narrow.value)
    assert "View-Only Organization Management" in str(narrow.value)
    for refused in (no_role.value, narrow.value):
        assert "\x00" not in str(refused)
        assert "token" not in str(refused).lower()  # a role problem, never blamed on the token


def test_every_error_class_the_service_produces_is_mapped() -> None:
    """Fails when the sandbox (our model of Exchange) can answer with an exception class we do not translate."""
    produced = [
        sandbox_errors.not_found("a@b.com"),
        sandbox_errors.recipient_not_found("a@b.com"),
        sandbox_errors.ambiguous("alice"),
        sandbox_errors.bad_parameter("bad"),
        sandbox_errors.not_allowed("Add-RecipientPermission"),
        sandbox_errors.CmdletError(400, "BadRequest", "Ex0F5E2A", "System.Management.Automation.CommandNotFoundException", "x"),
        sandbox_errors.CmdletError(404, "NotFound", "ExA4F2B1", sandbox_errors.ODATA_EXCEPTION, "No permissions were found for the user:x"),
    ]  # fmt: skip
    for error in produced:
        info = parse_error(error.status, json.dumps(error.body()).encode(), {}, "Get-Mailbox")
        assert info.exception_class in HANDLED_CLASSES, info.exception_class
        assert info.text == error.text
    for cls, code in HANDLED_CLASSES.items():
        translated = translate(ExchangeErrorInfo(status=400, cmdlet="Get-Mailbox", exception_class=cls, text="x"))
        if code is None:
            assert isinstance(translated, ExchangeConfigError), cls
        else:
            assert translated.code is code, cls
    by_status = {
        401: Code.OAUTH_TOKEN_INVALID,
        403: Code.EXCHANGE_ROLE_MISSING,  # live: a body of 4,096 NUL bytes for an app without any role
        429: Code.THROTTLED,
        503: Code.SERVER_UNAVAILABLE,
    }
    for status, code in by_status.items():
        assert translate(ExchangeErrorInfo(status=status, cmdlet="Get-Mailbox")).code is code


ODATA = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"
NOT_FOUND_CLASS = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"


@pytest.mark.parametrize(
    ("error", "klass", "text"),
    [
        # details with an ErrorId (older samples)
        (
            {"code": "NotFound", "message": "Error executing cmdlet",
             "details": [{"code": "Client", "target": "x@y.com", "message": f"Ex6F9304|{NOT_FOUND_CLASS}|gone"}]},
            "ManagementObjectNotFoundException", "gone",
        ),
        # details with an empty ErrorId (live)
        (
            {"code": "BadRequest", "message": "Invalid Operation",
             "details": [{"code": "Client", "target": "", "message":
                          "|Microsoft.Exchange.Configuration.Tasks.AmbiguousParameterSetException|Parameter set cannot be resolved"}]},
            "AmbiguousParameterSetException", "Parameter set cannot be resolved",
        ),
        # no details: innererror.internalexception (live)
        (
            {"code": "NotFound", "message": "Invalid Operation",
             "innererror": {"message": "gone", "type": ODATA,
                            "internalexception": {"message": "object gone", "type": NOT_FOUND_CLASS}}},
            "ManagementObjectNotFoundException", "object gone",
        ),
        # only error.message
        ({"code": "InternalServerError", "message": "Something broke"}, "", "Something broke"),
    ],
)  # fmt: skip
def test_parse_error_reads_all_three_places(error: dict[str, Any], klass: str, text: str) -> None:
    info = parse_error(400, json.dumps({"error": error}).encode(), {}, "Get-Mailbox")
    assert (info.exception_class, info.text) == (klass, text)


def test_a_nul_body_never_reaches_a_message() -> None:
    info = parse_error(403, b"\x00" * 4096, {}, "Get-Mailbox")
    error = translate(info)
    assert info.text == "HTTP 403" and "\x00" not in str(error)
    assert error.code is Code.EXCHANGE_ROLE_MISSING and "Exchange Recipient Administrator" in str(error)


async def test_a_429_burst_is_retried_after_retry_after(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    sandbox.faults.set("exchange", throttle_burst=3, retry_after_s=2)
    sleep = RecordingSleep()
    async with exchange_for(sandbox, sleep=sleep) as exchange:
        result = await exchange.invoke("Get-TransportConfig")
    assert result.rows[0]["SmtpClientAuthenticationDisabled"] is True
    assert sleep.waits == [2.0, 2.0, 2.0]
    assert exchange.stats.throttled == 3 and exchange.stats.requests == 4
    assert sandbox.faults.take_throttle("exchange") is False  # the sandbox answered the whole burst
    assert log.names == ["Get-TransportConfig"]  # and ran the cmdlet once


async def test_throttling_gives_up_after_the_bounded_retries(sandbox: Sandbox) -> None:
    sandbox.faults.set("exchange", throttle_burst=10, retry_after_s=1)
    sleep = RecordingSleep()
    async with exchange_for(sandbox, sleep=sleep, max_retries=2) as exchange:
        with pytest.raises(ServiceError) as raised:
            await exchange.invoke("Get-TransportConfig")
    assert raised.value.code is Code.THROTTLED and raised.value.status == 429
    assert sleep.waits == [1.0, 1.0] and exchange.stats.requests == 3


async def test_unavailable_service_is_retried_then_reported(sandbox: Sandbox) -> None:
    sandbox.faults.set("exchange", error_rate=1.0, error_status=503, retry_after_s=3)
    sleep = RecordingSleep()
    async with exchange_for(sandbox, sleep=sleep, max_retries=2) as exchange:
        with pytest.raises(ServiceError) as raised:
            await exchange.invoke("Get-TransportConfig")
    assert raised.value.code is Code.SERVER_UNAVAILABLE and sleep.waits == [3.0, 3.0]


async def test_concurrent_requests_limit_is_honoured(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(exchange_max_concurrent_requests=1)
    sandbox.faults.set("exchange", latency_ms=30)
    sleep = RecordingSleep(scale=0.05)
    async with exchange_for(sandbox, sleep=sleep, max_in_flight=4, max_retries=20) as exchange:
        results = await asyncio.gather(
            *(
                exchange.invoke("Get-Mailbox", {"Identity": f"{u}@business.com"})
                for u in ("alice", "bob", "carol", "dave")
            )
        )
    assert [r.rows[0]["Alias"] for r in results] == ["alice", "bob", "carol", "dave"]
    assert exchange.stats.retries > 0 and set(sleep.waits) == {1.0}  # the plain-text 429 says Retry-After: 1
    assert sorted(p["Identity"] for _, p in log.calls) == [
        f"{u}@business.com" for u in ("alice", "bob", "carol", "dave")
    ]


async def test_every_call_has_a_timeout(sandbox: Sandbox) -> None:
    sandbox.faults.set("exchange", latency_ms=400)
    async with exchange_for(sandbox, timeout=0.1) as exchange:
        with pytest.raises(ServiceError) as raised:
            await exchange.invoke("Get-TransportConfig")
    assert raised.value.code is Code.TIMEOUT


async def test_batch_runs_ten_per_request_in_order(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    addresses = [*[u.upn for u in sandbox.tenant.mailboxes()][:14], "nobody@business.com"]
    commands = [Command("Get-Mailbox", {"Identity": a}, anchor=a, select=("PrimarySmtpAddress",)) for a in addresses]
    async with exchange_for(sandbox) as exchange:
        outcomes = await exchange.batch(commands)
    assert exchange.stats.batch_requests == 2 and exchange.stats.batch_items == 15
    assert [o.unwrap().rows[0]["PrimarySmtpAddress"] for o in outcomes[:14]] == addresses[:14]
    assert isinstance(outcomes[14].error, NotFoundError) and outcomes[14].error.code is Code.MAILBOX_NOT_FOUND
    with pytest.raises(NotFoundError):
        outcomes[14].unwrap()
    assert sorted(p["Identity"] for _, p in log.calls) == sorted(addresses)


async def test_batch_items_throttled_inside_a_200_are_retried(sandbox: Sandbox) -> None:
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(
        exchange_rate_limit=10, exchange_rate_window_seconds=1.0
    )
    log = record_cmdlets(sandbox)
    addresses = [u.upn for u in sandbox.tenant.mailboxes()][:15]
    sleep = RecordingSleep(scale=0.6)
    async with exchange_for(sandbox, sleep=sleep, max_retries=10) as exchange:
        outcomes = await exchange.batch([Command("Get-CASMailbox", {"Identity": a}) for a in addresses])
    assert all(o.error is None for o in outcomes)
    assert [o.unwrap().rows[0]["PrimarySmtpAddress"] for o in outcomes] == addresses
    assert exchange.stats.throttled >= 5 and sleep.waits and all(w == 1.0 for w in sleep.waits)
    assert sorted(p["Identity"] for _, p in log.calls) == sorted(addresses)  # each item ran once


async def test_a_throttled_batch_request_is_retried_whole(sandbox: Sandbox) -> None:
    sandbox.faults.set("exchange", throttle_burst=1, retry_after_s=1)
    sleep = RecordingSleep()
    async with exchange_for(sandbox, sleep=sleep) as exchange:
        outcomes = await exchange.batch([Command("Get-TransportConfig")])
    assert outcomes[0].unwrap().rows and sleep.waits == [1.0] and exchange.stats.batch_requests == 2


async def test_bad_requests_are_refused_before_any_call(sandbox: Sandbox) -> None:
    log = record_cmdlets(sandbox)
    async with exchange_for(sandbox) as exchange:
        for call in (
            exchange.invoke("Get-Mailbox; Remove-Mailbox"),
            exchange.invoke("Get-Mailbox", select=["Name,Guid"]),
            exchange.invoke("Get-Mailbox", anchor="a@b.com\r\nX-Evil: 1"),
            exchange.batch([Command("Get Mailbox")]),
        ):
            with pytest.raises(ConfigError):
                await call
        assert exchange.stats.requests == 0
    assert log.calls == []
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError):
            ExchangeAdmin(http, _never, base_url="https://x", tenant_id="a/b")
        with pytest.raises(ConfigError):
            ExchangeAdmin(http, _never, base_url="https://x", tenant_id="t", page_size=5000)


async def _never() -> str:
    raise AssertionError("no token needed")


async def test_a_failed_batch_request_fails_the_call_and_leaves_no_tasks_behind(sandbox: Sandbox) -> None:
    sandbox.faults.set("exchange", error_rate=1.0, error_status=500)
    addresses = [u.upn for u in sandbox.tenant.mailboxes()][:25]
    async with exchange_for(sandbox) as exchange:
        with pytest.raises(ServiceError) as raised:
            await exchange.batch([Command("Get-CASMailbox", {"Identity": a}) for a in addresses])
    assert raised.value.code is Code.SERVER_UNAVAILABLE and raised.value.status == 500
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if "_batch_chunk" in repr(t.get_coro())]

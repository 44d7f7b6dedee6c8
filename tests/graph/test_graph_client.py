"""The Graph client on the real msgraph-sdk (kiota, httpx) against the sandbox over TLS, and the translation of
Graph's errors into ours, with the exhaustiveness test of the mapping."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from graph.auth import AppTokenProvider, SignInError
from graph.graph_client import GRAPH_ERROR_CODES, GraphClient, GraphError, load_sdk, translate_graph_error
from graph.http import build_http_client, retry_after_seconds
from plugin.diagnosis import Code
from sandbox.runtime import Sandbox
from tests.graph.fixtures_m365 import graph_stack, m365_settings

ROOT = Path(__file__).parents[2]

# Every Graph error code emaildoctor claims to handle, with the status and message Graph sends
# (shared/reference/exchange-online.md §2), and the catalogue code it must become.
HANDLED: list[tuple[int, str, str, Code]] = [
    (
        403,
        "ErrorSendAsDenied",
        "The user account which was used to submit this request does not have the right to send mail on behalf of "
        "the specified sending account. Cannot submit message.",
        Code.SEND_AS_DENIED,
    ),
    (
        403,
        "ErrorAccessDenied",
        "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
        Code.GRAPH_ACCESS_DENIED,
    ),
    (403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.", Code.GRAPH_ACCESS_DENIED),
    (
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
        Code.GRAPH_ACCESS_DENIED,
    ),
    (
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        Code.MAILBOX_NOT_FOUND,
    ),
    (404, "ErrorInvalidUser", "The requested user 'nobody@business.com' is invalid.", Code.USER_NOT_FOUND),
    (
        404,
        "Request_ResourceNotFound",
        "Resource 'x' does not exist or one of its queried reference-property objects are not present.",
        Code.USER_NOT_FOUND,
    ),
    (404, "ResourceNotFound", "Resource could not be discovered.", Code.USER_NOT_FOUND),
    (401, "InvalidAuthenticationToken", "Access token is empty.", Code.OAUTH_TOKEN_INVALID),
    (401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", Code.OAUTH_TOKEN_INVALID),
    (401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.", Code.OAUTH_TOKEN_INVALID),
    (429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", Code.THROTTLED),
    (400, "ErrorInvalidRecipients", "At least one recipient isn't valid.", Code.RECIPIENT_REJECTED),
]
# Codes that mean emaildoctor built a bad request: reported as unknown, Graph's message verbatim.
REQUEST_BUGS = {
    "BadRequest",
    "Request_BadRequest",
    "Request_UnsupportedQuery",
    "Directory_ExpiredPageToken",
    "ErrorInvalidParameter",
    "ErrorInvalidProperty",
    "ErrorInvalidIdMalformed",
    "ErrorMimeContentInvalidBase64String",
    "RequestBroker--ParseUri",
    "FailedDependency",
}
# Codes Graph sends with a 5xx status, which the status maps to server_unavailable.
SERVER_SIDE = {"generalException", "serviceNotAvailable", "BadGateway", "GatewayTimeout", "UnknownError"}


def odata_error(status: int, code: str | None, message: str, headers: dict[str, str] | None = None) -> Exception:
    load_sdk()
    from msgraph.generated.models.o_data_errors.main_error import MainError
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    error = ODataError(error=MainError(code=code, message=message))
    error.response_status_code = status
    error.response_headers = headers or {}
    return error


def test_every_handled_graph_error_is_mapped() -> None:
    assert set(GRAPH_ERROR_CODES) == {code for _, code, _, _ in HANDLED}
    for status, code, message, expected in HANDLED:
        translated = translate_graph_error(odata_error(status, code, message), what="testing")
        assert (translated.code, translated.status, translated.error_code) == (expected, status, code)
        assert translated.graph_message == message  # kept verbatim (RAOP and missing consent differ only here)
        assert message in translated.message


def test_every_error_the_sandbox_emits_is_mapped_or_deliberately_unknown() -> None:
    emitted: set[str] = set()
    for path in (ROOT / "sandbox").glob("graph_*.py"):
        text = path.read_text()
        emitted |= set(re.findall(r'GraphError\(\s*[\w.]+,\s*"([^"]+)"', text))
        emitted |= set(re.findall(r'error_body\(\s*"([^"]+)"', text))
        emitted |= set(re.findall(r'\d{3}: \("(\w+)"', text))
    assert emitted, "the pattern no longer finds the sandbox's errors"
    unclassified = emitted - set(GRAPH_ERROR_CODES) - REQUEST_BUGS - SERVER_SIDE
    assert not unclassified, f"map these Graph error codes or list them as deliberately unknown: {unclassified}"
    for code in SERVER_SIDE:
        assert translate_graph_error(odata_error(503, code, "x"), what="testing").code is Code.SERVER_UNAVAILABLE
    for code in REQUEST_BUGS:
        translated = translate_graph_error(odata_error(400, code, f"verbatim {code}"), what="testing")
        assert (translated.code, translated.graph_message) == (Code.UNKNOWN, f"verbatim {code}")


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, "TooManyRequests", Code.THROTTLED),
        (500, "generalException", Code.SERVER_UNAVAILABLE),
        (504, None, Code.SERVER_UNAVAILABLE),
        (409, "ErrorSomethingNew", Code.UNKNOWN),
    ],
)
def test_status_decides_when_the_code_is_not_ours(status: int, code: str | None, expected: Code) -> None:
    translated = translate_graph_error(odata_error(status, code, "the words Graph used"), what="testing")
    assert translated.code is expected
    assert translated.graph_message == "the words Graph used"


def test_retry_after_and_request_id_become_evidence() -> None:
    error = odata_error(429, "ApplicationThrottled", "slow down", {"Retry-After": "7", "request-id": "rid-1"})
    translated = translate_graph_error(error, what="testing")
    assert translated.retry_after == 7
    assert translated.evidence() == (
        "Graph HTTP 429 ApplicationThrottled: slow down",
        "Graph request-id: rid-1",
        "Retry-After: 7 s",
    )


def test_graph_modules_are_not_imported_until_used() -> None:
    code = (
        "import sys, graph.auth, graph.graph_client, graph.users, graph.mail, graph.token_lint\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'msgraph', 'msgraph_core', 'kiota_http', 'msal', "
        "'azure'})\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    )
    assert result.stdout.strip() == ""


def test_loading_the_sdk_raises_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_sdk()


async def test_requests_carry_the_token_to_the_graph_host(sandbox: Sandbox) -> None:
    async with graph_stack(sandbox) as (graph, log):
        headers: list[str] = []

        async def authorization(request: httpx.Request) -> None:
            headers.append(request.headers.get("Authorization", "")[:7])

        assert graph._http is not None
        graph._http.event_hooks["request"].append(authorization)
        user = await graph.run("reading bob", lambda c: c.users.by_user_id("bob@business.com").get())
        assert user is not None and user.display_name == "Bob Baker"
        assert headers == ["Bearer "]
        assert log.paths() == ["/v1.0/users/bob@business.com"]
        assert graph.host == "127.0.0.1"


async def test_a_429_burst_is_retried_honouring_retry_after(sandbox: Sandbox) -> None:
    sandbox.faults.set("graph", throttle_burst=2, retry_after_s=1)
    async with graph_stack(sandbox) as (graph, log):
        user = await graph.run("reading bob", lambda c: c.users.by_user_id("bob@business.com").get())
    assert user is not None and user.mail == "bob@business.com"
    assert log.paths("GET") == ["/v1.0/users/bob@business.com"]  # one call; kiota retried below httpx's hooks
    assert sandbox.faults.take_throttle("graph") is False  # both 429s were served, then the real answer


async def test_throttling_beyond_the_retries_is_throttled(sandbox: Sandbox) -> None:
    sandbox.faults.set("graph", throttle_burst=5, retry_after_s=1)
    async with graph_stack(sandbox, max_retries=1) as (graph, _log):
        with pytest.raises(GraphError) as caught:
            await graph.run("reading bob", lambda c: c.users.by_user_id("bob@business.com").get())
    error = caught.value
    assert (error.code, error.status, error.error_code, error.retry_after) == (
        Code.THROTTLED,
        429,
        "ApplicationThrottled",
        1,
    )
    assert [sandbox.faults.take_throttle("graph") for _ in range(4)] == [True, True, True, False]  # 2 of 5 used


async def test_server_errors_are_server_unavailable(sandbox: Sandbox) -> None:
    sandbox.faults.set("graph", error_rate=1.0, error_status=500)
    async with graph_stack(sandbox) as (graph, _log):
        with pytest.raises(GraphError) as caught:
            await graph.run("reading bob", lambda c: c.users.by_user_id("bob@business.com").get())
    assert (caught.value.code, caught.value.status, caught.value.error_code) == (
        Code.SERVER_UNAVAILABLE,
        500,
        "generalException",
    )


async def test_expired_token_is_oauth_token_invalid(sandbox: Sandbox) -> None:
    async with graph_stack(sandbox) as (graph, _log):
        await graph.run("reading bob", lambda c: c.users.by_user_id("bob@business.com").get())
        sandbox.advance(2 * 3600)  # Graph's clock moves on; msal's cache still holds the old token
        with pytest.raises(GraphError) as caught:
            await graph.run("reading bob", lambda c: c.users.by_user_id("bob@business.com").get())
    assert (caught.value.code, caught.value.error_code) == (Code.OAUTH_TOKEN_INVALID, "InvalidAuthenticationToken")
    assert caught.value.graph_message == "Lifetime validation failed, the token is expired."


async def test_sign_in_failure_surfaces_as_sign_in_error(sandbox: Sandbox) -> None:
    settings = m365_settings(sandbox, client_secret=SecretStr("wrong-secret-Qq1"))
    async with graph_stack(sandbox, settings) as (graph, log):
        with pytest.raises(SignInError) as caught:
            await graph.run("reading bob", lambda c: c.users.by_user_id("bob@business.com").get())
    assert caught.value.code is Code.OAUTH_TOKEN_INVALID
    assert log.paths() == []  # nothing reached Graph without a token


async def test_dropped_connection_is_server_unavailable(sandbox: Sandbox) -> None:
    async with graph_stack(sandbox) as (graph, _log):
        await graph.run("warming up", lambda c: c.users.by_user_id("bob@business.com").get())
        sandbox.faults.set("graph", drop_rate=1.0)
        with pytest.raises(GraphError) as caught:
            await graph.run("reading bob", lambda c: c.users.by_user_id("bob@business.com").get())
    assert (caught.value.code, caught.value.status) == (Code.SERVER_UNAVAILABLE, None)
    assert "reading bob" in caught.value.message


async def test_untrusted_graph_certificate(sandbox: Sandbox) -> None:
    settings = m365_settings(sandbox)
    provider = AppTokenProvider(settings)
    untrusted = build_http_client(settings.model_copy(update={"ca_file": None}))
    async with GraphClient(settings, provider.credential(), http_client=untrusted) as graph:
        with pytest.raises(GraphError) as caught:
            await graph.run("reading bob", lambda c: c.users.by_user_id("bob@business.com").get())
    await provider.aclose()
    assert caught.value.code is Code.TLS_CERTIFICATE_INVALID
    assert "EMAILDOCTOR_M365__CA_FILE" in caught.value.message


async def test_a_slow_graph_is_a_timeout(sandbox: Sandbox) -> None:
    async with graph_stack(sandbox, m365_settings(sandbox, timeout=0.3)) as (graph, _log):
        await graph.run("warming up", lambda c: c.users.by_user_id("bob@business.com").get())
        sandbox.faults.set("graph", latency_ms=1000)
        with pytest.raises(GraphError) as caught:
            await graph.run("reading bob", lambda c: c.users.by_user_id("bob@business.com").get())
    assert (caught.value.code, caught.value.status) == (Code.TIMEOUT, None)
    assert caught.value.message == "Microsoft Graph did not answer in time while reading bob"


@pytest.mark.parametrize(("value", "seconds"), [("30,120", 30.0), ("7", 7.0), ("", 1.0), ("soon", 1.0)])
def test_retry_after_takes_the_first_of_a_list(value: str, seconds: float) -> None:
    """Live Graph sends ``Retry-After: 30,120`` (msgraph-sdk-python #1159)."""
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": value})) == seconds

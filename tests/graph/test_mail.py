"""The Graph test send through the real msgraph-sdk against the sandbox: Send As, Send on Behalf, each refusal
Microsoft 365 gives, and the delivery check in the recipient's mailbox."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from graph.auth import AppTokenProvider, graph_scope
from graph.graph_client import GraphClient
from graph.mail import TEST_ID_HEADER, GraphMailer
from plugin.diagnosis import Code
from plugin.errors import ConfigError
from plugin.interfaces import GraphSendResult
from plugin.settings import M365Settings
from plugin.testmessage import new_test_id
from plugin.testmessage import test_subject as subject_for
from sandbox.runtime import Sandbox
from sandbox.state import Message
from tests.graph.fixtures_m365 import app_named, graph_stack, m365_settings

SEND_AS_DENIED_TEXT = (
    "The user account which was used to submit this request does not have the right to send mail on behalf of the "
    "specified sending account. Cannot submit message."
)


async def no_wait(seconds: float) -> None:
    return None


def inbox(sandbox: Sandbox, address: str) -> list[Message]:
    user = sandbox.tenant.user_by_address(address)
    assert user is not None
    return [m for m in sandbox.tenant.messages.get(user.id, []) if m.folder == "inbox"]


def sent_items(sandbox: Sandbox, address: str) -> list[Message]:
    user = sandbox.tenant.user_by_address(address)
    assert user is not None
    return [m for m in sandbox.tenant.messages.get(user.id, []) if m.folder == "sentitems"]


async def send(
    sandbox: Sandbox,
    principal: str,
    from_addr: str,
    to_addr: str,
    sender: str | None = None,
    *,
    settings: M365Settings | None = None,
    max_retries: int = 3,
) -> tuple[GraphSendResult, str]:
    test_id = new_test_id()
    async with graph_stack(sandbox, settings, max_retries=max_retries) as (graph, _log):
        mailer = GraphMailer(graph, sleep=no_wait)
        result = await mailer.send_test(
            principal=principal, from_addr=from_addr, to_addr=to_addr, sender=sender, test_id=test_id
        )
    return result, test_id


async def test_send_as_self_is_delivered(sandbox: Sandbox) -> None:
    result, test_id = await send(sandbox, "erin@business.com", "erin@business.com", "alice@business.com")
    assert (result.ok, result.status, result.code, result.delivered) == (True, 202, None, True)
    [message] = inbox(sandbox, "alice@business.com")
    assert message.subject == subject_for(test_id)
    assert (message.from_address, message.sender_address) == ("erin@business.com", "erin@business.com")
    assert message.headers == {TEST_ID_HEADER: test_id}
    assert test_id in message.body
    assert sent_items(sandbox, "erin@business.com") == []  # saveToSentItems: false
    assert any(line.startswith("Delivered to alice@business.com's mailbox") for line in result.evidence)


async def test_send_on_behalf_is_stamped_by_exchange(sandbox: Sandbox) -> None:
    result, _ = await send(
        sandbox, "admin@business.com", "frank@business.com", "frank@business.com", sender="admin@business.com"
    )
    assert (result.ok, result.delivered) == (True, True)
    [message] = inbox(sandbox, "frank@business.com")
    assert (message.from_address, message.sender_address) == ("frank@business.com", "admin@business.com")
    assert "Exchange sent it on behalf: admin@business.com holds Send on Behalf on frank@business.com." in (
        result.evidence
    )


async def test_send_as_with_the_right_is_sent_as(sandbox: Sandbox) -> None:
    result, _ = await send(sandbox, "admin@business.com", "henry@business.com", "henry@business.com")
    assert result.ok and result.delivered
    [message] = inbox(sandbox, "henry@business.com")
    assert message.sender_address == "henry@business.com"
    assert "Exchange sent it as henry@business.com: admin@business.com holds Send As on henry@business.com." in (
        result.evidence
    )


async def test_send_as_denied(sandbox: Sandbox) -> None:
    result, _ = await send(
        sandbox, "admin@business.com", "alice@business.com", "alice@business.com", sender="admin@business.com"
    )
    assert (result.ok, result.status, result.code, result.error_code) == (
        False,
        403,
        Code.SEND_AS_DENIED,
        "ErrorSendAsDenied",
    )
    assert result.message == SEND_AS_DENIED_TEXT
    assert result.delivered is None
    assert result.evidence[0].startswith("Graph POST /users/admin@business.com/sendMail with From alice@business.com")
    assert f"Graph HTTP 403 ErrorSendAsDenied: {SEND_AS_DENIED_TEXT}" in result.evidence
    assert inbox(sandbox, "alice@business.com") == []


async def test_application_access_policy_is_graph_access_denied(sandbox: Sandbox) -> None:
    settings = m365_settings(sandbox, app_named(sandbox, "legacy-scanner"))
    result, _ = await send(sandbox, "alice@business.com", "alice@business.com", "bob@business.com", settings=settings)
    assert (result.ok, result.status, result.code, result.error_code) == (
        False,
        403,
        Code.GRAPH_ACCESS_DENIED,
        "ErrorAccessDenied",
    )
    assert "[RAOP]" in result.message
    allowed, _ = await send(
        sandbox, "scanner@business.com", "scanner@business.com", "bob@business.com", settings=settings
    )
    assert allowed.ok


async def test_no_mailbox_is_mailbox_not_found(sandbox: Sandbox) -> None:
    result, _ = await send(
        sandbox, "partner_fabrikam.com#EXT#@businesscom.onmicrosoft.com", "partner@fabrikam.com", "bob@business.com"
    )
    assert (result.status, result.code, result.error_code) == (
        404,
        Code.MAILBOX_NOT_FOUND,
        "MailboxNotEnabledForRESTAPI",
    )


async def test_unknown_principal_is_user_not_found(sandbox: Sandbox) -> None:
    result, _ = await send(sandbox, "nobody@business.com", "nobody@business.com", "bob@business.com")
    assert (result.status, result.code, result.error_code) == (404, Code.USER_NOT_FOUND, "ErrorInvalidUser")
    assert result.message == "The requested user 'nobody@business.com' is invalid."


async def test_throttled_send_is_retried_then_reported(sandbox: Sandbox) -> None:
    sandbox.faults.set("graph", throttle_burst=2, retry_after_s=1)
    retried, _ = await send(sandbox, "erin@business.com", "erin@business.com", "alice@business.com")
    assert retried.ok
    sandbox.faults.set("graph", throttle_burst=1, retry_after_s=1)
    given_up, _ = await send(sandbox, "erin@business.com", "erin@business.com", "alice@business.com", max_retries=0)
    assert (given_up.ok, given_up.status, given_up.code) == (False, 429, Code.THROTTLED)
    assert "Retry-After: 1 s" in given_up.evidence


async def test_sign_in_failure_is_a_result_without_the_secret(sandbox: Sandbox) -> None:
    settings = m365_settings(sandbox, client_secret=SecretStr("not-the-Secret-77"))
    result, _ = await send(sandbox, "erin@business.com", "erin@business.com", "alice@business.com", settings=settings)
    assert (result.ok, result.status, result.code) == (False, None, Code.OAUTH_TOKEN_INVALID)
    assert "AADSTS7000215" in result.message
    assert "not-the-Secret-77" not in f"{result.message} {result.evidence}"
    assert inbox(sandbox, "alice@business.com") == []


async def test_confirmation_can_be_turned_off(sandbox: Sandbox) -> None:
    async with graph_stack(sandbox) as (graph, log):
        result = await GraphMailer(graph, confirm_delivery=False).send_test(
            principal="erin@business.com",
            from_addr="erin@business.com",
            to_addr="alice@business.com",
            sender=None,
            test_id=new_test_id(),
        )
    assert (result.ok, result.delivered) == (True, None)
    assert log.paths() == ["/v1.0/users/erin@business.com/sendMail"]


async def test_delivery_unknown_when_the_app_may_not_read_mail(sandbox: Sandbox) -> None:
    sandbox.app.graph_roles.discard("Mail.ReadBasic.All")
    result, _ = await send(sandbox, "erin@business.com", "erin@business.com", "alice@business.com")
    assert (result.ok, result.code, result.delivered) == (True, None, None)
    assert any(line.startswith("Delivery not checked (the app may not read that mailbox)") for line in result.evidence)
    assert len(inbox(sandbox, "alice@business.com")) == 1


async def test_delivery_unknown_for_a_recipient_outside_the_tenant(sandbox: Sandbox) -> None:
    result, _ = await send(sandbox, "erin@business.com", "erin@business.com", "someone@example.org")
    assert (result.ok, result.delivered) == (True, None)
    assert any("the recipient is not a user of this tenant" in line for line in result.evidence)
    assert [m.to for m in sandbox.tenant.outbound] == [["someone@example.org"]]


async def test_a_message_that_never_arrives_is_not_delivered(sandbox: Sandbox) -> None:
    alice = sandbox.tenant.user("alice@business.com")
    assert alice is not None
    waits: list[float] = []

    async def quarantine(seconds: float) -> None:  # the message disappears before anyone looks
        waits.append(seconds)
        sandbox.tenant.messages.pop(alice.id, None)

    async with graph_stack(sandbox) as (graph, log):
        mailer = GraphMailer(
            graph, confirm_attempts=4, confirm_first_delay=0.5, confirm_max_delay=1.5, sleep=quarantine
        )
        result = await mailer.send_test(
            principal="erin@business.com",
            from_addr="erin@business.com",
            to_addr="alice@business.com",
            sender=None,
            test_id="ED-NEVER00001",
        )
    assert (result.ok, result.delivered) == (True, False)
    assert waits == [0.5, 1.0, 1.5, 1.5]  # bounded back-off
    assert log.paths("GET") == ["/v1.0/users/alice@business.com/messages"] * 4
    assert log.params("/messages", "$filter") == ["subject eq 'emaildoctor test ED-NEVER00001'"] * 4
    assert result.evidence[-1] == (
        "The test message is not in alice@business.com's mailbox after 4.5 s (test id ED-NEVER00001)."
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("from_addr", "alice@business.com\r\nBcc: x@example.org"), ("to_addr", "not an address"), ("principal", "")],
)
async def test_bad_addresses_are_refused_before_sending(sandbox: Sandbox, field: str, value: str) -> None:
    arguments = {
        "principal": "erin@business.com",
        "from_addr": "erin@business.com",
        "to_addr": "alice@business.com",
        "sender": None,
        "test_id": new_test_id(),
    } | {field: value}
    async with graph_stack(sandbox) as (graph, log):
        with pytest.raises(ConfigError):
            await GraphMailer(graph).send_test(**arguments)  # type: ignore[arg-type]
    assert log.requests == []


async def test_no_secret_or_token_in_results_or_logs(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = m365_settings(sandbox)
    provider = AppTokenProvider(settings)
    token = (await provider.token(graph_scope(settings))).token
    results = []
    async with GraphClient(settings, provider.credential()) as graph:
        mailer = GraphMailer(graph, sleep=no_wait)
        for principal, from_addr in (
            ("erin@business.com", "erin@business.com"),
            ("admin@business.com", "alice@business.com"),
        ):
            results.append(
                await mailer.send_test(
                    principal=principal,
                    from_addr=from_addr,
                    to_addr="alice@business.com",
                    sender=None,
                    test_id=new_test_id(),
                )
            )
    await provider.aclose()
    assert [r.ok for r in results] == [True, False]
    seen = caplog.text + " ".join(f"{r.message} {r.evidence}" for r in results)
    assert caplog.records
    assert token not in seen
    assert "eyJ" not in seen
    assert sandbox.app.secrets[0] not in seen


async def test_delivery_to_an_alias_is_found_by_object_id(sandbox: Sandbox) -> None:
    alice = sandbox.tenant.user("alice@business.com")
    assert alice is not None
    alice.proxy_addresses.append("smtp:a.archer@business.com")
    sandbox.tenant.add_user(alice)
    result, _ = await send(sandbox, "erin@business.com", "erin@business.com", "a.archer@business.com")
    assert (result.ok, result.delivered) == (True, True)
    assert len(inbox(sandbox, "alice@business.com")) == 1

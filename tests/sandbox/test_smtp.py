"""SMTP submission with the real aiosmtplib: the transcript, every AUTH outcome, SendAs checks, limits, delivery."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage

import aiosmtplib
import pytest

from sandbox.runtime import Sandbox
from sandbox.state import Tenant
from tests.sandbox.helpers import bearer, http

BOB_PASSWORD = "sandbox-bob-Pa55"
ADMIN_PASSWORD = "sandbox-admin-Pa55"
SEND_AS_DENIED_554 = "5.2.252 SendAsDenied; admin@business.com not allowed to send as alice@business.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied;"


def client(
    sandbox: Sandbox, *, implicit: bool = False, start_tls: bool | None = True, timeout: float = 5
) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=sandbox.urls.smtp_host,
        port=sandbox.urls.smtp_tls_port if implicit else sandbox.urls.smtp_starttls_port,
        use_tls=implicit,
        start_tls=None if implicit else start_tls,
        tls_context=sandbox.client_ssl_context(),
        timeout=timeout,
    )


def mail(sender: str, to: str, subject: str = "emaildoctor test", header_sender: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    if header_sender:
        message["Sender"] = header_sender
    message.set_content("This is a test message.")
    return message


def xoauth2(user: str, token: str) -> bytes:
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode())


@pytest.fixture
async def smtp(sandbox: Sandbox) -> AsyncIterator[Callable[..., aiosmtplib.SMTP]]:
    opened: list[aiosmtplib.SMTP] = []

    def make(**kwargs: object) -> aiosmtplib.SMTP:
        connection = client(sandbox, **kwargs)  # type: ignore[arg-type]
        opened.append(connection)
        return connection

    yield make
    for connection in opened:
        connection.close()


async def test_transcript_before_and_after_starttls(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    connection = smtp(start_tls=False)
    greeting = await connection.connect()
    assert greeting.code == 220
    assert greeting.message.startswith("BN8PR12CA0001.outlook.office365.com Microsoft ESMTP MAIL Service ready at ")
    before = await connection.ehlo()
    assert before.message.splitlines() == [
        "BN8PR12CA0001.outlook.office365.com Hello [127.0.0.1]",
        "SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS",
        "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8",
    ]  # fmt: skip
    assert not connection.supports_extension("auth")
    refused = await connection.execute_command(b"AUTH", b"LOGIN")
    assert (refused.code, refused.message) == (504, "5.7.4 Unrecognized authentication type")
    tls = await connection.starttls()
    assert (tls.code, tls.message) == (220, "2.0.0 SMTP server ready")
    no_hello = await connection.execute_command(b"MAIL", b"FROM:<bob@business.com>")
    assert (no_hello.code, no_hello.message) == (503, "5.5.2 Send hello first")
    after = await connection.ehlo()
    lines = after.message.splitlines()
    assert "AUTH LOGIN XOAUTH2" in lines and "STARTTLS" not in lines
    assert connection.server_auth_methods == ["login", "xoauth2"]
    not_authenticated = await connection.execute_command(b"MAIL", b"FROM:<bob@business.com>")
    assert (not_authenticated.code, not_authenticated.message) == (530, "5.7.57 Client not authenticated to send mail.")
    bye = await connection.quit()
    assert (bye.code, bye.message) == (221, "2.0.0 Service closing transmission channel")


async def test_implicit_tls_port_advertises_auth(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    connection = smtp(implicit=True)
    await connection.connect()
    await connection.ehlo()
    assert connection.server_auth_methods == ["login", "xoauth2"]
    assert not connection.supports_extension("starttls")
    await connection.login("bob@business.com", BOB_PASSWORD)
    await connection.quit()


async def test_basic_auth_send_is_delivered_and_visible_in_graph(
    sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]
) -> None:
    connection = smtp()
    await connection.connect()
    login = await connection.login("bob@business.com", BOB_PASSWORD)
    assert (login.code, login.message) == (235, "2.7.0 Authentication successful")
    mail_from = await connection.mail("bob@business.com")
    rcpt = await connection.rcpt("alice@business.com")
    data = await connection.data(mail("bob@business.com", "alice@business.com", "via smtp").as_bytes())
    await connection.quit()
    assert (mail_from.code, mail_from.message) == (250, "2.1.0 Sender OK")
    assert (rcpt.code, rcpt.message) == (250, "2.1.5 Recipient OK")
    assert data.code == 250 and data.message.startswith("2.0.0 OK <")
    async with http(sandbox) as graph:
        response = await graph.get(
            f"{sandbox.urls.graph}/v1.0/users/alice@business.com/messages",
            params={"$filter": "subject eq 'via smtp'"},
            headers=bearer(sandbox.app_token("graph")),
        )
    [received] = response.json()["value"]
    assert received["from"]["emailAddress"]["address"] == "bob@business.com"


async def test_auth_plain_and_two_step_login(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    connection = smtp()
    await connection.connect()
    await connection.ehlo()
    plain = base64.b64encode(b"\x00bob@business.com\x00" + BOB_PASSWORD.encode())
    response = await connection.execute_command(b"AUTH", b"PLAIN", plain)
    assert response.code == 235
    await connection.quit()
    connection = smtp()
    await connection.connect()
    await connection.ehlo()
    challenge = await connection.execute_command(b"AUTH", b"LOGIN")
    assert (challenge.code, base64.b64decode(challenge.message)) == (334, b"Username:")
    password_prompt = await connection.execute_command(base64.b64encode(b"support@business.com"))
    assert base64.b64decode(password_prompt.message) == b"Password:"
    done = await connection.execute_command(base64.b64encode(b"sandbox-support-Pa55"))
    assert done.code == 235


async def test_unknown_mechanism(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    connection = smtp()
    await connection.connect()
    await connection.ehlo()
    response = await connection.execute_command(b"AUTH", b"CRAM-MD5")
    assert (response.code, response.message) == (504, "5.7.4 Unrecognized authentication type")


def _mailbox(tenant: Tenant, address: str, value: bool | None) -> None:
    user = tenant.user_by_address(address)
    assert user is not None
    user.smtp_auth_disabled = value


@pytest.mark.parametrize(
    ("setup", "code", "text"),
    [
        (lambda t: None, 535, "5.7.3 Authentication unsuccessful ["),
        (
            lambda t: _mailbox(t, "bob@business.com", None),
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
        ),
        (
            lambda t: _mailbox(t, "bob@business.com", True),
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
        ),
        (
            lambda t: setattr(t, "security_defaults", True),
            535,
            "5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator.",
        ),
        (
            lambda t: setattr(t, "conditional_access_block_legacy_auth", True),
            535,
            "5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator.",
        ),
        (
            lambda t: setattr(t, "basic_auth_disabled", True),
            535,
            "5.7.139 Authentication unsuccessful, basic authentication is disabled.",
        ),
        (
            lambda t: setattr(t, "basic_auth_retired", True),
            550,
            "5.7.30 Basic authentication is not supported for Client Submission.",
        ),
    ],
    ids=[
        "wrong-password",
        "tenant-disabled",
        "mailbox-disabled",
        "security-defaults",
        "conditional-access",
        "basic-disabled",
        "basic-retired",
    ],
)
async def test_basic_auth_refusals(
    sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP], setup: Callable[[Tenant], None], code: int, text: str
) -> None:
    setup(sandbox.tenant)
    password = "wrong" if text.startswith("5.7.3 ") else BOB_PASSWORD
    connection = smtp()
    await connection.connect()
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as caught:
        await connection.login("bob@business.com", password)
    assert caught.value.code == code
    assert caught.value.message.startswith(text)


async def test_send_as_denied_after_data_by_default(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    connection = smtp()
    await connection.connect()
    await connection.login("admin@business.com", ADMIN_PASSWORD)
    assert (await connection.mail("alice@business.com")).code == 250
    assert (await connection.rcpt("alice@business.com")).code == 250
    with pytest.raises(aiosmtplib.SMTPDataError) as caught:
        await connection.data(mail("alice@business.com", "alice@business.com").as_bytes())
    assert caught.value.code == 554
    assert caught.value.message.startswith(SEND_AS_DENIED_554)
    henry = await connection.sendmail(
        "henry@business.com", ["alice@business.com"], mail("henry@business.com", "alice@business.com").as_bytes()
    )
    assert henry[1].startswith("2.0.0 OK")


async def test_send_as_denied_at_mail_from_when_configured(
    sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]
) -> None:
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(smtp_send_as_check="mail")
    connection = smtp()
    await connection.connect()
    await connection.login("admin@business.com", ADMIN_PASSWORD)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as caught:
        await connection.mail("alice@business.com")
    assert caught.value.code == 550
    assert caught.value.message == "5.7.60 SMTP; Client does not have permissions to send as this sender"


async def test_send_on_behalf_over_smtp_is_a_setting(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    message = mail("frank@business.com", "bob@business.com", header_sender="admin@business.com").as_bytes()
    connection = smtp()
    await connection.connect()
    await connection.login("admin@business.com", ADMIN_PASSWORD)
    with pytest.raises(aiosmtplib.SMTPDataError):
        await connection.sendmail("admin@business.com", ["bob@business.com"], message)
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(smtp_send_on_behalf=True)
    accepted = await connection.sendmail("admin@business.com", ["bob@business.com"], message)
    assert accepted[1].startswith("2.0.0 OK")


async def test_unknown_internal_recipient(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    connection = smtp()
    await connection.connect()
    await connection.login("bob@business.com", BOB_PASSWORD)
    await connection.mail("bob@business.com")
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as caught:
        await connection.rcpt("ghost@business.com")
    assert caught.value.code == 550
    assert caught.value.message.startswith("5.1.10 RESOLVER.ADR.RecipientNotFound")


async def test_xoauth2_app_only_as_shared_mailbox(sandbox: Sandbox) -> None:
    async def token() -> str:
        return sandbox.app_token("exchange")

    errors, response = await aiosmtplib.send(
        mail("sales@business.com", "alice@business.com", "from sales"),
        hostname=sandbox.urls.smtp_host,
        port=sandbox.urls.smtp_starttls_port,
        start_tls=True,
        tls_context=sandbox.client_ssl_context(),
        username="sales@business.com",
        oauth_token_generator=token,
        timeout=5,
    )
    assert errors == {} and response.startswith("2.0.0 OK")
    alice = sandbox.tenant.user("alice@business.com")
    assert alice is not None
    assert [m.subject for m in sandbox.tenant.messages[alice.id]] == ["from sales"]


async def test_xoauth2_two_step_and_refusals(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    connection = smtp()
    await connection.connect()
    await connection.ehlo()
    first = await connection.execute_command(b"AUTH", b"XOAUTH2")
    assert (first.code, first.message) == (334, "")
    done = await connection.execute_command(xoauth2("sales@business.com", sandbox.app_token("exchange")))
    assert done.code == 235
    await connection.quit()

    async def outcome(user: str, token: str) -> tuple[int, str]:
        attempt = smtp()
        await attempt.connect()
        await attempt.ehlo()
        reply = await attempt.execute_command(b"AUTH", b"XOAUTH2", xoauth2(user, token))
        await attempt.quit()
        return reply.code, reply.message

    app_token = sandbox.app_token("exchange")
    assert (await outcome("support@business.com", app_token))[0] == 535  # no FullAccess for the app on support@
    assert (await outcome("sales@business.com", sandbox.app_token("graph")))[1].startswith("5.7.3 ")  # wrong audience
    erin = sandbox.user_token("exchange", "erin@business.com", ["SMTP.Send"])
    assert (await outcome("erin@business.com", erin)) == (
        535,
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
    )
    _mailbox(sandbox.tenant, "erin@business.com", False)
    assert (await outcome("erin@business.com", erin))[0] == 235
    assert (await outcome("bob@business.com", erin))[0] == 535  # delegated token for someone else's mailbox
    sandbox.app.exchange_service_principal = False
    assert (await outcome("sales@business.com", app_token))[0] == 535  # service principal not registered in Exchange


async def test_fourth_concurrent_connection_gets_432(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    connections = [smtp() for _ in range(4)]
    for connection in connections:
        await connection.connect()
        await connection.login("bob@business.com", BOB_PASSWORD)
    for connection in connections[:3]:
        assert (await connection.mail("bob@business.com")).code == 250
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as caught:
        await connections[3].mail("bob@business.com")
    assert caught.value.code == 432
    assert caught.value.message == "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"
    await connections[0].quit()
    await connections[3].quit()
    fresh = smtp()
    await fresh.connect()
    await fresh.login("bob@business.com", BOB_PASSWORD)
    assert (await fresh.mail("bob@business.com")).code == 250


async def test_daily_quota(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    sandbox.tenant.behaviour = sandbox.tenant.behaviour.changed(smtp_daily_recipient_limit=2)
    connection = smtp()
    await connection.connect()
    await connection.login("bob@business.com", BOB_PASSWORD)
    message = mail("bob@business.com", "alice@business.com").as_bytes()
    await connection.sendmail("bob@business.com", ["alice@business.com", "erin@business.com"], message)
    with pytest.raises(aiosmtplib.SMTPDataError) as caught:
        await connection.sendmail("bob@business.com", ["alice@business.com"], message)
    assert caught.value.code == 554
    assert caught.value.message.startswith("5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException")


async def test_xoauth2_accepts_real_sized_tokens(sandbox: Sandbox, smtp: Callable[..., aiosmtplib.SMTP]) -> None:
    app = sandbox.app
    token = sandbox.issuer.issue(
        {
            "aud": "https://outlook.office365.com",
            "appid": app.client_id,
            "oid": app.service_principal_id,
            "idtyp": "app",
            "roles": ["SMTP.SendAsApp"],
            "xms_padding": "x" * 3500,  # real Entra tokens are 2-4 KB; aiosmtpd's default line limit is 512 bytes
        },
        3600,
    )
    assert len(xoauth2("sales@business.com", token)) > 4096
    connection = smtp()
    await connection.connect()
    await connection.ehlo()
    response = await connection.execute_command(b"AUTH", b"XOAUTH2", xoauth2("sales@business.com", token))
    assert response.code == 235

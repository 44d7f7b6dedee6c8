"""Sign-in through the real msal against the sandbox's Entra authority over TLS: secret and certificate,
the token cache, Entra's refusals as our errors, the msgraph credential, device-code login and token lint."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from graph.auth import (
    AppTokenProvider,
    SignInConfigurationError,
    SignInError,
    delegated_scope,
    exchange_scope,
    graph_scope,
    smtp_scope,
    smtp_token_source,
)
from graph.device_login import DeviceCodeLogin, DeviceCodePrompt
from graph.token_lint import (
    SMTP_APP_ROLE,
    SMTP_DELEGATED_SCOPE,
    exchange_audiences,
    graph_audiences,
    lint_token,
)
from plugin.cli_smtp import load_token_source
from plugin.diagnosis import Code
from plugin.errors import ConfigError, ServiceError
from plugin.probe import run_probe
from plugin.probe_request import ProbeRequest
from plugin.settings import Security, Settings
from sandbox.faults import Served
from sandbox.runtime import Sandbox
from sandbox.testing import SandboxFactory
from sandbox.tls import generated_app_certificate
from tests.graph.fixtures_m365 import CountingSession, app_named, m365_settings

WRONG_SECRET = "wrong-secret-Zz9!k"


async def test_client_secret_token_is_cached(sandbox: Sandbox) -> None:
    session = CountingSession(sandbox)
    provider = AppTokenProvider(m365_settings(sandbox), http_client=session)
    first = await provider.token(graph_scope(provider.settings))
    second = await provider.token(graph_scope(provider.settings))
    assert session.token_requests == 1
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.token == first.token
    lint = lint_token(
        first.token,
        expected_audience=graph_audiences(provider.settings),
        needed_role="Mail.Send",
        needed_scope=None,
        now=sandbox.clock.now(),
        expected_tenant=sandbox.tenant.id,
    )
    assert lint.ok, lint.problems
    assert lint.app_only and lint.app_id == sandbox.app.client_id
    assert lint.roles == ("Mail.ReadBasic.All", "Mail.Send", "User.Read.All")
    await provider.token(exchange_scope(provider.settings))
    assert session.token_requests == 2  # one token per resource
    session.close()


async def test_concurrent_first_calls_make_one_token_request(sandbox: Sandbox) -> None:
    session = CountingSession(sandbox)
    provider = AppTokenProvider(m365_settings(sandbox), http_client=session)
    tokens = await asyncio.gather(*(provider.token(graph_scope(provider.settings)) for _ in range(5)))
    assert len({t.token for t in tokens}) == 1
    assert session.token_requests == 1
    session.close()


async def test_a_burst_of_callers_signs_in_to_both_services_at_once(sandbox: Sandbox) -> None:
    """Forty requests at once need tokens for Graph and Exchange: the two sign-ins overlap. Waiting callers share
    one acquisition instead of each holding a worker thread (asyncio's default pool has cores + 4), which had put
    one service's sign-in behind the other's."""
    session = CountingSession(sandbox)
    provider = AppTokenProvider(m365_settings(sandbox), http_client=session)
    sandbox.faults.set("login", latency_ms=300)
    journal: list[Served] = []
    sandbox.faults.journal = journal
    scopes = [graph_scope(provider.settings)] * 20 + [exchange_scope(provider.settings)] * 20
    tokens = await asyncio.gather(*(provider.token(scope) for scope in scopes))
    sandbox.faults.journal = None
    session.close()
    assert len({t.token for t in tokens}) == 2
    graph, exchange = (s for s in journal if s.service == "login" and s.what.endswith("/token"))
    assert graph.started < exchange.ended and exchange.started < graph.ended


async def test_certificate_sign_in_gets_smtp_token(sandbox: Sandbox) -> None:
    settings = m365_settings(sandbox, certificate=True)
    provider = AppTokenProvider(settings)
    token = await provider.token(smtp_scope(settings))
    lint = lint_token(
        token.token,
        expected_audience=exchange_audiences(settings),
        needed_role=SMTP_APP_ROLE,
        needed_scope=None,
        now=sandbox.clock.now(),
    )
    assert lint.ok, lint.problems
    assert lint.roles == ("Exchange.ManageAsApp", "SMTP.SendAsApp")
    await provider.aclose()


def _encrypted_copy(sandbox: Sandbox, tmp_path: Path, password: str) -> Path:
    cert = sandbox.app.certificates[0]
    assert cert.private_key_pem is not None
    key = serialization.load_pem_private_key(cert.private_key_pem.encode(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    ).decode()
    path = tmp_path / "encrypted.pem"
    path.write_text(cert.pem + encrypted)
    return path


async def test_certificate_with_password(sandbox: Sandbox, tmp_path: Path) -> None:
    path = _encrypted_copy(sandbox, tmp_path, "pem-Pa55word")
    settings = m365_settings(sandbox, certificate_path=path, certificate_password=SecretStr("pem-Pa55word"))
    provider = AppTokenProvider(settings)
    assert (await provider.token(graph_scope(settings))).token
    await provider.aclose()


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (None, "the key is encrypted: set EMAILDOCTOR_M365__CERTIFICATE_PASSWORD"),
        ("not-the-password", "wrong EMAILDOCTOR_M365__CERTIFICATE_PASSWORD"),
    ],
)
async def test_certificate_password_problems_are_config_errors(
    sandbox: Sandbox, tmp_path: Path, password: str | None, message: str
) -> None:
    path = _encrypted_copy(sandbox, tmp_path, "pem-Pa55word")
    secret = SecretStr(password) if password else None
    provider = AppTokenProvider(m365_settings(sandbox, certificate_path=path, certificate_password=secret))
    with pytest.raises(ConfigError, match=message) as caught:
        await provider.token(graph_scope(provider.settings))
    assert "pem-Pa55word" not in str(caught.value)


async def test_pem_without_key_is_a_config_error(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "cert-only.pem"
    path.write_text(sandbox.app.certificates[0].pem)
    provider = AppTokenProvider(m365_settings(sandbox, certificate_path=path))
    with pytest.raises(ConfigError, match="must hold both the private key and the certificate"):
        await provider.token(graph_scope(provider.settings))


async def test_unregistered_certificate_names_its_thumbprint(sandbox: Sandbox, tmp_path: Path) -> None:
    other = generated_app_certificate("someone-else")
    assert other.private_key_pem is not None
    path = tmp_path / "other.pem"
    path.write_text(other.private_key_pem + other.pem)
    provider = AppTokenProvider(m365_settings(sandbox, certificate_path=path))
    with pytest.raises(SignInError) as caught:
        await provider.token(graph_scope(provider.settings))
    error = caught.value
    assert (error.code, error.aadsts, error.error) == (Code.OAUTH_TOKEN_INVALID, 700027, "invalid_client")
    assert other.thumbprint_sha1 in str(error)
    await provider.aclose()


async def test_wrong_secret_is_oauth_token_invalid_without_the_secret(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = AppTokenProvider(m365_settings(sandbox, client_secret=SecretStr(WRONG_SECRET)))
    with pytest.raises(SignInError) as caught:
        await provider.token(graph_scope(provider.settings))
    error = caught.value
    assert isinstance(error, ServiceError) and not isinstance(error, ConfigError)
    assert (error.code, error.aadsts) == (Code.OAUTH_TOKEN_INVALID, 7000215)
    assert "EMAILDOCTOR_M365__CLIENT_SECRET" in error.message
    assert "Secret ID" in error.message
    everything = f"{error} {error.detail} {error!r} {caplog.text}"
    assert WRONG_SECRET not in everything
    assert sandbox.app.secrets[0] not in everything
    await provider.aclose()


@pytest.mark.parametrize(
    ("changes", "aadsts", "setting"),
    [
        ({"client_id": "00000000-1111-2222-3333-444444444444"}, 700016, "EMAILDOCTOR_M365__CLIENT_ID"),
        ({"tenant_id": "contoso.example"}, 90002, "EMAILDOCTOR_M365__TENANT_ID"),
    ],
)
async def test_unknown_app_or_tenant_is_a_configuration_error(
    sandbox: Sandbox, changes: dict[str, Any], aadsts: int, setting: str
) -> None:
    provider = AppTokenProvider(m365_settings(sandbox, **changes))
    with pytest.raises(SignInConfigurationError) as caught:
        await provider.token(graph_scope(provider.settings))
    error = caught.value
    assert isinstance(error, ConfigError) and isinstance(error, ServiceError)
    assert (error.code, error.aadsts) == (Code.OAUTH_TOKEN_INVALID, aadsts)
    assert setting in error.message
    await provider.aclose()


async def test_throttled_sign_in(sandbox: Sandbox) -> None:
    provider = AppTokenProvider(m365_settings(sandbox))
    await provider.token(graph_scope(provider.settings))  # reads the OpenID configuration, caches a Graph token
    sandbox.faults.set("login", throttle_burst=1, retry_after_s=1)
    with pytest.raises(SignInError) as caught:
        await provider.token(exchange_scope(provider.settings))
    assert caught.value.code is Code.THROTTLED
    assert (await provider.token(graph_scope(provider.settings))).from_cache  # cached tokens still serve
    await provider.aclose()


async def test_unreachable_sign_in_service(sandbox: Sandbox) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = AppTokenProvider(m365_settings(sandbox, authority_host=f"https://127.0.0.1:{port}"))
    with pytest.raises(SignInError) as caught:
        await provider.token(graph_scope(provider.settings))
    assert caught.value.code is Code.SERVER_UNAVAILABLE
    assert "EMAILDOCTOR_M365__AUTHORITY_HOST" in caught.value.message
    await provider.aclose()


async def test_ca_file_decides_trust_not_the_environment(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests would let REQUESTS_CA_BUNDLE replace msal's verify; our session ignores it both ways.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_path))
    untrusted = AppTokenProvider(m365_settings(sandbox, ca_file=None))
    with pytest.raises(SignInError) as caught:
        await untrusted.token(graph_scope(untrusted.settings))
    assert caught.value.code is Code.TLS_CERTIFICATE_INVALID
    assert "EMAILDOCTOR_M365__CA_FILE" in caught.value.message
    await untrusted.aclose()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/ca.pem")
    trusted = AppTokenProvider(m365_settings(sandbox))
    assert (await trusted.token(graph_scope(trusted.settings))).token
    await trusted.aclose()


async def test_constructor_does_no_io_and_refuses_missing_settings(sandbox: Sandbox) -> None:
    sandbox.faults.set("login", drop_rate=1.0)  # any request would fail
    AppTokenProvider(m365_settings(sandbox))
    DeviceCodeLogin(m365_settings(sandbox))
    with pytest.raises(ConfigError, match="EMAILDOCTOR_M365__TENANT_ID"):
        AppTokenProvider(Settings().m365)


async def test_token_sources_have_one_shape(sandbox: Sandbox) -> None:
    settings = Settings(m365=m365_settings(sandbox))
    provider = AppTokenProvider(settings.m365)
    graph_token = await provider.token_source(graph_scope(settings.m365))()
    entry_point_token = await load_token_source(settings)()
    direct_token = await smtp_token_source(settings)()
    for token, audiences, role in (
        (graph_token, graph_audiences(settings.m365), "Mail.Send"),
        (entry_point_token, exchange_audiences(settings.m365), SMTP_APP_ROLE),
        (direct_token, exchange_audiences(settings.m365), SMTP_APP_ROLE),
    ):
        assert isinstance(token, str)
        lint = lint_token(
            token, expected_audience=audiences, needed_role=role, needed_scope=None, now=sandbox.clock.now()
        )
        assert lint.ok, lint.problems
    await provider.aclose()


async def test_msal_credential_is_an_async_token_credential(sandbox: Sandbox) -> None:
    provider = AppTokenProvider(m365_settings(sandbox))
    async with provider.credential() as credential:
        token = await credential.get_token(graph_scope(provider.settings), enable_cae=True)
        with pytest.raises(ConfigError, match="exactly one"):
            await credential.get_token(graph_scope(provider.settings), exchange_scope(provider.settings))
    assert token.token == (await provider.token(graph_scope(provider.settings))).token
    assert token.expires_on > sandbox.clock.now().timestamp() + 3000
    await provider.aclose()


# --- token lint ----------------------------------------------------------------------------------------------


async def test_lint_finds_a_wrong_audience(sandbox: Sandbox) -> None:
    settings = m365_settings(sandbox)
    provider = AppTokenProvider(settings)
    graph_token = (await provider.token(graph_scope(settings))).token
    lint = lint_token(
        graph_token,
        expected_audience=exchange_audiences(settings),
        needed_role=SMTP_APP_ROLE,
        needed_scope=SMTP_DELEGATED_SCOPE,
        now=sandbox.clock.now(),
    )
    assert lint.audience == "https://graph.microsoft.com"
    assert any("is for https://graph.microsoft.com" in p and "/.default" in p for p in lint.problems)
    assert any("no SMTP.SendAsApp role" in p for p in lint.problems)
    assert graph_token not in " ".join(lint.evidence())
    await provider.aclose()


async def test_lint_finds_a_missing_smtp_role(sandbox: Sandbox) -> None:
    settings = m365_settings(sandbox, app_named(sandbox, "legacy-scanner"))
    provider = AppTokenProvider(settings)
    token = (await provider.token(smtp_scope(settings))).token
    lint = lint_token(
        token,
        expected_audience=exchange_audiences(settings),
        needed_role=SMTP_APP_ROLE,
        needed_scope=None,
        now=sandbox.clock.now(),
    )
    assert lint.roles == ()
    assert lint.problems == (
        "The app's token has no SMTP.SendAsApp role (it has no roles at all): add the application permission "
        "SMTP.SendAsApp to the app registration and grant admin consent, then get a new token.",
    )
    await provider.aclose()


async def test_lint_finds_an_expired_token(sandbox: Sandbox) -> None:
    settings = m365_settings(sandbox)
    provider = AppTokenProvider(settings)
    token = (await provider.token(smtp_scope(settings))).token
    sandbox.advance(2 * 3600)
    lint = lint_token(
        token,
        expected_audience=exchange_audiences(settings),
        needed_role=SMTP_APP_ROLE,
        needed_scope=None,
        now=sandbox.clock.now(),
    )
    assert len(lint.problems) == 1
    assert lint.problems[0].startswith("The token expired at ")
    assert "hour" in lint.problems[0] or "minutes" in lint.problems[0]
    await provider.aclose()


def test_lint_refuses_what_is_not_a_jwt() -> None:
    lint = lint_token(
        "not-a-token", expected_audience={"x"}, needed_role=None, needed_scope=None, now=datetime.now(UTC)
    )
    assert not lint.is_jwt and not lint.ok
    assert "not a JWT" in lint.problems[0]
    assert lint.summary() == "not a JWT access token"


# --- device code ---------------------------------------------------------------------------------------------


async def _approve(sandbox: Sandbox, user_code: str, upn: str) -> None:
    async with httpx.AsyncClient(verify=sandbox.client_ssl_context(), timeout=10) as client:
        response = await client.post(
            f"{sandbox.urls.admin}/_sandbox/devicecode/approve", json={"user_code": user_code, "upn": upn}
        )
    assert response.status_code == 200, response.text


async def test_device_code_login_end_to_end(sandbox: Sandbox) -> None:
    settings = m365_settings(sandbox)
    login = DeviceCodeLogin(settings)
    prompts: list[DeviceCodePrompt] = []

    async def show(prompt: DeviceCodePrompt) -> None:
        prompts.append(prompt)
        await _approve(sandbox, prompt.user_code, "erin@business.com")  # what Erin does in her browser

    smtp = [delegated_scope(settings.exchange_url, "SMTP.Send")]
    user = await login.sign_in(smtp, show)
    assert user.upn == "erin@business.com"
    assert prompts[0].verification_uri == "https://microsoft.com/devicelogin"
    assert prompts[0].user_code in prompts[0].message
    token = await login.token_source(smtp)()
    lint = lint_token(
        token,
        expected_audience=exchange_audiences(settings),
        needed_role=None,
        needed_scope=SMTP_DELEGATED_SCOPE,
        now=sandbox.clock.now(),
    )
    assert lint.ok, lint.problems
    assert (lint.app_only, lint.upn, lint.scopes) == (False, "erin@business.com", ("SMTP.Send",))
    app_lint = lint_token(
        token,
        expected_audience=exchange_audiences(settings),
        needed_role=SMTP_APP_ROLE,
        needed_scope=None,
        now=sandbox.clock.now(),
    )
    assert any("delegated token for erin@business.com" in p for p in app_lint.problems)
    await login.aclose()


async def test_device_code_polls_until_approved(sandbox_factory: SandboxFactory) -> None:
    async with sandbox_factory(behaviour={"device_code_interval_seconds": 1}) as sandbox:
        login = DeviceCodeLogin(m365_settings(sandbox))
        approvals: list[asyncio.Task[None]] = []

        def show(prompt: DeviceCodePrompt) -> None:  # a plain callback works too

            async def later() -> None:
                await asyncio.sleep(0.3)
                await _approve(sandbox, prompt.user_code, "bob@business.com")

            approvals.append(asyncio.create_task(later()))

        user = await login.sign_in([delegated_scope(sandbox.urls.graph, "Mail.Send")], show)
        await approvals[0]
        assert user.upn == "bob@business.com"
        await login.aclose()


async def test_device_code_expiry_is_reported(sandbox: Sandbox) -> None:
    login = DeviceCodeLogin(m365_settings(sandbox))

    def walk_away(prompt: DeviceCodePrompt) -> None:
        sandbox.advance(prompt.expires_in + 1)

    with pytest.raises(SignInError) as caught:
        await login.sign_in([delegated_scope(sandbox.urls.graph, "Mail.Send")], walk_away)
    assert (caught.value.code, caught.value.error, caught.value.aadsts) == (Code.TIMEOUT, "expired_token", 70020)
    assert "in time" in caught.value.message
    await login.aclose()


async def test_token_source_before_sign_in_says_sign_in(sandbox: Sandbox) -> None:
    login = DeviceCodeLogin(m365_settings(sandbox))
    with pytest.raises(SignInError, match="Nobody is signed in"):
        await login.token_source([delegated_scope(sandbox.urls.graph, "Mail.Send")])()


async def test_no_secret_or_token_in_logs(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = m365_settings(sandbox)
    provider = AppTokenProvider(settings)
    tokens = [(await provider.token(scope)).token for scope in (graph_scope(settings), exchange_scope(settings))]
    await provider.aclose()
    assert caplog.records, "msal and urllib3 log at DEBUG; the check would be empty otherwise"
    for secret in (sandbox.app.secrets[0], *tokens):
        assert secret not in caplog.text
    assert "eyJ" not in caplog.text


async def test_device_code_needs_a_public_client(sandbox: Sandbox) -> None:
    login = DeviceCodeLogin(m365_settings(sandbox, app_named(sandbox, "legacy-scanner")))
    with pytest.raises(SignInConfigurationError, match="Allow public client flows") as caught:
        await login.sign_in([delegated_scope(sandbox.urls.graph, "Mail.Send")], lambda prompt: None)
    assert caught.value.aadsts == 7000218
    await login.aclose()


async def test_entry_point_token_signs_in_over_smtp_xoauth2(sandbox: Sandbox) -> None:
    # What `emaildoctor smtp-test --oauth` does: the core's probe with the token source this package provides.
    settings = Settings(m365=m365_settings(sandbox))
    request = ProbeRequest(
        host=sandbox.urls.smtp_host,
        port=sandbox.urls.smtp_starttls_port,
        security=Security.STARTTLS,
        from_addr="sales@business.com",
        to_addr="bob@business.com",
        user="sales@business.com",
        token_source=load_token_source(settings),
        ca_file=sandbox.ca_path,
        timeout=10,
    )
    result = await run_probe(request)
    assert result.ok, result.diagnosis
    assert result.mechanism == "xoauth2"
    assert not any("eyJ" in line for line in result.transcript)

"""Signing in without a secret: the real azure-identity (ManagedIdentityCredential, WorkloadIdentityCredential)
against the sandbox's App Service identity endpoint and its federated sign-in, through the same token sources msal
feeds (Graph, the Exchange admin API), the installed `emaildoctor` and `emaildoctor check`. No mocks: the
platform's variables are set in the environment as App Service or AKS would set them."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from graph.auth import SignInConfigurationError, SignInError, app_token_provider, exchange_scope, graph_scope
from graph.azure_credentials import AzureIdentityProvider
from graph.services import M365Services
from graph.token_lint import lint_token
from plugin.cli import CliContext, _environ, build_parser, main
from plugin.cli_check import COMMAND
from plugin.diagnosis import Code
from plugin.errors import ConfigError
from plugin.settings import load_settings
from sandbox.runtime import Sandbox
from tests.commands import clean_env, run
from tests.graph.fixtures_m365 import m365_settings

PLATFORM_VARIABLES = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
)


@pytest.fixture(autouse=True)
def _no_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: this machine is not an Azure host."""
    for name in PLATFORM_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def on_app_service(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, header: str | None = None) -> None:
    for name, value in sandbox.identity_endpoint_env(header).items():
        monkeypatch.setenv(name, value)


def env_file(sandbox: Sandbox, folder: Path, credential: str, drop: tuple[str, ...] = (), **extra: str) -> Path:
    """The settings `emaildoctor sandbox` writes, signing in with ``credential`` instead of the client secret."""
    token_file = Path(extra.pop("token_file")) if "token_file" in extra else None
    values = sandbox.secretless_env(credential, token_file=token_file)
    values.update({"EMAILDOCTOR_STORE__URL": f"sqlite:///{folder / 'emaildoctor.db'}", **extra})
    path = folder / f"{credential}.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items() if k not in drop), encoding="utf-8")
    return path


async def emaildoctor(path: Path, *args: str) -> tuple[int, str, str]:
    """The command line in-process (``plugin.cli.main``: the installed command's parser, settings, exit codes and
    messages) in a worker thread, its own event loop, while the sandbox serves on this one."""
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(main, ["--env-file", str(path), *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def check_json(path: Path) -> dict[str, dict[str, Any]]:
    """`emaildoctor check --json --only m365 --only directory` in-process (the installed command's parser and settings)."""
    parsed = build_parser([COMMAND]).parse_args(
        ["--env-file", str(path), "check", "--json", "--only", "m365", "--only", "directory"]
    )
    out, err = io.StringIO(), io.StringIO()
    await COMMAND.run(parsed, CliContext(env_file=path, environ=_environ(path), out=out, err=err))
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return {c["name"]: c for c in json.loads(out.getvalue())["checks"]}


# --- managed identity ----------------------------------------------------------------------------------------


async def test_managed_identity_feeds_graph_and_exchange(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    on_app_service(monkeypatch, sandbox)
    settings = m365_settings(sandbox, client_secret=None, credential="managed_identity")
    provider = app_token_provider(settings)
    assert isinstance(provider, AzureIdentityProvider) and provider.secrets == [sandbox.managed_identity.header]
    first = await asyncio.gather(  # concurrent first calls: one request per scope, the scopes side by side
        *(provider.token(graph_scope(settings)) for _ in range(3)), provider.token(exchange_scope(settings))
    )
    graph, exchange = first[0], first[-1]
    assert not graph.from_cache and all(t.from_cache and t.token == graph.token for t in first[1:3])
    assert graph.token != exchange.token and (await provider.token(graph_scope(settings))).from_cache
    endpoint = sandbox.managed_identity
    assert sorted(r["resource"] for r in endpoint.requests) == sorted([settings.graph_url, settings.exchange_url])
    assert all(r["client_id"] == sandbox.app.client_id and r["header_ok"] == "true" for r in endpoint.requests)
    lint = lint_token(
        exchange.token,
        expected_audience=("https://outlook.office365.com",),
        needed_role="Exchange.ManageAsApp",
        needed_scope=None,
        now=sandbox.clock.now(),
        expected_tenant=sandbox.tenant.id,
    )
    assert lint.ok and lint.app_id == sandbox.app.client_id, lint.problems
    await provider.forget(graph_scope(settings))  # a service refused it: the next call asks the endpoint again
    assert not (await provider.token(graph_scope(settings))).from_cache and len(endpoint.requests) == 3
    await provider.aclose()

    async with M365Services(settings) as m365:  # Graph (msgraph-sdk) and the Exchange admin API on these tokens
        user = await m365.directory.get_user("kim@business.com")
        assert user is not None and user.upn == "kim@business.com"
        held = await m365.permissions.smtp_auth("kim@business.com")
        assert held.tenant_disabled is not None


async def test_installed_command_diagnoses_with_the_app_service_identity(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = env_file(sandbox, tmp_path, "managed_identity")
    assert "CLIENT_SECRET" not in settings.read_text(encoding="utf-8")
    platform = clean_env(**sandbox.identity_endpoint_env())  # as App Service sets them for the process
    code, out, err = await run("--env-file", str(settings), "perms", "sales@business.com", cwd=tmp_path, env=platform)
    assert code == 0, out + err
    assert "Send As:        admin@business.com, oscar@business.com" in out
    assert sandbox.managed_identity.requests and all(
        r["header_ok"] == "true" for r in sandbox.managed_identity.requests
    )

    on_app_service(monkeypatch, sandbox)
    code, out, err = await emaildoctor(settings, "test", "kim")  # a diagnosis: Graph, Exchange and SMTP
    assert code == 0, out + err
    assert "admin@business.com holds Send As on kim@business.com through the group Mail Senders" in out
    assert {r["resource"] for r in sandbox.managed_identity.requests} == {sandbox.urls.graph, sandbox.urls.exchange}

    on_app_service(monkeypatch, sandbox, "copied-from-another-app")
    code, out, err = await emaildoctor(settings, "perms", "sales@business.com")
    assert code == 1 and "Traceback" not in err
    assert "IDENTITY_HEADER does not match" in err and "EMAILDOCTOR_M365__CREDENTIAL=managed_identity" in err
    assert "[oauth_token_invalid]" in err and sandbox.managed_identity.header not in out + err


async def test_check_names_the_credential_and_the_token(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_app_service(monkeypatch, sandbox)
    system = env_file(sandbox, tmp_path, "managed_identity", drop=("EMAILDOCTOR_M365__CLIENT_ID",))
    checks = await check_json(system)
    row = checks["Entra sign-in"]
    assert row["ok"] is True, row
    assert f"managed identity (system-assigned, endpoint {sandbox.urls.identity_endpoint})" in row["detail"]
    assert "token obtained" in row["detail"]
    assert checks["token for Microsoft Graph"]["ok"] and checks["token for Exchange Online"]["ok"]
    assert checks["directory accounts in the tenant"]["ok"] is True  # Graph user lookups on the identity's token
    assert all("client_id" not in r for r in sandbox.managed_identity.requests)  # the system-assigned identity

    on_app_service(monkeypatch, sandbox, "stale-header")
    checks = await check_json(system)
    row = checks["Entra sign-in"]
    assert row["ok"] is False and "managed identity" in row["detail"] and "no token" in row["detail"]
    assert "IDENTITY_HEADER does not match" in row["fix"] and "EMAILDOCTOR_M365__CREDENTIAL" in row["fix"]
    assert [name for name, c in checks.items() if c["ok"] is False] == ["Entra sign-in"]


async def test_managed_identity_endpoint_problems_are_named(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    on_app_service(monkeypatch, sandbox)
    stranger = m365_settings(
        sandbox, client_secret=None, credential="managed_identity", client_id="00000000-0000-0000-0000-0000000000aa"
    )
    provider = app_token_provider(stranger)
    with pytest.raises(SignInConfigurationError) as refused:
        await provider.token(graph_scope(stranger))
    assert "Unable to load the proper Managed Identity" in str(refused.value)
    assert "user-assigned identity 00000000-0000-0000-0000-0000000000aa (EMAILDOCTOR_M365__CLIENT_ID)" in str(
        refused.value
    )
    await provider.aclose()

    sandbox.faults.set("login", error_rate=1.0, error_status=500)
    provider = app_token_provider(m365_settings(sandbox, client_secret=None, credential="managed_identity"))
    with pytest.raises(SignInError) as failed:  # after azure-core's retries
        await provider.token(graph_scope(provider.settings))
    assert failed.value.code is Code.SERVER_UNAVAILABLE and "answered HTTP 500" in str(failed.value)
    await provider.aclose()
    sandbox.faults.reset("login")

    monkeypatch.delenv("IDENTITY_HEADER")
    provider = app_token_provider(m365_settings(sandbox, client_secret=None, credential="managed_identity"))
    with pytest.raises(SignInConfigurationError, match="IDENTITY_ENDPOINT is set without IDENTITY_HEADER"):
        await provider.token(graph_scope(provider.settings))
    await provider.aclose()


# --- workload identity federation ----------------------------------------------------------------------------


async def test_workload_identity_feeds_graph_and_exchange(sandbox: Sandbox, tmp_path: Path) -> None:
    token_file = sandbox.write_federated_token()
    settings = env_file(sandbox, tmp_path, "workload_identity", token_file=str(token_file))
    code, out, err = await emaildoctor(settings, "perms", "sales@business.com")
    assert code == 0, out + err
    assert "Send As:        admin@business.com, oscar@business.com" in out

    m365 = m365_settings(sandbox, client_secret=None, credential="workload_identity", federated_token_file=token_file)
    provider = app_token_provider(m365)
    graph, exchange = await asyncio.gather(provider.token(graph_scope(m365)), provider.token(exchange_scope(m365)))
    assert graph.token != exchange.token and (await provider.token(graph_scope(m365))).from_cache
    await provider.aclose()
    async with M365Services(m365) as services:
        assert await services.directory.get_user("alice@business.com") is not None


async def test_expired_or_untrusted_federated_tokens_are_diagnosed(sandbox: Sandbox, tmp_path: Path) -> None:
    token_file = sandbox.write_federated_token(lifetime_seconds=-600)
    settings = env_file(sandbox, tmp_path, "workload_identity", token_file=str(token_file))
    code, _, err = await emaildoctor(settings, "perms", "sales@business.com")
    assert code == 1 and "Traceback" not in err, err
    assert "expired" in err and f"{token_file} (EMAILDOCTOR_M365__FEDERATED_TOKEN_FILE)" in err
    assert "AADSTS700024" in err

    sandbox.write_federated_token(issuer="https://oidc.elsewhere.example/cluster")
    checks = await check_json(settings)
    row = checks["Entra sign-in"]
    assert row["ok"] is False and "workload identity (federated token file" in row["detail"]
    assert "AADSTS700211" in row["detail"] and "EMAILDOCTOR_M365__FEDERATED_TOKEN_FILE" in row["fix"]
    assert "Federated credentials" in row["fix"]

    m365 = m365_settings(sandbox, client_secret=None, credential="workload_identity", federated_token_file=token_file)
    sandbox.write_federated_token(subject="system:serviceaccount:default:default")
    provider = app_token_provider(m365)
    with pytest.raises(SignInConfigurationError, match="AADSTS700213") as refused:
        await provider.token(exchange_scope(m365))
    assert refused.value.aadsts == 700213
    await provider.aclose()

    token_file.unlink()
    provider = app_token_provider(m365)
    with pytest.raises(SignInConfigurationError, match="cannot read the federated token file"):
        await provider.token(graph_scope(m365))
    await provider.aclose()


async def test_token_file_from_the_platform_variable(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(sandbox.write_federated_token()))
    settings = m365_settings(sandbox, client_secret=None, credential="workload_identity")
    provider = app_token_provider(settings)
    assert (await provider.token(graph_scope(settings))).token
    await provider.aclose()
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE")
    provider = app_token_provider(settings)
    with pytest.raises(ConfigError, match="AZURE_FEDERATED_TOKEN_FILE"):
        await provider.token(graph_scope(settings))
    await provider.aclose()


# --- settings (no servers) -----------------------------------------------------------------------------------


def test_invalid_credential_settings_name_the_setting_and_its_variable(tmp_path: Path) -> None:
    base = {"EMAILDOCTOR_M365__TENANT_ID": "contoso.onmicrosoft.com", "EMAILDOCTOR_M365__CLIENT_ID": "app"}
    cases: list[tuple[dict[str, str], str]] = [
        ({"EMAILDOCTOR_M365__CREDENTIAL": "password"}, "must be one of secret, certificate, managed_identity"),
        (
            {"EMAILDOCTOR_M365__CREDENTIAL": "managed_identity", "EMAILDOCTOR_M365__CLIENT_SECRET": "s3cr3t-value"},
            "remove EMAILDOCTOR_M365__CLIENT_SECRET",
        ),
        ({"EMAILDOCTOR_M365__CREDENTIAL": "secret"}, "set EMAILDOCTOR_M365__CLIENT_SECRET"),
        (
            {"EMAILDOCTOR_M365__FEDERATED_TOKEN_FILE": "/var/run/token"},
            "EMAILDOCTOR_M365__CREDENTIAL=workload_identity",
        ),
        (
            {"EMAILDOCTOR_M365__CREDENTIAL": "workload_identity", "EMAILDOCTOR_M365__CLIENT_ID": ""},
            "set EMAILDOCTOR_M365__TENANT_ID and EMAILDOCTOR_M365__CLIENT_ID",
        ),
    ]
    for index, (values, said) in enumerate(cases):
        path = tmp_path / f"{index}.env"
        merged = {**base, **values}
        path.write_text("".join(f"{k}={v}\n" for k, v in merged.items() if v), encoding="utf-8")
        with pytest.raises(ConfigError) as refused:
            load_settings(path)
        assert said in str(refused.value) and "s3cr3t-value" not in str(refused.value), str(refused.value)
        if "CREDENTIAL" in str(values):
            assert "m365 (EMAILDOCTOR_M365)" in str(refused.value) or "EMAILDOCTOR_M365__CREDENTIAL" in str(
                refused.value
            )
    system_assigned = tmp_path / "system.env"
    system_assigned.write_text(
        "EMAILDOCTOR_M365__TENANT_ID=contoso.onmicrosoft.com\nEMAILDOCTOR_M365__CREDENTIAL=managed_identity\n",
        encoding="utf-8",
    )
    settings = load_settings(system_assigned).m365
    assert settings.configured and settings.client_id is None and settings.credential_kind == "managed_identity"

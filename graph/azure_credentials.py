"""Signing in without a secret: azure-identity's ``ManagedIdentityCredential`` (App Service, Container Apps, VMs)
or ``WorkloadIdentityCredential`` (a federated token file, e.g. on AKS), behind the same
:class:`~graph.auth.AppTokenProvider` interface msal's client credentials use, so Graph, the Exchange admin API
and SMTP XOAUTH2 get their tokens the same way whatever the credential.

``m365.credential`` selects it (``managed_identity`` / ``workload_identity``); :func:`graph.auth.app_token_provider`
builds this provider for those. Where the tokens come from is the platform's business, as azure-identity reads
it: ``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER`` (App Service, Container Apps; otherwise the VM metadata endpoint)
and, for workload identity, ``EMAILDOCTOR_M365__FEDERATED_TOKEN_FILE`` or ``AZURE_FEDERATED_TOKEN_FILE``. Sign-in
goes to ``m365.authority_host``; TLS trusts the system store plus ``m365.ca_file`` and ignores proxy variables, as
every other Microsoft 365 call does (:mod:`graph.http`). The real services and the sandbox differ only in those.

Failures become :class:`~graph.auth.SignInError` naming the setting or variable to fix; never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError

from graph.auth import AppToken, AppTokenProvider, SignInConfigurationError, SignInError, refusal_error
from graph.http import ssl_context
from plugin.diagnosis import Code
from plugin.errors import ConfigError
from plugin.settings import M365Settings

if TYPE_CHECKING:
    import aiohttp
    from azure.core.credentials_async import AsyncTokenCredential

AZURE_KINDS = ("managed_identity", "workload_identity")
CREDENTIAL_SETTING = "EMAILDOCTOR_M365__CREDENTIAL"
_RETRIES = 2
"""azure-core retries connection errors, 408, 429 and 5xx; two retries keep a dead endpoint from stalling a check."""

# Entra's refusals of a federated assertion (AADSTS numbers) and what to do about each.
_FEDERATION_MISMATCH = {70021, 700211, 700212, 700213}
_ASSERTION_TIME = 700024
_ASSERTION_INVALID = {50027, 700027, 50166}


def describe_credential(settings: M365Settings) -> str:
    """The credential kind in words, for ``emaildoctor check``: which one is used and where it comes from."""
    kind = settings.credential_kind
    if kind == "secret":
        return "client secret"
    if kind == "certificate":
        return "certificate"
    if kind == "workload_identity":
        return f"workload identity (federated token file {_token_file(settings) or 'not set'})"
    identity = f"user-assigned {settings.client_id}" if settings.client_id else "system-assigned"
    endpoint = os.environ.get("IDENTITY_ENDPOINT")
    where = f"endpoint {endpoint}" if endpoint else "the VM metadata endpoint (IDENTITY_ENDPOINT not set)"
    return f"managed identity ({identity}, {where})"


class AzureIdentityProvider(AppTokenProvider):
    """The app's tokens from a managed identity or workload identity federation (azure-identity's async
    credentials). Each scope's token is cached by azure-identity; concurrent first calls for one scope make one
    request, different scopes are fetched side by side."""

    def __init__(self, settings: M365Settings) -> None:  # no msal app: AppTokenProvider's state is not needed
        if settings.credential not in AZURE_KINDS:
            raise ConfigError(f"{CREDENTIAL_SETTING} must be managed_identity or workload_identity here")
        if not settings.configured or settings.tenant_id is None:
            raise ConfigError(
                f"Microsoft 365 is not configured: set EMAILDOCTOR_M365__TENANT_ID (and {CREDENTIAL_SETTING})"
            )
        self.settings = settings
        self.kind: str = settings.credential
        quiet = logging.getLogger("azure.identity")
        if quiet.level == logging.NOTSET:  # each failure is logged as a warning, then raised: we report it once
            quiet.setLevel(logging.ERROR)
        self._credential: AsyncTokenCredential | None = None
        self._http: aiohttp.ClientSession | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, str] = {}

    @property
    def secrets(self) -> list[str]:
        """No secret of ours; the platform's ``IDENTITY_HEADER`` is kept out of any output all the same."""
        header = os.environ.get("IDENTITY_HEADER") if self.kind == "managed_identity" else None
        return [header] if header else []

    async def token(self, scope: str, *, claims: str | None = None) -> AppToken:
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:
            credential = self._ensure_credential()
            try:
                access = await credential.get_token(scope, claims=claims)
            except (AzureError, OSError, ValueError) as exc:  # azure-core wraps aiohttp's; OSError: the token file
                raise identity_error(exc, self.settings) from exc
        from_cache = self._last.get(scope) == access.token
        self._last[scope] = access.token
        return AppToken(access.token, int(access.expires_on), from_cache)

    async def forget(self, scope: str) -> None:
        """A service refused a token: start from a fresh credential (azure-identity's cache has no per-token
        removal), so the next call asks the identity endpoint or Entra ID again."""
        old, self._credential = self._credential, None
        self._last.pop(scope, None)
        if old is not None:
            await old.close()

    async def aclose(self) -> None:
        old, self._credential = self._credential, None
        if old is not None:
            await old.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _ensure_credential(self) -> AsyncTokenCredential:
        if self._credential is None:
            self._credential = self._build()
        return self._credential

    def _build(self) -> AsyncTokenCredential:
        import aiohttp
        from azure.core.pipeline.transport import AioHttpTransport

        settings = self.settings
        if self._http is None or self._http.closed:
            # The documented way to give azure-core's transport our own TLS trust and no proxy variables.
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_context(settings.ca_file)),
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=settings.timeout),
            )
        options: dict[str, Any] = {
            "transport": AioHttpTransport(
                session=self._http,
                session_owner=False,
                connection_timeout=min(settings.timeout, 10.0),
                read_timeout=settings.timeout,
            ),
            "retry_total": _RETRIES,
            "retry_backoff_factor": 0.5,
        }
        if self.kind == "managed_identity":
            from azure.identity.aio import ManagedIdentityCredential

            return ManagedIdentityCredential(client_id=settings.client_id, **options)
        from azure.identity.aio import WorkloadIdentityCredential

        token_file = _token_file(settings)
        if token_file is None:
            raise ConfigError(
                f"{CREDENTIAL_SETTING} is workload_identity but no federated token file: set "
                "EMAILDOCTOR_M365__FEDERATED_TOKEN_FILE (or AZURE_FEDERATED_TOKEN_FILE, which AKS sets)"
            )
        try:
            return WorkloadIdentityCredential(
                tenant_id=settings.tenant_id,
                client_id=settings.client_id,
                token_file_path=token_file,
                authority=settings.authority_host,
                **options,
            )
        except ValueError as exc:
            raise ConfigError(f"{CREDENTIAL_SETTING} is workload_identity: {exc}") from exc


def _token_file(settings: M365Settings) -> str | None:
    if settings.federated_token_file is not None:
        return str(settings.federated_token_file.expanduser())
    return os.environ.get("AZURE_FEDERATED_TOKEN_FILE") or None


# --- errors --------------------------------------------------------------------------------------------------


def identity_error(exc: BaseException, settings: M365Settings) -> SignInError:
    """One clear :class:`SignInError` for whatever azure-identity, azure-core, aiohttp or the token file raised."""
    if settings.credential == "workload_identity":
        return _workload_error(exc, settings)
    return _managed_identity_error(exc, settings)


def _managed_identity_error(exc: BaseException, settings: M365Settings) -> SignInError:
    from azure.core.exceptions import ServiceRequestError

    endpoint = os.environ.get("IDENTITY_ENDPOINT")
    header = os.environ.get("IDENTITY_HEADER")
    where = f"The managed identity endpoint {endpoint} (IDENTITY_ENDPOINT)" if endpoint else "The VM metadata endpoint"
    chosen = f"{CREDENTIAL_SETTING}=managed_identity"
    status, body = _response(exc)
    if endpoint and not header:
        return SignInConfigurationError(
            f"{chosen}, but IDENTITY_ENDPOINT is set without IDENTITY_HEADER: App Service and Container Apps set "
            "both for the process; run emaildoctor where the platform sets them (not from a copied environment).",
            code=Code.OAUTH_TOKEN_INVALID,
            error="identity_unavailable",
        )
    if not endpoint and (status in (401, 403, 404) or isinstance(exc, ServiceRequestError | OSError)):
        answered = f"answered HTTP {status}: {body or 'no details'}" if status else f"did not answer ({_message(exc)})"
        return SignInConfigurationError(
            f"{chosen}, but this machine offers no managed identity: IDENTITY_ENDPOINT and IDENTITY_HEADER are not "
            f"set (App Service and Container Apps set them) and the VM metadata endpoint {answered}. Turn on the "
            f"identity (the Identity blade) or choose another {CREDENTIAL_SETTING}.",
            code=Code.OAUTH_TOKEN_INVALID,
            detail=body,
            error="identity_unavailable",
        )
    if status in (401, 403):
        return SignInError(
            f"{where} refused the request (HTTP {status}: {body or 'no details'}): IDENTITY_HEADER does not "
            f"match. The platform sets and rotates IDENTITY_ENDPOINT and IDENTITY_HEADER for this process; do not "
            f"copy them from another app or an old deployment ({chosen}).",
            code=Code.OAUTH_TOKEN_INVALID,
            detail=body,
            error="identity_header_refused",
        )
    if status == 429:
        return SignInError(
            f"{where} is throttling token requests (HTTP 429); wait a minute and try again.",
            code=Code.THROTTLED,
            detail=body,
            error="throttled",
        )
    if status is not None and status >= 500:
        return SignInError(
            f"{where} answered HTTP {status}; try again in a few minutes.",
            code=Code.SERVER_UNAVAILABLE,
            detail=body,
            error="identity_unavailable",
        )
    if status is not None:
        assigned = (
            f"the user-assigned identity {settings.client_id} (EMAILDOCTOR_M365__CLIENT_ID)"
            if settings.client_id
            else "a system-assigned identity (EMAILDOCTOR_M365__CLIENT_ID unset)"
        )
        return SignInConfigurationError(
            f"{where} issued no token (HTTP {status}: {body or 'no details'}). {chosen} asks for {assigned}: "
            "check that this identity is assigned to the app (Identity blade) and that EMAILDOCTOR_M365__GRAPH_URL "
            "and EMAILDOCTOR_M365__EXCHANGE_URL name Microsoft 365's resources.",
            code=Code.OAUTH_TOKEN_INVALID,
            detail=body,
            error="identity_not_found",
        )
    if isinstance(exc, ServiceRequestError | OSError):
        return _unreachable(exc, settings, where)
    text = _message(exc)
    if "managed identity" in text.lower() and ("unavailable" in text.lower() or "not found" in text.lower()):
        return SignInConfigurationError(
            f"{chosen}, but no managed identity endpoint is available here: App Service and Container Apps set "
            "IDENTITY_ENDPOINT and IDENTITY_HEADER, VMs answer at the metadata endpoint. Turn on the identity "
            f"(the app's Identity blade) or choose another {CREDENTIAL_SETTING}. ({text})",
            code=Code.OAUTH_TOKEN_INVALID,
            detail=text,
            error="identity_unavailable",
        )
    return SignInError(f"{where} issued no token: {text}", code=Code.UNKNOWN, detail=text)


def _workload_error(exc: BaseException, settings: M365Settings) -> SignInError:
    from azure.core.exceptions import ServiceRequestError

    token_file = _token_file(settings)
    file_setting = f"the federated token file {token_file} (EMAILDOCTOR_M365__FEDERATED_TOKEN_FILE)"
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
        return SignInConfigurationError(
            f"{CREDENTIAL_SETTING}=workload_identity: cannot read {file_setting}: {exc.strerror or exc}. On AKS the "
            "workload identity webhook mounts it (label the pod azure.workload.identity/use=true).",
            code=Code.OAUTH_TOKEN_INVALID,
            error="token_file_unreadable",
        )
    if isinstance(exc, ServiceRequestError):
        return _unreachable(exc, settings, f"The sign-in service at {settings.authority_host}")
    text = _message(exc)
    found = re.search(r"\((\w+)\)\s*(AADSTS(\d+):.*)", text)
    if found is None:
        return SignInError(
            f"Workload identity sign-in at {settings.authority_host} failed: {text}", code=Code.UNKNOWN, detail=text
        )
    error, number = found.group(1), int(found.group(3))
    description = re.split(r"\s+Trace ID:", found.group(2))[0].strip().rstrip("'").strip()
    app = f"app {settings.client_id} (EMAILDOCTOR_M365__CLIENT_ID)"
    if number in _FEDERATION_MISMATCH:
        return SignInConfigurationError(
            f"Microsoft Entra ID does not trust {file_setting} for the {app}: {description} Add a federated "
            "credential with the token's issuer, subject and audience (App registrations > Certificates & secrets > "
            f"Federated credentials), or set EMAILDOCTOR_M365__CLIENT_ID to the app that has one ({CREDENTIAL_SETTING}"
            "=workload_identity).",
            code=Code.OAUTH_TOKEN_INVALID,
            detail=description,
            aadsts=number,
            error=error,
        )
    if number == _ASSERTION_TIME:
        return SignInError(
            f"Microsoft Entra ID refused {file_setting}: it has expired or is not valid yet ({description}). The "
            "platform rewrites the file before it expires (Kubernetes: hourly); check that the setting names the "
            "projected token the platform refreshes, and this machine's clock.",
            code=Code.OAUTH_TOKEN_INVALID,
            detail=description,
            aadsts=number,
            error=error,
        )
    if number in _ASSERTION_INVALID:
        return SignInError(
            f"Microsoft Entra ID refused {file_setting}: {description} The file must hold the service account token "
            "the cluster's OIDC issuer signed, unchanged.",
            code=Code.OAUTH_TOKEN_INVALID,
            detail=description,
            aadsts=number,
            error=error,
        )
    return refusal_error({"error": error, "error_description": description, "error_codes": [number]}, settings)


def _unreachable(exc: BaseException, settings: M365Settings, where: str) -> SignInError:
    text = _message(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text.lower():
        return SignInError(
            f"The certificate of {where.removeprefix('The ')} is not trusted: if a proxy inspects TLS, set "
            "EMAILDOCTOR_M365__CA_FILE to its CA certificate.",
            code=Code.TLS_CERTIFICATE_INVALID,
            detail=text,
        )
    return SignInError(
        f"Cannot reach {where.removeprefix('The ')}: {text}. Check the network, IDENTITY_ENDPOINT or "
        "EMAILDOCTOR_M365__AUTHORITY_HOST.",
        code=Code.SERVER_UNAVAILABLE,
        detail=text,
    )


def _response(exc: BaseException) -> tuple[int | None, str]:
    """The HTTP status and a short body of the endpoint's answer, when azure-core kept it."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return None, ""
    try:
        text = str(response.text())  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - a body we cannot read is left out
        text = ""
    try:
        data = json.loads(text)
    except ValueError:
        return status, text.strip()[:300]
    if isinstance(data, dict):
        for key in ("message", "error_description", "error"):
            if isinstance(data.get(key), str):
                return status, str(data[key])[:300]
    return status, text.strip()[:300]


def _message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    return " ".join(text.split())[:600]

"""Sign-in to Microsoft 365 with msal: the app's own tokens (client secret or certificate), a credential for
msgraph-sdk, and a delegated device-code login for the command line.

Every consumer gets the one token shape, :data:`~plugin.probe_request.TokenSource` (``async () -> str``):

    provider = AppTokenProvider(settings.m365)
    smtp_tokens = provider.token_source(smtp_scope(settings.m365))    # aiosmtplib XOAUTH2
    credential = provider.credential()                                # msgraph-sdk (AsyncTokenCredential)

msal is synchronous and reads the authority's OpenID configuration in its constructor, so the msal app is
built on first use, in a worker thread, and every msal call runs through :func:`asyncio.to_thread`. One lock
guards building the app (the authority's metadata is read once); then one lock per scope, so concurrent first calls
for a scope make one token request and share msal's in-memory cache, while the Graph and the Exchange tokens are
fetched at the same time (msal's token cache is thread-safe).
Its HTTP session trusts ``m365.ca_file`` plus the system store and ignores ``REQUESTS_CA_BUNDLE`` and proxy
variables (settings decide, as in :mod:`graph.http`). Failures become :class:`SignInError` (a
:class:`~plugin.errors.ServiceError`) with a message naming the setting to fix; never the secret.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from graph.http import ssl_context
from plugin.diagnosis import Code
from plugin.errors import ConfigError, ServiceError
from plugin.probe_request import TokenSource
from plugin.redact import redact
from plugin.settings import M365Settings, Settings
from plugin.single_flight import SingleFlight

if TYPE_CHECKING:
    import msal
    from azure.core.credentials import AccessToken
    from requests.adapters import _HostParams, _PoolKwargs


def graph_scope(settings: M365Settings) -> str:
    return f"{settings.graph_url}/.default"


def exchange_scope(settings: M365Settings) -> str:
    """The Exchange admin API's scope; SMTP XOAUTH2 (app-only, SMTP.SendAsApp) uses the same resource."""
    return f"{settings.exchange_url}/.default"


smtp_scope = exchange_scope


def delegated_scope(base_url: str, permission: str) -> str:
    """A delegated permission of a resource, e.g. ``delegated_scope(settings.exchange_url, "SMTP.Send")``."""
    return f"{base_url}/{permission}"


# --- errors --------------------------------------------------------------------------------------------------


class SignInError(ServiceError):
    """Microsoft Entra ID refused to issue a token, or could not be reached. ``aadsts`` is Entra's error number."""

    def __init__(
        self, message: str, *, code: Code, detail: str = "", aadsts: int | None = None, error: str | None = None
    ) -> None:
        super().__init__(message, code=code, detail=detail)
        self.aadsts = aadsts
        self.error = error


class SignInConfigurationError(SignInError, ConfigError):
    """Entra does not know the tenant, app or resource the settings name: fix the settings (also a ConfigError)."""


_AADSTS_WORDS: Mapping[int, str] = {
    7000215: "refused the client secret. Set EMAILDOCTOR_M365__CLIENT_SECRET to the secret's Value (not its "
    "Secret ID) from the app registration's Certificates & secrets page",
    7000222: "says the client secret has expired. Create a new secret and set EMAILDOCTOR_M365__CLIENT_SECRET",
    7000218: "needs a client secret or certificate. Set EMAILDOCTOR_M365__CLIENT_SECRET or "
    "EMAILDOCTOR_M365__CERTIFICATE_PATH",
    700027: "does not know the certificate{thumbprint}. Upload it to the app registration (Certificates & secrets) "
    "or point EMAILDOCTOR_M365__CERTIFICATE_PATH at the registered certificate",
    700024: "refused the certificate sign-in because this machine's clock is wrong. Correct the clock",
    700016: "has no app {client_id} in tenant {tenant_id}. Check EMAILDOCTOR_M365__CLIENT_ID and "
    "EMAILDOCTOR_M365__TENANT_ID, and that an admin consented to the app in this tenant",
    90002: "has no tenant {tenant_id}. Check EMAILDOCTOR_M365__TENANT_ID (the Directory (tenant) ID or the "
    "initial domain) and EMAILDOCTOR_M365__AUTHORITY_HOST",
    500011: "does not know the resource asked for. Check EMAILDOCTOR_M365__GRAPH_URL and "
    "EMAILDOCTOR_M365__EXCHANGE_URL, and that the app has consented permissions on it",
    70011: "refused the scope asked for. Check EMAILDOCTOR_M365__GRAPH_URL and EMAILDOCTOR_M365__EXCHANGE_URL",
    65001: "says nobody consented to the app's permissions for this user. An admin grants consent in Entra ID",
}
_CONFIG_ERRORS = {"invalid_tenant", "unauthorized_client", "invalid_resource", "invalid_scope"}
_CONFIG_AADSTS = {90002, 700016, 500011, 70011}


def aadsts_of(result: Mapping[str, Any]) -> int | None:
    codes = result.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return codes[0]
    found = re.search(r"AADSTS(\d+)", str(result.get("error_description", "")))
    return int(found.group(1)) if found else None


def refusal_error(result: Mapping[str, Any], settings: M365Settings, *, thumbprint: str | None = None) -> SignInError:
    """Turn msal's error result (``error``, ``error_description``, ``error_codes``) into a SignInError."""
    error = str(result.get("error") or "unknown_error")
    number = aadsts_of(result)
    description = redact(str(result.get("error_description") or error), _secrets(settings))
    where = f"Microsoft Entra ID ({settings.authority_host})"
    if error == "temporarily_unavailable" or number in (90033, 50196):
        # msal raises on 5xx itself, so a JSON refusal saying "temporarily unavailable" is a 429.
        return SignInError(
            f"{where} is throttling emaildoctor's sign-in; wait a minute and try again (AADSTS{number or '?'}).",
            code=Code.THROTTLED,
            detail=description,
            aadsts=number,
            error=error,
        )
    words = _AADSTS_WORDS.get(number or 0)
    if words is None:
        code = Code.OAUTH_TOKEN_INVALID if error in ("invalid_client", "invalid_grant") else Code.UNKNOWN
        return SignInError(
            f"{where} refused to sign emaildoctor in: {description}",
            code=code,
            detail=description,
            aadsts=number,
            error=error,
        )
    text = words.format(
        client_id=settings.client_id,
        tenant_id=settings.tenant_id,
        thumbprint=f" with SHA-1 thumbprint {thumbprint}" if thumbprint else "",
    )
    message = f"{where} {text} (AADSTS{number}: {error})."
    kind = SignInConfigurationError if number in _CONFIG_AADSTS or error in _CONFIG_ERRORS else SignInError
    return kind(message, code=Code.OAUTH_TOKEN_INVALID, detail=description, aadsts=number, error=error)


def failure_error(exc: BaseException, settings: M365Settings) -> SignInError:
    """Turn an exception from msal or requests (no answer, TLS, 5xx, unknown tenant) into a SignInError."""
    where = f"the sign-in service at {settings.authority_host}"
    if isinstance(exc, requests.exceptions.SSLError):
        return SignInError(
            f"The certificate of {where} is not trusted: if a proxy inspects TLS, set EMAILDOCTOR_M365__CA_FILE "
            "to its CA certificate.",
            code=Code.TLS_CERTIFICATE_INVALID,
            detail=str(exc),
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return SignInError(f"{where} did not answer within {settings.timeout:g} s.", code=Code.TIMEOUT, detail=str(exc))
    if isinstance(exc, requests.exceptions.RequestException):
        return SignInError(
            f"Cannot reach {where}: {type(exc).__name__}. Check EMAILDOCTOR_M365__AUTHORITY_HOST and the network.",
            code=Code.SERVER_UNAVAILABLE,
            detail=str(exc),
        )
    context = f"{exc} {exc.__context__ or ''}"
    found = re.search(r"AADSTS(\d+)", context)
    if "HTTP status: 429" in context:  # msal reading the OpenID configuration was throttled
        return refusal_error({"error": "temporarily_unavailable", "error_codes": [90033]}, settings)
    if isinstance(exc, ValueError) and "authority configuration" in context:
        number = int(found.group(1)) if found else 90002
        description = re.search(r"AADSTS\d+:[^\"]*", context)
        return refusal_error(
            {
                "error": "invalid_tenant",
                "error_codes": [number],
                "error_description": description.group(0) if description else str(exc),
            },
            settings,
        )
    status = re.search(r"HTTP Error: (\d{3})", context)
    if status is not None:
        return SignInError(
            f"{where} answered HTTP {status.group(1)}; try again in a few minutes.",
            code=Code.SERVER_UNAVAILABLE,
            detail=context,
        )
    return SignInError(f"Signing in at {where} failed: {exc}", code=Code.UNKNOWN, detail=context)


def _secrets(settings: M365Settings) -> list[str]:
    return [s.get_secret_value() for s in (settings.client_secret, settings.certificate_password) if s is not None]


# --- HTTP for msal -------------------------------------------------------------------------------------------


class _TrustAdapter(HTTPAdapter):
    """Verifies with one SSL context (system store + ``ca_file``), whatever ``verify`` requests computes."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__(max_retries=1)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: tuple[str, str] | str | None = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        # requests' documented extension point for a custom SSLContext.
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        pool.pop("ca_certs", None)
        pool.pop("ca_cert_dir", None)
        pool["ssl_context"] = self._context
        pool["cert_reqs"] = "CERT_REQUIRED"
        return host, pool


class MsalSession(requests.Session):
    """msal's ``http_client``: TLS trust from settings, a timeout on every request, no environment variables
    (``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` would otherwise replace ``verify``)."""

    def __init__(self, ca_file: Path | None, timeout: float) -> None:
        super().__init__()
        self.trust_env = False
        self._timeout = timeout
        self.mount("https://", _TrustAdapter(ssl_context(ca_file)))

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


# --- the app's own tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppToken:
    token: str = field(repr=False)
    expires_on: int
    """Unix time."""
    from_cache: bool = False


def _certificate(settings: M365Settings) -> tuple[dict[str, str], str]:
    """msal's certificate credential from the PEM file (private key + certificate) and its SHA-1 thumbprint."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    path = settings.certificate_path
    assert path is not None
    setting = f"EMAILDOCTOR_M365__CERTIFICATE_PATH ({path})"
    try:
        text = path.expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{setting}: cannot read the certificate file: {exc}") from exc
    certs = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.DOTALL)
    keys = re.search(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", text, re.DOTALL)
    if not certs or keys is None:
        raise ConfigError(f"{setting}: the PEM file must hold both the private key and the certificate")
    password = settings.certificate_password.get_secret_value() if settings.certificate_password else None
    try:
        cert = x509.load_pem_x509_certificate(certs[0].encode())
        key = serialization.load_pem_private_key(keys.group(0).encode(), password.encode() if password else None)
    except TypeError as exc:
        hint = "set EMAILDOCTOR_M365__CERTIFICATE_PASSWORD" if password is None else "remove the password setting"
        raise ConfigError(f"{setting}: the key is {'' if password is None else 'not '}encrypted: {hint}") from exc
    except ValueError as exc:
        raise ConfigError(f"{setting}: cannot load the key (wrong EMAILDOCTOR_M365__CERTIFICATE_PASSWORD?)") from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.PEM
    if key.public_key().public_bytes(encoding, public) != cert.public_key().public_bytes(encoding, public):
        raise ConfigError(f"{setting}: the private key does not belong to the certificate")
    credential = {"private_key": keys.group(0), "public_certificate": certs[0]}
    if password:
        credential["passphrase"] = password
    return credential, cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra shows SHA-1 thumbprints


class AppTokenProvider:
    """The app's client-credentials sign-in (msal ``ConfidentialClientApplication`` + its token cache).

    ``http_client`` is msal's session (default: :class:`MsalSession` from settings, closed by :meth:`aclose`).
    """

    def __init__(self, settings: M365Settings, *, http_client: requests.Session | None = None) -> None:
        if not settings.configured or settings.tenant_id is None or settings.client_id is None:
            raise ConfigError(
                "Microsoft 365 is not configured: set EMAILDOCTOR_M365__TENANT_ID, EMAILDOCTOR_M365__CLIENT_ID and "
                "EMAILDOCTOR_M365__CLIENT_SECRET (or EMAILDOCTOR_M365__CERTIFICATE_PATH)"
            )
        self.settings = settings
        self._session = http_client
        self._owns_session = http_client is None
        self._app: msal.ConfidentialClientApplication | None = None
        self._thumbprint: str | None = None
        self._lock = threading.Lock()
        """Guards building the msal app and the per-scope locks."""
        self._scope_locks: dict[str, threading.Lock] = {}
        self._acquiring: SingleFlight[tuple[str, str | None], AppToken] = SingleFlight()

    @property
    def secrets(self) -> list[str]:
        """The secrets this provider holds, for :func:`plugin.redact.redact`."""
        return _secrets(self.settings)

    async def token(self, scope: str, *, claims: str | None = None) -> AppToken:
        """An access token for ``scope`` (``{resource}/.default``), from msal's cache while it is valid. Callers
        asking for the same scope at the same time share one acquisition: msal runs in a worker thread, and a burst
        of requests each waiting in a thread of its own for the first sign-in would fill asyncio's small default
        pool (cores + 4 threads) and hold up the other scope's sign-in behind it."""
        return await self._acquiring.run((scope, claims), lambda: asyncio.to_thread(self._acquire, scope, claims))

    def token_source(self, scope: str) -> TokenSource:
        async def source() -> str:
            return (await self.token(scope)).token

        return source

    async def forget(self, scope: str) -> None:
        """Drop the cached token for ``scope``, so the next call asks Entra ID for a new one (after a service
        refused a token the local clock still thinks is valid: clock skew, or a revoked token)."""
        self._acquiring.forget()  # an acquisition under way may hand out the refused token: do not join it
        await asyncio.to_thread(self._forget, scope)

    def _forget(self, scope: str) -> None:
        import msal

        with self._lock:
            app = self._app
        if app is None:
            return
        with self._scope_lock(scope):
            cache = app.token_cache
            for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN, target=[scope])):
                cache.remove_at(entry)

    def credential(self) -> MsalCredential:
        """This provider as an azure-core ``AsyncTokenCredential`` for msgraph-sdk (same app, same cache)."""
        return MsalCredential(self)

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await asyncio.to_thread(self._session.close)

    def _acquire(self, scope: str, claims: str | None) -> AppToken:
        from msal.exceptions import MsalServiceError

        try:
            with self._lock:
                app = self._msal_app()
            with self._scope_lock(scope):
                result = app.acquire_token_for_client([scope], claims_challenge=claims)
        except (requests.RequestException, MsalServiceError, ValueError, RuntimeError) as exc:
            raise failure_error(exc, self.settings) from exc
        if not isinstance(result, dict) or "access_token" not in result:
            raise refusal_error(result or {}, self.settings, thumbprint=self._thumbprint)
        expires_in = int(result.get("expires_in") or 0)
        return AppToken(
            str(result["access_token"]), int(time.time()) + expires_in, result.get("token_source") == "cache"
        )

    def _scope_lock(self, scope: str) -> threading.Lock:
        with self._lock:
            return self._scope_locks.setdefault(scope, threading.Lock())

    def _msal_app(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            import msal

            settings = self.settings
            credential: str | dict[str, str]
            if settings.client_secret is not None:
                credential = settings.client_secret.get_secret_value()
            elif settings.certificate_path is not None:
                credential, self._thumbprint = _certificate(settings)
            else:  # pragma: no cover - the settings model refuses this
                raise ConfigError("set EMAILDOCTOR_M365__CLIENT_SECRET or EMAILDOCTOR_M365__CERTIFICATE_PATH")
            if self._session is None:
                self._session = MsalSession(settings.ca_file, settings.timeout)
            self._app = msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=credential,
                authority=f"{settings.authority_host}/{settings.tenant_id}",
                instance_discovery=settings.instance_discovery,
                http_client=self._session,
                azure_region=False,  # no regional endpoints, and no MSAL_FORCE_REGION from the environment
            )
        return self._app


class MsalCredential:
    """azure-core ``AsyncTokenCredential`` backed by an :class:`AppTokenProvider` (what msgraph-sdk's auth
    provider calls). Closing it does not close the provider, which its owner closes."""

    def __init__(self, provider: AppTokenProvider) -> None:
        self._provider = provider

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        from azure.core.credentials import AccessToken

        if len(scopes) != 1:
            raise ConfigError(f"client credentials take exactly one '{{resource}}/.default' scope, not {list(scopes)}")
        token = await self._provider.token(scopes[0], claims=claims)
        return AccessToken(token.token, token.expires_on)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> MsalCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def smtp_token_source(settings: Settings) -> TokenSource:
    """Entry point ``emaildoctor.token_sources:smtp``: the app's SMTP XOAUTH2 token (``{exchange}/.default``,
    role SMTP.SendAsApp). Each call closes the HTTP connections it opened (the caller never closes anything);
    msal's cache lives as long as the returned callable."""
    provider = app_token_provider(settings.m365)
    scope = smtp_scope(settings.m365)

    async def source() -> str:
        try:
            return (await provider.token(scope)).token
        finally:
            await provider.aclose()

    return source


def app_token_provider(settings: M365Settings) -> AppTokenProvider:
    """The app's sign-in for ``m365.credential``: msal (secret, certificate) or azure-identity (managed identity,
    workload identity; :mod:`graph.azure_credentials`), behind the same interface."""
    if settings.credential in ("managed_identity", "workload_identity"):
        from graph.azure_credentials import AzureIdentityProvider

        return AzureIdentityProvider(settings)
    return AppTokenProvider(settings)

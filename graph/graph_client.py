"""Microsoft Graph through msgraph-sdk: one lazily built ``GraphServiceClient``, and Graph's errors as ours.

The SDK is imported on first use, in a worker thread (it costs about a second), with the deprecation warnings
its generated modules raise at import time silenced. The client is built the way that works against any host:

* base URL ``{graph_url}/v1.0`` and explicit scopes ``{graph_url}/.default``;
* ``allowed_hosts`` = the Graph host, or kiota's auth provider silently sends **no** Authorization header
  to hosts outside the national clouds (shared/reference/sdks-on-loopback.md);
* our httpx client (:func:`graph.http.build_http_client`: TLS trust and timeouts from settings) wrapped
  with msgraph's default middleware, whose RetryHandler honours ``Retry-After`` on 429/503/504.

Every call goes through :meth:`GraphClient.run`, which turns ``ODataError`` / ``APIError`` and httpx
failures into :class:`GraphError`, a :class:`~plugin.errors.ServiceError` whose ``code`` comes from
:data:`GRAPH_ERROR_CODES` (then the HTTP status: 429 → throttled, 5xx → server_unavailable; anything else
is ``unknown`` with Graph's message verbatim).
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
import warnings
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urlsplit

import httpx

from graph.http import build_http_client, retry_after_seconds
from plugin.addresses import has_control_characters
from plugin.diagnosis import Code
from plugin.errors import ConfigError, ServiceError
from plugin.settings import M365Settings

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from msgraph.graph_service_client import GraphServiceClient

T = TypeVar("T")

GRAPH_ERROR_CODES: Final[Mapping[str, Code]] = MappingProxyType(
    {
        "ErrorSendAsDenied": Code.SEND_AS_DENIED,
        # Both an application access policy ("[RAOP]") and a missing permission; the message tells them apart.
        "ErrorAccessDenied": Code.GRAPH_ACCESS_DENIED,
        "Authorization_RequestDenied": Code.GRAPH_ACCESS_DENIED,
        "MailboxNotEnabledForRESTAPI": Code.MAILBOX_NOT_FOUND,
        "ErrorInvalidUser": Code.USER_NOT_FOUND,
        "Request_ResourceNotFound": Code.USER_NOT_FOUND,
        "ResourceNotFound": Code.USER_NOT_FOUND,
        "InvalidAuthenticationToken": Code.OAUTH_TOKEN_INVALID,
        "ApplicationThrottled": Code.THROTTLED,
        "ErrorInvalidRecipients": Code.RECIPIENT_REJECTED,
    }
)
"""Graph ``error.code`` values we claim to handle (tests/graph/test_graph_client.py holds the list)."""

_SDK_MODULES = (
    "kiota_abstractions.base_request_configuration",
    "kiota_authentication_azure.azure_identity_authentication_provider",
    "kiota_http.middleware.options",
    "msgraph.graph_service_client",
    "msgraph.graph_request_adapter",
    "msgraph_core",
    "msgraph.generated.models.o_data_errors.o_data_error",
    "msgraph.generated.users.users_request_builder",
    "msgraph.generated.users.item.user_item_request_builder",
    "msgraph.generated.users.item.mailbox_settings.mailbox_settings_request_builder",
    "msgraph.generated.users.item.messages.messages_request_builder",
    "msgraph.generated.users.item.send_mail.send_mail_request_builder",
    "msgraph.generated.users.item.send_mail.send_mail_post_request_body",
    "msgraph.generated.models.message",
    "msgraph.generated.models.recipient",
    "msgraph.generated.models.email_address",
    "msgraph.generated.models.item_body",
    "msgraph.generated.models.body_type",
    "msgraph.generated.models.internet_message_header",
    "msgraph.generated.models.user_purpose",
)


_PREWARM_MODELS = (
    ("msgraph.generated.models.user_collection_response", "UserCollectionResponse"),
    ("msgraph.generated.models.user", "User"),
    ("msgraph.generated.models.message_collection_response", "MessageCollectionResponse"),
    ("msgraph.generated.models.message", "Message"),
    ("msgraph.generated.models.mailbox_settings", "MailboxSettings"),
)


def load_sdk() -> None:
    """Import the msgraph modules :mod:`graph` uses. Their generated request builders warn at import time
    (``This class is deprecated``, ``GetQueryParameters is deprecated``), which tests treat as errors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This class is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="GetQueryParameters is deprecated", category=DeprecationWarning)
        for name in _SDK_MODULES:
            importlib.import_module(name)
        # Deserialising the first User or Message imports every model module it may refer to (about 1,200,
        # a second and a half); do it here, off the event loop.
        for module, model in _PREWARM_MODELS:
            getattr(importlib.import_module(module), model)().get_field_deserializers()


def odata_literal(value: str) -> str:
    """``value`` as an OData string literal: single quotes doubled, control characters refused. Only ever
    combined into the fixed filter templates of :mod:`graph.users` and :mod:`graph.mail`."""
    if has_control_characters(value):
        raise ConfigError("a search term must be one plain line (no line breaks or control characters)")
    return "'" + value.replace("'", "''") + "'"


class GraphError(ServiceError):
    """Microsoft Graph refused a request (``status`` and Graph's ``error_code`` set), or did not answer."""

    def __init__(
        self,
        message: str,
        *,
        code: Code,
        status: int | None,
        error_code: str | None = None,
        graph_message: str = "",
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, detail=graph_message)
        self.error_code = error_code
        self.graph_message = graph_message
        self.request_id = request_id
        self.retry_after = retry_after

    def evidence(self) -> tuple[str, ...]:
        head = f"Graph HTTP {self.status} {self.error_code}" if self.status else "Graph request failed"
        lines = [f"{head}: {self.graph_message or self.message}"]
        if self.request_id:
            lines.append(f"Graph request-id: {self.request_id}")
        if self.retry_after is not None:
            lines.append(f"Retry-After: {self.retry_after:g} s")
        return tuple(lines)


def graph_code(status: int | None, error_code: str | None) -> Code:
    if error_code is not None and error_code in GRAPH_ERROR_CODES:
        return GRAPH_ERROR_CODES[error_code]
    if status == 429:
        return Code.THROTTLED
    if status is not None and status >= 500:
        return Code.SERVER_UNAVAILABLE
    return Code.UNKNOWN


def translate_graph_error(exc: BaseException, *, what: str) -> GraphError:
    """Our error for an exception msgraph-sdk or httpx raised while ``what`` (e.g. "reading the user x")."""
    from kiota_abstractions.api_error import APIError

    if isinstance(exc, APIError):
        status = exc.response_status_code
        error = getattr(exc, "error", None)
        error_code = getattr(error, "code", None)
        text = getattr(error, "message", None) or exc.message or f"HTTP {status}"
        inner = getattr(error, "inner_error", None)
        headers = httpx.Headers(dict(exc.response_headers or {}))
        request_id = getattr(inner, "request_id", None) or headers.get("request-id")
        retry_after = (
            retry_after_seconds(httpx.Response(status or 0, headers=headers)) if "Retry-After" in headers else None
        )
        code = graph_code(status, error_code)
        label = f"{error_code}: {text}" if error_code else text
        return GraphError(
            f"Microsoft Graph refused {what}: {label} (HTTP {status})",
            code=code,
            status=status,
            error_code=error_code,
            graph_message=text,
            request_id=request_id,
            retry_after=retry_after,
        )
    if isinstance(exc, httpx.TimeoutException):
        return GraphError(f"Microsoft Graph did not answer in time while {what}", code=Code.TIMEOUT, status=None)
    if _certificate_problem(exc):
        return GraphError(
            f"Microsoft Graph's TLS certificate is not trusted while {what}: if a proxy inspects TLS, set "
            "EMAILDOCTOR_M365__CA_FILE to its CA certificate",
            code=Code.TLS_CERTIFICATE_INVALID,
            status=None,
            graph_message=str(exc),
        )
    return GraphError(
        f"Cannot reach Microsoft Graph while {what}: {type(exc).__name__}: {exc}",
        code=Code.SERVER_UNAVAILABLE,
        status=None,
        graph_message=str(exc),
    )


def _certificate_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class GraphClient:
    """msgraph-sdk's ``GraphServiceClient`` for these settings, built on first use.

    ``credential`` is an azure-core ``AsyncTokenCredential`` (:meth:`graph.auth.AppTokenProvider.credential`).
    ``http_client`` defaults to :func:`graph.http.build_http_client`; a client passed in is taken over (its
    transport gets msgraph's middleware) and closed by :meth:`aclose`, so give Graph its own.
    ``max_retries`` / ``retry_delay`` configure kiota's RetryHandler for 429/503/504 (``Retry-After`` wins;
    without it the wait is ``0.5·2^(n-1)`` s + jitter + ``retry_delay``).
    """

    def __init__(
        self,
        settings: M365Settings,
        credential: AsyncTokenCredential,
        *,
        http_client: httpx.AsyncClient | None = None,
        max_retries: int = 3,
        retry_delay: float = 1.0,
    ) -> None:
        self.settings = settings
        self._credential = credential
        self._http = http_client
        self._max_retries = max_retries
        self._retry_delay = retry_delay
        self._transport: httpx.AsyncBaseTransport | None = None
        self._sdk: GraphServiceClient | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.settings.graph_url).hostname or ""

    @property
    def scope(self) -> str:
        return f"{self.settings.graph_url}/.default"

    async def sdk(self) -> GraphServiceClient:
        if self._sdk is None:
            # The token is fetched while the SDK's modules load (seconds on a busy machine), not after; a failure
            # here is ignored: the request that needs the token reports it.
            await asyncio.gather(
                asyncio.to_thread(load_sdk), self._credential.get_token(self.scope), return_exceptions=True
            )
        if self._sdk is None:  # another task may have built it while this one waited
            self._sdk = self._build()
        return self._sdk

    async def run(self, what: str, call: Callable[[GraphServiceClient], Awaitable[T]]) -> T:
        """``await call(sdk)``, with msgraph / kiota / httpx failures translated into :class:`GraphError`."""
        from kiota_abstractions.api_error import APIError

        client = await self.sdk()
        try:
            return await call(client)
        except (APIError, httpx.HTTPError) as exc:
            raise translate_graph_error(exc, what=what) from exc

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._transport is not None:
            # msgraph's AsyncGraphTransport does not close the transport it wraps.
            await self._transport.aclose()
        self._http = self._transport = self._sdk = None

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _build(self) -> GraphServiceClient:
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from kiota_http.middleware.options import RetryHandlerOption
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph.graph_request_adapter import options as sdk_options
        from msgraph.graph_service_client import GraphServiceClient
        from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]  # msgraph-core ships no py.typed

        auth = AzureIdentityAuthenticationProvider(
            self._credential, scopes=[self.scope], allowed_hosts=[self.host], is_cae_enabled=False
        )
        if self._http is None:
            self._http = build_http_client(self.settings)
        self._transport = self._http._transport  # the connection pool, which msgraph's wrapper never closes
        options = dict(sdk_options)
        options[RetryHandlerOption.get_key()] = RetryHandlerOption(
            delay=self._retry_delay, max_retries=self._max_retries
        )
        http = GraphClientFactory.create_with_default_middleware(client=self._http, options=options)
        adapter = GraphRequestAdapter(auth, http)
        adapter.base_url = f"{self.settings.graph_url}/v1.0"
        return GraphServiceClient(request_adapter=adapter)

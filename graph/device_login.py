"""Delegated sign-in for the command line: msal's device-code flow (``PublicClientApplication``).

An admin who would rather act as themselves than through the app's Exchange role signs in once with a code
shown in the terminal; :meth:`DeviceCodeLogin.token_source` then gives the same token shape as everything
else (``async () -> str``), renewed silently with the refresh token msal keeps in memory.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from graph.auth import MsalSession, SignInConfigurationError, SignInError, aadsts_of, failure_error, refusal_error
from plugin.diagnosis import Code
from plugin.errors import ConfigError
from plugin.probe_request import TokenSource
from plugin.settings import M365Settings

if TYPE_CHECKING:
    import msal


@dataclass(frozen=True)
class DeviceCodePrompt:
    """What the person must do: open ``verification_uri`` and enter ``user_code``."""

    verification_uri: str
    user_code: str
    message: str
    expires_in: int


@dataclass(frozen=True)
class SignedInUser:
    upn: str
    tenant_id: str | None


PromptCallback = Callable[[DeviceCodePrompt], Awaitable[None] | None]


class DeviceCodeLogin:
    """Delegated sign-in for the CLI: the device-code flow of msal's ``PublicClientApplication`` (the app
    registration must allow public client flows). After :meth:`sign_in`, :meth:`token_source` gives the user's
    tokens, renewed silently with the refresh token msal keeps in memory."""

    def __init__(self, settings: M365Settings, *, http_client: requests.Session | None = None) -> None:
        if settings.tenant_id is None or settings.client_id is None:
            raise ConfigError("set EMAILDOCTOR_M365__TENANT_ID and EMAILDOCTOR_M365__CLIENT_ID to sign in")
        self.settings = settings
        self._session = http_client
        self._owns_session = http_client is None
        self._app: msal.PublicClientApplication | None = None
        self._account: dict[str, Any] | None = None
        self._lock = threading.Lock()

    async def sign_in(self, scopes: Sequence[str], on_prompt: PromptCallback) -> SignedInUser:
        """Start the flow, hand the code to ``on_prompt`` (print it), then poll until the person has signed in,
        the code expires, or the caller cancels."""
        flow: dict[str, Any] = await asyncio.to_thread(self._call, "initiate_device_flow", list(scopes))
        if "user_code" not in flow:
            if aadsts_of(flow) == 7000218:  # the app registration is confidential only
                raise SignInConfigurationError(
                    f"App {self.settings.client_id} does not allow device-code sign-in: turn on 'Allow public "
                    "client flows' in its registration (Authentication), or use the app's own sign-in.",
                    code=Code.OAUTH_TOKEN_INVALID,
                    aadsts=7000218,
                    error=str(flow.get("error")),
                )
            raise refusal_error(flow, self.settings)
        prompt = DeviceCodePrompt(
            str(flow.get("verification_uri") or flow.get("verification_url")),
            str(flow["user_code"]),
            str(flow.get("message", "")),
            int(flow.get("expires_in", 900)),
        )
        shown = on_prompt(prompt)
        if inspect.isawaitable(shown):
            await shown
        while True:
            # One poll per thread call (exit_condition), so waiting stays on the event loop and can be cancelled.
            result = await asyncio.to_thread(
                self._call, "acquire_token_by_device_flow", flow, exit_condition=lambda _flow: True
            )
            if "access_token" in result:
                break
            error = result.get("error")
            if error not in ("authorization_pending", "slow_down", "expired_token"):
                raise refusal_error(result, self.settings)
            if error == "expired_token" or time.time() >= float(flow.get("expires_at", 0)):
                raise SignInError(
                    f"Nobody entered the code {prompt.user_code} in time; run the command again.",
                    code=Code.TIMEOUT,
                    aadsts=aadsts_of(result),
                    error="expired_token",
                )
            await asyncio.sleep(max(1, int(flow.get("interval", 5))))
        claims = result.get("id_token_claims") or {}
        accounts = await asyncio.to_thread(self._call, "get_accounts")
        self._account = accounts[0] if accounts else None
        return SignedInUser(str(claims.get("preferred_username") or ""), claims.get("tid"))

    def token_source(self, scopes: Sequence[str]) -> TokenSource:
        """The signed-in user's token for ``scopes`` (e.g. ``[delegated_scope(exchange_url, "SMTP.Send")]``)."""

        async def source() -> str:
            if self._account is None:
                raise SignInError(
                    "Nobody is signed in: sign in with the device code first.", code=Code.OAUTH_TOKEN_INVALID
                )
            result = await asyncio.to_thread(self._call, "acquire_token_silent_with_error", list(scopes), self._account)
            if not result or "access_token" not in result:
                raise refusal_error(result or {"error": "interaction_required"}, self.settings)
            return str(result["access_token"])

        return source

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await asyncio.to_thread(self._session.close)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from msal.exceptions import MsalServiceError

        with self._lock:
            try:
                return getattr(self._public_app(), method)(*args, **kwargs)
            except (requests.RequestException, MsalServiceError, ValueError, RuntimeError) as exc:
                raise failure_error(exc, self.settings) from exc

    def _public_app(self) -> msal.PublicClientApplication:
        if self._app is None:
            import msal

            if self._session is None:
                self._session = MsalSession(self.settings.ca_file, self.settings.timeout)
            self._app = msal.PublicClientApplication(
                self.settings.client_id,
                authority=f"{self.settings.authority_host}/{self.settings.tenant_id}",
                instance_discovery=self.settings.instance_discovery,
                http_client=self._session,
            )
        return self._app

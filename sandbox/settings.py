"""How the sandbox behaves where the real services leave a choice, and its service limits.

Every behaviour that ``shared/reference/exchange-online.md`` marks UNCONFIRMED is a field here, with
the most likely behaviour as its default (``sandbox/README.md`` explains each). Limits that real
clients must honour (throttling, paging, quotas) are here too so tests can make them small.
Change them in ``tenant.yaml`` (``behaviour:``), through the admin API (``PATCH /_sandbox/settings``)
or directly on ``sandbox.tenant.behaviour``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

SendAsCheck = Literal["data", "mail", "both"]


@dataclass(frozen=True)
class Behaviour:
    # --- sign-in ---------------------------------------------------------------------------------
    token_lifetime_seconds: int = 3599
    """``expires_in`` of every access token; make it short to force clients to refresh."""
    device_code_interval_seconds: int = 5
    device_code_lifetime_seconds: int = 900

    # --- Microsoft Graph -------------------------------------------------------------------------
    graph_default_page_size: int = 100
    graph_mailbox_concurrency: int = 4
    """Concurrent mail requests per app per mailbox before 429 ``ApplicationThrottled`` (UNCONFIRMED
    whether per app or per app and mailbox: the sandbox counts per app and mailbox)."""
    graph_mailbox_not_enabled_status: int = 404
    """HTTP status of ``MailboxNotEnabledForRESTAPI`` (404 observed; 401 reported for older APIs)."""
    graph_retry_after_seconds: int = 1

    # --- Exchange admin API ----------------------------------------------------------------------
    exchange_accept_manage_as_app_v2: bool = False
    """Whether InvokeCommand accepts a token whose only role is ``Exchange.ManageAsAppV2`` (UNCONFIRMED)."""
    exchange_v2_accept_manage_as_app: bool = False
    """Whether the v2.0 Admin API accepts the V1 role ``Exchange.ManageAsApp`` (docs name only V2)."""
    exchange_read_lag_seconds: float = 0.3
    """Admin-API reads are eventually consistent: a change made through a cmdlet shows in Get-* output only this
    long after it (real seconds, or seconds on the sandbox clock, whichever passes first). Live adapters re-read
    for up to ~2 minutes; the default is short so the test suite stays fast, the shape is the live one."""
    exchange_page_expiry_seconds: float = 1800.0
    """A skip token older than this (sandbox clock), or re-POSTed with another ``X-AnchorMailbox``, answers 400
    "Expired or Invalid pagination request. Default Expiry time is 00:30:00" (live)."""
    exchange_batch_max: int = 10
    """Most sub-requests in one adminapi ``$batch`` (UNCONFIRMED; 10 is what every client sends)."""
    exchange_max_concurrent_requests: int = 10
    """Requests in flight per tenant before the plain-text 429 'maximum number of concurrent requests'."""
    exchange_rate_limit: int = 30000
    """Token-bucket size behind ``Rate-Limit-Limit``; each InvokeCommand and each ``$batch`` item costs 1."""
    exchange_rate_window_seconds: float = 300.0
    """Seconds in which an empty bucket refills completely."""
    exchange_default_result_size: int = 1000
    exchange_max_page_size: int = 1000
    exchange_user_filter_not_found: bool = True
    """``Get-MailboxPermission -User X`` with no matching entry answers 404 NotFound ``No permissions were
    found for the user:X`` (observed for the REST cmdlet) instead of an empty list."""

    # --- SMTP submission -------------------------------------------------------------------------
    smtp_send_as_check: SendAsCheck = "data"
    """Where a From that the login may not send as is refused (UNCONFIRMED): ``data`` = header From after
    DATA (554 5.2.252, the observed transcript), ``mail`` = envelope MAIL FROM (550 5.7.60), ``both``."""
    smtp_send_on_behalf: bool = False
    """Whether SMTP accepts From = mailbox with Sender = login under a SendOnBehalf grant (UNCONFIRMED)."""
    smtp_accept_plain: bool = True
    """Whether AUTH PLAIN works although Exchange advertises only LOGIN and XOAUTH2 (it is accepted)."""
    smtp_max_connections_per_mailbox: int = 3
    smtp_daily_recipient_limit: int = 10000

    def __post_init__(self) -> None:
        positive = (
            "token_lifetime_seconds",
            "device_code_interval_seconds",
            "device_code_lifetime_seconds",
            "graph_default_page_size",
            "graph_mailbox_concurrency",
            "exchange_batch_max",
            "exchange_max_concurrent_requests",
            "exchange_rate_limit",
            "exchange_rate_window_seconds",
            "exchange_default_result_size",
            "exchange_max_page_size",
            "smtp_max_connections_per_mailbox",
            "smtp_daily_recipient_limit",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        if self.graph_retry_after_seconds < 0:
            raise ValueError("graph_retry_after_seconds must not be negative")
        if self.graph_mailbox_not_enabled_status not in (401, 404):
            raise ValueError("graph_mailbox_not_enabled_status must be 401 or 404")
        if self.exchange_read_lag_seconds < 0 or self.exchange_page_expiry_seconds <= 0:
            raise ValueError("exchange_read_lag_seconds must not be negative, exchange_page_expiry_seconds positive")
        if self.smtp_send_as_check not in get_args(SendAsCheck):
            raise ValueError(f"smtp_send_as_check must be one of {', '.join(get_args(SendAsCheck))}")
        for name in (
            "exchange_accept_manage_as_app_v2",
            "exchange_v2_accept_manage_as_app",
            "exchange_user_filter_not_found",
            "smtp_send_on_behalf",
            "smtp_accept_plain",
        ):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false")

    def changed(self, **changes: Any) -> Behaviour:
        """A copy with some fields changed; unknown fields or bad values raise ValueError."""
        allowed = {f.name for f in fields(Behaviour)}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        try:
            return replace(self, **changes)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

"""Per-mailbox facts many diagnoses share: what kind of mailbox an address is, and its SMTP AUTH switches.

Every ``/emailtest`` of an employee who sends through the system account asks about the same admin@ mailbox, so
the answers are kept for a short time (``ttl``, a minute by default; the organisation's switch five minutes) and
forgotten at once when emaildoctor itself changes something (:meth:`MailboxFacts.forget`, called by every grant and
revoke). Errors are never kept. The reads go through :class:`graph.exchange_reads.ExchangeReads`, so a diagnosis's
reads share one ``$batch``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from graph.exchange_errors import ExchangeNotFoundError, ExchangeServiceError
from graph.exchange_reads import ExchangeReads
from graph.permissions_model import as_bool, check_mailbox
from plugin.diagnosis import Code
from plugin.errors import ServiceError
from plugin.interfaces import MailboxKind, SmtpAuthState

FACTS_TTL_S = 60.0
TRANSPORT_CONFIG_TTL_S = 300.0


class MailboxFacts:
    def __init__(
        self,
        reads: ExchangeReads,
        *,
        ttl: float = FACTS_TTL_S,
        transport_config_ttl: float = TRANSPORT_CONFIG_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reads = reads
        self._ttl = ttl
        self._transport_ttl = transport_config_ttl
        self._monotonic = monotonic
        self._kinds: dict[str, tuple[float, MailboxKind]] = {}
        self._switches: dict[str, tuple[float, bool | None]] = {}
        self._transport: tuple[float, bool] | None = None

    def forget(self) -> None:
        """Drop every kept answer, and let no read already under way answer later questions (after a change
        emaildoctor made)."""
        self._reads.forget()
        self._kinds.clear()
        self._switches.clear()
        self._transport = None

    async def smtp_auth(self, mailbox: str) -> SmtpAuthState:
        """``Get-CASMailbox`` for the mailbox switch (None inherits) and ``Get-TransportConfig`` for the
        organisation's."""
        mailbox = check_mailbox(mailbox)
        own, tenant = await asyncio.gather(
            self._mailbox_switch(mailbox), self._tenant_disabled(), return_exceptions=True
        )
        if isinstance(own, BaseException):
            raise own
        if isinstance(tenant, ExchangeServiceError) and tenant.code is Code.EXCHANGE_ROLE_MISSING:
            if own is not None:  # the mailbox's own switch decides; the organisation's does not matter
                return SmtpAuthState(tenant_disabled=True, mailbox_disabled=own)
            raise ExchangeServiceError(
                f"could not read the organisation's SMTP AUTH switch: {tenant}", code=tenant.code, info=tenant.info
            ) from tenant
        if isinstance(tenant, BaseException):
            raise tenant
        return SmtpAuthState(tenant_disabled=tenant, mailbox_disabled=own)

    async def mailbox_kind(self, address: str) -> MailboxKind:
        """What Exchange says the mailbox is (``RecipientTypeDetails``): the exact answer Graph cannot give
        without MailboxSettings.Read (a disabled user's own mailbox is not a shared one)."""
        address = check_mailbox(address)
        key, now = address.casefold(), self._monotonic()
        kept = self._kinds.get(key)
        if kept is not None and now - kept[0] < self._ttl:
            return kept[1]
        try:
            result = await self._reads.invoke(
                "Get-Mailbox", {"Identity": address}, anchor=address, select=("RecipientTypeDetails",)
            )
        except ExchangeNotFoundError:
            kind = MailboxKind.NONE
        else:
            details = str(result.rows[0].get("RecipientTypeDetails", "")).casefold() if result.rows else ""
            if details in ("sharedmailbox", "roommailbox", "equipmentmailbox"):
                kind = MailboxKind.SHARED
            else:
                kind = MailboxKind.USER if details.endswith("mailbox") else MailboxKind.NONE
        self._kinds[key] = (now, kind)
        return kind

    async def _mailbox_switch(self, mailbox: str) -> bool | None:
        key, now = mailbox.casefold(), self._monotonic()
        kept = self._switches.get(key)
        if kept is not None and now - kept[0] < self._ttl:
            return kept[1]
        cas = await self._reads.invoke(
            "Get-CASMailbox", {"Identity": mailbox}, anchor=mailbox, select=("SmtpClientAuthenticationDisabled",)
        )
        value = cas.rows[0].get("SmtpClientAuthenticationDisabled") if cas.rows else None
        disabled = None if value is None else as_bool(value)
        self._switches[key] = (now, disabled)
        return disabled

    async def _tenant_disabled(self) -> bool:
        now = self._monotonic()
        if self._transport is not None and now - self._transport[0] < self._transport_ttl:
            return self._transport[1]
        result = await self._reads.invoke("Get-TransportConfig", select=("SmtpClientAuthenticationDisabled",))
        if not result.rows:
            raise ServiceError("Exchange Online returned no transport configuration")
        disabled = as_bool(result.rows[0].get("SmtpClientAuthenticationDisabled"))
        self._transport = (now, disabled)
        return disabled

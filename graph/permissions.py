"""SendAs, SendOnBehalf and FullAccess: show, reverse lookup, grant and revoke, through the Exchange admin API.

=============  ========================================================  ==============================
right          read                                                      change
=============  ========================================================  ==============================
SendAs         Get-RecipientPermission -Identity M [-Trustee T]          Add-/Remove-RecipientPermission
SendOnBehalf   Get-Mailbox -Identity M → GrantSendOnBehalfTo (Names)     Set-Mailbox @{Add=T} / @{Remove=T}
FullAccess     Get-MailboxPermission -Identity M [-User T]               Add-/Remove-MailboxPermission
=============  ========================================================  ==============================

``grant`` and ``revoke`` are idempotent: they read the right first (held already → ``unchanged``, no call),
treat Exchange's no-op warnings as ``unchanged``, and read the right back afterwards. Exchange's reads are
eventually consistent, so the read-back retries with back-off for a bounded time (2 minutes by default): a change
that shows is ``changed`` with the lag it took, one that Exchange accepted but that never shows within the bound is
``not_visible_yet`` (done, not confirmed), never ``failed``. Inputs are validated before any call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from graph.exchange import Command, ExchangeAdmin, Row
from graph.exchange_errors import ExchangeNotFoundError, is_no_permissions
from graph.exchange_reads import ExchangeReader, ExchangeReads
from graph.groups import GroupMembers, holding_group
from graph.mailbox_facts import FACTS_TTL_S, TRANSPORT_CONFIG_TTL_S, MailboxFacts
from graph.permission_rows import (
    change_command,
    deny,
    full_access_command,
    mailbox_permission_grant,
    recipient_permission_grant,
)
from graph.permissions_model import (
    GUID,
    SELF,
    ChangeAction,
    ChangeOutcome,
    ChangeResult,
    Grant,
    MailboxRights,
    TrusteeKind,
    access_rights,
    as_bool,
    check_mailbox,
    check_trustee,
    display_trustee,
    kind_from_label,
    parse_right,
)
from plugin.clock import Clock, SystemClock
from plugin.diagnosis import Right
from plugin.errors import ConfigError, EmailDoctorError, NotFoundError
from plugin.interfaces import MailboxKind, RightHolding, SmtpAuthState

NO_OP_WARNINGS = (
    "no settings of",  # Set-Mailbox: "The command completed successfully but no settings of '…' have been modified."
    "because the ACE isn't present",  # Remove-RecipientPermission
    "because the ACE doesn't exist",  # Remove-MailboxPermission
    "already has the permission",
)
READBACK_FIRST_WAIT = 0.5
READBACK_MAX_WAIT = 10.0
"""Read-back waits: 0.5, 1, 2, 4, 8, then every 10 s (a public adapter re-reads 13 × 10 s)."""
MAILBOX_FIELDS = ("Identity", "Name", "PrimarySmtpAddress", "UserPrincipalName", "ExternalDirectoryObjectId", "Alias")


class PermissionService:
    """Implements :class:`plugin.interfaces.RightsReader`, plus show / who / grant / revoke and ``smtp_auth``."""

    def __init__(
        self,
        exchange: ExchangeAdmin,
        *,
        clock: Clock | None = None,
        transport_config_ttl: float = TRANSPORT_CONFIG_TTL_S,
        facts_ttl: float = FACTS_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
        readback_timeout: float = 120.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``facts_ttl``: how long a mailbox's kind and SMTP AUTH switch are kept (forgotten at every change).
        ``readback_timeout``: how long a change's read-back retries (with back-off, on ``sleep`` and ``monotonic``)
        before the change is reported as not visible in Exchange yet."""
        self._exchange = exchange
        self.automapping = True
        """Full Access grants add the mailbox to the trustee's Outlook (``-AutoMapping``); ``emaildoctor grant
        --no-automapping`` turns it off for its one change."""
        self._readback_timeout = readback_timeout
        self._sleep = sleep
        self._clock: Clock = clock or SystemClock()
        self._monotonic = monotonic
        self.reads = ExchangeReads(exchange)
        """Reads that start together share one ``$batch`` (a diagnosis's checks)."""
        self.facts = MailboxFacts(
            self.reads, ttl=facts_ttl, transport_config_ttl=transport_config_ttl, monotonic=monotonic
        )

    @property
    def exchange(self) -> ExchangeAdmin:
        """The Exchange admin API client this service reads and changes rights through."""
        return self._exchange

    # --- RightsReader ------------------------------------------------------------------------------------------
    async def holds(self, right: Right | str, mailbox: str, trustee: str, *, direct: bool = False) -> RightHolding:
        """Whether ``trustee`` holds ``right`` on ``mailbox``, directly or as a (nested) member of a group that holds
        it (``via_group``); a deny entry wins. Raises NotFoundError (``mailbox_not_found`` / ``user_not_found``) when
        either does not exist. ``direct``: the direct read is a request of its own (a change's read-back)."""
        right = parse_right(right)
        mailbox = check_mailbox(mailbox)
        trustee = check_trustee(trustee, allow_sid=True)
        reader = self._reader(direct)
        members = GroupMembers(self._exchange, reads=reader)
        # The direct read, every holder of the right and the trustee's names start together (one $batch); the
        # holders and names matter only when the right is not held directly and a group holds it.
        held, holders, _ = await asyncio.gather(
            self._holds(right, mailbox, trustee, direct=direct),
            self._holders(right, mailbox, reader),
            members.keys_of(trustee),
            return_exceptions=True,
        )
        if isinstance(held, BaseException):
            raise held
        via = None
        if not held:
            if isinstance(holders, BaseException):
                raise holders
            if any(g.right is right and g.trustee_kind is TrusteeKind.GROUP for g in holders):
                via = await holding_group(members, holders, right, trustee)
        return RightHolding(right=right, mailbox=mailbox, trustee=trustee, held=held or via is not None, via_group=via)

    def _reader(self, direct: bool) -> ExchangeReader:
        """``direct``: each read a request of its own, not gathered into a ``$batch`` with other callers' reads nor
        sharing their answers — a change's reads before and after it, so that one change waiting on Exchange never
        holds up another's, and no read asked before a change answers for after it."""
        return self._exchange if direct else self.reads

    async def _holders(self, right: Right, mailbox: str, reader: ExchangeReader) -> list[Grant]:
        """Every holder of ``right`` on ``mailbox`` (groups among them), for the group check."""
        if right is Right.SEND_AS:
            rows = await reader.invoke("Get-RecipientPermission", {"Identity": mailbox}, anchor=mailbox)
            return [g for r in rows.rows if (g := recipient_permission_grant(r, mailbox)) is not None]
        if right is Right.FULL_ACCESS:
            command = full_access_command(mailbox)
            rows = await reader.invoke(command.cmdlet, command.parameters, anchor=mailbox)
            return [g for r in rows.rows if (g := mailbox_permission_grant(r, mailbox)) is not None]
        return [g for g in (await self.show(mailbox, reader=reader)).grants if g.right is right]

    async def _holds(self, right: Right, mailbox: str, trustee: str, *, direct: bool = False) -> bool:
        """Whether ``trustee`` holds ``right`` directly (``direct``: see :meth:`_reader`)."""
        reader = self._reader(direct)
        if right is Right.SEND_AS:
            result = await reader.invoke(
                "Get-RecipientPermission",
                {"Identity": mailbox, "Trustee": trustee, "AccessRights": ["SendAs"]},
                anchor=mailbox,
            )
            rows = [r for r in result.rows if "SendAs" in access_rights(r.get("AccessRights"))]
            return bool(rows) and not any(deny(r) for r in rows)
        if right is Right.FULL_ACCESS:
            try:
                command = full_access_command(mailbox, trustee)
                result = await reader.invoke(command.cmdlet, command.parameters, anchor=mailbox)
            except ExchangeNotFoundError as exc:
                if is_no_permissions(exc):
                    return False
                raise
            rows = [r for r in result.rows if "FullAccess" in access_rights(r.get("AccessRights"))]
            return bool(rows) and not any(r.get("Deny") is not None and as_bool(r.get("Deny")) for r in rows)
        names = await self._delegate_names(mailbox, reader)
        return bool(names & await self._recipient_keys(trustee, reader))

    # --- show / who --------------------------------------------------------------------------------------------
    async def show(self, mailbox: str, *, reader: ExchangeReader | None = None) -> MailboxRights:
        """Every SendAs, SendOnBehalf and FullAccess holder of ``mailbox`` (one ``$batch``, as CIPP does; then one
        more to turn GrantSendOnBehalfTo's recipient Names into addresses). ``reader``: gathered with other
        callers' reads by default (see :meth:`_reader`)."""
        mailbox = check_mailbox(mailbox)
        reader = reader or self.reads
        send_as, box, full = await reader.batch(
            [
                Command("Get-RecipientPermission", {"Identity": mailbox}, anchor=mailbox),
                Command(
                    "Get-Mailbox",
                    {"Identity": mailbox},
                    anchor=mailbox,
                    select=(*MAILBOX_FIELDS, "GrantSendOnBehalfTo"),
                ),
                full_access_command(mailbox),
            ]
        )
        box_rows = box.unwrap().rows  # a missing mailbox raises mailbox_not_found here
        address = str(box_rows[0].get("PrimarySmtpAddress") or mailbox) if box_rows else mailbox
        send_as_rows, full_rows = send_as.unwrap(), full.unwrap()
        names = [str(n) for row in box_rows for n in row.get("GrantSendOnBehalfTo") or []]
        delegates = await self._resolve_names(names, reader)
        return MailboxRights(
            mailbox=address,
            send_as=tuple(g for r in send_as_rows.rows if (g := recipient_permission_grant(r, address)) is not None),
            send_on_behalf=tuple(
                Grant(Right.SEND_ON_BEHALF, address, label, kind) for label, kind in (delegates[n] for n in names)
            ),
            full_access=tuple(g for r in full_rows.rows if (g := mailbox_permission_grant(r, address)) is not None),
            warnings=(*send_as_rows.warnings, *box.unwrap().warnings, *full_rows.warnings),
        )

    async def who(self, trustee: str, *, include_full_access: bool = True) -> list[Grant]:
        """What ``trustee`` holds, tenant-wide (reverse lookup).

        Cost: SendAs is one paged ``Get-RecipientPermission -Trustee`` plus one ``$batch`` per 10 mailboxes found
        (to print addresses); SendOnBehalf is one paged ``Get-Mailbox -Filter 'GrantSendOnBehalfTo -ne $null'``
        (only mailboxes that have delegates). FullAccess has no reverse query in the API: it lists every mailbox
        (one request per 1,000) and asks ``Get-MailboxPermission -User`` for each, 10 per ``$batch`` — about
        N/10 requests and N items of the rate budget for N mailboxes. Pass ``include_full_access=False`` to skip it
        (or read it from the last audit snapshot)."""
        trustee = check_trustee(trustee, allow_sid=True)
        keys = await self._recipient_keys(trustee)
        found: list[Grant] = []
        by_name: dict[str, list[Row]] = {}
        async for page in self._exchange.pages(
            "Get-RecipientPermission", {"Trustee": trustee, "AccessRights": ["SendAs"], "ResultSize": "Unlimited"}
        ):
            for row in page.rows:
                if str(row.get("Trustee", "")).upper() != SELF:
                    by_name.setdefault(str(row.get("Identity", "")), []).append(row)
        addresses = await self._resolve_names(list(by_name))
        for name, rows in by_name.items():
            found.extend(g for r in rows if (g := recipient_permission_grant(r, addresses[name][0])) is not None)
        async for page in self._exchange.pages(
            "Get-Mailbox",
            {"Filter": "GrantSendOnBehalfTo -ne $null", "ResultSize": "Unlimited"},
            select=("PrimarySmtpAddress", "GrantSendOnBehalfTo"),
        ):
            found.extend(
                Grant(Right.SEND_ON_BEHALF, str(row["PrimarySmtpAddress"]), display_trustee(trustee))
                for row in page.rows
                if {str(n).casefold() for n in row.get("GrantSendOnBehalfTo") or []} & keys
            )
        if include_full_access:
            found.extend(await self._full_access_of(trustee))
        return sorted(found)

    async def _full_access_of(self, trustee: str) -> list[Grant]:
        found: list[Grant] = []
        async for page in self._exchange.pages(
            "Get-Mailbox", {"ResultSize": "Unlimited"}, select=("PrimarySmtpAddress",)
        ):
            commands = [full_access_command(str(r["PrimarySmtpAddress"]), trustee) for r in page.rows]
            for outcome in await self._exchange.batch(commands):
                if outcome.error is not None:
                    if isinstance(outcome.error, NotFoundError):
                        continue  # no entry for the trustee, or the mailbox went away meanwhile
                    raise outcome.error
                address = str(outcome.command.parameters["Identity"])
                assert outcome.result is not None
                found.extend(
                    g
                    for r in outcome.result.rows
                    if (g := mailbox_permission_grant(r, address)) is not None and g.right is Right.FULL_ACCESS
                )
        return found

    # --- grant / revoke ----------------------------------------------------------------------------------------
    async def grant(
        self, right: Right | str, mailbox: str, trustee: str, *, expires_at: datetime | None = None
    ) -> ChangeResult:
        """Grant ``right`` on ``mailbox`` to ``trustee`` and read it back. ``changed`` / ``unchanged`` (already held)
        / ``failed`` (Exchange refused, or the read-back does not show it). Bad input raises ConfigError, an unknown
        mailbox or trustee NotFoundError; either way nothing changed."""
        right, mailbox, trustee = parse_right(right), check_mailbox(mailbox), check_trustee(trustee)
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= self._clock.now()):
            raise ConfigError("expires_at must be a timezone-aware time in the future")
        return await self._change(ChangeAction.GRANT, right, mailbox, trustee, expires_at)

    async def revoke(self, right: Right | str, mailbox: str, trustee: str) -> ChangeResult:
        """Remove ``right``; ``trustee`` may be the bare SID of a deleted account. Read back like :meth:`grant`."""
        right, mailbox = parse_right(right), check_mailbox(mailbox)
        trustee = check_trustee(trustee, allow_sid=right is not Right.SEND_ON_BEHALF)
        return await self._change(ChangeAction.REVOKE, right, mailbox, trustee, None)

    async def _change(
        self, action: ChangeAction, right: Right, mailbox: str, trustee: str, expires_at: datetime | None
    ) -> ChangeResult:
        wanted = action is ChangeAction.GRANT

        def result(outcome: ChangeOutcome, detail: str, **extra: Any) -> ChangeResult:
            return ChangeResult(
                action, right, mailbox, trustee, outcome, detail, self._clock.now(), expires_at=expires_at, **extra
            )

        words = f"{right} on {mailbox} for {trustee}"
        self.facts.forget()  # what we change may change what the kept facts say
        if await self._holds(right, mailbox, trustee, direct=True) == wanted:
            state = "already holds" if wanted else "does not hold"
            return result(ChangeOutcome.UNCHANGED, f"{trustee} {state} {right} on {mailbox}", verified=True)
        command = change_command(action, right, mailbox, trustee, automapping=self.automapping)
        try:
            answer = await self._exchange.invoke(command.cmdlet, command.parameters, anchor=mailbox)
        except (ConfigError, NotFoundError):
            raise
        except EmailDoctorError as exc:
            return result(ChangeOutcome.FAILED, f"Exchange refused to {action} {words}: {exc}", code=exc.code)
        finally:
            self.facts.forget()  # and no read asked before the change answers a question asked after it
        no_op = any(marker in w for w in answer.warnings for marker in NO_OP_WARNINGS)
        try:
            lag = await self._read_back(right, mailbox, trustee, wanted)
        except EmailDoctorError as exc:
            # Exchange accepted the change; only the read failed (a read role, a lookup, an outage): not a failure.
            return result(
                ChangeOutcome.NOT_VISIBLE,
                f"{command.cmdlet} ran, but reading it back failed: {exc}",
                code=exc.code,
                warnings=answer.warnings,
            )
        done = "granted" if wanted else "revoked"
        if lag is None:
            # Exchange accepted the change; its reads are eventually consistent, so this is not a failure.
            return result(
                ChangeOutcome.NOT_VISIBLE,
                f"{done} {words}: Exchange accepted it, but it does not show in Exchange yet after "
                f"{self._readback_timeout:g} s; check again later with `emaildoctor perms {mailbox}`",
                warnings=answer.warnings,
            )
        outcome = ChangeOutcome.UNCHANGED if no_op else ChangeOutcome.CHANGED
        after = f" after {lag:.0f} s" if lag >= 1 else ""
        return result(
            outcome, f"{done} {words} (read back{after})", verified=True, warnings=answer.warnings, lag_seconds=lag
        )

    async def _read_back(self, right: Right, mailbox: str, trustee: str, wanted: bool) -> float | None:
        """Seconds until Exchange's reads show the change, re-reading with back-off for at most the read-back bound;
        None when it never showed (live admin-API reads lag a change by up to ~2 minutes)."""
        start = self._monotonic()
        attempt = 0
        while True:
            if await self._holds(right, mailbox, trustee, direct=True) == wanted:
                return self._monotonic() - start
            left = self._readback_timeout - (self._monotonic() - start)
            if left <= 0:
                return None
            await self._sleep(min(READBACK_FIRST_WAIT * 2**attempt, READBACK_MAX_WAIT, left))
            attempt += 1

    # --- per-mailbox facts (kept a minute, see graph.mailbox_facts) ---------------------------------------------
    async def smtp_auth(self, mailbox: str) -> SmtpAuthState:
        """The mailbox's and the organisation's SMTP AUTH switches (``Get-CASMailbox``, ``Get-TransportConfig``)."""
        return await self.facts.smtp_auth(mailbox)

    async def mailbox_kind(self, address: str) -> MailboxKind:
        """What Exchange says the mailbox is (``RecipientTypeDetails``)."""
        return await self.facts.mailbox_kind(address)

    # --- recipient names -----------------------------------------------------------------------------------------
    async def _delegate_names(self, mailbox: str, reader: ExchangeReader | None = None) -> set[str]:
        result = await (reader or self.reads).invoke(
            "Get-Mailbox", {"Identity": mailbox}, anchor=mailbox, select=("GrantSendOnBehalfTo",)
        )
        return {str(n).casefold() for row in result.rows for n in row.get("GrantSendOnBehalfTo") or []}

    async def _recipient_keys(self, identity: str, reader: ExchangeReader | None = None) -> set[str]:
        """Every way Exchange may name ``identity`` in GrantSendOnBehalfTo (Name, object id, alias, addresses).
        ``Get-Recipient``, not Get-Mailbox: the delegate may be a group or a mail user too."""
        keys = {identity.casefold()}
        try:
            result = await (reader or self.reads).invoke("Get-Recipient", {"Identity": identity}, select=MAILBOX_FIELDS)
        except NotFoundError:
            return keys  # not a recipient: a SID or an unknown name
        keys.update(str(row[f]).casefold() for row in result.rows for f in MAILBOX_FIELDS if row.get(f))
        return keys

    async def _resolve_names(
        self, names: Iterable[str], reader: ExchangeReader | None = None
    ) -> dict[str, tuple[str, TrusteeKind]]:
        """Recipient Names (GrantSendOnBehalfTo, RecipientPermission Identity) → (address, kind), one ``$batch`` per
        10 distinct names through ``Get-Recipient`` (users and groups alike). A Name that is no recipient stays as it
        is: an unknown object id, or a name."""
        unique = list(dict.fromkeys(n for n in names if n))
        outcomes = await (reader or self.reads).batch(
            [Command("Get-Recipient", {"Identity": n}, select=("PrimarySmtpAddress", "RecipientType")) for n in unique]
        )
        resolved: dict[str, tuple[str, TrusteeKind]] = {}
        for name, outcome in zip(unique, outcomes, strict=True):
            if outcome.result is not None and outcome.result.rows:
                row = outcome.result.rows[0]
                group = "group" in str(row.get("RecipientType") or "").casefold()
                resolved[name] = (
                    str(row.get("PrimarySmtpAddress") or name),
                    TrusteeKind.GROUP if group else TrusteeKind.USER,
                )
            elif outcome.error is None or isinstance(outcome.error, NotFoundError):
                kind = TrusteeKind.UNKNOWN if GUID.match(name) else kind_from_label(name)
                resolved[name] = (display_trustee(name), kind)
            else:
                raise outcome.error
        return resolved

"""Second looks at a failed test for the words a helpdesk can act on, when the server's refusal alone would mislead.

* The user asked for matches several people (:class:`~plugin.ambiguity.AmbiguousUserError`, in the directory or
  in Microsoft 365): ``ambiguous_user`` listing them, not "User not found".
* The From address is in a domain the tenant does not host: ``from_outside_tenant`` (Exchange answers
  SendAsDenied, but no grant can fix that, so no ``Run:`` line).
* The From address is the tenant's but no mailbox has it: ``mailbox_not_found`` (the server refused the
  test's recipient, which is the From address itself, or the sender).
* The Authenticated User's or the From mailbox's account is disabled: said in the cause, whatever the code.

The tenant's domains come from Microsoft Graph ``GET /domains`` (Domain.Read.All, optional); without that
permission, from the domains of the account that signs in (a tenant user), which the wording then says.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from plugin.addresses import same_address
from plugin.ambiguity import AmbiguousUserError
from plugin.catalogue import Facts, diagnose
from plugin.diagnosis import Code, Diagnosis, Right
from plugin.errors import EmailDoctorError, NotFoundError
from plugin.interfaces import MailboxKind, Microsoft365, UserDirectory, UserRecord
from plugin.resolve import SendPlan

# Refusals after the sign-in that a From address outside the tenant, without a mailbox, or matching several users
# explains better than the server's words do.
AFTER_SIGN_IN = frozenset(
    {
        Code.SEND_AS_DENIED,
        Code.SEND_ON_BEHALF_NOT_HONOURED,
        Code.SENDER_REJECTED,
        Code.RECIPIENT_REJECTED,
        Code.MAILBOX_NOT_FOUND,
        Code.USER_NOT_FOUND,
        Code.UNKNOWN,
    }
)


def lookup_diagnosis(query: str, error: NotFoundError, secrets: Sequence[str] = ()) -> Diagnosis:
    """The diagnosis when the directory has no single employee for ``query``: not found, or several match."""
    if isinstance(error, AmbiguousUserError):
        facts = Facts(user=query, candidates=tuple(c.describe() for c in error.matches))
        return diagnose(Code.AMBIGUOUS_USER, facts, [str(error)], secrets=secrets)
    detail = f": {str(error).removesuffix('.')}"  # the catalogue's sentence ends it
    return diagnose(Code.USER_NOT_FOUND, Facts(user=query, detail=detail), secrets=secrets)


@dataclass(frozen=True)
class _Lookup:
    record: UserRecord | None = None
    ambiguous: AmbiguousUserError | None = None
    failed: bool = False
    """Microsoft 365 could not be asked (refused, timed out): nothing is concluded from it."""


Finder = Callable[[str], Awaitable[UserRecord | None]]


class UserLookups:
    """One diagnosis's Microsoft 365 user lookups: each address is asked once, whether the checks or
    :func:`review` ask it (the same answers in both, and no second round trip after the test send fails). A lookup
    that failed is not kept: asked again later, it is tried again."""

    def __init__(self, users: UserDirectory) -> None:
        self._users = users
        self._asked: dict[str, asyncio.Future[UserRecord | None]] = {}

    async def find_user(self, query: str) -> UserRecord | None:
        key = query.strip().casefold()
        future = self._asked.get(key)
        if future is None:
            future = self._asked[key] = asyncio.ensure_future(self._users.find_user(query))
            future.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(future)

    def _landed(self, key: str, done: asyncio.Future[UserRecord | None]) -> None:
        failed = done.cancelled() or done.exception() is not None  # (marks an error seen, whoever still waits)
        if failed and self._asked.get(key) is done:
            del self._asked[key]


async def _lookup(find_user: Finder, address: str) -> _Lookup:
    try:
        return _Lookup(record=await find_user(address))
    except AmbiguousUserError as exc:
        return _Lookup(ambiguous=exc)
    except EmailDoctorError:
        return _Lookup(failed=True)


async def review(
    m365: Microsoft365 | None,
    plan: SendPlan,
    diagnosis: Diagnosis,
    *,
    secrets: Sequence[str] = (),
    wait_minutes: float | None = None,
    lookups: UserLookups | None = None,
) -> Diagnosis:
    """``diagnosis`` of a failed test, re-worded where Microsoft 365 knows better (see the module docstring).
    ``lookups``: the diagnosis's own, so that the addresses its checks looked up are not asked again."""
    if m365 is None:
        return diagnosis
    find_user = lookups.find_user if lookups is not None else m365.users.find_user
    own = same_address(plan.principal, plan.from_addr)
    principal, sender = await asyncio.gather(
        _lookup(find_user, plan.principal), _lookup(find_user, plan.from_addr) if not own else _none()
    )
    if own:
        sender = principal
    facts = Facts(
        principal=plan.principal,
        from_addr=plan.from_addr,
        to_addr=plan.to_addr,
        right=plan.required_right,
        user=plan.user.name,
        server_source=plan.server_source,
        wait_minutes=wait_minutes,
    )
    replaced = None
    if diagnosis.code in AFTER_SIGN_IN and not principal.failed:
        replaced = await _better(m365, plan, facts, principal, sender, diagnosis, secrets)
    result = replaced or diagnosis
    warnings = _disabled_warnings(plan, principal.record, sender.record if not own else None)
    if warnings:
        result = dataclasses.replace(result, cause=f"{result.cause} {' '.join(warnings)}")
    return result


async def _none() -> _Lookup:
    return _Lookup()


async def _better(
    m365: Microsoft365,
    plan: SendPlan,
    facts: Facts,
    principal: _Lookup,
    sender: _Lookup,
    diagnosis: Diagnosis,
    secrets: Sequence[str],
) -> Diagnosis | None:
    ambiguous = sender.ambiguous or principal.ambiguous
    if ambiguous is not None:
        candidates = tuple(c.describe() for c in ambiguous.matches)
        words = dataclasses.replace(facts, user=ambiguous.query, candidates=candidates, detail=" in Microsoft 365")
        return diagnose(Code.AMBIGUOUS_USER, words, [*diagnosis.evidence, str(ambiguous)], secrets=secrets)
    if principal.record is None or sender.failed:
        return None  # the account that signs in is not the tenant's: the server may not be Microsoft 365 at all
    record = sender.record
    asked: list[bool | None] = []

    async def recipient_exists() -> bool | None:  # asked at most once
        if not asked:
            asked.append(await _recipient_exists(m365, plan))
        return asked[0]

    if record is None or record.guest:
        domains, evidence = await _tenant_domains(m365, principal.record)
        domain = plan.from_addr.rpartition("@")[2].casefold()
        if domain not in domains.names and (domains.exact or not await recipient_exists()):
            words = dataclasses.replace(facts, domains=domains.listed, detail=domains.clause)
            return diagnose(Code.FROM_OUTSIDE_TENANT, words, [*diagnosis.evidence, *evidence], secrets=secrets)
    if record is None:
        known = await recipient_exists()
        if known:
            return None  # a group or another recipient Exchange knows: the server's words stand
        reason = (
            ": no user, shared mailbox or group in Microsoft 365 has this address"
            if known is False
            else ": no Microsoft 365 user has this address"
        )
        return diagnose(
            Code.MAILBOX_NOT_FOUND, dataclasses.replace(facts, detail=reason), diagnosis.evidence, secrets=secrets
        )
    if record.mailbox is MailboxKind.NONE and diagnosis.code is not Code.MAILBOX_NOT_FOUND:
        reason = (
            f": the account {record.display_name} exists, but it is unlicensed, inactive, soft-deleted or on-premises"
        )
        return diagnose(
            Code.MAILBOX_NOT_FOUND, dataclasses.replace(facts, detail=reason), diagnosis.evidence, secrets=secrets
        )
    return None


async def _recipient_exists(m365: Microsoft365, plan: SendPlan) -> bool | None:
    """Whether Exchange knows the From address as any recipient (a group has no user, but may be sent as); None
    when Exchange cannot be asked."""
    try:
        await m365.rights.holds(Right.SEND_AS, plan.from_addr, plan.principal)
    except NotFoundError:
        return False
    except EmailDoctorError:
        return None
    return True


@dataclass(frozen=True)
class _Domains:
    names: frozenset[str]
    listed: tuple[str, ...]
    clause: str
    """Appended to 'is not a domain of this Microsoft 365 organisation' when the list is partial."""
    exact: bool = True
    """False: only the domains of the account that signs in (the organisation's may not be read)."""


async def _tenant_domains(m365: Microsoft365, principal: UserRecord) -> tuple[_Domains, list[str]]:
    try:
        domains = await m365.users.accepted_domains()
    except EmailDoctorError:
        domains = None
    if domains:
        listed = tuple(sorted(domains, key=lambda d: (d.casefold().endswith(".onmicrosoft.com"), d)))
        found = f"Microsoft 365: the organisation's domains are {', '.join(listed)}"
        return _Domains(frozenset(d.casefold() for d in listed), listed, ""), [found]
    own = [principal.upn, principal.mail or "", *(p.split(":", 1)[-1] for p in principal.proxy_addresses)]
    names = sorted({a.rpartition("@")[2].casefold() for a in own if "@" in a})
    listed = tuple(sorted(names, key=lambda d: (d.endswith(".onmicrosoft.com"), d)))
    clause = (
        f" (emaildoctor may not read the organisation's domains, so this comes from the addresses of "
        f"{principal.upn}, which signs in: {', '.join(listed)}, and no Microsoft 365 user has the From address)"
    )
    evidence = [
        "Microsoft 365: no user has the From address; the organisation's domains could not be read (the "
        "application permission Domain.Read.All makes this exact)"
    ]
    return _Domains(frozenset(names), listed, clause, exact=False), evidence


def _disabled_warnings(plan: SendPlan, principal: UserRecord | None, sender: UserRecord | None) -> list[str]:
    """A disabled account on a user mailbox (someone who left): worth saying. A shared mailbox's account is
    disabled by design, so it is not."""
    warnings = []
    if principal is not None and not principal.enabled and principal.mailbox is not MailboxKind.SHARED:
        warnings.append(
            f"Note: the account of {plan.principal}, which signs in, is disabled in Microsoft 365 (sign-in "
            "blocked); if its owner has left, sign in with another account."
        )
    if sender is not None and not sender.enabled and sender.mailbox is not MailboxKind.SHARED and not sender.guest:
        warnings.append(
            f"Note: the account of {plan.from_addr} (the From mailbox) is disabled in Microsoft 365; if its owner "
            "has left, check that this is still the right address to send from."
        )
    return warnings

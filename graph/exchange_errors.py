"""Exchange admin API errors translated into :mod:`plugin.errors`.

The service answers an error as ``{"error":{"code","message","details":[{"code","target","message"}],
"innererror":{…}}}`` where ``details[0].message`` is ``<ErrorId>|<ExceptionClass>|<text>`` (CIPP and ExoHelper
parse exactly this; shared/reference/exchange-online.md §1a). Live answers (2026) often have no ``details``, say
"Invalid Operation" in ``error.message`` and put the class in ``innererror.internalexception.type``. The text is
read in CIPP's order: the details message, then ``innererror.internalexception.message``, then
``innererror.message``, then ``error.message``; the class from details, else ``internalexception.type``. Control
characters never survive parsing (:func:`plugin.redact.printable`). Translation::

    exception class / status                          raised
    ManagementObjectNotFoundException                 ExchangeNotFoundError  mailbox_not_found | user_not_found
    ODataServiceException, 404 "No permissions …"     ExchangeNotFoundError  user_not_found   (no matching ACE)
    ManagementObjectAmbiguousException                ExchangeConfigError    (an identity matches several objects)
    401 "User is not allowed to call <Cmdlet>",       ExchangeServiceError   exchange_role_missing (names the
    403 (live: a body of 4,096 NUL bytes),                                   cmdlet and the role that covers it,
    CmdletAccessDeniedException                                              graph/exchange_roles.py)
    401 with error_category insufficient_claims       ExchangeServiceError   graph_access_denied
    401 otherwise                                     ExchangeServiceError   oauth_token_invalid
    429 (after the retries)                           ExchangeServiceError   throttled
    408, 5xx (after the retries)                      ExchangeServiceError   server_unavailable
    ParameterBindingException, CommandNotFoundException, anything else
                                                      ExchangeServiceError   unknown, with the service's words

Every error keeps the parsed :class:`ExchangeErrorInfo` in ``.info``; our types only, nothing from httpx.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from graph.exchange_roles import RECOMMENDED, role_advice
from plugin.catalogue import Facts, diagnose
from plugin.diagnosis import Code
from plugin.errors import ConfigError, EmailDoctorError, NotFoundError, ServiceError
from plugin.redact import printable

NOT_FOUND = "ManagementObjectNotFoundException"
AMBIGUOUS = "ManagementObjectAmbiguousException"
ACCESS_DENIED = "CmdletAccessDeniedException"
PARAMETER_BINDING = "ParameterBindingException"
COMMAND_NOT_FOUND = "CommandNotFoundException"
ODATA_SERVICE = "ODataServiceException"
NO_PERMISSIONS_PREFIX = "No permissions were found for the user"
PAGE_EXPIRED = "Expired or Invalid pagination request"
CONCURRENCY_TEXT = "You have reached the maximum number of concurrent requests per tenant"

HANDLED_CLASSES: Mapping[str, Code | None] = {
    NOT_FOUND: Code.MAILBOX_NOT_FOUND,  # or USER_NOT_FOUND when the target is the trustee
    AMBIGUOUS: None,  # ConfigError: bad input, nothing changed
    ACCESS_DENIED: Code.EXCHANGE_ROLE_MISSING,
    PARAMETER_BINDING: Code.UNKNOWN,
    COMMAND_NOT_FOUND: Code.UNKNOWN,
    ODATA_SERVICE: Code.UNKNOWN,  # its 404 "No permissions were found" form is USER_NOT_FOUND
}
"""Exception classes translated on purpose (tests fail if one is missing or falls to the generic branch)."""

TRUSTEE_PARAMETERS = ("Trustee", "User", "GrantSendOnBehalfTo")
_NOT_ALLOWED = re.compile(r"is not allowed to call ([A-Za-z][A-Za-z0-9-]*)")
_CATEGORY = re.compile(r'error_category="([^"]+)"')
_REASON = re.compile(r'reason="([^"]+)"')


@dataclass(frozen=True)
class ExchangeErrorInfo:
    """What the service said, parsed. ``exception_class`` is the short class name (no namespace)."""

    status: int
    cmdlet: str
    code: str = ""
    error_id: str = ""
    exception_class: str = ""
    text: str = ""
    target: str = ""

    def describe(self) -> str:
        where = f"{self.cmdlet}: " if self.cmdlet else ""
        return f"{where}{self.text or self.code or f'HTTP {self.status}'}"


class ExchangeServiceError(ServiceError):
    def __init__(self, message: str, *, code: Code, info: ExchangeErrorInfo) -> None:
        super().__init__(message, code=code, status=info.status, detail=info.exception_class)
        self.info = info


class ExchangeNotFoundError(NotFoundError):
    def __init__(self, message: str, *, code: Code, info: ExchangeErrorInfo) -> None:
        super().__init__(message, code=code)
        self.info = info


class ExchangeConfigError(ConfigError):
    def __init__(self, message: str, *, info: ExchangeErrorInfo) -> None:
        super().__init__(message)
        self.info = info


def is_no_permissions(error: EmailDoctorError) -> bool:
    """``Get-MailboxPermission -User X`` found no entry for X: a 404 that means "holds nothing here"."""
    info = getattr(error, "info", None)
    return (
        isinstance(error, ExchangeNotFoundError)
        and isinstance(info, ExchangeErrorInfo)
        and info.text.startswith(NO_PERMISSIONS_PREFIX)
    )


def is_page_expired(error: EmailDoctorError) -> bool:
    """400 "Expired or Invalid pagination request": the listing must start again (skip tokens expire after 30
    minutes and are bound to one backend)."""
    info = getattr(error, "info", None)
    return isinstance(info, ExchangeErrorInfo) and info.status == 400 and PAGE_EXPIRED in info.text


def is_role_refusal(body: bytes) -> bool:
    """A 401 that says the app's role does not cover the cmdlet (not a token problem)."""
    return _NOT_ALLOWED.search(body[:2000].decode("utf-8", "replace")) is not None


def parse_error(
    status: int, body: bytes, headers: Mapping[str, str], cmdlet: str, *, parsed: Any = None
) -> ExchangeErrorInfo:
    """Read the error shape of §1a (or a plain-text body, or a 401 with ``x-ms-diagnostics``)."""
    data = parsed
    if data is None and body:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        text = _plain_text(status, body, headers)
        short = headers.get("x-ExceptionType") or headers.get("x-exceptiontype") or ""
        return ExchangeErrorInfo(status=status, cmdlet=cmdlet, exception_class=short.rsplit(".", 1)[-1], text=text)
    error_id = exception_class = text = target = ""
    details = error.get("details")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        target = str(details[0].get("target") or "")
        parts = str(details[0].get("message") or "").split("|", 2)
        if len(parts) == 3:  # "<ErrorId>|<Class>|<text>"; live answers may leave the ErrorId empty
            error_id, exception_class, text = parts
        else:
            text = parts[0]
    inner = error.get("innererror")
    inner = inner if isinstance(inner, dict) else {}
    internal = inner.get("internalexception")
    internal = internal if isinstance(internal, dict) else {}
    # Live (2026): error.message is "Invalid Operation"; the class and the words are in internalexception.
    exception_class = exception_class or str(internal.get("type") or "")
    text = text or str(internal.get("message") or "") or str(inner.get("message") or "")
    if not exception_class and inner.get("message"):
        exception_class = str(inner.get("type") or "")
    text = text or str(error.get("message") or "")
    if not exception_class:
        exception_class = headers.get("x-ExceptionType") or headers.get("x-exceptiontype") or ""
    return ExchangeErrorInfo(
        status=status,
        cmdlet=cmdlet,
        code=printable(str(error.get("code") or "")),
        error_id=printable(error_id),
        exception_class=printable(exception_class.rsplit(".", 1)[-1]),
        text=printable(text).strip(),
        target=printable(target),
    )


def translate(info: ExchangeErrorInfo, parameters: Mapping[str, Any] | None = None) -> EmailDoctorError:
    """The :mod:`plugin.errors` exception for one parsed error (raise it ``from`` the cause, if any)."""
    words = info.describe()
    cls = info.exception_class
    if cls == NOT_FOUND:
        code = _not_found_code(info, parameters or {})
        return ExchangeNotFoundError(f"Exchange Online: {words}", code=code, info=info)
    if info.status == 404 and info.text.startswith(NO_PERMISSIONS_PREFIX):
        return ExchangeNotFoundError(f"Exchange Online: {words}", code=Code.USER_NOT_FOUND, info=info)
    if cls == AMBIGUOUS:
        return ExchangeConfigError(f"Exchange Online: {words}; give the full email address instead", info=info)
    refused = _NOT_ALLOWED.search(info.text)
    if refused or cls == ACCESS_DENIED or info.status == 403:
        return role_missing(info, refused.group(1) if refused else info.cmdlet)
    if info.status == 401:
        insufficient = _CATEGORY.search(info.text)
        if insufficient and insufficient.group(1) == "insufficient_claims":
            return ExchangeServiceError(
                f"Exchange Online refused the token: {words}", code=Code.GRAPH_ACCESS_DENIED, info=info
            )
        return ExchangeServiceError(
            f"Exchange Online refused the token: {words}", code=Code.OAUTH_TOKEN_INVALID, info=info
        )
    if info.status == 429 or info.text.startswith(CONCURRENCY_TEXT):
        return ExchangeServiceError(f"Exchange Online is throttling: {words}", code=Code.THROTTLED, info=info)
    if info.status == 408 or info.status >= 500:
        return ExchangeServiceError(f"Exchange Online is unavailable: {words}", code=Code.SERVER_UNAVAILABLE, info=info)
    return ExchangeServiceError(f"Exchange Online: {words}", code=Code.UNKNOWN, info=info)


def role_missing(info: ExchangeErrorInfo, cmdlet: str) -> ExchangeServiceError:
    """``exchange_role_missing``: the catalogue's words, naming the cmdlet and the role that would allow it."""
    if cmdlet in ("", "$batch"):
        cmdlet, role = "its cmdlets", " and ".join(RECOMMENDED)
    else:
        role = role_advice(cmdlet)
    said = f" (HTTP {info.status}: {info.text})" if info.text and not info.text.startswith("HTTP ") else ""
    diagnosis = diagnose(Code.EXCHANGE_ROLE_MISSING, Facts(cmdlet=cmdlet, role=role, detail=said))
    return ExchangeServiceError(
        f"{diagnosis.cause} {diagnosis.fix}", code=Code.EXCHANGE_ROLE_MISSING, info=replace(info, cmdlet=cmdlet)
    )


def _not_found_code(info: ExchangeErrorInfo, parameters: Mapping[str, Any]) -> Code:
    """The mailbox (``Identity``) or the trustee (``Trustee``/``User``/a delegate) that does not exist."""
    target = info.target.casefold()
    lowered = {str(k).casefold(): v for k, v in parameters.items()}
    if target:
        for name in TRUSTEE_PARAMETERS:
            if target in _values(lowered.get(name.casefold())):
                return Code.USER_NOT_FOUND
        if target in _values(lowered.get("identity")):
            return Code.MAILBOX_NOT_FOUND
    # Without a target: Exchange words an Identity miss "couldn't be found on '<server>'" and a trustee miss
    # "Couldn't find object".
    return Code.USER_NOT_FOUND if info.text.startswith("Couldn't find object") else Code.MAILBOX_NOT_FOUND


def _values(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value.casefold()}
    if isinstance(value, Mapping):
        return {v.casefold() for item in value.values() for v in _values(item)}
    if isinstance(value, list | tuple):
        return {v.casefold() for item in value for v in _values(item)}
    return set()


def _plain_text(status: int, body: bytes, headers: Mapping[str, str]) -> str:
    diagnostics = headers.get("x-ms-diagnostics") or ""
    if status == 401 and diagnostics:
        reason = _REASON.search(diagnostics)
        category = _CATEGORY.search(diagnostics)
        words = reason.group(1) if reason else diagnostics
        return f'{words} (error_category="{category.group(1)}")' if category else words
    if status == 401:
        return headers.get("WWW-Authenticate", "") or "401 Unauthorized"
    text = printable(body.decode("utf-8", "replace")).strip()
    return text[:500] if text else f"HTTP {status}"

"""The error hierarchy. Every error a user can see carries a stable code and a plain message.

    EmailDoctorError                 base; ``code`` is a catalogue :class:`~plugin.diagnosis.Code` or None
    ├── ConfigError                  bad settings, arguments or directory file: nothing was changed (exit 2)
    │   └── DirectoryError           the directory file: names file, record and field
    ├── NotFoundError                a user, mailbox or object that does not exist
    └── ServiceError                 a remote service failed; ``code`` says how (throttled, access denied …)
        └── PermissionChangeError    a grant or revoke that did not take (carries the Exchange error text)

Vendor exceptions (aiosmtplib, msal, kiota, httpx, slack_sdk) are translated into these at the
package boundary with ``raise … from exc``; nothing above the boundary catches vendor types.
"""

from __future__ import annotations

from plugin.diagnosis import Code


class EmailDoctorError(Exception):
    code: Code | None = None

    def __init__(self, message: str, *, code: Code | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(EmailDoctorError):
    """Bad input: settings, command-line arguments or the directory file. Nothing was changed."""


class DirectoryError(ConfigError):
    """A problem in the directory file; the message names the file, the record and the field."""

    def __init__(self, path: str, message: str, *, record: str | None = None, field: str | None = None) -> None:
        where = path
        if record is not None:
            where += f", {record}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.record = record
        self.field = field


class NotFoundError(EmailDoctorError):
    code = Code.USER_NOT_FOUND


class ServiceError(EmailDoctorError):
    """A remote service answered with an error or did not answer."""

    code = Code.UNKNOWN

    def __init__(self, message: str, *, code: Code | None = None, status: int | None = None, detail: str = "") -> None:
        super().__init__(message, code=code)
        self.status = status
        self.detail = detail


class PermissionChangeError(ServiceError):
    """A grant or revoke that Exchange refused or that could not be read back."""

"""Errors of the Exchange admin API in the shape live tenants answer (shared/reference/exchange-online.md, "Live-tenant
captures (2026)"): ``{"error":{"code","message":"Invalid Operation","innererror":{"message","type",
"internalexception":{"message","type":"<exception class>"}}}}``, without the ``details`` array older samples show;
a role that does not cover the cmdlet is a 401 ``User is not allowed to call <Cmdlet>``."""

from __future__ import annotations

from typing import Any

BACKEND = "EURP195MB1234.EURP195.PROD.OUTLOOK.COM"
NOT_FOUND_CLASS = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
ODATA_EXCEPTION = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"


class CmdletError(Exception):
    def __init__(
        self, status: int, code: str, error_id: str, exception_class: str, text: str, target: str = ""
    ) -> None:
        super().__init__(text)
        self.status, self.code, self.error_id = status, code, error_id
        self.exception_class, self.text, self.target = exception_class, text, target

    @property
    def short_class(self) -> str:
        return self.exception_class.rsplit(".", 1)[-1]

    def body(self, message: str = "Invalid Operation") -> dict[str, Any]:
        """The live shape (2026 captures): ``message`` "Invalid Operation", no ``details``, the exception class and
        text in ``innererror.internalexception``."""
        return {
            "error": {
                "code": self.code,
                "message": message,
                "innererror": {
                    "message": self.text,
                    "type": ODATA_EXCEPTION,
                    "internalexception": {"message": self.text, "type": self.exception_class},
                },
            }
        }


def not_found(identity: str) -> CmdletError:
    return CmdletError(
        404,
        "NotFound",
        "Ex6F9304",
        NOT_FOUND_CLASS,
        f"The operation couldn't be performed because object '{identity}' couldn't be found on '{BACKEND}'.",
        target=identity,
    )


def recipient_not_found(identity: str) -> CmdletError:
    return CmdletError(
        404,
        "NotFound",
        "Ex94914C",
        NOT_FOUND_CLASS,
        f'Couldn\'t find object "{identity}". Please make sure that it was spelled correctly or specify a different object.',
        target=identity,
    )


def ambiguous(identity: str) -> CmdletError:
    return CmdletError(
        400,
        "BadRequest",
        "Ex36D3B4",
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException",
        f"The operation couldn't be performed because '{identity}' matches multiple entries.",
        target=identity,
    )


def bad_parameter(text: str) -> CmdletError:
    return CmdletError(400, "BadRequest", "Ex4B9C1E", "System.Management.Automation.ParameterBindingException", text)


class NotAllowedError(CmdletError):
    """The caller's roles do not cover the cmdlet: live HTTP 401 with a short JSON body (issues #7970, #8058)."""

    def body(self, message: str = "") -> dict[str, Any]:
        del message
        return {
            "error": {
                "code": "Unauthorized",
                "message": self.text,
                "innererror": {"message": self.text, "type": ODATA_EXCEPTION},
            }
        }


def not_allowed(cmdlet: str) -> CmdletError:
    return NotAllowedError(401, "Unauthorized", "", ODATA_EXCEPTION, f"User is not allowed to call {cmdlet}")

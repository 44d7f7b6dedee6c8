"""Errors of the Exchange admin API, in the shape CIPP and ExoHelper parse:
``{"error":{"code","message","details":[{"code":"Client","target","message":"ExID|Class|text"}],"innererror":{…}}}``."""

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

    def body(self, message: str = "Error executing cmdlet") -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": message,
                "details": [
                    {
                        "code": "Client",
                        "target": self.target,
                        "message": f"{self.error_id}|{self.exception_class}|{self.text}",
                    }
                ],
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


def access_denied(principal: str, cmdlet: str, status: int) -> CmdletError:
    return CmdletError(
        status,
        "Forbidden",
        "Ex3A9F61",
        "Microsoft.Exchange.Configuration.Authorization.CmdletAccessDeniedException",
        f"The user \"{principal}\" isn't assigned to any management roles that allow running '{cmdlet}'.",
    )

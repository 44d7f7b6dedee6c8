"""Microsoft Entra ID's error responses: ``{"error","error_description":"AADSTSnnnn: …","error_codes",
"timestamp","trace_id","correlation_id","error_uri"}``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any


class EntraError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description


def error_body(exc: EntraError, now: datetime) -> dict[str, Any]:
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{exc.code}: {exc.description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {stamp}"
    )
    return {
        "error": exc.error,
        "error_description": description,
        "error_codes": [exc.code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={exc.code}",
    }


def missing_parameter(name: str) -> EntraError:
    return EntraError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
    )

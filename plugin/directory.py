"""The application's email configuration: the system Outgoing Mail Server and the Employee List.

A *directory source* loads it. The embedded source reads a YAML file (``sandbox/examples/directory.yaml``)
whose employees are listed inline or come from a CSV export of the Employee List
(``employees_csv: employees.csv``), or reads such a CSV export alone. See README.md, "The directory
file", for the format. Secrets are never stored: a server names an environment variable
(``password_env``) or a file (``password_file``), or signs in with OAuth (``oauth: true``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plugin.addresses import validate_address
from plugin.errors import NotFoundError
from plugin.settings import Security

SMTP_OFFICE365 = "smtp.office365.com"


class ServerType(StrEnum):
    SMTP = "smtp"
    MICROSOFT365 = "microsoft365"


class Transport(StrEnum):
    SMTP = "smtp"
    GRAPH = "graph"


class Delegation(StrEnum):
    """How a signing-in account sends for someone else."""

    SEND_AS = "send_as"
    SEND_ON_BEHALF = "send_on_behalf"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SecretRef(_Model):
    """Where a password lives; never the password itself."""

    kind: Literal["env", "file", "oauth"]
    name: str | None = None

    def describe(self) -> str:
        if self.kind == "env":
            return f"environment variable {self.name}"
        if self.kind == "file":
            return f"file {self.name}"
        return "OAuth (the emaildoctor app's token)"


class MailServer(_Model):
    """An Outgoing Mail Server: the system's, or an employee's alternate server options."""

    type: ServerType = ServerType.SMTP
    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    ssl: bool = True
    security: Security | None = None
    """Overrides what ``ssl`` and ``port`` imply (``starttls``, ``tls`` or ``none``)."""
    timeout: Annotated[float, Field(gt=0, le=300)] = 30.0
    user: str
    password_env: str | None = None
    password_file: Path | None = None
    oauth: bool = False
    transport: Transport | None = None
    """microsoft365 servers only: ``graph`` (default) or ``smtp`` (XOAUTH2)."""

    @field_validator("user")
    @classmethod
    def _user_not_blank(cls, value: str) -> str:
        if not value or any(ch in value for ch in "\r\n"):
            raise ValueError("must be a user name or address on one line")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        secrets = [name for name in ("password_env", "password_file") if getattr(self, name)] + (
            ["oauth"] if self.oauth else []
        )
        if len(secrets) != 1:
            raise ValueError("set exactly one of password_env, password_file or oauth: true")
        if self.type is ServerType.SMTP:
            if self.transport is Transport.GRAPH:
                raise ValueError("transport 'graph' needs type 'microsoft365'")
            if not self.host:
                raise ValueError("host is required for an smtp server")
        elif not self.oauth:
            raise ValueError("a microsoft365 server signs in with OAuth: set oauth: true")
        return self

    @property
    def effective_transport(self) -> Transport:
        if self.type is ServerType.SMTP:
            return Transport.SMTP
        return self.transport or Transport.GRAPH

    @property
    def effective_host(self) -> str:
        return self.host or SMTP_OFFICE365

    @property
    def effective_security(self) -> Security:
        if self.security is not None:
            return self.security
        if not self.ssl:
            return Security.NONE
        return Security.TLS if self.effective_port == 465 else Security.STARTTLS

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        if self.security is Security.TLS:
            return 465
        return 587 if self.ssl or self.security is Security.STARTTLS else 25

    @property
    def secret(self) -> SecretRef:
        if self.oauth:
            return SecretRef(kind="oauth")
        if self.password_env:
            return SecretRef(kind="env", name=self.password_env)
        return SecretRef(kind="file", name=str(self.password_file))


class Employee(_Model):
    name: str
    login: str
    email: str | None = None
    server: MailServer | None = None
    """The Employee record's alternate Outgoing Mail Server, if "Use alternate SMTP server options" is on."""
    delegation: Delegation | None = None

    @field_validator("login", "name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            return validate_address(value.strip())
        return value


class SystemConfig(_Model):
    """Settings > Outgoing Mail Server, with its Authenticated User."""

    server: MailServer | None = None
    delegation: Delegation = Delegation.SEND_AS


class Directory(_Model):
    source: str
    system: SystemConfig = SystemConfig()
    employees: tuple[Employee, ...] = ()

    @model_validator(mode="after")
    def _unique_logins(self) -> Self:
        seen: set[str] = set()
        for employee in self.employees:
            key = employee.login.casefold()
            if key in seen:
                raise ValueError(f"login '{employee.login}' appears more than once")
            seen.add(key)
        return self

    def find(self, query: str) -> Employee:
        """The employee whose login, email address or name is ``query`` (case-insensitive)."""
        wanted = query.strip().casefold()
        for attribute in ("login", "email", "name"):
            matches = [e for e in self.employees if (getattr(e, attribute) or "").casefold() == wanted]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                logins = ", ".join(e.login for e in matches)
                raise NotFoundError(f"'{query}' matches several employees by {attribute} ({logins}); use the login")
        close = [e.login for e in self.employees if wanted and wanted in f"{e.login} {e.name} {e.email}".casefold()]
        hint = f" Did you mean: {', '.join(close[:5])}?" if close else ""
        raise NotFoundError(f"no employee '{query}' in the directory ({self.source}).{hint}")


class DirectorySource(Protocol):
    """Where the email configuration comes from (a file today; an application database later)."""

    async def load(self) -> Directory: ...


def raw_directory(data: Mapping[str, Any], source: str) -> Directory:
    """Validate already-parsed directory data; errors name the record and field (see loaders)."""
    return Directory.model_validate({**data, "source": source})

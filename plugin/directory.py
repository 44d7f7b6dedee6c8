"""The application's email configuration: the system Outgoing Mail Server and the Employee List.

A *directory source* loads it. The embedded source reads a YAML file (``sandbox/examples/directory.yaml``)
whose employees are listed inline or come from a CSV export of the Employee List
(``employees_csv: employees.csv``), or reads such a CSV export alone. See README.md, "The directory
file", for the format. Secrets are never stored: a server names an environment variable
(``password_env``) or a file (``password_file``), or signs in with OAuth (``oauth: true``).

A bad record does not make the others unusable: the loaders skip it and keep a :class:`DirectoryProblem`
naming its file and line, which ``emaildoctor check`` lists and :meth:`Directory.find` reports when someone
asks for that record.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from plugin.addresses import validate_address
from plugin.ambiguity import AmbiguousUserError, Candidate
from plugin.errors import DirectoryError, NotFoundError
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
    _origin: str | None = PrivateAttr(default=None)

    @property
    def origin(self) -> str | None:
        """Where the record is: ``directory.yaml:17`` or ``employees.csv:4`` (set by the loaders)."""
        return self._origin

    def at(self, origin: str) -> Employee:
        """This record, marked as coming from ``origin``."""
        self._origin = origin
        return self

    def candidate(self) -> Candidate:
        return Candidate(self.name, self.email, self.origin or "the directory", self.login)

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


class DirectoryProblem(_Model):
    """A record the loaders skipped: where it is, what is wrong, and who it was meant to be (when legible)."""

    origin: str
    """``directory.yaml:17``, ``employees.csv:4``: the file and the line the record starts on."""
    record: str | None = None
    """``employees[3] (login 'carol')``, ``row 4``, ``system``."""
    field: str | None = None
    message: str
    login: str | None = None
    email: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.origin}, {self.what}" if self.record or self.field else f"{self.origin}: {self.message}"

    @property
    def what(self) -> str:
        """The problem without its file and line: ``employees[3] (login 'x'), field 'server.port': …``."""
        where = [*([self.record] if self.record else []), *([f"field '{self.field}'"] if self.field else [])]
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def names(self, attribute: str) -> str:
        return (getattr(self, attribute) or "").strip().casefold()

    def candidate(self) -> Candidate:
        return Candidate(self.name or self.login or "?", self.email, f"{self.origin} (invalid record)", self.login)


class Directory(_Model):
    source: str
    system: SystemConfig = SystemConfig()
    employees: tuple[Employee, ...] = ()
    problems: tuple[DirectoryProblem, ...] = ()
    """Records skipped because they are invalid (the system settings' own problem has record 'system')."""

    @model_validator(mode="after")
    def _unique_logins(self) -> Self:
        seen: set[str] = set()
        for employee in self.employees:
            key = employee.login.casefold()
            if key in seen:
                raise ValueError(f"login '{employee.login}' appears more than once")
            seen.add(key)
        return self

    @property
    def system_problem(self) -> DirectoryProblem | None:
        return next((p for p in self.problems if p.record == "system"), None)

    def find(self, query: str) -> Employee:
        """The employee whose login, email address or name is ``query`` (case-insensitive).

        Several matches raise :class:`AmbiguousUserError` listing them (file and line each); a match on a record
        that was skipped as invalid raises :class:`DirectoryError` naming its file, line and problem."""
        wanted = query.strip().casefold()
        for attribute in ("login", "email", "name"):
            good = [e for e in self.employees if wanted and (getattr(e, attribute) or "").casefold() == wanted]
            bad = [p for p in self.problems if wanted and p.record != "system" and p.names(attribute) == wanted]
            if len(good) == 1 and not bad:
                return good[0]
            if len(good) + len(bad) > 1:
                matches = [e.candidate() for e in good] + [p.candidate() for p in bad]
                raise AmbiguousUserError(query, matches, how=attribute, hint="Use the login of the one you mean.")
            if bad:
                problem = bad[0]
                raise DirectoryError(
                    problem.origin,
                    f"the record for '{query}' is invalid and was skipped: {problem.message}",
                    record=problem.record,
                    field=problem.field,
                )
        close = [e.login for e in self.employees if wanted and wanted in f"{e.login} {e.name} {e.email}".casefold()]
        hint = f" Did you mean: {', '.join(close[:5])}?" if close else ""
        raise NotFoundError(f"no employee '{query}' in the directory ({self.source}).{hint}")


class DirectorySource(Protocol):
    """Where the email configuration comes from (a file today; an application database later)."""

    async def load(self) -> Directory: ...


def raw_directory(data: Mapping[str, Any], source: str) -> Directory:
    """Validate already-parsed directory data; errors name the record and field (see loaders)."""
    return Directory.model_validate({**data, "source": source})

"""Load the directory from a YAML file or a CSV export of the Employee List.

Every error names the file, the record (``employees[2] (login 'carol')``, ``row 4``, ``system``)
and the field, and says what to change.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from plugin.directory import Directory, Employee, raw_directory
from plugin.errors import DirectoryError

# CSV header (normalised: lower case, letters and digits only) -> directory field.
_CSV_COLUMNS: dict[str, str] = {
    "name": "name",
    "employeename": "name",
    "fullname": "name",
    "login": "login",
    "loginname": "login",
    "userid": "login",
    "email": "email",
    "emailaddress": "email",
    "usealternatesmtpserveroptions": "alternate",
    "usealternatesmtpserver": "alternate",
    "alternateserver": "alternate",
    "servertype": "type",
    "servername": "host",
    "smtpserver": "host",
    "host": "host",
    "port": "port",
    "timeout": "timeout",
    "ssl": "ssl",
    "usessl": "ssl",
    "security": "security",
    "username": "user",
    "smtpuser": "user",
    "passwordenv": "password_env",
    "passwordenvironmentvariable": "password_env",
    "passwordfile": "password_file",
    "oauth": "oauth",
    "useoauth": "oauth",
    "modernauthentication": "oauth",
    "transport": "transport",
    "delegation": "delegation",
}
_SERVER_FIELDS: tuple[str, ...] = (
    "type",
    "host",
    "port",
    "timeout",
    "ssl",
    "security",
    "user",
    "password_env",
    "password_file",
    "oauth",
    "transport",
)
_REFUSED_COLUMNS = {"password", "smtppassword", "secret"}
_TRUE = {"yes", "y", "true", "1", "on", "x", "checked"}
_FALSE = {"no", "n", "false", "0", "off", "", "unchecked"}


@dataclass(frozen=True)
class FileDirectorySource:
    """The embedded directory source: a YAML file, or a CSV export of the Employee List."""

    path: Path

    async def load(self) -> Directory:
        return await asyncio.to_thread(load_directory, self.path)


def load_directory(path: Path) -> Directory:
    if not path.is_file():
        raise DirectoryError(str(path), "no such file (set EMAILDOCTOR_DIRECTORY__PATH to your directory file)")
    if path.suffix.lower() == ".csv":
        return Directory(source=str(path), employees=tuple(load_employees_csv(path)))
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise DirectoryError(str(path), "unknown file type: use a .yaml directory file or a .csv employee export")
    return _load_yaml(path)


def _load_yaml(path: Path) -> Directory:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        raise DirectoryError(str(path), f"not valid YAML: {getattr(exc, 'problem', exc)}", record=where) from exc
    except UnicodeDecodeError as exc:
        raise DirectoryError(str(path), "not UTF-8 text") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DirectoryError(str(path), "the top level must be a mapping with 'system' and 'employees'")
    csv_name = data.pop("employees_csv", None)
    if csv_name is not None:
        if "employees" in data:
            raise DirectoryError(
                str(path), "set either 'employees' or 'employees_csv', not both", field="employees_csv"
            )
        csv_path = (path.parent / str(csv_name)).resolve()
        employees = load_employees_csv(csv_path)
        return _validated(path, {**data, "employees": [e.model_dump(exclude_none=True) for e in employees]})
    return _validated(path, data)


def _validated(path: Path, data: Mapping[str, Any]) -> Directory:
    try:
        return raw_directory(data, str(path))
    except ValidationError as exc:
        error = exc.errors()[0]
        record, field = _locate(error["loc"], data)
        raise DirectoryError(str(path), _message(error), record=record, field=field) from exc


def directory_problems(path: Path) -> list[str]:
    """Every problem of a YAML directory file, one line per bad record and field (``emaildoctor check`` lists
    them all at once; loading stops at the first). CSV exports and unreadable files: the first problem."""
    try:
        load_directory(path)
    except DirectoryError as exc:
        if path.suffix.lower() not in (".yaml", ".yml") or not isinstance(exc.__cause__, ValidationError):
            return [str(exc)]
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        problems = []
        for error in exc.__cause__.errors():
            record, field = _locate(error["loc"], data)
            problems.append(str(DirectoryError(str(path), _message(error), record=record, field=field)))
        return problems
    return []


def _locate(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    parts = list(loc)
    if not parts:
        return None, None
    if parts[0] == "employees" and len(parts) > 1 and isinstance(parts[1], int):
        index = parts[1]
        employees = data.get("employees") or []
        login = employees[index].get("login") if index < len(employees) and isinstance(employees[index], dict) else None
        record = f"employees[{index}]" + (f" (login '{login}')" if login else "")
        rest = [str(p) for p in parts[2:]]
        return record, ".".join(rest) or None
    if parts[0] == "system":
        return "system", ".".join(str(p) for p in parts[1:]) or None
    return None, ".".join(str(p) for p in parts)


def _message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field (check the spelling; see README.md, 'The directory file')"
    if error["type"] == "missing":
        return "required field is missing"
    return message


def load_employees_csv(path: Path) -> list[Employee]:
    """Read a CSV export of the Employee List; see README.md for the columns understood."""
    if not path.is_file():
        raise DirectoryError(str(path), "no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DirectoryError(str(path), "not UTF-8 text (export the employee list as UTF-8 CSV)") from exc
    reader = csv.DictReader(io.StringIO(text))
    columns = _csv_columns(path, reader.fieldnames)
    employees: list[Employee] = []
    for number, row in enumerate(reader, start=2):  # row 1 is the header
        if not any((value or "").strip() for value in row.values()):
            continue
        employees.append(_csv_employee(path, number, row, columns))
    logins = [e.login.casefold() for e in employees]
    duplicates = sorted({login for login in logins if logins.count(login) > 1})
    if duplicates:
        raise DirectoryError(str(path), f"login '{duplicates[0]}' appears more than once", field="Login")
    return employees


def _normalise(header: str) -> str:
    return "".join(ch for ch in header.casefold() if ch.isalnum())


def _csv_columns(path: Path, headers: Sequence[str] | None) -> dict[str, str]:
    if not headers:
        raise DirectoryError(str(path), "empty file: expected a header row with at least Name and Login")
    columns: dict[str, str] = {}
    for header in headers:
        key = _normalise(header or "")
        if key in _REFUSED_COLUMNS:
            raise DirectoryError(
                str(path),
                "the export contains passwords; emaildoctor never reads stored passwords. Remove the column "
                "and name an environment variable or file in 'Password Env' / 'Password File' instead",
                field=header,
            )
        if key in _CSV_COLUMNS:
            columns[header] = _CSV_COLUMNS[key]
    missing = {"name", "login"} - set(columns.values())
    if missing:
        raise DirectoryError(str(path), f"missing column(s): {', '.join(sorted(missing))}", record="row 1")
    return columns


def _csv_employee(path: Path, number: int, row: Mapping[str, str | None], columns: Mapping[str, str]) -> Employee:
    values = {field: (row.get(header) or "").strip() for header, field in columns.items()}
    header_of = {field: header for header, field in columns.items()}
    record = f"row {number}" + (f" (login '{values['login']}')" if values.get("login") else "")

    def fail(field: str, message: str) -> DirectoryError:
        return DirectoryError(str(path), message, record=record, field=header_of.get(field, field))

    def flag(field: str) -> bool:
        raw = values.get(field, "").casefold()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise fail(field, f"'{values[field]}' is not yes/no")

    server_given = any(values.get(f) for f in ("host", "user"))
    alternate = flag("alternate") if "alternate" in values else server_given
    data: dict[str, Any] = {"name": values.get("name", ""), "login": values.get("login", "")}
    if values.get("email"):
        data["email"] = values["email"]
    if values.get("delegation"):
        data["delegation"] = values["delegation"]
    if alternate:
        server: dict[str, Any] = {}
        for field in _SERVER_FIELDS:
            if not values.get(field):
                continue
            server[field] = flag(field) if field in ("ssl", "oauth") else values[field]
        data["server"] = server
    try:
        return Employee.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(p) for p in error["loc"]]
        field = loc[-1] if loc and loc[-1] in header_of else (loc[1] if len(loc) > 1 else loc[0] if loc else "")
        raise fail(field, _message(error)) from exc

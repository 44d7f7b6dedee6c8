"""Load the directory from a YAML file or a CSV export of the Employee List.

A bad record is skipped and reported, the others keep working: every problem names the file and the line
(``directory.yaml:17``, from the YAML node marks; ``employees.csv:4``), the record (``employees[2] (login
'carol')``, ``row 4``, ``system``) and the field, and says what to change. Only a file that cannot be used at
all (missing, not YAML or UTF-8, no Name and Login columns, a column of passwords) raises.
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

from plugin.directory import Directory, DirectoryProblem, Employee, SystemConfig
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
    """The directory in ``path``. A file that cannot be read at all raises :class:`DirectoryError`; bad records
    are skipped and listed in ``Directory.problems`` (file, line, record, field), so the others keep working."""
    if not path.is_file():
        raise DirectoryError(str(path), "no such file (set EMAILDOCTOR_DIRECTORY__PATH to your directory file)")
    if path.suffix.lower() == ".csv":
        employees, problems = read_employees_csv(path)
        return _assemble(path, SystemConfig(), employees, problems)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise DirectoryError(str(path), "unknown file type: use a .yaml directory file or a .csv employee export")
    return _load_yaml(path)


def directory_problems(path: Path) -> list[str]:
    """Every problem of the directory file, one line each with file and line (``emaildoctor check`` lists them
    all); a file that cannot be read at all gives its one problem."""
    try:
        return [str(problem) for problem in load_directory(path).problems]
    except DirectoryError as exc:
        return [str(exc)]


def _load_yaml(path: Path) -> Directory:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DirectoryError(str(path), "not UTF-8 text") from exc
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)  # the whole file is unusable
        raise DirectoryError(where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        data, root = {}, None
    if not isinstance(data, dict) or not isinstance(root, (yaml.MappingNode, type(None))):
        raise DirectoryError(str(path), "the top level must be a mapping with 'system' and 'employees'")
    places = _Places(path, root)
    problems: list[DirectoryProblem] = [
        places.problem(
            (key,), "unknown field (check the spelling; see README.md, 'The directory file')", field=str(key)
        )
        for key in data
        if key not in _TOP_LEVEL
    ]
    system, system_problems = _system(data.get("system"), places)
    problems += system_problems
    csv_name = data.get("employees_csv")
    if csv_name is not None:
        if "employees" in data:
            raise DirectoryError(
                str(path), "set either 'employees' or 'employees_csv', not both", field="employees_csv"
            )
        employees, csv_problems = read_employees_csv((path.parent / str(csv_name)).resolve())
        return _assemble(path, system, employees, problems + csv_problems)
    employees, record_problems = _yaml_employees(data.get("employees"), places)
    return _assemble(path, system, employees, problems + record_problems)


_TOP_LEVEL = ("system", "employees", "employees_csv")


class _Places:
    """File and line of any part of the YAML document, from the composed node tree's marks."""

    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path = path
        self.root = root

    def origin(self, parts: Sequence[int | str]) -> str:
        node, line = self.root, 1
        if node is not None:
            line = node.start_mark.line + 1
        for part in parts:
            if isinstance(node, yaml.MappingNode):
                pair = next((p for p in node.value if isinstance(p[0], yaml.ScalarNode) and p[0].value == part), None)
                if pair is None:
                    break
                line, node = pair[0].start_mark.line + 1, pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return f"{self.path.name}:{line}"

    def problem(
        self,
        parts: Sequence[int | str],
        message: str,
        *,
        record: str | None = None,
        field: str | None = None,
        **who: Any,
    ) -> DirectoryProblem:
        return DirectoryProblem(origin=self.origin(parts), record=record, field=field, message=message, **who)


def _system(value: object, places: _Places) -> tuple[SystemConfig, list[DirectoryProblem]]:
    if value is None:
        return SystemConfig(), []
    try:
        return SystemConfig.model_validate(value), []
    except ValidationError as exc:
        problems = [
            places.problem(("system", *error["loc"]), _message(error), record="system", field=_dotted(error["loc"]))
            for error in exc.errors()
        ]
        return SystemConfig(), problems


def _yaml_employees(value: object, places: _Places) -> tuple[list[Employee], list[DirectoryProblem]]:
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], [places.problem(("employees",), "must be a list of employee records", field="employees")]
    employees: list[Employee] = []
    problems: list[DirectoryProblem] = []
    for index, item in enumerate(value):
        who = _who(item)
        record = f"employees[{index}]" + (f" (login '{who['login']}')" if who.get("login") else "")
        if not isinstance(item, dict):
            message = "a record must be a mapping with name, login and email"
            problems.append(places.problem(("employees", index), message, record=record, **who))
            continue
        try:
            employee = Employee.model_validate(item)
        except ValidationError as exc:
            errors = exc.errors()
            first = ("employees", index, *errors[0]["loc"])
            if len(errors) == 1:
                field, message = _dotted(errors[0]["loc"]), _message(errors[0])
            else:
                field, message = None, "; ".join(f"field '{_dotted(e['loc'])}': {_message(e)}" for e in errors)
            problems.append(places.problem(first, message, record=record, field=field, **who))
            continue
        employees.append(employee.at(places.origin(("employees", index))))
    return employees, problems


def _who(item: object) -> dict[str, str]:
    """The name, login and email of a record, as far as they are legible (to find it when someone asks for it)."""
    if not isinstance(item, Mapping):
        return {}
    return {key: str(item[key]).strip() for key in ("login", "email", "name") if isinstance(item.get(key), str | int)}


def _assemble(
    path: Path, system: SystemConfig, employees: list[Employee], problems: list[DirectoryProblem]
) -> Directory:
    """The directory from the valid records; records that share a login are all skipped (which one was meant?)."""
    origins: dict[str, list[str]] = {}
    for employee in employees:
        origins.setdefault(employee.login.casefold(), []).append(employee.origin or str(path))
    kept: list[Employee] = []
    for employee in employees:
        places = origins[employee.login.casefold()]
        if len(places) == 1:
            kept.append(employee)
            continue
        others = ", ".join(p for p in places if p != employee.origin)
        problems.append(
            DirectoryProblem(
                origin=employee.origin or str(path),
                record=f"login '{employee.login}'",
                field="login",
                message=f"login '{employee.login}' appears more than once (also at {others}); each login must be unique",
                login=employee.login,
                email=employee.email,
                name=employee.name,
            )
        )
    return Directory(source=str(path), system=system, employees=tuple(kept), problems=tuple(problems))


def _dotted(loc: Sequence[int | str]) -> str:
    return ".".join(str(p) for p in loc)


def _message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        if str(error["loc"][-1]).casefold() in _PASSWORD_FIELDS:
            return "passwords are not allowed in the directory; use password_env or password_file"
        return "unknown field (check the spelling; see README.md, 'The directory file')"
    if error["type"] == "missing":
        return "required field is missing"
    return message


_PASSWORD_FIELDS = {"password", "smtp_password", "smtppassword", "pass", "secret", "client_secret"}


def read_employees_csv(path: Path) -> tuple[list[Employee], list[DirectoryProblem]]:
    """Read a CSV export of the Employee List (see README.md for the columns understood): the valid rows, each
    marked with its file and line, and a problem for each invalid row. A file that cannot be used at all (no
    such file, not UTF-8, no Name and Login columns, a column of passwords) raises :class:`DirectoryError`."""
    if not path.is_file():
        raise DirectoryError(str(path), "no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DirectoryError(str(path), "not UTF-8 text (export the employee list as UTF-8 CSV)") from exc
    reader = csv.DictReader(io.StringIO(text))
    columns = _csv_columns(path, reader.fieldnames)
    employees: list[Employee] = []
    problems: list[DirectoryProblem] = []
    line = reader.line_num + 1  # the physical line the next row starts on (a quoted value may span lines)
    for number, row in enumerate(reader, start=2):  # row 1 is the header
        origin, line = f"{path.name}:{line}", reader.line_num + 1
        if not any((value or "").strip() for value in row.values()):
            continue
        try:
            employees.append(_csv_employee(number, row, columns).at(origin))
        except _RowError as exc:
            values = {field: (row.get(header) or "").strip() for header, field in columns.items()}
            who = {key: values[key] for key in ("login", "email", "name") if values.get(key)}
            problems.append(
                DirectoryProblem(origin=origin, record=exc.record, field=exc.field, message=exc.message, **who)
            )
    return employees, problems


def load_employees_csv(path: Path) -> list[Employee]:
    """The valid rows of a CSV export of the Employee List (:func:`read_employees_csv` says which were not)."""
    return read_employees_csv(path)[0]


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


class _RowError(Exception):
    def __init__(self, record: str, field: str, message: str) -> None:
        super().__init__(message)
        self.record, self.field, self.message = record, field, message


def _csv_employee(number: int, row: Mapping[str, str | None], columns: Mapping[str, str]) -> Employee:
    values = {field: (row.get(header) or "").strip() for header, field in columns.items()}
    header_of = {field: header for header, field in columns.items()}
    record = f"row {number}" + (f" (login '{values['login']}')" if values.get("login") else "")

    def fail(field: str, message: str) -> _RowError:
        return _RowError(record, header_of.get(field, field), message)

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

"""The email configuration model and its YAML / CSV directory source."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from plugin.ambiguity import AmbiguousUserError
from plugin.directory import Delegation, ServerType, Transport
from plugin.directory_files import FileDirectorySource, directory_problems, load_directory
from plugin.errors import ConfigError, DirectoryError, NotFoundError
from plugin.resolve import resolve
from plugin.settings import Security

EXAMPLES = Path(__file__).resolve().parents[2] / "sandbox" / "examples"


def _write(tmp_path: Path, text: str, name: str = "directory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


async def test_example_directory_covers_options_1_2_3() -> None:
    directory = await FileDirectorySource(EXAMPLES / "directory.yaml").load()
    assert directory.system.server is not None
    assert directory.system.server.user == "admin@business.com"
    assert directory.system.server.effective_security is Security.STARTTLS
    by_login = {e.login: e for e in directory.employees}
    assert by_login["alice"].server is None  # option 3: the system server
    assert by_login["bob"].server is not None and by_login["bob"].server.user == "bob@business.com"  # option 1
    assert by_login["carol"].email == "support@business.com"  # option 2
    assert by_login["dave"].email is None
    erin = by_login["erin"].server
    assert erin is not None and erin.type is ServerType.MICROSOFT365 and erin.effective_transport is Transport.GRAPH
    jack = by_login["jack"].server
    assert jack is not None and jack.effective_transport is Transport.SMTP and jack.secret.kind == "oauth"
    assert by_login["frank"].delegation is Delegation.SEND_ON_BEHALF


def test_find_by_login_email_or_name() -> None:
    directory = load_directory(EXAMPLES / "directory.yaml")
    assert directory.find("ALICE").login == "alice"
    assert directory.find("alice@business.com").login == "alice"
    assert directory.find("Alice Archer").login == "alice"
    with pytest.raises(AmbiguousUserError) as caught:
        directory.find("sales@business.com")  # ivy and jack share it
    assert [(c.login, c.source) for c in caught.value.matches] == [
        ("ivy", "directory.yaml:101"),
        ("jack", "directory.yaml:107"),
    ]
    assert isinstance(caught.value, NotFoundError) and caught.value.code == "ambiguous_user"
    with pytest.raises(NotFoundError, match="Did you mean: alice"):
        directory.find("alic")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            """
            employees:
              - name: A
                login: a
                email: a@example.com
                server: {type: smtp, host: smtp.example.com, port: 99999, user: a@example.com, password_env: X}
            """,
            "employees[0] (login 'a'), field 'server.port'",
        ),
        (
            """
            employees:
              - {name: A, login: a, email: a@example.com}
              - {name: B, login: b, email: "b@example.com\\r\\nBcc: x@evil.example"}
            """,
            "employees[1] (login 'b'), field 'email': Value error, contains a line break",
        ),
        (
            """
            employees:
              - {name: A, login: a, email: not-an-address}
            """,
            "field 'email'",
        ),
        (
            """
            system:
              server: {type: smtp, host: smtp.example.com, user: admin@example.com}
            """,
            "system, field 'server': Value error, set exactly one of password_env, password_file or oauth: true",
        ),
        (
            """
            system:
              server: {type: microsoft365, user: admin@example.com, password_env: X}
            """,
            "a microsoft365 server signs in with OAuth",
        ),
        (
            """
            employees:
              - {name: A, login: a, emial: a@example.com}
            """,
            "employees[0] (login 'a'), field 'emial': unknown field",
        ),
        (
            """
            employees:
              - {name: A, login: a}
              - {name: B, login: A}
            """,
            "login 'A' appears more than once",
        ),
        ("employees: [\n  {name: A\n", "not valid YAML"),
        ("- just\n- a list\n", "the top level must be a mapping"),
    ],
)
def test_yaml_errors_name_file_record_and_field(tmp_path: Path, body: str, expected: str) -> None:
    path = _write(tmp_path, body)
    problems = directory_problems(path)
    assert problems and all(p.startswith((f"{path}:", "directory.yaml:", str(path))) for p in problems), problems
    assert any(expected.replace("Value error, ", "") in p for p in problems), problems


BAD_RECORDS = """\
system:
  server: {type: smtp, host: smtp.example.com, user: admin@example.com, password_env: ADMIN}
employees:
  - {name: Alice, login: alice, email: alice@example.com}
  - name: Bob
    login: bob
    email: bob@example.com
    server:
      type: smtp
      host: smtp.example.com
      port: 99999
      user: bob@example.com
      password_env: BOB
  - {name: Carol, login: carol, email: carol@example.com}
  - name: Dan
    login: dan
    email: dan@example.com
    server: {type: smtp, host: smtp.example.com, user: dan@example.com, password: hunter2}
  - {name: Ed, login: ed, email: "not an address"}
  - {name: Fay, login: fay, email: fay@example.com}
  - {name: Fay Two, login: FAY, email: fay2@example.com}
"""


def test_bad_records_are_skipped_with_file_and_line_and_the_rest_work(tmp_path: Path) -> None:
    path = _write(tmp_path, BAD_RECORDS)
    directory = load_directory(path)
    assert [e.login for e in directory.employees] == ["alice", "carol"]
    assert [e.origin for e in directory.employees] == ["directory.yaml:4", "directory.yaml:14"]
    problems = [str(p) for p in directory.problems]
    assert problems[0].startswith("directory.yaml:11, employees[1] (login 'bob'), field 'server.port': ")
    assert problems[1] == (
        "directory.yaml:18, employees[3] (login 'dan'), field 'server.password': passwords are not allowed in the "
        "directory; use password_env or password_file"
    )
    assert problems[2].startswith("directory.yaml:19, employees[4] (login 'ed'), field 'email'")
    assert "login 'fay' appears more than once (also at directory.yaml:21)" in problems[3]
    assert problems[3].startswith("directory.yaml:20") and problems[4].startswith("directory.yaml:21")
    assert len(problems) == 5 and not any("hunter2" in p for p in problems)
    assert directory_problems(path) == problems
    assert directory.find("carol").login == "carol"  # the rest keep working


def test_asking_for_a_bad_record_names_its_file_line_and_problem(tmp_path: Path) -> None:
    directory = load_directory(_write(tmp_path, BAD_RECORDS))
    with pytest.raises(DirectoryError) as caught:
        directory.find("bob@example.com")
    assert str(caught.value).startswith("directory.yaml:11, employees[1] (login 'bob'), field 'server.port': ")
    assert "the record for 'bob@example.com' is invalid and was skipped" in str(caught.value)
    with pytest.raises(DirectoryError, match="passwords are not allowed"):
        directory.find("Dan")
    with pytest.raises(AmbiguousUserError) as twice:  # two records share the login: both skipped, both named
        directory.find("fay")
    assert [c.source for c in twice.value.matches] == [
        "directory.yaml:20 (invalid record)",
        "directory.yaml:21 (invalid record)",
    ]
    with pytest.raises(NotFoundError, match="no employee 'zed'"):
        directory.find("zed")


def test_a_bad_system_server_is_reported_and_named_when_it_is_needed(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        system:
          server: {type: smtp, host: smtp.example.com, user: admin@example.com}
        employees:
          - {name: Alice, login: alice, email: alice@example.com}
        """,
    )
    directory = load_directory(path)
    assert [str(p) for p in directory.problems] == [
        "directory.yaml:2, system, field 'server': set exactly one of password_env, password_file or oauth: true"
    ]
    with pytest.raises(
        ConfigError, match=r"system outgoing mail server is invalid, so it was skipped: directory\.yaml:2"
    ):
        resolve(directory.find("alice"), directory)


def test_unknown_top_level_field_is_a_problem_not_a_failure(tmp_path: Path) -> None:
    path = _write(tmp_path, "employes:\n  - {name: A, login: a}\nemployees:\n  - {name: B, login: b}\n")
    directory = load_directory(path)
    assert [e.login for e in directory.employees] == ["b"]
    assert [str(p) for p in directory.problems] == [
        "directory.yaml:1, field 'employes': unknown field (check the spelling; see README.md, 'The directory file')"
    ]


def test_missing_file_says_which_setting(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="EMAILDOCTOR_DIRECTORY__PATH"):
        load_directory(tmp_path / "nope.yaml")


CSV_EXPORT = """\
Name,Login,Email Address,Use Alternate SMTP Server Options,Server Type,Server Name,Port,Timeout,SSL,User Name,Password Env,OAuth,Phone
Alice Archer,alice,alice@business.com,No,,,,,,,,,555-0100
Bob Baker,bob,bob@business.com,Yes,smtp,smtp.office365.com,587,30,Yes,bob@business.com,BOB_SMTP_PASSWORD,No,
Dave Diaz,dave,,No,,,,,,,,,
Erin Evans,erin,erin@business.com,Yes,microsoft365,,,,,erin@business.com,,Yes,
"""


def test_csv_export(tmp_path: Path) -> None:
    path = _write(tmp_path, CSV_EXPORT, "employees.csv")
    directory = load_directory(path)
    by_login = {e.login: e for e in directory.employees}
    assert set(by_login) == {"alice", "bob", "dave", "erin"}
    assert by_login["alice"].server is None
    bob = by_login["bob"].server
    assert bob is not None and bob.effective_port == 587 and bob.ssl and bob.password_env == "BOB_SMTP_PASSWORD"
    assert by_login["dave"].email is None
    erin = by_login["erin"].server
    assert erin is not None and erin.oauth and erin.type is ServerType.MICROSOFT365


def test_yaml_with_employees_from_csv(tmp_path: Path) -> None:
    _write(tmp_path, CSV_EXPORT, "employees.csv")
    path = _write(
        tmp_path,
        """
        system:
          server: {type: smtp, host: smtp.office365.com, port: 587, user: admin@business.com, password_env: ADMIN}
        employees_csv: employees.csv
        """,
    )
    directory = load_directory(path)
    assert [e.login for e in directory.employees] == ["alice", "bob", "dave", "erin"]
    assert directory.system.server is not None


@pytest.mark.parametrize(
    ("csv_text", "expected"),
    [
        ("Name,Login,Password\nA,a,hunter2\n", "field 'Password': the export contains passwords"),
        ("Name,Email\nA,a@example.com\n", "row 1: missing column(s): login"),
        ("Name,Login,Email\nA,a,a@example.com\nB,b,broken\n", "row 3 (login 'b'), field 'Email'"),
        (
            "Name,Login,SSL,Server Name,User Name,Password Env\nA,a,maybe,smtp.x.com,a@x.com,P\n",
            "row 2 (login 'a'), field 'SSL': 'maybe' is not yes/no",
        ),
        (
            "Name,Login,Port,Server Name,User Name,Password Env\nA,a,0,smtp.x.com,a@x.com,P\n",
            "row 2 (login 'a'), field 'Port'",
        ),
        ("", "empty file"),
    ],
)
def test_csv_errors_name_row_and_column(tmp_path: Path, csv_text: str, expected: str) -> None:
    path = _write(tmp_path, csv_text, "employees.csv")
    problems = directory_problems(path)
    assert len(problems) == 1 and problems[0].startswith((str(path), "employees.csv:")), problems
    assert expected in problems[0]


def test_bad_csv_rows_are_skipped_by_line_and_the_rest_work(tmp_path: Path) -> None:
    text = (
        "Name,Login,Email,Port,Server Name,User Name,Password Env\n"
        "Alice,alice,alice@x.com,,,,\n"
        '"Bob\nBaker",bob,bob@x.com,0,smtp.x.com,bob@x.com,P\n'  # a quoted value over two lines
        "Carol,carol,broken,,,,\n"
        "Dan,dan,dan@x.com,,,,\n"
    )
    path = _write(tmp_path, text, "employees.csv")
    directory = load_directory(path)
    assert [(e.login, e.origin) for e in directory.employees] == [
        ("alice", "employees.csv:2"),
        ("dan", "employees.csv:6"),
    ]
    problems = [str(p) for p in directory.problems]
    assert problems[0].startswith("employees.csv:3, row 3 (login 'bob'), field 'Port'")
    assert problems[1].startswith("employees.csv:5, row 4 (login 'carol'), field 'Email'")
    with pytest.raises(DirectoryError, match=r"employees\.csv:5"):
        directory.find("carol")


@pytest.mark.parametrize(
    ("server", "port", "security"),
    [
        ({"port": 587, "ssl": True}, 587, Security.STARTTLS),
        ({"port": 465, "ssl": True}, 465, Security.TLS),
        ({"port": 25, "ssl": False}, 25, Security.NONE),
        ({"ssl": True}, 587, Security.STARTTLS),
        ({"ssl": False}, 25, Security.NONE),
        ({"security": "tls"}, 465, Security.TLS),
    ],
)
def test_ssl_and_port_imply_security(tmp_path: Path, server: dict[str, object], port: int, security: Security) -> None:
    fields = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in server.items())
    path = _write(
        tmp_path,
        f"system:\n  server: {{type: smtp, host: smtp.example.com, user: a@example.com, password_env: P, {fields}}}\n",
    )
    system = load_directory(path).system.server
    assert system is not None
    assert (system.effective_port, system.effective_security) == (port, security)

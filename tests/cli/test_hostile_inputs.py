"""Hostile settings and arguments against every command of the installed `emaildoctor`: each ends in one clear line
and exit 2 (usage or settings) or 1 (a diagnosed failure), never a traceback (issue 13).

The table is the spec: when a new hostile input is found, add its row. Each row runs the real console script in a
subprocess with a clean environment (HOME, the XDG folders and the working directory in a temporary folder); the
rows run side by side in a thread pool, once per module. `{name}` in a row is replaced by a file of the fixture
(see ``FILES``).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.commands import EMAILDOCTOR

POSTGRES_URL = os.environ.get("EMAILDOCTOR_TEST_POSTGRES_URL") or "postgresql://root@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Row:
    id: str
    argv: tuple[str, ...]
    code: int
    phrase: str
    env: dict[str, str] = field(default_factory=dict)


# Cheapest valid arguments of every command that reads settings.
EVERY_COMMAND = {
    "test": ("test", "alice"),
    "check": ("check",),
    "smtp-test": ("smtp-test", "--host", "127.0.0.1", "--from", "alice@example.com"),
    "perms": ("perms", "alice@example.com"),
    "grant": ("grant", "SendAs", "--mailbox", "alice@example.com", "--trustee", "admin@example.com"),
    "revoke": ("revoke", "SendAs", "--mailbox", "alice@example.com", "--trustee", "admin@example.com"),
    "audit": ("audit", "--quiet"),
    "bot": ("bot",),
}
SLACK_APP = {"EMAILDOCTOR_SLACK__BOT_TOKEN": "xoxb-not-checked", "EMAILDOCTOR_SLACK__SIGNING_SECRET": "not-checked"}


def _settings_rows() -> Iterator[Row]:
    # An empty CA file setting, against every command that reads settings.
    for name, argv in EVERY_COMMAND.items():
        yield Row(
            f"empty-m365-ca-file-{name}",
            argv,
            2,
            "m365.ca_file (EMAILDOCTOR_M365__CA_FILE): is empty",
            {"EMAILDOCTOR_M365__CA_FILE": ""},
        )
    for section in ("M365", "SLACK", "SMTP"):
        variable = f"EMAILDOCTOR_{section}__CA_FILE"
        for command in ("check", "bot" if section == "SLACK" else "test"):
            argv = EVERY_COMMAND[command]
            yield Row(
                f"missing-{section}-ca-{command}",
                argv,
                2,
                f"{variable}): {{missing}}: no such file",
                {variable: "{missing}"},
            )
            yield Row(f"non-pem-{section}-ca-{command}", argv, 2, "holds no PEM certificate", {variable: "{notpem}"})
            yield Row(f"folder-{section}-ca-{command}", argv, 2, "is a folder, not a PEM file", {variable: "{folder}"})
        yield Row(f"unreadable-{section}-ca", EVERY_COMMAND["check"], 2, "cannot read", {variable: "{unreadable}"})
    yield Row(
        "slack-host-not-ipv4",
        ("bot",),
        2,
        "EMAILDOCTOR_SLACK__HOST): '256.1.1.1' is not a valid IPv4",
        {"EMAILDOCTOR_SLACK__HOST": "256.1.1.1"},
    )
    yield Row(
        "slack-host-not-a-name", ("check",), 2, "is not a valid host name", {"EMAILDOCTOR_SLACK__HOST": "bad host"}
    )
    yield Row(
        "slack-port-too-big", ("bot",), 2, "slack.port (EMAILDOCTOR_SLACK__PORT)", {"EMAILDOCTOR_SLACK__PORT": "99999"}
    )
    yield Row("smtp-port-zero", ("check",), 2, "smtp.port (EMAILDOCTOR_SMTP__PORT)", {"EMAILDOCTOR_SMTP__PORT": "0"})
    yield Row(
        "store-url-folder-missing",
        ("grant", "SendAs", "--mailbox", "a@example.com", "--trustee", "b@example.com"),
        2,
        "EMAILDOCTOR_STORE__URL",
        {"EMAILDOCTOR_STORE__URL": "sqlite:///{missing}/x.db", **_M365_UNREACHABLE},
    )
    yield Row(
        "store-url-not-a-database",
        ("check",),
        2,
        "store.url (EMAILDOCTOR_STORE__URL)",
        {"EMAILDOCTOR_STORE__URL": "mysql://x"},
    )
    yield Row("bot-without-bot-token", ("bot",), 2, "EMAILDOCTOR_SLACK__BOT_TOKEN", {})
    yield Row(
        "bot-without-signing-secret",
        ("bot",),
        2,
        "EMAILDOCTOR_SLACK__SIGNING_SECRET",
        {"EMAILDOCTOR_SLACK__BOT_TOKEN": "xoxb-1"},
    )
    yield Row(
        "bot-socket-without-app-token",
        ("bot",),
        2,
        "EMAILDOCTOR_SLACK__APP_TOKEN",
        {"EMAILDOCTOR_SLACK__MODE": "socket", "EMAILDOCTOR_SLACK__BOT_TOKEN": "xoxb-1"},
    )


# Microsoft 365 "configured" at an address where nothing listens: commands get past settings to what they check.
_M365_UNREACHABLE = {
    "EMAILDOCTOR_M365__TENANT_ID": "business.example",
    "EMAILDOCTOR_M365__CLIENT_ID": "3f6e8a4b-9d2c-4e1f-8b7a-5c6d4e3f2a10",
    "EMAILDOCTOR_M365__CLIENT_SECRET": "not-a-real-secret",
    "EMAILDOCTOR_M365__AUTHORITY_HOST": "https://127.0.0.1:9",
    "EMAILDOCTOR_M365__INSTANCE_DISCOVERY": "false",
    "EMAILDOCTOR_M365__TIMEOUT": "5",
}


ARGUMENT_ROWS = [
    Row("version", ("--version",), 0, "emaildoctor "),
    Row("env-file-missing", ("--env-file", "{missing}", "check"), 2, "--env-file {missing}: no such file"),
    Row("env-file-folder", ("--env-file", "{folder}", "check"), 2, "is a folder"),
    Row("env-file-unreadable", ("--env-file", "{unreadable}", "check"), 2, "cannot read it"),
    Row("env-file-not-utf8", ("--env-file", "{latin1}", "check"), 2, "is not a UTF-8 text file"),
    Row("unknown-command", ("frobnicate",), 2, "invalid choice"),
    Row(
        "directory-path-empty",
        ("test", "alice"),
        2,
        "directory.path (EMAILDOCTOR_DIRECTORY__PATH): is empty",
        {"EMAILDOCTOR_DIRECTORY__PATH": ""},
    ),
    Row("directory-default-missing", ("test", "alice"), 2, "config/emaildoctor/directory.yaml: no such file"),
    Row("test-empty-user", ("test", ""), 2, "USER is empty"),
    Row("test-blank-user", ("test", "   "), 2, "USER is empty"),
    Row("perms-nothing", ("perms",), 2, "give a MAILBOX, or --trustee USER"),
    Row("perms-empty-mailbox", ("perms", ""), 2, "MAILBOX or --trustee is empty"),
    Row("perms-bad-output", ("perms", "a@example.com", "--output", "yaml"), 2, "invalid choice: 'yaml'"),
    Row(
        "grant-unknown-right",
        ("grant", "SendAz", "--mailbox", "a@example.com", "--trustee", "b@example.com"),
        2,
        "SendAz",
    ),
    Row("audit-csv-folder", ("audit", "--csv", "{folder}"), 2, "is a folder: name a file"),
    Row("audit-csv-no-folder", ("audit", "--csv", "{missing}/rights.csv"), 2, "does not exist"),
    Row("audit-csv-unwritable", ("audit", "--csv", "/sys/emaildoctor-rights.csv"), 2, "cannot be written"),
    Row("audit-csv-stdout-and-json", ("audit", "--csv", "-", "--output", "json"), 2, "both print to stdout"),
    Row("audit-fail-on-unknown", ("audit", "--fail-on", "everything"), 2, "invalid choice"),
    Row("bot-port-too-big", ("bot", "--port", "99999"), 2, "--port 99999 is not a TCP port"),
    Row("bot-port-negative", ("bot", "--port", "-1"), 2, "--port -1 is not a TCP port"),
    Row("bot-port-not-a-number", ("bot", "--port", "http"), 2, "invalid int value"),
    Row("bot-host-not-ipv4", ("bot", "--host", "256.1.1.1"), 2, "--host '256.1.1.1' is not a valid IPv4 address"),
    Row("bot-host-not-a-name", ("bot", "--host", "my host"), 2, "is not a valid host name"),
    Row(
        "bot-port-in-use",
        ("bot", "--port", "{busy}"),
        1,
        "cannot listen on 127.0.0.1:{busy}: the port is in use",
        SLACK_APP,
    ),
    Row("bot-tick-zero", ("bot", "--tick", "0"), 2, "--tick"),
    Row(
        "smtp-test-port-zero",
        ("smtp-test", "--host", "127.0.0.1", "--port", "0", "--from", "a@example.com"),
        2,
        "--port 0 is not a TCP port",
    ),
    Row(
        "smtp-test-user-without-password-off-a-terminal",
        ("smtp-test", "--host", "127.0.0.1", "--port", "2525", "--user", "a@example.com", "--from", "a@example.com"),
        2,
        "--user a@example.com needs a password",
    ),
    Row(
        "smtp-test-host-port-disagrees-with-port",
        ("smtp-test", "--host", "127.0.0.1:2525", "--port", "587", "--from", "a@example.com"),
        2,
        "names port 2525 but --port says 587",
    ),
    Row("log-format-unknown", ("--log-format", "xml", "check"), 2, "invalid choice: 'xml'"),
    Row(
        "smtp-test-port-too-big",
        ("smtp-test", "--host", "127.0.0.1", "--port", "70000", "--from", "a@example.com"),
        2,
        "--port 70000",
    ),
    Row(
        "smtp-test-ca-file-not-pem",
        ("smtp-test", "--host", "127.0.0.1", "--ca-file", "{notpem}", "--from", "a@example.com"),
        2,
        "--ca-file: {notpem} holds no PEM certificate",
    ),
    Row(
        "smtp-test-ca-file-missing",
        ("smtp-test", "--host", "127.0.0.1", "--ca-file", "{missing}", "--from", "a@example.com"),
        2,
        "no such file",
    ),
    Row("sandbox-host-not-loopback", ("sandbox", "--host", "10.0.0.1"), 2, "loopback addresses only"),
    Row("completion-unknown-shell", ("completion", "tcsh"), 2, "invalid choice: 'tcsh'"),
]
ROWS = [*_settings_rows(), *ARGUMENT_ROWS]


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Outcome], dict[str, str]]]:
    home = tmp_path_factory.mktemp("home")
    files = _files(home)
    with socket.socket() as busy:  # a port something else listens on
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        files["busy"] = str(busy.getsockname()[1])
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip([r.id for r in ROWS], pool.map(lambda r: _run(r, home, files), ROWS), strict=True))
        yield results, files


def _files(home: Path) -> dict[str, str]:
    not_pem = home / "not-a-ca.pem"
    not_pem.write_text("this is a certificate, honest\n")
    latin1 = home / "latin1.env"
    latin1.write_bytes(b"EMAILDOCTOR_SMTP__HELO_NAME=caf\xe9\n")
    folder = home / "a-folder"
    folder.mkdir()
    return {
        "missing": str(home / "no-such-file.pem"),
        "notpem": str(not_pem),
        "folder": str(folder),
        # mode 0200 on every Linux: not readable, whoever runs the tests (root included)
        "unreadable": "/proc/sys/vm/drop_caches",
        "latin1": str(latin1),
    }


def _fill(text: str, files: dict[str, str]) -> str:
    for key, value in files.items():
        text = text.replace("{" + key + "}", value)
    return text


def _run(row: Row, home: Path, files: dict[str, str]) -> Outcome:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        **{key: _fill(value, files) for key, value in row.env.items()},
    }
    done = subprocess.run(  # noqa: S603 - the installed console script
        [EMAILDOCTOR, *(_fill(arg, files) for arg in row.argv)],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_hostile_input_ends_in_one_clear_line(row: Row, outcomes: tuple[dict[str, Outcome], dict[str, str]]) -> None:
    results, files = outcomes
    outcome = results[row.id]
    text = outcome.out + outcome.err
    assert "Traceback" not in text, text[-3000:]
    assert "please report this as a bug" not in text, text[-3000:]
    assert outcome.code == row.code, (outcome.code, text[-3000:])
    assert _fill(row.phrase, files) in text, text[-3000:]
    if row.code == 2:  # one line: what is wrong, and the setting or argument to change
        assert len([line for line in outcome.err.splitlines() if "error" in line]) == 1, outcome.err
    for secret in ("not-a-real-secret", "xoxb-not-checked", "xoxb-1"):
        assert secret not in text


@pytest.mark.postgres
def test_a_sql_ascii_postgresql_store_is_usable(tmp_path: Path) -> None:
    """A database created with ENCODING 'SQL_ASCII' made psycopg hand back bytes (a TypeError in SQLAlchemy)."""
    name = "emaildoctor_sql_ascii"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0")
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        outcome = _run(
            Row("sql-ascii", ("check", "--only", "store"), 0, "", {"EMAILDOCTOR_STORE__URL": url}), tmp_path, {}
        )
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    text = outcome.out + outcome.err
    assert "Traceback" not in text and "TypeError" not in text, text[-3000:]
    # an empty database: reachable, and the schema is not there yet (the bot migrates it at start-up)
    assert outcome.code == 1 and "emaildoctor bot" in outcome.out, text[-3000:]

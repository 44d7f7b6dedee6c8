"""One bad record in the directory does not make everyone untestable: the installed `emaildoctor test` still tests
every other employee, names the bad record's file and line when asked for it, and `emaildoctor check` lists it;
two employees sharing an address get `ambiguous_user`, in the text and the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sandbox.runtime import Sandbox
from tests.cli.test_check import check_json
from tests.commands import run, sandbox_env_file

BAD = {
    "name": "Pat Port",
    "login": "pat",
    "email": "pat@business.com",
    "server": {"type": "smtp", "host": "smtp.office365.com", "port": 99999, "user": "pat@business.com",
               "password_env": "PAT_SMTP_PASSWORD"},
}  # fmt: skip


async def test_one_bad_record_leaves_everyone_else_testable(sandbox: Sandbox, tmp_path: Path) -> None:
    directory = yaml.safe_load(sandbox.directory_path.read_text())
    directory["employees"].insert(1, BAD)
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(directory, sort_keys=False))
    port_line = path.read_text().splitlines().index("    port: 99999") + 1
    env_file = sandbox_env_file(sandbox, tmp_path, EMAILDOCTOR_DIRECTORY__PATH=str(path))

    code, out, err = await run("--env-file", str(env_file), "test", "bob", cwd=tmp_path)
    assert code == 0 and "PASSED: the test message was accepted." in out, out + err

    code, out, err = await run("--env-file", str(env_file), "test", "pat", cwd=tmp_path)
    assert code == 2 and not out and "Traceback" not in err
    assert err.strip() == (
        f"emaildoctor test: error: directory.yaml:{port_line}, employees[1] (login 'pat'), field 'server.port': the "
        "record for 'pat' is invalid and was skipped: Input should be less than or equal to 65535"
    )

    code, out, err = await run("--env-file", str(env_file), "test", "sales@business.com", "--json", cwd=tmp_path)
    report = json.loads(out)
    assert code == 1 and report["diagnosis"]["code"] == "ambiguous_user", err
    assert (
        "Ivy Irwin (login ivy)" in report["diagnosis"]["cause"]
        and "Jack Jones (login jack)" in report["diagnosis"]["cause"]
    )
    code, out, _ = await run("--env-file", str(env_file), "test", "sales@business.com", cwd=tmp_path)
    assert code == 1 and "Several users match  [ambiguous_user; who acts: configuration]" in out

    code, checks = await check_json(env_file, "--only", "directory")
    assert code == 1
    row = checks[f"bad record directory.yaml:{port_line}"]
    assert row["ok"] is False and "employees[1] (login 'pat'), field 'server.port'" in row["detail"]
    assert "1 bad record(s) skipped" in checks["directory file"]["detail"]

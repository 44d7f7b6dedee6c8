"""`--output json|table` (with `--json` as its alias), `audit --csv -` and `audit --fail-on`, from the installed
command against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.runtime import Sandbox
from tests.commands import run, sandbox_env_file


async def test_lists_print_json_or_table_and_the_audit_serves_cron(sandbox: Sandbox, tmp_path: Path) -> None:
    env = str(sandbox_env_file(sandbox, tmp_path))

    code, out, err = await run("--env-file", env, "perms", "alice@business.com", "-o", "json", cwd=tmp_path)
    assert code == 0, err
    assert json.loads(out)["mailbox"] == "alice@business.com"
    code, table, _ = await run("--env-file", env, "perms", "alice@business.com", "--output", "table", cwd=tmp_path)
    assert code == 0 and table.startswith("Rights on alice@business.com")

    # the CSV alone on stdout (for a pipe), the summary on stderr; a predicted failure (grace@) fails the run
    code, out, err = await run(
        "--env-file", env, "audit", "--quiet", "--csv", "-", "--fail-on", "predicted", cwd=tmp_path
    )
    assert code == 1, err
    assert out.startswith("status,right,mailbox,trustee") and "Audit of" not in out
    assert "Audit of" in err and "predicted_send_failure: grace" in err

    code, out, err = await run("--env-file", env, "audit", "--quiet", "--json", "--fail-on", "findings", cwd=tmp_path)
    report = json.loads(out)
    assert code == (1 if report["findings"] else 0), err
    code, out, err = await run("--env-file", env, "audit", "--quiet", "-o", "json", cwd=tmp_path)
    assert code == 0 and "findings" in json.loads(out), err

"""The Microsoft 365 commands as an admin runs them: the installed `emaildoctor`, settings from the env file that
`emaildoctor sandbox` would write, against the sandbox over real sockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sandbox.runtime import Sandbox
from sandbox.testing import SandboxFactory
from tests.commands import run, sandbox_env_file, start


async def emaildoctor(env_file: Path, *args: str) -> tuple[int, str, str]:
    return await run("--env-file", str(env_file), *args, cwd=env_file.parent)


def env_file_for(sandbox: Sandbox, tmp_path: Path) -> Path:
    return sandbox_env_file(sandbox, tmp_path)


async def test_diagnose_grant_wait_pass(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    async with sandbox_factory(propagation_delay_seconds=120) as sandbox:
        env_file = env_file_for(sandbox, tmp_path)
        code, out, err = await emaildoctor(env_file, "test", "alice", "--json")
        assert code == 1, err
        report = json.loads(out)
        assert report["ok"] is False
        assert report["plan"]["principal"] == "admin@business.com" and report["plan"]["from"] == "alice@business.com"
        assert report["plan"]["required_right"] == "SendAs"
        assert "admin@business.com holds Send As on alice@business.com's mailbox" in report["plan"]["explanation"]
        assert {c["name"]: c["ok"] for c in report["checks"]}["right"] is False
        assert report["diagnosis"]["code"] == "send_as_denied"
        fix = report["diagnosis"]["fix_action"]
        assert fix == {"right": "SendAs", "mailbox": "alice@business.com", "trustee": "admin@business.com"}

        code, out, err = await emaildoctor(
            env_file, "grant", fix["right"], "--mailbox", fix["mailbox"], "--trustee", fix["trustee"]
        )
        assert code == 0, err
        assert "(changed; read back from Exchange)" in out
        code, out, _ = await emaildoctor(
            env_file, "grant", "SendAs", "--mailbox", fix["mailbox"], "--trustee", fix["trustee"]
        )
        assert code == 0 and "Already held — nothing changed" in out

        code, out, _ = await emaildoctor(env_file, "test", "alice", "--json")
        pending = json.loads(out)
        assert code == 1 and pending["pending_propagation"] is True
        assert pending["diagnosis"]["remedy"] == "transient" and "fix_action" not in pending["diagnosis"]
        assert "already holds Send As" in pending["diagnosis"]["cause"]

        sandbox.advance(121)
        code, out, _ = await emaildoctor(env_file, "test", "alice")
        assert code == 0, out
        assert "PASSED: the test message was accepted." in out


async def test_perms_and_reverse_lookup(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = env_file_for(sandbox, tmp_path)
    code, out, _ = await emaildoctor(env_file, "perms", "sales@business.com")
    assert code == 0
    assert (
        "Send As:        admin@business.com, oscar@business.com (disabled), "
        "S-1-5-21-3623811015-3361044348-30300820-1013 (deleted account)" in out
    )
    assert "NT AUTHORITY\\SELF" not in out
    code, out, _ = await emaildoctor(env_file, "perms", "--trustee", "admin@business.com", "--json")
    grants = {(g["right"], g["mailbox"]) for g in json.loads(out)["grants"]}
    assert ("SendOnBehalf", "frank@business.com") in grants and ("SendAs", "henry@business.com") in grants
    assert ("SendAs", "alice@business.com") not in grants
    via = {(g["right"], g["mailbox"]): g.get("via_group") for g in json.loads(out)["grants"]}
    assert via[("SendAs", "kim@business.com")] == "Mail Senders" and via[("SendAs", "henry@business.com")] is None
    code, out, _ = await emaildoctor(env_file, "perms", "--trustee", "admin@business.com")
    assert code == 0 and "Send As:        kim@business.com (through the group Mail Senders)" in out
    code, out, _ = await emaildoctor(env_file, "test", "kim")
    assert code == 0 and "admin@business.com holds Send As on kim@business.com through the group Mail Senders" in out


async def test_audit_predicts_failures_and_reports_the_diff(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = env_file_for(sandbox, tmp_path)
    code, out, err = await emaildoctor(env_file, "audit", "--json", "--csv", str(tmp_path / "rights.csv"))
    assert code == 0, err
    first = json.loads(out)
    predicted = {f["mailbox"] for f in first["findings"] if f["kind"] == "predicted_send_failure"}
    assert predicted == {"alice@business.com", "grace@business.com"}  # not kim@: admin@ holds it through groups
    assert "audit: " in err  # progress on stderr
    assert (tmp_path / "rights.csv").read_text().startswith("status,right,mailbox,trustee")

    await emaildoctor(env_file, "grant", "SendAs", "--mailbox", "alice@business.com", "--trustee", "admin@business.com")
    code, out, _ = await emaildoctor(env_file, "audit", "--quiet")
    assert code == 0
    assert "+ Send As admin@business.com on alice@business.com" in out
    assert "predicted_send_failure: grace" in out and "predicted_send_failure: alice" not in out


async def test_bad_input_changes_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = env_file_for(sandbox, tmp_path)
    before = sorted(str(g) for g in sandbox.tenant.rights.records())
    for args in (
        ("grant", "Everything", "--mailbox", "alice@business.com", "--trustee", "admin@business.com"),
        ("grant", "SendAs", "--mailbox", "not an address", "--trustee", "admin@business.com"),
        ("grant", "SendAs", "--mailbox", "alice@business.com", "--trustee", "admin@business.com", "--for", "forever"),
        ("perms",),
    ):
        code, out, err = await emaildoctor(env_file, *args)
        assert code == 2, (args, out, err)
        assert "Traceback" not in err
    assert sorted(str(g) for g in sandbox.tenant.rights.records()) == before


async def test_device_login_acts_as_the_signed_in_admin(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    import httpx

    from bot.store import Store

    async with sandbox_factory(behaviour={"device_code_interval_seconds": 1}) as sandbox:
        env_file = env_file_for(sandbox, tmp_path)
        process = await start(
            "--env-file",
            str(env_file),
            "grant",
            "SendAs",
            "--mailbox",
            "grace@business.com",
            "--trustee",
            "admin@business.com",
            "--device-login",
            cwd=tmp_path,
        )
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert line.startswith("To sign in, open https://microsoft.com/devicelogin and enter the code "), line
        code = line.rsplit(" ", 1)[1].strip()
        async with httpx.AsyncClient(verify=sandbox.client_ssl_context()) as client:
            approved = await client.post(
                f"{sandbox.urls.admin}/_sandbox/devicecode/approve",
                json={"user_code": code, "upn": "ivan@business.com"},
            )
            assert approved.status_code == 200, approved.text
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        assert "(changed; read back from Exchange)" in out.decode()
        assert "signed in as ivan@business.com" in err.decode()
        assert sandbox.tenant.grant_record("SendAs", "grace@business.com", "admin@business.com") is not None
    async with await Store.open(f"sqlite:///{tmp_path / 'emaildoctor.db'}") as store:
        grants = [e for e in await store.audit_entries() if e.action == "grant"]
    assert [(e.actor, e.approved_by, e.result) for e in grants] == [("ivan@business.com", "ivan@business.com", "ok")]

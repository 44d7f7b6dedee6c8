"""README.md leads with the install, and every `emaildoctor` line of its shell blocks runs against the sandbox,
exactly as written (the SMTP host and port of smtp.office365.com pointed at the sandbox's SMTP service); the
settings example loads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from plugin.cli_smtp import EXIT_TABLE
from plugin.settings import load_settings
from sandbox.runtime import Sandbox
from tests.commands import run, sandbox_env_file

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def shell_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_leads_with_the_install_and_keeps_make_for_contributors() -> None:
    commands = shell_commands()
    assert commands[0].startswith("pipx install emaildoctor"), commands[0]
    assert commands.index("make demo") < commands.index("make test")
    assert all(c.startswith(("pipx ", "make ", "emaildoctor ")) for c in commands), commands


async def test_every_emaildoctor_command_in_the_readme_runs(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox_env_file(sandbox, tmp_path)
    port = str(sandbox.urls.smtp_starttls_port)
    ran = 0
    for command in shell_commands():
        argv = shlex.split(
            command.replace("smtp.office365.com", sandbox.urls.smtp_host).replace("--port 587", f"--port {port}"),
            comments=True,
        )
        # `emaildoctor demo` plays against its own sandbox; tests/demo and tests/packaging run it.
        if argv[0] != "emaildoctor" or argv[1] == "demo":
            continue
        code, out, err = await run(*argv[1:], cwd=tmp_path)  # the .env there points emaildoctor at the sandbox
        failed = {code for code, _ in EXIT_TABLE if code != 2} if argv[1] == "smtp-test" else {0, 1}  # per stage
        assert code in failed | {0}, (command, code, err[-2000:])
        if command == "emaildoctor check":  # the first step of connecting a real tenant: all ✓ on the sandbox
            assert code == 0 and "All configured checks passed." in out, out
        assert "Traceback" not in out + err, command
        assert out.strip(), command
        ran += 1
    assert ran >= 10
    assert (tmp_path / "rights.csv").is_file()  # emaildoctor audit --csv rights.csv


def test_connecting_a_real_tenant_starts_with_emaildoctor_check() -> None:
    section = README.split("## Connect a real Microsoft 365 tenant", 1)[1]
    first_block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert first_block is not None and section.index("```sh") < section.index("1. ")
    assert first_block.group(1).strip() == "emaildoctor check"


def test_the_settings_example_loads(tmp_path: Path) -> None:
    settings = load_settings(REPO / "deploy" / "emaildoctor.env.example")
    assert settings.m365.configured
    assert settings.slack.audit_cron == "0 7 * * 1-5"


def test_readme_names_only_settings_that_exist() -> None:
    """Full names anywhere, and the short `__NAME` forms of the settings table (same section as their row)."""
    from plugin.settings import Settings

    def known(section: str, name: str) -> bool:
        field = Settings.model_fields.get(section.lower())
        model = field.annotation if field else None
        return model is not None and name.lower() in getattr(model, "model_fields", {})

    names = re.findall(r"EMAILDOCTOR_([A-Z0-9]+)__([A-Z_]+)", README)
    assert len(names) > 12
    unknown = [f"EMAILDOCTOR_{s}__{n}" for s, n in names if not known(s, n)]
    for row in (line for line in README.splitlines() if line.startswith("| `EMAILDOCTOR_")):
        section = re.search(r"EMAILDOCTOR_([A-Z0-9]+)__", row)
        assert section is not None
        unknown += [
            f"{section.group(1)}__{n}" for n in re.findall(r"`__([A-Z_]+)`", row) if not known(section.group(1), n)
        ]
    assert unknown == []

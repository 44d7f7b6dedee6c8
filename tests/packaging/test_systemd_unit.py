"""deploy/emaildoctor-bot.service: systemd accepts every line of it, and its hardening stays where it is.

`systemd-analyze verify` checks the unit offline against a scratch root that holds systemd's own units and a
stand-in for the installed program (verify refuses an ExecStart= that does not exist), so nothing on this
machine is touched. It reports a mistyped key or value only as a warning and still exits 0, so any output
fails the test. .ci/run installs systemd where it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "emaildoctor-bot.service"
PROGRAM = "/opt/emaildoctor/bin/emaildoctor"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    if shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir():
        pytest.fail("systemd-analyze is not installed: `apt-get install systemd` (.ci/run does it)")
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT.name)
    program = root / PROGRAM.lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return root


def _analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        ["systemd-analyze", *args, f"--root={root}", UNIT.name],  # noqa: S607 (found on PATH, checked above)
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(scratch_root: Path) -> None:
    done = _analyze(scratch_root, "verify")
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == "", "systemd-analyze warned: " + done.stdout + done.stderr


def test_verify_fails_a_unit_whose_program_is_not_installed(scratch_root: Path) -> None:
    """The check above can fail: without the installed program, verify says so."""
    (scratch_root / PROGRAM.lstrip("/")).unlink()
    done = _analyze(scratch_root, "verify")
    assert done.returncode != 0
    assert f"Command {PROGRAM} is not executable" in done.stderr


def test_the_hardening_keeps_the_exposure_low(scratch_root: Path) -> None:
    # systemd's own score, 0 (locked down) to 100 (unprotected); the unit scores 14 ("1.4 OK") with systemd 252.
    done = _analyze(scratch_root, "security", "--offline=true", "--threshold=20")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


def test_the_unit_keeps_its_state_and_settings_where_the_docs_say() -> None:
    lines = set(UNIT.read_text(encoding="utf-8").splitlines())
    for line in (
        f"ExecStart={PROGRAM} bot",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=emaildoctor",
        "WorkingDirectory=/var/lib/emaildoctor",
        "EnvironmentFile=/etc/emaildoctor/emaildoctor.env",
        "Environment=EMAILDOCTOR_STORE__URL=sqlite:////var/lib/emaildoctor/emaildoctor.db",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
    ):
        assert line in lines, line

"""`emaildoctor completion bash|fish`: the script completes the installed commands and each command's options."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.commands import EMAILDOCTOR, clean_env


def script(shell: str) -> str:
    done = subprocess.run(  # noqa: S603 - the installed console script
        [EMAILDOCTOR, "completion", shell], capture_output=True, text=True, env=clean_env(), check=False, timeout=120
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done.stdout


def complete_in_bash(source: Path, *words: str) -> list[str]:
    """What bash offers for the last of ``words`` (``emaildoctor`` first), running the script's function."""
    array = " ".join(f"'{w}'" for w in words)
    program = f"source {source}; COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _emaildoctor; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run([bash, "-c", program], capture_output=True, text=True, check=True, timeout=30)  # noqa: S603
    return done.stdout.split()


def test_bash_completes_commands_then_their_options(tmp_path: Path) -> None:
    source = tmp_path / "emaildoctor.bash"
    source.write_text(script("bash"))
    assert complete_in_bash(source, "emaildoctor", "pe") == ["perms"]
    assert set(complete_in_bash(source, "emaildoctor", "")) >= {"test", "check", "smtp-test", "audit", "bot", "demo"}
    assert set(complete_in_bash(source, "emaildoctor", "audit", "--")) >= {"--csv", "--output", "--fail-on", "--json"}
    assert complete_in_bash(source, "emaildoctor", "--env-file", "x.env", "smtp-test", "--quit") == ["--quit-after"]
    assert complete_in_bash(source, "emaildoctor", "completion", "") == ["bash", "zsh", "fish", "--help"]


def test_fish_and_zsh_scripts_name_every_command() -> None:
    fish, zsh = script("fish"), script("zsh")
    for name in ("test", "perms", "grant", "revoke", "audit", "bot", "sandbox", "demo", "completion"):
        assert name in fish and f"{name})" in zsh
    assert zsh.startswith("#compdef emaildoctor")

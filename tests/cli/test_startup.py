"""`emaildoctor --help` and `--version` import almost nothing: the subcommands are described by light entry points
and loaded only when chosen (issue 12). Outcomes, not timings: which modules the installed command imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.commands import EMAILDOCTOR, clean_env

HEAVY = ("sqlalchemy", "alembic", "aiohttp", "msgraph", "msal", "azure", "slack_bolt", "slack_sdk", "sandbox", "httpx")


def imported(*args: str) -> tuple[set[str], str]:
    done = subprocess.run(  # noqa: S603 - the installed console script
        [sys.executable, "-X", "importtime", EMAILDOCTOR, *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return set(lines[1:]), done.stdout  # the first line is the header


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_and_version_import_no_subcommand_and_no_settings(option: str) -> None:
    modules, out = imported(option)
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == []
    for light in ("pydantic", "pydantic_settings", "plugin.settings", "dotenv", "asyncio", "graph.cli", "bot.cli"):
        assert light not in modules
    assert "emaildoctor" in out


def test_help_lists_every_command_and_where_things_live() -> None:
    _, out = imported("--help")
    for name in ("test", "check", "smtp-test", "perms", "grant", "revoke", "audit", "bot", "sandbox", "demo"):
        assert f"\n    {name} " in out
    assert "EMAILDOCTOR_DIRECTORY__PATH" in out and "EMAILDOCTOR_STORE__URL" in out
    assert "must share the store" in out


def test_a_subcommands_help_imports_that_command_only() -> None:
    modules, out = imported("perms", "--help")
    assert "graph.cli_signin" in modules and "--trustee" in out
    assert not any(m.split(".")[0] in ("sqlalchemy", "alembic", "slack_bolt", "sandbox") for m in modules)


def test_the_chosen_command_is_the_first_word_after_emaildoctors_own_options() -> None:
    from plugin.cli import chosen_command

    names = {"test", "perms"}
    assert chosen_command(["--env-file", "test", "test", "alice"], names) == "test"
    assert chosen_command(["--env-file=x.env", "perms", "--trustee", "a"], names) == "perms"
    assert chosen_command(["--help"], names) is None
    assert chosen_command(["frobnicate", "test"], names) is None

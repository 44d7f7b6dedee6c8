"""The bot's directory source: parsed once, parsed again when the file (or the CSV it names) changes."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path

import pytest

from plugin.directory_cache import CachedDirectorySource
from plugin.errors import DirectoryError

SYSTEM = "system:\n  server: {type: smtp, host: smtp.office365.com, port: 587, user: admin@business.com, password_env: ADMIN}\n"


def _employees(*logins: str) -> str:
    return "employees:\n" + "".join(
        f"  - {{name: {login}, login: {login}, email: {login}@business.com}}\n" for login in logins
    )


def _write(path: Path, text: str, *, bump: int) -> None:
    """Write ``text`` and set the file's modification time ``bump`` seconds later than any before."""
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    os.utime(path, ns=(0, (1_700_000_000 + bump) * 1_000_000_000))


async def test_parsed_once_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    _write(path, SYSTEM + _employees("alice", "bob"), bump=0)
    source = CachedDirectorySource(path)
    first, again, *more = await asyncio.gather(*(source.load() for _ in range(5)))
    assert [e.login for e in first.employees] == ["alice", "bob"]
    assert all(d is first for d in (again, *more)) and source.parses == 1
    _write(path, SYSTEM + _employees("alice", "bob", "carol"), bump=1)
    changed = await source.load()
    assert [e.login for e in changed.employees] == ["alice", "bob", "carol"]
    assert source.parses == 2
    assert await source.load() is changed and source.parses == 2


async def test_a_change_of_mtime_alone_reloads(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    _write(path, SYSTEM + _employees("alice"), bump=0)
    source = CachedDirectorySource(path)
    first = await source.load()
    _write(path, SYSTEM + _employees("ALICE"), bump=5)  # same size, later mtime
    assert [e.login for e in (await source.load()).employees] == ["ALICE"]
    assert first.employees[0].login == "alice" and source.parses == 2


async def test_the_csv_it_names_is_watched_too(tmp_path: Path) -> None:
    csv = tmp_path / "employees.csv"
    _write(csv, "Name,Login,Email Address\nAlice,alice,alice@business.com\n", bump=0)
    path = tmp_path / "directory.yaml"
    _write(path, SYSTEM + "employees_csv: employees.csv\n", bump=0)
    source = CachedDirectorySource(path)
    assert [e.login for e in (await source.load()).employees] == ["alice"]
    _write(csv, "Name,Login,Email Address\nAlice,alice,alice@business.com\nBob,bob,bob@business.com\n", bump=1)
    assert [e.login for e in (await source.load()).employees] == ["alice", "bob"]
    assert source.parses == 2


async def test_a_broken_file_fails_until_fixed(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    _write(path, "employees: [\n", bump=0)
    source = CachedDirectorySource(path)
    for _ in range(2):
        with pytest.raises(DirectoryError, match="not valid YAML"):
            await source.load()
    assert source.parses == 1
    _write(path, SYSTEM + _employees("alice"), bump=1)
    assert [e.login for e in (await source.load()).employees] == ["alice"]


async def test_a_missing_file_says_which_setting(tmp_path: Path) -> None:
    source = CachedDirectorySource(tmp_path / "nope.yaml")
    with pytest.raises(DirectoryError, match="EMAILDOCTOR_DIRECTORY__PATH"):
        await source.load()

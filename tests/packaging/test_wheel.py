"""The wheel people install: built by `python -m build`, installed into a fresh venv outside the checkout,
and `emaildoctor --version` and `emaildoctor demo` work from it with nothing of the checkout in reach.

Built and installed once per run (about 30 s: pip takes the dependencies from its cache and the configured
index, and compiles nothing); the demo then takes about 16 s, about 50 s in all on an idle machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import _ISOLATED_NAMES, _ISOLATED_PREFIXES

REPO = Path(__file__).resolve().parents[2]
# Taken at import, before the per-test isolation: pip may need the machine's proxy and index settings.
_MACHINE_ENV = dict(os.environ)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    cwd: Path

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a program of the venv from a directory outside the checkout, with no EMAILDOCTOR_ settings."""
        env = {
            k: v for k, v in _MACHINE_ENV.items() if not k.startswith(_ISOLATED_PREFIXES) and k not in _ISOLATED_NAMES
        }
        for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            env.pop(name, None)
        return subprocess.run(  # noqa: S603 (our own venv's programs)
            [str(self.venv / "bin" / args[0]), *args[1:]],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _step(*argv: str, cwd: Path) -> None:
    """One build or install step, with the machine's pip settings and no venv of ours in the way."""
    env = {k: v for k, v in _MACHINE_ENV.items() if not k.startswith(_ISOLATED_PREFIXES)}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=400, check=False)  # noqa: S603
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    assert not root.resolve().is_relative_to(REPO), "the install must happen outside the checkout"
    dist = root / "dist"
    # sdist first, then the wheel from the sdist (build's default): the sdist must carry the package data too,
    # and the checkout gets no build/ directory whose stale files could end up in a later wheel.
    _step(sys.executable, "-m", "build", "--outdir", str(dist), str(REPO), cwd=root)
    (wheel,) = dist.glob("emaildoctor-*.whl")
    venv = root / "venv"
    _step(sys.executable, "-m", "venv", str(venv), cwd=root)
    _step(str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile", str(wheel), cwd=root)
    cwd = root / "elsewhere"
    cwd.mkdir()
    return Installed(wheel=wheel, venv=venv, cwd=cwd)


def test_the_wheel_carries_what_the_commands_read(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    needed = {
        "bot/store/alembic.ini",
        "bot/store/migrations/env.py",
        "bot/store/migrations/script.py.mako",
        "bot/store/migrations/versions/0001_initial_schema.py",
        "sandbox/examples/tenant.yaml",
        "sandbox/examples/directory.yaml",
        *(f"{package}/py.typed" for package in ("plugin", "graph", "bot", "sandbox")),
    }
    assert needed <= names, sorted(needed - names)
    migrations = {p.relative_to(REPO).as_posix() for p in (REPO / "bot/store/migrations/versions").glob("*.py")}
    assert migrations <= names, sorted(migrations - names)
    assert not any(name.startswith("tests/") for name in names)


def test_version_comes_from_the_installed_metadata(installed: Installed) -> None:
    done = installed.run("emaildoctor", "--version", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"emaildoctor {version('emaildoctor')}"


def test_the_installed_code_is_the_wheels_not_the_checkouts(installed: Installed) -> None:
    done = installed.run("python", "-c", "import sandbox.loader as m; print(m.EXAMPLE_TENANT)", timeout=60)
    assert done.returncode == 0, done.stderr
    tenant = Path(done.stdout.strip())
    assert tenant.is_relative_to(installed.venv) and not tenant.is_relative_to(REPO), tenant
    assert tenant.is_file()


def test_the_demo_plays_from_the_installed_wheel(installed: Installed) -> None:
    done = installed.run("emaildoctor", "demo", "--no-color", "--propagation-delay", "5", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for step in ("✅ alice's email test passes now", "hash chain intact", "That is the whole ticket, closed in"):
        assert step in done.stdout, step
    assert list(installed.cwd.iterdir()) == [], "the demo keeps its files in a temporary folder"


def _start(installed: Installed, *args: str, log: Path) -> subprocess.Popen[str]:
    """A long-running program of the venv (the sandbox, the bot), its stderr to ``log``."""
    env = {k: v for k, v in _MACHINE_ENV.items() if not k.startswith(_ISOLATED_PREFIXES) and k not in _ISOLATED_NAMES}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    with log.open("w", encoding="utf-8") as errors:
        return subprocess.Popen(  # noqa: S603 (our own venv's programs)
            [str(installed.venv / "bin" / args[0]), *args[1:]],
            cwd=installed.cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )


def _line_with(process: subprocess.Popen[str], needle: str, log: Path) -> str:
    assert process.stdout is not None
    for _ in range(40):
        line = process.stdout.readline()
        if needle in line:
            return line
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"no line with {needle!r}: " + log.read_text(encoding="utf-8")[-3000:])


def test_check_and_readyz_pass_against_the_sandbox_from_the_installed_wheel(
    installed: Installed, tmp_path: Path
) -> None:
    """The same install steps the container runs: `check` is green against `emaildoctor sandbox`, and the bot
    started from the wheel answers /readyz 200 with every deep check ok."""
    import json
    import urllib.request

    env_file = tmp_path / "sandbox.env"
    sandbox = _start(
        installed, "emaildoctor", "sandbox", "--env-file", str(env_file), "--workdir", str(tmp_path / "sb"),
        log=tmp_path / "sandbox.log",
    )  # fmt: skip
    bot: subprocess.Popen[str] | None = None
    try:
        _line_with(sandbox, "serving; press Ctrl-C to stop", tmp_path / "sandbox.log")
        store = f"sqlite:///{tmp_path / 'store.db'}"
        with env_file.open("a", encoding="utf-8") as settings:
            settings.write(f"EMAILDOCTOR_STORE__URL={store}\n")
        done = installed.run("emaildoctor", "--env-file", str(env_file), "check", timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        bot = _start(
            installed, "emaildoctor", "--env-file", str(env_file), "bot", "--port", "0", log=tmp_path / "bot.log"
        )
        line = _line_with(bot, "listening on ", tmp_path / "bot.log")
        base = line.split("listening on ", 1)[1].split()[0].rsplit("/slack/events", 1)[0]
        with urllib.request.urlopen(f"{base}/readyz", timeout=60) as answer:  # noqa: S310 (loopback http)
            status, ready = answer.status, json.loads(answer.read())
        assert status == 200 and ready["ok"] is True, ready
        assert {check["area"] for check in ready["checks"]} >= {"store", "slack", "m365"}, ready
        assert all(check["ok"] is not False for check in ready["checks"]), ready
    finally:
        for process in (bot, sandbox):
            if process is not None:
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)
                if process.stdout is not None:
                    process.stdout.close()

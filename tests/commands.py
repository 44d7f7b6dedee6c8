"""Running the installed `emaildoctor` as a user does: a subprocess with a clean environment, and an env file
that points it at a sandbox."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sandbox.runtime import Sandbox

EMAILDOCTOR = str(Path(sys.executable).parent / "emaildoctor")


def clean_env(**extra: str) -> dict[str, str]:
    """Only PATH and HOME: nothing from the developer's environment reaches the command."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **extra}


def sandbox_env_file(sandbox: Sandbox, folder: Path, name: str = ".env", **settings: str) -> Path:
    """The sandbox's settings, a store in ``folder``, and ``settings`` (``EMAILDOCTOR_…=value``) on top."""
    path = sandbox.write_env_file(folder / name)
    lines = {"EMAILDOCTOR_STORE__URL": f"sqlite:///{folder / 'emaildoctor.db'}", **settings}
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(f"{key}={value}\n" for key, value in lines.items())
    return path


async def start(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        EMAILDOCTOR,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or clean_env(),
        cwd=cwd,
    )


async def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, within: float = 120
) -> tuple[int, str, str]:
    """Run to completion; (exit status, stdout, stderr)."""
    process = await start(*args, cwd=cwd, env=env)
    out, err = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()

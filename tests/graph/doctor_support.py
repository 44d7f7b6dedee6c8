"""Building the full diagnosis against a running sandbox, for the tests that need one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import yaml

from graph.services import M365Services
from plugin.directory_files import FileDirectorySource
from plugin.doctor import Doctor
from plugin.settings import load_settings
from sandbox.runtime import Sandbox


@asynccontextmanager
async def doctor_for(
    sandbox: Sandbox,
    tmp_path: Path,
    extra_employees: list[dict[str, object]] | None = None,
    environ: dict[str, str] | None = None,
) -> AsyncIterator[tuple[M365Services, Doctor]]:
    settings = load_settings(sandbox.write_env_file(tmp_path / ".env"))
    directory = settings.directory.path
    if extra_employees:
        data = yaml.safe_load(directory.read_text())
        data["employees"].extend(extra_employees)
        directory = tmp_path / "directory.yaml"
        directory.write_text(yaml.safe_dump(data))
    async with M365Services(settings.m365, clock=sandbox.clock) as m365:
        yield (
            m365,
            Doctor(
                directory=FileDirectorySource(directory),
                settings=settings,
                environ={**sandbox.settings_env(), **(environ or {})},
                m365=m365,
                secrets=list(settings.secret_values()),
            ),
        )

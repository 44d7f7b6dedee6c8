"""pytest fixtures for tests that run against the sandbox (registered in ``tests/conftest.py``).

* ``sandbox``: a fresh sandbox per test on ephemeral ports, the example tenant, a
  :class:`~sandbox.clock.ManualClock`, propagation delay 0, no faults, workdir in ``tmp_path``.
* ``sandbox_factory``: the same with your own tenant, delay, clock or behaviour::

      async def test_delay(sandbox_factory):
          async with sandbox_factory(propagation_delay_seconds=20) as sandbox:
              ...

Helpers for clients: :func:`requests_session` (for msal's ``http_client``) and
``sandbox.client_ssl_context()`` (httpx, aiohttp, aiosmtplib).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import requests

from sandbox.clock import Clock, ManualClock
from sandbox.faults import FaultBook
from sandbox.runtime import Sandbox
from sandbox.state import Tenant

SandboxFactory = Callable[..., AbstractAsyncContextManager[Sandbox]]


def manual_clock() -> ManualClock:
    """A ManualClock starting at the real time, so tokens look current to any JWT validator."""
    return ManualClock(start=datetime.now(UTC).replace(microsecond=0))


@pytest_asyncio.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox.running(
        workdir=tmp_path / "sandbox", clock=manual_clock(), faults=FaultBook(), propagation_delay_seconds=0
    ) as running:
        yield running


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> SandboxFactory:
    counter = iter(range(1_000_000))

    @contextlib.asynccontextmanager
    async def start(
        tenant: Path | str | Tenant | None = None,
        *,
        clock: Clock | None = None,
        faults: FaultBook | None = None,
        propagation_delay_seconds: float | None = 0,
        behaviour: dict[str, Any] | None = None,
    ) -> AsyncIterator[Sandbox]:
        async with Sandbox.running(
            tenant,
            workdir=tmp_path / f"sandbox-{next(counter)}",
            clock=clock or manual_clock(),
            faults=faults or FaultBook(),
            propagation_delay_seconds=propagation_delay_seconds,
        ) as running:
            if behaviour:
                running.tenant.behaviour = running.tenant.behaviour.changed(**behaviour)
            yield running

    return start


def requests_session(sandbox: Sandbox) -> requests.Session:
    """A session that trusts only the sandbox CA and ignores ``REQUESTS_CA_BUNDLE`` and proxies (msal's
    ``http_client``). Close it when done."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(sandbox.ca_path)
    return session

"""Shared test setup: tests never see the developer's environment (ARCHITECTURE.md, principle 8)."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["sandbox.testing"]

# Variables that change how requests, httpx, aiohttp or slack_sdk verify TLS or route traffic, and our own.
_ISOLATED_PREFIXES = ("EMAILDOCTOR_",)
_ISOLATED_NAMES = (
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in list(os.environ):
        if name.startswith(_ISOLATED_PREFIXES) or name in _ISOLATED_NAMES:
            monkeypatch.delenv(name, raising=False)
    # No stray .env in the working directory can leak into Settings().
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))

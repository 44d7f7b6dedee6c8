"""Where emaildoctor keeps its files when the settings do not say: per-platform conventions, never the working
directory. Standard library only (``emaildoctor --help`` shows these).

- Linux and other Unix: ``$XDG_CONFIG_HOME/emaildoctor`` (default ``~/.config/emaildoctor``) for the directory
  file, ``$XDG_DATA_HOME/emaildoctor`` (default ``~/.local/share/emaildoctor``) for the store.
- macOS: ``~/Library/Application Support/emaildoctor`` for both.
- Windows: ``%APPDATA%\\emaildoctor`` for the directory file, ``%LOCALAPPDATA%\\emaildoctor`` for the store.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

APP = "emaildoctor"


def _base(environ: Mapping[str, str], variable: str, fallback: str) -> Path:
    value = environ.get(variable, "")
    # XDG: a relative path in the variable is invalid and must be ignored.
    return Path(value) if value and os.path.isabs(value) else Path(fallback).expanduser()


def config_dir(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    environ = os.environ if environ is None else environ
    platform = platform or sys.platform
    if platform == "darwin":
        return Path("~/Library/Application Support").expanduser() / APP
    if platform == "win32":
        return _base(environ, "APPDATA", "~/AppData/Roaming") / APP
    return _base(environ, "XDG_CONFIG_HOME", "~/.config") / APP


def data_dir(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    environ = os.environ if environ is None else environ
    platform = platform or sys.platform
    if platform == "darwin":
        return Path("~/Library/Application Support").expanduser() / APP
    if platform == "win32":
        return _base(environ, "LOCALAPPDATA", "~/AppData/Local") / APP
    return _base(environ, "XDG_DATA_HOME", "~/.local/share") / APP


def default_directory_path() -> Path:
    """``directory.path`` when ``EMAILDOCTOR_DIRECTORY__PATH`` is not set."""
    return config_dir() / "directory.yaml"


def default_store_path() -> Path:
    return data_dir() / "emaildoctor.db"


def default_store_url() -> str:
    """``store.url`` when ``EMAILDOCTOR_STORE__URL`` is not set: SQLite in the data directory."""
    return f"sqlite:///{default_store_path()}"

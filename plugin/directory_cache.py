"""The directory file, parsed once and kept until it changes: a long-running process (the bot) diagnoses many
times a minute, and parsing a 1,000-employee YAML file takes about a tenth of a second of CPU.

:class:`CachedDirectorySource` is a :class:`~plugin.directory.DirectorySource` around
:func:`plugin.directory_files.load_directory` (the parsing and validation are unchanged). Each ``load()`` looks
at the file's identity (modification time in nanoseconds, size, inode) and, for a YAML file that names an
``employees_csv``, the CSV's too; when any of them changed, the files are parsed again in a worker thread, off
the event loop, once however many diagnoses ask at the same moment. A file that fails to load fails the same
way, without being parsed again, until it changes.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from plugin.directory import Directory
from plugin.directory_files import load_directory

Stamp = tuple[tuple[str, int, int, int], ...]
"""(path, mtime_ns, size, inode) of every file the directory was read from."""


@dataclass(frozen=True)
class _Loaded:
    stamp: Stamp
    directory: Directory | None
    error: Exception | None


def _stamp_of(paths: tuple[Path, ...]) -> Stamp | None:
    """The files' identities; None if one of them cannot be looked at (the loader then says why)."""
    stamps = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            return None
        stamps.append((str(path), info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(stamps)


def _csv_named_by(path: Path) -> Path | None:
    """The ``employees_csv`` a YAML directory file names, if any (read only when the file changed)."""
    if path.suffix.lower() not in (".yaml", ".yml"):
        return None
    try:
        text = path.read_text(encoding="utf-8")
        if "employees_csv" not in text:
            return None
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the loader reports it
    name = data.get("employees_csv") if isinstance(data, dict) else None
    return (path.parent / str(name)).resolve() if name is not None else None


class CachedDirectorySource:
    """The directory file as a source that parses only when the file (or the CSV it names) changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded: _Loaded | None = None
        self._files: tuple[Path, ...] = (path,)
        self._lock = asyncio.Lock()
        self.parses = 0
        """How many times the files were parsed (for tests and the benchmark)."""

    async def load(self) -> Directory:
        loaded = self._loaded
        if loaded is None or _stamp_of(self._files) != loaded.stamp:
            async with self._lock:  # one parse for a burst of callers; the rest find it done
                loaded = self._loaded
                if loaded is None or _stamp_of(self._files) != loaded.stamp:
                    files, fresh, keep = await asyncio.to_thread(self._read)
                    self._files, self._loaded = files, fresh if keep else None
                    loaded = fresh
        if loaded.error is not None:
            raise loaded.error
        assert loaded.directory is not None
        return loaded.directory

    def _read(self) -> tuple[tuple[Path, ...], _Loaded, bool]:
        """Parse the files (in a worker thread): the files read, what they gave, and whether to keep it (not if a
        file changed or vanished while it was read)."""
        csv = _csv_named_by(self.path)
        files = (self.path,) if csv is None else (self.path, csv)
        before = _stamp_of(files)
        self.parses += 1
        try:
            loaded = _Loaded(before or (), load_directory(self.path), None)
        except Exception as exc:  # noqa: BLE001 - kept and raised to every caller until the files change
            loaded = _Loaded(before or (), None, exc)
        return files, loaded, before is not None and _stamp_of(files) == before

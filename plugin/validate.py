"""Checks of values people type or set: ports, host names, CA files. Each returns a problem in words, or None.

Standard library only: the command line uses them before anything heavy is imported, and the settings model
(:mod:`plugin.settings`) uses them when settings load.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def port_problem(port: int, *, allow_zero: bool = False) -> str | None:
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        return f"{port} is not a TCP port: use {low}–65535" + (" (0: any free port)" if allow_zero else "")
    return None


def host_problem(host: str) -> str | None:
    """None for an IP address or a valid DNS host name; a dotted-quad that is not an IPv4 address is refused."""
    text = host.strip()
    if not text:
        return "is empty: give a host name or an IP address"
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    else:
        return None
    if re.fullmatch(r"[0-9.]+", text):
        return f"{host!r} is not a valid IPv4 address"
    name = text.removesuffix(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        return f"{host!r} is not a valid host name or IP address"
    return None


def ca_file_problem(path: Path) -> str | None:
    """None when ``path`` is a readable file holding at least one PEM certificate."""
    if str(path) in ("", "."):
        return "is empty: name a PEM file of CA certificates, or leave the setting out"
    try:
        with path.expanduser().open("rb") as stream:
            head = stream.read(4 * 1024 * 1024)
    except FileNotFoundError:
        return f"{path}: no such file"
    except IsADirectoryError:
        return f"{path} is a folder, not a PEM file"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if PEM_CERTIFICATE not in head:
        return f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    return None


def readable_file_problem(path: Path) -> str | None:
    if str(path) in ("", "."):
        return "is empty: name a file"
    try:
        with path.expanduser().open("rb") as stream:
            stream.read(1)
    except FileNotFoundError:
        return f"{path}: no such file"
    except IsADirectoryError:
        return f"{path} is a folder, not a file"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return None

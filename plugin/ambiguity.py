"""A name or address that matches several people: in the directory (two employees sharing an address) or in
Microsoft 365 (two users with the same address). The error lists every candidate and where it comes from, so
the person can say which one they mean; the full diagnosis turns it into ``ambiguous_user``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from plugin.diagnosis import Code
from plugin.errors import ConfigError, NotFoundError


@dataclass(frozen=True)
class Candidate:
    """One of the people a query matches."""

    name: str
    address: str | None
    source: str
    """Where the record comes from: ``directory.yaml:17``, ``employees.csv:4`` or ``Microsoft 365``."""
    login: str | None = None

    def describe(self) -> str:
        login = f" (login {self.login})" if self.login else ""
        address = f" <{self.address}>" if self.address else " (no email address)"
        return f"{self.name}{login}{address}, from {self.source}"


class AmbiguousUserError(NotFoundError, ConfigError):
    """``query`` matches several people; ``matches`` lists them.

    A NotFoundError (no single user was found: callers that look a user up treat it so, and the full diagnosis
    reports ``ambiguous_user``) and a ConfigError (the person must be more precise: the command line exits 2)."""

    code = Code.AMBIGUOUS_USER

    def __init__(self, query: str, matches: Sequence[Candidate], *, how: str = "", hint: str = "") -> None:
        shown = "; ".join(c.describe() for c in matches[:5])
        more = f"; and {len(matches) - 5} more" if len(matches) > 5 else ""
        how = f" by {how}" if how else ""
        super().__init__(f"'{query}' matches {len(matches)} users{how}: {shown}{more}.{' ' + hint if hint else ''}")
        self.query = query
        self.matches = tuple(matches)

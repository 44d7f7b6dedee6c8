"""Time, injected: every component that reads the clock takes one, so tests and the sandbox decide what "now" is.
(The sandbox keeps its own copy of this shape in ``sandbox/clock.py``: it never imports the product.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

"""Slack's per-method rate-limit tiers, enforced on the sandbox clock when switched on.

Slack limits each Web API method per app per workspace by tier (Tier 1: 1+/min, 2: 20+/min,
3: 50+/min, 4: 100+/min) and ``chat.postMessage`` to about one message per second per channel.
Off by default so that tests and the demo are not slowed; a test switches it on with
``workspace.rate_limits.enabled = True`` (and may lower a limit) to see real 429s with a
``Retry-After`` computed from the window.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

METHOD_TIERS: dict[str, int] = {
    "apps.connections.open": 1,
    "auth.test": 4,
    "chat.update": 3,
    "chat.postEphemeral": 4,
    "views.open": 4,
    "views.update": 4,
    "users.info": 4,
    "users.lookupByEmail": 3,
    "usergroups.users.list": 2,
    "conversations.open": 3,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
}


@dataclass
class RateLimits:
    enabled: bool = False
    per_minute: dict[int, int] = field(default_factory=lambda: {1: 1, 2: 20, 3: 50, 4: 100})
    """Calls allowed in any 60-second window, by tier."""
    method_per_minute: dict[str, int] = field(default_factory=dict)
    """Overrides for single methods (e.g. ``{"users.lookupByEmail": 2}`` in a test)."""
    post_message_per_second: int = 1
    """``chat.postMessage`` per channel, over a one-second window."""
    _windows: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    def check(self, method: str, channel: str | None, now: datetime) -> int | None:
        """Count this call; return the Retry-After seconds if it is over the limit, else None."""
        if not self.enabled:
            return None
        if method == "chat.postMessage":
            return self._take(f"{method}:{channel}", self.post_message_per_second, 1.0, now)
        limit = self.method_per_minute.get(method)
        if limit is None:
            limit = self.per_minute.get(METHOD_TIERS.get(method, 4), 100)
        return self._take(method, limit, 60.0, now)

    def _take(self, key: str, limit: int, window_s: float, now: datetime) -> int | None:
        stamp = now.timestamp()
        window = self._windows.setdefault(key, deque())
        while window and stamp - window[0] >= window_s:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window_s - (stamp - window[0])))
        window.append(stamp)
        return None

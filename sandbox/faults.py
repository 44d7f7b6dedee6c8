"""Fault injection as data: what each sandbox service does wrong, changeable while it runs.

Every service consults its :class:`ServiceFaults` on each request (HTTP) or stage (SMTP). The
admin API (``PATCH /_sandbox/faults/{service}``) and tests change them at runtime.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

SERVICES = ("login", "graph", "exchange", "smtp", "slack")
SMTP_STAGES = ("banner", "ehlo", "starttls", "auth", "mail", "rcpt", "data")


@dataclass(frozen=True)
class ServiceFaults:
    latency_ms: float = 0.0
    """Added before every response (HTTP) or every SMTP reply."""
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0
    """Fraction of requests answered with ``error_status`` and the service's own error body."""
    error_status: int = 503
    throttle_burst: int = 0
    """The next N requests are answered 429 (HTTP) or ``432 4.3.2`` / ``421 4.7.0`` (SMTP)."""
    retry_after_s: int = 1
    drop_rate: float = 0.0
    """Fraction of requests or connections closed without any answer."""
    slow_stage: str | None = None
    """SMTP only: the stage whose reply is delayed by ``slow_stage_ms``."""
    slow_stage_ms: float = 0.0
    throttle_reply: str | None = None
    """SMTP only: the reply a throttled connection gets. Default: ``432 4.3.2 STOREDRV.ClientSubmit; sender thread
    limit exceeded`` at MAIL FROM. A reply starting with ``421`` replaces the banner and closes the connection."""

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        for name in ("latency_ms", "latency_jitter_ms", "slow_stage_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.throttle_burst < 0 or self.retry_after_s < 0:
            raise ValueError("throttle_burst and retry_after_s must not be negative")
        if self.slow_stage is not None and self.slow_stage not in SMTP_STAGES:
            raise ValueError(f"slow_stage must be one of {', '.join(SMTP_STAGES)}")
        if self.throttle_reply is not None and not (
            len(self.throttle_reply) > 4 and self.throttle_reply[:3] in ("421", "432", "451", "452")
        ):
            raise ValueError(
                "throttle_reply must be an SMTP 421/432/451/452 reply, e.g. '421 4.7.0 Too many connections'"
            )
        if not 400 <= self.error_status <= 599:
            raise ValueError("error_status must be an HTTP error status (400-599)")


@dataclass(eq=False)
class Hold:
    """Requests to one service whose path and body contain every string of ``match``, stopped at a step until
    :meth:`release` (or, with ``stage=None``, only counted). A test holds the bot at an exact step of a change
    (``"Add-MailboxPermission", "support@"``), sees it arrive (``held``), kills the bot, and lifts the hold.

    ``stage="request"``: held before the service handles it (nothing happens); ``"response"``: handled (the
    change is made), the answer withheld. ``skip`` lets the first matching requests through. A held request
    whose client has gone when the hold lifts is dropped unanswered, as a real service's would be.
    """

    service: str
    match: tuple[str, ...]
    stage: Literal["request", "response"] | None = "request"
    skip: int = 0
    arrived: int = 0
    held: int = 0
    """Requests waiting at the hold now."""
    handled: int = 0
    """Requests the service handled (a held ``request`` once released, every ``response``)."""
    dropped: int = 0
    _released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def matches(self, text: str) -> bool:
        return all(part in text for part in self.match)

    def stops(self) -> bool:
        """Count an arriving request; True if it is to wait."""
        self.arrived += 1
        if self.stage is None or self._released.is_set():
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        return True

    async def wait(self) -> None:
        self.held += 1
        try:
            await self._released.wait()
        finally:
            self.held -= 1

    def release(self) -> None:
        self._released.set()


@dataclass(frozen=True)
class Served:
    """One HTTP request a service answered: when it arrived and left (``time.monotonic``), and what it was."""

    service: str
    what: str
    """The path, and for the Exchange admin API the cmdlet (``X-CmdletName``) or ``$batch``."""
    started: float
    ended: float


@dataclass
class FaultBook:
    """The faults of every service, with a seeded random source so error rates are repeatable."""

    seed: int = 0
    services: dict[str, ServiceFaults] = field(default_factory=lambda: {name: ServiceFaults() for name in SERVICES})

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._burst_left = {name: faults.throttle_burst for name, faults in self.services.items()}
        self.holds: list[Hold] = []
        self.journal: list[Served] | None = None
        """Set to a list to record every HTTP request the services answer (benchmarks: the chain of round trips)."""

    def hold(
        self,
        service: str,
        *match: str,
        stage: Literal["request", "response"] | None = "request",
        skip: int = 0,
    ) -> Hold:
        """Hold (or with ``stage=None`` only count) the matching requests to ``service``; see :class:`Hold`."""
        if not match:
            raise ValueError("a hold needs at least one string to match")
        hold = Hold(self._known(service), tuple(match), stage, skip)
        self.holds.append(hold)
        return hold

    def holds_for(self, service: str, text: str) -> list[Hold]:
        return [hold for hold in self.holds if hold.service == service and hold.matches(text)]

    def release_holds(self) -> None:
        """Lift every hold (requests whose client has gone are dropped); counting holds keep counting."""
        for hold in self.holds:
            hold.release()

    def get(self, service: str) -> ServiceFaults:
        return self.services[self._known(service)]

    def set(self, service: str, **changes: Any) -> ServiceFaults:
        """Change some fields of one service's faults; unknown fields or bad values raise ValueError."""
        name = self._known(service)
        allowed = {f.name for f in fields(ServiceFaults)}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        updated = replace(self.services[name], **changes)
        self.services[name] = updated
        self._burst_left[name] = updated.throttle_burst
        return updated

    def reset(self, service: str | None = None) -> None:
        for name in [self._known(service)] if service else list(SERVICES):
            self.services[name] = ServiceFaults()
            self._burst_left[name] = 0

    def take_throttle(self, service: str) -> bool:
        """True if this request falls in a 429 burst (and uses up one of it)."""
        name = self._known(service)
        if self._burst_left.get(name, 0) > 0:
            self._burst_left[name] -= 1
            return True
        return False

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def latency_s(self, service: str) -> float:
        faults = self.get(service)
        jitter = self._random.uniform(0, faults.latency_jitter_ms) if faults.latency_jitter_ms else 0.0
        return (faults.latency_ms + jitter) / 1000.0

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {name: asdict(faults) for name, faults in self.services.items()}

    def _known(self, service: str) -> str:
        if service not in self.services:
            raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        return service

"""Handling each Slack delivery once, without making Slack wait for it.

Slack retries a delivery it thinks failed (``X-Slack-Retry-Num``), possibly to another replica. The
acknowledgement must not wait for any I/O, so de-duplication happens in two steps:

* before the ack, :class:`RecentDeliveries` (this process's memory, no I/O) drops a retry of a delivery this
  replica has already seen: the fast path, acknowledged with an empty 200;
* after the ack, :func:`claim_delivery` claims the delivery's key in the store (``claim_once``, across
  replicas) before the background work does anything; a retry that reached another replica first loses the
  claim and does nothing. Old keys are pruned there too, at most every :data:`PRUNE_EVERY`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.context import BotContext

log = logging.getLogger(__name__)

DELIVERY_KEY_TTL = timedelta(hours=1)
"""How long a Slack delivery id is kept: Slack retries a delivery three times within about five minutes."""
PRUNE_EVERY = timedelta(minutes=5)
ACK_FIRST_MAX_WAIT_S = 1.0
"""Longest a command's background work waits for other requests' acknowledgements (see :class:`AckFirst`)."""
RECENT_MAX = 100_000
"""At most this many keys in memory (about an hour of a very busy workspace); the oldest go first."""


def delivery_key(body: dict[str, Any]) -> str | None:
    """What identifies one user action across Slack's retried deliveries (X-Slack-Retry-Num)."""
    trigger = body.get("trigger_id")
    if trigger:
        return _bounded(f"slack:{trigger}")
    actions_ = body.get("actions") or []
    if actions_:
        return _bounded(f"slack:{body.get('user', {}).get('id')}:{actions_[0].get('action_ts')}")
    return None


def _bounded(key: str) -> str:
    """The key as the store keeps it: an odd, over-long id is hashed rather than failing its whole batch of claims."""
    if len(key) <= 120:
        return key
    return "slack:sha256:" + hashlib.sha256(key.encode()).hexdigest()


class RecentDeliveries:
    """The delivery keys this process has seen within ``ttl``: pure memory, safe in the ack path."""

    def __init__(self, ttl: timedelta = DELIVERY_KEY_TTL, max_keys: int = RECENT_MAX) -> None:
        self._ttl = ttl
        self._max = max_keys
        self._seen: OrderedDict[str, datetime] = OrderedDict()

    def first_here(self, key: str, now: datetime) -> bool:
        """True the first time ``key`` is seen here (within ``ttl``), False for a repeat."""
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at < self._ttl and len(self._seen) < self._max:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def __len__(self) -> int:
        return len(self._seen)


class DeliveryClaims:
    """The store side: one claim per delivery across replicas, and the pruning of old keys (after the ack).

    Claims are group-committed: those that arrive while a transaction is under way (a burst of commands) go in
    the next one together (``claim_many``), so a burst costs the store a few transactions, not one each.
    """

    def __init__(self) -> None:
        self._pruned_at: datetime | None = None
        self._waiting: dict[str, list[asyncio.Future[bool]]] = {}
        self._flushing = False

    async def claim(self, ctx: BotContext, body: dict[str, Any]) -> bool:
        """True if this replica is the one to handle ``body`` (or it has no key); False for a repeat."""
        key = delivery_key(body)
        if key is None:
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if not self._flushing:
            self._flushing = True
            ctx.tasks.spawn(self._flush(ctx), name="delivery-claims")
        claimed = await future
        if not claimed:
            log.info("ignored a repeated delivery of %s (handled elsewhere)", key)
        return claimed

    async def _flush(self, ctx: BotContext) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # the rest of this burst's claims join the batch
                batch, self._waiting = self._waiting, {}
                now = ctx.now()
                try:
                    claimed = await ctx.store.claim_many(list(batch), now)
                except Exception as exc:  # noqa: BLE001 - every waiting claim fails with it, and says so
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for key, futures in batch.items():
                    for number, future in enumerate(futures):
                        if not future.done():
                            future.set_result(key in claimed and number == 0)
                await self._prune(ctx, now)
        finally:
            self._flushing = False

    async def _prune(self, ctx: BotContext, now: datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        # Ids outlive Slack's retries by a margin, then go: the table stays as small as an hour of traffic.
        self._pruned_at = now
        try:
            await ctx.store.prune_keys(now - DELIVERY_KEY_TTL)
        except Exception as exc:  # noqa: BLE001 - the claims stand, and the flush goes on; the next prune catches up
            log.warning("could not prune old delivery ids: %s", exc)


class AckFirst:
    """Acknowledgements before background work: the HTTP server counts the Slack requests it is still answering,
    and work started after an ack waits (at most ``max_wait`` seconds) until none is, so a burst of commands is
    acknowledged first and diagnosed afterwards, instead of each ack queueing behind earlier commands' work on the
    one event loop. (Socket Mode counts nothing: its work starts at once.)"""

    def __init__(self, max_wait: float = ACK_FIRST_MAX_WAIT_S) -> None:
        self.max_wait = max_wait
        self._answering = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @contextmanager
    def answering(self) -> Iterator[None]:
        self._answering += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._answering -= 1
            if self._answering == 0:
                self._quiet.set()

    async def quiet(self) -> None:
        if self._answering:
            with suppress(TimeoutError):  # under sustained traffic, work starts anyway after max_wait
                await asyncio.wait_for(self._quiet.wait(), self.max_wait)

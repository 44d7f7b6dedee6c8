"""The Confirm / Cancel card every `/sendas grant|revoke` shows first: what it carries, for how long, and once.

The card's buttons carry the change itself, who asked, and when, sealed with an HMAC keyed from the bot's Slack
secret: a click can only confirm exactly what the card showed. A card is good for :data:`EXPIRES_AFTER`, for the
person who asked, and once: its first click (Confirm or Cancel, on any replica) claims its id in the store
(``Store.claim_once``), so a double click or a retried delivery never changes anything twice. Claimed ids are
kept an hour (``bot.delivery.DELIVERY_KEY_TTL``), longer than a card lives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.changes import Change
from plugin.diagnosis import Right
from plugin.errors import ConfigError
from plugin.settings import Settings

EXPIRES_AFTER = timedelta(minutes=15)
_CONTEXT = b"emaildoctor confirmation card v1"


@dataclass(frozen=True)
class Proposal:
    """A change shown on a confirmation card, waiting for its Confirm."""

    id: str
    change: Change
    asked_by: str
    channel: str
    issued_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + EXPIRES_AFTER

    @property
    def claim_key(self) -> str:
        return f"sendas-card:{self.id}"


def new_proposal(change: Change, asked_by: str, channel: str, now: datetime) -> Proposal:
    return Proposal(secrets.token_urlsafe(12), change, asked_by, channel, now)


def card_secret(settings: Settings) -> str:
    """What seals the cards: the Slack app's signing secret (required in every mode, the same on every replica;
    rotating it voids the cards of the last 15 minutes, which then say so)."""
    secret = settings.slack.signing_secret
    if secret is None:
        raise ConfigError("the Slack bot needs EMAILDOCTOR_SLACK__SIGNING_SECRET to seal its confirmation cards")
    return secret.get_secret_value()


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _CONTEXT, hashlib.sha256).digest()


def seal(proposal: Proposal, secret: str) -> str:
    """The button value: the proposal as JSON, and its MAC."""
    change = proposal.change
    body = {
        "id": proposal.id,
        "kind": change.kind,
        "right": str(change.right),
        "mailbox": change.mailbox,
        "trustee": change.trustee,
        "seconds": int(change.duration.total_seconds()) if change.duration else None,
        "by": proposal.asked_by,
        "channel": proposal.channel,
        "at": int(proposal.issued_at.timestamp()),
    }
    data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(_key(secret), data, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(data).decode() + "." + base64.urlsafe_b64encode(mac).decode()


def unseal(value: str, secret: str) -> Proposal:
    """The proposal a button carries; ConfigError when the value is not one this bot sealed."""
    invalid = ConfigError("this button's data is not valid; run the /sendas command again")
    try:
        data_text, mac_text = value.split(".", 1)
        data = base64.b64decode(data_text.encode(), altchars=b"-_", validate=True)
        mac = base64.b64decode(mac_text.encode(), altchars=b"-_", validate=True)
    except (ValueError, AttributeError) as exc:
        raise invalid from exc
    if not hmac.compare_digest(mac, hmac.new(_key(secret), data, hashlib.sha256).digest()):
        raise invalid
    try:
        body = json.loads(data)
        seconds = body["seconds"]
        change = Change(
            str(body["kind"]),
            Right(body["right"]),
            str(body["mailbox"]),
            str(body["trustee"]),
            timedelta(seconds=int(seconds)) if seconds else None,
        )
        issued = datetime.fromtimestamp(int(body["at"]), UTC)
        return Proposal(str(body["id"]), change, str(body["by"]), str(body["channel"]), issued)
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid from exc

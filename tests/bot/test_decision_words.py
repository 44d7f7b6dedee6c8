"""What a late click is told, for every state a request can be in (two replicas, two clicks: the second one
may arrive after the first approval is already done)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.approvals import already_decided
from bot.store import FixRequest, RequestKind, RequestStatus
from plugin.diagnosis import Right

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _request(status: RequestStatus, *, expires_in: timedelta = timedelta(hours=1)) -> FixRequest:
    return FixRequest(
        id=7,
        kind=RequestKind.GRANT,
        right=Right.SEND_AS,
        mailbox="alice@business.com",
        trustee="admin@business.com",
        duration=None,
        requested_by="U0HANNAH",
        origin_channel="C0HELPDESK",
        origin_thread_ts=None,
        origin_test_user="alice",
        status=status,
        created_at=NOW - timedelta(minutes=5),
        expires_at=NOW + expires_in,
        card_channel=None,
        card_ts=None,
        decided_by=None if status in (RequestStatus.PENDING, RequestStatus.EXPIRED) else "U0IVAN",
        decided_at=None,
        finished_at=None,
        detail=None,
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            RequestStatus.APPROVED,
            "This request was already approved by <@U0IVAN>, and the change is under way in Exchange.",
        ),
        (RequestStatus.DONE, "This request was already approved by <@U0IVAN>, and the change is done."),
        (RequestStatus.FAILED, "This request was already approved by <@U0IVAN>, but the change failed."),
        (RequestStatus.DENIED, "This request was already denied by <@U0IVAN>."),
    ],
)
def test_decided_requests(status: RequestStatus, expected: str) -> None:
    assert already_decided(_request(status), NOW) == expected


@pytest.mark.parametrize("status", [RequestStatus.EXPIRED, RequestStatus.PENDING])
def test_expired_requests(status: RequestStatus) -> None:
    words = already_decided(_request(status, expires_in=timedelta(minutes=-1)), NOW)
    assert words.startswith("This request expired at 2026-11-27 08:59 UTC")

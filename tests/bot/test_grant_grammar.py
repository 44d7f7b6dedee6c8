"""`/sendas grant|revoke` as a sentence or labelled parts; anything ambiguous refused with an example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.changes import Change
from bot.grant_grammar import EXAMPLE, effect_words, parse_change
from plugin.diagnosis import Right
from plugin.errors import ConfigError

ADMIN, ALICE = "admin@business.com", "alice@business.com"


@pytest.mark.parametrize(
    ("line", "right"),
    [
        (f"{ADMIN} send-as {ALICE}", Right.SEND_AS),
        (f"{ADMIN} SendAs {ALICE}", Right.SEND_AS),
        (f"{ADMIN} send as {ALICE}", Right.SEND_AS),
        (f"{ADMIN} send-on-behalf {ALICE}", Right.SEND_ON_BEHALF),
        (f"{ADMIN} send on behalf of {ALICE}", Right.SEND_ON_BEHALF),
        (f"{ADMIN} full-access {ALICE}", Right.FULL_ACCESS),
        (f"{ADMIN} full access to {ALICE}", Right.FULL_ACCESS),
    ],
)
def test_a_sentence_names_the_trustee_first(line: str, right: Right) -> None:
    assert parse_change("grant", line.split()) == Change("grant", right, ALICE, ADMIN)


def test_labelled_parts_in_any_order() -> None:
    words = [f"mailbox={ALICE}", "right=send-as", f"trustee={ADMIN}"]
    assert parse_change("grant", words) == Change("grant", Right.SEND_AS, ALICE, ADMIN)
    timed = parse_change("grant", [*words, "for=8h"])
    assert timed.duration == timedelta(hours=8)
    assert parse_change("grant", [*words, "for", "2d"]).duration == timedelta(days=2)


def test_a_time_limit_and_slack_mailto_links() -> None:
    change = parse_change("GRANT", [f"<mailto:{ADMIN}|{ADMIN}>", "full-access", ALICE, "for", "8h"])
    assert change == Change("grant", Right.FULL_ACCESS, ALICE, ADMIN, timedelta(hours=8))


@pytest.mark.parametrize(
    ("line", "says"),
    [
        # the old order: the right first, then two addresses; read either way by different people
        (f"SendAs {ALICE} {ADMIN}", "is ambiguous: with the right first"),
        (f"send-as {ALICE} {ADMIN} for 8h", "is ambiguous: with the right first"),
        (f"{ALICE} {ADMIN} SendAs", "is ambiguous: with the right last"),
        (f"{ADMIN} {ALICE}", "names no right"),
        (f"Everything {ADMIN} {ALICE}", "names no right"),
        (f"{ADMIN} send-as full-access {ALICE}", "more than one right"),
        (f"{ADMIN} send-as {ALICE} bob@business.com", "not one trustee, one right and one mailbox"),
        (f"trustee={ADMIN} right=send-as", "Missing mailbox="),
        (f"trustee={ADMIN} trustee={ALICE} right=send-as mailbox={ALICE}", "given twice"),
        (f"trustee={ADMIN} send-as mailbox={ALICE}", "is not a labelled part"),
        (f"who={ADMIN} right=send-as mailbox={ALICE}", "is not a labelled part"),
        (f"{ALICE} send-as {ALICE}", "both alice@business.com"),
        (f"{ADMIN} send-as {ALICE} for", "needs a duration"),
        ("", "Say who gets which right"),
    ],
)
def test_anything_ambiguous_is_refused_with_an_example(line: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_change("grant", line.split())
    assert says in str(refused.value)
    if "needs a duration" not in says:
        assert EXAMPLE in str(refused.value)


def test_bad_rights_durations_and_revokes_with_a_time_limit() -> None:
    with pytest.raises(ConfigError, match="'everything' is not a right"):
        parse_change("grant", [f"trustee={ADMIN}", "right=everything", f"mailbox={ALICE}"])
    with pytest.raises(ConfigError, match="out of range"):
        parse_change("grant", [ADMIN, "send-as", ALICE, "for", "91d"])
    with pytest.raises(ConfigError, match="Only a grant can be time-bound"):
        parse_change("revoke", [ADMIN, "send-as", ALICE, "for", "8h"])


def test_the_effect_in_words() -> None:
    grant = Change("grant", Right.SEND_AS, ALICE, ADMIN)
    assert effect_words(grant) == "admin@business.com will be able to send as alice@business.com"
    revoke = Change("revoke", Right.SEND_ON_BEHALF, ALICE, ADMIN)
    assert effect_words(revoke) == "admin@business.com will no longer be able to send on behalf of alice@business.com"
    full = Change("grant", Right.FULL_ACCESS, "support@business.com", "bob@business.com", timedelta(hours=8))
    until = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)
    assert effect_words(full, until=until) == (
        "bob@business.com will be able to open support@business.com's mailbox until 2026-12-06 14:00 UTC"
    )

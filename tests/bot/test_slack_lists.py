"""Long lists in Slack end with "… and N more (see the CSV)" between entries, never inside one; the confirmation
card escapes what was typed."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from bot import blocks, confirmations
from bot.changes import Change
from plugin.diagnosis import Right
from plugin.errors import ConfigError


def test_a_long_list_is_shortened_between_entries_and_says_how_many_more() -> None:
    entries = [f"• oscar{n:04d}@business.com holds Send As on sales@business.com" for n in range(200)]
    _, body = blocks.lines_message("Rights", entries, rest="see the CSV")
    text = body[0]["text"]["text"]
    assert len(text) <= blocks.SECTION_LIMIT
    lines = text.split("\n")
    shown = [line for line in lines if line.startswith("• ")]
    assert all(line in entries for line in shown)  # every entry shown is whole
    assert lines[-1] == f"… and {len(entries) - len(shown)} more (see the CSV)"
    assert "(shortened)" not in text


def test_headings_are_not_counted_and_the_cli_is_named_where_no_csv_exists() -> None:
    lines = ["*Send As:*", *(f"• user{n}@business.com" for n in range(400)), "*Full Access:*", "• last@business.com"]
    text = blocks.clip("\n".join(lines))
    shown = sum(1 for line in text.split("\n") if line.startswith("• "))
    assert text.endswith(f"… and {401 - shown} more (use the CLI)")


def test_short_text_is_untouched_and_one_huge_line_is_cut_between_words() -> None:
    assert blocks.clip("• a\n• b") == "• a\n• b"
    huge = " ".join(f"word{n}" for n in range(2000))
    cut = blocks.clip(huge, 500)
    assert len(cut) <= 500 and cut.split("\n")[0].endswith("…")
    assert cut.split("\n")[0][:-1].split(" ")[-1] in huge.split(" ")  # the last word shown is whole


def test_the_confirmation_card_escapes_typed_text() -> None:
    _, body = blocks.confirm_card(
        effect="<!here> will be able to send as <https://evil.example|alice@business.com>",
        warnings=[],
        value="v",
        expires="12:00 UTC",
        goes_to_it=False,
        subject="x",
    )
    first = body[0]["text"]["text"]
    assert "&lt;!here&gt;" in first and "<!here>" not in first
    assert [e["action_id"] for e in body[-2]["elements"]] == [blocks.ACTION_CONFIRM, blocks.ACTION_CANCEL]


def test_a_sealed_card_cannot_be_altered() -> None:
    change = Change("grant", Right.SEND_AS, "alice@business.com", "admin@business.com", timedelta(hours=8))
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    proposal = confirmations.new_proposal(change, "U0IVAN", "C0HELPDESK", now)
    value = confirmations.seal(proposal, "secret")
    assert confirmations.unseal(value, "secret") == proposal
    assert proposal.expires_at == now + timedelta(minutes=15)
    data, mac = value.split(".")
    forged = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(data).replace(b"admin@business.com", b"evil0@business.com")
    ).decode()
    for bad in (f"{forged}.{mac}", "nonsense", "", value + "x"):
        with pytest.raises(ConfigError, match="not valid"):
            confirmations.unseal(bad, "secret")
    with pytest.raises(ConfigError):
        confirmations.unseal(value, "another secret")

"""Every catalogue code has wording that renders, with or without facts, and names the people involved."""

from __future__ import annotations

import re

import pytest

from plugin.catalogue import CATALOGUE, Facts, diagnose
from plugin.diagnosis import Code, Remedy
from plugin.troubleshooting import EXAMPLE_FACTS

FULL = EXAMPLE_FACTS


def test_every_code_has_an_entry() -> None:
    assert set(CATALOGUE) == set(Code)
    assert {entry.remedy for entry in CATALOGUE.values()} == set(Remedy)


@pytest.mark.parametrize("code", list(Code))
@pytest.mark.parametrize("facts", [Facts(), FULL], ids=["no facts", "full facts"])
def test_wording_renders_completely(code: Code, facts: Facts) -> None:
    diagnosis = diagnose(code, facts, ["evidence line"])
    for text in (diagnosis.cause, diagnosis.fix):
        assert not re.search(r"\{[a-z_]+\}", text), text
        assert text.strip() and "  " not in text
    assert diagnosis.remedy is CATALOGUE[code].remedy


def test_send_as_denied_names_principal_from_and_right_and_carries_the_fix() -> None:
    diagnosis = diagnose(Code.SEND_AS_DENIED, FULL)
    assert diagnosis.cause == (
        "admin@business.com signed in, but the message is from alice@business.com, and admin@business.com does not "
        'hold Send As on alice@business.com\'s mailbox, so Exchange refused it ("Send As denied").'
    )
    assert "emaildoctor grant SendAs --mailbox alice@business.com --trustee admin@business.com" in diagnosis.fix
    assert diagnosis.fix_action is not None and diagnosis.fix_action.to_json() == {
        "right": "SendAs",
        "mailbox": "alice@business.com",
        "trustee": "admin@business.com",
    }


def test_evidence_is_redacted() -> None:
    diagnosis = diagnose(Code.UNKNOWN, Facts(), ["server said hunter22 loudly"], secrets=["hunter22"])
    assert "hunter22" not in " ".join(diagnosis.evidence)

"""Every catalogue code has wording that renders, with or without facts, and names the people involved."""

from __future__ import annotations

import re

import pytest

from plugin.ambiguity import AmbiguousUserError, Candidate
from plugin.catalogue import CATALOGUE, Facts, diagnose
from plugin.diagnosis import Code, Remedy, Right
from plugin.errors import NotFoundError
from plugin.sender_checks import lookup_diagnosis
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


def test_from_outside_the_tenant_names_a_fix_that_can_work_and_no_grant() -> None:
    facts = Facts(
        principal="admin@business.com",
        from_addr="someone@gmail.com",
        user="Sam Someone",
        right=Right.SEND_AS,
        domains=("businesscom.onmicrosoft.com", "business.com"),
    )
    diagnosis = diagnose(Code.FROM_OUTSIDE_TENANT, facts)
    assert diagnosis.fix_action is None and "emaildoctor grant" not in diagnosis.fix
    assert "Microsoft 365 will not send as an address it does not host" in diagnosis.cause
    assert diagnosis.fix.startswith("Use an address in business.com as the email address on Sam Someone's")
    assert "the provider that hosts gmail.com" in diagnosis.fix


def test_ambiguous_user_lists_every_candidate() -> None:
    matches = (
        Candidate("Ivy Irwin", "sales@business.com", "directory.yaml:101", "ivy"),
        Candidate("Jack Jones", "sales@business.com", "directory.yaml:107", "jack"),
    )
    diagnosis = lookup_diagnosis("sales@business.com", AmbiguousUserError("sales@business.com", matches, how="email"))
    assert diagnosis.code is Code.AMBIGUOUS_USER and diagnosis.remedy is Remedy.CONFIGURATION
    assert diagnosis.cause == (
        "'sales@business.com' matches 2 users: Ivy Irwin (login ivy) <sales@business.com>, from directory.yaml:101; "
        "Jack Jones (login jack) <sales@business.com>, from directory.yaml:107."
    )
    missing = lookup_diagnosis("zoe", NotFoundError("no employee 'zoe' in the directory (directory.yaml)."))
    assert missing.code is Code.USER_NOT_FOUND
    assert missing.cause == "zoe was not found: no employee 'zoe' in the directory (directory.yaml)."

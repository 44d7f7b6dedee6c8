"""Sender resolution, table-driven over the example directory and edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin.diagnosis import Code, Right
from plugin.directory import Directory, Employee, MailServer, SystemConfig, Transport
from plugin.directory_files import load_directory
from plugin.errors import ConfigError
from plugin.resolve import ResolutionError, SignIn, resolve

EXAMPLES = Path(__file__).resolve().parents[2] / "sandbox" / "examples"
ADMIN = "admin@business.com"

# login -> (principal, from, sender, transport, sign-in, right)
EXPECTED: dict[str, tuple[str, str, str | None, Transport, SignIn, Right | None]] = {
    "alice": (ADMIN, "alice@business.com", None, Transport.SMTP, SignIn.PASSWORD, Right.SEND_AS),
    "bob": ("bob@business.com", "bob@business.com", None, Transport.SMTP, SignIn.PASSWORD, None),
    "carol": ("support@business.com", "support@business.com", None, Transport.SMTP, SignIn.PASSWORD, None),
    "erin": ("erin@business.com", "erin@business.com", None, Transport.GRAPH, SignIn.OAUTH_APP, None),
    "frank": (ADMIN, "frank@business.com", ADMIN, Transport.GRAPH, SignIn.OAUTH_APP, Right.SEND_ON_BEHALF),
    "grace": (ADMIN, "grace@business.com", None, Transport.SMTP, SignIn.PASSWORD, Right.SEND_AS),
    "henry": (ADMIN, "henry@business.com", None, Transport.SMTP, SignIn.PASSWORD, Right.SEND_AS),
    "ivy": (ADMIN, "sales@business.com", None, Transport.SMTP, SignIn.PASSWORD, Right.SEND_AS),
    "jack": ("sales@business.com", "sales@business.com", None, Transport.SMTP, SignIn.OAUTH_APP, None),
}


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory(EXAMPLES / "directory.yaml")


@pytest.mark.parametrize("login", list(EXPECTED))
def test_example_plans(directory: Directory, login: str) -> None:
    principal, from_addr, sender, transport, sign_in, right = EXPECTED[login]
    plan = resolve(directory.find(login), directory)
    assert (plan.principal, plan.from_addr, plan.sender, plan.transport, plan.sign_in, plan.required_right) == (
        principal,
        from_addr,
        sender,
        transport,
        sign_in,
        right,
    )
    assert plan.to_addr == from_addr  # the application's test email goes to the user's own address
    assert principal in plan.explanation
    if right is None:
        assert "no mailbox right is needed" in plan.explanation
    else:
        words = "Send As" if right is Right.SEND_AS else "Send on Behalf"
        assert f"{principal} holds {words} on {from_addr}'s mailbox" in plan.explanation


def test_option_3_explanation_in_plain_words(directory: Directory) -> None:
    plan = resolve(directory.find("alice"), directory)
    assert plan.explanation == (
        "admin@business.com signs in; the message is from alice@business.com; Exchange accepts that only if "
        "admin@business.com holds Send As on alice@business.com's mailbox."
    )
    assert plan.server_source == "the system Outgoing Mail Server"


def test_missing_email_address(directory: Directory) -> None:
    with pytest.raises(ResolutionError) as caught:
        resolve(directory.find("dave"), directory)
    assert caught.value.code is Code.MISSING_EMAIL_ADDRESS
    assert "Dave Diaz" in str(caught.value)


def test_xoauth2_note_mentions_full_access(directory: Directory) -> None:
    plan = resolve(directory.find("jack"), directory)
    assert any("Full Access on sales@business.com" in note for note in plan.notes)


def test_same_address_in_other_case_needs_no_right() -> None:
    server = MailServer(host="smtp.example.com", user="Pat@Example.com", password_env="P")
    directory = Directory(
        source="t", employees=(Employee(name="Pat", login="pat", email="pat@example.com", server=server),)
    )
    assert resolve(directory.employees[0], directory).required_right is None


def test_no_server_anywhere_is_a_configuration_error() -> None:
    directory = Directory(
        source="t.yaml", system=SystemConfig(), employees=(Employee(name="A", login="a", email="a@x.com"),)
    )
    with pytest.raises(ConfigError, match="no system outgoing mail server"):
        resolve(directory.employees[0], directory)


def test_test_recipient_override(directory: Directory) -> None:
    plan = resolve(directory.find("alice"), directory, test_recipient="helpdesk@business.com")
    assert plan.to_addr == "helpdesk@business.com" and plan.from_addr == "alice@business.com"


def test_plan_json_names_the_secret_source_not_the_secret(directory: Directory) -> None:
    data = resolve(directory.find("bob"), directory).to_json()
    assert data["required_right"] is None
    assert data["server"] == {
        "source": "Bob Baker's alternate server settings",
        "type": "smtp",
        "host": "smtp.office365.com",
        "port": 587,
        "security": "starttls",
        "timeout": 30.0,
        "secret": "environment variable BOB_SMTP_PASSWORD",
    }

"""The pure rules behind the guard: where a response_url may lead, what text is disarmed, how long a grant may be."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.blocks import disarm, escape
from bot.changes import parse_duration
from bot.guard import SlackOrigins
from plugin.errors import ConfigError

ORIGINS = SlackOrigins.from_settings("http://127.0.0.1:8123/api/", ["hooks.slack.com"])


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/commands/T0/1/abc", True),
        ("https://HOOKS.slack.com:443/actions/T0/1/abc", True),
        ("http://127.0.0.1:8123/response/R1", True),  # the configured Slack API's own origin (the sandbox)
        ("http://hooks.slack.com/commands/T0/1/abc", False),  # not https
        ("https://hooks.slack.com:8443/commands/T0/1/abc", False),
        ("https://hooks.slack.com.evil.example/x", False),
        ("https://evil.example/?hooks.slack.com", False),
        ("https://user:pw@hooks.slack.com/x", False),
        ("http://localhost:8123/response/R1", False),  # the same server by another name is another origin
        ("http://127.0.0.1:8124/response/R1", False),
        ("https://hooks.slack.com:99999/x", False),  # a port urlsplit refuses
        ("", False),
        (None, False),
        (["https://hooks.slack.com/x"], False),
    ],
)
def test_response_urls_lead_only_to_slack(url: object, allowed: bool) -> None:
    assert ORIGINS.allows(url) is allowed


def test_escape_and_disarm() -> None:
    assert (
        escape("<!channel> & <https://evil.example|pay>") == "&lt;!channel&gt; &amp; &lt;https://evil.example|pay&gt;"
    )
    # the backstop keeps emaildoctor's own markup (mentions, channels, user groups, dates) and nothing else
    ours = "<@U0IVAN> in <#C0IT> for <!subteam^S0IT> at <!date^1700000000^{date}|2023-11-14>"
    assert disarm(ours) == ours
    assert disarm("x <!here|here> <mailto:a@b.c|a> <!everyone>") == (
        "x &lt;!here|here&gt; &lt;mailto:a@b.c|a&gt; &lt;!everyone&gt;"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("99999999999999999999d", "far too long"),
        ("9" * 5000 + "d", "far too long"),
        ("999999999d999999999h", "out of range"),
        ("91d", "out of range: a time-bound grant lasts between 1 minute and 90d"),
        ("0m", "out of range"),
        ("1d2d", "is not a duration"),
        ("-5h", "is not a duration"),
    ],
)
def test_durations_are_bounded_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_duration(text)


def test_the_bound_is_a_parameter() -> None:
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("7d", timedelta(days=7)) == timedelta(days=7)
    with pytest.raises(ConfigError, match="between 1 minute and 7d"):
        parse_duration("7d1m", timedelta(days=7))

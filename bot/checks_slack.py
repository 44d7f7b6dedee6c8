"""`emaildoctor check` for Slack: the bot token works (``auth.test``), Slack granted every scope the manifest asks
for (the ``X-OAuth-Scopes`` header), the app is in the approvals and audit channels, the IT user group or user IDs
name at least one active person, and the Socket Mode app token opens a connection URL when that mode is set.

The same checks run when ``emaildoctor bot`` starts (:func:`startup_problems`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_io import build_web_client
from plugin.checks import CheckResult, failed, passed, skipped
from plugin.errors import ConfigError
from plugin.settings import Settings, SlackMode, SlackSettings

REQUIRED_SCOPES = (
    "commands",
    "chat:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "im:write",
    "files:write",
    "channels:read",
    "groups:read",
)
"""The bot scopes of manifests/slack-app.yaml (tests/manifests keeps the two equal)."""
_REINSTALL = (
    "api.slack.com/apps > the emaildoctor app > OAuth & Permissions: add the bot scope(s) {scopes} (or update the "
    "app from manifests/slack-app.yaml), then Reinstall to Workspace and set EMAILDOCTOR_SLACK__BOT_TOKEN to the "
    "new Bot User OAuth Token."
)


AUTH_ROW = "Slack bot token"
"""The auth.test row: the one Slack check whose failure makes the bot useless (start-up and /readyz fail on it)."""


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") or "unknown_error")


class SlackChecks:
    name = "Slack"
    areas: tuple[str, ...] = ("slack",)

    async def run(self, settings: Settings, environ: Mapping[str, str], only: frozenset[str]) -> list[CheckResult]:
        slack = settings.slack
        if slack.bot_token is None:
            return [skipped("slack", "Slack", "not configured (EMAILDOCTOR_SLACK__BOT_TOKEN)")]
        return await slack_checks(build_web_client(slack), slack)


async def slack_checks(client: AsyncWebClient, slack: SlackSettings, *, app_token: bool = True) -> list[CheckResult]:
    try:
        answer = await client.auth_test()
    except SlackApiError as exc:
        return [
            failed(
                "slack",
                AUTH_ROW,
                f"auth.test refused it: {_error(exc)}",
                "api.slack.com/apps > the emaildoctor app > OAuth & Permissions: copy the Bot User OAuth Token "
                "(xoxb-…) into EMAILDOCTOR_SLACK__BOT_TOKEN (reinstall the app if it was revoked).",
            )
        ]
    bot_user = str(answer.get("user_id") or "")
    rows = [passed("slack", AUTH_ROW, f"auth.test: {answer.get('user')} in {answer.get('team')}")]
    granted = {s.strip() for s in str(answer.headers.get("x-oauth-scopes", "")).split(",") if s.strip()}
    missing = [s for s in REQUIRED_SCOPES if s not in granted]
    if missing:
        rows.append(
            failed(
                "slack",
                "Slack scopes",
                f"missing {', '.join(missing)}",
                _REINSTALL.format(scopes=", ".join(missing)),
            )
        )
    else:
        rows.append(passed("slack", "Slack scopes", "every scope of manifests/slack-app.yaml is granted"))
    channels = {"approvals": slack.approvals_channel, "audit": slack.audit_channel}
    rows += await asyncio.gather(*(_channel(client, what, channel) for what, channel in channels.items()))
    rows.append(await _approvers(client, slack, bot_user))
    if app_token:
        rows.append(await _socket_mode(slack))
    return rows


async def _channel(client: AsyncWebClient, what: str, channel: str | None) -> CheckResult:
    name = f"app in the {what} channel"
    setting = f"EMAILDOCTOR_SLACK__{what.upper()}_CHANNEL"
    if not channel:
        return skipped("slack", name, f"not configured ({setting})")
    invite = f"In Slack, open the channel {channel} and type /invite @emaildoctor (or set {setting} to the right ID)."
    try:
        info = await client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = _error(exc)
        if error == "missing_scope":
            return failed(
                "slack", name, f"cannot tell: {error}", _REINSTALL.format(scopes="channels:read, groups:read")
            )
        return failed(
            "slack", name, f"{channel}: {error} (no such channel, or a private one the app is not in)", invite
        )
    found = info.get("channel") or {}
    if not found.get("is_member"):
        return failed("slack", name, f"the app is not a member of #{found.get('name', channel)}", invite)
    return passed("slack", name, f"member of #{found.get('name', channel)}")


async def approvers(client: AsyncWebClient, slack: SlackSettings, bot_user: str = "") -> tuple[list[str], list[str]]:
    """The active people who may approve (the IT group's members and the IT user IDs), and problems found."""
    candidates = list(slack.it_user_ids)
    problems: list[str] = []
    if slack.it_usergroup_id:
        try:
            listed = await client.usergroups_users_list(usergroup=slack.it_usergroup_id)
            candidates += [str(u) for u in listed.get("users") or []]
        except SlackApiError as exc:
            problems.append(f"user group {slack.it_usergroup_id}: {_error(exc)}")
    active: list[str] = []
    for user_id in dict.fromkeys(candidates):
        try:
            user = (await client.users_info(user=user_id)).get("user") or {}
        except SlackApiError as exc:
            problems.append(f"{user_id}: {_error(exc)}")
            continue
        if user.get("deleted") or user.get("is_bot") or user_id == bot_user:
            problems.append(f"{user_id}: deactivated or a bot")
        else:
            active.append(user_id)
    return active, problems


async def _approvers(client: AsyncWebClient, slack: SlackSettings, bot_user: str) -> CheckResult:
    name = "IT approvers"
    if not slack.it_usergroup_id and not slack.it_user_ids:
        return failed(
            "slack",
            name,
            "nobody can approve: no IT user group or user IDs",
            "Set EMAILDOCTOR_SLACK__IT_USERGROUP_ID (a user group S…) or EMAILDOCTOR_SLACK__IT_USER_IDS (U…,U…).",
        )
    active, problems = await approvers(client, slack, bot_user)
    said = f" ({'; '.join(problems)})" if problems else ""
    if not active:
        return failed(
            "slack",
            name,
            f"nobody can approve: the IT group and user IDs name no active person{said}",
            "Add at least one active IT person to the Slack user group (People > User groups) or to "
            "EMAILDOCTOR_SLACK__IT_USER_IDS.",
        )
    return passed("slack", name, f"{len(active)} active approver(s){said}")


async def _socket_mode(slack: SlackSettings) -> CheckResult:
    name = "Socket Mode app token"
    if slack.mode is not SlackMode.SOCKET:
        return skipped("slack", name, "not used (EMAILDOCTOR_SLACK__MODE is http)")
    assert slack.app_token is not None  # settings require it in socket mode
    try:
        await build_web_client(slack).apps_connections_open(app_token=slack.app_token.get_secret_value())
    except SlackApiError as exc:
        return failed(
            "slack",
            name,
            f"apps.connections.open refused it: {_error(exc)}",
            "api.slack.com/apps > the app > Basic Information > App-Level Tokens: create one with connections:write "
            "and set EMAILDOCTOR_SLACK__APP_TOKEN to it (xapp-…).",
        )
    return passed("slack", name, "apps.connections.open gave a connection URL")


PROVIDER = SlackChecks()


async def startup_problems(slack: SlackSettings) -> list[str]:
    """At `emaildoctor bot` start-up: raise :class:`ConfigError` when the bot token fails ``auth.test`` (the bot
    would be useless), and return warnings for what makes it half useful (nobody can approve, missing scopes or
    channels) for the log."""
    if slack.bot_token is None:
        return []
    rows = await slack_checks(build_web_client(slack), slack, app_token=False)  # Socket Mode checks it on connecting
    token = rows[0]
    if token.ok is False:
        raise ConfigError(f"the Slack bot token does not work: {token.detail}. {token.fix}")
    return [f"{row.name}: {row.detail}. {row.fix}" for row in rows if row.ok is False]

"""Who is who in Slack: turning `/emailtest` arguments into directory queries, and who may approve."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from plugin.errors import ConfigError, ServiceError
from plugin.settings import SlackSettings

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")


async def directory_query(client: AsyncWebClient, text: str) -> str:
    """The directory query for what someone typed: an email, a UPN, a display name or a @mention."""
    value = text.strip()
    if not value:
        raise ConfigError("say whom to test: /emailtest alice, /emailtest alice@business.com or /emailtest @Alice")
    mention = _MENTION.match(value)
    if mention:
        try:
            response = await client.users_info(user=mention.group(1))
        except SlackApiError as exc:
            raise ServiceError(f"Slack could not look up {value}: {exc.response.get('error')}") from exc
        profile = (response.get("user") or {}).get("profile") or {}
        email = profile.get("email")
        if not email:
            raise ConfigError(f"{value} has no email address in Slack; test them by login or address instead")
        return str(email)
    mailto = _MAILTO.match(value)
    if mailto:
        return mailto.group(1)
    return value


@dataclass
class Approvers:
    """Members of the IT user group (looked up through usergroups.users.list) or listed ids.

    A decision (approve, deny, grant, revoke) asks Slack afresh every time, so someone removed from the
    group cannot act a second later; read-only commands may use the answer for ``it_cache_seconds``.
    """

    client: AsyncWebClient
    settings: SlackSettings
    _members: frozenset[str] = frozenset()
    _fetched_at: float = field(default=-1e9)

    @property
    def handle(self) -> str:
        if self.settings.it_usergroup_id:
            return f"<!subteam^{self.settings.it_usergroup_id}>"
        return "the IT admins"

    async def is_it(self, user_id: str, *, fresh: bool = True) -> bool:
        if user_id in self.settings.it_user_ids:
            return True
        group = self.settings.it_usergroup_id
        if not group:
            return False
        if fresh or time.monotonic() - self._fetched_at > self.settings.it_cache_seconds:
            try:
                response = await self.client.usergroups_users_list(usergroup=group)
            except SlackApiError as exc:
                raise ServiceError(f"Slack could not list the IT user group: {exc.response.get('error')}") from exc
            self._members = frozenset(response.get("users") or [])
            self._fetched_at = time.monotonic()
        return user_id in self._members

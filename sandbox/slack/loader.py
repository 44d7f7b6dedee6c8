"""Reading the ``slack:`` section of ``tenant.yaml`` into a :class:`SlackWorkspace`, with errors that name the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sandbox.slack.model import DEFAULT_BOT_SCOPES, Bot, Channel, Team, User, Usergroup
from sandbox.slack.workspace import SlackWorkspace


class WorkspaceConfigError(ValueError):
    """The ``slack:`` section is malformed; the message starts with the field's path (``slack.users[2].email``)."""


_ID_PREFIXES = {"team": "T", "user": "UW", "bot": "B", "app": "A", "usergroup": "S", "channel": "CG"}
_ID = re.compile(r"^[A-Z][A-Z0-9]{2,}$")
_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def load_workspace(data: Mapping[str, Any]) -> SlackWorkspace:
    """Build the live workspace from the ``slack:`` section (or from a whole tenant document holding one)."""
    if "slack" in data and "team" not in data:
        section = data["slack"]
        if not isinstance(section, Mapping):
            raise WorkspaceConfigError("slack: must be a mapping")
        data = section
    reader = _Reader(data, "slack")
    reader.only("team", "bot", "app_token", "signing_secret", "verification_token", "users", "usergroups", "channels")

    team_in = reader.mapping("team")
    team_in.only("id", "domain", "name")
    team = Team(id=team_in.ident("id", "team"), domain=team_in.text("domain"), name=team_in.text("name"))

    bot_in = reader.mapping("bot")
    bot_in.only("user_id", "bot_id", "app_id", "name", "token", "scopes")
    token = bot_in.text("token")
    if not token.startswith("xoxb-"):
        raise WorkspaceConfigError("slack.bot.token: a bot token starts with 'xoxb-'")
    bot = Bot(
        user_id=bot_in.ident("user_id", "user"),
        bot_id=bot_in.ident("bot_id", "bot"),
        app_id=bot_in.ident("app_id", "app"),
        name=bot_in.text("name"),
        token=token,
        scopes=tuple(bot_in.strings("scopes")) if "scopes" in bot_in.data else DEFAULT_BOT_SCOPES,
    )
    app_token = reader.text("app_token") if data.get("app_token") is not None else None
    if app_token is not None and not app_token.startswith("xapp-"):
        raise WorkspaceConfigError("slack.app_token: an app-level token starts with 'xapp-'")
    signing_secret = reader.text("signing_secret")
    verification_token = reader.text("verification_token") if "verification_token" in data else "sandbox-verification"

    users = _users(reader, bot)
    known = {user.id for user in users}
    usergroups = [_usergroup(item, known) for item in reader.items("usergroups")]
    channels = [_channel(item, known) for item in reader.items("channels")]
    _unique("slack.usergroups", [g.id for g in usergroups])
    _unique("slack.channels", [c.id for c in channels])
    _unique("slack.channels (names)", [c.name for c in channels])
    return SlackWorkspace(
        team=team,
        bot=bot,
        app_token=app_token,
        signing_secret=signing_secret,
        verification_token=verification_token,
        users=users,
        usergroups=usergroups,
        channels=channels,
    )


def _users(reader: _Reader, bot: Bot) -> list[User]:
    users: list[User] = []
    for item in reader.items("users"):
        item.only("id", "name", "real_name", "email", "deleted", "is_bot")
        email = item.text("email") if item.data.get("email") is not None else None
        if email is not None and not _EMAIL.match(email):
            raise WorkspaceConfigError(f"{item.path}.email: {email!r} is not an email address")
        user_id = item.ident("id", "user")
        users.append(
            User(
                id=user_id,
                name=item.text("name"),
                real_name=item.text("real_name") if "real_name" in item.data else item.text("name"),
                email=email,
                deleted=item.flag("deleted"),
                is_bot=item.flag("is_bot") or user_id == bot.user_id,
            )
        )
    _unique("slack.users", [u.id for u in users])
    emails = [u.email.lower() for u in users if u.email]
    _unique("slack.users (emails)", emails)
    if bot.user_id not in {u.id for u in users}:
        users.append(User(id=bot.user_id, name=bot.name, real_name=bot.name, is_bot=True))
    return users


def _usergroup(item: _Reader, known: set[str]) -> Usergroup:
    item.only("id", "handle", "name", "users")
    members = item.strings("users")
    for index, member in enumerate(members):
        if member not in known:
            raise WorkspaceConfigError(f"{item.path}.users[{index}]: unknown user {member!r}")
    return Usergroup(
        id=item.ident("id", "usergroup"), handle=item.text("handle"), name=item.text("name"), users=tuple(members)
    )


def _channel(item: _Reader, known: set[str]) -> Channel:
    item.only("id", "name", "members", "is_private")
    name = item.text("name")
    if not _CHANNEL_NAME.match(name):
        raise WorkspaceConfigError(f"{item.path}.name: {name!r} is not a Slack channel name (lowercase, no '#')")
    members = item.strings("members") if "members" in item.data else []
    for index, member in enumerate(members):
        if member not in known:
            raise WorkspaceConfigError(f"{item.path}.members[{index}]: unknown user {member!r}")
    return Channel(id=item.ident("id", "channel"), name=name, members=members, is_private=item.flag("is_private"))


def _unique(path: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise WorkspaceConfigError(f"{path}: {value!r} appears twice")
        seen.add(value)


class _Reader:
    """Typed access to one mapping of the YAML, every error prefixed with the field's path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise WorkspaceConfigError(f"{path}: must be a mapping")
        self.data: Mapping[str, Any] = data
        self.path = path

    def only(self, *allowed: str) -> None:
        unknown = sorted(str(key) for key in self.data if key not in allowed)
        if unknown:
            raise WorkspaceConfigError(
                f"{self.path}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
            )

    def _get(self, key: str) -> Any:
        if key not in self.data or self.data[key] is None:
            raise WorkspaceConfigError(f"{self.path}.{key}: required")
        return self.data[key]

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value.strip():
            raise WorkspaceConfigError(f"{self.path}.{key}: must be a non-empty string")
        return value

    def ident(self, key: str, kind: str) -> str:
        value = self.text(key)
        prefixes = _ID_PREFIXES[kind]
        if not _ID.match(value) or value[0] not in prefixes:
            raise WorkspaceConfigError(
                f"{self.path}.{key}: {value!r} is not a Slack {kind} id (uppercase, starting with {' or '.join(prefixes)})"
            )
        return value

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise WorkspaceConfigError(f"{self.path}.{key}: must be true or false")
        return value

    def strings(self, key: str) -> list[str]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise WorkspaceConfigError(f"{self.path}.{key}: must be a list of strings")
        return list(value)

    def mapping(self, key: str) -> _Reader:
        return _Reader(self._get(key), f"{self.path}.{key}")

    def items(self, key: str) -> list[_Reader]:
        value = self.data.get(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            raise WorkspaceConfigError(f"{self.path}.{key}: must be a list")
        return [_Reader(item, f"{self.path}.{key}[{index}]") for index, item in enumerate(value)]

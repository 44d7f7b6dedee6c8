"""Show the sandbox's Slack workspace in a terminal as a person would read it: channels, threads, edits,
buttons, files, Block Kit laid out as text."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from sandbox.slack import SlackMessage, SlackWorkspace

_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_CODE = re.compile(r"`([^`\n]+)`")
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|([^>]*))?>")
_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
_EMOJI = {
    ":white_check_mark:": "✅",
    ":x:": "❌",
    ":warning:": "⚠️ ",
    ":key:": "🔑",
    ":hourglass_flowing_sand:": "⏳",
    ":hourglass:": "⌛",
    ":arrows_counterclockwise:": "🔄",
    ":rotating_light:": "🚨",
    ":no_entry:": "⛔",
    ":alarm_clock:": "⏰",
}


@dataclass
class Style:
    color: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def button(self, text: str, style: str | None) -> str:
        label = f"[ {text} ]"
        if style == "primary":
            return self._wrap("1;32", label)
        if style == "danger":
            return self._wrap("1;31", label)
        return self.bold(label)


@dataclass
class ConversationPrinter:
    """Prints each new message, and each edit of one already shown, once, in the order they happened."""

    workspace: SlackWorkspace
    out: TextIO = field(default_factory=lambda: sys.stdout)
    style: Style = field(default_factory=lambda: Style(color=sys.stdout.isatty()))
    _shown: dict[tuple[str, str], int] = field(default_factory=dict)
    _rendered: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    _files_shown: set[str] = field(default_factory=set)

    def flush(self, only: Callable[[SlackMessage], bool] | None = None) -> None:
        for message in self.workspace.all_messages():
            key = (message.channel, message.ts)
            versions = self.workspace.versions(*key)
            latest = versions[-1]
            shown = self._shown.get(key)
            if shown is not None and shown >= latest.version:
                continue
            if only is not None and not only(latest):
                continue
            self._print(latest, before=self._rendered.get(key))
            self._shown[key] = latest.version
        for file in self.workspace.files():
            if file.id not in self._files_shown:
                self._files_shown.add(file.id)
                rows = file.content.decode(errors="replace").count("\n") - 1
                where = ", ".join(f"#{self._channel_name(c)}" for c in file.channels)
                self._line(f"  📎 {self.style.bold(file.name)} uploaded to {where} ({rows} rows) — {file.title}")
        self.out.flush()

    def _channel_name(self, channel_id: str) -> str:
        channel = self.workspace.find_channel(channel_id)
        return channel.name if channel is not None else channel_id

    def _user_name(self, user_id: str | None) -> str:
        if user_id is None:
            return "?"
        if user_id == self.workspace.bot.user_id:
            return "emaildoctor"
        user = self.workspace.find_user(user_id)
        return user.real_name if user is not None and user.real_name else user_id

    def _print(self, message: SlackMessage, *, before: list[str] | None) -> None:
        """A new message in full; an edited one as the lines that changed (Slack shows it in place)."""
        edited = before is not None
        s = self.style
        author = self._user_name(message.user)
        author = s.cyan(author) + (s.dim(" APP") if message.user == self.workspace.bot.user_id else "")
        place = f"#{self._channel_name(message.channel)}"
        tags: list[str] = []
        if message.is_reply:
            tags.append("in thread")
        if message.ephemeral:
            tags.append(f"only visible to {self._user_name(message.visible_to)}")
        if edited:
            tags.append("edited")
        indent = "      " if message.is_reply else "  "
        tail = s.dim(f" ({', '.join(tags)})") if tags else ""
        body = self._body(message)
        self._rendered[(message.channel, message.ts)] = body
        if before is not None:
            body = [line for line in body if line not in before] or [s.dim("(unchanged text)")]
        self._line(f"{indent[:-2]}{'↳ ' if message.is_reply else ''}{s.bold(place)} · {author}{tail}")
        for line in body:
            self._line(f"{indent}{line}")
        self._line("")

    def _body(self, message: SlackMessage) -> list[str]:
        if not message.blocks:
            return self.mrkdwn(message.text).splitlines()
        lines: list[str] = []
        for block in message.blocks:
            lines.extend(self._block(block))
        return lines

    def _block(self, block: dict[str, Any]) -> list[str]:
        s = self.style
        kind = block.get("type")
        if kind == "header":
            return [s.bold(str(block.get("text", {}).get("text", "")))]
        if kind == "section":
            text = self.mrkdwn(str((block.get("text") or {}).get("text", "")))
            fields = [self.mrkdwn(str(f.get("text", ""))) for f in block.get("fields", []) if isinstance(f, dict)]
            lines = _code_blocks(text, s)
            lines += fields
            accessory = block.get("accessory")
            if isinstance(accessory, dict) and accessory.get("type") == "button":
                lines.append(s.button(str(accessory.get("text", {}).get("text", "")), accessory.get("style")))
            return lines
        if kind == "context":
            texts = [self.mrkdwn(str(e.get("text", ""))) for e in block.get("elements", []) if isinstance(e, dict)]
            return [s.dim(line) for text in texts for line in text.splitlines()]
        if kind == "actions":
            buttons = [
                s.button(str(e.get("text", {}).get("text", "")), e.get("style"))
                for e in block.get("elements", [])
                if isinstance(e, dict)
            ]
            return ["  ".join(buttons)]
        if kind == "divider":
            return [s.dim("─" * 40)]
        return []

    def mrkdwn(self, text: str) -> str:
        s = self.style
        text = _DATE.sub(lambda m: m.group(1), text)
        text = _USER.sub(lambda m: "@" + self._user_name(m.group(1)).split()[0].lower(), text)
        text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or self._channel_name(m.group(1))), text)
        text = _GROUP.sub(lambda m: "@" + (m.group(2) or self._group_handle(m.group(1))), text)
        text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
        for code, glyph in _EMOJI.items():
            text = text.replace(code, glyph)
        text = _BOLD.sub(lambda m: s.bold(m.group(1)), text)
        return _CODE.sub(lambda m: s.cyan(m.group(1)), text)

    def _group_handle(self, group_id: str) -> str:
        group = next((g for g in self.workspace.usergroups.values() if g.id == group_id), None)
        return group.handle if group is not None else group_id

    def _line(self, text: str) -> None:
        print(text, file=self.out)


COLLAPSE_OVER = 12


def _code_blocks(text: str, style: Style) -> list[str]:
    """``` blocks become dim, indented lines, collapsed to their start and end when long; the rest stays."""
    lines: list[str] = []
    inside = False
    for part in re.split(r"(```)", text):
        if part == "```":
            inside = not inside
            continue
        part_lines = [line for line in part.splitlines() if line.strip()]
        if inside and len(part_lines) > COLLAPSE_OVER:
            hidden = len(part_lines) - 9
            part_lines = [*part_lines[:5], f"… {hidden} more lines (expanded in Slack) …", *part_lines[-4:]]
        lines.extend(style.dim("│ " + line) if inside else line for line in part_lines)
    return lines
